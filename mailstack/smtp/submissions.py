"""
The submission log: one record per message an SMTP session handed over and
the server accepted (250 after DATA), with what only the session knows: how
the client connected (TLS by STARTTLS, implicit TLS, or none), who it
authenticated as, the envelope, and the message's Subject and Message-ID.

It is what lets a course's grading script ask "did student X's client send a
message with subject Y to Z over STARTTLS" (the console's API,
L{mailstack.web.api}), which neither the mailbox (no TLS or auth facts beyond
the C{Received:} text) nor the transcript (no parsed header) answers alone.

The SMTP engine records into it (L{SubmissionLog.record}, in the reactor
thread, answered from memory); the last C{maxEntries} records are kept in
memory and, given a path, appended as JSON lines to a private file in a
worker thread, one append at a time, so a restart keeps them. The file is
cut back to the newest C{maxEntries} lines when it is opened. Appends are not
fsynced: a crash may lose the last records, never a message.
"""

import collections
import dataclasses
import email.parser
import email.policy
import json
import re

from twisted.internet import defer, threads
from twisted.logger import Logger

from mailstack.storage.files import atomicWrite, privateFile
from mailstack.tls import describeConnection

log = Logger()

# TLS as the client used it.
TLS_STARTTLS = "starttls"
TLS_IMPLICIT = "implicit"
TLS_NONE = "none"
TLS_MODES = (TLS_STARTTLS, TLS_IMPLICIT, TLS_NONE)

# The header section kept from each message for its Subject and Message-ID.
MAX_HEADER = 64 * 1024

DEFAULT_MAX_ENTRIES = 10000


@dataclasses.dataclass(frozen=True)
class Submission:
    """
    One accepted message as its SMTP session saw it.

    @ivar time: when it was accepted (seconds since the epoch).
    @ivar queueID: the id the 250 reply and the C{Received:} header name.
    @ivar protocol: the listener's protocol, C{smtp} or C{submission}.
    @ivar port: the server port the client connected to.
    @ivar client: the client's IP address.
    @ivar helo: the EHLO/HELO name.
    @ivar tls: C{starttls}, C{implicit} or C{none}.
    @ivar tlsVersion: e.g. C{TLSv1.3}, or L{None}.
    @ivar tlsCipher: e.g. C{TLS_AES_256_GCM_SHA384}, or L{None}.
    @ivar authenticated: the address the client authenticated as, or L{None}.
    @ivar sender: the envelope sender (MAIL FROM; C{""} for a bounce).
    @ivar recipients: the accepted envelope recipients.
    @ivar subject: the message's Subject (decoded), or L{None}.
    @ivar messageID: its Message-ID, or L{None}.
    @ivar size: octets received.
    """

    time: float
    queueID: str
    protocol: str
    port: int | None
    client: str | None
    helo: str | None
    tls: str
    tlsVersion: str | None
    tlsCipher: str | None
    authenticated: str | None
    sender: str
    recipients: tuple[str, ...]
    subject: str | None
    messageID: str | None
    size: int

    def asDict(self):
        """A JSON-ready dict (recipients a list)."""
        values = dataclasses.asdict(self)
        values["recipients"] = list(self.recipients)
        return values

    @classmethod
    def fromDict(cls, values):
        """
        The record of a dict L{asDict} made.

        @raise ValueError: if it is not one.
        """
        try:
            fields = {f.name: values[f.name] for f in dataclasses.fields(cls)}
            fields["recipients"] = tuple(str(r) for r in fields["recipients"])
            record = cls(**fields)
        except (KeyError, TypeError) as e:
            raise ValueError("not a submission record: %s" % (e,))
        if record.tls not in TLS_MODES:
            raise ValueError("not a submission record: tls %r" % (record.tls,))
        return record

    def involves(self, address):
        """C{True} if C{address} sent it: as the authenticated user or as the envelope sender."""
        address = address.lower()
        return ((self.authenticated or "").lower() == address
                or self.sender.lower() == address)


class HeaderCollector:
    """
    Keeps the header section of a message being received (up to the first
    empty line, at most L{MAX_HEADER} octets), fed the message's octets as
    they arrive, so nothing is read back from the spool afterwards.
    """

    def __init__(self, limit=MAX_HEADER):
        self.limit = limit
        self._head = bytearray()
        self._done = False

    def feed(self, data):
        if self._done:
            return
        start = max(0, len(self._head) - 3)
        self._head += data[:self.limit + 4 - len(self._head)]
        end = self._head.find(b"\r\n\r\n", start)
        if end >= 0:
            del self._head[end + 2:]
            self._done = True
        elif len(self._head) >= self.limit:
            del self._head[self.limit:]
            self._done = True

    def fields(self):
        """C{(subject, messageID)}: decoded texts, or L{None} where absent."""
        message = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
            bytes(self._head))
        return _headerText(message, "subject"), _headerText(message, "message-id")


def _headerText(message, name):
    try:
        value = message.get(name)
    except (ValueError, TypeError, IndexError, AttributeError):  # a malformed header
        return None
    if value is None:
        return None
    return " ".join(str(value).split())


class SubmissionLog:
    """
    The server's recent submissions (see the module's docstring).

    @param reactor: runs the file appends in its thread pool.
    @param path: the JSON-lines file, or L{None} (memory only).
    @param maxEntries: records kept.
    """

    def __init__(self, reactor, path=None, maxEntries=DEFAULT_MAX_ENTRIES):
        self.reactor = reactor
        self.path = path
        self.maxEntries = maxEntries
        self._records = collections.deque(maxlen=maxEntries)
        self._byQueueID = {}
        self._writing = defer.succeed(None)

    @classmethod
    def open(cls, reactor, path, maxEntries=DEFAULT_MAX_ENTRIES):
        """
        The log kept in C{path}, with the records already there (at start-up,
        before the reactor runs: read synchronously). Lines that are not
        records are skipped with one log line; a file longer than
        C{maxEntries} records is cut back to the newest.
        """
        self = cls(reactor, path, maxEntries)
        try:
            with open(path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return self
        bad = 0
        for line in lines:
            try:
                self._keep(Submission.fromDict(json.loads(line)))
            except (ValueError, TypeError, AttributeError):
                bad += 1
        if bad:
            log.warn("{path}: {count} line(s) are not submission records; skipped",
                     path=path, count=bad)
        if bad or len(lines) > maxEntries:
            atomicWrite(path, b"".join(_line(r) for r in self._records))
        return self

    def __len__(self):
        return len(self._records)

    def _keep(self, submission):
        if len(self._records) == self._records.maxlen:
            oldest = self._records[0]
            if self._byQueueID.get(oldest.queueID) is oldest:
                del self._byQueueID[oldest.queueID]
        self._records.append(submission)
        self._byQueueID[submission.queueID] = submission

    def get(self, queueID):
        """The record of the message accepted as C{queueID}, or L{None}."""
        return self._byQueueID.get(queueID)

    def record(self, submission):
        """
        Keep C{submission}; with a file, append it there (in a thread, after
        the appends before it).

        @return: a Deferred firing once it is written (at once without a
            file); a failure to write is logged, never raised.
        """
        self._keep(submission)
        if self.path is None:
            return defer.succeed(None)
        data = _line(submission)

        def append(_):
            return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                             _append, self.path, data)

        def failed(failure):
            failure.trap(OSError)
            log.warn("{path}: submission {id} not written: {error}", path=self.path,
                     id=submission.queueID, error=failure.getErrorMessage())
        self._writing.addCallback(append).addErrback(failed)
        return self.written()

    def written(self):
        """A Deferred firing once every record so far is in the file."""
        d = defer.Deferred()
        self._writing.addBoth(lambda result: (d.callback(None), result)[1])
        return d

    def find(self, sender=None, to=None, subject=None, tls=None, since=None,
             authenticated=None):
        """
        The records matching every criterion given, oldest first.

        @param sender: an address that sent it (L{Submission.involves}).
        @param authenticated: C{True}: only messages whose client logged in
            (as C{sender}, if given): an envelope sender alone proves
            nothing, anyone reaching port 25 may write any. C{False}: only
            those sent without a login.
        @param to: an address among its recipients (case-insensitive).
        @param subject: text its Subject contains (case-insensitive).
        @param tls: one of L{TLS_MODES}.
        @param since: accepted at or after this time (seconds since the epoch).
        """
        to = to.lower() if to else None
        subject = subject.casefold() if subject else None
        found = []
        for record in self._records:
            if sender is not None and not record.involves(sender):
                continue
            if to is not None and to not in (r.lower() for r in record.recipients):
                continue
            if subject is not None and subject not in (record.subject or "").casefold():
                continue
            if tls is not None and record.tls != tls:
                continue
            if since is not None and record.time < since:
                continue
            if authenticated is not None and authenticated != (record.authenticated is not None):
                continue
            if (authenticated and sender is not None
                    and record.authenticated.lower() != sender.lower()):
                continue
            found.append(record)
        return found


def _line(submission):
    return json.dumps(submission.asDict(), sort_keys=True).encode("utf-8") + b"\n"


def _append(path, data):
    with open(path, "ab", opener=privateFile) as f:
        f.write(data)


_DESCRIPTION = re.compile(r"(\S+) with cipher (\S+)")


def tlsOf(session):
    """
    C{(mode, version, cipher)} of an SMTP session: how TLS was used
    (L{TLS_MODES}) and, under TLS, the protocol version and cipher.
    """
    if not session.tls:
        return TLS_NONE, None, None
    mode = TLS_IMPLICIT if session.settings.tlsMode == "implicit" else TLS_STARTTLS
    match = _DESCRIPTION.match(describeConnection(session.transport) or "")
    if match is None:
        return mode, None, None
    return mode, match.group(1), match.group(2)


def recordSession(session, envelope, size, headers, queueID):
    """
    Record a message an L{mailstack.smtp.server.SMTPServer} session had
    accepted in its settings' submission log.

    @param envelope: its L{mailstack.smtp.server.Envelope}.
    @param size: octets received.
    @param headers: the L{HeaderCollector} fed its octets.
    """
    submissions = session.settings.submissions
    mode, version, cipher = tlsOf(session)
    subject, messageID = headers.fields() if headers is not None else (None, None)
    host = session.transport.getHost() if session.transport is not None else None
    submission = Submission(
        time=submissions.reactor.seconds(), queueID=queueID,
        protocol="submission" if session.settings.submission else "smtp",
        port=getattr(host, "port", None), client=getattr(session.peer, "host", None),
        helo=session.helo, tls=mode, tlsVersion=version, tlsCipher=cipher,
        authenticated=session.authenticated, sender=envelope.sender,
        recipients=tuple(dict.fromkeys(address for address, kind in envelope.recipients)),
        subject=subject, messageID=messageID, size=size)
    return submissions.record(submission)
