"""
Tests for the lock scope of L{mailstack.storage.maildir}'s writes: APPEND
writes and fsyncs its file with no lock held and takes the uidlist lock only
to place it and number it (with the other appends written meanwhile); EXPUNGE
leaves dovecot-uidlist alone, as Dovecot does. Faults on either side leave no
file and use up no UID.
"""

import errno
import os
import shutil
import threading

from twisted.internet import defer
from twisted.logger import formatEvent
from twisted.trial.unittest import TestCase

from mailstack.storage import maildir
from mailstack.storage.account import MaildirStore
from mailstack.storage.interfaces import MailboxInUse, NoSpace, NoSuchMailbox
from mailstack.storage.uidlist import parseUIDList
from tests.test_maildir import ADDRESS, MESSAGE, MaildirTestCase


class HeldJobs:
    """
    A C{runInThread} that keeps each job until the test runs it
    (L{runHere} in the test's thread, L{start} in a real thread).
    """

    def __init__(self):
        self.jobs = []

    def __call__(self, f, *args, **kwargs):
        d = defer.Deferred()
        self.jobs.append((f, args, kwargs, d))
        return d

    def names(self):
        return [f.__name__ for f, _, _, _ in self.jobs]

    def runHere(self, index=0):
        """Run a job now; its Deferred fires with its result."""
        f, args, kwargs, d = self.jobs.pop(index)
        defer.maybeDeferred(f, *args, **kwargs).chainDeferred(d)

    def start(self, index=0):
        """Run a job in a real thread; C{finish()} (after it ended) fires its Deferred."""
        f, args, kwargs, d = self.jobs.pop(index)
        outcome = []
        thread = threading.Thread(target=lambda: outcome.append(
            defer.maybeDeferred(f, *args, **kwargs)))
        thread.start()

        def finish():
            thread.join(10)
            outcome[0].chainDeferred(d)
        return finish


def uidlistLines(mailbox):
    with open(os.path.join(mailbox.path, "dovecot-uidlist"), "rb") as f:
        return f.read().decode().splitlines()


class AppendLockScopeTests(TestCase):
    """APPEND's file work runs outside the uidlist lock; placing is shared."""

    def setUp(self):
        self.jobs = HeldJobs()
        store = MaildirStore(self.mktemp(), runInThread=self.jobs)
        self.inbox = store.account(ADDRESS).getMailbox("INBOX")

    def test_writesWhileLockHeld(self):
        """Two appends write and fsync their files while a third holds the uidlist lock
        (placing its message); then both are placed with one uidlist write, and the
        three get UIDs 1, 2, 3 in the order they were written."""
        results = [self.inbox.append(b"Subject: %d\r\n\r\nbody\r\n" % (i,)) for i in range(3)]
        # Every append's file work is handed out at once: none waits for another.
        self.assertEqual(self.jobs.names(), ["_writeTemporaries"] * 3)
        self.jobs.runHere()
        self.assertEqual(self.jobs.names(), ["_writeTemporaries"] * 2 + ["_commitWritten"])
        holding, release = threading.Event(), threading.Event()
        real = maildir.fsyncDirectory

        def slowFsync(path):
            holding.set()
            self.assertTrue(release.wait(10))
            real(path)
        self.patch(maildir, "fsyncDirectory", slowFsync)
        finish = self.jobs.start(2)
        self.assertTrue(holding.wait(10))
        lockPath = os.path.join(self.inbox.path, "dovecot-uidlist.lock")
        self.assertTrue(os.path.exists(lockPath))
        fsyncs = []
        realFsync = os.fsync
        self.patch(os, "fsync", lambda fd: (fsyncs.append(fd), realFsync(fd)))
        self.jobs.runHere()
        self.jobs.runHere()
        self.assertEqual(len(fsyncs), 2)  # both files written and fsynced meanwhile
        self.assertEqual(len(os.listdir(os.path.join(self.inbox.path, "tmp"))), 2)
        self.assertTrue(os.path.exists(lockPath))
        release.set()
        finish()
        self.assertEqual(self.successResultOf(results[0]), 1)
        self.assertFalse(os.path.exists(lockPath))
        # The two waiting appends: one job places both.
        self.assertEqual(self.jobs.names(), ["_commitWritten"])
        writes = []
        realCommit, realAppend = maildir.DotLock.commit, maildir.appendRecords
        self.patch(maildir.DotLock, "commit",
                   lambda lock, data: (writes.append(data), realCommit(lock, data)))
        self.patch(maildir, "appendRecords",
                   lambda path, data: (writes.append(data), realAppend(path, data)))
        self.jobs.runHere()
        self.assertEqual(self.jobs.names(), [])
        self.assertEqual([self.successResultOf(d) for d in results[1:]], [2, 3])
        self.assertEqual(len(writes), 1)
        self.assertEqual(os.listdir(os.path.join(self.inbox.path, "tmp")), [])
        subjects = {}
        for info in self.inbox.messages():
            with self.inbox.openMessage(info.uid) as f:
                subjects[info.uid] = f.readline()
        self.assertEqual(subjects, {uid: b"Subject: %d\r\n" % (uid - 1,) for uid in (1, 2, 3)})

    def test_strictGroupRefusedOthersPlaced(self):
        """Placed in one job: a MULTIAPPEND refused because another program keeps the
        uidlist lock leaves nothing, while a plain APPEND of the same job is stored (its
        UID comes later)."""
        self.inbox.threadLockTimeout = 0.0
        first = self.inbox.append(b"first\r\n")
        many = self.inbox.appendMany([(b"one\r\n", (), None), (b"two\r\n", (), None)])
        one = self.inbox.append(b"three\r\n")
        self.jobs.runHere()  # first's file: its placing job takes the mailbox's turn
        self.jobs.runHere()  # many's and one's files: both wait for the next turn
        self.jobs.runHere()
        self.assertEqual(self.jobs.names(), ["_commitWritten"])
        self.jobs.runHere()
        self.assertEqual(self.successResultOf(first), 1)
        with open(os.path.join(self.inbox.path, "dovecot-uidlist.lock"), "w"):
            pass
        self.assertEqual(self.jobs.names(), ["_commitWritten"])
        self.jobs.runHere()
        self.assertEqual(self.jobs.names(), [])
        self.failureResultOf(many, MailboxInUse)
        self.assertIsNone(self.successResultOf(one))
        self.assertEqual(os.listdir(os.path.join(self.inbox.path, "tmp")), [])
        stored = set()
        for name in os.listdir(os.path.join(self.inbox.path, "new")):
            with open(os.path.join(self.inbox.path, "new", name), "rb") as f:
                stored.add(f.read())
        self.assertEqual(stored, {b"first\r\n", b"three\r\n"})


class AppendMailboxGoneTests(TestCase):
    """A folder deleted between an APPEND's file write and its turn."""

    def test_deletedBeforeTheTurn(self):
        """The APPEND fails with NoSuchMailbox (IMAP NO [TRYCREATE]), nothing is left
        behind and no lock file is made in its place."""
        jobs = HeldJobs()
        store = MaildirStore(self.mktemp(), runInThread=jobs)
        account = store.account(ADDRESS)
        created = account.createMailbox("Box")
        while jobs.jobs:
            jobs.runHere()
        self.successResultOf(created)
        opened = account.openMailbox("Box")
        while jobs.jobs:
            jobs.runHere()
        box = self.successResultOf(opened)
        d = box.append(MESSAGE)
        jobs.runHere()  # the file written to tmp/
        self.assertEqual(jobs.names(), ["_commitWritten"])
        shutil.rmtree(box.path)  # another program deletes the folder
        jobs.runHere()
        self.failureResultOf(d, NoSuchMailbox)
        self.assertFalse(os.path.exists(box.path))


class AppendFaultTests(MaildirTestCase):
    """A full disk while appending: nothing left behind, no UID used up."""

    def assertEmpty(self):
        for subdir in ("tmp", "new", "cur"):
            self.assertEqual(self.files(subdir), [], subdir)

    def test_noSpaceWritingFile(self):
        """ENOSPC while the message is written to tmp/: NoSpace, no file, and the next
        message gets the UID it would have had."""
        self.successResultOf(self.inbox.sync())
        uidNext = self.inbox.uidNext
        real = maildir.crlf.copyAsCRLF

        def full(source, f):
            real(source, f)
            raise OSError(errno.ENOSPC, "No space left on device")
        self.patch(maildir.crlf, "copyAsCRLF", full)
        self.failureResultOf(self.inbox.append(MESSAGE), NoSpace)
        self.failureResultOf(self.inbox.appendMany([(MESSAGE, (), None)]), NoSpace)
        self.assertEmpty()
        self.patch(maildir.crlf, "copyAsCRLF", real)
        self.assertEqual(self.successResultOf(self.inbox.append(MESSAGE)), uidNext)

    def test_noSpaceWritingUIDList(self):
        """ENOSPC while the uidlist is written: a MULTIAPPEND fails with NoSpace and
        leaves nothing; a plain APPEND keeps its message (durable: the reply is OK
        without a UID) and it gets the next UID once the disk has room."""
        self.successResultOf(self.inbox.sync())
        uidNext = self.inbox.uidNext
        real, realAppend = maildir.DotLock.commit, maildir.appendRecords

        def full(*args):
            raise OSError(errno.ENOSPC, "No space left on device")
        self.patch(maildir.DotLock, "commit", full)
        self.patch(maildir, "appendRecords", full)
        self.failureResultOf(self.inbox.appendMany([(MESSAGE, (), None)]), NoSpace)
        self.assertEmpty()
        self.assertFalse(os.path.exists(self.path("dovecot-uidlist.lock")))
        self.assertIsNone(self.successResultOf(self.inbox.append(MESSAGE)))
        self.assertEqual(len(self.files("new")), 1)
        self.assertEqual(self.files("tmp"), [])
        self.patch(maildir.DotLock, "commit", real)
        self.patch(maildir, "appendRecords", realAppend)
        self.successResultOf(self.inbox.sync())
        self.assertEqual([info.uid for info in self.inbox.messages()], [uidNext])

    def test_placedDirectoryOnlySynced(self):
        """Only the directory that received the message is fsynced (new/ for a
        message without flags, cur/ for one with)."""
        synced = []
        real = maildir.fsyncDirectory
        self.patch(maildir, "fsyncDirectory", lambda path: (synced.append(
            os.path.basename(path)), real(path)))
        self.successResultOf(self.inbox.append(MESSAGE))
        self.successResultOf(self.inbox.append(MESSAGE, {"\\Seen"}))
        self.assertEqual(synced, ["new", "cur"])


class LazyExpungeTests(MaildirTestCase):
    """EXPUNGE unlinks; dovecot-uidlist keeps the line until it is next written."""

    def test_expungeLeavesUIDList(self):
        """Expunging does not write dovecot-uidlist; every reader (this process, another
        one) skips the line of the gone file; the next numbering drops it and never
        gives its UID again."""
        uids = [self.successResultOf(self.inbox.append(MESSAGE)) for _ in range(3)]
        before = self.read("dovecot-uidlist")
        self.assertEqual(self.successResultOf(self.inbox.expunge([uids[1]])), [uids[1]])
        self.assertEqual(self.inbox.expungeNow([uids[2]]), [uids[2]])
        self.assertEqual(self.read("dovecot-uidlist"), before)
        self.assertEqual([m.uid for m in self.inbox.messages()], [uids[0]])
        self.assertEqual([m.uid for m in self.freshInbox().messages()], [uids[0]])
        self.assertEqual(self.successResultOf(self.inbox.append(MESSAGE)), uids[2] + 1)
        uidlist = parseUIDList(self.read("dovecot-uidlist").decode())
        self.assertEqual(sorted(uid for uid, _ in uidlist.records.values()),
                         [uids[0], uids[2] + 1])
        self.assertEqual(uidlist.nextUID, uids[2] + 2)


class InPlaceUIDListTests(MaildirTestCase):
    """
    New UIDs are appended to dovecot-uidlist in place and fdatasynced (Dovecot's
    way); the file is recreated only when most of its lines are of gone files or
    it cannot be appended to (a torn last line); a torn line never renumbers.
    """

    def uidlistPath(self):
        return self.path("dovecot-uidlist")

    def text(self):
        return self.read("dovecot-uidlist").decode()

    def test_appendedInPlace(self):
        """An APPEND adds its line to the end of the same file, fdatasynced, the
        header left as it was; the file reads back as Dovecot writes it."""
        first = self.successResultOf(self.inbox.append(MESSAGE))
        before, inode = self.text(), os.stat(self.uidlistPath()).st_ino
        synced = []
        realSync = os.fdatasync
        self.patch(os, "fdatasync", lambda fd: (synced.append(fd), realSync(fd)))
        second = self.successResultOf(self.inbox.append(MESSAGE))
        after = self.text()
        self.assertEqual(os.stat(self.uidlistPath()).st_ino, inode)
        self.assertEqual(len(synced), 1)
        self.assertTrue(after.startswith(before))
        info = self.inbox.messageInfo(second)
        self.assertEqual(after[len(before):], "%d :%s\n" % (second, info.key))
        uidlist = parseUIDList(after)
        self.assertEqual((uidlist.nextUID, second), (first + 2, first + 1))
        self.assertEqual(uidlist.records[info.key], (second, []))

    def test_compactedWhenMostLinesAreGone(self):
        """Expunged messages' lines stay until they are over a quarter of the file;
        then the next numbering recreates it with the live ones only, UIDs kept."""
        uids = [self.successResultOf(self.inbox.append(MESSAGE)) for _ in range(4)]
        inode = os.stat(self.uidlistPath()).st_ino
        self.successResultOf(self.inbox.expunge(uids[:2]))
        self.assertEqual(len(self.text().splitlines()), 5)
        fifth = self.successResultOf(self.inbox.append(MESSAGE))
        self.assertNotEqual(os.stat(self.uidlistPath()).st_ino, inode)
        uidlist = parseUIDList(self.text())
        self.assertEqual(sorted(uid for uid, _ in uidlist.records.values()),
                         uids[2:] + [fifth])
        self.assertEqual(uidlist.lines, 3)
        self.assertEqual((fifth, uidlist.nextUID), (uids[-1] + 1, uids[-1] + 2))

    def test_recreateDurable(self):
        """A recreated uidlist (here a compaction) has its directory fsynced after
        the rename, so a crash cannot bring the old file back; an append in place
        leaves the directory alone (the file is fdatasynced)."""
        synced = []
        real = maildir.fsyncDirectory

        def recording(path):
            synced.append((path, os.stat(self.uidlistPath()).st_ino))
            real(path)
        self.patch(maildir, "fsyncDirectory", recording)
        uids = [self.successResultOf(self.inbox.append(MESSAGE)) for _ in range(4)]
        home = self.inbox.path
        self.assertNotIn(home, [path for path, _ in synced])  # appended in place
        self.successResultOf(self.inbox.expunge(uids[:2]))
        self.successResultOf(self.inbox.append(MESSAGE))  # compacts
        self.assertEqual([(path, inode) for path, inode in synced if path == home],
                         [(home, os.stat(self.uidlistPath()).st_ino)])

    def crashedAppend(self, fragment):
        """
        Two messages with UIDs, a third placed without one, and the uidlist
        ending in C{fragment(base of the third)}: what a crash in the middle of
        appending its line leaves.
        """
        uids = [self.successResultOf(self.inbox.append(MESSAGE)) for _ in range(2)]
        third = self.inbox.deliver(MESSAGE)
        with open(self.uidlistPath(), "ab") as f:
            f.write(fragment(third).encode())
        return uids, third

    def assertNotRenumbered(self, uids, third):
        """Another process reading the mailbox keeps UIDVALIDITY and the UIDs; the
        third message gets the next UID; the file is whole again."""
        validity = self.inbox.uidValidity
        events = self.captureLog()
        other = self.freshInbox()
        self.successResultOf(other.sync())
        self.assertEqual(other.uidValidity, validity)
        byKey = {info.key: info.uid for info in other.messages()}
        self.assertEqual(sorted(byKey.values()), uids + [uids[-1] + 1])
        self.assertEqual(byKey[third], uids[-1] + 1)
        self.assertTrue(self.text().endswith("\n"))
        self.assertEqual(parseUIDList(self.text()).records[third], (uids[-1] + 1, []))
        self.assertFalse([e for e in events if "UIDVALIDITY" in str(e.get("log_format"))])

    def test_tornUIDIgnored(self):
        """A last line cut inside its UID (no space yet: the list used to be called
        corrupt and the mailbox renumbered) is no record: no renumbering."""
        uids, third = self.crashedAppend(lambda base: "3")
        self.assertNotRenumbered(uids, third)

    def test_tornNameIgnored(self):
        """A last line cut inside its file name names no file: the message still gets
        its UID, no renumbering, and the next line is not glued to the fragment."""
        uids, third = self.crashedAppend(lambda base: "3 :" + base[:8])
        self.assertNotRenumbered(uids, third)

    def test_tornZeroesIgnored(self):
        """A tail of NUL bytes (a filesystem that extended the file before the data
        reached it) is ignored too."""
        uids, third = self.crashedAppend(lambda base: "\0" * 40)
        self.assertNotRenumbered(uids, third)

    def test_appendFailsHalfway(self):
        """ENOSPC after part of the new lines went out: the MULTIAPPEND fails and
        leaves no file; a whole line written stays a record (its UID is never given
        again), a cut one is dropped; no renumbering."""
        self.successResultOf(self.inbox.append(MESSAGE))
        validity, before = self.inbox.uidValidity, self.files("new")
        realWrite = os.write
        wrote = []

        def halfThenFull(fd, data):
            if not os.readlink("/proc/self/fd/%d" % (fd,)).endswith(maildir.UIDLIST):
                return realWrite(fd, data)  # the messages' own files
            if not wrote:
                wrote.append(bytes(data))
                keep = bytes(data).index(b"\n") + 5  # the first line and a bit
                return realWrite(fd, bytes(data)[:keep])
            raise OSError(errno.ENOSPC, "No space left on device")
        self.patch(os, "write", halfThenFull)
        d = self.inbox.appendMany([(MESSAGE, (), None), (MESSAGE, (), None)])
        self.patch(os, "write", realWrite)
        self.failureResultOf(d, NoSpace)
        self.assertEqual(self.files("tmp"), [])
        self.assertEqual(self.files("new"), before)
        self.assertFalse(self.text().endswith("\n"))
        uid = self.successResultOf(self.inbox.append(MESSAGE))
        self.assertEqual(uid, 3)  # 2 went out whole: never given again
        self.assertEqual(self.inbox.uidValidity, validity)
        self.assertTrue(self.text().endswith("\n"))
        self.assertEqual([info.uid for info in self.freshInbox().messages()], [1, 3])

    def test_syncFails(self):
        """fdatasync failing (EIO): the MULTIAPPEND fails with no file left, and the
        UIDs its lines took are not given again."""
        self.successResultOf(self.inbox.append(MESSAGE))
        before = self.files("new")

        def failing(fd):
            raise OSError(errno.EIO, "Input/output error")
        self.patch(os, "fdatasync", failing)
        self.failureResultOf(self.inbox.appendMany([(MESSAGE, (), None)]), OSError)
        self.assertEqual(self.files("new"), before)
        self.patch(os, "fdatasync", os.fsync)
        self.assertEqual(self.successResultOf(self.inbox.append(MESSAGE)), 3)


class HeldJobsSelfTest(TestCase):
    """The helper runs what it was given."""

    def test_runHere(self):
        """A held job runs when asked and its Deferred fires with the result."""
        jobs = HeldJobs()
        d = jobs(lambda x: x + 1, 1)
        self.assertNoResult(d)
        jobs.runHere()
        self.assertEqual(self.successResultOf(d), 2)


class ReappearedTests(MaildirTestCase):
    """
    An EXPUNGEd file put back under its name (a restore from a backup, an admin's
    mv back, Dovecot moving it out and back) gets a new UID, as Dovecot's index
    gives it ("Expunged message reappeared, giving a new UID"): its uidlist line
    stays after EXPUNGE, and its old UID was announced gone (RFC 3501 2.3.1.1).
    """

    def expungeKeepingCopy(self, mailbox, uid):
        """EXPUNGE C{uid} in C{mailbox}; return a function putting its file back."""
        mailbox.syncNow()  # where the file is now (another process may have moved it)
        entry = mailbox._entries[uid]
        source = mailbox._entryPath(entry)
        backup = self.path("backup-%d" % (uid,))
        shutil.copy(source, backup)
        self.assertEqual(mailbox.expungeNow([uid]), [uid])
        return lambda: shutil.move(backup, source)

    def assertListedOnce(self, base, uid):
        """dovecot-uidlist names C{base} on one line only, with C{uid}."""
        text = self.read("dovecot-uidlist").decode()
        self.assertEqual([line.split()[0] for line in text.splitlines()[1:]
                          if line.endswith(":" + base)], [str(uid)])

    def test_expungedFileBackGetsNewUID(self):
        """A file EXPUNGEd and then put back under its name is shown under a new UID
        (its old line dropped from dovecot-uidlist), with one warning."""
        events = self.captureLog()
        uids = [self.successResultOf(self.inbox.append(MESSAGE, ["\\Seen"])) for _ in range(3)]
        base = self.inbox._entries[uids[1]].base
        restore = self.expungeKeepingCopy(self.inbox, uids[1])
        restore()
        changes = self.inbox.syncNow()
        self.assertEqual(list(changes.added), [uids[2] + 1])
        self.assertEqual(sorted(self.inbox._entries), [uids[0], uids[2], uids[2] + 1])
        self.assertEqual(self.inbox.uidNext, uids[2] + 2)
        self.assertListedOnce(base, uids[2] + 1)
        warnings = [formatEvent(e) for e in events if "reappeared" in formatEvent(e)]
        self.assertEqual(len(warnings), 1)
        self.assertIn("old uid=%d" % (uids[1],), warnings[0])
        fresh = self.freshInbox()
        fresh.syncNow()
        self.assertEqual(sorted(fresh._entries), [uids[0], uids[2], uids[2] + 1])

    def test_backThroughContractSync(self):
        """The contract's sync (numbering in a worker thread) gives the file a new UID
        too, never showing the old one in between."""
        uids = [self.successResultOf(self.inbox.append(MESSAGE)) for _ in range(2)]
        self.expungeKeepingCopy(self.inbox, uids[0])()
        changes = self.successResultOf(self.inbox.sync())
        self.assertEqual((list(changes.added), list(changes.expunged)), ([uids[1] + 1], []))
        self.assertEqual(sorted(self.inbox._entries), [uids[1], uids[1] + 1])

    def test_freshProcessNeverSawExpunge(self):
        """A process opening the folder after the expunge and the restore (it never saw
        the expunge: the modseq file's history tells it) gives the file a new UID."""
        uids = [self.successResultOf(self.inbox.append(MESSAGE)) for _ in range(2)]
        restore = self.expungeKeepingCopy(self.inbox, uids[0])
        self.inbox.syncNow()  # the expunge's modseq record is written
        restore()
        fresh = self.freshInbox()
        self.assertNotIn(uids[0], fresh._entries)
        self.successResultOf(fresh.sync())
        self.assertEqual(sorted(fresh._entries), [uids[1], uids[1] + 1])
        self.inbox.syncNow()
        self.assertEqual(sorted(self.inbox._entries), [uids[1], uids[1] + 1])

    def test_otherProcessSawExpunge(self):
        """Two processes that both saw the expunge: whichever numbers first gives the
        file its new UID, the other takes that UID, the line listed once."""
        other = self.freshInbox()
        uids = [self.successResultOf(self.inbox.append(MESSAGE)) for _ in range(2)]
        other.syncNow()
        base = self.inbox._entries[uids[0]].base
        restore = self.expungeKeepingCopy(self.inbox, uids[0])
        self.assertEqual(list(other.syncNow().expunged), [uids[0]])
        restore()
        self.assertEqual(list(other.syncNow().added), [uids[1] + 1])
        changes = self.inbox.syncNow()
        self.assertEqual((list(changes.added), list(changes.expunged)), ([uids[1] + 1], []))
        self.assertListedOnce(base, uids[1] + 1)

    def test_expungedWhileListing(self):
        """A file this process expunges while a worker thread numbering new files
        has just listed it is not taken for a file come back: no new UID for a
        file that is gone, no warning."""
        events = self.captureLog()
        uids = [self.successResultOf(self.inbox.append(MESSAGE, ["\\Seen"])) for _ in range(2)]
        self.inbox.deliver(MESSAGE)  # waits for a UID: the sync numbers it in a thread
        real = self.inbox._listFiles
        lockPath = self.path("dovecot-uidlist.lock")

        def listing():
            found = real()
            if os.path.exists(lockPath) and uids[0] in self.inbox._entries:
                self.inbox.expungeNow([uids[0]])  # the reactor, meanwhile
            return found
        self.patch(self.inbox, "_listFiles", listing)
        self.successResultOf(self.inbox.sync())
        self.assertEqual(sorted(self.inbox._entries), [uids[1], uids[1] + 1])
        self.assertEqual(self.inbox.uidNext, uids[1] + 2)
        self.assertEqual([e for e in events if "reappeared" in formatEvent(e)], [])

    def test_freshListingMissesFile(self):
        """A process opening the folder whose first directory listing misses a
        message (readdir and a rename by another process at once) lists again
        rather than record it expunged: it keeps its UID there and everywhere."""
        events = self.captureLog()
        uids = [self.successResultOf(self.inbox.append(MESSAGE, ["\\Seen"])) for _ in range(2)]
        self.inbox.syncNow()  # the modseq file has both
        missed = self.inbox._entries[uids[0]].base
        real = maildir.MaildirMailbox._listFiles
        calls = []

        def listing(mailbox):
            found = real(mailbox)
            calls.append(1)
            if len(calls) == 1:
                del found[missed]
            return found
        self.patch(maildir.MaildirMailbox, "_listFiles", listing)
        fresh = self.freshInbox()
        self.successResultOf(fresh.sync())
        self.assertEqual(sorted(fresh._entries), uids)
        self.assertEqual(fresh.vanishedSince(fresh._modseq.floor), [])
        self.assertEqual([e for e in events if "reappeared" in formatEvent(e)], [])

    def test_otherProcessNeverSawExpunge(self):
        """A process that still shows the message (it never synced between the
        expunge and the restore) keeps its UID until the process that announced the
        expunge renumbers it; then it sees the old UID go and the new one come."""
        other = self.freshInbox()
        uids = [self.successResultOf(self.inbox.append(MESSAGE)) for _ in range(2)]
        other.syncNow()
        self.expungeKeepingCopy(self.inbox, uids[0])()
        self.assertEqual(list(other.syncNow().expunged), [])
        self.assertIn(uids[0], other._entries)
        self.assertEqual(list(self.inbox.syncNow().added), [uids[1] + 1])
        changes = other.syncNow()
        self.assertEqual((list(changes.added), list(changes.expunged)),
                         ([uids[1] + 1], [uids[0]]))
