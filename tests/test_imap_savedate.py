"""
Tests for SAVEDATE (RFC 8514): the store's save date of each message
(delivery, APPEND, COPY, MOVE; kept by flag changes), FETCH SAVEDATE and
SEARCH SAVEDBEFORE, SAVEDON, SAVEDSINCE and SAVEDATESUPPORTED, on both
stores; the Maildir's save date read from the file name as Dovecot's
writers set it (tests/e2e/test_imap_dovecot23 compares with Dovecot).
"""

import datetime
import time

from twisted.trial import unittest

from mailstack.imap.grammar.fetchspec import fetchAttributes
from mailstack.imap.grammar.reader import Reader
from mailstack.imap.grammar.searchspec import searchKeys
from mailstack.imap.response import formatInternalDate
from mailstack.storage import maildir
from tests.stores import everyStore
from tests.test_imap_server import MESSAGE, IMAPTestMixin

OLD = b'"01-Feb-2001 10:00:00 +0000"'


class NameTests(unittest.TestCase):
    """The Maildir save date from a message file's base name."""

    def test_names(self):
        """The leading seconds of the name; without them, the fallback."""
        self.assertEqual(maildir.saveDate("1733480000.M1P2Q3.host"), 1733480000.0)
        self.assertEqual(maildir.saveDate("1733480000.M1P2Q3.host,S=12", 5.0), 1733480000.0)
        self.assertEqual(maildir.saveDate("message-one", 5.0), 5.0)
        self.assertIsNone(maildir.saveDate("x1733480000.host"))


class GrammarTests(unittest.TestCase):
    """SAVEDATE in FETCH's items; the SAVED* keys in SEARCH's."""

    def test_fetch(self):
        """SAVEDATE is a FETCH item of its own."""
        self.assertEqual([a.name for a in fetchAttributes(Reader([b"(UID savedate)"]))],
                         ["UID", "SAVEDATE"])

    def test_search(self):
        """SAVEDBEFORE, SAVEDON, SAVEDSINCE take a date; SAVEDATESUPPORTED nothing."""
        key = searchKeys(Reader([b"SAVEDBEFORE 1-Feb-2001 savedon 2-Feb-2001 "
                                 b"SAVEDSINCE 3-Feb-2001 SAVEDATESUPPORTED"]))
        self.assertEqual(key, ("AND", [
            ("DATE", "saved", "<", datetime.date(2001, 2, 1)),
            ("DATE", "saved", "=", datetime.date(2001, 2, 2)),
            ("DATE", "saved", ">=", datetime.date(2001, 2, 3)),
            ("SAVEDATESUPPORTED",)]))


class SaveDateSessionTests(IMAPTestMixin, unittest.TestCase):
    """FETCH SAVEDATE and the SAVED* search keys in a session."""

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.createMailbox("Other")
        self.select()
        self.assertTrue(self.send(b"a APPEND INBOX () " + OLD + b" {%d}\r\n" % (len(MESSAGE),)
                                  ).startswith(b"+ "))
        self.assertIn(b"a OK", self.send(MESSAGE + b"\r\n"))
        self.send(b"n NOOP\r\n")

    def info(self, uid=1, mailbox="INBOX"):
        store = self.openMailbox(mailbox)
        self.successResultOf(store.sync(False))
        return store.messageInfo(uid)

    def test_capability(self):
        """SAVEDATE is advertised after login."""
        self.assertIn(b" SAVEDATE", self.send(b"c CAPABILITY\r\n"))

    def test_fetch(self):
        """FETCH SAVEDATE is when APPEND stored it, not the INTERNALDATE the client gave."""
        info = self.info()
        self.assertIsNotNone(info.saveDate)
        self.assertEqual(self.send(b"f FETCH 1 (SAVEDATE INTERNALDATE)\r\n"),
                         b"* 1 FETCH (SAVEDATE " + formatInternalDate(info.saveDate)
                         + b' INTERNALDATE "01-Feb-2001 10:00:00 +0000")\r\n'
                         b"f OK FETCH completed\r\n")
        self.assertNotEqual(info.saveDate, info.internalDate)

    def test_keptByFlagChanges(self):
        """Changing flags (a Maildir file rename) keeps the save date."""
        before = self.info().saveDate
        self.send(b"s STORE 1 +FLAGS (\\Seen \\Flagged $Work)\r\n")
        self.assertEqual(self.info().saveDate, before)

    def test_copyIsSavedAgain(self):
        """A COPY is saved into its mailbox when copied: its own save date, kept INTERNALDATE."""
        self.send(b"c COPY 1 Other\r\n")
        original, copy = self.info(), self.info(1, "Other")
        self.assertGreaterEqual(copy.saveDate, original.saveDate)
        self.assertEqual(copy.internalDate, original.internalDate)
        self.assertNotEqual(copy.key, original.key)

    def test_search(self):
        """SAVEDON, SAVEDSINCE, SAVEDBEFORE compare the save date's day; SAVEDATESUPPORTED is all."""
        day = datetime.date(*time.localtime(self.info().saveDate)[:3])
        text = lambda d: ("%d-%s-%d" % (d.day, d.strftime("%b"), d.year)).encode("ascii")
        after = day + datetime.timedelta(days=1)
        replies = [self.send(b"s SEARCH " + key + b"\r\n").split(b"\r\n")[0] for key in (
            b"SAVEDON " + text(day), b"SAVEDSINCE " + text(day), b"SAVEDBEFORE " + text(after),
            b"SAVEDBEFORE " + text(day), b"SAVEDSINCE " + text(after), b"SAVEDATESUPPORTED",
            b"NOT SAVEDATESUPPORTED", b"ON 1-Feb-2001 SAVEDON " + text(day))]
        self.assertEqual(replies, [b"* SEARCH 1", b"* SEARCH 1", b"* SEARCH 1", b"* SEARCH",
                                   b"* SEARCH", b"* SEARCH 1", b"* SEARCH", b"* SEARCH 1"])

    def test_disabled(self):
        """With SAVEDATE switched off it is not advertised; FETCH SAVEDATE and SAVED* are BAD."""
        session = self.connect(disabled=frozenset({"SAVEDATE"}))
        self.select(session)
        self.assertNotIn(b"SAVEDATE", self.send(b"c CAPABILITY\r\n", session))
        # (Four: the fifth BAD in a row ends this test listener's session.)
        for n, command in enumerate([b"UID FETCH 1 (SAVEDATE)", b"SEARCH SAVEDATESUPPORTED",
                                     b"SEARCH NOT SAVEDON 1-Feb-2001",
                                     b"UID SEARCH OR SEEN SAVEDSINCE 1-Feb-2001"]):
            tag = b"t%d" % (n,)
            self.assertTrue(self.send(tag + b" " + command + b"\r\n", session).startswith(
                tag + b" BAD "), command)


everyStore(globals())
