"""
A real mailstack server inside a test suite (what GreenMail is for Java): the
whole service, every protocol, on free loopback ports, over a temporary
Maildir, with helpers to add users, deliver mail, wait for it and read it, and
a clean stop (ports closed, sessions dropped, the temporary directory gone).

Three ways in (docs/testing.md has a complete example of each):

  - L{ReactorMailServer}: in the reactor that is already running (trial,
    pytest-twisted); every helper returns a Deferred.
  - L{MailServerMixin}: for a trial C{TestCase}: starts one in C{setUp},
    stops it in a cleanup.
  - L{MailServer}: for synchronous suites (unittest, pytest): a context
    manager that runs a reactor of its own in a background thread; every
    helper blocks and returns the result. L{mailServerFixture} and
    L{reactorMailServerFixture} make pytest fixtures of either, without this
    module importing pytest.

Sessions on the fixture's loopback listeners may log in with passwords before
TLS, as on the lab's ports.
"""

import email
import email.message
import email.policy
import io
import os
import shutil
import ssl
import tempfile
import threading

from twisted.internet import defer, endpoints, task, threads

from mailstack.config import loadConfig
from mailstack.relay.client import RelayClientFactory
from mailstack.service import buildService
from mailstack.storage.interfaces import StoreError

# The stores the fixture can put mail in ([storage] backend): a Maildir in
# its directory, or the memory store (nothing written, lost at stop).
STORES = ("maildir", "memory")

LOOPBACK = "127.0.0.1"

# One listener per protocol, all on port 0 of the loopback interface. With
# TLS: STARTTLS on the first four, plus the implicit-TLS listeners.
_PLAIN_LISTENERS = (("smtp", "smtp"), ("submission", "submission"),
                    ("pop3", "pop3"), ("imap", "imap"))
_IMPLICIT_LISTENERS = (("submissions", "submission"), ("pop3s", "pop3"),
                       ("imaps", "imap"))


class DeliveryRefused(Exception):
    """
    The fixture's own SMTP listener refused some recipients of
    L{ReactorMailServer.deliver}. C{refused} maps each refused address to
    the reply (e.g. C{"550 5.1.1 <x@example.test>: ... User unknown"}).
    """

    def __init__(self, refused):
        self.refused = refused
        Exception.__init__(self, "; ".join("<%s>: %s" % item for item in refused.items()))


class WaitTimeout(Exception):
    """L{ReactorMailServer.waitForMessages} gave up: fewer messages came in time."""


def fixtureConfig(domains=("example.test",), tls=False, transcripts=False, starttls=None,
                  store="maildir"):
    """
    The TOML text of the fixture's default configuration: one listener per
    protocol on port 0 of 127.0.0.1 (named C{smtp}, C{submission}, C{pop3},
    C{imap}; with C{tls} also C{submissions}, C{pop3s}, C{imaps}, and
    STARTTLS on the first four unless C{starttls} is false), passwords
    accepted before TLS, bcrypt at its cheapest, no login penalty and no
    per-address connection limit, mail in C{store} (one of L{STORES}).
    Relative paths resolve to the directory of the config file.
    """
    if store not in STORES:
        raise ValueError("store must be one of %s, not %r" % (", ".join(STORES), store))
    domains = list(domains)
    starttls = tls if starttls is None else starttls
    if starttls and not tls:
        raise ValueError("starttls needs tls")
    if not domains:
        raise ValueError("at least one local domain is needed")
    lines = [
        "[server]",
        'hostname = "localhost"',
        'data_dir = "var"',
        "domains = [%s]" % (", ".join('"%s"' % (d,) for d in domains),),
        'default_domain = "%s"' % (domains[0],),
        "[tls]",
        'cert = "var/tls/cert.pem"',
        'key = "var/tls/key.pem"',
        "generate_self_signed = true",
        "[limits]",
        "bcrypt_rounds = 4",
        "auth_failure_delay_seconds = 0",
        "connections_per_ip = 0",
        "[lab]",
        "demo_account = false",
        "transcripts = %s" % ("true" if transcripts else "false",),
        "[storage]",
        'backend = "%s"' % (store,),
    ]
    for name, protocol in _PLAIN_LISTENERS:
        lines += ["[[listener]]", 'name = "%s"' % (name,), 'protocol = "%s"' % (protocol,),
                  'endpoint = "tcp:0:interface=%s"' % (LOOPBACK,),
                  'tls = "%s"' % ("starttls" if starttls else "none",),
                  "allow_plaintext_auth = true"]
    if tls:
        for name, protocol in _IMPLICIT_LISTENERS:
            lines += ["[[listener]]", 'name = "%s"' % (name,),
                      'protocol = "%s"' % (protocol,),
                      'endpoint = "tcp:0:interface=%s"' % (LOOPBACK,), 'tls = "implicit"']
    return "\n".join(lines) + "\n"


def _asBytes(message):
    """A message given as bytes, str or an L{email.message.Message}, as bytes."""
    if isinstance(message, email.message.Message):
        return message.as_bytes(policy=email.policy.SMTP)
    if isinstance(message, str):
        return message.encode("utf-8")
    return bytes(message)


class _Arrivals:
    """
    Waits, through the mailbox's listener interface, until the mailbox holds
    C{count} messages; C{done} fires with L{None} then (or fails with
    L{WaitTimeout} after C{timeout} seconds).
    """

    def __init__(self, mailbox, count, timeout, clock, what):
        self.mailbox = mailbox
        self.count = count
        self.what = what
        self.done = defer.Deferred()
        self.timer = clock.callLater(timeout, self.expire, timeout)
        mailbox.addListener(self)
        # Mail delivered before we listened: one sync that claims nothing. A
        # lock another program holds: the watcher syncs it later.
        d = mailbox.sync(claimRecent=False)
        d.addErrback(lambda f: f.trap(StoreError))
        d.addCallback(lambda _: self.check())

    def mailboxChanged(self, mailbox, changes):
        self.check()

    def check(self):
        if not self.done.called and len(self.mailbox.messages()) >= self.count:
            self.finish()
            self.done.callback(None)

    def expire(self, timeout):
        self.timer = None
        found = len(self.mailbox.messages())
        self.finish()
        self.done.errback(WaitTimeout("%d of %d messages in %s after %s s" % (
            found, self.count, self.what, timeout)))

    def finish(self):
        self.mailbox.removeListener(self)
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


class ReactorMailServer:
    """
    The whole service in the running reactor: L{start} binds every listener
    on a free loopback port (L{ports}), L{stop} undoes everything. The other
    helpers return Deferreds.

    @param reactor: the reactor to serve on; the global one by default.
    @param domains: the local domains (the first is the default domain).
    @param tls: also serve STARTTLS and the implicit-TLS listeners, with a
        self-signed certificate (L{certificate}) made in the directory.
    @param starttls: with C{tls}, C{False} leaves STARTTLS out (only the
        implicit-TLS listeners have TLS).
    @param store: where mail is kept (L{STORES}): C{"maildir"}, the
        default (a Maildir under the directory), or C{"memory"} (the
        memory store: faster, nothing written, gone at L{stop}).
    @param users: C{{address: password}} of users to create at start, stored
        C{{PLAIN}}.
    @param transcripts: write per-session transcripts under C{var/transcripts}.
    @param config: the complete TOML text of a configuration to run instead
        of the one the options above make (L{fixtureConfig}); relative paths
        in it resolve to the directory. Not combined with those options (its
        own C{[storage] backend} says the store).
    @param directory: where the config and the data go; created if missing,
        and left in place at L{stop}. By default a new temporary directory,
        removed at L{stop}.
    """

    host = LOOPBACK

    def __init__(self, reactor=None, domains=None, tls=False, store=None,
                 users=None, transcripts=False, config=None, directory=None,
                 starttls=None):
        if reactor is None:
            from twisted.internet import reactor
        if store is not None and store not in STORES:
            raise ValueError("store must be one of %s, not %r" % (", ".join(STORES), store))
        if config is not None and (domains is not None or tls or transcripts
                                   or starttls is not None or store is not None):
            raise TypeError("config replaces the configuration domains, tls, "
                            "transcripts and store would make: give one or the other")
        if config is None:
            store = store or "maildir"
            config = fixtureConfig(domains or ("example.test",), tls, transcripts, starttls,
                                   store)
        self.reactor = reactor
        # The store's name (STORES); with a whole config, known once started.
        self.storeName = store
        self.configText = config
        self.initialUsers = dict(users or {})
        self.directory = directory
        self.ownsDirectory = directory is None
        self.service = None
        self.ports = {}

    # -- start and stop

    def start(self):
        """
        Write the config, build the service and bind every listener; raises
        L{mailstack.service.StartupError} (or a config error) if it cannot.

        @return: C{self}.
        """
        if self.service is not None:
            raise RuntimeError("this mail server is already started")
        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix="mailstack-test-")
        self.directory = os.path.abspath(self.directory)
        try:
            os.makedirs(self.directory, exist_ok=True)
            path = os.path.join(self.directory, "mailstack.toml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.configText)
            top = buildService(loadConfig(path), self.reactor)
            backend = self._userBackend(top)
            for address, password in self.initialUsers.items():
                backend.addUser(address, password, scheme="PLAIN")
            try:
                top.startService()
            except BaseException:
                # A listener that cannot bind: let go of those already bound.
                for child in list(top):
                    if child.running:
                        child.stopService()
                raise
        except BaseException:
            self._removeDirectory()
            raise
        self.service = top
        self.config = top.config
        self.storeName = top.config.storage.backend
        self.ports = {listener.name: top.listenerPort(listener.name)
                      for listener in top.config.listeners}
        return self

    def stop(self):
        """
        Stop every listener (their ports are closed when the Deferred fires),
        drop the sessions still open, and remove the temporary directory.
        Calling it again does nothing.

        @return: a Deferred firing with L{None} once all that is done.
        """
        top, self.service = self.service, None
        if top is None:
            return defer.succeed(None)
        d = defer.maybeDeferred(top.stopService)
        d.addCallback(lambda _: self._dropSessions(top))
        d.addBoth(self._removeDirectoryAfter)
        return d

    def _dropSessions(self, top):
        """Abort the connections still open; fire when every one has gone."""
        factories = [top.getServiceNamed(listener.name).factory
                     for listener in top.config.listeners]
        for factory in factories:
            for connection in list(factory.protocols):
                connection.transport.abortConnection()
        remaining = lambda: sum(len(factory.protocols) for factory in factories)
        if not remaining():
            return None
        # An aborted connection is gone at the next reactor turn or so: check
        # every 10 ms, at most 500 times.
        checks = iter(range(500))

        def check():
            if not remaining() or next(checks, None) is None:
                poll.stop()
        poll = task.LoopingCall(check)
        poll.clock = self.reactor
        return poll.start(0.01, now=False).addCallback(lambda _: None)

    def _removeDirectoryAfter(self, result):
        if not self.ownsDirectory:
            return result
        d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                      self._removeDirectory)
        return d.addCallback(lambda _: result)

    def _removeDirectory(self):
        if self.ownsDirectory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- where it listens

    def port(self, name):
        """The port the listener C{name} is bound to."""
        return self.ports[name]

    @property
    def smtpPort(self):
        """SMTP (port 25 style: mail for local users from anyone)."""
        return self.ports["smtp"]

    @property
    def submissionPort(self):
        """Submission (RFC 6409: AUTH first, then relaying)."""
        return self.ports["submission"]

    @property
    def pop3Port(self):
        return self.ports["pop3"]

    @property
    def imapPort(self):
        return self.ports["imap"]

    @property
    def submissionsPort(self):
        """Submission over implicit TLS (with C{tls=True})."""
        return self.ports["submissions"]

    @property
    def pop3sPort(self):
        """POP3 over implicit TLS (with C{tls=True})."""
        return self.ports["pop3s"]

    @property
    def imapsPort(self):
        """IMAP over implicit TLS (with C{tls=True})."""
        return self.ports["imaps"]

    @property
    def certificate(self):
        """The path of the server's certificate (PEM), for clients to trust."""
        return os.fspath(self.config.tls.cert)

    def sslContext(self):
        """
        An C{ssl.SSLContext} for clients that trusts the server's certificate
        (made for C{localhost} and 127.0.0.1).
        """
        return ssl.create_default_context(cafile=self.certificate)

    # -- users and mail

    @staticmethod
    def _userBackend(top):
        # The service's synchronous backend (its directory is top.directory).
        return top.users

    def _running(self):
        if self.service is None:
            raise RuntimeError("the mail server is not running")
        return self.service

    def addUser(self, address, password, scheme="PLAIN"):
        """
        Create a user (the work runs in a thread: hashing takes time).

        @param scheme: C{"PLAIN"} (fast, and what CRAM-MD5 and APOP need),
            C{"BLF-CRYPT"}, or another of L{mailstack.auth.passwords.SCHEMES}
            (C{"SHA512-CRYPT"}, C{"SHA256-CRYPT"}, C{"ARGON2ID"}).
        @return: a Deferred firing with L{None} once the user can log in.
        """
        backend = self._userBackend(self._running())
        return self._inThread(backend.addUser, address, password, scheme=scheme).addCallback(
            lambda _: None)

    def deliver(self, to, message, sender="sender@example.test"):
        """
        Send C{message} to local recipients through the server's own SMTP
        listener, as another mail server would: it takes the real delivery
        path (recipient checks, C{Return-Path:} and C{Received:}, the store,
        notification of open sessions).

        @param to: an address or a list of them.
        @param message: bytes, str or an L{email.message.Message}.
        @return: a Deferred firing with L{None} once every copy is stored, or
            failing with L{DeliveryRefused} naming the refused recipients.
        """
        top = self._running()
        recipients = [to] if isinstance(to, str) else list(to)
        data = _asBytes(message)
        listener = next((l for l in top.config.listeners
                         if l.protocol == "smtp" and l.tls != "implicit"), None)
        if listener is None:
            return defer.fail(RuntimeError("no plaintext smtp listener to deliver through"))
        factory = RelayClientFactory(
            identity="localhost", sender=sender, recipients=recipients,
            messageFile=io.BytesIO(data), size=len(data),
            eightBit=any(octet > 127 for octet in data), contextFactory=None,
            requireTLS=False, timeout=30, clock=self.reactor)
        endpoint = endpoints.TCP4ClientEndpoint(self.reactor, self.host,
                                                self.ports[listener.name])
        d = endpoint.connect(factory)
        d.addCallback(lambda client: client.finished)

        def judged(results):
            refused = {address: result.describe()
                       for address, result in zip(recipients, results)
                       if result.code is None or not 200 <= result.code < 300}
            if refused:
                raise DeliveryRefused(refused)
        return d.addCallback(judged)

    def appendMessage(self, address, message, mailbox="INBOX", flags=()):
        """
        Put a message straight into a mailbox through the store, as IMAP
        APPEND does (no SMTP, no headers added); the mailbox is created if
        missing.

        @param flags: IMAP flags to store it with, e.g. C{["\\\\Seen"]}.
        @return: a Deferred firing with the message's UID.
        """
        account = self._running().store.account(address.lower())
        d = defer.succeed(None)
        if not account.hasMailbox(mailbox):
            d = account.createMailbox(mailbox)
        d.addCallback(lambda _: account.openMailbox(mailbox))
        return d.addCallback(lambda box: box.append(_asBytes(message), tuple(flags)))

    def _mailbox(self, address, mailbox):
        """A Deferred firing with the store's mailbox."""
        return self._running().store.account(address.lower()).openMailbox(mailbox)

    def waitForMessages(self, address, count, mailbox="INBOX", timeout=10.0):
        """
        Wait until C{address}'s C{mailbox} holds at least C{count} messages,
        listening to the store (no polling).

        @return: a Deferred firing with every message (bytes, UID order) once
            there are C{count}, or failing with L{WaitTimeout} after
            C{timeout} seconds.
        """
        def opened(box):
            arrivals = _Arrivals(box, count, timeout, self.reactor,
                                 "%s %s" % (address, mailbox))
            return arrivals.done
        d = self._mailbox(address, mailbox).addCallback(opened)
        d.addCallback(lambda _: self.messages(address, mailbox))
        # A Deferred of its own: it has not fired (.called) until the
        # messages are there, whatever the steps before them.
        result = defer.Deferred()
        d.chainDeferred(result)
        return result

    def messages(self, address, mailbox="INBOX"):
        """
        @return: a Deferred firing with the messages of C{address}'s
            C{mailbox} as bytes (CRLF line ends), in UID order. Reading does
            not change them (no flag, no \\Recent taken).
        """
        def opened(box):
            # Find new deliveries; claims nothing.
            return box.sync(claimRecent=False).addCallback(lambda _: box)

        def openAll(box):
            return [box.openMessage(info.uid) for info in box.messages()]
        d = self._mailbox(address, mailbox).addCallback(opened).addCallback(openAll)
        return d.addCallback(lambda files: self._inThread(_readAll, files))

    def emailMessages(self, address, mailbox="INBOX"):
        """
        @return: a Deferred firing with the messages of C{address}'s
            C{mailbox} as L{email.message.EmailMessage}s, in UID order.
        """
        return self.messages(address, mailbox).addCallback(
            lambda found: [_parse(data) for data in found])

    def _inThread(self, f, *args, **kwargs):
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         f, *args, **kwargs)


def _readAll(files):
    """Read and close each open message file."""
    found = []
    for f in files:
        with f:
            found.append(f.read())
    return found


def _parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


class MailServerMixin:
    """
    For a trial C{TestCase}: C{setUp} starts a L{ReactorMailServer}
    (C{self.mailServer}) with the keyword arguments in
    C{mailServerOptions}; a cleanup stops it.
    """

    mailServerOptions: dict = {}

    def setUp(self):
        self.mailServer = self.startMailServer(**self.mailServerOptions)

    def startMailServer(self, **options):
        """Start one more L{ReactorMailServer}, stopped when the test ends."""
        server = ReactorMailServer(**options)
        server.start()
        self.addCleanup(server.stop)
        return server


def _backgroundReactor():
    """
    A new reactor, not the global one, for L{MailServer}'s thread. It does
    not register its thread as Twisted's I/O thread (that stays whatever
    the rest of the process runs).
    """
    try:
        from twisted.internet.epollreactor import EPollReactor as Base
    except ImportError:
        try:
            from twisted.internet.pollreactor import PollReactor as Base
        except ImportError:
            from twisted.internet.selectreactor import SelectReactor as Base

    class BackgroundReactor(Base):
        _registerAsIOThread = False

    return BackgroundReactor()


class MailServer:
    """
    A L{ReactorMailServer} for synchronous code: C{start} (or C{with})
    runs a reactor of its own in a background thread and starts the server
    there; every helper blocks until done and returns the result; C{stop}
    stops the server, then the reactor, and joins the thread.

        with MailServer(users={"alice@example.test": "secret"}) as server:
            with smtplib.SMTP(server.host, server.smtpPort) as smtp:
                smtp.sendmail("bob@example.test", ["alice@example.test"], message)
            [received] = server.waitForMessages("alice@example.test", 1)

    Takes the keyword arguments of L{ReactorMailServer} (but C{reactor}).
    With C{tls=True} only the implicit-TLS listeners have TLS: Twisted's
    STARTTLS schedules its writes on the global reactor (whatever reactor
    the connection runs on), which does not run here.
    """

    host = LOOPBACK

    def __init__(self, **options):
        if "reactor" in options:
            raise TypeError("MailServer runs its own reactor")
        if options.get("starttls"):
            raise ValueError("MailServer cannot offer STARTTLS (Twisted starts TLS on the "
                             "global reactor): use the implicit-TLS ports")
        if options.get("config") is None:
            options["starttls"] = False
        self.options = options
        self.reactor = None
        self.thread = None
        self.server = None

    def start(self):
        """Start the reactor thread and the server. @return: C{self}."""
        if self.thread is not None:
            raise RuntimeError("this mail server is already started")
        self.reactor = _backgroundReactor()
        self.thread = threading.Thread(
            target=self.reactor.run, kwargs={"installSignalHandlers": False},
            name="mailstack-testing-reactor", daemon=True)
        self.thread.start()
        self.server = ReactorMailServer(reactor=self.reactor, **self.options)
        try:
            self._call(self.server.start)
        except BaseException:
            self._stopReactor()
            raise
        return self

    def stop(self):
        """Stop the server and the reactor; wait for its thread to end."""
        if self.thread is None:
            return
        try:
            self._call(self.server.stop)
        finally:
            self._stopReactor()

    def _stopReactor(self):
        self.reactor.callFromThread(self.reactor.stop)
        self.thread.join()
        self.thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _call(self, f, *args, **kwargs):
        if self.thread is None:  # the call would wait forever for a stopped reactor
            raise RuntimeError("the mail server is not running")
        return threads.blockingCallFromThread(self.reactor, f, *args, **kwargs)

    # The running server's facts and helpers, blocking.

    @property
    def directory(self):
        return self.server.directory

    @property
    def ports(self):
        return self.server.ports

    def port(self, name):
        return self.server.port(name)

    smtpPort = property(lambda self: self.server.smtpPort)
    submissionPort = property(lambda self: self.server.submissionPort)
    pop3Port = property(lambda self: self.server.pop3Port)
    imapPort = property(lambda self: self.server.imapPort)
    submissionsPort = property(lambda self: self.server.submissionsPort)
    pop3sPort = property(lambda self: self.server.pop3sPort)
    imapsPort = property(lambda self: self.server.imapsPort)

    @property
    def certificate(self):
        return self.server.certificate

    def sslContext(self):
        return self.server.sslContext()

    def addUser(self, address, password, scheme="PLAIN"):
        """L{ReactorMailServer.addUser}, blocking."""
        return self._call(self.server.addUser, address, password, scheme)

    def deliver(self, to, message, sender="sender@example.test"):
        """L{ReactorMailServer.deliver}, blocking (raises L{DeliveryRefused})."""
        return self._call(self.server.deliver, to, message, sender)

    def appendMessage(self, address, message, mailbox="INBOX", flags=()):
        """L{ReactorMailServer.appendMessage}, blocking: returns the UID."""
        return self._call(self.server.appendMessage, address, message, mailbox, flags)

    def waitForMessages(self, address, count, mailbox="INBOX", timeout=10.0):
        """L{ReactorMailServer.waitForMessages}, blocking (raises L{WaitTimeout})."""
        return self._call(self.server.waitForMessages, address, count, mailbox, timeout)

    def messages(self, address, mailbox="INBOX"):
        """L{ReactorMailServer.messages}, blocking: a list of bytes."""
        return self._call(self.server.messages, address, mailbox)

    def emailMessages(self, address, mailbox="INBOX"):
        """L{ReactorMailServer.emailMessages}, blocking."""
        return self._call(self.server.emailMessages, address, mailbox)


def mailServerFixture(**options):
    """
    A pytest fixture function for a synchronous suite: yields a started
    L{MailServer} with C{options}, stops it afterwards.

        mail_server = pytest.fixture(mailServerFixture(users={...}))
    """
    def mailServer():
        with MailServer(**options) as server:
            yield server
    return mailServer


def reactorMailServerFixture(**options):
    """
    An async generator fixture for pytest-twisted (the reactor runs the
    tests): yields a started L{ReactorMailServer}, stops it afterwards.

        mail_server = pytest_twisted.async_yield_fixture()(
            reactorMailServerFixture(users={...}))
    """
    async def mailServer():
        server = ReactorMailServer(**options)
        server.start()
        try:
            yield server
        finally:
            await server.stop()
    return mailServer
