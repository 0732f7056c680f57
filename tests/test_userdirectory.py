"""
The user directory contract (L{mailstack.auth.interfaces}), run against every
backend through one mixin: the passwd-file and SQLite. Then what is
backend-specific: the SQLite database's faults (locked, unopenable) and the
registry the config chooses from.
"""

import io
import os
import sqlite3
import stat

import bcrypt
from twisted.internet import reactor
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mailstack.auth.backends import BACKENDS, DEFAULT_BACKEND, backendNamed
from mailstack.auth.directory import UserDirectory
from mailstack.auth.interfaces import (
    IUserBackend, IUserBackendPlugin, IUserDirectory, UserDirectoryUnavailable)
from mailstack.auth.sqlitedb import SQLiteBackend, SQLiteUsers
from mailstack.auth.passwords import (
    CSVImportError, InvalidAddress, InvalidPassword, InvalidScheme, NoSuchUser, User, UserExists)
from mailstack.auth.userdb import PasswdFile, PasswdFileBackend


class UserBackendContract:
    """
    What every L{IUserBackend} does, and L{UserDirectory} over it. A subclass
    sets C{plugin}.
    """

    plugin = None

    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, self.plugin.defaultPath)
        self.users = self.open()

    def open(self, path=None, **kwargs):
        kwargs.setdefault("defaultDomain", "lab.test")
        kwargs.setdefault("bcryptRounds", 4)
        users = self.plugin.open(path or self.path, **kwargs)
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

    def test_filePrivate(self):
        """The users' file is created 0600: it holds secrets."""
        self.users.addUser("alice@lab.test", "pw")
        self.assertEqual(stat.S_IMODE(os.stat(self.users.path).st_mode), 0o600)

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


class PasswdFileContractTests(UserBackendContract, unittest.TestCase):
    plugin = PasswdFileBackend

    def test_answersWithoutWaiting(self):
        """The passwd-file answers allPlaintextSecrets at once: a change shows at the next ask."""
        directory = UserDirectory(self.users, reactor)
        self.users.addUser("plain@lab.test", "x", scheme="PLAIN")
        self.assertTrue(directory.allPlaintextSecrets())
        self.users.addUser("hashed@lab.test", "x")
        self.assertFalse(directory.allPlaintextSecrets())

    def test_unreadableFileUnavailable(self):
        """A users file that cannot be read makes the directory's answers fail as
        unavailable (temporary), not as 'no such user'."""
        directory = UserDirectory(self.users, reactor)
        os.makedirs(self.path)
        return self.assertFailure(directory.lookup("alice"), UserDirectoryUnavailable)


class SQLiteContractTests(UserBackendContract, unittest.TestCase):
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


class RegistryTests(unittest.TestCase):
    def test_backends(self):
        """The config may name passwd-file (the default) and sqlite, each an
        IUserBackendPlugin with its default file name."""
        self.assertEqual(sorted(BACKENDS), ["passwd-file", "sqlite"])
        self.assertEqual(DEFAULT_BACKEND, "passwd-file")
        for name, plugin in BACKENDS.items():
            self.assertTrue(verifyObject(IUserBackendPlugin, plugin))
            self.assertEqual(plugin.name, name)
        self.assertEqual((PasswdFileBackend.defaultPath, SQLiteBackend.defaultPath),
                         ("users", "users.sqlite"))

    def test_backendNamed(self):
        """An unknown name, or an entry that is not a plug-in, is a KeyError."""
        self.assertIs(backendNamed("sqlite"), SQLiteBackend)
        self.assertRaises(KeyError, backendNamed, "postgresql")
        self.assertRaises(KeyError, backendNamed, "x", {"x": object()})

    def test_passwdFileOpens(self):
        """The passwd-file plug-in opens a PasswdFile."""
        path = self.mktemp()
        self.assertIsInstance(PasswdFileBackend.open(path), PasswdFile)


class DummyCostTests(unittest.TestCase):
    """
    A failed check spends one bcrypt at the cost most stored hashes have, on
    both backends (so a failure takes as long as a wrong BLF-CRYPT password).
    """

    def test_dummyCost(self):
        """The dummy cost is the most common stored cost, else bcryptRounds."""
        for plugin in (PasswdFileBackend, SQLiteBackend):
            directory = self.mktemp()
            os.makedirs(directory)
            users = plugin.open(os.path.join(directory, plugin.defaultPath), "lab.test", 4)
            self.assertEqual(users.dummyCost(), 4, plugin.name)
            for name, cost in (("a", 5), ("b", 5), ("c", 6)):
                hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(cost)).decode()
                users.addStoredUser(User(name + "@lab.test", "BLF-CRYPT", "$2y$" + hashed[4:]))
            users.addStoredUser(User("d@lab.test", "PLAIN", "$2y$07$x"))
            self.assertEqual(users.dummyCost(), 5, plugin.name)
