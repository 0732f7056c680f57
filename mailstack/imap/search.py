"""
SEARCH (RFC 3501 6.4.4) evaluation over a L{mailstack.imap.mailbox.MailboxView}.

Keys come from L{mailstack.imap.grammar.searchspec.searchKeys}. They are compiled once
(strings decoded with the command's CHARSET and case-folded, sequence sets
resolved), then each message is tested with the cheap keys first: flags,
sizes, dates and UIDs need only the store's metadata; header keys read the
message's header; BODY and TEXT read the text parts, decoding their
Content-Transfer-Encoding and charset (L{partsearch}: a big part a few ms
at a time, between which the reactor serves other sessions). Text matching is a substring test on
decoded text (RFC 2047 encoded words in headers included) under the
i;unicode-casemap comparator as Dovecot applies it (L{casemap}, I18NLEVEL=1);
FROM, TO, CC and BCC test the addresses as written back without comments.
"""

import codecs
import datetime
import email.header
import io
import re
import time

from mailstack.imap import casemap, datefield, fetch, partsearch, searchfilter
from mailstack.imap.address import parseAddresses, writeAddresses
from mailstack.storage.interfaces import NoSuchMessage

# BODY and TEXT read messages up to this size whole, once: the prefilter
# (L{searchfilter}) looks at the octets, and parsing reads them from memory.
WHOLE_LIMIT = 1024 * 1024


class BadCharset(Exception):
    """The SEARCH CHARSET is not one we can decode (NO [BADCHARSET])."""


def _decoder(charset):
    if charset is None:
        return "utf-8"
    try:
        return codecs.lookup(charset).name
    except LookupError:
        raise BadCharset(charset)


def _cost(key):
    kind = key[0]
    if kind in ("HEADER", "ADDRESS"):
        return 1
    if kind in ("BODY", "TEXT"):
        return 2
    if kind in ("NOT",):
        return _cost(key[1])
    if kind == "OR":
        return max(_cost(key[1]), _cost(key[2]))
    if kind == "AND":
        return max([_cost(k) for k in key[1]] or [0])
    if kind == "DATE" and key[1] == "sent":
        return 1
    return 0


def compileKey(key, charset, view):
    """Decode strings, fold case, resolve sequence sets; order ANDs by cost."""
    codec = _decoder(charset)

    def text(data):
        return casemap.fold(data.decode(codec, "replace"))

    def walk(key):
        kind = key[0]
        if kind in ("HEADER", "ADDRESS"):
            return (kind, key[1].decode("ascii", "replace").lower().encode("ascii"),
                    text(key[2]))
        if kind in ("BODY", "TEXT"):
            return (kind, text(key[1]))
        if kind == "SEQ":
            return ("SEQUIDS", frozenset(view.uids[i] for i in key[1].sequenceIndices(len(view))))
        if kind == "NOT":
            return ("NOT", walk(key[1]))
        if kind == "OR":
            return ("OR", walk(key[1]), walk(key[2]))
        if kind == "AND":
            return ("AND", sorted((walk(k) for k in key[1]), key=_cost))
        return key
    return walk(key)


class MessageReader:
    """
    What a search (or SORT and THREAD) needs of one message: its view, its
    metadata, and its header and structure, each read from the file on first
    use unless the session's parse cache (C{cache}: UID -> parsed message)
    has them.
    """

    def __init__(self, view, info, cache):
        self.view = view
        self.info = info
        self.cache = cache
        self._header = None
        self._structure = None
        self._raw = None

    def raw(self):
        """
        The whole message (CRLF line ends), read once and kept for the
        other reads, or L{None} if it is larger than L{WHOLE_LIMIT}.
        """
        if self._raw is None and self.info.size <= WHOLE_LIMIT:
            with self.view.store.openMessage(self.info.uid) as f:
                self._raw = f.read()
        return self._raw

    def open(self):
        """The message as a binary file: from memory once L{raw} has read it."""
        if self._raw is not None:
            return io.BytesIO(self._raw)
        return self.view.store.openMessage(self.info.uid)

    def header(self):
        if self._header is None:
            cached = self.cache.get(self.info.uid) if self.cache is not None else None
            if cached is not None:
                self._header = cached
            else:
                with self.open() as f:
                    self._header = fetch.parseHeaderOnly(f, self.info.size)
        return self._header

    def structure(self):
        if self._structure is None:
            cached = self.cache.get(self.info.uid) if self.cache is not None else None
            if cached is not None and cached.complete:
                self._structure = cached
            else:
                with self.open() as f:
                    self._structure = fetch.parseStructure(f)
        return self._structure


def decodeHeader(value):
    """
    Raw header bytes -> str with RFC 2047 encoded words decoded, never
    raising. Octets that are not UTF-8 become U+FFFD, as Dovecot reads them
    (so raw Latin-1 C{Caf\xe9} is not found by C{cafe}, but C{x\ufffdy} finds C{x\xe9y}).
    """
    text = value.decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        pieces = []
        for data, charset in email.header.decode_header(text):
            if isinstance(data, str):
                pieces.append(data)
                continue
            try:
                pieces.append(data.decode(charset or "ascii", "replace"))
            except LookupError:
                pieces.append(data.decode("latin-1"))
        return "".join(pieces)
    except Exception:
        return text


def _headerMatches(part, name, needle, rewrite=None):
    """
    Whether a field C{name} holds C{needle} (any field, if C{needle} is
    empty); C{rewrite} turns each field's value into the text matched.
    """
    values = [_FOLD.sub(b" ", value) for value in part.rawValues(name)]
    if not values:
        return False
    if not needle:
        return True
    if rewrite is not None:
        values = map(rewrite, values)
    return any(needle in casemap.fold(decodeHeader(value)) for value in values)


# A fold (line end and the white space after it) matches as one space, as in
# Dovecot: "Subject: a\r\n  b" holds "a b".
_FOLD = re.compile(rb"\r?\n[ \t]*")


def _addressText(value):
    """
    FROM/TO/CC/BCC: a field's addresses written back without comments
    (C{"Name" <a@b>}), as Dovecot matches them, so a comment inside an
    address does not hide it and a comment's display name is found.
    """
    return writeAddresses(parseAddresses(value))


def _allHeaderText(part):
    return casemap.fold("\n".join(decodeHeader(raw) for _, raw in part.fields))


def _transferEncoding(part):
    raw = part.header(b"content-transfer-encoding")
    return raw.strip().lower() if raw else b""


def _leaves(part):
    if part.multipart:
        for child in part.children:
            yield from _leaves(child)
    elif part.message is not None:
        yield ("header", part.message)
        yield from _leaves(part.message)
    else:
        yield ("body", part)


def _bodySteps(message, needle, embeddedHeaders):
    """
    Whether the decoded text parts hold C{needle}; C{embeddedHeaders}: or the
    header of an attached message, which is text (TEXT) but not body (BODY),
    as Dovecot searches. A generator (its return value is the answer): a
    part larger than one step is decoded and matched a step at a time
    (L{partsearch.partSteps}), one that fits at once.
    """
    root = message.structure()
    if not needle:
        return True
    with message.open() as f:
        for kind, part in _leaves(root):
            if kind == "header":
                if embeddedHeaders and needle in _allHeaderText(part):
                    return True
                continue
            main = part.mainType.lower()
            if main not in (b"text", b"message") and main != b"":
                continue
            encoding = _transferEncoding(part)
            if encoding not in partsearch.READABLE_ENCODINGS:
                continue
            if part.size > partsearch.DECODE_LIMIT:
                found = yield from partsearch.rawSteps(f, part, needle, partsearch.STEP)
            elif part.size > partsearch.STEP:
                found = yield from partsearch.partSteps(
                    f, part, encoding, searchfilter.partCharset(part), needle, partsearch.STEP)
            else:
                f.seek(part.headerEnd)
                found = partsearch.wholeMatches(
                    f.read(part.size), encoding, searchfilter.partCharset(part), needle)
            if found:
                return True
    return False


def _localDate(timestamp):
    return datetime.date(*time.localtime(timestamp)[:3])


# Dovecot's date for a message whose Date: is missing or unreadable: none (0).
_NO_SENT_DATE = datetime.date(1970, 1, 1)


def _sentDate(message):
    """
    The day the Date: field names (as written, its zone disregarded), read
    as SORT reads it (L{datefield}); 1-Jan-1970 when missing or unreadable,
    as Dovecot 2.3 answers SENTBEFORE/SENTON/SENTSINCE (RFC 3501 says
    nothing of such messages; SORT uses the internal date, RFC 5256).
    """
    value = message.header().header(b"date")
    day = datefield.writtenDay(value) if value else None
    return _NO_SENT_DATE if day is None else day


def _compareDate(op, actual, wanted):
    if op == "<":
        return actual < wanted
    if op == "=":
        return actual == wanted
    return actual >= wanted


def matches(key, message, star):
    """Whether C{message} matches the compiled key C{key}, found at once."""
    steps = matchSteps(key, message, star)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def matchSteps(key, message, star):
    """
    L{matches} as a generator whose return value is the answer: reading a
    big text part for BODY or TEXT yields between steps of a few ms.
    """
    kind = key[0]
    if kind == "AND":
        for k in key[1]:
            if not (yield from matchSteps(k, message, star)):
                return False
        return True
    if kind == "OR":
        return (yield from matchSteps(key[1], message, star)) or (
            yield from matchSteps(key[2], message, star))
    if kind == "NOT":
        return not (yield from matchSteps(key[1], message, star))
    if kind in ("BODY", "TEXT"):
        raw = message.raw()
        if raw is not None and searchfilter.excludes(raw, key[1]):
            return False  # nothing decoding could change, and the needle is not there
        if kind == "TEXT" and _headerMatchesAny(message, key[1]):
            return True
        return (yield from _bodySteps(message, key[1], kind == "TEXT"))
    return _leafMatches(key, message, star)


def _leafMatches(key, message, star):
    """A key that reads no message body: flags, sizes, dates, UIDs, header fields."""
    kind = key[0]
    info = message.info
    if kind == "ALL":
        return True
    if kind == "FLAG":
        return (key[1] in info.flags) == key[2]
    if kind == "KEYWORD":
        wanted = key[1].lower()
        return any(flag.lower() == wanted for flag in info.flags) == key[2]
    if kind == "RECENT":
        return (info.uid in message.view.recent) == key[1]
    if kind == "SIZE":
        return info.size > key[2] if key[1] == ">" else info.size < key[2]
    if kind == "UID":
        return key[1].containsUID(info.uid, star)
    if kind == "MODSEQ":
        return info.modseq >= key[1]
    if kind == "INTERNALTIME":  # OLDER/YOUNGER (RFC 5032), after bindKey
        return info.internalDate < key[2] if key[1] == "<" else info.internalDate >= key[2]
    if kind == "SEQUIDS":
        return info.uid in key[1]
    if kind == "SAVEDATESUPPORTED":  # RFC 8514: every store here keeps save dates
        return True
    if kind == "DATE":
        if key[1] == "internal":
            actual = _localDate(info.internalDate)
        elif key[1] == "saved":  # RFC 8514: SAVEDBEFORE, SAVEDON, SAVEDSINCE
            if getattr(info, "saveDate", None) is None:
                return False
            actual = _localDate(info.saveDate)
        else:
            actual = _sentDate(message)
        return _compareDate(key[2], actual, key[3])
    if kind == "HEADER":
        return _headerMatches(message.header(), key[1], key[2])
    if kind == "ADDRESS":
        return _headerMatches(message.header(), key[1], key[2], _addressText)
    raise ValueError("unknown search key %r" % (kind,))


def _headerMatchesAny(message, needle):
    return needle in _allHeaderText(message.header())


def searchSteps(view, program, cache=None, found=None):
    """
    Test the messages of C{view} one per step, and a big text part in
    several (a generator, for L{mailstack.imap.cooperative.run}), appending
    matching UIDs to C{found} in sequence order.

    @param program: from L{compileKey}.
    """
    infos = view.messageInfos()
    star = view.uids[-1] if view.uids else 0
    for uid in list(view.uids):
        info = infos.get(uid)
        if info is None:
            continue
        try:
            if (yield from matchSteps(program, MessageReader(view, info, cache), star)):
                found.append(uid)
        except NoSuchMessage:
            pass
        yield


def _anyKey(key, test):
    """Whether C{test} holds for the (parsed) key C{key} or one nested in it."""
    if test(key):
        return True
    kind = key[0]
    if kind == "NOT":
        return _anyKey(key[1], test)
    if kind == "OR":
        return _anyKey(key[1], test) or _anyKey(key[2], test)
    if kind == "AND":
        return any(_anyKey(k, test) for k in key[1])
    return False


def usesModseq(key):
    """Whether a (parsed) search key has a MODSEQ criterion (RFC 7162)."""
    return _anyKey(key, lambda k: k[0] == "MODSEQ")


def usesSaveDate(key):
    """Whether a (parsed) search key has an RFC 8514 criterion (SAVED*, SAVEDATESUPPORTED)."""
    return _anyKey(key, lambda k: k[0] == "SAVEDATESUPPORTED"
                   or (k[0] == "DATE" and k[1] == "saved"))


def keyKinds(key):
    """The kinds of the (parsed) keys in C{key}, nested ones included."""
    kind = key[0]
    if kind == "NOT":
        return {kind} | keyKinds(key[1])
    if kind == "OR":
        return {kind} | keyKinds(key[1]) | keyKinds(key[2])
    if kind == "AND":
        return {kind}.union(*(keyKinds(k) for k in key[1]))
    if kind in ("SEQ", "UID") and key[1].saved:
        return {kind, "$"}
    return {kind}


def bindKey(key, now, saved):
    """
    A parsed key with what depends on the session bound: RFC 5182's C{$}
    becomes the saved UIDs (a C{UID} key, whether it stood for sequence
    numbers or UIDs), and RFC 5032's OLDER and YOUNGER internal-date bounds
    relative to C{now}: OLDER n is an internal date more than n seconds
    before now, YOUNGER n one at most n seconds before.

    @param now: the time of the command (POSIX seconds).
    @param saved: the saved search result, ascending UIDs.
    """
    kind = key[0]
    if kind == "NOT":
        return ("NOT", bindKey(key[1], now, saved))
    if kind == "OR":
        return ("OR", bindKey(key[1], now, saved), bindKey(key[2], now, saved))
    if kind == "AND":
        return ("AND", [bindKey(k, now, saved) for k in key[1]])
    if kind in ("SEQ", "UID") and key[1].saved:
        return ("UID", key[1].resolved(saved))
    if kind == "WITHIN":
        return ("INTERNALTIME", "<" if key[1] == "OLDER" else ">=", now - key[2])
    return key


def needsContent(program):
    """Whether a compiled key reads message files (headers or bodies)."""
    return _cost(program) > 0


def search(view, key, charset=None, cache=None):
    """
    @return: the UIDs in C{view} (in sequence order) whose messages match.
    @raise BadCharset: for a CHARSET Python cannot decode.
    """
    found = []
    for _ in searchSteps(view, compileKey(key, charset, view), cache, found):
        pass
    return found
