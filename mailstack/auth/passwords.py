"""
What every user backend shares (the passwd-file in L{mailstack.auth.userdb},
SQLite in L{mailstack.auth.sqlitedb}): the schemes, the login-name rule, the
rules for new users, hashing and verifying passwords, CSV import, and the
errors.

The schemes are Dovecot's, stored as Dovecot stores them, so users move
between Dovecot and mailstack unchanged: C{BLF-CRYPT} (bcrypt, C{$2y$}, the
default), C{SHA512-CRYPT} and C{SHA256-CRYPT} (SHA-crypt, C{$6$} and C{$5$}:
L{mailstack.auth.shacrypt}), C{ARGON2ID} (C{$argon2id$v=19$m=,t=,p=$salt$hash},
through argon2-cffi) and C{PLAIN}. A failure costs what checking the most
common kind of stored hash costs, a {PLAIN} success nothing
(L{PasswordBackend.verifyPassword}).
"""

import collections
import csv
import dataclasses
import hmac
import io
import os
import re

import argon2.low_level
import bcrypt
from argon2.exceptions import (
    HashingError, InvalidHashError, VerificationError, VerifyMismatchError)
from twisted.logger import Logger

from mailstack.auth import shacrypt

log = Logger()


SCHEMES = ("BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "ARGON2ID", "PLAIN")
DEFAULT_SCHEME = "BLF-CRYPT"

# The SHA-crypt schemes and their crypt(3) variant ($6$, $5$).
SHA_CRYPT_VARIANTS = {"SHA512-CRYPT": "6", "SHA256-CRYPT": "5"}

# bcrypt looks at no more than 72 bytes; the library refuses longer input.
BCRYPT_MAX_PASSWORD = 72

# The cost factor of a bcrypt hash ($2a$, $2b$, $2y$; bcrypt allows 4 to 31).
_BCRYPT_COST = re.compile(r"\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$")

# What `doveadm pw -s ARGON2ID` writes (libsodium's interactive limits):
# 3 passes over 64 MiB, one lane (libsodium makes no other), 16-byte salt,
# 32-byte hash.
ARGON2_TIME_COST = 3
ARGON2_MEMORY_COST = 65536
ARGON2_PARALLELISM = 1
ARGON2_SALT_LENGTH = 16
ARGON2_HASH_LENGTH = 32

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
    """The password cannot be stored (empty, or too long for its scheme)."""


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
    One user of the file. C{secret} is the hash for BLF-CRYPT, SHA512-CRYPT,
    SHA256-CRYPT and ARGON2ID (as Dovecot writes it, without the C{{SCHEME}}),
    the password itself for PLAIN, the raw field for any other scheme.
    C{admin}: the web console shows this user every account (and lets them
    change them), not only their own. C{noLogin}: a
    L{mailstack.auth.nologin.NoLogin} when the user may not log in here
    (Dovecot's C{nologin} extra field), else L{None}.
    """

    address: str
    scheme: str
    secret: str = dataclasses.field(repr=False)
    admin: bool = False
    noLogin: object = None


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


def schemeList():
    """The schemes for a message: C{"BLF-CRYPT, ..., ARGON2ID or PLAIN"}."""
    return "%s or %s" % (", ".join(SCHEMES[:-1]), SCHEMES[-1])


def costKind(scheme, secret):
    """
    What checking a password against a stored C{{scheme}secret} costs, as a
    key that is equal for hashes that cost the same: C{("BLF-CRYPT", cost)},
    C{("SHA512-CRYPT", rounds)}, C{("SHA256-CRYPT", rounds)},
    C{("ARGON2ID", time, memory, lanes)}; L{None} for PLAIN and for a secret
    that is not a usable hash of its scheme.
    """
    if scheme == "BLF-CRYPT":
        match = _BCRYPT_COST.match(secret)
        return None if match is None else (scheme, int(match.group(1)))
    if scheme in SHA_CRYPT_VARIANTS:
        parsed = shacrypt.parseHash(secret)
        if parsed is None or parsed[0] != SHA_CRYPT_VARIANTS[scheme]:
            return None
        return scheme, parsed[1]
    if scheme == "ARGON2ID":
        if not secret.isascii():
            return None
        try:
            parameters = argon2.extract_parameters(secret)
        except InvalidHashError:
            return None
        if parameters.type != argon2.Type.ID:
            return None
        return scheme, parameters.time_cost, parameters.memory_cost, parameters.parallelism
    return None


def mostCommonKind(kinds, fallback):
    """
    The most common L{costKind} among C{kinds} (L{None}s ignored; of equally
    common ones, the first seen), or C{fallback} if there is none.
    """
    counts = collections.Counter(kind for kind in kinds if kind is not None)
    return counts.most_common(1)[0][0] if counts else fallback


def _dummySecret(kind):
    """A stored hash of a random password that costs C{kind} to check."""
    password = os.urandom(16).hex().encode("ascii")
    scheme = kind[0]
    if scheme in SHA_CRYPT_VARIANTS:
        return shacrypt.newHash(password, SHA_CRYPT_VARIANTS[scheme], kind[1])
    if scheme == "ARGON2ID":
        return _argon2idHash(password, *kind[1:])
    return bcrypt.hashpw(password, bcrypt.gensalt(kind[1])).decode("ascii")


def _argon2idHash(password, time, memory, lanes):
    """An Argon2id hash in the PHC string form Dovecot (libsodium) writes and reads."""
    return argon2.low_level.hash_secret(
        password, os.urandom(ARGON2_SALT_LENGTH), time_cost=time, memory_cost=memory,
        parallelism=lanes, hash_len=ARGON2_HASH_LENGTH, type=argon2.Type.ID).decode("ascii")


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
    the users (L{lookup}, L{dummyCost}, L{dummyKind}, the changes).

    New SHA-crypt and Argon2id hashes are made as doveadm makes them
    (L{shaCryptRounds}, L{argon2TimeCost}, L{argon2MemoryCost}: class
    attributes, which tests lower).

    @param defaultDomain: domain given to a bare local part at login, or L{None}.
    @param bcryptRounds: bcrypt cost for new BLF-CRYPT hashes.
    @param domains: if given, the only domains new users may have (the server's
        local domains); L{None} accepts any domain.
    """

    path = ""
    keepsNoLogin = False
    shaCryptRounds = shacrypt.ROUNDS_DEFAULT
    argon2TimeCost = ARGON2_TIME_COST
    argon2MemoryCost = ARGON2_MEMORY_COST

    def __init__(self, defaultDomain=None, bcryptRounds=10, domains=None):
        self.defaultDomain = defaultDomain.lower() if defaultDomain else None
        self.bcryptRounds = bcryptRounds
        self.domains = None if domains is None else tuple(d.lower() for d in domains)
        self._dummyHashes = {}

    def dummyCost(self):
        """
        The most common cost of the stored bcrypt hashes: L{bcryptRounds}
        here; a subclass gives its stored hashes' most common cost.
        """
        return self.bcryptRounds

    def dummyKind(self):
        """
        The L{costKind} a failed check spends: the most common kind of stored
        hash, so a failure costs what a wrong password of most users costs.
        Here bcrypt at L{dummyCost}; a subclass that can tell counts every
        scheme's hashes.
        """
        return ("BLF-CRYPT", self.dummyCost())

    def hashSecret(self, scheme, password):
        """
        The stored form of C{password} in C{scheme}, as doveadm writes it: a
        bcrypt hash in Dovecot's C{$2y$} form for BLF-CRYPT, C{$6$salt$hash}
        and C{$5$salt$hash} for SHA512-CRYPT and SHA256-CRYPT (C{rounds=} only
        if L{shaCryptRounds} is not 5000),
        C{$argon2id$v=19$m=65536,t=3,p=1$salt$hash} for ARGON2ID, the
        password (str) for PLAIN.

        @raise InvalidScheme: for any other scheme.
        """
        if scheme == "PLAIN":
            return _passwordText(password)
        password = _passwordBytes(password)
        if scheme in SHA_CRYPT_VARIANTS:
            rounds = self.shaCryptRounds
            return shacrypt.newHash(password, SHA_CRYPT_VARIANTS[scheme],
                                    None if rounds == shacrypt.ROUNDS_DEFAULT else rounds)
        if scheme == "ARGON2ID":
            return _argon2idHash(password, self.argon2TimeCost, self.argon2MemoryCost,
                                 ARGON2_PARALLELISM)
        if scheme != "BLF-CRYPT":
            raise InvalidScheme("cannot make a %s hash (use %s)" % (scheme, schemeList()))
        hashed = bcrypt.hashpw(password, bcrypt.gensalt(self.bcryptRounds))
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
        costs: its hash for BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT and
        ARGON2ID, a constant-time comparison for PLAIN. A wrong password of a
        hashed user costs that user's hash; every other failure (a wrong PLAIN
        password, an unknown user, an unusable scheme or malformed hash, a
        password too long to check) costs one check of a hash of the most
        common kind stored (L{dummyKind}), so timing does not tell which users
        exist or how they are stored. Safe to call from a thread (and meant
        to be).

        @return: C{True} if C{name} is a user whose password this is.
        """
        password = _passwordBytes(password)
        user = self.lookup(name)
        if user is not None:
            if user.scheme == "PLAIN":
                if hmac.compare_digest(encodeText(user.secret), password):
                    return True
            else:
                verdict = self.checkHash(user.scheme, user.secret, password)
                if verdict is not None:
                    return verdict
        self.checkHash(*self._dummy(), password)
        return False

    def checkHash(self, scheme, secret, password):
        """
        Check C{password} (bytes) against a stored hash of C{scheme}.

        @return: C{True} or C{False}; L{None} if it cannot be checked: the
            scheme is not a hashing scheme we know, the hash is malformed
            (logged), or the password is too long for SHA-crypt (libxcrypt,
            hence Dovecot, refuses 512 bytes or more; it would also be work
            for nothing).
        """
        if scheme == "BLF-CRYPT":
            return self.checkBcrypt(password, _bcryptHash(secret))
        if scheme in SHA_CRYPT_VARIANTS:
            if costKind(scheme, secret) is None:
                log.warn("unusable {scheme} hash in {path}", scheme=scheme, path=self.path)
                return None
            if len(password) >= shacrypt.MAX_PASSWORD:
                return None
            return shacrypt.verify(password, secret)
        if scheme == "ARGON2ID":
            try:
                return argon2.low_level.verify_secret(
                    secret.encode("ascii"), password, argon2.Type.ID)
            except VerifyMismatchError:
                return False
            except (VerificationError, InvalidHashError, UnicodeEncodeError):
                log.warn("unusable {scheme} hash in {path}", scheme=scheme, path=self.path)
                return None
        return None

    def checkBcrypt(self, password, hashed):
        """
        @return: C{True} or C{False}, L{None} for a malformed hash (logged).
        """
        # Other bcrypt implementations (Dovecot's among them) silently use the
        # first 72 bytes; do the same so their hashes keep working.
        try:
            return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
        except ValueError:
            log.warn("unusable bcrypt hash in {path}", path=self.path)
            return None

    def _dummy(self):
        """
        C{(scheme, secret)}: a hash of a random password of L{dummyKind} (the
        kind most stored hashes are), for failures to spend the time a wrong
        password of most users does. Made once per kind.
        """
        kind = self.dummyKind()
        dummy = self._dummyHashes.get(kind)
        if dummy is None:
            try:
                dummy = (kind[0], _dummySecret(kind))
            except HashingError:
                # Parameters Argon2 can read but not use (less memory than
                # lanes need): such hashes cannot verify; spend a bcrypt.
                fallback = ("BLF-CRYPT", self.bcryptRounds)
                dummy = (fallback[0], _dummySecret(fallback))
            self._dummyHashes[kind] = dummy
        return dummy

    def matchesSecret(self, scheme, secret, password):
        """C{True} if C{password} is what a stored C{{scheme}secret} holds."""
        password = _passwordBytes(password)
        if scheme == "PLAIN":
            return hmac.compare_digest(encodeText(secret), password)
        return bool(self.checkHash(scheme, secret, password))

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
                scheme, schemeList()))
        return upper

    @staticmethod
    def checkPassword(password, scheme):
        if not password:
            raise InvalidPassword("empty password")
        if scheme == "BLF-CRYPT" and len(_passwordBytes(password)) > BCRYPT_MAX_PASSWORD:
            raise InvalidPassword("password longer than %d bytes cannot be stored with "
                                  "BLF-CRYPT (use a shorter one)" % (BCRYPT_MAX_PASSWORD,))
        if (scheme in SHA_CRYPT_VARIANTS
                and len(_passwordBytes(password)) >= shacrypt.MAX_PASSWORD):
            raise InvalidPassword("password longer than %d bytes cannot be stored with "
                                  "%s (use a shorter one)" % (shacrypt.MAX_PASSWORD - 1, scheme))
