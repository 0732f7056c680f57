"""
Tests for L{mailstack.pop3.mailbox}: the POP3 maildrop over a real Maildir store.
"""

import os

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mailstack.auth.realm import MailRealm
from mailstack.pop3.plugin import plugin as pop3Plugin
from mailstack.pop3.mailbox import (
    IMaildrop, Maildrop, MaildropLocked, MessageDeleted, MessageGone,
    NoSuchMessageNumber, maildropAdapter, uniqueID)
from mailstack.storage.interfaces import MailboxInUse, StoreError
from mailstack.storage.account import MaildirStore

ONE = b"Subject: one\r\n\r\nfirst\r\n"
TWO = b"Subject: two\r\n\r\nsecond message\r\n"


class Renumbered:
    """A mailbox seen after its UIDVALIDITY changed (uidlist rebuilt)."""

    def __init__(self, mailbox):
        self._mailbox = mailbox
        self.uidValidity = mailbox.uidValidity + 1

    def __getattr__(self, name):
        return getattr(self._mailbox, name)


class MaildropTestMixin:

    def setUp(self):
        self.store = MaildirStore(self.mktemp())
        self.account = self.store.account("alice@lab.test")
        self.inbox = self.account.getMailbox("INBOX")
        for message in (ONE, TWO):
            self.inbox.deliver(message)
        self.inbox.noteDelivery()

    def opened(self, address="alice@lab.test", store=None):
        store = store or self.store
        maildrop = Maildrop(store.account(address), address)
        self.addCleanup(maildrop.close)
        self.successResultOf(maildrop.open())
        return maildrop

    def isLocked(self, address, store=None):
        """Whether a session holds C{address}'s maildrop lock (asking the store for it)."""
        store = store or self.store
        d = store.account(address).lockMaildrop()
        inUse = []
        d.addErrback(lambda f: inUse.append(f.trap(MailboxInUse)))
        lock = self.successResultOf(d)
        if inUse:
            return True
        lock.release()
        return False

    def files(self):
        return sorted(os.listdir(os.path.join(self.account.path, "cur"))
                      + os.listdir(os.path.join(self.account.path, "new")))


class MaildropTests(MaildropTestMixin, unittest.TestCase):
    """
    Snapshot, listing, reading, marks and the UPDATE state.
    """

    def test_interface(self):
        """Maildrop provides IMaildrop."""
        self.assertTrue(verifyObject(IMaildrop, self.opened()))

    def test_snapshot(self):
        """Numbers, sizes and count are fixed at open; later mail is not shown."""
        maildrop = self.opened()
        self.inbox.deliver(b"Subject: late\r\n\r\n")
        self.inbox.noteDelivery()
        self.assertEqual(maildrop.stat(), (2, len(ONE) + len(TWO)))
        self.assertEqual(maildrop.listing(), [(1, len(ONE)), (2, len(TWO))])
        self.assertRaises(NoSuchMessageNumber, maildrop.size, 3)
        self.assertRaises(NoSuchMessageNumber, maildrop.size, 0)

    def test_doesNotClaimRecent(self):
        """Opening for POP3 leaves \\Recent to the next IMAP session."""
        store = MaildirStore(self.mktemp())
        store.account("bob@lab.test").getMailbox("INBOX").deliver(ONE)
        self.opened("bob@lab.test", store)
        changes = self.successResultOf(store.account("bob@lab.test").getMailbox("INBOX").sync())
        self.assertEqual(len(changes.recent), 1)

    def test_openMessage(self):
        """openMessage streams the CRLF bytes."""
        with self.opened().openMessage(2) as f:
            self.assertEqual(f.read(), TWO)

    def test_uniqueIDFormat(self):
        """Unique-ids are Dovecot's default %08Xu%08Xv."""
        maildrop = self.opened()
        infos = self.inbox.messages()
        expected = ["%08x%08x" % (info.uid, self.inbox.uidValidity) for info in infos]
        self.assertEqual(maildrop.uniqueIDs(), list(enumerate(expected, 1)))
        self.assertEqual(maildrop.uniqueID(1), expected[0])
        self.assertEqual(uniqueID(10, 0x65A1B2C3), "0000000a65a1b2c3")

    def test_uniqueIDStable(self):
        """Unique-ids survive sessions, flag changes, foreign renames and a fresh store."""
        session = self.opened()
        first = session.uniqueIDs()
        session.close()  # the maildrop lock is the store's: one session at a time
        info = self.inbox.messages()[1]
        self.successResultOf(self.inbox.setFlags(info.uid, {"\\Seen", "\\Answered"}))
        curDir = os.path.join(self.account.path, "cur")
        name = [n for n in os.listdir(curDir) if n.startswith(info.key)][0]
        os.rename(os.path.join(curDir, name), os.path.join(curDir, info.key + ":2,FRS"))
        for store in (self.store, MaildirStore(self.store.root)):
            maildrop = self.opened(store=store)
            self.assertEqual(maildrop.uniqueIDs(), first)
            maildrop.close()

    def test_deleteAndReset(self):
        """delete marks; marked messages are skipped and refused; reset unmarks."""
        maildrop = self.opened()
        maildrop.delete(1)
        self.assertEqual(maildrop.stat(), (1, len(TWO)))
        self.assertEqual(maildrop.listing(), [(2, len(TWO))])
        self.assertEqual([n for n, _ in maildrop.uniqueIDs()], [2])
        for operation in (maildrop.size, maildrop.uniqueID, maildrop.openMessage,
                          maildrop.delete):
            self.assertRaises(MessageDeleted, operation, 1)
        self.failureResultOf(maildrop.markSeen(1), MessageDeleted)
        self.assertEqual(len(self.files()), 2)
        maildrop.reset()
        self.assertEqual(maildrop.stat()[0], 2)

    def test_commit(self):
        """commit removes exactly the marked messages from the Maildir."""
        maildrop = self.opened()
        keep = self.inbox.messages()[1].key
        maildrop.delete(1)
        self.assertEqual(self.successResultOf(maildrop.commit()), 1)
        self.assertEqual([info.key for info in self.inbox.messages()], [keep])
        self.assertEqual(len(self.files()), 1)

    def test_commitNothing(self):
        """commit without marks touches nothing."""
        self.assertEqual(self.successResultOf(self.opened().commit()), 0)
        self.assertEqual(len(self.files()), 2)

    def test_closeWithoutCommit(self):
        """Closing (a dropped connection) deletes nothing."""
        maildrop = self.opened()
        maildrop.delete(1)
        maildrop.delete(2)
        maildrop.close()
        self.assertEqual(len(self.files()), 2)

    def test_expungedMeanwhile(self):
        """A message expunged elsewhere is gone for openMessage and skipped by commit."""
        maildrop = self.opened()
        self.successResultOf(self.inbox.expunge([self.inbox.messages()[0].uid]))
        self.assertRaises(MessageGone, maildrop.openMessage, 1)
        self.failureResultOf(maildrop.markSeen(1), MessageGone)
        maildrop.delete(1)
        maildrop.delete(2)
        self.assertEqual(self.successResultOf(maildrop.commit()), 1)
        self.assertEqual(self.files(), [])

    def test_uidValidityChanged(self):
        """After the store's UIDs were reset, nothing is sent or deleted by old numbers."""
        maildrop = self.opened()
        maildrop.delete(1)
        maildrop.mailbox = Renumbered(maildrop.mailbox)
        self.assertRaises(MessageGone, maildrop.openMessage, 2)
        self.failureResultOf(maildrop.commit(), StoreError)
        self.assertEqual(len(self.files()), 2)

    def test_markSeen(self):
        """markSeen adds \\Seen, keeping the other flags."""
        maildrop = self.opened()
        uid = self.inbox.messages()[0].uid
        self.successResultOf(self.inbox.setFlags(uid, {"\\Flagged"}))
        self.successResultOf(maildrop.markSeen(1))
        self.successResultOf(maildrop.markSeen(1))
        self.assertEqual(self.inbox.messageInfo(uid).flags,
                         frozenset(["\\Seen", "\\Flagged"]))


class LockTests(MaildropTestMixin, unittest.TestCase):
    """
    One POP3 session per maildrop.
    """

    def test_secondOpenRefused(self):
        """A second maildrop for the same address cannot open."""
        self.opened()
        second = Maildrop(self.account, "alice@lab.test")
        self.failureResultOf(second.open(), MaildropLocked)
        second.close()
        self.assertTrue(self.isLocked("alice@lab.test"))

    def test_closeReleases(self):
        """close releases the lock, once; another session may then open."""
        first = self.opened()
        first.close()
        first.close()
        self.assertFalse(self.isLocked("alice@lab.test"))
        self.opened()

    def test_otherAddress(self):
        """Locks are per address: bob's session opens on his own (empty) maildrop beside alice's."""
        alice = self.opened()
        bob = self.opened("bob@lab.test")
        self.assertEqual(alice.stat(), (2, len(ONE) + len(TWO)))
        self.assertEqual(bob.stat(), (0, 0))
        self.assertTrue(self.isLocked("alice@lab.test"))
        self.assertTrue(self.isLocked("bob@lab.test"))
        bob.close()
        self.assertTrue(self.isLocked("alice@lab.test"))
        self.assertFalse(self.isLocked("bob@lab.test"))

    def test_registry(self):
        """Only the holder releases (the store's lock, account.lockMaildrop())."""
        holder = self.successResultOf(self.account.lockMaildrop())
        self.addCleanup(holder.release)
        self.failureResultOf(self.account.lockMaildrop(), MailboxInUse)
        self.assertTrue(self.isLocked("alice@lab.test"))
        holder.release()
        holder.release()
        self.assertFalse(self.isLocked("alice@lab.test"))

    def test_openFailureReleases(self):
        """If the mailbox cannot be read, the lock is not kept."""
        def broken(name):
            return defer.fail(StoreError("disk on fire"))
        self.account.openMailbox = broken
        maildrop = Maildrop(self.account, "alice@lab.test")
        self.failureResultOf(maildrop.open(), StoreError)
        self.assertFalse(self.isLocked("alice@lab.test"))


class AdapterTests(MaildropTestMixin, unittest.TestCase):
    """
    The realm gives POP3 logins a maildrop.
    """

    def test_avatarAdapters(self):
        """The pop3 plug-in registers IMaildrop -> maildropAdapter for the realm."""
        self.assertEqual(pop3Plugin.avatarAdapters(), {IMaildrop: maildropAdapter})

    def test_realm(self):
        """Through MailRealm: an unopened maildrop; logout releases its lock."""
        realm = MailRealm(self.store, pop3Plugin.avatarAdapters())
        interface, maildrop, logout = self.successResultOf(
            realm.requestAvatar(b"alice@lab.test", None, IMaildrop))
        self.assertIs(interface, IMaildrop)
        self.assertEqual(maildrop.address, "alice@lab.test")
        self.addCleanup(logout)
        self.assertFalse(self.isLocked("alice@lab.test"))  # unopened: no lock yet
        self.successResultOf(maildrop.open())
        self.assertEqual(maildrop.stat()[0], 2)
        self.assertTrue(self.isLocked("alice@lab.test"))
        logout()
        self.assertFalse(self.isLocked("alice@lab.test"))
