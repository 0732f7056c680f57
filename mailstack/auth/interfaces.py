"""
The user directory contracts.

Two views of the same users:

  - L{IUserBackend}: where the users live (a Dovecot passwd-file, an SQLite
    database, a PostgreSQL server). Synchronous and safe to call from any
    thread: the admin command and the first start call it directly, the
    server only through L{IUserDirectory}, which runs it in the reactor's
    thread pool.
  - L{IUserDirectory}: what the server uses (the cred checker, the SMTP
    policy, the mechanism-offer policy of every protocol). Everything that
    may touch a disk or a database returns a Deferred; only L{normalize}
    (pure) and L{IUserDirectory.allPlaintextSecrets} (answered from memory)
    are synchronous.

A backend is chosen in the config (C{[users] backend}) among the
L{IUserBackendPlugin}s of L{mailstack.auth.backends}: the built-in ones and
those other packages declare as entry points (C{mailstack.user_backends}).
A file backend is given C{[users] path}; a database server's
(L{IUserServerBackendPlugin}) C{[users] dsn}.

Users have one of the schemes of L{mailstack.auth.passwords.SCHEMES}
(C{BLF-CRYPT}, C{SHA512-CRYPT}, C{SHA256-CRYPT}, C{ARGON2ID}, C{PLAIN}); a
L{mailstack.auth.passwords.User} carries the stored form (the hash, or the
password for PLAIN), which is what moves between backends unchanged.
"""

from zope.interface import Attribute, Interface


class UserDirectoryUnavailable(Exception):
    """
    The users cannot be read or changed now (a locked or failing database):
    a temporary condition, answered with the protocol's temporary error,
    never with an authentication failure.
    """


class IUserBackend(Interface):
    """
    One store of users. Every method is synchronous and thread-safe; a
    failure of the storage itself raises L{UserDirectoryUnavailable}; a
    refused change raises a L{mailstack.auth.passwords.UserError}.
    """

    path = Attribute("str: where the users are (the file or database), for messages.")

    answersWithoutWaiting = Attribute(
        "bool: allPlaintextSecrets() answers from memory (at most an os.stat), so the "
        "reactor thread may ask it on every connection; otherwise the directory keeps "
        "the answer and refreshes it in a thread.")

    keepsNoLogin = Attribute(
        "bool: addStoredUser keeps a User's noLogin (the passwd-file's nologin extra "
        "fields); a backend without them would let such a user log in, so user "
        "migrate leaves those users behind.")

    def normalize(name):
        """The canonical address for a login name (str or bytes), or L{None}."""

    def checkNewAddress(address):
        """The normalised address of a would-be new user; raises InvalidAddress."""

    def lookup(name):
        """The L{User} for a login name, or L{None}."""

    def listUsers():
        """Every L{User}, sorted by address."""

    def verifyPassword(name, password):
        """
        C{True} if C{password} (str or bytes) is the user's. A failure costs one
        check of a hash whatever its cause (the user's own, else one of the
        most common kind stored), so timing does not tell which users exist.
        """

    def plaintextSecret(name):
        """The password of a PLAIN user (str), else L{None} (for APOP, CRAM-MD5)."""

    def allPlaintextSecrets():
        """C{True} if there are users and every one is stored PLAIN."""

    def addUser(address, password, scheme):
        """Add a user with a password hashed (or kept) in C{scheme}."""

    def addStoredUser(user):
        """
        Add a L{User} exactly as stored elsewhere (its scheme, hash and admin flag), for
        moving users between backends; raises UserExists.
        """

    def setPassword(address, password, scheme=None):
        """Change a user's password; C{scheme} L{None} keeps it. @return: the scheme."""

    def removeUser(address):
        """Remove a user (their mail is not touched); raises NoSuchUser."""

    def setAdmin(address, admin):
        """
        Set or clear a user's admin flag (the web console's admins see every
        account); raises NoSuchUser.
        """

    def importCSV(source, update=False):
        """
        Add (and with C{update}, reset) users from CSV rows
        C{address,password[,scheme]}, all or nothing. @return: an ImportResult.
        """


class IUserDirectory(Interface):
    """
    The server's view of the users: nothing here blocks the reactor.
    """

    def normalize(name):
        """The canonical address for a login name (str or bytes), or L{None}."""

    def lookup(name):
        """A Deferred firing with the L{User} for a login name, or L{None}."""

    def verifyPassword(name, password):
        """A Deferred firing with C{True} if the password is the user's (run in a thread)."""

    def verifyLogin(name, password):
        """
        A Deferred firing with the L{User} if the password is theirs, else
        L{None} (the check and the lookup in one thread call): a login's check.
        """

    def plaintextSecret(name):
        """A Deferred firing with a PLAIN user's password, else L{None}."""

    def listUsers():
        """A Deferred firing with every L{User}, sorted by address."""

    def allPlaintextSecrets():
        """
        Whether every user is stored PLAIN (then CRAM-MD5 and APOP are offered
        unasked): asked on every EHLO and CAPA, so answered at once, never
        waiting for the backend (see L{IUserBackend.answersWithoutWaiting}).
        """


class IUserBackendPlugin(Interface):
    """
    One kind of user backend, as the config names it (C{[users] backend}).
    """

    name = Attribute("str: the config's name for it (C{passwd-file}, C{sqlite}, C{postgresql}).")

    defaultPath = Attribute("str: the default C{[users] path}, relative to data_dir.")

    def open(path, defaultDomain=None, bcryptRounds=10, domains=None):
        """
        The L{IUserBackend} at C{path}, ready to use (a database's schema
        created).

        @raise UserDirectoryUnavailable: if it cannot be opened (one line).
        """


class IUserServerBackendPlugin(IUserBackendPlugin):
    """
    A backend on a database server: where its users are is a connection
    string (C{[users] dsn}, required) rather than a file. Its C{defaultPath}
    is L{None}, and C{open} gets the DSN as its C{path}.
    """

    def checkDSN(dsn):
        """
        Check a DSN's syntax (when the config is loaded, before connecting).

        @raise ValueError: one line saying what is wrong with it.
        """
