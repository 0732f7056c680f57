"""
Lab transcripts end to end for IMAP: the session is recorded, passwords are not,
whichever way the client sends them (quoted, literal, SASL initial response).
"""

import glob
import os
import socket

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from tests.helpers import listenerTOML, startServer


def _session(port, lines):
    """Send each line (or literal chunk) after reading the reply, collect replies."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")
    replies = [f.readline()]
    for line in lines:
        sock.sendall(line)
        replies.append(f.readline())
    sock.close()
    return replies


class IMAPTranscriptTests(unittest.TestCase):
    def setUp(self):
        self.server, self.directory = startServer(
            self, listenerTOML("imap", name="imap", allow_plaintext_auth=True))

    @defer.inlineCallbacks
    def transcript(self, lines):
        replies = yield threads.deferToThread(
            _session, self.server.listenerPort("imap"), lines)
        pattern = os.path.join(self.directory, "var", "transcripts", "imap", "*", "*")
        for _ in range(200):
            paths = glob.glob(pattern)
            if paths:
                with open(paths[0], "rb") as f:
                    text = f.read()
                if b"# closed" in text:
                    return replies, text
            d = defer.Deferred()
            reactor.callLater(0.05, d.callback, None)
            yield d
        self.fail("no finished transcript in %s" % (pattern,))

    @defer.inlineCallbacks
    def test_loginQuoted(self):
        """LOGIN with a quoted password: the command is shown, the password is not."""
        replies, text = yield self.transcript([
            b'a LOGIN demo "demo"\r\n', b"b LOGOUT\r\n"])
        self.assertTrue(replies[1].startswith(b"a OK "), replies)
        self.assertIn(b"C: a LOGIN demo ***", text)
        self.assertIn(b"S: a OK ", text)
        self.assertNotIn(b'"demo"', text)

    @defer.inlineCallbacks
    def test_loginLiteral(self):
        """LOGIN with the password as a literal: the literal's bytes are hidden."""
        replies, text = yield self.transcript([
            b"a LOGIN demo {4}\r\n", b"demo\r\n", b"b LOGOUT\r\n"])
        self.assertTrue(replies[1].startswith(b"+ "), replies)
        self.assertTrue(replies[2].startswith(b"a OK "), replies)
        # the literal's announcement too: it gives the password's length
        self.assertIn(b"C: a LOGIN demo ***", text)
        self.assertIn(b"C: ***", text)
        self.assertNotIn(b"C: demo", text)

    @defer.inlineCallbacks
    def test_authenticateInitialResponse(self):
        """AUTHENTICATE PLAIN with SASL-IR: the base64 credentials are hidden."""
        replies, text = yield self.transcript([
            b"a AUTHENTICATE PLAIN AGRlbW8AZGVtbw==\r\n", b"b LOGOUT\r\n"])
        self.assertTrue(replies[1].startswith(b"a OK "), replies)
        self.assertIn(b"C: a AUTHENTICATE PLAIN ***", text)
        self.assertNotIn(b"AGRlbW8AZGVtbw", text)
