"""
Tests for the twistd plugin (twisted/plugins/mailstack_plugin.py) as installed
in the virtualenv: C{twistd --help} lists it, and a broken config makes
C{twistd mailstack} exit at start with one line naming file, key and reason.
"""

import os
import sys

from twisted.internet import defer, utils
from twisted.trial import unittest

from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


class PluginTests(unittest.TestCase):
    if not os.path.exists(TWISTD):
        skip = "twistd is not installed next to %s" % (sys.executable,)

    def twistd(self, *args):
        """Run twistd in a scratch directory; fire with (out, err, status)."""
        cwd = self.mktemp()
        os.makedirs(cwd)
        return utils.getProcessOutputAndValue(
            TWISTD, args, env=dict(os.environ), path=cwd)

    @defer.inlineCallbacks
    def test_listed(self):
        """twistd --help lists the mailstack plugin with its description."""
        out, err, status = yield self.twistd("--help")
        self.assertEqual(status, 0)
        self.assertRegex(out.decode(), r"\n\s+mailstack\s+\S")

    @defer.inlineCallbacks
    def test_pluginOptions(self):
        """twistd mailstack --help shows the --config option."""
        out, err, status = yield self.twistd("mailstack", "--help")
        self.assertEqual(status, 0)
        self.assertIn("--config", out.decode())

    @defer.inlineCallbacks
    def assertStartFails(self, text, extra, expected):
        path = os.path.abspath(writeConfig(self, text, extra))
        out, err, status = yield self.twistd("-n", "--pidfile=", "mailstack",
                                             "--config", path)
        self.assertEqual(status, 1)
        lines = err.decode().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("mailstack: %s: %s" % (path, expected)), lines[0])
        self.assertNotIn(b"Traceback", out + err)

    def test_unknownKey(self):
        """An unknown key stops twistd with one line."""
        return self.assertStartFails(
            BASE_CONFIG.replace("[limits]", "[limits]\nmessage_sise = 10"), "",
            "limits.message_sise: unknown key")

    def test_wrongType(self):
        """A value of the wrong type stops twistd with one line."""
        return self.assertStartFails(
            BASE_CONFIG.replace("[limits]", '[limits]\nmessage_size = "big"'), "",
            "limits.message_size: must be an integer, not 'big'")

    def test_badEndpoint(self):
        """A bad endpoint string stops twistd with one line."""
        return self.assertStartFails(BASE_CONFIG, listenerTOML("smtp", endpoint="tcp:lots"),
                                     "listener[0].endpoint: ")

    def test_duplicatePort(self):
        """Two listeners on one port stop twistd with one line."""
        return self.assertStartFails(
            BASE_CONFIG, listenerTOML("smtp", endpoint="tcp:3025") + listenerTOML(
                "submission", endpoint="tcp:3025"), "listener[1].endpoint: ")

    def test_missingCertificate(self):
        """A missing certificate file stops twistd with one line."""
        return self.assertStartFails(
            BASE_CONFIG.replace("generate_self_signed = true", "generate_self_signed = false"),
            listenerTOML("smtp", tls="starttls"), "tls.cert: file not found: ")
