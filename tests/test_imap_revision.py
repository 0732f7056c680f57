"""
Tests for IMAP4rev2 (RFC 9051) beside IMAP4rev1 and for UTF-8 mailbox names
(L{mailstack.imap.revision}): the rules alone, then each rule in both modes
over a StringTransport, on both stores.
"""

import os

from twisted.trial import unittest

from mailstack.imap.mailbox import BadMailboxName
from mailstack.imap.response import Refusal
from mailstack.imap.revision import REV2_NEEDS, Revision, rev2Offered
from tests.stores import everyStore
from tests.test_imap_server import MESSAGE, IMAPTestMixin


def enabledExcept(*off):
    """An C{extensionEnabled} for a listener that switched C{off} off."""
    return lambda name: name not in off


class RuleTests(unittest.TestCase):
    """
    L{Revision} and L{rev2Offered}, pure.
    """

    def test_offered(self):
        """IMAP4rev2 is offered unless it, or something it folds in, is switched off."""
        self.assertTrue(rev2Offered(enabledExcept()))
        self.assertFalse(rev2Offered(enabledExcept("IMAP4REV2")))
        for name in REV2_NEEDS:
            self.assertFalse(rev2Offered(enabledExcept(name)), name)
        self.assertTrue(rev2Offered(enabledExcept("LITERAL+")))  # LITERAL- is enough
        self.assertFalse(rev2Offered(enabledExcept("LITERAL+", "LITERAL-")))

    def test_enable(self):
        """ENABLE names IMAP4rev2 in any case and answers it canonically; others are not ours."""
        revision = Revision()
        self.assertIsNone(revision.enable("CONDSTORE", enabledExcept()))
        self.assertIsNone(revision.enable("IMAP4REV2", enabledExcept("ESEARCH")))
        self.assertFalse(revision.rev2)
        self.assertEqual(revision.enable("IMAP4REV2", enabledExcept()), "IMAP4rev2")
        self.assertTrue(revision.rev2)

    def test_enableUtf8(self):
        """ENABLE UTF8=ACCEPT turns on UTF-8 names only; switched off it enables nothing."""
        revision = Revision()
        self.assertIsNone(revision.enable("UTF8=ACCEPT", enabledExcept("UTF8=ACCEPT")))
        self.assertFalse(revision.utf8Names)
        self.assertEqual(revision.enable("utf8=accept", enabledExcept()), "UTF8=ACCEPT")
        self.assertTrue(revision.utf8Names)
        self.assertFalse(revision.rev2)
        self.assertTrue(revision.showsRecent)

    def test_names(self):
        """Modified UTF-7 in IMAP4rev1, UTF-8 in IMAP4rev2, the same store names either way."""
        rev1, rev2 = Revision(), Revision()
        rev2.rev2 = True
        self.assertEqual(rev1.decodeName(b"Caf&AOk-"), "Caf\u00e9")
        self.assertEqual(rev2.decodeName("Caf\u00e9".encode("utf-8")), "Caf\u00e9")
        self.assertEqual(rev2.decodeName(b"Caf&AOk-"), "Caf&AOk-")
        self.assertEqual(rev2.decodeName(b"inbox/Sub"), "INBOX/Sub")
        self.assertRaises(BadMailboxName, rev2.decodeName, b"Caf\xe9")
        self.assertEqual(rev1.nameString("Caf\u00e9"), b'"Caf&AOk-"')
        self.assertEqual(rev2.nameString("Caf\u00e9"), b'"Caf\xc3\xa9"')
        self.assertEqual(rev2.nameString('a"b'), b'"a\\"b"')

    def test_patterns(self):
        """LIST patterns decode like names; one that is not valid names nothing."""
        rev1, rev2 = Revision(), Revision()
        rev2.rev2 = True
        self.assertEqual(rev1.decodePattern(b"&AOk-*"), "\u00e9*")
        self.assertEqual(rev2.decodePattern(b"\xc3\xa9*"), "\u00e9*")
        self.assertIsNone(rev1.decodePattern(b"\xc3\xa9*"))
        self.assertIsNone(rev2.decodePattern(b"\xff"))

    def test_searchReturns(self):
        """IMAP4rev2 answers a SEARCH without RETURN as RETURN (ALL); IMAP4rev1 as asked."""
        revision = Revision()
        self.assertIsNone(revision.searchReturns(None))
        revision.rev2 = True
        self.assertEqual(revision.searchReturns(None), frozenset({"ALL"}))
        self.assertEqual(revision.searchReturns(frozenset({"MIN"})), frozenset({"MIN"}))

    def test_statusItems(self):
        """RECENT only in IMAP4rev1, DELETED only in IMAP4rev2, both as BAD refusals."""
        revision = Revision()
        revision.checkStatusItems(["RECENT", "MESSAGES"])
        self.assertEqual(self.assertRaises(Refusal, revision.checkStatusItems,
                                           ["DELETED"]).status, "BAD")
        revision.rev2 = True
        revision.checkStatusItems(["DELETED", "SIZE"])
        self.assertEqual(self.assertRaises(Refusal, revision.checkStatusItems,
                                           ["RECENT"]).status, "BAD")


class RevisionSessionMixin(IMAPTestMixin):
    """
    Sessions in IMAP4rev1 (the default) and after ENABLE IMAP4rev2.
    """

    def rev2(self, session=None):
        self.login(session)
        self.assertEqual(self.send(b"e ENABLE IMAP4rev2\r\n", session),
                         b"* ENABLED IMAP4rev2\r\ne OK ENABLE completed\r\n")

    def selectIn(self, rev2, mailbox=b"INBOX", session=None):
        if rev2:
            self.rev2(session)
        else:
            self.login(session)
        out = self.send(b"s SELECT " + mailbox + b"\r\n", session)
        self.assertIn(b"s OK [READ-WRITE]", out)
        return out


class CapabilityTests(RevisionSessionMixin, unittest.TestCase):
    """
    IMAP4rev2 in CAPABILITY, ENABLE, and switching it off per listener.
    """

    def test_advertised(self):
        """CAPABILITY says IMAP4rev1 IMAP4rev2 first, before and after login."""
        self.assertTrue(self.send(b"a CAPABILITY\r\n").startswith(
            b"* CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS "))
        self.login()
        self.assertTrue(self.send(b"b CAPABILITY\r\n").startswith(
            b"* CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ "))

    def test_enabled(self):
        """ENABLE IMAP4rev2 (any case) answers ENABLED IMAP4rev2; CAPABILITY stays the same."""
        self.login()
        before = self.send(b"a CAPABILITY\r\n")
        self.assertEqual(self.send(b"b ENABLE imap4REV2\r\n"),
                         b"* ENABLED IMAP4rev2\r\nb OK ENABLE completed\r\n")
        self.assertEqual(self.send(b"a CAPABILITY\r\n"), before)

    def test_switchedOff(self):
        """A listener with IMAP4rev2 off advertises it not, and ENABLE leaves the session in rev1."""
        session = self.connect(disabled=frozenset({"IMAP4REV2"}))
        self.assertTrue(self.send(b"a CAPABILITY\r\n", session).startswith(
            b"* CAPABILITY IMAP4rev1 STARTTLS "))
        self.login(session)
        self.assertEqual(self.send(b"b ENABLE IMAP4rev2\r\n", session),
                         b"* ENABLED\r\nb OK ENABLE completed\r\n")
        self.deliver()
        self.assertIn(b"* 1 RECENT\r\n", self.send(b"s SELECT INBOX\r\n", session))

    def test_needsWhatItFolds(self):
        """A listener without ESEARCH (which IMAP4rev2 requires) does not offer IMAP4rev2."""
        session = self.connect(disabled=frozenset({"ESEARCH"}))
        self.login(session)
        self.assertNotIn(b"IMAP4rev2", self.send(b"a CAPABILITY\r\n", session))
        self.assertEqual(self.send(b"b ENABLE IMAP4rev2\r\n", session),
                         b"* ENABLED\r\nb OK ENABLE completed\r\n")


class RecentTests(RevisionSessionMixin, unittest.TestCase):
    """
    \\Recent and RECENT: IMAP4rev1's, gone in IMAP4rev2.
    """

    def test_select(self):
        """IMAP4rev1's SELECT says RECENT and UNSEEN; IMAP4rev2's neither, but LIST."""
        self.deliver()
        rev1 = self.selectIn(False)
        self.assertIn(b"* 1 EXISTS\r\n* 1 RECENT\r\n* OK [UNSEEN 1] ", rev1)
        self.assertNotIn(b"* LIST", rev1)
        other = self.connect()
        rev2 = self.selectIn(True, session=other)
        self.assertIn(b"* 1 EXISTS\r\n* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n", rev2)
        self.assertNotIn(b"RECENT", rev2)
        self.assertNotIn(b"UNSEEN", rev2)

    def test_fetchFlags(self):
        """FETCH FLAGS shows \\Recent in IMAP4rev1 only."""
        self.deliver()
        self.selectIn(True)
        self.assertEqual(self.send(b"f FETCH 1 FLAGS\r\n"),
                         b"* 1 FETCH (FLAGS ())\r\nf OK FETCH completed\r\n")
        self.deliver()
        other = self.connect()
        self.selectIn(False, session=other)
        self.assertIn(b"* 2 FETCH (FLAGS (\\Recent))\r\n",
                      self.send(b"f FETCH 1:* FLAGS\r\n", other))

    def test_newMail(self):
        """New mail is EXISTS alone in IMAP4rev2, EXISTS and RECENT in IMAP4rev1."""
        rev1 = self.connect()
        self.selectIn(False, session=rev1)
        self.selectIn(True)
        self.deliver()
        self.assertEqual(self.send(b"n NOOP\r\n", rev1),
                         b"* 1 EXISTS\r\n* 1 RECENT\r\nn OK NOOP completed\r\n")
        self.assertEqual(self.send(b"n NOOP\r\n"), b"* 1 EXISTS\r\nn OK NOOP completed\r\n")

    def test_expungeRecent(self):
        """EXPUNGE of a \\Recent message: the new RECENT count in IMAP4rev1, none in IMAP4rev2."""
        for rev2, expected in ((True, b"* 1 EXPUNGE\r\n"), (False, b"* 1 EXPUNGE\r\n* 1 RECENT\r\n")):
            self.deliver()
            self.deliver()
            session = self.connect()
            self.selectIn(rev2, session=session)
            self.send(b"d STORE 1 +FLAGS.SILENT (\\Deleted)\r\n", session)
            self.assertEqual(self.send(b"x EXPUNGE\r\n", session),
                             expected + b"x OK EXPUNGE completed\r\n")
            self.send(b"d STORE 1:* +FLAGS.SILENT (\\Deleted)\r\nx EXPUNGE\r\n", session)

    def test_idle(self):
        """IDLE pushes new mail as EXISTS alone in IMAP4rev2."""
        self.selectIn(True)
        self.assertEqual(self.send(b"i IDLE\r\n"), b"+ idling\r\n")
        self.transport.clear()
        self.deliver()
        self.clock.advance(2)
        self.assertEqual(self.transport.value(), b"* 1 EXISTS\r\n")
        self.assertEqual(self.send(b"DONE\r\n"), b"i OK IDLE terminated\r\n")

    def test_searchKeys(self):
        """NEW, OLD and RECENT are BAD in IMAP4rev2, and work in IMAP4rev1."""
        self.deliver()
        self.selectIn(True)
        for key in (b"NEW", b"OLD", b"RECENT", b"OR SEEN NOT RECENT"):
            out = self.send(b"k SEARCH " + key + b"\r\n")
            self.assertTrue(out.startswith(b"k BAD NEW, OLD and RECENT"), out)
        other = self.connect()
        self.selectIn(False, session=other)
        self.assertEqual(self.send(b"k SEARCH NEW\r\n", other),
                         b"* SEARCH\r\nk OK SEARCH completed\r\n")

    def test_sortAndThreadKeys(self):
        """SORT and THREAD take search keys too: NEW and RECENT are BAD there in IMAP4rev2."""
        self.deliver()
        self.selectIn(True)
        for line in (b"k SORT (DATE) UTF-8 NEW\r\n", b"k THREAD REFERENCES UTF-8 RECENT\r\n"):
            self.assertTrue(self.send(line).startswith(b"k BAD NEW, OLD and RECENT"), line)
        self.assertEqual(self.send(b"s SORT (DATE) UTF-8 ALL\r\n"),
                         b"* SORT 1\r\ns OK SORT completed\r\n")

    def test_status(self):
        """STATUS RECENT is BAD in IMAP4rev2; STATUS DELETED counts \\Deleted there, BAD in rev1."""
        self.deliver(flags=("\\Deleted",))
        self.deliver()
        self.login()
        self.assertEqual(self.send(b"s STATUS INBOX (DELETED)\r\n"),
                         b"s BAD STATUS DELETED needs IMAP4rev2 (ENABLE IMAP4rev2)\r\n")
        self.assertEqual(self.send(b"s STATUS INBOX (MESSAGES RECENT)\r\n"),
                         b'* STATUS "INBOX" (MESSAGES 2 RECENT 2)\r\ns OK STATUS completed\r\n')
        self.send(b"e ENABLE IMAP4rev2\r\n")
        self.assertEqual(self.send(b"s STATUS INBOX (MESSAGES DELETED)\r\n"),
                         b'* STATUS "INBOX" (MESSAGES 2 DELETED 1)\r\ns OK STATUS completed\r\n')
        self.assertEqual(self.send(b"s STATUS INBOX (RECENT)\r\n"),
                         b"s BAD STATUS RECENT is not available in IMAP4rev2 (no \\Recent)\r\n")
        self.assertEqual(self.send(b'l LIST "" INBOX RETURN (STATUS (DELETED))\r\n'),
                         b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
                         b'* STATUS "INBOX" (DELETED 1)\r\nl OK LIST completed\r\n')


class SearchTests(RevisionSessionMixin, unittest.TestCase):
    """
    SEARCH answered ESEARCH-style in IMAP4rev2.
    """

    def setUp(self):
        RevisionSessionMixin.setUp(self)
        for flags in ((), ("\\Seen",), ()):
            self.deliver(flags=flags)

    def test_rev1(self):
        """IMAP4rev1 answers * SEARCH unless RETURN is given."""
        self.selectIn(False)
        self.assertEqual(self.send(b"a SEARCH UNSEEN\r\n"),
                         b"* SEARCH 1 3\r\na OK SEARCH completed\r\n")

    def test_rev2(self):
        """IMAP4rev2 answers SEARCH and UID SEARCH with ESEARCH (ALL), nothing found too."""
        self.selectIn(True)
        self.assertEqual(self.send(b"a SEARCH UNSEEN\r\n"),
                         b'* ESEARCH (TAG "a") ALL 1,3\r\na OK SEARCH completed\r\n')
        self.assertEqual(self.send(b"b UID SEARCH ALL\r\n"),
                         b'* ESEARCH (TAG "b") UID ALL 1:3\r\nb OK SEARCH completed\r\n')
        self.assertEqual(self.send(b"c SEARCH SUBJECT nothing\r\n"),
                         b'* ESEARCH (TAG "c")\r\nc OK SEARCH completed\r\n')
        self.assertEqual(self.send(b"d SEARCH RETURN (COUNT) ALL\r\n"),
                         b'* ESEARCH (TAG "d") COUNT 3\r\nd OK SEARCH completed\r\n')

    def test_rev2Modseq(self):
        """A SEARCH with MODSEQ in IMAP4rev2 is ESEARCH ALL with the highest MODSEQ (RFC 7162)."""
        self.selectIn(True)
        highest = self.openMailbox().highestModseq
        self.assertEqual(self.send(b"a SEARCH MODSEQ 1\r\n"),
                         b'* OK [HIGHESTMODSEQ %d] Highest\r\n* ESEARCH (TAG "a") ALL 1:3 MODSEQ %d\r\n'
                         b"a OK SEARCH completed\r\n" % (highest, highest))

    def test_rev2Save(self):
        """RETURN (SAVE) alone still answers nothing in IMAP4rev2 (RFC 5182), and $ works."""
        self.selectIn(True)
        self.assertEqual(self.send(b"a SEARCH RETURN (SAVE) SEEN\r\n"),
                         b"a OK SEARCH completed\r\n")
        self.assertEqual(self.send(b"b FETCH $ (UID)\r\n"),
                         b"* 2 FETCH (UID 2)\r\nb OK FETCH completed\r\n")


class SelectTests(RevisionSessionMixin, unittest.TestCase):
    """
    [CLOSED] and SELECT's LIST line.
    """

    def test_closed(self):
        """A second SELECT says OK [CLOSED] first in IMAP4rev2, and in IMAP4rev1 too (as Dovecot)."""
        self.createMailbox("Other")
        self.selectIn(True)
        out = self.send(b"s SELECT Other\r\n")
        self.assertTrue(out.startswith(b"* OK [CLOSED] Previous mailbox closed\r\n* FLAGS "), out)
        other = self.connect()
        self.selectIn(False, session=other)
        out = self.send(b"s EXAMINE Other\r\n", other)
        self.assertTrue(out.startswith(b"* OK [CLOSED] Previous mailbox closed\r\n* FLAGS "), out)
        self.assertNotIn(b"CLOSED", self.send(b"s SELECT Other\r\n", self.connect()))

    def test_listAttributes(self):
        """SELECT's LIST line has the mailbox's attributes and its UTF-8 name."""
        self.createMailbox("Caf\u00e9/Sub")
        self.successResultOf(self.account.setSpecialUse("Caf\u00e9", ("\\Archive",)))
        out = self.selectIn(True, mailbox='"Caf\u00e9"'.encode("utf-8"))
        self.assertIn('* LIST (\\HasChildren \\Archive) "/" "Caf\u00e9"\r\n'.encode("utf-8"), out)


class NameTests(RevisionSessionMixin, unittest.TestCase):
    """
    Mailbox names: modified UTF-7 in IMAP4rev1, UTF-8 in IMAP4rev2, one store name.
    """

    def test_list(self):
        """LIST names a mailbox in modified UTF-7 in rev1 and in quoted UTF-8 in rev2."""
        self.createMailbox("Caf\u00e9")
        self.login()
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "Caf&AOk-"\r\n',
                      self.send(b'l LIST "" "*"\r\n'))
        other = self.connect()
        self.rev2(other)
        self.assertIn('* LIST (\\HasNoChildren) "/" "Caf\u00e9"\r\n'.encode("utf-8"),
                      self.send('l LIST "" "Caf\u00e9"\r\n'.encode("utf-8"), other))

    def test_createSameName(self):
        """A UTF-8 CREATE in rev2 makes the mailbox rev1 names in modified UTF-7."""
        self.rev2()
        self.assertIn(b"c OK ", self.send('c CREATE "\u00e9t\u00e9"\r\n'.encode("utf-8")))
        self.assertIn("\u00e9t\u00e9", self.account.listMailboxes())
        other = self.connect()
        self.login(other)
        self.assertIn(b'* STATUS "&AOk-t&AOk-" (MESSAGES 0)\r\n',
                      self.send(b'a STATUS "&AOk-t&AOk-" (MESSAGES)\r\n', other))

    def test_ampersandIsPlain(self):
        """In rev2 '&' is an ordinary character, so a modified UTF-7 form names another mailbox."""
        self.createMailbox("Caf\u00e9")
        self.rev2()
        self.assertEqual(self.send(b'a STATUS "Caf&AOk-" (MESSAGES)\r\n'),
                         b"a NO [NONEXISTENT] no mailbox named Caf&AOk-\r\n")
        self.assertEqual(self.send('b STATUS "\u00e9t\u00e9" (MESSAGES)\r\n'.encode("utf-8")),
                         b"b NO [NONEXISTENT] no mailbox named \\xe9t\\xe9\r\n")

    def test_invalidUtf8(self):
        """A name that is not UTF-8 gets NO [CANNOT] in rev2 (in rev1: not modified UTF-7)."""
        self.rev2()
        self.assertEqual(self.send(b'a CREATE "Caf\xe9"\r\n'),
                         b"a NO [CANNOT] Mailbox name is not valid UTF-8\r\n")
        other = self.connect()
        self.login(other)
        self.assertEqual(self.send('a CREATE "Caf\u00e9"\r\n'.encode("utf-8"), other),
                         b"a NO [CANNOT] Mailbox name is not valid modified UTF-7\r\n")

    def test_netUnicodeOnly(self):
        """Once names are UTF-8, CREATE and RENAME refuse a name not in NFC, or with a C1
        control, NO [CANNOT] (RFC 9051 5.1); the NFC name is created; rev1 is unchanged."""
        decomposed = "Cafe\u0301".encode("utf-8")
        self.rev2()
        self.assertEqual(self.send(b'a CREATE "' + decomposed + b'"\r\n'),
                         b"a NO [CANNOT] Mailbox name is not in Unicode Normalization Form C"
                         b" (RFC 9051 5.1)\r\n")
        self.assertEqual(self.send('b CREATE "x\u0085y"\r\n'.encode("utf-8")),
                         b"b NO [CANNOT] Mailbox name contains control characters\r\n")
        self.assertIn(b"c OK ", self.send('c CREATE "Caf\u00e9"\r\n'.encode("utf-8")))
        self.assertEqual(self.send(b'd RENAME "Caf\xc3\xa9" "' + decomposed + b'"\r\n'),
                         b"d NO [CANNOT] Mailbox name is not in Unicode Normalization Form C"
                         b" (RFC 9051 5.1)\r\n")
        self.assertEqual(sorted(n for n in self.account.listMailboxes() if n.startswith("Caf")),
                         ["Caf\u00e9"])
        rev1 = self.connect()
        self.login(rev1)
        self.assertIn(b"e OK ", self.send(b'e CREATE "Cafe&AwE-"\r\n', rev1))
        self.assertIn("Cafe\u0301", self.account.listMailboxes())

    def test_childrenAlways(self):
        """With CHILDREN switched off, rev2's LIST still says \\HasChildren/\\HasNoChildren."""
        self.createMailbox("A/B")
        session = self.connect(disabled=frozenset({"CHILDREN"}))
        self.login(session)
        self.assertIn(b'* LIST () "/" "A"\r\n', self.send(b'l LIST "" "A"\r\n', session))
        other = self.connect(disabled=frozenset({"CHILDREN"}))
        self.rev2(other)
        self.assertIn(b'* LIST (\\HasChildren) "/" "A"\r\n',
                      self.send(b'l LIST "" "A"\r\n', other))

    def test_everyCommandTakesUtf8(self):
        """RENAME, SUBSCRIBE, LIST (SUBSCRIBED) RETURN (STATUS), COPY and MOVE take and give UTF-8 names in rev2."""
        self.createMailbox("Caf\u00e9")
        self.deliver()
        self.rev2()
        cafe, tea = "Caf\u00e9".encode("utf-8"), "Th\u00e9".encode("utf-8")
        self.assertEqual(self.send(b'r RENAME "%s" "%s"\r\n' % (cafe, tea)),
                         b"r OK RENAME completed\r\n")
        self.assertEqual(self.send(b'u SUBSCRIBE "%s"\r\n' % (tea,)), b"u OK SUBSCRIBE completed\r\n")
        self.send(b"s SELECT INBOX\r\n")
        self.assertIn(b"c OK [COPYUID ", self.send(b'c COPY 1 "%s"\r\n' % (tea,)))
        self.assertIn(b"m OK MOVE completed", self.send(b'm MOVE 1 "%s"\r\n' % (tea,)))
        self.assertEqual(self.send(b'l LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES))\r\n'),
                         b'* LIST (\\HasNoChildren \\Subscribed) "/" "%s"\r\n'
                         b'* STATUS "%s" (MESSAGES 2)\r\nl OK LIST completed\r\n' % (tea, tea))
        self.assertEqual(sorted(self.account.listMailboxes()), ["INBOX", "Th\u00e9"])

    def test_deleteWithChildren(self):
        """DELETE of a mailbox with children: NO [HASCHILDREN] in rev2, [CANNOT] in rev1 and for INBOX."""
        self.createMailbox("A/B")
        self.login()
        self.assertEqual(self.send(b"d DELETE A\r\n"),
                         b"d NO [CANNOT] mailbox A has child mailboxes; delete them first\r\n")
        other = self.connect()
        self.rev2(other)
        self.assertEqual(self.send(b"d DELETE A\r\n", other),
                         b"d NO [HASCHILDREN] mailbox A has child mailboxes; delete them first\r\n")
        self.assertTrue(self.send(b"d DELETE INBOX\r\n", other).startswith(b"d NO [CANNOT] "))
        self.assertEqual(self.send(b"d DELETE A/B\r\n", other), b"d OK DELETE completed\r\n")

    def test_lsub(self):
        """LSUB, deprecated in rev2, still answers there, names in UTF-8."""
        self.createMailbox("Caf\u00e9")
        self.successResultOf(self.account.subscribe("Caf\u00e9"))
        self.rev2()
        self.assertEqual(self.send(b'l LSUB "" "*"\r\n'),
                         '* LSUB () "/" "Caf\u00e9"\r\nl OK LSUB completed\r\n'.encode("utf-8"))


class FetchTests(RevisionSessionMixin, unittest.TestCase):
    """
    FETCH items RFC 9051 kept, deprecated or left alone.
    """

    def test_rfc822Kept(self):
        """RFC822.HEADER and RFC822 (deprecated by RFC 9051) still answer in rev2; RFC822 sets \\Seen."""
        self.deliver()
        self.selectIn(True)
        out = self.send(b"f FETCH 1 (RFC822.HEADER)\r\n")
        self.assertTrue(out.startswith(b"* 1 FETCH (RFC822.HEADER {"), out)
        out = self.send(b"g FETCH 1 (RFC822)\r\n")
        self.assertTrue(out.startswith(b"* 1 FETCH (RFC822 {%d}\r\n" % (len(MESSAGE),)), out)
        self.assertIn(b" FLAGS (\\Seen))\r\n", out)

    def test_unsolicitedCarriesUID(self):
        """Another session's flag change reaches an IMAP4rev2 session as a FETCH with the UID
        (RFC 9051 7.5.2), during a command and in IDLE; IMAP4rev1 keeps FLAGS alone."""
        uid = self.deliver()
        rev1, other = self.connect(), self.connect()
        self.selectIn(False, session=rev1)
        self.selectIn(True)
        self.selectIn(False, session=other)
        self.send(b"t STORE 1 +FLAGS.SILENT (\\Flagged)\r\n", other)
        self.assertEqual(self.send(b"n NOOP\r\n"),
                         b"* 1 FETCH (UID %d FLAGS (\\Flagged))\r\nn OK NOOP completed\r\n"
                         % (uid,))
        self.assertEqual(self.send(b"n NOOP\r\n", rev1),
                         b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\nn OK NOOP completed\r\n")
        self.assertEqual(self.send(b"i IDLE\r\n"), b"+ idling\r\n")
        self.transport.clear()
        self.send(b"t STORE 1 -FLAGS.SILENT (\\Flagged)\r\n", other)
        self.clock.advance(2)
        self.assertEqual(self.transport.value(), b"* 1 FETCH (UID %d FLAGS ())\r\n" % (uid,))
        self.assertEqual(self.send(b"DONE\r\n"), b"i OK IDLE terminated\r\n")

    def test_bodySetsSeen(self):
        """BODY[TEXT] sets \\Seen in rev2 as in rev1, and the new FLAGS come without \\Recent."""
        self.deliver()
        self.selectIn(True)
        out = self.send(b"f FETCH 1 (BODY[TEXT])\r\n")
        self.assertIn(b" FLAGS (\\Seen))\r\n", out)


UTF8_MESSAGE = ("From: Jos\u00e9 <jos\u00e9@lab.test>\r\nTo: bob@lab.test\r\n"
                "Subject: Caf\u00e9 \u2615\r\n\r\nBien s\u00fbr.\r\n").encode("utf-8")


class Utf8AcceptTests(RevisionSessionMixin, unittest.TestCase):
    """
    UTF8=ACCEPT (RFC 6855): ENABLE, UTF-8 names, APPEND's UTF8 (literal8).
    """

    def utf8(self, session=None):
        self.login(session)
        self.assertEqual(self.send(b"e ENABLE UTF8=ACCEPT\r\n", session),
                         b"* ENABLED UTF8=ACCEPT\r\ne OK ENABLE completed\r\n")

    def appendUtf8(self, session=None, plus=b""):
        return self.send(b"a APPEND INBOX UTF8 (~{%d%s}\r\n" % (len(UTF8_MESSAGE), plus)
                         + UTF8_MESSAGE + b")\r\n", session)

    def test_advertised(self):
        """UTF8=ACCEPT is listed after login; a listener can switch it off."""
        self.login()
        self.assertIn(b" UTF8=ACCEPT", self.send(b"a CAPABILITY\r\n"))
        session = self.connect(disabled=frozenset({"UTF8=ACCEPT"}))
        self.login(session)
        self.assertNotIn(b"UTF8=ACCEPT", self.send(b"a CAPABILITY\r\n", session))
        self.assertEqual(self.send(b"b ENABLE UTF8=ACCEPT\r\n", session),
                         b"* ENABLED\r\nb OK ENABLE completed\r\n")

    def test_both(self):
        """One ENABLE may name IMAP4rev2 and UTF8=ACCEPT; ENABLED names both."""
        self.login()
        self.assertEqual(self.send(b"e ENABLE IMAP4rev2 UTF8=ACCEPT\r\n"),
                         b"* ENABLED IMAP4rev2 UTF8=ACCEPT\r\ne OK ENABLE completed\r\n")

    def test_names(self):
        """Names are UTF-8 after ENABLE UTF8=ACCEPT; the IMAP4rev1 rules (RECENT) stay."""
        self.createMailbox("Caf\u00e9")
        self.deliver()
        self.utf8()
        self.assertEqual(self.send(b'l LIST "" "Caf*"\r\n'),
                         '* LIST (\\HasNoChildren) "/" "Caf\u00e9"\r\nl OK LIST completed\r\n'
                         .encode("utf-8"))
        self.assertIn(b"c OK ", self.send('c CREATE "\u00e9t\u00e9"\r\n'.encode("utf-8")))
        self.assertIn("\u00e9t\u00e9", self.account.listMailboxes())
        self.assertIn(b"* 1 RECENT\r\n", self.send(b"s SELECT INBOX\r\n"))

    def test_searchCharset(self):
        """After ENABLE UTF8=ACCEPT, SEARCH with CHARSET is BAD; without it, UTF-8 text matches."""
        self.successResultOf(self.openMailbox().append(UTF8_MESSAGE, ()))
        self.utf8()
        self.send(b"s SELECT INBOX\r\n")
        self.assertEqual(self.send(b"a SEARCH CHARSET UTF-8 ALL\r\n"),
                         b"a BAD SEARCH CHARSET is not allowed after ENABLE UTF8=ACCEPT (RFC 6855)\r\n")
        self.assertEqual(self.send('b SEARCH SUBJECT "caf\u00e9"\r\n'.encode("utf-8")),
                         b"* SEARCH 1\r\nb OK SEARCH completed\r\n")

    def test_appendUtf8(self):
        """APPEND UTF8 (~{n}) stores the message as sent, with APPENDUID."""
        self.utf8()
        out = self.appendUtf8()
        self.assertTrue(out.startswith(b"+ Ready for literal data\r\na OK [APPENDUID "), out)
        [info] = self.openMailbox().messages()
        f = self.openMailbox().openMessage(info.uid)
        self.addCleanup(f.close)
        self.assertEqual(f.read(), UTF8_MESSAGE)

    def test_appendUtf8NonSync(self):
        """The literal8 may be non-synchronizing (~{n+}), and UTF8 is any case."""
        self.utf8()
        out = self.send(b"a APPEND INBOX utf8 (~{%d+}\r\n" % (len(UTF8_MESSAGE),)
                        + UTF8_MESSAGE + b")\r\n")
        self.assertTrue(out.startswith(b"a OK [APPENDUID "), out)

    def test_appendUtf8NotEnabled(self):
        """Before ENABLE UTF8=ACCEPT, APPEND UTF8 is BAD, nothing is stored, the session goes on."""
        self.login()
        self.assertEqual(self.appendUtf8(plus=b"+"),
                         b"a BAD APPEND UTF8 needs ENABLE UTF8=ACCEPT\r\n")
        self.assertEqual(self.openMailbox().messages(), [])
        self.assertEqual(self.send(b"n NOOP\r\n"), b"n OK NOOP completed\r\n")

    def test_appendUtf8NeedsLiteral8(self):
        """UTF8 takes a literal8 only: UTF8 ({n}) is a syntax error."""
        self.utf8()
        out = self.send(b"a APPEND INBOX UTF8 ({3+}\r\nabc)\r\n")
        self.assertTrue(out.startswith(b"a BAD APPEND: APPEND UTF8 needs the message as a literal8"),
                        out)

    def test_appendUtf8WithoutBinary(self):
        """With BINARY switched off, UTF8's literal8 is still taken (RFC 6855 needs it)."""
        session = self.connect(disabled=frozenset({"BINARY"}))
        self.utf8(session)
        self.assertIn(b"a OK [APPENDUID ", self.appendUtf8(session))
        self.assertTrue(self.send(b"b APPEND INBOX ~{3+}\r\nabc\r\n", session).startswith(
            b"b BAD Literal8 is not available here"))

    def test_catenatePart(self):
        """A CATENATE part may be UTF8 (~{n}) (RFC 6855 4, cat-part =/ utf8-literal), also
        with BINARY off; the message is the parts as sent. Before ENABLE it is BAD."""
        uid = self.deliver()
        header, body = UTF8_MESSAGE.split(b"\r\n\r\n", 1)
        command = (b'a APPEND INBOX CATENATE (UTF8 (~{%d+}\r\n' % (len(header) + 4,)
                   + header + b'\r\n\r\n) URL "/INBOX/;UID=%d/;SECTION=TEXT" UTF8 (~{%d+}\r\n'
                   % (uid, len(body)) + body + b"))\r\n")
        session = self.connect(disabled=frozenset({"BINARY"}))
        self.login(session)
        self.assertEqual(self.send(command, session),
                         b"a BAD APPEND UTF8 needs ENABLE UTF8=ACCEPT\r\n")
        self.assertEqual(self.send(b"e ENABLE UTF8=ACCEPT\r\n", session),
                         b"* ENABLED UTF8=ACCEPT\r\ne OK ENABLE completed\r\n")
        out = self.send(command, session)
        self.assertTrue(out.startswith(b"a OK [APPENDUID "), out)
        inbox = self.openMailbox()
        newest = inbox.messages()[-1]
        with inbox.openMessage(newest.uid) as f:
            stored = f.read()
        self.assertEqual(stored, header + b"\r\n\r\n" + MESSAGE.split(b"\r\n\r\n", 1)[1] + body)

    def test_multiappend(self):
        """MULTIAPPEND mixes a UTF8 message with a plain one; both get UIDs."""
        self.utf8()
        out = self.send(b"a APPEND INBOX UTF8 (~{%d+}\r\n" % (len(UTF8_MESSAGE),) + UTF8_MESSAGE
                        + b") (\\Seen) {%d+}\r\n" % (len(MESSAGE),) + MESSAGE + b"\r\n")
        self.assertRegex(out, rb"^a OK \[APPENDUID \d+ 1:2\] ")


class MaildirNameTests(RevisionSessionMixin, unittest.TestCase):
    """
    The folder a rev2 session creates is the one Dovecot names in modified UTF-7.
    """

    maildirOnly = True

    def test_folderOnDisk(self):
        """CREATE "été/x" in rev2 makes the Maildir++ folder .&AOk-t&AOk-.x."""
        self.rev2()
        self.assertIn(b"c OK ", self.send('c CREATE "\u00e9t\u00e9/x"\r\n'.encode("utf-8")))
        root = self.account.path if hasattr(self.account, "path") else None
        self.assertIsNotNone(root)
        self.assertIn(".&AOk-t&AOk-.x", os.listdir(root))


everyStore(globals())
