"""
The C{smtp} and C{submission} protocol plug-in: turns a listener's config into
an L{SMTPFactory} (settings, the server's one policy and relay queue).
"""

from zope.interface import implementer

from mailstack.listener import IProtocolPlugin, ProtocolBuilt
from mailstack.settings import listenerSettings
from mailstack.smtp.server import DISABLEABLE, SMTPFactory, SMTPSettings


def _sharedPolicy(context):
    """
    One policy (and one relay queue, if a smarthost is set) per server, shared
    by the smtp and submission listeners.
    """
    from mailstack.smtp.delivery import SMTPPolicy
    policy = context.shared.get("smtp.policy")
    if policy is not None:
        return policy, ()
    config = context.config
    policy = SMTPPolicy(config.server.domains, context.users, context.store)
    services = ()
    if config.relay.smarthost is not None:
        from mailstack.relay.queue import RelayQueue
        policy.queue = RelayQueue(
            config.queue_dir, config.relay.smarthost, config.server.hostname,
            policy.bounce, reactor=context.reactor,
            retrySchedule=config.relay.retry_schedule,
            lifetime=config.relay.queue_lifetime, requireTLS=config.relay.require_tls)
        services = (policy.queue,)
    context.shared["smtp.policy"] = policy
    return policy, services


@implementer(IProtocolPlugin)
class SMTPPlugin:
    """
    SMTP on port 25 (C{smtp}) and message submission (C{submission}, RFC 6409):
    one engine, told apart by the listener's protocol name.
    """

    disableable = DISABLEABLE

    def avatarAdapters(self):
        """Realm adapters for SMTP (the authenticated sender)."""
        from mailstack.smtp.delivery import avatarAdapters
        return avatarAdapters()

    def buildFactory(self, context):
        """The factory of one C{smtp} or C{submission} listener."""
        config, listener = context.config, context.listener
        limits = config.limits
        settings = SMTPSettings(
            **listenerSettings(context),
            submission=listener.protocol == "submission",
            maxMessageSize=limits.message_size,
            maxCommandLine=limits.smtp_line_length,
            maxTextLine=limits.text_line_length,
            maxRecipients=limits.recipients_per_message,
            timeout=limits.command_timeout,
            bareNewline=config.smtp.bare_newline,
            submissions=context.shared.get("smtp.submissions"),
        )
        policy, services = _sharedPolicy(context)
        factory = SMTPFactory(settings, policy, context.portal, context.reactor)
        return ProtocolBuilt(
            factory=factory,
            refusal=b"421 4.7.0 Too many connections from your address\r\n",
            services=services)


plugin = SMTPPlugin()
