"""
Tests for the differential harness's own pieces (tests/differential/): what
its normalisation hides and keeps, how it splits FETCH responses, and which
differences its deliberate list explains. The harness itself runs in
tests/e2e/test_differential.py.
"""

from twisted.trial import unittest

from tests.differential import corpus
from tests.differential.deliberate import Deliberate, unexplained
from tests.differential.normalise import Normaliser, fetchItems
from tests.differential.runner import Difference


class NormaliserTests(unittest.TestCase):
    """
    Only the documented differences are hidden.
    """

    def test_statusTextDropped(self):
        """Human text after a status and its response code goes; the code stays."""
        n = Normaliser()
        self.assertEqual(n.line(b"OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"),
                         b"OK [READ-WRITE]\r\n")
        self.assertEqual(n.line(b"* BYE Logging out\r\n"), b"* BYE\r\n")
        self.assertNotEqual(n.line(b"NO [TRYCREATE] x\r\n"), n.line(b"NO x\r\n"))

    def test_uidValidityNumbered(self):
        """UIDVALIDITY values become V1, V2... per server, so a change still shows."""
        n = Normaliser()
        self.assertEqual(n.line(b"* OK [UIDVALIDITY 1730000000] UIDs valid\r\n"),
                         b"* OK [UIDVALIDITY V1]\r\n")
        self.assertEqual(n.line(b"* STATUS INBOX (UIDVALIDITY 1730000000)\r\n"),
                         b"* STATUS INBOX (UIDVALIDITY V1)\r\n")
        self.assertEqual(n.line(b"* OK [UIDVALIDITY 17] x\r\n"), b"* OK [UIDVALIDITY V2]\r\n")

    def test_fetchItemOrder(self):
        """FETCH items compare in any order; their values exactly, message data untouched."""
        n = Normaliser()
        a = n.line(b"* 6 FETCH (BODY[TEXT]<0> {5}\r\nUIDVA FLAGS (\\Seen))\r\n")
        b = n.line(b"* 6 FETCH (FLAGS (\\Seen) BODY[TEXT]<0> {5}\r\nUIDVA)\r\n")
        self.assertEqual(a, b)
        self.assertNotEqual(a, n.line(b"* 6 FETCH (FLAGS (\\Seen) BODY[TEXT]<0> {5}\r\nUIDVB)\r\n"))

    def test_fetchItems(self):
        """Items split at the top level: sections with spaces, strings with parentheses, literals."""
        self.assertEqual(
            fetchItems(b'UID 5 BODY[HEADER.FIELDS (A B)] "x) \\" y" ENVELOPE ((NIL "a") NIL) '
                       b'BODY[] {3}\r\n) ()'),
            [b"UID 5", b'BODY[HEADER.FIELDS (A B)] "x) \\" y"', b'ENVELOPE ((NIL "a") NIL)',
             b"BODY[] {3}\r\n) ()"])

    def test_flagListsSorted(self):
        """FLAGS and PERMANENTFLAGS lists compare as sets."""
        n = Normaliser()
        self.assertEqual(n.line(b"* FLAGS (\\Seen $b $a)\r\n"), n.line(b"* FLAGS ($a \\Seen $b)\r\n"))
        self.assertEqual(n.line(b"* OK [PERMANENTFLAGS ($b $a \\*)] x\r\n"),
                         b"* OK [PERMANENTFLAGS ($a $b \\*)]\r\n")


class StatusNameTests(unittest.TestCase):
    """
    A STATUS mailbox name compares as an astring.
    """

    def test_quotedOrAtom(self):
        """"INBOX" and INBOX are the same name; a name that needs its quotes keeps them."""
        n = Normaliser()
        self.assertEqual(n.line(b'* STATUS "INBOX" (MESSAGES 2)\r\n'),
                         n.line(b"* STATUS INBOX (MESSAGES 2)\r\n"))
        self.assertEqual(n.line(b'* STATUS "a b" (MESSAGES 2)\r\n'),
                         b'* STATUS "a b" (MESSAGES 2)\r\n')
        self.assertNotEqual(n.line(b'* STATUS "INBOX" (MESSAGES 2)\r\n'),
                            n.line(b"* STATUS INBOX (MESSAGES 3)\r\n"))


def difference(command, ours, theirs, script="s"):
    return Difference(script, 1, command, command, ours, theirs)


class DeliberateTests(unittest.TestCase):
    """
    The deliberate list explains exactly what it names.
    """

    def test_wholeAnswer(self):
        """An entry without messages explains any answer to its command, nothing else."""
        entry = Deliberate("x", "why", commands=(b"SEARCH KEYWORD \\Seen",))
        self.assertTrue(entry.explains(difference(b"SEARCH KEYWORD \\Seen", [b"BAD\r\n"], []), {}))
        self.assertFalse(entry.explains(difference(b"SEARCH SEEN", [b"BAD\r\n"], []), {}))

    def test_messages(self):
        """An entry with messages explains FETCH lines of those messages only."""
        entry = Deliberate("x", "why", messages=("garbage-type",))
        names = {12: "garbage-type", 13: "upper-type"}
        self.assertTrue(entry.explains(difference(b"FETCH 1:* BODY", [b"* 12 FETCH (x)\r\n"],
                                                  [b"* 12 FETCH (y)\r\n"]), names))
        self.assertFalse(entry.explains(difference(b"FETCH 1:* BODY", [b"* 13 FETCH (x)\r\n"],
                                                   []), names))
        self.assertFalse(entry.explains(difference(b"FETCH 1:* BODY", [b"OK\r\n"], []), names))

    def test_unexplainedAndUnused(self):
        """unexplained() returns what no entry explains and the entries never used (not 'sometimes' ones)."""
        entries = [Deliberate("a", "why", commands=(b"A",)), Deliberate("b", "why", commands=(b"B",)),
                   Deliberate("c", "why", commands=(b"C",), sometimes=True)]
        other = difference(b"Z", [b"x"], [])
        left, unused = unexplained([difference(b"A", [b"x"], []), other], {}, entries)
        self.assertEqual(left, [other])
        self.assertEqual(unused, ["b"])


class CorpusTests(unittest.TestCase):
    """
    The corpus is deterministic and holds what the harness relies on.
    """

    def test_generatedDeterministic(self):
        """The same seed gives the same messages; none ends in a lone CR (Dovecot's APPEND drops it)."""
        self.assertEqual(corpus.generated(3, 50), corpus.generated(3, 50))
        self.assertNotEqual(corpus.generated(3, 50), corpus.generated(4, 50))
        for m in corpus.generated(3, 200) + corpus.representative():
            self.assertFalse(m.data.endswith(b"\r"), m.name)

    def test_representativeNames(self):
        """Every representative message has its own name (deliberate entries refer to them)."""
        names = [m.name for m in corpus.representative()]
        self.assertEqual(len(names), len(set(names)))
        self.assertIn("garbage-type", names)


class CombinedExplanationTests(unittest.TestCase):
    """
    One answer can hold differences of several deliberate entries.
    """

    def test_linesByDifferentEntries(self):
        """Each differing FETCH line may be explained by the entry for its own message."""
        entries = [Deliberate("a", "why", messages=("one",)), Deliberate("b", "why", messages=("two",))]
        names = {1: "one", 2: "two", 3: "three"}
        both = difference(b"FETCH 1:* BODY", [b"* 1 FETCH (x)\r\n", b"* 2 FETCH (x)\r\n"], [])
        self.assertEqual(unexplained([both], names, entries), ([], []))
        third = difference(b"FETCH 1:* BODY", [b"* 1 FETCH (x)\r\n", b"* 3 FETCH (x)\r\n"], [])
        self.assertEqual(unexplained([third], names, entries)[0], [third])


class UIDPlusNormalisationTests(unittest.TestCase):
    """
    The UIDVALIDITY inside APPENDUID and COPYUID is numbered like the others.
    """

    def test_appendAndCopyUID(self):
        """APPENDUID and COPYUID keep their UIDs; their UIDVALIDITY becomes the server's V number."""
        n = Normaliser()
        n.line(b"* OK [UIDVALIDITY 99] x\r\n")
        self.assertEqual(n.line(b"OK [APPENDUID 99 25] Append completed.\r\n"),
                         b"OK [APPENDUID V1 25]\r\n")
        self.assertEqual(n.line(b"OK [COPYUID 7 1:3 1:3] Copy completed.\r\n"),
                         b"OK [COPYUID V2 1:3 1:3]\r\n")


class OnlyBlankLineTests(unittest.TestCase):
    """
    The blank-line entry accepts nothing but one CRLF more or less.
    """

    def test_onlyBlankLine(self):
        """Answers differing by a final CRLF in the literal are accepted; other changes are not."""
        from tests.differential.deliberate import _onlyBlankLine
        ours = [b"* 5 FETCH (BODY[2.HEADER.FIELDS (SUBJECT)] {2}\r\n\r\n)\r\n"]
        self.assertTrue(_onlyBlankLine(difference(b"F", ours,
                                                  [b"* 5 FETCH (BODY[2.HEADER.FIELDS (SUBJECT)] {0}\r\n)\r\n"])))
        self.assertFalse(_onlyBlankLine(difference(b"F", ours,
                                                   [b"* 5 FETCH (BODY[2.HEADER.FIELDS (SUBJECT)] {1}\r\nx)\r\n"])))
        self.assertFalse(_onlyBlankLine(difference(b"F", ours,
                                                   [b"* 6 FETCH (BODY[2.HEADER.FIELDS (SUBJECT)] {0}\r\n)\r\n"])))
