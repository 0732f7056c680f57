"""
IMAP response formatting (RFC 3501 section 9), pure: strings in the shortest
safe form (atom, quoted, or a literal for 8-bit data and line breaks), lists,
flags, dates, sequence sets and tagged status lines.
"""

import re
import time

from mailstack.imap.parser import ASTRING_CHARS, MONTHS, SYSTEM_FLAGS


def _quotable(data):
    return not any(c in data for c in (0, 10, 13)) and data.isascii()


def quoted(data):
    """A quoted string; the caller has checked L{_quotable}."""
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def string(data):
    """A string in the shortest safe form: quoted, or a literal for 8-bit/CRLF."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if _quotable(data) and len(data) < 4096:
        return quoted(data)
    return b"{%d}\r\n" % (len(data),) + data


def nstring(data):
    return b"NIL" if data is None else string(data)


def astring(data):
    """An atom where possible (not NIL), else a string."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if data and all(c in ASTRING_CHARS and c < 128 for c in data) and data.upper() != b"NIL":
        return data
    return string(data)


def formatList(items):
    return b"(" + b" ".join(items) + b")"


def _flagOrder(flag):
    try:
        return (0, SYSTEM_FLAGS.index(flag), flag)
    except ValueError:
        return (1 if flag == "\\Recent" else 2, 0, flag)


def formatFlags(flags):
    return formatList([flag.encode("ascii", "replace") for flag in sorted(flags, key=_flagOrder)])


def formatInternalDate(timestamp):
    """C{"17-Jul-1996 02:44:25 -0700"} in the server's local time."""
    moment = time.localtime(timestamp)
    offset = moment.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    text = "%02d-%s-%04d %02d:%02d:%02d %s%02d%02d" % (
        moment.tm_mday, MONTHS[moment.tm_mon - 1], moment.tm_year, moment.tm_hour,
        moment.tm_min, moment.tm_sec, sign, offset // 60, offset % 60)
    return b'"' + text.encode("ascii") + b'"'


def formatSequenceSet(numbers):
    """Ascending-or-not numbers -> C{b"1:3,7,9:10"} (in the order given, runs joined)."""
    out = []
    start = previous = None
    for n in numbers:
        if previous is not None and n == previous + 1:
            previous = n
            continue
        if start is not None:
            out.append(b"%d" % start if start == previous else b"%d:%d" % (start, previous))
        start = previous = n
    if start is not None:
        out.append(b"%d" % start if start == previous else b"%d:%d" % (start, previous))
    return b",".join(out)


class Refusal(Exception):
    """
    A command that cannot be done: answered C{tag NO [code] text} (or BAD).
    """

    def __init__(self, text, code=None, status="NO"):
        Exception.__init__(self, text)
        self.text = text
        self.code = code
        self.status = status


_NOT_TEXT_CHAR = re.compile(r"[^\x20-\x7e]")


def text(value):
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


def taggedLine(tag, status, code, text_):
    """C{tag OK [CODE] text} as bytes with CRLF; every resp-code has text after it."""
    out = tag + b" " + status.encode("ascii")
    if code:
        out += b" [" + (code if isinstance(code, bytes) else code.encode("ascii")) + b"]"
    return out + b" " + text(text_) + b"\r\n"
