"""
L{mailstack.workerlink}: what a worker reports and how the first process
applies it, so a server of several processes is observed as one.
"""

import json

from twisted.internet.task import Clock
from twisted.trial import unittest

from mailstack.activity import LOGIN, RECEIVED, SENT, ActivityRecorder
from mailstack.metrics import PrometheusMetrics, exposition
from mailstack.sessions import SessionCounter
from mailstack.smtp.submissions import Submission, SubmissionLog
from mailstack.transcripthub import TranscriptHub
from mailstack import workerlink


class FakePipe:
    """The report pipe: keeps what is written; C{pending} set by the test."""

    def __init__(self):
        self.data = b""
        self.pending = 0

    def write(self, data):
        self.data += data

    def reports(self):
        return [json.loads(line) for line in self.data.splitlines()]


class Watcher:
    """An ITranscriptWatcher keeping what it is told."""

    def __init__(self):
        self.events = []

    def sessionShown(self, session):
        self.events.append(("shown", session.id))

    def lineRecorded(self, session, line):
        self.events.append(("line", line.kind, line.text))

    def sessionEnded(self, session):
        self.events.append(("ended", session.ended))


def sample(metrics, name, **labels):
    """A sample's value in C{metrics}' whole-server view (L{exposition}'s), or None."""
    for family in metrics.collect():
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


class Link:
    """A worker's reporter wired to a first process's L{workerlink.WorkerReports}."""

    def __init__(self, reports, worker="w1"):
        self.pipe = FakePipe()
        self.reporter = workerlink.WorkerReporter(self.pipe)
        self.reports = reports
        self.worker = worker

    def deliver(self, chunk=None):
        """Hand what was written to the first process, in chunks of C{chunk} octets."""
        data, self.pipe.data = self.pipe.data, b""
        step = chunk or max(len(data), 1)
        for start in range(0, len(data), step):
            self.reports.received(self.worker, data[start:start + step])


class ReporterTests(unittest.TestCase):
    """The worker's side of the pipe."""

    def test_oneLinePerReport(self):
        """Each report is one JSON array on a line of its own."""
        pipe = FakePipe()
        reporter = workerlink.WorkerReporter(pipe)
        self.assertTrue(reporter.send("line", 1, "C", "a\nb"))
        self.assertEqual(pipe.data, b'["line",1,"C","a\\nb"]\n')

    def test_dropsWhileFull(self):
        """While the first process reads nothing, reports beyond the bound are dropped and counted, then sent again."""
        pipe = FakePipe()
        reporter = workerlink.WorkerReporter(pipe, maxBuffer=100)
        pipe.pending = 90
        self.assertFalse(reporter.send("line", 1, "C", "x" * 20))
        self.assertEqual((pipe.data, reporter.dropped), (b"", 1))
        pipe.pending = 0
        self.assertTrue(reporter.send("line", 1, "C", "y"))
        self.assertEqual((pipe.reports(), reporter.dropped), ([["line", 1, "C", "y"]], 0))


class MetricsTests(unittest.TestCase):
    """C{/metrics} of the first process counts every worker's sessions."""

    def setUp(self):
        self.first = PrometheusMetrics()
        self.reports = workerlink.WorkerReports(metrics=self.first)
        self.worker = PrometheusMetrics()
        self.link = Link(self.reports)
        self.clock = Clock()
        self.pusher = workerlink.MetricsPusher(self.link.reporter, self.worker, self.clock)

    def test_summed(self):
        """Counters and gauges are the sums of both processes', without a per-process label."""
        self.first.forListener("imap", "imap").connectionAccepted()
        listener = self.worker.forListener("imap", "imap")
        listener.connectionAccepted()
        listener.connectionAccepted()
        listener.sessionOpened()
        self.pusher.startService()
        self.link.deliver(chunk=7)
        self.assertEqual(sample(self.first, "mailstack_connections_accepted_total",
                                listener="imap", protocol="imap"), 3.0)
        self.assertEqual(sample(self.first, "mailstack_sessions_open",
                                listener="imap", protocol="imap"), 1.0)
        body, _ = exposition(self.first)
        self.assertIn(b'mailstack_connections_accepted_total{listener="imap",protocol="imap"} 3.0',
                      body)

    def test_openMetrics(self):
        """A scraper asking for OpenMetrics gets the summed samples too."""
        self.worker.forListener("imap", "imap").command("IDLE")
        self.pusher.startService()
        self.link.deliver()
        body, contentType = exposition(self.first, "application/openmetrics-text; version=1.0.0")
        self.assertTrue(contentType.startswith("application/openmetrics-text"))
        self.assertIn(b'mailstack_commands_total{command="IDLE",listener="imap",protocol="imap"} 1.0',
                      body)

    def test_seriesOfTheWorkerOnly(self):
        """A series only the worker has (a command only it was sent) is shown."""
        self.worker.forListener("imap", "imap").command("IDLE")
        self.pusher.startService()
        self.link.deliver()
        self.assertEqual(sample(self.first, "mailstack_commands_total", listener="imap",
                                protocol="imap", command="IDLE"), 1.0)

    def test_workerEnds(self):
        """A worker that ends leaves its counters' counts but its open sessions no longer count."""
        self.first.forListener("pop3", "pop3")  # every process serves every listener
        listener = self.worker.forListener("pop3", "pop3")
        listener.connectionAccepted()
        listener.sessionOpened()
        self.pusher.startService()
        self.link.deliver()
        self.reports.ended("w1")
        self.assertEqual(sample(self.first, "mailstack_connections_accepted_total",
                                listener="pop3", protocol="pop3"), 1.0)
        self.assertEqual(sample(self.first, "mailstack_sessions_open",
                                listener="pop3", protocol="pop3"), 0.0)
        # Its successor starts from zero; the totals go on from the kept counts.
        successor = PrometheusMetrics()
        successor.forListener("pop3", "pop3").connectionAccepted()
        self.reports.metrics.workerReported("w2", successor.samples())
        self.assertEqual(sample(self.first, "mailstack_connections_accepted_total",
                                listener="pop3", protocol="pop3"), 2.0)

    def test_latestReplacesEarlier(self):
        """Each report replaces the worker's previous one (they are totals, not increments)."""
        listener = self.worker.forListener("smtp", "smtp")
        self.pusher.startService()
        listener.connectionAccepted()
        self.clock.advance(workerlink.METRICS_INTERVAL)
        listener.connectionAccepted()
        self.clock.advance(workerlink.METRICS_INTERVAL)
        self.link.deliver()
        self.assertEqual(sample(self.first, "mailstack_connections_accepted_total",
                                listener="smtp", protocol="smtp"), 2.0)

    def test_sentOnlyWhenChanged(self):
        """An idle worker sends nothing after its first report; stopping sends the last counts."""
        self.pusher.startService()
        self.assertEqual(len(self.link.pipe.reports()), 1)
        self.clock.advance(workerlink.METRICS_INTERVAL * 5)
        self.assertEqual(len(self.link.pipe.reports()), 1)
        self.worker.delivered("local", 1, 100)
        self.pusher.stopService()
        self.link.deliver()
        self.assertEqual(sample(self.first, "mailstack_delivered_messages_total",
                                destination="local"), 1.0)


class SessionsTests(unittest.TestCase):
    """The console's status page and the API count the worker's sessions."""

    def setUp(self):
        self.first = SessionCounter()
        self.sessions = workerlink.ServerSessions(self.first)
        self.link = Link(workerlink.WorkerReports(sessions=self.sessions))
        self.worker = SessionCounter()
        self.pusher = workerlink.MetricsPusher(self.link.reporter, PrometheusMetrics(), Clock(),
                                               counter=self.worker)

    def test_summed(self):
        """Open sessions, totals and refusals are those of both processes."""
        self.first.open("imap", "10.0.0.1")
        self.worker.open("imap", "10.0.0.1")
        self.worker.open("pop3", "10.0.0.2")
        self.worker.refuse("pop3", "10.0.0.3")
        self.pusher.startService()
        self.link.deliver(chunk=11)
        self.assertEqual((self.sessions.count("imap"), self.sessions.count(),
                          self.sessions.count("imap", "10.0.0.1"),
                          self.sessions.count(ip="10.0.0.2")), (2, 3, 2, 1))
        snapshot = self.sessions.snapshot()
        self.assertEqual((snapshot["total"], snapshot["refused"]),
                         ({"imap": 2, "pop3": 1}, {"pop3": 1}))

    def test_workerEnds(self):
        """A worker that ends takes its open sessions away and leaves its totals."""
        self.worker.open("imap", "10.0.0.1")
        self.pusher.startService()
        self.link.deliver()
        self.link.reports.ended("w1")
        snapshot = self.sessions.snapshot()
        self.assertEqual((self.sessions.count("imap"), snapshot["total"]), (0, {"imap": 1}))


class ActivityAndSubmissionTests(unittest.TestCase):
    """Class reports and the API's submissions include the worker's."""

    def test_activityCounted(self):
        """A login, a sent and a received message in a worker are counted by the first process's recorder."""
        recorder = ActivityRecorder(None, Clock())
        link = Link(workerlink.WorkerReports(activity=recorder))
        forwarding = workerlink.ForwardingActivity(link.reporter)
        forwarding.loggedIn("Alice@lab.test", "imap", True)
        forwarding.messageSent("alice@lab.test", "smtp", False)
        forwarding.messageReceived("alice@lab.test", "smtp", False)
        link.deliver(chunk=5)
        user = recorder.user("alice@lab.test")
        self.assertEqual((user.total(LOGIN, "imap", True), user.total(SENT),
                          user.total(RECEIVED)), (1, 1, 1))

    def test_submissionKept(self):
        """A message a worker accepted is in the first process's submission log."""
        submissions = SubmissionLog(Clock())
        link = Link(workerlink.WorkerReports(
            recordSubmission=lambda values: submissions.record(Submission.fromDict(values))))
        record = Submission(
            time=1.0, queueID="Q1", protocol="submission", port=587, client="127.0.0.1",
            helo="h", tls="starttls", tlsVersion="TLSv1.3", tlsCipher="X",
            authenticated="alice@lab.test", sender="alice@lab.test",
            recipients=("bob@lab.test",), subject="Hi", messageID="<m@x>", size=10)
        workerlink.ForwardingSubmissions(link.reporter, Clock()).record(record)
        link.deliver()
        self.assertEqual(submissions.get("Q1"), record)

    def test_badReportSkipped(self):
        """A report line the first process cannot read is logged and skipped; the next is applied."""
        recorder = ActivityRecorder(None, Clock())
        reports = workerlink.WorkerReports(activity=recorder)
        reports.received("w1", b'not json\n["activity","nonsense","a@b","imap",true]\n'
                               b'["activity","login","a@b","imap",true]\n')
        self.assertEqual(len(self.flushLoggedErrors()), 2)
        self.assertEqual(recorder.user("a@b").total(LOGIN), 1)


class TranscriptTests(unittest.TestCase):
    """The console's live transcripts show the sessions a worker serves."""

    def setUp(self):
        self.hub = TranscriptHub(Clock())
        self.reports = workerlink.WorkerReports(hub=self.hub)
        self.link = Link(self.reports)
        self.forwarding = workerlink.ForwardingHub(self.link.reporter)

    def test_sessionReplayed(self):
        """A worker's session appears in the hub with its lines, its login and its end."""
        admin, alice = Watcher(), Watcher()
        self.hub.watch(admin, "root@lab.test", admin=True)
        self.hub.watch(alice, "alice@lab.test")
        live = self.forwarding.openSession("imap", "127.0.0.1:4000", "127.0.0.1",
                                           "127.0.0.1:143")
        live.record("S", "* OK ready")
        live.record("C", "a LOGIN alice@lab.test ***")
        live.loggedIn("alice@lab.test")
        live.record("S", "a OK")
        live.close("client quit")
        self.link.deliver(chunk=3)
        [session] = self.hub.sessions()
        self.assertEqual((session.protocol, session.client, session.users, session.ended),
                         ("imap", "127.0.0.1:4000", ["alice@lab.test"], "client quit"))
        self.assertEqual([line.text for line in session.lines],
                         ["* OK ready", "a LOGIN alice@lab.test ***", "a OK"])
        self.assertEqual(admin.events, [("shown", session.id), ("line", "S", "* OK ready"),
                                        ("line", "C", "a LOGIN alice@lab.test ***"),
                                        ("line", "S", "a OK"), ("ended", "client quit")])
        self.assertEqual(alice.events, [("shown", session.id), ("line", "S", "a OK"),
                                        ("ended", "client quit")])

    def test_workerEndsItsSessions(self):
        """Sessions of a worker that died end in the hub, with a note saying why."""
        live = self.forwarding.openSession("pop3", "127.0.0.1:4000", "127.0.0.1",
                                           "127.0.0.1:110")
        live.record("S", "+OK")
        self.link.deliver()
        self.reports.ended("w1")
        [session] = self.hub.sessions()
        self.assertEqual(session.ended, workerlink.WORKER_ENDED)
        self.assertEqual(session.lines[-1].text, "closed: " + workerlink.WORKER_ENDED)

    def test_twoWorkersSameIds(self):
        """Two workers numbering their sessions alike are kept apart."""
        other = Link(self.reports, worker="w2")
        second = workerlink.ForwardingHub(other.reporter)
        self.forwarding.openSession("imap", "a:1", "a", "s:1").record("S", "one")
        second.openSession("imap", "b:2", "b", "s:1").record("S", "two")
        self.link.deliver()
        other.deliver()
        self.assertEqual(sorted((s.client, [l.text for l in s.lines]) for s in self.hub.sessions()),
                         [("a:1", ["one"]), ("b:2", ["two"])])


class PipeTests(unittest.TestCase):
    """The worker's end of a real pipe."""

    def test_writesOnThePipe(self):
        """A report sent on a real pipe is read at its other end, whole."""
        from twisted.internet import reactor
        import os
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        os.set_blocking(readEnd, False)
        self.addCleanup(os.close, writeEnd)
        reporter = workerlink.WorkerReporter.toPipe(reactor, writeEnd)
        self.addCleanup(reporter.writer.stopWriting)
        self.assertTrue(reporter.send("close", 1, "quit"))
        self.assertEqual(reporter.writer.pending, 19)
        reporter.writer.doWrite()
        try:
            read = os.read(readEnd, 100)
        except BlockingIOError:
            read = b""
        self.assertEqual((read, reporter.writer.pending),
                         (b'["close",1,"quit"]\n', 0))

    def test_lastCountsWrittenAtStop(self):
        """A stopping worker's last metrics are on the pipe before its reactor turns again."""
        from twisted.internet import reactor
        import os
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        os.set_blocking(readEnd, False)
        self.addCleanup(os.close, writeEnd)
        reporter = workerlink.WorkerReporter.toPipe(reactor, writeEnd)
        self.addCleanup(reporter.writer.stopWriting)
        metrics = PrometheusMetrics()
        pusher = workerlink.MetricsPusher(reporter, metrics, Clock())
        pusher.startService()
        metrics.delivered("local", 1, 10)
        pusher.stopService()
        try:
            read = os.read(readEnd, 1 << 20)
        except BlockingIOError:
            read = b""
        last = json.loads(read.splitlines()[-1]) if read else None
        self.assertIsNotNone(last)
        self.assertIn(["mailstack_delivered_messages", "counter",
                       "mailstack_delivered_messages_total", [["destination", "local"]], 1.0],
                      last[1])


class Server:
    """
    A first process and two workers wired in memory: each worker's
    L{workerlink.LimitsLink} reports to the first process's
    L{workerlink.WorkerReports} and L{workerlink.SharedLimits}, which
    answers on each worker's standard input (L{deliver} moves both ways).
    """

    def __init__(self, perIP=True, delayAfter=2):
        from mailstack.throttle import AuthPenalty
        self.clock = Clock()

        def penalty():
            return AuthPenalty(self.clock, delayAfter=delayAfter, delaySeconds=2.0)
        self.counter, self.penalty = SessionCounter(), penalty()
        self.shared = workerlink.SharedLimits(self.counter, self.penalty, self.clock, perIP)
        self.reports = workerlink.WorkerReports(limits=self.shared)
        self.workers = {}
        for name in ("w2", "w3"):
            up, down = FakePipe(), FakePipe()
            counter, workerPenalty = SessionCounter(), penalty()
            link = workerlink.LimitsLink(workerlink.WorkerReporter(up), counter,
                                         workerPenalty, self.clock, perIP)
            self.workers[name] = (up, down, counter, workerPenalty, link)
            self.reports.started(name, workerlink.WorkerReporter(down))
        self.shared.startService()
        for _, _, _, _, link in self.workers.values():
            link.startService()

    def deliver(self):
        """Every worker's reports to the first process, then its answers to each worker."""
        for name, (up, down, _, _, link) in self.workers.items():
            data, up.data = up.data, b""
            self.reports.received(name, data)
        for name, (up, down, _, _, link) in self.workers.items():
            data, down.data = down.data, b""
            link.received(data)

    def tick(self):
        """
        Two exchanges of per-IP counts (the workers and the first process push
        at the same ticks, so a worker's news reaches the others at the next).
        """
        for _ in range(2):
            self.clock.advance(workerlink.LIMITS_INTERVAL)
            self.deliver()


class SharedLimitsTests(unittest.TestCase):
    """The per-IP limit and the failed-login penalty over the processes of one server."""

    def test_perIPCountsEveryProcess(self):
        """Sessions one address holds in any process count against the per-IP limit in every other, within one exchange."""
        from mailstack.sessions import LimitingFactory
        server = Server()
        w2counter = server.workers["w2"][2]
        w3counter = server.workers["w3"][2]
        for _ in range(3):
            w2counter.open("imap", "192.0.2.7")
        server.counter.open("imap", "192.0.2.7")
        server.tick()
        self.assertEqual(server.counter.serverCount("imap", "192.0.2.7"), 4)
        self.assertEqual(w3counter.serverCount("imap", "192.0.2.7"), 4)
        self.assertEqual(w2counter.serverCount("imap", "192.0.2.7"), 4)
        self.assertEqual(w3counter.serverCount("pop3", "192.0.2.7"), 0)
        factory = LimitingFactory(object(), w3counter, "imap", 4, b"NO\r\n")

        class Peer:
            host = "192.0.2.7"
        refused = factory.buildProtocol(Peer())
        self.assertEqual(type(refused).__name__, "_RefusingProtocol")

    def test_closedSessionsLeaveTheCount(self):
        """Sessions that end, and every session of a worker that exits, stop counting elsewhere."""
        server = Server()
        w2counter, w3counter = server.workers["w2"][2], server.workers["w3"][2]
        w2counter.open("imap", "192.0.2.7")
        w2counter.open("imap", "192.0.2.7")
        w3counter.open("imap", "192.0.2.7")
        server.tick()
        self.assertEqual(w3counter.serverCount("imap", "192.0.2.7"), 3)
        w2counter.close("imap", "192.0.2.7")
        server.tick()
        self.assertEqual(w3counter.serverCount("imap", "192.0.2.7"), 2)
        server.reports.ended("w2")
        server.tick()
        self.assertEqual(w3counter.serverCount("imap", "192.0.2.7"), 1)
        self.assertEqual(server.counter.elsewhere, {"imap": {"192.0.2.7": 1}})
        self.assertEqual(w3counter.elsewhere, {})

    def test_onlyChangesSent(self):
        """Counts that did not change are not sent again, either way."""
        server = Server()
        server.workers["w2"][2].open("smtp", "192.0.2.9")
        server.tick()
        server.clock.advance(workerlink.LIMITS_INTERVAL)
        self.assertEqual([(up.data, down.data) for up, down, _, _, _ in
                          server.workers.values()], [(b"", b""), (b"", b"")])

    def test_noPerIPWhenTheLimitIsOff(self):
        """With connections_per_ip = 0 no counts are exchanged at all."""
        server = Server(perIP=False)
        server.workers["w2"][2].open("smtp", "192.0.2.9")
        server.tick()
        self.assertEqual(server.counter.elsewhere, {})
        self.assertEqual(server.workers["w2"][0].data, b"")

    def test_penaltyCountsEveryProcess(self):
        """Failed logins from one address in different processes add up: its logins wait everywhere after delayAfter failures in all, not per process."""
        server = Server(delayAfter=2)
        address = "198.51.100.3"
        server.workers["w2"][3].failed(address)
        server.deliver()
        server.workers["w3"][3].failed(address)
        server.deliver()
        for penalty in [server.penalty] + [w[3] for w in server.workers.values()]:
            self.assertEqual((penalty.failures(address), penalty.delayFor(address)), (2, 2.0))

    def test_firstProcessFailuresShared(self):
        """A failure in the first process is counted by every worker, once."""
        server = Server()
        server.penalty.failed("198.51.100.3")
        server.deliver()
        self.assertEqual([w[3].failures("198.51.100.3") for w in server.workers.values()],
                         [1, 1])
        self.assertEqual(server.penalty.failures("198.51.100.3"), 1)

    def test_successClearsEverywhere(self):
        """A login that succeeds in one process clears the address's failures in all."""
        server = Server()
        address = "198.51.100.3"
        server.workers["w2"][3].failed(address)
        server.deliver()
        server.workers["w3"][3].succeeded(address)
        server.deliver()
        for penalty in [server.penalty] + [w[3] for w in server.workers.values()]:
            self.assertEqual(penalty.failures(address), 0)

    def test_successWithoutFailuresNotSent(self):
        """A success from an address with no failures sends nothing (no pipe traffic per login)."""
        server = Server()
        server.workers["w2"][3].succeeded("198.51.100.3")
        server.penalty.succeeded("198.51.100.3")
        self.assertEqual(server.workers["w2"][0].data + server.workers["w2"][1].data, b"")

    def test_sessionKeysNotShared(self):
        """A client with no address (a UNIX socket: counted for its session alone) is not shared."""
        server = Server()
        server.workers["w2"][3].failed("session 7f00")
        server.deliver()
        self.assertEqual(server.penalty.failures("session 7f00"), 0)

    def test_badMessageSkipped(self):
        """A line the worker cannot read from the first process is logged and skipped; the next still applies."""
        server = Server()
        link = server.workers["w2"][4]
        link.received(b'["nonsense"]\n["authFailed","198.51.100.3"]\n')
        self.assertEqual(server.workers["w2"][3].failures("198.51.100.3"), 1)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


class MaildropReleaseTests(unittest.TestCase):
    """POP3 logins waiting for a maildrop a session of another process holds."""

    def setUp(self):
        from mailstack.pop3.waiting import MaildropWaiters
        from mailstack.storage.memory import MemoryStore
        self.server = Server()
        self.account = MemoryStore().account("alice@lab.test")  # one lock for every process
        self.first = MaildropWaiters(self.server.clock)
        self.server.shared.shareMaildrops(self.first)
        self.waiters = {"first": self.first}
        for name, (_, _, _, _, link) in self.server.workers.items():
            self.waiters[name] = MaildropWaiters(self.server.clock)
            link.shareMaildrops(self.waiters[name])

    def acquire(self, process):
        return self.waiters[process].acquire(self.account, "alice@lab.test", 5)

    def test_wokenAtOnce(self):
        """A login waiting in one worker takes the maildrop as soon as a session of the other worker lets it go, not at its next poll."""
        lock = self.successResultOf(self.acquire("w2"))
        waiting = self.acquire("w3")
        self.assertNoResult(waiting)
        lock.release()
        self.server.deliver()
        self.successResultOf(waiting).release()

    def test_firstProcessWokenByAWorker(self):
        """A worker's release wakes a login waiting in the first process, and the first process's a worker's."""
        lock = self.successResultOf(self.acquire("w3"))
        waiting = self.acquire("first")
        lock.release()
        self.server.deliver()
        lock = self.successResultOf(waiting)
        waiting = self.acquire("w2")
        lock.release()
        self.server.deliver()
        self.successResultOf(waiting).release()

    def test_nobodyWaiting(self):
        """A release nobody waits for leaves every process's line empty and the maildrop free for the next login anywhere."""
        self.successResultOf(self.acquire("w2")).release()
        self.server.deliver()
        self.assertEqual([w.waiting("alice@lab.test") for w in self.waiters.values()], [0, 0, 0])
        self.successResultOf(self.acquire("w3")).release()
