"""
Live search and sort results: RFC 5267's CONTEXT=SEARCH and CONTEXT=SORT
(C{RETURN (UPDATE)}, C{CANCELUPDATE}), as a mixin of
L{mailstack.imap.server.IMAPServer} over a per-session L{LiveResults}.

A SEARCH or SORT with C{RETURN (UPDATE)} keeps its result; whenever the
server writes the untagged updates it owes (at the end of a command, and
while idle), each kept result is brought up to date and the difference is
sent as C{* ESEARCH (TAG "t") [UID] REMOVEFROM (...) ADDTO (...)}, as
Dovecot 2.3 does for SEARCH:

 - messages expunged leave the result in a line written just before their
   EXPUNGE responses (so sequence numbers still name them), and only where
   EXPUNGE may be sent (RFC 5267 4.3);
 - messages new to the session, and messages whose flags changed (by this
   session or any other), are tested against the kept search program: they
   join or leave the result. Header and body text never changes, so no other
   message is looked at again; a result that depends on something else
   (sequence numbers, OLDER/YOUNGER, the time) is not re-evaluated for it,
   as in Dovecot;
 - the tests run in slices (L{cooperative.run}) when they read message
   files, so other sessions are served meanwhile.

A SEARCH result is unordered: its positions are 0. A SORT result
(CONTEXT=SORT, which Dovecot does not offer) gives positions in the sorted
result (RFC 5267 4.3): REMOVEFROM pairs name each run of removed messages
by its position, the last run first, so every position is also the one it
had before; ADDTO pairs name each run of added messages by the position it
takes in the new result, the first run first.

A session keeps at most L{MAX_LIVE} results; one more is answered once,
after C{* NO [NOUPDATE "tag"]} (RFC 5267 4.2), and not kept.
"""

import bisect
import collections

from twisted.internet import defer
from zope.interface import implementer

from mailstack.imap import cooperative, search, sort
from mailstack.imap.response import Refusal, formatSequenceSet, quoted
from mailstack.storage.interfaces import IMailboxListener, NoSuchMessage

# Live results one session may keep at once (Dovecot's CLIENT_MAX_SEARCH_UPDATES).
MAX_LIVE = 10

# The capabilities this module answers for, and what each needs besides itself.
EXTENSIONS = ("ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT")
_NEEDS = {"ESORT": ("SORT",), "CONTEXT=SEARCH": ("ESEARCH",),
          "CONTEXT=SORT": ("SORT", "ESORT")}


class LiveResult:
    """
    One kept result.

    @ivar result: its UIDs in order (ascending for SEARCH, sort order for SORT).
    @ivar candidates: for SORT, UID -> L{sort.Candidate} of each message in it.
    @ivar lastUID: the highest UID of the view it has been tested against.
    """

    def __init__(self, tag, program, byUID, result, lastUID, criteria=None, candidates=()):
        self.tag = tag
        self.program = program
        self.byUID = byUID
        self.criteria = criteria
        self.result = list(result)
        self.lastUID = lastUID
        # Ties go by UID here (the same order as sequence numbers, which change).
        self.candidates = {c.uid: sort.Candidate(c.uid, c.uid, c.info, c.fields)
                           for c in candidates}
        self.withFields = criteria is not None and any(
            name not in sort.METADATA_KEYS for name, _ in criteria)

    @property
    def sorted(self):
        return self.criteria is not None

    def has(self, uid):
        """Whether message C{uid} is in the result (without looking at all of it)."""
        if self.sorted:
            return uid in self.candidates
        i = bisect.bisect_left(self.result, uid)
        return i < len(self.result) and self.result[i] == uid

    def needsContent(self):
        """Whether testing a message reads its file."""
        return self.withFields or search.needsContent(self.program)


def updateLine(live, removed, added):
    """
    C{* ESEARCH (TAG "t") [UID] [REMOVEFROM (pos set ...)] [ADDTO (pos set
    ...)]} and its CRLF; C{removed} and C{added} are lists of C{(position,
    numbers)}.
    """
    items = [b"* ESEARCH (TAG " + quoted(live.tag) + b")"]
    if live.byUID:
        items.append(b"UID")
    for name, pairs in ((b"REMOVEFROM", removed), (b"ADDTO", added)):
        if pairs:
            items.append(name + b" (" + b" ".join(
                b"%d %s" % (position, formatSequenceSet(numbers))
                for position, numbers in pairs) + b")")
    return b" ".join(items) + b"\r\n"


def _runs(positions):
    """Ascending 1-based positions -> C{[(first, count)]} of consecutive runs."""
    runs = []
    for position in positions:
        if runs and position == runs[-1][0] + runs[-1][1]:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((position, 1))
    return runs


def _removals(live, gone, number):
    """The REMOVEFROM pairs taking C{gone} (a set of UIDs) out of C{live}'s result."""
    if not live.sorted:
        return [(0, sorted(number(uid) for uid in gone))]
    positions = [i for i, uid in enumerate(live.result, 1) if uid in gone]
    return [(first, [number(uid) for uid in live.result[first - 1:first - 1 + count]])
            for first, count in reversed(_runs(positions))]


def _additions(live, newResult, added, number):
    """The ADDTO pairs that make C{newResult} of the result once the removals are applied."""
    if not live.sorted:
        return [(0, sorted(number(uid) for uid in added))]
    positions = [i for i, uid in enumerate(newResult, 1) if uid in added]
    return [(first, [number(uid) for uid in newResult[first - 1:first - 1 + count]])
            for first, count in _runs(positions)]


@implementer(IMailboxListener)
class LiveResults:
    """
    The live results of one session, over its selected mailbox: notes whose
    flags change (a listener of the mailbox while it keeps any), brings
    them up to date and says what changed.
    """

    def __init__(self, clock, limit=MAX_LIVE):
        self.clock = clock
        self.limit = limit
        self.results = collections.OrderedDict()  # tag (bytes) -> LiveResult
        self.view = None
        self.flagsChanged = set()
        self.expunged = set()
        self.lock = defer.DeferredLock()

    def watch(self, view):
        """Note flag changes in C{view}'s mailbox from now on (before a search starts)."""
        if self.view is not view:
            self.clear()
            self.view = view
            view.store.addListener(self)

    def mailboxChanged(self, mailbox, changes):
        if self.view is not None and mailbox is self.view.store:
            self.flagsChanged.update(changes.flagsChanged)
            self.expunged.update(changes.expunged)

    def full(self):
        """Whether the session keeps L{MAX_LIVE} results already."""
        return len(self.results) >= self.limit

    def keep(self, live):
        """Keep C{live} (its view watched)."""
        self.results[live.tag] = live

    def has(self, tag):
        return tag in self.results

    def cancel(self, tags):
        """
        Forget the results of C{tags}, in order, up to the first that has
        none (as Dovecot does); @return: that tag, or None.
        """
        unknown = None
        for tag in tags:
            if self.results.pop(tag, None) is None:
                unknown = tag
                break
        if not self.results:
            self.clear()
        return unknown

    def clear(self):
        """Forget every result and stop watching (the mailbox is closed)."""
        if self.view is not None:
            self.view.store.removeListener(self)
        self.view = None
        self.results.clear()
        self.flagsChanged = set()
        self.expunged = set()

    def expungeLines(self, view):
        """
        REMOVEFROM lines for the messages the view is about to report
        expunged (all it has pending: EXPUNGE may be sent now), numbered as
        they are before the EXPUNGE responses.
        """
        if view is not self.view or not self.expunged:
            return []
        pending = [uid for uid in self.expunged if view.isExpunged(uid)]
        self.expunged = set()
        lines = []
        for live in self.results.values():
            gone = {uid for uid in pending if live.has(uid)}
            if not gone:
                continue
            number = _numbering(live, view)
            lines.append(updateLine(live, _removals(live, gone, number), []))
            live.result = [uid for uid in live.result if uid not in gone]
            for uid in gone:
                live.candidates.pop(uid, None)
        return lines

    def refresh(self, view, cache):
        """
        Test the messages new to the view and those whose flags changed
        against every result, in slices when that reads message files.

        @param cache: the session's parse cache (UID -> parsed message).
        @return: a Deferred firing with the update lines, to be written at
            once (sequence numbers are the view's as it is then).
        """
        if view is not self.view or not self.results:
            return defer.succeed([])
        return self.lock.run(self._refresh, view, cache)

    def _refresh(self, view, cache):
        changed, self.flagsChanged = self.flagsChanged, set()
        star = view.uids[-1] if view.uids else 0
        verdicts = {}
        work = []
        for live in self.results.values():
            new = view.uids[bisect.bisect_right(view.uids, live.lastUID):]
            uids = sorted({uid for uid in changed if view.has(uid)} | set(new))
            uids = [uid for uid in uids if not view.isExpunged(uid)]
            live.lastUID = max(live.lastUID, star)
            verdicts[live.tag] = {}
            work.append((live, uids))

        def steps():
            for live, uids in work:
                found = verdicts[live.tag]
                for uid in uids:
                    if view is not self.view:
                        return  # the mailbox was closed meanwhile (or the session ended)
                    found[uid] = _test(live, view, uid, cache, star)
                    yield

        burst = None if any(live.needsContent() for live, uids in work if uids) else float("inf")
        d = cooperative.run(steps(), self.clock, burst)
        if d is None:
            return defer.succeed(self._apply(view, verdicts))
        return d.addCallback(lambda _: self._apply(view, verdicts))

    def _apply(self, view, verdicts):
        """Bring each result up to date from C{verdicts}; the lines saying what changed."""
        lines = []
        if view is not self.view:
            return lines
        for tag, found in verdicts.items():
            live = self.results.get(tag)
            if live is None or not found:
                continue
            gone = {uid for uid, candidate in found.items()
                    if candidate is None and live.has(uid)}
            added = {uid for uid, candidate in found.items()
                     if candidate is not None and not live.has(uid)
                     and view.has(uid) and not view.isExpunged(uid)}
            if not gone and not added:
                continue
            number = _numbering(live, view)
            removed = _removals(live, gone, number) if gone else []
            if live.sorted:
                newResult = _sortedUpdate(live, gone, {uid: found[uid] for uid in added})
            else:
                newResult = [uid for uid in live.result if uid not in gone] if gone else list(
                    live.result)
                for uid in sorted(added):
                    bisect.insort(newResult, uid)
            additions = _additions(live, newResult, added, number) if added else []
            live.result = newResult
            lines.append(updateLine(live, removed, additions))
        return lines


def _sortedUpdate(live, gone, added):
    """
    C{live}'s sorted result without C{gone} and with C{added} (UID ->
    L{sort.Candidate}) each put in its place by binary search: a few changes
    to a large result cost a few comparisons each, not a sort.
    """
    order = [uid for uid in live.result if uid not in gone]
    for uid in gone:
        live.candidates.pop(uid, None)
    for uid in sorted(added):
        candidate = live.candidates[uid] = added[uid]
        low, high = 0, len(order)
        while low < high:
            middle = (low + high) // 2
            if sort.compareCandidates(live.candidates[order[middle]], candidate,
                                      live.criteria) < 0:
                low = middle + 1
            else:
                high = middle
        order.insert(low, uid)
    return order


def _numbering(live, view):
    """UIDs as the result names them: themselves, or their sequence numbers."""
    if live.byUID:
        return lambda uid: uid
    return view.sequenceNumber


def _test(live, view, uid, cache, star):
    """
    Whether message C{uid} belongs to C{live}'s result: None if not, else a
    true value (for SORT its L{sort.Candidate}, ties in UID order).
    """
    try:
        info = view.store.messageInfo(uid)
        message = search.MessageReader(view, info, cache)
        if not search.matches(live.program, message, star):
            return None
        if not live.sorted:
            return True
        kept = live.candidates.get(uid)
        fields = kept.fields if kept is not None else None
        if fields is None and live.withFields:
            fields = sort.Fields.fromHeader(message.header())
        return sort.Candidate(uid, uid, info, fields)
    except NoSuchMessage:
        return None


class ContextCommands:
    """
    RETURN (UPDATE) and CANCELUPDATE (a mixin: uses the server's C{clock},
    C{view}, C{write}, C{fetchCache} and C{extensionEnabled}).
    """

    _liveResults = None

    @property
    def liveResults(self):
        """This session's L{LiveResults}."""
        if self._liveResults is None:
            self._liveResults = LiveResults(self.clock)
        return self._liveResults

    def contextOffered(self, name):
        """Whether capability C{name} (one of L{EXTENSIONS}) is offered: itself and what it needs."""
        return all(self.extensionEnabled(n) for n in (name,) + _NEEDS.get(name, ()))

    def checkContextReturns(self, tag, returns, sorting):
        """
        BAD for RETURN options this listener does not offer: SORT's RETURN
        needs ESORT; UPDATE and PARTIAL need CONTEXT=SEARCH (SEARCH) or
        CONTEXT=SORT (SORT); UPDATE again under a tag whose result is kept.
        """
        if returns is None:
            return
        if sorting and not self.contextOffered("ESORT"):
            raise Refusal("SORT RETURN is not available (no ESORT)", status="BAD")
        context = "CONTEXT=SORT" if sorting else "CONTEXT=SEARCH"
        if ("UPDATE" in returns or "PARTIAL" in returns) and not self.contextOffered(context):
            raise Refusal("RETURN (UPDATE) and (PARTIAL) are not available (no %s)"
                          % (context,), status="BAD")
        if "UPDATE" in returns and self.liveResults.has(tag):
            raise Refusal("Duplicate search update tag", status="BAD")

    _refusedLive = None

    def watchForUpdates(self, returns, tag=None):
        """
        Before a SEARCH or SORT with RETURN (UPDATE) runs: note changes from
        now on; or, with L{MAX_LIVE} results kept, say at once that this one
        will not be (C{* NO [NOUPDATE "tag"]}, before its answer, as Dovecot).
        """
        if returns is None or "UPDATE" not in returns:
            return
        if self.liveResults.full():
            self._refusedLive = tag
            self.write(b"* NO [NOUPDATE " + quoted(tag or b"") + b"] Too many live results "
                       b"(limit %d)\r\n" % (self.liveResults.limit,))
            return
        self.liveResults.watch(self.view)

    def keepLive(self, tag, returns, program, byUID, result, view, criteria=None,
                 candidates=()):
        """
        After the answer of a SEARCH or SORT with RETURN (UPDATE): keep its
        result live, or say it cannot be (NOUPDATE).
        """
        refused, self._refusedLive = self._refusedLive, None
        if (returns is None or "UPDATE" not in returns or view is not self.view
                or refused == tag or self.liveResults.view is not view):
            return
        lastUID = view.uids[-1] if view.uids else 0
        self.liveResults.keep(LiveResult(tag, program, byUID, result, lastUID, criteria,
                                         candidates))

    def liveExpungeLines(self, view, allowExpunge):
        """REMOVEFROM lines owed before the view's EXPUNGE responses."""
        if not allowExpunge or self._liveResults is None:
            return []
        return self.liveResults.expungeLines(view)

    def liveUpdates(self, view):
        """
        Bring the live results up to date and write what changed.

        @return: a Deferred firing once written, or None with nothing kept.
        """
        if self._liveResults is None:
            return None
        if not self._liveResults.results:
            # Watched for a search that was not kept (it failed, or the
            # session went on elsewhere): stop noting changes.
            self._liveResults.clear()
            return None

        def write(lines):
            if self.view is view and not self._closing:
                for line in lines:
                    self.write(line)
        return self._liveResults.refresh(view, self.fetchCache).addCallback(write)

    def closeLiveResults(self):
        """The mailbox is closed: its live results end (RFC 5267 4.2)."""
        if self._liveResults is not None:
            self._liveResults.clear()

    def do_CANCELUPDATE(self, tag, tags):
        """
        RFC 5267 4.2: end the live results of C{tags}; NO at the first tag
        with none (those before it are ended), as Dovecot answers.
        """
        if self.liveResults.cancel(tags) is not None:
            return ("NO", None, "Unknown tag")
        return ("OK", None, "Updates cancelled")
