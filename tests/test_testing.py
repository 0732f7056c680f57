"""
Tests for L{mailstack.testing}, the in-process test fixture: the trial mixin
and the synchronous context manager each serve real clients (smtplib,
imaplib, poplib) on loopback, wait for mail, and stop leaving no listening
port, no thread and no temporary directory behind. Real sockets: not part of
C{make check}.
"""

import email.message
import imaplib
import os
import poplib
import smtplib
import socket
import threading

from twisted.internet import defer, task, threads
from twisted.trial import unittest

from mailstack.config import ConfigError, loadConfig
from mailstack.storage.account import MaildirStore
from mailstack.storage.memory import MemoryStore
from mailstack.testing import (
    STORES, DeliveryRefused, MailServer, MailServerMixin, ReactorMailServer, WaitTimeout,
    fixtureConfig, mailServerFixture, reactorMailServerFixture)

ALICE = "alice@example.test"
MESSAGE = (b"From: Bob <bob@example.test>\r\n"
           b"To: alice@example.test\r\n"
           b"Subject: fixture %d\r\n"
           b"\r\n"
           b"Hello from the test suite.\r\n")


def send(port, count=1, sender="bob@example.test", to=ALICE):
    """Send C{count} messages with smtplib (blocking); the refused recipients."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for number in range(1, count + 1):
            refused = client.sendmail(sender, [to], MESSAGE % (number,))
    return refused


def imapFetchAll(port, user=ALICE, password="secret", mailbox="INBOX", context=None):
    """Log in with imaplib and fetch every message of C{mailbox}: C{(recent, [bytes])}."""
    if context is None:
        client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    else:
        client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context, timeout=10)
    client.login(user, password)
    typ, [exists] = client.select(mailbox)
    recent = client.response("RECENT")[1][0]
    found = []
    for number in range(1, int(exists) + 1):
        typ, data = client.fetch(str(number), "(BODY.PEEK[])")
        found.append(data[0][1])
    client.logout()
    return int(recent), found


def popRetrieveAll(port, user=ALICE, password="secret"):
    """Log in with poplib and RETR every message (lines joined with CRLF)."""
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        client.user(user)
        client.pass_(password)
        count, _ = client.stat()
        found = [b"\r\n".join(client.retr(n)[1]) + b"\r\n" for n in range(1, count + 1)]
        client.quit()
    finally:
        client.close()
    return found


def closedByPeer(connection):
    """C{True} once the peer has closed or reset C{connection} (a timeout error
    if it does neither within 10 s)."""
    connection.settimeout(10)
    try:
        while connection.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def ownThreads():
    """The threads running now, but the reactor's thread pool (which trial keeps)."""
    return {t for t in threading.enumerate() if not t.name.startswith("PoolThread-")}


def refused(port):
    """C{True} if nothing listens on 127.0.0.1:C{port} any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


class MixinTests(MailServerMixin, unittest.TestCase):
    """
    L{MailServerMixin}: the service in trial's own reactor, one per test.
    """

    mailServerOptions = {"users": {ALICE: "secret"}, "tls": True}

    @defer.inlineCallbacks
    def test_sendWaitAndRead(self):
        """Mail sent with smtplib is waited for, then read the same over IMAP, POP3 and the helper."""
        server = self.mailServer
        self.assertEqual((yield threads.deferToThread(send, server.smtpPort, 2)), {})
        found = yield server.waitForMessages(ALICE, 2)
        self.assertEqual(len(found), 2)
        for number, data in enumerate(found, 1):
            self.assertTrue(data.startswith(b"Return-Path: <bob@example.test>\r\nReceived: "))
            self.assertTrue(data.endswith(MESSAGE % (number,)))
        recent, overIMAP = yield threads.deferToThread(imapFetchAll, server.imapPort)
        self.assertEqual(overIMAP, found)
        overPOP3 = yield threads.deferToThread(popRetrieveAll, server.pop3Port)
        self.assertEqual(overPOP3, found)
        parsed = yield server.emailMessages(ALICE)
        self.assertEqual([m["Subject"] for m in parsed], ["fixture 1", "fixture 2"])
        self.assertIsInstance(parsed[0], email.message.EmailMessage)

    @defer.inlineCallbacks
    def test_waitFiresOnArrival(self):
        """A wait started before the mail comes fires once the Nth message arrives, not before."""
        server = self.mailServer
        waiting = server.waitForMessages(ALICE, 2)
        yield threads.deferToThread(send, server.smtpPort, 1)
        yield server.messages(ALICE)  # the first is stored
        self.assertFalse(waiting.called)
        yield threads.deferToThread(send, server.smtpPort, 1)
        found = yield waiting
        self.assertEqual(len(found), 2)

    @defer.inlineCallbacks
    def test_waitTimesOut(self):
        """Fewer messages than awaited: WaitTimeout says how many came."""
        server = self.mailServer
        yield server.deliver(ALICE, MESSAGE % (1,))
        e = yield self.assertFailure(server.waitForMessages(ALICE, 3, timeout=0.2), WaitTimeout)
        self.assertEqual(str(e), "1 of 3 messages in alice@example.test INBOX after 0.2 s")

    @defer.inlineCallbacks
    def test_readingTakesNoRecent(self):
        """Reading through the helpers leaves the message \\Recent for the next IMAP session."""
        server = self.mailServer
        yield server.deliver(ALICE, MESSAGE % (1,))
        yield server.waitForMessages(ALICE, 1)
        yield server.messages(ALICE)
        recent, found = yield threads.deferToThread(imapFetchAll, server.imapPort)
        self.assertEqual((recent, len(found)), (1, 1))

    @defer.inlineCallbacks
    def test_deliverTakesTheSMTPPath(self):
        """deliver() goes through SMTP: Received: is added, an unknown user is refused with its 550."""
        server = self.mailServer
        message = email.message.EmailMessage()
        message["Subject"] = "built"
        message.set_content("from an EmailMessage\n")
        yield server.deliver([ALICE], message, sender="kim@example.org")
        [data] = yield server.messages(ALICE)
        self.assertTrue(data.startswith(b"Return-Path: <kim@example.org>\r\nReceived: from "))
        self.assertIn(b"Subject: built\r\n", data)
        e = yield self.assertFailure(
            server.deliver(["nobody@example.test", ALICE], b"Subject: x\r\n\r\ny\r\n"),
            DeliveryRefused)
        self.assertEqual(list(e.refused), ["nobody@example.test"])
        self.assertTrue(e.refused["nobody@example.test"].startswith("550 5.1.1"))

    @defer.inlineCallbacks
    def test_addUserAndAppend(self):
        """A BLF-CRYPT user added at run time logs in over implicit TLS and sees a message
        appended with its flags into a new folder."""
        server = self.mailServer
        yield server.addUser("carol@example.test", "pw", scheme="BLF-CRYPT")
        uid = yield server.appendMessage("carol@example.test", b"Subject: kept\r\n\r\nx\r\n",
                                         mailbox="Archive", flags=["\\Seen"])
        self.assertEqual(uid, 1)

        def look():
            client = imaplib.IMAP4_SSL("127.0.0.1", server.imapsPort,
                                       ssl_context=server.sslContext(), timeout=10)
            client.login("carol@example.test", "pw")
            client.select("Archive")
            typ, data = client.fetch("1", "(FLAGS BODY.PEEK[])")
            client.logout()
            return data[0]
        head, body = yield threads.deferToThread(look)
        self.assertIn(b"\\Seen", head)
        self.assertEqual(body, b"Subject: kept\r\n\r\nx\r\n")

    @defer.inlineCallbacks
    def test_startTLS(self):
        """In the running reactor the plain listeners offer STARTTLS with the fixture's certificate."""
        server = self.mailServer

        def submit():
            with smtplib.SMTP("127.0.0.1", server.submissionPort, timeout=10) as client:
                client.starttls(context=server.sslContext())
                client.login(ALICE, "secret")
                return client.sendmail(ALICE, [ALICE], MESSAGE % (1,))
        self.assertEqual((yield threads.deferToThread(submit)), {})
        self.assertEqual(len((yield server.waitForMessages(ALICE, 1))), 1)

    @defer.inlineCallbacks
    def test_stopLeavesNothing(self):
        """stop() closes every port, drops open sessions, removes the temporary directory and
        leaves no thread but the reactor's own pool."""
        before = ownThreads()
        server = self.startMailServer()
        directory, ports = server.directory, dict(server.ports)
        self.assertEqual(sorted(ports), ["imap", "pop3", "smtp", "submission"])
        self.assertTrue(os.path.isdir(directory))
        idle = yield threads.deferToThread(
            socket.create_connection, ("127.0.0.1", server.imapPort), 10)
        self.addCleanup(idle.close)
        greeting = yield threads.deferToThread(idle.recv, 100)
        self.assertTrue(greeting.startswith(b"* OK"))  # the session is open
        counter = server.service.counter
        yield server.stop()
        self.assertFalse(os.path.exists(directory))
        self.assertEqual(counter.count(), 0)
        stillOpen = []
        for name, port in ports.items():
            if not (yield threads.deferToThread(refused, port)):
                stillOpen.append(name)
        self.assertEqual(stillOpen, [])
        self.assertTrue((yield threads.deferToThread(closedByPeer, idle)))
        self.assertEqual(ownThreads() - before, set())
        yield server.stop()  # a second stop does nothing

    @defer.inlineCallbacks
    def test_reactorFixture(self):
        """The pytest-twisted fixture yields a started server and stops it at teardown."""
        fixture = reactorMailServerFixture(users={ALICE: "secret"})()
        server = yield defer.ensureDeferred(fixture.__anext__())
        directory, port = server.directory, server.smtpPort
        yield threads.deferToThread(send, port)
        self.assertEqual(len((yield server.waitForMessages(ALICE, 1))), 1)
        yield self.assertFailure(defer.ensureDeferred(fixture.__anext__()), StopAsyncIteration)
        self.assertFalse(os.path.exists(directory))
        self.assertTrue((yield threads.deferToThread(refused, port)))


class MemoryMixinTests(MixinTests):
    """
    L{MailServerMixin} with C{store="memory"}: every test of L{MixinTests}
    (SMTP delivery, IMAP, POP3, the helpers, a clean stop) on the memory store.
    """

    mailServerOptions = dict(MixinTests.mailServerOptions, store="memory")

    @defer.inlineCallbacks
    def test_nothingOnDisk(self):
        """The memory store serves the mail and writes no mail directory."""
        server = self.mailServer
        self.assertEqual(server.storeName, "memory")
        self.assertIsInstance(server.service.store, MemoryStore)
        yield server.deliver(ALICE, MESSAGE % (1,))
        self.assertEqual(len((yield server.waitForMessages(ALICE, 1))), 1)
        self.assertFalse(os.path.exists(os.path.join(server.directory, "var", "mail")))


class OptionTests(unittest.SynchronousTestCase):
    """
    What L{ReactorMailServer} accepts.
    """

    def test_stores(self):
        """The Maildir (the default) and the memory store; another name is refused at once."""
        self.assertEqual(STORES, ("maildir", "memory"))
        self.assertEqual(ReactorMailServer().storeName, "maildir")
        self.assertEqual(ReactorMailServer(store="memory").storeName, "memory")
        e = self.assertRaises(ValueError, ReactorMailServer, store="s3")
        self.assertEqual(str(e), "store must be one of maildir, memory, not 's3'")

    def test_storeInConfig(self):
        """The fixture's config names its store in [storage] backend."""
        for store in STORES:
            path = self.mktemp()
            with open(path, "w") as f:
                f.write(fixtureConfig(store=store))
            self.assertEqual(loadConfig(path).storage.backend, store)

    def test_configExcludesOptions(self):
        """A whole config and the options that would build one are not combined."""
        self.assertRaises(TypeError, ReactorMailServer, config="[server]\n", tls=True)
        self.assertRaises(TypeError, ReactorMailServer, config="[server]\n", store="memory")

    def test_givenDirectoryIsKept(self):
        """A directory the caller gives is used and not removed (nor, on a bad config, anything in it)."""
        directory = self.mktemp()
        server = ReactorMailServer(config="[server]\nnot toml", directory=directory)
        self.assertRaises(ConfigError, server.start)
        self.assertTrue(os.path.isfile(os.path.join(directory, "mailstack.toml")))


class StartFailureTests(unittest.TestCase):
    """
    A server that cannot start lets go of what it had taken.
    """

    @defer.inlineCallbacks
    def test_portInUse(self):
        """A listener whose port is taken stops the start with StartupError; the listeners
        bound before it are closed again and the temporary directory is removed."""
        from twisted.internet import protocol, reactor

        from mailstack.service import StartupError
        from mailstack.testing import fixtureConfig
        taken = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        config = fixtureConfig().replace(
            'name = "imap"\nprotocol = "imap"\nendpoint = "tcp:0:',
            'name = "imap"\nprotocol = "imap"\nendpoint = "tcp:%d:' % (taken.getHost().port,))
        self.assertIn("tcp:%d:" % (taken.getHost().port,), config)
        seen = []
        original = ReactorMailServer._userBackend

        def spy(top):
            seen.append(top)
            return original(top)
        self.patch(ReactorMailServer, "_userBackend", staticmethod(spy))
        server = ReactorMailServer(config=config)
        self.assertRaises(StartupError, server.start)
        [top] = seen
        bound = top.getServiceNamed("smtp").port
        number = bound.getHost().port
        for _ in range(100):  # closing a port takes a reactor turn or so
            if not bound.connected:
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertTrue((yield threads.deferToThread(refused, number)))
        self.assertFalse(os.path.exists(server.directory))


class MailServerTests(unittest.SynchronousTestCase):
    """
    L{MailServer}: the context manager for synchronous suites, with a reactor
    of its own in a thread.
    """

    def setUp(self):
        self.threads = set(threading.enumerate())

    def assertNothingLeft(self, directory, ports):
        self.assertEqual(set(threading.enumerate()) - self.threads, set())
        self.assertFalse(os.path.exists(directory))
        self.assertEqual([name for name, port in ports.items() if not refused(port)], [])

    def test_sendWaitAndRead(self):
        """The brief's example: smtplib in, waitForMessages, imaplib and poplib out; nothing left after."""
        with MailServer(users={ALICE: "secret"}) as server:
            directory, ports = server.directory, dict(server.ports)
            self.assertNotEqual(set(threading.enumerate()) - self.threads, set())
            self.assertEqual(send(server.smtpPort, 2), {})
            found = server.waitForMessages(ALICE, 2)
            self.assertEqual([data.endswith(MESSAGE % (n,)) for n, data in enumerate(found, 1)],
                             [True, True])
            self.assertEqual(imapFetchAll(server.imapPort), (2, found))
            self.assertEqual(popRetrieveAll(server.pop3Port), found)
            server.addUser("dave@example.test", "pw")
            server.deliver("dave@example.test", MESSAGE % (3,))
            [parsed] = server.emailMessages("dave@example.test")
            self.assertEqual(parsed["Subject"], "fixture 3")
            self.assertRaises(WaitTimeout, server.waitForMessages, ALICE, 3, timeout=0.2)
            self.assertRaises(DeliveryRefused, server.deliver, "nobody@example.test", b"x\r\n")
        self.assertNothingLeft(directory, ports)

    def test_memoryStore(self):
        """With store="memory": smtplib in, imaplib and poplib out, nothing written, nothing left."""
        with MailServer(users={ALICE: "secret"}, store="memory") as server:
            directory, ports = server.directory, dict(server.ports)
            self.assertEqual(send(server.smtpPort, 2), {})
            found = server.waitForMessages(ALICE, 2)
            self.assertEqual(imapFetchAll(server.imapPort), (2, found))
            self.assertEqual(popRetrieveAll(server.pop3Port), found)
            self.assertEqual(server.appendMessage(ALICE, b"Subject: kept\r\n\r\nx\r\n"), 3)
            self.assertEqual(imapFetchAll(server.imapPort)[1][2], b"Subject: kept\r\n\r\nx\r\n")
            self.assertFalse(os.path.exists(os.path.join(directory, "var", "mail")))
        self.assertNothingLeft(directory, ports)

    def test_maildirStore(self):
        """By default the mail is in a Maildir under the fixture's directory."""
        with MailServer(users={ALICE: "secret"}) as server:
            self.assertEqual(server.server.storeName, "maildir")
            self.assertIsInstance(server.server.service.store, MaildirStore)
            self.assertEqual(send(server.smtpPort), {})
            server.waitForMessages(ALICE, 1)
            self.assertTrue(os.path.isdir(os.path.join(
                server.directory, "var", "mail", "example.test", "alice", "new")))

    def test_implicitTLS(self):
        """With tls, SMTP and IMAP over implicit TLS work (its reactor, not the global one,
        drives TLS); the plain listeners offer no STARTTLS, which Twisted cannot do there."""
        with MailServer(users={ALICE: "secret"}, tls=True) as server:
            directory, ports = server.directory, dict(server.ports)
            context = server.sslContext()
            with smtplib.SMTP_SSL("127.0.0.1", server.submissionsPort, context=context,
                                  timeout=10) as client:
                client.login(ALICE, "secret")
                client.sendmail(ALICE, [ALICE], MESSAGE % (1,))
            self.assertEqual(len(server.waitForMessages(ALICE, 1)), 1)
            self.assertEqual(imapFetchAll(server.imapsPort, context=context)[1],
                             server.messages(ALICE))
            with smtplib.SMTP("127.0.0.1", server.smtpPort, timeout=10) as client:
                client.ehlo()
                self.assertFalse(client.has_extn("starttls"))
        self.assertNothingLeft(directory, ports)
        self.assertRaises(ValueError, MailServer, tls=True, starttls=True)

    def test_startFailureLeavesNothing(self):
        """A config that cannot load raises its error and leaves no thread and no directory."""
        server = MailServer(config="[server]\nnot toml")
        self.assertRaises(ConfigError, server.start)
        self.assertEqual(set(threading.enumerate()) - self.threads, set())
        self.assertTrue(server.server.directory)
        self.assertFalse(os.path.exists(server.server.directory))

    def test_fixtureFunction(self):
        """The pytest fixture function yields a started server and stops it at teardown."""
        fixture = mailServerFixture(users={ALICE: "secret"})()
        server = next(fixture)
        directory, ports = server.directory, dict(server.ports)
        self.assertEqual(send(server.smtpPort), {})
        self.assertEqual(len(server.waitForMessages(ALICE, 1)), 1)
        self.assertIsNone(next(fixture, None))
        self.assertNothingLeft(directory, ports)
        # once stopped, a helper says so instead of waiting for the stopped reactor
        self.assertRaises(RuntimeError, server.messages, ALICE)
