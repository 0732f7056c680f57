"""
Users in an SQLite database (C{[users] backend = "sqlite"}): one file, one
table, the same schemes and stored forms as the passwd-file (C{BLF-CRYPT}
bcrypt hashes in Dovecot's C{$2y$} form, C{SHA512-CRYPT}, C{SHA256-CRYPT} and
C{ARGON2ID} hashes as Dovecot writes them, C{PLAIN} passwords), so users move
between the two unchanged (C{mailstack user migrate}).

The schema is created on first use. Each thread gets its own connection (an
sqlite3 connection must stay in the thread that made it); the server calls
this only from the reactor's thread pool, through
L{mailstack.auth.directory.UserDirectory}, the admin command directly. A
database that is locked longer than C{busyTimeout} or fails raises
L{UserDirectoryUnavailable}: the protocols answer it with their temporary
errors and the next command tries again.
"""

import os
import sqlite3
import threading

from zope.interface import implementer, provider

from mailstack.auth.interfaces import IUserBackend, IUserBackendPlugin, UserDirectoryUnavailable
from mailstack.auth.passwords import (
    DEFAULT_SCHEME, NoSuchUser, PasswordBackend, User, UserExists, costKind)
from mailstack.storage.files import makeDirectories

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    address TEXT PRIMARY KEY NOT NULL,
    scheme TEXT NOT NULL,
    secret TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0
)
"""

# A database made before the admin flag gets its column on first use.
_ADD_ADMIN = "ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0"


# One hash of the most common kind: grouped by scheme and what precedes the
# salt (bcrypt's cost, "$6$rounds=N$" or "$6$", "$argon2id$v=19$m=,t=,p=$").
_COMMONEST_HASH = """
SELECT scheme, min(secret) FROM users
WHERE scheme IN ('BLF-CRYPT', 'SHA512-CRYPT', 'SHA256-CRYPT', 'ARGON2ID')
GROUP BY scheme, CASE
    WHEN scheme = 'BLF-CRYPT' THEN substr(secret, 5, 3)
    WHEN scheme = 'ARGON2ID' THEN substr(secret, 1, instr(substr(secret, 16), '$') + 15)
    WHEN secret GLOB '$[56]$rounds=*' THEN substr(secret, 1, instr(substr(secret, 4), '$') + 3)
    ELSE substr(secret, 1, 3) END
ORDER BY count(*) DESC, scheme, min(secret)
LIMIT 1
"""


def _user(row):
    """A L{User} from a row C{(address, scheme, secret, admin)}."""
    address, scheme, secret, admin = row
    return User(address, scheme, secret, bool(admin))


def _unavailable(path, error):
    return UserDirectoryUnavailable("user database %s: %s" % (path, error))


@implementer(IUserBackend)
class SQLiteUsers(PasswordBackend):
    """
    The users of one SQLite database file.

    @param path: the database file; created (0600, its directory 0700) with
        its schema if missing.
    @param busyTimeout: seconds to wait for another writer's lock before
        giving up with L{UserDirectoryUnavailable}.
    """

    # Every answer is a query: the directory keeps allPlaintextSecrets' answer.
    answersWithoutWaiting = False

    def __init__(self, path, defaultDomain=None, bcryptRounds=10, domains=None,
                 busyTimeout=5.0):
        PasswordBackend.__init__(self, defaultDomain, bcryptRounds, domains)
        self.path = os.fspath(path)
        self.busyTimeout = busyTimeout
        self._local = threading.local()

    def open(self):
        """
        Create the file and the schema if missing, and check the database can
        be read.

        @return: C{self}.
        @raise UserDirectoryUnavailable: one line, if it cannot.
        """
        try:
            makeDirectories(os.path.dirname(os.path.abspath(self.path)))
            if not os.path.exists(self.path):
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as e:
            raise _unavailable(self.path, e.strerror or e)
        self._query("SELECT count(*) FROM users")
        return self

    def _connection(self):
        """This thread's connection, opened (and the schema made) on first use."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=self.busyTimeout,
                                         isolation_level=None)
            try:
                connection.execute(SCHEMA)
                columns = [row[1] for row in connection.execute("PRAGMA table_info(users)")]
                if "admin" not in columns:
                    try:
                        connection.execute(_ADD_ADMIN)
                    except sqlite3.OperationalError:
                        # Another connection added it first: fine if it is there now.
                        if "admin" not in [row[1] for row in connection.execute(
                                "PRAGMA table_info(users)")]:
                            raise
            except BaseException:
                connection.close()
                raise
            self._local.connection = connection
        return connection

    def close(self):
        """Close this thread's connection (others close when their thread ends)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            self._local.connection = None
            connection.close()

    def _query(self, sql, parameters=()):
        """Rows of one read, or L{UserDirectoryUnavailable}."""
        try:
            return self._connection().execute(sql, parameters).fetchall()
        except sqlite3.Error as e:
            raise _unavailable(self.path, e)

    def _transaction(self, work):
        """
        Run C{work(cursor)} in one write transaction (C{BEGIN IMMEDIATE}: the
        write lock is taken first, so a read-modify-write sees no other
        writer's change halfway). A L{UserError} rolls back and goes on up.
        """
        try:
            connection = self._connection()
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise _unavailable(self.path, e)
        try:
            result = work(connection)
            connection.execute("COMMIT")
            return result
        except BaseException as e:
            try:
                connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(e, sqlite3.Error):
                raise _unavailable(self.path, e)
            raise

    # Reading

    def lookup(self, name):
        address = self.normalize(name)
        if address is None:
            return None
        rows = self._query("SELECT address, scheme, secret, admin FROM users "
                           "WHERE address = ?", (address,))
        return _user(rows[0]) if rows else None

    def listUsers(self):
        return [_user(row) for row in self._query(
            "SELECT address, scheme, secret, admin FROM users ORDER BY address")]

    def allPlaintextSecrets(self):
        (total, plain), = self._query(
            "SELECT count(*), count(CASE WHEN scheme = 'PLAIN' THEN 1 END) FROM users")
        return total > 0 and total == plain

    def dummyCost(self):
        """The most common cost of the stored bcrypt hashes (L{bcryptRounds} if none)."""
        rows = self._query(
            "SELECT substr(secret, 5, 2) AS cost FROM users "
            "WHERE scheme = 'BLF-CRYPT' AND secret GLOB '$2[abxy]$[0-3][0-9]$*' "
            "GROUP BY cost ORDER BY count(*) DESC, cost LIMIT 1")
        if rows and 4 <= int(rows[0][0]) <= 31:
            return int(rows[0][0])
        return self.bcryptRounds

    def dummyKind(self):
        """
        The most common kind of the stored hashes, of every scheme: hashes are
        grouped by what precedes their salt (bcrypt's cost, SHA-crypt's
        C{rounds=}, Argon2's parameters) and one of the largest group is read
        for its L{costKind}; bcrypt at L{dummyCost} if none is usable.
        """
        rows = self._query(_COMMONEST_HASH)
        kind = costKind(*rows[0]) if rows else None
        return kind or ("BLF-CRYPT", self.dummyCost())

    # Writing

    @staticmethod
    def _current(connection, address):
        row = connection.execute("SELECT scheme, secret FROM users WHERE address = ?",
                                 (address,)).fetchone()
        return (None, None) if row is None else row

    def addUser(self, address, password, scheme=DEFAULT_SCHEME):
        address = self.checkNewAddress(address)
        scheme = self.checkScheme(scheme)
        self.checkPassword(password, scheme)
        self._insert(address, scheme, self.hashSecret(scheme, password))

    def addStoredUser(self, user):
        self._insert(self.checkNewAddress(user.address), user.scheme, user.secret, user.admin)

    def _insert(self, address, scheme, secret, admin=False):
        def insert(connection):
            if self._current(connection, address)[0] is not None:
                raise UserExists("user %s already exists" % (address,))
            connection.execute("INSERT INTO users (address, scheme, secret, admin) "
                               "VALUES (?, ?, ?, ?)", (address, scheme, secret, int(admin)))
        self._transaction(insert)

    def setAdmin(self, address, admin):
        normalized = self.normalize(address)

        def change(connection):
            changed = 0 if normalized is None else connection.execute(
                "UPDATE users SET admin = ? WHERE address = ?",
                (int(bool(admin)), normalized)).rowcount
            if not changed:
                raise NoSuchUser("no such user: %s" % (normalized or address,))
        self._transaction(change)

    def setPassword(self, address, password, scheme=None):
        normalized = self.normalize(address)
        if scheme is not None:
            scheme = self.checkScheme(scheme)

        def change(connection):
            current = None if normalized is None else self._current(connection, normalized)[0]
            if current is None:
                raise NoSuchUser("no such user: %s" % (normalized or address,))
            target = self.newScheme(scheme, current)
            self.checkPassword(password, target)
            connection.execute("UPDATE users SET scheme = ?, secret = ? WHERE address = ?",
                               (target, self.hashSecret(target, password), normalized))
            return target
        return self._transaction(change)

    def removeUser(self, address):
        normalized = self.normalize(address)

        def remove(connection):
            deleted = 0 if normalized is None else connection.execute(
                "DELETE FROM users WHERE address = ?", (normalized,)).rowcount
            if not deleted:
                raise NoSuchUser("no such user: %s" % (normalized or address,))
        self._transaction(remove)

    def importCSV(self, source, update=False):
        """
        The same import as L{mailstack.auth.userdb.PasswdFile.importCSV}
        (all or nothing, existing users skipped unless C{update}), in one
        transaction.
        """
        filename, text = self.readCSV(source)
        rows, problems = self.csvRows(filename, text)

        def load(connection):
            def stored(address):
                current, secret = self._current(connection, address)
                return (None if current is None else address), current, secret

            result, writes = self.planImport(filename, rows, problems, stored, update)
            for address, password, target, where in writes:
                if where is None:
                    connection.execute(
                        "INSERT INTO users (address, scheme, secret) VALUES (?, ?, ?)",
                        (address, target, self.hashSecret(target, password)))
                else:
                    connection.execute(
                        "UPDATE users SET scheme = ?, secret = ? WHERE address = ?",
                        (target, self.hashSecret(target, password), address))
            return result
        return self._transaction(load)


@provider(IUserBackendPlugin)
class SQLiteBackend:
    """The C{sqlite} backend: L{SQLiteUsers} at C{[users] path}."""

    name = "sqlite"
    defaultPath = "users.sqlite"

    @staticmethod
    def open(path, defaultDomain=None, bcryptRounds=10, domains=None):
        return SQLiteUsers(path, defaultDomain, bcryptRounds, domains).open()
