"""
Account-level change events: what an L{IAccountListener} hears of one
account's list of mailboxes and subscriptions (created, deleted, renamed,
subscribed, unsubscribed), for IMAP NOTIFY (RFC 5465) MailboxName and
SubscriptionChange. Changes to messages keep coming through each mailbox's
own L{IMailboxListener}s.

L{AccountListeners} is the small registry both stores keep per account.
"""

from twisted.logger import Logger

from mailstack.storage.interfaces import IAccountListener

__all__ = ["CREATED", "DELETED", "RENAMED", "SUBSCRIBED", "UNSUBSCRIBED",
           "AccountListeners", "MailboxesChange"]

log = Logger()

CREATED, DELETED, RENAMED, SUBSCRIBED, UNSUBSCRIBED = (
    "created", "deleted", "renamed", "subscribed", "unsubscribed")


class MailboxesChange:
    """
    One change to an account's mailbox list or subscriptions.

    @ivar kind: L{CREATED}, L{DELETED}, L{RENAMED}, L{SUBSCRIBED} or L{UNSUBSCRIBED}.
    @ivar name: the mailbox name (after a rename: the new one).
    @ivar oldName: the name before a rename, else L{None}.
    """

    __slots__ = ("kind", "name", "oldName")

    def __init__(self, kind, name, oldName=None):
        self.kind = kind
        self.name = name
        self.oldName = oldName

    def __eq__(self, other):
        if not isinstance(other, MailboxesChange):
            return NotImplemented
        return (self.kind, self.name, self.oldName) == (other.kind, other.name, other.oldName)

    def __hash__(self):
        return hash((self.kind, self.name, self.oldName))

    def __repr__(self):
        if self.oldName is None:
            return "MailboxesChange(%r, %r)" % (self.kind, self.name)
        return "MailboxesChange(%r, %r, %r)" % (self.kind, self.name, self.oldName)


class AccountListeners:
    """
    The L{IAccountListener}s of one account; a listener that raises is
    logged and the others are still told.
    """

    def __init__(self):
        self._listeners = []

    def __bool__(self):
        return bool(self._listeners)

    def add(self, listener):
        if listener not in self._listeners:
            self._listeners.append(IAccountListener(listener))

    def remove(self, listener):
        if listener in self._listeners:
            self._listeners.remove(listener)

    def tell(self, changes):
        """Tell every listener of C{changes} (L{MailboxesChange}s, in order)."""
        changes = list(changes)
        if not changes:
            return
        for listener in list(self._listeners):
            try:
                listener.mailboxesChanged(changes)
            except Exception:
                log.failure("Account listener {listener} failed", listener=listener)
