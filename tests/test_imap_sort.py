"""
Tests for SORT (L{mailstack.imap.sort}, L{mailstack.imap.sorting}): base
subjects, sort keys, and the commands over StringTransports (exact bytes;
the orders and the corner cases were checked against Dovecot 2.3, see
tests/e2e/test_imap_sort.py).
"""

from twisted.trial import unittest

from mailstack.imap import cooperative, sort, sorting
from mailstack.imap.grammar.arguments import args_sort, args_thread
from mailstack.imap.grammar.reader import ParseError, Reader
from tests.test_imap_server import IMAPTestMixin


def message(subject, date=None, sender=b"a@lab.test", to=None, extra=b"", body=b"x\r\n"):
    header = b"From: " + sender + b"\r\nSubject: " + subject + b"\r\n"
    if date is not None:
        header += b"Date: " + date + b"\r\n"
    if to is not None:
        header += b"To: " + to + b"\r\n"
    return header + extra + b"\r\n" + body


class BaseSubjectTests(unittest.TestCase):
    """RFC 5256's base subject, as Dovecot extracts it."""

    def base(self, value):
        return sort.baseSubject(value)

    def test_plain(self):
        """A subject without prefixes is only case-mapped, its white space packed."""
        self.assertEqual(self.base(b"  Hello \t  World  "), (b"HELLO WORLD", False))

    def test_replyAndForwardPrefixes(self):
        """Re:, Fw:, Fwd:, repeated, with blobs between, go; the subject counts as a reply."""
        for value in (b"Re: hello", b"RE: re: Fwd: hello", b"fw:hello", b"Re [2]: hello",
                      b"[lab] Re: hello", b"Re: [lab] [x] hello", b"Re : hello"):
            self.assertEqual(self.base(value), (b"HELLO", True), value)

    def test_trailers(self):
        """Trailing (fwd) and spaces go; (fwd) makes it a forward."""
        self.assertEqual(self.base(b"hello (fwd) (FWD)  "), (b"HELLO", True))
        self.assertEqual(self.base(b"hello (fwd) x"), (b"HELLO (FWD) X", False))

    def test_forwardWrapper(self):
        """[Fwd: ...] is unwrapped and the result stripped again."""
        self.assertEqual(self.base(b"[Fwd: Re: hello]"), (b"HELLO", True))
        self.assertEqual(self.base(b"[fwd: hello] tail"), (b"TAIL", False))

    def test_blobKeptWhenAlone(self):
        """A blob that would leave nothing is the subject; an unclosed one stays."""
        self.assertEqual(self.base(b"[blob]"), (b"[BLOB]", False))
        self.assertEqual(self.base(b"[blob] x"), (b"X", False))
        self.assertEqual(self.base(b"[open x"), (b"[OPEN X", False))

    def test_notAPrefix(self):
        """Words starting like a prefix without its colon are the subject."""
        self.assertEqual(self.base(b"Report"), (b"REPORT", False))
        self.assertEqual(self.base(b"Re"), (b"RE", False))

    def test_encodedWords(self):
        """Encoded words are decoded and case-mapped in UTF-8 (title case, decomposed)."""
        self.assertEqual(self.base(b"=?iso-8859-1?q?caf=E9?="), ("CAFE\u0301".encode(), False))
        self.assertEqual(self.base("Re: \u00e4rger".encode()), ("A\u0308RGER".encode(), True))

    def test_empty(self):
        """Only prefixes: the base subject is empty."""
        self.assertEqual(self.base(b"Re: Fwd:  "), (b"", True))
        self.assertEqual(self.base(b""), (b"", False))


class KeyTests(unittest.TestCase):
    """The values SORT compares, read from a header."""

    def fields(self, text):
        from mailstack.imap import fetch
        import io
        return sort.Fields.fromHeader(fetch.parseHeaderOnly(io.BytesIO(text + b"\r\n"), 0))

    def test_brokenEncodedWords(self):
        """An encoded word that does not decode stays as written; the words around it decode."""
        self.assertEqual(
            sort.baseSubject(b"=?utf-8?q?broken_word?= =?utf-8?b?bad*64?= =?utf-8?q?x?=")[0],
            b"BROKEN WORD =?UTF-8?B?BAD*64?= X")
        self.assertEqual(sort.baseSubject(b"=?utf-8?q?a?= =?utf-8?q?b?= =?utf-8?b?bad*64?=")[0],
                         b"AB =?UTF-8?B?BAD*64?=")

    def test_encodedWordInAddrSpec(self):
        """An encoded word in an address's local part is compared as written (FROM, DISPLAYFROM)."""
        fields = self.fields(b"From: =?utf-8?q?x?=@example.com\r\nTo: =?utf-8?q?Ann?= <ann@x>")
        self.assertEqual(fields.from_, b"=?UTF-8?Q?X?=")
        self.assertEqual(fields.displayFrom, b"=?UTF-8?Q?X?=@EXAMPLE.COM")
        self.assertEqual(fields.displayTo, b"ANN")

    def test_loneCRSeparates(self):
        """A lone CR ends an address (as in ENVELOPE and Dovecot), not joins the next words to it."""
        fields = self.fields(b"From: a@example.com\rTo: b@example.com\rCc: x")
        self.assertEqual(fields.displayFrom, b"A@EXAMPLE.COM")
        self.assertEqual(fields.from_, b"A")

    def test_sentDate(self):
        """Date: becomes UTC seconds; missing or unreadable, None."""
        self.assertEqual(sort.sentDate(b"Thu, 1 Jan 1970 01:00:10 +0100"), 10)
        self.assertIsNone(sort.sentDate(b"not a date"))
        self.assertIsNone(sort.sentDate(None))

    def test_dateForms(self):
        """Dates read as Dovecot reads them: its zones, two-digit years, no weekday spelled out."""
        base = sort.sentDate(b"Mon, 1 Feb 2021 10:00:00 +0000")
        self.assertEqual(base, 1612173600)
        for value, offset in ((b"1 Feb 21 10:00 +0000", 0), (b"1 february 2021 10.00 GMT", 0),
                              (b"Mon, 1 Feb 2021 10:00:00 EST", 5 * 3600),
                              (b"Mon, 1 Feb 2021 10:00:00 PDT", 7 * 3600),
                              (b"Mon, 1 Feb 2021 10:00:00 pdt", 0),
                              (b"Mon, 1 Feb 2021 10:00:00 a", -33 * 3600),
                              (b"Mon, 1 Feb 2021 10:00:00 XYZ", 0),
                              (b"Mon,1 Feb 2021 10:00:00 (comment) -0130 (more)", 5400),
                              (b"Mon, 1 Feb 2021 10:00:00", 0),
                              (b"Mon, 1 Feb 2021 09:59:60 +0000", -1)):
            self.assertEqual(sort.sentDate(value), base + offset, value)
        self.assertEqual(sort.sentDate(b"1 Jan 69 00:00 +0000"), 3124224000)  # 2069
        for value in (b"Monday, 1 Feb 2021 10:00:00 +0000", b"31 Feb 2021 10:00 +0000",
                      b"1 Feb 2021 25:00 +0000", b"1 Feb 2021 10 +0000", b"1 Feb 1899 10:00",
                      b"Mon 1 Feb 2021 10:00 +0000"):
            self.assertIsNone(sort.sentDate(value), value)

    def test_datesBefore1970(self):
        """A date before 1970 sorts after every later one: Dovecot keeps it as 32-bit unsigned."""
        self.assertEqual(sort.sentDate(b"1 Jan 1969 00:00 +0000"), 2 ** 32 - 365 * 86400)

    def test_casemap(self):
        """Title case then one level of decomposition, compatibility forms included."""
        self.assertEqual(sort.casemap("abc"), b"ABC")
        self.assertEqual(sort.casemap("\u00e9"), "E\u0301".encode())
        self.assertEqual(sort.casemap("\ufb01\u00aa\u2460"), b"fia1")
        self.assertEqual(sort.casemap("\u00df\u0131"), "\u00dfI".encode())
        # Title-case digraphs stay as they are; one level only below U+1F80.
        self.assertEqual(sort.casemap("\u01c6\u01c4"), "\u01c5\u01c5".encode())
        self.assertEqual(sort.casemap("\u1f80"), "\u1f08\u0345".encode())
        self.assertEqual(sort.casemap("\uac01"), "\u1100\u1161\u11a8".encode())

    def test_raw8bit(self):
        """Header octets that are not UTF-8 become U+FFFD, after every letter."""
        self.assertEqual(sort.baseSubject(b"\xe9t\xe9")[0], "\ufffdT\ufffd".encode())

    def test_addressKeys(self):
        """FROM is the first address's local part; DISPLAYFROM its name, else its address."""
        fields = self.fields(b'From: "Zed Zulu" <zed@lab.test>, b@lab.test\r\n'
                             b"To: (comment) Amy@Lab.test\r\nCc: undisclosed:;\r\n")
        self.assertEqual((fields.from_, fields.displayFrom), (b"ZED", b"ZED ZULU"))
        self.assertEqual((fields.to, fields.displayTo), (b"AMY", b"AMY@LAB.TEST"))
        self.assertEqual(fields.cc, b"UNDISCLOSED")

    def test_missingAddresses(self):
        """Without the field the key is empty (sorted first)."""
        fields = self.fields(b"Subject: x\r\n")
        self.assertEqual((fields.from_, fields.displayTo, fields.cc), (b"", b"", b""))

    def test_threadingIDs(self):
        """Message-ID, References and In-Reply-To as message IDs; junk is skipped."""
        fields = self.fields(b"Message-ID: < a @ b >\r\nReferences: junk <x@y> <<z@w>\r\n"
                             b"In-Reply-To: <noat> <p@q> <r@s>\r\n")
        self.assertEqual(fields.messageID, b"a@b")
        self.assertEqual(fields.references, [b"x@y", b"<z@w"])
        self.assertEqual(fields.inReplyTo, b"p@q")

    def test_messageIDForms(self):
        """Dovecot's reading: anything with an @ between < and >; quotes and comments parsed."""
        self.assertEqual(sort.messageIDs(b"<>, <@>, <z@>, <noat> <w@x"), [b"@", b"z@"])
        self.assertEqual(sort.messageIDs(b'<"a b"@c> <t (note) @ x.y (more)> <A@B>'),
                         [b"ab@c", b"t@x.y", b"A@B"])
        self.assertEqual(sort.messageIDs(b"<a(b@c> <d@e>"), [b"d@e"])
        self.assertEqual(sort.messageIDs(None), [])


class ArgumentTests(unittest.TestCase):
    """SORT and THREAD arguments."""

    def parse(self, parser, text):
        reader = Reader([text])
        result = parser(reader)
        reader.end()
        return result

    def test_sort(self):
        """Criteria with REVERSE (each one turning the order), a charset, search keys."""
        criteria, charset, key, returns = self.parse(
            args_sort, b"(REVERSE date SUBJECT reverse REVERSE from) UTF-8 SEEN")
        self.assertIsNone(returns)
        self.assertEqual(criteria, [("DATE", True), ("SUBJECT", False), ("FROM", False)])
        self.assertEqual((charset, key), ("UTF-8", ("FLAG", "\\Seen", True)))

    def test_sortRefusals(self):
        """No criteria, unknown keys, a missing charset or key, RETURN without criteria."""
        for text in (b"() UTF-8 ALL", b"(NAME) UTF-8 ALL", b"(DATE) ALL", b"(DATE) UTF-8",
                     b"RETURN (MIN) UTF-8 ALL", b"(REVERSE) UTF-8 ALL"):
            self.assertRaises(ParseError, self.parse, args_sort, text)

    def test_thread(self):
        """An algorithm, a charset, search keys."""
        self.assertEqual(self.parse(args_thread, b"references US-ASCII ALL"),
                         ("REFERENCES", "US-ASCII", ("ALL",)))
        self.assertRaises(ParseError, self.parse, args_thread, b"REFERENCES ALL")


class SortCommandTests(IMAPTestMixin, unittest.TestCase):
    """SORT and UID SORT over a session."""

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver(message(b"Re: beta", b"Mon, 6 Jan 2020 10:00:00 +0000", b"zed@lab.test",
                             b"Carl <carl@lab.test>"))
        self.deliver(message(b"alpha", None, b"Bob <bob@lab.test>", body=b"longer body\r\n"))
        self.deliver(message(b"Beta", b"Sun, 5 Jan 2020 10:00:00 +0000", b"amy@lab.test",
                             b"bea@lab.test"))

    def test_capabilities(self):
        """SORT, SORT=DISPLAY and both THREAD algorithms are advertised."""
        out = self.send(b"c CAPABILITY\r\n")
        self.assertIn(b" SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES", out)

    def test_sortKeys(self):
        """Each key orders the messages; ties stay in sequence order, REVERSE or not."""
        self.select()
        expected = [(b"(SUBJECT)", b"2 1 3"), (b"(SUBJECT REVERSE DATE)", b"2 1 3"),
                    (b"(DATE)", b"3 1 2"), (b"(REVERSE DATE)", b"2 1 3"),
                    (b"(FROM)", b"3 2 1"), (b"(DISPLAYFROM)", b"3 2 1"),
                    (b"(TO)", b"2 3 1"), (b"(DISPLAYTO)", b"2 3 1"), (b"(CC)", b"1 2 3"),
                    (b"(REVERSE CC)", b"1 2 3"), (b"(SIZE)", b"2 3 1"),
                    (b"(ARRIVAL)", b"1 2 3"), (b"(REVERSE ARRIVAL)", b"3 2 1")]
        for criteria, numbers in expected:
            self.assertEqual(self.send(b"s SORT " + criteria + b" UTF-8 ALL\r\n"),
                             b"* SORT " + numbers + b"\r\ns OK SORT completed\r\n", criteria)

    def test_searchCriteria(self):
        """Only the messages matching the search keys are sorted; UID SORT gives UIDs."""
        self.select()
        self.send(b"s STORE 1 +FLAGS (\\Deleted)\r\n")
        self.send(b"e EXPUNGE\r\n")
        self.assertEqual(self.send(b"s SORT (SUBJECT) UTF-8 NOT FROM amy\r\n"),
                         b"* SORT 1\r\ns OK SORT completed\r\n")
        self.assertEqual(self.send(b"u UID SORT (REVERSE SUBJECT) UTF-8 ALL\r\n"),
                         b"* SORT 3 2\r\nu OK SORT completed\r\n")
        self.assertEqual(self.send(b"s SORT (DATE) UTF-8 SUBJECT gamma\r\n"),
                         b"* SORT\r\ns OK SORT completed\r\n")

    def test_savedResultAndWithin(self):
        """$ (SEARCHRES) and OLDER/YOUNGER (WITHIN) work in SORT and THREAD criteria."""
        self.select()
        self.send(b"s SEARCH RETURN (SAVE) NOT FROM amy\r\n")
        self.assertEqual(self.send(b"s SORT (SUBJECT) UTF-8 $\r\n"),
                         b"* SORT 2 1\r\ns OK SORT completed\r\n")
        self.assertEqual(self.send(b"t THREAD ORDEREDSUBJECT UTF-8 NOT $\r\n"),
                         b"* THREAD (3)\r\nt OK THREAD completed\r\n")
        # The session's clock stands at 0: every message arrived after it.
        self.assertEqual(self.send(b"s SORT (SUBJECT) UTF-8 YOUNGER 1\r\n"),
                         b"* SORT 2 1 3\r\ns OK SORT completed\r\n")
        self.assertEqual(self.send(b"s SORT (SUBJECT) UTF-8 OLDER 1\r\n"),
                         b"* SORT\r\ns OK SORT completed\r\n")
        other = self.connect(disabled=frozenset({"SEARCHRES", "WITHIN"}))
        self.select(other)
        self.assertTrue(self.send(b"s SORT (DATE) UTF-8 $\r\n", other).startswith(b"s BAD "))
        self.assertTrue(self.send(b"s SORT (DATE) UTF-8 OLDER 5\r\n", other)
                        .startswith(b"s BAD "))

    def test_refusals(self):
        """An unknown charset is NO [BADCHARSET]; an unknown RETURN option (ESORT) is BAD."""
        self.select()
        self.assertEqual(self.send(b"s SORT (DATE) X-NONE ALL\r\n"),
                         b"s NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset\r\n")
        self.assertTrue(self.send(b"s SORT RETURN (BOGUS) (DATE) UTF-8 ALL\r\n")
                        .startswith(b"s BAD "))

    def test_disabled(self):
        """A listener's disabled list takes SORT, SORT=DISPLAY or a THREAD algorithm away."""
        session = self.connect(disabled=frozenset({"SORT", "SORT=DISPLAY", "THREAD=REFERENCES"}))
        self.select(session)
        out = self.send(b"c CAPABILITY\r\n", session)
        self.assertNotIn(b"SORT", out)
        self.assertNotIn(b"THREAD=REFERENCES", out)
        self.assertIn(b"THREAD=ORDEREDSUBJECT", out)
        self.assertEqual(self.send(b"s SORT (DATE) UTF-8 ALL\r\n", session),
                         b"s BAD Unknown command SORT\r\n")
        self.assertEqual(self.send(b"t THREAD REFERENCES UTF-8 ALL\r\n", session),
                         b"t BAD Unknown thread algorithm REFERENCES\r\n")
        self.assertIn(b"t OK THREAD completed",
                      self.send(b"t THREAD ORDEREDSUBJECT UTF-8 ALL\r\n", session))
        withoutSort = self.connect(disabled=frozenset({"SORT"}))
        self.assertNotIn(b"SORT", self.send(b"c CAPABILITY\r\n", withoutSort))
        other = self.connect(disabled=frozenset({"SORT=DISPLAY"}))
        self.select(other)
        self.assertEqual(self.send(b"s SORT (DISPLAYFROM) UTF-8 ALL\r\n", other),
                         b"s BAD Unknown sort key DISPLAYFROM\r\n")

    def test_headersParsedOnce(self):
        """A message's header values are read once per selected mailbox, not per command."""
        self.select()
        calls = []
        original = sort.Fields.fromHeader.__func__

        def counting(cls, part):
            calls.append(part)
            return original(cls, part)
        self.patch(sort.Fields, "fromHeader", classmethod(counting))
        self.send(b"s SORT (SUBJECT) UTF-8 ALL\r\n")
        self.send(b"s SORT (FROM) UTF-8 ALL\r\n")
        self.send(b"t THREAD REFERENCES UTF-8 ALL\r\n")
        self.assertEqual(len(calls), 3)
        self.send(b"S1 SELECT INBOX\r\n")
        self.send(b"s SORT (SUBJECT) UTF-8 ALL\r\n")
        self.assertEqual(len(calls), 6)

    def test_expungedEntriesDropped(self):
        """The header values of expunged messages do not stay cached for ever."""
        self.patch(sorting, "STALE_SLACK", 0)
        self.select()
        self.send(b"s SORT (SUBJECT) UTF-8 ALL\r\n")
        self.assertEqual(sorted(self.server._sortFields[1]), [1, 2, 3])
        self.send(b"s STORE 2 +FLAGS (\\Deleted)\r\n")
        self.send(b"e EXPUNGE\r\n")
        self.send(b"s SORT (SUBJECT) UTF-8 ALL\r\n")
        self.assertEqual(sorted(self.server._sortFields[1]), [1, 3])


class CooperativeSortTests(IMAPTestMixin, unittest.TestCase):
    """A long SORT or THREAD runs in slices: other sessions are served meanwhile."""

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.patch(cooperative, "BURST", 0)
        for i in range(20):
            self.deliver(message(b"subject %02d" % (19 - i,)))

    def test_otherSessionServed(self):
        """While A sorts, B's NOOP is answered; A's answer and next command come at the end."""
        self.select()
        other = self.connect()
        self.select(other)
        self.assertEqual(self.send(b"a SORT (SUBJECT) UTF-8 ALL\r\na2 NOOP\r\n"), b"")
        self.assertEqual(self.send(b"b NOOP\r\n", other), b"b OK NOOP completed\r\n")
        self.transport.clear()
        for _ in range(30):
            self.clock.advance(0)
        self.assertEqual(self.transport.value(),
                         b"* SORT " + b" ".join(b"%d" % i for i in range(20, 0, -1))
                         + b"\r\na OK SORT completed\r\na2 OK NOOP completed\r\n")

    def test_metadataKeysSynchronous(self):
        """SORT by ARRIVAL or SIZE over cheap keys reads no header and answers at once."""
        self.select()
        read = []
        original = sort.Fields.fromHeader.__func__
        self.patch(sort.Fields, "fromHeader",
                   classmethod(lambda cls, part: read.append(part) or original(cls, part)))
        self.transport.clear()
        # Equal sizes, arrivals in delivery order (ties in sequence order).
        self.assertEqual(self.send(b"a SORT (REVERSE SIZE ARRIVAL) UTF-8 UNSEEN\r\n"),
                         b"* SORT " + b" ".join(b"%d" % i for i in range(1, 21))
                         + b"\r\na OK SORT completed\r\n")
        self.assertEqual(read, [])

    def test_disconnectDuringThread(self):
        """A session that goes away mid-THREAD stops reading messages, quietly."""
        self.select()
        read = []
        original = sort.Fields.fromHeader.__func__
        self.patch(sort.Fields, "fromHeader",
                   classmethod(lambda cls, part: read.append(part) or original(cls, part)))
        self.transport.clear()
        self.send(b"a THREAD REFERENCES UTF-8 ALL\r\n")
        self.server.connectionLost(None)
        for _ in range(30):
            self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")
        self.assertLess(len(read), 5)


class ExpungedElsewhereTests(IMAPTestMixin, unittest.TestCase):
    """
    SORT and THREAD while another session has expunged a message this one
    was not told of: sequence-number forms hold the EXPUNGE back (RFC 3501
    7.4.1), UID forms send it.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.uids = [self.deliver(message(b"s%d" % (n,))) for n in (3, 2, 1)]
        self.select()
        self.successResultOf(self.openMailbox("INBOX").expunge([self.uids[1]]))

    def test_sequenceNumbersHoldExpunge(self):
        """SORT and THREAD answer the living messages and send no EXPUNGE."""
        self.assertEqual(self.send(b"s SORT (SUBJECT) UTF-8 ALL\r\n"),
                         b"* SORT 3 1\r\ns OK SORT completed\r\n")
        self.assertEqual(self.send(b"t THREAD ORDEREDSUBJECT UTF-8 ALL\r\n"),
                         b"* THREAD (1)(3)\r\nt OK THREAD completed\r\n")

    def test_uidFormSendsExpunge(self):
        """UID SORT is answered in UIDs, then the EXPUNGE (and RECENT's new count) before the tagged OK."""
        self.assertEqual(self.send(b"s UID SORT (SUBJECT) UTF-8 ALL\r\n"),
                         b"* SORT %d %d\r\n* 2 EXPUNGE\r\n* 2 RECENT\r\ns OK SORT completed\r\n"
                         % (self.uids[2], self.uids[0]))
