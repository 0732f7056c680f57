"""
Users in a Dovecot passwd-file: C{address:{SCHEME}secret:::::} lines.

Dovecot reads the same file (so C{doveadm pw} output can be pasted in, and our
file can serve a Dovecot next to us). Schemes understood: C{BLF-CRYPT} (bcrypt,
the default), C{SHA512-CRYPT}, C{SHA256-CRYPT}, C{ARGON2ID} and C{PLAIN} (needed
by APOP and CRAM-MD5, which are offered unasked only when every user is PLAIN:
L{PasswdFile.allPlaintextSecrets}). A line with any other scheme is logged;
that user still exists (mail is accepted for it) but cannot log in here.

The file is the only truth. Every lookup does one C{os.stat} and reloads when the
file changed, so a running server sees the admin command's changes at once.
Changes are read-modify-write under an C{flock} on C{<file>.lock}, written to a
temporary file in the same directory, fsynced and renamed over the old one, so
readers never see half a file and concurrent admins never lose each other's work.

L{mailstack.auth.passwords.PasswordBackend} holds what every backend shares
(normalisation, the rules for new users, hashing, verifying, CSV reading);
L{PasswdFile} is the
passwd-file L{mailstack.auth.interfaces.IUserBackend}, L{PasswdFileBackend}
its config entry.
"""

import base64
import binascii
import fcntl
import os
import re
import threading

from twisted.logger import Logger
from zope.interface import implementer, provider

from mailstack.auth import nologin
from mailstack.auth.interfaces import IUserBackend, IUserBackendPlugin, UserDirectoryUnavailable
from mailstack.auth.passwords import (
    DEFAULT_SCHEME, SCHEMES, NoSuchUser, PasswordBackend, User, UserExists, costKind,
    encodeText, isValidAddress, mostCommonKind, schemeList)
from mailstack.storage.files import atomicWrite, makeDirectories

log = Logger()

# The admin flag: an extra field (the line's eighth, space-separated
# key=value pairs, which Dovecot passes on and otherwise ignores).
ADMIN_FIELD = "mailstack_admin=yes"
_EXTRA = 7

# Secrets stored PLAIN that could not survive in a ':'-separated line are
# base64-encoded with Dovecot's encoding suffix: {PLAIN.B64}.
_UNSAFE_PLAIN = re.compile(r"[:\x00-\x1f\x7f]")


def _parsePasswordField(field):
    """
    C{{SCHEME}secret} -> C{(scheme, secret)}; PLAIN's encoding suffixes decoded.
    A field without a scheme gets the scheme C{""} (Dovecot would use its
    configured default, which we do not know).
    """
    if not field.startswith("{") or "}" not in field:
        return "", field
    scheme, _, secret = field[1:].partition("}")
    scheme = scheme.upper()
    base, _, encoding = scheme.partition(".")
    if base in ("PLAIN", "CLEARTEXT") and encoding:
        try:
            if encoding in ("B64", "BASE64"):
                raw = base64.b64decode(secret, validate=True)
            elif encoding == "HEX":
                raw = binascii.unhexlify(secret)
            else:
                return scheme, secret
        except (ValueError, binascii.Error):
            return scheme, secret
        return "PLAIN", raw.decode("utf-8", "surrogateescape")
    if scheme == "CLEARTEXT":
        return "PLAIN", secret
    return scheme, secret


def _formatPasswordField(scheme, secret):
    if scheme == "PLAIN" and _UNSAFE_PLAIN.search(secret):
        return "{PLAIN.B64}" + base64.b64encode(encodeText(secret)).decode("ascii")
    return "{%s}%s" % (scheme, secret)


def _splitLines(text):
    """
    Lines split on LF only (str.splitlines would also split on characters a
    PLAIN password may hold).
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _extraFields(fields):
    """The extra fields (C{key=value} words) of a line split on C{:}."""
    return ":".join(fields[_EXTRA:]).split() if len(fields) > _EXTRA else []


def _withAdmin(fields, admin):
    """The line of C{fields} with L{ADMIN_FIELD} in its extra fields, or without."""
    fields = fields + [""] * (_EXTRA - len(fields))
    extra = [word for word in _extraFields(fields) if word != ADMIN_FIELD]
    if admin:
        extra.append(ADMIN_FIELD)
    return ":".join(fields[:_EXTRA] + ([" ".join(extra)] if extra else []))


def _stamp(st):
    """What tells that the file changed: a rename (inode), size or times."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@implementer(IUserBackend)
class PasswdFile(PasswordBackend):
    """
    The users of one Dovecot passwd-file.

    @param path: the file (str or Path); missing means no users yet.
    @param defaultDomain: domain given to a bare local part at login, or L{None}.
    @param bcryptRounds: bcrypt cost for new BLF-CRYPT hashes.
    @param domains: if given, the only domains new users may have (the server's
        local domains); L{None} accepts any domain.
    """

    # One os.stat, then memory: the reactor may ask allPlaintextSecrets.
    answersWithoutWaiting = True
    keepsNoLogin = True

    def __init__(self, path, defaultDomain=None, bcryptRounds=10, domains=None):
        PasswordBackend.__init__(self, defaultDomain, bcryptRounds, domains)
        self.path = os.fspath(path)
        self.lockPath = self.path + ".lock"
        # Lookups may come from the checker's thread as well as the reactor.
        self._lock = threading.Lock()
        self._stamp = None
        self._users = {}
        self._allPlaintext = False  # derived from _users at each (re)load
        self._dummyCost = bcryptRounds  # likewise
        self._dummyKind = ("BLF-CRYPT", bcryptRounds)  # likewise

    # Reading

    def lookup(self, name):
        """
        @return: the L{User} for a login name, or L{None}.
        """
        address = self.normalize(name)
        if address is None:
            return None
        return self._current().get(address)

    def listUsers(self):
        """
        @return: every L{User}, sorted by address.
        """
        users = self._current()
        return [users[address] for address in sorted(users)]

    def allPlaintextSecrets(self):
        """
        C{True} if there are users and every one is stored PLAIN: only then do
        APOP and CRAM-MD5 work for whoever logs in. Offered while one user is
        hashed, they would be picked by clients that choose the strongest
        advertised mechanism (curl, mutt, s-nail) and fail for that user,
        without falling back. Asked per connection, CAPA and EHLO: follows the
        file (reloaded when it changes), answered from the last load.
        """
        with self._lock:
            self._load()
            return self._allPlaintext

    def dummyCost(self):
        """The most common cost of the file's BLF-CRYPT hashes (L{bcryptRounds} if none)."""
        with self._lock:
            self._load()
            return self._dummyCost

    def dummyKind(self):
        """
        The most common kind of the file's hashes, of every scheme (bcrypt at
        L{bcryptRounds} if none).
        """
        with self._lock:
            self._load()
            return self._dummyKind

    def _current(self):
        """
        The users as of the file now, reloading if its identity or size or
        modification time changed since the last look.
        """
        with self._lock:
            self._load()
            return self._users

    def _load(self):
        """
        Bring C{_users}, C{_allPlaintext}, C{_dummyCost} and C{_dummyKind} up
        to date (call with C{_lock} held).
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._users, self._allPlaintext = None, {}, False
            self._dummyCost = self.bcryptRounds
            self._dummyKind = ("BLF-CRYPT", self.bcryptRounds)
            return
        if _stamp(st) != self._stamp:
            with open(self.path, "rb") as f:
                # The stamp of what is read, even if the file was just replaced.
                stamp = _stamp(os.fstat(f.fileno()))
                text = f.read().decode("utf-8", "surrogateescape")
            self._users = self._parse(text)
            self._allPlaintext = bool(self._users) and all(
                user.scheme == "PLAIN" for user in self._users.values())
            kinds = [costKind(user.scheme, user.secret) for user in self._users.values()]
            fallback = ("BLF-CRYPT", self.bcryptRounds)
            self._dummyCost = mostCommonKind(
                (kind for kind in kinds if kind and kind[0] == "BLF-CRYPT"), fallback)[1]
            self._dummyKind = mostCommonKind(kinds, fallback)
            self._stamp = stamp

    def _parse(self, text):
        """
        File text -> C{{address: User}}; bad lines are logged and skipped.
        """
        users = {}
        for number, line in enumerate(_splitLines(text), 1):
            parsed = self._parseLine(line)
            if parsed is None:
                continue
            address, fields = parsed
            where = "%s:%d" % (self.path, number)
            if not isValidAddress(address):
                log.warn("{where}: ignoring line: not a valid address", where=where)
                continue
            if address in users:
                log.warn("{where}: ignoring second line for {address}",
                         where=where, address=address)
                continue
            scheme, secret = _parsePasswordField(fields[1] if len(fields) > 1 else "")
            admin = ADMIN_FIELD in _extraFields(fields)
            noLogin = nologin.fromExtraFields(_extraFields(fields))
            if scheme not in SCHEMES:
                log.warn("{where}: {address} cannot log in: password scheme {scheme} "
                         "is not supported (use {schemes})", where=where, address=address,
                         scheme=scheme or "(none)", schemes=schemeList())
            users[address] = User(address, scheme, secret, admin, noLogin)
        return users

    @staticmethod
    def _parseLine(line):
        """
        @return: C{(address, fields)} for a user line, L{None} for blank lines
            and comments.
        """
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            return None
        fields = line.split(":")
        return fields[0].strip().lower(), fields

    # Writing

    def addUser(self, address, password, scheme=DEFAULT_SCHEME):
        """
        Add a user.

        @raise InvalidAddress, InvalidPassword, InvalidScheme, UserExists: and
            nothing is written.
        """
        address = self.checkNewAddress(address)
        scheme = self.checkScheme(scheme)
        self.checkPassword(password, scheme)
        with self._fileLock():
            lines = self._readLines()
            if self._find(lines, address) is not None:
                raise UserExists("user %s already exists" % (address,))
            lines.append(self._formatLine(address, scheme, password))
            self._writeLines(lines)

    def addStoredUser(self, user):
        """
        Add a L{User} with its stored secret as it is (a hash stays the same
        hash), for moving users from another backend.

        @raise InvalidAddress, UserExists:
        """
        address = self.checkNewAddress(user.address)
        with self._fileLock():
            lines = self._readLines()
            if self._find(lines, address) is not None:
                raise UserExists("user %s already exists" % (address,))
            line = "%s:%s::::::%s" % (address, _formatPasswordField(user.scheme, user.secret),
                                      " ".join(nologin.toExtraFields(user.noLogin)))
            lines.append(_withAdmin(line.split(":"), user.admin))
            self._writeLines(lines)

    def setPassword(self, address, password, scheme=None):
        """
        Change a user's password, keeping the scheme unless one is given (a
        user whose scheme we do not support gets BLF-CRYPT). Other fields of the
        line are kept.

        @raise NoSuchUser, InvalidPassword, InvalidScheme:
        """
        normalized = self.normalize(address)
        if scheme is not None:
            scheme = self.checkScheme(scheme)
        with self._fileLock():
            lines = self._readLines()
            index = None if normalized is None else self._find(lines, normalized)
            if index is None:
                raise NoSuchUser("no such user: %s" % (normalized or address,))
            fields = lines[index].rstrip("\r").split(":")
            if scheme is None:
                current, _ = _parsePasswordField(fields[1] if len(fields) > 1 else "")
                scheme = self.newScheme(None, current)
            self.checkPassword(password, scheme)
            lines[index] = self._withPassword(fields, scheme, password)
            self._writeLines(lines)
        return scheme

    def removeUser(self, address):
        """
        Remove a user's line (every line for that address, should the file
        hold more than one: after a removal the user must be gone).

        @raise NoSuchUser:
        """
        normalized = self.normalize(address)
        with self._fileLock():
            lines = self._readLines()
            kept = [line for line in lines
                    if (self._parseLine(line) or (None,))[0] != normalized]
            if normalized is None or len(kept) == len(lines):
                raise NoSuchUser("no such user: %s" % (normalized or address,))
            self._writeLines(kept)

    def setAdmin(self, address, admin):
        """
        Set or clear the user's admin flag (the extra field L{ADMIN_FIELD});
        the line's other fields are kept.

        @raise NoSuchUser:
        """
        normalized = self.normalize(address)
        with self._fileLock():
            lines = self._readLines()
            index = None if normalized is None else self._find(lines, normalized)
            if index is None:
                raise NoSuchUser("no such user: %s" % (normalized or address,))
            lines[index] = _withAdmin(lines[index].rstrip("\r").split(":"), admin)
            self._writeLines(lines)

    def importCSV(self, source, update=False):
        """
        Add a class of users at once from CSV rows C{address,password[,scheme]},
        with an optional header row C{address,password[,scheme]}. A row without
        a scheme means BLF-CRYPT for a new user and the current scheme for an
        existing one.

        All or nothing: every row is checked first (address, password, scheme,
        column count, duplicates within the file) and if any is bad,
        L{mailstack.auth.passwords.CSVImportError} names every bad line and
        nothing is changed. Then new users are added; existing users are left
        alone (C{skipped}), unless C{update} is set and the file gives them
        another password (or another scheme explicitly): then they get the
        file's. Re-running the same file therefore changes nothing.

        @param source: a path, or a text file object.
        @param update: reset existing users' passwords to the file's.
        @return: an L{mailstack.auth.passwords.ImportResult}.
        """
        filename, text = self.readCSV(source)
        rows, problems = self.csvRows(filename, text)
        with self._fileLock():
            lines = self._readLines()
            existing = {}
            for index, line in enumerate(lines):
                parsed = self._parseLine(line)
                if parsed is not None and parsed[0] not in existing:
                    existing[parsed[0]] = index

            def stored(address):
                index = existing.get(address)
                if index is None:
                    return None, None, None
                return (index,) + _parsePasswordField(
                    (lines[index].rstrip("\r").split(":") + [""])[1])
            result, writes = self.planImport(filename, rows, problems, stored, update)
            for address, password, target, index in writes:
                if index is None:
                    lines.append(self._formatLine(address, target, password))
                else:
                    lines[index] = self._withPassword(
                        lines[index].rstrip("\r").split(":"), target, password)
            if writes:
                self._writeLines(lines)
        return result

    def _passwordField(self, scheme, password):
        return _formatPasswordField(scheme, self.hashSecret(scheme, password))

    def _withPassword(self, fields, scheme, password):
        """The line of C{fields} with C{password} in C{scheme}; other fields kept."""
        return ":".join([fields[0], self._passwordField(scheme, password)] + (
            fields[2:] if len(fields) > 1 else ["", "", "", "", ""]))

    def _formatLine(self, address, scheme, password):
        return "%s:%s:::::" % (address, self._passwordField(scheme, password))

    def _find(self, lines, address):
        for index, line in enumerate(lines):
            parsed = self._parseLine(line)
            if parsed is not None and parsed[0] == address:
                return index
        return None

    def _readLines(self):
        """
        The file's lines as they are on disk now (call with the file lock held).
        """
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        return _splitLines(data.decode("utf-8", "surrogateescape"))

    def _writeLines(self, lines):
        """
        Replace the file atomically: temporary file, fsync, rename, fsync the
        directory. Mode 0600: the file holds secrets.
        """
        data = "".join(line + "\n" for line in lines)
        atomicWrite(self.path, encodeText(data), 0o600)
        with self._lock:
            self._stamp = None

    def _fileLock(self):
        return _FileLock(self.lockPath)


@provider(IUserBackendPlugin)
class PasswdFileBackend:
    """The C{passwd-file} backend (the default): L{PasswdFile} at C{[users] path}."""

    name = "passwd-file"
    defaultPath = "users"

    @staticmethod
    def open(path, defaultDomain=None, bcryptRounds=10, domains=None):
        """
        @raise UserDirectoryUnavailable: if the file exists but cannot be read.
        """
        users = PasswdFile(path, defaultDomain, bcryptRounds, domains)
        try:
            users.listUsers()
        except OSError as e:
            raise UserDirectoryUnavailable("cannot access %s: %s" % (users.path, e.strerror or e))
        return users


class _FileLock:
    """
    An exclusive C{flock} on a lock file beside the users file, held for one
    read-modify-write; creates the directory (0700) on first use.
    """

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        makeDirectories(os.path.dirname(os.path.abspath(self.path)))
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
        return False
