"""
A persistent, rebuildable per-mailbox index for the Maildir store: the file
C{mailstack.index} in the mailbox's directory, beside C{dovecot-uidlist}.

It holds what opening a mailbox needs and would otherwise read from every
file: each message's UID, base name, place (C{new}/C{cur} and file name, so
its flags), uidlist extension fields, sizes and internal date; with the
mailbox's UIDVALIDITY and UIDNEXT and the stamps (mtime, size, inode) of
C{new/}, C{cur/} and C{dovecot-uidlist} it was taken at.

It only ever saves work, never decides anything:

 - If the stamps on disk equal the recorded ones, and the record was taken
   more than L{SETTLE} seconds after the last of those changes (directory
   times are coarse: two changes in one tick look like one), the mailbox is
   opened from the index alone: no directory listing, no uidlist parse, no
   C{stat()} per message.
 - Otherwise the directories and the uidlist are read as without an index,
   and only the sizes and dates come from it, by base name: a Maildir file
   never changes once it has its name (a flag change renames it, keeping its
   base name), so a base name's sizes stay true.
 - A missing, truncated, damaged or foreign index (its checksum, magic or
   version wrong) is ignored (logged once when damaged) and written anew at
   the next change: deleting it, or a crash in the middle of writing it,
   loses nothing.

The file is written beside its place and renamed over it (never half
written), in a worker thread, never on the reactor; without fsync, as a
crash that loses it loses nothing. One write at a time per mailbox: changes
arriving meanwhile are written together when it is done. Other programs
(Dovecot) ignore the file; several mailstack processes may each write it,
the last write wins and each write is whole.

Format: a header line C{mailstack-index 1 <crc32 of the body, hex>
<body length>}, then the body: JSON (parsed in C by the standard library,
safe against a crafted file, no dependency), an object with C{stamps},
C{taken} (ns), C{uidValidity}, C{uidNext} and C{columns}: for each of
C{uid, base, subdir, filename, extensions, diskSize, wireSize, mtime} the
list of every message's value (columns, so that reading builds the
mailbox's tables with C-level C{zip} and C{dict}: 100,000 messages in tens
of milliseconds).
Modseqs are not repeated here: the store keeps them in C{mailstack-modseq}
(L{mailstack.storage.modseq}).
"""

import json
import os
import time
import zlib

from twisted.internet import defer
from twisted.logger import Logger

from mailstack.storage.files import atomicWrite, stamp
from mailstack.storage.uidlist import UIDList, readSoundUIDList

__all__ = ["INDEX_FILE", "SETTLE", "MailboxIndex", "IndexState"]

log = Logger()

INDEX_FILE = "mailstack.index"
_MAGIC = b"mailstack-index"
_VERSION = 1

COLUMNS = ("uid", "base", "subdir", "filename", "extensions", "diskSize", "wireSize",
           "mtime")
_TYPES = {"uid": {int}, "base": {str}, "subdir": {str}, "filename": {str},
          "extensions": {list}, "diskSize": {int}, "wireSize": {int}, "mtime": {int, float}}


def _strings(values):
    return set(map(type, values)) <= {str}


# Seconds after the last recorded change before a record is trusted alone
# (the same rule as the mailbox's in-memory stamps: directory times are coarse).
SETTLE = 2.0

# Now, in ns since the epoch (the directories' times are wall-clock times).
_clock = time.time_ns


class IndexState:
    """
    One record of a mailbox: what L{MailboxIndex.load} read or what
    L{MailboxIndex.save} writes.

    @ivar stamps: C{(new, cur, dovecot-uidlist)} stamps, each C{(mtime_ns,
        size, inode)} or None.
    @ivar taken: when the scan it records began (the listing, or the
        record it was opened from), in ns since the epoch.
    @ivar columns: C{{name: [value per message]}} for each of L{COLUMNS}.
    """

    __slots__ = ("stamps", "taken", "uidValidity", "uidNext", "columns", "_messages")

    def __init__(self, stamps, taken, uidValidity, uidNext, columns):
        self.stamps = stamps
        self.taken = taken
        self.uidValidity = uidValidity
        self.uidNext = uidNext
        self.columns = columns
        self._messages = None

    @classmethod
    def fromMessages(cls, stamps, taken, uidValidity, uidNext, messages):
        """A state from C{[(uid, base, subdir, filename, extensions, diskSize,
        wireSize, mtime)]}; turned into columns only when written (in the
        worker thread)."""
        state = cls(stamps, taken, uidValidity, uidNext, None)
        state._messages = messages
        return state

    def _columns(self):
        if self.columns is None:
            messages = self._messages
            values = list(zip(*messages)) if messages else [()] * len(COLUMNS)
            self.columns = {name: list(column) for name, column in zip(COLUMNS, values)}
        return self.columns

    def __len__(self):
        return len(self._columns()["uid"])

    def settled(self):
        """
        Whether the recorded times of new/ and cur/ are more than L{SETTLE} s
        older than C{taken}. (The uidlist's stamp needs no settling: it is
        replaced by rename or appended to, which its inode or size shows.)
        """
        limit = self.taken - SETTLE * 1e9
        return all(s is None or s[0] < limit for s in self.stamps[:2])

    def encode(self):
        """The file's bytes."""
        body = json.dumps({
            "stamps": [list(s) if s is not None else None for s in self.stamps],
            "taken": self.taken, "uidValidity": self.uidValidity, "uidNext": self.uidNext,
            "columns": self._columns()}, separators=(",", ":")).encode("utf-8")
        header = b"%s %d %08x %d\n" % (_MAGIC, _VERSION, zlib.crc32(body), len(body))
        return header + body

    @classmethod
    def decode(cls, data):
        """
        @return: the state in C{data}.
        @raise ValueError: if C{data} is not a whole, sound index of this version.
        """
        header, newline, body = data.partition(b"\n")
        fields = header.split(b" ")
        if not newline or len(fields) != 4 or fields[0] != _MAGIC:
            raise ValueError("not a mailstack index")
        if fields[1] != b"%d" % (_VERSION,):
            raise ValueError("index version %r" % (fields[1],))
        if int(fields[3]) != len(body) or int(fields[2], 16) != zlib.crc32(body):
            raise ValueError("truncated or damaged (checksum)")
        record = json.loads(body)
        stamps = tuple(tuple(s) if s is not None else None for s in record["stamps"])
        if len(stamps) != 3 or any(s is not None and len(s) != 3 for s in stamps):
            raise ValueError("bad stamps")
        columns = record["columns"]
        count = len(columns["uid"])
        for name, types in _TYPES.items():
            column = columns[name]
            if type(column) is not list or len(column) != count or not set(
                    map(type, column)) <= types:
                raise ValueError("bad column %s" % (name,))
        if not all(map(_strings, columns["extensions"])):
            raise ValueError("bad column extensions")
        return cls(stamps, int(record["taken"]), int(record["uidValidity"]),
                   int(record["uidNext"]), {name: columns[name] for name in COLUMNS})


class MailboxIndex:
    """
    The index of one Maildir mailbox (see the module's docstring).

    @param path: the index file's path.
    @param runInThread: C{f(callable, *args) -> Deferred}: where the file is written.
    """

    def __init__(self, path, runInThread=None):
        self.path = path
        self._runInThread = runInThread or defer.maybeDeferred
        self._sizes = {}        # base -> (diskSize, wireSize, mtime), from the file read
        self._loaded = None     # the state read, until its one use to open the mailbox
        self._written = None    # (stamps, settled) of the last state handed to a write
        self._writing = False
        self._pending = None    # a state to write once the current write is done
        self._fromIndex = False  # the mailbox was just opened from the file
        self._uidList = (None, None)  # (stamp, UIDList) last parsed
        # When the scan that read the mailbox's current state began (ns): a
        # record is only as settled as the listing it was made from.
        self._scanned = None

    def load(self):
        """
        Read the file (if any) for L{opening} and L{sizes}. A damaged one is
        logged and ignored.
        """
        try:
            # Never through a symbolic link planted in its place.
            with open(self.path, "rb", opener=_noFollow) as f:
                data = f.read()
        except FileNotFoundError:
            return
        except OSError as e:
            log.warn("{path}: cannot read the index ({error}); reading the Maildir instead",
                     path=self.path, error=e)
            return
        try:
            state = IndexState.decode(data)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            log.warn("{path}: ignoring a damaged index ({error}); it is rebuilt from "
                     "the Maildir", path=self.path, error=e)
            return
        self._loaded = state
        self._written = (state.stamps, state.settled())
        c = state.columns
        self._sizes = dict(zip(c["base"], zip(c["diskSize"], c["wireSize"], c["mtime"])))

    def opening(self, currentStamps):
        """
        The listing and uidlist to open the mailbox with, straight from the
        index, if it can be trusted for the current C{(new, cur,
        dovecot-uidlist)} stamps (C{currentStamps()}, asked only if there is
        a record to compare); else None. Answers once: later rescans read
        the disk.

        @return: C{({base: (subdir, filename)}, UIDList)} or None.
        """
        self._scanned = _clock()  # a scan begins: the index's record or a listing
        state, self._loaded = self._loaded, None
        if state is None or not state.settled() or tuple(currentStamps()) != state.stamps:
            return None
        self._fromIndex = True
        self._scanned = state.taken
        c = state.columns
        listing = dict(zip(c["base"], zip(c["subdir"], c["filename"])))
        records = dict(zip(c["base"], zip(c["uid"], c["extensions"])))
        return listing, UIDList(state.uidValidity, state.uidNext, "", records)

    def readUIDList(self, path):
        """
        The parsed C{dovecot-uidlist} at C{path} (None if missing or corrupt),
        parsed again only when its stamp changed: it is replaced by rename or
        appended to (Dovecot), either of which changes the stamp.
        """
        current = stamp(path)
        cached, uidList = self._uidList
        if current is not None and current == cached:
            return uidList
        uidList = readSoundUIDList(path)
        self._uidList = (current, uidList)
        return uidList

    def sizes(self, base):
        """C{(diskSize, wireSize, mtime)} of the message file C{base} as recorded, or None."""
        return self._sizes.get(base)

    def wanted(self, stamps, changed):
        """
        Whether the mailbox should hand over its state (L{save}) after a
        complete sync that saw C{stamps}: once new/ and cur/ had been quiet
        for L{SETTLE} s when the scan that read this state began (only such
        a record can be trusted alone: a change made after the listing in
        the clock tick of the last one would not show in the stamps; and a
        mailbox in a burst of changes is not written again and again), when
        the file does not record these stamps yet, or messages came, went
        or changed flags.
        """
        if self._fromIndex:
            changed = self._fromIndex = False  # what was read from the file
        self._sizes = {}  # the mailbox has every message's sizes by now
        if self._scanned is None or not _settledAt(stamps, self._scanned):
            return False
        return changed or self._written != (tuple(stamps), True)

    def save(self, stamps, uidValidity, uidNext, messages):
        """
        Write this state in a worker thread (after the write in progress,
        if any; only the latest state waiting is written).

        @param messages: as L{IndexState.fromMessages} takes them, taken on
            the caller's thread (the worker never reads the mailbox).
        """
        state = IndexState.fromMessages(tuple(stamps), self._scanned, uidValidity, uidNext,
                                        messages)
        self._written = (state.stamps, state.settled())
        self._sizes = {}  # the mailbox keeps the sizes from now on
        if self._writing:
            self._pending = state
            return
        self._write(state)

    def _write(self, state):
        self._writing = True
        d = self._runInThread(self._writeFile, state)

        def done(_):
            self._writing = False
            state, self._pending = self._pending, None
            if state is not None:
                self._write(state)
        d.addBoth(done)

    def _writeFile(self, state):
        """In a worker thread: replace the file; a failure is logged (it is only a cache)."""
        try:
            atomicWrite(self.path, state.encode(), fsync=False, syncDirectory=False)
        except OSError as e:
            if os.path.isdir(os.path.dirname(self.path)):
                log.warn("{path}: could not write the index ({error})", path=self.path,
                         error=e)

    def forget(self):
        """The mailbox is gone: write nothing more."""
        self._pending = None
        self._loaded = None
        self._sizes = {}


def _noFollow(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW)


def _settledAt(stamps, when):
    """Whether the new/ and cur/ stamps of C{stamps} were more than L{SETTLE} s old
    at C{when} (ns since the epoch)."""
    limit = when - SETTLE * 1e9
    return all(s is None or s[0] < limit for s in stamps[:2])
