"""
End to end: what a student's clients do over real sockets (imaplib, poplib,
smtplib) is counted for the class report: logins by protocol and TLS state,
messages sent and received.
"""

import imaplib
import poplib
import smtplib

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.activity import LOGIN, RECEIVED, SENT
from mailstack.web.reports import classReport, reportCSV
from tests.helpers import E2EMixin, listenerTOML

MESSAGE = b"From: demo@lab.test\r\nTo: ann@lab.test\r\nSubject: hello\r\n\r\nHi.\r\n"


class ActivityTests(E2EMixin, unittest.TestCase):
    listeners = "".join([
        listenerTOML("submission", tls="starttls", name="submission",
                     allow_plaintext_auth=True),
        listenerTOML("smtp", tls="none", name="smtp"),
        listenerTOML("imap", tls="none", name="imap", allow_plaintext_auth=True),
        listenerTOML("imap", tls="implicit", name="imaps"),
        listenerTOML("pop3", tls="none", name="pop3", allow_plaintext_auth=True),
    ]) + '\n[relay]\nsmarthost = "127.0.0.1:9"\n'  # mail for elsewhere is queued, not received

    @defer.inlineCallbacks
    def test_countedPerUser(self):
        """IMAP plain and TLS logins, a POP3 login, an SMTP login over STARTTLS and its message are counted."""
        yield self.addUser("ann@lab.test", "annpw")

        def clients():
            c = imaplib.IMAP4("127.0.0.1", self.port("imap"), timeout=10)
            c.login("demo@lab.test", "demo")
            c.logout()
            c = imaplib.IMAP4_SSL("127.0.0.1", self.port("imaps"),
                                  ssl_context=self.tlsContext(), timeout=10)
            c.login("demo@lab.test", "demo")
            c.logout()
            c = imaplib.IMAP4_SSL("127.0.0.1", self.port("imaps"),
                                  ssl_context=self.tlsContext(), timeout=10)
            try:
                c.login("demo@lab.test", "wrong")
            except imaplib.IMAP4.error:
                pass
            c.logout()
            c = poplib.POP3("127.0.0.1", self.port("pop3"), timeout=10)
            c.user("ann@lab.test")
            c.pass_("annpw")
            c.quit()
            c = smtplib.SMTP("127.0.0.1", self.port("submission"), timeout=10)
            c.starttls(context=self.tlsContext())
            c.login("demo@lab.test", "demo")
            c.sendmail("demo@lab.test", ["ann@lab.test", "someone@elsewhere.test"], MESSAGE)
            c.quit()
            # Unauthenticated mail for a local user: received, sent by nobody known.
            c = smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10)
            c.sendmail("kim@example.com", ["ann@lab.test"], MESSAGE)
            c.quit()
        yield self.inThread(clients)

        activity = self.server.activity
        self.assertEqual(dict(activity.user("demo@lab.test").counts), {
            (LOGIN, "imap", False): 1, (LOGIN, "imap", True): 1, (LOGIN, "smtp", True): 1,
            (SENT, "smtp", True): 1})
        self.assertEqual(dict(activity.user("ann@lab.test").counts), {
            (LOGIN, "pop3", False): 1, (RECEIVED, "smtp", True): 1,
            (RECEIVED, "smtp", False): 1})
        self.assertEqual(activity.addresses(), ["ann@lab.test", "demo@lab.test"])
        rows = classReport(activity)
        self.assertEqual(reportCSV(rows).splitlines()[1].split(",")[:10],
                         ["ann@lab.test", "0", "1", "0", "0", "1", "never", "0", "0", "2"])

    def addUser(self, address, password):
        return self.inThread(self.server.users.addUser, address, password, "PLAIN")
