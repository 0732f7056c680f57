"""
The C{mailstack token} commands: API tokens made for a user and printed
once, listed without their secrets, revoked; in the data directory the
server reads.
"""

import io
import os

from twisted.trial import unittest

from mailstack import cli
from mailstack.web.tokens import TokenStore, parseToken
from tests.helpers import BASE_CONFIG, writeConfig


class TokenCommandTests(unittest.TestCase):
    """mailstack token create, list, revoke."""

    def setUp(self):
        self.config = writeConfig(self, BASE_CONFIG)
        self.var = os.path.join(os.path.abspath(os.path.dirname(self.config)), "var")
        status, _, err = self.mailstack("user", "add", "alice", "--password-stdin",
                                        "--scheme", "PLAIN", stdin="pw\n")
        self.assertEqual((status, err), (0, ""))

    def mailstack(self, *argv, stdin=""):
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(["--config", self.config] + list(argv), stdin=io.StringIO(stdin),
                          stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def test_createListRevoke(self):
        """create prints a token that the server's store accepts; list shows it without the secret; revoke ends it."""
        status, out, err = self.mailstack("token", "create", "alice", "--name", "grader")
        self.assertEqual((status, err), (0, ""))
        text = out.strip()
        tokenID, secret = parseToken(text)
        store = TokenStore.inDataDirectory(self.var)
        self.assertEqual(store.verify(text).address, "alice@lab.test")
        status, out, _ = self.mailstack("token", "list")
        self.assertEqual(status, 0)
        self.assertIn("%s  alice@lab.test  " % (tokenID,), out)
        self.assertTrue(out.rstrip().endswith("  grader"))
        self.assertNotIn(secret, out)
        status, out, _ = self.mailstack("token", "list", "nobody@lab.test")
        self.assertEqual((status, out), (0, ""))
        status, out, _ = self.mailstack("token", "revoke", tokenID)
        self.assertEqual((status, out), (0, "revoked token %s of alice@lab.test\n" % (tokenID,)))
        self.assertIsNone(store.verify(text))

    def test_refusals(self):
        """An unknown user, an unknown id and a bad name are one-line errors with status 1."""
        self.assertEqual(self.mailstack("token", "create", "nobody"),
                         (1, "", "mailstack: no such user: nobody\n"))
        self.assertEqual(self.mailstack("token", "revoke", "0123456789abcdef"),
                         (1, "", "mailstack: no token 0123456789abcdef\n"))
        status, _, err = self.mailstack("token", "create", "alice", "--name", "")
        self.assertEqual(status, 1)
        self.assertTrue(err.startswith("mailstack: a token name is 1 to 64 characters"))

    def test_removedUsersTokensRevoked(self):
        """user del revokes the user's tokens, so a user added again under that address does not inherit them."""
        text = self.mailstack("token", "create", "alice")[1].strip()
        self.mailstack("token", "create", "alice")
        status, out, _ = self.mailstack("user", "del", "alice")
        self.assertEqual((status, out),
                         (0, "removed alice@lab.test (its mail is kept); 2 API tokens revoked\n"))
        self.mailstack("user", "add", "alice", "--password-stdin", stdin="pw2\n")
        self.assertIsNone(TokenStore.inDataDirectory(self.var).verify(text))
        status, out, _ = self.mailstack("user", "del", "alice")
        self.assertEqual(out, "removed alice@lab.test (its mail is kept)\n")
