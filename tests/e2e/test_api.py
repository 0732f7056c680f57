"""
End to end: the console's JSON API (C{/api/v1/}) in the server's process,
over real HTTP on 127.0.0.1 with the standard library's clients: tokens,
who may read what, the grading question answered after smtplib submitted a
message over STARTTLS, and no secret in any answer.
"""

import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.web.tokens import TokenStore
from tests.e2e.test_web import WEB, Browser
from tests.helpers import BASE_CONFIG, E2EMixin, listenerTOML, startMailServer

PASSWORDS = {"alice@lab.test": "alice-secret-1", "bob@lab.test": "bob-secret-2",
             "teacher@lab.test": "teacher-secret-3"}


class APIClient:
    """JSON over urllib, with a bearer token or a console login's cookies."""

    def __init__(self, base, token=None, browser=None):
        self.base = base
        self.token = token
        self.browser = browser
        self.seen = []  # every body answered, to look for secrets in

    def call(self, method, path, body=None, headers=None):
        """@return: (status, headers, parsed JSON or raw bytes)."""
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token is not None:
            request.add_header("Authorization", "Bearer " + self.token)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        opener = self.browser.opener if self.browser is not None else urllib.request.build_opener()
        try:
            with opener.open(request, timeout=30) as response:
                status, answered, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            status, answered, raw = e.code, e.headers, e.read()
        self.seen.append(raw)
        if answered.get("Content-Type", "").startswith("application/json"):
            return status, answered, json.loads(raw) if raw else None
        return status, answered, raw


class APITestCase(E2EMixin):
    """A server with the console, a STARTTLS submission listener, and students alice and bob."""

    listeners = (WEB + listenerTOML("submission", tls="starttls", name="submission")
                 + listenerTOML("submission", tls="starttls", name="plain-auth",
                                allow_plaintext_auth=True)
                 + listenerTOML("submission", tls="implicit", name="submissions")
                 + listenerTOML("smtp", tls="none", name="mta"))

    lab = ""  # added to the [lab] table

    @defer.inlineCallbacks
    def setUp(self):
        text = BASE_CONFIG.replace("[lab]\n", "[lab]\n" + self.lab)
        self.mailServer = startMailServer(self, self.listeners, text)
        self.server, self.directory = self.mailServer.service, self.mailServer.directory
        self.cafile = self.mailServer.certificate
        for address, password in PASSWORDS.items():
            yield self.mailServer.addUser(address, password, "BLF-CRYPT")
        self.tokens = TokenStore.inDataDirectory(self.server.config.server.data_dir)
        self.clients = []

    def base(self):
        return "http://127.0.0.1:%d" % (self.server.getServiceNamed("web").port.getHost().port,)

    def client(self, address=None, **kwargs):
        """An API client with a new token of C{address} (none: no token)."""
        token = self.tokens.create(address, "test")[1] if address else None
        client = APIClient(self.base(), token=token, **kwargs)
        self.clients.append(client)
        return client

    def call(self, client, method, path, body=None, headers=None):
        return self.inThread(client.call, method, path, body, headers)

    def submit(self, address, to, subject, starttls=True, port="submission"):
        """smtplib: log in as C{address} (after STARTTLS) and send one message."""
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = address, to, subject
        message.set_content("exercise 3\n")
        with smtplib.SMTP("127.0.0.1", self.port(port), timeout=30) as c:
            c.ehlo("student-laptop")
            if starttls:
                c.starttls(context=self.tlsContext())
                c.ehlo("student-laptop")
            c.login(address, PASSWORDS[address])
            c.send_message(message)

    def assertNoSecrets(self, extra=()):
        """No answer so far held a password, a stored hash, or a token but its own creation's."""
        secrets = [p.encode() for p in PASSWORDS.values()] + [b"$2", b"digest", b"{PLAIN}"]
        secrets += [s.encode() for s in extra]
        for client in self.clients:
            for body in client.seen:
                for secret in secrets:
                    self.assertNotIn(secret, body)


class TokenTests(APITestCase, unittest.TestCase):
    """API tokens: made from a console login (with CSRF), used, listed, revoked."""

    @defer.inlineCallbacks
    def test_noOrBadToken(self):
        """No credentials, a malformed or a wrong token: 401 JSON with WWW-Authenticate, counted as failed logins."""
        anonymous = self.client()
        status, headers, body = yield self.call(anonymous, "GET", "/api/v1/me")
        self.assertEqual((status, body["error"]["status"]), (401, 401))
        self.assertEqual(headers["WWW-Authenticate"], 'Bearer realm="mailstack"')
        penalty = self.server.web.authPenalty
        for token in ("nonsense", "mst_%s_%s" % ("0" * 16, "A" * 43)):
            status, _, body = yield self.call(APIClient(self.base(), token), "GET", "/api/v1/me")
            self.assertEqual(status, 401)
        self.assertEqual(penalty.failures("127.0.0.1"), 2)

    @defer.inlineCallbacks
    def test_lifecycle(self):
        """A logged-in user makes a token (shown once), uses it, sees it listed without its secret, revokes it."""
        browser = Browser(self.base())
        yield self.inThread(browser.login, "alice@lab.test", PASSWORDS["alice@lab.test"])
        console = self.client(browser=browser)
        status, _, body = yield self.call(console, "POST", "/api/v1/tokens", {"name": "grader"})
        self.assertEqual(status, 403, "a cookie write without the CSRF header")
        status, _, me = yield self.call(console, "GET", "/api/v1/me")
        self.assertEqual((status, me["address"]), (200, "alice@lab.test"))
        status, headers, made = yield self.call(console, "POST", "/api/v1/tokens",
                                                {"name": "grader"}, {"X-CSRF-Token": me["csrf"]})
        self.assertEqual((status, made["name"], made["address"]),
                         (201, "grader", "alice@lab.test"))
        script = APIClient(self.base(), made["token"])
        status, _, who = yield self.call(script, "GET", "/api/v1/me")
        self.assertEqual((status, who), (200, {"address": "alice@lab.test", "admin": False}))
        status, _, listed = yield self.call(script, "GET", "/api/v1/tokens")
        self.assertEqual([t["id"] for t in listed["tokens"]], [made["id"]])
        self.assertNotIn(made["token"].encode(), script.seen[-1])
        status, _, _ = yield self.call(script, "DELETE", "/api/v1/tokens/" + made["id"])
        self.assertEqual(status, 204)
        status, _, _ = yield self.call(script, "GET", "/api/v1/me")
        self.assertEqual(status, 401)

    @defer.inlineCallbacks
    def test_commandToken(self):
        """A token the admin command's store makes works at once; a removed user's token does not."""
        alice = self.client("alice@lab.test")
        status, _, who = yield self.call(alice, "GET", "/api/v1/me")
        self.assertEqual(who["address"], "alice@lab.test")
        yield self.inThread(self.server.users.removeUser, "alice@lab.test")
        status, _, _ = yield self.call(alice, "GET", "/api/v1/me")
        self.assertEqual(status, 401)

    @defer.inlineCallbacks
    def test_errors(self):
        """Unknown paths 404, wrong methods 405 with Allow, bad bodies 400, all as JSON."""
        alice = self.client("alice@lab.test")
        status, _, body = yield self.call(alice, "GET", "/api/v1/nothing")
        self.assertEqual((status, body["error"]["status"]), (404, 404))
        status, headers, body = yield self.call(alice, "DELETE", "/api/v1/me")
        self.assertEqual((status, headers["Allow"]), (405, "GET"))
        request = urllib.request.Request(self.base() + "/api/v1/tokens", data=b"{not json",
                                         method="POST")
        request.add_header("Authorization", "Bearer " + alice.token)
        try:
            yield self.inThread(urllib.request.urlopen, request)
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 400)
            self.assertEqual(json.loads(e.read())["error"]["message"], "the body is not JSON")
        else:
            self.fail("a body that is not JSON was taken")
        status, _, body = yield self.call(
            alice, "GET", "/api/v1/accounts/alice@lab.test/submissions?tls=maybe")
        self.assertEqual(status, 400)


class AuthorisationTests(APITestCase, unittest.TestCase):
    """A student reads only her own account, mail, submissions and sessions."""

    @defer.inlineCallbacks
    def test_otherStudentRefused(self):
        """alice's token gets 403 for every bob@ route, the same as for an address nobody has."""
        yield self.mailServer.deliver("bob@lab.test", b"Subject: for bob\r\n\r\nhi\r\n")
        alice = self.client("alice@lab.test")
        for address in ("bob@lab.test", "nobody@lab.test"):
            for route in ("", "/mailboxes", "/mailboxes/INBOX/messages",
                          "/mailboxes/INBOX/messages/1", "/mailboxes/INBOX/messages/1/raw",
                          "/submissions", "/sessions", "/captured"):
                status, _, body = yield self.call(alice, "GET",
                                                  "/api/v1/accounts/" + address + route)
                self.assertEqual((status, body["error"]["message"]),
                                 (403, "not yours: you may see only alice@lab.test"),
                                 address + route)
        status, _, body = yield self.call(alice, "GET", "/api/v1/accounts")
        self.assertEqual(body["accounts"], [{"address": "alice@lab.test", "admin": False}])
        for route in ("/api/v1/submissions", "/api/v1/sessions"):
            status, _, _ = yield self.call(alice, "GET", route)
            self.assertEqual(status, 403)
        status, _, _ = yield self.call(alice, "POST", "/api/v1/accounts",
                                       {"address": "eve@lab.test", "password": "x"})
        self.assertEqual(status, 403)
        status, _, _ = yield self.call(alice, "PUT", "/api/v1/accounts/bob@lab.test/password",
                                       {"password": "taken-over"})
        self.assertEqual(status, 403)

    @defer.inlineCallbacks
    def test_ownMail(self):
        """A student lists her mailboxes and messages, reads one as JSON (headers, text) and raw."""
        source = (b"From: teacher@lab.test\r\nTo: alice@lab.test\r\nSubject: Welcome\r\n"
                  b"Message-ID: <w1@lab.test>\r\n\r\nRead the lab guide.\r\n")
        yield self.mailServer.deliver("alice@lab.test", source)
        alice = self.client("alice@lab.test")
        user = "/api/v1/accounts/alice@lab.test"
        status, _, boxes = yield self.call(alice, "GET", user + "/mailboxes")
        inbox = [b for b in boxes["mailboxes"] if b["name"] == "INBOX"][0]
        self.assertEqual((inbox["messages"], inbox["unseen"]), (1, 1))
        status, _, listed = yield self.call(alice, "GET", user + "/mailboxes/INBOX/messages")
        [summary] = listed["messages"]
        self.assertEqual((summary["subject"], summary["from"], summary["messageId"]),
                         ("Welcome", "teacher@lab.test", "<w1@lab.test>"))
        path = user + "/mailboxes/INBOX/messages/%d" % (summary["uid"],)
        status, _, message = yield self.call(alice, "GET", path)
        self.assertEqual(message["parts"][0]["text"], "Read the lab guide.\r\n")
        self.assertIn({"name": "Subject", "value": "Welcome"}, message["headers"])
        status, headers, raw = yield self.call(alice, "GET", path + "/raw")
        self.assertEqual((status, headers["Content-Type"]), (200, "message/rfc822"))
        self.assertTrue(raw.endswith(source))
        status, _, _ = yield self.call(alice, "GET", user + "/mailboxes/Nope/messages")
        self.assertEqual(status, 404)
        status, _, _ = yield self.call(alice, "GET", user + "/mailboxes/INBOX/messages/99")
        self.assertEqual(status, 404)
        status, _, _ = yield self.call(alice, "GET", user + "/mailboxes/INBOX/messages/x")
        self.assertEqual(status, 400)


class GradingTests(APITestCase, unittest.TestCase):
    """The grading question, end to end."""

    @defer.inlineCallbacks
    def test_sentOverStartTLS(self):
        """After smtplib sends with STARTTLS and AUTH, one API call says who sent what to whom, over starttls."""
        yield self.inThread(self.submit, "alice@lab.test", "bob@lab.test", "Lab 3: headers")
        yield self.inThread(self.submit, "alice@lab.test", "bob@lab.test", "Lab 3: plain",
                            False, "plain-auth")
        grader = self.client("alice@lab.test")
        status, _, found = yield self.call(
            grader, "GET", "/api/v1/accounts/alice@lab.test/submissions"
                           "?to=bob@lab.test&subject=lab%203&tls=starttls&authenticated=true")
        self.assertEqual((status, found["count"]), (200, 1))
        [sent] = found["submissions"]
        self.assertEqual(
            (sent["tls"], sent["authenticated"], sent["sender"], sent["recipients"],
             sent["subject"], sent["protocol"], sent["helo"]),
            ("starttls", "alice@lab.test", "alice@lab.test", ["bob@lab.test"],
             "Lab 3: headers", "submission", "student-laptop"))
        self.assertTrue(sent["tlsVersion"].startswith("TLSv1."))
        status, _, plain = yield self.call(
            grader, "GET", "/api/v1/accounts/alice@lab.test/submissions?tls=none")
        self.assertEqual([s["subject"] for s in plain["submissions"]], ["Lab 3: plain"])
        yield self.mailServer.waitForMessages("bob@lab.test", 2)
        self.assertNoSecrets()

    @defer.inlineCallbacks
    def test_implicitTLS(self):
        """A message sent on the implicit-TLS port (smtplib.SMTP_SSL) is recorded as implicit, with its TLS version."""
        def send():
            with smtplib.SMTP_SSL("127.0.0.1", self.port("submissions"),
                                  context=self.tlsContext(), timeout=30) as c:
                c.login("alice@lab.test", PASSWORDS["alice@lab.test"])
                c.sendmail("alice@lab.test", ["bob@lab.test"], b"Subject: over 465\r\n\r\nx\r\n")
        yield self.inThread(send)
        status, _, found = yield self.call(
            self.client("alice@lab.test"), "GET",
            "/api/v1/accounts/alice@lab.test/submissions?tls=implicit")
        [sent] = found["submissions"]
        self.assertEqual((sent["subject"], sent["authenticated"]), ("over 465", "alice@lab.test"))
        self.assertTrue(sent["tlsVersion"].startswith("TLSv1."))

    @defer.inlineCallbacks
    def test_forgedSenderNotAuthenticated(self):
        """A message another client sent on port 25 as alice, without a login, is not hers with authenticated=true."""
        def forge():
            with smtplib.SMTP("127.0.0.1", self.port("mta"), timeout=30) as c:
                c.sendmail("alice@lab.test", ["bob@lab.test"], b"Subject: Lab 3\r\n\r\nfake\r\n")
        yield self.inThread(forge)
        grader = self.client("alice@lab.test")
        path = "/api/v1/accounts/alice@lab.test/submissions?to=bob@lab.test&subject=Lab%203"
        status, _, claimed = yield self.call(grader, "GET", path)
        self.assertEqual([s["authenticated"] for s in claimed["submissions"]], [None])
        status, _, proven = yield self.call(grader, "GET", path + "&authenticated=true")
        self.assertEqual(proven["count"], 0)

    @defer.inlineCallbacks
    def test_submissionsKeptOverRestart(self):
        """The submission log survives the server's restart (its file in data_dir)."""
        yield self.inThread(self.submit, "alice@lab.test", "bob@lab.test", "before restart")
        log = self.server.web.submissions
        yield log.written()
        from mailstack.smtp.submissions import SubmissionLog
        again = SubmissionLog.open(None, log.path)
        self.assertEqual([s.subject for s in again.find()], ["before restart"])


class AdminTests(APITestCase, unittest.TestCase):
    """An admin's token sees every student."""

    @defer.inlineCallbacks
    def test_adminSeesAll(self):
        """The teacher (admin) reads any student's mail, submissions and sessions, and adds a student who can then send."""
        yield self.inThread(self.server.users.setAdmin, "teacher@lab.test", True)
        yield self.inThread(self.submit, "alice@lab.test", "bob@lab.test", "Lab 1")
        yield self.mailServer.waitForMessages("bob@lab.test", 1)
        teacher = self.client("teacher@lab.test")
        status, _, me = yield self.call(teacher, "GET", "/api/v1/me")
        self.assertEqual(me, {"address": "teacher@lab.test", "admin": True})
        status, _, accounts = yield self.call(teacher, "GET", "/api/v1/accounts")
        self.assertTrue({"alice@lab.test", "bob@lab.test"}.issubset(
            {a["address"] for a in accounts["accounts"]}))
        status, _, listed = yield self.call(
            teacher, "GET", "/api/v1/accounts/bob@lab.test/mailboxes/INBOX/messages")
        self.assertEqual([m["subject"] for m in listed["messages"]], ["Lab 1"])
        status, _, found = yield self.call(teacher, "GET", "/api/v1/submissions?tls=starttls")
        self.assertEqual([s["sender"] for s in found["submissions"]], ["alice@lab.test"])
        status, _, sessions = yield self.call(teacher, "GET", "/api/v1/sessions")
        self.assertIn(["alice@lab.test"], [s["users"] for s in sessions["sessions"]])
        PASSWORDS["carol@lab.test"] = "carol-secret-4"
        self.addCleanup(PASSWORDS.pop, "carol@lab.test")
        status, _, added = yield self.call(teacher, "POST", "/api/v1/accounts", {
            "address": "carol@lab.test", "password": "carol-secret-4"})
        self.assertEqual((status, added), (201, {"address": "carol@lab.test", "admin": False}))
        yield self.inThread(self.submit, "carol@lab.test", "alice@lab.test", "hello")
        status, _, carol = yield self.call(
            teacher, "GET", "/api/v1/accounts/carol@lab.test/submissions")
        self.assertEqual(carol["count"], 1)
        self.assertNoSecrets()


class CaptureAndReportTests(APITestCase, unittest.TestCase):
    """Captured mail and the class report through the API, each student's own."""

    lab = "capture = true\n"

    @defer.inlineCallbacks
    def test_capturedOwnOnly(self):
        """alice finds the mail she sent outside in the capture store; bob gets 404 for it, as for no message."""
        yield self.inThread(self.submit, "alice@lab.test", "friend@example.com", "Lab 4")
        alice, bob = self.client("alice@lab.test"), self.client("bob@lab.test")
        status, _, listed = yield self.call(alice, "GET",
                                            "/api/v1/accounts/alice@lab.test/captured")
        [captured] = listed["captured"]
        self.assertEqual((captured["subject"], captured["recipients"], captured["authenticated"]),
                         ("Lab 4", ["friend@example.com"], "alice@lab.test"))
        status, _, message = yield self.call(alice, "GET", "/api/v1/captured/" + captured["id"])
        self.assertEqual((status, message["parts"][0]["text"]), (200, "exercise 3\r\n"))
        status, _, refused = yield self.call(bob, "GET", "/api/v1/captured/" + captured["id"])
        status2, _, missing = yield self.call(bob, "GET", "/api/v1/captured/nothing.1")
        self.assertEqual((status, status2), (404, 404))
        status, _, _ = yield self.call(bob, "GET", "/api/v1/captured")
        self.assertEqual(status, 403)

    @defer.inlineCallbacks
    def test_report(self):
        """The class report: a student gets her own row (her message sent over TLS counted)."""
        yield self.inThread(self.submit, "alice@lab.test", "bob@lab.test", "Lab 5")
        status, _, report = yield self.call(self.client("alice@lab.test"), "GET", "/api/v1/report")
        [row] = report["students"]
        self.assertEqual((status, row["address"], row["sent"], row["sent_tls"]),
                         (200, "alice@lab.test", 1, 1))
