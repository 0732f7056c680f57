"""
Tests for L{mailstack.service}: config -> running listeners, first-start work
(data directory, certificate, demo account), one-line start-up errors.
"""

import os
import socket
import ssl
import sys

from twisted.internet import defer, protocol, reactor, threads
from twisted.trial import unittest
from zope.interface import implementer

from mailstack import service
from mailstack.config import loadConfig
from mailstack.listener import IProtocolPlugin, ProtocolBuilt
from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig


class _Greeter(protocol.Protocol):
    """A toy protocol: greets, echoes lines upper-cased, STARTTLS on request."""

    def connectionMade(self):
        self.transport.write(b"hello\r\n")

    def dataReceived(self, data):
        if data.strip() == b"STARTTLS":
            self.transport.write(b"go\r\n")
            self.transport.startTLS(self.factory.tlsContext)
            return
        self.transport.write(data.upper())


@implementer(IProtocolPlugin)
class _GreeterPlugin:
    """Serves L{_Greeter} on any listener; accepts any name in C{disabled}."""

    disableable = None

    def avatarAdapters(self):
        return {}

    def buildFactory(self, context):
        factory = protocol.Factory.forProtocol(_Greeter)
        factory.tlsContext = context.tlsContext
        return ProtocolBuilt(factory=factory, refusal=b"busy\r\n")


FAKE = {"smtp": _GreeterPlugin(), "imap": _GreeterPlugin()}


def _talk(port, lines, useTLS=False, cafile=None):
    """Blocking client: connect, read greeting, send lines, collect replies."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if useTLS:
            context = ssl.create_default_context(cafile=cafile)
            sock = context.wrap_socket(sock, server_hostname="localhost")
        f = sock.makefile("rb")
        replies = [f.readline()]
        for line in lines:
            sock.sendall(line + b"\r\n")
            replies.append(f.readline())
        return replies
    finally:
        sock.close()


class ServiceTestCase(unittest.TestCase):
    def start(self, extra, text=BASE_CONFIG, protocols=FAKE):
        path = writeConfig(self, text, extra)
        self.directory = os.path.dirname(os.path.abspath(path))
        self.config = loadConfig(path)
        top = service.buildService(self.config, reactor, protocols=protocols)
        top.startService()
        self.addCleanup(top.stopService)
        return top


class BuildServiceTests(ServiceTestCase):
    def test_firstStart(self):
        """
        The first start creates the data directory, a self-signed certificate and
        the demo account ({PLAIN}, so APOP and CRAM-MD5 work).
        """
        self.start(listenerTOML("smtp", tls="starttls"))
        var = os.path.join(self.directory, "var")
        self.assertTrue(os.path.isfile(os.path.join(var, "tls", "cert.pem")))
        self.assertTrue(os.path.isfile(os.path.join(var, "tls", "key.pem")))
        self.assertTrue(os.path.isdir(os.path.join(var, "mail")))
        with open(os.path.join(var, "users")) as f:
            self.assertEqual(f.read().splitlines(), ["demo@lab.test:{PLAIN}demo:::::"])

    def test_secondStartKeepsState(self):
        """A second start keeps the certificate and does not duplicate the demo user."""
        self.start(listenerTOML("smtp", tls="starttls"))
        cert = os.path.join(self.directory, "var", "tls", "cert.pem")
        with open(cert, "rb") as f:
            first = f.read()
        top = service.buildService(self.config, reactor, protocols=FAKE)
        with open(cert, "rb") as f:
            self.assertEqual(f.read(), first)
        self.assertEqual(len(top.users.listUsers()), 1)

    def test_noDemoAccount(self):
        """With demo_account = false no user is created."""
        self.start(listenerTOML("smtp"), BASE_CONFIG.replace(
            "demo_account = true", "demo_account = false"))
        self.assertFalse(os.path.exists(os.path.join(self.directory, "var", "users"))
                         and os.path.getsize(os.path.join(self.directory, "var", "users")))

    @defer.inlineCallbacks
    def test_listenersServe(self):
        """Every configured listener is bound and serves its protocol."""
        top = self.start(listenerTOML("smtp", name="a") + listenerTOML("imap", name="b"))
        for name in ("a", "b"):
            replies = yield threads.deferToThread(_talk, top.listenerPort(name), [b"hi"])
            self.assertEqual(replies, [b"hello\r\n", b"HI\r\n"])

    @defer.inlineCallbacks
    def test_implicitTLS(self):
        """An implicit-TLS listener speaks TLS from the first byte with our certificate."""
        top = self.start(listenerTOML("imap", tls="implicit", name="tls"))
        cafile = os.path.join(self.directory, "var", "tls", "cert.pem")
        replies = yield threads.deferToThread(
            _talk, top.listenerPort("tls"), [b"secret"], True, cafile)
        self.assertEqual(replies, [b"hello\r\n", b"SECRET\r\n"])

    @defer.inlineCallbacks
    def test_transcript(self):
        """With transcripts on, each session leaves a log under var/transcripts/<protocol>/."""
        top = self.start(listenerTOML("smtp", name="a"))
        yield threads.deferToThread(_talk, top.listenerPort("a"), [b"one"])
        yield _waitFor(lambda: _transcripts(self.directory, "smtp"))
        (path,) = _transcripts(self.directory, "smtp")
        # The session is flushed when the connection closes.
        yield _waitFor(lambda: b"# closed" in open(path, "rb").read())
        text = open(path, "rb").read()
        self.assertIn(b"S: hello", text)
        self.assertIn(b"C: one", text)
        self.assertIn(b"S: ONE", text)

    @defer.inlineCallbacks
    def test_connectionLimit(self):
        """Over connections_per_ip, a new connection gets the refusal and is closed."""
        top = self.start(listenerTOML("smtp", name="a"), BASE_CONFIG.replace(
            "[limits]", "[limits]\nconnections_per_ip = 1"))
        port = top.listenerPort("a")
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(first.close)
        self.assertEqual((yield threads.deferToThread(first.recv, 100)), b"hello\r\n")
        second = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(second.close)
        data = yield threads.deferToThread(_readAll, second)
        self.assertEqual(data, b"busy\r\n")

    @defer.inlineCallbacks
    def test_maxConnections(self):
        """Over a listener's max_connections, a new connection gets the refusal and is closed."""
        top = self.start(listenerTOML("smtp", name="a", max_connections=1))
        port = top.listenerPort("a")
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(first.close)
        self.assertEqual((yield threads.deferToThread(first.recv, 100)), b"hello\r\n")
        second = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(second.close)
        data = yield threads.deferToThread(_readAll, second)
        self.assertEqual(data, b"busy\r\n")

    def test_onePenaltyForEveryListener(self):
        """Every listener's context carries the same AuthPenalty, built from [limits]."""
        from mailstack.throttle import AuthPenalty
        contexts = []

        @implementer(IProtocolPlugin)
        class Recording(_GreeterPlugin):
            def buildFactory(self, context):
                contexts.append(context)
                return _GreeterPlugin.buildFactory(self, context)
        plugin = Recording()
        path = writeConfig(self, BASE_CONFIG.replace(
            "[limits]", "[limits]\nauth_failure_delay_max_seconds = 9"),
            listenerTOML("smtp", name="a") + listenerTOML("imap", name="b"))
        service.buildService(loadConfig(path), reactor,
                             protocols={"smtp": plugin, "imap": plugin})
        self.assertEqual(len(contexts), 2)
        self.assertIsInstance(contexts[0].authPenalty, AuthPenalty)
        self.assertIs(contexts[0].authPenalty, contexts[1].authPenalty)
        self.assertEqual(contexts[0].authPenalty.maxDelaySeconds, 9)

    def test_portInUse(self):
        """A port that cannot be bound stops the start with a one-line reason."""
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        port = blocker.getsockname()[1]
        path = writeConfig(self, BASE_CONFIG, listenerTOML(
            "smtp", endpoint="tcp:%d:interface=127.0.0.1" % (port,), name="mta"))
        top = service.buildService(loadConfig(path), reactor, protocols=FAKE)
        e = self.assertRaises(service.StartupError, top.privilegedStartService)
        self.assertIn("listener mta (smtp): cannot listen on tcp:%d" % (port,), str(e))

    def test_webPortInUse(self):
        """A console port that cannot be bound stops the start with a one-line reason."""
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        port = blocker.getsockname()[1]
        path = writeConfig(self, BASE_CONFIG, listenerTOML("smtp", name="mta")
                           + '[web]\nendpoint = "tcp:%d:interface=127.0.0.1"\n' % (port,))
        top = service.buildService(loadConfig(path), reactor, protocols=FAKE)
        e = self.assertRaises(service.StartupError, top.privilegedStartService)
        self.assertIn("web console: cannot listen on tcp:%d" % (port,), str(e))
        self.assertNotIn("\n", str(e))
        for child in top:
            if getattr(child, "port", None) is not None:
                self.addCleanup(child.port.stopListening)

    def test_webContext(self):
        """With [web] the console shares the server's store, users, penalty and counter."""
        path = writeConfig(self, BASE_CONFIG, listenerTOML("smtp", name="mta")
                           + '[web]\nendpoint = "tcp:0:interface=127.0.0.1"\n')
        top = service.buildService(loadConfig(path), reactor, protocols=FAKE)
        web = top.web
        self.assertIs(web.store, top.store)
        self.assertIs(web.users, top.users)
        self.assertIs(web.directory, top.directory)
        self.assertIs(web.counter, top.counter)
        self.assertEqual([s.listener.name for s in web.listeners], ["mta"])
        self.assertEqual(top.getServiceNamed("web").web.endpoint, "tcp:0:interface=127.0.0.1")

    def test_noWebNoConsole(self):
        """Without [web] there is no console service."""
        path = writeConfig(self, BASE_CONFIG, listenerTOML("smtp", name="mta"))
        top = service.buildService(loadConfig(path), reactor, protocols=FAKE)
        self.assertIsNone(top.web)
        self.assertRaises(KeyError, top.getServiceNamed, "web")

    def test_unknownProtocolBuilder(self):
        """A protocol with no builder in this build is a start-up error."""
        path = writeConfig(self, BASE_CONFIG, listenerTOML("pop3"))
        e = self.assertRaises(service.StartupError, service.buildService,
                              loadConfig(path), reactor, FAKE)
        self.assertEqual(str(e), "protocol 'pop3' is not available in this build")

    def test_unknownDisabledName(self):
        """A name in disabled that the protocol does not know (a typo) stops start-up."""
        path = writeConfig(self, BASE_CONFIG, listenerTOML("smtp") + listenerTOML(
            "imap", disabled=["IDLE", "PIPELINNG"]))
        e = self.assertRaises(service.StartupError, service.buildService,
                              loadConfig(path), reactor)
        self.assertTrue(str(e).startswith(
            "%s: listener[1].disabled: 'PIPELINNG' unknown for imap (known: " % (
                loadConfig(path).path,)), str(e))

    def test_knownDisabledNames(self):
        """Every protocol accepts the names its guide documents."""
        path = writeConfig(self, BASE_CONFIG, listenerTOML(
            "smtp", disabled=["PIPELINING", "ENHANCEDSTATUSCODES", "CRAM-MD5"])
            + listenerTOML("pop3", disabled=["APOP", "TOP", "UIDL", "SASL"])
            + listenerTOML("imap", disabled=["IDLE", "MOVE", "AUTH=CRAM-MD5", "CONDSTORE"]))
        top = service.buildService(loadConfig(path), reactor)
        self.assertEqual(len(list(top)), 5)  # the watcher, the activity recorder, three listeners

    def test_badCertificate(self):
        """A certificate that cannot be loaded is named in a one-line error."""
        path = writeConfig(self, BASE_CONFIG.replace(
            "generate_self_signed = true", "generate_self_signed = false"),
            listenerTOML("smtp", tls="starttls"))
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(os.path.join(directory, "var", "tls"))
        for name in ("cert.pem", "key.pem"):
            with open(os.path.join(directory, "var", "tls", name), "w") as f:
                f.write("not a certificate\n")
        e = self.assertRaises(service.StartupError, service.buildService,
                              loadConfig(path), reactor, FAKE)
        self.assertIn("tls: cannot load certificate", str(e))
        self.assertNotIn("\n", str(e))


class MakeServiceTests(unittest.TestCase):
    def test_configError(self):
        """makeService prints one line naming file, key and reason, then exits 1."""
        path = writeConfig(self, BASE_CONFIG, "[limits2]\n")
        err = _Capture()
        self.patch(sys, "stderr", err)
        e = self.assertRaises(SystemExit, service.makeService, {"config": path})
        self.assertEqual(e.code, 1)
        self.assertEqual(err.getvalue(), (
            "mailstack: %s: limits2: unknown section (allowed: server, tls, listener, "
            "limits, lab, relay, smtp, users, storage, web, pop3)\n" % (path,)))


def _readAll(sock):
    chunks = []
    while True:
        data = sock.recv(1000)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


class PrivateModesTests(unittest.TestCase):
    """
    Everything mailstack creates under data_dir is private to its user:
    directories 0700, files 0600, under the usual umask 022.
    """

    def _session(self, smtpPort, imapPort):
        """Deliver to a user of a new domain, then make a nested folder over IMAP."""
        import imaplib
        import smtplib
        with smtplib.SMTP("127.0.0.1", smtpPort, timeout=10) as smtp:
            smtp.sendmail("x@remote.test", ["bob@example.test"],
                          b"Subject: hi\r\n\r\nhello\r\n")
        imap = imaplib.IMAP4("127.0.0.1", imapPort, timeout=10)
        imap.login("bob@example.test", "pb")
        imap.create("Work/2026")
        imap.subscribe("Work/2026")
        imap.select("INBOX")
        imap.store("1", "+FLAGS", "(\\Seen $Later)")
        imap.copy("1", "Work/2026")
        imap.logout()

    @defer.inlineCallbacks
    def test_dataDirectory(self):
        """
        After a first start (certificate, demo account), a delivery to a new
        domain's user, folder creation, flags, subscriptions and transcripts,
        every directory under data_dir is 0700 and every file 0600.
        """
        from tests.helpers import startServer
        from tests.test_files import modes, useUmask
        useUmask(self)
        extra = (listenerTOML("smtp", name="smtp")
                 + listenerTOML("imap", name="imap", allow_plaintext_auth=True)
                 + listenerTOML("imap", name="imaps", tls="implicit"))
        top, directory = startServer(self, extra)
        top.users.addUser("bob@example.test", "pb", scheme="PLAIN")
        yield threads.deferToThread(self._session, top.listenerPort("smtp"),
                                    top.listenerPort("imap"))
        yield _waitFor(lambda: len(_transcripts(directory, "imap")) == 1)
        var = os.path.join(directory, "var")
        found = modes(var)
        for expected in ("tls/key.pem", "tls/cert.pem", "users", "mail/example.test/bob/new",
                         "mail/example.test/bob/.Work.2026/cur", "mail/example.test/bob/subscriptions"):
            self.assertIn(expected, found)
        self.assertTrue([path for path in found if path.endswith("mailstack-modseq")])
        self.assertEqual({path: mode for path, mode in found.items() if mode != (
            0o700 if os.path.isdir(os.path.join(var, path)) else 0o600)}, {})


def _transcripts(directory, protocolName):
    base = os.path.join(directory, "var", "transcripts", protocolName)
    found = []
    for root, dirs, files in os.walk(base):
        found.extend(os.path.join(root, f) for f in files)
    return found


def _waitFor(condition, timeout=10.0):
    """Poll C{condition} on the reactor until true (for effects of other callbacks)."""
    d = defer.Deferred()
    deadline = reactor.seconds() + timeout

    def check():
        if condition():
            d.callback(None)
        elif reactor.seconds() > deadline:
            d.errback(AssertionError("condition not met in %ss" % (timeout,)))
        else:
            reactor.callLater(0.02, check)
    check()
    return d


class _Capture:
    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)

    def flush(self):
        pass

    def getvalue(self):
        return "".join(self.parts)

