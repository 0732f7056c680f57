"""
APPEND's arguments with MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469), and
the relative IMAP URLs (RFC 5092) with URL-PARTIAL (RFC 5550) that CATENATE's
URL parts name, pure: no I/O, no Twisted.

    append          = "APPEND" SP mailbox 1*append-message
    append-message  = [SP flag-list] [SP date-time] SP append-data
    append-data     = literal / literal8 / "CATENATE" SP "(" cat-part *(SP cat-part) ")"
                      / utf8-literal
    cat-part        = "TEXT" SP literal / "URL" SP astring / utf8-literal
    utf8-literal    = "UTF8" SP "(" literal8 ")"          (RFC 6855 4, after ENABLE)

A URL part is parsed only when the command runs (L{parseURL}): a bad URL
is the command's C{NO [BADURL url]}, not a syntax error.
"""

from __future__ import annotations

import dataclasses
import re
from typing import IO, Union
from urllib.parse import unquote_to_bytes

from mailstack.imap.grammar.fetchspec import Section, fetchAttributes
from mailstack.imap.grammar.reader import ParseError, Reader

Data = Union[bytes, IO[bytes]]


@dataclasses.dataclass(frozen=True)
class CatenatePart:
    """
    One CATENATE part: C{kind} TEXT (C{value} the literal) or URL (the URL as
    sent). C{utf8}: a TEXT part sent as RFC 6855's C{UTF8 (literal8)}.
    """
    kind: str
    value: Data
    utf8: bool = False


@dataclasses.dataclass(frozen=True)
class AppendMessage:
    """
    One message of an APPEND: its flags and date (POSIX time or None), and
    either its literal (C{message}) or its CATENATE parts (C{catenate}).
    """
    flags: tuple[str, ...] = ()
    date: int | None = None
    message: Data | None = None
    catenate: tuple[CatenatePart, ...] = ()
    # The literal came as RFC 6855's UTF8 (literal8): the server allows it once UTF-8 is enabled.
    utf8: bool = False


def appendArguments(reader: Reader) -> tuple[bytes, list[AppendMessage]]:
    """C{mailbox 1*append-message} -> C{(mailbox, messages)}."""
    mailbox = reader.mailbox()
    messages: list[AppendMessage] = []
    while True:
        afterLiteral = bool(messages) and reader.mark()[1] == 0
        if reader.atEnd():
            break
        if not reader.trySkip(b" ") and not afterLiteral:
            # Dovecot also takes the next message straight after a literal.
            raise ParseError("Missing space between arguments")
        messages.append(_appendMessage(reader))
    if not messages:
        raise ParseError("APPEND needs a message")
    return (mailbox, messages)


def _appendMessage(reader: Reader) -> AppendMessage:
    flags: tuple[str, ...] = ()
    date = None
    if reader.peek() == b"(":
        flags = tuple(reader.flagList())
        reader.sp()
    if reader.peek() == b'"':
        date = reader.dateTime()
        reader.sp()
    if reader.peek() in (b"{", b"~"):
        # literal8: RFC 3516 (the server refuses one when BINARY is off)
        return AppendMessage(flags, date, reader.literal(allowFile=True, allowBinary=True))
    if reader.trySkip(b"CATENATE "):
        return AppendMessage(flags, date, catenate=tuple(_catenateParts(reader)))
    if reader.trySkip(b"UTF8 ("):
        return AppendMessage(flags, date, _utf8Literal(reader, "APPEND"), utf8=True)
    raise ParseError("APPEND needs the message as a literal or CATENATE")


def _utf8Literal(reader: Reader, what: str) -> Data:
    """RFC 6855 4's C{utf8-literal} after its C{UTF8 (}: C{literal8 ")"}."""
    if reader.peek() != b"~":
        raise ParseError("%s UTF8 needs the message as a literal8 (~{n})" % (what,))
    value = reader.literal(allowFile=True, allowBinary=True)
    reader.skip(b")")
    return value


def _catenateParts(reader: Reader) -> list[CatenatePart]:
    parts = reader.parenthesized(lambda: _catenatePart(reader))
    if not parts:
        raise ParseError("Empty CATENATE list")
    return parts


def _catenatePart(reader: Reader) -> CatenatePart:
    if reader.trySkip(b"TEXT "):
        if reader.peek() not in (b"{", b"~"):
            raise ParseError("CATENATE TEXT needs a literal")
        return CatenatePart("TEXT", reader.literal(allowFile=True, allowBinary=True))
    if reader.trySkip(b"URL "):
        return CatenatePart("URL", reader.astring())
    if reader.trySkip(b"UTF8 ("):  # RFC 6855 4: cat-part =/ utf8-literal
        return CatenatePart("TEXT", _utf8Literal(reader, "CATENATE"), utf8=True)
    raise ParseError("CATENATE parts are TEXT, URL or UTF8")


# -- IMAP URLs ----------------------------------------------------------------

class BadURL(Exception):
    """A CATENATE URL this server cannot use; C{str()} says why (the NO [BADURL] text)."""


@dataclasses.dataclass(frozen=True)
class MessageURL:
    """
    What a URL names: a message of C{mailbox} (the name as Unicode) by UID,
    with UIDVALIDITY if given, a section (None: the whole message) and a
    partial range C{(offset, length or None)}.
    """
    mailbox: str
    uidValidity: int | None
    uid: int
    section: Section | None = None
    partial: tuple[int, int | None] | None = None


_PATH = re.compile(
    rb"/(?P<mailbox>[^;]*?)(?:;UIDVALIDITY=(?P<validity>[0-9]+))?"
    rb"/;UID=(?P<uid>[0-9]+)"
    rb"(?:/;SECTION=(?P<section>[^/;]+))?"
    rb"(?:/;PARTIAL=(?P<partial>[0-9]+(?:\.[0-9]+)?))?", re.IGNORECASE)
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*:")


def parseURL(url: bytes, selected: str | None) -> MessageURL:
    """
    Resolve a relative IMAP URL (RFC 5092 with RFC 5550's C{/;PARTIAL=})
    against the selected mailbox C{selected} (as Dovecot resolves them:
    C{;UID=7} names a message of it, C{Sub/;UID=7} one of C{selected/Sub}).

    @raise BadURL: an absolute URL, bad syntax, or a relative URL without a
        selected mailbox.
    """
    if _SCHEME.match(url):
        raise BadURL("Invalid IMAP URL: only URLs relative to this server are accepted")
    if not url.startswith(b"/"):
        if selected is None:
            raise BadURL("Invalid IMAP URL: a relative URL needs a selected mailbox")
        if url.startswith(b";"):
            # The base is /<selected>: a ;UIDVALIDITY or ;UID follows its name.
            url = b"/" + _encodeName(selected) + (b"/" if url[:5].upper() == b";UID=" else b"") + url
        else:
            url = b"/" + _encodeName(selected) + b"/" + url
    match = _PATH.fullmatch(url)
    if match is None:
        raise BadURL("Invalid IMAP URL: it must name a message by UID, and at most a"
                     " section and a partial range")
    try:
        mailbox = unquote_to_bytes(match.group("mailbox")).decode("utf-8")
    except UnicodeDecodeError:
        raise BadURL("Invalid IMAP URL: the mailbox name is not UTF-8")
    if not mailbox:
        raise BadURL("Invalid IMAP URL: no mailbox name")
    validity = match.group("validity")
    if validity is not None and int(validity) == 0:
        raise BadURL("Invalid IMAP URL: UIDVALIDITY cannot be zero")
    uid = int(match.group("uid"))
    if uid == 0:
        raise BadURL("Invalid IMAP URL: UID cannot be zero")
    if validity is not None and int(validity) > 4294967295 or uid > 4294967295:
        raise BadURL("Invalid IMAP URL: number out of range")
    section = None
    if match.group("section") is not None:
        section = _section(unquote_to_bytes(match.group("section")))
    partial = None
    if match.group("partial") is not None:
        offset, _, length = match.group("partial").partition(b".")
        if length and int(length) == 0:
            raise BadURL("Invalid IMAP URL: PARTIAL size cannot be zero")
        partial = (int(offset), int(length) if length else None)
    return MessageURL(mailbox, int(validity) if validity is not None else None, uid,
                      section, partial)


def _encodeName(name: str) -> bytes:
    """A mailbox name as a URL path holds it (UTF-8, the octets L{_PATH} splits at escaped)."""
    return name.encode("utf-8").replace(b"%", b"%25").replace(b";", b"%3B")


def _section(text: bytes) -> Section:
    """A URL's section, read as FETCH reads C{BODY[section]}."""
    try:
        reader = Reader([b"BODY[" + text + b"]"])
        [attribute] = fetchAttributes(reader)
        reader.end()
    except ParseError:
        raise BadURL("Invalid IMAP URL: invalid section %s" % (text.decode("ascii", "replace"),))
    assert attribute.section is not None
    return attribute.section
