"""
COMPRESS=DEFLATE (RFC 4978) end to end: imaplib (taught DEFLATE in a small
subclass) over plain TCP and over STARTTLS on the real service, IDLE news
arriving compressed at once, the lab transcript showing the decompressed
lines, a corrupt stream closing only its session, a listener with it
switched off; one session run against mailstack and against the private
Dovecot 2.3.19 with its imap_zlib plugin, compared byte for byte after
decompression; and mutt with C{imap_deflate}.
"""

import imaplib
import os
import re
import shutil
import smtplib
import socket
import tempfile
import zlib

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.e2e.test_imap import LISTENERS, IMAPTestCase
from tests.e2e.test_interop_dovecot import LISTENERS as DOVECOT_LISTENERS
from tests.e2e.test_interop_dovecot import _dovecotMissing
from tests.e2e.test_real_clients import CLIENT_TIMEOUT, runClient
from tests.helpers import BASE_CONFIG, LogWatch, listenerTOML, sleep, startServer
from tests.interop import Dovecot, check, findBinary, missing, sharedDataDir

BODY = b"".join(b"Line %d of a long and very repetitive body.\r\n" % (n,) for n in range(8000))
BIG = (b"From: Alice <alice@lab.test>\r\nTo: demo@lab.test\r\nSubject: big\r\n"
       b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n" + BODY)


# imaplib refuses commands it does not know: COMPRESS is valid after login.
imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))


class DeflateIMAP4(imaplib.IMAP4):
    """
    imaplib with COMPRESS=DEFLATE: after the OK, what it sends is compressed
    (one sync flush per command) and what it reads is decompressed.

    @ivar wireIn: compressed octets received since COMPRESS.
    """

    _z = None
    wireIn = 0

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self._z = (zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15))
            self._plain = b""
        return typ, data

    def send(self, data):
        if self._z is not None:
            deflate = self._z[0]
            data = deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH)
        imaplib.IMAP4.send(self, data)

    def _fill(self):
        chunk = self.file.read1(65536)
        if not chunk:
            raise self.abort("connection closed")
        self.wireIn += len(chunk)
        self._plain += self._z[1].decompress(chunk)

    def read(self, size):
        if self._z is None:
            return imaplib.IMAP4.read(self, size)
        while len(self._plain) < size:
            self._fill()
        data, self._plain = self._plain[:size], self._plain[size:]
        return data

    def readline(self):
        if self._z is None:
            return imaplib.IMAP4.readline(self)
        while b"\n" not in self._plain:
            self._fill()
        end = self._plain.index(b"\n") + 1
        line, self._plain = self._plain[:end], self._plain[end:]
        return line


def rawCompressed(port):
    """A raw socket logged in as demo with compression on: C{(socket, deflate, inflate)}."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"a LOGIN demo@lab.test demo\r\nb COMPRESS DEFLATE\r\n")
    assert f.readline().startswith(b"a OK ")
    assert f.readline() == b"b OK Begin compression.\r\n"
    return s, zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15)


class CompressTests(IMAPTestCase):
    """
    imaplib with COMPRESS=DEFLATE on the real service.
    """

    listeners = LISTENERS + listenerTOML(
        "imap", tls="none", name="imapnozip", allow_plaintext_auth=True,
        disabled=["COMPRESS=DEFLATE"])
    limits = "literal_size = 1000000\n"

    def deflateClient(self, name="imap"):
        c = DeflateIMAP4("127.0.0.1", self.port(name), timeout=10)
        self.addCleanup(lambda: c.state != "LOGOUT" and c.shutdown())
        return c

    @defer.inlineCallbacks
    def test_compressedSession(self):
        """APPEND and FETCH of a 440 KB message through compression: same octets, far fewer on the wire."""
        def session():
            c = self.deflateClient()
            check(c.login("demo@lab.test", "demo"))
            capabilities = check(c.capability())[0].split()
            check(c.compress())
            check(c.append("INBOX", None, None, BIG))
            check(c.select("INBOX"))
            before = c.wireIn
            fetched = check(c.fetch("1", "(BODY.PEEK[])"))
            wire = c.wireIn - before
            again = c.compress()
            c.logout()
            return capabilities, fetched, wire, again
        capabilities, fetched, wire, again = yield self.inThread(session)
        self.assertIn(b"COMPRESS=DEFLATE", capabilities)
        self.assertEqual(fetched[0][1], BIG)
        self.assertLess(wire, len(BIG) / 10)
        self.assertEqual(again, ("NO", [b"[COMPRESSIONACTIVE] COMPRESSION=DEFLATE already enabled."]))

    @defer.inlineCallbacks
    def test_overStartTLS(self):
        """STARTTLS, then LOGIN and COMPRESS: compressed inside TLS; STARTTLS again is refused."""
        def session():
            c = self.deflateClient()
            check(c.starttls(ssl_context=self.tlsContext()))
            check(c.login("demo@lab.test", "demo"))
            check(c.compress())
            check(c.append("INBOX", None, None, BIG))
            check(c.select("INBOX"))
            fetched = check(c.fetch("1", "(BODY.PEEK[])"))
            c.send(b"z STARTTLS\r\n")
            refused = c.readline()
            c.logout()
            return fetched, refused
        fetched, refused = yield self.inThread(session)
        self.assertEqual(fetched[0][1], BIG)
        self.assertEqual(refused, b"z BAD STARTTLS not valid in this state (already logged in)\r\n")

    @defer.inlineCallbacks
    def test_idleNewsFlushed(self):
        """A delivery reaches a compressed IDLE session at once (the server flushes each write batch)."""
        s, deflate, inflate = yield self.inThread(rawCompressed, self.port("imap"))
        self.addCleanup(s.close)

        def send(data):
            s.sendall(deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH))

        def readUntil(marker):
            text = b""
            while marker not in text:
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError("closed; got %r" % (text,))
                text += inflate.decompress(chunk)
            return text

        def idle():
            send(b"c SELECT INBOX\r\n")
            readUntil(b"c OK ")
            send(b"d IDLE\r\n")
            readUntil(b"+ idling")
        yield self.inThread(idle)

        def deliver():
            with smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10) as m:
                m.sendmail("alice@lab.test", ["demo@lab.test"], BIG[:200])
        yield self.inThread(deliver)
        news = yield self.inThread(readUntil, b"* 1 EXISTS\r\n")
        self.assertIn(b"* 1 EXISTS\r\n", news)

        def done():
            send(b"DONE\r\n")
            return readUntil(b"d OK ")
        yield self.inThread(done)

    @defer.inlineCallbacks
    def test_transcriptDecompressed(self):
        """The lab transcript marks where compression started and shows the lines decompressed."""
        def session():
            c = DeflateIMAP4("127.0.0.1", self.port("imap"), timeout=10)
            check(c.login("demo@lab.test", "demo"))
            check(c.compress())
            check(c.select("INBOX"))
            c.logout()
        yield self.inThread(session)
        text = yield self.closedTranscript("imap")
        lines = [re.sub(r"^\S+ ", "", line) for line in text.decode().splitlines()]
        start = lines.index("# DEFLATE compression started")
        self.assertRegex(lines[start - 2], r"^C: \w+ COMPRESS DEFLATE$")
        self.assertRegex(lines[start - 1], r"^S: \w+ OK Begin compression\.$")
        self.assertRegex(lines[start + 1], r"^C: \w+ SELECT INBOX$")
        self.assertIn("S: * 0 EXISTS", lines[start + 2:])
        self.assertIn("S: * BYE mailstack logging out", lines[start + 2:])

    @defer.inlineCallbacks
    def test_corruptStream(self):
        """Garbage after COMPRESS closes that session with one log line and no traceback; others go on."""
        watch = LogWatch(self)

        def session():
            s, deflate, inflate = rawCompressed(self.port("imap"))
            try:
                s.sendall(b"\xff" * 64)
                rest = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return rest
                    rest += chunk
            finally:
                s.close()
        rest = yield self.inThread(session)
        self.assertEqual(zlib.decompressobj(-15).decompress(rest), b"")
        for _ in range(50):
            if any("corrupt compressed input" in t for t in watch.texts()):
                break
            yield sleep(0.02)
        self.assertEqual(len([t for t in watch.texts() if "corrupt compressed input" in t]), 1)
        self.assertEqual(watch.problems(), [])

        def other():
            c = self.loggedIn()
            try:
                return check(c.noop())
            finally:
                c.logout()
        yield self.inThread(other)

    @defer.inlineCallbacks
    def test_disabledPerListener(self):
        """A listener with COMPRESS=DEFLATE disabled does not list it and answers BAD."""
        def session():
            c = self.deflateClient("imapnozip")
            check(c.login("demo@lab.test", "demo"))
            capabilities = check(c.capability())[0].split()
            try:
                c.compress()
            except c.error as e:
                return capabilities, str(e)
            return capabilities, None
        capabilities, error = yield self.inThread(session)
        self.assertIn(b"BINARY", capabilities)
        self.assertNotIn(b"COMPRESS=DEFLATE", capabilities)
        self.assertIn("Unknown command COMPRESS", error)


class ZlibDovecot(Dovecot):
    """The private Dovecot with its imap_zlib plugin (COMPRESS=DEFLATE after login)."""

    def config(self):
        return Dovecot.config(self) + (
            "mail_plugins = $mail_plugins zlib\n"
            "protocol imap {\n"
            "  mail_plugins = $mail_plugins imap_zlib\n"
            "}\n")


SESSION = [
    b"a LOGIN demo@lab.test demo",
    b"b COMPRESS FOO",
    b"c COMPRESS deflate",
    b"d SELECT INBOX",
    b"e FETCH 1:* (FLAGS RFC822.SIZE BODY.PEEK[])",
    b"f COMPRESS DEFLATE",
    b"g UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
    b"h LOGOUT",
]

# Dovecot's tagged replies end with the command's timing.
_TIMING = re.compile(rb" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)")


def compressedSession(port):
    """
    SESSION, compression started by its COMPRESS deflate: each command's
    decompressed reply lines (FETCH, EXISTS and tagged ones, timing removed).
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.recv(4096)
    z = None
    pending = b""
    replies = []
    try:
        for command in SESSION:
            tag = command.split(b" ", 1)[0]
            data = command + b"\r\n"
            if z is not None:
                data = z[0].compress(data) + z[0].flush(zlib.Z_SYNC_FLUSH)
            s.sendall(data)
            while not re.search(rb"(?m)^" + tag + rb" .*\r\n", pending):
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError("closed after %r: %r" % (command, pending))
                pending += z[1].decompress(chunk) if z is not None else chunk
            match = re.search(rb"(?m)^" + tag + rb" .*\r\n", pending)
            body, tagged = pending[:match.start()], pending[match.start():match.end()]
            pending = pending[match.end():]
            tagged = _TIMING.sub(b"", tagged.rstrip(b"\r\n"))
            if b" COMPRESS " not in command:
                tagged = b" ".join(tagged.split(b" ")[:2])  # the texts differ
            if command.startswith((b"e ", b"g ")):
                kept = [body]  # every FETCH octet
            elif command.startswith(b"d "):
                kept = re.findall(rb"(?m)^\* \d+ EXISTS\r$", body)
            else:
                kept = []
            replies.append((command, kept + [tagged]))
            reply = tagged
            if command == b"c COMPRESS deflate" and reply.startswith(b"c OK"):
                z = (zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15))
    finally:
        s.close()
    return replies


class DovecotComparisonTests(unittest.TestCase):
    """
    The same compressed session against mailstack and Dovecot 2.3.19
    (imap_zlib): the same replies, decompressed.
    """

    skip = _dovecotMissing()
    timeout = 60

    @defer.inlineCallbacks
    def test_sameReplies(self):
        """COMPRESS's NO, OK and COMPRESSIONACTIVE and the FETCH literals after it equal Dovecot's."""
        text, dataDir = sharedDataDir(self, BASE_CONFIG)
        server, _ = startServer(self, DOVECOT_LISTENERS, text)

        def fill():
            with smtplib.SMTP("127.0.0.1", server.listenerPort("smtp"), timeout=10) as m:
                m.sendmail("alice@lab.test", ["demo@lab.test"], BIG)
                m.sendmail("alice@lab.test", ["demo@lab.test"], BIG[:300] + b"\r\n")
        yield threads.deferToThread(fill)
        copyDir = dataDir + "-dovecot"
        shutil.copytree(dataDir, copyDir, symlinks=True)
        ours = yield threads.deferToThread(compressedSession, server.listenerPort("imap"))
        dovecot = ZlibDovecot(self, copyDir)
        dovecot.handOver(os.path.join(copyDir, "mail", "lab.test"))
        yield dovecot.start()
        theirs = yield threads.deferToThread(compressedSession, dovecot.imapPort)
        self.assertEqual(ours, theirs)
        self.assertEqual(ours[2][1], [b"c OK Begin compression."])
        self.assertEqual(ours[4][1][0].count(b" FETCH (FLAGS ("), 2)
        self.assertIn(BODY, ours[4][1][0])
        self.assertEqual(dovecot.complaints(), [])


class MuttTests(IMAPTestCase):
    """
    mutt with C{imap_deflate} reads a mailbox through COMPRESS=DEFLATE.
    """

    skip = missing("mutt", "mutt") or missing("tmux", "tmux")
    timeout = 60

    @defer.inlineCallbacks
    def test_muttDeflate(self):
        """mutt (in tmux) turns compression on and shows the INBOX's message."""
        from twisted.internet import reactor

        def fill():
            with smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10) as m:
                m.sendmail("alice@lab.test", ["demo@lab.test"],
                           BIG.replace(b"Subject: big", b"Subject: squeezed through deflate"))
        yield self.inThread(fill)
        home = os.path.abspath(self.mktemp())
        os.makedirs(home)
        rc = os.path.join(home, "muttrc")
        with open(rc, "w") as f:
            f.write('set folder = "imap://demo%%40lab.test@127.0.0.1:%d/"\n'
                    'set spoolfile = "+INBOX"\n'
                    'set imap_pass = "demo"\n'
                    'set imap_deflate = yes\n'
                    'set ssl_starttls = no\n'
                    'unset ssl_force_tls\n' % (self.port("imapplain"),))
        # A UNIX socket path must stay short (108 octets): not under _trial_temp.
        socketDir = tempfile.mkdtemp(prefix="ms-tmux-")
        self.addCleanup(shutil.rmtree, socketDir, True)
        tmux = [findBinary("tmux"), "-S", os.path.join(socketDir, "s"), "-f", "/dev/null"]
        command = "%s -n -F %s -d 5" % (findBinary("mutt"), rc)
        started = yield runClient(tmux + ["new-session", "-d", "-x", "150", "-y", "30",
                                          "-s", "mutt", command], env={"HOME": home}, path=home)
        self.assertEqual(started[2], 0, started)
        self.addCleanup(runClient, tmux + ["kill-server"], path=home)
        pane = ""
        deadline = reactor.seconds() + CLIENT_TIMEOUT
        while "squeezed through deflate" not in pane and reactor.seconds() < deadline:
            yield sleep(0.2)
            pane = (yield runClient(tmux + ["capture-pane", "-p", "-t", "mutt"], path=home))[0]
        debug = ""
        if os.path.exists(os.path.join(home, ".muttdebug0")):
            with open(os.path.join(home, ".muttdebug0"), errors="replace") as f:
                debug = f.read()
        self.assertIn("squeezed through deflate", pane, "screen:\n%s\n--- debug:\n%s" % (pane, debug))
        self.assertIn("COMPRESS DEFLATE", debug)
        yield runClient(tmux + ["kill-server"], path=home)
        text = yield self.closedTranscript("imap")
        self.assertIn(b"# DEFLATE compression started", text)
