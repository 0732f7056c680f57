"""
IMAP sequence sets (RFC 3501 C{sequence-set}), pure: parsed from a
L{Reader}, and resolved against a mailbox's message count or UID list.
"""

from __future__ import annotations

import bisect
from typing import Sequence, Union

from mailstack.imap.grammar.reader import ParseError, Reader

# A sequence-set range: (low, high), None standing for '*'.
Range = tuple[Union[int, None], Union[int, None]]


class SequenceSet:
    """
    A parsed sequence set (RFC 3501 C{sequence-set}): ranges of numbers where
    L{None} stands for C{*}.
    """

    def __init__(self, ranges: list[Range]) -> None:
        self.ranges = ranges

    def __repr__(self) -> str:
        return "SequenceSet(%r)" % (self.ranges,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SequenceSet) and self.ranges == other.ranges

    @classmethod
    def parse(cls, reader: Reader) -> SequenceSet:
        ranges: list[Range] = []
        while True:
            low = cls._number(reader)
            high = low
            if reader.trySkip(b":"):
                high = cls._number(reader)
            ranges.append((low, high))
            if not reader.trySkip(b","):
                return cls(ranges)

    @staticmethod
    def _number(reader: Reader) -> int | None:
        if reader.trySkip(b"*"):
            return None
        try:
            return reader.nzNumber()
        except ParseError:
            raise ParseError("Invalid sequence set")

    @classmethod
    def fromText(cls, text: bytes) -> SequenceSet:
        reader = Reader([text])
        result = cls.parse(reader)
        reader.end()
        return result

    def sequenceIndices(self, count: int) -> Sequence[int]:
        """
        0-based indices for message sequence numbers in a mailbox of C{count}.

        @raise ParseError: for a number above C{count} (or any, if empty).
        """
        spans = []
        for first, last in self.ranges:
            low = count if first is None else first
            high = count if last is None else last
            if low > high:
                low, high = high, low
            if low < 1 or high > count:
                raise ParseError("Invalid message sequence number")
            spans.append((low - 1, high))
        return _merge(spans)

    def uidIndices(self, uids: Sequence[int]) -> Sequence[int]:
        """
        0-based indices in the ascending list C{uids} of the UIDs in this set;
        UIDs not there are ignored. C{*} is the largest UID, so C{n:*} always
        includes the last message (RFC 3501 6.4.8).
        """
        if not uids:
            return []
        star = uids[-1]
        spans = []
        for first, last in self.ranges:
            low = star if first is None else first
            high = star if last is None else last
            if low > high:
                low, high = high, low
            spans.append((bisect.bisect_left(uids, low), bisect.bisect_right(uids, high)))
        return _merge(spans)

    def containsUID(self, uid: int, star: int) -> bool:
        for first, last in self.ranges:
            low = star if first is None else first
            high = star if last is None else last
            if min(low, high) <= uid <= max(low, high):
                return True
        return False


def _merge(spans: list[tuple[int, int]]) -> Sequence[int]:
    spans = [span for span in spans if span[0] < span[1]]
    if len(spans) == 1:
        return range(*spans[0])
    spans.sort()
    out: list[int] = []
    last = -1
    for start, stop in spans:
        for i in range(max(start, last), stop):
            out.append(i)
        last = max(last, stop)
    return out
