"""
FETCH PREVIEW (RFC 8970): a short plain-text preview of a message, computed
as Dovecot 2.3 computes its body snippet, so clients see the same text from
either server (tests/e2e/test_imap_preview.py compares them).

The text comes from one MIME part: the message itself if it is text, else
the first text part found depth first, where a multipart/alternative offers
its text/plain, else its last text/html, else its last other text part (its
nested multiparts are not looked into); an attached message (message/rfc822)
is never looked into, but a multipart/digest's part without a Content-Type
is read as text, its header included; a part whose Content-Type names no
type/subtype gives nothing. The part's body is decoded (base64 or
quoted-printable, with or without MIME-Version; another transfer encoding
gives no text), then its charset (undeclared or unknown: UTF-8; undecodable
octets become U+FFFD, but a UTF-8 sequence cut short by the end is dropped). HTML is reduced to text
(L{htmlToText}). Then (L{snippet}) white space runs become one space, lines
starting with C{>} (quoted text) are left out unless nothing else is left,
and the text stops at L{MAX_CHARS} characters. No text is C{""}, as Dovecot
answers (RFC 8970 allows NIL only when a preview cannot be made at all).
"""

import binascii
import codecs
import html.entities
import quopri
import re

# Dovecot's BODY_SNIPPET_MAX_CHARS (RFC 8970 allows up to 256).
MAX_CHARS = 200
# Encoded octets of the chosen part read at most: a preview needs the start
# of the text (Dovecot reads on through quoted text; this bounds the work).
READ_LIMIT = 1024 * 1024

_SPACE = " \t\n\v\f\r"  # C isspace() in the "C" locale
_HTML_SPACE = " \t\r\n"
_ENTITIES = dict(html.entities.name2codepoint, apos=0x27)
_UTF8 = frozenset(["utf-8", "ascii"])


def _lower(value):
    return value.lower() if value else b""


def _typeReadable(part):
    """
    Whether the part's Content-Type, if it has one, names a type and a
    subtype: with one Dovecot cannot read (C{textplain}, C{text}, C{/plain})
    the part gives no preview.
    """
    raw = part.header(b"content-type")
    if raw is None:
        return True
    main, slash, sub = raw.split(b";", 1)[0].partition(b"/")
    return bool(slash and main.strip() and sub.strip())


def textPart(part):
    """The part (a L{mailstack.imap.fetch.Part}) a preview is made from, or None."""
    main = _lower(part.mainType)
    if part.message is not None or (main != b"text" and not part.multipart):
        return None
    if not _typeReadable(part):
        return None
    if not part.multipart:
        return part
    if _lower(part.subType) == b"alternative":
        html = other = None
        for child in part.children:
            if child.multipart or child.message is not None or _lower(child.mainType) != b"text":
                continue
            sub = _lower(child.subType)
            if sub == b"plain":
                return child
            if sub == b"html":
                html = child
            else:
                other = child
        return html if html is not None else other
    digest = _lower(part.subType) == b"digest"
    for child in part.children:
        if digest and child.header(b"content-type") is None:
            # RFC 2046's default for a digest's part is message/rfc822, but
            # Dovecot's preview reads such a part as text, header and all.
            return child
        found = textPart(child)
        if found is not None:
            return found
    return None


def _charset(part):
    for name, value in part.params:
        if name.lower() == b"charset":
            try:
                found = codecs.lookup(value.decode("ascii", "replace").strip()).name
            except LookupError:
                return "utf-8"
            return "utf-8" if found in _UTF8 else found
    return "utf-8"


def _withoutTruncatedEnd(data):
    """
    C{data} without its final line feed and, after that, without a UTF-8
    sequence cut short by the end (a lead octet with fewer octets after it,
    whatever they are, than it announces), which Dovecot drops where it
    would write U+FFFD for an invalid one: C{caf\xe9} CR LF at the end of a
    body is C{caf}, C{caf\xc3} CR LF is C{caf\ufffd}.
    """
    if data.endswith(b"\n"):
        data = data[:-1]
    for back in range(1, min(3, len(data)) + 1):
        octet = data[-back]
        if octet >= 0xc0:  # a lead octet: Dovecot counts the octets after it first
            wanted = 2 if octet < 0xe0 else 3 if octet < 0xf0 else 4 if octet < 0xf8 else 1
            if wanted > back:
                data = data[:-back]
            break
    return data


def decodedText(part, data):
    """
    C{data}, the body of C{part}, without its transfer encoding and charset
    (the transfer encoding is undone even without MIME-Version, as Dovecot's
    preview does).
    """
    raw = part.header(b"content-transfer-encoding")
    encoding = raw.strip().lower() if raw else b""
    if encoding == b"base64":
        data = _decodeBase64(data)
    elif encoding == b"quoted-printable":
        data = quopri.decodestring(data)
    elif encoding not in (b"", b"7bit", b"8bit", b"binary"):
        return ""
    charset = _charset(part)
    if charset == "utf-8":
        data = _withoutTruncatedEnd(data)
    # Each invalid octet becomes a lone surrogate; a run of them (after a
    # U+FFFD, too) is one U+FFFD, as Dovecot adds no replacement character
    # right after another.
    return _INVALID_RUN.sub("\ufffd", data.decode(charset, "surrogateescape"))


_INVALID_RUN = re.compile("\ufffd?[\udc80-\udcff]+")
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]*")


def _decodeBase64(data):
    """
    Base64 as Dovecot's preview reads it: white space skipped, decoding
    stops at the padding or at any other octet outside the alphabet (what
    follows is lost), and a last incomplete group gives what it holds.
    """
    run = _BASE64_RUN.match(b"".join(data.split())).group(0)
    if len(run) % 4 == 1:
        run = run[:-1]
    return binascii.a2b_base64(run + b"=" * (-len(run) % 4))


def _entity(text, i, out):
    """
    An entity after the C{&} at C{i - 1}: how many characters it takes
    (0: the text ends before it could be read). A broken one (a space, or
    no C{;} within nine characters) takes nothing: the C{&} is dropped.
    """
    j = i
    while j < len(text):
        if text[j] in _HTML_SPACE or j - i >= 10:
            return -1
        if text[j] == ";":
            break
        j += 1
    else:
        return 0
    name = text[i:j]
    code = _ENTITIES.get(name)
    if code is None and name[:1] == "#":
        digits = name[2:] if name[1:2] == "x" else name[1:]
        base = 16 if name[1:2] == "x" else 10
        try:
            code = int(digits, base) if digits and digits.isalnum() else None
        except ValueError:
            code = None
        if code is not None and base == 10 and not digits.isdigit():
            code = None
    if code is not None and code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        out.append(chr(code))
    return j - i + 1


def _startsWith(text, i, word):
    return text[i:i + len(word)].lower() == word


def htmlToText(text, skipQuoted=True):
    """
    HTML -> text as Dovecot's mail-html2text: tags, comments, scripts and
    styles left out (a tag's end is a space), entities decoded, CDATA kept,
    and (C{skipQuoted}) the text of C{<blockquote>}s left out.
    """
    return "".join(htmlChars(text, skipQuoted))


def htmlChars(text, skipQuoted=True):
    """L{htmlToText} as a generator: a preview stops reading once it is full."""
    out = []
    last = ""
    quoteLevel = 0
    state = "text"
    i, n = 0, len(text)

    def addSpace():
        previous = out[-1] if out else last
        if previous and previous != " ":
            out.append(" ")

    while i < n:
        if out:
            yield from out
            last = out[-1]
            out.clear()
        c = text[i]
        if state == "text":
            if c == "<":
                rest = i + 1
                if text.startswith("!--", rest):
                    state, i = "comment", rest + 3
                    continue
                if _startsWith(text, rest, "script") and rest + 6 < n and (
                        text[rest + 6] in _HTML_SPACE + ">"):
                    state, i = "script", rest + 7
                    continue
                if _startsWith(text, rest, "style") and rest + 5 < n and (
                        text[rest + 5] in _HTML_SPACE + ">"):
                    state, i = "style", rest + 6
                    continue
                if _startsWith(text, rest, "![cdata["):
                    state, i = "cdata", rest + 8
                    continue
                if skipQuoted and _startsWith(text, rest, "blockquote") and rest + 10 < n and (
                        text[rest + 10] in _HTML_SPACE + ">"):
                    quoteLevel += 1
                elif skipQuoted and quoteLevel and _startsWith(text, rest, "/blockquote>"):
                    quoteLevel -= 1
                elif n - rest < 12 and not any(ch in _HTML_SPACE + ">" for ch in text[rest:]):
                    break  # a tag name cut short by the end: nothing more
                state = "tag"
            elif c == "&":
                taken = _entity(text, i + 1, out)
                if taken == 0:
                    break  # cut short by the end
                if taken > 0:
                    i += taken
            elif quoteLevel == 0:
                out.append(c)
        elif state == "tag":
            if c == '"':
                state = "dquoted"
            elif c == "'":
                state = "squoted"
            elif c == ">":
                state = "text"
                addSpace()
        elif state in ("dquoted", "squoted"):
            if c == "\\":
                i += 1
            elif c == ('"' if state == "dquoted" else "'"):
                state = "tag"
        elif state == "comment":
            if c == "-":
                if i + 1 == n:
                    break
                if text[i + 1] == "-":
                    state = "commentEnd"
                    i += 1
        elif state == "commentEnd":
            if c == ">":
                state = "text"
            elif c not in _HTML_SPACE:
                state = "comment"
        elif state in ("script", "style"):
            end = "</%s>" % (state,)
            if c == "<" and end.startswith(text[i:i + len(end)].lower()):
                if n - i < len(end):
                    break
                addSpace()
                state = "text"
                i += len(end) - 1
        elif state == "cdata":
            if c == "]" and "]]>".startswith(text[i:i + 3]):
                if n - i < 3:
                    break
                state = "text"
                i += 2
            elif quoteLevel == 0:
                out.append(c)
        i += 1
    yield from out


class _Target:
    def __init__(self, left):
        self.chars = []
        self.left = left


def snippet(text, maxChars=MAX_CHARS):
    """
    Text (a str or an iterable of characters) -> its preview: white space runs as one space, none leading or
    trailing; lines starting with C{>} kept apart and used (after a C{>})
    only if nothing else is left; at most C{maxChars} characters.
    """
    main, quoted = _Target(maxChars), _Target(maxChars)
    target = main
    newLine = True
    addSpace = False
    chars = iter(text)
    for c in chars:
        if newLine:
            newLine = False
            if c == ">":
                target = quoted
                c = next(chars, None)
                if c is None:
                    break
            else:
                target = main
        if c in ("\ufeff", "\x00"):
            continue
        if c in _SPACE:
            if target.chars:
                addSpace = True
            newLine = c == "\n"
            continue
        if target.left == 0:
            continue
        if addSpace:
            addSpace = False
            if target.left < 2:
                target.left = 0
                if target is main:
                    break
                continue
            target.chars.append(" ")
            target.left -= 1
        target.chars.append(c)
        target.left -= 1
        if main.left == 0:
            break
    if main.chars:
        return "".join(main.chars).lstrip(_SPACE)
    if quoted.chars:
        return ">" + "".join(quoted.chars).lstrip(_SPACE)
    return ""


def preview(root, f):
    """
    The preview of the message parsed as C{root} (L{fetch.parseStructure}),
    whose wire form C{f} (a binary file) holds.
    """
    part = textPart(root)
    if part is None:
        return ""
    f.seek(part.headerEnd)
    text = decodedText(part, f.read(min(part.size, READ_LIMIT)))
    if _lower(part.subType) == b"html":
        return snippet(htmlChars(text))
    return snippet(text)
