"""
What lets many IDLE sessions share one mailbox cheaply (issue 16's 10,000
idle sessions, bench/scale.py): one poll per mailbox for all its IDLE
sessions (L{mailstack.imap.idlepoll}); a push caused by the store's own news
does not sync the store again per session (L{MailboxView.sync}); a Maildir
whose stamps may hide a change is rescanned at most once per
L{maildir.RESCAN_GAP}, yet never misses that change.
"""

import os
import re
import time

from twisted.trial import unittest

from mailstack.storage import maildir
from tests.stores import everyStore
from tests.test_imap_server import MESSAGE, IMAPTestMixin

SESSIONS = 5


class SyncCounter:
    """Counts C{sync} calls on a mailbox store (wrapping its method)."""

    def __init__(self, testCase, store):
        self.calls = 0
        original = store.sync

        def sync(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)
        testCase.patch(store, "sync", sync)


class SharedIdleTests(IMAPTestMixin, unittest.TestCase):
    """
    Several sessions idling on one INBOX.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver()
        self.sessions = [(self.server, self.transport)] + [
            self.connect() for _ in range(SESSIONS - 1)]
        for session in self.sessions:
            self.select(session)
            self.assertEqual(self.send(b"i IDLE\r\n", session), b"+ idling\r\n")
        self.mailbox = self.openMailbox("INBOX")
        self.counter = SyncCounter(self, self.mailbox)

    def test_onePollPerMailbox(self):
        """Idle sessions on one mailbox are polled by one sync per interval, not one each."""
        self.clock.advance(1)
        self.assertEqual(self.counter.calls, 1)
        self.clock.advance(1)
        self.assertEqual(self.counter.calls, 2)

    def test_noPollWhileOneRuns(self):
        """A poll slower than the interval (UIDs given in a worker thread) is not joined by
        more: the next one starts an interval after it ends."""
        from twisted.internet import defer
        pending = []
        self.patch(self.mailbox, "sync", lambda **kwargs: (
            pending.append(defer.Deferred()) or pending[-1]))
        self.clock.advance(1)
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertEqual(len(pending), 1)
        pending[0].callback(None)
        self.clock.advance(1)
        self.assertEqual(len(pending), 2)

    def test_pollStopsWithIdle(self):
        """When every session has left IDLE, the mailbox is polled no more."""
        for session in self.sessions:
            self.assertEqual(self.send(b"DONE\r\n", session), b"i OK IDLE terminated\r\n")
        self.counter.calls = 0
        self.clock.advance(5)
        self.assertEqual(self.counter.calls, 0)

    def test_pushWithoutResync(self):
        """A delivery reaches every idle session with EXISTS, the store synced once, not once per session."""
        for _, transport in self.sessions:
            transport.clear()
        self.deliver()
        self.clock.advance(0)
        for _, transport in self.sessions:
            self.assertIn(b"* 2 EXISTS\r\n", transport.value())
        self.assertLessEqual(self.counter.calls, 1)

    def test_recentStillOnce(self):
        """With the pushes trusting the store's news, exactly one session is told the message is \\Recent."""
        for _, transport in self.sessions:
            transport.clear()
        self.deliver()
        self.clock.advance(0)
        told = [t.value() for _, t in self.sessions
                if re.search(rb"\* [1-9]\d* RECENT", t.value())]
        self.assertEqual(len(told), 1, [t.value() for _, t in self.sessions])


class MaildirOutsideIdleTests(IMAPTestMixin, unittest.TestCase):
    """
    Idle sessions and files another program drops into the Maildir.
    """

    maildirOnly = True

    def test_outsideDeliveryReachesAll(self):
        """A file written by another program reaches every idle session within a poll interval."""
        self.deliver()
        sessions = [(self.server, self.transport), self.connect(), self.connect()]
        for session in sessions:
            self.select(session)
            self.send(b"i IDLE\r\n", session)
            session[1].clear()
        self.openMailbox("INBOX").deliver(MESSAGE)
        self.clock.advance(1)
        for _, transport in sessions:
            self.assertIn(b"* 2 EXISTS\r\n", transport.value())


# A little over the gap: time.monotonic() + RESCAN_GAP - time.monotonic() can
# come out a hair under RESCAN_GAP in floating point (it did once the machine
# had been up for ten hours), which is not what these tests are about.
GAP = maildir.RESCAN_GAP * 1.01


class RescanGapTests(unittest.TestCase):
    """
    A Maildir folder synced again and again right after a change.
    """

    def setUp(self):
        from mailstack.storage.account import MaildirStore
        store = MaildirStore(self.mktemp())
        self.mailbox = self.successResultOf(
            store.account("alice@lab.test").openMailbox("INBOX"))
        self.rescans = 0
        original = self.mailbox._rescan

        def rescan(*args, **kwargs):
            self.rescans += 1
            return original(*args, **kwargs)
        self.patch(self.mailbox, "_rescan", rescan)
        self.now = time.monotonic()
        self.patch(maildir.time, "monotonic", lambda: self.now)

    def drop(self, name, keepTimes=False):
        """Write a message file into new/ as another program would; with C{keepTimes} new/'s stamps do not move."""
        new = os.path.join(self.mailbox.path, "new")
        before = os.stat(new)
        with open(os.path.join(new, name), "wb") as f:
            f.write(MESSAGE)
        if keepTimes:
            os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))

    def test_burstRescansOnce(self):
        """Many syncs right after a change rescan once per gap, not once each."""
        self.drop("1.M1P1.other")
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.rescans = 0
        for _ in range(100):
            self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.assertEqual(self.rescans, 0)
        self.now += GAP
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.assertEqual(self.rescans, 1)

    def test_hiddenChangeFoundAfterGap(self):
        """A file added in the same clock tick (stamps unchanged) is found by the first sync after the gap."""
        self.drop("1.M1P1.other")
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.drop("2.M2P2.other", keepTimes=True)
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.now += GAP
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.assertEqual(len(self.mailbox.messages()), 2)

    def test_hiddenChangeFoundAfterWindow(self):
        """A hidden change is still found once the directory times are old: one last rescan, then trusted."""
        self.drop("1.M1P1.other")
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.drop("2.M2P2.other", keepTimes=True)
        self.patch(self.mailbox, "_recentlyChanged", lambda stamps: False)
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.assertEqual(len(self.mailbox.messages()), 2)
        self.rescans = 0
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.assertEqual(self.rescans, 1)  # the last rescan began less than 2 s after the change
        later = time.time_ns() + 10 ** 10
        self.patch(maildir.time, "time_ns", lambda: later)
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.rescans = 0
        self.successResultOf(self.mailbox.sync(claimRecent=False))
        self.assertEqual(self.rescans, 0)


everyStore(globals())
