"""
The store contract: what protocols (through their adapters) may ask of mail storage.

Protocol code depends on these interfaces only, never on the Maildir classes, so
another store (SQL, object storage, a test double) can plug in behind the realm.

Conventions shared by every method below:

 - Mailbox names are Python ``str`` in Unicode, hierarchy separator ``/``, e.g.
   ``"Lists/Python"``; ``INBOX`` is case-insensitive and always exists. The IMAP
   layer converts to and from modified UTF-7 on the wire; the store converts to its
   own on-disk form.
 - Messages are identified by UID (an ``int`` > 0, strictly increasing per mailbox
   for a given UIDVALIDITY).
 - Message bytes are always presented in wire form: lines end in CRLF. Sizes are
   sizes of that wire form (IMAP RFC822.SIZE, POP3 octet counts).
 - System flags are the IMAP names ``\\Seen \\Answered \\Flagged \\Deleted \\Draft``;
   any other flag is a keyword. ``\\Recent`` is never stored: it is session state
   reported through L{IMailboxStore.sync}.
 - Methods are synchronous and may touch the disk. Delivery (L{IMailboxStore.deliver}
   and L{IMailboxStore.placeMessage}) and copying (L{IMailboxStore.placeCopies})
   touch only files, hold no in-memory state, and are safe to run in a thread
   (callers use C{deferToThread} so fsync never stalls the reactor). Every other method must be called from the reactor thread.
"""

import errno

from zope.interface import Attribute, Interface


class StoreError(Exception):
    """
    Base of every error the store raises on purpose. C{str(error)} is a short
    human-readable reason fit to show a user (no paths from outside the store).
    """


class MailboxInUse(StoreError):
    """
    Another program holds a lock the operation needs (Dovecot's
    C{dovecot-uidlist.lock}): nothing was changed; try again later (IMAP
    answers C{NO [INUSE]}, RFC 5530). The store does not wait for such a lock
    on the reactor thread.
    """


class InvalidMailboxName(StoreError):
    """The name is not acceptable (escapes the user's directory, bad characters...)."""


class NoSuchMailbox(StoreError):
    """The named mailbox does not exist."""


class MailboxExists(StoreError):
    """A mailbox with that name already exists."""


class MailboxNotEmpty(StoreError):
    """The operation needs a mailbox without children (or refuses INBOX)."""


class NoSuchMessage(StoreError):
    """No message with that UID is in the mailbox (it may have been expunged)."""


class NoSpace(StoreError):
    """
    The disk (or the user's disk quota) is full: the change was not made and
    nothing of it was left behind. Temporary: retrying later may work.
    """


# The errno values that mean "no space": ENOSPC, and EDQUOT (a disk quota).
NO_SPACE_ERRNOS = frozenset(
    e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)


def isNoSpace(error):
    """Whether C{error} (a L{StoreError} or an C{OSError}) says the disk is full."""
    return isinstance(error, NoSpace) or (
        isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS)


class IMessageInfo(Interface):
    """
    Immutable metadata of one message, cheap to obtain (no message body read).
    """

    uid = Attribute("int: the message's UID.")
    flags = Attribute("frozenset of str: system flags and keywords, never \\Recent.")
    size = Attribute("int: octets of the message in wire (CRLF) form.")
    internalDate = Attribute("float: POSIX time the message arrived (IMAP INTERNALDATE).")
    key = Attribute("str: the store's stable name of the message (Maildir base name).")
    modseq = Attribute(
        "int: the message's mod-sequence (RFC 7162): raised whenever it is added or its"
        " flags change, by anybody; 0 from a store that keeps none.")


class Changes(object):
    """
    What a L{IMailboxStore.sync} found changed since the previous sync, in UID terms.

    @ivar added: UIDs of messages new to this mailbox object, ascending.
    @ivar expunged: UIDs of messages that disappeared, ascending.
    @ivar flagsChanged: UIDs whose flags changed (and that still exist), ascending.
    @ivar recent: UIDs among C{added} that are \\Recent for the caller (given to
        exactly one session of all that ever sync this mailbox).
    """

    def __init__(self, added=(), expunged=(), flagsChanged=(), recent=()):
        self.added = sorted(added)
        self.expunged = sorted(expunged)
        self.flagsChanged = sorted(flagsChanged)
        self.recent = sorted(recent)

    def __bool__(self):
        return bool(self.added or self.expunged or self.flagsChanged)

    def __repr__(self):
        return "Changes(added=%r, expunged=%r, flagsChanged=%r, recent=%r)" % (
            self.added, self.expunged, self.flagsChanged, self.recent)

    def __eq__(self, other):
        if not isinstance(other, Changes):
            return NotImplemented
        return (self.added, self.expunged, self.flagsChanged, self.recent) == (
            other.added, other.expunged, other.flagsChanged, other.recent)


class IMailboxListener(Interface):
    """
    Told of changes to a mailbox made by anybody (this process or another program).
    Called in the reactor thread after the change is on disk.
    """

    def mailboxChanged(mailbox, changes):
        """
        @param mailbox: the L{IMailboxStore} that changed.
        @param changes: a L{Changes}; its C{recent} is always empty here (\\Recent
            goes only to the session whose own sync found the message).
        """


class IMailboxStore(Interface):
    """
    One mailbox (folder). There is one such object per mailbox per process, shared
    by every session that opens it, so that changes made by one session reach the
    others through L{addListener}.
    """

    name = Attribute("str: the mailbox name (Unicode, '/' separated).")
    uidValidity = Attribute("int: UIDVALIDITY; changes only when UIDs cannot be kept.")
    uidNext = Attribute("int: the UID the next message will get.")
    highestModseq = Attribute(
        "int: the largest mod-sequence of any change (addition, flag change, expunge);"
        " never decreases for a given uidValidity, also across restarts (RFC 7162"
        " HIGHESTMODSEQ).")

    def sync():
        """
        Bring the in-memory view in line with the disk (new deliveries, renames by
        other programs, removals), assign UIDs to new messages and persist them.

        Also notifies the listeners (other than through the returned value) of any
        change found. Cheap when nothing changed on disk.

        @return: L{Changes}, with C{recent} filled in for this caller.
        """

    def messages():
        """
        @return: a list of L{IMessageInfo} in ascending UID order, as of the last sync.
        """

    def messageInfo(uid):
        """
        @return: the L{IMessageInfo} for C{uid}.
        @raise NoSuchMessage: if it is not there.
        """

    def openMessage(uid):
        """
        Open a message for reading, streaming from the file.

        @return: a binary file-like object (C{read(n)}, C{readline()}, C{seek},
            C{tell}, C{close}, context manager) yielding the wire (CRLF) form,
            exactly L{IMessageInfo.size} octets in all.
        @raise NoSuchMessage: if it is not there.
        """

    def deliver(source, flags=(), internalDate=None):
        """
        Store a new message durably: write to a temporary file, fsync, rename into
        place, fsync the directory. Thread-safe; touches no in-memory state. The
        message gets its UID at the next L{sync}.

        @param source: C{bytes}, or a binary file-like object read to its end. Line
            endings are normalised to CRLF.
        @param flags: flags to store with it (e.g. C{{"\\\\Seen"}} for IMAP APPEND).
        @param internalDate: POSIX time for INTERNALDATE, or L{None} for now.
        @return: the store key (C{str}) of the new message.
        """

    def append(source, flags=(), internalDate=None):
        """
        L{placeMessage} then L{adopt}, both in the calling thread; for callers
        that may block (tests, tools). Servers use the two steps instead.

        @return: the new message's UID.
        """

    def placeMessage(source, flags=(), internalDate=None):
        """
        First half of an IMAP APPEND: store the message durably exactly as
        L{deliver} does (temporary file, fsync, rename into place, fsync the
        directory). Thread-safe; touches no in-memory state; the message has no
        UID yet. Run it in a worker thread, then call L{adopt} in the reactor
        thread with the result.

        @return: an opaque "placed" token for L{adopt}.
        @raise NoSuchMailbox: if the mailbox was deleted.
        """

    def adopt(placed):
        """
        Second half of an IMAP APPEND, in the reactor thread: give the message
        placed by L{placeMessage} its UID (a sync) and notify listeners. The
        message is not claimed as \\Recent by anybody (as with L{noteDelivery}):
        the next read-write session to L{sync} claims it, whatever its flags.

        @return: the new message's UID.
        @raise StoreError: if the message vanished before it got a UID.
        """

    def noteDelivery(wait=True):
        """
        Tell this process's listeners that new mail may have arrived (after
        L{deliver} ran in a thread): performs a L{sync} in the reactor thread and
        notifies listeners of added messages, without claiming \\Recent for any
        session. The new messages stay unclaimed, so the next L{sync} called by a
        session claims them: that caller's C{Changes.recent} then lists them even
        though listeners were already told they were added.

        @param wait: nothing waits for a lock another program holds. If true,
            such a lock leaves the new files without UIDs until a later sync
            (like L{sync}: for readers, POP3 login, STATUS, EXAMINE); if false,
            fail at once with L{MailboxInUse}: for callers that retry later
            (after a delivery, the watcher).
        @return: the L{Changes} found (C{recent} always empty).
        """

    def hasListeners():
        """
        C{True} while some session listens to this mailbox. A deliverer with
        nobody to tell skips L{noteDelivery}: the next session's own sync finds
        the message, and a rescan per delivery would grow with the mailbox.
        """

    def vanishedSince(modseq):
        """
        UIDs expunged by changes with a mod-sequence above C{modseq}, ascending,
        for QRESYNC's VANISHED (EARLIER). May include UIDs expunged earlier or
        never used (when the history does not reach back that far); never
        leaves out one expunged since.
        """

    def unclaimedUIDs():
        """
        The UIDs (ascending) no read-write session has claimed as \\Recent yet,
        as of the last sync (Maildir: the files still in new/, and messages this
        process appended or copied that no session has claimed). A read-only
        (EXAMINE) session shows these as \\Recent without claiming them (RFC
        3501 6.3.2: EXAMINE must not make messages lose \\Recent).
        """

    def unclaimedCount():
        """
        C{len(unclaimedUIDs())}: IMAP STATUS RECENT of a mailbox the asking
        session has not selected (what Dovecot reports).
        """

    def setFlags(uid, flags):
        """
        Replace the flags of a message (system flags and keywords) and persist them.
        Notifies listeners.

        @return: the new L{IMessageInfo}.
        @raise NoSuchMessage: if it is not there.
        """

    def expunge(uids):
        """
        Remove these messages for good. Missing UIDs are ignored. Notifies listeners.

        @return: the list of UIDs actually removed, ascending.
        """

    def copyTo(uids, destination):
        """
        Copy messages (with flags and internal dates) into another mailbox of the
        same store; the destination is synced so the copies have UIDs. All or
        nothing. L{prepareCopy}, L{placeCopies} and L{adoptCopies} in the calling
        thread, for callers that may block (tests, tools); servers use the steps.

        @param destination: an L{IMailboxStore}.
        @return: a list of C{(sourceUID, destinationUID)} pairs, in source UID order;
            C{destinationUID} is None when the copy is on disk but its UID could
            not be assigned yet (the destination's next sync assigns it).
        """

    def prepareCopy(uids, destination):
        """
        First step of a copy, in the reactor thread: note what to copy (the
        files of C{uids}, their flags) from memory, touching no file.

        @param destination: an L{IMailboxStore} of the same store.
        @return: an opaque plan for L{placeCopies}.
        @raise NoSuchMailbox: if the destination was deleted.
        """

    def placeCopies(plan):
        """
        Second step, in a worker thread: place the copies durably (link or
        copy, fsync, rename into place, fsync the directories). Touches files
        only. All or nothing: on a failure, what was placed is removed. The
        copies have no UIDs yet; messages expunged since the plan are skipped.

        @return: an opaque token for L{adoptCopies}.
        @raise NoSpace: if the disk is full (nothing is left behind).
        @raise NoSuchMailbox: if the destination was deleted.
        """

    def adoptCopies(placed):
        """
        Third step, in the reactor thread: give the copies their UIDs in the
        destination (a sync) and notify its listeners.

        @return: as L{copyTo}.
        @raise NoSuchMailbox: if the destination was deleted meanwhile (the
            copies went with it).
        """

    def keywords():
        """
        @return: the set of keywords (str) this mailbox can store.
        """

    def addListener(listener):
        """
        Register an L{IMailboxListener}.
        """

    def removeListener(listener):
        """
        Unregister an L{IMailboxListener}; unknown listeners are ignored.
        """


class IAccountStore(Interface):
    """
    All mailboxes of one user.
    """

    address = Attribute("str: the user's address, e.g. 'demo@lab.test'.")

    def listMailboxes():
        """
        @return: the sorted list of every mailbox name (str), INBOX included.
        """

    def hasMailbox(name):
        """
        @return: C{True} if the mailbox exists.
        """

    def getMailbox(name):
        """
        @return: the shared L{IMailboxStore} for C{name}.
        @raise NoSuchMailbox: if it does not exist.
        @raise InvalidMailboxName: if the name is not acceptable.
        """

    def createMailbox(name):
        """
        Create a mailbox (and any missing parents).

        @raise MailboxExists: if it exists already.
        @raise InvalidMailboxName: if the name is not acceptable.
        """

    def deleteMailbox(name):
        """
        Delete a mailbox and its messages.

        @raise NoSuchMailbox: if it does not exist.
        @raise MailboxNotEmpty: for INBOX, or a mailbox with child mailboxes.
        """

    def renameMailbox(oldName, newName):
        """
        Rename a mailbox and its children. Renaming INBOX moves its messages into a
        new mailbox and leaves INBOX empty (RFC 3501 section 6.3.5).

        @raise NoSuchMailbox: if C{oldName} does not exist.
        @raise MailboxExists: if C{newName} exists.
        @raise InvalidMailboxName: if a name is not acceptable.
        """

    def subscriptions():
        """
        @return: the sorted list of subscribed names (they need not exist).
        """

    def subscribe(name):
        """Add C{name} to the subscriptions."""

    def unsubscribe(name):
        """Remove C{name} from the subscriptions; unknown names are ignored."""

    def specialUse():
        """
        @return: C{{name: (attribute, ...)}}: the RFC 6154 special uses of
            mailboxes (C{"\\Sent"}, C{"\\Trash"}...), as recorded for this account.
        """

    def setSpecialUse(name, attributes):
        """
        Record the special-use attributes of an existing mailbox (replacing
        any it had; empty to remove them). Renaming a mailbox keeps them,
        deleting it drops them.

        @raise NoSuchMailbox: if it does not exist.
        """

    def createDefaultMailboxes(defaults):
        """
        Set up a new account once: the first time this is called for an
        account, if the account is new (no folders, no subscriptions yet),
        create each mailbox of C{defaults} and subscribe it; in any case record
        the special use of those that exist. Later calls do nothing, so a user
        may delete or rename them. An account another server (Dovecot) has
        been using keeps its folders as they are.

        @param defaults: C{[(name, attribute), ...]}, e.g. C{[("Sent", "\\Sent")]}.
        @return: the names created now (empty if it had been done before).
        """


class IMailStore(Interface):
    """
    The whole store: every user's account.
    """

    def account(address):
        """
        @param address: the normalised address (lower case), e.g. 'demo@lab.test'.
        @return: the L{IAccountStore}, created on disk (with INBOX) if needed.
        """
