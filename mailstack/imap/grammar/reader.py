"""
The IMAP token reader (RFC 3501 section 9), pure: no I/O, no Twisted.

A client command reaches this module already framed (by the server) as a list
of parts: C{[line, literal, line, literal, ..., line]}. Each line is bytes
without its CRLF; every line but the last ends with a literal announcement
C{{n}} or C{{n+}} (RFC 7888), and the part after it is that literal's content:
C{bytes}, or a binary file object for a large one (an APPEND message spooled
to disk). L{Reader} walks those parts token by token (atoms, numbers, strings,
literals, flags, dates), raising L{ParseError} (answered with BAD) on any
syntax error. The rest of L{mailstack.imap.grammar} builds on it.
"""

from __future__ import annotations

import calendar
import datetime
import re
from typing import IO, Callable, Literal, Sequence, TypeVar, Union, overload

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBERS = {name.upper(): i + 1 for i, name in enumerate(MONTHS)}

# atom-specials: ( ) { SP CTL list-wildcards quoted-specials resp-specials
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0, 32)) | {127}
ATOM_CHARS = frozenset(range(256)) - _ATOM_SPECIALS
# ASTRING-CHAR octets; mailstack.imap.response sends a string bare when it is made of them.
ASTRING_CHARS = ATOM_CHARS | {ord("]")}
_LIST_CHARS = ASTRING_CHARS | {ord("%"), ord("*")}
# tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR is 7-bit (CHAR is %x01-7F).
_TAG_CHARS = frozenset(c for c in ASTRING_CHARS if c < 128) - {ord("+")}
_DIGITS = frozenset(b"0123456789")

# A literal, or (RFC 3516) a literal8 C{~{n}}, which only APPEND's message may be.
LITERAL_AT_END = re.compile(rb"~?\{(\d{1,20})(\+?)\}\Z")

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

    def mark(self) -> tuple[int, int]:
        """Where the reader stands, to come back to with L{rewind}."""
        return (self._i, self._pos)

    def rewind(self, mark: tuple[int, int]) -> None:
        """Go back to a position L{mark} returned (to try another reading)."""
        self._i, self._pos = mark

    def take(self, allowed: frozenset[int]) -> bytes:
        """The run of octets in C{allowed} from here (maybe empty), consumed."""
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
        tag = self.take(_TAG_CHARS)
        if not tag or self.peek() not in (b" ", b""):
            raise ParseError("Invalid tag")
        return tag

    def atom(self) -> bytes:
        value = self.take(ATOM_CHARS)
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
        digits = self.take(_DIGITS)
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
    def literal(self, allowFile: Literal[False] = False, allowBinary: bool = False) -> bytes: ...

    @overload
    def literal(self, allowFile: bool, allowBinary: bool = False) -> bytes | IO[bytes]: ...

    def literal(self, allowFile: bool = False, allowBinary: bool = False) -> bytes | IO[bytes]:
        """
        The literal announced here. Large spooled literals come back as the
        file (with C{allowFile}), else their content if under C{maxString}.
        A literal8 (C{~{n}}) only with C{allowBinary}.
        """
        if not self._literalHere():
            raise ParseError("Invalid literal")
        if not allowBinary and self.peek() == b"~":
            raise ParseError("A literal8 is not allowed here")
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
        value = self.take(ASTRING_CHARS)
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
        value = self.take(_LIST_CHARS)
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
            text = self.take(ATOM_CHARS)
        return parseDate(text)

    def mailbox(self) -> bytes:
        """A mailbox name as sent (modified UTF-7 bytes)."""
        return self.astring()


def modseqValue(reader: Reader, allowZero: bool = False) -> int:
    """A C{mod-sequence-value} (1 to 2^63-1; 0 where C{mod-sequence-valzer})."""
    digits = reader.take(_DIGITS)
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
