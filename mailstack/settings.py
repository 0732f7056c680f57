"""
What every protocol engine's listener settings hold (the hostname, TLS,
plaintext auth, when CRAM-MD5/APOP are offered, disabled names, bad-command,
command and auth-failure limits, the server's shared
L{mailstack.throttle.AuthPenalty}, the command-line deadline, the listener's
L{mailstack.instruments.IListenerMetrics}),
and the one place they are read from the config. Each engine's settings class
(L{mailstack.smtp.server.SMTPSettings}, ...) extends L{ListenerSettings} with
its own fields.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

from mailstack.activity import NO_ACTIVITY
from mailstack.instruments import NO_LISTENER_METRICS

if TYPE_CHECKING:
    from mailstack.listener import ListenerContext


@dataclasses.dataclass(frozen=True)
class ListenerSettings:
    """
    The settings the SMTP, POP3 and IMAP engines share.
    """
    hostname: str
    tlsMode: str = "none"
    tlsContext: object = None
    allowPlaintextAuth: bool = False
    challengeAuth: str = "auto"
    defaultDomain: Optional[str] = None
    disabled: frozenset = frozenset()
    maxBadCommands: int = 20
    maxCommands: int = 100000
    authFailuresDelay: int = 2
    authFailuresDisconnect: int = 10
    authFailureDelay: float = 2.0
    authFailureDelayMax: float = 15.0
    authPenalty: object = None
    activity: Any = NO_ACTIVITY  # the server's IActivity (class reports)
    commandLineTimeout: float = 60.0
    metrics: Any = NO_LISTENER_METRICS  # the listener's IListenerMetrics


def listenerSettings(context: ListenerContext) -> dict[str, Any]:
    """
    The L{ListenerSettings} fields for one listener, as keyword arguments.

    @param context: a L{mailstack.listener.ListenerContext}.
    """
    config, listener = context.config, context.listener
    limits = config.limits
    return dict(
        hostname=config.server.hostname,
        tlsMode=listener.tls,
        tlsContext=context.tlsContext,
        allowPlaintextAuth=listener.allow_plaintext_auth,
        challengeAuth=listener.challenge_auth,
        defaultDomain=config.server.default_domain,
        disabled=frozenset(listener.disabled),
        maxBadCommands=limits.bad_commands,
        maxCommands=limits.commands_per_session,
        authFailuresDelay=limits.auth_failures_delay,
        authFailuresDisconnect=limits.auth_failures_disconnect,
        authFailureDelay=limits.auth_failure_delay_seconds,
        authFailureDelayMax=limits.auth_failure_delay_max_seconds,
        authPenalty=context.authPenalty,
        activity=context.activity,
        commandLineTimeout=limits.command_line_timeout,
        metrics=context.metrics.forListener(listener.name, listener.protocol),
    )
