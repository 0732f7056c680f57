"""
The session core under the SMTP, POP3 and IMAP engines: what every session
does the same way, written once.

  - the client's address as log lines show it (L{Session.peerText});
  - holding input while a Deferred runs (a login, a failure delay, a
    delivery, a message being sent): holds nest, and input resumes only when
    every one has fired, so pipelined replies stay in order; while held, the
    transport is paused once too much is buffered and resumed after;
  - the command and bad-command counters and their limits;
  - guarded handlers: an exception in a handler becomes the protocol's
    temporary-error reply and one log line with the traceback, and the
    session goes on;
  - STARTTLS: buffered plaintext dropped (and its size logged), the go-ahead
    sent, TLS started, the protocol's state reset;
  - an authentication failure recorded with the client address's shared
    penalty (L{mailstack.throttle}), answered and, at the limit, closed;
  - close, idle timeout and the per-line deadline;
  - what the listener's metrics hear from a session: logins checked (by
    mechanism), internal errors (L{Session.metrics}, the engines add their
    commands and storage errors).

What a protocol says on each of these occasions comes from its
L{ISessionWording}, as Dovecot's login-common asks each protocol's
C{client_vfuncs}: the core decides when, the wording says what.
L{LineSession} adds the shared line framer (SMTP, POP3); IMAP frames lines
and literals itself on the same core.
"""

from twisted.cred.error import LoginFailed
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.instruments import INTERNAL_ERROR
from mailstack.protocol import recording, sasl
from mailstack.protocol.framing import TOO_LONG, LineFramer
from mailstack.protocol.secrets import IPendingInput
from mailstack.sessions import CommandLineDeadline
from mailstack.throttle import AuthFailureThrottle

__all__ = ["ISessionWording", "Session", "LineSession"]

log = Logger()


class ISessionWording(Interface):
    """
    One protocol's words for what the session core does. Each method returns
    the octets to send: whole lines, each ended by CRLF. C{tag} is the
    command's tag in a protocol that has tags (IMAP), L{None} in the others.
    """

    protocolName = Attribute(
        "The name log lines start with: C{smtp}, C{pop3}, C{imap}.")
    startTLSCommand = Attribute(
        "The command that starts TLS as a listener's C{disabled} list names it "
        "(C{STARTTLS}, C{STLS}).")

    def internalError(tag):
        """A handler failed: the temporary-error reply; the session goes on."""

    def tooManyBadCommands():
        """Sent before closing when the bad-command limit is reached."""

    def tooManyCommands():
        """Sent before closing when a command goes over the command limit."""

    def timedOut():
        """Sent before closing when the client was idle too long."""

    def tlsReady(tag):
        """The go-ahead for the TLS handshake."""

    def tlsAlreadyActive(tag):
        """The refusal of STARTTLS on a session that already has TLS."""

    def tlsNotAvailable(tag):
        """The refusal of STARTTLS where it is not offered."""

    def authFailed(tag):
        """The reply to a failed login the session survives."""

    def authFailedClosing(tag):
        """The reply to a failed login at the limit, sent before closing."""

    def authUnavailable(tag):
        """
        The reply to a login the user directory could not check now (a locked
        or failing database): temporary, and not counted as a failure.
        """


@implementer(IPendingInput)
class Session(Protocol, TimeoutMixin):
    """
    The base of an engine's session protocol.

    A subclass says how it buffers and takes input (L{bufferInput},
    L{pendingInput}, L{takeInput}, L{dropInput}) and what to reset when TLS
    starts (L{tlsStarted}); everything else here is the same for all.

    @ivar wording: the protocol's L{ISessionWording}.
    @ivar tls: whether the session is encrypted (implicit TLS or STARTTLS done).
    @ivar peer: the client's address (from the transport).
    @ivar metrics: the listener's L{mailstack.instruments.IListenerMetrics}
        (from the settings).
    @ivar holdBufferLimit: octets buffered while input is held above which
        the transport is paused.
    """

    holdBufferLimit = 65536

    def __init__(self, settings, wording, clock=None):
        self.settings = settings
        self.metrics = settings.metrics
        self.wording = ISessionWording(wording)
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.callLater = clock.callLater  # for TimeoutMixin
        self.tls = False
        self.peer = None
        self._closing = False
        self._holds = 0  # Deferreds that input waits for
        self._inputPaused = False
        self._processing = False
        self._commands = 0
        self._badCommands = 0
        self._avatarLogout = None
        self.authThrottle = AuthFailureThrottle(settings, clock)
        self.lineDeadline = CommandLineDeadline(
            clock, settings.commandLineTimeout, self.timeoutConnection,
            self.readingLines, self.peerText)

    # -- connection ----------------------------------------------------------

    def connectionMade(self):
        self.tls = self.settings.tlsMode == "implicit" or ISSLTransport.providedBy(
            self.transport)
        self.peer = self.transport.getPeer()

    def connectionLost(self, reason):
        # A pending failure delay or deadline must not answer a closed connection.
        self._closing = True
        self.setTimeout(None)
        self.authThrottle.cancel()
        self.lineDeadline.cancel()

    def peerText(self):
        """The client's address as log lines show it: C{host:port}."""
        return "%s:%s" % (getattr(self.peer, "host", self.peer),
                          getattr(self.peer, "port", ""))

    def closeWith(self, data):
        """Send C{data} (the last reply) and close; once only."""
        if self._closing:
            return
        self._closing = True
        self.transport.write(data)
        self.transport.loseConnection()

    def timeoutConnection(self):
        log.info("{protocol} {peer}: timeout, closing",
                 protocol=self.wording.protocolName, peer=self.peerText())
        self.closeWith(self.wording.timedOut())

    def readingLines(self):
        """
        Whether input is being read as command lines now (timed by the
        per-line deadline); not while reading a message body or a literal.
        """
        return True

    # -- input ---------------------------------------------------------------

    def dataReceived(self, data):
        if self._closing:
            return
        self.resetTimeout()
        self.lineDeadline.received(data)
        self.bufferInput(data)
        self.processInput()

    def bufferInput(self, data):
        """Keep received octets until taken."""
        raise NotImplementedError()

    def pendingInput(self):
        """Octets received and not taken yet (L{IPendingInput})."""
        raise NotImplementedError()

    def takeInput(self):
        """Take and handle the next piece of input. @return: whether any was taken."""
        raise NotImplementedError()

    def dropInput(self):
        """Forget every octet received and not taken. @return: how many."""
        raise NotImplementedError()

    def processInput(self):
        """
        Handle buffered input until none is left, input is held or the
        session closes. A hold released inside this loop does not start a
        second, nested loop (deep recursion with many pipelined commands):
        the running one goes on.
        """
        if self._processing:
            return
        self._processing = True
        try:
            while not self._closing and self.pendingInput() and not self.inputWaits():
                if not self.takeInput():
                    break
        finally:
            self._processing = False
        if self._closing:
            return
        if self.inputWaits():
            if not self._inputPaused and self.pendingInput() > self.holdBufferLimit:
                self._inputPaused = True
                self.transport.pauseProducing()
        else:
            self.resumeInput()

    def resumeInput(self):
        """Resume the transport if input was paused."""
        if self._inputPaused:
            self._inputPaused = False
            self.transport.resumeProducing()

    def holdInput(self, d, tag=None):
        """
        Take no more input until C{d} (which sends its reply) has fired. Holds
        nest (a login's Deferred may wait for a failure delay): input resumes
        only when every one has fired. A failure of C{d} is answered as an
        internal error (of the command tagged C{tag}, in IMAP).

        @return: C{d}
        """
        self._holds += 1

        def release(result):
            self._holds -= 1
            if not self._holds and not self._closing:
                self.resumeInput()
                self.processInput()
            return result
        d.addErrback(self.internalError, tag)
        d.addBoth(release)
        return d

    def holdUnlessDone(self, d, tag=None):
        """
        L{holdInput} for C{d} (a command's Deferred, or L{None}) unless it
        has fired already: a store answers most operations at once, and a
        hold released inside the command would take the next pipelined
        command recursively. Either way a failure left in C{d} is answered
        as an internal error.
        """
        if d is None:
            return None
        done = []
        d.addBoth(lambda r: done.append(True) or r)
        if not done:
            return self.holdInput(d, tag)
        return d.addErrback(self.internalError, tag)

    def inputHeld(self):
        """Whether a hold is on (L{holdInput})."""
        return self._holds > 0

    def readsWhileHeld(self):
        """
        Whether the held command itself reads the input now (IMAP's IDLE
        waits for DONE, AUTHENTICATE for the client's response): then input
        is taken while held.
        """
        return False

    def inputWaits(self):
        """Whether buffered input must wait: a hold is on and its command reads none."""
        return self._holds > 0 and not self.readsWhileHeld()

    # -- commands ------------------------------------------------------------

    def guarded(self, handler, *args):
        """
        Run C{handler(*args)}. An exception (a bug, a store fault) becomes
        the protocol's temporary-error reply and one log line with the
        traceback; the session goes on.
        """
        try:
            return handler(*args)
        except Exception:
            self.internalError(Failure())
            return None

    def internalError(self, failure, tag=None):
        """Log C{failure} with its traceback and answer the temporary error."""
        log.failure("{protocol} {peer}: internal error", failure,
                    protocol=self.wording.protocolName, peer=self.peerText())
        self.metrics.error(INTERNAL_ERROR)
        if not self._closing:
            self.transport.write(self.wording.internalError(tag))

    def countCommand(self):
        """Count a command; over C{maxCommands} close. @return: still open?"""
        self._commands += 1
        if self._commands > self.settings.maxCommands:
            log.info("{protocol} {peer}: command limit reached, closing",
                     protocol=self.wording.protocolName, peer=self.peerText())
            self.closeWith(self.wording.tooManyCommands())
        return not self._closing

    def countBad(self):
        """Count a bad command; at C{maxBadCommands} close. @return: still open?"""
        self._badCommands += 1
        if self._badCommands >= self.settings.maxBadCommands:
            log.info("{protocol} {peer}: too many bad commands, closing",
                     protocol=self.wording.protocolName, peer=self.peerText())
            self.closeWith(self.wording.tooManyBadCommands())
        return not self._closing

    # -- what is offered for logging in ----------------------------------------

    #: SMTP offers no mechanism at all, CRAM-MD5 included, before TLS where
    #: plaintext auth is not allowed (Postfix's smtpd_tls_auth_only).
    challengeNeedsTLS = False

    def plaintextAllowed(self):
        """Passwords may travel in the clear: over TLS, or where the listener allows it."""
        return self.tls or self.settings.allowPlaintextAuth

    def everyUserPlain(self):
        """Whether every account has a {PLAIN} secret (CRAM-MD5 and APOP work for all)."""
        raise NotImplementedError()

    def mechanismEnabled(self, mechanism):
        """Whether the listener's config leaves SASL C{mechanism} switched on."""
        raise NotImplementedError()

    def mechanismStatus(self, mechanism):
        """The shared offer policy (L{sasl.mechanismStatus}) for this session now."""
        return sasl.mechanismStatus(mechanism, self.settings, self.tls, self.everyUserPlain,
                                    self.mechanismEnabled, self.challengeNeedsTLS)

    def offeredMechanisms(self):
        """The SASL mechanisms offered now, in L{sasl.MECHANISMS} order."""
        return sasl.offeredMechanisms(self.settings, self.tls, self.everyUserPlain,
                                      self.mechanismEnabled, self.challengeNeedsTLS)

    # -- TLS -----------------------------------------------------------------

    def startTLSOffered(self):
        """STARTTLS is offered only where it can work: a TLS context is loaded."""
        return (self.settings.tlsMode == "starttls" and not self.tls
                and self.settings.tlsContext is not None
                and self.wording.startTLSCommand not in self.settings.disabled)

    def startTLS(self, tag=None):
        """
        Answer STARTTLS: refuse it when TLS is on or not offered; else drop
        the input buffered after it (RFC 3207 4.2, RFC 2595 4, RFC 3501
        6.2.1, CVE-2011-0411: it came in plaintext and must not run inside
        the protected session), send the go-ahead, start TLS and reset the
        protocol's state (L{tlsStarted}).
        """
        if self.tls:
            return self.transport.write(self.wording.tlsAlreadyActive(tag))
        if not self.startTLSOffered():
            return self.transport.write(self.wording.tlsNotAvailable(tag))
        discarded = self.dropInput()
        if discarded:
            log.info("{protocol} {peer}: discarded {n} plaintext octets sent after "
                     "{command}", protocol=self.wording.protocolName,
                     peer=self.peerText(), n=discarded,
                     command=self.wording.startTLSCommand)
        self.transport.write(self.wording.tlsReady(tag))
        self.transport.startTLS(self.settings.tlsContext)
        self.tls = True
        self.tlsStarted()
        return None

    def tlsStarted(self):
        """TLS is up: forget what the plaintext session set (a subclass's)."""

    # -- authentication ------------------------------------------------------

    def countLogin(self, result):
        """
        A login succeeded (C{result} is C{(interface, avatar, logout)}):
        count it for the user's class report (the settings' L{IActivity}
        of L{mailstack.activity}) with this protocol and whether TLS is on.

        @return: C{result}
        """
        _, avatar, _ = result
        self.settings.activity.loggedIn(avatar.address, self.wording.protocolName, self.tls)
        return result

    def checkLogin(self, portal, credentials, authzid, interface, mechanism):
        """
        Check C{credentials} after the client address's penalty (if any) and
        the authzid rule (L{sasl.authorize}); the result is counted in the
        listener's metrics under C{mechanism} (the SASL mechanism, or the
        protocol's own login command in lower case: C{user}, C{apop},
        C{login}).

        @return: a Deferred firing with C{(interface, avatar, logout)}, or
            failing with L{LoginFailed}.
        """
        d = self.authThrottle.login(portal, self.peer, credentials, interface)
        d.addCallback(sasl.authorize, authzid, self.settings.defaultDomain)
        d.addCallback(self.reportLogin)
        d.addCallback(self.countLogin)

        def succeeded(result):
            self.metrics.authSucceeded(mechanism)
            return result

        def failed(failure):
            if failure.check(LoginFailed):
                self.metrics.authFailed(mechanism)
            return failure
        return d.addCallbacks(succeeded, failed)

    def login(self, portal, credentials, authzid, interface, loggedIn, mechanism):
        """
        L{checkLogin} with input held: C{loggedIn(avatar, logout)} on
        success, L{authFailed} on failure. If the client left while its
        credentials were checked, the avatar is logged out at once and
        nothing is answered.
        """
        def succeeded(result):
            _, avatar, logout = result
            if self._closing:
                logout()
                return None
            return loggedIn(avatar, logout)

        def failed(failure):
            if failure.check(UserDirectoryUnavailable):
                return self.authUnavailable(failure)
            failure.trap(LoginFailed)
            self.authFailed()
        d = self.checkLogin(portal, credentials, authzid, interface, mechanism)
        d.addCallbacks(succeeded, failed)
        return self.holdInput(d)

    def reportLogin(self, result):
        """
        Tell a recording transport who logged in (the live transcript becomes
        that user's: L{mailstack.protocol.recording}); C{result} passes on.
        """
        recording.loggedIn(self.transport, result[1].address)
        return result

    def keepAvatar(self, logout):
        """Remember how to let the logged-in avatar go (L{releaseAvatar})."""
        self._avatarLogout = logout

    def releaseAvatar(self):
        """
        Let the logged-in avatar go (a POP3 maildrop's lock, an IMAP
        account's watches), once: when the session ends (an engine's
        C{connectionLost}, after its own cleanup; POP3's QUIT) or starts over
        (SMTP's STARTTLS).
        """
        logout, self._avatarLogout = self._avatarLogout, None
        if logout is not None:
            logout()

    def recordAuthFailure(self):
        """
        Count a failed login for this session and the client's address, with
        one log line. @return: the L{mailstack.throttle.AuthFailureVerdict}.
        """
        verdict = self.authThrottle.record(self.peer)
        log.info("{protocol} {peer}: authentication failed ({n})",
                 protocol=self.wording.protocolName, peer=self.peerText(), n=verdict.count)
        return verdict

    def authUnavailable(self, failure, tag=None):
        """
        The user directory could not check a login (L{UserDirectoryUnavailable}
        in C{failure}): one log line and the protocol's temporary reply; the
        client may try again, and nothing counts against it.
        """
        log.warn("{protocol} {peer}: cannot check a login now: {error}",
                 protocol=self.wording.protocolName, peer=self.peerText(),
                 error=failure.getErrorMessage())
        if not self._closing:
            self.transport.write(self.wording.authUnavailable(tag))

    def authFailed(self, tag=None):
        """
        A login failed (its delay was waited out before the check): answer,
        and at the limit close after the answer.
        """
        if self.recordAuthFailure().disconnect:
            self.closeWith(self.wording.authFailedClosing(tag))
        elif not self._closing:
            self.transport.write(self.wording.authFailed(tag))


class LineSession(Session):
    """
    A L{Session} reading command lines through the shared L{LineFramer}
    (CRLF or bare LF, over-long lines reported once and dropped whole).
    A subclass handles L{lineReceived} and L{lineTooLong}.
    """

    def __init__(self, settings, wording, maxLine, clock=None):
        Session.__init__(self, settings, wording, clock)
        self.framer = LineFramer(maxLine)
        self.holdBufferLimit = 4 * maxLine

    def bufferInput(self, data):
        self.framer.feed(data)

    def pendingInput(self):
        return self.framer.pending()

    def dropInput(self):
        return self.framer.drop()

    def lineLimit(self):
        """The longest line (with its line end) taken now."""
        return self.framer.maxLine

    def takeInput(self):
        line = self.framer.nextLine(self.lineLimit())
        if line is None:
            return False
        if line is TOO_LONG:
            self.lineTooLong()
        else:
            self.lineReceived(line)
        return True

    def lineReceived(self, line):
        """Handle one line (without its line end)."""
        raise NotImplementedError()

    def lineTooLong(self):
        """A line over L{lineLimit} arrived (it is dropped whole)."""
        raise NotImplementedError()
