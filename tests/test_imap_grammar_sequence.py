"""
Tests for L{mailstack.imap.grammar.sequence}: sequence sets parsed and
resolved against message numbers and UIDs.
"""

from twisted.trial import unittest

from mailstack.imap.grammar.reader import ParseError
from mailstack.imap.grammar.sequence import SequenceSet


class SequenceSetTests(unittest.TestCase):
    """
    Sequence sets: numbers, ranges, '*'.
    """

    def test_parse(self):
        """Numbers, ranges and * parse into ranges."""
        self.assertEqual(SequenceSet.fromText(b"1,3:5,7:*").ranges,
                         [(1, 1), (3, 5), (7, None)])

    def test_invalid(self):
        """Zero, empty parts and junk are refused."""
        for text in (b"0", b"1,", b":3", b"1:", b"a"):
            self.assertRaises(ParseError, SequenceSet.fromText, text)

    def test_sequenceIndices(self):
        """Sequence numbers map to 0-based indices, reversed ranges allowed."""
        s = SequenceSet.fromText(b"2,4:3")
        self.assertEqual(list(s.sequenceIndices(5)), [1, 2, 3])

    def test_star(self):
        """* is the last message."""
        self.assertEqual(list(SequenceSet.fromText(b"*").sequenceIndices(3)), [2])
        self.assertEqual(list(SequenceSet.fromText(b"2:*").sequenceIndices(3)), [1, 2])

    def test_outOfRange(self):
        """A sequence number above the message count is an error."""
        self.assertRaises(ParseError, SequenceSet.fromText(b"4").sequenceIndices, 3)
        self.assertRaises(ParseError, SequenceSet.fromText(b"1").sequenceIndices, 0)
        self.assertRaises(ParseError, SequenceSet.fromText(b"*").sequenceIndices, 0)

    def test_overlapsMerged(self):
        """Overlapping ranges give each message once, in order."""
        self.assertEqual(list(SequenceSet.fromText(b"3,1:4,2").sequenceIndices(5)),
                         [0, 1, 2, 3])

    def test_uidIndices(self):
        """UID sets select existing UIDs only."""
        uids = [3, 5, 9, 10]
        self.assertEqual(list(SequenceSet.fromText(b"1:5").uidIndices(uids)), [0, 1])
        self.assertEqual(list(SequenceSet.fromText(b"6:8").uidIndices(uids)), [])
        self.assertEqual(list(SequenceSet.fromText(b"4,10").uidIndices(uids)), [3])

    def test_uidStarBeyondLast(self):
        """C{n:*} with n past the last UID still matches the last message."""
        self.assertEqual(list(SequenceSet.fromText(b"100:*").uidIndices([3, 5])), [1])

    def test_uidEmptyMailbox(self):
        """Any UID set of an empty mailbox is empty."""
        self.assertEqual(list(SequenceSet.fromText(b"1:*").uidIndices([])), [])

    def test_containsUID(self):
        """Membership with * resolved to the largest UID."""
        s = SequenceSet.fromText(b"2:4,*")
        self.assertTrue(s.containsUID(3, 10))
        self.assertTrue(s.containsUID(10, 10))
        self.assertFalse(s.containsUID(5, 10))

    def test_hugeRange(self):
        """A 1:4294967295 UID range costs nothing."""
        uids = list(range(1, 10001))
        self.assertEqual(len(SequenceSet.fromText(b"1:4294967295").uidIndices(uids)), 10000)
