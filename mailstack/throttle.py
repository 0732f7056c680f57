"""
The authentication-failure policy shared by the SMTP, POP3 and IMAP engines:
after C{limits.auth_failures_delay} failed logins in one session each further
failure is answered only after C{limits.auth_failure_delay_seconds}, and the
C{limits.auth_failures_disconnect}th ends the session.

The policy only counts and decides; each engine words its own replies, logs,
and decides how a delay holds its input (see L{AuthFailureThrottle.record}).
"""

import dataclasses

from twisted.internet import defer


@dataclasses.dataclass(frozen=True)
class AuthFailureVerdict:
    """
    What to do about one failed login.

    @ivar count: failures so far in this session, this one included.
    @ivar delayed: the reply is to wait (L{AuthFailureThrottle.delay}).
    @ivar disconnect: this failure reached the disconnect limit.
    """
    count: int
    delayed: bool
    disconnect: bool


class AuthFailureThrottle:
    """
    One session's failed logins.

    @param settings: the listener's L{mailstack.settings.ListenerSettings}
        (C{authFailuresDelay}, C{authFailuresDisconnect}, C{authFailureDelay}).
    @param clock: an C{IReactorTime} (a C{task.Clock} in tests).
    """

    def __init__(self, settings, clock):
        self.delayAfter = settings.authFailuresDelay
        self.disconnectAfter = settings.authFailuresDisconnect
        self.delaySeconds = settings.authFailureDelay
        self.clock = clock
        self.count = 0
        self._call = None

    def record(self):
        """
        Count a failed login.

        @return: an L{AuthFailureVerdict}. Both C{delayed} and C{disconnect}
            may be true: the engine chooses whether a disconnect waits.
        """
        self.count += 1
        return AuthFailureVerdict(
            count=self.count,
            delayed=self.count >= self.delayAfter,
            disconnect=self.count >= self.disconnectAfter)

    def delay(self, result=None):
        """
        @return: a L{Deferred} that fires with C{result} after the failure
            delay (never, if L{cancel} is called first).
        """
        d = defer.Deferred()
        self._call = self.clock.callLater(self.delaySeconds, d.callback, result)
        return d

    def cancel(self):
        """Stop a pending delay (the connection is gone)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def reset(self):
        """Start counting again (a new session on the same connection)."""
        self.count = 0
