"""
Tests for L{mailstack.smtp.server.receivedDate}, the date of the
C{Received:} header, made once per second.
"""

import email.utils

from twisted.trial import unittest

from mailstack.smtp import server


class ReceivedDateTests(unittest.TestCase):
    """The Received: date is the current second's, in local time, as formatdate writes it."""

    def setUp(self):
        self.now = 1765000000.25
        self.patch(server.time, "time", lambda: self.now)
        self.patch(server, "_dateCache", [None, ""])

    def test_currentSecond(self):
        """The date is formatdate's for the current second, local time."""
        self.assertEqual(server.receivedDate(),
                         email.utils.formatdate(1765000000, localtime=True))

    def test_nextSecond(self):
        """A second later the date is that second's, not the one made before."""
        first = server.receivedDate()
        self.now += 0.5
        self.assertEqual(server.receivedDate(), first)
        self.now += 1
        self.assertEqual(server.receivedDate(),
                         email.utils.formatdate(1765000001, localtime=True))
        self.assertNotEqual(server.receivedDate(), first)
