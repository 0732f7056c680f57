"""
The IMAP side of the store: the avatar (L{IMAPAccount}, what a login gives the
protocol) and the per-session view of a selected mailbox (L{MailboxView}).

The store has one mailbox object per folder, shared by every session, and
tells each registered listener of every change (including the session's own:
updates are applied idempotently here). A view keeps the session's message
sequence: UIDs in order, as the client knows them. Changes wait in the view
until the server may report them: new messages (EXISTS) at any command's end,
expunges (EXPUNGE) only where RFC 3501 7.4.1 allows, flag changes (FETCH) at
a command's end. So sequence numbers never go stale: a message expunged by
another session keeps its number until this session is told.
"""

import bisect
import contextlib
import weakref

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import Interface, implementer

from mailstack.imap import listing, objectid
from mailstack.imap.grammar.reader import SYSTEM_FLAGS
from mailstack.imap.response import formatFlags, formatSequenceSet, string
from mailstack.storage import mutf7
from mailstack.storage.interfaces import IMailboxListener, NoSuchMessage, StoreError

log = Logger()

DELIMITER = listing.DELIMITER


class IIMAPAccount(Interface):
    """The avatar an IMAP login yields: an L{IMAPAccount}."""


class BadMailboxName(StoreError):
    """A mailbox name on the wire that is not modified UTF-7."""


def decodeName(wire):
    """
    A mailbox name from the wire (modified UTF-7 bytes) -> the store's str.
    C{INBOX} is case-insensitive, also as a first level.

    @raise BadMailboxName: if it is not valid modified UTF-7.
    """
    try:
        name = mutf7.decode(wire.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BadMailboxName("Mailbox name is not valid modified UTF-7")
    head, sep, rest = name.partition(DELIMITER)
    if head.upper() == "INBOX":
        name = "INBOX" + sep + rest
    return name


def encodeName(name):
    """The store's name -> modified UTF-7 bytes for the wire."""
    return mutf7.encode(name).encode("ascii")


@implementer(IIMAPAccount)
class IMAPAccount:
    """
    One user's mailboxes as IMAP sees them.

    @param store: the user's L{mailstack.storage.interfaces.IAccountStore}.
    """

    def __init__(self, store, address):
        self.store = store
        self.address = address

    def openMailbox(self, name):
        """@return: a Deferred firing with the store's L{IMailboxStore} C{name}."""
        return self.store.openMailbox(name)

    def listMailboxes(self, reference, patterns, **options):
        """LIST: see L{listing.listMailboxes}."""
        return listing.listMailboxes(self.store, reference, patterns, **options)

    def listSubscribed(self, reference, pattern):
        """LSUB: C{[(attributes, name)]}."""
        return listing.listSubscribed(self.store, reference, pattern)

    @defer.inlineCallbacks
    def status(self, name, items, view=None):
        """
        STATUS values, C{[(item, number)]} in the order asked.

        @param view: the session's L{MailboxView} if this mailbox is selected
            (its \\Recent messages are known only there).
        @return: a Deferred firing with them.
        """
        mailbox = yield self.store.openMailbox(name)
        if view is None or view.store is not mailbox:
            yield mailbox.sync(claimRecent=False)  # \Recent stays for IMAP sessions
        messages = mailbox.messages()
        values = {
            "MESSAGES": len(messages),
            "RECENT": (view.recentCount() if view is not None and view.store is mailbox
                       else mailbox.unclaimedCount()),
            "UIDNEXT": mailbox.uidNext,
            "UIDVALIDITY": mailbox.uidValidity,
            "UNSEEN": sum(1 for info in messages if "\\Seen" not in info.flags),
            # IMAP4rev2 (RFC 9051 6.3.11)
            "DELETED": sum(1 for info in messages if "\\Deleted" in info.flags),
            "HIGHESTMODSEQ": mailbox.highestModseq,
            # STATUS=SIZE (RFC 8438): the mailbox's RFC822.SIZEs added up.
            "SIZE": sum(info.size for info in messages),
            # OBJECTID (RFC 8474)
            "MAILBOXID": b"(%s)" % (objectid.mailboxId(mailbox).encode("ascii"),),
        }
        return [(item, values[item]) for item in items]


def formatListLine(command, attributes, name, childInfo=(), nameString=None):
    """
    C{* LIST (\\HasNoChildren) "/" "INBOX"} [C{("CHILDINFO" ("SUBSCRIBED"))}].

    @param nameString: the store name -> its wire string (the session's
        L{mailstack.imap.revision.Revision.nameString}); modified UTF-7 if None.
    """
    shown = nameString(name) if nameString is not None else string(encodeName(name))
    line = b"* %s (%s) %s %s" % (
        command.encode("ascii"), " ".join(attributes).encode("ascii"), string(DELIMITER),
        shown)
    if childInfo:
        line += b' ("CHILDINFO" (%s))' % (b" ".join(string(c.encode("ascii")) for c in childInfo),)
    return line


# mailbox store -> the changes it last told its views of, once a read-write
# view synced after them (claiming their new messages as \Recent).
_claimedAfter = weakref.WeakKeyDictionary()


@implementer(IMailboxListener)
class MailboxView:
    """
    One session's view of its selected mailbox.

    @ivar uids: the UIDs of the messages the client knows, in sequence order.
    @ivar recent: UIDs that are \\Recent for this session.
    @param notify: called (no arguments) whenever changes arrive, e.g. to
        push them to an IDLE client.
    """

    # The store's changes last told to this view (just after the store's
    # sync found them), until the view's next sync; and whether that next
    # sync may trust them instead of syncing again (a push they caused: IDLE).
    _news = None
    trustNews = False

    def __init__(self, store, readOnly):
        self.store = store
        self.readOnly = readOnly
        self.notify = None
        self.uids = []
        self.recent = set()
        # IMAP4rev1 shows \Recent and RECENT; an IMAP4rev2 session sets this False.
        self.showRecent = True
        self.initialInfos = None
        self.uidValidity = None
        self._expunged = set()
        self._added = set()
        self._flagsChanged = set()
        self._own = frozenset()
        self._reportedExists = self._reportedRecent = 0

    @classmethod
    def open(cls, store, readOnly, notify=None):
        """
        A view of C{store} as SELECT (or EXAMINE, C{readOnly}) shows it: synced
        (a read-write view claims the new messages as \\Recent), its listener
        registered.

        @return: a Deferred firing with the L{MailboxView}.
        """
        view = cls(store, readOnly)
        store.addListener(view)
        d = view.sync()

        def synced(_):
            view._start(notify)
            return view

        def failed(failure):
            view.close()
            return failure
        return d.addCallbacks(synced, failed)

    def _start(self, notify):
        """Take the snapshot the SELECT response shows."""
        store = self.store
        self.announced = frozenset(store.keywords())
        self.initialInfos = store.messages()
        self.uids = [info.uid for info in self.initialInfos]
        self._added.clear()
        self._expunged.clear()
        self._flagsChanged.clear()
        self.uidValidity = store.uidValidity
        self._reportedExists = len(self.uids)
        self._reportedRecent = self.recentCount()
        self.notify = notify

    def close(self):
        self.store.removeListener(self)
        self.notify = None

    # -- lookups -------------------------------------------------------------

    def __len__(self):
        return len(self.uids)

    def has(self, uid):
        i = bisect.bisect_left(self.uids, uid)
        return i < len(self.uids) and self.uids[i] == uid

    def sequenceNumber(self, uid):
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def isExpunged(self, uid):
        """Whether the message is gone from the store but not yet reported."""
        return uid in self._expunged

    def recentCount(self):
        return sum(1 for uid in self.recent if self.has(uid))

    def flagsOf(self, info):
        """The flags to show for a message: stored ones plus \\Recent."""
        if self.showRecent and info.uid in self.recent:
            return info.flags | {"\\Recent"}
        return info.flags

    def messageInfos(self):
        """C{{uid: IMessageInfo}} for the messages of the view still in the store."""
        return {info.uid: info for info in self.store.messages() if self.has(info.uid)}

    # -- changes -------------------------------------------------------------

    def mailboxChanged(self, mailbox, changes):
        if mailbox is not self.store:
            return
        for uid in changes.expunged:
            if uid in self._added:
                self._added.discard(uid)
            elif self.has(uid):
                self._expunged.add(uid)
        for uid in changes.added:
            if not self.has(uid):
                self._added.add(uid)
        for uid in changes.flagsChanged:
            if uid not in self._own and self.has(uid):
                self._flagsChanged.add(uid)
        if changes.added or changes.expunged or changes.flagsChanged:
            self._news = changes
        if self.notify is not None and (changes.added or changes.expunged or changes.flagsChanged):
            self.notify()

    @contextlib.contextmanager
    def ownChanges(self, uids):
        """Flag changes to C{uids} made inside are this session's own (it reports them)."""
        self._own = frozenset(uids)
        try:
            yield
        finally:
            self._own = frozenset()

    def forgetFlagChange(self, uid):
        self._flagsChanged.discard(uid)

    def sync(self):
        """
        Look at the store for changes. A read-write view claims the messages
        nobody has seen (they are \\Recent here and nowhere else); a read-only
        one only shows them as \\Recent and leaves them to the next read-write
        session (RFC 3501 6.3.2), as Dovecot does. A store error is logged (the
        session goes on with what it knows; the next sync retries).

        @return: a Deferred firing with L{None}.
        """
        news, self._news = self._news, None
        trust, self.trustNews = self.trustNews, False
        if trust and news is not None and (self.readOnly or _claimedAfter.get(self.store) is news):
            # A push for changes the store has just synced and told every
            # view of: no second look at the disk per session (10,000 IDLE
            # sessions after one delivery), unless this read-write view may
            # still have new messages to claim as \Recent.
            if self.readOnly:
                self.recent.update(self.store.unclaimedUIDs())
            return defer.succeed(None)
        d = self.store.sync(claimRecent=not self.readOnly)

        def synced(changes):
            if self.readOnly:
                self.recent.update(self.store.unclaimedUIDs())
            else:
                self.recent.update(changes.recent)
                if news is not None:
                    _claimedAfter[self.store] = news  # claimed what it brought

        def failed(failure):
            failure.trap(StoreError)
            log.warn("{mailbox}: sync failed: {error}", mailbox=self.store,
                     error=failure.value)
        return d.addCallbacks(synced, failed)

    # -- the flag list -------------------------------------------------------

    def flagListLines(self):
        """
        C{* FLAGS} and C{* OK [PERMANENTFLAGS]} (bytes lines without CRLF) for
        the keywords announced so far.
        """
        flags = list(SYSTEM_FLAGS) + sorted(self.announced)
        lines = [b"* FLAGS " + formatFlags(flags)]
        if self.readOnly:
            lines.append(b"* OK [PERMANENTFLAGS ()] No permanent flags in read-only mode")
        else:
            lines.append(b"* OK [PERMANENTFLAGS %s] Flags permitted" % (
                formatFlags(flags + ["\\*"]),))
        return lines

    def owedFlagLines(self, info):
        """
        The flag list, if the message C{info} carries a keyword this session
        was not yet told of (set by another session, APPEND or COPY): RFC 3501
        7.2.6 wants C{* FLAGS} to name it before a FETCH shows it. Else C{[]}.
        """
        announced = self.announced
        unknown = {flag for flag in info.flags
                   if flag[:1] != "\\" and flag not in announced}
        if not unknown:
            return []
        self.announced = announced | unknown | self.store.keywords()
        return self.flagListLines()

    @property
    def validityChanged(self):
        return self.store.uidValidity != self.uidValidity

    def pending(self):
        return bool(self._expunged or self._added or self._flagsChanged)

    def countPending(self):
        """Whether new or expunged messages wait to be told (NOTIFY's MessageNew, MessageExpunge)."""
        return bool(self._expunged or self._added)

    def updates(self, allowExpunge=True, condstore=False, qresync=False, withUID=False):
        """
        The untagged responses owed to the client (bytes lines without CRLF),
        applying them to the view, in Dovecot's order (a client must accept
        any; this one is what clients tested against Dovecot have met): the
        flag list if another session or an APPEND brought a new keyword; flag
        changes (FETCH), numbered as the client knows the messages; expunges;
        then EXISTS and, in IMAP4rev1, RECENT when its count changed (also
        when it went down with an expunge). With C{condstore} flag updates
        carry MODSEQ; with C{qresync} they carry the UID, and expunges are
        reported as C{VANISHED} UIDs instead of EXPUNGE sequence numbers
        (RFC 7162).
        """
        changed, self._flagsChanged = sorted(self._flagsChanged), set()
        infos = []
        for uid in changed:
            number = self.sequenceNumber(uid)
            if number is None or uid in self._expunged:
                continue
            try:
                infos.append((number, self.store.messageInfo(uid)))
            except NoSuchMessage:
                continue
        lines = self._newKeywordLines(info for _, info in infos)
        for number, info in infos:
            items = [b"FLAGS " + formatFlags(self.flagsOf(info))]
            if qresync or withUID:  # withUID: IMAP4rev2 (RFC 9051 7.5.2)
                items.insert(0, b"UID %d" % (info.uid,))
            if condstore:
                items.append(b"MODSEQ (%d)" % (info.modseq,))
            lines.append(b"* %d FETCH (%s)" % (number, b" ".join(items)))
        if allowExpunge and self._expunged:
            gone = self._expunged
            indices = [i for i, uid in enumerate(self.uids) if uid in gone]
            if qresync:
                if indices:
                    lines.append(b"* VANISHED " + formatSequenceSet(
                        [self.uids[i] for i in indices]))
            else:
                for i in reversed(indices):
                    lines.append(b"* %d EXPUNGE" % (i + 1,))
            self.uids = [uid for uid in self.uids if uid not in gone]
            self.recent -= gone
            self._expunged = set()
            self._reportedExists = len(self.uids)
        if self._added:
            added = sorted(self._added)
            if not self.uids or added[0] > self.uids[-1]:
                self.uids.extend(added)
                self._added = set()
        if len(self.uids) != self._reportedExists:
            lines.append(b"* %d EXISTS" % (len(self.uids),))
            self._reportedExists = len(self.uids)
        recent = self.recentCount()
        if self.showRecent and recent != self._reportedRecent:
            lines.append(b"* %d RECENT" % (recent,))
        self._reportedRecent = recent
        return lines

    def _newKeywordLines(self, changed):
        """
        The flag list, if a message added, or changed by another session
        (C{changed}: their infos), carries a keyword this session was not
        told of: sent before anything else, as Dovecot sends it at every
        command's end (RFC 3501 7.2.6: the client learns of the keyword
        before a FETCH shows it). Else C{[]}.
        """
        announced = self.announced
        flagSets = [info.flags for info in changed]
        for uid in self._added:
            try:
                flagSets.append(self.store.messageInfo(uid).flags)
            except NoSuchMessage:
                continue
        unknown = {flag for flags in flagSets for flag in flags
                   if flag[:1] != "\\" and flag not in announced}
        if not unknown:
            return []
        self.announced = announced | unknown | self.store.keywords()
        return self.flagListLines()

    def noteReported(self):
        """The current EXISTS/RECENT counts have been sent (SELECT)."""
        self.initialInfos = None
        self._reportedExists = len(self.uids)
        self._reportedRecent = self.recentCount()


def statusLine(name, values, nameString=None):
    shown = nameString(name) if nameString is not None else string(encodeName(name))
    return b"* STATUS %s (%s)" % (
        shown,
        b" ".join(b"%s %s" % (item.encode("ascii"),
                              value if isinstance(value, bytes) else b"%d" % (value,))
                  for item, value in values))


def avatarFactory(account, avatarId):
    """
    The realm adapter: an L{IMAPAccount} over the user's store account. A new
    account gets its special-use folders (Drafts, Sent, Trash, Junk, Archive),
    subscribed, at its first IMAP login.
    """
    def created(names):
        if names:
            log.info("{address}: created {names}", address=avatarId, names=", ".join(names))

    def failed(failure):
        failure.trap(StoreError, OSError)
        log.warn("{address}: could not create the default folders: {error}",
                 address=avatarId, error=failure.value)
    d = account.createDefaultMailboxes(listing.DEFAULT_MAILBOXES)
    d.addCallbacks(created, failed)
    return d.addCallback(lambda _: (IMAPAccount(account, avatarId), None))

