"""
IMAP modified UTF-7 (RFC 3501 section 5.1.3), the encoding of mailbox names on the
IMAP wire and in Maildir++ folder directory names.

Printable ASCII (0x20-0x7e) stands for itself except C{&}, written C{&-}; every other
run of characters is written C{&<base64>-}, where <base64> is the UTF-16BE encoding
in base64 with C{,} instead of C{/} and no C{=} padding.

L{decode} accepts only the canonical form, so that every name has exactly one
encoding (otherwise two different directories could hold "the same" mailbox).
"""

from __future__ import annotations

import base64
import binascii
import re

_B64CHARS = re.compile(r"[A-Za-z0-9+,]*\Z")


def _isDirect(char: str) -> bool:
    """True if C{char} is written as itself (printable ASCII other than '&')."""
    return "\x20" <= char <= "\x7e" and char != "&"


def _encodeRun(run: str) -> str:
    data = run.encode("utf-16-be")
    return "&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-"


def encode(text: str) -> str:
    """
    Encode a Unicode string in IMAP modified UTF-7.

    @raise ValueError: if C{text} holds a lone surrogate (not encodable as UTF-16).
    """
    out: list[str] = []
    run: list[str] = []
    for char in text:
        if _isDirect(char):
            if run:
                out.append(_encodeRun("".join(run)))
                run = []
            out.append(char)
        elif char == "&":
            if run:
                out.append(_encodeRun("".join(run)))
                run = []
            out.append("&-")
        else:
            run.append(char)
    if run:
        out.append(_encodeRun("".join(run)))
    return "".join(out)


def _decodeRun(b64: str) -> str:
    """Decode the modified base64 between '&' and '-' (non-empty), strictly."""
    if not _B64CHARS.match(b64):
        raise ValueError("invalid character in modified base64 %r" % (b64,))
    if len(b64) % 4 == 1:
        raise ValueError("truncated modified base64 %r" % (b64,))
    padded = b64.replace(",", "/") + "=" * (-len(b64) % 4)
    try:
        data = base64.b64decode(padded, validate=True)
    except binascii.Error as e:
        raise ValueError("invalid modified base64 %r: %s" % (b64, e))
    if len(data) % 2:
        raise ValueError("modified base64 %r is not whole UTF-16 units" % (b64,))
    try:
        text = data.decode("utf-16-be")
    except UnicodeDecodeError as e:
        raise ValueError("invalid UTF-16 in %r: %s" % (b64, e))
    if any(_isDirect(c) or c == "&" for c in text):
        raise ValueError("non-canonical: %r encodes printable ASCII" % (b64,))
    if _encodeRun(text) != "&" + b64 + "-":
        raise ValueError("non-canonical modified base64 %r" % (b64,))
    return text


def decode(text: str) -> str:
    """
    Decode IMAP modified UTF-7 into a Unicode string.

    @raise ValueError: if C{text} is not canonical modified UTF-7: characters outside
        printable ASCII, bad or unterminated base64, an odd number of UTF-16 octets,
        base64 that encodes printable ASCII, or two encoded runs back to back.
    """
    out: list[str] = []
    i = 0
    length = len(text)
    previousWasRun = False
    while i < length:
        char = text[i]
        if char != "&":
            if not "\x20" <= char <= "\x7e":
                raise ValueError("character %r not allowed in modified UTF-7" % (char,))
            out.append(char)
            previousWasRun = False
            i += 1
            continue
        end = text.find("-", i + 1)
        if end == -1:
            raise ValueError("unterminated '&' sequence in %r" % (text,))
        if end == i + 1:
            out.append("&")
            previousWasRun = False
        else:
            if previousWasRun:
                raise ValueError("adjacent encoded runs in %r" % (text,))
            out.append(_decodeRun(text[i + 1:end]))
            previousWasRun = True
        i = end + 1
    return "".join(out)
