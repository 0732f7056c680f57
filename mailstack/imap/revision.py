"""
IMAP4rev2 (RFC 9051) beside IMAP4rev1 (RFC 3501), and UTF8=ACCEPT (RFC
6855): what a session has switched on with ENABLE, and the rules that
differ once it has, in one place. The commands (imap/commands.py,
imap/mailbox.py) ask a session's L{Revision} instead of testing the mode
themselves.

A session speaks IMAP4rev1 until C{ENABLE IMAP4rev2}; from then on there is
no C{\\Recent} flag, no C{RECENT} response, STATUS item or search key (NEW,
OLD, RECENT), SEARCH answers ESEARCH-style, SELECT gives the mailbox's LIST
line and no C{[UNSEEN]}, unsolicited FETCH responses carry the UID, STATUS
has DELETED, DELETE of a mailbox with children is C{NO [HASCHILDREN]}, LIST
always says C{\\HasChildren} or C{\\HasNoChildren}, and mailbox names are
UTF-8 (C{[CLOSED]}, which RFC 9051 also requires, goes to every session).
C{ENABLE UTF8=ACCEPT} gives only the last (with UTF-8 in quoted strings)
and APPEND's C{UTF8 (~{n})} message. docs/imap.md has the table of RFC 9051 appendix E,
item by item.

Store names are str whatever the mode; only their wire form changes
(modified UTF-7 in IMAP4rev1, UTF-8 once enabled), so Maildir folder names
on disk stay as Dovecot writes them.
"""

import unicodedata

from mailstack.imap import listing
from mailstack.imap.mailbox import BadMailboxName, decodeName, encodeName
from mailstack.imap.response import Refusal, quoted, string
from mailstack.storage import mutf7
from mailstack.storage.interfaces import MailboxNotEmpty

REV2 = "IMAP4rev2"
# How a listener's disabled list names it (the config upper-cases those names).
REV2_KEY = REV2.upper()
UTF8_ACCEPT = "UTF8=ACCEPT"

# The extensions IMAP4rev2 folds in (RFC 9051 appendix E): it is offered only
# on a listener that has none of them switched off. LITERAL- is there as
# LITERAL+ or LITERAL-; SASL-IR matters before login only.
REV2_NEEDS = ("SASL-IR", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE",
              "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "SEARCHRES",
              "STATUS=SIZE", "BINARY")

# Search keys IMAP4rev2 has not (its grammar dropped NEW, OLD and RECENT).
_RECENT_KINDS = ("RECENT",)
# The longest UTF-8 name sent quoted; longer ones go as literals, as response.string does.
_QUOTED_LIMIT = 4096


def rev2Offered(extensionEnabled):
    """
    Whether a listener offers IMAP4rev2: not switched off, and none of what
    it folds in switched off either (a rev2 client may use all of it).

    @param extensionEnabled: the session's C{extensionEnabled(name)}.
    """
    return (extensionEnabled(REV2_KEY) and all(extensionEnabled(n) for n in REV2_NEEDS)
            and (extensionEnabled("LITERAL+") or extensionEnabled("LITERAL-")))


class Revision:
    """
    One session's mode: IMAP4rev1 until ENABLE IMAP4rev2 and/or UTF8=ACCEPT.

    @ivar rev2: IMAP4rev2 is enabled.
    @ivar utf8: UTF8=ACCEPT is enabled.
    """

    def __init__(self):
        self.rev2 = False
        self.utf8 = False

    def enable(self, name, extensionEnabled):
        """
        ENABLE C{name} (any case) if it is one of this module's and offered.

        @return: its name as the ENABLED response gives it, or None if it is
            not enabled (unknown or switched off: ENABLE ignores it).
        """
        name = name.upper()
        if name == REV2_KEY and rev2Offered(extensionEnabled):
            self.rev2 = True
            return REV2
        if name == UTF8_ACCEPT and extensionEnabled(UTF8_ACCEPT):
            self.utf8 = True
            return UTF8_ACCEPT
        return None

    # -- what changes in IMAP4rev2 -------------------------------------------

    @property
    def showsRecent(self):
        """IMAP4rev1 has \\Recent and RECENT; IMAP4rev2 has neither."""
        return not self.rev2

    @property
    def selectGivesUnseen(self):
        """SELECT's C{OK [UNSEEN n]}: IMAP4rev1's; IMAP4rev2 dropped it."""
        return not self.rev2

    @property
    def selectListsMailbox(self):
        """SELECT's C{* LIST} of the mailbox (RFC 9051 6.3.2: required in IMAP4rev2)."""
        return self.rev2

    @property
    def fetchUpdatesCarryUID(self):
        """Unsolicited FETCH responses carry the UID in IMAP4rev2 (RFC 9051 7.5.2)."""
        return self.rev2

    def listChildren(self, childrenEnabled):
        """LIST's \\HasChildren/\\HasNoChildren: always in IMAP4rev2, else with CHILDREN."""
        return self.rev2 or childrenEnabled

    def searchReturns(self, returns):
        """
        SEARCH's RETURN options: in IMAP4rev2 a SEARCH without RETURN is
        RETURN (ALL), answered with ESEARCH (RFC 9051 6.4.4); else as asked.
        """
        if returns is None and self.rev2:
            return frozenset({"ALL"})
        return returns

    def checkSearchKinds(self, kinds):
        """BAD for NEW, OLD and RECENT in IMAP4rev2 (no \\Recent there)."""
        if self.rev2 and any(kind in kinds for kind in _RECENT_KINDS):
            raise Refusal("NEW, OLD and RECENT are not IMAP4rev2 search keys (no \\Recent)",
                          status="BAD")

    def deleteRefused(self, failure, name):
        """
        DELETE of a mailbox with children (the store refuses it): IMAP4rev2
        has a code for that, C{NO [HASCHILDREN]} (RFC 9051 7.1); IMAP4rev1
        keeps C{[CANNOT]}, as does INBOX. Other failures pass on.
        """
        failure.trap(MailboxNotEmpty)
        if self.rev2 and name != "INBOX":
            return ("NO", "HASCHILDREN", self.errorText(str(failure.value)))
        return failure

    def checkStatusItems(self, items):
        """STATUS RECENT is IMAP4rev1's, STATUS DELETED IMAP4rev2's (RFC 9051 6.3.11)."""
        if self.rev2 and "RECENT" in items:
            raise Refusal("STATUS RECENT is not available in IMAP4rev2 (no \\Recent)",
                          status="BAD")
        if not self.rev2 and "DELETED" in items:
            raise Refusal("STATUS DELETED needs IMAP4rev2 (ENABLE IMAP4rev2)", status="BAD")

    # -- mailbox names and strings -------------------------------------------

    @property
    def utf8Names(self):
        """Mailbox names in UTF-8 instead of modified UTF-7 (RFC 9051 5.1, RFC 6855 3)."""
        return self.rev2 or self.utf8

    def checkSearchCharset(self, charset):
        """RFC 6855 3: after ENABLE UTF8=ACCEPT a SEARCH names no CHARSET (it is UTF-8): BAD."""
        if self.utf8 and charset is not None:
            raise Refusal("SEARCH CHARSET is not allowed after ENABLE UTF8=ACCEPT (RFC 6855)",
                          status="BAD")

    def checkNewName(self, name):
        """
        CREATE's name, RENAME's new one: once names are UTF-8, RFC 9051 5.1
        ('Server implementations MUST prohibit the creation of 8-bit mailbox
        names that do not comply with Net-Unicode'; RFC 6855 3 the same)
        refuses one that is not in Unicode Normalization Form C or holds a C1
        control character (RFC 5198 2; the store refuses C0 controls itself).
        mailstack does not normalize names for the client, so a name SELECT
        is given is the name CREATE made.

        @raise Refusal: C{NO [CANNOT]}.
        """
        if not self.utf8Names or name.isascii():
            return
        if unicodedata.normalize("NFC", name) != name:
            raise Refusal("Mailbox name is not in Unicode Normalization Form C (RFC 9051 5.1)",
                          "CANNOT")
        if any("\x80" <= c <= "\x9f" for c in name):
            raise Refusal("Mailbox name contains control characters", "CANNOT")

    def checkUtf8Append(self):
        """APPEND's C{UTF8 (literal8)} (RFC 6855 4): BAD until UTF-8 is enabled."""
        if not self.utf8Names:
            raise Refusal("APPEND UTF8 needs ENABLE UTF8=ACCEPT", status="BAD")

    def decodeName(self, wire):
        """
        A mailbox name from the wire -> the store's str (C{INBOX} in any case).

        @raise BadMailboxName: not valid modified UTF-7, or UTF-8 once enabled.
        """
        if not self.utf8Names:
            return decodeName(wire)
        try:
            name = wire.decode("utf-8")
        except UnicodeDecodeError:
            raise BadMailboxName("Mailbox name is not valid UTF-8")
        return listing.normalizePattern(name)

    def decodePattern(self, wire):
        """A LIST reference or pattern -> str, or None when it cannot name anything."""
        try:
            if self.utf8Names:
                return wire.decode("utf-8")
            return mutf7.decode(wire.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None

    def errorText(self, text):
        """
        A store error's text (mailbox names in Unicode) for a NO: names as the
        client writes them, modified UTF-7 in IMAP4rev1; once UTF-8 is on the
        text stays Unicode (the reply escapes what is not 7-bit).
        """
        return text if self.utf8Names else mutf7.encode(text)

    def nameString(self, name):
        """
        A store name as a wire string: modified UTF-7 in IMAP4rev1; UTF-8 once
        enabled, quoted (UTF-8 is allowed in quoted strings then) unless it
        holds line ends or is long.
        """
        if not self.utf8Names:
            return string(encodeName(name))
        data = name.encode("utf-8")
        if len(data) < _QUOTED_LIMIT and not any(c in data for c in (0, 10, 13)):
            return quoted(data)
        return string(data)
