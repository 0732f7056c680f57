"""
L{mailstack.workers.WorkerSupervisor} with real processes (not twistd): a
worker command that cannot run at all backs off instead of respawning in a
tight loop, and stopping the supervisor leaves no process behind, even one
that ignores SIGTERM.
"""

import os
import socket
import sys

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mailstack import workers
from tests.e2e.test_workers import alive

# A worker that ignores SIGTERM and says when it is up.
STUBBORN = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); time.sleep(120)")


class RealSupervisorTests(unittest.TestCase):
    """The supervisor spawning real child processes on the real reactor."""

    timeout = 30

    def setUp(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        self.addCleanup(listener.close)
        self.listeners = lambda: [("smtp", listener.fileno(), socket.AF_INET)]
        for name, value in (("RESTART_FIRST", 0.1), ("RESTART_MAX", 0.4), ("STOP_GRACE", 1.0)):
            self.patch(workers, name, value)

    def sleep(self, seconds):
        return task.deferLater(reactor, seconds, lambda: None)

    @defer.inlineCallbacks
    def test_missingExecutableBacksOff(self):
        """A worker command whose executable does not exist is retried with growing pauses, not hundreds of times a second, and stopping ends it."""
        missing = os.path.abspath(self.mktemp())
        supervisor = workers.WorkerSupervisor(
            reactor, 2, self.listeners, lambda number, inherit: [missing, inherit])
        attempts = []
        original = supervisor._start

        def counting(number):
            attempts.append(number)
            return original(number)
        supervisor._start = counting
        supervisor.startService()
        yield self.sleep(2.5)
        yield supervisor.stopService()
        # pauses 0.1, 0.2, 0.4, 0.4...: about seven attempts in 2.5 s, a tight loop hundreds
        self.assertTrue(2 <= len(attempts) <= 12, attempts)
        self.assertEqual(supervisor.processes(), 1)
        stopped = len(attempts)
        yield self.sleep(0.5)
        self.assertEqual(len(attempts), stopped)  # no restart after the stop

    @defer.inlineCallbacks
    def test_stopKillsAStubbornWorker(self):
        """Stopping sends SIGTERM, then SIGKILL to workers that ignore it: none is left running."""
        supervisor = workers.WorkerSupervisor(
            reactor, 3, self.listeners,
            lambda number, inherit: [sys.executable, "-c", STUBBORN, inherit])
        from twisted.logger import globalLogPublisher
        up = []

        def observe(event):
            if event.get("line") == "up":
                up.append(event["number"])
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        supervisor.startService()
        pids = [w.transport.pid for w in supervisor.workers.values()]
        self.assertEqual(len(pids), 2)
        while len(up) < 2:  # each has its SIGTERM ignored
            yield self.sleep(0.05)
        yield supervisor.stopService()
        for pid in pids:
            self.assertFalse(alive(pid), pid)
