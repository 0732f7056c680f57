"""
The C{imap} protocol plug-in: turns a listener's config into an L{IMAPFactory}.
"""

from zope.interface import implementer

from mailstack.imap.mailbox import IIMAPAccount, avatarFactory
from mailstack.imap.server import DISABLEABLE, IMAPFactory, IMAPSettings
from mailstack.listener import IProtocolPlugin, ProtocolBuilt
from mailstack.settings import listenerSettings


@implementer(IProtocolPlugin)
class IMAPPlugin:
    """
    IMAP4rev1 with its extensions, on STARTTLS or implicit-TLS listeners alike.
    """

    disableable = DISABLEABLE

    def avatarAdapters(self):
        """Realm adapters for IMAP: the account view over the user's store."""
        return {IIMAPAccount: avatarFactory}

    def buildFactory(self, context):
        """The factory of one C{imap} listener."""
        limits = context.config.limits
        settings = IMAPSettings(
            **listenerSettings(context),
            maxLineLength=limits.line_length,
            maxLiteralSize=limits.literal_size,
            idleTimeout=max(limits.idle_timeout, 1),
            loginTimeout=min(limits.command_timeout, limits.idle_timeout),
        )
        users = context.users
        factory = IMAPFactory(settings, context.portal, context.reactor,
                              cramAvailable=users.allPlaintextSecrets if users is not None else None)
        return ProtocolBuilt(
            factory=factory,
            refusal=b"* BYE [UNAVAILABLE] Too many connections from your address\r\n",
            compressible="COMPRESS=DEFLATE" not in settings.disabled)


plugin = IMAPPlugin()
