"""
Tests for BINARY (RFC 3516): FETCH BINARY[section]<partial>, BINARY.PEEK and
BINARY.SIZE answer a part with its Content-Transfer-Encoding undone, as
Dovecot 2.3.19 does (tests/differential's "binary" script holds them side by
side); APPEND takes a literal8; a listener may switch BINARY off. Sessions
over a StringTransport, on both stores, and the decoders alone.
"""

import io

from twisted.trial import unittest

from mailstack.imap import fetch
from mailstack.imap.grammar.arguments import args_append
from mailstack.imap.grammar.fetchspec import fetchAttributes
from mailstack.imap.grammar.reader import ParseError, Reader, literalAnnouncement
from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin

BASE64 = (b"From: a@lab.test\r\nSubject: base64\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
          b"AAECaGk=\r\n")
QP = (b"From: a@lab.test\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
      b"Content-Type: text/plain; charset=iso-8859-1\r\n"
      b"Content-Transfer-Encoding: Quoted-Printable (a comment)\r\n\r\n"
      b"caf=E9 soft=\r\nbreak   \r\nend\r\n")
EIGHT_BIT = (b"From: a@lab.test\r\nSubject: 8bit\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
             b"\xc3\xbc\r\n")
UNKNOWN = (b"From: a@lab.test\r\nSubject: unknown\r\nMIME-Version: 1.0\r\n"
           b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n")
NESTED = (b"From: a@lab.test\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
          b"preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
          b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
          b"Subject: inner\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
          b"aW5uZXI=\r\n--b--\r\n")
NUL_7BIT = b"From: a@lab.test\r\nSubject: nul\r\n\r\nA\x00B\r\n"


class BinaryFetchTests(IMAPTestMixin, unittest.TestCase):
    """
    FETCH BINARY, BINARY.PEEK and BINARY.SIZE over messages in each encoding.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        for message in (BASE64, QP, EIGHT_BIT, UNKNOWN, NESTED, NUL_7BIT):
            self.deliver(message)
        self.select()

    def test_capability(self):
        """BINARY is advertised after login."""
        self.assertIn(b" BINARY", self.send(b"c CAPABILITY\r\n"))

    def test_base64(self):
        """A base64 part is sent decoded, NUL octets as they are, in a literal8."""
        self.assertEqual(self.send(b"f FETCH 1 (BINARY.PEEK[1])\r\n"),
                         b"* 1 FETCH (BINARY[1] ~{5}\r\n\x00\x01\x02hi)\r\nf OK FETCH completed\r\n")

    def test_quotedPrintable(self):
        """Quoted-printable is decoded (soft breaks joined, trailing blanks dropped); literal8 as Dovecot."""
        self.assertEqual(self.send(b"f FETCH 2 (BINARY.PEEK[1])\r\n"),
                         b"* 2 FETCH (BINARY[1] ~{21}\r\ncaf\xe9 softbreak\r\nend\r\n)\r\n"
                         b"f OK FETCH completed\r\n")

    def test_eightBit(self):
        """An 8bit part is sent as stored in an ordinary literal (no NUL, nothing decoded)."""
        self.assertEqual(self.send(b"f FETCH 3 (BINARY.PEEK[1])\r\n"),
                         b"* 3 FETCH (BINARY[1] {4}\r\n\xc3\xbc\r\n)\r\nf OK FETCH completed\r\n")

    def test_nulUndecoded(self):
        """A 7bit body holding NUL is sent as stored, in a literal8."""
        self.assertEqual(self.send(b"f FETCH 6 (BINARY.PEEK[1])\r\n"),
                         b"* 6 FETCH (BINARY[1] ~{5}\r\nA\x00B\r\n)\r\nf OK FETCH completed\r\n")

    def test_size(self):
        """BINARY.SIZE is the decoded length."""
        self.assertEqual(self.send(b"f FETCH 1:3 (BINARY.SIZE[1])\r\n"),
                         b"* 1 FETCH (BINARY.SIZE[1] 5)\r\n* 2 FETCH (BINARY.SIZE[1] 21)\r\n"
                         b"* 3 FETCH (BINARY.SIZE[1] 4)\r\nf OK FETCH completed\r\n")

    def test_partial(self):
        """A partial cuts the decoded content; the label names its offset."""
        self.assertEqual(self.send(b"f FETCH 1 (BINARY.PEEK[1]<2.2>)\r\n"),
                         b"* 1 FETCH (BINARY[1]<2> ~{2}\r\n\x02h)\r\nf OK FETCH completed\r\n")

    def test_nested(self):
        """An attached message is sent with its header saying binary and its body decoded."""
        self.assertEqual(self.send(b"f FETCH 5 (BINARY.PEEK[2])\r\n"),
                         b"* 5 FETCH (BINARY[2] ~{84}\r\nSubject: inner\r\nContent-Type: text/plain\r\n"
                         b"Content-Transfer-Encoding: binary\r\n\r\ninner)\r\nf OK FETCH completed\r\n")
        self.assertEqual(self.send(b"f FETCH 5 (BINARY.PEEK[2.1] BINARY.PEEK[1])\r\n"),
                         b"* 5 FETCH (BINARY[2.1] ~{5}\r\ninner BINARY[1] {5}\r\nfirst)\r\n"
                         b"f OK FETCH completed\r\n")

    def test_wholeMessage(self):
        """BINARY[] is the whole message, its header's encoding now binary, its body decoded."""
        out = self.send(b"f FETCH 1 (BINARY.PEEK[])\r\n")
        self.assertIn(b"Content-Type: application/octet-stream\r\n"
                      b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02hi)\r\n", out)
        self.assertNotIn(b"Transfer-Encoding: base64", out)

    def test_noSuchPart(self):
        """A part that does not exist is empty, as Dovecot answers."""
        self.assertEqual(self.send(b"f FETCH 5 (BINARY.PEEK[7] BINARY.SIZE[3.1])\r\n"),
                         b"* 5 FETCH (BINARY[7] {0}\r\n BINARY.SIZE[3.1] 0)\r\nf OK FETCH completed\r\n")

    def test_unknownEncoding(self):
        """An unknown encoding stops the FETCH at that message with NO [UNKNOWN-CTE], as Dovecot."""
        self.assertEqual(self.send(b"f FETCH 3:5 (BINARY.SIZE[1])\r\n"),
                         b"* 3 FETCH (BINARY.SIZE[1] 4)\r\n* 4 FETCH (UID 4)\r\n"
                         b"f NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding\r\n")

    def test_setsSeen(self):
        """BINARY sets \\Seen like BODY[]; BINARY.PEEK and BINARY.SIZE do not."""
        self.send(b"f FETCH 2 (BINARY.PEEK[1] BINARY.SIZE[1])\r\n")
        self.assertIn(b"FLAGS (\\Recent))", self.send(b"g FETCH 2 (FLAGS)\r\n"))
        self.assertIn(b"FLAGS (\\Seen \\Recent)", self.send(b"h FETCH 2 (BINARY[1])\r\n"))

    def test_sectionSyntax(self):
        """BINARY takes part numbers only, and BINARY.SIZE no partial (RFC 3516's grammar)."""
        for item in (b"BINARY[TEXT]", b"BINARY.PEEK[1.MIME]", b"BINARY.SIZE[1]<0.4>",
                     b"BINARY[0]", b"BINARY"):
            self.assertTrue(self.send(b"f FETCH 1 (%s)\r\n" % (item,)).startswith(b"f BAD "), item)


class Literal8Tests(IMAPTestMixin, unittest.TestCase):
    """
    APPEND with a literal8 (RFC 3516), and literal8 where it is not allowed.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.login()

    def test_append(self):
        """APPEND takes its message as a literal8, NUL octets kept."""
        message = b"Subject: nul\r\n\r\nA\x00B\r\n"
        out = self.send(b"a APPEND INBOX ~{%d}\r\n" % (len(message),))
        self.assertEqual(out, b"+ Ready for literal data\r\n")
        self.assertIn(b"a OK [APPENDUID ", self.send(message + b"\r\n"))
        self.send(b"s SELECT INBOX\r\n")
        self.assertEqual(self.send(b"f FETCH 1 (BINARY.PEEK[1])\r\n"),
                         b"* 1 FETCH (BINARY[1] ~{5}\r\nA\x00B\r\n)\r\nf OK FETCH completed\r\n")

    def test_appendNonSynchronizing(self):
        """A non-synchronizing literal8 ({n+} form) works for APPEND too."""
        message = b"Subject: plain\r\n\r\nAB\r\n"
        out = self.send(b"a APPEND INBOX ~{%d+}\r\n%s\r\n" % (len(message), message))
        self.assertIn(b"a OK [APPENDUID ", out)

    def test_elsewhere(self):
        """A literal8 anywhere but APPEND's message is BAD."""
        self.assertEqual(self.send(b"c CREATE ~{3}\r\n")[:2], b"+ ")
        self.assertTrue(self.send(b"box\r\n").startswith(b"c BAD "))


class DisabledTests(IMAPTestMixin, unittest.TestCase):
    """
    A listener with BINARY switched off.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver(BASE64)
        self.session = self.connect(disabled=frozenset({"BINARY"}))
        self.select(self.session)

    def test_notAdvertised(self):
        """BINARY is not advertised."""
        self.assertNotIn(b"BINARY", self.send(b"c CAPABILITY\r\n", self.session))

    def test_fetchRefused(self):
        """FETCH BINARY items are BAD, other items still work."""
        self.assertTrue(self.send(b"f FETCH 1 (BINARY.PEEK[1])\r\n", self.session)
                        .startswith(b"f BAD "))
        self.assertIn(b"f OK", self.send(b"f FETCH 1 (BODY.PEEK[1])\r\n", self.session))

    def test_literal8Refused(self):
        """APPEND with a literal8 is BAD, no continuation asked; a plain literal still works."""
        out = self.send(b"a APPEND INBOX ~{4}\r\n", self.session)
        self.assertTrue(out.startswith(b"a BAD "), out)
        self.assertEqual(self.send(b"b APPEND INBOX {4}\r\n", self.session)[:2], b"+ ")


class GrammarTests(unittest.TestCase):
    """
    The BINARY items and literal8 in the pure grammar.
    """

    def test_announcement(self):
        """A line ending in ~{n} or ~{n+} announces a literal the framer reads."""
        self.assertEqual(literalAnnouncement(b"a APPEND INBOX ~{12}"), (12, True))
        self.assertEqual(literalAnnouncement(b"a APPEND INBOX ~{3+}"), (3, False))

    def test_literal8OnlyForAppend(self):
        """APPEND's message may be a literal8; a string elsewhere may not."""
        self.assertEqual(args_append(Reader([b"INBOX ~{3}", b"A\x00B", b""]))[1][0].message,
                         b"A\x00B")
        self.assertRaises(ParseError, Reader([b"~{3}", b"box", b""]).literal)

    def test_items(self):
        """BINARY items parse to sections of part numbers, labelled as RFC 3516 answers."""
        items = fetchAttributes(Reader([b"(BINARY[1.2]<3.4> BINARY.PEEK[] BINARY.SIZE[2])"]))
        self.assertEqual([(a.label(), a.section.part, a.partial, a.peek) for a in items],
                         [(b"BINARY[1.2]<3>", (1, 2), (3, 4), False),
                          (b"BINARY[]", (), None, True),
                          (b"BINARY.SIZE[2]", (2,), None, True)])


class DecoderTests(unittest.TestCase):
    """
    The transfer decoders and encoding names alone.
    """

    def test_base64Forgiving(self):
        """Base64 skips white space and stray octets and decodes an incomplete last group."""
        self.assertEqual(fetch.decodeBase64(b"aG\r\nVs*bG8"), b"hello")
        self.assertEqual(fetch.decodeBase64(b"aGk=\r\nignored"), b"hi")

    def test_quotedPrintable(self):
        """QP: escapes in either case, soft breaks, bare LF lines, a broken escape kept."""
        self.assertEqual(fetch.decodeQuotedPrintable(b"a=3d=3D b=\nc\n=ZZ\n"),
                         b"a== bc\r\n=ZZ\r\n")

    def test_encodingNames(self):
        """The last Content-Transfer-Encoding counts; a missing one is 7bit; others are unknown."""
        root = fetch.parseStructure(io.BytesIO(
            b"Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 8BIT\r\n\r\nx\r\n"))
        self.assertEqual(fetch.transferEncoding(root), b"8bit")
        self.assertEqual(fetch.transferEncoding(fetch.parseStructure(
            io.BytesIO(b"Subject: x\r\n\r\nx\r\n"))), b"7bit")
        self.assertRaises(fetch.UnknownEncoding, fetch.transferEncoding, fetch.parseStructure(
            io.BytesIO(b"Content-Transfer-Encoding:\r\n\r\nx\r\n")))


everyStore(globals())
