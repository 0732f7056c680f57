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

Client bytes are recorded as they arrive, before the protocol handles them,
so the lines of a pipelined chunk appear together, ahead of their replies.
Lines are split on LF (a trailing CR is dropped), decoded as UTF-8 with other
bytes and control characters shown as C{\\xNN}. What is recorded passes a
per-protocol redactor first (L{SMTPRedactor}, L{POP3Redactor}, L{IMAPRedactor}):
passwords and SASL data become C{***}, message content is kept.

The wrapper is transparent to the protocol inside (it forwards startTLS and
provides the transport's interfaces, ISSLTransport included after STARTTLS),
and a transcript that cannot be written never breaks a session. The file is
written through a buffer flushed at most once a second and at close, never
fsynced: transcripts must not slow the reactor down.
"""

import datetime
import itertools
import os
import re

from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import Interface, directlyProvides, implementer, providedBy

from mailstack.storage.files import makeDirectories, privateFile

log = Logger()

SECRET = b"***"


class IRedactor(Interface):
    """
    Decides what a transcript records of one session's lines. One instance per
    session: redactors keep state (an AUTH exchange in progress...).
    """

    def client(line):
        """
        @param line: one line the client sent, without its line ending.
        @return: the bytes to record instead.
        """

    def server(line):
        """
        @param line: one line the server sent, without its line ending.
        @return: the bytes to record instead.
        """


@implementer(IRedactor)
class NullRedactor:
    """
    Records everything as it is (protocols without secrets, tests).
    """

    def client(self, line):
        return line

    def server(self, line):
        return line


def _saslResponse(line):
    """
    What to record of a client line sent during a SASL exchange: C{***},
    except the cancel line C{*}, which is worth seeing.
    """
    return b"*" if line.strip() == b"*" else SECRET


_SMTP_AUTH = re.compile(rb"(?i)^(\s*AUTH\s+)(\S+)(?:\s+(\S.*?))?\s*$", re.S)
_SMTP_REPLY = re.compile(rb"^(\d{3})([ -]|$)")


@implementer(IRedactor)
class SMTPRedactor:
    """
    SMTP (RFC 5321) and AUTH (RFC 4954): the initial response of C{AUTH mech ir}
    and every client line of an AUTH exchange (after a C{334} challenge, and
    until the final reply to AUTH) become C{***}. Message content between a
    C{354} reply and the lone C{.} is recorded as sent.
    """

    def __init__(self):
        self._inAuth = False
        self._secretNext = False
        self._inData = False

    def client(self, line):
        if self._inData:
            if line == b".":
                self._inData = False
            return line
        if self._secretNext or self._inAuth:
            # every line of a SASL exchange is a response, even one pipelined
            # before the challenge arrived
            self._secretNext = False
            return _saslResponse(line)
        match = _SMTP_AUTH.match(line)
        if match is not None:
            self._inAuth = True
            if match.group(3) is not None:
                return match.group(1) + match.group(2) + b" " + SECRET
        return line

    def server(self, line):
        match = _SMTP_REPLY.match(line)
        if match is None:
            return line
        code, final = int(match.group(1)), match.group(2) != b"-"
        if code == 334:
            self._secretNext = True
        elif final:
            if code == 354:
                self._inData = True
            elif self._inAuth and (code == 235 or code >= 400):
                self._inAuth = False
        return line


_POP3_COMMAND = re.compile(rb"^(\s*)(\S+)(?:(\s+)(.*))?$", re.S)


@implementer(IRedactor)
class POP3Redactor:
    """
    POP3 (RFC 1939) and SASL (RFC 5034): C{PASS secret}, the digest of
    C{APOP user digest}, the initial response of C{AUTH mech ir}, and client
    lines during an AUTH exchange (after a C{+ } continuation, until
    C{+OK}/C{-ERR}) become C{***}. User names are kept.
    """

    def __init__(self):
        self._inAuth = False
        self._secretNext = False

    def client(self, line):
        if self._secretNext or self._inAuth:
            self._secretNext = False
            return _saslResponse(line)
        match = _POP3_COMMAND.match(line)
        if match is None:
            return line
        lead, word, space, rest = match.groups()
        command = word.upper()
        if not rest:
            return line
        if command == b"PASS":
            return lead + word + space + SECRET
        if command == b"APOP":
            parts = rest.split(None, 1)
            if len(parts) == 2:
                return lead + word + space + parts[0] + b" " + SECRET
            return line
        if command == b"AUTH":
            self._inAuth = True
            parts = rest.split(None, 1)
            if len(parts) == 2:
                return lead + word + space + parts[0] + b" " + SECRET
        return line

    def server(self, line):
        if line.startswith(b"+OK") or line.startswith(b"-ERR"):
            self._inAuth = False
        elif line == b"+" or line.startswith(b"+ "):
            self._secretNext = True
        return line


# a literal announcement ends the line: {N}, {N+} (LITERAL+), ~{N} (BINARY)
_IMAP_LITERAL = re.compile(rb"~?\{(\d+)(\+?)\}$")
_IMAP_COMMAND = re.compile(rb"^(\S+)( +)(\S+)(.*)$", re.S)


class _IMAPCommand:
    """
    A client command that continues after a literal.
    """

    def __init__(self, tag, name):
        self.tag = tag
        self.name = name
        self.arguments = 0


@implementer(IRedactor)
class IMAPRedactor:
    """
    IMAP4rev1 (RFC 3501): the password of C{tag LOGIN user password} (atom,
    quoted string or literal), the initial response of C{tag AUTHENTICATE mech
    ir} and every client line while an AUTHENTICATE runs (until its tagged
    response) become C{***}.

    Literals are followed byte by byte, so the content of an APPEND is recorded
    as sent and never mistaken for commands. The line splitting of the
    transcript drops line endings, so a literal's length is counted with CRLF
    line endings, as IMAP requires.
    """

    def __init__(self):
        self._command = None
        self._literal = 0
        self._literalSecret = False
        self._literalSync = False
        self._literalStarted = False
        self._authenticating = None

    # -- client --------------------------------------------------------------

    def client(self, line):
        if self._literal:
            return self._literalData(line)
        if self._command is not None:
            return self._continue(line)
        if self._authenticating is not None:
            return _saslResponse(line)
        match = _IMAP_COMMAND.match(line)
        if match is None:
            return line
        tag, space, name, rest = match.groups()
        self._command = _IMAPCommand(tag, name.upper())
        if self._command.name == b"AUTHENTICATE":
            self._command = None
            self._authenticating = tag
            parts = rest.split()
            if len(parts) >= 2:
                return tag + space + name + b" " + parts[0] + b" " + SECRET
            return line
        return tag + space + name + self._continue(rest)

    def _literalData(self, line):
        """
        Client bytes that belong to a literal announced earlier.
        """
        self._literalStarted = True
        secret = self._literalSecret
        if len(line) >= self._literal:
            payload, rest = line[:self._literal], line[self._literal:]
            self._literal = 0
            shown = SECRET if secret else payload
            if self._command is None:
                return shown + rest
            return shown + self._continue(rest)
        # the literal holds a line ending: count the CRLF we did not see
        self._literal = max(0, self._literal - len(line) - 2)
        return SECRET if secret else line

    def _startLiteral(self, match, secret):
        self._literal = int(match.group(1))
        self._literalSync = not match.group(2)
        self._literalSecret = secret
        self._literalStarted = False
        if self._literal == 0:
            # {0}: an empty argument; the command goes on with the next line
            self._literalSecret = False

    def _continue(self, rest):
        """
        The rest of the current command's line (after the command name or a
        literal); returns it redacted. Ends the command unless the line ends
        with a literal announcement.
        """
        command = self._command
        if command.name == b"LOGIN":
            return self._loginArguments(rest)
        match = _IMAP_LITERAL.search(rest)
        if match is not None:
            self._startLiteral(match, False)
        else:
            self._command = None
        return rest

    def _loginArguments(self, rest):
        """
        LOGIN user password: keep the user name, hide the password.
        """
        command = self._command
        out = bytearray()
        i = 0
        while i < len(rest):
            if rest[i:i + 1] == b" ":
                out += b" "
                i += 1
                continue
            remaining = rest[i:]
            literal = _IMAP_LITERAL.fullmatch(remaining)
            if command.arguments >= 1:
                command.arguments += 1
                if literal is not None:
                    out += remaining
                    self._startLiteral(literal, True)
                    return bytes(out)
                out += SECRET
                self._command = None
                return bytes(out)
            command.arguments += 1
            if literal is not None:
                out += remaining
                self._startLiteral(literal, False)
                return bytes(out)
            if remaining[:1] == b'"':
                j = 1
                while j < len(remaining):
                    if remaining[j:j + 1] == b"\\":
                        j += 2
                    elif remaining[j:j + 1] == b'"':
                        j += 1
                        break
                    else:
                        j += 1
            else:
                j = remaining.find(b" ")
                if j < 0:
                    j = len(remaining)
            out += remaining[:j]
            i += j
        self._command = None
        return bytes(out)

    # -- server --------------------------------------------------------------

    def server(self, line):
        tag, _, _ = line.partition(b" ")
        if self._authenticating is not None and tag == self._authenticating:
            self._authenticating = None
        elif (self._literal and self._literalSync and not self._literalStarted
              and self._command is not None and tag == self._command.tag):
            # the server refused the literal (NO/BAD instead of "+"): the
            # client will not send it, the next line is a new command
            self._literal = 0
            self._command = None
        return line


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
        @return: the lines completed by C{data}, as C{(head, droppedBytes)}.
        """
        lines = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self._add(data[start:end])
            lines.append(self._take())
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
    The transcript file of one session.

    @ivar path: where it is written.
    """

    def __init__(self, file, path, redactor, clock, maxLine, maxBytes):
        self.path = path
        self._file = file
        self._redactor = redactor
        self._clock = clock
        self._maxBytes = maxBytes
        self._written = 0
        self._truncated = False
        self._flushCall = None
        self._client = _LineSplitter(maxLine)
        self._server = _LineSplitter(maxLine)

    # -- what the protocol wrapper reports -----------------------------------

    def header(self, text):
        """Write an untimestamped C{# text} line (the file's heading)."""
        self._write("# %s\n" % (text,))

    def note(self, text):
        """Write a timestamped C{# text} line (TLS start, close...)."""
        self._line("#", text)

    def clientData(self, data):
        if self._file is None or self._truncated:
            return
        for head, dropped in self._client.feed(data):
            self._record("C:", self._redactor.client, head, dropped)

    def serverData(self, data):
        if self._file is None or self._truncated:
            return
        for head, dropped in self._server.feed(data):
            self._record("S:", self._redactor.server, head, dropped)

    def flushPartialLines(self):
        """Record lines that have no line ending yet (at TLS start, close)."""
        partial = self._server.flush()
        if partial is not None:
            self._record("S:", self._redactor.server, *partial)
        partial = self._client.flush()
        if partial is not None:
            self._record("C:", self._redactor.client, *partial)

    def close(self, reason):
        """Record the end of the session and close the file."""
        if self._file is None:
            return
        self.flushPartialLines()
        self._truncated = False  # the closing line is always written
        self._maxBytes = None
        self.note("closed: %s" % (reason,))
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        try:
            self._file.close()
        except OSError as e:
            log.warn("transcript {path}: {error}", path=self.path, error=e)
        self._file = None

    # -- writing -------------------------------------------------------------

    def _record(self, marker, redact, head, dropped):
        try:
            shown = redact(head)
        except Exception:
            log.failure("transcript redactor failed; line not recorded")
            shown = b"[redactor error]"
        text = displayLine(shown)
        if dropped:
            text += " [... %d bytes]" % (dropped,)
        self._line(marker, text)

    def _line(self, marker, text):
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


class TranscriptProtocol(ProtocolWrapper):
    """
    Records what passes between the transport and the wrapped protocol.
    """

    transcript = None
    _tlsDescribed = True
    _closedByServer = False

    def makeConnection(self, transport):
        self.transcript = self.factory.openTranscript(transport)
        if self.transcript is not None and ISSLTransport.providedBy(transport):
            self.transcript.note("TLS (implicit)")
            self._tlsDescribed = False
        ProtocolWrapper.makeConnection(self, transport)

    def dataReceived(self, data):
        if self.transcript is not None:
            if not self._tlsDescribed:
                self._describeTLS()
            self.transcript.clientData(data)
        ProtocolWrapper.dataReceived(self, data)

    def _describeTLS(self):
        # the client's first bytes after the handshake: now it can be described
        from mailstack.tls import describeConnection
        self._tlsDescribed = True
        description = describeConnection(self.transport)
        if description:
            self.transcript.note("TLS: %s" % (description,))

    def write(self, data):
        if self.transcript is not None:
            self.transcript.serverData(data)
        self.transport.write(data)

    def writeSequence(self, data):
        data = list(data)
        if self.transcript is not None:
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
    Wraps a listener's factory so each session writes a transcript.

    @param directory: the transcripts' root (C{var/transcripts}).
    @param protocolName: the sub-directory and the name in the heading.
    @param redactorFactory: makes the L{IRedactor} of a session (the protocol
        package's, e.g. L{SMTPRedactor}); None records everything.
    @param clock: an L{IReactorTime} for timestamps and flushes (the reactor).
    """

    noisy = False  # no "Starting/Stopping factory" lines for every listener

    protocol = TranscriptProtocol
    maxLineLength = 4096
    maxSessionBytes = 10 * 1024 * 1024

    def __init__(self, wrappedFactory, directory, protocolName, redactorFactory=None,
                 clock=None):
        WrappingFactory.__init__(self, wrappedFactory)
        if clock is None:
            from twisted.internet import reactor as clock
        self.directory = os.fspath(directory)
        self.protocolName = protocolName
        self.redactorFactory = redactorFactory or NullRedactor
        self.clock = clock
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
        Create the transcript file of a new session.

        @return: a L{SessionTranscript}, or None if the file cannot be created
            (logged once until a file can be created again).
        """
        peer, host = transport.getPeer(), transport.getHost()
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
            return None
        self._failing = False
        transcript = SessionTranscript(file, path, self.redactorFactory(), self.clock,
                                       self.maxLineLength, self.maxSessionBytes)
        transcript.header("%s session from %s to %s" % (
            self.protocolName, _formatAddress(peer), _formatAddress(host)))
        return transcript

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
