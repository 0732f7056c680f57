"""
The admin flag of the user directory (the web console's admins see every
account): kept by every backend, set by C{mailstack user add --admin} and
C{mailstack user admin ADDRESS on|off}, off for everyone else.
"""

import io
import os
import sqlite3

from twisted.trial import unittest

from mailstack import cli
from mailstack.auth.passwords import NoSuchUser, User
from mailstack.auth.pgdb import PostgreSQLUsers
from mailstack.auth.sqlitedb import SQLiteUsers
from mailstack.auth.userdb import ADMIN_FIELD, PasswdFile
from tests.helpers import BASE_CONFIG, writeConfig
from tests.postgres import PostgreSQLMixin


class AdminFlagMixin:
    """The same checks on each backend: C{makeUsers()} opens a fresh, empty one."""

    def test_offByDefault(self):
        """A new user is not an admin."""
        users = self.makeUsers()
        users.addUser("alice@lab.test", "pw", "PLAIN")
        self.assertFalse(users.lookup("alice@lab.test").admin)

    def test_onAndOff(self):
        """setAdmin turns the flag on and off, seen by lookup and listUsers."""
        users = self.makeUsers()
        users.addUser("alice@lab.test", "pw", "PLAIN")
        users.addUser("bob@lab.test", "pw", "PLAIN")
        users.setAdmin("alice", True)
        self.assertTrue(users.lookup("alice@lab.test").admin)
        self.assertEqual([(u.address, u.admin) for u in users.listUsers()],
                         [("alice@lab.test", True), ("bob@lab.test", False)])
        users.setAdmin("alice@lab.test", False)
        self.assertFalse(users.lookup("alice@lab.test").admin)

    def test_keptByPasswordChange(self):
        """Changing an admin's password keeps the flag, and the new password works."""
        users = self.makeUsers()
        users.addUser("alice@lab.test", "pw", "PLAIN")
        users.setAdmin("alice@lab.test", True)
        users.setPassword("alice@lab.test", "new", "SHA512-CRYPT")
        self.assertTrue(users.lookup("alice@lab.test").admin)
        self.assertTrue(users.verifyPassword("alice@lab.test", "new"))

    def test_noSuchUser(self):
        """The flag of a user who does not exist cannot be set."""
        users = self.makeUsers()
        self.assertRaises(NoSuchUser, users.setAdmin, "ghost@lab.test", True)

    def test_addStoredUserKeepsIt(self):
        """A user moved between backends (addStoredUser) stays an admin."""
        users = self.makeUsers()
        users.addStoredUser(User("root@lab.test", "PLAIN", "pw", admin=True))
        self.assertTrue(users.lookup("root@lab.test").admin)


class PasswdFileAdminTests(AdminFlagMixin, unittest.TestCase):
    def makeUsers(self):
        self.path = self.mktemp()
        return PasswdFile(self.path, "lab.test")

    def test_extraField(self):
        """The flag is an extra field of the line; other extra fields and fields stay."""
        users = self.makeUsers()
        with open(self.path, "w") as f:
            f.write("alice@lab.test:{PLAIN}pw:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\n")
        users.setAdmin("alice@lab.test", True)
        with open(self.path) as f:
            line = f.read().strip()
        self.assertEqual(line, "alice@lab.test:{PLAIN}pw:1000:1000::/home/alice::"
                               "userdb_quota_rule=*:storage=1G " + ADMIN_FIELD)
        self.assertTrue(users.lookup("alice").admin)
        users.setAdmin("alice@lab.test", False)
        with open(self.path) as f:
            self.assertEqual(f.read().strip(), "alice@lab.test:{PLAIN}pw:1000:1000::"
                                               "/home/alice::userdb_quota_rule=*:storage=1G")
        self.assertFalse(users.lookup("alice").admin)

    def test_shortLine(self):
        """A two-field line (address:password) gets the flag as its eighth field."""
        users = self.makeUsers()
        with open(self.path, "w") as f:
            f.write("alice@lab.test:{PLAIN}pw\n")
        users.setAdmin("alice", True)
        with open(self.path) as f:
            self.assertEqual(f.read(), "alice@lab.test:{PLAIN}pw::::::" + ADMIN_FIELD + "\n")
        self.assertTrue(users.verifyPassword("alice", "pw"))


class SQLiteAdminTests(AdminFlagMixin, unittest.TestCase):
    def makeUsers(self):
        self.path = self.mktemp()
        users = SQLiteUsers(self.path, "lab.test").open()
        self.addCleanup(users.close)
        return users

    def test_oldDatabaseGetsTheColumn(self):
        """A database made before the flag gets its column; its users are not admins."""
        self.path = self.mktemp()
        connection = sqlite3.connect(self.path)
        connection.execute("CREATE TABLE users (address TEXT PRIMARY KEY NOT NULL, "
                           "scheme TEXT NOT NULL, secret TEXT NOT NULL)")
        connection.execute("INSERT INTO users VALUES ('alice@lab.test', 'PLAIN', 'pw')")
        connection.commit()
        connection.close()
        users = SQLiteUsers(self.path, "lab.test").open()
        self.addCleanup(users.close)
        self.assertFalse(users.lookup("alice").admin)
        users.setAdmin("alice", True)
        self.assertTrue(users.lookup("alice").admin)


class PostgreSQLAdminTests(PostgreSQLMixin, AdminFlagMixin, unittest.TestCase):
    def makeUsers(self):
        users = PostgreSQLUsers(self.dsn, "lab.test").open()
        self.addCleanup(users.close)
        return users

    def test_oldTableGetsTheColumn(self):
        """A table made before the flag gets its column when the server opens it."""
        import psycopg
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute("CREATE TABLE mailstack_users (address text PRIMARY KEY, "
                               "scheme text NOT NULL, secret text NOT NULL)")
            connection.execute("INSERT INTO mailstack_users VALUES "
                               "('alice@lab.test', 'PLAIN', 'pw')")
        users = self.makeUsers()
        self.assertFalse(users.lookup("alice").admin)
        users.setAdmin("alice", True)
        self.assertTrue(users.lookup("alice").admin)


class AdminCommandTests(unittest.TestCase):
    """C{mailstack user add --admin}, C{user admin ADDRESS on|off} and C{user list}."""

    def setUp(self):
        self.config = writeConfig(self, BASE_CONFIG)
        self.usersPath = os.path.join(os.path.dirname(os.path.abspath(self.config)),
                                      "var", "users")

    def mailstack(self, *argv, stdin=""):
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(["--config", self.config] + list(argv), stdin=io.StringIO(stdin),
                          stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def test_addAdmin(self):
        """user add --admin makes an admin; a plain add does not; list says which."""
        self.assertEqual(self.mailstack("user", "add", "teacher", "--admin", "--scheme",
                                        "PLAIN", "--password-stdin", stdin="pw\n"),
                         (0, "added teacher@lab.test (PLAIN, admin)\n", ""))
        self.mailstack("user", "add", "alice", "--scheme", "PLAIN", "--password-stdin",
                       stdin="pw\n")
        status, out, err = self.mailstack("user", "list")
        self.assertEqual(out, "alice@lab.test    PLAIN\nteacher@lab.test  PLAIN  admin\n")
        self.assertTrue(PasswdFile(self.usersPath).lookup("teacher@lab.test").admin)

    def test_adminOnOff(self):
        """user admin ADDRESS on|off sets and clears the flag."""
        self.mailstack("user", "add", "alice", "--scheme", "PLAIN", "--password-stdin",
                       stdin="pw\n")
        self.assertEqual(self.mailstack("user", "admin", "alice", "on"),
                         (0, "alice@lab.test is an admin\n", ""))
        self.assertTrue(PasswdFile(self.usersPath).lookup("alice@lab.test").admin)
        self.assertEqual(self.mailstack("user", "admin", "alice", "off"),
                         (0, "alice@lab.test is not an admin\n", ""))
        self.assertFalse(PasswdFile(self.usersPath).lookup("alice@lab.test").admin)

    def test_adminNoSuchUser(self):
        """user admin of an unknown address fails with one line."""
        status, out, err = self.mailstack("user", "admin", "ghost", "on")
        self.assertEqual((status, out), (1, ""))
        self.assertIn("no such user: ghost@lab.test", err)
        self.assertEqual(err.count("\n"), 1)

    def test_adminBadState(self):
        """on|off is all the state may be."""
        status, out, err = self.mailstack("user", "admin", "alice", "yes")
        self.assertEqual(status, 2)


class PostgreSQLReadOnlyRoleTests(PostgreSQLMixin, unittest.TestCase):
    def test_readOnlyRoleOnOldTable(self):
        """A role that may only read a table made before the flag opens it and sees no admins."""
        import psycopg
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute("CREATE TABLE mailstack_users (address text PRIMARY KEY, "
                               "scheme text NOT NULL, secret text NOT NULL)")
            connection.execute("INSERT INTO mailstack_users VALUES "
                               "('alice@lab.test', 'PLAIN', 'pw')")
            connection.execute("DROP ROLE IF EXISTS mailstack_reader")
            connection.execute("CREATE ROLE mailstack_reader LOGIN")
            connection.execute("GRANT SELECT ON mailstack_users TO mailstack_reader")
        self.addCleanup(self.dropReader)
        users = PostgreSQLUsers(self.dsn + " user=mailstack_reader", "lab.test").open()
        self.addCleanup(users.close)
        self.assertEqual([(u.address, u.admin) for u in users.listUsers()],
                         [("alice@lab.test", False)])
        self.assertTrue(users.verifyPassword("alice", "pw"))

    def dropReader(self):
        import psycopg
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute("DROP OWNED BY mailstack_reader")
            connection.execute("DROP ROLE mailstack_reader")
