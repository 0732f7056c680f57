"""
The C{pop3} protocol plug-in: turns a listener's config into a L{POP3Factory}.
"""

from zope.interface import implementer

from mailstack.listener import IProtocolPlugin, ProtocolBuilt
from mailstack.pop3.mailbox import IMaildrop, maildropAdapter
from mailstack.pop3.server import DISABLEABLE, POP3Factory, POP3Settings
from mailstack.pop3.waiting import MaildropWaiters
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
            maildropLock=context.config.pop3.lock,
            maildropWait=context.config.pop3.lock_wait,
        )
        users = context.users
        plaintextSecrets = users.allPlaintextSecrets if users is not None else None
        # One line of logins waiting for busy maildrops, for every POP3 listener.
        waiters = context.shared.get("pop3.waiters")
        if waiters is None:
            waiters = context.shared["pop3.waiters"] = MaildropWaiters(context.reactor)
        factory = POP3Factory(settings, context.portal, plaintextSecrets, context.reactor,
                              waiters=waiters)
        return ProtocolBuilt(
            factory=factory,
            refusal=b"-ERR [SYS/TEMP] Too many connections from your address\r\n")


plugin = POP3Plugin()
