"""
Dovecot's C{dovecot-uidlist}: parsing (versions 1 and 3), writing (version 3), and
the UIDVALIDITY rules for a list that is missing or corrupt. Callers change the file
only under its L{mailstack.storage.dotlock.DotLock}: either recreated whole (written
into the lock, renamed over the list) or, as Dovecot does, new records appended to
its end in place (L{appendRecords}) and fdatasynced.

An append cut short (a crash, a full disk) leaves a last line without its line
end. Every reader ignores that fragment, as Dovecot does (it reads whole lines):
it is no record, never a reason to call the list corrupt and renumber the
mailbox; the next writer recreates the file without it rather than append after it.
"""

import dataclasses
import os
import re
import time
import uuid

from twisted.logger import Logger

from mailstack.storage.dotlock import DotLock
from mailstack.storage.files import writeAll

log = Logger()

UIDLIST = "dovecot-uidlist"


class CorruptUIDList(Exception):
    """
    The file is not a uidlist we can read.

    @ivar uidValidity: its UIDVALIDITY if the header was readable, else None.
    """

    def __init__(self, reason, uidValidity=None):
        Exception.__init__(self, reason)
        self.uidValidity = uidValidity


@dataclasses.dataclass
class UIDList:
    """The contents of a uidlist."""

    uidValidity: int
    nextUID: int
    guid: str
    records: dict  # base name -> (uid, [extension fields such as "W123"])
    headerExtra: list = dataclasses.field(default_factory=list)
    # What the file it was read from holds (not part of the list's value):
    # its record lines (those of gone files included), and whether new
    # records may be appended to it in place: version 3 with a mailbox GUID,
    # ending with a whole line.
    lines: int = dataclasses.field(default=0, compare=False)
    appendable: bool = dataclasses.field(default=False, compare=False)

    @classmethod
    def empty(cls, uidValidity):
        """A new list without messages, with a fresh mailbox GUID."""
        return cls(uidValidity, 1, uuid.uuid4().hex, {})

    def format(self):
        """The file contents, version 3."""
        header = ["3", "V%d" % (self.uidValidity,), "N%d" % (self.nextUID,), "G" + self.guid]
        order = sorted(self.records, key=lambda base: self.records[base][0])
        return (" ".join(header + self.headerExtra) + "\n").encode(
            "utf-8", "surrogateescape") + self.formatRecords(order)

    def formatRecords(self, bases):
        """The lines of the records of C{bases}, in that order (to append them)."""
        lines = []
        for base in bases:
            uid, extensions = self.records[base]
            lines.append(" ".join(["%d" % (uid,)] + extensions + [":" + base]) + "\n")
        return "".join(lines).encode("utf-8", "surrogateescape")

    def wantsRecreating(self, added):
        """
        Whether a writer adding C{added} records should recreate the file
        rather than append to it: it cannot be appended to, or (Dovecot's
        rule, UIDLIST_COMPRESS_PERCENTAGE) no more than three quarters of its
        lines, with the new ones, would name messages still there.
        """
        if not self.appendable:
            return True
        return (self.lines + added) * 3 // 4 >= len(self.records)


def _parseHeader(line):
    """
    @return: C{(version, uidValidity, nextUID, guid or None, [other fields])}
    @raise CorruptUIDList: if the header is not one of version 1 or 3.
    """
    match = re.match(r"(\d) (.*)\Z", line)
    if match is None:
        raise CorruptUIDList("invalid header")
    version, rest = int(match.group(1)), match.group(2)
    validity = nextUID = 0
    guid, extra = None, []
    if version == 1:
        fields = rest.split()
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise CorruptUIDList("invalid version 1 header")
        validity, nextUID = int(fields[0]), int(fields[1])
    elif version == 3:
        for field in rest.split():
            key, value = field[0], field[1:]
            if key in "VN":
                if not value.isdigit():
                    raise CorruptUIDList("invalid header field %r" % (field,))
                if key == "V":
                    validity = int(value)
                else:
                    nextUID = int(value)
            elif key == "G":
                if not re.match(r"[0-9a-f]{32}\Z", value):
                    raise CorruptUIDList("invalid mailbox GUID", validity or None)
                guid = value
            else:
                extra.append(field)
    else:
        raise CorruptUIDList("unsupported version %d" % (version,))
    if validity <= 0 or nextUID <= 0:
        raise CorruptUIDList("header lacks UIDVALIDITY or next UID", validity or None)
    return version, validity, nextUID, guid, extra


def parseUIDList(text):
    """
    Parse a dovecot-uidlist (version 1 or 3).

    @raise CorruptUIDList: if it is not one, with the UIDVALIDITY when readable.
    """
    end = text.rfind("\n")
    whole = end + 1 == len(text)
    if end >= 0:
        text = text[:end]  # after the last line end: an append cut short, no record
    lines = text.split("\n")
    version, validity, nextUID, guid, extra = _parseHeader(lines[0])
    records = {}
    lastUID = 0
    count = 0
    for number, line in enumerate(lines[1:], 2):
        if not line:
            continue
        count += 1
        uidText, space, rest = line.partition(" ")
        if not uidText.isdigit() or not space or int(uidText) <= lastUID:
            raise CorruptUIDList("line %d: bad or unordered UID" % (number,), validity)
        uid = lastUID = int(uidText)
        extensions = []
        rest = rest.lstrip(" ")
        if version == 1:
            if uid >= nextUID:
                raise CorruptUIDList("line %d: UID beyond next UID" % (number,), validity)
            filename = rest
        else:
            while rest and not rest.startswith(":"):
                field, _, rest = rest.partition(" ")
                if "A" <= field[0] <= "Z":
                    extensions.append(field)
                rest = rest.lstrip(" ")
            if not rest.startswith(":"):
                raise CorruptUIDList("line %d: no file name" % (number,), validity)
            filename = rest[1:]
        base = filename.split(":")[0]
        if not base or "/" in base:
            raise CorruptUIDList("line %d: bad file name" % (number,), validity)
        records[base] = (uid, extensions)
    return UIDList(validity, max(nextUID, lastUID + 1), guid or uuid.uuid4().hex,
                   records, extra, lines=count,
                   appendable=whole and version == 3 and guid is not None)


def appendRecords(path, data):
    """
    Append the record lines C{data} to the uidlist at C{path} in place and
    fdatasync it (Dovecot's way of adding records): the caller holds the
    lock and read the file under it (L{UIDList.appendable}). If this fails
    part way, what was written stays: a whole line is a record whose UID is
    then never given again, a cut one is ignored by every reader.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    try:
        writeAll(fd, data)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def readUIDList(path):
    """
    @return: the parsed uidlist at C{path}, or None if there is none.
    @raise CorruptUIDList: if it cannot be parsed.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return parseUIDList(data.decode("utf-8", "surrogateescape"))


def readSoundUIDList(path):
    """@return: the parsed uidlist at C{path}, or None if it is missing or corrupt."""
    try:
        return readUIDList(path)
    except CorruptUIDList:
        return None


def newUIDValidity(*known):
    """
    The UIDVALIDITY for a rebuilt list: the current time, but larger than any of
    the C{known} values (None or 0 where unknown).
    """
    return max([int(time.time())] + [value + 1 for value in known if value])


UIDVALIDITY_FILE = "dovecot-uidvalidity"


def _readUIDValidityFile(path):
    try:
        with open(path, "rb") as f:
            return int(f.read(16).strip() or b"0", 16)
    except (FileNotFoundError, ValueError):
        return 0


def allocateUIDValidity(root, *known, timeout=10.0, staleAge=120.0):
    """
    A UIDVALIDITY for a new mailbox of the account at C{root}, never handed out
    before there (RFC 3501 2.3.1.1: a mailbox deleted and created again, even
    within one second, gets another one). Like Dovecot's
    C{mailbox_uidvalidity_next}, the last value given is kept in C{root}'s
    C{dovecot-uidvalidity} (8 hex digits) and the next is the current time, or
    one more than the last (or than any of C{known}) if that is larger.
    """
    path = os.path.join(root, UIDVALIDITY_FILE)
    with DotLock(path, timeout, staleAge) as lock:
        value = newUIDValidity(_readUIDValidityFile(path), *known)
        lock.commit(b"%08x\n" % (value,))
    return value


def noteUIDValidity(root, value, timeout=10.0, staleAge=120.0):
    """
    Remember that C{value} was used in the account at C{root} (a mailbox being
    deleted or renamed away), so L{allocateUIDValidity} never gives it again.
    """
    path = os.path.join(root, UIDVALIDITY_FILE)
    if not value or _readUIDValidityFile(path) >= value:
        return
    with DotLock(path, timeout, staleAge) as lock:
        lock.commit(b"%08x\n" % (max(value, _readUIDValidityFile(path)),))


def readUIDValidity(mailboxPath):
    """The UIDVALIDITY in the uidlist of the Maildir at C{mailboxPath}, or None."""
    try:
        uidlist = readUIDList(os.path.join(mailboxPath, UIDLIST))
    except CorruptUIDList as e:
        return e.uidValidity
    return uidlist.uidValidity if uidlist is not None else None


def loadForUpdate(path, knownValidity, allocate=newUIDValidity):
    """
    Read the uidlist at C{path} (the caller holds its lock), or start a new one if
    it is missing or corrupt, with a UIDVALIDITY from L{newUIDValidity}; a rebuild
    that loses UIDs is logged.

    @param knownValidity: the UIDVALIDITY the caller knew, or None.
    @param allocate: C{f(*known) -> int}, the UIDVALIDITY for a new list
        larger than any of the C{known} ones (L{newUIDValidity}, or the
        account's L{allocateUIDValidity}).
    """
    try:
        uidlist = readUIDList(path)
    except CorruptUIDList as e:
        validity = allocate(e.uidValidity, knownValidity)
        log.warn("{path}: corrupt dovecot-uidlist ({reason}); rebuilding, UIDVALIDITY "
                 "{old} -> {new}", path=path, reason=str(e), old=e.uidValidity, new=validity)
        return UIDList.empty(validity)
    if uidlist is None:
        validity = allocate(knownValidity)
        if knownValidity is not None:
            log.warn("{path}: dovecot-uidlist vanished; rebuilding with UIDVALIDITY {new}",
                     path=path, new=validity)
        return UIDList.empty(validity)
    return uidlist
