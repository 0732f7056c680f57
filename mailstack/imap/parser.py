"""
The IMAP4rev1 command grammar above the token reader, pure: no I/O, no
Twisted. Sequence sets, FETCH items, SEARCH keys and the C{args_*} functions
that parse each command's arguments into plain values, over a
L{mailstack.imap.grammar.reader.Reader}; L{ParseError} is answered with BAD.

Responses are formatted by L{mailstack.imap.response}.
"""

from __future__ import annotations

from typing import IO, Sequence

from mailstack.imap.grammar.fetchspec import FETCH_NAME_CHARS, FetchAttribute, fetchAttributes
from mailstack.imap.grammar.reader import ATOM_CHARS, ParseError, Reader
from mailstack.imap.grammar.searchspec import SearchKey, searchKeys
from mailstack.imap.grammar.sequence import SequenceSet

def args_search(reader: Reader) -> tuple[str | None, SearchKey]:
    """
    C{[CHARSET astring SP] search-key *(SP search-key)}.

    @return: C{(charset or None, key)}, the key as
        L{mailstack.imap.grammar.searchspec.searchKeys} reads it.
    """
    charset = None
    start = reader.mark()
    if reader.take(ATOM_CHARS).upper() == b"CHARSET":
        reader.sp()
        charset = reader.astring().decode("ascii", "replace")
        reader.sp()
    else:
        reader.rewind(start)
    return charset, searchKeys(reader)


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

