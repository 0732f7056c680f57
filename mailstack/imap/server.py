"""
The IMAP4rev1 server protocol (RFC 3501) with STARTTLS, SASL (PLAIN, LOGIN,
CRAM-MD5, RFC 4959 SASL-IR) and the small extensions clients expect: LITERAL+
(RFC 7888), ID (2971), ENABLE (5161), IDLE (2177), NAMESPACE (2342), UNSELECT
(3691), UIDPLUS (4315), MOVE (6851), CHILDREN (3348), SPECIAL-USE and
CREATE-SPECIAL-USE (6154), LIST-EXTENDED (5258), LIST-STATUS (5819), CONDSTORE
and QRESYNC (7162), APPENDLIMIT (7889). A listener's C{disabled} list switches
any of them off.

Why not twisted.mail.imap4.IMAP4Server: its defects sit in the framing and the
response formatting, which are most of an IMAP server (see docs/imap.md
and docs/twisted-notes.md): STARTTLS keeps pipelined plaintext,
APPEND literals are unbounded and APPEND without flags crashes, command lines
over 16 KB disconnect, IDLE ends on any line, partial FETCH, BODYSTRUCTURE,
SEARCH, LIST and STATUS answer wrongly, SELECT omits response codes, and its
mailbox listener cannot report EXPUNGE to other sessions. Nothing of it is
reused; Twisted supplies the transport, TLS, cred and the reactor.

Layout: this module frames input (lines and literals, with limits), keeps
the session's state (not authenticated, authenticated, selected, logout),
dispatches commands from a table and answers the commands of any state and of
the not-authenticated state. L{mailstack.imap.commands} holds the
authenticated- and selected-state commands, L{mailstack.imap.condstore} the
CONDSTORE/QRESYNC state and responses (mixins of L{IMAPServer}).
"""

import collections
import dataclasses
import re
import tempfile

from twisted.internet import defer
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mailstack.imap import response
from mailstack.imap.auth import AuthenticationCommands
from mailstack.imap.commands import MailboxCommands
from mailstack.imap.condstore import CondstoreCommands
from mailstack.imap.context import ContextCommands
from mailstack.imap.grammar import arguments
from mailstack.imap.grammar.reader import (
    ParseError, Reader, commandTag, literalAnnouncement)
from mailstack.imap.notify import NotifyCommands, args_notify
from mailstack.imap.response import Refusal, taggedLine
from mailstack.imap.revision import Revision, rev2Offered
from mailstack.imap.sorting import SortingCommands
from mailstack.imap.spool import LiteralSpool
from mailstack.instruments import INTERNAL_ERROR, STORAGE_ERROR
from mailstack.protocol import compress
from mailstack.protocol.framing import LONG_LINE_END, TOO_LONG, LineFramer
from mailstack.protocol.secrets import secretEnd, secretFrom, secretLine
from mailstack.protocol.session import ISessionWording, Session
from mailstack.settings import ListenerSettings
from mailstack.storage.interfaces import (
    InvalidMailboxName, MailboxExists, MailboxInUse, MailboxNotEmpty, NoSuchMailbox,
    NoSuchMessage, StoreError, StoreUnavailable, isNoSpace)

log = Logger()

NOT_AUTHENTICATED, AUTHENTICATED, SELECTED, LOGOUT = (
    "not authenticated", "authenticated", "selected", "logout")
ANY = (NOT_AUTHENTICATED, AUTHENTICATED, SELECTED)
AUTH = (AUTHENTICATED, SELECTED)

SMALL_LITERAL = 65536
LITERAL_MINUS_LIMIT = 4096  # RFC 7888: LITERAL- allows {n+} up to this size
SPOOL_MEMORY = 1024 * 1024
_VERB = re.compile(rb"[^ ]+ +(?:UID +)?([A-Za-z]+)")
# What a transcript shows of a LOGIN / AUTHENTICATE line: the tag, the
# command, and LOGIN's user name (atom or quoted string) or the mechanism.
_SECRET_PREFIX = {
    b"LOGIN": re.compile(rb'(?i)[^ ]+ +LOGIN +(?:(?:"(?:[^"\\]|\\.)*"|[^ "{]+) )?'),
    b"AUTHENTICATE": re.compile(rb"(?i)[^ ]+ +AUTHENTICATE +[^ ]+ ?"),
}
# A valid tag (see grammar.reader.Reader.tag) and its space, at the start of a line's first octets.
_TAG = re.compile(rb'([^\x00-\x20(){%*"\\+\x7f-\xff]+) ')

_LITERAL8 = re.compile(rb"~\{\d+\+?\}\Z")
# APPEND's RFC 6855 message or CATENATE part, a literal8 with or without BINARY.
_UTF8_LITERAL8 = re.compile(rb"(?i)[ (]UTF8 \(~\{\d+\+?\}\Z")

# Extensions, in CAPABILITY order (the names a listener may disable).
EXTENSIONS = ("LITERAL+", "LITERAL-", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT",
              "UIDPLUS", "MOVE", "CHILDREN", "SPECIAL-USE", "CREATE-SPECIAL-USE",
              "LIST-EXTENDED", "LIST-STATUS", "CONDSTORE", "QRESYNC", "APPENDLIMIT")
# SORT and THREAD (RFC 5256, 5957): imap/sorting.py.
EXTENSIONS += ("SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES")
# ESEARCH (RFC 4731), SEARCHRES (5182, not without ESEARCH), WITHIN (5032): commands._search.
EXTENSIONS += ("ESEARCH", "SEARCHRES", "WITHIN")
# STATUS=SIZE (RFC 8438): IMAPAccount.status.
EXTENSIONS += ("STATUS=SIZE",)
# PREVIEW (RFC 8970): imap/preview.py.
EXTENSIONS += ("PREVIEW",)
# OBJECTID (RFC 8474): imap/objectid.py.
EXTENSIONS += ("OBJECTID",)
# BINARY (RFC 3516): fetch.binaryContent, literal8 in APPEND.
EXTENSIONS += ("BINARY",)
# SNIPPET=FUZZY, PREVIEW=FUZZY (Dovecot 2.3's drafts before RFC 8970): grammar/fetchspec._preview.
EXTENSIONS += ("SNIPPET=FUZZY", "PREVIEW=FUZZY")
# MULTIAPPEND (RFC 3502), CATENATE (4469), URL-PARTIAL (5550, CATENATE's URLs): imap/append.py.
EXTENSIONS += ("MULTIAPPEND", "CATENATE", "URL-PARTIAL")
# ESORT, CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267): imap/context.py (live results), esearch.py.
EXTENSIONS += ("ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT")

# IMAP4rev2 (RFC 9051; listed right after IMAP4rev1, as "IMAP4rev2"): imap/revision.py.
# Upper-case here, as the config gives a listener's disabled names.
EXTENSIONS += ("IMAP4REV2",)
# THREAD=REFS (Dovecot's: REFERENCES' links, threads by their latest date): imap/thread.refsSteps.
EXTENSIONS += ("THREAD=REFS",)
# NOTIFY (RFC 5465): imap/notify.py.
EXTENSIONS += ("NOTIFY",)
# UTF8=ACCEPT (RFC 6855): imap/revision.py (names, APPEND's UTF8 (~{n})), grammar/appendspec.py.
EXTENSIONS += ("UTF8=ACCEPT",)
# COMPRESS=DEFLATE (RFC 4978): protocol/compress.py under the transcript; do_COMPRESS.
EXTENSIONS += ("COMPRESS=DEFLATE",)
# LOGIN-REFERRALS (RFC 2221): imap/referral.py, for users marked nologin with a host.
EXTENSIONS += ("LOGIN-REFERRALS",)
# SAVEDATE (RFC 8514): IMessageInfo.saveDate, FETCH SAVEDATE, SEARCH SAVED*.
EXTENSIONS += ("SAVEDATE",)
# I18NLEVEL=1 (RFC 5255): imap/casemap.py, i;unicode-casemap for SEARCH and SORT.
EXTENSIONS += ("I18NLEVEL=1",)

# Names a listener's `disabled` list may hold; service.py refuses any other.
DISABLEABLE = frozenset(EXTENSIONS) | {
    "STARTTLS", "LOGINDISABLED", "AUTH", "AUTH=PLAIN", "AUTH=LOGIN", "AUTH=CRAM-MD5"}


@dataclasses.dataclass(frozen=True)
class IMAPSettings(ListenerSettings):
    """
    What one listener offers; built from its config by its plug-in's C{buildFactory}.
    """
    maxLineLength: int = 65536
    maxLiteralSize: int = 25 * 1024 * 1024
    idleTimeout: int = 1800
    loginTimeout: int = 600
    idlePollInterval: float = 1.0

    @property
    def maxCommandSize(self):
        """Octets a command may hold outside APPEND's message literal."""
        return max(8 * self.maxLineLength, 65536)


Command = collections.namedtuple("Command", "states parser method extension")


def _command(states, parse, method, extension=None):
    return Command(states, parse, method, extension)


COMMANDS = {
    "CAPABILITY": _command(ANY, None, "do_CAPABILITY"),
    "NOOP": _command(ANY, None, "do_NOOP"),
    "LOGOUT": _command(ANY, None, "do_LOGOUT"),
    "ID": _command(ANY, arguments.args_id, "do_ID", "ID"),
    "STARTTLS": _command((NOT_AUTHENTICATED,), None, "do_STARTTLS", "STARTTLS"),
    "LOGIN": _command((NOT_AUTHENTICATED,), arguments.args_login, "do_LOGIN"),
    "AUTHENTICATE": _command((NOT_AUTHENTICATED,), arguments.args_authenticate,
                             "do_AUTHENTICATE"),
    "SELECT": _command(AUTH, arguments.args_select, "do_SELECT"),
    "EXAMINE": _command(AUTH, arguments.args_select, "do_EXAMINE"),
    "CREATE": _command(AUTH, arguments.args_create, "do_CREATE"),
    "DELETE": _command(AUTH, arguments.args_mailbox, "do_DELETE"),
    "RENAME": _command(AUTH, arguments.args_twoMailboxes, "do_RENAME"),
    "SUBSCRIBE": _command(AUTH, arguments.args_mailbox, "do_SUBSCRIBE"),
    "UNSUBSCRIBE": _command(AUTH, arguments.args_mailbox, "do_UNSUBSCRIBE"),
    "LIST": _command(AUTH, arguments.args_list, "do_LIST"),
    "LSUB": _command(AUTH, arguments.args_lsub, "do_LSUB"),
    "STATUS": _command(AUTH, arguments.args_status, "do_STATUS"),
    "APPEND": _command(AUTH, arguments.args_append, "do_APPEND"),
    "NAMESPACE": _command(AUTH, None, "do_NAMESPACE", "NAMESPACE"),
    "ENABLE": _command((AUTHENTICATED,), arguments.args_enable, "do_ENABLE", "ENABLE"),
    "IDLE": _command(AUTH, None, "do_IDLE", "IDLE"),
    "CHECK": _command((SELECTED,), None, "do_CHECK"),
    "CLOSE": _command((SELECTED,), None, "do_CLOSE"),
    "UNSELECT": _command((SELECTED,), None, "do_UNSELECT", "UNSELECT"),
    "EXPUNGE": _command((SELECTED,), None, "do_EXPUNGE"),
    "SEARCH": _command((SELECTED,), arguments.args_search, "do_SEARCH"),
    "FETCH": _command((SELECTED,), arguments.args_fetch, "do_FETCH"),
    "STORE": _command((SELECTED,), arguments.args_store, "do_STORE"),
    "COPY": _command((SELECTED,), arguments.args_copy, "do_COPY"),
    "MOVE": _command((SELECTED,), arguments.args_copy, "do_MOVE", "MOVE"),
    "UID SEARCH": _command((SELECTED,), arguments.args_search, "do_UID_SEARCH"),
    "UID FETCH": _command((SELECTED,), arguments.args_fetch, "do_UID_FETCH"),
    "UID STORE": _command((SELECTED,), arguments.args_store, "do_UID_STORE"),
    "UID COPY": _command((SELECTED,), arguments.args_copy, "do_UID_COPY"),
    "UID MOVE": _command((SELECTED,), arguments.args_copy, "do_UID_MOVE", "MOVE"),
    "UID EXPUNGE": _command((SELECTED,), arguments.args_sequenceSet, "do_UID_EXPUNGE",
                            "UIDPLUS"),
    "SORT": _command((SELECTED,), arguments.args_sort, "do_SORT", "SORT"),
    "UID SORT": _command((SELECTED,), arguments.args_sort, "do_UID_SORT", "SORT"),
    "THREAD": _command((SELECTED,), arguments.args_thread, "do_THREAD"),
    "UID THREAD": _command((SELECTED,), arguments.args_thread, "do_UID_THREAD"),
    "COMPRESS": _command(AUTH, arguments.args_compress, "do_COMPRESS", "COMPRESS=DEFLATE"),
    "CANCELUPDATE": _command((SELECTED,), arguments.args_cancelupdate, "do_CANCELUPDATE",
                             "CONTEXT=SEARCH"),
}
# NOTIFY (RFC 5465): imap/notify.py.
COMMANDS["NOTIFY"] = _command(AUTH, args_notify, "do_NOTIFY", "NOTIFY")

# Commands during which EXPUNGE must not be sent (RFC 3501 7.4.1).
NO_EXPUNGE = ("FETCH", "STORE", "SEARCH", "SORT", "THREAD")


@implementer(ISessionWording)
class IMAPWording:
    """
    IMAP's responses for the session core (L{mailstack.protocol.session}):
    BYE before a close, tagged replies for STARTTLS and a failed login.
    """

    protocolName = "imap"
    startTLSCommand = "STARTTLS"

    def internalError(self, tag):
        # A command's own faults are mapped by IMAPServer.failureResult; this
        # answers one past it (in completing the command).
        if tag is None:
            return b"* NO [SERVERBUG] Internal error\r\n"
        return taggedLine(tag, "NO", "SERVERBUG", "Internal error")

    def tooManyBadCommands(self):
        return b"* BYE Too many invalid commands\r\n"

    def tooManyCommands(self):
        return b"* BYE Too many commands in one session\r\n"

    def timedOut(self):
        return b"* BYE Autologout; idle for too long\r\n"

    def tlsReady(self, tag):
        return taggedLine(tag, "OK", None, "Begin TLS negotiation now")

    def tlsAlreadyActive(self, tag):
        return taggedLine(tag, "BAD", None, "TLS is already active")

    def tlsNotAvailable(self, tag):
        return taggedLine(tag, "NO", None, "STARTTLS is not available here")

    def authFailed(self, tag):
        return taggedLine(tag, "NO", "AUTHENTICATIONFAILED", "Authentication failed")

    def authUnavailable(self, tag):
        # RFC 5530: the user directory is down for now.
        return taggedLine(tag, "NO", "UNAVAILABLE", "Authentication temporarily unavailable")

    def authFailedClosing(self, tag):
        return self.authFailed(tag) + b"* BYE Too many authentication failures\r\n"


class IMAPServer(AuthenticationCommands, MailboxCommands, CondstoreCommands, SortingCommands,
                 ContextCommands, NotifyCommands, Session):
    """
    One IMAP session.

    @param cramAvailable: callable saying whether CRAM-MD5 works for every
        account (every user's secret is stored in plaintext).
    """

    def __init__(self, settings, portal, clock=None, cramAvailable=None):
        Session.__init__(self, settings, IMAPWording(), clock)
        self.holdBufferLimit = settings.maxCommandSize
        self.portal = portal
        self.cramAvailable = cramAvailable or (lambda: False)
        self.state = NOT_AUTHENTICATED
        self.account = None
        self.view = None
        # The limit counts the line end: a line of maxLineLength octets and CRLF fits.
        self.framer = LineFramer(settings.maxLineLength + 2, reportEnds=True)
        self._parts = []
        self._commandSize = 0
        self._verb = None
        self._literal = None
        self._spools = []
        self._appendSpool = None
        self._appendHeld = 0
        self._discardLiteral = 0
        self._abandoning = False
        self._lineHandler = None
        self._idle = None
        self.fetchCache = collections.OrderedDict()
        self.revision = Revision()  # IMAP4rev1 until ENABLE IMAP4rev2 / UTF8=ACCEPT

    # -- connection ----------------------------------------------------------

    def connectionMade(self):
        Session.connectionMade(self)
        self.setTimeout(self.settings.loginTimeout)
        self.write(b"* OK [CAPABILITY %s] %s mailstack IMAP4rev1 ready\r\n" % (
            self._capabilityText(), self.settings.hostname.encode("ascii", "replace")))

    def connectionLost(self, reason):
        Session.connectionLost(self, reason)
        self._stopIdle()
        self.stopNotify()
        self._deselect()
        self._closeSpools()
        if self._literal is not None:
            self._closeSink(self._literal[1])
            self._literal = None
        self.releaseAvatar()
        self.state = LOGOUT

    def readingLines(self):
        return self._literal is None and not self._discardLiteral

    # -- output --------------------------------------------------------------

    def write(self, data):
        if not self._closing:
            self.transport.write(data)

    def untagged(self, text):
        self.write(b"* " + text + b"\r\n")

    def bye(self, text):
        """Send C{* BYE text} and close the connection."""
        self.closeWith(b"* BYE " + text + b"\r\n")

    def closeWith(self, data):
        if not self._closing:
            self.state = LOGOUT
        Session.closeWith(self, data)

    def _tagged(self, tag, status, code, text):
        self.write(taggedLine(tag, status, code, text))

    def bad(self, tag, text):
        """A syntax error: BAD (tagged, or untagged without a tag); count it."""
        if tag is None:
            self.write(b"* BAD " + response.text(text) + b"\r\n")
        else:
            self._tagged(tag, "BAD", None, text)
        self.countBad()

    # -- framing -------------------------------------------------------------

    def bufferInput(self, data):
        self.framer.feed(data)

    def pendingInput(self):
        """
        Octets received and not taken yet (L{IPendingInput}); one more while
        the end of an over-long line is still to be handled.
        """
        return self.framer.pending() + self.framer.endPending

    def dropInput(self):
        """Forget the input buffered and the command begun (STARTTLS)."""
        discarded = self.framer.drop()
        self._resetCommand()
        return discarded

    def readsWhileHeld(self):
        """
        A running command reads its own lines (IDLE's DONE, AUTHENTICATE's
        responses), and a literal being read or dropped goes on.
        """
        return (self._lineHandler is not None or self._literal is not None
                or self._discardLiteral > 0)

    def takeInput(self):
        """Take a literal's octets, or a line: a command's or a running command's."""
        framer = self.framer
        if self._discardLiteral:
            count = min(framer.pending(), self._discardLiteral)
            framer.consume(count)
            self._discardLiteral -= count
            return True
        if self._literal is not None:
            self._readLiteral()
            return True
        line = framer.nextLine()
        if line is None:
            return False
        if line is TOO_LONG:
            if self._lineHandler is not None and not self._parts:
                self._lineHandler(None)
            else:
                self._lineTooLong(framer.head)
        elif line is LONG_LINE_END:
            self._endDiscardedLine(framer.tail)
        elif self._lineHandler is not None and not self._parts:
            self._lineHandler(line)
        else:
            self._commandLine(line)
        return True

    def _markSecrets(self, line):
        """
        Tell the transcript that LOGIN's arguments (literals included) and
        AUTHENTICATE's initial response and exchange are secret, up to the
        next command; the user name of a LOGIN stays visible when it is on
        the command's first line.
        """
        if self._verb in (b"LOGIN", b"AUTHENTICATE"):
            match = _SECRET_PREFIX[self._verb].match(line)
            secretFrom(self.transport, match.end() if match else len(line))

    def _secretBeforeLogin(self):
        """Before login, a line that is no command may be credentials sent out of turn."""
        if self.state == NOT_AUTHENTICATED:
            secretLine(self.transport)

    def _lineTooLong(self, start):
        if self.state == NOT_AUTHENTICATED:
            secretFrom(self.transport)  # what was seen of it, until the next command
        tag = self._parts[0] if self._parts else start
        match = _TAG.match(tag)
        self._resetCommand()
        self._abandoning = True
        self.bad(match.group(1) if match else None,
                 "Line too long (limit %d octets)" % (self.settings.maxLineLength,))

    def _endDiscardedLine(self, tail):
        """A discarded line ended; a non-synchronizing literal after it is dropped too."""
        announced = literalAnnouncement(tail)
        if announced is not None and not announced[1]:
            self._discardLiteral = announced[0]
            self._abandoning = True
        else:
            self._abandoning = False

    def _resetCommand(self):
        self._parts = []
        self._commandSize = 0
        self._verb = None
        self._appendSpool = None  # its literals keep it open as long as they are
        self._appendHeld = 0  # octets the command's literals may hold in memory

    def _commandLine(self, line):
        if self._abandoning:
            self._endDiscardedLine(line)
            return
        self._parts.append(line)
        self._commandSize += len(line)
        if len(self._parts) == 1:
            secretEnd(self.transport)  # a secret command's input ends here
            if commandTag(line) is None:
                # Never echo an invalid tag (it may hold 8-bit octets); a literal
                # it announces is refused (no "+"), or dropped if non-synchronizing.
                self._resetCommand()
                self._endDiscardedLine(line)
                self._secretBeforeLogin()
                return self.bad(None, "Invalid tag")
            match = _VERB.match(line)
            self._verb = match.group(1).upper() if match else None
            self._markSecrets(line)
        tag = commandTag(self._parts[0])
        if self._commandSize > self.settings.maxCommandSize:
            self._resetCommand()
            self._endDiscardedLine(line)
            return self.bad(tag, "Command too long")
        announced = literalAnnouncement(line)
        if announced is None:
            parts = self._parts
            self._resetCommand()
            return self._dispatch(parts)
        size, synchronizing = announced
        # APPEND's message literals get APPENDLIMIT's room only once logged in.
        isAppend = self._verb == b"APPEND" and self.state in AUTH
        if (_LITERAL8.search(line) and not self.extensionEnabled("BINARY")
                and not (isAppend and _UTF8_LITERAL8.search(line))):
            # A literal8 (RFC 3516) where BINARY is off: refused like a bad command.
            self._resetCommand()
            if not synchronizing:
                self._discardLiteral = size
                self._abandoning = True
            return self.bad(tag, "Literal8 is not available here (no BINARY)")
        if not synchronizing and not self.extensionEnabled("LITERAL+"):
            refusal = self._nonSyncRefusal(size)
            if refusal is not None:
                # The client sends the literal without waiting: read and drop it.
                self._resetCommand()
                self._discardLiteral = size
                self._abandoning = True
                self._tagged(tag, "BAD", *refusal)
                return self.countBad()
        limit = self.settings.maxLiteralSize if isAppend else (
            self.settings.maxCommandSize - self._commandSize)
        if size > limit:
            self._resetCommand()
            if not synchronizing:
                self._discardLiteral = size
                self._abandoning = True
            if isAppend:
                log.info("imap {peer}: APPEND of {size} octets refused", peer=self.peerText(),
                         size=size)
                return self._tagged(tag, "NO", "TOOBIG", "Message too large (limit %d octets)"
                                    % (self.settings.maxLiteralSize,))
            return self.bad(tag, "Literal too large")
        if not isAppend:
            self._commandSize += size
        if synchronizing:
            self.write(b"+ Ready for literal data\r\n")
        if isAppend and not self._appendMemory(size):
            sink = self._appendSpoolLiteral()  # past the command's share of memory
        elif size <= SMALL_LITERAL:
            sink = bytearray()
            self._appendHeld += size
        else:
            sink = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
            self._appendHeld += SPOOL_MEMORY  # a spool may hold that much in memory
        self._literal = [size, sink]
        if size == 0:
            self._readLiteral()

    def _appendMemory(self, size):
        """
        Whether an APPEND literal of C{size} octets may be kept in memory: the
        literals of one MULTIAPPEND/CATENATE hold at most L{SPOOL_MEMORY}
        octets there; the rest are spooled to disk. A running count, so that
        a MULTIAPPEND of n messages is read in O(n).
        """
        held = self._appendHeld
        return held + size <= SPOOL_MEMORY or not held

    def _appendSpoolLiteral(self):
        """
        A sink for the next APPEND literal past the command's share of memory:
        a piece of the command's one L{LiteralSpool} file (a MULTIAPPEND of
        many messages holds one descriptor). None if no file can be made: the
        literal is read and dropped, and the command refused.
        """
        try:
            if self._appendSpool is None:
                self._appendSpool = LiteralSpool()
            return self._appendSpool.literal()
        except OSError as e:
            self._literalError = e
            return None

    def _nonSyncRefusal(self, size):
        """Without LITERAL+: why a {n+} literal is refused (None: accepted, LITERAL-)."""
        if not self.extensionEnabled("LITERAL-"):
            return (None, "Non-synchronizing literals are not available here")
        if size > LITERAL_MINUS_LIMIT:
            return ("TOOBIG", "Non-synchronizing literals are limited to %d octets (LITERAL-)"
                    % (LITERAL_MINUS_LIMIT,))
        return None

    def _readLiteral(self):
        remaining, sink = self._literal
        chunk = self.framer.peek(remaining)
        count = len(chunk)
        if isinstance(sink, bytearray):
            sink += chunk
        elif sink is not None:
            try:
                sink.write(chunk)
            except OSError as e:
                # Spooling to disk failed (a full disk): read the literal to
                # its end without keeping it, then refuse the command.
                self._closeSink(sink)
                sink = self._literal[1] = None
                self._literalError = e
        self.framer.consume(count)
        remaining -= count
        self._literal[0] = remaining
        if remaining:
            return
        self._literal = None
        if sink is None:
            return self._literalFailed()
        if isinstance(sink, bytearray):
            self._parts.append(bytes(sink))
        else:
            sink.seek(0)
            self._spools.append(sink)
            self._parts.append(sink)

    _literalError = None

    def _literalFailed(self):
        """A literal could not be spooled: answer its command, drop the rest of it."""
        error, self._literalError = self._literalError, None
        tag = commandTag(self._parts[0]) if self._parts else None
        verb = (self._verb or b"command").decode("ascii", "replace")
        self._resetCommand()
        self._closeSpools()
        self._abandoning = True  # the rest of the command line goes too
        status, code, text = self.failureResult(Failure(error), verb)
        if tag is None:
            return self.write(b"* NO " + response.text(text) + b"\r\n")
        self._tagged(tag, status, code, text)

    @staticmethod
    def _closeSink(sink):
        if sink is not None and not isinstance(sink, bytearray):
            sink.close()

    def _closeSpools(self):
        spools, self._spools = self._spools, []
        for spool in spools:
            spool.close()

    # -- dispatch ------------------------------------------------------------

    def extensionEnabled(self, name):
        return name not in self.settings.disabled

    def _dispatch(self, parts):
        if not self.countCommand():
            return None
        reader = Reader(parts, maxString=self.settings.maxCommandSize)
        try:
            tag = reader.tag()
        except ParseError:
            self._closeSpools()
            return self.bad(None, "Invalid tag")
        try:
            reader.sp()
            name = reader.keyword()
            if name == "UID":
                reader.sp()
                name = "UID " + reader.keyword()
        except ParseError:
            self._closeSpools()
            if self.state == NOT_AUTHENTICATED:
                # The "tag" may be a password sent out of turn: not echoed.
                self._secretBeforeLogin()
                return self.bad(None, "Missing or invalid command name")
            return self.bad(tag, "Missing or invalid command name")
        command = COMMANDS.get(name)
        self.metrics.command(name if command is not None else None)
        if command is None or (command.extension and not self.extensionEnabled(command.extension)):
            self._closeSpools()
            self._secretBeforeLogin()
            return self.bad(tag, "Unknown command %s" % (name,))
        if self.state not in command.states:
            self._closeSpools()
            if self.state == NOT_AUTHENTICATED:
                hint = "log in first"
            elif NOT_AUTHENTICATED in command.states:
                hint = "already logged in"
            else:
                hint = "select a mailbox first"
            return self.bad(tag, "%s not valid in this state (%s)" % (name, hint))
        try:
            args = ()
            if command.parser is not None:
                reader.sp()
                args = command.parser(reader)
            reader.end()
        except ParseError as e:
            self._closeSpools()
            return self.bad(tag, "%s: %s" % (name, e))
        self._run(tag, name, command, args)

    def _run(self, tag, name, command, args):
        self.notifyCommandStarted(name, args)  # NOTIFY: its own changes are not told
        try:
            result = getattr(self, command.method)(tag, *args)
        except Exception:
            result = self.failureResult(Failure(), name)
        if isinstance(result, defer.Deferred):
            result.addErrback(self.failureResult, name)
            result.addCallback(lambda r: self._complete(tag, name, r))
        else:
            result = self._complete(tag, name, result)
        self.holdUnlessDone(result, tag)

    def failureResult(self, failure, name):
        """The response for a command that raised: NO, BAD, or NO [SERVERBUG]."""
        error = failure.value
        if isinstance(error, (ConnectionLost, ConnectionDone)):
            # A streamed response stopped by the transport: the client is gone,
            # and commands pipelined behind it must not run.
            self._closing = True
            return None
        if isinstance(error, Refusal):
            if error.status == "BAD":
                self.countBad()
            return (error.status, error.code, error.text)
        if isinstance(error, ParseError):
            self.countBad()
            return ("BAD", None, str(error))
        if isNoSpace(error):
            # RFC 5530 OVERQUOTA, with Dovecot's text for a full disk.
            log.error("imap {peer}: {command}: not enough disk space ({error})",
                      peer=self.peerText(), command=name, error=error)
            self.metrics.error(STORAGE_ERROR)
            return ("NO", "OVERQUOTA", "Not enough disk space")
        if isinstance(error, OSError):
            # The environment failed (I/O error, permissions), not our code:
            # one line in the log names it.
            log.error("imap {peer}: {command} failed: {error}", peer=self.peerText(),
                      command=name, error=error)
            self.metrics.error(STORAGE_ERROR)
            return ("NO", "SERVERBUG", "Internal error")
        if isinstance(error, StoreError):
            code = None
            if isinstance(error, NoSuchMailbox):
                code = "TRYCREATE" if name in ("APPEND", "COPY", "MOVE", "UID COPY",
                                               "UID MOVE") else "NONEXISTENT"
            elif isinstance(error, MailboxExists):
                code = "ALREADYEXISTS"
            elif isinstance(error, (MailboxNotEmpty, InvalidMailboxName)):
                code = "CANNOT"
            elif isinstance(error, NoSuchMessage):
                code = "EXPUNGEISSUED"
            elif isinstance(error, MailboxInUse):
                code = "INUSE"  # another program holds a lock: try again later
            elif isinstance(error, StoreUnavailable):
                # The store's back end is gone for now (RFC 5530): one log line.
                log.error("imap {peer}: {command}: store unavailable: {error}",
                          peer=self.peerText(), command=name, error=error)
                self.metrics.error(STORAGE_ERROR)
                return ("NO", "UNAVAILABLE", "Mail storage is temporarily unavailable")
            # Store texts name mailboxes in Unicode: show them as the client
            # sends them (modified UTF-7), not as escapes of their characters.
            return ("NO", code, self.revision.errorText(str(error)) or "Failed")
        log.failure("imap {peer}: internal error in {command}", failure,
                    peer=self.peerText(), command=name)
        self.metrics.error(INTERNAL_ERROR)
        return ("NO", "SERVERBUG", "Internal error")

    def _complete(self, tag, name, result):
        """
        The tagged reply, after the untagged updates owed (in the selected
        state): a Deferred when the store's sync has not answered at once.
        """
        self._closeSpools()
        if self._closing or result is None:
            return None
        status, code, text = result
        status, code, text = self.clientBugCode(name, status, code, text)  # NOTIFY
        self.writeNotifications()  # NOTIFY: what waited for this command's end
        if self.state != SELECTED:
            self._tagged(tag, status, code, text)
            return None
        d = self.sendUpdates(allowExpunge=name not in NO_EXPUNGE)

        def failed(failure):
            if failure.check(StoreError, OSError):
                # E.g. dovecot-uidlist not a file: the command's own result
                # stands; the next sync retries.
                log.warn("imap {peer}: sync of {mailbox} failed: {error}",
                         peer=self.peerText(), mailbox=getattr(self.view, "store", None),
                         error=failure.value)
            else:
                log.failure("imap {peer}: sending updates failed", failure,
                            peer=self.peerText())

        return d.addErrback(failed).addCallback(
            lambda _: self._tagged(tag, status, code, text))

    def sendUpdates(self, allowExpunge=True):
        """
        Untagged EXISTS/EXPUNGE/FETCH owed to the client, at a command boundary,
        once the store is synced.

        @return: a Deferred firing when they are written.
        """
        view = self.view
        if view is None or self._closing:
            return defer.succeed(None)
        return view.sync().addCallback(self._writeUpdates, view, allowExpunge)

    def pushUpdates(self):
        """L{sendUpdates} outside a command (IDLE): a failure is logged."""
        d = self.sendUpdates(allowExpunge=True)
        d.addErrback(lambda f: log.failure("imap {peer}: sending updates failed", f,
                                           peer=self.peerText()))

    def _writeUpdates(self, _, view, allowExpunge):
        if view is not self.view or self._closing:
            return
        if view.validityChanged:
            log.warn("imap {peer}: UIDVALIDITY of {mailbox} changed", peer=self.peerText(),
                     mailbox=view.store.name)
            return self.bye(b"Mailbox UIDVALIDITY changed; please reconnect")
        for line in self.liveExpungeLines(view, allowExpunge):  # RFC 5267: before EXPUNGE
            self.write(line)
        for line in view.updates(allowExpunge, condstore=self.condstore, qresync=self.qresync,
                                 withUID=self.revision.fetchUpdatesCarryUID):
            self.write(line + b"\r\n")
        return self.liveUpdates(view)  # ADDTO/REMOVEFROM of live results (imap/context.py)

    # -- any state -----------------------------------------------------------

    def capabilities(self):
        caps = ["IMAP4rev1"]
        if rev2Offered(self.extensionEnabled):
            caps.append("IMAP4rev2")
        if self.state == NOT_AUTHENTICATED:
            if self.startTLSOffered():
                caps.append("STARTTLS")
            if not self.plaintextAllowed():
                caps.append("LOGINDISABLED")
            caps += ["AUTH=" + m for m in self.offeredMechanisms()]
        for name in EXTENSIONS:
            if name == "SASL-IR" and self.state != NOT_AUTHENTICATED:
                continue
            if name == "IMAP4REV2":
                continue  # beside IMAP4rev1, above
            if name == "QRESYNC" and not self._qresyncOffered():
                continue
            if name == "SEARCHRES" and not self.searchresEnabled():
                continue
            if name == "URL-PARTIAL" and not self.extensionEnabled("CATENATE"):
                continue  # the URLs it extends are CATENATE's
            if name in ("ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT") and not self.contextOffered(name):
                continue  # each needs what it extends (imap/context.py)
            if name == "SORT=DISPLAY" and not self.extensionEnabled("SORT"):
                continue  # RFC 5957 extends SORT: nothing without it
            if name == "LITERAL-" and self.extensionEnabled("LITERAL+"):
                continue  # RFC 7888: one or the other; LITERAL+ includes LITERAL-
            if name == "COMPRESS=DEFLATE" and (self.state == NOT_AUTHENTICATED or
                                               not compress.compressionAvailable(self.transport)):
                continue  # after login, as Dovecot; only where the listener can compress
            if name == "APPENDLIMIT":
                if self.extensionEnabled(name):
                    caps.append("APPENDLIMIT=%d" % (self.settings.maxLiteralSize,))
                continue
            caps.append(name)
        return [c for c in caps if self.extensionEnabled(c)]

    def _capabilityText(self):
        return " ".join(self.capabilities()).encode("ascii")

    def do_CAPABILITY(self, tag):
        self.untagged(b"CAPABILITY " + self._capabilityText())
        return ("OK", None, "CAPABILITY completed")

    def do_NOOP(self, tag):
        return ("OK", None, "NOOP completed")

    def do_LOGOUT(self, tag):
        self.untagged(b"BYE mailstack logging out")
        self._tagged(tag, "OK", None, "LOGOUT completed")
        self._closing = True
        self.state = LOGOUT
        self.transport.loseConnection()
        return None

    def do_ID(self, tag, fields):
        if fields:
            shown = " ".join("%s=%s" % (k.decode("ascii", "replace"),
                                        (v or b"NIL").decode("ascii", "replace"))
                             for k, v in list(fields.items())[:8])
            log.info("imap {peer}: client ID {fields}", peer=self.peerText(), fields=shown)
        self.untagged(b'ID ("name" "mailstack" "vendor" "mailstack")')
        return ("OK", None, "ID completed")

    # -- not authenticated ---------------------------------------------------

    def do_STARTTLS(self, tag):
        # RFC 3501 6.2.1: plaintext pipelined after it is dropped (the core).
        # Failed logins keep counting across STARTTLS, as in SMTP and POP3
        # (and Dovecot): the client is the same, TLS gives it no new budget.
        self.startTLS(tag)
        return None

    # -- authenticated state: COMPRESS (RFC 4978) --------------------------------

    def do_COMPRESS(self, tag, mechanism):
        """
        Answer OK uncompressed, then compress everything both ways (the
        listener's L{compress.CompressingProtocol}); NO as Dovecot 2.3 words
        it for a second COMPRESS or another mechanism. Octets the client sent
        after the command, before it could see the OK, are dropped (and
        counted in the log), as after STARTTLS: it cannot know how to send them.
        """
        if not compress.compressionAvailable(self.transport):
            return ("NO", None, "Compression is not available here")
        if self.transport.compressing:
            return ("NO", "COMPRESSIONACTIVE", "COMPRESSION=DEFLATE already enabled.")
        if mechanism != "DEFLATE":
            return ("NO", None, "Unknown compression mechanism.")
        discarded = self.dropInput()
        if discarded:
            log.info("imap {peer}: discarded {n} octets sent after COMPRESS before its OK",
                     peer=self.peerText(), n=discarded)
        self._tagged(tag, "OK", None, "Begin compression.")
        compress.startCompression(self.transport)
        return None


class IMAPFactory(Factory):
    """
    Builds L{IMAPServer} sessions for one listener.
    """

    protocol = IMAPServer

    def __init__(self, settings, portal, clock=None, cramAvailable=None):
        self.settings = settings
        self.portal = portal
        self.clock = clock
        self.cramAvailable = cramAvailable

    def buildProtocol(self, addr):
        p = IMAPServer(self.settings, self.portal, self.clock, self.cramAvailable)
        p.factory = self
        return p
