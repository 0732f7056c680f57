"""
Eager writes (mailstack.protocol.eager) on real loopback sockets: what the
kernel has when C{write()} returns, what Twisted keeps buffered and in which
order, producers, TLS. C{StringTransport} cannot show any of this.

Blocking reads in the reactor thread are deliberate where a test proves that
data left during C{write()}: the reactor cannot run while such a read waits,
so only data already handed to the kernel can arrive; with Twisted's
buffered path the read times out and the test fails.
"""

import os
import socket
import ssl

from twisted.internet import defer, reactor, tcp, threads
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IPushProducer, IPullProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import DefaultOpenSSLContextFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest
from zope.interface import implementer

from mailstack.protocol.eager import EagerEndpoint, EagerServer, useEagerWrites
from mailstack.tls import generateSelfSigned
from tests.helpers import E2EMixin, listenerTOML

# Long enough that a correct run never waits it out; a read that times out is
# data that did not leave at once.
READ_TIMEOUT = 5.0


class Server(Protocol):
    """Records its connection and what it receives; replies set by the test."""

    def __init__(self):
        self.made = defer.Deferred()
        self.received = b""
        self.onData = None

    def connectionMade(self):
        self.made.callback(self)

    def dataReceived(self, data):
        self.received += data
        if self.onData is not None:
            self.onData(self, data)


class OneServer(Factory):
    def __init__(self):
        self.server = Server()

    def buildProtocol(self, addr):
        self.server.factory = self
        return self.server


def readExactly(sock, n):
    """Read C{n} octets from the blocking socket C{sock} (in any thread)."""
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(65536, n - got))
        if not chunk:
            raise EOFError("closed after %d of %d octets" % (got, n))
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class EagerWriteTests(unittest.TestCase):
    """A plain TCP connection accepted through L{EagerEndpoint}."""

    @defer.inlineCallbacks
    def connect(self, factory, receiveBuffer=None, serverFactory=None):
        """
        Listen on a fresh loopback port, connect a blocking client socket.
        @return: C{(server protocol, client socket)} once accepted.
        """
        endpoint = EagerEndpoint(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"))
        port = yield endpoint.listen(serverFactory or factory)
        self.addCleanup(port.stopListening)
        self.assertIs(port.transport, EagerServer)
        client = socket.socket()
        self.addCleanup(client.close)
        if receiveBuffer is not None:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
        client.settimeout(READ_TIMEOUT)
        client.connect(("127.0.0.1", port.getHost().port))
        server = yield factory.server.made
        self.addCleanup(lambda: server.transport.abortConnection())
        return server, client

    @defer.inlineCallbacks
    def test_idleWriteLeavesAtOnce(self):
        """A reply written on an idle connection is in the kernel when write() returns."""
        factory = OneServer()
        server, client = yield self.connect(factory)
        server.transport.write(b"250 2.0.0 OK\r\n")
        self.assertFalse(server.transport.writeRegistered)
        self.assertEqual(readExactly(client, 14), b"250 2.0.0 OK\r\n")
        server.transport.writeSequence([b"250-one\r\n", b"250 two\r\n"])
        self.assertEqual(readExactly(client, 18), b"250-one\r\n250 two\r\n")

    def shrink(self, transport):
        transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    @defer.inlineCallbacks
    def test_partialSendBufferedInOrder(self):
        """What the kernel does not take is buffered, sent after it and before later writes."""
        factory = OneServer()
        server, client = yield self.connect(factory, receiveBuffer=4096)
        self.shrink(server.transport)
        big = bytes(range(256)) * 8192  # 2 MiB: far more than both socket buffers
        server.transport.write(big)
        # Part of it left at once (readable with the reactor blocked), the rest waits.
        first = client.recv(65536)
        self.assertTrue(first)
        self.assertEqual(first, big[:len(first)])
        self.assertTrue(server.transport.writeRegistered)
        server.transport.write(b"END")
        server.transport.writeSequence([b"AND", b"MORE"])
        rest = yield threads.deferToThread(readExactly, client, len(big) + 10 - len(first))
        self.assertEqual(first + rest, big + b"ENDANDMORE")
        # Drained: the next write leaves at once again.
        self.assertFalse(server.transport.writeRegistered)
        server.transport.write(b"again")
        self.assertEqual(readExactly(client, 5), b"again")

    @defer.inlineCallbacks
    def test_streamingProducerPausedAndResumed(self):
        """A streaming producer is paused while the client does not read and resumed after."""
        factory = OneServer()
        server, client = yield self.connect(factory, receiveBuffer=4096)
        self.shrink(server.transport)

        @implementer(IPushProducer)
        class Producer:
            paused = 0
            resumed = 0

            def pauseProducing(self):
                self.paused += 1

            def resumeProducing(self):
                self.resumed += 1

            def stopProducing(self):
                pass
        producer = Producer()
        server.transport.registerProducer(producer, True)
        chunk = b"x" * 65536
        written = 0
        while not producer.paused and written < 200:
            server.transport.write(chunk)
            written += 1
        self.assertEqual(producer.paused, 1)
        self.assertEqual(producer.resumed, 0)
        data = yield threads.deferToThread(readExactly, client, written * len(chunk))
        self.assertEqual(data, chunk * written)
        yield deferLater(0)
        self.assertEqual(producer.resumed, 1)
        server.transport.unregisterProducer()

    @defer.inlineCallbacks
    def test_pullProducerAskedForEachChunk(self):
        """A pull producer's chunks go through the buffer, so it is asked for each next one."""
        factory = OneServer()
        server, client = yield self.connect(factory)
        transport = server.transport

        @implementer(IPullProducer)
        class Producer:
            left = 20

            def resumeProducing(self):
                self.left -= 1
                transport.write(b"%02d" % (self.left,) + b"." * 998)
                if not self.left:
                    transport.unregisterProducer()

            def stopProducing(self):
                pass
        transport.registerProducer(Producer(), False)
        data = yield threads.deferToThread(readExactly, client, 20 * 1000)
        self.assertEqual([data[i:i + 2] for i in range(0, len(data), 1000)],
                         [b"%02d" % (n,) for n in range(19, -1, -1)])

    @defer.inlineCallbacks
    def test_writeAfterCloseNotEager(self):
        """After loseConnection, a write takes Twisted's path (sent before the close)."""
        factory = OneServer()
        server, client = yield self.connect(factory)
        server.transport.loseConnection()
        self.assertFalse(server.transport.sendsNow())
        server.transport.write(b"last")
        data = yield threads.deferToThread(readExactly, client, 4)
        self.assertEqual(data, b"last")
        self.assertEqual(client.recv(10), b"")

    def contextFactory(self):
        directory = self.mktemp()
        os.makedirs(directory)
        certPEM, keyPEM = generateSelfSigned(["localhost"])
        certPath, keyPath = os.path.join(directory, "c.pem"), os.path.join(directory, "k.pem")
        with open(certPath, "wb") as f:
            f.write(certPEM)
        with open(keyPath, "wb") as f:
            f.write(keyPEM)
        return DefaultOpenSSLContextFactory(keyPath, certPath)

    @staticmethod
    def clientTLS(sock):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context.wrap_socket(sock, server_hostname="localhost")

    @defer.inlineCallbacks
    def test_startTLSKeepsTwistedPath(self):
        """After STARTTLS every write is TLS's, buffered by Twisted as before; the client reads it."""
        factory = OneServer()
        server, client = yield self.connect(factory)
        contextFactory = self.contextFactory()
        server.transport.write(b"220 go ahead\r\n")
        self.assertFalse(server.transport.writeRegistered)
        server.transport.startTLS(contextFactory)
        self.assertFalse(server.transport.sendsNow())

        def answer(protocol, data):
            self.assertFalse(protocol.transport.sendsNow())
            protocol.transport.write(b"pong:" + data)
        server.onData = answer

        def talk():
            self.assertEqual(readExactly(client, 14), b"220 go ahead\r\n")
            tls = self.clientTLS(client)
            tls.sendall(b"ping")
            return readExactly(tls, 9)
        reply = yield threads.deferToThread(talk)
        self.assertEqual(reply, b"pong:ping")

    @defer.inlineCallbacks
    def test_implicitTLSNotEager(self):
        """Under implicit TLS the socket keeps Twisted's buffered path; the session works."""
        factory = OneServer()
        tlsFactory = TLSMemoryBIOFactory(self.contextFactory(), False, factory)
        endpoint = EagerEndpoint(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"))
        port = yield endpoint.listen(tlsFactory)
        self.addCleanup(port.stopListening)
        client = socket.socket()
        self.addCleanup(client.close)
        client.settimeout(READ_TIMEOUT)

        def talk():
            client.connect(("127.0.0.1", port.getHost().port))
            tls = self.clientTLS(client)
            tls.sendall(b"ping")
            return readExactly(tls, 9)
        talking = threads.deferToThread(talk)
        server = yield factory.server.made
        raw = server.transport.transport  # under TLSMemoryBIOProtocol
        self.assertIsInstance(raw, EagerServer)
        self.assertFalse(raw.eager)
        self.assertFalse(raw.sendsNow())
        server.onData = lambda protocol, data: protocol.transport.write(b"pong:" + data)
        reply = yield talking
        self.assertEqual(reply, b"pong:ping")
        server.transport.loseConnection()

    def test_otherPortsUnchanged(self):
        """A port that is not Twisted's plain TCP port is left as it is."""
        class Other:
            transport = object()
        other = Other()
        self.assertIs(useEagerWrites(other), other)
        self.assertIsNot(other.transport, EagerServer)


def deferLater(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


class ServiceListenerTests(E2EMixin, unittest.TestCase):
    """The server's listeners."""

    listeners = (listenerTOML("smtp", name="smtp", tls="starttls")
                 + listenerTOML("submission", name="submissions", tls="implicit")
                 + listenerTOML("imap", name="imap", tls="starttls")
                 + listenerTOML("pop3", name="pop3", tls="starttls"))

    def test_smtpListenersEager(self):
        """SMTP and submission listeners give their sessions eager writes; IMAP and POP3 do not."""
        transports = {name: self.server.getServiceNamed(name).port.transport
                      for name in ("smtp", "submissions", "imap", "pop3")}
        self.assertEqual(transports, {"smtp": EagerServer, "submissions": EagerServer,
                                      "imap": tcp.Server, "pop3": tcp.Server})
