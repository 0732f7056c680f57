"""
DEFLATE compression of a whole session (IMAP's COMPRESS=DEFLATE, RFC 4978;
the same layer would serve NNTP's RFC 8054 or a POP3/SMTP equivalent).

L{CompressingFactory} wraps a listener's factory below the transcript
(L{mailstack.transcript}) and above TLS, so the engine and its transcript
see decompressed octets and TLS carries compressed ones. Its
L{CompressingProtocol} passes everything through until the engine, having
sent the OK of its COMPRESS command uncompressed, calls L{startCompression}
on its transport: from then on every octet both ways is raw DEFLATE (RFC
1951, no zlib header, as RFC 4978 asks).

  - Output is compressed as written and flushed with C{Z_SYNC_FLUSH} once per
    reactor turn (after each batch of writes), so the client can decompress
    every reply at once without the cost of a flush per line.
  - Input is inflated at most L{INFLATE_CHUNK} octets at a time and handed to
    the engine, whose own limits (line length, literal sizes, held input)
    apply to the decompressed stream. While the engine has paused its
    transport, nothing more is inflated and the socket is paused; at most
    L{TURN_BUDGET} octets are inflated in one reactor turn. So a small
    "decompression bomb" costs neither memory nor a stalled reactor: it is
    inflated at the engine's pace and dropped by its limits.
  - A corrupt compressed stream ends the session with one log line.
  - Once compressing, TLS cannot start any more (L{CompressionActive}).
"""

import zlib

from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import Attribute, Interface, directlyProvides, implementer, providedBy

__all__ = ["ICompressible", "CompressionActive", "CompressingProtocol", "CompressingFactory",
           "compressionAvailable", "startCompression"]

log = Logger()

#: Decompressed octets handed to the engine in one piece.
INFLATE_CHUNK = 64 * 1024
#: Decompressed octets handed to the engine in one reactor turn; the rest waits.
TURN_BUDGET = 1024 * 1024
#: zlib's default level: Dovecot's imap_zlib uses level 6 too.
LEVEL = 6


class CompressionActive(Exception):
    """Compression is on already (a second COMPRESS, or STARTTLS after it)."""


class ICompressible(Interface):
    """A transport that can compress the rest of the session."""

    compressing = Attribute("Whether DEFLATE is on (both ways).")

    def startCompression() -> None:
        """
        From the next octet on, both directions are DEFLATE: what was written
        before goes out uncompressed. Raises L{CompressionActive} if it is on.
        """


def compressionAvailable(transport: object) -> bool:
    """Whether C{transport} can compress (a listener wrapped for it)."""
    return ICompressible.providedBy(transport)


def startCompression(transport: object) -> None:
    """L{ICompressible.startCompression} on C{transport}."""
    ICompressible(transport).startCompression()


@implementer(ICompressible)
class CompressingProtocol(ProtocolWrapper):
    """
    One session's compression layer: transparent until L{startCompression}.
    """

    compressing = False
    _deflate = None
    _inflate = None
    _flushCall = None
    _pumpCall = None
    _innerPaused = False  # the engine paused its transport
    _socketPaused = False  # the socket is paused (the engine's wish, or input waits)
    _broken = False

    def __init__(self, factory, wrappedProtocol):
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self._waiting = b""  # compressed octets not inflated yet

    # -- ICompressible ---------------------------------------------------------

    def startCompression(self):
        if self.compressing:
            raise CompressionActive()
        self.compressing = True
        self._deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)

    def startTLS(self, *args, **kwargs):
        """
        Start TLS below (refused once compressing: RFC 4978 forbids it), then
        provide what the transport now provides (ISSLTransport).
        """
        if self.compressing:
            raise CompressionActive("TLS cannot start inside a compressed session")
        result = self.transport.startTLS(*args, **kwargs)
        directlyProvides(self, providedBy(self.transport))
        return result

    # -- output ----------------------------------------------------------------

    def write(self, data):
        if not self.compressing:
            return self.transport.write(data)
        if self._deflate is None:
            return  # closed
        out = self._deflate.compress(data)
        if out:
            self.transport.write(out)
        if self._flushCall is None:
            self._flushCall = self.factory.clock.callLater(0, self.flush)

    def writeSequence(self, data):
        self.write(b"".join(data))

    def flush(self):
        """Send what the compressor holds (C{Z_SYNC_FLUSH}): the client can read it all."""
        if self._flushCall is not None:
            if self._flushCall.active():
                self._flushCall.cancel()
            self._flushCall = None
        if self._deflate is not None:
            out = self._deflate.flush(zlib.Z_SYNC_FLUSH)
            if out:
                self.transport.write(out)

    def loseConnection(self):
        if self.compressing:
            self.flush()
        ProtocolWrapper.loseConnection(self)

    # -- input -----------------------------------------------------------------

    def dataReceived(self, data):
        if not self.compressing:
            return self.wrappedProtocol.dataReceived(data)
        if self._broken:
            return
        self._waiting += data
        self._pump()

    def _pump(self):
        """Inflate waiting input for the engine until it pauses or the turn's budget is spent."""
        budget = TURN_BUDGET
        while self._waiting and not self._innerPaused and not self._broken and budget > 0:
            inflate = self._inflate
            if inflate is None:
                return  # the connection is gone
            if inflate.eof:
                # RFC 4978 has no end of stream but the connection's.
                return self._corrupt("data after the end of the compressed stream")
            try:
                out = inflate.decompress(self._waiting, min(INFLATE_CHUNK, budget))
            except zlib.error as e:
                return self._corrupt(e)
            self._waiting = inflate.unused_data if inflate.eof else inflate.unconsumed_tail
            budget -= len(out)
            if out:
                self.wrappedProtocol.dataReceived(out)
        if self._waiting and not self._innerPaused and not self._broken:
            # The budget is spent: go on in the next turn, reading no more meanwhile.
            self._schedulePump()
        self._syncSocket()

    def _schedulePump(self):
        if self._pumpCall is None and self._inflate is not None:
            self._pumpCall = self.factory.clock.callLater(0, self._scheduledPump)

    def _scheduledPump(self):
        self._pumpCall = None
        self._pump()

    def _corrupt(self, error):
        self._broken = True
        self._waiting = b""
        peer = self.transport.getPeer()
        log.info("{protocol} {host}:{port}: corrupt compressed input ({error}); closing",
                 protocol=self.factory.protocolName, host=getattr(peer, "host", peer),
                 port=getattr(peer, "port", ""), error=error)
        self.loseConnection()

    # -- flow control ------------------------------------------------------------

    def _syncSocket(self):
        """
        The socket reads only while the engine takes input and no compressed
        input waits to be inflated.
        """
        want = self._innerPaused or bool(self._waiting)
        if want and not self._socketPaused:
            self._socketPaused = True
            self.transport.pauseProducing()
        elif not want and self._socketPaused:
            self._socketPaused = False
            self.transport.resumeProducing()

    def pauseProducing(self):
        """The engine takes no input for now."""
        self._innerPaused = True
        self._syncSocket()

    def resumeProducing(self):
        """The engine takes input again: first what waits inflated, then the socket's."""
        self._innerPaused = False
        if self._waiting and not self._broken:
            self._schedulePump()
        self._syncSocket()

    def connectionLost(self, reason):
        for call in (self._flushCall, self._pumpCall):
            if call is not None and call.active():
                call.cancel()
        self._flushCall = self._pumpCall = None
        self._deflate = self._inflate = None
        self._waiting = b""
        ProtocolWrapper.connectionLost(self, reason)


class CompressingFactory(WrappingFactory):
    """
    Wraps a listener's factory so its sessions may turn compression on.

    @param protocolName: the name log lines start with (C{imap}).
    @param clock: an L{IReactorTime} for the flush after each batch of writes.
    """

    noisy = False
    protocol = CompressingProtocol

    def __init__(self, wrappedFactory, protocolName, clock=None):
        WrappingFactory.__init__(self, wrappedFactory)
        if clock is None:
            from twisted.internet import reactor as clock
        self.protocolName = protocolName
        self.clock = clock

    def logPrefix(self):
        return "%s (compress)" % (self.protocolName,)

    def buildProtocol(self, addr):
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return self.protocol(self, inner)
