"""
C{[users]} in the config and at start-up: which backend, where (C{path} or
C{dsn}), and the one line when it is wrong or cannot be opened.
"""

import os
from pathlib import Path

from twisted.internet import task
from twisted.trial import unittest

from mailstack import service
from mailstack.auth.pgdb import PostgreSQLUsers
from mailstack.auth.sqlitedb import SQLiteUsers
from mailstack.auth.userdb import PasswdFile
from mailstack.config import ConfigError, loadConfig
from tests.helpers import BASE_CONFIG, writeConfig
from tests import postgres
from tests.postgres import PostgreSQLMixin
from tests.test_userdirectory import declareEntryPoints


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
        """An unknown backend is one line naming the key and the known ones."""
        self.assertConfigError('[users]\nbackend = "mysql"\n', "users.backend",
                               "must be one of passwd-file, postgresql, sqlite, not 'mysql'")

    def test_unknownKey(self):
        """An unknown key in [users] is refused."""
        self.assertConfigError('[users]\nhost = "x"\n', "users.host",
                               "unknown key (allowed: backend, dsn, path)")

    def test_postgresql(self):
        """backend = "postgresql" takes the dsn as it is (a connection string or a URI),
        and has no path."""
        for dsn in ("host=db.lab.test dbname=mail user=mailstack",
                    "postgresql://mailstack@db.lab.test:5433/mail?sslmode=require"):
            path, _ = self.load('[users]\nbackend = "postgresql"\ndsn = "%s"\n' % (dsn,))
            users = loadConfig(path).users
            self.assertEqual((users.backend, users.dsn, users.path), ("postgresql", dsn, None))
            self.assertEqual((users.locationKey, users.location), ("dsn", dsn))

    def test_postgresqlWithoutDSN(self):
        """postgresql without a dsn, or with an empty one, is one line naming users.dsn."""
        self.assertConfigError('[users]\nbackend = "postgresql"\n', "users.dsn",
                               "required with backend = 'postgresql' (a libpq connection "
                               "string or URI)")
        self.assertConfigError('[users]\nbackend = "postgresql"\ndsn = " "\n', "users.dsn",
                               "must not be empty")

    def test_badDSN(self):
        """A dsn that is no connection string is one line naming users.dsn."""
        self.assertConfigError('[users]\nbackend = "postgresql"\ndsn = "host=\'db"\n',
                               "users.dsn", "not a libpq connection string or URI: "
                               "unterminated quoted string in connection info string")
        self.assertConfigError('[users]\nbackend = "postgresql"\ndsn = "db.lab.test"\n',
                               "users.dsn", "not a libpq connection string or URI: "
                               'missing "=" after "db.lab.test" in connection info string')

    def test_pathAndDSNMixedUp(self):
        """A path given to postgresql, or a dsn given to a file backend, is refused."""
        self.assertConfigError('[users]\nbackend = "postgresql"\ndsn = "dbname=mail"\n'
                               'path = "users.db"\n', "users.path",
                               "not used by backend = 'postgresql': it connects to users.dsn")
        self.assertConfigError('[users]\nbackend = "sqlite"\ndsn = "dbname=mail"\n',
                               "users.dsn", "only a database server backend takes a dsn "
                               "(backend = 'sqlite' uses users.path)")

    def test_declaredBackend(self):
        """A backend another package declares (entry point mailstack.user_backends) may be
        named; its path defaults to its own file name in data_dir."""
        declareEntryPoints(self, "extra = tests.test_userdirectory:ExtraBackend")
        path, base = self.load('[users]\nbackend = "extra"\n')
        users = loadConfig(path).users
        self.assertEqual((users.backend, users.path), ("extra", base / "var" / "extra-users"))

    def test_declaredBackendBroken(self):
        """A declared backend whose module cannot be imported is one line naming users.backend."""
        declareEntryPoints(self, "gone = mailstack_no_such_module:Backend")
        self.assertConfigError('[users]\nbackend = "gone"\n', "users.backend",
                               "the gone backend cannot be loaded: No module named "
                               "'mailstack_no_such_module'")

    def test_emptyPath(self):
        """An empty path is refused."""
        self.assertConfigError('[users]\npath = ""\n', "users.path", "must not be empty")


class StartupTests(unittest.TestCase):
    def build(self, extra):
        path = writeConfig(self, BASE_CONFIG, extra)
        config = loadConfig(path)
        return config, service.buildService(config, task.Clock())

    def test_stopClosesUsers(self):
        """Stopping the server lets the user backend go (its database connections closed)."""
        config, top = self.build('[users]\nbackend = "sqlite"\n')
        closed = []
        self.patch(top.users, "close", lambda: closed.append(True))
        top.startService()
        self.assertEqual(closed, [])
        self.successResultOf(top.stopService())
        self.assertEqual(closed, [True])

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

    def test_unreachableDatabase(self):
        """A PostgreSQL that cannot be reached at start-up is one line naming users.dsn,
        saying where (never the password) and why."""
        nowhere = postgres.nowhere(self)
        path = writeConfig(self, BASE_CONFIG, '[users]\nbackend = "postgresql"\n'
                           'dsn = "host=%s dbname=mail password=hunter2"\n' % (nowhere,))
        config = loadConfig(path)
        e = self.assertRaises(service.StartupError, service.buildService, config, task.Clock())
        self.assertNotIn("\n", str(e))
        self.assertNotIn("hunter2", str(e))
        self.assertTrue(str(e).startswith(
            "%s: users.dsn: cannot open the postgresql users: user database dbname=mail "
            "host=%s: connection is bad: connection to server on socket " % (
                config.path, nowhere)), str(e))


class PostgreSQLStartupTests(PostgreSQLMixin, unittest.TestCase):
    def test_postgresqlBackend(self):
        """With backend = "postgresql" the server's users are the database (its table made
        on first start), the demo account is created in it, the directory is over it, and
        no users file is made."""
        path = writeConfig(self, BASE_CONFIG, '[users]\nbackend = "postgresql"\n'
                           'dsn = "%s"\n' % (self.dsn,))
        config = loadConfig(path)
        top = service.buildService(config, task.Clock())
        self.addCleanup(top.users.close)
        self.assertIsInstance(top.users, PostgreSQLUsers)
        self.assertEqual(top.users.dsn, self.dsn)
        self.assertIs(top.directory.backend, top.users)
        self.assertEqual(top.users.lookup("demo@lab.test").scheme, "PLAIN")
        self.assertFalse(os.path.exists(config.server.data_dir / "users"))
