"""
End to end: another OS process holds one user's C{dovecot-uidlist.lock} for a
few seconds; other users' NOOP, LOGIN and SMTP replies must not wait for it
(issue 13: nothing waits on the reactor thread). The clients run in threads
with blocking sockets, so a stalled reactor shows in their timings.
"""

import imaplib
import os
import poplib
import smtplib
import subprocess
import sys
import time

from twisted.internet import defer
from twisted.logger import Logger

from tests.e2e.test_imap import MESSAGE, IMAPTestCase

log = Logger()

HOLD = 4.0  # seconds the other process holds the lock
BOUND = 1.0  # generous for CI; a reactor waiting for the lock takes about HOLD

HOLDER = """
import os, sys, time
path, hold = sys.argv[1], float(sys.argv[2])
open(path, "x").close()
print("held", flush=True)
time.sleep(hold)
os.unlink(path)
"""


def holdLock(path, hold):
    """Start a process that creates C{path} with O_EXCL, holds it C{hold} s, removes
    it; return the process once the lock exists."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, path, str(hold)],
                               stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"held\n"
    return process


def timed(f, *args):
    """C{(seconds, result)} of C{f(*args)}."""
    start = time.monotonic()
    result = f(*args)
    return time.monotonic() - start, result


class LockContentionTests(IMAPTestCase):
    """
    demo@lab.test's INBOX lock is held by another process while bob@lab.test
    works and demo's own session polls.
    """

    @defer.inlineCallbacks
    def setUp(self):
        IMAPTestCase.setUp(self)
        yield self.mailServer.addUser("bob@lab.test", "bob")

    def imapLogin(self, user, password):
        c = imaplib.IMAP4("127.0.0.1", self.port("imapplain"), timeout=30)
        c.login(user, password)
        return c

    def smtpToBob(self):
        c = smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=30)
        try:
            c.ehlo("client.example")
            c.mail("kim@example.com")
            c.rcpt("bob@lab.test")
            return c.data(MESSAGE.replace(b"demo@", b"bob@"))
        finally:
            c.close()

    def otherProgramDelivers(self):
        """A file appears in demo's new/ without a UID, as another MDA leaves it: the
        next sync of demo's INBOX needs the uidlist lock."""
        path = os.path.join(self.inbox().path, "new", "1700000000.M1P99.other")
        with open(path, "wb") as f:
            f.write(MESSAGE)

    @defer.inlineCallbacks
    def test_heldLockDoesNotDelayOtherMailboxes(self):
        """While another process holds demo's dovecot-uidlist.lock, demo's NOOP
        answers OK at once, bob's NOOP, LOGIN and SMTP delivery are answered without
        waiting for the lock, and demo sees the new message once the lock is gone."""
        demo = yield self.inThread(self.imapLogin, "demo@lab.test", "demo")
        self.addCleanup(self.inThread, demo.logout)
        yield self.inThread(demo.select, "INBOX")
        bob = yield self.inThread(self.imapLogin, "bob@lab.test", "bob")
        self.addCleanup(self.inThread, bob.logout)
        yield self.inThread(bob.select, "INBOX")

        self.otherProgramDelivers()
        lock = os.path.join(self.inbox().path, "dovecot-uidlist.lock")
        holder = yield self.inThread(holdLock, lock, HOLD)
        self.addCleanup(holder.wait)

        demoNoop = self.inThread(timed, demo.noop)

        def bobWorks():
            time.sleep(0.3)  # demo's NOOP reaches the server first
            latencies = {}
            latencies["NOOP"], noop = timed(bob.noop)
            latencies["LOGIN"], other = timed(self.imapLogin, "bob@lab.test", "bob")
            other.logout()
            latencies["SMTP"], (code, text) = timed(self.smtpToBob)
            return latencies, noop, code, text
        latencies, noop, code, text = yield self.inThread(bobWorks)
        demoLatency, demoReply = yield demoNoop
        log.info("lock held {hold} s: demo NOOP {demo:.3f} s, bob {latencies}",
                 hold=HOLD, demo=demoLatency, latencies=latencies)
        self.assertEqual(noop[0], "OK")
        self.assertEqual(code, 250, text)
        self.assertEqual(demoReply[0], "OK")
        for name, seconds in latencies.items():
            self.assertLess(seconds, BOUND, "bob's %s took %.3f s while demo's lock was held"
                            % (name, seconds))
        self.assertLess(demoLatency, BOUND)
        self.assertTrue(os.path.exists(lock), "the lock was released before the test ended")

        yield self.inThread(holder.wait)
        yield self.inThread(demo.noop)
        self.assertEqual(demo.response("EXISTS")[1][-1], b"1")

    @defer.inlineCallbacks
    def test_storeNewKeywordWhileLocked(self):
        """STORE of a keyword new to the mailbox needs the lock another process holds:
        NO [INUSE] at once (RFC 5530), and the same STORE succeeds once it is gone."""
        self.deliver(MESSAGE)
        demo = yield self.inThread(self.imapLogin, "demo@lab.test", "demo")
        self.addCleanup(self.inThread, demo.logout)
        yield self.inThread(demo.select, "INBOX")
        lock = os.path.join(self.inbox().path, "dovecot-uidlist.lock")
        holder = yield self.inThread(holdLock, lock, 1.0)
        self.addCleanup(holder.wait)
        seconds, (status, data) = yield self.inThread(
            timed, demo.store, "1", "+FLAGS", "($Label1)")
        self.assertEqual(status, "NO")
        self.assertTrue(data[0].startswith(b"[INUSE]"), data)
        self.assertLess(seconds, BOUND)
        yield self.inThread(holder.wait)
        status, data = yield self.inThread(demo.store, "1", "+FLAGS", "($Label1)")
        self.assertEqual(status, "OK")
        self.assertIn(b"$Label1", data[0])

    @defer.inlineCallbacks
    def test_pop3LoginWhileLocked(self):
        """POP3 login to a mailbox whose lock another process holds: +OK without waiting,
        listing the messages that have UIDs; the new file is listed at the next login
        after the lock is gone."""
        self.deliver(MESSAGE)
        self.otherProgramDelivers()
        lock = os.path.join(self.inbox().path, "dovecot-uidlist.lock")
        holder = yield self.inThread(holdLock, lock, 2.0)
        self.addCleanup(holder.wait)

        def login():
            c = poplib.POP3("127.0.0.1", self.port("pop3"), timeout=30)
            c.user("demo@lab.test")
            c.pass_("demo")
            count = c.stat()[0]
            c.quit()
            return count
        seconds, count = yield self.inThread(timed, login)
        self.assertEqual(count, 1)
        self.assertLess(seconds, BOUND)
        yield self.inThread(holder.wait)
        count = yield self.inThread(login)
        self.assertEqual(count, 2)
