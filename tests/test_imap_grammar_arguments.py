"""
Tests for L{mailstack.imap.grammar.arguments}: each command's arguments,
extended forms (LIST-EXTENDED, CREATE USE, CONDSTORE/QRESYNC) included.
"""

from twisted.trial import unittest

from mailstack.imap.grammar.appendspec import AppendMessage
from mailstack.imap.grammar import arguments
from mailstack.imap.grammar.reader import ParseError, Reader
from mailstack.imap.grammar.sequence import SequenceSet


def reader(*parts):
    return Reader(list(parts))


def parse(function, text):
    reader = Reader([text])
    result = function(reader)
    reader.end()
    return result


class ListTests(unittest.TestCase):
    """
    LIST, basic and extended.
    """

    def test_basic(self):
        """The RFC 3501 form is not extended."""
        [command] = parse(arguments.args_list, b'"" *')
        self.assertEqual((command.reference, command.patterns, command.extended),
                         (b"", (b"*",), False))

    def test_everything(self):
        """Selection options, a pattern list, return options with STATUS items."""
        [command] = parse(arguments.args_list,
                          b'(SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" %) RETURN '
                          b'(CHILDREN STATUS (MESSAGES HIGHESTMODSEQ))')
        self.assertEqual(command.selection, {"SUBSCRIBED", "RECURSIVEMATCH"})
        self.assertEqual(command.patterns, (b"INBOX", b"%"))
        self.assertEqual(command.returns, {"CHILDREN", "STATUS", "SUBSCRIBED"})
        self.assertEqual(command.statusItems, ("MESSAGES", "HIGHESTMODSEQ"))
        self.assertTrue(command.extended)

    def test_errors(self):
        """Unknown options, RECURSIVEMATCH alone, empty pattern lists are errors."""
        for text in (b'(FROB) "" *', b'(RECURSIVEMATCH) "" *', b'"" ()',
                     b'"" * RETURN (FROB)', b'"" * RETURN (STATUS ())'):
            self.assertRaises(ParseError, parse, arguments.args_list, text)


class CreateTests(unittest.TestCase):
    """
    CREATE with USE.
    """

    def test_use(self):
        """USE attributes come back as flags."""
        self.assertEqual(parse(arguments.args_create, b"Bin (USE (\\Trash \\Junk))"),
                         (b"Bin", ("\\Trash", "\\Junk")))
        self.assertEqual(parse(arguments.args_create, b"Bin"), (b"Bin", None))
        self.assertRaises(ParseError, parse, arguments.args_create, b"Bin (FROB (x))")


class CondstoreArgumentTests(unittest.TestCase):
    """
    SELECT parameters, FETCH and STORE modifiers.
    """

    def test_selectParameters(self):
        """CONDSTORE and QRESYNC with known UIDs and sequence match data."""
        mailbox, params = parse(arguments.args_select,
                                b"INBOX (QRESYNC (67890007 20050715194045000 41:211,214:541 "
                                b"(1:15 41:55)) CONDSTORE)")
        self.assertEqual(mailbox, b"INBOX")
        self.assertTrue(params["CONDSTORE"])
        q = params["QRESYNC"]
        self.assertEqual((q.uidValidity, q.modseq), (67890007, 20050715194045000))
        self.assertEqual(q.knownUIDs, SequenceSet([(41, 211), (214, 541)]))
        self.assertEqual(q.sequenceMatch, (SequenceSet([(1, 15)]), SequenceSet([(41, 55)])))
        self.assertEqual(parse(arguments.args_select, b"INBOX (QRESYNC (1 2))")[1]["QRESYNC"],
                         arguments.QResync(1, 2))

    def test_fetchModifiers(self):
        """CHANGEDSINCE (with VANISHED); MODSEQ is a FETCH item."""
        messages, attributes, modifiers = parse(
            arguments.args_fetch, b"1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345 VANISHED)")
        self.assertEqual([a.name for a in attributes], ["FLAGS", "MODSEQ"])
        self.assertEqual(modifiers, {"CHANGEDSINCE": 12345, "VANISHED": True})
        self.assertRaises(ParseError, parse, arguments.args_fetch, b"1 FLAGS (VANISHED)")

    def test_storeUnchangedSince(self):
        """UNCHANGEDSINCE before the flags action."""
        self.assertEqual(
            parse(arguments.args_store, b"1:3 (UNCHANGEDSINCE 9) +FLAGS.SILENT (\\Seen)"),
            (SequenceSet([(1, 3)]), "+", True, ["\\Seen"], 9))
        self.assertEqual(parse(arguments.args_store, b"2 FLAGS x")[-1], None)

    def test_modseqRange(self):
        """Mod-sequences go up to 2^63-1."""
        self.assertEqual(parse(arguments.args_store, b"1 (UNCHANGEDSINCE 9223372036854775807) "
                               b"FLAGS x")[-1], 2 ** 63 - 1)
        self.assertRaises(ParseError, parse, arguments.args_store,
                          b"1 (UNCHANGEDSINCE 9223372036854775808) FLAGS x")


class CommandArgumentTests(unittest.TestCase):
    """
    Per-command argument parsers.
    """

    def test_appendAll(self):
        """APPEND with flags and date."""
        r = reader(b'INBOX (\\Seen) "17-Jul-1996 02:44:25 -0700" {3}', b"abc", b"")
        self.assertEqual(arguments.args_append(r),
                         (b"INBOX", [AppendMessage(("\\Seen",), 837596665, b"abc")]))

    def test_appendNoFlags(self):
        """APPEND without flags or date (stock Twisted crashes on this)."""
        r = reader(b"INBOX {3}", b"abc", b"")
        self.assertEqual(arguments.args_append(r), (b"INBOX", [AppendMessage((), None, b"abc")]))

    def test_appendNeedsLiteral(self):
        """The message must be a literal."""
        self.assertRaises(ParseError, arguments.args_append, reader(b'INBOX "abc"'))

    def test_store(self):
        """+FLAGS.SILENT with a list, and FLAGS with bare flags."""
        self.assertEqual(arguments.args_store(reader(b"1:2 +FLAGS.SILENT (\\Seen)")),
                         (SequenceSet([(1, 2)]), "+", True, ["\\Seen"], None))
        self.assertEqual(arguments.args_store(reader(b"* FLAGS \\Seen $x")),
                         (SequenceSet([(None, None)]), "", False, ["\\Seen", "$x"], None))

    def test_storeBadItem(self):
        """Only FLAGS variants."""
        self.assertRaises(ParseError, arguments.args_store, reader(b"1 +LABELS (x)"))

    def test_status(self):
        """STATUS items, case-insensitive, CONDSTORE's HIGHESTMODSEQ included."""
        self.assertEqual(arguments.args_status(reader(b"INBOX (messages UIDNEXT highestmodseq)")),
                         (b"INBOX", ["MESSAGES", "UIDNEXT", "HIGHESTMODSEQ"]))
        self.assertRaises(ParseError, arguments.args_status, reader(b"INBOX (BOGUS)"))

    def test_authenticate(self):
        """A mechanism with an optional initial response, passed on as sent for the SASL decoder."""
        self.assertEqual(arguments.args_authenticate(reader(b"plain")), ("PLAIN", None))
        self.assertEqual(arguments.args_authenticate(reader(b"PLAIN ")), ("PLAIN", None))
        for initial in (b"AGFAYg==", b"=", b"*", b"!!"):
            self.assertEqual(arguments.args_authenticate(reader(b"PLAIN " + initial)),
                             ("PLAIN", initial))
        self.assertRaises(ParseError, arguments.args_authenticate, reader(b"PLAIN  x"))

    def test_id(self):
        """ID with pairs, or NIL."""
        self.assertEqual(arguments.args_id(reader(b'("name" "x" "version" NIL)')),
                         ({b"name": b"x", b"version": None},))
        self.assertEqual(arguments.args_id(reader(b"NIL")), (None,))
        self.assertRaises(ParseError, arguments.args_id, reader(b'("name")'))

    def test_lsub(self):
        """LSUB reference and pattern."""
        self.assertEqual(arguments.args_lsub(reader(b'"" *')), (b"", b"*"))
        self.assertEqual(arguments.args_lsub(reader(b'"" ""')), (b"", b""))

    def test_enable(self):
        """ENABLE capability names."""
        self.assertEqual(arguments.args_enable(reader(b"condstore qresync")),
                         (["CONDSTORE", "QRESYNC"],))
