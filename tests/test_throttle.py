"""
Tests for L{mailstack.throttle}: the per-address penalty and one session's
view of it.
"""

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import address, task
from twisted.trial import unittest
from zope.interface import Interface, implementer

from mailstack.settings import ListenerSettings
from mailstack.throttle import AuthFailureThrottle, AuthPenalty
from tests.helpers import LogWatch


def peer(host="192.0.2.7", port=40000):
    return address.IPv4Address("TCP", host, port)


class IThing(Interface):
    pass


@implementer(IThing)
class Thing:
    pass


class Realm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        return interfaces[0], Thing(), lambda: None


def portal():
    checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
    return Portal(Realm(), [checker])


class AuthPenaltyTests(unittest.TestCase):
    """
    L{AuthPenalty} counts failed logins per client address and says how long
    the next attempt from that address waits.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.penalty = AuthPenalty(self.clock, delayAfter=2, delaySeconds=2.0,
                                   maxDelaySeconds=15.0, rememberSeconds=300,
                                   maxAddresses=100)

    def test_doublingUpToTheMaximum(self):
        """After the free failures each attempt waits 2, 4, 8 s, then 15 s at most."""
        delays = []
        for _ in range(7):
            delays.append(self.penalty.delayFor("192.0.2.7"))
            self.penalty.failed("192.0.2.7")
        self.assertEqual(delays, [0, 0, 2, 4, 8, 15, 15])

    def test_perAddress(self):
        """One address's failures do not slow another address."""
        for _ in range(5):
            self.penalty.failed("192.0.2.7")
        self.assertEqual(self.penalty.delayFor("192.0.2.7"), 15)
        self.assertEqual(self.penalty.delayFor("192.0.2.8"), 0)

    def test_successResets(self):
        """A successful login forgets the address's failures (as Dovecot resets them)."""
        for _ in range(4):
            self.penalty.failed("192.0.2.7")
        self.penalty.succeeded("192.0.2.7")
        self.assertEqual(self.penalty.delayFor("192.0.2.7"), 0)
        self.assertEqual(len(self.penalty), 0)

    def test_failuresExpire(self):
        """An address's failures are forgotten rememberSeconds after its last one."""
        for _ in range(4):
            self.penalty.failed("192.0.2.7")
        self.clock.advance(299)
        self.assertEqual(self.penalty.delayFor("192.0.2.7"), 8)
        self.clock.advance(1)
        self.assertEqual(self.penalty.delayFor("192.0.2.7"), 0)
        self.assertEqual(len(self.penalty), 0)

    def test_boundedTable(self):
        """However many addresses fail, at most maxAddresses are kept; the oldest go first."""
        for i in range(1000):
            self.penalty.failed("10.0.%d.%d" % (i // 256, i % 256))
            self.clock.advance(0.01)
        self.assertEqual(len(self.penalty), 100)
        self.assertEqual(self.penalty.failures("10.0.0.0"), 0)
        self.assertEqual(self.penalty.failures("10.0.3.231"), 1)  # the 1000th

    def test_ipv6CountedPerSlash64(self):
        """IPv6 addresses of one /64 share one count (a host can use millions of them)."""
        self.penalty.failed("2001:db8:1:2::1")
        self.penalty.failed("2001:db8:1:2:ffff::9")
        self.assertEqual(self.penalty.failures("2001:db8:1:2::77"), 2)
        self.assertEqual(self.penalty.failures("2001:db8:1:3::1"), 0)

    def test_noAddressNoPenalty(self):
        """A client without an IP (a UNIX socket) is not counted."""
        self.assertEqual(self.penalty.failed(None), 0)
        self.assertEqual(self.penalty.delayFor(None), 0)
        self.assertEqual(len(self.penalty), 0)

    def test_zeroDelayTurnsItOff(self):
        """auth_failure_delay_seconds = 0: no attempt ever waits."""
        penalty = AuthPenalty(self.clock, delaySeconds=0, maxDelaySeconds=0)
        for _ in range(20):
            penalty.failed("192.0.2.7")
        self.assertEqual(penalty.delayFor("192.0.2.7"), 0)

    def test_oneLogLineWhenItBites(self):
        """The first attempt made to wait is logged once, naming the address."""
        watch = LogWatch(self)
        for _ in range(4):
            self.penalty.failed("192.0.2.7")
            self.penalty.admit("192.0.2.7")
        lines = [m for m in watch.texts() if "auth penalty" in m]
        self.assertEqual(len(lines), 1)
        self.assertIn("192.0.2.7", lines[0])

    def test_fromLimits(self):
        """The server's penalty takes its numbers from [limits]."""
        from types import SimpleNamespace
        limits = SimpleNamespace(auth_failures_delay=1, auth_failure_delay_seconds=3.0,
                                 auth_failure_delay_max_seconds=20.0,
                                 auth_penalty_seconds=60, auth_penalty_addresses=7)
        penalty = AuthPenalty.fromLimits(limits, self.clock)
        self.assertEqual((penalty.delayAfter, penalty.delaySeconds, penalty.maxDelaySeconds,
                          penalty.rememberSeconds, penalty.maxAddresses),
                         (1, 3.0, 20.0, 60, 7))


class AuthFailureThrottleTests(unittest.TestCase):
    """
    L{AuthFailureThrottle}: a session's logins wait the address's penalty
    before the check; failures count towards the session's disconnect limit.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.penalty = AuthPenalty(self.clock, delayAfter=2, delaySeconds=2.0)
        self.settings = ListenerSettings("h", authFailuresDisconnect=4,
                                         authPenalty=self.penalty)
        self.portal = portal()

    def throttle(self):
        return AuthFailureThrottle(self.settings, self.clock)

    def login(self, throttle, password, who=None):
        results = []
        d = throttle.login(self.portal, who or peer(),
                           UsernamePassword(b"alice", password), IThing)
        d.addCallbacks(lambda r: results.append("ok"),
                       lambda f: f.trap(UnauthorizedLogin) and results.append("no"))
        return results

    def test_verdicts(self):
        """The session counts its failures; the limit'th says disconnect."""
        t = self.throttle()
        verdicts = [t.record(peer()) for _ in range(4)]
        self.assertEqual([v.count for v in verdicts], [1, 2, 3, 4])
        self.assertEqual([v.disconnect for v in verdicts], [False, False, False, True])

    def test_checkWaitsBeforeTheCheck(self):
        """From a penalised address even the right password is checked only after the wait."""
        t = self.throttle()
        t.record(peer())
        t.record(peer())
        results = self.login(t, b"secret")
        self.assertEqual(results, [])
        self.clock.advance(1.9)
        self.assertEqual(results, [])
        self.clock.advance(0.1)
        self.assertEqual(results, ["ok"])
        self.assertEqual(self.penalty.failures("192.0.2.7"), 0)  # success resets

    def test_reconnectingStillWaits(self):
        """A new session from the same address inherits the address's penalty."""
        first = self.throttle()
        first.record(peer(port=1))
        first.record(peer(port=1))
        second = self.throttle()  # a new connection, another port
        results = self.login(second, b"wrong", peer(port=2))
        self.clock.advance(1.9)
        self.assertEqual(results, [])
        self.clock.advance(0.1)
        self.assertEqual(results, ["no"])

    def test_noWaitWithoutPenalty(self):
        """A first attempt is checked at once."""
        self.assertEqual(self.login(self.throttle(), b"secret"), ["ok"])

    def test_cancel(self):
        """A connection gone during the wait: the check never runs, no call is left."""
        t = self.throttle()
        t.record(peer())
        t.record(peer())
        results = self.login(t, b"secret")
        t.cancel()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(60)
        self.assertEqual(results, [])
        t.cancel()  # again: no error

    def test_ownPenaltyWithoutAShared(self):
        """Settings without a shared penalty (unit tests): the session keeps its own."""
        settings = ListenerSettings("h", authFailuresDelay=1, authFailureDelay=3.0,
                                    authFailureDelayMax=5.0)
        t = AuthFailureThrottle(settings, self.clock)
        t.record(peer())
        self.assertEqual(t.penalty.delayFor("192.0.2.7"), 3.0)
        t.record(peer())
        self.assertEqual(t.penalty.delayFor("192.0.2.7"), 5.0)

    def test_noAddressCountedPerSession(self):
        """A client without an IP (a UNIX socket) is still slowed, within its session."""
        unix = address.UNIXAddress(None)
        t = self.throttle()
        t.record(unix)
        t.record(unix)
        results = self.login(t, b"secret", unix)
        self.clock.advance(1.9)
        self.assertEqual(results, [])
        self.clock.advance(0.1)
        self.assertEqual(results, ["ok"])
        other = self.throttle()
        self.assertEqual(self.login(other, b"secret", unix), ["ok"])  # another session
