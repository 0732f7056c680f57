"""
Tests for L{mailstack.auth.checkers}: passwd-file credentials checking and APOP.
"""

import hmac
import os
import re

import bcrypt

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import (
    CramMD5Credentials, IUsernameHashedPassword, IUsernamePassword, UsernamePassword)
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, reactor
from twisted.python import threadable
from twisted.mail.imap4 import PLAINCredentials
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mailstack.auth import directory
from mailstack.auth.checkers import APOPCredentials, UserDirectoryChecker
from mailstack.auth.directory import UserDirectory
from mailstack.auth.userdb import PasswdFile


class APOPCredentialsTests(unittest.TestCase):
    timestamp = b"<1896.697170952@dbc.mtview.ca.us>"
    digest = b"c4c9334bac560ecc979e58001b3e22fb"

    def test_rfc1939Example(self):
        """The RFC 1939 section 7 example digest matches 'tanstaaf'."""
        credentials = APOPCredentials(self.timestamp, b"mrose", self.digest)
        self.assertTrue(credentials.checkPassword(b"tanstaaf"))
        self.assertTrue(credentials.checkPassword("tanstaaf"))
        self.assertFalse(credentials.checkPassword(b"tanstaaF"))

    def test_upperCaseDigest(self):
        """A client sending the hex digest in upper case is accepted."""
        credentials = APOPCredentials(self.timestamp, b"mrose", self.digest.upper())
        self.assertTrue(credentials.checkPassword(b"tanstaaf"))

    def test_badDigest(self):
        """Wrong, short or non-ASCII digests fail without raising."""
        for digest in (b"0" * 32, b"c4c9", b"", "c4c9334bac560ecc979e58001b3e22f\u00e9"):
            credentials = APOPCredentials(self.timestamp, b"mrose", digest)
            self.assertFalse(credentials.checkPassword(b"tanstaaf"), digest)


class CheckerTests(unittest.TestCase):
    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.users = PasswdFile(os.path.join(directory, "users"),
                                defaultDomain="lab.test", bcryptRounds=4)
        self.users.addUser("plain@lab.test", "tanstaaf", scheme="PLAIN")
        self.users.addUser("hashed@lab.test", "s3cret")
        self.checker = UserDirectoryChecker(UserDirectory(self.users, reactor))

    def assertUnauthorized(self, d):
        failure = self.failureResultOf(d) if d.called else None
        if failure is not None:
            failure.trap(UnauthorizedLogin)
            self.assertEqual(failure.getErrorMessage(), "Authentication failed")
            return None
        d = self.assertFailure(d, UnauthorizedLogin)
        d.addCallback(lambda e: self.assertEqual(str(e), "Authentication failed"))
        return d

    def test_interface(self):
        """The checker provides ICredentialsChecker for both credential kinds."""
        verifyObject(ICredentialsChecker, self.checker)
        self.assertEqual(set(self.checker.credentialInterfaces),
                         {IUsernamePassword, IUsernameHashedPassword})

    def test_defaultReactor(self):
        """Without a reactor the directory uses the global one."""
        self.assertIs(UserDirectory(self.users).reactor, reactor)

    def test_passwordBcrypt(self):
        """A right password gives the normalised address as bytes."""
        d = self.checker.requestAvatarId(UsernamePassword(b"HASHED", b"s3cret"))
        d.addCallback(self.assertEqual, b"hashed@lab.test")
        return d

    def test_passwordPlain(self):
        """PLAIN users log in with their password too (str credentials work)."""
        d = self.checker.requestAvatarId(UsernamePassword("plain@lab.test", "tanstaaf"))
        d.addCallback(self.assertEqual, b"plain@lab.test")
        return d

    def test_imapPLAINCredentials(self):
        """twisted.mail's own UsernamePassword subclasses are accepted."""
        credentials = PLAINCredentials()
        credentials.setResponse(b"\0hashed\0s3cret")
        d = self.checker.requestAvatarId(credentials)
        d.addCallback(self.assertEqual, b"hashed@lab.test")
        return d

    def test_wrongPassword(self):
        """A wrong password fails with the generic message."""
        return self.assertUnauthorized(
            self.checker.requestAvatarId(UsernamePassword(b"hashed", b"wrong")))

    def test_unknownUser(self):
        """An unknown user fails with the same generic message."""
        return self.assertUnauthorized(
            self.checker.requestAvatarId(UsernamePassword(b"nobody", b"s3cret")))

    def test_malformedName(self):
        """A name that cannot be an address fails the same way."""
        return self.assertUnauthorized(
            self.checker.requestAvatarId(UsernamePassword(b"a:b\xff", b"s3cret")))

    def test_runsInThreadPool(self):
        """The password check runs in the reactor's thread pool."""
        calls = []

        class FakePool:
            pass

        class FakeReactor:
            def getThreadPool(self):
                return FakePool

        verified = []
        verify = self.users.verifyPassword

        def recordingVerify(name, password):
            verified.append((name, password))
            return verify(name, password)
        self.patch(self.users, "verifyPassword", recordingVerify)

        def fakeDeferToThreadPool(reactor, pool, f, *args):
            calls.append(pool)
            self.assertEqual(verified, [])  # not run before it reaches the pool
            return defer.succeed(f(*args))
        self.patch(directory.threads, "deferToThreadPool", fakeDeferToThreadPool)
        checker = UserDirectoryChecker(UserDirectory(self.users, FakeReactor()))
        d = checker.requestAvatarId(UsernamePassword(b"hashed", b"s3cret"))
        self.assertEqual(self.successResultOf(d), b"hashed@lab.test")
        self.assertEqual(calls, [FakePool])
        self.assertEqual(verified, [("hashed@lab.test", b"s3cret")])

    def cram(self, username, secret, challenge=b"<1896.697170952@postoffice.reston.mci.net>"):
        credentials = CramMD5Credentials()
        credentials.challenge = challenge
        digest = hmac.new(secret, challenge, "md5").hexdigest().encode("ascii")
        credentials.setResponse(username + b" " + digest)
        return credentials

    def test_cramMD5RFC2195(self):
        """The RFC 2195 example response verifies against secret 'tanstaaftanstaaf'."""
        credentials = CramMD5Credentials()
        credentials.challenge = b"<1896.697170952@postoffice.reston.mci.net>"
        credentials.setResponse(b"tim b913a602c7eda7a495b4e6e7334d3890")
        self.assertEqual(credentials.username, b"tim")
        self.assertTrue(credentials.checkPassword(b"tanstaaftanstaaf"))
        self.assertFalse(credentials.checkPassword(b"tanstaaf"))

    def test_cramMD5Plain(self):
        """CRAM-MD5 works for a PLAIN user."""
        d = self.checker.requestAvatarId(self.cram(b"Plain", b"tanstaaf"))
        return d.addCallback(self.assertEqual, b"plain@lab.test")

    def test_cramMD5WrongSecret(self):
        """CRAM-MD5 with a wrong digest fails generically."""
        return self.assertUnauthorized(
            self.checker.requestAvatarId(self.cram(b"plain", b"wrong")))

    def test_cramMD5HashedUser(self):
        """CRAM-MD5 for a BLF-CRYPT user fails generically, even with the password."""
        return self.assertUnauthorized(
            self.checker.requestAvatarId(self.cram(b"hashed", b"s3cret")))

    def test_cramMD5UnknownUser(self):
        """CRAM-MD5 for an unknown user fails generically."""
        return self.assertUnauthorized(
            self.checker.requestAvatarId(self.cram(b"nobody", b"x")))

    def test_apop(self):
        """APOP (RFC 1939 example digest) works for a PLAIN user."""
        credentials = APOPCredentials(APOPCredentialsTests.timestamp, b"plain",
                                      APOPCredentialsTests.digest)
        d = self.checker.requestAvatarId(credentials)
        return d.addCallback(self.assertEqual, b"plain@lab.test")

    def test_apopHashedUser(self):
        """APOP for a BLF-CRYPT user fails generically."""
        credentials = APOPCredentials(b"<1@x>", b"hashed", b"0" * 32)
        return self.assertUnauthorized(self.checker.requestAvatarId(credentials))

    def test_apopWrongDigest(self):
        """APOP with a wrong digest fails generically."""
        credentials = APOPCredentials(b"<2@x>", b"plain", APOPCredentialsTests.digest)
        return self.assertUnauthorized(self.checker.requestAvatarId(credentials))


class PasswordCostTests(unittest.TestCase):
    """
    What each password check costs, counted by wrapping C{bcrypt.checkpw}: a
    success costs what its scheme costs, every failure exactly one bcrypt at
    the cost factor of the file's real BLF-CRYPT hashes.
    """

    # A hash of another cost than the configured one for new hashes, as when
    # the file holds doveadm's hashes: the dummy must follow the file.
    fileCost = 5

    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "users")
        hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(self.fileCost)).decode("ascii")
        with open(path, "w") as f:
            f.write("plain@lab.test:{PLAIN}tanstaaf:::::\n"
                    "hashed@lab.test:{BLF-CRYPT}$2y$%s:::::\n"
                    "sha@lab.test:{SHA512-CRYPT}$6$salt$abc:::::\n"
                    "bare@lab.test:nohash:::::\n" % (hashed[4:],))
        self.users = PasswdFile(path, defaultDomain="lab.test", bcryptRounds=4)
        self.checker = UserDirectoryChecker(UserDirectory(self.users, reactor))
        self.calls = []
        original = bcrypt.checkpw

        def counting(password, hashed):
            self.calls.append((int(re.match(rb"\$2.\$(\d\d)\$", hashed).group(1)),
                               threadable.isInIOThread()))
            return original(password, hashed)
        self.patch(bcrypt, "checkpw", counting)

    def cost(self, username, password):
        """
        Check one login; return C{(avatarId or None, [bcrypt cost per call])},
        asserting that no bcrypt call ran in the reactor thread.
        """
        del self.calls[:]
        d = self.checker.requestAvatarId(UsernamePassword(username, password))
        d.addErrback(lambda f: f.trap(UnauthorizedLogin) and None)

        def counted(result):
            self.assertEqual([inIO for _, inIO in self.calls if inIO], [])
            return result, [cost for cost, _ in self.calls]
        return d.addCallback(counted)

    @defer.inlineCallbacks
    def test_plainSuccessSpendsNoBcrypt(self):
        """A right {PLAIN} password costs no bcrypt: LOGIN is as fast as Dovecot's."""
        result = yield self.cost(b"plain", b"tanstaaf")
        self.assertEqual(result, (b"plain@lab.test", []))

    @defer.inlineCallbacks
    def test_bcryptSuccess(self):
        """A right BLF-CRYPT password costs its own hash, once."""
        result = yield self.cost(b"hashed", b"s3cret")
        self.assertEqual(result, (b"hashed@lab.test", [self.fileCost]))

    @defer.inlineCallbacks
    def test_everyFailureSpendsOneBcryptAtTheFileCost(self):
        """
        Every failure (wrong password of any scheme, unknown user, bad name,
        unusable scheme) costs exactly one bcrypt at the cost of the file's
        BLF-CRYPT hashes, so timing does not tell them apart.
        """
        for username in (b"plain", b"hashed", b"nobody", b"a:b\xff", b"sha", b"bare"):
            result = yield self.cost(username, b"wrong")
            self.assertEqual(result, (None, [self.fileCost]), username)

    @defer.inlineCallbacks
    def test_failureCostWithoutBcryptUsers(self):
        """With no BLF-CRYPT hash in the file, a failure costs one bcrypt at bcrypt_rounds."""
        self.users.removeUser("hashed")
        for username in (b"plain", b"nobody"):
            result = yield self.cost(username, b"wrong")
            self.assertEqual(result, (None, [4]), username)
