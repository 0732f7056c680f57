"""
Tests for L{mailstack.transcript}: the transcript files and a
real STARTTLS session through the same wrappers service.py uses.
"""

import datetime
import os
import re

from twisted.internet import defer, endpoints, protocol, reactor, ssl, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import directlyProvides

from mailstack import tls
from mailstack.sessions import LimitingFactory, SessionCounter
from mailstack.transcript import TranscriptFactory, displayLine
from tests.fakes import TLSStringTransport

# 2023-11-14 22:13:20 UTC plus half a second
NOW = 1700000000.5
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def localTime(seconds):
    return datetime.datetime.fromtimestamp(seconds).astimezone()


class EchoProtocol(LineReceiver):
    """
    Greets, answers each line with C{250 <line>}, closes on QUIT.
    """

    def connectionMade(self):
        self.sendLine(b"220 ready")

    def lineReceived(self, line):
        if line == b"QUIT":
            self.sendLine(b"221 bye")
            self.transport.loseConnection()
        else:
            self.sendLine(b"250 " + line)


class TranscriptFileTests(unittest.TestCase):
    """
    What L{TranscriptFactory} writes, and where.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(NOW)
        self.directory = self.mktemp()
        self.factory = TranscriptFactory(
            protocol.Factory.forProtocol(EchoProtocol), self.directory, "smtp",
            clock=self.clock)

    def connect(self, host="192.0.2.1", port=4000, transport=None, factory=None):
        factory = factory or self.factory
        if ":" in host:
            peer = IPv6Address("TCP", host, port)
        else:
            peer = IPv4Address("TCP", host, port)
        if transport is None:
            transport = StringTransport(peerAddress=peer,
                                        hostAddress=IPv4Address("TCP", "127.0.0.1", 25))
        p = factory.buildProtocol(peer)
        p.makeConnection(transport)
        return p, transport

    def close(self, p):
        p.connectionLost(Failure(ConnectionDone()))

    def read(self, p):
        with open(p.transcript.path, encoding="utf-8") as f:
            return f.read()

    def lines(self, text):
        """The lines of a transcript without their timestamps."""
        return [re.sub("^" + TIMESTAMP + " ", "", line) for line in text.splitlines()]

    def test_layout(self):
        """Files go to <dir>/<protocol>/<date>/<HHMMSS>-<ip>-<port>-<n>.log."""
        first, _ = self.connect()
        second, _ = self.connect(host="2001:db8::1", port=5)
        when = localTime(NOW)
        expected = os.path.join(self.directory, "smtp", when.strftime("%Y-%m-%d"))
        self.assertEqual(first.transcript.path, os.path.join(
            expected, when.strftime("%H%M%S") + "-192.0.2.1-4000-1.log"))
        self.assertEqual(os.path.basename(second.transcript.path),
                         when.strftime("%H%M%S") + "-2001_db8__1-5-2.log")

    def test_session(self):
        """Heading, timestamped C:/S: lines and the close are recorded."""
        p, transport = self.connect()
        p.dataReceived(b"EHLO x\r\n")
        p.dataReceived(b"QUIT\r\n")
        path = p.transcript.path
        self.close(p)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(transport.value(), b"220 ready\r\n250 EHLO x\r\n221 bye\r\n")
        stamp = localTime(NOW).isoformat(timespec="milliseconds")
        self.assertEqual(text.splitlines(), [
            "# smtp session from 192.0.2.1:4000 to 127.0.0.1:25",
            stamp + " S: 220 ready",
            stamp + " C: EHLO x",
            stamp + " S: 250 EHLO x",
            stamp + " C: QUIT",
            stamp + " S: 221 bye",
            stamp + " # closed: Connection was closed cleanly. (server hung up)",
        ])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_partialLines(self):
        """Lines are joined across chunks; a partial line is written at close."""
        p, _ = self.connect()
        p.dataReceived(b"EH")
        p.dataReceived(b"LO x\r")
        p.dataReceived(b"\nunfinish")
        p.dataReceived(b"ed")
        self.close(p)
        lines = self.lines(self.read(p))
        self.assertEqual(lines[2:5], ["C: EHLO x", "S: 250 EHLO x", "C: unfinished"])
        self.assertEqual(lines[-1], "# closed: Connection was closed cleanly.")

    def test_escapes(self):
        """Control characters and bad UTF-8 are shown as \\xNN; tabs, UTF-8 and
        bare LF endings are fine; CR only goes at the end of a line."""
        p, _ = self.connect()
        p.dataReceived(b"a\x00b\xffc\td \xc3\xa9\nx\ry\r\r\n")
        self.close(p)
        lines = self.lines(self.read(p))
        self.assertIn("C: a\\x00b\\xffc\td \u00e9", lines)
        self.assertIn("C: x\\x0dy\\x0d", lines)

    def test_displayLine(self):
        """displayLine escapes DEL and C0 controls."""
        self.assertEqual(displayLine(b"\x1b[1m\x7f"), "\\x1b[1m\\x7f")

    def test_longLine(self):
        """A line over 4 KiB is cut with a note of what was left out."""
        self.factory.wrappedFactory = protocol.Factory.forProtocol(protocol.Protocol)
        p, _ = self.connect()
        p.dataReceived(b"A" * 3000)
        p.dataReceived(b"B" * 2000 + b"\r\n")
        p.dataReceived(b"short\r\n")
        self.close(p)
        lines = self.lines(self.read(p))
        self.assertEqual(lines[1], "C: " + "A" * 3000 + "B" * 1096 + " [... 904 bytes]")
        self.assertEqual(lines[2], "C: short")

    def test_sessionCap(self):
        """Past the per-session cap only one truncation note (and the close)
        are written."""
        self.factory.maxSessionBytes = 1000
        p, _ = self.connect()
        for i in range(100):
            p.dataReceived(b"NOOP %d\r\n" % (i,))
        self.close(p)
        text = self.read(p)
        self.assertEqual(text.count("# transcript truncated"), 1)
        self.assertLess(len(text), 1200)
        self.assertTrue(text.splitlines()[-1].endswith("# closed: Connection was closed cleanly."))

    def test_sessionCapForgetsSecrets(self):
        """Past the per-session cap the protocol's secret marks are not kept
        (nothing would apply or forget them for the rest of the session)."""
        self.factory.maxSessionBytes = 1000
        p, _ = self.connect()
        for i in range(100):
            p.dataReceived(b"NOOP %d\r\n" % (i,))
        for i in range(100):
            p.dataReceived(b"secret %d\r\n" % (i,))
            p.secretLine()
        self.assertEqual(p.transcript._client._secret, [])
        self.close(p)

    def test_bufferedWrites(self):
        """Lines are written through a buffer flushed within a second."""
        p, _ = self.connect()
        self.assertEqual(os.path.getsize(p.transcript.path), 0)
        self.clock.advance(1)
        self.assertIn("S: 220 ready", self.read(p))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        p.dataReceived(b"NOOP\r\n")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.close(p)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_privateModes(self):
        """Under umask 022 transcript folders are 0700 and transcripts 0600."""
        from tests.test_files import modes, useUmask
        useUmask(self)
        p, _ = self.connect()
        p.dataReceived(b"EHLO x\r\n")
        self.close(p)
        found = modes(self.directory)
        self.assertEqual(len(found), 4)
        self.assertEqual({path: mode for path, mode in found.items()
                          if mode != (0o600 if path.endswith(".log") else 0o700)}, {})

    def test_unwritable(self):
        """If no transcript can be written the session still works."""
        with open(self.directory, "w") as f:
            f.write("a file, not a directory")
        p, transport = self.connect()
        self.assertIsNone(p.transcript)
        p.dataReceived(b"EHLO x\r\n")
        self.assertEqual(transport.value(), b"220 ready\r\n250 EHLO x\r\n")
        self.close(p)

    def test_implicitTLS(self):
        """A transport that is TLS from the start is noted."""
        transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 1))
        directlyProvides(transport, ISSLTransport)
        p, _ = self.connect(transport=transport)
        self.close(p)
        self.assertEqual(self.lines(self.read(p))[1], "# TLS (implicit)")

    def test_startTLS(self):
        """The protocol's startTLS is noted, reaches the transport, and the
        protocol then sees ISSLTransport."""
        transport = TLSStringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 1))
        p, _ = self.connect(transport=transport)
        inner = p.wrappedProtocol
        self.assertFalse(ISSLTransport.providedBy(inner.transport))
        inner.transport.startTLS(object())
        self.assertTrue(ISSLTransport.providedBy(inner.transport))
        p.dataReceived(b"EHLO y\r\n")
        self.close(p)
        lines = self.lines(self.read(p))
        self.assertEqual(lines[1:5], ["S: 220 ready", "# TLS started", "C: EHLO y",
                                      "S: 250 EHLO y"])

    def test_clientClose(self):
        """A close the server did not ask for is recorded with its reason."""
        p, _ = self.connect()
        p.connectionLost(Failure(ConnectionDone("peer went away")))
        self.assertEqual(self.lines(self.read(p))[-1],
                         "# closed: Connection was closed cleanly: peer went away.")


class ToyServer(LineReceiver):
    """
    "220 ready"; STARTTLS -> "220 go" + TLS; other lines -> "250 tls=<bool>
    <description>"; QUIT -> "221 bye" and close.
    """

    def connectionMade(self):
        self.sendLine(b"220 ready")

    def lineReceived(self, line):
        if line == b"STARTTLS":
            self.sendLine(b"220 go")
            self.transport.startTLS(self.factory.context)
        elif line == b"QUIT":
            self.sendLine(b"221 bye")
            self.transport.loseConnection()
        else:
            secure = ISSLTransport.providedBy(self.transport)
            self.factory.secure.append(secure)
            self.sendLine(b"250 tls=%s %s" % (
                str(secure).encode(), str(tls.describeConnection(self.transport)).encode()))

    def connectionLost(self, reason):
        self.factory.lost.callback(None)


class ToyClient(LineReceiver):
    """
    Talks to L{ToyServer}: STARTTLS first unless already on TLS.
    """

    def __init__(self, clientContext, startTLS):
        self.clientContext = clientContext
        self.startTLS = startTLS
        self.lines = []
        self.done = defer.Deferred()

    def lineReceived(self, line):
        self.lines.append(line)
        if line == b"220 ready":
            if self.startTLS:
                self.sendLine(b"STARTTLS")
            else:
                self.sendLine(b"HELLO secure")
        elif line == b"220 go":
            self.transport.startTLS(self.clientContext)
            self.sendLine(b"HELLO secure")
        elif line.startswith(b"250 "):
            self.sendLine(b"QUIT")

    def connectionLost(self, reason):
        self.done.callback(self.lines)


class LoopbackTranscriptTests(unittest.TestCase):
    """
    Real TLS sessions through LimitingFactory(TranscriptFactory(protocol)), the
    order service.py uses.
    """

    def setUp(self):
        directory = self.mktemp()
        self.certPath = os.path.join(directory, "cert.pem")
        keyPath = os.path.join(directory, "key.pem")
        tls.ensureCertificate(self.certPath, keyPath, ["localhost"])
        self.serverContext = tls.serverContextFactory(self.certPath, keyPath)
        with open(self.certPath, "rb") as f:
            self.clientContext = ssl.optionsForClientTLS(
                "localhost", trustRoot=ssl.Certificate.loadPEM(f.read()))
        self.transcripts = os.path.join(directory, "transcripts")

    @defer.inlineCallbacks
    def session(self, implicit):
        inner = protocol.Factory.forProtocol(ToyServer)
        inner.context = self.serverContext
        inner.secure = []
        inner.lost = defer.Deferred()
        factory = LimitingFactory(
            TranscriptFactory(inner, self.transcripts, "toy"),
            SessionCounter(), "toy", 5, b"421 busy\r\n")
        if implicit:
            factory = TLSMemoryBIOFactory(self.serverContext, False, factory)
        port = yield endpoints.TCP4ServerEndpoint(
            reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        client = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        if implicit:
            client = endpoints.wrapClientTLS(self.clientContext, client)
        toy = yield endpoints.connectProtocol(client, ToyClient(self.clientContext,
                                                                not implicit))
        lines = yield toy.done
        yield inner.lost
        (day,) = os.listdir(os.path.join(self.transcripts, "toy"))
        (name,) = os.listdir(os.path.join(self.transcripts, "toy", day))
        with open(os.path.join(self.transcripts, "toy", day, name), encoding="utf-8") as f:
            text = f.read()
        recorded = [re.sub("^" + TIMESTAMP + " ", "", line) for line in text.splitlines()]
        return lines, recorded, inner.secure

    @defer.inlineCallbacks
    def test_startTLS(self):
        """STARTTLS is marked, the plaintext after it recorded, and the protocol
        sees ISSLTransport and a TLS description."""
        lines, recorded, secure = yield self.session(implicit=False)
        self.assertEqual(secure, [True])
        self.assertTrue(lines[2].startswith(b"250 tls=True TLSv1.3 with cipher "), lines)
        self.assertTrue(re.match(r"# toy session from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:\d+$",
                                 recorded[0]), recorded[0])
        self.assertEqual(recorded[1:5], ["S: 220 ready", "C: STARTTLS", "S: 220 go",
                                         "# TLS started"])
        self.assertTrue(recorded[5].startswith("# TLS: TLSv1.3 with cipher "), recorded)
        self.assertEqual(recorded[6:], [
            "C: HELLO secure", "S: " + lines[2].decode(), "C: QUIT", "S: 221 bye",
            "# closed: Connection was closed cleanly. (server hung up)"])

    @defer.inlineCallbacks
    def test_implicitTLS(self):
        """Implicit TLS (the wrappers inside TLSMemoryBIOProtocol) is noted."""
        lines, recorded, secure = yield self.session(implicit=True)
        self.assertEqual(secure, [True])
        self.assertEqual(recorded[1:3], ["# TLS (implicit)", "S: 220 ready"])
        self.assertTrue(recorded[3].startswith("# TLS: TLSv1.3 with cipher "), recorded)
        self.assertEqual(recorded[4], "C: HELLO secure")
