"""
Tests for L{mailstack.web.api} on twisted.web's DummyRequest (a memory store,
a real passwd-file and user directory, its thread pool synchronous), and for
docs/openapi.json: a valid OpenAPI 3.1 document describing exactly the
routes the API serves, each with an example.
"""

import io
import json
import os

from openapi_spec_validator import validate
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.trial import unittest
from twisted.web import resource, server
from twisted.web.test.requesthelper import DummyRequest

from mailstack.auth.directory import UserDirectory
from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.auth.userdb import PasswdFile
from mailstack.config import loadConfig
from mailstack.smtp.submissions import Submission, SubmissionLog
from mailstack.storage.interfaces import StoreUnavailable
from mailstack.storage.memory import MemoryStore
from mailstack.throttle import AuthPenalty
from mailstack.web import api
from mailstack.web.app import buildRoot
from mailstack.web.auth import COOKIE, Principal
from mailstack.web.context import WebContext
from mailstack.web.tokens import TokenStore
from tests.fakes import FakeReactor
from tests.helpers import BASE_CONFIG, writeConfig

WEB = '\n[web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
OPENAPI = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "docs", "openapi.json")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def openapi():
    with open(OPENAPI, encoding="utf-8") as f:
        return json.load(f)


class OpenAPITests(unittest.TestCase):
    """docs/openapi.json and the API's routes."""

    def test_valid(self):
        """The document is valid OpenAPI 3.1 (openapi-spec-validator)."""
        document = openapi()
        self.assertEqual(document["openapi"], "3.1.0")
        validate(document)

    def test_sameRoutes(self):
        """Every operation in the document is a route of the API, and every route is in the document."""
        documented = {(method.upper(), path) for path, item in openapi()["paths"].items()
                      for method in item if method in METHODS}
        served = {(route.method, route.template) for route in api.ROUTES}
        self.assertEqual(sorted(documented - served), [])
        self.assertEqual(sorted(served - documented), [])

    def test_parametersNamed(self):
        """Each route's path parameters are the document's, by name."""
        document = openapi()
        for route in api.ROUTES:
            operation = document["paths"][route.template][route.method.lower()]
            names = set()
            for parameter in operation.get("parameters", []):
                if "$ref" in parameter:
                    parameter = document["components"]["parameters"][
                        parameter["$ref"].rsplit("/", 1)[1]]
                if parameter["in"] == "path":
                    names.add(parameter["name"])
            wanted = {s[1:-1] for s in route.segments if s.startswith("{")}
            self.assertEqual(names, wanted, route.template)

    def test_examples(self):
        """Every operation's success answer has an example."""
        for path, item in openapi()["paths"].items():
            for method, operation in item.items():
                answers = [a for code, a in operation["responses"].items()
                           if code.startswith("2") and code != "204"]
                for answer in answers:
                    content = list(answer["content"].values())[0]
                    self.assertIn("example", content, "%s %s" % (method, path))


class APIMixin:
    """
    The API over a memory store: C{root@lab.test} (admin), C{alice} and
    C{bob} (students), each password C{pw}, and a submission log.
    """

    def setUp(self):
        self.reactor = FakeReactor()
        self.reactor.advance(1700000000)
        self.config = loadConfig(writeConfig(self, BASE_CONFIG, WEB))
        self.users = PasswdFile(self.mktemp(), "lab.test")
        for name in ("root", "alice", "bob"):
            self.users.addUser(name + "@lab.test", "pw", "PLAIN")
        self.users.setAdmin("root@lab.test", True)
        self.penalty = AuthPenalty(self.reactor, delayAfter=5, delaySeconds=2.0)
        self.submissions = SubmissionLog(self.reactor)
        self.context = WebContext(
            config=self.config, store=MemoryStore(self.reactor),
            directory=UserDirectory(self.users, self.reactor), users=self.users,
            authPenalty=self.penalty, reactor=self.reactor, submissions=self.submissions)
        self.tokens = TokenStore(os.path.join(self.mktemp(), "tokens.json"))
        self.context.tokens = self.tokens
        self.root = buildRoot(self.context)

    def token(self, address):
        return self.tokens.create(address, "test")[1]

    def request(self, path, method=b"GET", token=None, body=None, cookie=None, headers=()):
        """Render C{path}; @return: (status, headers, parsed JSON or bytes)."""
        path, _, query = path.partition("?")
        request = DummyRequest(path.lstrip("/").encode("utf-8").split(b"/"))
        request.method = method
        request.uri = path.encode("utf-8")
        request.client = IPv4Address("TCP", "192.0.2.7", 50000)
        request.getClientAddress = lambda: request.client
        request.args = {}
        for pair in filter(None, query.split("&")):
            key, _, value = pair.partition("=")
            request.args[key.encode()] = [value.encode()]
        request.content = io.BytesIO(body if isinstance(body, bytes) or body is None
                                     else json.dumps(body).encode())
        if token is not None:
            request.requestHeaders.addRawHeader(b"authorization", b"Bearer " + token.encode())
        if cookie is not None:
            request.requestHeaders.addRawHeader(b"cookie", COOKIE + b"=" + cookie.encode())
        for name, value in headers:
            request.requestHeaders.addRawHeader(name, value)
        result = resource.getChildForRequest(self.root, request).render(request)
        self.assertEqual(result, server.NOT_DONE_YET)
        self.assertTrue(request.finished, "the answer did not finish")
        data = b"".join(request.written)
        # DummyRequest.setHeader adds a value where a real request replaces it.
        contentType = request.responseHeaders.getRawHeaders(b"content-type", [b""])[-1]
        parsed = json.loads(data) if contentType.startswith(b"application/json") and data else data
        return request.responseCode or 200, request.responseHeaders, parsed

    def login(self, address, admin=False):
        """A console session of C{address}: its cookie and CSRF token."""
        session = self.root.auth.sessions.create(Principal(address, admin))
        return session.id, session.csrf


class AuthenticationTests(APIMixin, unittest.TestCase):
    """Tokens, console cookies and the CSRF header."""

    def test_token(self):
        """A bearer token acts as its user, admin flag read from the directory."""
        status, _, me = self.request("/api/v1/me", token=self.token("root@lab.test"))
        self.assertEqual((status, me), (200, {"address": "root@lab.test", "admin": True}))

    def test_noCredentials(self):
        """No token and no login: 401 with WWW-Authenticate: Bearer."""
        status, headers, body = self.request("/api/v1/me")
        self.assertEqual((status, body["error"]["status"]), (401, 401))
        self.assertEqual(headers.getRawHeaders(b"www-authenticate"), [b'Bearer realm="mailstack"'])

    def test_wrongTokenPenalised(self):
        """Wrong tokens count in the shared penalty; past its limit the next check waits."""
        for _ in range(5):
            status, _, _ = self.request("/api/v1/me", token="mst_wrong")
            self.assertEqual(status, 401)
        self.assertEqual(self.penalty.failures("192.0.2.7"), 5)
        good = self.token("alice@lab.test")
        request = DummyRequest([b"api", b"v1", b"me"])
        request.getClientAddress = lambda: IPv4Address("TCP", "192.0.2.7", 1)
        request.requestHeaders.addRawHeader(b"authorization", b"Bearer " + good.encode())
        resource.getChildForRequest(self.root, request).render(request)
        self.assertFalse(request.finished, "a penalised address's check must wait")
        self.reactor.advance(2)
        self.assertTrue(request.finished)
        self.assertEqual(self.penalty.failures("192.0.2.7"), 0)

    def test_otherScheme(self):
        """An Authorization header that is not Bearer is 401."""
        status, _, body = self.request("/api/v1/me", headers=[(b"authorization", b"Basic eDp5")])
        self.assertEqual(status, 401)

    def test_cookieWritesNeedCSRF(self):
        """A console login reads freely; its writes need X-CSRF-Token, a token's do not."""
        cookie, csrf = self.login("alice@lab.test")
        status, _, me = self.request("/api/v1/me", cookie=cookie)
        self.assertEqual((status, me["csrf"]), (200, csrf))
        status, _, _ = self.request("/api/v1/tokens", b"POST", cookie=cookie, body={})
        self.assertEqual(status, 403)
        status, _, _ = self.request("/api/v1/tokens", b"POST", cookie=cookie, body={},
                                    headers=[(b"x-csrf-token", b"wrong")])
        self.assertEqual(status, 403)
        status, _, made = self.request("/api/v1/tokens", b"POST", cookie=cookie, body={},
                                       headers=[(b"x-csrf-token", csrf.encode())])
        self.assertEqual((status, made["address"]), (201, "alice@lab.test"))
        status, _, _ = self.request("/api/v1/tokens", b"POST", token=made["token"], body={})
        self.assertEqual(status, 201)


class RoutingTests(APIMixin, unittest.TestCase):
    """Paths, methods, bodies and errors as JSON."""

    def test_mounted(self):
        """The console's root serves every path under /api/ by the API's resource, with api.ROUTES."""
        for path in (b"api", b"api/v1", b"api/v1/accounts/a@b/mailboxes/x/messages/1/raw"):
            found = resource.getChildForRequest(self.root, DummyRequest(path.split(b"/")))
            self.assertIsInstance(found, api.APIResource)
            self.assertIs(found.routes, api.ROUTES)

    def test_unknownPath(self):
        """A path that is no route is 404 JSON (before any login is asked)."""
        status, _, body = self.request("/api/v2/me")
        self.assertEqual(body, {"error": {"status": 404, "message": "no such API path"}})

    def test_wrongMethod(self):
        """A route asked with another method is 405 with Allow."""
        status, headers, _ = self.request("/api/v1/tokens", b"PATCH")
        self.assertEqual((status, headers.getRawHeaders(b"allow")), (405, [b"GET, POST"]))

    def test_trailingSlash(self):
        """A trailing slash names the same route."""
        status, _, _ = self.request("/api/v1/me/", token=self.token("alice@lab.test"))
        self.assertEqual(status, 200)

    def test_badBodies(self):
        """A body that is not a JSON object is 400; one over 64 KiB is 413."""
        token = self.token("alice@lab.test")
        for body in (b"[1]", b"\xff", b"{"):
            status, _, _ = self.request("/api/v1/tokens", b"POST", token=token, body=body)
            self.assertEqual(status, 400, body)
        status, _, _ = self.request("/api/v1/tokens", b"POST", token=token,
                                    body=b" " * (api.MAX_BODY + 1))
        self.assertEqual(status, 413)

    def test_headers(self):
        """Answers are JSON, never cached, never sniffed."""
        _, headers, _ = self.request("/api/v1/me", token=self.token("alice@lab.test"))
        self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"no-store"])
        self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])


class RightsTests(APIMixin, unittest.TestCase):
    """Who may see and change what."""

    def test_accounts(self):
        """An admin lists every account; a student only herself; neither sees a hash."""
        status, _, body = self.request("/api/v1/accounts", token=self.token("root@lab.test"))
        self.assertEqual([a["address"] for a in body["accounts"]],
                         ["alice@lab.test", "bob@lab.test", "root@lab.test"])
        status, _, body = self.request("/api/v1/accounts", token=self.token("alice@lab.test"))
        self.assertEqual(body, {"accounts": [{"address": "alice@lab.test", "admin": False}]})

    def test_adminAddsAndResets(self):
        """An admin adds an account and resets a password; a student may do neither."""
        admin, student = self.token("root@lab.test"), self.token("alice@lab.test")
        new = {"address": "carol@lab.test", "password": "tulip-42"}
        status, _, _ = self.request("/api/v1/accounts", b"POST", token=student, body=new)
        self.assertEqual(status, 403)
        status, headers, body = self.request("/api/v1/accounts", b"POST", token=admin, body=new)
        self.assertEqual((status, body), (201, {"address": "carol@lab.test", "admin": False}))
        self.assertTrue(self.users.verifyPassword("carol@lab.test", "tulip-42"))
        status, _, _ = self.request("/api/v1/accounts", b"POST", token=admin, body=new)
        self.assertEqual(status, 409)
        path = "/api/v1/accounts/alice@lab.test/password"
        status, _, _ = self.request(path, b"PUT", token=student, body={"password": "x"})
        self.assertEqual(status, 403)
        status, _, _ = self.request(path, b"PUT", token=admin, body={"password": "new-pw"})
        self.assertEqual(status, 204)
        self.assertTrue(self.users.verifyPassword("alice@lab.test", "new-pw"))

    def test_submissions(self):
        """A student finds her own submissions by recipient, subject and TLS; not another's."""
        record = dict(time=1700000000.5, queueID="A1", protocol="submission", port=3587,
                      client="127.0.0.1", helo="h", tls="starttls", tlsVersion="TLSv1.3",
                      tlsCipher="X", authenticated="alice@lab.test", sender="alice@lab.test",
                      recipients=("bob@lab.test",), subject="Lab 3", messageID=None, size=5)
        self.submissions.record(Submission(**record))
        self.submissions.record(Submission(**dict(record, queueID="B2", tls="none")))
        self.submissions.record(Submission(**dict(record, queueID="C3", sender="bob@lab.test",
                                                  authenticated="bob@lab.test")))
        alice = self.token("alice@lab.test")
        status, _, body = self.request(
            "/api/v1/accounts/alice@lab.test/submissions?to=BOB@lab.test&subject=lab&tls=starttls",
            token=alice)
        self.assertEqual([s["queueID"] for s in body["submissions"]], ["A1"])
        self.assertEqual(body["submissions"][0]["time"], "2023-11-14T22:13:20.500Z")
        status, _, body = self.request("/api/v1/accounts/alice/submissions", token=alice)
        self.assertEqual([s["queueID"] for s in body["submissions"]], ["B2", "A1"])
        status, _, _ = self.request("/api/v1/accounts/bob@lab.test/submissions", token=alice)
        self.assertEqual(status, 403)
        self.submissions.record(Submission(**dict(record, queueID="D4", authenticated=None)))
        status, _, body = self.request(
            "/api/v1/accounts/alice@lab.test/submissions?authenticated=true", token=alice)
        self.assertEqual([s["queueID"] for s in body["submissions"]], ["B2", "A1"])
        status, _, body = self.request(
            "/api/v1/accounts/alice@lab.test/submissions?authenticated=false", token=alice)
        self.assertEqual([s["queueID"] for s in body["submissions"]], ["D4"])
        status, _, _ = self.request(
            "/api/v1/accounts/alice@lab.test/submissions?authenticated=yes", token=alice)
        self.assertEqual(status, 400)
        status, _, body = self.request("/api/v1/submissions?sender=bob@lab.test",
                                       token=self.token("root@lab.test"))
        self.assertEqual([s["queueID"] for s in body["submissions"]], ["C3"])

    def test_noSubmissionLog(self):
        """Without a submission log the route says so with 503."""
        self.context.submissions = None
        status, _, body = self.request("/api/v1/accounts/alice@lab.test/submissions",
                                       token=self.token("alice@lab.test"))
        self.assertEqual((status, body["error"]["message"]),
                         (503, "this server keeps no submission log"))

    def test_tokensOwn(self):
        """A student lists and revokes only her own tokens; an admin may revoke anyone's."""
        alice = self.token("alice@lab.test")
        bobToken, _ = self.tokens.create("bob@lab.test", "b")
        status, _, body = self.request("/api/v1/tokens", token=alice)
        self.assertEqual({t["address"] for t in body["tokens"]}, {"alice@lab.test"})
        status, _, _ = self.request("/api/v1/tokens/" + bobToken.id, b"DELETE", token=alice)
        self.assertEqual(status, 404)
        status, _, _ = self.request("/api/v1/tokens/" + bobToken.id, b"DELETE",
                                    token=self.token("root@lab.test"))
        self.assertEqual(status, 204)

    def test_status(self):
        """Status names the host and says which lab parts run."""
        status, _, body = self.request("/api/v1/status", token=self.token("alice@lab.test"))
        self.assertEqual((body["hostname"], body["capture"], body["transcripts"]),
                         ("mail.lab.test", False, False))


class SessionShapingTests(unittest.TestCase):
    """What the API makes of a transcript's lines."""

    def lines(self, *pairs):
        from mailstack.transcripthub import Line
        return [Line(n, 0.0, kind, text) for n, (kind, text) in enumerate(pairs)]

    def test_commandsWithoutMessage(self):
        """The client's commands, without the message lines DATA sent."""
        lines = self.lines(("S", "220 hi"), ("C", "EHLO x"), ("S", "250 ok"), ("C", "DATA"),
                           ("S", "354 go"), ("C", "Subject: s"), ("C", ""), ("C", "QUIT"),
                           ("C", "."), ("S", "250 queued as AB"), ("C", "QUIT"))
        self.assertEqual(api.sessionCommands(lines), ["EHLO x", "DATA", "QUIT"])

    def test_tls(self):
        """TLS as the transcript's notes tell it: STARTTLS, implicit, or none."""
        self.assertEqual(api.sessionTLS(self.lines(("#", "TLS started"), ("#", "TLS: TLSv1.3"))),
                         "starttls")
        self.assertEqual(api.sessionTLS(self.lines(("#", "TLS (implicit)"))), "implicit")
        self.assertEqual(api.sessionTLS(self.lines(("C", "TLS started"))), "none")


class MailTests(APIMixin, unittest.TestCase):
    """A student's mailboxes and messages."""

    def setUp(self):
        APIMixin.setUp(self)
        for n in (1, 2, 3):
            self.successResultOf(self.context.store.deliver(
                ["alice@lab.test"], b"Subject: message %d\r\n\r\nbody %d\r\n" % (n, n)))
        self.alice = self.token("alice@lab.test")

    def test_paging(self):
        """Messages come newest first, limit and offset page through them."""
        status, _, page = self.request(
            "/api/v1/accounts/alice@lab.test/mailboxes/INBOX/messages?limit=1&offset=1",
            token=self.alice)
        self.assertEqual((status, page["total"], [m["subject"] for m in page["messages"]]),
                         (200, 3, ["message 2"]))

    def test_messageAndRaw(self):
        """One message as JSON (its text part) and as its source; nothing marked \\Seen."""
        path = "/api/v1/accounts/alice@lab.test/mailboxes/INBOX/messages/1"
        status, _, message = self.request(path, token=self.alice)
        self.assertEqual((message["subject"], message["parts"][0]["text"]),
                         ("message 1", "body 1\r\n"))
        status, headers, raw = self.request(path + "/raw", token=self.alice)
        self.assertEqual((status, raw), (200, b"Subject: message 1\r\n\r\nbody 1\r\n"))
        status, _, boxes = self.request("/api/v1/accounts/alice@lab.test/mailboxes",
                                        token=self.alice)
        self.assertEqual([(b["name"], b["messages"], b["unseen"]) for b in boxes["mailboxes"]],
                         [("INBOX", 3, 3)])

    def test_missing(self):
        """An unknown mailbox or UID is 404; a UID that is no number 400."""
        base = "/api/v1/accounts/alice@lab.test/mailboxes/"
        for path, code in (("Nope/messages", 404), ("INBOX/messages/9", 404),
                           ("INBOX/messages/x", 400), ("INBOX/messages/9/raw", 404)):
            status, _, _ = self.request(base + path, token=self.alice)
            self.assertEqual(status, code, path)


class UnavailableTests(APIMixin, unittest.TestCase):
    """A store or user directory gone away is 503, not 500."""

    def test_directory(self):
        """The user directory failing while a token's user is looked up: 503 with Retry-After."""
        token = self.token("alice@lab.test")

        def lookup(name):
            return defer.fail(UserDirectoryUnavailable("database is locked"))
        self.context.directory.lookup = lookup
        status, headers, body = self.request("/api/v1/me", token=token)
        self.assertEqual((status, headers.getRawHeaders(b"retry-after")), (503, [b"5"]))

    def test_store(self):
        """The store failing to open a mailbox: 503."""
        token = self.token("alice@lab.test")
        store = self.context.store

        class Account:
            def __init__(self, account):
                self.account = account

            def __getattr__(self, name):
                return getattr(self.account, name)

            def openMailbox(self, name):
                return defer.fail(StoreUnavailable("the database went away"))
        self.context.store = type("Store", (), {"account": lambda _, a: Account(store.account(a))})()
        status, _, body = self.request("/api/v1/accounts/alice@lab.test/mailboxes/INBOX/messages",
                                       token=token)
        self.assertEqual((status, body["error"]["status"]), (503, 503))
