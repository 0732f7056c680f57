"""
IMAP4rev2 (RFC 9051) and UTF8=ACCEPT (RFC 6855) end to end: the standard
library's imaplib, one session left in IMAP4rev1 (what imaplib speaks by
default), one that sends C{ENABLE IMAP4rev2} (imaplib's C{enable}) and reads
the rev2 replies, one with UTF8=ACCEPT (imaplib's own UTF-8 mode); and a
listener with IMAP4rev2 switched off. The Dovecot 2.3 comparisons
(test_interop_dovecot, test_differential) run IMAP4rev1 sessions and stay
as they were: IMAP4rev2 changes nothing until a client enables it.
"""

import imaplib

from twisted.internet import defer

from tests.e2e.test_imap import MESSAGE, IMAPTestCase
from tests.helpers import listenerTOML
from tests.interop import check

CAFE_UTF8 = "Caf\u00e9".encode("utf-8")
UTF8_MESSAGE = ("From: Jos\u00e9 <jos\u00e9@lab.test>\r\nTo: demo@lab.test\r\n"
                "Subject: Caf\u00e9 \u2615\r\n\r\nBien s\u00fbr.\r\n").encode("utf-8")


class ImaplibTests(IMAPTestCase):
    """
    imaplib against a listener that offers IMAP4rev2, and one that does not.
    """

    listeners = IMAPTestCase.listeners + listenerTOML(
        "imap", tls="none", name="imapnorev2", allow_plaintext_auth=True,
        disabled=["IMAP4rev2"])

    @defer.inlineCallbacks
    def test_rev1(self):
        """imaplib's default session is IMAP4rev1: RECENT, * SEARCH, modified UTF-7 names."""
        def session():
            c = self.loggedIn()
            try:
                self.assertIn("IMAP4REV2", c.capabilities)
                check(c.create('"Caf&AOk-"'))
                check(c.append("INBOX", None, None, MESSAGE))
                check(c.select("INBOX"))
                recent = c.response("RECENT")[1]
                found = check(c.search(None, "NEW"))
                listed = check(c.list('""', '"Caf*"'))
                return recent, found, listed
            finally:
                c.logout()
        recent, found, listed = yield self.inThread(session)
        self.assertEqual(recent, [b"1"])
        self.assertEqual(found, [b"1"])
        self.assertEqual(listed, [b'(\\HasNoChildren) "/" "Caf&AOk-"'])

    @defer.inlineCallbacks
    def test_rev2(self):
        """
        After ENABLE IMAP4rev2: no RECENT, SELECT's LIST line, SEARCH answered
        ESEARCH, a UTF-8 CREATE and LIST, STATUS DELETED, NEW refused.
        """
        def session():
            c = self.loggedIn()
            try:
                check(c.enable("IMAP4rev2"))
                enabled = c.response("ENABLED")[1]
                check(c.create(b'"' + CAFE_UTF8 + b'"'))
                check(c.append("INBOX", r"(\Deleted)", None, MESSAGE))
                check(c.append("INBOX", None, None, MESSAGE))
                check(c.select("INBOX"))
                recent = c.response("RECENT")[1]
                selectList = c.response("LIST")[1]
                check(c.search(None, "UNDELETED"))
                esearch = c.response("ESEARCH")[1]
                flags = check(c.fetch("1:*", "(FLAGS)"))
                listed = check(c.list('""', b'"' + CAFE_UTF8[:3] + b'*"'))
                status = check(c.status("INBOX", "(MESSAGES DELETED)"))
                try:
                    c.search(None, "NEW")
                    refused = None
                except imaplib.IMAP4.error as e:
                    refused = str(e)
                return enabled, recent, selectList, esearch, flags, listed, status, refused
            finally:
                c.logout()
        enabled, recent, selectList, esearch, flags, listed, status, refused = (
            yield self.inThread(session))
        self.assertEqual(enabled, [b"IMAP4rev2"])
        self.assertEqual(recent, [None])
        self.assertEqual(selectList, [b'(\\HasNoChildren) "/" "INBOX"'])
        self.assertEqual(len(esearch), 1)
        self.assertRegex(esearch[0], rb'^\(TAG "[A-Z0-9]+"\) ALL 2$')
        self.assertEqual(flags, [b"1 (FLAGS (\\Deleted))", b"2 (FLAGS ())"])
        self.assertEqual(listed, [b'(\\HasNoChildren) "/" "' + CAFE_UTF8 + b'"'])
        self.assertEqual(status, [b'"INBOX" (MESSAGES 2 DELETED 1)'])
        self.assertIn("BAD", refused or "")

    @defer.inlineCallbacks
    def test_rev2FlagUpdates(self):
        """A flag change made by another imaplib session reaches an IMAP4rev2 session's
        NOOP as a FETCH carrying the UID (RFC 9051 7.5.2); an IMAP4rev1 one gets FLAGS alone."""
        def session():
            rev2, rev1, other = self.loggedIn(), self.loggedIn(), self.loggedIn()
            try:
                check(other.append("INBOX", None, None, MESSAGE))
                check(rev2.enable("IMAP4rev2"))
                for c in (rev2, rev1, other):
                    check(c.select("INBOX"))
                uid = check(other.fetch("1", "(UID)"))
                check(other.store("1", "+FLAGS.SILENT", r"(\Flagged)"))
                check(rev2.noop())
                check(rev1.noop())
                return uid, rev2.response("FETCH")[1], rev1.response("FETCH")[1]
            finally:
                for c in (rev2, rev1, other):
                    c.logout()
        uid, seen2, seen1 = yield self.inThread(session)
        number = uid[0].split(b" ")[2].rstrip(b")")
        self.assertEqual(seen2, [b"1 (UID " + number + b" FLAGS (\\Flagged))"])
        self.assertEqual(seen1, [b"1 (FLAGS (\\Flagged))"])

    @defer.inlineCallbacks
    def test_switchedOff(self):
        """A listener with IMAP4rev2 off: not advertised, ENABLE enables nothing, * SEARCH stays."""
        def session():
            c = self.loggedIn("imapnorev2")
            try:
                caps = c.capabilities
                check(c.enable("IMAP4rev2"))
                enabled = c.response("ENABLED")[1]
                check(c.append("INBOX", None, None, MESSAGE))
                check(c.select("INBOX"))
                found = check(c.search(None, "ALL"))
                return caps, enabled, found
            finally:
                c.logout()
        caps, enabled, found = yield self.inThread(session)
        self.assertNotIn("IMAP4REV2", caps)
        self.assertEqual(enabled, [b""])
        self.assertEqual(found, [b"1"])

    @defer.inlineCallbacks
    def test_utf8Accept(self):
        """
        imaplib's enable('UTF8=ACCEPT') puts it in UTF-8 mode: CREATE, SELECT
        and LIST with UTF-8 names; APPEND UTF8 (~{n+}) (sent on imaplib's
        socket: its own append wraps the marker inside the literal, CPython
        gh-78319) stores the message as sent.
        """
        def session():
            c = self.loggedIn()
            try:
                self.assertIn("UTF8=ACCEPT", c.capabilities)
                check(c.enable("UTF8=ACCEPT"))
                self.assertTrue(c.utf8_enabled)
                check(c.create('"Caf\u00e9"'))
                c.send(b"U1 APPEND \"Caf\xc3\xa9\" UTF8 (~{%d+}\r\n" % (len(UTF8_MESSAGE),)
                       + UTF8_MESSAGE + b")\r\n")
                appended = c.readline()
                check(c.select('"Caf\u00e9"'))
                body = check(c.fetch("1", "(BODY.PEEK[])"))
                listed = check(c.list('""', '"Caf*"'))
                return appended, body, listed
            finally:
                c.logout()
        appended, body, listed = yield self.inThread(session)
        self.assertRegex(appended, rb"^U1 OK \[APPENDUID \d+ 1\] ")
        self.assertEqual(body[0][1], UTF8_MESSAGE)
        self.assertEqual(listed, [b'(\\HasNoChildren) "/" "' + CAFE_UTF8 + b'"'])
