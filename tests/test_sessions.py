"""
Tests for L{mailstack.sessions}: the session counter and the per-IP limit.
"""

from twisted.internet import defer, endpoints, protocol, reactor
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ISSLTransport, ITLSTransport, ITransport
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.trial import unittest

from mailstack.sessions import CommandLineDeadline, LimitingFactory, SessionCounter, clientIP
from tests.fakes import TLSStringTransport

REFUSAL = b"421 4.7.0 Too many connections from your address\r\n"


class SessionCounterTests(unittest.TestCase):
    """
    L{SessionCounter} counts open sessions per protocol and IP, and totals.
    """

    def setUp(self):
        self.counter = SessionCounter()
        self.counter.open("smtp", "192.0.2.1")
        self.counter.open("smtp", "192.0.2.1")
        self.counter.open("smtp", "192.0.2.2")
        self.counter.open("imap", "192.0.2.1")
        self.counter.open("imap", None)

    def test_count(self):
        """Counts by protocol, by IP, by both, and overall."""
        c = self.counter
        self.assertEqual(c.count(), 5)
        self.assertEqual(c.count("smtp"), 3)
        self.assertEqual(c.count("imap"), 2)
        self.assertEqual(c.count(ip="192.0.2.1"), 3)
        self.assertEqual(c.count("smtp", "192.0.2.1"), 2)
        self.assertEqual(c.count("pop3"), 0)
        self.assertEqual(c.count("pop3", "192.0.2.1"), 0)

    def test_close(self):
        """Closing decrements open counts but not totals."""
        c = self.counter
        c.close("smtp", "192.0.2.1")
        c.close("imap", None)
        self.assertEqual(c.count("smtp", "192.0.2.1"), 1)
        self.assertEqual(c.count("imap"), 1)
        self.assertEqual(c.total, {"smtp": 3, "imap": 2})

    def test_snapshot(self):
        """The snapshot is plain data and empty entries disappear."""
        c = self.counter
        c.close("smtp", "192.0.2.2")
        c.refuse("smtp", "192.0.2.1")
        self.assertEqual(c.snapshot(), {
            "open": {"smtp": 2, "imap": 2},
            "perIP": {"smtp": {"192.0.2.1": 2}, "imap": {"192.0.2.1": 1}},
            "total": {"smtp": 3, "imap": 2},
            "refused": {"smtp": 1},
        })

    def test_clientIP(self):
        """IPv4-mapped IPv6 addresses count as IPv4; UNIX peers have no IP."""
        self.assertEqual(clientIP(IPv6Address("TCP", "::ffff:192.0.2.1", 1)), "192.0.2.1")
        self.assertEqual(clientIP(IPv6Address("TCP", "2001:db8::1", 1)), "2001:db8::1")
        self.assertEqual(clientIP(IPv4Address("TCP", "192.0.2.1", 1)), "192.0.2.1")
        self.assertIsNone(clientIP(UNIXAddress(None)))


class Recorder(protocol.Protocol):
    """
    Remembers what happens to it.
    """

    def __init__(self):
        self.received = b""
        self.lost = None
        self.made = False

    def connectionMade(self):
        self.made = True

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost = reason


class RecorderFactory(protocol.Factory):
    def __init__(self):
        self.built = []

    def buildProtocol(self, addr):
        p = Recorder()
        p.factory = self
        self.built.append(p)
        return p


class LimitingFactoryTests(unittest.TestCase):
    """
    L{LimitingFactory} counts sessions and refuses a busy client IP.
    """

    def setUp(self):
        self.counter = SessionCounter()
        self.inner = RecorderFactory()
        self.factory = LimitingFactory(self.inner, self.counter, "smtp", 2, REFUSAL)

    def connect(self, host="192.0.2.1", port=4000, factory=None, transport=None):
        factory = factory or self.factory
        if host is None:
            peer = UNIXAddress(None)
        else:
            peer = IPv4Address("TCP", host, port)
        if transport is None:
            transport = StringTransport(peerAddress=peer,
                                        hostAddress=IPv4Address("TCP", "127.0.0.1", 25))
        p = factory.buildProtocol(peer)
        p.makeConnection(transport)
        return p, transport

    def test_counts(self):
        """An open session is counted until its connection is lost."""
        p, _ = self.connect()
        self.assertEqual(self.counter.count("smtp", "192.0.2.1"), 1)
        p.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.counter.count("smtp", "192.0.2.1"), 0)
        self.assertEqual(self.counter.total, {"smtp": 1})
        self.assertIsNotNone(self.inner.built[0].lost)

    def test_refused(self):
        """Over the limit the client gets the refusal, is closed, and the
        protocol is never built."""
        self.connect(port=1)
        self.connect(port=2)
        p, transport = self.connect(port=3)
        self.assertEqual(transport.value(), REFUSAL)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.inner.built), 2)
        self.assertEqual(self.counter.count("smtp", "192.0.2.1"), 2)
        self.assertEqual(self.counter.refused, {"smtp": 1})
        p.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.counter.count("smtp", "192.0.2.1"), 2)

    def test_refusalLogged(self):
        """A refusal is logged with the IP and the limit."""
        from twisted.logger import globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        for port in (1, 2, 3):
            self.connect(port=port)
        refusals = [e for e in events if e.get("ip") == "192.0.2.1"]
        self.assertEqual(len(refusals), 1)
        self.assertEqual(refusals[0]["limit"], 2)

    def test_freedSlot(self):
        """When a session ends the IP may connect again."""
        first, _ = self.connect(port=1)
        self.connect(port=2)
        first.connectionLost(Failure(ConnectionDone()))
        _, transport = self.connect(port=3)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(len(self.inner.built), 3)

    def test_otherIP(self):
        """Other client IPs are not affected."""
        self.connect(port=1)
        self.connect(port=2)
        _, transport = self.connect(host="192.0.2.2")
        self.assertFalse(transport.disconnecting)

    def test_perProtocol(self):
        """The limit is per protocol name: a busy SMTP client may use IMAP."""
        imap = LimitingFactory(RecorderFactory(), self.counter, "imap", 2,
                               b"* BYE Too many connections\r\n")
        self.connect(port=1)
        self.connect(port=2)
        _, transport = self.connect(factory=imap)
        self.assertFalse(transport.disconnecting)
        # a second listener of the same protocol shares the count
        otherSMTP = LimitingFactory(RecorderFactory(), self.counter, "smtp", 2, REFUSAL)
        _, transport = self.connect(factory=otherSMTP)
        self.assertEqual(transport.value(), REFUSAL)

    def test_unlimited(self):
        """maxPerIP 0 means no limit."""
        factory = LimitingFactory(self.inner, self.counter, "smtp", 0, REFUSAL)
        for port in range(10):
            _, transport = self.connect(port=port, factory=factory)
            self.assertFalse(transport.disconnecting)
        self.assertEqual(self.counter.count("smtp"), 10)

    def test_unixNotLimited(self):
        """UNIX socket peers have no IP and are never refused."""
        for _ in range(5):
            _, transport = self.connect(host=None)
            self.assertFalse(transport.disconnecting)
        self.assertEqual(self.counter.count("smtp"), 5)

    def test_innerRefuses(self):
        """If the wrapped factory builds nothing, neither does the wrapper."""
        inner = protocol.Factory()
        inner.buildProtocol = lambda addr: None
        factory = LimitingFactory(inner, self.counter, "smtp", 2, REFUSAL)
        self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1)))

    def test_transparent(self):
        """The inner protocol's transport forwards writes, addresses and
        interfaces."""
        p, transport = self.connect()
        inner = self.inner.built[0]
        self.assertTrue(inner.made)
        self.assertEqual(inner.transport.getPeer(), IPv4Address("TCP", "192.0.2.1", 4000))
        self.assertEqual(inner.transport.getHost(), IPv4Address("TCP", "127.0.0.1", 25))
        self.assertTrue(ITransport.providedBy(inner.transport))
        inner.transport.write(b"220 hi\r\n")
        inner.transport.writeSequence([b"a", b"b"])
        self.assertEqual(transport.value(), b"220 hi\r\nab")
        p.dataReceived(b"EHLO x\r\n")
        self.assertEqual(inner.received, b"EHLO x\r\n")

    def test_startTLS(self):
        """startTLS reaches the real transport and the inner protocol then sees
        ISSLTransport."""
        transport = TLSStringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 1))
        self.connect(transport=transport)
        inner = self.inner.built[0]
        self.assertTrue(ITLSTransport.providedBy(inner.transport))
        self.assertFalse(ISSLTransport.providedBy(inner.transport))
        context = object()
        inner.transport.startTLS(context)
        self.assertIs(transport.tlsContext, context)
        self.assertTrue(ISSLTransport.providedBy(inner.transport))


class HoldingProtocol(LineReceiver):
    """
    Greets and keeps the connection open until the client quits.
    """

    def connectionMade(self):
        self.sendLine(b"220 ready")

    def lineReceived(self, line):
        self.sendLine(b"221 bye")
        self.transport.loseConnection()


class Client(LineReceiver):
    """
    Collects the server's lines; C{done} fires with them when the connection
    ends, C{greeted} with the first one.
    """

    def __init__(self):
        self.lines = []
        self.done = defer.Deferred()
        self.greeted = defer.Deferred()

    def lineReceived(self, line):
        self.lines.append(line)
        if self.greeted is not None:
            d, self.greeted = self.greeted, None
            d.callback(line)

    def connectionLost(self, reason):
        self.done.callback(self.lines)


class LoopbackLimitTests(unittest.TestCase):
    """
    The limit on real TCP connections.
    """

    @defer.inlineCallbacks
    def test_secondConnectionRefused(self):
        """With a limit of one, a second connection from 127.0.0.1 gets the
        refusal line and is closed; the first is served normally."""
        counter = SessionCounter()
        factory = LimitingFactory(protocol.Factory.forProtocol(HoldingProtocol),
                                  counter, "smtp", 1, REFUSAL)
        port = yield endpoints.TCP4ServerEndpoint(
            reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        client = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)

        first = yield endpoints.connectProtocol(client, Client())
        greeting = yield first.greeted
        self.assertEqual(greeting, b"220 ready")
        self.assertEqual(counter.count("smtp", "127.0.0.1"), 1)

        second = yield endpoints.connectProtocol(client, Client())
        lines = yield second.done
        self.assertEqual(lines, [REFUSAL.rstrip(b"\r\n")])

        first.sendLine(b"QUIT")
        lines = yield first.done
        self.assertEqual(lines, [b"220 ready", b"221 bye"])
        self.assertEqual(counter.total, {"smtp": 1})
        self.assertEqual(counter.refused, {"smtp": 1})

    @defer.inlineCallbacks
    def test_noDelay(self):
        """Accepted TCP connections have Nagle's algorithm off (replies go out whole, at once)."""
        seen = defer.Deferred()

        class Probe(protocol.Protocol):
            def connectionMade(self):
                seen.callback(self.transport.getTcpNoDelay())
                self.transport.loseConnection()
        factory = LimitingFactory(protocol.Factory.forProtocol(Probe),
                                  SessionCounter(), "pop3", 0, REFUSAL)
        port = yield endpoints.TCP4ServerEndpoint(
            reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        client = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        yield endpoints.connectProtocol(client, protocol.Protocol())
        self.assertTrue((yield seen))


class MaxConnectionsTests(unittest.TestCase):
    """
    A listener's C{max_connections}: open connections from all addresses
    together, over which a client gets the refusal line.
    """

    def setUp(self):
        self.counter = SessionCounter()
        self.inner = RecorderFactory()
        self.factory = LimitingFactory(self.inner, self.counter, "imap", 20, REFUSAL,
                                       maxConnections=3)

    def connect(self, host):
        peer = IPv4Address("TCP", host, 4000)
        transport = StringTransport(peerAddress=peer)
        p = self.factory.buildProtocol(peer)
        p.makeConnection(transport)
        return p, transport

    def test_capOverAllAddresses(self):
        """Three addresses fill a cap of 3; a fourth address gets the refusal and is closed."""
        for i in range(3):
            self.connect("192.0.2.%d" % (i,))
        p, transport = self.connect("198.51.100.1")
        self.assertEqual(transport.value(), REFUSAL)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.inner.built), 3)
        self.assertEqual(self.counter.refused, {"imap": 1})
        p.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.counter.count("imap"), 3)

    def test_freedSlot(self):
        """A connection that ends makes room for the next client."""
        first, _ = self.connect("192.0.2.1")
        self.connect("192.0.2.2")
        self.connect("192.0.2.3")
        first.connectionLost(Failure(ConnectionDone()))
        _, transport = self.connect("198.51.100.1")
        self.assertEqual(transport.value(), b"")
        self.assertEqual(len(self.inner.built), 4)

    def test_refusalLogged(self):
        """A refusal by the cap is logged with the cap."""
        from tests.helpers import LogWatch
        watch = LogWatch(self)
        for i in range(4):
            self.connect("192.0.2.%d" % (i,))
        lines = [t for t in watch.texts() if "max_connections" in t]
        self.assertEqual(len(lines), 1)
        self.assertIn("3", lines[0])

    def test_zeroIsUnlimited(self):
        """max_connections = 0 sets no cap."""
        self.factory = LimitingFactory(self.inner, self.counter, "imap", 0, REFUSAL)
        for i in range(50):
            _, transport = self.connect("192.0.2.%d" % (i,))
        self.assertEqual(transport.value(), b"")


class CommandLineDeadlineTests(unittest.TestCase):
    """
    L{CommandLineDeadline} bounds the time from a command line's first octet
    to its line feed, however the octets trickle in.
    """

    def setUp(self):
        from twisted.internet import task
        self.clock = task.Clock()
        self.expired = []
        self.reading = True
        self.deadline = CommandLineDeadline(self.clock, 60, lambda: self.expired.append(
            self.clock.seconds()), lambda: self.reading)

    def trickle(self, data, every):
        for octet in data:
            self.deadline.received(bytes([octet]))
            self.clock.advance(every)

    def test_trickleCutOff(self):
        """One octet every 5 s: the deadline passes 60 s after the first octet."""
        self.trickle(b"x" * 20, 5)
        self.assertEqual(self.expired, [60])

    def test_linesInTime(self):
        """Lines finished in time (even slowly typed ones) never expire."""
        for _ in range(10):
            self.trickle(b"NOOP\r\n", 9)
        self.clock.advance(1000)
        self.assertEqual(self.expired, [])

    def test_newLineInSameChunk(self):
        """A line that starts in the chunk ending the previous one gets its full time."""
        self.deadline.received(b"NO")
        self.clock.advance(50)
        self.deadline.received(b"OP\r\nNO")
        self.clock.advance(59)
        self.assertEqual(self.expired, [])
        self.clock.advance(1)
        self.assertEqual(self.expired, [110])

    def test_notReadingLines(self):
        """Input that is not a command line (DATA, a literal) is not cut off."""
        self.reading = False
        self.trickle(b"x" * 100, 5)
        self.assertEqual(self.expired, [])
        self.reading = True  # back to commands, a line still unfinished
        self.clock.advance(60)
        self.assertEqual(len(self.expired), 1)

    def test_cancel(self):
        """Cancelled (connection gone), nothing fires and no call is left."""
        self.deadline.received(b"x")
        self.deadline.cancel()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.deadline.cancel()
