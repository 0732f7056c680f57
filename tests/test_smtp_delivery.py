"""
Tests for L{mailstack.smtp.delivery}: recipient policy and delivery into the store.
"""

import io

from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from mailstack.smtp.delivery import ChainedReader, SMTPPolicy
from mailstack.smtp.server import Envelope
from tests.fakes import FakeUsers
from tests.stores import StoreChoice, everyStore


class PolicySetup(StoreChoice):
    def setUp(self):
        # A real store; without a reactor the Maildir does its file work at
        # once, so its Deferreds have fired when the call returns.
        self.store = self.makeStore()
        self.policy = SMTPPolicy(["lab.test"], FakeUsers("demo@lab.test"), self.store)
        self.inbox = self.successResultOf(
            self.store.account("demo@lab.test").openMailbox("INBOX"))

    def delivered(self):
        """The bytes of every message in demo's INBOX, claiming nothing."""
        self.successResultOf(self.inbox.sync(claimRecent=False))
        out = []
        for info in self.inbox.messages():
            with self.inbox.openMessage(info.uid) as f:
                out.append(f.read())
        return out

    def deliver(self, recipients):
        envelope = Envelope("kim@example.com", {})
        envelope.recipients = recipients
        return self.policy.deliver(envelope, b"Received: x\r\n", io.BytesIO(b"body\r\n"), "ID")


class PolicyTests(PolicySetup, unittest.TestCase):
    """Recipients and delivery, on each store."""

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

    @defer.inlineCallbacks
    def test_deliverOnceEach(self):
        """Each local recipient gets one copy with Return-Path and trace header, even if named twice."""
        yield self.deliver([("demo@lab.test", "local"), ("demo@lab.test", "local")])
        self.assertEqual(self.delivered(), [
            b"Return-Path: <kim@example.com>\r\nReceived: x\r\nbody\r\n"])

    @defer.inlineCallbacks
    def test_twoRecipientsEachGetACopy(self):
        """Two local recipients: one copy each, in each INBOX."""
        yield self.deliver([("demo@lab.test", "local"), ("bob@lab.test", "local")])
        bob = self.successResultOf(self.store.account("bob@lab.test").openMailbox("INBOX"))
        self.successResultOf(bob.sync(claimRecent=False))
        self.assertEqual(len(bob.messages()), 1)
        self.assertEqual(len(self.delivered()), 1)


class ChainedReaderTests(unittest.TestCase):
    """The header prefix and the spooled body read as one stream."""

    def sources(self):
        return ChainedReader(b"Return-Path: <a@b>\r\n", io.BytesIO(b"body line\r\n" * 3))

    def test_piecesInOrder(self):
        """Pieces of a given size come from one source at a time, in order, to the end."""
        reader = self.sources()
        pieces = iter(lambda: reader.read(8), b"")
        self.assertEqual(list(pieces), [b"Return-P", b"ath: <a@", b"b>\r\n", b"body lin",
                                        b"e\r\nbody ", b"line\r\nbo", b"dy line\r",
                                        b"\n"])

    def test_readAllAndRewind(self):
        """read() with no size gives everything left; seek(0) starts again; readinto works."""
        reader = self.sources()
        whole = b"Return-Path: <a@b>\r\n" + b"body line\r\n" * 3
        self.assertEqual(reader.read(4), b"Retu")
        self.assertEqual(reader.read(), whole[4:])
        self.assertEqual(reader.read(), b"")
        reader.seek(0)
        self.assertEqual(reader.read(None), whole)
        reader.seek(0)
        buffer = bytearray(100)
        self.assertEqual(reader.readinto(buffer), 20)
        self.assertEqual(bytes(buffer[:20]), whole[:20])
        reader.seek(0)
        self.assertEqual(io.BufferedReader(reader).read(), whole)


class DeliveryLogTests(PolicySetup, unittest.TestCase):
    """The one log line of a delivery."""

    def setUp(self):
        PolicySetup.setUp(self)
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    @defer.inlineCallbacks
    def test_deliveredLine(self):
        """The line names the queue ID, the sender (braces kept as sent) and the recipients."""
        envelope = Envelope("a{b}c%s@example.com", {})
        envelope.recipients = [("demo@lab.test", "local")]
        yield self.policy.deliver(envelope, b"Received: x\r\n", io.BytesIO(b"body\r\n"), "Q1")
        [event] = [e for e in self.events if e.get("id") == "Q1"]
        self.assertEqual(formatEvent(event),
                         "Q1: from <a{b}c%s@example.com> delivered to ['demo@lab.test'] "
                         "queued for []")
        self.assertEqual((event["sender"], event["local"], event["relay"]),
                         ("a{b}c%s@example.com", ["demo@lab.test"], []))


class MaildirRescanTests(PolicySetup, unittest.TestCase):
    """The Maildir store's delivery skips the rescan nobody needs."""

    maildirOnly = True

    @defer.inlineCallbacks
    def test_noteDeliveryOnlyWhenListened(self):
        """Open sessions are told of the delivery; with none, no rescan is done."""
        # Telling sessions is the store's part of IMailStore.deliver now: a
        # rescan of the INBOX is a sync of it, counted here.
        syncs = []
        original = self.inbox.sync
        self.inbox.sync = lambda *a, **kw: syncs.append(1) or original(*a, **kw)
        yield self.deliver([("demo@lab.test", "local")])
        self.assertEqual(len(syncs), 0)
        told = []

        class Session:
            def mailboxChanged(self, mailbox, changes):
                told.append(changes.added)
        self.inbox.addListener(Session())
        yield self.deliver([("demo@lab.test", "local")])
        self.assertEqual(len(syncs), 1)
        self.assertEqual(told, [[1, 2]])


everyStore(globals())
