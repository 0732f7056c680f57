"""
Server-sent events (the HTML standard's C{text/event-stream}) on a
twisted.web request: a response kept open, each event written (and so sent:
twisted.web writes each chunk to the socket at once) as it happens.

L{EventStream} adds what a long-lived response needs: a comment line every
C{heartbeat} seconds (proxies and browsers keep the connection, and a
client gone away is noticed), a check on every heartbeat and event that the
viewer may still watch (the console login still valid: a logout ends the
stream), and one C{onClose} call however the stream ends.
"""

import json

from twisted.internet import task
from twisted.logger import Logger

log = Logger()

__all__ = ["EventStream", "lastEventID", "formatEvent"]

# Seconds the browser waits before reconnecting a stream that broke.
RETRY_MILLISECONDS = 3000


def formatEvent(event, data, eventID=None):
    """
    One event in the wire format: C{data} (JSON-encoded, so it holds no
    newline) under the name C{event}, with C{eventID} as its id if given.
    """
    lines = []
    if eventID is not None:
        lines.append("id: %s" % (eventID,))
    lines.append("event: %s" % (event,))
    lines.append("data: %s" % (json.dumps(data, separators=(",", ":")),))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def lastEventID(request):
    """
    The number in the request's C{Last-Event-ID} header (a reconnecting
    browser's) or its C{lastEventId} query argument, else 0.
    """
    values = request.requestHeaders.getRawHeaders(b"last-event-id") or []
    values += (request.args or {}).get(b"lastEventId", [])
    for value in values:
        try:
            number = int(value.strip())
        except ValueError:
            continue
        if number >= 0:
            return number
    return 0


class EventStream:
    """
    An open C{text/event-stream} response.

    @param request: the twisted.web request to answer.
    @param clock: an L{IReactorTime} for the heartbeat.
    @param allowed: a callable answering C{True} while the viewer may go on
        watching (checked at every heartbeat and before every event).
    @param onClose: called once when the stream ends (the client left, the
        viewer lost the right, or L{close}).
    @param heartbeat: seconds between comment lines.
    """

    def __init__(self, request, clock, allowed=lambda: True, onClose=lambda: None,
                 heartbeat=15.0):
        self.request = request
        self.clock = clock
        self.allowed = allowed
        self.onClose = onClose
        self.heartbeat = heartbeat
        self.closed = False
        self._loop = None

    def start(self):
        """Send the headers and the reconnection delay; start the heartbeat."""
        request = self.request
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        request.notifyFinish().addBoth(self._finished)
        request.write(b"retry: %d\n\n" % (RETRY_MILLISECONDS,))
        self._loop = task.LoopingCall(self._beat)
        self._loop.clock = self.clock
        self._loop.start(self.heartbeat, now=False)

    def send(self, event, data, eventID=None):
        """Send one event (nothing once closed; closes if no longer allowed)."""
        if self.closed:
            return
        if not self.allowed():
            self.close()
            return
        self.request.write(formatEvent(event, data, eventID))

    def _beat(self):
        if self.closed:
            return
        if not self.allowed():
            self.close()
            return
        self.request.write(b": heartbeat\n\n")

    def close(self):
        """End the response (the browser's C{EventSource} will not be told why)."""
        if self.closed:
            return
        self._stop()
        try:
            self.request.finish()
        except Exception:
            log.failure("closing an event stream")

    def _finished(self, result):
        # The client went away (a failure) or close() finished the request.
        self._stop()
        return None

    def _stop(self):
        if self.closed:
            return
        self.closed = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.onClose()
