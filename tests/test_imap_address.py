"""
Tests for L{mailstack.imap.address}: address lists read as Dovecot 2.3 reads
them for ENVELOPE (each expectation below was checked against it), and
written back for SEARCH.
"""

from twisted.trial import unittest

from mailstack.imap import address


def parse(value):
    return address.parseAddresses(value)


class CommentNameTests(unittest.TestCase):
    """
    RFC 822 comments as display names.
    """

    def test_comment(self):
        """C{user@domain (Real Name)}: the comment is the name."""
        self.assertEqual(parse(b"user@domain (Real Name)"),
                         [(b"Real Name", None, b"user", b"domain")])

    def test_lastCommentWins(self):
        """Of several comments the last one is the name."""
        self.assertEqual(parse(b"a@b (x) (y) (z)"), [(b"z", None, b"a", b"b")])
        self.assertEqual(parse(b"user (in) @ domain (after)"),
                         [(b"after", None, b"user", b"domain")])

    def test_nestedAndQuotedPairs(self):
        """Nested comments stay in the name; quoted pairs are unescaped."""
        self.assertEqual(parse(b"u@d (Real (nested) Name)"),
                         [(b"Real (nested) Name", None, b"u", b"d")])
        self.assertEqual(parse(b"u@d (Real \\(quoted\\) Name \\\\ x)"),
                         [(b"Real (quoted) Name \\ x", None, b"u", b"d")])

    def test_phraseBeatsComment(self):
        """A C{name <addr>} keeps its phrase; comments around it are no name."""
        self.assertEqual(parse(b"Name <a@b> (c)"), [(b"Name", None, b"a", b"b")])
        self.assertEqual(parse(b"Name (c1) <a@b>"), [(b"Name", None, b"a", b"b")])
        self.assertEqual(parse(b"<a@b> (c)"), [(None, None, b"a", b"b")])
        self.assertEqual(parse(b'"" (x) <a@b>'), [(None, None, b"a", b"b")])

    def test_commentsInsideAngleAddress(self):
        """Comments inside C{<...>} are skipped and name nothing."""
        self.assertEqual(parse(b"<user-from (comment)@ (comment) domain.org>"),
                         [(None, None, b"user-from", b"domain.org")])

    def test_leadingCommentIsNoName(self):
        """A comment before the address is not its name."""
        self.assertEqual(parse(b"(lead) user@domain"), [(None, None, b"user", b"domain")])

    def test_emptyCommentIsNoName(self):
        """C{()} names nothing."""
        self.assertEqual(parse(b"a@b ()"), [(None, None, b"a", b"b")])

    def test_groups(self):
        """Members of a group are named by their comments; the group's comment is dropped."""
        self.assertEqual(parse(b"Team (tc): a@x.test (A), b@y.test;, c@z.test (C)"), [
            (None, None, b"Team", None), (b"A", None, b"a", b"x.test"),
            (None, None, b"b", b"y.test"), (None, None, None, None),
            (b"C", None, b"c", b"z.test")])

    def test_unclosedComment(self):
        """An unclosed comment spoils the domain, not the rest."""
        self.assertEqual(parse(b"a@b (unclosed"), [(None, None, b"a", b"MISSING_DOMAIN")])


class RecoveryTests(unittest.TestCase):
    """
    Broken address fields, read as Dovecot reads them.
    """

    def test_wordsWithoutAddress(self):
        """Words without an address are a name; one word is a mailbox."""
        self.assertEqual(parse(b"Real Name"),
                         [(b"Real Name", None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")])
        self.assertEqual(parse(b"root"), [(None, None, b"root", b"MISSING_DOMAIN")])
        self.assertEqual(parse(b'"quoted"'),
                         [(b"quoted", None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")])

    def test_brokenAngleAddress(self):
        """An unparseable C{<...>} is a SYNTAX_ERROR domain; a bad route INVALID_ROUTE."""
        self.assertEqual(parse(b"Name <a@b"), [(b"Name", None, b"a", b"SYNTAX_ERROR")])
        self.assertEqual(parse(b"<<>>"), [(None, None, b"MISSING_MAILBOX", b"SYNTAX_ERROR")])
        self.assertEqual(parse(b"<@r1 b@y.test>"), [(None, b"INVALID_ROUTE", b"b", b"y.test")])

    def test_emptyEntries(self):
        """Empty list entries are empty addresses; garbage ends the list."""
        self.assertEqual(parse(b"a@b,,c@d"), [
            (None, None, b"a", b"b"), (None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN"),
            (None, None, b"c", b"d")])
        self.assertEqual(parse(b"a@b c@d"), [(None, None, b"a", b"b")])
        self.assertEqual(parse(b"(only a comment)"), [])

    def test_neverRaises(self):
        """Any octets parse to the address list Dovecot gives them, without an exception."""
        cases = [
            (b"<<>>", [(None, None, b"MISSING_MAILBOX", b"SYNTAX_ERROR")]),
            (b"@@@", [(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
            (b'"unterminated', [(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
            (b";;;", [(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
            (b"(c", []),
            (b"a@[1.2[3]", [(None, None, b"a", b"MISSING_DOMAIN")]),
            (b"a@b (x\\", [(None, None, b"a", b"MISSING_DOMAIN")]),
            (b'"\\', [(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
            (b"<@", [(None, b"INVALID_ROUTE", b"MISSING_MAILBOX", b"SYNTAX_ERROR")]),
            (b"<@a,", [(None, b"INVALID_ROUTE", b"MISSING_MAILBOX", b"SYNTAX_ERROR")]),
            (b"g:", [(None, None, b"g", None), (None, None, None, None)]),
            (b"\x00(\x00)", [(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
            (b".", [(None, None, b".", b"MISSING_DOMAIN")]),
        ]
        for value, expected in cases:
            self.assertEqual(parse(value), expected, value)


class FormatTests(unittest.TestCase):
    """
    ENVELOPE strings for names and address parts, as Dovecot writes them.
    """

    def test_humanString(self):
        """Names: whitespace squeezed and trimmed, quotes and backslashes as literals."""
        self.assertEqual(address.humanString(b"Real Name"), b'"Real Name"')
        self.assertEqual(address.humanString(b"  spaced   out  "), b"{10}\r\nspaced out")
        self.assertEqual(address.humanString(b'A "B" C'), b'{7}\r\nA "B" C')
        self.assertEqual(address.humanString(b" "), b'""')

    def test_humanStringLineEnds(self):
        """A lone CR or LF in a name (a CR-only message) is a space between words, as in Dovecot."""
        self.assertEqual(address.humanString(b"unterminated <a@b.test>\rSubject: x"),
                         b"{34}\r\nunterminated <a@b.test> Subject: x")
        self.assertEqual(address.humanString(b"a \r\n b"), b"{3}\r\na b")

    def test_manyEscapesAsLiteral(self):
        """A mailbox with more than four quotes and backslashes is a literal; four stay quoted (as Dovecot)."""
        self.assertEqual(address.formatAddresses([(None, None, b'a"b"c"d"e"f', b"b")]),
                         b'((NIL NIL {11}\r\na"b"c"d"e"f "b"))')
        self.assertEqual(address.formatAddresses([(None, None, b'a"b', b"b")]),
                         b'((NIL NIL "a\\"b" "b"))')
        # the boundary, as Dovecot 2.3 answers it: four (quotes and backslashes
        # together) stay a quoted string, the fifth makes a literal
        self.assertEqual(address.formatAddresses([(None, None, b'a"b"c"d"e', b"b")]),
                         b'((NIL NIL "a\\"b\\"c\\"d\\"e" "b"))')
        self.assertEqual(address.formatAddresses([(None, None, b'a\\b\\c"d"e', b"b")]),
                         b'((NIL NIL "a\\\\b\\\\c\\"d\\"e" "b"))')
        self.assertEqual(address.formatAddresses([(None, None, b'a\\b\\c"d"e\\', b"b")]),
                         b'((NIL NIL {10}\r\na\\b\\c"d"e\\ "b"))')


class WriteTests(unittest.TestCase):
    """
    Addresses written back without comments (what SEARCH FROM matches).
    """

    def test_commentsDropped(self):
        """Comments inside an address vanish; a comment name is kept."""
        self.assertEqual(address.writeAddresses(parse(b"<user-from (comment)@ (c) domain.org>")),
                         b"<user-from@domain.org>")
        self.assertEqual(address.writeAddresses(parse(b"user@domain (Real Name)")),
                         b'"Real Name" <user@domain>')

    def test_groupsAndQuoting(self):
        """Groups keep their syntax; names that are not atoms are quoted and escaped."""
        self.assertEqual(
            address.writeAddresses(parse(b'g: "Carol, C." <c@x>, d@y;, Tim O\'Brien <t@z>')),
            b'g: "Carol, C." <c@x>, <d@y>;, "Tim O\\\'Brien" <t@z>')
        self.assertEqual(address.writeAddresses(parse(b"undisclosed-recipients:;")),
                         b"undisclosed-recipients:;")
