"""
The C{mailstack user} commands on the SQLite and PostgreSQL backends, and
C{user migrate} between backends.
"""

import io
import os
import sqlite3

import zope.interface
from twisted.trial import unittest

from mailstack import cli
from mailstack.auth.interfaces import IUserBackendPlugin
from mailstack.auth.pgdb import PostgreSQLUsers, describeDSN
from mailstack.auth.sqlitedb import SQLiteUsers
from mailstack.auth.userdb import PasswdFile, PasswdFileBackend
from tests import postgres
from tests.helpers import BASE_CONFIG, writeConfig
from tests.postgres import PostgreSQLMixin
from tests.test_userdirectory import declareEntryPoints

SQLITE = '[users]\nbackend = "sqlite"\n'


class CLIUsersTestCase(unittest.TestCase):
    extra = SQLITE

    def setUp(self):
        self.config = writeConfig(self, BASE_CONFIG, self.extra)
        self.var = os.path.join(os.path.abspath(os.path.dirname(self.config)), "var")
        self.sqlitePath = os.path.join(self.var, "users.sqlite")
        self.filePath = os.path.join(self.var, "users")

    def mailstack(self, *argv, stdin=""):
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(["--config", self.config] + list(argv), stdin=io.StringIO(stdin),
                          stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def sqliteUsers(self, path=None):
        users = SQLiteUsers(path or self.sqlitePath, "lab.test").open()
        self.addCleanup(users.close)
        return users

    def fileUsers(self, path=None):
        return PasswdFile(path or self.filePath, "lab.test")

    def pgUsers(self, dsn=None):
        users = PostgreSQLUsers(dsn or self.dsn, "lab.test").open()
        self.addCleanup(users.close)
        return users


class SQLiteCommandTests(CLIUsersTestCase):
    def test_addPasswdDelList(self):
        """add, passwd, list and del work on the database; no passwd-file is made."""
        self.assertEqual(self.mailstack("user", "add", "alice", "--password-stdin",
                                        stdin="s3cret\n"),
                         (0, "added alice@lab.test (BLF-CRYPT)\n", ""))
        self.assertEqual(self.mailstack("user", "add", "bob", "--password-stdin",
                                        "--scheme", "PLAIN", stdin="pw\n")[0], 0)
        self.assertTrue(self.sqliteUsers().verifyPassword("alice", "s3cret"))
        self.assertEqual(self.mailstack("user", "passwd", "alice", "--password-stdin",
                                        stdin="n3w\n"),
                         (0, "changed password of alice@lab.test (BLF-CRYPT)\n", ""))
        self.assertTrue(self.sqliteUsers().verifyPassword("alice", "n3w"))
        self.assertEqual(self.mailstack("user", "list"),
                         (0, "alice@lab.test  BLF-CRYPT\nbob@lab.test    PLAIN\n", ""))
        self.assertEqual(self.mailstack("user", "del", "bob"),
                         (0, "removed bob@lab.test (its mail is kept)\n", ""))
        self.assertIsNone(self.sqliteUsers().lookup("bob"))
        self.assertFalse(os.path.exists(self.filePath))

    def test_import(self):
        """import adds a class to the database, all or nothing."""
        csv = os.path.join(os.path.dirname(self.var), "class.csv")
        with open(csv, "w") as f:
            f.write("address,password\nalice,tulip-42\ncarol,x\n")
        self.assertEqual(self.mailstack("user", "import", csv)[:2],
                         (0, "%s: added 2, updated 0, skipped 0\n" % (csv,)))
        self.assertTrue(self.sqliteUsers().verifyPassword("carol", "x"))

    def test_errors(self):
        """An existing user, an unknown one and a locked database are one line each."""
        self.mailstack("user", "add", "alice", "--password-stdin", stdin="pw\n")
        self.assertEqual(self.mailstack("user", "add", "alice", "--password-stdin",
                                        stdin="pw\n"),
                         (1, "", "mailstack: user alice@lab.test already exists\n"))
        self.assertEqual(self.mailstack("user", "del", "ghost"),
                         (1, "", "mailstack: no such user: ghost@lab.test\n"))
        self.patch(SQLiteUsers, "__init__", _quickTimeout(SQLiteUsers.__init__))
        other = sqlite3.connect(self.sqlitePath, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        self.addCleanup(other.close)
        status, out, err = self.mailstack("user", "list")
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err, "mailstack: user database %s: database is locked\n" % (
            self.sqlitePath,))

    def test_unopenable(self):
        """A path that cannot hold a database is one line."""
        os.makedirs(self.sqlitePath)
        status, out, err = self.mailstack("user", "list")
        self.assertEqual((status, out), (1, ""))
        self.assertTrue(err.startswith("mailstack: user database %s: " % (self.sqlitePath,)),
                        err)
        self.assertEqual(err.count("\n"), 1)


def _quickTimeout(init):
    def quick(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.busyTimeout = 0.01
    return quick


class MigrateTests(CLIUsersTestCase):
    extra = ""

    def test_passwdFileToSQLite(self):
        """migrate --to sqlite copies every user with the very hash into var/users.sqlite;
        the same passwords verify there; the passwd-file is left as it was."""
        source = self.fileUsers()
        source.addUser("alice@lab.test", "s3cret")
        source.addUser("bob@lab.test", "pw", scheme="PLAIN")
        with open(self.filePath) as f:
            before = f.read()
        self.assertEqual(self.mailstack("user", "migrate", "--to", "sqlite"),
                         (0, "copied 2 users from %s to %s\n" % (
                             self.filePath, self.sqlitePath), ""))
        target = self.sqliteUsers()
        self.assertEqual(target.listUsers(), source.listUsers())
        self.assertTrue(target.verifyPassword("alice", "s3cret"))
        self.assertEqual(target.plaintextSecret("bob"), "pw")
        with open(self.filePath) as f:
            self.assertEqual(f.read(), before)

    def test_again(self):
        """Run again, migrate skips the users already there and keeps their password."""
        self.fileUsers().addUser("alice@lab.test", "s3cret")
        self.mailstack("user", "migrate", "--to", "sqlite")
        self.sqliteUsers().setPassword("alice", "changed")
        self.fileUsers().addUser("bob@lab.test", "pw")
        self.assertEqual(self.mailstack("user", "migrate", "--to", "sqlite"),
                         (0, "copied 1 user from %s to %s (skipped 1 already there)\n" % (
                             self.filePath, self.sqlitePath), ""))
        self.assertTrue(self.sqliteUsers().verifyPassword("alice", "changed"))
        self.assertTrue(self.sqliteUsers().verifyPassword("bob", "pw"))

    def test_explicitPaths(self):
        """--from/--from-path and --to/--to-path move users between any two stores,
        back to a passwd-file too."""
        other = os.path.join(self.var, "other.sqlite")
        self.mailstack("user", "add", "alice", "--password-stdin", stdin="pw\n")
        self.assertEqual(self.mailstack("user", "migrate", "--to", "sqlite",
                                        "--to-path", other)[0], 0)
        back = os.path.join(self.var, "back")
        self.assertEqual(self.mailstack("user", "migrate", "--from", "sqlite",
                                        "--from-path", other, "--to", "passwd-file",
                                        "--to-path", back)[0], 0)
        self.assertEqual(self.fileUsers(back).lookup("alice"),
                         self.fileUsers().lookup("alice"))
        self.assertTrue(self.fileUsers(back).verifyPassword("alice", "pw"))

    def _markNoLogin(self, address, words):
        with open(self.filePath) as f:
            lines = f.read().splitlines()
        with open(self.filePath, "w") as f:
            for line in lines:
                if line.startswith(address + ":"):
                    line += "::::::" [line.count(":") - 1:] + words
                f.write(line + "\n")

    def test_noLoginLeftBehind(self):
        """migrate --to sqlite does not copy a user marked nologin (who could log in
        there) and names them; the others are copied."""
        source = self.fileUsers()
        source.addUser("alice@lab.test", "s3cret")
        source.addUser("bob@lab.test", "pw")
        self._markNoLogin("bob@lab.test", "nologin host=imap.new.test")
        self.assertIsNotNone(self.fileUsers().lookup("bob").noLogin)
        self.assertEqual(self.mailstack("user", "migrate", "--to", "sqlite"),
                         (0, "copied 1 user from %s to %s; left behind 1 marked nologin, "
                             "which sqlite cannot mark: bob@lab.test\n" % (
                                 self.filePath, self.sqlitePath), ""))
        self.assertIsNone(self.sqliteUsers().lookup("bob"))
        self.assertFalse(self.sqliteUsers().verifyPassword("bob", "pw"))

    def test_noLoginToPasswdFile(self):
        """migrate to another passwd-file keeps a user's nologin, reason, host, port
        and destuser, so the user is still refused (and referred) there."""
        self.fileUsers().addUser("bob@lab.test", "pw")
        self._markNoLogin("bob@lab.test", "mailstack_admin=yes nologin reason=Moved "
                                          "host=imap.new.test port=1143 destuser=robert@new.test")
        other = os.path.join(self.var, "other")
        self.assertEqual(self.mailstack("user", "migrate", "--to", "passwd-file",
                                        "--to-path", other)[0], 0)
        moved = self.fileUsers(other).lookup("bob")
        self.assertEqual(moved, self.fileUsers().lookup("bob"))
        self.assertEqual((moved.noLogin.reason, moved.noLogin.host, moved.noLogin.port,
                          moved.noLogin.destuser, moved.admin),
                         ("Moved", "imap.new.test", 1143, "robert@new.test", True))

    def test_sameStore(self):
        """Migrating a store onto itself is refused."""
        self.assertEqual(self.mailstack("user", "migrate", "--to", "passwd-file"),
                         (1, "", "mailstack: %s: source and target are the same\n" % (
                             self.filePath,)))

    def test_unknownBackend(self):
        """--to names only the backends that exist."""
        status, out, err = self.mailstack("user", "migrate", "--to", "mysql")
        self.assertEqual(status, 2)
        self.assertIn("invalid choice: 'mysql'", err)


class ClosingBackend:
    """A passwd-file backend (declared by a test package) that records being closed."""

    name = "closing"
    defaultPath = "closing-users"
    closed = []

    @classmethod
    def open(cls, path, **kwargs):
        users = PasswdFileBackend.open(path, **kwargs)
        users.close = lambda: cls.closed.append(users.path)
        return users


zope.interface.directlyProvides(ClosingBackend, IUserBackendPlugin)


class ClosingTests(CLIUsersTestCase):
    extra = '[users]\nbackend = "closing"\n'

    def setUp(self):
        declareEntryPoints(self, "closing = tests.test_cli_users:ClosingBackend")
        CLIUsersTestCase.setUp(self)
        self.patch(ClosingBackend, "closed", [])

    def test_closed(self):
        """The user commands close the backends they open (a database's connections),
        after success and after a refused change alike."""
        path = os.path.join(self.var, "closing-users")
        self.assertEqual(self.mailstack("user", "add", "alice", "--password-stdin",
                                        stdin="pw\n")[0], 0)
        self.assertEqual(ClosingBackend.closed, [path])
        self.assertEqual(self.mailstack("user", "del", "bob")[0], 1)
        self.assertEqual(ClosingBackend.closed, [path, path])
        self.assertEqual(self.mailstack("user", "migrate", "--to", "passwd-file")[0], 0)
        self.assertEqual(ClosingBackend.closed, [path, path, path])


def _postgresqlConfig(dsn):
    return '[users]\nbackend = "postgresql"\ndsn = "%s"\n' % (dsn,)


class PostgreSQLCommandTests(PostgreSQLMixin, CLIUsersTestCase):
    """The user commands with [users] backend = "postgresql"."""

    def setUp(self):
        PostgreSQLMixin.setUp(self)
        self.extra = _postgresqlConfig(self.dsn)
        CLIUsersTestCase.setUp(self)

    def test_addPasswdDelList(self):
        """add, passwd, list and del work on the database; no users file is made."""
        self.assertEqual(self.mailstack("user", "add", "alice", "--password-stdin",
                                        stdin="s3cret\n"),
                         (0, "added alice@lab.test (BLF-CRYPT)\n", ""))
        self.assertEqual(self.mailstack("user", "add", "bob", "--password-stdin",
                                        "--scheme", "PLAIN", stdin="pw\n")[0], 0)
        self.assertTrue(self.pgUsers().verifyPassword("alice", "s3cret"))
        self.assertEqual(self.mailstack("user", "passwd", "alice", "--password-stdin",
                                        stdin="n3w\n"),
                         (0, "changed password of alice@lab.test (BLF-CRYPT)\n", ""))
        self.assertTrue(self.pgUsers().verifyPassword("alice", "n3w"))
        self.assertEqual(self.mailstack("user", "list"),
                         (0, "alice@lab.test  BLF-CRYPT\nbob@lab.test    PLAIN\n", ""))
        self.assertEqual(self.mailstack("user", "del", "bob"),
                         (0, "removed bob@lab.test (its mail is kept)\n", ""))
        self.assertIsNone(self.pgUsers().lookup("bob"))
        self.assertFalse(os.path.exists(self.filePath))
        self.assertFalse(os.path.exists(self.sqlitePath))

    def test_import(self):
        """import adds a class to the database, all or nothing."""
        csv = os.path.join(os.path.dirname(self.var), "class.csv")
        with open(csv, "w") as f:
            f.write("address,password\nalice,tulip-42\ncarol,x\nbad:one,x\n")
        status, out, err = self.mailstack("user", "import", csv)
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(self.pgUsers().listUsers(), [])
        with open(csv, "w") as f:
            f.write("address,password\nalice,tulip-42\ncarol,x\n")
        self.assertEqual(self.mailstack("user", "import", csv)[:2],
                         (0, "%s: added 2, updated 0, skipped 0\n" % (csv,)))
        self.assertTrue(self.pgUsers().verifyPassword("carol", "x"))

    def test_unreachable(self):
        """A database that cannot be reached is one line, without the password."""
        nowhere = postgres.nowhere(self)
        self.config = writeConfig(self, BASE_CONFIG, _postgresqlConfig(
            "host=%s dbname=mail password=hunter2" % (nowhere,)))
        status, out, err = self.mailstack("user", "list")
        self.assertEqual((status, out), (1, ""))
        self.assertTrue(err.startswith("mailstack: user database dbname=mail host=%s: "
                                       "connection is bad: " % (nowhere,)), err)
        self.assertEqual(err.count("\n"), 1)
        self.assertNotIn("hunter2", err)


class PostgreSQLMigrateTests(PostgreSQLMixin, CLIUsersTestCase):
    """user migrate to and from PostgreSQL (a passwd-file configured)."""

    extra = ""

    def setUp(self):
        PostgreSQLMixin.setUp(self)
        CLIUsersTestCase.setUp(self)

    def test_passwdFileToPostgreSQL(self):
        """migrate --to postgresql --to-dsn copies every user with the very hash; the same
        passwords verify there; run again, it skips those already there."""
        source = self.fileUsers()
        source.addUser("alice@lab.test", "s3cret")
        source.addUser("bob@lab.test", "pw", scheme="PLAIN")
        self.assertEqual(self.mailstack("user", "migrate", "--to", "postgresql",
                                        "--to-dsn", self.dsn),
                         (0, "copied 2 users from %s to %s\n" % (
                             self.filePath, describeDSN(self.dsn)), ""))
        target = self.pgUsers()
        self.assertEqual(target.listUsers(), source.listUsers())
        self.assertTrue(target.verifyPassword("alice", "s3cret"))
        self.assertEqual(target.plaintextSecret("bob"), "pw")
        source.addUser("carol@lab.test", "pw")
        self.assertEqual(self.mailstack("user", "migrate", "--to", "postgresql",
                                        "--to-dsn", self.dsn)[:2],
                         (0, "copied 1 user from %s to %s (skipped 2 already there)\n" % (
                             self.filePath, describeDSN(self.dsn))))

    def test_postgreSQLToFiles(self):
        """--from postgresql --from-dsn moves users back to SQLite or a passwd-file, and
        with postgresql configured, migrate --to sqlite copies from its database."""
        self.pgUsers().addUser("alice@lab.test", "s3cret")
        self.assertEqual(self.mailstack("user", "migrate", "--from", "postgresql",
                                        "--from-dsn", self.dsn, "--to", "sqlite")[0], 0)
        self.assertEqual(self.sqliteUsers().lookup("alice"), self.pgUsers().lookup("alice"))
        self.config = writeConfig(self, BASE_CONFIG, _postgresqlConfig(self.dsn))
        back = os.path.join(os.path.dirname(os.path.abspath(self.config)), "var", "users")
        self.assertEqual(self.mailstack("user", "migrate", "--to", "passwd-file"),
                         (0, "copied 1 user from %s to %s\n" % (describeDSN(self.dsn), back),
                          ""))
        self.assertTrue(self.fileUsers(back).verifyPassword("alice", "s3cret"))

    def test_optionErrors(self):
        """A postgresql side needs a dsn unless it is the configured backend; a path for
        it, a dsn for a file, a bad dsn and the same database twice are one line each."""
        for argv, error in (
                (["--to", "postgresql"],
                 "--to-dsn is needed: postgresql is not the configured backend"),
                (["--to", "postgresql", "--to-path", "x"],
                 "--to-path: the postgresql backend takes --to-dsn"),
                (["--to", "sqlite", "--to-dsn", self.dsn],
                 "--to-dsn: the sqlite backend takes --to-path"),
                (["--from", "postgresql", "--from-dsn", "nonsense", "--to", "sqlite"],
                 '--from-dsn: not a libpq connection string or URI: missing "=" after '
                 '"nonsense" in connection info string'),
                (["--from", "postgresql", "--from-dsn", self.dsn, "--to", "postgresql",
                  "--to-dsn", self.dsn],
                 "%s: source and target are the same" % (describeDSN(self.dsn),))):
            self.assertEqual(self.mailstack("user", "migrate", *argv),
                             (1, "", "mailstack: %s\n" % (error,)), argv)
