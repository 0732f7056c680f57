"""
POP3 logins waiting for a busy maildrop (issue 17), first come first served.

RFC 1939 gives one POP3 session at a time a user's maildrop. A phone and a
laptop polling the same account collide often; Dovecot (C{pop3_lock_session})
makes the second login wait for the lock instead of failing at once, and so
does mailstack: L{MaildropWaiters} queues the logins of this process per
address, hands the lock to the first in the queue as soon as a session of
this process lets it go (L{MaildropWaiters.released}), and polls for a lock
another process holds (with C{[server] workers}, the others' releases wake
the line too: L{MaildropWaiters.releasedElsewhere}). Only after the
configured wait does a login fail.
Nothing here blocks: timers on the reactor's clock.
"""

import collections

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mailstack.storage.interfaces import IMaildropLock, MailboxInUse

log = Logger()


class MaildropBusy(Exception):
    """The maildrop stayed locked by another session for the whole wait."""


@implementer(IMaildropLock)
class _LineLock:
    """The store's lock, handed out by the line: letting it go wakes the next in line."""

    def __init__(self, lock, waiters, address):
        self._lock = lock
        self._waiters = waiters
        self._address = address

    def release(self):
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()
            self._waiters.released(self._address)


class _Waiter:
    def __init__(self, account, address, deferred):
        self.account = account
        self.address = address
        self.deferred = deferred
        self.deadline = None
        self.trying = False
        self.done = False


class MaildropWaiters:
    """
    The maildrop waiting line of one server (shared by its POP3 listeners).

    @param clock: an C{IReactorTime}.
    @param pollInterval: seconds between tries while the lock is held by
        another process (a session of this process wakes the line at once).
    """

    def __init__(self, clock, pollInterval=0.1):
        self.clock = clock
        self.pollInterval = pollInterval
        self._lines = {}  # address -> deque of _Waiter, the first one tries
        self._polls = {}  # address -> the IDelayedCall of the next try
        # With [server] workers: told maildropReleased(address) when a session
        # of this process lets a maildrop go, so the logins another process
        # has waiting for it try at once, not at their next poll
        # (mailstack.workerlink.SharedLimits, LimitsLink).
        self.share = None

    def waiting(self, address):
        """How many logins wait for C{address}'s maildrop."""
        return len(self._lines.get(address, ()))

    def acquire(self, account, address, timeout):
        """
        Take C{address}'s maildrop lock (L{IAccountStore.lockMaildrop}),
        waiting up to C{timeout} seconds behind the logins that came first.

        @return: a Deferred firing with the L{IMaildropLock}; it fails with
            L{MaildropBusy} after the wait (at once if C{timeout} is 0), or
            with the store's error. Cancelling it (the client left) takes the
            login out of the line.
        """
        waiter = _Waiter(account, address, None)
        waiter.deferred = defer.Deferred(lambda d: self._leave(waiter))
        line = self._lines.setdefault(address, collections.deque())
        line.append(waiter)
        if timeout > 0:
            waiter.deadline = self.clock.callLater(timeout, self._expire, waiter)
        if len(line) == 1:
            self._try(address, once=timeout <= 0)
        elif timeout <= 0:
            self._finish(waiter, failure=MaildropBusy(address))
        return waiter.deferred

    def released(self, address):
        """A session of this process let C{address}'s maildrop go: the next in line tries now."""
        if self.share is not None:
            self.share.maildropReleased(address)
        self.releasedElsewhere(address)

    def releasedElsewhere(self, address):
        """C{address}'s maildrop was let go, maybe by another process: the next in line tries now."""
        if self._lines.get(address):
            self._cancelPoll(address)
            self._try(address)

    def _try(self, address, once=False):
        line = self._lines.get(address)
        if not line or line[0].trying:
            return
        waiter = line[0]
        waiter.trying = True

        def locked(lock):
            waiter.trying = False
            if waiter.done:  # gave up (or left) while the store answered
                lock.release()
                self.released(address)
                return
            self._finish(waiter, result=_LineLock(lock, self, address))

        def refused(failure):
            waiter.trying = False
            if waiter.done:
                self._next(address)
                return None
            if failure.check(MailboxInUse):
                if once:
                    self._finish(waiter, failure=MaildropBusy(address))
                else:
                    self._schedulePoll(address)
                return None
            self._finish(waiter, failure=failure)
            return None
        d = defer.maybeDeferred(waiter.account.lockMaildrop)
        d.addCallbacks(locked, refused)

    def _schedulePoll(self, address):
        if address not in self._polls and self._lines.get(address):
            self._polls[address] = self.clock.callLater(self.pollInterval, self._poll, address)

    def _cancelPoll(self, address):
        call = self._polls.pop(address, None)
        if call is not None and call.active():
            call.cancel()

    def _poll(self, address):
        self._polls.pop(address, None)
        self._try(address)

    def _next(self, address):
        """The head of the line is gone: the new head tries at once."""
        if self._lines.get(address):
            self._cancelPoll(address)
            self._try(address)
        else:
            self._cancelPoll(address)
            self._lines.pop(address, None)

    def _remove(self, waiter):
        line = self._lines.get(waiter.address)
        if line is None or waiter not in line:
            return False
        wasHead = line[0] is waiter
        line.remove(waiter)
        if waiter.deadline is not None and waiter.deadline.active():
            waiter.deadline.cancel()
        if wasHead and not waiter.trying:
            self._next(waiter.address)
        elif not line:
            self._cancelPoll(waiter.address)
            self._lines.pop(waiter.address, None)
        return True

    def _finish(self, waiter, result=None, failure=None):
        waiter.done = True
        if failure is None:
            # The lock is this process's now: the next in line is woken by
            # released(), or by a poll if another process takes it first.
            waiter.trying = True
            self._remove(waiter)
            self._schedulePoll(waiter.address)
        else:
            self._remove(waiter)
        if failure is not None:
            waiter.deferred.errback(failure)
        else:
            waiter.deferred.callback(result)

    def _expire(self, waiter):
        waiter.deadline = None
        if not waiter.done:
            self._finish(waiter, failure=MaildropBusy(waiter.address))

    def _leave(self, waiter):
        """The Deferred was cancelled (the client left): out of the line."""
        if not waiter.done:
            waiter.done = True
            self._remove(waiter)
