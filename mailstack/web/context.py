"""
L{WebContext}: what every part of the web console is given (as
L{mailstack.listener.ListenerContext} is for a protocol): the server's shared
objects, and hooks other parts fill when they are running.
"""

import dataclasses
from typing import Any


@dataclasses.dataclass
class WebContext:
    """
    @ivar config: the L{mailstack.config.Config}.
    @ivar store: the L{mailstack.storage.interfaces.IMailStore} (asynchronous:
        every call that touches mail returns a Deferred).
    @ivar directory: the L{mailstack.auth.interfaces.IUserDirectory}
        (Deferreds: logins and lookups).
    @ivar users: the L{mailstack.auth.interfaces.IUserBackend}, synchronous:
        changes (add a user, reset a password) are run in a thread
        (L{runInThread}), never on the reactor.
    @ivar authPenalty: the server's L{mailstack.throttle.AuthPenalty}, shared
        with every mail protocol, so failed console logins slow an address
        everywhere.
    @ivar reactor: the reactor (a clock in tests).
    @ivar counter: the L{mailstack.sessions.SessionCounter} (sessions per
        protocol), or L{None}.
    @ivar listeners: C{[(ListenerConfig, port or None)]}: the mail listeners
        and, once bound, their ports, for the status page.
    @ivar started: C{reactor.seconds()} when the server started (uptime).
    @ivar transcripts: the live transcript hub, when running.
    @ivar capture: the capture store (lab capture mode), when running.
    @ivar metrics: the metrics registry, when running.
    @ivar activity: the L{mailstack.activity.ActivityRecorder}: what each user
        did (class reports, L{mailstack.web.reports}).
    @ivar submissions: the L{mailstack.smtp.submissions.SubmissionLog}: what
        users' clients sent over SMTP, with TLS and login (the API's
        submissions), when the server keeps one.
    @ivar tokens: the API tokens' L{mailstack.web.tokens.TokenStore}: the
        data directory's, made on first use (L{mailstack.web.tokens.tokensFor}).
    @ivar navigation: C{[(label, href, adminOnly)]}: the links in every
        console page's header (L{mailstack.web.app.buildRoot} fills it).
    @ivar workers: with C{[server] workers} above 1, the
        L{mailstack.workers.WorkerSupervisor} (C{count}, C{processes()}).
    """

    config: Any
    store: Any
    directory: Any
    users: Any
    authPenalty: Any
    reactor: Any
    counter: Any = None
    listeners: list = dataclasses.field(default_factory=list)
    started: float | None = None
    transcripts: Any = None
    capture: Any = None
    metrics: Any = None
    activity: Any = None
    submissions: Any = None
    tokens: Any = None
    navigation: list = dataclasses.field(default_factory=list)
    workers: Any = None

    def runInThread(self, function, *args, **kwargs):
        """
        C{function(*args, **kwargs)} in the reactor's thread pool (user
        backend changes, disk work).

        @return: a Deferred firing with its result.
        """
        from twisted.internet import threads
        if hasattr(self.reactor, "getThreadPool"):
            return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                             function, *args, **kwargs)
        return threads.deferToThread(function, *args, **kwargs)
