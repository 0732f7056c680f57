"""
SEARCH BODY and TEXT's prefilter: rule a message out from its octets alone,
without parsing its MIME structure or decoding anything.

Most messages hold nothing that decoding could change: every octet is
ASCII, no encoded word (C{=?}), no base64 or quoted-printable part, and
every charset a text part names reads ASCII octets as themselves. The text SEARCH matches in such a message is its own octets
(header fields and body lines, joined at line ends), and the
i;unicode-casemap fold of ASCII text upper-cases its letters. So a needle
with no line end in it that is not among the upper-cased octets is not in
the message: L{excludes} says so and the decoding path is skipped. Any
other message (or needle) goes the whole way, so answers never change.
"""

import codecs
import io
import re

from mailstack.imap import fetch

# Charsets (Python's names for them) that decode every ASCII octet as itself.
ASCII_COMPATIBLE = frozenset(
    ["ascii", "utf-8", "iso8859-1", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254",
     "cp1255", "cp1256", "cp1257", "cp1258", "koi8-r", "koi8-u"]
    + ["iso8859-%d" % (n,) for n in range(2, 17) if n != 12])

_CONTENT_TYPE = b"CONTENT-TYPE"
_TRANSFER_ENCODING = b"CONTENT-TRANSFER-ENCODING"
_DECODED_ENCODINGS = (b"BASE64", b"QUOTED-PRINTABLE")
_ENCODED_WORD = re.compile(rb"=\?")  # a regular expression finds it faster than "in"

# Content-Type fields seen (the whole unfolded line) -> whether their charset
# is ASCII-compatible: a mailbox's messages mostly repeat a few of them.
_seenTypes = {}
_SEEN_LIMIT = 512


def partCharset(part):
    """The Python codec a text part's charset names (UTF-8 if none or unknown)."""
    for name, value in part.params:
        if name.lower() == b"charset":
            try:
                return codecs.lookup(value.decode("ascii", "replace").strip()).name
            except LookupError:
                return "utf-8"
    return "utf-8"


def _fieldAt(raw, position):
    """The whole (unfolded) header line that holds C{raw[position]}."""
    start = raw.rfind(b"\n", 0, position) + 1
    end = position
    while True:
        end = raw.find(b"\n", end)
        if end < 0:
            return raw[start:]
        end += 1
        if raw[end:end + 1] not in (b" ", b"\t"):
            return raw[start:end]


def _asciiCompatibleType(field):
    """Whether the charset this line names, read as a Content-Type field, is ASCII-compatible."""
    known = _seenTypes.get(field)
    if known is None:
        part = fetch.parseHeaderOnly(io.BytesIO(field + b"\r\n"), len(field) + 2)
        known = partCharset(part) in ASCII_COMPATIBLE
        if len(_seenTypes) >= _SEEN_LIMIT:
            _seenTypes.clear()
        _seenTypes[field] = known
    return known


def readsAsOctets(raw, upper):
    """
    Whether SEARCH's decoding of the message C{raw} (CRLF line ends; its
    ASCII upper case C{upper}) gives back its own octets: see the module.
    A line that could be a Content-Type field (the name anywhere in it) is
    read as one, so a charset is never missed.
    """
    if not raw.isascii() or (b"?" in raw and _ENCODED_WORD.search(raw)):
        return False
    position = upper.find(_TRANSFER_ENCODING)
    while position >= 0:
        field = _fieldAt(upper, position)
        if any(encoding in field for encoding in _DECODED_ENCODINGS):
            return False
        position = upper.find(_TRANSFER_ENCODING, position + len(_TRANSFER_ENCODING))
    position = upper.find(_CONTENT_TYPE)
    while position >= 0:
        if not _asciiCompatibleType(_fieldAt(raw, position)):
            return False
        position = upper.find(_CONTENT_TYPE, position + len(_CONTENT_TYPE))
    return True


def excludes(raw, needle):
    """
    Whether the message C{raw} (CRLF line ends) certainly does not hold the
    folded C{needle} (L{mailstack.imap.casemap.fold}) in its text; False
    when only decoding can tell.
    """
    if not needle or "\r" in needle or "\n" in needle:
        return False
    upper = raw.upper()
    if needle.isascii() and needle.encode("ascii") in upper:
        return False
    return readsAsOctets(raw, upper)
