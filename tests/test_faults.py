"""
Fault injection: what clients see, what is logged and what is left on disk
when the disk fills up, a lock is held by another program, a file is the
wrong kind of thing, or the client goes away mid-response.
"""

import errno
import os

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests.test_imap_server import MESSAGE, IMAPTestMixin


def bigMessage(lines=40000):
    return b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * lines


class StreamingConnectionLostTests(IMAPTestMixin, unittest.TestCase):
    """
    A client that closes while a FETCH streams: pipelined commands behind it
    never run, and nothing is logged as an error.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        for _ in range(3):
            self.deliver(bigMessage())
        self.select()

    def loseConnection(self):
        """What a TCP transport does: stop the registered producer, then tell the protocol."""
        producer = self.transport.producer
        if producer is not None:
            producer.stopProducing()
        self.server.connectionLost(Failure(ConnectionDone()))

    def test_pipelinedAfterLostStream(self):
        """FETCH BODY[] of big messages, a FETCH pipelined behind it, then the client closes:
        no tagged reply for either, no producer error."""
        self.transport.clear()
        self.server.dataReceived(b"a3 FETCH 1:* (BODY.PEEK[])\r\na4 FETCH 1 (FLAGS)\r\n")
        self.assertIsNotNone(self.transport.producer)
        self.assertNotIn(b"a3 OK", self.transport.value())
        self.transport.clear()
        self.loseConnection()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_pipelinedWaitsForStream(self):
        """A command pipelined behind a streaming FETCH runs after it, once the stream ends."""
        self.transport.clear()
        self.server.dataReceived(b"a3 FETCH 1:* (BODY.PEEK[])\r\na4 FETCH 1 (FLAGS)\r\n")
        for _ in range(20):
            self.clock.advance(0)
        out = self.transport.value()
        self.assertTrue(out.endswith(b"a3 OK FETCH completed\r\n"
                                     b"* 1 FETCH (FLAGS (\\Recent))\r\na4 OK FETCH completed\r\n"),
                        out[-200:])
        self.assertIsNone(self.transport.producer)
