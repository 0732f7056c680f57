"""
docs/lab-guide.md against the server: every session and command block of the
guide is replayed, chapter by chapter, against a fresh server running the lab
config (etc/mailstack.toml on free ports), and any reply that differs from
the guide's fails the chapter's test with a diff naming the section. The
parser, the masks and the challenge answers of tests/labguide.py are tested
on their own first.
"""

import base64
import hashlib
import hmac
import os
import re

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailstack.testing import ReactorMailServer
from tests import labguide
from tests.interop import findBinary

GUIDE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "docs", "lab-guide.md")


def readGuide():
    with open(GUIDE, encoding="utf-8") as f:
        return f.read()


SAMPLE = """\
# A guide

## 1. One chapter

### 1.1 A section

```session pop3
S: +OK ready <1.2.abc@localhost>
C: USER demo
S: +OK Send PASS
# TLS handshake
# (another terminal sends demo a message: Subject: hi)
C:
S:
```

```sh
not a guide block
```

## 2. Another

```command
$ curl -s pop3://127.0.0.1:3110/ \\
    -X UIDL
1 000000016b1522d0
$ true
```

```command illustrative
$ mutt
```
"""


class ParseTests(unittest.TestCase):
    """The block format the guide documents."""

    def test_blocks(self):
        """Session and command blocks are found with their chapter and section; other fences are not."""
        blocks = labguide.parseGuide(SAMPLE)
        self.assertEqual([(b.kind, b.listener, b.illustrative, b.chapter) for b in blocks],
                         [("session", "pop3", False, "1. One chapter"),
                          ("command", "", False, "2. Another"),
                          ("command", "", True, "2. Another")])
        self.assertEqual(blocks[0].section, "1. One chapter > 1.1 A section")
        self.assertEqual(blocks[0].line, 7)

    def test_sessionSteps(self):
        """C:, S:, the TLS handshake and a delivery become steps; a bare C: or S: is an empty line."""
        session = labguide.parseGuide(SAMPLE)[0]
        self.assertEqual(session.steps, [
            ("S", "+OK ready <1.2.abc@localhost>"), ("C", "USER demo"),
            ("S", "+OK Send PASS"), ("tls", None), ("deliver", "hi"), ("C", ""), ("S", "")])

    def test_commandSteps(self):
        """A trailing backslash continues a command; its output lines follow it."""
        command = labguide.parseGuide(SAMPLE)[1]
        self.assertEqual([(c, out) for c, out, _ in command.steps], [
            ("curl -s pop3://127.0.0.1:3110/ -X UIDL", ["1 000000016b1522d0"]),
            ("true", [])])

    def test_unknownLine(self):
        """A session line that is neither C:, S: nor a known direction is a format error."""
        text = "## x\n\n```session smtp\nS: 220 hi\n# something else\nS: 221 bye\n```\n"
        error = self.assertRaises(labguide.GuideFormatError, labguide.parseGuide, text)
        self.assertIn("'# something else'", str(error))

    def test_unknownListener(self):
        """A session block must name a lab listener."""
        text = "## x\n\n```session smtps\nS: 220 hi\n```\n"
        error = self.assertRaises(labguide.GuideFormatError, labguide.parseGuide, text)
        self.assertIn("'smtps'", str(error))

    def test_endsWithServer(self):
        """A session block ends with the server's last line (where it hangs up)."""
        text = "## x\n\n```session smtp\nS: 220 hi\nC: QUIT\n```\n"
        self.assertRaises(labguide.GuideFormatError, labguide.parseGuide, text)

    def test_guideParses(self):
        """The guide itself follows its format and shows sessions on every kind of lab port."""
        blocks = labguide.parseGuide(readGuide())
        listeners = {b.listener for b in blocks if b.kind == "session"}
        self.assertEqual(listeners, set(labguide.LAB_PORTS))
        self.assertTrue(any(b.kind == "command" and not b.illustrative for b in blocks))


class MaskTests(unittest.TestCase):
    """What varies between runs is ignored, nothing else."""

    def test_varying(self):
        """Two runs' queue ids, dates, UIDVALIDITY, unique-ids, timestamps, challenges and ciphers compare equal."""
        pairs = [
            ("250 2.0.0 OK: queued as 51439D0E26E3", "250 2.0.0 OK: queued as 0ADAFD5778DD"),
            ("\tSun, 06 Dec 2026 08:54:40 +0000", "\tMon, 7 Dec 2026 10:00:01 +0100"),
            ("* OK [UIDVALIDITY 1796547266] UIDs valid", "* OK [UIDVALIDITY 17] UIDs valid"),
            ("S: 1 000000016b1522d0", "S: 1 00000001aaaaaaaa"),
            ("+OK ready <13681.1796547280.83d39432@localhost>",
             "+OK ready <4242.1764417600.5f0c9a1e@localhost>"),
            ("334 PDE3OTU5NTM4MjA4NjMuY2QyZDBmMzI4Zjk5YTZkMEBsb2NhbGhvc3Q+",
             "334 PDQyNDIuMTc2NDQxNzYxMi44ZDNlNzdhMmMxYjBmNDE1QGxvY2FsaG9zdD4="),
            ("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))",
             "(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits))"),
            ('* 1 FETCH (INTERNALDATE " 6-Dec-2026 08:54:40 +0000")',
             '* 1 FETCH (INTERNALDATE "16-Dec-2026 18:54:40 -0500")'),
        ]
        for one, other in pairs:
            self.assertEqual(labguide.mask(one), labguide.mask(other), (one, other))

    def test_significant(self):
        """A different code, text, count, UID or size still differs after masking."""
        pairs = [
            ("250 2.0.0 OK: queued as 51439D0E26E3", "250 2.0.1 OK: queued as 51439D0E26E3"),
            ("S: 1 000000016b1522d0", "S: 1 000000026b1522d0"),
            ("* OK [UIDNEXT 4] Predicted next UID", "* OK [UIDNEXT 5] Predicted next UID"),
            ("+OK 2 571", "+OK 2 572"),
            ("-ERR Syntax: TOP message lines", "-ERR Syntax: TOP message"),
        ]
        for one, other in pairs:
            self.assertNotEqual(labguide.mask(one), labguide.mask(other), (one, other))


class ChallengeTests(unittest.TestCase):
    """Client lines computed from a challenge are computed again for each run."""

    def test_apop(self):
        """An APOP line gets the digest of this greeting's timestamp and the lab password."""
        greeting = "+OK mailstack POP3 server ready <77.1796547280.83d39432@localhost>"
        line = labguide.answerChallenge("APOP demo 0123456789abcdef0123456789abcdef", None,
                                        greeting)
        digest = hashlib.md5(b"<77.1796547280.83d39432@localhost>demo").hexdigest()
        self.assertEqual(line, "APOP demo " + digest)

    def test_cramMD5(self):
        """A response to a CRAM-MD5 challenge is the HMAC of this challenge, for the same user."""
        challenge = b"<1.2.3@localhost>"
        old = base64.b64encode(b"demo@lab.test " + b"0" * 32).decode()
        line = labguide.answerChallenge(
            old, "+ " + base64.b64encode(challenge).decode(), "greeting")
        mac = hmac.new(b"demo", challenge, "md5").hexdigest()
        self.assertEqual(base64.b64decode(line).decode(), "demo@lab.test " + mac)

    def test_others(self):
        """Any other client line is sent as the guide writes it."""
        self.assertEqual(labguide.answerChallenge("AGRlbW8AZGVtbw==", "334 ", "220 x"),
                         "AGRlbW8AZGVtbw==")
        self.assertEqual(labguide.answerChallenge("USER demo", "+ PD", "+OK"), "USER demo")


class LabConfigTests(unittest.TestCase):
    """The replayed server is the lab config itself, moved."""

    def test_moved(self):
        """Every lab endpoint gets a free port and the data directory is the server's own."""
        text = labguide.labConfigText()
        self.assertNotIn('"../var', text)
        self.assertEqual(re.findall(r"tcp:(\d+):", text),
                         ["0"] * len(re.findall(r"tcp:(\d+):", text)))
        with open(labguide.LAB_CONFIG, encoding="utf-8") as f:
            original = f.read()
        self.assertEqual(re.sub(r"tcp:\d+:", "tcp:0:", original).replace('"../var', '"var'),
                         text)


class DiffTests(unittest.TestCase):
    """A disagreement reads as a diff of the guide against the server."""

    def test_challengeMasked(self):
        """A POP3 CRAM-MD5 challenge in a session line differs from run to run without failing."""
        text = ("## 1. c\n\n```session pop3\nS: +OK ready\nC: AUTH CRAM-MD5\n"
                "S: + PDkxMDcuMTc5NjU0NzgwNy42MzAwNTkyYWJlMTdhMjlkQGxvY2FsaG9zdD4=\n```\n")
        block = labguide.parseGuide(text)[0]
        happened = [("S", "+OK ready"), ("C", "AUTH CRAM-MD5"),
                    ("S", "+ PDk2ODAuMTc5NjU0NzgxNy4wNmZjY2E3N2MzYjM2ZjI2QGxvY2FsaG9zdD4=")]
        self.assertIsNone(labguide.compareSession(block, happened))

    def test_diff(self):
        """Only the lines that really differ show as changed."""
        text = ("## 1. c\n\n```session smtp\nS: 220 localhost ready\nC: QUIT\n"
                "S: 250 2.0.0 OK: queued as 51439D0E26E3\nS: 221 bye\n```\n")
        block = labguide.parseGuide(text)[0]
        happened = [("S", "220 localhost ready"), ("C", "QUIT"),
                    ("S", "250 2.0.0 OK: queued as 0ADAFD5778DD"), ("S", "221 2.0.0 bye")]
        diff = labguide.compareSession(block, happened)
        self.assertIn("-S: 221 bye\n+S: 221 2.0.0 bye", diff)
        self.assertNotIn("0ADAFD5778DD", diff)
        happened[3] = ("S", "221 bye")
        self.assertIsNone(labguide.compareSession(block, happened))


def guideChapters(text):
    """The guide's replayed blocks by chapter, in order: [(chapter, [blocks])]."""
    chapters = []
    for block in labguide.parseGuide(text):
        if block.illustrative:
            continue
        if not chapters or chapters[-1][0] != block.chapter:
            chapters.append((block.chapter, []))
        chapters[-1][1].append(block)
    return chapters


def neededPrograms(blocks):
    """The programs a chapter's command blocks run that are not installed."""
    missing = []
    for block in blocks:
        if block.kind == "command":
            for command, _, _ in block.steps:
                program = command.split()[0]
                if findBinary(program) is None and program not in missing:
                    missing.append(program)
    return missing


class ReplayTests(unittest.TestCase):
    """
    The guide replayed: a test per chapter, each on a fresh server running
    the lab config.
    """

    def startLabServer(self):
        server = ReactorMailServer(config=labguide.labConfigText(), directory=self.mktemp())
        server.start()
        self.addCleanup(server.stop)
        implicit = {l.name for l in server.config.listeners if l.tls == "implicit"}
        return labguide.Target(server.host, dict(server.ports), implicit, server.certificate,
                               server.directory)

    @staticmethod
    def replay(blocks, target):
        """Every block in order (in a thread): the disagreements, as text."""
        problems = []
        for block in blocks:
            if block.kind == "session":
                diff = labguide.compareSession(block, labguide.replaySession(block, target))
                if diff:
                    problems.append("%s: %s: the guide and the server disagree:\n%s" % (
                        GUIDE, block.where, diff))
            else:
                for command, expected, _ in block.steps:
                    diff = labguide.compareCommand(
                        command, expected, labguide.runCommand(command, target))
                    if diff:
                        problems.append("%s: %s: the command's output differs:\n%s" % (
                            GUIDE, block.where, diff))
        return problems

    @defer.inlineCallbacks
    def replayChapter(self, number):
        chapters = guideChapters(readGuide())
        self.assertGreater(len(chapters), number, "the guide has fewer chapters with sessions")
        chapter, blocks = chapters[number]
        missing = neededPrograms(blocks)
        if missing:
            raise unittest.SkipTest("%s needs %s" % (chapter, ", ".join(missing)))
        target = self.startLabServer()
        problems = yield threads.deferToThread(self.replay, blocks, target)
        if problems:
            self.fail("\n\n".join(problems))

    def test_smtp(self):
        """The guide's SMTP chapter gets the replies it shows from the lab server."""
        return self.replayChapter(0)

    def test_pop3(self):
        """The guide's POP3 chapter gets the replies it shows from the lab server."""
        return self.replayChapter(1)

    def test_imap(self):
        """The guide's IMAP chapter gets the replies it shows from the lab server."""
        return self.replayChapter(2)

    def test_clients(self):
        """The guide's real-client chapter (swaks, curl, s-nail's session) gets the output it shows."""
        return self.replayChapter(3)

    def test_everyChapter(self):
        """Every chapter with sessions is one of the four replayed above."""
        self.assertEqual(len(guideChapters(readGuide())), 4)

    @defer.inlineCallbacks
    def test_recordThenReplay(self):
        """A block's client lines recorded against the server give a session the replay then accepts."""
        text = ("## 1. c\n\n```session pop3\nC: APOP demo 0123456789abcdef0123456789abcdef\n"
                "C: STAT\nC: TOP 1\nC: QUIT\nS:\n```\n")
        block = labguide.parseGuide(text)[0]
        target = self.startLabServer()
        body = yield threads.deferToThread(labguide.recordSession, block, target, 0.1)
        self.assertTrue(body[0].startswith("S: +OK mailstack POP3 server ready <"), body)
        self.assertIn("S: -ERR Syntax: TOP message lines", body)
        self.assertEqual(body[-1], "S: +OK mailstack POP3 server signing off (0 deleted, 0 left)")
        recorded = labguide.parseGuide("## 1. c\n\n```session pop3\n%s\n```\n" % (
            "\n".join(body),))[0]
        problems = yield threads.deferToThread(self.replay, [recorded], target)
        self.assertEqual(problems, [])

    @defer.inlineCallbacks
    def test_changedReplyFails(self):
        """A documented server line that the server does not send fails, naming the section."""
        text = readGuide()
        first = labguide.parseGuide(text)[0]
        lines = text.split("\n")
        # The last line of the first session is the server's goodbye: change it.
        index = first.bodyStart + len(first.body) - 1
        self.assertTrue(lines[index].startswith("S: "))
        lines[index] = lines[index] + " (changed)"
        changed = labguide.parseGuide("\n".join(lines))[0]
        target = self.startLabServer()
        problems = yield threads.deferToThread(self.replay, [changed], target)
        self.assertEqual(len(problems), 1)
        self.assertIn(first.section, problems[0])
        self.assertIn("-" + lines[index], problems[0])
