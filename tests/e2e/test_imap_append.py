"""
MULTIAPPEND (RFC 3502), CATENATE (RFC 4469) and URL-PARTIAL (RFC 5550) end to
end: imaplib (CATENATE through its command interface, MULTIAPPEND's several
literals over the standard library's socket, since imaplib sends one literal
at most), and one session against mailstack and the private Dovecot 2.3.19
(tests/interop.py) on copies of the same Maildir, replies and stored
messages compared.
"""

import re
import smtplib
import socket

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.e2e.test_imap import MULTIPART, IMAPTestCase, readReply, readUntilTagged
from tests.e2e.test_interop_dovecot import LISTENERS, _dovecotMissing
from tests.helpers import BASE_CONFIG, startServer
from tests.interop import check, dovecotOnCopy, replyDifferences, sharedDataDir

ONE = b"From: a@lab.test\r\nSubject: one\r\n\r\nbody one\r\n"
TWO = b"From: a@lab.test\r\nSubject: two\r\n\r\nbody two\r\n"


def lit(data):
    return b"{%d+}\r\n" % (len(data),) + data


class ImaplibTests(IMAPTestCase):
    """A real client library and a raw standard-library socket."""

    @defer.inlineCallbacks
    def test_multiappendThenFetch(self):
        """Two messages in one APPEND get consecutive UIDs; imaplib reads both back."""
        def session():
            s, f = self.raw()
            try:
                s.sendall(b"a LOGIN demo@lab.test demo\r\n")
                readUntilTagged(f, b"a")
                s.sendall(b"b APPEND INBOX (\\Seen) " + lit(ONE) + b" " + lit(TWO) + b"\r\n")
                reply = readUntilTagged(f, b"b")[-1]
            finally:
                s.close()
            c = self.loggedIn()
            try:
                caps = c.capabilities
                check(c.select("INBOX"))
                fetched = check(c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])"))
            finally:
                c.logout()
            return reply, caps, fetched
        reply, caps, fetched = yield self.inThread(session)
        self.assertTrue(re.match(rb"b OK \[APPENDUID \d+ 1:2\] APPEND completed\r\n", reply),
                        reply)
        for name in ("MULTIAPPEND", "CATENATE", "URL-PARTIAL"):
            self.assertIn(name, caps)
        bodies = [item[1] for item in fetched if isinstance(item, tuple)]
        self.assertEqual(bodies, [ONE, TWO])

    @defer.inlineCallbacks
    def test_catenateWithImaplib(self):
        """imaplib sends CATENATE with URL parts; the new message is the named parts."""
        def session():
            c = self.loggedIn()
            try:
                check(c.append("INBOX", None, None, MULTIPART))
                check(c.select("INBOX"))
                typ, data = c._simple_command(
                    "APPEND", "INBOX", "CATENATE",
                    '(URL "/INBOX/;UID=1/;SECTION=HEADER" URL ";UID=1/;SECTION=1/;PARTIAL=0.5")')
                bad = c._simple_command("APPEND", "INBOX", "CATENATE", '(URL "/INBOX/;UID=9")')
                fetched = check(c.uid("FETCH", "2", "(BODY.PEEK[])"))
                return typ, c.untagged_responses, bad, fetched
            finally:
                c.logout()
        typ, untagged, bad, fetched = yield self.inThread(session)
        self.assertEqual(typ, "OK")
        header = MULTIPART[:MULTIPART.index(b"\r\n\r\n") + 4]
        self.assertEqual(fetched[0][1], header + b"first")
        self.assertEqual(bad[0], "NO")


SESSION = [
    b"a SELECT INBOX",
    b"b APPEND INBOX (\\Seen) " + lit(ONE) + b' (\\Flagged) "07-Feb-1994 21:52:25 -0800" '
    + lit(TWO),
    b"c APPEND INBOX CATENATE (TEXT " + lit(b"Subject: cat\r\n\r\n")
    + b' URL "/INBOX/;UID=1/;SECTION=1" TEXT ' + lit(b"\r\n--end\r\n") + b")",
    b'd APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;SECTION=1/;PARTIAL=2.5"'
    b' URL ";UID=1/;SECTION=2.MIME" URL "/INBOX/;UID=1/;SECTION=TEXT/;PARTIAL=3")',
    b'e APPEND INBOX CATENATE (URL "/INBOX/;UID=99")',
    b'f APPEND INBOX CATENATE (URL "/INBOX;UIDVALIDITY=1/;UID=1")',
    b'g APPEND INBOX CATENATE (URL "/Nope/;UID=1")',
    b"h APPEND Nope " + lit(ONE) + b" " + lit(TWO),
    b"i APPEND INBOX " + lit(ONE) + b" {0+}\r\n",
    b'j APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT)")'
    b" ($Work) " + lit(ONE),
    b'k APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;SECTION=1/;PARTIAL=0.0")',
    b"l APPEND INBOX CATENATE ()",
    # (8-bit, not NUL: Dovecot's BODY[] sends a stored NUL as 0x80, docs/imap.md BINARY)
    b"m APPEND INBOX ~{5+}\r\nA\xe9B\r\n " + lit(ONE) + b" (\\Answered) " + lit(TWO),
    b"n APPEND INBOX CATENATE (TEXT " + lit(b"Subject: empty part\r\n\r\n")
    + b' URL "/INBOX/;UID=1/;SECTION=1/;PARTIAL=500.5")',
    b"o APPEND INBOX " + lit(ONE) + b"(\\Seen) " + lit(TWO),
    b'p APPEND INBOX CATENATE (URL "INBOX/;UID=1")',
    b'q APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;SECTION=2.1" URL "/INBOX/;UID=1/;SECTION=1.MIME"'
    b' URL "/INBOX/;UID=1/;SECTION=2.HEADER" TEXT {2+}\r\nok)',
    b"z UID FETCH 1:* (FLAGS BODY.PEEK[])",
]


def normalized(line):
    """
    A reply line as compared: a tagged line's tag, status and response code
    (APPENDUID without its UIDVALIDITY, the two servers' differ), not its
    text; a FETCH line without \\Recent.
    """
    if line.startswith(b"* "):
        return line.replace(b"\\Recent", b"").replace(b"( ", b"(").replace(b" )", b")")
    match = re.match(rb"(\S+ \S+)(?: \[([^\]]*)\])?", line)
    code = match.group(2) or b""
    if code.startswith(b"APPENDUID "):
        code = b"APPENDUID " + code.split(b" ")[2]
    return match.group(1) + (b" [" + code + b"]" if code else b"")


def runSession(port):
    """Each command's FETCH lines and tagged reply, normalised."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"L LOGIN demo@lab.test demo\r\n")
    readUntilTagged(f, b"L")
    replies = []
    try:
        for command in SESSION:
            tag = command.split(b" ", 1)[0]
            s.sendall(command + b"\r\n")
            lines = [normalized(line.rstrip(b"\r\n")) for line in readReply(f, tag)
                     if line.startswith(tag + b" ") or b" FETCH " in line[:16]]
            replies.append((command[:60], lines))
    finally:
        s.close()
    return replies


class DovecotComparisonTests(unittest.TestCase):
    """The same MULTIAPPEND and CATENATE session against mailstack and Dovecot 2.3.19."""

    skip = _dovecotMissing()
    timeout = 60

    @defer.inlineCallbacks
    def test_sameReplies(self):
        """Statuses, response codes (APPENDUID sets, BADURL, TRYCREATE) and the stored
        messages' flags and octets equal Dovecot's."""
        text, dataDir = sharedDataDir(self, BASE_CONFIG)
        server, _ = startServer(self, LISTENERS, text)

        def fill():
            with smtplib.SMTP("127.0.0.1", server.listenerPort("smtp"), timeout=10) as s:
                s.sendmail("alice@lab.test", ["demo@lab.test"], MULTIPART)
        yield threads.deferToThread(fill)
        dovecot = yield dovecotOnCopy(self, dataDir)
        ours = yield threads.deferToThread(runSession, server.listenerPort("imap"))
        theirs = yield threads.deferToThread(runSession, dovecot.imapPort)
        differences = replyDifferences(ours, theirs)
        self.assertEqual(differences, [], "\n".join(differences))
        self.assertEqual(len([line for _, lines in ours for line in lines
                              if b" FETCH " in line]), 14)
