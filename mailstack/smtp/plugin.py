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
    policy = SMTPPolicy(config.server.domains, context.users, context.store,
                        metrics=context.metrics)
    services = ()
    if config.relay.smarthost is not None:
        from mailstack.relay.queue import RelayQueue
        policy.queue = RelayQueue(
            config.queue_dir, config.relay.smarthost, config.server.hostname,
            policy.bounce, reactor=context.reactor,
            retrySchedule=config.relay.retry_schedule,
            lifetime=config.relay.queue_lifetime, requireTLS=config.relay.require_tls)
        context.metrics.watchQueue("relay", policy.queue.__len__)
        services = (policy.queue,)
    services += _labParts(context, policy)
    context.shared["smtp.policy"] = policy
    return policy, services


def _sharedSubmissions(context):
    """
    The server's one submission log (data_dir/submissions.jsonl), kept when
    it has a web console to show it ([web]), else L{None}.
    """
    config = context.config
    if getattr(config, "web", None) is None:
        return None
    if "smtp.submissions" not in context.shared:
        from mailstack.smtp.submissions import SubmissionLog
        context.shared["smtp.submissions"] = SubmissionLog.open(
            context.reactor, str(config.server.data_dir / "submissions.jsonl"))
    return context.shared["smtp.submissions"]


def _labParts(context, policy):
    """
    The lab's part of the policy: the capture store (C{[lab] capture}: mail
    for other domains kept, never relayed; the one the service made, shared
    with the console) and the magic recipients, a service (their bounces and
    slow replies wait on the reactor, cancelled when it stops).
    """
    from mailstack.capture import captureStoreFor
    lab = context.config.lab
    if "lab.capture" not in context.shared:
        context.shared["lab.capture"] = captureStoreFor(
            context.config, context.store, context.reactor)
    policy.capture = context.shared["lab.capture"]
    policy.captureOutbound = lab.capture
    if not lab.magic:
        return ()
    from mailstack.smtp.magic import MagicRecipients
    policy.magic = MagicRecipients(lab.magic, context.reactor,
                                   labDSNMaker(context.config.server.hostname), policy.bounce)
    return (policy.magic,)


def labDSNMaker(hostname):
    """The magic recipients' C{makeDSN}: L{mailstack.relay.dsn}'s RFC 3464 report."""
    from mailstack.relay import dsn

    def makeDSN(queueID, sender, arrival, failed, headers, now):
        reports = [dsn.RecipientReport(address=address, status=status, diagnostic=diagnostic,
                                       remoteMTA=None, explanation=explanation,
                                       lastAttempt=now)
                   for address, status, diagnostic, explanation in failed]
        return dsn.buildDSN(hostname, queueID, sender, arrival, reports, headers, now=now)
    return makeDSN


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
            submissions=_sharedSubmissions(context),
        )
        policy, services = _sharedPolicy(context)
        factory = SMTPFactory(settings, policy, context.portal, context.reactor)
        return ProtocolBuilt(
            factory=factory,
            refusal=b"421 4.7.0 Too many connections from your address\r\n",
            services=services,
            eagerWrites=True)  # every reply is one write


plugin = SMTPPlugin()
