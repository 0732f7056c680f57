"""
End-to-end SMTP: the real service from a config on loopback, driven by the
standard library's smtplib (and raw sockets where smtplib is too polite), with
real TLS and a real Maildir.
"""

import glob
import os
import smtplib
import socket

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import E2EMixin, listenerTOML

LISTENERS = (
    listenerTOML("smtp", tls="starttls", name="mta", allow_plaintext_auth=True)
    + listenerTOML("submission", tls="starttls", name="submission")
    + listenerTOML("submission", tls="implicit", name="submissions"))

MESSAGE = (b"From: Kim <kim@example.com>\r\n"
           b"To: demo@lab.test\r\n"
           b"Subject: lab 1\r\n"
           b"\r\n"
           b"Hello from the lab.\r\n"
           b".leading dot survives\r\n")


class SMTPTestCase(E2EMixin, unittest.TestCase):
    listeners = LISTENERS
    limits = "message_size = 100000"

    def stored(self, address="demo@lab.test"):
        files = self.files(address)
        self.assertEqual(len(files), 1, files)
        with open(files[0], "rb") as f:
            return f.read()

    def client(self, name="mta", implicit=False):
        if implicit:
            c = smtplib.SMTP_SSL("127.0.0.1", self.port(name), context=self.tlsContext(),
                                 timeout=10)
        else:
            c = smtplib.SMTP("127.0.0.1", self.port(name), timeout=10)
        return c


class MTATests(SMTPTestCase):
    @defer.inlineCallbacks
    def test_localDelivery(self):
        """Mail for a local user is stored, fsynced, in the user's Maildir new/."""
        def send():
            c = self.client()
            refused = c.sendmail("kim@example.com", ["demo@lab.test"], MESSAGE)
            c.quit()
            return refused
        self.assertEqual((yield self.inThread(send)), {})
        stored = self.stored()
        self.assertTrue(stored.startswith(b"Return-Path: <kim@example.com>\r\nReceived: from "))
        self.assertTrue(stored.endswith(MESSAGE), stored)
        (path,) = self.files()
        self.assertEqual(os.path.basename(os.path.dirname(path)), "new")
        self.assertIn(",S=%d" % (len(stored),), os.path.basename(path))

    @defer.inlineCallbacks
    def test_noOpenRelay(self):
        """An unauthenticated client cannot relay: 550 5.7.1, nothing stored."""
        def send():
            c = self.client()
            c.ehlo("client.example")
            c.mail("kim@example.com")
            reply = c.rcpt("victim@elsewhere.example")
            c.quit()
            return reply
        code, text = yield self.inThread(send)
        self.assertEqual(code, 550)
        self.assertTrue(text.startswith(b"5.7.1 "), text)
        self.assertEqual(glob.glob(os.path.join(self.directory, "var", "queue", "*", "*")), [])

    @defer.inlineCallbacks
    def test_unknownUser(self):
        """An unknown local recipient gets 550 5.1.1; known ones in the same mail still get it."""
        def send():
            c = self.client()
            refused = c.sendmail("kim@example.com", ["nobody@lab.test", "demo@lab.test"],
                                 MESSAGE)
            c.quit()
            return refused
        refused = yield self.inThread(send)
        self.assertEqual(list(refused), ["nobody@lab.test"])
        self.assertEqual(refused["nobody@lab.test"][0], 550)
        self.assertTrue(refused["nobody@lab.test"][1].startswith(b"5.1.1 "))
        self.assertTrue(self.stored().endswith(MESSAGE))

    @defer.inlineCallbacks
    def test_postmasterAlwaysAccepted(self):
        """
        RCPT TO:<postmaster> is accepted without a postmaster account (RFC 5321
        4.5.1) and kept in the postmaster Maildir; a duplicate RCPT gets one copy.
        """
        def send():
            c = self.client()
            refused = c.sendmail("kim@example.com", ["postmaster", "Postmaster@lab.test",
                                                     "demo@lab.test", "demo@lab.test"], MESSAGE)
            c.quit()
            return refused
        self.assertEqual((yield self.inThread(send)), {})
        self.assertTrue(self.stored("postmaster@lab.test").endswith(MESSAGE))
        self.assertTrue(self.stored("demo@lab.test").endswith(MESSAGE))

    @defer.inlineCallbacks
    def test_sizeLimit(self):
        """SIZE over the limit is refused at MAIL (552 5.3.4), and so is a big body."""
        def send():
            c = self.client()
            c.ehlo("client.example")
            declared = c.mail("kim@example.com", ["SIZE=200000"])
            c.rset()
            c.mail("kim@example.com")
            c.rcpt("demo@lab.test")
            body = c.data(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 2000)
            after = c.noop()
            c.quit()
            return declared, body, after
        declared, body, after = yield self.inThread(send)
        self.assertEqual(declared[0], 552)
        self.assertEqual(body[0], 552)
        self.assertTrue(body[1].startswith(b"5.3.4 "))
        self.assertEqual(after[0], 250)
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_startTLS(self):
        """STARTTLS on port 25-style listener upgrades the session; mail still flows."""
        def send():
            c = self.client()
            c.ehlo("client.example")
            before = c.has_extn("starttls")
            c.starttls(context=self.tlsContext())
            c.ehlo("client.example")
            after = c.has_extn("starttls")
            version = c.sock.version()
            c.sendmail("kim@example.com", ["demo@lab.test"], MESSAGE)
            c.quit()
            return before, after, version
        before, after, version = yield self.inThread(send)
        self.assertEqual((before, after), (True, False))
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.assertIn(b"(using %s with cipher " % (version.encode(),), self.stored())

    @defer.inlineCallbacks
    def test_startTLSDiscardsInjectedCommands(self):
        """
        Commands pipelined after STARTTLS in the same packet are dropped, not run
        after the handshake (CVE-2011-0411): the first reply over TLS is EHLO's.
        """
        def attack():
            sock = socket.create_connection(("127.0.0.1", self.port("mta")), timeout=10)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"EHLO x\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            sock.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n")
            ready = f.readline()
            tls = self.tlsContext().wrap_socket(sock, server_hostname="localhost")
            g = tls.makefile("rb")
            tls.sendall(b"RCPT TO:<demo@lab.test>\r\n")
            first = g.readline()
            tls.close()
            return ready, first
        ready, first = yield self.inThread(attack)
        self.assertTrue(ready.startswith(b"220 "))
        self.assertTrue(first.startswith(b"503 5.5.1 "), first)

    @defer.inlineCallbacks
    def test_pipelining(self):
        """A pipelined transaction is answered in order, reply for reply."""
        def send():
            sock = socket.create_connection(("127.0.0.1", self.port("mta")), timeout=10)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"EHLO x\r\nMAIL FROM:<kim@example.com>\r\nRCPT TO:<demo@lab.test>\r\n"
                         b"RCPT TO:<ghost@lab.test>\r\nDATA\r\n")
            replies = []
            while len(replies) < 5:
                line = f.readline()
                if not line.startswith(b"250-"):
                    replies.append(line[:3])
            sock.sendall(MESSAGE.replace(b"\r\n.", b"\r\n..") + b".\r\nQUIT\r\n")
            replies.append(f.readline()[:3])
            replies.append(f.readline()[:3])
            sock.close()
            return replies
        replies = yield self.inThread(send)
        self.assertEqual(replies, [b"250", b"250", b"250", b"550", b"354", b"250", b"221"])
        self.assertTrue(self.stored().endswith(MESSAGE))

    @defer.inlineCallbacks
    def test_smugglingNotAccepted(self):
        """<LF>.<LF> inside DATA does not end the message: no second message is smuggled."""
        def send():
            sock = socket.create_connection(("127.0.0.1", self.port("mta")), timeout=10)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"HELO x\r\n")
            f.readline()
            sock.sendall(b"MAIL FROM:<kim@example.com>\r\nRCPT TO:<demo@lab.test>\r\nDATA\r\n")
            for _ in range(3):
                f.readline()
            sock.sendall(b"Subject: one\r\n\r\nbody\n.\nMAIL FROM:<evil@example.com>\r\n"
                         b"RCPT TO:<demo@lab.test>\r\nDATA\r\nSubject: two\r\n\r\n.\r\n")
            reply = f.readline()
            sock.sendall(b"QUIT\r\n")
            f.readline()
            sock.close()
            return reply
        reply = yield self.inThread(send)
        self.assertTrue(reply.startswith(b"250 "), reply)
        self.assertEqual(len(self.files()), 1)
        stored = self.stored()
        self.assertIn(b"MAIL FROM:<evil@example.com>", stored)


class SubmissionTests(SMTPTestCase):
    @defer.inlineCallbacks
    def test_submissionNeedsAuth(self):
        """Submission refuses MAIL before AUTH with 530 5.7.0."""
        def send():
            c = self.client("submission")
            c.ehlo("client.example")
            reply = c.mail("demo@lab.test")
            c.quit()
            return reply
        code, text = yield self.inThread(send)
        self.assertEqual(code, 530)
        self.assertTrue(text.startswith(b"5.7.0 "), text)

    @defer.inlineCallbacks
    def test_noAuthBeforeTLS(self):
        """Without allow_plaintext_auth, AUTH is offered only after STARTTLS."""
        def session():
            c = self.client("submission")
            c.ehlo("client.example")
            before = c.has_extn("auth")
            refused = c.docmd("AUTH", "PLAIN AGRlbW8AZGVtbw==")
            c.starttls(context=self.tlsContext())
            c.ehlo("client.example")
            after = c.esmtp_features.get("auth", "")
            c.quit()
            return before, refused, after
        before, refused, after = yield self.inThread(session)
        self.assertFalse(before)
        self.assertEqual(refused[0], 538)
        self.assertTrue(refused[1].startswith(b"5.7.11 "), refused)
        self.assertIn("PLAIN", after.split())

    @defer.inlineCallbacks
    def test_submitAfterStartTLS(self):
        """AUTH PLAIN after STARTTLS, then mail from the user's own address is accepted."""
        def send():
            c = self.client("submission")
            c.starttls(context=self.tlsContext())
            c.login("demo", "demo")
            refused = c.sendmail("demo@lab.test", ["demo@lab.test"], MESSAGE)
            c.quit()
            return refused
        self.assertEqual((yield self.inThread(send)), {})
        stored = self.stored()
        self.assertIn(b"with ESMTPSA id ", stored)
        self.assertIn(b"(Authenticated sender: demo@lab.test)", stored)

    @defer.inlineCallbacks
    def test_badPasswordGeneric(self):
        """A wrong password and an unknown user get the same 535 5.7.8 reply."""
        def attempt(user, password):
            c = self.client("submissions", implicit=True)
            try:
                # One mechanism: smtplib tries each advertised one, and from
                # the 3rd failure from this address each attempt waits.
                c.ehlo("client.example")
                c.esmtp_features["auth"] = "PLAIN"
                c.login(user, password)
            except smtplib.SMTPAuthenticationError as e:
                return e.smtp_code, e.smtp_error
            finally:
                c.close()
        wrong = yield self.inThread(attempt, "demo@lab.test", "nope")
        unknown = yield self.inThread(attempt, "ghost@lab.test", "nope")
        self.assertEqual(wrong, unknown)
        self.assertEqual(wrong[0], 535)
        self.assertTrue(wrong[1].startswith(b"5.7.8 "), wrong)

    @defer.inlineCallbacks
    def test_implicitTLS(self):
        """Port 465 style: TLS from the first byte, no STARTTLS advertised, AUTH offered."""
        def send():
            c = self.client("submissions", implicit=True)
            c.ehlo("client.example")
            features = set(c.esmtp_features)
            c.login("demo@lab.test", "demo")
            c.sendmail("demo@lab.test", ["demo@lab.test"], MESSAGE)
            c.quit()
            return features
        features = yield self.inThread(send)
        self.assertNotIn("starttls", features)
        self.assertIn("auth", features)
        self.assertIn(b"with ESMTPSA id ", self.stored())

    @defer.inlineCallbacks
    def test_forgedSender(self):
        """An authenticated user cannot send as someone else: 553 5.7.1."""
        def send():
            c = self.client("submissions", implicit=True)
            c.login("demo@lab.test", "demo")
            c.ehlo("x")
            reply = c.mail("boss@lab.test")
            c.quit()
            return reply
        code, text = yield self.inThread(send)
        self.assertEqual(code, 553)
        self.assertTrue(text.startswith(b"5.7.1 "), text)

    @defer.inlineCallbacks
    def test_relayWithoutSmarthost(self):
        """An authenticated user's mail to another domain is refused when no smarthost is set."""
        def send():
            c = self.client("submissions", implicit=True)
            c.login("demo@lab.test", "demo")
            c.ehlo("x")
            c.mail("demo@lab.test")
            reply = c.rcpt("friend@elsewhere.example")
            c.quit()
            return reply
        code, text = yield self.inThread(send)
        self.assertEqual(code, 550)
        self.assertIn(b"no smarthost", text)


class TranscriptTests(SMTPTestCase):
    @defer.inlineCallbacks
    def test_passwordRedacted(self):
        """The lab transcript shows the session but not the AUTH payload."""
        def send():
            c = self.client("mta")
            c.ehlo("client.example")
            c.user, c.password = "demo", "demo"
            c.auth("PLAIN", c.auth_plain)
            c.quit()
        yield self.inThread(send)
        text = yield self.closedTranscript("smtp")
        self.assertIn(b"C: ehlo client.example", text)
        self.assertIn(b"S: 235 2.7.0 Authentication successful", text)
        self.assertIn(b"C: AUTH PLAIN ***", text)
        self.assertNotIn(b"AGRlbW8AZGVtbw", text)



def _rawSession(port, chunks, replies):
    """
    Send C{chunks} (each after reading the previous reply lines) on a raw socket
    and return every reply line read; C{replies[i]} is how many final reply lines
    to read after chunk i (the greeting is read first).
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")
    out = [f.readline()]
    try:
        for chunk, count in zip(chunks, replies):
            sock.sendall(chunk)
            while count:
                line = f.readline()
                if not line:
                    return out
                out.append(line)
                if line[3:4] != b"-":
                    count -= 1
        return out
    finally:
        sock.close()


class BadInputTests(SMTPTestCase):
    def session(self, chunks, replies, name="mta"):
        return self.inThread(_rawSession, self.port(name), chunks, replies)

    @defer.inlineCallbacks
    def test_bareAuthAndMalformedPlain(self):
        """Bare AUTH and a PLAIN payload without NULs get 501; the session goes on."""
        out = yield self.session(
            [b"EHLO x\r\n", b"AUTH\r\n", b"AUTH PLAIN bm8tbnVscw==\r\n",
             b"AUTH PLAIN !!!notbase64\r\n", b"NOOP\r\n"], [1, 1, 1, 1, 1])
        self.assertTrue(out[-4].startswith(b"501 5.5.4 "), out)
        self.assertTrue(out[-3].startswith(b"501 5.5.2 "), out)
        self.assertTrue(out[-2].startswith(b"501 5.5.2 "), out)
        self.assertEqual(out[-1], b"250 2.0.0 OK\r\n")

    @defer.inlineCallbacks
    def test_smugglingVariants(self):
        """
        None of <LF>.<LF>, <LF>.<CRLF>, <CR>.<CR>, <CRLF>.<LF> ends DATA: the
        commands after them are stored as text, one message is delivered.
        """
        body = (b"Subject: s\r\n\r\n"
                b"a\n.\nRSET\r\n"
                b"b\n.\r\nRSET\r\n"
                b"c\r.\rRSET\r\n"
                b"d\r\n.\nRSET\r\n"
                b".\r\n")
        out = yield self.session(
            [b"HELO x\r\n", b"MAIL FROM:<kim@example.com>\r\n", b"RCPT TO:<demo@lab.test>\r\n",
             b"DATA\r\n", body, b"QUIT\r\n"], [1, 1, 1, 1, 1, 1])
        self.assertEqual([line[:3] for line in out],
                         [b"220", b"250", b"250", b"250", b"354", b"250", b"221"])
        stored = self.stored()
        self.assertEqual(stored.count(b"RSET\r\n"), 4)
        self.assertEqual(len(self.files()), 1)

    @defer.inlineCallbacks
    def test_longDataLine(self):
        """
        A DATA line over 1000 octets: the body is read to its end, refused with
        500 5.6.0, nothing of it runs as a command, nothing is stored.
        """
        body = (b"Subject: long\r\n\r\n" + b"x" * 5000
                + b"\r\nRCPT TO:<demo@lab.test>\r\n.\r\n")
        out = yield self.session(
            [b"HELO x\r\n", b"MAIL FROM:<kim@example.com>\r\nRCPT TO:<demo@lab.test>\r\n",
             b"DATA\r\n", body, b"NOOP\r\n"], [1, 2, 1, 1, 1])
        self.assertTrue(out[-2].startswith(b"500 5.6.0 "), out)
        self.assertEqual(out[-1], b"250 2.0.0 OK\r\n")
        self.assertEqual(self.files(), [])

    @defer.inlineCallbacks
    def test_longCommandLine(self):
        """A command line over 512 octets gets 500 5.5.2 and the session goes on."""
        out = yield self.session([b"HELO " + b"x" * 600 + b"\r\n", b"NOOP\r\n"], [1, 1])
        self.assertTrue(out[1].startswith(b"500 5.5.2 "), out)
        self.assertEqual(out[2], b"250 2.0.0 OK\r\n")

    @defer.inlineCallbacks
    def test_bareLFCommands(self):
        """Commands ended by a bare LF (netcat) work; the body still needs CRLF.CRLF."""
        out = yield self.session(
            [b"HELO x\n", b"MAIL FROM:<kim@example.com>\n", b"RCPT TO:<demo@lab.test>\n",
             b"DATA\n", b"Subject: nc\r\n\r\nhi\r\n.\r\n", b"QUIT\n"], [1, 1, 1, 1, 1, 1])
        self.assertEqual([line[:3] for line in out],
                         [b"220", b"250", b"250", b"250", b"354", b"250", b"221"])
        self.assertTrue(self.stored().endswith(b"Subject: nc\r\n\r\nhi\r\n"))

    @defer.inlineCallbacks
    def test_tooManyRecipients(self):
        """Recipients beyond recipients_per_message get 452 4.5.3; the others are kept."""
        rcpts = b"".join(b"RCPT TO:<demo@lab.test>\r\n" for _ in range(101))
        out = yield self.session(
            [b"HELO x\r\n", b"MAIL FROM:<kim@example.com>\r\n", rcpts], [1, 1, 101])
        self.assertEqual(out[-2][:3], b"250")
        self.assertTrue(out[-1].startswith(b"452 4.5.3 "), out[-1])

    @defer.inlineCallbacks
    def test_byteForByte(self):
        """A message with 8-bit text and long-ish lines reads back exactly, after the trace headers."""
        message = (b"From: =?utf-8?q?K=C3=A9m?= <kim@example.com>\r\n"
                   b"Subject: \xc3\xa9t\xc3\xa9\r\n\r\n"
                   + b"".join(b"%04d " % i + b"y" * 900 + b"\r\n" for i in range(50))
                   + b"..double\r\n")
        def send():
            c = self.client()
            c.ehlo("x")
            c.mail("kim@example.com", ["BODY=8BITMIME"])
            c.rcpt("demo@lab.test")
            reply = c.data(message)
            c.quit()
            return reply
        code, _ = yield self.inThread(send)
        self.assertEqual(code, 250)
        stored = self.stored()
        self.assertTrue(stored.endswith(message), stored[-200:])
