"""
The user directory contract (L{mailstack.auth.interfaces}), run against every
backend through one mixin: the passwd-file, SQLite and PostgreSQL (a private
server the tests start: tests/postgres.py). Then what is backend-specific:
the databases' faults (locked, unopenable, gone away and back) and the
registry the config chooses from, with the backends other packages declare.
"""

import io
import os
import sqlite3
import stat
import sys
import textwrap

import bcrypt
import psycopg
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface import provider
from zope.interface.verify import verifyObject

from mailstack.auth.backends import (
    DEFAULT_BACKEND, ENTRY_POINT_GROUP, backendNamed, backendNames, locationKey)
from mailstack.auth.directory import UserDirectory
from mailstack.auth.interfaces import (
    IUserBackend, IUserBackendPlugin, IUserDirectory, IUserServerBackendPlugin,
    UserDirectoryUnavailable)
from mailstack.auth import shacrypt
from mailstack.auth.pgdb import PostgreSQLBackend, PostgreSQLUsers
from mailstack.auth.sqlitedb import SQLiteBackend, SQLiteUsers
from mailstack.auth.passwords import (
    SCHEMES, CSVImportError, InvalidAddress, InvalidPassword, InvalidScheme, NoSuchUser, User,
    UserExists)
from mailstack.auth.userdb import PasswdFile, PasswdFileBackend
from tests import postgres
from tests.postgres import PostgreSQLMixin


class UserBackendContract:
    """
    What every L{IUserBackend} does, and L{UserDirectory} over it. A subclass
    sets C{plugin}, and C{location} (what the plug-in opens) unless the
    backend is a file (then C{path}, in a fresh directory).
    """

    plugin = None

    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        if self.plugin.defaultPath is not None:
            self.path = self.location = os.path.join(self.directory, self.plugin.defaultPath)
        self.users = self.open()

    def open(self, location=None, **kwargs):
        kwargs.setdefault("defaultDomain", "lab.test")
        kwargs.setdefault("bcryptRounds", 4)
        users = self.plugin.open(location or self.location, **kwargs)
        if hasattr(users, "close"):
            self.addCleanup(users.close)
        return users

    def test_provides(self):
        """The backend provides IUserBackend and its plug-in IUserBackendPlugin."""
        self.assertTrue(verifyObject(IUserBackend, self.users))
        self.assertTrue(verifyObject(IUserBackendPlugin, self.plugin))

    def test_emptyAtFirst(self):
        """A new backend has no users and none is PLAIN-only."""
        self.assertEqual(self.users.listUsers(), [])
        self.assertIsNone(self.users.lookup("alice"))
        self.assertFalse(self.users.allPlaintextSecrets())

    def test_addAndLookup(self):
        """An added user is found by any case of the address or by the bare name."""
        self.users.addUser("Alice@Lab.test", "s3cret")
        for name in ("alice@lab.test", "ALICE@LAB.TEST", "alice", b"alice"):
            user = self.users.lookup(name)
            self.assertEqual((user.address, user.scheme), ("alice@lab.test", "BLF-CRYPT"), name)
        self.assertTrue(self.users.lookup("alice").secret.startswith("$2y$04$"))
        self.assertIsNone(self.users.lookup("bob"))
        self.assertIsNone(self.users.lookup("not an address"))

    def test_verifyBcrypt(self):
        """A BLF-CRYPT user's password verifies; a wrong one or an unknown user does not."""
        self.users.addUser("alice@lab.test", "s3cret")
        self.assertTrue(self.users.verifyPassword("alice", "s3cret"))
        self.assertTrue(self.users.verifyPassword("alice@lab.test", b"s3cret"))
        self.assertFalse(self.users.verifyPassword("alice", "S3cret"))
        self.assertFalse(self.users.verifyPassword("bob", "s3cret"))
        self.assertFalse(self.users.verifyPassword("", "s3cret"))

    def test_plain(self):
        """A PLAIN user verifies and gives its secret (for APOP/CRAM-MD5); a hashed one gives none."""
        self.users.addUser("plain@lab.test", "tanstaaf", scheme="PLAIN")
        self.users.addUser("hashed@lab.test", "tanstaaf")
        self.assertTrue(self.users.verifyPassword("plain", "tanstaaf"))
        self.assertFalse(self.users.verifyPassword("plain", "tanstaa"))
        self.assertEqual(self.users.plaintextSecret("Plain"), "tanstaaf")
        self.assertIsNone(self.users.plaintextSecret("hashed"))
        self.assertIsNone(self.users.plaintextSecret("nobody"))

    def test_allPlaintextSecrets(self):
        """True only while there are users and every one is PLAIN."""
        self.users.addUser("a@lab.test", "x", scheme="PLAIN")
        self.assertTrue(self.users.allPlaintextSecrets())
        self.users.addUser("b@lab.test", "x")
        self.assertFalse(self.users.allPlaintextSecrets())
        self.users.removeUser("b@lab.test")
        self.assertTrue(self.users.allPlaintextSecrets())

    def test_listSorted(self):
        """listUsers gives every user sorted by address."""
        for name in ("carol", "alice", "bob"):
            self.users.addUser(name, "pw", scheme="PLAIN")
        self.assertEqual([u.address for u in self.users.listUsers()],
                         ["alice@lab.test", "bob@lab.test", "carol@lab.test"])

    def test_addRefusals(self):
        """A second add, a bad address, another domain, an empty or over-long password, an
        unknown scheme are refused and change nothing."""
        users = self.open(domains=["lab.test"])
        users.addUser("alice@lab.test", "pw")
        before = users.listUsers()
        self.assertRaises(UserExists, users.addUser, "ALICE", "other")
        self.assertRaises(InvalidAddress, users.addUser, "a:b@lab.test", "pw")
        self.assertRaises(InvalidAddress, users.addUser, "x@elsewhere.example", "pw")
        self.assertRaises(InvalidPassword, users.addUser, "bob@lab.test", "")
        self.assertRaises(InvalidPassword, users.addUser, "bob@lab.test", "x" * 73)
        self.assertRaises(InvalidScheme, users.addUser, "bob@lab.test", "pw", "MD5")
        self.assertEqual(users.listUsers(), before)
        self.assertTrue(users.verifyPassword("alice", "pw"))

    def test_setPassword(self):
        """setPassword keeps the scheme unless one is given; an unknown user is refused."""
        self.users.addUser("alice@lab.test", "old", scheme="PLAIN")
        self.assertEqual(self.users.setPassword("alice", "new"), "PLAIN")
        self.assertEqual(self.users.plaintextSecret("alice"), "new")
        self.assertEqual(self.users.setPassword("alice", "newer", scheme="blf-crypt"), "BLF-CRYPT")
        self.assertTrue(self.users.verifyPassword("alice", "newer"))
        self.assertFalse(self.users.verifyPassword("alice", "new"))
        self.assertIsNone(self.users.plaintextSecret("alice"))
        self.assertRaises(NoSuchUser, self.users.setPassword, "bob", "pw")

    def test_remove(self):
        """A removed user is gone; removing again is refused."""
        self.users.addUser("alice@lab.test", "pw")
        self.users.removeUser("Alice")
        self.assertIsNone(self.users.lookup("alice"))
        self.assertFalse(self.users.verifyPassword("alice", "pw"))
        self.assertRaises(NoSuchUser, self.users.removeUser, "alice")

    def test_addStoredUserKeepsHash(self):
        """A user moved with addStoredUser keeps the very hash, so the same password verifies."""
        hashed = "$2y$04$" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()[7:]
        self.users.addStoredUser(User("alice@lab.test", "BLF-CRYPT", hashed))
        self.users.addStoredUser(User("bob@lab.test", "PLAIN", "a:b\x01"))
        self.assertEqual(self.users.lookup("alice").secret, hashed)
        self.assertTrue(self.users.verifyPassword("alice", "pw"))
        self.assertEqual(self.users.plaintextSecret("bob"), "a:b\x01")
        self.assertRaises(UserExists, self.users.addStoredUser,
                          User("alice@lab.test", "PLAIN", "x"))

    def test_secondInstanceSeesChanges(self):
        """A backend opened before (the server's) sees another's (the admin command's) changes."""
        server = self.open()
        self.assertIsNone(server.lookup("alice"))
        self.users.addUser("alice@lab.test", "pw")
        self.assertTrue(server.verifyPassword("alice", "pw"))
        self.users.setPassword("alice", "other")
        self.assertTrue(server.verifyPassword("alice", "other"))
        self.users.removeUser("alice")
        self.assertIsNone(server.lookup("alice"))

    def test_importCSV(self):
        """An import adds new users, skips existing ones (naming those whose password
        differs) and with update resets them; re-running changes nothing."""
        self.users.addUser("bob@lab.test", "old", scheme="PLAIN")
        self.users.addUser("carol@lab.test", "same", scheme="PLAIN")
        text = "address,password,scheme\nalice,tulip-42\nbob,new,\ncarol,same\n"
        result = self.users.importCSV(io.StringIO(text))
        self.assertEqual((result.added, result.differing, result.unchanged),
                         (["alice@lab.test"], ["bob@lab.test"], ["carol@lab.test"]))
        self.assertEqual(self.users.plaintextSecret("bob"), "old")
        result = self.users.importCSV(io.StringIO(text), update=True)
        self.assertEqual((result.added, result.updated), ([], ["bob@lab.test"]))
        self.assertEqual(self.users.plaintextSecret("bob"), "new")
        self.assertTrue(self.users.verifyPassword("alice", "tulip-42"))
        result = self.users.importCSV(io.StringIO(text), update=True)
        self.assertEqual((result.added, result.updated, len(result.skipped)), ([], [], 3))

    def test_importAllOrNothing(self):
        """A CSV with a bad line names it and imports nothing."""
        error = self.assertRaises(CSVImportError, self.users.importCSV,
                                  io.StringIO("alice,pw\nbad:address,pw\n"))
        self.assertEqual(error.problems, [(2, "'bad:address' is not a valid address")])
        self.assertEqual(self.users.listUsers(), [])

    # The directory over the backend: the same answers, as Deferreds.

    def test_directory(self):
        """UserDirectory answers lookup, verify, plaintext secret and list off the reactor,
        with the backend's answers."""
        self.users.addUser("alice@lab.test", "s3cret")
        self.users.addUser("plain@lab.test", "tanstaaf", scheme="PLAIN")
        directory = UserDirectory(self.users, reactor)
        self.assertTrue(verifyObject(IUserDirectory, directory))
        self.assertEqual(directory.normalize("Alice"), "alice@lab.test")

        def check(_):
            d = directory.lookup("alice")
            d.addCallback(lambda user: self.assertEqual(user.address, "alice@lab.test"))
            d.addCallback(lambda _: directory.verifyPassword("alice", "s3cret"))
            d.addCallback(self.assertTrue)
            d.addCallback(lambda _: directory.verifyPassword("alice", "wrong"))
            d.addCallback(self.assertFalse)
            d.addCallback(lambda _: directory.plaintextSecret("plain"))
            d.addCallback(self.assertEqual, "tanstaaf")
            d.addCallback(lambda _: directory.listUsers())
            d.addCallback(lambda users: self.assertEqual(
                [u.address for u in users], ["alice@lab.test", "plain@lab.test"]))
            return d
        return directory.lookup("nobody").addCallback(self.assertIsNone).addCallback(check)

    def test_directoryPlaintextAnswer(self):
        """The directory's allPlaintextSecrets follows the backend (after a refresh where
        the backend cannot answer on the reactor thread)."""
        self.users.addUser("plain@lab.test", "x", scheme="PLAIN")
        directory = UserDirectory(self.users, reactor)

        def first(_):
            self.assertTrue(directory.allPlaintextSecrets())
            self.users.addUser("hashed@lab.test", "x")
            return directory.refreshPlaintextAnswer()

        def second(_):
            self.assertFalse(directory.allPlaintextSecrets())
        return directory.refreshPlaintextAnswer().addCallback(first).addCallback(second)


class FileBackendTests:
    """What a backend kept in a file does besides the contract."""

    def test_filePrivate(self):
        """The users' file is created 0600: it holds secrets."""
        self.users.addUser("alice@lab.test", "pw")
        self.assertEqual(stat.S_IMODE(os.stat(self.users.path).st_mode), 0o600)


class PasswdFileContractTests(UserBackendContract, FileBackendTests, unittest.TestCase):
    plugin = PasswdFileBackend

    def test_answersWithoutWaiting(self):
        """The passwd-file answers allPlaintextSecrets at once: a change shows at the next ask."""
        directory = UserDirectory(self.users, reactor)
        self.users.addUser("plain@lab.test", "x", scheme="PLAIN")
        self.assertTrue(directory.allPlaintextSecrets())
        self.users.addUser("hashed@lab.test", "x")
        self.assertFalse(directory.allPlaintextSecrets())

    def test_lookupWithoutThread(self):
        """The passwd-file's lookups are answered at once, without a trip through the thread pool."""
        directory = UserDirectory(self.users, Clock())  # a clock: no thread pool to use
        self.users.addUser("alice@lab.test", "pw")
        self.assertEqual(self.successResultOf(directory.lookup("alice")).address, "alice@lab.test")
        self.assertIsNone(self.successResultOf(directory.lookup("nobody")))

    def test_unreadableFileUnavailable(self):
        """A users file that cannot be read makes the directory's answers fail as
        unavailable (temporary), not as 'no such user'."""
        directory = UserDirectory(self.users, reactor)
        os.makedirs(self.path)
        return self.assertFailure(directory.lookup("alice"), UserDirectoryUnavailable)


class SQLiteContractTests(UserBackendContract, FileBackendTests, unittest.TestCase):
    plugin = SQLiteBackend

    def lock(self):
        """Hold the database's write lock from another connection until cleanup."""
        other = sqlite3.connect(self.path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")

        def release():
            if not released:
                released.append(True)
                other.execute("ROLLBACK")
                other.close()
        released = []
        self.addCleanup(release)
        return release

    def test_schemaOnOpen(self):
        """Opening creates the file (0600) with the users table."""
        with sqlite3.connect(self.path) as connection:
            tables = connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        self.assertEqual(tables, [("users",)])
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_lockedIsUnavailable(self):
        """A database locked by another writer past the busy timeout raises
        UserDirectoryUnavailable for reads and changes, and works again once released."""
        users = SQLiteUsers(self.path, "lab.test", 4, busyTimeout=0.01).open()
        self.addCleanup(users.close)
        users.addUser("alice@lab.test", "pw", scheme="PLAIN")
        release = self.lock()
        self.assertRaises(UserDirectoryUnavailable, users.lookup, "alice")
        self.assertRaises(UserDirectoryUnavailable, users.addUser, "bob@lab.test", "pw")
        release()
        self.assertEqual(users.plaintextSecret("alice"), "pw")
        users.addUser("bob@lab.test", "pw")
        self.assertIsNotNone(users.lookup("bob"))

    def test_lockedDirectoryFails(self):
        """Through the directory, a locked database fails the Deferred with
        UserDirectoryUnavailable; the last plaintext answer stays."""
        users = SQLiteUsers(self.path, "lab.test", 4, busyTimeout=0.01).open()
        users.addUser("alice@lab.test", "pw", scheme="PLAIN")
        directory = UserDirectory(users, reactor)

        def locked(_):
            self.assertTrue(directory.allPlaintextSecrets())
            self.lock()
            d = self.assertFailure(directory.verifyPassword("alice", "pw"),
                                   UserDirectoryUnavailable)
            d.addCallback(lambda _: directory.refreshPlaintextAnswer())
            d.addCallback(lambda _: self.assertTrue(directory.allPlaintextSecrets()))
            return d
        return directory.refreshPlaintextAnswer().addCallback(locked)

    def test_openFailsOneLine(self):
        """A path that cannot hold a database (a directory, a file that is no database)
        fails to open with one line naming it."""
        for path, make in ((os.path.join(self.directory, "adir"), os.makedirs),
                           (os.path.join(self.directory, "junk"), self.junk)):
            make(path)
            error = self.assertRaises(UserDirectoryUnavailable, SQLiteBackend.open, path)
            self.assertIn(path, str(error))
            self.assertNotIn("\n", str(error))

    @staticmethod
    def junk(path):
        with open(path, "wb") as f:
            f.write(b"this is not an SQLite database, not at all" * 100)


class PostgreSQLContractTests(PostgreSQLMixin, UserBackendContract, unittest.TestCase):
    """The contract on PostgreSQL, each test in a new database of the shared private server."""

    plugin = PostgreSQLBackend

    def setUp(self):
        PostgreSQLMixin.setUp(self)
        self.location = self.dsn
        UserBackendContract.setUp(self)

    def connect(self, dsn=None):
        """Another client of the test's database (autocommit)."""
        connection = psycopg.connect(dsn or self.dsn, autocommit=True)
        self.addCleanup(connection.close)
        return connection

    def test_providesServerPlugin(self):
        """The postgresql plug-in is a database server's: it takes users.dsn, no path."""
        self.assertTrue(verifyObject(IUserServerBackendPlugin, self.plugin))
        self.assertIsNone(self.plugin.defaultPath)
        self.assertEqual(locationKey(self.plugin), "dsn")

    def test_connectOptions(self):
        """Connections give up after 5 s and are named mailstack in pg_stat_activity,
        unless the DSN says otherwise."""
        self.assertEqual(self.users.connectOptions,
                         {"connect_timeout": 5, "application_name": "mailstack"})
        self.users.lookup("alice")
        names = self.connect().execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()").fetchall()
        self.assertEqual(names, [("mailstack",)])
        own = PostgreSQLUsers(self.dsn + " connect_timeout=2 application_name=mx")
        self.assertEqual(own.connectOptions, {})

    def test_schemaOnOpen(self):
        """Opening creates the mailstack_users table; opening again keeps its users."""
        columns = self.connect().execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'mailstack_users' ORDER BY ordinal_position").fetchall()
        self.assertEqual(columns, [("address",), ("scheme",), ("secret",), ("admin",)])
        self.users.addUser("alice@lab.test", "pw")
        self.assertEqual(self.open().lookup("alice").address, "alice@lab.test")

    def test_readOnlyRole(self):
        """A role that may only read the existing table opens it and logs users in; a
        change it may not make is unavailable (one line), nothing else."""
        self.users.addUser("alice@lab.test", "pw", scheme="PLAIN")
        role = "reader_" + self.dsn.rpartition("dbname=")[2].split()[0]
        admin = self.connect()
        admin.execute("CREATE ROLE %s LOGIN" % (role,))
        self.addCleanup(admin.execute, "DROP ROLE %s" % (role,))
        self.addCleanup(admin.execute, "DROP OWNED BY %s" % (role,))
        admin.execute("GRANT SELECT ON mailstack_users TO %s" % (role,))
        reader = self.open(self.dsn.replace("user=mailstack", "user=" + role))
        self.assertTrue(reader.verifyPassword("alice", "pw"))
        error = self.assertRaises(UserDirectoryUnavailable, reader.addUser, "bob@lab.test", "pw")
        self.assertIn("permission denied", str(error))
        self.assertNotIn("\n", str(error))

    def test_unreachable(self):
        """A database that cannot be reached fails to open with one line saying where
        (host, dbname, user), never the DSN's password."""
        nowhere = postgres.nowhere(self)
        dsn = "host=%s dbname=mail user=mailstack password=hunter2" % (nowhere,)
        error = self.assertRaises(UserDirectoryUnavailable, PostgreSQLBackend.open, dsn)
        self.assertTrue(str(error).startswith(
            "user database user=mailstack dbname=mail host=%s: " % (nowhere,)), str(error))
        self.assertNotIn("\n", str(error))
        self.assertNotIn("hunter2", str(error))

    def test_badDSN(self):
        """A DSN that is not a connection string is refused in one line (the config
        checks it with checkDSN; open refuses it too)."""
        error = self.assertRaises(ValueError, PostgreSQLBackend.checkDSN, "host='db")
        self.assertEqual(str(error), "not a libpq connection string or URI: "
                                     "unterminated quoted string in connection info string")
        PostgreSQLBackend.checkDSN(self.dsn)
        PostgreSQLBackend.checkDSN("postgresql://mailstack:pw@db.lab.test:5433/mail")
        error = self.assertRaises(UserDirectoryUnavailable, PostgreSQLBackend.open, "nonsense")
        self.assertNotIn("\n", str(error))

    def test_serverRestart(self):
        """While the server is down every read and change is unavailable; once it is back
        the very first call works (the dead pooled connections are replaced), reads and
        changes alike."""
        self.users.addUser("alice@lab.test", "pw", scheme="PLAIN")
        server = self.open()
        self.assertTrue(server.verifyPassword("alice", "pw"))
        self.postgres.stop()
        self.assertRaises(UserDirectoryUnavailable, server.lookup, "alice")
        self.assertRaises(UserDirectoryUnavailable, server.addUser, "bob@lab.test", "pw")
        self.postgres.start()
        self.assertTrue(server.verifyPassword("alice", "pw"))
        self.postgres.stop()
        self.postgres.start()
        self.assertEqual(server.plaintextSecret("alice"), "pw")
        self.postgres.stop()
        self.postgres.start()
        server.addUser("bob@lab.test", "pw")
        self.assertEqual([u.address for u in server.listUsers()],
                         ["alice@lab.test", "bob@lab.test"])

    def test_directoryWhileDown(self):
        """Through the directory, a database that went away fails the Deferred with
        UserDirectoryUnavailable; once it is back the same directory answers."""
        self.users.addUser("alice@lab.test", "pw", scheme="PLAIN")
        directory = UserDirectory(self.users, reactor)
        self.postgres.stop()
        self.addCleanup(self.postgres.start)
        d = self.assertFailure(directory.verifyPassword("alice", "pw"), UserDirectoryUnavailable)
        d.addCallback(lambda _: self.postgres.start())
        d.addCallback(lambda _: directory.verifyPassword("alice", "pw"))
        d.addCallback(self.assertTrue)
        return d

    def test_locked(self):
        """A table another session holds locked (an ALTER TABLE) past lockTimeout makes
        reads and changes unavailable rather than waiting; once released they work."""
        users = PostgreSQLUsers(self.dsn, "lab.test", 4, lockTimeout=0.05).open()
        self.addCleanup(users.close)
        users.addUser("alice@lab.test", "pw", scheme="PLAIN")
        other = self.connect()
        other.execute("BEGIN")
        other.execute("LOCK TABLE mailstack_users IN ACCESS EXCLUSIVE MODE")
        self.assertRaises(UserDirectoryUnavailable, users.lookup, "alice")
        self.assertRaises(UserDirectoryUnavailable, users.addUser, "bob@lab.test", "pw")
        other.execute("ROLLBACK")
        self.assertEqual(users.plaintextSecret("alice"), "pw")
        users.addUser("bob@lab.test", "pw")
        self.assertIsNotNone(users.lookup("bob"))

    def test_unstorableSecret(self):
        """A secret PostgreSQL text cannot hold (a NUL, bytes that were not UTF-8 in a
        passwd-file) is refused as an invalid password, and nothing is stored."""
        self.assertRaises(InvalidPassword, self.users.addUser, "alice@lab.test", "a\x00b",
                          scheme="PLAIN")
        self.assertRaises(InvalidPassword, self.users.addStoredUser,
                          User("bob@lab.test", "PLAIN", "caf\udce9"))
        self.assertEqual(self.users.listUsers(), [])

    def test_sortedByCodePoint(self):
        """listUsers sorts as the other backends do (by code point), not by the
        database's locale."""
        connection = self.connect()
        collations = [name for name, in connection.execute(
            "SELECT collname FROM pg_collation WHERE collprovider = 'i' "
            "AND collname IN ('en-US-x-icu', 'und-x-icu')")]
        if not collations:
            raise unittest.SkipTest("this PostgreSQL has no ICU collations")
        # ICU puts "_" before "-" and punctuation before digits; code points do not.
        connection.execute('ALTER TABLE mailstack_users ALTER COLUMN address '
                           'TYPE text COLLATE "%s"' % (collations[0],))
        for name in ("a_b", "a1", "a-b"):
            self.users.addUser(name, "pw", scheme="PLAIN")
        self.assertEqual([u.address for u in self.users.listUsers()],
                         ["a-b@lab.test", "a1@lab.test", "a_b@lab.test"])

    def test_dummyCost(self):
        """The dummy cost is the most common stored cost, else bcryptRounds."""
        assertDummyCost(self, self.users)

    def test_dummyKind(self):
        """A failure costs a check of the most common kind of stored hash, of any scheme
        (SHA512-CRYPT at the commonest rounds here), as in SQLite."""
        self.assertEqual(self.users.dummyKind(), ("BLF-CRYPT", 4))
        for rounds, count in ((1000, 2), (2000, 3)):
            for n in range(count):
                self.users.addStoredUser(User("sha%d-%d@lab.test" % (rounds, n), "SHA512-CRYPT",
                                              shacrypt.newHash(b"pw", "6", rounds)))
        hashed = "$2y$" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()[4:]
        self.users.addStoredUser(User("b@lab.test", "BLF-CRYPT", hashed))
        self.users.addStoredUser(User("p@lab.test", "PLAIN", "$6$rounds=3000$x"))
        self.assertEqual(self.users.dummyKind(), ("SHA512-CRYPT", 2000))
        self.assertFalse(self.users.verifyPassword("nobody", "pw"))

    def test_eachScheme(self):
        """A user added with each scheme is stored in it and logs in with that password only."""
        self.users.argon2MemoryCost = 1024
        for scheme in SCHEMES:
            name = scheme.lower() + "@lab.test"
            self.users.addUser(name, "pw of " + scheme, scheme=scheme.lower())
            self.assertEqual(self.users.lookup(name).scheme, scheme)
            self.assertTrue(self.users.verifyPassword(name, "pw of " + scheme), scheme)
            self.assertFalse(self.users.verifyPassword(name, "pw of"), scheme)


@provider(IUserBackendPlugin)
class ExtraBackend:
    """A backend another package declares (tests' own: a passwd-file by another name)."""

    name = "extra"
    defaultPath = "extra-users"
    open = staticmethod(PasswdFileBackend.open)


NotABackend = object()


def declareEntryPoints(testCase, entries):
    """
    Make an installed distribution declare C{entries} (C{name = module:attr}
    lines) in the C{mailstack.user_backends} group, as another package's
    would, until the test ends.
    """
    top = os.path.abspath(testCase.mktemp())
    info = os.path.join(top, "mailstack_extra_users-1.0.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: mailstack-extra-users\nVersion: 1.0\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as f:
        f.write("[%s]\n%s\n" % (ENTRY_POINT_GROUP, textwrap.dedent(entries).strip()))
    sys.path.insert(0, top)
    testCase.addCleanup(sys.path.remove, top)


class RegistryTests(unittest.TestCase):
    def test_backends(self):
        """The config may name passwd-file (the default), postgresql and sqlite, each an
        IUserBackendPlugin; the file ones take users.path (with a default file name),
        postgresql users.dsn."""
        self.assertEqual(backendNames(), ["passwd-file", "postgresql", "sqlite"])
        self.assertEqual(DEFAULT_BACKEND, "passwd-file")
        for name in backendNames():
            plugin = backendNamed(name)
            self.assertTrue(verifyObject(IUserBackendPlugin, plugin))
            self.assertEqual(plugin.name, name)
        self.assertEqual((PasswdFileBackend.defaultPath, SQLiteBackend.defaultPath),
                         ("users", "users.sqlite"))
        self.assertEqual([locationKey(backendNamed(name)) for name in backendNames()],
                         ["path", "dsn", "path"])
        self.assertIs(backendNamed("postgresql"), PostgreSQLBackend)

    def test_backendNamed(self):
        """An unknown name, or an entry that is not a plug-in, is a KeyError."""
        self.assertIs(backendNamed("sqlite"), SQLiteBackend)
        self.assertRaises(KeyError, backendNamed, "mysql")
        self.assertRaises(KeyError, backendNamed, "x", {"x": object()})

    def test_entryPoints(self):
        """A backend another package declares in the mailstack.user_backends entry point
        group is listed and loaded by name; one that is no plug-in is refused."""
        declareEntryPoints(self, """
            extra = tests.test_userdirectory:ExtraBackend
            broken = tests.test_userdirectory:NotABackend
            """)
        self.assertEqual(backendNames(),
                         ["broken", "extra", "passwd-file", "postgresql", "sqlite"])
        self.assertIs(backendNamed("extra"), ExtraBackend)
        self.assertRaises(KeyError, backendNamed, "broken")
        self.assertEqual(locationKey(ExtraBackend), "path")

    def test_builtinsWin(self):
        """A package cannot replace a built-in backend by declaring its name."""
        declareEntryPoints(self, "sqlite = tests.test_userdirectory:ExtraBackend")
        self.assertIs(backendNamed("sqlite"), SQLiteBackend)
    def test_passwdFileOpens(self):
        """The passwd-file plug-in opens a PasswdFile."""
        path = self.mktemp()
        self.assertIsInstance(PasswdFileBackend.open(path), PasswdFile)


def assertDummyCost(testCase, users):
    """
    A failed check spends one bcrypt at the cost most stored hashes have (so
    a failure takes as long as a wrong BLF-CRYPT password): C{users}, empty
    and opened with bcryptRounds 4, says so.
    """
    testCase.assertEqual(users.dummyCost(), 4)
    for name, cost in (("a", 5), ("b", 5), ("c", 6)):
        hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(cost)).decode()
        users.addStoredUser(User(name + "@lab.test", "BLF-CRYPT", "$2y$" + hashed[4:]))
    users.addStoredUser(User("d@lab.test", "PLAIN", "$2y$07$x"))
    testCase.assertEqual(users.dummyCost(), 5)


class DummyCostTests(unittest.TestCase):
    """The file backends' dummy cost (PostgreSQL's: PostgreSQLContractTests)."""

    def test_dummyCost(self):
        """The dummy cost is the most common stored cost, else bcryptRounds."""
        for plugin in (PasswdFileBackend, SQLiteBackend):
            directory = self.mktemp()
            os.makedirs(directory)
            users = plugin.open(os.path.join(directory, plugin.defaultPath), "lab.test", 4)
            assertDummyCost(self, users)
