"""
End to end: users whose passwd-file lines came from Dovecot's C{doveadm pw}
({SHA512-CRYPT}, with and without C{rounds=}, {SHA256-CRYPT}, {ARGON2ID}) log
in over SMTP submission, POP3 and IMAP on real sockets, wrong passwords fail,
and CRAM-MD5 is not offered for them (it needs {PLAIN}).
"""

import base64

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.auth.passwords import User
from tests.e2e.test_users import LISTENERS, SessionsMixin
from tests.helpers import E2EMixin
from tests.test_password_schemes import DOVEADM_HASHES, DOVEADM_PASSWORD


def plain(address, password):
    return base64.b64encode(("\0%s\0%s" % (address, password)).encode())


class DovecotHashLoginTests(SessionsMixin, E2EMixin, unittest.TestCase):
    listeners = LISTENERS

    def setUp(self):
        E2EMixin.setUp(self)
        self.addresses = []
        for number, field in enumerate(DOVEADM_HASHES):
            scheme, _, secret = field[1:].partition("}")
            address = "migrated%d@lab.test" % (number,)
            self.server.users.addStoredUser(User(address, scheme, secret))
            self.addresses.append(address)

    @defer.inlineCallbacks
    def test_logins(self):
        """Each doveadm-hashed user logs in over submission, POP3 and IMAP; a wrong password fails."""
        password = DOVEADM_PASSWORD.encode()
        for address in self.addresses:
            smtp = yield self.session("submission", [
                (b"EHLO client", (b"250 ",)),
                (b"AUTH PLAIN " + plain(address, DOVEADM_PASSWORD), (b"2", b"4", b"5")),
            ])
            self.assertEqual(smtp[1], b"235 2.7.0 Authentication successful", address)
            wrongSMTP = yield self.session("submission", [
                (b"EHLO client", (b"250 ",)),
                (b"AUTH PLAIN " + plain(address, "dovecot"), (b"2", b"4", b"5"))])
            self.assertTrue(wrongSMTP[1].startswith(b"535 "), wrongSMTP)
            pop3 = yield self.session("pop3", [
                (b"USER " + address.encode(), (b"+OK", b"-ERR")),
                (b"PASS " + password, (b"+OK", b"-ERR"))])
            self.assertTrue(pop3[1].startswith(b"+OK Logged in"), (address, pop3))
            imap = yield self.session("imap", [
                (b'a LOGIN %s "%s"' % (address.encode(), password), (b"a ",)),
            ])
            self.assertTrue(imap[0].startswith(b"a OK"), (address, imap))
            wrong = yield self.session("imap", [
                (b"a LOGIN %s dovecot" % (address.encode(),), (b"a ",))])
            self.assertTrue(wrong[0].startswith(b"a NO [AUTHENTICATIONFAILED]"),
                            (address, wrong))

    @defer.inlineCallbacks
    def test_noChallengeMechanisms(self):
        """With hashed users in the file, IMAP and submission do not offer CRAM-MD5."""
        imap = yield self.session("imap", [(b"a CAPABILITY", (b"* CAPABILITY",))])
        self.assertIn(b"AUTH=PLAIN", imap[0])
        self.assertNotIn(b"CRAM-MD5", imap[0])
        smtp = yield self.session("submission", [(b"EHLO client", (b"250-AUTH", b"250 "))])
        self.assertIn(b"PLAIN", smtp[0])
        self.assertNotIn(b"CRAM-MD5", smtp[0])
