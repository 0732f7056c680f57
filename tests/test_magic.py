"""
Tests for the lab's magic recipients (L{mailstack.smtp.magic}, C{[[lab.magic]]}):
their replies, the greylist's timing, slow replies and late bounces, on a
L{task.Clock}; and their configuration.
"""

import email
import io

from twisted.trial import unittest

from mailstack.capture import CaptureStore
from mailstack.config import ConfigError, MagicRecipientConfig, loadConfig
from mailstack.smtp.delivery import SMTPPolicy
from mailstack.smtp.magic import MagicRecipients
from mailstack.smtp.plugin import labDSNMaker
from mailstack.smtp.server import Envelope, SMTPServer, SMTPSettings
from mailstack.storage.memory import MemoryStore
from tests.fakes import FakeReactor, FakeTLSTransport, FakeUsers
from tests.helpers import writeConfig

ENTRIES = (
    MagicRecipientConfig(action="tempfail", local_part="tempfail"),
    MagicRecipientConfig(action="reject", address="nobody@example.com"),
    MagicRecipientConfig(action="slow", local_part="slow", seconds=30.0),
    MagicRecipientConfig(action="greylist", local_part="greylist", seconds=60.0),
    MagicRecipientConfig(action="bounce", local_part="bounce", seconds=20.0),
    MagicRecipientConfig(action="reject", local_part="postmaster"),
    MagicRecipientConfig(action="tempfail", local_part="special"),
    MagicRecipientConfig(action="reject", address="special@example.com"),
)

MESSAGE = b"From: ann@lab.test\r\nTo: bounce@example.com\r\nSubject: homework 3\r\n\r\nbody\r\n"


class MagicSetup:
    def setUp(self):
        self.reactor = FakeReactor()
        self.reactor.advance(1700000000)
        self.store = MemoryStore()
        self.capture = CaptureStore(self.store, self.reactor)
        self.policy = SMTPPolicy(["lab.test"], FakeUsers("ann@lab.test"), self.store)
        self.policy.capture = self.capture
        self.magic = MagicRecipients(ENTRIES, self.reactor, labDSNMaker("mail.lab.test"),
                                     self.policy.bounce)
        self.policy.magic = self.magic

    def envelope(self, sender="ann@lab.test", client="192.0.2.1"):
        return Envelope(sender, {}, client=client, helo="pc", authenticated=sender)

    def decide(self, recipient, envelope=None, authenticated="ann@lab.test"):
        return self.policy.checkRecipient(recipient, authenticated,
                                          envelope or self.envelope())

    def inbox(self, address):
        box = self.successResultOf(self.store.account(address).openMailbox("INBOX"))
        self.successResultOf(box.sync(claimRecent=False))
        out = []
        for info in box.messages():
            with box.openMessage(info.uid) as f:
                out.append(f.read())
        return out


class ReplyTests(MagicSetup, unittest.TestCase):
    """What each magic recipient answers at RCPT."""

    def test_tempfail(self):
        """tempfail answers 451 4.3.0, at any domain, in any case."""
        for recipient in ("tempfail@example.com", "TempFail@lab.test"):
            decision = self.decide(recipient)
            self.assertEqual((decision.kind, decision.reply.code, decision.reply.status),
                             (None, 451, "4.3.0"))
            self.assertIn(recipient, decision.reply.text)

    def test_reject(self):
        """reject answers 550 5.1.1, only at its address."""
        decision = self.decide("Nobody@Example.com")
        self.assertEqual((decision.kind, decision.reply.code, decision.reply.status),
                         (None, 550, "5.1.1"))
        self.assertIn("no smarthost", self.decide("nobody@example.org").reply.text)

    def test_addressBeforeLocalPart(self):
        """An entry for the whole address wins over one for its local part."""
        self.assertEqual(self.decide("special@example.com").reply.code, 550)
        self.assertEqual(self.decide("special@example.org").reply.code, 451)

    def test_postmasterNeverMagic(self):
        """postmaster is always accepted (RFC 5321 4.5.1), whatever the lab config says."""
        decision = self.decide("postmaster@lab.test")
        self.assertEqual(decision.kind, "local")

    def test_magicForAnyClient(self):
        """Magic recipients answer unauthenticated clients too (port 25 exercises)."""
        self.assertEqual(self.decide("tempfail@example.com", authenticated=None).reply.code, 451)

    def test_otherRecipientsUntouched(self):
        """Recipients that are not magic get the usual policy (here: no smarthost)."""
        decision = self.decide("student@example.com")
        self.assertEqual(decision.reply.code, 550)
        self.assertIn("no smarthost", decision.reply.text)


class SlowTests(MagicSetup, unittest.TestCase):
    """slow: the answer comes after its seconds, the reactor free meanwhile."""

    def test_answerWaits(self):
        """RCPT to slow@ is answered (accepted, captured) only after 30 seconds."""
        d = self.decide("slow@example.com")
        self.assertNoResult(d)
        self.reactor.advance(29.9)
        self.assertNoResult(d)
        self.reactor.advance(0.1)
        decision = self.successResultOf(d)
        self.assertEqual((decision.kind, decision.address), ("capture", "slow@example.com"))

    def test_sessionWaitsOthersDoNot(self):
        """One session waits for its slow RCPT (its pipelined NOOP too); another session is served meanwhile."""
        settings = SMTPSettings(hostname="mail.lab.test", tlsMode="none", tlsContext=None,
                                allowPlaintextAuth=True)

        def session():
            server = SMTPServer(settings, self.policy, None, self.reactor)
            transport = FakeTLSTransport()
            server.makeConnection(transport)
            server.dataReceived(b"EHLO pc\r\nMAIL FROM:<someone@example.org>\r\n")
            transport.clear()
            return server, transport
        slow, slowOut = session()
        slow.dataReceived(b"RCPT TO:<slow@example.com>\r\nNOOP\r\n")
        other, otherOut = session()
        other.dataReceived(b"RCPT TO:<tempfail@example.com>\r\n")
        self.assertEqual(slowOut.value(), b"")
        self.assertTrue(otherOut.value().startswith(b"451 4.3.0"))
        self.reactor.advance(30)
        self.assertEqual(slowOut.value(), b"250 2.1.5 Recipient <slow@example.com> OK\r\n"
                                          b"250 2.0.0 OK\r\n")
        for server in (slow, other):
            server.connectionLost(None)

    def test_stopCancels(self):
        """Stopping the service leaves no timer behind."""
        self.magic.startService()
        self.decide("slow@example.com")
        self.magic.stopService()
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class GreylistTests(MagicSetup, unittest.TestCase):
    """greylist: first try 451 4.7.1, a retry after the delay accepted."""

    def test_timing(self):
        """Refused at first and until 60 s have passed (saying how long is left), accepted from then on."""
        first = self.decide("greylist@example.com")
        self.assertEqual((first.kind, first.reply.code, first.reply.status), (None, 451, "4.7.1"))
        self.assertIn("60 seconds", first.reply.text)
        self.reactor.advance(45)
        early = self.decide("greylist@example.com")
        self.assertEqual(early.reply.code, 451)
        self.assertIn("15 seconds", early.reply.text)
        self.reactor.advance(15)
        accepted = self.decide("greylist@example.com")
        self.assertEqual((accepted.kind, accepted.reply), ("capture", None))
        self.reactor.advance(3600)
        self.assertEqual(self.decide("greylist@example.com").kind, "capture")

    def test_perClientAndSender(self):
        """Another client address or sender is greylisted on its own, from its own first try."""
        self.decide("greylist@example.com")
        self.reactor.advance(60)
        self.assertEqual(self.decide("greylist@example.com").kind, "capture")
        otherClient = self.envelope(client="192.0.2.99")
        self.assertEqual(self.decide("greylist@example.com", otherClient).reply.code, 451)
        otherSender = self.envelope(sender="bob@lab.test")
        self.assertEqual(self.decide("greylist@example.com", otherSender).reply.code, 451)
        self.assertEqual(self.decide("greylist@example.org").reply.code, 451)

    def test_forgetsStaleTries(self):
        """A first try never retried within a day is forgotten (the next is a first one again); one that passed is kept."""
        self.decide("greylist@example.com", self.envelope(client="192.0.2.50"))
        self.decide("greylist@example.com")
        self.reactor.advance(60)
        self.assertEqual(self.decide("greylist@example.com").kind, "capture")
        self.reactor.advance(2 * 86400)
        self.decide("greylist@example.com", self.envelope(client="192.0.2.51"))
        self.assertNotIn(("192.0.2.50", "ann@lab.test", "greylist@example.com"),
                         self.magic.greylist)
        self.assertEqual(
            self.decide("greylist@example.com", self.envelope(client="192.0.2.50")).reply.code,
            451)
        self.assertEqual(self.decide("greylist@example.com").kind, "capture")


class BounceTests(MagicSetup, unittest.TestCase):
    """bounce: accepted, captured, and an RFC 3464 DSN in the sender's INBOX later."""

    def send(self, recipients, sender="ann@lab.test"):
        envelope = self.envelope(sender=sender)
        envelope.recipients = recipients
        return self.policy.deliver(envelope, b"Received: from pc\r\n", io.BytesIO(MESSAGE),
                                   "QID1")

    def test_bounceAfterDelay(self):
        """The DSN arrives 20 s later: multipart/report naming the recipient, quoting the headers."""
        decision = self.decide("bounce@example.com")
        self.assertEqual(decision.kind, "bounce")
        self.assertIsNone(self.successResultOf(self.send([("bounce@example.com", "bounce")])))
        [captured] = self.successResultOf(self.capture.list())
        self.assertEqual(captured.envelope.recipients, ("bounce@example.com",))
        self.reactor.advance(19)
        self.assertEqual(self.inbox("ann@lab.test"), [])
        self.reactor.advance(1)
        [dsn] = self.inbox("ann@lab.test")
        report = email.message_from_bytes(dsn)
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        self.assertEqual(report["Return-Path"], "<>")
        self.assertEqual(report["To"], "<ann@lab.test>")
        human, status, headers = report.get_payload()
        self.assertEqual(status.get_content_type(), "message/delivery-status")
        perMessage, perRecipient = status.get_payload()
        self.assertEqual(perMessage["Reporting-MTA"], "dns; mail.lab.test")
        self.assertEqual(perRecipient["Final-Recipient"], "rfc822; bounce@example.com")
        self.assertEqual(perRecipient["Action"], "failed")
        self.assertEqual(perRecipient["Status"], "5.1.1")
        self.assertEqual(headers.get_content_type(), "text/rfc822-headers")
        self.assertIn("Subject: homework 3", headers.get_payload())
        self.assertIn("Received: from pc", headers.get_payload())

    def test_oneBounceForSeveral(self):
        """Several bouncing recipients of one message share one DSN; local ones are delivered."""
        self.successResultOf(self.send([("bounce@example.com", "bounce"),
                                        ("bounce@example.org", "bounce"),
                                        ("ann@lab.test", "local")]))
        self.assertEqual(len(self.inbox("ann@lab.test")), 1)
        self.reactor.advance(20)
        messages = self.inbox("ann@lab.test")
        self.assertEqual(len(messages), 2)
        status = email.message_from_bytes(messages[1]).get_payload()[1]
        self.assertEqual([block["Final-Recipient"] for block in status.get_payload()[1:]],
                         ["rfc822; bounce@example.com", "rfc822; bounce@example.org"])

    def test_nullSenderNotBounced(self):
        """Mail from the null sender is never bounced (no bounce of a bounce)."""
        self.successResultOf(self.send([("bounce@example.com", "bounce")], sender=""))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_stopDropsPendingBounces(self):
        """Stopping the server cancels bounces not sent yet (no timer left behind)."""
        self.magic.startService()
        self.successResultOf(self.send([("bounce@example.com", "bounce")]))
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        self.magic.stopService()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.reactor.advance(20)
        self.assertEqual(self.inbox("ann@lab.test"), [])


class ConfigTests(unittest.TestCase):
    """[lab] capture and [[lab.magic]] in the config file."""

    def load(self, lab):
        path = writeConfig(self, extra=lab, text="""
            [server]
            hostname = "mail.lab.test"
            data_dir = "var"
            domains = ["lab.test"]
            """)
        return loadConfig(path, checkFiles=False)

    def assertError(self, lab, key, reason):
        with self.assertRaises(ConfigError) as caught:
            self.load(lab)
        text = str(caught.exception)
        self.assertNotIn("\n", text)
        self.assertIn(": %s: " % (key,), text)
        self.assertIn(reason, text)

    def test_defaults(self):
        """No [lab] keys: capture off, no magic recipients."""
        lab = self.load("").lab
        self.assertEqual((lab.capture, lab.magic), (False, ()))

    def test_entries(self):
        """Each table becomes an entry, lower-cased, with its action's default seconds."""
        lab = self.load("""
            [lab]
            capture = true
            [[lab.magic]]
            local_part = "TempFail"
            action = "tempfail"
            [[lab.magic]]
            address = "Slow@Example.com"
            action = "slow"
            seconds = 2.5
            [[lab.magic]]
            local_part = "greylist"
            action = "greylist"
            [[lab.magic]]
            local_part = "bounce"
            action = "bounce"
            """).lab
        self.assertTrue(lab.capture)
        self.assertEqual(lab.magic, (
            MagicRecipientConfig(action="tempfail", local_part="tempfail"),
            MagicRecipientConfig(action="slow", address="slow@example.com", seconds=2.5),
            MagicRecipientConfig(action="greylist", local_part="greylist", seconds=60.0),
            MagicRecipientConfig(action="bounce", local_part="bounce", seconds=5.0)))

    def test_errors(self):
        """Each mistake is one line naming the key at fault."""
        cases = [
            ('[lab]\ncapture = "yes"\n', "lab.capture", "true or false"),
            ('[lab]\nmagic = "x"\n', "lab.magic", "a list"),
            ('[[lab.magic]]\nlocal_part = "x"\n', "lab.magic[0].action", "required"),
            ('[[lab.magic]]\nlocal_part = "x"\naction = "explode"\n', "lab.magic[0].action",
             "must be one of tempfail, reject, slow, greylist, bounce"),
            ('[[lab.magic]]\naction = "reject"\n', "lab.magic[0]", "needs address or local_part"),
            ('[[lab.magic]]\naction = "reject"\naddress = "a@b.example"\nlocal_part = "a"\n',
             "lab.magic[0]", "needs address or local_part"),
            ('[[lab.magic]]\naction = "reject"\naddress = "nodomain"\n',
             "lab.magic[0].address", "not an address"),
            ('[[lab.magic]]\naction = "reject"\nlocal_part = "a@b"\n',
             "lab.magic[0].local_part", "not a local part"),
            ('[[lab.magic]]\naction = "reject"\nlocal_part = "a"\nseconds = 3\n',
             "lab.magic[0].seconds", "not used by action 'reject'"),
            ('[[lab.magic]]\naction = "slow"\nlocal_part = "a"\nseconds = 0\n',
             "lab.magic[0].seconds", "must be over 0"),
            ('[[lab.magic]]\naction = "slow"\nlocal_part = "a"\nseconds = true\n',
             "lab.magic[0].seconds", "must be an integer or a number"),
            ('[[lab.magic]]\naction = "slow"\nlocal_part = "a"\ncolour = 1\n',
             "lab.magic[0].colour", "unknown key"),
            ('[[lab.magic]]\naction = "slow"\nlocal_part = "a"\n'
             '[[lab.magic]]\naction = "reject"\nlocal_part = "A"\n',
             "lab.magic[1].local_part", "'a' is already lab.magic[0]"),
        ]
        for lab, key, reason in cases:
            self.assertError(lab, key, reason)
