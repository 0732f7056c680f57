"""
The POP3 maildrop: what a POP3 login gets, over the store's INBOX.

RFC 1939 semantics, and the choices mailstack makes where the RFC leaves room
(docs/pop3.md tells students the same):

 - Snapshot. L{Maildrop.open} syncs INBOX and fixes the list of messages and
   their numbers for the whole session: mail arriving later shows in the next
   session (RFC 1939 section 8). The sync does not claim \\Recent, which is IMAP
   session state that POP3 has no use for.
 - Unique-ids (UIDL) are C{%08x%08x} of the message's UID and the mailbox's
   UIDVALIDITY: what Dovecot 2.3's default C{pop3_uidl_format = %08Xu%08Xv}
   prints (its %X gives lower-case hex; tests/e2e/test_interop_dovecot.py). The
   store keeps UIDs in Dovecot's C{dovecot-uidlist}, so they survive sessions,
   flag changes and renames of the file, and a Dovecot serving the same Maildir
   gives the same unique-ids (no client downloads everything twice after a
   switch). Only a UIDVALIDITY change (the uidlist lost beyond repair) changes
   them: clients then fetch messages again, they never lose one.
 - DELE only marks. The marked messages are expunged from the store at QUIT
   (UPDATE state, L{Maildrop.commit}); a session that ends any other way
   deletes nothing.
 - \\Seen: a message sent completely by RETR gets \\Seen in the Maildir at once
   (IMAP clients see it as read); TOP does not set it. Dovecot sets it for RETR
   as well unless C{pop3_no_flag_updates} (at the end of the session); setting
   it at once means a dropped connection does not lose the fact.
 - Exclusive maildrop. One POP3 session per address at a time, across every
   process sharing the store: the store's maildrop lock
   (L{IAccountStore.lockMaildrop}; the Maildir store takes Dovecot's
   C{dovecot-pop3-session.lock}, docs/pop3.md). IMAP does not take this lock
   (Dovecot's optional C{pop3_lock_session} does not exclude IMAP either);
   instead the snapshot checks, before sending or deleting a message, that the
   store still has the same message (UIDVALIDITY, UID and store key), so an
   IMAP EXPUNGE or a uidlist rebuild meanwhile makes that message "gone", never
   another message sent or deleted in its place.
"""

from twisted.internet import defer
from zope.interface import Attribute, Interface, implementer

from mailstack.pop3.waiting import MaildropBusy
from mailstack.storage.interfaces import MailboxInUse, NoSuchMessage, StoreError

SEEN = "\\Seen"


class MaildropLocked(Exception):
    """Another POP3 session holds this address's maildrop."""


class NoSuchMessageNumber(Exception):
    """The message number is not in this session's listing."""


class MessageDeleted(Exception):
    """The message is marked deleted in this session."""


class MessageGone(Exception):
    """The message was removed from the store by someone else since login."""


class IMaildrop(Interface):
    """
    A POP3 session's view of one user's INBOX. Message numbers are 1-based and
    fixed by L{open}; every method taking one raises L{NoSuchMessageNumber} for a
    number not in the listing and L{MessageDeleted} for one marked deleted.
    """

    address = Attribute("str: the user's address.")

    def open(lock=None):
        """
        Take the maildrop lock and take the snapshot.

        @param lock: C{f(account, address) -> Deferred} taking the lock (firing
            with an L{IMaildropLock} or L{None} for none), e.g. waiting in line
            (L{mailstack.pop3.waiting}); by default the store's lock, tried once.
        @return: a Deferred; it fails with L{MaildropLocked} if another POP3
            session holds the lock, with L{StoreError} if the mailbox cannot be
            read. L{close} while it waits gives up the wait.
        """

    def stat():
        """@return: C{(count, octets)} of the messages not marked deleted."""

    def listing():
        """@return: C{[(number, octets)]} of the messages not marked deleted."""

    def size(number):
        """@return: the message's size in octets (CRLF wire form)."""

    def uniqueIDs():
        """@return: C{[(number, unique-id str)]} of the messages not marked deleted."""

    def uniqueID(number):
        """@return: the message's unique-id (str)."""

    def openMessage(number):
        """
        @return: a binary file object streaming the message (CRLF wire form).
        @raise MessageGone: the store no longer has it.
        """

    def markSeen(number):
        """
        Give the message \\Seen in the store (after a complete RETR).
        @return: a Deferred.
        """

    def delete(number):
        """Mark the message deleted (RFC 1939 DELE)."""

    def reset():
        """Unmark every message (RFC 1939 RSET)."""

    def commit():
        """
        The UPDATE state: remove the marked messages from the store.

        @return: a Deferred firing with how many messages were removed, or
            failing with L{StoreError} if they could not be.
        """

    def close():
        """Release the lock. Idempotent; the session's logout calls it."""


def uniqueID(uid, uidValidity):
    """The UIDL unique-id of a message (Dovecot's default format)."""
    return "%08x%08x" % (uid, uidValidity)


@implementer(IMaildrop)
class Maildrop:
    """
    L{IMaildrop} over an L{IAccountStore}'s INBOX.

    @param account: the L{mailstack.storage.interfaces.IAccountStore}.
    @param address: the user's address.
    """

    def __init__(self, account, address):
        self.account = account
        self.address = address
        self.mailbox = None
        self.uidValidity = None
        self._infos = []       # the snapshot: the store's infos, message n at n - 1
        self._deleted = set()  # numbers marked deleted
        self._lock = None
        self._pending = None  # the lock being waited for
        self._closed = False

    @defer.inlineCallbacks
    def open(self, lock=None):
        if lock is None:
            pending = self.account.lockMaildrop()
        else:
            pending = lock(self.account, self.address)
        self._pending = pending
        try:
            held = yield pending
        except (MailboxInUse, MaildropBusy):
            raise MaildropLocked(self.address)
        finally:
            self._pending = None
        if self._closed:  # the session ended meanwhile
            if held is not None:
                held.release()
            return
        self._lock = held
        try:
            mailbox = yield self.account.openMailbox("INBOX")
            # POP3 must not take \Recent away from IMAP sessions.
            yield mailbox.sync(claimRecent=False)
        except BaseException:
            self.close()
            raise
        self.mailbox = mailbox
        self.uidValidity = mailbox.uidValidity
        # Only uid, key and size are used: immutable, so the list is the snapshot.
        self._infos = list(mailbox.messages())

    def close(self):
        self._closed = True
        if self._pending is not None:
            self._pending.cancel()  # out of the waiting line
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def _entry(self, number):
        """The snapshot's info of message C{number}."""
        if not 1 <= number <= len(self._infos):
            raise NoSuchMessageNumber(number)
        if number in self._deleted:
            raise MessageDeleted(number)
        return self._infos[number - 1]

    def _live(self):
        """C{[(number, info)]} of the messages not marked deleted."""
        deleted = self._deleted
        return [(number, info) for number, info in enumerate(self._infos, 1)
                if number not in deleted]

    def count(self):
        """@return: how many messages the snapshot holds (deleted ones too)."""
        return len(self._infos)

    def stat(self):
        live = self._live()
        return len(live), sum(info.size for _, info in live)

    def listing(self):
        return [(number, info.size) for number, info in self._live()]

    def size(self, number):
        return self._entry(number).size

    def uniqueIDs(self):
        return [(number, uniqueID(info.uid, self.uidValidity)) for number, info in self._live()]

    def uniqueID(self, number):
        return uniqueID(self._entry(number).uid, self.uidValidity)

    def _current(self, number, entry):
        """The store's info for message C{number}, if the store still has that message."""
        if self.mailbox.uidValidity != self.uidValidity:
            raise MessageGone(number)
        try:
            info = self.mailbox.messageInfo(entry.uid)
        except NoSuchMessage:
            raise MessageGone(number)
        if info.key != entry.key:
            raise MessageGone(number)
        return info

    def openMessage(self, number):
        entry = self._entry(number)
        self._current(number, entry)
        try:
            return self.mailbox.openMessage(entry.uid)
        except NoSuchMessage:
            raise MessageGone(number)

    def markSeen(self, number):
        try:
            entry = self._entry(number)
            info = self._current(number, entry)
        except Exception:
            return defer.fail()
        if SEEN in info.flags:
            return defer.succeed(None)
        return self.mailbox.setFlags(entry.uid, info.flags | {SEEN})

    def delete(self, number):
        self._entry(number)
        self._deleted.add(number)

    def reset(self):
        self._deleted.clear()

    def commit(self):
        marked = [self._infos[number - 1] for number in sorted(self._deleted)]
        if not marked:
            return defer.succeed(0)
        if self.mailbox.uidValidity != self.uidValidity:
            return defer.fail(StoreError(
                "the mailbox's UIDs were reset since login; nothing deleted"))
        uids = []
        for entry in marked:
            try:
                info = self.mailbox.messageInfo(entry.uid)
            except NoSuchMessage:
                continue  # expunged meanwhile (IMAP): already gone
            if info.key == entry.key:
                uids.append(entry.uid)
        return self.mailbox.expunge(uids).addCallback(len)


def maildropAdapter(account, address):
    """
    The realm's factory for L{IMaildrop} avatars: C{(maildrop, logout)}.
    """
    maildrop = Maildrop(account, address)
    return maildrop, maildrop.close
