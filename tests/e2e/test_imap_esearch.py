"""
ESEARCH (RFC 4731), SEARCHRES (RFC 5182) and WITHIN (RFC 5032) end to end:
imaplib sending the commands raw (it has no methods for them) to mailstack,
and one session run against mailstack and against a private Dovecot 2.3
(tests/interop.py) on copies of the same Maildir, every reply compared byte
for byte (tagged texts and the texts after untagged OK codes aside, which
differ by design: Dovecot adds timings).
"""

import imaplib
import os
import re
import shutil
import smtplib
import socket

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.e2e.test_imap import IMAPTestCase
from tests.e2e.test_interop_dovecot import LISTENERS, _dovecotMissing
from tests.helpers import BASE_CONFIG, listenerTOML, startServer
from tests.interop import Dovecot, check, sharedDataDir

OLD_DATE = '"01-Jan-2020 10:00:00 +0000"'


def message(n):
    return (b"From: Alice <alice@lab.test>\r\nTo: demo@lab.test\r\nSubject: note %d\r\n"
            b"Message-ID: <note-%d@lab.test>\r\n"
            b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nBody of note %d.\r\n" % (n, n, n))


class ImaplibTests(IMAPTestCase):
    """
    imaplib, through its generic command methods, with each extension.
    """

    listeners = IMAPTestCase.listeners + listenerTOML(
        "imap", tls="none", name="imapnoext", allow_plaintext_auth=True,
        disabled=["ESEARCH", "WITHIN"])

    def fill(self, c):
        """Four messages: UIDs 1-4, 2 and 4 \\Seen, 4 dated 2020."""
        for n in range(1, 4):
            check(c.append("INBOX", r"(\Seen)" if n == 2 else None, None, message(n)))
        check(c.append("INBOX", r"(\Seen)", OLD_DATE, message(4)))
        check(c.select("INBOX"))

    @defer.inlineCallbacks
    def test_esearch(self):
        """SEARCH and UID SEARCH RETURN (...) answer * ESEARCH with the command's tag."""
        def session():
            c = self.loggedIn()
            try:
                self.fill(c)
                self.assertIn("ESEARCH", c.capabilities)
                check(c.uid("SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "ALL"))
                byUID = c.response("ESEARCH")[1]
                check(c.search(None, "RETURN", "(COUNT)", "UNSEEN"))
                count = c.response("ESEARCH")[1]
                check(c.search(None, "RETURN", "()", "SUBJECT", "nothing"))
                none = c.response("ESEARCH")[1]
                return byUID, count, none
            finally:
                c.logout()
        byUID, count, none = yield self.inThread(session)
        self.assertEqual(len(byUID), 1)
        self.assertRegex(byUID[0], rb'^\(TAG "[A-Z0-9]+"\) UID MIN 1 MAX 4 ALL 1:4 COUNT 4$')
        self.assertRegex(count[0], rb'^\(TAG "[A-Z0-9]+"\) COUNT 2$')
        self.assertRegex(none[0], rb'^\(TAG "[A-Z0-9]+"\)$')

    @defer.inlineCallbacks
    def test_searchres(self):
        """RETURN (SAVE) then FETCH $, STORE $ and COPY $ act on what was found."""
        def session():
            c = self.loggedIn()
            try:
                self.fill(c)
                self.assertIn("SEARCHRES", c.capabilities)
                check(c.search(None, "RETURN", "(SAVE)", "SEEN"))
                saved = c.response("ESEARCH")[1]
                fetched = check(c.fetch("$", "(UID)"))
                check(c.store("$", "+FLAGS", r"(\Flagged)"))
                flagged = check(c.search(None, "FLAGGED"))
                check(c.create("Kept"))
                copied = check(c.copy("$", "Kept"))
                kept = check(c.status("Kept", "(MESSAGES)"))
                check(c.select("INBOX"))  # empties $
                after = check(c.fetch("$", "(UID)"))
                return saved, fetched, flagged, copied, kept, after
            finally:
                c.logout()
        saved, fetched, flagged, copied, kept, after = yield self.inThread(session)
        self.assertEqual(saved, [None])
        self.assertEqual(fetched, [b"2 (UID 2)", b"4 (UID 4)"])
        self.assertEqual(flagged, [b"2 4"])
        self.assertTrue(copied[0].startswith(b"[COPYUID "), copied)
        self.assertEqual(kept, [b'"Kept" (MESSAGES 2)'])
        self.assertEqual(after, [None])

    @defer.inlineCallbacks
    def test_within(self):
        """OLDER and YOUNGER find messages by their age in seconds."""
        def session():
            c = self.loggedIn()
            try:
                self.fill(c)
                self.assertIn("WITHIN", c.capabilities)
                return (check(c.uid("SEARCH", "OLDER", "86400")),
                        check(c.uid("SEARCH", "YOUNGER", "86400")))
            finally:
                c.logout()
        older, younger = yield self.inThread(session)
        self.assertEqual(older, [b"4"])
        self.assertEqual(younger, [b"1 2 3"])

    @defer.inlineCallbacks
    def test_disabledPerListener(self):
        """A listener with ESEARCH and WITHIN disabled offers neither (nor SEARCHRES): BAD."""
        def session():
            c = self.loggedIn("imapnoext")
            try:
                self.fill(c)
                caps = c.capabilities
                refused = []
                for args in (("RETURN", "(COUNT)", "ALL"), ("OLDER", "5")):
                    try:
                        c.search(None, *args)
                    except imaplib.IMAP4.error as e:
                        refused.append(str(e))
                return caps, refused
            finally:
                c.logout()
        caps, refused = yield self.inThread(session)
        for name in ("ESEARCH", "SEARCHRES", "WITHIN"):
            self.assertNotIn(name, caps)
        self.assertEqual(len(refused), 2, refused)


# The session both servers answer: INBOX holds UIDs 1-7 (5 expunged, so
# sequence numbers 1-6 are UIDs 1-4, 6, 7; 2 and 4 \Seen), then UIDs 8 and 9
# appended with a 2020 internal date.
SESSION = [
    b'a LOGIN demo@lab.test demo',
    b'b APPEND INBOX () ' + OLD_DATE.encode() + b' {%d+}',
    b'c APPEND INBOX (\\Seen) ' + OLD_DATE.encode() + b' {%d+}',
    b'd SELECT INBOX',
    b'e SEARCH RETURN (MIN MAX COUNT ALL) ALL',
    b'f UID SEARCH RETURN (MIN MAX COUNT ALL) ALL',
    b'g SEARCH RETURN () UNSEEN',
    b'h SEARCH RETURN (COUNT) SUBJECT nothing',
    b'i SEARCH RETURN (MIN) SUBJECT nothing',
    b'j UID SEARCH RETURN (ALL) SUBJECT nothing',
    b'k SEARCH RETURN (MAX) SEEN',
    b'l UID SEARCH RETURN (ALL) 1:* NOT BODY "note 3"',
    b'm SEARCH RETURN (ALL) CHARSET UTF-8 SUBJECT note',
    b'n SEARCH RETURN (COUNT COUNT) ALL',
    b'o SEARCH RETURN (SAVE) SEEN',
    b'p FETCH $ (UID)',
    b'q UID FETCH $ (UID)',
    b'r SEARCH $',
    b's UID SEARCH UID $',
    b't SEARCH RETURN (SAVE MIN) UNSEEN',
    b'u FETCH $ (UID)',
    b'v UID SEARCH RETURN (SAVE MIN MAX) ALL',
    b'w UID FETCH $ (UID)',
    b'x SEARCH RETURN (SAVE COUNT) 2:4',
    b'y FETCH $ (UID)',
    b'z SEARCH RETURN (SAVE MIN ALL) 3:5',
    b'aa FETCH $ (UID)',
    b'ab SEARCH RETURN (SAVE) UID 99:100 BOGUS',
    b'ac FETCH $ (UID)',
    b'ad SEARCH RETURN (SAVE) CHARSET FOO ALL',
    b'ae FETCH $ (UID)',
    b'ae1 STORE $ +FLAGS (\\Flagged)',
    b'ae2 COPY $ Trash',
    b'ae3 MOVE $ Trash',
    b'ae4 UID EXPUNGE $',
    b'ae5 UID SEARCH RETURN (COUNT) $',
    b'ae6 SEARCH RETURN (MIN) NOT $',
    b'af SEARCH RETURN (SAVE) 2,4',
    b'ag STORE $ +FLAGS.SILENT (\\Flagged)',
    b'ah SEARCH FLAGGED',
    b'ai COPY $ Trash',
    b'aj STORE 2 +FLAGS.SILENT (\\Deleted)',
    b'ak EXPUNGE',
    b'al FETCH $ (UID)',
    b'am SEARCH RETURN (ALL) $',
    b'an SEARCH RETURN (MIN) $ 3',
    b'ao UID SEARCH OLDER 86400',
    b'ap UID SEARCH YOUNGER 86400',
    b'aq SEARCH RETURN (COUNT) OR YOUNGER 3600 OLDER 86400',
    b'ar UID SEARCH RETURN (ALL) NOT YOUNGER 86400',
    b'as UID SEARCH RETURN (SAVE) YOUNGER 86400 UID 6:*',
    b'at UID EXPUNGE $',
    b'au UID STORE $ +FLAGS.SILENT (\\Deleted)',
    b'av UID EXPUNGE $',
    b'aw SEARCH RETURN (SAVE) 1',
    b'ax SELECT INBOX',
    b'ay FETCH $ (UID)',
    b'az SEARCH RETURN (SAVE) 1:2',
    b'ba MOVE $ Trash',
    b'bb SEARCH RETURN (ALL) ALL',
    b'bc EXAMINE INBOX',
    b'bd SEARCH RETURN (save) ALL',
    b'be FETCH $ (UID)',
    b'bf SEARCH $',
    b'bg UID SEARCH RETURN (COUNT) ALL',
    # Pipelined in one write: each command using $ waits for the SAVE before
    # it. Dovecot may finish commands that only read $ in another order, so
    # the lines of such an entry are compared as a set.
    b'bh SEARCH RETURN (SAVE) BODY "note 4"\r\nbi FETCH $ (UID)\r\n'
    b'bj SEARCH RETURN (SAVE) ALL\r\nbk UID FETCH $ (UID)\r\nbl SEARCH $',
]

# Commands whose status both servers answer BAD.
REFUSED = [
    b'ca SEARCH RETURN (BOGUS) ALL',
    b'cb SEARCH RETURN (MIN',
    b'cc SEARCH RETURN MIN ALL',
    b'cd SEARCH CHARSET UTF-8 RETURN (ALL) ALL',
    b'ce SEARCH $,1',
]

_UNTAGGED_OK = re.compile(rb"^(\* (?:OK|NO|BAD) \[[^]]*\]).*$")
# mailstack names the charsets it knows, as RFC 3501 7.1 allows; Dovecot names none.
_BADCHARSET = re.compile(rb"\[BADCHARSET \([^)]*\)\]")
# Differences outside these extensions, left out of the comparison: Dovecot
# sends OK [CLOSED] on every SELECT while selected, mailstack only after ENABLE
# QRESYNC (RFC 7162 3.2.11).
IGNORED = (b"* OK [CLOSED]",)


def normalized(line, tag):
    """A reply line without the free text of tagged and of untagged OK [CODE] lines."""
    line = _BADCHARSET.sub(b"[BADCHARSET]", line)
    if line.startswith(tag + b" "):
        words = line.split(b" ")
        kept = words[:2]
        if len(words) > 2 and words[2].startswith(b"["):
            code = line[len(b" ".join(kept)) + 1:]
            kept.append(code[:code.index(b"]") + 1])
        return b" ".join(kept)
    match = _UNTAGGED_OK.match(line)
    return match.group(1) if match else line


def runSession(port, commands, literal):
    """
    Run C{commands} in order on one connection; each command's normalized
    replies. An entry of several lines is sent in one write (pipelined) and
    answered until its last command's tag.
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    replies = []
    try:
        for command in commands:
            tags = [line.split(b" ", 1)[0] for line in command.split(b"\r\n")]
            tag = tags[-1]
            done = set()
            if command.endswith(b"+}"):
                s.sendall(command.replace(b"%d", b"%d" % (len(literal),)) + b"\r\n"
                          + literal + b"\r\n")
            else:
                s.sendall(command + b"\r\n")
            lines = []
            while True:
                line = f.readline()
                if not line:
                    raise AssertionError("connection closed after %r" % (command,))
                line = line.rstrip(b"\r\n")
                lineTag = line.split(b" ", 1)[0]
                shown = normalized(line, lineTag if lineTag in tags else tag)
                if shown not in IGNORED:
                    lines.append(shown)
                if lineTag in tags:
                    done.add(lineTag)
                if done == set(tags):
                    break
            replies.append((command, sorted(lines) if len(tags) > 1 else lines))
    finally:
        s.close()
    return replies


class DovecotComparisonTests(unittest.TestCase):
    """
    The same session against mailstack and Dovecot 2.3: the same replies.
    """

    skip = _dovecotMissing()
    timeout = 60

    @defer.inlineCallbacks
    def test_sameReplies(self):
        """Every ESEARCH, SEARCHRES and WITHIN reply of the session equals Dovecot's."""
        text, dataDir = sharedDataDir(self, BASE_CONFIG)
        server, _ = startServer(self, LISTENERS, text)

        def fill():
            with smtplib.SMTP("127.0.0.1", server.listenerPort("smtp"), timeout=10) as s:
                for n in range(1, 8):
                    s.sendmail("alice@lab.test", ["demo@lab.test"], message(n))
            c = imaplib.IMAP4("127.0.0.1", server.listenerPort("imap"), timeout=10)
            try:
                c.login("demo@lab.test", "demo")
                check(c.select("INBOX"))
                check(c.store("2,4", "+FLAGS", r"(\Seen)"))
                check(c.store("5", "+FLAGS", r"(\Deleted)"))
                check(c.expunge())
                # Trash gets its UIDVALIDITY before Dovecot's copy (COPYUID names it).
                check(c.status("Trash", "(UIDVALIDITY)"))
            finally:
                c.logout()
        yield threads.deferToThread(fill)
        # Dovecot gets a copy: the session changes the mailbox.
        copyDir = dataDir + "-dovecot"
        shutil.copytree(dataDir, copyDir, symlinks=True)
        literal = message(8)
        commands = SESSION + REFUSED
        ours = yield threads.deferToThread(
            runSession, server.listenerPort("imap"), commands, literal)
        dovecot = Dovecot(self, copyDir)
        dovecot.handOver(os.path.join(copyDir, "mail", "lab.test"))
        yield dovecot.start()
        theirs = yield threads.deferToThread(runSession, dovecot.imapPort, commands, literal)
        self.assertEqual((len(ours), len(theirs)), (len(commands), len(commands)))
        differences = []
        for (command, lines), (_, expected) in zip(ours[1:], theirs[1:]):  # LOGIN's CAPABILITY
            if lines != expected:
                differences.append("%s\n  mailstack: %r\n  Dovecot:   %r" % (
                    command.decode(), lines, expected))
        self.assertEqual(differences, [], "\n".join(differences))
        pipelined = [lines for command, lines in ours if command.startswith(b"bh ")][0]
        self.assertEqual(pipelined.count(b"* 1 FETCH (UID 4)"), 2, pipelined)
        self.assertIn(b"* SEARCH 1 2 3", pipelined)
        self.assertEqual([lines[-1].split(b" ")[1] for command, lines in ours
                          if command in REFUSED], [b"BAD"] * len(REFUSED))
