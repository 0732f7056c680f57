"""
Tests for L{mailstack.capture} (the lab's capture store, on each store) and
the SMTP policy's capture mode (C{[lab] capture}): mail for other domains
kept, never relayed.
"""

import email
import io

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.auth.passwords import normalizeLoginName
from mailstack.auth.sqlitedb import SQLiteUsers
from mailstack.auth.passwords import InvalidAddress
from mailstack.capture import (
    CAPTURE_ACCOUNT, CaptureEnvelope, CaptureStore, NoSuchCapture, folderSender,
    senderFolder)
from mailstack.smtp.delivery import SMTPPolicy
from mailstack.smtp.server import Envelope
from mailstack.storage.interfaces import NoSpace
from mailstack.storage.names import isValidName
from tests.fakes import FakeReactor, FakeUsers
from tests.stores import StoreChoice, everyStore

MESSAGE = b"From: Ann <ann@lab.test>\r\nTo: x@example.com\r\nSubject: =?utf-8?q?H=C3=A9llo?=\r\n\r\nbody\r\n"


class FolderNameTests(unittest.TestCase):
    """Per-sender folder names."""

    def test_roundTrip(self):
        """Each sender gets a valid, URL-safe folder name from which the sender is read back."""
        for sender in ("ann@lab.test", "o'brien+tag@sub.example.com", "x_y-z@a.b", "",
                       "\"odd local\"@example.com", "j\u00f6rg@example.com"):
            name = senderFolder(sender)
            self.assertTrue(isValidName(name), name)
            self.assertNotIn(".", name)
            self.assertNotIn("/", name)
            self.assertEqual(folderSender(name), sender.lower())

    def test_caseIgnored(self):
        """Ann@Lab.Test and ann@lab.test share one folder."""
        self.assertEqual(senderFolder("Ann@Lab.Test"), senderFolder("ann@lab.test"))

    def test_distinct(self):
        """Senders that differ only in escaped characters still get distinct folders."""
        self.assertNotEqual(senderFolder("a.b@x.test"), senderFolder("a=2Eb@x.test"))
        self.assertNotEqual(senderFolder(""), senderFolder("null@x.test"))
        self.assertIsNone(folderSender("=61nn@x"))  # not how "ann@x" is written

    def test_longSenderHashed(self):
        """An address too long for a folder name gets a hashed one (valid, not decodable)."""
        sender = "a." * 60 + "@" + "b." * 60 + "test"
        name = senderFolder(sender)
        self.assertTrue(isValidName(name))
        self.assertIsNone(folderSender(name))
        self.assertNotEqual(name, senderFolder("c" + sender))


class ReservedAccountTests(unittest.TestCase):
    """The capture account cannot be anybody's login."""

    def test_noLoginName(self):
        """No login name normalises to the capture account."""
        self.assertIsNone(normalizeLoginName(CAPTURE_ACCOUNT, "lab.test"))
        self.assertIsNone(normalizeLoginName(CAPTURE_ACCOUNT.upper(), "lab.test"))

    def test_noSuchUserCanBeMade(self):
        """Adding a user with the capture account's address is refused."""
        users = SQLiteUsers(self.mktemp(), defaultDomain="lab.test", bcryptRounds=4)
        self.addCleanup(users.close)
        self.assertRaises(InvalidAddress, users.addUser, CAPTURE_ACCOUNT, "secret")


class CaptureStoreTests(StoreChoice, unittest.TestCase):
    """The capture store's API, on each store."""

    def setUp(self):
        self.reactor = FakeReactor()
        self.reactor.advance(1700000000)
        self.store = self.makeStore()
        self.capture = CaptureStore(self.store, self.reactor)

    def keep(self, sender="ann@lab.test", recipients=("x@example.com",), message=MESSAGE,
             **envelope):
        envelope = CaptureEnvelope(sender=sender, recipients=tuple(recipients), **envelope)
        return self.successResultOf(self.capture.capture(envelope, io.BytesIO(message)))

    def test_keepsEnvelopeAndMessage(self):
        """A captured message comes back byte for byte with its envelope, headers decoded."""
        messageID = self.keep(tls="TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
                              authenticated="ann@lab.test", client="127.0.0.1",
                              helo="client.example", queueID="ABC123")
        found = self.successResultOf(self.capture.get(messageID))
        self.assertEqual(found.raw, MESSAGE)
        self.assertEqual(found.size, len(MESSAGE))
        self.assertEqual(found.envelope, CaptureEnvelope(
            sender="ann@lab.test", recipients=("x@example.com",), time=1700000000.0,
            tls="TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
            authenticated="ann@lab.test", client="127.0.0.1", helo="client.example",
            queueID="ABC123"))
        self.assertEqual(found.subject, "H\u00e9llo")
        self.assertEqual(found.header("to"), "x@example.com")

    def test_perSenderListing(self):
        """Each sender's listing holds only their mail; the whole one all of it, newest first."""
        first = self.keep("ann@lab.test")
        self.reactor.advance(5)
        second = self.keep("bob@lab.test", ["y@example.org", "z@example.org"])
        self.reactor.advance(5)
        third = self.keep("Ann@lab.test")
        ann = self.successResultOf(self.capture.list("ann@LAB.test"))
        self.assertEqual([m.id for m in ann], [third, first])
        self.assertEqual([m.raw for m in ann], [None, None])
        everything = self.successResultOf(self.capture.list())
        self.assertEqual([m.id for m in everything], [third, second, first])
        self.assertEqual(everything[1].envelope.recipients, ("y@example.org", "z@example.org"))
        self.assertEqual(self.successResultOf(self.capture.senders()),
                         [("ann@lab.test", 2), ("bob@lab.test", 1)])
        self.assertEqual(self.successResultOf(self.capture.list("nobody@lab.test")), [])

    def test_nullAndLongSenders(self):
        """The null sender and an address too long to name a folder have their own views."""
        long = "a." * 60 + "@" + "b." * 60 + "test"
        self.keep("")
        self.keep(long)
        self.assertEqual(self.successResultOf(self.capture.senders()),
                         sorted([("", 1), (long, 1)]))
        [found] = self.successResultOf(self.capture.list(long))
        self.assertEqual(found.envelope.sender, long)

    def test_manyRecipientsShortLines(self):
        """An envelope of many long recipients is kept in lines under 998 octets and read back."""
        recipients = ["r%03d.%s@example.com" % (i, "x" * 200) for i in range(100)]
        messageID = self.keep(recipients=recipients)
        found = self.successResultOf(self.capture.get(messageID))
        self.assertEqual(found.envelope.recipients, tuple(recipients))
        self.assertEqual(found.raw, MESSAGE)
        account = self.store.account(CAPTURE_ACCOUNT)
        box = self.successResultOf(account.openMailbox(senderFolder("ann@lab.test")))
        with box.openMessage(box.messages()[0].uid) as f:
            stored = f.read()
        self.assertLess(max(len(line) for line in stored.split(b"\r\n")), 998)

    def test_deleteAndClear(self):
        """delete removes one message; clear one sender's or everything."""
        first = self.keep("ann@lab.test")
        self.keep("ann@lab.test")
        self.keep("bob@lab.test")
        self.assertTrue(self.successResultOf(self.capture.delete(first)))
        self.assertFalse(self.successResultOf(self.capture.delete(first)))
        self.failureResultOf(self.capture.get(first), NoSuchCapture)
        self.assertEqual(self.successResultOf(self.capture.clear("ann@lab.test")), 1)
        self.assertEqual(self.successResultOf(self.capture.senders()), [("bob@lab.test", 1)])
        self.assertEqual(self.successResultOf(self.capture.clear()), 1)
        self.assertEqual(self.successResultOf(self.capture.list()), [])
        # the folder comes back with the sender's next message
        self.keep("ann@lab.test")
        self.assertEqual(len(self.successResultOf(self.capture.list("ann@lab.test"))), 1)

    def test_unknownIDs(self):
        """Ids that name nothing fail with NoSuchCapture (and delete answers False)."""
        self.keep()
        for bad in ("", "nonsense", "ann@lab=2Etest.99", "nobody@x.1", "a/b.1", "x.0",
                    "..1", "ann@lab.test.1"):
            self.failureResultOf(self.capture.get(bad), NoSuchCapture)
            self.assertFalse(self.successResultOf(self.capture.delete(bad)))

    def test_foreignMessage(self):
        """A message without capture lines (put there by hand) is listed under its folder's sender."""
        account = self.store.account(CAPTURE_ACCOUNT)
        name = senderFolder("ann@lab.test")
        self.successResultOf(account.createMailbox(name))
        box = self.successResultOf(account.openMailbox(name))
        self.successResultOf(box.append(MESSAGE, internalDate=1234.0))
        [found] = self.successResultOf(self.capture.list())
        self.assertEqual((found.envelope.sender, found.envelope.time, found.size),
                         ("ann@lab.test", 1234.0, len(MESSAGE)))


class PolicySetup(StoreChoice):
    def setUp(self):
        self.reactor = FakeReactor()
        self.store = self.makeStore()
        self.capture = CaptureStore(self.store, self.reactor)
        self.policy = SMTPPolicy(["lab.test"], FakeUsers("ann@lab.test"), self.store)
        self.policy.capture = self.capture
        self.policy.captureOutbound = True
        self.queued = []

    def deliver(self, recipients, sender="ann@lab.test"):
        envelope = Envelope(sender, {}, client="192.0.2.7", helo="pc.lab.test",
                            tls="TLSv1.3", authenticated="ann@lab.test")
        envelope.recipients = recipients
        return self.policy.deliver(envelope, b"Received: from pc\r\n", io.BytesIO(MESSAGE),
                                   "Q1")

    def inbox(self, address):
        box = self.successResultOf(self.store.account(address).openMailbox("INBOX"))
        self.successResultOf(box.sync(claimRecent=False))
        out = []
        for info in box.messages():
            with box.openMessage(info.uid) as f:
                out.append(f.read())
        return out


class FakeQueue:
    """A relay queue that records (or refuses) what it is given."""

    def __init__(self, fail=None):
        self.queued = []
        self.fail = fail

    def enqueue(self, sender, recipients, source):
        if self.fail is not None:
            return defer.fail(self.fail)
        self.queued.append((sender, recipients, source.read()))
        return defer.succeed(None)


class CapturePolicyTests(PolicySetup, unittest.TestCase):
    """The SMTP policy in capture mode."""

    def test_otherDomainsCaptured(self):
        """With capture on, an authenticated client's mail for another domain is captured, even with a smarthost."""
        self.policy.queue = FakeQueue()
        decision = self.policy.checkRecipient("x@example.com", "ann@lab.test")
        self.assertEqual((decision.kind, decision.address), ("capture", "x@example.com"))

    def test_unauthenticatedStillRefused(self):
        """Capture mode opens no relay: an unauthenticated client still gets 550 5.7.1."""
        decision = self.policy.checkRecipient("x@example.com", None)
        self.assertEqual((decision.kind, decision.reply.code, decision.reply.status),
                         (None, 550, "5.7.1"))

    def test_localStillLocal(self):
        """Local recipients are delivered as ever in capture mode."""
        decision = self.successResultOf(self.policy.checkRecipient("ann@lab.test", None))
        self.assertEqual(decision.kind, "local")

    def test_captureOff(self):
        """With capture off, mail for other domains is relayed (smarthost) or refused, as before."""
        self.policy.captureOutbound = False
        decision = self.policy.checkRecipient("x@example.com", "ann@lab.test")
        self.assertEqual((decision.kind, decision.reply.code), (None, 550))
        self.assertIn("no smarthost", decision.reply.text)
        self.policy.queue = FakeQueue()
        self.assertEqual(self.policy.checkRecipient("x@example.com", "ann@lab.test").kind,
                         "relay")

    def test_deliverCapturesWithEnvelope(self):
        """A message for local and captured recipients: local INBOX copies, one captured copy with the envelope."""
        self.policy.queue = FakeQueue()
        result = self.successResultOf(self.deliver([
            ("x@example.com", "capture"), ("ann@lab.test", "local"),
            ("y@example.org", "capture")]))
        self.assertIsNone(result)
        self.assertEqual(self.inbox("ann@lab.test"), [
            b"Return-Path: <ann@lab.test>\r\nReceived: from pc\r\n" + MESSAGE])
        [captured] = self.successResultOf(self.capture.list("ann@lab.test"))
        found = self.successResultOf(self.capture.get(captured.id))
        self.assertEqual(found.raw, b"Received: from pc\r\n" + MESSAGE)
        self.assertEqual(found.envelope, CaptureEnvelope(
            sender="ann@lab.test", recipients=("x@example.com", "y@example.org"),
            time=found.envelope.time, tls="TLSv1.3", authenticated="ann@lab.test",
            client="192.0.2.7", helo="pc.lab.test", queueID="Q1"))
        self.assertEqual(self.policy.queue.queued, [])

    def test_countedAsCaptured(self):
        """The metrics count captured mail as captured (recipients and size), local mail as local."""
        counted = []

        class Metrics:
            def delivered(self, destination, recipients, octets):
                counted.append((destination, recipients, octets))
        self.policy.metrics = Metrics()
        self.successResultOf(self.deliver([
            ("x@example.com", "capture"), ("y@example.org", "capture"),
            ("ann@lab.test", "local")]))
        size = len(b"Received: from pc\r\n" + MESSAGE)
        self.assertEqual(sorted(counted), [
            ("captured", 2, size), ("local", 1, size + len(b"Return-Path: <ann@lab.test>\r\n"))])

    def test_captureFailureKeepsNothing(self):
        """If the captured copy cannot be written, the local copies are taken back and 452/451 answered."""
        def full(envelope, source):
            return defer.fail(NoSpace("disk full"))
        self.capture.capture = full
        reply = self.successResultOf(self.deliver([
            ("ann@lab.test", "local"), ("x@example.com", "capture")]))
        self.assertEqual((reply.code, reply.status), (452, "4.3.1"))
        self.assertEqual(self.inbox("ann@lab.test"), [])
        self.flushLoggedErrors()

    def test_relayFailureTakesCaptureBack(self):
        """Captured and relayed recipients together: if queueing fails, the captured copy goes too."""
        self.policy.queue = FakeQueue(fail=OSError(5, "I/O error"))
        reply = self.successResultOf(self.deliver([
            ("x@example.com", "capture"), ("r@relay.example", "relay")]))
        self.assertEqual((reply.code, reply.status), (451, "4.3.0"))
        self.assertEqual(self.successResultOf(self.capture.list()), [])

    def test_captureAndRelay(self):
        """Captured and relayed recipients together: one captured copy, one queued, each with its recipients."""
        self.policy.queue = FakeQueue()
        self.assertIsNone(self.successResultOf(self.deliver([
            ("x@example.com", "capture"), ("r@relay.example", "relay")])))
        [captured] = self.successResultOf(self.capture.list())
        self.assertEqual(captured.envelope.recipients, ("x@example.com",))
        self.assertEqual(self.policy.queue.queued, [
            ("ann@lab.test", ["r@relay.example"], b"Received: from pc\r\n" + MESSAGE)])


everyStore(globals())


class EmailParsingTests(unittest.TestCase):
    """What a captured message looks like to a mail parser."""

    def test_rawIsAMessage(self):
        """The raw bytes parse as the message sent (no capture lines left in it)."""
        reactor = FakeReactor()
        from mailstack.storage.memory import MemoryStore
        capture = CaptureStore(MemoryStore(), reactor)
        messageID = self.successResultOf(capture.capture(
            CaptureEnvelope("ann@lab.test", ("x@example.com",)), MESSAGE))
        raw = self.successResultOf(capture.get(messageID)).raw
        parsed = email.message_from_bytes(raw)
        self.assertNotIn("X-Mailstack-Capture", parsed)
        self.assertEqual(parsed["To"], "x@example.com")
