"""
Several IMAP sessions on one mailbox, exact bytes over StringTransports: who
gets \\Recent, when keywords are announced, MOVE into the selected mailbox,
UIDVALIDITY of a re-created mailbox, commands on messages another session
expunged. Each expectation was checked against Dovecot 2.3 with the same
commands (its replies differ only in their texts' timing suffixes).
"""

import os
import re

from twisted.trial import unittest

from mailstack.storage.account import MaildirStore
from tests.stores import everyStore
from tests.test_imap_server import MESSAGE, IMAPTestMixin

FLAGS = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def appendCommand(tag, mailbox, message=MESSAGE, flags=b""):
    """An APPEND command with a synchronizing-free literal (LITERAL+)."""
    flags = b"(" + flags + b") " if flags else b""
    return b"%s APPEND %s %s{%d+}\r\n%s\r\n" % (tag, mailbox, flags, len(message), message)


class RecentTests(IMAPTestMixin, unittest.TestCase):
    """
    \\Recent: each new message is \\Recent in exactly one read-write session
    (RFC 3501 2.3.2), and EXAMINE takes it from nobody (RFC 3501 6.3.2).
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.other = self.connect()
        self.login(self.other)
        self.createMailbox("Lab")

    def test_appendBySelectedSessionIsRecent(self):
        """A message another session APPENDs (with flags, or without) shows as EXISTS and RECENT."""
        self.select(mailbox=b"Lab")
        self.assertIn(b"a OK [APPENDUID ",
                      self.send(appendCommand(b"a", b"Lab", flags=b"\\Seen"), self.other))
        self.assertEqual(self.send(b"n NOOP\r\n"),
                         b"* 1 EXISTS\r\n* 1 RECENT\r\nn OK NOOP completed\r\n")
        self.assertIn(b"a OK [APPENDUID ", self.send(appendCommand(b"a", b"Lab"), self.other))
        self.assertEqual(self.send(b"n NOOP\r\n"),
                         b"* 2 EXISTS\r\n* 2 RECENT\r\nn OK NOOP completed\r\n")
        self.assertEqual(self.send(b"f FETCH 1:2 FLAGS\r\n"),
                         b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n"
                         b"* 2 FETCH (FLAGS (\\Recent))\r\nf OK FETCH completed\r\n")

    def test_copyIntoSelectedIsRecent(self):
        """A message another session COPYs into the selected mailbox is \\Recent there."""
        self.deliver(flags={"\\Flagged"})
        self.select(mailbox=b"Lab")
        self.send(b"s SELECT INBOX\r\n", self.other)
        self.assertIn(b"c OK [COPYUID ", self.send(b"c COPY 1 Lab\r\n", self.other))
        self.assertEqual(self.send(b"n NOOP\r\n"),
                         b"* 1 EXISTS\r\n* 1 RECENT\r\nn OK NOOP completed\r\n")
        self.assertEqual(self.send(b"f FETCH 1 FLAGS\r\n"),
                         b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\nf OK FETCH completed\r\n")

    def test_examineKeepsRecent(self):
        """EXAMINE shows new messages as \\Recent but leaves them \\Recent for the next SELECT."""
        self.deliver(mailbox="Lab")
        self.login()
        out = self.send(b"e EXAMINE Lab\r\n")
        self.assertIn(b"* 1 EXISTS\r\n* 1 RECENT\r\n", out)
        self.assertEqual(self.send(b"f FETCH 1 FLAGS\r\n"),
                         b"* 1 FETCH (FLAGS (\\Recent))\r\nf OK FETCH completed\r\n")
        self.send(appendCommand(b"a", b"Lab"), self.other)
        self.assertEqual(self.send(b"n NOOP\r\n"),
                         b"* 2 EXISTS\r\n* 2 RECENT\r\nn OK NOOP completed\r\n")
        self.send(b"c CLOSE\r\n")
        self.assertEqual(self.send(b"s STATUS Lab (MESSAGES RECENT)\r\n"),
                         b'* STATUS "Lab" (MESSAGES 2 RECENT 2)\r\ns OK STATUS completed\r\n')
        self.assertIn(b"* 2 EXISTS\r\n* 2 RECENT\r\n", self.send(b"s SELECT Lab\r\n"))
        # Claimed by that SELECT: nobody else sees them as \Recent.
        self.assertIn(b"* 2 EXISTS\r\n* 0 RECENT\r\n", self.send(b"s SELECT Lab\r\n", self.other))

    def test_recentInOneSessionOnly(self):
        """Two sessions with the mailbox selected: a new message is \\Recent in exactly one, RECENT only where its count changed."""
        self.select(mailbox=b"Lab")
        self.send(b"s SELECT Lab\r\n", self.other)
        third = self.connect()
        self.login(third)
        self.send(appendCommand(b"a", b"Lab"), third)
        first = self.send(b"n NOOP\r\n")
        second = self.send(b"n NOOP\r\n", self.other)
        self.assertEqual(first, b"* 1 EXISTS\r\n* 1 RECENT\r\nn OK NOOP completed\r\n")
        self.assertEqual(second, b"* 1 EXISTS\r\nn OK NOOP completed\r\n")
        self.assertEqual(self.send(b"f FETCH 1 FLAGS\r\n", self.other),
                         b"* 1 FETCH (FLAGS ())\r\nf OK FETCH completed\r\n")


class KeywordAnnouncementTests(IMAPTestMixin, unittest.TestCase):
    """
    A keyword is named in a C{* FLAGS} list before any FETCH shows it
    (RFC 3501 7.2.6), however it came: another session's STORE, APPEND or COPY.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.other = self.connect()
        self.login(self.other)

    def flagLines(self, keywords):
        flags = FLAGS + b"".join(b" " + k for k in keywords)
        return (b"* FLAGS (%s)\r\n* OK [PERMANENTFLAGS (%s \\*)] Flags permitted\r\n"
                % (flags, flags))

    def test_storeByOtherSession(self):
        """Another session's STORE of a new keyword: FLAGS list first, then the FETCH."""
        self.deliver(flags={"\\Seen"})
        self.select()
        self.send(b"s SELECT INBOX\r\n", self.other)
        self.assertEqual(self.send(b"t STORE 1 +FLAGS ($Other)\r\n", self.other),
                         self.flagLines([b"$Other"])
                         + b"* 1 FETCH (FLAGS (\\Seen $Other))\r\nt OK STORE completed\r\n")
        self.assertEqual(self.send(b"n NOOP\r\n"),
                         self.flagLines([b"$Other"])
                         + b"* 1 FETCH (FLAGS (\\Seen \\Recent $Other))\r\n"
                           b"n OK NOOP completed\r\n")

    def test_appendWithKeyword(self):
        """A message APPENDed elsewhere with a new keyword: the FLAGS list at the next NOOP, before EXISTS, as Dovecot."""
        self.select()
        self.send(appendCommand(b"a", b"INBOX", flags=b"\\Seen $Fresh"), self.other)
        out = self.send(b"n NOOP\r\n")
        self.assertEqual(out, self.flagLines([b"$Fresh"])
                         + b"* 1 EXISTS\r\n* 1 RECENT\r\nn OK NOOP completed\r\n")
        # Announced once: FETCH has no FLAGS list.
        self.assertEqual(self.send(b"f FETCH 1 FLAGS\r\n"),
                         b"* 1 FETCH (FLAGS (\\Seen \\Recent $Fresh))\r\nf OK FETCH completed\r\n")

    def test_appendWithKeywordOwnAnswer(self):
        """APPEND of a new keyword into the selected mailbox: its own answer has the FLAGS list, before EXISTS, as Dovecot."""
        self.select()
        out = self.send(appendCommand(b"a", b"INBOX", flags=b"$Fresh"))
        self.assertTrue(out.startswith(self.flagLines([b"$Fresh"]) + b"* 1 EXISTS\r\n"), out)
        self.assertEqual(self.send(b"n NOOP\r\n"), b"n OK NOOP completed\r\n")

    def test_copyWithKeyword(self):
        """A message COPYed in with a keyword the session never saw: FLAGS list first."""
        self.createMailbox("Lab")
        self.deliver(flags={"$Copied"}, mailbox="Lab")
        self.select()
        self.send(b"s SELECT Lab\r\n", self.other)
        self.send(b"c COPY 1 INBOX\r\n", self.other)
        self.assertEqual(self.send(b"n NOOP\r\n"), self.flagLines([b"$Copied"])
                         + b"* 1 EXISTS\r\n* 1 RECENT\r\nn OK NOOP completed\r\n")
        self.assertEqual(self.send(b"f FETCH 1 FLAGS\r\n"),
                         b"* 1 FETCH (FLAGS (\\Recent $Copied))\r\nf OK FETCH completed\r\n")

    def test_selectListsKeywords(self):
        """SELECT's FLAGS list names the keywords already in the mailbox."""
        self.deliver(flags={"$Known"})
        out = self.select()
        self.assertTrue(out.startswith(self.flagLines([b"$Known"])), out)


class MoveToSelfTests(IMAPTestMixin, unittest.TestCase):
    """
    MOVE and UID MOVE into the selected mailbox itself (RFC 6851): the original
    is expunged and the copy announced, as Dovecot does. No RECENT: the copy
    is \\Recent as the original was, so the count did not change (Dovecot
    sends RECENT only when it changes).
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver()
        out = self.select()
        self.validity = int(re.search(rb"UIDVALIDITY (\d+)", out).group(1))

    def test_uidMoveToSelf(self):
        """UID MOVE 1 INBOX: COPYUID, EXPUNGE of the original, EXISTS for the copy."""
        self.assertEqual(self.send(b"m UID MOVE 1 INBOX\r\n"),
                         b"* OK [COPYUID %d 1 2] Moved\r\n* 1 EXPUNGE\r\n* 1 EXISTS\r\n"
                         b"m OK MOVE completed\r\n" % (self.validity,))
        self.assertEqual(self.send(b"f UID FETCH 1:* UID\r\n"),
                         b"* 1 FETCH (UID 2)\r\nf OK FETCH completed\r\n")
        self.assertEqual(len(self.openMailbox("INBOX").messages()), 1)

    def test_moveToSelf(self):
        """MOVE 1 INBOX: the same, by sequence number."""
        out = self.send(b"m MOVE 1 INBOX\r\n")
        self.assertEqual(out, b"* OK [COPYUID %d 1 2] Moved\r\n* 1 EXPUNGE\r\n* 1 EXISTS\r\n"
                              b"m OK MOVE completed\r\n" % (self.validity,))


class RecreatedMailboxTests(IMAPTestMixin, unittest.TestCase):
    """
    A mailbox deleted and created again gets another UIDVALIDITY, even in the
    same second (RFC 3501 2.3.1.1), also after a RENAME away.
    """

    def validity(self, name):
        out = self.send(b"s STATUS %s (UIDVALIDITY)\r\n" % (name,))
        return int(re.search(rb"UIDVALIDITY (\d+)", out).group(1))

    def test_deleteCreate(self):
        """DELETE then CREATE of the same name: a new UIDVALIDITY every time."""
        self.login()
        seen = set()
        for _ in range(3):
            self.assertIn(b"c OK", self.send(b"c CREATE Lab\r\n"))
            seen.add(self.validity(b"Lab"))
            self.assertIn(b"d OK", self.send(b"d DELETE Lab\r\n"))
        self.assertEqual(len(seen), 3)

    def test_renameAwayCreate(self):
        """RENAME Lab Old, CREATE Lab: Lab's UIDVALIDITY differs from the old one's."""
        self.login()
        self.send(b"c CREATE Lab\r\n")
        before = self.validity(b"Lab")
        self.assertIn(b"r OK", self.send(b"r RENAME Lab Old\r\n"))
        self.send(b"c CREATE Lab\r\n")
        self.assertNotEqual(self.validity(b"Lab"), before)


class ExpungedElsewhereTests(IMAPTestMixin, unittest.TestCase):
    """
    Commands on messages another session expunged, before this session was
    told (RFC 2180 4): STORE and FETCH answer OK, COPY NO [EXPUNGEISSUED] (all
    or nothing), as Dovecot.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.uids = [self.deliver() for _ in range(3)]
        self.select()
        self.successResultOf(self.openMailbox("INBOX").expunge([self.uids[1]]))

    def test_store(self):
        """STORE 1:3 +FLAGS: the living messages change, the reply is OK."""
        out = self.send(b"a STORE 1:3 +FLAGS (\\Seen)\r\n")
        self.assertEqual(out, b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n"
                              b"* 3 FETCH (FLAGS (\\Seen \\Recent))\r\na OK STORE completed\r\n")

    def test_fetch(self):
        """FETCH 1:3: the living messages are answered, OK [EXPUNGEISSUED]."""
        out = self.send(b"a FETCH 1:3 UID\r\n")
        self.assertEqual(out, b"* 1 FETCH (UID 1)\r\n* 3 FETCH (UID 3)\r\n"
                              b"a OK [EXPUNGEISSUED] Some messages were already expunged\r\n")

    def test_copy(self):
        """COPY 1:3: nothing copied, NO [EXPUNGEISSUED]."""
        self.createMailbox("Lab")
        out = self.send(b"a COPY 1:3 Lab\r\n")
        self.assertEqual(out, b"* 2 EXPUNGE\r\n* 2 RECENT\r\n"
                              b"a NO [EXPUNGEISSUED] Some of the requested messages no longer "
                              b"exist\r\n")
        self.assertEqual(self.openMailbox("Lab").messages(), [])
        self.assertEqual(self.send(b"n NOOP\r\n"), b"n OK NOOP completed\r\n")


class LockedNewMailboxTests(IMAPTestMixin, unittest.TestCase):
    """
    A mailbox with no dovecot-uidlist yet while another program holds its lock:
    nothing to number its messages with, so SELECT and STATUS answer NO [INUSE]
    (RFC 5530) at once, and work once the lock is gone.
    """

    maildirOnly = True

    def test_selectWhileLocked(self):
        """SELECT/STATUS of an unnumbered, locked mailbox: NO [INUSE]; after the lock: OK."""
        self.createMailbox("Lab")
        path = self.openMailbox("Lab").path
        os.unlink(os.path.join(path, "dovecot-uidlist"))
        lock = os.path.join(path, "dovecot-uidlist.lock")
        open(lock, "x").close()
        # A server process that has not opened the mailbox yet.
        self.store = MaildirStore(self.store.root)
        self.portal.realm.store = self.store
        session = self.connect()
        self.login(session)
        out = self.send(b"s SELECT Lab\r\n", session)
        self.assertTrue(out.endswith(b"s NO [INUSE] mailbox Lab is locked by another program; "
                                     b"try again\r\n"), out)
        self.assertIn(b"t NO [INUSE]", self.send(b"t STATUS Lab (UIDVALIDITY)\r\n", session))
        os.unlink(lock)
        self.assertIn(b"s OK [READ-WRITE]", self.send(b"s SELECT Lab\r\n", session))


class UpdateOrderTests(IMAPTestMixin, unittest.TestCase):
    """
    Another session's flag changes and expunges told together, in Dovecot
    2.3's order: the FETCHes first, numbered as the client knows the
    messages, then the EXPUNGEs (or VANISHED), then RECENT.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        for _ in range(4):
            self.deliver()

    def changeElsewhere(self, enable=None):
        """This session selects INBOX (after ENABLE C{enable}); another flags 2 and 4 and expunges 2."""
        self.login()
        if enable is not None:
            self.send(b"e ENABLE " + enable + b"\r\n")
        self.send(b"s SELECT INBOX\r\n")
        other = self.connect()
        self.login(other)
        self.send(b"s SELECT INBOX\r\n", other)
        self.send(b"a STORE 2,4 +FLAGS.SILENT (\\Deleted)\r\nb UID EXPUNGE 2\r\n", other)

    def test_fetchBeforeExpunge(self):
        """NOOP: message 4's flag change as * 4 FETCH (its number before the expunge), then * 2 EXPUNGE."""
        self.changeElsewhere()
        self.assertEqual(self.send(b"n NOOP\r\n"),
                         b"* 4 FETCH (FLAGS (\\Deleted \\Recent))\r\n* 2 EXPUNGE\r\n"
                         b"* 3 RECENT\r\nn OK NOOP completed\r\n")
        self.assertEqual(self.send(b"f FETCH 3 (UID FLAGS)\r\n"),
                         b"* 3 FETCH (UID 4 FLAGS (\\Deleted \\Recent))\r\nf OK FETCH completed\r\n")

    def test_fetchBeforeVanished(self):
        """With QRESYNC: * 4 FETCH (UID 4 ...) first, then * VANISHED 2."""
        self.changeElsewhere(b"QRESYNC")
        out = self.send(b"n NOOP\r\n")
        self.assertTrue(re.match(rb"\* 4 FETCH \(UID 4 FLAGS \(\\Deleted \\Recent\) MODSEQ \(\d+\)\)\r\n"
                                 rb"\* VANISHED 2\r\n\* 3 RECENT\r\nn OK NOOP completed\r\n$", out),
                        out)

    def test_expungeWaitsDuringFetch(self):
        """FETCH: the flag change is told (numbered as known), the EXPUNGE waits for the next NOOP."""
        self.changeElsewhere()
        self.assertEqual(self.send(b"f FETCH 1 UID\r\n"),
                         b"* 1 FETCH (UID 1)\r\n* 4 FETCH (FLAGS (\\Deleted \\Recent))\r\n"
                         b"f OK FETCH completed\r\n")
        self.assertEqual(self.send(b"n NOOP\r\n"),
                         b"* 2 EXPUNGE\r\n* 3 RECENT\r\nn OK NOOP completed\r\n")


class UnchangedStoreTests(IMAPTestMixin, unittest.TestCase):
    """
    STORE answers FETCH only for the messages whose flags it changed, as
    Dovecot 2.3 does; a message it leaves as it was gets none; another
    session's earlier change to a message it stores to is still told.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver(flags={"\\Seen"})
        self.deliver()
        self.select()

    def test_alreadySet(self):
        """+FLAGS (\\Seen) on 1:2 where 1 has it: one FETCH, for 2."""
        self.assertEqual(self.send(b"s STORE 1:2 +FLAGS (\\Seen)\r\n"),
                         b"* 2 FETCH (FLAGS (\\Seen \\Recent))\r\ns OK STORE completed\r\n")
        self.assertEqual(self.send(b"s UID STORE 1:2 +FLAGS (\\Seen)\r\n"),
                         b"s OK STORE completed\r\n")
        self.assertEqual(self.send(b"s STORE 1 -FLAGS (\\Draft)\r\n"), b"s OK STORE completed\r\n")
        self.assertEqual(self.send(b"s STORE 2 FLAGS (\\Seen)\r\n"), b"s OK STORE completed\r\n")

    def test_otherSessionsChangeTold(self):
        """Another session flagged 1 before an unchanged STORE to it: that change is told, numbered as known."""
        other = self.connect()
        self.login(other)
        self.send(b"s SELECT INBOX\r\n", other)
        self.send(b"f STORE 1 +FLAGS.SILENT (\\Flagged)\r\n", other)
        self.assertEqual(self.send(b"s STORE 1 +FLAGS (\\Seen)\r\n"),
                         b"* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent))\r\ns OK STORE completed\r\n")
        self.assertEqual(self.send(b"n NOOP\r\n"), b"n OK NOOP completed\r\n")

    def test_silentStoreTellsOtherChange(self):
        """STORE .SILENT to a message another session changed: that change is still told (current flags), as Dovecot."""
        other = self.connect()
        self.login(other)
        self.send(b"s SELECT INBOX\r\n", other)
        self.send(b"f STORE 2 +FLAGS.SILENT (\\Flagged)\r\n", other)
        self.assertEqual(self.send(b"s STORE 2 +FLAGS.SILENT (\\Answered)\r\n"),
                         b"* 2 FETCH (FLAGS (\\Answered \\Flagged \\Recent))\r\n"
                         b"s OK STORE completed\r\n")
        self.assertEqual(self.send(b"n NOOP\r\n"), b"n OK NOOP completed\r\n")


everyStore(globals())
