"""
Tests for L{mailstack.imap.metadata}: FETCH of metadata alone (UID, FLAGS,
RFC822.SIZE, INTERNALDATE, MODSEQ) answered from rendered pieces kept per
store, in batches. It must answer byte for byte as the general FETCH path
does. Sessions over a StringTransport, on both stores.
"""

from twisted.trial import unittest

from mailstack.imap import metadata
from mailstack.imap.grammar.fetchspec import FetchAttribute, Section
from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin

MESSAGE = b"From: a@lab.test\r\nSubject: %d\r\n\r\nbody %d\r\n"

COMMANDS = [
    b"FETCH 1:* (FLAGS RFC822.SIZE)",
    b"FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)",
    b"UID FETCH 1:* (FLAGS)",
    b"FETCH 2,4:5 (RFC822.SIZE UID)",
    b"FETCH 1:* FAST",
    b"FETCH 1:* (FLAGS MODSEQ)",
]


class MetadataFetchTests(IMAPTestMixin, unittest.TestCase):
    """FETCH of metadata alone, compared with the general path."""

    def setUp(self):
        IMAPTestMixin.setUp(self)
        for n in range(7):
            self.deliver(MESSAGE % (n, n), flags=("\\Seen",) if n % 2 else ())
        self.login()
        claim = self.connect()  # an earlier session has claimed \Recent
        self.login(claim)
        self.send(b"s SELECT INBOX\r\n", claim)

    def general(self, command, session=None):
        """The answer of the general FETCH path (the batched one switched off)."""
        applies = metadata.applies
        metadata.applies = lambda attributes: False
        try:
            return self.send(b"g " + command + b"\r\n", session)
        finally:
            metadata.applies = applies

    def test_sameBytes(self):
        """Each metadata FETCH answers exactly what the general path answers, twice over
        (the second from the kept pieces)."""
        self.send(b"s SELECT INBOX\r\n")
        for command in COMMANDS:
            self.send(b"w " + command + b"\r\n")  # MODSEQ enables CONDSTORE: once
            expected = self.general(command)
            self.assertIn(b" FETCH (", expected)
            self.assertEqual(self.send(b"g " + command + b"\r\n"), expected)
            self.assertEqual(self.send(b"g " + command + b"\r\n"), expected)

    def test_flagsChangedElsewhere(self):
        """Flags another session changed show at once: a changed message is rendered anew."""
        twin, other = self.twins()
        self.send(b"f FETCH 1:* (FLAGS)\r\n")
        self.send(b"t STORE 3 +FLAGS.SILENT (\\Flagged)\r\n", other)
        out = self.send(b"f FETCH 3 (FLAGS)\r\n")
        self.assertIn(b"* 3 FETCH (FLAGS (\\Flagged))\r\nf OK", out)
        self.assertEqual(out, self.general(b"FETCH 3 (FLAGS)", twin).replace(b"g OK", b"f OK"))

    def test_recentPerSession(self):
        """\\Recent is shown only to the session that has it, though the pieces are shared."""
        self.deliver(MESSAGE % (8, 8))
        first = self.connect()
        self.login(first)
        self.send(b"s SELECT INBOX\r\n", first)  # claims \Recent
        self.send(b"s SELECT INBOX\r\n")
        mine = self.send(b"f FETCH 8 (FLAGS)\r\n", first)
        theirs = self.send(b"f FETCH 8 (FLAGS)\r\n")
        self.assertIn(b"\\Recent", mine)
        self.assertNotIn(b"\\Recent", theirs)
        self.assertEqual(self.send(b"f FETCH 8 (FLAGS)\r\n", first), mine)

    def twins(self):
        """Two sessions with INBOX selected, and a third that changes it."""
        self.send(b"s SELECT INBOX\r\n")
        twin = self.connect()
        self.login(twin)
        self.send(b"s SELECT INBOX\r\n", twin)
        other = self.connect()
        self.login(other)
        self.send(b"s SELECT INBOX\r\n", other)
        return twin, other

    def test_keywordAnnouncedFirst(self):
        """A keyword set by another session is announced by * FLAGS before the FETCH
        that first shows it (RFC 3501 7.2.6), as on the general path."""
        twin, other = self.twins()
        self.send(b"t STORE 2 +FLAGS.SILENT (Urgent)\r\n", other)
        out = self.send(b"f FETCH 1:* (FLAGS)\r\n")
        self.assertLess(out.index(b"* FLAGS ("), out.index(b"* 2 FETCH (FLAGS (\\Seen Urgent))"))
        self.assertEqual(out, self.general(b"FETCH 1:* (FLAGS)", twin).replace(b"g OK", b"f OK"))

    def test_expungedMeanwhile(self):
        """A message expunged by another session but not yet reported is left out with
        OK [EXPUNGEISSUED], as on the general path."""
        twin, other = self.twins()
        self.send(b"t STORE 2 +FLAGS.SILENT (\\Deleted)\r\nx EXPUNGE\r\n", other)
        out = self.send(b"f FETCH 1:3 (FLAGS)\r\n")
        self.assertNotIn(b"* 2 FETCH", out)
        self.assertIn(b"f OK [EXPUNGEISSUED]", out)
        self.assertEqual(out, self.general(b"FETCH 1:3 (FLAGS)", twin).replace(b"g OK", b"f OK"))

    def test_numbersPerSession(self):
        """Two sessions that number the messages differently (one was told of an
        expunge, the other not yet) each get their own numbers, though lines are shared."""
        twin, other = self.twins()
        self.send(b"t STORE 2 +FLAGS.SILENT (\\Deleted)\r\nx EXPUNGE\r\n", other)
        self.send(b"n NOOP\r\n")  # this session is told: old 3 is now 2
        for _ in range(2):
            told = self.send(b"f FETCH 1:* (FLAGS)\r\n")
            self.assertIn(b"* 2 FETCH (FLAGS ())\r\n* 3 FETCH (FLAGS (\\Seen))\r\n", told)
            untold = self.send(b"f FETCH 1:* (FLAGS)\r\n", twin)
            self.assertNotIn(b"* 2 FETCH", untold)
            self.assertIn(b"* 3 FETCH (FLAGS ())\r\n* 4 FETCH (FLAGS (\\Seen))\r\n", untold)

    def test_bounded(self):
        """The lines kept over all mailboxes are bounded: opening another mailbox's
        lines drops the least recently used mailbox's first."""
        self.patch(metadata, "MAX_KEPT", 10)
        self.createMailbox("Other")
        for n in range(5):
            self.deliver(MESSAGE % (n, n), mailbox="Other")
        self.send(b"s SELECT INBOX\r\n")
        self.send(b"f FETCH 1:* (FLAGS)\r\n")
        self.assertGreaterEqual(metadata.keptLines(), 7)
        self.send(b"s SELECT Other\r\n")
        out = self.send(b"f FETCH 1:* (FLAGS)\r\n")
        self.assertEqual(out.count(b" FETCH ("), 5)
        self.assertLessEqual(metadata.keptLines(), 10)

    def test_boundedWithinOneMailbox(self):
        """A mailbox growing past the bound after its first FETCH keeps no more lines than
        the bound, and the FETCH still answers every message."""
        self.patch(metadata, "MAX_KEPT", 10)
        self.send(b"s SELECT INBOX\r\n")
        self.send(b"f FETCH 1:* (FLAGS)\r\n")
        for n in range(8):
            self.deliver(MESSAGE % (n, n))
        self.send(b"n NOOP\r\n")
        out = self.send(b"f FETCH 1:* (FLAGS)\r\n")
        self.assertEqual(out.count(b" FETCH ("), 15)
        self.assertLessEqual(metadata.keptLines(), 10)

    def test_repeatedItemsNotKept(self):
        """An item list naming an item many times is answered but nothing is kept of it
        (kilobytes per message a client could pin in memory)."""
        self.send(b"s SELECT INBOX\r\n")
        before = metadata.keptLines()
        out = self.send(b"f FETCH 1 (" + b"UID " * 200 + b"FLAGS)\r\n")
        self.assertEqual(out.count(b"UID "), 200)
        self.assertEqual(metadata.keptLines(), before)

    def test_batches(self):
        """Many messages go out in a few writes, not one per message."""
        for n in range(600):
            self.deliver(MESSAGE % (n, n))
        self.send(b"s SELECT INBOX\r\n")
        pieces = []
        real = metadata.fetchLines

        def counting(*args):
            for piece in real(*args):
                pieces.append(piece)
                yield piece
        self.patch(metadata, "fetchLines", counting)
        out = self.send(b"f FETCH 1:* (FLAGS RFC822.SIZE)\r\n")
        self.assertEqual(out.count(b" FETCH ("), 607)
        self.assertLessEqual(len(pieces), 5)

    def test_notForBodies(self):
        """Items that read the message (or set \\Seen) take the general path."""
        self.assertTrue(metadata.applies([FetchAttribute("FLAGS"), FetchAttribute("UID"),
                                          FetchAttribute("RFC822.SIZE")]))
        self.assertFalse(metadata.applies([]))
        for extra in (FetchAttribute("BODY", Section()), FetchAttribute("ENVELOPE"),
                      FetchAttribute("BODY.PEEK", Section((), "HEADER")),
                      FetchAttribute("RFC822.HEADER"), FetchAttribute("BINARY.SIZE", Section((1,))),
                      FetchAttribute("PREVIEW"), FetchAttribute("BODYSTRUCTURE")):
            self.assertFalse(metadata.applies([FetchAttribute("FLAGS"), extra]), extra)


everyStore(globals())
