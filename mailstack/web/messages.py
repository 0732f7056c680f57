"""
A stored message as the console and the API show it: pure functions over
C{email.message} (no Twisted, no templates, no I/O), so the pages and the
JSON API render the same parts the same way.

Parts are named by their IMAP section numbers (RFC 3501 6.4.5: C{"1"} for
the body of a single-part message, C{"1.2"} for the second child of the
first part), which stay the same however often the message is parsed. A
C{message/rfc822} part is one part (downloaded as C{.eml}), not walked.

Text parts are decoded with their declared charset, falling back to UTF-8
and then to Latin-1 (which decodes anything), so a broken message still
shows. HTML is returned as the message has it, never cleaned: it is only
ever served by L{HTML_PART_HEADERS}'s route into a sandboxed frame (see
docs/console.md, "HTML mail"), where the browser, not a sanitizer, keeps its
scripts from running and its remote images from loading.
"""

import codecs
import dataclasses
import email
import email.header
import email.policy
import email.utils
import mimetypes
import re
import unicodedata
from email.parser import BytesHeaderParser
from urllib.parse import quote

__all__ = ["Part", "Summary", "parseMessage", "parseHeaders", "summarize", "headerList",
           "parts", "findPart", "bodyParts", "attachments", "partText", "partBytes",
           "safeFilename", "contentDisposition", "HTML_PART_CSP", "HTML_PART_HEADERS",
           "ATTACHMENT_HEADERS", "splitHeader"]

# What the route serving an HTML part sends. The frame that shows it is
# <iframe sandbox> (no allow-scripts, no allow-same-origin); the CSP says
# the same to a browser that opens the route on its own ("sandbox"), and
# allows nothing to load but inline styles and data: images: no scripts, no
# remote images (no tracking pixels), no fonts, frames, forms or plugins.
HTML_PART_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                 "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox")
HTML_PART_HEADERS = {
    b"content-type": b"text/html; charset=utf-8",
    b"content-security-policy": HTML_PART_CSP.encode("ascii"),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"SAMEORIGIN",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
}
# What an attachment download sends, beside its Content-Disposition: bytes
# the browser must save, never render or sniff.
ATTACHMENT_HEADERS = {
    b"content-type": b"application/octet-stream",
    b"x-content-type-options": b"nosniff",
    b"content-security-policy": b"default-src 'none'; sandbox",
    b"cache-control": b"no-store",
}

# The policy email.policy.default with no line length limit: headers are
# decoded (RFC 2047, RFC 2231) and parsing never raises on bad input.
_POLICY = email.policy.default


def parseMessage(source):
    """The message in C{source} (bytes, CRLF or LF lines)."""
    return email.message_from_bytes(source, policy=_POLICY)


def parseHeaders(source):
    """The header section of C{source} only (the body is not parsed)."""
    return BytesHeaderParser(policy=_POLICY).parsebytes(source)


def splitHeader(source):
    """C{source}'s header section (up to and with the blank line), or all of it."""
    match = re.search(rb"\r?\n\r?\n", source)
    return source if match is None else source[:match.end()]


def _decoded(raw):
    """
    A raw header value with its RFC 2047 encoded words decoded, and nothing
    else changed (an address header is shown as written, not as the
    parser would rewrite it).
    """
    raw = str(raw)
    try:
        return str(email.header.make_header(email.header.decode_header(raw)))
    except Exception:  # an unknown charset, a broken encoded word
        return raw


def _header(message, name):
    """A header's decoded text, C{""} when missing; never raises on a bad one."""
    for key, raw in message.raw_items():
        if key.lower() == name.lower():
            return _oneLine(_decoded(raw))
    return ""


def _oneLine(text):
    # Folded or encoded-word line breaks and control characters shown as spaces.
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


@dataclasses.dataclass(frozen=True)
class Summary:
    """
    What a message list shows of one message.

    @ivar date: the C{Date:} header as an aware C{datetime}, or L{None}.
    """

    sender: str
    to: str
    cc: str
    subject: str
    date: object
    dateText: str
    messageID: str


def summarize(message):
    """The L{Summary} of a parsed message (or of its headers alone)."""
    dateText = _header(message, "date")
    try:
        date = email.utils.parsedate_to_datetime(dateText) if dateText else None
    except (TypeError, ValueError, IndexError):
        date = None
    return Summary(sender=_header(message, "from"), to=_header(message, "to"),
                   cc=_header(message, "cc"), subject=_header(message, "subject"),
                   date=date, dateText=dateText, messageID=_header(message, "message-id"))


def headerList(message):
    """Every header as C{(name, decoded text)}, in the message's order."""
    return [(name, _oneLine(_decoded(raw))) for name, raw in message.raw_items()]


@dataclasses.dataclass(frozen=True)
class Part:
    """
    One leaf part of a message.

    @ivar section: its IMAP section number (C{"1"}, C{"2.1"}).
    @ivar contentType: e.g. C{"text/plain"} (lower case).
    @ivar charset: the declared charset, or L{None}.
    @ivar filename: the name the message gives it (decoded), or L{None}.
    @ivar disposition: C{"inline"}, C{"attachment"} or L{None}.
    @ivar size: octets once its transfer encoding is undone.
    @ivar contentID: its C{Content-ID} without the angle brackets, or L{None}.
    @ivar isAttachment: offered as a download rather than shown: marked an
        attachment, named, or neither text/plain nor text/html.
    """

    section: str
    contentType: str
    charset: object
    filename: object
    disposition: object
    size: int
    contentID: object
    isAttachment: bool

    @property
    def isHTML(self):
        return self.contentType == "text/html"

    @property
    def isText(self):
        return self.contentType == "text/plain"

    @property
    def downloadName(self):
        """A safe file name to save it under (L{safeFilename})."""
        return safeFilename(self.filename, self.section, self.contentType)


def _walk(message, prefix):
    """C{(section, part)} of each leaf under C{message}, depth first."""
    if message.is_multipart() and message.get_content_type() != "message/rfc822":
        for number, child in enumerate(message.get_payload(), 1):
            section = "%s.%d" % (prefix, number) if prefix else str(number)
            yield from _walk(child, section)
    else:
        yield (prefix or "1"), message


def parts(message):
    """Every leaf L{Part} of C{message}, in order."""
    return [_describe(section, part) for section, part in _walk(message, "")]


def findPart(message, section):
    """The leaf part (an C{email.message.Message}) at C{section}, or L{None}."""
    for found, part in _walk(message, ""):
        if found == section:
            return part
    return None


def _describe(section, part):
    contentType = part.get_content_type().lower()
    try:
        filename = part.get_filename()
    except Exception:
        filename = None
    if filename is not None:
        filename = _oneLine(str(filename)) or None
    disposition = part.get_content_disposition()
    contentID = _header(part, "content-id").strip("<>") or None
    shown = contentType in ("text/plain", "text/html")
    isAttachment = disposition == "attachment" or filename is not None or not shown
    return Part(section=section, contentType=contentType,
                charset=part.get_content_charset(), filename=filename,
                disposition=disposition, size=len(partBytes(part)),
                contentID=contentID, isAttachment=isAttachment)


def bodyParts(message):
    """The parts shown as the message's text: text/plain and text/html, not attachments."""
    return [p for p in parts(message) if not p.isAttachment]


def attachments(message):
    """The parts offered as downloads."""
    return [p for p in parts(message) if p.isAttachment]


def partBytes(part):
    """A leaf part's content, its transfer encoding (base64, quoted-printable) undone."""
    if part.get_content_type() == "message/rfc822" or part.is_multipart():
        payload = part.get_payload()
        if isinstance(payload, list):
            return b"".join(p.as_bytes(policy=_POLICY) for p in payload)
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if data is None:
        raw = part.get_payload()
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    return data


def partText(part):
    """
    A text part as a string: its declared charset, else UTF-8, else
    Latin-1 (undecodable octets never stop the display).
    """
    data = partBytes(part)
    charset = part.get_content_charset()
    candidates = []
    if charset:
        try:
            candidates.append(codecs.lookup(charset).name)
        except LookupError:
            pass
    candidates += ["utf-8", "latin-1"]
    for name in candidates:
        try:
            return data.decode(name)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace")  # not reached: Latin-1 decodes anything


_UNSAFE = re.compile(r'[\x00-\x1f\x7f"*/:<>?\\|;]+')


def safeFilename(name, section="1", contentType="application/octet-stream", limit=100):
    """
    A file name to offer a download under: the message's name without any
    directory part, control or shell-special characters, leading dots or
    surrounding space, at most C{limit} characters (the extension kept);
    C{part-<section><extension>} when nothing is left.
    """
    text = ""
    if name:
        text = unicodedata.normalize("NFC", str(name))
        text = re.split(r"[/\\]", text)[-1]
        text = _UNSAFE.sub("_", text)
        text = re.sub(r"\s+", " ", text).strip(" .")
    if not text:
        extension = ".eml" if contentType == "message/rfc822" else (
            mimetypes.guess_extension(contentType, strict=False) or ".bin")
        return "part-%s%s" % (section.replace(".", "-"), extension)
    if len(text) > limit:
        stem, dot, extension = text.rpartition(".")
        if dot and 0 < len(extension) <= 10 and stem:
            text = stem[:limit - len(extension) - 1].rstrip(" .") + "." + extension
        else:
            text = text[:limit]
    return text


def contentDisposition(filename):
    """
    The C{Content-Disposition} value (bytes) that saves a download as
    C{filename} (RFC 6266: an ASCII C{filename} for old browsers and the
    exact one as C{filename*} in UTF-8).
    """
    ascii = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    ascii = re.sub(r"[^A-Za-z0-9 ._()+,=@~-]", "_", ascii).strip() or "download"
    value = 'attachment; filename="%s"' % (ascii,)
    if ascii != filename:
        value += "; filename*=UTF-8''%s" % (quote(filename, safe=""),)
    return value.encode("ascii")
