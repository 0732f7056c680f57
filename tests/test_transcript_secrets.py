"""
Transcripts of real SMTP, POP3 and IMAP sessions (the engines behind
L{TranscriptFactory}, over a StringTransport): secrets are hidden because the
engines mark what they read as secret (L{mailstack.protocol.secrets}), however
the client sends them: pipelined, split across lines, out of turn, or after
garbage on the same line.
"""

import base64
import hashlib
import re

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from mailstack.imap.server import IMAPFactory, IMAPSettings
from mailstack.pop3.server import POP3Factory, POP3Settings
from mailstack.smtp.server import SMTPFactory, SMTPSettings
from mailstack.transcript import TranscriptFactory
from mailstack.smtp.delivery import SMTPPolicy
from tests.test_sasl_conformance import COMMON, PortalMixin

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "


def b64(data):
    return base64.b64encode(data)


class SecretTranscriptTests(PortalMixin, unittest.TestCase):
    """
    What the transcript of a session records of the client's secrets.
    """

    def factory(self, name):
        if name == "smtp":
            policy = SMTPPolicy(["lab.test"], self.users, self.store)
            inner = SMTPFactory(SMTPSettings(**COMMON), policy, self.portal, self.reactor)
        elif name == "pop3":
            inner = POP3Factory(POP3Settings(**COMMON), self.portal,
                                self.users.allPlaintextSecrets, self.reactor)
        else:
            inner = IMAPFactory(IMAPSettings(**COMMON), self.portal, self.reactor,
                                self.users.allPlaintextSecrets)
        return TranscriptFactory(inner, self.mktemp(), name, clock=self.reactor)

    def session(self, name, *chunks):
        """
        Send each chunk (a separate read) and close.

        @return: the client lines recorded, and everything the server said.
        """
        peer = IPv4Address("TCP", "192.0.2.7", 4000)
        p = self.factory(name).buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        p.makeConnection(transport)
        for chunk in chunks:
            p.dataReceived(chunk)
        p.connectionLost(Failure(ConnectionDone()))
        with open(p.transcript.path, encoding="utf-8") as f:
            lines = [re.sub("^" + TIMESTAMP, "", line) for line in f.read().splitlines()]
        return [line[3:] for line in lines if line.startswith("C: ")], transport.value()

    def test_everySplitPoint(self):
        """The same lines are recorded, secrets hidden, however the client's input is cut in two reads."""
        sessions = {
            "smtp": b"EHLO x\r\nAUTH LOGIN\r\n" + b64(b"demo") + b"\r\n" + b64(b"demo")
                    + b"\r\nMAIL FROM:<demo@lab.test>\r\n",
            "pop3": b"USER demo\r\nPASS demo\r\nxx PASS Tulip\r\nSTAT\r\n",
            "imap": b"a LOGIN demo {4+}\r\ndemo\r\nb NOOP\r\n",
        }
        for name, data in sessions.items():
            whole, _ = self.session(name, data)
            self.assertIn("***", "\n".join(whole))
            for cut in range(1, len(data)):
                client, _ = self.session(name, data[:cut], data[cut:])
                self.assertEqual(client, whole, (name, cut))

    def assertHidden(self, secret, name, *chunks):
        """C{secret} (and its base64) appears in no recorded line."""
        client, server = self.session(name, *chunks)
        text = "\n".join(client)
        for form in (secret, b64(secret)):
            self.assertNotIn(form.decode(), text)
        return client, server

    # -- SMTP ------------------------------------------------------------------

    def test_smtpInitialResponse(self):
        """SMTP: AUTH PLAIN's initial response is hidden; the mechanism is kept."""
        client, _ = self.session("smtp", b"EHLO x\r\n",
                                 b"AUTH PLAIN " + b64(b"\0demo\0demo") + b"\r\n")
        self.assertEqual(client, ["EHLO x", "AUTH PLAIN ***"])

    def test_smtpPipelinedExchange(self):
        """SMTP: a whole AUTH LOGIN pipelined in one read: its lines hidden, the next command kept."""
        client, _ = self.session("smtp", b"EHLO x\r\nAUTH LOGIN\r\n" + b64(b"demo") + b"\r\n"
                                 + b64(b"demo") + b"\r\nMAIL FROM:<demo@lab.test>\r\n")
        self.assertEqual(client, ["EHLO x", "AUTH LOGIN", "***", "***",
                                  "MAIL FROM:<demo@lab.test>"])

    def test_smtpCredentialsOutOfTurn(self):
        """SMTP: base64 credentials sent after a refused AUTH LOGIN (as commands) are hidden."""
        password = b"Tulip42x"
        client, server = self.assertHidden(
            password, "smtp", b"AUTH LOGIN\r\n", b64(b"demo@lab.test") + b"\r\n",
            b64(password) + b"\r\n", b"EHLO x\r\n")
        self.assertIn(b"503 5.5.1 Send EHLO first", server)
        self.assertEqual(client, ["AUTH LOGIN", "***", "***", "EHLO x"])

    def test_smtpCredentialsAfterCancel(self):
        """SMTP: the password sent after the exchange was cancelled is hidden."""
        self.assertHidden(b"Tulip42x", "smtp", b"EHLO x\r\n", b"AUTH LOGIN\r\n",
                          b64(b"demo") + b"\r\n", b"*\r\n", b64(b"Tulip42x") + b"\r\n")

    def test_smtpLongLineThenAuth(self):
        """SMTP: after an over-long AUTH line, the next AUTH's credentials are hidden too."""
        client, _ = self.session("smtp", b"EHLO x\r\nAUTH PLAIN\r\n", b"A" * 13000 + b"\r\n",
                                 b"AUTH LOGIN\r\n", b64(b"demo") + b"\r\n",
                                 b64(b"demo") + b"\r\n")
        self.assertEqual(client[-3:], ["AUTH LOGIN", "***", "***"])

    def test_smtpMessageKept(self):
        """SMTP: after login, commands and message content are recorded as sent."""
        client, _ = self.session(
            "smtp", b"EHLO x\r\nAUTH PLAIN " + b64(b"\0demo\0demo") + b"\r\n",
            b"MAIL FROM:<demo@lab.test>\r\nRCPT TO:<x@example.org>\r\nBOGUS\r\n")
        self.assertEqual(client, ["EHLO x", "AUTH PLAIN ***", "MAIL FROM:<demo@lab.test>",
                                  "RCPT TO:<x@example.org>", "BOGUS"])

    # -- POP3 ------------------------------------------------------------------

    def test_pop3Pass(self):
        """POP3: PASS's argument is hidden, USER's kept."""
        client, _ = self.session("pop3", b"USER demo\r\n", b"PASS demo\r\n", b"STAT\r\n")
        self.assertEqual(client, ["USER demo", "PASS ***", "STAT"])

    def test_pop3PassInWrongState(self):
        """POP3: PASS is hidden even when it is refused (no USER first)."""
        client, _ = self.session("pop3", b"PASS Tulip42x\r\n")
        self.assertEqual(client, ["PASS ***"])

    def test_pop3Apop(self):
        """POP3: APOP's digest is hidden, the user kept."""
        digest = hashlib.md5(b"<x>demo").hexdigest().encode()
        client, _ = self.session("pop3", b"APOP demo " + digest + b"\r\n")
        self.assertEqual(client, ["APOP demo ***"])

    def test_pop3GarbagePrefix(self):
        """POP3: a PASS after garbage on the same line (an unknown command) is hidden."""
        client, server = self.assertHidden(b"Tulip42x", "pop3", b"USER demo\r\n",
                                           b"xx PASS Tulip42x\r\n")
        self.assertEqual(client, ["USER demo", "***"])

    def test_pop3CredentialsOutOfTurn(self):
        """POP3: base64 credentials sent after a cancelled AUTH LOGIN are hidden, in the reply too."""
        password = b"Tulip42x"
        client, server = self.assertHidden(
            password, "pop3", b"AUTH LOGIN\r\n", b"*\r\n", b64(b"demo") + b"\r\n",
            b64(password) + b"\r\n")
        self.assertEqual(client, ["AUTH LOGIN", "***", "***", "***"])
        self.assertNotIn(b64(password).upper(), server)

    def test_pop3LongLineThenAuth(self):
        """POP3: after an over-long SASL line, the credentials of the next AUTH are hidden."""
        client, _ = self.session("pop3", b"AUTH PLAIN\r\n", b"A" * 70000 + b"\r\n",
                                 b"AUTH LOGIN\r\n", b64(b"demo") + b"\r\n",
                                 b64(b"demo") + b"\r\n", b"STAT\r\n")
        self.assertEqual(client[-4:], ["AUTH LOGIN", "***", "***", "STAT"])

    # -- IMAP ------------------------------------------------------------------

    def test_imapLogin(self):
        """IMAP: LOGIN's password is hidden, the user kept; later commands kept."""
        client, _ = self.session("imap", b"a LOGIN demo demo\r\nb SELECT INBOX\r\n")
        self.assertEqual(client, ["a LOGIN demo ***", "b SELECT INBOX"])

    def test_imapLoginLiterals(self):
        """IMAP: LOGIN split across lines by literals: every argument line is hidden."""
        client, server = self.assertHidden(
            b"Tulip42x", "imap", b"a LOGIN {4}\r\n", b"demo {8}\r\n", b"Tulip42x\r\n",
            b"b NOOP\r\n")
        self.assertEqual(client, ["a LOGIN ***", "***", "***", "b NOOP"])
        self.assertEqual(server.count(b"+ Ready"), 2)

    def test_imapLoginLiteralWithLineBreak(self):
        """IMAP: a password literal holding a line break, sent in two reads, is hidden whole."""
        client, _ = self.session("imap", b"a LOGIN demo {9}\r\n", b"Tulip\r\n", b"42\r\n",
                                 b"b NOOP\r\n")
        self.assertEqual(client, ["a LOGIN demo ***", "***", "***", "b NOOP"])

    def test_imapLoginSplitAcrossLines(self):
        """IMAP: a LOGIN whose password comes on the next line (no literal) is hidden, in the reply too."""
        client, server = self.assertHidden(b"Tulip42x", "imap", b"a LOGIN demo\r\n",
                                           b"Tulip42x\r\n")
        self.assertEqual(client, ["a LOGIN ***", "***"])
        self.assertNotIn(b"Tulip42x", server)

    def test_imapGarbagePrefix(self):
        """IMAP: a LOGIN after garbage on the same line (an unknown command) is hidden."""
        client, _ = self.assertHidden(b"Tulip42x", "imap",
                                      b"xyz a LOGIN demo Tulip42x\r\n")
        self.assertEqual(client, ["***"])

    def test_imapAuthenticate(self):
        """IMAP: AUTHENTICATE's initial response and its exchange lines are hidden."""
        client, _ = self.session(
            "imap", b"a AUTHENTICATE PLAIN " + b64(b"\0demo\0demo") + b"\r\n",
            b"b LOGOUT\r\n")
        self.assertEqual(client, ["a AUTHENTICATE PLAIN ***", "b LOGOUT"])
        client, _ = self.session("imap", b"a AUTHENTICATE LOGIN\r\n" + b64(b"demo") + b"\r\n"
                                 + b64(b"demo") + b"\r\nb NOOP\r\n")
        self.assertEqual(client, ["a AUTHENTICATE LOGIN", "***", "***", "b NOOP"])

    def test_imapCredentialsOutOfTurn(self):
        """IMAP: base64 credentials sent after a cancelled AUTHENTICATE are hidden, in the reply too."""
        client, server = self.assertHidden(
            b"Tulip42x", "imap", b"a AUTHENTICATE LOGIN\r\n", b"*\r\n",
            b64(b"demo") + b"\r\n", b64(b"Tulip42x") + b"\r\n")
        self.assertEqual(client, ["a AUTHENTICATE LOGIN", "***", "***", "***"])
        self.assertNotIn(b64(b"Tulip42x"), server)

    def test_imapAppendKept(self):
        """IMAP: after login, an APPEND literal is recorded as sent."""
        client, _ = self.session("imap", b"a LOGIN demo demo\r\n",
                                 b"b APPEND INBOX {11}\r\n", b"hello world\r\n")
        self.assertEqual(client, ["a LOGIN demo ***", "b APPEND INBOX {11}", "hello world"])


