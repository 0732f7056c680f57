"""
The rest of Dovecot 2.3's capabilities end to end: imaplib against
mailstack, and the same commands against mailstack and the private Dovecot
2.3.19 (tests/interop.py) over one data directory, replies compared byte
for byte: LOGIN-REFERRALS (users marked nologin in the shared passwd-file),
SNIPPET=FUZZY and PREVIEW=FUZZY, SAVEDATE (messages Dovecot saved, read by
both), I18NLEVEL=1 (SEARCH and SORT over non-ASCII text).
"""

import base64
import datetime
import email.utils
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
from tests.helpers import BASE_CONFIG, startServer
from tests.interop import Dovecot, check, sharedDataDir
from tests.test_imap_casemap import DOVECOT as CASEMAP_TERMS
from tests.test_imap_casemap import SUBJECTS, message
from tests.test_imap_preview import DOVECOT, DOVECOT_EDGES, UNSTABLE_EDGES

# The preview edge cases Dovecot answers the same way every time.
EDGES = [edge for i, edge in enumerate(DOVECOT_EDGES) if i not in UNSTABLE_EDGES]

# passwd-file lines both servers read: Dovecot's nologin extra fields.
REFERRED = (
    "hosted@lab.test:{PLAIN}pw::::::nologin host=other.test\n"
    "ported@lab.test:{PLAIN}pw::::::nologin host=Other.Test port=1143 destuser=bob@x.test\n"
    "reason@lab.test:{PLAIN}pw::::::nologin reason=Moved host=other.test port=143\n"
    "odd@lab.test:{PLAIN}pw::::::nologin host=::1 destuser=a;b/c?d+f~g!h*i'j(k)l=m,n$o&p[q]r#s\n"
    "utf@lab.test:{PLAIN}pw::::::nologin host=other.test destuser=\u00e9t\u00e9 port=993\n"
    "gone@lab.test:{PLAIN}pw::::::nologin reason=Gone\n"
    "nolog@lab.test:{PLAIN}pw::::::nologin\n"
    "suggest@lab.test:{PLAIN}pw::::::host=other.test\n"
)

NOTE = (b"From: Alice <alice@lab.test>\r\nTo: demo@lab.test\r\nSubject: note\r\n\r\n"
        b"Hello  there,\r\n> quoted\r\nsee you.\r\n")


def addUsers(dataDir, text=REFERRED):
    """Append passwd-file lines to a data directory's users file (both servers see them)."""
    with open(os.path.join(dataDir, "users"), "a", encoding="utf-8") as f:
        f.write(text)


class ImaplibTests(IMAPTestCase):
    """imaplib with the extensions Dovecot 2.3 offers and mailstack now does too."""

    def setUp(self):
        IMAPTestCase.setUp(self)
        addUsers(os.path.join(self.directory, "var"))

    @defer.inlineCallbacks
    def test_loginReferral(self):
        """imaplib's login() fails with the REFERRAL code; the capability is listed before login."""
        def session():
            c = self.client()
            try:
                caps = c.capabilities
                try:
                    c.login("hosted@lab.test", "pw")
                except c.error as e:
                    return caps, e.args[0]
                return caps, None
            finally:
                c.shutdown()
        caps, error = yield self.inThread(session)
        self.assertIn("LOGIN-REFERRALS", caps)
        self.assertEqual(error, b"[REFERRAL imap://hosted%40lab.test;AUTH=PLAIN@other.test/]"
                                b" Try this server instead.")

    @defer.inlineCallbacks
    def test_fuzzyPreview(self):
        """fetch() of SNIPPET (FUZZY) and PREVIEW (FUZZY) gives the fuzzy forms imaplib passes on."""
        def session():
            c = self.loggedIn()
            try:
                check(c.append("INBOX", None, None, NOTE))
                check(c.select("INBOX"))
                return c.capabilities, check(c.fetch("1", "(SNIPPET (FUZZY) PREVIEW (LAZY=FUZZY))"))
            finally:
                c.logout()
        caps, fetched = yield self.inThread(session)
        self.assertIn("SNIPPET=FUZZY", caps)
        self.assertIn("PREVIEW=FUZZY", caps)
        self.assertEqual(fetched, [b'1 (SNIPPET (FUZZY "Hello there, see you.")'
                                   b' PREVIEW (FUZZY "Hello there, see you."))'])

    @defer.inlineCallbacks
    def test_threadSaveDateAndI18n(self):
        """thread('REFS'), FETCH SAVEDATE and a UTF-8 SEARCH through imaplib."""
        def session():
            c = self.loggedIn()
            try:
                check(c.append("INBOX", None, '"01-Feb-2001 10:00:00 +0000"',
                               b"Subject: Caf\xc3\xa9\r\nMessage-ID: <1@x>\r\n\r\nx\r\n"))
                check(c.append("INBOX", None, None,
                               b"Subject: Re: cafe\r\nMessage-ID: <2@x>\r\nReferences: <1@x>"
                               b"\r\n\r\nx\r\n"))
                check(c.select("INBOX"))
                threaded = check(c.thread("REFS", "UTF-8", "ALL"))
                saved = check(c.fetch("1", "(SAVEDATE INTERNALDATE)"))
                c.literal = "CAFE".encode()
                found = check(c.search("UTF-8", "SUBJECT"))
                return c.capabilities, threaded, saved, found
            finally:
                c.logout()
        caps, threaded, saved, found = yield self.inThread(session)
        for name in ("THREAD=REFS", "SAVEDATE", "I18NLEVEL=1"):
            self.assertIn(name, caps)
        self.assertEqual(threaded, [b"(1 2)"])
        self.assertRegex(saved[0], rb'^1 \(SAVEDATE "[^"]+" INTERNALDATE "01-Feb-2001 10:00:00 \+0000"\)$')
        self.assertNotIn(b"2001", saved[0].split(b"INTERNALDATE")[0])
        self.assertEqual(found, [b"1 2"])


def exchange(port, lines):
    """
    One connection: send each of C{lines} (a command, or a SASL response),
    return the greeting and every reply line up to each tagged or
    continuation line.
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    try:
        out = [f.readline()]
        for line in lines:
            s.sendall(line + b"\r\n")
            while True:
                reply = f.readline()
                if not reply:
                    raise AssertionError("connection closed after %r" % (line,))
                while reply.endswith(b"}\r\n"):  # a literal: its octets, then the line's rest
                    size = int(reply[reply.rindex(b"{") + 1:-3])
                    reply += f.read(size) + f.readline()
                out.append(reply)
                if not reply.startswith(b"* "):
                    break
        return out
    finally:
        s.close()


def b64(data):
    return base64.b64encode(data)


# Each a connection of its own (Dovecot slows down a client's repeated refusals).
REFERRAL_SESSIONS = [
    [b"a LOGIN hosted@lab.test pw"],
    [b"a LOGIN HOSTED@lab.test pw"],
    [b"a LOGIN ported@lab.test pw"],
    [b"a LOGIN reason@lab.test pw"],
    [b"a LOGIN odd@lab.test pw"],
    [b"a LOGIN utf@lab.test pw"],
    [b"a LOGIN gone@lab.test pw"],
    [b"a LOGIN nolog@lab.test pw"],
    [b"a AUTHENTICATE PLAIN " + b64(b"\0hosted@lab.test\0pw")],
    [b"a AUTHENTICATE PLAIN", b64(b"\0ported@lab.test\0pw")],
    [b"a AUTHENTICATE LOGIN", b64(b"hosted@lab.test"), b64(b"pw")],
]

FETCHES = [
    b"f FETCH 1:* (SNIPPET (FUZZY))",
    b"g FETCH 1:* (PREVIEW (FUZZY) PREVIEW (LAZY=FUZZY))",
    b"h UID FETCH 1:* (SNIPPET (LAZY=FUZZY) FLAGS)",
    b"i FETCH 1 (SNIPPET PREVIEW (LAZY) PREVIEW (lazy=fuzzy) SNIPPET (LAZY))",
    b"j FETCH 1 (SNIPPET (BOGUS))",
    b"k FETCH 1 (PREVIEW ())",
    b"l FETCH 1 (SNIPPET ())",
]


def fetchSession(port):
    """Log in, select INBOX, run L{FETCHES}; each one's FETCH lines and tagged status."""
    lines = exchange(port, [b"a LOGIN demo@lab.test demo", b"s SELECT INBOX"] + FETCHES)
    out, current = [], []
    for line in lines[1:]:
        if line.startswith(b"* ") and b" FETCH " not in line[:16]:
            continue
        if line.startswith(b"* "):
            current.append(line)
            continue
        out.append((current, b" ".join(line.split(b" ")[:2])))
        current = []
    return out[2:]


class DovecotComparisonTests(unittest.TestCase):
    """The same commands against mailstack and Dovecot 2.3.19 over one data directory."""

    skip = _dovecotMissing()
    timeout = 120

    @defer.inlineCallbacks
    def servers(self, fill=None):
        """mailstack and then Dovecot on a copy of its data directory; their IMAP ports."""
        text, dataDir = sharedDataDir(self, BASE_CONFIG)
        server, _ = startServer(self, LISTENERS, text)
        addUsers(dataDir)
        if fill is not None:
            yield threads.deferToThread(fill, server)
        copyDir = dataDir + "-dovecot"
        shutil.copytree(dataDir, copyDir, symlinks=True)
        dovecot = Dovecot(self, copyDir)
        dovecot.handOver(os.path.join(copyDir, "mail", "lab.test"))
        yield dovecot.start()
        return server.listenerPort("imap"), dovecot.imapPort

    @defer.inlineCallbacks
    def test_capabilitiesCoverDovecot(self):
        """After login mailstack lists every capability Dovecot 2.3.19 lists (SASL-IR only before)."""
        ours, theirs = yield self.servers()
        lists = []
        for port in (ours, theirs):
            lines = yield threads.deferToThread(
                exchange, port, [b"a LOGIN demo@lab.test demo", b"c CAPABILITY"])
            [line] = [line for line in lines if line.startswith(b"* CAPABILITY ")]
            lists.append(set(line.split()[2:]))
        self.assertEqual(lists[1] - lists[0], {b"SASL-IR"})

    @defer.inlineCallbacks
    def test_loginReferrals(self):
        """Every refusal of a nologin user, with and without a host, is Dovecot's, byte for byte."""
        ours, theirs = yield self.servers()
        differences = []
        for lines in REFERRAL_SESSIONS:
            mine = yield threads.deferToThread(exchange, ours, lines)
            dovecot = yield threads.deferToThread(exchange, theirs, lines)
            self.assertIn(b"LOGIN-REFERRALS", mine[0])
            self.assertIn(b"LOGIN-REFERRALS", dovecot[0])
            if mine[1:] != dovecot[1:]:
                differences.append("%r\n  mailstack: %r\n  Dovecot:   %r" % (
                    lines, mine[1:], dovecot[1:]))
        self.assertEqual(differences, [], "\n".join(differences))
        # A host without nologin logs in on both.
        for port in (ours, theirs):
            lines = yield threads.deferToThread(exchange, port, [b"a LOGIN suggest@lab.test pw"])
            self.assertTrue(lines[-1].startswith(b"a OK "), lines)

    @defer.inlineCallbacks
    def test_i18nLevel1(self):
        """SEARCH SUBJECT and BODY of non-ASCII terms, and SORT (SUBJECT), as Dovecot answers."""
        def fill(server):
            with smtplib.SMTP("127.0.0.1", server.listenerPort("smtp"), timeout=10) as s:
                for subject in SUBJECTS:
                    s.sendmail("alice@lab.test", ["demo@lab.test"], message(subject))
        ours, theirs = yield self.servers(fill)
        mine = yield threads.deferToThread(i18nSession, ours)
        dovecot = yield threads.deferToThread(i18nSession, theirs)
        self.assertEqual(len(mine), 2 + 2 * len(CASEMAP_TERMS))
        self.maxDiff = None
        self.assertEqual(mine, dovecot)

    @defer.inlineCallbacks
    def test_fuzzyPreviews(self):
        """SNIPPET and PREVIEW (FUZZY) of 41 hard messages, and the bad forms, as Dovecot answers."""
        def fill(server):
            with smtplib.SMTP("127.0.0.1", server.listenerPort("smtp"), timeout=10) as s:
                for message, _ in DOVECOT + EDGES:
                    s.sendmail("alice@lab.test", ["demo@lab.test"], message)
        ours, theirs = yield self.servers(fill)
        mine = yield threads.deferToThread(fetchSession, ours)
        dovecot = yield threads.deferToThread(fetchSession, theirs)
        differences = ["%s\n  mailstack: %r\n  Dovecot:   %r" % (command.decode(), a, b)
                       for command, m, d in zip(FETCHES, mine, dovecot) if m != d
                       for a, b in zip(m[0] + [m[1]], d[0] + [d[1]]) if a != b]
        self.assertEqual(differences, [], "\n".join(differences))
        self.assertEqual([status for _, status in mine[-3:]], [b"j BAD", b"k BAD", b"l BAD"])
        self.assertEqual(len(mine[0][0]), len(DOVECOT) + len(EDGES))


SAVEDATE = re.compile(rb'SAVEDATE "([^"]+)"')


def stamp(line):
    """The POSIX time of the SAVEDATE in a FETCH line."""
    return email.utils.mktime_tz(email.utils.parsedate_tz(
        SAVEDATE.search(line).group(1).decode().replace("-", " ", 2)))


def i18nSession(port):
    """Every SUBJECT and BODY search of the casemap terms, and SORT (SUBJECT): the untagged lines."""
    commands = [b"a LOGIN demo@lab.test demo", b"s SELECT INBOX",
                b"o SORT (SUBJECT) UTF-8 ALL", b"p SORT (REVERSE SUBJECT) UTF-8 ALL"]
    for term, _ in CASEMAP_TERMS:
        data = term.encode("utf-8")
        for key in (b"SUBJECT", b"BODY"):
            commands.append(b"q SEARCH CHARSET UTF-8 " + key + b" {%d+}\r\n" % (len(data),) + data)
    lines = exchange(port, commands)
    return [line for line in lines if line.startswith((b"* SEARCH", b"* SORT"))]


def _day(offset=0):
    day = datetime.date.today() + datetime.timedelta(days=offset)
    return ("%d-%s-%d" % (day.day, day.strftime("%b"), day.year)).encode("ascii")


def saveDateSession(port):
    """FETCH SAVEDATE and the SAVED* searches in INBOX and Other: every line but the greeting."""
    return exchange(port, [
        b"a LOGIN demo@lab.test demo", b"s SELECT INBOX",
        b"f FETCH 1:* (UID SAVEDATE INTERNALDATE FLAGS)",
        b"g SEARCH SAVEDON " + _day(), b"h SEARCH SAVEDSINCE " + _day(1),
        b"i UID SEARCH SAVEDBEFORE " + _day(1), b"j SEARCH SAVEDATESUPPORTED",
        b"k SEARCH NOT SAVEDATESUPPORTED", b"l SEARCH OR SAVEDBEFORE 1-Jan-2000 ON 1-Feb-2001",
        b"m SELECT Other", b"n FETCH 1:* (UID SAVEDATE INTERNALDATE)"])[1:]


class SaveDateComparisonTests(unittest.TestCase):
    """SAVEDATE of messages Dovecot 2.3.19 saved, answered by it and by mailstack."""

    skip = _dovecotMissing()
    timeout = 120

    @defer.inlineCallbacks
    def test_savedByDovecot(self):
        """
        APPENDed, copied and flagged through Dovecot: the same SAVEDATEs and
        SAVED* answers (Dovecot's from its index cache, ours from the file names).
        """
        text, dataDir = sharedDataDir(self, BASE_CONFIG)
        server, _ = startServer(self, LISTENERS, text)
        dovecot = Dovecot(self, dataDir)
        dovecot.handOver(os.path.join(dataDir, "mail", "lab.test"))
        yield dovecot.start()

        def save():
            c = dovecot.imap("demo@lab.test", "demo")
            try:
                check(c.create("Other"))
                check(c.append("INBOX", None, '"01-Feb-2001 10:00:00 +0000"', NOTE))
                check(c.append("INBOX", "(\\Seen)", None, NOTE))
                check(c.select("INBOX"))
                # Dovecot keeps a save date in its index cache once asked for it;
                # until then it answers the file's ctime, which COPY's link and
                # STORE's rename change (docs/imap.md).
                check(c.fetch("1:*", "(SAVEDATE)"))
                check(c.copy("1", "Other"))
                check(c.store("1", "+FLAGS", "(\\Flagged $Work)"))
            finally:
                c.logout()
        yield threads.deferToThread(save)
        theirs = yield threads.deferToThread(saveDateSession, dovecot.imapPort)
        yield dovecot.stop()
        ours = yield threads.deferToThread(saveDateSession, server.listenerPort("imap"))
        untagged = lambda lines: [line for line in lines if line.startswith(b"* ") and (
            b" FETCH " in line or line.startswith(b"* SEARCH"))]
        ours, theirs = untagged(ours), untagged(theirs)
        # Dovecot's date is the file's ctime when first asked (its rename into
        # new/ or cur/, the end of the APPEND); ours the time in the file's name
        # (the start of it): the same second, or Dovecot's one later.
        lag = [stamp(b) - stamp(a) for a, b in zip(ours, theirs) if b"SAVEDATE" in a]
        self.assertEqual(len(lag), 3)
        self.assertTrue(all(0 <= seconds <= 1 for seconds in lag), (ours, theirs))
        self.maxDiff = None
        self.assertEqual([SAVEDATE.sub(b"SAVEDATE x", line) for line in ours],
                         [SAVEDATE.sub(b"SAVEDATE x", line) for line in theirs])
