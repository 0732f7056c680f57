"""
What passes between the server and a protocol package when one listener is
built: the L{ListenerContext} a plug-in receives, the L{ProtocolBuilt} it
returns, and L{IProtocolPlugin}, the one interface by which SMTP, POP3 and IMAP
(and test fakes) declare themselves.

This module is neutral ground: L{mailstack.service} imports it and the protocol
packages import it, so no protocol module needs to import the service.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping

from zope.interface import Attribute, Interface

from mailstack.activity import NO_ACTIVITY
from mailstack.instruments import NO_METRICS

if TYPE_CHECKING:
    from twisted.application.service import IService
    from twisted.cred.portal import Portal
    from twisted.internet.protocol import Factory

    from mailstack.config import Config, ListenerConfig


@dataclasses.dataclass(frozen=True)
class ListenerContext:
    """
    Everything a protocol plug-in may use to build one listener's factory.

    @ivar config: the whole loaded L{mailstack.config.Config}.
    @ivar listener: this listener's L{mailstack.config.ListenerConfig}.
    @ivar portal: the one L{Portal} every listener authenticates against.
    @ivar users: the L{mailstack.auth.interfaces.IUserDirectory} (L{None} in some tests).
    @ivar store: the L{mailstack.storage.interfaces.IMailStore}.
    @ivar tlsContext: the server's TLS context factory, L{None} without TLS.
    @ivar counter: the L{mailstack.sessions.SessionCounter}.
    @ivar reactor: the reactor (or a clock in tests).
    @ivar shared: objects one server shares between listeners, keyed by a name
        the plug-in chooses (e.g. C{"smtp.policy"} for smtp and submission).
    @ivar authPenalty: the server's L{mailstack.throttle.AuthPenalty} (failed
        logins per client address, shared by every listener), L{None} in
        tests that do not need one.
    @ivar activity: the server's L{mailstack.activity.IActivity}: what each
        user did, for class reports (keeps nothing unless given).
    @ivar metrics: the server's L{mailstack.instruments.IMetrics} (counts
        nothing unless given).
    """
    config: Config
    listener: ListenerConfig
    portal: Portal | None
    users: Any
    store: Any
    tlsContext: Any
    counter: Any
    reactor: Any
    shared: dict[str, Any]
    authPenalty: Any = None
    activity: Any = NO_ACTIVITY
    metrics: Any = NO_METRICS


@dataclasses.dataclass(frozen=True)
class ProtocolBuilt:
    """
    What a plug-in's L{IProtocolPlugin.buildFactory} returns.

    @ivar factory: the protocol factory to serve.
    @ivar refusal: bytes sent to a peer over its per-IP connection limit.
    @ivar services: services the protocol needs running (a relay queue...),
        shared between listeners; each is added to the server once.
    @ivar compressible: whether sessions may turn on DEFLATE compression: the
        service puts L{mailstack.protocol.compress} under the transcript.
    @ivar eagerWrites: whether the listener's TCP connections send a write at
        once when nothing waits to be sent (L{mailstack.protocol.eager}): for
        a protocol that answers each command in one write (SMTP); one that
        writes a reply in many pieces would send each as a packet of its own.
    """
    factory: Factory
    refusal: bytes
    services: tuple[IService, ...] = ()
    compressible: bool = False
    eagerWrites: bool = False


class IProtocolPlugin(Interface):
    """
    A protocol the server can serve on a listener (C{protocol = "..."} in the
    config). L{mailstack.service.PROTOCOLS} maps each protocol name to one.
    """

    disableable = Attribute(
        "frozenset of the names a listener's C{disabled} list may hold (capabilities, "
        "commands, SASL mechanisms), upper-case; L{None} accepts any name.")

    def avatarAdapters() -> Mapping[Any, Callable[..., Any]]:
        """
        The realm adapters this protocol needs.

        @return: C{{interface: factory}}, C{factory(account, avatarId)} returning
            C{(avatar, logout)}; see L{mailstack.auth.realm.MailRealm}.
        """

    def buildFactory(context: ListenerContext) -> ProtocolBuilt:
        """
        Build one listener's protocol factory.

        @param context: the L{ListenerContext} of the listener.
        @return: a L{ProtocolBuilt}.
        """
