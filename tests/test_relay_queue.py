"""
Tests for L{mailstack.relay.queue} (the relay queue towards the smarthost),
L{mailstack.relay.client} (its SMTP client) and L{mailstack.relay.dsn} (its
bounces): a fake smarthost on 127.0.0.1 answers per recipient, real files in
a temporary queue directory.
"""

import email
import email.policy
import io
import json
import os
import socket

from twisted.internet import defer, protocol, reactor, ssl, task
from twisted.internet.interfaces import ISSLTransport
from twisted.protocols.basic import LineReceiver
from twisted.trial import unittest

from mailstack import tls
from mailstack.relay import dsn
from mailstack.relay.queue import (DELIVERED, FAILED, PENDING, QueueEntry, QueueError,
                                   RecipientState, RelayQueue)

MESSAGE = (b"Received: from client (client [127.0.0.1])\r\n"
           b"\tby mail.lab.test (mailstack) with ESMTPA id 1234;\r\n"
           b"\tMon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"From: alice@lab.test\r\n"
           b"To: bob@remote.test\r\n"
           b"Subject: relay test\r\n"
           b"\r\n"
           b"Hello.\r\n"
           b".leading dot\r\n"
           b"..two dots\r\n"
           b"\r\n"
           b"caf\xc3\xa9 8-bit line\r\n")


class FakeSmarthost(LineReceiver):
    """
    A minimal ESMTP server: answers RCPT per address from the factory's
    C{replies}, records each message it accepts (dot-unstuffed, CRLF lines).
    """

    def connectionMade(self):
        self.factory.connections += 1
        self.tls = False
        self.data = None
        self.sendLine(b"220 fake.test ESMTP")

    def lineReceived(self, line):
        if self.data is not None:
            return self.dataLine(line)
        command, _, argument = line.partition(b" ")
        command = command.upper()
        factory = self.factory
        if command == b"EHLO":
            self.reset()
            lines = [b"fake.test", b"SIZE 10000000", b"8BITMIME"]
            if factory.tlsOptions is not None and not self.tls:
                lines.append(b"STARTTLS")
            for text in lines[:-1]:
                self.sendLine(b"250-" + text)
            self.sendLine(b"250 " + lines[-1])
        elif command == b"HELO":
            self.reset()
            self.sendLine(b"250 fake.test")
        elif command == b"STARTTLS" and factory.startTLSReply:
            self.sendLine(factory.startTLSReply)
        elif command == b"STARTTLS" and factory.tlsOptions is not None:
            self.sendLine(b"220 2.0.0 go ahead")
            self.transport.startTLS(factory.tlsOptions)
            self.tls = True
            self.reset()
        elif command == b"MAIL":
            self.sender = argument
            self.sendLine(factory.mailReply)
        elif command == b"RCPT":
            address = argument.split(b"<", 1)[1].split(b">", 1)[0].decode()
            reply = factory.reply(address)
            if reply.startswith(b"2"):
                self.recipients.append(address)
            self.sendLine(reply)
        elif command == b"DATA":
            self.data = []
            self.sendLine(b"354 go ahead")
        elif command == b"RSET":
            self.reset()
            self.sendLine(b"250 ok")
        elif command == b"QUIT":
            self.sendLine(b"221 bye")
            self.transport.loseConnection()
        else:
            self.sendLine(b"500 unknown")

    def reset(self):
        self.sender = None
        self.recipients = []

    def dataLine(self, line):
        if line == b".":
            body = b"".join(l + b"\r\n" for l in self.data)
            self.data = None
            self.factory.messages.append({
                "sender": self.sender, "recipients": self.recipients,
                "data": body, "tls": ISSLTransport.providedBy(self.transport)})
            self.sendLine(self.factory.dataReply)
            self.reset()
            return
        self.data.append(line[1:] if line.startswith(b".") else line)


class FakeSmarthostFactory(protocol.ServerFactory):
    protocol = FakeSmarthost

    def __init__(self, tlsOptions=None):
        self.tlsOptions = tlsOptions
        self.replies = {}  # address -> [reply, ...]; the last one repeats
        self.mailReply = b"250 2.1.0 ok"
        self.dataReply = b"250 2.0.0 queued"
        self.startTLSReply = None  # e.g. b"454 ...": refuse STARTTLS
        self.messages = []
        self.connections = 0

    def reply(self, address):
        replies = self.replies.get(address, [b"250 2.1.5 ok"])
        return replies.pop(0) if len(replies) > 1 else replies[0]


class BounceRecorder:
    """The queue's bounce function: records C{(sender, message)}."""

    def __init__(self):
        self.bounces = []
        self.fail = False

    def __call__(self, sender, message):
        if self.fail:
            return defer.fail(OSError("disk full"))
        self.bounces.append((sender, message))
        return defer.succeed(None)


class QueueTestMixin:

    def setUp(self):
        self.directory = self.mktemp()
        self.bounce = BounceRecorder()
        self.smarthost = FakeSmarthostFactory()
        self.listen()

    def listen(self):
        self.port = reactor.listenTCP(0, self.smarthost, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.smarthostAddress = ("127.0.0.1", self.port.getHost().port)

    def address(self):
        return self.smarthostAddress

    def refusingAddress(self):
        """
        A smarthost address that refuses connections: a port bound and not
        listening, held until the test ends (a port closed by stopListening
        may be taken meanwhile by a test in another trial worker).
        """
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.addCleanup(s.close)
        return s.getsockname()

    def makeQueue(self, start=True, **kwargs):
        kwargs.setdefault("retrySchedule", [3600])
        kwargs.setdefault("shutdownGrace", 0.5)
        kwargs.setdefault("smarthost", self.address())
        queue = RelayQueue(self.directory, kwargs.pop("smarthost"), "mail.lab.test",
                           self.bounce, reactor=reactor, **kwargs)
        if start:
            queue.startService()
            self.addCleanup(lambda: queue.running and queue.stopService())
        return queue

    @defer.inlineCallbacks
    def send(self, queue, recipients, sender="alice@lab.test", message=MESSAGE):
        """Queue a message and wait for its first attempt."""
        queueID = yield queue.enqueue(sender, recipients, io.BytesIO(message))
        yield queue.deliverNow(queueID)
        return queueID

    def files(self, sub):
        return sorted(os.listdir(os.path.join(self.directory, sub)))

    def envelope(self, queueID):
        with open(os.path.join(self.directory, "env", queueID)) as f:
            return json.load(f)

    def parseBounce(self, index=0):
        sender, raw = self.bounce.bounces[index]
        return sender, email.message_from_bytes(raw, policy=email.policy.compat32)


class EnqueueTests(QueueTestMixin, unittest.TestCase):
    """
    L{RelayQueue.enqueue} makes a message durable before it answers.
    """

    @defer.inlineCallbacks
    def test_durableBeforeAnswer(self):
        """The message and its JSON envelope are on disk when enqueue fires."""
        queue = self.makeQueue(start=False)
        queueID = yield queue.enqueue("alice@lab.test", ["bob@remote.test"],
                                      io.BytesIO(MESSAGE))
        self.assertEqual(self.files("msg"), [queueID])
        self.assertEqual(self.files("env"), [queueID])
        self.assertEqual(self.files("tmp"), [])
        with open(os.path.join(self.directory, "msg", queueID), "rb") as f:
            self.assertEqual(f.read(), MESSAGE)
        envelope = self.envelope(queueID)
        self.assertEqual(envelope["sender"], "alice@lab.test")
        self.assertEqual(envelope["recipients"][0]["address"], "bob@remote.test")
        self.assertEqual(envelope["recipients"][0]["state"], PENDING)
        self.assertEqual(envelope["attempts"], 0)
        self.assertEqual(envelope["size"], len(MESSAGE))
        self.assertTrue(envelope["eight_bit"])
        self.assertEqual(len(queue), 1)
        self.assertEqual(self.smarthost.connections, 0)

    @defer.inlineCallbacks
    def test_privateModes(self):
        """Under umask 022 the queue's folders (and a missing parent) are 0700, its files 0600."""
        from tests.test_files import modes, useUmask
        useUmask(self)
        self.directory = os.path.join(self.mktemp(), "queue")
        queue = self.makeQueue(start=False)
        yield queue.enqueue("alice@lab.test", ["bob@remote.test"], io.BytesIO(MESSAGE))
        found = modes(os.path.dirname(self.directory))
        self.assertEqual(len([path for path in found if path.startswith("queue/env/")]), 1)
        self.assertEqual({path: mode for path, mode in found.items()
                          if mode != (0o600 if path.startswith(("queue/env/", "queue/msg/"))
                                      else 0o700)}, {})

    @defer.inlineCallbacks
    def test_uniqueIDs(self):
        """Messages queued at once get different ids."""
        queue = self.makeQueue(start=False)
        ids = yield defer.gatherResults([
            queue.enqueue("a@lab.test", ["b@remote.test"], io.BytesIO(b"x\r\n"))
            for _ in range(20)])
        self.assertEqual(len(set(ids)), 20)
        self.assertEqual(self.files("env"), sorted(ids))

    def test_queueIsTrue(self):
        """An empty queue is still true (callers test for None)."""
        self.assertTrue(self.makeQueue(start=False))
        self.assertEqual(len(self.makeQueue(start=False)), 0)

    def test_noRecipients(self):
        """A message without recipients is refused."""
        queue = self.makeQueue(start=False)
        self.assertRaises(ValueError, queue.enqueue, "a@lab.test", [], io.BytesIO(b""))

    @defer.inlineCallbacks
    def test_chainedReader(self):
        """The stream SMTPPolicy passes (header + spool) is stored as one message."""
        from mailstack.smtp.delivery import ChainedReader
        spool = io.BytesIO(b"Subject: x\r\n\r\nbody\r\n")
        queue = self.makeQueue(start=False)
        queueID = yield queue.enqueue("a@lab.test", ["b@remote.test"],
                                      ChainedReader(b"Received: by x\r\n", spool))
        with open(os.path.join(self.directory, "msg", queueID), "rb") as f:
            self.assertEqual(f.read(), b"Received: by x\r\nSubject: x\r\n\r\nbody\r\n")


class RelayTests(QueueTestMixin, unittest.TestCase):
    """
    Delivery to the smarthost and the per-recipient outcome.
    """

    @defer.inlineCallbacks
    def test_relayedExactly(self):
        """The smarthost gets the exact message, envelope and 8BITMIME; the queue empties."""
        queue = self.makeQueue()
        yield self.send(queue, ["bob@remote.test", "carol@remote.test"])
        [message] = self.smarthost.messages
        self.assertEqual(message["data"], MESSAGE)
        self.assertEqual(message["recipients"], ["bob@remote.test", "carol@remote.test"])
        self.assertEqual(message["sender"],
                         b"FROM:<alice@lab.test> SIZE=%d BODY=8BITMIME" % (len(MESSAGE),))
        self.assertFalse(message["tls"])
        self.assertEqual(len(queue), 0)
        self.assertEqual(self.files("msg"), [])
        self.assertEqual(self.files("env"), [])
        self.assertEqual(self.bounce.bounces, [])

    @defer.inlineCallbacks
    def test_largeMessage(self):
        """A multi-megabyte message (dots at chunk edges) arrives byte for byte."""
        line = b"." + b"x" * 75 + b"\r\n"
        big = MESSAGE + line * 40000
        queue = self.makeQueue()
        yield self.send(queue, ["bob@remote.test"], message=big)
        self.assertEqual(self.smarthost.messages[0]["data"], big)

    @defer.inlineCallbacks
    def test_enqueueAttemptsAtOnce(self):
        """A running queue attempts a new message without being asked."""
        clock = task.Clock()
        queue = self.makeQueue(clock=clock)
        yield queue.enqueue("alice@lab.test", ["bob@remote.test"], io.BytesIO(MESSAGE))
        clock.advance(0)  # no time passes: the attempt is due at once
        self.assertTrue(queue.queued()[0]["in_flight"])
        yield queue.deliverNow()  # waits for the attempt in flight
        self.assertEqual(len(self.smarthost.messages), 1)
        self.assertEqual(len(queue), 0)

    @defer.inlineCallbacks
    def test_temporaryThenRetry(self):
        """451 keeps the message; the retry (after the scheduled delay) delivers it."""
        self.smarthost.replies["bob@remote.test"] = [b"451 4.3.0 try later",
                                                     b"250 2.1.5 ok"]
        clock = task.Clock()
        queue = self.makeQueue(retrySchedule=[60], clock=clock)
        queueID = yield self.send(queue, ["bob@remote.test"])
        self.assertEqual(self.smarthost.messages, [])
        envelope = self.envelope(queueID)
        self.assertEqual(envelope["attempts"], 1)
        self.assertEqual(envelope["recipients"][0]["state"], PENDING)
        self.assertEqual(envelope["recipients"][0]["code"], 451)
        self.assertEqual(envelope["recipients"][0]["status"], "4.3.0")
        [snapshot] = queue.queued()
        self.assertEqual(snapshot["recipients"][0]["reply"], "4.3.0 try later")
        self.assertEqual(snapshot["next_attempt"] - snapshot["last_attempt"], 60)
        clock.advance(59)
        self.assertFalse(queue.queued()[0]["in_flight"])
        clock.advance(1)
        self.assertTrue(queue.queued()[0]["in_flight"])
        yield queue.deliverNow()  # waits for the retry in flight
        self.assertEqual(len(self.smarthost.messages), 1)
        self.assertEqual(self.smarthost.messages[0]["data"], MESSAGE)
        self.assertEqual(self.files("env"), [])
        self.assertEqual(self.bounce.bounces, [])

    @defer.inlineCallbacks
    def test_retrySchedule(self):
        """Each failure waits the next schedule value; the last one repeats."""
        self.smarthost.replies["bob@remote.test"] = [b"451 4.3.0 later"]
        clock = task.Clock()
        clock.advance(1000)
        queue = self.makeQueue(retrySchedule=[10, 20], clock=clock)
        queueID = yield queue.enqueue("a@lab.test", ["bob@remote.test"],
                                      io.BytesIO(MESSAGE))
        delays = []
        for _ in range(4):
            yield queue.deliverNow(queueID)
            delays.append(self.envelope(queueID)["next_attempt"] - clock.seconds())
        self.assertEqual(delays, [10, 20, 20, 20])
        self.assertEqual(self.envelope(queueID)["attempts"], 4)

    @defer.inlineCallbacks
    def test_timerAttempt(self):
        """The timer set after a failure starts the next attempt."""
        self.smarthost.replies["bob@remote.test"] = [b"451 4.3.0 later", b"250 ok"]
        clock = task.Clock()
        queue = self.makeQueue(retrySchedule=[30], clock=clock)
        queueID = yield queue.enqueue("a@lab.test", ["bob@remote.test"],
                                      io.BytesIO(MESSAGE))
        clock.advance(0)  # the immediate attempt
        yield queue.deliverNow(queueID)  # waits for it
        self.assertEqual(self.smarthost.connections, 1)
        clock.advance(29)
        self.assertEqual(self.smarthost.connections, 1)
        clock.advance(1)
        yield queue.deliverNow(queueID)
        self.assertEqual(len(self.smarthost.messages), 1)
        self.assertEqual(len(queue), 0)

    @defer.inlineCallbacks
    def test_permanentBounces(self):
        """550 fails that recipient only; its sender gets a DSN with the reply."""
        self.smarthost.replies["nobody@remote.test"] = [
            b"550 5.1.1 <nobody@remote.test>: User unknown"]
        queue = self.makeQueue()
        queueID = yield self.send(queue, ["bob@remote.test", "nobody@remote.test"])
        self.assertEqual(self.smarthost.messages[0]["recipients"], ["bob@remote.test"])
        self.assertEqual(len(queue), 0)
        self.assertEqual(self.files("msg"), [])
        sender, report = self.parseBounce()
        self.assertEqual(sender, "alice@lab.test")
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        self.assertEqual(report["From"],
                         "Mail Delivery System <MAILER-DAEMON@mail.lab.test>")
        self.assertEqual(report["To"], "<alice@lab.test>")
        self.assertEqual(report["Auto-Submitted"], "auto-replied")
        human, status, headers = report.get_payload()
        self.assertEqual(human.get_content_type(), "text/plain")
        self.assertIn("<nobody@remote.test>: host 127.0.0.1 said: 550 5.1.1",
                      human.get_payload())
        self.assertEqual(status.get_content_type(), "message/delivery-status")
        perMessage, perRecipient = status.get_payload()
        self.assertEqual(perMessage["Reporting-MTA"], "dns; mail.lab.test")
        self.assertEqual(perMessage["X-Mailstack-Queue-ID"], queueID)
        self.assertEqual(perRecipient["Final-Recipient"], "rfc822; nobody@remote.test")
        self.assertEqual(perRecipient["Action"], "failed")
        self.assertEqual(perRecipient["Status"], "5.1.1")
        self.assertEqual(perRecipient["Remote-MTA"], "dns; 127.0.0.1")
        self.assertEqual(perRecipient["Diagnostic-Code"],
                         "smtp; 550 5.1.1 <nobody@remote.test>: User unknown")
        self.assertEqual(headers.get_content_type(), "text/rfc822-headers")
        self.assertIn("Subject: relay test", headers.get_payload())
        self.assertNotIn("Hello.", headers.get_payload())

    @defer.inlineCallbacks
    def test_mixedOutcomes(self):
        """250, 550 and 451 at once: one DSN now, the 451 recipient retried alone."""
        self.smarthost.replies.update({
            "gone@remote.test": [b"550 5.1.1 gone"],
            "later@remote.test": [b"451 4.2.0 full", b"250 ok"]})
        queue = self.makeQueue()
        queueID = yield self.send(
            queue, ["bob@remote.test", "gone@remote.test", "later@remote.test"])
        self.assertEqual(len(self.bounce.bounces), 1)
        states = {r["address"]: (r["state"], r["notified"])
                  for r in self.envelope(queueID)["recipients"]}
        self.assertEqual(states, {"bob@remote.test": (DELIVERED, False),
                                  "gone@remote.test": (FAILED, True),
                                  "later@remote.test": (PENDING, False)})
        yield queue.deliverNow(queueID)
        self.assertEqual([m["recipients"] for m in self.smarthost.messages],
                         [["bob@remote.test"], ["later@remote.test"]])
        self.assertEqual(len(self.bounce.bounces), 1)
        _, report = self.parseBounce()
        blocks = report.get_payload()[1].get_payload()
        self.assertEqual([b["Final-Recipient"] for b in blocks[1:]],
                         ["rfc822; gone@remote.test"])
        self.assertEqual(len(queue), 0)

    @defer.inlineCallbacks
    def test_mailFromRefused(self):
        """A 5xx to MAIL FROM fails every recipient with that reply."""
        self.smarthost.mailReply = b"553 5.7.1 sender rejected"
        queue = self.makeQueue()
        yield self.send(queue, ["bob@remote.test", "carol@remote.test"])
        _, report = self.parseBounce()
        blocks = report.get_payload()[1].get_payload()[1:]
        self.assertEqual([(b["Status"], b["Diagnostic-Code"]) for b in blocks],
                         [("5.7.1", "smtp; 553 5.7.1 sender rejected")] * 2)

    @defer.inlineCallbacks
    def test_dataRefusedTemporarily(self):
        """A 4xx after the body keeps every accepted recipient pending."""
        self.smarthost.dataReply = b"452 4.3.1 out of space"
        queue = self.makeQueue()
        queueID = yield self.send(queue, ["bob@remote.test"])
        [recipient] = self.envelope(queueID)["recipients"]
        self.assertEqual((recipient["state"], recipient["code"]), (PENDING, 452))
        self.assertEqual(self.bounce.bounces, [])

    @defer.inlineCallbacks
    def test_nullSenderNeverBounced(self):
        """A failure of a message from <> (a bounce itself) is dropped, not bounced."""
        self.smarthost.replies["nobody@remote.test"] = [b"550 5.1.1 unknown"]
        queue = self.makeQueue()
        yield self.send(queue, ["nobody@remote.test"], sender="")
        self.assertEqual(self.bounce.bounces, [])
        self.assertEqual(len(queue), 0)
        self.assertEqual(self.files("env"), [])
        self.assertEqual(self.smarthost.messages, [])

    @defer.inlineCallbacks
    def test_nullSenderRelayed(self):
        """A message from <> is relayed with MAIL FROM:<>."""
        queue = self.makeQueue()
        yield self.send(queue, ["bob@remote.test"], sender="")
        self.assertTrue(self.smarthost.messages[0]["sender"].startswith(b"FROM:<> "))

    @defer.inlineCallbacks
    def test_lifetimeExpiry(self):
        """Past the lifetime a temporary failure becomes a 5.4.7 bounce."""
        self.smarthost.replies["bob@remote.test"] = [b"451 4.3.0 try later"]
        clock = task.Clock()
        clock.advance(1700000000)
        queue = self.makeQueue(retrySchedule=[600], lifetime=3600, clock=clock)
        queueID = yield self.send(queue, ["bob@remote.test"])
        self.assertEqual(self.bounce.bounces, [])
        clock.advance(3000)
        yield queue.deliverNow(queueID)
        self.assertEqual(self.bounce.bounces, [])
        # the next attempt is never later than the expiry
        self.assertEqual(self.envelope(queueID)["next_attempt"], 1700000000 + 3600)
        clock.advance(600)
        yield queue.deliverNow(queueID)
        self.assertEqual(len(self.bounce.bounces), 1)
        self.assertEqual(len(queue), 0)
        self.assertEqual(self.files("msg"), [])
        _, report = self.parseBounce()
        human, status, _ = report.get_payload()
        block = status.get_payload()[1]
        self.assertEqual(block["Action"], "failed")
        self.assertEqual(block["Status"], "5.4.7")
        self.assertEqual(block["Diagnostic-Code"], "smtp; 451 4.3.0 try later")
        self.assertIn("delivery time expired (1 hour)", human.get_payload())

    @defer.inlineCallbacks
    def test_smarthostDown(self):
        """No connection is a temporary failure recorded in the envelope."""
        queue = self.makeQueue(smarthost=self.refusingAddress())
        queueID = yield self.send(queue, ["bob@remote.test"])
        [recipient] = self.envelope(queueID)["recipients"]
        self.assertEqual(recipient["state"], PENDING)
        self.assertIsNone(recipient["code"])
        self.assertIn("cannot connect", recipient["reply"])
        self.assertEqual(len(queue), 1)

    @defer.inlineCallbacks
    def test_expiredWhileDown(self):
        """Expiry without any reply bounces with the connection error as diagnostic."""
        clock = task.Clock()
        queue = self.makeQueue(lifetime=60, clock=clock, smarthost=self.refusingAddress())
        queueID = yield queue.enqueue("alice@lab.test", ["bob@remote.test"],
                                      io.BytesIO(MESSAGE))
        clock.advance(61)
        yield queue.deliverNow(queueID)
        _, report = self.parseBounce()
        block = report.get_payload()[1].get_payload()[1]
        self.assertEqual(block["Status"], "5.4.7")
        self.assertNotIn("Remote-MTA", block)
        self.assertTrue(block["Diagnostic-Code"].startswith("X-Mailstack; cannot connect"),
                        block["Diagnostic-Code"])

    @defer.inlineCallbacks
    def test_bounceFailureRetried(self):
        """If the DSN cannot be delivered, the message stays until it can."""
        self.smarthost.replies["nobody@remote.test"] = [b"550 5.1.1 unknown"]
        self.bounce.fail = True
        queue = self.makeQueue()
        queueID = yield self.send(queue, ["nobody@remote.test"])
        self.flushLoggedErrors(OSError)
        [recipient] = self.envelope(queueID)["recipients"]
        self.assertEqual((recipient["state"], recipient["notified"]), (FAILED, False))
        self.bounce.fail = False
        yield queue.deliverNow(queueID)
        self.assertEqual(len(self.bounce.bounces), 1)
        self.assertEqual(self.smarthost.connections, 1)
        self.assertEqual(len(queue), 0)

    @defer.inlineCallbacks
    def test_queuedSnapshot(self):
        """queued() lists each message with its recipients' states."""
        self.smarthost.replies["bob@remote.test"] = [b"451 4.3.0 later"]
        queue = self.makeQueue()
        queueID = yield self.send(queue, ["bob@remote.test"])
        [entry] = queue.queued()
        self.assertEqual(entry["id"], queueID)
        self.assertEqual(entry["attempts"], 1)
        self.assertFalse(entry["in_flight"])
        self.assertEqual(entry["recipients"], [{
            "address": "bob@remote.test", "state": PENDING, "code": 451,
            "status": "4.3.0", "reply": "4.3.0 later"}])


class RestartTests(QueueTestMixin, unittest.TestCase):
    """
    Nothing queued is lost across a stop, a crash or a restart.
    """

    @defer.inlineCallbacks
    def test_restartDelivers(self):
        """Queued while the smarthost is down, delivered by a new queue after restart."""
        first = self.makeQueue(smarthost=self.refusingAddress())
        queueID = yield self.send(first, ["bob@remote.test"])
        yield first.stopService()
        self.assertEqual(self.files("env"), [queueID])
        self.listen()
        second = self.makeQueue()
        self.assertEqual(len(second), 1)
        yield second.deliverNow()
        self.assertEqual(self.smarthost.messages[0]["data"], MESSAGE)
        self.assertEqual(self.files("env"), [])
        self.assertEqual(self.files("msg"), [])

    @defer.inlineCallbacks
    def test_stopAbortsInFlight(self):
        """stopService aborts an attempt stuck on a silent server; the message stays."""
        silent = reactor.listenTCP(0, protocol.ServerFactory.forProtocol(protocol.Protocol),
                                   interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        clock = task.Clock()
        queue = self.makeQueue(smarthost=("127.0.0.1", silent.getHost().port),
                               shutdownGrace=5, clock=clock)
        queueID = yield queue.enqueue("a@lab.test", ["bob@remote.test"],
                                      io.BytesIO(MESSAGE))
        clock.advance(0)
        self.assertTrue(queue.queued()[0]["in_flight"])
        stopped = queue.stopService()
        clock.advance(4.9)
        self.assertNoResult(stopped)
        self.assertTrue(queue.queued()[0]["in_flight"])
        clock.advance(0.1)  # the grace is over: aborted
        yield stopped
        [recipient] = self.envelope(queueID)["recipients"]
        self.assertEqual(recipient["state"], PENDING)
        self.assertEqual(self.envelope(queueID)["attempts"], 1)

    def writeFile(self, sub, name, data):
        os.makedirs(os.path.join(self.directory, sub), exist_ok=True)
        with open(os.path.join(self.directory, sub, name), "wb") as f:
            f.write(data)

    def test_recovery(self):
        """At start an orphan message is removed, bad envelopes go to corrupt/, tmp/ is emptied."""
        good = QueueEntry("0000000000000A00000001", "a@lab.test", 1.0,
                          [RecipientState("b@remote.test")])
        self.writeFile("env", good.queueID, good.toJSON().encode())
        self.writeFile("msg", good.queueID, MESSAGE)
        orphan = "0000000000000B00000002"
        self.writeFile("msg", orphan, MESSAGE)
        lost = "0000000000000C00000003"
        self.writeFile("env", lost, good.toJSON().replace(good.queueID, lost).encode())
        broken = "0000000000000D00000004"
        self.writeFile("env", broken, b"{not json")
        self.writeFile("msg", broken, MESSAGE)
        self.writeFile("tmp", orphan + ".msg", b"partial")
        queue = self.makeQueue(start=False)
        queue._recover()
        self.assertEqual(len(queue), 1)
        self.assertEqual(queue.queued()[0]["id"], good.queueID)
        self.assertEqual(self.files("msg"), [good.queueID])
        self.assertEqual(self.files("env"), [good.queueID])
        self.assertEqual(self.files("tmp"), [])
        self.assertEqual(self.files("corrupt"), [lost + ".env", broken + ".env",
                                                 broken + ".msg"])
        self.flushLoggedErrors()

    def test_envelopeValidation(self):
        """An envelope for another id, or without recipients, is refused."""
        entry = QueueEntry("0000000000000A00000001", "a@lab.test", 1.0, [])
        self.assertRaises(QueueError, QueueEntry.fromJSON, entry.queueID, entry.toJSON())
        self.assertRaises(QueueError, QueueEntry.fromJSON, "X", "{}")
        self.assertRaises(QueueError, QueueEntry.fromJSON, "X", "[1]")


class RequireTLSTests(QueueTestMixin, unittest.TestCase):
    """
    With requireTLS the message goes only over a verified TLS session.
    """

    def setUp(self):
        QueueTestMixin.setUp(self)
        directory = self.mktemp()
        os.makedirs(directory)
        certPath = os.path.join(directory, "cert.pem")
        keyPath = os.path.join(directory, "key.pem")
        tls.ensureCertificate(certPath, keyPath, ["localhost"])
        with open(certPath, "rb") as f:
            self.certPEM = f.read()
        self.serverOptions = tls.serverContextFactory(certPath, keyPath)

    def trusting(self):
        return ssl.optionsForClientTLS(
            "localhost", trustRoot=ssl.Certificate.loadPEM(self.certPEM))

    @defer.inlineCallbacks
    def test_noStartTLSKeepsMessage(self):
        """A smarthost without STARTTLS gets nothing; the message waits (temporary)."""
        queue = self.makeQueue(requireTLS=True, clientTLSContext=self.trusting())
        queueID = yield self.send(queue, ["bob@remote.test"])
        self.assertEqual(self.smarthost.messages, [])
        [recipient] = self.envelope(queueID)["recipients"]
        self.assertEqual(recipient["state"], PENDING)
        self.assertIn("TLS", recipient["reply"])
        self.assertEqual(self.bounce.bounces, [])

    @defer.inlineCallbacks
    def test_deliveredOverTLS(self):
        """A smarthost offering STARTTLS with a trusted certificate gets the message over TLS."""
        self.smarthost.tlsOptions = self.serverOptions
        queue = self.makeQueue(requireTLS=True, clientTLSContext=self.trusting())
        yield self.send(queue, ["bob@remote.test"])
        [message] = self.smarthost.messages
        self.assertTrue(message["tls"])
        self.assertEqual(message["data"], MESSAGE)
        self.assertEqual(len(queue), 0)

    @defer.inlineCallbacks
    def test_untrustedCertificate(self):
        """By default the certificate must verify: a self-signed one keeps the message queued."""
        self.smarthost.tlsOptions = self.serverOptions
        queue = self.makeQueue(requireTLS=True)
        queueID = yield self.send(queue, ["bob@remote.test"])
        self.assertEqual(self.smarthost.messages, [])
        self.assertEqual(self.envelope(queueID)["recipients"][0]["state"], PENDING)

    @defer.inlineCallbacks
    def test_opportunisticTLS(self):
        """Without requireTLS, an offered STARTTLS is used even with a self-signed certificate."""
        self.smarthost.tlsOptions = self.serverOptions
        queue = self.makeQueue()
        yield self.send(queue, ["bob@remote.test"])
        [message] = self.smarthost.messages
        self.assertTrue(message["tls"])

    @defer.inlineCallbacks
    def test_opportunisticRefused(self):
        """Without requireTLS, a STARTTLS refused with 454 falls back to plaintext."""
        self.smarthost.tlsOptions = self.serverOptions
        self.smarthost.startTLSReply = b"454 4.7.0 TLS not available"
        queue = self.makeQueue()
        yield self.send(queue, ["bob@remote.test"])
        [message] = self.smarthost.messages
        self.assertFalse(message["tls"])
        self.assertEqual(message["data"], MESSAGE)

    @defer.inlineCallbacks
    def test_requiredRefused(self):
        """With requireTLS, a STARTTLS refused with 454 keeps the message queued."""
        self.smarthost.tlsOptions = self.serverOptions
        self.smarthost.startTLSReply = b"454 4.7.0 TLS not available"
        queue = self.makeQueue(requireTLS=True, clientTLSContext=self.trusting())
        queueID = yield self.send(queue, ["bob@remote.test"])
        self.assertEqual(self.smarthost.messages, [])
        self.assertEqual(self.envelope(queueID)["recipients"][0]["state"], PENDING)


class DSNTests(unittest.TestCase):
    """
    L{dsn.buildDSN} builds a parseable RFC 3464 report.
    """

    def test_internationalized(self):
        """Non-ASCII recipients use utf-8 address type; non-ASCII headers survive."""
        raw = dsn.buildDSN("mail.lab.test", "ID", "a@lab.test", 0, [
            dsn.RecipientReport("j\u00f6rg@remote.test", "5.1.1", None, None, "no")],
            "Subject: gr\u00fc\u00df\r\n\r\nbody".encode())
        self.assertTrue(raw.isascii())
        report = email.message_from_bytes(raw)
        block = report.get_payload()[1].get_payload()[1]
        self.assertEqual(block["Final-Recipient"], "utf-8; j\\x{F6}rg@remote.test")
        headers = report.get_payload()[2].get_payload(decode=True).decode()
        self.assertEqual(headers, "Subject: gr\u00fc\u00df\r\n")

    def test_headerSection(self):
        """Only the header section of the original is returned."""
        self.assertEqual(dsn.headerSection(b"A: 1\r\nB: 2\r\n\r\nbody\r\n"),
                         b"A: 1\r\nB: 2\r\n")
        self.assertEqual(dsn.headerSection(b"A: 1\n\nbody"), b"A: 1\r\n")


class ServiceTests(unittest.TestCase):
    """
    The queue inside the real service: submission -> queue -> smarthost, and
    a bounce into the sender's INBOX.
    """

    @defer.inlineCallbacks
    def test_submitRelayAndBounce(self):
        """An authenticated user's mail reaches the smarthost; a 550 recipient bounces to INBOX."""
        import glob
        import smtplib

        from twisted.internet import threads

        from tests.helpers import listenerTOML, startServer
        smarthost = FakeSmarthostFactory()
        smarthost.replies["nobody@remote.test"] = [b"550 5.1.1 no such user"]
        port = reactor.listenTCP(0, smarthost, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        extra = listenerTOML("submission", tls="starttls", name="submission",
                             allow_plaintext_auth=True) + (
            '\n[relay]\nsmarthost = "127.0.0.1:%d"\nretry_schedule = [1]\n'
            % (port.getHost().port,))
        server, directory = startServer(self, extra)
        queue = server.getServiceNamed("relay-queue")

        def send():
            c = smtplib.SMTP("127.0.0.1", server.listenerPort("submission"), timeout=10)
            c.login("demo@lab.test", "demo")
            refused = c.sendmail("demo@lab.test", ["bob@remote.test", "nobody@remote.test"],
                                 MESSAGE[MESSAGE.index(b"From:"):])
            c.quit()
            return refused
        self.assertEqual((yield threads.deferToThread(send)), {})
        yield queue.deliverNow()
        [message] = smarthost.messages
        self.assertEqual(message["recipients"], ["bob@remote.test"])
        self.assertTrue(message["data"].startswith(b"Received: from "))
        self.assertTrue(message["data"].endswith(MESSAGE[MESSAGE.index(b"From:"):]))
        self.assertEqual(len(queue), 0)
        inbox = os.path.join(directory, "var", "mail", "lab.test", "demo")
        [bounce] = glob.glob(os.path.join(inbox, "new", "*"))
        with open(bounce, "rb") as f:
            report = email.message_from_bytes(f.read())
        self.assertEqual(report.get_content_type(), "multipart/report")
        block = report.get_payload()[1].get_payload()[1]
        self.assertEqual(block["Final-Recipient"], "rfc822; nobody@remote.test")
        self.assertEqual(block["Status"], "5.1.1")
