"""
End-to-end lab capture mode and magic recipients: the real service on
loopback, driven by smtplib, with bounces read back over IMAP and POP3.
"""

import email
import imaplib
import os
import poplib
import smtplib
import time

from twisted.internet import defer, protocol, reactor, threads
from twisted.trial import unittest

from mailstack.capture import CAPTURE_ACCOUNT
from tests.helpers import BASE_CONFIG, listenerTOML, sleep, startMailServer

LISTENERS = (listenerTOML("submission", tls="starttls", name="submission")
             + listenerTOML("smtp", name="mta")
             + listenerTOML("imap", name="imap", allow_plaintext_auth=True)
             + listenerTOML("pop3", name="pop3", allow_plaintext_auth=True))

MESSAGE = (b"From: Demo <demo@lab.test>\r\n"
           b"To: Friend <x@example.com>\r\n"
           b"Subject: lab 4: the fake internet\r\n"
           b"\r\n"
           b"Hello from the lab.\r\n")

MAGIC = """
[[lab.magic]]
local_part = "tempfail"
action = "tempfail"

[[lab.magic]]
address = "nobody@example.com"
action = "reject"

[[lab.magic]]
local_part = "slow"
action = "slow"
seconds = 2

[[lab.magic]]
local_part = "greylist"
action = "greylist"
seconds = 1

[[lab.magic]]
local_part = "bounce"
action = "bounce"
seconds = 0.5
"""


class SmarthostWatch(protocol.ServerFactory):
    """A smarthost that only counts connections (capture mode must make none)."""

    def __init__(self):
        self.connections = 0

    def buildProtocol(self, addr):
        self.connections += 1
        return protocol.Protocol()


class LabCase:
    """
    The real server with C{lab} added to its [lab] table and C{extra} after
    the listeners; with C{smarthost}, a watched smarthost in [relay].
    """

    lab = ""
    extra = ""
    smarthost = True

    def setUp(self):
        extra = LISTENERS + self.extra
        self.watch = SmarthostWatch()
        if self.smarthost:
            port = reactor.listenTCP(0, self.watch, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            extra += '\n[relay]\nsmarthost = "127.0.0.1:%d"\n' % (port.getHost().port,)
        text = BASE_CONFIG.replace("[lab]\n", "[lab]\n" + self.lab)
        self.mailServer = startMailServer(self, extra, text)
        self.server = self.mailServer.service

    def submit(self, sender, password, recipients, message=MESSAGE):
        """Send over submission with STARTTLS and AUTH (in a thread): C{sendmail}'s refusals."""
        def send():
            with smtplib.SMTP("127.0.0.1", self.server.listenerPort("submission"),
                              timeout=20) as client:
                client.starttls(context=self.mailServer.sslContext())
                client.login(sender, password)
                return client.sendmail(sender, recipients, message)
        return threads.deferToThread(send)

    def rcpt(self, recipient, sender="demo@lab.test"):
        """One MAIL and RCPT over port 25 without AUTH (in a thread): C{(code, text, seconds)}."""
        def ask():
            with smtplib.SMTP("127.0.0.1", self.server.listenerPort("mta"),
                              timeout=20) as client:
                client.ehlo("pc.lab.test")
                client.mail(sender)
                start = time.monotonic()
                code, text = client.rcpt(recipient)
                return code, text, time.monotonic() - start
        return threads.deferToThread(ask)

    def queued(self):
        """The files in the relay queue's directory."""
        found = []
        for directory, _, files in os.walk(self.server.config.queue_dir):
            found.extend(os.path.join(directory, f) for f in files)
        return found


class CaptureOnTests(LabCase, unittest.TestCase):
    """[lab] capture = true, with a smarthost configured."""

    lab = "capture = true\n"

    @defer.inlineCallbacks
    def test_submittedMailCaptured(self):
        """Submitted mail for other domains gets 250, reaches no smarthost, and is in the capture store with its envelope."""
        refused = yield self.submit("demo@lab.test", "demo", ["x@example.com", "y@example.org"])
        self.assertEqual(refused, {})
        capture = self.server.capture
        [summary] = yield capture.list()
        found = yield capture.get(summary.id)
        envelope = found.envelope
        self.assertEqual((envelope.sender, envelope.recipients, envelope.authenticated,
                          envelope.client),
                         ("demo@lab.test", ("x@example.com", "y@example.org"),
                          "demo@lab.test", "127.0.0.1"))
        self.assertIn("TLSv1.", envelope.tls)
        self.assertIsNotNone(envelope.queueID)
        self.assertTrue(found.raw.startswith(b"Received: from "))
        self.assertTrue(found.raw.endswith(MESSAGE))
        self.assertIn(b"(Authenticated sender: demo@lab.test)", found.raw)
        self.assertEqual(found.subject, "lab 4: the fake internet")
        self.assertLess(abs(envelope.time - time.time()), 60)
        yield sleep(0.3)
        self.assertEqual((self.watch.connections, self.queued()), (0, []))

    @defer.inlineCallbacks
    def test_perSender(self):
        """Each student finds their own captured mail; the whole store holds everybody's."""
        self.mailServer.addUser("ann@lab.test", "annpass")
        yield self.submit("demo@lab.test", "demo", ["x@example.com"])
        yield self.submit("ann@lab.test", "annpass", ["z@example.net"],
                          MESSAGE.replace(b"Demo <demo@", b"Ann <ann@"))
        capture = self.server.capture
        ann = yield capture.list("ann@lab.test")
        self.assertEqual([m.envelope.recipients for m in ann], [("z@example.net",)])
        demo = yield capture.list("demo@lab.test")
        self.assertEqual([m.envelope.recipients for m in demo], [("x@example.com",)])
        self.assertEqual(len((yield capture.list())), 2)
        self.assertEqual((yield capture.senders()), [("ann@lab.test", 1), ("demo@lab.test", 1)])

    @defer.inlineCallbacks
    def test_localStillDelivered(self):
        """A local recipient next to a captured one gets the message in their INBOX."""
        yield self.submit("demo@lab.test", "demo", ["demo@lab.test", "x@example.com"])
        [local] = yield self.mailServer.waitForMessages("demo@lab.test", 1)
        self.assertTrue(local.endswith(MESSAGE))
        [captured] = yield self.server.capture.list()
        self.assertEqual(captured.envelope.recipients, ("x@example.com",))

    @defer.inlineCallbacks
    def test_unauthenticatedNotCaptured(self):
        """Port 25 without AUTH is no open capture: mail for another domain gets 550 5.7.1."""
        code, text, _ = yield self.rcpt("x@example.com", sender="kim@example.org")
        self.assertEqual((code, text[:5]), (550, b"5.7.1"))

    @defer.inlineCallbacks
    def test_captureAccountReserved(self):
        """Nobody can log in to the capture account over IMAP or POP3."""
        yield self.submit("demo@lab.test", "demo", ["x@example.com"])

        def imap():
            client = imaplib.IMAP4("127.0.0.1", self.server.listenerPort("imap"))
            try:
                client.login(CAPTURE_ACCOUNT, "")
            except imaplib.IMAP4.error as e:
                return str(e)
            finally:
                client.shutdown()

        def pop():
            client = poplib.POP3("127.0.0.1", self.server.listenerPort("pop3"))
            try:
                client.user(CAPTURE_ACCOUNT)
                client.pass_("x")
            except poplib.error_proto as e:
                return str(e)
            finally:
                client.close()
        self.assertIn("AUTHENTICATIONFAILED", (yield threads.deferToThread(imap)))
        self.assertIn("-ERR", (yield threads.deferToThread(pop)))


class CaptureOffTests(LabCase, unittest.TestCase):
    """Without capture mode, mail for other domains goes as before."""

    smarthost = False

    @defer.inlineCallbacks
    def test_relayRefused(self):
        """No capture and no smarthost: an authenticated client's mail for another domain gets 550 5.7.1, nothing kept."""
        failure = yield self.assertFailure(
            self.submit("demo@lab.test", "demo", ["x@example.com"]),
            smtplib.SMTPRecipientsRefused)
        [(code, text)] = failure.recipients.values()
        self.assertEqual(code, 550)
        self.assertIn(b"no smarthost", text)
        self.assertIsNone(self.server.capture)


class CaptureOffRelayTests(LabCase, unittest.TestCase):
    """Without capture mode, with a smarthost: relayed (the watch sees it, so it would see a leak in capture mode)."""

    @defer.inlineCallbacks
    def test_relayed(self):
        """Submitted mail for another domain is queued and the smarthost is contacted."""
        self.assertEqual((yield self.submit("demo@lab.test", "demo", ["x@example.com"])), {})
        for _ in range(100):
            if self.watch.connections:
                break
            yield sleep(0.05)
        self.assertEqual(self.watch.connections, 1)


class MagicTests(LabCase, unittest.TestCase):
    """[[lab.magic]] recipients, each answering as configured."""

    smarthost = False
    extra = MAGIC

    @defer.inlineCallbacks
    def test_tempfail(self):
        """tempfail@ (any domain) answers RCPT 451 4.3.0."""
        code, text, _ = yield self.rcpt("tempfail@example.com")
        self.assertEqual((code, text[:5]), (451, b"4.3.0"))

    @defer.inlineCallbacks
    def test_reject(self):
        """nobody@example.com answers RCPT 550 5.1.1."""
        code, text, _ = yield self.rcpt("nobody@example.com")
        self.assertEqual((code, text[:5]), (550, b"5.1.1"))

    @defer.inlineCallbacks
    def test_slow(self):
        """slow@ answers 250 after its two seconds, while another session is served at once."""
        slow = self.rcpt("slow@example.com")
        yield sleep(0.3)
        code, _, seconds = yield self.rcpt("tempfail@example.com")
        self.assertFalse(slow.called)
        self.assertLess(seconds, 1)
        code, text, seconds = yield slow
        self.assertEqual(code, 250)
        self.assertGreaterEqual(seconds, 1.9)

    @defer.inlineCallbacks
    def test_greylist(self):
        """greylist@ answers 451 4.7.1 at first and 250 to a retry a second later."""
        code, text, _ = yield self.rcpt("greylist@example.com")
        self.assertEqual((code, text[:5]), (451, b"4.7.1"))
        self.assertIn(b"Greylisted", text)
        yield sleep(1.1)
        code, _, _ = yield self.rcpt("greylist@example.com")
        self.assertEqual(code, 250)

    @defer.inlineCallbacks
    def test_bounce(self):
        """bounce@ accepts the message; half a second later an RFC 3464 DSN is in the sender's INBOX (IMAP and POP3)."""
        self.assertEqual((yield self.submit("demo@lab.test", "demo", ["bounce@example.com"])), {})
        [captured] = yield self.server.capture.list("demo@lab.test")
        self.assertEqual(captured.envelope.recipients, ("bounce@example.com",))
        yield self.mailServer.waitForMessages("demo@lab.test", 1)

        def imap():
            client = imaplib.IMAP4("127.0.0.1", self.server.listenerPort("imap"))
            try:
                client.login("demo@lab.test", "demo")
                client.select("INBOX")
                _, data = client.fetch("1", "(RFC822)")
                return data[0][1]
            finally:
                client.logout()

        def pop():
            client = poplib.POP3("127.0.0.1", self.server.listenerPort("pop3"))
            try:
                client.user("demo@lab.test")
                client.pass_("demo")
                return b"\r\n".join(client.retr(1)[1]) + b"\r\n"
            finally:
                client.quit()
        overIMAP = yield threads.deferToThread(imap)
        overPOP = yield threads.deferToThread(pop)
        self.assertEqual(overIMAP, overPOP)
        report = email.message_from_bytes(overIMAP)
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        self.assertEqual(report["Subject"], "Undelivered Mail Returned to Sender")
        _, status, headers = report.get_payload()
        recipient = status.get_payload()[1]
        self.assertEqual((recipient["Final-Recipient"], recipient["Action"], recipient["Status"]),
                         ("rfc822; bounce@example.com", "failed", "5.1.1"))
        self.assertIn("Subject: lab 4: the fake internet", headers.get_payload())
