"""
The failed-login penalty across the three engines: one L{AuthPenalty} per
server, keyed by client address, shared by SMTP, POP3 and IMAP and by every
mechanism (passwords, APOP, CRAM-MD5); and the same rules in each engine for
the session's own count (the disconnect limit, STARTTLS).
"""

import base64
import hashlib
import hmac
import os

from twisted.internet import address
from twisted.trial import unittest

from mailstack.auth.checkers import UserDirectoryChecker
from mailstack.auth.directory import UserDirectory
from mailstack.auth.realm import MailRealm, buildPortal
from mailstack.auth.userdb import PasswdFile
from mailstack.imap.plugin import plugin as imapPlugin
from mailstack.imap.server import IMAPServer, IMAPSettings
from mailstack.pop3.plugin import plugin as pop3Plugin
from mailstack.pop3.server import POP3Server, POP3Settings
from mailstack.smtp.plugin import plugin as smtpPlugin
from mailstack.smtp.server import SMTPServer, SMTPSettings
from mailstack.storage.account import MaildirStore
from mailstack.throttle import AuthPenalty
from tests.fakes import FakeReactor, FakeTLSTransport
from tests.fakes import FakePolicy

COMMON = dict(hostname="mail.lab.test", tlsMode="starttls", tlsContext=object(),
              allowPlaintextAuth=True, challengeAuth="always", defaultDomain="lab.test",
              authFailuresDisconnect=4)


class Client:
    """One connection to an engine, from C{host}."""

    def __init__(self, server, host, port):
        self.server = server
        self.transport = FakeTLSTransport(
            peerAddress=address.IPv4Address("TCP", host, port))
        server.makeConnection(self.transport)
        self.greeting = self.transport.value()
        self.transport.clear()

    def send(self, line):
        self.transport.clear()
        self.server.dataReceived(line + b"\r\n")
        return self.transport.value()

    def drop(self):
        self.server.connectionLost(None)


class PenaltyMixin:
    """Three engines over one users file, one store and one shared penalty."""

    def setUp(self):
        self.reactor = FakeReactor()
        base = self.mktemp()
        os.makedirs(base)
        users = PasswdFile(os.path.join(base, "users"), defaultDomain="lab.test",
                           bcryptRounds=4)
        users.addUser("alice@lab.test", "secret", scheme="PLAIN")
        adapters = {}
        for plugin in (smtpPlugin, pop3Plugin, imapPlugin):
            adapters.update(plugin.avatarAdapters())
        realm = MailRealm(MaildirStore(os.path.join(base, "mail")), adapters)
        self.portal = buildPortal(realm, [UserDirectoryChecker(UserDirectory(users, self.reactor))])
        self.penalty = AuthPenalty(self.reactor, delayAfter=2, delaySeconds=2.0,
                                   maxDelaySeconds=15.0)
        self.clients = []
        self.addCleanup(self.dropAll)
        self.port = 40000

    def dropAll(self):
        for client in self.clients:
            if not client.transport.disconnecting:
                client.drop()

    def client(self, protocol, host="192.0.2.7", **overrides):
        settings = dict(COMMON, authPenalty=self.penalty)
        settings.update(overrides)
        if protocol == "smtp":
            server = SMTPServer(SMTPSettings(**settings), FakePolicy(), self.portal,
                                self.reactor)
        elif protocol == "pop3":
            server = POP3Server(POP3Settings(**settings), self.portal, lambda: True,
                                self.reactor)
        else:
            server = IMAPServer(IMAPSettings(**settings), self.portal, self.reactor,
                                lambda: True)
        self.port += 1
        client = Client(server, host, self.port)
        self.clients.append(client)
        if protocol == "smtp":
            client.send(b"EHLO client.example")
        return client

    # One failed (or good) login per protocol; returns the reply written at once.

    def smtpLogin(self, client, password=b"wrong"):
        return client.send(b"AUTH PLAIN " + base64.b64encode(
            b"\0alice@lab.test\0" + password))

    def pop3Login(self, client, password=b"wrong"):
        client.send(b"USER alice@lab.test")
        return client.send(b"PASS " + password)

    def imapLogin(self, client, password=b"wrong"):
        return client.send(b"a LOGIN alice@lab.test " + password)

    def login(self, protocol, client, password=b"wrong"):
        return getattr(self, protocol + "Login")(client, password)

    def failures(self, protocol, count, host="192.0.2.7"):
        """C{count} failed logins, each on a new connection (waiting out any penalty)."""
        for _ in range(count):
            client = self.client(protocol, host)
            self.login(protocol, client)
            self.reactor.advance(15)
            self.assertEqual(client.transport.value(), FAILED[protocol])
            client.drop()


FAILED = {
    "smtp": b"535 5.7.8 Authentication credentials invalid\r\n",
    "pop3": b"-ERR [AUTH] Authentication failed\r\n",
    "imap": b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n",
}


class SharedPenaltyTests(PenaltyMixin, unittest.TestCase):
    """
    Failed logins slow the address down on every connection, listener,
    protocol and mechanism, and only that address.
    """

    def assertWaits(self, client, protocol, seconds, password=b"wrong"):
        """The login is answered only after C{seconds}, not before."""
        self.assertEqual(self.login(protocol, client, password), b"")
        self.reactor.advance(seconds - 0.1)
        self.assertEqual(client.transport.value(), b"")
        self.reactor.advance(0.1)
        return client.transport.value()

    def test_reconnectingStillWaits(self):
        """Hanging up after each failure does not escape the delay (any protocol)."""
        for protocol in ("smtp", "pop3", "imap"):
            self.penalty.succeeded("192.0.2.7")
            self.failures(protocol, 2)
            out = self.assertWaits(self.client(protocol), protocol, 2)
            self.assertEqual(out, FAILED[protocol])

    def test_growsToTheMaximum(self):
        """Each further failure doubles the wait, up to 15 s."""
        self.failures("imap", 2)
        for seconds in (2, 4, 8, 15, 15):
            self.assertEqual(self.assertWaits(self.client("imap"), "imap", seconds),
                             FAILED["imap"])

    def test_sharedAcrossProtocols(self):
        """Failures over SMTP slow POP3 and IMAP logins from the same address."""
        self.failures("smtp", 2)
        self.assertWaits(self.client("pop3"), "pop3", 2)
        self.assertEqual(self.assertWaits(self.client("imap"), "imap", 4), FAILED["imap"])

    def test_notAcrossAddresses(self):
        """Another address is not slowed by this one's failures."""
        self.failures("smtp", 5)
        client = self.client("imap", host="192.0.2.8")
        self.assertEqual(self.imapLogin(client), FAILED["imap"])

    def test_apopFailuresWait(self):
        """APOP failures count and are slowed like password failures."""
        for _ in range(3):
            client = self.client("pop3")
            stamp = client.greeting.split()[-1]
            digest = hashlib.md5(stamp + b"wrong").hexdigest().encode()
            client.send(b"APOP alice@lab.test " + digest)
            if self.penalty.failures("192.0.2.7") < 2:
                self.assertEqual(client.transport.value(), FAILED["pop3"])
                client.drop()
        self.assertEqual(client.transport.value(), b"")
        self.reactor.advance(2)
        self.assertEqual(client.transport.value(), FAILED["pop3"])

    def test_cramMD5FailuresWait(self):
        """CRAM-MD5 failures (no password hashing to slow them) are slowed too."""
        def cram(protocol, client):
            first = b"AUTH CRAM-MD5" if protocol == "smtp" else b"a AUTHENTICATE CRAM-MD5"
            challenge = base64.b64decode(client.send(first).split()[-1])
            digest = hmac.new(b"wrong", challenge, hashlib.md5).hexdigest().encode()
            return client.send(base64.b64encode(b"alice@lab.test " + digest))
        for protocol in ("smtp", "imap", "smtp"):
            client = self.client(protocol)
            out = cram(protocol, client)
        self.assertEqual(out, b"")
        self.reactor.advance(2)
        self.assertEqual(client.transport.value(), FAILED["smtp"])

    def test_successClearsThePenalty(self):
        """A login that succeeds (after its wait) clears the address's failures."""
        self.failures("pop3", 3)
        client = self.client("imap")
        self.assertIn(b"a OK", self.assertWaits(client, "imap", 4, b"secret"))
        self.assertEqual(self.penalty.failures("192.0.2.7"), 0)
        self.assertEqual(self.pop3Login(self.client("pop3")), FAILED["pop3"])  # at once


class SessionLimitTests(PenaltyMixin, unittest.TestCase):
    """
    The session's own failure count: the same rules in SMTP, POP3 and IMAP.
    """

    CLOSING = {
        "smtp": FAILED["smtp"] + b"421 4.7.0 Too many authentication failures, closing\r\n",
        "pop3": b"-ERR [AUTH] Authentication failed; too many failures, closing connection\r\n",
        "imap": FAILED["imap"] + b"* BYE Too many authentication failures\r\n",
    }

    def test_lastFailureWaitsThenCloses(self):
        """The failure at the limit waits like the others, is answered, then the session closes."""
        for protocol in ("smtp", "pop3", "imap"):
            self.penalty.succeeded("192.0.2.7")
            client = self.client(protocol)
            for _ in range(2):
                self.login(protocol, client)
            self.login(protocol, client)
            self.reactor.advance(2)
            client.transport.clear()
            self.assertEqual(self.login(protocol, client), b"")
            self.reactor.advance(3.9)
            self.assertEqual(client.transport.value(), b"", protocol)
            self.assertFalse(client.transport.disconnecting, protocol)
            self.reactor.advance(0.1)
            self.assertEqual(client.transport.value(), self.CLOSING[protocol], protocol)
            self.assertTrue(client.transport.disconnecting, protocol)

    def test_starttlsKeepsCounting(self):
        """Failures before STARTTLS count towards the limit after it, in every protocol."""
        command = {"smtp": b"STARTTLS", "pop3": b"STLS", "imap": b"s STARTTLS"}
        for protocol in ("smtp", "pop3", "imap"):
            client = self.client(protocol, host="198.51.100.%d" % (len(protocol),),
                                 authFailuresDisconnect=3)
            for _ in range(2):
                self.penalty.succeeded("198.51.100.%d" % (len(protocol),))
                self.login(protocol, client)
            client.send(command[protocol])
            self.assertIsNotNone(client.transport.tlsStarted, protocol)
            if protocol == "smtp":
                client.send(b"EHLO client.example")
            self.penalty.succeeded("198.51.100.%d" % (len(protocol),))
            self.assertEqual(self.login(protocol, client), self.CLOSING[protocol], protocol)
