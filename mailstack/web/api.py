"""
The console's JSON REST API, C{/api/v1/}: the same accounts, mail, captured
mail, live transcripts, class report and status as the console's pages, for
scripts (a course's grading script above all: "did student X's client send a
message with subject Y to Z over STARTTLS" is one call to
C{/api/v1/accounts/X/submissions?to=Z&subject=Y}). docs/api.md describes it,
docs/openapi.json is its OpenAPI 3.1 description (a test keeps the two and
L{ROUTES} the same).

Who is asking: an API token (C{Authorization: Bearer mst_...},
L{mailstack.web.tokens}) or the console's login cookie. A token is checked
after the wait the server's shared auth penalty gives the client's address,
and a wrong one counts as a failed login there; it acts as its user, whose
admin flag is read from the user directory at each request. A cookie's
writes need the session's CSRF token in the C{X-CSRF-Token} header (a
token's need none: a browser never sends a bearer token by itself).

Who may see what: a user her own account, mail, submissions, sessions and
captured mail; an admin everyone's. Another user's address is answered 403
whether or not it exists, and another user's session or captured message
404 like one that does not exist, so nothing tells which exist.

Nothing answered holds a password, a hash, a token (but once, when it is
made) or an unredacted transcript line: sessions are the transcript hub's
lines, recorded after the engines marked their secrets (C{***}).

Errors are JSON C{{"error": {"status": N, "message": "..."}}}: 400 bad
input, 401 no or a bad token, 403 not yours (or a cookie write without its
CSRF token), 404, 405 (with C{Allow}), 413 a body over 64 KiB, 503 when the
store or the user directory cannot be reached.
"""

import dataclasses
import datetime
import hmac
import json
import re
from urllib.parse import quote

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.auth.passwords import SCHEMES, NoSuchUser, UserError, UserExists
from mailstack.sessions import clientIP
from mailstack.smtp.submissions import TLS_MODES
from mailstack.storage.interfaces import (
    InvalidMailboxName, NoSuchMailbox, NoSuchMessage, StoreUnavailable)
from mailstack.web import mailread, messages, reports
from mailstack.web.auth import Principal
from mailstack.web.bearer import tokenUser
from mailstack.web.tokens import TokenError, tokensFor

log = Logger()

VERSION = "v1"
MAX_BODY = 64 * 1024
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CSRF_HEADER = b"x-csrf-token"

HEADERS = {
    b"content-type": b"application/json; charset=utf-8",
    b"x-content-type-options": b"nosniff",
    b"cache-control": b"no-store",
    b"content-security-policy": b"default-src 'none'; frame-ancestors 'none'; sandbox",
    b"referrer-policy": b"no-referrer",
}

# What the server line of an SMTP transcript says when it accepted a message.
_QUEUED = re.compile(r"^250 .*queued as ([0-9A-F]+)")


class APIError(Exception):
    """An answer other than success: C{status} and a one-line C{message}."""

    def __init__(self, status, message, headers=None):
        Exception.__init__(self, message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclasses.dataclass
class Answer:
    """A successful answer: a JSON body, or raw C{data} of C{contentType}."""

    body: object = None
    status: int = 200
    data: bytes | None = None
    contentType: bytes | None = None
    headers: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Route:
    """
    One operation: C{method} on C{template} (C{{name}} segments are
    parameters), answered by the method C{handler} of L{APIResource}.
    C{admin}: admins only.
    """

    method: str
    template: str
    handler: str
    admin: bool = False

    @property
    def segments(self):
        return tuple(self.template.strip("/").split("/"))

    def match(self, segments):
        """The parameters if C{segments} (str) fit the template, else L{None}."""
        mine = self.segments
        if len(mine) != len(segments):
            return None
        params = {}
        for pattern, value in zip(mine, segments):
            if pattern.startswith("{") and pattern.endswith("}"):
                if not value:
                    return None
                params[pattern[1:-1]] = value
            elif pattern != value:
                return None
        return params


_USER = "/api/v1/accounts/{address}"
ROUTES = (
    Route("GET", "/api/v1", "index"),
    Route("GET", "/api/v1/me", "me"),
    Route("GET", "/api/v1/status", "status"),
    Route("GET", "/api/v1/tokens", "listTokens"),
    Route("POST", "/api/v1/tokens", "createToken"),
    Route("DELETE", "/api/v1/tokens/{id}", "revokeToken"),
    Route("GET", "/api/v1/accounts", "listAccounts"),
    Route("POST", "/api/v1/accounts", "addAccount", admin=True),
    Route("GET", _USER, "account"),
    Route("PUT", _USER + "/password", "resetPassword", admin=True),
    Route("GET", _USER + "/mailboxes", "mailboxes"),
    Route("GET", _USER + "/mailboxes/{mailbox}/messages", "messages"),
    Route("GET", _USER + "/mailboxes/{mailbox}/messages/{uid}", "message"),
    Route("GET", _USER + "/mailboxes/{mailbox}/messages/{uid}/raw", "rawMessage"),
    Route("GET", _USER + "/submissions", "userSubmissions"),
    Route("GET", _USER + "/sessions", "userSessions"),
    Route("GET", _USER + "/captured", "userCaptured"),
    Route("GET", "/api/v1/submissions", "submissions", admin=True),
    Route("GET", "/api/v1/sessions", "sessions", admin=True),
    Route("GET", "/api/v1/sessions/{id}", "session"),
    Route("GET", "/api/v1/captured", "captured", admin=True),
    Route("GET", "/api/v1/captured/{id}", "capturedMessage"),
    Route("GET", "/api/v1/report", "report"),
)


def apiResource(context, auth):
    """
    The API's resource, mounted at C{/api/} by L{mailstack.web.app.buildRoot}.

    @param context: the L{mailstack.web.context.WebContext}.
    @param auth: the console's L{mailstack.web.auth.ConsoleAuth} (cookie logins).

    The tokens are L{tokensFor}'s: the data directory's.
    """
    return APIResource(context, auth, tokensFor(context))


def isoTime(seconds):
    """POSIX seconds as ISO 8601 UTC (C{2026-12-06T09:15:02.113Z}), or L{None}."""
    if seconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def query(request, name, default=None):
    """A query parameter (str), or C{default}."""
    values = (request.args or {}).get(name.encode("ascii"))
    if not values:
        return default
    return values[0].decode("utf-8", "replace")


def intQuery(request, name, default, low, high):
    text = query(request, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise APIError(400, "%s must be an integer" % (name,))
    if not low <= value <= high:
        raise APIError(400, "%s must be from %d to %d" % (name, low, high))
    return value


def floatQuery(request, name):
    text = query(request, name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise APIError(400, "%s must be a number (seconds since the epoch)" % (name,))


class APIResource(resource.Resource):
    """
    Everything under C{/api/}: finds the L{Route}, the caller, checks the
    rights, runs the handler and answers JSON.
    """

    isLeaf = True

    def __init__(self, context, auth, tokens, routes=ROUTES):
        resource.Resource.__init__(self)
        self.context = context
        self.auth = auth
        self.tokens = tokens
        self.routes = routes

    # -- dispatch ---------------------------------------------------------------

    def render(self, request):
        for name, value in HEADERS.items():
            request.setHeader(name, value)
        d = defer.maybeDeferred(self._dispatch, request)
        d.addErrback(self._failed, request)
        finished = []
        request.notifyFinish().addBoth(finished.append)

        def answer(result):
            if finished:
                return
            body = self._body(request, result)
            if request.method != b"HEAD":
                request.write(body)
            request.finish()
        d.addCallback(answer)
        d.addErrback(lambda failure: log.failure("API answer to {path} failed", failure,
                                                 path=request.uri))
        return server.NOT_DONE_YET

    def _dispatch(self, request):
        segments = tuple(s.decode("utf-8", "replace") for s in
                         [b"api"] + [s for s in request.postpath])
        while len(segments) > 1 and segments[-1] == "":
            segments = segments[:-1]
        method = request.method.decode("ascii", "replace")
        if method == "HEAD":
            method = "GET"
        allowed = []
        for route in self.routes:
            params = route.match(segments)
            if params is None:
                continue
            if route.method == method:
                break
            allowed.append(route.method)
        else:
            if allowed:
                raise APIError(405, "%s takes %s" % (
                    "/" + "/".join(segments), ", ".join(sorted(set(allowed)))),
                    {b"allow": ", ".join(sorted(set(allowed))).encode("ascii")})
            raise APIError(404, "no such API path")
        d = self._authenticate(request, method)
        d.addCallback(self._run, request, route, params)
        return d

    def _run(self, principal, request, route, params):
        if route.admin and not principal.admin:
            raise APIError(403, "admins only")
        body = None
        if route.method in ("POST", "PUT"):
            body = self._readBody(request)
        handler = getattr(self, route.handler)
        return handler(request, principal, body=body, **params)

    def _readBody(self, request):
        content = request.content
        content.seek(0, 2)
        if content.tell() > MAX_BODY:
            raise APIError(413, "the body is over %d octets" % (MAX_BODY,))
        content.seek(0)
        data = content.read()
        if not data:
            return {}
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise APIError(400, "the body is not JSON")
        if not isinstance(body, dict):
            raise APIError(400, "the body must be a JSON object")
        return body

    def _body(self, request, result):
        if isinstance(result, APIError):
            request.setResponseCode(result.status)
            for name, value in result.headers.items():
                request.setHeader(name, value)
            return _json({"error": {"status": result.status, "message": result.message}})
        if not isinstance(result, Answer):
            result = Answer(result)
        request.setResponseCode(result.status)
        for name, value in result.headers.items():
            request.setHeader(name, value)
        if result.data is not None:
            request.setHeader(b"content-type", result.contentType)
            return result.data
        if result.status == 204:
            return b""
        return _json(result.body)

    def _failed(self, failure, request):
        if failure.check(APIError):
            return failure.value
        if failure.check(StoreUnavailable, UserDirectoryUnavailable):
            log.warn("API {path}: {error}", path=request.uri, error=failure.getErrorMessage())
            return APIError(503, "the mail store or the user directory cannot be reached "
                                 "now; try again in a moment", {b"retry-after": b"5"})
        log.failure("API {path} failed", failure, path=request.uri)
        return APIError(500, "the server failed; its log says why")

    # -- who is asking -------------------------------------------------------------

    def _authenticate(self, request, method):
        """
        A Deferred firing with the L{Principal} asking, or failing with
        L{APIError} 401 (403: a cookie write without its CSRF token).
        """
        header = request.getHeader(b"authorization")
        if header is not None:
            scheme, _, value = header.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer":
                return defer.fail(_unauthorized("use Authorization: Bearer <token>"))
            return self._tokenUser(request, value.strip())
        principal = self.auth.currentUser(request)
        if principal is None:
            return defer.fail(_unauthorized("log in or send an API token"))
        if method not in ("GET", "HEAD"):
            session = self.auth.session(request)
            given = request.getHeader(CSRF_HEADER) or b""
            if not hmac.compare_digest(given, session.csrf.encode("ascii")):
                log.info("API: refused a cookie {method} to {path} without its CSRF token",
                         method=method, path=request.uri)
                return defer.fail(APIError(403, "a cookie-authenticated change needs the "
                                                "session's CSRF token in X-CSRF-Token"))
        return defer.succeed(principal)

    def _tokenUser(self, request, presented):
        ip = clientIP(request.getClientAddress())
        d = tokenUser(self.context, self.tokens, ip, presented, "API")

        def found(user):
            if user is None:
                raise _unauthorized("the token is not valid (revoked, or its user removed)")
            return Principal(user.address, bool(getattr(user, "admin", False)))

        def brokenFile(failure):
            failure.trap(TokenError)
            log.error("API: {error}", error=failure.getErrorMessage())
            raise APIError(503, "the token file cannot be read; its log says why")
        d.addCallback(found)
        d.addErrback(brokenFile)
        return d

    def _owned(self, principal, address):
        """
        The normalised C{address}, if C{principal} may see it; else 403 (for
        an account that exists or not alike).
        """
        normal = self.context.directory.normalize(address)
        if normal is None:
            raise APIError(400, "not an address: %r" % (address,))
        if not principal.maySee(normal):
            raise APIError(403, "not yours: you may see only %s" % (principal.address,))
        return normal

    # -- who am I, status ----------------------------------------------------------

    def index(self, request, principal, body=None):
        return {"version": VERSION, "user": _principal(principal),
                "routes": [{"method": r.method, "path": r.template}
                           for r in self.routes if principal.admin or not r.admin]}

    def me(self, request, principal, body=None):
        """Who is asking; over a console login, also the CSRF token its writes need."""
        result = _principal(principal)
        session = None if request.getHeader(b"authorization") else self.auth.session(request)
        if session is not None:
            result["csrf"] = session.csrf
        return result

    def status(self, request, principal, body=None):
        context = self.context
        now = context.reactor.seconds()
        listeners = []
        for entry in context.listeners:
            config, port = _listenerEntry(entry)
            host = port.getHost() if port is not None else None
            listeners.append({"name": config.name, "protocol": config.protocol,
                              "tls": config.tls, "endpoint": config.endpoint,
                              "port": getattr(host, "port", None)})
        counter = context.counter
        sessions = {}
        if counter is not None:
            for config, _ in map(_listenerEntry, context.listeners):
                sessions[config.protocol] = counter.count(config.protocol)
        return {"hostname": context.config.server.hostname,
                "domains": list(context.config.server.domains),
                "started": isoTime(context.started),
                "uptime": None if context.started is None else round(now - context.started, 3),
                "listeners": listeners, "sessions": sessions,
                "capture": context.capture is not None,
                "transcripts": context.transcripts is not None}

    # -- tokens -----------------------------------------------------------------------

    def listTokens(self, request, principal, body=None):
        address = None if principal.admin and query(request, "all") == "1" else principal.address
        d = self.context.runInThread(self.tokens.list, address)
        d.addCallback(lambda tokens: {"tokens": [_token(t) for t in tokens]})
        return d

    def createToken(self, request, principal, body=None):
        name = body.get("name", "api")
        if not isinstance(name, str):
            raise APIError(400, "name must be a string")
        d = self.context.runInThread(self.tokens.create, principal.address, name)

        def made(result):
            token, text = result
            log.info("API token {id} made for {address}", id=token.id, address=token.address)
            return Answer(dict(_token(token), token=text), 201)

        def refused(failure):
            failure.trap(TokenError)
            raise APIError(400, failure.getErrorMessage())
        return d.addCallbacks(made, refused)

    def revokeToken(self, request, principal, body=None, id=None):
        owner = None if principal.admin else principal.address
        d = self.context.runInThread(self.tokens.revoke, id, owner)

        def missing(failure):
            failure.trap(TokenError)
            raise APIError(404, "no token %s of yours" % (id,))
        return d.addCallbacks(lambda _: Answer(status=204), missing)

    # -- accounts ----------------------------------------------------------------------

    def listAccounts(self, request, principal, body=None):
        if not principal.admin:
            d = self.context.directory.lookup(principal.address)
            d.addCallback(lambda user: {"accounts": [_account(user)] if user else []})
            return d
        d = self.context.directory.listUsers()
        d.addCallback(lambda users: {"accounts": [_account(u) for u in users]})
        return d

    def addAccount(self, request, principal, body=None):
        address, password = body.get("address"), body.get("password")
        scheme = body.get("scheme", "BLF-CRYPT")
        if not isinstance(address, str) or not address:
            raise APIError(400, "address is required")
        if not isinstance(password, str) or not password:
            raise APIError(400, "password is required")
        if scheme not in SCHEMES:
            raise APIError(400, "scheme must be one of %s" % (", ".join(SCHEMES),))
        users = self.context.users
        d = self.context.runInThread(users.addUser, address, password, scheme)

        def added(_):
            log.info("API: {admin} added {address}", admin=principal.address, address=address)
            return self.context.directory.lookup(address)

        def refused(failure):
            failure.trap(UserError)
            raise APIError(409 if failure.check(UserExists) else 400, failure.getErrorMessage())
        d.addCallbacks(added, refused)
        d.addCallback(lambda user: Answer(_account(user), 201, headers={
            b"location": ("/api/v1/accounts/" + quote(user.address, safe="@")).encode(
                "ascii")}))
        return d

    def account(self, request, principal, body=None, address=None):
        address = self._owned(principal, address)
        d = self.context.directory.lookup(address)

        def found(user):
            if user is None:
                raise APIError(404, "no account %s" % (address,))
            return _account(user)
        return d.addCallback(found)

    def resetPassword(self, request, principal, body=None, address=None):
        address = self._owned(principal, address)
        password, scheme = body.get("password"), body.get("scheme")
        if not isinstance(password, str) or not password:
            raise APIError(400, "password is required")
        if scheme is not None and scheme not in SCHEMES:
            raise APIError(400, "scheme must be one of %s" % (", ".join(SCHEMES),))
        d = self.context.runInThread(self.context.users.setPassword, address, password, scheme)

        def refused(failure):
            failure.trap(UserError)
            raise APIError(404 if failure.check(NoSuchUser) else 400, failure.getErrorMessage())

        def changed(_):
            log.info("API: {admin} reset the password of {address}", admin=principal.address,
                     address=address)
            forget = getattr(self.auth.sessions, "forget", None)
            if forget is not None:
                forget(address)
            return Answer(status=204)
        return d.addCallbacks(changed, refused)

    # -- mail ----------------------------------------------------------------------------

    def mailboxes(self, request, principal, body=None, address=None):
        address = self._owned(principal, address)
        d = mailread.folders(self.context.store, address)
        d.addCallback(lambda found: {"address": address, "mailboxes": [
            {"name": f.name, "messages": f.messages, "unseen": f.unseen, "size": f.size,
             "specialUse": list(f.specialUse)} for f in found]})
        return d

    def _mailbox(self, principal, address, mailbox):
        d = mailread.openFolder(self.context.store, self._owned(principal, address), mailbox)

        def missing(failure):
            failure.trap(NoSuchMailbox, InvalidMailboxName)
            raise APIError(404, "no mailbox %r" % (mailbox,))
        return d.addErrback(missing)

    def messages(self, request, principal, body=None, address=None, mailbox=None):
        limit = intQuery(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = intQuery(request, "offset", 0, 0, 2 ** 32)
        d = self._mailbox(principal, address, mailbox)
        d.addCallback(mailread.messageRows, self.context.runInThread, offset, limit)
        d.addCallback(lambda result: {"mailbox": mailbox, "total": result[1], "offset": offset,
                                      "messages": [_row(row) for row in result[0]]})
        return d

    def _read(self, principal, address, mailbox, uid):
        """A Deferred firing with C{(info, source)} of one message."""
        try:
            number = int(uid)
        except ValueError:
            raise APIError(400, "a message's UID is a number")
        d = self._mailbox(principal, address, mailbox)
        d.addCallback(mailread.readMessage, number, self.context.runInThread)

        def failed(failure):
            if failure.check(NoSuchMessage):
                raise APIError(404, "no message %d in %r" % (number, mailbox))
            if failure.check(mailread.MessageTooLarge):
                raise APIError(422, "the message is over %d octets: too large to read here" % (
                    mailread.MESSAGE_LIMIT,))
            return failure
        return d.addErrback(failed)

    def message(self, request, principal, body=None, address=None, mailbox=None, uid=None):
        d = self._read(principal, address, mailbox, uid)
        return d.addCallback(lambda read: dict(_info(read[0]), **_messageJSON(read[1])))

    def rawMessage(self, request, principal, body=None, address=None, mailbox=None, uid=None):
        d = self._read(principal, address, mailbox, uid)
        return d.addCallback(lambda read: Answer(
            data=read[1], contentType=b"message/rfc822",
            headers={b"content-disposition": b'attachment; filename="%d.eml"' % (read[0].uid,)}))

    # -- submissions: what users' clients sent -------------------------------------------------

    def _submissionLog(self):
        submissions = self.context.submissions
        if submissions is None:
            raise APIError(503, "this server keeps no submission log")
        return submissions

    def _findSubmissions(self, request, sender):
        tls = query(request, "tls")
        if tls is not None and tls not in TLS_MODES:
            raise APIError(400, "tls must be one of %s" % (", ".join(TLS_MODES),))
        authenticated = query(request, "authenticated")
        if authenticated not in (None, "true", "false"):
            raise APIError(400, "authenticated must be true or false")
        found = self._submissionLog().find(
            sender=sender, to=query(request, "to"), subject=query(request, "subject"),
            tls=tls, since=floatQuery(request, "since"),
            authenticated=None if authenticated is None else authenticated == "true")
        limit = intQuery(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        found = list(reversed(found))[:limit]
        return {"submissions": [_submission(s) for s in found], "count": len(found)}

    def userSubmissions(self, request, principal, body=None, address=None):
        return self._findSubmissions(request, self._owned(principal, address))

    def submissions(self, request, principal, body=None):
        return self._findSubmissions(request, query(request, "sender"))

    # -- sessions and transcripts ------------------------------------------------------------

    def _hub(self):
        hub = self.context.transcripts
        if hub is None:
            raise APIError(503, "live transcripts are off on this server ([lab] transcripts)")
        return hub

    def userSessions(self, request, principal, body=None, address=None):
        address = self._owned(principal, address)
        limit = intQuery(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        sessions = self._hub().sessionsOf(address)[:limit]
        return {"sessions": [self._session(s, lines=False) for s in sessions]}

    def sessions(self, request, principal, body=None):
        limit = intQuery(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        return {"sessions": [self._session(s, lines=False)
                             for s in self._hub().sessions()[:limit]]}

    def session(self, request, principal, body=None, id=None):
        hub = self._hub()
        found = hub.get(id)
        if found is None or not hub.visible(found, principal.address, principal.admin):
            raise APIError(404, "no session %s of yours" % (id,))
        return self._session(found, lines=True)

    def _session(self, session, lines):
        """A hub session as JSON: its facts, the commands, the envelopes it sent."""
        kept = list(session.lines)
        queued = []
        for line in kept:
            match = _QUEUED.match(line.text) if line.kind == "S" else None
            if match:
                queued.append(match.group(1))
        submissions = self.context.submissions
        found = [submissions.get(q) for q in queued] if submissions is not None else []
        sent = [_submission(record) for record in found if record is not None]
        result = {
            "id": session.id, "protocol": session.protocol, "client": session.client,
            "server": session.server, "started": isoTime(session.started),
            "ended": isoTime(session.endedAt), "endReason": session.ended,
            "users": list(session.users), "tls": sessionTLS(kept),
            "commands": sessionCommands(kept),
            "sent": sent}
        if lines:
            result["transcript"] = [
                {"seq": l.seq, "time": isoTime(l.when), "kind": l.kind, "text": l.text}
                for l in kept]
            result["dropped"] = session.dropped
        return result

    # -- captured mail -------------------------------------------------------------------

    def _capture(self):
        capture = self.context.capture
        if capture is None:
            raise APIError(503, "capture mode is off on this server ([lab] capture)")
        return capture

    def userCaptured(self, request, principal, body=None, address=None):
        address = self._owned(principal, address)
        d = self._capture().list(address)
        d.addCallback(lambda found: {"captured": [_captured(m) for m in found]})
        return d

    def captured(self, request, principal, body=None):
        d = self._capture().list(query(request, "sender"))
        d.addCallback(lambda found: {"captured": [_captured(m) for m in found]})
        return d

    def capturedMessage(self, request, principal, body=None, id=None):
        d = self._capture().get(id)

        def found(message):
            envelope = message.envelope
            if not (principal.admin or principal.maySee(envelope.sender.lower())
                    or (envelope.authenticated or "").lower() == principal.address):
                raise APIError(404, "no captured message %s of yours" % (id,))
            result = _captured(message)
            result.update(_messageJSON(message.raw or b""))
            return result

        def missing(failure):
            if failure.check(APIError):
                return failure
            failure.trap(LookupError)
            raise APIError(404, "no captured message %s of yours" % (id,))
        return d.addCallbacks(found, missing)

    # -- class report ------------------------------------------------------------------------

    def report(self, request, principal, body=None):
        activity = self.context.activity
        if activity is None:
            raise APIError(503, "this server keeps no class report")
        if principal.admin:
            d = reports.contextReport(self.context)
        else:
            # Their own row only (classReport adds everyone with counts).
            d = defer.succeed([reports.studentReport(activity, principal.address)])
        d.addCallback(lambda rows: {"students": [row.asDict() for row in rows]})
        return d


# -- shaping ---------------------------------------------------------------------------------


def _json(value):
    return json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


def _unauthorized(message):
    return APIError(401, message, {b"www-authenticate": b'Bearer realm="mailstack"'})


def _principal(principal):
    return {"address": principal.address, "admin": principal.admin}


def _token(token):
    public = token.public()
    public["created"] = isoTime(public["created"])
    return public


def _account(user):
    """What the API shows of a user: never the password or its hash."""
    return {"address": user.address, "admin": bool(getattr(user, "admin", False))}


def _listenerEntry(entry):
    """C{(ListenerConfig, port or None)} of a WebContext.listeners entry."""
    if isinstance(entry, tuple):
        return entry
    return entry.listener, getattr(entry, "port", None)


def _info(info):
    return {"uid": info.uid, "flags": sorted(info.flags), "size": info.size,
            "internalDate": isoTime(info.internalDate)}


def _submission(record):
    values = record.asDict()
    values["time"] = isoTime(record.time)
    return values


def sessionTLS(lines):
    """
    How a transcript's session used TLS, from the transcript's notes:
    C{starttls}, C{implicit} or C{none}.
    """
    notes = [l.text for l in lines if l.kind == "#"]
    if "TLS started" in notes:
        return "starttls"
    if any(n.startswith("TLS (implicit)") for n in notes):
        return "implicit"
    return "none"


def sessionCommands(lines):
    """
    The client's command lines of a transcript: what it typed, without the
    message it sent after SMTP's C{354} (up to the lone C{.}), which the
    transcript keeps as client lines too.
    """
    commands, inMessage = [], False
    for line in lines:
        if line.kind == "S" and line.text.startswith("354"):
            inMessage = True
        elif line.kind == "C":
            if inMessage:
                inMessage = line.text != "."
            else:
                commands.append(line.text)
    return commands


def _row(row):
    """A L{mailstack.web.mailread.MessageRow} for JSON."""
    return {"uid": row.uid, "flags": list(row.flags), "size": row.size,
            "internalDate": isoTime(row.internalDate), **_summaryJSON(row.summary)}


def _summary(head):
    return _summaryJSON(messages.summarize(messages.parseHeaders(head)))


def _summaryJSON(summary):
    return {"from": summary.sender, "to": summary.to, "cc": summary.cc,
            "subject": summary.subject, "date": summary.dateText,
            "messageId": summary.messageID}


def _messageJSON(data):
    """A message's headers, parts (text parts' text included) and size, for JSON."""
    parsed = messages.parseMessage(data)
    parts = []
    for part in messages.parts(parsed):
        entry = {"section": part.section, "contentType": part.contentType,
                 "charset": part.charset, "filename": part.filename,
                 "disposition": part.disposition, "size": part.size,
                 "attachment": part.isAttachment}
        if (part.isText or part.isHTML) and not part.isAttachment:
            entry["text"] = messages.partText(messages.findPart(parsed, part.section))
        parts.append(entry)
    return {"headers": [{"name": n, "value": v} for n, v in messages.headerList(parsed)],
            **_summary(messages.splitHeader(data)), "parts": parts}


def _captured(message):
    envelope = message.envelope
    return {"id": message.id, "sender": envelope.sender,
            "recipients": list(envelope.recipients), "time": isoTime(envelope.time),
            "tls": envelope.tls, "authenticated": envelope.authenticated,
            "client": envelope.client, "helo": envelope.helo, "queueID": envelope.queueID,
            "size": message.size, "subject": message.subject}
