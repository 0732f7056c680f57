"""
Tests for L{mailstack.imap.searchfilter}, SEARCH BODY and TEXT's raw-octets
prefilter: it rules messages out only where decoding could not have found
the needle, so SEARCH answers exactly what the decoding path alone answers.
"""

import base64
import codecs
import os

from twisted.trial import unittest

from mailstack.imap import search, searchfilter
from mailstack.imap.grammar.arguments import args_search
from mailstack.imap.grammar.reader import Reader
from mailstack.imap.mailbox import MailboxView

from tests.stores import StoreChoice, everyStore


def _message(headers, body):
    return b"From: a@lab.test\r\nTo: b@lab.test\r\n" + headers + b"\r\n" + body


def _text(body, charset=b"us-ascii", encoding=b"7bit"):
    return _message(b"Content-Type: text/plain; charset=" + charset + b"\r\n"
                    b"Content-Transfer-Encoding: " + encoding + b"\r\n", body)


# Each hides (or not) "xylophone", "kelvin", "file" or "quartet" from a raw-octets test.
CORPUS = [
    _text(b"A plain xylophone.\r\n"),
    _text(b"Nothing to find here.\r\n"),
    _message(b"Subject: =?utf-8?q?a_=78ylophone?=\r\n", b"encoded word\r\n"),
    _message(b"Subject: =?iso-8859-1?b?" + base64.b64encode(b"caf\xe9 xylophone") + b"?=\r\n",
             b"b encoding\r\n"),
    _text(base64.encodebytes(b"a base64 xylophone quartet\n"), encoding=b"base64"),
    _text(base64.encodebytes(b"a base64 xylophone\n"), encoding=b"BASE64"),
    _text(b"a =78ylophone and a xylo=\r\nphone\r\n", encoding=b"quoted-printable"),
    _message(b"Content-Type: text/plain\r\nContent-Transfer-Encoding:\r\n Quoted-Printable\r\n",
             b"folded =78ylophone\r\n"),
    _text(b"a +AHg-ylophone\r\n", charset=b"utf-7"),
    _text(b"a +AHg-ylophone\r\n", charset=b'"UTF-7"'),
    _message(b"Content-Type: text/plain;\r\n charset=utf-7\r\n", b"folded +AHg-ylophone\r\n"),
    _message(b"Content-Type: text/plain; char(a comment)set=utf-7\r\n", b"commented +AHg-ylophone\r\n"),
    _message(b"Content-Type: text/plain; charset=utf\r\n -7\r\n", b"split +AHg-ylophone\r\n"),
    _message(b"Content-Type: text/plain; charset*=utf-7''\r\n", b"extended +AHg-ylophone\r\n"),
    _text(b"a +AHg-ylophone\r\n", charset=b"x-unknown"),
    _text(codecs.encode("an ascii-looking xylophone\r\n", "cp500"), charset=b"cp500"),
    _text("a \uff58\uff59\uff4c\uff4f\uff50\uff48\uff4f\uff4e\uff45\r\n".encode("utf-8"),
          charset=b"utf-8", encoding=b"8bit"),
    _text("the \u212aelvin scale, a \ufb01le\r\n".encode("utf-8"), charset=b"utf-8",
          encoding=b"8bit"),
    _text(b"the kelvin scale, a file\r\n"),
    _text(b"a xylo\r\nphone, the\r\nquartet\r\n"),
    _message(b"Subject: the\r\n quartet\r\n", b"header fold\r\n"),
    _text(b"caf\xe9 au lait\r\n", charset=b"iso-8859-1", encoding=b"8bit"),
    _text(b"a lone\rxylophone\r\n"),
    _message(b"Content-Type: multipart/mixed; boundary=b\r\n",
             b"--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
             b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
             b"Subject: =?utf-8?q?inner_=78ylophone?=\r\n\r\ninner body\r\n"
             b"--b\r\nContent-Type: text/plain; charset=utf-16-be\r\n\r\n"
             + "a kelvin".encode("utf-16-be") + b"\r\n--b--\r\n"),
    _message(b"Content-Type: multipart/mixed; boundary=b\r\n",
             b"--b\r\nContent-Type: application/octet-stream\r\n\r\nxylophone\r\n"
             b"--b\r\nContent-Type: text/plain\r\n\r\nquartet\r\n--b--\r\n"),
]

NEEDLES = [b"xylophone", b"XyLoPhOnE", b"ylo", b"kelvin", b"file", b"quartet", b"the quartet",
           b"xylo phone", b"=78", b"+AHg-", b"charset", b"Subject", b"caf\xc3\xa9", b"\xc3\xa9",
           b"\xe2\x84\xaaelvin", b"\xef\xac\x81le", b"\xef\xbd\x98", b"nothing", b"inner", b"lone",
           b"a@lab", b""]


class PrefilterAgreementTests(StoreChoice, unittest.TestCase):
    """
    SEARCH over L{CORPUS}, with the prefilter and without it (every message
    decoded): the same answers.
    """

    def setUp(self):
        store = self.makeStore()
        mailbox = self.successResultOf(store.account("alice@lab.test").openMailbox("INBOX"))
        for message in CORPUS:
            self.successResultOf(mailbox.append(message))
        self.view = self.successResultOf(MailboxView.open(mailbox, readOnly=True))
        self.addCleanup(self.view.close)
        self.excluded = 0
        filtered = searchfilter.excludes

        def counting(raw, needle):
            result = filtered(raw, needle)
            self.excluded += result
            return result
        self.counting = counting
        self.patch(search.searchfilter, "excludes", counting)

    def find(self, text):
        reader = Reader([text])
        charset, key = args_search(reader)[-2:]
        reader.end()
        return search.search(self.view, key, charset)

    def decodingOnly(self, text):
        """What the search answers with no message ruled out by the prefilter."""
        self.patch(search.searchfilter, "excludes", lambda raw, needle: False)
        try:
            return self.find(text)
        finally:
            self.patch(search.searchfilter, "excludes", self.counting)

    def test_sameAnswers(self):
        """BODY, TEXT and their negations answer the same with and without the prefilter."""
        for needle in NEEDLES:
            for key in (b"BODY", b"TEXT", b"NOT TEXT", b"OR BODY nothing TEXT"):
                command = b"CHARSET UTF-8 " + key + b' "' + needle + b'"'
                self.assertEqual(self.find(command), self.decodingOnly(command), command)
        self.assertGreater(self.excluded, len(NEEDLES) * 10)

    def test_hiddenNeedlesFound(self):
        """TEXT finds a word hidden by encoded words, base64, quoted-printable, UTF-7, EBCDIC and full-width letters."""
        self.assertEqual(self.find(b"TEXT xylophone"),
                         [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 23, 24])
        self.assertEqual(self.find(b"BODY xylophone"), [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 23])
        self.assertEqual(self.find(b"BODY kelvin"), [18, 19, 24])

    def test_plainMessagesExcluded(self):
        """The prefilter rules out a plain ASCII message without the needle, and no other."""
        self.assertEqual(self.find(b"BODY quartet"), [5, 20, 25])
        # all but the 16 with encodings or 8-bit octets and the 3 with QUARTET in their octets
        self.assertEqual(self.excluded, len(CORPUS) - 16 - 3)


everyStore(globals())


class LineEndTests(StoreChoice, unittest.TestCase):
    """
    Files with bare LF line ends (as an MDA leaves them in a Maildir) are
    searched as their CRLF form.
    """

    maildirOnly = True

    def test_bareLineFeeds(self):
        """A needle in an LF-ended file is found, one across its line end is not, with the prefilter."""
        store = self.makeStore()
        mailbox = self.successResultOf(store.account("alice@lab.test").openMailbox("INBOX"))
        cur = os.path.join(mailbox.path, "cur")
        body = b"From: a@lab.test\nSubject: lf\n\nthe xylophone\nquartet\n"
        with open(os.path.join(cur, "1700000000.M1P1Q1.lab,S=%d:2," % (len(body),)), "wb") as f:
            f.write(body)
        view = self.successResultOf(MailboxView.open(mailbox, readOnly=True))
        self.addCleanup(view.close)
        for text, expected in ((b"TEXT xylophone", [1]), (b'TEXT "xylophone quartet"', []),
                               (b"BODY nothing", [])):
            reader = Reader([text])
            charset, key = args_search(reader)[-2:]
            self.assertEqual(search.search(view, key, charset), expected, text)


class ExcludesTests(unittest.TestCase):
    """
    L{searchfilter.excludes} on single messages.
    """

    def test_plain(self):
        """A plain ASCII message without the needle is ruled out; with it, it is not."""
        self.assertTrue(searchfilter.excludes(CORPUS[1], "XYLOPHONE"))
        self.assertFalse(searchfilter.excludes(CORPUS[0], "XYLOPHONE"))

    def test_nonASCIINeedle(self):
        """A needle with other than ASCII cannot be in a plain ASCII message."""
        self.assertTrue(searchfilter.excludes(CORPUS[0], "CAF\u00c9"))

    def test_extendedCharsetParameter(self):
        """An RFC 2231 C{charset*} is not the charset SEARCH decodes with, so it does not stop the prefilter."""
        self.assertTrue(searchfilter.excludes(CORPUS[13], "XYLOPHONE"))

    def test_lineEndsInNeedle(self):
        """A needle holding a line end is left to the decoding path."""
        self.assertFalse(searchfilter.excludes(CORPUS[1], "A\r\nB"))
        self.assertFalse(searchfilter.excludes(CORPUS[1], ""))

    def test_undecided(self):
        """Encoded words, transfer encodings, 8-bit octets and other charsets leave it to decoding."""
        for index in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 16, 17, 21, 23):
            self.assertFalse(searchfilter.excludes(CORPUS[index], "NEEDLE"), index)

    def test_asciiCompatible(self):
        """Every charset the prefilter trusts reads the 128 ASCII octets as themselves."""
        octets = bytes(range(128))
        for name in searchfilter.ASCII_COMPATIBLE:
            self.assertEqual(codecs.lookup(name).name, name)
            self.assertEqual(octets.decode(name), octets.decode("ascii"), name)
