"""
Tests for account listeners (IAccountStore.addAccountListener, IMAP NOTIFY's
MailboxName and SubscriptionChange): the Maildir store also tells of folders
and subscriptions another program changes, which the watcher notices (here
polled on a Clock), and tells of its own changes once; and the watcher goes
on watching after a watched folder is deleted (real inotify).
"""

import os
import shutil

from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface import implementer

from mailstack.storage.accountevents import (
    CREATED, DELETED, SUBSCRIBED, AccountListeners, MailboxesChange)
from mailstack.storage.account import MaildirStore
from mailstack.storage.files import makeMaildir
from mailstack.storage.interfaces import IAccountListener, IMailboxListener
from mailstack.storage.subscriptions import SUBSCRIPTIONS
from mailstack.storage.watch import MailboxWatcher


@implementer(IAccountListener)
class Heard:
    def __init__(self):
        self.changes = []

    def mailboxesChanged(self, changes):
        self.changes.extend(changes)


class OutsideChangeTests(unittest.TestCase):
    """Folders and subscriptions changed behind the store's back, polled."""

    def setUp(self):
        self.clock = task.Clock()
        self.watcher = MailboxWatcher(self.clock, pollInterval=5.0, useInotify=False)
        self.store = MaildirStore(self.mktemp(), self.watcher)
        self.account = self.store.account("demo@lab.test")
        self.heard = Heard()
        self.account.addAccountListener(self.heard)

    def test_folderMadeAndRemoved(self):
        """A folder another program makes, then removes, is told as created, then deleted."""
        makeMaildir(os.path.join(self.account.path, ".Other"), folder=True)
        self.clock.advance(5)
        self.assertEqual(self.heard.changes, [MailboxesChange(CREATED, "Other")])
        shutil.rmtree(os.path.join(self.account.path, ".Other"))
        self.clock.advance(5)
        self.assertEqual(self.heard.changes[1:], [MailboxesChange(DELETED, "Other")])

    def test_subscriptionsFile(self):
        """A subscriptions file another program writes is told as (un)subscriptions."""
        with open(os.path.join(self.account.path, SUBSCRIPTIONS), "w") as f:
            f.write("INBOX\n")
        self.clock.advance(5)
        self.assertEqual(self.heard.changes, [MailboxesChange(SUBSCRIBED, "INBOX")])

    def test_ownChangeToldOnce(self):
        """The account's own CREATE is told once, not again by the next look at the directory."""
        self.successResultOf(self.account.createMailbox("Mine"))
        self.clock.advance(5)
        self.assertEqual(self.heard.changes, [MailboxesChange(CREATED, "Mine")])

    def test_unwatched(self):
        """Without account listeners the directory is no longer looked at."""
        self.account.removeAccountListener(self.heard)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        makeMaildir(os.path.join(self.account.path, ".Other"), folder=True)
        self.clock.advance(5)
        self.assertEqual(self.heard.changes, [])


class AccountListenersTests(unittest.TestCase):
    """The registry both stores keep."""

    def test_failingListener(self):
        """A listener that raises is logged; the others are still told."""
        @implementer(IAccountListener)
        class Broken:
            def mailboxesChanged(self, changes):
                raise ValueError("broken")
        listeners, heard = AccountListeners(), Heard()
        listeners.add(Broken())
        listeners.add(heard)
        listeners.tell([MailboxesChange(CREATED, "x")])
        self.assertEqual(heard.changes, [MailboxesChange(CREATED, "x")])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_nothingToTell(self):
        """An empty list of changes tells nobody."""
        listeners, heard = AccountListeners(), Heard()
        listeners.add(heard)
        listeners.add(heard)
        listeners.tell([])
        self.assertEqual(heard.changes, [])
        listeners.remove(heard)
        self.assertFalse(listeners)


class NotifierLostTests(unittest.TestCase):
    """
    Twisted's INotify closes its descriptor when any watched directory is
    deleted: the watcher opens another and keeps watching the rest.
    """

    def setUp(self):
        from twisted.internet import reactor
        from mailstack.storage import watch
        if watch.inotify is None:
            raise unittest.SkipTest("no inotify here")
        self.reactor = reactor
        self.watcher = MailboxWatcher(reactor, delay=0.01)
        self.addCleanup(self.watcher.stopService)
        self.store = MaildirStore(self.mktemp(), self.watcher)
        self.account = self.store.account("demo@lab.test")

    def wait(self, seconds=0.3):
        return task.deferLater(self.reactor, seconds, lambda: None)

    @defer.inlineCallbacks
    def test_deletedFolderDoesNotStopWatching(self):
        """After a watched folder is deleted behind its back, other changes are still noticed."""
        for name in ("Keep", "Gone"):
            makeMaildir(os.path.join(self.account.path, "." + name), folder=True)
        heard, changed = Heard(), []

        @implementer(IMailboxListener)
        class Listener:
            def mailboxChanged(self, mailbox, changes):
                changed.append((mailbox.name, changes.added))
        keep = self.account.getMailbox("Keep")
        gone = self.account.getMailbox("Gone")
        listener = Listener()
        keep.addListener(listener)
        gone.addListener(listener)
        self.addCleanup(keep.removeListener, listener)
        self.addCleanup(gone.removeListener, listener)
        self.account.addAccountListener(heard)
        self.addCleanup(self.account.removeAccountListener, heard)
        shutil.rmtree(gone.path)
        yield self.wait()
        with open(os.path.join(keep.path, "new", "1700000000.x.host"), "wb") as f:
            f.write(b"Subject: x\r\n\r\nx\r\n")
        makeMaildir(os.path.join(self.account.path, ".Later"), folder=True)
        yield self.wait(1.0)
        self.assertIn(("Keep", [1]), changed)
        self.assertIn(MailboxesChange(CREATED, "Later"), heard.changes)
