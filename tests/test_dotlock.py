"""
Tests for L{mailstack.storage.dotlock}: Dovecot's C{.lock} file, taken, committed
by rename, and broken when stale.
"""

import os
import time

from twisted.trial.unittest import TestCase

from mailstack.storage.dotlock import DotLock
from mailstack.storage.interfaces import StoreError


class FileTestCase(TestCase):
    """
    Shared set-up for the files kept under a dotlock: C{self.path}, named
    C{fileName}, in a fresh directory (not created).
    """

    fileName = "file"

    def setUp(self):
        directory = self.mktemp()
        os.mkdir(directory)
        self.path = os.path.join(directory, self.fileName)

    def write(self, data):
        with open(self.path, "wb") as f:
            f.write(data)

    def read(self):
        with open(self.path, "rb") as f:
            return f.read()


class DotLockTests(FileTestCase):
    """
    L{DotLock} on a file in a fresh directory.
    """

    def setUp(self):
        FileTestCase.setUp(self)
        self.target = self.path
        self.write(b"old\n")

    def test_commitReplaces(self):
        """Committing writes the lock file and renames it over the target."""
        with DotLock(self.target, 1.0, 120.0) as lock:
            self.assertTrue(os.path.exists(self.target + ".lock"))
            self.assertEqual(self.read(), b"old\n")
            lock.commit(b"new\n")
            self.assertFalse(os.path.exists(self.target + ".lock"))
        self.assertEqual(self.read(), b"new\n")

    def test_createsTarget(self):
        """A target that does not exist yet is created by the commit."""
        os.unlink(self.target)
        with DotLock(self.target, 1.0, 120.0) as lock:
            lock.commit(b"first\n")
        self.assertEqual(self.read(), b"first\n")

    def test_releasedWithoutCommit(self):
        """Leaving without a commit (an error) removes the lock, target untouched."""
        with self.assertRaises(RuntimeError):
            with DotLock(self.target, 1.0, 120.0):
                raise RuntimeError("boom")
        self.assertFalse(os.path.exists(self.target + ".lock"))
        self.assertEqual(self.read(), b"old\n")

    def test_staleLockBroken(self):
        """A lock older than staleAge is removed and taken over."""
        with open(self.target + ".lock", "wb"):
            pass
        old = time.time() - 200
        os.utime(self.target + ".lock", (old, old))
        with DotLock(self.target, 1.0, 120.0) as lock:
            lock.commit(b"new\n")
        self.assertEqual(self.read(), b"new\n")

    def test_liveLockTimesOut(self):
        """A fresh lock is waited for until the timeout, then StoreError; it is kept."""
        with open(self.target + ".lock", "wb"):
            pass
        start = time.monotonic()
        error = self.assertRaises(StoreError, DotLock(self.target, 0.2, 120.0).__enter__)
        self.assertGreaterEqual(time.monotonic() - start, 0.2)
        self.assertIn("locked", str(error))
        self.assertTrue(os.path.exists(self.target + ".lock"))
        self.assertEqual(self.read(), b"old\n")
