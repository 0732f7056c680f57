"""
Dovecot's dotlock: C{<file>.lock} created with C{O_EXCL} guards C{<file>}; the new
contents are written into the lock, which is then renamed over the file. Used for
C{dovecot-uidlist}, C{dovecot-keywords} and C{subscriptions}.
"""

import os
import time

from twisted.logger import Logger

from mailstack.storage.files import atomicFile
from mailstack.storage.interfaces import MailboxInUse

log = Logger()

# Waiting for a live lock: first try again after FIRST_PAUSE seconds, then
# after twice as long each time, up to LAST_PAUSE. Holds are short (another
# worker process numbering a few messages: milliseconds), so a fixed 50 ms
# sleep made most waits ten times longer than the hold.
FIRST_PAUSE = 0.002
LAST_PAUSE = 0.05


class DotLock:
    """
    A Dovecot-style dotlock on C{target}: C{target.lock} created with O_EXCL. The new
    contents are written into the lock file, which is then renamed over the target
    (replacing it and releasing the lock in one step).

    @param timeout: seconds to wait for a live lock before raising
        L{MailboxInUse}; 0 tries once (what the reactor thread must use).
    @param staleAge: seconds after which a lock is a dead process's and is removed.
    """

    def __init__(self, target, timeout, staleAge):
        self.target = target
        self.path = target + ".lock"
        self.timeout = timeout
        self.staleAge = staleAge
        self.fd = None

    def __enter__(self):
        deadline = time.monotonic() + self.timeout
        pause = FIRST_PAUSE
        while True:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                return self
            except FileExistsError:
                pass
            age = self._age()
            if age is None:
                continue
            if age > self.staleAge:
                log.warn("Removing stale lock {path} ({age:.0f} s old)", path=self.path, age=age)
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            now = time.monotonic()
            if now >= deadline:
                raise MailboxInUse("mailbox is locked by another process; try again later")
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, LAST_PAUSE)

    def _age(self):
        """Seconds since the lock file last changed, or L{None} if there is none."""
        try:
            return time.time() - os.stat(self.path).st_mtime
        except FileNotFoundError:
            return None

    def heldElsewhere(self):
        """
        Whether a live lock exists (one not older than C{staleAge}; an older
        one is a dead process's, which taking the lock removes), without
        taking it.
        """
        age = self._age()
        return age is not None and age <= self.staleAge

    def commit(self, data):
        """
        Write C{data} into the lock, fsync, rename it over the target. If any
        step fails (a full disk), the lock is removed and the target is left
        as it was.
        """
        fd, self.fd = self.fd, None
        with atomicFile(self.target, temporary=self.path, fd=fd, syncDirectory=False) as f:
            f.write(data)

    def _remove(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __exit__(self, *excInfo):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self._remove()
