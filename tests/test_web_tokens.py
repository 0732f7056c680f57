"""
Tests for the console's API token page (L{mailstack.web.tokenpages}) on
DummyRequest: a logged-in user makes a token (shown once, CSRF-protected),
sees it listed without its secret, and revokes it.
"""

import os
import re

from twisted.trial import unittest

from mailstack.web.tokens import TokenStore, parseToken
from tests.test_web_console import ConsoleMixin


class TokenPageTests(ConsoleMixin, unittest.TestCase):
    """/tokens."""

    def setUp(self):
        ConsoleMixin.setUp(self)
        self.context.tokens = TokenStore(os.path.join(self.mktemp(), "tokens.json"))
        self.login("alice")

    def test_makeShownOnce(self):
        """The form makes a token shown on its answer only; the list shows its name, never the token."""
        made = self.body(self.post("/tokens", action="create", name="grader"))
        token = re.search(r'<code class="token">([^<]+)</code>', made).group(1)
        self.assertEqual(self.context.tokens.verify(token).address, "alice@lab.test")
        listed = self.body(self.request("/tokens"))
        self.assertIn("grader", listed)
        self.assertIn(parseToken(token)[0], listed)
        self.assertNotIn(token, listed)

    def test_needsCSRF(self):
        """A form without the session's CSRF token makes nothing."""
        request = self.request("/tokens", b"POST", action="create", name="x")
        self.assertEqual(request.responseCode, 403)
        self.assertEqual(self.context.tokens.list(), [])

    def test_revokeOwnOnly(self):
        """The revoke button ends the user's own token; another user's id is refused."""
        mine, _ = self.context.tokens.create("alice@lab.test", "mine")
        theirs, _ = self.context.tokens.create("bob@lab.test", "theirs")
        answer = self.post("/tokens", action="revoke", id=theirs.id)
        self.assertEqual(answer.responseCode, 400)
        self.assertIn("no token %s" % (theirs.id,), self.body(answer))
        self.assertIn("Revoked token %s (mine)." % (mine.id,),
                      self.body(self.post("/tokens", action="revoke", id=mine.id)))
        self.assertEqual([t.id for t in self.context.tokens.list()], [theirs.id])

    def test_inNavigation(self):
        """Every signed-in user's header links to the token page."""
        self.assertIn('href="/tokens"', self.body(self.request("/")))
