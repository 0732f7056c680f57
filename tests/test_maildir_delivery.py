"""
Tests for L{MaildirStore.deliver}'s shortcut: the INBOX of a recipient is
looked up once and kept, yet a Maildir removed behind the server's back is
made again and a link out of the account is still refused.
"""

import os
import shutil

from twisted.trial.unittest import TestCase

from mailstack.storage.account import MaildirStore
from mailstack.storage.interfaces import StoreError

ADDRESS = "demo@lab.test"
MESSAGE = b"From: a@lab.test\r\nSubject: hello\r\n\r\nbody\r\n"


class DeliverShortcutTests(TestCase):
    """Deliveries into a kept INBOX object behave as a fresh lookup would."""

    def setUp(self):
        self.root = self.mktemp()
        self.store = MaildirStore(self.root)
        self.home = os.path.join(self.root, "lab.test", "demo")

    def newFiles(self):
        return os.listdir(os.path.join(self.home, "new"))

    def test_maildirRemovedIsMadeAgain(self):
        """A delivery after the user's Maildir was removed makes it again and keeps the message."""
        self.successResultOf(self.store.deliver([ADDRESS], MESSAGE))
        shutil.rmtree(self.home)
        self.successResultOf(self.store.deliver([ADDRESS], MESSAGE))
        self.assertEqual(len(self.newFiles()), 1)

    def test_linkOutsideRefusedLater(self):
        """new/ swapped for a link outside the account after a first delivery: the next is refused."""
        self.successResultOf(self.store.deliver([ADDRESS], MESSAGE))
        elsewhere = self.mktemp()
        os.makedirs(elsewhere)
        shutil.rmtree(os.path.join(self.home, "new"))
        os.symlink(os.path.abspath(elsewhere), os.path.join(self.home, "new"))
        self.failureResultOf(self.store.deliver([ADDRESS], MESSAGE), StoreError)
        self.assertEqual(os.listdir(elsewhere), [])

    def test_linkInSameTickRefused(self):
        """new/ swapped for a link in the clock tick of the Maildir's last change (its times
        unchanged): the next delivery is still refused."""
        self.successResultOf(self.store.deliver([ADDRESS], MESSAGE))
        before = os.stat(self.home)  # just made: changed within the last seconds
        elsewhere = self.mktemp()
        os.makedirs(elsewhere)
        shutil.rmtree(os.path.join(self.home, "new"))
        os.symlink(os.path.abspath(elsewhere), os.path.join(self.home, "new"))
        realStat = os.stat

        def sameTick(path, *args, **kwargs):
            # The swap landed in the same tick: the directory's times read as before.
            if path == self.home:
                return before
            return realStat(path, *args, **kwargs)
        self.patch(os, "stat", sameTick)
        self.failureResultOf(self.store.deliver([ADDRESS], MESSAGE), StoreError)
        self.assertEqual(os.listdir(elsewhere), [])
