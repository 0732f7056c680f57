"""
Tests for L{mailstack.imap.extparser}: the extended command forms.
"""

from twisted.trial import unittest

from mailstack.imap import extparser
from mailstack.imap.grammar.reader import ParseError, Reader
from mailstack.imap.grammar.sequence import SequenceSet


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
        [command] = parse(extparser.args_list, b'"" *')
        self.assertEqual((command.reference, command.patterns, command.extended),
                         (b"", (b"*",), False))

    def test_everything(self):
        """Selection options, a pattern list, return options with STATUS items."""
        [command] = parse(extparser.args_list,
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
            self.assertRaises(ParseError, parse, extparser.args_list, text)


class CreateTests(unittest.TestCase):
    """
    CREATE with USE.
    """

    def test_use(self):
        """USE attributes come back as flags."""
        self.assertEqual(parse(extparser.args_create, b"Bin (USE (\\Trash \\Junk))"),
                         (b"Bin", ("\\Trash", "\\Junk")))
        self.assertEqual(parse(extparser.args_create, b"Bin"), (b"Bin", None))
        self.assertRaises(ParseError, parse, extparser.args_create, b"Bin (FROB (x))")


class CondstoreArgumentTests(unittest.TestCase):
    """
    SELECT parameters, FETCH and STORE modifiers.
    """

    def test_selectParameters(self):
        """CONDSTORE and QRESYNC with known UIDs and sequence match data."""
        mailbox, params = parse(extparser.args_select,
                                b"INBOX (QRESYNC (67890007 20050715194045000 41:211,214:541 "
                                b"(1:15 41:55)) CONDSTORE)")
        self.assertEqual(mailbox, b"INBOX")
        self.assertTrue(params["CONDSTORE"])
        q = params["QRESYNC"]
        self.assertEqual((q.uidValidity, q.modseq), (67890007, 20050715194045000))
        self.assertEqual(q.knownUIDs, SequenceSet([(41, 211), (214, 541)]))
        self.assertEqual(q.sequenceMatch, (SequenceSet([(1, 15)]), SequenceSet([(41, 55)])))
        self.assertEqual(parse(extparser.args_select, b"INBOX (QRESYNC (1 2))")[1]["QRESYNC"],
                         extparser.QResync(1, 2))

    def test_fetchModifiers(self):
        """CHANGEDSINCE (with VANISHED); MODSEQ is a FETCH item."""
        messages, attributes, modifiers = parse(
            extparser.args_fetch, b"1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345 VANISHED)")
        self.assertEqual([a.name for a in attributes], ["FLAGS", "MODSEQ"])
        self.assertEqual(modifiers, {"CHANGEDSINCE": 12345, "VANISHED": True})
        self.assertRaises(ParseError, parse, extparser.args_fetch, b"1 FLAGS (VANISHED)")

    def test_storeUnchangedSince(self):
        """UNCHANGEDSINCE before the flags action."""
        self.assertEqual(
            parse(extparser.args_store, b"1:3 (UNCHANGEDSINCE 9) +FLAGS.SILENT (\\Seen)"),
            (SequenceSet([(1, 3)]), "+", True, ["\\Seen"], 9))
        self.assertEqual(parse(extparser.args_store, b"2 FLAGS x")[-1], None)

    def test_modseqRange(self):
        """Mod-sequences go up to 2^63-1."""
        self.assertEqual(parse(extparser.args_store, b"1 (UNCHANGEDSINCE 9223372036854775807) "
                               b"FLAGS x")[-1], 2 ** 63 - 1)
        self.assertRaises(ParseError, parse, extparser.args_store,
                          b"1 (UNCHANGEDSINCE 9223372036854775808) FLAGS x")
