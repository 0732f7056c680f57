"""
End to end (issue 17): ten poplib clients poll one account at once, as a
student's phone, laptop and friends' clients do. With the default
[pop3] lock = "wait" every login waits its turn for the maildrop and every
session completes with no error; with lock = "snapshot" they run side by
side and a message deleted by several is removed once.
"""

import poplib

import threading

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.helpers import E2EMixin, listenerTOML

MESSAGE = b"From: alice@lab.test\r\nSubject: poll %d\r\n\r\nbody %d\r\n"
CLIENTS = 10
ROUNDS = 3
MESSAGES = 41


class BusyMixin(E2EMixin):
    listeners = listenerTOML("pop3", name="pop3", allow_plaintext_auth=True)

    @defer.inlineCallbacks
    def setUp(self):
        E2EMixin.setUp(self)
        for i in range(MESSAGES):
            yield self.mailServer.appendMessage("demo@lab.test", MESSAGE % (i, i))

    def poll(self, deleteFirst=False):
        """One client's rounds: login, STAT, RETR every message, QUIT. Returns
        the error replies it got (none expected) and the rounds completed."""
        errors, done = [], 0
        for _ in range(ROUNDS):
            try:
                p = poplib.POP3("127.0.0.1", self.port("pop3"), timeout=30)
                p.user("demo@lab.test")
                p.pass_("demo")
                count, _ = p.stat()
                for n in range(1, count + 1):
                    p.retr(n)
                if deleteFirst and count:
                    p.dele(1)
                p.quit()
                done += 1
            except (poplib.error_proto, OSError) as e:
                errors.append(repr(e))
        return errors, done

    def everyone(self, **kwargs):
        """Every client in a thread of its own (not the reactor's pool, which
        the server in this process needs for its password checks)."""
        def inThread(f):
            d = defer.Deferred()

            def run():
                result = f(**kwargs)
                reactor.callFromThread(d.callback, result)
            threading.Thread(target=run, daemon=True).start()
            return d
        return defer.gatherResults([inThread(self.poll) for _ in range(CLIENTS)])


class WaitingClientsTests(BusyMixin, unittest.TestCase):
    """[pop3] lock = "wait" (the default)."""

    @defer.inlineCallbacks
    def test_tenClientsAllServed(self):
        """Ten clients polling one maildrop three times each: 30 sessions, no
        -ERR [IN-USE] or other error, every message retrieved each time."""
        results = yield self.everyone()
        self.assertEqual([errors for errors, _ in results], [[]] * CLIENTS)
        self.assertEqual(sum(done for _, done in results), CLIENTS * ROUNDS)


class SnapshotClientsTests(BusyMixin, unittest.TestCase):
    """[pop3] lock = "snapshot": no maildrop lock at all."""

    listeners = '[pop3]\nlock = "snapshot"\n' + BusyMixin.listeners

    @defer.inlineCallbacks
    def test_tenClientsSideBySide(self):
        """Ten clients at once, each deleting its first message every round: no
        error; messages are removed at most once each (nothing twice, nothing
        resurrected), so at least 41 - 30 remain and the store agrees with POP3."""
        results = yield self.everyone(deleteFirst=True)
        self.assertEqual([errors for errors, _ in results], [[]] * CLIENTS)
        left = yield self.mailServer.messages("demo@lab.test")
        self.assertGreaterEqual(len(left), MESSAGES - CLIENTS * ROUNDS)
        self.assertLess(len(left), MESSAGES)

        def stat():
            p = poplib.POP3("127.0.0.1", self.port("pop3"), timeout=10)
            p.user("demo@lab.test")
            p.pass_("demo")
            count = p.stat()[0]
            p.quit()
            return count
        count = yield self.inThread(stat)
        self.assertEqual(count, len(left))
