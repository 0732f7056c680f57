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
 - Exclusive maildrop. One POP3 session per address at a time, in this process:
   L{MaildropLocks}, one registry shared by every POP3 listener. IMAP does not
   take this lock (Dovecot's optional C{pop3_lock_session} does not exclude IMAP
   either); instead the snapshot checks, before sending or deleting a message,
   that the store still has the same message (UIDVALIDITY, UID and Maildir base
   name), so an IMAP EXPUNGE or a uidlist rebuild meanwhile makes that message
   "gone", never another message sent or deleted in its place. Several
   processes over one Maildir do not see each other's locks.
"""

from zope.interface import Attribute, Interface, implementer

from mailstack.storage.interfaces import NoSuchMessage, StoreError

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

    def open():
        """
        Take the maildrop lock and take the snapshot.

        @raise MaildropLocked: another POP3 session holds it.
        @raise StoreError: the mailbox cannot be read.
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
        """Give the message \\Seen in the store (after a complete RETR)."""

    def delete(number):
        """Mark the message deleted (RFC 1939 DELE)."""

    def reset():
        """Unmark every message (RFC 1939 RSET)."""

    def commit():
        """
        The UPDATE state: remove the marked messages from the store.

        @return: how many messages were removed.
        @raise StoreError: if they could not be (then none is unmarked in the
            store by us beyond what the store reports).
        """

    def close():
        """Release the lock. Idempotent; the session's logout calls it."""


class MaildropLocks:
    """
    Which POP3 session holds which address's maildrop (one per process; every
    POP3 listener shares L{LOCKS}).
    """

    def __init__(self):
        self._holders = {}

    def acquire(self, address, holder):
        """
        @return: C{True} if C{holder} now holds (or already held) C{address}.
        """
        current = self._holders.get(address)
        if current is not None and current is not holder:
            return False
        self._holders[address] = holder
        return True

    def release(self, address, holder):
        """Release C{address} if C{holder} holds it."""
        if self._holders.get(address) is holder:
            del self._holders[address]

    def isLocked(self, address):
        return address in self._holders


LOCKS = MaildropLocks()


def uniqueID(uid, uidValidity):
    """The UIDL unique-id of a message (Dovecot's default format)."""
    return "%08x%08x" % (uid, uidValidity)


@implementer(IMaildrop)
class Maildrop:
    """
    L{IMaildrop} over an L{IAccountStore}'s INBOX.

    @param account: the L{mailstack.storage.interfaces.IAccountStore}.
    @param address: the user's address (the lock's key).
    @param locks: the L{MaildropLocks} registry.
    """

    def __init__(self, account, address, locks=None):
        self.account = account
        self.address = address
        self.locks = LOCKS if locks is None else locks
        self.mailbox = None
        self.uidValidity = None
        self._infos = []       # the snapshot: the store's infos, message n at n - 1
        self._deleted = set()  # numbers marked deleted
        self._locked = False

    def open(self):
        if not self.locks.acquire(self.address, self):
            raise MaildropLocked(self.address)
        self._locked = True
        try:
            mailbox = self.account.getMailbox("INBOX")
            # Not sync(): POP3 must not take \Recent away from IMAP sessions.
            mailbox.noteDelivery()
            infos = mailbox.messages()
        except BaseException:
            self.close()
            raise
        self.mailbox = mailbox
        self.uidValidity = mailbox.uidValidity
        # Only uid, key and size are used: immutable, so the list is the snapshot.
        self._infos = list(infos)

    def close(self):
        if self._locked:
            self._locked = False
            self.locks.release(self.address, self)

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
        entry = self._entry(number)
        info = self._current(number, entry)
        if SEEN not in info.flags:
            self.mailbox.setFlags(entry.uid, info.flags | {SEEN})

    def delete(self, number):
        self._entry(number)
        self._deleted.add(number)

    def reset(self):
        self._deleted.clear()

    def commit(self):
        marked = [self._infos[number - 1] for number in sorted(self._deleted)]
        if not marked:
            return 0
        if self.mailbox.uidValidity != self.uidValidity:
            raise StoreError("the mailbox's UIDs were reset since login; nothing deleted")
        uids = []
        for entry in marked:
            try:
                info = self.mailbox.messageInfo(entry.uid)
            except NoSuchMessage:
                continue  # expunged meanwhile (IMAP): already gone
            if info.key == entry.key:
                uids.append(entry.uid)
        return len(self.mailbox.expunge(uids))


def maildropAdapter(account, address, locks=None):
    """
    The realm's factory for L{IMaildrop} avatars: C{(maildrop, logout)}.
    """
    maildrop = Maildrop(account, address, locks)
    return maildrop, maildrop.close
