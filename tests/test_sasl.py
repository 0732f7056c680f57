"""
Unit tests for L{mailstack.protocol.sasl}: response decoding, the mechanism
steps, the offer policy, the challenge builder and the authzid rule.
"""

import base64
import hashlib
import hmac
import os
from types import SimpleNamespace

from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.internet import task
from twisted.trial import unittest

from mailstack.protocol import sasl


def b64(data):
    return base64.b64encode(data)


class DecodeResponseTests(unittest.TestCase):
    """
    One rule for every response line, initial or not.
    """

    def test_base64(self):
        """Base64 decodes; white space around it is ignored."""
        self.assertEqual(sasl.decodeResponse(b64(b"hello")), b"hello")
        self.assertEqual(sasl.decodeResponse(b"  " + b64(b"hello") + b" "), b"hello")

    def test_equalsIsEmpty(self):
        """'=' and an empty line are both an empty response."""
        self.assertEqual(sasl.decodeResponse(b"="), b"")
        self.assertEqual(sasl.decodeResponse(b" = "), b"")
        self.assertEqual(sasl.decodeResponse(b""), b"")

    def test_cancel(self):
        """'*' cancels, with or without white space."""
        for line in (b"*", b" * "):
            self.assertRaises(sasl._CancelledLine, sasl.decodeResponse, line)

    def test_invalid(self):
        """Anything else that is not base64 is refused (no silent garbage)."""
        for line in (b"!!!", b"abc", b"a b c=", b"==", b"**", b"\xff"):
            self.assertRaises(sasl._InvalidBase64, sasl.decodeResponse, line)


class ExchangeTests(unittest.TestCase):
    """
    The mechanisms as step objects: lines in, outcomes out.
    """

    clock = task.Clock()

    def exchange(self, name):
        return sasl.newExchange(name, "mx.lab.test", self.clock)

    def assertPassword(self, outcome, user, password, authzid=b""):
        self.assertIsInstance(outcome, sasl.Credentials)
        self.assertTrue(IUsernamePassword.providedBy(outcome.credentials))
        self.assertEqual((outcome.credentials.username, outcome.credentials.password,
                          outcome.authzid), (user, password, authzid))

    def test_plainInitial(self):
        """PLAIN with an initial response gives credentials at once."""
        e = self.exchange("PLAIN")
        out = e.start(b64(b"\0alice\0secret"))
        self.assertPassword(out, b"alice", b"secret")
        self.assertFalse(e.open)

    def test_plainChallenge(self):
        """PLAIN without one sends an empty challenge, then takes the response."""
        e = self.exchange("PLAIN")
        out = e.start(None)
        self.assertIsInstance(out, sasl.Challenge)
        self.assertEqual(out.data, b"")
        self.assertTrue(e.open)
        self.assertPassword(e.receive(b64(b"admin\0alice\0secret")), b"alice", b"secret",
                            b"admin")
        self.assertFalse(e.open)

    def test_plainMalformed(self):
        """PLAIN without two NULs or without an authcid is malformed; '=' too."""
        for data in (b"no-nuls", b"a\0b", b"\0\0pw", b"a\0b\0c\0d"):
            out = self.exchange("PLAIN").start(b64(data))
            self.assertIsInstance(out, sasl.Malformed)
            self.assertEqual((out.problem, out.mechanism), (sasl.MALFORMED, "PLAIN"))
        self.assertIsInstance(self.exchange("PLAIN").start(b"="), sasl.Malformed)

    def test_plainEmptyPassword(self):
        """An empty PLAIN password is a login attempt (it fails at the checker)."""
        self.assertPassword(self.exchange("PLAIN").start(b64(b"\0alice\0")), b"alice", b"")

    def test_invalidBase64(self):
        """Bad base64 ends the exchange, initial or not."""
        out = self.exchange("PLAIN").start(b"!!")
        self.assertEqual(out.problem, sasl.INVALID_BASE64)
        e = self.exchange("LOGIN")
        e.start(None)
        self.assertEqual(e.receive(b"@@").problem, sasl.INVALID_BASE64)
        self.assertFalse(e.open)

    def test_cancel(self):
        """'*' cancels on the initial response and on a continuation line."""
        self.assertIsInstance(self.exchange("PLAIN").start(b"*"), sasl.Cancelled)
        e = self.exchange("LOGIN")
        e.start(None)
        e.receive(b64(b"alice"))
        self.assertIsInstance(e.receive(b"*"), sasl.Cancelled)
        self.assertFalse(e.open)

    def test_loginTwoSteps(self):
        """LOGIN asks Username: then Password:."""
        e = self.exchange("LOGIN")
        self.assertEqual(e.start(None).data, b"Username:")
        self.assertEqual(e.receive(b64(b"alice")).data, b"Password:")
        self.assertPassword(e.receive(b64(b"secret")), b"alice", b"secret")

    def test_loginInitialIsUser(self):
        """LOGIN's initial response is the user name."""
        e = self.exchange("LOGIN")
        self.assertEqual(e.start(b64(b"alice")).data, b"Password:")
        self.assertPassword(e.receive(b64(b"secret")), b"alice", b"secret")

    def test_equalsOnEveryLine(self):
        """'=' is an empty response on continuation lines as well as initially."""
        e = self.exchange("LOGIN")
        self.assertEqual(e.start(b"=").data, b"Password:")
        self.assertPassword(e.receive(b"="), b"", b"")

    def test_cramMD5(self):
        """CRAM-MD5 sends its challenge first and checks the HMAC of it."""
        e = self.exchange("CRAM-MD5")
        challenge = e.start(None).data
        self.assertTrue(challenge.startswith(b"<%d." % (os.getpid(),)))
        self.assertTrue(challenge.endswith(b"@mx.lab.test>"))
        digest = hmac.new(b"secret", challenge, hashlib.md5).hexdigest().encode()
        out = e.receive(b64(b"alice " + digest))
        self.assertIsInstance(out, sasl.Credentials)
        self.assertTrue(IUsernameHashedPassword.providedBy(out.credentials))
        self.assertEqual(out.credentials.username, b"alice")
        self.assertTrue(out.credentials.checkPassword(b"secret"))
        self.assertFalse(out.credentials.checkPassword(b"wrong"))

    def test_cramMD5InitialResponse(self):
        """CRAM-MD5 takes '=' (no data) as its initial response, nothing else."""
        self.assertIsInstance(self.exchange("CRAM-MD5").start(b"="), sasl.Challenge)
        out = self.exchange("CRAM-MD5").start(b64(b"alice 00"))
        self.assertEqual(out.problem, sasl.UNEXPECTED_INITIAL_RESPONSE)

    def test_cramMD5Malformed(self):
        """A CRAM-MD5 response without a user and a digest is malformed."""
        for data in (b"", b"nospace", b"alice ", b" digest"):
            e = self.exchange("CRAM-MD5")
            e.start(None)
            self.assertEqual(e.receive(b64(data)).problem, sasl.MALFORMED, data)

    def test_challengesDiffer(self):
        """Two CRAM-MD5 exchanges never get the same challenge."""
        self.assertNotEqual(self.exchange("CRAM-MD5").start(None).data,
                            self.exchange("CRAM-MD5").start(None).data)

    def test_unknownMechanism(self):
        """Only the three mechanisms exist."""
        self.assertRaises(ValueError, self.exchange, "GSSAPI")


class ChallengeTests(unittest.TestCase):
    """
    One builder for CRAM-MD5's challenge and APOP's timestamp, on one clock.
    """

    def test_format(self):
        """<pid.seconds.random@host>, seconds from the clock passed in."""
        clock = task.Clock()
        clock.advance(1234567)
        value = sasl.uniqueChallenge("pop.lab.test", clock, 4).decode()
        self.assertRegex(value, r"^<%d\.1234567\.[0-9a-f]{8}@pop\.lab\.test>$" % (
            os.getpid(),))


class OfferTests(unittest.TestCase):
    """
    The one mechanism-offer policy.
    """

    def settings(self, **kw):
        values = dict(allowPlaintextAuth=False, challengeAuth="auto")
        values.update(kw)
        return SimpleNamespace(**values)

    def offered(self, settings, secure, plain=True, enabled=lambda m: True, **kw):
        return sasl.offeredMechanisms(settings, secure, lambda: plain, enabled, **kw)

    def test_underTLS(self):
        """Under TLS: PLAIN, LOGIN, and CRAM-MD5 while every user is {PLAIN}."""
        self.assertEqual(self.offered(self.settings(), True), ["PLAIN", "LOGIN", "CRAM-MD5"])
        self.assertEqual(self.offered(self.settings(), True, plain=False), ["PLAIN", "LOGIN"])

    def test_always(self):
        """challenge_auth = "always" offers CRAM-MD5 regardless of the users."""
        self.assertEqual(self.offered(self.settings(challengeAuth="always"), True, plain=False),
                         ["PLAIN", "LOGIN", "CRAM-MD5"])

    def test_plaintext(self):
        """Without TLS the password mechanisms need allow_plaintext_auth."""
        self.assertEqual(self.offered(self.settings(), False), ["CRAM-MD5"])
        self.assertEqual(self.offered(self.settings(allowPlaintextAuth=True), False),
                         ["PLAIN", "LOGIN", "CRAM-MD5"])
        self.assertEqual(sasl.mechanismStatus("PLAIN", self.settings(), False, lambda: True,
                                              lambda m: True), sasl.NEEDS_TLS)

    def test_challengeNeedsTLS(self):
        """SMTP's rule: no mechanism at all before TLS (CRAM-MD5 needs TLS too)."""
        self.assertEqual(self.offered(self.settings(), False, challengeNeedsTLS=True), [])
        self.assertEqual(sasl.mechanismStatus("CRAM-MD5", self.settings(), False,
                                              lambda: True, lambda m: True,
                                              challengeNeedsTLS=True), sasl.NEEDS_TLS)

    def test_disabled(self):
        """A disabled mechanism is unsupported, not 'needs TLS'."""
        enabled = lambda m: m != "PLAIN"  # noqa: E731
        self.assertEqual(self.offered(self.settings(), True, enabled=enabled),
                         ["LOGIN", "CRAM-MD5"])
        self.assertEqual(sasl.mechanismStatus("PLAIN", self.settings(), False, lambda: True,
                                              enabled), sasl.UNSUPPORTED)
        self.assertEqual(sasl.mechanismStatus("GSSAPI", self.settings(), True, lambda: True,
                                              lambda m: True), sasl.UNSUPPORTED)

    def test_offersChallengeAuth(self):
        """CRAM-MD5/APOP: offered with "always", else only when every user is {PLAIN}."""
        self.assertTrue(sasl.offersChallengeAuth("auto", lambda: True))
        self.assertFalse(sasl.offersChallengeAuth("auto", lambda: False))
        self.assertTrue(sasl.offersChallengeAuth("always", lambda: False))


class AuthorizationTests(unittest.TestCase):
    """
    The authzid rule: the logged-in user only, names normalised as logins are.
    """

    def test_empty(self):
        """No authzid: allowed."""
        self.assertTrue(sasl.authorizationAllowed(b"", b"demo@lab.test", None))
        self.assertTrue(sasl.authorizationAllowed(None, b"demo@lab.test", None))

    def test_same(self):
        """The user's own address, in any case: allowed."""
        for authzid in (b"demo@lab.test", b"DEMO@Lab.Test", "demo@lab.test"):
            self.assertTrue(sasl.authorizationAllowed(authzid, b"demo@lab.test", None))

    def test_defaultDomain(self):
        """A bare name gets default_domain, as the login name did."""
        self.assertTrue(sasl.authorizationAllowed(b"demo", "demo@lab.test", "lab.test"))
        self.assertFalse(sasl.authorizationAllowed(b"demo", "demo@lab.test", None))
        self.assertFalse(sasl.authorizationAllowed(b"demo", "demo@lab.test", "other.test"))

    def test_other(self):
        """Another user, or no address at all: refused."""
        for authzid in (b"alice@lab.test", b"demo@lab.test\0", b"\xff", b"demo@"):
            self.assertFalse(sasl.authorizationAllowed(authzid, b"demo@lab.test", "lab.test"))

    def test_authorizeCallback(self):
        """As a login callback: the result passes, or the avatar is logged out and the login fails."""
        from twisted.cred.error import UnauthorizedLogin
        out = []
        avatar = SimpleNamespace(address="demo@lab.test")
        result = (object, avatar, lambda: out.append("logout"))
        self.assertIs(sasl.authorize(result, b"demo", "lab.test"), result)
        self.assertEqual(out, [])
        self.assertRaises(UnauthorizedLogin, sasl.authorize, result, b"alice", "lab.test")
        self.assertEqual(out, ["logout"])
