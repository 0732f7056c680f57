"""
The relay queue: mail for non-local recipients, kept durably under
C{var/queue/} and sent to the configured smarthost with retries, and bounced
(an RFC 3464 DSN into the sender's mailbox) when it fails for good.

On disk, one message is two files named by its queue id::

    msg/<id>   the message as received (trace header first, CRLF lines)
    env/<id>   JSON: sender, created, attempts, next attempt and, per
               recipient, its state (pending/delivered/failed), last reply
               and whether its failure has been reported to the sender
    tmp/       files being written (removed at start-up)
    corrupt/   envelopes that cannot be used, kept for the admin

Both are written through C{tmp/} with fsync, rename and a directory fsync;
C{msg} first, so an envelope always has its message. The queue answers
L{RelayQueue.enqueue} only when both are on disk. After every attempt the
envelope is rewritten the same way; the files are removed only once every
recipient is final and its failure (if any) reported. A restart reloads every
envelope: nothing accepted is ever dropped; at worst a recipient gets a copy
twice (the smarthost's reply to the end of DATA was lost in a crash), as
with every MTA.

Each attempt is one SMTP session by L{mailstack.relay.client.RelayClient}
(EHLO with HELO fallback, STARTTLS, correct dot-stuffing), which answers one
L{Result} per recipient. The queue maps them: 2xx delivered, 5xx failed
(bounced), anything else (4xx, no connection, TLS missing when required,
timeout) retried per the schedule until the lifetime is over, then failed
with 5.4.7.
"""

import dataclasses
import json
import os
import re
import secrets
import time

from twisted.application import service
from twisted.internet import defer, endpoints, ssl, threads
from twisted.logger import Logger

from mailstack.relay import dsn
from mailstack.relay.client import RelayClientFactory, Result, replyText
from mailstack.storage.files import atomicFile, atomicWrite, fsyncDirectory, makeDirectories

log = Logger()

DEFAULT_RETRY_SCHEDULE = (60, 300, 900, 1800, 3600)
DEFAULT_LIFETIME = 5 * 24 * 3600
ENVELOPE_VERSION = 1

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_STATES = (PENDING, DELIVERED, FAILED)

_ID = re.compile(r"^[0-9A-F]{14}[0-9A-F]{8}$")


class QueueError(Exception):
    """An envelope file that cannot be used (the text says why)."""


@dataclasses.dataclass
class RecipientState:
    """
    One recipient of a queued message.

    @ivar code: the last SMTP reply code for it, or L{None} (no reply: no
        connection, timeout...).
    @ivar status: RFC 3463 status: the reply's enhanced code, or for failed
        recipients the status their DSN reports.
    @ivar reply: the last reply text (after the code) or the error.
    @ivar notified: its failure has been handed to the bounce function (or
        dropped because the sender is null).
    @ivar expired: it failed because the queue lifetime ran out.
    """
    address: str
    state: str = PENDING
    code: int | None = None
    status: str | None = None
    reply: str | None = None
    notified: bool = False
    expired: bool = False
    updated: float | None = None


@dataclasses.dataclass
class QueueEntry:
    """One queued message: what C{env/<id>} holds."""
    queueID: str
    sender: str
    created: float
    recipients: list
    size: int = 0
    eightBit: bool = False
    attempts: int = 0
    nextAttempt: float = 0.0
    lastAttempt: float | None = None

    def pending(self):
        return [r for r in self.recipients if r.state == PENDING]

    def unreported(self):
        return [r for r in self.recipients if r.state == FAILED and not r.notified]

    def finished(self):
        return not self.pending() and not self.unreported()

    def toJSON(self):
        return json.dumps({
            "version": ENVELOPE_VERSION,
            "id": self.queueID,
            "sender": self.sender,
            "created": self.created,
            "size": self.size,
            "eight_bit": self.eightBit,
            "attempts": self.attempts,
            "next_attempt": self.nextAttempt,
            "last_attempt": self.lastAttempt,
            "recipients": [dataclasses.asdict(r) for r in self.recipients],
        }, indent=1, ensure_ascii=False)

    @classmethod
    def fromJSON(cls, queueID, text):
        """
        @raise QueueError: the text is not a usable envelope for C{queueID}.
        """
        try:
            data = json.loads(text)
        except ValueError as e:
            raise QueueError("not JSON: %s" % (e,))
        try:
            if data["version"] != ENVELOPE_VERSION:
                raise QueueError("unknown envelope version %r" % (data["version"],))
            if data["id"] != queueID:
                raise QueueError("holds id %r" % (data["id"],))
            recipients = [RecipientState(**r) for r in data["recipients"]]
            if not recipients or any(r.state not in _STATES or not isinstance(
                    r.address, str) for r in recipients):
                raise QueueError("bad recipient list")
            entry = cls(queueID=queueID, sender=data["sender"],
                        created=float(data["created"]), recipients=recipients,
                        size=int(data["size"]), eightBit=bool(data["eight_bit"]),
                        attempts=int(data["attempts"]),
                        nextAttempt=float(data["next_attempt"]),
                        lastAttempt=data["last_attempt"])
        except QueueError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise QueueError("malformed envelope: %s: %s" % (type(e).__name__, e))
        if not isinstance(entry.sender, str):
            raise QueueError("bad sender")
        return entry


# -- files ------------------------------------------------------------------

def _copyMessage(stream, f):
    """Copy the stream; @return: C{(size, eightBit)}."""
    size, eightBit = 0, False
    while True:
        chunk = stream.read(64 * 1024)
        if not chunk:
            return size, eightBit
        f.write(chunk)
        size += len(chunk)
        if not eightBit and not chunk.isascii():
            eightBit = True


def _unlink(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


# -- the queue --------------------------------------------------------------

class RelayQueue(service.Service):
    """
    The durable outbound queue towards one smarthost.

    @param directory: the queue directory (created at start).
    @param smarthost: C{(host, port)}.
    @param hostname: our name (EHLO, Reporting-MTA, MAILER-DAEMON's domain).
    @param bounce: C{bounce(sender, dsnBytes) -> Deferred}: deliver a DSN to
        the (local) sender; called only for a non-null sender.
    @param reactor: for connections, threads and (by default) timers.
    @param retrySchedule: seconds to wait after the 1st, 2nd... failed
        attempt; the last value repeats.
    @param lifetime: seconds after which a message still not delivered is
        bounced ("delivery time expired").
    @param requireTLS: deliver only over TLS (STARTTLS); a smarthost that does
        not offer it is a temporary failure.
    @param clientTLSContext: the client TLS options for STARTTLS. Default:
        with C{requireTLS}, L{ssl.optionsForClientTLS} for the smarthost's name
        (the certificate must verify against the system's trust roots);
        without, opportunistic TLS that does not check the certificate
        (as MTAs do: it still beats plaintext).
    @param clock: timers and timestamps (default: the reactor); tests pass a
        L{twisted.internet.task.Clock}.
    @param concurrency: attempts in flight at once.
    @param timeout: seconds to wait for each smarthost reply.
    @param connectTimeout: seconds to wait for the TCP connection.
    @param shutdownGrace: seconds (on C{clock}) L{stopService} lets attempts in flight
        finish before aborting them (they are retried after a restart).
    """

    name = "relay-queue"

    def __init__(self, directory, smarthost, hostname, bounce, reactor=None,
                 retrySchedule=DEFAULT_RETRY_SCHEDULE, lifetime=DEFAULT_LIFETIME,
                 requireTLS=False, clientTLSContext=None, clock=None, concurrency=4,
                 timeout=300, connectTimeout=30, shutdownGrace=5.0):
        if reactor is None:
            from twisted.internet import reactor
        if not retrySchedule:
            raise ValueError("retrySchedule must not be empty")
        self.directory = os.fspath(directory)
        self.smarthost = (smarthost[0], int(smarthost[1]))
        self.hostname = hostname
        self.bounce = bounce
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self.retrySchedule = tuple(retrySchedule)
        self.lifetime = lifetime
        self.requireTLS = requireTLS
        if clientTLSContext is None:
            if requireTLS:
                clientTLSContext = ssl.optionsForClientTLS(self.smarthost[0])
            else:
                clientTLSContext = ssl.CertificateOptions(
                    verify=False, raiseMinimumTo=ssl.TLSVersion.TLSv1_2)
        self.clientTLSContext = clientTLSContext
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.shutdownGrace = shutdownGrace
        self._semaphore = defer.DeferredSemaphore(concurrency)
        self._entries = {}
        self._timers = {}
        self._attempts = {}    # id -> [waiting Deferreds] while an attempt runs
        self._writing = set()  # ids being enqueued
        self._busy = set()     # Deferreds of file work in threads
        self._connections = set()  # connect Deferreds and clients of attempts

    def _path(self, *parts):
        return os.path.join(self.directory, *parts)

    def _inThread(self, f, *args):
        d = threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(),
                                      f, *args)
        self._busy.add(d)

        def done(result):
            self._busy.discard(d)
            return result
        return d.addBoth(done)

    # -- what is queued (for the console) ------------------------------------

    def __len__(self):
        return len(self._entries)

    def __bool__(self):
        # an empty queue is still a queue (callers test "queue is None")
        return True

    def queued(self):
        """
        A snapshot of the queue, oldest first: one dict per message with
        C{id, sender, created, size, attempts, next_attempt, last_attempt,
        in_flight} and C{recipients} (C{address, state, code, status, reply}).
        """
        snapshot = []
        for entry in sorted(self._entries.values(), key=lambda e: e.created):
            snapshot.append({
                "id": entry.queueID, "sender": entry.sender,
                "created": entry.created, "size": entry.size,
                "attempts": entry.attempts, "next_attempt": entry.nextAttempt,
                "last_attempt": entry.lastAttempt,
                "in_flight": entry.queueID in self._attempts,
                "recipients": [{"address": r.address, "state": r.state,
                                "code": r.code, "status": r.status, "reply": r.reply}
                               for r in entry.recipients],
            })
        return snapshot

    # -- accepting mail -------------------------------------------------------

    def _newID(self):
        while True:
            queueID = "%014X%s" % (int(time.time() * 1e6), secrets.token_hex(4).upper())
            if (queueID not in self._entries and queueID not in self._writing
                    and not os.path.exists(self._path("env", queueID))):
                return queueID

    def enqueue(self, sender, recipients, stream):
        """
        Queue a message for the smarthost.

        @param sender: the envelope sender (C{""} for the null path).
        @param recipients: non-empty list of addresses.
        @param stream: binary file-like object with the whole message.
        @return: a Deferred firing with the queue id once the message and its
            envelope are on disk (fsynced), then delivery is attempted.
        """
        if not recipients:
            raise ValueError("no recipients")
        queueID = self._newID()
        now = self._clock.seconds()
        entry = QueueEntry(queueID=queueID, sender=sender, created=now,
                           recipients=[RecipientState(address=r) for r in recipients],
                           nextAttempt=now)
        self._writing.add(queueID)
        d = self._inThread(self._writeNew, entry, stream)

        def written(_):
            self._writing.discard(queueID)
            self._entries[queueID] = entry
            log.info("relay {id}: queued from <{sender}> for {recipients} "
                     "({size} bytes)", id=queueID, sender=sender,
                     recipients=", ".join(recipients), size=entry.size)
            if self.running:
                self._schedule(entry, now)
            return queueID

        def failed(reason):
            self._writing.discard(queueID)
            log.failure("relay {id}: could not queue the message", reason, id=queueID)
            return reason
        return d.addCallbacks(written, failed)

    def _makeDirectories(self):
        for sub in ("", "msg", "env", "tmp", "corrupt"):
            makeDirectories(self._path(sub))

    def _writeNew(self, entry, stream):
        """In a thread: msg/<id>, then env/<id>, each durable."""
        queueID = entry.queueID
        self._makeDirectories()
        with atomicFile(self._path("msg", queueID),
                        temporary=self._path("tmp", queueID + ".msg")) as f:
            entry.size, entry.eightBit = _copyMessage(stream, f)
        try:
            self._writeEnvelope(queueID, entry.toJSON())
        except BaseException:
            _unlink(self._path("msg", queueID))
            raise

    def _writeEnvelope(self, queueID, text):
        atomicWrite(self._path("env", queueID), text.encode("utf-8"),
                    temporary=self._path("tmp", "%s.env.%s" % (queueID, secrets.token_hex(4))))

    def _removeFiles(self, queueID):
        """In a thread: the envelope first (a message without one is an orphan)."""
        _unlink(self._path("env", queueID))
        fsyncDirectory(self._path("env"))
        _unlink(self._path("msg", queueID))

    def _save(self, entry):
        return self._inThread(self._writeEnvelope, entry.queueID, entry.toJSON())

    # -- start, recovery, stop -------------------------------------------------

    def startService(self):
        service.Service.startService(self)
        self._recover()
        now = self._clock.seconds()
        for entry in self._entries.values():
            self._schedule(entry, max(entry.nextAttempt, now))
        if self._entries:
            log.info("relay queue: {count} message(s) waiting for {host}:{port}",
                     count=len(self._entries), host=self.smarthost[0],
                     port=self.smarthost[1])

    def _recover(self):
        """
        Rebuild the queue from the files a previous run left: every envelope
        with its message is loaded; a message without an envelope (queueing
        or removal was interrupted, so it was never accepted or is done) is
        deleted; an envelope that is unreadable or whose message is missing
        is moved to C{corrupt/} and logged.
        """
        self._makeDirectories()
        for name in os.listdir(self._path("tmp")):
            if name[:22] not in self._writing:
                _unlink(self._path("tmp", name))
        envelopes = set(os.listdir(self._path("env")))
        messages = set(os.listdir(self._path("msg")))
        loaded = {}
        for queueID in sorted(envelopes):
            if queueID in self._writing:
                continue
            if queueID in self._entries:
                loaded[queueID] = self._entries[queueID]
                continue
            if not _ID.match(queueID):
                log.warn("relay queue: ignoring unknown file env/{name}", name=queueID)
                continue
            try:
                if queueID not in messages:
                    raise QueueError("its message file msg/%s is missing" % (queueID,))
                with open(self._path("env", queueID), "rb") as f:
                    text = f.read().decode("utf-8")
                loaded[queueID] = QueueEntry.fromJSON(queueID, text)
            except (QueueError, OSError, UnicodeDecodeError) as e:
                log.error("relay queue: envelope {id} moved to corrupt/: {why}",
                          id=queueID, why=e)
                for sub in ("env", "msg"):
                    if os.path.exists(self._path(sub, queueID)):
                        os.replace(self._path(sub, queueID),
                                   self._path("corrupt", "%s.%s" % (queueID, sub)))
        for queueID in sorted(messages - envelopes):
            if queueID in self._writing or not _ID.match(queueID):
                continue
            log.warn("relay queue: removing msg/{id}: it has no envelope (queueing "
                     "or removal was interrupted)", id=queueID)
            _unlink(self._path("msg", queueID))
        self._entries = loaded

    def stopService(self):
        """
        Stop scheduling; let attempts in flight finish for C{shutdownGrace}
        seconds, then abort them (they stay queued); wait for file writes.
        """
        service.Service.stopService(self)
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        waiting = [self._whenAttemptDone(queueID) for queueID in list(self._attempts)]
        if not waiting:
            return self._whenWritten()
        done = defer.DeferredList(waiting)
        abort = self._clock.callLater(self.shutdownGrace, self._abortAttempts)

        def finished(_):
            if abort.active():
                abort.cancel()
            return self._whenWritten()
        return done.addCallback(finished)

    def _abortAttempts(self):
        for connection in list(self._connections):
            if isinstance(connection, defer.Deferred):
                connection.cancel()
            elif connection.transport is not None:
                connection.transport.abortConnection()

    def _whenWritten(self):
        if not self._busy:
            return defer.succeed(None)
        return defer.DeferredList(list(self._busy)).addCallback(
            lambda _: self._whenWritten())

    # -- scheduling -------------------------------------------------------------

    def _schedule(self, entry, when):
        old = self._timers.pop(entry.queueID, None)
        if old is not None and old.active():
            old.cancel()
        delay = max(0.0, when - self._clock.seconds())
        self._timers[entry.queueID] = self._clock.callLater(
            delay, self._due, entry.queueID)

    def _due(self, queueID):
        self._timers.pop(queueID, None)
        self._startAttempt(queueID)

    def _whenAttemptDone(self, queueID):
        d = defer.Deferred()
        self._attempts[queueID].append(d)
        return d

    def _startAttempt(self, queueID):
        """Start an attempt (unless one runs); fire when it is over."""
        if queueID in self._attempts:
            return self._whenAttemptDone(queueID)
        entry = self._entries.get(queueID)
        if entry is None or not self.running:
            return defer.succeed(None)
        timer = self._timers.pop(queueID, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._attempts[queueID] = []
        d = self._semaphore.run(self._attempt, entry)

        def failed(reason):
            log.failure("relay {id}: attempt failed unexpectedly", reason, id=queueID)
            if self.running and queueID in self._entries:
                self._schedule(entry, self._clock.seconds() + self._retryDelay(entry))

        def done(_):
            for waiting in self._attempts.pop(queueID):
                waiting.callback(None)
        d.addErrback(failed).addCallback(done)
        return self._whenAttemptDone(queueID) if queueID in self._attempts else d

    def deliverNow(self, queueID=None):
        """
        Attempt one message (or every queued message) now, without waiting
        for its timer (C{postqueue -f}); fires when those attempts are over.
        """
        ids = [queueID] if queueID is not None else list(self._entries)
        return defer.DeferredList([self._startAttempt(i) for i in ids]).addCallback(
            lambda _: None)

    def _retryDelay(self, entry):
        index = min(max(entry.attempts, 1), len(self.retrySchedule)) - 1
        return self.retrySchedule[index]

    # -- one attempt --------------------------------------------------------------

    @defer.inlineCallbacks
    def _attempt(self, entry):
        """
        Send to the pending recipients, record the outcome durably, report
        failures, and then remove the message or schedule the next attempt.
        """
        if not self.running or entry.queueID not in self._entries:
            return
        pending = entry.pending()
        if pending:
            started = self._clock.seconds()
            results = yield self._transfer(entry, pending)
            now = self._clock.seconds()
            entry.attempts += 1
            entry.lastAttempt = started
            self._apply(entry, pending, results, now)
            if entry.pending():
                expiry = entry.created + self.lifetime
                if now >= expiry:
                    self._expire(entry, now)
                else:
                    entry.nextAttempt = min(now + self._retryDelay(entry), expiry)
            yield self._save(entry)
        if entry.unreported():
            yield self._report(entry)
        if entry.finished():
            yield self._inThread(self._removeFiles, entry.queueID)
            del self._entries[entry.queueID]
            log.info("relay {id}: done, removed from the queue", id=entry.queueID)
        elif self.running:
            if not entry.pending():
                # only a failed bounce is left: try it again later
                entry.nextAttempt = self._clock.seconds() + self._retryDelay(entry)
            self._schedule(entry, entry.nextAttempt)

    @defer.inlineCallbacks
    def _transfer(self, entry, pending):
        """One SMTP session; @return: a L{Result} per pending recipient."""
        host, port = self.smarthost
        where = "%s:%d" % (host, port)
        try:
            messageFile = open(self._path("msg", entry.queueID), "rb")
        except OSError as e:
            log.error("relay {id}: cannot open its message file: {error}",
                      id=entry.queueID, error=e)
            return [Result(None, "message file unreadable: %s" % (e.strerror,))] * len(
                pending)
        factory = RelayClientFactory(
            identity=self.hostname, sender=entry.sender,
            recipients=[r.address for r in pending], messageFile=messageFile,
            size=entry.size, eightBit=entry.eightBit,
            contextFactory=self.clientTLSContext, requireTLS=self.requireTLS,
            timeout=self.timeout, clock=self._reactor)
        endpoint = endpoints.HostnameEndpoint(self._reactor, host, port,
                                              timeout=self.connectTimeout)
        try:
            connecting = endpoint.connect(factory)
            self._connections.add(connecting)
            try:
                client = yield connecting
            except Exception as e:
                results = [Result(None, "cannot connect to %s: %s" % (
                    where, replyText(str(e) or type(e).__name__)))] * len(pending)
            else:
                self._connections.add(client)
                try:
                    results = yield client.finished
                finally:
                    self._connections.discard(client)
            finally:
                self._connections.discard(connecting)
        finally:
            messageFile.close()
        tls = factory.client is not None and factory.client.usedTLS
        for recipient, result in zip(pending, results):
            log.info("relay {id}: attempt {n} to {smarthost}{tls}: <{rcpt}> {result}",
                     id=entry.queueID, n=entry.attempts + 1, smarthost=where,
                     tls=" (TLS)" if tls else "", rcpt=recipient.address,
                     result=result.describe())
        return results

    def _apply(self, entry, pending, results, now):
        for recipient, result in zip(pending, results):
            recipient.code = result.code
            recipient.reply = result.text
            recipient.updated = now
            enhanced = result.enhanced
            if result.code is not None and 200 <= result.code < 300:
                recipient.state = DELIVERED
                recipient.status = enhanced or "2.0.0"
            elif result.code is not None and 500 <= result.code < 600:
                recipient.state = FAILED
                recipient.status = enhanced or "5.0.0"
            else:
                recipient.status = enhanced or (
                    "%d.0.0" % (result.code // 100,) if result.code else None)

    def _expire(self, entry, now):
        for recipient in entry.pending():
            log.warn("relay {id}: <{rcpt}> expired after {attempts} attempts; last "
                     "error: {error}", id=entry.queueID, rcpt=recipient.address,
                     attempts=entry.attempts,
                     error=Result(recipient.code, recipient.reply or "").describe())
            recipient.state = FAILED
            recipient.status = "5.4.7"
            recipient.expired = True
            recipient.updated = now

    def _recipientReport(self, entry, recipient):
        host = self.smarthost[0]
        last = Result(recipient.code, recipient.reply or "")
        if recipient.code is not None:
            diagnostic = "smtp; " + last.describe()
            said = "host %s said: %s" % (host, last.describe())
        else:
            diagnostic = "X-Mailstack; " + last.text if last.text else None
            said = last.text
        if recipient.expired:
            explanation = "delivery time expired (%s); last error: %s" % (
                _duration(self.lifetime), said or "none")
        else:
            explanation = said
        return dsn.RecipientReport(
            address=recipient.address, status=recipient.status or "5.0.0",
            diagnostic=diagnostic,
            remoteMTA=host if recipient.code is not None else None,
            explanation=explanation, lastAttempt=entry.lastAttempt)

    @defer.inlineCallbacks
    def _report(self, entry):
        """
        Send one DSN for the failures not yet reported (never to the null
        sender: no bounce of a bounce). If the bounce cannot be delivered, the
        failures stay unreported and are tried again later.
        """
        failed = entry.unreported()
        addresses = ", ".join(r.address for r in failed)
        if not entry.sender:
            log.warn("relay {id}: {rcpts} failed; not bounced: the sender is null",
                     id=entry.queueID, rcpts=addresses)
        else:
            try:
                headers = yield self._inThread(
                    dsn.readHeaderSection, self._path("msg", entry.queueID))
                message = dsn.buildDSN(
                    self.hostname, entry.queueID, entry.sender, entry.created,
                    [self._recipientReport(entry, r) for r in failed], headers)
                yield defer.maybeDeferred(self.bounce, entry.sender, message)
            except Exception:
                log.failure("relay {id}: could not bounce the failure of {rcpts} to "
                            "<{sender}>; will try again", id=entry.queueID,
                            rcpts=addresses, sender=entry.sender)
                return
            log.info("relay {id}: bounced to <{sender}>: {rcpts} failed",
                     id=entry.queueID, sender=entry.sender, rcpts=addresses)
        for recipient in failed:
            recipient.notified = True
        if not entry.finished():
            yield self._save(entry)


def _duration(seconds):
    """C{432000} -> C{"5 days"}, for the human-readable part of a DSN."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            value = round(seconds / size, 1)
            return "%g %s%s" % (value, unit, "" if value == 1 else "s")
