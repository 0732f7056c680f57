"""
The server's metrics (L{mailstack.metrics}) move where the engines, the
session core, the connection limits and the SMTP policy call their hooks
(L{mailstack.instruments}), and each server keeps its own.
"""

import io

from OpenSSL import SSL
from prometheus_client import REGISTRY
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.test.proto_helpers import StringTransport
from twisted.trial import unittest

from mailstack import instruments
from mailstack.metrics import PrometheusMetrics, exposition
from mailstack.sessions import LimitingFactory, SessionCounter
from mailstack.smtp.delivery import SMTPPolicy
from mailstack.smtp.server import Envelope
from tests.fakes import FakeUsers
from tests.test_imap_server import IMAPTestMixin
from tests.test_pop3_server import POP3TestMixin
from tests.test_smtp_server import SMTPTestMixin


def value(metrics, name, **labels):
    """A sample's value in C{metrics}' registry (0 when it was never set)."""
    found = metrics.registry.get_sample_value(name, labels)
    return 0 if found is None else found


class RegistryTests(unittest.TestCase):
    """
    Each L{PrometheusMetrics} has a registry of its own.
    """

    def test_isolated(self):
        """Counting in one server's metrics leaves another's, and the library's global registry, at zero."""
        one, two = PrometheusMetrics(), PrometheusMetrics()
        one.forListener("imap", "imap").command("LOGIN")
        one.delivered(instruments.LOCAL, 2, 100)
        self.assertEqual(value(one, "mailstack_commands_total", listener="imap",
                               protocol="imap", command="LOGIN"), 1)
        self.assertEqual(value(two, "mailstack_commands_total", listener="imap",
                               protocol="imap", command="LOGIN"), 0)
        self.assertEqual(value(two, "mailstack_delivered_messages_total", destination="local"), 0)
        self.assertIsNone(REGISTRY.get_sample_value(
            "mailstack_delivered_messages_total", {"destination": "local"}))

    def test_listenerSeriesStartAtZero(self):
        """A listener shows in a scrape (sessions open, errors at 0) before any client came."""
        metrics = PrometheusMetrics()
        self.assertIs(metrics.forListener("imaps", "imap"), metrics.forListener("imaps", "imap"))
        body, contentType = exposition(metrics)
        self.assertTrue(contentType.startswith("text/plain; version=0.0.4"), contentType)
        self.assertIn(b'mailstack_sessions_open{listener="imaps",protocol="imap"} 0.0', body)
        self.assertIn(b'mailstack_errors_total{kind="storage",listener="imaps",protocol="imap"} 0.0',
                      body)

    def test_openMetricsWhenAsked(self):
        """A scraper asking for OpenMetrics gets it (with its # EOF)."""
        body, contentType = exposition(PrometheusMetrics(),
                                       "application/openmetrics-text; version=1.0.0")
        self.assertTrue(contentType.startswith("application/openmetrics-text"), contentType)
        self.assertTrue(body.endswith(b"# EOF\n"))

    def test_queueLengthAtScrapeTime(self):
        """A watched queue's length is asked when the metrics are read, not remembered."""
        metrics = PrometheusMetrics()
        queue = ["a", "b"]
        metrics.watchQueue("relay", queue.__len__)
        self.assertEqual(value(metrics, "mailstack_queue_messages", queue="relay"), 2)
        queue.append("c")
        self.assertEqual(value(metrics, "mailstack_queue_messages", queue="relay"), 3)

    def test_noMetricsCountsNothing(self):
        """The default hooks accept every call and keep nothing."""
        listener = instruments.NO_METRICS.forListener("smtp", "smtp")
        self.assertIs(listener, instruments.NO_LISTENER_METRICS)
        for call in (listener.connectionAccepted, listener.sessionOpened, listener.sessionClosed):
            self.assertIsNone(call())
        self.assertIsNone(listener.command(None))
        self.assertIsNone(instruments.NO_METRICS.delivered(instruments.LOCAL, 1, 1))


class Echo(Protocol):
    pass


class ConnectionTests(unittest.TestCase):
    """
    L{LimitingFactory} reports connections, sessions and TLS handshakes.
    """

    def setUp(self):
        self.metrics = PrometheusMetrics()
        self.counter = SessionCounter()

    def factory(self, name="imaps", implicitTLS=False, **kwargs):
        return LimitingFactory(Factory.forProtocol(Echo), self.counter, "imap", 1,
                               b"* BYE busy\r\n", metrics=self.metrics.forListener(name, "imap"),
                               implicitTLS=implicitTLS, **kwargs)

    def connect(self, factory, host="192.0.2.1"):
        address = IPv4Address("TCP", host, 40000)
        protocol = factory.buildProtocol(address)
        protocol.makeConnection(StringTransport(peerAddress=address))
        return protocol

    def count(self, name, listener="imaps", **labels):
        return value(self.metrics, name, listener=listener, protocol="imap", **labels)

    def test_acceptedRefusedOpen(self):
        """A session counts accepted and open until it ends; one over the per-IP limit counts refused."""
        factory = self.factory()
        first = self.connect(factory)
        self.connect(factory)  # the same address again: over the limit of 1
        self.assertEqual(self.count("mailstack_connections_accepted_total"), 1)
        self.assertEqual(self.count("mailstack_connections_refused_total", reason="per_ip"), 1)
        self.assertEqual(self.count("mailstack_sessions_open"), 1)
        first.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.count("mailstack_sessions_open"), 0)

    def test_refusedOverMaxConnections(self):
        """A client over the listener's max_connections counts refused with that reason."""
        factory = self.factory(maxConnections=1)
        self.connect(factory, "192.0.2.1")
        self.connect(factory, "192.0.2.2")
        self.assertEqual(self.count("mailstack_connections_refused_total",
                                    reason="max_connections"), 1)

    def test_implicitHandshake(self):
        """On an implicit-TLS listener a completed handshake counts once, as implicit."""
        protocol = self.connect(self.factory(implicitTLS=True))
        protocol.handshakeCompleted()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.count("mailstack_tls_handshakes_total", mode="implicit",
                                    result="success"), 1)
        self.assertEqual(self.count("mailstack_tls_handshakes_total", mode="implicit",
                                    result="failure"), 0)

    def test_startTLSHandshakeFails(self):
        """STARTTLS then a TLS error before the handshake ends counts one failed STARTTLS handshake."""
        protocol = self.connect(self.factory())
        protocol.transport.startTLS = lambda *args: None
        protocol.startTLS(object())
        protocol.connectionLost(Failure(SSL.Error([("SSL routines", "", "bad record")])))
        self.assertEqual(self.count("mailstack_tls_handshakes_total", mode="starttls",
                                    result="failure"), 1)
        self.assertEqual(self.count("mailstack_tls_handshakes_total", mode="starttls",
                                    result="success"), 0)

    def test_plainSessionNoHandshake(self):
        """A session without TLS that ends counts no handshake at all."""
        protocol = self.connect(self.factory())
        protocol.connectionLost(Failure(SSL.Error([])))
        self.assertEqual(self.count("mailstack_tls_handshakes_total", mode="starttls",
                                    result="failure"), 0)


class SMTPSessionTests(SMTPTestMixin, unittest.TestCase):
    """
    An SMTP session's commands and logins, counted.
    """

    def setUp(self):
        self.metrics = PrometheusMetrics()
        self.settings = dict(self.settings, allowPlaintextAuth=True,
                             metrics=self.metrics.forListener("submission", "submission"))
        SMTPTestMixin.setUp(self)

    def count(self, name, **labels):
        return value(self.metrics, name, listener="submission", protocol="submission", **labels)

    def test_commands(self):
        """Known verbs are counted by name; anything else as 'other'."""
        self.ehlo()
        self.send(b"NOOP\r\nnoop\r\nXYZZY\r\nMAIL1 FROM:<a@b>\r\n")
        self.assertEqual(self.count("mailstack_commands_total", command="EHLO"), 1)
        self.assertEqual(self.count("mailstack_commands_total", command="NOOP"), 2)
        self.assertEqual(self.count("mailstack_commands_total", command="other"), 2)
        self.assertEqual(self.count("mailstack_commands_total", command="XYZZY"), 0)

    def test_authFailureAndSuccess(self):
        """A refused AUTH PLAIN counts a failure, the right password a success."""
        self.ehlo()
        self.assertTrue(self.send(b"AUTH PLAIN AGFsaWNlQGxhYi50ZXN0AHdyb25n\r\n")
                        .startswith(b"535"))
        self.assertEqual(self.count("mailstack_auth_attempts_total", mechanism="PLAIN",
                                    result="failure"), 1)
        self.assertTrue(self.send(b"AUTH PLAIN AGFsaWNlQGxhYi50ZXN0AHNlY3JldA==\r\n")
                        .startswith(b"235"))
        self.assertEqual(self.count("mailstack_auth_attempts_total", mechanism="PLAIN",
                                    result="success"), 1)

    def test_internalError(self):
        """A handler that raises counts an internal error."""
        self.server.do_NOOP = lambda argument: 1 / 0
        self.assertTrue(self.send(b"NOOP\r\n").startswith(b"451"))
        self.flushLoggedErrors(ZeroDivisionError)
        self.assertEqual(self.count("mailstack_errors_total", kind="internal"), 1)


class SMTPDeliveryTests(SMTPTestMixin, unittest.TestCase):
    """
    A message an SMTP session delivers to the store is counted, with its size.
    """

    def setUp(self):
        from mailstack.storage.memory import MemoryStore
        self.metrics = PrometheusMetrics()
        self.settings = dict(self.settings, metrics=self.metrics.forListener("smtp", "smtp"))
        SMTPTestMixin.setUp(self)
        self.store = MemoryStore()
        self.server.policy = SMTPPolicy(["lab.test"], FakeUsers("demo@lab.test", "kim@lab.test"),
                                        self.store, metrics=self.metrics)

    def test_deliveredWithBytes(self):
        """One message for two local users: one local message, two recipients, its stored size."""
        self.ehlo()
        self.send(b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<demo@lab.test>\r\n"
                  b"RCPT TO:<kim@lab.test>\r\n")
        self.assertTrue(self.send(b"DATA\r\n").startswith(b"354"))
        reply = self.send(b"Subject: hi\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(reply.startswith(b"250 "), reply)
        inbox = self.successResultOf(self.store.account("demo@lab.test").openMailbox("INBOX"))
        self.successResultOf(inbox.sync(claimRecent=False))
        [info] = inbox.messages()
        self.assertEqual(value(self.metrics, "mailstack_delivered_messages_total",
                               destination="local"), 1)
        self.assertEqual(value(self.metrics, "mailstack_delivered_recipients_total",
                               destination="local"), 2)
        self.assertEqual(value(self.metrics, "mailstack_delivered_bytes_total",
                               destination="local"), info.size)
        self.assertEqual(value(self.metrics, "mailstack_commands_total", listener="smtp",
                               protocol="smtp", command="DATA"), 1)

    def test_storageFailureNotDelivered(self):
        """A delivery the store refuses counts a storage error and nothing delivered."""
        from twisted.internet import defer
        from mailstack.storage.interfaces import StoreUnavailable
        self.store.deliver = lambda *a, **kw: defer.fail(StoreUnavailable("gone"))
        self.ehlo()
        self.send(b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<demo@lab.test>\r\nDATA\r\n")
        self.assertTrue(self.send(b"body\r\n.\r\n").startswith(b"451"))
        self.assertEqual(value(self.metrics, "mailstack_errors_total", listener="smtp",
                               protocol="smtp", kind="storage"), 1)
        self.assertEqual(value(self.metrics, "mailstack_delivered_messages_total",
                               destination="local"), 0)


class RelayedDeliveryTests(unittest.TestCase):
    """
    SMTPPolicy counts relayed recipients apart from local ones.
    """

    def test_localAndRelayed(self):
        """A message for a local user and a relayed one counts once in each, sizes as stored."""
        from twisted.internet import defer
        from mailstack.storage.memory import MemoryStore

        class Queue:
            def __init__(self):
                self.sizes = []

            def enqueue(self, sender, recipients, stream):
                self.sizes.append(len(stream.read()))
                return defer.succeed(None)
        metrics = PrometheusMetrics()
        queue = Queue()
        policy = SMTPPolicy(["lab.test"], FakeUsers("demo@lab.test"), MemoryStore(), queue,
                            metrics=metrics)
        envelope = Envelope("demo@lab.test", {})
        envelope.recipients = [("demo@lab.test", "local"), ("x@example.com", "relay"),
                               ("y@example.com", "relay")]
        self.assertIsNone(self.successResultOf(
            policy.deliver(envelope, b"Received: x\r\n", io.BytesIO(b"body\r\n"), "ID")))
        self.assertEqual(value(metrics, "mailstack_delivered_recipients_total",
                               destination="relayed"), 2)
        self.assertEqual(value(metrics, "mailstack_delivered_bytes_total",
                               destination="relayed"), queue.sizes[0])
        self.assertEqual(value(metrics, "mailstack_delivered_bytes_total", destination="local"),
                         len(b"Return-Path: <demo@lab.test>\r\n") + queue.sizes[0])


class DeliveredCountTests(unittest.TestCase):
    """The delivered counters, called directly."""

    def test_repeatedAndMixed(self):
        """Messages to several destinations, one after another, each add to their own series."""
        metrics = PrometheusMetrics()
        metrics.delivered("local", 2, 100)
        metrics.delivered("relayed", 1, 50)
        metrics.delivered("local", 1, 10)
        self.assertEqual([value(metrics, "mailstack_delivered_%s_total" % (name,),
                                destination="local")
                          for name in ("messages", "recipients", "bytes")], [2, 3, 110])
        self.assertEqual([value(metrics, "mailstack_delivered_%s_total" % (name,),
                                destination="relayed")
                          for name in ("messages", "recipients", "bytes")], [1, 1, 50])


class IMAPSessionTests(IMAPTestMixin, unittest.TestCase):
    """
    An IMAP session's commands, logins and storage errors, counted.
    """

    storeName = "memory"

    def setUp(self):
        self.metrics = PrometheusMetrics()
        # No failure delay within a session: the second login answers at once.
        self.settings = dict(self.settings, authFailuresDelay=5,
                             metrics=self.metrics.forListener("imap", "imap"))
        IMAPTestMixin.setUp(self)

    def count(self, name, **labels):
        return value(self.metrics, name, listener="imap", protocol="imap", **labels)

    def test_loginFailureCounted(self):
        """A wrong LOGIN counts a failure of mechanism 'login'; AUTHENTICATE PLAIN counts as PLAIN."""
        self.assertTrue(self.send(b"a LOGIN alice@lab.test wrong\r\n")
                        .startswith(b"a NO [AUTHENTICATIONFAILED]"))
        self.assertEqual(self.count("mailstack_auth_attempts_total", mechanism="login",
                                    result="failure"), 1)
        out = self.send(b"b AUTHENTICATE PLAIN AGFsaWNlQGxhYi50ZXN0AHNlY3JldA==\r\n")
        self.assertTrue(out.startswith(b"b OK"), out)
        self.assertEqual(self.count("mailstack_auth_attempts_total", mechanism="PLAIN",
                                    result="success"), 1)

    def test_commandsByName(self):
        """UID commands are counted under their two-word name; unknown ones as 'other'."""
        self.login()
        self.send(b"s SELECT INBOX\r\nu UID FETCH 1:* FLAGS\r\nx FROBNICATE\r\n")
        self.assertEqual(self.count("mailstack_commands_total", command="UID FETCH"), 1)
        self.assertEqual(self.count("mailstack_commands_total", command="SELECT"), 1)
        self.assertEqual(self.count("mailstack_commands_total", command="other"), 1)

    def test_storeUnavailable(self):
        """SELECT while the store is unavailable counts a storage error."""
        from twisted.internet import defer
        from mailstack.storage.interfaces import StoreUnavailable
        self.login()
        self.account.openMailbox = lambda name: defer.fail(StoreUnavailable("gone"))
        self.assertIn(b"[UNAVAILABLE]", self.send(b"s SELECT INBOX\r\n"))
        self.assertEqual(self.count("mailstack_errors_total", kind="storage"), 1)


class POP3SessionTests(POP3TestMixin, unittest.TestCase):
    """
    A POP3 session's logins and commands, counted.
    """

    storeName = "memory"

    def setUp(self):
        self.metrics = PrometheusMetrics()
        self.settings = dict(self.settings, authFailuresDelay=5,
                             metrics=self.metrics.forListener("pop3", "pop3"))
        POP3TestMixin.setUp(self)

    def test_userPassAndCommands(self):
        """USER/PASS logins count as mechanism 'user'; STAT and an unknown verb are counted."""
        session = self.connect()
        self.assertTrue(session.login(password=b"wrong").startswith(b"-ERR [AUTH]"))
        self.assertTrue(session.login().startswith(b"+OK Logged in"))
        session.send(b"STAT\r\nBOGUS\r\n")
        count = lambda name, **labels: value(self.metrics, name, listener="pop3",
                                              protocol="pop3", **labels)
        self.assertEqual(count("mailstack_auth_attempts_total", mechanism="user",
                               result="failure"), 1)
        self.assertEqual(count("mailstack_auth_attempts_total", mechanism="user",
                               result="success"), 1)
        self.assertEqual(count("mailstack_commands_total", command="STAT"), 1)
        self.assertEqual(count("mailstack_commands_total", command="PASS"), 2)
        self.assertEqual(count("mailstack_commands_total", command="other"), 1)
