"""
End to end: the API's live sessions (the transcript hub) over real HTTP: a
student sees her own sessions with TLS, commands (secrets as C{***}) and the
envelopes they sent; another student's session is a 404 like one that does
not exist.
"""

from twisted.internet import defer
from twisted.trial import unittest

from tests.e2e.test_api import APITestCase


class SessionTests(APITestCase, unittest.TestCase):
    """Sessions and transcripts through the API."""

    @defer.inlineCallbacks
    def test_sendingSession(self):
        """The STARTTLS session that sent a message shows the commands (AUTH's secret as ***) and its envelope."""
        yield self.inThread(self.submit, "alice@lab.test", "bob@lab.test", "Lab 3: headers")
        yield self.inThread(self.submit, "alice@lab.test", "bob@lab.test", "Lab 3: plain",
                            False, "plain-auth")
        grader = self.client("alice@lab.test")
        status, _, sessions = yield self.call(
            grader, "GET", "/api/v1/accounts/alice@lab.test/sessions")
        self.assertEqual(sorted(s["tls"] for s in sessions["sessions"]), ["none", "starttls"])
        [withTLS] = [s for s in sessions["sessions"] if s["tls"] == "starttls"]
        status, _, session = yield self.call(grader, "GET", "/api/v1/sessions/" + withTLS["id"])
        self.assertEqual((status, session["protocol"], session["users"]),
                         (200, "submission", ["alice@lab.test"]))
        commands = [c for c in session["commands"] if not c.startswith("mail FROM:")]
        self.assertEqual(commands, ["ehlo student-laptop", "STARTTLS", "ehlo student-laptop",
                                    "AUTH PLAIN ***", "rcpt TO:<bob@lab.test>", "data", "QUIT"])
        self.assertEqual([s["subject"] for s in session["sent"]], ["Lab 3: headers"])
        self.assertTrue(any(l["kind"] == "S" and l["text"].startswith("235")
                            for l in session["transcript"]))
        self.assertNoSecrets()

    @defer.inlineCallbacks
    def test_otherStudentsSession(self):
        """bob's live session is 404 to alice, exactly as a session id that does not exist."""
        yield self.inThread(self.submit, "bob@lab.test", "alice@lab.test", "from bob")
        bob, alice = self.client("bob@lab.test"), self.client("alice@lab.test")
        status, _, mine = yield self.call(bob, "GET", "/api/v1/accounts/bob@lab.test/sessions")
        [session] = mine["sessions"]
        status, _, theirs = yield self.call(bob, "GET", "/api/v1/sessions/" + session["id"])
        self.assertEqual(status, 200)
        status, _, refused = yield self.call(alice, "GET", "/api/v1/sessions/" + session["id"])
        status2, _, missing = yield self.call(alice, "GET", "/api/v1/sessions/nope")
        self.assertEqual((status, status2), (404, 404))
        self.assertEqual(refused["error"]["message"].replace(session["id"], "X"),
                         missing["error"]["message"].replace("nope", "X"))
        status, _, listed = yield self.call(alice, "GET",
                                            "/api/v1/accounts/alice@lab.test/sessions")
        self.assertNotIn(session["id"], [s["id"] for s in listed["sessions"]])
