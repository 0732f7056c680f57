"""
Maildir++ storage, compatible with Dovecot: folders as C{.A.B} directories named in
modified UTF-7, UIDs in C{dovecot-uidlist} (version 3) updated under its dotlock,
flags in file names, keywords in C{dovecot-keywords}.

The files are the truth; everything held in memory is rebuilt from them by
L{MaildirMailbox.sync}. See docs/storage.md for the on-disk layout and the rules.
This module holds the mailbox object (the account and store objects, which
open mailboxes, are in L{mailstack.storage.account}; this module does not
import that one); the file formats and
conventions they use are in L{mailstack.storage.crlf}, L{dotlock}, L{files},
L{flags}, L{names}, L{subscriptions}, L{specialuse}, L{modseq} and L{uidlist}.
"""

import contextlib
import dataclasses
import errno
import io
import os
import shutil
import time

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mailstack.storage import crlf
from mailstack.storage.crlf import CHUNK_SIZE
from mailstack.storage.dotlock import DotLock
from mailstack.storage.files import (
    TMP_MAX_AGE, commitFile, createTemporary, fsyncDirectory, listMessages,
    messageBase, placement, removeQuietly, removeStale, sizeFields, splitFilename, stamp,
    uniqueName)
from mailstack.storage.flags import (
    FLAG_LETTERS, KEYWORDS, MAX_KEYWORDS, addKeywords, flagsFromLetters, isExpressible,
    keywordLetters, missingKeywords, readKeywords, splitFlags)
from mailstack.storage.index import INDEX_FILE, MailboxIndex
from mailstack.storage.interfaces import (
    NO_SPACE_ERRNOS, Changes, IMailboxStore, IMessageInfo, MailboxInUse, NoSpace,
    NoSuchMailbox, NoSuchMessage, StoreError)
from mailstack.storage.keep import PlacedRecent
from mailstack.storage.modseq import MODSEQ_FILE, ModseqState
from mailstack.storage.subscriptions import SUBSCRIPTIONS
from mailstack.storage.uidlist import (
    UIDLIST, appendRecords, loadForUpdate, newUIDValidity)

__all__ = [
    "CHUNK_SIZE", "KEYWORDS", "MAX_KEYWORDS", "SUBSCRIPTIONS", "TMP_MAX_AGE", "UIDLIST",
    "MaildirMailbox", "MessageInfo"]

log = Logger()

NO_SPACE_TEXT = "Not enough disk space"  # Dovecot's MAIL_ERRSTR_NO_SPACE
# Rescans of a mailbox whose stamps may hide a change (_mayHideChanges) are
# at least this many seconds apart.
RESCAN_GAP = 0.005


def _noFollow(path, flags):
    """An C{open()} opener that refuses a symbolic link (C{ELOOP})."""
    return os.open(path, flags | os.O_NOFOLLOW)


@contextlib.contextmanager
def noSpaceAsStoreError():
    """Turn an C{OSError} meaning "disk full" (ENOSPC, EDQUOT) into L{NoSpace}."""
    try:
        yield
    except OSError as e:
        if e.errno in NO_SPACE_ERRNOS:
            raise NoSpace(NO_SPACE_TEXT) from e
        raise


@implementer(IMessageInfo)
@dataclasses.dataclass(frozen=True)
class MessageInfo:
    """Metadata of one message (see L{IMessageInfo})."""
    uid: int
    flags: frozenset
    size: int
    internalDate: float
    key: str
    modseq: int = 0
    saveDate: float | None = None


def saveDate(base, fallback=None):
    """
    When the message file C{base} was saved into its mailbox: the seconds
    its Maildir base name starts with, which every Maildir writer (mailstack,
    Dovecot, delivery agents) sets to the time it wrote the file there, copies
    included, and which outlives flag renames and restarts; else C{fallback}.
    """
    head = base.split(".", 1)[0]
    return float(head) if head.isdigit() else fallback


def _measure(path, base, extensions, st=None):
    """
    C{(diskSize, wireSize, mtime)} of a message file: the sizes from its name
    when it carries them (C{S=}, C{W=}), else from the file. Touches files only.
    C{st}: the file's C{stat()} if taken already.
    """
    diskSize, wireSize = sizeFields(base)
    if wireSize is None:
        wireSize = next((int(f[1:]) for f in extensions
                         if f[:1] == "W" and f[1:].isdigit()), None)
    st = st or os.stat(path, follow_symlinks=False)
    return (diskSize if diskSize is not None else st.st_size,
            wireSize if wireSize is not None else crlf.wireSize(path), st.st_mtime)


@dataclasses.dataclass(frozen=True)
class _CopyItem:
    """One message to copy, as the source knew it when the copy was asked for."""
    uid: int
    base: str
    subdir: str
    filename: str
    extensions: tuple
    flags: frozenset


@dataclasses.dataclass(frozen=True)
class _CopyPlan:
    """What L{MaildirMailbox.prepareCopy} hands to L{MaildirMailbox.placeCopies}."""
    destination: "MaildirMailbox"
    items: list


@dataclasses.dataclass(frozen=True)
class _PlacedCopies:
    """What L{MaildirMailbox.placeCopies} hands to L{MaildirMailbox.adoptCopies}."""
    destination: "MaildirMailbox"
    copied: list  # (source UID, base name of the copy)


class _Written:
    """
    A group of messages written to tmp/ and fsynced (one APPEND, or a
    MULTIAPPEND's all), waiting to be placed and numbered by
    L{MaildirMailbox._commitWritten}.

    @ivar written: C{(temporary path, path to rename it to, base name)} each.
    @ivar strict: all or nothing (see L{MaildirMailbox._commitLater}).
    @ivar placed: the paths renamed into new/ or cur/ so far.
    @ivar outcome: None while pending; then the base names, or a L{Failure}.
    @ivar done: fired with the outcome in the reactor thread.
    """

    def __init__(self, written, strict):
        self.written = written
        self.strict = strict
        self.placed = []
        self.outcome = None
        self.done = defer.Deferred()

    def rename(self, mailbox):
        """Rename every file into place; on a failure the group is discarded."""
        try:
            for tmpPath, path, _ in self.written:
                os.rename(tmpPath, path)
                self.placed.append(path)
        except FileNotFoundError:
            if not os.path.isdir(mailbox._sub("cur")):
                self.discard(NoSuchMailbox("mailbox %s no longer exists" % (mailbox.name,)))
            else:
                self.discard(Failure())
        except BaseException:
            self.discard(_asStoreFailure())

    def discard(self, failure):
        """Remove every file of the group (in tmp/ or placed) and fail it."""
        for tmpPath, _, _ in self.written:
            removeQuietly(tmpPath)
        for path in self.placed:
            removeQuietly(path)
        self.placed = []
        self.outcome = failure if isinstance(failure, Failure) else Failure(failure)


def _asStoreFailure():
    """The exception being handled as a L{Failure}, a full disk as L{NoSpace}."""
    try:
        with noSpaceAsStoreError():
            raise
    except BaseException:
        return Failure()


class _Entry:
    """
    What a mailbox knows of one message file.

    @ivar info: the L{MessageInfo} last built for it, or None: kept while
        nothing it shows changes. A new file name drops it here; the mailbox
        drops it when the message's modseq or the keyword names change.
    """

    __slots__ = ("uid", "base", "subdir", "_filename", "extensions", "wireSize",
                 "diskSize", "mtime", "info", "_owner")

    def __init__(self, uid, base, subdir, filename, extensions, owner=None):
        self._owner = owner
        self.uid = uid
        self.base = base
        self.subdir = subdir
        self._filename = filename
        self.extensions = extensions
        self.wireSize = None
        self.diskSize = None
        self.mtime = None
        self.info = None

    @property
    def filename(self):
        return self._filename

    @filename.setter
    def filename(self, value):
        if value != self._filename:
            self._filename = value
            self.forget()

    def forget(self):
        """Drop the cached info (and the owner's cached list of infos)."""
        self.info = None
        if self._owner is not None:
            self._owner._infos = None


def _merge(first, second):
    """
    One L{Changes} for two syncs in a row: what the second expunged is no
    longer added or changed by the first (a UID may come back with a new
    UIDVALIDITY: added again by the second).
    """
    gone = set(second.expunged)
    return Changes(
        added=(set(first.added) - gone) | set(second.added),
        expunged=set(first.expunged) | gone,
        flagsChanged=(set(first.flagsChanged) - gone) | set(second.flagsChanged),
        recent=(set(first.recent) - gone) | set(second.recent))


@implementer(IMailboxStore)
class MaildirMailbox:
    """
    One Maildir (INBOX or a Maildir++ folder), shared by every session of this
    process.

    The contract's operations (L{IMailboxStore}) return Deferreds: file
    writes with fsync (L{append}, the copies of L{copyTo}) run through
    C{runInThread}; the rest (directory scans, renames for flags, unlinks, the
    try-once uidlist lock) runs on the reactor thread and the Deferred has
    fired when the call returns. The blocking building blocks (L{placeMessage}
    and L{adopt}, L{deliver}, L{noteDelivery}, L{prepareCopy},
    L{placeCopies} and L{adoptCopies}) are this class's own, for the store's
    delivery, the watcher and tests. Only L{deliver}, L{placeMessage} and
    L{placeCopies} may run outside the reactor thread.

    While another program holds C{dovecot-uidlist.lock}, nothing waits for it:
    L{sync} (and opening) keep the messages that already have UIDs and retry
    at the next sync; operations that must write under the lock fail at once
    with L{MailboxInUse}.

    Giving new messages their UIDs writes and fsyncs C{dovecot-uidlist}:
    the contract's operations do that in a worker thread, one job at a time
    per mailbox (L{_assignLock}), and the reactor thread only reads the
    result (a sync that finds files without UIDs has them assigned in a
    thread, then reads the uidlist again). An APPEND writes and fsyncs its
    file before its turn, with no lock held; its turn places every message
    written by then with one lock, one directory fsync and one uidlist
    write. An EXPUNGE writes no uidlist: the lines of gone files are
    dropped at its next write (as Dovecot does).

    @ivar lockTimeout: seconds to wait for the uidlist lock on the reactor
        thread before failing with L{MailboxInUse}: 0, try once (tests may
        raise it).
    @ivar threadLockTimeout: the same in a worker thread, where waiting stalls
        nobody: another program's short hold is waited out there.
    @ivar staleLockAge: seconds after which a lock left by a dead process is removed.
    """

    lockTimeout = 0.0
    threadLockTimeout = 2.0
    _statted: dict = {}  # base -> stat() taken while giving new files UIDs
    staleLockAge = 120.0

    def __init__(self, name, path, watcher=None, allocateUIDValidity=None,
                 runInThread=None, placed=None, callLater=None):
        self.name = name
        self.path = path
        self.watcher = watcher
        # f(callable, *args) -> Deferred: where fsyncing file work runs. The
        # service gives the reactor's thread pool; without one (tools, tests)
        # it runs at once in the calling thread.
        self._runInThread = runInThread or defer.maybeDeferred
        # One uidlist-writing job at a time per mailbox (this process).
        self._assignLock = defer.DeferredLock()
        # Appends written to tmp/, waiting to be placed (_commitLater).
        self._waiting = []
        self._needsUIDs = False  # the last sync left files without UIDs
        self._allocateUIDValidity = allocateUIDValidity or newUIDValidity
        self._entries = {}
        self._infos = None  # messages() as last built, while every entry's info holds
        self._byBase = {}
        self._sortedUIDs = []
        self._uidValidity = None
        self._uidNext = 1
        self._stamps = None
        self._keywordNames = [None] * MAX_KEYWORDS
        self._keywordsStamp = None
        self._listeners = []
        self._gone = False
        self._hasNew = False
        # UIDs this process placed in cur/ (APPEND or COPY with flags) that no
        # read-write session has claimed yet: \Recent like the files in new/.
        # The store's (by directory), so the next object of it has them.
        self._placed = placed if placed is not None else PlacedRecent()
        self._refused = set()  # (subdir, filename) of non-files already logged
        self._lockBusy = False  # the last sync found the uidlist lock held elsewhere
        self._modseq = ModseqState(self._sub(MODSEQ_FILE), self._lock)
        # callLater(0, f): the modseq lines of a flag change or expunge are
        # written at the end of the reactor turn, one write for a STORE or
        # EXPUNGE over many messages; the pending call holds this object, so
        # it cannot be dropped (storage/keep.py) with lines unwritten. Without
        # one (tools, tests) they are written at once.
        self._callLater = callLater
        self._modseqFlush = None
        # The persistent index (storage/index.py): opening without reading
        # every file; written in worker threads after changes.
        self._index = MailboxIndex(self._sub(INDEX_FILE), self._runInThread)
        self._index.load()
        self.cleanTemporary()
        # Read what is there, writing nothing: new files get their UIDs at
        # the first sync (a worker thread's job for the contract's sync).
        self._sync(claimRecent=False, skipBusy=True, assign=False)

    def __repr__(self):
        return "<MaildirMailbox %r at %r>" % (self.name, self.path)

    @property
    def uidValidity(self):
        return self._uidValidity

    @property
    def uidNext(self):
        return self._uidNext

    @property
    def highestModseq(self):
        return self._modseq.highest

    def vanishedSince(self, modseq):
        return self._modseq.vanishedSince(modseq, self._uidNext)

    def _sub(self, *parts):
        return os.path.join(self.path, *parts)

    def _entryPath(self, entry):
        return self._sub(entry.subdir, entry.filename)

    # Synchronisation with the disk

    def sync(self, claimRecent=True, waitForLock=False):
        """
        A rescan in the reactor thread that writes nothing; if it found files
        without UIDs, they are given UIDs in a worker thread (the uidlist
        written and fsynced there) and the mailbox is read again.

        @param waitForLock: if another program holds the uidlist lock, wait
            for it in the worker thread (up to L{threadLockTimeout}) rather
            than answer at once with the messages that have UIDs (a first
            reading, which has none to show).
        """
        try:
            changes = self._sync(claimRecent, skipBusy=True, assign=False)
        except Exception:
            return defer.fail()
        if not self._needsUIDs:
            return defer.succeed(changes)
        if not waitForLock and not self._assignLock.locked and self._lock().heldElsewhere():
            # Another program holds the lock: answer with the messages that
            # have UIDs now; the next sync tries again.
            self._noteLockBusy(True)
            return defer.succeed(changes)
        d = self._assignInThread(None, timeout=None if waitForLock else 0.0)
        return d.addCallback(lambda _: _merge(
            changes, self._sync(claimRecent, skipBusy=True, assign=False)))

    def _assignInThread(self, order, before=None, *args, timeout=None):
        """
        In a worker thread, after the mailbox's previous job: C{before(*args)}
        if given (placing files), then UIDs for the files the uidlist lacks,
        in the order C{order(result of before)} gives (base name -> rank), if
        C{order} is not L{None}.
        Another program holding the lock longer than C{timeout} (default
        L{threadLockTimeout}) leaves them without UIDs (a later sync
        retries); that is logged, not raised.

        @return: a Deferred firing with what C{before} returned.
        """
        def job():
            result = before(*args) if before is not None else None
            try:
                self._assignUIDs(order(result) if order is not None else None,
                                 self.threadLockTimeout if timeout is None else timeout)
            except MailboxInUse:
                pass  # the reactor's next sync logs the episode and retries
            except (StoreError, OSError) as e:
                log.warn("{mailbox}: giving new messages their UIDs failed ({error}); "
                         "a later sync tries again", mailbox=self, error=e)
            return result
        return self._assignLock.run(self._runInThread, job)

    def syncNow(self, claimRecent=True):
        """L{sync}, answered at once (the Maildir scan runs on the caller's thread)."""
        return self._sync(claimRecent=claimRecent, skipBusy=True)

    def unclaimedUIDs(self):
        """UIDs no read-write session has claimed as \\Recent yet: new/ files and
        messages this process placed in cur/ since the last claim."""
        return sorted({uid for uid, entry in self._entries.items() if entry.subdir == "new"}
                      | self._placed.among(self._entries.keys()))

    def noteDelivery(self, wait=True):
        # Never waits on the reactor thread (lockTimeout is 0 unless a test
        # raises it). wait: a held lock leaves the new files for the next
        # sync, as sync() does; not wait: MailboxInUse at once, the caller retries.
        if wait:
            return self._sync(claimRecent=False, skipBusy=True)
        timeout, self.lockTimeout = self.lockTimeout, 0.0
        try:
            return self._sync(claimRecent=False)
        finally:
            self.lockTimeout = timeout

    def hasListeners(self):
        return bool(self._listeners)

    @property
    def waitingForUIDs(self):
        """Whether the last sync left new files without UIDs (a lock held elsewhere)."""
        return self._needsUIDs

    def _sync(self, claimRecent, order=None, skipBusy=False, assign=True):
        """
        Rescan if the disk changed, claim new/ files for the caller if asked, notify
        listeners. C{order} maps base names to a preferred UID order for new files.

        @param skipBusy: if the uidlist lock is held by another program, keep
            the messages that have UIDs (files without one wait) and rescan at
            the next sync, rather than raise L{MailboxInUse}.
        @param assign: give new files their UIDs here (writing the uidlist);
            if false, keep the messages that have UIDs and set L{_needsUIDs}.
        """
        if self._gone:
            return Changes()
        if not os.path.isdir(self._sub("cur")):
            expunged = self.vanish()
            return Changes(expunged=expunged)
        stamps = self._currentStamps()
        if stamps[3] != self._keywordsStamp:
            self._setKeywordNames(readKeywords(self._sub(KEYWORDS)))
            self._keywordsStamp = stamps[3]
        added = expunged = flagsChanged = ()
        complete = True
        # Only new/ and cur/ times are ambiguous; the files (uidlist, keywords)
        # are replaced by rename or appended to, which their stamps show.
        if stamps != self._stamps or self._mayHideChanges(stamps[:2]):
            self._rescanned = (time.monotonic(), time.time_ns())
            try:
                added, expunged, flagsChanged, complete = self._rescan(
                    order, skipBusy, assign)
            except MailboxInUse:
                if not skipBusy:
                    raise
                complete = False  # no readable uidlist: the last snapshot stays
        if not self._needsUIDs:  # else sync() finds out whether the lock is held
            self._noteLockBusy(not complete)
        # The stamps from before the scan: a change made during it shows next
        # time; after a partial scan, the next sync scans again.
        self._stamps = stamps if complete else None
        if complete:
            self._saveIndex(stamps[:3], bool(added or expunged or flagsChanged))
        recent = []
        if claimRecent:
            recent = self._claimNew() if self._hasNew else []
            if self._placed.waiting:
                recent = sorted(set(recent) | self._placed.claim(self._entries.keys()))
        self._modseq.flush()
        self._notify(Changes(added, expunged, flagsChanged))
        return Changes(added, expunged, flagsChanged, recent)

    def _saveIndex(self, stamps, changed):
        """After a complete sync: have the index written (in a worker thread)
        if it asks for this state; the records are taken here."""
        if not self._index.wanted(stamps, changed):
            return
        entries = list(self._entries.values())
        if any(entry.wireSize is None for entry in entries):
            return  # a file vanished since the scan: the next sync sees why
        self._index.save(stamps, self._uidValidity, self._uidNext, [
            (e.uid, e.base, e.subdir, e.filename, e.extensions, e.diskSize, e.wireSize,
             e.mtime) for e in entries])

    # (path, the paths _currentStamps looks at) for the mailbox's current path.
    _stampPaths = (None, ())
    # When the last rescan began: (time.monotonic(), time.time_ns()), or None.
    _rescanned = None

    def _currentStamps(self):
        if self._stampPaths[0] != self.path:
            self._stampPaths = (self.path, tuple(
                self._sub(name) for name in ("new", "cur", UIDLIST, KEYWORDS)))
        return tuple(stamp(path) for path in self._stampPaths[1])

    def _mayHideChanges(self, stamps):
        """
        Whether new/ and cur/, their stamps unchanged since the last rescan,
        may still hide a change: one made in the clock tick of their last
        change (L{_recentlyChanged}) after a rescan that began within 2 s of
        it. Such a mailbox is rescanned again, but at most once per
        L{RESCAN_GAP} while its change is that recent: 10,000 IDLE sessions
        syncing after one delivery rescanned it 10,000 times. Once the 2 s
        are over, one more rescan (if none began since) and the stamps are
        trusted.
        """
        if self._rescanned is None:
            return self._recentlyChanged(stamps)
        newest = max((value[0] for value in stamps if value is not None), default=0)
        if self._rescanned[1] > newest + 2e9:
            return False
        if not self._recentlyChanged(stamps):
            return True
        return time.monotonic() - self._rescanned[0] >= RESCAN_GAP

    @staticmethod
    def _recentlyChanged(stamps):
        """
        Directory times are coarse (a clock tick, a second on some filesystems), so
        two changes in one tick look like one: trust stamps only once they are 2 s old.
        """
        limit = (time.time() - 2) * 1e9
        return any(value is not None and value[0] > limit for value in stamps)

    def _listFiles(self):
        """
        @return: C{{base: (subdir, filename)}} of the messages in new/ then cur/.
            Symbolic links and other non-files are not messages (a link could
            serve a file from anywhere): each is logged once, then ignored.
        """
        refused = []
        listing = listMessages(self.path, refused)
        for location in refused:
            if location not in self._refused:
                self._refused.add(location)
                log.warn("{mailbox}: ignoring {subdir}/{name}: not a regular file "
                         "(a symbolic link?)", mailbox=self, subdir=location[0],
                         name=location[1])
        return listing

    def _listFilesCarefully(self):
        """
        List the files; if known messages seem gone, list again: readdir may miss a
        file renamed (a flag change by another program) while it runs.
        """
        listing = self._listFiles()
        # list() copies in one step: a worker thread may run this while the
        # reactor thread changes the entries.
        if any(entry.base not in listing for entry in list(self._entries.values())):
            second = self._listFiles()
            second.update({b: v for b, v in listing.items() if b not in second})
            listing = second
        return listing

    def _sortKey(self, listing, order):
        statted = self._statted = {}  # kept for _fillSizes: one stat() per new file

        def key(base):
            subdir, filename = listing[base]
            try:
                st = statted[base] = os.stat(self._sub(subdir, filename), follow_symlinks=False)
                mtime = st.st_mtime_ns
            except FileNotFoundError:
                mtime = 0
            return (order.get(base, float("inf")) if order else 0, mtime, base)
        return key

    def _lock(self):
        return DotLock(self._sub(UIDLIST), self.lockTimeout, self.staleLockAge)

    def _noteLockBusy(self, busy):
        """Log the start of each episode of another program holding the lock (not
        every sync that finds it held)."""
        if busy and not self._lockBusy:
            log.info("{mailbox}: dovecot-uidlist is locked by another program; new "
                     "messages get their UIDs once it is released", mailbox=self)
        self._lockBusy = busy

    def _rescan(self, order=None, partialIfBusy=False, assign=True):
        """
        Compare the disk with memory, give UIDs to new files (if C{assign}),
        return the differences and whether the scan was complete.

        @param partialIfBusy: if the uidlist lock is held elsewhere and the
            uidlist is readable, apply only the files it lists (incomplete)
            rather than raise L{MailboxInUse}.
        """
        self._needsUIDs = False
        self._modseq.reread()  # until loaded: the file as it is at this sync
        opened = self._index.opening(lambda: self._currentStamps()[:3])
        if opened:
            listing, uidlist = opened
        else:
            listing = self._listFilesCarefully()
            uidlist = self._index.readUIDList(self._sub(UIDLIST))
            if uidlist is not None and not self._modseq.loaded:
                listing = self._firstListingChecked(listing, uidlist)
        back, gone = self._reappeared(listing, uidlist)
        if gone:
            listing = {b: v for b, v in listing.items() if b not in gone}
        if uidlist is None or back or any(base not in uidlist.records for base in listing):
            if not assign:
                self._needsUIDs = True
                if uidlist is None:
                    if self._uidValidity is None:
                        return (), (), (), False  # nothing to show until it is made
                    raise MailboxInUse("dovecot-uidlist is being rebuilt")
                known = {b: v for b, v in listing.items()
                         if b in uidlist.records and b not in back}
                return self._apply(known, uidlist) + (False,)
            try:
                listing, uidlist = self._assignUIDs(order)
            except MailboxInUse:
                if not partialIfBusy or uidlist is None:
                    raise
                known = {b: v for b, v in listing.items()
                         if b in uidlist.records and b not in back}
                return self._apply(known, uidlist) + (False,)
        return self._apply(listing, uidlist) + (True,)

    def _firstListingChecked(self, listing, uidlist):
        """
        (Opening, no message known yet) The listing, listed again once if it
        lacks a file that the uidlist names and mailstack-modseq has as a
        message: readdir can miss a file renamed while it runs (a flag
        change), and the modseq file's load would record it expunged, so that
        it came back under a new UID (L{_reappeared}). As
        L{_listFilesCarefully} does for the messages known.
        """
        live = self._modseq.liveUIDs(uidlist.uidValidity)
        if live and any(uid in live and base not in listing
                        for base, (uid, _) in uidlist.records.items()):
            second = self._listFiles()
            second.update({b: v for b, v in listing.items() if b not in second})
            return second
        return listing

    def _reappeared(self, listing, uidlist, read=True):
        """
        The listed files the uidlist gives a UID this mailbox knows was
        expunged (L{ModseqState.expungedUIDs}): an expunged file put back
        under its name (a restore, a move out and back). EXPUNGE leaves its
        uidlist line until the file is recreated, so the file would get its
        old UID again, which clients were told is gone (RFC 3501 2.3.1.1):
        as Dovecot does, it gets a new UID (L{_assignLocked}).

        @return: C{(back, gone)}: those files, and those the listing names but
            that are gone now (L{_listFilesCarefully} adds what its first
            listing saw: a file expunged by another process since is not
            back). A file renamed since (a flag change) counts as gone until
            the next listing finds its new name.
        """
        if uidlist is None:
            return frozenset(), frozenset()
        expunged = self._modseq.expungedUIDs(uidlist.uidValidity, read)
        if not expunged:
            return frozenset(), frozenset()
        records = uidlist.records
        back, gone = set(), set()
        # Only files this object has no UID for can be back; the set
        # difference also reads _byBase in one step (this may run in a
        # worker thread while the reactor changes it).
        for base in listing.keys() - self._byBase.keys():
            if records.get(base, (None,))[0] in expunged:
                there = os.path.lexists(self._sub(*listing[base]))
                (back if there else gone).add(base)
        return back, gone

    def _assignUIDs(self, order, timeout=None):
        """
        Under the uidlist lock: give UIDs to the files the uidlist lacks, drop
        the lines of files gone; return the listing and the new uidlist.
        Touches files only (safe in a worker thread, one at a time).

        @param timeout: seconds to wait for the lock (default L{lockTimeout}).
        @raise MailboxInUse: another program holds the lock.
        """
        lock = DotLock(self._sub(UIDLIST), self.lockTimeout if timeout is None else timeout,
                       self.staleLockAge)
        with lock:
            return self._assignLocked(lock, order)

    def _assignLocked(self, lock, order):
        """
        L{_assignUIDs}' work, C{lock} (the uidlist's L{DotLock}) held by the
        caller. As Dovecot does, the new records are appended to the file in
        place (fdatasynced), and the file is recreated (written into the
        lock, renamed over it) only when it must be: it cannot be appended
        to, or most of its lines name files that are gone (expunged: their
        lines are dropped then, not at each expunge).
        """
        uidlist = loadForUpdate(self._sub(UIDLIST), self._uidValidity,
                                self._allocateUIDValidity)
        listing = self._listFilesCarefully()
        # In a worker thread: the history as the reactor last loaded it.
        back, gone = self._reappeared(listing, uidlist, read=False)
        for base in gone:
            del listing[base]
        for base in back:
            log.warn("{mailbox}: expunged message reappeared, giving a new UID (old "
                     "uid={uid}, file={base})", mailbox=self, uid=uidlist.records[base][0],
                     base=base)
            del uidlist.records[base]
        unknown = sorted((base for base in listing if base not in uidlist.records),
                         key=self._sortKey(listing, order))
        for base in [b for b in uidlist.records if b not in listing]:
            del uidlist.records[base]
        for base in unknown:
            uidlist.records[base] = (uidlist.nextUID, self._sizeExtension(listing[base]))
            uidlist.nextUID += 1
        with noSpaceAsStoreError():
            if back or uidlist.wantsRecreating(len(unknown)):
                lock.commit(uidlist.format())  # a line of each file: the old ones go
                # Durable as the appends are (fdatasynced): a crash must not bring
                # back the old file and number this batch's files again. Rare
                # (first write, torn file, compaction), shared with other threads.
                fsyncDirectory(self.path)
            elif unknown:
                appendRecords(self._sub(UIDLIST), uidlist.formatRecords(unknown))
        return listing, uidlist

    def _apply(self, listing, uidlist):
        added, expunged, flagsChanged = [], [], []
        old = self._entries
        renumbered = False
        if self._uidValidity is not None and uidlist.uidValidity != self._uidValidity:
            renumbered = True
            log.warn("{mailbox}: UIDVALIDITY changed {old} -> {new}; all UIDs renumbered",
                     mailbox=self, old=self._uidValidity, new=uidlist.uidValidity)
            expunged.extend(old)
            old = {}
        entries = {}
        for base, (subdir, filename) in listing.items():
            record = uidlist.records.get(base)
            if record is None:
                continue
            uid, extensions = record
            entry = old.get(uid)
            if entry is not None and entry.base == base:
                if (entry.filename != filename
                        and self._fileLetters(entry) != splitFilename(filename)[1]):
                    flagsChanged.append(uid)
                entry.subdir, entry.filename, entry.extensions = subdir, filename, extensions
            else:
                if entry is not None:
                    log.warn("{mailbox}: UID {uid} now names another file", mailbox=self, uid=uid)
                    flagsChanged.append(uid)
                else:
                    added.append(uid)
                entry = _Entry(uid, base, subdir, filename, extensions, self)
            entries[uid] = entry
            if entry.wireSize is None:
                try:
                    self._fillSizes(entry)
                except FileNotFoundError:
                    pass
        expunged.extend(uid for uid in old if uid not in entries)
        self._setEntries(entries)
        self._uidValidity = uidlist.uidValidity
        self._placed.validFor(uidlist.uidValidity)
        self._uidNext = uidlist.nextUID
        if not self._modseq.loaded or renumbered:
            current = {uid: self._fileLetters(entry) for uid, entry in entries.items()}
            if renumbered:
                self._modseq.reset(uidlist.uidValidity, current)
            else:
                self._modseq.load(uidlist.uidValidity, current)
            self._forgetInfos()
        else:
            self._modseq.changed(
                {uid: self._fileLetters(entries[uid]) for uid in added + flagsChanged}, expunged)
            for uid in added + flagsChanged:
                entries[uid].forget()  # a new modseq
        return added, expunged, flagsChanged

    @staticmethod
    def _fileLetters(entry):
        """The flag letters of a message's file name (what modseqs track)."""
        return splitFilename(entry.filename)[1]

    def _sizeExtension(self, location):
        """
        Dovecot's C{W<size>} uidlist field for a file whose name lacks C{W=}, so
        the CRLF size of a foreign LF file is computed once, not once per process.
        """
        subdir, filename = location
        if sizeFields(filename)[1] is not None:
            return []
        try:
            return ["W%d" % (crlf.wireSize(self._sub(subdir, filename)),)]
        except FileNotFoundError:
            return []

    def _forgetInfos(self):
        """Drop every cached L{MessageInfo} (the keyword names or all modseqs changed)."""
        for entry in self._entries.values():
            entry.info = None
        self._infos = None

    def _setKeywordNames(self, names):
        if names != self._keywordNames:
            self._keywordNames = names
            self._forgetInfos()

    def _setEntries(self, entries):
        self._infos = None
        self._hasNew = any(entry.subdir == "new" for entry in entries.values())
        self._entries = entries
        self._byBase = {entry.base: uid for uid, entry in entries.items()}
        self._sortedUIDs = sorted(entries)

    def _claimNew(self):
        """Move known messages from new/ to cur/; those moved are \\Recent for the caller."""
        recent = []
        for uid in self._sortedUIDs:
            entry = self._entries[uid]
            if entry.subdir != "new":
                continue
            filename = entry.filename if ":" in entry.filename else entry.base + ":2,"
            try:
                os.rename(self._entryPath(entry), self._sub("cur", filename))
            except FileNotFoundError:
                self._stamps = None  # another program took it; the next rescan finds it
                continue
            entry.subdir, entry.filename = "cur", filename
            recent.append(uid)
        self._hasNew = False
        return recent

    @property
    def gone(self):
        """
        Whether the directory is gone (L{vanish}ed): the account opens a new
        mailbox object if a folder of that name is made again.
        """
        return self._gone

    def vanish(self):
        """
        The directory is gone (deleted or renamed, by the account or another
        program): forget every message and tell the listeners they are expunged.

        @return: the UIDs expunged.
        """
        expunged = list(self._sortedUIDs)
        self._gone = True
        self._index.forget()
        self._setEntries({})
        self._notify(Changes(expunged=expunged))
        return expunged

    def _notify(self, changes):
        if not changes:
            return
        for listener in list(self._listeners):
            try:
                listener.mailboxChanged(self, changes)
            except Exception:
                log.failure("Mailbox listener {listener} failed", listener=listener)

    def addListener(self, listener):
        if listener not in self._listeners:
            self._listeners.append(listener)
            if self.watcher is not None and len(self._listeners) == 1:
                self.watcher.watch(self)

    def removeListener(self, listener):
        if listener in self._listeners:
            self._listeners.remove(listener)
            if self.watcher is not None and not self._listeners:
                self.watcher.unwatch(self)

    # Reading

    def _entry(self, uid):
        try:
            return self._entries[uid]
        except KeyError:
            raise NoSuchMessage("no message with UID %s" % (uid,))

    # (the keyword names, {letters: flags}): one frozenset per distinct info
    # letters while the names are the same (a 100k mailbox has a handful).
    _flagSets: tuple = (None, {})

    def _flagsOf(self, entry):
        letters = self._fileLetters(entry)
        names, known = self._flagSets
        if names is not self._keywordNames:
            names, known = self._flagSets = (self._keywordNames, {})
        flags = known.get(letters)
        if flags is None:
            flags = flagsFromLetters(letters, names)
            if len(known) < 1024:
                known[letters] = flags
        return flags

    def _fillSizes(self, entry):
        """Find the on-disk size, CRLF size and mtime of a message (once)."""
        if entry.wireSize is not None:
            return
        recorded = self._index.sizes(entry.base)  # a file's sizes never change
        if recorded is not None:
            entry.diskSize, entry.wireSize, entry.mtime = recorded
            return
        entry.diskSize, entry.wireSize, entry.mtime = _measure(
            self._entryPath(entry), entry.base, entry.extensions,
            self._statted.pop(entry.base, None))

    def _reopen(self, entry):
        """Find a message file renamed by another program; False if it is gone."""
        listing = self._listFiles()
        if entry.base not in listing:
            return False
        entry.subdir, entry.filename = listing[entry.base]
        return True

    def _withFile(self, entry, operation, attempts=3):
        """
        Run C{operation} on the message's file, following it when another
        program renamed it (a flag change) in the meantime, again if it was
        renamed once more between our listing and the retry (two sessions of
        another process storing flags in turn). L{NoSuchMessage} once it is gone.
        """
        for attempt in range(attempts):
            try:
                return operation()
            except FileNotFoundError:
                if attempt == attempts - 1 or not self._reopen(entry):
                    break
        raise NoSuchMessage("message %d has been expunged" % (entry.uid,))

    def _info(self, entry):
        """
        The message's L{MessageInfo}: the cached one while its file name, modseq
        and the keyword names are unchanged (see L{_Entry.info}).
        """
        info = entry.info
        if info is not None:
            return info
        try:
            self._withFile(entry, lambda: self._fillSizes(entry))
        except NoSuchMessage:
            pass  # removed by another program since the sync; the next sync says so
        info = MessageInfo(entry.uid, self._flagsOf(entry), entry.wireSize or 0,
                           entry.mtime or 0.0, entry.base, self._modseq.get(entry.uid),
                           saveDate(entry.base, entry.mtime))
        if entry.wireSize is not None:  # else try the file again next time
            entry.info = info
        return info

    def messages(self):
        infos = self._infos
        if infos is None:
            entries = self._entries
            infos = [self._info(entries[uid]) for uid in self._sortedUIDs]
            if all(entries[uid].info is not None for uid in self._sortedUIDs):
                self._infos = infos
        return list(infos)

    def unclaimedCount(self):
        return len(self.unclaimedUIDs())

    def messageInfo(self, uid):
        return self._info(self._entry(uid))

    def openMessage(self, uid):
        entry = self._entry(uid)
        self._withFile(entry, lambda: self._fillSizes(entry))
        try:
            f = self._withFile(entry, lambda: open(self._entryPath(entry), "rb",
                                                   opener=_noFollow))
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            log.warn("{mailbox}: refusing {name}: a symbolic link", mailbox=self,
                     name=entry.filename)
            raise StoreError("message %d cannot be read" % (entry.uid,))
        if entry.wireSize == entry.diskSize:
            return f
        if entry.wireSize <= CHUNK_SIZE:  # most mail: converted whole, in one read
            try:
                data = f.read(CHUNK_SIZE + 1)
            except BaseException:
                f.close()
                raise
            if len(data) <= CHUNK_SIZE:
                f.close()
                return io.BytesIO(crlf.toCRLF(data, False)[0])
            f.seek(0)  # larger than its name says: streamed as any large one
        return io.BufferedReader(crlf.CRLFReader(f, entry.wireSize), CHUNK_SIZE)

    def keywords(self):
        self._setKeywordNames(readKeywords(self._sub(KEYWORDS)))
        return {name for name in self._keywordNames if name}

    # Writing

    def _letters(self, flags, timeout=None):
        """
        The Maildir info letters for C{flags}, adding new keywords to dovecot-keywords
        (under the uidlist lock, as Dovecot does). Touches files only.

        @param timeout: seconds to wait for the locks (default L{lockTimeout}).
        @raise StoreError: for an unknown system flag, a malformed keyword, or a
            27th keyword.
        """
        letters, keywords = splitFlags(flags)
        if keywords:
            path = self._sub(KEYWORDS)
            names = readKeywords(path)
            if missingKeywords(names, keywords):
                timeout = self.lockTimeout if timeout is None else timeout
                lock = DotLock(self._sub(UIDLIST), timeout, self.staleLockAge)
                with lock, noSpaceAsStoreError():
                    names = addKeywords(path, keywords, timeout, self.staleLockAge)
            letters.update(keywordLetters(names, keywords))
        return letters

    def deliver(self, source, flags=(), internalDate=None):
        if self._gone:
            raise NoSuchMailbox("mailbox %s no longer exists" % (self.name,))
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        letters = "".join(sorted(self._letters(flags)))
        with noSpaceAsStoreError():
            return self._write(source, letters, internalDate)

    def _write(self, source, letters, internalDate):
        """
        Write, fsync, rename into new/ or cur/, fsync the directory. On any
        failure nothing is left: not the file in tmp/, nor a placed file
        whose directory entry might not be durable.
        """
        try:
            name, tmpPath, fd = createTemporary(self._sub("tmp"))
        except FileNotFoundError:
            raise NoSuchMailbox("mailbox %s no longer exists" % (self.name,))
        f = os.fdopen(fd, "wb")
        try:
            size = crlf.copyAsCRLF(source, f)
            f.flush()
            if internalDate is not None:
                os.utime(tmpPath, (time.time(), internalDate))
        except BaseException:
            f.close()
            removeQuietly(tmpPath)
            raise
        # the name carries the size, so it is known only now
        base = messageBase(name, size, size)
        path = self._sub(*placement(base, letters))
        try:
            commitFile(f, tmpPath, path)
        except BaseException:
            # placed, but the directory fsync failed: take it back, the
            # sender is told it was not delivered
            removeQuietly(path)
            raise
        return base

    def deliverUnsynced(self, source):
        """
        L{deliver} without its last step, for a writer that fsyncs new/ once
        for several deliveries (L{mailstack.storage.batchdeliver}): the file
        is written (one C{os.write} for a small message), fsynced and renamed
        into new/, but new/ is not fsynced. Until its caller has fsynced new/,
        the message must not be acknowledged; if that fails, the caller
        removes the file. On a failure here nothing is left in tmp/ or new/.
        Safe in a worker thread.

        @param source: a binary file-like object (read from where it is) or bytes.
        @return: C{(base name, path in new/)}.
        """
        if self._gone:
            raise NoSuchMailbox("mailbox %s no longer exists" % (self.name,))
        with noSpaceAsStoreError():
            tmpPath, path, base = self._writeTemporary(source, "", None)  # path in new/
            try:
                os.rename(tmpPath, path)
            except BaseException:
                removeQuietly(tmpPath)
                raise
        return base, path

    def discardPlaced(self, placed):
        """
        Remove a message placed by L{deliver} or L{placeMessage} that got no
        UID yet (SMTP undoes the copies of a message it could not accept for
        every recipient). Safe in a thread, like L{deliver}.
        """
        try:
            os.unlink(self._sub("new", placed))
            return True
        except FileNotFoundError:
            pass
        for filename in os.listdir(self._sub("cur")):
            if splitFilename(filename)[0] == placed:
                os.unlink(self._sub("cur", filename))
                return True
        return False

    def placeMessage(self, source, flags=(), internalDate=None):
        return self.deliver(source, flags, internalDate)

    def adopt(self, placed):
        if self._gone:
            raise NoSuchMailbox("mailbox %s no longer exists" % (self.name,))
        self._sync(claimRecent=False, order={placed: 0})
        if placed not in self._byBase:
            raise StoreError("appended message vanished before it got a UID")
        uid = self._byBase[placed]
        self._placed.add([uid])
        return uid

    def append(self, source, flags=(), internalDate=None):
        """
        The message is written to tmp/ and fsynced in a worker thread with no
        lock held (appends to one mailbox write their files at once), then
        placed and given its UID together with the others written meanwhile
        (L{_commitWritten}); back in the reactor thread, the mailbox is read
        again and listeners are told. If another program keeps the uidlist
        lock, the message is placed without it and gets its UID at a later
        sync (the Deferred fires with L{None}).
        """
        if self._gone:
            return defer.fail(NoSuchMailbox("mailbox %s no longer exists" % (self.name,)))
        d = self._runInThread(self._writeTemporaries, [(source, flags, internalDate)])
        d.addCallback(self._commitLater, strict=False)
        return d.addCallback(lambda placed: self._adoptAppended(placed[0]))

    def _adoptAppended(self, placed):
        uids = self._adoptAppendedMany([placed])
        return None if uids is None else uids[0]

    def appendMany(self, messages):
        """
        Every file written and fsynced in a worker thread, then all placed
        and given consecutive UIDs under the uidlist lock (L{_commitWritten},
        all or nothing); back in the reactor thread, the mailbox is read
        again and listeners are told, as L{append}.
        """
        if self._gone:
            return defer.fail(NoSuchMailbox("mailbox %s no longer exists" % (self.name,)))
        d = self._runInThread(self._writeTemporaries, messages)
        d.addCallback(self._commitLater, strict=True)
        d.addErrback(self._appendRefused, len(messages))
        return d.addCallback(self._adoptAppendedMany)

    def _appendRefused(self, failure, count):
        """An appendMany that stored nothing because another program kept the lock: logged."""
        if failure.check(MailboxInUse):
            log.warn("{mailbox}: {count} messages not appended: dovecot-uidlist stayed locked "
                     "by another program for {timeout} s", mailbox=self, count=count,
                     timeout=self.threadLockTimeout)
        return failure

    def _writeTemporaries(self, messages):
        """
        Each of C{messages} (C{(source, flags, internalDate)}) written to
        tmp/ and fsynced, with no lock held (a keyword new to the mailbox is
        first named in dovecot-keywords, under the uidlist lock). On a
        failure none is left. Touches files only.

        @return: the list of L{_writeTemporary}'s results.
        """
        if self._gone:
            raise NoSuchMailbox("mailbox %s no longer exists" % (self.name,))
        written = []
        try:
            with noSpaceAsStoreError():
                for source, flags, internalDate in messages:
                    letters = "".join(sorted(self._letters(flags, self.threadLockTimeout)))
                    written.append(self._writeTemporary(source, letters, internalDate))
        except BaseException:
            for tmpPath, _, _ in written:
                removeQuietly(tmpPath)
            raise
        return written

    def _commitLater(self, written, strict):
        """
        Queue files written to tmp/ (a L{_writeTemporaries} result) for the
        mailbox's next L{_commitWritten}, which takes every group queued by
        then: concurrent appends share one lock, one directory fsync and one
        uidlist write. Reactor thread.

        @param strict: all or nothing (MULTIAPPEND): if the lock cannot be
            had, nothing is placed (L{MailboxInUse}); if the UIDs cannot be
            written, the placed files are removed. Else the files are placed
            regardless and get their UIDs at a later sync.
        @return: a Deferred firing with the base names placed, in order.
        """
        pending = _Written(written, strict)
        self._waiting.append(pending)
        self._assignLock.run(self._commitWaiting)
        return pending.done

    def _commitWaiting(self):
        """(Holding L{_assignLock}) L{_commitWritten} of every group queued,
        in a worker thread; then each group's Deferred fires."""
        batch, self._waiting = self._waiting, []
        if not batch:
            return None

        def report(result):
            for pending in batch:
                outcome = pending.outcome
                if outcome is None:  # _commitWritten itself failed
                    outcome = result if isinstance(result, Failure) else Failure(
                        StoreError("appending failed"))
                if isinstance(outcome, Failure):
                    pending.done.errback(outcome)
                else:
                    pending.done.callback(outcome)
        return self._runInThread(self._commitWritten, batch).addBoth(report)

    def _commitWritten(self, batch):
        """
        Place the groups of files written to tmp/ (L{_Written}s) and give
        them UIDs, holding the uidlist lock (Dovecot's maildir-save does the
        same): rename each into new/ or cur/, fsync those directories once
        for all (L{fsyncDirectory}: shared with other threads), then one
        uidlist write numbering them in the order given. Each group's
        outcome (its base names, or a L{Failure}) is set on it; a failed
        group leaves no file behind and, while the lock is held, no UID
        used. Touches files only (a worker thread).
        """
        lock = DotLock(self._sub(UIDLIST), self.threadLockTimeout, self.staleLockAge)
        try:
            lock.__enter__()
        except MailboxInUse:
            lock = None
            refused = Failure()
            for pending in batch:
                if pending.strict:
                    pending.discard(refused)
        except BaseException:
            failure = _asStoreFailure()
            if not os.path.isdir(self._sub("cur")):  # deleted or renamed meanwhile
                failure = Failure(NoSuchMailbox("mailbox %s no longer exists" % (self.name,)))
            for pending in batch:
                pending.discard(failure)
            return
        try:
            live = [pending for pending in batch if pending.outcome is None]
            for pending in live:
                pending.rename(self)
            live = [pending for pending in live if pending.outcome is None]
            try:
                with noSpaceAsStoreError():
                    for subdir in sorted({os.path.basename(os.path.dirname(path))
                                          for pending in live for path in pending.placed}):
                        fsyncDirectory(self._sub(subdir))
            except BaseException:
                failure = Failure()
                for pending in live:
                    pending.discard(failure)
                live = []
            if live and lock is not None:
                self._numberWritten(lock, live)
            for pending in live:
                if pending.outcome is None:
                    pending.outcome = [base for _, _, base in pending.written]
        finally:
            if lock is not None:
                lock.__exit__(None, None, None)
            for pending in batch:
                if pending.outcome is None:  # an unexpected error: take them back
                    pending.discard(StoreError("appending failed"))

    def _numberWritten(self, lock, live):
        """(L{_commitWritten}, the lock held) The uidlist write giving the placed
        groups C{live} their UIDs; if it fails, the strict groups are taken back."""
        order = {}
        for pending in live:
            for _, _, base in pending.written:
                order[base] = len(order)
        try:
            with noSpaceAsStoreError():
                self._assignLocked(lock, order)
        except BaseException as e:
            failure = Failure()
            for pending in live:
                if pending.strict:
                    pending.discard(failure)
            if not isinstance(e, (StoreError, OSError)):
                raise
            log.warn("{mailbox}: giving new messages their UIDs failed ({error}); "
                     "a later sync tries again", mailbox=self, error=e)

    def _writeTemporary(self, source, letters, internalDate):
        """
        One message written to tmp/ and fsynced, not renamed yet.

        @return: C{(temporary path, path to rename it to, base name)}.
        """
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        try:
            name, tmpPath, fd = createTemporary(self._sub("tmp"))
        except FileNotFoundError:
            raise NoSuchMailbox("mailbox %s no longer exists" % (self.name,))
        try:
            try:
                # one os.write for a small message (crlf.writeAsCRLF)
                size = crlf.writeAsCRLF(fd, source)
                os.fsync(fd)
            finally:
                os.close(fd)
            if internalDate is not None:
                os.utime(tmpPath, (time.time(), internalDate))
        except BaseException:
            removeQuietly(tmpPath)
            raise
        base = messageBase(name, size, size)
        return tmpPath, self._sub(*placement(base, letters)), base

    def _adoptAppendedMany(self, placed):
        # Durable now: whatever fails below, they were appended (a failure would
        # make the client append them again); a later failure only delays the UIDs.
        if self._gone or not os.path.isdir(self._sub("cur")):
            raise NoSuchMailbox("mailbox %s no longer exists" % (self.name,))
        try:
            self._sync(claimRecent=False, skipBusy=True, assign=False)
        except (StoreError, OSError) as e:
            log.warn("{mailbox}: appended {count} messages; reading their UIDs failed "
                     "({error}); they get them at the next sync", mailbox=self,
                     count=len(placed), error=e)
            return None
        uids = [self._byBase.get(base) for base in placed]
        if None in uids:
            log.info("{mailbox}: appended {count} messages; their UIDs come with a later "
                     "sync (dovecot-uidlist is locked by another program)", mailbox=self,
                     count=len(placed))
            return None
        self._placed.add(uids)
        return uids

    def setFlags(self, uid, flags):
        """
        A rename in the reactor thread; a keyword new to this mailbox is first
        named in dovecot-keywords (written with fsync, under the uidlist lock)
        in a worker thread.
        """
        try:
            _, keywords = splitFlags(flags)
            missing = keywords and missingKeywords(readKeywords(self._sub(KEYWORDS)), keywords)
        except Exception:
            return defer.fail()
        if not missing:
            return defer.maybeDeferred(self.setFlagsNow, uid, flags)
        d = self._assignLock.run(self._runInThread, self._letters, flags)
        return d.addCallback(lambda _: self.setFlagsNow(uid, flags))

    def setFlagsNow(self, uid, flags):
        """L{setFlags}, answered at once (a rename on the caller's thread)."""
        entry = self._entry(uid)
        self.keywords()
        before = self._flagsOf(entry)
        letters = self._letters(flags)
        if any("a" <= letter <= "z" for letter in letters):
            self.keywords()  # _letters may have named new keywords in dovecot-keywords
        # Keep letters we cannot express (P, keywords without a name) untouched.
        for letter in self._fileLetters(entry):
            if not isExpressible(letter, self._keywordNames):
                letters.add(letter)
        filename = entry.base + ":2," + "".join(sorted(letters))

        def rename():
            if (entry.subdir, entry.filename) != ("cur", filename):
                os.rename(self._entryPath(entry), self._sub("cur", filename))
        beforeLetters = self._fileLetters(entry)
        with noSpaceAsStoreError():
            self._withFile(entry, rename)
        entry.subdir, entry.filename = "cur", filename
        if self._fileLetters(entry) != beforeLetters:
            self._modseq.changed({uid: self._fileLetters(entry)})
            self._flushModseqSoon()
            entry.forget()  # a new modseq
        if self._flagsOf(entry) != before:
            self._notify(Changes(flagsChanged=[uid]))
        return self._info(entry)

    def _flushModseqSoon(self):
        """
        Have the pending modseq lines written before this object could be
        dropped: at the end of this reactor turn (once for all the changes
        made in it), or at once without a C{callLater}.
        """
        if self._callLater is None:
            self._modseq.flush()
        elif self._modseqFlush is None:
            self._modseqFlush = self._callLater(0, self._flushModseqNow)

    def _flushModseqNow(self):
        self._modseqFlush = None
        self._modseq.flush()

    def expunge(self, uids):
        """
        The files are unlinked and the listeners told, in the reactor thread.
        dovecot-uidlist is left alone, as Dovecot leaves it: a line whose file
        is gone names no message (every reader skips it; its UID is below
        the next UID, so it is never given again) and the next write of the
        list, when new messages get their UIDs, drops it.
        """
        try:
            return defer.succeed(self._unlinkMessages(uids))
        except Exception:
            return defer.fail()

    def expungeNow(self, uids):
        """L{expunge}, answered at once."""
        return self._unlinkMessages(uids)

    def _unlinkMessages(self, uids):
        """
        Unlink the files of C{uids} (or, if C{uids} is None, of every message
        flagged \\Deleted), forget them, tell the listeners.

        @return: the UIDs expunged.
        @raise StoreError: if some files could not be removed (an I/O error):
            the others are expunged and announced all the same.
        """
        if uids is None:
            deleted = FLAG_LETTERS["\\Deleted"]
            uids = [u for u in self._sortedUIDs
                    if deleted in self._fileLetters(self._entries[u])]
        removed, failed = [], []
        for uid in sorted(set(uids)):
            entry = self._entries.get(uid)
            if entry is None:
                continue
            try:
                self._withFile(entry, lambda: os.unlink(self._entryPath(entry)))
            except NoSuchMessage:
                pass
            except OSError as e:
                failed.append(e)
                continue
            removed.append(uid)
            del self._entries[uid]
        if failed:
            log.error("{mailbox}: could not remove {count} message files: {error}",
                      mailbox=self, count=len(failed), error=failed[0])
        if removed:
            self._setEntries(self._entries)
            self._modseq.changed({}, removed)
            self._flushModseqSoon()
            self._notify(Changes(expunged=removed))
        if failed:
            raise StoreError("%d messages could not be removed; try again later" % (len(failed),))
        return removed

    def moveAllTo(self, destination):
        """
        Move every message, by rename, to C{destination}, another
        L{MaildirMailbox} on the same filesystem, keeping their order and flags;
        this mailbox is left empty (RFC 3501 RENAME of INBOX).
        """
        self._sync(claimRecent=False)
        order = {}
        for uid in list(self._sortedUIDs):
            entry = self._entries[uid]
            try:
                os.rename(self._entryPath(entry), destination._sub(entry.subdir, entry.filename))
            except FileNotFoundError:
                continue
            order[entry.base] = len(order)
        destination._adoptPlaced(order)
        self._sync(claimRecent=False)

    def copyTo(self, uids, destination):
        """
        Copy by hard link (a real copy across filesystems). All or nothing: if one
        message cannot be placed, the copies already made are removed (RFC 3501 COPY).
        L{prepareCopy} here, L{placeCopies} through C{runInThread}, then
        L{adoptCopies}.
        """
        try:
            plan = self.prepareCopy(uids, destination)
        except Exception:
            return defer.fail()

        def order(placed):
            return {base: i for i, (_, base) in enumerate(placed.copied)}
        # The destination's job: place the copies, then give them UIDs.
        d = destination._assignInThread(order, self.placeCopies, plan)
        return d.addCallback(self.adoptCopies, assign=False)

    def prepareCopy(self, uids, destination):
        """
        What to copy, from memory only: each message's UID, file and flags.
        """
        uids = [uid for uid in sorted(set(uids)) if uid in self._entries]
        if not isinstance(destination, MaildirMailbox):
            raise StoreError("cannot copy into a mailbox of another store")
        if destination._gone:
            raise NoSuchMailbox("mailbox %s no longer exists" % (destination.name,))
        items = []
        for uid in uids:
            entry = self._entries[uid]
            items.append(_CopyItem(uid, entry.base, entry.subdir, entry.filename,
                                   tuple(entry.extensions), self._flagsOf(entry)))
        return _CopyPlan(destination, items)

    def placeCopies(self, plan):
        """
        Link (or copy and fsync) each planned message into the destination's
        tmp/, rename it into new/ or cur/, fsync those directories. Touches
        only files (safe in a worker thread). All or nothing: on a failure the
        files placed so far are removed.
        """
        destination = plan.destination
        if not os.path.isdir(destination._sub("tmp")):
            raise NoSuchMailbox("mailbox %s no longer exists" % (destination.name,))
        copied, placed = [], []
        try:
            with noSpaceAsStoreError():
                self._placeCopies(plan, copied, placed)
                for subdir in ("new", "cur"):
                    fsyncDirectory(destination._sub(subdir))
        except BaseException:
            for path in placed:
                removeQuietly(path)
            raise
        return _PlacedCopies(destination, copied)

    def adoptCopies(self, placed, assign=True):
        """
        Give the copies made by L{placeCopies} their UIDs in the destination
        (a sync) and notify its listeners. C{assign}: false when a worker
        thread has given them their UIDs already (L{copyTo}).
        """
        destination, copied = placed.destination, placed.copied
        if destination._gone or not os.path.isdir(destination._sub("cur")):
            # deleted meanwhile, the copies with it
            raise NoSuchMailbox("mailbox %s no longer exists" % (destination.name,))
        order = {base: i for i, (_, base) in enumerate(copied)}
        try:
            destination._adoptPlaced(order, fsync=False, assign=assign)
        except (StoreError, OSError) as e:
            # The copies are durable: the copy happened. Their UIDs come with
            # the destination's next sync.
            log.warn("{mailbox}: {count} messages copied; assigning their UIDs failed "
                     "({error}); they get them at the next sync", mailbox=destination,
                     count=len(copied), error=e)
        return [(uid, destination._byBase.get(base)) for uid, base in copied]

    def _findCopySource(self, item):
        """
        The path of a planned message's file now, or None if it is gone: another
        program may have renamed it (a flag change) since the plan. Touches
        files only.
        """
        path = self._sub(item.subdir, item.filename)
        if os.path.lexists(path):
            return path
        location = listMessages(self.path).get(item.base)
        return None if location is None else self._sub(*location)

    def _placeCopies(self, plan, copied, placed):
        """
        Link (or copy) each planned message into the destination's tmp/, then
        rename it into new/ or cur/. C{placed} lists every path made, for the
        caller to remove if something fails; C{copied} the C{(uid, base)} done.
        """
        destination = plan.destination
        for item in plan.items:
            source = self._findCopySource(item)
            if source is None:
                continue  # expunged by another program meanwhile
            name = uniqueName()
            tmpPath = destination._sub("tmp", name)
            try:
                os.link(source, tmpPath)
                placed.append(tmpPath)
            except FileNotFoundError:
                if not os.path.isdir(destination._sub("tmp")):
                    raise NoSuchMailbox("mailbox %s no longer exists" % (destination.name,))
                source = self._findCopySource(item)  # renamed just now?
                if source is None:
                    continue
                os.link(source, tmpPath)
                placed.append(tmpPath)
            except OSError as e:  # another filesystem, or no hard links there
                if e.errno in NO_SPACE_ERRNOS:
                    raise
                placed.append(tmpPath)
                shutil.copy2(source, tmpPath)
                with open(tmpPath, "rb") as f:
                    os.fsync(f.fileno())
            diskSize, wireSize, _ = _measure(tmpPath, item.base, item.extensions)
            letters = "".join(sorted(destination._letters(item.flags)))
            base = messageBase(name, diskSize, wireSize)
            target = destination._sub(*placement(base, letters))
            os.rename(tmpPath, target)
            placed[-1] = target
            copied.append((item.uid, base))

    def _adoptPlaced(self, order, fsync=True, assign=True):
        """
        Make the files just renamed into new/ and cur/ durable (unless the
        caller did), and give them UIDs in C{order} (base name -> rank).
        """
        if fsync:
            for subdir in ("new", "cur"):
                fsyncDirectory(self._sub(subdir))
        self._sync(claimRecent=False, order=order, skipBusy=not assign, assign=assign)
        self._placed.add(self._byBase[base] for base in order if base in self._byBase)

    def cleanTemporary(self, maxAge=TMP_MAX_AGE):
        """
        Delete files in tmp/ untouched for C{maxAge} seconds (36 hours, as the
        Maildir specification says): leftovers of deliveries that crashed.

        @return: how many files were removed.
        """
        removed = removeStale(self._sub("tmp"), maxAge)
        if removed:
            log.info("{mailbox}: removed {count} stale files from tmp/", mailbox=self, count=removed)
        return removed

