"""
C{/metrics} and C{/healthz} on the console's listener (mounted by
L{mailstack.web.app.buildRoot} from L{metricsResources}).

C{/metrics} answers the server's metrics (L{mailstack.metrics}) in the
Prometheus text format (OpenMetrics when the scraper asks for it). A client
on loopback reads them without logging in (a Prometheus on the same host, or
a reverse proxy there that does its own access control); any other client
must send C{Authorization: Bearer <token>} with an API token of an admin
(L{mailstack.web.tokens}; Prometheus's C{authorization} scrape setting), and
a wrong token counts as a failed login against the shared penalty.

C{/healthz} answers 200 when every mail listener is bound and the store
answers a cheap probe (postmaster's INBOX opened and synced), else 503; the
body is a short JSON document saying which check failed. It needs no login
(a load balancer or a supervisor asks it) and says nothing secret.
"""

import ipaddress
import json

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from mailstack.metrics import exposition
from mailstack.sessions import clientIP
from mailstack.web.bearer import tokenUser
from mailstack.web.tokens import TokenError, TokenStore

log = Logger()

__all__ = ["metricsResources", "MetricsResource", "HealthResource", "isLoopback"]

# Seconds the store's probe may take before /healthz calls it failed.
PROBE_TIMEOUT = 5.0


def isLoopback(ip):
    """Whether the client IP text C{ip} (from L{clientIP}) is a loopback address."""
    if ip is None:
        return True  # a UNIX socket: only this host can connect
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _whenGone(request):
    """
    @return: a list that becomes non-empty if the client goes away before
        the answer (a Deferred's answer must then not be written).
    """
    gone = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))
    return gone


def _plain(request, status, text, headers=()):
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    for name, value in headers:
        request.setHeader(name, value)
    return text.encode("utf-8")


class MetricsResource(resource.Resource):
    """
    C{GET /metrics}: the scrape.

    @param context: the L{mailstack.web.context.WebContext}; its C{metrics}
        is the server's L{mailstack.metrics.PrometheusMetrics}.
    @param tokens: the L{TokenStore} admins' API tokens are checked in.
    """

    isLeaf = True

    def __init__(self, context, tokens):
        resource.Resource.__init__(self)
        self.context = context
        self.tokens = tokens

    def render_GET(self, request):
        ip = clientIP(request.getClientAddress())
        if isLoopback(ip):
            return self.scrape(request)
        header = request.getHeader(b"authorization")
        scheme, _, presented = (header or b"").decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return _plain(request, 401, "metrics off loopback need an admin's API token "
                                        "(Authorization: Bearer ...)\n",
                          [(b"www-authenticate", b'Bearer realm="mailstack"')])
        gone = _whenGone(request)
        d = self.adminToken(ip, presented.strip())
        d.addCallback(self.answer, request, gone)
        d.addErrback(self.failed, request, gone)
        return server.NOT_DONE_YET

    def scrape(self, request):
        """The metrics, as the scraper's C{Accept} header asks."""
        accept = (request.getHeader(b"accept") or b"").decode("latin-1")
        body, contentType = exposition(self.context.metrics, accept)
        request.setHeader(b"content-type", contentType.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return body

    def adminToken(self, ip, presented):
        """
        Whether C{presented} is an API token of an admin, after the client
        address's penalty wait (a wrong token counts as a failed login).

        @return: a Deferred firing with C{True} or C{False}.
        """
        d = tokenUser(self.context, self.tokens, ip, presented, "metrics")
        return d.addCallback(lambda user: user is not None and bool(getattr(user, "admin", False)))

    def answer(self, admin, request, gone):
        if gone:
            return
        if admin:
            body = self.scrape(request)
        else:
            body = _plain(request, 403, "metrics need an admin's API token\n")
        request.write(body)
        request.finish()

    def failed(self, failure, request, gone):
        if failure.check(TokenError):
            log.error("metrics: {error}", error=failure.getErrorMessage())
        else:
            log.failure("metrics: checking a token failed", failure)
        if not gone:
            request.write(_plain(request, 503, "cannot check tokens now\n"))
            request.finish()


class HealthResource(resource.Resource):
    """
    C{GET /healthz}: 200 and C{{"status": "ok", ...}} when every mail
    listener is bound and the store answers; 503 and C{"unavailable"} with
    the failing check otherwise. A change between healthy and not is logged
    once, not every probe.

    @param context: the L{mailstack.web.context.WebContext}.
    @param timeout: seconds the store's probe may take.
    """

    isLeaf = True

    def __init__(self, context, timeout=PROBE_TIMEOUT):
        resource.Resource.__init__(self)
        self.context = context
        self.timeout = timeout
        self.healthy = None

    def render_GET(self, request):
        gone = _whenGone(request)
        self.check().addCallback(self.answer, request, gone)
        return server.NOT_DONE_YET

    def listeners(self):
        """C{{name: "up" | "down"}} of the mail listeners."""
        found = {}
        for entry in self.context.listeners:
            if isinstance(entry, tuple):
                config, port = entry
                running = True
            else:
                config, port = entry.listener, entry.port
                running = getattr(entry, "running", True)
            found[config.name] = "up" if running and port is not None else "down"
        return found

    def probeStore(self):
        """
        Open and sync postmaster's INBOX (of the first local domain): a
        Deferred firing with C{"ok"} or C{"error: ..."}, within C{timeout}.
        """
        address = "postmaster@" + self.context.config.server.domains[0]

        def opened(mailbox):
            return mailbox.sync(claimRecent=False)

        def problem(failure):
            if failure.check(defer.TimeoutError):
                return "error: no answer within %g s" % (self.timeout,)
            return "error: %s" % (failure.getErrorMessage() or failure.type.__name__,)
        d = defer.maybeDeferred(lambda: self.context.store.account(address).openMailbox("INBOX"))
        d.addCallback(opened)
        d.addTimeout(self.timeout, self.context.reactor)
        d.addCallback(lambda _: "ok")
        return d.addErrback(problem)

    def check(self):
        """A Deferred firing with the health report (a dict)."""
        listeners = self.listeners()

        def report(store):
            ok = store == "ok" and all(state == "up" for state in listeners.values())
            found = {"status": "ok" if ok else "unavailable", "listeners": listeners,
                     "store": store}
            workers = self.context.workers
            if workers is not None:
                # Told, not judged: the first process serves every listener
                # while a worker restarts.
                found["workers"] = {"configured": workers.count,
                                    "running": workers.processes()}
            return found
        return self.probeStore().addCallback(report)

    def answer(self, report, request, gone):
        healthy = report["status"] == "ok"
        if healthy != self.healthy:
            if not healthy:
                log.warn("healthz: unavailable: {report}", report=json.dumps(report))
            elif self.healthy is not None:
                log.info("healthz: ok again")
            self.healthy = healthy
        if gone:
            return
        request.setResponseCode(200 if healthy else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        request.write(json.dumps(report, sort_keys=True).encode("utf-8") + b"\n")
        request.finish()


def metricsResources(context):
    """
    The resources L{mailstack.web.app.buildRoot} mounts at the top.

    @param context: the L{mailstack.web.context.WebContext}.
    @return: C{{b"metrics": ..., b"healthz": ...}} (no C{metrics} when the
        context has none).
    """
    found = {b"healthz": HealthResource(context)}
    if context.metrics is not None:
        tokens = getattr(context, "tokens", None)
        if tokens is None:
            tokens = TokenStore.inDataDirectory(context.config.server.data_dir)
        found[b"metrics"] = MetricsResource(context, tokens)
    return found
