"""
The C{pop3} protocol plug-in: turns a listener's config into a L{POP3Factory}.
"""

from zope.interface import implementer

from mailstack.listener import IProtocolPlugin, ProtocolBuilt
from mailstack.pop3.mailbox import IMaildrop, maildropAdapter
from mailstack.pop3.server import DISABLEABLE, POP3Factory, POP3Settings
from mailstack.settings import listenerSettings


@implementer(IProtocolPlugin)
class POP3Plugin:
    """
    POP3 (RFC 1939 and its extensions), on STLS or implicit-TLS listeners alike.
    """

    disableable = DISABLEABLE

    def avatarAdapters(self):
        """Realm adapters for POP3: the L{IMaildrop} over the user's INBOX."""
        return {IMaildrop: maildropAdapter}

    def buildFactory(self, context):
        """The factory of one C{pop3} listener."""
        limits = context.config.limits
        settings = POP3Settings(
            **listenerSettings(context),
            maxLine=limits.line_length,
            # docs/configuration.md: command_timeout is the SMTP/POP3 idle timer
            # (default 600 s, RFC 1939's ten-minute minimum); idle_timeout is IMAP's.
            idleTimeout=limits.command_timeout,
        )
        users = context.users
        plaintextSecrets = users.allPlaintextSecrets if users is not None else None
        factory = POP3Factory(settings, context.portal, plaintextSecrets, context.reactor)
        return ProtocolBuilt(
            factory=factory,
            refusal=b"-ERR [SYS/TEMP] Too many connections from your address\r\n")


plugin = POP3Plugin()
