"""
Arguments of the extended command forms, pure (no I/O): LIST-EXTENDED
(RFC 5258) with LIST-STATUS (RFC 5819) and SPECIAL-USE (RFC 6154) options,
CREATE with USE (RFC 6154), and the CONDSTORE/QRESYNC (RFC 7162) additions:
SELECT/EXAMINE parameters, FETCH and STORE modifiers, the MODSEQ search key.

Builds on L{mailstack.imap.parser} (its L{Reader}, L{ParseError}); each
C{args_*} function takes a Reader positioned after the command name's space.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mailstack.imap import parser
from mailstack.imap.grammar.fetchspec import FetchAttribute, fetchAttributes
from mailstack.imap.grammar.reader import ParseError, Reader, modseqValue
from mailstack.imap.grammar.sequence import SequenceSet

LIST_SELECTION = ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE")
LIST_RETURN = ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS")
STATUS_ITEMS = parser.STATUS_ITEMS + ("HIGHESTMODSEQ",)


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
                statusItems = tuple(parser.statusItems(reader, STATUS_ITEMS))
            return name
        returns.update(reader.parenthesized(option))
    # Selection options imply return options (RFC 5258 3, RFC 6154 5.2).
    returns.update(selection & {"SUBSCRIBED", "SPECIAL-USE"})
    return (ListCommand(reference, tuple(patterns), frozenset(selection), frozenset(returns),
                        statusItems, extended),)


def args_status(reader: Reader) -> tuple[bytes, list[str]]:
    """STATUS with CONDSTORE's HIGHESTMODSEQ item."""
    mailbox = reader.mailbox()
    reader.sp()
    return (mailbox, parser.statusItems(reader, STATUS_ITEMS))


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
            known = SequenceSet.parse(reader)
            reader.trySkip(b" ")
        if reader.peek() == b"(":
            reader.skip(b"(")
            sequences = SequenceSet.parse(reader)
            reader.sp()
            uids = SequenceSet.parse(reader)
            reader.skip(b")")
            match = (sequences, uids)
    reader.skip(b")")
    return QResync(validity, modseq, known, match)


def fetchModifiers(reader: Reader) -> dict[str, Any]:
    """FETCH's C{[SP "(" CHANGEDSINCE n [SP VANISHED] ")"]} -> dict."""
    modifiers: dict[str, Any] = {}
    if reader.peek() != b" ":
        return modifiers
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
    return modifiers


def args_fetch(reader: Reader) -> tuple[SequenceSet, list[FetchAttribute], dict[str, Any]]:
    """C{sequence-set SP attributes [SP modifiers]}."""
    messages = SequenceSet.parse(reader)
    reader.sp()
    attributes = fetchAttributes(reader, extra=("MODSEQ",))
    return (messages, attributes, fetchModifiers(reader))


def args_store(
        reader: Reader) -> tuple[SequenceSet, str, bool, list[str], int | None]:
    """C{sequence-set [SP "(" UNCHANGEDSINCE n ")"] SP flags-action SP flags}."""
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
    rest = parser.args_store(reader, messages)
    return rest + (unchangedSince,)
