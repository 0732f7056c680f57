"""
API tokens: what a grading script sends instead of a password
(C{Authorization: Bearer mst_...}). A token acts as its user, an admin's
with admin rights.

A token is C{mst_<id>_<secret>}: the id (16 hex digits) names it in lists
and when revoking; the secret (43 URL-safe characters, 256 random bits) is
shown once, when it is made, and only its SHA-256 is kept (a token is as
random as a key, so a fast hash is enough: there is no password to guess).
A presented token is found by its id and its secret's hash compared in
constant time.

Tokens live in one JSON file in the data directory (C{api-tokens.json},
C{0600}), shared by the server and the C{mailstack token} command: every
change is a read-modify-write under an C{flock} on C{<file>.lock}, written
atomically (L{mailstack.storage.files.atomicWrite}); readers reload the file
when it changed (one C{os.stat}), so a token made or revoked by the command
works or stops working at once in the running server.

L{TokenStore} is synchronous and thread-safe, like a user backend: the
command calls it directly, the console in a thread
(L{mailstack.web.context.WebContext.runInThread}).
"""

import dataclasses
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time

from mailstack.storage.files import atomicWrite, makeDirectories

PREFIX = "mst_"
FILENAME = "api-tokens.json"

_TOKEN = re.compile(r"mst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")

# A token's name: what its owner calls it ("grader", "ci"), shown in lists.
MAX_NAME = 64
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,%d}" % (MAX_NAME,))


class TokenError(Exception):
    """A refused token change; C{str()} is one line fit to show."""


class NoSuchToken(TokenError):
    """No token has this id (or not one of this user's)."""


@dataclasses.dataclass(frozen=True)
class Token:
    """
    One token as kept: never the token itself.

    @ivar id: its public id.
    @ivar address: the user it acts as.
    @ivar name: what its owner called it.
    @ivar created: when it was made (seconds since the epoch).
    @ivar digest: the SHA-256 of its secret, hex (never shown).
    """

    id: str
    address: str
    name: str
    created: float
    digest: str = dataclasses.field(repr=False)

    def public(self):
        """What may be shown of it: id, address, name, creation time."""
        return {"id": self.id, "address": self.address, "name": self.name,
                "created": self.created}


def _digest(secret):
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parseToken(text):
    """C{(id, secret)} of a well-formed token (str), else L{None}."""
    match = _TOKEN.fullmatch(text)
    return (match.group(1), match.group(2)) if match else None


def checkName(name):
    """The name, stripped; raises L{TokenError} if empty, too long or holding control characters."""
    name = (name or "").strip()
    if not _NAME.fullmatch(name):
        raise TokenError("a token name is 1 to %d characters, no control characters" % (
            MAX_NAME,))
    return name


class TokenStore:
    """
    The tokens of one data directory.

    @param path: the JSON file (missing: no tokens yet).
    @param clock: a callable giving the time (C{time.time}).
    """

    def __init__(self, path, clock=time.time):
        self.path = os.fspath(path)
        self.lockPath = self.path + ".lock"
        self.clock = clock
        self._lock = threading.Lock()
        self._stamp = None
        self._tokens = {}

    @classmethod
    def inDataDirectory(cls, dataDir, clock=time.time):
        """The store of the server whose C{data_dir} is C{dataDir}."""
        return cls(os.path.join(os.fspath(dataDir), FILENAME), clock)

    # Reading

    def verify(self, presented):
        """
        The L{Token} that C{presented} (the text after C{Bearer }) is, or
        L{None}: malformed, unknown or revoked. The secret's hash is compared
        in constant time.
        """
        parsed = parseToken(presented) if isinstance(presented, str) else None
        token = self._current().get(parsed[0]) if parsed else None
        candidate = _digest(parsed[1]) if parsed else _digest("")
        expected = token.digest if token is not None else _digest("-")
        if hmac.compare_digest(candidate, expected) and token is not None:
            return token
        return None

    def list(self, address=None):
        """The L{Token}s (of C{address} only, if given), oldest first."""
        tokens = sorted(self._current().values(), key=lambda t: (t.created, t.id))
        if address is not None:
            tokens = [t for t in tokens if t.address == address]
        return tokens

    # Changing

    def create(self, address, name="api"):
        """
        Make a token for C{address} (the caller checked it is a user).

        @return: C{(Token, text)}: the record and the token itself, the only
            time it is available.
        """
        name = checkName(name)
        secret = secrets.token_urlsafe(32)
        with self._change() as tokens:
            tokenID = secrets.token_hex(8)
            while tokenID in tokens:
                tokenID = secrets.token_hex(8)
            token = Token(id=tokenID, address=address, name=name,
                          created=round(self.clock(), 3), digest=_digest(secret))
            tokens[tokenID] = token
        return token, "%s%s_%s" % (PREFIX, tokenID, secret)

    def revoke(self, tokenID, address=None):
        """
        Forget token C{tokenID} (only if it is C{address}'s, when given).

        @return: the revoked L{Token}.
        @raise NoSuchToken: if there is none such.
        """
        with self._change() as tokens:
            token = tokens.get(tokenID)
            if token is None or (address is not None and token.address != address):
                raise NoSuchToken("no token %s" % (tokenID,))
            del tokens[tokenID]
        return token

    def revokeAll(self, address):
        """Forget every token of C{address} (a removed user). @return: how many."""
        with self._change() as tokens:
            gone = [t for t in tokens.values() if t.address == address]
            for token in gone:
                del tokens[token.id]
        return len(gone)

    # The file

    def _current(self):
        with self._lock:
            self._load()
            return dict(self._tokens)

    def _load(self):
        """Reload the file if it changed (call with C{_lock} held)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._tokens = None, {}
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
        self._tokens = _parse(data, self.path)
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)

    def _change(self):
        return _Change(self)


class _Change:
    """One read-modify-write of the file: the tokens as a dict, written back if no exception."""

    def __init__(self, store):
        self.store = store
        self.fd = None

    def __enter__(self):
        store = self.store
        makeDirectories(os.path.dirname(os.path.abspath(store.path)))
        store._lock.acquire()
        try:
            self.fd = os.open(store.lockPath, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            store._stamp = None  # read it under the lock, whatever was cached
            store._load()
            self.tokens = dict(store._tokens)
        except BaseException:
            self._release()
            raise
        return self.tokens

    def __exit__(self, excType, exc, tb):
        try:
            if excType is None:
                data = json.dumps(
                    {"tokens": [dataclasses.asdict(t) for t in
                                sorted(self.tokens.values(), key=lambda t: (t.created, t.id))]},
                    indent=1, sort_keys=True).encode("utf-8") + b"\n"
                atomicWrite(self.store.path, data)
                self.store._tokens = self.tokens
                self.store._stamp = None
        finally:
            self._release()
        return False

    def _release(self):
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None
        self.store._lock.release()


def _parse(data, path):
    """The tokens of the file's bytes; raises L{TokenError} naming the file if it is not a token file."""
    try:
        raw = json.loads(data.decode("utf-8"))
        tokens = {}
        for entry in raw["tokens"]:
            token = Token(id=str(entry["id"]), address=str(entry["address"]),
                          name=str(entry["name"]), created=float(entry["created"]),
                          digest=str(entry["digest"]))
            tokens[token.id] = token
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise TokenError("%s: not a token file: %s" % (path, e))
    return tokens


def tokensFor(context):
    """
    The L{TokenStore} of a L{mailstack.web.context.WebContext}: its data
    directory's, made once and kept as the context's C{tokens} (which a test
    may set first), so the API and the console's page share one.
    """
    tokens = getattr(context, "tokens", None)
    if tokens is None:
        tokens = context.tokens = TokenStore.inDataDirectory(context.config.server.data_dir)
    return tokens
