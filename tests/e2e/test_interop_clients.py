"""
Real mail clients against the running service: swaks submits with STARTTLS
and AUTH, fetchmail retrieves over POP3 with STLS, mbsync (isync) and
offlineimap synchronise a local Maildir with IMAP both ways. The listeners
refuse passwords before TLS, so every client must really use TLS; the
certificate is the generated self-signed one (var/tls/cert.pem), which the
clients are told to trust. Programs run as child processes while the reactor
keeps serving (tests/interop.py, docs/interop.md).
"""

import glob
import imaplib
import os
import pwd
import ssl
import time

from twisted.internet import defer, task, threads
from twisted.trial import unittest

from tests.helpers import listenerTOML, startServer
from tests.interop import (check, describe, findBinary, mailboxState, missing,
                           runProgram)

LISTENERS = (
    listenerTOML("submission", tls="starttls", name="submission")
    + listenerTOML("pop3", tls="starttls", name="pop3")
    + listenerTOML("imap", tls="starttls", name="imap")
    + listenerTOML("imap", tls="implicit", name="imaps"))


def message(n, subject=None):
    subject = subject or "client interop %d" % (n,)
    return ("From: Alice <alice@lab.test>\r\nTo: demo@lab.test\r\n"
            "Subject: %s\r\nMessage-ID: <client-%d@lab.test>\r\n"
            "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n"
            "Message number %d.\r\n" % (subject, n, n)).encode()


def maildirFlags(path):
    """The flag letters of a Maildir file name (after C{:2,})."""
    name = os.path.basename(path)
    return name.split(":2,", 1)[1] if ":2," in name else ""


def maildirFiles(directory):
    """The message files of one Maildir (new/ and cur/), sorted."""
    return sorted(glob.glob(os.path.join(directory, "new", "*"))
                  + glob.glob(os.path.join(directory, "cur", "*")))


def readFile(path):
    with open(path, "rb") as f:
        return f.read()


class ClientTestCase(unittest.TestCase):
    timeout = 60

    def setUp(self):
        self.server, self.directory = startServer(self, LISTENERS)
        self.dataDir = os.path.join(self.directory, "var")
        self.cert = os.path.join(self.dataDir, "tls", "cert.pem")
        self.maildir = os.path.join(self.dataDir, "mail", "lab.test", "demo")
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)

    def port(self, name):
        return self.server.listenerPort(name)

    def deliver(self, *messages):
        inbox = self.server.store.account("demo@lab.test").getMailbox("INBOX")
        for m in messages:
            inbox.deliver(m)
        inbox.noteDelivery()

    def imap(self):
        """A logged-in imaplib client over IMAPS, trusting the test certificate."""
        context = ssl.create_default_context(cafile=self.cert)
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port("imaps"), ssl_context=context,
                              timeout=10)
        c.login("demo@lab.test", "demo")
        return c

    def transcripts(self, protocol):
        """The text of every transcript of C{protocol} sessions so far."""
        paths = sorted(glob.glob(os.path.join(self.dataDir, "transcripts", protocol,
                                              "*", "*.log")))
        return [readFile(p).decode("utf-8", "replace") for p in paths]

    @defer.inlineCallbacks
    def sessionsClosed(self, protocol, timeout=10.0):
        """
        Wait until every C{protocol} transcript is complete: transcripts are
        flushed when the session closes, which may be just after the client exits.
        """
        from twisted.internet import reactor
        deadline = reactor.seconds() + timeout
        while not all("# closed" in t for t in self.transcripts(protocol)):
            if reactor.seconds() > deadline:
                break  # the assertions that follow say what is missing
            yield task.deferLater(reactor, 0.05, lambda: None)

    def assertTLSBeforeAuth(self, protocol, authCommands):
        """
        Some C{protocol} session authenticated, and every one that did had
        started TLS (STARTTLS/STLS or implicit) before.
        """
        authenticated = 0
        for transcript in self.transcripts(protocol):
            auth = [transcript.index(c) for c in authCommands if c in transcript]
            if not auth:
                continue
            authenticated += 1
            marks = [transcript.index(m) for m in ("# TLS started", "# TLS (implicit)")
                     if m in transcript]
            self.assertTrue(marks and min(marks) < min(auth), transcript)
        self.assertTrue(authenticated, "no %s session authenticated" % (protocol,))

    def writeFile(self, name, text, mode=0o600):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    @defer.inlineCallbacks
    def runClient(self, argv, **kw):
        env = {"HOME": self.work}
        env.update(kw.pop("env", {}))
        result = yield runProgram(argv, env=env, path=self.work, **kw)
        return result


class SwaksTests(ClientTestCase):
    """
    swaks submits a message with STARTTLS and AUTH PLAIN.
    """

    skip = missing("swaks", "swaks")

    @defer.inlineCallbacks
    def test_submitWithStartTLSAndAuth(self):
        """swaks --tls --auth PLAIN: the message lands in the Maildir; TLS came before AUTH."""
        argv = [findBinary("swaks"), "--server", "127.0.0.1:%d" % (self.port("submission"),),
                "--tls", "--auth", "PLAIN", "--auth-user", "demo@lab.test",
                "--auth-password", "demo", "--from", "demo@lab.test",
                "--to", "demo@lab.test", "--helo", "client.lab.test",
                "--header", "Subject: sent by swaks", "--body", "Hello from swaks.",
                "--timeout", "20"]
        result = yield self.runClient(argv)
        out, err, code = result
        self.assertEqual(code, 0, describe(argv, result))
        self.assertIn("TLS started", out, describe(argv, result))
        self.assertIn("<~  235 ", out, describe(argv, result))
        files = maildirFiles(self.maildir)
        self.assertEqual(len(files), 1, describe(argv, result))
        stored = readFile(files[0])
        self.assertIn(b"\r\nSubject: sent by swaks\r\n", stored)
        self.assertIn(b"\r\n\r\nHello from swaks.\r\n", stored)
        self.assertIn(b"\r\nFrom: demo@lab.test\r\n", stored)
        yield self.sessionsClosed("submission")
        self.assertTLSBeforeAuth("submission", ["C: AUTH "])


class FetchmailTests(ClientTestCase):
    """
    fetchmail retrieves over POP3 with STLS and deletes on the server.
    """

    skip = missing("fetchmail", "fetchmail")

    @defer.inlineCallbacks
    def test_retrieveWithSTLS(self):
        """fetchmail over STLS (certificate checked) gets both messages and deletes them."""
        originals = [message(1), message(2, "second one")]
        self.deliver(*originals)
        out = os.path.join(self.work, "fetched")
        os.makedirs(out)
        rcfile = self.writeFile("fetchmailrc", (
            'set no syslog\n'
            'set no bouncemail\n'
            'poll localhost with proto POP3 port %d timeout 20\n'
            '  user "demo@lab.test" there with password "demo" is "%s" here\n'
            '  options no keep fetchall\n'
            '  mda "cat > $(mktemp %s/msg.XXXXXX)"\n'
            % (self.port("pop3"), pwd.getpwuid(os.getuid()).pw_name, out)))
        argv = [findBinary("fetchmail"), "-v", "--nodetach", "--sslproto", "TLS1.2+",
                "--sslcertck", "--sslcertfile", self.cert, "-f", rcfile]
        result = yield self.runClient(argv, env={"FETCHMAILHOME": self.work})
        output, err, code = result
        self.assertEqual(code, 0, describe(argv, result))
        self.assertIn("STLS", output + err, describe(argv, result))
        fetched = [readFile(p) for p in sorted(glob.glob(os.path.join(out, "msg.*")))]
        self.assertEqual(len(fetched), 2, describe(argv, result))
        for original in originals:
            # fetchmail adds a Received: line on top and passes LF line ends
            # to an MDA; the message itself must be unchanged.
            self.assertTrue(any(original.replace(b"\r\n", b"\n") in f for f in fetched),
                            (original, fetched))
        self.assertEqual(maildirFiles(self.maildir), [], describe(argv, result))
        yield self.sessionsClosed("pop3")
        self.assertTLSBeforeAuth("pop3", ["C: PASS", "C: AUTH", "C: APOP"])
        [transcript] = self.transcripts("pop3")
        self.assertIn("C: QUIT", transcript)


class MbsyncTests(ClientTestCase):
    """
    mbsync (isync) synchronises a local Maildir with IMAP over STARTTLS.
    """

    skip = missing("mbsync", "isync")

    def config(self):
        local = os.path.join(self.work, "local")
        os.makedirs(local)
        return self.writeFile("mbsyncrc", """\
IMAPAccount mailstack
Host 127.0.0.1
Port {port}
User demo@lab.test
Pass demo
SSLType STARTTLS
SSLVersions TLSv1.2 TLSv1.3
SystemCertificates no
CertificateFile {cert}
AuthMechs PLAIN
Timeout 20

IMAPStore remote
Account mailstack

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel lab
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
Sync All
SyncState *
""".format(port=self.port("imap"), cert=self.cert, local=local))

    @defer.inlineCallbacks
    def mbsync(self, rc):
        argv = [findBinary("mbsync"), "-V", "-c", rc, "-a"]
        result = yield self.runClient(argv)
        self.assertEqual(result[2], 0, describe(argv, result))
        return result

    def serverState(self):
        c = self.imap()
        try:
            return {name: mailboxState(c, name) for name in ("INBOX", "Projects")}
        finally:
            c.logout()

    def localState(self):
        local = os.path.join(self.work, "local")
        return {name: {os.path.basename(p): readFile(p)
                       for p in maildirFiles(os.path.join(local, name))}
                for name in ("INBOX", "Projects")}

    @defer.inlineCallbacks
    def test_syncBothWays(self):
        """Messages, folders and flags sync both ways; a further sync changes nothing."""
        rc = self.config()
        self.deliver(message(1), message(2))

        def prepare():
            c = self.imap()
            try:
                check(c.select("INBOX"))
                check(c.uid("STORE", "1", "+FLAGS", r"(\Flagged)"))
                check(c.create("Projects"))
                check(c.append("Projects", r"(\Seen)", None, message(3)))
            finally:
                c.logout()

        yield threads.deferToThread(prepare)

        # 1. Server -> local.
        first = yield self.mbsync(rc)
        local = self.localState()
        self.assertEqual(len(local["INBOX"]), 2, first)
        self.assertEqual(len(local["Projects"]), 1, first)
        byContent = {body: name for name, body in local["INBOX"].items()}
        one = [n for b, n in byContent.items() if b"Message number 1." in b][0]
        two = [n for b, n in byContent.items() if b"Message number 2." in b][0]
        self.assertEqual(maildirFlags(one), "F")
        self.assertEqual(maildirFlags(two), "")
        self.assertEqual(maildirFlags(list(local["Projects"])[0]), "S")
        for body in local["INBOX"].values():
            self.assertIn(b"Subject: client interop", body)

        # 2. Local changes: read message 2, delete the filed one, write a
        # new message; and a server change: answer message 1.
        inboxDir = os.path.join(self.work, "local", "INBOX")
        projectsDir = os.path.join(self.work, "local", "Projects")
        [twoPath] = [p for p in maildirFiles(inboxDir) if os.path.basename(p) == two]
        os.rename(twoPath, os.path.join(inboxDir, "cur", two.split(":2,")[0] + ":2,S"))
        [filed] = maildirFiles(projectsDir)
        os.rename(filed, os.path.join(projectsDir, "cur", os.path.basename(filed)
                                         .split(":2,")[0] + ":2,ST"))
        newName = "%d.M1P%d.localhost:2,S" % (time.time(), os.getpid())
        with open(os.path.join(inboxDir, "cur", newName), "wb") as f:
            f.write(message(4, "written locally").replace(b"\r\n", b"\n"))

        def answer():
            c = self.imap()
            try:
                check(c.select("INBOX"))
                check(c.uid("STORE", "1", "+FLAGS", r"(\Answered)"))
            finally:
                c.logout()

        yield threads.deferToThread(answer)
        second = yield self.mbsync(rc)

        server = yield threads.deferToThread(self.serverState)
        inbox = server["INBOX"]["messages"]
        self.assertEqual([m["uid"] for m in inbox], [1, 2, 3], second)
        self.assertEqual([m["flags"] for m in inbox],
                         [("\\Answered", "\\Flagged"), ("\\Seen",), ("\\Seen",)], second)
        self.assertIn(b"Subject: written locally\r\n", inbox[2]["bytes"])
        self.assertIn(b"Message number 4.", inbox[2]["bytes"])
        self.assertEqual(server["Projects"]["messages"], [], second)
        local = self.localState()
        self.assertEqual(sorted(maildirFlags(n) for n in local["INBOX"]), ["FR", "S", "S"])
        self.assertEqual(local["Projects"], {})

        # 3. Nothing left to do: a third run changes neither side.
        third = yield self.mbsync(rc)
        self.assertEqual((yield threads.deferToThread(self.serverState)), server, third)
        self.assertEqual(self.localState(), local, third)
        yield self.sessionsClosed("imap")
        self.assertTLSBeforeAuth("imap", [" LOGIN ", " AUTHENTICATE "])
        self.assertTrue(any(" STARTTLS\n" in t for t in self.transcripts("imap")))


class OfflineIMAPTests(ClientTestCase):
    """
    offlineimap synchronises a local Maildir with IMAP over implicit TLS.
    """

    skip = missing("offlineimap", "offlineimap")

    def config(self):
        return self.writeFile("offlineimaprc", """\
[general]
accounts = lab
metadata = {work}/offlineimap-meta
ui = basic

[Account lab]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {work}/local
sep = /

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {port}
ssl = yes
sslcacertfile = {cert}
ssl_version = tls1_2
remoteuser = demo@lab.test
remotepass = demo
auth_mechanisms = PLAIN
maxconnections = 1
holdconnectionopen = no
""".format(work=self.work, port=self.port("imaps"), cert=self.cert))

    @defer.inlineCallbacks
    def offlineimap(self, rc):
        argv = [findBinary("offlineimap"), "-c", rc, "-o", "-u", "basic"]
        result = yield self.runClient(argv)
        self.assertEqual(result[2], 0, describe(argv, result))
        self.assertNotIn("ERROR", result[0] + result[1], describe(argv, result))
        return result

    @defer.inlineCallbacks
    def test_syncBothWays(self):
        """Messages and \\Seen sync both ways; a further run changes nothing."""
        rc = self.config()
        self.deliver(message(1), message(2))
        first = yield self.offlineimap(rc)
        inboxDir = os.path.join(self.work, "local", "INBOX")
        files = maildirFiles(inboxDir)
        self.assertEqual(len(files), 2, first)

        seenPath = [p for p in files if b"Message number 2." in readFile(p)][0]
        base = os.path.basename(seenPath).split(":2,")[0]
        os.rename(seenPath, os.path.join(inboxDir, "cur", base + ":2,S"))
        with open(os.path.join(inboxDir, "new", "%d.M2P%d.localhost" % (time.time(),
                                                                        os.getpid())),
                  "wb") as f:
            f.write(message(3, "written locally").replace(b"\r\n", b"\n"))
        second = yield self.offlineimap(rc)

        def state():
            c = self.imap()
            try:
                return mailboxState(c, "INBOX")
            finally:
                c.logout()

        server = yield threads.deferToThread(state)
        messages = server["messages"]
        self.assertEqual([m["uid"] for m in messages], [1, 2, 3], second)
        self.assertEqual([m["flags"] for m in messages], [(), ("\\Seen",), ()], second)
        self.assertIn(b"Subject: written locally\r\n", messages[2]["bytes"])
        local = sorted(os.path.basename(p) for p in maildirFiles(inboxDir))

        third = yield self.offlineimap(rc)
        self.assertEqual((yield threads.deferToThread(state)), server, third)
        self.assertEqual(sorted(os.path.basename(p) for p in maildirFiles(inboxDir)),
                         local, third)
        yield self.sessionsClosed("imap")
        self.assertTLSBeforeAuth("imap", [" LOGIN ", " AUTHENTICATE "])
