"""
Unit tests for L{mailstack.pop3.server} and L{mailstack.pop3.stream}: exact
bytes over a StringTransport, with a real passwd-file, checker, realm and Maildir
store behind the portal (the checker's thread pool is replaced by a synchronous
one, time by a L{task.Clock}).

The stock C{twisted.mail.pop3} defects of docs/twisted-notes.md are shown,
against stock and against ours, in tests/test_stock_twisted.py.
"""

import base64
import hashlib
import hmac
import io
import os
import re

from twisted.internet import defer, task
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from mailstack.auth.checkers import UserDirectoryChecker
from mailstack.auth.directory import UserDirectory
from mailstack.auth.realm import MailRealm, buildPortal
from mailstack.auth.userdb import PasswdFile
from mailstack.pop3 import server as pop3server
from mailstack.pop3.mailbox import IMaildrop, maildropAdapter
from mailstack.pop3.server import POP3Server, POP3Settings
from mailstack.pop3.stream import MessageSender, TopReader
from mailstack.pop3.waiting import MaildropWaiters
from mailstack.storage.interfaces import MailboxInUse
from tests.stores import StoreChoice, everyStore
from tests.fakes import FakeReactor, FakeTLSTransport
from tests.test_dotstuff import referenceStuffing

RFC_TIMESTAMP = b"<1896.697170952@dbc.mtview.ca.us>"
RFC_DIGEST = b"c4c9334bac560ecc979e58001b3e22fb"

MESSAGE_1 = b"From: bob@lab.test\r\nSubject: one\r\n\r\nHello\r\n.hidden dot\r\nBye\r\n"
MESSAGE_2 = b"Subject: two\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"


class ConnectionTransport(FakeTLSTransport):
    """
    Producers handled as a real connection does it
    (C{twisted.internet.abstract.FileDescriptor}): a pull producer is asked for
    its first chunk when it registers; a second producer is refused with
    RuntimeError (StringTransport's check); losing the connection stops the
    registered producer and forgets it *after* that call returns, and only
    then tells the protocol; a producer registering on a lost connection is
    stopped at once; writes after the loss go nowhere (kept in C{late}).

    @ivar history: C{("register" | "unregister", producer)} in call order.
    """

    def __init__(self, *args, **kwargs):
        FakeTLSTransport.__init__(self, *args, **kwargs)
        self.disconnected = False
        self.history = []
        self.late = []

    def write(self, data):
        if self.disconnected:
            self.late.append(data)
        else:
            FakeTLSTransport.write(self, data)

    def registerProducer(self, producer, streaming):
        self.history.append(("register", producer))
        if self.disconnected and self.producer is None:
            producer.stopProducing()
            return
        FakeTLSTransport.registerProducer(self, producer, streaming)
        if not streaming:
            producer.resumeProducing()

    def unregisterProducer(self):
        self.history.append(("unregister", self.producer))
        FakeTLSTransport.unregisterProducer(self)

    def lose(self, protocol):
        """The reactor's side of a connection reset by the peer."""
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure
        self.disconnected = True
        self.disconnecting = True
        if self.producer is not None:
            self.producer.stopProducing()
            self.producer = None
        protocol.connectionLost(Failure(ConnectionLost()))


def pump(transport):
    """Let a registered pull producer run to the end."""
    while transport.producer is not None:
        transport.producer.resumeProducing()


class Session:
    """One client connection to a server under test."""

    def __init__(self, server, transport, clock):
        self.server = server
        self.transport = transport
        self.clock = clock
        server.makeConnection(transport)
        self.greeting = transport.value()
        transport.clear()

    def send(self, data):
        self.transport.clear()
        self.server.dataReceived(data)
        pump(self.transport)
        return self.transport.value()

    def drop(self):
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure
        self.server.connectionLost(Failure(ConnectionLost()))

    def login(self, user=b"alice", password=b"secret"):
        self.send(b"USER " + user + b"\r\n")
        return self.send(b"PASS " + password + b"\r\n")

    def body(self, reply):
        """The multi-line body of a reply, after its +OK line."""
        first, _, rest = reply.partition(b"\r\n")
        return rest


class StoreMixin(StoreChoice):
    """A passwd-file, a store (L{StoreChoice}: Maildir, or memory in the
    C{...Memory} twins), a realm and a portal in a temp dir."""

    def setUp(self):
        self.reactor = FakeReactor()
        base = self.mktemp()
        os.makedirs(base)
        self.users = PasswdFile(os.path.join(base, "users"), defaultDomain="lab.test",
                                bcryptRounds=4)
        self.users.addUser("alice@lab.test", "secret", scheme="PLAIN")
        self.users.addUser("mrose@lab.test", "tanstaaf", scheme="PLAIN")
        self.users.addUser("carol@lab.test", "correct horse", scheme="PLAIN")
        self.users.addUser("bob@lab.test", "hunter2", scheme="BLF-CRYPT")
        self.store = self.makeStore()
        self.realm = MailRealm(self.store, self.adapters())
        self.portal = buildPortal(self.realm, [UserDirectoryChecker(UserDirectory(self.users, self.reactor))])

    def adapters(self):
        def adapter(account, address):
            maildrop, logout = maildropAdapter(account, address)
            # A session the test leaves logged in gives its maildrop lock
            # (and the lock's refresh timer) back when the test ends.
            self.addCleanup(maildrop.close)
            return maildrop, logout
        return {IMaildrop: adapter}

    def maildropLocked(self, address="alice@lab.test"):
        """Whether a POP3 session holds C{address}'s maildrop lock (the store's)."""
        d = self.store.account(address).lockMaildrop()
        failures = []
        d.addErrback(lambda f: failures.append(f.trap(MailboxInUse)))
        lock = self.successResultOf(d)
        if failures:
            return True
        lock.release()
        return False

    def inbox(self, address="alice@lab.test"):
        return self.successResultOf(self.store.account(address).openMailbox("INBOX"))

    def deliver(self, message, address="alice@lab.test"):
        self.successResultOf(self.store.deliver([address], message))

    def storedMessages(self, address="alice@lab.test"):
        """The store keys of the messages in C{address}'s INBOX, read afresh."""
        inbox = self.inbox(address)
        self.successResultOf(inbox.sync(claimRecent=False))
        return sorted(info.key for info in inbox.messages())


class POP3TestMixin(StoreMixin):
    settings = dict(hostname="mail.lab.test", tlsMode="starttls", tlsContext=object(),
                    allowPlaintextAuth=True, maxLine=512, maxBadCommands=5,
                    authFailuresDelay=1, authFailuresDisconnect=4,
                    authFailureDelay=3.0, idleTimeout=600, defaultDomain="lab.test")

    def connect(self, timestamp=None, plaintextSecrets=None, **overrides):
        settings = dict(self.settings)
        settings.update(overrides)
        if plaintextSecrets is None:
            # As if every user were {PLAIN} (bob is not): APOP and CRAM-MD5
            # offered. ChallengeAuthTests asks the users file itself.
            plaintextSecrets = lambda: True
        if not hasattr(self, "waiters"):
            # One line for busy maildrops, shared like a server's listeners share it.
            self.waiters = MaildropWaiters(self.reactor)
        server = POP3Server(POP3Settings(**settings), self.portal, plaintextSecrets,
                            self.reactor, timestamp=timestamp, waiters=self.waiters)
        return Session(server, FakeTLSTransport(), self.reactor)

    def loggedIn(self, **overrides):
        session = self.connect(**overrides)
        reply = session.login()
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)
        return session


class GreetingTests(POP3TestMixin, unittest.TestCase):
    """
    The greeting and its APOP timestamp.
    """

    def test_timestampWhenPlaintextSecrets(self):
        """With every user {PLAIN} the greeting carries <pid.time.random@hostname>."""
        self.reactor.advance(1700000000)
        greeting = self.connect().greeting
        match = re.match(rb"^\+OK mailstack POP3 server ready <(\d+)\.(\d+)\.([0-9a-f]+)"
                         rb"@mail\.lab\.test>\r\n$", greeting)
        self.assertIsNotNone(match, greeting)
        self.assertEqual(int(match.group(1)), os.getpid())
        self.assertEqual(match.group(2), b"1700000000")

    def test_timestampUnique(self):
        """Two sessions in the same second get different timestamps."""
        self.assertNotEqual(self.connect().greeting, self.connect().greeting)

    def test_noTimestampWithoutPlaintextSecrets(self):
        """Unless every user is {PLAIN}: no timestamp, APOP refused."""
        session = self.connect(plaintextSecrets=lambda: False)
        self.assertEqual(session.greeting, b"+OK mailstack POP3 server ready\r\n")
        self.assertEqual(session.send(b"APOP alice " + RFC_DIGEST + b"\r\n"),
                         b"-ERR APOP not available (no greeting timestamp)\r\n")

    def test_apopDisabled(self):
        """A listener with APOP disabled greets without a timestamp."""
        session = self.connect(disabled=frozenset(["APOP"]))
        self.assertEqual(session.greeting, b"+OK mailstack POP3 server ready\r\n")
        self.assertEqual(session.send(b"APOP alice " + RFC_DIGEST + b"\r\n"),
                         b"-ERR APOP is disabled on this server\r\n")


class ChallengeAuthTests(POP3TestMixin, unittest.TestCase):
    """
    APOP and CRAM-MD5 are offered only when they work for every user of the
    file (or the listener's challenge_auth is "always"): clients such as curl
    and s-nail pick them when advertised and do not fall back.
    """

    def connect(self, **overrides):
        overrides.setdefault("plaintextSecrets", self.users.allPlaintextSecrets)
        return POP3TestMixin.connect(self, **overrides)

    def test_hashedUserHidesChallengeAuth(self):
        """One BLF-CRYPT user (bob): no APOP timestamp, no CRAM-MD5 in CAPA or AUTH."""
        session = self.connect()
        self.assertEqual(session.greeting, b"+OK mailstack POP3 server ready\r\n")
        self.assertIn(b"\r\nSASL PLAIN LOGIN\r\n", session.send(b"CAPA\r\n"))
        self.assertEqual(session.send(b"AUTH\r\n"),
                         b"+OK Available SASL mechanisms\r\nPLAIN\r\nLOGIN\r\n.\r\n")
        self.assertEqual(session.send(b"AUTH CRAM-MD5\r\n"),
                         b"-ERR Unsupported authentication mechanism\r\n")

    def test_everyUserPlain(self):
        """Once bob is gone every user is {PLAIN}: the next session offers both."""
        self.users.removeUser("bob@lab.test")
        session = self.connect()
        self.assertRegex(session.greeting, rb"^\+OK mailstack POP3 server ready <[^>]+>\r\n$")
        self.assertIn(b"\r\nSASL PLAIN LOGIN CRAM-MD5\r\n", session.send(b"CAPA\r\n"))

    def test_followsFile(self):
        """Adding a hashed user takes the offer back at once, in a running session too."""
        self.users.removeUser("bob@lab.test")
        session = self.connect()
        self.users.addUser("bob@lab.test", "hunter2")
        self.assertIn(b"\r\nSASL PLAIN LOGIN\r\n", session.send(b"CAPA\r\n"))
        self.assertEqual(self.connect().greeting, b"+OK mailstack POP3 server ready\r\n")

    def test_always(self):
        """challenge_auth = "always": offered with bob hashed; APOP works for {PLAIN} users."""
        session = self.connect(challengeAuth="always")
        match = re.match(rb"^\+OK mailstack POP3 server ready (<[^>]+>)\r\n$",
                         session.greeting)
        self.assertIsNotNone(match, session.greeting)
        self.assertIn(b"\r\nSASL PLAIN LOGIN CRAM-MD5\r\n", session.send(b"CAPA\r\n"))
        digest = hashlib.md5(match.group(1) + b"secret").hexdigest().encode("ascii")
        self.assertTrue(session.send(b"APOP alice " + digest + b"\r\n").startswith(
            b"+OK Logged in"))

    def test_alwaysStillDisableable(self):
        """challenge_auth = "always" does not override a listener's disabled list."""
        session = self.connect(challengeAuth="always", disabled=frozenset(["APOP", "CRAM-MD5"]))
        self.assertEqual(session.greeting, b"+OK mailstack POP3 server ready\r\n")
        self.assertIn(b"\r\nSASL PLAIN LOGIN\r\n", session.send(b"CAPA\r\n"))


class CapabilityTests(POP3TestMixin, unittest.TestCase):
    """
    CAPA (RFC 2449) per listener, TLS state and login state.
    """

    def test_labListener(self):
        """Lab listener (STLS, plaintext allowed): the full list."""
        self.assertEqual(self.connect().send(b"CAPA\r\n"),
                         b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
                         b"AUTH-RESP-CODE\r\nPIPELINING\r\nUSER\r\n"
                         b"SASL PLAIN LOGIN CRAM-MD5\r\nSTLS\r\nEXPIRE NEVER\r\n"
                         b"IMPLEMENTATION mailstack\r\n.\r\n")

    def test_productionBeforeSTLS(self):
        """Plaintext auth refused: no USER and no SASL PLAIN/LOGIN before STLS."""
        session = self.connect(allowPlaintextAuth=False)
        self.assertEqual(session.send(b"CAPA\r\n"),
                         b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
                         b"AUTH-RESP-CODE\r\nPIPELINING\r\nSASL CRAM-MD5\r\nSTLS\r\n"
                         b"EXPIRE NEVER\r\nIMPLEMENTATION mailstack\r\n.\r\n")

    def test_productionWithoutPlaintextSecrets(self):
        """No {PLAIN} users and no TLS yet: no SASL line at all."""
        session = self.connect(allowPlaintextAuth=False, plaintextSecrets=lambda: False)
        out = session.send(b"CAPA\r\n")
        self.assertNotIn(b"SASL", out)
        self.assertNotIn(b"USER", out)

    def test_productionAfterSTLS(self):
        """After STLS: USER and SASL PLAIN LOGIN appear, STLS is gone."""
        session = self.connect(allowPlaintextAuth=False)
        self.assertEqual(session.send(b"STLS\r\n"), b"+OK Begin TLS negotiation now\r\n")
        out = session.send(b"CAPA\r\n")
        self.assertIn(b"\r\nUSER\r\nSASL PLAIN LOGIN CRAM-MD5\r\n", out)
        self.assertNotIn(b"STLS", out)

    def test_implicitTLS(self):
        """An implicit-TLS listener never offers STLS."""
        session = self.connect(tlsMode="implicit", allowPlaintextAuth=False)
        out = session.send(b"CAPA\r\n")
        self.assertNotIn(b"STLS", out)
        self.assertIn(b"\r\nUSER\r\n", out)
        self.assertEqual(session.send(b"STLS\r\n"), b"-ERR TLS already active\r\n")

    def test_noTLSConfigured(self):
        """A plain listener neither offers nor accepts STLS."""
        session = self.connect(tlsMode="none", tlsContext=None)
        self.assertNotIn(b"STLS", session.send(b"CAPA\r\n"))
        self.assertEqual(session.send(b"STLS\r\n"), b"-ERR STLS not available on this port\r\n")

    def test_transactionState(self):
        """After login CAPA still answers, without STLS."""
        session = self.loggedIn()
        out = session.send(b"CAPA\r\n")
        self.assertTrue(out.startswith(b"+OK Capability list follows\r\nTOP\r\n"))
        self.assertNotIn(b"STLS", out)

    def test_disabled(self):
        """Capabilities a teacher disables vanish from CAPA and their commands fail."""
        session = self.connect(disabled=frozenset(
            ["APOP", "TOP", "UIDL", "STLS", "USER", "SASL"]))
        self.assertEqual(session.send(b"CAPA\r\n"),
                         b"+OK Capability list follows\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
                         b"PIPELINING\r\nEXPIRE NEVER\r\nIMPLEMENTATION mailstack\r\n.\r\n")
        self.assertEqual(session.send(b"USER alice\r\n"),
                         b"-ERR USER is disabled on this server\r\n")
        self.assertEqual(session.send(b"STLS\r\n"), b"-ERR STLS is disabled on this server\r\n")
        self.assertEqual(session.send(b"AUTH PLAIN\r\n"),
                         b"-ERR AUTH is disabled on this server\r\n")

    def test_disabledTopAndUIDLInTransaction(self):
        """Disabled TOP and UIDL are refused after login too."""
        self.deliver(MESSAGE_1)
        session = self.loggedIn(disabled=frozenset(["TOP", "UIDL"]))
        self.assertEqual(session.send(b"TOP 1 0\r\n"), b"-ERR TOP is disabled on this server\r\n")
        self.assertEqual(session.send(b"UIDL\r\n"), b"-ERR UIDL is disabled on this server\r\n")

    def test_disabledMechanism(self):
        """A single SASL mechanism can be switched off."""
        session = self.connect(disabled=frozenset(["CRAM-MD5"]))
        self.assertIn(b"SASL PLAIN LOGIN\r\n", session.send(b"CAPA\r\n"))
        self.assertEqual(session.send(b"AUTH CRAM-MD5\r\n"),
                         b"-ERR Unsupported authentication mechanism\r\n")

    def test_responseCodesDisabled(self):
        """Without RESP-CODES/AUTH-RESP-CODE the [CODE] prefix is left out."""
        session = self.connect(disabled=frozenset(["AUTH-RESP-CODE"]))
        session.send(b"USER alice\r\n")
        self.assertEqual(session.send(b"PASS wrong\r\n"), b"-ERR Authentication failed\r\n")


class AuthorizationTests(POP3TestMixin, unittest.TestCase):
    """
    USER/PASS, APOP and SASL, their failures and limits.
    """

    def test_userPass(self):
        """USER/PASS logs in and tells the maildrop size."""
        self.deliver(MESSAGE_1)
        session = self.connect()
        self.assertEqual(session.send(b"USER alice@lab.test\r\n"), b"+OK Send PASS\r\n")
        self.assertEqual(session.send(b"PASS secret\r\n"),
                         b"+OK Logged in, 1 message (%d octets)\r\n" % (len(MESSAGE_1),))

    def test_userPassBcrypt(self):
        """A BLF-CRYPT user logs in with USER/PASS."""
        reply = self.connect().login(b"bob", b"hunter2")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_passwordWithSpaces(self):
        """PASS takes the rest of the line: passwords may contain spaces."""
        reply = self.connect().login(b"carol", b"correct horse")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_genericFailure(self):
        """Unknown user and wrong password get the same reply (no enumeration)."""
        session = self.connect(authFailuresDelay=10)
        self.assertEqual(session.send(b"USER nobody\r\n"), b"+OK Send PASS\r\n")
        unknown = session.send(b"PASS secret\r\n")
        wrong = session.login(b"alice", b"wrong")
        self.assertEqual(unknown, b"-ERR [AUTH] Authentication failed\r\n")
        self.assertEqual(wrong, unknown)

    def test_passWithoutUser(self):
        """PASS needs USER first."""
        self.assertEqual(self.connect().send(b"PASS secret\r\n"), b"-ERR Send USER first\r\n")

    def test_plaintextRefusedBeforeTLS(self):
        """Production listener: USER, PASS and AUTH PLAIN/LOGIN refused before STLS."""
        session = self.connect(allowPlaintextAuth=False)
        refused = (b"-ERR [AUTH] Plaintext authentication disallowed on "
                   b"non-secure connections\r\n")
        self.assertEqual(session.send(b"USER alice\r\n"), refused)
        self.assertEqual(session.send(b"PASS secret\r\n"), refused)
        self.assertEqual(session.send(b"AUTH PLAIN\r\n"), refused)
        self.assertEqual(session.send(b"AUTH LOGIN\r\n"), refused)
        session.send(b"STLS\r\n")
        self.assertTrue(session.login().startswith(b"+OK Logged in"))

    def test_apopRFCVector(self):
        """APOP with RFC 1939's example timestamp, secret and digest succeeds."""
        session = self.connect(timestamp=RFC_TIMESTAMP)
        self.assertTrue(session.greeting.endswith(RFC_TIMESTAMP + b"\r\n"))
        reply = session.send(b"APOP mrose " + RFC_DIGEST + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_apopAllowedWithoutTLS(self):
        """APOP does not send the password, so it works before STLS."""
        session = self.connect(timestamp=RFC_TIMESTAMP, allowPlaintextAuth=False)
        reply = session.send(b"APOP mrose " + RFC_DIGEST + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_apopWrongDigest(self):
        """A wrong APOP digest gets the generic failure."""
        session = self.connect(timestamp=RFC_TIMESTAMP)
        self.assertEqual(session.send(b"APOP mrose " + b"0" * 32 + b"\r\n"),
                         b"-ERR [AUTH] Authentication failed\r\n")

    def test_apopHashedUser(self):
        """APOP for a BLF-CRYPT user fails like any failure."""
        session = self.connect()
        digest = hashlib.md5(session.server.timestamp + b"hunter2").hexdigest().encode()
        self.assertEqual(session.send(b"APOP bob " + digest + b"\r\n"),
                         b"-ERR [AUTH] Authentication failed\r\n")

    def test_apopSyntax(self):
        """APOP takes a name and a digest."""
        self.assertEqual(self.connect().send(b"APOP mrose\r\n"),
                         b"-ERR Syntax: APOP name digest\r\n")

    def test_authListsMechanisms(self):
        """AUTH without arguments lists the mechanisms offered."""
        self.assertEqual(self.connect().send(b"AUTH\r\n"),
                         b"+OK Available SASL mechanisms\r\nPLAIN\r\nLOGIN\r\nCRAM-MD5\r\n.\r\n")

    def test_authPlainInitialResponse(self):
        """AUTH PLAIN with an initial response (RFC 5034) logs in in one line."""
        ir = base64.b64encode(b"\0alice\0secret")
        reply = self.connect().send(b"AUTH PLAIN " + ir + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_authPlainChallenge(self):
        """AUTH PLAIN without initial response: empty challenge, then the response."""
        session = self.connect()
        self.assertEqual(session.send(b"AUTH PLAIN\r\n"), b"+ \r\n")
        reply = session.send(base64.b64encode(b"alice\0alice\0secret") + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_authPlainOtherAuthzid(self):
        """Logging in as somebody else (authzid) is refused."""
        ir = base64.b64encode(b"bob\0alice\0secret")
        self.assertEqual(self.connect().send(b"AUTH PLAIN " + ir + b"\r\n"),
                         b"-ERR [AUTH] Authentication failed\r\n")

    def test_authPlainWrong(self):
        """A wrong AUTH PLAIN password gets the generic failure."""
        ir = base64.b64encode(b"\0alice\0nope")
        self.assertEqual(self.connect().send(b"AUTH PLAIN " + ir + b"\r\n"),
                         b"-ERR [AUTH] Authentication failed\r\n")

    def test_authPlainMalformed(self):
        """Bad base64 or a response without NULs: -ERR, session intact."""
        session = self.connect()
        self.assertEqual(session.send(b"AUTH PLAIN !!!\r\n"),
                         b"-ERR Invalid base64 data in AUTH response\r\n")
        self.assertEqual(session.send(b"AUTH PLAIN " + base64.b64encode(b"alice") + b"\r\n"),
                         b"-ERR Malformed PLAIN response\r\n")
        self.assertTrue(session.send(b"NOOP\r\n").startswith(b"-ERR NOOP needs a login"))

    def test_authCancel(self):
        """'*' cancels an AUTH exchange."""
        session = self.connect()
        session.send(b"AUTH LOGIN\r\n")
        self.assertEqual(session.send(b"*\r\n"), b"-ERR Authentication cancelled\r\n")
        self.assertEqual(session.send(b"USER alice\r\n"), b"+OK Send PASS\r\n")

    def test_authLogin(self):
        """AUTH LOGIN asks Username: then Password:."""
        session = self.connect()
        self.assertEqual(session.send(b"AUTH LOGIN\r\n"), b"+ VXNlcm5hbWU6\r\n")
        self.assertEqual(session.send(base64.b64encode(b"alice") + b"\r\n"),
                         b"+ UGFzc3dvcmQ6\r\n")
        reply = session.send(base64.b64encode(b"secret") + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_authLoginInitialResponse(self):
        """AUTH LOGIN with the user name as initial response."""
        session = self.connect()
        self.assertEqual(session.send(b"AUTH LOGIN " + base64.b64encode(b"alice") + b"\r\n"),
                         b"+ UGFzc3dvcmQ6\r\n")
        reply = session.send(base64.b64encode(b"secret") + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_authCramMD5(self):
        """AUTH CRAM-MD5: the HMAC of the challenge logs a {PLAIN} user in."""
        session = self.connect()
        out = session.send(b"AUTH CRAM-MD5\r\n")
        self.assertTrue(out.startswith(b"+ "))
        challenge = base64.b64decode(out[2:].strip())
        self.assertTrue(re.match(rb"^<\d+\.\d+\.[0-9a-f]+@mail\.lab\.test>$", challenge))
        digest = hmac.new(b"secret", challenge, "md5").hexdigest().encode()
        reply = session.send(base64.b64encode(b"alice " + digest) + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_authCramMD5EmptyInitialResponse(self):
        """AUTH CRAM-MD5 = (an empty initial response) gets the challenge, as in Dovecot 2.3."""
        session = self.connect()
        out = session.send(b"AUTH CRAM-MD5 =\r\n")
        self.assertTrue(out.startswith(b"+ "), out)
        challenge = base64.b64decode(out[2:].strip())
        digest = hmac.new(b"secret", challenge, "md5").hexdigest().encode()
        reply = session.send(base64.b64encode(b"alice " + digest) + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_authCramMD5TrailingSpace(self):
        """AUTH CRAM-MD5 with a trailing space (mutt's form) gets the challenge."""
        self.assertTrue(self.connect().send(b"AUTH CRAM-MD5 \r\n").startswith(b"+ "))

    def test_authLineTooLong(self):
        """
        An over-long line ends the SASL exchange (RFC 5034 section 4 works as
        RFC 4954's "Authentication Exchange line is too long"): -ERR, counted as
        a bad command, and the next line is a command again.
        """
        session = self.connect()
        self.assertEqual(session.send(b"AUTH PLAIN\r\n"), b"+ \r\n")
        self.assertEqual(session.send(b"A" * 600 + b"\r\n"),
                         b"-ERR Authentication exchange line too long (limit 512 octets)\r\n")
        self.assertEqual(session.send(b"AUTH LOGIN\r\n"), b"+ VXNlcm5hbWU6\r\n")
        self.assertEqual(session.send(base64.b64encode(b"alice") + b"\r\n"),
                         b"+ UGFzc3dvcmQ6\r\n")
        reply = session.send(base64.b64encode(b"secret") + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_authLineTooLongInPieces(self):
        """The exchange ends as soon as the limit is passed, before the line's end."""
        session = self.connect()
        self.assertEqual(session.send(b"AUTH LOGIN\r\n"), b"+ VXNlcm5hbWU6\r\n")
        self.assertEqual(session.send(b"A" * 600),
                         b"-ERR Authentication exchange line too long (limit 512 octets)\r\n")
        self.assertEqual(session.send(b"A" * 600), b"")
        self.assertEqual(session.send(b"A\r\nAUTH PLAIN\r\n"), b"+ \r\n")
        reply = session.send(base64.b64encode(b"\0alice\0secret") + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)

    def test_authLineTooLongCounted(self):
        """Over-long SASL lines count as bad commands: at the limit, the session ends."""
        session = self.connect()
        for _ in range(4):
            self.assertEqual(session.send(b"AUTH PLAIN\r\n"), b"+ \r\n")
            session.send(b"A" * 600 + b"\r\n")
        self.assertFalse(session.transport.disconnecting)
        session.send(b"AUTH PLAIN\r\n")
        self.assertEqual(session.send(b"A" * 600 + b"\r\n"),
                         b"-ERR Too many bad commands, closing connection\r\n")
        self.assertTrue(session.transport.disconnecting)

    def test_cramMD5NeedsPlaintextSecrets(self):
        """Without {PLAIN} users CRAM-MD5 is neither listed nor accepted."""
        session = self.connect(plaintextSecrets=lambda: False)
        self.assertEqual(session.send(b"AUTH\r\n"),
                         b"+OK Available SASL mechanisms\r\nPLAIN\r\nLOGIN\r\n.\r\n")
        self.assertEqual(session.send(b"AUTH CRAM-MD5\r\n"),
                         b"-ERR Unsupported authentication mechanism\r\n")

    def test_unknownMechanism(self):
        """An unknown SASL mechanism is refused."""
        self.assertEqual(self.connect().send(b"AUTH GSSAPI\r\n"),
                         b"-ERR Unsupported authentication mechanism\r\n")

    def test_failureDelay(self):
        """
        After the configured count each attempt waits (3 s, then 6 s), and
        pipelined commands wait behind it; a right password waits too.
        """
        session = self.connect()
        self.assertEqual(session.login(b"alice", b"x1"), b"-ERR [AUTH] Authentication failed\r\n")
        self.assertEqual(session.login(b"alice", b"x2"), b"")
        self.assertEqual(session.send(b"USER alice\r\nPASS secret\r\n"), b"")
        self.reactor.advance(2.9)
        self.assertEqual(session.transport.value(), b"")
        self.reactor.advance(0.1)
        self.assertEqual(session.transport.value(),
                         b"-ERR [AUTH] Authentication failed\r\n+OK Send PASS\r\n")
        self.reactor.advance(5.9)
        self.assertNotIn(b"Logged in", session.transport.value())
        self.reactor.advance(0.1)
        self.assertIn(b"+OK Logged in", session.transport.value())

    def test_failureDisconnect(self):
        """At the configured count the session is closed."""
        session = self.connect(authFailuresDelay=10)
        for attempt in range(3):
            session.login(b"alice", b"wrong")
        self.assertFalse(session.transport.disconnecting)
        self.assertEqual(session.login(b"alice", b"wrong"),
                         b"-ERR [AUTH] Authentication failed; too many failures, "
                         b"closing connection\r\n")
        self.assertTrue(session.transport.disconnecting)

    def test_alreadyLoggedIn(self):
        """AUTHORIZATION commands after login: -ERR with the reason."""
        session = self.loggedIn()
        self.assertEqual(session.send(b"USER alice\r\n"),
                         b"-ERR USER is only allowed before login; already logged in\r\n")
        self.assertEqual(session.send(b"STLS\r\n"),
                         b"-ERR STLS is only allowed before login; already logged in\r\n")

    def test_clientGoneDuringCheck(self):
        """A client that leaves while its password is checked holds no lock."""
        pending = defer.Deferred()
        original = self.portal.login
        self.portal.login = lambda *args: pending
        session = self.connect()
        session.send(b"USER alice\r\nPASS secret\r\n")
        session.drop()
        self.portal.login = original
        original(*self._credentials()).chainDeferred(pending)
        self.assertFalse(self.maildropLocked("alice@lab.test"))
        self.assertTrue(self.connect().login().startswith(b"+OK Logged in"))

    def _credentials(self):
        from twisted.cred.credentials import UsernamePassword
        return UsernamePassword(b"alice", b"secret"), None, IMaildrop


class STLSTests(POP3TestMixin, unittest.TestCase):
    """
    STLS (RFC 2595).
    """

    def test_discardsPipelinedPlaintext(self):
        """Commands sent with STLS in one packet are dropped, not run after TLS."""
        session = self.connect()
        out = session.send(b"STLS\r\nUSER alice\r\nPASS secret\r\n")
        self.assertEqual(out, b"+OK Begin TLS negotiation now\r\n")
        self.assertEqual(session.transport.tlsStarted, out)
        self.assertEqual(session.server.state, pop3server.AUTHORIZATION)

    def test_forgetsUser(self):
        """A USER given before STLS is forgotten after it."""
        session = self.connect()
        session.send(b"USER alice\r\n")
        session.send(b"STLS\r\n")
        self.assertEqual(session.send(b"PASS secret\r\n"), b"-ERR Send USER first\r\n")

    def test_twice(self):
        """A second STLS is refused."""
        session = self.connect()
        session.send(b"STLS\r\n")
        self.assertEqual(session.send(b"STLS\r\n"), b"-ERR TLS already active\r\n")

    def test_syntax(self):
        """STLS takes no argument."""
        self.assertEqual(self.connect().send(b"STLS now\r\n"), b"-ERR Syntax: STLS\r\n")


class TransactionTests(POP3TestMixin, unittest.TestCase):
    """
    STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT.
    """

    def setUp(self):
        POP3TestMixin.setUp(self)
        self.deliver(MESSAGE_1)
        self.deliver(MESSAGE_2)

    def uidls(self):
        inbox = self.inbox()
        return ["%08x%08x" % (info.uid, inbox.uidValidity) for info in inbox.messages()]

    def test_stat(self):
        """STAT: count and octets."""
        self.assertEqual(self.loggedIn().send(b"STAT\r\n"),
                         b"+OK 2 %d\r\n" % (len(MESSAGE_1) + len(MESSAGE_2),))

    def test_list(self):
        """LIST and LIST n give the CRLF sizes."""
        session = self.loggedIn()
        self.assertEqual(session.send(b"LIST\r\n"),
                         b"+OK 2 messages (%d octets)\r\n1 %d\r\n2 %d\r\n.\r\n" % (
                             len(MESSAGE_1) + len(MESSAGE_2), len(MESSAGE_1), len(MESSAGE_2)))
        self.assertEqual(session.send(b"LIST 2\r\n"), b"+OK 2 %d\r\n" % (len(MESSAGE_2),))

    def test_listErrors(self):
        """LIST of a missing number or garbage: -ERR, session intact."""
        session = self.loggedIn()
        self.assertEqual(session.send(b"LIST 3\r\n"),
                         b"-ERR No such message, only 2 messages in maildrop\r\n")
        self.assertEqual(session.send(b"LIST 0\r\n"),
                         b"-ERR No such message, only 2 messages in maildrop\r\n")
        self.assertEqual(session.send(b"LIST x\r\n"), b"-ERR Syntax: LIST [message]\r\n")
        self.assertEqual(session.send(b"LIST -1\r\n"), b"-ERR Syntax: LIST [message]\r\n")
        self.assertTrue(session.send(b"STAT\r\n").startswith(b"+OK 2 "))

    def test_uidl(self):
        """UIDL gives Dovecot-style <uid><uidvalidity> hex unique-ids."""
        one, two = self.uidls()
        session = self.loggedIn()
        self.assertEqual(session.send(b"UIDL\r\n"),
                         ("+OK Unique-ID listing follows\r\n1 %s\r\n2 %s\r\n.\r\n" % (
                             one, two)).encode())
        self.assertEqual(session.send(b"UIDL 2\r\n"), ("+OK 2 %s\r\n" % (two,)).encode())
        self.assertEqual(len(one), 16)

    def test_uidlStable(self):
        """UIDL is the same in the next session and after flags change."""
        session = self.loggedIn()
        first = session.send(b"UIDL\r\n")
        session.send(b"QUIT\r\n")  # gives the maildrop lock back for the next session
        inbox = self.inbox()
        for info in inbox.messages():
            self.successResultOf(inbox.setFlags(info.uid, {"\\Seen", "\\Flagged"}))
        self.assertEqual(self.loggedIn().send(b"UIDL\r\n"), first)

    def test_retr(self):
        """RETR sends the message byte-stuffed and terminated, then marks it \\Seen."""
        session = self.loggedIn()
        out = session.send(b"RETR 1\r\n")
        self.assertEqual(out, b"+OK %d octets\r\n" % (len(MESSAGE_1),)
                         + MESSAGE_1.replace(b"\r\n.hidden", b"\r\n..hidden") + b".\r\n")
        flags = [info.flags for info in self.inbox().messages()]
        self.assertEqual(flags, [frozenset(["\\Seen"]), frozenset()])

    def test_top(self):
        """TOP n 1: header, blank line, one body line; no \\Seen."""
        session = self.loggedIn()
        self.assertEqual(session.send(b"TOP 2 1\r\n"),
                         b"+OK Top of message follows\r\nSubject: two\r\n\r\nline 1\r\n.\r\n")
        self.assertEqual(session.send(b"TOP 2 0\r\n"),
                         b"+OK Top of message follows\r\nSubject: two\r\n\r\n.\r\n")
        self.assertEqual(session.send(b"TOP 2 99\r\n"),
                         b"+OK Top of message follows\r\n" + MESSAGE_2 + b".\r\n")
        self.assertEqual(session.send(b"TOP 1 2\r\n"),
                         b"+OK Top of message follows\r\nFrom: bob@lab.test\r\n"
                         b"Subject: one\r\n\r\nHello\r\n..hidden dot\r\n.\r\n")
        self.assertEqual([info.flags for info in self.inbox().messages()],
                         [frozenset(), frozenset()])

    def test_topHugeLineCount(self):
        """
        TOP's line count may be any non-negative number (RFC 1939): one beyond
        the message's lines gives the whole message, however many digits it
        has; it is not a bad command and sets no \\Seen.
        """
        session = self.loggedIn(maxLine=8192)
        whole2 = b"+OK Top of message follows\r\n" + MESSAGE_2 + b".\r\n"
        for _ in range(6):  # more than maxBadCommands
            self.assertEqual(session.send(b"TOP 2 99999999999999999999999\r\n"), whole2)
        self.assertEqual(session.send(b"TOP 1 " + b"9" * 5000 + b"\r\n"),
                         b"+OK Top of message follows\r\n" + referenceStuffing(MESSAGE_1))
        self.assertEqual(session.send(b"TOP 2 " + b"0" * 30 + b"1\r\n"),
                         b"+OK Top of message follows\r\nSubject: two\r\n\r\nline 1\r\n.\r\n")
        self.assertFalse(session.transport.disconnecting)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual([info.flags for info in self.inbox().messages()],
                         [frozenset(), frozenset()])

    def test_topLineCountSyntax(self):
        """Negative, signed, fractional or non-numeric line counts stay syntax errors."""
        session = self.loggedIn(maxBadCommands=20)
        for count in (b"-1", b"+1", b"1.5", b"abc", b"1e3", b"\xd9\xa3", b"-99999999999999999999"):
            self.assertEqual(session.send(b"TOP 1 " + count + b"\r\n"),
                             b"-ERR Syntax: TOP message lines\r\n", count)
        self.assertEqual(session.send(b"TOP 99999999999 1\r\n"),
                         b"-ERR Syntax: TOP message lines\r\n")
        self.assertEqual(session.send(b"TOP 1 1 1\r\n"), b"-ERR Syntax: TOP message lines\r\n")

    def test_topNeedsTwoArguments(self):
        """TOP with one argument (as some textbooks show) is a syntax error."""
        self.assertEqual(self.loggedIn().send(b"TOP 1\r\n"),
                         b"-ERR Syntax: TOP message lines\r\n")

    def test_topLongHeaderLine(self):
        """A header line longer than a chunk does not end the header early."""
        self.deliver(b"X-Long: " + b"a" * 100 + b"\r\n\r\nbody 1\r\nbody 2\r\n")
        session = self.loggedIn(chunkSize=16)
        self.assertEqual(session.send(b"TOP 3 1\r\n"),
                         b"+OK Top of message follows\r\nX-Long: " + b"a" * 100
                         + b"\r\n\r\nbody 1\r\n.\r\n")

    def test_dele(self):
        """DELE marks: STAT/LIST skip it, RETR/LIST/DELE of it fail, the file stays."""
        session = self.loggedIn()
        self.assertEqual(session.send(b"DELE 1\r\n"), b"+OK Message 1 deleted\r\n")
        self.assertEqual(session.send(b"STAT\r\n"), b"+OK 1 %d\r\n" % (len(MESSAGE_2),))
        self.assertEqual(session.send(b"LIST\r\n"),
                         b"+OK 1 message (%d octets)\r\n2 %d\r\n.\r\n" % (
                             len(MESSAGE_2), len(MESSAGE_2)))
        for command in (b"RETR 1", b"LIST 1", b"UIDL 1", b"TOP 1 0", b"DELE 1"):
            self.assertEqual(session.send(command + b"\r\n"),
                             b"-ERR Message 1 already deleted\r\n")
        self.assertEqual(len(self.storedMessages()), 2)

    def test_quitDeletes(self):
        """QUIT (UPDATE state) removes the marked messages from the Maildir."""
        session = self.loggedIn()
        session.send(b"DELE 1\r\n")
        self.assertEqual(session.send(b"QUIT\r\n"),
                         b"+OK mailstack POP3 server signing off (1 deleted, 1 left)\r\n")
        self.assertTrue(session.transport.disconnecting)
        self.assertEqual(len(self.storedMessages()), 1)
        self.assertEqual(len(self.inbox().messages()), 1)

    def test_dropDeletesNothing(self):
        """A dropped connection deletes nothing and releases the lock."""
        session = self.loggedIn()
        session.send(b"DELE 1\r\nDELE 2\r\n")
        session.drop()
        self.assertEqual(len(self.storedMessages()), 2)
        self.assertFalse(self.maildropLocked("alice@lab.test"))

    def test_rset(self):
        """RSET unmarks every message."""
        session = self.loggedIn()
        session.send(b"DELE 1\r\nDELE 2\r\n")
        self.assertEqual(session.send(b"RSET\r\n"),
                         b"+OK Maildrop has 2 messages (%d octets)\r\n" % (
                             len(MESSAGE_1) + len(MESSAGE_2),))
        session.send(b"QUIT\r\n")
        self.assertEqual(len(self.storedMessages()), 2)

    def test_noop(self):
        """NOOP answers +OK; with an argument it is a syntax error."""
        session = self.loggedIn()
        self.assertEqual(session.send(b"NOOP\r\n"), b"+OK\r\n")
        self.assertEqual(session.send(b"NOOP x\r\n"), b"-ERR Syntax: NOOP\r\n")

    def test_quitBeforeLogin(self):
        """QUIT in AUTHORIZATION just signs off."""
        session = self.connect()
        self.assertEqual(session.send(b"QUIT\r\n"),
                         b"+OK mailstack POP3 server signing off\r\n")
        self.assertTrue(session.transport.disconnecting)

    def test_snapshot(self):
        """Mail arriving after login shows only in the next session."""
        session = self.loggedIn()
        self.deliver(b"Subject: three\r\n\r\nlate\r\n")
        self.assertEqual(session.send(b"STAT\r\n")[:6], b"+OK 2 ")
        self.assertEqual(session.send(b"LIST 3\r\n"),
                         b"-ERR No such message, only 2 messages in maildrop\r\n")
        session.send(b"QUIT\r\n")
        self.assertEqual(self.loggedIn().send(b"STAT\r\n")[:6], b"+OK 3 ")

    def test_expungedByIMAP(self):
        """A message expunged by another session is 'removed', never another one."""
        session = self.loggedIn()
        inbox = self.inbox()
        self.successResultOf(inbox.expunge([inbox.messages()[0].uid]))
        self.assertEqual(session.send(b"RETR 1\r\n"),
                         b"-ERR Message 1 was removed by another session\r\n")
        session.send(b"DELE 1\r\nDELE 2\r\n")
        self.assertTrue(session.send(b"QUIT\r\n").startswith(b"+OK"))
        self.assertEqual(self.storedMessages(), [])

    def test_commitFailure(self):
        """If removal fails at QUIT: -ERR [SYS/TEMP], and nothing else is lost."""
        session = self.loggedIn()
        session.send(b"DELE 2\r\n")

        def broken(uids):
            return defer.fail(OSError(13, "Permission denied"))
        self.inbox().expunge = broken
        self.assertEqual(session.send(b"QUIT\r\n"),
                         b"-ERR [SYS/TEMP] Some deleted messages not removed\r\n")
        del self.inbox().expunge
        self.assertEqual(len(self.storedMessages()), 2)
        self.assertFalse(self.maildropLocked("alice@lab.test"))
        # A disk error is one log line, not a traceback.
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_inUseWaitsThenProceeds(self):
        """A second login for a maildrop in use waits (no answer yet, input held);
        when the first session QUITs it proceeds with what the first left."""
        first = self.loggedIn()
        second = self.connect()
        self.assertEqual(second.login(), b"")
        self.assertEqual(second.send(b"STAT\r\n"), b"")  # held behind the login
        self.assertEqual(second.server.state, pop3server.AUTHORIZATION)
        first.send(b"DELE 1\r\n")
        self.transportOf(second).clear()
        self.assertEqual(first.send(b"QUIT\r\n")[:3], b"+OK")
        out = self.transportOf(second).value()
        self.assertTrue(out.startswith(b"+OK Logged in, 1 message "), out)
        self.assertTrue(out.endswith(b"\r\n+OK 1 %d\r\n" % (len(MESSAGE_2),)), out)
        self.assertEqual(len(self.storedMessages()), 1)

    def transportOf(self, session):
        return session.transport

    def test_inUseAfterTheWait(self):
        """Still in use after the configured wait: -ERR [IN-USE]; the first session
        goes on, and the refused one may log in later."""
        first = self.loggedIn(maildropWait=3)
        second = self.connect(maildropWait=3)
        self.assertEqual(second.login(), b"")
        self.reactor.advance(2.9)
        self.assertEqual(second.transport.value(), b"")
        self.reactor.advance(0.2)
        self.assertEqual(second.transport.value(),
                         b"-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n")
        self.assertEqual(second.server.state, pop3server.AUTHORIZATION)
        self.assertTrue(first.send(b"STAT\r\n").startswith(b"+OK 2 "))
        first.send(b"QUIT\r\n")
        self.assertTrue(second.login().startswith(b"+OK Logged in, 2 messages "))

    def test_inUseAtOnceWithoutWait(self):
        """maildropWait 0 ([pop3] lock_wait = 0): refused at once, as before."""
        self.loggedIn()
        second = self.connect(maildropWait=0)
        self.assertEqual(second.login(),
                         b"-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n")

    def test_waitersServedInOrder(self):
        """Waiting logins get the maildrop in the order they came."""
        first = self.loggedIn()
        second, third = self.connect(), self.connect()
        self.assertEqual(second.login(), b"")
        self.assertEqual(third.login(), b"")
        first.send(b"QUIT\r\n")
        self.assertTrue(second.transport.value().startswith(b"+OK Logged in"))
        self.assertEqual(third.transport.value(), b"")
        second.send(b"QUIT\r\n")
        self.assertTrue(third.transport.value().startswith(b"+OK Logged in"))

    def test_waiterWhoLeavesLeavesTheLine(self):
        """A waiting client that disconnects leaves the line: the next one gets the
        maildrop, and nothing is held for the one who left."""
        first = self.loggedIn()
        second, third = self.connect(), self.connect()
        second.login()
        third.login()
        second.drop()
        self.assertEqual(self.waiters.waiting("alice@lab.test"), 1)
        first.send(b"QUIT\r\n")
        self.assertTrue(third.transport.value().startswith(b"+OK Logged in"))
        third.send(b"QUIT\r\n")
        self.assertFalse(self.maildropLocked("alice@lab.test"))

    def test_lockHeldElsewhereIsPolled(self):
        """A lock another process holds (not a session of this one) is tried again
        while the login waits, and taken once it is free."""
        account = self.store.account("alice@lab.test")
        other = self.successResultOf(account.lockMaildrop())  # as another process would
        second = self.connect()
        self.assertEqual(second.login(), b"")
        self.reactor.advance(1)
        self.assertEqual(second.transport.value(), b"")
        other.release()  # no session of ours: nobody wakes the line
        self.reactor.advance(0.2)
        self.assertTrue(second.transport.value().startswith(b"+OK Logged in"))

    def test_snapshotMode(self):
        """[pop3] lock = "snapshot": two sessions of one user at once, each with its
        own snapshot; both DELE message 1: it is removed once, the other message stays."""
        first = self.loggedIn(maildropLock="snapshot")
        second = self.loggedIn(maildropLock="snapshot")
        self.assertTrue(second.send(b"STAT\r\n").startswith(b"+OK 2 "))
        first.send(b"DELE 1\r\n")
        second.send(b"DELE 1\r\n")
        self.assertEqual(first.send(b"QUIT\r\n"),
                         b"+OK mailstack POP3 server signing off (1 deleted, 1 left)\r\n")
        self.assertEqual(second.send(b"QUIT\r\n"),
                         b"+OK mailstack POP3 server signing off (0 deleted, 1 left)\r\n")
        self.assertEqual(len(self.storedMessages()), 1)

    def test_inUseOtherUser(self):
        """The lock is per user: another user logs in meanwhile."""
        self.loggedIn()
        self.assertTrue(self.connect().login(b"carol", b"correct horse").startswith(b"+OK"))

    def test_pipelining(self):
        """Pipelined commands are answered in order, RETR included."""
        out = self.loggedIn().send(b"STAT\r\nRETR 2\r\nLIST 1\r\nNOOP\r\n")
        self.assertEqual(out, b"+OK 2 %d\r\n+OK %d octets\r\n%s.\r\n+OK 1 %d\r\n+OK\r\n" % (
            len(MESSAGE_1) + len(MESSAGE_2), len(MESSAGE_2), MESSAGE_2, len(MESSAGE_1)))

    def test_commandsWaitForRETR(self):
        """A command arriving while a message streams is answered after it."""
        session = self.loggedIn(chunkSize=8)
        session.transport.clear()
        session.server.dataReceived(b"RETR 2\r\n")
        session.transport.producer.resumeProducing()
        session.server.dataReceived(b"NOOP\r\n")
        self.assertNotIn(b"+OK\r\n", session.transport.value())
        pump(session.transport)
        self.assertTrue(session.transport.value().endswith(b"line 3\r\n.\r\n+OK\r\n"))

    def test_retrReadError(self):
        """A read error mid-message closes the connection (no -ERR inside data)."""
        session = self.loggedIn(chunkSize=8)
        original = session.server.maildrop.openMessage

        class Failing(io.BytesIO):
            def read(self, n=-1):
                if self.tell() >= 8:
                    raise OSError(5, "Input/output error")
                return io.BytesIO.read(self, n)

        session.server.maildrop.openMessage = lambda n: (original(n).close(), Failing(
            MESSAGE_1))[1]
        out = session.send(b"RETR 1\r\n")
        self.assertEqual(out, b"+OK %d octets\r\n" % (len(MESSAGE_1),) + MESSAGE_1[:8])
        self.assertTrue(session.transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)


class TransferLifecycleTests(POP3TestMixin, unittest.TestCase):
    """
    RETR/TOP producers over a transport that manages producers as a real
    connection does: pipelined transfers strictly one after another, and a
    connection lost mid-transfer ends the session quietly.
    """

    def setUp(self):
        POP3TestMixin.setUp(self)
        self.deliver(MESSAGE_1)
        self.deliver(MESSAGE_2)
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def session(self, **overrides):
        settings = dict(self.settings, chunkSize=8)
        settings.update(overrides)
        server = POP3Server(POP3Settings(**settings), self.portal,
                            self.users.allPlaintextSecrets, self.reactor)
        session = Session(server, ConnectionTransport(), self.reactor)
        self.assertTrue(session.login().startswith(b"+OK Logged in"))
        self.opened = []
        original = server.maildrop.openMessage

        def openMessage(number):
            self.opened.append(original(number))
            return self.opened[-1]
        server.maildrop.openMessage = openMessage
        return session

    def pop3Events(self):
        return [e for e in self.events
                if e.get("log_namespace", "").startswith("mailstack.pop3")]

    def test_pipelinedOneAfterAnother(self):
        """Each pipelined RETR/TOP registers only after the previous one unregistered."""
        session = self.session()
        out = session.send(b"RETR 1\r\nTOP 2 1\r\nRETR 2\r\nRETR 1\r\nNOOP\r\n")
        retr1 = b"+OK %d octets\r\n" % (len(MESSAGE_1),) + referenceStuffing(MESSAGE_1)
        self.assertEqual(out, retr1 + b"+OK Top of message follows\r\nSubject: two\r\n\r\n"
                         b"line 1\r\n.\r\n+OK %d octets\r\n" % (len(MESSAGE_2),)
                         + referenceStuffing(MESSAGE_2) + retr1 + b"+OK\r\n")
        history = session.transport.history
        self.assertEqual([what for what, _ in history], ["register", "unregister"] * 4)
        for (_, registered), (_, unregistered) in zip(history[::2], history[1::2]):
            self.assertIs(registered, unregistered)
        self.assertEqual(len({id(p) for _, p in history}), 4)
        self.assertTrue(all(f.closed for f in self.opened))
        self.assertIsNone(session.transport.producer)

    def test_connectionLostWithPipelinedRETRs(self):
        """
        The peer resets mid-message with RETRs queued: the transfer stops, its
        file is closed, the queued commands are dropped without an error or a
        reply, nothing is deleted or marked \\Seen, the lock is released.
        """
        session = self.session()
        session.send(b"DELE 2\r\n")
        session.transport.clear()
        session.server.dataReceived(b"RETR 1\r\n" * 50 + b"QUIT\r\n")
        session.transport.producer.resumeProducing()
        self.assertEqual(session.transport.value(),
                         b"+OK %d octets\r\n" % (len(MESSAGE_1),) + MESSAGE_1[:16])
        del self.events[:]
        session.transport.lose(session.server)

        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(session.transport.late, [])
        self.assertEqual([what for what, _ in session.transport.history], ["register"])
        self.assertEqual(len(self.opened), 1)
        self.assertTrue(self.opened[0].closed)
        events = self.pop3Events()
        self.assertLessEqual(len(events), 1, events)
        self.assertEqual([e for e in events if e.get("log_failure") is not None
                          or e["log_level"].name != "info"], [])
        self.assertEqual(len(self.storedMessages()), 2)
        self.assertEqual([info.flags for info in self.inbox().messages()],
                         [frozenset(), frozenset()])
        self.assertFalse(self.maildropLocked("alice@lab.test"))
        # Nothing more happens later (a timer, a late reply).
        self.reactor.advance(3600)
        self.assertEqual(session.transport.late, [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_connectionLostDuringTOP(self):
        """The same for TOP: a loss after its first chunk, TOPs queued: quiet."""
        session = self.session()
        session.transport.clear()
        session.server.dataReceived(b"TOP 1 0\r\n" + b"TOP 2 5\r\n" * 10)
        del self.events[:]
        session.transport.lose(session.server)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(session.transport.late, [])
        self.assertEqual(len(self.opened), 1)
        self.assertTrue(self.opened[0].closed)
        self.assertLessEqual(len(self.pop3Events()), 1)
        self.assertFalse(self.maildropLocked("alice@lab.test"))

    def test_protocolSeesLossFirst(self):
        """
        If the protocol hears of the loss while its producer is still
        registered, it stops the transfer itself: unregisters, closes the file.
        """
        session = self.connect(chunkSize=8)
        self.assertTrue(session.login().startswith(b"+OK Logged in"))
        opened = []
        original = session.server.maildrop.openMessage
        session.server.maildrop.openMessage = lambda n: opened.append(original(n)) or opened[-1]
        session.transport.clear()
        session.server.dataReceived(b"RETR 1\r\nRETR 2\r\n")
        session.transport.producer.resumeProducing()
        session.drop()
        self.assertIsNone(session.transport.producer)
        self.assertEqual(len(opened), 1)
        self.assertTrue(opened[0].closed)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.inbox().messages()[0].flags, frozenset())
        self.assertFalse(self.maildropLocked("alice@lab.test"))

class FramingTests(POP3TestMixin, unittest.TestCase):
    """
    Lines, limits, unknown commands, timeouts, internal errors.
    """

    def test_bareLF(self):
        """Lines ending in a bare LF (netcat) work like CRLF ones."""
        session = self.connect()
        self.assertEqual(session.send(b"USER alice\n"), b"+OK Send PASS\n"[:-1] + b"\r\n")
        self.assertTrue(session.send(b"PASS secret\n").startswith(b"+OK Logged in"))

    def test_lowercase(self):
        """Commands are case-insensitive."""
        self.assertEqual(self.connect().send(b"user alice\r\n"), b"+OK Send PASS\r\n")

    def test_lineTooLong(self):
        """An over-long line: -ERR, and the next command works."""
        session = self.connect()
        out = session.send(b"USER " + b"a" * 600 + b"\r\nCAPA\r\n")
        self.assertTrue(out.startswith(b"-ERR Line too long (limit 512 octets)\r\n"
                                       b"+OK Capability list follows\r\n"), out)

    def test_lineTooLongInPieces(self):
        """An over-long line sent in pieces is answered once and skipped whole."""
        session = self.connect()
        self.assertEqual(session.send(b"USER " + b"a" * 600),
                         b"-ERR Line too long (limit 512 octets)\r\n")
        self.assertEqual(session.send(b"b" * 600), b"")
        self.assertEqual(session.send(b"c\r\nNOOP x\r\n"),
                         b"-ERR NOOP needs a login first (USER/PASS, APOP or AUTH)\r\n")

    def test_unknownCommand(self):
        """Unknown and obsolete commands: -ERR, session continues."""
        session = self.loggedIn()
        self.assertEqual(session.send(b"XYZZY\r\n"), b"-ERR Unknown command: XYZZY\r\n")
        self.assertEqual(session.send(b"LAST\r\n"),
                         b"-ERR LAST was removed from POP3 by RFC 1939; use UIDL\r\n")
        self.assertEqual(session.send(b"TURN\r\n"),
                         b"-ERR TURN is not a POP3 command (and unsafe in SMTP)\r\n")
        self.assertEqual(session.send(b"\xff\xfe\r\n"), b"-ERR Unknown command\r\n")
        self.assertEqual(session.send(b"NOOP\r\n"), b"+OK\r\n")

    def test_emptyLine(self):
        """An empty line (Enter in telnet) is answered and not counted as bad."""
        session = self.connect()
        for i in range(10):
            self.assertEqual(session.send(b"\r\n"), b"-ERR No command given\r\n")
        self.assertFalse(session.transport.disconnecting)

    def test_wrongState(self):
        """TRANSACTION commands before login: -ERR with the reason."""
        self.assertEqual(self.connect().send(b"STAT\r\n"),
                         b"-ERR STAT needs a login first (USER/PASS, APOP or AUTH)\r\n")

    def test_badCommandLimit(self):
        """After the configured number of bad commands the session is closed."""
        session = self.connect()
        out = session.send(b"BAD\r\n" * 6)
        # before login an unknown command is not echoed (it may be a password)
        self.assertEqual(out, b"-ERR Unknown command\r\n" * 4
                         + b"-ERR Too many bad commands, closing connection\r\n")
        self.assertTrue(session.transport.disconnecting)

    def test_commandLimit(self):
        """commands_per_session: the session is closed past the limit."""
        session = self.connect(maxCommands=3)
        out = session.send(b"CAPA\r\n" * 2 + b"QUIT\r\nCAPA\r\n")
        self.assertTrue(out.endswith(b"+OK mailstack POP3 server signing off\r\n"))
        session = self.connect(maxCommands=2)
        out = session.send(b"USER a\r\nUSER a\r\nUSER a\r\n")
        self.assertEqual(out, b"+OK Send PASS\r\n" * 2
                         + b"-ERR Too many commands in one session, closing connection\r\n")

    def test_idleTimeout(self):
        """After idle_timeout seconds without a command: -ERR and close."""
        session = self.loggedIn()
        self.reactor.advance(599)
        session.send(b"NOOP\r\n")
        self.reactor.advance(599)
        self.assertFalse(session.transport.disconnecting)
        session.transport.clear()
        self.reactor.advance(1)
        self.assertEqual(session.transport.value(), b"-ERR Disconnected for inactivity.\r\n")
        self.assertTrue(session.transport.disconnecting)
        session.drop()
        self.assertFalse(self.maildropLocked("alice@lab.test"))

    def test_idleDuringRETR(self):
        """A client that stops reading mid-message is cut off without an -ERR line."""
        self.deliver(MESSAGE_1)
        session = self.loggedIn(chunkSize=8)
        session.transport.clear()
        session.server.dataReceived(b"RETR 1\r\n")
        self.reactor.advance(600)
        self.assertTrue(session.transport.aborted)
        self.assertNotIn(b"-ERR", session.transport.value())

    def test_manyPipelined(self):
        """A packet of thousands of pipelined commands is answered in full."""
        session = self.loggedIn()
        self.assertEqual(session.send(b"NOOP\r\n" * 20000), b"+OK\r\n" * 20000)

    def test_inputPausedWhileBlocked(self):
        """While a reply is delayed, a flood of input pauses reading, then resumes."""
        session = self.connect()
        session.login(b"alice", b"x1")
        session.login(b"alice", b"x2")
        session.send(b"NOOP\r\n" * 1000)
        self.assertEqual(session.transport.producerState, "paused")
        self.reactor.advance(3)
        self.assertEqual(session.transport.producerState, "producing")
        out = session.transport.value()
        self.assertEqual(out.count(b"-ERR NOOP needs a login"), 4)
        self.assertTrue(out.endswith(b"-ERR Too many bad commands, closing connection\r\n"))

    def test_internalError(self):
        """A failing handler gives -ERR [SYS/TEMP], never a traceback; session lives."""
        session = self.loggedIn()

        def broken():
            raise RuntimeError("boom")
        session.server.maildrop.stat = broken
        self.assertEqual(session.send(b"STAT\r\n"), b"-ERR [SYS/TEMP] Internal error\r\n")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(session.send(b"NOOP\r\n"), b"+OK\r\n")


class TopReaderTests(unittest.TestCase):
    """
    Header plus N body lines.
    """

    def read(self, message, lines, size=1024):
        reader = TopReader(io.BytesIO(message), lines)
        return b"".join(iter(lambda: reader.read(size), b""))

    def test_noBlankLine(self):
        """A message with no blank line is all header."""
        self.assertEqual(self.read(b"A: b\r\nC: d\r\n", 0), b"A: b\r\nC: d\r\n")

    def test_bodyLines(self):
        """Counts whole lines even when read in small pieces."""
        message = b"A: b\r\n\r\n" + b"x" * 50 + b"\r\nsecond\r\nthird\r\n"
        for size in (3, 7, 1024):
            self.assertEqual(self.read(message, 2, size),
                             b"A: b\r\n\r\n" + b"x" * 50 + b"\r\nsecond\r\n")

    def test_stopsReading(self):
        """TOP of a huge message reads only what it sends."""
        source = io.BytesIO(b"A: b\r\n\r\nbody\r\n" + b"y" * 1000000)
        reader = TopReader(source, 1)
        self.assertEqual(b"".join(iter(lambda: reader.read(4096), b"")),
                         b"A: b\r\n\r\nbody\r\n")
        self.assertLess(source.tell(), 5000)


class RecordingFile(io.BytesIO):
    """Remembers the sizes asked of read()."""

    def __init__(self, data):
        io.BytesIO.__init__(self, data)
        self.reads = []

    def read(self, n=-1):
        self.reads.append(n)
        return io.BytesIO.read(self, n)


class MessageSenderTests(unittest.TestCase):
    """
    The pull producer that streams a message.
    """

    def test_oneChunkPerPull(self):
        """Nothing is read or written until the transport asks, one chunk each time."""
        message = (b"x" * 9 + b"\r\n") * 100
        source = RecordingFile(message)
        transport = StringTransport()
        d = MessageSender(source, transport, chunkSize=100).start()
        self.assertIs(transport.producer.__class__, MessageSender)
        self.assertFalse(transport.streaming)
        self.assertEqual(transport.value(), b"")
        transport.producer.resumeProducing()
        self.assertEqual(transport.value(), message[:100])
        self.assertEqual(source.reads, [100])
        pump(transport)
        self.assertEqual(transport.value(), message + b".\r\n")
        self.assertTrue(all(n == 100 for n in source.reads))
        self.assertTrue(source.closed)
        self.assertTrue(self.successResultOf(d))

    def test_smallMessageOneWrite(self):
        """A message smaller than a chunk leaves in one write with its terminator
        (one send per RETR), and the sender is done."""
        message = b"Subject: hi\r\n\r\n.dot\r\nbody\r\n"
        transport = StringTransport()
        writes = []
        real = transport.write
        transport.write = lambda data: (writes.append(data), real(data))
        d = MessageSender(RecordingFile(message), transport, chunkSize=100).start()
        transport.producer.resumeProducing()
        self.assertEqual(writes, [b"Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n"])
        self.assertTrue(self.successResultOf(d))
        self.assertIsNone(transport.producer)

    def test_shortReadNotTheEnd(self):
        """A short read that is not the end (a pipe, a CRLF converter) loses nothing:
        what was read ahead goes out next."""
        class Trickle(RecordingFile):
            def read(self, n=-1):
                return RecordingFile.read(self, min(n, 7))
        message = b"0123456789" * 5 + b"\r\n"
        transport = StringTransport()
        d = MessageSender(Trickle(message), transport, chunkSize=100).start()
        pump(transport)
        self.assertEqual(transport.value(), message + b".\r\n")
        self.assertTrue(self.successResultOf(d))

    def test_stopped(self):
        """A lost connection stops the sender and closes the file."""
        source = RecordingFile(b"abc\r\n" * 100)
        transport = StringTransport()
        d = MessageSender(source, transport, chunkSize=10).start()
        transport.producer.resumeProducing()
        transport.producer.stopProducing()
        self.assertFalse(self.successResultOf(d))
        self.assertTrue(source.closed)

    def test_stoppedByConsumerNotUnregistered(self):
        """A consumer that stops the sender has let go of it: no unregister call."""
        transport = ConnectionTransport()
        source = RecordingFile(b"abc\r\n" * 100)
        d = MessageSender(source, transport, chunkSize=10).start()
        transport.lose(Protocol())
        self.assertFalse(self.successResultOf(d))
        self.assertEqual([what for what, _ in transport.history], ["register"])
        self.assertTrue(source.closed)

    def test_abort(self):
        """abort() (the protocol's stop) closes the file and unregisters, once."""
        source = RecordingFile(b"abc\r\n" * 100)
        transport = StringTransport()
        sender = MessageSender(source, transport, chunkSize=10)
        d = sender.start()
        transport.producer.resumeProducing()
        sender.abort()
        sender.abort()
        self.assertIsNone(transport.producer)
        self.assertTrue(source.closed)
        self.assertFalse(self.successResultOf(d))

    def test_registerRefused(self):
        """A consumer that refuses the producer: the error propagates, the file is closed."""
        transport = StringTransport()
        transport.registerProducer(object(), False)
        source = RecordingFile(b"abc\r\n")
        self.assertRaises(RuntimeError, MessageSender(source, transport).start)
        self.assertTrue(source.closed)

    def test_chunkBoundaries(self):
        """Lines starting with '.' on every chunk boundary come out right."""
        lines = [b"." * (i % 3) + b"z" * (i % 7) for i in range(200)]
        message = b"".join(line + b"\r\n" for line in lines)
        for size in (1, 2, 3, 5, 8, 64):
            transport = StringTransport()
            MessageSender(io.BytesIO(message), transport, chunkSize=size).start()
            pump(transport)
            self.assertEqual(transport.value(), referenceStuffing(message), size)


class BuildFactoryTests(unittest.TestCase):
    """
    The pop3 plug-in turns a listener's config into settings.
    """

    def test_settingsFromConfig(self):
        """Limits, TLS mode, plaintext policy and disabled names reach the server."""
        from mailstack.config import loadConfig
        from mailstack.listener import ListenerContext
        from mailstack.pop3.plugin import plugin
        from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig
        text = BASE_CONFIG.replace("[limits]", "[limits]\nline_length = 1024\n"
                                   "command_timeout = 900\nbad_commands = 7")
        config = loadConfig(writeConfig(self, text, listenerTOML(
            "pop3", tls="starttls", allow_plaintext_auth=True, disabled=["top", "APOP"])))
        context = ListenerContext(config=config, listener=config.listeners[0], portal=None,
                                  users=None, store=None, tlsContext="context", counter=None,
                                  reactor=task.Clock(), shared={})
        built = plugin.buildFactory(context)
        settings = built.factory.settings
        self.assertEqual((settings.hostname, settings.tlsMode, settings.tlsContext,
                          settings.allowPlaintextAuth, settings.disabled, settings.maxLine,
                          settings.idleTimeout, settings.maxBadCommands),
                         ("mail.lab.test", "starttls", "context", True,
                          frozenset(["TOP", "APOP"]), 1024, 900, 7))
        self.assertEqual(built.refusal,
                         b"-ERR [SYS/TEMP] Too many connections from your address\r\n")
        self.assertIsInstance(built.factory.buildProtocol(None), POP3Server)


everyStore(globals())
