"""
End to end: the console's listener in the server's process, over real HTTP on
127.0.0.1 with the standard library's client.
"""

import http.cookiejar
import imaplib
import poplib
import re
import time
import urllib.error
import urllib.parse
import urllib.request

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.web.auth import LOGIN_FAILED
from mailstack.web.mailboxes import SAMPLES
from tests.helpers import E2EMixin, listenerTOML

WEB = '\n[web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand redirects back to the test instead of following them."""

    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """A urllib opener with a cookie jar, pointed at the console."""

    def __init__(self, base, follow=True, tlsContext=None):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        handlers = [urllib.request.HTTPCookieProcessor(self.cookies)]
        if tlsContext is not None:
            handlers.append(urllib.request.HTTPSHandler(context=tlsContext))
        if not follow:
            handlers.append(NoRedirect())
        self.opener = urllib.request.build_opener(*handlers)

    def request(self, path, form=None, data=None, headers=None):
        """@return: (status, headers, body text), errors included."""
        if form is not None:
            data = urllib.parse.urlencode(form).encode("utf-8")
        request = urllib.request.Request(self.base + path, data, headers or {})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.headers, response.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode("utf-8")

    def csrf(self, path):
        """The CSRF token in the form of the page at C{path}."""
        status, headers, body = self.request(path)
        return re.search(r'name="csrf" value="([^"]+)"', body).group(1)

    def login(self, address, password, next="/"):
        token = self.csrf("/login")
        return self.request("/login", {"csrf": token, "address": address,
                                       "password": password, "next": next})

    def post(self, path, form):
        """Post C{form} to the page at C{path} with the CSRF token its page gives."""
        return self.request(path, dict(form, csrf=self.csrf(path)))


class WebListenerTests(E2EMixin, unittest.TestCase):
    """
    A config with [web] serves the console from the mail server's process.
    """

    listeners = WEB

    def base(self):
        return "http://127.0.0.1:%d" % (self.server.getServiceNamed("web").port.getHost().port,)

    def test_unauthenticatedRedirectsToLogin(self):
        """Any console page asked for without a login is a redirect to the login form."""
        browser = Browser(self.base(), follow=False)

        def check(result):
            status, headers, body = result
            self.assertEqual(status, 303)
            self.assertEqual(headers["Location"], "/login?next=/")
        return self.inThread(browser.request, "/").addCallback(check)

    def test_loginFormAndHome(self):
        """The demo account logs in with the form and sees the home page with its address."""
        browser = Browser(self.base())

        def check(result):
            status, headers, body = result
            self.assertEqual(status, 200)
            self.assertIn("Signed in as <strong>demo@lab.test</strong>", body)
            cookie = [c for c in browser.cookies if c.name == "mailstack_session"]
            self.assertEqual(len(cookie), 1)
            self.assertTrue(cookie[0].has_nonstandard_attr("HttpOnly"))
        return self.inThread(browser.login, "demo", "demo").addCallback(check)

    def test_staticCSS(self):
        """The stylesheet is served from the installed package."""
        browser = Browser(self.base())

        def check(result):
            status, headers, body = result
            self.assertEqual(status, 200)
            self.assertIn("text/css", headers["Content-Type"])
            self.assertIn("font-family", body)
        return self.inThread(browser.request, "/static/console.css").addCallback(check)


def imapLogin(port, address, password):
    """Log in over IMAP on 127.0.0.1; @return: the INBOX's message count."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=30) as imap:
        imap.login(address, password)
        status, data = imap.select("INBOX", readonly=True)
        imap.logout()
        return int(data[0])


def popCount(port, address, password):
    """STAT over POP3 on 127.0.0.1: @return: C{(count, list of Subject lines)}."""
    pop = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        pop.user(address)
        pop.pass_(password)
        count, size = pop.stat()
        subjects = []
        for number in range(1, count + 1):
            response, lines, octets = pop.top(number, 0)
            subjects += [l.decode() for l in lines if l.lower().startswith(b"subject:")]
        return count, subjects
    finally:
        pop.quit()


class ConsoleTests(E2EMixin, unittest.TestCase):
    """
    The console over real HTTP next to real IMAP and POP3 listeners: an admin
    (teacher@lab.test) and a student (the demo account).
    """

    limits = "auth_failures_delay = 1\nauth_failure_delay_seconds = 1\n"
    listeners = (listenerTOML("imap", name="imap", allow_plaintext_auth=True)
                 + listenerTOML("pop3", name="pop3", allow_plaintext_auth=True) + WEB)

    def setUp(self):
        E2EMixin.setUp(self)
        self.server.users.addUser("teacher@lab.test", "t34cher", "PLAIN")
        self.server.users.setAdmin("teacher@lab.test", True)
        self.base = "http://127.0.0.1:%d" % (
            self.server.getServiceNamed("web").port.getHost().port,)

    def browser(self):
        return Browser(self.base)

    @defer.inlineCallbacks
    def test_wrongPasswordGenericAndPenalised(self):
        """A wrong password gets the generic line; the second attempt waits (the shared
        penalty), and so does the address's next IMAP login."""
        browser = self.browser()
        started = time.monotonic()
        status, headers, body = yield self.inThread(browser.login, "demo", "wrong")
        first = time.monotonic() - started
        self.assertEqual(status, 401)
        self.assertIn(LOGIN_FAILED, body)
        status, headers, unknown = yield self.inThread(browser.login, "nobody", "wrong")
        self.assertEqual(status, 401)
        self.assertIn(LOGIN_FAILED, unknown)
        second = time.monotonic() - started - first
        self.assertLess(first, 0.9)
        self.assertGreaterEqual(second, 0.95)
        self.assertEqual(self.server.web.authPenalty.failures("127.0.0.1"), 2)
        started = time.monotonic()
        count = yield self.inThread(imapLogin, self.port("imap"), "demo@lab.test", "demo")
        self.assertGreaterEqual(time.monotonic() - started, 0.95)
        self.assertEqual(self.server.web.authPenalty.failures("127.0.0.1"), 0)

    @defer.inlineCallbacks
    def test_csrfRefused(self):
        """A POST without the session's token is refused with 403 and adds nobody."""
        browser = self.browser()
        yield self.inThread(browser.login, "teacher", "t34cher")
        status, headers, body = yield self.inThread(
            browser.request, "/accounts/",
            {"action": "add", "address": "mallory", "password": "pw", "scheme": "PLAIN"})
        self.assertEqual(status, 403)
        self.assertIsNone(self.server.users.lookup("mallory"))
        status, headers, body = yield self.inThread(
            browser.request, "/accounts/",
            {"action": "add", "address": "mallory", "password": "pw", "scheme": "PLAIN",
             "csrf": "forged"})
        self.assertEqual(status, 403)
        self.assertIsNone(self.server.users.lookup("mallory"))

    @defer.inlineCallbacks
    def test_studentSeesOnlyHerself(self):
        """The demo student gets 403 for the account list and for the teacher's account."""
        browser = self.browser()
        yield self.inThread(browser.login, "demo", "demo")
        status, headers, body = yield self.inThread(browser.request, "/accounts/")
        self.assertEqual(status, 403)
        self.assertNotIn("teacher@lab.test", body)
        status, headers, body = yield self.inThread(browser.request,
                                                    "/accounts/teacher@lab.test")
        self.assertEqual(status, 403)
        status, headers, body = yield self.inThread(browser.request, "/accounts/demo@lab.test")
        self.assertEqual(status, 200)
        self.assertIn("INBOX", body)

    @defer.inlineCallbacks
    def test_addedUserLogsInOverIMAP(self):
        """An account the admin adds in the console logs in over IMAP at once."""
        browser = self.browser()
        yield self.inThread(browser.login, "teacher", "t34cher")
        status, headers, body = yield self.inThread(
            browser.post, "/accounts/", {"action": "add", "address": "carol",
                                         "password": "c4rol-pw", "scheme": "BLF-CRYPT"})
        self.assertEqual(status, 200)
        self.assertIn("Added carol@lab.test (BLF-CRYPT).", body)
        count = yield self.inThread(imapLogin, self.port("imap"), "carol@lab.test", "c4rol-pw")
        self.assertEqual(count, 0)

    @defer.inlineCallbacks
    def test_importUploadedCSV(self):
        """A class CSV uploaded as a file (multipart form) is imported."""
        browser = self.browser()
        yield self.inThread(browser.login, "teacher", "t34cher")
        token = yield self.inThread(browser.csrf, "/accounts/")
        boundary = "----mailstack-test-boundary"
        parts = [("csrf", None, token), ("action", None, "import"),
                 ("file", "class.csv", "address,password,scheme\nerin,e-pw,PLAIN\n")]
        body = "".join(
            "--%s\r\nContent-Disposition: form-data; name=\"%s\"%s\r\n\r\n%s\r\n" % (
                boundary, name, '; filename="%s"\r\nContent-Type: text/csv' % (filename,)
                if filename else "", value)
            for name, filename, value in parts) + "--%s--\r\n" % (boundary,)
        status, headers, page = yield self.inThread(
            browser.request, "/accounts/", None, body.encode(),
            {"Content-Type": "multipart/form-data; boundary=" + boundary})
        self.assertIn("the uploaded file: added 1, updated 0, skipped 0.", page)
        self.assertTrue(self.server.users.verifyPassword("erin@lab.test", "e-pw"))

    @defer.inlineCallbacks
    def test_seedThenReset(self):
        """Seed puts the samples in the demo INBOX, seen over POP3; reset empties it."""
        browser = self.browser()
        yield self.inThread(browser.login, "teacher", "t34cher")
        status, headers, body = yield self.inThread(
            browser.post, "/accounts/demo@lab.test", {"action": "seed"})
        self.assertIn("Delivered %d sample messages to demo@lab.test." % (len(SAMPLES),), body)
        count, subjects = yield self.inThread(popCount, self.port("pop3"), "demo", "demo")
        self.assertEqual(count, len(SAMPLES))
        self.assertIn("Subject: Welcome to the mail lab", subjects)
        status, headers, body = yield self.inThread(
            browser.post, "/accounts/demo@lab.test", {"action": "empty"})
        self.assertIn("Removed %d messages from demo@lab.test." % (len(SAMPLES),), body)
        count, subjects = yield self.inThread(popCount, self.port("pop3"), "demo", "demo")
        self.assertEqual(count, 0)
        count = yield self.inThread(imapLogin, self.port("imap"), "demo", "demo")
        self.assertEqual(count, 0)

    @defer.inlineCallbacks
    def test_status(self):
        """The status page lists the listeners with their bound ports and an open session."""
        browser = self.browser()
        yield self.inThread(browser.login, "demo", "demo")
        status, headers, body = yield self.inThread(browser.request, "/status/")
        self.assertEqual(status, 200)
        self.assertIn("<td>imap</td><td>imap</td><td>127.0.0.1:%d</td>" % (self.port("imap"),),
                      body)
        self.assertIn("<td>pop3</td><td>pop3</td><td>127.0.0.1:%d</td>" % (self.port("pop3"),),
                      body)

    @defer.inlineCallbacks
    def test_logout(self):
        """After logging out, the console asks for a login again."""
        browser = self.browser()
        yield self.inThread(browser.login, "demo", "demo")
        status, headers, body = yield self.inThread(browser.post, "/logout", {})
        self.assertIn('action="/login"', body)
        status, headers, body = yield self.inThread(browser.request, "/status/")
        self.assertIn('action="/login"', body)


class TLSConsoleTests(E2EMixin, unittest.TestCase):
    """
    With [web] tls = true the console is HTTPS only, with the server's certificate.
    """

    listeners = '\n[web]\nendpoint = "tcp:0:interface=127.0.0.1"\ntls = true\n'

    def test_https(self):
        """The login works over HTTPS (certificate checked) and the cookie is Secure."""
        port = self.server.getServiceNamed("web").port.getHost().port
        browser = Browser("https://localhost:%d" % (port,), tlsContext=self.tlsContext())

        def check(result):
            status, headers, body = result
            self.assertEqual(status, 200)
            self.assertIn("Signed in as <strong>demo@lab.test</strong>", body)
            cookie = [c for c in browser.cookies if c.name == "mailstack_session"]
            self.assertTrue(cookie[0].secure)
        return self.inThread(browser.login, "demo", "demo").addCallback(check)

    def test_plainHTTPRefused(self):
        """Plain HTTP to the TLS port gets no page."""
        port = self.server.getServiceNamed("web").port.getHost().port
        browser = Browser("http://127.0.0.1:%d" % (port,))

        def call():
            try:
                return browser.request("/login")
            except Exception as e:  # the TLS layer answers garbage or hangs up
                return e
        return self.inThread(call).addCallback(
            lambda result: self.assertFalse(isinstance(result, tuple) and result[0] == 200))
