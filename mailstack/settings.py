"""
What every protocol engine's listener settings hold (the hostname, TLS,
plaintext auth, when CRAM-MD5/APOP are offered, disabled names, bad-command,
command and auth-failure limits),
and the one place they are read from the config. Each engine's settings class
(L{mailstack.smtp.server.SMTPSettings}, ...) extends L{ListenerSettings} with
its own fields.
"""

import dataclasses


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
    disabled: frozenset = frozenset()
    maxBadCommands: int = 20
    maxCommands: int = 100000
    authFailuresDelay: int = 3
    authFailuresDisconnect: int = 10
    authFailureDelay: float = 2.0

    def offersChallengeAuth(self, everyUserPlain):
        """
        Whether CRAM-MD5 (and POP3's APOP) are offered: with C{challenge_auth =
        "always"}, or when they work for every account (C{everyUserPlain()},
        asked each time: the users file may have changed). Clients pick the
        strongest mechanism advertised and do not fall back, so offering one
        that fails for some users locks those users out.
        """
        return self.challengeAuth == "always" or bool(everyUserPlain())


def listenerSettings(context):
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
        disabled=frozenset(listener.disabled),
        maxBadCommands=limits.bad_commands,
        maxCommands=limits.commands_per_session,
        authFailuresDelay=limits.auth_failures_delay,
        authFailuresDisconnect=limits.auth_failures_disconnect,
        authFailureDelay=limits.auth_failure_delay_seconds,
    )
