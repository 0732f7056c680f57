"""
Tests for L{mailstack.storage.uidlist}: Dovecot's uidlist parsed and written as
text, and the UIDVALIDITY chosen when it must be rebuilt; then as a mailbox uses it
(L{UIDListTests}, through the files Dovecot would see).
"""

import os
import time

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from mailstack.storage import dotlock
from mailstack.storage.interfaces import Changes, MailboxInUse, NoSuchMessage, StoreError
from mailstack.storage.uidlist import (
    CorruptUIDList, UIDList, loadForUpdate, newUIDValidity, parseUIDList,
    readSoundUIDList, readUIDList)
from tests.test_dotlock import FileTestCase
from tests.test_maildir import MESSAGE, MESSAGE_CRLF, MaildirTestCase

GUID = "0123456789abcdef0123456789abcdef"


class ParseTests(TestCase):
    """
    L{parseUIDList} and L{UIDList.format}.
    """

    def test_version3(self):
        """Header V N G and extra fields, records with extension fields, are read."""
        uidlist = parseUIDList("3 V1700000000 N20 G%s X1\n"
                               "5 W6 GABC :a,S=4\n"
                               "7  :b:2,S\n"
                               "9 lower :c\n" % (GUID,))
        self.assertEqual((uidlist.uidValidity, uidlist.nextUID, uidlist.guid),
                         (1700000000, 20, GUID))
        self.assertEqual(uidlist.headerExtra, ["X1"])
        self.assertEqual(uidlist.records, {"a,S=4": (5, ["W6", "GABC"]),
                                           "b": (7, []), "c": (9, [])})

    def test_formatRoundTrip(self):
        """format writes version 3, records in UID order, and reads back the same."""
        text = "3 V100 N10 G%s X1\n2 W6 :b\n4 :a\n" % (GUID,)
        uidlist = parseUIDList(text)
        self.assertEqual(uidlist.format(), text.encode("ascii"))
        self.assertEqual(parseUIDList(uidlist.format().decode("ascii")), uidlist)

    def test_version1(self):
        """A version 1 list (validity, next UID; '<uid> <name>') is read."""
        uidlist = parseUIDList("1 1600000000 10\n3 1600000001.M1P1.old:2,S\n")
        self.assertEqual((uidlist.uidValidity, uidlist.nextUID), (1600000000, 10))
        self.assertEqual(uidlist.records, {"1600000001.M1P1.old": (3, [])})
        self.assertRegex(uidlist.guid, "^[0-9a-f]{32}$")
        self.assertTrue(uidlist.format().startswith(b"3 V1600000000 N10 G"))

    def test_nextUIDAfterLast(self):
        """A next UID not beyond the last record's is raised past it."""
        self.assertEqual(parseUIDList("3 V1 N2 G%s\n7 :a\n" % (GUID,)).nextUID, 8)

    def test_corrupt(self):
        """Malformed lists raise CorruptUIDList, with the UIDVALIDITY when readable."""
        cases = {"garbage": None, "1 x y": None, "4 V1 N1": None, "3 N5": None,
                 "3 V9 N0 G%s" % (GUID,): 9, "3 V9 N5 Gxyz": 9,
                 "3 V9 N5\nxyz :a\n": 9, "3 V9 N5\n5 :a\n4 :b\n": 9, "3 V9 N5\n1 a\n": 9,
                 "3 V9 N5\n1 :\n": 9, "3 V9 N5\n1 :a/b\n": 9, "1 9 5\n5 a\n": 9}
        for text, validity in cases.items():
            error = self.assertRaises(CorruptUIDList, parseUIDList, text)
            self.assertEqual(error.uidValidity, validity, text)


class ReadTests(FileTestCase):
    """
    Reading the file: missing, sound, corrupt.
    """

    fileName = "dovecot-uidlist"

    def test_missing(self):
        """A missing file reads as None."""
        self.assertIsNone(readUIDList(self.path))
        self.assertIsNone(readSoundUIDList(self.path))

    def test_corrupt(self):
        """readUIDList raises for a corrupt file, readSoundUIDList returns None."""
        self.write(b"garbage\n")
        self.assertRaises(CorruptUIDList, readUIDList, self.path)
        self.assertIsNone(readSoundUIDList(self.path))

    def test_undecodableNames(self):
        """Bytes that are not UTF-8 survive a read and a rewrite."""
        data = b"3 V1 N3 G" + GUID.encode() + b"\n2 :caf\xe9\n"
        self.write(data)
        self.assertEqual(readSoundUIDList(self.path).format(), data)


class UIDValidityTests(TestCase):
    """
    L{newUIDValidity} and L{loadForUpdate}: rebuilds never reuse a UIDVALIDITY.
    """

    def setUp(self):
        self.path = self.mktemp()
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def warnings(self):
        return [e["log_format"] for e in self.events if "dovecot-uidlist" in e.get("log_format", "")]

    def test_newUIDValidity(self):
        """The current time, or one more than the largest known value if that is later."""
        now = int(time.time())
        self.assertGreaterEqual(newUIDValidity(), now)
        self.assertLessEqual(newUIDValidity(None, 0), time.time())
        self.assertEqual(newUIDValidity(now + 100, None, now + 50), now + 101)

    def test_loadExisting(self):
        """A sound file is returned as it is, nothing logged."""
        with open(self.path, "wb") as f:
            f.write(b"3 V100 N5 G%s\n1 :a\n" % (GUID.encode(),))
        uidlist = loadForUpdate(self.path, 100)
        self.assertEqual((uidlist.uidValidity, uidlist.nextUID, uidlist.guid), (100, 5, GUID))
        self.assertEqual(self.warnings(), [])

    def test_loadMissing(self):
        """A missing file starts empty; logged only if the caller knew a UIDVALIDITY."""
        fresh = loadForUpdate(self.path, None)
        self.assertEqual((fresh.nextUID, fresh.records), (1, {}))
        self.assertGreaterEqual(fresh.uidValidity, int(time.time()) - 1)
        self.assertEqual(self.warnings(), [])
        future = int(time.time()) + 1000
        self.assertEqual(loadForUpdate(self.path, future).uidValidity, future + 1)
        self.assertEqual(len(self.warnings()), 1)
        self.assertFalse(os.path.exists(self.path))

    def test_loadCorrupt(self):
        """A corrupt file starts empty with a UIDVALIDITY above its own, logged."""
        future = int(time.time()) + 1000
        with open(self.path, "wb") as f:
            f.write(b"3 V%d N5 G%s\nxyz :abc\n" % (future, GUID.encode()))
        uidlist = loadForUpdate(self.path, future - 10)
        self.assertEqual((uidlist.uidValidity, uidlist.records), (future + 1, {}))
        self.assertIsInstance(uidlist, UIDList)
        self.assertEqual(len(self.warnings()), 1)
        self.assertIn("corrupt", self.warnings()[0])


class UIDListTests(MaildirTestCase):
    """
    UIDs in dovecot-uidlist: format, persistence, rebuilds, the dotlock.
    """

    def test_format(self):
        """The uidlist is Dovecot's version 3: header V N G, then '<uid> :<base>'."""
        keys = [self.inbox.deliver(MESSAGE) for _ in range(2)]
        self.assertEqual(self.successResultOf(self.inbox.sync()).added, [1, 2])
        lines = self.read("dovecot-uidlist").decode().splitlines()
        # N is the next UID when the file was made: records appended since
        # (Dovecot's way) raise it past their own
        self.assertRegex(lines[0], r"^3 V(\d+) N\d+ G[0-9a-f]{32}$")
        self.assertEqual(parseUIDList(self.read("dovecot-uidlist").decode()).nextUID, 3)
        self.assertEqual(int(lines[0].split()[1][1:]), self.inbox.uidValidity)
        self.assertEqual(lines[1:], ["1 :" + keys[0], "2 :" + keys[1]])
        self.assertEqual(self.inbox.uidNext, 3)
        self.assertFalse(os.path.exists(self.path("dovecot-uidlist.lock")))

    def test_newMailboxHasUIDValidity(self):
        """
        A new mailbox gets UIDVALIDITY = the current time (or one more than the
        last one the account gave, as Dovecot), written at once.
        """
        before = int(time.time())
        self.successResultOf(self.account.createMailbox("Fresh"))
        box = self.account.getMailbox("Fresh")
        others = [self.account.getMailbox(n).uidValidity for n in ("INBOX",)]
        self.assertTrue(before - 1 <= box.uidValidity <= time.time() + 10, box.uidValidity)
        self.assertNotIn(box.uidValidity, others)
        self.assertEqual(box.uidNext, 1)
        self.assertTrue(os.path.exists(self.path(".Fresh", "dovecot-uidlist")))

    def test_stableAcrossProcesses(self):
        """Another store on the same files sees the same UIDs and UIDVALIDITY."""
        keys = [self.inbox.deliver(MESSAGE) for _ in range(3)]
        self.successResultOf(self.inbox.sync())
        self.successResultOf(self.inbox.expunge([2]))
        other = self.freshInbox()
        self.assertEqual(other.uidValidity, self.inbox.uidValidity)
        self.assertEqual([(m.uid, m.key) for m in other.messages()],
                         [(1, keys[0]), (3, keys[2])])
        self.assertEqual(self.successResultOf(other.append(MESSAGE)), 4)

    def test_readsDovecotVersion3(self):
        """A uidlist written by Dovecot (with extension fields) is read; UIDs kept."""
        self.write(b"a\nb\n", "cur", "1700000001.M1P1.dove,S=4:2,S")
        self.write(MESSAGE_CRLF, "cur", "1700000002.M2P1.dove,S=%d,W=%d:2,"
                   % (len(MESSAGE_CRLF), len(MESSAGE_CRLF)))
        self.write(b"3 V1700000000 N20 G0123456789abcdef0123456789abcdef X1\n"
                   b"5 W6 GABC :1700000001.M1P1.dove,S=4\n"
                   b"7 :1700000002.M2P1.dove,S=%d,W=%d\n"
                   b"9 :1700000003.M3P1.dove,S=4\n"
                   % (len(MESSAGE_CRLF), len(MESSAGE_CRLF)), "dovecot-uidlist")
        box = self.freshInbox()
        self.assertEqual(box.uidValidity, 1700000000)
        self.assertEqual(box.uidNext, 20)
        self.assertEqual([m.uid for m in box.messages()], [5, 7])
        self.assertEqual(box.messageInfo(5).flags, {"\\Seen"})
        self.assertEqual(box.messageInfo(5).size, 6)
        with box.openMessage(5) as f:
            self.assertEqual(f.read(), b"a\r\nb\r\n")
        self.assertEqual(self.successResultOf(box.append(MESSAGE)), 20)
        text = self.read("dovecot-uidlist").decode()
        self.assertTrue(text.startswith("3 V1700000000 N21 G0123456789abcdef0123456789abcdef X1\n"))
        self.assertIn("5 W6 GABC :1700000001.M1P1.dove,S=4\n", text)
        self.assertNotIn("1700000003", text)

    def test_readsVersion1(self):
        """An old version 1 uidlist (Dovecot 1.0, Courier) is read; UIDs kept."""
        self.write(MESSAGE_CRLF, "cur", "1600000001.M1P1.old:2,")
        self.write(b"1 1600000000 10\n3 1600000001.M1P1.old\n", "dovecot-uidlist")
        box = self.freshInbox()
        self.assertEqual((box.uidValidity, box.uidNext), (1600000000, 10))
        self.assertEqual([m.uid for m in box.messages()], [3])
        self.assertEqual(self.successResultOf(box.append(MESSAGE)), 10)
        self.assertTrue(self.read("dovecot-uidlist").startswith(b"3 V1600000000 N11 G"))

    def test_deletedUIDListRebuilt(self):
        """Without the uidlist the files are kept, renumbered in order, list rewritten."""
        keys = [self.inbox.deliver(MESSAGE, internalDate=1000000000 + n) for n in range(3)]
        self.successResultOf(self.inbox.sync())
        self.successResultOf(self.inbox.expunge([1]))
        os.unlink(self.path("dovecot-uidlist"))
        box = self.freshInbox()
        self.assertEqual([(m.uid, m.key) for m in box.messages()], [(1, keys[1]), (2, keys[2])])
        self.assertTrue(os.path.exists(self.path("dovecot-uidlist")))

    def test_deletedUIDListSameProcess(self):
        """A session that had UIDs sees a new, larger UIDVALIDITY after a rebuild."""
        self.inbox.deliver(MESSAGE)
        self.successResultOf(self.inbox.sync())
        validity = self.inbox.uidValidity
        os.unlink(self.path("dovecot-uidlist"))
        changes = self.successResultOf(self.inbox.sync())
        self.assertGreater(self.inbox.uidValidity, validity)
        self.assertEqual((changes.expunged, changes.added), ([1], [1]))

    def test_corruptUIDList(self):
        """A corrupt uidlist is rebuilt with a larger UIDVALIDITY, and logged."""
        self.inbox.deliver(MESSAGE)
        self.successResultOf(self.inbox.sync())
        future = int(time.time()) + 1000
        self.write(b"3 V%d N5 G0123456789abcdef0123456789abcdef\nxyz :abc\n" % (future,),
                   "dovecot-uidlist")
        events = self.captureLog()
        box = self.freshInbox()
        self.assertEqual(box.uidValidity, future + 1)
        self.assertEqual([m.uid for m in box.messages()], [1])
        self.assertTrue(any("corrupt dovecot-uidlist" in e.get("log_format", "")
                            for e in events))

    def test_unreadableUIDList(self):
        """A uidlist with no readable header is rebuilt with UIDVALIDITY = now."""
        self.write(b"garbage\n", "dovecot-uidlist")
        before = int(time.time())
        box = self.freshInbox()
        self.assertGreaterEqual(box.uidValidity, before)
        self.assertTrue(self.read("dovecot-uidlist").startswith(b"3 V"))

    def test_unorderedUIDsCorrupt(self):
        """UIDs out of order mean corruption (as Dovecot judges it)."""
        self.write(b"3 V100 N9 G0123456789abcdef0123456789abcdef\n5 :a\n4 :b\n",
                   "dovecot-uidlist")
        self.assertGreater(self.freshInbox().uidValidity, 100)

    def test_staleLockRemoved(self):
        """A lock older than 120 s is a dead process's: removed, the sync proceeds."""
        self.write(b"", "dovecot-uidlist.lock", mtime=time.time() - 200)
        self.inbox.deliver(MESSAGE)
        self.assertEqual(self.successResultOf(self.inbox.sync()).added, [1])
        self.assertFalse(os.path.exists(self.path("dovecot-uidlist.lock")))

    def test_freshLockWaitsThenFails(self):
        """With a wait allowed (lockTimeout raised), a live lock makes UID assignment
        for an APPEND wait, then fail with MailboxInUse (a StoreError)."""
        self.write(b"", "dovecot-uidlist.lock")
        self.inbox.lockTimeout = 0.2
        placed = self.inbox.placeMessage(MESSAGE)
        start = time.monotonic()
        error = self.assertRaises(MailboxInUse, self.inbox.adopt, placed)
        self.assertIsInstance(error, StoreError)
        self.assertGreaterEqual(time.monotonic() - start, 0.2)
        self.assertIn("locked", str(error))
        self.assertTrue(os.path.exists(self.path("dovecot-uidlist.lock")))
        os.unlink(self.path("dovecot-uidlist.lock"))
        self.assertEqual(self.successResultOf(self.inbox.sync()).added, [1])

    def holdLock(self):
        """Another program holds the uidlist lock; sleeping for it is recorded."""
        self.write(b"", "dovecot-uidlist.lock")
        sleeps = []
        self.patch(dotlock.time, "sleep", sleeps.append)
        return sleeps

    def test_heldLockSyncKeepsSnapshot(self):
        """While another program holds the lock, sync does not wait: the messages that
        have UIDs stay, a new file waits for its UID, and gets it at the first sync
        after the lock is gone; one log line for the whole episode."""
        self.successResultOf(self.inbox.append(MESSAGE))
        self.successResultOf(self.inbox.sync())  # claims its \\Recent
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        sleeps = self.holdLock()
        self.inbox.deliver(MESSAGE)
        self.assertEqual(self.successResultOf(self.inbox.sync()), Changes())
        self.assertEqual(self.successResultOf(self.inbox.sync()), Changes())
        self.assertEqual([m.uid for m in self.inbox.messages()], [1])
        self.assertEqual(self.inbox.noteDelivery(), Changes())
        self.assertEqual(sleeps, [])
        self.assertEqual(len([e for e in events if "locked by another program"
                              in e.get("log_format", "")]), 1)
        os.unlink(self.path("dovecot-uidlist.lock"))
        self.assertEqual(self.successResultOf(self.inbox.sync()).added, [2])

    def test_heldLockOpenKeepsUIDs(self):
        """A mailbox opened while another program holds the lock shows the messages that
        have UIDs, without waiting."""
        self.successResultOf(self.inbox.append(MESSAGE))
        sleeps = self.holdLock()
        self.inbox.deliver(MESSAGE)
        box = self.freshInbox()
        self.assertEqual([m.uid for m in box.messages()], [1])
        self.assertEqual(sleeps, [])

    def test_heldLockWritesFailAtOnce(self):
        """Writes that need the lock (UIDs for an APPEND, a new keyword) fail at once
        with MailboxInUse rather than wait; nothing changes."""
        sleeps = self.holdLock()
        placed = self.inbox.placeMessage(MESSAGE)
        self.assertRaises(MailboxInUse, self.inbox.adopt, placed)
        self.assertRaises(MailboxInUse, self.inbox.noteDelivery, wait=False)
        self.assertEqual(self.inbox.messages(), [])
        os.unlink(self.path("dovecot-uidlist.lock"))
        uid = self.inbox.adopt(placed)
        self.write(b"", "dovecot-uidlist.lock")
        self.failureResultOf(self.inbox.setFlags(uid, ["$Label1"]), MailboxInUse)
        self.assertEqual(self.inbox.messageInfo(uid).flags, set())
        self.assertEqual(sleeps, [])

    def test_unknownFilesOrderedByTime(self):
        """Files another MDA drops in get UIDs by mtime, then name."""
        self.write(b"x\n", "new", "300.M1P1.mda", mtime=3000)
        self.write(b"x\n", "new", "100.M1P1.mda", mtime=5000)
        self.write(b"x\n", "new", "200.M1P1.mda", mtime=1000)
        self.successResultOf(self.inbox.sync())
        self.assertEqual([m.key for m in self.inbox.messages()],
                         ["200.M1P1.mda", "300.M1P1.mda", "100.M1P1.mda"])

    def test_vanishedFilesExpunged(self):
        """A file removed by another program is reported expunged and leaves the list."""
        keys = [self.inbox.deliver(MESSAGE) for _ in range(2)]
        self.successResultOf(self.inbox.sync())
        os.unlink(self.path("cur", keys[0] + ":2,"))
        self.assertEqual(self.successResultOf(self.inbox.sync()), Changes(expunged=[1]))
        self.assertRaises(NoSuchMessage, self.inbox.messageInfo, 1)
        self.successResultOf(self.inbox.append(MESSAGE))
        self.assertNotIn(keys[0], self.read("dovecot-uidlist").decode())

    def test_syncCheapWhenUnchanged(self):
        """When new/, cur/ and the uidlist are unchanged, sync does not list them."""
        self.inbox.deliver(MESSAGE)
        self.successResultOf(self.inbox.sync())
        listings = []
        original = self.inbox._listFiles
        self.inbox._listFiles = lambda: listings.append(1) or original()
        self.ageStamps(self.inbox)
        self.successResultOf(self.inbox.sync())
        count = len(listings)
        self.assertEqual(self.successResultOf(self.inbox.sync()), Changes())
        self.assertEqual(len(listings), count)
        self.inbox.deliver(MESSAGE)
        self.assertEqual(self.successResultOf(self.inbox.sync()).added, [2])
        self.assertGreater(len(listings), count)
