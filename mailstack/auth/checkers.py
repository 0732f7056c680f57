"""
twisted.cred checkers over the user directory, and APOP credentials.

Plain passwords (USER/PASS, LOGIN, AUTH PLAIN) are checked by the
L{mailstack.auth.interfaces.IUserDirectory}, in the reactor's thread pool, so
a slow hash or database never stalls other sessions. A success costs what
its scheme costs (its hash for BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT and
ARGON2ID, a constant-time comparison for {PLAIN}, so a {PLAIN} login is as
fast as Dovecot's); a failure costs one check of the user's own hash or (an
unknown user, a wrong {PLAIN} password) of a hash of the most common kind
stored (L{mailstack.auth.passwords.PasswordBackend.verifyPassword}), so
timing does not tell an unknown user from a wrong password. Mechanisms that
prove knowledge of the secret without sending it (CRAM-MD5, APOP) need the
secret itself, so they work only for users stored {PLAIN}. Every failure, whatever its cause, is the same L{UnauthorizedLogin}: a
client learns nothing about which users exist or how they are stored. A
directory that cannot answer (L{UserDirectoryUnavailable}) is not a failed
login: that error goes on up, and the protocols answer it as temporary.
A right password of a user marked C{nologin} (L{mailstack.auth.nologin})
fails with L{LoginDisabled}, an L{UnauthorizedLogin} that IMAP answers with
the reason and its login referral.
"""

import hashlib
import hmac

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from zope.interface import implementer

from mailstack.auth.nologin import LoginDisabled

FAILURE_MESSAGE = "Authentication failed"


def _failed():
    return defer.fail(UnauthorizedLogin(FAILURE_MESSAGE))


def _admitted(user):
    """
    The avatar ID of a user whose secret was right, unless the user may not
    log in here (L{LoginDisabled}, with the reason and where else to go).
    """
    if user.noLogin is not None:
        raise LoginDisabled(user.noLogin, user.address)
    return user.address.encode("utf-8")


@implementer(ICredentialsChecker)
class UserDirectoryChecker:
    """
    Checks credentials against an L{IUserDirectory}; the avatar ID is the
    normalised address as UTF-8 bytes.

    @param directory: the L{mailstack.auth.interfaces.IUserDirectory}.
    """

    credentialInterfaces = (IUsernamePassword, IUsernameHashedPassword)

    def __init__(self, directory):
        self.directory = directory

    def requestAvatarId(self, credentials):
        if IUsernamePassword.providedBy(credentials):
            return self._checkPassword(credentials)
        if IUsernameHashedPassword.providedBy(credentials):
            return self._checkHashed(credentials)
        return _failed()

    def _checkPassword(self, credentials):
        address = self.directory.normalize(credentials.username)
        if address is None:
            # Still spend the bcrypt time: a malformed name must not answer faster.
            address = ""
        d = self.directory.verifyLogin(address, credentials.password)

        def checked(user):
            if user is None or not address:
                raise UnauthorizedLogin(FAILURE_MESSAGE)
            return _admitted(user)
        return d.addCallback(checked)

    def _checkHashed(self, credentials):
        address = self.directory.normalize(credentials.username)
        if address is None:
            return _failed()

        def check(secret):
            if secret is None or not credentials.checkPassword(
                    secret.encode("utf-8", "surrogateescape")):
                raise UnauthorizedLogin(FAILURE_MESSAGE)
            return self.directory.lookup(address).addCallback(known)

        def known(user):
            if user is None:
                raise UnauthorizedLogin(FAILURE_MESSAGE)
            return _admitted(user)
        return self.directory.plaintextSecret(address).addCallback(check)


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
