"""
End-to-end fault injection on real sockets: clients that vanish mid-response,
a disk that fills up, locks held by other programs; what the client reads and
what the log says.
"""

import socket

from twisted.internet import defer
from twisted.logger import LogLevel, globalLogPublisher

from tests.e2e.test_imap import IMAPTestCase
from tests.helpers import sleep


class LogWatch:
    """Collects log events; C{problems()} are the critical ones and those with tracebacks."""

    def __init__(self, testCase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testCase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def problems(self):
        return [e for e in self.events
                if e.get("log_failure") is not None or e.get("log_level") == LogLevel.critical]


class StreamingClientGoneTests(IMAPTestCase):
    """
    A client that closes its socket while a big FETCH streams.
    """

    @defer.inlineCallbacks
    def waitForNoSessions(self):
        for _ in range(200):
            if not self.server.counter.count("imap"):
                return
            yield sleep(0.02)
        self.fail("the IMAP session never ended")

    @defer.inlineCallbacks
    def test_closeDuringPipelinedFetch(self):
        """FETCH 1:* BODY.PEEK[] of big messages with a FETCH pipelined, the client closes
        after reading a little: the server logs no critical error and no traceback."""
        inbox = self.inbox()
        body = b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * 50000
        for _ in range(4):
            inbox.append(body)
        watch = LogWatch(self)

        def session():
            s, f = self.raw("imapplain")
            s.sendall(b"a1 LOGIN demo@lab.test demo\r\na2 SELECT INBOX\r\n")
            while not f.readline().startswith(b"a2 "):
                pass
            s.sendall(b"a3 FETCH 1:* (BODY.PEEK[])\r\na4 FETCH 1 (FLAGS)\r\n")
            f.read(100000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            f.close()
            s.close()
        yield self.inThread(session)
        yield self.waitForNoSessions()
        yield sleep(0.1)
        self.assertEqual(watch.problems(), [])
