"""
Tests for L{mailstack.workers} and C{[server] workers} without processes:
the config key, the inherited-socket argument, and the supervisor's starts,
restarts and stops on a fake reactor (tests/e2e/test_workers.py runs real
processes).
"""

import socket

from twisted.internet import defer, error
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest

from mailstack import workers
from mailstack.config import ConfigError, loadConfig
from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig


def withWorkers(value, endpoint="tcp:0:interface=127.0.0.1"):
    return BASE_CONFIG.replace("[server]\n", "[server]\nworkers = %s\n" % (value,)) + \
        listenerTOML("smtp", endpoint=endpoint, name="smtp")


class WorkersConfigTests(unittest.TestCase):
    """C{[server] workers}: a count from 1 to 64 over listeners that can be shared."""

    def test_default(self):
        """Without the key the server is one process, and that process is the first."""
        config = loadConfig(writeConfig(self, BASE_CONFIG + listenerTOML("smtp")))
        self.assertEqual((config.server.workers, config.server.worker), (1, 1))

    def test_count(self):
        """A count in range is taken as given."""
        config = loadConfig(writeConfig(self, withWorkers(4)))
        self.assertEqual(config.server.workers, 4)

    def test_outOfRange(self):
        """0, 65, a string or true is refused with one line naming server.workers."""
        for value in ("0", "65", '"2"', "true"):
            with self.assertRaises(ConfigError) as caught:
                loadConfig(writeConfig(self, withWorkers(value)))
            self.assertIn("server.workers", str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))

    def test_queuePerWorker(self):
        """Each worker keeps its outbound queue apart, so no two processes recover one queue."""
        import dataclasses
        config = loadConfig(writeConfig(self, withWorkers(2)))
        second = dataclasses.replace(config, server=dataclasses.replace(config.server, worker=2))
        self.assertEqual(second.queue_dir, config.queue_dir / "worker-2")


class InheritArgumentTests(unittest.TestCase):
    """The C{--inherit} argument the first process gives a worker."""

    def test_roundTrip(self):
        """What formatInherited writes, parseInherited reads back, whatever the listener names hold."""
        given = [("smtp", 3, socket.AF_INET), ("imap-tls", 4, socket.AF_INET6),
                 ("odd=name", 5, socket.AF_UNIX), ("a,b:c %", 6, socket.AF_INET)]
        self.assertEqual(workers.parseInherited(workers.formatInherited(given)),
                         {name: (fd, family) for name, fd, family in given})

    def test_bad(self):
        """Anything else is a ValueError, never a half-read map."""
        for text in ("smtp", "smtp=x:2", "=3:2", "smtp=3"):
            self.assertRaises(ValueError, workers.parseInherited, text)


class FakeTransport:
    def __init__(self, pid):
        self.pid = pid
        self.signals = []

    def signalProcess(self, name):
        self.signals.append(name)


class FakeReactor(Clock):
    """A clock that records spawnProcess calls instead of starting processes."""

    def __init__(self):
        Clock.__init__(self)
        self.spawned = []
        self.writers = set()

    def addWriter(self, writer):
        self.writers.add(writer)

    def removeWriter(self, writer):
        self.writers.discard(writer)

    def spawnProcess(self, proto, executable, args, env=None, childFDs=None):
        proto.transport = FakeTransport(1000 + len(self.spawned))
        self.spawned.append((proto, args, childFDs))
        return proto.transport

    def closePipes(self):
        """Close the pipes the supervisor made for workers that never ended (a test's cleanup)."""
        for proto, _, _ in self.spawned:
            if proto.downlink is not None:
                proto.downlink.close()


def ended(proto, code=None, signal=None):
    """Tell C{proto} its process ended, as the reactor would."""
    if signal is None and code == 0:
        reason = Failure(error.ProcessDone(0))
    else:
        reason = Failure(error.ProcessTerminated(exitCode=code, signal=signal))
    proto.processEnded(reason)


class SupervisorTests(unittest.TestCase):
    """L{workers.WorkerSupervisor} on a fake reactor."""

    def setUp(self):
        self.reactor = FakeReactor()
        self.addCleanup(self.reactor.closePipes)
        self.listeners = [("smtp", 7, socket.AF_INET), ("imap", 9, socket.AF_INET6)]
        self.supervisor = workers.WorkerSupervisor(
            self.reactor, 3, lambda: self.listeners,
            lambda number, inherit: ["worker", str(number), inherit])

    def test_startsTheOthers(self):
        """Workers 2..N start, each given every listening socket from fd 3 on, a report pipe after them and a pipe on stdin."""
        self.supervisor.startService()
        self.assertEqual([args for _, args, _ in self.reactor.spawned],
                         [["worker", "2", "smtp=3:%d,imap=4:%d" % (socket.AF_INET, socket.AF_INET6)],
                          ["worker", "3", "smtp=3:%d,imap=4:%d" % (socket.AF_INET, socket.AF_INET6)]])
        childFDs = dict(self.reactor.spawned[0][2])
        self.assertIsInstance(childFDs.pop(0), int)  # the pipe from this process
        self.assertEqual(childFDs, {1: "r", 2: "r", 3: 7, 4: 9, 5: "r"})

    def test_restartAfterACrash(self):
        """A worker that dies soon after starting is started again after a pause that grows."""
        self.supervisor.startService()
        first = self.reactor.spawned[0][0]
        ended(first, code=1)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.reactor.advance(workers.RESTART_FIRST)
        self.assertEqual(len(self.reactor.spawned), 3)
        again = self.reactor.spawned[2][0]
        self.assertEqual(again.number, 2)
        ended(again, signal=9)
        self.reactor.advance(workers.RESTART_FIRST)
        self.assertEqual(len(self.reactor.spawned), 3)  # the pause doubled
        self.reactor.advance(workers.RESTART_FIRST)
        self.assertEqual(len(self.reactor.spawned), 4)

    def test_steadyWorkerRestartedAtOnce(self):
        """A worker that ran a long time before exiting is started again at once."""
        self.supervisor.startService()
        self.reactor.advance(workers.STEADY_SECONDS + 1)
        ended(self.reactor.spawned[0][0], code=1)
        self.reactor.advance(0)
        self.assertEqual(len(self.reactor.spawned), 3)

    def test_processes(self):
        """processes() counts this process and each worker not yet ended."""
        self.supervisor.startService()
        self.assertEqual(self.supervisor.processes(), 3)
        ended(self.reactor.spawned[0][0], code=1)
        self.assertEqual(self.supervisor.processes(), 2)

    def test_stopTermsThenKills(self):
        """Stopping sends SIGTERM to all, SIGKILL to one still running after the grace, and fires when all ended."""
        self.supervisor.startService()
        a, b = [proto for proto, _, _ in self.reactor.spawned]
        d = self.supervisor.stopService()
        self.assertEqual((a.transport.signals, b.transport.signals), (["TERM"], ["TERM"]))
        ended(a, signal=15)
        self.assertNoResult(d)
        self.reactor.advance(workers.STOP_GRACE)
        self.assertEqual(b.transport.signals, ["TERM", "KILL"])
        self.assertEqual(a.transport.signals, ["TERM"])
        ended(b, signal=9)
        self.successResultOf(d)
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.spawned), 2)  # nothing restarted

    def test_stopCancelsPendingRestart(self):
        """A restart waiting when the server stops never happens."""
        self.supervisor.startService()
        ended(self.reactor.spawned[0][0], code=1)
        d = self.supervisor.stopService()
        ended(self.reactor.spawned[1][0], signal=15)
        self.successResultOf(d)
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.spawned), 2)

    def test_logsTagged(self):
        """Each line a worker writes is logged again by the first process, tagged with its number, twistd's time dropped."""
        from twisted.logger import globalLogPublisher
        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        self.supervisor.startService()
        proto = self.reactor.spawned[0][0]
        proto.childDataReceived(1, b"2026-12-06T11:00:00+0000 [mailstack.service#info] hel")
        proto.childDataReceived(1, b"lo\nnext")
        ended(proto, code=0)
        lines = [(e.get("number"), e.get("line")) for e in seen if "line" in e]
        self.assertEqual(lines, [(2, "[mailstack.service#info] hello"), (2, "next")])

    def test_reportsRouted(self):
        """What a worker writes on its report pipe, and its end, reach the supervisor's reports, not its log."""
        calls = []

        class Reports:
            def started(self, worker, link):
                calls.append(("started", worker.number))

            def received(self, worker, data):
                calls.append(("received", worker.number, data))

            def ended(self, worker):
                calls.append(("ended", worker.number))
        self.supervisor.reports = Reports()
        self.supervisor.startService()
        proto = self.reactor.spawned[0][0]
        proto.childDataReceived(5, b'["metrics",[]]\n')
        proto.childDataReceived(1, b"a log line\n")
        ended(proto, code=0)
        self.assertEqual(calls, [("started", 2), ("started", 3),
                                 ("received", 2, b'["metrics",[]]\n'), ("ended", 2)])


class FailingReactor(FakeReactor):
    """A fake reactor whose spawnProcess raises the queued errors first (fork failing)."""

    def __init__(self, errors):
        FakeReactor.__init__(self)
        self.errors = list(errors)
        self.attempts = 0

    def spawnProcess(self, proto, executable, args, env=None, childFDs=None):
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        return FakeReactor.spawnProcess(self, proto, executable, args, env, childFDs)


class SupervisorFaultTests(unittest.TestCase):
    """L{workers.WorkerSupervisor} when starting a worker fails or a worker keeps dying."""

    def supervisor(self, reactor, count=2):
        self.addCleanup(reactor.closePipes)
        return workers.WorkerSupervisor(
            reactor, count, lambda: [("smtp", 7, socket.AF_INET)],
            lambda number, inherit: ["worker", str(number), inherit])

    def logged(self):
        from twisted.logger import globalLogPublisher
        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        return seen

    def test_spawnFailureRetried(self):
        """A worker whose fork fails (EMFILE) is tried again after a pause, and then runs: the server still ends with two processes."""
        import errno
        reactor = FailingReactor([OSError(errno.EMFILE, "Too many open files")])
        supervisor = self.supervisor(reactor)
        seen = self.logged()
        supervisor.startService()
        self.assertEqual((reactor.attempts, supervisor.processes()), (1, 1))
        failures = [e for e in seen if e.get("log_level") is not None
                    and e["log_level"].name == "error"]
        self.assertEqual(len(failures), 1)
        self.assertIn("EMFILE", failures[0]["what"])
        reactor.advance(workers.RESTART_FIRST)
        self.assertEqual((reactor.attempts, supervisor.processes()), (2, 2))

    def test_spawnFailuresBackOff(self):
        """A fork that keeps failing is retried with doubling pauses up to RESTART_MAX, one error line per attempt, never in a tight loop."""
        reactor = FailingReactor([OSError(12, "Cannot allocate memory")] * 100)
        supervisor = self.supervisor(reactor)
        seen = self.logged()
        supervisor.startService()
        times = []
        for _ in range(600):
            before = reactor.attempts
            reactor.advance(1)
            if reactor.attempts != before:
                times.append(reactor.seconds())
        gaps = [b - a for a, b in zip([0.0] + times, times)]
        self.assertEqual(gaps[:6], [1, 2, 4, 8, 16, 30])
        self.assertEqual(set(gaps[5:]), {workers.RESTART_MAX})
        errors = [e for e in seen if e.get("log_level") is not None
                  and e["log_level"].name == "error"]
        self.assertEqual(len(errors), reactor.attempts)
        self.assertEqual([e["failures"] for e in errors[:3]], [1, 2, 3])
        self.assertEqual(supervisor.processes(), 1)

    def test_stopWhileStartFails(self):
        """Stopping the server while a worker could not be started fires at once and tries no more."""
        reactor = FailingReactor([OSError(24, "Too many open files")])
        supervisor = self.supervisor(reactor)
        supervisor.startService()
        self.successResultOf(defer.maybeDeferred(supervisor.stopService))
        reactor.advance(3600)
        self.assertEqual(reactor.attempts, 1)

    def test_anyErrorRetried(self):
        """Not only OSError: whatever spawning raises (a listener gone...) is retried, not left to the reactor."""
        reactor = FailingReactor([ValueError("bad file descriptor")])
        supervisor = self.supervisor(reactor)
        supervisor.startService()
        reactor.advance(workers.RESTART_FIRST)
        self.assertEqual(supervisor.processes(), 2)

    def test_crashLoopBacksOff(self):
        """A worker that dies at once every time is restarted after pauses doubling to RESTART_MAX, one error line each, counting the failures."""
        reactor = FakeReactor()
        supervisor = self.supervisor(reactor)
        seen = self.logged()
        supervisor.startService()
        times = []
        for _ in range(400):
            proto = reactor.spawned[-1][0]
            if proto.running:
                ended(proto, code=1)
            before = len(reactor.spawned)
            reactor.advance(1)
            if len(reactor.spawned) != before:
                times.append(reactor.seconds())
        gaps = [b - a for a, b in zip([0.0] + times, times)]
        self.assertEqual(gaps[:7], [1, 2, 4, 8, 16, 30, 30])
        errors = [e for e in seen if e.get("log_level") is not None
                  and e["log_level"].name == "error"]
        self.assertEqual([e["failures"] for e in errors[:4]], [1, 2, 3, 4])

    def test_steadyRunResetsTheBackoff(self):
        """After a crash loop, a worker that ran steadily and then died is restarted at once, its failures counted afresh."""
        reactor = FakeReactor()
        supervisor = self.supervisor(reactor)
        seen = self.logged()
        supervisor.startService()
        for _ in range(4):
            ended(reactor.spawned[-1][0], code=1)
            reactor.advance(workers.RESTART_MAX)
        reactor.advance(workers.STEADY_SECONDS)
        ended(reactor.spawned[-1][0], code=1)
        spawned = len(reactor.spawned)
        reactor.advance(0)
        self.assertEqual(len(reactor.spawned), spawned + 1)
        errors = [e for e in seen if e.get("log_level") is not None
                  and e["log_level"].name == "error"]
        self.assertEqual((errors[-1]["failures"], errors[-1]["pause"]), (1, 0.0))

    def test_failedStartsLeakNoDescriptor(self):
        """Starts that keep failing (EMFILE) close the pipe each made: retrying cannot use up the descriptors."""
        import os
        reactor = FailingReactor([OSError(24, "Too many open files")] * 50)
        supervisor = self.supervisor(reactor)
        before = len(os.listdir("/proc/self/fd"))
        supervisor.startService()
        reactor.pump([workers.RESTART_MAX] * 49)
        self.assertEqual(reactor.attempts, 50)
        self.assertEqual(len(os.listdir("/proc/self/fd")), before)

    def test_endedWorkerPipeClosed(self):
        """The pipe to a worker's standard input is closed when it ends; its replacement gets a new one."""
        import os
        reactor = FakeReactor()
        supervisor = self.supervisor(reactor)
        before = len(os.listdir("/proc/self/fd"))
        supervisor.startService()
        self.assertEqual(len(os.listdir("/proc/self/fd")), before + 1)  # the write end kept
        ended(reactor.spawned[0][0], code=1)
        self.assertEqual(len(os.listdir("/proc/self/fd")), before)
        reactor.advance(workers.RESTART_FIRST)
        self.assertEqual(len(os.listdir("/proc/self/fd")), before + 1)
