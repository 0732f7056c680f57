"""
Tests for L{mailstack.web.tokens}: API tokens made, checked, listed and
revoked, kept only as hashes in a private file that the command and the
server share.
"""

import json
import os
import stat

from twisted.trial import unittest

from mailstack.web.tokens import NoSuchToken, TokenError, TokenStore, parseToken


class TokenStoreTests(unittest.TestCase):
    """The token file's life cycle."""

    def setUp(self):
        self.now = 1000.0
        self.directory = self.mktemp()
        self.store = TokenStore.inDataDirectory(self.directory, clock=lambda: self.now)

    def test_createVerify(self):
        """A new token is accepted and acts as its user; its text is mst_<id>_<secret>."""
        token, text = self.store.create("alice@lab.test", "grader")
        self.assertEqual(parseToken(text)[0], token.id)
        self.assertEqual(self.store.verify(text), token)
        self.assertEqual((token.address, token.name, token.created),
                         ("alice@lab.test", "grader", 1000.0))

    def test_wrongTokens(self):
        """A token with a wrong secret, an unknown id, or no token shape at all is refused."""
        token, text = self.store.create("alice@lab.test")
        tokenID, secret = parseToken(text)
        wrongSecret = "mst_%s_%s" % (tokenID, ("A" if secret[0] != "A" else "B") + secret[1:])
        otherID = "mst_%s_%s" % ("0" * 16, secret)
        for presented in (wrongSecret, otherID, "", "Bearer " + text, text + "x", None, text[:-1]):
            self.assertIsNone(self.store.verify(presented), presented)

    def test_onlyHashKept(self):
        """The file holds no token nor secret, only hashes, and is private (0600)."""
        _, text = self.store.create("alice@lab.test")
        with open(self.store.path, "rb") as f:
            data = f.read()
        self.assertNotIn(parseToken(text)[1].encode(), data)
        self.assertEqual(set(json.loads(data)["tokens"][0]),
                         {"id", "address", "name", "created", "digest"})
        self.assertEqual(stat.S_IMODE(os.stat(self.store.path).st_mode), 0o600)
        self.assertNotIn("digest", self.store.list()[0].public())

    def test_sharedFile(self):
        """A token made by another store on the same file (the command) works at once; a revoked one stops."""
        other = TokenStore(self.store.path)
        self.assertEqual(self.store.list(), [])
        token, text = other.create("bob@lab.test")
        self.assertEqual(self.store.verify(text), token)
        other.revoke(token.id)
        self.assertIsNone(self.store.verify(text))

    def test_changesDoNotLoseEachOther(self):
        """Two stores adding tokens in turn keep every token."""
        other = TokenStore(self.store.path)
        self.store.create("a@lab.test")
        other.create("b@lab.test")
        self.store.create("c@lab.test")
        self.assertEqual(sorted(t.address for t in other.list()),
                         ["a@lab.test", "b@lab.test", "c@lab.test"])

    def test_listRevoke(self):
        """Tokens are listed per user; a user may revoke only their own; revokeAll clears a user's."""
        a, _ = self.store.create("alice@lab.test", "one")
        self.now += 1
        b, _ = self.store.create("bob@lab.test", "two")
        self.now += 1
        c, _ = self.store.create("alice@lab.test", "three")
        self.assertEqual(self.store.list(), [a, b, c])
        self.assertEqual(self.store.list("alice@lab.test"), [a, c])
        self.assertRaises(NoSuchToken, self.store.revoke, b.id, "alice@lab.test")
        self.assertEqual(self.store.revoke(b.id), b)
        self.assertRaises(NoSuchToken, self.store.revoke, b.id)
        self.assertEqual(self.store.revokeAll("alice@lab.test"), 2)
        self.assertEqual(self.store.list(), [])

    def test_names(self):
        """A name must be 1 to 64 characters without control characters."""
        for bad in ("", "   ", "a\nb", "x" * 65):
            self.assertRaises(TokenError, self.store.create, "alice@lab.test", bad)
        self.assertEqual(self.store.create("alice@lab.test", " ci job ")[0].name, "ci job")

    def test_brokenFile(self):
        """A file that is not a token file is a TokenError naming it, not a crash."""
        os.makedirs(self.directory)
        with open(self.store.path, "w") as f:
            f.write("{nonsense")
        error = self.assertRaises(TokenError, self.store.list)
        self.assertIn(self.store.path, str(error))
