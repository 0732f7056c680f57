"""
The differences from Dovecot mailstack keeps on purpose, each with its reason
(docs/imap.md, "Differences from Dovecot", lists the same). A difference the
harness finds must be fixed or added here; an entry that no longer explains
anything is reported too, so the list stays true.
"""

import re
from dataclasses import dataclass, field

_EIGHT_BIT = re.compile(rb"[\x80-\xff]")


def _eightBitOutsideLiteral(difference):
    """Whether the command sends 8-bit octets in an atom or quoted string."""
    command = difference.original
    parts = [command] if isinstance(command, bytes) else command
    return any(_EIGHT_BIT.search(p) for p in parts if isinstance(p, bytes))


_LITERAL_ITEM = re.compile(rb"^(\* \d+ FETCH \([^{]*)\{\d+\}\r\n(.*)\)\r\n$", re.S)


def _onlyBlankLine(difference):
    """
    Whether the two answers differ only in whether a literal ends with one
    more CRLF (a header's closing blank line), message by message.
    """
    def keyed(lines):
        out = {}
        for line in lines:
            m = _LITERAL_ITEM.match(line)
            if m is None:
                return None
            out[m.group(1)] = m.group(2)
        return out
    ours, theirs = keyed(difference.ours), keyed(difference.theirs)
    if ours is None or theirs is None or set(ours) != set(theirs):
        return False
    return all(ours[k] + b"\r\n" == theirs[k] or theirs[k] + b"\r\n" == ours[k] for k in ours)


@dataclass(frozen=True)
class Deliberate:
    """
    One accepted difference: in the answers to C{commands} (exact command
    texts; empty: any) of C{scripts} (empty: any) that C{predicate} (given
    the L{tests.differential.runner.Difference}) accepts, if set: either
    the whole answer (C{messages} empty) or only the FETCH
    responses of the corpus messages named in C{messages}; C{steps}, if
    given, limits it to those step numbers of its scripts. C{sometimes}: a
    difference that depends on Dovecot's state (its cache), so not seeing it
    is no sign the entry is stale.
    """
    name: str
    reason: str
    commands: tuple = ()
    scripts: tuple = ()
    messages: tuple = ()
    predicate: object = field(default=None, compare=False)
    sometimes: bool = False
    steps: tuple = ()

    def applies(self, difference):
        """Whether C{difference}'s script and command are this entry's."""
        if self.scripts and difference.script not in self.scripts:
            return False
        if self.commands and difference.command not in self.commands:
            return False
        if self.steps and difference.step not in self.steps:
            return False
        return self.predicate is None or self.predicate(difference)

    def covers(self, line, names):
        """
        Whether this entry accounts for one differing response C{line};
        C{names} maps sequence numbers to corpus message names.
        """
        if not self.messages:
            return True
        m = re.match(rb"\* (\d+) FETCH ", line)
        return m is not None and names.get(int(m.group(1))) in self.messages

    def explains(self, difference, names):
        """Whether this entry alone accounts for all of C{difference}."""
        return self.applies(difference) and all(
            self.covers(line, names) for line in difference.ours + difference.theirs)


DELIBERATE = [
    Deliberate(
        "content-type-without-slash",
        "A Content-Type that does not parse (textplain) is text/plain us-ascii, as RFC 2045 "
        "section 5.2 says; Dovecot 2.3 writes an empty type and subtype (\"\" \"\") without "
        "a line count.",
        scripts=("bodystructure", "rfc822-items"), messages=("garbage-type",)),
    Deliberate(
        "zero-length-partial",
        "BODY[]<0.0>: RFC 3501's grammar makes the partial's length a nz-number, so mailstack "
        "answers BAD; Dovecot accepts it and returns empty strings.",
        commands=(b"FETCH 1:* (BODY.PEEK[]<0.0>)",)),
    Deliberate(
        "quoted-field-name-echo",
        "HEADER.FIELDS (\"Subject\" To) is answered (SUBJECT TO): mailstack writes a field "
        "name as an atom when it can be one; Dovecot repeats the client's quotes. Both are the "
        "same astring.",
        commands=(b'FETCH 1:* (BODY.PEEK[HEADER.FIELDS ("Subject" To)])',)),
    Deliberate(
        "search-unknown-keyword",
        "SEARCH KEYWORD for a keyword no message has: Dovecot adds it to the mailbox's keywords "
        "and sends FLAGS and PERMANENTFLAGS; mailstack does not change a mailbox while "
        "searching it.",
        commands=(b"SEARCH KEYWORD $NoSuch",)),
    Deliberate(
        "search-keyword-system-flag",
        "SEARCH KEYWORD \\Seen: a keyword is an atom (RFC 3501), and \\ is not an atom "
        "character, so mailstack answers BAD; Dovecot matches nothing.",
        commands=(b"SEARCH KEYWORD \\Seen",)),
    Deliberate(
        "search-date-before-1970",
        "SENTBEFORE/SENTSINCE with a Date: before 1970 (13 Feb 1969): mailstack compares the "
        "date written; Dovecot 2.3 misplaces it (SENTSINCE 1-Jan-2023 finds it, SENTBEFORE "
        "1-Jan-1970 does not).",
        commands=(b"SEARCH SENTBEFORE 1-Jan-2000", b"SEARCH SENTSINCE 1-Jan-2000",
                  b"SEARCH SENTBEFORE 1-Jan-1970", b"SEARCH SENTSINCE 1-Jan-2023",
                  b"SEARCH SENTBEFORE 2-Jan-2000", b"SEARCH SENTSINCE 2-Jan-2000",
                  b"SEARCH SENTBEFORE 1-Jan-1971", b"SEARCH SENTSINCE 1-Jan-2030",
                  b"SEARCH SENTBEFORE 1-Jan-1995")),
    Deliberate(
        "eight-bit-atom",
        "8-bit octets in an atom or quoted string (FROM J\\xc3\\xb6rg without a literal): "
        "mailstack reads them (as UTF-8, or the CHARSET named); Dovecot 2.3 answers BAD for "
        "UTF-8 ones (RFC 3501 wants a literal for 8-bit).",
        scripts=("search",), predicate=_eightBitOutsideLiteral),
    Deliberate(
        "header-without-line-end",
        "HEADER.FIELDS of a message whose header ends without a line end (no blank line, no "
        "body): mailstack ends the field with CRLF and, as RFC 3501 6.4.5 says for a message "
        "without body and blank line, adds no blank line; Dovecot 2.3 answers either that or "
        "with a blank line, depending on whether the header came from its cache.",
        scripts=("header-fields",), messages=("cr-only", "no-blank-no-end"), sometimes=True),
    Deliberate(
        "attached-header-blank-line",
        "HEADER.FIELDS of an attached message whose header is cut short by the next boundary "
        "(no blank line): mailstack always ends the answer with the blank line, as for any "
        "HEADER.FIELDS; Dovecot 2.3 leaves it out or not, depending on its cache. Only answers "
        "that differ by that one CRLF are accepted.",
        scripts=("header-fields",), predicate=_onlyBlankLine, sometimes=True),
    Deliberate(
        "header-fields-not-past-boundary",
        "HEADER.FIELDS.NOT of an attached message whose header runs into the next boundary "
        "(no blank line): Dovecot 2.3 reads on past the boundary and returns the next part's "
        "lines as header fields; mailstack stops at the boundary, where the header ends.",
        scripts=("header-fields",),
        commands=(b"FETCH 1:* (BODY.PEEK[2.HEADER.FIELDS.NOT (Subject)])",
                  b"FETCH 1:* (BODY.PEEK[3.HEADER.FIELDS.NOT (Subject)])")),
    Deliberate(
        "binary-size-attached-message",
        "BINARY.SIZE of an attached message (message/rfc822) whose body is decoded: Dovecot "
        "2.3 counts the attached message's own header as unchanged and answers 4 octets fewer "
        "than the BINARY content it sends; mailstack answers the length of that content.",
        scripts=("binary",), commands=(b"FETCH 1:31 (BINARY.SIZE[2])",),
        messages=("nested",)),
    Deliberate(
        "binary-size-beside-unknown-encoding",
        "BINARY.SIZE of a part whose encoding is known, in a message where another part's is "
        "not (x-unknown): mailstack answers the size; Dovecot 2.3 works sizes out over the "
        "whole message, so it answers NO [UNKNOWN-CTE], or the size when it has it cached.",
        scripts=("binary",), commands=(b"FETCH 4 (BINARY.SIZE[1])", b"FETCH 1:4 (BINARY.SIZE[1])"),
        sometimes=True),
    Deliberate(
        "status-selected-mailbox",
        "STATUS of the selected mailbox: Dovecot adds a [CLIENTBUG] hint to its OK (RFC 3501 "
        "discourages it); mailstack answers it plainly.",
        commands=(b"STATUS INBOX (MESSAGES RECENT UNSEEN)",
                  b"STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)",
                  b"STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)")),
    Deliberate(
        "move-from-read-only",
        "UID MOVE out of an EXAMINEd (read-only) mailbox: MOVE expunges, which a read-only "
        "mailbox does not allow, so mailstack answers NO; Dovecot moves the message.",
        scripts=("expunge-and-uids",), commands=(b"UID MOVE 3 Differential",)),
    Deliberate(
        "flag-change-of-expunged",
        "A FETCH while another session has flagged and expunged a message: Dovecot tells "
        "the flag change (its EXPUNGE waits); mailstack tells nothing of that message until "
        "the EXPUNGE. The store forgets an expunged message's flags, and a client about to be "
        "told it is gone has no use for them (RFC 3501 7: unilateral updates are the "
        "server's choice).",
        scripts=("session-updates",), commands=(b"FETCH 1 (UID)",)),
    Deliberate(
        "fetch-expunged",
        "FETCH of a message another session expunged, before this session was told: "
        "mailstack leaves it out and says OK [EXPUNGEISSUED] (RFC 5530); Dovecot returns its "
        "data from its index. RFC 2180 4.1 allows both; the store forgets an expunged message "
        "and a Maildir's file is gone with it, so mailstack could give its flags but not its "
        "body, and a client is better served by one answer for every item.",
        scripts=("expunge-and-uids",), commands=(b"FETCH 1:4 (UID FLAGS)",)),
]

def unexplained(differences, names, deliberate=DELIBERATE):
    """
    @return: C{(unexplained differences, names of entries that explained
        none)}.
    """
    used = set()
    left = []
    for difference in differences:
        entries = [d for d in deliberate if d.applies(difference)]
        whole = next((d for d in entries if not d.messages), None)
        if whole is not None:
            used.add(whole.name)
            continue
        # each differing line by an entry for its message
        found = [next((d for d in entries if d.covers(line, names)), None)
                 for line in difference.ours + difference.theirs]
        if None in found:
            left.append(difference)
        else:
            used.update(d.name for d in found)
    return left, [d.name for d in deliberate if d.name not in used and not d.sometimes]
