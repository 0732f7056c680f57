"""
C{[storage]} in the config and at start-up: which store serves the mail
(C{maildir}, C{memory}, or one another package declares), and the one line
when the name is wrong.
"""

import os
import sys
import textwrap
from pathlib import Path

from twisted.internet import task
from twisted.trial import unittest
from zope.interface import provider

from mailstack import service
from mailstack.config import ConfigError, loadConfig
from mailstack.storage import backends
from mailstack.storage.account import MaildirStore
from mailstack.storage.interfaces import IStoreBackend
from mailstack.storage.memory import MemoryStore
from tests.helpers import BASE_CONFIG, writeConfig


@provider(IStoreBackend)
class ExtraStore:
    """A store another package provides (a memory store under another name)."""

    name = "extra"
    opened = []

    @classmethod
    def open(cls, config, reactor, watcher):
        store = MemoryStore()
        cls.opened.append(store)
        return store


NotAStore = object()


def declareStores(testCase, entries):
    """
    Make an installed distribution declare C{entries} (C{name = module:attr}
    lines) in the C{mailstack.stores} group, as another package's would,
    until the test ends.
    """
    top = os.path.abspath(testCase.mktemp())
    info = os.path.join(top, "mailstack_extra_store-1.0.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: mailstack-extra-store\nVersion: 1.0\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as f:
        f.write("[%s]\n%s\n" % (backends.ENTRY_POINT_GROUP, textwrap.dedent(entries).strip()))
    sys.path.insert(0, top)
    testCase.addCleanup(sys.path.remove, top)


class StorageConfigTests(unittest.TestCase):
    def load(self, extra):
        return writeConfig(self, BASE_CONFIG, extra)

    def assertConfigError(self, extra, key, reason):
        path = self.load(extra)
        e = self.assertRaises(ConfigError, loadConfig, path)
        self.assertEqual(str(e), "%s: %s: %s" % (path, key, reason))

    def test_default(self):
        """Without [storage]: the Maildir store."""
        self.assertEqual(loadConfig(self.load("")).storage.backend, "maildir")

    def test_memory(self):
        """backend = "memory" is accepted."""
        config = loadConfig(self.load('[storage]\nbackend = "memory"\n'))
        self.assertEqual(config.storage.backend, "memory")

    def test_unknownBackend(self):
        """An unknown store is one line naming the key and the known ones."""
        self.assertConfigError('[storage]\nbackend = "s3"\n', "storage.backend",
                               "must be one of maildir, memory, not 's3'")

    def test_unknownKey(self):
        """An unknown key in [storage] is one line naming it."""
        path = self.load('[storage]\nroot = "/tmp"\n')
        e = self.assertRaises(ConfigError, loadConfig, path)
        self.assertTrue(str(e).startswith("%s: storage.root: " % (path,)), str(e))

    def test_declaredStore(self):
        """A store another package declares (entry point mailstack.stores) may be named."""
        declareStores(self, "extra = tests.test_storage_config:ExtraStore")
        self.assertEqual(backends.backendNames(), ["extra", "maildir", "memory"])
        config = loadConfig(self.load('[storage]\nbackend = "extra"\n'))
        self.assertEqual(config.storage.backend, "extra")

    def test_declaredStoreBroken(self):
        """A declared store whose module cannot be imported, or that is not an
        IStoreBackend, is one line naming storage.backend."""
        declareStores(self, """
            gone = mailstack_no_such_module:Store
            wrong = tests.test_storage_config:NotAStore
            """)
        self.assertConfigError('[storage]\nbackend = "gone"\n', "storage.backend",
                               "the gone store cannot be loaded: No module named "
                               "'mailstack_no_such_module'")
        self.assertConfigError('[storage]\nbackend = "wrong"\n', "storage.backend",
                               "'wrong' is not a store (no IStoreBackend)")


class StartupTests(unittest.TestCase):
    def build(self, extra):
        config = loadConfig(writeConfig(self, BASE_CONFIG, extra))
        top = service.buildService(config, task.Clock())
        return config, top

    def test_maildir(self):
        """By default the server's store is the Maildir store under data_dir/mail."""
        config, top = self.build("")
        self.assertIsInstance(top.store, MaildirStore)
        self.assertEqual(Path(top.store.root), config.mail_dir)

    def test_memory(self):
        """backend = "memory": the server's one store is a memory store, and nothing
        is written under data_dir/mail."""
        config, top = self.build('[storage]\nbackend = "memory"\n')
        self.assertIsInstance(top.store, MemoryStore)
        self.assertFalse(config.mail_dir.exists())

    def test_declaredStore(self):
        """A declared store is opened with the config and serves the server."""
        declareStores(self, "extra = tests.test_storage_config:ExtraStore")
        self.patch(ExtraStore, "opened", [])
        _, top = self.build('[storage]\nbackend = "extra"\n')
        self.assertEqual(ExtraStore.opened, [top.store])
