"""
What the workers of C{[server] workers = N} tell the first process, so that a
server of N processes is observed as one: the console, C{/metrics}, the class
reports and the API run in the first process only, and every session of
every worker must be counted and transcribed there.

Each worker writes reports on a pipe the first process reads (the descriptor
after its inherited listening sockets, L{mailstack.workers.reportDescriptor}),
one JSON array per line, never blocking its reactor:

  - C{["metrics", samples]}: its metric samples (L{MetricsPusher}, every
    L{METRICS_INTERVAL} seconds while they change, and once as it stops);
  - C{["sessions", snapshot]}: its L{mailstack.sessions.SessionCounter}'s
    snapshot (open, total, refused per protocol), sent with the metrics, for
    the console's status page and the API's (L{ServerSessions});
  - C{["activity", event, address, protocol, tls]}: what a user did
    (L{ForwardingActivity}), counted by the first process's recorder, the
    only writer of C{activity.json};
  - C{["submission", record]}: an accepted message's submission record
    (L{ForwardingSubmissions}), kept by the first process's log, the only
    writer of C{submissions.jsonl};
  - C{["open", id, protocol, client, clientHost, server]}, C{["line", id,
    kind, text]}, C{["login", id, address]}, C{["close", id, reason]}: a
    live transcript (L{ForwardingHub}), lines as the transcript file has
    them (secrets already C{***}), replayed into the first process's hub.

The pipe is bounded: while more than C{maxBuffer} octets wait for the first
process to read them, further reports are dropped (and counted), so a stuck
first process cannot grow a worker's memory. L{WorkerReports} is the first
process's side.
"""

import collections
import json

from twisted.application import service
from twisted.internet import abstract, defer, fdesc, task
from twisted.logger import Logger
from zope.interface import implementer

from mailstack.activity import EVENTS, LOGIN, RECEIVED, SENT, IActivity

log = Logger()

__all__ = ["WorkerReporter", "MetricsPusher", "ForwardingActivity", "ForwardingSubmissions",
           "ForwardingHub", "WorkerReports", "ServerSessions", "METRICS_INTERVAL"]

# Seconds between two looks at a worker's metrics (sent when they changed).
METRICS_INTERVAL = 1.0

# Octets a worker lets wait for the pipe before it drops reports.
MAX_BUFFER = 4 * 1024 * 1024

# The longest report line the first process takes (a larger one is skipped).
MAX_LINE = 8 * 1024 * 1024

# Why the first process ends a live session whose worker went away.
WORKER_ENDED = "the worker serving it ended"


class _PipeWriter(abstract.FileDescriptor):
    """The write end of the report pipe, non-blocking, counting what waits."""

    def __init__(self, reactor, fd):
        abstract.FileDescriptor.__init__(self, reactor)
        self.fd = fd
        self.pending = 0
        self.connected = 1  # (FileDescriptor.write sends nothing otherwise)
        fdesc.setNonBlocking(fd)

    def fileno(self):
        return self.fd

    def write(self, data):
        self.pending += len(data)
        abstract.FileDescriptor.write(self, data)

    def writeSomeData(self, data):
        written = fdesc.writeToFD(self.fd, data)
        if isinstance(written, int):
            self.pending -= written
        return written


class WorkerReporter:
    """
    In a worker: sends reports to the first process.

    @param writer: the pipe: C{write(bytes)} and C{pending} (octets not yet
        taken by the first process); see L{toPipe}.
    @param maxBuffer: octets that may wait before reports are dropped.
    """

    def __init__(self, writer, maxBuffer=MAX_BUFFER):
        self.writer = writer
        self.maxBuffer = maxBuffer
        self.dropped = 0

    @classmethod
    def toPipe(cls, reactor, fd, maxBuffer=MAX_BUFFER):
        """The reporter writing on the inherited pipe C{fd}."""
        return cls(_PipeWriter(reactor, fd), maxBuffer)

    def send(self, *report):
        """
        Send one report (JSON-ready values).

        @return: C{True} if it was sent, C{False} if dropped (the pipe full).
        """
        line = json.dumps(report, separators=(",", ":")).encode("utf-8") + b"\n"
        if self.writer.pending + len(line) > self.maxBuffer:
            if not self.dropped:
                log.warn("the first process reads no reports: dropping them until it does")
            self.dropped += 1
            return False
        if self.dropped:
            log.warn("the first process reads reports again; {count} were dropped",
                     count=self.dropped)
            self.dropped = 0
        self.writer.write(line)
        return True

    def flush(self):
        """
        Try at once to hand what waits to the pipe (without blocking): a
        stopping worker's reactor may not turn again to write it.
        """
        doWrite = getattr(self.writer, "doWrite", None)
        if self.writer.pending and doWrite is not None:
            doWrite()


class MetricsPusher(service.Service):
    """
    In a worker: sends its metric samples (L{mailstack.metrics.PrometheusMetrics.samples})
    and, given its C{counter} (a L{mailstack.sessions.SessionCounter}), its
    sessions' snapshot, every C{interval} seconds when they changed, and once
    more as it stops.
    """

    def __init__(self, reporter, metrics, clock, interval=METRICS_INTERVAL, counter=None):
        self.reporter = reporter
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self.counter = counter
        self._last = None
        self._lastSessions = None
        self._loop = None

    def startService(self):
        service.Service.startService(self)
        self._loop = task.LoopingCall(self.push)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def push(self):
        samples = self.metrics.samples()
        if samples != self._last and self.reporter.send("metrics", samples):
            self._last = samples
        if self.counter is not None:
            sessions = self.counter.snapshot()
            if sessions != self._lastSessions and self.reporter.send("sessions", sessions):
                self._lastSessions = sessions

    def stopService(self):
        service.Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.push()
        self.reporter.flush()


@implementer(IActivity)
class ForwardingActivity:
    """In a worker: the L{IActivity} that has the first process count each event."""

    def __init__(self, reporter):
        self.reporter = reporter

    def loggedIn(self, address, protocol, tls):
        self.reporter.send("activity", LOGIN, address, protocol, bool(tls))

    def messageSent(self, address, protocol, tls):
        self.reporter.send("activity", SENT, address, protocol, bool(tls))

    def messageReceived(self, address, protocol, tls):
        self.reporter.send("activity", RECEIVED, address, protocol, bool(tls))


class ForwardingSubmissions:
    """
    In a worker: the submission log the SMTP engine records into
    (C{reactor} and C{record}, as L{mailstack.smtp.submissions.SubmissionLog}
    offers them): each record goes to the first process's log.
    """

    def __init__(self, reporter, reactor):
        self.reporter = reporter
        self.reactor = reactor

    def record(self, submission):
        self.reporter.send("submission", submission.asDict())
        return defer.succeed(None)


class _ForwardedSession:
    """A worker's live session: what L{mailstack.transcript} tells it, sent on."""

    def __init__(self, reporter, id):
        self.reporter = reporter
        self.id = id

    def record(self, kind, text):
        self.reporter.send("line", self.id, kind, text)

    def loggedIn(self, address):
        self.reporter.send("login", self.id, address)

    def close(self, reason):
        self.reporter.send("close", self.id, reason)


class ForwardingHub:
    """
    In a worker: the transcript hub sessions report to (C{openSession}, as
    L{mailstack.transcripthub.TranscriptHub} offers it), replayed into the
    first process's.
    """

    def __init__(self, reporter):
        self.reporter = reporter
        self._ids = 0

    def openSession(self, protocol, client, clientHost, server):
        self._ids += 1
        session = _ForwardedSession(self.reporter, self._ids)
        self.reporter.send("open", session.id, protocol, client, clientHost, server)
        return session


class _Worker:
    """What the first process keeps of one running worker's reports."""

    def __init__(self):
        self.held = b""
        self.skipping = False
        self.sessions = {}  # the worker's session id -> the hub's LiveSession


class WorkerReports:
    """
    In the first process: applies each worker's reports to this process's
    metrics, activity recorder, submission log and transcript hub.

    @param metrics: the L{mailstack.metrics.PrometheusMetrics} (or L{None}).
    @param activity: the L{mailstack.activity.ActivityRecorder} (or L{None}).
    @param hub: the L{mailstack.transcripthub.TranscriptHub} (or L{None}).
    @param recordSubmission: C{(record dict) -> None} keeping a submission
        record in the server's log (or L{None}).
    @param sessions: the L{ServerSessions} the console reads (or L{None}).
    """

    def __init__(self, metrics=None, activity=None, hub=None, recordSubmission=None,
                 sessions=None):
        self.metrics = metrics
        self.sessions = sessions
        self.activity = activity
        self.hub = hub
        self.recordSubmission = recordSubmission
        self._workers = {}

    def received(self, worker, data):
        """Octets from the report pipe of C{worker} (any hashable naming one run of a worker)."""
        state = self._workers.get(worker)
        if state is None:
            state = self._workers[worker] = _Worker()
        lines = (state.held + data).split(b"\n")
        state.held = lines.pop()
        if len(state.held) > MAX_LINE:
            state.held = b""
            state.skipping = True
        for line in lines:
            if state.skipping:
                state.skipping = False  # the end of the overlong line
                log.warn("worker report over {max} octets skipped", max=MAX_LINE)
                continue
            try:
                self._apply(state, worker, json.loads(line))
            except Exception:
                log.failure("worker report not understood: {line!r}", line=line[:200])

    def _apply(self, state, worker, report):
        kind, args = report[0], report[1:]
        if kind == "metrics":
            if self.metrics is not None:
                self.metrics.workerReported(worker, args[0])
        elif kind == "sessions":
            if self.sessions is not None:
                self.sessions.workerReported(worker, args[0])
        elif kind == "activity":
            event, address, protocol, tls = args
            if event not in EVENTS:
                raise ValueError("unknown event %r" % (event,))
            if self.activity is not None:
                self.activity.count(event, str(address), str(protocol), bool(tls))
        elif kind == "submission":
            if self.recordSubmission is not None:
                self.recordSubmission(args[0])
        elif kind == "open":
            if self.hub is not None:
                id, protocol, client, clientHost, server = args
                state.sessions[id] = self.hub.openSession(protocol, client, clientHost, server)
        elif kind in ("line", "login", "close"):
            session = state.sessions.get(args[0])
            if session is None:
                return  # opened while reports were dropped, or no hub here
            if kind == "line":
                session.record(str(args[1]), str(args[2]))
            elif kind == "login":
                session.loggedIn(str(args[1]))
            else:
                del state.sessions[args[0]]
                session.close(str(args[1]))
        else:
            raise ValueError("unknown report %r" % (kind,))

    def ended(self, worker):
        """
        C{worker} exited: its live sessions end (their connections died with
        it) and its metrics stop counting as running (its counters are kept).
        """
        state = self._workers.pop(worker, None)
        if state is not None:
            for session in state.sessions.values():
                session.record("#", "closed: %s" % (WORKER_ENDED,))
                session.close(WORKER_ENDED)
        if self.metrics is not None:
            self.metrics.workerEnded(worker)
        if self.sessions is not None:
            self.sessions.workerEnded(worker)


# What of a SessionCounter snapshot counts up (kept when a worker ends).
_TOTALS = ("total", "refused")


class ServerSessions:
    """
    In the first process: the sessions of every process, as the console's
    status page and the API ask a L{mailstack.sessions.SessionCounter}
    (C{count}, C{snapshot}): this process's counter plus each running
    worker's last snapshot; a worker that ended leaves its totals (sessions
    since start, refused), not its open sessions.

    @param local: this process's L{mailstack.sessions.SessionCounter}.
    """

    def __init__(self, local):
        self.local = local
        self._workers = {}
        self._retired = {key: collections.Counter() for key in _TOTALS}

    def workerReported(self, worker, snapshot):
        self._workers[worker] = snapshot

    def workerEnded(self, worker):
        snapshot = self._workers.pop(worker, None) or {}
        for key in _TOTALS:
            self._retired[key].update(snapshot.get(key, {}))

    def snapshot(self):
        """L{mailstack.sessions.SessionCounter.snapshot} of the whole server."""
        merged = self.local.snapshot()
        for snapshot in list(self._workers.values()) + [self._retired]:
            for key in ("open",) + _TOTALS:
                into = merged.setdefault(key, {})
                for protocol, n in snapshot.get(key, {}).items():
                    into[protocol] = into.get(protocol, 0) + n
            for protocol, perIP in snapshot.get("perIP", {}).items():
                into = merged.setdefault("perIP", {}).setdefault(protocol, {})
                for ip, n in perIP.items():
                    into[ip] = into.get(ip, 0) + n
        return merged

    def count(self, protocol=None, ip=None):
        """L{mailstack.sessions.SessionCounter.count} of the whole server."""
        snapshot = self.snapshot()
        if ip is None:
            found = snapshot["open"]
            return sum(found.values()) if protocol is None else found.get(protocol, 0)
        perIP = snapshot["perIP"]
        if protocol is None:
            return sum(counts.get(ip, 0) for counts in perIP.values())
        return perIP.get(protocol, {}).get(ip, 0)
