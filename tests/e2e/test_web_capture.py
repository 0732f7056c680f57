"""
End to end: the console's captured-mail pages (C{/capture/}) in the server's
process, over real HTTP on 127.0.0.1, after smtplib submitted mail to an
outside domain (STARTTLS and AUTH) as two students: each finds her own and
nobody else's, the teacher (an admin) finds both, and deleting works.
"""

import re
import smtplib
from email.message import EmailMessage
from urllib.parse import unquote

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.web import messages
from tests.e2e.test_api import PASSWORDS, APITestCase
from tests.e2e.test_web import Browser


def capturedIDs(body):
    """The ids of the messages a /capture/ page lists, by subject."""
    return {subject: unquote(quoted) for quoted, subject in re.findall(
        r'href="/capture/message\?id=([^"&]+)[^"]*">([^<]*)</a>', body)}


class CapturePagesTests(APITestCase, unittest.TestCase):
    """Two students and a teacher on a lab server in capture mode."""

    lab = "capture = true\n"

    def submit(self, address, to, subject):
        """smtplib: STARTTLS, log in as C{address}, send a text and HTML message to C{to}."""
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = address, to, subject
        message.set_content("exercise 4 from %s\n" % (address,))
        message.add_alternative("<p>exercise 4 <b>in HTML</b></p>"
                                "<img src=\"http://127.0.0.1:9/pixel.png\">", subtype="html")
        with smtplib.SMTP("127.0.0.1", self.port("submission"), timeout=30) as c:
            c.ehlo("student-laptop")
            c.starttls(context=self.tlsContext())
            c.ehlo("student-laptop")
            c.login(address, PASSWORDS[address])
            c.send_message(message)

    @defer.inlineCallbacks
    def login(self, address):
        browser = Browser(self.base())
        status, _, body = yield self.inThread(browser.login, address, PASSWORDS[address])
        self.assertEqual(status, 200)
        self.assertIn('<a href="/capture/">Captured mail</a>', body)
        return browser

    def get(self, browser, path):
        return self.inThread(browser.request, path)

    @defer.inlineCallbacks
    def test_eachSeesOwnAdminSeesAllDelete(self):
        """After smtplib submissions as alice and bob, each sees only her own captured mail, the teacher both; deleting removes one for everybody."""
        yield self.inThread(self.server.users.setAdmin, "teacher@lab.test", True)
        yield self.inThread(self.submit, "alice@lab.test", "friend@example.com", "Lab 4 alice")
        yield self.inThread(self.submit, "bob@lab.test", "pal@example.org", "Lab 4 bob")
        alice = yield self.login("alice@lab.test")
        bob = yield self.login("bob@lab.test")
        teacher = yield self.login("teacher@lab.test")

        status, _, body = yield self.get(alice, "/capture/")
        self.assertEqual(status, 200)
        aliceIDs = capturedIDs(body)
        self.assertEqual(list(aliceIDs), ["Lab 4 alice"])
        self.assertNotIn("bob@lab.test", body)
        row = re.search(r"<tr>\s*<td>.*?</tr>", body, re.S).group(0)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        self.assertEqual((cells[1], cells[2], cells[5], cells[6]),
                         ("alice@lab.test", "friend@example.com", "yes", "alice@lab.test"))
        status, _, body = yield self.get(bob, "/capture/")
        bobIDs = capturedIDs(body)
        self.assertEqual(list(bobIDs), ["Lab 4 bob"])
        self.assertNotIn("alice@lab.test", body)

        # alice's message, as the viewer shows one, with its envelope and sandboxed HTML
        aliceID = aliceIDs["Lab 4 alice"]
        status, _, body = yield self.get(alice, "/capture/message?id=" + aliceID)
        self.assertEqual(status, 200)
        self.assertIn("exercise 4 from alice@lab.test", body)
        self.assertIn("<td>TLSv1", body)
        self.assertIn("(HELO student-laptop)", body)
        part = re.search(r'<iframe class="html-part" sandbox src="([^"]+)"', body).group(1)
        status, headers, html = yield self.get(alice, part.replace("&amp;", "&"))
        self.assertEqual(status, 200)
        self.assertIn("<b>in HTML</b>", html)
        self.assertEqual(headers["Content-Security-Policy"], messages.HTML_PART_CSP)
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")

        # bob cannot open, frame or delete alice's message
        for path in ("/capture/message?id=", "/capture/raw?id=",
                     "/capture/part?section=2&id="):
            status, _, body = yield self.get(bob, path + aliceID)
            self.assertEqual(status, 404, path)
            self.assertNotIn("exercise 4", body)
        token = yield self.inThread(bob.csrf, "/capture/")
        status, _, _ = yield self.inThread(bob.request, "/capture/delete",
                                           {"csrf": token, "id": aliceID})
        self.assertEqual(status, 404)

        # the teacher sees both, and each sender on its own
        status, _, body = yield self.get(teacher, "/capture/")
        self.assertEqual(sorted(capturedIDs(body)), ["Lab 4 alice", "Lab 4 bob"])
        status, _, body = yield self.get(teacher, "/capture/?sender=bob%40lab.test")
        self.assertEqual(list(capturedIDs(body)), ["Lab 4 bob"])

        # a forged delete changes nothing; alice's own delete removes it
        status, _, _ = yield self.inThread(alice.request, "/capture/delete", {"id": aliceID})
        self.assertEqual(status, 403)
        token = yield self.inThread(alice.csrf, "/capture/message?id=" + aliceID)
        status, _, body = yield self.inThread(alice.request, "/capture/delete",
                                              {"csrf": token, "id": aliceID})
        self.assertEqual(status, 200)  # followed the redirect to the list
        self.assertIn("Deleted the captured message Lab 4 alice.", body)
        self.assertEqual(capturedIDs(body), {})
        status, _, _ = yield self.get(alice, "/capture/message?id=" + aliceID)
        self.assertEqual(status, 404)
        status, _, body = yield self.get(teacher, "/capture/")
        self.assertEqual(list(capturedIDs(body)), ["Lab 4 bob"])
        remaining = yield self.server.capture.list()
        self.assertEqual([m.subject for m in remaining], ["Lab 4 bob"])

        # the teacher clears everything
        token = yield self.inThread(teacher.csrf, "/capture/")
        status, _, body = yield self.inThread(teacher.request, "/capture/clear",
                                              {"csrf": token, "all": "1"})
        self.assertIn("Deleted all captured mail: 1 message.", body)
        remaining = yield self.server.capture.list()
        self.assertEqual(remaining, [])


class CaptureOffTests(APITestCase, unittest.TestCase):
    """A lab server without capture mode."""

    @defer.inlineCallbacks
    def test_off(self):
        """The page says capture mode is off and how to turn it on; the header has no link to it."""
        browser = Browser(self.base())
        status, _, home = yield self.inThread(browser.login, "alice@lab.test",
                                              PASSWORDS["alice@lab.test"])
        self.assertNotIn("Captured mail", home)
        status, _, body = yield self.inThread(browser.request, "/capture/")
        self.assertEqual(status, 200)
        self.assertIn("Capture mode is off", body)
        self.assertIn("[lab]\ncapture = true", body)
