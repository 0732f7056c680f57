"""
The POP3 server protocol: RFC 1939 with CAPA and response codes (RFC 2449,
RFC 3206), STLS (RFC 2595) and SASL AUTH (RFC 5034: PLAIN, LOGIN, CRAM-MD5).

Why our own engine and not a subclass of twisted.mail.pop3.POP3: the stock
class's defects sit in the parts a subclass would inherit. Its framing
(C{LineOnlyReceiver} plus C{line.split(b" ")} dispatch) turns every malformed
or unexpected command into a traceback text sent to the client; APOP compares a
str digest with bytes and never succeeds; AUTH with an initial response raises
TypeError and its SASL state parses responses CRAM-MD5-style only; there is no
STLS, so no place to discard plaintext pipelined after it; RETR and TOP go
through C{transformChunk}, which misses a "." that starts the message or a
chunk and turns CRLF into CR CR LF; DELE is handed straight to the mailbox.
Overriding all of that leaves nothing of the class but its name, so this module
owns framing, states and replies (as mailstack.smtp.server does); Twisted still
supplies the transport, TLS, cred (portal, credentials, checkers), producers and
timeouts. tests/test_pop3_server.py runs the defect scenarios against both.

The avatar is our L{IMaildrop} (mailstack.pop3.mailbox), not
C{twisted.mail.pop3.IMailbox}: a POP3 session needs a snapshot, deletion marks
applied only at QUIT and an exclusive lock, which that interface cannot say.
"""

import base64
import dataclasses
import functools
import re
import sys

from twisted.cred.credentials import UsernamePassword
from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from mailstack.auth.checkers import APOPCredentials
from mailstack.instruments import INTERNAL_ERROR, STORAGE_ERROR
from mailstack.pop3.mailbox import (
    IMaildrop, MaildropLocked, MessageDeleted, MessageGone, NoSuchMessageNumber)
from mailstack.protocol import sasl
from mailstack.protocol.secrets import secretEnd, secretFrom, secretLine
from mailstack.protocol.session import ISessionWording, LineSession
from mailstack.pop3.stream import CHUNK_SIZE, MessageSender, TopReader
from mailstack.pop3.waiting import MaildropWaiters
from mailstack.protocol.dotstuff import stuff
from mailstack.settings import ListenerSettings
from mailstack.storage.interfaces import StoreError

log = Logger()

AUTHORIZATION = "AUTHORIZATION"
TRANSACTION = "TRANSACTION"

PLAINTEXT_REFUSED = "Plaintext authentication disallowed on non-secure connections"
AUTH_FAILED = "Authentication failed"

# verb -> (states it is allowed in, the listener capability that switches it off)
COMMANDS = {
    "CAPA": ((AUTHORIZATION, TRANSACTION), None),
    "QUIT": ((AUTHORIZATION, TRANSACTION), None),
    "USER": ((AUTHORIZATION,), "USER"),
    "PASS": ((AUTHORIZATION,), "USER"),
    "APOP": ((AUTHORIZATION,), "APOP"),
    "AUTH": ((AUTHORIZATION,), "SASL"),
    "STLS": ((AUTHORIZATION,), "STLS"),
    "STAT": ((TRANSACTION,), None),
    "LIST": ((TRANSACTION,), None),
    "UIDL": ((TRANSACTION,), "UIDL"),
    "RETR": ((TRANSACTION,), None),
    "TOP": ((TRANSACTION,), "TOP"),
    "DELE": ((TRANSACTION,), None),
    "NOOP": ((TRANSACTION,), None),
    "RSET": ((TRANSACTION,), None),
}

# APOP's user name, AUTH's mechanism: what a transcript shows of their argument.
_FIRST_WORD = re.compile(rb"\s*\S+\s*")

# Commands students find in old books, answered with why they do not work.
OBSOLETE = {
    "LAST": "LAST was removed from POP3 by RFC 1939; use UIDL",
    "RPOP": "RPOP is not supported (RFC 1939 removed it)",
    "TURN": "TURN is not a POP3 command (and unsafe in SMTP)",
}


@dataclasses.dataclass(frozen=True)
class POP3Settings(ListenerSettings):
    """
    What one listener offers; built from its config by its plug-in's C{buildFactory}.
    """
    maxLine: int = 65536
    idleTimeout: int = 600
    chunkSize: int = CHUNK_SIZE
    # [pop3] lock: "wait" (one session per maildrop; a second login waits up
    # to maildropWait seconds in line) or "snapshot" (no lock: each session its
    # own snapshot, DELE applied at QUIT to what still exists).
    maildropLock: str = "wait"
    maildropWait: float = 5.0


def _noLock(account, address):
    """C{[pop3] lock = "snapshot"}: sessions take no maildrop lock."""
    return defer.succeed(None)


@implementer(ISessionWording)
class POP3Wording:
    """
    POP3's replies for the session core (L{mailstack.protocol.session}), with
    RFC 2449/3206 response codes where the listener offers them.
    """

    protocolName = "pop3"
    startTLSCommand = "STLS"

    def __init__(self, settings):
        self.settings = settings

    def err(self, text, code=None):
        """The text of an -ERR reply (without it), with its code when offered."""
        capability = "AUTH-RESP-CODE" if code == "AUTH" else "RESP-CODES"
        if code is not None and capability not in self.settings.disabled:
            text = "[%s] %s" % (code, text)
        return text

    @staticmethod
    def line(text):
        return text.encode("utf-8") + b"\r\n"

    def internalError(self, tag):
        return self.line("-ERR " + self.err("Internal error", "SYS/TEMP"))

    def tooManyBadCommands(self):
        return self.line("-ERR Too many bad commands, closing connection")

    def tooManyCommands(self):
        return self.line("-ERR Too many commands in one session, closing connection")

    def timedOut(self):
        return self.line("-ERR Disconnected for inactivity.")

    def tlsReady(self, tag):
        return self.line("+OK Begin TLS negotiation now")

    def tlsAlreadyActive(self, tag):
        return self.line("-ERR TLS already active")

    def tlsNotAvailable(self, tag):
        return self.line("-ERR STLS not available on this port")

    def authFailed(self, tag):
        # The one generic failure (RFC 3206 [AUTH]).
        return self.line("-ERR " + self.err(AUTH_FAILED, "AUTH"))

    def authUnavailable(self, tag):
        return self.line("-ERR " + self.err(
            "Authentication temporarily unavailable, try again later", "SYS/TEMP"))

    def authFailedClosing(self, tag):
        return self.line("-ERR " + self.err(
            AUTH_FAILED + "; too many failures, closing connection", "AUTH"))


class POP3Server(LineSession):
    """
    One POP3 session: AUTHORIZATION -> TRANSACTION -> (QUIT) UPDATE.

    @param plaintextSecrets: callable answering whether every user's secret is
        stored in plaintext (then APOP and CRAM-MD5 are offered; the
        listener's C{challenge_auth = "always"} offers them regardless).
    @param timestamp: the APOP timestamp (bytes) to greet with; generated if
        L{None}.
    """

    def __init__(self, settings, portal, plaintextSecrets=None, clock=None,
                 timestamp=None, waiters=None):
        LineSession.__init__(self, settings, POP3Wording(settings), settings.maxLine, clock)
        self.portal = portal
        # The server's line for busy maildrops (shared by its POP3 listeners).
        self.waiters = waiters if waiters is not None else MaildropWaiters(self.clock)
        self._opening = None  # the logout of a maildrop still being opened
        self.plaintextSecrets = plaintextSecrets or (lambda: False)
        self.timestamp = timestamp
        self.state = AUTHORIZATION
        self.maildrop = None
        self._user = None
        self._saslHandler = None
        self._sender = None

    # -- connection ------------------------------------------------------------

    def connectionMade(self):
        LineSession.connectionMade(self)
        self.setTimeout(self.settings.idleTimeout)
        if self._on("APOP") and sasl.offersChallengeAuth(self.settings.challengeAuth,
                                                         self.plaintextSecrets):
            if self.timestamp is None:
                self.timestamp = sasl.uniqueChallenge(self.settings.hostname, self.clock, 4)
        else:
            self.timestamp = None
        greeting = "mailstack POP3 server ready"
        if self.timestamp:
            greeting += " " + self.timestamp.decode("ascii")
        self._ok(greeting)

    def connectionLost(self, reason):
        LineSession.connectionLost(self, reason)
        if self._sender is not None:
            # Normally the transport has already stopped it (it stops its
            # producer before telling the protocol); if not, stop it here:
            # close the file and unregister.
            self._sender.abort()
        self.releaseAvatar()  # the maildrop's lock, without touching the store
        opening, self._opening = self._opening, None
        if opening is not None:
            opening()  # a login waiting for the maildrop leaves the line

    def timeoutConnection(self):
        if self._sender is not None:
            # Mid-response: an -ERR line would be taken as message text.
            log.info("pop3 {peer}: timeout while sending a message, closing",
                     peer=self.peerText())
            self._closing = True
            self.transport.abortConnection()
            return
        LineSession.timeoutConnection(self)

    def _on(self, capability):
        return capability not in self.settings.disabled

    # -- output ----------------------------------------------------------------

    def _write(self, line):
        self.transport.write(line.encode("utf-8") + b"\r\n")

    def _ok(self, text=None):
        self._write("+OK" if text is None else "+OK " + text)

    def _err(self, text, code=None):
        """An -ERR reply, with its RFC 2449/3206 response code when offered."""
        text = self.wording.err(text, code)
        log.info("pop3 {peer}: -ERR {text}", peer=self.peerText(), text=text)
        self._write("-ERR " + text)

    def _multi(self, first, lines):
        """A multi-line response (RFC 1939 section 3), byte-stuffed."""
        body = "".join(line + "\r\n" for line in lines).encode("utf-8")
        self.transport.write(b"+OK " + first.encode("utf-8") + b"\r\n" + stuff(body))

    def _close(self, line):
        self.closeWith(self.wording.line(line))

    # -- input -----------------------------------------------------------------

    def lineTooLong(self):
        if self.state == AUTHORIZATION:
            secretFrom(self.transport)  # what was seen of it, until the next command
        if self._saslHandler is not None:
            # As RFC 4954 section 4 says for SMTP (RFC 5034 is silent): the line
            # is not SASL data and the exchange ends, so the next line is a
            # command again (not, say, an AUTH taken as a response, the client's
            # credentials after it answered -ERR Unknown command and recorded
            # in the transcript as commands). No [AUTH] code: no credentials
            # were checked; it counts as a bad command, as any over-long line.
            self._saslHandler = None
            if self.countBad():
                self._err("Authentication exchange line too long (limit %d octets)" % (
                    self.settings.maxLine,))
            return
        if self.countBad():
            self._err("Line too long (limit %d octets)" % (self.settings.maxLine,))

    def _syntax(self, text):
        if self.countBad():
            self._err("Syntax: " + text)

    # -- dispatch ----------------------------------------------------------------

    def lineReceived(self, line):
        if self._saslHandler is not None:
            handler, self._saslHandler = self._saslHandler, None
            return self.guarded(handler, line)
        verb, _, argument = line.lstrip(b" ").partition(b" ")
        name = verb.decode("ascii", "replace").upper()
        spec = COMMANDS.get(name)
        self._markSecrets(line, name, argument, spec)
        if not self.countCommand():
            return None
        self.metrics.command(name if spec is not None else None)
        if not name:
            return self._err("No command given")
        if spec is None:
            if not self.countBad():
                return None
            if name in OBSOLETE:
                return self._err(OBSOLETE[name])
            if (self.state != AUTHORIZATION and name.isalnum() and name.isascii()
                    and len(name) <= 16):
                # Not before login: the "command" may be a password sent out
                # of turn, and the reply is recorded in transcripts.
                return self._err("Unknown command: %s" % (name,))
            return self._err("Unknown command")
        states, capability = spec
        if self.state not in states:
            if not self.countBad():
                return None
            if self.state == AUTHORIZATION:
                return self._err("%s needs a login first (USER/PASS, APOP or AUTH)" % (name,))
            return self._err("%s is only allowed before login; already logged in" % (name,))
        if capability is not None and not self._on(capability):
            return self._err("%s is disabled on this server" % (name,))
        # An exception in a handler: -ERR [SYS/TEMP], never a traceback.
        return self.guarded(getattr(self, "do_" + name), argument)

    def _markSecrets(self, line, name, argument, spec):
        """
        Tell the transcript what of a command line is secret: PASS's
        argument, APOP's digest, AUTH's initial response and every line of its
        exchange (until the next command), and before login a line that is no
        command (it may be credentials sent out of turn).
        """
        secretEnd(self.transport)
        start = len(line) - len(argument)  # where the argument starts
        if name == "PASS":
            secretLine(self.transport, start)
        elif name in ("APOP", "AUTH"):
            match = _FIRST_WORD.match(argument)
            keep = start + (match.end() if match else len(argument))
            if name == "APOP":
                secretLine(self.transport, keep)
            else:
                secretFrom(self.transport, keep)
        elif spec is None and name and self.state == AUTHORIZATION:
            secretLine(self.transport)

    # -- AUTHORIZATION ----------------------------------------------------------

    def everyUserPlain(self):
        return self.plaintextSecrets()

    def mechanismEnabled(self, mechanism):
        return self.portal is not None and self._on("SASL") and self._on(mechanism)

    def capabilities(self):
        """CAPA lines (RFC 2449) for this session, in order."""
        capabilities = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.plaintextAllowed():
            capabilities.append("USER")
        mechanisms = self.offeredMechanisms()
        if mechanisms:
            capabilities.append("SASL " + " ".join(mechanisms))
        if self.state == AUTHORIZATION and self.startTLSOffered():
            capabilities.append("STLS")
        capabilities += ["EXPIRE NEVER", "IMPLEMENTATION mailstack"]
        return [c for c in capabilities if self._on(c.split()[0])]

    def do_CAPA(self, argument):
        if argument.strip():
            return self._syntax("CAPA")
        self._multi("Capability list follows", self.capabilities())

    def do_QUIT(self, argument):
        if self.state == AUTHORIZATION:
            return self._close("+OK mailstack POP3 server signing off")
        # UPDATE state (RFC 1939 section 6): only now are DELE marks applied.
        count, _ = self.maildrop.stat()
        address = self.maildrop.address

        def failed(failure):
            if failure.check(StoreError, OSError):
                # The disk failed, not our code: one line (RFC 2449 SYS/TEMP).
                log.error("pop3 {peer}: {user}: removing deleted messages failed: {error}",
                          peer=self.peerText(), user=address, error=failure.value)
                self.metrics.error(STORAGE_ERROR)
            else:
                log.failure("pop3 {peer}: {user}: removing deleted messages failed",
                            failure, peer=self.peerText(), user=address)
                self.metrics.error(INTERNAL_ERROR)
            self.releaseAvatar()
            self._close("-ERR [SYS/TEMP] Some deleted messages not removed")

        def removed(n):
            log.info("pop3 {peer}: {user} logged out, {n} messages deleted",
                     peer=self.peerText(), user=address, n=n)
            self.releaseAvatar()
            self._close("+OK mailstack POP3 server signing off (%d deleted, %d left)" % (
                n, count))
        d = defer.maybeDeferred(self.maildrop.commit).addCallbacks(removed, failed)
        self.holdUnlessDone(d)

    def do_STLS(self, argument):
        if argument.strip():
            return self._syntax("STLS")
        # RFC 2595 section 4: plaintext pipelined after it is dropped (the core).
        self.startTLS()

    def tlsStarted(self):
        self._user = None  # fresh AUTHORIZATION state

    def do_USER(self, argument):
        if not self.plaintextAllowed():
            return self._err(PLAINTEXT_REFUSED, "AUTH")
        name = argument.strip()
        if not name or b" " in name:
            return self._syntax("USER name")
        self._user = name
        # The same reply for every name: no user enumeration.
        self._ok("Send PASS")

    def do_PASS(self, argument):
        if not self.plaintextAllowed():
            return self._err(PLAINTEXT_REFUSED, "AUTH")
        if self._user is None:
            if self.countBad():
                self._err("Send USER first")
            return None
        user, self._user = self._user, None
        self._login(UsernamePassword(user, argument), b"", "user")

    def do_APOP(self, argument):
        parts = argument.split()
        if len(parts) != 2:
            return self._syntax("APOP name digest")
        if self.timestamp is None:
            return self._err("APOP not available (no greeting timestamp)")
        self._login(APOPCredentials(self.timestamp, parts[0], parts[1]), b"", "apop")

    def do_AUTH(self, argument):
        mechanism, _, initial = argument.strip().partition(b" ")
        mechanism = mechanism.decode("ascii", "replace").upper()
        if not mechanism:
            return self._multi("Available SASL mechanisms", self.offeredMechanisms())
        status = self.mechanismStatus(mechanism)
        if status == sasl.NEEDS_TLS:
            return self._err(PLAINTEXT_REFUSED, "AUTH")
        if status != sasl.OFFERED:
            return self._err("Unsupported authentication mechanism")
        exchange = sasl.newExchange(mechanism, self.settings.hostname, self.clock)
        self._saslStep(exchange, exchange.start(initial.strip() or None))

    def _saslStep(self, exchange, outcome):
        """POP3's words for one step of a SASL exchange (mailstack.protocol.sasl)."""
        if isinstance(outcome, sasl.Challenge):
            self._write("+ " + base64.b64encode(outcome.data).decode("ascii"))
            self._saslHandler = lambda line: self._saslStep(exchange, exchange.receive(line))
        elif isinstance(outcome, sasl.Credentials):
            self._login(outcome.credentials, outcome.authzid, exchange.mechanism.name)
        elif isinstance(outcome, sasl.Cancelled):
            self._err("Authentication cancelled")
        elif not self.countBad():
            return
        elif outcome.problem == sasl.INVALID_BASE64:
            self._err("Invalid base64 data in AUTH response")
        elif outcome.problem == sasl.UNEXPECTED_INITIAL_RESPONSE:
            self._err("Syntax: AUTH %s (no initial response)" % (outcome.mechanism,))
        else:
            self._err("Malformed %s response" % (outcome.mechanism,))

    def _login(self, credentials, authzid, mechanism):
        """
        Check the credentials with input held (the core: the address's
        penalty first, a failure answered -ERR [AUTH], at the limit closed).
        """
        def loggedIn(maildrop, logout):
            self._opening = logout
            d = defer.maybeDeferred(maildrop.open, self._maildropLock())
            return d.addCallbacks(opened, notOpened, (maildrop, logout), None,
                                  (maildrop, logout))

        def notOpened(failure, maildrop, logout):
            self._opening = None
            logout()
            if failure.check(defer.CancelledError):
                return None  # the client left while waiting
            if failure.check(MaildropLocked):
                log.info("pop3 {peer}: {user}: maildrop locked by another session",
                         peer=self.peerText(), user=maildrop.address)
                return self._err("Mailbox is locked by another POP3 session", "IN-USE")
            if failure.check(StoreError, OSError):
                log.error("pop3 {peer}: {user}: cannot open the maildrop: {error}",
                          peer=self.peerText(), user=maildrop.address, error=failure.value)
                self.metrics.error(STORAGE_ERROR)
            else:
                log.failure("pop3 {peer}: {user}: cannot open the maildrop", failure,
                            peer=self.peerText(), user=maildrop.address)
                self.metrics.error(INTERNAL_ERROR)
            return self._err("Cannot open the mailbox, try again later", "SYS/TEMP")

        def opened(_, maildrop, logout):
            self._opening = None
            if self._closing:  # the client left meanwhile
                logout()
                return None
            self.maildrop = maildrop
            self.keepAvatar(logout)
            self.state = TRANSACTION
            count, octets = maildrop.stat()
            log.info("pop3 {peer}: {user} logged in, {count} messages",
                     peer=self.peerText(), user=maildrop.address, count=count)
            self._ok("Logged in, %s" % (_size(count, octets),))

        self.login(self.portal, credentials, authzid, IMaildrop, loggedIn, mechanism)

    def _maildropLock(self):
        """How this session takes the maildrop (L{IMaildrop.open}'s C{lock})."""
        if self.settings.maildropLock == "snapshot":
            return _noLock
        return functools.partial(self.waiters.acquire, timeout=self.settings.maildropWait)

    # -- TRANSACTION --------------------------------------------------------------

    def _number(self, argument, syntax, count=1):
        """Parse C{count} non-negative integers, or reply with the syntax."""
        parts = argument.split()
        if len(parts) != count or not all(p.isdigit() and len(p) < 10 for p in parts):
            self._syntax(syntax)
            return None
        return [int(p) for p in parts]

    def _message(self, number, operation):
        """Run C{operation(number)}, answering -ERR for a bad or deleted number."""
        try:
            return True, operation(number)
        except NoSuchMessageNumber:
            self._err("No such message, only %s in maildrop" % (
                _messages(self.maildrop.count()),))
        except MessageDeleted:
            self._err("Message %d already deleted" % (number,))
        except MessageGone:
            self._err("Message %d was removed by another session" % (number,))
        return False, None

    def do_STAT(self, argument):
        if argument.strip():
            return self._syntax("STAT")
        self._ok("%d %d" % self.maildrop.stat())

    def do_LIST(self, argument):
        if argument.strip():
            numbers = self._number(argument, "LIST [message]")
            if numbers is not None:
                found, size = self._message(numbers[0], self.maildrop.size)
                if found:
                    self._ok("%d %d" % (numbers[0], size))
            return None
        count, octets = self.maildrop.stat()
        self._multi(_size(count, octets),
                    ["%d %d" % entry for entry in self.maildrop.listing()])

    def do_UIDL(self, argument):
        if argument.strip():
            numbers = self._number(argument, "UIDL [message]")
            if numbers is not None:
                found, uid = self._message(numbers[0], self.maildrop.uniqueID)
                if found:
                    self._ok("%d %s" % (numbers[0], uid))
            return None
        self._multi("Unique-ID listing follows",
                    ["%d %s" % entry for entry in self.maildrop.uniqueIDs()])

    def do_RETR(self, argument):
        numbers = self._number(argument, "RETR message")
        if numbers is None:
            return None
        found, size = self._message(numbers[0], self.maildrop.size)
        if found:
            if size <= self.settings.chunkSize:
                self._sendWhole(numbers[0], size)
            else:
                self._send(numbers[0], None, "%d octets" % (size,))

    def do_TOP(self, argument):
        parts = argument.split()
        if len(parts) != 2 or not parts[1].isdigit():
            return self._syntax("TOP message lines")
        numbers = self._number(parts[0], "TOP message lines")
        if numbers is None:
            return None
        found, _ = self._message(numbers[0], self.maildrop.size)
        if found:
            self._send(numbers[0], _lineCount(parts[1]), "Top of message follows")

    def _sendWhole(self, number, size):
        """
        RETR of a message no larger than a chunk (most mail): read in one
        call, sent in one write with the +OK line and the terminator, with
        no producer and no Deferred. Reading at most one chunk of a file on
        the reactor thread is what the streaming path does for its first
        chunk too. A message that cannot be read gets -ERR, as nothing of
        it has been sent yet.
        """
        try:
            found, source = self._message(number, self.maildrop.openMessage)
            if not found:
                return
            try:
                data = source.read(self.settings.chunkSize + 1)
            finally:
                source.close()
        except (OSError, StoreError):
            log.failure("pop3 {peer}: reading message {n} failed", peer=self.peerText(),
                        n=number)
            self.metrics.error(STORAGE_ERROR)
            return self._err("Message %d cannot be read now" % (number,), "SYS/TEMP")
        if len(data) > self.settings.chunkSize:  # not the size the store said: stream it
            return self._send(number, None, "%d octets" % (size,))
        self.transport.write(b"+OK %d octets\r\n" % (size,) + stuff(data))
        marked = self.maildrop.markSeen(number)
        if not (marked.called and marked.result is None):  # not already \Seen
            self.holdUnlessDone(marked.addErrback(self._notMarked, number))

    def _notMarked(self, failure, number):
        failure.trap(MessageGone, StoreError, OSError)
        log.info("pop3 {peer}: cannot mark message {n} seen: {e}",
                 peer=self.peerText(), n=number, e=failure.value)

    def _send(self, number, lines, first):
        found, source = self._message(number, self.maildrop.openMessage)
        if not found:
            return
        if lines is not None:
            source = TopReader(source, lines)
        self._ok(first)
        sender = self._sender = MessageSender(
            source, self.transport, self.settings.chunkSize, progress=self.resetTimeout)

        def sent(completed):
            self._sender = None
            if not completed:
                return self._transferStopped(number, sender)
            if lines is None:
                return self.maildrop.markSeen(number).addErrback(self._notMarked, number)

        def broken(failure):
            # The +OK and part of the message are out: an -ERR now would read as
            # message text, so the only honest end is closing the connection.
            self._sender = None
            log.failure("pop3 {peer}: reading message {n} failed", failure,
                        peer=self.peerText(), n=number)
            self.metrics.error(STORAGE_ERROR)
            self._closing = True
            self.transport.loseConnection()
        self.holdInput(sender.start().addCallbacks(sent, broken))

    def _transferStopped(self, number, sender):
        """
        The transport stopped a RETR/TOP transfer: the connection is gone
        (IPullProducer.stopProducing). Pipelined commands still queued are
        dropped unread: running them would answer nobody and register a
        producer with a transport that is letting go of this one. One log line.
        """
        if self._closing:
            return
        self._closing = True
        dropped = self.dropInput()
        log.info("pop3 {peer}: connection lost while sending message {n} ({sent} octets "
                 "sent); {dropped} octets of pipelined commands dropped",
                 peer=self.peerText(), n=number, sent=sender.sent, dropped=dropped)
        # A no-op on a lost connection; ends it should a consumer ever stop
        # us while connected (the response is incomplete either way).
        self.transport.loseConnection()

    def do_DELE(self, argument):
        numbers = self._number(argument, "DELE message")
        if numbers is not None:
            found, _ = self._message(numbers[0], self.maildrop.delete)
            if found:
                self._ok("Message %d deleted" % (numbers[0],))

    def do_NOOP(self, argument):
        if argument.strip():
            return self._syntax("NOOP")
        self._ok()

    def do_RSET(self, argument):
        if argument.strip():
            return self._syntax("RSET")
        self.maildrop.reset()
        self._ok("Maildrop has %s" % (_size(*self.maildrop.stat()),))


def _lineCount(digits):
    """
    TOP's line count (ASCII digits). RFC 1939 allows any non-negative number;
    one too long for any message (more than 18 digits, which int() would not
    even parse past 4300) is clamped: the whole message.
    """
    digits = digits.lstrip(b"0") or b"0"
    return sys.maxsize if len(digits) > 18 else int(digits)


def _messages(count):
    return "1 message" if count == 1 else "%d messages" % (count,)


def _size(count, octets):
    """'2 messages (320 octets)', as RFC 1939's examples say it."""
    return "%s (%d octets)" % (_messages(count), octets)


# Names a listener's `disabled` list may hold (CAPA tags, commands, SASL
# mechanisms); service.py refuses any other name at start-up.
DISABLEABLE = frozenset({
    "APOP", "USER", "SASL", "PLAIN", "LOGIN", "CRAM-MD5", "STLS", "TOP", "UIDL",
    "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE", "IMPLEMENTATION"})


class POP3Factory(Factory):
    """
    Builds L{POP3Server} sessions for one listener.
    """

    protocol = POP3Server

    def __init__(self, settings, portal, plaintextSecrets=None, clock=None, waiters=None):
        self.settings = settings
        self.portal = portal
        self.plaintextSecrets = plaintextSecrets
        self.clock = clock
        self.waiters = waiters

    def buildProtocol(self, addr):
        p = POP3Server(self.settings, self.portal, self.plaintextSecrets, self.clock,
                       waiters=self.waiters)
        p.factory = self
        return p
