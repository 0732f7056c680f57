"""
STATUS=SIZE (RFC 8438), PREVIEW (RFC 8970) and OBJECTID (RFC 8474) end to
end: imaplib asking for them on mailstack, and (for the first two, which
Dovecot 2.3 has) one session run against mailstack and against the
private Dovecot 2.3.19 (tests/interop.py) on copies of the same Maildir, every
STATUS and FETCH line compared byte for byte.
"""

import re
import smtplib
import socket

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.e2e.test_imap import IMAPTestCase, readReply
from tests.e2e.test_interop_dovecot import LISTENERS, _dovecotMissing
from tests.helpers import BASE_CONFIG, listenerTOML, startServer
from tests.interop import check, dovecotOnCopy, replyDifferences, sharedDataDir
from tests.test_imap_preview import DOVECOT

NOTE = (b"From: Alice <alice@lab.test>\r\nTo: demo@lab.test\r\nSubject: note\r\n\r\n"
        b"Hello  there,\r\n> quoted\r\nsee you.\r\n")


class ImaplibTests(IMAPTestCase):
    """
    imaplib's status() and fetch() with the new items.
    """

    listeners = IMAPTestCase.listeners + listenerTOML(
        "imap", tls="none", name="imapnoext", allow_plaintext_auth=True,
        disabled=["STATUS=SIZE", "PREVIEW", "OBJECTID"])

    @defer.inlineCallbacks
    def test_statusSizeAndPreview(self):
        """STATUS (SIZE) is the message's size; FETCH PREVIEW its text without the quote."""
        def session():
            c = self.loggedIn()
            try:
                check(c.append("INBOX", None, None, NOTE))
                caps = c.capabilities
                status = check(c.status("INBOX", "(MESSAGES SIZE)"))
                check(c.select("INBOX"))
                fetched = check(c.fetch("1", "(RFC822.SIZE PREVIEW (LAZY))"))
                flags = check(c.fetch("1", "(FLAGS)"))
                return caps, status, fetched, flags
            finally:
                c.logout()
        caps, status, fetched, flags = yield self.inThread(session)
        self.assertIn("STATUS=SIZE", caps)
        self.assertIn("PREVIEW", caps)
        self.assertEqual(status, [b'"INBOX" (MESSAGES 1 SIZE %d)' % (len(NOTE),)])
        self.assertEqual(fetched, [b'1 (RFC822.SIZE %d PREVIEW "Hello there, see you.")'
                                   % (len(NOTE),)])
        self.assertNotIn(b"\\Seen", flags[0])

    @defer.inlineCallbacks
    def test_disabledPerListener(self):
        """A listener with both switched off offers neither and refuses both."""
        def session():
            c = self.loggedIn("imapnoext")
            try:
                check(c.append("INBOX", None, None, NOTE))
                check(c.select("INBOX"))
                refused = []
                for ask in (lambda: c.status("INBOX", "(SIZE)"),
                            lambda: c.fetch("1", "(PREVIEW)")):
                    try:
                        ask()
                    except c.error as e:
                        refused.append(str(e))
                return c.capabilities, refused
            finally:
                c.logout()
        caps, refused = yield self.inThread(session)
        self.assertNotIn("STATUS=SIZE", caps)
        self.assertNotIn("PREVIEW", caps)
        self.assertNotIn("OBJECTID", caps)
        self.assertEqual(len(refused), 2, refused)

    @defer.inlineCallbacks
    def test_objectIds(self):
        """MAILBOXID survives RENAME and matches SELECT's code; EMAILIDs repeat in a new session."""
        def session():
            c = self.loggedIn()
            try:
                self.assertIn("OBJECTID", c.capabilities)
                check(c.append("INBOX", None, None, NOTE))
                created = check(c.create("Projects"))
                before = check(c.status("Projects", "(MAILBOXID)"))
                check(c.rename("Projects", "Work"))
                after = check(c.status("Work", "(MAILBOXID)"))
                check(c.select("INBOX"))
                selected = c.response("MAILBOXID")[1]
                inbox = check(c.status("INBOX", "(MAILBOXID)"))
                ids = check(c.fetch("1", "(EMAILID THREADID)"))
            finally:
                c.logout()
            c = self.loggedIn()
            try:
                check(c.select("INBOX"))
                again = check(c.fetch("1", "(EMAILID THREADID)"))
            finally:
                c.logout()
            return created, before, after, selected, inbox, ids, again
        created, before, after, selected, inbox, ids, again = yield self.inThread(session)
        mailboxId = re.match(rb'"Projects" \(MAILBOXID \((F\d+)\)\)$', before[0]).group(1)
        self.assertEqual(created, [b"[MAILBOXID (%s)] CREATE completed" % (mailboxId,)])
        self.assertEqual(after, [b'"Work" (MAILBOXID (%s))' % (mailboxId,)])
        self.assertEqual(inbox, [b'"INBOX" (MAILBOXID %s)' % (selected[0],)])
        self.assertRegex(ids[0], rb"^1 \(EMAILID \(M[A-Za-z0-9_-]{24}\) THREADID NIL\)$")
        self.assertEqual(again, ids)


SESSION = [
    b"a LOGIN demo@lab.test demo",
    b"b STATUS INBOX (MESSAGES SIZE)",
    b"c CREATE Empty",
    b'd LIST "" INBOX RETURN (STATUS (MESSAGES SIZE))',
    b'd2 LIST "" Empty RETURN (STATUS (SIZE))',
    b"e STATUS Empty (SIZE)",
    b"f SELECT INBOX",
    b"g FETCH 1:* (PREVIEW)",
    b"h UID FETCH 1:* (UID PREVIEW (LAZY))",
    b"i FETCH 1 (RFC822.SIZE PREVIEW (lazy) FLAGS)",
    b"j FETCH 1 (PREVIEW ())",
    b"k FETCH 1 (PREVIEW (BOGUS))",
]


def normalized(line):
    """
    A reply line as compared: tagged lines keep their tag and status, and a
    STATUS line its mailbox unquoted (mailstack quotes every name).
    """
    if line.startswith(b"* STATUS "):
        head, sep, rest = line[len(b"* STATUS "):].partition(b" (")
        return b"* STATUS " + head.strip(b'"') + sep + rest
    if not line.startswith(b"* "):
        return b" ".join(line.split(b" ")[:2])
    return line


def runSession(port):
    """Each command's reply lines (STATUS and FETCH lines, and the tagged one)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    replies = []
    try:
        for command in SESSION:
            tag = command.split(b" ", 1)[0]
            s.sendall(command + b"\r\n")
            lines = [normalized(line.rstrip(b"\r\n")) for line in readReply(f, tag)
                     if line.startswith((b"* STATUS", tag + b" ")) or b" FETCH " in line[:16]]
            replies.append((command, lines))
    finally:
        s.close()
    return replies


class DovecotComparisonTests(unittest.TestCase):
    """
    The same session against mailstack and Dovecot 2.3.19: the same replies.
    """

    skip = _dovecotMissing()
    timeout = 60

    @defer.inlineCallbacks
    def test_sameReplies(self):
        """STATUS SIZE, LIST-STATUS SIZE and every message's PREVIEW equal Dovecot's."""
        text, dataDir = sharedDataDir(self, BASE_CONFIG)
        server, _ = startServer(self, LISTENERS, text)

        def fill():
            with smtplib.SMTP("127.0.0.1", server.listenerPort("smtp"), timeout=10) as s:
                for message, _ in DOVECOT:
                    s.sendmail("alice@lab.test", ["demo@lab.test"], message)
        yield threads.deferToThread(fill)
        dovecot = yield dovecotOnCopy(self, dataDir)
        ours = yield threads.deferToThread(runSession, server.listenerPort("imap"))
        theirs = yield threads.deferToThread(runSession, dovecot.imapPort)
        differences = replyDifferences(ours, theirs)
        self.assertEqual(differences, [], "\n".join(differences))
        previews = [lines for command, lines in ours if command.startswith(b"g ")][0]
        self.assertEqual(len(previews), len(DOVECOT) + 1)
        self.assertEqual([lines[-1] for command, lines in ours if command[:1] in b"jk"],
                         [b"j BAD", b"k BAD"])
