"""
Unit tests for L{mailstack.smtp.server}: exact bytes over a StringTransport.
"""

import base64
import hashlib
import hmac

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.trial import unittest

from mailstack.smtp.server import SMTPServer, SMTPSettings
from tests.fakes import FakePolicy, FakeTLSTransport, SubmitterRealm


class SMTPTestMixin:
    settings = dict(hostname="mx.lab.test", tlsMode="starttls", tlsContext=object(),
                    allowPlaintextAuth=False, maxRecipients=3, maxMessageSize=2000,
                    maxBadCommands=5)

    def setUp(self):
        self.clock = task.Clock()
        self.policy = FakePolicy()
        checker = InMemoryUsernamePasswordDatabaseDontUse(**{
            "alice@lab.test": b"secret"})
        self.portal = Portal(SubmitterRealm(), [checker])
        self.connect()

    def connect(self, **overrides):
        settings = dict(self.settings)
        settings.update(overrides)
        self.server = SMTPServer(SMTPSettings(**settings), self.policy, self.portal,
                                 self.clock)
        self.transport = FakeTLSTransport()
        self.server.makeConnection(self.transport)
        self.assertTrue(self.transport.value().startswith(b"220 mx.lab.test ESMTP"))
        self.transport.clear()

    def send(self, data):
        self.transport.clear()
        self.server.dataReceived(data)
        return self.transport.value()

    def ehlo(self):
        return self.send(b"EHLO client.example\r\n")


class CommandTests(SMTPTestMixin, unittest.TestCase):
    """
    Basic commands, errors, and the session surviving them.
    """

    def test_ehloExtensions(self):
        """EHLO lists the extensions; no AUTH at all before TLS (smtpd_tls_auth_only)."""
        out = self.ehlo()
        self.assertEqual(out, b"250-mx.lab.test Hello client.example [192.168.1.1]\r\n"
                              b"250-PIPELINING\r\n250-SIZE 2000\r\n250-8BITMIME\r\n"
                              b"250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n"
                              b"250 HELP\r\n")

    def test_ehloPlaintextAllowed(self):
        """With plaintext auth allowed (lab), PLAIN and LOGIN are offered in clear."""
        self.connect(allowPlaintextAuth=True)
        self.assertIn(b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n", self.ehlo())

    def test_disabledCapabilities(self):
        """Capabilities switched off in config are not offered."""
        self.connect(disabled=frozenset({"PIPELINING", "STARTTLS"}))
        out = self.ehlo()
        self.assertNotIn(b"PIPELINING", out)
        self.assertNotIn(b"STARTTLS", out)
        self.assertEqual(self.send(b"STARTTLS\r\n"), b"454 4.7.0 TLS not available\r\n")

    def test_enhancedStatusCodesDisabled(self):
        """With ENHANCEDSTATUSCODES switched off, replies carry no enhanced code (RFC 2034)."""
        self.connect(disabled=frozenset({"ENHANCEDSTATUSCODES"}))
        out = self.ehlo()
        self.assertNotIn(b"ENHANCEDSTATUSCODES", out)
        self.assertEqual(self.send(b"NOOP\r\n"), b"250 OK\r\n")
        self.assertEqual(self.send(b"RCPT TO:<alice@lab.test>\r\n"),
                         b"503 Need MAIL before RCPT\r\n")

    def test_implicitTLSNoStartTLS(self):
        """An implicit-TLS listener never advertises STARTTLS and offers AUTH PLAIN."""
        self.connect(tlsMode="implicit")
        out = self.ehlo()
        self.assertNotIn(b"STARTTLS", out)
        self.assertIn(b"AUTH PLAIN LOGIN", out)

    def test_helo(self):
        """HELO answers with one line and no extensions."""
        self.assertEqual(self.send(b"HELO client.example\r\n"),
                         b"250 mx.lab.test Hello client.example [192.168.1.1]\r\n")

    def test_heloNeedsArgument(self):
        """EHLO without a hostname is a syntax error."""
        self.assertEqual(self.send(b"EHLO\r\n"), b"501 5.5.4 Syntax: EHLO hostname\r\n")

    def test_unknownCommand(self):
        """An unknown command gets 500 and the session continues."""
        self.assertEqual(self.send(b"FOO bar\r\n"), b"500 5.5.2 Command unrecognized\r\n")
        self.assertEqual(self.send(b"NOOP\r\n"), b"250 2.0.0 OK\r\n")

    def test_bareLF(self):
        """Command lines ending in a bare LF (netcat) work."""
        self.assertEqual(self.send(b"NOOP\n"), b"250 2.0.0 OK\r\n")

    def test_vrfyDoesNotConfirm(self):
        """VRFY answers 252 for any address, known or not."""
        self.assertEqual(self.send(b"VRFY alice@lab.test\r\n"), self.send(b"VRFY nobody\r\n"))
        self.assertTrue(self.send(b"VRFY alice\r\n").startswith(b"252 2.5.0 "))

    def test_expnTurn(self):
        """EXPN and TURN are refused with 502."""
        self.assertTrue(self.send(b"EXPN staff\r\n").startswith(b"502 5.5.1"))
        self.assertTrue(self.send(b"TURN\r\n").startswith(b"502 5.5.1"))

    def test_help(self):
        """HELP answers 214 lines."""
        out = self.send(b"HELP\r\n")
        self.assertTrue(out.startswith(b"214-2.0.0 Commands:"))
        self.assertTrue(out.splitlines()[-1].startswith(b"214 2.0.0 "))

    def test_quit(self):
        """QUIT answers 221 and closes."""
        self.assertEqual(self.send(b"QUIT\r\n"), b"221 2.0.0 mx.lab.test closing connection\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_longCommandLine(self):
        """A command line over the limit gets 500 5.5.2; the next command works."""
        out = self.send(b"NOOP " + b"x" * 600 + b"\r\nNOOP\r\n")
        self.assertEqual(out, b"500 5.5.2 Line too long (limit 512 octets)\r\n"
                              b"250 2.0.0 OK\r\n")

    def test_longCommandLineInPieces(self):
        """An over-long line arriving in pieces is answered once, then dropped."""
        out = self.send(b"x" * 400) + self.send(b"y" * 400) + self.send(b"z" * 400)
        out += self.send(b"\r\nNOOP\r\n")
        self.assertEqual(out, b"500 5.5.2 Line too long (limit 512 octets)\r\n"
                              b"250 2.0.0 OK\r\n")

    def test_tooManyBadCommands(self):
        """After the bad-command limit the server says 421 and closes."""
        out = self.send(b"BAD\r\n" * 5)
        self.assertTrue(out.endswith(b"421 4.7.0 Too many errors, closing connection\r\n"))
        self.assertTrue(self.transport.disconnecting)

    def test_tooManyLongLines(self):
        """Over-long lines count as bad commands; the last allowed one gets only the 421."""
        out = self.send((b"x" * 600 + b"\r\n") * 5)
        self.assertEqual(out, b"500 5.5.2 Line too long (limit 512 octets)\r\n" * 4
                         + b"421 4.7.0 Too many errors, closing connection\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_timeout(self):
        """An idle session is closed with 421 4.4.2."""
        self.clock.advance(601)
        self.assertEqual(self.transport.value(),
                         b"421 4.4.2 mx.lab.test Timeout, closing connection\r\n")
        self.assertTrue(self.transport.disconnecting)


class TransactionTests(SMTPTestMixin, unittest.TestCase):
    """
    MAIL, RCPT, DATA and their ordering, parameters and limits.
    """

    def test_mailBeforeHelo(self):
        """MAIL before EHLO is a bad sequence."""
        self.assertEqual(self.send(b"MAIL FROM:<a@b.example>\r\n"),
                         b"503 5.5.1 Send HELO or EHLO first\r\n")

    def test_rcptBeforeMail(self):
        """RCPT before MAIL is a bad sequence."""
        self.ehlo()
        self.assertEqual(self.send(b"RCPT TO:<alice@lab.test>\r\n"),
                         b"503 5.5.1 Need MAIL before RCPT\r\n")

    def test_dataWithoutRecipients(self):
        """DATA with no accepted recipient is refused."""
        self.ehlo()
        self.send(b"MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(self.send(b"DATA\r\n"), b"554 5.5.1 No valid recipients\r\n")

    def test_mixedRecipients(self):
        """Unknown local user 550 5.1.1, relay 550 5.7.1, known user 250."""
        self.ehlo()
        out = self.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@lab.test>\r\n"
                        b"RCPT TO:<nobody@lab.test>\r\nRCPT TO:<x@elsewhere.example>\r\n"
                        b"RCPT TO:<bob@lab.test>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\n")
        self.assertEqual(out.split(b"\r\n")[:6], [
            b"250 2.1.0 Sender <a@b.example> OK",
            b"250 2.1.5 Recipient <alice@lab.test> OK",
            b"550 5.1.1 User unknown",
            b"550 5.7.1 Relay access denied",
            b"250 2.1.5 Recipient <bob@lab.test> OK",
            b"354 End data with <CR><LF>.<CR><LF>"])
        self.assertTrue(out.split(b"\r\n")[6].startswith(b"250 2.0.0 OK: queued as "))
        (sender, recipients, received, body), = self.policy.delivered
        self.assertEqual(recipients, [("alice@lab.test", "local"), ("bob@lab.test", "local")])
        self.assertEqual(body, b"Subject: hi\r\n\r\nbody\r\n")

    def test_lenientPaths(self):
        """A space after the colon and a path without brackets are accepted."""
        self.ehlo()
        self.assertEqual(self.send(b"MAIL FROM: a@b.example\r\n"),
                         b"250 2.1.0 Sender <a@b.example> OK\r\n")
        self.assertEqual(self.send(b"rcpt to: <Alice@LAB.test>\r\n"),
                         b"550 5.1.1 User unknown\r\n")

    def test_badPath(self):
        """A malformed address is a 501 and the session continues."""
        self.ehlo()
        self.assertEqual(self.send(b"MAIL FROM:<no-at-sign>\r\n"),
                         b"501 5.5.4 address must be local-part@domain\r\n")
        self.assertEqual(self.send(b"MAIL TO:<a@b.example>\r\n"),
                         b"501 5.5.4 syntax is MAIL FROM:<address>\r\n")

    def test_nestedMail(self):
        """A second MAIL in a transaction is refused."""
        self.ehlo()
        self.send(b"MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(self.send(b"MAIL FROM:<a@b.example>\r\n"),
                         b"503 5.5.1 Nested MAIL command\r\n")

    def test_nullSender(self):
        """MAIL FROM:<> (bounces) is accepted."""
        self.ehlo()
        self.assertEqual(self.send(b"MAIL FROM:<>\r\n"), b"250 2.1.0 Sender <> OK\r\n")

    def test_sizeParameter(self):
        """SIZE over the limit gets 552 5.3.4 at MAIL time; under it is fine."""
        self.ehlo()
        self.assertEqual(self.send(b"MAIL FROM:<a@b.example> SIZE=2001\r\n"),
                         b"552 5.3.4 Message size exceeds fixed limit of 2000 octets\r\n")
        self.assertEqual(self.send(b"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME\r\n"),
                         b"250 2.1.0 Sender <a@b.example> OK\r\n")

    def test_unknownParameter(self):
        """Unknown MAIL and RCPT parameters get 555 5.5.4."""
        self.ehlo()
        self.assertEqual(self.send(b"MAIL FROM:<a@b.example> SMTPUTF8\r\n"),
                         b"555 5.5.4 Unsupported parameter SMTPUTF8\r\n")
        self.send(b"MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(self.send(b"RCPT TO:<alice@lab.test> NOTIFY=NEVER\r\n"),
                         b"555 5.5.4 Unsupported parameter NOTIFY\r\n")

    def test_badBody(self):
        """BODY must be 7BIT or 8BITMIME."""
        self.ehlo()
        self.assertEqual(self.send(b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n"),
                         b"501 5.5.4 BODY must be 7BIT or 8BITMIME\r\n")

    def test_heloHasNoParameters(self):
        """After HELO (not EHLO), ESMTP parameters are refused."""
        self.send(b"HELO client.example\r\n")
        self.assertEqual(self.send(b"MAIL FROM:<a@b.example> SIZE=10\r\n"),
                         b"555 5.5.4 Unsupported parameter SIZE\r\n")

    def test_tooManyRecipients(self):
        """Recipients beyond the limit get 452 4.5.3."""
        self.ehlo()
        self.send(b"MAIL FROM:<a@b.example>\r\n")
        out = self.send(b"RCPT TO:<alice@lab.test>\r\n" * 4)
        self.assertTrue(out.endswith(b"452 4.5.3 Too many recipients\r\n"))

    def test_rset(self):
        """RSET forgets the envelope."""
        self.ehlo()
        self.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@lab.test>\r\n")
        self.assertEqual(self.send(b"RSET\r\n"), b"250 2.0.0 OK\r\n")
        self.assertEqual(self.send(b"DATA\r\n"), b"503 5.5.1 Need MAIL before DATA\r\n")

    def test_submissionNeedsAuth(self):
        """On submission, MAIL before AUTH gets 530 5.7.0."""
        self.connect(submission=True)
        self.ehlo()
        self.assertEqual(self.send(b"MAIL FROM:<alice@lab.test>\r\n"),
                         b"530 5.7.0 Authentication required\r\n")


class DataTests(SMTPTestMixin, unittest.TestCase):
    """
    The DATA body: end marker, dot-unstuffing, smuggling, limits.
    """

    def startData(self):
        self.ehlo()
        out = self.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@lab.test>\r\nDATA\r\n")
        self.assertTrue(out.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n"))

    def test_dotUnstuffing(self):
        """A leading dot is removed; '..' becomes '.'."""
        self.startData()
        self.send(b"..hidden\r\n.x\r\nend\r\n.\r\n")
        self.assertEqual(self.policy.delivered[0][3], b".hidden\r\nx\r\nend\r\n")

    def test_bodySplitAcrossPackets(self):
        """The end marker split over packets is still found."""
        self.startData()
        out = b""
        for piece in (b"line one\r", b"\nline two\r\n", b".", b"\r", b"\n"):
            out += self.send(piece)
        self.assertTrue(out.startswith(b"250 2.0.0 OK"))
        self.assertEqual(self.policy.delivered[0][3], b"line one\r\nline two\r\n")

    def test_smuggling(self):
        """<LF>.<LF>, <LF>.<CRLF>, <CR>.<CR>, <CRLF>.<LF> never end DATA."""
        self.startData()
        body = (b"one\n.\nMAIL FROM:<evil@x.example>\r\n"
                b"two\n.\r\nRCPT TO:<bob@lab.test>\r\n"
                b"three\r.\rDATA\r\n"
                b"four\r\n.\nQUIT\r\n")
        out = self.send(body)
        self.assertEqual(out, b"")
        self.assertEqual(self.policy.delivered, [])
        out = self.send(b".\r\n")
        self.assertTrue(out.startswith(b"250 2.0.0 OK"))
        self.assertEqual(len(self.policy.delivered), 1)
        stored = self.policy.delivered[0][3]
        self.assertIn(b"MAIL FROM:<evil@x.example>\r\n", stored)
        self.assertIn(b"QUIT\r\n", stored)
        self.assertNotIn(b"\n", stored.replace(b"\r\n", b""))

    def test_bareNewlineRejected(self):
        """With bare_newline = reject, a bare LF in DATA refuses the message."""
        self.connect(bareNewline="reject")
        self.startData()
        out = self.send(b"one\ntwo\r\n.\r\n")
        self.assertEqual(out, b"554 5.6.0 Message contains a bare CR or LF; not accepted\r\n")
        self.assertEqual(self.policy.delivered, [])
        self.assertEqual(self.send(b"NOOP\r\n"), b"250 2.0.0 OK\r\n")

    def test_oversizeBody(self):
        """A body over the size limit gets 552 5.3.4 and is not delivered."""
        self.startData()
        out = self.send(b"x" * 70 + b"\r\n") + self.send(b"y" * 70 + b"\r\n" * 30)
        out += self.send(b"\r\n".join([b"z" * 70] * 30) + b"\r\n.\r\n")
        self.assertEqual(out, b"552 5.3.4 Message size exceeds fixed limit of 2000 octets\r\n")
        self.assertEqual(self.policy.delivered, [])

    def test_longDataLine(self):
        """A DATA line over 1000 octets: error after the end, body never run."""
        self.startData()
        out = self.send(b"a" * 1500 + b"QUIT\r\nRSET\r\n.\r\n")
        self.assertEqual(out, b"500 5.6.0 Message has a line longer than 1000 octets; "
                              b"not accepted\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.policy.delivered, [])

    def test_longDataLineInPieces(self):
        """An endless line in many packets is not buffered and not executed."""
        self.startData()
        for _ in range(50):
            self.assertEqual(self.send(b"b" * 1000), b"")
        self.assertLess(self.server.pendingInput(), 4000)
        out = self.send(b"\r\nQUIT\r\n.\r\n")
        self.assertTrue(out.startswith(b"500 5.6.0 "), out)

    def test_pipelinedAfterData(self):
        """Commands pipelined after the end of DATA run after the reply."""
        self.startData()
        out = self.send(b"hi\r\n.\r\nNOOP\r\n")
        lines = out.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"250 2.0.0 OK: queued"))
        self.assertEqual(lines[1], b"250 2.0.0 OK")

    def test_waitsForDurableDelivery(self):
        """250 is sent only when delivery has finished; commands wait behind it."""
        self.policy.pending = defer.Deferred()
        self.startData()
        self.assertEqual(self.send(b"hi\r\n.\r\nNOOP\r\n"), b"")
        self.policy.pending.callback(None)
        out = self.transport.value().split(b"\r\n")
        self.assertTrue(out[0].startswith(b"250 2.0.0 OK: queued"))
        self.assertEqual(out[1], b"250 2.0.0 OK")

    def test_deliveryFailure(self):
        """A delivery error gives 451 4.3.0 and the session goes on."""
        self.policy.pending = defer.fail(OSError("disk full"))
        self.startData()
        self.assertEqual(self.send(b"hi\r\n.\r\n"),
                         b"451 4.3.0 Local error in processing; please try again\r\n")
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(self.send(b"NOOP\r\n"), b"250 2.0.0 OK\r\n")

    def test_receivedHeader(self):
        """The Received header names the client, us, the protocol and the recipient."""
        self.startData()
        self.send(b"hi\r\n.\r\n")
        received = self.policy.delivered[0][2].decode()
        self.assertTrue(received.startswith("Received: from client.example ("))
        self.assertIn("by mx.lab.test (mailstack) with ESMTP id ", received)
        self.assertIn("for <alice@lab.test>;", received)
        self.assertTrue(received.endswith("\r\n"))
        self.assertNotIn("\n\n", received)


class StartTLSTests(SMTPTestMixin, unittest.TestCase):
    """
    STARTTLS: injection discarded, state reset.
    """

    def test_pipelinedInjectionDiscarded(self):
        """Commands pipelined after STARTTLS are not executed."""
        self.ehlo()
        out = self.send(b"STARTTLS\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<alice@lab.test>\r\n")
        self.assertEqual(out, b"220 2.0.0 Ready to start TLS\r\n")
        self.assertEqual(self.transport.tlsStarted, b"220 2.0.0 Ready to start TLS\r\n")
        # After the handshake the client must say EHLO again; no envelope survived.
        self.assertEqual(self.send(b"RCPT TO:<alice@lab.test>\r\n"),
                         b"503 5.5.1 Need MAIL before RCPT\r\n")
        self.assertEqual(self.send(b"MAIL FROM:<a@b.example>\r\n"),
                         b"503 5.5.1 Send HELO or EHLO first\r\n")

    def test_afterTLS(self):
        """After STARTTLS, EHLO offers AUTH PLAIN and no STARTTLS."""
        self.ehlo()
        self.send(b"STARTTLS\r\n")
        out = self.ehlo()
        self.assertNotIn(b"STARTTLS", out)
        self.assertIn(b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n", out)
        self.assertEqual(self.send(b"STARTTLS\r\n"), b"503 5.5.1 TLS already active\r\n")

    def test_startTLSWithArgument(self):
        """STARTTLS takes no argument."""
        self.assertEqual(self.send(b"STARTTLS now\r\n"), b"501 5.5.4 Syntax: STARTTLS\r\n")


class AuthTests(SMTPTestMixin, unittest.TestCase):
    """
    AUTH PLAIN, LOGIN, CRAM-MD5 and their failure modes.
    """

    settings = dict(SMTPTestMixin.settings, tlsMode="implicit", authFailuresDelay=2,
                    authFailuresDisconnect=3)

    def plain(self, user, password, authzid=b""):
        return base64.b64encode(authzid + b"\0" + user + b"\0" + password)

    def test_clientLeftDuringCheck(self):
        """A client gone while its password is checked: the avatar is let go, no 235 is sent."""
        checks, loggedOut = [], []

        class SlowPortal:
            def login(self, credentials, mind, *interfaces):
                checks.append((defer.Deferred(), interfaces[0]))
                return checks[-1][0]
        self.portal = SlowPortal()
        self.connect()
        self.ehlo()
        self.send(b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"secret") + b"\r\n")
        self.server.connectionLost(None)
        self.transport.clear()
        d, interface = checks[0]
        _, avatar, _ = SubmitterRealm().requestAvatar("alice@lab.test", None, interface)
        d.callback((interface, avatar, lambda: loggedOut.append(1)))
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(loggedOut, [1])

    def test_bareAuth(self):
        """AUTH with no mechanism is a syntax error, not a crash."""
        self.ehlo()
        self.assertEqual(self.send(b"AUTH\r\n"),
                         b"501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n")

    def test_authBeforeEhlo(self):
        """AUTH needs EHLO first."""
        self.assertEqual(self.send(b"AUTH PLAIN\r\n"), b"503 5.5.1 Send EHLO first\r\n")

    def test_unknownMechanism(self):
        """An unknown mechanism gets 504."""
        self.ehlo()
        self.assertEqual(self.send(b"AUTH GSSAPI\r\n"),
                         b"504 5.5.4 Unrecognized authentication type\r\n")

    def test_plainInitialResponse(self):
        """AUTH PLAIN with an initial response logs in."""
        self.ehlo()
        out = self.send(b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"secret") + b"\r\n")
        self.assertEqual(out, b"235 2.7.0 Authentication successful\r\n")
        self.assertEqual(self.send(b"MAIL FROM:<alice@lab.test>\r\n"),
                         b"250 2.1.0 Sender <alice@lab.test> OK\r\n")

    def test_plainChallenge(self):
        """AUTH PLAIN without initial response sends an empty 334 challenge."""
        self.ehlo()
        self.assertEqual(self.send(b"AUTH PLAIN\r\n"), b"334 \r\n")
        self.assertEqual(self.send(self.plain(b"alice@lab.test", b"secret") + b"\r\n"),
                         b"235 2.7.0 Authentication successful\r\n")

    def test_malformedPlain(self):
        """Malformed PLAIN payloads get 501, not a crash."""
        self.ehlo()
        self.assertEqual(self.send(b"AUTH PLAIN !!!notbase64\r\n"),
                         b"501 5.5.2 Invalid base64 data in AUTH response\r\n")
        self.assertEqual(self.send(b"AUTH PLAIN " + base64.b64encode(b"no-nuls") + b"\r\n"),
                         b"501 5.5.2 Malformed AUTH PLAIN response\r\n")
        self.assertEqual(self.send(b"NOOP\r\n"), b"250 2.0.0 OK\r\n")

    def test_cancel(self):
        """'*' cancels the exchange."""
        self.ehlo()
        self.send(b"AUTH LOGIN\r\n")
        self.assertEqual(self.send(b"*\r\n"), b"501 5.0.0 Authentication cancelled\r\n")

    def test_login(self):
        """AUTH LOGIN asks for user and password."""
        self.ehlo()
        self.assertEqual(self.send(b"AUTH LOGIN\r\n"), b"334 VXNlcm5hbWU6\r\n")
        self.assertEqual(self.send(base64.b64encode(b"alice@lab.test") + b"\r\n"),
                         b"334 UGFzc3dvcmQ6\r\n")
        self.assertEqual(self.send(base64.b64encode(b"secret") + b"\r\n"),
                         b"235 2.7.0 Authentication successful\r\n")

    def test_longLineEndsExchange(self):
        """A line over 12,288 octets + CRLF during AUTH ends the exchange with 500 5.5.6 (RFC 4954)."""
        self.ehlo()
        self.send(b"AUTH LOGIN\r\n")
        self.assertEqual(self.send(b"x" * 12289 + b"\r\n"),
                         b"500 5.5.6 Authentication Exchange line is too long\r\n")
        # The next line is a command again, not SASL data.
        self.assertEqual(self.send(b"NOOP\r\n"), b"250 2.0.0 OK\r\n")

    def test_longLineEndsExchangeInPieces(self):
        """An over-long AUTH line arriving in pieces gets one 500 5.5.6 and is dropped."""
        self.ehlo()
        self.send(b"AUTH PLAIN\r\n")
        self.assertEqual(self.send(b"A" * 8000), b"")
        self.assertEqual(self.send(b"A" * 8000),
                         b"500 5.5.6 Authentication Exchange line is too long\r\n")
        self.assertEqual(self.send(b"A" * 8000 + b"\r\nNOOP\r\n"), b"250 2.0.0 OK\r\n")

    def test_authResponseUpTo12288Octets(self):
        """RFC 4954 section 4: an AUTH response line of 12,288 octets + CRLF is SASL data (not 500)."""
        self.ehlo()
        self.assertEqual(self.send(b"AUTH PLAIN\r\n"), b"334 \r\n")
        response = self.plain(b"alice@lab.test", b"p" * (9216 - 16))
        self.assertEqual(len(response), 12288)
        self.assertEqual(self.send(response[:5000]), b"")
        self.assertEqual(self.send(response[5000:] + b"\r\n"),
                         b"535 5.7.8 Authentication credentials invalid\r\n")
        self.assertEqual(self.send(b"NOOP\r\n"), b"250 2.0.0 OK\r\n")

    def test_longAuthResponseLogsIn(self):
        """A long but legal response (a 9 KB LOGIN password) logs in."""
        password = b"x" * 9000
        checker = InMemoryUsernamePasswordDatabaseDontUse(**{"alice@lab.test": password})
        self.portal = Portal(SubmitterRealm(), [checker])
        self.connect(allowPlaintextAuth=True)
        self.ehlo()
        self.send(b"AUTH LOGIN\r\n")
        self.send(base64.b64encode(b"alice@lab.test") + b"\r\n")
        self.assertEqual(self.send(base64.b64encode(password) + b"\r\n"),
                         b"235 2.7.0 Authentication successful\r\n")

    def test_commandLineLimitUnchanged(self):
        """Outside an AUTH exchange the 512-octet command line limit still holds."""
        self.ehlo()
        self.assertEqual(self.send(b"AUTH PLAIN " + b"A" * 600 + b"\r\n"),
                         b"500 5.5.2 Line too long (limit 512 octets)\r\n")

    def test_cramMD5EmptyInitialResponse(self):
        """AUTH CRAM-MD5 = (an empty initial response) gets the challenge, as Dovecot's POP3 does."""
        self.ehlo()
        out = self.send(b"AUTH CRAM-MD5 =\r\n")
        self.assertTrue(out.startswith(b"334 "), out)
        challenge = base64.b64decode(out[4:].strip())
        digest = hmac.new(b"secret", challenge, hashlib.md5).hexdigest().encode()
        self.assertEqual(self.send(base64.b64encode(b"alice@lab.test " + digest) + b"\r\n"),
                         b"235 2.7.0 Authentication successful\r\n")

    def test_cramHiddenUnlessEveryUserPlain(self):
        """CRAM-MD5 is not offered while some user's secret is hashed; 504 if asked for."""
        self.policy.plaintext = False
        self.connect(allowPlaintextAuth=True)
        self.assertIn(b"250-AUTH PLAIN LOGIN\r\n", self.ehlo())
        self.assertEqual(self.send(b"AUTH CRAM-MD5\r\n"),
                         b"504 5.5.4 Unrecognized authentication type\r\n")

    def test_cramAlways(self):
        """challenge_auth = "always" offers CRAM-MD5 although some user's secret is hashed."""
        self.policy.plaintext = False
        self.connect(allowPlaintextAuth=True, challengeAuth="always")
        self.assertIn(b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n", self.ehlo())
        self.assertTrue(self.send(b"AUTH CRAM-MD5\r\n").startswith(b"334 "))

    def test_cramMD5(self):
        """CRAM-MD5 verifies the HMAC of the challenge."""
        self.ehlo()
        out = self.send(b"AUTH CRAM-MD5\r\n")
        self.assertTrue(out.startswith(b"334 "))
        challenge = base64.b64decode(out[4:].strip())
        self.assertTrue(challenge.startswith(b"<") and challenge.endswith(b"@mx.lab.test>"))
        digest = hmac.new(b"secret", challenge, hashlib.md5).hexdigest().encode()
        self.assertEqual(self.send(base64.b64encode(b"alice@lab.test " + digest) + b"\r\n"),
                         b"235 2.7.0 Authentication successful\r\n")

    def test_failuresGenericThenDelayedThenClosed(self):
        """
        Failures are generic; after the threshold each attempt waits (2 s, then
        4 s), the last one too, and it is answered 535 then 421 before the close.
        """
        self.connect(authFailuresDelay=1)
        self.ehlo()
        wrongUser = self.send(b"AUTH PLAIN " + self.plain(b"nobody@lab.test", b"x") + b"\r\n")
        self.assertEqual(wrongUser, b"535 5.7.8 Authentication credentials invalid\r\n")
        self.assertEqual(self.send(b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"x") + b"\r\n"),
                         b"")
        self.assertEqual(self.send(b"NOOP\r\n"), b"")
        self.clock.advance(2)
        self.assertEqual(self.transport.value(),
                         b"535 5.7.8 Authentication credentials invalid\r\n250 2.0.0 OK\r\n")
        self.assertEqual(self.send(b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"y") + b"\r\n"),
                         b"")
        self.clock.advance(3.9)
        self.assertEqual(self.transport.value(), b"")
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertEqual(self.transport.value(),
                         b"535 5.7.8 Authentication credentials invalid\r\n"
                         b"421 4.7.0 Too many authentication failures, closing\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_pipelinedAfterDelayedFailureStayInOrder(self):
        """
        With a checker that answers later (bcrypt runs in a thread), commands
        pipelined behind a delayed failure are answered in order, one after the
        other: a second AUTH after a success gets 503, MAIL waits for the 235.
        """
        checker = InMemoryUsernamePasswordDatabaseDontUse(**{"alice@lab.test": b"secret"})

        class SlowChecker:
            credentialInterfaces = checker.credentialInterfaces

            def requestAvatarId(innerSelf, credentials):
                d = task.deferLater(self.clock, 0.5, lambda: None)
                d.addCallback(lambda _: checker.requestAvatarId(credentials))
                return d
        self.portal = Portal(SubmitterRealm(), [SlowChecker()])
        self.connect(authFailuresDelay=1)
        self.ehlo()
        good = b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"secret") + b"\r\n"
        self.send(b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"x") + b"\r\n"
                  + good + good + b"MAIL FROM:<alice@lab.test>\r\nNOOP\r\n")
        for _ in range(20):
            self.clock.advance(0.5)
        self.assertEqual(self.transport.value().splitlines(), [
            b"535 5.7.8 Authentication credentials invalid",
            b"235 2.7.0 Authentication successful",
            b"503 5.5.1 Already authenticated",
            b"250 2.1.0 Sender <alice@lab.test> OK",
            b"250 2.0.0 OK"])

    def test_delayCancelledOnConnectionLost(self):
        """A client gone during the failure delay gets nothing written after it left."""
        self.server.connectionLost(None)  # the setUp session: only ours keeps timers
        self.connect(authFailuresDelay=1)
        self.ehlo()
        self.send(b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"x") + b"\r\n")
        self.send(b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"x") + b"\r\nNOOP\r\n")
        self.assertEqual(len([c for c in self.clock.getDelayedCalls() if c.active()]), 2)
        self.transport.clear()
        self.server.connectionLost(None)
        self.clock.advance(10)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])

    def test_pipelinedFailuresAllDelayed(self):
        """Pipelined failed AUTHs each wait their turn: no failure is answered early."""
        self.connect(authFailuresDelay=1, authFailuresDisconnect=5)
        self.ehlo()
        bad = b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"x") + b"\r\n"
        self.send(bad * 4)
        answeredAt = {self.transport.value().count(b"535 "): 0}
        for second in range(1, 16):
            self.clock.advance(1)
            answeredAt.setdefault(self.transport.value().count(b"535 "), second)
        # The first at once, then after waits of 2, 4 and 8 s, never two at once.
        self.assertEqual(answeredAt, {1: 0, 2: 2, 3: 6, 4: 14})

    def test_senderMismatch(self):
        """An authenticated user may not use another envelope sender."""
        self.ehlo()
        self.send(b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"secret") + b"\r\n")
        self.assertEqual(self.send(b"MAIL FROM:<bob@lab.test>\r\n"), b"553 5.7.1 not yours\r\n")

    def test_plaintextNeedsTLS(self):
        """Before TLS on a production listener, PLAIN gets 538 5.7.11."""
        self.connect(tlsMode="starttls")
        self.ehlo()
        self.assertEqual(self.send(b"AUTH PLAIN\r\n"),
                         b"538 5.7.11 Encryption required for requested authentication mechanism\r\n")

    def test_alreadyAuthenticated(self):
        """A second AUTH is refused."""
        self.ehlo()
        self.send(b"AUTH PLAIN " + self.plain(b"alice@lab.test", b"secret") + b"\r\n")
        self.assertEqual(self.send(b"AUTH PLAIN\r\n"), b"503 5.5.1 Already authenticated\r\n")


class HandlerFaultTests(SMTPTestMixin, unittest.TestCase):
    """
    What the other engines already did: a fault in a command handler is a
    temporary error for the client, and STARTTLS only where TLS can start.
    """

    def test_exceptionInHandler(self):
        """A handler that raises: 451 4.3.0, logged, and the session goes on."""
        self.ehlo()

        def broken(*args):
            raise RuntimeError("policy bug")
        self.policy.checkSender = broken
        self.assertEqual(self.send(b"MAIL FROM:<alice@lab.test>\r\n"),
                         b"451 4.3.0 Local error in processing; please try again\r\n")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.send(b"NOOP\r\n"), b"250 2.0.0 OK\r\n")
        self.assertFalse(self.transport.disconnecting)

    def test_noStartTLSWithoutContext(self):
        """A starttls listener with no TLS context neither offers STARTTLS nor starts it."""
        self.connect(tlsContext=None)
        self.assertNotIn(b"STARTTLS", self.ehlo())
        self.assertEqual(self.send(b"STARTTLS\r\n"), b"454 4.7.0 TLS not available\r\n")
