"""
Tests that IMAP work never blocks the reactor: L{mailstack.imap.cooperative}
(bursts of SEARCH work), APPEND's file write and COPY/MOVE's links, copies and
fsyncs in a worker thread, and another session served while a long SEARCH or a
COPY runs.
"""

import errno
import glob
import os
import shutil
import threading
import time

from twisted.internet import defer, task, threads
from twisted.trial import unittest

from mailstack.imap import cooperative, search
from mailstack.storage import maildir
from tests.stores import everyStore
from tests.test_imap_server import MESSAGE, IMAPTestMixin


class RunTests(unittest.TestCase):
    """
    L{cooperative.run}: bursts, then later reactor turns.
    """

    def test_finishesInOneBurst(self):
        """Quick work runs at once and returns None."""
        done = []
        self.assertIsNone(cooperative.run((done.append(i) for i in range(5)), task.Clock()))
        self.assertEqual(done, [0, 1, 2, 3, 4])

    def test_yieldsToTheReactor(self):
        """Work longer than a burst goes on in later turns; the Deferred fires at the end."""
        clock = task.Clock()
        done = []
        d = cooperative.run((done.append(i) for i in range(3)), clock, burst=0)
        self.assertEqual(done, [0])
        fired = []
        d.addCallback(fired.append)
        self.assertEqual(clock.getDelayedCalls()[0].getTime(), 0)
        clock.advance(0)  # runs the later turns scheduled meanwhile too
        self.assertEqual(done, [0, 1, 2])
        self.assertEqual(fired, [None])

    def test_errorLater(self):
        """An error in a later burst fails the Deferred."""
        clock = task.Clock()

        def steps():
            yield
            raise ValueError("boom")
        d = cooperative.run(steps(), clock, burst=0)
        clock.advance(0)
        self.failureResultOf(d, ValueError)


def recordFileWork(test, *names):
    """
    Note, in C{test.fileWork}, each call of the L{maildir.MaildirMailbox}
    methods C{names} (the file work the store hands to its thread runner:
    C{placeMessage}, C{placeCopies}) as C{(name, result)}, whatever job
    wraps them.
    """
    test.fileWork = []
    for name in names:
        original = getattr(maildir.MaildirMailbox, name)

        def recording(mailbox, *args, _name=name, _original=original, **kwargs):
            result = _original(mailbox, *args, **kwargs)
            test.fileWork.append((_name, result))
            return result
        test.patch(maildir.MaildirMailbox, name, recording)


class HeldThreads:
    """
    A store whose runInThread holds each job (once L{holdThreads} is
    called) until the test runs it, as the worker thread would.
    """

    holding = False  # until holdThreads: at once, in the calling thread

    def threadRunner(self, f, *args):
        """The store's runInThread."""
        if not self.holding:
            return defer.maybeDeferred(f, *args)
        d = defer.Deferred()
        self.calls.append((f, args, d))
        return d

    def holdThreads(self, *mailboxes):
        """
        From now on, hold the store's thread jobs. The C{mailboxes} are
        opened first (a first opening writes their uidlist in the thread),
        so that the jobs held are the next command's own.
        """
        for name in mailboxes:
            self.openMailbox(name)
        self.calls = []
        self.holding = True

    def unheld(self, d):
        """What another session does meanwhile: C{d()}'s thread work runs at once."""
        self.holding = False
        try:
            return self.successResultOf(d())
        finally:
            self.holding = True

    def runThread(self):
        """
        Do what the worker thread does, and hand its result back; then the
        same for each job that one led to (the store may hand its thread
        more, e.g. a MOVE's expunge rewriting the uidlist), one at a time.
        """
        [(f, args, d)] = self.calls
        self.runThreads()

    def runThreads(self):
        """Run the jobs handed to the thread, one at a time, until none is left."""
        while self.calls:
            [(f, args, d)] = self.calls
            del self.calls[:]
            try:
                result = f(*args)
            except Exception as e:
                d.errback(e)
            else:
                d.callback(result)


class ThreadedAppendTests(HeldThreads, IMAPTestMixin, unittest.TestCase):
    """
    APPEND writes and fsyncs in a worker thread; the UID is given, and OK sent,
    back in the reactor thread.
    """

    maildirOnly = True  # the Maildir's worker-thread jobs

    def inboxFiles(self):
        path = self.openMailbox("INBOX").path
        return glob.glob(os.path.join(path, "new", "*")) + glob.glob(os.path.join(path, "cur", "*"))

    def test_okAfterTheFileExists(self):
        """No OK while the thread writes; after it, the file exists and OK carries its UID."""
        self.login()
        recordFileWork(self, "_writeTemporaries", "_commitWritten")
        self.holdThreads("INBOX")
        out = self.send(b"a APPEND INBOX {%d+}\r\n%s\r\nb NOOP\r\n" % (len(MESSAGE), MESSAGE))
        self.assertEqual(out, b"")
        self.assertEqual(self.inboxFiles(), [])
        [(f, args, d)] = self.calls
        self.assertEqual(self.fileWork, [])
        del self.calls[:]
        d.callback(f(*args))  # what the worker thread does: the file written to tmp/
        [(name, [(_, _, key)])] = self.fileWork
        self.assertEqual(name, "_writeTemporaries")
        self.assertEqual(self.inboxFiles(), [])
        [(f, args, d)] = self.calls  # then placing it, a job of its own
        del self.calls[:]
        result = f(*args)
        self.assertEqual(self.fileWork[1][0], "_commitWritten")
        [path] = self.inboxFiles()
        self.assertIn(key, path)
        self.assertEqual(self.transport.value(), b"")
        d.callback(result)
        self.runThreads()
        inbox = self.openMailbox("INBOX")
        self.assertEqual(self.transport.value(),
                         b"a OK [APPENDUID %d 1] APPEND completed\r\nb OK NOOP completed\r\n"
                         % (inbox.uidValidity,))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), MESSAGE)

    def test_selectedSeesExists(self):
        """Appending to the selected mailbox: EXISTS before the tagged OK."""
        self.select()
        self.holdThreads()
        self.send(b"a APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE))
        [(f, args, d)] = self.calls
        del self.calls[:]
        self.transport.clear()
        d.callback(f(*args))
        self.runThreads()
        out = self.transport.value()
        self.assertIn(b"* 1 EXISTS\r\n", out)
        self.assertTrue(out.endswith(b"APPEND completed\r\n"), out)

    def test_failureInThread(self):
        """A store error in the thread becomes NO; the session goes on."""
        self.login()
        self.createMailbox("Gone")
        self.holdThreads("Gone")
        self.send(b"a APPEND Gone {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE))
        [(f, args, d)] = self.calls
        del self.calls[:]
        self.unheld(lambda: self.account.deleteMailbox("Gone"))
        try:
            f(*args)
        except Exception as e:
            d.errback(e)
        self.runThreads()
        self.assertEqual(self.transport.value(),
                         b"a NO [TRYCREATE] mailbox Gone no longer exists\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")

    def test_bigLiteralSpoolClosedAfterThread(self):
        """A spooled (file) message stays open until the thread is done with it."""
        big = MESSAGE + b"x" * 70000 + b"\r\n"
        session = self.connect(maxLiteralSize=200000)
        self.login(session)
        sources = []  # what the store's append was given to read
        append = maildir.MaildirMailbox.append
        self.patch(maildir.MaildirMailbox, "append",
                   lambda mailbox, source, *a: sources.append(source) or append(mailbox, source, *a))
        self.holdThreads("INBOX")
        self.send(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(big), big), session)
        [(f, args, d)] = self.calls
        del self.calls[:]
        [spool] = sources
        self.assertFalse(spool.closed)
        session[0].connectionLost(None)  # the client goes away meanwhile
        self.assertFalse(spool.closed)
        d.callback(f(*args))
        self.runThreads()
        self.assertTrue(spool.closed)
        self.assertEqual(len(self.inboxFiles()), 1)


class ThreadedCopyTests(HeldThreads, IMAPTestMixin, unittest.TestCase):
    """
    COPY and MOVE link, fsync and rename in a worker thread (held here until
    the test runs it); UIDs, the MOVE's expunge and the reply come back in the
    reactor thread.
    """

    maildirOnly = True  # the Maildir's worker-thread jobs

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver()
        self.deliver(b"Subject: two\r\n\r\nbody\r\n")
        self.createMailbox("Saved")
        self.saved = self.openMailbox("Saved")

    def savedFiles(self):
        return (glob.glob(os.path.join(self.saved.path, "new", "*"))
                + glob.glob(os.path.join(self.saved.path, "cur", "*")))

    def test_copyWaitsForTheThread(self):
        """No reply, and no pipelined command, until the files are placed; then COPYUID."""
        self.select()
        recordFileWork(self, "placeCopies")
        self.holdThreads()
        out = self.send(b"a COPY 1:2 Saved\r\nb NOOP\r\n")
        self.assertEqual(out, b"")
        [(f, args, d)] = self.calls
        self.assertEqual(self.fileWork, [])
        self.assertEqual(self.savedFiles(), [])
        self.runThread()
        # The thread's job placed the copies.
        self.assertEqual([name for name, _ in self.fileWork], ["placeCopies"])
        self.assertEqual(len(self.savedFiles()), 2)
        self.assertEqual(self.transport.value(),
                         b"a OK [COPYUID %d 1:2 1:2] COPY completed\r\nb OK NOOP completed\r\n"
                         % (self.saved.uidValidity,))

    def test_otherSessionServedMeanwhile(self):
        """While one session's COPY is in its thread, another session's NOOP is answered."""
        self.select()
        other = self.connect()
        self.login(other)
        self.holdThreads()
        self.send(b"a COPY 1 Saved\r\n")
        self.assertEqual(self.send(b"n NOOP\r\n", other), b"n OK NOOP completed\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.runThread()
        self.assertTrue(self.transport.value().endswith(b"COPY completed\r\n"))

    def test_moveExpungesAfterTheCopies(self):
        """MOVE keeps the originals while the copies are placed; then COPYUID, EXPUNGE, RECENT, OK."""
        self.select()
        self.holdThreads()
        self.assertEqual(self.send(b"a MOVE 2 Saved\r\n"), b"")
        inbox = self.openMailbox("INBOX")
        self.assertEqual([i.uid for i in inbox.messages()], [1, 2])
        self.runThread()
        self.assertEqual(self.transport.value(),
                         b"* OK [COPYUID %d 2 1] Moved\r\n* 2 EXPUNGE\r\n* 1 RECENT\r\n"
                         b"a OK MOVE completed\r\n"
                         % (self.saved.uidValidity,))
        self.assertEqual([i.uid for i in inbox.messages()], [1])

    def test_destinationDeletedMeanwhile(self):
        """A destination deleted while the copies are placed: NO [TRYCREATE], MOVE keeps the originals."""
        self.select()
        self.holdThreads()
        self.send(b"a MOVE 1:2 Saved\r\n")
        [(f, args, d)] = self.calls
        del self.calls[:]
        placed = f(*args)
        # By another session, before the UIDs are given.
        self.unheld(lambda: self.account.deleteMailbox("Saved"))
        d.callback(placed)
        self.runThreads()
        self.assertEqual(self.transport.value(),
                         b"a NO [TRYCREATE] mailbox Saved no longer exists\r\n")
        self.assertEqual([i.uid for i in self.openMailbox("INBOX").messages()], [1, 2])

    def test_diskFullInThread(self):
        """A full disk in the thread: NO [OVERQUOTA], no copy left behind, the session goes on."""
        self.select()

        def full(source, target):
            raise OSError(errno.ENOSPC, "no space left on device")
        self.patch(maildir.os, "link", full)
        self.holdThreads()
        self.send(b"a COPY 1:2 Saved\r\n")
        self.runThread()
        self.assertEqual(self.transport.value(), b"a NO [OVERQUOTA] Not enough disk space\r\n")
        self.assertEqual(self.savedFiles(), [])
        self.assertEqual(glob.glob(os.path.join(self.saved.path, "tmp", "*")), [])
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")

    def test_expungedBeforeStart(self):
        """A message expunged by another session: NO [EXPUNGEISSUED] at once, no thread started."""
        self.select()
        other = self.connect()
        self.select(other)
        self.send(b"x STORE 1 +FLAGS.SILENT (\\Deleted)\r\ny EXPUNGE\r\n", other)
        self.holdThreads()
        self.assertTrue(self.send(b"a COPY 1 Saved\r\n").endswith(
            b"a NO [EXPUNGEISSUED] Some of the requested messages no longer exist\r\n"))
        self.assertEqual(self.calls, [])


class RealThreadCopyTests(IMAPTestMixin, unittest.TestCase):
    """
    COPY and MOVE with a real worker thread (the store's runInThread): none of
    the link, copy, rename or fsync of the copies runs in the reactor thread.
    """

    maildirOnly = True  # the Maildir's worker-thread jobs

    def threadRunner(self, f, *args):
        """The store's runInThread: a real worker thread (once set up)."""
        if not self.threaded:
            return defer.maybeDeferred(f, *args)
        d = threads.deferToThread(f, *args)
        self.pending.append(d)
        return d

    def setUp(self):
        self.pending = []
        self.seen = []
        self.threaded = False  # until the command under test: at once
        IMAPTestMixin.setUp(self)
        self.deliver()
        self.deliver(b"Subject: two\r\n\r\nbody\r\n")
        self.createMailbox("Saved")
        self.saved = self.openMailbox("Saved")

    def record(self, module, name):
        """Note each call of C{module.name}: its thread and what it touched."""
        original = getattr(module, name)

        def recording(*args, **kwargs):
            touched = os.fstat(args[0]).st_ino if name == "fsync" else args
            self.seen.append((name, threading.current_thread(), touched))
            return original(*args, **kwargs)
        self.patch(module, name, recording)

    def copyWork(self):
        """C{[(name, thread)]} of the recorded calls that made or synced a copy."""
        inodes = set()
        prefixes = tuple(os.path.join(self.saved.path, sub) + os.sep for sub in ("tmp", "new", "cur"))
        for sub in ("new", "cur"):
            inodes.add(os.stat(os.path.join(self.saved.path, sub)).st_ino)
            inodes.update(os.stat(path).st_ino
                          for path in glob.glob(os.path.join(self.saved.path, sub, "*")))
        work = []
        for name, thread, touched in self.seen:
            if name == "fsync":
                if touched in inodes:
                    work.append((name, thread))
            elif any(str(a).startswith(prefixes) for a in touched):
                work.append((name, thread))
        return work

    def copyAndCheck(self, command, expected, names):
        """Send C{command}; once answered C{expected}, check where C{names} ran."""
        self.select()
        for module, name in ((os, "fsync"), (os, "link"), (os, "rename"), (shutil, "copy2")):
            self.record(module, name)
        self.threaded = True
        self.send(command)
        [d] = self.pending

        @defer.inlineCallbacks
        def allDone():
            # The command's thread job, and any it leads to (MOVE's expunge).
            while self.pending:
                yield self.pending.pop(0)

        def check(_):
            self.assertTrue(self.transport.value().endswith(expected), self.transport.value())
            work = self.copyWork()
            self.assertEqual({name for name, _ in work}, names)
            here = threading.current_thread()
            self.assertEqual([name for name, thread in work if thread is here], [])
        return allDone().addCallback(check)

    def test_copyFileWorkInThread(self):
        """COPY's links, renames and fsyncs all run outside the reactor thread."""
        return self.copyAndCheck(b"a COPY 1:2 Saved\r\n", b"a OK [COPYUID %d 1:2 1:2] COPY completed\r\n"
                        % (self.saved.uidValidity,), {"fsync", "link", "rename"})

    def test_moveAcrossFilesystemsInThread(self):
        """MOVE's copies (no hard links) and their fsyncs run outside the reactor thread."""
        def noLink(source, target):
            raise OSError(errno.EXDEV, "cross-device link")
        self.patch(maildir.os, "link", noLink)
        return self.copyAndCheck(b"a UID MOVE 1:2 Saved\r\n", b"a OK MOVE completed\r\n",
                        {"fsync", "link", "copy2", "rename"})  # link: the attempt


class CooperativeSearchTests(IMAPTestMixin, unittest.TestCase):
    """
    A SEARCH over bodies runs in bursts: other sessions are answered meanwhile,
    and the searching session's next commands wait for it.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.patch(cooperative, "BURST", 0)
        for i in range(20):
            self.deliver(MESSAGE.replace(b"Hi Bob", b"Hi %d" % (i,)))

    def test_otherSessionServed(self):
        """While A searches, B's NOOP is answered; A's answer comes at the end."""
        self.select()
        other = self.connect()
        self.select(other)
        out = self.send(b"a SEARCH BODY \"Hi 7\"\r\na2 NOOP\r\n")
        self.assertEqual(out, b"")
        self.assertEqual(self.send(b"b NOOP\r\n", other), b"b OK NOOP completed\r\n")
        self.transport.clear()
        for _ in range(30):
            self.clock.advance(0)
        self.assertEqual(self.transport.value(),
                         b"* SEARCH 8\r\na OK SEARCH completed\r\na2 OK NOOP completed\r\n")

    def test_cheapKeysSynchronous(self):
        """Flag-only searches need no message file and answer at once."""
        self.select()
        self.assertEqual(self.send(b"a SEARCH UNSEEN LARGER 10\r\n"),
                         b"* SEARCH " + b" ".join(b"%d" % i for i in range(1, 21))
                         + b"\r\na OK SEARCH completed\r\n")

    def test_disconnectDuringSearch(self):
        """A session that goes away mid-search stops searching quietly."""
        self.select()
        self.send(b"a SEARCH TEXT nothing\r\n")
        self.server.connectionLost(None)
        for _ in range(30):
            self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")


class SlowMatcherTests(unittest.TestCase):
    """
    L{search.searchSteps} does one message per step.
    """

    def test_stepsPerMessage(self):
        """Each step tests one message; found UIDs accumulate in order."""
        class View:
            uids = [1, 2, 3]

            def messageInfos(self):
                return {uid: type("I", (), {"uid": uid, "flags": frozenset(), "size": 10,
                                            "internalDate": time.time()})() for uid in self.uids}
        found = []
        steps = search.searchSteps(View(), ("UID", _UIDSet({1, 3})), None, found)
        next(steps)
        self.assertEqual(found, [1])
        list(steps)
        self.assertEqual(found, [1, 3])


class _UIDSet:
    def __init__(self, uids):
        self.uids = uids

    def containsUID(self, uid, star):
        return uid in self.uids


everyStore(globals())
