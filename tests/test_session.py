"""
Tests for mailstack.protocol.session: the session core the engines share
(hold-input, flow control, guarded handlers, counters, STARTTLS, auth failure),
driven through a toy line protocol on a StringTransport.
"""

from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface import Interface, implementer
from zope.interface.verify import verifyObject

from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.protocol.session import ISessionWording, LineSession
from mailstack.settings import ListenerSettings
from tests.fakes import FakeTLSTransport


@implementer(ISessionWording)
class ToyWording:
    """Short fixed words, so each test can tell which reply was sent."""

    protocolName = "toy"
    startTLSCommand = "STARTTLS"

    def internalError(self, tag):
        return b"ERR internal\r\n"

    def tooManyBadCommands(self):
        return b"BYE bad\r\n"

    def tooManyCommands(self):
        return b"BYE commands\r\n"

    def timedOut(self):
        return b"BYE timeout\r\n"

    def tlsReady(self, tag):
        return b"OK tls\r\n"

    def tlsAlreadyActive(self, tag):
        return b"ERR tls active\r\n"

    def tlsNotAvailable(self, tag):
        return b"ERR no tls\r\n"

    def authFailed(self, tag):
        return b"ERR auth\r\n"

    def authFailedClosing(self, tag):
        return b"ERR auth\r\nBYE auth\r\n"

    def authUnavailable(self, tag):
        return b"ERR auth later\r\n"


class ToySession(LineSession):
    """
    Answers each line with C{ok <line>}; C{wait} holds input until the
    test fires the Deferred it records, C{boom} raises, C{bad} counts a
    bad command, C{STARTTLS} starts TLS.
    """

    def __init__(self, settings, clock):
        LineSession.__init__(self, settings, ToyWording(), 64, clock)
        self.waiting = []
        self.resets = 0

    def lineReceived(self, line):
        if not self.countCommand():
            return
        self.guarded(self.handle, line)

    def handle(self, line):
        if line == b"wait":
            d = defer.Deferred()
            d.addCallback(lambda _: self.transport.write(b"done\r\n"))
            self.waiting.append(d)
            self.holdInput(d)
        elif line == b"boom":
            raise RuntimeError("a bug")
        elif line == b"bad":
            if self.countBad():
                self.transport.write(b"ERR bad\r\n")
        elif line == b"STARTTLS":
            self.startTLS()
        else:
            self.transport.write(b"ok " + line + b"\r\n")

    def lineTooLong(self):
        if self.countBad():
            self.transport.write(b"ERR long\r\n")

    def tlsStarted(self):
        self.resets += 1


class SessionTests(unittest.TestCase):
    """
    The shared semantics, once, on a toy protocol.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.server = self.session()

    def session(self, **overrides):
        settings = dict(hostname="lab.test", maxBadCommands=3, maxCommands=10)
        settings.update(overrides)
        server = ToySession(ListenerSettings(**settings), self.clock)
        self.transport = FakeTLSTransport()
        server.makeConnection(self.transport)
        self.addCleanup(server.connectionLost, None)
        return server

    def send(self, data):
        self.transport.clear()
        self.server.dataReceived(data)
        return self.transport.value()

    def test_wording(self):
        """The toy wording provides the interface the core speaks through."""
        self.assertTrue(verifyObject(ISessionWording, ToyWording()))

    def test_peerText(self):
        """Log lines show the client as host:port."""
        self.assertEqual(self.server.peerText(), "192.168.1.1:54321")

    def test_holdKeepsOrder(self):
        """Lines pipelined behind a held command run after its reply, in order."""
        self.assertEqual(self.send(b"wait\r\na\r\nb\r\n"), b"")
        self.transport.clear()
        self.server.waiting[0].callback(None)
        self.assertEqual(self.transport.value(), b"done\r\nok a\r\nok b\r\n")

    def test_holdsNest(self):
        """With two holds, input resumes only when both have fired, in either order."""
        self.send(b"wait\r\n")
        outer = self.server.waiting[0]
        inner = defer.Deferred()
        self.server.holdInput(inner)
        self.send(b"a\r\n")
        outer.callback(None)
        self.assertEqual(self.transport.value(), b"done\r\n")
        self.assertTrue(self.server.inputHeld())
        self.transport.clear()
        inner.callback(None)
        self.assertEqual(self.transport.value(), b"ok a\r\n")
        self.assertFalse(self.server.inputHeld())

    def test_holdReleasedAtOnce(self):
        """A hold on a Deferred that has already fired lets the next line run."""
        self.server.holdInput(defer.succeed(None))
        self.assertEqual(self.send(b"a\r\n"), b"ok a\r\n")

    def test_pausedWhileHeld(self):
        """Held with more than the limit buffered, the transport pauses; released, it resumes."""
        self.server = self.session(maxCommands=1000)
        self.send(b"wait\r\n")
        self.send(b"x\r\n" * 20)
        self.assertEqual(self.transport.producerState, "producing")
        self.send(b"x\r\n" * 80)
        self.assertEqual(self.transport.producerState, "paused")
        self.transport.clear()
        self.server.waiting[0].callback(None)
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.transport.value(), b"done\r\n" + b"ok x\r\n" * 100)

    def test_readsWhileHeld(self):
        """A held command that reads its own lines gets them; the pipelined rest waits for its end."""
        self.server.readsWhileHeld = lambda: bool(self.server.waiting) and self.server.reading
        self.server.reading = True
        original = self.server.handle

        def handle(line):
            if line == b"done":
                self.server.reading = False
                return self.server.waiting[0].callback(None)
            return original(line)
        self.server.handle = handle
        self.send(b"wait\r\n")
        self.assertEqual(self.send(b"a\r\ndone\r\nb\r\n"), b"ok a\r\ndone\r\nok b\r\n")

    def test_holdFailure(self):
        """A held Deferred that fails: the internal-error reply, logged, then the next line."""
        self.send(b"wait\r\na\r\n")
        self.transport.clear()
        self.server.waiting[0].errback(RuntimeError("a fault"))
        self.assertEqual(self.transport.value(), b"ERR internal\r\nok a\r\n")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_guardedHandler(self):
        """A handler that raises: the internal-error reply, one logged traceback, the session goes on."""
        self.assertEqual(self.send(b"boom\r\na\r\n"), b"ERR internal\r\nok a\r\n")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(self.transport.disconnecting)

    def test_badCommandLimit(self):
        """The last bad command allowed gets the closing reply alone, and nothing runs after it."""
        out = self.send(b"bad\r\n" + b"x" * 100 + b"\r\nbad\r\na\r\n")
        self.assertEqual(out, b"ERR bad\r\nERR long\r\nBYE bad\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_commandLimit(self):
        """A command over the limit gets the closing reply instead of running."""
        out = self.send(b"a\r\n" * 12)
        self.assertEqual(out, b"ok a\r\n" * 10 + b"BYE commands\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_timeout(self):
        """The idle timeout closes with the protocol's words."""
        self.server.setTimeout(30)
        self.clock.advance(31)
        self.assertEqual(self.transport.value(), b"BYE timeout\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_startTLSDropsPlaintext(self):
        """Lines pipelined after STARTTLS are dropped, TLS starts after the go-ahead, state resets."""
        self.server = self.session(tlsMode="starttls", tlsContext=object())
        out = self.send(b"STARTTLS\r\nsmuggled\r\n")
        self.assertEqual(out, b"OK tls\r\n")
        self.assertEqual(self.transport.tlsStarted, b"OK tls\r\n")
        self.assertTrue(self.server.tls)
        self.assertEqual(self.server.resets, 1)
        self.assertEqual(self.send(b"a\r\n"), b"ok a\r\n")
        self.assertEqual(self.send(b"STARTTLS\r\n"), b"ERR tls active\r\n")

    def test_startTLSNotOffered(self):
        """Without a TLS context, or disabled, STARTTLS is refused and nothing is dropped."""
        self.assertEqual(self.send(b"STARTTLS\r\na\r\n"), b"ERR no tls\r\nok a\r\n")
        self.server = self.session(tlsMode="starttls", tlsContext=object(),
                                   disabled=frozenset({"STARTTLS"}))
        self.assertEqual(self.send(b"STARTTLS\r\n"), b"ERR no tls\r\n")
        self.assertIsNone(self.transport.tlsStarted)

    def test_authFailed(self):
        """A failed login is answered; at the limit the answer is followed by the close."""
        self.server = self.session(authFailuresDelay=100, authFailuresDisconnect=2)
        self.server.authFailed()
        self.assertEqual(self.transport.value(), b"ERR auth\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.transport.clear()
        self.server.authFailed()
        self.assertEqual(self.transport.value(), b"ERR auth\r\nBYE auth\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_nothingAfterClose(self):
        """Input after the close is ignored."""
        self.send(b"bad\r\nbad\r\nbad\r\n")
        self.assertEqual(self.send(b"a\r\n"), b"")


class SlowPortal:
    """A portal whose check answers when the test fires C{checks[i]}."""

    def __init__(self):
        self.checks = []

    def login(self, credentials, mind, *interfaces):
        d = defer.Deferred()
        self.checks.append(d)
        return d


class Avatar:
    address = "alice@lab.test"


class LoginTests(unittest.TestCase):
    """
    Session.login: the check with input held, its answers, a client that left.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.portal = SlowPortal()
        self.server = ToySession(ListenerSettings(hostname="lab.test"), self.clock)
        self.transport = FakeTLSTransport()
        self.server.makeConnection(self.transport)
        self.loggedIn = []
        self.loggedOut = []

    def login(self):
        self.server.login(self.portal, object(), b"", Interface,
                          lambda avatar, logout: self.loggedIn.append(avatar), "PLAIN")

    def succeed(self):
        self.portal.checks[-1].callback((Interface, Avatar(), lambda: self.loggedOut.append(1)))

    def test_loginHoldsInput(self):
        """Lines sent while the credentials are checked run after the outcome."""
        self.login()
        self.server.dataReceived(b"a\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.succeed()
        self.assertEqual(len(self.loggedIn), 1)
        self.assertEqual(self.transport.value(), b"ok a\r\n")

    def test_directoryUnavailable(self):
        """A login the user directory cannot check now gets the temporary reply, is not
        counted as a failure, and the session reads on."""
        self.server = ToySession(
            ListenerSettings(hostname="lab.test", authFailuresDisconnect=1), self.clock)
        self.server.makeConnection(self.transport)
        self.login()
        self.server.dataReceived(b"a\r\n")
        self.portal.checks[-1].errback(UserDirectoryUnavailable("database is locked"))
        self.assertEqual(self.transport.value(), b"ERR auth later\r\nok a\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.loggedIn, [])

    def test_clientLeftDuringCheck(self):
        """A client gone while its password was checked: its avatar is logged out, nothing sent."""
        self.login()
        self.server.connectionLost(None)
        self.succeed()
        self.assertEqual(self.loggedIn, [])
        self.assertEqual(self.loggedOut, [1])
        self.assertEqual(self.transport.value(), b"")
