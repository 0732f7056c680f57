"""
End to end: the standard library's clients talk to the real server over
127.0.0.1 (smtplib, imaplib, and a client that is not TLS on the IMAPS
port), then /metrics is scraped over HTTP from the console's listener and
its numbers checked; /healthz answers 200, and 503 once the store fails.
"""

import imaplib
import json
import smtplib
import socket
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer
from twisted.trial import unittest

from mailstack.storage.interfaces import StoreUnavailable
from tests.helpers import E2EMixin, listenerTOML, sleep

WEB = '\n[web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
MESSAGE = b"From: demo@lab.test\r\nTo: ann@lab.test\r\nSubject: counted\r\n\r\nHello.\r\n"


def samples(text):
    """C{{(name, frozenset of label items): value}} of a Prometheus text scrape."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


class MetricsTests(E2EMixin, unittest.TestCase):
    listeners = "".join([
        listenerTOML("submission", tls="starttls", name="submission",
                     allow_plaintext_auth=True),
        listenerTOML("smtp", tls="none", name="smtp"),
        listenerTOML("imap", tls="none", name="imap", allow_plaintext_auth=True),
        listenerTOML("imap", tls="implicit", name="imaps"),
    ]) + WEB

    def get(self, path):
        """GET C{path} from the console: C{(status, content type, body text)}."""
        port = self.server.getServiceNamed("web").port.getHost().port
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                        timeout=30) as response:
                return (response.status, response.headers["Content-Type"],
                        response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            return e.code, e.headers["Content-Type"], e.read().decode("utf-8")

    def clients(self):
        """What a class does in a lab session: mail sent two ways, IMAP logins, a bad TLS client."""
        c = smtplib.SMTP("127.0.0.1", self.port("submission"), timeout=10)
        c.starttls(context=self.tlsContext())
        c.login("demo@lab.test", "demo")
        c.sendmail("demo@lab.test", ["ann@lab.test", "demo@lab.test"], MESSAGE)
        c.quit()
        c = smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10)
        c.sendmail("someone@example.com", ["ann@lab.test"], MESSAGE)
        c.quit()
        c = imaplib.IMAP4("127.0.0.1", self.port("imap"), timeout=10)
        try:
            c.login("demo@lab.test", "wrong")
        except imaplib.IMAP4.error:
            pass
        c.login("demo@lab.test", "demo")
        c.select("INBOX")
        c.logout()
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port("imaps"), ssl_context=self.tlsContext(),
                              timeout=10)
        c.login("ann@lab.test", "annpw")
        c.logout()
        # Plaintext on the implicit-TLS port: the server's handshake fails.
        with socket.create_connection(("127.0.0.1", self.port("imaps")), timeout=10) as s:
            s.sendall(b"a1 LOGIN demo@lab.test demo\r\n")
            while s.recv(4096):
                pass

    @defer.inlineCallbacks
    def scrape(self):
        """The scrape once every client session has ended on the server's side."""
        for _ in range(100):
            status, contentType, text = yield self.inThread(self.get, "/metrics")
            found = samples(text)
            if not any(value for (name, _), value in found.items()
                       if name == "mailstack_sessions_open"):
                break
            yield sleep(0.05)
        self.assertEqual(status, 200)
        self.assertEqual(contentType, "text/plain; version=0.0.4; charset=utf-8")
        return found

    @defer.inlineCallbacks
    def storedOctets(self, address):
        inbox = yield self.server.store.account(address).openMailbox("INBOX")
        yield inbox.sync(claimRecent=False)
        return sum(info.size for info in inbox.messages())

    @defer.inlineCallbacks
    def test_scrapeAfterClients(self):
        """Deliveries, logins, commands, TLS handshakes and sessions are in the scrape with the right numbers."""
        yield self.mailServer.addUser("ann@lab.test", "annpw")
        yield self.inThread(self.clients)
        found = yield self.scrape()

        def value(name, **labels):
            return found.get((name, frozenset(labels.items())), 0)

        def total(name, **labels):
            return sum(v for (n, items), v in found.items()
                       if n == name and set(labels.items()) <= set(items))
        self.assertEqual(value("mailstack_delivered_messages_total", destination="local"), 2)
        self.assertEqual(value("mailstack_delivered_recipients_total", destination="local"), 3)
        # Each message's size once (as stored), however many copies: ann got both.
        octets = yield self.storedOctets("ann@lab.test")
        self.assertEqual(value("mailstack_delivered_bytes_total", destination="local"), octets)
        self.assertEqual(value("mailstack_auth_attempts_total", listener="imap", protocol="imap",
                               mechanism="login", result="failure"), 1)
        self.assertEqual(value("mailstack_auth_attempts_total", listener="imap", protocol="imap",
                               mechanism="login", result="success"), 1)
        self.assertEqual(value("mailstack_auth_attempts_total", listener="imaps",
                               protocol="imap", mechanism="login", result="success"), 1)
        self.assertEqual(total("mailstack_auth_attempts_total", listener="submission",
                               result="success"), 1)
        self.assertEqual(value("mailstack_tls_handshakes_total", listener="submission",
                               protocol="submission", mode="starttls", result="success"), 1)
        self.assertEqual(value("mailstack_tls_handshakes_total", listener="imaps",
                               protocol="imap", mode="implicit", result="success"), 1)
        self.assertEqual(value("mailstack_tls_handshakes_total", listener="imaps",
                               protocol="imap", mode="implicit", result="failure"), 1)
        self.assertEqual(value("mailstack_commands_total", listener="submission",
                               protocol="submission", command="EHLO"), 2)
        self.assertEqual(value("mailstack_commands_total", listener="imap", protocol="imap",
                               command="SELECT"), 1)
        self.assertEqual(value("mailstack_connections_accepted_total", listener="imaps",
                               protocol="imap"), 2)
        self.assertEqual(value("mailstack_connections_accepted_total", listener="smtp",
                               protocol="smtp"), 1)
        for name in ("submission", "smtp", "imap", "imaps"):
            self.assertEqual(total("mailstack_errors_total", listener=name), 0)
        self.assertEqual(total("mailstack_sessions_open"), 0)

    @defer.inlineCallbacks
    def test_healthz(self):
        """/healthz is 200 while the store answers, 503 naming the store while it does not."""
        status, contentType, body = yield self.inThread(self.get, "/healthz")
        self.assertEqual((status, contentType), (200, "application/json"))
        self.assertEqual(json.loads(body), {
            "status": "ok", "store": "ok",
            "listeners": {"submission": "up", "smtp": "up", "imap": "up", "imaps": "up"}})
        account = self.server.store.account("postmaster@lab.test")
        account.openMailbox = lambda name: defer.fail(StoreUnavailable("disk gone"))
        self.addCleanup(vars(account).pop, "openMailbox")
        status, _, body = yield self.inThread(self.get, "/healthz")
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(body)["store"], "error: disk gone")
