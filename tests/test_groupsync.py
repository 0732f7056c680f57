"""
Tests for L{mailstack.storage.groupsync}: directory fsyncs shared by the
threads that ask at once, each caller still waiting for an fsync that began
after its call.
"""

import threading

from twisted.trial import unittest

from mailstack.storage import groupsync

# How long a test thread may wait for another before the test is declared
# hung (a safety net, never a timing assertion).
HUNG = 30


class GatedFsync:
    """
    An fsync that records each run and, when gated, blocks until released,
    so a test can gather callers behind a running one.
    """

    def __init__(self):
        self.runs = []
        self.started = threading.Semaphore(0)
        self.gate = None
        self.fail = None

    def __call__(self, path):
        self.runs.append(path)
        self.started.release()
        if self.gate is not None:
            assert self.gate.wait(HUNG), "gate never opened"
        if self.fail is not None:
            raise self.fail


def inThread(f):
    """Run C{f} in a thread; return the thread and a dict that gets its result or error."""
    outcome = {}

    def run():
        try:
            outcome["result"] = f()
        except BaseException as e:
            outcome["error"] = e
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


class GroupSyncTests(unittest.TestCase):
    """
    L{groupsync.GroupSync}: one fsync for everyone waiting, never one that
    began before the caller asked.
    """

    def setUp(self):
        self.fsync = GatedFsync()
        self.group = groupsync.GroupSync("/d")

    def syncNow(self):
        return self.group.sync(self.fsync)

    def waitQueued(self, count):
        """Wait until C{count} callers hold tickets (the gated fsync is running)."""
        for _ in range(HUNG * 100):
            with self.group._condition:
                if self.group._issued >= count:
                    return
            threading.Event().wait(0.01)
        self.fail("callers never queued")

    def test_alone(self):
        """A lone caller runs one fsync of its directory and returns."""
        self.syncNow()
        self.assertEqual(self.fsync.runs, ["/d"])

    def test_callersShareTheNextFsync(self):
        """Ten callers arriving while an fsync runs are all served by one more fsync, not ten."""
        self.fsync.gate = threading.Event()
        first, firstOutcome = inThread(self.syncNow)
        self.assertTrue(self.fsync.started.acquire(timeout=HUNG))
        waiting = [inThread(self.syncNow) for _ in range(10)]
        self.waitQueued(11)
        # None of them may be answered by the fsync that began before they asked.
        self.assertTrue(all(thread.is_alive() for thread, _ in waiting))
        self.fsync.gate.set()
        for thread, _ in [(first, firstOutcome)] + waiting:
            thread.join(HUNG)
            self.assertFalse(thread.is_alive())
        self.assertEqual([outcome for _, outcome in waiting], [{"result": None}] * 10)
        self.assertEqual(len(self.fsync.runs), 2)
        self.assertEqual(self.group.fsyncs, 2)

    def test_failureReachesEveryCoveredCaller(self):
        """When the shared fsync fails, every caller it covered gets the error; later ones fsync again."""
        self.fsync.gate = threading.Event()
        first, firstOutcome = inThread(self.syncNow)
        self.assertTrue(self.fsync.started.acquire(timeout=HUNG))
        waiting = [inThread(self.syncNow) for _ in range(3)]
        self.waitQueued(4)
        broken = OSError(5, "Input/output error")
        self.fsync.fail = broken
        self.fsync.gate.set()
        for thread, _ in [(first, firstOutcome)] + waiting:
            thread.join(HUNG)
        self.assertEqual([outcome for _, outcome in [(first, firstOutcome)] + waiting],
                         [{"error": broken}] * 4)
        self.fsync.fail = None
        self.syncNow()
        self.assertEqual(len(self.fsync.runs), 3)


    def scripted(self, error):
        """
        Have the callers' fsyncs behave thus: the first blocks until the gate
        opens and succeeds, every later one raises C{error}. Start the first
        caller and two behind it; return the three threads with their
        outcomes once all hold tickets (the second fsync, run by one of the
        two, covers both).
        """
        gate = self.gate = threading.Event()
        started = threading.Semaphore(0)
        runs = []

        def fsync(path):
            runs.append(path)
            if len(runs) == 1:
                started.release()
                assert gate.wait(HUNG), "gate never opened"
                return
            raise error
        self.scriptedFsync = fsync
        first = inThread(lambda: self.group.sync(fsync))
        self.assertTrue(started.acquire(timeout=HUNG))
        waiting = [inThread(lambda: self.group.sync(fsync)) for _ in range(2)]
        self.waitQueued(3)
        return first, waiting

    def joinAll(self, threads):
        for thread, _ in threads:
            thread.join(HUNG)
            self.assertFalse(thread.is_alive())

    def test_anyExceptionReachesCoveredCallers(self):
        """An fsync failing with something other than OSError is not taken for success by the callers it covered."""
        broken = MemoryError()
        first, waiting = self.scripted(broken)
        self.gate.set()
        self.joinAll([first] + waiting)
        self.assertEqual(first[1], {"result": None})
        self.assertEqual([outcome for _, outcome in waiting], [{"error": broken}] * 2)

    def test_slowWaiterStillGetsItsFailure(self):
        """A caller slow to wake after a failed fsync that covered it gets the error however many fsyncs fail meanwhile."""
        group = self.group
        main = threading.current_thread()
        late = threading.Event()

        class SlowWake(threading.Condition):
            def wait(self, timeout=None):
                woken = super().wait(timeout)
                if group._failures and threading.current_thread() is not main:
                    # Covered by a failure: let the others run before reading it.
                    self.release()
                    try:
                        assert late.wait(HUNG), "never let go"
                    finally:
                        self.acquire()
                return woken
        group._condition = SlowWake()
        broken = OSError(5, "Input/output error")
        first, waiting = self.scripted(broken)
        self.gate.set()
        for _ in range(HUNG * 100):
            with group._condition:
                if group._failures:
                    break
            threading.Event().wait(0.01)
        for _ in range(100):
            self.assertRaises(OSError, group.sync, self.scriptedFsync)
        late.set()
        self.joinAll([first] + waiting)
        self.assertEqual([outcome for _, outcome in waiting], [{"error": broken}] * 2)
        self.assertEqual(group._failures, {})


class SyncDirectoryTests(unittest.TestCase):
    """L{groupsync.syncDirectory} on real directories."""

    def test_realDirectory(self):
        """A real directory is fsynced; a file is refused as the kernel refuses it."""
        path = self.mktemp()
        import os
        os.mkdir(path)
        groupsync.syncDirectory(path)
        with open(os.path.join(path, "f"), "w"):
            pass
        self.assertRaises(NotADirectoryError, groupsync.syncDirectory, os.path.join(path, "f"))

    def test_groupsBounded(self):
        """Syncing many directories keeps a bounded number of groups (a server delivering to many users), each directory still fsynced."""
        import os
        self.patch(groupsync, "MAX_GROUPS", 4)
        self.patch(groupsync, "_groups", {})
        synced = []
        for n in range(20):
            path = self.mktemp()
            os.mkdir(path)
            groupsync.syncDirectory(path, synced.append)
            self.assertLessEqual(len(groupsync._groups), 4)
        self.assertEqual(len(synced), 20)
