"""
Tests for L{mailstack.storage.watch}: open sessions hear of mail another program
puts into the Maildir, with inotify and with the polling fallback.
"""

import gc
import os
import weakref

from twisted.internet import defer, reactor, task
from twisted.logger import LogLevel
from twisted.trial import unittest
from zope.interface import implementer

from mailstack.storage.interfaces import IMailboxListener, StoreError
from mailstack.storage.account import MaildirStore
from mailstack.storage.watch import MailboxWatcher
from tests.helpers import LogWatch


@implementer(IMailboxListener)
class Listener:
    def __init__(self):
        self.changes = []
        self.waiting = None

    def mailboxChanged(self, mailbox, changes):
        self.changes.append(changes)
        if self.waiting is not None and changes.added:
            d, self.waiting = self.waiting, None
            d.callback(changes)

    def nextAddition(self, timeout=10):
        self.waiting = defer.Deferred()
        return self.waiting.addTimeout(timeout, reactor)


class SlowMailbox:
    """A mailbox whose syncs answer when the test says."""

    path = "/nonexistent"
    waitingForUIDs = False
    uidNext = 1

    def __init__(self):
        self.syncs = []

    def sync(self, claimRecent=True):
        self.syncs.append(defer.Deferred())
        return self.syncs[-1]


def dropMessage(mailboxPath, name="1700000000.outside.host", body=b"Subject: x\n\nhi\n"):
    """Deliver the way another MDA does: write into tmp/, rename into new/."""
    tmp = os.path.join(mailboxPath, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(body)
    os.rename(tmp, os.path.join(mailboxPath, "new", name))


class WatcherTests(unittest.TestCase):
    def open(self, watcher):
        self.addCleanup(watcher.stopService)
        store = MaildirStore(self.mktemp(), watcher)
        mailbox = store.account("demo@lab.test").getMailbox("INBOX")
        listener = Listener()
        mailbox.addListener(listener)
        return mailbox, listener

    @defer.inlineCallbacks
    def test_inotifyNoticesOutsideDelivery(self):
        """A file renamed into new/ by another program reaches the listener."""
        watcher = MailboxWatcher(reactor)
        if watcher.mode != "inotify":
            raise unittest.SkipTest("inotify is not available here")
        mailbox, listener = self.open(watcher)
        waiting = listener.nextAddition()
        dropMessage(mailbox.path)
        changes = yield waiting
        self.assertEqual(len(changes.added), 1)
        self.assertEqual([m.uid for m in mailbox.messages()], list(changes.added))

    def test_pollingFallback(self):
        """Without inotify the watcher polls and still notices."""
        clock = task.Clock()
        watcher = MailboxWatcher(clock, pollInterval=5.0, useInotify=False)
        self.assertEqual(watcher.mode, "poll")
        mailbox, listener = self.open(watcher)
        dropMessage(mailbox.path)
        clock.advance(4.9)
        self.assertEqual([c for c in listener.changes if c.added], [])
        clock.advance(0.2)
        self.assertEqual(len([c for c in listener.changes if c.added]), 1)

    def test_unwatchedWhenNoListeners(self):
        """Removing the last listener stops watching (no polling of idle mailboxes)."""
        clock = task.Clock()
        watcher = MailboxWatcher(clock, useInotify=False)
        mailbox, listener = self.open(watcher)
        mailbox.removeListener(listener)
        dropMessage(mailbox.path)
        clock.advance(60)
        self.assertEqual(listener.changes, [])
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_burstIsOneSync(self):
        """Several files arriving together are reported by one debounced sync."""
        watcher = MailboxWatcher(reactor, delay=0.2)
        if watcher.mode != "inotify":
            raise unittest.SkipTest("inotify is not available here")
        mailbox, listener = self.open(watcher)
        waiting = listener.nextAddition()
        for i in range(5):
            dropMessage(mailbox.path, name="17000000%02d.outside.host" % (i,))
        changes = yield waiting
        self.assertEqual(len(changes.added), 5)


    def test_waitingForUIDsLookedAtSoon(self):
        """A new file found while another process holds the uidlist lock (a worker
        numbering its APPEND; the uidlist it writes is not watched) reaches the
        listener soon after the lock is gone, not at the next poll, with no warning;
        a lock that stays is retried at the poll interval with one warning."""
        clock = task.Clock()
        watcher = MailboxWatcher(clock, delay=0.05, pollInterval=5.0, useInotify=False)
        mailbox, listener = self.open(watcher)
        lock = os.path.join(mailbox.path, "dovecot-uidlist.lock")

        def added():
            return len([c for c in listener.changes if c.added])
        dropMessage(mailbox.path)
        with open(lock, "w"):
            pass
        log = LogWatch(self)
        clock.advance(5)  # the poll finds the file; its UID waits
        self.assertTrue(mailbox.waitingForUIDs)
        clock.advance(0.05)  # looked at again: still locked
        self.assertEqual(added(), 0)
        os.unlink(lock)
        clock.advance(0.1)
        self.assertEqual(added(), 1)
        self.assertEqual(log.texts(LogLevel.warn), [])
        dropMessage(mailbox.path, name="1700000001.outside.host")
        with open(lock, "w"):
            pass
        clock.pump([0.05] * 130)  # the next poll, then five looks in a row: still held
        self.assertEqual(added(), 1)
        self.assertEqual(len(log.texts(LogLevel.warn)), 1)
        self.assertEqual(log.problems(), [])

    def test_unwatchedWhileSyncFailsLetGo(self):
        """A mailbox unwatched (its last session gone) while a sync of it is under way
        is let go when that sync fails: not retried, not warned about, and not held in
        memory by the watcher (the store drops unused mailboxes)."""
        clock = task.Clock()
        watcher = MailboxWatcher(clock, pollInterval=5.0, useInotify=False)
        self.addCleanup(watcher.stopService)
        mailbox = SlowMailbox()
        watcher.watch(mailbox)
        clock.advance(5)  # the poll syncs it
        self.assertEqual(len(mailbox.syncs), 1)
        watcher.unwatch(mailbox)
        log = LogWatch(self)
        mailbox.syncs.pop().errback(StoreError("dovecot-uidlist is damaged"))
        ref = weakref.ref(mailbox)
        del mailbox
        gc.collect()
        self.assertIsNone(ref())
        self.assertEqual(log.texts(LogLevel.warn), [])
        clock.advance(5)  # the last poll, finding nothing watched
        self.assertEqual(clock.getDelayedCalls(), [])
