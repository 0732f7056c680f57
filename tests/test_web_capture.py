"""
Tests for L{mailstack.web.capturepages}: the console's captured-mail pages
(who sees what, one message as the viewer shows it, its sandboxed HTML part,
deleting and clearing with CSRF-protected forms, the page when capture mode
is off), on twisted.web's DummyRequest over a memory store.
"""

import re
import types
from urllib.parse import quote

from twisted.internet import defer
from twisted.web import resource
from twisted.trial import unittest

from mailstack.capture import CaptureEnvelope, CaptureStore
from mailstack.storage.interfaces import StoreError
from mailstack.storage.memory import MemoryStore
from mailstack.web import app, capturepages, mailread, messages
from mailstack.web.auth import ConsoleAuth
from mailstack.web.capturepages import captureResources, consoleLinks
from mailstack.web.context import WebContext
from mailstack.web.page import renderTemplate
from mailstack.web.viewer import link, messageView
from tests.fakes import FakeReactor
from tests.test_web_messages import MIXED
from tests.test_web_viewer import ALICE, BOB, ROOT, Directory, ViewerMixin

TLS = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"


def plain(subject, sender):
    return ("From: %s\r\nTo: friend@example.com\r\nSubject: %s\r\n\r\nhello\r\n" % (
        sender, subject)).encode("utf-8")


class CaptureMixin(ViewerMixin):
    """
    A console over a memory store whose capture store holds mail alice and
    bob sent outside (alice's newest last), and a request helper (the viewer
    tests').
    """

    capture = True  # [lab] capture
    keeps = True  # the server has a capture store (capture mode or magic recipients)

    def setUp(self):
        self.reactor = FakeReactor()
        self.reactor.advance(1700000000)
        self.store = MemoryStore(self.reactor)
        self.captured = CaptureStore(self.store, self.reactor) if self.keeps else None
        config = types.SimpleNamespace(
            web=None, lab=types.SimpleNamespace(capture=self.capture, magic=()),
            server=types.SimpleNamespace(hostname="mail.lab.test", domains=("lab.test",)))
        self.context = WebContext(config=config, store=self.store, directory=Directory(),
                                  users=None, authPenalty=None, reactor=self.reactor,
                                  capture=self.captured)
        self.auth = ConsoleAuth(self.context)
        self.root = resource.Resource()
        for path, child in captureResources(self.context, self.auth).items():
            self.root.putChild(path[0], child)
        self.cookies = {}
        self.ids = {}

    def keep(self, sender, subject, source=None, recipients=("friend@example.com",),
             tls=TLS, authenticated=True):
        """Capture a message from C{sender}; its id is C{self.ids[subject]}."""
        self.reactor.advance(60)
        envelope = CaptureEnvelope(sender=sender, recipients=tuple(recipients), tls=tls,
                                   authenticated=sender if authenticated else None,
                                   client="127.0.0.1", helo="laptop", queueID="Q" + subject)
        self.ids[subject] = self.successResultOf(self.captured.capture(
            envelope, source if source is not None else plain(subject, sender)))
        return self.ids[subject]

    def keepClass(self):
        self.keep("alice@lab.test", "alice one")
        self.keep("bob@lab.test", "bob one", tls=None)
        self.keep("alice@lab.test", "alice two", recipients=("a@example.com", "b@example.org"))

    def post(self, path, principal=ALICE, csrf=True, **fields):
        if csrf:
            fields["csrf"] = self.session(principal).csrf
        return self.request(path, principal=principal, method=b"POST", **fields)

    def subjects(self, sender=None):
        """The subjects the capture store holds (C{sender}'s), newest first."""
        return [m.subject for m in self.successResultOf(self.captured.list(sender))]

    def listed(self, request):
        """The subjects the list page shows, in its order."""
        return re.findall(r'href="/capture/message\?[^"]*">([^<]*)</a>', request.body.decode())


class ListTests(CaptureMixin, unittest.TestCase):
    """Who sees which captured mail in the list."""

    def setUp(self):
        CaptureMixin.setUp(self)
        self.keepClass()

    def test_studentSeesOwnOnly(self):
        """A student's list holds the mail she sent, newest first, and none of another student's."""
        request = self.request("/capture/", principal=ALICE)
        self.assertEqual(request.responseCode, 200)
        self.assertEqual(self.listed(request), ["alice two", "alice one"])
        self.assertNotIn(b"bob", request.body)
        self.assertEqual(self.listed(self.request("/capture/", principal=BOB)), ["bob one"])

    def test_studentCannotFilter(self):
        """A student's ?sender= for someone else still shows only her own mail."""
        request = self.request("/capture/", principal=ALICE, sender="bob@lab.test")
        self.assertEqual(self.listed(request), ["alice two", "alice one"])

    def test_columns(self):
        """Each row: time (UTC), envelope sender and recipients, subject, size, TLS used, the authenticated user."""
        body = self.request("/capture/", principal=ROOT).body.decode()
        rows = re.findall(r"<tr>\s*(.*?)</tr>", body, re.S)
        cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows[1:]]
        alice, bob = cells[0], cells[1]
        self.assertEqual(alice[0], "2023-11-14 22:16:20 UTC")
        self.assertEqual(alice[1:3], ["alice@lab.test", "a@example.com, b@example.org"])
        self.assertEqual(alice[4:], ["%d Bytes" % (len(plain("alice two", "alice@lab.test")),),
                                     "yes", "alice@lab.test"])
        self.assertEqual((bob[1], bob[5]), ("bob@lab.test", "no"))

    def test_adminSeesEverySender(self):
        """An admin sees every sender's mail, and a sender picker with their counts."""
        request = self.request("/capture/", principal=ROOT)
        self.assertEqual(self.listed(request), ["alice two", "bob one", "alice one"])
        body = request.body.decode()
        self.assertIn(">alice@lab.test (2)</option>", body)
        self.assertIn(">bob@lab.test (1)</option>", body)

    def test_adminFilter(self):
        """An admin's ?sender= shows that sender's mail only (any case)."""
        request = self.request("/capture/", principal=ROOT, sender="Bob@Lab.Test")
        self.assertEqual(self.listed(request), ["bob one"])
        self.assertIn(b'<option value="bob@lab.test" selected>', request.body)

    def test_nullSender(self):
        """Mail from the null sender is listed as <> and picked with ?sender=<>."""
        self.keep("", "bounce", authenticated=False)
        request = self.request("/capture/", principal=ROOT, sender="<>")
        self.assertEqual(self.listed(request), ["bounce"])
        self.assertIn(b"<td>&lt;&gt;</td>", request.body)

    def test_paging(self):
        """The list is paged like a folder: Older and Newer links keep the admin's sender."""
        self.patch(capturepages, "PAGE_SIZE", 1)
        first = self.request("/capture/", principal=ROOT, sender="alice@lab.test")
        self.assertEqual(self.listed(first), ["alice two"])
        self.assertIn(b'href="/capture/?sender=alice%40lab.test&amp;offset=1">Older', first.body)
        second = self.request("/capture/", principal=ROOT, sender="alice@lab.test", offset=1)
        self.assertEqual(self.listed(second), ["alice one"])
        self.assertIn(b"offset=0\">Newer", second.body)
        self.assertNotIn(b">Older<", second.body)

    def test_loginRequired(self):
        """Without a login the list is a redirect to the login form."""
        request = self.request("/capture/", principal=None)
        self.assertEqual((request.responseCode, self.header(request, b"location")),
                         (303, b"/login?next=/capture/"))


class MessageTests(CaptureMixin, unittest.TestCase):
    """One captured message, as the mail viewer shows a message, with its envelope."""

    def setUp(self):
        CaptureMixin.setUp(self)
        self.keep("alice@lab.test", "mixed", MIXED)
        self.keep("bob@lab.test", "bob one")
        self.mixed = self.ids["mixed"]

    def test_message(self):
        """The page shows the envelope, the text part, the HTML part in a sandboxed frame, attachments and the source."""
        request = self.request("/capture/message", id=self.mixed)
        self.assertEqual(request.responseCode, 200)
        body = request.body.decode()
        self.assertIn("<title>Hello ✓ · mailstack</title>", body)
        self.assertIn("<td>friend@example.com</td>", body)
        self.assertIn("<td>%s</td>" % (TLS,), body)
        self.assertIn("<td>Qmixed</td>", body)
        self.assertIn("Café at noon", body)
        where = "id=" + quote(self.mixed, safe="")
        self.assertIn('<iframe class="html-part" sandbox src="/capture/part?section=1.2&amp;%s"'
                      % (where,), body)
        self.assertNotIn("<script>document.title", body.split("<pre class=\"source\">")[0])
        self.assertIn('href="/capture/download?section=2&amp;%s" download>résumé.pdf' % (
            where,), body)
        self.assertIn('href="/capture/raw?download=1&amp;%s"' % (where,), body)
        self.assertIn(self.session(ALICE).csrf, body)

    def test_sameRenderingAsViewer(self):
        """The parts, attachments, headers and source render as the mail viewer renders them."""
        view = self.request("/capture/message", id=self.mixed).body.decode()
        part = view[view.index('<section class="part"'):view.index("<form method=\"post\" "
                                                                   "action=\"/capture/delete\"")]
        stored = self.successResultOf(self.captured.get(self.mixed)).raw
        rendered = renderTemplate("message_body.html", base="/capture/",
                                  where={"id": self.mixed}, link=link,
                                  **messageView(stored)).decode()
        self.assertEqual(part.strip(), rendered.strip())

    def test_htmlPartHeaders(self):
        """The HTML part route serves the part with the viewer's strict CSP, sandbox and nosniff."""
        request = self.request("/capture/part", id=self.mixed, section="1.2")
        self.assertIn(b"<p>Caf\xc3\xa9 <b>at noon</b></p>", request.body)
        for name, value in messages.HTML_PART_HEADERS.items():
            self.assertEqual(self.header(request, name), value)
        self.assertEqual(self.header(request, b"content-security-policy"),
                         messages.HTML_PART_CSP.encode("ascii"))

    def test_htmlPartOnlyHTML(self):
        """The part route serves only text/html parts."""
        request = self.request("/capture/part", id=self.mixed, section="2")
        self.assertEqual(request.responseCode, 404)
        self.assertNotIn(b"%PDF", request.body)

    def test_downloadAndRaw(self):
        """Attachments download as octet streams under safe names; the source is sandboxed text or a .eml."""
        download = self.request("/capture/download", id=self.mixed, section="2")
        self.assertEqual(download.body, b"%PDF-1.4\n")
        self.assertEqual(self.header(download, b"content-type"), b"application/octet-stream")
        raw = self.request("/capture/raw", id=self.mixed)
        self.assertTrue(raw.body.startswith(b"From: =?utf-8?q?Ren=C3=A9e?="))
        self.assertNotIn(b"X-Mailstack-Capture", raw.body)
        self.assertEqual(self.header(raw, b"content-type"), b"text/plain; charset=utf-8")
        saved = self.request("/capture/raw", id=self.mixed, download=1)
        self.assertEqual(self.header(saved, b"content-disposition"),
                         b'attachment; filename="captured-%s.eml"' % (self.mixed.encode(),))

    def test_otherStudentsMessage(self):
        """Another student's message is 'not found' on every route, as a missing one is."""
        for path in ("/capture/message", "/capture/part", "/capture/download", "/capture/raw"):
            request = self.request(path, principal=BOB, id=self.mixed, section="1.2")
            self.assertEqual(request.responseCode, 404, path)
            self.assertNotIn(b"noon", request.body)
            self.assertNotIn(b"Hello", request.body)
            missing = self.request(path, principal=BOB, id="nothing.1", section="1.2")
            self.assertEqual(missing.body, request.body)

    def test_adminReadsAny(self):
        """An admin opens any sender's message."""
        request = self.request("/capture/message", principal=ROOT, id=self.mixed)
        self.assertEqual(request.responseCode, 200)
        self.assertIn(b"Caf\xc3\xa9 at noon", request.body)

    def test_tooLarge(self):
        """A message above the viewer's limit is not shown (413), as in the viewer."""
        self.patch(mailread, "MESSAGE_LIMIT", 100)
        self.assertEqual(self.request("/capture/message", id=self.mixed).responseCode, 413)


class DeleteTests(CaptureMixin, unittest.TestCase):
    """Deleting one message and clearing: each user only what she may, never without the form's token."""

    def setUp(self):
        CaptureMixin.setUp(self)
        self.keepClass()

    def test_deleteOwn(self):
        """A student deletes her own message; the list says so and it is gone."""
        request = self.post("/capture/delete", id=self.ids["alice one"])
        self.assertEqual((request.responseCode, self.header(request, b"location")),
                         (303, b"/capture/"))
        self.assertEqual(self.subjects(), ["alice two", "bob one"])
        self.assertIn(b"Deleted the captured message alice one.", self.request("/capture/").body)

    def test_deleteOthersRefused(self):
        """A student's delete of another student's message is 'not found' and removes nothing."""
        request = self.post("/capture/delete", principal=BOB, id=self.ids["alice one"])
        self.assertEqual(request.responseCode, 404)
        self.assertEqual(self.subjects(), ["alice two", "bob one", "alice one"])

    def test_adminDeletesAny(self):
        """An admin deletes anyone's message and comes back to the sender she was looking at."""
        request = self.post("/capture/delete", principal=ROOT, id=self.ids["bob one"],
                            sender="bob@lab.test")
        self.assertEqual(self.header(request, b"location"), b"/capture/?sender=bob%40lab.test")
        self.assertEqual(self.subjects(), ["alice two", "alice one"])

    def test_forgedPostsChangeNothing(self):
        """Delete and clear without the session's CSRF token (or with a wrong one) are 403 and remove nothing."""
        for path, fields in (("/capture/delete", {"id": self.ids["alice one"]}),
                             ("/capture/clear", {}), ("/capture/clear", {"all": "1"})):
            for principal in (ALICE, ROOT):
                request = self.post(path, principal=principal, csrf=False, **fields)
                self.assertEqual(request.responseCode, 403)
                request = self.request(path, principal=principal, method=b"POST",
                                       **dict(fields, csrf="guess"))
                self.assertEqual(request.responseCode, 403)
        request = self.request("/capture/clear", principal=None, method=b"POST", all="1")
        self.assertEqual(request.responseCode, 403)
        self.assertEqual(self.subjects(), ["alice two", "bob one", "alice one"])

    def test_deleteIsPostOnly(self):
        """A GET of the delete or clear address changes nothing."""
        self.assertEqual(self.request("/capture/delete", id=self.ids["alice one"]).responseCode,
                         405)
        self.assertEqual(self.request("/capture/clear", principal=ROOT, all="1").responseCode, 405)
        self.assertEqual(len(self.subjects()), 3)

    def test_studentClearsOwn(self):
        """A student's clear removes her own mail only, whatever sender the form names."""
        request = self.post("/capture/clear", principal=ALICE, sender="bob@lab.test", all="1")
        self.assertEqual(request.responseCode, 303)
        self.assertEqual(self.subjects(), ["bob one"])
        self.assertIn(b"Deleted your captured mail: 2 messages.", self.request("/capture/").body)

    def test_adminClearsSender(self):
        """An admin clears one sender's mail."""
        self.post("/capture/clear", principal=ROOT, sender="alice@lab.test")
        self.assertEqual(self.subjects(), ["bob one"])

    def test_adminClearsAll(self):
        """An admin clears every sender's mail with all=1; without a sender or all, nothing."""
        request = self.post("/capture/clear", principal=ROOT)
        self.assertEqual(request.responseCode, 400)
        self.assertEqual(len(self.subjects()), 3)
        self.post("/capture/clear", principal=ROOT, all="1")
        self.assertEqual(self.subjects(), [])

    def test_clearForms(self):
        """A student's page offers to clear her own mail; an admin's, the sender shown and all."""
        student = self.request("/capture/").body.decode()
        self.assertIn("Delete all my captured mail", student)
        self.assertNotIn('name="all"', student)
        admin = self.request("/capture/", principal=ROOT, sender="bob@lab.test").body.decode()
        self.assertIn('<input type="hidden" name="sender" value="bob@lab.test">', admin)
        self.assertIn('<input type="hidden" name="all" value="1">', admin)

    def test_storeFailure(self):
        """A store that fails to remove leaves a line saying nothing was deleted."""
        self.patch(self.captured, "clear", lambda sender=None: defer.fail(StoreError("disk full")))
        request = self.post("/capture/clear")
        self.assertEqual(request.responseCode, 303)
        self.assertIn(b"Nothing was deleted: disk full", self.request("/capture/").body)


class OffTests(CaptureMixin, unittest.TestCase):
    """Capture mode off: the page says so and how to turn it on."""

    capture = False
    keeps = False

    def test_off(self):
        """Without a capture store the page says capture mode is off and shows the [lab] line that turns it on."""
        for principal in (ALICE, ROOT):
            request = self.request("/capture/", principal=principal)
            self.assertEqual(request.responseCode, 200)
            body = request.body.decode()
            self.assertIn("Capture mode is off", body)
            self.assertIn("[lab]\ncapture = true", body)
            self.assertNotIn("<table", body)

    def test_offMessageAndForms(self):
        """Message routes are 404 and the clear form does nothing when there is no capture store."""
        self.assertEqual(self.request("/capture/message", id="x.1").responseCode, 404)
        self.assertEqual(self.post("/capture/clear").responseCode, 404)
        self.assertEqual(self.post("/capture/delete", id="x.1").responseCode, 404)

    def test_noLink(self):
        """The header has no captured-mail link when the server keeps none."""
        self.assertEqual(consoleLinks(self.context), [])


class MagicOnlyTests(CaptureMixin, unittest.TestCase):
    """Capture mode off, magic recipients on: their mail is shown, and the mode explained."""

    capture = False

    def test_nothingCaptured(self):
        """With nothing captured the page says capture mode is off and how to turn it on."""
        body = self.request("/capture/").body.decode()
        self.assertIn("Capture mode is off", body)
        self.assertIn("capture = true", body)

    def test_magicMailShown(self):
        """What magic recipients accepted is listed, with a line saying capture mode is off."""
        self.keep("alice@lab.test", "slow one", recipients=("slow@example.com",))
        body = self.request("/capture/").body.decode()
        self.assertIn("slow one", body)
        self.assertIn("capture mode is off: only what the lab's magic recipients accepted", body)
        self.assertNotIn("<h2 id=\"capture-off\">", body)


class NavigationTests(CaptureMixin, unittest.TestCase):
    """The console's header and mount."""

    def buildRoot(self):
        """The console's root with the capture view's line of the mount table."""
        [line] = [m for m in app.MOUNTS if m[0] == "mailstack.web.capturepages"]
        return app.buildRoot(self.context, mounts=(line,))

    def test_mounted(self):
        """buildRoot mounts /capture/ and puts 'Captured mail' in the header when the server keeps captured mail."""
        root = self.buildRoot()
        self.assertIn(b"capture", root.children)
        self.assertIn(("Captured mail", "/capture/", False), self.context.navigation)

    def test_notInHeaderWhenOff(self):
        """Without a capture store the header has no 'Captured mail' link."""
        self.context.capture = None
        self.buildRoot()
        self.assertNotIn("Captured mail", [label for label, _, _ in self.context.navigation])
