"""
FETCH data items (RFC 3501 C{fetch-att}), pure: the attributes a FETCH asks
for, parsed from a L{Reader}, with the labels their responses carry.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from mailstack.imap.grammar.reader import ASTRING_CHARS, ParseError, Reader

# The octets of a FETCH item or STORE action name (BODY.PEEK, FLAGS.SILENT...).
FETCH_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")


def _echoName(name: bytes) -> bytes:
    """A header field name as an atom where it can be one, else quoted."""
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
            # upper-case, as Dovecot answers (clients match either way)
            out += b" (" + b" ".join(_echoName(name.upper()) for name in self.fields) + b")"
        return b"[" + out + b"]"


@dataclasses.dataclass(frozen=True)
class FetchAttribute:
    """
    One FETCH data item. C{name} is upper-case (BODY.PEEK keeps its name);
    C{partial} is C{(offset, length)} or None; C{fuzzy} marks Dovecot's
    pre-RFC 8970 preview forms (SNIPPET, PREVIEW (FUZZY)), answered as
    C{NAME (FUZZY "text")}.
    """
    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    fuzzy: bool = False

    @property
    def peek(self) -> bool:
        return self.name in ("BODY.PEEK", "RFC822.HEADER", "BINARY.PEEK", "BINARY.SIZE")

    @property
    def binary(self) -> bool:
        """Whether it is one of RFC 3516's BINARY items (decoded content)."""
        return self.name.startswith("BINARY")

    @property
    def isBody(self) -> bool:
        """Whether it returns message content (a non-peek one sets \\Seen)."""
        return self.section is not None or self.name in ("RFC822", "RFC822.HEADER",
                                                         "RFC822.TEXT")

    def label(self) -> bytes:
        """The item's name in the FETCH response."""
        if self.section is None:
            return self.name.encode("ascii")
        if self.name == "BINARY.SIZE":
            return b"BINARY.SIZE" + self.section.label()
        out = (b"BINARY" if self.binary else b"BODY") + self.section.label()
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
    name = reader.take(FETCH_NAME_CHARS).decode("ascii").upper()
    if name in ("PREVIEW", "SNIPPET"):
        return _preview(reader, name)
    if name in ("EMAILID", "THREADID"):  # OBJECTID (RFC 8474)
        return FetchAttribute(name)
    if name == "SAVEDATE":  # RFC 8514
        return FetchAttribute(name)
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
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE") and reader.peek() == b"[":
        return _binaryAttribute(reader, name)
    if name in _SIMPLE_FETCH or name in extra:
        return FetchAttribute(name)
    raise ParseError("Unknown FETCH attribute %s" % (name or reader.peek().decode("ascii", "replace"),))


def _binaryAttribute(reader: Reader, name: str) -> FetchAttribute:
    """
    RFC 3516: C{BINARY[.PEEK] section-binary [partial]} or C{BINARY.SIZE
    section-binary}, where C{section-binary = "[" [section-part] "]"}: part
    numbers only (no HEADER, TEXT or MIME), and no partial for the size.
    """
    reader.skip(b"[")
    part: list[int] = []
    if not reader.trySkip(b"]"):
        part.append(reader.nzNumber())
        while reader.trySkip(b"."):
            part.append(reader.nzNumber())
        reader.skip(b"]")
    partial = None
    if name != "BINARY.SIZE" and reader.trySkip(b"<"):
        offset = reader.number()
        reader.skip(b".")
        length = reader.nzNumber()
        reader.skip(b">")
        partial = (offset, length)
    return FetchAttribute(name, Section(tuple(part)), partial)


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
        text = reader.take(frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.")
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


# The octets of a preview modifier (LAZY=FUZZY has an equals sign).
_MODIFIER_CHARS = FETCH_NAME_CHARS | frozenset(b"=")


def _preview(reader: Reader, name: str) -> FetchAttribute:
    """
    RFC 8970: C{PREVIEW [SP "(" preview-mod *(SP preview-mod) ")"]}, where the
    one modifier is LAZY (which lets a server answer NIL for a preview it
    has not computed yet; mailstack always computes it, as Dovecot does).
    Dovecot 2.3's earlier drafts too (SNIPPET=FUZZY, PREVIEW=FUZZY): the
    modifiers FUZZY and LAZY=FUZZY ask for the fuzzy form, and SNIPPET,
    with any of the three modifiers or none, is always fuzzy.
    """
    fuzzy = name == "SNIPPET"
    if reader.trySkip(b" ("):
        while True:
            modifier = reader.take(_MODIFIER_CHARS).decode("ascii").upper()
            if modifier in ("FUZZY", "LAZY=FUZZY"):
                fuzzy = True
            elif modifier != "LAZY":
                # Dovecot says PREVIEW for SNIPPET's modifiers too.
                raise ParseError("%r is not a supported PREVIEW modifier" % (modifier,))
            if reader.trySkip(b")"):
                break
            reader.sp()
    return FetchAttribute(name, fuzzy=fuzzy)


def fetchAttributes(reader: Reader, extra: Sequence[str] = ()) -> list[FetchAttribute]:
    """C{fetch-att / "(" fetch-att *(SP fetch-att) ")" / ALL / FAST / FULL}."""
    if reader.peek() == b"(":
        items = reader.parenthesized(lambda: _fetchAttribute(reader, extra))
        if not items:
            raise ParseError("Empty FETCH attribute list")
        return items
    start = reader.mark()
    word = reader.take(FETCH_NAME_CHARS).decode("ascii").upper()
    if word in FETCH_MACROS:
        return [FetchAttribute(name) for name in FETCH_MACROS[word]]
    reader.rewind(start)
    return [_fetchAttribute(reader, extra)]
