"""
The session scripts the differential harness runs against both servers: a
table others extend (SORT, THREAD, BINARY... add their L{Script}s to
L{SCRIPTS}, or build their own list and hand it to
L{tests.differential.runner.Differential.run}).

A script is a list of steps C{(session, command)}: C{session} numbers a
logged-in connection (opened at its first step, closed by its C{LOGOUT} and
opened afresh if used again), C{command} is what follows the tag (bytes, or a
list of bytes and C{(literal,)} 1-tuples as L{tests.differential.client}
takes). Scripts run in table order over one corpus, so state one leaves
(flags, \\Recent claimed) is what the next finds, on both servers alike.

tests/e2e/test_differential.py runs them by name, a few per test; `make
interop` runs them all. To add one (SORT, THREAD, BINARY...): append a
L{Script} before "expunge-and-uids" (which changes the mailbox), name it in a
test there, and fix or list in L{tests.differential.deliberate} whatever
differs.
"""

from dataclasses import dataclass


@dataclass
class Script:
    name: str
    steps: list


def each(session, template, items):
    """Steps running C{template % item} for each of C{items}."""
    return [(session, template % (item,)) for item in items]


EXAMINE = (0, b"EXAMINE INBOX")

SECTIONS = [b"HEADER", b"TEXT", b"1", b"1.MIME", b"1.1", b"1.2", b"1.TEXT", b"2", b"2.MIME",
            b"2.HEADER", b"2.TEXT", b"2.1", b"2.1.MIME", b"2.2", b"2.2.MIME", b"3", b"3.MIME",
            b"3.HEADER", b"3.TEXT", b"4", b"1.1.1", b"2.2.1", b""]

PARTIALS = [b"<0.10>", b"<5.100>", b"<0.0>", b"<100000.5>", b"<20.1>", b"<1.100000>"]

FIELDS = [b"HEADER.FIELDS (Subject From)", b"HEADER.FIELDS (subject)",
          b"HEADER.FIELDS (X-Unfolded Date DATE)", b"HEADER.FIELDS (No-Such-Field)",
          b"HEADER.FIELDS.NOT (To Subject Received X-Unfolded)", b"HEADER.FIELDS (\"Subject\" To)",
          b"2.HEADER.FIELDS (Subject)", b"3.HEADER.FIELDS.NOT (Subject)",
          b"2.HEADER.FIELDS.NOT (Subject)",
          b"HEADER.FIELDS (Content-Type MIME-Version)"]

# Every RFC 3501 search key, alone and combined; the corpus's dates run from
# 7-Feb-1994 one day per message, its Date: fields are all over the place.
SEARCHES = [
    b"ALL", b"ANSWERED", b"UNANSWERED", b"DELETED", b"UNDELETED", b"DRAFT", b"UNDRAFT",
    b"FLAGGED", b"UNFLAGGED", b"SEEN", b"UNSEEN", b"NEW", b"OLD", b"RECENT",
    b"KEYWORD $Forwarded", b"UNKEYWORD $Forwarded", b"KEYWORD $Label1", b"KEYWORD $NoSuch",
    b"UNKEYWORD $NoSuch", b"KEYWORD \\Seen",
    b"BEFORE 10-Feb-1994", b"ON 10-Feb-1994", b"SINCE 10-Feb-1994", b"SINCE 1-Jan-2030",
    b"BEFORE 7-Feb-1994", b"ON 7-Feb-1994",
    b"SENTBEFORE 1-Jan-2000", b"SENTON 1-Jan-2000", b"SENTSINCE 1-Jan-2000",
    b"SENTON 1-Jul-2003", b"SENTBEFORE 1-Jan-1970", b"SENTSINCE 1-Jan-2023",
    b"LARGER 1000", b"SMALLER 300", b"LARGER 100000", b"SMALLER 1",
    b"FROM example.com", b"FROM \"Joe Q\"", b"FROM pete", b"FROM keld", b"FROM J\xc3\xb6rg",
    b"FROM \"\"", b"TO mary", b"TO group", b"TO recipient", b"TO \"Recipient 149\"",
    b"CC boss", b"CC hidden", b"BCC undisclosed", b"BCC \"\"",
    b"SUBJECT hello", b"SUBJECT HELLO", b"SUBJECT caf", b"SUBJECT \"\"", b"SUBJECT word399",
    b"SUBJECT \"tabbed and\"", b"SUBJECT subject",
    b"HEADER Message-ID example", b"HEADER X-Keyword needle", b"HEADER X-Keyword \"\"",
    b"HEADER X-Unfolded xxxxxxxx", b"HEADER Content-Type multipart",
    b"HEADER References 3456", b"HEADER No-Such \"\"",
    b"BODY hello", b"BODY NEEDLE", b"BODY \"line with\"", b"BODY \"body line 01999\"",
    b"BODY \"HTML part\"", b"BODY caf", b"BODY subject", b"BODY \"\"", b"BODY \"Deep text\"",
    b"TEXT needle", b"TEXT subject", b"TEXT \"Recipient 3\"", b"TEXT \"\"", b"TEXT inner",
    b"NOT SEEN", b"NOT NOT SEEN", b"OR SEEN FLAGGED", b"OR OR DRAFT DELETED ANSWERED",
    b"NOT OR SEEN FLAGGED", b"(SEEN FLAGGED)", b"(OR SEEN FLAGGED) NOT DRAFT",
    b"SEEN UNSEEN", b"1:3", b"2,4,6:*", b"*", b"*:20", b"1:* NOT 2:3", b"UID 2:4",
    b"UID 20:*", b"UID 1000:*", b"UID *", b"NOT UID 1:10", b"OR 1 UID 3",
    b"CHARSET UTF-8 FROM J\xc3\xb6rg", b"CHARSET US-ASCII SUBJECT hello",
    b"CHARSET UTF-8 BODY Stra\xc3\x9fe", b"CHARSET UTF-8 SUBJECT Gr\xc3\xbc\xc3\x9fe",
    b"CHARSET UTF-8 TEXT caf\xc3\xa9",
    b"SENTON 1-Jan-2000", b"SENTON 2-Jan-2000", b"SENTBEFORE 2-Jan-2000", b"SENTSINCE 2-Jan-2000",
    b"SENTON 2-Jan-1900", b"FROM \"late sender\"", b"FROM late", b"TO split", b"TO nihongo",
    b"SUBJECT \"split across words\"", b"SUBJECT comment", b"BODY \"line break\"",
    b"BODY breakinaword", b"BODY \"break in a word\"", b"TEXT \"soft line\"",
    b"SMALLER 265", b"SMALLER 266", b"LARGER 264", b"LARGER 265",
    b"HEADER Date \"-1200\"", b"HEADER Subject \"=?utf-8?q?split\"",
    b"SENTON 3-Jan-2000", b"SENTON 4-Jan-2000", b"SUBJECT \"first subject\"",
    b"SUBJECT \"second subject\"", b"FROM second", b"HEADER Subject first",
    # RFC 8514 (SAVEDATE): every message was saved today.
    b"SAVEDATESUPPORTED", b"NOT SAVEDATESUPPORTED", b"SAVEDBEFORE 1-Jan-2000",
    b"SAVEDSINCE 1-Jan-2000", b"OR SAVEDON 1-Jan-2000 SEEN",
]

SEARCH_LITERALS = [
    [b"CHARSET UTF-8 SUBJECT ", ("Grüße".encode("utf-8"),)],
    [b"CHARSET UTF-8 FROM ", ("Müller".encode("utf-8"),)],
    [b"CHARSET UTF-8 BODY ", ("Grüße".encode("utf-8"),)],
    [b"CHARSET UTF-8 SUBJECT ", ("世界".encode("utf-8"),)],
    [b"CHARSET UTF-8 TEXT ", ("crème".encode("utf-8"),)],
    [b"CHARSET UTF-8 BODY ", ("fünf".encode("utf-8"),)],
    [b"CHARSET ISO-8859-1 SUBJECT ", (b"caf\xe9",)],
    [b"CHARSET UTF-8 HEADER Subject ", ("Köln".encode("utf-8"),)],
    [b"CHARSET UTF-8 BODY ", ("crème brûlée".encode("utf-8"),)],
    [b"CHARSET UTF-8 TO ", ("日本".encode("utf-8"),)],
    [b"CHARSET UTF-8 FROM ", ("André".encode("utf-8"),)],
    # I18NLEVEL=1 (RFC 5255): i;unicode-casemap, as Dovecot applies it.
    [b"CHARSET UTF-8 BODY ", ("STRASSE".encode("utf-8"),)],
    [b"CHARSET UTF-8 TEXT ", ("CAFE".encode("utf-8"),)],
    [b"CHARSET UTF-8 SUBJECT ", ("GR\u00dcSSE".encode("utf-8"),)],
    [b"CHARSET UTF-8 SUBJECT ", ("grusse".encode("utf-8"),)],
    [b"CHARSET UTF-8 BODY ", ("CR\u00c8ME BR\u00dbL\u00c9E".encode("utf-8"),)],
    [b"CHARSET UTF-8 BODY ", ("e\u0301".encode("utf-8"),)],
]

# BINARY (RFC 3516): numbered parts only. Over the representative corpus
# (1:31): Dovecot 2.3.19 drops the connection (BYE, internal error) on the
# generated messages whose base64 does not decode.
BINARY_SECTIONS = [b"", b"1", b"2", b"3", b"4", b"9", b"1.1", b"1.2", b"1.3", b"2.1", b"2.2",
                   b"2.1.1", b"2.2.1", b"2.2.2", b"3.1", b"1.1.1"]
BINARY_MESSAGES = [
    b"Subject: nul\r\nContent-Transfer-Encoding: 8bit\r\n\r\nA\x00B\r\n",
    b"Subject: unknown\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 x\r\n",
    b"Subject: mixed\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    b"Subject: inner\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9=\r\n=00\r\n"
    b"--b--\r\n",
    b"Subject: one unknown\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n"
    b"\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n"
    b"--b\r\nContent-Transfer-Encoding: x-unknown\r\n\r\n?\r\n--b--\r\n",
]

# SORT criteria, alone and together (RFC 5256 keys, RFC 5957's display forms).
SORT_CRITERIA = [b"ARRIVAL", b"CC", b"DATE", b"FROM", b"SIZE", b"SUBJECT", b"TO", b"DISPLAYFROM",
                 b"DISPLAYTO", b"REVERSE DATE", b"SUBJECT REVERSE DATE", b"REVERSE FROM SIZE",
                 b"REVERSE DISPLAYTO ARRIVAL"]

# SENT* by the Date: field (the day written; refused fields are 1-Jan-1970)
# and SORT DATE (refused fields: the internal date), over corpus.oddDates()
# in test_differential.test_sentDates and any corpus in make interop.
SENT_DATES = [b"SENTON 1-Jan-2000", b"SENTON 2-Jan-2000", b"SENTON 31-Dec-1999",
              b"SENTBEFORE 1-Jan-2000", b"SENTSINCE 1-Jan-2000", b"SENTON 1-Jan-1970",
              b"SENTON 1-Jan-2069", b"SENTON 1-Jan-1999", b"SENTON 7-Feb-1994",
              b"SENTBEFORE 1-Jan-1971", b"SENTSINCE 1-Jan-2030", b"SENTON 3-Jan-2000",
              b"SENTON 4-Jan-2000", b"SENTON 5-Jan-2000", b"SENTON 6-Jan-2000",
              b"SENTON 7-Jan-2000", b"SENTBEFORE 1-Jan-1995", b"SENTON 1-Jan-0100",
              b"NOT SENTON 1-Jan-1970", b"SENTSINCE 2-Jan-2000 SENTBEFORE 6-Jan-2000"]

SCRIPTS = [
    # First: the corpus is new, \Recent belongs to the first session to look.
    Script("recent-and-flags", [
        (0, b"SELECT INBOX"),
        (1, b"SELECT INBOX"),
        (0, b"FETCH 1:* (FLAGS)"),
        (1, b"FETCH 1:* (FLAGS)"),
        (0, b"SEARCH RECENT"),
        (1, b"SEARCH RECENT"),
        (0, b"STORE 2 +FLAGS (\\Seen)"),
        (1, b"NOOP"),
        (0, b"STORE 3 -FLAGS.SILENT (\\Answered)"),
        (1, b"NOOP"),
        (0, b"STORE 4 FLAGS ($New \\Flagged)"),
        (1, b"NOOP"),
        (1, b"FETCH 4 (FLAGS)"),
        (0, b"UID STORE 5 +FLAGS (\\Draft)"),
        (1, b"NOOP"),
        (0, b"FETCH 6 (BODY[TEXT]<0.5>)"),
        (1, b"NOOP"),
        (0, b"STORE 2,4 -FLAGS ($New \\Seen)"),
        (1, b"NOOP"),
        (0, b"LOGOUT"),
        (1, b"LOGOUT"),
        (2, b"SELECT INBOX"),
        (2, b"FETCH 1:* (FLAGS)"),
        (2, b"STATUS INBOX (MESSAGES RECENT UNSEEN)"),
        (2, b"LOGOUT"),
    ]),
    Script("envelope", [EXAMINE, (0, b"FETCH 1:* (ENVELOPE)")]),
    Script("bodystructure", [EXAMINE, (0, b"FETCH 1:* (BODYSTRUCTURE)"), (0, b"FETCH 1:* (BODY)")]),
    Script("sections", [EXAMINE] + each(0, b"FETCH 1:* (BODY.PEEK[%s])", SECTIONS)),
    Script("partials", [EXAMINE] + each(0, b"FETCH 1:* (BODY.PEEK[]%s)", PARTIALS) + [
        (0, b"FETCH 1:* (BODY.PEEK[TEXT]<3.7>)"),
        (0, b"FETCH 1:* (BODY.PEEK[1]<2.3>)"),
        (0, b"FETCH 1:* (BODY.PEEK[HEADER]<0.20> BODY.PEEK[1.MIME]<1.5>)"),
        (0, b"FETCH 7 (BODY.PEEK[2.1]<0.40> BODY.PEEK[2.HEADER]<10.30>)"),
    ]),
    Script("header-fields", [EXAMINE] + each(0, b"FETCH 1:* (BODY.PEEK[%s])", FIELDS)),
    Script("rfc822-items", [EXAMINE,
                            (0, b"FETCH 1:* (RFC822.SIZE INTERNALDATE UID)"),
                            (0, b"FETCH 1:* (RFC822.HEADER)"),
                            (0, b"FETCH 1:* FAST"),
                            (0, b"FETCH 1:* ALL"),
                            (0, b"FETCH 2:3 FULL"),
                            (0, b"FETCH 1:* (BODY.PEEK[])")]),
    Script("search", [EXAMINE] + each(0, b"SEARCH %s", SEARCHES)
           + [(0, [b"SEARCH "] + parts) for parts in SEARCH_LITERALS]
           + each(0, b"UID SEARCH %s", [b"ALL", b"UID 3:5", b"5:7", b"NOT SEEN"])),
    Script("uids", [
        (0, b"STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"),
        EXAMINE,
        (0, b"UID FETCH 1:* (UID)"),
        (0, b"UID FETCH *:* (UID)"),
        (0, b"UID FETCH 5:3 (FLAGS)"),
        (0, b"UID FETCH 1000 (UID)"),
        (0, b"UID FETCH 1000:* (UID)"),
        (0, b"UID FETCH 2,4:5,1000 (UID RFC822.SIZE)"),
        (0, b"FETCH 1000 (UID)"),
        (0, b"FETCH 3:2 (UID)"),
        (0, b"CLOSE"),
        (0, b"SELECT INBOX"),
        (1, b"EXAMINE INBOX"),
        (0, b"UNSELECT"),
    ]),
    # SORT and THREAD (RFC 5256, 5957) and ESORT/PARTIAL (RFC 5267) over the hard messages.
    Script("sort-and-thread", [EXAMINE]
           + each(0, b"SORT (%s) UTF-8 ALL", SORT_CRITERIA)
           + each(0, b"THREAD %s UTF-8 ALL", [b"ORDEREDSUBJECT", b"REFERENCES", b"REFS"])
           + [(0, b"UID SORT (FROM REVERSE SUBJECT) UTF-8 NOT SEEN"),
              (0, b"UID THREAD REFERENCES UTF-8 NOT SUBJECT hello"),
              (0, b"SORT (DATE) US-ASCII SUBJECT hello"),
              (0, b"SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL"),
              (0, b"UID SORT RETURN (PARTIAL 3:9 MIN) (REVERSE DATE) UTF-8 ALL"),
              (0, b"SORT RETURN (COUNT) (DISPLAYTO) UTF-8 SUBJECT nothing-matches"),
              (0, b"SEARCH RETURN (PARTIAL 2:20 COUNT) ALL"),
              (0, b"UID SEARCH RETURN (PARTIAL 40:50) NOT SEEN")]),
    # Bodies fetched without PEEK set \Seen: after the scripts that read, so
    # they see the flags the corpus came with.
    Script("set-seen", [
        (0, b"SELECT INBOX"),
        (0, b"FETCH 8 (RFC822.TEXT)"),
        (0, b"FETCH 9 (BODY[1])"),
        (0, b"FETCH 10 (RFC822)"),
        (0, b"FETCH 11 (BODY[HEADER])"),
        (0, b"FETCH 8:11 (FLAGS)"),
    ]),
    Script("binary", [EXAMINE]
           + each(0, b"FETCH 1:31 (BINARY.PEEK[%s])", BINARY_SECTIONS)
           + each(0, b"FETCH 1:31 (BINARY.SIZE[%s])", BINARY_SECTIONS)
           + each(0, b"FETCH 1:31 (BINARY.PEEK[1]%s)", [b"<0.10>", b"<5.100>", b"<100000.5>"])
           + [(0, b"FETCH 1:31 (BINARY.PEEK[] BINARY.SIZE[] BODY.PEEK[1]<0.20>)"),
              (0, b"UID FETCH 1:5 (BINARY.PEEK[1] BINARY.SIZE[1])"),
              # literal8 in APPEND, NUL as stored, unknown encodings, in a mailbox of its own
              (0, b"UNSELECT"),
              (0, b"CREATE Binary")]
           + [(0, [b"APPEND Binary ", (m, b"~")]) for m in BINARY_MESSAGES]
           + [(0, b"SELECT Binary"),
              (0, b"FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[])"),
              (0, b"FETCH 1:4 (BINARY.SIZE[1])"),
              (0, b"UID FETCH 2 (BINARY.PEEK[1])"),
              (0, b"FETCH 3 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[2.1] BINARY.SIZE[2])"),
              (0, b"FETCH 3 (BINARY.PEEK[])"),
              (0, b"FETCH 4 (BINARY.PEEK[1])"),
              (0, b"FETCH 4 (BINARY.PEEK[2])"),
              (0, b"FETCH 4 (BINARY.SIZE[1])"),
              (0, b"FETCH 3:4 (BINARY.PEEK[])"),
              (0, b"FETCH 1 (BINARY[1])"),
              (0, b"FETCH 1 (FLAGS)"),
              (0, b"UNSELECT"),
              (0, b"DELETE Binary")]),
    # Live results (RFC 5267 CONTEXT=SEARCH) over the hard messages: another
    # session's flag changes, with header and body keys tested again. Ends
    # with \Flagged, \Answered and \Draft taken off every message.
    Script("live-search", [
        (0, b"SELECT INBOX"),
        (1, b"SELECT INBOX"),
        (0, b"UID SEARCH RETURN (UPDATE) UNFLAGGED"),
        (0, b"SEARCH RETURN (UPDATE COUNT) FLAGGED BODY hello"),
        (0, b"UID SEARCH RETURN (UPDATE MIN) OR ANSWERED SUBJECT caf"),
        (0, b"SEARCH RETURN (UPDATE PARTIAL 1:5) NOT DRAFT TEXT subject"),
        (0, b"UID SORT RETURN (MIN MAX COUNT) (SUBJECT) UTF-8 FLAGGED"),
        (1, b"STORE 1:* +FLAGS.SILENT (\\Flagged)"),
        (0, b"NOOP"),
        (1, b"STORE 2:12 -FLAGS.SILENT (\\Flagged)"),
        (1, b"STORE 3,5,7 +FLAGS.SILENT (\\Answered \\Draft)"),
        (0, b"NOOP"),
        (0, b"STORE 4:9 FLAGS.SILENT (\\Draft)"),
        (0, b'CANCELUPDATE "t5"'),
        (1, b"NOOP"),
        (1, b"STORE 1:* -FLAGS.SILENT (\\Flagged \\Answered \\Draft)"),
        (0, b"NOOP"),
        (0, b"UNSELECT"),
        (1, b"UNSELECT"),
    ]),
    # PREVIEW (RFC 8970) and Dovecot 2.3's drafts (SNIPPET=FUZZY, PREVIEW=FUZZY).
    Script("previews", [EXAMINE, (0, b"FETCH 1:* (PREVIEW)"),
                        (0, b"FETCH 1:* (SNIPPET (FUZZY) PREVIEW (LAZY=FUZZY))")]),
    # Changes the mailbox (expunges, moves): the last script.
    Script("sent-dates", [EXAMINE] + each(0, b"SEARCH %s", SENT_DATES) + [
        (0, b"SORT (DATE) UTF-8 ALL"), (0, b"SORT (REVERSE DATE) UTF-8 ALL"),
        (0, b"SORT (DATE) UTF-8 SENTON 1-Jan-1970")]),
    # STOREs that change nothing, or change what another session changed
    # before, and a FETCH while another session has flagged and expunged a
    # message: in a mailbox of its own, deleted at the end.
    Script("session-updates", [
        (0, b"CREATE Updates"), (0, b"EXAMINE INBOX"), (0, b"COPY 1:6 Updates"),
        (0, b"SELECT Updates"), (1, b"SELECT Updates"),
        (0, b"STORE 1 +FLAGS (\\Seen)"), (0, b"STORE 1:2 +FLAGS (\\Seen)"),
        (0, b"STORE 1:2 -FLAGS (\\Draft)"), (0, b"UID STORE 1:* +FLAGS (\\Seen)"),
        (1, b"STORE 3 +FLAGS.SILENT (\\Flagged)"), (0, b"STORE 3 +FLAGS (\\Flagged)"),
        (1, b"STORE 4 +FLAGS.SILENT (\\Answered)"), (0, b"STORE 3 -FLAGS (\\Flagged)"),
        (0, b"NOOP"),
        (1, b"STORE 5 +FLAGS.SILENT (\\Flagged \\Deleted)"), (1, b"EXPUNGE"),
        (0, b"FETCH 1 (UID)"), (0, b"NOOP"),
        (1, b"LOGOUT"), (0, b"CLOSE"), (0, b"DELETE Updates"),
    ]),
    Script("expunge-and-uids", [
        (0, b"SELECT INBOX"),
        (1, b"SELECT INBOX"),
        (0, b"STORE 2,4:5,8 +FLAGS.SILENT (\\Deleted)"),
        (0, b"UID EXPUNGE 4:5"),
        (1, b"NOOP"),
        (0, b"EXPUNGE"),
        (1, b"FETCH 1:4 (UID FLAGS)"),
        (1, b"NOOP"),
        (1, b"UID FETCH 1:9 (UID)"),
        (1, b"UID SEARCH UID 1:10"),
        (0, b"STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)"),
        (0, [b"APPEND INBOX (\\Flagged $Appended) \"14-Jul-2003 02:44:25 -0700\" ",
             (b"Subject: appended\r\n\r\nAppended.\r\n",)]),
        (1, b"NOOP"),
        (1, b"FETCH * (UID FLAGS INTERNALDATE RFC822.SIZE)"),
        (0, b"CREATE Differential"),
        (0, b"UID COPY 1:3 Differential"),
        (0, b"SELECT Differential"),
        (0, b"FETCH 1:* (UID FLAGS)"),
        (0, b"UID MOVE 1 INBOX"),
        (0, b"EXAMINE INBOX"),
        (0, b"UID FETCH 25:* (FLAGS)"),
        (0, b"UID MOVE 3 Differential"),
        (0, b"DELETE Differential"),
        (0, b"CREATE Differential"),
        (0, b"STATUS Differential (MESSAGES UIDNEXT UIDVALIDITY)"),
    ]),
]
