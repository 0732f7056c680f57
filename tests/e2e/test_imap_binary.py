"""
BINARY (RFC 3516) end to end: imaplib over a real socket fetching decoded
parts (base64 with NUL octets answered in a literal8, quoted-printable, an
unknown encoding), appending a message with a literal8, and a listener with
BINARY switched off. tests/e2e/test_differential.py's "binary" script holds
the same answers against Dovecot 2.3.19.
"""

from twisted.internet import defer

from tests.e2e.test_imap import IMAPTestCase
from tests.helpers import listenerTOML
from tests.interop import check

REPORT = (b"From: Alice <alice@lab.test>\r\nTo: demo@lab.test\r\nSubject: report\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
          b"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
          b"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 at noon, see the =\r\n"
          b"attachment.\r\n"
          b"--b\r\nContent-Type: application/octet-stream; name=data.bin\r\n"
          b"Content-Transfer-Encoding: base64\r\n\r\nAAECA0hlbGxv\r\n"
          b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
          b"begin 644 old.txt\r\n--b--\r\n")
WITH_NUL = b"From: demo@lab.test\r\nSubject: raw\r\n\r\nA\x00B\r\n"


def appendLiteral8(c, mailbox, message):
    """APPEND with the message as a literal8 (imaplib only writes {n}): the tagged reply."""
    tag = c._new_tag()
    c.send(b"%s APPEND %s ~{%d}\r\n" % (tag, mailbox, len(message)))
    ready = c.readline()
    if not ready.startswith(b"+"):
        return ready
    c.send(message + b"\r\n")
    while True:
        line = c.readline()
        if line.startswith(tag + b" "):
            return line


class BinaryTests(IMAPTestCase):
    """
    imaplib fetching BINARY items and appending with a literal8.
    """

    listeners = IMAPTestCase.listeners + listenerTOML(
        "imap", tls="none", name="imapnobinary", allow_plaintext_auth=True,
        disabled=["BINARY"])

    @defer.inlineCallbacks
    def test_fetchDecoded(self):
        """Decoded parts and sizes, NUL octets in a literal8, NO [UNKNOWN-CTE], \\Seen set by BINARY."""
        def session():
            c = self.loggedIn()
            try:
                check(c.append("INBOX", None, None, REPORT))
                caps = c.capabilities
                check(c.select("INBOX"))
                text = check(c.fetch("1", "(BINARY.PEEK[1] BINARY.SIZE[2])"))
                data = check(c.fetch("1", "(BINARY.PEEK[2]<3.5>)"))
                unknown = c.fetch("1", "(BINARY.PEEK[3])")
                unseen = check(c.fetch("1", "(FLAGS)"))
                seen = check(c.fetch("1", "(BINARY[2])"))
                return caps, text, data, unknown, unseen, seen
            finally:
                c.logout()
        caps, text, data, unknown, unseen, seen = yield self.inThread(session)
        self.assertIn("BINARY", caps)
        self.assertEqual(text, [(b"1 (BINARY[1] ~{33}", b"Caf\xe9 at noon, see the attachment."),
                                b" BINARY.SIZE[2] 9)"])
        self.assertEqual(data, [(b"1 (BINARY[2]<3> ~{5}", b"\x03Hell"), b")"])
        self.assertEqual(unknown[0], "NO")
        self.assertNotIn(b"\\Seen", unseen[0])
        self.assertEqual(seen[0][1], b"\x00\x01\x02\x03Hello")
        self.assertIn(b"\\Seen", seen[0][0] + seen[1])

    @defer.inlineCallbacks
    def test_appendLiteral8(self):
        """APPEND with a literal8 stores NUL octets as they are; BINARY gives them back."""
        def session():
            c = self.loggedIn()
            try:
                reply = appendLiteral8(c, b"INBOX", WITH_NUL)
                check(c.select("INBOX"))
                return reply, check(c.fetch("1", "(BINARY.PEEK[1] RFC822.SIZE)"))
            finally:
                c.logout()
        reply, fetched = yield self.inThread(session)
        self.assertIn(b" OK [APPENDUID ", reply)
        self.assertEqual(fetched, [(b"1 (BINARY[1] ~{5}", b"A\x00B\r\n"),
                                   b" RFC822.SIZE %d)" % (len(WITH_NUL),)])

    @defer.inlineCallbacks
    def test_disabledPerListener(self):
        """A listener without BINARY neither offers it nor takes its items or literal8."""
        def session():
            c = self.loggedIn("imapnobinary")
            try:
                check(c.append("INBOX", None, None, REPORT))
                check(c.select("INBOX"))
                try:
                    c.fetch("1", "(BINARY.PEEK[1])")
                    refused = False
                except c.error:
                    refused = True
                return c.capabilities, refused, appendLiteral8(c, b"INBOX", WITH_NUL)
            finally:
                c.logout()
        caps, refused, reply = yield self.inThread(session)
        self.assertNotIn("BINARY", caps)
        self.assertTrue(refused)
        self.assertIn(b" BAD ", reply)
