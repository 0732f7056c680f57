"""
What may legitimately differ between two IMAP servers' answers to the same
command, and nothing more. docs/imap.md ("Differences from Dovecot") lists the
same rules:

1. The number in C{UIDVALIDITY} (response code and STATUS item, and the
   first number of UIDPLUS's APPENDUID and COPYUID): each server picks its own. It is replaced by C{V1}, C{V2}... in order of first
   appearance per server, so a server that changed it between sessions still
   shows as different.
2. The human-readable text of status responses (C{OK}, C{NO}, C{BAD},
   C{BYE}, tagged or untagged): RFC 3501 leaves it to the server (Dovecot's
   carries timings, "(0.001 + 0.000 secs)"). The status word and any response
   code in brackets are kept and compared.
3. The order of the items inside one FETCH response: RFC 3501 does not fix
   it (Dovecot sends UID and FLAGS first, mailstack in the order asked, with
   a \\Seen set by the fetch after the body). Items are sorted by name;
   each item's value is compared as sent.
4. The order of the flags in a mailbox's FLAGS and PERMANENTFLAGS lists
   (sets, in RFC 3501): Dovecot lists keywords in the order they were first
   used, mailstack in its own. They are sorted.
5. The form of the mailbox name in a STATUS response: an atom or the same
   name quoted are one astring (mailstack quotes, Dovecot does not). A name
   that needs quotes is compared as sent.

The greeting, LOGIN and LOGOUT are not compared at all (server names,
capability lists: the capability list is compared by its own test).
"""

import re

_STATUS = re.compile(rb"^((?:(?:\*|[A-Za-z0-9.]+) )?(?:OK|NO|BAD|BYE|PREAUTH))"
                     rb"( \[(?:[^\]\r\n]|\][^ \r\n])*\])?[^\r\n]*\r\n$", re.I)
_FLAG_LIST = re.compile(rb"^(\* FLAGS \(|\* OK \[PERMANENTFLAGS \()([^)]*)\)")
_STATUS_NAME = re.compile(rb'^(\* STATUS )"([A-Za-z0-9&._/-]+)" \(')
_UIDVALIDITY = re.compile(rb"\b((?:UIDVALIDITY|APPENDUID|COPYUID) )(\d+)", re.I)


def _sortedFlags(match):
    return match.group(1) + b" ".join(sorted(match.group(2).split())) + b")"


class Normaliser:
    """
    The normalisation of one server's responses (it remembers the
    UIDVALIDITY values it has seen, to number them consistently).
    """

    def __init__(self):
        self.validities = {}

    def _validity(self, match):
        value = match.group(2)
        if value not in self.validities:
            self.validities[value] = b"V%d" % (len(self.validities) + 1,)
        return match.group(1) + self.validities[value]

    def line(self, response):
        """One response (bytes, literals included), normalised."""
        m = _STATUS.match(response)
        if m:
            response = m.group(1) + (m.group(2) or b"") + b"\r\n"
        fetch = _FETCH.match(response)
        if fetch:
            return fetch.group(0) + b" ".join(
                sorted(fetchItems(response[fetch.end():-3]))) + b")\r\n"
        response = _FLAG_LIST.sub(_sortedFlags, response)
        response = _STATUS_NAME.sub(rb"\1\2 (", response)
        return _UIDVALIDITY.sub(self._validity, response)

    def responses(self, responses):
        return [self.line(r) for r in responses]


_FETCH = re.compile(rb"^\* \d+ FETCH \(")
_LITERAL = re.compile(rb"\{(\d+)\}\r\n")


def _skipValue(data, i):
    """The index after the value (atom, number, string, literal, list) at C{i}."""
    depth = 0
    while i < len(data):
        c = data[i:i + 1]
        if c == b'"':
            i += 1
            while data[i:i + 1] != b'"':
                i += 2 if data[i:i + 1] == b"\\" else 1
            i += 1
        elif c == b"{":
            m = _LITERAL.match(data, i)
            i = m.end() + int(m.group(1))
        elif c == b"(":
            depth += 1
            i += 1
        elif c == b")":
            depth -= 1
            i += 1
        elif c == b" " and depth == 0:
            return i
        elif c == b"[":
            # a section: may hold spaces and parentheses (HEADER.FIELDS)
            i = data.index(b"]", i) + 1
        else:
            i += 1
        if depth == 0 and c in (b'"', b")", b"{") and data[i:i + 1] in (b" ", b""):
            return i
    return i


def fetchItems(data):
    """
    The items of a FETCH response's list (the bytes between its parentheses)
    as C{name + b" " + value} byte strings, in the order sent.
    """
    items = []
    i = 0
    while i < len(data):
        nameEnd = _skipValue(data, i)
        valueEnd = _skipValue(data, nameEnd + 1)
        items.append(data[i:valueEnd])
        i = valueEnd + 1
    return items
