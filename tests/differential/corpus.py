"""
The differential harness's corpus: hard messages, built deterministically in
code (L{representative}) plus the files in tests/differential/messages/ (kept
byte for byte: LF-only lines, no final newline), and a larger generated corpus
(L{generated}, for `make interop`) that recombines the same hard parts from a
seed.

Each entry is a L{Message}: a name for reports, the exact bytes delivered,
the flags it is delivered with and its INTERNALDATE (a Unix time).
"""

import os
import random
from dataclasses import dataclass, field

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "messages")

# 1994-02-07 21:52:25 -0800 and onwards, one day per message: dates SEARCH
# BEFORE/ON/SINCE can tell apart.
BASE_TIME = 760686745
DAY = 86400


@dataclass
class Message:
    name: str
    data: bytes
    flags: tuple = ()
    internalDate: int = BASE_TIME
    notes: str = field(default="", compare=False)


def crlf(text):
    """Text with LF line ends as CRLF bytes (UTF-8)."""
    return text.replace("\n", "\r\n").encode("utf-8")


ADDRESSES = crlf("""\
From: "Joe Q. Public" <john.q.public@example.com>
Sender: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.test>
Reply-To: "Giant; \\"Big\\" Box" <sysservices@example.net>
To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>
Cc: <boss@nil.test>, A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;
Bcc: Undisclosed recipients:;
Date: Tue, 1 Jul 2003 10:52:37 +0200
Subject: =?UTF-8?B?SGVsbG8sIOS4lueVjA==?= and =?iso-8859-1?q?caf=E9?=
Message-ID: <5678.21-Nov-1997@example.com>
In-Reply-To: <1234@local.machine.example>

Addresses of every RFC 5322 shape.
""")

COMMENTS = crlf("""\
From: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>
To: "quoted \\\\ backslash" <q@x.test>, (only a comment) plain@x.test (trailing)
Cc: =?utf-8?q?J=C3=B6rg?= <joerg@x.test>, "=?utf-8?q?quoted_encoded?=" <qe@x.test>
Date: Thu, 13 Feb 1969 23:32:54 -0330
Subject: =?utf-8?q?broken_encoded_word?= =?bogus?x?zz?= =?utf-8?b?invalid*base64?=
Message-ID: <comments@silly.test> (a comment after)

Comments in addresses.
""")

EIGHT_BIT = (
    "From: Jörg Müller <jörg@bücher.example>\r\n"
    "To: 日本語 <nihongo@example.jp>\r\n"
    "Subject: Grüße aus Köln — 8-bit UTF-8 header\r\n"
    "Date: Wed, 2 Feb 2022 12:00:00 +0100\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Grüße, Jörg. Straße.\r\n").encode("utf-8") + (
    b"Latin-1 in the body: caf\xe9\r\n")

LATIN1_HEADER = (
    b"From: Ren\xe9 <rene@example.fr>\r\n"
    b"To: demo@lab.test\r\n"
    b"Subject: Caf\xe9 in raw Latin-1\r\n"
    b"Date: 2 Feb 2022 12:00 GMT\r\n"
    b"\r\n"
    b"Body.\r\n")

NESTED = crlf("""\
From: nested@example.com
To: demo@lab.test
Subject: nested multiparts with a forwarded message
Date: Fri, 3 Mar 2023 08:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"
Content-Language: en

Preamble to ignore.
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=us-ascii; format=flowed
Content-Transfer-Encoding: 7bit

Plain part.
--inner
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable
Content-ID: <html@example.com>
Content-Description: the HTML version

<p>HTML part=3D</p>
--inner--
--outer
Content-Type: message/rfc822; name=forwarded.eml
Content-Disposition: attachment; filename="forwarded.eml"

From: Inner Sender <inner@example.org>
To: someone@example.org
Subject: the forwarded one
Date: Sat, 4 Mar 2023 09:00:00 -0500
Content-Type: multipart/mixed; boundary="deep"

--deep
Content-Type: text/plain

Deep text.
--deep
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20rates.bin
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==
Content-Location: http://example.org/rates

AAECAwQFBgcICQoLDA0ODw==
--deep--

--outer
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Disposition: inline
Content-Language: de, en-GB

iVBORw0KGgo=
--outer--
Epilogue to ignore.
""")

NO_CONTENT_TYPE = crlf("""\
From: plain@example.com
To: demo@lab.test
Subject: no MIME headers at all
Date: Sat, 1 Jan 2000 00:00:00 +0000

A message without MIME-Version or Content-Type.
Second line.
""")

MISSING_BOUNDARY = crlf("""\
From: broken@example.com
To: demo@lab.test
Subject: multipart without a boundary parameter
Date: Sat, 1 Jan 2000 00:00:01 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed

--x
Content-Type: text/plain

part
--x--
""")

UNSEEN_BOUNDARY = crlf("""\
From: broken@example.com
To: demo@lab.test
Subject: the boundary never appears
Date: Sat, 1 Jan 2000 00:00:02 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="never"

--other
Content-Type: text/plain

text
""")

UNCLOSED = crlf("""\
From: broken@example.com
To: demo@lab.test
Subject: no closing boundary
Date: Sat, 1 Jan 2000 00:00:03 +0000
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain; charset=utf-8

first
--b1
Content-Type: text/plain

second, never closed
""")

GARBAGE_TYPE = crlf("""\
From: broken@example.com
To: demo@lab.test
Subject: a Content-Type without a slash and a bad parameter
Date: Sat, 1 Jan 2000 00:00:04 +0000
Content-Type: textplain; charset; =bad; name="unterminated
Content-Transfer-Encoding: Quoted-Printable

=E9t=E9
""")

UPPER_TYPE = crlf("""\
From: upper@example.com
To: demo@lab.test
Subject: upper-case types, parameters and comments
Date: Sat, 1 Jan 2000 00:00:05 +0000
MIME-Version: 1.0 (produced by hand)
Content-Type: TEXT/HTML (a comment); CHARSET="ISO-8859-1"; Name="A B.html"
Content-Transfer-Encoding: BASE64
Content-Disposition: ATTACHMENT; FILENAME=x.html; size=10

PGI+aGk8L2I+
""")

# Not ending in a lone CR: Dovecot's APPEND drops one there (its file is an
# octet shorter), a difference of delivery, not of reading (docs/imap.md).
CR_ONLY = (b"From: cr@example.com\rTo: demo@lab.test\rSubject: CR-only lines\r"
           b"Date: Sat, 1 Jan 2000 00:00:06 +0000\r\rBody line one\rline two")

MIXED_ENDS = (b"From: mixed@example.com\r\nTo: demo@lab.test\n"
              b"Subject: mixed line ends\r\nDate: Sat, 1 Jan 2000 00:00:07 +0000\n"
              b"\r\nline with CRLF\r\nline with LF\nlone\rCR inside\r\n")

HEADER_ONLY = crlf("""\
From: headeronly@example.com
To: demo@lab.test
Subject: headers and no body at all
Date: Sat, 1 Jan 2000 00:00:08 +0000
""")

NO_BLANK_NO_END = b"Subject: headers without a blank line or final newline"

LONG = (
    b"From: long@example.com\r\nTo: " +
    b",\r\n ".join(b"Recipient %d <r%d@long.example>" % (i, i) for i in range(150)) +
    b"\r\nSubject: " + b" ".join(b"word%d" % (i,) for i in range(400)) +
    b"\r\nX-Unfolded: " + b"x" * 12000 +
    b"\r\nDate: Sun, 2 Jan 2000 00:00:00 +0000\r\n\r\n" +
    b"".join(b"body line %05d of a large message, for LARGER and partials\r\n" % (i,)
             for i in range(2000)))

EMPTY_FIELDS = crlf("""\
From:
To: <>
Cc: @
Subject:
Date: not a date at all
Message-ID:
In-Reply-To:

Empty and invalid header fields.
""")

DUPLICATES = crlf("""\
From: first@example.com
From: second@example.com
Subject: first subject
subject: second subject
Date: Mon, 3 Jan 2000 00:00:00 +0000
DATE: Tue, 4 Jan 2000 00:00:00 +0000
To: a@example.com
To: b@example.com
X-Keyword: needle

Duplicate header fields; the body has the word Haystack and NEEDLE.
""")

ENCODED_BODY = crlf("""\
From: qp@example.com
To: demo@lab.test
Subject: encoded bodies
Date: Wed, 5 Jan 2000 00:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==b=="

--==b==
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Caf=E9 cr=E8me soft=
break
--==b==
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

w6Jub3RoZXIgd29yZDogZsO8bmY=
--==b==
Content-Type: message/rfc822

Subject: attached without a Content-Type of its own

Inner body.
--==b==--
""")

DIGEST = crlf("""\
From: digest@example.com
To: demo@lab.test
Subject: multipart/digest defaults parts to message/rfc822
Date: Thu, 6 Jan 2000 00:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/digest; boundary=d

--d

From: one@example.com
Subject: digest one

One.
--d
Content-Type: text/plain

Not a message.
--d--
""")

EMPTY_MULTIPART = crlf("""\
From: empty@example.com
To: demo@lab.test
Subject: a multipart with no parts and an empty part
Date: Fri, 7 Jan 2000 00:00:00 +0000
Content-Type: multipart/mixed; boundary=e

--e
--e--
""")

WHITESPACE = (b"From: ws@example.com\r\nTo: demo@lab.test\r\n"
              b"Subject:\tTabbed\r\n  and folded\r\n\tsubject\r\n"
              b"X-Trailing: value with trailing spaces   \r\n"
              b"Date: Sat, 8 Jan 2000 00:00:00 +0000\r\n"
              b"Content-Type: text/plain;\r\n charset=\"us-ascii\";\r\n\tformat=flowed\r\n"
              b"\r\n\r\nBody after an extra blank line.\r\n")


PADDED_BOUNDARIES = crlf("""\
From: padding@example.com
Subject: transport padding after boundaries, and a longer look-alike
Date: Sun, 9 Jan 2000 00:00:00 +0000
Content-Type: multipart/mixed; boundary=abc

--abc\t \n\
Content-Type: text/plain

--abcdef is not a boundary
--abc  \n\
Content-Type: text/plain; charset="UTF-8" (comment); charset=latin1

second
--abc--   \n\
""")

TIGHT_NESTING = crlf("""\
From: tight@example.com
Subject: an attached multipart closing right before the outer boundary
Date: Mon, 10 Jan 2000 00:00:00 +0000
Content-Type: multipart/mixed; boundary=o

--o
Content-Type: message/rfc822

Subject: inner
Content-Type: multipart/alternative; boundary=i

--i
Content-Type: text/plain

x
--i--
--o
Content-Type: message/rfc822

Subject: an attached message with no body
--o
Content-Type: message/rfc822

Subject: an attached message with a blank line and no body

--o--
""")

ODD_ADDRESSES = crlf("""\
From: =?iso-8859-1?q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>
To: "a@b" <c@d.test>, <e@f.test>, <>, foo@bar.test (comment (nested) here)
Cc: "Smith, J" <j@x.test>, Empty Group: ;, x@y.test, user@[192.0.2.1]
Bcc: "folded
 name" <fold@x.test>, =?utf-8?b?5pel5pys?= <jp@x.test>, @
Reply-To: a.b.c@d.e.f (x) , "q\\"uote" <q@x.test>
Sender: just a phrase
Subject: odd addresses
Date: Tue, 11 Jan 2000 00:00:00 +0000
Message-ID:   <spaced@x.test>   (and a comment)

Odd addresses.
""")

PARAMETERS = crlf("""\
From: params@example.com
Subject: RFC 2231 continuations, duplicate and quoted parameters
Date: Wed, 12 Jan 2000 00:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="p p"

--p p
Content-Type: application/pdf; name*0="long"; name*1="-name.pdf"; NAME=dup; name=dup2
Content-Disposition: attachment; filename*=iso-8859-1'en'%E9t%E9.pdf; size=123;
 creation-date="Wed, 12 Jan 2000 00:00:00 +0000"
Content-Transfer-Encoding: base64

JVBERi0=
--p p
Content-Type: text/plain; format="flowed"; delsp=yes
Content-Disposition: inline

Flowed text.
--p p--
""")

NUL_AND_LONG_LINE = (b"From: nul@example.com\r\nSubject: a NUL\x00 in the subject\r\n"
                     b"Date: Thu, 13 Jan 2000 00:00:00 +0000\r\n\r\n"
                     + b"y" * 5000 + b"\r\nafter the long line\r\n")


LATE_DATE = crlf("""\
From: =?utf-8?q?Late_?= =?utf-8?q?Sender?= <late@example.com>
To: "=?utf-8?b?5pel5pys?=" <q@example.jp>, =?utf-8?q?split_word?=@example.com
Subject: =?utf-8?q?split_acr?= =?utf-8?q?oss_words?= (and a comment)
Date: Sat, 1 Jan 2000 23:30:00 -1200 (local time, obsolete comment)
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

soft line br=
eak in a word, cr=E8me br=FBl=E9e
""")

ZONE_NAMES = crlf("""\
From: zones@example.com
Subject: obsolete zone name and two-digit year
Date: 2 Jan 00 00:15:00 EST

Body.
""")


# Date: fields Dovecot 2.3 reads (the date as written, whatever the zone) or
# refuses (then SEARCH takes 1-Jan-1970, SORT the internal date): a long
# weekday, an hour past 23, a day off the calendar, one-digit minutes, a
# weekday without its comma, a three-digit year, IMAP's own date form; a
# two-digit year before 70 is 20xx, a leap second and comments are read.
ODD_DATES = [None, b"not a date at all", b"Sunday, 2 Jan 2000 10:00:00 +0000",
             b"2 Jan 2000 10:00 +0000", b"31 Feb 2000 10:00:00 +0000",
             b"1 Jan 2000 23:59:60 +0000", b"1 Jan 99 10:00:00 +0000", b"1 Jan 69 10:00:00 +0000",
             b"1 Jan 2000 10:00:00", b"Sat, 1 Jan 2000 23:30:00 -1200",
             b"Sat, 01 Jan 2000 00:30:00 +0100", b"1 Jan 2000 10.00.00 +0000",
             b"1 January 2000 10:00:00 +0000", b"1 Jan 1899 10:00:00 +0000",
             b"Sat,1 Jan 2000 10:00:00 +0000", b"Sat, 1 Jan 2000 10:00:00 XYZ",
             b"1 Jan 2000 25:00:00 +0000", b"Sat, 1 Jan 2000",
             b"Sat, 1 Jan 2000 10:00:00 +0000 (UTC)", b"1 jan 2000 10:00:00 +0000",
             b"Mon, 3 Jan 2000 10:00:00 -0000", b"3 Jan 2000 10:00:00 +2400",
             b"Tue, 4 Jan 2000 03:00:00 +0500", b"4 Jan 2000 03:00:00 z",
             b"Sa, 1 Jan 2000 10:00:00 +0000", b"1 Jan 100 10:00:00 +0000",
             b"01-Jan-2000 10:00:00 +0000", b"1 Jan 2000 1:2:3 +0000",
             b"Thu, 1 Jan 1970 00:00:00 +0000", b"Tue, 31 Dec 2099 23:59:59 +1400",
             b"5 Jan 2000 10:00:00 EDT", b"5 Jan 2000 23:00:00 PST",
             b"\t6 Jan 2000 10:00:00 +0000  ", b"6 Jan 2000 10:00:00 +00",
             b"7 Jan 2000 10:00:00 +000000", b"Fri 7 Jan 2000 10:00:00 +0000"]


def oddDates():
    """One short message per L{ODD_DATES} entry (none: no Date: at all), a day apart."""
    return [Message("date-%d" % (i,),
                    b"Subject: date %d\r\n" % (i,)
                    + (b"Date: " + date + b"\r\n" if date is not None else b"") + b"\r\nBody.\r\n",
                    (), BASE_TIME + i * DAY)
            for i, date in enumerate(ODD_DATES)]


def fromFile(name):
    with open(os.path.join(HERE, name), "rb") as f:
        return f.read()


def representative():
    """
    The corpus `make test` runs: every kind of hard message once, in a fixed
    order (their sequence numbers are the session scripts' to rely on).
    """
    entries = [
        ("addresses", ADDRESSES, ("\\Seen",)),
        ("comments", COMMENTS, ()),
        ("obsolete-lf", fromFile("obsolete-lf.eml"), ("\\Answered", "$Forwarded")),
        ("routes-nofinal", fromFile("routes-nofinal.eml"), ()),
        ("eight-bit", EIGHT_BIT, ("\\Flagged",)),
        ("latin1-header", LATIN1_HEADER, ()),
        ("nested", NESTED, ("\\Seen", "\\Flagged")),
        ("no-content-type", NO_CONTENT_TYPE, ("\\Draft",)),
        ("missing-boundary", MISSING_BOUNDARY, ()),
        ("unseen-boundary", UNSEEN_BOUNDARY, ()),
        ("unclosed", UNCLOSED, ("\\Deleted",)),
        ("garbage-type", GARBAGE_TYPE, ()),
        ("upper-type", UPPER_TYPE, ("$Label1",)),
        ("cr-only", CR_ONLY, ()),
        ("mixed-ends", MIXED_ENDS, ()),
        ("header-only", HEADER_ONLY, ("\\Seen",)),
        ("no-blank-no-end", NO_BLANK_NO_END, ()),
        ("long", LONG, ()),
        ("empty-fields", EMPTY_FIELDS, ()),
        ("duplicates", DUPLICATES, ("\\Seen", "\\Answered")),
        ("encoded-body", ENCODED_BODY, ()),
        ("digest", DIGEST, ()),
        ("empty-multipart", EMPTY_MULTIPART, ()),
        ("whitespace", WHITESPACE, ()),
        ("padded-boundaries", PADDED_BOUNDARIES, ()),
        ("tight-nesting", TIGHT_NESTING, ("\\Seen",)),
        ("odd-addresses", ODD_ADDRESSES, ()),
        ("parameters", PARAMETERS, ("$Label1",)),
        ("nul-and-long-line", NUL_AND_LONG_LINE, ()),
        ("late-date", LATE_DATE, ()),
        ("zone-names", ZONE_NAMES, ()),
    ]
    return [Message(name, data, flags, BASE_TIME + i * DAY)
            for i, (name, data, flags) in enumerate(entries)]


# Parts the generator recombines: header fields and body shapes.
_FROMS = [b"a@example.com", b"\"Quoted, Name\" <q@example.com>", b"(c) x@y.test (d)",
          b"=?utf-8?q?=C3=A9?= <e@example.com>", b"G: m@g.test, n@g.test;", b"<@r.test:x@y.test>",
          "Ünï <u@example.com>".encode("utf-8"), b"", b"undisclosed-recipients:;",
          b"a@b.test, c@d.test (note), \"e\" <e@f.test>",
          b"\"unterminated <a@b.test>", b"a@b@c.test", b"<a@b.test", b"Name <a@b.test> trailing junk",
          b"a@b.test, , ,c@d.test", b"=?utf-8?q?x?=@example.com", b"\"quoted\"@example.com",
          b"a.@example.com, .b@example.com", b"(comment only)", b"group: a@b.test; c@d.test",
          b"\"with \\\"escaped\\\" quotes\" <a@b.test>", b"a@[IPv6:::1]", b"<>", b"@", b"@domain.test",
          b"local@", b"Name <>", b"<@route.test,@r2.test:x@y.test>", b"a(b)c@d(e).test",
          b"G1: a@b.test;, G2: ;", b"\"\" <empty@name.test>", b"x@y.test (a) (b) (c)"]
_SUBJECTS = [b"plain", b"=?utf-8?b?w6k=?=", b"Re: [list] Fwd: x", "Grüße".encode("utf-8"),
             b"", b" x" * 300, b"=?iso-8859-1?q?a?= =?iso-8859-1?q?b?="]
_DATES = [b"Mon, 7 Feb 1994 21:52:25 -0800", b"7 Feb 94 21:52 PST", b"garbage",
          b"Tue, 31 Dec 2099 23:59:59 +1400", b"Thu, 1 Jan 1970 00:00:00 +0000"]
_TYPES = [None, b"text/plain", b"text/plain; charset=\"utf-8\"", b"multipart/mixed",
          b"multipart/mixed; boundary=\"gb\"", b"multipart/alternative; boundary=gb",
          b"message/rfc822", b"application/x-y; name=\"a b\"", b"TEXT/PLAIN; Format=Flowed"]
_BODIES = [b"line\r\n", b"", b"--gb\r\nContent-Type: text/plain\r\n\r\nA\r\n--gb--\r\n",
           b"--gb\r\n\r\nno headers\r\n--gb\r\nContent-Type: message/rfc822\r\n\r\n"
           b"Subject: in\r\n\r\nin\r\n--gb--\r\n",
           b"Subject: inner\r\nFrom: i@example.com\r\n\r\ninner body\r\n",
           b"--gb\r\nContent-Type: text/plain\r\n\r\nunclosed\r\n",
           "8-bit body: ü\r\n".encode("utf-8"), b"no final newline"]
_ENDS = [b"\r\n", b"\n", b"\r"]


_LEAF_TYPES = [None, b"text/plain", b"text/html; charset=utf-8", b"application/octet-stream",
               b"image/png; name=x.png", b"text/plain; charset=\"iso-8859-1\"", b"TEXT/Enriched"]
_ENCODINGS = [None, b"7bit", b"base64", b"quoted-printable", b"8BIT", b"x-unknown"]
_DISPOSITIONS = [None, b"inline", b"attachment; filename=a.txt", b"attachment; filename*=utf-8''%C3%A9",
                 b"INLINE; size=3"]
_LEAF_BODIES = [b"plain words\r\n", b"", b"no line end", b"a\r\n\r\nb\r\n", b"SGVsbG8=\r\n",
                b"caf=E9 soft=\r\nbreak\r\n", "8-bit ü\r\n".encode("utf-8"), b"--not-a-boundary\r\n"]


def _entity(rng, depth, counter):
    """A random MIME entity (header lines and body) for L{structured}."""
    lines = []
    kind = rng.random() if depth < 4 else 1.0
    if kind < 0.3:
        counter[0] += 1
        boundary = rng.choice([b"b%d" % counter[0], b"=_b%d" % counter[0], b"b%d x" % counter[0]])
        sub = rng.choice([b"mixed", b"alternative", b"digest", b"related", b"parallel"])
        quoted = b'"%s"' % boundary if b" " in boundary or rng.random() < 0.5 else boundary
        lines.append(b"Content-Type: multipart/" + sub + b"; boundary=" + quoted)
        parts = []
        for _ in range(rng.randrange(0, 4)):
            parts.append(b"--" + boundary + rng.choice([b"", b" ", b"\t"]) + b"\r\n"
                         + _entity(rng, depth + 1, counter))
        close = b"--" + boundary + b"--\r\n" if rng.random() < 0.85 else b""
        epilogue = rng.choice([b"", b"", b"epilogue\r\n"])
        body = rng.choice([b"", b"preamble\r\n"]) + b"\r\n".join(parts)
        body = body + (b"\r\n" if parts else b"") + close + epilogue
    elif kind < 0.45:
        lines.append(b"Content-Type: message/rfc822")
        body = (b"Subject: nested %d\r\nFrom: n%d@example.com\r\n" % (depth, depth)
                + _entity(rng, depth + 1, counter))
        return b"\r\n".join(lines) + b"\r\n\r\n" + body
    else:
        contentType = rng.choice(_LEAF_TYPES)
        if contentType is not None:
            lines.append(b"Content-Type: " + contentType)
        body = rng.choice(_LEAF_BODIES)
    for name, choices in ((b"Content-Transfer-Encoding", _ENCODINGS),
                          (b"Content-Disposition", _DISPOSITIONS)):
        value = rng.choice(choices)
        if value is not None:
            lines.append(name + b": " + value)
    if rng.random() < 0.2:
        lines.append(b"Content-ID: <c%d@example.com>" % (counter[0],))
    if rng.random() < 0.1:
        lines.append(b"Content-Language: en, fr")
    header = b"\r\n".join(lines) + b"\r\n" if lines else b""
    return header + b"\r\n" + body


def structured(seed, count):
    """
    C{count} messages with random MIME trees (multiparts of several kinds,
    attached messages, leaves with encodings and dispositions, unclosed
    multiparts, padded boundaries), the same for the same C{seed}.
    """
    rng = random.Random(seed)
    messages = []
    for i in range(count):
        data = (b"From: s%d@example.com\r\nSubject: structure %d\r\n" % (i, i)
                + _entity(rng, 0, [0]))
        data = data.rstrip(b"\r")
        messages.append(Message("structured-%d" % (i,), data, (), BASE_TIME + i * DAY))
    return messages


def generated(seed, count):
    """
    C{count} messages recombined from the hard parts above, the same for the
    same C{seed}: header fields present or missing, line ends CRLF, LF or CR.
    """
    rng = random.Random(seed)
    messages = []
    for i in range(count):
        lines = []
        for name in (b"From", b"To", b"Cc", b"Reply-To"):
            if rng.random() < 0.7:
                lines.append(name + b": " + rng.choice(_FROMS))
        if rng.random() < 0.9:
            lines.append(b"Subject: " + rng.choice(_SUBJECTS))
        if rng.random() < 0.8:
            lines.append(b"Date: " + rng.choice(_DATES))
        contentType = rng.choice(_TYPES)
        if contentType is not None:
            lines.append(b"Content-Type: " + contentType)
        if rng.random() < 0.2:
            lines.append(b"Message-ID: <gen%d@example.com>" % (i,))
        body = rng.choice(_BODIES)
        end = rng.choice(_ENDS) if rng.random() < 0.3 else b"\r\n"
        data = end.join(lines) + end + end + body.replace(b"\r\n", end)
        data = data.rstrip(b"\r")  # as CR_ONLY: no lone CR at the very end
        flags = tuple(f for f in ("\\Seen", "\\Flagged", "\\Answered", "$Work")
                      if rng.random() < 0.25)
        messages.append(Message("generated-%d" % (i,), data, flags,
                                BASE_TIME + rng.randrange(0, 40) * DAY))
    return messages
