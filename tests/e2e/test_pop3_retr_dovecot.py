"""
End to end: POP3 RETR of the same Maildir files from mailstack and from the
private Dovecot 2.3.19 (tests/interop.py), byte for byte. The files are
left in C{cur/} as an MDA leaves them (mostly LF line ends, sizes in their
names), with the cases RETR must get right whichever way it sends a
message: whole in one write (up to one 64 KB chunk) or streamed in chunks.
"""

import os
import socket

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailstack.storage.crlf import CHUNK_SIZE
from tests.e2e.test_interop_dovecot import _dovecotMissing
from tests.helpers import BASE_CONFIG, listenerTOML, startServer
from tests.interop import dovecotOnCopy, sharedDataDir

LISTENERS = listenerTOML("pop3", name="pop3", allow_plaintext_auth=True)


def _sized(n, wire, head):
    """A message of C{wire} octets in CRLF form: C{head}, then lines of text, the last one cut."""
    line = b"the line of a long message %d\n" % (n,)
    body = head
    while len(body) + body.count(b"\n") + len(line) + 1 < wire:
        body += line
    return body + b"x" * (wire - len(body) - body.count(b"\n"))


def messages():
    """The files to drop: C{[(octets as stored)]}."""
    head = b"From: alice@lab.test\nSubject: retr %d\n\n"
    found = [
        head % 1 + b"plain\nlines\n",
        head % 2 + b".leading dot\n..two dots\n.\nafter a lone dot\n",
        head % 3 + b"no final line end",
        head % 4 + b"a lone\rCR and\r\na CRLF among LFs\n",
        (head % 5).replace(b"\n", b"\r\n") + b"stored with CRLF\r\n.dot\r\n",
        head % 6,
    ]
    # Around one chunk (the whole/streamed boundary), and a streamed one with a
    # dot line right at a chunk boundary.
    found.append(_sized(7, CHUNK_SIZE, head % 7))
    found.append(_sized(8, CHUNK_SIZE + 1, head % 8))
    big = _sized(9, 3 * CHUNK_SIZE, head % 9)
    cut = CHUNK_SIZE - big[:CHUNK_SIZE].count(b"\n")  # this octet starts CRLF chunk 2
    cut = big.rfind(b"\n", 0, cut) + 1
    found.append(big[:cut] + b".dotted at the boundary\n" + big[cut:])
    return found


def dropInto(dataDir):
    cur = os.path.join(dataDir, "mail", "lab.test", "demo", "cur")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(os.path.dirname(cur), sub), exist_ok=True)
    for n, data in enumerate(messages(), 1):
        wire = len(data) + data.count(b"\n") - data.count(b"\r\n")
        name = "17000000%02d.M%dP9Q%d.lab,S=%d,W=%d:2,S" % (n, n, n, len(data), wire)
        with open(os.path.join(cur, name), "wb") as f:
            f.write(data)
    # One UIDVALIDITY for both servers (the UIDL keys hold it): left to each, it
    # is the second each first opened the folder in, and they could differ by one.
    with open(os.path.join(os.path.dirname(cur), "dovecot-uidlist"), "wb") as f:
        f.write(b"3 V1700000000 N1 G0123456789abcdef0123456789abcdef\n")


def retrieveAll(port):
    """USER/PASS, UIDL, then RETR of each message: C{{unique-id: the whole RETR reply}}."""
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    f = s.makefile("rb")
    try:
        f.readline()

        def command(line):
            s.sendall(line + b"\r\n")
            reply = f.readline()
            if not reply.startswith(b"+OK"):
                raise AssertionError("%r: %r" % (line, reply))
            return reply

        def multi(line):
            lines = [command(line)]
            while lines[-1] != b".\r\n":
                lines.append(f.readline())
            return b"".join(lines)

        command(b"USER demo@lab.test")
        command(b"PASS demo")
        uidl = [line.split() for line in multi(b"UIDL").split(b"\r\n")[1:-2]]
        replies = {uid: multi(b"RETR " + number) for number, uid in uidl}
        command(b"QUIT")
        return replies
    finally:
        f.close()
        s.close()


class RetrLikeDovecotTests(unittest.TestCase):
    """RETR of LF-ended Maildir files, mailstack and Dovecot 2.3.19 side by side."""

    skip = _dovecotMissing()
    timeout = 60

    @defer.inlineCallbacks
    def test_sameOctets(self):
        """Every RETR reply, +OK line and dot-stuffing included, equals Dovecot's octet for octet."""
        text, dataDir = sharedDataDir(self, BASE_CONFIG)
        server, _ = startServer(self, LISTENERS, text)
        dropInto(dataDir)
        dovecot = yield dovecotOnCopy(self, dataDir)
        ours = yield threads.deferToThread(retrieveAll, server.listenerPort("pop3"))
        theirs = yield threads.deferToThread(retrieveAll, dovecot.pop3Port)
        self.assertEqual(len(ours), len(messages()))
        self.assertEqual(sorted(ours), sorted(theirs))
        for uid in sorted(ours):
            self.assertEqual(ours[uid], theirs[uid], uid)
