"""
Tests for L{mailstack.storage.maildrop}: the POP3 maildrop lock, Dovecot's
C{dovecot-pop3-session.lock} dotlock in the INBOX Maildir, taken at once or
refused, stale locks of dead holders removed, held locks kept fresh.
"""

import os
import socket
import subprocess
import sys
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

import mailstack
from mailstack.storage.interfaces import IMaildropLock, MailboxInUse
from mailstack.storage.maildrop import (
    POP3_LOCK_FILE, REFRESH_INTERVAL, STALE_TIMEOUT, MaildropLocks, localPid, lockContent)

ADDRESS = "alice@lab.test"

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(mailstack.__file__)))

# Another process holding a maildrop until it is killed.
HOLDER = """
import sys
from twisted.internet.task import Clock
from mailstack.storage.maildrop import MaildropLocks
lock = MaildropLocks(Clock()).acquire("alice@lab.test", sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


def deadPid():
    """The pid of a process that has just ended."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


class MaildropLocksTests(TestCase):
    """
    L{MaildropLocks} over one Maildir directory, with a fake clock for the
    refresh timer and a wall clock the test may move forward.
    """

    def setUp(self):
        self.maildir = os.path.abspath(self.mktemp())
        os.mkdir(self.maildir)
        self.path = os.path.join(self.maildir, POP3_LOCK_FILE)
        self.clock = Clock()
        self.offset = 0
        self.locks = self.registry()

    def registry(self):
        return MaildropLocks(self.clock, now=lambda: time.time() + self.offset)

    def acquire(self, locks=None, address=ADDRESS):
        lock = (locks or self.locks).acquire(address, self.maildir)
        self.addCleanup(lock.release)
        return lock

    def writeLock(self, content):
        """Another program's lock file."""
        with open(self.path, "wb") as f:
            f.write(content)

    def readLock(self):
        with open(self.path, "rb") as f:
            return f.read()

    def test_createsDovecotLockFile(self):
        """Taking the lock creates dovecot-pop3-session.lock holding pid:hostname, as Dovecot writes it."""
        lock = self.acquire()
        self.assertTrue(IMaildropLock.providedBy(lock))
        self.assertEqual(self.readLock(),
                         ("%d:%s" % (os.getpid(), socket.gethostname())).encode())
        self.assertTrue(self.locks.isLocked(ADDRESS))

    def test_releaseRemovesFile(self):
        """Releasing removes the lock file, once; the maildrop can be taken again."""
        lock = self.acquire()
        lock.release()
        lock.release()
        self.assertFalse(os.path.exists(self.path))
        self.assertFalse(self.locks.isLocked(ADDRESS))
        self.acquire()
        self.assertTrue(os.path.exists(self.path))

    def test_secondSessionRefused(self):
        """A second session of the same registry gets MailboxInUse and leaves the holder's file alone."""
        self.acquire()
        self.assertRaises(MailboxInUse, self.locks.acquire, ADDRESS, self.maildir)
        self.assertEqual(localPid(self.readLock()), os.getpid())

    def test_otherRegistrySameMaildir(self):
        """Two stores of one process over the same Maildir exclude each other, even once the file is old."""
        self.acquire()
        self.offset = STALE_TIMEOUT * 10
        self.assertRaises(MailboxInUse, self.registry().acquire, ADDRESS, self.maildir)

    def test_otherAddressesIndependent(self):
        """Each address's lock lives in its own Maildir: holding one does not block another."""
        other = os.path.abspath(self.mktemp())
        os.mkdir(other)
        self.acquire()
        lock = self.locks.acquire("bob@lab.test", other)
        self.addCleanup(lock.release)
        self.assertTrue(os.path.exists(os.path.join(other, POP3_LOCK_FILE)))

    def test_liveProcessHolds(self):
        """A lock naming a live process of this host refuses the maildrop, however old."""
        self.writeLock(b"%d:%s" % (os.getppid(), socket.gethostname().encode()))
        self.offset = STALE_TIMEOUT * 10
        self.assertRaises(MailboxInUse, self.locks.acquire, ADDRESS, self.maildir)
        self.assertEqual(localPid(self.readLock()), os.getppid())

    def test_deadProcessStale(self):
        """A lock of a process of this host that has ended is removed and the maildrop taken."""
        self.writeLock(b"%d:%s" % (deadPid(), socket.gethostname().encode()))
        self.offset = 10
        self.acquire()
        self.assertEqual(self.readLock(), lockContent())

    def test_deadProcessWithNewline(self):
        """A dead holder's lock written with a trailing newline is read the same way."""
        self.writeLock(b"%d:%s\n" % (deadPid(), socket.gethostname().encode()))
        self.offset = 10
        self.acquire()
        self.assertEqual(self.readLock(), lockContent())

    def test_freshLockHolds(self):
        """A lock changed in the last 2 s holds whatever pid it names (its writer may not have written it yet)."""
        self.writeLock(b"%d:%s" % (deadPid(), socket.gethostname().encode()))
        self.assertRaises(MailboxInUse, self.locks.acquire, ADDRESS, self.maildir)

    def test_ownPidFromEarlierRun(self):
        """A lock naming this process that it does not hold (a pid reused after a restart) is stale."""
        self.writeLock(lockContent())
        self.offset = 10
        self.acquire()
        self.assertTrue(self.locks.isLocked(ADDRESS))

    def test_otherHostWithinTimeout(self):
        """A lock from another host (no pid to check) holds until it has not changed for 300 s."""
        self.writeLock(b"4242:elsewhere.example")
        self.offset = STALE_TIMEOUT - 10
        self.assertRaises(MailboxInUse, self.locks.acquire, ADDRESS, self.maildir)

    def test_otherHostStale(self):
        """A lock from another host unchanged for over 300 s is stale and replaced by ours."""
        self.writeLock(b"4242:elsewhere.example")
        self.offset = STALE_TIMEOUT + 10
        self.acquire()
        self.assertEqual(self.readLock(), lockContent())

    def test_emptyLockStaleAfterTimeout(self):
        """An empty or unreadable lock file counts as stale only after 300 s without change."""
        self.writeLock(b"")
        self.offset = 10
        self.assertRaises(MailboxInUse, self.locks.acquire, ADDRESS, self.maildir)
        self.offset = STALE_TIMEOUT + 10
        self.acquire()

    def test_staleReplacedMeanwhileKept(self):
        """A lock someone takes between our stale check and its removal is put back, and we are refused."""
        self.writeLock(b"4242:elsewhere.example")
        os.utime(self.path, (1000, 1000))

        def nowTakingIt():
            os.unlink(self.path)
            self.writeLock(b"1:newcomer")
            return time.time() + STALE_TIMEOUT + 10

        locks = MaildropLocks(self.clock, now=nowTakingIt)
        self.assertRaises(MailboxInUse, locks.acquire, ADDRESS, self.maildir)
        self.assertEqual(self.readLock(), b"1:newcomer")
        self.assertEqual(os.listdir(self.maildir), [POP3_LOCK_FILE])

    def test_otherProcessThenKilled(self):
        """A lock another mailstack process holds refuses the maildrop; once that process is killed, the lock is stale."""
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, self.maildir], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=SOURCE))
        self.addCleanup(holder.wait)
        self.addCleanup(holder.kill)
        self.assertEqual(holder.stdout.readline(), b"held\n")
        self.assertEqual(localPid(self.readLock()), holder.pid)
        self.offset = 10
        self.assertRaises(MailboxInUse, self.locks.acquire, ADDRESS, self.maildir)
        holder.kill()
        holder.wait()
        self.assertTrue(os.path.exists(self.path))
        self.acquire()
        self.assertEqual(self.readLock(), lockContent())

    def test_refreshKeepsFresh(self):
        """A held lock's mtime is set to now every REFRESH_INTERVAL seconds for as long as it is held."""
        lock = self.acquire()
        created = os.stat(self.path).st_mtime
        for step in (1, 2, 3):
            self.offset = step * 1000
            self.clock.advance(REFRESH_INTERVAL - 1)
            self.assertLess(os.stat(self.path).st_mtime, created + (step - 1) * 1000 + 1)
            self.clock.advance(1)
            self.assertGreater(os.stat(self.path).st_mtime, created + step * 1000 - 1)
            self.assertTrue(lock.held)
        self.assertLess(REFRESH_INTERVAL, STALE_TIMEOUT / 2)
        lock.release()
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_releaseLeavesReplacement(self):
        """Release removes only our own file: a lock another program put in its place stays."""
        lock = self.acquire()
        os.unlink(self.path)
        self.writeLock(b"1:other.example")
        lock.release()
        self.assertEqual(self.readLock(), b"1:other.example")
        self.assertFalse(self.locks.isLocked(ADDRESS))

    def test_refreshStopsWhenReplaced(self):
        """A lock taken away by another program is not touched again and counts as no longer held."""
        lock = self.acquire()
        os.unlink(self.path)
        self.writeLock(b"1:other.example")
        os.utime(self.path, (1000, 1000))
        self.clock.advance(REFRESH_INTERVAL)
        self.assertEqual(os.stat(self.path).st_mtime, 1000)
        self.assertFalse(lock.held)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.locks.isLocked(ADDRESS))


class LocalPidTests(TestCase):
    """
    L{localPid} reads a lock file's C{pid:hostname} the way Dovecot does.
    """

    def test_thisHost(self):
        """pid:hostname of this host gives the pid."""
        self.assertEqual(localPid(b"123:" + socket.gethostname().encode()), 123)

    def test_otherHostOrMalformed(self):
        """Another host, no colon, a bad or non-positive pid: no local pid."""
        host = socket.gethostname().encode()
        for content in (b"123:elsewhere.example", b"123", b"", b"x:" + host, b"0:" + host,
                        b"-5:" + host):
            self.assertIsNone(localPid(content), content)
