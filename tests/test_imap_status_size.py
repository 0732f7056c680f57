"""
Tests for STATUS=SIZE (RFC 8438): STATUS (SIZE) and LIST RETURN (STATUS
(SIZE)) answer the sum of the mailbox's RFC822.SIZEs, as Dovecot 2.3 does;
a listener may switch the extension off. Sessions over a StringTransport,
on both stores.
"""

from twisted.trial import unittest

from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin

SHORT = b"From: a@lab.test\r\nSubject: one\r\n\r\nHi.\r\n"
LONGER = b"From: a@lab.test\r\nSubject: two\r\n\r\n" + b"x" * 100 + b"\r\n"


class StatusSizeTests(IMAPTestMixin, unittest.TestCase):
    """
    STATUS SIZE on a selected and an unselected mailbox.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver(SHORT)
        self.deliver(LONGER)
        self.createMailbox("Empty")
        self.login()

    def test_capability(self):
        """STATUS=SIZE is advertised after login."""
        self.assertIn(b" STATUS=SIZE", self.send(b"c CAPABILITY\r\n"))

    def test_size(self):
        """SIZE is the sum of the messages' sizes, in the order asked among other items."""
        self.assertEqual(
            self.send(b"s STATUS INBOX (MESSAGES SIZE UIDNEXT)\r\n"),
            b'* STATUS "INBOX" (MESSAGES 2 SIZE %d UIDNEXT 3)\r\ns OK STATUS completed\r\n'
            % (len(SHORT) + len(LONGER),))

    def test_empty(self):
        """An empty mailbox's SIZE is 0."""
        self.assertEqual(self.send(b"s STATUS Empty (SIZE)\r\n"),
                         b'* STATUS "Empty" (SIZE 0)\r\ns OK STATUS completed\r\n')

    def test_followsExpunge(self):
        """SIZE leaves out an expunged message, also for the session that has it selected."""
        self.send(b"a SELECT INBOX\r\n")
        self.send(b"b STORE 1 +FLAGS.SILENT (\\Deleted)\r\nc EXPUNGE\r\n")
        self.assertIn(b'* STATUS "INBOX" (SIZE %d)\r\n' % (len(LONGER),),
                      self.send(b"s STATUS INBOX (SIZE)\r\n"))

    def test_listStatus(self):
        """LIST RETURN (STATUS (SIZE)) gives each mailbox's SIZE after its LIST line."""
        out = self.send(b'l LIST "" * RETURN (STATUS (MESSAGES SIZE))\r\n')
        self.assertIn(b'* STATUS "INBOX" (MESSAGES 2 SIZE %d)\r\n'
                      % (len(SHORT) + len(LONGER),), out)
        self.assertIn(b'* STATUS "Empty" (MESSAGES 0 SIZE 0)\r\n', out)

    def test_disabled(self):
        """With STATUS=SIZE switched off it is not advertised and STATUS (SIZE) is BAD."""
        session = self.connect(disabled=frozenset({"STATUS=SIZE"}))
        self.login(session)
        self.assertNotIn(b"STATUS=SIZE", self.send(b"c CAPABILITY\r\n", session))
        self.assertTrue(self.send(b"s STATUS INBOX (SIZE)\r\n", session).startswith(b"s BAD "))
        self.assertTrue(self.send(b'l LIST "" * RETURN (STATUS (SIZE))\r\n', session)
                        .startswith(b"l BAD "))
        self.assertIn(b'* STATUS "INBOX" (MESSAGES 2)',
                      self.send(b"m STATUS INBOX (MESSAGES)\r\n", session))


everyStore(globals())
