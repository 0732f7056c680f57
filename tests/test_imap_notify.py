"""
Tests for NOTIFY (RFC 5465): the grammar and its refusals (BAD, NO [BADEVENT],
NO [NOTIFICATIONOVERFLOW]), STATUS for mailboxes other than the selected one,
LIST for mailboxes created, deleted, renamed and (un)subscribed, the selected
mailbox's changes with MessageNew's FETCH attributes under SELECTED and
SELECTED-DELAYED, during IDLE and outside it. Two sessions over
StringTransports on one store, on both stores; the replies are Dovecot
2.3.19's (tests/e2e/test_imap_notify.py compares them with a live one).
"""

from twisted.trial import unittest

from mailstack.imap import notify
from mailstack.storage import accountevents
from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin

MESSAGE = b"From: a@lab.test\r\nSubject: hi\r\n\r\nHi.\r\n"
PERSONAL = (b"n NOTIFY SET (PERSONAL (MessageNew MessageExpunge FlagChange MailboxName"
            b" SubscriptionChange))\r\n")


class NotifyTestMixin(IMAPTestMixin):
    """Session A (C{self.server}) asks for notifications; session B makes changes."""

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.createMailbox("Folder1")
        self.deliver(MESSAGE, mailbox="Folder1")
        self.login()
        self.other = self.connect()
        self.login(self.other)

    def by(self, command):
        """Session B sends C{command}; @return: what session A was sent meanwhile."""
        self.transport.clear()
        out = self.send(command, self.other)
        self.assertIn(b" OK ", out)
        self.clock.advance(0)
        return self.transport.value()


def withoutRecent(out):
    """C{out} without its C{* n RECENT} lines (when they go out is the view's business)."""
    return b"".join(line for line in out.splitlines(True) if not line.endswith(b" RECENT\r\n"))


class GrammarTests(NotifyTestMixin, unittest.TestCase):
    """What NOTIFY accepts and how it refuses the rest."""

    def test_capability(self):
        """NOTIFY is advertised after login."""
        self.assertIn(b" NOTIFY", self.send(b"c CAPABILITY\r\n"))

    def test_disabled(self):
        """With NOTIFY switched off it is not advertised and the command is unknown (BAD)."""
        session = self.connect(disabled=frozenset({"NOTIFY"}))
        self.login(session)
        self.assertNotIn(b"NOTIFY", self.send(b"c CAPABILITY\r\n", session))
        self.assertTrue(self.send(b"n NOTIFY NONE\r\n", session).startswith(b"n BAD "))

    def test_notAuthenticated(self):
        """NOTIFY before login is BAD."""
        session = self.connect()
        self.assertTrue(self.send(b"n NOTIFY NONE\r\n", session).startswith(b"n BAD "))

    def test_none(self):
        """NOTIFY NONE and NOTIFY SET without groups are OK, as in Dovecot."""
        self.assertEqual(self.send(b"n NOTIFY NONE\r\n"), b"n OK NOTIFY completed\r\n")
        self.assertEqual(self.send(b"n NOTIFY SET\r\n"), b"n OK NOTIFY completed\r\n")

    def test_syntax(self):
        """Bad groups, filters, event lists and composition rules are BAD."""
        for command in [b"NOTIFY", b"NOTIFY SET (BOGUS (MessageNew))",
                        b"NOTIFY SET (PERSONAL ())", b"NOTIFY SET (SELECTED (MessageNew))",
                        b"NOTIFY SET (SELECTED (FlagChange))",
                        b"NOTIFY SET (SELECTED (MessageNew MessageExpunge MailboxName))",
                        b"NOTIFY SET (SELECTED NONE) (SELECTED-DELAYED NONE)",
                        b"NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))",
                        b"NOTIFY SET (SELECTED (MessageNew (UID FOO) MessageExpunge))",
                        b"NOTIFY SET (SUBTREE (MessageNew))", b"NOTIFY NONE extra"]:
            session = self.connect()
            self.login(session)
            out = self.send(b"n " + command + b"\r\n", session)
            self.assertTrue(out.startswith(b"n BAD "), (command, out))

    def test_seenFetchRefused(self):
        """MessageNew's FETCH attributes may not set \\Seen (BODY[] is BAD, BODY.PEEK[] OK)."""
        self.assertTrue(self.send(
            b"n NOTIFY SET (SELECTED (MessageNew (UID BODY[]) MessageExpunge))\r\n")
            .startswith(b"n BAD "))
        self.assertEqual(self.send(
            b"n NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[]) MessageExpunge))\r\n"),
            b"n OK NOTIFY completed\r\n")

    def test_badEvent(self):
        """Unsupported events are NO [BADEVENT (the events supported)], as RFC 5465 asks."""
        self.assertEqual(
            self.send(b"n NOTIFY SET (PERSONAL (MessageNew AnnotationChange Bogus))\r\n"),
            b"n NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName"
            b" SubscriptionChange)] Unsupported NOTIFY events: AnnotationChange Bogus\r\n")

    def test_tooManyNames(self):
        """More than 100 mailbox names in one filter: NO [NOTIFICATIONOVERFLOW]; 100 are OK."""
        names = b" ".join(b"m%d" % (i,) for i in range(101))
        self.assertTrue(self.send(b"n NOTIFY SET (MAILBOXES (%s) (MessageNew))\r\n" % (names,))
                        .startswith(b"n NO [NOTIFICATIONOVERFLOW] "))
        names = b" ".join(b"m%d" % (i,) for i in range(100))
        self.assertEqual(self.send(b"n NOTIFY SET (MAILBOXES (%s) (MessageNew))\r\n" % (names,)),
                         b"n OK NOTIFY completed\r\n")

    def test_tooManyWatched(self):
        """A filter matching more mailboxes than a session may watch: NO [NOTIFICATIONOVERFLOW]."""
        self.patch(notify, "MAX_WATCHED", 1)
        self.assertTrue(self.send(b"n NOTIFY SET (PERSONAL (MessageNew))\r\n")
                        .startswith(b"n NO [NOTIFICATIONOVERFLOW] "))
        self.assertEqual(self.send(b"n NOTIFY SET (MAILBOXES Folder1 (MessageNew))\r\n"),
                         b"n OK NOTIFY completed\r\n")


class StatusTests(NotifyTestMixin, unittest.TestCase):
    """STATUS for mailboxes other than the selected one."""

    def test_statusIndicator(self):
        """NOTIFY SET STATUS sends each watched mailbox's STATUS before the OK."""
        self.assertEqual(
            self.send(b"n NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge))\r\n"),
            b"* STATUS Folder1 (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d UNSEEN 1)\r\n"
            b"* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY %d UNSEEN 0)\r\n"
            b"n OK NOTIFY completed\r\n" % (self.openMailbox("Folder1").uidValidity,
                                            self.openMailbox("INBOX").uidValidity))

    def test_statusIndicatorFlagChange(self):
        """With FlagChange, STATUS carries HIGHESTMODSEQ (CONDSTORE is on then, as in Dovecot)."""
        out = self.send(b"n NOTIFY SET STATUS (MAILBOXES Folder1 (MessageNew MessageExpunge"
                        b" FlagChange))\r\n")
        self.assertIn(b"UNSEEN 1 HIGHESTMODSEQ %d)" % (self.openMailbox("Folder1").highestModseq,),
                      out)
        self.assertTrue(self.server.condstore)

    def test_statusSkipsSelected(self):
        """NOTIFY SET STATUS leaves the selected mailbox out."""
        self.send(b"s SELECT INBOX\r\n")
        out = self.send(b"n NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge))\r\n")
        self.assertIn(b"* STATUS Folder1 ", out)
        self.assertNotIn(b"* STATUS INBOX ", out)

    def test_append(self):
        """Another session's APPEND: STATUS (MESSAGES UIDNEXT UNSEEN), at once, outside any command."""
        self.send(PERSONAL)
        self.assertEqual(self.by(b"a APPEND Folder1 {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"* STATUS Folder1 (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n")

    def test_delivery(self):
        """A delivery to INBOX through the store (as SMTP's) is told."""
        self.send(PERSONAL)
        self.transport.clear()
        self.successResultOf(self.store.deliver(["alice@lab.test"], MESSAGE))
        self.clock.advance(0)
        self.assertEqual(self.transport.value(),
                         b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n")

    def test_coalesced(self):
        """A burst of changes to one mailbox between flushes gives one STATUS."""
        self.send(PERSONAL)
        self.transport.clear()
        folder = self.openMailbox("Folder1")
        for _ in range(3):
            self.successResultOf(folder.append(MESSAGE))
        self.clock.advance(0)
        self.assertEqual(self.transport.value(),
                         b"* STATUS Folder1 (MESSAGES 4 UIDNEXT 5 UNSEEN 4)\r\n")

    def test_flags(self):
        """\\Seen changes UNSEEN; another flag tells nothing without CONDSTORE."""
        self.send(PERSONAL)
        self.send(b"s SELECT Folder1\r\n", self.other)
        self.assertEqual(self.by(b"f STORE 1 +FLAGS (\\Flagged)\r\n"), b"")
        self.assertEqual(self.by(b"f STORE 1 +FLAGS (\\Seen)\r\n"),
                         b"* STATUS Folder1 (UNSEEN 0)\r\n")

    def test_flagsCondstore(self):
        """With CONDSTORE on, every flag change tells HIGHESTMODSEQ."""
        self.send(b"e ENABLE CONDSTORE\r\n")
        self.send(PERSONAL)
        self.send(b"s SELECT Folder1\r\n", self.other)
        self.assertEqual(self.by(b"f STORE 1 +FLAGS (\\Flagged)\r\n"),
                         b"* STATUS Folder1 (HIGHESTMODSEQ %d)\r\n"
                         % (self.openMailbox("Folder1").highestModseq,))

    def test_expunge(self):
        """An expunge elsewhere: STATUS (MESSAGES UIDNEXT UNSEEN)."""
        self.send(PERSONAL)
        self.send(b"s SELECT Folder1\r\n", self.other)
        self.send(b"f STORE 1 +FLAGS.SILENT (\\Deleted)\r\n", self.other)
        self.clock.advance(0)
        self.assertEqual(self.by(b"x EXPUNGE\r\n"),
                         b"* STATUS Folder1 (MESSAGES 0 UIDNEXT 2 UNSEEN 0)\r\n")

    def test_filters(self):
        """Only the mailboxes a filter names are told of (MAILBOXES, SUBTREE, SUBSCRIBED)."""
        self.createMailbox("Lists/Python")
        self.send(b"n NOTIFY SET (SUBTREE Lists (MessageNew MessageExpunge))"
                  b" (MAILBOXES INBOX (MessageNew MessageExpunge))\r\n")
        self.assertEqual(self.by(b"a APPEND Folder1 {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"")
        self.assertEqual(
            self.by(b'a APPEND Lists/Python {%d+}\r\n%s\r\n' % (len(MESSAGE), MESSAGE)),
            b"* STATUS Lists/Python (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n")
        self.send(b"n NOTIFY SET (SUBSCRIBED (MessageNew MessageExpunge))\r\n")
        self.assertEqual(self.by(b"a APPEND Folder1 {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"")
        self.by(b"u SUBSCRIBE Folder1\r\n")
        self.assertEqual(self.by(b"a APPEND Folder1 {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"* STATUS Folder1 (MESSAGES 4 UIDNEXT 5 UNSEEN 4)\r\n")

    def test_none(self):
        """After NOTIFY NONE nothing is told."""
        self.send(PERSONAL)
        self.send(b"n NOTIFY NONE\r\n")
        self.assertEqual(self.by(b"a APPEND Folder1 {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"")
        self.assertEqual(self.by(b"c CREATE Other\r\n"), b"")

    def test_heldUntilCommandEnds(self):
        """A change during a command of this session is sent before its tagged reply."""
        self.send(PERSONAL)
        self.server.notificationsReady = lambda: None  # as if a command were running
        self.successResultOf(self.openMailbox("Folder1").append(MESSAGE))
        self.assertEqual(self.send(b"p NOOP\r\n"),
                         b"* STATUS Folder1 (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n"
                         b"p OK NOOP completed\r\n")

    def test_overflow(self):
        """Too many queued notifications: untagged OK [NOTIFICATIONOVERFLOW], then silence."""
        self.patch(notify, "MAX_PENDING", 2)
        self.send(PERSONAL)
        self.server.notificationsReady = lambda: None
        self.transport.clear()
        for name in (b"A", b"B", b"C"):
            self.send(b"c CREATE " + name + b"\r\n", self.other)
        self.assertTrue(self.transport.value().startswith(b"* OK [NOTIFICATIONOVERFLOW] "),
                        self.transport.value())
        self.assertEqual(self.send(b"p NOOP\r\n"), b"p OK NOOP completed\r\n")
        self.assertEqual(self.by(b"c CREATE D\r\n"), b"")


class ListTests(NotifyTestMixin, unittest.TestCase):
    """LIST for MailboxName and SubscriptionChange, as Dovecot writes it."""

    def setUp(self):
        NotifyTestMixin.setUp(self)
        self.send(PERSONAL)

    def test_create(self):
        """CREATE elsewhere: LIST () with the name."""
        self.assertEqual(self.by(b"c CREATE Folder2\r\n"), b'* LIST () "/" Folder2\r\n')

    def test_createParents(self):
        """CREATE of a/b where a is new: a LIST for each, parent first."""
        self.assertEqual(self.by(b"c CREATE a/b\r\n"),
                         b'* LIST () "/" a\r\n* LIST () "/" a/b\r\n')

    def test_rename(self):
        """RENAME: LIST of the new name with OLDNAME."""
        self.assertEqual(self.by(b"r RENAME Folder1 Folder3\r\n"),
                         b'* LIST () "/" Folder3 ("OLDNAME" (Folder1))\r\n')

    def test_renameThenWatched(self):
        """A renamed mailbox is watched under its new name."""
        self.by(b"r RENAME Folder1 Folder3\r\n")
        self.assertEqual(self.by(b"a APPEND Folder3 {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"* STATUS Folder3 (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n")

    def test_createdThenWatched(self):
        """A mailbox created after NOTIFY SET is watched too."""
        self.by(b"c CREATE New\r\n")
        self.assertEqual(self.by(b"a APPEND New {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"* STATUS New (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n")

    def test_delete(self):
        """DELETE: LIST (\\NonExistent)."""
        self.assertEqual(self.by(b"d DELETE Folder1\r\n"),
                         b'* LIST (\\NonExistent) "/" Folder1\r\n')

    def test_subscriptions(self):
        """SUBSCRIBE: LIST (\\Subscribed); UNSUBSCRIBE: LIST (); nothing when nothing changed."""
        self.assertEqual(self.by(b"s SUBSCRIBE Folder1\r\n"),
                         b'* LIST (\\Subscribed) "/" Folder1\r\n')
        self.assertEqual(self.by(b"s SUBSCRIBE Folder1\r\n"), b"")
        self.assertEqual(self.by(b"u UNSUBSCRIBE Folder1\r\n"), b'* LIST () "/" Folder1\r\n')

    def test_ownChangesNotTold(self):
        """The session's own CREATE, RENAME, SUBSCRIBE and APPEND are not told back to it (RFC 5465 5)."""
        self.assertTrue(self.send(b"c CREATE Mine/Sub\r\n").startswith(b"c OK "))
        self.assertEqual(self.send(b"r RENAME Mine Yours\r\n"), b"r OK RENAME completed\r\n")
        self.assertEqual(self.send(b"s SUBSCRIBE Yours\r\n"), b"s OK SUBSCRIBE completed\r\n")
        out = self.send(b"a APPEND Folder1 {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE))
        self.assertTrue(out.startswith(b"a OK "), out)
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), out)
        # ...but another session's changes to the same mailboxes still are.
        self.assertEqual(self.by(b"a APPEND Yours/Sub {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"* STATUS Yours/Sub (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n")
        self.assertEqual(self.by(b"a APPEND Folder1 {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"* STATUS Folder1 (MESSAGES 3 UIDNEXT 4 UNSEEN 3)\r\n")

    def test_quotedName(self):
        """A name that is no atom is quoted."""
        self.assertEqual(self.by(b'c CREATE "a b"\r\n'), b'* LIST () "/" "a b"\r\n')

    def test_modifiedUTF7(self):
        """A name beyond ASCII is sent in modified UTF-7, an atom, as Dovecot does."""
        self.assertEqual(self.by(b"c CREATE Entw&APw-rfe\r\n"),
                         b'* LIST () "/" Entw&APw-rfe\r\n')

    def test_utf8Names(self):
        """After ENABLE UTF8=ACCEPT names are read and sent in UTF-8 (RFC 6855)."""
        session = self.connect()
        self.login(session)
        self.assertIn(b"OK", self.send(b"e ENABLE UTF8=ACCEPT\r\n", session))
        self.assertIn(b"OK", self.send(
            b'n NOTIFY SET (MAILBOXES "Entw\xc3\xbcrfe" (MessageNew MessageExpunge MailboxName))\r\n',
            session))
        self.transport.clear()
        server, transport = session
        transport.clear()
        self.send(b"c CREATE Entw&APw-rfe\r\n", self.other)
        self.clock.advance(0)
        self.assertEqual(transport.value(), b'* LIST () "/" "Entw\xc3\xbcrfe"\r\n')
        transport.clear()
        self.send(b"a APPEND Entw&APw-rfe {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE), self.other)
        self.clock.advance(0)
        self.assertEqual(transport.value(),
                         b'* STATUS "Entw\xc3\xbcrfe" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')

    def test_onlyWhenAsked(self):
        """Without MailboxName or SubscriptionChange no LIST is sent."""
        self.send(b"n NOTIFY SET (PERSONAL (MessageNew MessageExpunge))\r\n")
        self.assertEqual(self.by(b"c CREATE Folder2\r\n"), b"")
        self.assertEqual(self.by(b"s SUBSCRIBE Folder1\r\n"), b"")


class SelectedTests(NotifyTestMixin, unittest.TestCase):
    """The selected mailbox under SELECTED and SELECTED-DELAYED."""

    def setUp(self):
        NotifyTestMixin.setUp(self)
        self.deliver(MESSAGE)
        self.send(b"s SELECT INBOX\r\n")
        self.send(b"s SELECT INBOX\r\n", self.other)

    def test_messageNewFetch(self):
        """MessageNew with FETCH attributes: EXISTS, then a FETCH of the new message, at once."""
        self.send(b"n NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))"
                  b" (PERSONAL (MessageNew MessageExpunge))\r\n")
        self.assertEqual(
            withoutRecent(self.by(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE))),
            b"* 2 EXISTS\r\n* 2 FETCH (UID 2 FLAGS ())\r\n")

    def _bigArrives(self, idle=False):
        """
        NOTIFY with MessageNew (UID BODY.PEEK[]); session A's transport then
        fills (pauses its producer) after 100,000 octets, and a message of
        2.5 MB arrives. @return: the FETCH response it is owed, whole.
        """
        self.send(b"n NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[]) MessageExpunge))\r\n")
        if idle:
            self.assertEqual(self.send(b"i IDLE\r\n"), b"+ idling\r\n")
        transport, write = self.transport, self.transport.write

        def fills(data):
            write(data)
            if len(transport.value()) > 100000 and transport.producer is not None:
                transport.write = write
                transport.producer.pauseProducing()
        transport.write = fills
        big = MESSAGE + (b"y" * 78 + b"\r\n") * 32000
        self.transport.clear()
        self.deliver(big)
        self.clock.advance(0)
        return b"* 2 EXISTS\r\n* 2 FETCH (UID 2 BODY[] {%d}\r\n%s)\r\n" % (len(big), big)

    def _resume(self):
        """The client reads again: @return: all session A was sent since the message came."""
        self.transport.producer.resumeProducing()
        self.clock.advance(0)
        return withoutRecent(self.transport.value())

    def test_messageNewFetchStreamed(self):
        """MessageNew's FETCH of a large message stops while the client does not read (its
        transport paused, not buffering the rest) and ends whole once it reads again."""
        whole = self._bigArrives()
        sent = len(self.transport.value())
        self.assertLess(sent, 200000)
        self.clock.advance(1)
        self.assertEqual(len(self.transport.value()), sent)
        self.assertTrue(self._resume() == whole, "the FETCH response differs")
        self.assertIsNone(self.transport.producer)

    def test_commandWaitsForStream(self):
        """A command sent while MessageNew's FETCH streams is answered after its last octet."""
        whole = self._bigArrives()
        self.server.dataReceived(b"p NOOP\r\n")
        self.assertNotIn(b"p OK", self.transport.value())
        self.assertTrue(self._resume() == whole + b"p OK NOOP completed\r\n",
                        "not the FETCH response, then NOOP's reply")

    def test_doneWaitsForStream(self):
        """DONE sent while MessageNew's FETCH streams during IDLE: IDLE's OK follows the
        FETCH response, not inside its literal."""
        whole = self._bigArrives(idle=True)
        self.server.dataReceived(b"DONE\r\n")
        self.assertNotIn(b"i OK", self.transport.value())
        self.assertTrue(self._resume() == whole + b"i OK IDLE terminated\r\n",
                        "not the FETCH response, then IDLE's OK")

    def test_flagsAndExpunge(self):
        """FlagChange and an expunge under SELECTED arrive outside any command."""
        self.send(b"n NOTIFY SET (SELECTED (MessageNew MessageExpunge FlagChange))\r\n")
        self.assertEqual(self.by(b"f STORE 1 +FLAGS (\\Deleted)\r\n"),
                         b"* 1 FETCH (FLAGS (\\Deleted \\Recent))\r\n")
        self.assertEqual(withoutRecent(self.by(b"x EXPUNGE\r\n")), b"* 1 EXPUNGE\r\n")

    def test_delayed(self):
        """SELECTED-DELAYED holds an expunge back until a command allows it."""
        self.send(b"n NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge FlagChange))\r\n")
        self.assertEqual(self.by(b"f STORE 1 +FLAGS.SILENT (\\Deleted)\r\n"),
                         b"* 1 FETCH (FLAGS (\\Deleted \\Recent))\r\n")
        self.assertEqual(self.by(b"x EXPUNGE\r\n"), b"")
        self.assertEqual(withoutRecent(self.send(b"p NOOP\r\n")),
                         b"* 1 EXPUNGE\r\np OK NOOP completed\r\n")

    def test_flagChangeNotAsked(self):
        """Without FlagChange a flag change is not pushed; the next command reports it."""
        self.send(b"n NOTIFY SET (SELECTED (MessageNew MessageExpunge))\r\n")
        self.assertEqual(self.by(b"f STORE 1 +FLAGS (\\Flagged)\r\n"), b"")
        self.assertIn(b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n", self.send(b"p NOOP\r\n"))

    def test_noSelectedEvents(self):
        """Without a SELECTED group the selected mailbox's changes wait for a command."""
        self.send(b"n NOTIFY SET (PERSONAL (MessageNew MessageExpunge))\r\n")
        self.assertEqual(self.by(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"")
        self.assertIn(b"* 2 EXISTS\r\n", self.send(b"p NOOP\r\n"))

    def test_idle(self):
        """During IDLE the same notifications arrive: the selected mailbox's and the others'."""
        self.send(b"n NOTIFY SET (SELECTED (MessageNew (UID) MessageExpunge))"
                  b" (PERSONAL (MessageNew MessageExpunge))\r\n")
        self.assertEqual(self.send(b"i IDLE\r\n"), b"+ idling\r\n")
        self.assertEqual(
            withoutRecent(self.by(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE))),
            b"* 2 EXISTS\r\n* 2 FETCH (UID 2)\r\n")
        self.assertEqual(self.by(b"a APPEND Folder1 {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE)),
                         b"* STATUS Folder1 (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n")
        self.assertEqual(self.send(b"DONE\r\n"), b"i OK IDLE terminated\r\n")

    def test_clientBug(self):
        """FETCH by number under SELECTED MessageExpunge: OK [CLIENTBUG]; UID FETCH plain OK."""
        self.send(b"n NOTIFY SET (SELECTED (MessageNew MessageExpunge))\r\n")
        self.assertIn(b"f OK [CLIENTBUG] ", self.send(b"f FETCH 1 FLAGS\r\n"))
        self.assertIn(b"f OK FETCH completed", self.send(b"f UID FETCH 1 FLAGS\r\n"))

    def test_notifySetIsNoop(self):
        """A NOTIFY SET returns the selected mailbox's accumulated changes (implicit NOOP)."""
        self.send(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE), self.other)
        self.assertIn(b"* 2 EXISTS\r\n", self.send(b"n NOTIFY SET (PERSONAL (MessageNew))\r\n"))


class AccountListenerTests(NotifyTestMixin, unittest.TestCase):
    """The store's account listeners (IAccountStore.addAccountListener)."""

    def test_events(self):
        """Create, rename, subscribe, unsubscribe and delete are told in order, once each."""
        heard = []

        class Listener:
            def mailboxesChanged(self, changes):
                heard.extend(changes)
        from zope.interface import directlyProvides
        from mailstack.storage.interfaces import IAccountListener
        listener = Listener()
        directlyProvides(listener, IAccountListener)
        self.account.addAccountListener(listener)
        for d in (self.account.createMailbox("x/y"), self.account.renameMailbox("x", "z"),
                  self.account.subscribe("z"), self.account.subscribe("z"),
                  self.account.unsubscribe("z"), self.account.deleteMailbox("z/y")):
            self.successResultOf(d)
        M = accountevents.MailboxesChange
        self.assertEqual(heard, [
            M("created", "x"), M("created", "x/y"), M("renamed", "z", "x"),
            M("renamed", "z/y", "x/y"), M("subscribed", "z"), M("unsubscribed", "z"),
            M("deleted", "z/y")])
        self.account.removeAccountListener(listener)
        self.successResultOf(self.account.createMailbox("w"))
        self.assertEqual(len(heard), 7)


everyStore(globals())
