"""
Tests for L{mailstack.config}: every start-up error names file, key and reason.
"""

import dataclasses
import os
from pathlib import Path

from twisted.trial import unittest

from mailstack.config import ConfigError, loadConfig
from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig

ROOT = Path(__file__).resolve().parent.parent


class ShippedConfigTests(unittest.TestCase):
    """
    The configs in etc/ load and say what README.md and docs/configuration.md promise.
    """

    def test_labConfig(self):
        """The lab config loads with the lab domain, demo account and transcripts."""
        config = loadConfig(ROOT / "etc" / "mailstack.toml")
        self.assertEqual(config.server.domains, ("lab.test",))
        self.assertEqual(config.server.default_domain, "lab.test")
        self.assertTrue(config.lab.demo_account)
        self.assertEqual(config.lab.demo_address, "demo@lab.test")
        self.assertEqual(config.lab.demo_scheme, "PLAIN")
        self.assertTrue(config.lab.transcripts)
        self.assertEqual(config.server.data_dir, ROOT / "var")
        for listener in config.listeners:
            self.assertEqual(listener.address[0], "127.0.0.1", listener.name)
        self.assertEqual(
            sorted((l.protocol, l.address[1], l.tls) for l in config.listeners),
            [("imap", 3143, "starttls"), ("imap", 3993, "implicit"),
             ("pop3", 3110, "starttls"), ("pop3", 3995, "implicit"),
             ("smtp", 3025, "starttls"), ("submission", 3465, "implicit"),
             ("submission", 3587, "starttls")])

    def test_productionConfig(self):
        """The production config has no demo account and no plaintext auth."""
        text = (ROOT / "etc" / "mailstack-production.toml").read_text()
        # Its certificate lives in /etc; point it at a generated one to load it.
        path = writeConfig(self, text.replace("generate_self_signed = false",
                                              "generate_self_signed = true"))
        config = loadConfig(path)
        self.assertFalse(config.lab.demo_account)
        self.assertFalse(config.lab.transcripts)
        self.assertEqual(config.server.data_dir, Path("/var/lib/mailstack"))
        self.assertEqual(
            sorted((l.protocol, l.address[1], l.tls) for l in config.listeners),
            [("imap", 143, "starttls"), ("imap", 993, "implicit"),
             ("pop3", 110, "starttls"), ("pop3", 995, "implicit"),
             ("smtp", 25, "starttls"), ("submission", 465, "implicit"),
             ("submission", 587, "starttls")])
        for listener in config.listeners:
            self.assertFalse(listener.allow_plaintext_auth, listener.name)
            self.assertIn(listener.address[0], ("", "0.0.0.0", "::"), listener.name)


class LoadTests(unittest.TestCase):
    """
    Values, defaults and path resolution.
    """

    def test_defaultsAndPaths(self):
        """Relative paths resolve against the config file's directory."""
        path = writeConfig(self)
        config = loadConfig(path)
        base = Path(path).resolve().parent
        self.assertEqual(config.server.data_dir, base / "var")
        self.assertEqual(config.users_file, base / "var" / "users")
        self.assertEqual(config.mail_dir, base / "var" / "mail")
        self.assertEqual(config.tls.cert, base / "var" / "tls" / "cert.pem")
        self.assertEqual(config.tls.min_version, "1.2")
        self.assertEqual(config.limits.bcrypt_rounds, 4)
        self.assertEqual(config.limits.smtp_line_length, 512)
        self.assertEqual(config.listeners, ())
        self.assertFalse(config.needs_tls)

    def test_listener(self):
        """A listener table becomes a ListenerConfig with its address."""
        path = writeConfig(self, extra=listenerTOML(
            "imap", "tcp:3143:interface=127.0.0.1", tls="starttls",
            allow_plaintext_auth=True, disabled=["idle", "move"]))
        (listener,) = loadConfig(path).listeners
        self.assertEqual(listener.name, "imap")
        self.assertEqual(listener.protocol, "imap")
        self.assertEqual(listener.tls, "starttls")
        self.assertTrue(listener.allow_plaintext_auth)
        self.assertEqual(listener.disabled, ("IDLE", "MOVE"))
        self.assertEqual(listener.address, ("127.0.0.1", 3143))
        self.assertEqual(listener.challenge_auth, "auto")

    def test_penaltyAndDeadlineKeys(self):
        """[limits] holds the auth penalty and command-line deadline; their defaults."""
        limits = loadConfig(writeConfig(self)).limits
        self.assertEqual((limits.auth_failures_delay, limits.auth_failure_delay_seconds,
                          limits.auth_failure_delay_max_seconds, limits.auth_penalty_seconds,
                          limits.auth_penalty_addresses, limits.command_line_timeout),
                         (2, 2.0, 15.0, 300, 10000, 60))
        limits = loadConfig(writeConfig(self, BASE_CONFIG.replace("[limits]", (
            "[limits]\nauth_failure_delay_max_seconds = 30\nauth_penalty_seconds = 60\n"
            "auth_penalty_addresses = 500\ncommand_line_timeout = 20")))).limits
        self.assertEqual((limits.auth_failure_delay_max_seconds, limits.auth_penalty_seconds,
                          limits.auth_penalty_addresses, limits.command_line_timeout),
                         (30.0, 60, 500, 20))

    def test_maxConnections(self):
        """A listener's max_connections: 500 by default, 0 for no cap, never negative."""
        (listener,) = loadConfig(writeConfig(self, extra=listenerTOML("imap"))).listeners
        self.assertEqual(listener.max_connections, 500)
        path = writeConfig(self, extra=listenerTOML("imap", max_connections=0))
        self.assertEqual(loadConfig(path).listeners[0].max_connections, 0)

    def test_challengeAuthAlways(self):
        """challenge_auth = "always" forces CRAM-MD5/APOP on for one listener (a lesson)."""
        path = writeConfig(self, extra=listenerTOML("pop3", challenge_auth="always"))
        (listener,) = loadConfig(path).listeners
        self.assertEqual(listener.challenge_auth, "always")

    def test_configIsFrozen(self):
        """Config objects cannot be changed after loading."""
        config = loadConfig(writeConfig(self))
        hostname = config.server.hostname
        with self.assertRaises(dataclasses.FrozenInstanceError):
            config.server.hostname = "other"
        with self.assertRaises(dataclasses.FrozenInstanceError):
            config.server = None
        self.assertEqual(config.server.hostname, hostname)


class ErrorTests(unittest.TestCase):
    """
    Each kind of mistake gives one line: FILE: KEY: reason.
    """

    def assertConfigError(self, text, key, reasonPart, extra=""):
        path = writeConfig(self, text, extra)
        e = self.assertRaises(ConfigError, loadConfig, path)
        message = str(e)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(path + ": " + key + ": "), message)
        self.assertIn(reasonPart, message)
        return message

    def test_missingFile(self):
        """A config file that does not exist is named."""
        e = self.assertRaises(ConfigError, loadConfig, "/nonexistent/mailstack.toml")
        self.assertEqual(str(e), "/nonexistent/mailstack.toml: -: file not found")

    def test_badTOML(self):
        """A TOML syntax error names the file and the line."""
        self.assertConfigError("[server\n", "-", "not valid TOML")

    def test_unknownSection(self):
        """An unknown section is refused."""
        self.assertConfigError(BASE_CONFIG + "\n[smtpd]\nx = 1\n", "smtpd",
                               "unknown section")

    def test_unknownKey(self):
        """An unknown key is refused with the allowed keys listed."""
        self.assertConfigError(BASE_CONFIG.replace("[limits]", "[limits]\nmax_size = 5"),
                               "limits.max_size", "unknown key")

    def test_unknownListenerKey(self):
        """An unknown key in a listener names the listener's index."""
        self.assertConfigError(BASE_CONFIG, "listener[0].port", "unknown key",
                               extra=listenerTOML("smtp", port=25))

    def test_badChallengeAuth(self):
        """challenge_auth takes "auto" or "always" only."""
        self.assertConfigError(BASE_CONFIG, "listener[0].challenge_auth",
                               "must be one of auto, always, not 'yes'",
                               extra=listenerTOML("imap", challenge_auth="yes"))

    def test_negativeMaxConnections(self):
        """max_connections below 0 is refused."""
        self.assertConfigError(BASE_CONFIG, "listener[0].max_connections", "at least 0",
                               extra=listenerTOML("imap", max_connections=-1))

    def test_wrongType(self):
        """A value of the wrong type is refused."""
        self.assertConfigError(
            BASE_CONFIG.replace("bcrypt_rounds = 4", 'bcrypt_rounds = "4"'),
            "limits.bcrypt_rounds", "must be an integer")

    def test_boolIsNotANumber(self):
        """true is not accepted where a number is wanted."""
        self.assertConfigError(
            BASE_CONFIG.replace("bcrypt_rounds = 4", "bcrypt_rounds = true"),
            "limits.bcrypt_rounds", "must be an integer")

    def test_limitTooSmall(self):
        """A limit below its minimum is refused."""
        self.assertConfigError(
            BASE_CONFIG.replace("bcrypt_rounds = 4", "message_size = 10"),
            "limits.message_size", "at least")

    def test_missingRequired(self):
        """A missing required key is named."""
        self.assertConfigError(BASE_CONFIG.replace(
            'domains = ["lab.test", "example.test"]', ""), "server.domains",
            "required key is missing")

    def test_missingServer(self):
        """The server section is required."""
        self.assertConfigError("[lab]\ntranscripts = true\n", "server",
                               "required section is missing")

    def test_badDomain(self):
        """A domain that is not a DNS name is refused."""
        self.assertConfigError(BASE_CONFIG.replace('"example.test"', '"exa mple"'),
                               "server.domains[1]", "not a domain name")

    def test_defaultDomainNotServed(self):
        """default_domain must be one of the domains."""
        self.assertConfigError(BASE_CONFIG.replace(
            'default_domain = "lab.test"', 'default_domain = "other.test"'),
            "server.default_domain", "not one of server.domains")

    def test_badProtocol(self):
        """An unknown listener protocol is refused."""
        self.assertConfigError(BASE_CONFIG, "listener[0].protocol", "must be one of",
                               extra=listenerTOML("http"))

    def test_badTLSMode(self):
        """An unknown tls mode is refused."""
        self.assertConfigError(BASE_CONFIG, "listener[0].tls", "must be one of",
                               extra=listenerTOML("smtp", tls="yes"))

    def test_badEndpointType(self):
        """An endpoint type other than tcp/tcp6/unix is refused."""
        self.assertConfigError(BASE_CONFIG, "listener[0].endpoint",
                               "endpoint type must be one of",
                               extra=listenerTOML("smtp", "udp:25"))

    def test_sslEndpointRedirected(self):
        """An ssl: endpoint is refused with the way to do it instead."""
        self.assertConfigError(BASE_CONFIG, "listener[0].endpoint", 'tls = "implicit"',
                               extra=listenerTOML("smtp", "ssl:465"))

    def test_badPort(self):
        """A port that is not a number in range is refused."""
        self.assertConfigError(BASE_CONFIG, "listener[0].endpoint", "port must be",
                               extra=listenerTOML("smtp", "tcp:smtp"))
        self.assertConfigError(BASE_CONFIG, "listener[0].endpoint", "port must be",
                               extra=listenerTOML("smtp", "tcp:70000"))

    def test_badEndpointArgument(self):
        """An endpoint with a bad argument is refused."""
        self.assertConfigError(BASE_CONFIG, "listener[0].endpoint",
                               "not a valid endpoint",
                               extra=listenerTOML("smtp", "tcp:25:colour=blue"))

    def test_duplicatePort(self):
        """Two listeners on the same port are refused, naming both."""
        message = self.assertConfigError(
            BASE_CONFIG, "listener[1].endpoint", "port 3025 is already used by listener[0]",
            extra=listenerTOML("smtp", "tcp:3025:interface=127.0.0.1")
            + listenerTOML("pop3", "tcp:3025"))
        self.assertIn("(smtp)", message)

    def test_samePortOtherInterface(self):
        """The same port on two different interfaces is allowed."""
        path = writeConfig(self, extra=listenerTOML("smtp", "tcp:3025:interface=127.0.0.1")
                           + listenerTOML("pop3", "tcp:3025:interface=127.0.0.2"))
        self.assertEqual(len(loadConfig(path).listeners), 2)

    def test_duplicateName(self):
        """Two listeners with the same name are refused."""
        self.assertConfigError(BASE_CONFIG, "listener[1].name", "used twice",
                               extra=listenerTOML("smtp", "tcp:1") + listenerTOML(
                                   "smtp", "tcp:2"))

    def test_missingCertificate(self):
        """A TLS listener without a cert file (and no generation) is refused."""
        text = BASE_CONFIG.replace("generate_self_signed = true",
                                   "generate_self_signed = false")
        message = self.assertConfigError(text, "tls.cert", "file not found",
                                         extra=listenerTOML("smtp", tls="starttls"))
        self.assertIn(os.path.join("var", "tls", "cert.pem"), message)

    def test_badTLSVersion(self):
        """Only TLS 1.2 and 1.3 may be the minimum."""
        self.assertConfigError(BASE_CONFIG.replace(
            "generate_self_signed = true", 'generate_self_signed = true\nmin_version = "1.0"'),
            "tls.min_version", "must be one of 1.2, 1.3")

    def test_demoAddressOutsideDomains(self):
        """The demo account must be in a served domain."""
        self.assertConfigError(BASE_CONFIG.replace(
            "demo_account = true", 'demo_account = true\ndemo_address = "x@elsewhere"'),
            "lab.demo_address", "must be an address in one of server.domains")

    def test_badDemoScheme(self):
        """Only known password schemes are accepted for the demo account."""
        self.assertConfigError(BASE_CONFIG.replace(
            "demo_account = true", 'demo_account = true\ndemo_scheme = "MD5"'),
            "lab.demo_scheme", "must be one of PLAIN, BLF-CRYPT")


class RelayAndSMTPTests(unittest.TestCase):
    """
    The [relay] and [smtp] sections.
    """

    def test_defaults(self):
        """Without [relay] there is no smarthost; bare newlines are normalised."""
        config = loadConfig(writeConfig(self))
        self.assertIsNone(config.relay.smarthost)
        self.assertEqual(config.relay.retry_schedule, (60, 300, 900, 1800, 3600))
        self.assertEqual(config.smtp.bare_newline, "normalize")

    def test_smarthost(self):
        """A smarthost "host:port" is parsed, IPv6 in brackets too."""
        config = loadConfig(writeConfig(self, extra='[relay]\nsmarthost = "[::1]:2525"\n'))
        self.assertEqual(config.relay.smarthost, ("::1", 2525))

    def test_badSmarthost(self):
        """A smarthost without a port is refused."""
        path = writeConfig(self, extra='[relay]\nsmarthost = "mx.example.org"\n')
        e = self.assertRaises(ConfigError, loadConfig, path)
        self.assertIn(": relay.smarthost: must be", str(e))

    def test_badRetrySchedule(self):
        """A retry schedule must hold positive numbers."""
        path = writeConfig(self, extra='[relay]\nretry_schedule = [60, -1]\n')
        e = self.assertRaises(ConfigError, loadConfig, path)
        self.assertIn(": relay.retry_schedule: ", str(e))

    def test_badBareNewlinePolicy(self):
        """Only normalize and reject are bare-newline policies."""
        path = writeConfig(self, extra='[smtp]\nbare_newline = "allow"\n')
        e = self.assertRaises(ConfigError, loadConfig, path)
        self.assertIn(": smtp.bare_newline: must be one of normalize, reject", str(e))
