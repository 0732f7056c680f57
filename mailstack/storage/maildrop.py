"""
The POP3 maildrop lock (RFC 1939 section 8: a POP3 session has exclusive
access to the maildrop), held across every process that shares the store,
and the same lock Dovecot 2.3 takes with C{pop3_lock_session = yes}, so
mailstack processes and a Dovecot serving the same Maildir exclude each other.

Dovecot's lock (src/pop3/pop3-client.c, src/lib/file-dotlock.c; checked
against Dovecot 2.3.19 by tests/e2e/test_interop_dovecot.py) is a plain
dotlock file, no fcntl or flock:

 - C{<Maildir>/dovecot-pop3-session.lock} (POP3_LOCK_FNAME, in the INBOX
   namespace's root directory: the INBOX Maildir in mailstack's layout),
   created with C{O_EXCL} and holding C{<pid>:<hostname>}, no newline;
 - touched (mtime) while the session lasts, every 300 s in Dovecot;
 - stale, and removed by whoever wants the lock: when its mtime is more than
   2 s old and it names a process of this host that no longer exists, or,
   when no live local process can be checked (another host, an unreadable
   file), when it has not changed for more than 300 s;
 - deleted at the end of the session only if it is still the holder's own
   file (same inode).

mailstack follows those rules with two differences. It never waits: a lock
held is L{MailboxInUse} at once (Dovecot waits up to 10 s for it, then answers
C{-ERR [IN-USE]}). It touches its lock every L{REFRESH_INTERVAL} seconds,
well inside the 300 s another host would wait before calling it stale. A
stale lock is moved aside and removed only if it is still the file judged
stale, so a lock taken meanwhile by someone else is never removed.

A process holds any number of maildrops; its own pid in a lock file means
"held" only while this process really holds that file (the pid of a
previous run, reused after a restart, does not block the maildrop).
"""

import itertools
import os
import socket
import time

from twisted.logger import Logger
from zope.interface import implementer

from mailstack.storage.interfaces import IMaildropLock, MailboxInUse

log = Logger()

# Dovecot's POP3_LOCK_FNAME (its dotlock's suffix is empty: this is the lock).
POP3_LOCK_FILE = "dovecot-pop3-session.lock"

# Dovecot's POP3_SESSION_DOTLOCK_STALE_TIMEOUT_SECS: a lock no live local
# process can vouch for is stale after this long without a change.
STALE_TIMEOUT = 300

# Dovecot's STALE_PID_CHECK_SECS: a lock changed this recently is held,
# whatever pid it names (its writer may not have written the pid yet).
FRESH_SECS = 2

# How often a held lock's mtime is renewed (Dovecot: every STALE_TIMEOUT).
REFRESH_INTERVAL = 60

# The lock files this process holds, by identity (below): every registry of
# the process shares it, so two stores over one Maildir exclude each other too.
_heldFiles = {}

_asideNumbers = itertools.count()


def lockContent():
    """
    @return: what a lock file of this process holds: Dovecot's
        C{<pid>:<hostname>}.
    """
    return ("%d:%s" % (os.getpid(), socket.gethostname())).encode("utf-8", "replace")


def localPid(content):
    """
    @param content: a lock file's bytes.
    @return: the pid it names if it names a process of this host (Dovecot's
        C{read_local_pid}), else L{None}.
    """
    text = content.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-1]
    pid, colon, host = text.partition(":")
    if not colon or host != socket.gethostname():
        return None
    try:
        value = int(pid)
    except ValueError:
        return None
    return value if value > 0 else None


def processExists(pid):
    """
    @return: C{False} only if no process C{pid} exists (one we may not signal
        exists, as Dovecot reads it).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _identity(st):
    """
    Which file a stat result is: the inode, and its mtime, since a file
    created right after another's removal often gets the same inode number.
    """
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def _lastChange(st, now):
    """Dovecot's notion of when a lock last changed (mtime, or ctime if later)."""
    if st.st_mtime <= now and st.st_mtime > st.st_ctime:
        return st.st_mtime
    return st.st_ctime


@implementer(IMaildropLock)
class MaildropLock:
    """
    One session's hold on one maildrop: keeps its lock file fresh until
    L{release}.

    @ivar address: the account's address.
    @ivar path: the lock file.
    """

    def __init__(self, registry, address, path, identity, clock):
        self._registry = registry
        self.address = address
        self.path = path
        self._identity = identity
        self._clock = clock
        self._held = True
        self._refreshCall = clock.callLater(REFRESH_INTERVAL, self._refresh)

    @property
    def held(self):
        """C{True} until released (or found taken away)."""
        return self._held

    def _stillOurs(self):
        """Whether the lock file is still the one we made (and last touched)."""
        try:
            if _identity(os.lstat(self.path)) != self._identity:
                return False
            with open(self.path, "rb") as f:
                return f.read(512) == lockContent()
        except FileNotFoundError:
            return False

    def _refresh(self):
        self._refreshCall = None
        if not self._stillOurs():
            log.warn("POP3 session lock {path} of {address} was removed or replaced "
                     "by another program; no longer refreshing it",
                     path=self.path, address=self.address)
            self._forget()
            return
        try:
            now = self._registry.now()
            os.utime(self.path, (now, now))
            self._setIdentity(_identity(os.lstat(self.path)))
        except OSError as e:
            log.warn("cannot refresh POP3 session lock {path}: {error}",
                     path=self.path, error=e)
        self._refreshCall = self._clock.callLater(REFRESH_INTERVAL, self._refresh)

    def _setIdentity(self, identity):
        if _heldFiles.get(self._identity) is self:
            del _heldFiles[self._identity]
        self._identity = identity
        _heldFiles[identity] = self

    def _forget(self):
        self._held = False
        if self._refreshCall is not None and self._refreshCall.active():
            self._refreshCall.cancel()
        self._refreshCall = None
        if _heldFiles.get(self._identity) is self:
            del _heldFiles[self._identity]
        self._registry._forget(self)

    def release(self):
        """
        Give the maildrop up: the lock file is removed if it is still ours
        (another program's replacement is left alone, as Dovecot does).
        """
        if not self._held:
            return
        ours = self._stillOurs()
        self._forget()
        if not ours:
            log.warn("POP3 session lock {path} of {address} was removed or replaced "
                     "by another program before the session ended",
                     path=self.path, address=self.address)
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class MaildropLocks:
    """
    The maildrop locks of one store: L{acquire} takes the account's lock file
    in its INBOX Maildir at once or fails.

    @param clock: an L{IReactorTime} for refreshing held locks; L{None} for
        the global reactor (looked up at the first L{acquire}).
    @param now: the wall clock lock file times are compared with and set to.
    """

    def __init__(self, clock=None, now=time.time):
        self._clock = clock
        self.now = now
        self._holders = {}

    def isLocked(self, address):
        """Whether a session using this registry holds C{address}'s maildrop."""
        return address in self._holders

    def acquire(self, address, maildir):
        """
        Take the maildrop lock of C{address}: create the lock file, after
        removing a stale one. Never waits.

        @param maildir: the account's INBOX Maildir directory.
        @return: a L{MaildropLock}.
        @raise MailboxInUse: another session (of this or another process, or
            a Dovecot) holds it.
        """
        if address in self._holders:
            raise MailboxInUse("maildrop of %s is in use by another POP3 session" % (address,))
        path = os.path.join(maildir, POP3_LOCK_FILE)
        identity = self._create(path)
        if identity is None:
            if not self._removeIfStale(path):
                raise MailboxInUse(
                    "maildrop of %s is in use by another POP3 session" % (address,))
            identity = self._create(path)
            if identity is None:
                raise MailboxInUse(
                    "maildrop of %s is in use by another POP3 session" % (address,))
        if self._clock is None:
            from twisted.internet import reactor
            self._clock = reactor
        lock = MaildropLock(self, address, path, identity, self._clock)
        self._holders[address] = lock
        _heldFiles[identity] = lock
        return lock

    def _create(self, path):
        """
        @return: the new lock file's identity, or L{None} if one exists.
        """
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return None
        try:
            os.write(fd, lockContent())
            return _identity(os.fstat(fd))
        except BaseException:
            os.unlink(path)
            raise
        finally:
            os.close(fd)

    def _isStale(self, path, st):
        """Dovecot's check_lock, once: whether the lock file C{st} is stale."""
        now = self.now()
        if st.st_mtime >= now - FRESH_SECS:
            return False
        try:
            with open(path, "rb") as f:
                content = f.read(512)
        except OSError:
            content = b""
        pid = localPid(content)
        if pid == os.getpid():
            return _identity(st) not in _heldFiles
        if pid is not None:
            return not processExists(pid)
        return now > _lastChange(st, now) + STALE_TIMEOUT

    def _removeIfStale(self, path):
        """
        Remove the lock file at C{path} if it is stale: it is renamed aside
        first and deleted only if it is still the file judged stale (a lock
        taken meanwhile is put back).

        @return: C{True} if no lock file is there any more.
        """
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return True
        if not self._isStale(path, st):
            return False
        aside = "%s.stale.%d.%d" % (path, os.getpid(), next(_asideNumbers))
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True
        if _identity(os.lstat(aside)) != _identity(st):
            # A new lock replaced the stale one between the checks: put it back.
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            os.unlink(aside)
            return False
        os.unlink(aside)
        log.warn("removed the stale POP3 session lock {path} (its holder is gone)",
                 path=path)
        return True

    def _forget(self, lock):
        if self._holders.get(lock.address) is lock:
            del self._holders[lock.address]
