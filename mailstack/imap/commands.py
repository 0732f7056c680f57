"""
The authenticated- and selected-state IMAP commands, as a mixin of
L{mailstack.imap.server.IMAPServer} (which owns framing, states and dispatch).

Each C{do_*} method gets the tag and the parsed arguments and returns
C{(status, code, text)} for the tagged reply, or a Deferred firing with one
(FETCH streams its responses; IDLE waits for DONE). Untagged responses are
written as they are produced; the server adds pending EXISTS/EXPUNGE/FETCH
updates before the tagged reply.
"""

import collections

from twisted.internet import defer
from twisted.logger import Logger

from mailstack.imap import append, cooperative, esearch, fetch, listing, objectid, preview, search
from mailstack.imap import idlepoll
from mailstack.imap.grammar.fetchspec import FetchAttribute
from mailstack.imap.grammar.reader import SYSTEM_FLAGS
from mailstack.imap.mailbox import (
    DELIMITER, BadMailboxName, MailboxView, formatListLine, statusLine)
from mailstack.imap.output import ResponseStreamer
from mailstack.imap import metadata
from mailstack.imap.response import (
    Refusal, formatFlags, formatInternalDate, formatSequenceSet, string)
from mailstack.storage.interfaces import NoSuchMessage, StoreError

log = Logger()

FETCH_CACHE_SIZE = 16
_STRUCTURE_ITEMS = ("BODY", "BODYSTRUCTURE", "PREVIEW", "SNIPPET")
_HEADER_ITEMS = ("ENVELOPE", "RFC822.HEADER", "RFC822.TEXT")


def _joinBytes(pieces):
    """
    Merge runs of bytes pieces of a response (file ranges stay apart): the
    same octets in fewer transport writes.
    """
    out, run = [], []
    for piece in pieces:
        if isinstance(piece, bytes):
            run.append(piece)
            continue
        if run:
            out.append(b"".join(run))
            run = []
        out.append(piece)
    if run:
        out.append(b"".join(run))
    return out


def _checkFlags(flags):
    """
    Refuse unknown system flags, and \\Recent: only the server sets it (RFC
    3501 2.3.2: the client cannot alter it; Dovecot answers BAD too).
    """
    for flag in flags:
        if flag == "\\Recent":
            raise Refusal("Invalid system flag \\Recent (only the server sets it)", status="BAD")
        if flag.startswith("\\") and flag not in SYSTEM_FLAGS:
            raise Refusal("Invalid system flag %s" % (flag,), status="BAD")
    return set(flags)


class MailboxCommands:
    """
    Commands over the account and the selected mailbox (a mixin: uses the
    server's C{account}, C{view}, C{state}, C{write}, C{untagged}...).
    """

    # -- helpers -------------------------------------------------------------

    def _name(self, wire):
        try:
            return self.revision.decodeName(wire)  # modified UTF-7, or UTF-8 once enabled
        except BadMailboxName as e:
            raise Refusal(str(e), "CANNOT")

    def _deselect(self):
        self.savedResult = ()  # RFC 5182: $ is per selected mailbox
        self.closeLiveResults()  # RFC 5267: live results end with the mailbox
        if self.view is not None:
            self.view.close()
            self.view = None
        self.fetchCache.clear()
        if self.state == "selected":
            self.state = "authenticated"

    def _changesArrived(self):
        """The store told the view of changes: push them now if IDLE (or NOTIFY SELECTED)."""
        if (self._idle is not None or self.notifyingSelected()) and self._idleFlush is None:
            self._idleFlush = self.clock.callLater(0, self._flushIdle)

    _idleFlush = None
    _idlePoll = None

    def _flushIdle(self):
        self._idleFlush = None
        if self.view is not None and (self._idle is not None or (
                self.notifyingSelected() and self.mayNotifyNow())):
            self.view.trustNews = True  # the store has just synced: no second sync each
            self.pushSelected()  # imap/notify.py: MessageNew's FETCH, SELECTED-DELAYED

    def _indices(self, messages, byUID):
        view = self.view
        if messages.saved:
            return self._resolveSaved(messages).uidIndices(view.uids)
        if byUID:
            return messages.uidIndices(view.uids)
        return messages.sequenceIndices(len(view))

    # -- authenticated state -------------------------------------------------

    def do_SELECT(self, tag, mailbox, params=None):
        return self._select(mailbox, readOnly=False, params=params or {})

    def do_EXAMINE(self, tag, mailbox, params=None):
        return self._select(mailbox, readOnly=True, params=params or {})

    @defer.inlineCallbacks
    def _select(self, wire, readOnly, params):
        self.checkSelectParameters(params)
        name = self._name(wire)
        self.closedResponse()
        self._deselect()
        store = yield self.account.openMailbox(name)
        view = yield MailboxView.open(store, readOnly, notify=self._changesArrived)
        if self._closing:
            view.close()
            return None
        view.showRecent = self.revision.showsRecent
        infos = view.initialInfos
        for line in view.flagListLines():
            self.write(line + b"\r\n")
        self.untagged(b"%d EXISTS" % (len(view),))
        if self.revision.showsRecent:
            self.untagged(b"%d RECENT" % (view.recentCount(),))
        # The view's sequence is the UIDs of these infos, in their order.
        for number, info in enumerate(infos if self.revision.selectGivesUnseen else (), 1):
            if "\\Seen" not in info.flags:
                self.untagged(b"OK [UNSEEN %d] Message %d is the first unseen" % (number, number))
                break
        if self.revision.selectListsMailbox:
            self._selectedListLine(store.name)
        self.untagged(b"OK [UIDVALIDITY %d] UIDs valid" % (store.uidValidity,))
        self.untagged(b"OK [UIDNEXT %d] Predicted next UID" % (store.uidNext,))
        if self.extensionEnabled("OBJECTID"):
            self.untagged(b"OK [%s] Ok" % (objectid.responseCode(store).encode("ascii"),))
        view.noteReported()
        self.view = view
        self.state = "selected"
        self.selectResponses(params)
        if readOnly:
            return ("OK", "READ-ONLY", "EXAMINE completed")
        return ("OK", "READ-WRITE", "SELECT completed")

    def _selectedListLine(self, name):
        """IMAP4rev2's SELECT: the mailbox's LIST line, its attributes as LIST gives them."""
        for attributes, found, _ in self.account.listMailboxes(
                "", [name], specialUse=self.extensionEnabled("SPECIAL-USE")):
            if found == name:
                self.write(formatListLine("LIST", attributes, name,
                                          nameString=self.revision.nameString) + b"\r\n")

    def do_CREATE(self, tag, mailbox, uses=None):
        name = self._name(mailbox)
        if uses is not None:
            if not self.extensionEnabled("CREATE-SPECIAL-USE"):
                raise Refusal("CREATE parameters are not available", status="BAD")
            unknown = [use for use in uses if use not in listing.USE_ATTRIBUTES]
            if unknown:
                return ("NO", "USEATTR", "Unsupported special use %s" % (unknown[0],))
        if name.rstrip(DELIMITER) == "INBOX":
            return ("NO", "ALREADYEXISTS", "INBOX always exists")
        self.revision.checkNewName(name)  # UTF-8 names: Net-Unicode only (RFC 9051 5.1)
        d = self.account.store.createMailbox(name)
        if uses:
            d.addCallback(lambda _: self.account.store.setSpecialUse(
                name.rstrip(DELIMITER), uses))
        return d.addCallback(self._created, name.rstrip(DELIMITER))

    def _created(self, _, name):
        """CREATE's OK, with the new mailbox's MAILBOXID (OBJECTID, RFC 8474)."""
        if not self.extensionEnabled("OBJECTID"):
            return ("OK", None, "CREATE completed")

        def opened(mailbox):
            return ("OK", objectid.responseCode(mailbox), "CREATE completed")

        def unopened(failure):
            failure.trap(StoreError)  # gone meanwhile: OK without the code
            return ("OK", None, "CREATE completed")
        return self.account.openMailbox(name).addCallbacks(opened, unopened)

    def do_DELETE(self, tag, mailbox):
        name = self._name(mailbox)
        d = self.account.store.deleteMailbox(name)
        d.addCallback(lambda _: ("OK", None, "DELETE completed"))
        return d.addErrback(self.revision.deleteRefused, name)  # IMAP4rev2: [HASCHILDREN]

    def do_RENAME(self, tag, old, new):
        new = self._name(new)
        self.revision.checkNewName(new)  # UTF-8 names: Net-Unicode only (RFC 9051 5.1)
        d = self.account.store.renameMailbox(self._name(old), new)
        return d.addCallback(lambda _: ("OK", None, "RENAME completed"))

    def do_SUBSCRIBE(self, tag, mailbox):
        d = self.account.store.subscribe(self._name(mailbox))
        return d.addCallback(lambda _: ("OK", None, "SUBSCRIBE completed"))

    def do_UNSUBSCRIBE(self, tag, mailbox):
        d = self.account.store.unsubscribe(self._name(mailbox))
        return d.addCallback(lambda _: ("OK", None, "UNSUBSCRIBE completed"))

    def _listArguments(self, reference, pattern):
        if len(reference) + len(pattern) > self.settings.maxLineLength:
            # Only a literal can carry one this long; no mailbox name is.
            raise Refusal("Mailbox pattern too long (limit %d octets)"
                          % (self.settings.maxLineLength,), status="BAD")
        reference, pattern = (self.revision.decodePattern(reference),
                              self.revision.decodePattern(pattern))
        return None if reference is None or pattern is None else (reference, pattern)

    def _listRoot(self, command, reference):
        root = b""
        if DELIMITER.encode() in reference:
            root = reference.split(DELIMITER.encode(), 1)[0] + DELIMITER.encode()
        self.untagged(b'%s (\\Noselect) "/" %s' % (command, string(root)))

    @defer.inlineCallbacks
    def do_LIST(self, tag, command):
        if command.extended and not self.extensionEnabled("LIST-EXTENDED"):
            raise Refusal("LIST options are not available (no LIST-EXTENDED)", status="BAD")
        if command.statusItems and not self.extensionEnabled("LIST-STATUS"):
            raise Refusal("LIST RETURN (STATUS) is not available", status="BAD")
        if "SPECIAL-USE" in command.selection | command.returns and not self.extensionEnabled(
                "SPECIAL-USE"):
            raise Refusal("SPECIAL-USE is not available", status="BAD")
        self._checkStatusItems(command.statusItems)
        patterns = [p for p in command.patterns if p]
        if not patterns:
            self._listRoot(b"LIST", command.reference)
            return ("OK", None, "LIST completed")
        decoded = [self._listArguments(command.reference, p) for p in patterns]
        decoded = [d for d in decoded if d is not None]
        if not decoded:
            return ("OK", None, "LIST completed")
        entries = self.account.listMailboxes(
            decoded[0][0], [d[1] for d in decoded], selection=command.selection,
            returns=command.returns, extended=command.extended,
            specialUse=self.extensionEnabled("SPECIAL-USE"),
            children=self.revision.listChildren(self.extensionEnabled("CHILDREN")))
        for attributes, name, childInfo in entries:
            self.write(formatListLine("LIST", attributes, name, childInfo,
                                      nameString=self.revision.nameString) + b"\r\n")
            if (command.statusItems and "\\Noselect" not in attributes
                    and "\\NonExistent" not in attributes):
                yield self._listStatus(name, command.statusItems)
        return ("OK", None, "LIST completed")

    def _listStatus(self, name, items):
        """LIST-STATUS (RFC 5819): a STATUS line after the mailbox's LIST line."""
        d = self.account.status(name, items, self._selectedView(name))

        def found(values):
            self.write(statusLine(name, values, self.revision.nameString) + b"\r\n")

        def failed(failure):
            failure.trap(StoreError)  # gone meanwhile, or unreadable: no STATUS for it
        return d.addCallbacks(found, failed)

    def _selectedView(self, name):
        view = self.view
        return view if view is not None and view.store.name == name else None

    def _checkStatusItems(self, items):
        self.revision.checkStatusItems(items)  # RECENT in IMAP4rev1, DELETED in IMAP4rev2
        if "SIZE" in items and not self.extensionEnabled("STATUS=SIZE"):
            raise Refusal("STATUS SIZE is not available (no STATUS=SIZE)", status="BAD")
        if "MAILBOXID" in items and not self.extensionEnabled("OBJECTID"):
            raise Refusal("STATUS MAILBOXID is not available (no OBJECTID)", status="BAD")
        if "HIGHESTMODSEQ" in items:
            self.enableCondstore()

    def do_LSUB(self, tag, reference, pattern):
        if not pattern:
            self._listRoot(b"LSUB", reference)
            return ("OK", None, "LSUB completed")
        decoded = self._listArguments(reference, pattern)
        if decoded is not None:
            for attributes, name in self.account.listSubscribed(*decoded):
                self.write(formatListLine("LSUB", attributes, name,
                                          nameString=self.revision.nameString) + b"\r\n")
        return ("OK", None, "LSUB completed")

    def do_STATUS(self, tag, mailbox, items):
        self._checkStatusItems(items)
        name = self._name(mailbox)
        d = self.account.status(name, items, self._selectedView(name))

        def found(values):
            self.write(statusLine(name, values, self.revision.nameString) + b"\r\n")
            return ("OK", None, "STATUS completed")
        return d.addCallback(found)

    def do_APPEND(self, tag, mailbox, messages):
        """
        APPEND, MULTIAPPEND and CATENATE: L{append.Append} does the work
        (durable, all or nothing, APPENDUID when the UIDs are known).
        """
        name = self._name(mailbox)
        for message in messages:
            _checkFlags(message.flags)
            if message.utf8 or any(part.utf8 for part in message.catenate):
                self.revision.checkUtf8Append()  # RFC 6855's UTF8 (~{n}): once UTF-8 is on
        if (not self.extensionEnabled("MULTIAPPEND") and len(messages) > 1
                or not self.extensionEnabled("CATENATE") and any(m.catenate for m in messages)):
            raise Refusal("%s is not available here" % (
                "CATENATE" if any(m.catenate for m in messages) else "MULTIAPPEND",), status="BAD")
        # The store may read the spools in a worker thread: they are closed
        # when the command is done, not when the connection drops.
        passed = {id(source) for message in messages
                  for source in [message.message] + [p.value for p in message.catenate]}
        self._spools = [spool for spool in self._spools if id(spool) not in passed]
        return append.Append(self, name, messages).run()

    def do_NAMESPACE(self, tag):
        self.untagged(b'NAMESPACE (("" "/")) NIL NIL')
        return ("OK", None, "NAMESPACE completed")

    def do_IDLE(self, tag):
        d = defer.Deferred()
        self._idle = d
        self.write(b"+ idling\r\n")
        self._lineHandler = self._idleLine
        if self.view is not None:
            self.pushUpdates()
            # Deliveries by other programs: one poll per mailbox for all its IDLE sessions.
            self._idlePoll = idlepoll.watch(self.view.store, self.clock,
                                            self.settings.idlePollInterval)
        return d

    def _idleLine(self, line):
        if line is None or line.strip().upper() != b"DONE":
            return self.bad(None, "Expected DONE to end IDLE")
        d = self._idle
        self._stopIdle()
        # After NOTIFY's MessageNew FETCH responses still streaming (imap/notify.py).
        self.whenPushed().addCallback(lambda _: d.callback(("OK", None, "IDLE terminated")))

    def _stopIdle(self):
        for name in ("_idlePoll", "_idleFlush"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        if self._idle is not None:
            self._idle = None
            self._lineHandler = None

    # -- selected state ------------------------------------------------------

    def do_CHECK(self, tag):
        return self.view.sync().addCallback(lambda _: ("OK", None, "CHECK completed"))

    def do_CLOSE(self, tag):
        view = self.view
        d = defer.succeed(None)
        if not view.readOnly:
            d = view.store.expunge(self._deletedUIDs())

        def closed(_):
            if self.view is view:
                self._deselect()
            return ("OK", None, "CLOSE completed")
        return d.addCallback(closed)

    def do_UNSELECT(self, tag):
        self._deselect()
        return ("OK", None, "UNSELECT completed")

    def _deletedUIDs(self, within=None):
        infos = self.view.messageInfos()
        return [uid for uid in self.view.uids
                if uid in infos and "\\Deleted" in infos[uid].flags
                and not self.view.isExpunged(uid) and (within is None or uid in within)]

    def do_EXPUNGE(self, tag):
        return self._expunge(None)

    def do_UID_EXPUNGE(self, tag, messages):
        messages = self._resolveSaved(messages)
        within = {self.view.uids[i] for i in messages.uidIndices(self.view.uids)}
        return self._expunge(within)

    def _expunge(self, within):
        if self.view.readOnly:
            return ("NO", None, "Mailbox is read-only (EXAMINE)")
        d = self.view.store.expunge(self._deletedUIDs(within))
        return d.addCallback(lambda _: self.expungeResult())

    def do_SEARCH(self, tag, returns, charset, key):
        return self._search(tag, returns, charset, key, byUID=False)

    def do_UID_SEARCH(self, tag, returns, charset, key):
        return self._search(tag, returns, charset, key, byUID=True)

    # RFC 5182's search result variable ($): ascending UIDs.
    savedResult = ()

    def searchresEnabled(self):
        """SEARCHRES is offered: it builds on ESEARCH's RETURN, so not without it."""
        return self.extensionEnabled("SEARCHRES") and self.extensionEnabled("ESEARCH")

    def _resolveSaved(self, messages):
        """A sequence set with C{$} replaced by the saved result's UIDs (a UID set)."""
        if not messages.saved:
            return messages
        if not self.searchresEnabled():
            raise Refusal("Invalid sequence set ($ needs SEARCHRES)", status="BAD")
        return messages.resolved(self.savedResult)

    def _checkSearchExtensions(self, returns, key):
        """BAD for what the listener has switched off: RETURN, SAVE, $, OLDER/YOUNGER."""
        if returns is not None and not self.extensionEnabled("ESEARCH"):
            raise Refusal("SEARCH RETURN is not available (no ESEARCH)", status="BAD")
        kinds = search.keyKinds(key)
        if ("SAVE" in (returns or ()) or "$" in kinds) and not self.searchresEnabled():
            raise Refusal("SEARCH RETURN (SAVE) and $ are not available (no SEARCHRES)",
                          status="BAD")
        if "WITHIN" in kinds and not self.extensionEnabled("WITHIN"):
            raise Refusal("Unknown search key (OLDER and YOUNGER need WITHIN)", status="BAD")
        if search.usesSaveDate(key) and not self.extensionEnabled("SAVEDATE"):
            raise Refusal("Unknown search key (SAVED* need SAVEDATE)", status="BAD")

    def boundSearchKey(self, key, returns=None):
        """
        A parsed search key ready for L{search.compileKey} in this session:
        BAD for what the listener has switched off, C{$} and OLDER/YOUNGER
        bound (L{search.bindKey}). SORT and THREAD take search keys too and
        need the same.
        """
        self._checkSearchExtensions(returns, key)
        self.revision.checkSearchKinds(search.keyKinds(key))  # no NEW/OLD/RECENT in IMAP4rev2
        return search.bindKey(key, self.clock.seconds(), self.savedResult)

    def _search(self, tag, returns, charset, key, byUID):
        """
        SEARCH and UID SEARCH, with RFC 4731's RETURN options (an ESEARCH
        response), RFC 5182's SAVE and C{$}, RFC 5032's OLDER and YOUNGER.

        Header and body keys read message files: that runs in bursts
        (L{cooperative.run}) so other sessions are served meanwhile; this
        session's next commands wait (the Deferred holds its queue), so a
        command using C{$} pipelined behind a SAVE sees what it saved.
        """
        view = self.view
        key = self.boundSearchKey(key, returns)
        self.checkContextReturns(tag, returns, sorting=False)  # PARTIAL, UPDATE: imap/context.py
        partial = getattr(returns, "partial", None)
        returns = self.revision.searchReturns(returns)  # IMAP4rev2: ESEARCH always
        self.revision.checkSearchCharset(charset)  # UTF8=ACCEPT: no CHARSET
        save = returns is not None and "SAVE" in returns
        withModseq = search.usesModseq(key)
        if withModseq:
            self.enableCondstore()
        try:
            program = search.compileKey(key, charset, view)
        except search.BadCharset:
            if save:
                self.savedResult = ()  # RFC 5182: a SAVE search that fails with NO empties $
            return ("NO", "BADCHARSET (US-ASCII UTF-8)", "Unsupported charset")
        if save:
            self.savedResult = ()  # until it succeeds
        found = []

        def steps():
            for step in search.searchSteps(view, program, self.fetchCache, found):
                if self._closing or self.view is not view:
                    return
                yield step

        def answer(_=None):
            if self._closing or self.view is not view:
                return None
            returned = found if returns is None else esearch.returnedMessages(
                found, returns, partial)
            if save:
                self.savedResult = tuple(sorted(returned))
            if byUID:
                numbers = found
            else:
                numbers = [view.sequenceNumber(uid) for uid in found]
            highest = None
            if withModseq and found:
                infos = view.messageInfos()
                highest = max([infos[uid].modseq for uid in returned if uid in infos] or [0])
            if returns is not None:
                if esearch.answersWithESEARCH(returns, withModseq):
                    self.write(esearch.esearchResponse(tag, numbers, returns, byUID, highest,
                                                       partial))
                self.keepLive(tag, returns, program, byUID, found, view)
                return ("OK", None, "SEARCH completed")
            suffix = b"" if highest is None else b" (MODSEQ %d)" % (highest,)
            self.write(b"* SEARCH" + b"".join(b" %d" % (n,) for n in numbers) + suffix + b"\r\n")
            return ("OK", None, "SEARCH completed")
        # Flag, size, date and UID keys need no message file: no reason to wait.
        burst = None if search.needsContent(program) else float("inf")
        self.watchForUpdates(returns, tag)
        d = cooperative.run(steps(), self.clock, burst)
        if d is None:
            return answer()
        return d.addCallback(answer)

    def do_STORE(self, tag, messages, mode, silent, flags, unchangedSince=None):
        return self._store(messages, mode, silent, flags, byUID=False,
                           unchangedSince=unchangedSince)

    def do_UID_STORE(self, tag, messages, mode, silent, flags, unchangedSince=None):
        return self._store(messages, mode, silent, flags, byUID=True,
                           unchangedSince=unchangedSince)

    @defer.inlineCallbacks
    def _store(self, messages, mode, silent, flags, byUID, unchangedSince=None):
        view = self.view
        if unchangedSince is not None:
            self.enableCondstore()
        if view.readOnly:
            return ("NO", None, "Mailbox is read-only (EXAMINE)")
        flags = _checkFlags(flags)
        modified = []
        for i in self._indices(messages, byUID):
            uid = view.uids[i]
            if view.isExpunged(uid):
                continue
            try:
                info = view.store.messageInfo(uid)
                if unchangedSince is not None and info.modseq > unchangedSince:
                    modified.append(uid if byUID else i + 1)
                    continue
                before = info.modseq
                if mode == "+":
                    new = info.flags | flags
                elif mode == "-":
                    new = info.flags - flags
                else:
                    new = frozenset(flags)
                if new == info.flags:
                    # No FETCH for a message the STORE leaves as it was, as
                    # Dovecot does (RFC 3501 6.4.6: "normally" the new value
                    # is returned); another session's change to it is told
                    # with the updates that follow.
                    continue
                with view.ownChanges([uid]):
                    info = yield view.store.setFlags(uid, new)
            except NoSuchMessage:
                continue
            if self.view is not view or self._closing:
                return None
            if not silent:  # its FETCH tells another session's earlier change too
                view.forgetFlagChange(uid)
            self.storeResponse(i + 1, info, silent, info.modseq != before, byUID)
        if modified:
            return self.modifiedResult(modified)
        # Messages another session expunged are skipped without an error, as
        # Dovecot does (RFC 2180 4.2.1): a NO here reads as a failure to clients.
        return ("OK", None, "STORE completed")

    def do_COPY(self, tag, messages, mailbox):
        return self._copy(messages, mailbox, byUID=False, move=False)

    def do_UID_COPY(self, tag, messages, mailbox):
        return self._copy(messages, mailbox, byUID=True, move=False)

    def do_MOVE(self, tag, messages, mailbox):
        return self._copy(messages, mailbox, byUID=False, move=True)

    def do_UID_MOVE(self, tag, messages, mailbox):
        return self._copy(messages, mailbox, byUID=True, move=True)

    def _copy(self, messages, mailbox, byUID, move):
        """
        The store's L{IMailboxStore.copyTo} (the Maildir links or copies,
        fsyncs and renames the files in a worker thread); MOVE then expunges
        the originals, and only then is the reply sent.
        """
        view = self.view
        if move and view.readOnly:
            return ("NO", None, "Mailbox is read-only (EXAMINE)")
        uids = [view.uids[i] for i in self._indices(messages, byUID)]
        d = self.account.openMailbox(self._name(mailbox))

        def opened(destination):
            if any(view.isExpunged(uid) for uid in uids):
                # All or nothing (RFC 3501 COPY), and what Dovecot answers.
                return ("NO", "EXPUNGEISSUED", "Some of the requested messages no longer exist")
            if not uids:
                return self._copied([], destination, view, move)
            copied = view.store.copyTo(uids, destination)
            return copied.addCallback(self._copied, destination, view, move)
        return d.addCallback(opened)

    @defer.inlineCallbacks
    def _copied(self, pairs, destination, view, move):
        """The reply to COPY or MOVE once the copies have their UIDs."""
        code = None
        # A copy whose UID is not known yet (see MaildirMailbox.adoptCopies): no COPYUID.
        if pairs and self.extensionEnabled("UIDPLUS") and all(p[1] for p in pairs):
            code = b"COPYUID %d %s %s" % (
                destination.uidValidity, formatSequenceSet([p[0] for p in pairs]),
                formatSequenceSet([p[1] for p in pairs]))
        if not move:
            return ("OK", code, "COPY completed")
        if code is not None:
            self.untagged(b"OK [" + code + b"] Moved")
        # Also into the selected mailbox itself: the originals go, the copies
        # are announced (EXPUNGE, then EXISTS), as Dovecot does.
        yield view.store.expunge([source for source, _ in pairs])
        return ("OK", None, "MOVE completed")

    # -- FETCH ---------------------------------------------------------------

    def do_FETCH(self, tag, messages, attributes, modifiers=None):
        self._checkPreview(attributes)
        return self._fetch(messages, attributes, byUID=False, modifiers=modifiers or {})

    def _checkPreview(self, attributes):
        """PREVIEW (RFC 8970) is BAD where the listener switched it off."""
        if not self.extensionEnabled("PREVIEW") and any(
                a.name == "PREVIEW" and not a.fuzzy for a in attributes):
            raise Refusal("PREVIEW is not available here", status="BAD")
        for name, extension in (("PREVIEW", "PREVIEW=FUZZY"), ("SNIPPET", "SNIPPET=FUZZY")):
            if not self.extensionEnabled(extension) and any(
                    a.name == name and a.fuzzy for a in attributes):
                raise Refusal("%s is not available here" % (extension,), status="BAD")
        if not self.extensionEnabled("OBJECTID") and any(
                a.name in ("EMAILID", "THREADID") for a in attributes):
            raise Refusal("EMAILID and THREADID are not available here", status="BAD")
        if not self.extensionEnabled("SAVEDATE") and any(a.name == "SAVEDATE" for a in attributes):
            raise Refusal("SAVEDATE is not available here", status="BAD")

    def do_UID_FETCH(self, tag, messages, attributes, modifiers=None):
        self._checkPreview(attributes)
        return self._fetch(messages, attributes, byUID=True, modifiers=modifiers or {})

    def _fetch(self, messages, attributes, byUID, modifiers=None):
        view = self.view
        if not self.extensionEnabled("BINARY") and any(a.binary for a in attributes):
            return ("BAD", None, "BINARY is not available here")
        changedSince = self.checkFetchModifiers(attributes, modifiers or {}, byUID)
        if byUID:
            messages = self._resolveSaved(messages)
        indices = self._indices(messages, byUID)
        if byUID and not any(a.name == "UID" for a in attributes):
            attributes = [FetchAttribute("UID")] + list(attributes)
        if changedSince is not None:
            if not any(a.name == "MODSEQ" for a in attributes):
                attributes = list(attributes) + [FetchAttribute("MODSEQ")]
            if "VANISHED" in modifiers:
                self.fetchVanished(messages, changedSince)
            infos = view.messageInfos()
            indices = [i for i in indices if view.uids[i] in infos
                       and infos[view.uids[i]].modseq > changedSince]
        setSeen = not view.readOnly and any(a.isBody and not a.peek for a in attributes)
        state = collections.Counter()
        work = [(i + 1, view.uids[i]) for i in indices]
        # Fetching a body sets \Seen (RFC 3501 6.4.5): set first, then stream.
        seen = self._markSeen(view, [uid for _, uid in work]) if setSeen else defer.succeed(())

        def stream(newlySeen):
            if self.view is not view or self._closing:
                return None
            streamer = ResponseStreamer(self.transport, self.clock, self.resetTimeout)
            if metadata.applies(attributes) and not newlySeen:  # the hot case, batched
                return streamer.start(metadata.fetchLines(
                    view, work, attributes, state, lambda: self.view is view))
            return streamer.start(self._fetchPieces(work, attributes, newlySeen, state))

        def done(_):
            if state["unknownEncoding"]:
                return ("NO", "UNKNOWN-CTE", "Unknown Content-Transfer-Encoding")
            if state["missing"]:
                # RFC 2180 4.1: the rest is answered; OK as Dovecot says it.
                return ("OK", "EXPUNGEISSUED", "Some messages were already expunged")
            if state["failed"]:
                return ("NO", "SERVERBUG", "Some messages could not be fetched")
            return ("OK", None, "FETCH completed")
        return seen.addCallback(stream).addCallback(done)

    @defer.inlineCallbacks
    def _markSeen(self, view, uids):
        """
        Give \\Seen to those of C{uids} without it.

        @return: a Deferred firing with the set of UIDs that got it now (their
            FETCH reports the new FLAGS).
        """
        newlySeen = set()
        for uid in uids:
            if view.isExpunged(uid):
                continue
            try:
                info = view.store.messageInfo(uid)
                if "\\Seen" in info.flags:
                    continue
                with view.ownChanges([uid]):
                    yield view.store.setFlags(uid, info.flags | {"\\Seen"})
            except NoSuchMessage:
                continue
            view.forgetFlagChange(uid)
            newlySeen.add(uid)
            if self.view is not view or self._closing:
                break
        return newlySeen

    def _fetchPieces(self, work, attributes, newlySeen, state):
        for number, uid in work:
            if self.view is None:
                return
            if self.view.isExpunged(uid):
                state["missing"] += 1
                continue
            try:
                pieces, f = self._fetchMessage(number, uid, attributes, uid in newlySeen)
            except NoSuchMessage:
                state["missing"] += 1
                continue
            except fetch.UnknownEncoding:
                # RFC 3516: the command fails here; the line Dovecot sends.
                yield b"* %d FETCH (UID %d)\r\n" % (number, uid)
                state["unknownEncoding"] += 1
                return
            except Exception:
                log.failure("imap {peer}: FETCH of UID {uid} failed", peer=self.peerText(),
                            uid=uid)
                state["failed"] += 1
                continue
            try:
                yield from pieces
            finally:
                if f is not None:
                    f.close()

    def _parsed(self, uid, f, size, full):
        cache = self.fetchCache
        part = cache.get(uid)
        if part is not None and (part.complete or not full):
            cache.move_to_end(uid)
            return part
        f.seek(0)
        part = fetch.parseStructure(f) if full else fetch.parseHeaderOnly(f, size)
        cache[uid] = part
        while len(cache) > FETCH_CACHE_SIZE:
            cache.popitem(last=False)
        return part

    def _fetchMessage(self, number, uid, attributes, newlySeen):
        """
        The pieces of one message's FETCH response and the file they stream
        from (the caller closes it). Everything that can fail happens here,
        before anything is written. C{newlySeen}: this FETCH gave the message
        \\Seen, so its FLAGS are reported even when not asked for.
        """
        view = self.view
        store = view.store
        info = store.messageInfo(uid)
        full = any(a.name in _STRUCTURE_ITEMS or a.binary
                   or (a.section is not None and a.section.part) for a in attributes)
        header = full or any(a.name in _HEADER_ITEMS or (a.section is not None and a.section.text)
                             for a in attributes)
        needFile = header or any(a.isBody for a in attributes)
        f = store.openMessage(uid) if needFile else None
        try:
            root = self._parsed(uid, f, info.size, full) if header else None
            addFlags = newlySeen and not any(a.name == "FLAGS" for a in attributes)
            items = []
            for attribute in attributes:
                items.append(self._fetchItem(attribute, info, root, f))
            if addFlags:
                items.append([b"FLAGS " + formatFlags(view.flagsOf(info))])
                if self.condstore and not any(a.name == "MODSEQ" for a in attributes):
                    items.append([b"MODSEQ (%d)" % (info.modseq,)])
        except BaseException:
            if f is not None:
                f.close()
            raise
        pieces = []
        if addFlags or any(a.name == "FLAGS" for a in attributes):
            pieces.extend(line + b"\r\n" for line in view.owedFlagLines(info))
        pieces.append(b"* %d FETCH (" % (number,))
        for i, item in enumerate(items):
            if i:
                pieces.append(b" ")
            pieces.extend(item)
        pieces.append(b")\r\n")
        return _joinBytes(pieces), f

    def _fetchItem(self, attribute, info, root, f):
        name = attribute.name
        if name == "UID":
            return [b"UID %d" % (info.uid,)]
        if name == "FLAGS":
            return [b"FLAGS " + formatFlags(self.view.flagsOf(info))]
        if name == "MODSEQ":
            return [b"MODSEQ (%d)" % (info.modseq,)]
        if name in ("PREVIEW", "SNIPPET"):
            text = string(preview.preview(root, f))
            if attribute.fuzzy:  # Dovecot's SNIPPET=FUZZY and PREVIEW=FUZZY form
                return [name.encode("ascii") + b" (FUZZY " + text + b")"]
            return [b"PREVIEW " + text]
        if name == "EMAILID":
            return [b"EMAILID (%s)" % (objectid.emailId(info).encode("ascii"),)]
        if name == "THREADID":
            return [b"THREADID NIL"]
        if name == "SAVEDATE":  # RFC 8514: NIL where the store cannot tell
            saved = getattr(info, "saveDate", None)
            return [b"SAVEDATE " + (b"NIL" if saved is None else formatInternalDate(saved))]
        if name == "INTERNALDATE":
            return [b"INTERNALDATE " + formatInternalDate(info.internalDate)]
        if name == "RFC822.SIZE":
            return [b"RFC822.SIZE %d" % (info.size,)]
        if name == "ENVELOPE":
            return [b"ENVELOPE " + fetch.envelope(root)]
        if name == "BODYSTRUCTURE":
            return [b"BODYSTRUCTURE " + fetch.bodyStructure(root, True)]
        if name == "BODY" and attribute.section is None:
            return [b"BODY " + fetch.bodyStructure(root, False)]
        if attribute.binary:
            return _binaryItem(attribute, root, f)
        if name == "RFC822":
            where = (0, info.size)
        elif name == "RFC822.HEADER":
            where = (0, root.headerEnd)
        elif name == "RFC822.TEXT":
            where = (root.headerEnd, info.size)
        elif not attribute.section.part and not attribute.section.text:
            where = (0, info.size)
        else:
            where = fetch.locate(root, attribute.section)
        label = attribute.label()
        if isinstance(where, bytes):
            data = where
            if attribute.partial is not None:
                offset, length = attribute.partial
                data = data[offset:offset + length]
            return [label + b" {%d}\r\n" % (len(data),), data.replace(b"\x00", b"\x80")]
        start, end = where
        if attribute.partial is not None:
            offset, length = attribute.partial
            start = min(start + offset, end)
            end = min(start + length, end)
        return [label + b" {%d}\r\n" % (end - start,), (_WithoutNul(f), start, end - start)]


class _WithoutNul:
    """
    A message file read for a literal (C{{n}}, not BINARY's C{~{n}}): each
    NUL octet comes out as 0x80, as Dovecot 2.3 sends it. RFC 3501's literal
    is made of CHAR8, which excludes NUL; the length stays the same, and
    BINARY sends the stored octets (RFC 3516's literal8).
    """

    def __init__(self, f):
        self._f = f

    def seek(self, offset, whence=0):
        return self._f.seek(offset, whence)

    def read(self, size=-1):
        return self._f.read(size).replace(b"\x00", b"\x80")


def _binaryItem(attribute, root, f):
    """A BINARY, BINARY.PEEK or BINARY.SIZE item (RFC 3516): decoded content."""
    def read(start, end):
        f.seek(start)
        return f.read(end - start)
    data, literal8 = fetch.binaryContent(root, attribute.section.part, read)
    label = attribute.label()
    if attribute.name == "BINARY.SIZE":
        return [label + b" %d" % (len(data),)]
    if attribute.partial is not None:
        offset, length = attribute.partial
        data = data[offset:offset + length]
    return [label + b" %s{%d}\r\n" % (b"~" if literal8 else b"", len(data)), data]
