"""
The IMAP4rev1 wire format (RFC 3501 section 9), pure: no I/O, no Twisted.

A client command reaches this module already framed (by the server) as a list
of parts: C{[line, literal, line, literal, ..., line]}. Each line is bytes
without its CRLF; every line but the last ends with a literal announcement
C{{n}} or C{{n+}} (RFC 7888), and the part after it is that literal's content:
C{bytes}, or a binary file object for a large one (an APPEND message spooled
to disk). L{Reader} walks those parts token by token; the C{args_*} functions
parse each command's arguments into plain values, raising L{ParseError}
(answered with BAD) on any syntax error.

Responses are formatted by L{mailstack.imap.response}.
"""

from __future__ import annotations

import bisect
import calendar
import dataclasses
import datetime
import re
from typing import IO, Any, Callable, Literal, Sequence, TypeVar, Union, overload

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBERS = {name.upper(): i + 1 for i, name in enumerate(MONTHS)}

# atom-specials: ( ) { SP CTL list-wildcards quoted-specials resp-specials
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0, 32)) | {127}
_ATOM_CHARS = frozenset(range(256)) - _ATOM_SPECIALS
# ASTRING-CHAR octets; mailstack.imap.response sends a string bare when it is made of them.
ASTRING_CHARS = _ATOM_CHARS | {ord("]")}
_LIST_CHARS = ASTRING_CHARS | {ord("%"), ord("*")}
# tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR is 7-bit (CHAR is %x01-7F).
_TAG_CHARS = frozenset(c for c in ASTRING_CHARS if c < 128) - {ord("+")}
_FETCH_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")
_DIGITS = frozenset(b"0123456789")

LITERAL_AT_END = re.compile(rb"\{(\d{1,20})(\+?)\}\Z")

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_SYSTEM_BY_LOWER = {flag.lower(): flag for flag in SYSTEM_FLAGS + ("\\Recent",)}

# A date-time's zone is [+-]HHMM: minutes below 60, at most 14 hours from UTC
# (the widest real offsets: -12:00 to +14:00).
MAX_ZONE_MINUTES = 14 * 60

# The largest number IMAP allows (RFC 3501: number is 32-bit unsigned).
MAX_NUMBER = 4294967295

# The largest mod-sequence value (RFC 7162: 63-bit unsigned).
MAX_MODSEQ = 2 ** 63 - 1


# One part of a framed command: a line, or a literal's content (bytes, or the
# spooled file of a large APPEND message).
Part = Union[bytes, bytearray, IO[bytes]]
# A parsed search key: a tuple whose first item names its kind (args_search).
SearchKey = tuple[Any, ...]
# A sequence-set range: (low, high), None standing for '*'.
Range = tuple[Union[int, None], Union[int, None]]
_T = TypeVar("_T")


class ParseError(Exception):
    """
    A syntax error in a client command; C{str()} is the text for the BAD reply.
    """


def commandTag(line: bytes) -> bytes | None:
    """The tag a command line starts with (bytes), or L{None} if it has no valid one."""
    try:
        return Reader([line]).tag()
    except ParseError:
        return None


def literalAnnouncement(line: bytes) -> tuple[int, bool] | None:
    """
    The literal announced at the end of a command line.

    @return: C{(size, synchronizing)}, or L{None} if the line announces none.
    """
    match = LITERAL_AT_END.search(line)
    if match is None:
        return None
    return int(match.group(1)), not match.group(2)


class Reader:
    """
    A cursor over one framed command (see the module docstring).

    @param maxString: the largest literal (in octets) accepted where a string
        is expected (larger spooled literals are only for APPEND's message).
    """

    def __init__(self, parts: Sequence[Part], maxString: int = 65536) -> None:
        self._parts = parts
        self._i = 0
        self._pos = 0
        self.maxString = maxString

    # -- position ------------------------------------------------------------

    def _line(self) -> bytes:
        # Lines are at even indices (no cast(): this is the parser's hottest call).
        return self._parts[self._i]  # type: ignore[return-value]

    def peek(self) -> bytes:
        """The next octet (as bytes of length 1), or C{b""} at a line's end."""
        return self._line()[self._pos:self._pos + 1]

    def atEnd(self) -> bool:
        return self._i == len(self._parts) - 1 and self._pos >= len(self._line())

    def end(self) -> None:
        if not self.atEnd():
            raise ParseError("Unexpected characters at end of command")

    def sp(self) -> None:
        if self.peek() != b" ":
            raise ParseError("Missing space between arguments")
        self._pos += 1

    def skip(self, expected: bytes) -> None:
        """Consume C{expected} (bytes) or raise L{ParseError}."""
        line = self._line()
        if line[self._pos:self._pos + len(expected)].upper() != expected.upper():
            raise ParseError("Expected %s" % (expected.decode("ascii"),))
        self._pos += len(expected)

    def trySkip(self, expected: bytes) -> bool:
        """Consume C{expected} if it is next (case-insensitive); say whether it was."""
        line = self._line()
        if line[self._pos:self._pos + len(expected)].upper() == expected.upper():
            self._pos += len(expected)
            return True
        return False

    def _run(self, allowed: frozenset[int]) -> bytes:
        line = self._line()
        start = self._pos
        end = start
        while end < len(line) and line[end] in allowed:
            end += 1
        self._pos = end
        return line[start:end]

    # -- tokens --------------------------------------------------------------

    def tag(self) -> bytes:
        """
        The command's tag: 7-bit ASTRING-CHARs but C{+}, ending at a space
        or the line's end (C{a+ NOOP} has no valid tag, not the tag C{a}).
        """
        tag = self._run(_TAG_CHARS)
        if not tag or self.peek() not in (b" ", b""):
            raise ParseError("Invalid tag")
        return tag

    def atom(self) -> bytes:
        value = self._run(_ATOM_CHARS)
        if not value:
            raise ParseError("Expected an atom")
        return value

    def keyword(self) -> str:
        """
        An atom, upper-cased and decoded (command names, search keys...);
        8-bit octets become C{\\xNN} escapes, so error texts stay 7-bit.
        """
        return self.atom().decode("ascii", "backslashreplace").upper()

    def number(self) -> int:
        digits = self._run(_DIGITS)
        if not digits or len(digits) > 10 or int(digits) > MAX_NUMBER:
            raise ParseError("Expected a number")
        return int(digits)

    def nzNumber(self) -> int:
        value = self.number()
        if value == 0:
            raise ParseError("Expected a non-zero number")
        return value

    def _literalHere(self) -> bool:
        return (self._i < len(self._parts) - 1
                and LITERAL_AT_END.fullmatch(self._line()[self._pos:]) is not None)

    @overload
    def literal(self, allowFile: Literal[False] = False) -> bytes: ...

    @overload
    def literal(self, allowFile: bool) -> bytes | IO[bytes]: ...

    def literal(self, allowFile: bool = False) -> bytes | IO[bytes]:
        """
        The literal announced here. Large spooled literals come back as the
        file (with C{allowFile}), else their content if under C{maxString}.
        """
        if not self._literalHere():
            raise ParseError("Invalid literal")
        value = self._parts[self._i + 1]
        self._i += 2
        self._pos = 0
        if isinstance(value, (bytes, bytearray)):
            if not allowFile and len(value) > self.maxString:
                raise ParseError("String too long")
            return bytes(value)
        if allowFile:
            return value
        value.seek(0)
        data = value.read(self.maxString + 1)
        if len(data) > self.maxString:
            raise ParseError("String too long")
        return data

    def quoted(self) -> bytes:
        line = self._line()
        if line[self._pos:self._pos + 1] != b'"':
            raise ParseError("Expected a quoted string")
        out = bytearray()
        i = self._pos + 1
        while i < len(line):
            c = line[i]
            if c == 0x22:  # "
                self._pos = i + 1
                return bytes(out)
            if c == 0x5c:  # backslash: RFC 3501 quoted-specials, only \" and \\
                i += 1
                if i >= len(line):
                    break
                c = line[i]
                if c != 0x22 and c != 0x5c:
                    raise ParseError("Invalid backslash in quoted string"
                                     " (only \\\" and \\\\ are escapes)")
            elif c == 0:
                raise ParseError("NUL in quoted string")
            out.append(c)
            i += 1
        raise ParseError("Unterminated quoted string")

    def string(self) -> bytes:
        first = self.peek()
        if first == b'"':
            return self.quoted()
        if first == b"{":
            return self.literal()
        raise ParseError("Expected a string")

    def astring(self) -> bytes:
        if self.peek() in (b'"', b"{"):
            return self.string()
        value = self._run(ASTRING_CHARS)
        if not value:
            raise ParseError("Expected a string or atom")
        return value

    def nstring(self) -> bytes | None:
        """A string or NIL (L{None})."""
        if self.peek() in (b'"', b"{"):
            return self.string()
        if self.trySkip(b"NIL"):
            return None
        raise ParseError("Expected a string or NIL")

    def listMailbox(self) -> bytes:
        """LIST's pattern: an astring that may hold the wildcards % and *."""
        if self.peek() in (b'"', b"{"):
            return self.string()
        value = self._run(_LIST_CHARS)
        if not value:
            raise ParseError("Expected a mailbox pattern")
        return value

    def parenthesized(self, item: Callable[[], _T]) -> list[_T]:
        """C{"(" item *(SP item) ")"}; an empty list is allowed."""
        self.skip(b"(")
        values: list[_T] = []
        if self.trySkip(b")"):
            return values
        while True:
            values.append(item())
            if self.trySkip(b")"):
                return values
            self.sp()

    # -- compound values -----------------------------------------------------

    def flag(self) -> str:
        """C{\\Name} (a system flag, C{\\*} too) or a keyword: 7-bit atoms only."""
        if self.trySkip(b"\\"):
            if self.trySkip(b"*"):
                return "\\*"
            flag = "\\" + self._flagAtom()
            return _SYSTEM_BY_LOWER.get(flag.lower(), flag)
        return self._flagAtom()

    def flagKeyword(self) -> str:
        """C{flag-keyword}: an atom (so no C{\\}: system flags are not keywords)."""
        if self.peek() == b"\\":
            raise ParseError("Expected a keyword (system flags are not keywords)")
        return self._flagAtom()

    def _flagAtom(self) -> str:
        value = self.atom()
        if not value.isascii():
            raise ParseError("Invalid flag: 8-bit octets in an atom")
        return value.decode("ascii")

    def flagList(self) -> list[str]:
        return self.parenthesized(self.flag)

    def sequenceSet(self) -> SequenceSet:
        return SequenceSet.parse(self)

    def dateTime(self) -> int:
        """C{"dd-Mon-yyyy hh:mm:ss +zzzz"} -> POSIX time."""
        if self.peek() != b'"':
            raise ParseError("Expected a quoted date-time")
        return parseDateTime(self.quoted())

    def date(self) -> datetime.date:
        """C{d-Mon-yyyy}, quoted or not -> L{datetime.date}."""
        if self.peek() == b'"':
            text = self.quoted()
        else:
            text = self._run(_ATOM_CHARS)
        return parseDate(text)

    def mailbox(self) -> bytes:
        """A mailbox name as sent (modified UTF-7 bytes)."""
        return self.astring()


def modseqValue(reader: Reader, allowZero: bool = False) -> int:
    """A C{mod-sequence-value} (1 to 2^63-1; 0 where C{mod-sequence-valzer})."""
    digits = reader._run(_DIGITS)
    if not digits or len(digits) > 19 or int(digits) > MAX_MODSEQ:
        raise ParseError("Expected a mod-sequence value")
    value = int(digits)
    if value == 0 and not allowZero:
        raise ParseError("Expected a non-zero mod-sequence value")
    return value


def parseDate(text: bytes) -> datetime.date:
    match = re.fullmatch(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})", text)
    if match is None:
        raise ParseError("Invalid date")
    month = _MONTH_NUMBERS.get(match.group(2).decode("ascii").upper())
    try:
        return datetime.date(int(match.group(3)), month or 0, int(match.group(1)))
    except (ValueError, TypeError):
        raise ParseError("Invalid date")


def parseDateTime(text: bytes) -> int:
    match = re.fullmatch(
        rb" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)", text)
    if match is None:
        raise ParseError("Invalid date-time")
    day, month, year, hour, minute, second, sign, zh, zm = match.groups()
    if int(zm) >= 60 or int(zh) * 60 + int(zm) > MAX_ZONE_MINUTES:
        raise ParseError("Invalid time zone %s%s%s in date-time"
                         % (sign.decode("ascii"), zh.decode("ascii"), zm.decode("ascii")))
    monthNumber = _MONTH_NUMBERS.get(month.decode("ascii").upper())
    try:
        moment = datetime.datetime(int(year), monthNumber or 0, int(day), int(hour),
                                   int(minute), int(second))
    except (ValueError, TypeError):
        raise ParseError("Invalid date-time")
    offset = (int(zh) * 60 + int(zm)) * 60 * (-1 if sign == b"-" else 1)
    return calendar.timegm(moment.timetuple()) - offset


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


# -- FETCH attributes --------------------------------------------------------

def _echoName(name: bytes) -> bytes:
    """A header field name as the client sent it: an atom, or quoted."""
    if name and all(c in ASTRING_CHARS and c < 128 for c in name):
        return name
    return b'"' + name.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


@dataclasses.dataclass(frozen=True)
class Section:
    """
    C{BODY[part.text (fields)]}: C{part} is a tuple of numbers (empty for the
    whole message), C{text} one of None, HEADER, HEADER.FIELDS,
    HEADER.FIELDS.NOT, TEXT, MIME; C{fields} the header names as sent.
    """
    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[bytes, ...] = ()

    def label(self) -> bytes:
        spec = ".".join(str(n) for n in self.part)
        if self.text:
            spec = (spec + "." if spec else "") + self.text
        out = spec.encode("ascii")
        if self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            out += b" (" + b" ".join(_echoName(name) for name in self.fields) + b")"
        return b"[" + out + b"]"


@dataclasses.dataclass(frozen=True)
class FetchAttribute:
    """
    One FETCH data item. C{name} is upper-case (BODY.PEEK keeps its name);
    C{partial} is C{(offset, length)} or None.
    """
    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None

    @property
    def peek(self) -> bool:
        return self.name == "BODY.PEEK" or self.name == "RFC822.HEADER"

    @property
    def isBody(self) -> bool:
        """Whether it returns message content (a non-peek one sets \\Seen)."""
        return self.section is not None or self.name in ("RFC822", "RFC822.HEADER",
                                                         "RFC822.TEXT")

    def label(self) -> bytes:
        """The item's name in the FETCH response."""
        if self.section is None:
            return self.name.encode("ascii")
        out = b"BODY" + self.section.label()
        if self.partial is not None:
            out += b"<%d>" % (self.partial[0],)
        return out


_SIMPLE_FETCH = ("ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER",
                 "RFC822.SIZE", "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID")
FETCH_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}


def _fetchAttribute(reader: Reader, extra: Sequence[str] = ()) -> FetchAttribute:
    name = reader._run(_FETCH_NAME_CHARS).decode("ascii").upper()
    if name in ("BODY", "BODY.PEEK") and reader.peek() == b"[":
        section = _section(reader)
        partial = None
        if reader.trySkip(b"<"):
            offset = reader.number()
            reader.skip(b".")
            length = reader.nzNumber()
            reader.skip(b">")
            partial = (offset, length)
        return FetchAttribute(name, section, partial)
    if name in _SIMPLE_FETCH or name in extra:
        return FetchAttribute(name)
    raise ParseError("Unknown FETCH attribute %s" % (name or reader.peek().decode("ascii", "replace"),))


def _section(reader: Reader) -> Section:
    reader.skip(b"[")
    part: list[int] = []
    text = None
    fields: tuple[bytes, ...] = ()
    if reader.trySkip(b"]"):
        return Section()
    while reader.peek() in (b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"):
        part.append(reader.nzNumber())
        if not reader.trySkip(b"."):
            break
    else:
        text = reader._run(frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.")
                           ).decode("ascii").upper()
        allowed: tuple[str, ...] = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT")
        if part:
            allowed += ("MIME",)
        if text not in allowed:
            raise ParseError("Invalid section %s" % (text,))
        if text.startswith("HEADER.FIELDS"):
            reader.sp()
            fields = tuple(reader.parenthesized(reader.astring))
            if not fields:
                raise ParseError("Empty header list")
    reader.skip(b"]")
    return Section(tuple(part), text, fields)


def args_fetchAttributes(reader: Reader, extra: Sequence[str] = ()) -> list[FetchAttribute]:
    """C{fetch-att / "(" fetch-att *(SP fetch-att) ")" / ALL / FAST / FULL}."""
    if reader.peek() == b"(":
        items = reader.parenthesized(lambda: _fetchAttribute(reader, extra))
        if not items:
            raise ParseError("Empty FETCH attribute list")
        return items
    start = reader._pos
    word = reader._run(_FETCH_NAME_CHARS).decode("ascii").upper()
    if word in FETCH_MACROS:
        return [FetchAttribute(name) for name in FETCH_MACROS[word]]
    reader._pos = start
    return [_fetchAttribute(reader, extra)]


# -- SEARCH keys -------------------------------------------------------------

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


_KEYS_WITH_ARGUMENTS = frozenset(
    ("KEYWORD", "UNKEYWORD", "BODY", "TEXT", "HEADER", "LARGER", "SMALLER", "UID", "MODSEQ",
     "NOT", "OR") + _HEADER_KEYS + tuple(_DATE_KEYS))


def args_search(reader: Reader, maxDepth: int = 100) -> tuple[str | None, SearchKey]:
    """
    C{[CHARSET astring SP] search-key *(SP search-key)}.

    @return: C{(charset or None, key)}; keys are tuples:
        C{("ALL",)}, C{("FLAG", name, wanted)}, C{("KEYWORD", name, wanted)},
        C{("RECENT", wanted)}, C{("HEADER", name, bytes)}, C{("ADDRESS", name,
        bytes)} (FROM, TO, CC, BCC), C{("BODY", bytes)},
        C{("TEXT", bytes)}, C{("DATE", "internal"|"sent", op, date)},
        C{("SIZE", ">"|"<", n)}, C{("SEQ", SequenceSet)}, C{("UID", SequenceSet)},
        C{("NOT", key)}, C{("OR", key, key)}, C{("AND", [keys])}.
    """
    charset = None
    start = reader._pos
    if reader._run(_ATOM_CHARS).upper() == b"CHARSET":
        reader.sp()
        charset = reader.astring().decode("ascii", "replace")
        reader.sp()
    else:
        reader._pos = start
    keys = [_searchKey(reader, maxDepth)]
    while not reader.atEnd():
        reader.sp()
        keys.append(_searchKey(reader, maxDepth))
    return charset, keys[0] if len(keys) == 1 else ("AND", keys)


def _searchKey(reader: Reader, depth: int) -> SearchKey:
    if depth <= 0:
        raise ParseError("Search program nested too deeply")
    first = reader.peek()
    if first == b"(":
        keys = reader.parenthesized(lambda: _searchKey(reader, depth - 1))
        if not keys:
            raise ParseError("Empty search key list")
        return keys[0] if len(keys) == 1 else ("AND", keys)
    if first == b"*" or first in (b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"):
        return ("SEQ", reader.sequenceSet())
    name = reader.keyword()
    if name == "ALL":
        return ("ALL",)
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
        return ("UID", reader.sequenceSet())
    if name == "MODSEQ":  # RFC 7162: [entry-name SP entry-type SP] mod-sequence-valzer
        if reader.peek() == b'"':
            reader.quoted()
            reader.sp()
            reader.atom()
            reader.sp()
        return ("MODSEQ", modseqValue(reader, allowZero=True))
    if name == "NOT":
        return ("NOT", _searchKey(reader, depth - 1))
    if name == "OR":
        left = _searchKey(reader, depth - 1)
        reader.sp()
        return ("OR", left, _searchKey(reader, depth - 1))
    raise ParseError("Unknown search key %s" % (name,))


# -- command arguments -------------------------------------------------------
# Each takes a Reader positioned after the command name (and its space, if
# any arguments are expected) and returns the arguments; the server calls
# reader.end() afterwards.

def args_none(reader: Reader) -> tuple[()]:
    return ()


def args_mailbox(reader: Reader) -> tuple[bytes]:
    return (reader.mailbox(),)


def args_twoMailboxes(reader: Reader) -> tuple[bytes, bytes]:
    first = reader.mailbox()
    reader.sp()
    return (first, reader.mailbox())


def args_login(reader: Reader) -> tuple[bytes, bytes]:
    user = reader.astring()
    reader.sp()
    return (user, reader.astring())


def args_authenticate(reader: Reader) -> tuple[str, bytes | None]:
    """
    C{mechanism [SP initial-response]}: the initial response (RFC 4959) as
    sent, to be decoded by L{mailstack.protocol.sasl} like every other
    response line (so C{=}, C{*} and bad base64 mean the same as in SMTP and
    POP3); a lone trailing space is none at all, as Dovecot reads it (mutt
    sends C{AUTHENTICATE CRAM-MD5 } when it has nothing to send first).
    """
    mechanism = reader.atom().decode("ascii", "replace").upper()
    initial = None
    if reader.peek() == b" ":
        reader.sp()
        if not reader.atEnd():
            initial = reader._run(_INITIAL_RESPONSE_CHARS)
            if not initial:
                raise ParseError("Invalid initial response")
    return (mechanism, initial)


# Everything up to the end of the line but white space and controls: the
# initial response is judged by the SASL decoder, not the grammar.
_INITIAL_RESPONSE_CHARS = frozenset(range(0x21, 0x7f))


def args_list(reader: Reader) -> tuple[bytes, bytes]:
    reference = reader.mailbox()
    reader.sp()
    return (reference, reader.listMailbox())


STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")


def statusItems(reader: Reader, allowed: Sequence[str] = STATUS_ITEMS) -> list[str]:
    """C{"(" status-att *(SP status-att) ")"} -> the names, in the order asked."""
    def item() -> str:
        name = reader.keyword()
        if name not in allowed:
            raise ParseError("Unknown STATUS item %s" % (name,))
        return name
    items = reader.parenthesized(item)
    if not items:
        raise ParseError("Empty STATUS item list")
    return items


def args_status(reader: Reader) -> tuple[bytes, list[str]]:
    mailbox = reader.mailbox()
    reader.sp()
    return (mailbox, statusItems(reader))


def args_append(
        reader: Reader) -> tuple[bytes, tuple[str, ...], int | None, bytes | IO[bytes]]:
    """C{mailbox [SP flag-list] [SP date-time] SP literal}; the message may be a file."""
    mailbox = reader.mailbox()
    reader.sp()
    flags: tuple[str, ...] = ()
    date = None
    if reader.peek() == b"(":
        flags = tuple(reader.flagList())
        reader.sp()
    if reader.peek() == b'"':
        date = reader.dateTime()
        reader.sp()
    if reader.peek() != b"{":
        raise ParseError("APPEND needs the message as a literal")
    message = reader.literal(allowFile=True)
    return (mailbox, flags, date, message)


def args_fetch(reader: Reader) -> tuple[SequenceSet, list[FetchAttribute]]:
    messages = reader.sequenceSet()
    reader.sp()
    return (messages, args_fetchAttributes(reader))


def args_store(reader: Reader, messages: SequenceSet | None = None
               ) -> tuple[SequenceSet, str, bool, list[str]]:
    """
    C{sequence-set SP ["+"/"-"]FLAGS[.SILENT] SP (flag-list / flag *(SP flag))}
    (from the flags action on if C{messages} was parsed already).
    """
    if messages is None:
        messages = reader.sequenceSet()
        reader.sp()
    mode = ""
    if reader.peek() in (b"+", b"-"):
        mode = reader.peek().decode("ascii")
        reader._pos += 1
    name = reader._run(_FETCH_NAME_CHARS).decode("ascii").upper()
    if name not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError("STORE supports FLAGS, +FLAGS and -FLAGS")
    reader.sp()
    if reader.peek() == b"(":
        flags = reader.flagList()
    else:
        flags = [reader.flag()]
        while reader.peek() == b" ":
            reader.sp()
            flags.append(reader.flag())
    if "\\*" in flags:
        raise ParseError("\\* is not a flag")
    return (messages, mode, name.endswith(".SILENT"), flags)


def args_copy(reader: Reader) -> tuple[SequenceSet, bytes]:
    messages = reader.sequenceSet()
    reader.sp()
    return (messages, reader.mailbox())


def args_sequenceSet(reader: Reader) -> tuple[SequenceSet]:
    return (reader.sequenceSet(),)


def args_id(reader: Reader) -> tuple[dict[bytes, bytes | None] | None]:
    """C{"(" string SP nstring *(SP string SP nstring) ")" / NIL} -> dict or None."""
    if reader.trySkip(b"NIL"):
        return (None,)
    values = reader.parenthesized(reader.nstring)
    if len(values) % 2 or len(values) > 60:
        raise ParseError("ID needs up to 30 field/value pairs")
    fields: dict[bytes, bytes | None] = {}
    for key, value in zip(values[::2], values[1::2]):
        if key is None:
            raise ParseError("ID field names cannot be NIL")
        fields[key] = value
    return (fields,)


def args_enable(reader: Reader) -> tuple[list[str]]:
    names = [reader.atom().decode("ascii", "replace").upper()]
    while reader.peek() == b" ":
        reader.sp()
        names.append(reader.atom().decode("ascii", "replace").upper())
    return (names,)

