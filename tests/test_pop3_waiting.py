"""
L{mailstack.pop3.waiting}: the line of POP3 logins waiting for a busy
maildrop, on a fake clock over the memory store.
"""

from twisted.internet import defer, task
from twisted.trial import unittest

from mailstack.pop3.waiting import MaildropBusy, MaildropWaiters
from mailstack.storage.memory import MemoryStore

ALICE = "alice@lab.test"


class WaitersTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.waiters = MaildropWaiters(self.clock, pollInterval=0.1)
        self.account = MemoryStore().account(ALICE)

    def acquire(self, timeout=5):
        return self.waiters.acquire(self.account, ALICE, timeout)

    def test_freeAtOnce(self):
        """A free maildrop is taken at once; releasing it frees it for the store."""
        lock = self.successResultOf(self.acquire())
        self.failureResultOf(self.account.lockMaildrop())
        lock.release()
        self.successResultOf(self.account.lockMaildrop()).release()

    def test_fifo(self):
        """Waiters get the maildrop one after the other, in the order they came."""
        first = self.successResultOf(self.acquire())
        second, third = self.acquire(), self.acquire()
        self.assertNoResult(second)
        self.assertNoResult(third)
        self.assertEqual(self.waiters.waiting(ALICE), 2)
        first.release()
        held = self.successResultOf(second)
        self.assertNoResult(third)
        held.release()
        self.successResultOf(third).release()
        self.assertEqual(self.waiters.waiting(ALICE), 0)

    def test_timeout(self):
        """Past its wait, a waiter fails with MaildropBusy and leaves the line."""
        self.successResultOf(self.acquire())
        waiting = self.acquire(timeout=2)
        self.clock.advance(1.9)
        self.assertNoResult(waiting)
        self.clock.advance(0.2)
        self.failureResultOf(waiting, MaildropBusy)
        self.assertEqual(self.waiters.waiting(ALICE), 0)

    def test_noWait(self):
        """A timeout of 0 refuses at once when the maildrop is held."""
        self.successResultOf(self.acquire())
        self.failureResultOf(self.acquire(timeout=0), MaildropBusy)

    def test_cancelLeavesTheLine(self):
        """A cancelled wait (the client left) is out of the line; the next one is served."""
        first = self.successResultOf(self.acquire())
        second, third = self.acquire(), self.acquire()
        second.cancel()
        self.failureResultOf(second, defer.CancelledError)
        first.release()
        self.successResultOf(third)

    def test_heldByAnotherProcessPolled(self):
        """A lock nobody in this line holds (another process) is polled until free."""
        other = self.successResultOf(self.account.lockMaildrop())
        waiting = self.acquire()
        self.clock.advance(1)
        self.assertNoResult(waiting)
        other.release()
        self.clock.advance(0.1)
        self.successResultOf(waiting)

    def test_noTimersLeft(self):
        """Once everybody is served, no timer is left on the clock."""
        first = self.successResultOf(self.acquire())
        second = self.acquire()
        first.release()
        self.successResultOf(second).release()
        self.clock.advance(1)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class POP3ConfigTests(unittest.TestCase):
    """[pop3] lock and lock_wait, and the one line when they are wrong."""

    def load(self, extra):
        from mailstack.config import loadConfig
        from tests.helpers import BASE_CONFIG, writeConfig
        return loadConfig(writeConfig(self, BASE_CONFIG, extra))

    def test_default(self):
        """Without [pop3]: logins wait up to 5 s for a busy maildrop."""
        pop3 = self.load("").pop3
        self.assertEqual((pop3.lock, pop3.lock_wait), ("wait", 5.0))

    def test_snapshot(self):
        """lock = "snapshot" and a lock_wait are read."""
        pop3 = self.load('[pop3]\nlock = "snapshot"\nlock_wait = 0\n').pop3
        self.assertEqual((pop3.lock, pop3.lock_wait), ("snapshot", 0.0))

    def test_errors(self):
        """A bad lock or lock_wait is one line naming the key."""
        from mailstack.config import ConfigError
        e = self.assertRaises(ConfigError, self.load, '[pop3]\nlock = "none"\n')
        self.assertTrue(str(e).endswith(
            "pop3.lock: must be one of wait, snapshot, not 'none'"), str(e))
        e = self.assertRaises(ConfigError, self.load, '[pop3]\nlock_wait = -1\n')
        self.assertTrue(str(e).endswith("pop3.lock_wait: must be 0 to 300 seconds, not -1"),
                        str(e))

    def test_listenerSettings(self):
        """The POP3 listeners get the [pop3] settings and share one waiting line."""
        from twisted.internet import task as _task
        from mailstack import service
        from tests.helpers import listenerTOML
        extra = ('[pop3]\nlock_wait = 7\n' + listenerTOML("pop3", name="a")
                 + listenerTOML("pop3", name="b"))
        from mailstack.config import loadConfig
        from tests.helpers import BASE_CONFIG, writeConfig
        top = service.buildService(loadConfig(writeConfig(self, BASE_CONFIG, extra)),
                                   _task.Clock())
        def unwrapped(factory):
            while not hasattr(factory, "waiters"):
                factory = factory.wrappedFactory  # limits, transcripts, TLS
            return factory
        inner = [unwrapped(top.getServiceNamed(name).factory) for name in ("a", "b")]
        self.assertEqual({f.settings.maildropWait for f in inner}, {7.0})
        self.assertIs(inner[0].waiters, inner[1].waiters)
