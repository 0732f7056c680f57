"""
Sending one message as a POP3 multi-line response (RETR, TOP).

The message is read from the store in chunks and never held whole in memory:
L{MessageSender} is a pull producer (C{IPullProducer}) registered with the
transport, which asks for the next chunk only when it has written the previous
one, so a slow client holds back the reading (backpressure) and a 50 MB message
costs one chunk of memory.

Byte-stuffing (RFC 1939 section 3) is done by the shared codec,
L{mailstack.protocol.dotstuff.DotStuffer}: a "." that starts a line is doubled
even when it is the first octet of the message or of a chunk. (Twisted's
C{POP3.transformChunk} misses both cases and turns CRLF into CR CR LF.)
"""

from twisted.internet import defer
from twisted.internet.interfaces import IPullProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from mailstack.protocol.dotstuff import DotStuffer

CHUNK_SIZE = 64 * 1024


class TopReader:
    """
    A file-like reader giving the header of a message, the blank line after it
    and then at most C{lines} lines of the body (RFC 1939 TOP). Reads the source
    a line (or at most C{chunkSize} octets of a long line) at a time and stops
    reading as soon as it has what it needs. A message without a blank line is
    all header.
    """

    def __init__(self, source, lines):
        self.source = source
        self.lines = lines
        self._inHeader = True
        self._atLineStart = True
        self._done = False

    def read(self, size=CHUNK_SIZE):
        if self._done:
            return b""
        piece = self.source.readline(size)
        if not piece:
            self._done = True
            return b""
        complete = piece.endswith(b"\n")
        if self._inHeader:
            if self._atLineStart and piece in (b"\r\n", b"\n"):
                self._inHeader = False
                if self.lines == 0:
                    self._done = True
        elif complete:
            self.lines -= 1
            if self.lines == 0:
                self._done = True
        self._atLineStart = complete
        return piece

    def close(self):
        self.source.close()


class _Prepended:
    """A source with C{head} read ahead of it (L{MessageSender._atEnd})."""

    def __init__(self, head, source):
        self.head = head
        self.source = source

    def read(self, n):
        if self.head:
            piece, self.head = self.head[:n], self.head[n:]
            return piece
        return self.source.read(n)

    def close(self):
        self.source.close()


@implementer(IPullProducer)
class MessageSender:
    """
    Streams one message from a binary file to a consumer (the transport),
    byte-stuffed and terminated, one chunk per C{resumeProducing}.

    @param source: an object with C{read(n)} and C{close()}; closed at the end.
    @param consumer: the transport.
    @param progress: called after each chunk is written (resets the idle timer).
    """

    def __init__(self, source, consumer, chunkSize=CHUNK_SIZE, progress=None):
        self.source = source
        self.consumer = consumer
        self.chunkSize = chunkSize
        self.progress = progress
        self.stuffer = DotStuffer()
        self.sent = 0
        self._finished = False
        self._registered = False
        self.deferred = defer.Deferred()

    def start(self):
        """
        Register with the consumer and start sending.

        @return: a Deferred firing with C{True} once the terminator is written
            and this producer is unregistered, C{False} if the transfer was
            stopped (connection lost), or failing if the source could not be
            read (the response is then incomplete).
        """
        self._registered = True
        try:
            self.consumer.registerProducer(self, False)
        except BaseException:
            self._registered = False
            self._finished = True
            self._close()
            raise
        return self.deferred

    def resumeProducing(self):
        if self._finished:
            return
        try:
            chunk = self.source.read(self.chunkSize)
            # A short read is most likely the end: look, so that a message
            # smaller than a chunk leaves in one write with its terminator
            # (one send instead of two, the common case of RETR).
            last = 0 < len(chunk) < self.chunkSize and self._atEnd()
        except Exception:
            self._finish(Failure())
            return
        if chunk:
            data = self.stuffer.feed(chunk)
            if last:
                data += self.stuffer.end()
            self.sent += len(data)
            self.consumer.write(data)
            if self.progress is not None:
                self.progress()
            if last:
                self._finish(True)
            return
        self.consumer.write(self.stuffer.end())
        self._finish(True)

    def _atEnd(self):
        """Whether the source has nothing more (read ahead, kept for the next chunk)."""
        more = self.source.read(self.chunkSize)
        if not more:
            return True
        self.source = _Prepended(more, self.source)
        return False

    def pauseProducing(self):
        pass  # a pull producer is not asked to pause; here for IProducer

    def stopProducing(self):
        """
        The consumer's call: the connection is gone and the consumer has
        already let go of this producer (a transport forgets it right after
        this call; registering on a lost connection stops the producer at once).
        """
        self._registered = False
        if not self._finished:
            self._finish(False)

    def abort(self):
        """
        The protocol's call, when it hears of the lost connection while this
        producer is still registered: close the source and unregister.
        """
        if not self._finished:
            self._finish(False)

    def _close(self):
        try:
            self.source.close()
        except Exception:
            pass

    def _finish(self, result):
        """Close the source and unregister, then (only then) fire the Deferred,
        so that whatever it starts may register the next producer."""
        self._finished = True
        self._close()
        if self._registered:
            self._registered = False
            self.consumer.unregisterProducer()
        if isinstance(result, Failure):
            self.deferred.errback(result)
        else:
            self.deferred.callback(result)
