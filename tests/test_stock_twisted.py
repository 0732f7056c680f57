"""
The stock twisted.mail defects listed in docs/twisted-notes.md, each shown in
one place and one way: a scenario a client could play, asserted to give the
RFC answer on our engine (a normal test) and on the stock Twisted class (a
test of a L{StockDefect} class, an expected failure).

Every stock test is marked C{todo} by L{StockDefect}: an assertion failing is
the expected outcome; any other exception is a real error. A stock test
reported as UNEXPECTED SUCCESS means Twisted fixed that defect: recheck
docs/twisted-notes.md and whether our own engine is still needed for it.
"""

import base64
import email
import io
import os

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import CramMD5Credentials
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, task
from twisted.internet.interfaces import (
    ISSLTransport, ISystemHandle, ITCPTransport, ITLSTransport)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import StringTransport
from twisted.mail import imap4
from twisted.mail import maildir as twistedMaildir
from twisted.mail import pop3 as twistedPOP3
from twisted.mail.imap4 import PLAINCredentials
from twisted.mail.protocols import ESMTPDomainDelivery
from twisted.mail.smtp import ESMTP, IMessage, IMessageDelivery, LOGINCredentials
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest
from zope.interface import directlyProvides, implementer

from mailstack.pop3.server import POP3Server, POP3Settings
from mailstack.smtp.server import SMTPServer, SMTPSettings
from tests.fakes import FakePolicy, FakeTLSTransport, SubmitterRealm, TLSStringTransport
from tests.test_dotstuff import referenceStuffing
from tests.test_imap_server import MESSAGE, MULTIPART
from tests.test_pop3_server import MESSAGE_2, RFC_DIGEST, RFC_TIMESTAMP, StoreMixin
from tests.test_pop3_server import Session as POP3Session
from tests.test_smtp_server import SMTPTestMixin


class StockDefect:
    """
    Mixed into (first among the bases of) every test case of a stock
    twisted.mail class. Its tests assert the behaviour docs/twisted-notes.md
    says the stock class lacks, so each is an expected failure: an assertion
    error is expected, anything else is a real error. The tracebacks the
    stock classes log on the way are part of the defect and flushed.
    """

    todo = (("builtins.AssertionError",),
            "defect of stock twisted.mail (docs/twisted-notes.md)")

    def setUp(self):
        self.addCleanup(self.flushLoggedErrors)
        return super().setUp()


# -- SMTP: stock twisted.mail.smtp.ESMTP and ours -------------------------------
# A scenario drives a server over a StringTransport the way a client would and
# returns what that client observes (reply codes, whether a command ran,
# whether the connection survived); the constant after it is the RFC answer.

TLS_CONTEXT = object()  # the fake transports never look inside it
USERS = {"alice@lab.test": b"secret"}
GOOD_PLAIN = base64.b64encode(b"\0alice@lab.test\0secret")
LONG_LINE = 20000  # over our 1000-octet text line limit and stock's 16384 MAX_LENGTH


# -- SMTP: transports -------------------------------------------------------

@implementer(ITLSTransport, ISSLTransport)
class ImplicitTLSStringTransport(TLSStringTransport):
    """
    What an implicit-TLS (465) listener hands its protocol: already secure, and
    still claiming ITLSTransport, as L{TLSMemoryBIOFactory} over a TCP
    connection does (proved by L{FakeTransportFidelityTests}).
    """


@implementer(ITLSTransport, ITCPTransport, ISystemHandle)
class TCPLikeStringTransport(StringTransport):
    """Declares the interfaces C{twisted.internet.tcp.Server} provides."""


# -- SMTP: sessions -----------------------------------------------------------

def replyCodes(data):
    """The code of each complete reply in C{data} (the last line of multi-line ones)."""
    return [int(line[:3]) for line in data.split(b"\r\n")
            if len(line) >= 3 and line[:3].isdigit() and line[3:4] in (b"", b" ")]


class SMTPSession:
    """
    One server session as a client sees it.

    An exception out of C{dataReceived} is recorded in C{crash} and the
    connection closed, as the reactor does; nothing more is delivered after the
    connection is closing.
    """

    def __init__(self, protocol, transport, deliveries):
        self.protocol = protocol
        self.transport = transport
        self._deliveries = deliveries
        self.crash = None

    def send(self, data):
        self.transport.clear()
        if self.transport.disconnecting:
            return b""
        try:
            self.protocol.dataReceived(data)
        except Exception as e:
            self.crash = e
            self.transport.loseConnection()
        return self.transport.value()

    def codes(self, data):
        return replyCodes(self.send(data))

    @property
    def alive(self):
        return not self.transport.disconnecting

    @property
    def crashName(self):
        return None if self.crash is None else type(self.crash).__name__

    def deliveries(self):
        """C{[(received header, body)]} of every message the server accepted."""
        return self._deliveries()


def ourSession(testCase, transport=None, **overrides):
    """Our L{SMTPServer} with the settings, policy and users of test_smtp_server."""
    settings = dict(SMTPTestMixin.settings)
    settings.update(overrides)
    policy = FakePolicy()
    portal = Portal(SubmitterRealm(), [InMemoryUsernamePasswordDatabaseDontUse(**USERS)])
    server = SMTPServer(SMTPSettings(**settings), policy, portal, task.Clock())
    transport = transport if transport is not None else TLSStringTransport()
    server.makeConnection(transport)
    testCase.assertTrue(transport.value().startswith(b"220 mx.lab.test ESMTP"))
    return SMTPSession(server, transport, lambda: [
        (received, body) for _, _, received, body in policy.delivered])


@implementer(IMessage)
class InMemoryMessage:
    def __init__(self, store, recipient):
        self.store = store
        self.recipient = recipient
        self.lines = []

    def lineReceived(self, line):
        self.lines.append(line)

    def eomReceived(self):
        received = b""
        if self.lines and self.lines[0].startswith(b"Received:"):
            received = self.lines.pop(0) + b"\r\n"
        self.store.append((received, b"".join(l + b"\r\n" for l in self.lines)))
        return defer.succeed(None)

    def connectionLost(self):
        self.lines = []


@implementer(IMessageDelivery)
class InMemoryDelivery(ESMTPDomainDelivery):
    """
    Accepts every sender and recipient into memory. The Received header is
    stock's own (L{ESMTPDomainDelivery}, what C{twisted.mail.mail.MailService}
    hands an authenticated user, with the checker's avatarId as C{user}).
    """

    def __init__(self, store, user=None):
        ESMTPDomainDelivery.__init__(self, None, user, b"mx.lab.test")
        self.store = store

    def validateFrom(self, helo, origin):
        return origin

    def validateTo(self, user):
        return lambda: InMemoryMessage(self.store, user)


@implementer(IRealm)
class StockRealm:
    """Like C{MailService.requestAvatar}: a delivery for the avatarId (bytes)."""

    def __init__(self, store):
        self.store = store

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IMessageDelivery not in interfaces:
            raise NotImplementedError()
        return IMessageDelivery, InMemoryDelivery(self.store, avatarId), lambda: None


def stockSession(testCase, transport=None, ctx=TLS_CONTEXT):
    """Stock ESMTP configured minimally: PLAIN/LOGIN, a portal, an in-memory delivery."""
    store = []
    server = ESMTP({b"PLAIN": PLAINCredentials, b"LOGIN": LOGINCredentials}, ctx)
    server.host = b"mx.lab.test"
    server.portal = Portal(StockRealm(store), [InMemoryUsernamePasswordDatabaseDontUse(**USERS)])
    server.delivery = InMemoryDelivery(store)
    server.callLater = task.Clock().callLater  # TimeoutMixin, not the global reactor
    transport = transport if transport is not None else TLSStringTransport()
    server.makeConnection(transport)
    testCase.assertTrue(transport.value().startswith(b"220 mx.lab.test"))
    return SMTPSession(server, transport, lambda: list(store))


# -- SMTP: scenarios -----------------------------------------------------------
# Each returns what the client observes; the constant after it is the RFC answer.

def startTLSInjection(session):
    """
    Commands pipelined in the STARTTLS packet (RFC 3207 4.2, CVE-2011-0411).

    @return: C{(codes sent before the handshake, codes sent after it)}: any
        reply after the handshake means a plaintext command ran as if secure.
    """
    session.send(b"EHLO client.example\r\n")
    out = session.send(b"STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n"
                       b"RCPT TO:<alice@lab.test>\r\n")
    before = session.transport.tlsStarted
    if before is None:
        return replyCodes(out), None
    return replyCodes(before), replyCodes(out[len(before):])


STARTTLS_INJECTION_CORRECT = ([220], [])


def stateAfterStartTLS(session):
    """
    EHLO, AUTH, MAIL in plaintext, then STARTTLS (RFC 3207 4.2: forget them).

    @return: the codes of AUTH, MAIL and STARTTLS, then of RCPT, EHLO and
        AUTH sent after the handshake.
    """
    session.send(b"EHLO client.example\r\n")
    codes = session.codes(b"AUTH PLAIN " + GOOD_PLAIN + b"\r\n")
    codes += session.codes(b"MAIL FROM:<alice@lab.test>\r\n")
    codes += session.codes(b"STARTTLS\r\n")
    codes += session.codes(b"RCPT TO:<bob@lab.test>\r\n")
    codes += session.codes(b"EHLO client.example\r\n")
    codes += session.codes(b"AUTH PLAIN " + GOOD_PLAIN + b"\r\n")
    return codes


STATE_AFTER_STARTTLS_CORRECT = [235, 250, 220, 503, 250, 235]


def longDataLine(session):
    """
    A DATA body whose first line is over the limit; the rest of the body (in
    the next packet) is a complete smuggled transaction.

    @return: C{(codes from MAIL on, messages delivered, connection alive)}.
    """
    session.send(b"EHLO client.example\r\n")
    codes = session.codes(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@lab.test>\r\nDATA\r\n")
    codes += session.codes(b"a" * LONG_LINE + b"\r\n")
    codes += session.codes(b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<bob@lab.test>\r\n"
                           b"DATA\r\nSubject: smuggled\r\n\r\nhi\r\n.\r\n")
    return codes, len(session.deliveries()), session.alive


LONG_DATA_LINE_CORRECT = ([250, 250, 354, 500], 0, True)  # RFC 5321 4.5.3.1.6 "500 Line too long"


def bareAuth(session):
    """
    AUTH without a mechanism, then RSET.

    @return: C{(codes, connection alive, exception raised by the server)}.
    """
    session.send(b"EHLO client.example\r\n")
    codes = session.codes(b"AUTH\r\n") + session.codes(b"RSET\r\n")
    return codes, session.alive, session.crashName


BARE_AUTH_CORRECT = ([501, 250], True, None)


def malformedPlain(session):
    """
    AUTH PLAIN with valid base64 of something that is not authzid NUL authcid
    NUL password, then RSET.

    @return: C{(codes, connection alive, exception raised by the server)}.
    """
    session.send(b"EHLO client.example\r\n")
    codes = session.codes(b"AUTH PLAIN " + base64.b64encode(b"no-nuls") + b"\r\n")
    codes += session.codes(b"RSET\r\n")
    return codes, session.alive, session.crashName


MALFORMED_PLAIN_CORRECT = ([501, 250], True, None)


def vrfy(session):
    """
    VRFY of an existing and a non-existing user.

    @return: their codes; RFC 5321 3.5.3: 252 (cannot verify, will try), the
        same for both, so VRFY enumerates nobody.
    """
    session.send(b"EHLO client.example\r\n")
    return (session.codes(b"VRFY alice@lab.test\r\n")
            + session.codes(b"VRFY nobody@lab.test\r\n"))


VRFY_CORRECT = [252, 252]


def mailParameters(session):
    """
    MAIL FROM with a SIZE over any limit, with an unknown parameter, and with
    a small SIZE (RSET between).

    @return: the three MAIL codes (RFC 1870: 552; RFC 5321 4.1.1.11: 555).
    """
    session.send(b"EHLO client.example\r\n")
    codes = []
    for params in (b"SIZE=999999999999", b"XFOO=1", b"SIZE=100"):
        codes += session.codes(b"MAIL FROM:<a@b.example> " + params + b"\r\n")
        session.send(b"RSET\r\n")
    return codes


MAIL_PARAMETERS_CORRECT = [552, 555, 250]


def implicitTLSStartTLS(session):
    """
    EHLO and STARTTLS on a connection that is TLS from its first byte.

    @return: C{(STARTTLS advertised, STARTTLS refused, TLS started again)}.
    """
    ehlo = session.send(b"EHLO client.example\r\n")
    advertised = any(line[4:].upper() == b"STARTTLS" for line in ehlo.split(b"\r\n"))
    refused = session.codes(b"STARTTLS\r\n")[0] >= 400
    return advertised, refused, session.transport.tlsStarted is not None


IMPLICIT_TLS_CORRECT = (False, True, False)


def authenticatedReceived(session):
    """
    An authenticated sender sends a message.

    @return: C{(codes from AUTH to the end of DATA, messages delivered,
        whether the Received header names the authenticated sender)}.
    """
    session.send(b"EHLO client.example\r\n")
    codes = session.codes(b"AUTH PLAIN " + GOOD_PLAIN + b"\r\n")
    codes += session.codes(b"MAIL FROM:<alice@lab.test>\r\n")
    codes += session.codes(b"RCPT TO:<bob@lab.test>\r\n")
    codes += session.codes(b"DATA\r\n")
    codes += session.codes(b"Subject: hi\r\n\r\nbody\r\n.\r\n")
    delivered = session.deliveries()
    named = len(delivered) == 1 and delivered[0][0].startswith(b"Received: ") and (
        b"alice@lab.test" in delivered[0][0])
    return codes, len(delivered), named


AUTHENTICATED_RECEIVED_CORRECT = ([235, 250, 250, 354, 250], 1, True)


# -- SMTP: tests ---------------------------------------------------------------

class OurESMTPScenarioTests(unittest.TestCase):
    """
    Our L{SMTPServer} behaves as the RFCs say in every stock-defect scenario.
    """

    def test_startTLSInjection(self):
        """Commands pipelined after STARTTLS are discarded, not run after the handshake."""
        self.assertEqual(startTLSInjection(ourSession(self)), STARTTLS_INJECTION_CORRECT)

    def test_stateAfterStartTLS(self):
        """STARTTLS forgets the envelope, the EHLO and the authentication."""
        session = ourSession(self, allowPlaintextAuth=True)
        self.assertEqual(stateAfterStartTLS(session), STATE_AFTER_STARTTLS_CORRECT)

    def test_longDataLine(self):
        """An over-long DATA line refuses the message; the body never runs as commands."""
        self.assertEqual(longDataLine(ourSession(self)), LONG_DATA_LINE_CORRECT)

    def test_bareAuth(self):
        """Bare AUTH is a 501 and the session goes on."""
        self.assertEqual(bareAuth(ourSession(self)), BARE_AUTH_CORRECT)

    def test_malformedPlain(self):
        """A malformed PLAIN payload is a 501 and the session goes on."""
        session = ourSession(self, tlsMode="implicit")
        self.assertEqual(malformedPlain(session), MALFORMED_PLAIN_CORRECT)

    def test_vrfy(self):
        """VRFY answers 252 for known and unknown users alike."""
        self.assertEqual(vrfy(ourSession(self)), VRFY_CORRECT)

    def test_mailParameters(self):
        """SIZE over the limit is 552, an unknown MAIL parameter 555."""
        self.assertEqual(mailParameters(ourSession(self)), MAIL_PARAMETERS_CORRECT)

    def test_implicitTLSStartTLS(self):
        """An implicit-TLS listener neither offers nor starts STARTTLS."""
        session = ourSession(self, ImplicitTLSStringTransport(), tlsMode="implicit")
        self.assertEqual(implicitTLSStartTLS(session), IMPLICIT_TLS_CORRECT)

    def test_authenticatedReceived(self):
        """Mail from an authenticated sender is accepted with a Received header naming them."""
        session = ourSession(self, tlsMode="implicit")
        self.assertEqual(authenticatedReceived(session), AUTHENTICATED_RECEIVED_CORRECT)


class StockESMTPTests(StockDefect, unittest.TestCase):
    """
    Stock L{ESMTP} in the same scenarios: each test asserts the RFC answer and
    fails (what stock does instead is in the comment).
    """

    def test_startTLSInjection(self):
        """Stock ESMTP: commands pipelined after STARTTLS are not discarded."""
        # Stock: ([220], [250, 250]): MAIL and RCPT, sent in plaintext, are
        # answered after startTLS.
        observed = startTLSInjection(stockSession(self))
        self.assertEqual(observed, STARTTLS_INJECTION_CORRECT)

    def test_stateAfterStartTLS(self):
        """Stock ESMTP: STARTTLS does not reset the session."""
        # Stock: [235, 250, 220, 250, 250, 503]: the plaintext MAIL FROM
        # still holds, the plaintext AUTH still counts.
        observed = stateAfterStartTLS(stockSession(self))
        self.assertEqual(observed, STATE_AFTER_STARTTLS_CORRECT)

    def test_longDataLine(self):
        """Stock ESMTP: an over-long DATA line makes the rest of the body run as commands."""
        # Stock: ([250, 250, 354, 500, 250, 250, 354, 250], 1, True): after
        # the 500 the body's MAIL, RCPT, DATA ran and the smuggled mail was
        # delivered.
        observed = longDataLine(stockSession(self))
        self.assertEqual(observed, LONG_DATA_LINE_CORRECT)

    def test_bareAuth(self):
        """Stock ESMTP: bare AUTH raises IndexError and drops the connection."""
        # Stock: ([], False, "IndexError").
        self.assertEqual(bareAuth(stockSession(self)), BARE_AUTH_CORRECT)

    def test_malformedPlain(self):
        """Stock ESMTP: a malformed PLAIN payload crashes the session."""
        # Stock: ([], False, "IllegalClientResponse").
        self.assertEqual(malformedPlain(stockSession(self)), MALFORMED_PLAIN_CORRECT)

    def test_vrfy(self):
        """Stock ESMTP: VRFY is not answered 252 (it is not implemented)."""
        # Stock: [500, 500].
        self.assertEqual(vrfy(stockSession(self)), VRFY_CORRECT)

    def test_mailParameters(self):
        """Stock ESMTP: SIZE on MAIL FROM is not checked (552), unknown parameters not refused (555)."""
        # Stock: [250, 250, 250].
        self.assertEqual(mailParameters(stockSession(self)), MAIL_PARAMETERS_CORRECT)

    def test_implicitTLSStartTLS(self):
        """Stock ESMTP: an implicit-TLS listener still offers and starts STARTTLS."""
        # Stock: (True, False, True): offered, accepted with 220, and TLS
        # started inside TLS.
        observed = implicitTLSStartTLS(stockSession(self, ImplicitTLSStringTransport()))
        self.assertEqual(observed, IMPLICIT_TLS_CORRECT)

    def test_authenticatedReceived(self):
        """Stock ESMTP: receivedHeader fails for an authenticated sender."""
        # Stock: ([235, 250, 250, 550, 500, 500, 500, 500], 0, False): the
        # bytes avatarId's .encode("xtext") raises AttributeError -> 550, then
        # the body's four lines run as commands; nothing delivered.
        observed = authenticatedReceived(stockSession(self))
        self.assertEqual(observed, AUTHENTICATED_RECEIVED_CORRECT)


class FakeTransportFidelityTests(unittest.TestCase):
    """
    The fake transports claim what the real ones do.
    """

    def test_implicitTLSTransportInterfaces(self):
        """A protocol behind TLSMemoryBIOFactory on TCP sees ISSLTransport and ITLSTransport."""
        seen = []

        class Recorder(Protocol):
            def connectionMade(self):
                seen.append(self.transport)

        factory = TLSMemoryBIOFactory(CertificateOptions(), False,
                                      Factory.forProtocol(Recorder))
        factory.buildProtocol(None).makeConnection(TCPLikeStringTransport())
        (transport,) = seen
        self.assertTrue(ISSLTransport.providedBy(transport))
        self.assertTrue(ITLSTransport.providedBy(transport))
        fake = ImplicitTLSStringTransport()
        self.assertTrue(ISSLTransport.providedBy(fake))
        self.assertTrue(ITLSTransport.providedBy(fake))


# -- POP3: stock twisted.mail.pop3 and twisted.mail.maildir, and ours ---------

class BinaryMailbox(twistedPOP3.Mailbox):
    """
    A correct stock pop3.IMailbox over our store: binary files with LF line
    ends, as stock POP3 expects (its transformChunk makes them CRLF), so what
    fails is the stuffing alone.
    """

    def __init__(self, inbox):
        self.inbox = inbox
        inbox.noteDelivery()
        self.infos = inbox.messages()

    def listMessages(self, i=None):
        if i is None:
            return [info.size for info in self.infos]
        return self.infos[i].size

    def getMessage(self, i):
        with self.inbox.openMessage(self.infos[i].uid) as f:
            return io.BytesIO(f.read().replace(b"\r\n", b"\n"))

    def getUidl(self, i):
        return b"%d" % (self.infos[i].uid,)


class StockChallengers:
    """A factory giving stock POP3 its SASL mechanisms."""

    challengers = {b"PLAIN": PLAINCredentials, b"CRAM-MD5": CramMD5Credentials}

    def cap_IMPLEMENTATION(self):
        return "stock"


class TwistedDefectScenarios(StoreMixin):
    """
    One test per POP3 defect listed in docs/twisted-notes.md, in terms a
    client sees. Subclasses say which server answers.
    """

    def login(self, session):
        reply = session.login()
        self.assertTrue(reply.startswith(b"+OK"), reply)

    def retrieved(self, message):
        """The bytes RETR sends for C{message} after its +OK line."""
        self.deliver(message)
        session = self.open()
        self.login(session)
        out = session.send(b"RETR 1\r\n")
        self.assertTrue(out.startswith(b"+OK"), out)
        return session.body(out)

    def test_apopRFCVector(self):
        """APOP: RFC 1939's timestamp + 'tanstaaf' -> c4c9334b...: logged in."""
        session = self.open(timestamp=RFC_TIMESTAMP)
        self.assertIn(RFC_TIMESTAMP, session.greeting)
        reply = session.send(b"APOP mrose " + RFC_DIGEST + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK"), reply)

    def test_authPlainInitialResponse(self):
        """AUTH PLAIN with an initial response logs in."""
        session = self.open()
        reply = session.send(b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret") + b"\r\n")
        self.assertTrue(reply.startswith(b"+OK"), reply)

    def test_stlsDiscardsInjection(self):
        """STLS starts TLS and drops plaintext pipelined after it."""
        session = self.open()
        out = session.send(b"STLS\r\nUSER mallory\r\n")
        self.assertTrue(out.startswith(b"+OK"), out)
        self.assertEqual(out.count(b"\r\n"), 1, out)
        self.assertIsNotNone(session.transport.tlsStarted)

    def test_stuffingFirstLine(self):
        """A message whose first line starts with '.' is stuffed."""
        message = b".first line\r\nsecond\r\n"
        self.assertEqual(self.retrieved(message), referenceStuffing(message))

    def test_stuffingChunkBoundary(self):
        """'.' lines on stock's (16 KiB of LF text) and our (64 KiB) chunk edges are stuffed."""
        message = b"Subject: dots\r\n\r\n" + b"a" * 16368 + b"\r\n.dot\r\n"
        message += b"b" * (65536 - len(message) - 2) + b"\r\n.dot\r\n.\r\nend\r\n"
        self.assertEqual(message.replace(b"\r\n", b"\n").index(b".dot"), 16384)
        self.assertEqual(message.index(b".dot", 16390), 65536)
        self.assertEqual(self.retrieved(message), referenceStuffing(message))


class MaildirDefectScenarios(StoreMixin):
    """
    The defects of twisted.mail.maildir.MaildirMailbox, seen through POP3.
    """

    def login(self, session):
        reply = session.login()
        self.assertTrue(reply.startswith(b"+OK"), reply)

    def test_retrFromMaildir(self):
        """RETR of a message in the Maildir returns its exact bytes."""
        self.deliver(MESSAGE_2)
        session = self.open()
        self.login(session)
        out = session.send(b"RETR 1\r\n")
        self.assertEqual(session.body(out), MESSAGE_2 + b".\r\n")

    def test_deleDeferredToQuit(self):
        """DELE removes nothing until QUIT; a dropped session deletes nothing."""
        self.deliver(MESSAGE_2)
        session = self.open()
        self.login(session)
        self.assertTrue(session.send(b"DELE 1\r\n").startswith(b"+OK"))
        self.assertEqual(len(self.storedMessages()), 1)
        session.drop()
        self.assertEqual(len(self.storedMessages()), 1)
        session = self.open()
        self.login(session)
        session.send(b"DELE 1\r\n")
        session.send(b"QUIT\r\n")
        self.assertEqual(self.storedMessages(), [])

    def test_uidlStableAcrossRename(self):
        """UIDL stays the same after the file is renamed by a flag change."""
        self.deliver(MESSAGE_2)
        session = self.open()
        self.login(session)
        before = session.send(b"UIDL\r\n")
        session.send(b"QUIT\r\n")
        session.drop()
        inbox = self.inbox()
        inbox.setFlags(inbox.messages()[0].uid, {"\\Seen"})
        session = self.open()
        self.login(session)
        self.assertEqual(session.send(b"UIDL\r\n"), before)

    def test_maildropLock(self):
        """A second session for the same user does not get the maildrop while the
        first holds it (ours waits in line, then answers [IN-USE])."""
        first = self.open()
        self.login(first)
        second = self.open()
        self.assertFalse(second.login().startswith(b"+OK"))


class OursMixin:
    """Our server, lab listener settings."""

    def open(self, timestamp=None):
        server = POP3Server(
            POP3Settings(hostname="mail.lab.test", tlsMode="starttls",
                         tlsContext=object(), allowPlaintextAuth=True),
            self.portal, lambda: True, self.reactor, timestamp=timestamp)
        return POP3Session(server, FakeTLSTransport(), self.reactor)


class CrashRecordingSession(POP3Session):
    """
    A session whose server may raise out of C{dataReceived}: as the reactor
    does, the connection is closed and nothing more is answered; the client
    sees what was written until then. The exception is kept in C{crash}.
    """

    crash = None

    def send(self, data):
        if self.transport.disconnecting:
            return b""
        try:
            return POP3Session.send(self, data)
        except Exception as e:
            self.crash = e
            self.transport.loseConnection()
            return self.transport.value()


class StockMixin:
    """Stock twisted.mail.pop3.POP3 with the same portal."""

    def stockMailbox(self, account):
        return BinaryMailbox(account.getMailbox("INBOX"))

    def adapters(self):
        return {twistedPOP3.IMailbox: lambda account, address: (
            self.stockMailbox(account), None)}

    def open(self, timestamp=None):
        server = twistedPOP3.POP3()
        server.portal = self.portal
        server.factory = StockChallengers()
        server.magic = timestamp
        server.callLater = self.reactor.callLater
        server.schedule = lambda iterator: (list(iterator), defer.succeed(None))[1]
        return CrashRecordingSession(server, FakeTLSTransport(), self.reactor)


class OurPOP3Tests(OursMixin, TwistedDefectScenarios, unittest.TestCase):
    """
    Our server has none of stock twisted.mail.pop3's protocol defects.
    """


class StockPOP3Tests(StockDefect, StockMixin, TwistedDefectScenarios, unittest.TestCase):
    """
    Stock twisted.mail.pop3.POP3 shows each protocol defect (expected failures).
    """


class OurMaildropTests(OursMixin, MaildirDefectScenarios, unittest.TestCase):
    """
    Our maildrop has none of twisted.mail.maildir.MaildirMailbox's defects.
    """


class StockMaildirTests(StockDefect, StockMixin, MaildirDefectScenarios, unittest.TestCase):
    """
    Stock POP3 over twisted.mail.maildir.MaildirMailbox shows each defect
    (expected failures).
    """

    def stockMailbox(self, account):
        return twistedMaildir.MaildirMailbox(os.fsencode(account.path))


# -- IMAP: stock twisted.mail.imap4.IMAP4Server ---------------------------------
# With a complete in-memory mailbox behind it. Our engine's answers are tested
# in the test_imap_* modules; each test below names the test of ours.

@implementer(imap4.IMessage)
class _StockMessage:
    def __init__(self, data, uid):
        self.data = data
        self.flags = []
        self.uid = uid
        self.parsed = email.message_from_bytes(data)

    def getHeaders(self, negate, *names):
        names = {(n.decode() if isinstance(n, bytes) else n).lower() for n in names}
        return {k.lower(): v for k, v in self.parsed.items()
                if not names or ((k.lower() in names) != negate)}

    def getBodyFile(self):
        return io.BytesIO(self.data.partition(b"\r\n\r\n")[2])

    def getSize(self):
        return len(self.data)

    def isMultipart(self):
        return self.parsed.is_multipart()

    def getSubPart(self, part):
        return _StockMessage(self.parsed.get_payload()[part].as_bytes(), 0)

    def getUID(self):
        return self.uid

    def getFlags(self):
        return self.flags

    def getInternalDate(self):
        return "Mon, 7 Feb 1994 21:52:25 -0800"


@implementer(imap4.IMailbox)
class _StockMailbox:
    def __init__(self):
        self.messages = []
        self.listeners = []

    def getFlags(self):
        return ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]

    def getUIDValidity(self):
        return 42

    def getUIDNext(self):
        return len(self.messages) + 1

    def getUID(self, number):
        return self.messages[number - 1].uid

    def getMessageCount(self):
        return len(self.messages)

    def getRecentCount(self):
        return 0

    def getUnseenCount(self):
        return sum(1 for m in self.messages if "\\Seen" not in m.flags)

    def isWriteable(self):
        return True

    def destroy(self):
        pass

    def getHierarchicalDelimiter(self):
        return "/"

    def requestStatus(self, names):
        return {"MESSAGES": len(self.messages)}

    def addListener(self, listener):
        self.listeners.append(listener)

    def removeListener(self, listener):
        self.listeners.remove(listener)

    def addMessage(self, message, flags=(), date=None):
        self.messages.append(_StockMessage(message.read(), len(self.messages) + 1))
        return defer.succeed(None)

    def expunge(self):
        return []

    def fetch(self, messages, uid):
        messages.last = len(self.messages)
        return [(i, self.messages[i - 1]) for i in messages]

    def store(self, messages, flags, mode, uid):
        return {}


class _StockAccount(imap4.MemoryAccount):
    def _emptyMailbox(self, name, id):
        return _StockMailbox()


@implementer(IRealm)
class _StockRealm:
    def __init__(self):
        self.account = _StockAccount("alice")

    def requestAvatar(self, avatarId, mind, *interfaces):
        return imap4.IAccount, self.account, lambda: None


class StockIMAP4ServerTests(StockDefect, unittest.TestCase):
    """
    The defects of twisted.mail.imap4.IMAP4Server that made us write our own:
    each test asserts what ours answers (the test of ours is named in its
    docstring) and fails on the stock server.
    """

    def setUp(self):
        super().setUp()
        self.connect(None)

    def connect(self, contextFactory):
        self.realm = _StockRealm()
        self.server = imap4.IMAP4Server(contextFactory=contextFactory, scheduler=self._schedule)
        self.server.portal = Portal(
            self.realm, [InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")])
        self.server.callLater = task.Clock().callLater  # its TimeoutMixin
        self.transport = FakeTLSTransport()
        if contextFactory is not None:
            directlyProvides(self.transport, ITLSTransport)
        self.server.makeConnection(self.transport)
        self.addCleanup(self.server.setTimeout, None)

    def _schedule(self, iterator):
        """
        Run the server's response iterator now, pumping its producers (like
        the stock iterateInReactor, an exception fails the Deferred).
        """
        try:
            for item in iterator:
                if isinstance(item, defer.Deferred):
                    fired = []
                    item.addBoth(fired.append)
                    while not fired and self.transport.producer is not None:
                        self.transport.producer.resumeProducing()
        except Exception:
            return defer.fail()
        return defer.succeed(None)

    def send(self, data):
        self.transport.clear()
        self.server.dataReceived(data)
        return self.transport.value()

    def selected(self, message=MESSAGE):
        self.send(b"a LOGIN alice secret\r\n")
        self.send(b"b CREATE INBOX\r\n")
        box = self.realm.account.mailboxes["INBOX"]
        box.messages.append(_StockMessage(message, 1))
        self.send(b"c SELECT INBOX\r\n")
        return box

    def test_selectResponseCodes(self):
        """SELECT: no PERMANENTFLAGS/UIDNEXT/UNSEEN, bare [UIDVALIDITY] (ours: MailboxCommandTests.test_select)."""
        # Stock: "* OK [UIDVALIDITY 42]" with no text, and none of the others.
        self.send(b"a LOGIN alice secret\r\nb CREATE INBOX\r\n")
        out = self.send(b"c SELECT INBOX\r\n")
        self.assertIn(b"* OK [PERMANENTFLAGS (", out)
        self.assertIn(b"* OK [UIDNEXT ", out)
        self.assertNotIn(b"* OK [UIDVALIDITY 42]\r\n", out)

    def test_examineReadWrite(self):
        """EXAMINE answers [READ-WRITE] (ours: MailboxCommandTests.test_examine)."""
        self.send(b"a LOGIN alice secret\r\nb CREATE INBOX\r\n")
        self.assertIn(b"c OK [READ-ONLY] EXAMINE", self.send(b"c EXAMINE INBOX\r\n"))

    def test_partialFetch(self):
        """BODY[]<0.5> sends the whole message, labelled <0.5> (ours: FetchTests.test_partial)."""
        self.selected()
        out = self.send(b"d FETCH 1 BODY[]<0.5>\r\n")
        self.assertIn(b"BODY[]<0> {5}\r\n" + MESSAGE[:5], out)

    def test_partialText(self):
        """BODY[TEXT]<0.3> sends the whole body (ours: FetchTests.test_partialText)."""
        self.selected()
        self.assertIn(b"BODY[TEXT]<0> {3}\r\nHi ", self.send(b"d FETCH 1 BODY[TEXT]<0.3>\r\n"))

    def test_noImplicitSeen(self):
        """BODY[] and RFC822 leave \\Seen unset (ours: FetchTests.test_bodySetsSeen)."""
        box = self.selected()
        self.send(b"d FETCH 1 BODY[]\r\ne FETCH 1 RFC822\r\n")
        self.assertIn("\\Seen", box.messages[0].flags)

    def test_headerFieldsNoBlankLine(self):
        """HEADER.FIELDS lacks the closing blank line (ours: FetchTests.test_headerFields)."""
        # Stock: {30} and the From line alone.
        self.selected()
        out = self.send(b"d FETCH 1 BODY[HEADER.FIELDS (From)]\r\n")
        self.assertIn(b"{32}\r\nFrom: Alice <alice@lab.test>\r\n\r\n)", out)

    def test_bodyStructure(self):
        """BODYSTRUCTURE lower-cases, says NIL for 7BIT, counts the header (ours: BodyStructureTests)."""
        # Stock: ("text" "plain" ("charset" "utf-8") NIL NIL NIL 46 ...
        self.selected(b"Content-Type: Text/Plain; Charset=UTF-8\r\n\r\nx\r\n")
        out = self.send(b"d FETCH 1 BODYSTRUCTURE\r\n")
        self.assertIn(b'("Text" "Plain" ("Charset" "UTF-8") NIL NIL "7bit" 3 1 ', out)

    def test_parameterWithoutEquals(self):
        """A parameter without '=' drops the connection (ours: FetchTests.test_malformedMIME)."""
        self.selected(MULTIPART)
        out = self.send(b"d FETCH 1 BODYSTRUCTURE\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.assertIn(b"d OK FETCH completed\r\n", out)

    def test_nonexistentPart(self):
        """A part that does not exist drops the connection (ours: MalformedTests.test_nonexistentPart)."""
        self.selected(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n")
        out = self.send(b"d FETCH 1 BODY[2]\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.assertIn(b"d OK FETCH completed\r\n", out)

    def test_appendWithoutFlags(self):
        """APPEND without a flag list fails (ours: AppendTests.test_noFlags)."""
        # Stock: "c BAD Server error encountered while opening mailbox."
        self.send(b"a LOGIN alice secret\r\nb CREATE INBOX\r\n")
        self.send(b"c APPEND INBOX {%d}\r\n" % (len(MESSAGE),))
        out = self.send(MESSAGE + b"\r\n")
        self.assertTrue(out.startswith(b"c OK"), out)

    def test_appendUnbounded(self):
        """APPEND accepts a 100 MB literal (ours: LimitTests.test_appendTooBigSynchronizing)."""
        # Stock: "+ Ready for 100000000 octets of data".
        self.send(b"a LOGIN alice secret\r\nb CREATE INBOX\r\n")
        out = self.send(b"c APPEND INBOX {100000000}\r\n")
        self.assertTrue(out.startswith(b"c NO [TOOBIG]"), out)

    def test_startTLSInjection(self):
        """Commands pipelined after STARTTLS run after the handshake (ours: STARTTLSTests)."""
        # Stock: "b OK LOGIN succeeded" follows the STARTTLS answer.
        self.connect(object())
        out = self.send(b"a STARTTLS\r\nb LOGIN alice secret\r\n")
        self.assertEqual(out, b"a OK Begin TLS negotiation now\r\n")

    def test_longLineDisconnects(self):
        """A 20 KB command line disconnects (ours: LimitTests.test_longLegalCommand)."""
        self.send(b"a NOOP " + b"x" * 20000 + b"\r\n")
        self.assertFalse(self.transport.disconnecting)

    def test_idleEndsOnAnyLine(self):
        """IDLE ends on any line, not only DONE (ours: SessionTests.test_idle)."""
        # Stock: "i OK IDLE terminated".
        self.selected()
        self.send(b"i IDLE\r\n")
        self.assertNotIn(b"i OK IDLE terminated", self.send(b"x NOOP\r\n"))

    def test_listRoot(self):
        """LIST "" "" lists mailboxes with message flags as attributes (ours: test_listRoot)."""
        # Stock: '* LIST (\Seen \Answered \Flagged \Deleted \Draft) "/" "INBOX"'.
        self.send(b"a LOGIN alice secret\r\nb CREATE INBOX\r\n")
        self.assertEqual(self.send(b'c LIST "" ""\r\n'),
                         b'* LIST (\\Noselect) "/" ""\r\nc OK LIST completed\r\n')

    def test_namesUpperCased(self):
        """MemoryAccount upper-cases mailbox names (ours: MailboxCommandTests.test_list)."""
        # Stock: "MY-BOX_1".
        self.send(b"a LOGIN alice secret\r\nb CREATE my-Box_1\r\n")
        self.assertIn(b"my-Box_1", self.send(b'c LIST "" *\r\n'))

    def test_statusUnquoted(self):
        """STATUS does not quote a name with a space (ours: MailboxCommandTests.test_status)."""
        # Stock: "* STATUS My Box (".
        self.send(b'a LOGIN alice secret\r\nb CREATE "My Box"\r\n')
        self.assertIn(b'* STATUS "My Box" (', self.send(b'c STATUS "My Box" (MESSAGES)\r\n'))

    def test_searchTextFails(self):
        """SEARCH on a text key fails (ours: SearchTests.test_textAndDates)."""
        # Stock: "d BAD SEARCH failed: must be str, not bytes".
        self.selected()
        self.assertEqual(self.send(b"d SEARCH SUBJECT hello\r\n"),
                         b"* SEARCH 1\r\nd OK SEARCH completed\r\n")

    def test_searchEmptyResult(self):
        """An empty SEARCH result sends no '* SEARCH' line (ours: SearchTests.test_empty)."""
        self.selected()
        self.assertEqual(self.send(b"d SEARCH DELETED\r\n"),
                         b"* SEARCH\r\nd OK SEARCH completed\r\n")

    def test_listenerCannotExpunge(self):
        """The mailbox listener has no way to report EXPUNGE (ours: SessionTests)."""
        # Stock: flagsChanged, modeChanged and newMessages only.
        self.assertTrue([name for name in imap4.IMailboxListener.names()
                         if "xpunge" in name])

    def test_missingExtensions(self):
        """No UIDPLUS, MOVE, ID, ENABLE, UNSELECT, LITERAL+, CHILDREN... (ours: test_greeting)."""
        out = self.send(b"a CAPABILITY\r\n").split(b"\r\n")[0].split()
        missing = [name for name in (b"UIDPLUS", b"MOVE", b"ID", b"ENABLE", b"UNSELECT",
                                     b"LITERAL+", b"SPECIAL-USE", b"CHILDREN", b"SASL-IR")
                   if name not in out]
        self.assertEqual(missing, [])
