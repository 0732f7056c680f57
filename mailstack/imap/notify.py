"""
NOTIFY (RFC 5465): the client names the events it wants and where, and the
server tells it of them as they happen, during IDLE and outside it.

 - L{args_notify} parses C{NOTIFY NONE} and C{NOTIFY SET [STATUS] event-groups}
   into a L{NotifyRequest}.
 - L{Notifier} keeps one session's request alive: it listens to the
   account (L{IAccountListener}: mailboxes created, deleted, renamed,
   subscriptions) and to each mailbox its filters watch (L{IMailboxListener},
   the store's own change notification, which also carries SMTP deliveries
   and other programs' changes seen by the Maildir watcher). Changes queue
   here, coalesced per mailbox (one STATUS for a burst), and are written when
   the session may speak: at once between commands and during IDLE, else
   before the running command's tagged reply. Bounded: a filter naming more
   than L{MAX_NAMES} mailboxes or watching more than L{MAX_WATCHED} is
   refused with C{NO [NOTIFICATIONOVERFLOW]}; a queue over L{MAX_PENDING}
   entries is dropped with an untagged C{OK [NOTIFICATIONOVERFLOW]}, and
   notifications stop (as after NOTIFY NONE, RFC 5465 5.8).
 - L{NotifyCommands} (a mixin of the server) answers the command and pushes
   the selected mailbox's changes (SELECTED, SELECTED-DELAYED), with the
   MessageNew FETCH attributes for new messages.

What is sent follows Dovecot 2.3.19 (docs/imap.md has the session and the
differences kept on purpose).
"""

import collections
import weakref

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.logger import Logger
from zope.interface import implementer

from mailstack.imap.grammar.fetchspec import fetchAttributes
from mailstack.imap.grammar.reader import ParseError
from mailstack.imap.mailbox import DELIMITER, BadMailboxName, decodeName, encodeName
from mailstack.imap.output import ResponseStreamer
from mailstack.imap.response import Refusal, astring
from mailstack.storage import accountevents
from mailstack.storage.interfaces import IAccountListener, IMailboxListener, StoreError

log = Logger()

MESSAGE_NEW, MESSAGE_EXPUNGE, FLAG_CHANGE = "MessageNew", "MessageExpunge", "FlagChange"
MAILBOX_NAME, SUBSCRIPTION_CHANGE = "MailboxName", "SubscriptionChange"
MESSAGE_EVENTS = frozenset({MESSAGE_NEW, MESSAGE_EXPUNGE, FLAG_CHANGE, "AnnotationChange"})
SUPPORTED_EVENTS = (MESSAGE_NEW, MESSAGE_EXPUNGE, FLAG_CHANGE, MAILBOX_NAME, SUBSCRIPTION_CHANGE)
_KNOWN = {name.upper(): name for name in SUPPORTED_EVENTS + (
    "AnnotationChange", "MailboxMetadataChange", "ServerMetadataChange")}

SELECTED, SELECTED_DELAYED = "SELECTED", "SELECTED-DELAYED"
INBOXES, PERSONAL, SUBSCRIBED, SUBTREE, MAILBOXES = (
    "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES")

MAX_NAMES = 100       # mailbox names in one filter (Dovecot's limit too)
MAX_WATCHED = 1000    # mailboxes one session watches
MAX_PENDING = 1000    # notifications queued for one session
# Commands whose message numbers NOTIFY SELECTED MessageExpunge makes unsafe (RFC 5465 5.3).
MSN_COMMANDS = frozenset({"FETCH", "STORE", "COPY", "MOVE"})
# The session's own changes are not told back to it (RFC 5465 5: SHOULD): the
# commands that change mailboxes, and where their mailbox arguments stand.
OWN_LIST_CHANGES = {"CREATE": (0,), "DELETE": (0,), "RENAME": (0, 1), "SUBSCRIBE": (0,),
                    "UNSUBSCRIBE": (0,)}
OWN_MESSAGE_CHANGES = {"APPEND": (0,), "COPY": (1,), "MOVE": (1,), "UID COPY": (1,),
                       "UID MOVE": (1,)}


class Group:
    """One event group for mailboxes other than the selected one."""

    def __init__(self, filter, names, events):
        self.filter = filter
        self.names = names      # store names for SUBTREE and MAILBOXES
        self.events = events    # frozenset of event names

    def matches(self, name, subscriptions):
        if self.filter in (PERSONAL, INBOXES):
            return True  # one personal namespace; INBOXES as PERSONAL, as Dovecot does
        if self.filter == SUBSCRIBED:
            return name in subscriptions
        if self.filter == SUBTREE:
            return any(name == n or name.startswith(n + DELIMITER) for n in self.names)
        return name in self.names


class SelectedEvents:
    """The events wanted for the selected mailbox (SELECTED or SELECTED-DELAYED)."""

    def __init__(self, delayed, events, fetchAttributes):
        self.delayed = delayed
        self.events = events
        self.fetchAttributes = fetchAttributes


class NotifyRequest:
    """A parsed C{NOTIFY SET}: C{status}, C{selected} (or None), C{groups}, C{unsupported}."""

    def __init__(self, status, selected, groups, unsupported):
        self.status = status
        self.selected = selected
        self.groups = groups
        self.unsupported = unsupported


# -- grammar -----------------------------------------------------------------

def args_notify(reader):
    """C{NONE} -> (None,); C{SET [STATUS] event-groups} -> (L{NotifyRequest},)."""
    word = reader.keyword()
    if word == "NONE":
        return (None,)
    if word != "SET":
        raise ParseError("Expected SET or NONE")
    status = False
    groups, selected, unsupported = [], None, []
    first = True
    while not reader.atEnd():
        reader.sp()
        if first and reader.peek() != b"(":
            if reader.keyword() != "STATUS":
                raise ParseError("Expected STATUS or an event group")
            status = True
            first = False
            continue
        first = False
        reader.skip(b"(")
        filter = reader.keyword()
        names = None
        if filter in (SUBTREE, MAILBOXES):
            reader.sp()
            names = reader.parenthesized(reader.mailbox) if reader.peek() == b"(" else [
                reader.mailbox()]
            if not names:
                raise ParseError("Expected one or more mailbox names")
        elif filter not in (SELECTED, SELECTED_DELAYED, INBOXES, PERSONAL, SUBSCRIBED):
            raise ParseError("Unknown mailbox filter %s" % (filter,))
        reader.sp()
        events, attributes = _events(reader, filter in (SELECTED, SELECTED_DELAYED))
        reader.skip(b")")
        unsupported += [e for e in events if e not in SUPPORTED_EVENTS and e not in unsupported]
        if filter in (SELECTED, SELECTED_DELAYED):
            if selected is not None:
                raise ParseError("SELECTED and SELECTED-DELAYED: only one of them")
            selected = _selected(filter == SELECTED_DELAYED, events, attributes)
        elif events:
            groups.append((filter, names, frozenset(events)))
    return (NotifyRequest(status, selected, groups, unsupported),)


def _events(reader, selected):
    """C{"(" event *(SP event) ")" / NONE} -> (event names, MessageNew's fetch-atts)."""
    if reader.peek() != b"(":
        if reader.keyword() != "NONE":
            raise ParseError("Expected an event list or NONE")
        return [], None
    reader.skip(b"(")
    events, attributes = [], None
    while True:
        word = reader.atom().decode("ascii", "backslashreplace")
        name = _KNOWN.get(word.upper(), word)
        events.append(name)
        if name == MESSAGE_NEW and selected:
            mark = reader.mark()
            if reader.peek() == b" ":
                reader.sp()
                if reader.peek() == b"(":
                    attributes = fetchAttributes(reader, extra=("MODSEQ",))
                else:
                    reader.rewind(mark)
        if reader.trySkip(b")"):
            break
        reader.sp()
    if not events:
        raise ParseError("Empty event list")
    return events, attributes


def _selected(delayed, events, attributes):
    """RFC 5465 5 and 6.1: what SELECTED and SELECTED-DELAYED may hold."""
    wanted = frozenset(events)
    if wanted & {MAILBOX_NAME, SUBSCRIPTION_CHANGE}:
        raise ParseError("Only message events go with SELECTED")
    if (MESSAGE_NEW in wanted) != (MESSAGE_EXPUNGE in wanted):
        raise ParseError("MessageNew and MessageExpunge must be together")
    if FLAG_CHANGE in wanted and MESSAGE_NEW not in wanted:
        raise ParseError("FlagChange requires MessageNew and MessageExpunge")
    return SelectedEvents(delayed, wanted, attributes)


# -- the session's notifications -----------------------------------------------

@implementer(IAccountListener, IMailboxListener)
class Notifier:
    """
    One session's NOTIFY SET for mailboxes other than the selected one.

    @param session: the L{NotifyCommands} server (its C{account}, C{view},
        C{condstore}, C{clock} and C{notificationsReady}).
    """

    def __init__(self, session, groups):
        self.session = session
        self.groups = groups
        self.account = session.account
        self.watched = {}       # name -> IMailboxStore
        self.unseen = {}        # name -> UNSEEN when last told
        self.queue = collections.OrderedDict()  # key -> line, or [name, kinds] for STATUS
        self._serial = 0
        self.stopped = False

    # -- which mailboxes -------------------------------------------------------

    _subscribed = None

    def subscriptions(self):
        """
        The subscribed names, when a SUBSCRIBED filter needs them: read once,
        then again after each subscription change the account tells of.
        """
        if not any(g.filter == SUBSCRIBED for g in self.groups):
            return ()
        if self._subscribed is None:
            self._subscribed = set(self.account.store.subscriptions())
        return self._subscribed

    def eventsFor(self, name, subscriptions=None):
        if subscriptions is None:
            subscriptions = self.subscriptions()
        events = set()
        for group in self.groups:
            if group.matches(name, subscriptions):
                events |= group.events
        return events

    def wantsMessages(self, name, subscriptions=None):
        return bool(self.eventsFor(name, subscriptions) & MESSAGE_EVENTS)

    def statusNames(self):
        """Existing mailboxes whose message events are wanted, in LIST order."""
        subscriptions = self.subscriptions()
        return [name for name in self.account.store.listMailboxes()
                if self.wantsMessages(name, subscriptions)]

    @defer.inlineCallbacks
    def start(self):
        """Listen to the account and open and watch the mailboxes wanted."""
        names = self.statusNames()
        if len(names) > MAX_WATCHED:
            raise Refusal("Too many mailboxes to watch (limit %d)" % (MAX_WATCHED,),
                          "NOTIFICATIONOVERFLOW")
        self.account.store.addAccountListener(self)
        for name in names:
            yield self._watch(name)

    def _watch(self, name):
        if name in self.watched or self.stopped:
            return defer.succeed(None)

        def opened(mailbox):
            if self.stopped or name in self.watched:
                return
            self.watched[name] = mailbox
            self.unseen[name] = counts(mailbox)[1]
            mailbox.addListener(self)

        def failed(failure):
            failure.trap(StoreError)  # gone meanwhile, or locked: not watched
        return self.account.openMailbox(name).addCallbacks(opened, failed)

    def _unwatch(self, name):
        mailbox = self.watched.pop(name, None)
        self.unseen.pop(name, None)
        if mailbox is not None:
            mailbox.removeListener(self)

    def stop(self):
        """Stop listening (NOTIFY NONE, a new NOTIFY SET, logout, overflow)."""
        self.stopped = True
        self.account.store.removeAccountListener(self)
        for name in list(self.watched):
            self._unwatch(name)
        self.queue.clear()

    # -- changes -------------------------------------------------------------

    def mailboxChanged(self, mailbox, changes):
        name = mailbox.name
        if self.stopped or self.watched.get(name) is not mailbox:
            return
        if getattr(mailbox, "gone", False):
            return self._unwatch(name)  # the account tells of the delete or rename
        view = self.session.view
        if view is not None and view.store is mailbox:
            return  # the selected mailbox: SELECTED's business
        wanted = self.eventsFor(name)
        kinds = set()
        if changes.added and self.session.ownChange(OWN_MESSAGE_CHANGES, name):
            changes = type(changes)(expunged=changes.expunged, flagsChanged=changes.flagsChanged)
        if changes.added and MESSAGE_NEW in wanted:
            kinds.add("count")
        if changes.expunged and MESSAGE_EXPUNGE in wanted:
            kinds.add("count")
        if changes.flagsChanged and FLAG_CHANGE in wanted:
            kinds.add("flags")
        if kinds:
            self._queueStatus(name, kinds)

    def mailboxesChanged(self, changes):
        if self.stopped:
            return
        for change in changes:
            if change.kind in (accountevents.SUBSCRIBED, accountevents.UNSUBSCRIBED):
                self._subscribed = None
            if self.session.ownChange(OWN_LIST_CHANGES, change.name, change.oldName):
                self._rewatch(change.name)  # still watched, only not told
                if change.oldName is not None:
                    self._unwatch(change.oldName)
                continue
            self._listChange(change)

    def _listChange(self, change):
        name = change.name
        if change.kind in (accountevents.SUBSCRIBED, accountevents.UNSUBSCRIBED):
            self._subscribed = None
            if SUBSCRIPTION_CHANGE in self.eventsFor(name) or SUBSCRIPTION_CHANGE in (
                    self._subscribedGroupEvents()):
                attributes = [] if change.kind == accountevents.UNSUBSCRIBED else [
                    "\\Subscribed"]
                self._queueLine(listLine(attributes, name, self.session.notifyName))
            self._rewatch(name)
            return
        if change.kind == accountevents.DELETED:
            if MAILBOX_NAME in self.eventsFor(name):
                self._queueLine(listLine(["\\NonExistent"], name, self.session.notifyName))
            self._unwatch(name)
            return
        if change.kind == accountevents.RENAMED:
            if MAILBOX_NAME in self.eventsFor(name) | self.eventsFor(change.oldName):
                self._queueLine(listLine([], name, self.session.notifyName)
                                + b' ("OLDNAME" (%s))' % (self.session.notifyName(change.oldName),))
            self._unwatch(change.oldName)
        elif MAILBOX_NAME in self.eventsFor(name):
            self._queueLine(listLine([], name, self.session.notifyName))
        self._rewatch(name)

    def _subscribedGroupEvents(self):
        events = set()
        for group in self.groups:
            if group.filter == SUBSCRIBED:
                events |= group.events
        return events

    def _rewatch(self, name):
        """A mailbox appeared or its subscription changed: watch it if now wanted."""
        if not self.account.store.hasMailbox(name) or not self.wantsMessages(name):
            return self._unwatch(name)
        if name not in self.watched:
            if len(self.watched) >= MAX_WATCHED:
                return self.overflow()
            self._watch(name)

    # -- the queue -------------------------------------------------------------

    def _queueLine(self, line):
        self._serial += 1
        self.queue[("line", self._serial)] = line
        self._queued()

    def _queueStatus(self, name, kinds):
        entry = self.queue.get(("status", name))
        if entry is None:
            self.queue[("status", name)] = [name, set(kinds)]
        else:
            entry[1] |= kinds  # coalesced: one STATUS for a burst
        self._queued()

    def _queued(self):
        if len(self.queue) > MAX_PENDING:
            return self.overflow()
        self.session.notificationsReady()

    def overflow(self):
        """Too much to tell: drop it all and stop, as after NOTIFY NONE (RFC 5465 5.8)."""
        self.stop()
        self.session.notificationsOverflowed()

    def pendingLines(self):
        """The queued notifications as lines (without CRLF), emptying the queue."""
        lines = []
        queue, self.queue = self.queue, collections.OrderedDict()
        for key, entry in queue.items():
            if key[0] == "line":
                lines.append(entry)
                continue
            line = self._statusLine(*entry)
            if line is not None:
                lines.append(line)
        return lines

    def _statusLine(self, name, kinds):
        """The STATUS Dovecot sends for a change (items as in its imap-notify.c)."""
        mailbox = self.watched.get(name)
        if mailbox is None:
            return None
        count, unseen = counts(mailbox)
        items = []
        if "count" in kinds:
            items += [("MESSAGES", count), ("UIDNEXT", mailbox.uidNext),
                      ("UNSEEN", unseen)]
        elif unseen != self.unseen.get(name):
            items.append(("UNSEEN", unseen))
        self.unseen[name] = unseen
        if self.session.condstore:
            items.append(("HIGHESTMODSEQ", mailbox.highestModseq))
        if not items:
            return None  # a flag change other than \Seen, without CONDSTORE
        return statusLine(name, items, self.session.notifyName)


def wireName(name):
    """A store name in modified UTF-7, an atom where it can be, as Dovecot writes it."""
    return astring(encodeName(name))


def listLine(attributes, name, nameString=wireName):
    """C{* LIST (attributes) "/" name}."""
    return b'* LIST (%s) "%s" %s' % (" ".join(attributes).encode("ascii"),
                                     DELIMITER.encode("ascii"), nameString(name))


def statusLine(name, values, nameString=wireName):
    """C{* STATUS name (ITEM n ...)}."""
    return b"* STATUS %s (%s)" % (nameString(name), b" ".join(
        b"%s %d" % (item.encode("ascii"), value) for item, value in values))


# mailbox -> ((uidValidity, highestModseq), MESSAGES, UNSEEN): computed once per change
# for all the sessions that tell of it, not once per session.
_COUNTS = weakref.WeakKeyDictionary()


def counts(mailbox):
    """C{(MESSAGES, UNSEEN)} of C{mailbox} as of its last sync."""
    state = (mailbox.uidValidity, mailbox.highestModseq)
    known = _COUNTS.get(mailbox)
    if known is not None and known[0] == state:
        return known[1], known[2]
    messages = mailbox.messages()
    unseen = sum(1 for info in messages if "\\Seen" not in info.flags)
    _COUNTS[mailbox] = (state, len(messages), unseen)
    return len(messages), unseen


# -- the command and the session hooks ----------------------------------------------

class NotifyCommands:
    """
    NOTIFY for L{mailstack.imap.server.IMAPServer} (a mixin: uses the
    server's C{account}, C{view}, C{clock}, C{write}...).
    """

    notifier = None
    notifySelected = None
    _notifyCall = None
    _notifyOwn = None
    _pushing = None  # MessageNew's FETCH responses streaming: a list of waiters

    @defer.inlineCallbacks
    def do_NOTIFY(self, tag, request):
        if request is None:
            self.stopNotify()
            return ("OK", None, "NOTIFY completed")
        if request.unsupported:
            raise Refusal("Unsupported NOTIFY events: %s" % (" ".join(request.unsupported),),
                          "BADEVENT (%s)" % (" ".join(SUPPORTED_EVENTS),))
        groups = []
        for filter, wireNames, events in request.groups:
            if wireNames is not None and len(wireNames) > MAX_NAMES:
                raise Refusal("Too many mailbox names (limit %d)" % (MAX_NAMES,),
                              "NOTIFICATIONOVERFLOW")
            groups.append(Group(filter, self._notifyNames(wireNames), events))
        selected = request.selected
        if selected is not None and selected.fetchAttributes:
            self._checkNotifyFetch(selected.fetchAttributes)
        self.stopNotify()
        notifier = Notifier(self, groups)
        if groups:
            yield notifier.start()
        if self._closing:
            notifier.stop()
            return None
        self.notifier = notifier if groups else None
        self.notifySelected = selected
        if request.status:
            yield self._notifyStatus(notifier, any(FLAG_CHANGE in g.events for g in groups))
        return ("OK", None, "NOTIFY completed")

    def _notifyNames(self, wireNames):
        if wireNames is None:
            return None
        names = []
        for wire in wireNames:
            try:
                names.append(self.notifyDecode(wire))
            except BadMailboxName:
                continue  # names no mailbox: nothing to watch
        return frozenset(names)

    def notifyName(self, name):
        """A mailbox name in a notification: UTF-8 once the session enabled it (IMAP4rev2, UTF8=ACCEPT)."""
        revision = getattr(self, "revision", None)
        if revision is not None and revision.utf8Names:
            return revision.nameString(name)
        return wireName(name)

    def notifyDecode(self, wire):
        """A mailbox name the client sent, as the session reads names (L{BadMailboxName} if none)."""
        revision = getattr(self, "revision", None)
        if revision is not None:
            return revision.decodeName(wire)
        return decodeName(wire)

    def _checkNotifyFetch(self, attributes):
        """MessageNew's FETCH attributes: nothing that sets \\Seen (RFC 5465 5.2)."""
        self._checkPreview(attributes)
        if not self.extensionEnabled("BINARY") and any(a.binary for a in attributes):
            raise Refusal("BINARY is not available here", status="BAD")
        if any((a.isBody or a.binary) and not a.peek for a in attributes):
            raise Refusal("MessageNew FETCH attributes must not set \\Seen (use BODY.PEEK)",
                          status="BAD")
        if any(a.name == "MODSEQ" for a in attributes):
            self.enableCondstore()

    @defer.inlineCallbacks
    def _notifyStatus(self, notifier, flagChange):
        """NOTIFY SET STATUS: a STATUS of each watched mailbox but the selected one."""
        items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]
        if flagChange:
            self.enableCondstore()  # as Dovecot: HIGHESTMODSEQ comes with CONDSTORE on
            items.append("HIGHESTMODSEQ")
        for name in notifier.statusNames():
            if self._selectedView(name) is not None:
                continue
            try:
                values = yield self.account.status(name, items)
            except StoreError:
                continue
            if self._closing:
                return
            self.write(statusLine(name, values, self.notifyName) + b"\r\n")
            notifier.unseen[name] = dict(values)["UNSEEN"]

    def stopNotify(self):
        """NOTIFY NONE (also at logout): no more notifications."""
        notifier, self.notifier = self.notifier, None
        self.notifySelected = None
        if notifier is not None:
            notifier.stop()
        if self._notifyCall is not None and self._notifyCall.active():
            self._notifyCall.cancel()
        self._notifyCall = None

    # -- when to speak ---------------------------------------------------------

    def mayNotifyNow(self):
        """Between commands, or during IDLE: unsolicited responses go out at once."""
        if self._closing or self.state not in ("authenticated", "selected"):
            return False
        if self._pushing is not None:
            return False  # not inside MessageNew's FETCH responses; L{_pushed} calls again
        if self._idle is not None:
            return True
        return not self.inputHeld() and not self._parts and self._literal is None

    def notificationsReady(self):
        """The notifier queued something: write it at once if the session may speak."""
        if self._notifyCall is None:
            self._notifyCall = self.clock.callLater(0, self._notifyNow)

    def _notifyNow(self):
        self._notifyCall = None
        if self.mayNotifyNow():
            self.writeNotifications()

    def notifyCommandStarted(self, name, args):
        """
        A command begins: note the mailboxes it changes, so that their
        changes are not told back to this session (L{ownChange}).
        """
        self._notifyOwn = None
        positions = OWN_LIST_CHANGES.get(name) or OWN_MESSAGE_CHANGES.get(name)
        if self.notifier is None or positions is None:
            return
        names = set()
        for i in positions:
            try:
                names.add(self.notifyDecode(args[i]).rstrip(DELIMITER))
            except (BadMailboxName, IndexError, TypeError, AttributeError):
                continue
        self._notifyOwn = (name, names)

    def ownChange(self, commands, name, oldName=None):
        """Whether a change to C{name} (or from C{oldName}) is the running command's own."""
        own = self._notifyOwn
        if own is None or own[0] not in commands:
            return False
        for mine in own[1]:
            for changed in (name, oldName):
                if changed is not None and (changed == mine or changed.startswith(mine + DELIMITER)
                                            or mine.startswith(changed + DELIMITER)):
                    return True
        return False

    def writeNotifications(self):
        """Write what the notifier queued (before a tagged reply, or unsolicited)."""
        self._notifyOwn = None  # the command is over
        notifier = self.notifier
        if notifier is None or self._closing:
            return
        for line in notifier.pendingLines():
            self.write(line + b"\r\n")

    def notificationsOverflowed(self):
        self.notifier = None
        self.notifySelected = None
        self.write(b"* OK [NOTIFICATIONOVERFLOW] Too many notifications; NOTIFY is off now\r\n")

    # -- the selected mailbox ----------------------------------------------------

    def notifyingSelected(self):
        """Whether the selected mailbox's changes are pushed outside IDLE too."""
        selected = self.notifySelected
        return selected is not None and bool(selected.events)

    def pushSelected(self):
        """
        The selected mailbox's changes, unsolicited (IDLE, or NOTIFY SELECTED):
        expunges held back under SELECTED-DELAYED outside IDLE; MessageNew's
        FETCH attributes for the new messages after their EXISTS.
        """
        view = self.view
        selected = self.notifySelected
        if view is None or self._closing:
            return
        idle = self._idle is not None
        if not idle and selected is not None and FLAG_CHANGE not in selected.events and (
                not view.countPending()):
            return  # flag changes only, not asked for: they wait for a command (RFC 5465 5.1)
        if self._pushing is not None:
            return  # the stream under way ends with another look (L{_pushed})
        allowExpunge = idle or selected is None or not selected.delayed
        lastUID = view.uids[-1] if view.uids else 0
        d = self.sendUpdates(allowExpunge=allowExpunge)
        if selected is not None and selected.fetchAttributes:
            d.addCallback(lambda _: self._fetchNew(view, lastUID, selected.fetchAttributes))
        d.addErrback(lambda f: log.failure("imap {peer}: sending updates failed", f,
                                           peer=self.peerText()))

    def _fetchNew(self, view, lastUID, attributes):
        """
        Stream the FETCH responses of the messages after C{lastUID} as FETCH
        does (L{ResponseStreamer}: paused while the client does not read, a
        burst per reactor turn, a literal read a chunk at a time), taking no
        command and ending no IDLE meanwhile (L{whenPushed}), so nothing
        lands inside a literal.
        """
        if view is not self.view or self._closing:
            return
        work = [(number, uid) for number, uid in enumerate(view.uids, 1)
                if uid > lastUID and not view.isExpunged(uid)]
        if not work:
            return
        self._pushing = []
        streamer = ResponseStreamer(self.transport, self.clock, self.resetTimeout)
        d = streamer.start(self._fetchPieces(work, attributes, (), collections.Counter()))
        d.addErrback(self._pushFailed)
        d.addBoth(self._pushed)
        self.holdUnlessDone(d)

    def _pushFailed(self, failure):
        if not self._closing and not failure.check(ConnectionLost):
            log.failure("imap {peer}: streaming MessageNew's FETCH failed", failure,
                        peer=self.peerText())

    def _pushed(self, _):
        waiters, self._pushing = self._pushing or [], None
        for waiter in waiters:
            waiter.callback(None)
        if not self._closing:
            self._changesArrived()  # what came meanwhile
            self.notificationsReady()  # what the notifier queued meanwhile

    def whenPushed(self):
        """A Deferred firing once MessageNew's FETCH responses under way are written."""
        if self._pushing is None:
            return defer.succeed(None)
        d = defer.Deferred()
        self._pushing.append(d)
        return d

    def clientBugCode(self, name, status, code, text):
        """
        OK [CLIENTBUG] for a command by message number while SELECTED
        MessageExpunge can renumber messages at any time (RFC 5465 5.3).
        """
        selected = self.notifySelected
        if (status == "OK" and code is None and name in MSN_COMMANDS and selected is not None
                and not selected.delayed and MESSAGE_EXPUNGE in selected.events):
            return ("OK", "CLIENTBUG",
                    text + " (message numbers may have changed: use UID commands with NOTIFY)")
        return (status, code, text)
