"""
The SMTP server protocol (RFC 5321) with ESMTP extensions: PIPELINING, SIZE,
8BITMIME, ENHANCEDSTATUSCODES (RFC 2034/3463), STARTTLS (RFC 3207), AUTH
(RFC 4954: PLAIN, LOGIN, CRAM-MD5), HELP.

Why not twisted.mail.smtp.ESMTP: its framing is the root of most of its defects
(STARTTLS keeps pipelined plaintext, an over-long DATA line turns the rest of the
body into commands, bare-LF handling allows smuggling, AUTH crashes on bare or
malformed input). Framing is the whole protocol, so this module owns it: bytes
are split into command lines (CRLF or bare LF) or DATA lines (only CRLF.CRLF ends
DATA), and a small per-state dispatch answers each. Twisted still supplies the
transport, TLS, cred (portal, credentials, checkers) and timeouts.

Policy (which recipients are local, who may relay, where mail goes) is not here:
it is the L{SMTPPolicy} passed in (mailstack.smtp.delivery).
"""

import base64
import dataclasses
import email.utils
import re
import secrets
import tempfile
import time
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.instruments import STORAGE_ERROR
from mailstack.protocol.dotstuff import DotUnstuffer
from mailstack.protocol import sasl
from mailstack.protocol.secrets import secretEnd, secretFrom, secretLine
from mailstack.protocol.session import ISessionWording, LineSession
from mailstack.smtp.address import PathSyntaxError, isDomain, parsePath
from mailstack.smtp.delivery import ISMTPSubmitter, LOCAL_ERROR, storageFailureReply
from mailstack.settings import ListenerSettings
from mailstack.smtp.reply import Reply

log = Logger()

SPOOL_MEMORY = 1024 * 1024

# RFC 4954 section 4: a line answering an AUTH challenge may hold 12,288
# octets (a long SASL response), far over the 512 of a command line.
SASL_LINE_LENGTH = 12288 + 2

# AUTH and its mechanism: what a transcript shows of an AUTH command line.
_AUTH_PREFIX = re.compile(rb"\s*\S+\s+\S+\s*")


@dataclasses.dataclass(frozen=True)
class SMTPSettings(ListenerSettings):
    """
    What one listener offers; built from its config by its plug-in's C{buildFactory}.
    """
    submission: bool = False
    maxMessageSize: int = 25 * 1024 * 1024
    maxCommandLine: int = 512
    maxTextLine: int = 1000
    maxRecipients: int = 100
    timeout: int = 600
    bareNewline: str = "normalize"
    # The server's mailstack.smtp.submissions.SubmissionLog, or None: each
    # accepted message is recorded there (TLS, auth, envelope, Subject).
    submissions: Any = None


class Envelope:
    """
    One mail transaction: MAIL FROM, its parameters and the accepted recipients.
    RSET, a finished DATA and STARTTLS forget it.
    """

    def __init__(self, sender, params, client=None, helo=None, tls=None, authenticated=None):
        self.sender = sender
        self.params = params
        self.recipients = []  # [(address, kind)] kind: "local" | "relay" | "capture" | "bounce"
        # the session's facts, for the policy (greylist, capture store)
        self.client = client
        self.helo = helo
        self.tls = tls  # TLS description ("" if unknown), None for plaintext
        self.authenticated = authenticated


@implementer(ISessionWording)
class SMTPWording:
    """
    SMTP's replies for the session core (L{mailstack.protocol.session}).
    """

    protocolName = "smtp"
    startTLSCommand = "STARTTLS"

    def __init__(self, settings):
        self.settings = settings

    def reply(self, reply):
        """The octets of C{reply}; without enhanced status codes if disabled."""
        if reply.status and "ENHANCEDSTATUSCODES" in self.settings.disabled:
            reply = dataclasses.replace(reply, status=None)
        return reply.toBytes()

    def internalError(self, tag):
        return self.reply(LOCAL_ERROR)

    def tooManyBadCommands(self):
        return self.reply(Reply(421, "4.7.0", "Too many errors, closing connection"))

    def tooManyCommands(self):
        return self.reply(Reply(421, "4.7.0", "Too many commands in one session, closing"))

    def timedOut(self):
        return self.reply(Reply(421, "4.4.2", "%s Timeout, closing connection" % (
            self.settings.hostname,)))

    def tlsReady(self, tag):
        return self.reply(Reply(220, "2.0.0", "Ready to start TLS"))

    def tlsAlreadyActive(self, tag):
        return self.reply(Reply(503, "5.5.1", "TLS already active"))

    def tlsNotAvailable(self, tag):
        return self.reply(Reply(454, "4.7.0", "TLS not available"))

    def authFailed(self, tag):
        return self.reply(Reply(535, "5.7.8", "Authentication credentials invalid"))

    def authUnavailable(self, tag):
        # RFC 4954 section 6.
        return self.reply(Reply(454, "4.7.0", "Temporary authentication failure"))

    def authFailedClosing(self, tag):
        # The 535 is followed by a 421 at the limit.
        return self.authFailed(tag) + self.reply(
            Reply(421, "4.7.0", "Too many authentication failures, closing"))


class SMTPServer(LineSession):
    """
    One SMTP session. States: greeting sent -> commands (with an envelope) ->
    DATA body -> commands ...; AUTH exchanges read SASL lines instead of commands.
    """

    def __init__(self, settings, policy, portal, clock=None):
        LineSession.__init__(self, settings, SMTPWording(settings),
                             settings.maxCommandLine, clock)
        self.policy = policy
        self.portal = portal
        self._dataState = None
        self._saslHandler = None
        self._resetSession()

    # -- session state -------------------------------------------------------

    def _resetSession(self):
        """Forget everything but the connection (start, and after STARTTLS)."""
        self.helo = None
        self.esmtp = False
        self.authenticated = None
        self.envelope = None

    def connectionMade(self):
        LineSession.connectionMade(self)
        self.setTimeout(self.settings.timeout)
        self.reply(Reply(220, None, "%s ESMTP mailstack ready" % (self.settings.hostname,)))

    def connectionLost(self, reason):
        LineSession.connectionLost(self, reason)
        self._discardData()
        self.releaseAvatar()

    # -- output --------------------------------------------------------------

    def reply(self, reply):
        self.transport.write(self.wording.reply(reply))

    def _close(self, reply):
        self.closeWith(self.wording.reply(reply))

    # -- input ---------------------------------------------------------------

    def takeInput(self):
        """A DATA body is read by its own framing; anything else is lines."""
        if self._dataState is not None:
            return self._consumeData()
        return LineSession.takeInput(self)

    def readingLines(self):
        return self._dataState is None

    def lineLimit(self):
        """The longest line (with its CRLF) taken now: a SASL response or a command."""
        if self._saslHandler is not None:
            return max(SASL_LINE_LENGTH, self.settings.maxCommandLine)
        return self.settings.maxCommandLine

    def lineTooLong(self):
        # Counted first, like any bad command: the last one allowed gets the 421 alone.
        inExchange, self._saslHandler = self._saslHandler is not None, None
        if self.authenticated is None:
            secretFrom(self.transport)  # what was seen of it, until the next command
        if not self.countBad():
            return
        if inExchange:
            # RFC 4954 section 4: the exchange ends; the line is not SASL data.
            self.reply(Reply(500, "5.5.6", "Authentication Exchange line is too long"))
        else:
            self.reply(Reply(500, "5.5.2", "Line too long (limit %d octets)" % (
                self.settings.maxCommandLine,)))

    # -- commands ------------------------------------------------------------

    def lineReceived(self, line):
        if self._saslHandler is not None:
            handler, self._saslHandler = self._saslHandler, None
            self.guarded(handler, line)
            return
        verb, _, argument = line.strip().partition(b" ")
        method = getattr(self, "do_" + verb.decode("ascii", "replace").upper(), None)
        self._markSecrets(line, verb, method)
        if not self.countCommand():
            return
        self.metrics.command(verb.decode("ascii").upper() if method and verb.isalpha() else None)
        if not verb.isalpha() or method is None:
            if self.countBad():
                self.reply(Reply(500, "5.5.2", "Command unrecognized"))
            return
        # A bug or a store fault in a synchronous handler: 451 4.3.0, and the
        # session goes on (as in POP3 and IMAP); the log keeps the traceback.
        self.guarded(method, argument.strip())

    def _markSecrets(self, line, verb, method):
        """
        Tell the transcript what of a command line is secret: the initial
        response of AUTH and every line of its exchange (until the next
        command), and before login a line that is no command (it may be
        credentials sent out of turn).
        """
        secretEnd(self.transport)
        if verb.upper() == b"AUTH":
            match = _AUTH_PREFIX.match(line)
            secretFrom(self.transport, match.end() if match else len(line))
        elif (method is None or not verb.isalpha()) and self.authenticated is None:
            secretLine(self.transport)

    def _syntax(self, text, status="5.5.4"):
        if self.countBad():
            self.reply(Reply(501, status, text))

    # Without TLS and without allow_plaintext_auth no mechanism at all,
    # CRAM-MD5 included (like Postfix's smtpd_tls_auth_only: the whole
    # session, not only the password, is worth protecting).
    challengeNeedsTLS = True

    def everyUserPlain(self):
        return self.policy.plaintextSecretsAvailable()

    def mechanismEnabled(self, mechanism):
        return (self.portal is not None and "AUTH" not in self.settings.disabled
                and mechanism not in self.settings.disabled)

    def extensions(self):
        """EHLO keywords for this session, in order."""
        offered = [
            "PIPELINING",
            "SIZE %d" % (self.settings.maxMessageSize,),
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
        ]
        if self.startTLSOffered():
            offered.append("STARTTLS")
        mechanisms = self.offeredMechanisms()
        if mechanisms:
            offered.append("AUTH " + " ".join(mechanisms))
        offered.append("HELP")
        return [e for e in offered if e.split()[0] not in self.settings.disabled]

    def do_EHLO(self, argument):
        self._hello(argument, True)

    def do_HELO(self, argument):
        self._hello(argument, False)

    def _hello(self, argument, esmtp):
        if not argument or b" " in argument or not isDomain(argument):
            return self._syntax("Syntax: %s hostname" % ("EHLO" if esmtp else "HELO",))
        self.helo = argument.decode("ascii")
        self.esmtp = esmtp
        self.envelope = None
        greeting = "%s Hello %s [%s]" % (
            self.settings.hostname, self.helo, getattr(self.peer, "host", ""))
        if not esmtp:
            return self.reply(Reply(250, None, greeting))
        self.reply(Reply(250, None, [greeting] + self.extensions()))

    def do_NOOP(self, argument):
        self.reply(Reply(250, "2.0.0", "OK"))

    def do_RSET(self, argument):
        if argument:
            return self._syntax("Syntax: RSET")
        self.envelope = None
        self.reply(Reply(250, "2.0.0", "OK"))

    def do_QUIT(self, argument):
        self._close(Reply(221, "2.0.0", "%s closing connection" % (self.settings.hostname,)))

    def do_VRFY(self, argument):
        if not argument:
            return self._syntax("Syntax: VRFY address")
        # Never confirm or deny a user (no enumeration), RFC 5321 3.5.3.
        self.reply(Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"))

    def do_EXPN(self, argument):
        self.reply(Reply(502, "5.5.1", "EXPN not available"))

    def do_TURN(self, argument):
        self.reply(Reply(502, "5.5.1", "TURN not available (RFC 2821 removed it)"))

    def do_HELP(self, argument):
        self.reply(Reply(214, "2.0.0", [
            "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"
            + (" STARTTLS" if self.startTLSOffered() else "")
            + (" AUTH" if self.offeredMechanisms() else ""),
            "A message: EHLO, MAIL FROM:<you@domain>, RCPT TO:<them@domain>, DATA,",
            "the message, a line with a single dot; RFC 5321 says the rest.",
        ]))

    def do_STARTTLS(self, argument):
        if argument:
            return self._syntax("Syntax: STARTTLS")
        # RFC 3207 section 4.2: plaintext pipelined after it is dropped (the core).
        self.startTLS()

    def tlsStarted(self):
        """RFC 3207 section 4.2: the session starts over (EHLO, AUTH, MAIL)."""
        self.releaseAvatar()
        self._resetSession()

    # -- AUTH (RFC 4954) -----------------------------------------------------

    def do_AUTH(self, argument):
        mechanism, _, initial = argument.partition(b" ")
        mechanism = mechanism.decode("ascii", "replace").upper()
        initial = initial.strip() or None
        if not mechanism:
            return self._syntax("Syntax: AUTH mechanism [initial-response]")
        if self.authenticated is not None:
            return self.reply(Reply(503, "5.5.1", "Already authenticated"))
        if not self.esmtp:
            return self.reply(Reply(503, "5.5.1", "Send EHLO first"))
        if self.envelope is not None:
            return self.reply(Reply(503, "5.5.1", "AUTH not allowed during a mail transaction"))
        status = self.mechanismStatus(mechanism)
        if status == sasl.NEEDS_TLS:
            return self.reply(Reply(538, "5.7.11", "Encryption required for requested authentication mechanism"))
        if status != sasl.OFFERED:
            return self.reply(Reply(504, "5.5.4", "Unrecognized authentication type"))
        exchange = sasl.newExchange(mechanism, self.settings.hostname, self.clock)
        self._saslStep(exchange, exchange.start(initial))

    def _saslStep(self, exchange, outcome):
        """SMTP's words for one step of a SASL exchange (mailstack.protocol.sasl)."""
        if isinstance(outcome, sasl.Challenge):
            self.reply(Reply(334, None, base64.b64encode(outcome.data).decode("ascii")))
            self._saslHandler = lambda line: self._saslStep(exchange, exchange.receive(line))
        elif isinstance(outcome, sasl.Credentials):
            self._login(outcome.credentials, outcome.authzid, exchange.mechanism.name)
        elif isinstance(outcome, sasl.Cancelled):
            self.reply(Reply(501, "5.0.0", "Authentication cancelled"))
        elif outcome.problem == sasl.INVALID_BASE64:
            self._syntax("Invalid base64 data in AUTH response", "5.5.2")
        elif outcome.problem == sasl.UNEXPECTED_INITIAL_RESPONSE:
            self._syntax("%s takes no initial response" % (outcome.mechanism,))
        else:
            self._syntax("Malformed AUTH %s response" % (outcome.mechanism,), "5.5.2")

    def _login(self, credentials, authzid, mechanism):
        """
        Check the credentials with input held (the core: the address's
        penalty first, a failure answered 535, at the limit 535 and 421).
        """
        def loggedIn(avatar, logout):
            self.authenticated = avatar.address
            self.keepAvatar(logout)
            log.info("smtp {peer}: authenticated as {user}", peer=self.peerText(),
                     user=avatar.address)
            self.reply(Reply(235, "2.7.0", "Authentication successful"))
        self.login(self.portal, credentials, authzid, ISMTPSubmitter, loggedIn, mechanism)

    # -- the mail transaction -----------------------------------------------

    def do_MAIL(self, argument):
        if self.helo is None:
            return self.reply(Reply(503, "5.5.1", "Send HELO or EHLO first"))
        if self.envelope is not None:
            return self.reply(Reply(503, "5.5.1", "Nested MAIL command"))
        try:
            sender, params = parsePath(b"FROM", argument)
        except PathSyntaxError as e:
            return self._syntax(str(e))
        problem = self._checkMailParams(params)
        if problem is not None:
            return self.reply(problem)
        if self.settings.submission and self.authenticated is None:
            return self.reply(Reply(530, "5.7.0", "Authentication required"))
        refusal = self.policy.checkSender(sender, self.authenticated, self.settings.submission)
        if refusal is not None:
            return self.reply(refusal)
        self.envelope = Envelope(sender, params, client=getattr(self.peer, "host", None),
                                 helo=self.helo, tls=self._tlsDescription(),
                                 authenticated=self.authenticated)
        self.reply(Reply(250, "2.1.0", "Sender <%s> OK" % (sender,)))

    def _tlsDescription(self):
        """The session's TLS, described (C{""} if it cannot be), or L{None} without TLS."""
        if not self.tls:
            return None
        from mailstack.tls import describeConnection
        return describeConnection(self.transport) or ""

    def _checkMailParams(self, params):
        allowed = {"SIZE", "BODY", "AUTH"} if self.esmtp else set()
        for key, value in params.items():
            if key not in allowed or key in self.settings.disabled:
                return Reply(555, "5.5.4", "Unsupported parameter %s" % (key,))
        if "SIZE" in params:
            value = params["SIZE"]
            if value is None or not value.isdigit():
                return Reply(501, "5.5.4", "SIZE needs a number")
            if int(value) > self.settings.maxMessageSize:
                return self._sizeExceeded()
        if "BODY" in params and (params["BODY"] or "").upper() not in ("7BIT", "8BITMIME"):
            return Reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
        return None

    def _sizeExceeded(self):
        """The reply to a message over the size limit (MAIL SIZE= or DATA)."""
        return Reply(552, "5.3.4", "Message size exceeds fixed limit of %d octets" % (
            self.settings.maxMessageSize,))

    def do_RCPT(self, argument):
        if self.envelope is None:
            return self.reply(Reply(503, "5.5.1", "Need MAIL before RCPT"))
        try:
            recipient, params = parsePath(b"TO", argument)
        except PathSyntaxError as e:
            return self._syntax(str(e))
        if params:
            return self.reply(Reply(555, "5.5.4", "Unsupported parameter %s" % (
                next(iter(params)),)))
        if len(self.envelope.recipients) >= self.settings.maxRecipients:
            return self.reply(Reply(452, "4.5.3", "Too many recipients"))
        decision = self.policy.checkRecipient(recipient, self.authenticated, self.envelope)
        if not isinstance(decision, defer.Deferred):
            return self._recipientDecided(self.envelope, decision)
        # The user directory is asked off the reactor: input waits for the
        # answer. A directory that cannot answer gets 451 4.3.0 (the client
        # tries again later); any other fault too, by the hold.
        envelope = self.envelope
        decision.addCallbacks(lambda decision: self._recipientDecided(envelope, decision),
                              self._directoryUnavailable)
        self.holdInput(decision)

    def _directoryUnavailable(self, failure):
        failure.trap(UserDirectoryUnavailable)
        log.warn("smtp {peer}: cannot look up a recipient: {error}", peer=self.peerText(),
                 error=failure.value)
        self.reply(LOCAL_ERROR)

    def _recipientDecided(self, envelope, decision):
        if decision.kind is None:
            return self.reply(decision.reply)
        envelope.recipients.append((decision.address, decision.kind))
        self.reply(Reply(250, "2.1.5", "Recipient <%s> OK" % (decision.address,)))

    def do_DATA(self, argument):
        if argument:
            return self._syntax("Syntax: DATA")
        if self.envelope is None:
            return self.reply(Reply(503, "5.5.1", "Need MAIL before DATA"))
        if not self.envelope.recipients:
            return self.reply(Reply(554, "5.5.1", "No valid recipients"))
        self._dataState = _DataState(self.settings)
        self.reply(Reply(354, None, "End data with <CR><LF>.<CR><LF>"))

    # -- DATA body -------------------------------------------------------------

    def _consumeData(self):
        state = self._dataState
        consumed, finished = state.feed(self.framer.peek())
        self.framer.consume(consumed)
        if finished:
            self._dataState = None
            self._endOfData(state)
        return consumed > 0 or finished

    def _discardData(self):
        if self._dataState is not None:
            self._dataState.close()
            self._dataState = None

    def _endOfData(self, state):
        envelope, self.envelope = self.envelope, None
        if state.tooBig:
            state.close()
            log.info("smtp {peer}: message over {limit} octets refused",
                     peer=self.peerText(), limit=self.settings.maxMessageSize)
            return self.reply(self._sizeExceeded())
        if state.tooLong:
            state.close()
            log.info("smtp {peer}: message with a line over {limit} octets refused",
                     peer=self.peerText(), limit=self.settings.maxTextLine)
            return self.reply(Reply(500, "5.6.0", "Message has a line longer than %d octets; not accepted" % (
                self.settings.maxTextLine,)))
        if state.bare and self.settings.bareNewline == "reject":
            state.close()
            return self.reply(Reply(554, "5.6.0", "Message contains a bare CR or LF; not accepted"))
        if state.failed is not None:
            state.close()
            log.error("smtp {peer}: message not spooled: {error}", peer=self.peerText(),
                      error=state.failed)
            self.metrics.error(STORAGE_ERROR)
            return self.reply(storageFailureReply(state.failed))
        queueID = secrets.token_hex(6).upper()
        header = self.receivedHeader(envelope, queueID)
        d = self.policy.deliver(envelope, header, state.spool, queueID)
        if self.settings.submissions is not None:
            d.addCallback(self._submitted, envelope, state, queueID)
        d.addCallback(self._counted, envelope)

        def done(reply):
            state.close()
            if reply is not None:  # nothing kept: the store failed (the policy logged it)
                self.metrics.error(STORAGE_ERROR)
            self.reply(reply if reply is not None else Reply(
                250, "2.0.0", "OK: queued as %s" % (queueID,)))

        def failed(failure):
            state.close()
            return failure
        d.addCallbacks(done, failed)
        self.holdInput(d)

    def _submitted(self, reply, envelope, state, queueID):
        """
        A message was accepted (C{reply} L{None}): record it in the
        submission log with the session's TLS and login facts.
        """
        if reply is None:
            from mailstack.smtp.submissions import recordSession
            recordSession(self, envelope, state.size, state.headers, queueID)
        return reply

    def _counted(self, reply, envelope):
        """
        A message was accepted (C{reply} L{None}): count it for the class
        reports (L{mailstack.activity}), as sent by the logged-in user and
        received by each local recipient.
        """
        if reply is None:
            activity = self.settings.activity
            if self.authenticated is not None:
                activity.messageSent(self.authenticated, "smtp", self.tls)
            for address, kind in dict.fromkeys(envelope.recipients):
                if kind == "local":
                    activity.messageReceived(address, "smtp", self.tls)
        return reply

    def receivedHeader(self, envelope, queueID):
        """The trace header (RFC 5321 4.4) with TLS and auth facts (RFC 3848)."""
        protocol = "ESMTP" if self.esmtp else "SMTP"
        if self.tls:
            protocol += "S"
        if self.authenticated:
            protocol += "A"
        lines = ["Received: from %s (%s [%s])" % (
            self.helo, getattr(self.peer, "host", "unknown"), getattr(self.peer, "host", ""))]
        if self.tls:
            from mailstack.tls import describeConnection
            description = describeConnection(self.transport)
            if description:
                lines.append("\t(using %s)" % (description,))
        if self.authenticated:
            lines.append("\t(Authenticated sender: %s)" % (self.authenticated,))
        forClause = ""
        if len(envelope.recipients) == 1:
            forClause = "\n\tfor <%s>" % (envelope.recipients[0][0],)
        lines.append("\tby %s (mailstack) with %s id %s%s;" % (
            self.settings.hostname, protocol, queueID, forClause))
        lines.append("\t%s" % (receivedDate(),))
        return ("\r\n".join("\r\n".join(l.split("\n")) for l in lines) + "\r\n").encode(
            "utf-8", "replace")


_dateCache = [None, ""]


def receivedDate():
    """
    The date of a C{Received:} header: now, in local time (RFC 5322), made
    once per second (C{formatdate}'s time zone work was 3 % of the reactor's
    time under a 10-session SMTP load).
    """
    second = int(time.time())
    if _dateCache[0] != second:
        _dateCache[:] = [second, email.utils.formatdate(second, localtime=True)]
    return _dateCache[1]


class _DataState:
    """
    The DATA body reader: the body is decoded by L{DotUnstuffer} (only a "."
    line after a CRLF and itself ended by CRLF ends it; lines dot-unstuffed,
    bare CR/LF noted and made CRLF, an over-long line noted) and written to a
    spool file; an over-long line or an over-size message is noted and the
    rest read to the end without being stored, never run as commands.
    """

    def __init__(self, settings):
        self.maxSize = settings.maxMessageSize
        self.decoder = DotUnstuffer(settings.maxTextLine)
        self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self.size = 0
        # The header section, for the submission log (its Subject).
        self.headers = None
        if settings.submissions is not None:
            from mailstack.smtp.submissions import HeaderCollector
            self.headers = HeaderCollector()
        self.tooBig = False
        self.failed = None  # the OSError that stopped spooling (a full disk)

    @property
    def tooLong(self):
        return self.decoder.tooLong

    @property
    def bare(self):
        return self.decoder.bare

    def close(self):
        self.spool.close()

    def _write(self, data):
        if self.tooBig or self.tooLong or self.failed is not None:
            return
        self.size += len(data)
        if self.size > self.maxSize:
            self.tooBig = True
            self.spool.truncate(0)
            return
        if self.headers is not None:
            self.headers.feed(data)
        try:
            self.spool.write(data)
        except OSError as e:
            # Spooling to disk failed (past SPOOL_MEMORY): read the rest to the
            # final dot without storing it, then answer 452/451.
            self.failed = e
            try:
                self.spool.truncate(0)
            except OSError:
                pass

    def feed(self, buffer):
        """
        Take C{buffer} (what the framer holds), up to the end of the body.

        @return: C{(octets consumed, finished)}.
        """
        self._write(self.decoder.feed(buffer))
        if self.decoder.finished:
            self.spool.seek(0)
            return len(buffer) - len(self.decoder.unused), True
        return len(buffer), False


# Names a listener's `disabled` list may hold: EHLO keywords, MAIL parameters
# and SASL mechanisms. service.py refuses any other name at start-up.
DISABLEABLE = frozenset({
    "PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS", "AUTH",
    "HELP", "BODY", "PLAIN", "LOGIN", "CRAM-MD5"})


class SMTPFactory(Factory):
    """
    Builds L{SMTPServer} sessions for one listener.
    """

    noisy = False  # no "Starting/Stopping factory" lines for every listener

    protocol = SMTPServer

    def __init__(self, settings, policy, portal, clock=None):
        self.settings = settings
        self.policy = policy
        self.portal = portal
        self.clock = clock

    def buildProtocol(self, addr):
        p = SMTPServer(self.settings, self.policy, self.portal, self.clock)
        p.factory = self
        return p
