"""
Tests for reading messages stored with bare LF line ends
(L{mailstack.storage.maildir.MaildirMailbox.openMessage}): one no larger
than a chunk is read and converted whole, a larger one streamed; both give
the CRLF form.
"""

import os

from twisted.trial import unittest

from mailstack.storage.account import MaildirStore
from mailstack.storage.crlf import CHUNK_SIZE


class LineFeedFileTests(unittest.TestCase):
    """
    Files an MDA left in C{cur/} with LF line ends, named with their sizes
    as Dovecot's and Postfix's deliveries name them.
    """

    def setUp(self):
        store = MaildirStore(self.mktemp())
        self.mailbox = self.successResultOf(
            store.account("alice@lab.test").openMailbox("INBOX"))
        self.count = 0

    def drop(self, data, diskSize=None, wireSize=None):
        """Put C{data} in C{cur/} (sizes in the name, the true ones unless given); @return: its UID."""
        self.count += 1
        diskSize = len(data) if diskSize is None else diskSize
        wireSize = len(data) + data.count(b"\n") if wireSize is None else wireSize
        name = "17000000%02d.M%dP1Q1.lab,S=%d,W=%d:2,S" % (self.count, self.count, diskSize,
                                                             wireSize)
        with open(os.path.join(self.mailbox.path, "cur", name), "wb") as f:
            f.write(data)
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        return self.mailbox.messages()[-1].uid

    def read(self, uid):
        with self.mailbox.openMessage(uid) as f:
            return f.read()

    def test_small(self):
        """A small LF file reads as CRLF, with a CRLF and a lone CR already there kept."""
        uid = self.drop(b"Subject: a\n\nline\r\nlone\rcr\nlast\n")
        self.assertEqual(self.read(uid), b"Subject: a\r\n\r\nline\r\nlone\rcr\r\nlast\r\n")

    def test_smallReadsLikeAFile(self):
        """What a small message opens as reads by lines, seeks and tells as a file does."""
        uid = self.drop(b"one\ntwo\nthree\n")
        with self.mailbox.openMessage(uid) as f:
            self.assertEqual(f.readline(), b"one\r\n")
            self.assertEqual(f.tell(), 5)
            f.seek(10)
            self.assertEqual(f.read(3), b"thr")
            f.seek(0)
            self.assertEqual(f.read(), b"one\r\ntwo\r\nthree\r\n")

    def test_chunkBoundary(self):
        """Messages of one chunk, and of one chunk and one octet, in CRLF form, read whole."""
        line = b"x" * 99 + b"\n"
        for wire in (CHUNK_SIZE, CHUNK_SIZE + 1):
            body = line * (wire // 101)
            body += b"y" * (wire - len(body) - body.count(b"\n"))
            uid = self.drop(body)
            self.assertEqual(self.mailbox.messageInfo(uid).size, wire)
            self.assertEqual(self.read(uid), body.replace(b"\n", b"\r\n"))

    def test_largerThanItsName(self):
        """A file larger than a chunk though its name says it is small is read whole, as CRLF."""
        body = b"z" * 70 + b"\n"
        body *= (2 * CHUNK_SIZE) // len(body)
        uid = self.drop(body, diskSize=10, wireSize=12)
        self.assertEqual(self.read(uid), body.replace(b"\n", b"\r\n"))
