"""
Live protocol transcripts: the lines L{mailstack.transcript} records, kept in
memory for the console and the API to show as the client talks.

The recorder (L{mailstack.transcript.SessionTranscript}) publishes each line
to a L{LiveSession} it opened with L{TranscriptHub.openSession}, after the
engine's secret marks were applied: the hub only ever holds what the
transcript file shows, C{***} for a password, so nothing here needs to
redact. A session belongs to nobody until a login succeeds in it
(L{LiveSession.loggedIn}); until then it is known by its client address
(L{TranscriptHub.sessionsFromClient}) and shown to admins only, since many
students may share one address (a lab's 127.0.0.1).

Memory is bounded: each session keeps its last C{maxLines} lines, at most
C{maxBytes} characters of text in all (a large message's DATA lines push its
first lines out), and the hub its last C{maxSessions} sessions (ended ones
are forgotten first).

Every line gets a number from one counter for the whole hub (L{Line.seq}),
so a follower that lost its connection can ask for what came after the last
number it saw (C{Last-Event-ID}), across sessions. A session that becomes
someone's at login gets a number too (L{LiveSession.shownSeq}): a follower
who missed that moment is given the whole session.

Watchers (L{ITranscriptWatcher}) are told, in the reactor thread, of the
sessions and lines they may see; L{TranscriptHub.watch} says which.
"""

import collections
import dataclasses
import datetime
import itertools

from twisted.logger import Logger
from zope.interface import Interface

log = Logger()

__all__ = ["Line", "LiveSession", "TranscriptHub", "ITranscriptWatcher"]


@dataclasses.dataclass(frozen=True)
class Line:
    """
    One recorded line.

    @ivar seq: its number in the hub (increasing across all sessions).
    @ivar when: POSIX time it was recorded.
    @ivar kind: C{"C"} (client), C{"S"} (server) or C{"#"} (a note: TLS
        started, login, closed).
    @ivar text: the line as the transcript file shows it (secrets as
        C{***}, control characters as C{\\xNN}).
    """

    seq: int
    when: float
    kind: str
    text: str

    def describe(self):
        """The line as JSON-ready values (the console's stream and the API)."""
        return {"seq": self.seq, "time": _isoTime(self.when), "kind": self.kind,
                "text": self.text}


def _isoTime(seconds):
    """POSIX time as ISO 8601 in UTC, to the millisecond."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ITranscriptWatcher(Interface):
    """
    Told of the sessions and lines a watch may see (in the reactor thread).
    """

    def sessionShown(session):
        """
        C{session} became visible to this watch (it started, for a watch of
        everything; its login, for a user's): its lines so far are
        C{session.lines}, later ones come through L{lineRecorded}.
        """

    def lineRecorded(session, line):
        """A new L{Line} of a visible session."""

    def sessionEnded(session):
        """A visible session ended (its last line, the close note, came before)."""


class LiveSession:
    """
    One protocol session as the hub keeps it.

    @ivar id: the hub's id of the session (a string, for URLs).
    @ivar protocol: C{smtp}, C{submission}, C{pop3}, C{imap} (the listener's
        protocol name).
    @ivar client: the client's address as C{host:port}.
    @ivar clientHost: the client's host (IP) alone.
    @ivar server: the address the client connected to, C{host:port}.
    @ivar started: POSIX time the session began.
    @ivar users: the addresses that logged in, in order (usually one; an
        SMTP client may log in again after STARTTLS).
    @ivar openSeq: the hub's number of its start (below its lines').
    @ivar shownSeq: the hub's number of its first login, or L{None}.
    @ivar endSeq: the hub's number of its end, or L{None}.
    @ivar ended: why the session ended (the transcript's close text), or
        L{None} while it goes on.
    @ivar endedAt: when it ended, or L{None}.
    @ivar dropped: how many of its first lines were forgotten (the per-session
        cap).
    """

    def __init__(self, hub, id, protocol, client, clientHost, server, started, maxLines,
                 maxBytes):
        self.hub = hub
        self.id = id
        self.protocol = protocol
        self.client = client
        self.clientHost = clientHost
        self.server = server
        self.started = started
        self.users = []
        self.openSeq = hub.nextSeq()
        self.shownSeq = None
        self.endSeq = None
        self.ended = None
        self.endedAt = None
        self.dropped = 0
        self.lines = collections.deque()
        self.maxLines = maxLines
        self.maxBytes = maxBytes
        self._bytes = 0

    @property
    def user(self):
        """The first address that logged in, or L{None}."""
        return self.users[0] if self.users else None

    def describe(self):
        """The session without its lines, as JSON-ready values."""
        return {"id": self.id, "protocol": self.protocol, "client": self.client,
                "server": self.server, "started": _isoTime(self.started),
                "users": list(self.users), "ended": self.ended,
                "endedAt": _isoTime(self.endedAt) if self.endedAt is not None else None,
                "lines": len(self.lines), "dropped": self.dropped}

    def ownedBy(self, address):
        """C{True} if C{address} logged in during this session."""
        return address in self.users

    def linesAfter(self, seq):
        """The lines kept whose number is above C{seq}, oldest first."""
        return [line for line in self.lines if line.seq > seq]

    def linesBefore(self, seq):
        """The lines kept whose number is below C{seq}, oldest first."""
        return [line for line in self.lines if line.seq < seq]

    def shownAt(self, admin):
        """
        The number of the moment this session became visible: its start for
        an admin, its first login for its user (L{None}: not yet).
        """
        return self.openSeq if admin else self.shownSeq

    # -- what the recorder reports -------------------------------------------

    def record(self, kind, text):
        """Keep a recorded line and tell the watchers that may see it."""
        if self.ended is not None:
            return
        line = Line(self.hub.nextSeq(), self.hub.clock.seconds(), kind, text)
        self.lines.append(line)
        self._bytes += len(text)
        while len(self.lines) > 1 and (len(self.lines) > self.maxLines
                                       or self._bytes > self.maxBytes):
            self._bytes -= len(self.lines.popleft().text)
            self.dropped += 1
        self.hub.lineRecorded(self, line)

    def loggedIn(self, address):
        """
        A login as C{address} succeeded in this session: the session becomes
        visible to that user (with its lines so far).
        """
        if self.ended is not None or not address or address in self.users:
            return
        self.users.append(address)
        if self.shownSeq is None:
            self.shownSeq = self.hub.nextSeq()
        self.hub.sessionOwned(self, address)

    def close(self, reason):
        """The session ended (after its close line was recorded)."""
        if self.ended is not None:
            return
        self.ended = reason
        self.endedAt = self.hub.clock.seconds()
        self.endSeq = self.hub.nextSeq()
        self.hub.sessionEnded(self)


class _Watch:
    def __init__(self, watcher, address, admin, sessionID):
        self.watcher = watcher
        self.address = address
        self.admin = admin
        self.sessionID = sessionID

    def sees(self, session):
        if self.sessionID is not None and session.id != self.sessionID:
            return False
        return self.admin or session.ownedBy(self.address)


class TranscriptHub:
    """
    The live sessions of one server and who watches them.

    @param clock: an L{IReactorTime} (the reactor) for the lines' times.
    @param maxSessions: sessions kept (the oldest ended ones go first).
    @param maxLines: lines kept per session (its first ones go first).
    @param maxBytes: characters of text kept per session (likewise).
    """

    def __init__(self, clock, maxSessions=200, maxLines=2000, maxBytes=256 * 1024):
        self.clock = clock
        self.maxSessions = maxSessions
        self.maxLines = maxLines
        self.maxBytes = maxBytes
        self._ids = itertools.count(1)
        self._seq = 0
        self._sessions = collections.OrderedDict()
        self._watches = []

    def nextSeq(self):
        """A new line number (L{Line.seq}), above every one given before."""
        self._seq += 1
        return self._seq

    @property
    def lastSeq(self):
        """The last line number given (0 before any)."""
        return self._seq

    # -- the recorder's side ---------------------------------------------------

    def openSession(self, protocol, client, clientHost, server):
        """
        A session began: a new L{LiveSession} the recorder reports to. Admins'
        watches are told.
        """
        session = LiveSession(self, str(next(self._ids)), protocol, client, clientHost,
                              server, self.clock.seconds(), self.maxLines, self.maxBytes)
        self._sessions[session.id] = session
        self._forgetOld()
        for watch in list(self._watches):
            if watch.sees(session):
                self._tell(watch, "sessionShown", session)
        return session

    def _forgetOld(self):
        while len(self._sessions) > self.maxSessions:
            ended = next((s for s in self._sessions.values() if s.ended is not None), None)
            victim = ended if ended is not None else next(iter(self._sessions.values()))
            del self._sessions[victim.id]

    def lineRecorded(self, session, line):
        if self._sessions.get(session.id) is not session:
            return  # forgotten: nobody can find it any more
        for watch in list(self._watches):
            if watch.sees(session):
                self._tell(watch, "lineRecorded", session, line)

    def sessionOwned(self, session, address):
        if self._sessions.get(session.id) is not session:
            return
        for watch in list(self._watches):
            if not watch.admin and watch.address == address and watch.sees(session):
                self._tell(watch, "sessionShown", session)

    def sessionEnded(self, session):
        if self._sessions.get(session.id) is not session:
            return
        for watch in list(self._watches):
            if watch.sees(session):
                self._tell(watch, "sessionEnded", session)

    def _tell(self, watch, method, *args):
        # A watcher's failure must not reach the recorder (nor the session).
        try:
            getattr(watch.watcher, method)(*args)
        except Exception:
            log.failure("transcript watcher {watcher!r} failed", watcher=watch.watcher)

    # -- the readers' side -----------------------------------------------------

    def get(self, sessionID):
        """The kept L{LiveSession} with this id, or L{None}."""
        return self._sessions.get(sessionID)

    def visible(self, session, address, admin=False):
        """C{True} if the user C{address} (an admin: anyone) may see C{session}."""
        return admin or session.ownedBy(address)

    def sessions(self):
        """Every kept session, newest first."""
        return list(reversed(self._sessions.values()))

    def sessionsOf(self, address):
        """The kept sessions C{address} logged in during, newest first."""
        return [s for s in self.sessions() if s.ownedBy(address)]

    def sessionsFromClient(self, host):
        """The kept sessions from client host C{host} nobody logged in during, newest first."""
        return [s for s in self.sessions() if s.clientHost == host and not s.users]

    def sessionsFor(self, address, admin=False):
        """What the user C{address} may see: her own sessions; an admin every one."""
        return self.sessions() if admin else self.sessionsOf(address)

    def backlog(self, address, admin=False, after=0, sessionID=None):
        """
        What a watch (L{watch}'s arguments) would have been told after the
        line number C{after}: for a follower that reconnects with the last
        number it saw (C{Last-Event-ID}; 0 for everything kept).

        @return: C{[(seq, event, session, payload)]} in number order:
            C{("shown", session, lines before it was shown)} for a session
            that became visible after C{after} (or every kept session when
            C{after} is 0), C{("line", session, line)},
            C{("ended", session, None)}.
        """
        events = []
        if sessionID is not None:
            session = self.get(sessionID)
            candidates = [session] if session is not None else []
        else:
            candidates = self._sessions.values()
        for session in candidates:
            if not self.visible(session, address, admin):
                continue
            shown = session.shownAt(admin)
            if shown is None:
                continue
            if shown > after:
                events.append((shown, "shown", session, session.linesBefore(shown)))
            for line in session.linesAfter(max(after, shown)):
                events.append((line.seq, "line", session, line))
            if session.endSeq is not None and session.endSeq > after:
                events.append((session.endSeq, "ended", session, None))
        events.sort(key=lambda event: event[0])
        return events

    def watch(self, watcher, address, admin=False, sessionID=None):
        """
        Tell C{watcher} (an L{ITranscriptWatcher}) of what the user
        C{address} may see from now on: her own sessions (an admin's watch:
        every session), or only the session C{sessionID} if given.

        @return: a callable that ends the watch.
        """
        watch = _Watch(watcher, address, admin, sessionID)
        self._watches.append(watch)

        def stop():
            if watch in self._watches:
                self._watches.remove(watch)
        return stop

    @property
    def watchers(self):
        """How many watches are running (for tests and the status page)."""
        return len(self._watches)
