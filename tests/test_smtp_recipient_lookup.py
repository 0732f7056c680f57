"""
SMTP RCPT when the policy asks the user directory off the reactor: the
answer waits for the lookup, and a directory that cannot answer gets a
temporary 451 4.3.0 (exact bytes over a StringTransport).
"""

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.smtp.delivery import RecipientDecision
from tests.test_smtp_server import SMTPTestMixin


class SlowLookupPolicy:
    """FakePolicy whose recipient decisions come when the test fires them."""

    def __init__(self, policy):
        self.policy = policy
        self.pending = []

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def checkRecipient(self, recipient, authenticated, envelope=None):
        d = defer.Deferred()
        self.pending.append(d)
        return d


class RecipientLookupTests(SMTPTestMixin, unittest.TestCase):
    def setUp(self):
        SMTPTestMixin.setUp(self)
        self.policy = SlowLookupPolicy(self.policy)
        self.connect()
        self.send(b"EHLO c\r\nMAIL FROM:<kim@example.com>\r\n")

    def test_waitsForLookup(self):
        """RCPT is answered once the lookup answers; a pipelined command waits for it."""
        self.assertEqual(self.send(b"RCPT TO:<alice@lab.test>\r\nNOOP\r\n"), b"")
        self.policy.pending[0].callback(RecipientDecision("local", "alice@lab.test"))
        self.assertEqual(self.transport.value(),
                         b"250 2.1.5 Recipient <alice@lab.test> OK\r\n250 2.0.0 OK\r\n")
        self.assertEqual(self.server.envelope.recipients, [("alice@lab.test", "local")])

    def test_directoryUnavailable(self):
        """A directory that cannot answer gets 451 4.3.0, the recipient is not added,
        and the session goes on."""
        self.send(b"RCPT TO:<alice@lab.test>\r\n")
        self.policy.pending[0].errback(UserDirectoryUnavailable("database is locked"))
        self.assertEqual(self.transport.value(),
                         b"451 4.3.0 Local error in processing; please try again\r\n")
        self.assertEqual(self.server.envelope.recipients, [])
        self.assertEqual(self.send(b"NOOP\r\n"), b"250 2.0.0 OK\r\n")
        self.assertEqual(self.flushLoggedErrors(), [])
