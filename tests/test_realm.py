"""
Tests for L{mailstack.auth.realm}: the protocol-neutral realm and the portal.
"""

import os

from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import reactor
from twisted.trial import unittest
from zope.interface import Interface
from zope.interface.verify import verifyObject

from mailstack.auth.checkers import UserDirectoryChecker
from mailstack.auth.directory import UserDirectory
from mailstack.auth.realm import MailRealm, buildPortal
from mailstack.auth.userdb import PasswdFile


class IFirst(Interface):
    """An avatar interface standing in for a protocol's (pop3.IMailbox...)."""


class ISecond(Interface):
    """Another protocol's avatar interface."""


class IUnserved(Interface):
    """An interface no adapter serves."""


class FakeAccount:
    def __init__(self, address):
        self.address = address


class FakeStore:
    """An IMailStore double: remembers which accounts were asked for."""

    def __init__(self):
        self.requested = []

    def account(self, address):
        self.requested.append(address)
        return FakeAccount(address)


class Avatar:
    def __init__(self, kind, account, avatarId):
        self.kind = kind
        self.account = account
        self.avatarId = avatarId
        self.loggedOut = False

    def logout(self):
        self.loggedOut = True


def firstFactory(account, avatarId):
    avatar = Avatar("first", account, avatarId)
    return avatar, avatar.logout


def secondFactory(account, avatarId):
    return Avatar("second", account, avatarId), None


class MailRealmTests(unittest.TestCase):
    def setUp(self):
        self.store = FakeStore()
        self.realm = MailRealm(self.store, {IFirst: firstFactory, ISecond: secondFactory})

    def test_interface(self):
        """MailRealm provides IRealm."""
        verifyObject(IRealm, self.realm)

    def test_bytesAvatarId(self):
        """A bytes avatar ID (from the checker) reaches store and factory as str."""
        iface, avatar, logout = self.successResultOf(
            self.realm.requestAvatar(b"demo@lab.test", None, IFirst))
        self.assertIs(iface, IFirst)
        self.assertEqual(avatar.kind, "first")
        self.assertEqual(avatar.avatarId, "demo@lab.test")
        self.assertEqual(avatar.account.address, "demo@lab.test")
        self.assertEqual(self.store.requested, ["demo@lab.test"])
        logout()
        self.assertTrue(avatar.loggedOut)

    def test_strAvatarId(self):
        """A str avatar ID works as well."""
        _, avatar, _ = self.successResultOf(self.realm.requestAvatar("demo@lab.test", None, IFirst))
        self.assertEqual(avatar.avatarId, "demo@lab.test")

    def test_firstServedInterface(self):
        """The first requested interface that has an adapter wins."""
        iface, avatar, _ = self.successResultOf(self.realm.requestAvatar(
            b"demo@lab.test", None, IUnserved, ISecond, IFirst))
        self.assertIs(iface, ISecond)
        self.assertEqual(avatar.kind, "second")

    def test_noLogoutIsCallable(self):
        """A factory returning no logout still gives a callable no-op logout."""
        _, _, logout = self.successResultOf(
            self.realm.requestAvatar(b"demo@lab.test", None, ISecond))
        self.assertIsNone(logout())

    def test_noAdapter(self):
        """No adapter for any interface raises NotImplementedError, no account made."""
        e = self.assertRaises(NotImplementedError, self.realm.requestAvatar,
                              b"demo@lab.test", None, IUnserved)
        self.assertIn("no avatar for interfaces", str(e))
        self.assertIn("IUnserved", str(e))
        self.assertEqual(self.store.requested, [])

    def test_adaptersCopied(self):
        """Changing the caller's dict later does not change the realm."""
        adapters = {IFirst: firstFactory}
        realm = MailRealm(self.store, adapters)
        del adapters[IFirst]
        self.assertEqual(
            self.successResultOf(realm.requestAvatar(b"a@lab.test", None, IFirst))[0], IFirst)

    def test_importsNoProtocol(self):
        """The realm module imports no protocol module (the design's one-way flow)."""
        import mailstack.auth.realm as realm
        with open(realm.__file__) as f:
            source = f.read()
        for forbidden in ("twisted.mail", "mailstack.pop3", "mailstack.imap",
                          "mailstack.smtp"):
            self.assertNotIn(forbidden, source)


class PortalTests(unittest.TestCase):
    """Login through a real Portal with the passwd-file checker, end to end."""

    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.users = PasswdFile(os.path.join(directory, "users"),
                                defaultDomain="lab.test", bcryptRounds=4)
        self.users.addUser("demo@lab.test", "demo")
        self.store = FakeStore()
        self.portal = buildPortal(
            MailRealm(self.store, {IFirst: firstFactory}),
            [UserDirectoryChecker(UserDirectory(self.users, reactor))])

    def test_buildPortal(self):
        """buildPortal gives a Portal that accepts password credentials."""
        self.assertIsInstance(self.portal, Portal)
        self.assertIn(IUsernamePassword, self.portal.listCredentialsInterfaces())

    def test_login(self):
        """A right password gives the adapter's avatar; logout reaches it."""
        d = self.portal.login(UsernamePassword(b"demo", b"demo"), None, IFirst)

        def loggedIn(result):
            iface, avatar, logout = result
            self.assertIs(iface, IFirst)
            self.assertEqual(avatar.avatarId, "demo@lab.test")
            self.assertEqual(self.store.requested, ["demo@lab.test"])
            self.assertFalse(avatar.loggedOut)
            logout()
            self.assertTrue(avatar.loggedOut)
        return d.addCallback(loggedIn)

    def test_wrongPassword(self):
        """A wrong password fails with UnauthorizedLogin and builds no avatar."""
        d = self.portal.login(UsernamePassword(b"demo", b"nope"), None, IFirst)
        d = self.assertFailure(d, UnauthorizedLogin)
        d.addCallback(lambda _: self.assertEqual(self.store.requested, []))
        return d

    def test_unservedInterface(self):
        """A right password for an interface nobody serves errs NotImplementedError."""
        d = self.portal.login(UsernamePassword(b"demo", b"demo"), None, IUnserved)
        return self.assertFailure(d, NotImplementedError)
