"""
Shared builders for tests: config files in temporary directories, and the
setup the end-to-end tests share (L{E2EMixin}).
"""

import glob
import os
import ssl
import textwrap

from twisted.internet import defer, threads
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

BASE_CONFIG = """
[server]
hostname = "mail.lab.test"
data_dir = "var"
domains = ["lab.test", "example.test"]
default_domain = "lab.test"

[tls]
cert = "var/tls/cert.pem"
key = "var/tls/key.pem"
generate_self_signed = true

[limits]
bcrypt_rounds = 4

[lab]
demo_account = true
transcripts = true
"""


def writeConfig(testCase, text=BASE_CONFIG, extra="", name="mailstack.toml"):
    """
    Write a config file into a fresh temporary directory of C{testCase}.

    @return: the path of the file (str); relative paths in it resolve to that
        directory.
    """
    directory = testCase.mktemp()
    os.makedirs(directory)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text) + textwrap.dedent(extra))
    return path


def listenerTOML(protocol, endpoint="tcp:0:interface=127.0.0.1", tls="none",
                 name=None, **extra):
    """
    One C{[[listener]]} table as TOML text.
    """
    lines = ["[[listener]]", 'protocol = "%s"' % (protocol,),
             'endpoint = "%s"' % (endpoint,), 'tls = "%s"' % (tls,)]
    if name:
        lines.append('name = "%s"' % (name,))
    for key, value in extra.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, str):
            value = '"%s"' % (value,)
        elif isinstance(value, (list, tuple)):
            value = "[%s]" % (", ".join('"%s"' % (v,) for v in value),)
        lines.append("%s = %s" % (key, value))
    return "\n" + "\n".join(lines) + "\n"


def startMailServer(testCase, extra="", text=BASE_CONFIG, reactor=None):
    """
    Start the real service (through L{mailstack.testing.ReactorMailServer})
    from a config with C{extra} appended, in a fresh temporary directory of
    C{testCase} (kept after the test, like every C{mktemp}); stopped when the
    test ends (ports closed, open sessions dropped).

    @return: the running L{mailstack.testing.ReactorMailServer}: C{service}
        is the L{mailstack.service.MailService}, C{directory} the config's
        directory (its C{var/} holds mail, users, certificate, transcripts).
    """
    from mailstack.testing import ReactorMailServer
    server = ReactorMailServer(reactor=reactor, directory=testCase.mktemp(),
                               config=textwrap.dedent(text) + textwrap.dedent(extra))
    server.start()
    testCase.addCleanup(server.stop)
    return server


def startServer(testCase, extra, text=BASE_CONFIG, reactor=None):
    """
    L{startMailServer}, for tests that want the service itself.

    @return: C{(service, directory)}: the running L{mailstack.service.MailService}
        (C{service.listenerPort(name)} gives a bound port) and the config's
        directory.
    """
    server = startMailServer(testCase, extra, text, reactor)
    return server.service, server.directory


def sleep(seconds):
    """A Deferred that fires after C{seconds} on the global reactor."""
    from twisted.internet import reactor
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


class E2EMixin:
    """
    For end-to-end test cases: the real service from L{BASE_CONFIG} with
    C{limits} added to its C{[limits]} table and C{listeners} appended, started
    in C{setUp} by the test fixture (C{self.mailServer}, a
    L{mailstack.testing.ReactorMailServer}; C{self.server} is its service);
    helpers for ports, TLS, blocking clients and the demo mailbox.
    """

    listeners = ""
    limits = ""

    def setUp(self):
        text = BASE_CONFIG.replace("[limits]", "[limits]\n" + self.limits)
        self.mailServer = startMailServer(self, self.listeners, text)
        self.server, self.directory = self.mailServer.service, self.mailServer.directory
        self.cafile = self.mailServer.certificate

    def port(self, name):
        return self.server.listenerPort(name)

    def tlsContext(self):
        return ssl.create_default_context(cafile=self.cafile)

    def inThread(self, f, *args):
        return threads.deferToThread(f, *args)

    def inbox(self):
        """The demo user's INBOX in the store."""
        return self.server.store.account("demo@lab.test").getMailbox("INBOX")

    def deliver(self, message):
        inbox = self.inbox()
        key = inbox.deliver(message)
        inbox.noteDelivery()
        return key

    def files(self, address="demo@lab.test"):
        """The message files in C{address}'s Maildir INBOX (new/ and cur/), sorted."""
        local, domain = address.split("@")
        base = os.path.join(self.directory, "var", "mail", domain, local)
        return sorted(glob.glob(os.path.join(base, "new", "*"))
                      + glob.glob(os.path.join(base, "cur", "*")))

    @defer.inlineCallbacks
    def closedTranscript(self, protocol):
        """The one lab transcript of C{protocol}, once its session is closed."""
        paths = glob.glob(os.path.join(self.directory, "var", "transcripts", protocol, "*", "*"))
        self.assertEqual(len(paths), 1)
        for _ in range(100):
            with open(paths[0], "rb") as f:
                text = f.read()
            if b"# closed" in text:
                break
            yield sleep(0.05)
        return text


class LogWatch:
    """Collects log events; C{problems()} are the critical ones and those with tracebacks."""

    def __init__(self, testCase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testCase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def problems(self):
        return [e for e in self.events
                if e.get("log_failure") is not None or e.get("log_level") == LogLevel.critical]

    def texts(self, level=None):
        return [formatEvent(e) for e in self.events
                if level is None or e.get("log_level") == level]
