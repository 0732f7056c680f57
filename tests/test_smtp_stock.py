"""
The SMTP defects of the stock L{twisted.mail.smtp.ESMTP} listed in
docs/twisted-notes.md ("SMTP"), each as one scenario played against both servers.

A scenario drives a server over a L{StringTransport} the way a client would and
returns what that client observes (reply codes, whether a command ran, whether
the connection survived). For every scenario one test asserts the RFC behaviour
on our L{SMTPServer}, and one asserts that the same check does B{not} hold on
stock ESMTP: the day Twisted fixes a defect that test fails, and the notes (and
the reasons for our own engine) should be rechecked.
"""

import base64

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, task
from twisted.internet.interfaces import (
    ISSLTransport, ISystemHandle, ITCPTransport, ITLSTransport)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import StringTransport
from twisted.mail.imap4 import PLAINCredentials
from twisted.mail.protocols import ESMTPDomainDelivery
from twisted.mail.smtp import ESMTP, IMessage, IMessageDelivery, LOGINCredentials
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest
from zope.interface import alsoProvides, implementer

from mailstack.smtp.server import SMTPServer, SMTPSettings
from tests.test_smtp_server import (
    FakePolicy, FakeTLSTransport, SMTPTestMixin, SubmitterRealm)

TLS_CONTEXT = object()  # the fake transports never look inside it
USERS = {"alice@lab.test": b"secret"}
GOOD_PLAIN = base64.b64encode(b"\0alice@lab.test\0secret")
LONG_LINE = 20000  # over our 1000-octet text line limit and stock's 16384 MAX_LENGTH


# -- transports -------------------------------------------------------------

@implementer(ITLSTransport)
class TLSStringTransport(FakeTLSTransport):
    """
    A plaintext TCP connection that can start TLS (as C{tcp.Server} can):
    startTLS records what was written before it and marks the transport secure.
    """

    def startTLS(self, context):
        FakeTLSTransport.startTLS(self, context)
        alsoProvides(self, ISSLTransport)


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


# -- sessions -----------------------------------------------------------------

def replyCodes(data):
    """The code of each complete reply in C{data} (the last line of multi-line ones)."""
    return [int(line[:3]) for line in data.split(b"\r\n")
            if len(line) >= 3 and line[:3].isdigit() and line[3:4] in (b"", b" ")]


class Session:
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
    return Session(server, transport, lambda: [
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
    return Session(server, transport, lambda: list(store))


# -- scenarios ------------------------------------------------------------------
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


# -- tests ----------------------------------------------------------------------

class MailstackScenarioTests(unittest.TestCase):
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


class StockESMTPScenarioTests(unittest.TestCase):
    """
    Stock L{ESMTP} still has each defect listed in docs/twisted-notes.md.
    """

    def test_startTLSInjection(self):
        """Stock ESMTP: STARTTLS pipelined-command injection; if this starts failing Twisted fixed it: recheck docs/twisted-notes.md"""
        observed = startTLSInjection(stockSession(self))
        self.assertNotEqual(observed, STARTTLS_INJECTION_CORRECT)
        # MAIL and RCPT, sent in plaintext, were answered after startTLS.
        self.assertEqual(observed, ([220], [250, 250]))

    def test_stateAfterStartTLS(self):
        """Stock ESMTP: no state reset after STARTTLS; if this starts failing Twisted fixed it: recheck docs/twisted-notes.md"""
        observed = stateAfterStartTLS(stockSession(self))
        self.assertNotEqual(observed, STATE_AFTER_STARTTLS_CORRECT)
        # The plaintext MAIL FROM still holds; the plaintext AUTH still counts.
        self.assertEqual(observed, [235, 250, 220, 250, 250, 503])

    def test_longDataLine(self):
        """Stock ESMTP: DATA line over the line limit makes the rest of the body run as commands; if this starts failing Twisted fixed it: recheck docs/twisted-notes.md"""
        session = stockSession(self)
        observed = longDataLine(session)
        self.assertNotEqual(observed, LONG_DATA_LINE_CORRECT)
        # 500, then the body's MAIL, RCPT, DATA ran and the smuggled mail was delivered.
        self.assertEqual(observed, ([250, 250, 354, 500, 250, 250, 354, 250], 1, True))
        self.assertIn(b"Subject: smuggled\r\n", session.deliveries()[0][1])

    def test_bareAuth(self):
        """Stock ESMTP: bare AUTH raises IndexError; if this starts failing Twisted fixed it: recheck docs/twisted-notes.md"""
        observed = bareAuth(stockSession(self))
        self.assertNotEqual(observed, BARE_AUTH_CORRECT)
        self.assertEqual(observed, ([], False, "IndexError"))

    def test_malformedPlain(self):
        """Stock ESMTP: malformed PLAIN payload crashes; if this starts failing Twisted fixed it: recheck docs/twisted-notes.md"""
        observed = malformedPlain(stockSession(self))
        self.assertNotEqual(observed, MALFORMED_PLAIN_CORRECT)
        self.assertEqual(observed, ([], False, "IllegalClientResponse"))

    def test_vrfy(self):
        """Stock ESMTP: VRFY is not answered 252 (it is not implemented: 500); if this starts failing Twisted fixed it: recheck docs/twisted-notes.md"""
        observed = vrfy(stockSession(self))
        self.assertNotEqual(observed, VRFY_CORRECT)
        self.assertEqual(observed, [500, 500])

    def test_mailParameters(self):
        """Stock ESMTP: SIZE on MAIL FROM not checked (552), unknown MAIL parameters not rejected (555); if this starts failing Twisted fixed it: recheck docs/twisted-notes.md"""
        observed = mailParameters(stockSession(self))
        self.assertNotEqual(observed, MAIL_PARAMETERS_CORRECT)
        self.assertEqual(observed, [250, 250, 250])

    def test_implicitTLSStartTLS(self):
        """Stock ESMTP: implicit-TLS listener still advertises STARTTLS when given a TLS context; if this starts failing Twisted fixed it: recheck docs/twisted-notes.md"""
        observed = implicitTLSStartTLS(stockSession(self, ImplicitTLSStringTransport()))
        self.assertNotEqual(observed, IMPLICIT_TLS_CORRECT)
        # Offered, accepted with 220, and TLS started inside TLS.
        self.assertEqual(observed, (True, False, True))

    def test_authenticatedReceived(self):
        """Stock ESMTP: receivedHeader fails for authenticated senders; if this starts failing Twisted fixed it: recheck docs/twisted-notes.md"""
        observed = authenticatedReceived(stockSession(self))
        self.assertNotEqual(observed, AUTHENTICATED_RECEIVED_CORRECT)
        # bytes avatarId .encode("xtext") -> AttributeError -> 550, then the
        # body's four lines run as commands (500 each); nothing delivered.
        self.assertEqual(observed, ([235, 250, 250, 550, 500, 500, 500, 500], 0, False))
        self.assertEqual(len(self.flushLoggedErrors(AttributeError)), 1)


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
