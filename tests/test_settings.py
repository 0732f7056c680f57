"""
Tests for L{mailstack.settings}.
"""

from types import SimpleNamespace

from twisted.trial import unittest

from mailstack.imap.server import IMAPSettings
from mailstack.metrics import PrometheusMetrics
from mailstack.pop3.server import POP3Settings
from mailstack.settings import ListenerSettings, listenerSettings
from mailstack.smtp.server import SMTPSettings


def context():
    limits = SimpleNamespace(
        bad_commands=7, commands_per_session=500, auth_failures_delay=2,
        auth_failures_disconnect=5, auth_failure_delay_seconds=1.5,
        auth_failure_delay_max_seconds=12.0, command_line_timeout=45)
    config = SimpleNamespace(server=SimpleNamespace(hostname="mail.lab.test",
                                                  default_domain="lab.test"), limits=limits)
    listener = SimpleNamespace(name="submission", protocol="submission", tls="starttls",
                               allow_plaintext_auth=True, disabled=["AUTH", "STARTTLS"],
                               challenge_auth="always")
    return SimpleNamespace(config=config, listener=listener, tlsContext=object(),
                           authPenalty=object(), activity=object(),
                           metrics=PrometheusMetrics())


class ListenerSettingsTests(unittest.TestCase):
    """
    L{listenerSettings} reads the shared fields from a listener's context.
    """

    def test_fields(self):
        """Every shared field comes from the config, the listener or the context."""
        ctx = context()
        self.assertEqual(listenerSettings(ctx), dict(
            hostname="mail.lab.test", tlsMode="starttls", tlsContext=ctx.tlsContext,
            allowPlaintextAuth=True, challengeAuth="always", defaultDomain="lab.test",
            disabled=frozenset({"AUTH", "STARTTLS"}),
            maxBadCommands=7, maxCommands=500, authFailuresDelay=2,
            authFailuresDisconnect=5, authFailureDelay=1.5, authFailureDelayMax=12.0,
            authPenalty=ctx.authPenalty, activity=ctx.activity, commandLineTimeout=45,
            metrics=ctx.metrics.forListener("submission", "submission")))

    def test_everyEngineTakesThem(self):
        """The SMTP, POP3 and IMAP settings accept the shared fields and keep them."""
        fields = listenerSettings(context())
        for cls in (SMTPSettings, POP3Settings, IMAPSettings):
            settings = cls(**fields)
            self.assertIsInstance(settings, ListenerSettings)
            self.assertEqual(settings.maxBadCommands, 7)
            self.assertEqual(settings.authFailureDelay, 1.5)
