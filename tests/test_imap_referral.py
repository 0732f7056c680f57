"""
Tests for login referrals (RFC 2221, LOGIN-REFERRALS) and Dovecot's
C{nologin} extra fields: L{mailstack.auth.nologin} (reading them),
L{mailstack.imap.referral} (the URL and reply, as Dovecot 2.3.19 writes
them: the expected strings are its answers) and IMAP sessions over a
passwd-file whose users carry them.
"""

import base64
import os

from twisted.cred.error import UnauthorizedLogin
from twisted.cred.credentials import UsernamePassword
from twisted.trial import unittest

from mailstack.auth import nologin
from mailstack.auth.checkers import UserDirectoryChecker
from mailstack.auth.directory import UserDirectory
from mailstack.auth.realm import MailRealm, buildPortal
from mailstack.auth.userdb import PasswdFile
from mailstack.imap import referral
from mailstack.imap.plugin import plugin as imapPlugin
from mailstack.imap.server import IMAPServer, IMAPSettings
from mailstack.storage.memory import MemoryStore
from tests.fakes import FakeReactor, FakeTLSTransport

USERS = (
    "demo@lab.test:{PLAIN}demo::::::\n"
    "hosted@lab.test:{PLAIN}pw::::::nologin host=other.test\n"
    "ported@lab.test:{PLAIN}pw::::::nologin host=other.test port=1143 destuser=bob@x.test\n"
    "reason@lab.test:{PLAIN}pw::::::nologin reason=Moved host=other.test port=143\n"
    "gone@lab.test:{PLAIN}pw::::::nologin reason=Gone\n"
    "nolog@lab.test:{PLAIN}pw::::::nologin\n"
    "suggest@lab.test:{PLAIN}pw::::::host=other.test\n"
    "admin@lab.test:{PLAIN}pw::::::mailstack_admin=yes nologin host=other.test\n"
)


class ExtraFieldsTests(unittest.TestCase):
    """Reading nologin, reason, host, port and destuser from a line's extra fields."""

    def test_fields(self):
        """nologin with its companions gives a NoLogin; without nologin there is none."""
        self.assertEqual(
            nologin.fromExtraFields(["nologin", "host=h", "port=1143", "destuser=u@x",
                                     "reason=Why"]),
            nologin.NoLogin(reason="Why", host="h", port=1143, destuser="u@x"))
        self.assertEqual(nologin.fromExtraFields(["nologin"]), nologin.NoLogin())
        self.assertEqual(nologin.fromExtraFields(["NOLOGIN=yes", "HOST=h"]),
                         nologin.NoLogin(host="h"))
        self.assertIsNone(nologin.fromExtraFields(["host=h", "mailstack_admin=yes"]))
        self.assertIsNone(nologin.fromExtraFields(["nologin=no", "host=h"]))
        self.assertIsNone(nologin.fromExtraFields([]))

    def test_badPort(self):
        """A port that is no port is left out (the default 143 is meant)."""
        for port in ("x", "0", "70000", "-1", ""):
            self.assertIsNone(nologin.fromExtraFields(["nologin", "port=" + port]).port)

    def test_passwdFile(self):
        """The passwd-file's users carry their NoLogin; the admin flag still reads."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(USERS)
        users = PasswdFile(path)
        self.assertIsNone(users.lookup("demo@lab.test").noLogin)
        self.assertIsNone(users.lookup("suggest@lab.test").noLogin)
        self.assertEqual(users.lookup("ported@lab.test").noLogin,
                         nologin.NoLogin(host="other.test", port=1143, destuser="bob@x.test"))
        admin = users.lookup("admin@lab.test")
        self.assertTrue(admin.admin)
        self.assertEqual(admin.noLogin, nologin.NoLogin(host="other.test"))


class ReferralTests(unittest.TestCase):
    """The referral URL and reply, as Dovecot 2.3.19 writes them."""

    def test_url(self):
        """User and host escaped as Dovecot does, the port only when not 143."""
        self.assertEqual(
            referral.referralURL(nologin.NoLogin(host="other.test"), "hosted@lab.test", "PLAIN"),
            "imap://hosted%40lab.test;AUTH=PLAIN@other.test/")
        self.assertEqual(
            referral.referralURL(nologin.NoLogin(host="other.test", port=993, destuser="\u00e9t\u00e9"),
                                 "x@lab.test", "LOGIN"),
            "imap://%c3%a9t%c3%a9;AUTH=LOGIN@other.test:993/")
        self.assertEqual(
            referral.referralURL(nologin.NoLogin(host="Other.Test", port=143,
                                                 destuser="a;b/c?d%e+f~g!h*i'j(k)l=m,n$o&p[q]r#s_u.v-wAZ09"),
                                 "x@lab.test", "PLAIN"),
            "imap://a%3bb%2fc%3fd%25e+f~g!h*i'j(k)l=m,n$o&p%5bq%5dr%23s_u.v-wAZ09;AUTH=PLAIN@Other.Test/")
        self.assertEqual(referral.referralURL(nologin.NoLogin(host="::1"), "i@lab.test", "PLAIN"),
                         "imap://i%40lab.test;AUTH=PLAIN@%3a%3a1/")

    def test_refusal(self):
        """A host gives NO [REFERRAL]; none, or referrals off, NO [CONTACTADMIN]."""
        hosted = nologin.NoLogin(host="h")
        self.assertEqual(referral.refusal(hosted, "u@x", "PLAIN"),
                         ("NO", b"REFERRAL imap://u%40x;AUTH=PLAIN@h/", "Try this server instead."))
        self.assertEqual(referral.refusal(nologin.NoLogin(reason="Moved", host="h"), "u@x", "PLAIN"),
                         ("NO", b"REFERRAL imap://u%40x;AUTH=PLAIN@h/", "Moved"))
        self.assertEqual(referral.refusal(hosted, "u@x", "PLAIN", referrals=False),
                         ("NO", "CONTACTADMIN", "Login disabled for this user"))
        self.assertEqual(referral.refusal(nologin.NoLogin(reason="Gone"), "u@x", "PLAIN"),
                         ("NO", "CONTACTADMIN", "Gone"))


class SessionTests(unittest.TestCase):
    """LOGIN and AUTHENTICATE of users marked nologin, over a passwd-file."""

    def setUp(self):
        self.reactor = FakeReactor()
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(USERS)
        self.users = PasswdFile(path, defaultDomain="lab.test")
        self.checker = UserDirectoryChecker(UserDirectory(self.users, self.reactor))
        realm = MailRealm(MemoryStore(), imapPlugin.avatarAdapters())
        self.portal = buildPortal(realm, [self.checker])

    def connect(self, **overrides):
        settings = dict(hostname="mail.lab.test", tlsMode="starttls", tlsContext=object(),
                        allowPlaintextAuth=True, defaultDomain="lab.test",
                        authFailuresDisconnect=3)
        settings.update(overrides)
        server = IMAPServer(IMAPSettings(**settings), self.portal, self.reactor, lambda: True)
        transport = FakeTLSTransport()
        server.makeConnection(transport)
        self.addCleanup(server.connectionLost, None)
        greeting = transport.value()
        transport.clear()

        def send(line):
            transport.clear()
            server.dataReceived(line + b"\r\n")
            return transport.value()
        return greeting, send

    def test_checker(self):
        """The right password of a nologin user fails with LoginDisabled; a wrong one as usual."""
        failure = self.failureResultOf(self.checker.requestAvatarId(
            UsernamePassword(b"ported", b"pw")), nologin.LoginDisabled)
        self.assertEqual(failure.value.address, "ported@lab.test")
        self.assertEqual(failure.value.noLogin.port, 1143)
        failure = self.failureResultOf(self.checker.requestAvatarId(
            UsernamePassword(b"ported", b"wrong")), UnauthorizedLogin)
        self.assertNotIsInstance(failure.value, nologin.LoginDisabled)
        self.assertEqual(self.successResultOf(self.checker.requestAvatarId(
            UsernamePassword(b"suggest", b"pw"))), b"suggest@lab.test")

    def test_advertised(self):
        """LOGIN-REFERRALS is in the greeting's capabilities and after login."""
        greeting, send = self.connect()
        self.assertIn(b" LOGIN-REFERRALS", greeting)
        self.assertIn(b" LOGIN-REFERRALS", send(b"a LOGIN demo demo"))

    def test_loginReferral(self):
        """LOGIN answers NO [REFERRAL imap://user;AUTH=PLAIN@host/] as Dovecot does."""
        _, send = self.connect()
        self.assertEqual(send(b"a LOGIN hosted@lab.test pw"),
                         b"a NO [REFERRAL imap://hosted%40lab.test;AUTH=PLAIN@other.test/]"
                         b" Try this server instead.\r\n")
        self.assertEqual(send(b"b LOGIN HOSTED pw"),
                         b"b NO [REFERRAL imap://hosted%40lab.test;AUTH=PLAIN@other.test/]"
                         b" Try this server instead.\r\n")
        self.assertEqual(send(b"c LOGIN ported@lab.test pw"),
                         b"c NO [REFERRAL imap://bob%40x.test;AUTH=PLAIN@other.test:1143/]"
                         b" Try this server instead.\r\n")
        self.assertEqual(send(b"d LOGIN reason@lab.test pw"),
                         b"d NO [REFERRAL imap://reason%40lab.test;AUTH=PLAIN@other.test/]"
                         b" Moved\r\n")

    def test_authenticate(self):
        """AUTHENTICATE names its own mechanism in the URL."""
        _, send = self.connect()
        self.assertEqual(
            send(b"a AUTHENTICATE PLAIN " + base64.b64encode(b"\0hosted@lab.test\0pw")),
            b"a NO [REFERRAL imap://hosted%40lab.test;AUTH=PLAIN@other.test/]"
            b" Try this server instead.\r\n")
        self.assertEqual(send(b"b AUTHENTICATE LOGIN"), b"+ VXNlcm5hbWU6\r\n")
        self.assertEqual(send(base64.b64encode(b"hosted@lab.test")), b"+ UGFzc3dvcmQ6\r\n")
        self.assertEqual(send(base64.b64encode(b"pw")),
                         b"b NO [REFERRAL imap://hosted%40lab.test;AUTH=LOGIN@other.test/]"
                         b" Try this server instead.\r\n")

    def test_wrongPassword(self):
        """A wrong password is an ordinary failure: no referral is given away."""
        _, send = self.connect()
        self.assertEqual(send(b"a LOGIN hosted@lab.test wrong"),
                         b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n")

    def test_noHost(self):
        """nologin without a host: NO [CONTACTADMIN] with the reason, or Dovecot's words."""
        _, send = self.connect()
        self.assertEqual(send(b"a LOGIN gone@lab.test pw"), b"a NO [CONTACTADMIN] Gone\r\n")
        self.assertEqual(send(b"b LOGIN nolog@lab.test pw"),
                         b"b NO [CONTACTADMIN] Login disabled for this user\r\n")

    def test_hostWithoutNologin(self):
        """A host without nologin logs in normally, as Dovecot does."""
        _, send = self.connect()
        self.assertTrue(send(b"a LOGIN suggest@lab.test pw").startswith(b"a OK [CAPABILITY "))

    def test_notCountedAsFailure(self):
        """Refusals do not count toward the failed-login disconnect: the password was right."""
        _, send = self.connect()
        for n in range(5):
            self.assertTrue(send(b"a%d LOGIN nolog@lab.test pw" % (n,)).startswith(
                b"a%d NO [CONTACTADMIN]" % (n,)))
        self.assertTrue(send(b"z LOGIN demo demo").startswith(b"z OK "))

    def test_disabled(self):
        """With LOGIN-REFERRALS switched off it is not advertised and no referral is sent."""
        greeting, send = self.connect(disabled=frozenset({"LOGIN-REFERRALS"}))
        self.assertNotIn(b"LOGIN-REFERRALS", greeting)
        self.assertEqual(send(b"a LOGIN hosted@lab.test pw"),
                         b"a NO [CONTACTADMIN] Login disabled for this user\r\n")
