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
boundary (or whose boundary never appears) has no parts (BODYSTRUCTURE shows
one empty text/plain part, as Dovecot does), nesting deeper than
L{MAX_DEPTH} is a leaf, and a part that does not exist is empty.

Values are reported as they appear in the message (case preserved); defaults
are written as Dovecot writes them (C{"text" "plain" ("charset" "us-ascii")},
C{"7bit"}), and a text part without a charset gets C{"charset" "us-ascii"}
(RFC 2045's default) after its parameters. tests/differential/ holds these
choices against Dovecot.
"""

import binascii
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
        self.mainType = b"text"
        self.subType = b"plain"
        self.params = []
        self.children = []
        self.message = None
        self.multipart = False
        self.complete = True
        self.blankLine = False  # the header ended with its blank line
        # whether the Content-* fields count (see content())
        self.mime = True
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

    def content(self, name):
        """
        A Content-* field (L{header}) as MIME reads it: None in a message's
        header that has neither MIME-Version nor Content-Type, where Dovecot
        forgets such fields (a part of a multipart is always MIME).
        """
        return self.header(name) if self.mime else None

    def rawValues(self, name):
        """
        The values of every field C{name} as they stand: folds and lone CRs
        included, without the leading white space and the final line end.
        """
        return [_rawValue(raw) for lower, raw in self.fields if lower == name]

    def lastRaw(self, name):
        """
        L{rawValues}' last, or None: a repeated Date or Subject counts in
        ENVELOPE by its last copy, as in Dovecot.
        """
        for lower, raw in reversed(self.fields):
            if lower == name:
                return _rawValue(raw)
        return None


def _rawValue(raw):
    value = raw[raw.find(b":") + 1:]
    if value.endswith(b"\n"):
        value = value[:-1]
    if value.endswith(b"\r"):
        value = value[:-1]
    return value.lstrip(_WSP)


def unfold(raw):
    """C{b"Subject: a\\r\\n b\\r\\n"} -> C{b"a b"}; a nameless line is kept whole."""
    colon = raw.find(b":")
    value = raw[colon + 1:] if colon >= 0 else raw
    return value.replace(b"\r", b"").replace(b"\n", b"").strip(_WSP)


# The bytes a header field name may hold (RFC 5322 2.2: printable ASCII but space).
_NAME_BYTES = bytes(range(33, 127))


class _Lines:
    """Lines (or pieces of very long lines) of a file, with offsets and counts."""

    def __init__(self, f):
        self.f = f
        self.offset = 0
        self.lineNo = 0
        self.atStart = True   # the next piece starts a line
        self.lastTerm = 0     # length of the last line ending taken (1 or 2)
        # the last line end taken ends what ends here rather than starting
        # the boundary that follows: it ended a boundary line, or a header
        # cut short by a boundary (Dovecot counts it in the part)
        self.lineEndKept = False
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
        self.lineEndKept = False
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

    def takeRest(self):
        """
        Take everything left in big reads (a body no boundary can end, e.g.
        a single-part message's): the same offset, line count and last line
        end as taking it line by line, without a Python step per line.
        """
        while True:
            if self._peeked is not None:
                data, self._peeked = self._peeked, None
            else:
                data = self.f.read(CHUNK)
                if not data:
                    return
            self.lineEndKept = False
            self.offset += len(data)
            newlines = data.count(b"\n")
            if newlines:
                self.lineNo += newlines
                last = data.rfind(b"\n")
                crlf = data[last - 1] == 13 if last > 0 else self._lastCR
                self.lastTerm = 2 if crlf else 1
            self.atStart = data.endswith(b"\n")
            self._lastCR = data.endswith(b"\r")


def _boundaryMatch(data, boundaries):
    """
    The index of the boundary C{data} is a delimiter line of, or None: a line
    that starts with C{--} and the boundary, whatever follows (the innermost
    boundary first), as Dovecot reads them, so C{--abcdef} closes a part of
    boundary C{abc}.
    """
    if not data.startswith(b"--"):
        return None
    for i in range(len(boundaries) - 1, -1, -1):
        if data.startswith(boundaries[i], 2):
            return i
    return None


def _isClose(data, boundary):
    """Whether a delimiter line of C{boundary} is its close delimiter."""
    return data.startswith(b"--", 2 + len(boundary))


def parseHeaderOnly(f, size):
    """The message's top-level header; its body is left unparsed."""
    lines = _Lines(f)
    part = Part(0)
    _readHeader(lines, part, [])
    _isMime(part, False)
    part.headerEnd = lines.offset
    part.end = size
    part.complete = False
    _contentType(part, (b"text", b"plain"))
    return part


def parseStructure(f):
    """Parse a whole message (a binary file at offset 0) into a L{Part} tree."""
    return _parsePart(_Lines(f), [], (b"text", b"plain"), 0)


def _isMime(part, inMultipart):
    part.mime = (inMultipart or part.header(b"mime-version") is not None
                 or part.header(b"content-type") is not None)


def _parsePart(lines, boundaries, default, depth, inMultipart=False):
    part = Part(lines.offset)
    cut = _readHeader(lines, part, boundaries)
    _isMime(part, inMultipart)
    part.headerEnd = lines.offset
    part._startLine = lines.lineNo
    boundary = _contentType(part, default)
    if cut:
        # the header's last line end is the boundary's: the part is its
        # header without it and an empty body, while whatever encloses the
        # part still counts that line end (Dovecot's sizes)
        part.headerEnd -= lines.lastTerm
        part.end = part.headerEnd
        if (part.mainType.lower(), part.subType.lower()) == (b"message", b"rfc822"):
            part.message = Part(part.headerEnd)
        lines.lineEndKept = True
        return part
    if part.multipart and depth >= MAX_DEPTH:
        _demote(part)
    if part.multipart and boundary:
        _parseMultipart(lines, part, boundaries, boundary, depth)
    elif (part.mainType.lower(), part.subType.lower()) == (b"message", b"rfc822") and depth < MAX_DEPTH:
        part.message = _parsePart(lines, boundaries, (b"text", b"plain"), depth + 1)
    else:
        _skipBody(lines, boundaries)
    _finish(lines, part)
    return part


def _demote(part):
    """A multipart nested too deep: a text/plain leaf."""
    part.multipart = False
    part.children = []
    part.mainType, part.subType = b"text", b"plain"
    part.params = []


def _finish(lines, part):
    """
    Close C{part} where the reader stands. Before a boundary the line end
    preceding it belongs to the delimiter (RFC 2046 5.1.1), so it leaves the
    body and its line. C{lines} is the number of line ends (LF) in the body,
    as Dovecot counts: C{hello} CRLF is one line, C{hello} alone none.
    """
    taken = lines.lineNo - part._startLine
    if lines.peek() is None or lines.lineEndKept:
        part.end = lines.offset
        part.lines = taken
    else:
        part.end = max(part.headerEnd, lines.offset - lines.lastTerm)
        part.lines = max(0, taken - 1) if part.end > part.headerEnd else 0


def _readHeader(lines, part, boundaries):
    """
    Read a part's header up to its blank line (taken), a boundary or the end.

    @return: whether a boundary follows at once and the header took a line
        (its blank line, or its last field when there is no blank line): that
        line end precedes the boundary, so it belongs to the boundary
        (RFC 2046 5.1.1) and not to the header, as Dovecot reads it.
    """
    kept = 0
    fields = part.fields
    taken = False
    while True:
        data = lines.peek()
        if data is None:
            return False
        startsLine = lines.atStart
        if startsLine:
            if data in (b"\r\n", b"\n"):
                lines.take()
                part.blankLine = True
                following = lines.peek()
                return (bool(boundaries) and following is not None
                        and _boundaryMatch(following, boundaries) is not None)
            if boundaries and _boundaryMatch(data, boundaries) is not None:
                return taken
        lines.take()
        taken = True
        if kept > MAX_HEADER_KEPT:
            continue
        kept += len(data)
        if fields and (not startsLine or data[:1] in (b" ", b"\t")):
            name, raw = fields[-1]
            fields[-1] = (name, raw + data)
            continue
        colon = data.find(b":")
        name = data[:colon].strip(_WSP).lower() if colon > 0 else b""
        if not name or name.translate(None, _NAME_BYTES):  # a byte outside 33-126
            name = b""
        fields.append((name, data))


def _skipBody(lines, boundaries):
    if not boundaries:
        lines.takeRest()
        return
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
    childDefault = (b"message", b"rfc822") if part.subType.lower() == b"digest" else (b"text", b"plain")
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
                lines.lineEndKept = True
                if _isClose(data, boundary):
                    closed = True  # the epilogue follows
                    continue
                part.children.append(_parsePart(lines, inner, childDefault, depth + 1, True))
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
        part.params = []
        return None
    part.mainType, part.subType = match.group(1), match.group(2)
    part.params = parseParams(_stripComments(raw)[match.end():])
    if part.mainType.lower() != b"multipart":
        return None
    part.multipart = True
    return next((v for k, v in part.params if k.lower() == b"boundary"), b"") or None


# -- ENVELOPE ----------------------------------------------------------------

def _addressList(part, name, fallback=None):
    """
    An address header as ENVELOPE writes it (the addresses of every field of
    that name, as Dovecot); Sender and Reply-To default to From.
    """
    addresses = [address for value in part.rawValues(name) for address in parseAddresses(value)]
    if not addresses and fallback is not None:
        return _addressList(part, fallback)
    return formatAddresses(addresses)


_NUL = "\ufffd".encode("utf-8")


def forHumans(value):
    """
    The ENVELOPE subject as Dovecot writes it for people: folds and runs of
    white space (CR, LF, tab, space) one space, none at either end, NUL as
    U+FFFD (Dovecot's header parser replaces it); quoted when nothing needed
    changing or escaping, else a literal.
    """
    cleaned = b" ".join(re.split(rb"[\r\n\t ]+", value.replace(b"\0", _NUL))).strip(b" ")
    if cleaned == value and not re.search(rb'["\\\x80-\xff]', value):
        return b'"' + value + b'"'
    if not cleaned:
        return b'""'
    return b"{%d}\r\n" % (len(cleaned),) + cleaned


def _lastString(part, name):
    value = part.lastRaw(name)
    return b"NIL" if value is None else nstring(unfold(b":" + value))


def envelope(part):
    """ENVELOPE of a message (its top-level header)."""
    subject = part.lastRaw(b"subject")
    return formatList([
        _lastString(part, b"date"),
        b"NIL" if subject is None else forHumans(subject),
        _addressList(part, b"from"),
        _addressList(part, b"sender", b"from"),
        _addressList(part, b"reply-to", b"from"),
        _addressList(part, b"to"),
        _addressList(part, b"cc"),
        _addressList(part, b"bcc"),
        _lastString(part, b"in-reply-to"),
        _lastString(part, b"message-id"),
    ])


# -- BODYSTRUCTURE -----------------------------------------------------------

def rfc2231(params):
    """
    Parameters with their RFC 2231 pieces put together, as Dovecot writes
    them: plain ones first, in order; then, sorted by name, each set of
    continuations (C{name*0}, C{name*1}...) joined into one C{name} (C{name*}
    if any piece is extended, the value left encoded, a plain piece's C{%}
    escaped); a set with a missing index is written piece by piece.
    """
    plain, pieces = [], []
    for name, value in params:
        star = name.find(b"*")
        if star < 0:
            plain.append((name, value))
            continue
        m = re.fullmatch(rb"(\d*)(\*?)", name[star + 1:])
        if m is None:
            plain.append((name, value))
            continue
        # name* alone is extended; name*N is a plain piece, name*N* extended
        index = int(m.group(1)) if m.group(1) else 0
        extended = bool(m.group(2)) or not m.group(1)
        pieces.append((name[:star], index, extended, value))
    pieces.sort(key=lambda p: (p[0].lower(), p[1]))
    out = list(plain)
    i = 0
    while i < len(pieces):
        key = pieces[i][0].lower()
        group = []
        while i < len(pieces) and pieces[i][0].lower() == key:
            group.append(pieces[i])
            i += 1
        if [p[1] for p in group] != list(range(len(group))):
            out += [(b"%s*%d%s" % (name, index, b"*" if ext else b""), value)
                     for name, index, ext, value in group]
            continue
        extended = any(p[2] for p in group)
        value = b"" if group[0][2] or not extended else b"''"
        for _, _, ext, piece in group:
            value += piece if ext or not extended else piece.replace(b"%", b"%25")
        out.append((group[0][0] + (b"*" if extended else b""), value))
    return out


def _params(params, text=False):
    """Body parameters; a text part without a charset gets us-ascii's."""
    params = rfc2231(params)
    if text and not any(name.lower() == b"charset" for name, _ in params):
        params = list(params) + [(b"charset", b"us-ascii")]
    if not params:
        return b"NIL"
    return formatList([string(v) for pair in params for v in pair])


def _disposition(part):
    raw = part.content(b"content-disposition")
    if not raw:
        return b"NIL"
    raw = _stripComments(raw)
    kind, _, rest = raw.partition(b";")
    kind = kind.strip(_WSP)
    if not kind:
        return b"NIL"
    return formatList([string(kind), _params(parseParams(rest))])


def _language(part):
    raw = part.content(b"content-language")
    if not raw:
        return b"NIL"
    tags = [t for t in re.split(rb"[\s,]+", _stripComments(raw)) if t]
    if not tags:
        return b"NIL"
    return formatList([string(t) for t in tags])


def _encoding(part):
    raw = part.content(b"content-transfer-encoding")
    value = _stripComments(raw).strip(_WSP) if raw else b""
    return value or b"7bit"


def bodyStructure(part, extended=True):
    """BODYSTRUCTURE (C{extended}) or BODY of a parsed part."""
    if part.multipart:
        # a multipart without parts is not allowed: one empty text/plain
        out = b"".join(bodyStructure(child, extended) for child in part.children
                       ) or bodyStructure(Part(), extended)
        out += b" " + string(part.subType)
        if extended:
            out += b" " + b" ".join([_params(part.params), _disposition(part),
                                     _language(part), nstring(part.content(b"content-location"))])
        return b"(" + out + b")"
    text = part.mainType.lower() == b"text"
    fields = [string(part.mainType), string(part.subType), _params(part.params, text),
              nstring(part.content(b"content-id")),
              nstring(part.content(b"content-description")),
              string(_encoding(part)), b"%d" % (part.size,)]
    if part.message is not None:
        fields += [envelope(part.message), bodyStructure(part.message, extended),
                   b"%d" % (part.lines,)]
    elif text:
        fields.append(b"%d" % (part.lines,))
    if extended:
        fields += [nstring(part.content(b"content-md5")), _disposition(part),
                   _language(part), nstring(part.content(b"content-location"))]
    return formatList(fields)


# -- sections ----------------------------------------------------------------

def _children(part, selfStep):
    """
    The parts numbered below C{part}, and whether they are C{part} itself:
    as in Dovecot, a leaf is its own part 1 once (BODY[1] of a text/plain
    message is its body, BODY[1.1] of a multipart's first text part is that
    part), but not again below that (BODY[1.1] of a text/plain message is
    empty).
    """
    if part.multipart:
        return part.children, False
    if part.message is not None:
        inner = part.message
        return (inner.children, False) if inner.multipart else ([inner], True)
    return ([] if selfStep else [part]), True


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
        node, selfStep = None, False
        for number in section.part:
            if node is None:
                kids, selfStep = (root.children, False) if root.multipart else ([root], True)
            else:
                kids, selfStep = _children(node, selfStep)
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
    # The blank line ends HEADER.FIELDS always; HEADER.FIELDS.NOT filters
    # the header as it is, so a message without one (RFC 3501 6.4.5: no body
    # and no blank line) gets none. Both as Dovecot answers.
    wanted = {name.lower() for name in section.fields}
    keep = section.text == "HEADER.FIELDS"
    end = b"\r\n" if keep or message.blankLine else b""
    return b"".join(raw for name, raw in message.fields
                    if (name in wanted) == keep and (name or not keep)) + end


# -- BINARY (RFC 3516) -------------------------------------------------------

class UnknownEncoding(Exception):
    """A part's Content-Transfer-Encoding is none this server decodes (NO [UNKNOWN-CTE])."""


_CONVERTED = (b"base64", b"quoted-printable")
_PLAIN = (b"7bit", b"8bit", b"binary")
_TOKEN = re.compile(rb"[^\x00-\x20\x7f()<>@,;:\\\"/\[\]?=]+")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_NOT_BASE64 = bytes(sorted(set(range(256)) - set(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")))
_TRAILING_WSP = re.compile(rb"[ \t]+(?=\r?\n|\Z)")


def binaryPart(root, numbers):
    """
    The part C{BINARY[numbers]} decodes (numbered as C{BODY[numbers]} is,
    see L{locate}), the whole message for no numbers, or None when there is
    no such part (its content is empty, as in Dovecot).
    """
    node, selfStep = root, False
    for i, number in enumerate(numbers):
        if i == 0:
            kids, selfStep = (root.children, False) if root.multipart else ([root], True)
        else:
            kids, selfStep = _children(node, selfStep)
        if number > len(kids):
            return None
        node = kids[number - 1]
    return node


def transferEncoding(part):
    """
    The part's Content-Transfer-Encoding, lower-case, as Dovecot reads it:
    its last such field's first token (comments skipped); C{b"7bit"} without
    one. L{UnknownEncoding} for anything but 7bit, 8bit, binary, base64 and
    quoted-printable (an empty value too).
    """
    values = part.headers(b"content-transfer-encoding")
    if not values:
        return b"7bit"
    match = _TOKEN.match(_stripComments(values[-1]).strip(_WSP))
    value = match.group(0).lower() if match else b""
    if value not in _CONVERTED + _PLAIN:
        raise UnknownEncoding(value)
    return value


def decodeBase64(data):
    """
    Base64 content as bytes, forgivingly: white space and other octets
    outside the alphabet are skipped, decoding stops at the padding, and a
    last incomplete group gives what it holds.
    """
    data = data.split(b"=", 1)[0].translate(None, _NOT_BASE64)
    extra = len(data) % 4
    if extra == 1:
        data = data[:-1]
    elif extra:
        data += b"=" * (4 - extra)
    return binascii.a2b_base64(data)


def decodeQuotedPrintable(data):
    """
    Quoted-printable content as bytes (RFC 2045 6.7): C{=XX} an octet, a
    line ending in C{=} joined to the next (soft line break), white space at
    a line's end dropped, line ends CRLF; an C{=} not followed by two hex
    digits stays as it is. binascii does the decoding (in C: a 25 MB part
    takes a fraction of a second).
    """
    if any(end in data for end in (b" \r\n", b"\t\r\n", b" \n", b"\t\n")) or (
            data[-1:] in (b" ", b"\t")):
        data = _TRAILING_WSP.sub(b"", data)
    return binascii.a2b_qp(_crlf(data))


def _crlf(data):
    """Bare LF line ends as CRLF (the regular expression only when one is there)."""
    if data.count(b"\n") == data.count(b"\r\n"):
        return data
    return _BARE_LF.sub(b"\r\n", data)


def _binaryHeader(header):
    """A decoded part's header: its Content-Transfer-Encoding fields now say binary."""
    lines = re.split(rb"(?<=\n)", header)
    kept, skipping = [], False
    for line in lines:
        if not line:
            continue
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = line[:26].lower() == b"content-transfer-encoding:"
        if not skipping:
            kept.append(line)
    field = b"Content-Transfer-Encoding: binary\r\n"
    if kept and kept[-1] in (b"\r\n", b"\n"):
        return b"".join(kept[:-1]) + field + kept[-1]
    return b"".join(kept) + field


class _Binary:
    """The pieces of one BINARY answer, and whether it needs literal8."""

    def __init__(self, read):
        self.read = read
        self.out = []
        self.binary = False

    def plain(self, data):
        if b"\0" in data:
            self.binary = True
        self.out.append(_crlf(data))

    def part(self, part, withHeader):
        encoding = transferEncoding(part)
        header = self.read(part.start, part.headerEnd)
        if b"\0" in header:
            self.binary = True  # sent as stored, as Dovecot does
        if withHeader:
            if encoding in _CONVERTED:
                self.out.append(_binaryHeader(header))
            else:
                self.plain(header)
        kids = part.children if part.multipart else (
            [part.message] if part.message is not None else [])
        if kids:
            position = part.headerEnd
            for kid in kids:
                self.plain(self.read(position, kid.start))
                self.part(kid, True)
                position = kid.end
            self.plain(self.read(position, part.end))
            return
        body = self.read(part.headerEnd, part.end)
        if not body:
            return
        if encoding == b"base64":
            self.out.append(decodeBase64(body))
            self.binary = True
        elif encoding == b"quoted-printable":
            self.out.append(decodeQuotedPrintable(body))
            self.binary = True
        else:
            self.plain(body)


def binaryContent(root, numbers, read):
    """
    C{BINARY[numbers]}: the part's body with its Content-Transfer-Encoding
    undone (base64 and quoted-printable decoded, others as they are with
    CRLF line ends), the parts inside it decoded too with their headers
    (whose encoding then says binary); for no numbers the whole message,
    header included. As Dovecot's index-mail-binary answers.

    @param read: C{read(start, end)} gives the message's octets in that range.
    @return: C{(content, literal8)}: C{literal8} when something was decoded
        or the content holds NUL, as Dovecot chooses C{~{n}} over C{{n}}.
    @raise UnknownEncoding: an encoding among those parts is unknown.
    """
    part = binaryPart(root, numbers)
    if part is None:
        return b"", False
    answer = _Binary(read)
    answer.part(part, not numbers)
    return b"".join(answer.out), answer.binary
