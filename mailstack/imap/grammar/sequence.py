"""
IMAP sequence sets (RFC 3501 C{sequence-set}), pure: parsed from a
L{Reader}, and resolved against a mailbox's message count or UID list.
RFC 5182 (SEARCHRES) adds C{$}, the messages the last SEARCH RETURN (SAVE)
found: parsed as a marker that the session replaces by those UIDs
(L{SequenceSet.resolved}) before the set is used.
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

    @ivar saved: this is RFC 5182's C{$} (no ranges of its own): the session's
        saved search result stands for it (see L{resolved}).
    """

    def __init__(self, ranges: list[Range], saved: bool = False) -> None:
        self.ranges = ranges
        self.saved = saved

    def __repr__(self) -> str:
        if self.saved:
            return "SequenceSet($)"
        return "SequenceSet(%r)" % (self.ranges,)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SequenceSet) and self.ranges == other.ranges
                and self.saved == other.saved)

    @classmethod
    def parse(cls, reader: Reader, allowSaved: bool = True) -> SequenceSet:
        """
        C{sequence-set / "$"} (RFC 5182: C{$} stands alone, never in a list
        or a range).

        @param allowSaved: whether C{$} may stand here; not where it could
            only be empty (QRESYNC's SELECT parameters: SELECT empties it).
        """
        if allowSaved and reader.trySkip(b"$"):
            return cls([], saved=True)
        ranges: list[Range] = []
        while True:
            low = cls._number(reader)
            high = low
            if reader.trySkip(b":"):
                high = cls._number(reader)
            ranges.append((low, high))
            if not reader.trySkip(b","):
                return cls(ranges)

    @classmethod
    def fromUIDs(cls, uids: Sequence[int]) -> SequenceSet:
        """The set of exactly C{uids} (ascending), runs as ranges."""
        ranges: list[Range] = []
        for uid in uids:
            if ranges and ranges[-1][1] == uid - 1:
                ranges[-1] = (ranges[-1][0], uid)
            else:
                ranges.append((uid, uid))
        return cls(ranges)

    def resolved(self, savedUIDs: Sequence[int]) -> SequenceSet:
        """
        This set with C{$} replaced by C{savedUIDs} (ascending UIDs: a UID set
        whatever the command, since a saved result names messages, not
        positions); any other set is returned as it is.
        """
        if not self.saved:
            return self
        return SequenceSet.fromUIDs(savedUIDs)

    def _checkResolved(self) -> None:
        if self.saved:
            raise ParseError("$ (a saved search result) cannot be used here")

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

        @raise ParseError: for a number above C{count} (or any, if empty), or
            for an unresolved C{$}.
        """
        self._checkResolved()
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
        self._checkResolved()
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
        self._checkResolved()
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
