"""
Tests for L{mailstack.imap.grammar.reader}: the token reader over a framed
IMAP command (tags, literals, strings, flags, dates), and what it reads when
the server framed the command from reads split anywhere.
"""

import ast
import datetime
import io
import os
import sys

from twisted.internet import task
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from mailstack.imap import server as imapServer
from mailstack.imap import grammar
from mailstack.imap.grammar import arguments
from mailstack.imap.grammar.fetchspec import FetchAttribute, Section
from mailstack.imap.grammar.reader import (
    ParseError, Reader, commandTag, literalAnnouncement)
from mailstack.imap.grammar.sequence import SequenceSet


def reader(*parts):
    return Reader(list(parts))


class LiteralAnnouncementTests(unittest.TestCase):
    """
    Literal announcements at the end of a line.
    """

    def test_synchronizing(self):
        """C{{12}} at the end is a synchronizing literal."""
        self.assertEqual(literalAnnouncement(b"a APPEND INBOX {12}"), (12, True))

    def test_nonSynchronizing(self):
        """C{{12+}} (LITERAL+) is non-synchronizing."""
        self.assertEqual(literalAnnouncement(b"a LOGIN {3+}"), (3, False))

    def test_notAtEnd(self):
        """A brace not at the end announces nothing."""
        self.assertIsNone(literalAnnouncement(b"a SEARCH {3} x"))
        self.assertIsNone(literalAnnouncement(b"a NOOP"))

    def test_absurdlyLong(self):
        """More than 20 digits is not an announcement."""
        self.assertIsNone(literalAnnouncement(b"a x {" + b"9" * 21 + b"}"))


class ReaderTests(unittest.TestCase):
    """
    Tokens: tags, atoms, strings, literals.
    """

    def test_tagAndCommand(self):
        """A tag then a command name."""
        r = reader(b"A001 login")
        self.assertEqual(r.tag(), b"A001")
        r.sp()
        self.assertEqual(r.keyword(), "LOGIN")
        r.end()

    def test_tagRejectsPlus(self):
        """'+' cannot be part of a tag."""
        self.assertRaises(ParseError, reader(b"+ x").tag)

    def test_tagEndsAtSpace(self):
        """A tag is followed by a space or the line's end; ']' may be part of it."""
        for line in (b"a+ NOOP", b"a{ NOOP", b"a( NOOP", b"a\tNOOP", b"a\x00 NOOP"):
            self.assertRaises(ParseError, reader(line).tag)
            self.assertIsNone(commandTag(line))
        self.assertEqual(reader(b"a] NOOP").tag(), b"a]")
        self.assertEqual(commandTag(b"A001 NOOP"), b"A001")
        self.assertEqual(commandTag(b"A001"), b"A001")

    def test_tagSevenBit(self):
        """8-bit octets are not ASTRING-CHARs: no tag holds them."""
        for line in (b"\xff NOOP", b"a\xc3\xa9 NOOP", b"\x80"):
            self.assertRaises(ParseError, reader(line).tag)
            self.assertIsNone(commandTag(line))

    def test_quotedEscapes(self):
        """Backslash escapes quote and backslash."""
        r = reader(b'"a \\"b\\" \\\\c"')
        self.assertEqual(r.string(), b'a "b" \\c')
        r.end()

    def test_quotedOtherBackslash(self):
        """
        RFC 3501 quoted-specials: a backslash before anything but a quote or a
        backslash is a syntax error, not an escape of that character.
        """
        for text in (b'"de\\mo"', b'"a\\b"', b'"\\n"', b'"\\\xff"', b'"x\\ "'):
            self.assertRaises(ParseError, reader(text).string)
        self.assertEqual(reader(b'"\\\\\\""').string(), b'\\"')

    def test_unterminatedQuoted(self):
        """An unterminated quoted string is a syntax error."""
        self.assertRaises(ParseError, reader(b'"abc').string)

    def test_quotedKeepsUTF8(self):
        """8-bit octets in a quoted string are kept (clients send UTF-8)."""
        self.assertEqual(reader('"caf\u00e9"'.encode()).string(), "caf\u00e9".encode())

    def test_literal(self):
        """A literal's content comes from the next part."""
        r = reader(b"{5}", b"hello", b"")
        self.assertEqual(r.astring(), b"hello")
        r.end()

    def test_literalThenMore(self):
        """After a literal the command goes on in the next line part."""
        r = reader(b"a LOGIN {4}", b"user", b" {6+}", b"secret", b"")
        r.tag()
        r.sp()
        r.keyword()
        r.sp()
        self.assertEqual(r.astring(), b"user")
        r.sp()
        self.assertEqual(r.astring(), b"secret")
        r.end()

    def test_literalFileRead(self):
        """A spooled literal (a file) is read where a string is expected."""
        self.assertEqual(reader(b"{3}", io.BytesIO(b"abc"), b"").string(), b"abc")

    def test_literalTooLongForString(self):
        """A literal over maxString is refused as a string."""
        r = Reader([b"{5}", b"hello", b""], maxString=4)
        self.assertRaises(ParseError, r.string)

    def test_literalFileAllowed(self):
        """APPEND's message literal may stay a file."""
        f = io.BytesIO(b"x" * 10)
        r = Reader([b"{10}", f, b""], maxString=4)
        self.assertIs(r.literal(allowFile=True), f)

    def test_astringAtom(self):
        """An astring may be an atom containing ']'."""
        self.assertEqual(reader(b"a]b").astring(), b"a]b")

    def test_astringStopsAtSpecials(self):
        """An atom ends at a space or a parenthesis."""
        r = reader(b"abc)")
        self.assertEqual(r.astring(), b"abc")
        self.assertEqual(r.peek(), b")")

    def test_nstring(self):
        """NIL is None."""
        self.assertIsNone(reader(b"NIL").nstring())
        self.assertEqual(reader(b'"x"').nstring(), b"x")

    def test_listMailboxWildcards(self):
        """LIST patterns may hold % and *."""
        self.assertEqual(reader(b"Lists/%").listMailbox(), b"Lists/%")
        self.assertEqual(reader(b"*").listMailbox(), b"*")

    def test_spRequired(self):
        """A missing space is a syntax error."""
        self.assertRaises(ParseError, reader(b"x").sp)

    def test_extraArguments(self):
        """end() refuses anything left over."""
        r = reader(b"a b")
        r.atom()
        self.assertRaises(ParseError, r.end)

    def test_numberRange(self):
        """Numbers are 32-bit unsigned."""
        self.assertEqual(reader(b"4294967295").number(), 4294967295)
        self.assertRaises(ParseError, reader(b"4294967296").number)
        self.assertRaises(ParseError, reader(b"0").nzNumber)

    def test_takeMarkRewind(self):
        """take() consumes a run of allowed octets (maybe none); rewind() goes back to a mark."""
        r = reader(b"abc123 x")
        start = r.mark()
        self.assertEqual(r.take(frozenset(b"abc")), b"abc")
        self.assertEqual(r.take(frozenset(b"abc")), b"")
        r.rewind(start)
        self.assertEqual(r.atom(), b"abc123")
        r.sp()
        self.assertEqual(r.atom(), b"x")
        r.end()


class FlagTests(unittest.TestCase):
    """
    Flags and flag lists.
    """

    def test_systemFlagsCanonicalCase(self):
        """System flags are case-insensitive and come back in canonical case."""
        self.assertEqual(reader(b"(\\seen \\DELETED $Junk)").flagList(),
                         ["\\Seen", "\\Deleted", "$Junk"])

    def test_emptyList(self):
        """An empty flag list is allowed."""
        self.assertEqual(reader(b"()").flagList(), [])

    def test_unknownSystemFlagKept(self):
        """An unknown \\Flag is returned as given (the server refuses it)."""
        self.assertEqual(reader(b"(\\Foo)").flagList(), ["\\Foo"])

    def test_eightBitFlag(self):
        """A flag is a 7-bit atom: 8-bit octets are a syntax error, not a keyword."""
        for text in (b"(\xff)", b"(caf\xc3\xa9)", b"(\\S\xe9en)", b"($Junk \xff)"):
            self.assertRaises(ParseError, reader(text).flagList)

    def test_recentParsed(self):
        """\\Recent is parsed (in canonical case); the server refuses to store it."""
        self.assertEqual(reader(b"(\\RECENT)").flagList(), ["\\Recent"])


class DateTests(unittest.TestCase):
    """
    date and date-time.
    """

    def test_dateTime(self):
        """RFC 3501 date-time with a zone -> POSIX time."""
        self.assertEqual(reader(b'"17-Jul-1996 02:44:25 -0700"').dateTime(), 837596665)

    def test_dateTimeSpacePaddedDay(self):
        """A space-padded day is allowed."""
        self.assertEqual(reader(b'" 1-Jan-2000 00:00:00 +0000"').dateTime(), 946684800)

    def test_zoneRange(self):
        """The zone is [+-]HHMM with MM below 60 and at most 14 hours."""
        self.assertEqual(reader(b'"1-Jan-2000 14:00:00 +1400"').dateTime(), 946684800)
        self.assertEqual(reader(b'"31-Dec-1999 12:00:00 -1200"').dateTime(), 946684800)
        for zone in (b"+9999", b"-9999", b"+0060", b"+1460", b"+1401", b"-1500", b"+2300"):
            r = reader(b'"1-Jan-2000 00:00:00 ' + zone + b'"')
            self.assertRaises(ParseError, r.dateTime)

    def test_badDateTime(self):
        """Nonsense is a syntax error."""
        self.assertRaises(ParseError, reader(b'"32-Jan-2000 00:00:00 +0000"').dateTime)
        self.assertRaises(ParseError, reader(b'"1-Foo-2000 00:00:00 +0000"').dateTime)
        self.assertRaises(ParseError, reader(b"1-Jan-2000").dateTime)

    def test_date(self):
        """SEARCH dates, quoted or not, month case-insensitive."""
        self.assertEqual(reader(b"1-feb-1994").date(), datetime.date(1994, 2, 1))
        self.assertEqual(reader(b'"01-Feb-1994"').date(), datetime.date(1994, 2, 1))
        self.assertRaises(ParseError, reader(b"1994-02-01").date)


class IncrementalFramingTests(unittest.TestCase):
    """
    The reader gets a command as the server framed it from the network (lines
    and literals, synchronizing or not); however the client's bytes were split
    across reads, the arguments parsed must be the same.
    """

    STREAM = (b'a1 ID ("name" {5}\r\nhello "version" {3+}\r\n1.0)\r\n'
              b'a2 LOGIN {4+}\r\nuser "pa\\"ss"\r\n'
              b'a3 SEARCH CHARSET UTF-8 BODY {5}\r\ncaf\xc3\xa9 UID 1:*\r\n'
              b'a4 UID FETCH 1:3 (FLAGS BODY.PEEK[HEADER.FIELDS (From {2+}\r\nTo)]<0.10>)\r\n'
              b'a5 STORE 2 (UNCHANGEDSINCE 7) +FLAGS.SILENT (\\Seen $x)\r\n')

    EXPECTED = [
        ({b"name": b"hello", b"version": b"1.0"},),
        (b"user", b'pa"ss'),
        (None, "UTF-8", ("AND", [("BODY", b"caf\xc3\xa9"), ("UID", SequenceSet([(1, None)]))])),
        (SequenceSet([(1, 3)]),
         [FetchAttribute("FLAGS"),
          FetchAttribute("BODY.PEEK", Section((), "HEADER.FIELDS", (b"From", b"To")), (0, 10))],
         {}),
        (SequenceSet([(2, 2)]), "+", True, ["\\Seen", "$x"], 7),
    ]

    def setUp(self):
        # Every command goes to its real argument parser, then to NOOP: only
        # the parse is under test, in any state.
        self.parsed = []
        table = dict(imapServer.COMMANDS)
        for name, parse in (("ID", arguments.args_id), ("LOGIN", arguments.args_login),
                            ("SEARCH", arguments.args_search),
                            ("UID FETCH", arguments.args_fetch),
                            ("STORE", arguments.args_store)):
            table[name] = imapServer.Command(imapServer.ANY, self.recorder(parse), "do_NOOP", None)
        self.patch(imapServer, "COMMANDS", table)

    def recorder(self, parse):
        def record(reader):
            self.parsed.append(parse(reader))
            return ()
        return record

    def feed(self, chunks):
        """Send C{chunks} one read each; return (arguments parsed, server output)."""
        self.parsed = []
        server = imapServer.IMAPServer(imapServer.IMAPSettings(hostname="mail.lab.test"),
                                       None, task.Clock())
        transport = StringTransport()
        server.makeConnection(transport)
        for chunk in chunks:
            server.dataReceived(chunk)
        server.connectionLost(None)
        return self.parsed, transport.value()

    def test_whole(self):
        """The whole stream in one read parses as written, every command answered OK."""
        parsed, output = self.feed([self.STREAM])
        self.assertEqual(parsed, self.EXPECTED)
        self.assertEqual(output.count(b" OK NOOP completed\r\n"), 5)

    def test_everySplitPoint(self):
        """Split in two at every point, the stream parses and is answered as in one read."""
        whole = self.feed([self.STREAM])
        for i in range(1, len(self.STREAM)):
            self.assertEqual(self.feed([self.STREAM[:i], self.STREAM[i:]]), whole, i)

    def test_oneByteAtATime(self):
        """One octet per read, the stream parses and is answered as in one read."""
        whole = self.feed([self.STREAM])
        self.assertEqual(self.feed([self.STREAM[i:i + 1] for i in range(len(self.STREAM))]),
                         whole)

    def test_spooledLiteral(self):
        """A literal too large to keep in memory (spooled to a file) reads the same, split anywhere around it."""
        value = bytes(range(256)) * 300  # above imap.server's SMALL_LITERAL
        self.assertGreater(len(value), imapServer.SMALL_LITERAL)
        stream = b'a1 ID ("big" {%d+}\r\n%s "small" "x")\r\n' % (len(value), value)
        parsed, output = self.feed([stream])
        self.assertEqual(parsed, [({b"big": value, b"small": b"x"},)])
        start = stream.index(b"\r\n") + 2
        end = start + len(value)
        for i in (*range(1, start + 3), *range(end - 3, len(stream)), start + 65536):
            self.assertEqual(self.feed([stream[:i], stream[i:]]), (parsed, output), i)


class GrammarPackageTests(unittest.TestCase):
    """
    L{mailstack.imap.grammar} stays pure: the standard library and its own
    modules only (no Twisted, nothing of the server or the store).
    """

    def test_importsOnlyStandardLibraryAndItself(self):
        """Every import in mailstack/imap/grammar/ names a standard module or a grammar module."""
        directory = os.path.dirname(grammar.__file__)
        outside = []
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                tree = ast.parse(f.read(), name)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imported = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    imported = [node.module or ""]
                else:
                    continue
                outside.extend(
                    "%s: %s" % (name, module) for module in imported
                    if module.split(".")[0] not in sys.stdlib_module_names
                    and module != "mailstack.imap.grammar"
                    and not module.startswith("mailstack.imap.grammar."))
        self.assertEqual(outside, [])
