"""
MULTIAPPEND (RFC 3502), CATENATE (RFC 4469) and URL-PARTIAL (RFC 5550):
the grammar and IMAP URLs alone, then sessions over StringTransport on both
stores (answers as Dovecot 2.3.19 gives them: see docs/imap.md).
"""

import errno

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.imap import fetch, spool
from mailstack.imap.grammar.appendspec import BadURL, parseURL
from mailstack.imap.grammar.arguments import args_append
from mailstack.imap.grammar.fetchspec import Section
from mailstack.imap.grammar.reader import ParseError, Reader
from mailstack.imap.server import SMALL_LITERAL, SPOOL_MEMORY
from mailstack.storage.interfaces import StoreError
from tests.fakes import FakeReactor
from tests.stores import everyStore
from tests.test_imap_server import MESSAGE, MULTIPART, IMAPTestMixin


def lit(data):
    """A non-synchronizing literal (LITERAL+) of C{data}."""
    return b"{%d+}\r\n" % (len(data),) + data


def temporaryFiles(testCase):
    """The temporary files made from now on in C{testCase}, in a list that grows."""
    made = []
    real = spool.tempfile.TemporaryFile

    def counting(*args, **kwargs):
        f = real(*args, **kwargs)
        made.append(f)
        return f
    testCase.patch(spool.tempfile, "TemporaryFile", counting)
    return made


class GrammarTests(unittest.TestCase):
    """APPEND's arguments and CATENATE's URLs, without a session."""

    def test_multiappend(self):
        """Several messages, each with its own flags and date, in order."""
        mailbox, messages = args_append(Reader([
            b"INBOX (\\Seen) {1}", b"a", b' "17-Jul-1996 02:44:25 -0700" ~{1}', b"b",
            b" {1}", b"c", b""]))
        self.assertEqual(mailbox, b"INBOX")
        self.assertEqual([(m.flags, m.date, m.message) for m in messages],
                         [(("\\Seen",), None, b"a"), ((), 837596665, b"b"), ((), None, b"c")])

    def test_noSpaceAfterLiteral(self):
        """As Dovecot: the next message may follow a literal without its space."""
        _, messages = args_append(Reader([b"INBOX {1}", b"a", b"(\\Seen) {1}", b"b", b""]))
        self.assertEqual([m.flags for m in messages], [(), ("\\Seen",)])

    def test_catenate(self):
        """CATENATE parts: TEXT literals and URLs (quoted, atoms or literals)."""
        _, [message] = args_append(Reader([
            b'INBOX CATENATE (TEXT {2}', b"hi", b' URL "/INBOX/;UID=1" url ;UID=2 URL {5}',
            b"/a/;U", b")"]))
        self.assertIsNone(message.message)
        self.assertEqual([(p.kind, p.value) for p in message.catenate],
                         [("TEXT", b"hi"), ("URL", b"/INBOX/;UID=1"), ("URL", b";UID=2"),
                          ("URL", b"/a/;U")])

    def test_catenateUtf8(self):
        """A CATENATE part may be RFC 6855's UTF8 (literal8): a TEXT part marked utf8."""
        _, [message] = args_append(Reader([b"INBOX CATENATE (UTF8 (~{2}", b"hi", b') URL ";UID=1")']))
        self.assertEqual([(p.kind, p.value, p.utf8) for p in message.catenate],
                         [("TEXT", b"hi", True), ("URL", b";UID=1", False)])
        self.assertRaises(ParseError, args_append, Reader([b"INBOX CATENATE (UTF8 ({2}", b"hi",
                                                           b"))"]))

    def test_syntaxErrors(self):
        """No message, an empty or unknown CATENATE list, a trailing flag list: syntax errors."""
        for parts in ([b"INBOX"], [b"INBOX (\\Seen)"], [b"INBOX CATENATE ()"],
                      [b'INBOX CATENATE (FOO "x")'], [b"INBOX CATENATE (TEXT \"x\")"],
                      [b"INBOX {1}", b"a", b" (\\Seen)"], [b"INBOX {1}", b"a", b" foo"]):
            self.assertRaises(ParseError, args_append, Reader(parts))

    def test_urls(self):
        """Relative URLs resolve against the selected mailbox, as Dovecot resolves them."""
        self.assertEqual(parseURL(b"/Box;UIDVALIDITY=7/;UID=3/;SECTION=1.2/;PARTIAL=0.100",
                                  None).__dict__,
                         dict(mailbox="Box", uidValidity=7, uid=3, section=Section((1, 2)),
                              partial=(0, 100)))
        self.assertEqual(parseURL(b";UID=3", "Sent").mailbox, "Sent")
        self.assertEqual(parseURL(b";UIDVALIDITY=9/;UID=3", "Sent").uidValidity, 9)
        self.assertEqual(parseURL(b"Sub/;UID=3", "Sent").mailbox, "Sent/Sub")
        self.assertEqual(parseURL(b"/B%C3%A4r/;uid=3/;section=HEADER.FIELDS%20(SUBJECT)",
                                  None).mailbox, "B\xe4r")
        self.assertEqual(parseURL(b"/a/;UID=3/;SECTION=TEXT/;PARTIAL=5", None).partial,
                         (5, None))

    def test_badURLs(self):
        """URLs naming no message of this server are BadURL, with Dovecot's reasons."""
        for url, selected, reason in [
                (b"imap://demo@host/INBOX/;UID=1", None, "relative"),
                (b";UID=1", None, "selected mailbox"),
                (b"/INBOX", None, "UID"),
                (b"/INBOX/;UID=0", None, "UID cannot be zero"),
                (b"/INBOX;UIDVALIDITY=0/;UID=1", None, "UIDVALIDITY cannot be zero"),
                (b"/INBOX/;UID=1/;SECTION=1/;PARTIAL=0.0", None, "PARTIAL size cannot be zero"),
                (b"/INBOX/;UID=1;PARTIAL=0.5", None, "UID"),
                (b"/INBOX/;UID=1/;SECTION=BOGUS", None, "invalid section"),
                (b"/INBOX/;UID=1/;UID=2", None, "UID")]:
            with self.assertRaises(BadURL) as caught:
                parseURL(url, selected)
            self.assertIn(reason, str(caught.exception), url)


class MultiappendTests(IMAPTestMixin, unittest.TestCase):
    """MULTIAPPEND sessions: all or nothing, APPENDUID with the uid-set."""

    def test_twoMessages(self):
        """Two messages, each with its flags and date, under consecutive UIDs in one APPENDUID."""
        self.login()
        inbox = self.openMailbox()
        out = self.send(b'a APPEND INBOX (\\Seen) ' + lit(MESSAGE)
                        + b' ($Work) "17-Jul-1996 02:44:25 -0700" ' + lit(MULTIPART) + b"\r\n")
        self.assertEqual(out, b"a OK [APPENDUID %d 1:2] APPEND completed\r\n"
                         % (inbox.uidValidity,))
        first, second = inbox.messages()
        self.assertEqual((first.flags, second.flags), ({"\\Seen"}, {"$Work"}))
        self.assertEqual(second.internalDate, 837596665)
        with inbox.openMessage(second.uid) as f:
            self.assertEqual(f.read(), MULTIPART)

    def test_synchronizingLiterals(self):
        """Each message's synchronizing literal gets its own continuation."""
        self.login()
        self.assertEqual(self.send(b"a APPEND INBOX {%d}\r\n" % len(MESSAGE)),
                         b"+ Ready for literal data\r\n")
        self.assertEqual(self.send(MESSAGE + b" {%d}\r\n" % len(MESSAGE)),
                         b"+ Ready for literal data\r\n")
        self.assertTrue(self.send(MESSAGE + b"\r\n").startswith(b"a OK [APPENDUID "))
        self.assertEqual(len(self.openMailbox().messages()), 2)

    def test_failureOnSecondStoresNothing(self):
        """If storing the second message fails, the first is not stored either (NO, nothing left)."""
        self.login()
        inbox = self.openMailbox()
        real = inbox.appendMany

        def failing(items):
            class Broken:
                def read(self, size=-1):
                    raise OSError("injected")
                readline = readinto = read
            return real([items[0], (Broken(), items[1][1], items[1][2])])
        self.patch(inbox, "appendMany", failing)
        out = self.send(b"a APPEND INBOX " + lit(MESSAGE) + b" " + lit(MESSAGE) + b"\r\n")
        self.assertEqual(out, b"a NO [SERVERBUG] Internal error\r\n")
        self.successResultOf(inbox.sync(claimRecent=False))
        self.assertEqual(inbox.messages(), [])
        uidNext = inbox.uidNext
        self.assertTrue(self.send(b"b APPEND INBOX " + lit(MESSAGE) + b"\r\n").startswith(
            b"b OK [APPENDUID %d %d]" % (inbox.uidValidity, uidNext)))

    def test_storeRefusalStoresNothing(self):
        """A store's refusal of the command (a StoreError) is NO with the store's text."""
        self.login()
        inbox = self.openMailbox()
        self.patch(type(inbox), "appendMany", lambda self, items: _fail(StoreError("refused")))
        out = self.send(b"a APPEND INBOX " + lit(MESSAGE) + b" " + lit(MESSAGE) + b"\r\n")
        self.assertEqual(out, b"a NO refused\r\n")
        self.assertEqual(inbox.messages(), [])

    def test_emptySecondMessage(self):
        """An empty second message: NO (as Dovecot), and the first is not stored."""
        self.login()
        out = self.send(b"a APPEND INBOX " + lit(MESSAGE) + b" {0+}\r\n\r\n")
        self.assertEqual(out, b"a NO Cannot append an empty message\r\n")
        self.assertEqual(self.openMailbox().messages(), [])

    def test_secondLiteralTooBig(self):
        """The APPENDLIMIT applies to every message: a second one over it is NO [TOOBIG]
        before its octets are read, and nothing is stored."""
        self.login()
        self.assertEqual(self.send(b"a APPEND INBOX {%d}\r\n" % len(MESSAGE)),
                         b"+ Ready for literal data\r\n")
        out = self.send(MESSAGE + b" {5000}\r\n")
        self.assertEqual(out, b"a NO [TOOBIG] Message too large (limit 4096 octets)\r\n")
        self.assertEqual(self.openMailbox().messages(), [])
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")

    def test_secondLiteralTooBigNonSync(self):
        """A non-synchronizing second literal over the limit is read and dropped, then NO [TOOBIG]."""
        self.login()
        out = self.send(b"a APPEND INBOX " + lit(MESSAGE) + b" {5000+}\r\n" + b"x" * 5000
                        + b"\r\nb NOOP\r\n")
        self.assertEqual(out, b"a NO [TOOBIG] Message too large (limit 4096 octets)\r\n"
                              b"b OK NOOP completed\r\n")
        self.assertEqual(self.openMailbox().messages(), [])

    def test_missingMailbox(self):
        """A MULTIAPPEND to a missing mailbox: NO [TRYCREATE]."""
        self.login()
        out = self.send(b"a APPEND nothere " + lit(MESSAGE) + b" " + lit(MESSAGE) + b"\r\n")
        self.assertEqual(out, b"a NO [TRYCREATE] no mailbox named nothere\r\n")

    def test_syntaxError(self):
        """A bad flag or date in the second message is BAD and nothing is stored."""
        self.login()
        for middle, reply in [(b" (\\Bogus) ", b"a BAD Invalid system flag \\Bogus\r\n"),
                              (b' "bad date" ', b"a BAD APPEND: Invalid date-time\r\n"),
                              (b" foo", b"a BAD APPEND: APPEND needs the message as a literal"
                                        b" or CATENATE\r\n")]:
            tail = b"\r\n" if middle == b" foo" else lit(MESSAGE) + b"\r\n"
            self.assertEqual(self.send(b"a APPEND INBOX " + lit(MESSAGE) + middle + tail),
                             reply)
        self.assertEqual(self.openMailbox().messages(), [])

    def test_literal8(self):
        """A later message may be a literal8 under BINARY; with BINARY off it is BAD, nothing stored."""
        self.login()
        out = self.send(b"a APPEND INBOX " + lit(MESSAGE) + b" ~{3+}\r\nA\x00B\r\n")
        self.assertTrue(out.startswith(b"a OK [APPENDUID "), out)
        inbox = self.openMailbox()
        with inbox.openMessage(inbox.messages()[-1].uid) as f:
            self.assertEqual(f.read(), b"A\x00B")
        server, transport = self.connect(disabled=("BINARY",))
        self.send(b"L1 LOGIN alice@lab.test secret\r\n", (server, transport))
        out = self.send(b"b APPEND INBOX " + lit(MESSAGE) + b" ~{3+}\r\nA\x00B\r\nc NOOP\r\n",
                        (server, transport))
        self.assertEqual(out, b"b BAD Literal8 is not available here (no BINARY)\r\n"
                              b"c OK NOOP completed\r\n")
        self.assertEqual(len(inbox.messages()), 2)

    def test_memoryBounded(self):
        """Once a MULTIAPPEND's literals hold SPOOL_MEMORY octets in memory, the next go to disk."""
        session = self.connect(maxLiteralSize=100000)
        self.login(session)
        seen = []
        self.patch(session[0], "_dispatch", lambda parts: seen.extend(parts))
        small = b"x" * 60000
        count = SPOOL_MEMORY // len(small) + 2
        self.send(b"a APPEND INBOX " + b" ".join(lit(small) for _ in range(count)) + b"\r\n",
                  session)
        literals = seen[1::2]
        self.assertEqual(len(literals), count)
        self.assertIsInstance(literals[0], bytes)
        self.assertFalse(isinstance(literals[-1], bytes))
        self.assertLessEqual(sum(len(p) for p in literals if isinstance(p, bytes)), SPOOL_MEMORY)
        for part in literals:
            if not isinstance(part, bytes):
                part.close()

    def test_linearReading(self):
        """Checking a MULTIAPPEND literal against the memory share does not go over the
        command's earlier literals again (n messages are read in O(n), not O(n^2))."""
        class Parts(list):
            slices = 0

            def __getitem__(self, index):
                if isinstance(index, slice):
                    Parts.slices += 1
                return list.__getitem__(self, index)
        session = self.connect(maxLiteralSize=100000)
        self.login(session)
        session[0]._parts = Parts()
        out = self.send(b"a APPEND INBOX " + b" ".join(lit(MESSAGE) for _ in range(50))
                        + b"\r\n", session)
        self.assertTrue(out.startswith(b"a OK [APPENDUID "), out)
        self.assertEqual(Parts.slices, 0)
        self.assertEqual(len(self.openMailbox().messages()), 50)

    def test_oneSpoolFile(self):
        """Past the memory share, a MULTIAPPEND's many literals go to one file, not one
        each (descriptors stay bounded), and each message is stored as sent."""
        made = temporaryFiles(self)
        session = self.connect(maxLiteralSize=2 * SPOOL_MEMORY)
        self.login(session)
        # Sixteen literals of SMALL_LITERAL octets fill the memory share exactly.
        fillers = [b"Subject: %d\r\n\r\n" % (i,) for i in range(16)]
        fillers = [m + b"x" * (SMALL_LITERAL - len(m)) for m in fillers]
        smalls = [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(40)]
        out = self.send(b"a APPEND INBOX " + b" ".join(lit(m) for m in fillers + smalls)
                        + b"\r\n", session)
        self.assertTrue(out.startswith(b"a OK [APPENDUID "), out)
        self.assertEqual(len(made), 1)
        self.assertTrue(made[0].closed)
        inbox = self.openMailbox()
        stored = []
        for info in inbox.messages():
            with inbox.openMessage(info.uid) as f:
                stored.append(f.read())
        self.assertEqual(stored, fillers + smalls)

    def test_spoolFailureRefused(self):
        """A literal that cannot be spooled (no file descriptor left) is read and dropped:
        NO [SERVERBUG], nothing stored, and the session takes the next command."""
        def failing(*args, **kwargs):
            raise OSError(errno.EMFILE, "Too many open files")
        self.patch(spool.tempfile, "TemporaryFile", failing)
        session = self.connect(maxLiteralSize=2 * SPOOL_MEMORY)
        self.login(session)
        big = b"Subject: big\r\n\r\n" + b"x" * SPOOL_MEMORY + b"\r\n"
        out = self.send(b"a APPEND INBOX " + lit(MESSAGE) + b" " + lit(big) + b" " + lit(MESSAGE)
                        + b"\r\nb NOOP\r\n", session)
        self.assertEqual(out, b"a NO [SERVERBUG] Internal error\r\nb OK NOOP completed\r\n")
        self.assertEqual(self.openMailbox().messages(), [])
        self.flushLoggedErrors()

    def test_beforeLogin(self):
        """Before login, an APPEND literal gets no more room than any command's (no
        continuation for one over the command limit, BAD): APPENDLIMIT is for accounts."""
        session = self.connect(maxLiteralSize=4 * SPOOL_MEMORY)
        size = session[0].settings.maxCommandSize + 1
        self.assertEqual(self.send(b"a APPEND INBOX {%d}\r\n" % (size,), session),
                         b"a BAD Literal too large\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n", session), b"b OK NOOP completed\r\n")
        self.login(session)
        self.assertEqual(self.send(b"c APPEND INBOX {%d}\r\n" % (size,), session),
                         b"+ Ready for literal data\r\n")

    def test_switchedOff(self):
        """With MULTIAPPEND disabled: not advertised, and several messages are BAD."""
        server, transport = self.connect(disabled=("MULTIAPPEND",))
        session = (server, transport)
        out = self.send(b"L1 LOGIN alice@lab.test secret\r\n", session)
        self.assertNotIn(b"MULTIAPPEND", out)
        self.assertIn(b"CATENATE", out)
        out = self.send(b"a APPEND INBOX " + lit(MESSAGE) + b" " + lit(MESSAGE) + b"\r\n",
                        session)
        self.assertEqual(out, b"a BAD MULTIAPPEND is not available here\r\n")
        self.assertTrue(self.send(b"b APPEND INBOX " + lit(MESSAGE) + b"\r\n",
                                  session).startswith(b"b OK [APPENDUID "))


def _fail(error):
    return defer.fail(error)


def _syncAfter(sync, mailbox, delivered):
    """A C{sync} of C{mailbox} that first has a message appended (by "another program")."""
    def patched(self, *args, **kwargs):
        if self is mailbox and not delivered:
            delivered.append(1)
            mailbox.append(MESSAGE).addErrback(lambda f: None)
        return sync(self, *args, **kwargs)
    return patched


class MaildirMultiappendTests(IMAPTestMixin, unittest.TestCase):
    """MULTIAPPEND refusals only the Maildir makes."""

    maildirOnly = True

    def test_keywordLimitOnSecond(self):
        """The Maildir's refusal of the second message (a 27th keyword) is NO with its
        reason, and the first message, with 26 new keywords, is not stored either."""
        self.login()
        keywords = b" ".join(b"k%02d" % (n,) for n in range(26))
        out = self.send(b"a APPEND INBOX (" + keywords + b") " + lit(MESSAGE)
                        + b" (one-too-many) " + lit(MESSAGE) + b"\r\nb NOOP\r\n")
        self.assertTrue(out.startswith(b"a NO "), out)
        self.assertIn(b"26", out)
        self.assertTrue(out.endswith(b"b OK NOOP completed\r\n"), out)
        inbox = self.openMailbox()
        self.successResultOf(inbox.sync(claimRecent=False))
        self.assertEqual(inbox.messages(), [])
        self.assertTrue(self.send(b"c APPEND INBOX " + lit(MESSAGE) + b"\r\n").startswith(
            b"c OK [APPENDUID %d 1] " % (inbox.uidValidity,)))


class CatenateTests(IMAPTestMixin, unittest.TestCase):
    """CATENATE sessions: TEXT and URL parts, BADURL, TOOBIG."""

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.inbox = self.openMailbox()
        self.uid = self.deliver(MULTIPART)
        self.validity = self.inbox.uidValidity

    def catenate(self, *parts, mailbox=b"INBOX", tag=b"a"):
        out = self.send(tag + b" APPEND " + mailbox + b" CATENATE (" + b" ".join(parts)
                        + b")\r\n")
        return out

    def stored(self, uid):
        with self.inbox.openMessage(uid) as f:
            return f.read()

    def appended(self, out):
        self.assertTrue(out.startswith(b"a OK [APPENDUID %d " % (self.validity,)), out)
        return int(out.split(b" ")[4].rstrip(b"]"))

    def test_textAndURL(self):
        """TEXT literals around a URL's section make the new message, as Dovecot makes it."""
        self.login()
        out = self.catenate(b"TEXT " + lit(b"Subject: cat\r\n\r\n"),
                            b'URL "/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=1"'
                            % (self.validity, self.uid),
                            b"TEXT " + lit(b"\r\n--end\r\n"))
        self.assertEqual(self.stored(self.appended(out)),
                         b"Subject: cat\r\n\r\nfirst\r\n--end\r\n")

    def test_sectionsAndPartials(self):
        """Whole messages, MIME headers, HEADER.FIELDS and partial ranges, as Dovecot gives them."""
        self.login()
        u = b"/INBOX/;UID=%d" % (self.uid,)
        cases = [
            (u, MULTIPART),
            (u + b"/;SECTION=1/;PARTIAL=1.3", b"irs"),
            (u + b"/;PARTIAL=0.14", MULTIPART[:14]),
            (u + b"/;SECTION=2.MIME", b"Content-Type: text/plain; charset\r\n\r\n"),
            (u + b"/;SECTION=HEADER.FIELDS%20(SUBJECT)", b"Subject: parts\r\n\r\n"),
            (u + b"/;SECTION=TEXT/;PARTIAL=2", MULTIPART[MULTIPART.index(b"\r\n\r\n") + 6:]),
        ]
        for url, expected in cases:
            out = self.catenate(b'URL "' + url + b'"')
            self.assertEqual(self.stored(self.appended(out)), expected, url)

    def test_relativeToSelected(self):
        """A URL without a mailbox names a message of the selected mailbox (as Dovecot)."""
        self.select()
        out = self.send(b'a APPEND INBOX CATENATE (URL ";UID=%d/;SECTION=2")\r\n' % (self.uid,))
        self.assertIn(b"a OK [APPENDUID %d " % (self.validity,), out)
        self.assertEqual(self.stored(self.inbox.messages()[-1].uid), b"second")

    def test_badURLs(self):
        """URLs naming nothing readable: NO [BADURL url] with Dovecot's reasons; nothing stored."""
        self.login()
        self.createMailbox("Other")
        for url, text in [
                (b"/INBOX;UIDVALIDITY=1/;UID=%d" % self.uid, b"Invalid UIDVALIDITY"),
                (b"/INBOX/;UID=99", b"Message not found"),
                (b"/Nope/;UID=1", b"Mailbox doesn't exist: Nope"),
                (b";UID=1", b"Invalid IMAP URL: a relative URL needs a selected mailbox"),
                (b"/INBOX/;UID=1/;SECTION=1/;PARTIAL=0.0",
                 b"Invalid IMAP URL: PARTIAL size cannot be zero")]:
            out = self.catenate(b'TEXT {1+}\r\nx URL "' + url + b'"', mailbox=b"Other")
            self.assertEqual(out, b"a NO [BADURL " + url + b"] " + text + b"\r\n")
        self.assertEqual(self.openMailbox("Other").messages(), [])

    def test_badURLAsLiteral(self):
        """A URL sent as a literal with CR LF and ] in it cannot break the reply: they are
        percent-encoded in the BADURL code."""
        self.login()
        url = b"/INBOX/;UID=1]\r\n* BYE"
        out = self.catenate(b"URL " + lit(url))
        self.assertEqual(out, b"a NO [BADURL /INBOX/;UID=1%5D%0D%0A*%20BYE] Invalid IMAP URL: it"
                              b" must name a message by UID, and at most a section and a"
                              b" partial range\r\n")

    def test_urlToMessageDeliveredSince(self):
        """A URL may name a message another program delivered since the mailbox was last read."""
        self.login()
        self.createMailbox("Other")
        other = self.openMailbox("Other")
        self.assertEqual(self.catenate(b'URL "/Other/;UID=1"'),
                         b"a NO [BADURL /Other/;UID=1] Message not found\r\n")
        delivered = []
        self.patch(type(other), "sync", _syncAfter(type(other).sync, other, delivered))
        out = self.catenate(b'URL "/Other/;UID=1"')
        self.assertEqual(delivered, [1])
        self.assertEqual(self.stored(self.appended(out)), MESSAGE)

    def test_tryCreateFirst(self):
        """A missing target is NO [TRYCREATE] before any URL is looked at (as Dovecot)."""
        self.login()
        self.assertEqual(self.catenate(b'URL "/INBOX/;UID=99"', mailbox=b"nothere"),
                         b"a NO [TRYCREATE] no mailbox named nothere\r\n")

    def test_tooBig(self):
        """A catenated message over the APPENDLIMIT: NO [TOOBIG], nothing stored."""
        self.login()
        big = self.deliver(b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n")
        url = b'URL "/INBOX/;UID=%d"' % (big,)
        count = len(self.inbox.messages())
        self.assertEqual(self.catenate(url, url),
                         b"a NO [TOOBIG] Message too large (limit 4096 octets)\r\n")
        self.assertEqual(len(self.inbox.messages()), count)

    def test_emptyResult(self):
        """CATENATE making an empty message is refused like an empty APPEND."""
        self.login()
        self.assertEqual(self.catenate(b'URL "/INBOX/;UID=%d/;SECTION=9"' % (self.uid,)),
                         b"a NO Cannot append an empty message\r\n")

    def test_oneMessageOpenAtATime(self):
        """Of the messages a CATENATE's URLs name, one is open at a time (many URL parts
        cannot exhaust the server's file descriptors); the parts are copied in order."""
        self.login()
        opened, open_ = [], []
        real = type(self.inbox).openMessage

        def tracking(mailbox, uid):
            f = real(mailbox, uid)
            close = f.close
            open_.append(f)
            opened.append(len(open_))

            def closing():
                if f in open_:
                    open_.remove(f)
                close()
            f.close = closing
            return f
        self.patch(type(self.inbox), "openMessage", tracking)
        parts = [b'URL "/INBOX/;UID=%d/;SECTION=%d"' % (self.uid, 1 + i % 2) for i in range(30)]
        uid = self.appended(self.catenate(*parts))
        self.assertEqual(len(opened), 30)
        self.assertEqual(max(opened), 1)
        self.assertEqual(open_, [])
        self.assertEqual(self.stored(uid), b"firstsecond" * 15)

    def test_urlsLookedUpOneByOne(self):
        """Each URL is resolved by a look-up of its UID, not a pass over the mailbox's
        messages: a CATENATE of many URLs into a large mailbox does not stall the reactor."""
        self.login()
        listed = []
        real = type(self.inbox).messages
        self.patch(type(self.inbox), "messages",
                   lambda mailbox: listed.append(1) or real(mailbox))
        parts = [b'URL "/INBOX/;UID=%d/;SECTION=1"' % (self.uid,)] * 20
        uid = self.appended(self.catenate(*parts))
        self.assertEqual(self.stored(uid), b"first" * 20)
        self.assertLess(len(listed), 3)

    def test_oneSpoolFile(self):
        """Several large CATENATE messages in one MULTIAPPEND are made in one file,
        not one each nor in memory."""
        big = b"Subject: big\r\n\r\n" + b"x" * (SPOOL_MEMORY + 10) + b"\r\n"
        uid = self.deliver(big)
        session = self.connect(maxLiteralSize=2 * SPOOL_MEMORY)
        self.login(session)
        made = temporaryFiles(self)
        url = b'CATENATE (URL "/INBOX/;UID=%d") ' % (uid,)
        out = self.send(b"a APPEND INBOX " + url * 3 + b'CATENATE (URL "/INBOX/;UID=%d")\r\n'
                        % (self.uid,), session)
        self.assertTrue(out.startswith(b"a OK [APPENDUID "), out)
        self.assertEqual(len(made), 1)
        self.assertTrue(made[0].closed)
        self.assertEqual([self.stored(u) for u in (uid + 1, uid + 2, uid + 3, uid + 4)],
                         [big, big, big, MULTIPART])

    def test_insideMultiappend(self):
        """CATENATE messages beside literals in one MULTIAPPEND: one APPENDUID, atomic."""
        self.login()
        out = self.send(b"a APPEND INBOX (\\Seen) CATENATE (URL \"/INBOX/;UID=%d/;SECTION=1\") "
                        % (self.uid,) + lit(MESSAGE) + b"\r\n")
        self.assertEqual(out, b"a OK [APPENDUID %d 2:3] APPEND completed\r\n" % (self.validity,))
        self.assertEqual(self.stored(2), b"first")
        self.assertEqual(self.inbox.messageInfo(2).flags, {"\\Seen"})
        self.assertEqual(self.stored(3), MESSAGE)
        out = self.send(b"b APPEND INBOX " + lit(MESSAGE) + b' CATENATE (URL "/INBOX/;UID=99")'
                        b"\r\n")
        self.assertEqual(out, b"b NO [BADURL /INBOX/;UID=99] Message not found\r\n")
        self.assertEqual(len(self.inbox.messages()), 3)

    def test_switchedOff(self):
        """With CATENATE disabled: neither it nor URL-PARTIAL is advertised, and it is BAD."""
        server, transport = self.connect(disabled=("CATENATE",))
        session = (server, transport)
        out = self.send(b"L1 LOGIN alice@lab.test secret\r\n", session)
        self.assertNotIn(b"CATENATE", out)
        self.assertNotIn(b"URL-PARTIAL", out)
        self.assertEqual(self.send(b'a APPEND INBOX CATENATE (URL "/INBOX/;UID=1")\r\n',
                                   session), b"a BAD CATENATE is not available here\r\n")




class HeldPool:
    """A thread pool that holds each job until the test runs it, as a worker thread would."""

    def __init__(self):
        self.jobs = []

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        self.jobs.append((onResult, f, args))

    def runAll(self):
        jobs, self.jobs = self.jobs, []
        for onResult, f, args in jobs:
            try:
                onResult(True, f(*args))
            except Exception as e:
                onResult(False, e)


class NonBlockingTests(IMAPTestMixin, unittest.TestCase):
    """CATENATE reads the messages its URLs name in a worker thread, not in the reactor."""

    def test_assembledInThread(self):
        """The parts are copied in the thread pool; the reply waits for that job, and the
        session's next command waits for the reply."""
        pool = HeldPool()
        clock = FakeReactor()
        clock.getThreadPool = lambda: pool
        self.clock = clock
        uid = self.deliver(MULTIPART)
        session = self.connect()
        self.send(b"L1 LOGIN alice@lab.test secret\r\n", session)
        reads = []
        original = fetch.parseStructure
        self.patch(fetch, "parseStructure", lambda f: reads.append(f) or original(f))
        out = self.send(b'a APPEND INBOX CATENATE (URL "/INBOX/;UID=%d/;SECTION=2")\r\nb NOOP\r\n'
                        % (uid,), session)
        self.assertEqual(out, b"")
        self.assertEqual(reads, [])
        self.assertEqual(len(pool.jobs), 1)
        pool.runAll()
        self.assertEqual(len(reads), 1)
        out = session[1].value()
        self.assertIn(b"a OK [APPENDUID ", out)
        self.assertTrue(out.endswith(b"b OK NOOP completed\r\n"), out)


everyStore(globals())
