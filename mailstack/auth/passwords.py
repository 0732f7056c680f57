"""
What every user backend shares (the passwd-file in L{mailstack.auth.userdb},
SQLite in L{mailstack.auth.sqlitedb}): the schemes, the login-name rule, the
rules for new users, hashing and verifying passwords (bcrypt; a failure always
costs one bcrypt, a {PLAIN} success none), CSV import, and the errors.
"""

import csv
import dataclasses
import hmac
import io
import os
import re

import bcrypt
from twisted.logger import Logger

log = Logger()


SCHEMES = ("BLF-CRYPT", "PLAIN")
DEFAULT_SCHEME = "BLF-CRYPT"

# bcrypt looks at no more than 72 bytes; the library refuses longer input.
BCRYPT_MAX_PASSWORD = 72

# Used with fullmatch: "$" would also match before a trailing newline.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class UserError(Exception):
    """
    A refused user-database change; C{str()} is one line fit to show an admin.
    """


class InvalidAddress(UserError):
    """The address is not C{local@domain} in the accepted syntax (or not local)."""


class InvalidPassword(UserError):
    """The password cannot be stored (empty, or too long for bcrypt)."""


class InvalidScheme(UserError):
    """The password scheme is not one of L{SCHEMES}."""


class UserExists(UserError):
    """A user with that address is already in the file."""


class NoSuchUser(UserError):
    """No user with that address is in the file."""


class CSVImportError(UserError):
    """
    A CSV import was refused and nothing was changed; C{str()} is one
    C{FILE:LINE: reason} line per bad line (or C{FILE: reason} when the file as
    a whole is unusable). C{line} and C{reason} are the first problem's,
    C{problems} is every C{(line, reason)}.
    """

    def __init__(self, filename, line, reason, more=()):
        self.filename = filename
        self.line = line
        self.reason = reason
        self.problems = [(line, reason)] + list(more)
        UserError.__init__(self, "\n".join(
            "%s: %s" % (filename, why) if number is None else
            "%s:%d: %s" % (filename, number, why) for number, why in self.problems))


@dataclasses.dataclass
class ImportResult:
    """
    What L{PasswdFile.importCSV} did, as lists of addresses: C{added} (new
    users), C{updated} (existing users given the file's password), C{unchanged}
    (existing users whose password already was the file's) and C{differing}
    (existing users whose password differs, left alone without C{update}).
    """

    added: list = dataclasses.field(default_factory=list)
    updated: list = dataclasses.field(default_factory=list)
    unchanged: list = dataclasses.field(default_factory=list)
    differing: list = dataclasses.field(default_factory=list)

    @property
    def skipped(self):
        """The existing users left as they were."""
        return self.unchanged + self.differing


@dataclasses.dataclass(frozen=True)
class User:
    """
    One user of the file. C{secret} is the bcrypt hash for BLF-CRYPT, the
    password itself for PLAIN, the raw field for any other scheme.
    """

    address: str
    scheme: str
    secret: str = dataclasses.field(repr=False)


def isValidAddress(address):
    """
    C{True} if C{address} (str) is C{local@domain}: a dot-atom local part and a
    host name. Never true for anything holding C{:} or a line break.
    """
    local, sep, domain = address.rpartition("@")
    if not sep or len(local) > 64 or len(address) > 254:
        return False
    if not _LOCAL.fullmatch(local):
        return False
    if not domain or len(domain) > 253:
        return False
    return all(_LABEL.fullmatch(label) for label in domain.split("."))


def encodeText(text):
    """str from the file (or a password) -> the exact bytes it came from."""
    return text.encode("utf-8", "surrogateescape")


def _passwordBytes(password):
    if isinstance(password, str):
        return encodeText(password)
    return bytes(password)


def _passwordText(password):
    if isinstance(password, bytes):
        return password.decode("utf-8", "surrogateescape")
    return password


def _bcryptHash(hashed):
    """
    The bytes the bcrypt library accepts: Dovecot writes C{$2y$}, which is the
    same algorithm as C{$2b$} but unknown to older versions of the library.
    """
    hashed = hashed.encode("ascii", "replace")
    if hashed.startswith(b"$2y$"):
        hashed = b"$2b$" + hashed[4:]
    return hashed


def normalizeLoginName(name, defaultDomain):
    """
    The canonical address for a login name (or a SASL authzid), or L{None} if
    it cannot be one: case is ignored and a bare local part gets
    C{defaultDomain} (lower-case; L{None}: a bare name is no address).

    @param name: str or bytes.
    """
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            return None
    # Non-ASCII first: str.lower() maps some of it to ASCII (KELVIN SIGN -> k).
    if not isinstance(name, str) or not name.isascii():
        return None
    name = name.lower()
    if "@" not in name:
        if not defaultDomain:
            return None
        name = "%s@%s" % (name, defaultDomain.lower())
    if not isValidAddress(name):
        return None
    return name


class PasswordBackend:
    """
    What every user backend shares: login-name normalisation, the rules for
    new users (address, domain, scheme, password), hashing and verifying in
    the schemes L{SCHEMES}, and reading a class's CSV file. A subclass stores
    the users (L{lookup}, L{dummyCost}, the changes).

    @param defaultDomain: domain given to a bare local part at login, or L{None}.
    @param bcryptRounds: bcrypt cost for new BLF-CRYPT hashes.
    @param domains: if given, the only domains new users may have (the server's
        local domains); L{None} accepts any domain.
    """

    path = ""

    def __init__(self, defaultDomain=None, bcryptRounds=10, domains=None):
        self.defaultDomain = defaultDomain.lower() if defaultDomain else None
        self.bcryptRounds = bcryptRounds
        self.domains = None if domains is None else tuple(d.lower() for d in domains)
        self._dummyHashes = {}

    def dummyCost(self):
        """
        The bcrypt cost a failed check spends: L{bcryptRounds} here; a
        subclass gives its stored hashes' most common cost.
        """
        return self.bcryptRounds

    def hashSecret(self, scheme, password):
        """
        The stored form of C{password} in C{scheme}: a bcrypt hash in
        Dovecot's C{$2y$} form for BLF-CRYPT, the password (str) for PLAIN.
        """
        if scheme == "PLAIN":
            return _passwordText(password)
        hashed = bcrypt.hashpw(_passwordBytes(password), bcrypt.gensalt(self.bcryptRounds))
        # $2y$ is what doveadm writes and what every Dovecot build understands.
        return "$2y$" + hashed.decode("ascii")[4:]


    def normalize(self, name):
        """
        The canonical address for a login name, or L{None} if it cannot be one.

        @param name: str or bytes; case is ignored; a bare local part gets the
            default domain.
        """
        return normalizeLoginName(name, self.defaultDomain)

    def plaintextSecret(self, name):
        """
        @return: the password of a PLAIN user (str), else L{None}; for mechanisms
            that need the secret itself (APOP, CRAM-MD5).
        """
        user = self.lookup(name)
        if user is None or user.scheme != "PLAIN":
            return None
        return user.secret

    def verifyPassword(self, name, password):
        """
        Check a password (str or bytes). A success costs what its scheme
        costs: one bcrypt for BLF-CRYPT, a constant-time comparison for PLAIN.
        Every failure (wrong password of any scheme, unknown user, unusable
        scheme) costs exactly one bcrypt at the cost factor of the file's
        BLF-CRYPT hashes, so timing does not tell which users exist or how
        they are stored. Safe to call from a thread (and meant to be).

        @return: C{True} if C{name} is a user whose password this is.
        """
        password = _passwordBytes(password)
        user = self.lookup(name)
        if user is not None and user.scheme == "BLF-CRYPT":
            return self.checkBcrypt(password, _bcryptHash(user.secret))
        if user is not None and user.scheme == "PLAIN":
            if hmac.compare_digest(encodeText(user.secret), password):
                return True
        self.checkBcrypt(password, self._dummy())
        return False

    def checkBcrypt(self, password, hashed):
        # Other bcrypt implementations (Dovecot's among them) silently use the
        # first 72 bytes; do the same so their hashes keep working.
        try:
            return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
        except ValueError:
            log.warn("unusable bcrypt hash in {path}", path=self.path)
            return False

    def _dummy(self):
        """
        A bcrypt hash of a random password at L{dummyCost} (the cost of most
        stored BLF-CRYPT hashes), for failures to spend the time a wrong
        BLF-CRYPT password does.
        """
        cost = self.dummyCost()
        hashed = self._dummyHashes.get(cost)
        if hashed is None:
            hashed = bcrypt.hashpw(os.urandom(16).hex().encode("ascii"), bcrypt.gensalt(cost))
            self._dummyHashes[cost] = hashed
        return hashed

    def matchesSecret(self, scheme, secret, password):
        """C{True} if C{password} is what a stored C{{scheme}secret} holds."""
        password = _passwordBytes(password)
        if scheme == "PLAIN":
            return hmac.compare_digest(encodeText(secret), password)
        if scheme == "BLF-CRYPT":
            return self.checkBcrypt(password, _bcryptHash(secret))
        return False

    @staticmethod
    def newScheme(scheme, current):
        """
        The scheme a changed password is stored in: C{scheme} if given, else
        the user's C{current} one if supported, else L{DEFAULT_SCHEME}.
        """
        return scheme or (current if current in SCHEMES else DEFAULT_SCHEME)

    def planImport(self, filename, rows, problems, stored, update):
        """
        What every backend's C{importCSV} decides, with its write lock held:
        check each row's password against the scheme it will get (L{CSVImportError}
        naming every bad line, nothing to write, if any is bad), then sort the
        rows into an L{ImportResult}.

        @param rows: C{rows} and C{problems} of L{csvRows}.
        @param stored: C{stored(address)} -> C{(where, scheme, secret)} of the
            existing user (C{where}: what the backend needs to change it), or
            C{(None, None, None)}.
        @return: C{(result, writes)}: C{writes} is the
            C{(address, password, scheme, where)} to store, in row order
            (C{where} L{None}: a new user).
        """
        plan = []
        for number, address, password, scheme in rows:
            where, current, secret = stored(address)
            target = self.newScheme(scheme, current)
            try:
                self.checkPassword(password, target)
            except UserError as e:
                problems.append((number, str(e)))
                continue
            plan.append((address, password, target, where, current, secret))
        if problems:
            problems.sort(key=lambda problem: problem[0] or 0)
            raise CSVImportError(filename, problems[0][0], problems[0][1], problems[1:])
        result, writes = ImportResult(), []
        for address, password, target, where, current, secret in plan:
            if where is None:
                result.added.append(address)
            elif current == target and self.matchesSecret(current, secret, password):
                result.unchanged.append(address)
                continue
            elif not update:
                result.differing.append(address)
                continue
            else:
                result.updated.append(address)
            writes.append((address, password, target, where))
        return result, writes

    @staticmethod
    def readCSV(source):
        """@return: C{(filename, text)} of a CSV path or file object."""
        if isinstance(source, (str, bytes, os.PathLike)):
            filename = os.fsdecode(source)
            try:
                with open(source, encoding="utf-8-sig", newline="") as f:
                    return filename, f.read()
            except UnicodeDecodeError:
                raise CSVImportError(filename, None, "not UTF-8 text")
            except OSError as e:
                raise CSVImportError(filename, None, "cannot read file: %s" % (
                    e.strerror or e,))
        filename = getattr(source, "name", None) or "<csv>"
        text = source.read()
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise CSVImportError(filename, None, "not UTF-8 text")
        return filename, text

    def csvRows(self, filename, text):
        """
        Check every row of a CSV text on its own (the password against the
        users file comes later, when the scheme is known).

        @return: C{([(line, address, password, scheme or None)], [(line, reason)])}.
        """
        rows, problems, seen = [], [], {}
        reader = csv.reader(io.StringIO(text, newline=""))
        first = True
        end = 0
        while True:
            start = end + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                # The rest of the file cannot be split into rows reliably.
                problems.append((reader.line_num, "not valid CSV: %s" % (e,)))
                break
            end = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if first:
                first = False
                header = [cell.strip().lower() for cell in row]
                if header in (["address", "password"], ["address", "password", "scheme"]):
                    continue
            if len(row) not in (2, 3):
                problems.append((start, "expected 2 or 3 columns (address,password[,scheme]), "
                                        "found %d" % (len(row),)))
                continue
            try:
                address = self.checkNewAddress(row[0].strip())
                scheme = (self.checkScheme(row[2].strip())
                          if len(row) == 3 and row[2].strip() else None)
                if not row[1]:
                    raise InvalidPassword("empty password")
            except UserError as e:
                problems.append((start, str(e)))
                continue
            if address in seen:
                problems.append((start, "%s is already on line %d" % (
                    address, seen[address])))
                continue
            seen[address] = start
            rows.append((start, address, row[1], scheme))
        return rows, problems

    def checkNewAddress(self, address):
        """
        Normalise the address of a would-be new user, checking syntax and domain
        (so a caller can refuse it before asking for a password).

        @return: the normalised address.
        @raise InvalidAddress:
        """
        normalized = self.normalize(address)
        if normalized is None:
            if isinstance(address, bytes):
                address = address.decode("ascii", "replace")
            if "@" not in address and self.defaultDomain is None:
                raise InvalidAddress("%r is not an address (local@domain) and no "
                                     "default domain is set" % (address,))
            raise InvalidAddress("%r is not a valid address" % (address,))
        domain = normalized.rpartition("@")[2]
        if self.domains is not None and domain not in self.domains:
            raise InvalidAddress("domain %s is not a local domain (server.domains)" % (
                domain,))
        return normalized

    @staticmethod
    def checkScheme(scheme):
        upper = (scheme or "").upper()
        if upper not in SCHEMES:
            raise InvalidScheme("unknown password scheme %r (use %s)" % (
                scheme, " or ".join(SCHEMES)))
        return upper

    @staticmethod
    def checkPassword(password, scheme):
        if not password:
            raise InvalidPassword("empty password")
        if scheme == "BLF-CRYPT" and len(_passwordBytes(password)) > BCRYPT_MAX_PASSWORD:
            raise InvalidPassword("password longer than %d bytes cannot be stored with "
                                  "BLF-CRYPT (use a shorter one)" % (BCRYPT_MAX_PASSWORD,))
