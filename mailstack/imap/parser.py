"""
The IMAP4rev1 command grammar above the token reader, pure: no I/O, no
Twisted. Sequence sets, FETCH items, SEARCH keys and the C{args_*} functions
that parse each command's arguments into plain values, over a
L{mailstack.imap.grammar.reader.Reader}; L{ParseError} is answered with BAD.

Responses are formatted by L{mailstack.imap.response}.
"""

from __future__ import annotations

from typing import IO, Any, Sequence

from mailstack.imap.grammar.fetchspec import FETCH_NAME_CHARS, FetchAttribute, fetchAttributes
from mailstack.imap.grammar.reader import ATOM_CHARS, ParseError, Reader, modseqValue
from mailstack.imap.grammar.sequence import SequenceSet

# A parsed search key: a tuple whose first item names its kind (args_search).
SearchKey = tuple[Any, ...]


# -- SEARCH keys -------------------------------------------------------------

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = ("BCC", "CC", "FROM", "SUBJECT", "TO")
_ADDRESS_KEYS = ("BCC", "CC", "FROM", "TO")  # matched on parsed addresses, not raw text
_DATE_KEYS = {"BEFORE": ("internal", "<"), "ON": ("internal", "="),
              "SINCE": ("internal", ">="), "SENTBEFORE": ("sent", "<"),
              "SENTON": ("sent", "="), "SENTSINCE": ("sent", ">=")}


_KEYS_WITH_ARGUMENTS = frozenset(
    ("KEYWORD", "UNKEYWORD", "BODY", "TEXT", "HEADER", "LARGER", "SMALLER", "UID", "MODSEQ",
     "NOT", "OR") + _HEADER_KEYS + tuple(_DATE_KEYS))


def args_search(reader: Reader, maxDepth: int = 100) -> tuple[str | None, SearchKey]:
    """
    C{[CHARSET astring SP] search-key *(SP search-key)}.

    @return: C{(charset or None, key)}; keys are tuples:
        C{("ALL",)}, C{("FLAG", name, wanted)}, C{("KEYWORD", name, wanted)},
        C{("RECENT", wanted)}, C{("HEADER", name, bytes)}, C{("ADDRESS", name,
        bytes)} (FROM, TO, CC, BCC), C{("BODY", bytes)},
        C{("TEXT", bytes)}, C{("DATE", "internal"|"sent", op, date)},
        C{("SIZE", ">"|"<", n)}, C{("SEQ", SequenceSet)}, C{("UID", SequenceSet)},
        C{("NOT", key)}, C{("OR", key, key)}, C{("AND", [keys])}.
    """
    charset = None
    start = reader.mark()
    if reader.take(ATOM_CHARS).upper() == b"CHARSET":
        reader.sp()
        charset = reader.astring().decode("ascii", "replace")
        reader.sp()
    else:
        reader.rewind(start)
    keys = [_searchKey(reader, maxDepth)]
    while not reader.atEnd():
        reader.sp()
        keys.append(_searchKey(reader, maxDepth))
    return charset, keys[0] if len(keys) == 1 else ("AND", keys)


def _searchKey(reader: Reader, depth: int) -> SearchKey:
    if depth <= 0:
        raise ParseError("Search program nested too deeply")
    first = reader.peek()
    if first == b"(":
        keys = reader.parenthesized(lambda: _searchKey(reader, depth - 1))
        if not keys:
            raise ParseError("Empty search key list")
        return keys[0] if len(keys) == 1 else ("AND", keys)
    if first == b"*" or first in (b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"):
        return ("SEQ", SequenceSet.parse(reader))
    name = reader.keyword()
    if name == "ALL":
        return ("ALL",)
    if name in _FLAG_KEYS:
        return ("FLAG",) + _FLAG_KEYS[name]
    if name == "NEW":
        return ("AND", [("RECENT", True), ("FLAG", "\\Seen", False)])
    if name == "OLD":
        return ("RECENT", False)
    if name == "RECENT":
        return ("RECENT", True)
    if name not in _KEYS_WITH_ARGUMENTS:
        raise ParseError("Unknown search key %s" % (name,))
    reader.sp()
    if name in ("KEYWORD", "UNKEYWORD"):
        return ("KEYWORD", reader.flagKeyword(), name == "KEYWORD")
    if name in _ADDRESS_KEYS:
        return ("ADDRESS", name.encode("ascii"), reader.astring())
    if name in _HEADER_KEYS:
        return ("HEADER", name.encode("ascii"), reader.astring())
    if name in ("BODY", "TEXT"):
        return (name, reader.astring())
    if name == "HEADER":
        field = reader.astring()
        reader.sp()
        return ("HEADER", field, reader.astring())
    if name in _DATE_KEYS:
        kind, op = _DATE_KEYS[name]
        return ("DATE", kind, op, reader.date())
    if name in ("LARGER", "SMALLER"):
        return ("SIZE", ">" if name == "LARGER" else "<", reader.number())
    if name == "UID":
        return ("UID", SequenceSet.parse(reader))
    if name == "MODSEQ":  # RFC 7162: [entry-name SP entry-type SP] mod-sequence-valzer
        if reader.peek() == b'"':
            reader.quoted()
            reader.sp()
            reader.atom()
            reader.sp()
        return ("MODSEQ", modseqValue(reader, allowZero=True))
    if name == "NOT":
        return ("NOT", _searchKey(reader, depth - 1))
    if name == "OR":
        left = _searchKey(reader, depth - 1)
        reader.sp()
        return ("OR", left, _searchKey(reader, depth - 1))
    raise ParseError("Unknown search key %s" % (name,))


# -- command arguments -------------------------------------------------------
# Each takes a Reader positioned after the command name (and its space, if
# any arguments are expected) and returns the arguments; the server calls
# reader.end() afterwards.

def args_none(reader: Reader) -> tuple[()]:
    return ()


def args_mailbox(reader: Reader) -> tuple[bytes]:
    return (reader.mailbox(),)


def args_twoMailboxes(reader: Reader) -> tuple[bytes, bytes]:
    first = reader.mailbox()
    reader.sp()
    return (first, reader.mailbox())


def args_login(reader: Reader) -> tuple[bytes, bytes]:
    user = reader.astring()
    reader.sp()
    return (user, reader.astring())


def args_authenticate(reader: Reader) -> tuple[str, bytes | None]:
    """
    C{mechanism [SP initial-response]}: the initial response (RFC 4959) as
    sent, to be decoded by L{mailstack.protocol.sasl} like every other
    response line (so C{=}, C{*} and bad base64 mean the same as in SMTP and
    POP3); a lone trailing space is none at all, as Dovecot reads it (mutt
    sends C{AUTHENTICATE CRAM-MD5 } when it has nothing to send first).
    """
    mechanism = reader.atom().decode("ascii", "replace").upper()
    initial = None
    if reader.peek() == b" ":
        reader.sp()
        if not reader.atEnd():
            initial = reader.take(_INITIAL_RESPONSE_CHARS)
            if not initial:
                raise ParseError("Invalid initial response")
    return (mechanism, initial)


# Everything up to the end of the line but white space and controls: the
# initial response is judged by the SASL decoder, not the grammar.
_INITIAL_RESPONSE_CHARS = frozenset(range(0x21, 0x7f))


def args_list(reader: Reader) -> tuple[bytes, bytes]:
    reference = reader.mailbox()
    reader.sp()
    return (reference, reader.listMailbox())


STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")


def statusItems(reader: Reader, allowed: Sequence[str] = STATUS_ITEMS) -> list[str]:
    """C{"(" status-att *(SP status-att) ")"} -> the names, in the order asked."""
    def item() -> str:
        name = reader.keyword()
        if name not in allowed:
            raise ParseError("Unknown STATUS item %s" % (name,))
        return name
    items = reader.parenthesized(item)
    if not items:
        raise ParseError("Empty STATUS item list")
    return items


def args_status(reader: Reader) -> tuple[bytes, list[str]]:
    mailbox = reader.mailbox()
    reader.sp()
    return (mailbox, statusItems(reader))


def args_append(
        reader: Reader) -> tuple[bytes, tuple[str, ...], int | None, bytes | IO[bytes]]:
    """C{mailbox [SP flag-list] [SP date-time] SP literal}; the message may be a file."""
    mailbox = reader.mailbox()
    reader.sp()
    flags: tuple[str, ...] = ()
    date = None
    if reader.peek() == b"(":
        flags = tuple(reader.flagList())
        reader.sp()
    if reader.peek() == b'"':
        date = reader.dateTime()
        reader.sp()
    if reader.peek() != b"{":
        raise ParseError("APPEND needs the message as a literal")
    message = reader.literal(allowFile=True)
    return (mailbox, flags, date, message)


def args_fetch(reader: Reader) -> tuple[SequenceSet, list[FetchAttribute]]:
    messages = SequenceSet.parse(reader)
    reader.sp()
    return (messages, fetchAttributes(reader))


def args_store(reader: Reader, messages: SequenceSet | None = None
               ) -> tuple[SequenceSet, str, bool, list[str]]:
    """
    C{sequence-set SP ["+"/"-"]FLAGS[.SILENT] SP (flag-list / flag *(SP flag))}
    (from the flags action on if C{messages} was parsed already).
    """
    if messages is None:
        messages = SequenceSet.parse(reader)
        reader.sp()
    mode = "+" if reader.trySkip(b"+") else "-" if reader.trySkip(b"-") else ""
    name = reader.take(FETCH_NAME_CHARS).decode("ascii").upper()
    if name not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError("STORE supports FLAGS, +FLAGS and -FLAGS")
    reader.sp()
    if reader.peek() == b"(":
        flags = reader.flagList()
    else:
        flags = [reader.flag()]
        while reader.peek() == b" ":
            reader.sp()
            flags.append(reader.flag())
    if "\\*" in flags:
        raise ParseError("\\* is not a flag")
    return (messages, mode, name.endswith(".SILENT"), flags)


def args_copy(reader: Reader) -> tuple[SequenceSet, bytes]:
    messages = SequenceSet.parse(reader)
    reader.sp()
    return (messages, reader.mailbox())


def args_sequenceSet(reader: Reader) -> tuple[SequenceSet]:
    return (SequenceSet.parse(reader),)


def args_id(reader: Reader) -> tuple[dict[bytes, bytes | None] | None]:
    """C{"(" string SP nstring *(SP string SP nstring) ")" / NIL} -> dict or None."""
    if reader.trySkip(b"NIL"):
        return (None,)
    values = reader.parenthesized(reader.nstring)
    if len(values) % 2 or len(values) > 60:
        raise ParseError("ID needs up to 30 field/value pairs")
    fields: dict[bytes, bytes | None] = {}
    for key, value in zip(values[::2], values[1::2]):
        if key is None:
            raise ParseError("ID field names cannot be NIL")
        fields[key] = value
    return (fields,)


def args_enable(reader: Reader) -> tuple[list[str]]:
    names = [reader.atom().decode("ascii", "replace").upper()]
    while reader.peek() == b" ":
        reader.sp()
        names.append(reader.atom().decode("ascii", "replace").upper())
    return (names,)

