"""
Tests for ESEARCH (RFC 4731), SEARCHRES (RFC 5182) and WITHIN (RFC 5032):
the pure pieces (L{mailstack.imap.esearch}, the RETURN grammar, C{$} in
sequence sets) and whole sessions over a StringTransport. The session
transcripts are the ones Dovecot 2.3 answers for the same mailbox (only the
texts of tagged replies differ); tests/e2e/test_imap_esearch.py compares the
two servers live.
"""

from twisted.trial import unittest

from mailstack.imap import cooperative
from mailstack.imap.esearch import answersWithESEARCH, esearchResponse, returnedMessages
from mailstack.imap.grammar.arguments import args_fetch, args_search, args_select
from mailstack.imap.grammar.reader import ParseError, Reader
from mailstack.imap.grammar.sequence import SequenceSet
from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin

NOW = 1700000000
HOUR = 3600


def message(n):
    return (b"From: Alice <alice@lab.test>\r\nTo: bob@lab.test\r\nSubject: note %d\r\n"
            b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nBody of note %d.\r\n" % (n, n))


class ResponseTests(unittest.TestCase):
    """
    L{esearchResponse} and L{savedResult}, pure.
    """

    def test_order(self):
        """Items come as MIN MAX ALL COUNT whatever the order asked, as Dovecot writes them."""
        self.assertEqual(esearchResponse(b"A1", [1, 2, 3, 7], {"COUNT", "ALL", "MAX", "MIN"}),
                         b'* ESEARCH (TAG "A1") MIN 1 MAX 7 ALL 1:3,7 COUNT 4\r\n')

    def test_uid(self):
        """A UID command's response says UID after the tag."""
        self.assertEqual(esearchResponse(b"t", [4, 9], {"ALL"}, uid=True),
                         b'* ESEARCH (TAG "t") UID ALL 4,9\r\n')

    def test_empty(self):
        """No match: no MIN, MAX or ALL, but COUNT 0; no MODSEQ."""
        self.assertEqual(esearchResponse(b"t", [], {"MIN", "MAX", "ALL", "COUNT"}, modseq=5),
                         b'* ESEARCH (TAG "t") COUNT 0\r\n')
        self.assertEqual(esearchResponse(b"t", [], {"MIN"}, uid=True),
                         b'* ESEARCH (TAG "t") UID\r\n')

    def test_modseq(self):
        """MODSEQ comes last, after the result items."""
        self.assertEqual(esearchResponse(b"t", [2], {"COUNT"}, modseq=12),
                         b'* ESEARCH (TAG "t") COUNT 1 MODSEQ 12\r\n')

    def test_sortOrder(self):
        """Numbers in sort order (for SORT's RETURN): MIN is the first, MAX the last, ALL kept."""
        self.assertEqual(esearchResponse(b"s", [5, 1, 2, 3], {"MIN", "MAX", "ALL"}),
                         b'* ESEARCH (TAG "s") MIN 5 MAX 3 ALL 5,1:3\r\n')

    def test_saveAlone(self):
        """RETURN (SAVE) alone answers nothing, unless MODSEQ is to be reported."""
        self.assertFalse(answersWithESEARCH(frozenset({"SAVE"})))
        self.assertTrue(answersWithESEARCH(frozenset({"SAVE"}), withModseq=True))
        self.assertTrue(answersWithESEARCH(frozenset({"SAVE", "COUNT"})))

    def test_returnedMessages(self):
        """With MIN and/or MAX the result is about those only, unless ALL or COUNT is there too."""
        found = [2, 4, 9]
        self.assertEqual(returnedMessages(found, {"SAVE"}), [2, 4, 9])
        self.assertEqual(returnedMessages(found, {"SAVE", "MIN"}), [2])
        self.assertEqual(returnedMessages(found, {"SAVE", "MAX"}), [9])
        self.assertEqual(returnedMessages(found, {"SAVE", "MIN", "MAX"}), [2, 9])
        self.assertEqual(returnedMessages([4], {"SAVE", "MIN", "MAX"}), [4])
        self.assertEqual(returnedMessages(found, {"SAVE", "MIN", "ALL"}), [2, 4, 9])
        self.assertEqual(returnedMessages(found, {"SAVE", "MAX", "COUNT"}), [2, 4, 9])
        self.assertEqual(returnedMessages([], {"SAVE", "MIN"}), [])


def parse(text):
    reader = Reader([text])
    result = args_search(reader)
    reader.end()
    return result


class GrammarTests(unittest.TestCase):
    """
    RETURN options, C{$} and OLDER/YOUNGER as SEARCH's parser reads them.
    """

    def test_return(self):
        """RETURN (options) before the keys, in any case; no RETURN is None."""
        self.assertEqual(parse(b"RETURN (min Count) SEEN"),
                         (frozenset({"MIN", "COUNT"}), None, ("FLAG", "\\Seen", True)))
        self.assertEqual(parse(b"SEEN"), (None, None, ("FLAG", "\\Seen", True)))

    def test_emptyReturnIsAll(self):
        """RETURN () means RETURN (ALL) (RFC 4731 3.1)."""
        self.assertEqual(parse(b"RETURN () ALL")[0], frozenset({"ALL"}))

    def test_returnThenCharset(self):
        """CHARSET follows RETURN; before it, RETURN is no search key."""
        self.assertEqual(parse(b"RETURN (ALL) CHARSET UTF-8 ALL"),
                         (frozenset({"ALL"}), "UTF-8", ("ALL",)))
        self.assertRaises(ParseError, parse, b"CHARSET UTF-8 RETURN (ALL) ALL")

    def test_badReturn(self):
        """Unknown options, a missing parenthesis or missing keys are errors."""
        for text in (b"RETURN (BOGUS) ALL", b"RETURN (MIN", b"RETURN MIN ALL", b"RETURN (ALL)",
                     b"RETURN (SAVE) 1 SAVE"):
            self.assertRaises(ParseError, parse, text)

    def test_savedMarker(self):
        """$ stands alone as a key, after UID, and as FETCH's set."""
        saved = SequenceSet([], saved=True)
        self.assertEqual(parse(b"$")[2], ("SEQ", saved))
        self.assertEqual(parse(b"UID $")[2], ("UID", saved))
        reader = Reader([b"$ (UID)"])
        self.assertEqual(args_fetch(reader)[0], saved)

    def test_notInQresync(self):
        """SELECT's QRESYNC sets cannot be $ (SELECT empties it): a syntax error, before SELECT."""
        for params in (b"INBOX (QRESYNC (1 1 $))", b"INBOX (QRESYNC (1 1 1:2 ($ 1:2)))",
                       b"INBOX (QRESYNC (1 1 (1:2 $)))"):
            self.assertRaises(ParseError, args_select, Reader([params]))

    def test_savedMarkerAlone(self):
        """$ is never part of a list or a range."""
        for text in (b"$,1", b"1:$", b"1,$", b"$:2"):
            self.assertRaises(ParseError, parse, text)

    def test_within(self):
        """OLDER and YOUNGER take seconds, 1 to 4294967295."""
        self.assertEqual(parse(b"OLDER 3600")[2], ("WITHIN", "OLDER", 3600))
        self.assertEqual(parse(b"NOT YOUNGER 4294967295")[2],
                         ("NOT", ("WITHIN", "YOUNGER", 4294967295)))
        for text in (b"OLDER 0", b"YOUNGER -1", b"OLDER x", b"YOUNGER 4294967296", b"OLDER"):
            self.assertRaises(ParseError, parse, text)


class SequenceSetTests(unittest.TestCase):
    """
    The C{$} marker in L{SequenceSet}.
    """

    def test_resolved(self):
        """$ resolves to the saved UIDs as ranges; other sets stay as they are."""
        saved = SequenceSet.fromText(b"$")
        self.assertEqual(saved.resolved([1, 2, 3, 7]).ranges, [(1, 3), (7, 7)])
        plain = SequenceSet.fromText(b"1:*")
        self.assertIs(plain.resolved([4]), plain)
        self.assertEqual(saved.resolved([]).uidIndices([1, 2]), [])

    def test_unresolvedRefused(self):
        """An unresolved $ cannot be used as numbers (a ParseError, so BAD)."""
        saved = SequenceSet.fromText(b"$")
        self.assertRaises(ParseError, saved.sequenceIndices, 3)
        self.assertRaises(ParseError, saved.uidIndices, [1])
        self.assertRaises(ParseError, saved.containsUID, 1, 1)


class SessionTestMixin(IMAPTestMixin):
    """
    INBOX as in the Dovecot comparison: UIDs 1-7, 5 expunged (so sequence
    numbers 1-6 are UIDs 1-4, 6, 7), 2 and 4 \\Seen; UID n arrived n hours
    before the clock's now.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.clock.advance(NOW)
        inbox = self.openMailbox()
        for n in range(1, 8):
            flags = {"\\Seen"} if n in (2, 4) else set()
            self.successResultOf(inbox.append(message(n), flags, NOW - n * HOUR))
        self.successResultOf(inbox.expunge([5]))
        # The setUp session timed out while the clock moved. A session claims
        # \Recent, as the client that read the mail did before the Dovecot run.
        self.server, self.transport = self.connect()
        self.select()
        self.send(b"S2 LOGOUT\r\n")
        self.server, self.transport = self.connect()
        self.select()

    def lines(self, data):
        """Send a command; its response's lines, tagged text left out of the last."""
        out = self.send(data).split(b"\r\n")
        self.assertEqual(out[-1], b"")
        tagged = out[-2].split(b" ")
        return out[:-2] + [b" ".join(tagged[:2])]


class ESEARCHTests(SessionTestMixin, unittest.TestCase):
    """
    SEARCH and UID SEARCH with RETURN options (RFC 4731).
    """

    def test_capability(self):
        """ESEARCH, SEARCHRES and WITHIN are advertised after login."""
        out = self.send(b"c CAPABILITY\r\n")
        self.assertIn(b" ESEARCH SEARCHRES WITHIN", out)

    def test_everyOption(self):
        """MIN MAX ALL COUNT over sequence numbers."""
        self.assertEqual(self.lines(b"d SEARCH RETURN (MIN MAX COUNT ALL) ALL\r\n"),
                         [b'* ESEARCH (TAG "d") MIN 1 MAX 6 ALL 1:6 COUNT 6', b"d OK"])

    def test_uid(self):
        """UID SEARCH answers UIDs, with UID in the response."""
        self.assertEqual(self.lines(b"e UID SEARCH RETURN (MIN MAX COUNT ALL) ALL\r\n"),
                         [b'* ESEARCH (TAG "e") UID MIN 1 MAX 7 ALL 1:4,6:7 COUNT 6', b"e OK"])

    def test_emptyReturn(self):
        """RETURN () is ALL."""
        self.assertEqual(self.lines(b"f SEARCH RETURN () UNSEEN\r\n"),
                         [b'* ESEARCH (TAG "f") ALL 1,3,5:6', b"f OK"])

    def test_noMatch(self):
        """No match: COUNT 0, and MIN or ALL are left out."""
        self.assertEqual(self.lines(b"g SEARCH RETURN (COUNT) SUBJECT nothing\r\n"),
                         [b'* ESEARCH (TAG "g") COUNT 0', b"g OK"])
        self.assertEqual(self.lines(b"h SEARCH RETURN (MIN) SUBJECT nothing\r\n"),
                         [b'* ESEARCH (TAG "h")', b"h OK"])
        self.assertEqual(self.lines(b"i UID SEARCH RETURN (ALL) SUBJECT nothing\r\n"),
                         [b'* ESEARCH (TAG "i") UID', b"i OK"])

    def test_contentKeys(self):
        """Keys that read message files answer the same way (sequence order kept)."""
        self.assertEqual(self.lines(b"j SEARCH RETURN (MAX) SEEN\r\n"),
                         [b'* ESEARCH (TAG "j") MAX 4', b"j OK"])
        self.assertEqual(self.lines(b"k UID SEARCH RETURN (ALL) 1:* NOT BODY \"note 3\"\r\n"),
                         [b'* ESEARCH (TAG "k") UID ALL 1:2,4,6:7', b"k OK"])

    def test_classicUnchanged(self):
        """Without RETURN the answer is still * SEARCH."""
        self.assertEqual(self.lines(b"l SEARCH UNSEEN\r\n"), [b"* SEARCH 1 3 5 6", b"l OK"])

    def test_badOptions(self):
        """Unknown options and RETURN after CHARSET are BAD; a repeated option is fine."""
        self.assertEqual(self.lines(b"t SEARCH RETURN (BOGUS) ALL\r\n"), [b"t BAD"])
        self.assertEqual(self.lines(b"ag SEARCH CHARSET UTF-8 RETURN (ALL) ALL\r\n"),
                         [b"ag BAD"])
        self.assertEqual(self.lines(b"u SEARCH RETURN (COUNT COUNT) ALL\r\n"),
                         [b'* ESEARCH (TAG "u") COUNT 6', b"u OK"])
        self.assertEqual(self.lines(b"ah SEARCH RETURN (ALL) CHARSET UTF-8 ALL\r\n"),
                         [b'* ESEARCH (TAG "ah") ALL 1:6', b"ah OK"])

    def test_modseq(self):
        """
        A MODSEQ key enables CONDSTORE and adds MODSEQ: with MIN or MAX alone
        the highest of those messages', else of every match (as Dovecot).
        """
        highest = self.openMailbox().highestModseq
        infos = self.server.view.messageInfos()
        modseqs = {uid: info.modseq for uid, info in infos.items()}
        self.assertEqual(self.lines(b"aj SEARCH RETURN (MIN) MODSEQ 1\r\n"),
                         [b"* OK [HIGHESTMODSEQ %d] Highest" % (highest,),
                          b'* ESEARCH (TAG "aj") MIN 1 MODSEQ %d' % (modseqs[1],), b"aj OK"])
        self.assertEqual(self.lines(b"ak UID SEARCH RETURN (MIN MAX) MODSEQ 1 2:3\r\n"),
                         [b'* ESEARCH (TAG "ak") UID MIN 2 MAX 3 MODSEQ %d'
                          % (max(modseqs[2], modseqs[3]),), b"ak OK"])
        self.assertEqual(self.lines(b"al SEARCH RETURN (MIN COUNT) MODSEQ 1\r\n"),
                         [b'* ESEARCH (TAG "al") MIN 1 COUNT 6 MODSEQ %d'
                          % (max(modseqs.values()),), b"al OK"])
        self.assertEqual(self.lines(b"am SEARCH RETURN (ALL) MODSEQ 1 SUBJECT nothing\r\n"),
                         [b'* ESEARCH (TAG "am")', b"am OK"])

    def test_modseqMinDiffers(self):
        """MIN's MODSEQ is its message's even when a later match changed since."""
        self.send(b"a STORE 6 +FLAGS.SILENT (\\Flagged)\r\n")
        infos = self.server.view.messageInfos()
        self.assertGreater(infos[7].modseq, infos[1].modseq)
        out = self.lines(b"b SEARCH RETURN (MIN) MODSEQ 1\r\n")
        self.assertEqual(out[-2], b'* ESEARCH (TAG "b") MIN 1 MODSEQ %d' % (infos[1].modseq,))

    def test_disabled(self):
        """With ESEARCH disabled, RETURN is BAD and neither ESEARCH nor SEARCHRES is offered."""
        session = self.connect(disabled=frozenset({"ESEARCH"}))
        self.select(session)
        caps = self.send(b"c CAPABILITY\r\n", session)
        self.assertNotIn(b"ESEARCH", caps)
        self.assertNotIn(b"SEARCHRES", caps)
        self.assertIn(b" WITHIN", caps)
        self.assertTrue(self.send(b"d SEARCH RETURN (COUNT) ALL\r\n", session).startswith(
            b"d BAD "))
        self.assertEqual(self.send(b"e SEARCH SEEN\r\n", session),
                         b"* SEARCH 2 4\r\ne OK SEARCH completed\r\n")


class SEARCHRESTests(SessionTestMixin, unittest.TestCase):
    """
    RETURN (SAVE) and C{$} (RFC 5182).
    """

    def uids(self, command=b"FETCH $ (UID)"):
        """What $ holds now, as FETCH (or UID FETCH) reports it."""
        return self.lines(b"z " + command + b"\r\n")

    def test_saveThenFetch(self):
        """SAVE alone answers nothing; FETCH $ and UID FETCH $ use what it found."""
        self.assertEqual(self.lines(b"k SEARCH RETURN (SAVE) SEEN\r\n"), [b"k OK"])
        self.assertEqual(self.uids(b"FETCH $ (FLAGS)"),
                         [b"* 2 FETCH (FLAGS (\\Seen))", b"* 4 FETCH (FLAGS (\\Seen))", b"z OK"])
        self.assertEqual(self.uids(b"UID FETCH $ (FLAGS)"),
                         [b"* 2 FETCH (UID 2 FLAGS (\\Seen))", b"* 4 FETCH (UID 4 FLAGS (\\Seen))",
                          b"z OK"])

    def test_saveMinMax(self):
        """SAVE with MIN keeps the first only; with MIN MAX both; with COUNT everything."""
        self.assertEqual(self.lines(b"n SEARCH RETURN (SAVE MIN) UNSEEN\r\n"),
                         [b'* ESEARCH (TAG "n") MIN 1', b"n OK"])
        self.assertEqual(self.uids(), [b"* 1 FETCH (UID 1)", b"z OK"])
        self.assertEqual(self.lines(b"m UID SEARCH RETURN (SAVE MIN MAX) ALL\r\n"),
                         [b'* ESEARCH (TAG "m") UID MIN 1 MAX 7', b"m OK"])
        self.assertEqual(self.uids(b"UID FETCH $ (UID)"),
                         [b"* 1 FETCH (UID 1)", b"* 6 FETCH (UID 7)", b"z OK"])
        self.assertEqual(self.lines(b"p SEARCH RETURN (SAVE COUNT) 5:6\r\n"),
                         [b'* ESEARCH (TAG "p") COUNT 2', b"p OK"])
        self.assertEqual(self.uids(), [b"* 5 FETCH (UID 6)", b"* 6 FETCH (UID 7)", b"z OK"])

    def test_searchDollar(self):
        """$ as a search key, alone, after UID, and with other keys."""
        self.lines(b"k SEARCH RETURN (SAVE) SEEN\r\n")
        self.assertEqual(self.lines(b"r SEARCH $\r\n"), [b"* SEARCH 2 4", b"r OK"])
        self.assertEqual(self.lines(b"s UID SEARCH UID $\r\n"), [b"* SEARCH 2 4", b"s OK"])
        self.assertEqual(self.lines(b"t SEARCH RETURN (MIN) $ 4\r\n"),
                         [b'* ESEARCH (TAG "t") MIN 4', b"t OK"])
        self.assertEqual(self.lines(b"u SEARCH $,1\r\n"), [b"u BAD"])
        self.assertEqual(self.lines(b"v SEARCH 1:$\r\n"), [b"v BAD"])

    def test_emptyBeforeSave(self):
        """Before any SAVE, $ is empty: FETCH $ answers only OK."""
        self.assertEqual(self.uids(), [b"z OK"])
        self.assertEqual(self.lines(b"r SEARCH $\r\n"), [b"* SEARCH", b"r OK"])

    def test_resetBySelect(self):
        """SELECT and EXAMINE, even of the same mailbox, empty $."""
        for command in (b"SELECT INBOX", b"EXAMINE INBOX"):
            self.lines(b"k SEARCH RETURN (SAVE) ALL\r\n")
            self.assertIn(b"s OK", self.send(b"s " + command + b"\r\n"))
            self.assertEqual(self.uids(), [b"z OK"])

    def test_resetByUnselect(self):
        """UNSELECT and CLOSE leave no $ for the next mailbox."""
        for command in (b"UNSELECT", b"CLOSE"):
            self.lines(b"k SEARCH RETURN (SAVE) ALL\r\n")
            self.lines(b"s " + command + b"\r\n")
            self.assertIn(b"S1 OK", self.send(b"S1 SELECT INBOX\r\n"))
            self.assertEqual(self.uids(), [b"z OK"])

    def test_resetByNO(self):
        """A SAVE search that fails with NO (BADCHARSET) leaves $ empty."""
        self.lines(b"d SEARCH RETURN (SAVE) ALL\r\n")
        self.assertEqual(self.lines(b"e SEARCH RETURN (SAVE) CHARSET FOO ALL\r\n"),
                         [b"e NO"])
        self.assertEqual(self.uids(), [b"z OK"])

    def test_keptOnBAD(self):
        """A SAVE search refused as BAD (a syntax error) leaves $ as it was, as in Dovecot."""
        self.lines(b"g SEARCH RETURN (SAVE) 2:3\r\n")
        self.assertEqual(self.lines(b"h SEARCH RETURN (SAVE) UID 99:100 BOGUS\r\n"), [b"h BAD"])
        self.assertEqual(self.uids(), [b"* 2 FETCH (UID 2)", b"* 3 FETCH (UID 3)", b"z OK"])

    def test_expungedLeave(self):
        """An expunged message leaves $; the others keep their new numbers."""
        self.lines(b"g SEARCH RETURN (SAVE) 2:3\r\n")
        self.send(b"j STORE 2 +FLAGS.SILENT (\\Deleted)\r\n")
        self.assertEqual(self.lines(b"k EXPUNGE\r\n"), [b"* 2 EXPUNGE", b"k OK"])
        self.assertEqual(self.uids(), [b"* 2 FETCH (UID 3)", b"z OK"])

    def test_storeCopyMoveExpunge(self):
        """STORE, COPY, MOVE and UID EXPUNGE take $."""
        self.createMailbox("Trash")
        self.lines(b"a SEARCH RETURN (SAVE) 2,4\r\n")
        self.assertEqual(self.lines(b"b STORE $ +FLAGS (\\Flagged)\r\n"),
                         [b"* 2 FETCH (FLAGS (\\Flagged \\Seen))",
                          b"* 4 FETCH (FLAGS (\\Flagged \\Seen))", b"b OK"])
        self.assertEqual(self.lines(b"c COPY $ Trash\r\n")[-1], b"c OK")
        self.assertIn(b"(MESSAGES 2)", self.send(b"s STATUS Trash (MESSAGES)\r\n"))
        self.lines(b"d SEARCH RETURN (SAVE) 1\r\n")
        self.assertEqual(self.lines(b"e UID EXPUNGE $\r\n"), [b"e OK"])  # not \Deleted
        self.send(b"f STORE $ +FLAGS.SILENT (\\Deleted)\r\n")
        self.assertEqual(self.lines(b"g UID EXPUNGE $\r\n"), [b"* 1 EXPUNGE", b"g OK"])
        self.lines(b"h SEARCH RETURN (SAVE) 1\r\n")
        out = self.lines(b"i MOVE $ Trash\r\n")
        self.assertIn(b"* 1 EXPUNGE", out)
        self.assertEqual(out[-1], b"i OK")
        self.assertIn(b"(MESSAGES 3)", self.send(b"s STATUS Trash (MESSAGES)\r\n"))

    def test_saveReadsPreviousResult(self):
        """A SAVE search that uses $ reads the result saved before it, then replaces it."""
        self.lines(b"a SEARCH RETURN (SAVE) 1:3\r\n")
        self.assertEqual(self.lines(b"b SEARCH RETURN (SAVE ALL) $ SEEN\r\n"),
                         [b'* ESEARCH (TAG "b") ALL 2', b"b OK"])
        self.assertEqual(self.uids(), [b"* 2 FETCH (UID 2)", b"z OK"])

    def test_saveWithModseq(self):
        """SAVE alone with a MODSEQ key still reports MODSEQ in an ESEARCH line, as Dovecot does."""
        out = self.lines(b"b SEARCH RETURN (SAVE) MODSEQ 1 SEEN\r\n")
        self.assertEqual(len(out), 3, out)
        self.assertTrue(out[0].startswith(b"* OK [HIGHESTMODSEQ "), out)
        self.assertRegex(out[1], rb'^\* ESEARCH \(TAG "b"\) MODSEQ \d+$')
        self.assertEqual(self.uids(), [b"* 2 FETCH (UID 2)", b"* 4 FETCH (UID 4)", b"z OK"])

    def test_fetchChangedSince(self):
        """UID FETCH $ with CHANGEDSINCE and VANISHED (QRESYNC) works on the saved UIDs."""
        self.server, self.transport = self.connect()
        self.login()
        self.assertIn(b"a OK", self.send(b"a ENABLE QRESYNC\r\n"))
        self.assertIn(b"S1 OK", self.send(b"S1 SELECT INBOX\r\n"))
        self.lines(b"b UID SEARCH RETURN (SAVE) UID 6:7\r\n")
        self.send(b"c UID STORE 6 +FLAGS.SILENT (\\Deleted)\r\n")
        self.assertEqual(self.lines(b"d EXPUNGE\r\n"), [b"* VANISHED 6", b"d OK"])
        out = self.lines(b"e UID FETCH $ (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n")
        self.assertEqual(out[0], b"* VANISHED (EARLIER) 6")
        self.assertEqual([line.split(b" (")[0] for line in out[1:]], [b"* 5 FETCH", b"e OK"])

    def test_pipelinedAfterSlicedSearch(self):
        """A FETCH $ pipelined behind a SAVE search that runs in slices waits for its result."""
        self.patch(cooperative, "BURST", 0)
        out = self.send(b'a SEARCH RETURN (SAVE) BODY "note 3"\r\nb FETCH $ (UID)\r\n')
        self.assertEqual(out, b"")  # the search yields to the reactor; FETCH waits
        self.clock.advance(0)
        self.assertEqual(self.transport.value(),
                         b"a OK SEARCH completed\r\n* 3 FETCH (UID 3)\r\nb OK FETCH completed\r\n")

    def test_disabled(self):
        """With SEARCHRES disabled it is not offered, and SAVE and $ are BAD."""
        session = self.connect(disabled=frozenset({"SEARCHRES"}))
        self.select(session)
        caps = self.send(b"c CAPABILITY\r\n", session)
        self.assertIn(b" ESEARCH", caps)
        self.assertNotIn(b"SEARCHRES", caps)
        for command in (b"d SEARCH RETURN (SAVE) ALL\r\n", b"d SEARCH $\r\n",
                        b"d FETCH $ (UID)\r\n", b"d UID STORE $ +FLAGS (x)\r\n"):
            self.assertTrue(self.send(command, session).startswith(b"d BAD "), command)


class WITHINTests(SessionTestMixin, unittest.TestCase):
    """
    OLDER and YOUNGER (RFC 5032) against the session's clock.
    """

    def test_younger(self):
        """YOUNGER n: internal date at most n seconds ago (the boundary included)."""
        self.assertEqual(self.lines(b"a UID SEARCH YOUNGER 7200\r\n"), [b"* SEARCH 1 2", b"a OK"])
        self.assertEqual(self.lines(b"b UID SEARCH YOUNGER 7199\r\n"), [b"* SEARCH 1", b"b OK"])

    def test_older(self):
        """OLDER n: internal date more than n seconds ago (the boundary excluded)."""
        self.assertEqual(self.lines(b"a UID SEARCH OLDER 21600\r\n"), [b"* SEARCH 7", b"a OK"])
        self.assertEqual(self.lines(b"b UID SEARCH OLDER 21599\r\n"), [b"* SEARCH 6 7", b"b OK"])

    def test_clockMoves(self):
        """The interval counts from the time of the command."""
        self.clock.advance(1000)
        self.assertEqual(self.lines(b"a UID SEARCH YOUNGER 7200\r\n"), [b"* SEARCH 1", b"a OK"])

    def test_combined(self):
        """With ESEARCH and in OR/NOT."""
        self.assertEqual(self.lines(b"t SEARCH RETURN (COUNT) OR YOUNGER 3600 OLDER 21600\r\n"),
                         [b'* ESEARCH (TAG "t") COUNT 2', b"t OK"])
        self.assertEqual(self.lines(b"u UID SEARCH RETURN (ALL) NOT YOUNGER 10000\r\n"),
                         [b'* ESEARCH (TAG "u") UID ALL 3:4,6:7', b"u OK"])

    def test_badInterval(self):
        """Zero, negative, non-numeric or over 32-bit intervals are BAD."""
        for text in (b"YOUNGER 0", b"YOUNGER -1", b"OLDER x", b"YOUNGER 4294967296"):
            self.assertEqual(self.send(b"a SEARCH " + text + b"\r\n"),
                             b"a BAD SEARCH: Invalid search interval parameter\r\n")

    def test_disabled(self):
        """With WITHIN disabled it is not offered and OLDER/YOUNGER are BAD."""
        session = self.connect(disabled=frozenset({"WITHIN"}))
        self.select(session)
        self.assertNotIn(b"WITHIN", self.send(b"c CAPABILITY\r\n", session))
        self.assertTrue(self.send(b"d SEARCH OLDER 5\r\n", session).startswith(b"d BAD "))


everyStore(globals())
