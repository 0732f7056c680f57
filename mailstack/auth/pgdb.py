"""
Users in PostgreSQL (C{[users] backend = "postgresql"}, C{dsn}): one table,
C{mailstack_users}, with the same schemes and stored forms as the passwd-file
and SQLite (C{BLF-CRYPT} bcrypt hashes in Dovecot's C{$2y$} form,
C{SHA512-CRYPT}, C{SHA256-CRYPT} and C{ARGON2ID} hashes as Dovecot writes
them, C{PLAIN} passwords), so users move between them unchanged (C{mailstack user
migrate}), and several hosts can share one directory.

The table is created on first use if missing (a role that may only read and
write an existing table is enough). Calls are synchronous: the server makes
them only from the reactor's thread pool (through
L{mailstack.auth.directory.UserDirectory}), the admin command directly.
Each call takes an idle connection from a small pool of this backend's own
(one per thread at most at a time: the pool never holds more than were in use
at once) or opens one.

A database that cannot be reached or fails raises
L{UserDirectoryUnavailable}, which the protocols answer with their
temporary errors. After the server restarts, the pooled connections are
dead: the first call that meets one drops them all and tries once more on a
new connection (never after a change may have been committed), so service
comes back with the database, without a failed login in between.
"""

import os
import threading

import psycopg
from psycopg import conninfo, errors
from psycopg.pq import TransactionStatus
from zope.interface import implementer, provider

from mailstack.auth.interfaces import (
    IUserBackend, IUserServerBackendPlugin, UserDirectoryUnavailable)
from mailstack.auth.passwords import (
    DEFAULT_SCHEME, InvalidPassword, NoSuchUser, PasswordBackend, User, UserExists, costKind)

TABLE = "mailstack_users"

SCHEMA = """
CREATE TABLE IF NOT EXISTS mailstack_users (
    address text PRIMARY KEY,
    scheme text NOT NULL,
    secret text NOT NULL,
    admin boolean NOT NULL DEFAULT false
)
"""

# A table made before the admin flag gets its column when it is opened (by
# the table's owner: a role that may only read it sees no admins until the
# owner, e.g. the admin command, has opened it once).
_ADD_ADMIN = ("ALTER TABLE mailstack_users ADD COLUMN IF NOT EXISTS "
              "admin boolean NOT NULL DEFAULT false")
_HAS_ADMIN = ("SELECT count(*) FROM information_schema.columns WHERE "
              "table_name = 'mailstack_users' AND column_name = 'admin' "
              "AND table_schema = current_schema()")

# One hash of the most common kind, as SQLite's _COMMONEST_HASH: grouped by
# scheme and what precedes the salt (bcrypt's cost, "$6$rounds=N$" or "$6$",
# "$argon2id$v=19$m=,t=,p=$"); ties broken by byte order, as SQLite does.
_COMMONEST_HASH = r"""
SELECT scheme, min(secret COLLATE "C") FROM mailstack_users
WHERE scheme IN ('BLF-CRYPT', 'SHA512-CRYPT', 'SHA256-CRYPT', 'ARGON2ID')
GROUP BY scheme, CASE
    WHEN scheme = 'BLF-CRYPT' THEN substr(secret, 5, 3)
    WHEN scheme = 'ARGON2ID' THEN substr(secret, 1, strpos(substr(secret, 16), '$') + 15)
    WHEN secret ~ '^\$[56]\$rounds=' THEN substr(secret, 1, strpos(substr(secret, 4), '$') + 3)
    ELSE substr(secret, 1, 3) END
ORDER BY count(*) DESC, scheme COLLATE "C", min(secret COLLATE "C")
LIMIT 1
"""

# Seconds to wait for a connection when the DSN (or PGCONNECT_TIMEOUT) sets
# none: libpq would wait for as long as TCP does.
CONNECT_TIMEOUT = 5

# Idle connections kept: more than the reactor's thread pool would ever use.
MAX_IDLE = 10


def _oneLine(error):
    """An error's text on one line (libpq's messages have several)."""
    return " ".join(str(error).split()) or error.__class__.__name__


def parseDSN(dsn):
    """
    @return: the DSN's parameters (a dict).
    @raise ValueError: one line, if it is not a libpq connection string or URI.
    """
    try:
        return conninfo.conninfo_to_dict(dsn)
    except psycopg.Error as e:
        raise ValueError("not a libpq connection string or URI: %s" % (_oneLine(e),))


def describeDSN(dsn):
    """
    What a DSN connects to, for messages: its parameters without the
    password (C{host=db.lab port=5432 dbname=mail user=mailstack}).
    """
    try:
        params = parseDSN(dsn)
    except ValueError:
        return "(unreadable dsn)"
    params.pop("password", None)
    return conninfo.make_conninfo(**params) or "(libpq defaults)"


@implementer(IUserBackend)
class PostgreSQLUsers(PasswordBackend):
    """
    The users of the C{mailstack_users} table in one PostgreSQL database.

    @param dsn: a libpq connection string or URI.
    @param lockTimeout: seconds a query waits for a lock (another change's,
        or a DBA's C{ALTER TABLE}) before giving up with
        L{UserDirectoryUnavailable}, rather than holding a login (and a
        thread) for as long as the lock lasts; set on each new connection.
    @ivar path: the DSN without its password (L{describeDSN}), for messages.
    @ivar connectOptions: what each connection adds to the DSN: a
        C{connect_timeout} of L{CONNECT_TIMEOUT} and C{application_name}
        C{mailstack}, each unless the DSN (or the environment) sets it.
    """

    # Every answer is a query: the directory keeps allPlaintextSecrets' answer.
    answersWithoutWaiting = False

    def __init__(self, dsn, defaultDomain=None, bcryptRounds=10, domains=None,
                 lockTimeout=5.0):
        PasswordBackend.__init__(self, defaultDomain, bcryptRounds, domains)
        self.dsn = dsn
        self.path = describeDSN(dsn)
        self.lockTimeout = lockTimeout
        params = parseDSN(dsn)
        self.connectOptions = {}
        if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
            self.connectOptions["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in params and "PGAPPNAME" not in os.environ:
            self.connectOptions["application_name"] = "mailstack"
        self._idle = []
        # Bumped by close(): connections opened before are closed when given back.
        self._generation = 0
        self._born = {}
        self._lock = threading.Lock()
        # The admin column, or "false" where the table has none and this
        # role may not add it (open()).
        self._admin = "admin"

    def open(self):
        """
        Connect, and create the table if it is missing.

        @return: C{self}.
        @raise UserDirectoryUnavailable: one line, if the database cannot be
            reached or the table cannot be made or read.
        """
        def create(connection):
            exists, = connection.execute("SELECT to_regclass(%s) IS NOT NULL",
                                         (TABLE,)).fetchone()
            if not exists:
                try:
                    connection.execute(SCHEMA)
                except (errors.UniqueViolation, errors.DuplicateTable):
                    pass  # another process created it at the same moment
            if not connection.execute(_HAS_ADMIN).fetchone()[0]:
                try:
                    connection.execute(_ADD_ADMIN)
                except errors.InsufficientPrivilege:
                    self._admin = "false"
            connection.execute("SELECT count(*) FROM mailstack_users").fetchone()
        self._run(create)
        return self

    # Connections

    def _connect(self):
        try:
            connection = psycopg.connect(self.dsn, autocommit=True, **self.connectOptions)
        except psycopg.Error as e:
            raise self._unavailable(e)
        try:
            connection.execute("SET lock_timeout = %d" % (max(1, int(self.lockTimeout * 1000)),))
        except psycopg.Error as e:
            connection.close()
            raise self._unavailable(e)
        with self._lock:
            self._born[connection] = self._generation
        return connection

    def _take(self):
        """
        @return: C{(connection, reused)}: an idle connection (C{reused}) or a
            new one.
        """
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _give(self, connection):
        """Put a connection back, unless it is unusable, too old or one too many."""
        with self._lock:
            keep = (not connection.closed and not connection.broken
                    and connection.info.transaction_status == TransactionStatus.IDLE
                    and self._born.get(connection) == self._generation
                    and len(self._idle) < MAX_IDLE)
            if keep:
                self._idle.append(connection)
                return
            self._born.pop(connection, None)
        connection.close()

    def _dropIdle(self):
        """Close every idle connection (the server went away: they are all dead)."""
        with self._lock:
            idle, self._idle = self._idle, []
            for connection in idle:
                self._born.pop(connection, None)
        for connection in idle:
            connection.close()

    def close(self):
        """
        Close the idle connections; those in use close when their call ends.
        The backend may still be used: it opens new ones.
        """
        with self._lock:
            self._generation += 1
        self._dropIdle()

    def _unavailable(self, error):
        return UserDirectoryUnavailable("user database %s: %s" % (self.path, _oneLine(error)))

    def _run(self, work, write=False):
        """
        C{work(connection)} on a pooled connection: with C{write}, in one
        transaction holding the table's write lock (taken first, so a
        read-modify-write sees no other change halfway; readers do not
        wait); a L{UserError} rolls back and goes on up.

        A reused connection found dead is dropped with every idle one, and
        the work runs once more on a new connection, unless it was a change
        that may have been committed.

        @raise UserDirectoryUnavailable: one line, for any database failure.
        """
        for attempt in (1, 2):
            connection, reused = self._take()
            committing = False
            try:
                if write:
                    with connection.transaction():
                        connection.execute(
                            "LOCK TABLE mailstack_users IN SHARE ROW EXCLUSIVE MODE")
                        result = work(connection)
                        committing = True
                else:
                    result = work(connection)
            except psycopg.Error as e:
                dead = connection.closed or connection.broken
                self._give(connection)
                if dead and reused and not committing and attempt == 1:
                    self._dropIdle()
                    continue
                raise self._unavailable(e)
            except BaseException:
                self._give(connection)
                raise
            self._give(connection)
            return result

    def _query(self, sql, parameters=None):
        """Rows of one read."""
        return self._run(lambda connection: connection.execute(sql, parameters).fetchall())

    # Reading

    def lookup(self, name):
        address = self.normalize(name)
        if address is None:
            return None
        rows = self._query(
            "SELECT address, scheme, secret, %s FROM mailstack_users WHERE address = %%s"
            % (self._admin,), (address,))
        return User(*rows[0]) if rows else None

    def listUsers(self):
        # COLLATE "C": by code point, as the other backends sort, whatever the
        # database's locale.
        return [User(*row) for row in self._query(
            'SELECT address, scheme, secret, %s FROM mailstack_users '
            'ORDER BY address COLLATE "C"' % (self._admin,))]

    def allPlaintextSecrets(self):
        (total, plain), = self._query(
            "SELECT count(*), count(*) FILTER (WHERE scheme = 'PLAIN') FROM mailstack_users")
        return total > 0 and total == plain

    def dummyCost(self):
        """The most common cost of the stored bcrypt hashes (L{bcryptRounds} if none)."""
        rows = self._query(
            "SELECT substr(secret, 5, 2) AS cost FROM mailstack_users "
            r"WHERE scheme = 'BLF-CRYPT' AND secret ~ '^\$2[abxy]\$[0-3][0-9]\$' "
            "GROUP BY cost ORDER BY count(*) DESC, cost LIMIT 1")
        if rows and 4 <= int(rows[0][0]) <= 31:
            return int(rows[0][0])
        return self.bcryptRounds

    def dummyKind(self):
        """
        The most common kind of the stored hashes, of every scheme (grouped
        by what precedes their salt; one of the largest group is read for its
        L{costKind}); bcrypt at L{dummyCost} if none is usable.
        """
        rows = self._query(_COMMONEST_HASH)
        kind = costKind(*rows[0]) if rows else None
        return kind or ("BLF-CRYPT", self.dummyCost())

    # Writing

    @staticmethod
    def _current(connection, address):
        row = connection.execute(
            "SELECT scheme, secret FROM mailstack_users WHERE address = %s",
            (address,)).fetchone()
        return (None, None) if row is None else row

    @staticmethod
    def _store(connection, sql, parameters):
        """
        One write whose secret may be what PostgreSQL text cannot hold (a NUL,
        or bytes that were not UTF-8 in a passwd-file): refused as
        L{InvalidPassword}, nothing stored.
        """
        try:
            connection.execute(sql, parameters)
        except (UnicodeEncodeError, psycopg.DataError) as e:
            raise InvalidPassword("password cannot be stored in PostgreSQL: %s" % (
                _oneLine(e),))

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
            self._store(connection,
                        "INSERT INTO mailstack_users (address, scheme, secret, admin) "
                        "VALUES (%s, %s, %s, %s)", (address, scheme, secret, bool(admin)))
        self._run(insert, write=True)

    def setAdmin(self, address, admin):
        normalized = self.normalize(address)

        def change(connection):
            changed = 0 if normalized is None else connection.execute(
                "UPDATE mailstack_users SET admin = %s WHERE address = %s",
                (bool(admin), normalized)).rowcount
            if not changed:
                raise NoSuchUser("no such user: %s" % (normalized or address,))
        self._run(change, write=True)

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
            self._store(connection,
                        "UPDATE mailstack_users SET scheme = %s, secret = %s WHERE address = %s",
                        (target, self.hashSecret(target, password), normalized))
            return target
        return self._run(change, write=True)

    def removeUser(self, address):
        normalized = self.normalize(address)

        def remove(connection):
            deleted = 0 if normalized is None else connection.execute(
                "DELETE FROM mailstack_users WHERE address = %s", (normalized,)).rowcount
            if not deleted:
                raise NoSuchUser("no such user: %s" % (normalized or address,))
        self._run(remove, write=True)

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
                    self._store(connection,
                                "INSERT INTO mailstack_users (address, scheme, secret) "
                                "VALUES (%s, %s, %s)",
                                (address, target, self.hashSecret(target, password)))
                else:
                    self._store(connection,
                                "UPDATE mailstack_users SET scheme = %s, secret = %s "
                                "WHERE address = %s",
                                (target, self.hashSecret(target, password), address))
            return result
        return self._run(load, write=True)


@provider(IUserServerBackendPlugin)
class PostgreSQLBackend:
    """The C{postgresql} backend: L{PostgreSQLUsers} at C{[users] dsn}."""

    name = "postgresql"
    defaultPath = None

    @staticmethod
    def open(path, defaultDomain=None, bcryptRounds=10, domains=None):
        """
        @param path: the DSN.
        """
        try:
            users = PostgreSQLUsers(path, defaultDomain, bcryptRounds, domains)
        except ValueError as e:
            raise UserDirectoryUnavailable("user database: %s" % (e,))
        return users.open()

    @staticmethod
    def checkDSN(dsn):
        parseDSN(dsn)
