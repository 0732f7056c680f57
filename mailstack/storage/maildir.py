"""
Maildir++ storage, compatible with Dovecot: folders as C{.A.B} directories named in
modified UTF-7, UIDs in C{dovecot-uidlist} (version 3) updated under its dotlock,
flags in file names, keywords in C{dovecot-keywords}.

The files are the truth; everything held in memory is rebuilt from them by
L{MaildirMailbox.sync}. See docs/storage.md for the on-disk layout and the rules.
"""

import dataclasses
import io
import itertools
import os
import re
import shutil
import socket
import threading
import time
import uuid

from twisted.logger import Logger
from zope.interface import implementer

from mailstack.storage import mutf7
from mailstack.storage.interfaces import (
    Changes, IAccountStore, IMailboxStore, IMailStore, IMessageInfo,
    InvalidMailboxName, MailboxExists, MailboxNotEmpty, NoSuchMailbox,
    NoSuchMessage, StoreError)

log = Logger()

CHUNK_SIZE = 65536
UIDLIST = "dovecot-uidlist"
KEYWORDS = "dovecot-keywords"
SUBSCRIPTIONS = "subscriptions"
MAX_KEYWORDS = 26
TMP_MAX_AGE = 36 * 3600

_FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R",
                 "\\Seen": "S", "\\Deleted": "T"}
_LETTER_FLAGS = {letter: flag for flag, letter in _FLAG_LETTERS.items()}
_FLAGS_BY_LOWER = {flag.lower(): flag for flag in _FLAG_LETTERS}
_SIZE_FIELD = re.compile(r",([SW])=(\d+)")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_BAD_KEYWORD = re.compile(r'[^\x21-\x7e]|[(){%*"\\\]]')
_V2_SUBSCRIPTIONS = "V\t2\n\n"


class InvalidAddress(InvalidMailboxName, ValueError):
    """The address cannot name an account directory (empty part, '/', '..', NUL)."""


class _CorruptUIDList(Exception):
    def __init__(self, reason, uidValidity=None):
        Exception.__init__(self, reason)
        self.uidValidity = uidValidity


def _toCRLF(chunk, afterCR):
    """
    Turn bare LFs of C{chunk} into CRLF. C{afterCR} says whether the previous chunk
    ended in CR (so a leading LF completes a CRLF split across chunks).

    @return: C{(converted, endsInCR)}
    """
    if not chunk:
        return chunk, afterCR
    if afterCR and chunk[:1] == b"\n":
        out = b"\n" + _BARE_LF.sub(b"\r\n", chunk[1:])
    else:
        out = _BARE_LF.sub(b"\r\n", chunk)
    return out, chunk[-1:] == b"\r"


def _wireSize(path):
    """The size of a file once its bare LFs are CRLF (reads it through once)."""
    size, afterCR = 0, False
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
            converted, afterCR = _toCRLF(chunk, afterCR)
            size += len(converted)
    return size


def _fsyncDirectory(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makeMaildir(path, folder):
    """Create cur/ new/ tmp/ (and the Maildir++ C{maildirfolder} marker) if missing."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), mode=0o700, exist_ok=True)
    if folder:
        os.close(os.open(os.path.join(path, "maildirfolder"), os.O_WRONLY | os.O_CREAT, 0o600))


_sequence = itertools.count(1)
_sequenceLock = threading.Lock()


def _uniqueName():
    """A Maildir unique name: C{<sec>.M<usec>P<pid>Q<seq>.<host>}."""
    now = time.time()
    with _sequenceLock:
        seq = next(_sequence)
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072").replace(",", "\\054")
    return "%d.M%dP%dQ%d.%s" % (int(now), int((now % 1) * 1000000), os.getpid(), seq, host)


def _splitFilename(filename):
    """C{'base:2,FS'} -> C{('base', 'FS')}; a name without C{:2,} info has no flags."""
    base, sep, info = filename.partition(":")
    return base, (info[2:] if sep and info.startswith("2,") else "")


def _sizeFields(base):
    """The C{S=} (size on disk) and C{W=} (CRLF size) fields of a base name, or None."""
    fields = dict(_SIZE_FIELD.findall(base))
    return (int(fields["S"]) if "S" in fields else None,
            int(fields["W"]) if "W" in fields else None)


class _DotLock:
    """
    A Dovecot-style dotlock on C{target}: C{target.lock} created with O_EXCL. The new
    contents are written into the lock file, which is then renamed over the target
    (replacing it and releasing the lock in one step).
    """

    def __init__(self, target, timeout, staleAge):
        self.target = target
        self.path = target + ".lock"
        self.timeout = timeout
        self.staleAge = staleAge
        self.fd = None

    def __enter__(self):
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                return self
            except FileExistsError:
                pass
            try:
                age = time.time() - os.stat(self.path).st_mtime
            except FileNotFoundError:
                continue
            if age > self.staleAge:
                log.warn("Removing stale lock {path} ({age:.0f} s old)", path=self.path, age=age)
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            if time.monotonic() >= deadline:
                raise StoreError("mailbox is locked by another process; try again later")
            time.sleep(0.05)

    def commit(self, data):
        """Write C{data} into the lock, fsync, rename it over the target."""
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = None
        os.rename(self.path, self.target)

    def __exit__(self, *excInfo):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


@dataclasses.dataclass
class _UIDList:
    uidValidity: int
    nextUID: int
    guid: str
    records: dict  # base name -> (uid, [extension fields such as "W123"])
    headerExtra: list = dataclasses.field(default_factory=list)

    def format(self):
        """The file contents, version 3."""
        header = ["3", "V%d" % (self.uidValidity,), "N%d" % (self.nextUID,), "G" + self.guid]
        lines = [" ".join(header + self.headerExtra)]
        for base, (uid, extensions) in sorted(self.records.items(), key=lambda item: item[1][0]):
            lines.append(" ".join(["%d" % (uid,)] + extensions + [":" + base]))
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def _parseUIDList(text):
    """
    Parse a dovecot-uidlist (version 1 or 3).

    @raise _CorruptUIDList: if it is not one, with the UIDVALIDITY when readable.
    """
    lines = text.split("\n")
    match = re.match(r"(\d) (.*)\Z", lines[0])
    if match is None:
        raise _CorruptUIDList("invalid header")
    version, rest = int(match.group(1)), match.group(2)
    validity = nextUID = 0
    guid, extra = None, []
    if version == 1:
        fields = rest.split()
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise _CorruptUIDList("invalid version 1 header")
        validity, nextUID = int(fields[0]), int(fields[1])
    elif version == 3:
        for field in rest.split():
            key, value = field[0], field[1:]
            if key in "VN":
                if not value.isdigit():
                    raise _CorruptUIDList("invalid header field %r" % (field,))
                if key == "V":
                    validity = int(value)
                else:
                    nextUID = int(value)
            elif key == "G":
                if not re.match(r"[0-9a-f]{32}\Z", value):
                    raise _CorruptUIDList("invalid mailbox GUID", validity or None)
                guid = value
            else:
                extra.append(field)
    else:
        raise _CorruptUIDList("unsupported version %d" % (version,))
    if validity <= 0 or nextUID <= 0:
        raise _CorruptUIDList("header lacks UIDVALIDITY or next UID", validity or None)
    records = {}
    lastUID = 0
    for number, line in enumerate(lines[1:], 2):
        if not line:
            continue
        uidText, space, rest = line.partition(" ")
        if not uidText.isdigit() or not space or int(uidText) <= lastUID:
            raise _CorruptUIDList("line %d: bad or unordered UID" % (number,), validity)
        uid = lastUID = int(uidText)
        extensions = []
        rest = rest.lstrip(" ")
        if version == 1:
            if uid >= nextUID:
                raise _CorruptUIDList("line %d: UID beyond next UID" % (number,), validity)
            filename = rest
        else:
            while rest and not rest.startswith(":"):
                field, _, rest = rest.partition(" ")
                if "A" <= field[0] <= "Z":
                    extensions.append(field)
                rest = rest.lstrip(" ")
            if not rest.startswith(":"):
                raise _CorruptUIDList("line %d: no file name" % (number,), validity)
            filename = rest[1:]
        base = filename.split(":")[0]
        if not base or "/" in base:
            raise _CorruptUIDList("line %d: bad file name" % (number,), validity)
        records[base] = (uid, extensions)
    return _UIDList(validity, max(nextUID, lastUID + 1), guid or uuid.uuid4().hex,
                    records, extra)


def _readUIDList(path):
    """@return: the parsed uidlist at C{path}, or None if there is none."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return _parseUIDList(data.decode("utf-8", "surrogateescape"))


def _readKeywords(path):
    """@return: a list of 26 keyword names (None where unused) from dovecot-keywords."""
    names = [None] * MAX_KEYWORDS
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                index, _, name = line.rstrip("\n").partition(" ")
                if index.isdigit() and int(index) < MAX_KEYWORDS and name:
                    names[int(index)] = name
    except FileNotFoundError:
        pass
    return names


def _stamp(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@implementer(IMessageInfo)
@dataclasses.dataclass(frozen=True)
class MessageInfo:
    """Metadata of one message (see L{IMessageInfo})."""
    uid: int
    flags: frozenset
    size: int
    internalDate: float
    key: str


class _Entry:
    """What a mailbox knows of one message file."""

    def __init__(self, uid, base, subdir, filename, extensions):
        self.uid = uid
        self.base = base
        self.subdir = subdir
        self.filename = filename
        self.extensions = extensions
        self.wireSize = None
        self.diskSize = None
        self.mtime = None


class _CRLFReader(io.RawIOBase):
    """
    Stream a file stored with bare LF line ends as CRLF, chunk by chunk. Seeking
    backwards rewinds and reads forward (rare: protocols read messages in order).
    """

    def __init__(self, f, size):
        self._f = f
        self._size = size
        self._pos = 0
        self._pending = b""
        self._afterCR = False

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, buffer):
        while not self._pending:
            chunk = self._f.read(CHUNK_SIZE)
            if not chunk:
                return 0
            self._pending, self._afterCR = _toCRLF(chunk, self._afterCR)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self._pos += count
        return count

    def seek(self, offset, whence=io.SEEK_SET):
        target = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence] + offset
        if target < 0:
            raise ValueError("negative seek position %d" % (target,))
        if target < self._pos:
            self._f.seek(0)
            self._pos, self._pending, self._afterCR = 0, b"", False
        while self._pos < target:
            if not self.read(min(CHUNK_SIZE, target - self._pos)):
                break
        return self._pos

    def tell(self):
        return self._pos

    def close(self):
        if not self.closed:
            self._f.close()
        io.RawIOBase.close(self)


@implementer(IMailboxStore)
class MaildirMailbox:
    """
    One Maildir (INBOX or a Maildir++ folder), shared by every session of this
    process. Only L{deliver} may run outside the reactor thread.

    @ivar lockTimeout: seconds to wait for the uidlist lock before failing.
    @ivar staleLockAge: seconds after which a lock left by a dead process is removed.
    """

    lockTimeout = 10.0
    staleLockAge = 120.0

    def __init__(self, name, path):
        self.name = name
        self.path = path
        self._entries = {}
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
        self.cleanTemporary()
        self._sync(claimRecent=False)

    def __repr__(self):
        return "<MaildirMailbox %r at %r>" % (self.name, self.path)

    @property
    def uidValidity(self):
        return self._uidValidity

    @property
    def uidNext(self):
        return self._uidNext

    def _sub(self, *parts):
        return os.path.join(self.path, *parts)

    def _entryPath(self, entry):
        return self._sub(entry.subdir, entry.filename)

    # Synchronisation with the disk

    def sync(self):
        return self._sync(claimRecent=True)

    def noteDelivery(self):
        return self._sync(claimRecent=False)

    def _sync(self, claimRecent, order=None):
        """
        Rescan if the disk changed, claim new/ files for the caller if asked, notify
        listeners. C{order} maps base names to a preferred UID order for new files.
        """
        if self._gone:
            return Changes()
        if not os.path.isdir(self._sub("cur")):
            expunged = self._vanish()
            return Changes(expunged=expunged)
        stamps = self._currentStamps()
        if stamps[3] != self._keywordsStamp:
            self._keywordNames = _readKeywords(self._sub(KEYWORDS))
            self._keywordsStamp = stamps[3]
        added = expunged = flagsChanged = ()
        if stamps != self._stamps or self._recentlyChanged(stamps):
            added, expunged, flagsChanged = self._rescan(order)
        # The stamps from before the scan: a change made during it shows next time.
        self._stamps = stamps
        recent = self._claimNew() if claimRecent and self._hasNew else []
        self._notify(Changes(added, expunged, flagsChanged))
        return Changes(added, expunged, flagsChanged, recent)

    def _currentStamps(self):
        return tuple(_stamp(self._sub(name)) for name in ("new", "cur", UIDLIST, KEYWORDS))

    @staticmethod
    def _recentlyChanged(stamps):
        """
        Directory times are coarse (a clock tick, a second on some filesystems), so
        two changes in one tick look like one: trust stamps only once they are 2 s old.
        """
        limit = (time.time() - 2) * 1e9
        return any(stamp is not None and stamp[0] > limit for stamp in stamps)

    def _listFiles(self):
        """@return: C{{base: (subdir, filename)}} of the messages in new/ then cur/."""
        listing = {}
        for subdir in ("new", "cur"):
            try:
                names = os.listdir(self._sub(subdir))
            except FileNotFoundError:
                continue
            for filename in names:
                if filename.startswith(".") or "\n" in filename or "\r" in filename:
                    continue
                listing[_splitFilename(filename)[0]] = (subdir, filename)
        return listing

    def _listFilesCarefully(self):
        """
        List the files; if known messages seem gone, list again: readdir may miss a
        file renamed (a flag change by another program) while it runs.
        """
        listing = self._listFiles()
        if any(entry.base not in listing for entry in self._entries.values()):
            second = self._listFiles()
            second.update({b: v for b, v in listing.items() if b not in second})
            listing = second
        return listing

    def _sortKey(self, listing, order):
        def key(base):
            subdir, filename = listing[base]
            try:
                mtime = os.stat(self._sub(subdir, filename)).st_mtime_ns
            except FileNotFoundError:
                mtime = 0
            return (order.get(base, float("inf")) if order else 0, mtime, base)
        return key

    def _newValidity(self, old):
        candidates = [int(time.time())]
        for known in (old, self._uidValidity):
            if known:
                candidates.append(known + 1)
        return max(candidates)

    def _loadForUpdate(self):
        """Read the uidlist under its lock, starting a new one if missing or corrupt."""
        path = self._sub(UIDLIST)
        try:
            uidlist = _readUIDList(path)
        except _CorruptUIDList as e:
            validity = self._newValidity(e.uidValidity)
            log.warn("{path}: corrupt dovecot-uidlist ({reason}); rebuilding, UIDVALIDITY "
                     "{old} -> {new}", path=path, reason=str(e), old=e.uidValidity, new=validity)
            return _UIDList(validity, 1, uuid.uuid4().hex, {})
        if uidlist is None:
            validity = self._newValidity(None)
            if self._uidValidity is not None:
                log.warn("{path}: dovecot-uidlist vanished; rebuilding with UIDVALIDITY {new}",
                         path=path, new=validity)
            return _UIDList(validity, 1, uuid.uuid4().hex, {})
        return uidlist

    def _lock(self):
        return _DotLock(self._sub(UIDLIST), self.lockTimeout, self.staleLockAge)

    def _rescan(self, order=None):
        """Compare the disk with memory, give UIDs to new files, return the differences."""
        listing = self._listFilesCarefully()
        try:
            uidlist = _readUIDList(self._sub(UIDLIST))
        except _CorruptUIDList:
            uidlist = None
        if uidlist is None or any(base not in uidlist.records for base in listing):
            with self._lock() as lock:
                uidlist = self._loadForUpdate()
                listing = self._listFilesCarefully()
                unknown = sorted((base for base in listing if base not in uidlist.records),
                                 key=self._sortKey(listing, order))
                for base in unknown:
                    uidlist.records[base] = (uidlist.nextUID, self._sizeExtension(listing[base]))
                    uidlist.nextUID += 1
                for base in [b for b in uidlist.records if b not in listing]:
                    del uidlist.records[base]
                lock.commit(uidlist.format())
        return self._apply(listing, uidlist)

    def _apply(self, listing, uidlist):
        added, expunged, flagsChanged = [], [], []
        old = self._entries
        if self._uidValidity is not None and uidlist.uidValidity != self._uidValidity:
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
                if _splitFilename(entry.filename)[1] != _splitFilename(filename)[1]:
                    flagsChanged.append(uid)
                entry.subdir, entry.filename, entry.extensions = subdir, filename, extensions
            else:
                if entry is not None:
                    log.warn("{mailbox}: UID {uid} now names another file", mailbox=self, uid=uid)
                    flagsChanged.append(uid)
                else:
                    added.append(uid)
                entry = _Entry(uid, base, subdir, filename, extensions)
            entries[uid] = entry
            if entry.wireSize is None:
                try:
                    self._fillSizes(entry)
                except FileNotFoundError:
                    pass
        expunged.extend(uid for uid in old if uid not in entries)
        self._setEntries(entries)
        self._uidValidity = uidlist.uidValidity
        self._uidNext = uidlist.nextUID
        return added, expunged, flagsChanged

    def _sizeExtension(self, location):
        """
        Dovecot's C{W<size>} uidlist field for a file whose name lacks C{W=}, so
        the CRLF size of a foreign LF file is computed once, not once per process.
        """
        subdir, filename = location
        if _sizeFields(filename)[1] is not None:
            return []
        try:
            return ["W%d" % (_wireSize(self._sub(subdir, filename)),)]
        except FileNotFoundError:
            return []

    def _setEntries(self, entries):
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

    def _vanish(self):
        """The directory is gone (deleted or renamed): forget every message."""
        expunged = list(self._sortedUIDs)
        self._gone = True
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

    def removeListener(self, listener):
        if listener in self._listeners:
            self._listeners.remove(listener)

    # Reading

    def _entry(self, uid):
        try:
            return self._entries[uid]
        except KeyError:
            raise NoSuchMessage("no message with UID %s" % (uid,))

    def _flagsOf(self, entry):
        flags = set()
        for letter in _splitFilename(entry.filename)[1]:
            if letter in _LETTER_FLAGS:
                flags.add(_LETTER_FLAGS[letter])
            elif "a" <= letter <= "z" and self._keywordNames[ord(letter) - 97]:
                flags.add(self._keywordNames[ord(letter) - 97])
        return frozenset(flags)

    def _fillSizes(self, entry):
        """Find the on-disk size, CRLF size and mtime of a message (once)."""
        if entry.wireSize is not None:
            return
        diskSize, wireSize = _sizeFields(entry.base)
        if wireSize is None:
            wireSize = next((int(f[1:]) for f in entry.extensions
                             if f[:1] == "W" and f[1:].isdigit()), None)
        path = self._entryPath(entry)
        st = os.stat(path)
        entry.mtime = st.st_mtime
        entry.diskSize = diskSize if diskSize is not None else st.st_size
        entry.wireSize = wireSize if wireSize is not None else _wireSize(path)

    def _reopen(self, entry):
        """Find a message file renamed by another program; False if it is gone."""
        listing = self._listFiles()
        if entry.base not in listing:
            return False
        entry.subdir, entry.filename = listing[entry.base]
        return True

    def _withFile(self, entry, operation):
        try:
            return operation()
        except FileNotFoundError:
            if not self._reopen(entry):
                raise NoSuchMessage("message %d has been expunged" % (entry.uid,))
            return operation()

    def _info(self, entry):
        try:
            self._withFile(entry, lambda: self._fillSizes(entry))
        except NoSuchMessage:
            pass  # removed by another program since the sync; the next sync says so
        return MessageInfo(entry.uid, self._flagsOf(entry), entry.wireSize or 0,
                           entry.mtime or 0.0, entry.base)

    def messages(self):
        return [self._info(self._entries[uid]) for uid in self._sortedUIDs]

    def messageInfo(self, uid):
        return self._info(self._entry(uid))

    def openMessage(self, uid):
        entry = self._entry(uid)
        self._withFile(entry, lambda: self._fillSizes(entry))
        f = self._withFile(entry, lambda: open(self._entryPath(entry), "rb"))
        if entry.wireSize == entry.diskSize:
            return f
        return io.BufferedReader(_CRLFReader(f, entry.wireSize), CHUNK_SIZE)

    def keywords(self):
        self._keywordNames = _readKeywords(self._sub(KEYWORDS))
        return {name for name in self._keywordNames if name}

    # Writing

    def _letters(self, flags):
        """
        The Maildir info letters for C{flags}, adding new keywords to dovecot-keywords
        (under the uidlist lock, as Dovecot does). Touches files only.

        @raise StoreError: for an unknown system flag, a malformed keyword, or a
            27th keyword.
        """
        letters, wanted = set(), []
        for flag in flags:
            if flag.startswith("\\"):
                if flag.lower() == "\\recent":
                    continue
                if flag.lower() not in _FLAGS_BY_LOWER:
                    raise StoreError("unknown system flag %s" % (flag,))
                letters.add(_FLAG_LETTERS[_FLAGS_BY_LOWER[flag.lower()]])
            elif not flag or _BAD_KEYWORD.search(flag):
                raise StoreError("invalid keyword %r" % (flag,))
            else:
                wanted.append(flag)
        if wanted:
            names = _readKeywords(self._sub(KEYWORDS))
            if self._missingKeywords(names, wanted):
                with self._lock():
                    names = self._addKeywords(wanted)
            lower = [name.lower() if name else None for name in names]
            letters.update(chr(97 + lower.index(flag.lower())) for flag in wanted)
        return letters

    @staticmethod
    def _missingKeywords(names, wanted):
        known = {name.lower() for name in names if name}
        return [flag for flag in wanted if flag.lower() not in known]

    def _addKeywords(self, wanted):
        names = _readKeywords(self._sub(KEYWORDS))
        missing = self._missingKeywords(names, wanted)
        unique = {flag.lower(): flag for flag in missing}
        for flag in sorted(unique.values(), key=str.lower):
            if None not in names:
                raise StoreError("this mailbox already has %d keywords, the Maildir "
                                 "maximum" % (MAX_KEYWORDS,))
            names[names.index(None)] = flag
        text = "".join("%d %s\n" % (i, name) for i, name in enumerate(names) if name)
        # Holding the uidlist lock, a keywords lock can only be a crash's leftover.
        try:
            os.unlink(self._sub(KEYWORDS + ".lock"))
        except FileNotFoundError:
            pass
        with _DotLock(self._sub(KEYWORDS), self.lockTimeout, self.staleLockAge) as lock:
            lock.commit(text.encode("utf-8"))
        return names

    def deliver(self, source, flags=(), internalDate=None):
        if self._gone:
            raise NoSuchMailbox("mailbox %s no longer exists" % (self.name,))
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        letters = "".join(sorted(self._letters(flags)))
        while True:
            name = _uniqueName()
            tmpPath = self._sub("tmp", name)
            try:
                fd = os.open(tmpPath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
            except FileNotFoundError:
                raise NoSuchMailbox("mailbox %s no longer exists" % (self.name,))
        try:
            size, afterCR = 0, False
            with os.fdopen(fd, "wb") as f:
                for chunk in iter(lambda: source.read(CHUNK_SIZE), b""):
                    converted, afterCR = _toCRLF(chunk, afterCR)
                    f.write(converted)
                    size += len(converted)
                f.flush()
                if internalDate is not None:
                    os.utime(tmpPath, (time.time(), internalDate))
                os.fsync(f.fileno())
            base = "%s,S=%d,W=%d" % (name, size, size)
            subdir = "cur" if letters else "new"
            os.rename(tmpPath, self._sub(subdir, base + (":2," + letters if letters else "")))
        except BaseException:
            try:
                os.unlink(tmpPath)
            except OSError:
                pass
            raise
        _fsyncDirectory(self._sub(subdir))
        return base

    def append(self, source, flags=(), internalDate=None):
        key = self.deliver(source, flags, internalDate)
        self._sync(claimRecent=False)
        if key not in self._byBase:
            raise StoreError("appended message vanished before it got a UID")
        return self._byBase[key]

    def setFlags(self, uid, flags):
        entry = self._entry(uid)
        self.keywords()
        before = self._flagsOf(entry)
        letters = self._letters(flags)
        self.keywords()
        # Keep letters we cannot express (P, keywords without a name) untouched.
        for letter in _splitFilename(entry.filename)[1]:
            if letter not in _LETTER_FLAGS and not (
                    "a" <= letter <= "z" and self._keywordNames[ord(letter) - 97]):
                letters.add(letter)
        filename = entry.base + ":2," + "".join(sorted(letters))

        def rename():
            if (entry.subdir, entry.filename) != ("cur", filename):
                os.rename(self._entryPath(entry), self._sub("cur", filename))
        self._withFile(entry, rename)
        entry.subdir, entry.filename = "cur", filename
        if self._flagsOf(entry) != before:
            self._notify(Changes(flagsChanged=[uid]))
        return self._info(entry)

    def expunge(self, uids):
        """
        Unlink the files of C{uids} (or, if C{uids} is None, of every message
        flagged \\Deleted) and drop them from the uidlist.
        """
        if uids is None:
            uids = [u for u in self._sortedUIDs if "T" in _splitFilename(self._entries[u].filename)[1]]
        removed, removedBases = [], []
        for uid in sorted(set(uids)):
            entry = self._entries.get(uid)
            if entry is None:
                continue
            try:
                self._withFile(entry, lambda: os.unlink(self._entryPath(entry)))
            except NoSuchMessage:
                pass
            removed.append(uid)
            removedBases.append(entry.base)
            del self._entries[uid]
        if not removed:
            return []
        self._setEntries(self._entries)
        with self._lock() as lock:
            try:
                uidlist = _readUIDList(self._sub(UIDLIST))
            except _CorruptUIDList:
                uidlist = None  # the next sync rebuilds it
            if uidlist is not None:
                for base in removedBases:
                    uidlist.records.pop(base, None)
                lock.commit(uidlist.format())
        self._notify(Changes(expunged=removed))
        return removed

    def copyTo(self, uids, destination):
        """
        Copy by hard link (a real copy across filesystems). All or nothing: if one
        message cannot be placed, the copies already made are removed (RFC 3501 COPY).
        """
        uids = [uid for uid in sorted(set(uids)) if uid in self._entries]
        if not isinstance(destination, MaildirMailbox):
            pairs = []
            for uid in uids:
                info = self.messageInfo(uid)
                with self.openMessage(uid) as source:
                    pairs.append((uid, destination.append(source, info.flags, info.internalDate)))
            return pairs
        if destination._gone or not os.path.isdir(destination._sub("tmp")):
            raise NoSuchMailbox("mailbox %s no longer exists" % (destination.name,))
        plan = []
        for uid in uids:
            entry = self._entries[uid]
            try:
                self._withFile(entry, lambda: self._fillSizes(entry))
            except NoSuchMessage:
                continue  # expunged by another program meanwhile
            plan.append((uid, entry, "".join(sorted(destination._letters(self._flagsOf(entry))))))
        copied, placed, tmpPath = [], [], None
        try:
            for uid, entry, letters in plan:
                name = _uniqueName()
                tmpPath = destination._sub("tmp", name)
                try:
                    self._withFile(entry, lambda: os.link(self._entryPath(entry), tmpPath))
                except NoSuchMessage:
                    continue
                except OSError:  # another filesystem, or no hard links there
                    shutil.copy2(self._entryPath(entry), tmpPath)
                    with open(tmpPath, "rb") as f:
                        os.fsync(f.fileno())
                base = "%s,S=%d,W=%d" % (name, entry.diskSize, entry.wireSize)
                target = destination._sub("cur" if letters else "new",
                                          base + (":2," + letters if letters else ""))
                placed.append(tmpPath)
                os.rename(tmpPath, target)
                placed[-1] = target
                copied.append((uid, base))
        except BaseException:
            for path in placed + [tmpPath]:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            raise
        for subdir in ("new", "cur"):
            _fsyncDirectory(destination._sub(subdir))
        destination._sync(claimRecent=False, order={base: i for i, (_, base) in enumerate(copied)})
        return [(uid, destination._byBase[base]) for uid, base in copied
                if base in destination._byBase]

    def cleanTemporary(self, maxAge=TMP_MAX_AGE):
        """
        Delete files in tmp/ untouched for C{maxAge} seconds (36 hours, as the
        Maildir specification says): leftovers of deliveries that crashed.

        @return: how many files were removed.
        """
        removed = 0
        limit = time.time() - maxAge
        try:
            entries = list(os.scandir(self._sub("tmp")))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if entry.is_file(follow_symlinks=False) and max(st.st_atime, st.st_mtime) < limit:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass
        if removed:
            log.info("{mailbox}: removed {count} stale files from tmp/", mailbox=self, count=removed)
        return removed


def _checkName(name):
    """
    Validate a mailbox name and find its directory.

    @return: C{(canonicalName, dirName)}; C{dirName} is C{""} for INBOX (the
        account root), else the Maildir++ C{.A.B} form in modified UTF-7.
    @raise InvalidMailboxName: with the reason.
    """
    if not isinstance(name, str) or not name:
        raise InvalidMailboxName("mailbox name is empty")
    if "\x00" in name:
        raise InvalidMailboxName("mailbox name contains a NUL character")
    if any(c < "\x20" or c == "\x7f" for c in name):
        raise InvalidMailboxName("mailbox name contains control characters")
    if name.startswith("/"):
        raise InvalidMailboxName("mailbox name must not start with '/'")
    parts = name.split("/")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    if parts == ["INBOX"]:
        return "INBOX", ""
    for part in parts:
        if not part:
            raise InvalidMailboxName("mailbox name has an empty level ('//' or a trailing '/')")
        if part in (".", ".."):
            raise InvalidMailboxName("'.' and '..' are not allowed as mailbox names")
        if "." in part:
            raise InvalidMailboxName("'.' is not allowed in mailbox names (Maildir++ uses it "
                                     "to separate levels; use '/')")
    try:
        dirName = "." + ".".join(mutf7.encode(part) for part in parts)
    except ValueError:
        raise InvalidMailboxName("mailbox name is not valid Unicode")
    if len(dirName.encode("utf-8")) > 255:
        raise InvalidMailboxName("mailbox name is too long")
    return "/".join(parts), dirName


def _decodeDirName(dirName):
    """C{.A.B} -> C{A/B}, or None if the directory is not a well-formed folder."""
    parts = dirName[1:].split(".")
    try:
        name = "/".join(mutf7.decode(part) for part in parts)
        if _checkName(name)[1] == dirName:
            return name
    except (ValueError, InvalidMailboxName):
        pass
    return None


def _unescapeTab(text):
    """Undo Dovecot's tab escaping (\\001 followed by 1, t, r or n)."""
    table = {"1": "\x01", "t": "\t", "r": "\r", "n": "\n"}
    return re.sub("\x01(.)", lambda m: table.get(m.group(1), m.group(1)), text)


def _decodeLenient(part):
    try:
        return mutf7.decode(part)
    except ValueError:
        return part


@implementer(IAccountStore)
class MaildirAccount:
    """
    One user's Maildir++ tree: INBOX at the root, folders as C{.A.B} subdirectories.
    Mailbox objects are cached, one per directory, so sessions share them.
    """

    def __init__(self, address, path):
        self.address = address
        self.path = path
        self._mailboxes = {}
        _makeMaildir(path, folder=False)

    def __repr__(self):
        return "<MaildirAccount %r>" % (self.address,)

    def _path(self, dirName):
        return os.path.join(self.path, dirName) if dirName else self.path

    def _folderDirs(self):
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return []
        return [e.name for e in entries
                if e.name.startswith(".") and e.name not in (".", "..")
                and e.is_dir() and _decodeDirName(e.name) is not None]

    def listMailboxes(self):
        return sorted(["INBOX"] + [_decodeDirName(d) for d in self._folderDirs()])

    def hasMailbox(self, name):
        try:
            _, dirName = _checkName(name)
        except InvalidMailboxName:
            return False
        return os.path.isdir(self._path(dirName))

    def getMailbox(self, name):
        canonical, dirName = _checkName(name)
        mailbox = self._mailboxes.get(dirName)
        if mailbox is not None and not mailbox._gone:
            return mailbox
        path = self._path(dirName)
        if not os.path.isdir(path):
            raise NoSuchMailbox("no mailbox named %s" % (canonical,))
        _makeMaildir(path, folder=bool(dirName))
        mailbox = self._mailboxes[dirName] = MaildirMailbox(canonical, path)
        return mailbox

    def createMailbox(self, name):
        if name.endswith("/") and len(name) > 1:
            name = name[:-1]  # RFC 3501 CREATE: a trailing separator only shows intent
        canonical, dirName = _checkName(name)
        if not dirName or os.path.isdir(self._path(dirName)):
            raise MailboxExists("mailbox %s already exists" % (canonical,))
        self._createParents(canonical)
        try:
            os.mkdir(self._path(dirName), 0o700)
        except FileExistsError:
            raise MailboxExists("mailbox %s already exists" % (canonical,))
        _makeMaildir(self._path(dirName), folder=True)

    def _createParents(self, canonical):
        parts = canonical.split("/")
        for depth in range(1, len(parts)):
            _, parentDir = _checkName("/".join(parts[:depth]))
            if parentDir and not os.path.isdir(self._path(parentDir)):
                _makeMaildir(self._path(parentDir), folder=True)

    def deleteMailbox(self, name):
        canonical, dirName = _checkName(name)
        if not dirName:
            raise MailboxNotEmpty("INBOX cannot be deleted")
        path = self._path(dirName)
        if not os.path.isdir(path):
            raise NoSuchMailbox("no mailbox named %s" % (canonical,))
        if any(d.startswith(dirName + ".") for d in self._folderDirs()):
            raise MailboxNotEmpty("mailbox %s has child mailboxes; delete them first"
                                  % (canonical,))
        # Rename first so the folder disappears at once, even if removal is slow.
        trash = os.path.join(self.path, "..mailstack-deleted." + uuid.uuid4().hex)
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        mailbox = self._mailboxes.pop(dirName, None)
        if mailbox is not None:
            mailbox._vanish()

    def renameMailbox(self, oldName, newName):
        oldCanonical, oldDir = _checkName(oldName)
        newCanonical, newDir = _checkName(newName)
        if not os.path.isdir(self._path(oldDir)):
            raise NoSuchMailbox("no mailbox named %s" % (oldCanonical,))
        if not newDir or os.path.isdir(self._path(newDir)):
            raise MailboxExists("mailbox %s already exists" % (newCanonical,))
        if oldDir and newDir.startswith(oldDir + "."):
            raise InvalidMailboxName("cannot move mailbox %s inside itself" % (oldCanonical,))
        if not oldDir:
            return self._renameInbox(newCanonical)
        moves = [(d, newDir + d[len(oldDir):]) for d in sorted(self._folderDirs())
                 if d == oldDir or d.startswith(oldDir + ".")]
        for _, target in moves:
            if os.path.exists(self._path(target)):
                raise MailboxExists("mailbox %s already exists" % (_decodeDirName(target),))
        self._createParents(newCanonical)
        for source, target in moves:
            os.rename(self._path(source), self._path(target))
        for source, _ in moves:
            mailbox = self._mailboxes.pop(source, None)
            if mailbox is not None:
                mailbox._vanish()

    def _renameInbox(self, newCanonical):
        """RFC 3501: move every INBOX message to a new mailbox, leave INBOX empty."""
        self.createMailbox(newCanonical)
        inbox = self.getMailbox("INBOX")
        target = self.getMailbox(newCanonical)
        inbox._sync(claimRecent=False)
        order = {}
        for uid in list(inbox._sortedUIDs):
            entry = inbox._entries[uid]
            try:
                os.rename(inbox._entryPath(entry), target._sub(entry.subdir, entry.filename))
            except FileNotFoundError:
                continue
            order[entry.base] = len(order)
        for subdir in ("new", "cur"):
            _fsyncDirectory(target._sub(subdir))
        target._sync(claimRecent=False, order=order)
        inbox._sync(claimRecent=False)

    # Subscriptions

    def _readSubscriptions(self):
        try:
            with open(os.path.join(self.path, SUBSCRIPTIONS), encoding="utf-8",
                      errors="surrogateescape") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        if text.startswith(_V2_SUBSCRIPTIONS):
            lines = text[len(_V2_SUBSCRIPTIONS):].split("\n")
            split = lambda line: [_unescapeTab(p) for p in line.split("\t")]
        else:
            lines = text.split("\n")
            split = lambda line: re.split(r"[./]", line)
        names = []
        for line in lines:
            if line.strip():
                parts = [_decodeLenient(part) for part in split(line)]
                if parts[0].upper() == "INBOX":
                    parts[0] = "INBOX"
                names.append("/".join(parts))
        return names

    def _writeSubscriptions(self, names):
        lines = []
        for name in sorted(set(names)):
            canonical, dirName = _checkName(name)
            lines.append(dirName[1:] if dirName else canonical)
        with _DotLock(os.path.join(self.path, SUBSCRIPTIONS), 10.0, 120.0) as lock:
            lock.commit("".join(line + "\n" for line in lines).encode("utf-8"))

    def subscriptions(self):
        return sorted(set(self._readSubscriptions()))

    def subscribe(self, name):
        canonical, _ = _checkName(name)
        names = self.subscriptions()
        if canonical not in names:
            self._writeSubscriptions([n for n in names if self._representable(n)] + [canonical])

    def unsubscribe(self, name):
        try:
            canonical, _ = _checkName(name)
        except InvalidMailboxName:
            return
        names = self.subscriptions()
        if canonical in names:
            self._writeSubscriptions([n for n in names
                                      if n != canonical and self._representable(n)])

    @staticmethod
    def _representable(name):
        try:
            _checkName(name)
        except InvalidMailboxName:
            return False
        return True


def _accountPath(root, address):
    """
    @return: C{root/<domain>/<localpart>} for a lower-cased address.
    @raise InvalidAddress: if a part could escape that directory or is empty.
    """
    local, at, domain = address.rpartition("@")
    if not at:
        raise InvalidAddress("not an address: %r" % (address,))
    for part in (local, domain):
        if (not part or part in (".", "..") or ".." in part or "/" in part or "\\" in part
                or any(c < "\x20" or c == "\x7f" for c in part)):
            raise InvalidAddress("address %r cannot name a mail directory" % (address,))
    return os.path.join(root, domain, local)


@implementer(IMailStore)
class MaildirStore:
    """
    Every user's Maildir++ under C{root/<domain>/<localpart>/}.

    @param root: the mail directory (created on first use).
    """

    def __init__(self, root):
        self.root = root
        self._accounts = {}

    def account(self, address):
        address = address.lower()
        path = _accountPath(self.root, address)
        account = self._accounts.get(path)
        if account is None:
            account = self._accounts[path] = MaildirAccount(address, path)
        else:
            _makeMaildir(path, folder=False)
        return account
