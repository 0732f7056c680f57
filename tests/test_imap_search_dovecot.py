"""
Tests for L{mailstack.imap.search}'s matching where the differential harness
(tests/differential/) found it differing from Dovecot 2.3 and it now agrees.
"""

from twisted.trial import unittest

from mailstack.imap import datefield, search
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


# Date: fields and the day Dovecot 2.3.19 gave each in SENTON (1-Jan-1970: refused).
SENT_DATES = [
    (None, (1970, 1, 1)),
    (b"not a date at all", (1970, 1, 1)),
    (b"Sunday, 2 Jan 2000 10:00:00 +0000", (1970, 1, 1)),  # a weekday is three letters
    (b"1 Jan 69 10:00:00 +0000", (2069, 1, 1)),
    (b"Sat, 1 Jan 2000 23:30:00 -1200", (2000, 1, 1)),  # the day written, not UTC's
    (b"Sat, 01 Jan 2000 00:30:00 +0100", (2000, 1, 1)),
    (b"1 Jan 2000 25:00:00 +0000", (1970, 1, 1)),
    (b"Fri 7 Jan 2000 10:00:00 +0000", (1970, 1, 1)),  # a weekday without its comma
    (b"1 Jan 2000 1:2:3 +0000", (1970, 1, 1)),
    (b"1 Jan 2000 23:59:60 +0000 (leap)", (2000, 1, 1)),
]


class SentDateTests(unittest.TestCase):
    """
    SENTBEFORE, SENTON and SENTSINCE read Date: as SORT does (Dovecot's
    parser, imap/datefield.py), over L{SENT_DATES} (UIDs in order).
    """

    def setUp(self):
        self.store = MaildirStore(self.mktemp())
        mailbox = self.successResultOf(self.store.account("alice@lab.test").openMailbox("INBOX"))
        for value, _ in SENT_DATES:
            field = b"Date: " + value + b"\r\n" if value is not None else b""
            self.successResultOf(mailbox.append(b"Subject: d\r\n" + field + b"\r\nbody\r\n"))
        self.view = self.successResultOf(MailboxView.open(mailbox, readOnly=True))
        self.addCleanup(self.view.close)

    def find(self, text):
        reader = Reader([text])
        charset, key = args_search(reader)[-2:]
        reader.end()
        return search.search(self.view, key, charset)

    def test_senton(self):
        """SENTON finds each message on the day Dovecot 2.3.19 found it."""
        days = {day for _, day in SENT_DATES}
        months = ["Jan"]
        for day in days:
            key = b"SENTON %d-%s-%d" % (day[2], months[day[1] - 1].encode(), day[0])
            wanted = [uid for uid, (_, d) in enumerate(SENT_DATES, 1) if d == day]
            self.assertEqual(self.find(key), wanted, key)

    def test_beforeAndSince(self):
        """SENTBEFORE and SENTSINCE split at the day written; refused dates are before 1971."""
        self.assertEqual(self.find(b"SENTBEFORE 1-Jan-1971"), [1, 2, 3, 7, 8, 9])
        self.assertEqual(self.find(b"SENTSINCE 1-Jan-2000 SENTBEFORE 2-Jan-2000"), [5, 6, 10])
        self.assertEqual(self.find(b"SENTSINCE 1-Jan-2030"), [4])

    def test_sortAgrees(self):
        """The day SEARCH compares is the one SORT's date names, in the sender's zone."""
        for value, day in SENT_DATES:
            if value is not None and day != (1970, 1, 1):
                self.assertEqual(datefield.writtenDay(value).timetuple()[:3], day, value)
            else:
                self.assertIsNone(value and datefield.writtenDay(value), value)
