"""
Config -> a running server: one MultiService of listeners sharing one Portal.

Each C{[[listener]]} becomes an endpoint (a Twisted endpoint string) serving the
factory its protocol package builds, wrapped the same way for every protocol:

    endpoint -> [TLS, if implicit] -> per-IP limit + session count
             -> [transcript, if enabled] -> the protocol's factory

Each protocol is an L{IProtocolPlugin} named in L{PROTOCOLS}; its
C{buildFactory} gets a L{ListenerContext} (config, listener, portal, users,
store, TLS context) and returns a L{ProtocolBuilt}: the protocol factory plus
the line to send when a peer has too many connections. The realm is
protocol-neutral: it receives the avatar adapters of the protocols that are
configured. Protocol packages import L{mailstack.listener}, never this module.

twistd loads this through the C{mailstack} plugin: L{Options} and L{makeService}.
"""

import sys

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage

from mailstack import tls as mstls
from mailstack.auth.backends import backendNamed
from mailstack.activity import ActivityRecorder
from mailstack.auth.checkers import UserDirectoryChecker
from mailstack.auth.directory import UserDirectory
from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.auth.realm import MailRealm, buildPortal
from mailstack.capture import captureStoreFor
from mailstack.config import ConfigError, loadConfig
from mailstack.imap.plugin import plugin as imapPlugin
from mailstack.instruments import NO_METRICS
from mailstack.listener import IProtocolPlugin, ListenerContext
from mailstack.metrics import PrometheusMetrics
from mailstack.pop3.plugin import plugin as pop3Plugin
from mailstack.protocol.compress import CompressingFactory
from mailstack.protocol.eager import EagerEndpoint
from mailstack.sessions import LimitingFactory, SessionCounter
from mailstack.smtp.plugin import plugin as smtpPlugin
from mailstack.storage.files import makeDirectories
from mailstack.storage import backends as storebackends
from mailstack.storage.watch import MailboxWatcher
from mailstack.throttle import AuthPenalty
from mailstack.transcripthub import TranscriptHub
from mailstack.web.context import WebContext
from mailstack.web.site import buildSite
from mailstack import workerlink
from mailstack import workers as msworkers

log = Logger()

# protocol name (a listener's C{protocol}) -> its L{IProtocolPlugin}.
PROTOCOLS = {
    "smtp": smtpPlugin,
    "submission": smtpPlugin,
    "pop3": pop3Plugin,
    "imap": imapPlugin,
}


class StartupError(Exception):
    """
    The server cannot start; the text is one line fit for the console.
    """


def _resolve(protocols, name):
    """
    @return: the L{IProtocolPlugin} serving protocol C{name}.
    @raise StartupError: if there is none (or the registry holds something else).
    """
    plugin = protocols.get(name)
    if plugin is None:
        raise StartupError("protocol %r is not available in this build" % (name,))
    if not IProtocolPlugin.providedBy(plugin):
        raise StartupError("protocol %r: %r is not a protocol plug-in" % (name, plugin))
    return plugin


def _checkDisabled(config, index, listener, known):
    """A name in C{disabled} that the protocol does not know is a typo: refuse it."""
    if known is None:  # the plug-in accepts any name
        return
    unknown = [name for name in listener.disabled if name not in known]
    if unknown:
        raise StartupError("%s: listener[%d].disabled: %s unknown for %s (known: %s)" % (
            config.path, index, ", ".join(repr(n) for n in unknown), listener.protocol,
            ", ".join(sorted(known))))


class ListenerService(StreamServerEndpointService):
    """
    One listener. Binds in privilegedStartService (before twistd drops root) and
    raises there if the port cannot be bound, so start-up fails loudly.
    """

    _raiseSynchronously = True

    def __init__(self, listener, endpoint, factory):
        StreamServerEndpointService.__init__(self, endpoint, factory)
        self.listener = listener
        self.port = None
        self.setName(listener.name)

    def privilegedStartService(self):
        try:
            StreamServerEndpointService.privilegedStartService(self)
        except Exception as e:
            raise StartupError("listener %s (%s): cannot listen on %s: %s" % (
                self.listener.name, self.listener.protocol,
                self.listener.endpoint, getattr(e, "socketError", None) or e))
        self._waitingForPort.addCallback(self._bound)

    def _bound(self, port):
        self.port = port
        address = port.getHost()
        where = "%s:%s" % (getattr(address, "host", ""), getattr(address, "port", ""))
        if not getattr(address, "port", None):
            where = getattr(address, "name", str(address))
        log.info("{name} ({protocol}) listening on {where}, TLS: {tls}",
                 name=self.listener.name, protocol=self.listener.protocol,
                 where=where, tls=self.listener.tls)
        return port


class MailService(service.MultiService):
    """
    The whole server: shared users, store, portal and session counter, and one
    L{ListenerService} per configured listener.

    @ivar users: the L{mailstack.auth.interfaces.IUserBackend} (synchronous:
        for first-start work and tests; the server itself uses C{directory}).
    @ivar directory: the L{mailstack.auth.interfaces.IUserDirectory} over it.
    @ivar metrics: the server's L{mailstack.metrics.PrometheusMetrics} (its
        own registry: two servers in one process count apart).
    @ivar capture: the lab's L{mailstack.capture.CaptureStore} (C{[lab]
        capture} or magic recipients), or L{None}.
    @ivar web: the console's L{mailstack.web.context.WebContext}, or L{None}
        (no C{[web]} section).
    @ivar activity: the L{mailstack.activity.ActivityRecorder} (what each user
        did, for class reports).
    """

    exitOnError = False
    metrics = NO_METRICS
    capture = None
    web = None
    activity = None

    def __init__(self, config, users, store, portal, counter, directory=None):
        service.MultiService.__init__(self)
        self.config = config
        self.users = users
        self.directory = directory
        self.store = store
        self.portal = portal
        self.counter = counter

    def stopService(self):
        """Stop the listeners, then let the user backend go (a database pool's
        connections are closed, not left to the process's exit)."""
        d = defer.maybeDeferred(service.MultiService.stopService, self)
        close = getattr(self.users, "close", None)
        if close is not None:
            d.addBoth(lambda result: (close(), result)[1])
        return d

    def privilegedStartService(self):
        try:
            service.MultiService.privilegedStartService(self)
        except StartupError as e:
            if not self.exitOnError:
                raise
            sys.stderr.write("mailstack: %s\n" % (e,))
            sys.stderr.flush()
            raise SystemExit(1)

    def startService(self):
        service.MultiService.startService(self)
        if self.web is not None:
            self.web.started = self.web.reactor.seconds()
        if self.directory is not None:
            # A backend that cannot answer on the reactor thread gets its
            # first answer for the mechanism offers now.
            self.directory.refreshPlaintextAnswer()
        lab = self.config.lab
        if lab.demo_account:
            log.info("demo account: {address} password {password!r}",
                     address=lab.demo_address, password=lab.demo_password)
        if lab.transcripts:
            log.info("transcripts in {dir}", dir=str(self.config.transcript_dir))
        if lab.capture:
            log.info("capture mode: mail submitted for other domains is kept, never relayed")
        for entry in lab.magic:
            log.info("magic recipient {who}: {action}{seconds}",
                     who=entry.address or entry.local_part + "@*", action=entry.action,
                     seconds="" if entry.seconds is None else " (%g s)" % (entry.seconds,))

    def listenerPort(self, name):
        """
        @return: the bound port number of the named listener (for tests and port 0).
        """
        return self.getServiceNamed(name).port.getHost().port


def prepareDataDir(config):
    """
    First-start work: the data directory, the certificate (when a listener needs
    TLS and self-signed generation is on) and the lab's demo account.
    """
    makeDirectories(config.server.data_dir)  # the store makes its own (MaildirBackend)
    if config.needs_tls and config.tls.generate_self_signed:
        hostnames = list(dict.fromkeys([config.server.hostname, "localhost"]))
        if mstls.ensureCertificate(config.tls.cert, config.tls.key, hostnames):
            log.info("created a self-signed certificate for {names} in {cert}",
                     names=", ".join(hostnames), cert=str(config.tls.cert))
    users = openUsers(config)
    lab = config.lab
    if lab.demo_account and users.lookup(lab.demo_address) is None:
        users.addUser(lab.demo_address, lab.demo_password, scheme=lab.demo_scheme)
        log.info("created the demo account {address}", address=lab.demo_address)
    return users


def openUsers(config):
    """
    The configured user backend (C{[users] backend}, and C{path} or C{dsn}),
    opened; new users may have any domain (the admin command opens its own,
    limited to C{server.domains}: L{mailstack.cli}).

    @raise StartupError: one line naming C{users.path} (or C{users.dsn}: a
        database that cannot be reached), if it cannot be opened.
    """
    plugin = backendNamed(config.users.backend)
    try:
        return plugin.open(config.users.location, defaultDomain=config.server.default_domain,
                           bcryptRounds=config.limits.bcrypt_rounds)
    except UserDirectoryUnavailable as e:
        raise StartupError("%s: users.%s: cannot open the %s users: %s" % (
            config.path, config.users.locationKey, config.users.backend, e))


def buildService(config, reactor=None, protocols=None, inherited=None):
    """
    Build the server from a loaded L{Config}. Creates the data directory, the
    certificate and the demo account on first start.

    @param protocols: protocol name -> L{IProtocolPlugin} (defaults to
        L{PROTOCOLS}); tests pass their own to serve a fake protocol.
    @param inherited: in a worker process (C{[server] workers}): listener
        name -> C{(fd, family)} of the listening sockets the first process
        handed over, served instead of binding.
    @raise StartupError: with a one-line reason.
    """
    if reactor is None:
        from twisted.internet import reactor
    if protocols is None:
        protocols = PROTOCOLS
    try:
        users = prepareDataDir(config)
    except OSError as e:
        raise StartupError("cannot prepare %s: %s" % (
            config.server.data_dir, e.strerror or e))
    except UserDirectoryUnavailable as e:
        raise StartupError("%s: users.%s: %s" % (config.path, config.users.locationKey, e))
    tlsContext = None
    if config.needs_tls:
        try:
            tlsContext = mstls.serverContextFactory(
                config.tls.cert, config.tls.key, config.tls.min_version)
        except mstls.TLSConfigError as e:
            raise StartupError("%s: tls: %s" % (config.path, e))

    plugins, adapters = {}, {}
    for index, listener in enumerate(config.listeners):
        plugin = _resolve(protocols, listener.protocol)
        _checkDisabled(config, index, listener, plugin.disableable)
        plugins[listener.name] = plugin
        adapters.update(plugin.avatarAdapters())

    watcher = MailboxWatcher(reactor)
    try:
        store = storebackends.backendNamed(config.storage.backend).open(
            config, reactor, watcher)
    except KeyError:
        raise StartupError("%s: storage.backend: no store named %r" % (
            config.path, config.storage.backend))
    except (ValueError, OSError, ImportError) as e:
        raise StartupError("%s: storage.backend: %s" % (config.path, e))
    directory = UserDirectory(users, reactor)
    portal = buildPortal(MailRealm(store, adapters), [UserDirectoryChecker(directory)])
    counter = SessionCounter()
    # The console's live transcripts: each session's lines as its file has them.
    hub = TranscriptHub(reactor) if config.web is not None and config.lab.transcripts else None
    # A worker ([server] workers) reports to the first process, which shows
    # the whole server: metrics, activity, submissions, live transcripts.
    reporter = None
    if inherited is not None and config.server.worker > 1:
        reporter = workerlink.WorkerReporter.toPipe(
            reactor, msworkers.reportDescriptor(len(inherited)))
        hub = workerlink.ForwardingHub(reporter) if hub is not None else None
    # One penalty for the whole server: failed logins from an address slow
    # its next logins on every listener, protocol and mechanism.
    authPenalty = AuthPenalty.fromLimits(config.limits, reactor)
    top = MailService(config, users, store, portal, counter, directory)
    top.metrics = metrics = PrometheusMetrics()
    watcher.setServiceParent(top)
    # What each user did, for class reports; saved last when the server stops.
    if reporter is not None:
        top.activity = activity = workerlink.ForwardingActivity(reporter)
        workerlink.MetricsPusher(reporter, metrics, reactor,
                                 counter=counter).setServiceParent(top)
        # The per-IP limit and the failed-login penalty are the server's.
        limits = workerlink.LimitsLink(reporter, counter, authPenalty, reactor,
                                       perIP=config.limits.connections_per_ip > 0)
        limits.setServiceParent(top)
    else:
        top.activity = activity = ActivityRecorder(
            config.server.data_dir / "activity.json", reactor)
        try:
            activity.load()
        except OSError as e:
            raise StartupError("cannot read %s: %s" % (activity.path, e.strerror or e))
        activity.setServiceParent(top)
    # the lab's capture store: the SMTP policy keeps mail in it, the console shows it
    top.capture = captureStoreFor(config, store, reactor)
    shared = {"lab.capture": top.capture}
    if reporter is not None and config.web is not None:
        shared["smtp.submissions"] = workerlink.ForwardingSubmissions(reporter, reactor)
    for listener in config.listeners:
        context = ListenerContext(config=config, listener=listener, portal=portal,
                                  users=directory, store=store, tlsContext=tlsContext,
                                  counter=counter, reactor=reactor, shared=shared,
                                  activity=activity,
                                  authPenalty=authPenalty, metrics=metrics)
        built = plugins[listener.name].buildFactory(context)
        for extra in built.services:
            if extra.parent is None:
                extra.setServiceParent(top)
        factory = built.factory
        if config.lab.transcripts:
            from mailstack.transcript import TranscriptFactory
            factory = TranscriptFactory(factory, config.transcript_dir,
                                        listener.protocol, clock=reactor, hub=hub)
        if built.compressible:
            # Outside the transcript (it records decompressed lines), above TLS.
            factory = CompressingFactory(factory, listener.protocol, clock=reactor)
        factory = LimitingFactory(factory, counter, listener.protocol,
                                  config.limits.connections_per_ip, built.refusal,
                                  maxConnections=listener.max_connections,
                                  metrics=metrics.forListener(listener.name, listener.protocol),
                                  implicitTLS=listener.tls == "implicit")
        if listener.tls == "implicit":
            factory = TLSMemoryBIOFactory(tlsContext, False, factory, clock=reactor)
            factory.noisy = False
        if inherited is not None:  # a worker: the first process bound it
            endpoint = msworkers.InheritedEndpoint(reactor, *inherited[listener.name])
        else:
            endpoint = endpoints.serverFromString(reactor, listener.endpoint)
        if built.eagerWrites:
            # Replies leave at once when nothing waits to be sent (protocol/eager.py).
            endpoint = EagerEndpoint(endpoint)
        ListenerService(listener, endpoint, factory).setServiceParent(top)
    # The console's session counts: this process's and its workers'.
    sessions = workerlink.ServerSessions(counter)
    supervisor = _addWorkers(config, reactor, top, workerlink.WorkerReports(
        metrics=metrics, activity=activity, hub=hub,
        recordSubmission=_submissionRecorder(shared.get("smtp.submissions")),
        sessions=sessions), counter, authPenalty, shared.get("pop3.waiters"))
    if config.web is not None and config.server.worker == 1:  # the console: first process only
        top.web = WebContext(config=config, store=store, directory=directory, users=users,
                             submissions=shared.get("smtp.submissions"),
                             authPenalty=authPenalty, reactor=reactor,
                             counter=counter if supervisor is None else sessions,
                             activity=activity, metrics=metrics,
                             listeners=[s for s in top if isinstance(s, ListenerService)],
                             capture=top.capture, workers=supervisor)
        top.web.transcripts = hub
        WebService(config.web, reactor, buildSite(top.web, tlsContext)).setServiceParent(top)
    return top


def _submissionRecorder(submissions):
    """A worker's submission record (a dict) -> kept in C{submissions}, the first process's log."""
    if submissions is None:
        return None
    from mailstack.smtp.submissions import Submission

    def record(values):
        submissions.record(Submission.fromDict(values))
    return record


def _addWorkers(config, reactor, top, reports, counter, authPenalty, maildrops=None):
    """
    C{[server] workers}: the first process supervises the others (handing
    them every bound listener and reading their L{workerlink.WorkerReports}
    C{reports}) and shares the per-IP limit's C{counter}, the
    C{authPenalty} and the POP3 C{maildrops} waiting line's releases with
    them; a worker stops when the first process goes.

    @return: the first process's L{msworkers.WorkerSupervisor}, or L{None}.
    """
    if config.server.worker > 1:
        link = top.getServiceNamed("limits-link")
        if maildrops is not None:
            link.shareMaildrops(maildrops)
        msworkers.ParentWatch(reactor, onData=link.received).setServiceParent(top)
        return None
    if config.server.workers > 1:
        reports.limits = workerlink.SharedLimits(
            counter, authPenalty, reactor, perIP=config.limits.connections_per_ip > 0)
        if maildrops is not None:
            reports.limits.shareMaildrops(maildrops)
        reports.limits.setServiceParent(top)
        log.info("{workers} processes share the per-IP limits: connections_per_ip = "
                 "{perIP}{off} and the failed-login penalty count every process's clients "
                 "(exchanged every {interval:g} s)", workers=config.server.workers,
                 perIP=config.limits.connections_per_ip,
                 off="" if config.limits.connections_per_ip else " (no limit)",
                 interval=workerlink.LIMITS_INTERVAL)
        listeners = [s for s in top if isinstance(s, ListenerService)]

        def bound():
            return [(s.listener.name, s.port.fileno(), msworkers.addressFamily(s.port))
                    for s in listeners]
        supervisor = msworkers.WorkerSupervisor(
            reactor, config.server.workers, bound, msworkers.workerCommand(str(config.path)),
            reports=reports)
        supervisor.setServiceParent(top)
        return supervisor
    return None


class WebService(StreamServerEndpointService):
    """
    The console's listener (C{[web] endpoint}); like L{ListenerService} it
    binds before twistd drops root and stops start-up with one line if it
    cannot.
    """

    _raiseSynchronously = True

    def __init__(self, web, reactor, factory):
        StreamServerEndpointService.__init__(
            self, endpoints.serverFromString(reactor, web.endpoint), factory)
        self.web = web
        self.port = None
        self.setName("web")

    def privilegedStartService(self):
        try:
            StreamServerEndpointService.privilegedStartService(self)
        except Exception as e:
            raise StartupError("web console: cannot listen on %s: %s" % (
                self.web.endpoint, getattr(e, "socketError", None) or e))
        self._waitingForPort.addCallback(self._bound)

    def _bound(self, port):
        self.port = port
        address = port.getHost()
        if getattr(address, "port", None) is None:
            log.info("web console listening on {where}", where=getattr(address, "name", address))
        else:
            host = address.host if ":" not in address.host else "[%s]" % (address.host,)
            log.info("web console: {scheme}://{host}:{port}/",
                     scheme="https" if self.web.tls else "http", host=host, port=address.port)
        return port


class Options(usage.Options):
    """
    Options of C{twistd mailstack}.
    """

    synopsis = "[--config FILE]"
    longdesc = ("Run the mailstack SMTP, POP3 and IMAP server. Listeners, TLS, "
                "limits and the lab demo account all come from the TOML config.")
    optParameters = [
        ["config", "c", "etc/mailstack.toml", "the TOML configuration file"],
        # Given by the first process to the workers it starts ([server] workers).
        ["worker", None, None, "(internal) run as worker N of [server] workers", int],
        ["inherit", None, "", "(internal) the listening sockets handed to a worker"],
    ]


def makeService(options):
    """
    twistd entry point: load the config, build the service; on any configuration
    or start-up problem print one line and exit with status 1.
    """
    try:
        config = loadConfig(options["config"])
        inherited = None
        if options.get("worker"):
            config, inherited = _asWorker(config, options["worker"], options.get("inherit", ""))
        top = buildService(config, inherited=inherited)
    except (ConfigError, StartupError) as e:
        sys.stderr.write("mailstack: %s\n" % (e,))
        sys.stderr.flush()
        raise SystemExit(1)
    top.exitOnError = True
    return top


def _asWorker(config, number, inherit):
    """
    The config and inherited listeners of worker C{number}, started by the
    first process (L{mailstack.workers}); it leads its own process group, so
    a terminal's Ctrl-C reaches the first process, which stops it.
    """
    import dataclasses
    import os
    try:
        inherited = msworkers.parseInherited(inherit)
    except ValueError as e:
        raise StartupError("worker %d: %s" % (number, e))
    missing = [listener.name for listener in config.listeners if listener.name not in inherited]
    if number < 2 or missing:
        raise StartupError("worker %d: no inherited socket for %s" % (
            number, ", ".join(missing) or "it"))
    os.setpgrp()
    return dataclasses.replace(config, server=dataclasses.replace(
        config.server, worker=number)), inherited
