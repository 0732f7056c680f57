"""
SORT, UID SORT, THREAD and UID THREAD (RFC 5256, SORT=DISPLAY from RFC
5957), as a mixin of L{mailstack.imap.server.IMAPServer}.

The search criteria are SEARCH's (L{mailstack.imap.search}); the matching
messages' header values are read once per message into a cache kept for the
selected mailbox, and the reading runs in slices (L{cooperative.run}) so a
long SORT or THREAD does not stall other sessions. L{mailstack.imap.sort}
orders them, L{mailstack.imap.thread} threads them.
"""

from mailstack.imap import cooperative, esearch, search, sort, thread
from mailstack.imap.response import Refusal

_DISPLAY_KEYS = ("DISPLAYFROM", "DISPLAYTO")
# Cached entries of expunged messages tolerated before they are dropped.
STALE_SLACK = 1024


class SortingCommands:
    """
    SORT and THREAD (a mixin: uses the server's C{view}, C{clock},
    C{fetchCache}, C{write}, C{extensionEnabled} and C{boundSearchKey}).
    """

    _sortFields = None

    def _fieldCache(self, view):
        """
        UID -> L{sort.Fields} for C{view}: forgotten when another mailbox is
        selected; expunged messages' entries go once there are L{STALE_SLACK} of them.
        """
        if self._sortFields is None or self._sortFields[0] is not view:
            self._sortFields = (view, {})
        cache = self._sortFields[1]
        if len(cache) > len(view) + STALE_SLACK:
            for uid in set(cache) - set(view.uids):
                del cache[uid]
        return cache

    def do_SORT(self, tag, criteria, charset, key, returns=None):
        return self._sort(criteria, charset, key, byUID=False, tag=tag, returns=returns)

    def do_UID_SORT(self, tag, criteria, charset, key, returns=None):
        return self._sort(criteria, charset, key, byUID=True, tag=tag, returns=returns)

    def do_THREAD(self, tag, algorithm, charset, key):
        return self._thread(algorithm, charset, key, byUID=False)

    def do_UID_THREAD(self, tag, algorithm, charset, key):
        return self._thread(algorithm, charset, key, byUID=True)

    def _sort(self, criteria, charset, key, byUID, tag=b"", returns=None):
        """
        SORT and UID SORT; with RETURN options (ESORT, RFC 5267) answered
        with ESEARCH over the numbers in sort order, PARTIAL and UPDATE
        (CONTEXT=SORT: L{mailstack.imap.context}) included.
        """
        if not self.extensionEnabled("SORT=DISPLAY"):
            for name, _ in criteria:
                if name in _DISPLAY_KEYS:
                    raise Refusal("Unknown sort key %s" % (name,), status="BAD")
        self.checkContextReturns(tag, returns, sorting=True)
        # RFC 7162 3.1.5: an ESORT answer over a MODSEQ search reports MODSEQ.
        withModseq = returns is not None and search.usesModseq(key)
        if withModseq:
            self.enableCondstore()
        view = self.view
        ordered = []

        def work(candidates):
            ordered.extend(sort.sortCandidates(candidates, criteria))
            yield

        def answer(program):
            numbers = [c.uid if byUID else c.seq for c in ordered]
            if returns is None:
                self.write(b"* SORT" + b"".join(b" %d" % (n,) for n in numbers) + b"\r\n")
                return ("OK", None, "SORT completed")
            partial = getattr(returns, "partial", None)
            returned = esearch.returnedMessages([c.uid for c in ordered], returns, partial)
            if "SAVE" in returns:  # RFC 5182 over SORT's messages, kept ascending
                self.savedResult = tuple(sorted(returned))
            highest = None
            if withModseq and ordered:
                kept = set(returned)
                highest = max(c.info.modseq for c in ordered if c.uid in kept)
            if esearch.answersWithESEARCH(returns, withModseq):
                self.write(esearch.esearchResponse(tag, numbers, returns, byUID, highest,
                                                   partial))
            self.keepLive(tag, returns, program, byUID, [c.uid for c in ordered], view,
                          criteria, ordered)
            return ("OK", None, "SORT completed")
        withFields = any(name not in sort.METADATA_KEYS for name, _ in criteria)
        self.watchForUpdates(returns, tag)
        return self._matchAndWork(charset, key, work, answer, withFields, returns)

    def _thread(self, algorithm, charset, key, byUID):
        steps = thread.ALGORITHMS.get(algorithm)
        if steps is None or not self.extensionEnabled("THREAD=" + algorithm):
            raise Refusal("Unknown thread algorithm %s" % (algorithm,), status="BAD")
        roots = []

        def answer(_):
            data = thread.formatThreads(roots, byUID)
            # Dovecot keeps the space before an empty thread list.
            self.write(b"* THREAD " + data + b"\r\n")
            return ("OK", None, "THREAD completed")
        return self._matchAndWork(charset, key, lambda candidates: steps(candidates, roots), answer)

    def _matchAndWork(self, charset, key, work, answer, withFields=True, returns=None):
        """
        Find the messages matching C{key} and read their header values
        (unless C{withFields} is false), then run C{work(candidates)} (a
        generator of steps), all in slices like SEARCH; C{answer()} then
        writes the response and gives the result (given the compiled
        program; C{returns}: SORT's RETURN options). Work that reads no message
        file (ARRIVAL or SIZE over flags, dates, sizes) needs no slices.
        """
        view = self.view
        key = self.boundSearchKey(key, returns)  # $ (SEARCHRES), OLDER/YOUNGER (WITHIN)
        try:
            program = search.compileKey(key, charset, view)
        except search.BadCharset:
            return ("NO", "BADCHARSET (US-ASCII UTF-8)", "Unsupported charset")
        found = []
        cache = self._fieldCache(view)

        def steps():
            for step in sort.candidateSteps(view, program, cache, found, self.fetchCache,
                                            withFields):
                if self._closing or self.view is not view:
                    return
                yield step
            for step in work(found):
                if self._closing or self.view is not view:
                    return
                yield step

        def finish(_=None):
            if self._closing or self.view is not view:
                return None
            return answer(program)
        cheap = not withFields and not search.needsContent(program)
        d = cooperative.run(steps(), self.clock, float("inf") if cheap else None)
        if d is None:
            return finish()
        return d.addCallback(finish)
