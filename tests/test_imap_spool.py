"""
Tests for L{mailstack.imap.spool}: several APPEND literals in one temporary
file, each read back as a file of its own.
"""

import io

from twisted.trial import unittest

from mailstack.imap.spool import LiteralSpool


class LiteralSpoolTests(unittest.TestCase):
    """
    L{LiteralSpool} and its L{SpooledLiteral}s.
    """

    def spooled(self, *datas):
        spool = LiteralSpool()
        literals = []
        for data in datas:
            literal = spool.literal()
            for start in range(0, len(data), 3):  # written in pieces, as the network gives them
                literal.write(data[start:start + 3])
            literal.seek(0)
            literals.append(literal)
        return spool, literals

    def test_eachReadsItsOwn(self):
        """Literals of one file read back their own octets, read in any order and interleaved."""
        spool, (a, b, c) = self.spooled(b"first literal", b"", b"the third one")
        self.assertEqual(c.read(4), b"the ")
        self.assertEqual(a.read(), b"first literal")
        self.assertEqual(b.read(), b"")
        self.assertEqual(c.read(), b"third one")
        self.assertEqual(spool.end, len(b"first literal") + len(b"the third one"))
        for literal in (a, b, c):
            literal.close()

    def test_seekAndTell(self):
        """A literal seeks like a file: its size from the end, reads stop at its end."""
        _, (a, b) = self.spooled(b"0123456789", b"next")
        self.assertEqual(a.seek(0, io.SEEK_END), 10)
        self.assertEqual(a.read(5), b"")
        a.seek(3)
        self.assertEqual((a.read(4), a.tell()), (b"3456", 7))
        a.seek(-2, io.SEEK_CUR)
        self.assertEqual(a.read(100), b"56789")
        self.assertRaises(ValueError, a.seek, -1)
        self.assertEqual(b.read(), b"next")
        a.close()
        b.close()

    def test_fileClosedWithTheLastLiteral(self):
        """The file is closed when its last literal is (closing one twice counts once)."""
        spool, (a, b) = self.spooled(b"one", b"two")
        a.close()
        a.close()
        self.assertFalse(spool.file.closed)
        self.assertEqual(b.read(), b"two")
        b.close()
        self.assertTrue(spool.file.closed)
