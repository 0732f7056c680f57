"""
SORT (RFC 5256) and SORT=DISPLAY (RFC 5957) over a
L{mailstack.imap.mailbox.MailboxView}, and the header values SORT and THREAD
read of each message (L{Fields}), pure of the session.

Keys compare the way Dovecot 2.3 compares them: subjects by their base
subject (L{baseSubject}: RFC 5256's Re:/Fwd:/[blob]/(fwd) stripping), text
keys as case-mapped UTF-8 octets (ASCII letters upper-cased, the
i;ascii-casemap order, extended to other letters by their title case and
decomposition), dates as UTC seconds with the internal date standing in for
a missing or unreadable Date:, and ties in sequence order whatever REVERSE
says.
"""

import base64
import binascii
import dataclasses
import quopri
import re

from mailstack.imap import casemap as casemap_
from mailstack.imap import datefield
from mailstack.imap.address import parseAddresses
from mailstack.imap.search import MessageReader, decodeHeader, matchSteps
from mailstack.storage.interfaces import NoSuchMessage

# A message ID as RFC 5256 threading reads it: <local@domain>, whitespace inside dropped.
_SPACE = re.compile(r"[ \t\r\n]+")


def casemap(text):
    """
    A sort key's comparable octets, in UTF-8: ASCII letters upper-cased
    (i;ascii-casemap), other characters title-cased and decomposed as Dovecot
    does (L{mailstack.imap.casemap}).
    """
    return casemap_.fold(text).encode("utf-8", "surrogatepass")


def _decode(value):
    """
    Header bytes as text: encoded words decoded; 8-bit octets that are not
    UTF-8 become U+FFFD (and so sort last), as in Dovecot.
    """
    text = value.decode("utf-8", "replace")
    if "=?" not in text:
        return text
    decoded = decodeHeader(text.encode("utf-8"))
    if "=?" in decoded:  # a word that does not decode: the others still do
        return _decodeWords(text)
    return decoded


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")


def _decodeWords(text):
    """
    RFC 2047 encoded words decoded one by one, as Dovecot's header decoder
    does: one that does not decode (unknown charset or encoding, broken
    base64) stays as written; white space between two decoded words goes.
    """
    out = []
    pos = 0
    lastDecoded = False
    for match in _ENCODED_WORD.finditer(text):
        between = text[pos:match.start()]
        decoded = _decodeWord(*match.groups())
        if not (decoded is not None and lastDecoded and not between.strip()):
            out.append(between)
        out.append(match.group(0) if decoded is None else decoded)
        lastDecoded = decoded is not None
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def _decodeWord(charset, encoding, data):
    """One encoded word's text, or None when it does not decode."""
    try:
        if encoding in "Bb":
            raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
        else:
            raw = quopri.decodestring(data.encode("ascii"), header=True)
        return raw.decode(charset.split("*")[0], "replace")
    except (ValueError, LookupError, binascii.Error):
        return None


def _stripTrailers(text):
    """RFC 5256 step 2: trailing spaces and "(FWD)"; whether a (FWD) went."""
    reply = False
    while True:
        if text.endswith(" "):
            text = text[:-1]
        elif text.endswith("(FWD)"):
            text = text[:-5]
            reply = True
        else:
            return text, reply


def _blobEnd(text, pos):
    """The end of a C{[blob]} and its trailing spaces at C{pos}, or -1."""
    if not text.startswith("[", pos):
        return -1
    end = pos + 1
    while end < len(text) and text[end] not in "[]":
        end += 1
    if end >= len(text) or text[end] != "]":
        return -1
    end += 1
    while text.startswith(" ", end):
        end += 1
    return end


def _leaderEnd(text):
    """RFC 5256 step 3: the end of a subj-leader at the start, or 0; and whether it was Re/Fwd."""
    pos = 0
    if text.startswith(" "):
        pos = 1
    start = pos
    while text.startswith("[", pos):
        end = _blobEnd(text, pos)
        if end < 0:
            return start, False
        pos = end
    for word in ("RE", "FWD", "FW"):
        if text.startswith(word, pos):
            pos += len(word)
            break
    else:
        return start, False
    while text.startswith(" ", pos):
        pos += 1
    if text.startswith("[", pos):
        pos = _blobEnd(text, pos)
        if pos < 0:
            return start, False
    if not text.startswith(":", pos):
        return start, False
    return pos + 1, True


def baseSubject(value):
    """
    RFC 5256's base subject of a raw Subject: value (bytes).

    @return: C{(key, isReply)}: the base subject case-mapped (L{casemap}), and
        whether a Re:/Fwd:/(fwd)/[fwd: ...] was taken off it.
    """
    text = _SPACE.sub(" ", _decode(value))
    text = casemap(text).decode("utf-8", "surrogatepass")
    reply = False
    while True:
        text, trailer = _stripTrailers(text)
        reply = reply or trailer
        while True:
            end, wasReply = _leaderEnd(text)
            reply = reply or wasReply
            found = end > 0
            text = text[end:]
            blob = _blobEnd(text, 0)
            if blob > 0 and blob < len(text):
                text = text[blob:]
                found = True
            if not found:
                break
        if text.startswith("[FWD:") and text.endswith("]"):
            text = text[5:-1]
            reply = True
            continue
        return text.encode("utf-8", "surrogatepass"), reply


_ATEXT = datefield.ATEXT
def sentDate(value):
    """
    A Date: value (bytes) as the seconds SORT compares, or None when
    missing or unreadable. As in Dovecot, a date before 1970 counts modulo
    2**32 (its index keeps 32-bit unsigned times), after every later one.
    """
    if not value:
        return None
    seconds = datefield.utcSeconds(value)
    if not seconds:
        return None
    return seconds % 2 ** 32


def _firstRaw(part, name):
    """
    The first field C{name} as it stands (L{mailstack.imap.fetch.Part.rawValues}),
    or None: addresses are read from the raw value, as ENVELOPE reads them, so
    a lone CR separates words instead of joining them (as in Dovecot).
    """
    values = part.rawValues(name)
    return values[0] if values else None


def _firstAddress(value):
    addresses = parseAddresses(value) if value else []
    return addresses[0] if addresses else None


def _mailboxKey(value):
    """FROM/TO/CC (RFC 5256): the first address's local part."""
    first = _firstAddress(value)
    if first is None or not first[2]:
        return b""
    # As written: an encoded word is no part of an addr-spec (RFC 2047 5), so
    # Dovecot compares "=?utf-8?q?x?=@example.com" as those characters.
    return casemap(first[2].decode("utf-8", "replace"))


def _displayKey(value):
    """DISPLAYFROM/DISPLAYTO (RFC 5957): the first address's display name, else its addr-spec."""
    first = _firstAddress(value)
    if first is None:
        return b""
    name, _, mailbox, domain = first
    if name:
        return casemap(_SPACE.sub(" ", _decode(name)))
    if mailbox:
        # A group's start has its name in the mailbox and no domain.
        addrSpec = mailbox + (b"@" + domain if domain is not None else b"")
        return casemap(addrSpec.decode("utf-8", "replace"))  # as written, like FROM
    return b""


def _skipComments(data, pos):
    """Past white space and (nested) comments from C{pos}."""
    tokens = datefield.Tokens(b"")
    tokens.data, tokens.pos = data, pos
    tokens.skipSpace()
    return tokens.pos


def _dotAtom(data, pos, out):
    """C{atext *("." atext)} with comments and spaces around its dots, into C{out}; -1 if none."""
    while True:
        start = pos
        while pos < len(data) and data[pos] in _ATEXT:
            pos += 1
        if pos == start:
            return -1
        out += data[start:pos]
        pos = _skipComments(data, pos)
        if not data.startswith(b".", pos):
            return pos
        out += b"."
        pos = _skipComments(data, pos + 1)


def _quotedString(data, pos, out):
    """A quoted string at C{pos}, its content into C{out} (unquoted); -1 if unterminated."""
    pos += 1
    while pos < len(data):
        c = data[pos]
        if c == 0x22:
            return _skipComments(data, pos + 1)
        if c == 0x5c and pos + 1 < len(data):
            out.append(data[pos + 1])
            pos += 2
            continue
        if c not in b"\r\n":
            out.append(c)
        pos += 1
    return -1


def _domainLiteral(data, pos, out):
    end = data.find(b"]", pos)
    if end < 0:
        return -1
    out += data[pos:end + 1]
    return _skipComments(data, end + 1)


def _tokenizedID(data, pos):
    """
    C{id-left "@" id-right ">"} read as RFC 5322 tokens from C{pos} (after
    its C{<}), comments dropped and quotes taken off: C{(id, end)} or None.
    """
    out = bytearray()
    pos = _skipComments(data, pos)
    if data.startswith(b'"', pos):
        pos = _quotedString(data, pos, out)
    else:
        pos = _dotAtom(data, pos, out)
    if pos < 0 or not data.startswith(b"@", pos):
        return None
    out += b"@"
    pos = _skipComments(data, pos + 1)
    if data.startswith(b"[", pos):
        pos = _domainLiteral(data, pos, out)
    else:
        pos = _dotAtom(data, pos, out)
    if pos < 0 or not data.startswith(b">", pos):
        return None
    return bytes(out), pos + 1


def messageIDs(value):
    """
    The message IDs in a Message-ID:/References:/In-Reply-To: value, in
    order, as Dovecot finds them: whatever stands between C{<} and C{>} with
    an C{@} in it (white space taken out), read as tokens when it holds a
    quote or a comment; anything else is skipped.
    """
    found = []
    if not value:
        return found
    pos = 0
    while True:
        start = value.find(b"<", pos)
        if start < 0:
            return found
        start += 1
        end = start
        while end < len(value) and value[end] not in b'>"(':
            end += 1
        if end >= len(value):
            return found
        if value[end] == 0x3e:
            pos = end + 1
            if b"@" in value[start:end]:
                found.append(re.sub(rb"[ \t\r\n]", b"", value[start:end]))
            continue
        tokenized = _tokenizedID(value, start)
        if tokenized is None:
            pos = start
            continue
        messageID, pos = tokenized
        found.append(re.sub(rb"[ \t\r\n]", b"", messageID))


@dataclasses.dataclass(slots=True)
class Fields:
    """
    What SORT and THREAD read of one message's header, read once per message
    and kept in the session's cache (by UID, for the selected mailbox; slots
    keep a large mailbox's cache small).
    """
    subject: bytes
    isReply: bool
    sent: int | None
    cc: bytes
    from_: bytes
    to: bytes
    displayFrom: bytes
    displayTo: bytes
    messageID: bytes | None
    references: list
    inReplyTo: bytes | None

    @classmethod
    def fromHeader(cls, part):
        """From a parsed header (L{mailstack.imap.fetch.Part})."""
        subject, isReply = baseSubject(part.header(b"subject") or b"")
        ids = messageIDs(part.header(b"message-id"))
        inReplyTo = messageIDs(part.header(b"in-reply-to"))
        return cls(
            subject=subject, isReply=isReply, sent=sentDate(part.header(b"date")),
            cc=_mailboxKey(_firstRaw(part, b"cc")), from_=_mailboxKey(_firstRaw(part, b"from")),
            to=_mailboxKey(_firstRaw(part, b"to")),
            displayFrom=_displayKey(_firstRaw(part, b"from")),
            displayTo=_displayKey(_firstRaw(part, b"to")),
            messageID=ids[0] if ids else None,
            references=messageIDs(part.header(b"references")),
            inReplyTo=inReplyTo[0] if inReplyTo else None)


class Candidate:
    """One message matching the criteria: its UID, sequence number, metadata and L{Fields}."""

    __slots__ = ("uid", "seq", "info", "fields")

    def __init__(self, uid, seq, info, fields):
        self.uid = uid
        self.seq = seq
        self.info = info
        self.fields = fields

    @property
    def date(self):
        """The sent date, or the internal date for a message without a readable one."""
        sent = self.fields.sent
        return sent if sent is not None else int(self.info.internalDate)


# Sort keys read from the store's metadata alone (no message file).
METADATA_KEYS = frozenset(("ARRIVAL", "SIZE"))


def candidateSteps(view, program, fieldCache, found, structureCache=None, withFields=True):
    """
    Test the messages of C{view} against a compiled search program (see
    L{mailstack.imap.search.compileKey}) and read the L{Fields} of those that
    match, one message per step (a generator for
    L{mailstack.imap.cooperative.run}), appending L{Candidate}s to C{found}
    in sequence order; a big text part takes several steps, as in SEARCH.

    @param fieldCache: a dict (UID -> L{Fields}) kept for the view: each
        message's header is parsed once.
    @param withFields: False when only L{METADATA_KEYS} are wanted: no
        header is read (the candidates' C{fields} are None).
    """
    infos = view.messageInfos()
    star = view.uids[-1] if view.uids else 0
    for seq, uid in enumerate(list(view.uids), 1):
        info = infos.get(uid)
        if info is None:
            continue
        message = MessageReader(view, info, structureCache)
        try:
            # A big text part is matched over several steps (imap/partsearch.py).
            if not (yield from matchSteps(program, message, star)):
                yield
                continue
            fields = fieldCache.get(uid) if withFields else None
            if fields is None and withFields:
                fields = fieldCache[uid] = Fields.fromHeader(message.header())
        except NoSuchMessage:
            yield
            continue
        found.append(Candidate(uid, seq, info, fields))
        yield


def _keyFunction(name):
    if name == "ARRIVAL":
        return lambda c: c.info.internalDate
    if name == "DATE":
        return lambda c: c.date
    if name == "SIZE":
        return lambda c: c.info.size
    if name == "SUBJECT":
        return lambda c: c.fields.subject
    attribute = {"CC": "cc", "FROM": "from_", "TO": "to", "DISPLAYFROM": "displayFrom",
                 "DISPLAYTO": "displayTo"}[name]
    return lambda c: getattr(c.fields, attribute)


def compareCandidates(a, b, criteria):
    """
    -1, 0 or 1: whether candidate C{a} comes before, with or after C{b} in
    the order L{sortCandidates} gives them (ties by sequence number).
    """
    for name, reverse in criteria:
        key = _keyFunction(name)
        x, y = key(a), key(b)
        if x != y:
            before = x < y
            return -1 if before != reverse else 1
    return (a.seq > b.seq) - (a.seq < b.seq)


def sortCandidates(candidates, criteria):
    """
    @param criteria: C{[(key name, reverse)]} from
        L{mailstack.imap.grammar.arguments.args_sort}.
    @return: the candidates in the order the criteria give, ties in sequence order.
    """
    ordered = sorted(candidates, key=lambda c: c.seq)
    for name, reverse in reversed(criteria):
        # Stable sorts from the last key to the first; reverse=True keeps
        # equal items in their order, so ties stay in sequence order.
        ordered.sort(key=_keyFunction(name), reverse=reverse)
    return ordered
