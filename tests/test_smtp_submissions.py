"""
Tests for L{mailstack.smtp.submissions}: the submission log (memory and its
JSON-lines file), the header collector, and SMTP sessions recording what
they accepted with their TLS and login facts.
"""

import base64
import json
import os
import stat

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.trial import unittest

from mailstack.smtp.reply import Reply
from mailstack.smtp.server import SMTPServer, SMTPSettings
from mailstack.smtp.submissions import (
    HeaderCollector, Submission, SubmissionLog, TLS_IMPLICIT, TLS_NONE, TLS_STARTTLS)
from tests.fakes import FakePolicy, FakeReactor, FakeTLSTransport, SubmitterRealm


def submission(**values):
    record = dict(time=100.0, queueID="ABC", protocol="submission", port=3587,
                  client="127.0.0.1", helo="client", tls=TLS_STARTTLS, tlsVersion="TLSv1.3",
                  tlsCipher="TLS_AES_256_GCM_SHA384", authenticated="alice@lab.test",
                  sender="alice@lab.test", recipients=("bob@lab.test",),
                  subject="Lab 1", messageID="<1@x>", size=10)
    record.update(values)
    return Submission(**record)


class SubmissionLogTests(unittest.TestCase):
    """The log's records, its search and its file."""

    def setUp(self):
        self.reactor = FakeReactor()
        self.path = os.path.join(self.mktemp(), "submissions.jsonl")
        os.makedirs(os.path.dirname(self.path))

    def test_findFilters(self):
        """Each criterion narrows the records: sender (or login), recipient, subject text, TLS, time."""
        log = SubmissionLog(self.reactor)
        a = submission()
        b = submission(queueID="B", authenticated=None, sender="carol@lab.test",
                       recipients=("dave@x.example", "Bob@lab.test"), subject="Other",
                       tls=TLS_NONE, time=200.0)
        log.record(a)
        log.record(b)
        self.assertEqual(log.find(), [a, b])
        self.assertEqual(log.find(sender="ALICE@lab.test"), [a])
        self.assertEqual(log.find(sender="carol@lab.test"), [b])
        self.assertEqual(log.find(to="bob@LAB.test"), [a, b])
        self.assertEqual(log.find(to="dave@x.example"), [b])
        self.assertEqual(log.find(subject="lab"), [a])
        self.assertEqual(log.find(tls=TLS_STARTTLS), [a])
        self.assertEqual(log.find(since=150), [b])
        self.assertEqual(log.find(sender="alice@lab.test", tls=TLS_NONE), [])

    def test_authenticated(self):
        """authenticated=True keeps messages whose client logged in (as the sender, if named); False the others."""
        log = SubmissionLog(self.reactor)
        own = submission()
        forged = submission(queueID="F", authenticated=None)
        other = submission(queueID="O", authenticated="mallory@lab.test")
        for record in (own, forged, other):
            log.record(record)
        self.assertEqual(log.find(sender="alice@lab.test"), [own, forged, other])
        self.assertEqual(log.find(sender="alice@lab.test", authenticated=True), [own])
        self.assertEqual(log.find(sender="alice@lab.test", authenticated=False), [forged])
        self.assertEqual(log.find(authenticated=True), [own, other])

    def test_bounded(self):
        """Only the newest maxEntries records are kept, and found by queue id."""
        log = SubmissionLog(self.reactor, maxEntries=2)
        for n in range(3):
            log.record(submission(queueID=str(n)))
        self.assertEqual([r.queueID for r in log.find()], ["1", "2"])
        self.assertEqual([log.get(q) and log.get(q).queueID for q in "0123"],
                         [None, "1", "2", None])

    def test_fileKeepsRecords(self):
        """Records written to the file are there again when the log is opened anew (a restart)."""
        log = SubmissionLog.open(self.reactor, self.path)
        log.record(submission(queueID="1"))
        log.record(submission(queueID="2", subject="Grüße"))
        again = SubmissionLog.open(self.reactor, self.path)
        self.assertEqual(again.find(), log.find())
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_fileCutBack(self):
        """Opening a file with more records than maxEntries keeps (and rewrites) only the newest."""
        log = SubmissionLog.open(self.reactor, self.path)
        for n in range(5):
            log.record(submission(queueID=str(n)))
        again = SubmissionLog.open(self.reactor, self.path, maxEntries=2)
        self.assertEqual([r.queueID for r in again.find()], ["3", "4"])
        with open(self.path, "rb") as f:
            self.assertEqual(len(f.read().splitlines()), 2)

    def test_badLinesSkipped(self):
        """Lines that are not records are skipped (and dropped from the file); the rest load."""
        with open(self.path, "wb") as f:
            f.write(json.dumps(submission().asDict()).encode() + b"\nnot json\n{}\n")
        log = SubmissionLog.open(self.reactor, self.path)
        self.assertEqual(log.find(), [submission()])
        with open(self.path, "rb") as f:
            self.assertEqual(len(f.read().splitlines()), 1)

    def test_writeFailureLogged(self):
        """A record that cannot be written stays in memory; the failure is logged, not raised."""
        log = SubmissionLog(self.reactor, os.path.join(self.path, "missing", "file"))
        d = log.record(submission())
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(len(log), 1)


class HeaderCollectorTests(unittest.TestCase):
    """The Subject and Message-ID of a message received in pieces."""

    def test_splitHeaders(self):
        """A header section arriving in pieces, the blank line split too, gives its fields."""
        collector = HeaderCollector()
        for piece in (b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n  from lab\r",
                      b"\nMessage-ID: <m1@lab.test>\r\n\r", b"\nSubject: body text\r\n"):
            collector.feed(piece)
        self.assertEqual(collector.fields(), ("Grüße from lab", "<m1@lab.test>"))

    def test_absent(self):
        """A message without those headers gives None for each."""
        collector = HeaderCollector()
        collector.feed(b"From: a@b\r\n\r\nSubject: not a header\r\n")
        self.assertEqual(collector.fields(), (None, None))

    def test_limit(self):
        """At most the limit is kept of a header section that never ends."""
        collector = HeaderCollector(limit=100)
        collector.feed(b"Subject: s\r\nX: " + b"y" * 500)
        collector.feed(b"\r\n\r\n")
        self.assertEqual(len(collector._head), 100)
        self.assertEqual(collector.fields()[0], "s")


class SessionRecordingTests(unittest.TestCase):
    """SMTP sessions record what they accepted, with how the client connected."""

    settings = dict(hostname="mx.lab.test", tlsMode="starttls", tlsContext=object(),
                    allowPlaintextAuth=True, submission=True)

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.policy = FakePolicy()
        self.log = SubmissionLog(self.clock)
        checker = InMemoryUsernamePasswordDatabaseDontUse(**{"alice@lab.test": b"secret"})
        self.portal = Portal(SubmitterRealm(), [checker])

    def connect(self, **overrides):
        settings = dict(self.settings, submissions=self.log)
        settings.update(overrides)
        self.server = SMTPServer(SMTPSettings(**settings), self.policy, self.portal, self.clock)
        self.transport = FakeTLSTransport()
        self.server.makeConnection(self.transport)

    def send(self, data):
        self.transport.clear()
        self.server.dataReceived(data)
        return self.transport.value()

    def submit(self, starttls=False):
        self.send(b"EHLO client.example\r\n")
        if starttls:
            self.send(b"STARTTLS\r\n")
            self.server.tls = True  # what the core sets once the handshake is done
            self.send(b"EHLO client.example\r\n")
        auth = base64.b64encode(b"\0alice@lab.test\0secret")
        self.assertTrue(self.send(b"AUTH PLAIN " + auth + b"\r\n").startswith(b"235"))
        self.send(b"MAIL FROM:<alice@lab.test>\r\nRCPT TO:<bob@lab.test>\r\n"
                  b"RCPT TO:<carol@x.example>\r\nDATA\r\n")
        return self.send(b"Subject: Lab 3\r\nMessage-ID: <q@c>\r\n\r\nhello\r\n.\r\n")

    def test_starttls(self):
        """A message sent after STARTTLS and AUTH is recorded as starttls, with the login and envelope."""
        self.connect()
        self.assertTrue(self.submit(starttls=True).startswith(b"250 2.0.0 OK: queued as "))
        [record] = self.log.find()
        self.assertEqual((record.tls, record.authenticated, record.sender, record.recipients,
                          record.subject, record.messageID, record.protocol, record.helo,
                          record.time, record.client),
                         (TLS_STARTTLS, "alice@lab.test", "alice@lab.test",
                          ("bob@lab.test", "carol@x.example"), "Lab 3", "<q@c>", "submission",
                          "client.example", 1000, "192.168.1.1"))
        self.assertIn(record.queueID.encode(), self.transport.value())

    def test_plaintext(self):
        """A message sent without TLS is recorded as none."""
        self.connect()
        self.submit()
        self.assertEqual([r.tls for r in self.log.find()], [TLS_NONE])

    def test_implicit(self):
        """A message sent on an implicit-TLS listener is recorded as implicit."""
        self.connect(tlsMode="implicit")
        self.submit()
        self.assertEqual([r.tls for r in self.log.find()], [TLS_IMPLICIT])

    def test_refusedNotRecorded(self):
        """A message the store did not keep (451) is not recorded."""
        self.policy.pending = defer.succeed(Reply(451, "4.3.0", "store failed"))
        self.connect()
        self.assertTrue(self.submit().startswith(b"451"))
        self.assertEqual(self.log.find(), [])

    def test_noLog(self):
        """Without a submission log, sessions deliver as before."""
        self.connect(submissions=None)
        self.assertTrue(self.submit().startswith(b"250"))
        self.assertEqual(len(self.log), 0)
