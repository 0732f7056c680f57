"""
RFC 5322 address lists as IMAP sees them: parsed for ENVELOPE (RFC 3501
section 7.4.2) and written back in a canonical form for SEARCH FROM/TO/CC/BCC.

The reading follows Dovecot 2.3 (the oracle mailstack is compared with),
including how it recovers from broken headers, so that a client sees the same
ENVELOPE from both servers:

  - A comment gives an addr-spec its display name: C{user@domain (Real Name)}
    is C{("Real Name" NIL "user" "domain")}. Of several comments the last one
    read inside the address counts; nested parentheses stay in the name and
    quoted pairs are unescaped. A C{name <addr>} keeps its phrase and ignores
    comments.
  - Missing parts are filled with C{MISSING_MAILBOX}, C{MISSING_DOMAIN},
    C{SYNTAX_ERROR} (an unparseable C{<...>}) and C{INVALID_ROUTE}.
  - Words without an address become a name (C{Real Name} alone is
    C{("Real Name" NIL "MISSING_MAILBOX" "MISSING_DOMAIN")}); reading stops at
    the first thing that is neither an address nor a comma.

Addresses are C{(name, route, mailbox, domain)} tuples of bytes or None; a
group is opened by C{(None, None, groupName, None)} and closed by
C{(None, None, None, None)}, as in ENVELOPE.
"""

from mailstack.imap.response import formatList, string

# The replacement for a NUL octet in comments and quoted strings (U+FFFD).
_NUL_REPLACEMENT = "\ufffd".encode("utf-8")

_ATEXT = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
) | frozenset(range(128, 256))
_SPACE = frozenset(b" \t\r\n")


class _Reader:
    """
    One address-list header value, read left to right. Each reading method
    answers like its RFC 5322 rule: 1 (read, more input follows), 0 (read,
    input ended) or -1 (malformed); whitespace and comments after a token are
    skipped, and the text of the last comment is kept in C{comment}.
    """

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.comment = bytearray()
        self.text = bytearray()   # the word, phrase or address part being read
        self.addresses = []
        self._clearAddress()

    def _clearAddress(self):
        self.name = self.route = self.mailbox = self.domain = None
        self.invalid = False

    def _more(self):
        return 1 if self.pos < self.end else 0

    def _at(self, char):
        return self.pos < self.end and self.data[self.pos] == char

    # -- lexical -------------------------------------------------------------

    def skipSpace(self):
        """Skip whitespace and comments (CFWS)."""
        data = self.data
        while self.pos < self.end:
            c = data[self.pos]
            if c in _SPACE:
                self.pos += 1
            elif c == 0x28:
                if self._skipComment() < 0:
                    return -1
            else:
                break
        return self._more()

    def _enclosed(self, out, closer, keepEscapes=False, nests=False, refused=None):
        """
        The text up to the closing C{closer} (the reader stands on the
        opener), appended to C{out} piece by piece: a NUL becomes U+FFFD, a
        line break goes, a quoted pair loses its backslash unless
        C{keepEscapes} (a backslash before a line break or NUL stays).
        C{nests}: parentheses nest (comments). 1 if closed, -1 if the
        input ends first or C{refused} appears; what was appended before
        the last NUL, line break or quoted pair stays either way.
        """
        data = self.data
        depth = 1
        self.pos += 1
        start = self.pos
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0:
                out += data[start:self.pos] + _NUL_REPLACEMENT
                start = self.pos + 1
            elif c == closer:
                depth -= 1
                if depth == 0:
                    out += data[start:self.pos]
                    self.pos += 1
                    return 1
            elif c == 0x28 and nests:
                depth += 1
            elif c == refused:
                return -1
            elif c == 0x0a:
                out += _withoutCR(data[start:self.pos])
                start = self.pos + 1
            elif c == 0x5c:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if data[self.pos] in b"\r\n\x00":
                    self.pos -= 1
                elif not keepEscapes:
                    out += data[start:self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def _skipComment(self):
        """A comment: its text (nested parentheses kept) becomes C{comment}."""
        del self.comment[:]
        if self._enclosed(self.comment, 0x29, nests=True) < 0:
            return -1
        return self._more()

    def _atom(self, out):
        data = self.data
        if self.pos >= self.end or data[self.pos] not in _ATEXT:
            return -1
        start = self.pos
        while self.pos < self.end and data[self.pos] in _ATEXT:
            self.pos += 1
        out += data[start:self.pos]
        return self.skipSpace() if self.pos < self.end else 0

    def _dotAtom(self, out):
        """A dot-atom (domains): atoms joined by dots, CFWS allowed around them."""
        data = self.data
        if self.pos >= self.end or data[self.pos] not in _ATEXT:
            return -1
        start = self.pos
        while self.pos < self.end:
            if data[self.pos] in _ATEXT:
                self.pos += 1
                continue
            if start == self.pos:
                return -1
            out += data[start:self.pos]
            ret = self.skipSpace()
            if ret <= 0:
                return ret
            if data[self.pos] != 0x2e:
                return 1
            self.pos += 1
            out += b"."
            if self.skipSpace() <= 0:
                return -1
            start = self.pos
        out += data[start:self.pos]
        return 0

    def _looseDotAtom(self, out):
        """A local part that may have leading, trailing or doubled dots."""
        data = self.data
        ret = -1
        while True:
            while data[self.pos] == 0x2e:
                out += b"."
                self.pos += 1
                if self.pos == self.end:
                    return 0
                ret = 1
            if data[self.pos] == 0x40:
                return ret
            ret = self._atom(out)
            if ret <= 0 or data[self.pos] != 0x2e:
                return ret

    def _quoted(self, out):
        """A quoted string (at its quote), unescaped, folding removed."""
        if self._enclosed(out, 0x22) < 0:
            return -1
        return self.skipSpace()

    def _word(self, out):
        """An atom that may contain dots (obs-phrase), possibly empty."""
        data = self.data
        start = self.pos
        while self.pos < self.end and (data[self.pos] in _ATEXT or data[self.pos] == 0x2e):
            self.pos += 1
        out += data[start:self.pos]
        return self.skipSpace() if self.pos < self.end else 0

    def _phrase(self, out):
        """Words and quoted strings, joined by one space."""
        if self.pos >= self.end:
            return 0
        if self.data[self.pos] == 0x2e:
            return -1
        while True:
            ret = self._quoted(out) if self.data[self.pos] == 0x22 else self._word(out)
            if ret <= 0:
                return ret
            c = self.data[self.pos]
            if c not in _ATEXT and c not in b'".':
                break
            out += b" "
        return self.skipSpace()

    def _domainLiteral(self, out):
        """C{[...]} (at its bracket), copied with the brackets and escapes."""
        out += b"["
        if self._enclosed(out, 0x5d, keepEscapes=True, refused=0x5b) < 0:
            return -1
        out += b"]"
        return self.skipSpace()

    def _domain(self, out):
        """C{@} then a domain (dot-atom or literal)."""
        self.pos += 1
        if self.skipSpace() <= 0:
            return -1
        if self.data[self.pos] == 0x5b:
            return self._domainLiteral(out)
        return self._dotAtom(out)

    # -- address parts -------------------------------------------------------

    def _localPart(self):
        del self.text[:]
        if self.data[self.pos] == 0x22:
            ret = self._quoted(self.text)
        else:
            ret = self._looseDotAtom(self.text)
        if ret < 0:
            return -1
        self.mailbox = bytes(self.text)
        return ret

    def _domainPart(self):
        del self.text[:]
        ret = self._domain(self.text)
        if ret < 0:
            return -1
        self.domain = bytes(self.text)
        return ret

    def _route(self):
        """An obsolete source route C{@a,@b} (before the C{:})."""
        route = self.text
        del route[:]
        while True:
            if self.pos >= self.end:
                return 0
            if self.data[self.pos] != 0x40:
                break
            if route:
                route += b","
            route += b"@"
            ret = self._domain(route)
            if ret <= 0:
                return ret
            while self.skipSpace() > 0 and self.data[self.pos] == 0x2c:
                self.pos += 1
        self.route = bytes(route)
        return 1

    def _angleAddress(self):
        """C{<[route:]local@domain>} (at its C{<})."""
        self.pos += 1
        if self.skipSpace() <= 0:
            return -1
        if self.data[self.pos] == 0x40:
            if self._route() > 0 and self.data[self.pos] == 0x3a:
                self.pos += 1
            else:
                self.route = b"INVALID_ROUTE"
                if self.pos >= self.end:
                    return -1
            if self.skipSpace() <= 0:
                return -1
        if self.data[self.pos] != 0x3e:
            if self._localPart() <= 0:
                return -1
            if self.data[self.pos] == 0x40 and self._domainPart() <= 0:
                return -1
        if self.data[self.pos] != 0x3e:
            return -1
        self.pos += 1
        return self.skipSpace()

    def _nameAddress(self):
        """C{[phrase] <...>}; -1 (nothing consumed that counts) if it is not one."""
        del self.text[:]
        if self._phrase(self.text) <= 0 or self.data[self.pos] != 0x3c:
            return -1
        self.name = bytes(self.text) or None
        if self._angleAddress() < 0:
            self.domain = b"SYNTAX_ERROR"
        return self._more()

    def _addrSpec(self):
        """C{local@domain}, named by a comment inside it, or words as a name."""
        del self.comment[:]
        quotedLocal = self.data[self.pos] == 0x22
        ret = self._localPart()
        if ret <= 0:
            self.invalid = True
        domainRet = None
        if ret != 0 and self._at(0x40):
            domainRet = self._domainPart()
            if domainRet <= 0:
                ret = domainRet
        if self.comment:
            self.name = bytes(self.comment)
        elif domainRet is None:
            # No @domain: one word is a mailbox, more words are a name.
            self.text += b" "
            before = len(self.text)
            self._phrase(self.text)
            if len(self.text) != before:
                self.mailbox = None
                self.name = bytes(self.text)
            elif not quotedLocal:
                self.domain = b""
            self.invalid = True
            ret = -1
        return ret

    def _addFilled(self):
        if self.mailbox is None:
            self.mailbox = b"MISSING_MAILBOX"
        if not self.domain:
            self.domain = b"MISSING_DOMAIN"
        self._add()

    def _add(self):
        self.addresses.append((self.name, self.route, self.mailbox, self.domain))
        self._clearAddress()

    def _mailbox(self):
        start = self.pos
        ret = self._nameAddress()
        if ret < 0:
            self.pos = start
            ret = self._addrSpec()
            if (self.invalid and self.name is None and self.mailbox is not None
                    and self.domain is None):
                # A lone quoted string or a word cut short is a name.
                self.name, self.mailbox = self.mailbox, None
        self._addFilled()
        return ret

    def _group(self):
        """C{name: mailbox, ...;}; -1 if this is no group (nothing added)."""
        del self.text[:]
        if self._phrase(self.text) <= 0 or self.data[self.pos] != 0x3a:
            return -1
        self.pos += 1
        ret = self.skipSpace()
        self.mailbox = bytes(self.text)
        self._add()
        if ret > 0 and self.data[self.pos] != 0x3b:
            while True:
                self._mailbox()  # a broken one is kept; reading goes on
                if not self._at(0x2c):
                    break
                self.pos += 1
                if self.skipSpace() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if not self._at(0x3b):
                ret = -1
            else:
                self.pos += 1
                ret = self.skipSpace()
        self._add()
        return 0 if ret == 0 else 1

    def _address(self):
        start = self.pos
        ret = self._group()
        if ret < 0:
            self.pos = start
            ret = self._mailbox()
        return ret

    def addressList(self):
        if self.skipSpace() <= 0:
            return self.addresses
        while True:
            if self._address() == 0 or not self._at(0x2c):
                break
            self.pos += 1
            ret = self.skipSpace()
            if ret <= 0:
                if ret < 0:
                    self._addFilled()
                break
        return self.addresses


def _withoutCR(piece):
    return piece[:-1] if piece.endswith(b"\r") else piece


def parseAddresses(value):
    """
    An address-list header value (unfolded bytes) -> C{[(name, route,
    mailbox, domain)]} with group markers; C{[]} if it holds no address.
    """
    return _Reader(value).addressList()


# -- ENVELOPE ----------------------------------------------------------------

def humanString(data):
    """
    A display name as an IMAP string, the way Dovecot writes names: runs of
    spaces, tabs, CRs and LFs (a lone CR is a line end in a CR-only message)
    become one space, and leading and trailing space is dropped. A name that
    needed any of that, or holds a quote, backslash, NUL or 8-bit octet, is
    sent as a literal (NUL as 0x80).
    """
    out = bytearray()
    space = True   # at the start, or after a space: a further one is dropped
    for c in data:
        if c in b" \t\r\n":
            if not space:
                out.append(0x20)
            space = True
        else:
            out.append(0x80 if c == 0 else c)
            space = False
    if out.endswith(b" "):
        del out[-1]
    if bytes(out) == data and not any(c in b'"\\' or c >= 0x80 for c in data):
        return b'"' + data + b'"'
    if not out:
        return b'""'
    return b"{%d}\r\n" % (len(out),) + bytes(out)


def _part(data):
    """
    A route, mailbox or domain as an IMAP string: quoted, or a literal for
    line breaks, 8-bit octets or more than four quotes and backslashes
    (where a literal is shorter, as Dovecot writes them).
    """
    if data is None:
        return b"NIL"
    if data.count(b'"') + data.count(b"\\") > 4:
        return b"{%d}\r\n" % (len(data),) + data
    return string(data)


def formatAddresses(addresses):
    """An ENVELOPE address list: C{((name route mailbox domain)...)} or NIL."""
    if not addresses:
        return b"NIL"
    return b"(" + b"".join(
        formatList([b"NIL" if name is None else humanString(name),
                    _part(route), _part(mailbox), _part(domain)])
        for name, route, mailbox, domain in addresses) + b")"


# -- SEARCH ------------------------------------------------------------------

def _maybeQuoted(data, dotIsSpecial):
    """An atom as is; anything else quoted, with quotes, backslashes and apostrophes escaped."""
    if all(c in _ATEXT or (c == 0x2e and not dotIsSpecial) for c in data):
        return data
    out = bytearray(b'"')
    for c in data:
        if c in b"\"\\'":
            out.append(0x5c)
        out.append(c)
    return bytes(out + b'"')


def _phraseText(data):
    # Encoded words may not be quoted; they are written as they are.
    return data if b"=?" in data else _maybeQuoted(data, True)


def writeAddresses(addresses):
    """
    Parsed addresses back as header text without comments: C{Name <a@b>},
    C{<a@b>}, C{group: ...;}. SEARCH FROM/TO/CC/BCC match against this, as
    Dovecot does, so C{<user (comment)@ domain>} matches C{user@domain} and
    a comment's display name is found too.
    """
    out = bytearray()
    first, inGroup = True, False
    for name, route, mailbox, domain in addresses:
        if not first:
            out += b", "
        first = False
        if domain is None:
            if not inGroup:
                out += _phraseText(mailbox) if mailbox else b'""'
                out += b": "
                first = True
            else:
                if out.endswith(b", "):
                    del out[-2:]
                elif out.endswith(b": "):
                    del out[-1:]
                out += b";"
            inGroup = not inGroup
            continue
        if name is not None:
            out += _phraseText(name)
        if route is not None or mailbox or domain:
            if name:
                out += b" "
            out += b"<"
            if route is not None:
                out += route + b":"
            out += _maybeQuoted(mailbox, False) if mailbox else b'""'
            if domain:
                out += b"@" + domain
            out += b">"
    return bytes(out)
