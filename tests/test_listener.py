"""
Tests for protocol plug-ins (L{mailstack.listener}) and how the service looks
them up: every configured protocol has one, an unknown one is a one-line start-up
error, and no protocol module depends on the service. No sockets: listeners are
built, never bound.
"""

import ast
import io
import os
import sys

from twisted.internet import task
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

import mailstack
from mailstack import config as msconfig
from mailstack import service
from mailstack.listener import IProtocolPlugin, ListenerContext, ProtocolBuilt
from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig


@implementer(IProtocolPlugin)
class _RecordingPlugin:
    """A plug-in that records the contexts it is given."""

    def __init__(self, disableable=None, adapters=None):
        self.disableable = disableable
        self.adapters = adapters or {}
        self.contexts = []

    def avatarAdapters(self):
        return self.adapters

    def buildFactory(self, context):
        self.contexts.append(context)
        return ProtocolBuilt(factory=object(), refusal=b"busy\r\n")


def _adapter(account, avatarId):
    return object(), None


class RegistryTests(unittest.TestCase):
    """
    L{service.PROTOCOLS}: one plug-in per protocol name the config accepts.
    """

    def test_everyConfiguredProtocolHasAPlugin(self):
        """Every protocol a listener may name is served by an IProtocolPlugin."""
        self.assertEqual(sorted(service.PROTOCOLS), sorted(msconfig.PROTOCOLS))
        for name, plugin in service.PROTOCOLS.items():
            self.assertTrue(verifyObject(IProtocolPlugin, plugin), name)
            self.assertIsInstance(plugin.disableable, frozenset, name)
            self.assertTrue(plugin.avatarAdapters(), name)

    def test_smtpAndSubmissionShareOnePlugin(self):
        """smtp and submission are one engine: the same plug-in serves both."""
        self.assertIs(service.PROTOCOLS["smtp"], service.PROTOCOLS["submission"])

    def test_noProtocolModuleImportsService(self):
        """No module under smtp/, pop3/ or imap/ imports mailstack.service (at any depth)."""
        root = os.path.dirname(mailstack.__file__)
        offenders = []
        for package in ("smtp", "pop3", "imap", "protocol", "relay"):
            directory = os.path.join(root, package)
            if not os.path.isdir(directory):
                continue
            for name in sorted(os.listdir(directory)):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.ImportFrom):
                        names = [node.module or ""] + [
                            "%s.%s" % (node.module, a.name) for a in node.names]
                    elif isinstance(node, ast.Import):
                        names = [a.name for a in node.names]
                    else:
                        continue
                    if "mailstack.service" in names:
                        offenders.append("%s/%s:%d" % (package, name, node.lineno))
        self.assertEqual(offenders, [])


class LookupTests(unittest.TestCase):
    """
    L{service.buildService} finds each listener's plug-in and builds through it.
    """

    def build(self, extra, protocols):
        self.config = msconfig.loadConfig(writeConfig(self, BASE_CONFIG, extra))
        return service.buildService(self.config, task.Clock(), protocols=protocols)

    def test_pluginBuildsEachListener(self):
        """The plug-in's buildFactory gets one ListenerContext per listener, one shared dict."""
        plugin = _RecordingPlugin()
        self.build(listenerTOML("smtp", name="a") + listenerTOML("smtp", name="b"),
                   {"smtp": plugin})
        self.assertEqual([c.listener.name for c in plugin.contexts], ["a", "b"])
        for context in plugin.contexts:
            self.assertIsInstance(context, ListenerContext)
            self.assertIs(context.config, self.config)
        self.assertIs(plugin.contexts[0].shared, plugin.contexts[1].shared)

    def test_adaptersReachTheRealm(self):
        """Each configured plug-in's avatar adapters are handed to the realm."""
        marker = object()
        plugin = _RecordingPlugin(adapters={marker: _adapter})
        top = self.build(listenerTOML("imap"), {"imap": plugin})
        self.assertIs(top.portal.realm.adapters[marker], _adapter)

    def test_smtpDeliveryRunsInTheServersReactorThreads(self):
        """SMTP delivery's disk work runs in the thread pool of the reactor the server
        was built with, not the global reactor's (whose pool a server on a reactor of
        its own would wait for forever). The store does that work now: the Maildir
        back end is opened with the server's reactor."""
        from tests.fakes import FakeReactor, SyncThreadPool
        ran = []

        class Pool(SyncThreadPool):
            def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
                ran.append(f)
                SyncThreadPool.callInThreadWithCallback(self, onResult, f, *args, **kwargs)

        class Reactor(FakeReactor):
            def getThreadPool(self):
                return Pool()

        self.config = msconfig.loadConfig(writeConfig(self, BASE_CONFIG, listenerTOML("smtp")))
        top = service.buildService(self.config, Reactor())
        factory = top.getServiceNamed("smtp").factory
        while not hasattr(factory, "policy"):
            factory = factory.wrappedFactory
        from mailstack.smtp.server import Envelope
        envelope = Envelope("kim@example.com", {})
        envelope.recipients = [("demo@lab.test", "local")]
        results = []
        factory.policy.deliver(envelope, b"Received: x\r\n", io.BytesIO(b"body\r\n"),
                               "ID").addCallback(results.append)
        self.assertEqual((len(ran), results), (1, [None]))
        inbox = top.portal.realm.store.account("demo@lab.test").getMailbox("INBOX")
        self.assertEqual(len(inbox.messages()), 1)

    def test_unknownProtocol(self):
        """A listener whose protocol has no plug-in stops start-up with one line."""
        e = self.assertRaises(service.StartupError, self.build, listenerTOML("pop3"),
                              {"smtp": _RecordingPlugin()})
        self.assertEqual(str(e), "protocol 'pop3' is not available in this build")

    def test_notAPlugin(self):
        """A registry entry that is not an IProtocolPlugin (a bare builder) is refused."""
        e = self.assertRaises(service.StartupError, self.build, listenerTOML("smtp"),
                              {"smtp": lambda context: None})
        self.assertTrue(str(e).startswith("protocol 'smtp': <function "), str(e))
        self.assertIn("is not a protocol plug-in", str(e))

    def test_disableableNames(self):
        """A plug-in's disableable names bound a listener's disabled list."""
        plugin = _RecordingPlugin(disableable=frozenset({"IDLE"}))
        self.build(listenerTOML("imap", disabled=["idle"]), {"imap": plugin})
        e = self.assertRaises(service.StartupError, self.build,
                              listenerTOML("imap", disabled=["IDEL"]), {"imap": plugin})
        self.assertIn("listener[0].disabled: 'IDEL' unknown for imap (known: IDLE)", str(e))


class MakeServiceTests(unittest.TestCase):
    """
    twistd's entry point prints one line for a protocol it cannot serve.
    """

    def makeService(self, extra):
        """@return: the config's path and what makeService wrote to stderr."""
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        path = writeConfig(self, BASE_CONFIG, extra)
        e = self.assertRaises(SystemExit, service.makeService, {"config": path})
        self.assertEqual(e.code, 1)
        return path, stderr.getvalue()

    def test_protocolWithoutPlugin(self):
        """A configured protocol missing from PROTOCOLS: one line on stderr, exit 1."""
        self.patch(service, "PROTOCOLS", {"smtp": service.PROTOCOLS["smtp"]})
        path, err = self.makeService(listenerTOML("pop3"))
        self.assertEqual(err, "mailstack: protocol 'pop3' is not available in this build\n")

    def test_unknownProtocolName(self):
        """A protocol name no plug-in has (a typo) is a one-line config error."""
        path, err = self.makeService(listenerTOML("pop4"))
        self.assertEqual(err, "mailstack: %s: listener[0].protocol: must be one of smtp, "
                              "submission, pop3, imap, not 'pop4'\n" % (path,))
