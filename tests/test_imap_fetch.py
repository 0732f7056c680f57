"""
Tests for L{mailstack.imap.fetch}: MIME structure as byte ranges, ENVELOPE,
BODYSTRUCTURE and sections, on real-world-like and malformed messages.
"""

import io

from twisted.trial import unittest

from mailstack.imap import fetch
from mailstack.imap.grammar.fetchspec import Section


def crlf(text):
    if isinstance(text, str):
        text = text.encode("utf-8")
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


SIMPLE = crlf("""\
From: Alice Example <alice@lab.test>
To: bob@lab.test, "Carol, C." <carol@example.test>
Subject: Lunch
Date: Mon, 7 Feb 1994 21:52:25 -0800
Message-ID: <1@lab.test>

Hello Bob,
see you at noon.
""")

MIXED = crlf("""\
From: alice@lab.test
To: bob@lab.test
Subject: Report
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==outer=="

This is a multi-part message in MIME format.
--==outer==
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 report attached.
--==outer==
Content-Type: application/pdf; name="report.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="report.pdf"
Content-ID: <pdf@lab.test>
Content-Description: The report

JVBERi0xLjQK
JVBERi0xLjQK
--==outer==
Content-Type: message/rfc822

From: carol@example.test
To: alice@lab.test
Subject: Original
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain

plain text
--inner
Content-Type: text/html

<p>html</p>
--inner--
--==outer==--
epilogue
""")


def parse(data):
    return fetch.parseStructure(io.BytesIO(data))


def section(root, data, text, part=(), fields=()):
    where = fetch.locate(root, Section(tuple(part), text, tuple(fields)))
    if isinstance(where, bytes):
        return where
    return data[where[0]:where[1]]


class StructureTests(unittest.TestCase):
    """
    Parsing parts into byte ranges.
    """

    def test_simpleOffsets(self):
        """A single-part message: header then body, sizes exclude the header."""
        root = parse(SIMPLE)
        self.assertEqual(SIMPLE[:root.headerEnd].count(b"\r\n"), 6)
        self.assertEqual(root.size, len(b"Hello Bob,\r\nsee you at noon.\r\n"))
        self.assertEqual(root.lines, 2)
        self.assertEqual(root.end, len(SIMPLE))

    def test_multipartRanges(self):
        """Each part's body ends before the CRLF preceding the next boundary."""
        root = parse(MIXED)
        self.assertTrue(root.multipart)
        text, pdf, message = root.children
        self.assertEqual(MIXED[text.headerEnd:text.end], b"Caf=C3=A9 report attached.")
        self.assertEqual(MIXED[pdf.headerEnd:pdf.end], b"JVBERi0xLjQK\r\nJVBERi0xLjQK")
        self.assertEqual(pdf.lines, 1)
        self.assertTrue(message.isMessage)
        inner = message.message
        self.assertTrue(inner.multipart)
        self.assertEqual([c.subType for c in inner.children], [b"plain", b"html"])
        self.assertEqual(MIXED[inner.children[1].headerEnd:inner.children[1].end],
                         b"<p>html</p>")

    def test_encapsulatedMessageEndsAtOuterBoundary(self):
        """The message/rfc822 part's body is the whole encapsulated message, with the line end of its last close delimiter (Dovecot)."""
        root = parse(MIXED)
        message = root.children[2]
        body = MIXED[message.headerEnd:message.end]
        self.assertTrue(body.startswith(b"From: carol@example.test\r\n"))
        self.assertTrue(body.endswith(b"--inner--\r\n"))

    def test_lfOnlyBoundaries(self):
        """Bare-LF line ends still split parts (one octet before the boundary)."""
        data = (b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n--b--\n")
        root = parse(data)
        self.assertEqual([data[c.headerEnd:c.end] for c in root.children], [b"one", b"two"])

    def test_noFinalNewline(self):
        """A body without a final line end: its last line adds no line end (as Dovecot)."""
        root = parse(b"Subject: x\r\n\r\na\r\nb")
        self.assertEqual(root.lines, 1)
        self.assertEqual(root.size, 4)

    def test_lineCountBeforeBoundary(self):
        """A part's line count is the line ends inside its body, as Dovecot counts them."""
        data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nhello\n\n"
                    "--b\n\nhello\n--b\n\n\n--b\n\n--b\n\nhello\nworld\n--b--\n")
        root = parse(data)
        self.assertEqual([(c.size, c.lines) for c in root.children],
                         [(7, 1), (5, 0), (0, 0), (0, 0), (12, 1)])

    def test_lineCountSinglePart(self):
        """A single-part body counts its line ends; a last line without one adds none."""
        self.assertEqual([(r.size, r.lines) for r in (
            parse(b"Subject: x\r\n\r\nhello\r\n"), parse(b"Subject: x\r\n\r\nhello"),
            parse(b"Subject: x\r\n\r\nhello\r\n\r\n"))],
            [(7, 1), (5, 0), (9, 2)])

    def test_lineCountEncapsulated(self):
        """A message/rfc822 part and the text inside it count line ends the same way."""
        data = crlf("Content-Type: multipart/mixed; boundary=o\n\n--o\n"
                    "Content-Type: message/rfc822\n\nSubject: in\n\ninner\n--o--\n")
        message = parse(data).children[0]
        self.assertEqual((message.size, message.lines), (20, 2))
        self.assertEqual((message.message.size, message.message.lines), (5, 0))

    def test_emptyBody(self):
        """No body at all: size 0, 0 lines."""
        root = parse(b"Subject: x\r\n\r\n")
        self.assertEqual((root.size, root.lines), (0, 0))

    def test_headerOnly(self):
        """No blank line: everything is header."""
        root = parse(b"Subject: x\r\nFrom: y\r\n")
        self.assertEqual(root.header(b"from"), b"y")
        self.assertEqual(root.size, 0)

    def test_foldedHeaders(self):
        """Folded fields are unfolded for their values."""
        root = parse(b"Subject: a\r\n  long\r\n\tsubject\r\n\r\nx")
        self.assertEqual(root.header(b"subject"), b"a  long\tsubject")

    def test_headerOnlyParse(self):
        """parseHeaderOnly stops at the body."""
        root = fetch.parseHeaderOnly(io.BytesIO(MIXED), len(MIXED))
        self.assertFalse(root.complete)
        self.assertEqual(root.header(b"subject"), b"Report")
        self.assertEqual(root.end, len(MIXED))

    def test_longLineSplit(self):
        """A line longer than the read chunk is not taken for a boundary."""
        long = b"x" * (fetch.CHUNK + 10) + b"--b\r\n"
        data = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" + long
                + b"--b--\r\n")
        root = parse(data)
        self.assertEqual(len(root.children), 1)
        self.assertEqual(data[root.children[0].headerEnd:root.children[0].end], long[:-2])


class MalformedTests(unittest.TestCase):
    """
    Real mail is full of broken MIME: none of it may raise.
    """

    def test_parameterWithoutEquals(self):
        """A Content-Type parameter without '=' is skipped (Twisted: ValueError)."""
        root = parse(b"Content-Type: text/plain; charset; format=flowed\r\n\r\nhi\r\n")
        self.assertEqual(root.params, [(b"format", b"flowed")])
        self.assertIn(b'("format" "flowed" "charset" "us-ascii")', fetch.bodyStructure(root))

    def test_typeWithoutSubtype(self):
        """'Content-Type: text' is text/plain."""
        root = parse(b"Content-Type: text\r\n\r\nhi\r\n")
        self.assertEqual((root.mainType, root.subType), (b"text", b"plain"))

    def test_multipartWithoutBoundary(self):
        """A multipart with no boundary parameter has no parts: BODYSTRUCTURE shows one empty text/plain (Dovecot)."""
        root = parse(b"Content-Type: multipart/mixed\r\n\r\nhi\r\n")
        self.assertTrue(root.multipart)
        self.assertEqual(root.children, [])
        self.assertEqual(
            fetch.bodyStructure(root),
            b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
            b' "mixed" NIL NIL NIL NIL)')
        self.assertEqual(fetch.locate(root, Section((1,))), b"")

    def test_boundaryNeverSeen(self):
        """A multipart whose boundary never appears has no parts; its body is all preamble."""
        root = parse(b"Content-Type: multipart/mixed; boundary=zz\r\n\r\nhi\r\n")
        self.assertTrue(root.multipart)
        self.assertEqual(root.children, [])
        self.assertEqual(root.size, 4)

    def test_missingClose(self):
        """A multipart cut short (no close delimiter) ends at the end of the file."""
        data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n"
        root = parse(data)
        self.assertEqual(len(root.children), 1)
        self.assertEqual(data[root.children[0].headerEnd:root.children[0].end], b"one\r\n")

    def test_eightBitHeaders(self):
        """Raw UTF-8 in headers goes out as literals, never as broken quoted strings."""
        root = parse(crlf("Subject: Caf\u00e9\nFrom: J\u00fcrgen <j@lab.test>\n\nx\n"))
        env = fetch.envelope(root)
        self.assertIn(b"{5}\r\nCaf\xc3\xa9", env)
        self.assertIn(b"{7}\r\nJ\xc3\xbcrgen", env)

    def test_garbageHeaderLine(self):
        """A line that is no header field is kept and does not break parsing."""
        root = parse(b"From nobody Mon Jan 1\r\nSubject: s\r\n\r\nbody\r\n")
        self.assertEqual(root.header(b"subject"), b"s")

    def test_deepNesting(self):
        """BODYSTRUCTURE of nesting past MAX_DEPTH ends there in a leaf (no envelope), not a recursion error."""
        depth = fetch.MAX_DEPTH + 20
        data = b"".join(b"Content-Type: message/rfc822\r\n\r\n" for _ in range(depth)) + b"x\r\n"
        structure = fetch.bodyStructure(parse(data))
        self.assertTrue(structure.startswith(b'("message" "rfc822" NIL NIL NIL "7bit" '), structure[:80])
        self.assertEqual(structure.count(b'"message" "rfc822"'), fetch.MAX_DEPTH + 1)
        self.assertEqual(structure.count(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
                         fetch.MAX_DEPTH)
        self.assertEqual(structure.count(b"("), structure.count(b")"))
        leaf = b'("message" "rfc822" NIL NIL NIL "7bit" %d NIL NIL NIL NIL)' % (
            len(data) - (fetch.MAX_DEPTH + 1) * len(b"Content-Type: message/rfc822\r\n\r\n"),)
        self.assertIn(leaf, structure, "no leaf at depth MAX_DEPTH")

    def test_nonexistentPart(self):
        """A part that does not exist is the empty string (Twisted: IndexError)."""
        root = parse(SIMPLE)
        self.assertEqual(section(root, SIMPLE, None, (5,)), b"")
        self.assertEqual(section(root, SIMPLE, "HEADER", (1,)), b"")
        root = parse(MIXED)
        self.assertEqual(section(root, MIXED, None, (1, 9)), b"")
        self.assertEqual(section(root, MIXED, None, (4,)), b"")

    def test_brokenAddresses(self):
        """Unparseable From headers give Dovecot's ENVELOPE address list (From, Sender, Reply-To)."""
        cases = [
            (b"<<>>", b'((NIL NIL "MISSING_MAILBOX" "SYNTAX_ERROR"))'),
            (b"@@@", b'((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN"))'),
            (b'"unterminated', b'((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN"))'),
            (b"group: a@b", b'((NIL NIL "group" NIL)(NIL NIL "a" "b")(NIL NIL NIL NIL))'),
            (b";;;", b'((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN"))'),
            (b"(c", b"NIL"),
        ]
        for value, addresses in cases:
            env = fetch.envelope(parse(b"From: " + value + b"\r\n\r\n"))
            self.assertEqual(env, b"(NIL NIL %s %s %s NIL NIL NIL NIL NIL)"
                             % (addresses, addresses, addresses), value)


class EnvelopeTests(unittest.TestCase):
    """
    ENVELOPE.
    """

    def test_simple(self):
        """The RFC 3501 field order; Sender and Reply-To default to From."""
        env = fetch.envelope(parse(SIMPLE))
        self.assertEqual(
            env,
            b'("Mon, 7 Feb 1994 21:52:25 -0800" "Lunch" '
            b'(("Alice Example" NIL "alice" "lab.test")) '
            b'(("Alice Example" NIL "alice" "lab.test")) '
            b'(("Alice Example" NIL "alice" "lab.test")) '
            b'((NIL NIL "bob" "lab.test")("Carol, C." NIL "carol" "example.test")) '
            b'NIL NIL NIL "<1@lab.test>")')

    def test_missingHeaders(self):
        """A message without headers has an all-NIL envelope."""
        self.assertEqual(fetch.envelope(parse(b"\r\nbody")), b"(" + b" ".join([b"NIL"] * 10) + b")")

    def test_group(self):
        """Group syntax uses RFC 3501's start and end markers."""
        self.assertEqual(
            fetch.parseAddresses(b"Team: a@x.test, b@y.test;, c@z.test"),
            [(None, None, b"Team", None), (None, None, b"a", b"x.test"),
             (None, None, b"b", b"y.test"), (None, None, None, None),
             (None, None, b"c", b"z.test")])

    def test_emptyGroup(self):
        """undisclosed-recipients:; is a start and an end marker."""
        self.assertEqual(fetch.parseAddresses(b"undisclosed-recipients:;"),
                         [(None, None, b"undisclosed-recipients", None), (None, None, None, None)])

    def test_encodedWordNameKept(self):
        """Names are reported raw (the client decodes RFC 2047)."""
        self.assertEqual(fetch.parseAddresses(b"=?utf-8?q?J=C3=BCrgen?= <j@x.test>"),
                         [(b"=?utf-8?q?J=C3=BCrgen?=", None, b"j", b"x.test")])

    def test_commentsAndRoute(self):
        """A comment names an addr-spec; a source route is the adl."""
        self.assertEqual(fetch.parseAddresses(b"a@x.test (Alice), <@r1,@r2:b@y.test>"),
                         [(b"Alice", None, b"a", b"x.test"), (None, b"@r1,@r2", b"b", b"y.test")])

    def test_commentDisplayName(self):
        """C{From: user@domain (Real Name)} gives the sender's name in ENVELOPE, as Dovecot."""
        env = fetch.envelope(parse(b"From: user@domain (Real Name)\r\nSubject: x\r\n\r\n"))
        self.assertEqual(env, b'(NIL "x" (("Real Name" NIL "user" "domain")) '
                              b'(("Real Name" NIL "user" "domain")) '
                              b'(("Real Name" NIL "user" "domain")) NIL NIL NIL NIL NIL)')

    def test_repeatedAddressFields(self):
        """Two From fields give the addresses of both, as Dovecot."""
        env = fetch.envelope(parse(b"From: a@x.test\r\nFrom: b@y.test\r\n\r\n"))
        self.assertTrue(env.startswith(
            b'(NIL NIL ((NIL NIL "a" "x.test")(NIL NIL "b" "y.test")) '))

    def test_emptySenderFallsBack(self):
        """A Sender field without an address is replaced by From, as Dovecot."""
        env = fetch.envelope(parse(b"From: a@x.test\r\nSender: (nobody)\r\n\r\n"))
        self.assertEqual(env.count(b'((NIL NIL "a" "x.test"))'), 3)

    def test_bareLocalPart(self):
        """A local part without a domain is reported with a placeholder host."""
        self.assertEqual(fetch.parseAddresses(b"root"),
                         [(None, None, b"root", b"MISSING_DOMAIN")])


class BodyStructureTests(unittest.TestCase):
    """
    BODYSTRUCTURE and BODY in RFC 3501's exact forms.
    """

    def test_defaults(self):
        """No Content-Type: text plain us-ascii 7bit (written as Dovecot does), size without header, lines."""
        self.assertEqual(
            fetch.bodyStructure(parse(SIMPLE)),
            b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 30 2 NIL NIL NIL NIL)')

    def test_nonExtensible(self):
        """BODY omits the extension data."""
        self.assertEqual(
            fetch.bodyStructure(parse(SIMPLE), extended=False),
            b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 30 2)')

    def test_casePreserved(self):
        """Values are reported as written, not lower-cased."""
        root = parse(b"Content-Type: Text/HTML; Charset=\"ISO-8859-1\"\r\n"
                     b"Content-Transfer-Encoding: Quoted-Printable\r\n\r\n<b>x</b>\r\n")
        self.assertEqual(
            fetch.bodyStructure(root),
            b'("Text" "HTML" ("Charset" "ISO-8859-1") NIL NIL "Quoted-Printable" 10 1 '
            b'NIL NIL NIL NIL)')

    def test_mixed(self):
        """multipart/mixed with an attachment and a nested message/rfc822."""
        structure = fetch.bodyStructure(parse(MIXED))
        self.assertEqual(
            structure,
            b'(("text" "plain" ("charset" "UTF-8") NIL NIL "quoted-printable" 26 0 NIL NIL NIL NIL)'
            b'("application" "pdf" ("name" "report.pdf") "<pdf@lab.test>" "The report" "base64" 26'
            b' NIL ("attachment" ("filename" "report.pdf")) NIL NIL)'
            b'("message" "rfc822" NIL NIL NIL "7bit" 229 '
            b'(NIL "Original" ((NIL NIL "carol" "example.test")) ((NIL NIL "carol" "example.test"))'
            b' ((NIL NIL "carol" "example.test")) ((NIL NIL "alice" "lab.test")) NIL NIL NIL NIL) '
            b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)'
            b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL) "alternative"'
            b' ("boundary" "inner") NIL NIL NIL) 14 NIL NIL NIL NIL) "mixed"'
            b' ("boundary" "==outer==") NIL NIL NIL)')

    def test_languageAndLocation(self):
        """Content-Language (one or several) and Content-Location."""
        root = parse(b"MIME-Version: 1.0\r\nContent-Language: en, de\r\n"
                     b"Content-Location: http://x/\r\n\r\nx")
        self.assertTrue(fetch.bodyStructure(root).endswith(b' NIL NIL ("en" "de") "http://x/")'))

    def test_digestDefault(self):
        """Parts of multipart/digest default to message/rfc822."""
        data = crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody\n--d--\n")
        child = parse(data).children[0]
        self.assertEqual((child.mainType, child.subType), (b"message", b"rfc822"))
        self.assertEqual(child.message.header(b"subject"), b"one")


class SectionTests(unittest.TestCase):
    """
    BODY[section] ranges.
    """

    def test_topLevel(self):
        """HEADER, TEXT, and HEADER.FIELDS(.NOT) of the message."""
        root = parse(SIMPLE)
        self.assertTrue(section(root, SIMPLE, "HEADER").endswith(b"<1@lab.test>\r\n\r\n"))
        self.assertEqual(section(root, SIMPLE, "TEXT"), b"Hello Bob,\r\nsee you at noon.\r\n")
        self.assertEqual(section(root, SIMPLE, "HEADER.FIELDS", fields=(b"SUBJECT", b"to")),
                         b'To: bob@lab.test, "Carol, C." <carol@example.test>\r\n'
                         b"Subject: Lunch\r\n\r\n")
        notFields = section(root, SIMPLE, "HEADER.FIELDS.NOT", fields=(b"from", b"to", b"date"))
        self.assertEqual(notFields, b"Subject: Lunch\r\nMessage-ID: <1@lab.test>\r\n\r\n")

    def test_singlePartOne(self):
        """BODY[1] of a single-part message is its body."""
        root = parse(SIMPLE)
        self.assertEqual(section(root, SIMPLE, None, (1,)), b"Hello Bob,\r\nsee you at noon.\r\n")

    def test_parts(self):
        """Numbered parts, MIME headers, and parts of an encapsulated message."""
        root = parse(MIXED)
        self.assertEqual(section(root, MIXED, None, (1,)), b"Caf=C3=A9 report attached.")
        self.assertEqual(section(root, MIXED, "MIME", (2,)),
                         b'Content-Type: application/pdf; name="report.pdf"\r\n'
                         b"Content-Transfer-Encoding: base64\r\n"
                         b'Content-Disposition: attachment; filename="report.pdf"\r\n'
                         b"Content-ID: <pdf@lab.test>\r\nContent-Description: The report\r\n\r\n")
        self.assertEqual(section(root, MIXED, "HEADER.FIELDS", (3,), (b"Subject",)),
                         b"Subject: Original\r\n\r\n")
        self.assertEqual(section(root, MIXED, None, (3, 2)), b"<p>html</p>")
        self.assertEqual(section(root, MIXED, "MIME", (3, 1)), b"Content-Type: text/plain\r\n\r\n")
        self.assertTrue(section(root, MIXED, "TEXT", (3,)).startswith(b"--inner\r\n"))

    def test_encapsulatedSinglePart(self):
        """x.1 of a message/rfc822 whose message is single-part is that message's body."""
        data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                    "Content-Type: message/rfc822\n\nSubject: in\n\ninner body\n--b--\n")
        root = parse(data)
        self.assertEqual(section(root, data, None, (1, 1)), b"inner body")
        self.assertEqual(section(root, data, "HEADER", (1,)), b"Subject: in\r\n\r\n")


class DovecotAgreementTests(unittest.TestCase):
    """
    Answers tests/differential/ found differing from Dovecot 2.3's and now
    match it (docs/imap.md, "Differences from Dovecot").
    """

    def test_subjectForHumans(self):
        """A folded or tabbed ENVELOPE subject is one line with single spaces, sent as a literal."""
        data = b"Subject:\tTabbed\r\n  and folded\r\n\tsubject  \r\n\r\nx\r\n"
        env = fetch.envelope(parse(data))
        self.assertTrue(env.startswith(b"(NIL {25}\r\nTabbed and folded subject NIL"), env)

    def test_plainSubjectQuoted(self):
        """A subject with nothing to clean up stays a quoted string."""
        env = fetch.envelope(parse(b"Subject: Lunch at noon\r\n\r\nx\r\n"))
        self.assertTrue(env.startswith(b'(NIL "Lunch at noon" NIL'), env)

    def test_lastSubjectAndDateCount(self):
        """Of repeated Date and Subject fields ENVELOPE shows the last; address fields add up."""
        data = crlf("Date: one\nSubject: first\nsubject: second\nDATE: two\n"
                    "From: a@x.test\nFrom: b@x.test\n\nx\n")
        env = fetch.envelope(parse(data))
        self.assertTrue(env.startswith(
            b'("two" "second" ((NIL NIL "a" "x.test")(NIL NIL "b" "x.test"))'), env)

    def test_loneCRSeparatesAddress(self):
        """A lone CR ends an address like white space instead of joining the next word to it."""
        data = b"From: cr@example.com\rTo: demo@lab.test\r\rBody\r"
        env = fetch.envelope(parse(data))
        self.assertIn(b'((NIL NIL "cr" "example.com"))', env)

    def test_leafIsItsOwnFirstPartOnce(self):
        """BODY[1.1] of a multipart's leaf is that leaf; BODY[1.1] of a one-part message and BODY[1.1.1] are empty."""
        root = parse(MIXED)
        self.assertEqual(section(root, MIXED, None, (1, 1)), b"Caf=C3=A9 report attached.")
        self.assertEqual(section(root, MIXED, None, (1, 1, 1)), b"")
        simple = parse(SIMPLE)
        self.assertEqual(section(simple, SIMPLE, None, (1,)), b"Hello Bob,\r\nsee you at noon.\r\n")
        self.assertEqual(section(simple, SIMPLE, None, (1, 1)), b"")

    def test_headerFieldsNotWithoutBlankLine(self):
        """HEADER.FIELDS.NOT of a message without a blank line adds none; HEADER.FIELDS always ends with one."""
        data = b"From: a@x.test\r\nSubject: s\r\n"
        root = parse(data)
        self.assertEqual(section(root, data, "HEADER.FIELDS.NOT", fields=(b"from",)),
                         b"Subject: s\r\n")
        self.assertEqual(section(root, data, "HEADER.FIELDS", fields=(b"from",)),
                         b"From: a@x.test\r\n\r\n")
        self.assertEqual(section(root, data, "HEADER.FIELDS.NOT", fields=(b"from", b"subject")),
                         b"")

    def test_textCharsetDefault(self):
        """A text part without a charset parameter gets us-ascii's after its parameters; other types do not."""
        root = parse(b"Content-Type: text/html; name=a\r\n\r\nx")
        self.assertIn(b'("name" "a" "charset" "us-ascii")', fetch.bodyStructure(root))
        root = parse(b"Content-Type: image/png\r\n\r\nx")
        self.assertTrue(fetch.bodyStructure(root).startswith(b'("image" "png" NIL '))

    def test_oneLanguageIsAList(self):
        """A single Content-Language is written as a list, as Dovecot does."""
        root = parse(b"MIME-Version: 1.0\r\nContent-Language: en\r\n\r\nx")
        self.assertTrue(fetch.bodyStructure(root).endswith(b' NIL NIL ("en") NIL)'))

    def test_nestedMultipartKeepsCloseLineEnd(self):
        """A nested multipart that closes right before the outer boundary keeps its close delimiter's line end."""
        data = crlf("Content-Type: multipart/mixed; boundary=o\n\n--o\n"
                    "Content-Type: multipart/alternative; boundary=i\n\n--i\n\nx\n--i--\n--o--\n")
        root = parse(data)
        self.assertEqual(section(root, data, None, (1,)), b"--i\r\n\r\nx\r\n--i--\r\n")

    def test_boundaryIsAPrefix(self):
        """A line starting with the boundary is a delimiter whatever follows (padding, or more characters)."""
        data = crlf("Content-Type: multipart/mixed; boundary=abc\n\n--abc\t \n\none\n"
                    "--abcdef\n\ntwo\n--abc--  \n")
        root = parse(data)
        self.assertEqual([section(root, data, None, (n,)) for n in (1, 2, 3)],
                         [b"one", b"two", b""])

    def test_rfc2231(self):
        """RFC 2231 continuations are joined and put after the plain parameters, an extended one keeps its star."""
        self.assertEqual(
            fetch.rfc2231([(b"name*1", b"-b"), (b"x", b"1"), (b"name*0", b"a"),
                           (b"filename*", b"utf-8''%E2"), (b"NAME", b"n")]),
            [(b"x", b"1"), (b"NAME", b"n"), (b"filename*", b"utf-8''%E2"), (b"name", b"a-b")])
        self.assertEqual(fetch.rfc2231([(b"t*0*", b"utf-8''a"), (b"t*1", b"50%")]),
                         [(b"t*", b"utf-8''a50%25")])
        self.assertEqual(fetch.rfc2231([(b"t*0", b"a"), (b"t*2", b"c")]),
                         [(b"t*0", b"a"), (b"t*2", b"c")])

    def test_nulInSubject(self):
        """A NUL in the subject is U+FFFD in ENVELOPE, as Dovecot's header parser makes it."""
        env = fetch.envelope(parse(b"Subject: a\x00b\r\n\r\nx"))
        self.assertTrue(env.startswith(b"(NIL {5}\r\na\xef\xbf\xbdb NIL"), env)

    def test_lineEndBeforeBoundaryLeavesHeader(self):
        """A part's header right before a boundary loses the line end before it; the attached message still counts it."""
        data = crlf("Content-Type: multipart/mixed; boundary=o\n\n--o\n"
                    "Content-Type: message/rfc822\n\nSubject: no body\n--o\n"
                    "Content-Type: text/plain\n\n--o--\n")
        root = parse(data)
        self.assertEqual(section(root, data, "HEADER", (1,)), b"Subject: no body")
        self.assertEqual(section(root, data, None, (1,)), b"Subject: no body\r\n")
        self.assertEqual(section(root, data, "MIME", (2,)), b"Content-Type: text/plain\r\n")
        self.assertIn(b'("message" "rfc822" NIL NIL NIL "7bit" 18 ', fetch.bodyStructure(root))

    def test_contentFieldsNeedMIME(self):
        """A header with neither MIME-Version nor Content-Type has its other Content-* fields ignored; a multipart's part never does."""
        plain = b"Content-Transfer-Encoding: base64\r\nContent-ID: <i@x>\r\n\r\nx"
        self.assertEqual(fetch.bodyStructure(parse(plain)),
                         b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL)')
        self.assertIn(b'"<i@x>" NIL "base64"', fetch.bodyStructure(parse(b"MIME-Version: 1.0\r\n" + plain)))
        self.assertIn(b'"<i@x>" NIL "base64"',
                      fetch.bodyStructure(parse(b"Content-Type: text/plain\r\n" + plain)))
        data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                    "Content-Transfer-Encoding: base64\n\neA==\n--b--\n")
        self.assertIn(b'NIL NIL "base64" 4 ', fetch.bodyStructure(parse(data)))
