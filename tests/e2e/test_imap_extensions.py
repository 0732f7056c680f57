"""
End-to-end tests of the IMAP extensions with imaplib (and raw sockets where
imaplib has no method): SPECIAL-USE folders of a new user, LIST-EXTENDED and
LIST-STATUS, MOVE and COPYUID, CONDSTORE and QRESYNC across sessions.
"""

import re

from twisted.internet import defer

from tests.e2e.test_imap import MESSAGE, IMAPTestCase, readUntilTagged
from tests.helpers import listenerTOML


class ListExtensionTests(IMAPTestCase):
    """
    LIST-EXTENDED, LIST-STATUS, SPECIAL-USE over the wire.
    """

    @defer.inlineCallbacks
    def test_newUserFolders(self):
        """The demo user's first login creates Drafts, Sent, Trash, Junk, Archive, subscribed."""
        def session():
            c = self.loggedIn()
            typ, listed = c.list()
            typ, subscribed = c.lsub()
            c.logout()
            return listed, subscribed
        listed, subscribed = yield self.inThread(session)
        self.assertIn(b'(\\HasNoChildren \\Sent) "/" "Sent"', listed)
        self.assertIn(b'(\\HasNoChildren \\Trash) "/" "Trash"', listed)
        self.assertEqual(len(listed), 6)
        self.assertEqual(sorted(subscribed),
                         [b'() "/" "Archive"', b'() "/" "Drafts"', b'() "/" "Junk"',
                          b'() "/" "Sent"', b'() "/" "Trash"'])

    @defer.inlineCallbacks
    def test_listExtendedAndStatus(self):
        """LIST (SPECIAL-USE) ... RETURN (STATUS (MESSAGES)) and CREATE (USE)."""
        self.deliver(MESSAGE)

        def session():
            s, f = self.raw()
            s.sendall(b"a LOGIN demo@lab.test demo\r\n")
            readUntilTagged(f, b"a")
            s.sendall(b"b CREATE Spam (USE (\\Junk))\r\n")
            created = readUntilTagged(f, b"b")
            s.sendall(b'c LIST (SPECIAL-USE) "" "S*" RETURN (STATUS (MESSAGES))\r\n')
            special = readUntilTagged(f, b"c")
            s.sendall(b'd LIST "" ("INBOX" "Nothing*") RETURN (STATUS (MESSAGES UNSEEN))\r\n')
            inbox = readUntilTagged(f, b"d")
            s.close()
            return created, special, inbox
        created, special, inbox = yield self.inThread(session)
        self.assertEqual(len(created), 1)
        self.assertRegex(created[0], rb"^b OK \[MAILBOXID \(F\d+\)\] CREATE completed\r\n$")
        self.assertEqual(special, [b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n',
                                   b'* STATUS "Sent" (MESSAGES 0)\r\n',
                                   b'* LIST (\\HasNoChildren \\Junk) "/" "Spam"\r\n',
                                   b'* STATUS "Spam" (MESSAGES 0)\r\n',
                                   b"c OK LIST completed\r\n"])
        self.assertEqual(inbox, [b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n',
                                 b'* STATUS "INBOX" (MESSAGES 1 UNSEEN 1)\r\n',
                                 b"d OK LIST completed\r\n"])


def command(s, f, tag, text):
    """Send one command line; return the response lines up to its tagged one."""
    s.sendall(tag + b" " + text + b"\r\n")
    return readUntilTagged(f, tag)


class TwoSessionExtensionTests(IMAPTestCase):
    """
    MOVE, COPYUID, CONDSTORE and QRESYNC seen from a second session.
    """

    listeners = IMAPTestCase.listeners + listenerTOML(
        "imap", tls="none", name="nocondstore", allow_plaintext_auth=True,
        disabled=["CONDSTORE", "LIST-EXTENDED", "CREATE-SPECIAL-USE"])

    def setUp(self):
        IMAPTestCase.setUp(self)
        for i in range(5):
            self.deliver(MESSAGE.replace(b"Hello", b"Hello %d" % (i,)))

    def session(self, name="imap"):
        s, f = self.raw(name)
        command(s, f, b"L", b"LOGIN demo@lab.test demo")
        return s, f

    @defer.inlineCallbacks
    def test_moveExpungeToOtherSession(self):
        """UID MOVE: COPYUID for the range and the \\Recent count left; the other session gets EXPUNGE at its NOOP."""
        def run():
            a, fa = self.session()
            b, fb = self.session()
            command(a, fa, b"a1", b"SELECT INBOX")
            command(b, fb, b"b1", b"SELECT INBOX")
            moved = command(a, fa, b"a2", b"UID MOVE 2:4 Archive")
            noop = command(b, fb, b"b2", b"NOOP")
            status = command(b, fb, b"b3", b'STATUS Archive (MESSAGES UIDNEXT)')
            a.close()
            b.close()
            return moved, noop, status
        moved, noop, status = yield self.inThread(run)
        validity = self.server.store.account("demo@lab.test").getMailbox("Archive").uidValidity
        self.assertEqual(moved, [b"* OK [COPYUID %d 2:4 1:3] Moved\r\n" % (validity,),
                                 b"* 4 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n",
                                 b"* 2 RECENT\r\n", b"a2 OK MOVE completed\r\n"])
        self.assertEqual(noop, [b"* 4 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n",
                                b"b2 OK NOOP completed\r\n"])
        self.assertEqual(status[0], b'* STATUS "Archive" (MESSAGES 3 UIDNEXT 4)\r\n')

    @defer.inlineCallbacks
    def test_copyUIDRanges(self):
        """COPY of a non-contiguous set: COPYUID lists both sets as ranges, in order."""
        def run():
            c = self.loggedIn()
            c.select("INBOX")
            c.copy("1,3:5", "Sent")
            typ, data = c.copy("1:2,4", "Sent")
            c.logout()
            return typ, data
        typ, data = yield self.inThread(run)
        validity = self.server.store.account("demo@lab.test").getMailbox("Sent").uidValidity
        self.assertEqual((typ, data), ("OK", [b"[COPYUID %d 1:2,4 5:7] COPY completed"
                                              % (validity,)]))

    @defer.inlineCallbacks
    def test_condstoreAfterOtherSessionsFlagChange(self):
        """A flag change in B shows in A with its new MODSEQ, and in CHANGEDSINCE."""
        def run():
            a, fa = self.session()
            b, fb = self.session()
            selected = command(a, fa, b"a1", b"SELECT INBOX (CONDSTORE)")
            command(b, fb, b"b1", b"SELECT INBOX")
            command(b, fb, b"b2", b"STORE 2 +FLAGS (\\Flagged)")
            noop = command(a, fa, b"a2", b"NOOP")
            since = command(a, fa, b"a3", b"FETCH 1:* (UID) (CHANGEDSINCE %s)"
                            % (re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(selected)).group(1),))
            a.close()
            b.close()
            return selected, noop, since
        selected, noop, since = yield self.inThread(run)
        modseq = self.inbox().messageInfo(2).modseq
        self.assertGreater(modseq, int(re.search(rb"HIGHESTMODSEQ (\d+)",
                                                 b"".join(selected)).group(1)))
        self.assertEqual(noop, [b"* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\n"
                                % (modseq,), b"a2 OK NOOP completed\r\n"])
        self.assertEqual(since, [b"* 2 FETCH (UID 2 MODSEQ (%d))\r\n" % (modseq,),
                                 b"a3 OK FETCH completed\r\n"])

    @defer.inlineCallbacks
    def test_qresyncVanishedAfterOtherSessionsExpunge(self):
        """QRESYNC: B's expunge reaches A as VANISHED (then A's \\Recent count left); a resync SELECT says VANISHED (EARLIER)."""
        def run():
            a, fa = self.session()
            b, fb = self.session()
            command(a, fa, b"a1", b"ENABLE QRESYNC")
            selected = command(a, fa, b"a2", b"SELECT INBOX")
            mark = re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(selected)).group(1)
            validity = re.search(rb"UIDVALIDITY (\d+)", b"".join(selected)).group(1)
            command(b, fb, b"b1", b"SELECT INBOX")
            command(b, fb, b"b2", b"STORE 1,3 +FLAGS.SILENT (\\Deleted)")
            command(b, fb, b"b3", b"EXPUNGE")
            noop = command(a, fa, b"a3", b"NOOP")
            command(a, fa, b"a4", b"UNSELECT")
            resync = command(a, fa, b"a5", b"SELECT INBOX (QRESYNC (%s %s))" % (validity, mark))
            a.close()
            b.close()
            return noop, resync
        noop, resync = yield self.inThread(run)
        self.assertEqual(noop, [b"* VANISHED 1,3\r\n", b"* 3 RECENT\r\n", b"a3 OK NOOP completed\r\n"])
        self.assertIn(b"* VANISHED (EARLIER) 1,3\r\n", resync)
        self.assertIn(b"* 3 EXISTS\r\n", resync)

    @defer.inlineCallbacks
    def test_disabledPerListener(self):
        """A listener with CONDSTORE, LIST-EXTENDED and CREATE-SPECIAL-USE disabled."""
        def run():
            s, f = self.raw("nocondstore")
            capabilities = command(s, f, b"a", b"CAPABILITY")
            command(s, f, b"L", b"LOGIN demo@lab.test demo")
            enabled = command(s, f, b"b", b"ENABLE CONDSTORE QRESYNC")
            listed = command(s, f, b"c", b'LIST (SUBSCRIBED) "" "*"')
            created = command(s, f, b"d", b"CREATE X (USE (\\Junk))")
            s.close()
            return capabilities, enabled, listed, created
        capabilities, enabled, listed, created = yield self.inThread(run)
        for name in (b" CONDSTORE", b" QRESYNC", b" LIST-EXTENDED", b"CREATE-SPECIAL-USE"):
            self.assertNotIn(name, capabilities[0])
        self.assertIn(b" LIST-STATUS", capabilities[0])
        self.assertEqual(enabled, [b"* ENABLED\r\n", b"b OK ENABLE completed\r\n"])
        self.assertTrue(listed[-1].startswith(b"c BAD"))
        self.assertTrue(created[-1].startswith(b"d BAD"))
