"""
Per-session protocol transcripts for teaching and debugging.

L{TranscriptFactory} wraps a listener's factory; each session writes
C{<directory>/<protocol>/<YYYY-MM-DD>/<HHMMSS>-<ip>-<port>-<n>.log}::

    # imap session from 127.0.0.1:50312 to 127.0.0.1:3143
    2025-03-01T10:15:02.113+01:00 S: * OK [CAPABILITY IMAP4rev1 STARTTLS] ready
    2025-03-01T10:15:02.120+01:00 C: a STARTTLS
    2025-03-01T10:15:02.121+01:00 S: a OK Begin TLS negotiation now
    2025-03-01T10:15:02.121+01:00 # TLS started
    2025-03-01T10:15:02.140+01:00 # TLS: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
    2025-03-01T10:15:02.140+01:00 C: b LOGIN demo@lab.test ***
    ...
    2025-03-01T10:15:09.001+01:00 # closed: Connection was closed cleanly.

A client line is recorded when the protocol has taken it (not when it
arrives), so it appears just before the protocol's reply to it, and what the
protocol's state machine marked secret while taking it (L{ISecretInput}: a
password, LOGIN's arguments, the lines of a SASL exchange, a line that is no
command before login) is shown as C{***}. No protocol is parsed a second time
here: the engine that reads the input says what is secret. Message content
is kept. Lines are split on LF (a trailing CR is dropped), decoded as UTF-8
with other bytes and control characters shown as C{\\xNN}.

The wrapper is transparent to the protocol inside (it forwards startTLS and
provides the transport's interfaces, ISSLTransport included after STARTTLS),
and a transcript that cannot be written never breaks a session. With a
L{mailstack.transcripthub.TranscriptHub} (the web console's), each line is
also published live, exactly as the file shows it (secrets already C{***}),
and the session becomes its user's when the engine reports a login
(L{mailstack.protocol.recording}). The file is
written through a buffer flushed at most once a second and at close, never
fsynced: transcripts must not slow the reactor down.
"""

import collections
import datetime
import itertools
import os
import re

from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import directlyProvides, implementer, providedBy

from mailstack.protocol.recording import ILoginRecorder
from mailstack.protocol.secrets import IPendingInput, ISecretInput
from mailstack.storage.files import makeDirectories, privateFile

log = Logger()

SECRET = b"***"


# -- recording ---------------------------------------------------------------

# C0 controls (but TAB) and DEL shown as \xNN
_ESCAPES = {c: "\\x%02x" % (c,) for c in list(range(0x20)) + [0x7f] if c != 0x09}


def displayLine(line):
    """
    The text recorded for C{line}: UTF-8 with undecodable bytes and control
    characters as C{\\xNN}.
    """
    return line.decode("utf-8", "backslashreplace").translate(_ESCAPES)


class _LineSplitter:
    """
    Splits one direction of a session into lines, keeping at most
    C{maxLine} bytes of a line in memory (the rest is only counted).
    """

    def __init__(self, maxLine):
        self.maxLine = maxLine
        self._head = bytearray()
        self._dropped = 0
        self._lastDropped = b""

    def feed(self, data):
        """
        @return: the lines completed by C{data}, as C{(head, droppedBytes,
            end)}: C{end} is the offset in C{data} just after the line's LF.
        """
        lines = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self._add(data[start:end])
            lines.append(self._take() + (end + 1,))
            start = end + 1
        self._add(data[start:])
        return lines

    def flush(self):
        """
        @return: the partial line buffered, or None.
        """
        if not self._head and not self._dropped:
            return None
        return self._take()

    def _add(self, piece):
        room = self.maxLine - len(self._head)
        if len(piece) <= room:
            self._head += piece
            return
        if room > 0:
            self._head += piece[:room]
        self._dropped += len(piece) - max(room, 0)
        self._lastDropped = piece[-1:]

    def _take(self):
        head, dropped = bytes(self._head), self._dropped
        if dropped:
            if self._lastDropped == b"\r":
                dropped -= 1
        elif head.endswith(b"\r"):
            head = head[:-1]
        self._head = bytearray()
        self._dropped = 0
        self._lastDropped = b""
        return head, dropped


class _ClientLines:
    """
    The client's lines, each with its place in the input (octet offsets from
    the session's first client octet), held until the protocol has taken them
    (L{ready}), and the secret ranges the protocol marked meanwhile
    (L{mailstack.protocol.secrets.ISecretInput}).
    """

    def __init__(self, maxLine):
        self._splitter = _LineSplitter(maxLine)
        self._received = 0
        self._partialStart = 0  # where the line not yet ended starts
        self._pending = collections.deque()  # (start, end, head, dropped)
        self._secret = []  # [start, end]; end None: open until secretEnd

    def feed(self, data):
        base = self._received
        self._received += len(data)
        for head, dropped, end in self._splitter.feed(data):
            self._pending.append((self._partialStart, base + end, head, dropped))
            self._partialStart = base + end

    def ready(self, taken):
        """
        @return: the lines the protocol has taken all of (C{taken}: octets
            taken so far), C{(shown, dropped)}, their secrets hidden.
        """
        lines = []
        while self._pending and self._pending[0][1] <= taken:
            lines.append(self._show(*self._pending.popleft()))
        self._prune()
        return lines

    def rest(self):
        """Every line not recorded yet, the unfinished one included."""
        lines = [self._show(*line) for line in self._pending]
        self._pending.clear()
        partial = self._splitter.flush()
        if partial is not None:
            lines.append(self._show(self._partialStart, self._received, *partial))
            self._partialStart = self._received
        self._prune()
        return lines

    def _lineStart(self, taken):
        """Where the line holding the last octet taken starts (None: recorded)."""
        if taken <= 0:
            return 0
        if taken - 1 >= self._partialStart:
            return self._partialStart
        for start, end, _, _ in reversed(self._pending):
            if start < taken <= end:
                return start
        return None

    def secretLine(self, taken, keep):
        start = self._lineStart(taken)
        if start is not None and start + keep < taken:
            self._secret.append([start + keep, taken])

    def secretFrom(self, taken, keep):
        if self._secret and self._secret[-1][1] is None:
            return  # already open
        start = self._lineStart(taken)
        self._secret.append([taken if start is None else start + keep, None])

    def secretEnd(self, taken):
        if not self._secret or self._secret[-1][1] is not None:
            return
        start = self._lineStart(taken)
        end = taken if start is None else start
        if end <= self._secret[-1][0]:
            del self._secret[-1]
        else:
            self._secret[-1][1] = end

    def _prune(self):
        """Forget the ranges that end before every line still to record."""
        first = self._pending[0][0] if self._pending else self._partialStart
        self._secret = [r for r in self._secret if r[1] is None or r[1] > first]

    def _show(self, start, end, head, dropped):
        """C{head} (the line from octet C{start}) with its secret parts as C{***}."""
        hidden = []
        for low, high in self._secret:
            low = max(low - start, 0)
            high = len(head) if high is None else min(high - start, len(head))
            if low < high:
                hidden.append((low, high))
        if not hidden:
            return head, dropped
        shown = bytearray()
        position = 0
        for low, high in sorted(hidden):
            if high <= position:
                continue
            if low > position:
                shown += head[position:low]
            elif shown.endswith(SECRET):
                position = high
                continue
            shown += SECRET
            position = high
        shown += head[position:]
        return bytes(shown), dropped


def _localTime(seconds):
    return datetime.datetime.fromtimestamp(seconds).astimezone()


def _formatAddress(address):
    host = getattr(address, "host", None)
    if host is None:
        return getattr(address, "name", None) or "unix"
    if ":" in host:
        host = "[%s]" % (host,)
    return "%s:%s" % (host, getattr(address, "port", 0))


class SessionTranscript:
    """
    The transcript of one session: its file, and its live view in the
    console's L{mailstack.transcripthub.TranscriptHub}, either of which may
    be missing.

    @ivar path: where the file is written (L{None}: no file).
    @ivar live: the L{mailstack.transcripthub.LiveSession} the lines are
        published to, or L{None}.
    """

    def __init__(self, file, path, clock, maxLine, maxBytes, live=None):
        self.path = path
        self.live = live
        self._file = file
        self._clock = clock
        self._maxBytes = maxBytes
        self._written = 0
        self._truncated = False
        self._flushCall = None
        self._client = _ClientLines(maxLine)
        self._server = _LineSplitter(maxLine)

    def _recording(self):
        """C{True} while anything still takes the lines: the file or the hub."""
        return (self._file is not None and not self._truncated) or self.live is not None

    # -- what the protocol wrapper reports -----------------------------------

    def header(self, text):
        """Write an untimestamped C{# text} line (the file's heading)."""
        self._write("# %s\n" % (text,))

    def note(self, text):
        """Write a timestamped C{# text} line (TLS start, close...)."""
        self._line("#", text)

    def loggedIn(self, address):
        """
        A login as C{address} succeeded: the live session becomes hers, with
        a note in its view (the file is left as it was: the session's own
        lines show the login).
        """
        if self.live is None:
            return
        self.live.loggedIn(address)
        self.live.record("#", "logged in as %s" % (address,))

    def clientData(self, data):
        """Client octets as they arrive; recorded once taken (L{clientTaken})."""
        if not self._recording():
            return
        self._client.feed(data)

    def clientTaken(self, taken):
        """Record the client lines the protocol has taken all of."""
        if not self._recording():
            return
        for shown, dropped in self._client.ready(taken):
            self._record("C:", shown, dropped)

    # Marks are kept only while lines are recorded: past the cap nothing
    # would apply them, nor prune them.

    def secretLine(self, taken, keep):
        if not self._recording():
            return
        self._client.secretLine(taken, keep)

    def secretFrom(self, taken, keep):
        if not self._recording():
            return
        self._client.secretFrom(taken, keep)

    def secretEnd(self, taken):
        if not self._recording():
            return
        self._client.secretEnd(taken)

    def serverData(self, data):
        if not self._recording():
            return
        for head, dropped, _ in self._server.feed(data):
            self._record("S:", head, dropped)

    def flushPartialLines(self):
        """Record every line not recorded yet (at TLS start, close)."""
        if not self._recording():
            return
        for shown, dropped in self._client.rest():
            self._record("C:", shown, dropped)
        partial = self._server.flush()
        if partial is not None:
            self._record("S:", *partial)

    def close(self, reason):
        """Record the end of the session, close the file and end the live view."""
        if self._file is None and self.live is None:
            return
        self.flushPartialLines()
        self._truncated = False  # the closing line is always written
        self._maxBytes = None
        self.note("closed: %s" % (reason,))
        if self.live is not None:
            self.live.close(reason)
            self.live = None
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError as e:
            log.warn("transcript {path}: {error}", path=self.path, error=e)
        self._file = None

    # -- writing -------------------------------------------------------------

    def _record(self, marker, line, dropped):
        text = displayLine(line)
        if dropped:
            text += " [... %d bytes]" % (dropped,)
        self._line(marker, text)

    def _line(self, marker, text):
        if self.live is not None:
            self.live.record(marker.rstrip(":"), text)
        if self._file is None or self._truncated:
            return
        when = _localTime(self._clock.seconds()).isoformat(timespec="milliseconds")
        self._write("%s %s %s\n" % (when, marker, text))

    def _write(self, text):
        if self._file is None or self._truncated:
            return
        data = text.encode("utf-8", "backslashreplace")
        if self._maxBytes is not None and self._written + len(data) > self._maxBytes:
            self._truncated = True
            data = b"# transcript truncated\n"
        self._written += len(data)
        try:
            self._file.write(data)
        except OSError as e:
            log.warn("transcript {path}: {error}; no longer recording this session",
                     path=self.path, error=e)
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
            return
        if self._flushCall is None:
            self._flushCall = self._clock.callLater(1.0, self._flush)

    def _flush(self):
        self._flushCall = None
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as e:
                log.warn("transcript {path}: {error}", path=self.path, error=e)


@implementer(ISecretInput, ILoginRecorder)
class TranscriptProtocol(ProtocolWrapper):
    """
    Records what passes between the transport and the wrapped protocol.

    A client line is recorded once the protocol has taken all of it (the
    protocol says how much it holds untaken through L{IPendingInput}; one that
    does not is taken to hold nothing), so the marks the protocol makes while
    it handles the line (L{ISecretInput}) are applied, however the line was
    pipelined.
    """

    transcript = None
    _tlsDescribed = True
    _closedByServer = False
    _received = 0

    def _taken(self):
        """How many client octets the protocol inside has taken."""
        inner = self.wrappedProtocol
        if IPendingInput.providedBy(inner):
            return self._received - inner.pendingInput()
        return self._received

    def _settle(self):
        if self.transcript is not None:
            self.transcript.clientTaken(self._taken())

    # -- ISecretInput ----------------------------------------------------------

    def secretLine(self, keep=0):
        if self.transcript is not None:
            self.transcript.secretLine(self._taken(), keep)

    def secretFrom(self, keep=0):
        if self.transcript is not None:
            self.transcript.secretFrom(self._taken(), keep)

    def secretEnd(self):
        if self.transcript is not None:
            self.transcript.secretEnd(self._taken())

    # -- ILoginRecorder --------------------------------------------------------

    def loggedIn(self, address):
        if self.transcript is not None:
            self._settle()
            self.transcript.loggedIn(address)

    def makeConnection(self, transport):
        self.transcript = self.factory.openTranscript(transport)
        if self.transcript is not None and ISSLTransport.providedBy(transport):
            self.transcript.note("TLS (implicit)")
            self._tlsDescribed = False
        ProtocolWrapper.makeConnection(self, transport)

    def dataReceived(self, data):
        self._received += len(data)
        if self.transcript is not None:
            if not self._tlsDescribed:
                self._describeTLS()
            self.transcript.clientData(data)
        ProtocolWrapper.dataReceived(self, data)
        self._settle()

    def _describeTLS(self):
        # the client's first bytes after the handshake: now it can be described
        from mailstack.tls import describeConnection
        self._tlsDescribed = True
        description = describeConnection(self.transport)
        if description:
            self.transcript.note("TLS: %s" % (description,))

    def write(self, data):
        if self.transcript is not None:
            self._settle()
            self.transcript.serverData(data)
        self.transport.write(data)

    def writeSequence(self, data):
        data = list(data)
        if self.transcript is not None:
            self._settle()
            self.transcript.serverData(b"".join(data))
        self.transport.writeSequence(data)

    def startTLS(self, *args, **kwargs):
        """
        Note the start of TLS, start it on the real transport, then provide
        what that now provides (ISSLTransport) to the protocol inside.
        """
        if self.transcript is not None:
            self.transcript.flushPartialLines()
            self.transcript.note("TLS started")
            self._tlsDescribed = False
        result = self.transport.startTLS(*args, **kwargs)
        directlyProvides(self, providedBy(self.transport))
        return result

    def startCompression(self):
        """
        Note the start of compression and start it below (the listener's
        L{mailstack.protocol.compress} layer): the lines recorded stay the
        decompressed ones.
        """
        if self.transcript is not None:
            self.transcript.flushPartialLines()
            self.transcript.note("DEFLATE compression started")
        self.transport.startCompression()

    def loseConnection(self):
        self._closedByServer = True
        ProtocolWrapper.loseConnection(self)

    def abortConnection(self):
        self._closedByServer = True
        self.transport.abortConnection()

    def connectionLost(self, reason):
        # the transcript is complete before the protocol inside hears of the
        # end (whoever waits for that may read the file)
        if self.transcript is not None:
            text = reason.getErrorMessage()
            if self._closedByServer:
                text += " (server hung up)"
            try:
                self.transcript.close(text)
            except Exception:
                log.failure("cannot finish transcript {path}", path=self.transcript.path)
        ProtocolWrapper.connectionLost(self, reason)


class TranscriptFactory(WrappingFactory):
    """
    Wraps a listener's factory so each session writes a transcript, and
    shows it live in the console's hub.

    @param directory: the transcripts' root (C{var/transcripts}), or L{None}
        for no files.
    @param protocolName: the sub-directory and the name in the heading.
    @param clock: an L{IReactorTime} for timestamps and flushes (the reactor).
    @param hub: the L{mailstack.transcripthub.TranscriptHub} each session is
        published to, or L{None}.
    """

    noisy = False  # no "Starting/Stopping factory" lines for every listener

    protocol = TranscriptProtocol
    maxLineLength = 4096
    maxSessionBytes = 10 * 1024 * 1024

    def __init__(self, wrappedFactory, directory, protocolName, clock=None, hub=None):
        WrappingFactory.__init__(self, wrappedFactory)
        if clock is None:
            from twisted.internet import reactor as clock
        self.directory = os.fspath(directory) if directory is not None else None
        self.protocolName = protocolName
        self.clock = clock
        self.hub = hub
        self._sessions = itertools.count(1)
        self._failing = False

    def logPrefix(self):
        return "%s (transcript)" % (self.protocolName,)

    def buildProtocol(self, addr):
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return self.protocol(self, inner)

    def openTranscript(self, transport):
        """
        Create the transcript of a new session: its file and its live view.

        @return: a L{SessionTranscript}, or None if there is neither (the file
            cannot be created: logged once until a file can be created again).
        """
        peer, host = transport.getPeer(), transport.getHost()
        live = None
        if self.hub is not None:
            live = self.hub.openSession(self.protocolName, _formatAddress(peer),
                                        getattr(peer, "host", None) or "unix",
                                        _formatAddress(host))
        file, path = self._openFile(peer)
        if file is None and live is None:
            return None
        transcript = SessionTranscript(file, path, self.clock,
                                       self.maxLineLength, self.maxSessionBytes, live)
        transcript.header("%s session from %s to %s" % (
            self.protocolName, _formatAddress(peer), _formatAddress(host)))
        return transcript

    def _openFile(self, peer):
        """@return: C{(file, path)} of a new session's file, or C{(None, None)}."""
        if self.directory is None:
            return None, None
        now = _localTime(self.clock.seconds())
        ip = getattr(peer, "host", None) or "unix"
        safeIP = re.sub(r"[^A-Za-z0-9.]", "_", ip)
        sessionID = "%s-%s-%s-%d" % (now.strftime("%H%M%S"), safeIP,
                                     getattr(peer, "port", 0), next(self._sessions))
        directory = os.path.join(self.directory, self.protocolName,
                                 now.strftime("%Y-%m-%d"))
        try:
            makeDirectories(directory)
            path, fd = self._create(directory, sessionID)
            file = os.fdopen(fd, "ab", buffering=64 * 1024)
        except OSError as e:
            if not self._failing:
                log.error("cannot write transcripts in {directory}: {error}",
                          directory=directory, error=e.strerror or e)
            self._failing = True
            return None, None
        self._failing = False
        return file, path

    @staticmethod
    def _create(directory, sessionID):
        """
        Create a new file (never append to another session's, e.g. one of
        another process sharing the directory).
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        for attempt in range(1, 100):
            name = sessionID + ("" if attempt == 1 else "-%d" % (attempt,)) + ".log"
            path = os.path.join(directory, name)
            try:
                return path, privateFile(path, flags)
            except FileExistsError:
                continue
        raise OSError("no free file name for %s" % (sessionID,))
