"""
The realm: turns an authenticated address into a protocol's avatar.

It is protocol-neutral on purpose. The service hands it a map from avatar
interface (C{pop3.IMailbox}, C{imap4.IAccount}, ...) to the adapter factory each
protocol package provides; the realm only fetches the user's account from the
store and calls the factory. So this module imports no protocol module, and a new
protocol plugs in without touching it.
"""

from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()


def _noLogout():
    """Logout for avatars that hold nothing to release."""


@implementer(IRealm)
class MailRealm:
    """
    @param store: an L{mailstack.storage.interfaces.IMailStore}.
    @param adapters: C{{interface: factory}}, where C{factory(account, avatarId)}
        (the L{IAccountStore} and the address as str) returns C{(avatar, logout)},
        or a Deferred firing with it (the store's work is asynchronous);
        C{logout} is a callable or L{None}.
    """

    def __init__(self, store, adapters):
        self.store = store
        self.adapters = dict(adapters)

    def requestAvatar(self, avatarId, mind, *interfaces):
        """
        Build the avatar for the first of C{interfaces} that an adapter serves.

        @param avatarId: the address, bytes (from a checker) or str.
        @return: a Deferred firing with C{(interface, avatar, logout)};
            C{logout} is always callable. (The portal accepts a Deferred.)
        @raise NotImplementedError: if no adapter serves any of C{interfaces}.
        """
        if isinstance(avatarId, bytes):
            avatarId = avatarId.decode("utf-8")
        for interface in interfaces:
            factory = self.adapters.get(interface)
            if factory is None:
                continue
            account = self.store.account(avatarId)

            def built(result, interface=interface):
                avatar, logout = result
                log.debug("{address} logged in for {interface}", address=avatarId,
                          interface=interface.__name__)
                return interface, avatar, logout or _noLogout
            return defer.maybeDeferred(factory, account, avatarId).addCallback(built)
        raise NotImplementedError("no avatar for interfaces %s" % (
            ", ".join(getattr(i, "__identifier__", repr(i)) for i in interfaces),))


def buildPortal(realm, checkers):
    """
    @return: a L{Portal} over C{realm} with every checker registered.
    """
    return Portal(realm, checkers)
