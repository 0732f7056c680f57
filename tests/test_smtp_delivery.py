"""
Tests for L{mailstack.smtp.delivery}: recipient policy and delivery into the store.
"""

import io

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.smtp.delivery import SMTPPolicy
from mailstack.smtp.server import Envelope
from tests.fakes import FakeUsers


class FakeMailbox:
    def __init__(self, listening=False):
        self.delivered = []
        self.notes = 0
        self.listening = listening

    def deliver(self, source):
        self.delivered.append(source.read())

    def noteDelivery(self, wait=True):
        self.notes += 1

    def hasListeners(self):
        return self.listening


class FakeStore:
    def __init__(self):
        self.mailboxes = {}

    def account(self, address):
        store = self

        class Account:
            def getMailbox(self, name):
                return store.mailboxes.setdefault((address, name), FakeMailbox())
        return Account()


class PolicyTests(unittest.TestCase):
    def setUp(self):
        self.store = FakeStore()
        self.policy = SMTPPolicy(["lab.test"], FakeUsers("demo@lab.test"), self.store,
                                 runInThread=lambda f, *a: defer.maybeDeferred(f, *a))

    def test_recipients(self):
        """Local users accepted, unknown local 550 5.1.1, others 550 5.7.1 unless authenticated."""
        self.assertEqual(
            self.successResultOf(self.policy.checkRecipient("Demo@lab.test", None)).kind, "local")
        unknown = self.successResultOf(self.policy.checkRecipient("ghost@lab.test", None))
        self.assertEqual((unknown.kind, unknown.reply.code, unknown.reply.status),
                         (None, 550, "5.1.1"))
        relay = self.policy.checkRecipient("x@elsewhere.example", None)
        self.assertEqual((relay.reply.code, relay.reply.status), (550, "5.7.1"))
        noSmarthost = self.policy.checkRecipient("x@elsewhere.example", "demo@lab.test")
        self.assertIn("no smarthost", noSmarthost.reply.text)

    def test_postmaster(self):
        """postmaster (bare or at a local domain) is accepted without an account."""
        for name in ("postmaster", "PostMaster@lab.test"):
            decision = self.policy.checkRecipient(name, None)
            self.assertEqual((decision.kind, decision.address), ("local", "postmaster@lab.test"))

    def deliver(self, recipients):
        envelope = Envelope("kim@example.com", {})
        envelope.recipients = recipients
        return self.policy.deliver(envelope, b"Received: x\r\n", io.BytesIO(b"body\r\n"), "ID")

    @defer.inlineCallbacks
    def test_deliverOnceEach(self):
        """Each local recipient gets one copy with Return-Path and trace header, even if named twice."""
        yield self.deliver([("demo@lab.test", "local"), ("demo@lab.test", "local")])
        mailbox = self.store.mailboxes[("demo@lab.test", "INBOX")]
        self.assertEqual(mailbox.delivered, [
            b"Return-Path: <kim@example.com>\r\nReceived: x\r\nbody\r\n"])

    @defer.inlineCallbacks
    def test_noteDeliveryOnlyWhenListened(self):
        """Open sessions are told of the delivery; with none, no rescan is done."""
        yield self.deliver([("demo@lab.test", "local")])
        mailbox = self.store.mailboxes[("demo@lab.test", "INBOX")]
        self.assertEqual(mailbox.notes, 0)
        mailbox.listening = True
        yield self.deliver([("demo@lab.test", "local")])
        self.assertEqual(mailbox.notes, 1)
