"""
Tests for L{mailstack.storage.batchdeliver}: deliveries queued together are
written in one round with one fsync per new/ directory and reported in one
call; a failing delivery fails alone, leaving nothing in tmp/ or new/; the
Maildir store delivers through it when it owns the reactor's thread pool.
"""

import errno
import io
import os

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from mailstack.storage import crlf
from mailstack.storage.account import MaildirStore
from mailstack.storage.batchdeliver import DeliveryBatcher
from mailstack.storage.files import makeMaildir
from mailstack.storage.interfaces import isNoSpace
from mailstack.storage.maildir import MaildirMailbox

MESSAGE = b"From: a@lab.test\nSubject: hello\n\nbody\n"


class FakeReactor:
    """Runs nothing by itself: the test runs the queued thread jobs and reports."""

    def __init__(self):
        self.jobs = []
        self.reports = []

    def getThreadPool(self):
        return self

    def callInThreadWithCallback(self, onResult, f, *args):
        self.jobs.append((f, args))

    def callFromThread(self, f, *args):
        self.reports.append((f, args))

    def runJobs(self):
        while self.jobs:
            f, args = self.jobs.pop(0)
            f(*args)

    def runReports(self):
        while self.reports:
            f, args = self.reports.pop(0)
            f(*args)


class BatcherTests(TestCase):
    """What a round writes, fsyncs and reports."""

    def setUp(self):
        self.top = self.mktemp()
        self.boxes = []
        for name in ("one", "two"):
            path = os.path.join(self.top, name)
            makeMaildir(path, False)
            self.boxes.append(MaildirMailbox("INBOX", path))
        self.synced = []
        self.failDirectory = None
        self.reactor = FakeReactor()
        # One writer: the deliveries asked for before it runs make one round.
        self.batcher = DeliveryBatcher(self.reactor, fsyncDirectory=self.fsync, writers=1)

    def fsync(self, path):
        self.synced.append(path)
        if path == self.failDirectory:
            raise OSError(errno.EIO, "injected")

    def files(self, box, sub):
        return sorted(os.listdir(os.path.join(box.path, sub)))

    def test_queuedTogetherOneRound(self):
        """Deliveries queued while no writer runs are written in one round: one fsync of each
        new/ touched, one report to the reactor, each Deferred fired with its base name."""
        one, two = self.boxes
        ds = [self.batcher.deliver([one], MESSAGE), self.batcher.deliver([one], MESSAGE),
              self.batcher.deliver([two], MESSAGE)]
        self.assertEqual(len(self.reactor.jobs), 1)
        self.reactor.runJobs()
        self.assertEqual(sorted(self.synced),
                         sorted([os.path.join(one.path, "new"), os.path.join(two.path, "new")]))
        self.assertEqual(len(self.reactor.reports), 1)
        self.assertNoResult(ds[0])
        self.reactor.runReports()
        results = [self.successResultOf(d) for d in ds]
        self.assertEqual(sorted(base for _, base in results[0] + results[1]),
                         self.files(one, "new"))
        self.assertEqual([base for _, base in results[2]], self.files(two, "new"))
        with open(os.path.join(one.path, "new", self.files(one, "new")[0]), "rb") as f:
            self.assertEqual(f.read(), MESSAGE.replace(b"\n", b"\r\n"))
        self.assertEqual(self.files(one, "tmp"), [])

    def test_noSpaceFailsOnlyThatMessage(self):
        """ENOSPC writing one message of a round: that delivery fails with "no space", its
        temporary file is gone; the others of the round are delivered."""
        realWriteAll = crlf.writeAll

        def writeAll(fd, data):
            if b"FULL" in data:
                raise OSError(errno.ENOSPC, "injected")
            realWriteAll(fd, data)
        self.patch(crlf, "writeAll", writeAll)
        one, _ = self.boxes
        ds = [self.batcher.deliver([one], MESSAGE), self.batcher.deliver([one], b"FULL\n"),
              self.batcher.deliver([one], MESSAGE)]
        self.reactor.runJobs()
        self.reactor.runReports()
        self.successResultOf(ds[0])
        self.assertTrue(isNoSpace(self.failureResultOf(ds[1]).value))
        self.successResultOf(ds[2])
        self.assertEqual(len(self.files(one, "new")), 2)
        self.assertEqual(self.files(one, "tmp"), [])

    def test_directoryFsyncFailsItsDeliveriesOnly(self):
        """An EIO from new/'s fsync fails the round's deliveries into that Maildir (their files
        removed from new/, never acknowledged); the other Maildir's delivery succeeds."""
        one, two = self.boxes
        self.failDirectory = os.path.join(one.path, "new")
        ds = [self.batcher.deliver([one], MESSAGE), self.batcher.deliver([two], MESSAGE),
              self.batcher.deliver([one], MESSAGE)]
        self.reactor.runJobs()
        self.reactor.runReports()
        for d in (ds[0], ds[2]):
            self.assertEqual(self.failureResultOf(d, OSError).value.errno, errno.EIO)
        self.successResultOf(ds[1])
        self.assertEqual(self.files(one, "new"), [])
        self.assertEqual(self.files(one, "tmp"), [])
        self.assertEqual(len(self.files(two, "new")), 1)

    def test_allOrNoneAcrossRecipients(self):
        """A delivery to two Maildirs whose second copy fails keeps neither copy."""
        one, two = self.boxes
        os.rmdir(os.path.join(two.path, "tmp"))
        d = self.batcher.deliver([one, two], MESSAGE)
        self.reactor.runJobs()
        self.reactor.runReports()
        self.failureResultOf(d)
        self.assertEqual(self.files(one, "new"), [])
        self.assertEqual(self.files(one, "tmp"), [])

    def test_arrivalsDuringARoundGoToTheNext(self):
        """A delivery asked for while a round is being written is written in the next round by
        the same writer (no second job), fsynced and reported on its own."""
        one, _ = self.boxes
        later = []

        def fsync(path):
            self.fsync(path)
            if not later:
                later.append(self.batcher.deliver([one], MESSAGE))
        self.batcher._fsyncDirectory = fsync
        first = self.batcher.deliver([one], MESSAGE)
        self.reactor.runJobs()
        self.assertEqual(len(self.synced), 2)
        self.assertEqual(len(self.reactor.reports), 2)
        self.reactor.runReports()
        self.successResultOf(first)
        self.successResultOf(later[0])
        self.assertEqual(len(self.files(one, "new")), 2)

    def test_writersBound(self):
        """No more writer jobs are started than C{writers}; deliveries asked for while all are
        busy are queued for them, and every one is written."""
        one, _ = self.boxes
        batcher = DeliveryBatcher(self.reactor, fsyncDirectory=self.fsync, writers=2)
        ds = [batcher.deliver([one], MESSAGE) for _ in range(4)]
        self.assertEqual(len(self.reactor.jobs), 2)
        self.reactor.runJobs()
        self.reactor.runReports()
        for d in ds:
            self.successResultOf(d)
        self.assertEqual(len(self.files(one, "new")), 4)
        batcher.deliver([one], MESSAGE)
        self.assertEqual(len(self.reactor.jobs), 1)


class StoreTests(TestCase):
    """The Maildir store with the reactor delivers through a batcher, in real threads."""

    def test_deliverThroughBatcher(self):
        """Deliveries through a store given the reactor land in new/, fsynced by the batcher."""
        root = self.mktemp()
        store = MaildirStore(root, reactor=reactor)
        synced = []
        store._batcher._fsyncDirectory = lambda path: synced.append(path)
        home = os.path.join(root, "lab.test", "demo")

        def check(_):
            self.assertEqual(len(os.listdir(os.path.join(home, "new"))), 3)
            self.assertEqual(set(synced), {os.path.join(home, "new")})
        return defer.gatherResults(
            [store.deliver(["demo@lab.test"], MESSAGE) for _ in range(3)]).addCallback(check)


class WriteAsCRLFTests(TestCase):
    """The delivery writer's file write: CRLF line ends, few system calls, short writes retried."""

    def write(self, source):
        path = self.mktemp()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            size = crlf.writeAsCRLF(fd, io.BytesIO(source))
        finally:
            os.close(fd)
        with open(path, "rb") as f:
            return size, f.read()

    def test_smallMessageOneWrite(self):
        """A message smaller than a chunk is written in one write call, its LFs as CRLF."""
        calls = []
        realWrite = os.write

        def write(fd, data):
            calls.append(len(data))
            return realWrite(fd, data)
        self.patch(os, "write", write)
        self.assertEqual(self.write(MESSAGE), (len(MESSAGE) + 4, MESSAGE.replace(b"\n", b"\r\n")))
        self.assertEqual(len(calls), 1)

    def test_largeAndShortWrites(self):
        """A message of several chunks, written by a system that takes 1,000 octets per call,
        arrives whole."""
        realWrite = os.write
        self.patch(os, "write", lambda fd, data: realWrite(fd, bytes(data[:1000])))
        body = b"".join(b"line %d\n" % i for i in range(30000))
        expected = body.replace(b"\n", b"\r\n")
        self.assertEqual(self.write(body), (len(expected), expected))
