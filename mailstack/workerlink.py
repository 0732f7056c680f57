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

  - C{["perIP", changes]}: its open sessions per protocol and client IP
    that changed since it last said (C{{protocol: {ip: n}}}, 0 for none
    left), every L{LIMITS_INTERVAL} seconds while they change, when
    C{[limits] connections_per_ip} is on (L{LimitsLink});
  - C{["authFailed", address]}, C{["authSucceeded", address]}: a failed
    login from a client address, a success that cleared its failures
    (L{LimitsLink}, told by L{mailstack.throttle.AuthPenalty});
  - C{["released", address]}: a POP3 session let C{address}'s maildrop go
    (L{LimitsLink}, told by L{mailstack.pop3.waiting.MaildropWaiters}).

The pipe is bounded: while more than C{maxBuffer} octets wait for the first
process to read them, further reports are dropped (and counted), so a stuck
first process cannot grow a worker's memory. L{WorkerReports} is the first
process's side.

The first process answers on the worker's standard input, the same way (one
JSON array per line, bounded), with what the others did (L{SharedLimits}):
C{["elsewhere", changes]}, the sessions every other process has open per
protocol and client IP (changed entries only), and the C{authFailed},
C{authSucceeded} and C{released} of every other process. So the per-IP
connection limit and the failed-login penalty are the server's, not each
process's: no round trip per connection, and the counts are at most about
two L{LIMITS_INTERVAL}s old. And a POP3 login waiting for a maildrop that a
session of another process held tries as soon as it is let go, not at its
next poll (a tenth of a second later).
"""

import collections
import json
import os

from twisted.application import service
from twisted.internet import abstract, defer, fdesc, task
from twisted.logger import Logger
from zope.interface import implementer

from mailstack.activity import EVENTS, LOGIN, RECEIVED, SENT, IActivity

log = Logger()

__all__ = ["WorkerReporter", "MetricsPusher", "ForwardingActivity", "ForwardingSubmissions",
           "ForwardingHub", "WorkerReports", "ServerSessions", "METRICS_INTERVAL",
           "LimitsLink", "SharedLimits", "LIMITS_INTERVAL", "LineReader"]

# Seconds between two looks at a worker's metrics (sent when they changed).
METRICS_INTERVAL = 1.0

# Seconds between two exchanges of per-IP session counts (when they changed).
LIMITS_INTERVAL = 0.25

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

    def connectionLost(self, reason):
        abstract.FileDescriptor.connectionLost(self, reason)
        self.close()

    def close(self):
        """Close the pipe (the reader has gone, or no longer needs it); once."""
        if self.fd >= 0:
            self.stopWriting()
            self.connected = 0  # (FileDescriptor.write then keeps nothing)
            fd, self.fd = self.fd, -1
            os.close(fd)


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

    def close(self):
        """Close the pipe (its reader has gone)."""
        close = getattr(self.writer, "close", None)
        if close is not None:
            close()


class LineReader:
    """
    Octets of a pipe of reports -> each report (a decoded JSON array) to
    C{apply}; a line over C{maxLine} octets is skipped, one not understood
    is logged, neither stops the rest.
    """

    def __init__(self, apply, maxLine=None, what="report"):
        self.apply = apply
        self.maxLine = MAX_LINE if maxLine is None else maxLine
        self.what = what  # how the log names a line
        self._held = b""
        self._skipping = False

    def received(self, data):
        lines = (self._held + data).split(b"\n")
        self._held = lines.pop()
        if len(self._held) > self.maxLine:
            self._held = b""
            self._skipping = True
        for line in lines:
            if self._skipping:
                self._skipping = False  # the end of the overlong line
                log.warn("{what} over {max} octets skipped", what=self.what,
                         max=self.maxLine)
                continue
            try:
                self.apply(json.loads(line))
            except Exception:
                log.failure("{what} not understood: {line!r}", what=self.what,
                            line=line[:200])


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

    def __init__(self, apply):
        self.reader = LineReader(apply, what="worker report")  # its pipe's lines
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
    @param limits: the L{SharedLimits} (or L{None}).
    """

    def __init__(self, metrics=None, activity=None, hub=None, recordSubmission=None,
                 sessions=None, limits=None):
        self.metrics = metrics
        self.sessions = sessions
        self.limits = limits
        self.activity = activity
        self.hub = hub
        self.recordSubmission = recordSubmission
        self._workers = {}

    def received(self, worker, data):
        """Octets from the report pipe of C{worker} (any hashable naming one run of a worker)."""
        state = self._workers.get(worker)
        if state is None:
            state = self._workers[worker] = _Worker(
                lambda report: self._apply(state, worker, report))
        state.reader.received(data)

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
        elif kind in ("perIP", "authFailed", "authSucceeded", "released"):
            if self.limits is not None:
                self.limits.reported(worker, kind, args)
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

    def started(self, worker, link):
        """
        C{worker} runs; C{link} (a L{WorkerReporter}) writes to its standard
        input, for what the first process tells it.
        """
        if self.limits is not None:
            self.limits.workerStarted(worker, link)

    def ended(self, worker):
        """
        C{worker} exited: its live sessions end (their connections died with
        it) and its metrics stop counting as running (its counters are kept).
        """
        if self.limits is not None:
            self.limits.workerEnded(worker)
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
            _add(merged.setdefault("perIP", {}), snapshot.get("perIP", {}))
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


def _changes(old, new):
    """
    The entries of C{new} (C{{protocol: {ip: n}}}) that differ from C{old}'s,
    an address in C{old} but no longer in C{new} given as 0.
    """
    out = {}
    for protocol in set(old) | set(new):
        before, now = old.get(protocol, {}), new.get(protocol, {})
        changed = {ip: n for ip, n in now.items() if before.get(ip) != n}
        changed.update((ip, 0) for ip in before if ip not in now)
        if changed:
            out[protocol] = changed
    return out


def _applyChanges(into, changes):
    """Apply L{_changes}' C{changes} to the counts C{into} (0 removes an address)."""
    for protocol, changed in changes.items():
        counts = into.setdefault(str(protocol), {})
        for ip, n in changed.items():
            if int(n) > 0:
                counts[str(ip)] = int(n)
            else:
                counts.pop(str(ip), None)
        if not counts:
            del into[str(protocol)]


def _add(into, counts):
    for protocol, perIP in counts.items():
        total = into.setdefault(protocol, {})
        for ip, n in perIP.items():
            total[ip] = total.get(ip, 0) + n


class _LimitsService(service.Service):
    """
    What L{LimitsLink} and L{SharedLimits} share: C{push} every C{interval}
    seconds while running, if per-IP counts are exchanged (C{perIP}); this
    process's failed logins and released maildrops told to the others
    (each class's C{_tell}), and theirs applied here (L{_heard}).
    """

    maildrops = None
    pushAtStart = True  # push at once on start (else first after one interval)

    def __init__(self, counter, penalty, clock, perIP, interval):
        self.counter = counter
        self.penalty = penalty
        self.clock = clock
        self.perIP = perIP
        self.interval = interval
        penalty.share = self
        self._loop = None

    def shareMaildrops(self, maildrops):
        """Tell the other processes when C{maildrops}' sessions let a maildrop go, and it theirs."""
        self.maildrops = maildrops
        maildrops.share = self

    def authFailed(self, key):
        """A failed login in this process: the other processes count it."""
        self._tell("authFailed", key)

    def authSucceeded(self, key):
        self._tell("authSucceeded", key)

    def maildropReleased(self, address):
        """A session of this process let C{address}'s maildrop go: the others hear it."""
        self._tell("released", address)

    def _heard(self, kind, args):
        """
        Another process's failed or clearing login, or a maildrop it let go,
        applied here; @return: its key (the address).
        """
        if kind not in ("authFailed", "authSucceeded", "released"):
            raise ValueError("unknown message %r" % (kind,))
        key = str(args[0])
        if kind == "authFailed":
            self.penalty.failedElsewhere(key)
        elif kind == "authSucceeded":
            self.penalty.succeededElsewhere(key)
        elif self.maildrops is not None:
            self.maildrops.releasedElsewhere(key)
        return key

    def startService(self):
        service.Service.startService(self)
        if self.perIP:
            self._loop = task.LoopingCall(self.push)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=self.pushAtStart)

    def stopService(self):
        service.Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()


class LimitsLink(_LimitsService):
    """
    In a worker: makes C{[limits] connections_per_ip} and the failed-login
    penalty the whole server's. It tells the first process this process's
    open sessions per client IP (when they changed, every C{interval}
    seconds) and each failed login (and a success that cleared an address),
    and applies what the first process says of the other processes
    (L{received}, the worker's standard input): their sessions per IP go to
    C{counter.elsewhere}, their failures and successes to C{penalty}.

    @param reporter: the L{WorkerReporter} to the first process.
    @param counter: this process's L{mailstack.sessions.SessionCounter}.
    @param penalty: this process's L{mailstack.throttle.AuthPenalty} (its
        C{share} becomes this link).
    @param clock: an C{IReactorTime}.
    @param perIP: whether to exchange per-IP counts (the limit is on).
    @ivar maildrops: the POP3 L{mailstack.pop3.waiting.MaildropWaiters} (or
        L{None}): told when another process let a maildrop go; see L{shareMaildrops}.
    """

    name = "limits-link"

    def __init__(self, reporter, counter, penalty, clock, perIP=True,
                 interval=LIMITS_INTERVAL):
        _LimitsService.__init__(self, counter, penalty, clock, perIP, interval)
        self.reporter = reporter
        self._reader = LineReader(self.apply)
        self._sent = {}

    def push(self):
        """Send the per-IP counts that changed since the last that went."""
        changes = _changes(self._sent, self.counter.perIP())
        if changes and self.reporter.send("perIP", changes):
            _applyChanges(self._sent, changes)

    def _tell(self, kind, key):
        self.reporter.send(kind, key)

    def received(self, data):
        """Octets from the first process (the worker's standard input)."""
        self._reader.received(data)

    def apply(self, report):
        kind, args = report[0], report[1:]
        if kind == "elsewhere":
            _applyChanges(self.counter.elsewhere, args[0])
        else:
            self._heard(kind, args)


class _Peer:
    """What the first process knows of one running worker's limits."""

    def __init__(self, link):
        self.link = link    # a WorkerReporter on the worker's standard input
        self.counts = {}    # its open sessions: {protocol: {ip: n}}
        self.sent = {}      # what it was last told of the others' sessions


class SharedLimits(_LimitsService):
    """
    In the first process: the per-IP connection limit and the failed-login
    penalty over every process. Each worker's sessions per IP (its
    L{LimitsLink}'s C{perIP} reports) count in this process's
    C{counter.elsewhere}; every C{interval} seconds each worker is told
    the sessions of all the others (this process's and the other workers')
    that changed. A failed login (or a success clearing an address) in any
    process is applied here and told to every other worker.

    @param counter: this process's L{mailstack.sessions.SessionCounter}.
    @param penalty: this process's L{mailstack.throttle.AuthPenalty} (its
        C{share} becomes this).
    @param clock: an C{IReactorTime}.
    @param perIP: whether to exchange per-IP counts (the limit is on).
    @ivar maildrops: the POP3 L{mailstack.pop3.waiting.MaildropWaiters} (or
        L{None}); see L{shareMaildrops}.
    """

    name = "shared-limits"
    pushAtStart = False

    def __init__(self, counter, penalty, clock, perIP=True, interval=LIMITS_INTERVAL):
        _LimitsService.__init__(self, counter, penalty, clock, perIP, interval)
        self._peers = {}

    def workerStarted(self, worker, link):
        """C{worker} runs; C{link} (a L{WorkerReporter}) writes to its standard input."""
        self._peers[worker] = _Peer(link)

    def workerEnded(self, worker):
        """C{worker} exited: its sessions died with it."""
        if self._peers.pop(worker, None) is not None:
            self._recount()

    def reported(self, worker, kind, args):
        """A C{perIP}, C{authFailed} or C{authSucceeded} report of C{worker}."""
        peer = self._peers.get(worker)
        if kind == "perIP":
            if peer is not None:
                _applyChanges(peer.counts, args[0])
                self._recount()
            return
        self._tell(kind, self._heard(kind, args), but=worker)

    def _tell(self, kind, key, but=None):
        for worker, peer in self._peers.items():
            if worker is not but:
                peer.link.send(kind, key)

    def _recount(self):
        elsewhere = {}
        for peer in self._peers.values():
            _add(elsewhere, peer.counts)
        self.counter.elsewhere = elsewhere

    def push(self):
        """Tell each worker what changed in the others' sessions per IP."""
        total = self.counter.perIP()
        _add(total, self.counter.elsewhere)
        for peer in self._peers.values():
            others = {protocol: {ip: n - peer.counts.get(protocol, {}).get(ip, 0)
                                 for ip, n in perIP.items()}
                      for protocol, perIP in total.items()}
            others = {protocol: {ip: n for ip, n in perIP.items() if n > 0}
                      for protocol, perIP in others.items()}
            changes = _changes(peer.sent, {p: c for p, c in others.items() if c})
            if changes and peer.link.send("elsewhere", changes):
                _applyChanges(peer.sent, changes)
