"""
Tests for L{mailstack.web.viewer} (and L{mailstack.web.mailread},
L{mailstack.web.events}): the mail pages, the HTML part's headers, downloads,
the test-message form and the live transcript stream, on twisted.web's
DummyRequest over a memory store.
"""

import json
import re
import types

from twisted.internet import defer
from twisted.web import resource
from twisted.web.test.requesthelper import DummyRequest
from twisted.trial import unittest

from mailstack.auth.passwords import User
from mailstack.storage.memory import MemoryStore
from mailstack.transcripthub import TranscriptHub
from mailstack.web import messages
from mailstack.web.auth import COOKIE, ConsoleAuth, Principal
from mailstack.web.context import WebContext
from mailstack.web.events import EventStream, formatEvent, lastEventID
from mailstack.web.viewer import viewerResources
from tests.fakes import FakeReactor
from tests.test_web_messages import MIXED

ALICE = Principal("alice@lab.test")
BOB = Principal("bob@lab.test")
ROOT = Principal("root@lab.test", admin=True)


class Directory:
    """An IUserDirectory of three accounts on lab.test, answering at once."""

    accounts = ("alice@lab.test", "bob@lab.test", "root@lab.test")

    def normalize(self, name):
        name = name.strip().lower()
        return name if "@" in name else name + "@lab.test"

    def lookup(self, address):
        if address in self.accounts:
            return defer.succeed(User(address=address, scheme="PLAIN", secret="x"))
        return defer.succeed(None)


class ViewerMixin:
    """A console over a memory store with mail for Alice, and a request helper."""

    def setUp(self):
        self.reactor = FakeReactor()
        self.reactor.advance(1700000000)
        self.store = MemoryStore(self.reactor)
        self.hub = TranscriptHub(self.reactor)
        config = types.SimpleNamespace(web=None, server=types.SimpleNamespace(
            hostname="mail.lab.test", domains=("lab.test",)))
        self.context = WebContext(config=config, store=self.store, directory=Directory(),
                                  users=None, authPenalty=None, reactor=self.reactor,
                                  transcripts=self.hub)
        self.auth = ConsoleAuth(self.context)
        self.root = resource.Resource()
        for path, child in viewerResources(self.context, self.auth).items():
            self.root.putChild(path[0], child)
        self.cookies = {}
        for account in ("alice@lab.test", "bob@lab.test"):
            self.successResultOf(self.store.account(account).createDefaultMailboxes([("Sent", "\\Sent")]))
        self.successResultOf(self.store.deliver(["alice@lab.test"], MIXED))
        self.successResultOf(self.store.deliver(
            ["alice@lab.test"], b"From: bob@lab.test\r\nSubject: second\r\n\r\nhi\r\n"))

    def session(self, principal):
        if principal not in self.cookies:
            self.cookies[principal] = self.auth.sessions.create(principal)
        return self.cookies[principal]

    def request(self, path, principal=ALICE, method=b"GET", **args):
        """
        Render C{path} (C{/mail/folder}) with C{args} as the viewer.

        @return: the finished DummyRequest (C{body} holds what was written).
        """
        segments = path.lstrip("/").encode("utf-8").split(b"/")
        request = DummyRequest(segments)
        request.method = method
        request.uri = path.encode("utf-8")
        request.args = {k.encode(): [str(v).encode("utf-8")] for k, v in args.items()}
        if principal is not None:
            request.requestHeaders.addRawHeader(
                b"cookie", COOKIE + b"=" + self.session(principal).id.encode("ascii"))
        child = resource.getChildForRequest(self.root, request)
        finished = request.notifyFinish()
        result = child.render(request)
        if isinstance(result, bytes):
            request.write(result)
            request.finish()
        self.successResultOf(finished) if request.finished else None
        request.body = b"".join(request.written)
        return request

    def header(self, request, name):
        return request.responseHeaders.getRawHeaders(name, [None])[0]

    def uid(self, subject=None):
        mailbox = self.successResultOf(self.store.account("alice@lab.test").openMailbox("INBOX"))
        return mailbox.messages()[0 if subject is None else 1].uid


class MailPageTests(ViewerMixin, unittest.TestCase):
    """
    The folder list, the message list and one message.
    """

    def test_folders(self):
        """/mail/ lists the account's folders with their counts."""
        request = self.request("/mail/")
        self.assertEqual(request.responseCode, 200)
        body = request.body.decode()
        self.assertIn("alice@lab.test", body)
        row = re.search(r"INBOX</a>.*?</tr>", body, re.S).group(0)
        self.assertEqual(re.findall(r"<td>(\d+)</td>", row), ["2", "2"])
        self.assertIn("Sent", body)

    def test_readingChangesNothing(self):
        """Listing and reading a message leave it unread and \\Recent for IMAP."""
        self.request("/mail/")
        self.request("/mail/folder", mailbox="INBOX")
        self.request("/mail/message", mailbox="INBOX", uid=self.uid())
        mailbox = self.successResultOf(self.store.account("alice@lab.test").openMailbox("INBOX"))
        self.assertEqual([i.flags for i in mailbox.messages()], [frozenset(), frozenset()])
        changes = self.successResultOf(mailbox.sync(claimRecent=True))
        self.assertEqual(len(changes.recent), 2)

    def test_messageList(self):
        """The folder page shows each message's From, To, Subject and Date, newest first."""
        body = self.request("/mail/folder", mailbox="INBOX").body.decode()
        self.assertIn("Renée &lt;renee@lab.test&gt;", body)
        self.assertIn("Hello ✓", body)
        self.assertIn("Tue, 14 Nov 2023 22:13:20 +0000", body)
        self.assertLess(body.index("second"), body.index("Hello ✓"))

    def test_message(self):
        """A message shows its text, an HTML frame that is sandboxed, attachments and source."""
        body = self.request("/mail/message", mailbox="INBOX", uid=self.uid()).body.decode()
        self.assertIn("Café at noon", body)
        frame = re.search(r"<iframe[^>]*>", body).group(0)
        self.assertIn(" sandbox ", frame)
        self.assertNotIn("allow-", frame)
        self.assertIn('src="/mail/part?section=1.2&amp;mailbox=INBOX&amp;uid=', frame)
        self.assertNotIn("<script>document.title", body)
        self.assertIn("&lt;script&gt;document.title", body)  # in the raw source, escaped
        self.assertIn("résumé.pdf", body)
        self.assertIn("part-3.png", body)

    def test_unknownMessage(self):
        """A UID that is not there, or no UID, is a 404."""
        self.assertEqual(self.request("/mail/message", mailbox="INBOX", uid=999).responseCode, 404)
        self.assertEqual(self.request("/mail/message", mailbox="INBOX", uid="x").responseCode, 404)
        self.assertEqual(self.request("/mail/folder", mailbox="Nope").responseCode, 404)

    def test_otherAccountRefused(self):
        """A student asking for another account's mail gets 404 and nothing of it."""
        for path in ("/mail/", "/mail/folder", "/mail/message", "/mail/raw"):
            request = self.request(path, principal=BOB, account="alice@lab.test",
                                   mailbox="INBOX", uid=self.uid())
            self.assertEqual(request.responseCode, 404, path)
            self.assertNotIn(b"Hello", request.body)

    def test_adminSeesOtherAccount(self):
        """An admin reads another account's mail; an unknown account is a 404."""
        body = self.request("/mail/folder", principal=ROOT, account="alice@lab.test",
                            mailbox="INBOX").body.decode()
        self.assertIn("Hello ✓", body)
        self.assertIn("account=alice%40lab.test", body)
        self.assertEqual(self.request("/mail/", principal=ROOT,
                                      account="nobody@lab.test").responseCode, 404)

    def test_loginRequired(self):
        """Without a login the pages redirect to it."""
        request = self.request("/mail/", principal=None)
        self.assertEqual(request.responseCode, 303)
        self.assertTrue(self.header(request, b"location").startswith(b"/login?next="))


class PartTests(ViewerMixin, unittest.TestCase):
    """
    The HTML part route, downloads and the raw source.
    """

    def test_htmlPart(self):
        """The HTML part is served as it is, with the strict CSP and nosniff."""
        request = self.request("/mail/part", mailbox="INBOX", uid=self.uid(), section="1.2")
        self.assertIn(b"<p>Caf\xc3\xa9 <b>at noon</b></p>", request.body)
        for name, value in messages.HTML_PART_HEADERS.items():
            self.assertEqual(self.header(request, name), value)
        self.assertNotIn(b"frame-ancestors 'none'", self.header(request, b"content-security-policy"))

    def test_htmlPartOnlyHTML(self):
        """The part route serves only text/html parts (a PDF is no web page)."""
        request = self.request("/mail/part", mailbox="INBOX", uid=self.uid(), section="2")
        self.assertEqual(request.responseCode, 404)

    def test_download(self):
        """An attachment downloads as an octet stream under a safe name."""
        request = self.request("/mail/download", mailbox="INBOX", uid=self.uid(), section="2")
        self.assertEqual(request.body, b"%PDF-1.4\n")
        self.assertEqual(self.header(request, b"content-type"), b"application/octet-stream")
        self.assertEqual(self.header(request, b"x-content-type-options"), b"nosniff")
        self.assertEqual(self.header(request, b"content-disposition"),
                         b"attachment; filename=\"resume.pdf\"; "
                         b"filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")

    def test_raw(self):
        """The source is plain text that may not run as anything; ?download=1 saves it."""
        request = self.request("/mail/raw", mailbox="INBOX", uid=self.uid())
        self.assertTrue(request.body.startswith(b"From: =?utf-8?q?Ren=C3=A9e?="))
        self.assertEqual(self.header(request, b"content-type"), b"text/plain; charset=utf-8")
        self.assertIn(b"sandbox", self.header(request, b"content-security-policy"))
        saved = self.request("/mail/raw", mailbox="INBOX", uid=self.uid(), download=1)
        self.assertTrue(self.header(saved, b"content-disposition").startswith(
            b'attachment; filename="message-'))


class SendTests(ViewerMixin, unittest.TestCase):
    """
    The test-message form.
    """

    def post(self, principal=ALICE, csrf=True, **fields):
        if csrf:
            fields["csrf"] = self.session(principal).csrf
        return self.request("/mail/send", principal=principal, method=b"POST", **fields)

    def inbox(self, address):
        mailbox = self.successResultOf(self.store.account(address).openMailbox("INBOX"))
        self.successResultOf(mailbox.sync(claimRecent=False))
        return mailbox

    def test_send(self):
        """A message goes to a local account, from the signed-in user, and the form says so."""
        request = self.post(to="Bob <BOB@lab.test>", subject="Lab 3", body="hello\nthere")
        self.assertEqual(request.responseCode, 303)
        self.assertEqual(self.header(request, b"location"), b"/mail/send?sent=bob%40lab.test")
        mailbox = self.inbox("bob@lab.test")
        [info] = mailbox.messages()
        with mailbox.openMessage(info.uid) as f:
            source = f.read()
        self.assertTrue(source.startswith(b"Return-Path: <alice@lab.test>\r\nReceived: from web console"))
        message = messages.parseMessage(source)
        self.assertEqual((message["From"], message["To"], message["Subject"]),
                         ("alice@lab.test", "bob@lab.test", "Lab 3"))
        self.assertEqual(messages.partText(message).replace("\r\n", "\n"), "hello\nthere\n")

    def test_forgedPostRefused(self):
        """A post without the session's CSRF token is refused and nothing is sent."""
        request = self.post(csrf=False, to="bob@lab.test", subject="forged", body="x")
        self.assertEqual(request.responseCode, 403)
        request = self.request("/mail/send", method=b"POST", to="bob@lab.test", csrf="guess")
        self.assertEqual(request.responseCode, 403)
        self.assertEqual(self.inbox("bob@lab.test").messages(), [])

    def test_unknownRecipient(self):
        """A recipient that is no local account is refused by name; nothing is sent."""
        request = self.post(to="bob@lab.test, someone@example.org", subject="x", body="y")
        self.assertEqual(request.responseCode, 400)
        self.assertIn(b"someone@example.org is not an account on this server", request.body)
        self.assertEqual(self.inbox("bob@lab.test").messages(), [])

    def test_noRecipient(self):
        """An empty To is refused."""
        self.assertEqual(self.post(to=" ", subject="x", body="y").responseCode, 400)

    def test_subjectCannotAddHeaders(self):
        """Line breaks in the subject cannot start a header of their own."""
        self.post(to="bob@lab.test", subject="hi\r\nBcc: carol@lab.test", body="y")
        [info] = self.inbox("bob@lab.test").messages()
        with self.inbox("bob@lab.test").openMessage(info.uid) as f:
            message = messages.parseMessage(f.read())
        self.assertIsNone(message["Bcc"])
        self.assertEqual(message["Subject"], "hi Bcc: carol@lab.test")


class TranscriptPageTests(ViewerMixin, unittest.TestCase):
    """
    The transcript pages and their event stream.
    """

    def aliceSession(self):
        session = self.hub.openSession("smtp", "127.0.0.1:5000", "127.0.0.1", "127.0.0.1:25")
        session.record("S", "220 ready")
        session.record("C", "AUTH PLAIN ***")
        session.loggedIn("alice@lab.test")
        return session

    def events(self, request):
        """The events written so far: C{[(id, name, data)]}."""
        found = []
        for block in b"".join(request.written).decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines()
                          if ": " in line and not line.startswith(":"))
            if "event" in fields:
                found.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
        return found

    def stream(self, principal=ALICE, lastEventId=None, **args):
        segments = [b"transcripts", b"events"]
        request = DummyRequest(segments)
        request.uri = b"/transcripts/events"
        request.args = {k.encode(): [str(v).encode()] for k, v in args.items()}
        if lastEventId is not None:
            request.requestHeaders.addRawHeader(b"last-event-id", str(lastEventId).encode())
        request.requestHeaders.addRawHeader(
            b"cookie", COOKIE + b"=" + self.session(principal).id.encode("ascii"))
        child = resource.getChildForRequest(self.root, request)
        result = child.render(request)
        if isinstance(result, bytes):
            request.write(result)
            request.finish()
        return request

    def test_listOwnSessions(self):
        """The list shows her sessions only; an admin sees every one."""
        self.aliceSession()
        other = self.hub.openSession("pop3", "127.0.0.1:6000", "127.0.0.1", "127.0.0.1:110")
        other.loggedIn("bob@lab.test")
        body = self.request("/transcripts/").body.decode()
        self.assertIn("#1", body)
        self.assertNotIn("#2", body)
        admin = self.request("/transcripts/", principal=ROOT).body.decode()
        self.assertIn("#2", admin)

    def test_sessionPage(self):
        """A session page shows its lines; another student's session is a 404."""
        session = self.aliceSession()
        body = self.request("/transcripts/session", id=session.id).body.decode()
        self.assertIn("AUTH PLAIN ***", body)
        self.assertEqual(self.request("/transcripts/session", principal=BOB,
                                      id=session.id).responseCode, 404)

    def test_streamLive(self):
        """The stream sends her session when she logs in, then each line, with increasing ids."""
        request = self.stream()
        self.assertEqual(self.header(request, b"content-type"), b"text/event-stream; charset=utf-8")
        session = self.aliceSession()
        session.record("S", "235 ok")
        events = self.events(request)
        self.assertEqual([e[1] for e in events], ["shown", "line"])
        self.assertEqual([l["text"] for l in events[0][2]["lines"]],
                         ["220 ready", "AUTH PLAIN ***"])
        self.assertEqual(events[1][2]["text"], "235 ok")
        ids = [int(e[0]) for e in events]
        self.assertEqual(ids, sorted(ids))
        self.assertFalse(request.finished)

    def test_streamShowsNothingOfOthers(self):
        """Bob's stream hears nothing of Alice's session."""
        request = self.stream(principal=BOB)
        self.aliceSession().record("C", "QUIT")
        self.assertEqual(self.events(request), [])

    def test_resume(self):
        """Reconnecting with Last-Event-ID sends only what came after it."""
        session = self.aliceSession()
        session.record("C", "one")
        last = self.hub.lastSeq
        session.record("C", "two")
        events = self.events(self.stream(lastEventId=last))
        self.assertEqual([(e[1], e[2].get("text")) for e in events], [("line", "two")])

    def test_singleSessionEnds(self):
        """A one-session stream closes after the end; asked again, it answers 204."""
        session = self.aliceSession()
        request = self.stream(session=session.id)
        session.close("bye")
        self.assertEqual(self.events(request)[-1][1:], ("ended", {"session": session.id,
                                                                 "reason": "bye"}))
        self.assertTrue(request.finished)
        self.assertEqual(self.hub.watchers, 0)
        again = self.stream(session=session.id, lastEventId=session.endSeq)
        self.assertEqual(again.responseCode, 204)

    def test_off(self):
        """Without a hub ([lab] transcripts off) the page says so and there is no stream."""
        self.context.transcripts = None
        self.assertIn(b"Live transcripts are off", self.request("/transcripts/").body)
        self.assertEqual(self.stream().responseCode, 404)
        self.assertEqual(self.request("/transcripts/session", id="1").responseCode, 404)

    def test_headRefused(self):
        """A HEAD request opens no stream (nothing would ever end it)."""
        request = DummyRequest([b"transcripts", b"events"])
        request.method = b"HEAD"
        child = resource.getChildForRequest(self.root, request)
        child.render(request)
        self.assertEqual((request.responseCode, self.hub.watchers), (405, 0))

    def test_otherSessionStreamRefused(self):
        """A stream of another student's session is refused."""
        session = self.aliceSession()
        self.assertEqual(self.stream(principal=BOB, session=session.id).responseCode, 404)

    def test_heartbeatAndLogout(self):
        """A comment every heartbeat; after logout the stream closes and stops watching."""
        request = self.stream()
        self.reactor.advance(15)
        self.assertTrue(b"".join(request.written).endswith(b": heartbeat\n\n"))
        self.auth.sessions.remove(self.session(ALICE).id)
        self.reactor.advance(15)
        self.assertTrue(request.finished)
        self.assertEqual(self.hub.watchers, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_clientLeaves(self):
        """When the browser goes away the watch ends."""
        request = self.stream()
        self.assertEqual(self.hub.watchers, 1)
        request.processingFailed(Exception("gone"))
        self.assertEqual(self.hub.watchers, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class EventFormatTests(unittest.TestCase):
    """
    L{formatEvent} and L{lastEventID}.
    """

    def test_format(self):
        """An event is id, event and one data line of JSON, ended by a blank line."""
        self.assertEqual(formatEvent("line", {"text": "a\nb"}, 7),
                         b'id: 7\nevent: line\ndata: {"text":"a\\nb"}\n\n')

    def test_lastEventID(self):
        """The header wins over the query; junk is 0."""
        request = DummyRequest([])
        self.assertEqual(lastEventID(request), 0)
        request.args = {b"lastEventId": [b"5"]}
        self.assertEqual(lastEventID(request), 5)
        request.requestHeaders.addRawHeader(b"last-event-id", b"9")
        self.assertEqual(lastEventID(request), 9)
        request.requestHeaders.setRawHeaders(b"last-event-id", [b"x"])
        request.args = {}
        self.assertEqual(lastEventID(request), 0)

    def test_closedStreamSendsNothing(self):
        """Nothing is written once the stream is closed, and onClose runs once."""
        closed = []
        request = DummyRequest([])
        stream = EventStream(request, FakeReactor(), onClose=lambda: closed.append(1))
        stream.start()
        stream.close()
        stream.close()
        stream.send("line", {})
        self.assertEqual((b"".join(request.written), closed), (b"retry: 3000\n\n", [1]))
