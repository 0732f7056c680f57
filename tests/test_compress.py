"""
Unit tests for L{mailstack.protocol.compress} (the DEFLATE layer under a
session) and IMAP's COMPRESS=DEFLATE (RFC 4978) over it, on StringTransports
with a L{task.Clock}: octets both ways, the ordering rules, the flush after
each batch of writes, limits applied to the decompressed stream, a bounded
decompression bomb and a corrupt stream.
"""

import zlib

from twisted.internet import task
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from mailstack.imap.server import IMAPServer, IMAPSettings
from mailstack.protocol import compress
from mailstack.protocol.compress import CompressingFactory, CompressionActive
from tests.fakes import FakeTLSTransport
from tests.helpers import LogWatch
from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin

SYNC_MARK = b"\x00\x00\xff\xff"  # the end of a Z_SYNC_FLUSH


class Peer:
    """The client's side of a compressed session: raw DEFLATE both ways."""

    def __init__(self):
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def pack(self, data):
        return self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def unpack(self, data):
        return self.inflate.decompress(data)


class Recorder(Protocol):
    """An engine that keeps what it receives and may pause its transport."""

    pauseAfter = None

    def __init__(self):
        self.received = []

    def dataReceived(self, data):
        self.received.append(data)
        if self.pauseAfter is not None and sum(map(len, self.received)) >= self.pauseAfter:
            self.transport.pauseProducing()

    def total(self):
        return b"".join(self.received)


def step(clock):
    """Run the calls due now on C{clock}, not those they schedule (one reactor turn)."""
    due = [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()]
    for call in due:
        clock.calls.remove(call)
        call.called = True
        call.func(*call.args, **call.kw)


def layered(inner, clock, transport=None):
    """C{inner} under a compression layer on a FakeTLSTransport: C{(layer, transport)}."""
    factory = CompressingFactory(Factory.forProtocol(Protocol), "test", clock)
    layer = factory.protocol(factory, inner)
    transport = transport or FakeTLSTransport()
    layer.makeConnection(transport)
    return layer, transport


class LayerTests(unittest.TestCase):
    """
    The compression layer under a toy engine.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.inner = Recorder()
        self.layer, self.transport = layered(self.inner, self.clock)
        self.peer = Peer()

    def test_transparentUntilStarted(self):
        """Before startCompression octets pass both ways unchanged, and so does flow control."""
        self.inner.transport.write(b"* OK hello\r\n")
        self.layer.dataReceived(b"a NOOP\r\n")
        self.inner.transport.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")
        self.inner.transport.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.transport.value(), b"* OK hello\r\n")
        self.assertEqual(self.inner.total(), b"a NOOP\r\n")
        self.assertTrue(compress.compressionAvailable(self.inner.transport))
        self.assertFalse(self.inner.transport.compressing)

    def test_writesFlushedOncePerTurn(self):
        """What the engine writes in one turn reaches the client whole, after one sync flush."""
        self.inner.transport.write(b"a OK Begin compression.\r\n")
        compress.startCompression(self.inner.transport)
        self.transport.clear()
        for n in range(50):
            self.inner.transport.write(b"* %d EXISTS\r\n" % (n,))
        self.inner.transport.writeSequence([b"b OK ", b"done\r\n"])
        self.clock.advance(0)
        sent = self.transport.value()
        expected = b"".join(b"* %d EXISTS\r\n" % (n,) for n in range(50)) + b"b OK done\r\n"
        self.assertEqual(self.peer.unpack(sent), expected)
        self.assertTrue(sent.endswith(SYNC_MARK))
        self.assertEqual(sent.count(SYNC_MARK), 1)
        self.assertLess(len(sent), len(expected) / 2)

    def test_inputInflated(self):
        """Compressed client octets reach the engine decompressed, however they are split."""
        compress.startCompression(self.inner.transport)
        data = self.peer.pack(b"a NOOP\r\n") + self.peer.pack(b"b SELECT INBOX\r\n")
        for i in range(len(data)):
            self.layer.dataReceived(data[i:i + 1])
        self.assertEqual(self.inner.total(), b"a NOOP\r\nb SELECT INBOX\r\n")

    def test_startTwice(self):
        """A second start is refused with CompressionActive."""
        compress.startCompression(self.inner.transport)
        self.assertRaises(CompressionActive, compress.startCompression, self.inner.transport)

    def test_noTLSAfterCompression(self):
        """STARTTLS reaches the transport before compression, and is refused after it."""
        self.inner.transport.startTLS("context")
        self.assertEqual(self.transport.tlsContext, "context")
        self.transport.tlsContext = None
        compress.startCompression(self.inner.transport)
        self.assertRaises(CompressionActive, self.inner.transport.startTLS, "context")
        self.assertIsNone(self.transport.tlsContext)

    def test_closeFlushes(self):
        """A reply written just before the engine closes reaches the client first."""
        compress.startCompression(self.inner.transport)
        self.inner.transport.write(b"* BYE bye\r\n")
        self.inner.transport.loseConnection()
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.peer.unpack(self.transport.value()), b"* BYE bye\r\n")

    def test_corruptInputCloses(self):
        """A corrupt stream closes the session with one log line, no traceback, nothing passed on."""
        watch = LogWatch(self)
        compress.startCompression(self.inner.transport)
        self.layer.dataReceived(self.peer.pack(b"a NOOP\r\n"))
        self.layer.dataReceived(b"\xff\xff\xff\xff garbage")
        self.layer.dataReceived(self.peer.pack(b"b NOOP\r\n"))
        self.assertEqual(self.inner.total(), b"a NOOP\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(watch.problems(), [])
        lines = [t for t in watch.texts() if "corrupt compressed input" in t]
        self.assertEqual(len(lines), 1, watch.texts())

    def test_bombInflatedInTurns(self):
        """A small input that inflates hugely is handed over a budget per turn, the socket paused meanwhile."""
        self.patch(compress, "TURN_BUDGET", 64 * 1024)
        self.patch(compress, "INFLATE_CHUNK", 16 * 1024)
        compress.startCompression(self.inner.transport)
        bomb = self.peer.pack(b"\0" * (4 * 1024 * 1024))
        self.assertLess(len(bomb), 8192)
        self.layer.dataReceived(bomb)
        self.assertEqual(len(self.inner.total()), 64 * 1024)
        self.assertTrue(all(len(piece) <= 16 * 1024 for piece in self.inner.received))
        self.assertEqual(self.transport.producerState, "paused")
        step(self.clock)
        self.assertEqual(len(self.inner.total()), 128 * 1024)
        for _ in range(62):
            step(self.clock)
        self.assertEqual(len(self.inner.total()), 4 * 1024 * 1024)
        self.assertEqual(self.transport.producerState, "producing")

    def test_enginePauseStopsInflating(self):
        """While the engine has paused its transport nothing more is inflated; resuming goes on."""
        self.inner.pauseAfter = 1
        compress.startCompression(self.inner.transport)
        self.layer.dataReceived(self.peer.pack(b"x" * 200000))
        self.assertEqual(len(self.inner.total()), compress.INFLATE_CHUNK)
        self.assertEqual(self.transport.producerState, "paused")
        self.clock.advance(0)
        self.assertEqual(len(self.inner.total()), compress.INFLATE_CHUNK)
        self.inner.pauseAfter = None
        self.inner.transport.resumeProducing()
        self.assertEqual(self.transport.producerState, "paused")  # input still waits
        self.clock.advance(0)
        self.assertEqual(self.inner.total(), b"x" * 200000)
        self.assertEqual(self.transport.producerState, "producing")


class IMAPCompressTests(IMAPTestMixin, unittest.TestCase):
    """
    COMPRESS=DEFLATE in an IMAP session over the compression layer.
    """

    def connect(self, cramAvailable=None, **overrides):
        settings = dict(self.settings)
        settings.update(overrides)
        server = IMAPServer(IMAPSettings(**settings), self.portal, self.clock, cramAvailable)
        layer, transport = layered(server, self.clock)
        self.layer = layer
        self.assertIn(b"ready\r\n", transport.value())
        transport.clear()
        self.addCleanup(self.disconnect, server)
        return layer, transport

    def sendZ(self, peer, data):
        """Send C{data} compressed; the decompressed reply after the turn's flush."""
        self.transport.clear()
        self.layer.dataReceived(peer.pack(data))
        self.clock.advance(0)
        return peer.unpack(self.transport.value())

    def started(self):
        """A logged-in session with compression on: its L{Peer}."""
        self.login()
        out = self.send(b"c1 COMPRESS DEFLATE\r\n")
        self.assertEqual(out, b"c1 OK Begin compression.\r\n")
        return Peer()

    def test_advertisedAfterLogin(self):
        """COMPRESS=DEFLATE is listed after login only, as Dovecot 2.3 lists it."""
        before = self.send(b"a CAPABILITY\r\n")
        self.assertNotIn(b"COMPRESS=DEFLATE", before)
        self.login()
        after = self.send(b"b CAPABILITY\r\n")
        self.assertIn(b" COMPRESS=DEFLATE", after)

    def test_notAdvertisedWithoutLayer(self):
        """A session whose listener cannot compress neither lists nor accepts it."""
        server, transport = IMAPTestMixin.connect(self)
        session = (server, transport)
        self.login(session)
        self.assertNotIn(b"COMPRESS", self.send(b"a CAPABILITY\r\n", session))
        self.assertEqual(self.send(b"b COMPRESS DEFLATE\r\n", session),
                         b"b NO Compression is not available here\r\n")

    def test_notBeforeLogin(self):
        """COMPRESS before login is BAD and nothing is compressed."""
        out = self.send(b"a COMPRESS DEFLATE\r\n")
        self.assertEqual(out, b"a BAD COMPRESS not valid in this state (log in first)\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")

    def test_compressedSession(self):
        """The OK goes uncompressed, then replies are compressed and commands decompressed."""
        peer = self.started()
        out = self.sendZ(peer, b"a SELECT INBOX\r\nb NOOP\r\n")
        self.assertIn(b"* 0 EXISTS\r\n", out)
        self.assertTrue(out.endswith(b"b OK NOOP completed\r\n"), out)

    def test_inSelectedState(self):
        """COMPRESS works in the selected state too."""
        self.login()
        self.send(b"s SELECT INBOX\r\n")
        self.assertEqual(self.send(b"c COMPRESS DEFLATE\r\n"), b"c OK Begin compression.\r\n")
        self.assertEqual(self.sendZ(Peer(), b"n NOOP\r\n"), b"n OK NOOP completed\r\n")

    def test_secondCompress(self):
        """A second COMPRESS is NO [COMPRESSIONACTIVE], compressed, as Dovecot answers it."""
        peer = self.started()
        self.assertEqual(self.sendZ(peer, b"c2 COMPRESS DEFLATE\r\n"),
                         b"c2 NO [COMPRESSIONACTIVE] COMPRESSION=DEFLATE already enabled.\r\n")

    def test_unknownMechanism(self):
        """Another mechanism is NO; a missing or extra argument BAD; nothing compressed."""
        self.login()
        self.assertEqual(self.send(b"a COMPRESS FOO\r\n"),
                         b"a NO Unknown compression mechanism.\r\n")
        self.assertTrue(self.send(b"b COMPRESS\r\n").startswith(b"b BAD "))
        self.assertTrue(self.send(b"c COMPRESS DEFLATE X\r\n").startswith(b"c BAD "))
        self.assertEqual(self.send(b"d COMPRESS deflate\r\n"), b"d OK Begin compression.\r\n")

    def test_disabledPerListener(self):
        """A listener with COMPRESS=DEFLATE disabled neither lists nor accepts it."""
        self.server, self.transport = self.connect(disabled=frozenset(["COMPRESS=DEFLATE"]))
        self.login()
        self.assertNotIn(b"COMPRESS", self.send(b"a CAPABILITY\r\n"))
        self.assertEqual(self.send(b"b COMPRESS DEFLATE\r\n"),
                         b"b BAD Unknown command COMPRESS\r\n")

    def test_pipelinedAfterCompressDropped(self):
        """Octets sent behind COMPRESS before its OK are dropped, not run."""
        self.login()
        out = self.send(b"c COMPRESS DEFLATE\r\nx DELETE INBOX\r\n")
        self.assertEqual(out, b"c OK Begin compression.\r\n")
        self.assertEqual(self.sendZ(Peer(), b"n NOOP\r\n"), b"n OK NOOP completed\r\n")

    def test_lineLimitOnDecompressed(self):
        """The line length limit counts decompressed octets (a tiny compressed line can be too long)."""
        peer = self.started()
        long = b"a NOOP " + b"x" * 5000 + b"\r\n"
        self.assertLess(len(peer.deflate.copy().compress(long)
                            + peer.deflate.copy().flush(zlib.Z_SYNC_FLUSH)), 200)
        out = self.sendZ(peer, long + b"b NOOP\r\n")
        self.assertTrue(out.startswith(b"a BAD "), out)
        self.assertTrue(out.endswith(b"b OK NOOP completed\r\n"), out)

    def test_literalLimitOnDecompressed(self):
        """APPEND's literal size limit counts decompressed octets."""
        peer = self.started()
        out = self.sendZ(peer, b"a APPEND INBOX {5000+}\r\n" + b"y" * 5000 + b"\r\n")
        self.assertEqual(out, b"a NO [TOOBIG] Message too large (limit 4096 octets)\r\n")
        self.assertEqual(self.sendZ(peer, b"b NOOP\r\n"), b"b OK NOOP completed\r\n")


everyStore(globals())
