"""
The ESEARCH response (RFC 4731) and which matches RETURN (SAVE) keeps (RFC
5182), pure: SEARCH's RETURN options use them, and so can SORT's (RFC 5267 ESORT),
which returns the same response over numbers in sort order.
"""

from __future__ import annotations

from typing import AbstractSet, Sequence

from mailstack.imap.response import formatSequenceSet, quoted

# Result items in the order Dovecot writes them (RFC 4731 leaves it free).
RESULT_OPTIONS = ("MIN", "MAX", "ALL", "COUNT")


def esearchResponse(tag: bytes, numbers: Sequence[int], returns: AbstractSet[str],
                    uid: bool = False, modseq: int | None = None,
                    partial: tuple[int, int] | None = None) -> bytes:
    """
    C{* ESEARCH (TAG "tag") [UID] [MIN n] [MAX n] [ALL set] [PARTIAL
    (range set)] [COUNT n] [MODSEQ m]} and its CRLF (Dovecot's order).

    An empty result has no MIN, MAX or ALL (RFC 4731 3.1: they would be
    meaningless) but COUNT 0; MODSEQ (RFC 7162 3.1.5) comes only with a
    non-empty result.

    @param numbers: the result in its order (ascending for SEARCH, sort order
        for SORT): MIN is the first, MAX the last, ALL keeps the order.
    @param returns: the RETURN options asked for (others, such as SAVE,
        are ignored here).
    @param uid: the command was a UID command (the numbers are UIDs).
    @param modseq: the MODSEQ to report, if the search used MODSEQ.
    @param partial: RETURN (PARTIAL low:high) (RFC 5267 4.4): the numbers
        at those positions of the result, or NIL when there are none there.
    """
    items = [b"* ESEARCH (TAG " + quoted(tag) + b")"]
    if uid:
        items.append(b"UID")
    if numbers:
        if "MIN" in returns:
            items.append(b"MIN %d" % (numbers[0],))
        if "MAX" in returns:
            items.append(b"MAX %d" % (numbers[-1],))
        if "ALL" in returns:
            items.append(b"ALL " + formatSequenceSet(numbers))
    if partial is not None:
        window = partialWindow(numbers, partial)
        items.append(b"PARTIAL (%d:%d %s)" % (
            partial[0], partial[1], formatSequenceSet(window) if window else b"NIL"))
    if "COUNT" in returns:
        items.append(b"COUNT %d" % (len(numbers),))
    if modseq is not None and numbers:
        items.append(b"MODSEQ %d" % (modseq,))
    return b" ".join(items) + b"\r\n"


def answersWithESEARCH(returns: AbstractSet[str], withModseq: bool = False) -> bool:
    """
    Whether a command with these RETURN options gets an ESEARCH response:
    not for SAVE alone (RFC 5182 2.1), unless the search used MODSEQ (its
    highest mod-sequence is still reported, as Dovecot does).
    """
    return bool(returns - {"SAVE"}) or withModseq


def returnedMessages(found: Sequence[int], returns: AbstractSet[str],
                     partial: tuple[int, int] | None = None) -> list[int]:
    """
    The messages a result with these RETURN options is about: with MIN
    and/or MAX and neither ALL nor COUNT, only the first and/or last match;
    otherwise every match. RETURN (SAVE) keeps these (RFC 5182) and MODSEQ
    is the highest of theirs (RFC 4731 3.2), as Dovecot has it.

    @param found: the result in its order (UIDs).
    @param partial: the range of RETURN (PARTIAL): without ALL or COUNT,
        the messages at those positions, and the MIN/MAX ones if asked (as
        Dovecot keeps them).
    """
    if not found or "ALL" in returns or "COUNT" in returns:
        return list(found)
    if partial is None and "MIN" not in returns and "MAX" not in returns:
        return list(found)
    kept = partialWindow(found, partial) if partial is not None else []
    if "MIN" in returns and found[0] not in kept:
        kept.insert(0, found[0])
    if "MAX" in returns and found[-1] not in kept:
        kept.append(found[-1])
    return kept


def partialWindow(numbers: Sequence[int], partial: tuple[int, int]) -> list[int]:
    """The numbers at 1-based positions C{low} to C{high} of C{numbers} (RFC 5267 4.4)."""
    low, high = partial
    return list(numbers[low - 1:high])
