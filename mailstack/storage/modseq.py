"""
Modification sequences (RFC 7162 CONDSTORE/QRESYNC) for one mailbox, kept in
our own rebuildable file C{mailstack-modseq} next to C{dovecot-uidlist}.

Every change to a mailbox (a message added, its flags changed, messages
expunged) gets a mod-sequence: C{max(highest + 1, now in microseconds)}. Using
the clock as a floor is what makes the file an accelerator rather than a
truth: if it is lost, damaged or behind (a crash before it was written), the
values handed out afterwards are still larger than any handed out before
(unless the clock went backwards, or a process gave out more than a million
per second), so HIGHESTMODSEQ never goes backwards for a UIDVALIDITY.

The file records, per UID, the modseq and the flag letters the message had
then. When a mailbox is opened, a message whose letters on disk differ from
the recorded ones (changed by another program, or by us just before a crash),
or that the file does not know, gets a new modseq; a UID the file knows but the
disk does not was expunged and is recorded so. So nothing is ever missed, at
worst reported twice.

Format (text, one record per line; later lines override earlier ones)::

    mailstack-modseq 1 V<uidvalidity> H<highest> F<floor>
    M <uid> <modseq> <flag letters or ->
    X <modseq> <uid ranges, e.g. 3:5,9>

C{F} (the floor): the expunge history is complete only for changes above it;
asked about an earlier modseq, every missing UID below UIDNEXT counts as
expunged (RFC 7162 lets VANISHED (EARLIER) name UIDs the client never had).
Changes are appended (one write per sync) under the C{dovecot-uidlist} dotlock;
when the appended lines outgrow the state, the file is rewritten whole (written
beside it, renamed over it).
"""

import time

from twisted.logger import Logger

from mailstack.storage.files import atomicWrite, privateFile
from mailstack.storage.interfaces import MailboxInUse

log = Logger()

MODSEQ_FILE = "mailstack-modseq"
_MAGIC = "mailstack-modseq"
MAX_EXPUNGE_RECORDS = 64
MAX_EXPUNGED_UIDS = 100000


def clockModseq():
    """The current time in microseconds: the smallest modseq we hand out now."""
    return time.time_ns() // 1000


def formatRanges(uids):
    """Ascending UIDs -> C{"1:3,7"}."""
    out = []
    start = previous = None
    for uid in uids:
        if previous is not None and uid == previous + 1:
            previous = uid
            continue
        if start is not None:
            out.append("%d" % start if start == previous else "%d:%d" % (start, previous))
        start = previous = uid
    if start is not None:
        out.append("%d" % start if start == previous else "%d:%d" % (start, previous))
    return ",".join(out)


def parseRanges(text):
    """C{"1:3,7"} -> C{[1, 2, 3, 7]}."""
    uids = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        low = int(low)
        high = int(high) if high else low
        uids.extend(range(low, high + 1))
    return uids


class ModseqState:
    """
    The modseqs of one mailbox: in memory, and the file that persists them.

    @param path: the C{mailstack-modseq} file.
    @param lock: a callable returning a context manager that holds the
        mailbox's uidlist lock.
    """

    def __init__(self, path, lock, clock=clockModseq):
        self.path = path
        self._lock = lock
        self._clock = clock
        self.uidValidity = None
        self.highest = 0
        self.floor = 0
        self.modseqs = {}  # uid -> (modseq, letters)
        self.expunges = []  # [(modseq, [uids])], ascending modseq
        self._pending = []  # lines not yet in the file
        self._appended = 0
        self._rewrite = True
        self.loaded = False
        self._readFor = None  # (uidValidity, what _read answered) once read
        self._expunged = None  # every UID in self.expunges, built when asked

    def next(self):
        value = max(self.highest + 1, self._clock())
        self.highest = value
        return value

    def get(self, uid):
        record = self.modseqs.get(uid)
        return record[0] if record is not None else 0

    # -- changes -------------------------------------------------------------

    def load(self, uidValidity, current):
        """
        Read the file, reconcile it with the messages on disk.

        @param current: C{{uid: letters}} of the messages there now.
        """
        known = self._readOnce(uidValidity)
        self.loaded = True
        self.uidValidity = uidValidity
        if known is None:
            self.reset(uidValidity, current)
            return
        changed = [uid for uid, letters in current.items()
                   if self.modseqs.get(uid, (None, None))[1] != letters]
        gone = [uid for uid in self.modseqs if uid not in current]
        if changed or gone:
            self.changed({uid: current[uid] for uid in changed}, gone)
        self._rewrite = False  # what changed is appended at the next flush

    def reset(self, uidValidity, current):
        """No usable history (new mailbox, lost file, new UIDVALIDITY): start afresh."""
        self.uidValidity = uidValidity
        base = self.next()
        self.floor = base
        self.modseqs = {uid: (base, letters) for uid, letters in current.items()}
        self.expunges = []
        self._expunged = None
        self._pending = []
        self._rewrite = True

    def expungedUIDs(self, uidValidity, read=True):
        """
        The UIDs the history records as expunged under C{uidValidity} (a set
        the caller must not change): none may name a message again, so a file
        listed under one has come back (a restore, a move back) and needs a
        new UID. Before L{load}, the file's history is read (if C{read}; a
        process that never saw the expunge learns it there).
        """
        if not self.loaded:
            if not read or not self._readOnce(uidValidity):
                return frozenset()
        elif self.uidValidity != uidValidity:
            return frozenset()
        if self._expunged is None:
            self._expunged = {uid for _, uids in self.expunges for uid in uids}
        return self._expunged

    def reread(self):
        """Before L{load}: read the file afresh when next asked (a sync's start)."""
        if not self.loaded:
            self._readFor = None

    def liveUIDs(self, uidValidity):
        """Before L{load}: the UIDs the file has as messages (read once, kept for load)."""
        if self.loaded or not self._readOnce(uidValidity):
            return frozenset()
        return self.modseqs.keys()

    def changed(self, letters, expunged=()):
        """
        Messages added or whose flags changed (C{{uid: letters}}) and UIDs
        expunged: each change gets a new modseq.
        """
        for uid in sorted(letters):
            modseq = self.next()
            self.modseqs[uid] = (modseq, letters[uid])
            self._pending.append("M %d %d %s" % (uid, modseq, letters[uid] or "-"))
        expunged = sorted(uid for uid in set(expunged) if uid in self.modseqs)
        if expunged:
            modseq = self.next()
            for uid in expunged:
                del self.modseqs[uid]
            self.expunges.append((modseq, expunged))
            if self._expunged is not None:
                self._expunged.update(expunged)
            self._pending.append("X %d %s" % (modseq, formatRanges(expunged)))
            self._trimExpunges()

    def _trimExpunges(self):
        """Bound the history: merge old records, then raise the floor."""
        if len(self.expunges) > MAX_EXPUNGE_RECORDS:
            half = len(self.expunges) // 2
            merged = sorted(uid for _, uids in self.expunges[:half] for uid in uids)
            self.expunges[:half] = [(self.expunges[half - 1][0], merged)]
            self._rewrite = True
        while sum(len(uids) for _, uids in self.expunges) > MAX_EXPUNGED_UIDS:
            modseq, _ = self.expunges.pop(0)
            self._expunged = None
            self.floor = max(self.floor, modseq)
            self._rewrite = True

    def vanishedSince(self, modseq, uidNext):
        """
        UIDs expunged after C{modseq}, ascending; may name more (UIDs that
        never existed, or went earlier) when the history does not reach back.
        """
        if modseq < self.floor:
            return [uid for uid in range(1, uidNext) if uid not in self.modseqs]
        out = set()
        for recorded, uids in self.expunges:
            if recorded > modseq:
                out.update(uids)
        return sorted(out)

    # -- the file ------------------------------------------------------------

    def _readOnce(self, uidValidity):
        """L{_read} into a fresh state, unless read for C{uidValidity} since
        L{expungedUIDs} asked (L{load} then reconciles what that read)."""
        if self._readFor is None or self._readFor[0] != uidValidity:
            self.modseqs, self.expunges, self._expunged = {}, [], None
            self.floor = 0
            self._readFor = (uidValidity, self._read(uidValidity))
        return self._readFor[1]

    def _read(self, uidValidity):
        """Fill the state from the file; None if it is missing, foreign or damaged."""
        try:
            with open(self.path, encoding="ascii") as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            log.warn("{path}: unreadable ({error}); modseqs restart", path=self.path, error=e)
            return None
        header = lines[0].split()
        fields = {field[:1]: field[1:] for field in header[2:]}
        try:
            if header[:2] != [_MAGIC, "1"] or int(fields["V"]) != uidValidity:
                return None
            self.highest = max(self.highest, int(fields["H"]))
            self.floor = int(fields.get("F", "0"))
        except (KeyError, ValueError, IndexError):
            return None
        count = 0
        for line in lines[1:]:
            parts = line.split()
            try:
                if len(parts) == 4 and parts[0] == "M":
                    uid, modseq = int(parts[1]), int(parts[2])
                    self.modseqs[uid] = (modseq, "" if parts[3] == "-" else parts[3])
                elif len(parts) == 3 and parts[0] == "X":
                    modseq, uids = int(parts[1]), parseRanges(parts[2])
                    for uid in uids:
                        self.modseqs.pop(uid, None)
                    self.expunges.append((modseq, uids))
                elif parts:
                    break  # a torn last line (crash while appending): stop here
                else:
                    continue
            except ValueError:
                break
            self.highest = max(self.highest, modseq)
            count += 1
        self.expunges.sort(key=lambda record: record[0])
        self._appended = count
        return True

    def _snapshot(self):
        lines = ["%s 1 V%d H%d F%d" % (_MAGIC, self.uidValidity, self.highest, self.floor)]
        for uid in sorted(self.modseqs):
            modseq, letters = self.modseqs[uid]
            lines.append("M %d %d %s" % (uid, modseq, letters or "-"))
        for modseq, uids in self.expunges:
            lines.append("X %d %s" % (modseq, formatRanges(uids)))
        return "\n".join(lines) + "\n"

    def flush(self):
        """Write what changed since the last flush (appending, or rewriting when due)."""
        if not self.loaded or (not self._pending and not self._rewrite):
            return
        if self._appended + len(self._pending) > 2 * len(self.modseqs) + 1000:
            self._rewrite = True
        try:
            with self._lock():
                if self._rewrite:
                    # no fsync: the file is rebuilt when it is lost
                    atomicWrite(self.path, self._snapshot().encode("ascii"),
                                fsync=False, syncDirectory=False)
                    self._appended = len(self.modseqs) + len(self.expunges)
                else:
                    with open(self.path, "a", encoding="ascii", opener=privateFile) as f:
                        f.write("".join(line + "\n" for line in self._pending))
                    self._appended += len(self._pending)
        except MailboxInUse:
            return  # another program holds the lock: written at a later flush
        except OSError as e:
            # Only an accelerator: the next open reconciles with the disk.
            log.warn("{path}: not written ({error})", path=self.path, error=e)
            return
        self._pending = []
        self._rewrite = False
