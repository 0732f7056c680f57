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
 - Asynchronous where it matters. Every operation that may touch the disk or
   the network, wait for a lock or fsync returns a L{Deferred}: opening a
   mailbox, syncing it, changing flags, expunging, appending, copying,
   delivering, creating, deleting and renaming mailboxes, subscriptions and
   special uses, and the POP3 maildrop lock. A store runs that work wherever it
   likes (the Maildir store: file writes and fsyncs in worker threads, the
   try-once locks on the reactor; the memory store: at once), so callers never
   assume a Deferred has fired. What the last sync found is kept in memory
   and answered synchronously: message lists and infos, UIDNEXT, keywords,
   \\Recent bookkeeping, and the account's mailbox list, subscriptions and
   special uses (cheap reads). Every method is called from the reactor
   thread; Deferreds fire there.
 - Failures. Deferreds fail with a L{StoreError} subclass for what the user
   did or what another program holds (L{MailboxInUse}), L{NoSpace} for a full
   disk, L{StoreUnavailable} when the store's back end cannot be reached
   (temporary), and C{OSError} only for a broken environment.
 - Durability. A Deferred of a write fires only once the change is durable
   (Maildir: file fsynced, renamed into place, directory fsynced); once durable
   it does not fail for a later step (telling sessions, assigning a UID that
   another program's lock delays): the store logs that and answers success.
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


class StoreUnavailable(StoreError):
    """
    The store's back end cannot be reached just now (a database gone away):
    nothing was changed; temporary, try again later.
    """


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
    saveDate = Attribute(
        "float or None: POSIX time the message was saved into this mailbox (RFC 8514"
        " SAVEDATE: delivery, APPEND, COPY or MOVE; kept by flag changes); None when the"
        " store cannot tell.")


class Changes(object):
    """
    What a L{IMailboxStore.sync} found changed since the previous sync, in UID terms.

    @ivar added: UIDs of messages new to this mailbox object, ascending.
    @ivar expunged: UIDs of messages that disappeared, ascending.
    @ivar flagsChanged: UIDs whose flags changed (and that still exist), ascending.
    @ivar recent: UIDs that are \\Recent for the caller (given to exactly one
        session of all that ever sync this mailbox). They need not be among
        C{added}: listeners may have been told of them by an earlier change.
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
    Called in the reactor thread after the change is durable.
    """

    def mailboxChanged(mailbox, changes):
        """
        @param mailbox: the L{IMailboxStore} that changed.
        @param changes: a L{Changes}; its C{recent} is always empty here (\\Recent
            goes only to the session whose own sync found the message).
        """


class IAccountListener(Interface):
    """
    Told of changes to one account's list of mailboxes and subscriptions
    (IMAP NOTIFY, RFC 5465: MailboxName, SubscriptionChange) made through this
    process's store, in the reactor thread once they are durable. Changes to
    messages come through each mailbox's L{IMailboxListener}s.
    """

    def mailboxesChanged(changes):
        """
        @param changes: a list of L{mailstack.storage.accountevents.MailboxesChange}
            in the order they happened (a rename of a mailbox with children
            names each; a CREATE that made parents names them first).
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

    def sync(claimRecent=True):
        """
        Bring the in-memory view in line with the store (new deliveries, changes
        by other programs or processes, removals), assign UIDs to new messages
        and persist them. Notifies the listeners of any change found. Cheap when
        nothing changed.

        A lock another program holds is not waited for: the messages that have
        UIDs are kept and the new ones wait for a later sync.

        @param claimRecent: C{True} for a read-write IMAP session: the new
            messages nobody claimed become \\Recent for this caller only (its
            C{Changes.recent}). C{False} for readers that must leave \\Recent
            to IMAP (POP3, STATUS, EXAMINE, a deliverer telling sessions).
        @return: a L{Deferred} firing with L{Changes}.
        """

    def messages():
        """
        @return: a list of L{IMessageInfo} in ascending UID order, as of the last sync.
        """

    def messageInfo(uid):
        """
        @return: the L{IMessageInfo} for C{uid}, as of the last sync.
        @raise NoSuchMessage: if it is not there.
        """

    def openMessage(uid):
        """
        Open a message for reading, streaming it.

        @return: a binary file-like object (C{read(n)}, C{readline()}, C{seek},
            C{tell}, C{close}, context manager) yielding the wire (CRLF) form,
            exactly L{IMessageInfo.size} octets in all.
        @raise NoSuchMessage: if it is not there.
        """

    def keywords():
        """
        @return: the set of keywords (str) this mailbox can store.
        """

    def unclaimedUIDs():
        """
        The UIDs (ascending) no read-write session has claimed as \\Recent yet,
        as of the last sync. A read-only (EXAMINE) session shows these as
        \\Recent without claiming them (RFC 3501 6.3.2: EXAMINE must not make
        messages lose \\Recent).
        """

    def unclaimedCount():
        """
        C{len(unclaimedUIDs())}: IMAP STATUS RECENT of a mailbox the asking
        session has not selected (what Dovecot reports).
        """

    def vanishedSince(modseq):
        """
        UIDs expunged by changes with a mod-sequence above C{modseq}, ascending,
        for QRESYNC's VANISHED (EARLIER). May include UIDs expunged earlier or
        never used (when the history does not reach back that far); never
        leaves out one expunged since.
        """

    def append(source, flags=(), internalDate=None):
        """
        Store a new message durably (IMAP APPEND) and give it its UID. It is not
        claimed as \\Recent by anybody: the next read-write session to L{sync}
        claims it, whatever its flags. Listeners are told.

        @param source: C{bytes}, or a binary file-like object read to its end
            (possibly in another thread: the caller leaves it alone until the
            Deferred fires). Line endings are normalised to CRLF.
        @param flags: flags to store with it (e.g. C{{"\\\\Seen"}}).
        @param internalDate: POSIX time for INTERNALDATE, or L{None} for now.
        @return: a L{Deferred} firing with the new UID once the message is
            durable, or with L{None} when it is durable but its UID could not be
            assigned yet (another program holds a lock; the next sync assigns
            it). Fails with L{NoSuchMailbox} if the mailbox was deleted, with
            L{NoSpace} when the disk is full (nothing left behind).
        """

    def appendMany(messages):
        """
        Store several new messages at once (IMAP MULTIAPPEND, RFC 3502), all
        or nothing: each is written durably, then all are placed and given
        consecutive UIDs together; if any fails, none of them remains. Like
        L{append} otherwise (not claimed as \\Recent, listeners told).

        @param messages: a list of C{(source, flags, internalDate)} as
            L{append} takes them (sources left alone until the Deferred fires).
        @return: a L{Deferred} firing with the list of their UIDs in order once
            all are durable, or with L{None} when they are durable but their
            UIDs could not be assigned yet (as L{append}). Fails as L{append},
            with nothing left behind.
        """

    def setFlags(uid, flags):
        """
        Replace the flags of a message (system flags and keywords), persist them
        and notify listeners.

        @return: a L{Deferred} firing with the new L{IMessageInfo}; fails with
            L{NoSuchMessage} if it is not there, L{MailboxInUse} when a new
            keyword needs a lock another program holds, L{StoreError} (its
            text the reason) for a flag the store cannot keep: an unknown
            system flag, or a keyword beyond the store's limit (the Maildir
            names at most 26 per mailbox, as Dovecot).
        """

    def expunge(uids):
        """
        Remove these messages for good. Missing UIDs are ignored. Notifies listeners.

        @return: a L{Deferred} firing with the list of UIDs actually removed,
            ascending.
        """

    def copyTo(uids, destination):
        """
        Copy messages (with flags and internal dates) into another mailbox of the
        same store, durably and all or nothing; the copies get their UIDs and the
        destination's listeners are told. Messages expunged meanwhile are
        skipped. (MOVE is this followed by L{expunge} of the sources.)

        @param destination: an L{IMailboxStore} of the same store.
        @return: a L{Deferred} firing with C{[(sourceUID, destinationUID)]} in
            source UID order; C{destinationUID} is None when the copy is durable
            but its UID could not be assigned yet. Fails with L{NoSuchMailbox}
            if the destination was deleted, L{NoSpace} when the disk is full.
        """

    def addListener(listener):
        """
        Register an L{IMailboxListener}.
        """

    def removeListener(listener):
        """
        Unregister an L{IMailboxListener}; unknown listeners are ignored.
        """


class IMaildropLock(Interface):
    """
    Exclusive use of an account's INBOX as a POP3 maildrop (RFC 1939 section 8),
    held by one session of all processes sharing the store.
    """

    def release():
        """Give the lock up. Idempotent."""


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

    def openMailbox(name):
        """
        @return: a L{Deferred} firing with the shared L{IMailboxStore} for
            C{name}, synced at least once in this process; fails with
            L{NoSuchMailbox} if it does not exist, L{InvalidMailboxName} if the
            name is not acceptable, L{MailboxInUse} if it has never been read
            and another program holds the lock its first reading needs.
        """

    def createMailbox(name):
        """
        Create a mailbox (and any missing parents).

        @return: a L{Deferred}; fails with L{MailboxExists} if it exists
            already, L{InvalidMailboxName} if the name is not acceptable.
        """

    def deleteMailbox(name):
        """
        Delete a mailbox and its messages.

        @return: a L{Deferred}; fails with L{NoSuchMailbox} if it does not
            exist, L{MailboxNotEmpty} for INBOX or a mailbox with children.
        """

    def renameMailbox(oldName, newName):
        """
        Rename a mailbox and its children. Renaming INBOX moves its messages into a
        new mailbox and leaves INBOX empty (RFC 3501 section 6.3.5).

        @return: a L{Deferred}; fails with L{NoSuchMailbox} if C{oldName} does
            not exist, L{MailboxExists} if C{newName} does,
            L{InvalidMailboxName} if a name is not acceptable.
        """

    def subscriptions():
        """
        @return: the sorted list of subscribed names (they need not exist).
        """

    def subscribe(name):
        """Add C{name} to the subscriptions. @return: a L{Deferred}."""

    def unsubscribe(name):
        """
        Remove C{name} from the subscriptions; unknown names are ignored.
        @return: a L{Deferred}.
        """

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

        @return: a L{Deferred}; fails with L{NoSuchMailbox} if it does not exist.
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
        @return: a L{Deferred} firing with the names created now (empty if it
            had been done before).
        """

    def lockMaildrop():
        """
        Take the account's POP3 maildrop lock, which excludes the other POP3
        sessions of this process and of every other process sharing the store.

        @return: a L{Deferred} firing with an L{IMaildropLock}; fails at once
            with L{MailboxInUse} while another session holds it.
        """

    def addAccountListener(listener):
        """
        Register an L{IAccountListener}: told of every mailbox created,
        deleted or renamed and every subscription changed from now on.
        """

    def removeAccountListener(listener):
        """Unregister an L{IAccountListener}; unknown listeners are ignored."""


class IMailStore(Interface):
    """
    The whole store: every user's account.
    """

    def account(address):
        """
        @param address: the normalised address (lower case), e.g. 'demo@lab.test'.
        @return: the L{IAccountStore} (cheap: its INBOX exists once it is used).
        """

    def deliver(addresses, source, together=None):
        """
        Deliver one message to the INBOX of each address (SMTP, bounces): all or
        nothing, durable before the Deferred fires, not claimed as \\Recent by
        anybody; sessions with an INBOX open are told (a failure to tell them is
        logged: the next sync finds the message).

        @param addresses: normalised addresses, each given once.
        @param source: C{bytes}, or a binary file-like object, read from its
            start once per address (possibly in another thread: the caller
            leaves it alone until the Deferred fires).
        @param together: L{None}, or a callable returning a Deferred for
            another durable write that must stand or fall with this delivery
            (SMTP's relay queue): called once every copy is durable and before
            anybody is told; if its Deferred fails, the copies are taken back
            and C{deliver} fails with that failure.
        @return: a L{Deferred} firing with L{None}; fails with L{NoSpace} when
            the disk is full, another L{StoreError} or C{OSError} otherwise,
            and in every failure no copy is left behind.
        """


class IStoreBackend(Interface):
    """
    A store the config may name (C{[storage] backend}): registered in
    L{mailstack.storage.backends} by name, or by a third-party package through
    the C{mailstack.stores} entry point group.
    """

    name = Attribute("str: the name C{[storage] backend} gives.")

    def open(config, reactor, watcher):
        """
        @param config: the server's L{mailstack.config.Config}.
        @param reactor: the reactor the service runs on (its thread pool, clock).
        @param watcher: a L{mailstack.storage.watch.MailboxWatcher} or L{None}.
        @return: the L{IMailStore}.
        @raise ValueError: a one-line reason naming the config key at fault.
        """
