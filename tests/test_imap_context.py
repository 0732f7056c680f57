"""
Tests for ESORT, CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267): the RETURN
grammar (PARTIAL, UPDATE, CONTEXT), the ESEARCH pieces, the positions of
sorted updates (L{mailstack.imap.context}), and sessions over a
StringTransport on both stores. The SEARCH transcripts are the ones Dovecot
2.3.19 answers (tests/e2e/test_imap_context.py compares them live).
"""

import random

from twisted.trial import unittest

from mailstack.imap import context, cooperative, sort
from mailstack.imap.esearch import esearchResponse, returnedMessages
from mailstack.imap.grammar.arguments import args_cancelupdate, args_search, args_sort
from mailstack.imap.grammar.reader import ParseError, Reader
from tests.stores import everyStore
from tests.test_imap_esearch import HOUR, NOW, SessionTestMixin, message


def parse(parser, text):
    reader = Reader([text])
    result = parser(reader)
    reader.end()
    return result


class GrammarTests(unittest.TestCase):
    """RETURN options of RFC 5267 in SEARCH and SORT, and CANCELUPDATE's tags."""

    def test_partial(self):
        """PARTIAL takes a range n:m (m:n is the same range) and keeps it beside the names."""
        returns, _, _ = parse(args_search, b"RETURN (PARTIAL 5:2 COUNT) ALL")
        self.assertEqual((set(returns), returns.partial), ({"PARTIAL", "COUNT"}, (2, 5)))
        returns, _, _ = parse(args_search, b"RETURN (MIN) ALL")
        self.assertIsNone(returns.partial)

    def test_partialRefused(self):
        """PARTIAL beside ALL, twice, without a range or with a zero or negative one: BAD."""
        for text in (b"RETURN (PARTIAL 1:2 ALL) ALL", b"RETURN (ALL PARTIAL 1:2) ALL",
                     b"RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL", b"RETURN (PARTIAL) ALL",
                     b"RETURN (PARTIAL 0:2) ALL", b"RETURN (PARTIAL -1:-2) ALL",
                     b"RETURN (PARTIAL 3) ALL", b"RETURN (PARTIAL 1:99999999999) ALL"):
            self.assertRaises(ParseError, parse, args_search, text)

    def test_updateAndContext(self):
        """UPDATE alone asks for no result; CONTEXT alone means ALL; UPDATE twice is BAD."""
        returns, _, _ = parse(args_search, b"RETURN (UPDATE) UNSEEN")
        self.assertEqual(set(returns), {"UPDATE"})
        returns, _, _ = parse(args_search, b"RETURN (CONTEXT) ALL")
        self.assertEqual(set(returns), {"ALL"})
        returns, _, _ = parse(args_search, b"RETURN (CONTEXT UPDATE COUNT) ALL")
        self.assertEqual(set(returns), {"UPDATE", "COUNT"})
        self.assertRaises(ParseError, parse, args_search, b"RETURN (UPDATE UPDATE) ALL")

    def test_sortReturn(self):
        """SORT takes RETURN options before its criteria (ESORT)."""
        criteria, charset, key, returns = parse(
            args_sort, b"RETURN (MIN PARTIAL 1:10) (REVERSE DATE) UTF-8 ALL")
        self.assertEqual((criteria, charset, key), ([("DATE", True)], "UTF-8", ("ALL",)))
        self.assertEqual((set(returns), returns.partial), ({"MIN", "PARTIAL"}, (1, 10)))
        for text in (b"RETURN (MIN) UTF-8 ALL", b"RETURN MIN (DATE) UTF-8 ALL",
                     b"RETURNS (MIN) (DATE) UTF-8 ALL"):
            self.assertRaises(ParseError, parse, args_sort, text)

    def test_cancelupdate(self):
        """CANCELUPDATE names one tag or more, as strings."""
        reader = Reader([b'"a1" {2}', b"b2", b""])
        self.assertEqual(args_cancelupdate(reader), ([b"a1", b"b2"],))
        reader.end()
        self.assertRaises(ParseError, parse, args_cancelupdate, b"")


class ResponseTests(unittest.TestCase):
    """PARTIAL in the ESEARCH response and in what SAVE keeps."""

    def test_partialItem(self):
        """PARTIAL (range set) comes after ALL and before COUNT; NIL where nothing is."""
        self.assertEqual(
            esearchResponse(b"t", [1, 2, 3, 4, 6, 7], {"MIN", "PARTIAL", "COUNT"}, uid=True,
                            partial=(2, 4)),
            b'* ESEARCH (TAG "t") UID MIN 1 PARTIAL (2:4 2:4) COUNT 6\r\n')
        self.assertEqual(esearchResponse(b"t", [5, 6], {"PARTIAL"}, partial=(3, 9)),
                         b'* ESEARCH (TAG "t") PARTIAL (3:9 NIL)\r\n')
        self.assertEqual(esearchResponse(b"t", [], {"PARTIAL"}, partial=(1, 2)),
                         b'* ESEARCH (TAG "t") PARTIAL (1:2 NIL)\r\n')
        self.assertEqual(esearchResponse(b"t", [9, 2, 5], {"PARTIAL"}, partial=(2, 3)),
                         b'* ESEARCH (TAG "t") PARTIAL (2:3 2,5)\r\n')

    def test_partialSaved(self):
        """SAVE with PARTIAL (and no ALL or COUNT) keeps the messages at those positions."""
        self.assertEqual(returnedMessages([3, 4, 8, 9], {"SAVE", "PARTIAL"}, (2, 3)), [4, 8])
        self.assertEqual(returnedMessages([3, 4, 8, 9], {"SAVE", "PARTIAL", "COUNT"}, (2, 3)),
                         [3, 4, 8, 9])
        self.assertEqual(returnedMessages([3, 4, 8, 9], {"SAVE", "PARTIAL", "MIN"}, (3, 3)),
                         [3, 8])
        self.assertEqual(returnedMessages([3, 4, 8, 9], {"SAVE", "PARTIAL", "MAX"}, (1, 2)),
                         [3, 4, 9])


def applyUpdate(result, line):
    """
    What a client makes of a sorted ESEARCH update line (RFC 5267 4.3):
    each REMOVEFROM pair takes the set's messages out (starting at its
    position), then each ADDTO pair puts them in at its position, in order.
    """
    result = list(result)
    words = line.rstrip(b"\r\n").split(b" ")
    for name in (b"REMOVEFROM", b"ADDTO"):
        if name not in words:
            continue
        start = words.index(name) + 1
        end = start
        while not words[end].endswith(b")"):
            end += 1
        items = b" ".join(words[start:end + 1])[1:-1].split(b" ")
        for position, numbers in zip(items[::2], items[1::2]):
            position = int(position)
            uids = []
            for run in numbers.split(b","):
                low, _, high = run.partition(b":")
                uids.extend(range(int(low), int(high or low) + 1))
            if name == b"REMOVEFROM":
                assert result[position - 1:position - 1 + len(uids)] == uids, (result, line)
                del result[position - 1:position - 1 + len(uids)]
            else:
                result[position - 1:position - 1] = uids
    return result


class SortedUpdateTests(unittest.TestCase):
    """The REMOVEFROM and ADDTO pairs of a sorted live result (CONTEXT=SORT)."""

    def update(self, old, new):
        live = context.LiveResult(b"t", None, True, old, 0, criteria=[("ARRIVAL", False)])
        gone = set(old) - set(new)
        added = set(new) - set(old)
        number = (lambda uid: uid)
        removed = context._removals(live, gone, number) if gone else []
        additions = context._additions(live, new, added, number) if added else []
        return context.updateLine(live, removed, additions)

    def test_positions(self):
        """Runs are named by position: removals last run first, additions first run first."""
        line = self.update([5, 1, 7, 3, 9], [2, 5, 7, 4, 6, 9])
        self.assertEqual(line, b'* ESEARCH (TAG "t") UID REMOVEFROM (4 3 2 1) '
                               b'ADDTO (1 2 4 4,6)\r\n')
        self.assertEqual(applyUpdate([5, 1, 7, 3, 9], line), [2, 5, 7, 4, 6, 9])

    def test_randomChanges(self):
        """Whatever leaves and joins a sorted result, a client applying the line gets the new one."""
        rng = random.Random(5267)
        for _ in range(300):
            universe = rng.sample(range(1, 40), 20)
            old = [uid for uid in universe if rng.random() < 0.5]
            kept = [uid for uid in old if rng.random() < 0.7]
            new = [uid for uid in universe if uid in kept or (uid not in old
                                                                and rng.random() < 0.3)]
            if old == new:
                continue
            self.assertEqual(applyUpdate(old, self.update(old, new)), new, (old, new))


class CompareTests(unittest.TestCase):
    """L{sort.compareCandidates}, which places new messages in a live sorted result."""

    def test_sameOrderAsSort(self):
        """Sorting by the comparison gives what SORT gives, REVERSE and ties included."""
        import functools
        import types
        rng = random.Random(5256)
        for _ in range(200):
            candidates = [sort.Candidate(uid, uid, types.SimpleNamespace(
                internalDate=rng.randrange(3), size=rng.randrange(3)), None)
                for uid in rng.sample(range(1, 50), 12)]
            criteria = [(rng.choice(("ARRIVAL", "SIZE")), rng.random() < 0.5)
                        for _ in range(rng.randrange(1, 3))]
            self.assertEqual(
                sorted(candidates, key=functools.cmp_to_key(
                    lambda a, b: sort.compareCandidates(a, b, criteria))),
                sort.sortCandidates(candidates, criteria), criteria)


class ESORTTests(SessionTestMixin, unittest.TestCase):
    """
    SORT RETURN (ESORT) and PARTIAL on the mailbox of L{SessionTestMixin}:
    sequence numbers 1-6 are UIDs 1-4, 6, 7; UID n arrived n hours ago (so
    ARRIVAL order is 7, 6, 4, 3, 2, 1); 2 and 4 are \\Seen.
    """

    def test_capability(self):
        """ESORT, CONTEXT=SEARCH and CONTEXT=SORT are advertised."""
        out = self.send(b"c CAPABILITY\r\n")
        self.assertIn(b" ESORT CONTEXT=SEARCH CONTEXT=SORT", out)

    def test_sortReturn(self):
        """SORT RETURN answers ESEARCH over the numbers in sort order, as Dovecot does."""
        self.assertEqual(self.lines(b"s SORT RETURN (MIN MAX ALL COUNT) (ARRIVAL) UTF-8 ALL\r\n"),
                         [b'* ESEARCH (TAG "s") MIN 6 MAX 1 ALL 6,5,4,3,2,1 COUNT 6', b"s OK"])
        self.assertEqual(self.lines(b"s UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 UNSEEN\r\n"),
                         [b'* ESEARCH (TAG "s") UID ALL 1,3,6:7', b"s OK"])
        self.assertEqual(self.lines(b"s SORT RETURN (MIN) (ARRIVAL) UTF-8 SUBJECT nothing\r\n"),
                         [b'* ESEARCH (TAG "s")', b"s OK"])
        self.assertEqual(self.lines(b"s SORT RETURN (COUNT) (ARRIVAL) UTF-8 SUBJECT nothing\r\n"),
                         [b'* ESEARCH (TAG "s") COUNT 0', b"s OK"])

    def test_partial(self):
        """PARTIAL gives the messages at those positions of the result, sorted or not."""
        self.assertEqual(self.lines(b"u UID SORT RETURN (PARTIAL 2:3) (ARRIVAL) UTF-8 ALL\r\n"),
                         [b'* ESEARCH (TAG "u") UID PARTIAL (2:3 6,4)', b"u OK"])
        self.assertEqual(self.lines(b"s SEARCH RETURN (PARTIAL 2:4) ALL\r\n"),
                         [b'* ESEARCH (TAG "s") PARTIAL (2:4 2:4)', b"s OK"])
        self.assertEqual(self.lines(b"s UID SEARCH RETURN (PARTIAL 4:2 COUNT MIN) ALL\r\n"),
                         [b'* ESEARCH (TAG "s") UID MIN 1 PARTIAL (2:4 2:4) COUNT 6', b"s OK"])
        self.assertEqual(self.lines(b"s SEARCH RETURN (PARTIAL 5:10) ALL\r\n"),
                         [b'* ESEARCH (TAG "s") PARTIAL (5:10 5:6)', b"s OK"])
        self.assertEqual(self.lines(b"s SEARCH RETURN (PARTIAL 7:10) ALL\r\n"),
                         [b'* ESEARCH (TAG "s") PARTIAL (7:10 NIL)', b"s OK"])

    def test_modseq(self):
        """An ESORT over a MODSEQ search reports the highest MODSEQ of what it returns."""
        modseq = self.openMailbox().messageInfo(7).modseq
        out = self.lines(b"s SORT RETURN (MIN) (ARRIVAL) UTF-8 MODSEQ 1\r\n")
        self.assertTrue(out[0].startswith(b"* OK [HIGHESTMODSEQ "), out)
        self.assertEqual(out[1:], [b'* ESEARCH (TAG "s") MIN 6 MODSEQ %d' % (modseq,), b"s OK"])

    def test_partialSave(self):
        """SAVE beside PARTIAL keeps the messages at those positions for $."""
        self.assertEqual(self.lines(b"s SEARCH RETURN (SAVE PARTIAL 2:3) UNSEEN\r\n"),
                         [b'* ESEARCH (TAG "s") PARTIAL (2:3 3,5)', b"s OK"])
        self.assertEqual(self.lines(b"f FETCH $ (UID)\r\n"),
                         [b"* 3 FETCH (UID 3)", b"* 5 FETCH (UID 6)", b"f OK"])

    def test_refusals(self):
        """Bad RETURN options are BAD (the session goes on)."""
        for command in (b"SEARCH RETURN (PARTIAL 1:2 ALL) ALL",
                        b"SORT RETURN (PARTIAL 0:2) (ARRIVAL) UTF-8 ALL",
                        b"SORT RETURN (BOGUS) (ARRIVAL) UTF-8 ALL",
                        b"UID SEARCH RETURN (UPDATE UPDATE) ALL"):
            self.assertEqual(self.lines(b"b " + command + b"\r\n"), [b"b BAD"])

    def test_disabled(self):
        """Switched off per listener: not advertised, and their RETURN options are BAD."""
        session = self.connect(disabled=frozenset({"ESORT", "CONTEXT=SEARCH"}))
        self.select(session)
        out = self.send(b"c CAPABILITY\r\n", session)
        for name in (b"ESORT", b"CONTEXT=SEARCH", b"CONTEXT=SORT"):
            self.assertNotIn(name, out)
        self.assertIn(b" ESEARCH ", out)
        for command in (b"SORT RETURN (ALL) (ARRIVAL) UTF-8 ALL", b"SEARCH RETURN (UPDATE) ALL",
                        b"SEARCH RETURN (PARTIAL 1:2) ALL", b'CANCELUPDATE "x"'):
            self.assertTrue(self.send(b"b " + command + b"\r\n", session).startswith(b"b BAD "),
                            command)
        self.assertTrue(self.send(b"b SEARCH RETURN (MIN) ALL\r\n", session).endswith(
            b"b OK SEARCH completed\r\n"))

    def test_needsWhatItExtends(self):
        """Without SORT there is no ESORT or CONTEXT=SORT; without ESEARCH no CONTEXT=SEARCH."""
        session = self.connect(disabled=frozenset({"SORT", "ESEARCH"}))
        self.select(session)
        out = self.send(b"c CAPABILITY\r\n", session)
        for name in (b"ESORT", b"CONTEXT="):
            self.assertNotIn(name, out)


class LiveSearchTests(SessionTestMixin, unittest.TestCase):
    """
    RETURN (UPDATE) keeps a SEARCH live (CONTEXT=SEARCH): what Dovecot 2.3.19
    sends when mail arrives, flags change and messages are expunged.
    """

    def setUp(self):
        SessionTestMixin.setUp(self)
        self.other = self.connect()
        self.select(self.other)

    def test_initialAnswer(self):
        """UPDATE alone answers an empty ESEARCH; beside other options, those."""
        self.assertEqual(self.lines(b"s SEARCH RETURN (UPDATE) UNSEEN\r\n"),
                         [b'* ESEARCH (TAG "s")', b"s OK"])
        self.assertEqual(self.lines(b"u UID SEARCH RETURN (UPDATE COUNT MIN) UNSEEN\r\n"),
                         [b'* ESEARCH (TAG "u") UID MIN 1 COUNT 4', b"u OK"])

    def test_addToOnNewMail(self):
        """A new message that matches is added (ADDTO, position 0) after its EXISTS."""
        self.lines(b"s SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.lines(b"u UID SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.lines(b"f UID SEARCH RETURN (UPDATE) FLAGGED\r\n")
        self.deliver(message(8))
        out = self.lines(b"n NOOP\r\n")
        self.assertEqual(out[0], b"* 7 EXISTS")
        self.assertEqual(out[-3:], [b'* ESEARCH (TAG "s") ADDTO (0 7)',
                                    b'* ESEARCH (TAG "u") UID ADDTO (0 8)', b"n OK"])

    def test_appendByOtherSession(self):
        """Mail another IMAP session APPENDs is added to the live result at the next NOOP."""
        self.lines(b"u UID SEARCH RETURN (UPDATE) SUBJECT appended\r\n")
        message = b"Subject: appended\r\n\r\nHi.\r\n"
        out = self.send(b"b APPEND INBOX {%d+}\r\n%s\r\n" % (len(message), message), self.other)
        self.assertIn(b"b OK [APPENDUID ", out)
        self.assertEqual(self.lines(b"n NOOP\r\n")[-2:], [
            b'* ESEARCH (TAG "u") UID ADDTO (0 8)', b"n OK"])

    def test_notSelected(self):
        """CANCELUPDATE needs a selected mailbox: BAD before."""
        self.lines(b"c CLOSE\r\n")
        self.assertEqual(self.lines(b'c CANCELUPDATE "s"\r\n'), [b"c BAD"])

    def test_flagChangesElsewhere(self):
        """Another session's flag change takes a message out (REMOVEFROM) or puts one in."""
        self.lines(b"s SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.send(b"b STORE 1 +FLAGS (\\Seen)\r\nb2 STORE 2 -FLAGS (\\Seen)\r\n", self.other)
        self.assertEqual(self.lines(b"n NOOP\r\n"), [
            b"* 1 FETCH (FLAGS (\\Seen))", b"* 2 FETCH (FLAGS ())",
            b'* ESEARCH (TAG "s") REMOVEFROM (0 1) ADDTO (0 2)', b"n OK"])
        self.assertEqual(self.lines(b"n NOOP\r\n"), [b"n OK"])

    def test_ownStore(self):
        """The session's own STORE updates its live result in the STORE's response."""
        self.lines(b"u UID SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.assertEqual(self.lines(b"t STORE 3 +FLAGS (\\Seen)\r\n"), [
            b"* 3 FETCH (FLAGS (\\Seen))", b'* ESEARCH (TAG "u") UID REMOVEFROM (0 3)', b"t OK"])

    def test_expunge(self):
        """
        An expunged message leaves the result just before its EXPUNGE, numbered as
        it was; not during a FETCH, where EXPUNGE may not be sent either.
        """
        self.lines(b"s SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.send(b"b STORE 3 +FLAGS.SILENT (\\Deleted)\r\nb2 EXPUNGE\r\n", self.other)
        fetched = self.lines(b"f FETCH 1 (UID)\r\n")
        self.assertFalse([line for line in fetched if b"ESEARCH" in line], fetched)
        self.assertEqual(self.lines(b"n NOOP\r\n")[-3:], [
            b'* ESEARCH (TAG "s") REMOVEFROM (0 3)', b"* 3 EXPUNGE", b"n OK"])
        self.deliver(message(8))
        self.assertEqual(self.lines(b"n NOOP\r\n")[-2:], [b'* ESEARCH (TAG "s") ADDTO (0 6)',
                                                          b"n OK"])

    def test_cancelUpdate(self):
        """CANCELUPDATE ends a live result; NO for a tag without one, BAD without a tag."""
        self.lines(b"s SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.lines(b"u UID SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.assertEqual(self.lines(b'c CANCELUPDATE "s"\r\n'), [b"c OK"])
        self.assertEqual(self.lines(b'c CANCELUPDATE "s"\r\n'), [b"c NO"])
        self.assertEqual(self.lines(b"c CANCELUPDATE\r\n"), [b"c BAD"])
        self.send(b"b STORE 1 +FLAGS (\\Seen)\r\n", self.other)
        self.assertEqual(self.lines(b"n NOOP\r\n")[-2:], [
            b'* ESEARCH (TAG "u") UID REMOVEFROM (0 1)', b"n OK"])
        self.assertEqual(self.lines(b'c CANCELUPDATE "u"\r\n'), [b"c OK"])
        self.send(b"b STORE 3 +FLAGS (\\Seen)\r\n", self.other)
        self.assertEqual(self.lines(b"n NOOP\r\n"), [b"* 3 FETCH (FLAGS (\\Seen))", b"n OK"])

    def test_duplicateTag(self):
        """UPDATE under a tag whose result is live is BAD; the first stays live."""
        self.lines(b"s SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.assertEqual(self.lines(b"s SEARCH RETURN (UPDATE) ALL\r\n"), [b"s BAD"])
        self.send(b"b STORE 1 +FLAGS (\\Seen)\r\n", self.other)
        self.assertIn(b'* ESEARCH (TAG "s") REMOVEFROM (0 1)', self.lines(b"n NOOP\r\n"))

    def test_limit(self):
        """Past MAX_LIVE live results a SEARCH is answered once, after NO [NOUPDATE]."""
        for n in range(context.MAX_LIVE):
            self.assertEqual(self.lines(b"t%d SEARCH RETURN (UPDATE COUNT) ALL\r\n" % (n,)),
                             [b'* ESEARCH (TAG "t%d") COUNT 6' % (n,), b"t%d OK" % (n,)])
        self.assertEqual(self.lines(b"x SEARCH RETURN (UPDATE COUNT) ALL\r\n"), [
            b'* NO [NOUPDATE "x"] Too many live results (limit %d)' % (context.MAX_LIVE,),
            b'* ESEARCH (TAG "x") COUNT 6', b"x OK"])
        self.assertEqual(self.lines(b"y SORT RETURN (UPDATE) (ARRIVAL) UTF-8 ALL\r\n"), [
            b'* NO [NOUPDATE "y"] Too many live results (limit %d)' % (context.MAX_LIVE,),
            b'* ESEARCH (TAG "y")', b"y OK"])
        self.deliver(message(8))
        out = self.lines(b"n NOOP\r\n")
        self.assertEqual(len([line for line in out if b"ADDTO" in line]), context.MAX_LIVE)
        self.assertNotIn(b'(TAG "x")', b"".join(out))
        self.assertEqual(self.lines(b'c CANCELUPDATE "t0"\r\n'), [b"c OK"])
        self.assertEqual(self.lines(b"z SEARCH RETURN (UPDATE) ALL\r\n"),
                         [b'* ESEARCH (TAG "z")', b"z OK"])

    def test_cancelStopsAtUnknown(self):
        """CANCELUPDATE ends the tags before the first unknown one, not those after it."""
        for tag in (b"s", b"u"):
            self.lines(tag + b" SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.assertEqual(self.lines(b'c CANCELUPDATE "s" "nope" "u"\r\n'), [b"c NO"])
        self.send(b"b STORE 1 +FLAGS (\\Seen)\r\n", self.other)
        self.assertEqual(self.lines(b"n NOOP\r\n")[-2:], [
            b'* ESEARCH (TAG "u") REMOVEFROM (0 1)', b"n OK"])

    def test_failedSearchNotWatched(self):
        """A SORT with UPDATE that fails (NO [BADCHARSET]) leaves the mailbox unwatched."""
        self.assertEqual(self.lines(b"s SORT RETURN (UPDATE) (ARRIVAL) X-NONE ALL\r\n"), [b"s NO"])
        self.assertIsNone(self.server.liveResults.view)
        self.assertEqual(self.lines(b'c CANCELUPDATE "s"\r\n'), [b"c NO"])

    def test_endsWithMailbox(self):
        """Live results end when the mailbox is closed (SELECT again)."""
        self.lines(b"s SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.lines(b"s2 SELECT INBOX\r\n")
        self.send(b"b STORE 1 +FLAGS (\\Seen)\r\n", self.other)
        self.assertNotIn(b"ESEARCH", self.send(b"n NOOP\r\n"))
        self.assertEqual(self.lines(b'c CANCELUPDATE "s"\r\n'), [b"c NO"])

    def test_whileIdle(self):
        """While idle the updates come as the changes do."""
        self.lines(b"u UID SEARCH RETURN (UPDATE) UNSEEN\r\n")
        self.assertEqual(self.send(b"i IDLE\r\n"), b"+ idling\r\n")
        self.transport.clear()
        self.deliver(message(8))
        self.clock.advance(0)
        self.assertIn(b'* ESEARCH (TAG "u") UID ADDTO (0 8)\r\n', self.transport.value())


class LiveSortTests(SessionTestMixin, unittest.TestCase):
    """RETURN (UPDATE) on SORT (CONTEXT=SORT): updates give positions in the sorted result."""

    def setUp(self):
        SessionTestMixin.setUp(self)
        self.other = self.connect()
        self.select(self.other)

    def test_positions(self):
        """New mail goes in where its arrival sorts; flag changes take runs out by position."""
        self.assertEqual(self.lines(b"u UID SORT RETURN (UPDATE ALL) (ARRIVAL) UTF-8 UNSEEN\r\n"),
                         [b'* ESEARCH (TAG "u") UID ALL 7,6,3,1', b"u OK"])
        inbox = self.openMailbox()
        self.successResultOf(inbox.append(message(8), set(), NOW - 6.5 * HOUR))
        self.assertEqual(self.lines(b"n NOOP\r\n")[-2:], [
            b'* ESEARCH (TAG "u") UID ADDTO (2 8)', b"n OK"])
        self.send(b"b0 NOOP\r\n", self.other)
        self.send(b"b UID STORE 7,8 +FLAGS (\\Seen)\r\n", self.other)
        self.assertEqual(self.lines(b"n NOOP\r\n")[-2:], [
            b'* ESEARCH (TAG "u") UID REMOVEFROM (1 7:8)', b"n OK"])
        self.send(b"b UID STORE 2 -FLAGS (\\Seen)\r\nb2 UID STORE 1 +FLAGS (\\Seen)\r\n",
                  self.other)
        self.assertEqual(self.lines(b"n NOOP\r\n")[-2:], [
            b'* ESEARCH (TAG "u") UID REMOVEFROM (3 1) ADDTO (3 2)', b"n OK"])

    def test_ties(self):
        """Messages equal on every key keep UID order when they leave and come back."""
        self.assertEqual(self.lines(b"u UID SORT RETURN (UPDATE ALL) (SIZE) UTF-8 UNSEEN\r\n"),
                         [b'* ESEARCH (TAG "u") UID ALL 1,3,6:7', b"u OK"])
        self.send(b"b UID STORE 6 +FLAGS (\\Seen)\r\n", self.other)
        self.assertEqual(self.lines(b"n NOOP\r\n")[-2:], [
            b'* ESEARCH (TAG "u") UID REMOVEFROM (3 6)', b"n OK"])
        self.send(b"b UID STORE 2,4,6 -FLAGS (\\Seen)\r\n", self.other)
        self.assertEqual(self.lines(b"n NOOP\r\n")[-2:], [
            b'* ESEARCH (TAG "u") UID ADDTO (2 2 4 4,6)', b"n OK"])

    def test_sequenceNumbers(self):
        """SORT without UID: the updates name sequence numbers."""
        self.lines(b"s SORT RETURN (UPDATE) (REVERSE ARRIVAL) UTF-8 UNSEEN\r\n")
        self.deliver(message(8))
        self.assertEqual(self.lines(b"n NOOP\r\n")[-2:], [
            b'* ESEARCH (TAG "s") ADDTO (1 7)', b"n OK"])


class SlicedUpdateTests(SessionTestMixin, unittest.TestCase):
    """Testing new mail against a live result that reads bodies runs in slices."""

    def test_otherSessionServed(self):
        """While A's live BODY search looks at new mail, B is served; A's updates follow."""
        other = self.connect()
        self.select(other)
        self.lines(b'u UID SEARCH RETURN (UPDATE) BODY "note 9"\r\n')
        self.patch(cooperative, "BURST", 0)
        for n in (8, 9, 10):
            self.deliver(message(n))
        self.assertNotIn(b"n OK", self.send(b"n NOOP\r\n"))
        self.assertIn(b"b OK NOOP completed\r\n", self.send(b"b NOOP\r\n", other))
        self.transport.clear()
        for _ in range(10):
            self.clock.advance(0)
        self.assertEqual(self.transport.value(),
                         b'* ESEARCH (TAG "u") UID ADDTO (0 9)\r\nn OK NOOP completed\r\n')


    def test_disconnectDuringUpdate(self):
        """A session that goes away while its live result looks at new mail stops reading it."""
        self.lines(b'u UID SEARCH RETURN (UPDATE) BODY "note 9"\r\n')
        self.patch(cooperative, "BURST", 0)
        read = []
        original = context.search.MessageReader
        self.patch(context.search, "MessageReader",
                   lambda *a: read.append(a) or original(*a))
        for n in range(8, 20):
            self.deliver(message(n))
        self.send(b"n NOOP\r\n")
        self.server.connectionLost(None)
        for _ in range(30):
            self.clock.advance(0)
        self.assertLess(len(read), 4)


everyStore(globals())
