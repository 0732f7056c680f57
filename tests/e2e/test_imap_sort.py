"""
SORT and THREAD end to end: imaplib's sort() and thread() against mailstack,
and every SORT and THREAD reply compared byte for byte with a private
Dovecot 2.3 (tests/interop.py) over the same Maildir, on a corpus of tricky
subjects, missing and broken dates, broken References/In-Reply-To,
duplicate Message-IDs and reference cycles.
"""

import imaplib
import random
import socket

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.e2e.test_interop_dovecot import LISTENERS, _dovecotMissing
from tests.helpers import BASE_CONFIG, startServer
from tests.interop import Dovecot, check, sharedDataDir


def _message(subject=None, date=None, sender=None, to=None, cc=None, messageID=None,
             references=None, inReplyTo=None, body=b"Hello.\r\n"):
    lines = []
    for name, value in (("From", sender), ("To", to), ("Cc", cc), ("Subject", subject),
                        ("Date", date), ("Message-ID", messageID),
                        ("References", references), ("In-Reply-To", inReplyTo)):
        if value is not None:
            lines.append(name.encode() + b": " + (value if isinstance(value, bytes)
                                                  else value.encode()) + b"\r\n")
    return b"".join(lines) + b"\r\n" + body


# (internal date, message): the corpus both servers sort and thread.
CORPUS = [
    ('"01-Jan-2020 10:00:00 +0000"', _message(
        "Hello world", "Wed, 1 Jan 2020 10:00:00 +0000", "Alice <alice@lab.test>",
        "bob@lab.test", messageID="<a@lab.test>")),
    ('"01-Jan-2020 11:00:00 +0000"', _message(
        "Re: Hello world", "Wed, 1 Jan 2020 11:00:00 +0000", "bob@lab.test",
        "Alice <alice@lab.test>", messageID="<b@lab.test>", references="<a@lab.test>")),
    ('"01-Jan-2020 09:00:00 +0000"', _message(
        "RE: [lab] Re: Hello world (fwd)", None, '"Zed Zulu" <zed@lab.test>',
        "carol@lab.test", messageID="<c@lab.test>", inReplyTo="<b@lab.test> <a@lab.test>")),
    ('"02-Jan-2020 10:00:00 +0000"', _message(
        "[Fwd: Hello world]", "Thu, 2 Jan 2020 10:00:00 +0100", "carol@lab.test",
        "dave@lab.test", messageID="<d@lab.test>")),
    ('"02-Jan-2020 10:00:00 +0000"', _message(
        "  quarterly\t report  ", "not a date", "Dave (the boss) <DAVE@lab.test>",
        "=?utf-8?q?J=C3=BCrgen?= <j@lab.test>", "x@lab.test",
        messageID="<e@lab.test>", references="<missing@lab.test> <e2@lab.test>")),
    ('"03-Jan-2020 10:00:00 +0000"', _message(
        "Fw: Quarterly report", "Fri, 3 Jan 2020 10:00:00 -0500", "eve@lab.test",
        "undisclosed-recipients:;", messageID="<e2@lab.test>",
        references="<missing@lab.test>")),
    ('"03-Jan-2020 10:00:00 +0000"', _message(
        "=?iso-8859-1?q?Caf=E9?=", "Fri, 3 Jan 2020 09:00:00 +0000", None,
        "Eve <eve@lab.test>", messageID="<a@lab.test>")),
    ('"04-Jan-2020 10:00:00 +0000"', _message(
        "[blob]", "Sat, 4 Jan 2020 10:00:00 +0000", "frank@lab.test",
        messageID="<g@lab.test>", references="<h@lab.test>")),
    ('"04-Jan-2020 11:00:00 +0000"', _message(
        "Re: [blob]", "Sat, 4 Jan 2020 11:00:00 +0000", "grace@lab.test",
        messageID="<h@lab.test>", references="<g@lab.test>")),
    ('"05-Jan-2020 10:00:00 +0000"', _message(
        None, None, None, None, messageID="broken", references="<<nonsense",
        body=b"Nothing in the header.\r\n")),
    ('"05-Jan-2020 10:00:00 +0000"', _message(
        "re: re: fwd: hello WORLD", "Sun, 5 Jan 2020 10:00:00 +0000", "Alice <alice@lab.test>",
        "Bob <bob@lab.test>", messageID="<k@lab.test>",
        references="<x1@lab.test> <x2@lab.test> <c@lab.test>")),
    ('"06-Jan-2020 10:00:00 +0000"', _message(
        "Re: Quarterly report", "Mon, 6 Jan 2020 10:00:00 +0000", "bob@lab.test",
        messageID="<l@lab.test>", references="<x2@lab.test> <x1@lab.test>")),
    ('"06-Jan-2020 12:00:00 +0000"', _message(
        "Cycle", "Mon, 6 Jan 2020 12:00:00 +0000", "zed@lab.test",
        messageID="<m@lab.test>", references="<m@lab.test>")),
    ('"06-Jan-2020 13:00:00 +0000"', _message(
        "Self", "Mon, 6 Jan 2020 12:00:00 +0000", "yan@lab.test",
        messageID="<n@lab.test>", inReplyTo="<n@lab.test>")),
    ('"07-Jan-2020 10:00:00 +0000"', _message(
        "Parallel", "Tue, 7 Jan 2020 10:00:00 +0000", "ann@lab.test",
        messageID="<p@lab.test>", references="<r1@lab.test>")),
    ('"07-Jan-2020 10:00:00 +0000"', _message(
        "Parallel", "Tue, 7 Jan 2020 10:00:00 +0000", "ann@lab.test",
        messageID="<q@lab.test>", references="<r1@lab.test>", body=b"A longer body.\r\n" * 4)),
    ('"08-Jan-2020 10:00:00 +0000"', _message(
        "=?utf-8?q?=C3=84rger?=", "Wed, 8 Jan 2020 10:00:00 +0000",
        "=?utf-8?q?=C3=96zil?= <oe@lab.test>", messageID="<loop1@lab.test>",
        references="<loop2@lab.test>")),
    ('"08-Jan-2020 11:00:00 +0000"', _message(
        "Re[2]: =?utf-8?q?=C3=A4rger?=", "Wed, 8 Jan 2020 11:00:00 +0000",
        b"\xc3\xa9mile@lab.test", messageID="<loop2@lab.test>",
        references="<loop1@lab.test>")),
    ('"08-Jan-2020 12:00:00 +0000"', _message(
        "Re : [a][b] Zebra", "8 Jan 2020 12:00 +0000", "(comment) zoe@lab.test",
        messageID="<z@lab.test>", references="<a@lab.test> <z@lab.test>")),
    ('"08-Jan-2020 13:00:00 +0000"', _message(
        "[Fwd: Re: Zebra] (fwd) (FWD)", "Wed, 8 Jan 2020 13:00:00 GMT", "group: a@lab.test;",
        messageID="<z2@lab.test>", inReplyTo="nonsense <z@lab.test> <a@lab.test>")),
    ('"08-Jan-2020 14:00:00 +0000"', _message(
        "Zebra", "Wed, 8 Jan 2020 14:00:00 +1400", "Zoe <zoe@lab.test>",
        messageID="<z@lab.test>", references="<b@lab.test>")),
    ('"08-Jan-2020 15:00:00 +0000"', _message(
        b"\xc3\x89clair", "Wed, 8 Jan 2020 15:00:00 -1200", '"" <anon@lab.test>',
        "<only@lab.test>", "Cc Name <cc@lab.test>", messageID="<ecl@lab.test>",
        references="<ecl-parent@lab.test>", inReplyTo="<k@lab.test>")),
    ('"08-Jan-2020 15:00:00 +0000"', _message(
        "fw: Fwd:Re:re:  ", "Wed, 08 Jan 2020 15:00:00 +0000", "a@lab.test",
        messageID="< spaced @ lab.test >")),
    ('"08-Jan-2020 16:00:00 +0000"', _message(
        "[fwd: hello world]", "Wed, 8 Jan 2020 25:00:00 +0000", "b@lab.test",
        references="< spaced @ lab.test >")),
    ('"09-Jan-2020 10:00:00 +0000"', _message(
        "Orphan's child", "Thu, 9 Jan 2020 10:00:00 +0000", "c@lab.test",
        messageID="<oc@lab.test>", references="<p1@lab.test> <q1@lab.test>")),
    ('"09-Jan-2020 11:00:00 +0000"', _message(
        "Orphan", "Thu, 9 Jan 2020 09:00:00 +0000", "c@lab.test", messageID="<q1@lab.test>")),
    ('"09-Jan-2020 12:00:00 +0000"', _message(
        "Re: Orphan", "Thu, 9 Jan 2020 12:00:00 +0000", "c@lab.test",
        messageID="<r@lab.test>", inReplyTo="<q1@lab.test>", references="broken")),
]

# Subjects and names beyond ASCII, raw 8-bit headers, dates Python and
# Dovecot might read differently.
TEXT_CORPUS = [(
    '"%02d-Feb-2021 10:00:00 +0000"' % (n + 1,),
    _message(subject, date, sender, messageID="<t%d@lab.test>" % (n,)))
    for n, (subject, date, sender) in enumerate([
        ("=?utf-8?q?=C3=9Fe?=", "Mon, 1 Feb 2021 10:00:00 +0000", "=?utf-8?q?=C3=A9va?= <e@x>"),
        ("=?utf-8?q?SSE?=", "1 Feb 21 10:00 +0000", "Eva <f@x>"),
        ("=?utf-8?q?=C5=93uvre?=", "Mon, 1 Feb 2021 10:00:00 EST", "=?utf-8?q?=C3=89VA?= <g@x>"),
        ("=?utf-8?q?=C7=86ungla?=", "Mon, 1 Feb 2021 10:00:00", "\u03a9mega <h@x>".encode()),
        ("=?utf-8?q?=EF=AC=81n?=", "Mon, 1 Feb 1960 10:00:00 +0000", "\u03c9mega <i@x>".encode()),
        ("=?utf-8?q?=CE=A3=CE=AF=CF=83=CF=85=CF=86=CE=BF=CF=82?=", "Sun, 31 Jan 2021 23:59:60 +0000",
         "ZED <j@x>"),
        ("=?iso-8859-1?q?=E9t=E9?=", "Mon, 1 Feb 2021 10:00:00 -0000", "zed <k@x>"),
        (b"\xe9t\xe9 raw latin-1", "Mon, 1 Feb 2021 10:00:00 +2400", b"\xe9 <l@x>"),
        ("\u00e9t\u00e9".encode(), "Mon, 1 Feb 2021 10:00:00 +0000 (UTC)", "=?bogus?q?x?= <m@x>"),
        ("=?utf-8?b?SGVsbG8=?= =?utf-8?b?IFdvcmxk?=", "Monday, 1 Feb 2021 10:00:00 +0000",
         "\"Quoted, Name\" <n@x>"),
        ("Hello World", "01 Feb 2021 09:00:00 +0000", "<o@x>"),
        ("[PATCH 1/2] Re: x", "Mon, 1 Feb 2021 10:00:00 +0100", "Re: <p@x>"),
        ("Re: Re:", "Mon, 1 Feb 2021 10:00:00 +0000", "q@x"),
        ("=?utf-8?q?i=CC=87stanbul?=", "Mon, 1 Feb 2021 10:00:00 +0000", "r@x"),
        ("=?utf-8?q?=C4=B0stanbul?=", "Mon, 1 Feb 2021 10:00:00 +0000", "s@x"),
    ])]

# Date forms Dovecot reads its own way (zones, military letters in either
# case, spacing, junk after the zone), between dates a few hours apart.
DATE_CORPUS = [('"05-Feb-2021 00:00:00 +0000"', _message("d", date)) for date in [
    "Mon, 1 Feb 2021 10:00:00 pdt", "Mon, 1 Feb 2021 10:00:00 PDT", "Mon, 1 Feb 2021 10:00:00 a",
    "Mon, 1 Feb 2021 10:00:00 A", "Mon, 1 Feb 2021 10:00:00 N", "Mon, 1 Feb 2021 10:00:00 n",
    "Mon, 1 Feb 2021 10:00:00 ut", "Mon, 1 Feb 2021 10:00:00 +9999", "Mon, 1 Feb 2021 10:00:00 +12",
    "mon, 1 Feb 2021 10:00:00 +0000", "Mon , 1 Feb 2021 10:00:00 +0000", "1 Feb 2021 1:00 +0000",
    "1 Feb 2021 10:00:5 +0000", "1 Feb 2021 10 : 00 +0000", "1 Feb 2021 10:00:00 +0000 junk",
    "1 Feb 2021 10:00:00 +0000 [x]", "Mon, 1 Feb 2021 10:00:00 Z", "1 Feb 2021 10:00:00 M",
    "1 Feb 2021 10:00:00 Y", "1 Feb 2021 10:00:00 J", "1 Feb 2021 10:00:00 I",
    "1 Feb 2021 10:00:00 K", "1 Feb 2021 10:00:00 EDT", "1 Feb 2021 10:00:00 GMT",
    "Sun, 31 Jan 2021 22:30:00 +0000", "Mon, 1 Feb 2021 04:00:00 +0000",
    "Mon, 1 Feb 2021 13:00:00 +0000", "Mon, 1 Feb 2021 15:00:00 +0000",
    "Mon, 1 Feb 2021 21:59:00 +0000", "Tue, 2 Feb 2021 10:00:00 +0000",
    "Mon, 1 Feb 2021 10:00:00 +2400", "1 Jan 1969 00:00:00 +0000", "1 Jan 69 00:00:00 +0000",
    "Mon, 1 Feb 2021 10:00 +0000 (UTC)", "Mon, 1 Feb 2021 10:00:00 \"+0000\"",
]]

def randomCorpus(seed, count=150):
    """
    Messages whose Message-IDs, References and In-Reply-To are drawn from a
    small pool (so duplicates, loops, missing parents and self references
    abound), with subjects that gather and dates that may be missing.
    """
    rng = random.Random(seed)
    ids = ["<m%d@lab.test>" % (i,) for i in range(count // 2)]
    subjects = ["alpha", "Re: alpha", "Fwd: alpha", "beta", "Re: beta", "[x] beta", "gamma",
                "Re: Re: gamma", "", "Re: ", "delta (fwd)", "[Fwd: delta]"]
    corpus = []
    for _ in range(count):
        references = " ".join(rng.sample(ids, rng.choice([0, 0, 1, 1, 2, 3, 4])))
        inReplyTo = rng.choice([None, None, rng.choice(ids), "junk " + rng.choice(ids)])
        date = rng.choice([None, "Mon, %d Feb 2021 %02d:00:00 +0000"
                           % (rng.randint(1, 3), rng.randint(0, 23))])
        arrival = '"%02d-Feb-2021 %02d:00:00 +0000"' % (rng.randint(1, 3), rng.randint(0, 23))
        corpus.append((arrival, _message(
            rng.choice(subjects), date, "a@lab.test", messageID=rng.choice(ids + [None]),
            references=references or None, inReplyTo=inReplyTo)))
    return corpus


# Message-ID forms: without @, with spaces, comments, quotes, other case,
# several in one field, garbage around them.
ID_CORPUS = [('"%02d-Mar-2021 10:00:00 +0000"' % (n + 1,), _message(
    "id %d" % (n,), "Mon, %d Mar 2021 10:00:00 +0000" % (n + 1,), "a@lab.test",
    messageID=own, references=references, inReplyTo=inReplyTo))
    for n, (own, references, inReplyTo) in enumerate([
        ("<noat>", None, None),
        ("<p@x>", "<noat>", None),
        ("<q@x> <p@x>", "<P@X>", None),
        ("< r @ x >", None, "<q@x>"),
        ('<"s"@x>', "<r@x>", None),
        ("<t(c)@x>", '<"s"@x>', None),
        ("<u@x>", "garbage <t@x> more", None),
        ("v@x", None, "<u@x> <p@x>"),
        ("<w@x>", None, "text <v@x>"),
        ("<y@x>", "<w@x", "<p@x>"),
        ("<z@x>", "<>, <@>, <z@>, <@z>", "<y@x>"),
        (None, "<z@x> <q@x>", None),
        ("<q@x>", "<z@x>", None),
    ])]

# Address and subject forms: groups, routes, quoted and encoded parts,
# comments, empty and missing fields; prefixes and blobs in every order.
ADDRESS_CORPUS = [('"%02d-Apr-2021 10:00:00 +0000"' % (n + 1,), _message(
    subject, "Thu, %d Apr 2021 10:00:00 +0000" % (n + 1,), sender, to, cc))
    for n, (subject, sender, to, cc) in enumerate([
        ("Re:Re:no space", '"Last, First" <zz@x>', "grp: a@x, b@x;", "<>"),
        ("Fwd : spaced", "=?utf-8?q?Ren=C3=A9e?= <rr@x>", "<@route:c@x>", ""),
        ("re[3]: bracketed", '"a b"@x', "(only comment)", "  "),
        ("[blob", "\"  spaced  name \" <sp@x>", "=?utf-8?q?a?= =?utf-8?q?b?= <ab@x>", None),
        ("x [blob] y", "(c) bb@x (d)", "undisclosed-recipients:;", "cc@x, dd@x"),
        ("[a] [b]", "=?iso-8859-1?b?w6k=?= <e@x>", '"" <empty@x>', "Zed <zz@x>"),
        ("=?utf-8?q?Re=3A_encoded?=", "\\\"odd <od@x>", "a@x", "=?bogus?q?x?= <bo@x>"),
        ("Re: =?utf-8?q?=5Bx=5D?= y", "no-at-all", "Name Only", "@"),
        ("FW: fw: Fw:fwd:", "MixedCase@X", "mixedcase@x", "MIXEDCASE@X"),
        ("\tRe:\t tabbed  ", "ALICE <alice@x>", "alice <ALICE@x>", "Alice <Alice@x>"),
        ("[fwd: [fwd: nested]]", "=?utf-8?b?8J+YgA==?= <emoji@x>", "\xc3\xa9 <raw@x>", "a@x"),
        ("Subject (fwd) middle (fwd)", "x@y", "group:;", "<a@x>"),
    ])]

# Raw header shapes: folded fields (From and Subject across lines), a
# repeated Subject (the first counts), a very long one, field names in other
# cases, no space after the colon. (imaplib's append turns bare LF and CR
# into CRLF, so the first messages arrive with CRLF line ends.)
RAW_CORPUS = [('"%02d-May-2021 10:00:00 +0000"' % (n + 1,), data) for n, data in enumerate([
    b"Subject: lf only\nFrom: b@x\nDate: Sat, 1 May 2021 10:00:00 +0000\n\nbody\n",
    b"Subject: Re:\r\n folded\r\n\tsubject\r\nFrom: c@x\r\n\r\nbody\r\n",
    b"Subject: bare\rcr\r\nFrom: a@x\r\n\r\nbody\r\n",
    b"Subject: zzz first\r\nSubject: aaa second\r\nFrom: d@x\r\n\r\nbody\r\n",
    b"Subject: " + b"long " * 400 + b"\r\nFrom: e@x\r\n\r\nbody\r\n",
    b"From:\r\n  Folded Name\r\n  <f@x>\r\nSubject: [Fwd:\r\n folded]\r\n\r\nbody\r\n",
    b"subject: lower-case field name\r\nFROM: G@x\r\n\r\nbody\r\n",
    b"Subject:no-space\r\nFrom:h@x\r\nDate:Sat,1 May 2021 09:00:00 +0000\r\n\r\nbody\r\n",
])]

RANDOM_SORTS = ["THREAD REFERENCES UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL",
                "SORT (SUBJECT DATE) UTF-8 ALL", "UID THREAD REFERENCES UTF-8 NOT SUBJECT alpha",
                "THREAD REFS UTF-8 ALL", "UID THREAD REFS UTF-8 NOT SUBJECT alpha",
                # ESORT (RFC 5267): RETURN options over the sorted result.
                "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT DATE) UTF-8 ALL",
                "UID SORT RETURN (PARTIAL 10:40 COUNT) (REVERSE DATE) UTF-8 NOT SUBJECT alpha"]

TEXT_SORTS = [
    "SORT (SUBJECT) UTF-8 ALL",
    "SORT (REVERSE SUBJECT) UTF-8 ALL",
    "SORT (DATE) UTF-8 ALL",
    "SORT (FROM) UTF-8 ALL",
    "SORT (DISPLAYFROM) UTF-8 ALL",
    "THREAD ORDEREDSUBJECT UTF-8 ALL",
    "THREAD REFERENCES UTF-8 ALL",
]

SORTS = [
    "SORT (ARRIVAL) US-ASCII ALL",
    "SORT (DATE) US-ASCII ALL",
    "SORT (REVERSE DATE) US-ASCII ALL",
    "SORT (SIZE) US-ASCII ALL",
    "SORT (REVERSE SIZE) US-ASCII ALL",
    "SORT (SUBJECT) US-ASCII ALL",
    "SORT (REVERSE SUBJECT DATE) US-ASCII ALL",
    "SORT (FROM) US-ASCII ALL",
    "SORT (TO) US-ASCII ALL",
    "SORT (CC) UTF-8 ALL",
    "SORT (DISPLAYFROM) UTF-8 ALL",
    "SORT (DISPLAYTO) UTF-8 ALL",
    "SORT (REVERSE ARRIVAL) UTF-8 ALL",
    "SORT (SUBJECT) UTF-8 FROM alice",
    "UID SORT (SUBJECT REVERSE ARRIVAL) UTF-8 NOT 2",
    "SORT RETURN (MIN) (DATE) UTF-8 ALL",
    "UID SORT RETURN (ALL COUNT) (REVERSE FROM) UTF-8 ALL",
    "SORT RETURN (PARTIAL 2:5 MIN MAX) (DISPLAYFROM SUBJECT) UTF-8 NOT 1",
    "THREAD ORDEREDSUBJECT UTF-8 ALL",
    "THREAD REFERENCES UTF-8 ALL",
    "UID THREAD REFERENCES US-ASCII NOT 1",
    "THREAD REFERENCES UTF-8 SUBJECT nothing-matches",
    "UID THREAD ORDEREDSUBJECT UTF-8 UNDELETED",
    "SORT (DATE) UTF-8 SUBJECT nothing-matches",
    "SORT (SUBJECT) UTF-8 SUBJECT caf",
    "SORT (SUBJECT DATE) ISO-8859-1 OR SUBJECT report BODY longer",
    "SORT (SUBJECT) X-NO-SUCH-CHARSET ALL",
    "SORT (REVERSE REVERSE DATE) UTF-8 ALL",
    "SORT () UTF-8 ALL",
    "SORT (NOSUCHKEY) UTF-8 ALL",
    "SORT (DATE) UTF-8",
    "SORT (DATE) ALL",
    "SEARCH RETURN (SAVE) FROM alice",
    "SORT (REVERSE DATE) UTF-8 $",
    "UID THREAD REFERENCES UTF-8 OR $ SUBJECT zebra",
    "SORT (ARRIVAL) UTF-8 OLDER 1 NOT YOUNGER 10",
    "THREAD NOSUCH UTF-8 ALL",
    "THREAD REFERENCES ALL",
    "THREAD REFS UTF-8 ALL",
    "UID THREAD REFS US-ASCII NOT 1",
    "THREAD REFS UTF-8 SUBJECT nothing-matches",
    "thread refs utf-8 UNDELETED",
]

# Commands Dovecot answers and mailstack refuses on purpose (docs/imap.md): none.
REFUSED = []


def session(port, commands, login=b"demo@lab.test demo"):
    """
    Log in, select INBOX, send C{commands} one at a time; return each one's
    untagged responses and its tagged status (the text after the tag).
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    reader = s.makefile("rb")
    try:
        reader.readline()
        out = []
        for n, command in enumerate([b"LOGIN " + login, b"SELECT INBOX"]
                                    + [c.encode() for c in commands]):
            tag = b"t%d" % (n,)
            s.sendall(tag + b" " + command + b"\r\n")
            lines = []
            while True:
                line = reader.readline()
                if not line:
                    raise AssertionError("connection closed after %r" % (command,))
                if line.startswith(tag + b" "):
                    status = line[len(tag) + 1:].split(b" ", 1)[0]
                    break
                lines.append(line)
            if n >= 2:
                out.append((command, lines, status))
        return out
    finally:
        s.close()


class DovecotSortTests(unittest.TestCase):
    """SORT and THREAD replies equal Dovecot's, byte for byte."""

    skip = _dovecotMissing()
    timeout = 60

    @defer.inlineCallbacks
    def compare(self, corpus, commands, refused=()):
        """
        Append C{corpus} through mailstack, run C{commands} (and C{refused},
        which must be BAD) there, then through Dovecot on the same Maildir;
        fail listing every reply that differs.
        """
        text, dataDir = sharedDataDir(self, BASE_CONFIG)
        server, _ = startServer(self, LISTENERS, text)
        port = server.listenerPort("imap")

        def fill():
            c = imaplib.IMAP4("127.0.0.1", port, timeout=10)
            try:
                c.login("demo@lab.test", "demo")
                for date, data in corpus:
                    check(c.append("INBOX", None, date, data))
            finally:
                c.logout()
        yield threads.deferToThread(fill)
        ours = yield threads.deferToThread(session, port, list(commands) + list(refused))
        dovecot = Dovecot(self, dataDir)
        dovecot.handOver(dataDir + "/mail/lab.test")
        yield dovecot.start()
        theirs = yield threads.deferToThread(session, dovecot.imapPort, commands)
        self.assertEqual([status for _, _, status in ours[len(commands):]],
                         [b"BAD"] * len(refused))
        differences = []
        for (command, lines, status), (_, expected, expectedStatus) in zip(ours, theirs):
            shown = [line for line in lines if not line.startswith((b"* FLAGS", b"* OK"))]
            wanted = [line for line in expected
                      if not line.startswith((b"* FLAGS", b"* OK"))]
            if (shown, status) != (wanted, expectedStatus):
                differences.append("%s\n  mailstack: %r %s\n  Dovecot:   %r %s" % (
                    command.decode(), shown, status.decode(), wanted, expectedStatus.decode()))
        self.assertEqual(differences, [], "\n".join(differences))

    def test_sameReplies(self):
        """Every SORT and THREAD command over the corpus answers as Dovecot does."""
        return self.compare(CORPUS, SORTS, REFUSED)

    def test_textAndDates(self):
        """Non-ASCII subjects and names, 8-bit headers and odd dates sort as in Dovecot."""
        return self.compare(TEXT_CORPUS, TEXT_SORTS)

    @defer.inlineCallbacks
    def test_randomThreads(self):
        """Random tangles of references (two seeds, 150 messages each) thread as in Dovecot."""
        for seed in (1, 2):
            yield self.compare(randomCorpus(seed), RANDOM_SORTS)

    def test_addressAndSubjectForms(self):
        """Odd addresses and subjects sort as in Dovecot by every key that reads them."""
        return self.compare(ADDRESS_CORPUS, [
            "SORT (%s) UTF-8 ALL" % (key,) for key in (
                "FROM", "TO", "CC", "DISPLAYFROM", "DISPLAYTO", "SUBJECT", "REVERSE CC")] + [
            "THREAD ORDEREDSUBJECT UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL",
            "THREAD REFS UTF-8 ALL"])

    def test_rawHeaderShapes(self):
        """Folded, repeated, long and oddly written header fields sort as in Dovecot."""
        return self.compare(RAW_CORPUS, [
            "SORT (SUBJECT) UTF-8 ALL", "SORT (FROM) UTF-8 ALL", "SORT (DISPLAYFROM) UTF-8 ALL",
            "SORT (DATE) UTF-8 ALL", "SORT (SIZE) UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL"])

    def test_messageIDForms(self):
        """Message-IDs in odd forms link threads as in Dovecot."""
        return self.compare(ID_CORPUS, ["THREAD REFERENCES UTF-8 ALL", "THREAD REFS UTF-8 ALL"])

    def test_dateForms(self):
        """Dates in every form Dovecot reads (or refuses) sort as in Dovecot."""
        return self.compare(DATE_CORPUS, ["SORT (DATE) UTF-8 ALL", "SORT (REVERSE DATE) UTF-8 ALL",
                                          "THREAD ORDEREDSUBJECT UTF-8 ALL", "THREAD REFS UTF-8 ALL"])


class ClientLibraryTests(unittest.TestCase):
    """Python's imaplib sorts and threads with mailstack (its sort() and thread())."""

    timeout = 60

    @defer.inlineCallbacks
    def test_imaplib(self):
        """imaplib's sort(), thread() and uid('SORT'/'THREAD') get the answers it parses."""
        server, _ = startServer(self, LISTENERS)
        port = server.listenerPort("imap")

        def run():
            c = imaplib.IMAP4("127.0.0.1", port, timeout=10)
            try:
                c.login("demo@lab.test", "demo")
                for date, data in CORPUS[:4]:
                    check(c.append("INBOX", None, date, data))
                self.assertIn("SORT", c.capabilities)
                self.assertIn("THREAD=REFERENCES", c.capabilities)
                check(c.select("INBOX"))
                results = [
                    c.sort("(DATE)", "UTF-8", "ALL"),
                    c.sort("(REVERSE SUBJECT ARRIVAL)", "US-ASCII", "FROM", "lab.test"),
                    c.thread("REFERENCES", "UTF-8", "ALL"),
                    c.thread("ORDEREDSUBJECT", "UTF-8", "NOT", "4"),
                    c.uid("SORT", "(DISPLAYFROM)", "UTF-8", "ALL"),
                    c.uid("THREAD", "REFERENCES", "UTF-8", "ALL"),
                ]
                try:
                    c.sort("(NOSUCHKEY)", "UTF-8", "ALL")
                except imaplib.IMAP4.error as e:
                    results.append(("error", str(e)))
                return results
            finally:
                c.logout()
        results = yield threads.deferToThread(run)
        self.assertEqual(results[:6], [
            ("OK", [b"3 1 2 4"]),  # no Date: 3 sorts by its arrival, 09:00
            ("OK", [b"3 1 2 4"]),  # one base subject, so by arrival
            ("OK", [b"(1 (2 3)(4))"]),  # 4, a [Fwd: ...], gathered under 1
            ("OK", [b"(3 (1)(2))"]),
            ("OK", [b"1 2 4 3"]),  # Alice, bob@, carol@, Zed Zulu
            ("OK", [b"(1 (2 3)(4))"]),
        ])
        self.assertEqual(results[6][0], "error")
        self.assertIn("Unknown sort key NOSUCHKEY", results[6][1])
