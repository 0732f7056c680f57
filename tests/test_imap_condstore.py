"""
Tests for CONDSTORE and QRESYNC (RFC 7162) in the IMAP server
(L{mailstack.imap.condstore} and the commands it extends).
"""

import re

from twisted.trial import unittest

from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin


class CondstoreTests(IMAPTestMixin, unittest.TestCase):
    """
    MODSEQ, HIGHESTMODSEQ, CHANGEDSINCE, UNCHANGEDSINCE, SEARCH MODSEQ.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.uids = [self.deliver() for _ in range(3)]
        self.inbox = self.openMailbox("INBOX")

    def modseq(self, uid):
        return self.inbox.messageInfo(uid).modseq

    def test_selectCondstore(self):
        """SELECT (CONDSTORE) reports HIGHESTMODSEQ; plain SELECT does not."""
        self.login()
        out = self.send(b"a SELECT INBOX\r\n")
        self.assertNotIn(b"HIGHESTMODSEQ", out)
        out = self.send(b"b SELECT INBOX (CONDSTORE)\r\n")
        self.assertIn(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % (self.inbox.highestModseq,), out)

    def test_fetchModseqEnables(self):
        """FETCH MODSEQ enables CONDSTORE in the selected mailbox: HIGHESTMODSEQ first."""
        self.select()
        out = self.send(b"a FETCH 1 (MODSEQ)\r\n")
        self.assertEqual(out, b"* OK [HIGHESTMODSEQ %d] Highest\r\n"
                              b"* 1 FETCH (MODSEQ (%d))\r\na OK FETCH completed\r\n"
                         % (self.inbox.highestModseq, self.modseq(1)))
        self.assertTrue(self.server.condstore)

    def test_changedSince(self):
        """CHANGEDSINCE lists only messages changed after it, with MODSEQ."""
        self.select()
        mark = self.inbox.highestModseq
        self.successResultOf(self.inbox.setFlags(2, {"\\Answered"}))
        out = self.send(b"a FETCH 1:* (FLAGS) (CHANGEDSINCE %d)\r\n" % (mark,))
        self.assertIn(b"* 2 FETCH (FLAGS (\\Answered \\Recent) MODSEQ (%d))\r\n"
                      % (self.modseq(2),), out)
        self.assertNotIn(b"* 1 FETCH", out)
        self.assertNotIn(b"* 3 FETCH", out)

    def test_flagChangeByOtherSession(self):
        """Once CONDSTORE is on, another session's flag change arrives with MODSEQ."""
        self.select()
        self.send(b"a FETCH 1 MODSEQ\r\n")
        other = self.connect()
        self.select(other)
        self.send(b"b STORE 3 +FLAGS (\\Seen)\r\n", other)
        self.assertEqual(self.send(b"c NOOP\r\n"),
                         b"* 3 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (%d))\r\n"
                         b"c OK NOOP completed\r\n" % (self.modseq(3),))

    def test_unchangedSince(self):
        """UNCHANGEDSINCE: messages changed since are left alone and named in MODIFIED."""
        self.select()
        mark = self.modseq(1)  # message 1 is the oldest: 2 and 3 have larger modseqs
        out = self.send(b"a STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)\r\n" % (mark,))
        self.assertEqual(out, b"* OK [HIGHESTMODSEQ %d] Highest\r\n"
                              b"* 1 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\n"
                              b"a OK [MODIFIED 2:3] Conditional STORE failed for some messages\r\n"
                         % (self.modseq(3), self.modseq(1)))
        self.assertEqual(self.inbox.messageInfo(2).flags, frozenset())

    def test_unchangedSinceUIDSilent(self):
        """UID STORE ... .SILENT: MODIFIED names UIDs; changed ones still get FETCH MODSEQ."""
        self.select()
        high = self.inbox.highestModseq
        out = self.send(b"a UID STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)\r\n"
                        % (self.modseq(2),))
        self.assertIn(b"* 1 FETCH (UID 1 MODSEQ (%d))\r\n" % (self.modseq(1),), out)
        self.assertIn(b"a OK [MODIFIED 3] Conditional", out)
        self.assertGreater(self.modseq(2), high)

    def test_unchangedSinceZero(self):
        """UNCHANGEDSINCE 0 always fails (RFC 7162 3.1.3)."""
        self.select()
        self.assertIn(b"a OK [MODIFIED 1]", self.send(b"a STORE 1 (UNCHANGEDSINCE 0) FLAGS ()\r\n"))

    def test_searchModseq(self):
        """SEARCH MODSEQ: messages at or above it, with the highest of their modseqs."""
        self.select()
        out = self.send(b'a SEARCH MODSEQ "/flags/\\\\draft" all %d\r\n' % (self.modseq(2),))
        self.assertIn(b"* SEARCH 2 3 (MODSEQ %d)\r\n" % (self.modseq(3),), out)
        self.assertIn(b"* SEARCH\r\n", self.send(b"b SEARCH MODSEQ %d\r\n"
                                                 % (self.inbox.highestModseq + 1,)))

    def test_statusHighestModseq(self):
        """STATUS HIGHESTMODSEQ."""
        self.login()
        self.assertEqual(self.send(b"a STATUS INBOX (HIGHESTMODSEQ)\r\n"),
                         b'* STATUS "INBOX" (HIGHESTMODSEQ %d)\r\na OK STATUS completed\r\n'
                         % (self.inbox.highestModseq,))

    def test_highestModseqMonotonic(self):
        """Expunges raise HIGHESTMODSEQ too."""
        before = self.inbox.highestModseq
        self.successResultOf(self.inbox.expunge([1]))
        self.assertGreater(self.inbox.highestModseq, before)

    def test_disabled(self):
        """Without CONDSTORE: not advertised, its forms are BAD, ENABLE enables nothing."""
        session = self.connect(disabled=frozenset({"CONDSTORE"}), maxBadCommands=20)
        caps = self.send(b"a CAPABILITY\r\n", session)
        self.assertNotIn(b"CONDSTORE", caps)
        self.assertNotIn(b"QRESYNC", caps)  # needs CONDSTORE
        self.login(session)
        self.assertEqual(self.send(b"b ENABLE CONDSTORE QRESYNC\r\n", session),
                         b"* ENABLED\r\nb OK ENABLE completed\r\n")
        self.assertIn(b"c BAD", self.send(b"c STATUS INBOX (HIGHESTMODSEQ)\r\n", session))
        self.assertIn(b"d BAD", self.send(b"d SELECT INBOX (CONDSTORE)\r\n", session))
        self.send(b"e SELECT INBOX\r\n", session)
        self.assertIn(b"f BAD", self.send(b"f FETCH 1 MODSEQ\r\n", session))
        self.assertIn(b"g BAD", self.send(b"g STORE 1 (UNCHANGEDSINCE 5) FLAGS ()\r\n", session))
        self.assertIn(b"h BAD", self.send(b"h SEARCH MODSEQ 5\r\n", session))


class QResyncTests(IMAPTestMixin, unittest.TestCase):
    """
    ENABLE QRESYNC, SELECT (QRESYNC ...), VANISHED, UID FETCH (VANISHED).
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.uids = [self.deliver() for _ in range(5)]
        self.inbox = self.openMailbox("INBOX")
        self.login()
        self.assertEqual(self.send(b"q ENABLE QRESYNC\r\n"),
                         b"* ENABLED QRESYNC\r\nq OK ENABLE completed\r\n")

    def test_needsEnable(self):
        """SELECT (QRESYNC ...) before ENABLE QRESYNC is BAD."""
        session = self.connect()
        self.login(session)
        self.assertIn(b"a BAD", self.send(b"a SELECT INBOX (QRESYNC (1 1))\r\n", session))
        self.assertIn(b"b OK", self.send(b"b SELECT INBOX\r\n", session))
        self.assertIn(b"c BAD", self.send(b"c UID FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)\r\n",
                                          session))

    def test_selectResync(self):
        """VANISHED (EARLIER) and the changed messages since the client's modseq."""
        mark = self.inbox.highestModseq
        self.successResultOf(self.inbox.expunge([2]))
        self.successResultOf(self.inbox.setFlags(4, {"\\Seen"}))
        out = self.send(b"a SELECT INBOX (QRESYNC (%d %d 1:5))\r\n"
                        % (self.inbox.uidValidity, mark))
        lines = out.split(b"\r\n")
        start = lines.index(b"* OK [HIGHESTMODSEQ %d] Highest" % (self.inbox.highestModseq,))
        self.assertEqual(lines[start + 1:], [
            b"* VANISHED (EARLIER) 2",
            b"* 3 FETCH (UID 4 FLAGS (\\Seen \\Recent) MODSEQ (%d))" % (
                self.inbox.messageInfo(4).modseq,),
            b"a OK [READ-WRITE] SELECT completed", b""])

    def test_selectOtherValidity(self):
        """A stale UIDVALIDITY: a plain SELECT, nothing more."""
        out = self.send(b"a SELECT INBOX (QRESYNC (1 1))\r\n")
        self.assertNotIn(b"VANISHED", out)
        self.assertNotIn(b"FETCH", out)

    def test_vanishedFromOtherSession(self):
        """An expunge in another session reaches a QRESYNC session as VANISHED UIDs."""
        self.send(b"a SELECT INBOX\r\n")
        other = self.connect()
        self.select(other)
        self.send(b"b STORE 2:3 +FLAGS.SILENT (\\Deleted)\r\nc EXPUNGE\r\n", other)
        out = self.send(b"d NOOP\r\n")
        self.assertIn(b"* VANISHED 2:3\r\n", out)
        self.assertNotIn(b"EXPUNGE", out)

    def test_expungeReportsHighest(self):
        """EXPUNGE's tagged OK carries HIGHESTMODSEQ; the expunge is VANISHED (and IMAP4rev1's RECENT count left)."""
        self.send(b"a SELECT INBOX\r\nb STORE 1 +FLAGS.SILENT (\\Deleted)\r\n")
        out = self.send(b"c EXPUNGE\r\n")
        self.assertEqual(out, b"* VANISHED 1\r\n* 4 RECENT\r\n"
                         b"c OK [HIGHESTMODSEQ %d] EXPUNGE completed\r\n"
                         % (self.inbox.highestModseq,))

    def test_uidFetchVanished(self):
        """UID FETCH (CHANGEDSINCE n VANISHED): VANISHED (EARLIER) within the set first."""
        self.send(b"a SELECT INBOX\r\n")
        mark = self.inbox.highestModseq
        other = self.connect()
        self.select(other)
        self.send(b"b STORE 1,5 +FLAGS.SILENT (\\Deleted)\r\nc EXPUNGE\r\n", other)
        out = self.send(b"d UID FETCH 2:* FLAGS (CHANGEDSINCE %d VANISHED)\r\n" % (mark,))
        self.assertTrue(out.startswith(b"* VANISHED (EARLIER) 5\r\n"), out)

    def test_closed(self):
        """Selecting another mailbox says [CLOSED] first."""
        self.send(b"a SELECT INBOX\r\n")
        self.assertTrue(self.send(b"b EXAMINE INBOX\r\n").startswith(
            b"* OK [CLOSED] Previous mailbox closed\r\n"))

    def test_unsolicitedFetchHasUID(self):
        """Flag updates from others carry UID and MODSEQ."""
        self.send(b"a SELECT INBOX\r\n")
        self.successResultOf(self.inbox.setFlags(3, {"\\Flagged"}))
        out = self.send(b"b NOOP\r\n")
        self.assertTrue(re.match(
            rb"\* 3 FETCH \(UID 3 FLAGS \(\\Flagged \\Recent\) MODSEQ \(\d+\)\)", out), out)

    def test_qresyncDisabled(self):
        """QRESYNC can be switched off alone; CONDSTORE stays."""
        session = self.connect(disabled=frozenset({"QRESYNC"}))
        caps = self.send(b"a CAPABILITY\r\n", session)
        self.assertIn(b" CONDSTORE", caps)
        self.assertNotIn(b"QRESYNC", caps)
        self.login(session)
        self.assertEqual(self.send(b"b ENABLE QRESYNC\r\n", session),
                         b"* ENABLED\r\nb OK ENABLE completed\r\n")


class CondstoreReselectTests(IMAPTestMixin, unittest.TestCase):
    """
    SELECT (CONDSTORE) while another mailbox is selected.
    """

    def test_highestModseqOfTheNewMailbox(self):
        """Only the new mailbox's HIGHESTMODSEQ is reported."""
        self.createMailbox("Other")
        self.deliver(mailbox="Other")
        self.select()
        out = self.send(b"a SELECT Other (CONDSTORE)\r\n")
        self.assertEqual(out.count(b"HIGHESTMODSEQ"), 1)
        other = self.openMailbox("Other")
        self.assertIn(b"[HIGHESTMODSEQ %d]" % (other.highestModseq,), out)


everyStore(globals())
