"""
One poll per mailbox for all the IDLE sessions watching it.

An IDLE session learns of changes other programs make (another MDA, Dovecot)
by polling its mailbox every C{idlePollInterval}. A poll per session costs
a sync each (stats of new/, cur/ and the uidlist) per second: 10,000
sessions idling in one process made 10,000 syncs a second, a whole CPU, and
a delivery waited behind them. Here the sessions idling on one mailbox
share one timer and one C{sync(claimRecent=False)}; what it finds reaches
every session through the mailbox's listeners (each session's view), as a
delivery by this process does, and each session then sends its updates.
"""

from twisted.logger import Logger

from mailstack.storage.interfaces import StoreError

__all__ = ["watch"]

log = Logger()

_polls = {}  # mailbox store -> _MailboxPoll


class _MailboxPoll:
    """The shared timer of one mailbox and the sessions idling on it."""

    def __init__(self, store, clock, interval):
        self.store = store
        self.clock = clock
        self.interval = interval
        self.watchers = set()
        self.call = None
        self.polling = False  # a sync of this poll is under way

    def add(self, registration):
        self.watchers.add(registration)
        if self.call is None and not self.polling:
            self.call = self.clock.callLater(self.interval, self.tick)

    def remove(self, registration):
        self.watchers.discard(registration)
        if not self.watchers:
            if self.call is not None and self.call.active():
                self.call.cancel()
            self.call = None
            if _polls.get(self.store) is self:
                del _polls[self.store]

    def tick(self):
        self.call = None
        if not self.watchers:
            return
        self.polling = True
        d = self.store.sync(claimRecent=False)

        def failed(failure):
            failure.trap(StoreError, OSError)
            log.warn("{mailbox}: polling for IDLE sessions failed ({error}); "
                     "trying again in {n} s", mailbox=self.store, error=failure.value,
                     n=self.interval)
        d.addErrback(failed)
        d.addErrback(lambda f: log.failure("{mailbox}: polling for IDLE sessions failed", f,
                                           mailbox=self.store))
        d.addBoth(self._polled)

    def _polled(self, _):
        """A poll is over: the next one an interval later. Never two at once:
        a sync slower than the interval (new files of a big mailbox given
        their UIDs in a worker thread) would have the polls queue up behind it."""
        self.polling = False
        if self.watchers and self.call is None:
            self.call = self.clock.callLater(self.interval, self.tick)


class _Registration:
    """
    A session's place in its mailbox's poll; like a C{DelayedCall} it can be
    asked whether it is C{active()} and C{cancel()}led (when IDLE ends).
    """

    def __init__(self, poll):
        self._poll = poll
        poll.add(self)

    def active(self):
        return self._poll is not None

    def cancel(self):
        poll, self._poll = self._poll, None
        if poll is not None:
            poll.remove(self)


def watch(store, clock, interval):
    """
    Poll mailbox C{store} every C{interval} seconds (on C{clock}) while the
    returned registration is active; one poll serves every registration of
    the same mailbox (the first one's clock and interval).

    @return: the registration (C{active()}, C{cancel()}).
    """
    poll = _polls.get(store)
    if poll is None:
        poll = _polls[store] = _MailboxPoll(store, clock, interval)
    return _Registration(poll)
