"""
The Maildir store keeps a bounded number of mailboxes no session uses
(C{[storage] cached_mailboxes}, L{mailstack.storage.keep}); the ones in use
are never replaced by a second object, and one dropped and opened again
shows the same messages, UIDs, flags and \\Recent.
"""

import gc
import os
import threading
import weakref

from twisted.internet import defer, task
from twisted.trial import unittest

from mailstack.auth.realm import MailRealm
from mailstack.imap.mailbox import IIMAPAccount, MailboxView, avatarFactory
from mailstack.pop3.mailbox import Maildrop
from mailstack.storage import account as accountModule
from mailstack.storage.account import MaildirStore
from mailstack.storage.keep import KeptMailboxes
from mailstack.storage.maildir import MaildirMailbox

MESSAGE = b"From: a@lab.test\r\nSubject: hi\r\n\r\nbody\r\n"


def liveMailboxes(root=""):
    """The Maildir mailbox objects under C{root} this process holds, once garbage
    is collected (other tests' objects may live on: trial keeps every test case)."""
    gc.collect()
    root = os.path.abspath(root) + os.sep if root else ""
    return [o for o in gc.get_objects() if isinstance(o, MaildirMailbox)
            and os.path.abspath(o.path).startswith(root)]


class Listener:
    def __init__(self):
        self.changes = []

    def mailboxChanged(self, mailbox, changes):
        self.changes.append(changes)


class KeptTests(unittest.TestCase):
    def setUp(self):
        self.store = MaildirStore(self.mktemp(), cacheSize=2)

    def user(self, n):
        return "user%d@lab.test" % (n,)

    def inbox(self, n):
        return self.successResultOf(self.store.account(self.user(n)).openMailbox("INBOX"))

    def select(self, n, readOnly=False):
        """An IMAP SELECT of user n's INBOX (a view, its listener registered)."""
        return self.successResultOf(MailboxView.open(self.inbox(n), readOnly))

    def churn(self, start=100, count=10):
        """Other users log in, SELECT their INBOX and log out."""
        for n in range(start, start + count):
            self.select(n).close()

    def test_manyUsersBounded(self):
        """After 50 users logged in through the realm, SELECTed INBOX and logged out,
        only the 2 kept mailboxes stay in memory."""
        realm = MailRealm(self.store, {IIMAPAccount: avatarFactory})
        for n in range(50):
            _, avatar, logout = self.successResultOf(
                realm.requestAvatar(self.user(n), None, IIMAPAccount))
            view = self.successResultOf(
                MailboxView.open(self.successResultOf(avatar.openMailbox("INBOX")), False))
            view.close()
            logout()
            del avatar, view
        self.assertEqual(len(liveMailboxes(self.store.root)), 2)

    def test_cacheSizeZero(self):
        """With cached_mailboxes = 0 no mailbox stays once its session closed."""
        self.store = MaildirStore(self.mktemp(), cacheSize=0)
        self.churn()
        self.assertEqual(liveMailboxes(self.store.root), [])

    def test_selectedNeverReplaced(self):
        """A mailbox selected in a session stays the one object of its directory, however
        many others come and go; a delivery reaches that session."""
        view = self.select(0)
        listener = Listener()
        view.store.addListener(listener)
        self.churn()
        self.assertIs(self.inbox(0), view.store)
        self.successResultOf(self.store.deliver([self.user(0)], MESSAGE))
        self.assertEqual(len(listener.changes), 1)
        self.assertEqual(len(listener.changes[0].added), 1)
        self.assertEqual(len([m for m in liveMailboxes() if m.path == view.store.path]), 1)

    def test_heldWithoutListenerNeverReplaced(self):
        """A mailbox a command still holds (no listener, not kept) is the one found again."""
        mailbox = self.inbox(0)
        self.churn()
        self.assertIs(self.inbox(0), mailbox)

    def test_pop3MaildropNeverReplaced(self):
        """While a POP3 session holds the maildrop, its INBOX is the one object found."""
        drop = Maildrop(self.store.account(self.user(0)), self.user(0))
        self.successResultOf(drop.open())
        self.churn()
        self.assertIs(self.inbox(0), drop.mailbox)
        drop.close()

    def test_deliveryInThreadNeverReplaced(self):
        """An INBOX whose delivery waits in a worker thread is the one object found meanwhile
        (with nothing kept), and the message then shows there."""
        jobs = []

        def later(f, *args, **kwargs):
            d = defer.Deferred()
            jobs.append((d, f, args, kwargs))
            return d
        self.store = MaildirStore(self.mktemp(), runInThread=later, cacheSize=0)
        account = self.store.account(self.user(0))
        account.getMailbox("INBOX")  # its uidlist made
        delivered = self.store.deliver([self.user(0)], MESSAGE)
        del account
        for n in range(100, 110):
            self.store.account(self.user(n)).getMailbox("INBOX")
        gc.collect()
        [(d, f, args, kwargs)] = jobs
        mailbox = self.store.account(self.user(0)).getMailbox("INBOX")
        self.assertEqual(args[0], [mailbox])
        self.assertIs(args[0][0], mailbox)
        jobs.pop()
        d.callback(f(*args, **kwargs))
        self.successResultOf(delivered)
        mailbox.syncNow(claimRecent=False)
        self.assertEqual(len(mailbox.messages()), 1)

    def test_reopenedSame(self):
        """A mailbox dropped and opened again shows the same UIDs, flags, modseqs,
        UIDVALIDITY and \\Recent (messages still in new/)."""
        for _ in range(3):
            self.successResultOf(self.store.deliver([self.user(0)], MESSAGE))
        mailbox = self.inbox(0)
        self.successResultOf(mailbox.setFlags(mailbox.messages()[0].uid, {"\\Flagged"}))
        before = [(i.uid, i.flags, i.modseq) for i in mailbox.messages()]
        validity, path, recent = mailbox.uidValidity, mailbox.path, mailbox.unclaimedUIDs()
        highest = mailbox.highestModseq
        self.assertEqual(len(recent), 2)
        del mailbox
        self.churn()
        self.assertNotIn(path, [m.path for m in liveMailboxes()])
        view = self.select(0)
        self.assertEqual([(i.uid, i.flags, i.modseq) for i in view.store.messages()], before)
        self.assertEqual(view.store.highestModseq, highest)
        self.assertEqual(view.store.uidValidity, validity)
        self.assertEqual(sorted(view.recent), recent)

    def test_placedRecentKept(self):
        """A message APPENDed with flags (into cur/) to a mailbox no session has open is
        still \\Recent for the next read-write SELECT after that mailbox was dropped."""
        account = self.store.account(self.user(0))
        self.successResultOf(account.createMailbox("Sent"))
        sent = self.successResultOf(account.openMailbox("Sent"))
        uid = self.successResultOf(sent.append(MESSAGE, ["\\Seen"]))
        path = sent.path
        del sent
        self.churn()
        self.assertNotIn(path, [m.path for m in liveMailboxes()])
        view = self.successResultOf(MailboxView.open(
            self.successResultOf(account.openMailbox("Sent")), False))
        self.assertEqual(view.recent, {uid})
        self.assertEqual(view.store.messages()[0].flags, frozenset({"\\Seen"}))
        view.close()
        second = self.successResultOf(MailboxView.open(view.store, False))
        self.assertEqual(second.recent, set())

    def test_placedRecentKeptWhenAppendedAfterLookup(self):
        """With nothing kept, a message APPENDed with flags after its mailbox was looked
        up is still \\Recent for the next read-write SELECT once that object is gone."""
        self.store = MaildirStore(self.mktemp(), cacheSize=0)
        account = self.store.account(self.user(0))
        self.successResultOf(account.createMailbox("Sent"))
        sent = self.successResultOf(account.openMailbox("Sent"))
        self.churn()
        uid = self.successResultOf(sent.append(MESSAGE, ["\\Seen"]))
        del sent
        self.assertEqual(liveMailboxes(self.store.root), [])
        view = self.successResultOf(MailboxView.open(
            self.successResultOf(account.openMailbox("Sent")), False))
        self.assertEqual(view.recent, {uid})

    def test_claimedRecentNotShownAgain(self):
        """A \\Recent message claimed by a SELECT before its mailbox was dropped is not
        \\Recent again after it is opened anew."""
        account = self.store.account(self.user(0))
        self.successResultOf(account.createMailbox("Sent"))
        sent = self.successResultOf(account.openMailbox("Sent"))
        self.successResultOf(sent.append(MESSAGE, ["\\Seen"]))
        first = self.successResultOf(MailboxView.open(sent, False))
        self.assertEqual(len(first.recent), 1)
        first.close()
        del sent, first
        self.churn()
        view = self.successResultOf(MailboxView.open(
            self.successResultOf(account.openMailbox("Sent")), False))
        self.assertEqual(view.recent, set())

    def test_otherSessionKeepsListening(self):
        """A session's IDLE listener on a mailbox keeps hearing of deliveries after
        another session on it logged out and many other users came and went."""
        watching = self.select(0)
        listener = Listener()
        watching.store.addListener(listener)
        self.select(0).close()
        self.churn()
        self.successResultOf(self.store.deliver([self.user(0)], MESSAGE))
        self.assertEqual(len(listener.changes), 1)

    def test_deletedFolderNotKept(self):
        """A folder deleted leaves no mailbox object behind."""
        account = self.store.account(self.user(0))
        self.successResultOf(account.createMailbox("Old"))
        path = self.successResultOf(account.openMailbox("Old")).path
        self.successResultOf(account.deleteMailbox("Old"))
        self.assertNotIn(path, [m.path for m in liveMailboxes()])


class DroppedWhileReopenedTests(unittest.TestCase):
    """
    Python frees a dropped mailbox object when its garbage cycle is collected,
    in whatever thread allocates then, and clears its weak references first:
    the store may make the next object of its directory while the old one is
    still being freed. Nothing a client sees may depend on the old one then.
    """

    def setUp(self):
        self.store = MaildirStore(self.mktemp(), cacheSize=0)
        self.account = self.store.account("u@lab.test")
        gc.disable()  # only the collections the tests run
        self.addCleanup(gc.enable)

    def open(self, name):
        return self.successResultOf(self.account.openMailbox(name))

    def changedFolder(self, name):
        """A new folder with a message APPENDed \\Seen (\\Recent only in this process)
        whose flags were then changed; @return: its mailbox and that UID."""
        self.successResultOf(self.account.createMailbox(name))
        mailbox = self.open(name)
        uid = self.successResultOf(mailbox.append(MESSAGE, ["\\Seen"]))
        mailbox.setFlagsNow(uid, ["\\Seen", "\\Flagged"])
        return mailbox, uid

    def laterModseq(self, name, uid):
        """The MODSEQ of C{uid} shown by a fresh object of folder C{name}."""
        gc.collect()
        self.assertEqual(liveMailboxes(self.store.root), [])
        return self.open(name).messageInfo(uid).modseq

    def test_reopenedWhileCollectedInThread(self):
        """A folder opened again while another thread's collection has cleared its dropped
        object's weak reference but not freed it shows the APPENDed message as \\Recent,
        and that message's MODSEQ never goes back afterwards (RFC 7162)."""
        mailbox, uid = self.changedFolder("Sent")
        collecting, release = threading.Event(), threading.Event()

        def holdOpen(ref):
            # every weak reference of the garbage is cleared, nothing freed yet
            collecting.set()
            if threading.current_thread() is not threading.main_thread():
                release.wait(30)
        ref = weakref.ref(mailbox, holdOpen)
        del mailbox
        collector = threading.Thread(target=gc.collect)
        collector.start()
        self.addCleanup(collector.join)
        self.addCleanup(release.set)
        self.assertTrue(collecting.wait(30))
        self.assertIsNone(ref())
        reopened = self.open("Sent")
        recent, seen = reopened.unclaimedUIDs(), reopened.messageInfo(uid).modseq
        release.set()
        collector.join()
        del reopened
        self.assertEqual(recent, [uid])
        self.assertGreaterEqual(self.laterModseq("Sent", uid), seen)

    def test_reopenedWithinCollection(self):
        """Folders opened again in the very collection that frees their dropped objects
        (as the reactor can while a worker thread collects) each show their APPENDed
        message as \\Recent, and no message's MODSEQ goes back afterwards."""
        names = ["F%d" % (n,) for n in range(5)]
        uids, refs, reopened, errors = {}, [], {}, []

        def reopen(ref):
            # the first callback: every dropped object's weak reference is cleared
            try:
                for name in names:
                    if name not in reopened:
                        mailbox = self.account.getMailbox(name)
                        reopened[name] = (mailbox, mailbox.unclaimedUIDs(),
                                          mailbox.messageInfo(uids[name]).modseq)
            except Exception as e:
                errors.append(e)
        for name in names:
            mailbox, uids[name] = self.changedFolder(name)
            refs.append(weakref.ref(mailbox, reopen))
        del mailbox
        gc.collect()
        self.assertEqual(errors, [])
        self.assertEqual(sorted(reopened), names)
        self.assertEqual({name: recent for name, (_, recent, _) in reopened.items()},
                         {name: [uids[name]] for name in names})
        seen = {name: modseq for name, (_, _, modseq) in reopened.items()}
        reopened.clear()
        later = {name: self.laterModseq(name, uids[name]) for name in names}
        self.assertEqual([name for name in names if later[name] < seen[name]], [])

    def test_changesWrittenAtOnce(self):
        """A flag change's and an expunge's modseqs are on disk as soon as they are made:
        another object of the folder shows the same MODSEQ, HIGHESTMODSEQ and VANISHED."""
        mailbox, uid = self.changedFolder("Sent")
        other = self.successResultOf(mailbox.append(MESSAGE, ["\\Seen"]))
        mailbox.syncNow(claimRecent=False)
        before = mailbox.highestModseq
        mailbox.setFlagsNow(other, ["\\Answered"])
        fresh = MaildirMailbox("Sent", mailbox.path)
        self.assertEqual(fresh.messageInfo(other).modseq, mailbox.messageInfo(other).modseq)
        self.assertEqual(fresh.highestModseq, mailbox.highestModseq)
        mailbox.expungeNow([uid])
        fresh = MaildirMailbox("Sent", mailbox.path)
        self.assertEqual(fresh.highestModseq, mailbox.highestModseq)
        self.assertEqual(fresh.vanishedSince(before), [uid])


class EndOfTurnModseqTests(unittest.TestCase):
    """
    With a clock (the service's reactor), a flag change's or an expunge's
    modseq lines are written at the end of the reactor turn: one write for
    a STORE over many messages, not one each (a STORE of 10,000 messages
    took twice the CPU with a write per message), and still before the
    object could be dropped.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.store = MaildirStore(self.mktemp(), cacheSize=0, clock=self.clock)
        self.account = self.store.account("u@lab.test")
        self.mailbox = self.successResultOf(self.account.openMailbox("INBOX"))
        self.uids = [self.successResultOf(self.mailbox.append(MESSAGE, ["\\Seen"]))
                     for _ in range(3)]
        self.mailbox.syncNow(claimRecent=False)

    def fresh(self):
        """Another object of the INBOX, as another process would read it."""
        return MaildirMailbox("INBOX", self.mailbox.path)

    def test_oneWritePerTurn(self):
        """Three flag changes and an expunge in one turn are written once, when the turn ends."""
        self.flushes = []
        flush = self.mailbox._modseq.flush
        self.patch(self.mailbox._modseq, "flush", lambda: (self.flushes.append(1), flush()))
        for uid in self.uids:
            self.mailbox.setFlagsNow(uid, ["\\Seen", "\\Flagged"])
        self.mailbox.expungeNow([self.uids[0]])
        self.assertEqual(self.flushes, [])
        self.clock.advance(0)
        self.assertEqual(self.flushes, [1])
        fresh = self.fresh()
        self.assertEqual(fresh.highestModseq, self.mailbox.highestModseq)
        self.assertEqual([fresh.messageInfo(uid).modseq for uid in self.uids[1:]],
                         [self.mailbox.messageInfo(uid).modseq for uid in self.uids[1:]])

    def test_droppedObjectWritesFirst(self):
        """A mailbox dropped by every user before the turn ends is not freed until its
        lines are written: a later object shows the same MODSEQ and VANISHED."""
        before = self.mailbox.highestModseq
        self.mailbox.setFlagsNow(self.uids[1], ["\\Answered"])
        modseq = self.mailbox.messageInfo(self.uids[1]).modseq
        self.mailbox.expungeNow([self.uids[0]])
        ref = weakref.ref(self.mailbox)
        del self.mailbox
        gc.collect()
        self.assertIsNotNone(ref())  # the pending write holds it
        self.clock.advance(0)
        gc.collect()
        self.assertIsNone(ref())
        later = self.successResultOf(self.account.openMailbox("INBOX"))
        self.assertEqual(later.messageInfo(self.uids[1]).modseq, modseq)
        self.assertEqual(later.vanishedSince(before), [self.uids[0]])


class PlacedRecentTests(unittest.TestCase):
    def test_keptByDirectoryBounded(self):
        """The \\Recent UIDs placed in cur/ outlive their mailbox objects for the 1,024
        directories most recently given some; a claim, or a new UIDVALIDITY, ends them."""
        kept = KeptMailboxes(0)
        for n in range(1025):
            placed = kept.placedFor("/m/%d" % (n,))
            placed.validFor(7)
            placed.add([n + 1])
        self.assertFalse(kept.placedFor("/m/0").waiting)
        last = kept.placedFor("/m/1024")
        self.assertEqual(last.among({1025, 3}), {1025})
        self.assertEqual(last.claim({1025}), {1025})
        self.assertFalse(kept.placedFor("/m/1024").waiting)
        again = kept.placedFor("/m/1023")
        again.validFor(8)
        self.assertFalse(kept.placedFor("/m/1023").waiting)
        kept.forget("/m/1022")
        self.assertFalse(kept.placedFor("/m/1022").waiting)


class MakeMaildirTests(unittest.TestCase):
    def setUp(self):
        self.store = MaildirStore(self.mktemp(), cacheSize=0)
        self.made = []
        real = accountModule.makeMaildir

        def counting(path, folder):
            self.made.append(path)
            return real(path, folder)
        self.patch(accountModule, "makeMaildir", counting)

    def test_notAtEveryLogin(self):
        """Logging in again as a user whose account is in use makes no directories."""
        account = self.store.account("a@lab.test")
        self.made.clear()
        for _ in range(3):
            self.assertIs(self.store.account("a@lab.test"), account)
        self.assertEqual(self.made, [])

    def test_existingMaildirNotMadeAgain(self):
        """A fresh process opening an existing user's INBOX and folder makes nothing (it
        only looks that cur/, new/, tmp/ and the folder marker are there)."""
        account = self.store.account("a@lab.test")
        self.successResultOf(account.createMailbox("Sent"))
        del account
        gc.collect()
        self.made.clear()
        account = MaildirStore(self.store.root).account("a@lab.test")
        self.successResultOf(account.openMailbox("INBOX"))
        self.successResultOf(account.openMailbox("Sent"))
        self.assertEqual(self.made, [])

    def test_missingPartsMade(self):
        """A folder missing its tmp/ or its maildirfolder marker gets them when opened."""
        account = self.store.account("a@lab.test")
        self.successResultOf(account.createMailbox("Sent"))
        folder = os.path.join(account.path, ".Sent")
        os.rmdir(os.path.join(folder, "tmp"))
        os.unlink(os.path.join(folder, "maildirfolder"))
        gc.collect()
        self.successResultOf(account.openMailbox("Sent"))
        self.assertTrue(os.path.isdir(os.path.join(folder, "tmp")))
        self.assertTrue(os.path.exists(os.path.join(folder, "maildirfolder")))

    def test_inboxRemovedMadeAgain(self):
        """An INBOX whose Maildir was removed while its account stayed in use is made
        again when it is next opened."""
        import shutil
        account = self.store.account("a@lab.test")
        self.successResultOf(account.openMailbox("INBOX"))
        gc.collect()
        shutil.rmtree(account.path)
        mailbox = self.successResultOf(account.openMailbox("INBOX"))
        self.assertEqual(mailbox.messages(), [])
        self.assertTrue(os.path.isdir(os.path.join(account.path, "cur")))


class ConfigTests(unittest.TestCase):
    def load(self, extra):
        from mailstack.config import loadConfig
        from tests.helpers import BASE_CONFIG, writeConfig
        return loadConfig(writeConfig(self, BASE_CONFIG, extra))

    def test_default(self):
        """Without the key, 256 unused mailboxes are kept."""
        self.assertEqual(self.load("").storage.cached_mailboxes, 256)

    def test_reachesStore(self):
        """[storage] cached_mailboxes sets how many unused mailboxes the server's store keeps."""
        from twisted.internet import task

        from mailstack import service
        top = service.buildService(self.load("[storage]\ncached_mailboxes = 0\n"), task.Clock())
        top.store.account("a@lab.test").getMailbox("INBOX").syncNow()
        self.assertEqual(liveMailboxes(top.store.root), [])

    def test_bad(self):
        """A negative or non-integer value is one line naming storage.cached_mailboxes."""
        from mailstack.config import ConfigError
        for value in ("-1", '"many"', "2000000"):
            e = self.assertRaises(ConfigError, self.load, "[storage]\ncached_mailboxes = %s\n"
                                  % (value,))
            self.assertIn(": storage.cached_mailboxes: must be ", str(e))
