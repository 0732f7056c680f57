"""
The deadline for one command line (C{limits.command_line_timeout}) in the
SMTP, POP3 and IMAP engines: a client trickling one octet every few seconds
is cut off, while DATA bodies and IMAP literals are not command lines.
"""

from twisted.trial import unittest

from tests.test_auth_penalty import PenaltyMixin

TIMEOUT_REPLY = {
    "smtp": b"421 4.4.2 mail.lab.test Timeout, closing connection\r\n",
    "pop3": b"-ERR Disconnected for inactivity.\r\n",
    "imap": b"* BYE Autologout; idle for too long\r\n",
}


class CommandLineDeadlineTests(PenaltyMixin, unittest.TestCase):
    """
    One octet every 5 s restarts the idle timer each time; the command-line
    deadline (60 s here) still ends the session.
    """

    def trickle(self, client, data, every=5):
        for octet in data:
            if client.transport.disconnecting:
                break
            client.server.dataReceived(bytes([octet]))
            self.reactor.advance(every)

    def test_trickledLineCutOff(self):
        """A command line sent one octet every 5 s is cut off 60 s after its first octet."""
        for protocol in ("smtp", "pop3", "imap"):
            client = self.client(protocol, commandLineTimeout=60)
            client.transport.clear()
            self.trickle(client, b"x" * 11)
            self.assertFalse(client.transport.disconnecting, protocol)
            self.trickle(client, b"x")
            self.assertTrue(client.transport.disconnecting, protocol)
            self.assertEqual(client.transport.value(), TIMEOUT_REPLY[protocol], protocol)

    def test_slowButFinishedLines(self):
        """Lines typed slowly but finished within the deadline are answered as usual."""
        client = self.client("pop3", commandLineTimeout=60)
        for _ in range(5):
            client.transport.clear()
            self.trickle(client, b"NOOP\r\n", every=9)
        self.assertFalse(client.transport.disconnecting)
        self.assertTrue(client.transport.value().startswith(b"-ERR NOOP needs a login"))

    def test_smtpDataBodyNotTimed(self):
        """A DATA body trickled without line ends is bounded by the idle timer only."""
        client = self.client("smtp", commandLineTimeout=60)
        client.send(b"MAIL FROM:<bob@example.org>")
        client.send(b"RCPT TO:<alice@lab.test>")
        self.assertTrue(client.send(b"DATA").startswith(b"354"))
        self.trickle(client, b"Subject: slow" + b"x" * 40)
        self.assertFalse(client.transport.disconnecting)
        self.assertTrue(client.send(b"\r\n.").startswith(b"250"))

    def test_imapLiteralNotTimed(self):
        """An APPEND literal trickled slowly is not a command line: it is not cut off."""
        client = self.client("imap", commandLineTimeout=60)
        self.assertIn(b"a OK", client.send(b"a LOGIN alice@lab.test secret"))
        message = b"Subject: slow\r\n\r\n" + b"x" * 33
        self.assertTrue(client.send(b"b APPEND INBOX {%d}" % (len(message),))
                        .startswith(b"+ "))
        self.trickle(client, message)
        self.assertFalse(client.transport.disconnecting)
        self.assertIn(b"b OK", client.send(b""))
