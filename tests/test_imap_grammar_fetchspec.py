"""
Tests for L{mailstack.imap.grammar.fetchspec}: FETCH data items and their
response labels.
"""

from twisted.trial import unittest

from mailstack.imap.grammar.fetchspec import FetchAttribute, Section, fetchAttributes
from mailstack.imap.grammar.reader import ParseError, Reader


def reader(*parts):
    return Reader(list(parts))


class FetchAttributeTests(unittest.TestCase):
    """
    FETCH data items.
    """

    def parse(self, text):
        r = reader(text)
        result = fetchAttributes(r)
        r.end()
        return result

    def test_macros(self):
        """ALL, FAST and FULL expand."""
        self.assertEqual([a.name for a in self.parse(b"FAST")],
                         ["FLAGS", "INTERNALDATE", "RFC822.SIZE"])
        self.assertEqual([a.name for a in self.parse(b"full")],
                         ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"])

    def test_list(self):
        """A parenthesized list of simple items."""
        self.assertEqual([a.name for a in self.parse(b"(UID RFC822.SIZE FLAGS)")],
                         ["UID", "RFC822.SIZE", "FLAGS"])

    def test_macroNotInList(self):
        """Macros are not allowed inside a list."""
        self.assertRaises(ParseError, self.parse, b"(ALL)")

    def test_bodyEmptySection(self):
        """BODY[] is the whole message."""
        [a] = self.parse(b"BODY[]")
        self.assertEqual(a, FetchAttribute("BODY", Section()))
        self.assertFalse(a.peek)
        self.assertEqual(a.label(), b"BODY[]")

    def test_peek(self):
        """BODY.PEEK is a peek and answers as BODY."""
        [a] = self.parse(b"BODY.PEEK[TEXT]")
        self.assertTrue(a.peek)
        self.assertEqual(a.label(), b"BODY[TEXT]")

    def test_partial(self):
        """<offset.length>; the response label keeps only the offset."""
        [a] = self.parse(b"BODY[]<10.20>")
        self.assertEqual(a.partial, (10, 20))
        self.assertEqual(a.label(), b"BODY[]<10>")

    def test_partialZeroLength(self):
        """A zero length is a syntax error (nz-number)."""
        self.assertRaises(ParseError, self.parse, b"BODY[]<0.0>")

    def test_partNumbers(self):
        """Part numbers with a section text."""
        [a] = self.parse(b"BODY[1.2.MIME]")
        self.assertEqual(a.section, Section((1, 2), "MIME"))
        self.assertEqual(a.label(), b"BODY[1.2.MIME]")

    def test_mimeNeedsPart(self):
        """MIME applies to a part only."""
        self.assertRaises(ParseError, self.parse, b"BODY[MIME]")

    def test_headerFields(self):
        """HEADER.FIELDS answers with the names upper-cased as Dovecot does, no stray space."""
        [a] = self.parse(b"BODY.PEEK[HEADER.FIELDS (From Subject)]")
        self.assertEqual(a.section, Section((), "HEADER.FIELDS", (b"From", b"Subject")))
        self.assertEqual(a.label(), b"BODY[HEADER.FIELDS (FROM SUBJECT)]")

    def test_headerFieldsNot(self):
        """HEADER.FIELDS.NOT on a nested message."""
        [a] = self.parse(b"BODY[2.HEADER.FIELDS.NOT (Received)]")
        self.assertEqual(a.section, Section((2,), "HEADER.FIELDS.NOT", (b"Received",)))

    def test_headerFieldsEmpty(self):
        """An empty field list is refused."""
        self.assertRaises(ParseError, self.parse, b"BODY[HEADER.FIELDS ()]")

    def test_zeroPart(self):
        """Part numbers start at 1."""
        self.assertRaises(ParseError, self.parse, b"BODY[0]")

    def test_unknown(self):
        """Unknown items are syntax errors."""
        self.assertRaises(ParseError, self.parse, b"(FLAGS BOGUS)")

    def test_rfc822Items(self):
        """RFC822.HEADER is a peek; RFC822 and RFC822.TEXT are body items."""
        header, full, text = self.parse(b"(RFC822.HEADER RFC822 RFC822.TEXT)")
        self.assertTrue(header.peek and header.isBody)
        self.assertTrue(full.isBody and not full.peek)
        self.assertTrue(text.isBody and not text.peek)
