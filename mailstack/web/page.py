"""
L{Page}: the base of every console page. It asks for a login (a redirect to
C{/login}), refuses non-admins on admin pages, refuses a state-changing POST
without its session's CSRF token (403, nothing changed), lets the page's
C{get}/C{post} answer asynchronously, and renders Jinja2 templates with the
signed-in user, the CSRF token and the navigation.

Templates are the package's C{templates/} directory (shipped as package data),
autoescaped, sharing C{base.html}. Other parts of the console (the message
viewer, the capture view) subclass L{Page} and put their templates there.
"""

import functools
from urllib.parse import quote

import jinja2
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

log = Logger()

# Headers on every console page: no framing, no foreign scripts or styles, no
# caching of account data, no referrer leaking ids in URLs.
SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'self'; script-src 'self'; object-src 'none'; "
                                b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
}


@functools.cache
def environment():
    """The console's Jinja2 environment (loaded once): autoescaping on."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("mailstack.web", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined)


def renderTemplate(name, **values):
    """Template C{name} rendered with C{values}, as UTF-8 bytes."""
    return environment().get_template(name).render(**values).encode("utf-8")


def setSecurityHeaders(request):
    for name, value in SECURITY_HEADERS.items():
        request.setHeader(name, value)


def formValue(request, name, default=""):
    """A form field (str, surrounding spaces kept), or C{default}."""
    values = (request.args or {}).get(name.encode("ascii"))
    if not values:
        return default
    return values[0].decode("utf-8", "replace")


def localPath(value, default="/"):
    """
    C{value} if it is a path on this console (C{/...}, not C{//host}), else
    C{default}: where a login may send the browser back to.
    """
    if (not value.startswith("/") or value.startswith("//") or "\\" in value
            or any(c in value for c in "\r\n")):
        return default
    return value


def redirectTo(request, location):
    """Answer 303 See Other to C{location} (a local path): after a POST, a GET."""
    request.setResponseCode(303)
    request.setHeader(b"location", location.encode("utf-8"))
    return b""


class Answer:
    """
    What a page's C{get} or C{post} returns (or its Deferred fires with):
    a template and its values, with a status code.
    """

    def __init__(self, template, code=200, **values):
        self.template = template
        self.code = code
        self.values = values


class Page(resource.Resource):
    """
    A console page. Subclasses set C{title}, C{adminOnly} and implement
    C{get(request, principal)} and, for forms, C{post(request, principal)},
    returning an L{Answer}, bytes (already answered, e.g. a redirect), or a
    Deferred of either.

    @param context: the L{mailstack.web.context.WebContext}.
    @param auth: the L{mailstack.web.auth.ConsoleAuth}.
    """

    isLeaf = True
    title = ""
    adminOnly = False
    loginRequired = True

    def __init__(self, context, auth):
        resource.Resource.__init__(self)
        self.context = context
        self.auth = auth

    def render_GET(self, request):
        return self._serve(request, self.get, False)

    def render_HEAD(self, request):
        return self.render_GET(request)

    def render_POST(self, request):
        return self._serve(request, self.post, True)

    def _serve(self, request, handler, changes):
        setSecurityHeaders(request)
        principal = self.auth.currentUser(request)
        if self.loginRequired and principal is None:
            if changes:
                return self.refuse(request, 403, "Your session has ended: log in again.")
            return redirectTo(request, "/login?next=" + quote(
                request.uri.decode("utf-8", "replace"), safe="/"))
        if changes and not self.auth.checkCSRF(request):
            log.info("refused a POST to {path} without its CSRF token", path=request.uri)
            return self.refuse(request, 403, "This form has expired or did not come from "
                                             "this console: reload the page and try again.")
        if self.adminOnly and not principal.admin:
            return self.refuse(request, 403, "This page is for admins.")
        d = defer.maybeDeferred(handler, request, principal)
        d.addCallback(self._answered, request, principal)
        d.addErrback(self._failed, request)
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))

        def write(body):
            if not finished[0]:
                request.write(body)
                request.finish()
        d.addCallback(write)
        return server.NOT_DONE_YET

    def _answered(self, answer, request, principal):
        if isinstance(answer, bytes):
            return answer
        request.setResponseCode(answer.code)
        return self.renderAnswer(request, principal, answer)

    def _failed(self, failure: Failure, request):
        log.failure("console page {path} failed", failure, path=request.uri)
        request.setResponseCode(500)
        return self.renderAnswer(request, self.auth.currentUser(request),
                                 Answer("error.html", 500, message="Something went wrong "
                                        "on the server; the log says what."))

    def renderAnswer(self, request, principal, answer):
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        values = dict(answer.values)
        values.setdefault("title", self.title)
        values.setdefault("notices", self.auth.takeNotices(request))
        return renderTemplate(answer.template, user=principal,
                              csrf=self.auth.csrfToken(request),
                              navigation=self.navigation(principal), **values)

    def navigation(self, principal):
        """The C{(label, href)} links this user sees in the header."""
        if principal is None:
            return []
        return [(label, href) for label, href, adminOnly in self.context.navigation
                if principal.admin or not adminOnly]

    def refuse(self, request, code, message):
        """Answer C{code} with an error page saying C{message}."""
        request.setResponseCode(code)
        return self.renderAnswer(request, self.auth.currentUser(request),
                                 Answer("error.html", code, message=message))

    def get(self, request, principal):
        return self.refuse(request, 405, "This page takes no GET.")

    def post(self, request, principal):
        return self.refuse(request, 405, "This page takes no form.")
