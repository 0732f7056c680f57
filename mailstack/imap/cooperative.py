"""
Long computations (SEARCH over message bodies) without blocking the reactor.

L{run} drives an iterator whose every step is a small piece of work: it runs
steps for up to L{BURST} seconds, then, if work remains, goes on in a later
reactor turn (C{callLater(0)}), so other sessions are served in between. Work
that fits in one burst finishes synchronously.
"""

import time

from twisted.internet import defer
from twisted.python.failure import Failure

BURST = 0.02


def _runBurst(iterator, burst):
    """@return: True when the iterator is exhausted."""
    deadline = time.monotonic() + burst
    for _ in iterator:
        if time.monotonic() >= deadline:
            return False
    return True


def run(steps, clock, burst=None):
    """
    Run C{steps} (an iterable) to its end, in bursts.

    @param clock: provides C{callLater} (the reactor, or a L{task.Clock}).
    @param burst: seconds per reactor turn (default L{BURST}).
    @return: L{None} if all steps ran now, else a Deferred firing with None
        when they have (or failing with the error a step raised). Errors in the
        first burst are raised directly.
    """
    if burst is None:
        burst = BURST
    iterator = iter(steps)
    if _runBurst(iterator, burst):
        return None
    d = defer.Deferred()

    def later():
        try:
            finished = _runBurst(iterator, burst)
        except Exception:
            d.errback(Failure())
            return
        if finished:
            d.callback(None)
        else:
            clock.callLater(0, later)
    clock.callLater(0, later)
    return d
