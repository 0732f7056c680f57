"""
End-to-end IMAP: the real service from a config on loopback, driven by the
standard library's imaplib (and raw sockets where imaplib hides the wire),
with real TLS (STARTTLS and implicit) and a real Maildir.
"""

import imaplib
import poplib
import re
import smtplib
import socket

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.helpers import E2EMixin, listenerTOML
from tests.test_imap_listing import deadline

LISTENERS = (
    listenerTOML("imap", tls="starttls", name="imap", allow_plaintext_auth=True)
    + listenerTOML("imap", tls="implicit", name="imaps")
    + listenerTOML("imap", tls="starttls", name="imapprod")
    + listenerTOML("imap", tls="none", name="imapplain", allow_plaintext_auth=True,
                   disabled=["IDLE", "MOVE"])
    + listenerTOML("smtp", name="smtp")
    + listenerTOML("pop3", name="pop3", allow_plaintext_auth=True))

MESSAGE = (b"From: Alice <alice@lab.test>\r\nTo: demo@lab.test\r\nSubject: Hello\r\n"
           b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nHi,\r\nthis is the body.\r\n")

MULTIPART = (b"From: alice@lab.test\r\nTo: demo@lab.test\r\nSubject: parts\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
             b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n"
             b"--XX\r\nContent-Type: application/octet-stream; name=a.bin\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--XX--\r\n")


class IMAPTestCase(E2EMixin, unittest.TestCase):
    limits = "literal_size = 100000\n"
    listeners = LISTENERS

    def client(self, name="imap"):
        return imaplib.IMAP4("127.0.0.1", self.port(name), timeout=10)

    def loggedIn(self, name="imap"):
        c = self.client(name)
        c.login("demo@lab.test", "demo")
        return c

    def raw(self, name="imap"):
        s = socket.create_connection(("127.0.0.1", self.port(name)), timeout=10)
        f = s.makefile("rb")
        greeting = f.readline()
        self.assertTrue(greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 "), greeting)
        return s, f


def readUntilTagged(f, tag):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise AssertionError("connection closed; got %r" % (lines,))
        lines.append(line)
        if line.startswith(tag + b" "):
            return lines


def readReply(f, tag):
    """
    One command's reply read from C{f}: its lines up to the tagged one, each
    with the literals it announces read into it (a FETCH with a body is one
    item).
    """
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise AssertionError("connection closed; got %r" % (lines,))
        while line.endswith(b"}\r\n"):  # a literal: its octets, then the line's rest
            size = int(line[line.rindex(b"{") + 1:-3])
            line += f.read(size) + f.readline()
        lines.append(line)
        if line.startswith(tag + b" "):
            return lines


class LoginTests(IMAPTestCase):
    """
    Logging in on each kind of listener.
    """

    @defer.inlineCallbacks
    def test_plainLogin(self):
        """The lab listener: LOGIN without TLS, CAPABILITY, LOGOUT."""
        def session():
            c = self.client()
            caps = c.capabilities
            typ, data = c.login("demo@lab.test", "demo")
            c.logout()
            return caps, typ
        caps, typ = yield self.inThread(session)
        self.assertIn("STARTTLS", caps)
        self.assertIn("AUTH=PLAIN", caps)
        self.assertEqual(typ, "OK")

    @defer.inlineCallbacks
    def test_starttls(self):
        """STARTTLS with the generated certificate, then LOGIN; capabilities change."""
        def session():
            c = self.client("imapprod")
            before = c.capabilities
            c.starttls(ssl_context=self.tlsContext())
            after = c.capabilities
            typ, _ = c.login("demo@lab.test", "demo")
            c.logout()
            return before, after, typ
        before, after, typ = yield self.inThread(session)
        self.assertIn("LOGINDISABLED", before)
        self.assertNotIn("LOGINDISABLED", after)
        self.assertNotIn("STARTTLS", after)
        self.assertIn("AUTH=PLAIN", after)
        self.assertEqual(typ, "OK")

    @defer.inlineCallbacks
    def test_implicitTLS(self):
        """IMAP4_SSL on the implicit-TLS listener."""
        def session():
            c = imaplib.IMAP4_SSL("127.0.0.1", self.port("imaps"),
                                  ssl_context=self.tlsContext(), timeout=10)
            caps = c.capabilities
            c.login("demo@lab.test", "demo")
            typ, data = c.select("INBOX")
            c.logout()
            return caps, typ
        caps, typ = yield self.inThread(session)
        self.assertNotIn("STARTTLS", caps)
        self.assertEqual(typ, "OK")

    @defer.inlineCallbacks
    def test_productionRefusesPlaintext(self):
        """Production listener: LOGINDISABLED and NO [PRIVACYREQUIRED] before TLS."""
        def session():
            c = self.client("imapprod")
            caps = c.capabilities
            try:
                c.login("demo@lab.test", "demo")
            except imaplib.IMAP4.error as e:
                error = str(e)
            c.logout()
            return caps, error
        caps, error = yield self.inThread(session)
        self.assertIn("LOGINDISABLED", caps)
        self.assertNotIn("AUTH=PLAIN", caps)
        self.assertIn("PRIVACYREQUIRED", error)

    @defer.inlineCallbacks
    def test_badPassword(self):
        """A wrong password: NO [AUTHENTICATIONFAILED]."""
        def session():
            c = self.client()
            try:
                c.login("demo@lab.test", "wrong")
            except imaplib.IMAP4.error as e:
                return str(e)
        self.assertIn("AUTHENTICATIONFAILED", (yield self.inThread(session)))

    @defer.inlineCallbacks
    def test_authenticatePlain(self):
        """AUTHENTICATE PLAIN through imaplib's continuation handling."""
        def session():
            c = self.client()
            typ, _ = c.authenticate("PLAIN", lambda _: b"\0demo@lab.test\0demo")
            c.logout()
            return typ
        self.assertEqual((yield self.inThread(session)), "OK")

    @defer.inlineCallbacks
    def test_startTLSInjection(self):
        """A command pipelined after STARTTLS in plaintext is never run."""
        def session():
            s, f = self.raw("imapprod")
            s.sendall(b"a STARTTLS\r\nb LOGIN demo@lab.test demo\r\n")
            first = f.readline()
            tls = self.tlsContext().wrap_socket(s, server_hostname="localhost")
            tf = tls.makefile("rb")
            tls.sendall(b"c NOOP\r\n")
            after = readUntilTagged(tf, b"c")
            tls.close()
            return first, after
        first, after = yield self.inThread(session)
        self.assertEqual(first, b"a OK Begin TLS negotiation now\r\n")
        self.assertEqual(after, [b"c OK NOOP completed\r\n"])


class MessageTests(IMAPTestCase):
    """
    APPEND, FETCH, STORE, EXPUNGE, SEARCH with imaplib.
    """

    @defer.inlineCallbacks
    def test_appendThenFetch(self):
        """APPEND (a literal) then FETCH returns the same bytes."""
        def session():
            c = self.loggedIn()
            typ, data = c.append("INBOX", r"(\Flagged)", None, MESSAGE)
            c.select("INBOX")
            _, body = c.fetch("1", "(BODY.PEEK[] FLAGS)")
            c.logout()
            return typ, data, body
        typ, data, body = yield self.inThread(session)
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0], rb"^\[APPENDUID \d+ 1\] APPEND completed$")
        self.assertEqual(body[0][1], MESSAGE)
        self.assertIn(b"\\Flagged", body[1])

    @defer.inlineCallbacks
    def test_partialAndBodyStructure(self):
        """Partial fetch and the BODYSTRUCTURE of a multipart message."""
        self.deliver(MULTIPART)

        def session():
            c = self.loggedIn()
            c.select("INBOX")
            _, partial = c.fetch("1", "(BODY.PEEK[1]<0.5>)")
            _, structure = c.fetch("1", "(BODYSTRUCTURE)")
            _, mime = c.fetch("1", "(BODY.PEEK[2.MIME])")
            c.logout()
            return partial, structure, mime
        partial, structure, mime = yield self.inThread(session)
        self.assertEqual(partial[0][1], b"first")
        self.assertIn(b'BODY[1]<0>', partial[0][0])
        self.assertEqual(
            structure[0],
            b'1 (BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 0 NIL NIL'
            b' NIL NIL)("application" "octet-stream" ("name" "a.bin") NIL NIL "base64" 8 NIL NIL'
            b' NIL NIL) "mixed" ("boundary" "XX") NIL NIL NIL))')
        self.assertEqual(mime[0][1], b"Content-Type: application/octet-stream; name=a.bin\r\n"
                                     b"Content-Transfer-Encoding: base64\r\n\r\n")

    @defer.inlineCallbacks
    def test_deleteExpungeRemovesFile(self):
        """STORE \\Deleted and EXPUNGE remove the message file."""
        self.deliver(MESSAGE)
        self.deliver(MULTIPART)
        self.assertEqual(len(self.files()), 2)

        def session():
            c = self.loggedIn()
            c.select("INBOX")
            c.store("1", "+FLAGS", r"(\Deleted)")
            typ, data = c.expunge()
            c.logout()
            return data
        self.assertEqual((yield self.inThread(session)), [b"1"])
        self.assertEqual(len(self.files()), 1)
        self.assertEqual([info.uid for info in self.inbox().messages()], [2])

    @defer.inlineCallbacks
    def test_seenOnFetch(self):
        """A non-PEEK fetch sets \\Seen in the Maildir file name."""
        self.deliver(MESSAGE)

        def session():
            c = self.loggedIn()
            c.select("INBOX")
            _, data = c.fetch("1", "(RFC822)")
            c.logout()
            return data
        data = yield self.inThread(session)
        self.assertEqual(data[0][1], MESSAGE)
        self.assertTrue(self.files()[0].endswith(":2,S"))

    @defer.inlineCallbacks
    def test_search(self):
        """SEARCH with text, flags and UID keys."""
        self.deliver(MESSAGE)
        self.deliver(MULTIPART)

        def session():
            c = self.loggedIn()
            c.select("INBOX")
            results = [c.search(None, "SUBJECT", "hello")[1],
                       c.search("UTF-8", "BODY", "part")[1],
                       c.search(None, "UNSEEN", "NOT", "SUBJECT", "Hello")[1],
                       c.uid("SEARCH", "UID", "2:*")[1],
                       c.search(None, "DELETED")[1]]
            c.logout()
            return results
        self.assertEqual((yield self.inThread(session)),
                         [[b"1"], [b"2"], [b"2"], [b"2"], [b""]])

    @defer.inlineCallbacks
    def test_foldersAndCopy(self):
        """CREATE, LIST, COPY with COPYUID, STATUS, RENAME, DELETE."""
        self.deliver(MESSAGE)

        def session():
            c = self.loggedIn()
            out = [c.create("Archive/2024")[0]]
            out.append(c.list()[1])
            c.select("INBOX")
            out.append(c.copy("1", "Archive/2024")[1])
            out.append(c.status("Archive/2024", "(MESSAGES UNSEEN)")[1])
            out.append(c.rename("Archive/2024", "Old")[0])
            out.append(c.delete("Old")[0])
            c.logout()
            return out
        create, listing, copied, status, renamed, deleted = yield self.inThread(session)
        self.assertEqual(create, "OK")
        self.assertEqual(listing, [b'(\\HasNoChildren) "/" "INBOX"',
                                   b'(\\HasChildren \\Archive) "/" "Archive"',
                                   b'(\\HasNoChildren) "/" "Archive/2024"',
                                   b'(\\HasNoChildren \\Drafts) "/" "Drafts"',
                                   b'(\\HasNoChildren \\Junk) "/" "Junk"',
                                   b'(\\HasNoChildren \\Sent) "/" "Sent"',
                                   b'(\\HasNoChildren \\Trash) "/" "Trash"'])
        self.assertRegex(copied[0], rb"^\[COPYUID \d+ 1 1\] COPY completed$")
        self.assertEqual(status, [b'"Archive/2024" (MESSAGES 1 UNSEEN 1)'])
        self.assertEqual((renamed, deleted), ("OK", "OK"))

    @defer.inlineCallbacks
    def test_appendTooBig(self):
        """An APPEND over literal_size is refused before a byte of it is sent."""
        def session():
            s, f = self.raw()
            s.sendall(b"a LOGIN demo@lab.test demo\r\n")
            readUntilTagged(f, b"a")
            s.sendall(b"b APPEND INBOX {200000}\r\n")
            refused = f.readline()
            s.sendall(b"c NOOP\r\n")
            after = readUntilTagged(f, b"c")
            s.close()
            return refused, after
        refused, after = yield self.inThread(session)
        self.assertEqual(refused, b"b NO [TOOBIG] Message too large (limit 100000 octets)\r\n")
        self.assertEqual(after, [b"c OK NOOP completed\r\n"])

    @defer.inlineCallbacks
    def test_smtpDeliveryVisible(self):
        """A message sent by SMTP is in IMAP with the same bytes (plus trace headers)."""
        def session():
            with smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10) as s:
                s.sendmail("alice@example.test", ["demo@lab.test"], MESSAGE)
            c = self.loggedIn()
            c.select("INBOX")
            _, data = c.fetch("1", "(BODY.PEEK[])")
            c.logout()
            return data[0][1]
        body = yield self.inThread(session)
        self.assertTrue(body.startswith(b"Return-Path: <alice@example.test>\r\nReceived: from "),
                        body[:200])
        self.assertTrue(body.endswith(MESSAGE))

    @defer.inlineCallbacks
    def test_disabledExtensions(self):
        """A listener's disabled list hides IDLE and MOVE."""
        def session():
            c = self.client("imapplain")
            caps = c.capabilities
            c.logout()
            return caps
        caps = yield self.inThread(session)
        self.assertNotIn("IDLE", caps)
        self.assertNotIn("MOVE", caps)
        self.assertIn("UIDPLUS", caps)


class TwoSessionTests(IMAPTestCase):
    """
    Two concurrent sessions on one mailbox.
    """

    @defer.inlineCallbacks
    def test_seeEachOther(self):
        """The second session sees the first's APPEND (EXISTS), STORE (FETCH), EXPUNGE."""
        self.deliver(MESSAGE)

        def session():
            a = self.loggedIn()
            b = self.loggedIn()
            a.select("INBOX")
            b.select("INBOX")
            a.append("INBOX", None, None, MULTIPART)
            b.untagged_responses.clear()
            b.noop()
            exists = b.untagged_responses.pop("EXISTS", None)
            a.store("1", "+FLAGS", r"(\Flagged)")
            b.untagged_responses.clear()
            b.noop()
            flags = b.untagged_responses.pop("FETCH", None)
            a.store("1", "+FLAGS", r"(\Deleted)")
            a.expunge()
            b.untagged_responses.clear()
            b.noop()
            expunged = b.untagged_responses.pop("EXPUNGE", None)
            _, after = b.fetch("1", "(UID)")
            a.logout()
            b.logout()
            return exists, flags, expunged, after
        exists, flags, expunged, after = yield self.inThread(session)
        self.assertEqual(exists, [b"2"])
        self.assertEqual(flags, [b"1 (FLAGS (\\Flagged))"])
        self.assertEqual(expunged, [b"1"])
        self.assertEqual(after, [b"1 (UID 2)"])

    @defer.inlineCallbacks
    def test_idle(self):
        """IDLE: a delivery reaches the idling client without it asking."""
        def session():
            s, f = self.raw()
            s.sendall(b"a LOGIN demo@lab.test demo\r\nb SELECT INBOX\r\nc IDLE\r\n")
            readUntilTagged(f, b"b")
            plus = f.readline()
            threads.blockingCallFromThread(reactor, self.deliver, MESSAGE)
            pushed = f.readline()
            s.sendall(b"DONE\r\n")
            done = readUntilTagged(f, b"c")
            s.close()
            return plus, pushed, done
        from twisted.internet import reactor
        plus, pushed, done = yield self.inThread(session)
        self.assertEqual(plus, b"+ idling\r\n")
        self.assertEqual(pushed, b"* 1 EXISTS\r\n")
        self.assertEqual(done[-1], b"c OK IDLE terminated\r\n")


class HostileCommandTests(IMAPTestCase):
    """
    Commands crafted to hurt the server, over a real socket.
    """

    @defer.inlineCallbacks
    def test_listManyWildcards(self):
        """
        LIST with 200 '%' then a letter answers at once, with the right names,
        and the server goes on serving this and other connections (the old
        regular expression blocked the reactor for hours on it).
        """
        def session():
            s, f = self.raw()
            s.sendall(b"a LOGIN demo@lab.test demo\r\n")
            readUntilTagged(f, b"a")
            s.sendall(b'b LIST "" "' + b"%" * 200 + b's"\r\n')
            percents = readUntilTagged(f, b"b")
            s.sendall(b'c LIST "" "' + b"*%" * 100 + b'h"\r\n')
            mixed = readUntilTagged(f, b"c")
            other = self.loggedIn()
            noop = other.noop()[0]
            other.logout()
            s.sendall(b"d NOOP\r\n")
            after = readUntilTagged(f, b"d")
            s.close()
            return percents, mixed, noop, after
        with deadline(30):
            percents, mixed, noop, after = yield self.inThread(session)
        self.assertEqual(percents, [b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n',
                                    b"b OK LIST completed\r\n"])
        self.assertEqual(mixed, [b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n',
                                 b"c OK LIST completed\r\n"])
        self.assertEqual(noop, "OK")
        self.assertEqual(after, [b"d OK NOOP completed\r\n"])


class POP3InterplayTests(IMAPTestCase):
    """
    IMAP and POP3 on the same INBOX.
    """

    @defer.inlineCallbacks
    def test_pop3RetrSeenInIMAP(self):
        """A POP3 RETR sets \\Seen; an open IMAP session is told at its next NOOP."""
        self.deliver(MESSAGE)

        def session():
            c = self.loggedIn()
            c.select("INBOX")
            p = poplib.POP3("127.0.0.1", self.port("pop3"), timeout=10)
            p.user("demo@lab.test")
            p.pass_("demo")
            p.retr(1)
            p.quit()
            c.untagged_responses.clear()
            c.noop()
            update = c.untagged_responses.get("FETCH")
            c.logout()
            return update
        self.assertEqual((yield self.inThread(session)), [b"1 (FLAGS (\\Seen \\Recent))"])

    @defer.inlineCallbacks
    def test_imapExpungeSeenByPOP3(self):
        """A message expunged over IMAP is gone for the next POP3 session; flags set in
        IMAP are in the file POP3 serves."""
        self.deliver(MESSAGE)
        self.deliver(MULTIPART)

        def session():
            c = self.loggedIn()
            c.select("INBOX")
            c.store("1", "+FLAGS", r"(\Deleted)")
            c.store("2", "+FLAGS", r"(\Answered)")
            c.expunge()
            c.logout()
            p = poplib.POP3("127.0.0.1", self.port("pop3"), timeout=10)
            p.user("demo@lab.test")
            p.pass_("demo")
            count = p.stat()[0]
            lines = p.retr(1)[1]
            p.quit()
            return count, lines
        count, lines = yield self.inThread(session)
        self.assertEqual(count, 1)
        self.assertEqual(b"".join(line + b"\r\n" for line in lines), MULTIPART)
        self.assertEqual(self.inbox().messages()[0].flags, {"\\Answered", "\\Seen"})


    @defer.inlineCallbacks
    def test_uidlStableAfterIMAPSeen(self):
        """POP3 UIDL is the same before and after an IMAP client marks the message \\Seen
        (the file is renamed to carry the flag; the unique-id does not follow the name)."""
        self.deliver(MESSAGE)

        def uidl():
            p = poplib.POP3("127.0.0.1", self.port("pop3"), timeout=10)
            p.user("demo@lab.test")
            p.pass_("demo")
            listing = p.uidl()[1]
            p.quit()
            return listing

        def session():
            before = uidl()
            namesBefore = self.files()
            c = self.loggedIn()
            c.select("INBOX")
            c.store("1", "+FLAGS", r"(\Seen)")
            c.logout()
            return before, namesBefore, uidl(), self.files()
        before, namesBefore, after, namesAfter = yield self.inThread(session)
        self.assertNotEqual(namesBefore, namesAfter)
        self.assertTrue(namesAfter[0].endswith("S"), namesAfter)
        self.assertEqual(before, after)

class RFC3501SampleTests(IMAPTestCase):
    """
    The sample session of RFC 3501 section 8, on 12 messages.
    """

    @defer.inlineCallbacks
    def test_sample(self):
        """CAPABILITY, LOGIN, SELECT, FETCH FULL, FETCH BODY[HEADER], STORE, LOGOUT."""
        for i in range(12):
            self.deliver(MESSAGE)

        def session():
            s, f = self.raw()
            out = {}
            for tag, command in [(b"abcd", b"CAPABILITY"), (b"a001", b"login demo@lab.test demo"),
                                 (b"a002", b"select inbox"), (b"a003", b"fetch 12 full"),
                                 (b"a004", b"fetch 12 body[header]"),
                                 (b"a005", b"store 12 +flags \\deleted"), (b"a006", b"logout")]:
                s.sendall(tag + b" " + command + b"\r\n")
                out[tag] = b"".join(readUntilTagged(f, tag))
            s.close()
            return out
        out = yield self.inThread(session)
        self.assertIn(b"* CAPABILITY IMAP4rev1 ", out[b"abcd"])
        self.assertIn(b"* 12 EXISTS\r\n", out[b"a002"])
        self.assertIn(b"a002 OK [READ-WRITE] SELECT completed", out[b"a002"])
        self.assertRegex(out[b"a003"], rb'\* 12 FETCH \(FLAGS \([^)]*\) INTERNALDATE "[^"]+" '
                                       rb'RFC822.SIZE \d+ ENVELOPE \(.*\) BODY \("text" "plain"')
        self.assertIn(b"BODY[HEADER] {", out[b"a004"])
        self.assertIn(b"* 12 FETCH (FLAGS (\\Deleted \\Seen \\Recent))", out[b"a005"])
        self.assertTrue(re.search(rb"\* BYE .*\r\na006 OK LOGOUT completed\r\n$", out[b"a006"]))


class LongCommandTests(IMAPTestCase):
    """
    Command lines up to the default 64 KiB limit (Dovecot's imap_max_line_length)
    are served; a longer one is refused with BAD and the session goes on.
    """

    @defer.inlineCallbacks
    def test_longLines(self):
        """An ID with 30 long values and a ~20 KB UID set work; a 70 KB line is BAD only."""
        def session():
            s, f = self.raw()
            s.sendall(b"a LOGIN demo@lab.test demo\r\nb SELECT INBOX\r\n")
            readUntilTagged(f, b"b")
            values = b" ".join(b'"field%d" "%s"' % (i, b"v" * 600) for i in range(15))
            line = b"c ID (" + values + b")\r\n"
            s.sendall(line)
            ident = readUntilTagged(f, b"c")
            uids = b",".join(b"%d" % (n,) for n in range(1, 8000, 2))
            s.sendall(b"d UID FETCH " + uids + b" FLAGS\r\n")
            fetch = readUntilTagged(f, b"d")
            s.sendall(b"e NOOP " + b"x" * 70000 + b"\r\nf NOOP\r\n")
            refused = readUntilTagged(f, b"f")
            s.close()
            return len(line), ident, len(uids), fetch, refused
        with deadline(30):
            length, ident, uidsLength, fetch, refused = yield self.inThread(session)
        self.assertGreater(length, 8192)
        self.assertGreater(uidsLength, 8192)
        self.assertEqual(ident[-1], b"c OK ID completed\r\n")
        self.assertEqual(fetch, [b"d OK FETCH completed\r\n"])
        self.assertEqual(refused, [b"e BAD Line too long (limit 65536 octets)\r\n",
                                   b"f OK NOOP completed\r\n"])
