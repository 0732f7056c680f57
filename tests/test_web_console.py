"""
Tests for the console's own pages (L{mailstack.web.app}, L{mailstack.web.auth},
L{mailstack.web.page}, L{mailstack.web.accounts}, L{mailstack.web.status}) on
twisted.web's DummyRequest: a real passwd-file and user directory (its thread
pool synchronous), a memory store and the shared penalty on a fake clock.
"""

import re
import types

from twisted.trial import unittest
from twisted.web import resource
from twisted.web.test.requesthelper import DummyRequest
from twisted.internet.address import IPv4Address

from mailstack.auth.directory import UserDirectory
from mailstack.auth.userdb import PasswdFile
from mailstack.config import loadConfig
from mailstack.storage.memory import MemoryStore
from mailstack.throttle import AuthPenalty
from mailstack.web import mailboxes
from mailstack.web.app import buildRoot
from mailstack.web.auth import COOKIE, LOGIN_FAILED, Principal, SessionStore
from mailstack.web.context import WebContext
from mailstack.web.page import localPath
from mailstack.web.status import formatUptime
from tests.fakes import FakeReactor
from tests.helpers import BASE_CONFIG, writeConfig

WEB = '\n[web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'


class ConsoleMixin:
    """
    A console over a memory store: C{root@lab.test} (admin), C{alice} and
    C{bob} (students), each password C{pw}; a browser helper keeping cookies.
    """

    web = WEB

    def setUp(self):
        self.reactor = FakeReactor()
        self.reactor.advance(1700000000)
        self.config = loadConfig(writeConfig(self, BASE_CONFIG, self.web))
        self.users = PasswdFile(self.mktemp(), "lab.test")
        for name in ("root", "alice", "bob"):
            self.users.addUser(name + "@lab.test", "pw", "PLAIN")
        self.users.setAdmin("root@lab.test", True)
        self.store = MemoryStore(self.reactor)
        self.penalty = AuthPenalty(self.reactor, delayAfter=1, delaySeconds=2.0)
        self.context = WebContext(
            config=self.config, store=self.store,
            directory=UserDirectory(self.users, self.reactor), users=self.users,
            authPenalty=self.penalty, reactor=self.reactor)
        self.root = buildRoot(self.context)
        self.auth = self.root.auth
        self.cookie = None

    def request(self, path, method=b"GET", cookie=True, **args):
        """
        Render C{path} as a browser with this test's cookie would.

        @return: the DummyRequest, finished (C{body}: what was written) or
            not (a login waiting for the penalty).
        """
        segments = path.split("?")[0].lstrip("/").encode("utf-8").split(b"/")
        request = DummyRequest(segments)
        request.method = method
        request.uri = path.encode("utf-8")
        request.client = IPv4Address("TCP", "192.0.2.7", 50000)
        request.getClientAddress = lambda: request.client
        request.args = {k.encode(): [v.encode("utf-8")] for k, v in args.items()}
        if cookie and self.cookie:
            request.requestHeaders.addRawHeader(b"cookie", COOKIE + b"=" + self.cookie)
        child = resource.getChildForRequest(self.root, request)
        result = child.render(request)
        if isinstance(result, bytes):
            request.write(result)
            request.finish()
        self.keepCookie(request)
        return request

    def keepCookie(self, request):
        for header in request.responseHeaders.getRawHeaders(b"set-cookie", []):
            value = header.split(b";")[0].split(b"=", 1)[1]
            self.cookie = value or None

    def body(self, request):
        return b"".join(request.written).decode("utf-8")

    def csrf(self, path="/login"):
        request = self.request(path)
        return re.search(r'name="csrf" value="([^"]+)"', self.body(request)).group(1)

    def login(self, address, password="pw"):
        request = self.request("/login", b"POST", csrf=self.csrf(), address=address,
                               password=password, next="/")
        self.keepCookie(request)
        return request

    def post(self, path, **args):
        """POST a form of the page at C{path}, with its CSRF token."""
        return self.request(path, b"POST", csrf=self.csrf(path), **args)


class LoginTests(ConsoleMixin, unittest.TestCase):
    """
    Logging in and out, sessions and their cookie.
    """

    def test_redirectToLogin(self):
        """A page asked for without a login redirects to the login form, remembering it."""
        request = self.request("/accounts/")
        self.assertEqual(request.responseCode, 303)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"location"),
                         [b"/login?next=/accounts/"])

    def test_login(self):
        """The right password starts a session: HttpOnly, SameSite=Strict, not Secure on plain HTTP."""
        request = self.login("alice")
        self.assertEqual(request.responseCode, 303)
        cookie = request.responseHeaders.getRawHeaders(b"set-cookie")[-1]
        self.assertIn(b"HttpOnly", cookie)
        self.assertIn(b"SameSite=Strict", cookie)
        self.assertNotIn(b"Secure", cookie)
        self.assertIn("Signed in as <strong>alice@lab.test</strong>",
                      self.body(self.request("/")))

    def test_newSessionAtLogin(self):
        """Logging in replaces the session id the login form had (no fixation)."""
        self.csrf()
        before = self.cookie
        self.login("alice")
        self.assertNotEqual(self.cookie, before)
        self.assertIsNone(self.auth.sessions.get(before.decode()))

    def test_wrongPasswordGeneric(self):
        """A wrong password and an unknown address get the same one line, and no session."""
        wrong = self.login("alice", "nope")
        unknown = self.login("nobody", "nope")
        self.reactor.advance(2)
        for request in (wrong, unknown):
            self.assertEqual(request.responseCode, 401)
            self.assertIn(LOGIN_FAILED, self.body(request))
        self.assertEqual(self.body(wrong).replace("alice", "X"),
                         self.body(unknown).replace("nobody", "X"))
        self.assertEqual(self.request("/").responseCode, 303)

    def test_penaltyShared(self):
        """A failed console login counts in the shared penalty: the next attempt waits for the clock."""
        self.login("alice", "nope")
        self.assertEqual(self.penalty.failures("192.0.2.7"), 1)
        request = self.login("alice", "pw")
        self.assertFalse(request.finished)
        self.reactor.advance(1.9)
        self.assertFalse(request.finished)
        self.reactor.advance(0.1)
        self.assertTrue(request.finished)
        self.assertEqual(request.responseCode, 303)
        self.assertEqual(self.penalty.failures("192.0.2.7"), 0)

    def test_otherProtocolsPenaltySlowsConsole(self):
        """Failures counted by a mail protocol make a console login from that address wait."""
        self.penalty.failed("192.0.2.7")
        request = self.login("alice", "pw")
        self.assertFalse(request.finished)
        self.reactor.advance(2)
        self.assertEqual(request.responseCode, 303)

    def test_logout(self):
        """Logging out (a POST with the token) ends the session."""
        self.login("alice")
        old = self.cookie
        request = self.post("/logout")
        self.assertEqual(request.responseCode, 303)
        self.assertIsNone(self.auth.sessions.get(old.decode()))
        self.assertEqual(self.request("/").responseCode, 303)

    def test_sessionTimeout(self):
        """A session unused for session_timeout seconds is gone."""
        self.login("alice")
        self.reactor.advance(self.config.web.session_timeout - 1)
        self.assertEqual(self.request("/").responseCode, 200)
        self.reactor.advance(self.config.web.session_timeout + 1)
        self.assertEqual(self.request("/").responseCode, 303)

    def test_nextIsLocal(self):
        """After login the browser goes only to a path of this console."""
        self.assertEqual(localPath("/accounts/"), "/accounts/")
        for bad in ("https://evil.test/", "//evil.test/", "/\\evil.test", "javascript:x",
                    "/a\r\nSet-Cookie: x"):
            self.assertEqual(localPath(bad), "/", bad)

    def test_securityHeaders(self):
        """Pages forbid framing and foreign scripts and are not cached."""
        request = self.request("/login")
        headers = request.responseHeaders
        self.assertIn(b"frame-ancestors 'none'",
                      headers.getRawHeaders(b"content-security-policy")[0])
        self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"no-store"])
        self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])

    def test_escaping(self):
        """What a user typed is escaped in the page (autoescaping)."""
        request = self.login("<script>alert(1)</script>", "x")
        self.reactor.advance(2)
        body = self.body(request)
        self.assertNotIn("<script>alert", body)
        self.assertIn("&lt;script&gt;", body)


class SecureCookieTests(ConsoleMixin, unittest.TestCase):
    web = '\n[web]\nendpoint = "tcp:0"\ntls = true\n'

    def test_secureOverTLS(self):
        """Served over TLS, the session cookie is Secure."""
        self.csrf()
        request = self.login("alice")
        self.assertIn(b"Secure", request.responseHeaders.getRawHeaders(b"set-cookie")[-1])


class SessionStoreTests(unittest.TestCase):
    def test_bounded(self):
        """At most maxSessions are kept; the least recently used goes first."""
        clock = FakeReactor()
        sessions = SessionStore(clock, 60, maxSessions=2)
        first, second = sessions.create(), sessions.create()
        sessions.get(first.id)
        sessions.create()
        self.assertIsNone(sessions.get(second.id))
        self.assertIsNotNone(sessions.get(first.id))
        self.assertEqual(len(sessions), 2)

    def test_idsAreRandom(self):
        """Session ids and CSRF tokens are long and never repeat."""
        sessions = SessionStore(FakeReactor(), 60)
        made = [sessions.create() for _ in range(50)]
        values = {s.id for s in made} | {s.csrf for s in made}
        self.assertEqual(len(values), 100)
        self.assertTrue(all(len(v) >= 40 for v in values))


class CSRFTests(ConsoleMixin, unittest.TestCase):
    """
    A state-changing POST without its session's token is refused and changes nothing.
    """

    def test_missingToken(self):
        """Adding an account without the token: 403, and no account."""
        self.login("root")
        request = self.request("/accounts/", b"POST", action="add", address="mallory",
                               password="pw", scheme="PLAIN")
        self.assertEqual(request.responseCode, 403)
        self.assertIsNone(self.users.lookup("mallory"))

    def test_wrongToken(self):
        """Another session's token does not do: 403, and the password is unchanged."""
        self.login("root")
        mine = self.csrf("/accounts/alice@lab.test")
        other = self.auth.sessions.create().csrf
        self.assertNotEqual(mine, other)
        request = self.request("/accounts/alice@lab.test", b"POST", csrf=other,
                               action="password", password="new")
        self.assertEqual(request.responseCode, 403)
        self.assertTrue(self.users.verifyPassword("alice", "pw"))

    def test_loginNeedsToken(self):
        """The login form itself needs the token its page gave (no login CSRF)."""
        request = self.request("/login", b"POST", address="alice", password="pw")
        self.assertEqual(request.responseCode, 403)
        self.assertEqual(self.penalty.failures("192.0.2.7"), 0)

    def test_logoutNeedsToken(self):
        """A logout without the token is refused: the session goes on."""
        self.login("alice")
        self.assertEqual(self.request("/logout", b"POST").responseCode, 403)
        self.assertEqual(self.request("/").responseCode, 200)


class AccountPageTests(ConsoleMixin, unittest.TestCase):
    """
    Who sees which account, and the admins' forms.
    """

    def test_adminSeesEveryone(self):
        """An admin's account list has every account, admins marked."""
        self.login("root")
        body = self.body(self.request("/accounts/"))
        for address in ("alice@lab.test", "bob@lab.test", "root@lab.test"):
            self.assertIn(">%s</a>" % (address,), body)
        self.assertIn('<a href="/accounts/">Accounts</a>', body)

    def test_studentCannotList(self):
        """A student gets 403 for the account list, and no Accounts link."""
        self.login("alice")
        request = self.request("/accounts/")
        self.assertEqual(request.responseCode, 403)
        self.assertNotIn("bob@lab.test", self.body(request))
        self.assertNotIn('href="/accounts/">', self.body(self.request("/")))

    def test_studentSeesOnlyHerself(self):
        """A student sees her own account page, without admin forms; another's is 403."""
        self.login("alice")
        own = self.request("/accounts/alice@lab.test")
        self.assertEqual(own.responseCode, 200)
        self.assertIn("INBOX", self.body(own))
        self.assertNotIn('value="seed"', self.body(own))
        other = self.request("/accounts/bob@lab.test")
        self.assertEqual(other.responseCode, 403)
        self.assertNotIn("bob@lab.test", self.body(other).split("</header>")[1])

    def test_studentCannotPost(self):
        """A student's POST to an admin form (with her token) is refused, nothing done."""
        self.login("alice")
        request = self.post("/accounts/alice@lab.test", action="seed")
        self.assertEqual(request.responseCode, 403)
        inbox = self.successResultOf(self.store.account("alice@lab.test").openMailbox("INBOX"))
        self.assertEqual(inbox.messages(), [])

    def test_addAccount(self):
        """An admin adds an account, which can then log in; the page says so."""
        self.login("root")
        request = self.post("/accounts/", action="add", address="carol", password="c4rol",
                            scheme="BLF-CRYPT")
        self.assertEqual(request.responseCode, 303)
        self.assertTrue(self.users.verifyPassword("carol@lab.test", "c4rol"))
        self.assertFalse(self.users.lookup("carol").admin)
        self.assertIn("Added carol@lab.test (BLF-CRYPT).", self.body(self.request("/accounts/")))

    def test_addAdmin(self):
        """The admin box makes the new account an admin."""
        self.login("root")
        self.post("/accounts/", action="add", address="dave", password="pw", scheme="PLAIN",
                  admin="on")
        self.assertTrue(self.users.lookup("dave").admin)

    def test_addRefused(self):
        """An account that exists is not added again; the error is shown, nothing changes."""
        self.login("root")
        self.post("/accounts/", action="add", address="alice", password="other", scheme="PLAIN")
        body = self.body(self.request("/accounts/"))
        self.assertIn('class="error"', body)
        self.assertIn("already exists", body)
        self.assertTrue(self.users.verifyPassword("alice", "pw"))

    def test_importCSV(self):
        """Pasted class rows are imported by the same import as the admin command."""
        self.login("root")
        self.post("/accounts/", action="import",
                  csv="address,password\nerin,e-pw\nalice,pw\n")
        self.assertTrue(self.users.verifyPassword("erin@lab.test", "e-pw"))
        self.assertIn("the pasted rows: added 1, updated 0, skipped 1.",
                      self.body(self.request("/accounts/")))

    def test_importBadFile(self):
        """A bad row imports nothing and the page names the line."""
        self.login("root")
        self.post("/accounts/", action="import", csv="frank,pw\nnot an address!,pw\n")
        self.assertIsNone(self.users.lookup("frank"))
        self.assertIn("the pasted rows:2:", self.body(self.request("/accounts/")))

    def test_resetPassword(self):
        """An admin resets a password; the old one no longer works."""
        self.login("root")
        self.post("/accounts/alice@lab.test", action="password", password="fresh", scheme="")
        self.assertTrue(self.users.verifyPassword("alice", "fresh"))
        self.assertFalse(self.users.verifyPassword("alice", "pw"))
        self.assertEqual(self.users.lookup("alice").scheme, "PLAIN")

    def test_resetPasswordEndsSessions(self):
        """A reset password ends that user's console sessions."""
        session = self.auth.sessions.create(
            Principal("alice@lab.test"))
        self.login("root")
        self.post("/accounts/alice@lab.test", action="password", password="fresh", scheme="")
        self.assertIsNone(self.auth.sessions.get(session.id))

    def test_seedAndEmpty(self):
        """Seed delivers every sample to INBOX; reset removes every message of every folder."""
        self.login("root")
        account = self.store.account("alice@lab.test")
        self.successResultOf(account.createMailbox("Work"))
        work = self.successResultOf(account.openMailbox("Work"))
        self.successResultOf(work.append(b"Subject: keep?\r\n\r\nx\r\n"))
        self.post("/accounts/alice@lab.test", action="seed")
        inbox = self.successResultOf(account.openMailbox("INBOX"))
        self.successResultOf(inbox.sync(claimRecent=False))
        count = len(mailboxes.SAMPLES)
        self.assertEqual(len(inbox.messages()), count)
        body = self.body(self.request("/accounts/alice@lab.test"))
        self.assertIn("Delivered %d sample messages to alice@lab.test." % (count,), body)
        self.post("/accounts/alice@lab.test", action="empty")
        self.successResultOf(inbox.sync(claimRecent=False))
        self.successResultOf(work.sync(claimRecent=False))
        self.assertEqual((inbox.messages(), work.messages()), ([], []))
        self.assertEqual(account.listMailboxes(), ["INBOX", "Work"])
        self.assertIn("Removed %d messages" % (count + 1,),
                      self.body(self.request("/accounts/alice@lab.test")))

    def test_adminFlag(self):
        """An admin makes a student an admin; it applies at her next login."""
        self.login("root")
        self.post("/accounts/bob@lab.test", action="admin", admin="on")
        self.assertTrue(self.users.lookup("bob").admin)

    def test_unknownAccount(self):
        """An admin asking for an account that does not exist gets 404."""
        self.login("root")
        self.assertEqual(self.request("/accounts/ghost@lab.test").responseCode, 404)


class SampleTests(unittest.TestCase):
    def test_samplesFilledIn(self):
        """Each sample gets the address, a date and its own Message-ID, in CRLF form."""
        templates = mailboxes.loadSamples()
        self.assertGreaterEqual(len(templates), 5)
        messages = mailboxes.sampleMessages(templates, "alice@lab.test", 1700000000,
                                            "mail.lab.test")
        ids = set()
        for message in messages:
            self.assertIn(b"To: alice@lab.test\r\n", message)
            self.assertIn(b"Date: Tue, 14 Nov 2023 22:13:20 -0000\r\n", message)
            self.assertNotIn(b"${", message)
            self.assertNotIn(b"\n", message.replace(b"\r\n", b""))
            ids.add(re.search(rb"Message-ID: (<[^>]+@mail\.lab\.test>)", message).group(1))
        self.assertEqual(len(ids), len(messages))


class StatusPageTests(ConsoleMixin, unittest.TestCase):
    def setUp(self):
        ConsoleMixin.setUp(self)
        from mailstack.sessions import SessionCounter
        self.context.counter = SessionCounter()
        self.context.counter.open("imap", "192.0.2.1")
        self.context.counter.open("imap", "192.0.2.2")
        self.context.counter.close("imap", "192.0.2.2")
        self.context.started = self.reactor.seconds() - 3 * 3600 - 120
        listener = types.SimpleNamespace(name="imap", protocol="imap", tls="starttls",
                                         allow_plaintext_auth=True,
                                         endpoint="tcp:3143:interface=127.0.0.1")
        port = types.SimpleNamespace(getHost=lambda: IPv4Address("TCP", "127.0.0.1", 3143))
        imaps = types.SimpleNamespace(name="imaps", protocol="imap", tls="implicit",
                                      allow_plaintext_auth=False,
                                      endpoint="tcp:3993:interface=127.0.0.1")
        self.context.listeners = [types.SimpleNamespace(listener=listener, port=port),
                                  types.SimpleNamespace(listener=imaps, port=None)]

    def test_status(self):
        """Listeners with ports and TLS, sessions per protocol, uptime and backends."""
        self.login("alice")
        body = self.body(self.request("/status/"))
        self.assertIn("<td>imap</td><td>imap</td><td>127.0.0.1:3143</td><td>starttls</td>"
                      "<td>allowed</td>", body)
        self.assertIn("<td>imaps</td><td>imap</td><td>tcp:3993:interface=127.0.0.1</td>"
                      "<td>implicit</td><td>(implicit TLS)</td>", body)
        self.assertIn("<tr><td>imap</td><td>1</td><td>2</td><td>0</td></tr>", body)
        self.assertIn("Up 3 h 2 min.", body)
        self.assertIn("<dd>maildir</dd>", body)
        self.assertIn("<dd>passwd-file</dd>", body)
        self.assertNotIn(str(self.config.users.path), body)

    def test_adminSeesWhereUsersAre(self):
        """Admins also see where the users are."""
        self.login("root")
        self.assertIn(str(self.config.users.path), self.body(self.request("/status/")))

    def test_uptime(self):
        """Uptime reads as days, hours and minutes."""
        self.assertEqual(formatUptime(5), "5 s")
        self.assertEqual(formatUptime(90061), "1 d 1 h 1 min")
        self.assertEqual(formatUptime(3600), "1 h")


class PackageDataTests(unittest.TestCase):
    def test_everyWebFileShipped(self):
        """setup.cfg's package data covers every template, static file and sample, so an
        installed server (pip install ., make run) has them."""
        import configparser
        import fnmatch
        import os
        import mailstack.web
        checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        parser = configparser.ConfigParser()
        parser.read(os.path.join(checkout, "setup.cfg"))
        patterns = parser["options.package_data"]["mailstack.web"].split()
        web = os.path.dirname(os.path.abspath(mailstack.web.__file__))
        unshipped = []
        for folder in ("templates", "static", "samples"):
            for name in os.listdir(os.path.join(web, folder)):
                relative = folder + "/" + name
                if not any(fnmatch.fnmatch(relative, p) for p in patterns):
                    unshipped.append(relative)
        self.assertEqual(unshipped, [])
        self.assertTrue(os.listdir(os.path.join(web, "samples")))


class MountTests(unittest.TestCase):
    """
    buildRoot's table of optional parts: a part whose module is missing is
    left out, the others are mounted where their placement says.
    """

    def setUp(self):
        import sys
        self.modules = sys.modules
        self.reactor = FakeReactor()
        config = loadConfig(writeConfig(self, BASE_CONFIG, WEB))
        self.context = WebContext(config=config, store=MemoryStore(self.reactor),
                                  directory=None, users=None, authPenalty=None,
                                  reactor=self.reactor)

    def fakeModule(self, name, **attributes):
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        self.modules[name] = module
        self.addCleanup(self.modules.pop, name, None)
        return module

    def test_missingPartLeftOut(self):
        """A part whose module does not exist is skipped; the console still builds."""
        from mailstack.web import app
        mounts = (("mailstack.web.no_such_part", "resources", app._atTop),)
        self.assertEqual(app.optionalParts(mounts), [])
        root = buildRoot(self.context, mounts)
        self.assertIn(b"login", root.children)

    def test_brokenPartRaises(self):
        """A part whose module exists but cannot import a library it needs is not hidden."""
        import os
        import sys
        from mailstack.web import app
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "mailstack_test_broken.py"), "w") as f:
            f.write("import mailstack_test_no_such_library\n")
        sys.path.insert(0, directory)
        self.addCleanup(sys.path.remove, directory)
        self.addCleanup(self.modules.pop, "mailstack_test_broken", None)
        mounts = (("mailstack_test_broken", "resources", app._atTop),)
        e = self.assertRaises(ModuleNotFoundError, app.optionalParts, mounts)
        self.assertEqual(e.name, "mailstack_test_no_such_library")

    def test_placements(self):
        """Each part lands at its paths, folders made on the way (themselves 404), and its
        header links are added."""
        from mailstack.web import app
        top = resource.Resource()
        deep = resource.Resource()
        self.fakeModule("mailstack_test_top", resources=lambda context: {b"metrics": top})
        self.fakeModule("mailstack_test_deep", CONSOLE_LINKS=[("Deep", "/a/", True)],
                        resources=lambda context, auth: {(b"a", b"b", b"c.xml"): deep})
        mounts = (("mailstack_test_top", "resources", app._atTop),
                  ("mailstack_test_deep", "resources", app._called))
        root = buildRoot(self.context, mounts)
        self.assertIs(root.children[b"metrics"], top)
        self.assertIs(root.children[b"a"].children[b"b"].children[b"c.xml"], deep)
        request = DummyRequest([b"a"])
        body = root.children[b"a"].render(request)
        self.assertEqual(request.responseCode, 404)
        self.assertIn(("Deep", "/a/", True), self.context.navigation)
