"""
C{/metrics} and C{/healthz} (L{mailstack.web.metrics}), rendered with
twisted.web's DummyRequest: who may scrape, what a scrape answers, and when
the server says it is healthy.
"""

import json
import types

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.trial import unittest
from twisted.web import resource
from twisted.web.test.requesthelper import DummyRequest

from mailstack.auth.directory import UserDirectory
from mailstack.auth.userdb import PasswdFile
from mailstack.config import loadConfig
from mailstack.metrics import PrometheusMetrics
from mailstack.storage.interfaces import StoreUnavailable
from mailstack.storage.memory import MemoryStore
from mailstack.throttle import AuthPenalty
from mailstack.web.app import buildRoot
from mailstack.web.context import WebContext
from mailstack.web.metrics import HealthResource, metricsResources
from mailstack.web.tokens import TokenStore
from tests.fakes import FakeReactor
from tests.helpers import BASE_CONFIG, writeConfig

WEB = '\n[web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'


def listener(name, port=1):
    """A bound (or, with C{port=None}, unbound) mail listener as service.py lists it."""
    return types.SimpleNamespace(listener=types.SimpleNamespace(name=name), port=port,
                                 running=True)


class WebMetricsMixin:
    """
    A web context over a memory store with one admin (root) and one student
    (alice), an API token each, and two bound listeners.
    """

    def setUp(self):
        self.reactor = FakeReactor()
        self.config = loadConfig(writeConfig(self, BASE_CONFIG, WEB))
        self.users = PasswdFile(self.mktemp(), "lab.test")
        for name in ("root", "alice"):
            self.users.addUser(name + "@lab.test", "pw", "PLAIN")
        self.users.setAdmin("root@lab.test", True)
        self.tokens = TokenStore(self.mktemp())
        self.rootToken = self.tokens.create("root@lab.test")[1]
        self.aliceToken = self.tokens.create("alice@lab.test")[1]
        self.store = MemoryStore(self.reactor)
        self.penalty = AuthPenalty(self.reactor, delayAfter=1, delaySeconds=2.0)
        self.metrics = PrometheusMetrics()
        self.metrics.forListener("smtp", "smtp").command("EHLO")
        self.context = WebContext(
            config=self.config, store=self.store,
            directory=UserDirectory(self.users, self.reactor), users=self.users,
            authPenalty=self.penalty, reactor=self.reactor, metrics=self.metrics,
            listeners=[listener("smtp"), listener("imap")])
        self.context.tokens = self.tokens
        self.resources = metricsResources(self.context)

    def get(self, name, client=("192.0.2.7",), token=None, accept=None):
        """
        GET /C{name} from C{client} (an IP, or L{None}: a UNIX socket).

        @return: the DummyRequest, finished or not.
        """
        request = DummyRequest([name])
        if client is not None:
            host = client[0]
            kind = IPv6Address if ":" in host else IPv4Address
            request.client = kind("TCP", host, 50000)
        if token is not None:
            request.requestHeaders.addRawHeader(b"authorization", b"Bearer " + token.encode())
        if accept is not None:
            request.requestHeaders.addRawHeader(b"accept", accept)
        result = self.resources[name].render(request)
        if isinstance(result, bytes):
            request.write(result)
            request.finish()
        return request

    def body(self, request):
        return b"".join(request.written)


class MetricsResourceTests(WebMetricsMixin, unittest.TestCase):
    """
    Who may read /metrics, and what it answers.
    """

    def test_loopbackWithoutLogin(self):
        """A scraper on 127.0.0.1 or ::1 gets the Prometheus text format without any login."""
        for host in ("127.0.0.1", "::1"):
            request = self.get(b"metrics", (host,))
            self.assertEqual(request.responseCode or 200, 200)
            self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"),
                             [b"text/plain; version=0.0.4; charset=utf-8"])
            self.assertIn(b'mailstack_commands_total{command="EHLO",listener="smtp",'
                          b'protocol="smtp"} 1.0', self.body(request))

    def test_unixSocketWithoutLogin(self):
        """A client on the console's UNIX socket (no IP) is local too."""
        self.assertIn(b"mailstack_commands_total", self.body(self.get(b"metrics", None)))

    def test_openMetrics(self):
        """A scraper that asks for OpenMetrics gets that format."""
        request = self.get(b"metrics", ("127.0.0.1",),
                           accept=b"application/openmetrics-text; version=1.0.0")
        [contentType] = request.responseHeaders.getRawHeaders(b"content-type")
        self.assertTrue(contentType.startswith(b"application/openmetrics-text"), contentType)

    def test_remoteNeedsToken(self):
        """From another address, no token is 401 with a Bearer challenge, and no metrics."""
        request = self.get(b"metrics")
        self.assertEqual(request.responseCode, 401)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"www-authenticate"),
                         [b'Bearer realm="mailstack"'])
        self.assertNotIn(b"mailstack_", self.body(request))

    def test_remoteAdminToken(self):
        """From another address, an admin's API token gets the metrics."""
        request = self.get(b"metrics", token=self.rootToken)
        self.assertEqual(request.finished, 1)
        self.assertIn(b"mailstack_commands_total", self.body(request))

    def test_remoteStudentToken(self):
        """A student's token is refused 403: metrics are for admins."""
        request = self.get(b"metrics", token=self.aliceToken)
        self.assertEqual((request.finished, request.responseCode), (1, 403))
        self.assertNotIn(b"mailstack_", self.body(request))

    def test_wrongTokenPenalised(self):
        """A wrong token is refused and counts against the address: the next try waits."""
        request = self.get(b"metrics", token="mst_0123456789abcdef_" + "x" * 43)
        self.assertEqual((request.finished, request.responseCode), (1, 403))
        self.assertGreater(self.penalty.delayFor("192.0.2.7"), 0)
        waiting = self.get(b"metrics", token=self.rootToken)
        self.assertEqual(waiting.finished, 0)
        self.reactor.advance(self.penalty.delayFor("192.0.2.7") + 0.1)
        self.assertEqual(waiting.finished, 1)
        self.assertIn(b"mailstack_commands_total", self.body(waiting))

    def test_noMetricsNoResource(self):
        """A context without metrics mounts only /healthz."""
        self.context.metrics = None
        self.assertEqual(sorted(metricsResources(self.context)), [b"healthz"])

    def test_mountedByTheConsole(self):
        """The console's root serves /metrics and /healthz from this module."""
        root = buildRoot(self.context)
        for name in (b"metrics", b"healthz"):
            request = DummyRequest([name])
            child = resource.getChildForRequest(root, request)
            self.assertIsInstance(child, type(self.resources[name]))


class HealthTests(WebMetricsMixin, unittest.TestCase):
    """
    /healthz: 200 when the listeners are bound and the store answers, else 503.
    """

    def report(self, request):
        self.assertEqual(request.finished, 1)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"),
                         [b"application/json"])
        return json.loads(self.body(request))

    def test_healthy(self):
        """Everything up: 200 and status ok, each listener up, the store ok."""
        request = self.get(b"healthz")
        self.assertEqual(request.responseCode or 200, 200)
        self.assertEqual(self.report(request), {
            "status": "ok", "listeners": {"smtp": "up", "imap": "up"}, "store": "ok"})

    def test_storeFails(self):
        """A store that cannot open a mailbox: 503 naming the store's error; healthy again once it answers."""
        account = self.store.account("postmaster@lab.test")
        real = account.openMailbox
        account.openMailbox = lambda name: defer.fail(StoreUnavailable("database gone"))
        request = self.get(b"healthz")
        self.assertEqual(request.responseCode, 503)
        report = self.report(request)
        self.assertEqual((report["status"], report["store"]),
                         ("unavailable", "error: database gone"))
        account.openMailbox = real
        self.assertEqual(self.report(self.get(b"healthz"))["status"], "ok")

    def test_storeSilent(self):
        """A store that does not answer within the timeout: 503 once it has passed."""
        account = self.store.account("postmaster@lab.test")
        account.openMailbox = lambda name: defer.Deferred()
        request = self.get(b"healthz")
        self.assertEqual(request.finished, 0)
        self.reactor.advance(HealthResource(self.context).timeout)
        self.assertEqual(request.responseCode, 503)
        self.assertIn("no answer", self.report(request)["store"])

    def test_listenerDown(self):
        """A mail listener not bound: 503 with that listener down."""
        self.context.listeners.append(listener("pop3", port=None))
        request = self.get(b"healthz")
        self.assertEqual(request.responseCode, 503)
        self.assertEqual(self.report(request)["listeners"]["pop3"], "down")

    def test_workers(self):
        """With [server] workers, the report says how many processes run, and a worker down leaves it ok."""
        class Supervisor:
            count = 3

            def processes(self):
                return 2
        self.context.workers = Supervisor()
        request = self.get(b"healthz")
        self.assertEqual(request.responseCode or 200, 200)
        report = self.report(request)
        self.assertEqual((report["status"], report["workers"]),
                         ("ok", {"configured": 3, "running": 2}))

    def test_clientGone(self):
        """A client that leaves before the store answers gets nothing written (no error)."""
        account = self.store.account("postmaster@lab.test")
        pending = defer.Deferred()
        account.openMailbox = lambda name: pending
        request = self.get(b"healthz")
        request.processingFailed(Exception("connection lost"))
        pending.callback(self.successResultOf(self.store.account("alice@lab.test")
                                              .openMailbox("INBOX")))
        self.assertEqual(request.written, [])
