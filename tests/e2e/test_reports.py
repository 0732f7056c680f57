"""
End to end: the class report pages of the console over real HTTP, after a
student's client logged in over IMAP and sent a message: an admin sees every
student, a student only their own row, as a table and as CSV.
"""

import csv
import imaplib
import io
import smtplib

from twisted.internet import defer
from twisted.trial import unittest

from tests.e2e.test_web import Browser
from tests.helpers import E2EMixin, listenerTOML

MESSAGE = b"From: demo@lab.test\r\nTo: ann@lab.test\r\nSubject: hi\r\n\r\nHi.\r\n"


class ReportPageTests(E2EMixin, unittest.TestCase):
    listeners = "".join([
        listenerTOML("submission", tls="starttls", name="submission", allow_plaintext_auth=True),
        listenerTOML("imap", tls="none", name="imap", allow_plaintext_auth=True),
    ]) + '\n[web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'

    def base(self):
        return "http://127.0.0.1:%d" % (self.server.getServiceNamed("web").port.getHost().port,)

    @defer.inlineCallbacks
    def setUp(self):
        E2EMixin.setUp(self)
        users = self.server.users
        yield self.inThread(users.addUser, "ann@lab.test", "annpw", "PLAIN")
        yield self.inThread(users.addUser, "teacher@lab.test", "teachpw", "PLAIN")
        yield self.inThread(users.setAdmin, "teacher@lab.test", True)

        def clients():
            c = imaplib.IMAP4("127.0.0.1", self.port("imap"), timeout=10)
            c.login("demo@lab.test", "demo")
            c.logout()
            c = smtplib.SMTP("127.0.0.1", self.port("submission"), timeout=10)
            c.starttls(context=self.tlsContext())
            c.login("demo@lab.test", "demo")
            c.sendmail("demo@lab.test", ["ann@lab.test"], MESSAGE)
            c.quit()
        yield self.inThread(clients)

    def browse(self, address, password, *paths):
        browser = Browser(self.base())
        status, _, _ = browser.login(address, password)
        self.assertEqual(status, 200)
        return [browser.request(path) for path in paths]

    @defer.inlineCallbacks
    def test_admin(self):
        """An admin's report lists every student, the silent ones too, in the table and the CSV."""
        (status, _, page), (csvStatus, headers, text) = yield self.inThread(
            self.browse, "teacher@lab.test", "teachpw", "/reports", "/reports.csv")
        self.assertEqual((status, csvStatus), (200, 200))
        self.assertIn("Class report", page)
        self.assertIn("ann@lab.test", page)
        self.assertEqual(headers["Content-Type"], "text/csv; charset=utf-8")
        self.assertEqual(headers["Content-Disposition"], 'attachment; filename="class-report.csv"')
        rows = {row["address"]: row for row in csv.DictReader(io.StringIO(text))}
        self.assertEqual(sorted(rows), ["ann@lab.test", "demo@lab.test", "teacher@lab.test"])
        demo = rows["demo@lab.test"]
        self.assertEqual((demo["logins_imap"], demo["logins_smtp"], demo["tls_used"],
                          demo["sent"], demo["sent_tls"]), ("1", "1", "sometimes", "1", "1"))
        self.assertEqual(rows["ann@lab.test"]["received"], "1")
        # The teacher's own console login is not a mail login.
        self.assertEqual(rows["teacher@lab.test"]["tls_used"], "none")

    @defer.inlineCallbacks
    def test_student(self):
        """A student sees only their own row."""
        (status, _, page), (_, _, text) = yield self.inThread(
            self.browse, "ann@lab.test", "annpw", "/reports", "/reports.csv")
        self.assertEqual(status, 200)
        self.assertNotIn("demo@lab.test", page)
        self.assertEqual([row["address"] for row in csv.DictReader(io.StringIO(text))],
                         ["ann@lab.test"])

    @defer.inlineCallbacks
    def test_api(self):
        """The API's report gives a student their own row only, an admin every student's."""
        import json
        [(status, _, student)] = yield self.inThread(
            self.browse, "ann@lab.test", "annpw", "/api/v1/report")
        [(_, _, admin)] = yield self.inThread(
            self.browse, "teacher@lab.test", "teachpw", "/api/v1/report")
        self.assertEqual(status, 200)
        self.assertEqual([row["address"] for row in json.loads(student)["students"]],
                         ["ann@lab.test"])
        self.assertEqual(json.loads(student)["students"][0]["received"], 1)
        self.assertEqual([row["address"] for row in json.loads(admin)["students"]],
                         ["ann@lab.test", "demo@lab.test", "teacher@lab.test"])

    @defer.inlineCallbacks
    def test_loginRequired(self):
        """Without a login the report redirects to the login form."""
        status, headers, _ = yield self.inThread(
            Browser(self.base(), follow=False).request, "/reports.csv")
        self.assertEqual((status, headers["Location"]), (303, "/login?next=/reports.csv"))
