"""
Tests for L{mailstack.throttle}.
"""

from types import SimpleNamespace

from twisted.internet import task
from twisted.trial import unittest

from mailstack.throttle import AuthFailureThrottle


def throttle(delayAfter=2, disconnectAfter=4, delaySeconds=3.0):
    clock = task.Clock()
    settings = SimpleNamespace(authFailuresDelay=delayAfter,
                               authFailuresDisconnect=disconnectAfter,
                               authFailureDelay=delaySeconds)
    return AuthFailureThrottle(settings, clock), clock


class AuthFailureThrottleTests(unittest.TestCase):
    """
    L{AuthFailureThrottle} counts failures and says answer, delay or disconnect.
    """

    def test_verdicts(self):
        """Failures below the delay limit answer now; then delay; then disconnect."""
        t, _ = throttle()
        verdicts = [t.record() for _ in range(4)]
        self.assertEqual([v.count for v in verdicts], [1, 2, 3, 4])
        self.assertEqual([v.delayed for v in verdicts], [False, True, True, True])
        self.assertEqual([v.disconnect for v in verdicts], [False, False, False, True])

    def test_disconnectBeforeDelay(self):
        """A disconnect limit below the delay limit disconnects without a delay."""
        t, _ = throttle(delayAfter=10, disconnectAfter=2)
        t.record()
        verdict = t.record()
        self.assertTrue(verdict.disconnect)
        self.assertFalse(verdict.delayed)

    def test_delayFiresWithResult(self):
        """The delay's Deferred fires with the given result after the delay."""
        t, clock = throttle()
        fired = []
        t.delay("answer").addCallback(fired.append)
        clock.advance(2.9)
        self.assertEqual(fired, [])
        clock.advance(0.1)
        self.assertEqual(fired, ["answer"])

    def test_cancel(self):
        """A cancelled delay never fires and leaves no call on the clock."""
        t, clock = throttle()
        fired = []
        t.delay().addCallback(fired.append)
        t.cancel()
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(10)
        self.assertEqual(fired, [])
        t.cancel()  # again, or after firing: no error

    def test_reset(self):
        """After reset the count starts again."""
        t, _ = throttle()
        t.record()
        t.record()
        t.reset()
        verdict = t.record()
        self.assertEqual(verdict.count, 1)
        self.assertFalse(verdict.delayed)
