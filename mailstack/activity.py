"""
What each user did, for class reports: logins per protocol, messages sent and
received, and whether TLS was on each time.

The session core and the SMTP engine tell an L{IActivity} (the listener
settings carry it; L{NO_ACTIVITY}, the default, keeps nothing).
L{ActivityRecorder} is the one the server runs: counts per user in memory,
kept in C{data_dir/activity.json} so a restart between two lab sessions loses
nothing. The file is rewritten (atomically, in a thread: never on the
reactor) a few seconds after a change, and once more when the server stops.

What counts:
  - a login: any successful login (SMTP AUTH, POP3 USER/PASS, APOP and AUTH,
    IMAP LOGIN and AUTHENTICATE), under C{smtp}, C{pop3} or C{imap};
  - a message sent: a message an authenticated SMTP session submitted and the
    server accepted (250 after DATA), whoever it was for;
  - a message received: a copy delivered to a local user's INBOX by SMTP.
Each is counted with or without TLS (implicit TLS or STARTTLS done).
"""

import collections
import dataclasses
import json
import os

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import Interface, implementer

from mailstack.storage.files import atomicWrite

__all__ = ["IActivity", "NO_ACTIVITY", "ActivityRecorder", "UserActivity",
           "LOGIN", "SENT", "RECEIVED"]

log = Logger()

LOGIN = "login"
SENT = "sent"
RECEIVED = "received"
EVENTS = (LOGIN, SENT, RECEIVED)
FILE_VERSION = 1


class IActivity(Interface):
    """
    Where sessions report what a user did. Called in the reactor thread;
    returns nothing and never fails the session.
    """

    def loggedIn(address, protocol, tls):
        """C{address} logged in over C{protocol} (C{smtp}, C{pop3}, C{imap}); C{tls}: encrypted."""

    def messageSent(address, protocol, tls):
        """C{address} (logged in) submitted a message the server accepted."""

    def messageReceived(address, protocol, tls):
        """A message was delivered to local user C{address}'s INBOX."""


@implementer(IActivity)
class _NoActivity:
    """Keeps nothing: the default where no recorder is configured (unit tests)."""

    def loggedIn(self, address, protocol, tls):
        pass

    def messageSent(self, address, protocol, tls):
        pass

    def messageReceived(self, address, protocol, tls):
        pass


NO_ACTIVITY = _NoActivity()


@dataclasses.dataclass
class UserActivity:
    """
    One user's counts.

    @ivar counts: C{{(event, protocol, tls): n}}, event one of L{EVENTS}.
    @ivar first: when the first event was counted (seconds since the
        epoch), or L{None}.
    @ivar last: when the latest one was.
    """
    address: str
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    first: float | None = None
    last: float | None = None

    def total(self, event, protocol=None, tls=None):
        """How many C{event}s, of one protocol and/or TLS state if given."""
        return sum(n for (e, p, t), n in self.counts.items()
                   if e == event and protocol in (None, p) and tls in (None, t))

    def protocols(self, event):
        """The protocols C{event} happened over, sorted."""
        return sorted({p for (e, p, _), n in self.counts.items() if e == event and n})

    def toJSON(self):
        return {"counts": [[e, p, t, n] for (e, p, t), n in sorted(self.counts.items())],
                "first": self.first, "last": self.last}

    @classmethod
    def fromJSON(cls, address, data):
        counts = collections.Counter()
        for event, protocol, tls, n in data["counts"]:
            if event not in EVENTS or not isinstance(n, int) or not isinstance(tls, bool):
                raise ValueError("bad count %r" % ([event, protocol, tls, n],))
            counts[(event, str(protocol), tls)] += n
        return cls(address, counts, data.get("first"), data.get("last"))


@implementer(IActivity)
class ActivityRecorder(service.Service):
    """
    Per-user counts in memory, saved to a JSON file.

    @param path: the file (L{None}: kept in memory only).
    @param clock: the reactor (C{seconds}, C{callLater}).
    @param runInThread: C{runInThread(f, *args)} -> Deferred: where the file
        is written; the reactor's thread pool by default.
    @param saveDelay: seconds between a change and the file's rewrite (the
        changes of that time are written together).
    """

    saveDelay = 5.0

    def __init__(self, path, clock, runInThread=None, saveDelay=None):
        self.path = path
        self.clock = clock
        self.users = {}
        if runInThread is None:
            def runInThread(f, *args):
                return threads.deferToThreadPool(clock, clock.getThreadPool(), f, *args)
        self.runInThread = runInThread
        if saveDelay is not None:
            self.saveDelay = saveDelay
        self._pending = None  # the delayed call of the next save
        self._saving = None  # the Deferred of the write under way
        self._dirty = False

    # -- loading ----------------------------------------------------------------

    def load(self):
        """
        Read the file, if there is one (at start-up, before the reactor runs).
        A file that cannot be read as counts is set aside as C{.bad} with a
        warning, and counting starts again.
        """
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
            if data.get("version") != FILE_VERSION:
                raise ValueError("unknown version %r" % (data.get("version"),))
            users = {address: UserActivity.fromJSON(address, entry)
                     for address, entry in data["users"].items()}
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
            bad = "%s.bad" % (self.path,)
            os.replace(self.path, bad)
            log.warn("activity: {path} unreadable ({error}); kept as {bad}, counting afresh",
                     path=str(self.path), error=e, bad=bad)
            return
        self.users = users

    # -- IActivity ----------------------------------------------------------------

    def loggedIn(self, address, protocol, tls):
        self.count(LOGIN, address, protocol, tls)

    def messageSent(self, address, protocol, tls):
        self.count(SENT, address, protocol, tls)

    def messageReceived(self, address, protocol, tls):
        self.count(RECEIVED, address, protocol, tls)

    def count(self, event, address, protocol, tls):
        """Count one C{event} of C{address}, and save soon."""
        address = address.lower()
        user = self.users.get(address)
        if user is None:
            user = self.users[address] = UserActivity(address)
        now = self.clock.seconds()
        user.counts[(event, protocol, bool(tls))] += 1
        if user.first is None:
            user.first = now
        user.last = now
        self.changed()

    # -- reading --------------------------------------------------------------

    def user(self, address):
        """The L{UserActivity} of C{address} (empty if nothing was counted)."""
        address = address.lower()
        return self.users.get(address) or UserActivity(address)

    def addresses(self):
        """Every address with counts, sorted."""
        return sorted(self.users)

    def reset(self, address=None):
        """Forget everyone's counts (a new class), or one user's."""
        if address is None:
            self.users.clear()
        else:
            self.users.pop(address.lower(), None)
        self.changed()

    # -- saving ---------------------------------------------------------------

    def changed(self):
        self._dirty = True
        if self.path is not None and self._pending is None and self.running:
            self._pending = self.clock.callLater(self.saveDelay, self.save)

    def snapshot(self):
        """The file's content now (bytes)."""
        data = {"version": FILE_VERSION,
                "users": {address: user.toJSON()
                          for address, user in sorted(self.users.items())}}
        return json.dumps(data, indent=1, sort_keys=True).encode("utf-8") + b"\n"

    def save(self):
        """
        Write the counts now (after a write under way, if one is).

        @return: a Deferred firing once they are on disk.
        """
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        if self.path is None:
            return defer.succeed(None)
        if self._saving is not None:
            # One write at a time; the next takes what changed meanwhile.
            d = defer.Deferred()

            def then(result):
                self.save().chainDeferred(d)
                return result
            self._saving.addBoth(then)
            return d
        if not self._dirty:
            return defer.succeed(None)
        self._dirty = False
        data = self.snapshot()

        def failed(failure):
            self._dirty = True
            log.error("activity: cannot write {path}: {error}", path=str(self.path),
                      error=failure.getErrorMessage())

        def done(_):
            self._saving = None
        self._saving = d = self.runInThread(atomicWrite, self.path, data)
        d.addErrback(failed)
        d.addBoth(done)
        return d

    def stopService(self):
        service.Service.stopService(self)
        return self.save()
