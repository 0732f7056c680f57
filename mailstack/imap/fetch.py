"""
Message structure for FETCH: MIME parts as byte ranges, ENVELOPE, BODYSTRUCTURE
and the content of C{BODY[section]<partial>}.

Why not the email package: it builds the whole message in memory and gives no
byte offsets, while IMAP needs the exact octets of every part (BODY[1.2] is a
slice of the file) and must not hold a 50 MB attachment to answer one. So the
message is read once, line by line, recording where each header and body
starts and ends and how many lines it has; content is later streamed from
those ranges. Only header fields are kept (up to L{MAX_HEADER_KEPT} per part).

Malformed MIME never raises: a missing or unparseable Content-Type is
text/plain, a parameter without C{=} is skipped, a multipart without a
boundary (or whose boundary never appears) is text/plain, nesting deeper than
L{MAX_DEPTH} is a leaf, and a part that does not exist is empty.

Values are reported as they appear in the message (case preserved); defaults
are RFC 3501's (C{"TEXT" "PLAIN" ("CHARSET" "US-ASCII")}, C{"7BIT"}).
"""

import re

from mailstack.imap.address import formatAddresses, parseAddresses
from mailstack.imap.response import formatList, nstring, string

CHUNK = 65536
MAX_DEPTH = 50
MAX_HEADER_KEPT = 256 * 1024

_WSP = b" \t"


class Part:
    """
    One MIME entity. Offsets are into the message's wire (CRLF) form:
    C{start} (its header), C{headerEnd} (its body; after the blank line),
    C{end} (end of its body).
    """

    def __init__(self, start=0):
        self.start = start
        self.headerEnd = start
        self.end = start
        self.lines = 0
        self.fields = []  # [(lower-case name, raw field bytes incl. CRLF)]
        self.mainType = b"TEXT"
        self.subType = b"PLAIN"
        self.params = [(b"CHARSET", b"US-ASCII")]
        self.children = []
        self.message = None
        self.multipart = False
        self.complete = True
        self._startLine = 0

    @property
    def size(self):
        return self.end - self.headerEnd

    @property
    def isMessage(self):
        return self.message is not None

    def header(self, name):
        """The first field C{name} (lower-case bytes), unfolded, or None."""
        for lower, raw in self.fields:
            if lower == name:
                return unfold(raw)
        return None

    def headers(self, name):
        return [unfold(raw) for lower, raw in self.fields if lower == name]


def unfold(raw):
    """C{b"Subject: a\\r\\n b\\r\\n"} -> C{b"a b"}; a nameless line is kept whole."""
    colon = raw.find(b":")
    value = raw[colon + 1:] if colon >= 0 else raw
    return value.replace(b"\r", b"").replace(b"\n", b"").strip(_WSP)


class _Lines:
    """Lines (or pieces of very long lines) of a file, with offsets and counts."""

    def __init__(self, f):
        self.f = f
        self.offset = 0
        self.lineNo = 0
        self.atStart = True   # the next piece starts a line
        self.lastTerm = 0     # length of the last line ending taken (1 or 2)
        self._peeked = None
        self._lastCR = False

    def peek(self):
        if self._peeked is None:
            data = self.f.readline(CHUNK)
            if not data:
                return None
            self._peeked = data
        return self._peeked

    def take(self):
        data, self._peeked = self._peeked, None
        self.offset += len(data)
        if data.endswith(b"\n"):
            self.lineNo += 1
            self.lastTerm = 2 if data.endswith(b"\r\n") or (data == b"\n" and self._lastCR) else 1
            self.atStart = True
        else:
            self.atStart = False
        self._lastCR = data.endswith(b"\r")
        return data


def _boundaryMatch(data, boundaries):
    """The index of the boundary C{data} is a delimiter line of, or None."""
    if not data.startswith(b"--"):
        return None
    line = data.rstrip(b"\r\n").rstrip(_WSP)
    for i in range(len(boundaries) - 1, -1, -1):
        b = b"--" + boundaries[i]
        if line == b or line == b + b"--":
            return i
    return None


def parseHeaderOnly(f, size):
    """The message's top-level header; its body is left unparsed."""
    lines = _Lines(f)
    part = Part(0)
    _readHeader(lines, part, [])
    part.headerEnd = lines.offset
    part.end = size
    part.complete = False
    _contentType(part, (b"TEXT", b"PLAIN"))
    return part


def parseStructure(f):
    """Parse a whole message (a binary file at offset 0) into a L{Part} tree."""
    return _parsePart(_Lines(f), [], (b"TEXT", b"PLAIN"), 0)


def _parsePart(lines, boundaries, default, depth):
    part = Part(lines.offset)
    _readHeader(lines, part, boundaries)
    part.headerEnd = lines.offset
    part._startLine = lines.lineNo
    boundary = _contentType(part, default)
    if part.multipart and depth < MAX_DEPTH:
        _parseMultipart(lines, part, boundaries, boundary, depth)
    elif (part.mainType.lower(), part.subType.lower()) == (b"message", b"rfc822") and depth < MAX_DEPTH:
        part.message = _parsePart(lines, boundaries, (b"TEXT", b"PLAIN"), depth + 1)
    else:
        _skipBody(lines, boundaries)
    _finish(lines, part)
    if part.multipart and not part.children:
        _demote(part)
    return part


def _demote(part):
    """A multipart that is not one (no boundary, no parts, too deep): text/plain."""
    part.multipart = False
    part.children = []
    part.mainType, part.subType = b"TEXT", b"PLAIN"
    part.params = [(b"CHARSET", b"US-ASCII")]


def _finish(lines, part):
    """
    Close C{part} where the reader stands. Before a boundary the line end
    preceding it belongs to the delimiter (RFC 2046 5.1.1), so it leaves the
    body and its line. C{lines} is the number of line ends (LF) in the body,
    as Dovecot counts: C{hello} CRLF is one line, C{hello} alone none.
    """
    taken = lines.lineNo - part._startLine
    if lines.peek() is None:
        part.end = lines.offset
        part.lines = taken
    else:
        part.end = max(part.headerEnd, lines.offset - lines.lastTerm)
        part.lines = max(0, taken - 1) if part.end > part.headerEnd else 0


def _readHeader(lines, part, boundaries):
    kept = 0
    fields = part.fields
    while True:
        data = lines.peek()
        if data is None:
            return
        startsLine = lines.atStart
        if startsLine:
            if data in (b"\r\n", b"\n"):
                lines.take()
                return
            if boundaries and _boundaryMatch(data, boundaries) is not None:
                return
        lines.take()
        if kept > MAX_HEADER_KEPT:
            continue
        kept += len(data)
        if fields and (not startsLine or data[:1] in (b" ", b"\t")):
            name, raw = fields[-1]
            fields[-1] = (name, raw + data)
            continue
        colon = data.find(b":")
        name = data[:colon].strip(_WSP).lower() if colon > 0 else b""
        if not name or any(c <= 32 or c >= 127 for c in name):
            name = b""
        fields.append((name, data))


def _skipBody(lines, boundaries):
    while True:
        data = lines.peek()
        if data is None:
            return
        if boundaries and lines.atStart and _boundaryMatch(data, boundaries) is not None:
            return
        lines.take()


def _parseMultipart(lines, part, boundaries, boundary, depth):
    inner = boundaries + [boundary]
    mine = len(inner) - 1
    childDefault = (b"MESSAGE", b"RFC822") if part.subType.lower() == b"digest" else (b"TEXT", b"PLAIN")
    closed = False
    while True:
        data = lines.peek()
        if data is None:
            return
        if lines.atStart:
            which = _boundaryMatch(data, inner)
            if which is not None and which != mine:
                return  # an enclosing part's boundary ends this one
            if which == mine and not closed:
                lines.take()
                if data.rstrip(b"\r\n").rstrip(_WSP).endswith(b"--" + boundary + b"--"):
                    closed = True  # the epilogue follows
                    continue
                part.children.append(_parsePart(lines, inner, childDefault, depth + 1))
                continue
        lines.take()


# -- header values -----------------------------------------------------------

_TYPE = re.compile(rb"\s*([^\s/;()\"]+)\s*/\s*([^\s;()\"]+)")


def _stripComments(value):
    if b"(" not in value:
        return value
    out, depth, quoted, escape = bytearray(), 0, False, False
    for c in value:
        if escape:
            escape = False
            if depth == 0:
                out.append(c)
            continue
        if c == 0x5c:
            escape = True
            if depth == 0:
                out.append(c)
            continue
        if quoted:
            if c == 0x22:
                quoted = False
            out.append(c)
        elif c == 0x22 and depth == 0:
            quoted = True
            out.append(c)
        elif c == 0x28:
            depth += 1
        elif c == 0x29 and depth:
            depth -= 1
        elif depth == 0:
            out.append(c)
    return bytes(out)



def _quotedString(data, i):
    """
    Read an RFC 822 quoted string starting at the quote C{data[i]}: backslash
    escapes the next octet; an unterminated string ends with the data.

    @return: C{(content bytes, index after the closing quote)}.
    """
    n = len(data)
    out = bytearray()
    i += 1
    while i < n and data[i] != 0x22:
        if data[i] == 0x5c and i + 1 < n:
            i += 1
        out.append(data[i])
        i += 1
    return bytes(out), i + 1

def parseParams(text):
    """C{; a=b; c="d"} -> C{[(b"a", b"b"), (b"c", b"d")]}; malformed ones skipped."""
    params = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in b" \t;":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] not in b"=;":
            i += 1
        name = text[start:i].strip(_WSP)
        if i >= n or text[i] != 0x3d:  # no '=': skip this one
            continue
        i += 1
        while i < n and text[i] in _WSP:
            i += 1
        if i < n and text[i] == 0x22:
            value, i = _quotedString(text, i)
            while i < n and text[i] != 0x3b:
                i += 1
        else:
            start = i
            while i < n and text[i] != 0x3b:
                i += 1
            value = text[start:i].strip(_WSP)
        if name:
            params.append((name, value))
    return params


def _contentType(part, default):
    """Set the part's type from its header; return the boundary of a multipart."""
    raw = part.header(b"content-type")
    match = _TYPE.match(_stripComments(raw)) if raw is not None else None
    if match is None:
        part.mainType, part.subType = default
        part.params = [(b"CHARSET", b"US-ASCII")] if default == (b"TEXT", b"PLAIN") else []
        return None
    part.mainType, part.subType = match.group(1), match.group(2)
    part.params = parseParams(_stripComments(raw)[match.end():])
    if part.mainType.lower() != b"multipart":
        return None
    boundary = next((v for k, v in part.params if k.lower() == b"boundary"), b"")
    if not boundary:
        _demote(part)
        return None
    part.multipart = True
    return boundary


# -- ENVELOPE ----------------------------------------------------------------

def _addressList(part, name, fallback=None):
    """
    An address header as ENVELOPE writes it (the addresses of every field of
    that name, as Dovecot); Sender and Reply-To default to From.
    """
    addresses = [address for value in part.headers(name) for address in parseAddresses(value)]
    if not addresses and fallback is not None:
        return _addressList(part, fallback)
    return formatAddresses(addresses)


def envelope(part):
    """ENVELOPE of a message (its top-level header)."""
    return formatList([
        nstring(part.header(b"date")),
        nstring(part.header(b"subject")),
        _addressList(part, b"from"),
        _addressList(part, b"sender", b"from"),
        _addressList(part, b"reply-to", b"from"),
        _addressList(part, b"to"),
        _addressList(part, b"cc"),
        _addressList(part, b"bcc"),
        nstring(part.header(b"in-reply-to")),
        nstring(part.header(b"message-id")),
    ])


# -- BODYSTRUCTURE -----------------------------------------------------------

def _params(params):
    if not params:
        return b"NIL"
    return formatList([string(v) for pair in params for v in pair])


def _disposition(part):
    raw = part.header(b"content-disposition")
    if not raw:
        return b"NIL"
    raw = _stripComments(raw)
    kind, _, rest = raw.partition(b";")
    kind = kind.strip(_WSP)
    if not kind:
        return b"NIL"
    return formatList([string(kind), _params(parseParams(rest))])


def _language(part):
    raw = part.header(b"content-language")
    if not raw:
        return b"NIL"
    tags = [t for t in re.split(rb"[\s,]+", _stripComments(raw)) if t]
    if not tags:
        return b"NIL"
    if len(tags) == 1:
        return string(tags[0])
    return formatList([string(t) for t in tags])


def _encoding(part):
    raw = part.header(b"content-transfer-encoding")
    value = _stripComments(raw).strip(_WSP) if raw else b""
    return value or b"7BIT"


def bodyStructure(part, extended=True):
    """BODYSTRUCTURE (C{extended}) or BODY of a parsed part."""
    if part.multipart:
        out = b"".join(bodyStructure(child, extended) for child in part.children)
        out += b" " + string(part.subType)
        if extended:
            out += b" " + b" ".join([_params(part.params), _disposition(part),
                                     _language(part), nstring(part.header(b"content-location"))])
        return b"(" + out + b")"
    fields = [string(part.mainType), string(part.subType), _params(part.params),
              nstring(part.header(b"content-id")),
              nstring(part.header(b"content-description")),
              string(_encoding(part)), b"%d" % (part.size,)]
    if part.message is not None:
        fields += [envelope(part.message), bodyStructure(part.message, extended),
                   b"%d" % (part.lines,)]
    elif part.mainType.lower() == b"text":
        fields.append(b"%d" % (part.lines,))
    if extended:
        fields += [nstring(part.header(b"content-md5")), _disposition(part),
                   _language(part), nstring(part.header(b"content-location"))]
    return formatList(fields)


# -- sections ----------------------------------------------------------------

def _children(part):
    if part.multipart:
        return part.children
    if part.message is not None:
        inner = part.message
        return inner.children if inner.multipart else [inner]
    return [part]


def needsStructure(section):
    """Whether C{section} needs the whole message parsed (not just its header)."""
    return bool(section.part)


def locate(root, section):
    """
    Where C{BODY[section]} is: C{(start, end)} in the message, or C{bytes}.
    A part that does not exist is C{b""}.
    """
    if not section.part:
        message = root
        if section.text is None:
            return (0, root.end)
    else:
        node = None
        for number in section.part:
            kids = (root.children if root.multipart else [root]) if node is None else _children(node)
            if number > len(kids):
                return b""
            node = kids[number - 1]
        if section.text is None:
            return (node.headerEnd, node.end)
        if section.text == "MIME":
            return (node.start, node.headerEnd)
        message = node.message
        if message is None:
            return b""
    if section.text == "HEADER":
        return (message.start, message.headerEnd)
    if section.text == "TEXT":
        return (message.headerEnd, message.end)
    wanted = {name.lower() for name in section.fields}
    keep = section.text == "HEADER.FIELDS"
    return b"".join(raw for name, raw in message.fields
                    if (name in wanted) == keep and (name or not keep)) + b"\r\n"
