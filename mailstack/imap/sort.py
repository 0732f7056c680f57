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

import dataclasses
import email.utils
import re
import unicodedata

from mailstack.imap import fetch
from mailstack.imap.address import parseAddresses
from mailstack.imap.search import decodeHeader, matches
from mailstack.storage.interfaces import NoSuchMessage

# A message ID as RFC 5256 threading reads it: <local@domain>, whitespace inside dropped.
_MESSAGE_ID = re.compile(rb"<([^<>@]+@[^<>]+)>")
_SPACE = re.compile(r"[ \t\r\n]+")


def casemap(text):
    """
    A sort key's comparable octets: each character title-cased (ASCII
    letters upper-cased: i;ascii-casemap) and decomposed, in UTF-8.
    """
    if text.isascii():
        return text.upper().encode("ascii")
    out = []
    for c in text:
        title = c.title()
        out.append(title if len(title) == 1 else c.upper() if len(c.upper()) == 1 else c)
    return unicodedata.normalize("NFKD", "".join(out)).encode("utf-8", "surrogatepass")


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
    text = _SPACE.sub(" ", decodeHeader(value))
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


def sentDate(value):
    """A Date: value (bytes) as UTC seconds, or None when missing or unreadable."""
    if not value:
        return None
    parsed = email.utils.parsedate_tz(value.decode("ascii", "replace"))
    if parsed is None:
        return None
    try:
        seconds = email.utils.mktime_tz(parsed)
    except (OverflowError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _firstAddress(value):
    addresses = parseAddresses(value) if value else []
    return addresses[0] if addresses else None


def _mailboxKey(value):
    """FROM/TO/CC (RFC 5256): the first address's local part."""
    first = _firstAddress(value)
    if first is None or not first[2]:
        return b""
    return casemap(decodeHeader(first[2]))


def _displayKey(value):
    """DISPLAYFROM/DISPLAYTO (RFC 5957): the first address's display name, else its addr-spec."""
    first = _firstAddress(value)
    if first is None:
        return b""
    name, _, mailbox, domain = first
    if name:
        return casemap(_SPACE.sub(" ", decodeHeader(name)))
    if mailbox:
        # A group's start has its name in the mailbox and no domain.
        return casemap(decodeHeader(mailbox + (b"@" + domain if domain is not None else b"")))
    return b""


def messageIDs(value):
    """The message IDs in a References:/In-Reply-To: value, in order."""
    if not value:
        return []
    return [re.sub(rb"\s+", b"", found) for found in _MESSAGE_ID.findall(value)]


@dataclasses.dataclass
class Fields:
    """
    What SORT and THREAD read of one message's header, read once per message
    and kept in the session's cache (by UID, for the selected mailbox).
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
            cc=_mailboxKey(part.header(b"cc")), from_=_mailboxKey(part.header(b"from")),
            to=_mailboxKey(part.header(b"to")),
            displayFrom=_displayKey(part.header(b"from")),
            displayTo=_displayKey(part.header(b"to")),
            messageID=ids[0] if ids else None,
            references=messageIDs(part.header(b"references")),
            inReplyTo=inReplyTo[0] if inReplyTo else None)


class _Message:
    """
    A message as L{mailstack.imap.search.matches} reads it (its view, its
    metadata, its header and structure, each read from the file on first use).
    """

    def __init__(self, view, info, cache):
        self.view = view
        self.info = info
        self.cache = cache
        self._header = None
        self._structure = None

    def _open(self):
        return self.view.store.openMessage(self.info.uid)

    def header(self):
        if self._header is None:
            cached = self.cache.get(self.info.uid) if self.cache is not None else None
            if cached is not None:
                self._header = cached
            else:
                with self._open() as f:
                    self._header = fetch.parseHeaderOnly(f, self.info.size)
        return self._header

    def structure(self):
        if self._structure is None:
            cached = self.cache.get(self.info.uid) if self.cache is not None else None
            if cached is not None and cached.complete:
                self._structure = cached
            else:
                with self._open() as f:
                    self._structure = fetch.parseStructure(f)
        return self._structure


class Candidate:
    """One message matching the criteria: its UID, sequence number, metadata and L{Fields}."""

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


def candidateSteps(view, program, fieldCache, found, structureCache=None):
    """
    Test the messages of C{view} against a compiled search program (see
    L{mailstack.imap.search.compileKey}) and read the L{Fields} of those that
    match, one message per step (a generator for
    L{mailstack.imap.cooperative.run}), appending L{Candidate}s to C{found}
    in sequence order.

    @param fieldCache: a dict (UID -> L{Fields}) kept for the view: each
        message's header is parsed once.
    """
    infos = view.messageInfos()
    star = view.uids[-1] if view.uids else 0
    for seq, uid in enumerate(list(view.uids), 1):
        info = infos.get(uid)
        if info is None:
            continue
        message = _Message(view, info, structureCache)
        try:
            if not matches(program, message, star):
                yield
                continue
            fields = fieldCache.get(uid)
            if fields is None:
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
