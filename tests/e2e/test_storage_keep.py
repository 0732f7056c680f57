"""
End-to-end, with C{[storage] cached_mailboxes = 0} (no unused mailbox kept):
while other users log in and out, an IDLE session keeps hearing of
deliveries, and a mailbox dropped and opened again shows the same UIDs,
flags and \\Recent to the next imaplib session, as the private Dovecot
2.3.19 shows them (L{tests.interop}) for the same client sequence.
"""

import gc
import imaplib
import os
import re
import socket

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.helpers import BASE_CONFIG, listenerTOML, startMailServer
from tests.interop import Dovecot, missing, sharedDataDir

MESSAGE = b"From: alice@lab.test\r\nTo: demo@lab.test\r\nSubject: kept\r\n\r\nbody\r\n"
USERS = ["u%d@lab.test" % (n,) for n in range(5)]


def readUntilTagged(f, tag):
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if not line or line.startswith(tag + b" "):
            return lines


class KeptMailboxesTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.mailServer = startMailServer(
            self, listenerTOML("imap", name="imap", allow_plaintext_auth=True)
            + listenerTOML("smtp", name="smtp") + "\n[storage]\ncached_mailboxes = 0\n")
        self.port = self.mailServer.service.listenerPort("imap")
        for address in USERS:
            yield self.mailServer.addUser(address, "secret")

    def others(self):
        """Every other user logs in, SELECTs INBOX and logs out (in a client thread)."""
        for address in USERS:
            c = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
            c.login(address, "secret")
            c.select("INBOX")
            c.logout()

    def collect(self):
        """Drop, in the server, every mailbox object nothing uses any more."""
        return threads.blockingCallFromThread(self.reactor, gc.collect)

    @property
    def reactor(self):
        from twisted.internet import reactor
        return reactor

    @defer.inlineCallbacks
    def test_idleAcrossOthers(self):
        """An IDLE session on INBOX gets the EXISTS of a delivery made after other users
        (and another session of its own) logged in and out and unused mailboxes were dropped."""
        def session():
            s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"a LOGIN demo@lab.test demo\r\nb SELECT INBOX\r\nc IDLE\r\n")
            readUntilTagged(f, b"b")
            plus = f.readline()
            again = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
            again.login("demo@lab.test", "demo")
            again.select("INBOX")
            again.logout()
            self.others()
            self.collect()
            threads.blockingCallFromThread(
                self.reactor, self.mailServer.deliver, "demo@lab.test", MESSAGE)
            pushed = f.readline()
            s.sendall(b"DONE\r\nd LOGOUT\r\n")
            readUntilTagged(f, b"d")
            s.close()
            return plus, pushed
        plus, pushed = yield threads.deferToThread(session)
        self.assertEqual(plus, b"+ idling\r\n")
        self.assertEqual(pushed, b"* 1 EXISTS\r\n")

    @defer.inlineCallbacks
    def test_sameStateAfterDropped(self):
        """A message APPENDed with \\Seen to a folder nobody has open, and two delivered
        to INBOX, keep their UIDs, flags and \\Recent in the next session after both
        mailboxes were dropped (as Dovecot shows them: \\Recent until a read-write SELECT)."""
        def session():
            c = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
            c.login("demo@lab.test", "demo")
            c.create("Kept")
            typ, data = c.append("Kept", r"(\Seen)", None, MESSAGE)
            appendUID = re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1)
            c.select("INBOX")
            typ, before = c.uid("FETCH", "1:*", "(FLAGS)")
            c.logout()
            self.others()
            self.collect()
            c = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
            c.login("demo@lab.test", "demo")
            typ, count = c.select("Kept")
            recent = c.untagged_responses.get("RECENT")
            typ, kept = c.uid("FETCH", "1:*", "(FLAGS)")
            typ, after = c.select("INBOX")
            typ, inbox = c.uid("FETCH", "1:*", "(FLAGS)")
            c.logout()
            return appendUID, count, recent, kept, before, inbox
        for _ in range(2):
            yield self.mailServer.deliver("demo@lab.test", MESSAGE)
        appendUID, count, recent, kept, before, inbox = yield threads.deferToThread(session)
        self.assertEqual(count, [b"1"])
        self.assertEqual(recent, [b"1"])
        self.assertEqual(kept, [b"1 (UID %s FLAGS (\\Seen \\Recent))" % (appendUID,)])
        # The first session claimed INBOX's \Recent: not again.
        self.assertEqual(before, [b"1 (UID 1 FLAGS (\\Recent))", b"2 (UID 2 FLAGS (\\Recent))"])
        self.assertEqual(inbox, [b"1 (UID 1 FLAGS ())", b"2 (UID 2 FLAGS ())"])


def sequence(port, user, others):
    """
    One client story, on the server at C{port}: APPEND a \\Seen message to a
    new folder and two without flags to INBOX, log out; C{others()}; then two
    sessions in turn SELECT the folder and INBOX and FETCH UIDs and flags.

    @return: what the later sessions saw (SELECT's EXISTS and RECENT, FETCHes).
    """
    def connect():
        c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        c.login(user, "secret")
        return c
    c = connect()
    c.create("Kept")
    c.append("Kept", r"(\Seen)", None, MESSAGE)
    c.append("INBOX", None, None, MESSAGE)
    c.append("INBOX", None, None, MESSAGE)
    c.logout()
    others()
    seen = []
    for _ in range(2):
        c = connect()
        for name in ("Kept", "INBOX"):
            typ, exists = c.select(name)
            seen.append((name, exists, c.untagged_responses.get("RECENT"),
                         c.uid("FETCH", "1:*", "(FLAGS)")[1]))
        c.logout()
    return seen


class DovecotComparisonTests(unittest.TestCase):
    """The same client story on mailstack (nothing kept) and on Dovecot."""

    skip = missing("dovecot", "dovecot-imapd")

    @defer.inlineCallbacks
    def test_sameAsDovecot(self):
        """After its mailboxes were dropped, mailstack shows the same messages, UIDs, flags
        and \\Recent as Dovecot to the next sessions."""
        text, dataDir = sharedDataDir(self, BASE_CONFIG)
        server = startMailServer(
            self, listenerTOML("imap", name="imap", allow_plaintext_auth=True)
            + "\n[storage]\ncached_mailboxes = 0\n", text)
        for address in ["ours@lab.test", "theirs@lab.test"] + USERS:
            yield server.addUser(address, "secret")
        dovecot = Dovecot(self, dataDir)
        yield dovecot.start()
        from twisted.internet import reactor
        port = server.service.listenerPort("imap")

        def others():
            for address in USERS:
                c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
                c.login(address, "secret")
                c.select("INBOX")
                c.logout()
            threads.blockingCallFromThread(reactor, gc.collect)
        ours = yield threads.deferToThread(sequence, port, "ours@lab.test", others)
        dovecot.handOver(os.path.join(dataDir, "mail", "lab.test"))
        theirs = yield threads.deferToThread(
            sequence, dovecot.imapPort, "theirs@lab.test", lambda: None)
        self.assertEqual(ours, theirs)
        self.assertEqual(ours[0][2], [b"1"])  # the \\Seen APPEND: \\Recent once
