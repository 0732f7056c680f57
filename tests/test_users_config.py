"""
C{[users]} in the config and at start-up: which backend, where, and the one
line when it is wrong or cannot be opened.
"""

import os
from pathlib import Path

from twisted.internet import task
from twisted.trial import unittest

from mailstack import service
from mailstack.auth.sqlitedb import SQLiteUsers
from mailstack.auth.userdb import PasswdFile
from mailstack.config import ConfigError, loadConfig
from tests.helpers import BASE_CONFIG, writeConfig


class UsersConfigTests(unittest.TestCase):
    def load(self, extra):
        path = writeConfig(self, BASE_CONFIG, extra)
        return path, Path(path).resolve().parent

    def test_default(self):
        """Without [users]: the passwd-file var/users."""
        path, base = self.load("")
        config = loadConfig(path)
        self.assertEqual((config.users.backend, config.users.path),
                         ("passwd-file", base / "var" / "users"))

    def test_sqliteDefaultPath(self):
        """backend = "sqlite" defaults to var/users.sqlite in data_dir."""
        path, base = self.load('[users]\nbackend = "sqlite"\n')
        config = loadConfig(path)
        self.assertEqual((config.users.backend, config.users.path),
                         ("sqlite", base / "var" / "users.sqlite"))
        self.assertEqual(config.users_file, base / "var" / "users.sqlite")

    def test_path(self):
        """A relative path is relative to the config file's directory."""
        path, base = self.load('[users]\nbackend = "sqlite"\npath = "db/u.sqlite"\n')
        self.assertEqual(loadConfig(path).users.path, base / "db" / "u.sqlite")

    def assertConfigError(self, extra, key, reason):
        path, _ = self.load(extra)
        e = self.assertRaises(ConfigError, loadConfig, path)
        self.assertEqual(str(e), "%s: %s: %s" % (path, key, reason))

    def test_unknownBackend(self):
        """An unknown backend (postgresql too: not available yet) is one line naming the key."""
        self.assertConfigError('[users]\nbackend = "postgresql"\n', "users.backend",
                               "must be one of passwd-file, sqlite, not 'postgresql'")

    def test_unknownKey(self):
        """An unknown key in [users] is refused."""
        self.assertConfigError('[users]\ndsn = "x"\n', "users.dsn",
                               "unknown key (allowed: backend, path)")

    def test_emptyPath(self):
        """An empty path is refused."""
        self.assertConfigError('[users]\npath = ""\n', "users.path", "must not be empty")


class StartupTests(unittest.TestCase):
    def build(self, extra):
        path = writeConfig(self, BASE_CONFIG, extra)
        config = loadConfig(path)
        return config, service.buildService(config, task.Clock())

    def test_sqliteBackend(self):
        """With backend = "sqlite" the server's users are the database, the demo account
        is created in it, and the listeners get the directory over it."""
        config, top = self.build('[users]\nbackend = "sqlite"\n')
        self.assertIsInstance(top.users, SQLiteUsers)
        self.assertEqual(top.users.path, str(config.users.path))
        self.assertEqual(top.users.lookup("demo@lab.test").scheme, "PLAIN")
        self.assertIs(top.directory.backend, top.users)
        self.assertFalse(os.path.exists(config.server.data_dir / "users"))

    def test_passwdFileBackend(self):
        """By default the server's users are the passwd-file."""
        config, top = self.build("")
        self.assertIsInstance(top.users, PasswdFile)
        self.assertTrue(os.path.exists(config.server.data_dir / "users"))

    def test_unopenableDatabase(self):
        """A database that cannot be opened at start-up is one line naming users.path."""
        path = writeConfig(self, BASE_CONFIG, '[users]\nbackend = "sqlite"\npath = "junk"\n')
        junk = os.path.join(os.path.dirname(path), "junk")
        with open(junk, "wb") as f:
            f.write(b"not a database " * 200)
        config = loadConfig(path)
        e = self.assertRaises(service.StartupError, service.buildService, config, task.Clock())
        self.assertNotIn("\n", str(e))
        self.assertTrue(str(e).startswith(
            "%s: users.path: cannot open the sqlite users: user database %s: " % (
                config.path, os.path.abspath(junk))), str(e))
