"""
Unit tests for L{mailstack.imap.server}: exact bytes over a StringTransport,
against a real Maildir store in a temporary directory (L{IMAPTestMixin.makeStore};
the classes named Maildir... test what only a Maildir does).
"""

import base64
import hashlib
import hmac

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import task
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from mailstack.auth.realm import MailRealm
from mailstack.imap import cooperative
from mailstack.imap.plugin import plugin as imapPlugin
from mailstack.imap.server import IMAPServer, IMAPSettings
from tests.stores import StoreChoice, everyStore
from tests.fakes import FakeTLSTransport

MESSAGE = (b"From: Alice <alice@lab.test>\r\nTo: bob@lab.test\r\nSubject: Hello\r\n"
           b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nHi Bob,\r\nhow are you?\r\n")

MULTIPART = (b"From: alice@lab.test\r\nSubject: parts\r\n"
             b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
             b"--XX\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
             b"--XX\r\nContent-Type: text/plain; charset\r\n\r\nsecond\r\n--XX--\r\n")


class IMAPTestMixin(StoreChoice):
    """
    A store with user alice@lab.test (password 'secret') and sessions on it.
    """

    settings = dict(hostname="mail.lab.test", tlsMode="starttls", tlsContext=object(),
                    allowPlaintextAuth=True, maxBadCommands=5, maxLineLength=1024,
                    maxLiteralSize=4096, authFailuresDelay=1, authFailuresDisconnect=4,
                    idleTimeout=1800, loginTimeout=60)
    def setUp(self):
        self.clock = task.Clock()
        # Long work (SEARCH, SORT) runs in wall-clock bursts that go on in a
        # later turn of this test clock; on a loaded machine a burst could end
        # early and a reply be missing. Tests that check slicing set 0 again.
        self.patch(cooperative, "BURST", float("inf"))
        self.store = self.makeStore()
        checker = InMemoryUsernamePasswordDatabaseDontUse(**{"alice@lab.test": b"secret"})
        self.portal = Portal(MailRealm(self.store, imapPlugin.avatarAdapters()), [checker])
        self.account = self.store.account("alice@lab.test")
        # An account set up before: no default folders at login (see
        # test_imap_extensions for those).
        self.successResultOf(self.account.createDefaultMailboxes([]))
        self.server, self.transport = self.connect()

    def connect(self, cramAvailable=None, **overrides):
        settings = dict(self.settings)
        settings.update(overrides)
        server = IMAPServer(IMAPSettings(**settings), self.portal, self.clock, cramAvailable)
        transport = FakeTLSTransport()
        server.makeConnection(transport)
        self.assertTrue(transport.value().startswith(b"* OK [CAPABILITY IMAP4rev1 "))
        transport.clear()
        self.addCleanup(self.disconnect, server)
        return server, transport

    def disconnect(self, server):
        if not server._closing or server.state != "logout":
            server.connectionLost(None)

    def send(self, data, session=None):
        server, transport = session or (self.server, self.transport)
        transport.clear()
        server.dataReceived(data)
        return transport.value()

    def login(self, session=None):
        out = self.send(b"L1 LOGIN alice@lab.test secret\r\n", session)
        self.assertTrue(out.startswith(b"L1 OK [CAPABILITY IMAP4rev1 "), out)

    def openMailbox(self, name="INBOX"):
        """The store's mailbox C{name} (its Deferred has fired)."""
        return self.successResultOf(self.account.openMailbox(name))

    def createMailbox(self, name):
        self.successResultOf(self.account.createMailbox(name))

    def deliver(self, message=MESSAGE, flags=(), mailbox="INBOX"):
        """APPEND through the store: the new message's UID."""
        return self.successResultOf(self.openMailbox(mailbox).append(message, flags))

    def select(self, session=None, mailbox=b"INBOX"):
        self.login(session)
        out = self.send(b"S1 SELECT " + mailbox + b"\r\n", session)
        self.assertIn(b"S1 OK [READ-WRITE]", out)
        return out


class GreetingTests(IMAPTestMixin, unittest.TestCase):
    """
    Greeting, CAPABILITY, states, unknown commands.
    """

    def test_greeting(self):
        """The greeting carries the capabilities (lab: plaintext auth allowed)."""
        server2 = IMAPServer(IMAPSettings(**self.settings), self.portal, self.clock)
        t2 = StringTransport()
        server2.makeConnection(t2)
        self.assertEqual(
            t2.value(),
            b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS AUTH=PLAIN AUTH=LOGIN LITERAL+ SASL-IR ID "
            b"ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE CREATE-SPECIAL-USE "
            b"LIST-EXTENDED LIST-STATUS CONDSTORE QRESYNC APPENDLIMIT=4096 SORT SORT=DISPLAY"
            b" THREAD=ORDEREDSUBJECT THREAD=REFERENCES ESEARCH SEARCHRES WITHIN STATUS=SIZE PREVIEW OBJECTID BINARY SNIPPET=FUZZY PREVIEW=FUZZY MULTIAPPEND CATENATE URL-PARTIAL ESORT CONTEXT=SEARCH CONTEXT=SORT THREAD=REFS NOTIFY UTF8=ACCEPT LOGIN-REFERRALS SAVEDATE I18NLEVEL=1]"
            b" mail.lab.test mailstack IMAP4rev1 ready\r\n")
        server2.connectionLost(None)

    def test_capabilityProduction(self):
        """Without TLS and without plaintext auth: LOGINDISABLED, no AUTH=PLAIN."""
        session = self.connect(allowPlaintextAuth=False)
        out = self.send(b"a CAPABILITY\r\n", session)
        self.assertIn(b"STARTTLS LOGINDISABLED", out)
        self.assertNotIn(b"AUTH=PLAIN", out)
        self.assertTrue(out.endswith(b"a OK CAPABILITY completed\r\n"))

    def test_cramOffered(self):
        """CRAM-MD5 is offered when every user's secret is plaintext, even before TLS."""
        session = self.connect(cramAvailable=lambda: True, allowPlaintextAuth=False)
        self.assertIn(b"AUTH=CRAM-MD5", self.send(b"a CAPABILITY\r\n", session))

    def test_cramHiddenUnlessEveryUserPlain(self):
        """CRAM-MD5 is not offered (nor accepted) while it would fail for some user."""
        session = self.connect(cramAvailable=lambda: False)
        self.assertNotIn(b"CRAM-MD5", self.send(b"a CAPABILITY\r\n", session))
        self.assertEqual(self.send(b"b AUTHENTICATE CRAM-MD5\r\n", session),
                         b"b NO [CANNOT] Unsupported authentication mechanism\r\n")

    def test_cramAlways(self):
        """challenge_auth = "always" offers CRAM-MD5 although some user is hashed."""
        session = self.connect(cramAvailable=lambda: False, challengeAuth="always")
        self.assertIn(b" AUTH=PLAIN AUTH=LOGIN AUTH=CRAM-MD5 ",
                      self.send(b"a CAPABILITY\r\n", session))
        self.assertTrue(self.send(b"b AUTHENTICATE CRAM-MD5\r\n", session).startswith(b"+ "))

    def test_implicitTLS(self):
        """An implicit-TLS listener never offers STARTTLS and allows plaintext auth."""
        session = self.connect(tlsMode="implicit", allowPlaintextAuth=False)
        out = self.send(b"a CAPABILITY\r\n", session)
        self.assertNotIn(b"STARTTLS", out)
        self.assertNotIn(b"LOGINDISABLED", out)
        self.assertIn(b"AUTH=PLAIN", out)

    def test_disabled(self):
        """Disabled capabilities are not advertised and their commands are unknown."""
        session = self.connect(disabled=frozenset({"IDLE", "AUTH=LOGIN", "STARTTLS", "MOVE"}))
        out = self.send(b"a CAPABILITY\r\n", session)
        for name in (b" IDLE", b"AUTH=LOGIN", b"STARTTLS", b" MOVE"):
            self.assertNotIn(name, out)
        self.assertIn(b"AUTH=PLAIN", out)
        self.assertEqual(self.send(b"b STARTTLS\r\n", session), b"b BAD Unknown command STARTTLS\r\n")
        self.login(session)
        self.assertEqual(self.send(b"c IDLE\r\n", session), b"c BAD Unknown command IDLE\r\n")

    def test_unknownCommand(self):
        """Unknown commands are BAD with the tag."""
        self.assertEqual(self.send(b"x1 FROB\r\n"), b"x1 BAD Unknown command FROB\r\n")

    def test_invalidTag(self):
        """A line without a valid tag gets an untagged BAD."""
        self.assertEqual(self.send(b"+ NOOP\r\n"), b"* BAD Invalid tag\r\n")
        self.assertEqual(self.send(b"\r\n"), b"* BAD Invalid tag\r\n")

    def test_tagStopsOnlyAtSpace(self):
        """
        A tag runs to the space: 'a+ NOOP' and 'a{ NOOP' have no valid tag
        (not the tag 'a'), so the answer is untagged; the session goes on.
        """
        self.assertEqual(self.send(b"a+ NOOP\r\n"), b"* BAD Invalid tag\r\n")
        self.assertEqual(self.send(b"a{ NOOP\r\n"), b"* BAD Invalid tag\r\n")
        self.assertEqual(self.send(b"a\tNOOP\r\n"), b"* BAD Invalid tag\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")
        self.assertEqual(self.send(b"c] NOOP\r\n"), b"c] OK NOOP completed\r\n")

    def test_eightBitTag(self):
        """A tag with 8-bit octets is invalid and never echoed."""
        self.assertEqual(self.send(b"\xff NOOP\r\n"), b"* BAD Invalid tag\r\n")
        self.assertEqual(self.send(b"a\xc3\xa9 NOOP\r\n"), b"* BAD Invalid tag\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")

    def test_invalidTagWithLiteral(self):
        """
        A literal announced after an invalid tag is refused (no '+'), or read
        and dropped if non-synchronizing; the tag is never echoed.
        """
        self.assertEqual(self.send(b"\xff LOGIN {5}\r\n"), b"* BAD Invalid tag\r\n")
        self.assertEqual(self.send(b"a NOOP\r\n"), b"a OK NOOP completed\r\n")
        self.assertEqual(self.send(b"\xff LOGIN {5+}\r\nx NOO {3+}\r\nabc\r\nb NOOP\r\n"),
                         b"* BAD Invalid tag\r\nb OK NOOP completed\r\n")
        self.assertEqual(self.send(b"\xff APPEND INBOX {999999}\r\n"), b"* BAD Invalid tag\r\n")
        out = self.send(b"\xff" * 1100 + b" NOOP\r\nc NOOP\r\n")
        self.assertEqual(out, b"* BAD Line too long (limit 1024 octets)\r\n"
                              b"c OK NOOP completed\r\n")

    def test_repliesSevenBit(self):
        """Text echoing what a client sent never carries 8-bit octets: they are escaped."""
        self.assertEqual(self.send(b"a FR\xffOB\r\n"), b"a BAD Unknown command FR\\XFFOB\r\n")
        self.login()
        self.assertEqual(self.send(b"b SELECT &ZeVnLIqe-\r\n"),
                         b"b NO [NONEXISTENT] no mailbox named &ZeVnLIqe-\r\n")

    def test_wrongState(self):
        """Commands of later states are refused before login."""
        self.assertEqual(self.send(b"a SELECT INBOX\r\n"),
                         b"a BAD SELECT not valid in this state (log in first)\r\n")
        self.login()
        self.assertEqual(self.send(b"b FETCH 1 FLAGS\r\n"),
                         b"b BAD FETCH not valid in this state (select a mailbox first)\r\n")
        self.assertEqual(self.send(b"c LOGIN a b\r\n"),
                         b"c BAD LOGIN not valid in this state (already logged in)\r\n")

    def test_syntaxError(self):
        """Argument errors are BAD with a reason."""
        self.login()
        self.assertEqual(self.send(b"a SELECT\r\n"),
                         b"a BAD SELECT: Missing space between arguments\r\n")
        self.assertEqual(self.send(b"b NOOP extra\r\n"),
                         b"b BAD NOOP: Unexpected characters at end of command\r\n")

    def test_tooManyBadCommands(self):
        """The fifth invalid command ends the session."""
        for i in range(4):
            self.send(b"a%d FROB\r\n" % i)
        out = self.send(b"a5 FROB\r\n")
        self.assertEqual(out, b"a5 BAD Unknown command FROB\r\n* BYE Too many invalid commands\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_bareLF(self):
        """Lines ending in a bare LF (netcat) work like CRLF."""
        self.assertEqual(self.send(b"a NOOP\n"), b"a OK NOOP completed\r\n")

    def test_logout(self):
        """LOGOUT: BYE, tagged OK, close."""
        self.assertEqual(self.send(b"a LOGOUT\r\n"),
                         b"* BYE mailstack logging out\r\na OK LOGOUT completed\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_pipelined(self):
        """Several commands in one packet are answered in order."""
        self.assertEqual(self.send(b"a NOOP\r\nb NOOP\r\n"),
                         b"a OK NOOP completed\r\nb OK NOOP completed\r\n")

    def test_id(self):
        """ID answers with the server's name."""
        self.assertEqual(self.send(b'a ID ("name" "test")\r\n'),
                         b'* ID ("name" "mailstack" "vendor" "mailstack")\r\na OK ID completed\r\n')

    def test_internalError(self):
        """An exception becomes NO [SERVERBUG]; the session continues."""
        self.login()

        def broken(tag, mailbox, uses):
            raise RuntimeError("boom")
        self.server.do_CREATE = broken
        self.assertEqual(self.send(b"a CREATE x\r\n"), b"a NO [SERVERBUG] Internal error\r\n")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")

    def test_faultAfterCommand(self):
        """A fault while completing a command: it is answered NO [SERVERBUG], logged once, and the next command runs."""
        from twisted.internet import defer
        self.server.do_NOOP = lambda tag: defer.succeed("not a result")
        out = self.send(b"a NOOP\r\nb CAPABILITY\r\n")
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertTrue(out.startswith(b"a NO [SERVERBUG] Internal error\r\n* CAPABILITY "), out)
        self.assertTrue(out.endswith(b"b OK CAPABILITY completed\r\n"), out)

    def test_autologout(self):
        """After the idle timeout: BYE Autologout and close."""
        self.login()
        self.clock.advance(1799)
        self.assertFalse(self.transport.disconnecting)
        self.transport.clear()
        self.clock.advance(2)
        self.assertEqual(self.transport.value(), b"* BYE Autologout; idle for too long\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_loginTimeout(self):
        """Before login the shorter timeout applies."""
        self.clock.advance(61)
        self.assertTrue(self.transport.disconnecting)

    def test_commandLimit(self):
        """The session's command budget ends it."""
        session = self.connect(maxCommands=2)
        self.send(b"a NOOP\r\nb NOOP\r\n", session)
        self.assertEqual(self.send(b"c NOOP\r\n", session),
                         b"* BYE Too many commands in one session\r\n")


class STARTTLSTests(IMAPTestMixin, unittest.TestCase):
    """
    STARTTLS (RFC 3501 6.2.1).
    """

    def test_pipelinedDiscarded(self):
        """Commands pipelined after STARTTLS are never run."""
        out = self.send(b"a STARTTLS\r\nb LOGIN alice@lab.test secret\r\n")
        self.assertEqual(out, b"a OK Begin TLS negotiation now\r\n")
        self.assertEqual(self.transport.tlsStarted, b"a OK Begin TLS negotiation now\r\n")
        self.assertEqual(self.server.state, "not authenticated")
        self.assertEqual(self.send(b"c NOOP\r\n"), b"c OK NOOP completed\r\n")

    def test_capabilitiesAfterTLS(self):
        """After TLS: no STARTTLS, no LOGINDISABLED, AUTH=PLAIN offered."""
        session = self.connect(allowPlaintextAuth=False)
        self.send(b"a STARTTLS\r\n", session)
        out = self.send(b"b CAPABILITY\r\n", session)
        self.assertNotIn(b"STARTTLS", out)
        self.assertNotIn(b"LOGINDISABLED", out)
        self.assertIn(b"AUTH=PLAIN", out)
        self.login(session)

    def test_twice(self):
        """A second STARTTLS is refused."""
        self.send(b"a STARTTLS\r\n")
        self.assertEqual(self.send(b"b STARTTLS\r\n"), b"b BAD TLS is already active\r\n")

    def test_notOffered(self):
        """No STARTTLS on a plain listener."""
        session = self.connect(tlsMode="none")
        self.assertEqual(self.send(b"a STARTTLS\r\n", session),
                         b"a NO STARTTLS is not available here\r\n")


class LoginTests(IMAPTestMixin, unittest.TestCase):
    """
    LOGIN and AUTHENTICATE.
    """

    def test_login(self):
        """LOGIN with atoms; the tagged OK lists the new capabilities."""
        out = self.send(b"a LOGIN alice@lab.test secret\r\n")
        self.assertEqual(
            out, b"a OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS"
                 b" MOVE CHILDREN SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS"
                 b" CONDSTORE QRESYNC APPENDLIMIT=4096 SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT"
                 b" THREAD=REFERENCES ESEARCH SEARCHRES WITHIN STATUS=SIZE PREVIEW OBJECTID BINARY SNIPPET=FUZZY PREVIEW=FUZZY MULTIAPPEND CATENATE URL-PARTIAL ESORT CONTEXT=SEARCH CONTEXT=SORT THREAD=REFS NOTIFY UTF8=ACCEPT LOGIN-REFERRALS SAVEDATE I18NLEVEL=1] Logged in\r\n")
        self.assertEqual(self.server.state, "authenticated")

    def test_loginLiterals(self):
        """LOGIN with a quoted user and a synchronizing literal password."""
        self.assertEqual(self.send(b'a LOGIN "alice@lab.test" {6}\r\n'),
                         b"+ Ready for literal data\r\n")
        self.assertIn(b"a OK [CAPABILITY", self.send(b"secret\r\n"))

    def test_loginNonSynchronizing(self):
        """LITERAL+: no continuation request."""
        out = self.send(b"a LOGIN {14+}\r\nalice@lab.test {6+}\r\nsecret\r\n")
        self.assertTrue(out.startswith(b"a OK [CAPABILITY"), out)

    def test_loginQuotedBackslash(self):
        """
        A backslash before an ordinary character in a quoted string is BAD:
        it is not an escape, so "secr\\et" is no way to write "secret".
        """
        self.assertEqual(self.send(b'a LOGIN "alice@lab.test" "secr\\et"\r\n'),
                         b'a BAD LOGIN: Invalid backslash in quoted string'
                         b' (only \\" and \\\\ are escapes)\r\n')
        self.assertEqual(self.send(b'b LOGIN "alic\\e@lab.test" secret\r\n')[:6], b"b BAD ")
        self.assertEqual(self.server.state, "not authenticated")
        self.assertEqual(self.send(b'c LOGIN "alice@lab.test" "secret"\r\n')[:22],
                         b"c OK [CAPABILITY IMAP4")

    def test_loginFails(self):
        """A wrong password: NO [AUTHENTICATIONFAILED]."""
        self.assertEqual(self.send(b"a LOGIN alice@lab.test wrong\r\n"),
                         b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n")

    def test_failureDelayAndDisconnect(self):
        """
        After the first failure each attempt waits (2, 4, 8 s); the 4th failure
        waits too, is answered NO, then BYE ends the session.
        """
        self.send(b"a LOGIN alice@lab.test x\r\n")
        self.assertEqual(self.send(b"b LOGIN alice@lab.test x\r\n"), b"")
        self.assertEqual(self.send(b"c NOOP\r\n"), b"")  # held until the reply
        self.transport.clear()
        self.clock.advance(2)
        self.assertEqual(self.transport.value(),
                         b"b NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
                         b"c OK NOOP completed\r\n")
        self.send(b"d LOGIN alice@lab.test x\r\n")
        self.clock.advance(4)
        self.assertEqual(self.send(b"e LOGIN alice@lab.test x\r\n"), b"")
        self.clock.advance(7.9)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.1)
        self.assertEqual(self.transport.value(),
                         b"e NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
                         b"* BYE Too many authentication failures\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_inputPausedWhileHeld(self):
        """While a reply is delayed, a flood of pipelined commands pauses reading, then all are answered."""
        self.send(b"a LOGIN alice@lab.test x\r\n")
        self.send(b"b LOGIN alice@lab.test x\r\n")
        self.send(b"c NOOP\r\n" * 10000)
        self.assertEqual(self.transport.producerState, "paused")
        self.transport.clear()
        self.clock.advance(2)
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.transport.value(),
                         b"b NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
                         + b"c OK NOOP completed\r\n" * 10000)

    def test_privacyRequired(self):
        """Plaintext LOGIN and AUTHENTICATE PLAIN are refused before TLS in production."""
        session = self.connect(allowPlaintextAuth=False)
        self.assertEqual(
            self.send(b"a LOGIN alice@lab.test secret\r\n", session),
            b"a NO [PRIVACYREQUIRED] Plaintext authentication is disallowed without TLS "
            b"(use STARTTLS)\r\n")
        self.assertIn(b"b NO [PRIVACYREQUIRED]", self.send(b"b AUTHENTICATE PLAIN\r\n", session))

    def test_plainInitialResponse(self):
        """AUTHENTICATE PLAIN with SASL-IR."""
        ir = base64.b64encode(b"\0alice@lab.test\0secret")
        self.assertIn(b"a OK [CAPABILITY", self.send(b"a AUTHENTICATE PLAIN " + ir + b"\r\n"))

    def test_plainContinuation(self):
        """AUTHENTICATE PLAIN without an initial response: an empty challenge."""
        self.assertEqual(self.send(b"a AUTHENTICATE PLAIN\r\n"), b"+ \r\n")
        out = self.send(base64.b64encode(b"alice@lab.test\0alice@lab.test\0secret") + b"\r\n")
        self.assertIn(b"a OK [CAPABILITY", out)

    def test_plainWrongAuthzid(self):
        """Authorizing as somebody else fails."""
        ir = base64.b64encode(b"bob@lab.test\0alice@lab.test\0secret")
        self.assertEqual(self.send(b"a AUTHENTICATE PLAIN " + ir + b"\r\n"),
                         b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n")

    def test_cancel(self):
        """'*' cancels the exchange."""
        self.send(b"a AUTHENTICATE PLAIN\r\n")
        self.assertEqual(self.send(b"*\r\n"), b"a BAD Authentication cancelled\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")

    def test_badBase64(self):
        """Malformed base64 is BAD, not a crash."""
        self.send(b"a AUTHENTICATE PLAIN\r\n")
        self.assertEqual(self.send(b"!!!\r\n"), b"a BAD Invalid base64 in SASL response\r\n")
        ir = base64.b64encode(b"no-nuls")
        self.assertEqual(self.send(b"b AUTHENTICATE PLAIN " + ir + b"\r\n"),
                         b"b BAD Malformed PLAIN response\r\n")

    def test_login_mechanism(self):
        """AUTHENTICATE LOGIN asks for the user, then the password."""
        self.assertEqual(self.send(b"a AUTHENTICATE LOGIN\r\n"),
                         b"+ " + base64.b64encode(b"Username:") + b"\r\n")
        self.assertEqual(self.send(base64.b64encode(b"alice@lab.test") + b"\r\n"),
                         b"+ " + base64.b64encode(b"Password:") + b"\r\n")
        self.assertIn(b"a OK [CAPABILITY", self.send(base64.b64encode(b"secret") + b"\r\n"))

    def test_cramMD5(self):
        """CRAM-MD5 with the RFC 2195 digest of the challenge."""
        session = self.connect(cramAvailable=lambda: True)
        out = self.send(b"a AUTHENTICATE CRAM-MD5\r\n", session)
        challenge = base64.b64decode(out[2:].strip())
        self.assertTrue(challenge.startswith(b"<") and challenge.endswith(b"@mail.lab.test>"))
        digest = hmac.new(b"secret", challenge, hashlib.md5).hexdigest().encode()
        out = self.send(base64.b64encode(b"alice@lab.test " + digest) + b"\r\n", session)
        self.assertIn(b"a OK [CAPABILITY", out)

    def cramLogin(self, command):
        """Send C{command}, answer its CRAM-MD5 challenge as alice; the reply."""
        session = self.connect(cramAvailable=lambda: True)
        out = self.send(command, session)
        self.assertTrue(out.startswith(b"+ ") and out.endswith(b"\r\n"), out)
        challenge = base64.b64decode(out[2:].strip())
        digest = hmac.new(b"secret", challenge, hashlib.md5).hexdigest().encode()
        return self.send(base64.b64encode(b"alice@lab.test " + digest) + b"\r\n", session)

    def test_cramMD5TrailingSpace(self):
        """mutt's "AUTHENTICATE CRAM-MD5 " (SASL-IR, nothing to send) gets the challenge, as in Dovecot."""
        self.assertIn(b"a OK [CAPABILITY", self.cramLogin(b"a AUTHENTICATE CRAM-MD5 \r\n"))

    def test_cramMD5EmptyInitialResponse(self):
        """An empty initial response ("=") to CRAM-MD5 gets the challenge, as in Dovecot."""
        self.assertIn(b"a OK [CAPABILITY", self.cramLogin(b"a AUTHENTICATE CRAM-MD5 =\r\n"))

    def test_plainTrailingSpace(self):
        """A trailing space after the mechanism means no initial response (Dovecot: "+ ")."""
        self.assertEqual(self.send(b"a AUTHENTICATE PLAIN \r\n"), b"+ \r\n")
        ir = base64.b64encode(b"\0alice@lab.test\0secret")
        self.assertIn(b"a OK [CAPABILITY", self.send(ir + b"\r\n"))

    def test_cramMD5InitialResponse(self):
        """A non-empty initial response to CRAM-MD5 (a server-first mechanism) is BAD."""
        session = self.connect(cramAvailable=lambda: True)
        self.assertEqual(self.send(b"a AUTHENTICATE CRAM-MD5 dGVzdA==\r\n", session),
                         b"a BAD CRAM-MD5 takes no initial response\r\n")

    def test_unknownMechanism(self):
        """An unsupported mechanism is NO."""
        self.assertEqual(self.send(b"a AUTHENTICATE GSSAPI\r\n"),
                         b"a NO [CANNOT] Unsupported authentication mechanism\r\n")

    def test_saslIRDisabled(self):
        """With SASL-IR off an initial response is a syntax error."""
        session = self.connect(disabled=frozenset({"SASL-IR"}))
        self.assertEqual(self.send(b"a AUTHENTICATE PLAIN AAAA\r\n", session),
                         b"a BAD Initial response not allowed (SASL-IR is off)\r\n")


class LimitTests(IMAPTestMixin, unittest.TestCase):
    """
    Line and literal limits: answered, never buffered without bound.
    """

    def test_lineTooLong(self):
        """An over-long line: BAD with its tag, the session goes on."""
        out = self.send(b"a1 NOOP " + b"x" * 2000 + b"\r\nb NOOP\r\n")
        self.assertEqual(out, b"a1 BAD Line too long (limit 1024 octets)\r\nb OK NOOP completed\r\n")

    def test_lineTooLongInPieces(self):
        """An over-long line arriving in pieces is answered once and dropped."""
        out = self.send(b"a1 NOOP " + b"x" * 1500)
        self.assertEqual(out, b"a1 BAD Line too long (limit 1024 octets)\r\n")
        self.assertEqual(self.send(b"y" * 5000), b"")
        self.assertEqual(self.server.pendingInput(), 0)
        self.assertEqual(self.send(b"yyy\r\nb NOOP\r\n"), b"b OK NOOP completed\r\n")

    def test_longLegalCommand(self):
        """A long command within the limit works (Twisted drops such lines at 16 KB)."""
        self.select()
        self.deliver()
        keys = b" ".join([b"OR SEEN UNSEEN"] * 60)
        self.assertLess(len(keys), 1000)
        out = self.send(b"a SEARCH " + keys + b"\r\n")
        self.assertTrue(out.endswith(b"a OK SEARCH completed\r\n"), out)

    def test_longCommandWithBigLimit(self):
        """With line_length 64 KB a 20 KB SEARCH works (Twisted disconnects over 16 KB)."""
        session = self.connect(maxLineLength=65536)
        self.select(session)
        keys = b" ".join([b"OR SEEN UNSEEN"] * 1400)
        self.assertGreater(len(keys), 20000)
        out = self.send(b"a SEARCH " + keys + b"\r\n", session)
        self.assertEqual(out, b"* SEARCH\r\na OK SEARCH completed\r\n")

    def test_appendTooBigSynchronizing(self):
        """An APPEND literal over the limit: NO [TOOBIG] instead of '+'."""
        self.login()
        out = self.send(b"a APPEND INBOX {5000}\r\n")
        self.assertEqual(out, b"a NO [TOOBIG] Message too large (limit 4096 octets)\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")

    def test_appendTooBigNonSynchronizing(self):
        """A too-big LITERAL+ message is read and dropped, never run as commands."""
        self.login()
        body = (b"c DELETE Important\r\n" * 300)[:5000]
        out = self.send(b"a APPEND INBOX {5000+}\r\n" + body[:3000])
        self.assertEqual(out, b"a NO [TOOBIG] Message too large (limit 4096 octets)\r\n")
        self.assertEqual(self.send(body[3000:] + b"\r\nb NOOP\r\n"), b"b OK NOOP completed\r\n")
        self.assertEqual(self.openMailbox("INBOX").messages(), [])

    def test_literalTooBigForCommand(self):
        """A literal outside APPEND is bounded by the command size."""
        self.login()
        self.assertEqual(self.send(b"a CREATE {70000}\r\n"), b"a BAD Literal too large\r\n")

    def test_appendSpooled(self):
        """A large APPEND is spooled and stored intact."""
        session = self.connect(maxLiteralSize=10 * 1024 * 1024)
        self.login(session)
        body = b"Subject: big\r\n\r\n" + b"0123456789abcdef\r\n" * 200000
        self.assertEqual(self.send(b"a APPEND INBOX {%d}\r\n" % len(body), session),
                         b"+ Ready for literal data\r\n")
        for i in range(0, len(body), 65536):
            self.send(body[i:i + 65536], session)
        self.assertTrue(self.send(b"\r\n", session).startswith(b"a OK [APPENDUID "))
        [info] = self.openMailbox("INBOX").messages()
        with self.openMailbox("INBOX").openMessage(info.uid) as f:
            self.assertEqual(f.read(), body)


class MailboxCommandTests(IMAPTestMixin, unittest.TestCase):
    """
    SELECT, EXAMINE, LIST, LSUB, STATUS, CREATE, DELETE, RENAME, SUBSCRIBE.
    """

    def test_select(self):
        """
        SELECT: every RFC 3501 response, every response code followed by text.
        Both messages are \\Recent: no session has seen them, whatever their flags
        (as Dovecot).
        """
        self.deliver(flags={"\\Seen"})
        self.deliver()
        mailbox = self.openMailbox("INBOX")
        out = self.select()
        self.assertEqual(
            out,
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
            b"Flags permitted\r\n"
            b"* 2 EXISTS\r\n* 2 RECENT\r\n"
            b"* OK [UNSEEN 2] Message 2 is the first unseen\r\n"
            b"* OK [UIDVALIDITY %d] UIDs valid\r\n"
            b"* OK [UIDNEXT 3] Predicted next UID\r\n"
            b"* OK [MAILBOXID (F%d)] Ok\r\n"
            b"S1 OK [READ-WRITE] SELECT completed\r\n"
            % (mailbox.uidValidity, mailbox.uidValidity))

    def test_examine(self):
        """EXAMINE is read-only (Twisted answers READ-WRITE)."""
        self.login()
        out = self.send(b"a EXAMINE INBOX\r\n")
        self.assertIn(b"* OK [PERMANENTFLAGS ()] No permanent flags in read-only mode\r\n", out)
        self.assertTrue(out.endswith(b"a OK [READ-ONLY] EXAMINE completed\r\n"))

    def test_selectKeywords(self):
        """Keywords in use are listed in FLAGS and PERMANENTFLAGS."""
        self.deliver(flags={"$Junk"})
        out = self.select()
        self.assertIn(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)\r\n", out)

    def test_selectMissing(self):
        """SELECT of a missing mailbox: the old one closed (OK [CLOSED], as Dovecot), NO [NONEXISTENT], nothing selected."""
        self.select()
        self.assertEqual(self.send(b"a SELECT nothere\r\n"),
                         b"* OK [CLOSED] Previous mailbox closed\r\n"
                         b"a NO [NONEXISTENT] no mailbox named nothere\r\n")
        self.assertEqual(self.server.state, "authenticated")

    def test_recentToOneSession(self):
        """\\Recent goes to the first session that selects."""
        self.deliver()
        other = self.connect()
        self.assertIn(b"* 1 RECENT", self.select())
        self.assertIn(b"* 0 RECENT", self.select(other))

    def test_inboxCaseInsensitive(self):
        """inbox is INBOX."""
        self.login()
        self.assertIn(b"a OK [READ-WRITE]", self.send(b"a SELECT inbox\r\n"))

    def test_listRoot(self):
        """LIST "" "" gives the delimiter (Twisted answers nothing)."""
        self.login()
        self.assertEqual(self.send(b'a LIST "" ""\r\n'),
                         b'* LIST (\\Noselect) "/" ""\r\na OK LIST completed\r\n')

    def test_list(self):
        """Children, special use, names as created (not upper-cased)."""
        self.login()
        for name in (b"Sent (USE (\\Sent))", b"Lists/Python", b"my-Box_1"):
            self.assertRegex(self.send(b"c CREATE " + name + b"\r\n"),
                             rb"^c OK \[MAILBOXID \(F\d+\)\] CREATE completed\r\n$")
        self.assertEqual(
            self.send(b'a LIST "" *\r\n'),
            b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
            b'* LIST (\\HasChildren) "/" "Lists"\r\n'
            b'* LIST (\\HasNoChildren) "/" "Lists/Python"\r\n'
            b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
            b'* LIST (\\HasNoChildren) "/" "my-Box_1"\r\n'
            b"a OK LIST completed\r\n")
        self.assertEqual(self.send(b'b LIST "" %\r\n').count(b"* LIST"), 4)
        self.assertEqual(self.send(b'b LIST Lists/ %\r\n'),
                         b'* LIST (\\HasNoChildren) "/" "Lists/Python"\r\nb OK LIST completed\r\n')

    def test_listNoChildrenExtension(self):
        """With CHILDREN and SPECIAL-USE off, LIST shows neither."""
        session = self.connect(disabled=frozenset({"CHILDREN", "SPECIAL-USE"}))
        self.login(session)
        self.send(b"c CREATE Sent\r\n", session)
        self.assertEqual(self.send(b'a LIST "" Sent\r\n', session),
                         b'* LIST () "/" "Sent"\r\na OK LIST completed\r\n')

    def test_modifiedUTF7(self):
        """Names travel in modified UTF-7; the store holds Unicode."""
        self.login()
        self.assertRegex(self.send(b"a CREATE &ZeVnLIqe-\r\n"),
                         rb"^a OK \[MAILBOXID \(F\d+\)\] CREATE completed\r\n$")
        self.assertIn("\u65e5\u672c\u8a9e", self.account.listMailboxes())
        self.assertIn(b'"&ZeVnLIqe-"', self.send(b'b LIST "" *\r\n'))
        self.assertEqual(self.send(b"c CREATE a&b\r\n"),
                         b"c NO [CANNOT] Mailbox name is not valid modified UTF-7\r\n")

    def test_status(self):
        """STATUS quotes the mailbox name (Twisted does not)."""
        self.login()
        self.send(b'a CREATE "My Folder"\r\n')
        self.deliver(mailbox="My Folder")
        mailbox = self.openMailbox("My Folder")
        self.assertEqual(
            self.send(b'b STATUS "My Folder" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT)\r\n'),
            b'* STATUS "My Folder" (MESSAGES 1 UNSEEN 1 UIDNEXT 2 UIDVALIDITY %d RECENT 1)\r\n'
            b"b OK STATUS completed\r\n" % (mailbox.uidValidity,))
        self.assertEqual(self.send(b"c STATUS nothere (MESSAGES)\r\n"),
                         b"c NO [NONEXISTENT] no mailbox named nothere\r\n")

    def test_statusRecentUnselected(self):
        """STATUS RECENT: unclaimed messages elsewhere, this session's \\Recent here."""
        self.login()
        self.deliver()
        self.deliver()
        self.assertIn(b"(RECENT 2)", self.send(b"a STATUS INBOX (RECENT)\r\n"))
        other = self.connect()
        self.select(other)  # claims both as \Recent
        self.assertIn(b"(RECENT 0)", self.send(b"b STATUS INBOX (RECENT)\r\n"))
        self.assertIn(b"(RECENT 2)", self.send(b"c STATUS INBOX (RECENT)\r\n", other))
        self.deliver()
        self.assertIn(b"(RECENT 1)", self.send(b"d STATUS INBOX (RECENT)\r\n"))

    def test_createDeleteRename(self):
        """Response codes for the usual failures."""
        self.login()
        self.assertEqual(self.send(b"a CREATE INBOX\r\n"), b"a NO [ALREADYEXISTS] INBOX always exists\r\n")
        self.send(b"b CREATE box\r\n")
        self.assertEqual(self.send(b"c CREATE box\r\n"),
                         b"c NO [ALREADYEXISTS] mailbox box already exists\r\n")
        self.assertEqual(self.send(b"d RENAME box other\r\n"), b"d OK RENAME completed\r\n")
        self.assertEqual(self.send(b"e DELETE box\r\n"), b"e NO [NONEXISTENT] no mailbox named box\r\n")
        self.assertEqual(self.send(b"f DELETE other\r\n"), b"f OK DELETE completed\r\n")
        self.assertEqual(self.send(b"g DELETE INBOX\r\n"), b"g NO [CANNOT] INBOX cannot be deleted\r\n")

    def test_createQuotedBackslash(self):
        """CREATE "a\\b" is BAD and creates nothing; \\" is still an escape."""
        self.login()
        self.assertEqual(self.send(b'a CREATE "a\\b"\r\n')[:12], b"a BAD CREATE")
        self.assertRegex(self.send(b'b CREATE "x\\"y"\r\n'),
                         rb"^b OK \[MAILBOXID \(F\d+\)\] CREATE completed\r\n$")
        self.assertEqual(self.account.listMailboxes(), ["INBOX", 'x"y'])

    def test_renameInbox(self):
        """RENAME INBOX moves the messages and leaves INBOX empty."""
        self.deliver()
        self.login()
        self.send(b"a RENAME INBOX Old\r\n")
        self.assertEqual(len(self.openMailbox("Old").messages()), 1)
        self.assertEqual(self.openMailbox("INBOX").messages(), [])

    def test_subscriptions(self):
        """SUBSCRIBE, LSUB, UNSUBSCRIBE."""
        self.login()
        self.send(b"a CREATE Lists/Python\r\n")
        self.assertEqual(self.send(b"b SUBSCRIBE Lists/Python\r\n"), b"b OK SUBSCRIBE completed\r\n")
        self.assertEqual(self.send(b'c LSUB "" *\r\n'),
                         b'* LSUB () "/" "Lists/Python"\r\nc OK LSUB completed\r\n')
        self.assertEqual(self.send(b'd LSUB "" %\r\n'),
                         b'* LSUB (\\Noselect) "/" "Lists"\r\nd OK LSUB completed\r\n')
        self.send(b"e UNSUBSCRIBE Lists/Python\r\n")
        self.assertEqual(self.send(b'f LSUB "" *\r\n'), b"f OK LSUB completed\r\n")

    def test_namespace(self):
        """One personal namespace, once (Twisted repeats it)."""
        self.login()
        self.assertEqual(self.send(b"a NAMESPACE\r\n"),
                         b'* NAMESPACE (("" "/")) NIL NIL\r\na OK NAMESPACE completed\r\n')

    def test_enable(self):
        """ENABLE answers with what it enabled; unknown names are left out."""
        self.login()
        self.assertEqual(self.send(b"a ENABLE CONDSTORE FROBNICATE\r\n"),
                         b"* ENABLED CONDSTORE\r\na OK ENABLE completed\r\n")


class AppendTests(IMAPTestMixin, unittest.TestCase):
    """
    APPEND.
    """

    def append(self, prefix, message=MESSAGE):
        out = self.send(prefix + b" {%d}\r\n" % (len(message),))
        self.assertEqual(out, b"+ Ready for literal data\r\n")
        return self.send(message + b"\r\n")

    def test_noFlags(self):
        """APPEND without flags works (stock Twisted crashes) and reports APPENDUID."""
        self.login()
        mailbox = self.openMailbox("INBOX")
        self.assertEqual(self.append(b"a APPEND INBOX"),
                         b"a OK [APPENDUID %d 1] APPEND completed\r\n" % (mailbox.uidValidity,))

    def test_flagsAndDate(self):
        """Flags and the internal date are stored."""
        self.login()
        self.append(b'a APPEND INBOX (\\Seen $Work) "17-Jul-1996 02:44:25 -0700"')
        [info] = self.openMailbox("INBOX").messages()
        self.assertEqual(info.flags, {"\\Seen", "$Work"})
        self.assertEqual(info.internalDate, 837596665)

    def test_missingMailbox(self):
        """APPEND to a missing mailbox: NO [TRYCREATE]."""
        self.login()
        self.assertEqual(self.append(b"a APPEND nothere"),
                         b"a NO [TRYCREATE] no mailbox named nothere\r\n")

    def test_empty(self):
        """An empty message is refused."""
        self.login()
        self.assertEqual(self.send(b"a APPEND INBOX {0}\r\n\r\n"),
                         b"+ Ready for literal data\r\na NO Cannot append an empty message\r\n")

    def test_badFlag(self):
        """An unknown system flag is BAD."""
        self.login()
        self.assertEqual(self.append(b"a APPEND INBOX (\\Bogus)"),
                         b"a BAD Invalid system flag \\Bogus\r\n")

    def test_eightBitFlag(self):
        """
        A flag with 8-bit octets is a syntax error (BAD, not NO), and the
        reply carries no 8-bit octets; nothing is appended.
        """
        self.login()
        out = self.append(b"a APPEND INBOX (\xff)")
        self.assertEqual(out, b"a BAD APPEND: Invalid flag: 8-bit octets in an atom\r\n")
        out = self.append(b"b APPEND INBOX ($ok caf\xc3\xa9)")
        self.assertEqual(out, b"b BAD APPEND: Invalid flag: 8-bit octets in an atom\r\n")
        self.assertEqual(self.openMailbox("INBOX").messages(), [])

    def test_zoneOutOfRange(self):
        """A date-time zone of +9999 (or minutes over 59) is BAD; +1400 and -1200 are fine."""
        self.login()
        self.assertEqual(self.append(b'a APPEND INBOX "1-Jan-2020 00:00:00 +9999"'),
                         b"a BAD APPEND: Invalid time zone +9999 in date-time\r\n")
        self.assertEqual(self.append(b'b APPEND INBOX "1-Jan-2020 00:00:00 +0160"'),
                         b"b BAD APPEND: Invalid time zone +0160 in date-time\r\n")
        self.assertEqual(self.openMailbox("INBOX").messages(), [])
        self.assertIn(b"c OK [APPENDUID",
                      self.append(b'c APPEND INBOX "1-Jan-2020 14:00:00 +1400"'))
        self.assertIn(b"d OK [APPENDUID",
                      self.append(b'd APPEND INBOX "31-Dec-2019 12:00:00 -1200"'))
        messages = self.openMailbox("INBOX").messages()
        self.assertEqual([info.internalDate for info in messages], [1577836800, 1577836800])

    def test_recentRefused(self):
        """\\Recent cannot be set by a client (RFC 3501 2.3.2): BAD, as Dovecot answers."""
        self.login()
        self.assertEqual(self.append(b"a APPEND INBOX (\\Seen \\Recent)"),
                         b"a BAD Invalid system flag \\Recent (only the server sets it)\r\n")
        self.assertEqual(self.append(b"b APPEND INBOX (\\recent)"),
                         b"b BAD Invalid system flag \\Recent (only the server sets it)\r\n")
        self.assertEqual(self.openMailbox("INBOX").messages(), [])

    def test_selectedSeesExists(self):
        """Appending to the selected mailbox reports EXISTS before the tagged OK."""
        self.select()
        out = self.append(b"a APPEND INBOX")
        self.assertTrue(out.startswith(b"* 1 EXISTS\r\n* 1 RECENT\r\na OK [APPENDUID"), out)


class FetchTests(IMAPTestMixin, unittest.TestCase):
    """
    FETCH.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.uid = self.deliver()
        self.select()

    def test_flagsUid(self):
        """FLAGS (with \\Recent) and UID."""
        self.assertEqual(self.send(b"a FETCH 1 (FLAGS UID)\r\n"),
                         b"* 1 FETCH (FLAGS (\\Recent) UID 1)\r\na OK FETCH completed\r\n")

    def test_bodySetsSeen(self):
        """A non-PEEK BODY[] sets \\Seen and reports FLAGS (Twisted does neither)."""
        out = self.send(b"a FETCH 1 BODY[TEXT]\r\n")
        self.assertEqual(out, b"* 1 FETCH (BODY[TEXT] {23}\r\nHi Bob,\r\nhow are you?\r\n"
                              b" FLAGS (\\Seen \\Recent))\r\na OK FETCH completed\r\n")
        info = self.openMailbox("INBOX").messageInfo(self.uid)
        self.assertIn("\\Seen", info.flags)

    def test_rfc822SetsSeen(self):
        """RFC822 sets \\Seen too; RFC822.HEADER does not."""
        self.send(b"a FETCH 1 RFC822.HEADER\r\n")
        self.assertNotIn("\\Seen", self.openMailbox("INBOX").messageInfo(self.uid).flags)
        out = self.send(b"b FETCH 1 RFC822\r\n")
        self.assertIn(b"RFC822 {%d}\r\n%s FLAGS (\\Seen \\Recent))" % (len(MESSAGE), MESSAGE), out)

    def test_peek(self):
        """BODY.PEEK leaves the flags alone and answers as BODY."""
        out = self.send(b"a FETCH 1 BODY.PEEK[]\r\n")
        self.assertEqual(out, b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\na OK FETCH completed\r\n"
                         % (len(MESSAGE), MESSAGE))
        self.assertEqual(self.openMailbox("INBOX").messageInfo(self.uid).flags, set())

    def test_examineNoSeen(self):
        """In a read-only mailbox a BODY[] fetch changes nothing."""
        self.send(b"a EXAMINE INBOX\r\n")
        out = self.send(b"b FETCH 1 BODY[]\r\n")
        self.assertNotIn(b"FLAGS", out)
        self.assertEqual(self.openMailbox("INBOX").messageInfo(self.uid).flags, set())

    def test_partial(self):
        """BODY[]<o.n> gives those octets (Twisted ticket 5613), labelled with the origin."""
        self.assertEqual(self.send(b"a FETCH 1 BODY.PEEK[]<6.5>\r\n"),
                         b"* 1 FETCH (BODY[]<6> {5}\r\nAlice)\r\na OK FETCH completed\r\n")

    def test_partialText(self):
        """BODY[TEXT]<0.3> is three octets (Twisted returns the whole body)."""
        self.assertEqual(self.send(b"a FETCH 1 BODY.PEEK[TEXT]<0.3>\r\n"),
                         b"* 1 FETCH (BODY[TEXT]<0> {3}\r\nHi )\r\na OK FETCH completed\r\n")

    def test_partialBeyondEnd(self):
        """An origin past the end gives an empty string."""
        self.assertEqual(self.send(b"a FETCH 1 BODY.PEEK[]<99999.10>\r\n"),
                         b"* 1 FETCH (BODY[]<99999> {0}\r\n)\r\na OK FETCH completed\r\n")

    def test_headerFields(self):
        """HEADER.FIELDS: no stray space, names upper-cased as Dovecot answers."""
        self.assertEqual(self.send(b"a FETCH 1 BODY.PEEK[HEADER.FIELDS (subject From)]\r\n"),
                         b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] {48}\r\n"
                         b"From: Alice <alice@lab.test>\r\nSubject: Hello\r\n\r\n)\r\n"
                         b"a OK FETCH completed\r\n")

    def test_macros(self):
        """FAST expands to FLAGS INTERNALDATE RFC822.SIZE."""
        out = self.send(b"a FETCH 1 FAST\r\n")
        self.assertRegex(out, br'^\* 1 FETCH \(FLAGS \(\\Recent\) INTERNALDATE "[^"]+" '
                              br'RFC822.SIZE %d\)\r\n' % (len(MESSAGE),))

    def test_envelopeBodystructure(self):
        """ENVELOPE and BODYSTRUCTURE of a simple message."""
        out = self.send(b"a FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)\r\n")
        self.assertIn(b'ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800" "Hello" '
                      b'(("Alice" NIL "alice" "lab.test"))', out)
        self.assertIn(b'BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 23 2'
                      b' NIL NIL NIL NIL)', out)
        self.assertIn(b'BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 23 2))', out)

    def test_malformedMIME(self):
        """A bad Content-Type parameter and a missing part never break the session."""
        self.deliver(MULTIPART)
        self.send(b"n NOOP\r\n")
        out = self.send(b"a FETCH 2 (BODYSTRUCTURE BODY.PEEK[2] BODY.PEEK[7] BODY.PEEK[1.3.MIME])\r\n")
        self.assertIn(b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 0 NIL NIL NIL NIL)', out)
        self.assertIn(b"BODY[2] {6}\r\nsecond BODY[7] {0}\r\n BODY[1.3.MIME] {0}\r\n)", out)
        self.assertTrue(out.endswith(b"a OK FETCH completed\r\n"))

    def test_uidFetch(self):
        """UID FETCH includes UID first; unknown UIDs are ignored."""
        self.assertEqual(self.send(b"a UID FETCH 1:* FLAGS\r\n"),
                         b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\na OK FETCH completed\r\n")
        self.assertEqual(self.send(b"b UID FETCH 5 FLAGS\r\n"), b"b OK FETCH completed\r\n")

    def test_sequenceOutOfRange(self):
        """A sequence number past the last message is BAD."""
        self.assertEqual(self.send(b"a FETCH 2 FLAGS\r\n"),
                         b"a BAD Invalid message sequence number\r\n")

    def test_largeMessageStreamed(self):
        """A big literal goes out in chunks as the transport drains."""
        body = b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n"
        body = body + (b"y" * 78 + b"\r\n") * 40000
        self.deliver(body)
        self.send(b"n NOOP\r\n")
        producers = []
        self.transport.registerProducer = lambda p, streaming: producers.append(p)
        self.transport.unregisterProducer = lambda: producers.append(None)
        self.transport.clear()
        producers.clear()
        self.server.dataReceived(b"a FETCH 2 BODY.PEEK[]\r\n")
        [streamer] = producers
        written = len(self.transport.value())
        self.assertLess(written, len(body))
        streamer.pauseProducing()
        self.clock.advance(0)
        self.assertEqual(len(self.transport.value()), written)
        self.server.dataReceived(b"b NOOP\r\n")  # waits for the FETCH
        self.assertEqual(len(self.transport.value()), written)
        streamer.resumeProducing()
        for _ in range(10):
            self.clock.advance(0)
        out = self.transport.value()
        self.assertTrue(out.endswith(b")\r\na OK FETCH completed\r\nb OK NOOP completed\r\n"))
        self.assertTrue(out.startswith(b"* 2 FETCH (BODY[] {%d}\r\n" % (len(body),) + body + b")"))
        self.assertEqual(producers[-1], None)

    def test_fetchAfterOtherExpunge(self):
        """
        A message expunged by another session, not yet reported: the rest is
        answered and the tagged reply is OK [EXPUNGEISSUED] (RFC 2180 4.1.2, byte
        for byte what Dovecot 2.3 answers): clients read NO as a failed FETCH.
        """
        self.successResultOf(self.openMailbox("INBOX").expunge([self.uid]))
        out = self.send(b"a FETCH 1 FLAGS\r\n")
        self.assertEqual(out, b"a OK [EXPUNGEISSUED] Some messages were already expunged\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"),
                         b"* 1 EXPUNGE\r\n* 0 RECENT\r\nb OK NOOP completed\r\n")


class StoreTests(IMAPTestMixin, unittest.TestCase):
    """
    STORE.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver()
        self.deliver()
        self.select()
        self.mailbox = self.openMailbox("INBOX")

    def test_addRemoveReplace(self):
        """
        +FLAGS, -FLAGS and FLAGS answer with the new flags; a keyword new to the
        mailbox is first announced in a new FLAGS list (RFC 3501 7.2.6, as Dovecot).
        """
        self.assertEqual(self.send(b"a STORE 1:2 +FLAGS (\\Flagged $Work)\r\n"),
                         b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"
                         b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
                         b"$Work \\*)] Flags permitted\r\n"
                         b"* 1 FETCH (FLAGS (\\Flagged \\Recent $Work))\r\n"
                         b"* 2 FETCH (FLAGS (\\Flagged \\Recent $Work))\r\na OK STORE completed\r\n")
        self.assertEqual(self.send(b"b STORE 1 -FLAGS $Work\r\n"),
                         b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\nb OK STORE completed\r\n")
        self.assertEqual(self.send(b"c STORE 2 FLAGS (\\Seen)\r\n"),
                         b"* 2 FETCH (FLAGS (\\Seen \\Recent))\r\nc OK STORE completed\r\n")
        self.assertEqual([i.flags for i in self.mailbox.messages()],
                         [{"\\Flagged"}, {"\\Seen"}])

    def test_silent(self):
        """.SILENT sends no FETCH, and no echo at the next NOOP either."""
        self.assertEqual(self.send(b"a STORE 1 +FLAGS.SILENT (\\Seen)\r\n"),
                         b"a OK STORE completed\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")

    def test_uidStore(self):
        """UID STORE includes the UID."""
        self.assertEqual(self.send(b"a UID STORE 2 +FLAGS (\\Answered)\r\n"),
                         b"* 2 FETCH (FLAGS (\\Answered \\Recent) UID 2)\r\na OK STORE completed\r\n")

    def test_recentNotStorable(self):
        """\\Recent cannot be stored; an unknown system flag is BAD."""
        self.send(b"a STORE 1 +FLAGS (\\Recent)\r\n")
        self.assertEqual(self.mailbox.messageInfo(1).flags, set())
        self.assertEqual(self.send(b"b STORE 1 +FLAGS (\\Bogus)\r\n"),
                         b"b BAD Invalid system flag \\Bogus\r\n")

    def test_recentRefused(self):
        """
        STORE with \\Recent is BAD whatever the mode (the client cannot alter
        it, RFC 3501 2.3.2), and changes nothing.
        """
        self.successResultOf(self.mailbox.setFlags(1, {"\\Seen"}))
        self.send(b"n NOOP\r\n")  # takes the FETCH for that change
        for i, command in enumerate((b"+FLAGS (\\Recent)", b"-FLAGS (\\Recent \\Seen)",
                                     b"FLAGS (\\Recent)", b"+FLAGS.SILENT \\RECENT")):
            tag = b"s%d" % (i,)
            self.assertEqual(self.send(tag + b" STORE 1 " + command + b"\r\n"),
                             tag + b" BAD Invalid system flag \\Recent (only the server sets it)"
                             b"\r\n")
        self.assertEqual(self.mailbox.messageInfo(1).flags, {"\\Seen"})

    def test_eightBitFlag(self):
        """STORE of a flag with 8-bit octets is BAD, and the reply is 7-bit."""
        self.assertEqual(self.send(b"a STORE 1 +FLAGS (caf\xc3\xa9)\r\n"),
                         b"a BAD STORE: Invalid flag: 8-bit octets in an atom\r\n")
        self.assertEqual(self.mailbox.messageInfo(1).flags, set())

    def test_readOnly(self):
        """STORE in an EXAMINEd mailbox is NO."""
        self.send(b"a EXAMINE INBOX\r\n")
        self.assertEqual(self.send(b"b STORE 1 +FLAGS (\\Seen)\r\n"),
                         b"b NO Mailbox is read-only (EXAMINE)\r\n")


class ExpungeCopyTests(IMAPTestMixin, unittest.TestCase):
    """
    EXPUNGE, CLOSE, UNSELECT, COPY, MOVE.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        for _ in range(4):
            self.deliver()
        self.select()
        self.mailbox = self.openMailbox("INBOX")

    def test_expunge(self):
        """Deleted messages go; EXPUNGE responses keep sequence numbers right."""
        self.send(b"a STORE 2:3 +FLAGS.SILENT (\\Deleted)\r\n")
        self.assertEqual(self.send(b"b EXPUNGE\r\n"),
                         b"* 3 EXPUNGE\r\n* 2 EXPUNGE\r\n* 2 RECENT\r\nb OK EXPUNGE completed\r\n")
        self.assertEqual([i.uid for i in self.mailbox.messages()], [1, 4])
        self.assertEqual(self.send(b"c FETCH 2 UID\r\n"),
                         b"* 2 FETCH (UID 4)\r\nc OK FETCH completed\r\n")

    def test_uidExpunge(self):
        """UID EXPUNGE removes only deleted messages in the set."""
        self.send(b"a STORE 1:4 +FLAGS.SILENT (\\Deleted)\r\n")
        self.assertEqual(self.send(b"b UID EXPUNGE 2,4\r\n"),
                         b"* 4 EXPUNGE\r\n* 2 EXPUNGE\r\n* 2 RECENT\r\nb OK EXPUNGE completed\r\n")

    def test_close(self):
        """CLOSE expunges silently; EXAMINE + CLOSE does not expunge."""
        self.send(b"a STORE 1 +FLAGS.SILENT (\\Deleted)\r\n")
        self.send(b"b EXAMINE INBOX\r\n")
        self.assertEqual(self.send(b"c CLOSE\r\n"), b"c OK CLOSE completed\r\n")
        self.assertEqual(len(self.mailbox.messages()), 4)
        self.send(b"d SELECT INBOX\r\n")
        self.assertEqual(self.send(b"e CLOSE\r\n"), b"e OK CLOSE completed\r\n")
        self.assertEqual(len(self.mailbox.messages()), 3)
        self.assertEqual(self.server.state, "authenticated")

    def test_unselect(self):
        """UNSELECT leaves deleted messages in place."""
        self.send(b"a STORE 1 +FLAGS.SILENT (\\Deleted)\r\n")
        self.assertEqual(self.send(b"b UNSELECT\r\n"), b"b OK UNSELECT completed\r\n")
        self.assertEqual(len(self.mailbox.messages()), 4)

    def test_copy(self):
        """COPY answers COPYUID; a missing target is TRYCREATE."""
        self.send(b"a CREATE Archive\r\n")
        archive = self.openMailbox("Archive")
        self.assertEqual(self.send(b"b COPY 2:3 Archive\r\n"),
                         b"b OK [COPYUID %d 2:3 1:2] COPY completed\r\n" % (archive.uidValidity,))
        self.assertEqual(self.send(b"c COPY 1 Nothere\r\n"),
                         b"c NO [TRYCREATE] no mailbox named Nothere\r\n")

    def test_move(self):
        """MOVE: untagged COPYUID, then EXPUNGEs, the \\Recent count left, then the tagged OK."""
        self.send(b"a CREATE Archive\r\n")
        archive = self.openMailbox("Archive")
        self.assertEqual(self.send(b"b UID MOVE 1,4 Archive\r\n"),
                         b"* OK [COPYUID %d 1,4 1:2] Moved\r\n* 4 EXPUNGE\r\n* 1 EXPUNGE\r\n"
                         b"* 2 RECENT\r\nb OK MOVE completed\r\n" % (archive.uidValidity,))
        self.assertEqual([i.uid for i in self.mailbox.messages()], [2, 3])


class SearchTests(IMAPTestMixin, unittest.TestCase):
    """
    SEARCH through the protocol.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver()
        self.deliver(MULTIPART, flags={"\\Seen"})
        self.select()

    def test_search(self):
        """Matches by sequence number; UID SEARCH by UID."""
        self.assertEqual(self.send(b"a SEARCH SEEN\r\n"), b"* SEARCH 2\r\na OK SEARCH completed\r\n")
        self.assertEqual(self.send(b"b UID SEARCH SUBJECT hello\r\n"),
                         b"* SEARCH 1\r\nb OK SEARCH completed\r\n")

    def test_empty(self):
        """No match still sends '* SEARCH' (Twisted sends nothing)."""
        self.assertEqual(self.send(b"a SEARCH FROM nobody\r\n"),
                         b"* SEARCH\r\na OK SEARCH completed\r\n")

    def test_badCharset(self):
        """An unknown charset: NO [BADCHARSET]."""
        self.assertEqual(self.send(b"a SEARCH CHARSET X-NOPE TEXT x\r\n"),
                         b"a NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset\r\n")

    def test_keywordSystemFlag(self):
        """SEARCH KEYWORD \\Seen is BAD: a keyword is an atom (SEEN is the key for \\Seen)."""
        self.assertEqual(self.send(b"a SEARCH KEYWORD \\Seen\r\n"),
                         b"a BAD SEARCH: Expected a keyword (system flags are not keywords)\r\n")
        self.assertEqual(self.send(b"b SEARCH UNKEYWORD $Work\r\n"),
                         b"* SEARCH 1 2\r\nb OK SEARCH completed\r\n")

    def test_unknownKey(self):
        """An unknown search key is named in the BAD (and 8-bit octets are escaped)."""
        self.assertEqual(self.send(b"a SEARCH FOO\r\n"),
                         b"a BAD SEARCH: Unknown search key FOO\r\n")
        self.assertEqual(self.send(b"b UID SEARCH SEEN FO\xffO\r\n"),
                         b"b BAD UID SEARCH: Unknown search key FO\\XFFO\r\n")

    def test_textAndDates(self):
        """Text and date keys work (Twisted: 'must be str, not bytes'); no Date: is 1-Jan-1970, as Dovecot."""
        self.assertEqual(self.send(b"a SEARCH TEXT second SENTSINCE 1-Jan-1990\r\n"),
                         b"* SEARCH\r\na OK SEARCH completed\r\n")
        self.assertEqual(self.send(b"a SEARCH TEXT second SENTON 1-Jan-1970\r\n"),
                         b"* SEARCH 2\r\na OK SEARCH completed\r\n")
        self.assertEqual(self.send(b"b SEARCH BODY second\r\n"),
                         b"* SEARCH 2\r\nb OK SEARCH completed\r\n")
        self.assertEqual(self.send(b"c SEARCH SENTBEFORE 1-Jan-2000\r\n"),
                         b"* SEARCH 1 2\r\nc OK SEARCH completed\r\n")


class SessionTests(IMAPTestMixin, unittest.TestCase):
    """
    Several sessions on one mailbox: updates at command boundaries.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver()
        self.deliver()
        self.other = self.connect()
        self.select()
        self.select(self.other)
        self.mailbox = self.openMailbox("INBOX")

    def test_existsAtNoop(self):
        """Another session's APPEND shows as EXISTS at the next NOOP, no RECENT: the other session has the \\Recent."""
        self.send(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE), self.other)
        self.assertEqual(self.send(b"b NOOP\r\n"),
                         b"* 3 EXISTS\r\nb OK NOOP completed\r\n")

    def test_expungeNotDuringFetch(self):
        """EXPUNGE waits until a command that may send it; numbers stay valid."""
        self.send(b"a STORE 1 +FLAGS.SILENT (\\Deleted)\r\nb EXPUNGE\r\n", self.other)
        out = self.send(b"c FETCH 2 UID\r\n")
        self.assertEqual(out, b"* 2 FETCH (UID 2)\r\nc OK FETCH completed\r\n")
        self.assertEqual(self.send(b"d NOOP\r\n"),
                         b"* 1 EXPUNGE\r\n* 1 RECENT\r\nd OK NOOP completed\r\n")
        self.assertEqual(self.send(b"e FETCH 1 UID\r\n"), b"* 1 FETCH (UID 2)\r\ne OK FETCH completed\r\n")

    def test_flagsAtNoop(self):
        """Another session's STORE shows as FETCH FLAGS."""
        self.send(b"a STORE 2 +FLAGS.SILENT (\\Flagged)\r\n", self.other)
        self.assertEqual(self.send(b"b NOOP\r\n"),
                         b"* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\nb OK NOOP completed\r\n")

    def test_idle(self):
        """IDLE pushes EXISTS and EXPUNGE at once; only DONE ends it."""
        self.assertEqual(self.send(b"i IDLE\r\n"), b"+ idling\r\n")
        self.send(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE), self.other)
        self.transport.clear()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"* 3 EXISTS\r\n")
        self.send(b"b STORE 1 +FLAGS.SILENT (\\Deleted)\r\nc EXPUNGE\r\n", self.other)
        self.transport.clear()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"* 1 EXPUNGE\r\n* 1 RECENT\r\n")
        self.assertEqual(self.send(b"x NOOP\r\n"), b"* BAD Expected DONE to end IDLE\r\n")
        self.assertEqual(self.send(b"DONE\r\n"), b"i OK IDLE terminated\r\n")

    def test_mailboxDeleted(self):
        """Deleting the selected mailbox elsewhere expunges everything here."""
        self.send(b"a CREATE Box\r\n", self.other)
        self.deliver(mailbox="Box")
        self.send(b"b SELECT Box\r\n")
        self.send(b"c DELETE Box\r\n", self.other)
        self.assertEqual(self.send(b"d NOOP\r\n"),
                         b"* 1 EXPUNGE\r\n* 0 RECENT\r\nd OK NOOP completed\r\n")


class PipeliningTests(IMAPTestMixin, unittest.TestCase):
    """
    Many pipelined commands, and large mailboxes.
    """

    def test_manyPipelinedFetches(self):
        """Thousands of pipelined commands that complete at once do not nest."""
        self.deliver()
        self.select()
        out = self.send(b"".join(b"f%d FETCH 1 BODY.PEEK[]\r\n" % i for i in range(3000)))
        self.assertEqual(out.count(b"OK FETCH completed"), 3000)


class LiteralMinusTests(IMAPTestMixin, unittest.TestCase):
    """
    LITERAL+ switched off: LITERAL- (RFC 7888) instead, or no {n+} at all.
    """

    def test_advertisedInstead(self):
        """LITERAL- appears only when LITERAL+ is disabled."""
        self.assertNotIn(b"LITERAL-", self.send(b"a CAPABILITY\r\n"))
        session = self.connect(disabled=frozenset({"LITERAL+"}))
        out = self.send(b"a CAPABILITY\r\n", session)
        self.assertIn(b" LITERAL- ", out)
        self.assertNotIn(b"LITERAL+", out)

    def test_smallNonSyncAccepted(self):
        """Up to 4096 octets a {n+} literal works."""
        session = self.connect(disabled=frozenset({"LITERAL+"}))
        out = self.send(b"a LOGIN alice@lab.test {6+}\r\nsecret\r\n", session)
        self.assertTrue(out.startswith(b"a OK [CAPABILITY"), out)

    def test_bigNonSyncRefused(self):
        """A bigger one is BAD [TOOBIG]; its octets are dropped, not run as commands."""
        session = self.connect(disabled=frozenset({"LITERAL+"}), maxLiteralSize=10000)
        self.login(session)
        body = b"x" * 4095 + b"\r\nb LOGOUT\r\n"
        out = self.send(b"a APPEND INBOX {%d+}\r\n%s\r\nc NOOP\r\n" % (len(body), body), session)
        self.assertEqual(out, b"a BAD [TOOBIG] Non-synchronizing literals are limited to 4096 "
                              b"octets (LITERAL-)\r\nc OK NOOP completed\r\n")
        self.assertEqual(self.openMailbox("INBOX").messages(), [])

    def test_bothOff(self):
        """With LITERAL+ and LITERAL- off, {n+} is BAD; synchronizing literals still work."""
        session = self.connect(disabled=frozenset({"LITERAL+", "LITERAL-"}))
        self.assertEqual(self.send(b"a LOGIN alice@lab.test {6+}\r\nsecret\r\n", session),
                         b"a BAD Non-synchronizing literals are not available here\r\n")
        self.assertEqual(self.send(b"b LOGIN alice@lab.test {6}\r\n", session),
                         b"+ Ready for literal data\r\n")


# Maildir only: messages written into new/ by another program (a Dovecot LDA,
# procmail): no listener is told; the sessions' syncs find them.


class MaildirOutsideDeliveryTests(IMAPTestMixin, unittest.TestCase):
    """
    Several sessions on one Maildir INBOX, and deliveries that only write files.
    """

    maildirOnly = True

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver()
        self.deliver()
        self.other = self.connect()
        self.select()
        self.select(self.other)
        self.mailbox = self.openMailbox("INBOX")

    def test_outsideDelivery(self):
        """A delivery by another program (files only) is found by the next command's sync."""
        self.mailbox.deliver(MESSAGE)
        self.assertEqual(self.send(b"c NOOP\r\n", self.other),
                         b"* 3 EXISTS\r\n* 1 RECENT\r\nc OK NOOP completed\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"),
                         b"* 3 EXISTS\r\nb OK NOOP completed\r\n")

    def test_idlePolls(self):
        """While idle, deliveries by other programs arrive within a poll interval."""
        self.send(b"i IDLE\r\n")
        self.mailbox.deliver(MESSAGE)
        self.transport.clear()
        self.clock.advance(1)
        self.assertIn(b"* 3 EXISTS\r\n", self.transport.value())
        self.send(b"done\r\n")

    def test_recentOnce(self):
        """A new message is \\Recent in exactly one session."""
        self.mailbox.deliver(MESSAGE)
        self.assertEqual(self.send(b"a NOOP\r\n", self.other),
                         b"* 3 EXISTS\r\n* 1 RECENT\r\na OK NOOP completed\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"),
                         b"* 3 EXISTS\r\nb OK NOOP completed\r\n")


class MaildirBigFolderTests(IMAPTestMixin, unittest.TestCase):
    """
    A big Maildir folder filled by another program.
    """

    maildirOnly = True

    def test_selectDoesNotReadMessages(self):
        """SELECT and FETCH FLAGS of a big folder never open a message."""
        mailbox = self.openMailbox("INBOX")
        for _ in range(300):
            mailbox.deliver(MESSAGE)
        mailbox.noteDelivery()

        def refuse(uid):
            raise AssertionError("message %d opened" % (uid,))
        mailbox.openMessage = refuse
        out = self.select()
        self.assertIn(b"* 300 EXISTS\r\n", out)
        out = self.send(b"a FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)\r\n")
        self.assertEqual(out.count(b" FETCH (UID "), 300)
        self.assertTrue(out.endswith(b"a OK FETCH completed\r\n"))


everyStore(globals())
