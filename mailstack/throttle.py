"""
Failed logins: the penalty per client address that every listener, protocol
and SASL mechanism shares (L{AuthPenalty}, one per server), and one session's
view of it (L{AuthFailureThrottle}, one per connection).

The penalty works like Dovecot's auth penalty (auth-penalty.c): failures are
counted per client address, not per connection, so reconnecting does not start
afresh; once an address has failed C{limits.auth_failures_delay} times, each
further login attempt from it waits C{auth_failure_delay_seconds} before
its credentials are checked, doubling with each failure up to
C{auth_failure_delay_max_seconds} (Dovecot: 2 s doubling to 15 s, keyed by IP,
cleared by a successful login). The wait comes before the check, as in Dovecot,
so a client cannot tell a failure from the missing reply and hang up early: a
success from a penalised address waits too. An address's failures are
forgotten C{auth_penalty_seconds} after its last one, and at most
C{auth_penalty_addresses} addresses are tracked (the oldest is dropped first),
so the table stays bounded however many addresses try. IPv6 clients are
counted per /64 (one host or LAN can hold millions of addresses; Dovecot masks
to /48, mox counts /64 first).

The session counts its own failures for the disconnect limit
(C{limits.auth_failures_disconnect}, per connection as in Dovecot's login
processes); each engine words its own replies.
"""

import collections
import dataclasses
import ipaddress

from twisted.internet import defer
from twisted.logger import Logger

from mailstack.sessions import clientIP

log = Logger()

_IPV6_PREFIX = 64


@dataclasses.dataclass
class _Failures:
    """One address's recent failed logins."""
    count: int
    last: float
    announced: bool = False


class AuthPenalty:
    """
    Failed logins per client address, shared by the whole server (service.py
    builds one and hands it to every listener through the settings).

    @param clock: an C{IReactorTime} (a C{task.Clock} in tests).
    @param delayAfter: once an address has failed this many times, each
        further attempt from it waits.
    @param delaySeconds: the first wait; 0 turns the penalty off.
    @param maxDelaySeconds: the wait doubles per failure up to this.
    @param rememberSeconds: an address's failures are forgotten this long
        after its last one.
    @param maxAddresses: addresses tracked at most; past it the address whose
        last failure is oldest is forgotten.
    """

    def __init__(self, clock, delayAfter=2, delaySeconds=2.0, maxDelaySeconds=15.0,
                 rememberSeconds=300.0, maxAddresses=10000):
        self.clock = clock
        self.delayAfter = delayAfter
        self.delaySeconds = delaySeconds
        self.maxDelaySeconds = max(maxDelaySeconds, delaySeconds)
        self.rememberSeconds = rememberSeconds
        self.maxAddresses = maxAddresses
        self._failures = collections.OrderedDict()  # key -> _Failures, oldest first
        # With [server] workers: told authFailed(key) and authSucceeded(key) of
        # this process's logins, so every process counts every failure
        # (mailstack.workerlink.SharedLimits, LimitsLink).
        self.share = None

    @classmethod
    def fromLimits(cls, limits, clock):
        """The server's penalty from its C{[limits]} (L{mailstack.config.LimitsConfig})."""
        return cls(clock, delayAfter=limits.auth_failures_delay,
                   delaySeconds=limits.auth_failure_delay_seconds,
                   maxDelaySeconds=limits.auth_failure_delay_max_seconds,
                   rememberSeconds=limits.auth_penalty_seconds,
                   maxAddresses=limits.auth_penalty_addresses)

    def __len__(self):
        """Addresses tracked now (expired ones are dropped first)."""
        self._expire()
        return len(self._failures)

    @staticmethod
    def key(address):
        """
        The address the penalty counts: an IPv4 address as is, an IPv6 address
        as its /64; L{None} (no address, e.g. a UNIX socket) is not counted.
        """
        if address is None:
            return None
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return address
        if parsed.version == 6:
            return str(ipaddress.ip_network((parsed, _IPV6_PREFIX), strict=False))
        return str(parsed)

    def failures(self, address):
        """Recent failed logins from C{address} (a client IP string)."""
        record = self._record(self.key(address))
        return record.count if record is not None else 0

    def delayFor(self, address):
        """
        @return: the seconds the next login attempt from C{address} waits
            before its credentials are checked (0: none).
        """
        return self._delay(self._record(self.key(address)))

    def admit(self, address):
        """
        Like L{delayFor}, for an attempt about to be made: the first time an
        address is made to wait, one log line says so.
        """
        key = self.key(address)
        record = self._record(key)
        delay = self._delay(record)
        if delay and not record.announced:
            record.announced = True
            log.info("auth penalty: {address}: {count} failed logins; its logins now "
                     "wait {delay:g} s, doubling up to {max:g} s, until one succeeds or "
                     "{remember:g} s pass without a failure",
                     address=key, count=record.count, delay=delay,
                     max=self.maxDelaySeconds, remember=self.rememberSeconds)
        return delay

    def failed(self, address):
        """
        Count a failed login from C{address}.

        @return: the address's recent failures, this one included.
        """
        key = self.key(address)
        if key is None:
            return 0
        if self.share is not None and _shareable(key):
            self.share.authFailed(key)
        return self.failedElsewhere(key)

    def failedElsewhere(self, key):
        """
        Count a failed login another process of the server saw from C{key}
        (an address as L{key} gives it), not telling L{share}.

        @return: the address's recent failures, this one included.
        """
        record = self._record(key)
        now = self.clock.seconds()
        if record is None:
            record = self._failures[key] = _Failures(count=0, last=now)
            while len(self._failures) > self.maxAddresses:
                self._failures.popitem(last=False)
        record.count += 1
        record.last = now
        self._failures.move_to_end(key)
        return record.count

    def succeeded(self, address):
        """A login from C{address} succeeded: forget its failures (as Dovecot resets)."""
        key = self.key(address)
        if key is not None and self._failures.pop(key, None) is not None:
            if self.share is not None and _shareable(key):
                self.share.authSucceeded(key)

    def succeededElsewhere(self, key):
        """A login from C{key} succeeded in another process: forget its failures here too."""
        self._failures.pop(key, None)

    def _delay(self, record):
        if record is None or not self.delaySeconds:
            return 0
        doublings = record.count - self.delayAfter
        if doublings < 0:
            return 0
        return min(self.delaySeconds * 2 ** min(doublings, 32), self.maxDelaySeconds)

    def _record(self, key):
        self._expire()
        return None if key is None else self._failures.get(key)

    def _expire(self):
        horizon = self.clock.seconds() - self.rememberSeconds
        failures = self._failures
        while failures:
            key = next(iter(failures))
            if failures[key].last > horizon:
                break
            del failures[key]


def _shareable(key):
    """Whether other processes may see C{key}: a client address, not one session's own key."""
    return not key.startswith("session ")


@dataclasses.dataclass(frozen=True)
class AuthFailureVerdict:
    """
    What to do about one failed login.

    @ivar count: failures so far in this session, this one included.
    @ivar disconnect: this failure reached the session's disconnect limit: the
        engine answers it and closes the connection.
    """
    count: int
    disconnect: bool


class AuthFailureThrottle:
    """
    One session's logins: each credential check waits the client address's
    penalty (L{login}); failures are counted here for the disconnect limit
    and in the shared L{AuthPenalty} (L{record}).

    @param settings: the listener's L{mailstack.settings.ListenerSettings}
        (C{authPenalty}, the server's shared L{AuthPenalty}; without one, as
        in some tests, the session keeps a penalty of its own built from
        C{authFailuresDelay}, C{authFailureDelay}, C{authFailureDelayMax};
        and C{authFailuresDisconnect}).
    @param clock: an C{IReactorTime} (a C{task.Clock} in tests).
    """

    def __init__(self, settings, clock):
        self.disconnectAfter = settings.authFailuresDisconnect
        self.clock = clock
        self.penalty = settings.authPenalty
        if self.penalty is None:
            self.penalty = AuthPenalty(
                clock, delayAfter=settings.authFailuresDelay,
                delaySeconds=settings.authFailureDelay,
                maxDelaySeconds=settings.authFailureDelayMax)
        self.count = 0
        self._call = None

    def login(self, portal, peer, credentials, *interfaces):
        """
        C{portal.login(credentials, None, *interfaces)}, once the address of
        C{peer} has waited out its penalty; a success clears the penalty.

        @return: the L{Deferred} of the login (it never fires if L{cancel} is
            called during the wait).
        """
        address = self._address(peer)

        def check(_=None):
            self._call = None
            d = portal.login(credentials, None, *interfaces)
            d.addCallback(self._succeeded, address)
            return d

        delay = self.penalty.admit(address)
        if not delay:
            return check()
        waiting = defer.Deferred()
        self._call = self.clock.callLater(delay, waiting.callback, None)
        return waiting.addCallback(check)

    def _address(self, peer):
        """
        The address C{peer} is counted under: its IP; a client without one (a
        UNIX socket) is counted for its session alone, as before the penalty
        was shared.
        """
        ip = clientIP(peer)
        return ip if ip is not None else "session %x" % (id(self),)

    def _succeeded(self, result, address):
        self.penalty.succeeded(address)
        return result

    def record(self, peer):
        """
        Count a failed login by C{peer} (also when no credentials were
        checked, e.g. a refused authorization identity).

        @return: an L{AuthFailureVerdict}.
        """
        self.penalty.failed(self._address(peer))
        self.count += 1
        return AuthFailureVerdict(count=self.count,
                                  disconnect=self.count >= self.disconnectAfter)

    def cancel(self):
        """Stop a pending wait (the connection is gone): the check never runs."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
