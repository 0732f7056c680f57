"""
A NUL octet in a stored message: literals (C{{n}}) carry it as 0x80, as
Dovecot 2.3 sends it (RFC 3501's literal is CHAR8: no NUL), with the same
length; BINARY's literal8 (C{~{n}}, RFC 3516) carries it as stored.
"""

from twisted.trial import unittest

from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin

WITH_NUL = (b"From: nul@lab.test\r\nSubject: a NUL\x00 here\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\nbody\x00text\r\n")


class NulInLiteralTests(IMAPTestMixin, unittest.TestCase):
    """FETCH of one message holding a NUL in its header and one in its body."""

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver(WITH_NUL)
        self.select()

    def test_bodyStreamed(self):
        """BODY[] (streamed from the file): both NULs go out as 0x80, the length unchanged."""
        self.assertEqual(self.send(b"f FETCH 1 BODY.PEEK[]\r\n"),
                         b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\nf OK FETCH completed\r\n"
                         % (len(WITH_NUL), WITH_NUL.replace(b"\x00", b"\x80")))

    def test_partialAndText(self):
        """A partial BODY[] and RFC822.TEXT: 0x80 in place of NUL."""
        self.assertEqual(self.send(b"f FETCH 1 BODY.PEEK[]<33.3>\r\n"),
                         b"* 1 FETCH (BODY[]<33> {3}\r\nL\x80 )\r\nf OK FETCH completed\r\n")
        self.assertIn(b"RFC822.TEXT {11}\r\nbody\x80text\r\n FLAGS",
                      self.send(b"f FETCH 1 RFC822.TEXT\r\n"))

    def test_headerFields(self):
        """HEADER.FIELDS (built, not streamed): 0x80 in place of NUL."""
        self.assertIn(b"{24}\r\nSubject: a NUL\x80 here\r\n\r\n)",
                      self.send(b"f FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject)]\r\n"))

    def test_binaryKeepsNul(self):
        """BINARY[1] is a literal8 with the NUL as stored."""
        self.assertIn(b"BINARY[1] ~{11}\r\nbody\x00text\r\n)",
                      self.send(b"f FETCH 1 BINARY.PEEK[1]\r\n"))


everyStore(globals())
