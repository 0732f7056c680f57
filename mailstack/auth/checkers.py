"""
twisted.cred checkers over the passwd-file, and APOP credentials.

Plain passwords (USER/PASS, LOGIN, AUTH PLAIN) are checked in the reactor's
thread pool so a slow bcrypt never stalls other sessions. A success costs what
its scheme costs (one bcrypt for BLF-CRYPT, a constant-time comparison for
{PLAIN}, so a {PLAIN} login is as fast as Dovecot's); every failure costs
exactly one bcrypt at the cost factor of the file's BLF-CRYPT hashes
(L{PasswdFile.verifyPassword}), so timing does not tell an unknown user from a
wrong password. Mechanisms that prove knowledge of the secret without sending it
(CRAM-MD5, APOP) need the secret itself, so they work only for users stored
{PLAIN}. Every failure, whatever its cause, is the same L{UnauthorizedLogin}: a
client learns nothing about which users exist or how they are stored.
"""

import hashlib
import hmac

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, threads
from zope.interface import implementer

FAILURE_MESSAGE = "Authentication failed"


def _failed():
    return defer.fail(UnauthorizedLogin(FAILURE_MESSAGE))


@implementer(ICredentialsChecker)
class PasswdFileChecker:
    """
    Checks credentials against a L{mailstack.auth.userdb.PasswdFile}; the avatar
    ID is the normalised address as UTF-8 bytes.

    @param passwdFile: the L{PasswdFile}.
    @param reactor: provides C{getThreadPool()}; the global reactor by default.
    """

    credentialInterfaces = (IUsernamePassword, IUsernameHashedPassword)

    def __init__(self, passwdFile, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.passwdFile = passwdFile
        self.reactor = reactor

    def requestAvatarId(self, credentials):
        if IUsernamePassword.providedBy(credentials):
            return self._checkPassword(credentials)
        if IUsernameHashedPassword.providedBy(credentials):
            return self._checkHashed(credentials)
        return _failed()

    def _checkPassword(self, credentials):
        address = self.passwdFile.normalize(credentials.username)
        if address is None:
            # Still spend the bcrypt time: a malformed name must not answer faster.
            address = ""
        d = threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(),
            self.passwdFile.verifyPassword, address, credentials.password)

        def checked(ok):
            if not ok or not address:
                raise UnauthorizedLogin(FAILURE_MESSAGE)
            return address.encode("utf-8")
        return d.addCallback(checked)

    def _checkHashed(self, credentials):
        address = self.passwdFile.normalize(credentials.username)
        secret = None if address is None else self.passwdFile.plaintextSecret(address)
        if secret is None:
            return _failed()
        if not credentials.checkPassword(secret.encode("utf-8", "surrogateescape")):
            return _failed()
        return defer.succeed(address.encode("utf-8"))


@implementer(IUsernameHashedPassword)
class APOPCredentials:
    """
    The POP3 APOP command (RFC 1939 section 7): the client proves it knows the
    password by sending C{MD5(timestamp + password)} in hex.

    @param timestamp: the server greeting's C{<...>} banner, brackets included.
    @param username: the name given to APOP.
    @param digest: the client's hex digest.
    """

    def __init__(self, timestamp, username, digest):
        self.timestamp = timestamp
        self.username = username
        self.digest = digest

    def checkPassword(self, password):
        if isinstance(password, str):
            password = password.encode("utf-8")
        digest = self.digest
        if isinstance(digest, str):
            try:
                digest = digest.encode("ascii")
            except UnicodeEncodeError:
                return False
        expected = hashlib.md5(self.timestamp + password).hexdigest().encode("ascii")
        return hmac.compare_digest(expected, digest.lower())
