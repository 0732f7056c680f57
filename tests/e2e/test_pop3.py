"""
End-to-end POP3: the real service from a config on loopback, driven by the
standard library's poplib (and raw sockets where poplib hides the wire), with
real TLS (STLS and implicit) and a real Maildir.
"""

import base64
import hashlib
import poplib
import socket
import time
import tracemalloc

from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from tests.helpers import E2EMixin, listenerTOML

LISTENERS = (
    listenerTOML("pop3", tls="starttls", name="pop3", allow_plaintext_auth=True)
    + listenerTOML("pop3", tls="implicit", name="pop3s")
    + listenerTOML("pop3", tls="starttls", name="pop3prod"))

TRICKY = (b".first line starts with a dot\r\n"
          b"Subject: dots\r\n"
          b"\r\n"
          b".\r\n"
          b"..two dots\r\n"
          b"a line\r\n"
          b".\r\n")


class POP3TestCase(E2EMixin, unittest.TestCase):
    listeners = LISTENERS

    def client(self, name="pop3"):
        return poplib.POP3("127.0.0.1", self.port(name), timeout=10)

    def loggedIn(self, name="pop3"):
        c = self.client(name)
        c.user("demo")
        c.pass_("demo")
        return c


def _retryInUse(login, attempts=100):
    """Log in, waiting for a previous session's lock to be released."""
    for _ in range(attempts):
        try:
            return login()
        except poplib.error_proto as e:
            if b"[IN-USE]" not in e.args[0]:
                raise
            time.sleep(0.05)
    raise AssertionError("maildrop still locked")


class LabListenerTests(POP3TestCase):
    """
    The lab listener (STLS offered, plaintext allowed) with poplib.
    """

    @defer.inlineCallbacks
    def test_userPassAndRetr(self):
        """USER/PASS, STAT, LIST, UIDL and RETR of a message delivered to the store."""
        self.deliver(TRICKY)

        def session():
            c = self.client()
            welcome = c.getwelcome()
            c.user("demo")
            c.pass_("demo")
            stat = c.stat()
            listing = c.list()
            uidl = c.uidl(1)
            response, lines, octets = c.retr(1)
            c.quit()
            return welcome, stat, listing, uidl, response, lines, octets
        welcome, stat, listing, uidl, response, lines, octets = yield self.inThread(session)
        self.assertRegex(welcome, rb"^\+OK mailstack POP3 server ready "
                                  rb"<\d+\.\d+\.[0-9a-f]+@mail\.lab\.test>$")
        self.assertEqual(stat, (1, len(TRICKY)))
        self.assertEqual(listing[1], [b"1 %d" % (len(TRICKY),)])
        info = self.inbox().messages()[0]
        self.assertEqual(uidl, b"+OK 1 %08x%08x" % (info.uid, self.inbox().uidValidity))
        self.assertEqual(response, b"+OK %d octets" % (len(TRICKY),))
        self.assertEqual(b"".join(line + b"\r\n" for line in lines), TRICKY)
        self.assertIn("\\Seen", self.inbox().messages()[0].flags)

    @defer.inlineCallbacks
    def test_apop(self):
        """poplib.apop() logs the {PLAIN} demo user in with the greeting timestamp."""
        self.deliver(TRICKY)

        def session():
            c = self.client()
            reply = c.apop("demo", "demo")
            c.quit()
            return reply
        self.assertEqual((yield self.inThread(session)),
                         b"+OK Logged in, 1 message (%d octets)" % (len(TRICKY),))

    @defer.inlineCallbacks
    def test_badPassword(self):
        """A wrong password gets the generic [AUTH] failure."""
        def session():
            c = self.client()
            c.user("demo")
            try:
                c.pass_("wrong")
            except poplib.error_proto as e:
                return e.args[0]
            finally:
                c.close()
        self.assertEqual((yield self.inThread(session)),
                         b"-ERR [AUTH] Authentication failed")

    @defer.inlineCallbacks
    def test_capa(self):
        """CAPA over the wire as poplib parses it."""
        def session():
            c = self.client()
            capabilities = c.capa()
            c.quit()
            return capabilities
        capabilities = yield self.inThread(session)
        self.assertEqual(capabilities["SASL"], ["PLAIN", "LOGIN", "CRAM-MD5"])
        self.assertEqual(capabilities["IMPLEMENTATION"], ["mailstack"])
        for name in ("TOP", "UIDL", "USER", "STLS", "RESP-CODES", "PIPELINING"):
            self.assertIn(name, capabilities)

    @defer.inlineCallbacks
    def test_authPlain(self):
        """AUTH PLAIN with an initial response, and with the empty challenge."""
        token = base64.b64encode(b"\0demo\0demo").decode("ascii")

        def session():
            c = self.client()
            withIR = c._shortcmd("AUTH PLAIN " + token)
            c.quit()
            c = self.client()
            c._putcmd("AUTH PLAIN")
            challenge = c._getline()[0]
            c._putcmd(token)
            afterChallenge = c._getresp()
            c.quit()
            return withIR, challenge, afterChallenge
        withIR, challenge, afterChallenge = yield self.inThread(session)
        self.assertEqual(withIR, b"+OK Logged in, 0 messages (0 octets)")
        self.assertEqual(challenge, b"+ ")
        self.assertEqual(afterChallenge, withIR)

    @defer.inlineCallbacks
    def test_stls(self):
        """poplib's stls() trusting the generated certificate; TOP and a 1 MB RETR."""
        self.deliver(TRICKY)

        def session():
            c = self.client()
            c.stls(self.tlsContext())
            capabilities = c.capa()
            c.user("demo")
            c.pass_("demo")
            top = c.top(1, 0)
            retr = c.retr(2)
            c.quit()
            return capabilities, top, retr
        big = b"".join(b".%07d\r\n" % (n,) for n in range(100000))
        self.deliver(big)
        capabilities, top, retr = yield self.inThread(session)
        self.assertNotIn("STLS", capabilities)
        self.assertEqual(top[1], [b".first line starts with a dot", b"Subject: dots", b""])
        self.assertEqual(b"".join(line + b"\r\n" for line in retr[1]), big)

    @defer.inlineCallbacks
    def test_stlsDiscardsInjectedCommands(self):
        """Plaintext pipelined after STLS is not run after the handshake."""
        def attack():
            sock = socket.create_connection(("127.0.0.1", self.port("pop3")), timeout=10)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"STLS\r\nUSER demo\r\nPASS demo\r\n")
            ready = f.readline()
            tls = self.tlsContext().wrap_socket(sock, server_hostname="localhost")
            g = tls.makefile("rb")
            tls.sendall(b"STAT\r\n")
            first = g.readline()
            tls.close()
            return ready, first
        ready, first = yield self.inThread(attack)
        self.assertEqual(ready, b"+OK Begin TLS negotiation now\r\n")
        self.assertEqual(first, b"-ERR STAT needs a login first (USER/PASS, APOP or AUTH)\r\n")

    @defer.inlineCallbacks
    def test_deleQuit(self):
        """DELE then QUIT removes the file from the Maildir."""
        self.deliver(TRICKY)
        self.deliver(b"Subject: keep\r\n\r\nkeep me\r\n")

        def session():
            c = self.loggedIn()
            c.dele(1)
            return c.quit()
        self.assertEqual((yield self.inThread(session)),
                         b"+OK mailstack POP3 server signing off (1 deleted, 1 left)")
        self.assertEqual(len(self.files()), 1)
        with open(self.files()[0], "rb") as f:
            self.assertIn(b"keep me", f.read())

    @defer.inlineCallbacks
    def test_droppedConnectionKeepsMail(self):
        """DELE then a dropped connection: nothing is deleted, the lock is freed."""
        self.deliver(TRICKY)

        def session():
            c = self.loggedIn()
            c.dele(1)
            c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
            c = _retryInUse(self.loggedIn)
            stat = c.stat()
            c.quit()
            return stat
        self.assertEqual((yield self.inThread(session)), (1, len(TRICKY)))
        self.assertEqual(len(self.files()), 1)

    @defer.inlineCallbacks
    def test_inUse(self):
        """A second session gets [IN-USE] while the first goes on undisturbed."""
        self.deliver(TRICKY)

        def session():
            first = self.loggedIn()
            second = self.client()
            second.user("demo")
            try:
                second.pass_("demo")
            except poplib.error_proto as e:
                refused = e.args[0]
            second.quit()
            stat = first.stat()
            first.quit()
            return refused, stat
        refused, stat = yield self.inThread(session)
        self.assertEqual(refused, b"-ERR [IN-USE] Mailbox is locked by another POP3 session")
        self.assertEqual(stat, (1, len(TRICKY)))

    @defer.inlineCallbacks
    def test_uidlStableAfterSeen(self):
        """UIDL is unchanged after the message got \\Seen (as IMAP would set it)."""
        self.deliver(TRICKY)

        def uidl():
            c = _retryInUse(self.loggedIn)
            listing = c.uidl()[1]
            c.quit()
            return listing
        before = yield self.inThread(uidl)
        inbox = self.inbox()
        yield inbox.setFlags(inbox.messages()[0].uid, {"\\Seen"})
        self.assertEqual((yield self.inThread(uidl)), before)

    @defer.inlineCallbacks
    def test_bareLF(self):
        """Commands ending in a bare LF (netcat) work."""
        def session():
            sock = socket.create_connection(("127.0.0.1", self.port("pop3")), timeout=10)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"USER demo\nPASS demo\nQUIT\n")
            replies = [f.readline() for _ in range(3)]
            sock.close()
            return replies
        replies = yield self.inThread(session)
        self.assertEqual(replies[0], b"+OK Send PASS\r\n")
        self.assertTrue(replies[1].startswith(b"+OK Logged in"))
        self.assertTrue(replies[2].startswith(b"+OK mailstack POP3 server signing off"))

    @defer.inlineCallbacks
    def test_transcriptRedacted(self):
        """The lab transcript shows the session but not the password."""
        def session():
            c = self.loggedIn()
            c.quit()
        yield self.inThread(session)
        text = yield self.closedTranscript("pop3")
        self.assertIn(b"C: USER demo", text)
        self.assertIn(b"C: PASS ***", text)
        self.assertNotIn(b"PASS demo", text)


class ImplicitTLSTests(POP3TestCase):
    """
    POP3S: TLS from the first byte.
    """

    @defer.inlineCallbacks
    def test_pop3SSL(self):
        """POP3_SSL: USER/PASS, no STLS offered, RETR of a small and a 2 MB message."""
        big = b"Subject: big\r\n\r\n" + b"".join(
            b"%s%06d\r\n" % (b"." if n % 5 == 0 else b"", n) for n in range(250000))
        self.deliver(TRICKY)
        self.deliver(big)

        def session():
            c = poplib.POP3_SSL("127.0.0.1", self.port("pop3s"), context=self.tlsContext(),
                                timeout=10)
            capabilities = c.capa()
            c.user("demo")
            c.pass_("demo")
            small = c.retr(1)[1]
            large = c.retr(2)[1]
            c.quit()
            return capabilities, small, large
        capabilities, small, large = yield self.inThread(session)
        self.assertNotIn("STLS", capabilities)
        self.assertIn("USER", capabilities)
        self.assertEqual(b"".join(line + b"\r\n" for line in small), TRICKY)
        self.assertEqual(b"".join(line + b"\r\n" for line in large), big)


class ProductionListenerTests(POP3TestCase):
    """
    A listener with allow_plaintext_auth = false (the production default).
    """

    @defer.inlineCallbacks
    def test_userRefusedBeforeSTLS(self):
        """Before STLS: USER refused, CAPA without USER/SASL PLAIN; after: USER/PASS work."""
        def session():
            c = self.client("pop3prod")
            capabilities = c.capa()
            try:
                c.user("demo")
            except poplib.error_proto as e:
                refused = e.args[0]
            c.stls(self.tlsContext())
            after = c.capa()
            c.user("demo")
            reply = c.pass_("demo")
            c.quit()
            return capabilities, refused, after, reply
        capabilities, refused, after, reply = yield self.inThread(session)
        self.assertNotIn("USER", capabilities)
        self.assertEqual(capabilities.get("SASL"), ["CRAM-MD5"])
        self.assertIn("STLS", capabilities)
        self.assertEqual(refused, b"-ERR [AUTH] Plaintext authentication disallowed "
                                  b"on non-secure connections")
        self.assertIn("USER", after)
        self.assertEqual(after["SASL"], ["PLAIN", "LOGIN", "CRAM-MD5"])
        self.assertTrue(reply.startswith(b"+OK Logged in"))


class LargeMessageTests(POP3TestCase):
    """
    A 50 MB message streams through with bounded memory.
    """

    SIZE = 50 * 1024 * 1024

    def lines(self):
        """The message, as a generator of CRLF lines (some start with '.')."""
        yield b"Subject: big\r\n\r\n"
        produced = 16
        n = 0
        while produced < self.SIZE:
            line = (b"." if n % 7 == 0 else b"") + (b"%08d" % n) * 120 + b"\r\n"
            produced += len(line)
            n += 1
            yield line

    def source(self):
        """A file-like reader over L{lines}, for store.deliver."""
        generator = self.lines()
        buffer = bytearray()

        class Reader:
            def read(self, n):
                while len(buffer) < n:
                    piece = next(generator, None)
                    if piece is None:
                        break
                    buffer.extend(piece)
                out = bytes(buffer[:n])
                del buffer[:n]
                return out
        return Reader()

    @defer.inlineCallbacks
    def test_fiftyMegabytes(self):
        """RETR of a 50 MB message to a slow reader: exact bytes, small peak memory."""
        expected = hashlib.sha256()
        size = 0
        for line in self.lines():
            expected.update(line)
            size += len(line)
        self.deliver(self.source())

        def session():
            sock = socket.create_connection(("127.0.0.1", self.port("pop3")), timeout=30)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"USER demo\r\nPASS demo\r\nRETR 1\r\n")
            f.readline()
            f.readline()
            first = f.readline()
            time.sleep(1)  # a slow client: the server must wait, not buffer
            digest, received = hashlib.sha256(), 0
            while True:
                line = f.readline(70000)
                if line == b".\r\n":
                    break
                if not line:
                    raise AssertionError("connection closed mid-message")
                if line.startswith(b".."):
                    line = line[1:]
                digest.update(line)
                received += len(line)
            sock.sendall(b"QUIT\r\n")
            f.readline()
            sock.close()
            return first, digest.hexdigest(), received

        tracemalloc.start()
        try:
            first, digest, received = yield self.inThread(session)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertEqual(first, b"+OK %d octets\r\n" % (size,))
        self.assertEqual(received, size)
        self.assertEqual(digest, expected.hexdigest())
        self.assertLess(peak, 8 * 1024 * 1024, "peak traced memory %d bytes" % (peak,))


class PipelinedRETRTests(POP3TestCase):
    """
    Many RETRs in one packet over real sockets (plain and POP3S): served one
    after another while the client reads; when it hangs up mid-transfer, the
    queued ones are dropped quietly and no mail is lost.
    """

    RETRS = 20

    def setUp(self):
        POP3TestCase.setUp(self)
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        # 2 MB: more than the socket buffers hold, so a hang-up after the first
        # +OK line always finds the server mid-message with RETRs queued.
        self.big = b"Subject: big\r\n\r\n" + b"".join(
            b"%s%070d\r\n" % (b"." if n % 9 == 0 else b"", n) for n in range(28000))
        self.deliver(self.big)
        self.deliver(TRICKY)

    def connect(self, name):
        sock = socket.create_connection(("127.0.0.1", self.port(name)), timeout=10)
        if name == "pop3s":
            sock = self.tlsContext().wrap_socket(sock, server_hostname="localhost")
        return sock

    def loggedInPlain(self):
        """A poplib session on the plain listener (the same maildrop and lock)."""
        return self.loggedIn("pop3")

    def bad(self):
        """Log events that must not happen: failures, errors, -ERR replies."""
        return [e for e in self.events
                if e.get("log_failure") is not None
                or e["log_level"].name in ("warn", "error", "critical")
                or "-ERR" in e.get("log_format", "")]

    def hangUp(self, name):
        def session():
            sock = self.connect(name)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"USER demo\r\nPASS demo\r\n")
            f.readline()
            logged = f.readline()
            sock.sendall(b"RETR 1\r\n" * self.RETRS + b"DELE 1\r\nDELE 2\r\nQUIT\r\n")
            first = f.readline()
            # Unread data in the receive buffer: close() resets the connection.
            f.close()
            sock.close()
            c = _retryInUse(self.loggedInPlain)
            stat = c.stat()
            c.quit()
            return logged, first, stat
        return self.inThread(session)

    @defer.inlineCallbacks
    def check(self, name):
        logged, first, stat = yield self.hangUp(name)
        self.assertTrue(logged.startswith(b"+OK Logged in, 2 messages"), logged)
        self.assertEqual(first, b"+OK %d octets\r\n" % (len(self.big),))
        self.assertEqual(stat, (2, len(self.big) + len(TRICKY)))
        self.assertEqual(len(self.files()), 2)
        self.assertEqual(self.bad(), [])
        drops = [e for e in self.events if "pipelined" in e.get("log_format", "")]
        self.assertLessEqual(len(drops), 1, drops)

    def test_hangUpMidTransfer(self):
        """Plain: hang up during the first of many RETRs; no error logged, mail kept."""
        return self.check("pop3")

    def test_hangUpMidTransferTLS(self):
        """POP3S: the same through TLS (the producer wrapped by Twisted's TLS layer)."""
        return self.check("pop3s")

    @defer.inlineCallbacks
    def test_servedInOrder(self):
        """A client that reads gets every pipelined RETR whole and in order (POP3S too)."""
        def session(name):
            sock = self.connect(name)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"USER demo\r\nPASS demo\r\n" + b"RETR 2\r\nRETR 1\r\n" * 3
                         + b"NOOP\r\nQUIT\r\n")
            f.readline()
            f.readline()
            replies = []
            for _ in range(6):
                status = f.readline()
                lines = []
                while True:
                    line = f.readline()
                    if line == b".\r\n" or not line:
                        break
                    lines.append(line[1:] if line.startswith(b"..") else line)
                replies.append((status, b"".join(lines)))
            rest = f.read()
            sock.close()
            return replies, rest
        for name in ("pop3", "pop3s"):
            replies, rest = yield self.inThread(session, name)
            self.assertEqual(replies, [(b"+OK %d octets\r\n" % (len(TRICKY),), TRICKY),
                                       (b"+OK %d octets\r\n" % (len(self.big),), self.big)] * 3)
            self.assertTrue(rest.startswith(b"+OK\r\n+OK mailstack POP3 server signing off"),
                            rest[:200])
        self.assertEqual(self.bad(), [])


class ConnectionLimitTests(POP3TestCase):
    """
    The per-IP connection limit with POP3's refusal line.
    """

    limits = "connections_per_ip = 1"

    @defer.inlineCallbacks
    def test_refusal(self):
        """The connection over the limit gets -ERR [SYS/TEMP] and is closed."""
        def session():
            first = self.client()
            sock = socket.create_connection(("127.0.0.1", self.port("pop3")), timeout=10)
            refusal = sock.makefile("rb").read()
            sock.close()
            first.quit()
            return refusal
        self.assertEqual((yield self.inThread(session)),
                         b"-ERR [SYS/TEMP] Too many connections from your address\r\n")
