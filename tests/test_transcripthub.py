"""
Tests for L{mailstack.transcripthub}: live transcripts in memory, who may see
which session, bounded history, and the backlog a reconnecting follower gets;
and L{mailstack.transcript.TranscriptFactory} publishing to it.
"""

import base64

from twisted.internet import protocol, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from mailstack.protocol import recording, secrets
from mailstack.transcript import TranscriptFactory
from mailstack.transcripthub import ITranscriptWatcher, TranscriptHub
from tests.test_transcript import EchoProtocol
from tests import test_transcript_secrets


@implementer(ITranscriptWatcher)
class RecordingWatcher:
    """Keeps what it is told as C{(event, session id, detail)}."""

    def __init__(self):
        self.events = []

    def sessionShown(self, session):
        self.events.append(("shown", session.id, [l.text for l in session.lines]))

    def lineRecorded(self, session, line):
        self.events.append(("line", session.id, line.text))

    def sessionEnded(self, session):
        self.events.append(("ended", session.id, session.ended))


class HubTests(unittest.TestCase):
    """
    L{TranscriptHub} on its own.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.hub = TranscriptHub(self.clock, maxSessions=3, maxLines=4)

    def open(self, host="192.0.2.1", port=4000):
        return self.hub.openSession("smtp", "%s:%d" % (host, port), host, "127.0.0.1:25")

    def test_ownerSeesOwnSessionsOnly(self):
        """A session is its user's after her login; another student never sees it, an admin always does."""
        alice, bob = self.open(), self.open()
        self.assertEqual(self.hub.sessionsFor("alice@lab.test"), [])
        alice.loggedIn("alice@lab.test")
        bob.loggedIn("bob@lab.test")
        self.assertEqual(self.hub.sessionsFor("alice@lab.test"), [alice])
        self.assertEqual(self.hub.sessionsFor("bob@lab.test"), [bob])
        self.assertEqual(self.hub.sessionsFor("carol@lab.test", admin=True), [bob, alice])
        self.assertFalse(self.hub.visible(bob, "alice@lab.test"))
        self.assertTrue(self.hub.visible(bob, "alice@lab.test", admin=True))

    def test_byClientBeforeLogin(self):
        """Before a login a session is found by its client address; after, by its user."""
        first, other = self.open("192.0.2.1"), self.open("192.0.2.2")
        self.assertEqual(self.hub.sessionsFromClient("192.0.2.1"), [first])
        first.loggedIn("alice@lab.test")
        self.assertEqual(self.hub.sessionsFromClient("192.0.2.1"), [])
        self.assertEqual(self.hub.sessionsFromClient("192.0.2.2"), [other])

    def test_userWatchGetsSessionAtLogin(self):
        """A user's watch hears of her session at login, with its lines so far, then each line."""
        watcher = RecordingWatcher()
        self.hub.watch(watcher, "alice@lab.test")
        session = self.open()
        session.record("S", "220 ready")
        session.record("C", "AUTH PLAIN ***")
        self.assertEqual(watcher.events, [])
        session.loggedIn("alice@lab.test")
        session.record("S", "235 ok")
        session.close("done")
        self.assertEqual(watcher.events, [
            ("shown", session.id, ["220 ready", "AUTH PLAIN ***"]),
            ("line", session.id, "235 ok"),
            ("ended", session.id, "done")])

    def test_otherUsersWatchHearsNothing(self):
        """Bob's watch is told nothing of Alice's session."""
        watcher = RecordingWatcher()
        self.hub.watch(watcher, "bob@lab.test")
        session = self.open()
        session.loggedIn("alice@lab.test")
        session.record("C", "QUIT")
        session.close("done")
        self.assertEqual(watcher.events, [])

    def test_adminWatchSeesEverything(self):
        """An admin's watch hears of each session from its start."""
        watcher = RecordingWatcher()
        self.hub.watch(watcher, "root@lab.test", admin=True)
        session = self.open()
        session.record("S", "220 ready")
        self.assertEqual(watcher.events, [("shown", session.id, []),
                                          ("line", session.id, "220 ready")])

    def test_sessionWatch(self):
        """A watch of one session hears nothing of the others."""
        watcher = RecordingWatcher()
        one, two = self.open(), self.open()
        for s in (one, two):
            s.loggedIn("alice@lab.test")
        self.hub.watch(watcher, "alice@lab.test", sessionID=two.id)
        one.record("C", "one")
        two.record("C", "two")
        self.assertEqual(watcher.events, [("line", two.id, "two")])

    def test_stopWatching(self):
        """A stopped watch is told nothing more."""
        watcher = RecordingWatcher()
        stop = self.hub.watch(watcher, "alice@lab.test", admin=True)
        self.assertEqual(self.hub.watchers, 1)
        stop()
        stop()
        self.open().record("C", "x")
        self.assertEqual((watcher.events, self.hub.watchers), ([], 0))

    def test_failingWatcher(self):
        """A watcher that raises is logged; the session and the other watchers go on."""
        class Broken(RecordingWatcher):
            def lineRecorded(self, session, line):
                raise RuntimeError("boom")
        good = RecordingWatcher()
        self.hub.watch(Broken(), "a", admin=True)
        self.hub.watch(good, "a", admin=True)
        session = self.open()
        session.record("C", "x")
        self.assertEqual(good.events[-1], ("line", session.id, "x"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_linesBounded(self):
        """A session keeps its last maxLines lines and counts the ones it forgot."""
        session = self.open()
        for i in range(6):
            session.record("C", str(i))
        self.assertEqual([l.text for l in session.lines], ["2", "3", "4", "5"])
        self.assertEqual(session.dropped, 2)

    def test_bytesBounded(self):
        """A session keeps at most maxBytes characters of text, forgetting its first lines."""
        hub = TranscriptHub(self.clock, maxLines=100, maxBytes=10)
        session = hub.openSession("smtp", "192.0.2.1:1", "192.0.2.1", "127.0.0.1:25")
        for text in ("aaaa", "bbbb", "cccc"):
            session.record("C", text)
        self.assertEqual([l.text for l in session.lines], ["bbbb", "cccc"])
        session.record("C", "x" * 50)
        self.assertEqual([l.text for l in session.lines], ["x" * 50])
        self.assertEqual(session.dropped, 3)

    def test_sessionsBounded(self):
        """The hub keeps maxSessions sessions, forgetting ended ones first."""
        first, second, third = self.open(), self.open(), self.open()
        second.close("done")
        fourth = self.open()
        self.assertEqual(self.hub.sessions(), [fourth, third, first])
        self.assertIsNone(self.hub.get(second.id))
        fifth = self.open()
        self.assertEqual(self.hub.sessions(), [fifth, fourth, third])

    def test_forgottenSessionSilent(self):
        """Lines of a session the hub forgot reach no watcher."""
        watcher = RecordingWatcher()
        self.hub.watch(watcher, "a", admin=True)
        old = self.open()
        for _ in range(3):
            self.open()
        watcher.events[:] = []
        old.record("C", "late")
        self.assertEqual(watcher.events, [])

    def test_endedSessionTakesNoLines(self):
        """Nothing is recorded after a session's end, and it ends once."""
        watcher = RecordingWatcher()
        self.hub.watch(watcher, "a", admin=True)
        session = self.open()
        session.close("one")
        session.close("two")
        session.record("C", "late")
        session.loggedIn("a")
        self.assertEqual(watcher.events[1:], [("ended", session.id, "one")])

    def test_sequenceIncreases(self):
        """Line numbers increase across sessions; times come from the clock."""
        a, b = self.open(), self.open()
        a.record("C", "1")
        self.clock.advance(5)
        b.record("C", "2")
        a.record("C", "3")
        seqs = [a.lines[0].seq, b.lines[0].seq, a.lines[1].seq]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(b.lines[0].when, 5)
        self.assertEqual(self.hub.lastSeq, a.lines[1].seq)

    def test_backlogForUser(self):
        """A reconnecting user gets what she missed after her last number, in order, her sessions only."""
        mine, other = self.open(), self.open()
        mine.record("C", "before login")
        mine.loggedIn("alice@lab.test")
        other.loggedIn("bob@lab.test")
        mine.record("C", "a")
        last = self.hub.lastSeq
        mine.record("C", "b")
        other.record("C", "bob's")
        mine.close("done")
        events = self.hub.backlog("alice@lab.test", after=last)
        self.assertEqual([(e[1], e[3].text if e[1] == "line" else e[3]) for e in events],
                         [("line", "b"), ("ended", None)])
        whole = self.hub.backlog("alice@lab.test")
        self.assertEqual(whole[0][1:], ("shown", mine, [mine.lines[0]]))
        self.assertEqual([e[3].text for e in whole if e[1] == "line"], ["a", "b"])
        self.assertEqual([e[0] for e in whole], sorted(e[0] for e in whole))

    def test_backlogSessionShownAfterLastNumber(self):
        """A session that became hers after her last number comes whole, lines before login included."""
        last = self.hub.lastSeq
        session = self.open()
        session.record("C", "EHLO x")
        session.loggedIn("alice@lab.test")
        events = self.hub.backlog("alice@lab.test", after=last)
        self.assertEqual([e[1] for e in events], ["shown"])
        self.assertEqual([l.text for l in events[0][3]], ["EHLO x"])

    def test_backlogOneSession(self):
        """The backlog of one session; nothing of a session she may not see."""
        mine, other = self.open(), self.open()
        mine.loggedIn("alice@lab.test")
        other.loggedIn("bob@lab.test")
        mine.record("C", "x")
        self.assertEqual([e[1] for e in self.hub.backlog("alice@lab.test", sessionID=mine.id)],
                         ["shown", "line"])
        self.assertEqual(self.hub.backlog("alice@lab.test", sessionID=other.id), [])
        self.assertEqual(self.hub.backlog("alice@lab.test", sessionID="nope"), [])
        self.assertEqual(len(self.hub.backlog("root", admin=True, sessionID=other.id)), 1)


class LoginReportingEcho(EchoProtocol):
    """The echo protocol, with C{LOGIN name secret} marking its secret and reporting the login."""

    def lineReceived(self, line):
        if line.startswith(b"LOGIN "):
            secrets.secretLine(self.transport, len(b"LOGIN ") + len(line.split()[1]) + 1)
            recording.loggedIn(self.transport, line.split()[1].decode())
            self.sendLine(b"235 ok")
        else:
            EchoProtocol.lineReceived(self, line)


class FactoryPublishingTests(unittest.TestCase):
    """
    L{TranscriptFactory} with a hub: each session is published as the file
    shows it.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.hub = TranscriptHub(self.clock)

    def connect(self, directory=True):
        factory = TranscriptFactory(protocol.Factory.forProtocol(LoginReportingEcho),
                                    self.mktemp() if directory else None, "smtp",
                                    clock=self.clock, hub=self.hub)
        peer = IPv4Address("TCP", "192.0.2.9", 4001)
        p = factory.buildProtocol(peer)
        p.makeConnection(StringTransport(peerAddress=peer,
                                         hostAddress=IPv4Address("TCP", "127.0.0.1", 25)))
        return p

    def test_linesPublished(self):
        """Each recorded line reaches the hub with its direction, and the close ends the session."""
        p = self.connect()
        p.dataReceived(b"EHLO x\r\n")
        p.dataReceived(b"QUIT\r\n")
        p.connectionLost(Failure(ConnectionDone()))
        [session] = self.hub.sessions()
        self.assertEqual((session.protocol, session.client, session.clientHost, session.server),
                         ("smtp", "192.0.2.9:4001", "192.0.2.9", "127.0.0.1:25"))
        self.assertEqual([(l.kind, l.text) for l in session.lines], [
            ("S", "220 ready"), ("C", "EHLO x"), ("S", "250 EHLO x"), ("C", "QUIT"),
            ("S", "221 bye"), ("#", "closed: Connection was closed cleanly. (server hung up)")])
        self.assertEqual(session.ended, "Connection was closed cleanly. (server hung up)")

    def test_secretNeverPublished(self):
        """A line the protocol marked secret reaches the hub as the file has it, with ***."""
        p = self.connect()
        p.dataReceived(b"LOGIN alice@lab.test Tulip42\r\n")
        p.dataReceived(b"NOOP\r\n")
        path = p.transcript.path
        p.connectionLost(Failure(ConnectionDone()))
        [session] = self.hub.sessions()
        texts = [l.text for l in session.lines]
        self.assertIn("LOGIN alice@lab.test ***", texts)
        self.assertNotIn("Tulip42", "\n".join(texts))
        with open(path, encoding="utf-8") as f:
            self.assertNotIn("Tulip42", f.read())

    def test_loginMakesSessionHers(self):
        """The login the protocol reports makes the live session its user's, with a note."""
        p = self.connect()
        p.dataReceived(b"EHLO x\r\n")
        p.dataReceived(b"LOGIN alice@lab.test pw\r\n")
        [session] = self.hub.sessions()
        self.assertEqual(session.users, ["alice@lab.test"])
        self.assertEqual([l.text for l in session.lines][-2:],
                         ["logged in as alice@lab.test", "235 ok"])
        self.assertEqual(self.hub.sessionsFor("alice@lab.test"), [session])

    def test_withoutFiles(self):
        """With no directory the hub alone records the session."""
        p = self.connect(directory=False)
        self.assertIsNone(p.transcript.path)
        p.dataReceived(b"NOOP\r\n")
        p.connectionLost(Failure(ConnectionDone()))
        [session] = self.hub.sessions()
        self.assertEqual([l.text for l in session.lines][:3], ["220 ready", "NOOP", "250 NOOP"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_liveGoesOnPastFileCap(self):
        """Past the file's size cap the live view still gets the session's lines."""
        p = self.connect()
        p.factory.maxSessionBytes = 200
        p.transcript._maxBytes = 200
        for i in range(20):
            p.dataReceived(b"NOOP %d\r\n" % (i,))
        [session] = self.hub.sessions()
        self.assertEqual(session.lines[-1].text, "250 NOOP 19")
        p.connectionLost(Failure(ConnectionDone()))


class EngineLoginTests(test_transcript_secrets.SecretTranscriptTests):
    """
    Real SMTP, POP3 and IMAP sessions through a TranscriptFactory with a hub:
    every secret-hiding case of L{test_transcript_secrets.SecretTranscriptTests} again, each checking
    that the hub got exactly the file's client lines; and a successful login
    makes the live session that user's.
    """

    def setUp(self):
        test_transcript_secrets.SecretTranscriptTests.setUp(self)
        self.hub = TranscriptHub(self.reactor)

    def factory(self, name):
        factory = test_transcript_secrets.SecretTranscriptTests.factory(self, name)
        factory.hub = self.hub
        return factory

    def session(self, name, *chunks):
        client, server = test_transcript_secrets.SecretTranscriptTests.session(self, name, *chunks)
        live = self.hub.sessions()[0]
        self.assertEqual([l.text for l in live.lines if l.kind == "C"], client)
        return client, server

    def live(self, name, *chunks):
        self.session(name, *chunks)
        session = self.hub.sessions()[0]
        return session, "\n".join(line.text for line in session.lines)

    def test_logins(self):
        """Each protocol's login reports its user; the password is shown as *** only."""
        password = b"alice-pw"
        cases = {
            "smtp": b"EHLO x\r\nAUTH PLAIN " + base64.b64encode(b"\0alice\0" + password) + b"\r\n",
            "pop3": b"USER alice@lab.test\r\nPASS " + password + b"\r\n",
            "imap": b"a LOGIN alice " + password + b"\r\n",
        }
        for name, data in cases.items():
            session, text = self.live(name, data)
            self.assertEqual(session.users, ["alice@lab.test"], name)
            self.assertIn("logged in as alice@lab.test", text, name)
            self.assertIn("***", text, name)
            for form in (password, base64.b64encode(b"\0alice\0" + password)):
                self.assertNotIn(form.decode(), text, name)

    def test_failedLoginNobodys(self):
        """A wrong password leaves the session nobody's (admins only)."""
        session, _ = self.live("pop3", b"USER alice@lab.test\r\nPASS wrong\r\n")
        self.assertEqual(session.users, [])
        self.assertEqual(self.hub.sessionsFor("alice@lab.test"), [])
