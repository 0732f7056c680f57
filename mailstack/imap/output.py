"""
Streaming large responses (FETCH of big messages) to the client.

A response is an iterable of pieces: C{bytes}, or C{(file, offset, length)}
meaning "that many octets of the file from that offset" (a literal's content,
announced beforehand). L{ResponseStreamer} is a push producer registered on
the transport while it runs: when the transport's buffer fills it is paused,
and it resumes when the buffer drains, so a 50 MB message goes out in 64 KB
reads and never sits whole in memory. Every L{BURST} octets it yields to the
reactor so other sessions keep moving.
"""

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

CHUNK = 65536
BURST = 1024 * 1024


@implementer(IPushProducer)
class ResponseStreamer:
    """
    Writes one response stream; L{start} returns a Deferred that fires (with
    None) when all is written, or with the failure of the iterable, or with
    L{ConnectionLost} if the transport stopped it (the client went away): the
    transport calls L{stopProducing} before the protocol's C{connectionLost},
    so the session must learn of the loss from this Deferred, not later.

    @param transport: where to write.
    @param clock: provides C{callLater}.
    @param progress: called after each write (resets the idle timeout).
    """

    def __init__(self, transport, clock, progress=None):
        self.transport = transport
        self.clock = clock
        self.progress = progress
        self._iterator = None
        self._source = None
        self._paused = False
        self._stopped = False
        self._call = None
        self._deferred = None

    def start(self, pieces):
        self._iterator = iter(pieces)
        d = self._deferred = defer.Deferred()
        self.transport.registerProducer(self, True)
        self._run()
        return d

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        if self._call is None and self._deferred is not None:
            self._call = self.clock.callLater(0, self._run)

    def stopProducing(self):
        """The connection is gone: close what is open, fail with L{ConnectionLost}."""
        self._stopped = True
        self._cleanup()
        self._finish(Failure(ConnectionLost("the client closed the connection mid-response")))

    def _write(self, data):
        self.transport.write(data)
        if self.progress is not None:
            self.progress()

    def _run(self):
        self._call = None
        budget = BURST
        while not self._paused and not self._stopped and self._deferred is not None:
            if self._source is not None:
                f, remaining = self._source
                data = b""
                try:
                    data = f.read(min(CHUNK, remaining))
                except OSError as e:
                    log.warn("reading a message for FETCH failed: {error}", error=e)
                if not data:
                    # The file shrank under us (or failed): keep the literal's
                    # promised length so the protocol stays in step.
                    data = b" " * min(CHUNK, remaining)
                remaining -= len(data)
                self._source = (f, remaining) if remaining > 0 else None
                self._write(data)
                budget -= len(data)
            else:
                try:
                    piece = next(self._iterator)
                except StopIteration:
                    return self._finish(None)
                except Exception:
                    return self._finish(Failure())
                if isinstance(piece, bytes):
                    if piece:
                        self._write(piece)
                        budget -= len(piece)
                else:
                    f, offset, length = piece
                    if length > 0:
                        f.seek(offset)
                        self._source = (f, length)
            if budget <= 0:
                if not self._paused and not self._stopped:
                    self._call = self.clock.callLater(0, self._run)
                return None
        return None

    def _cleanup(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._source = None
        close = getattr(self._iterator, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.failure("closing a FETCH response stream")

    def _finish(self, result):
        d, self._deferred = self._deferred, None
        if d is None:
            return None
        if not self._stopped:
            self.transport.unregisterProducer()
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)
        return None
