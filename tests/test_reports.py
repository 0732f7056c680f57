"""
Tests for L{mailstack.web.reports}: class reports from recorded activity, as
rows, JSON-ready dicts and CSV.
"""

import csv
import io

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from mailstack.activity import ActivityRecorder
from mailstack.web import reports
from mailstack.web.context import WebContext


class FakeDirectory:
    """An IUserDirectory's listUsers, answered at once."""

    def __init__(self, addresses):
        self.addresses = addresses

    def listUsers(self):
        return defer.succeed([type("User", (), {"address": a})() for a in self.addresses])


class ReportTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1700000000)  # 2023-11-14T22:13:20Z
        self.activity = ActivityRecorder(None, self.clock)
        a = self.activity
        a.loggedIn("ann@lab.test", "imap", True)
        a.loggedIn("ann@lab.test", "imap", True)
        a.loggedIn("ann@lab.test", "smtp", True)
        self.clock.advance(3600)
        a.messageSent("ann@lab.test", "smtp", True)
        a.messageSent("ann@lab.test", "smtp", False)
        a.loggedIn("bob@lab.test", "pop3", False)
        a.loggedIn("bob@lab.test", "imap", True)
        a.messageReceived("bob@lab.test", "smtp", False)
        a.loggedIn("cy@lab.test", "pop3", False)

    def test_student(self):
        """A row counts logins per protocol, TLS and plaintext logins, sent and received."""
        row = reports.studentReport(self.activity, "ANN@lab.test")
        self.assertEqual((row.address, row.logins, row.loginsTLS, row.loginsPlaintext,
                          row.sent, row.sentTLS, row.received, row.tlsUsed),
                         ("ann@lab.test", {"smtp": 1, "pop3": 0, "imap": 2}, 3, 0, 2, 1, 0,
                          "always"))
        self.assertEqual((row.first, row.last), (1700000000, 1700003600))

    def test_tlsUsed(self):
        """TLS use is always, sometimes, never, or none without logins."""
        self.assertEqual([reports.studentReport(self.activity, a).tlsUsed for a in
                          ("ann@lab.test", "bob@lab.test", "cy@lab.test", "dee@lab.test")],
                         ["always", "sometimes", "never", "none"])

    def test_classIncludesSilentStudents(self):
        """Every user of the directory has a row, with zeros if nothing was counted; sorted by address."""
        rows = reports.classReport(self.activity, ["Dee@lab.test", "bob@lab.test"])
        self.assertEqual([r.address for r in rows],
                         ["ann@lab.test", "bob@lab.test", "cy@lab.test", "dee@lab.test"])
        self.assertEqual((rows[3].logins, rows[3].sent, rows[3].first), (
            {"smtp": 0, "pop3": 0, "imap": 0}, 0, None))

    def test_csv(self):
        """The CSV export has a header row and one CRLF-ended row per student."""
        text = reports.reportCSV(reports.classReport(self.activity, ["dee@lab.test"]))
        self.assertEqual(text, "\r\n".join([
            "address,logins_smtp,logins_pop3,logins_imap,logins_tls,logins_plaintext,"
            "tls_used,sent,sent_tls,received,first_seen,last_seen",
            "ann@lab.test,1,0,2,3,0,always,2,1,0,2023-11-14T22:13:20Z,2023-11-14T23:13:20Z",
            "bob@lab.test,0,1,1,1,1,sometimes,0,0,1,2023-11-14T23:13:20Z,2023-11-14T23:13:20Z",
            "cy@lab.test,0,1,0,0,1,never,0,0,0,2023-11-14T23:13:20Z,2023-11-14T23:13:20Z",
            "dee@lab.test,0,0,0,0,0,none,0,0,0,,",
        ]) + "\r\n")

    def test_csvFormulas(self):
        """A cell a spreadsheet would run as a formula is quoted with a leading apostrophe."""
        self.activity.loggedIn("=cmd|'/c calc'!a0@lab.test", "imap", True)
        rows = list(csv.reader(io.StringIO(reports.reportCSV(
            [reports.studentReport(self.activity, "=cmd|'/c calc'!a0@lab.test")]))))
        self.assertEqual(rows[1][0], "'=cmd|'/c calc'!a0@lab.test")

    def test_asDict(self):
        """The JSON form names every count and gives times in ISO 8601 UTC."""
        self.assertEqual(reports.studentReport(self.activity, "bob@lab.test").asDict(), {
            "address": "bob@lab.test", "logins": {"smtp": 0, "pop3": 1, "imap": 1},
            "logins_tls": 1, "logins_plaintext": 1, "tls_used": "sometimes",
            "sent": 0, "sent_tls": 0, "received": 1,
            "first_seen": "2023-11-14T23:13:20Z", "last_seen": "2023-11-14T23:13:20Z"})

    def test_contextReport(self):
        """The web context's report covers every user of its directory."""
        context = WebContext(config=None, store=None, directory=FakeDirectory(["eve@lab.test"]),
                             users=None, authPenalty=None, reactor=self.clock,
                             activity=self.activity)
        rows = self.successResultOf(reports.contextReport(context))
        self.assertEqual([r.address for r in rows],
                         ["ann@lab.test", "bob@lab.test", "cy@lab.test", "eve@lab.test"])
