"""
Console logins: a mail account's address and password, checked by the user
directory (in a thread), under the server's shared auth-failure penalty, so a
wrong console password slows that client address on SMTP, POP3 and IMAP too,
and theirs slow the console.

Sessions live in the server's memory (L{SessionStore}): the browser holds only
a random id (C{secrets.token_urlsafe}, 256 bits) in a cookie that is
C{HttpOnly}, C{SameSite=Strict}, and C{Secure} when the console is served
over TLS. Every session, a signed-out one included (the login form's), has
its own CSRF token; every state-changing form carries it and a POST without
it is refused (L{ConsoleAuth.checkCSRF}). A login starts a new session (a new
id), so an id planted before login is worth nothing after.

An account's admin flag (L{mailstack.auth.passwords.User.admin}) is read at
login: admins see every account, other users only their own.
"""

import collections
import dataclasses
import hmac
import secrets

from twisted.internet import defer, task
from twisted.logger import Logger

from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.sessions import clientIP

log = Logger()

COOKIE = b"mailstack_session"

# The one reply to any failed login: it does not say whether the address exists.
LOGIN_FAILED = "Wrong address or password."
LOGIN_UNAVAILABLE = "The user directory cannot be reached now; try again in a moment."


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is signed in: an account's address, and whether it is an admin."""

    address: str
    admin: bool = False

    def maySee(self, address):
        """C{True} if this user may see the account C{address} (admins: all)."""
        return self.admin or address == self.address


@dataclasses.dataclass
class Session:
    """
    One browser's session: C{principal} is L{None} until it logs in.
    """

    id: str
    csrf: str
    principal: Principal | None
    lastUsed: float
    notices: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Notice:
    """A line for the next page: what a form did, or (C{error}) why not."""

    text: str
    error: bool = False


class SessionStore:
    """
    Sessions by id, forgotten C{timeout} seconds after their last use; at most
    C{maxSessions} (the least recently used goes first), so a client asking
    for login forms over and over cannot fill the memory.
    """

    def __init__(self, clock, timeout, maxSessions=10000):
        self.clock = clock
        self.timeout = timeout
        self.maxSessions = maxSessions
        self._sessions = collections.OrderedDict()

    def __len__(self):
        self._expire()
        return len(self._sessions)

    def create(self, principal=None):
        """A new session with a fresh id and CSRF token."""
        session = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                          principal=principal, lastUsed=self.clock.seconds())
        self._sessions[session.id] = session
        while len(self._sessions) > self.maxSessions:
            self._sessions.popitem(last=False)
        return session

    def get(self, sessionID):
        """The live session with this id (its use noted), or L{None}."""
        self._expire()
        session = self._sessions.get(sessionID)
        if session is not None:
            session.lastUsed = self.clock.seconds()
            self._sessions.move_to_end(sessionID)
        return session

    def remove(self, sessionID):
        self._sessions.pop(sessionID, None)

    def forget(self, address):
        """End every session of C{address} (its admin flag or password changed)."""
        for sessionID in [s.id for s in self._sessions.values()
                          if s.principal is not None and s.principal.address == address]:
            del self._sessions[sessionID]

    def _expire(self):
        horizon = self.clock.seconds() - self.timeout
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.lastUsed > horizon:
                break
            del self._sessions[oldest.id]


def requestCookie(request, name):
    """The value (bytes) of cookie C{name} in the request, or L{None}."""
    for header in request.requestHeaders.getRawHeaders(b"cookie", []):
        for part in header.split(b";"):
            key, sep, value = part.strip().partition(b"=")
            if sep and key == name:
                return value
    return None


class ConsoleAuth:
    """
    Logins, sessions and CSRF tokens of one console.

    @param context: the L{mailstack.web.context.WebContext}.
    """

    def __init__(self, context):
        self.context = context
        web = context.config.web
        self.secure = bool(web is not None and web.tls)
        timeout = web.session_timeout if web is not None else 8 * 3600
        self.sessions = SessionStore(context.reactor, timeout)

    # Sessions

    def session(self, request):
        """The request's live session, or L{None}."""
        cookie = requestCookie(request, COOKIE)
        if not cookie:
            return None
        return self.sessions.get(cookie.decode("ascii", "replace"))

    def currentUser(self, request):
        """The L{Principal} signed in on this request, or L{None}."""
        session = self.session(request)
        return session.principal if session is not None else None

    def csrfToken(self, request):
        """
        The CSRF token for the forms of this page, starting a (signed-out)
        session for a browser that has none.
        """
        session = self.session(request)
        if session is None:
            session = self.sessions.create()
            self._setCookie(request, session.id)
        return session.csrf

    def checkCSRF(self, request):
        """
        C{True} if the request's form field C{csrf} is its session's token
        (compared in constant time); a request without a session fails.
        """
        session = self.session(request)
        given = (request.args or {}).get(b"csrf", [b""])[0]
        if session is None or not given:
            return False
        return hmac.compare_digest(given, session.csrf.encode("ascii"))

    def notify(self, request, text, error=False):
        """
        Keep C{text} to show on this session's next page (after a form's
        redirect: what the form did, or with C{error}, why it did nothing).
        """
        session = self.session(request)
        if session is not None:
            session.notices.append(Notice(text, error))

    def takeNotices(self, request):
        """The texts L{notify} kept for this session, now forgotten."""
        session = self.session(request)
        if session is None:
            return []
        notices, session.notices = session.notices, []
        return notices

    def _setCookie(self, request, value, expire=False):
        parts = [COOKIE + b"=" + value.encode("ascii"), b"Path=/", b"HttpOnly",
                 b"SameSite=Strict"]
        if self.secure:
            parts.append(b"Secure")
        if expire:
            parts.append(b"Max-Age=0")
        request.responseHeaders.addRawHeader(b"set-cookie", b"; ".join(parts))

    # Logging in and out

    def login(self, request, name, password):
        """
        Check C{name} and C{password} with the user directory, after the
        wait the shared penalty gives the client's address.

        @return: a Deferred firing with the L{Principal} (and a new session's
            cookie set), or failing with L{LoginFailed} whose text is fit to
            show (L{LOGIN_FAILED} for any wrong name or password).
        """
        directory = self.context.directory
        penalty = self.context.authPenalty
        ip = clientIP(request.getClientAddress())
        address = directory.normalize(name)
        delay = penalty.admit(ip) if penalty is not None else 0

        def check(_):
            if address is None or not password:
                return False
            return directory.verifyPassword(address, password)

        def checked(ok):
            if not ok:
                if penalty is not None:
                    penalty.failed(ip)
                log.info("console login failed for {name!r} from {ip}", name=name, ip=ip)
                raise LoginFailed(LOGIN_FAILED)
            if penalty is not None:
                penalty.succeeded(ip)
            return directory.lookup(address)

        def found(user):
            if user is None:  # removed between the check and the lookup
                raise LoginFailed(LOGIN_FAILED)
            principal = Principal(user.address, bool(getattr(user, "admin", False)))
            old = self.session(request)
            if old is not None:
                self.sessions.remove(old.id)
            session = self.sessions.create(principal)
            self._setCookie(request, session.id)
            log.info("console login: {address}{admin} from {ip}", address=principal.address,
                     admin=" (admin)" if principal.admin else "", ip=ip)
            return principal

        def unavailable(failure):
            failure.trap(UserDirectoryUnavailable)
            log.warn("console login: {error}", error=failure.getErrorMessage())
            raise LoginFailed(LOGIN_UNAVAILABLE)

        d = task.deferLater(self.context.reactor, delay, lambda: None) if delay else defer.succeed(None)
        d.addCallback(check)
        d.addCallback(checked)
        d.addCallback(found)
        d.addErrback(unavailable)
        return d

    def logout(self, request):
        """End the request's session and expire its cookie."""
        session = self.session(request)
        if session is not None:
            self.sessions.remove(session.id)
        self._setCookie(request, "", expire=True)


class LoginFailed(Exception):
    """A console login did not succeed; the text is what the user is shown."""
