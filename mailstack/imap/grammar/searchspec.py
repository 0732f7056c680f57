"""
SEARCH keys (RFC 3501 C{search-key}, with RFC 7162's MODSEQ, RFC 5032's
OLDER and YOUNGER and RFC 5182's C{$}), pure: a search program parsed from a
L{Reader} into nested tuples, which L{mailstack.imap.search} compiles and
evaluates; and the RETURN options of RFC 4731 (ESEARCH) and RFC 5182
(SEARCHRES) that may precede it.
"""

from __future__ import annotations

from typing import Any

from mailstack.imap.grammar.reader import ATOM_CHARS, ParseError, Reader, modseqValue
from mailstack.imap.grammar.sequence import SequenceSet

# A parsed search key: a tuple whose first item names its kind (see searchKeys).
SearchKey = tuple[Any, ...]


_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = ("BCC", "CC", "FROM", "SUBJECT", "TO")
_ADDRESS_KEYS = ("BCC", "CC", "FROM", "TO")  # matched on parsed addresses, not raw text
_DATE_KEYS = {"BEFORE": ("internal", "<"), "ON": ("internal", "="),
              "SINCE": ("internal", ">="), "SENTBEFORE": ("sent", "<"),
              "SENTON": ("sent", "="), "SENTSINCE": ("sent", ">=")}
# RFC 8514 (SAVEDATE): the date the message was saved into the mailbox.
_DATE_KEYS.update({"SAVEDBEFORE": ("saved", "<"), "SAVEDON": ("saved", "="),
                   "SAVEDSINCE": ("saved", ">=")})


_WITHIN_KEYS = ("OLDER", "YOUNGER")  # RFC 5032

_KEYS_WITH_ARGUMENTS = frozenset(
    ("KEYWORD", "UNKEYWORD", "BODY", "TEXT", "HEADER", "LARGER", "SMALLER", "UID", "MODSEQ",
     "NOT", "OR") + _HEADER_KEYS + tuple(_DATE_KEYS) + _WITHIN_KEYS)

# RFC 4731 search-return-opt, with RFC 5182's SAVE and RFC 5267's CONTEXT,
# UPDATE and PARTIAL (CONTEXT=SEARCH, ESORT).
RETURN_OPTIONS = ("MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE", "PARTIAL")


class ReturnOptions(frozenset[str]):
    """
    The RETURN options of a SEARCH or SORT, as upper-case names; with
    PARTIAL among them, C{partial} is its range C{(low, high)}, 1-based
    positions in the result, low <= high.
    """

    partial: tuple[int, int] | None = None


def searchCommand(reader: Reader) -> tuple[frozenset[str] | None, str | None, SearchKey]:
    """
    SEARCH's arguments: C{[RETURN SP "(" [search-return-opt *(SP
    search-return-opt)] ")" SP] [CHARSET SP astring SP] search-key *(SP
    search-key)} (RFC 4731 puts RETURN before CHARSET).

    @return: C{(returns, charset, key)}: the RETURN options as upper-case
        names (C{RETURN ()} means C{ALL}), or L{None} without RETURN (a
        classic C{* SEARCH} reply); the charset or L{None}; the key as
        L{searchKeys} reads it.
    """
    returns = None
    start = reader.mark()
    if reader.take(ATOM_CHARS).upper() == b"RETURN" and reader.peek() == b" ":
        reader.sp()
        returns = returnOptions(reader)
        if reader.atEnd():
            raise ParseError("Missing search parameters")
        reader.sp()
    else:
        reader.rewind(start)
    start = reader.mark()
    charset = None
    if reader.take(ATOM_CHARS).upper() == b"CHARSET":
        reader.sp()
        charset = reader.astring().decode("ascii", "replace")
        reader.sp()
    else:
        reader.rewind(start)
    if reader.atEnd():
        raise ParseError("Missing search parameters")
    return returns, charset, searchKeys(reader)


def returnOptions(reader: Reader) -> ReturnOptions:
    """
    C{"(" [search-return-opt *(SP search-return-opt)] ")"}, PARTIAL with its
    C{n:m} range (RFC 5267 4.4; C{m:n} is the same range). CONTEXT asks for
    nothing of its own (RFC 5267 4.2); without any other option than
    CONTEXT, the result is ALL, as RFC 4731 says of C{RETURN ()}; UPDATE
    alone asks for no result now, only the changes (RFC 5267 4.3). As
    Dovecot: BAD for UPDATE or PARTIAL twice, for PARTIAL beside ALL, and
    for a range that is not two non-zero numbers.
    """
    names: list[str] = []
    partial: tuple[int, int] | None = None

    def option() -> str:
        nonlocal partial
        name = reader.keyword()
        if name not in RETURN_OPTIONS:
            raise ParseError("Unknown SEARCH return option %s" % (name,))
        if name in ("UPDATE", "PARTIAL") and name in names:
            raise ParseError("SEARCH return option %s given twice" % (name,))
        if name == "PARTIAL":
            if reader.peek() != b" ":
                raise ParseError("PARTIAL range missing")
            reader.sp()
            partial = _partialRange(reader.take(ATOM_CHARS))
        names.append(name)
        return name
    reader.parenthesized(option)
    if partial is not None and "ALL" in names:
        raise ParseError("PARTIAL conflicts with ALL")
    wanted = set(names) - {"CONTEXT"}
    returns = ReturnOptions(wanted or ("ALL",))
    returns.partial = partial
    return returns


def _partialRange(text: bytes) -> tuple[int, int]:
    low, colon, high = text.partition(b":")
    if not (colon and low.isdigit() and high.isdigit()) or int(low) == 0 or int(high) == 0:
        raise ParseError("PARTIAL range broken")
    if max(int(low), int(high)) > 0xFFFFFFFF:
        raise ParseError("PARTIAL range broken")
    return (min(int(low), int(high)), max(int(low), int(high)))


def searchKeys(reader: Reader, maxDepth: int = 100) -> SearchKey:
    """
    C{search-key *(SP search-key)} to the end of the command (several keys
    mean all of them).

    @param maxDepth: how deeply parentheses, NOT and OR may nest.
    @return: the key, a tuple:
        C{("ALL",)}, C{("FLAG", name, wanted)}, C{("KEYWORD", name, wanted)},
        C{("RECENT", wanted)}, C{("HEADER", name, bytes)}, C{("ADDRESS", name,
        bytes)} (FROM, TO, CC, BCC), C{("BODY", bytes)},
        C{("TEXT", bytes)}, C{("DATE", "internal"|"sent"|"saved", op, date)},
        C{("SAVEDATESUPPORTED",)},
        C{("SIZE", ">"|"<", n)}, C{("SEQ", SequenceSet)}, C{("UID", SequenceSet)},
        C{("MODSEQ", n)}, C{("WITHIN", "OLDER"|"YOUNGER", seconds)},
        C{("NOT", key)}, C{("OR", key, key)}, C{("AND", [keys])}. A C{$}
        (RFC 5182) is a C{SEQ} or C{UID} key whose set is C{saved}.
    """
    keys = [_searchKey(reader, maxDepth)]
    while not reader.atEnd():
        reader.sp()
        keys.append(_searchKey(reader, maxDepth))
    return keys[0] if len(keys) == 1 else ("AND", keys)


def _searchKey(reader: Reader, depth: int) -> SearchKey:
    if depth <= 0:
        raise ParseError("Search program nested too deeply")
    first = reader.peek()
    if first == b"(":
        keys = reader.parenthesized(lambda: _searchKey(reader, depth - 1))
        if not keys:
            raise ParseError("Empty search key list")
        return keys[0] if len(keys) == 1 else ("AND", keys)
    if first in (b"*", b"$") or first in (b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"):
        return ("SEQ", SequenceSet.parse(reader))
    name = reader.keyword()
    if name == "ALL":
        return ("ALL",)
    if name == "SAVEDATESUPPORTED":  # RFC 8514: every message where save dates are kept
        return ("SAVEDATESUPPORTED",)
    if name in _FLAG_KEYS:
        return ("FLAG",) + _FLAG_KEYS[name]
    if name == "NEW":
        return ("AND", [("RECENT", True), ("FLAG", "\\Seen", False)])
    if name == "OLD":
        return ("RECENT", False)
    if name == "RECENT":
        return ("RECENT", True)
    if name not in _KEYS_WITH_ARGUMENTS:
        raise ParseError("Unknown search key %s" % (name,))
    reader.sp()
    if name in ("KEYWORD", "UNKEYWORD"):
        return ("KEYWORD", reader.flagKeyword(), name == "KEYWORD")
    if name in _ADDRESS_KEYS:
        return ("ADDRESS", name.encode("ascii"), reader.astring())
    if name in _HEADER_KEYS:
        return ("HEADER", name.encode("ascii"), reader.astring())
    if name in ("BODY", "TEXT"):
        return (name, reader.astring())
    if name == "HEADER":
        field = reader.astring()
        reader.sp()
        return ("HEADER", field, reader.astring())
    if name in _DATE_KEYS:
        kind, op = _DATE_KEYS[name]
        return ("DATE", kind, op, reader.date())
    if name in ("LARGER", "SMALLER"):
        return ("SIZE", ">" if name == "LARGER" else "<", reader.number())
    if name == "UID":
        return ("UID", SequenceSet.parse(reader))
    if name == "MODSEQ":  # RFC 7162: [entry-name SP entry-type SP] mod-sequence-valzer
        if reader.peek() == b'"':
            reader.quoted()
            reader.sp()
            reader.atom()
            reader.sp()
        return ("MODSEQ", modseqValue(reader, allowZero=True))
    if name in _WITHIN_KEYS:  # RFC 5032: interval = 1*DIGIT, seconds, nz-number32
        try:
            return ("WITHIN", name, reader.nzNumber())
        except ParseError:
            raise ParseError("Invalid search interval parameter")
    if name == "NOT":
        return ("NOT", _searchKey(reader, depth - 1))
    if name == "OR":
        left = _searchKey(reader, depth - 1)
        reader.sp()
        return ("OR", left, _searchKey(reader, depth - 1))
    raise ParseError("Unknown search key %s" % (name,))
