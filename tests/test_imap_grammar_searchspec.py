"""
Tests for L{mailstack.imap.grammar.searchspec}: SEARCH keys, read through
SEARCH's argument parser (which adds the CHARSET prefix).
"""

import datetime

from twisted.trial import unittest

from mailstack.imap.grammar.arguments import args_search
from mailstack.imap.grammar.reader import ParseError, Reader
from mailstack.imap.grammar.sequence import SequenceSet


def reader(*parts):
    return Reader(list(parts))


class SearchParseTests(unittest.TestCase):
    """
    SEARCH programs, read as the server reads SEARCH's arguments.
    """

    def parse(self, text, *more):
        """C{(charset, key)}; RETURN options are tested in tests/test_imap_esearch.py."""
        r = reader(text, *more)
        returns, charset, key = args_search(r)
        r.end()
        return charset, key

    def test_simple(self):
        """A single flag key."""
        self.assertEqual(self.parse(b"SEEN"), (None, ("FLAG", "\\Seen", True)))

    def test_charset(self):
        """CHARSET first."""
        charset, key = self.parse(b'CHARSET UTF-8 SUBJECT "x"')
        self.assertEqual(charset, "UTF-8")
        self.assertEqual(key, ("HEADER", b"SUBJECT", b"x"))

    def test_implicitAnd(self):
        """Several keys are ANDed."""
        self.assertEqual(self.parse(b"UNSEEN LARGER 100")[1],
                         ("AND", [("FLAG", "\\Seen", False), ("SIZE", ">", 100)]))

    def test_orNot(self):
        """OR and NOT nest."""
        self.assertEqual(self.parse(b"OR NOT SEEN FROM alice")[1],
                         ("OR", ("NOT", ("FLAG", "\\Seen", True)),
                          ("ADDRESS", b"FROM", b"alice")))

    def test_parenthesized(self):
        """A parenthesized group."""
        self.assertEqual(self.parse(b"(DELETED DRAFT)")[1],
                         ("AND", [("FLAG", "\\Deleted", True), ("FLAG", "\\Draft", True)]))

    def test_sequenceAndUID(self):
        """A bare sequence set and UID."""
        key = self.parse(b"1:3 UID 5:*")[1]
        self.assertEqual(key[1][0], ("SEQ", SequenceSet([(1, 3)])))
        self.assertEqual(key[1][1], ("UID", SequenceSet([(5, None)])))

    def test_dates(self):
        """Internal and sent dates."""
        self.assertEqual(self.parse(b"SINCE 1-Feb-1994")[1],
                         ("DATE", "internal", ">=", datetime.date(1994, 2, 1)))
        self.assertEqual(self.parse(b"SENTBEFORE 1-Feb-1994")[1],
                         ("DATE", "sent", "<", datetime.date(1994, 2, 1)))

    def test_header(self):
        """HEADER name value."""
        self.assertEqual(self.parse(b'HEADER X-Spam ""')[1], ("HEADER", b"X-Spam", b""))

    def test_newOld(self):
        """NEW is RECENT UNSEEN; OLD is NOT RECENT."""
        self.assertEqual(self.parse(b"NEW")[1],
                         ("AND", [("RECENT", True), ("FLAG", "\\Seen", False)]))
        self.assertEqual(self.parse(b"OLD")[1], ("RECENT", False))

    def test_keyword(self):
        """KEYWORD and UNKEYWORD."""
        self.assertEqual(self.parse(b"UNKEYWORD $Junk")[1], ("KEYWORD", "$Junk", False))

    def test_keywordIsAnAtom(self):
        """KEYWORD/UNKEYWORD take a flag-keyword (an atom): no system flag, no 8-bit."""
        self.assertEqual(self.parse(b"KEYWORD $Junk")[1], ("KEYWORD", "$Junk", True))
        for text in (b"KEYWORD \\Seen", b"UNKEYWORD \\Flagged", b"KEYWORD \\*",
                     b"KEYWORD caf\xc3\xa9", b"KEYWORD"):
            self.assertRaises(ParseError, self.parse, text)

    def test_unknownKey(self):
        """An unknown key says so, wherever it is (not 'Missing space between arguments')."""
        for text in (b"FOO", b"SEEN FOO", b"OR FOO SEEN", b"NOT (FOO)"):
            with self.assertRaises(ParseError) as caught:
                self.parse(text)
            self.assertEqual(str(caught.exception), "Unknown search key FOO")

    def test_literalString(self):
        """Search strings may be literals (8-bit text)."""
        self.assertEqual(self.parse(b"CHARSET UTF-8 BODY {4}", "caf\u00e9".encode()[:4], b"")[1],
                         ("BODY", "caf\u00e9".encode()[:4]))

    def test_errors(self):
        """Unknown keys, missing arguments, empty groups."""
        for text in (b"BOGUS", b"FROM", b"()", b"OR SEEN", b"LARGER x"):
            self.assertRaises(ParseError, self.parse, text)

    def test_depthLimited(self):
        """Absurd nesting is refused, not a stack overflow."""
        self.assertRaises(ParseError, self.parse, b"NOT " * 200 + b"SEEN")
