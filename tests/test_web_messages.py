"""
Tests for L{mailstack.web.messages}: how the console and the API take a
stored message apart (headers, text and HTML parts, attachments, safe file
names) and the headers that keep an HTML part from acting.
"""

import datetime

from twisted.trial import unittest

from mailstack.web import messages

MIXED = b"""\
From: =?utf-8?q?Ren=C3=A9e?= <renee@lab.test>\r
To: demo@lab.test, Bob <bob@lab.test>\r
Cc: carol@lab.test\r
Subject: =?utf-8?b?SGVsbG8g4pyT?=\r
Date: Tue, 14 Nov 2023 22:13:20 +0000\r
Message-ID: <1@lab.test>\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary="outer"\r
\r
--outer\r
Content-Type: multipart/alternative; boundary="inner"\r
\r
--inner\r
Content-Type: text/plain; charset=iso-8859-1\r
Content-Transfer-Encoding: quoted-printable\r
\r
Caf=E9 at noon\r
--inner\r
Content-Type: text/html; charset=utf-8\r
\r
<p>Caf\xc3\xa9 <b>at noon</b></p><script>document.title='owned'</script>\r
--inner--\r
--outer\r
Content-Type: application/pdf; name="x.pdf"\r
Content-Disposition: attachment; filename*=UTF-8''..%2F..%2Fetc%2Fr%C3%A9sum%C3%A9.pdf\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQK\r
--outer\r
Content-Type: image/png\r
Content-ID: <logo@lab.test>\r
Content-Transfer-Encoding: base64\r
\r
iVBORw0KGgo=\r
--outer--\r
"""


class ParsingTests(unittest.TestCase):
    """
    Headers and parts of a multipart message.
    """

    def setUp(self):
        self.message = messages.parseMessage(MIXED)

    def test_summary(self):
        """The list shows decoded From, To, Cc, Subject and the parsed Date."""
        summary = messages.summarize(self.message)
        self.assertEqual(summary.sender, "Renée <renee@lab.test>")
        self.assertEqual(summary.to, "demo@lab.test, Bob <bob@lab.test>")
        self.assertEqual(summary.cc, "carol@lab.test")
        self.assertEqual(summary.subject, "Hello ✓")
        self.assertEqual(summary.date, datetime.datetime(2023, 11, 14, 22, 13, 20,
                                                         tzinfo=datetime.timezone.utc))
        self.assertEqual(summary.messageID, "<1@lab.test>")

    def test_summaryFromHeadersOnly(self):
        """The header section alone gives the same summary (the list reads no bodies)."""
        head = messages.splitHeader(MIXED)
        self.assertTrue(head.endswith(b"\r\n\r\n"))
        self.assertNotIn(b"--outer", head)
        self.assertEqual(messages.summarize(messages.parseHeaders(head)),
                         messages.summarize(self.message))

    def test_badDate(self):
        """A Date that is no date gives None and keeps its text."""
        summary = messages.summarize(messages.parseMessage(b"Date: yesterday\r\n\r\nx"))
        self.assertEqual((summary.date, summary.dateText), (None, "yesterday"))

    def test_missingHeaders(self):
        """A message without headers summarises to empty strings."""
        summary = messages.summarize(messages.parseMessage(b"\r\nbody"))
        self.assertEqual((summary.sender, summary.subject, summary.date), ("", "", None))

    def test_headerList(self):
        """Every header in order, decoded, repeated ones each once."""
        message = messages.parseMessage(
            b"Received: a\r\nReceived: b\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\n")
        self.assertEqual(messages.headerList(message),
                         [("Received", "a"), ("Received", "b"), ("Subject", "café")])

    def test_sections(self):
        """Leaf parts are named by IMAP section numbers."""
        self.assertEqual([(p.section, p.contentType) for p in messages.parts(self.message)],
                         [("1.1", "text/plain"), ("1.2", "text/html"),
                          ("2", "application/pdf"), ("3", "image/png")])
        single = messages.parseMessage(b"Subject: x\r\n\r\nhello\r\n")
        self.assertEqual([p.section for p in messages.parts(single)], ["1"])

    def test_bodyAndAttachments(self):
        """Text and HTML are the body; the named PDF and the unnamed image are attachments."""
        self.assertEqual([p.section for p in messages.bodyParts(self.message)], ["1.1", "1.2"])
        pdf, image = messages.attachments(self.message)
        self.assertEqual((pdf.filename, pdf.disposition, pdf.size),
                         ("../../etc/résumé.pdf", "attachment", 9))
        self.assertEqual((image.contentID, image.filename, image.downloadName),
                         ("logo@lab.test", None, "part-3.png"))

    def test_namedTextIsAttachment(self):
        """A text part with a file name or an attachment disposition is a download."""
        message = messages.parseMessage(
            b"Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nx")
        self.assertTrue(messages.parts(message)[0].isAttachment)

    def test_findPart(self):
        """A section finds its part; an unknown one finds nothing."""
        self.assertEqual(messages.findPart(self.message, "2").get_content_type(),
                         "application/pdf")
        self.assertIsNone(messages.findPart(self.message, "1"))
        self.assertIsNone(messages.findPart(self.message, "9"))

    def test_partText(self):
        """Quoted-printable Latin-1 and UTF-8 parts decode to the same text."""
        self.assertEqual(messages.partText(messages.findPart(self.message, "1.1")).strip(),
                         "Café at noon")
        self.assertIn("<p>Café <b>at noon</b></p>",
                      messages.partText(messages.findPart(self.message, "1.2")))

    def test_partTextBadCharset(self):
        """An unknown or wrong charset falls back to UTF-8, then Latin-1."""
        unknown = messages.parseMessage(
            b"Content-Type: text/plain; charset=x-nonsense\r\n\r\ncaf\xc3\xa9")
        self.assertEqual(messages.partText(unknown), "café")
        wrong = messages.parseMessage(b"Content-Type: text/plain; charset=us-ascii\r\n\r\ncaf\xe9")
        self.assertEqual(messages.partText(wrong), "café")

    def test_partBytes(self):
        """Base64 content is decoded."""
        self.assertEqual(messages.partBytes(messages.findPart(self.message, "2")),
                         b"%PDF-1.4\n")

    def test_attachedMessage(self):
        """An attached message/rfc822 is one part, downloaded as .eml."""
        message = messages.parseMessage(
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nhi\r\n--b--\r\n")
        [part] = messages.parts(message)
        self.assertEqual((part.section, part.isAttachment, part.downloadName),
                         ("1", True, "part-1.eml"))
        self.assertIn(b"Subject: inner", messages.partBytes(messages.findPart(message, "1")))

    def test_brokenMessage(self):
        """A malformed message still parses into parts without raising."""
        message = messages.parseMessage(
            b"Content-Type: multipart/mixed; boundary=z\r\nFrom: <<<\r\n\r\nno boundary here")
        self.assertEqual(len(messages.parts(message)), 1)
        self.assertEqual(messages.summarize(message).sender, "<<<")


class FilenameTests(unittest.TestCase):
    """
    L{messages.safeFilename} and L{messages.contentDisposition}.
    """

    def test_directoryPartsDropped(self):
        """No path: a name with / or \\ keeps only its last component."""
        self.assertEqual(messages.safeFilename("../../etc/passwd"), "passwd")
        self.assertEqual(messages.safeFilename("C:\\Windows\\evil.exe"), "evil.exe")

    def test_specialCharacters(self):
        """Control characters, quotes and shell specials become _; leading dots go."""
        self.assertEqual(messages.safeFilename('..a"b\r\nc;d.txt'), "a_b_c_d.txt")
        self.assertEqual(messages.safeFilename(".bashrc"), "bashrc")

    def test_fallback(self):
        """Nothing usable left: part-<section> with an extension for its type."""
        self.assertEqual(messages.safeFilename(None, "2.1", "application/pdf"), "part-2-1.pdf")
        self.assertEqual(messages.safeFilename("../", "3"), "part-3.bin")

    def test_longNameKeepsExtension(self):
        """A long name is cut to the limit, keeping its extension."""
        name = messages.safeFilename("x" * 300 + ".pdf")
        self.assertEqual((len(name), name[-4:]), (100, ".pdf"))

    def test_unicodeKept(self):
        """Non-ASCII names are kept (saved through filename*)."""
        self.assertEqual(messages.safeFilename("résumé.pdf"), "résumé.pdf")

    def test_contentDisposition(self):
        """attachment with an ASCII filename, and filename* in UTF-8 when they differ."""
        self.assertEqual(messages.contentDisposition("a b.txt"), b'attachment; filename="a b.txt"')
        self.assertEqual(messages.contentDisposition("résumé.pdf"),
                         b"attachment; filename=\"resume.pdf\"; "
                         b"filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
        quoted = messages.contentDisposition('x";.txt')
        self.assertEqual(quoted, b"attachment; filename=\"x__.txt\"; filename*=UTF-8''x%22%3B.txt")


class HeaderPolicyTests(unittest.TestCase):
    """
    The response headers of an HTML part and of a download.
    """

    def test_htmlPartPolicy(self):
        """An HTML part may run no script, load nothing remote, post no form, and is sandboxed on its own."""
        csp = dict(d.strip().split(" ", 1) if " " in d.strip() else (d.strip(), "")
                   for d in messages.HTML_PART_CSP.split(";"))
        self.assertEqual(csp["default-src"], "'none'")
        self.assertEqual(csp["img-src"], "data:")
        self.assertEqual(csp["style-src"], "'unsafe-inline'")
        self.assertEqual(csp["form-action"], "'none'")
        self.assertIn("sandbox", csp)
        self.assertNotIn("script-src", csp)
        self.assertEqual(messages.HTML_PART_HEADERS[b"x-content-type-options"], b"nosniff")

    def test_downloadsNotRendered(self):
        """Downloads are octet streams the browser may not sniff."""
        self.assertEqual(messages.ATTACHMENT_HEADERS[b"content-type"], b"application/octet-stream")
        self.assertEqual(messages.ATTACHMENT_HEADERS[b"x-content-type-options"], b"nosniff")
