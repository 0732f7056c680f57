"""
Tests for L{mailstack.imap.search}'s matching where the differential harness
(tests/differential/) found it differing from Dovecot 2.3 and it now agrees.
"""

from twisted.trial import unittest

from mailstack.imap import search
from mailstack.imap.grammar.arguments import args_search
from mailstack.imap.grammar.reader import Reader
from mailstack.imap.mailbox import MailboxView
from mailstack.storage.account import MaildirStore

FOLDED = (b"From: a@lab.test\r\nSubject:\tTabbed\r\n  and folded\r\n\tsubject\r\n"
          b"X-Note: one\r\n\ttwo\r\n\r\nbody\r\n")

FORWARD = (b"From: b@lab.test\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
           b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
           b"From: Inner Sender <inner@example.org>\r\nSubject: attached one\r\n\r\n"
           b"inner words\r\n--b--\r\n")


class DovecotMatchingTests(unittest.TestCase):
    """
    Two messages: UID 1 with folded header fields, UID 2 with an attached
    message.
    """

    def setUp(self):
        self.store = MaildirStore(self.mktemp())
        mailbox = self.successResultOf(self.store.account("alice@lab.test").openMailbox("INBOX"))
        self.successResultOf(mailbox.append(FOLDED))
        self.successResultOf(mailbox.append(FORWARD))
        self.view = self.successResultOf(MailboxView.open(mailbox, readOnly=True))
        self.addCleanup(self.view.close)

    def find(self, text):
        reader = Reader([text])
        charset, key = args_search(reader)[-2:]  # the charset and the key come last
        reader.end()
        return search.search(self.view, key, charset)

    def test_foldIsOneSpace(self):
        """A fold in a header field matches as a single space, whatever white space it has."""
        self.assertEqual(self.find(b'SUBJECT "tabbed and folded subject"'), [1])
        self.assertEqual(self.find(b'HEADER X-Note "one two"'), [1])

    def test_attachedHeaderIsNotBody(self):
        """BODY does not find words in an attached message's header; TEXT does."""
        self.assertEqual(self.find(b"BODY sender"), [])
        self.assertEqual(self.find(b"TEXT sender"), [2])
        self.assertEqual(self.find(b'BODY "inner words"'), [2])


class UnknownEncodingTests(unittest.TestCase):
    """
    A body in a transfer encoding SEARCH cannot read is not searched.
    """

    def setUp(self):
        self.store = MaildirStore(self.mktemp())
        mailbox = self.successResultOf(self.store.account("alice@lab.test").openMailbox("INBOX"))
        self.successResultOf(mailbox.append(
            b"Subject: a\r\nContent-Transfer-Encoding: x-unknown\r\n\r\nhidden words\r\n"))
        self.successResultOf(mailbox.append(
            b"Subject: b\r\nContent-Transfer-Encoding: 8bit\r\n\r\nhidden words\r\n"))
        self.view = self.successResultOf(MailboxView.open(mailbox, readOnly=True))
        self.addCleanup(self.view.close)

    def test_unknownEncodingNotSearched(self):
        """BODY and TEXT skip a body in an unknown encoding (Dovecot), even without MIME-Version."""
        for key in (b'BODY "hidden words"', b'TEXT "hidden words"'):
            reader = Reader([key])
            charset, parsed = args_search(reader)[-2:]
            self.assertEqual(search.search(self.view, parsed, charset), [2])
