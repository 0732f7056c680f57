"""
Each IMAP command's arguments, pure: no I/O, no Twisted.

One C{args_*} function per argument layout, named in the server's command
table. Each takes a L{Reader} positioned after the command name (and its
space, if arguments are expected), returns the arguments as a tuple of plain
values and raises L{ParseError} (answered with BAD) on a syntax error; the
server calls C{reader.end()} afterwards. The extended forms are the only
forms: LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819) and SPECIAL-USE
(RFC 6154) options, CREATE with USE (RFC 6154), and the CONDSTORE/QRESYNC
(RFC 7162) additions (SELECT/EXAMINE parameters, FETCH and STORE modifiers,
STATUS HIGHESTMODSEQ).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mailstack.imap.grammar import searchspec
from mailstack.imap.grammar.appendspec import AppendMessage, appendArguments
from mailstack.imap.grammar.fetchspec import FETCH_NAME_CHARS, FetchAttribute, fetchAttributes
from mailstack.imap.grammar.reader import ParseError, Reader, modseqValue
from mailstack.imap.grammar.searchspec import SearchKey, searchCommand
from mailstack.imap.grammar.sequence import SequenceSet

# SIZE: STATUS=SIZE (RFC 8438).
STATUS_ITEMS = (
    "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE",
    "MAILBOXID",  # MAILBOXID: OBJECTID (RFC 8474)
    "DELETED")  # IMAP4rev2 (RFC 9051 6.3.11); imap/revision.py says when
LIST_SELECTION = ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE")
LIST_RETURN = ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS")

# Everything up to the end of the line but white space and controls: the
# initial response is judged by the SASL decoder, not the grammar.
_INITIAL_RESPONSE_CHARS = frozenset(range(0x21, 0x7f))


# -- any state and not authenticated -----------------------------------------

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


# -- authenticated state -----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class QResync:
    """SELECT's C{QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])}."""
    uidValidity: int
    modseq: int
    knownUIDs: SequenceSet | None = None
    # (known sequence numbers, their UIDs)
    sequenceMatch: tuple[SequenceSet, SequenceSet] | None = None


def args_select(reader: Reader) -> tuple[bytes, dict[str, Any]]:
    """C{mailbox [SP "(" select-param *(SP select-param) ")"]} -> (mailbox, params dict)."""
    mailbox = reader.mailbox()
    params: dict[str, Any] = {}
    if reader.peek() == b" ":
        reader.sp()

        def param() -> str:
            name = reader.keyword()
            if name == "CONDSTORE":
                params[name] = True
            elif name == "QRESYNC":
                reader.sp()
                params[name] = _qresync(reader)
            else:
                raise ParseError("Unknown SELECT parameter %s" % (name,))
            return name
        reader.parenthesized(param)
    return (mailbox, params)


def _qresync(reader: Reader) -> QResync:
    reader.skip(b"(")
    validity = reader.nzNumber()
    reader.sp()
    modseq = modseqValue(reader, allowZero=True)
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if reader.trySkip(b" "):
        if reader.peek() != b"(":
            known = SequenceSet.parse(reader, allowSaved=False)
            reader.trySkip(b" ")
        if reader.peek() == b"(":
            reader.skip(b"(")
            sequences = SequenceSet.parse(reader, allowSaved=False)
            reader.sp()
            uids = SequenceSet.parse(reader, allowSaved=False)
            reader.skip(b")")
            match = (sequences, uids)
    reader.skip(b")")
    return QResync(validity, modseq, known, match)


def args_create(reader: Reader) -> tuple[bytes, tuple[str, ...] | None]:
    """C{mailbox [SP "(" USE SP "(" use-attr *(SP use-attr) ")" ")"]} -> (mailbox, uses or None)."""
    mailbox = reader.mailbox()
    uses: tuple[str, ...] | None = None
    if reader.peek() == b" ":
        reader.sp()

        def param() -> str:
            nonlocal uses
            name = reader.keyword()
            if name != "USE":
                raise ParseError("Unknown CREATE parameter %s" % (name,))
            reader.sp()
            uses = tuple(reader.parenthesized(reader.flag))
            return name
        reader.parenthesized(param)
    return (mailbox, uses)


def args_mailbox(reader: Reader) -> tuple[bytes]:
    return (reader.mailbox(),)


def args_twoMailboxes(reader: Reader) -> tuple[bytes, bytes]:
    first = reader.mailbox()
    reader.sp()
    return (first, reader.mailbox())


@dataclasses.dataclass(frozen=True)
class ListCommand:
    """
    A LIST command, basic or extended.

    @ivar patterns: the mailbox patterns (bytes), one for basic LIST.
    @ivar selection: selection options (upper-case str).
    @ivar returns: return options (upper-case str; C{STATUS} if items were asked).
    @ivar statusItems: the LIST-STATUS items, in the order asked.
    @ivar extended: whether the extended syntax was used (options or a
        pattern list), which changes some answers (RFC 5258).
    """
    reference: bytes
    patterns: tuple[bytes, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    statusItems: tuple[str, ...] = ()
    extended: bool = False


def args_list(reader: Reader) -> tuple[ListCommand]:
    """
    C{[ "(" selection-options ")" SP ] reference SP (pattern / "(" patterns ")")
    [ SP RETURN SP "(" return-options ")" ]}.
    """
    extended = False
    selection: set[str] = set()
    if reader.peek() == b"(":
        extended = True
        for name in reader.parenthesized(reader.keyword):
            if name not in LIST_SELECTION:
                raise ParseError("Unknown LIST selection option %s" % (name,))
            selection.add(name)
        reader.sp()
        if selection == {"RECURSIVEMATCH"} or selection == {"RECURSIVEMATCH", "REMOTE"}:
            raise ParseError("RECURSIVEMATCH needs another selection option")
    reference = reader.mailbox()
    reader.sp()
    if reader.peek() == b"(":
        extended = True
        patterns = reader.parenthesized(reader.listMailbox)
        if not patterns:
            raise ParseError("Empty pattern list")
    else:
        patterns = [reader.listMailbox()]
    returns: set[str] = set()
    statusItems: tuple[str, ...] = ()
    if reader.peek() == b" ":
        reader.sp()
        reader.skip(b"RETURN")
        reader.sp()
        extended = True

        def option() -> str:
            nonlocal statusItems
            name = reader.keyword()
            if name not in LIST_RETURN:
                raise ParseError("Unknown LIST return option %s" % (name,))
            if name == "STATUS":
                reader.sp()
                statusItems = tuple(_statusItems(reader))
            return name
        returns.update(reader.parenthesized(option))
    # Selection options imply return options (RFC 5258 3, RFC 6154 5.2).
    returns.update(selection & {"SUBSCRIBED", "SPECIAL-USE"})
    return (ListCommand(reference, tuple(patterns), frozenset(selection), frozenset(returns),
                        statusItems, extended),)


def args_lsub(reader: Reader) -> tuple[bytes, bytes]:
    """C{mailbox SP list-mailbox}: LSUB has no extended form."""
    reference = reader.mailbox()
    reader.sp()
    return (reference, reader.listMailbox())


def args_status(reader: Reader) -> tuple[bytes, list[str]]:
    """C{mailbox SP "(" status-att *(SP status-att) ")"}, HIGHESTMODSEQ included."""
    mailbox = reader.mailbox()
    reader.sp()
    return (mailbox, _statusItems(reader))


def _statusItems(reader: Reader) -> list[str]:
    """C{"(" status-att *(SP status-att) ")"} -> the names, in the order asked."""
    def item() -> str:
        name = reader.keyword()
        if name not in STATUS_ITEMS:
            raise ParseError("Unknown STATUS item %s" % (name,))
        return name
    items = reader.parenthesized(item)
    if not items:
        raise ParseError("Empty STATUS item list")
    return items


def args_append(reader: Reader) -> tuple[bytes, list[AppendMessage]]:
    """
    C{mailbox 1*([SP flag-list] [SP date-time] SP (literal / CATENATE (...)))}:
    MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469), in L{appendspec}.
    """
    return appendArguments(reader)


def args_enable(reader: Reader) -> tuple[list[str]]:
    names = [reader.atom().decode("ascii", "replace").upper()]
    while reader.peek() == b" ":
        reader.sp()
        names.append(reader.atom().decode("ascii", "replace").upper())
    return (names,)


def args_compress(reader: Reader) -> tuple[str]:
    """C{COMPRESS mechanism} (RFC 4978): the mechanism's name, upper-case."""
    return (reader.atom().decode("ascii", "replace").upper(),)


# -- selected state ----------------------------------------------------------

def args_search(reader: Reader) -> tuple[frozenset[str] | None, str | None, SearchKey]:
    """
    C{[RETURN (options) SP] [CHARSET astring SP] search-key *(SP search-key)}.

    @return: C{(returns, charset, key)} as
        L{mailstack.imap.grammar.searchspec.searchCommand} reads them.
    """
    return searchCommand(reader)


def args_fetch(reader: Reader) -> tuple[SequenceSet, list[FetchAttribute], dict[str, Any]]:
    """
    C{sequence-set SP attributes [SP "(" CHANGEDSINCE n [SP VANISHED] ")"]}
    -> (messages, attributes, modifiers dict).
    """
    messages = SequenceSet.parse(reader)
    reader.sp()
    attributes = fetchAttributes(reader, extra=("MODSEQ",))
    modifiers: dict[str, Any] = {}
    if reader.peek() != b" ":
        return (messages, attributes, modifiers)
    reader.sp()

    def modifier() -> str:
        name = reader.keyword()
        if name == "CHANGEDSINCE":
            reader.sp()
            modifiers[name] = modseqValue(reader, allowZero=True)
        elif name == "VANISHED":
            modifiers[name] = True
        else:
            raise ParseError("Unknown FETCH modifier %s" % (name,))
        return name
    reader.parenthesized(modifier)
    if "VANISHED" in modifiers and "CHANGEDSINCE" not in modifiers:
        raise ParseError("VANISHED needs CHANGEDSINCE")
    return (messages, attributes, modifiers)


def args_store(
        reader: Reader) -> tuple[SequenceSet, str, bool, list[str], int | None]:
    """
    C{sequence-set [SP "(" UNCHANGEDSINCE n ")"] SP ["+"/"-"]FLAGS[.SILENT] SP
    (flag-list / flag *(SP flag))} -> (messages, mode, silent, flags,
    unchangedSince or None).
    """
    messages = SequenceSet.parse(reader)
    reader.sp()
    unchangedSince: int | None = None
    if reader.peek() == b"(":
        def modifier() -> str:
            nonlocal unchangedSince
            name = reader.keyword()
            if name != "UNCHANGEDSINCE":
                raise ParseError("Unknown STORE modifier %s" % (name,))
            reader.sp()
            unchangedSince = modseqValue(reader, allowZero=True)
            return name
        reader.parenthesized(modifier)
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
    return (messages, mode, name.endswith(".SILENT"), flags, unchangedSince)


def args_copy(reader: Reader) -> tuple[SequenceSet, bytes]:
    """C{sequence-set SP mailbox} (COPY and MOVE)."""
    messages = SequenceSet.parse(reader)
    reader.sp()
    return (messages, reader.mailbox())


def args_sequenceSet(reader: Reader) -> tuple[SequenceSet]:
    return (SequenceSet.parse(reader),)


# -- SORT and THREAD (RFC 5256, RFC 5957) -------------------------------------

SORT_KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO")


def _sortCharsetAndKeys(reader: Reader) -> tuple[str, SearchKey]:
    """C{charset 1*(SP search-key)}: SORT and THREAD name their charset always."""
    charset = reader.astring().decode("ascii", "replace")
    reader.sp()
    return charset, searchspec.searchKeys(reader)


def args_sort(reader: Reader) -> tuple[list[tuple[str, bool]], str, SearchKey,
                                       searchspec.ReturnOptions | None]:
    """
    C{[RETURN SP "(" [sort-return-opt *(SP sort-return-opt)] ")" SP] "("
    sort-criterion *(SP sort-criterion) ")" SP charset 1*(SP search-key)},
    a criterion being C{["REVERSE" SP] sort-key}; RETURN is ESORT's (RFC
    5267 3), its options SEARCH's.

    @return: C{(criteria, charset, key, returns)}, the criteria as C{[(key,
        reverse)]}, C{returns} L{None} without RETURN.
    """
    returns = None
    if reader.peek() != b"(":
        if reader.keyword() != "RETURN":
            raise ParseError("Expected RETURN or sort criteria in parentheses")
        reader.sp()
        returns = searchspec.returnOptions(reader)
        reader.sp()
    if reader.peek() != b"(":
        raise ParseError("Expected sort criteria in parentheses")

    def criterion() -> tuple[str, bool]:
        name = reader.keyword()
        reverse = False
        while name == "REVERSE":  # each one turns the order round, as in Dovecot
            reverse = not reverse
            reader.sp()
            name = reader.keyword()
        if name not in SORT_KEYS:
            raise ParseError("Unknown sort key %s" % (name,))
        return (name, reverse)
    criteria = reader.parenthesized(criterion)
    if not criteria:
        raise ParseError("Empty sort criteria")
    reader.sp()
    charset, key = _sortCharsetAndKeys(reader)
    return criteria, charset, key, returns


def args_cancelupdate(reader: Reader) -> tuple[list[bytes]]:
    """C{CANCELUPDATE} tags (RFC 5267 4.2): C{string *(SP string)} -> C{([tag, ...],)}."""
    tags = [reader.string()]
    while reader.peek() == b" ":
        reader.sp()
        tags.append(reader.string())
    return (tags,)


def args_thread(reader: Reader) -> tuple[str, str, SearchKey]:
    """C{thread-alg SP charset 1*(SP search-key)} -> C{(algorithm, charset, key)}."""
    algorithm = reader.keyword()
    reader.sp()
    charset, key = _sortCharsetAndKeys(reader)
    return algorithm, charset, key
