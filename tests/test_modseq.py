"""
Tests for L{mailstack.storage.modseq} and the Maildir mailbox's modseqs
(RFC 7162): persistence across restarts, outside changes, lost files.
"""

import os
import stat

from twisted.trial import unittest

from mailstack.storage import modseq
from mailstack.storage.account import MaildirStore
from tests.test_files import modes, useUmask

MESSAGE = b"Subject: x\r\n\r\nbody\r\n"


class FakeClock:
    def __init__(self, now=1000):
        self.now = now

    def __call__(self):
        return self.now


class NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


class RangesTests(unittest.TestCase):
    """
    UID ranges in the file.
    """

    def test_roundTrip(self):
        """Runs become ranges and back."""
        self.assertEqual(modseq.formatRanges([1, 2, 3, 7, 9, 10]), "1:3,7,9:10")
        self.assertEqual(modseq.parseRanges("1:3,7,9:10"), [1, 2, 3, 7, 9, 10])


class StateTests(unittest.TestCase):
    """
    L{modseq.ModseqState} on its own, with a fake clock.
    """

    def setUp(self):
        self.path = os.path.join(self.mktemp(), "mailstack-modseq")
        os.makedirs(os.path.dirname(self.path))
        self.clock = FakeClock()

    def state(self):
        return modseq.ModseqState(self.path, NoLock, self.clock)

    def test_newMailbox(self):
        """Without a file every message gets the clock's value; history starts there."""
        s = self.state()
        s.load(5, {1: "S", 2: ""})
        self.assertEqual((s.get(1), s.get(2), s.highest, s.floor), (1000, 1000, 1000, 1000))
        self.assertEqual(s.vanishedSince(999, 4), [3])  # before the floor: all missing UIDs

    def test_changesAndPersistence(self):
        """Changes get increasing modseqs; a new process reads them back."""
        s = self.state()
        s.load(5, {1: "", 2: ""})
        s.changed({2: "S"})
        s.changed({}, [1])
        s.flush()
        self.assertEqual((s.get(2), s.highest), (1001, 1002))
        self.assertEqual(s.vanishedSince(1001, 3), [1])
        self.assertEqual(s.vanishedSince(1002, 3), [])
        again = self.state()
        again.load(5, {2: "S"})
        self.assertEqual((again.get(2), again.highest), (1001, 1002))
        self.assertEqual(again.vanishedSince(1001, 3), [1])

    def test_outsideChangeAtLoad(self):
        """Letters that differ from the file's (or unknown UIDs) get new modseqs at load."""
        s = self.state()
        s.load(5, {1: "", 2: ""})
        s.flush()
        self.clock.now = 5000
        again = self.state()
        again.load(5, {1: "S", 2: "", 3: ""})
        self.assertEqual(again.get(2), 1000)
        self.assertGreaterEqual(again.get(1), 5000)
        self.assertGreater(again.get(3), again.get(1))

    def test_expungedWhileAway(self):
        """A UID in the file but not on disk is recorded as expunged at load."""
        s = self.state()
        s.load(5, {1: "", 2: ""})
        s.flush()
        again = self.state()
        again.load(5, {2: ""})
        self.assertEqual(again.vanishedSince(1000, 3), [1])

    def test_lostFileStaysMonotonic(self):
        """A lost file: everything restarts above anything handed out before."""
        s = self.state()
        s.load(5, {1: ""})
        for _ in range(50):
            s.changed({1: "S"})  # faster than the clock: modseqs run ahead of it
        s.flush()
        before = s.highest
        os.unlink(self.path)
        self.clock.now += 100
        again = self.state()
        again.load(5, {1: "S"})
        self.assertGreater(again.highest, before)
        self.assertGreater(again.get(1), before)

    def test_otherUIDValidity(self):
        """A file for another UIDVALIDITY is ignored."""
        s = self.state()
        s.load(5, {1: ""})
        s.changed({1: "S"})
        s.flush()
        again = self.state()
        again.load(6, {1: "S"})
        self.assertEqual(again.floor, again.highest)

    def test_tornLine(self):
        """A half-written last line is ignored; the rest is used."""
        s = self.state()
        s.load(5, {1: "", 2: ""})
        s.flush()
        s.changed({2: "S"})
        s.flush()
        with open(self.path, "a") as f:
            f.write("M 2 99")
        again = self.state()
        again.load(5, {1: "", 2: "S"})
        self.assertEqual(again.get(2), 1001)

    def test_compaction(self):
        """Many appended lines are folded into a rewrite."""
        s = self.state()
        s.load(5, {1: ""})
        for i in range(1100):
            s.changed({1: "S" if i % 2 else ""})
            s.flush()
        with open(self.path) as f:
            self.assertLess(len(f.read().split("\n")), 1100)
        again = self.state()
        again.load(5, {1: "S"})
        self.assertEqual(again.get(1), s.get(1))

    def test_fileMode(self):
        """The file is 0600 under umask 022, whether appended to or rewritten."""
        useUmask(self)
        s = self.state()
        s.load(5, {1: ""})
        s.changed({1: "S"})
        s.flush()
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        os.remove(self.path)
        for i in range(1100):
            s.changed({1: "S" if i % 2 else ""})
            s.flush()
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(os.listdir(os.path.dirname(self.path)), ["mailstack-modseq"])

    def test_failedRewriteLeavesNothing(self):
        """A rewrite whose rename finds the disk full leaves no temporary file beside the mailbox."""
        def diskFull(*args):
            raise OSError(28, "No space left on device")
        s = self.state()
        s.load(5, {1: ""})
        self.patch(os, "rename", diskFull)
        self.patch(os, "replace", diskFull)
        s.flush()
        self.assertEqual(os.listdir(os.path.dirname(self.path)), [])

    def test_historyBounded(self):
        """Old expunge records merge; beyond the limit the floor rises."""
        self.patch(modseq, "MAX_EXPUNGED_UIDS", 10)
        s = self.state()
        s.load(5, {uid: "" for uid in range(1, 31)})
        for uid in range(1, 21):
            s.changed({}, [uid])
        self.assertLessEqual(sum(len(u) for _, u in s.expunges), 10)
        self.assertGreater(s.floor, 1000)
        self.assertEqual(s.vanishedSince(1000, 31), list(range(1, 21)))

    def test_expungedUIDs(self):
        """The expunged (and live) UIDs are known before load (read from the file,
        which load then uses: no second read), kept as expunges come, only for their
        UIDVALIDITY, and forgotten with the history's oldest records."""
        self.patch(modseq, "MAX_EXPUNGED_UIDS", 3)
        s = self.state()
        s.load(5, {uid: "" for uid in range(1, 6)})
        s.changed({}, [1])
        s.flush()
        again = self.state()
        self.assertEqual(again.expungedUIDs(5, read=False), frozenset())
        self.assertEqual(again.expungedUIDs(6), frozenset())
        self.assertEqual(again.expungedUIDs(5), {1})
        self.assertEqual(set(again.liveUIDs(5)), {2, 3, 4, 5})
        reads = []
        real = again._read
        self.patch(again, "_read", lambda v: reads.append(v) or real(v))
        again.load(5, {uid: "" for uid in range(2, 6)})
        self.assertEqual(reads, [])
        self.assertEqual(again.liveUIDs(5), frozenset())  # asked before load only
        self.assertEqual(again.get(2), 1000)
        again.changed({}, [2, 3])
        self.assertEqual(again.expungedUIDs(5), {1, 2, 3})
        self.assertEqual(again.expungedUIDs(6), frozenset())
        again.changed({}, [4])
        self.assertEqual(again.expungedUIDs(5), {2, 3, 4})

    def test_expungedUIDsReset(self):
        """A history started afresh (a new UIDVALIDITY) names no expunged UID."""
        s = self.state()
        s.load(5, {1: "", 2: ""})
        s.changed({}, [1])
        self.assertEqual(s.expungedUIDs(5), {1})
        s.reset(7, {2: ""})
        self.assertEqual(s.expungedUIDs(7), frozenset())


class MailboxModseqTests(unittest.TestCase):
    """
    Modseqs of a Maildir mailbox across sessions, programs and restarts.
    """

    def setUp(self):
        self.root = self.mktemp()
        self.inbox = self.open()

    def open(self):
        return MaildirStore(self.root).account("a@lab.test").getMailbox("INBOX")

    def test_addedAndFlagged(self):
        """Each addition and flag change raises the message's modseq and HIGHESTMODSEQ."""
        one = self.successResultOf(self.inbox.append(MESSAGE))
        two = self.successResultOf(self.inbox.append(MESSAGE))
        m1, m2 = (self.inbox.messageInfo(u).modseq for u in (one, two))
        self.assertLess(m1, m2)
        self.assertEqual(self.inbox.highestModseq, m2)
        info = self.successResultOf(self.inbox.setFlags(one, {"\\Seen"}))
        self.assertGreater(info.modseq, m2)
        self.assertEqual(self.inbox.highestModseq, info.modseq)
        self.assertEqual(self.successResultOf(self.inbox.setFlags(one, {"\\Seen"})).modseq,
                         info.modseq)

    def test_privateModes(self):
        """
        Under umask 022 a new account's Maildir, its parents and every file
        the mailbox writes (modseqs, uidlist, keywords) are 0700 and 0600.
        """
        useUmask(self)
        self.root = self.mktemp()
        inbox = self.open()
        uid = self.successResultOf(inbox.append(MESSAGE))
        self.successResultOf(inbox.setFlags(uid, {"\\Seen", "$Work"}))
        self.successResultOf(inbox.append(MESSAGE))
        self.successResultOf(inbox.expunge([uid]))
        self.successResultOf(inbox.sync())
        found = modes(self.root)
        self.assertIn("mailstack-modseq", {os.path.basename(path) for path in found})
        self.assertEqual({path: mode for path, mode in found.items()
                          if mode != (0o700 if os.path.isdir(os.path.join(self.root, path))
                                      else 0o600)}, {})

    def test_flushWaitsForHeldLock(self):
        """A flag change while another program holds dovecot-uidlist.lock: the sync does
        not fail or wait, and the modseq reaches mailstack-modseq at the first sync after
        the lock is released (a new process sees it)."""
        uid = self.successResultOf(self.inbox.append(MESSAGE))
        self.successResultOf(self.inbox.sync())
        lock = os.path.join(self.inbox.path, "dovecot-uidlist.lock")
        open(lock, "x").close()
        modseq = self.successResultOf(self.inbox.setFlags(uid, {"\\Flagged"})).modseq
        self.successResultOf(self.inbox.sync())
        self.assertNotEqual(self.open().__class__("INBOX", self.inbox.path)
                            .messageInfo(uid).modseq, modseq)
        os.unlink(lock)
        self.successResultOf(self.inbox.sync())
        again = self.open().__class__("INBOX", self.inbox.path)
        self.assertEqual(again.messageInfo(uid).modseq, modseq)

    def test_restart(self):
        """A new process sees the same modseqs and HIGHESTMODSEQ."""
        uid = self.successResultOf(self.inbox.append(MESSAGE))
        self.successResultOf(self.inbox.setFlags(uid, {"\\Flagged"}))
        self.successResultOf(self.inbox.sync())
        highest, mine = self.inbox.highestModseq, self.inbox.messageInfo(uid).modseq
        again = self.open().__class__("INBOX", self.inbox.path)
        self.assertEqual((again.highestModseq, again.messageInfo(uid).modseq), (highest, mine))

    def test_outsideFlagChange(self):
        """A flag change by another program (a rename) gets a new modseq at sync."""
        uid = self.successResultOf(self.inbox.append(MESSAGE))
        self.successResultOf(self.inbox.sync())
        before = self.inbox.highestModseq
        info = self.inbox.messageInfo(uid)
        cur = os.path.join(self.inbox.path, "cur")
        [name] = os.listdir(cur)
        os.rename(os.path.join(cur, name), os.path.join(cur, info.key + ":2,S"))
        self.inbox._stamps = None  # as the watcher would after inotify
        changes = self.successResultOf(self.inbox.sync())
        self.assertEqual(changes.flagsChanged, [uid])
        self.assertGreater(self.inbox.messageInfo(uid).modseq, before)

    def test_expungeHistory(self):
        """vanishedSince names what was expunged after a modseq, also after a restart."""
        uids = [self.successResultOf(self.inbox.append(MESSAGE)) for _ in range(3)]
        mark = self.inbox.highestModseq
        self.successResultOf(self.inbox.expunge(uids[:2]))
        self.assertGreater(self.inbox.highestModseq, mark)
        self.assertEqual(self.inbox.vanishedSince(mark), uids[:2])
        self.successResultOf(self.inbox.sync())
        again = self.open().__class__("INBOX", self.inbox.path)
        self.assertEqual(again.vanishedSince(mark), uids[:2])
        self.assertEqual(again.vanishedSince(again.highestModseq), [])

    def test_fileLost(self):
        """Without its file a mailbox restarts its modseqs above the old HIGHESTMODSEQ."""
        uid = self.successResultOf(self.inbox.append(MESSAGE))
        self.successResultOf(self.inbox.setFlags(uid, {"\\Seen"}))
        self.successResultOf(self.inbox.sync())
        highest = self.inbox.highestModseq
        os.unlink(os.path.join(self.inbox.path, modseq.MODSEQ_FILE))
        again = self.open().__class__("INBOX", self.inbox.path)
        self.assertGreater(again.highestModseq, highest)
        self.assertGreater(again.messageInfo(uid).modseq, highest)
        self.assertEqual(again.vanishedSince(highest), [])
