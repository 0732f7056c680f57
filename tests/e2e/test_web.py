"""
End to end: the console's listener in the server's process, over real HTTP on
127.0.0.1 with the standard library's client.
"""

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

from twisted.trial import unittest

from tests.helpers import E2EMixin

WEB = '\n[web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand redirects back to the test instead of following them."""

    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """A urllib opener with a cookie jar, pointed at the console."""

    def __init__(self, base, follow=True):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        handlers = [urllib.request.HTTPCookieProcessor(self.cookies)]
        if not follow:
            handlers.append(NoRedirect())
        self.opener = urllib.request.build_opener(*handlers)

    def request(self, path, form=None):
        """@return: (status, headers, body text), errors included."""
        data = urllib.parse.urlencode(form).encode("ascii") if form is not None else None
        try:
            with self.opener.open(self.base + path, data, timeout=30) as response:
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
