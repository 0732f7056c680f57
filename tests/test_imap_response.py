"""
Tests for L{mailstack.imap.response}: the pure IMAP response formatting.
"""

from twisted.trial import unittest

from mailstack.imap import response
from mailstack.imap.grammar.reader import parseDateTime


class ResponseFormatTests(unittest.TestCase):
    """
    Response formatting.
    """

    def test_string(self):
        """Quoted when possible, escaped; a literal for 8-bit and CRLF."""
        self.assertEqual(response.string(b'a"b\\c'), b'"a\\"b\\\\c"')
        self.assertEqual(response.string("\u00e9".encode()), b"{2}\r\n\xc3\xa9")
        self.assertEqual(response.string(b"a\r\nb"), b"{4}\r\na\r\nb")

    def test_text(self):
        """Human-readable text is 7-bit printable: anything else is escaped."""
        self.assertEqual(response.text("Unknown command FROB"), b"Unknown command FROB")
        self.assertEqual(response.text("invalid keyword '\ufffd'"), b"invalid keyword '\\ufffd'")
        self.assertEqual(response.text("caf\u00e9 \u65e5\r\n\x00\x7f"),
                         b"caf\\xe9 \\u65e5\\r\\n\\x00\\x7f")
        self.assertEqual(response.text(b"a\xffb"), b"a\\xffb")

    def test_taggedLineSevenBit(self):
        """A tagged line never carries 8-bit octets or line breaks in its text."""
        line = response.taggedLine(b"a", "NO", None, "no mailbox named \u65e5\r\nx")
        self.assertEqual(line, b"a NO no mailbox named \\u65e5\\r\\nx\r\n")

    def test_nstring(self):
        """None is NIL."""
        self.assertEqual(response.nstring(None), b"NIL")

    def test_astring(self):
        """Atoms stay atoms; NIL, empty and specials are quoted."""
        self.assertEqual(response.astring(b"INBOX"), b"INBOX")
        self.assertEqual(response.astring(b"NIL"), b'"NIL"')
        self.assertEqual(response.astring(b""), b'""')
        self.assertEqual(response.astring(b"a b"), b'"a b"')

    def test_flags(self):
        """System flags first in a stable order, then \\Recent, then keywords."""
        self.assertEqual(response.formatFlags({"$b", "\\Seen", "\\Recent", "\\Answered"}),
                         b"(\\Answered \\Seen \\Recent $b)")

    def test_internalDate(self):
        """dd-Mon-yyyy hh:mm:ss +zzzz."""
        text = response.formatInternalDate(837596665)
        self.assertRegex(text.decode(), r'^"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"$')
        self.assertEqual(parseDateTime(text[1:-1]), 837596665)

    def test_sequenceSet(self):
        """Runs collapse."""
        self.assertEqual(response.formatSequenceSet([1, 2, 3, 5, 7, 8]), b"1:3,5,7:8")
        self.assertEqual(response.formatSequenceSet([]), b"")

    def test_taggedLine(self):
        """Codes are bracketed and followed by text."""
        self.assertEqual(response.taggedLine(b"a1", "OK", "READ-WRITE", "SELECT completed"),
                         b"a1 OK [READ-WRITE] SELECT completed\r\n")
        self.assertEqual(response.taggedLine(b"a1", "NO", None, "x"), b"a1 NO x\r\n")
