"""
Tests for C{[web]} in L{mailstack.config}: the console is off without it, on
loopback it may be plain HTTP, elsewhere it needs TLS, and every mistake is one
line naming the key.
"""

from pathlib import Path

from twisted.trial import unittest

from mailstack.config import ConfigError, loadConfig
from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig

ROOT = Path(__file__).resolve().parent.parent


class WebConfigTests(unittest.TestCase):
    """
    C{[web]} loads into C{config.web}.
    """

    def load(self, extra):
        return loadConfig(writeConfig(self, BASE_CONFIG, extra))

    def test_absentMeansNoConsole(self):
        """Without a [web] section there is no console."""
        self.assertIsNone(self.load("").web)

    def test_loopbackPlain(self):
        """A loopback endpoint is served without TLS, with the default session timeout."""
        web = self.load('[web]\nendpoint = "tcp:3080:interface=127.0.0.1"\n').web
        self.assertEqual(web.endpoint, "tcp:3080:interface=127.0.0.1")
        self.assertFalse(web.tls)
        self.assertEqual(web.session_timeout, 8 * 3600)
        self.assertEqual(web.address, ("127.0.0.1", 3080))

    def test_ipv6LoopbackPlain(self):
        """::1 is loopback too."""
        web = self.load('[web]\nendpoint = "tcp6:3080:interface=\\\\:\\\\:1"\n').web
        self.assertFalse(web.tls)

    def test_publicWithTLS(self):
        """On every interface with tls = true, the server needs its certificate."""
        config = self.load('[web]\nendpoint = "tcp:443"\ntls = true\nsession_timeout = 600\n')
        self.assertTrue(config.web.tls)
        self.assertEqual(config.web.session_timeout, 600)
        self.assertTrue(config.needs_tls)

    def test_labConfig(self):
        """The shipped lab config serves the console on 127.0.0.1:3080."""
        config = loadConfig(ROOT / "etc" / "mailstack.toml")
        self.assertEqual(config.web.address, ("127.0.0.1", 3080))
        self.assertFalse(config.web.tls)


class WebConfigErrorTests(unittest.TestCase):
    """
    Each mistake in [web] is one line: FILE: web.KEY: reason.
    """

    def assertConfigError(self, extra, key, reasonPart):
        path = writeConfig(self, BASE_CONFIG, extra)
        e = self.assertRaises(ConfigError, loadConfig, path)
        message = str(e)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(path + ": " + key + ": "), message)
        self.assertIn(reasonPart, message)

    def test_endpointRequired(self):
        """A [web] without an endpoint names web.endpoint."""
        self.assertConfigError("[web]\ntls = true\n", "web.endpoint", "required")

    def test_badEndpoint(self):
        """An endpoint Twisted cannot parse is refused."""
        self.assertConfigError('[web]\nendpoint = "tcp:http"\n', "web.endpoint", "port")

    def test_sslEndpointRefused(self):
        """An ssl: endpoint is refused: TLS is the tls key's job."""
        self.assertConfigError('[web]\nendpoint = "ssl:3080"\n', "web.endpoint", "ssl")

    def test_publicNeedsTLS(self):
        """Listening on every interface without TLS is refused."""
        self.assertConfigError('[web]\nendpoint = "tcp:3080"\n', "web.tls", "not on loopback")

    def test_lanAddressNeedsTLS(self):
        """A LAN address is not loopback."""
        self.assertConfigError('[web]\nendpoint = "tcp:3080:interface=10.0.0.5"\n',
                               "web.tls", "must be true")

    def test_unknownKey(self):
        """An unknown key lists the allowed ones."""
        self.assertConfigError('[web]\nendpoint = "tcp:3080:interface=127.0.0.1"\nport = 1\n',
                               "web.port", "endpoint, session_timeout, tls")

    def test_wrongType(self):
        """tls must be a boolean."""
        self.assertConfigError('[web]\nendpoint = "tcp:3080:interface=127.0.0.1"\ntls = "yes"\n',
                               "web.tls", "true or false")

    def test_shortSessionTimeout(self):
        """A session timeout under a minute is refused."""
        self.assertConfigError(
            '[web]\nendpoint = "tcp:3080:interface=127.0.0.1"\nsession_timeout = 5\n',
            "web.session_timeout", "at least 60")

    def test_portTakenByListener(self):
        """The console cannot share a mail listener's port."""
        self.assertConfigError(
            listenerTOML("imap", "tcp:3143:interface=127.0.0.1")
            + '[web]\nendpoint = "tcp:3143:interface=127.0.0.1"\n',
            "web.endpoint", "already used by listener[0]")


class ProductionConfigTests(unittest.TestCase):
    def test_noConsoleUnlessConfigured(self):
        """The production config has no console; its commented example loads, with TLS."""
        text = (ROOT / "etc" / "mailstack-production.toml").read_text().replace(
            "generate_self_signed = false", "generate_self_signed = true")
        self.assertIsNone(loadConfig(writeConfig(self, text)).web)
        example = "\n".join(line[4:] for line in text.splitlines()
                            if line.startswith("#   "))
        self.assertIn("[web]", example)
        web = loadConfig(writeConfig(self, text + "\n" + example + "\n")).web
        self.assertTrue(web.tls)
        self.assertEqual(web.address, ("", 8443))
