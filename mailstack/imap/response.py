"""
IMAP response formatting (RFC 3501 section 9), pure: strings in the shortest
safe form (atom, quoted, or a literal for 8-bit data and line breaks), lists,
flags, dates, sequence sets and tagged status lines.
"""

from __future__ import annotations

import re
import time
from typing import Iterable

from mailstack.imap.grammar.reader import ASTRING_CHARS, MONTHS, SYSTEM_FLAGS


def _quotable(data: bytes) -> bool:
    return not any(c in data for c in (0, 10, 13)) and data.isascii()


def quoted(data: bytes) -> bytes:
    """A quoted string; the caller has checked L{_quotable}."""
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def string(data: bytes | str) -> bytes:
    """A string in the shortest safe form: quoted, or a literal for 8-bit/CRLF."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if _quotable(data) and len(data) < 4096:
        return quoted(data)
    return b"{%d}\r\n" % (len(data),) + data


def nstring(data: bytes | str | None) -> bytes:
    return b"NIL" if data is None else string(data)


def astring(data: bytes | str) -> bytes:
    """An atom where possible (not NIL), else a string."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if data and all(c in ASTRING_CHARS and c < 128 for c in data) and data.upper() != b"NIL":
        return data
    return string(data)


def formatList(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def _flagOrder(flag: str) -> tuple[int, int, str]:
    try:
        return (0, SYSTEM_FLAGS.index(flag), flag)
    except ValueError:
        return (1 if flag == "\\Recent" else 2, 0, flag)


def formatFlags(flags: Iterable[str]) -> bytes:
    return formatList([flag.encode("ascii", "replace") for flag in sorted(flags, key=_flagOrder)])


def formatInternalDate(timestamp: float) -> bytes:
    """C{"17-Jul-1996 02:44:25 -0700"} in the server's local time."""
    moment = time.localtime(timestamp)
    offset = moment.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    text = "%02d-%s-%04d %02d:%02d:%02d %s%02d%02d" % (
        moment.tm_mday, MONTHS[moment.tm_mon - 1], moment.tm_year, moment.tm_hour,
        moment.tm_min, moment.tm_sec, sign, offset // 60, offset % 60)
    return b'"' + text.encode("ascii") + b'"'


def formatSequenceSet(numbers: Iterable[int]) -> bytes:
    """Ascending-or-not numbers -> C{b"1:3,7,9:10"} (in the order given, runs joined)."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return b",".join(b"%d" % low if low == high else b"%d:%d" % (low, high)
                     for low, high in runs)


class Refusal(Exception):
    """
    A command that cannot be done: answered C{tag NO [code] text} (or BAD).
    """

    def __init__(self, text: str, code: str | bytes | None = None,
                 status: str = "NO") -> None:
        Exception.__init__(self, text)
        self.text = text
        self.code = code
        self.status = status


_NOT_TEXT_CHAR = re.compile(r"[^\x20-\x7e]")


def text(value: str | bytes) -> bytes:
    """
    Human-readable C{resp-text} as bytes: RFC 3501 C{TEXT-CHAR}s are 7-bit and
    not CR or LF, so anything else (8-bit octets or characters a client sent,
    a mailbox name's Unicode) is written as a Python escape (C{\\xff},
    C{\\u00e9}, C{\\r}), never as raw octets.
    """
    if isinstance(value, bytes):
        value = value.decode("ascii", "backslashreplace")
    return _NOT_TEXT_CHAR.sub(
        lambda m: m.group().encode("unicode_escape").decode("ascii"), value).encode("ascii")


def taggedLine(tag: bytes, status: str, code: str | bytes | None, text_: str | bytes) -> bytes:
    """C{tag OK [CODE] text} as bytes with CRLF; every resp-code has text after it."""
    out = tag + b" " + status.encode("ascii")
    if code:
        out += b" [" + (code if isinstance(code, bytes) else code.encode("ascii")) + b"]"
    return out + b" " + text(text_) + b"\r\n"
