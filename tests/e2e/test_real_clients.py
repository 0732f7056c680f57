"""
Real mail clients on their defaults against the lab configuration
(etc/mailstack.toml, on free ports): a student created the default way
(BLF-CRYPT) next to the {PLAIN} demo account must be able to log in with
curl (IMAP, POP3, SMTP submission), s-nail (POP3, which prefers APOP) and mutt
(SMTP, which picks the strongest SASL mechanism through GNU SASL).

These clients choose CRAM-MD5 or APOP whenever they are advertised and do
not fall back when it fails, so the server offers them only when they work
for every user (every secret {PLAIN}) or when a listener says
C{challenge_auth = "always"} (a CRAM-MD5/APOP lesson, with students created
C{--scheme PLAIN}); both are tested here (docs/lab.md).

Clients run as child processes with a time limit (killed when it passes) and
standard input closed; nothing they start outlives the test. A missing
program skips its tests with the Debian package to install
(.ci/debian-packages).
"""

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from twisted.internet import defer, error, protocol, threads
from twisted.internet.task import deferLater
from twisted.trial import unittest

from tests.helpers import startServer
from tests.interop import findBinary, missing

ROOT = Path(__file__).resolve().parents[2]

STUDENT, PASSWORD = "student@lab.test", "secret"
SUBJECT = "for the student"
MESSAGE = ("From: demo@lab.test\r\nTo: student@lab.test\r\nSubject: %s\r\n"
           "Message-ID: <real-clients-1@lab.test>\r\n"
           "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nHello student.\r\n"
           % (SUBJECT,)).encode("ascii")
CLIENT_TIMEOUT = 30


def labConfig(challengeAuth=False):
    """
    The text of etc/mailstack.toml with every listener on a free port, the
    data directory beside the config, fast bcrypt, and (if C{challengeAuth})
    C{challenge_auth = "always"} on its plaintext lab listeners.
    """
    text = (ROOT / "etc" / "mailstack.toml").read_text()
    text = text.replace('"../var', '"var')
    text = re.sub(r'endpoint = "tcp:\d+:', 'endpoint = "tcp:0:', text)
    text = text.replace("bcrypt_rounds = 10", "bcrypt_rounds = 4")
    if challengeAuth:
        text = text.replace("allow_plaintext_auth = true",
                            'allow_plaintext_auth = true\nchallenge_auth = "always"')
    return text


class _Collector(protocol.ProcessProtocol):
    def __init__(self, stdin):
        self.stdin = stdin
        self.out, self.err = [], []
        self.ended = defer.Deferred()
        self.code = None

    def connectionMade(self):
        if self.stdin:
            self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data):
        self.out.append(data)

    def errReceived(self, data):
        self.err.append(data)

    def processEnded(self, reason):
        value = reason.value
        self.code = getattr(value, "exitCode", None)
        if self.code is None:
            self.code = -(getattr(value, "signal", None) or 0)
        self.ended.callback(None)


def runClient(argv, stdin=b"", env=None, path=None, timeout=CLIENT_TIMEOUT):
    """
    Run a client program, killing it if it is still running after
    C{timeout} seconds.

    @return: a L{Deferred} firing with C{(out, err, code, timedOut)}.
    """
    from twisted.internet import reactor
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    environ.update(env or {})
    collector = _Collector(stdin)
    process = reactor.spawnProcess(collector, argv[0], argv, env=environ, path=path)
    timedOut = []

    def kill():
        timedOut.append(True)
        try:
            process.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass
    timer = reactor.callLater(timeout, kill)

    def ended(_):
        if timer.active():
            timer.cancel()
        return (b"".join(collector.out).decode("utf-8", "replace"),
                b"".join(collector.err).decode("utf-8", "replace"),
                collector.code, bool(timedOut))
    return collector.ended.addCallback(ended)


def describe(argv, result):
    out, err, code, timedOut = result
    return "%s %s\n--- stdout:\n%s\n--- stderr:\n%s" % (
        " ".join(argv), "timed out (killed)" if timedOut else "exited %s" % (code,),
        out, err)


def exchange(port, lines, greeting=True):
    """
    A raw session (blocking, for a thread): read the greeting, send each line
    and read its reply.

    @return: the list of replies (bytes), the greeting first.
    """
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")

        def reply(final):
            data = b""
            while True:
                line = f.readline()
                data += line
                if not line or final(line):
                    return data
        if greeting:
            replies.append(f.readline())
        for line, final in lines:
            s.sendall(line + b"\r\n")
            replies.append(reply(final))
    return replies


def imapCapability(port):
    """The C{* CAPABILITY} line an IMAP listener sends before login."""
    (greeting, capability) = exchange(port, [
        (b"a CAPABILITY", lambda line: line.startswith(b"a "))])
    return capability.split(b"\r\n")[0]


def pop3Offer(port):
    """C{(greeting, SASL line of CAPA)}."""
    greeting, capa = exchange(port, [(b"CAPA", lambda line: line == b".\r\n")])
    sasl = [line for line in capa.split(b"\r\n") if line.startswith(b"SASL")]
    return greeting.rstrip(b"\r\n"), sasl[0] if sasl else b""


def smtpAuthLine(port):
    """The C{AUTH ...} keyword line of the EHLO reply (without C{250-}), or C{b""}."""
    greeting, ehlo = exchange(port, [(b"EHLO client.example",
                                      lambda line: line[3:4] == b" ")])
    auth = [line[4:] for line in ehlo.split(b"\r\n") if line[4:].startswith(b"AUTH ")]
    return auth[0] if auth else b""


class LabTestCase(unittest.TestCase):
    """
    The lab configuration running, with the student added the default way.
    """

    timeout = 120
    challengeAuth = False
    studentScheme = None  # the default: BLF-CRYPT

    def setUp(self):
        self.server, self.directory = startServer(self, "", labConfig(self.challengeAuth))
        self.dataDir = os.path.join(self.directory, "var")
        kw = {} if self.studentScheme is None else {"scheme": self.studentScheme}
        self.server.users.addUser(STUDENT, PASSWORD, **kw)
        self.assertEqual(self.server.users.lookup(STUDENT).scheme,
                         self.studentScheme or "BLF-CRYPT")
        self.assertEqual(self.server.users.lookup("demo@lab.test").scheme, "PLAIN")
        inbox = self.server.store.account(STUDENT).getMailbox("INBOX")
        inbox.deliver(MESSAGE)
        inbox.noteDelivery()
        # HOME for the clients: no rc files of whoever runs the tests.
        self.home = tempfile.mkdtemp(prefix="mailstack-clients-")
        self.addCleanup(shutil.rmtree, self.home, True)
        # Before the service stops: the server side of every session closed.
        self.addCleanup(self.sessionsClosed)

    @defer.inlineCallbacks
    def sessionsClosed(self, timeout=10.0):
        """Wait until the server has closed every session (clients have gone)."""
        from twisted.internet import reactor
        deadline = reactor.seconds() + timeout
        while self.server.counter.count() and reactor.seconds() < deadline:
            yield deferLater(reactor, 0.05, lambda: None)

    def port(self, name):
        return self.server.listenerPort(name)

    def runClient(self, argv, **kw):
        """Run a client with HOME set to a scratch directory."""
        env = {"HOME": self.home}
        env.update(kw.pop("env", {}))
        return runClient([findBinary(argv[0])] + argv[1:], env=env, path=self.home, **kw)

    def transcripts(self, protocol):
        """Every lab transcript of C{protocol} sessions so far."""
        base = os.path.join(self.dataDir, "transcripts", protocol)
        texts = []
        for directory, _, files in os.walk(base):
            for name in sorted(files):
                with open(os.path.join(directory, name), errors="replace") as f:
                    texts.append(f.read())
        return texts

    @defer.inlineCallbacks
    def closedTranscripts(self, protocol, timeout=10.0):
        """
        The transcripts of C{protocol} as one text, once every one is complete
        (written out when its session closes, maybe just after the client exits).
        """
        from twisted.internet import reactor
        deadline = reactor.seconds() + timeout
        texts = self.transcripts(protocol)
        while (not texts or not all("# closed" in t for t in texts)) and (
                reactor.seconds() < deadline):
            yield deferLater(reactor, 0.05, lambda: None)
            texts = self.transcripts(protocol)
        return "\n".join(texts)

    def demoMessages(self):
        """The files in the demo user's INBOX (new/ and cur/)."""
        base = os.path.join(self.dataDir, "mail", "lab.test", "demo")
        return [os.path.join(base, sub, name) for sub in ("new", "cur")
                if os.path.isdir(os.path.join(base, sub))
                for name in os.listdir(os.path.join(base, sub))]

    def assertSucceeded(self, argv, result):
        self.assertFalse(result[3], describe(argv, result))
        self.assertEqual(result[2], 0, describe(argv, result))

    # The clients, on their defaults (no mechanism chosen for them).

    @defer.inlineCallbacks
    def curlFetch(self, url):
        """curl fetches the student's first message from C{url} on its defaults."""
        argv = ["curl", "-sS", "-v", "--max-time", "20", url,
                "-u", "%s:%s" % (STUDENT, PASSWORD)]
        result = yield self.runClient(argv)
        self.assertSucceeded(argv, result)
        self.assertIn("Subject: " + SUBJECT, result[0], describe(argv, result))
        return result

    def curlIMAP(self):
        return self.curlFetch("imap://127.0.0.1:%d/INBOX;UID=1" % (self.port("imap"),))

    def curlPOP3(self):
        return self.curlFetch("pop3://127.0.0.1:%d/1" % (self.port("pop3"),))

    @defer.inlineCallbacks
    def curlSubmission(self):
        message = os.path.join(self.home, "message.txt")
        with open(message, "wb") as f:
            f.write(b"From: student@lab.test\r\nTo: demo@lab.test\r\n"
                    b"Subject: from curl\r\n\r\nHello demo.\r\n")
        argv = ["curl", "-sS", "-v", "--max-time", "20",
                "smtp://127.0.0.1:%d/client.example" % (self.port("submission"),),
                "--mail-from", STUDENT, "--mail-rcpt", "demo@lab.test",
                "-T", message, "-u", "%s:%s" % (STUDENT, PASSWORD)]
        before = len(self.demoMessages())
        result = yield self.runClient(argv)
        self.assertSucceeded(argv, result)
        self.assertEqual(len(self.demoMessages()), before + 1, describe(argv, result))
        return result

    @defer.inlineCallbacks
    def snailPOP3(self):
        # -#: batch mode; -: /: no rc files; v15-compat: the password in the URL.
        argv = ["s-nail", "-#", "-:", "/", "-Sv15-compat", "-Sverbose",
                "-f", "pop3://student%%40lab.test:%s@127.0.0.1:%d" % (
                    PASSWORD, self.port("pop3"))]
        result = yield self.runClient(argv, stdin=b"headers\nquit\n")
        self.assertFalse(result[3], describe(argv, result))
        self.assertNotIn("authentication failed", result[1], describe(argv, result))
        self.assertIn(SUBJECT, result[0], describe(argv, result))
        return result

    @defer.inlineCallbacks
    def muttSubmission(self):
        # TLS is not what is tested: the lab listener takes AUTH in clear, and
        # the self-signed certificate would need a prompt, so no STARTTLS.
        rc = os.path.join(self.home, "muttrc")
        with open(rc, "w") as f:
            f.write('set from = "%s"\n'
                    'set smtp_url = "smtp://student%%40lab.test@127.0.0.1:%d/"\n'
                    'set smtp_pass = "%s"\n'
                    'set hostname = "client.example"\n'
                    'set record = ""\n'
                    'set ssl_starttls = no\n'
                    'unset ssl_force_tls\n' % (STUDENT, self.port("submission"), PASSWORD))
        argv = ["mutt", "-n", "-F", rc, "-d", "2", "-s", "from mutt", "demo@lab.test"]
        before = len(self.demoMessages())
        result = yield self.runClient(argv, stdin=b"Hello demo.\n")
        debug = ""
        try:
            with open(os.path.join(self.home, ".muttdebug0"), errors="replace") as f:
                debug = f.read()
        except FileNotFoundError:
            pass
        self.assertSucceeded(argv, result)
        self.assertEqual(len(self.demoMessages()), before + 1,
                         describe(argv, result) + "\n--- debug:\n" + debug)
        return result, debug

    @defer.inlineCallbacks
    def muttIMAP(self):
        """
        mutt opens the student's INBOX over IMAP in a detached tmux session (it
        needs a terminal); the pane is read until the index shows the message.
        """
        from twisted.internet import reactor
        rc = os.path.join(self.home, "muttrc-imap")
        with open(rc, "w") as f:
            f.write('set folder = "imap://student%%40lab.test@127.0.0.1:%d/"\n'
                    'set spoolfile = "+INBOX"\n'
                    'set imap_pass = "%s"\n'
                    'set ssl_starttls = no\n'
                    'unset ssl_force_tls\n' % (self.port("imap"), PASSWORD))
        socketPath = os.path.join(self.home, "tmux.sock")
        tmux = [findBinary("tmux"), "-S", socketPath, "-f", "/dev/null"]
        command = "%s -n -F %s -d 2" % (findBinary("mutt"), rc)
        started = yield runClient(tmux + ["new-session", "-d", "-x", "150", "-y", "30",
                                          "-s", "mutt", command],
                                  env={"HOME": self.home}, path=self.home)
        self.assertSucceeded(tmux, started)
        # Stops mutt (SIGHUP) and the tmux server, whatever happened.
        self.addCleanup(runClient, tmux + ["kill-server"], path=self.home)
        pane = ""
        deadline = reactor.seconds() + CLIENT_TIMEOUT
        while SUBJECT not in pane and reactor.seconds() < deadline:
            yield deferLater(reactor, 0.2, lambda: None)
            captured = yield runClient(tmux + ["capture-pane", "-p", "-t", "mutt"],
                                       path=self.home)
            pane = captured[0]
        debug = ""
        try:
            with open(os.path.join(self.home, ".muttdebug0"), errors="replace") as f:
                debug = f.read()
        except FileNotFoundError:
            pass
        self.assertIn(SUBJECT, pane, "mutt's screen:\n%s\n--- debug:\n%s" % (pane, debug))
        yield runClient(tmux + ["kill-server"], path=self.home)
        yield self.sessionsClosed()
        return debug


class OfferTests(LabTestCase):
    """
    What the lab listeners advertise with a BLF-CRYPT student and the
    {PLAIN} demo account, and that the offer follows the users file.
    """

    @defer.inlineCallbacks
    def test_notOfferedWithHashedStudent(self):
        """No AUTH=CRAM-MD5 (IMAP), no APOP timestamp or SASL CRAM-MD5 (POP3), no CRAM-MD5 in EHLO AUTH."""
        capability = yield threads.deferToThread(imapCapability, self.port("imap"))
        self.assertIn(b" AUTH=PLAIN AUTH=LOGIN ", capability)
        self.assertNotIn(b"CRAM-MD5", capability)
        greeting, sasl = yield threads.deferToThread(pop3Offer, self.port("pop3"))
        self.assertEqual(greeting, b"+OK mailstack POP3 server ready")
        self.assertEqual(sasl, b"SASL PLAIN LOGIN")
        for name in ("smtp", "submission"):
            auth = yield threads.deferToThread(smtpAuthLine, self.port(name))
            self.assertEqual(auth, b"AUTH PLAIN LOGIN", name)

    @defer.inlineCallbacks
    def test_offerFollowsUsersFile(self):
        """With the student gone every user is {PLAIN}: offered again; re-added hashed: gone again."""
        self.server.users.removeUser(STUDENT)
        capability = yield threads.deferToThread(imapCapability, self.port("imap"))
        self.assertIn(b" AUTH=CRAM-MD5 ", capability)
        greeting, sasl = yield threads.deferToThread(pop3Offer, self.port("pop3"))
        self.assertRegex(greeting, rb"^\+OK mailstack POP3 server ready <[^>]+@localhost>$")
        self.assertEqual(sasl, b"SASL PLAIN LOGIN CRAM-MD5")
        auth = yield threads.deferToThread(smtpAuthLine, self.port("submission"))
        self.assertEqual(auth, b"AUTH PLAIN LOGIN CRAM-MD5")
        self.server.users.addUser(STUDENT, PASSWORD)
        capability = yield threads.deferToThread(imapCapability, self.port("imap"))
        self.assertNotIn(b"CRAM-MD5", capability)


class OfferAlwaysTests(LabTestCase):
    """
    C{challenge_auth = "always"} on the lab listeners: offered although the
    student is hashed (the teacher creates students --scheme PLAIN for it).
    """

    challengeAuth = True

    @defer.inlineCallbacks
    def test_offeredWithSwitch(self):
        """The switch brings back AUTH=CRAM-MD5, the APOP timestamp and SMTP's CRAM-MD5."""
        capability = yield threads.deferToThread(imapCapability, self.port("imap"))
        self.assertIn(b" AUTH=PLAIN AUTH=LOGIN AUTH=CRAM-MD5 ", capability)
        greeting, sasl = yield threads.deferToThread(pop3Offer, self.port("pop3"))
        self.assertRegex(greeting, rb"^\+OK mailstack POP3 server ready <[^>]+@localhost>$")
        self.assertEqual(sasl, b"SASL PLAIN LOGIN CRAM-MD5")
        auth = yield threads.deferToThread(smtpAuthLine, self.port("submission"))
        self.assertEqual(auth, b"AUTH PLAIN LOGIN CRAM-MD5")


class CurlTests(LabTestCase):
    """
    curl prefers CRAM-MD5 over PLAIN and LOGIN, and APOP-less POP3 SASL.
    """

    skip = missing("curl", "curl")

    def test_imap(self):
        """curl fetches the student's message over IMAP."""
        return self.curlIMAP()

    def test_pop3(self):
        """curl retrieves the student's message over POP3."""
        return self.curlPOP3()

    def test_submission(self):
        """curl submits a message as the student (AUTH on the submission port)."""
        return self.curlSubmission()


class SNailTests(LabTestCase):
    """
    s-nail uses APOP whenever the POP3 greeting carries a timestamp.
    """

    skip = missing("s-nail", "s-nail")

    def test_pop3(self):
        """s-nail lists the student's message over POP3."""
        return self.snailPOP3()


class MuttTests(LabTestCase):
    """
    mutt (GNU SASL) picks the strongest mechanism the server advertises.
    """

    skip = missing("mutt", "mutt")

    @defer.inlineCallbacks
    def test_submission(self):
        """mutt sends a message as the student through the submission port."""
        result, debug = yield self.muttSubmission()
        self.assertIn("smtp_auth_gsasl: using mech PLAIN", debug)

    @defer.inlineCallbacks
    def test_imap(self):
        """mutt (in tmux) opens the student's INBOX over IMAP."""
        if missing("tmux", "tmux"):
            raise unittest.SkipTest(missing("tmux", "tmux"))
        debug = yield self.muttIMAP()
        self.assertIn("imap_auth_gsasl: using mech PLAIN", debug)


class ChallengeLessonTests(LabTestCase):
    """
    The CRAM-MD5/APOP lesson: challenge_auth = "always" and the student
    created --scheme PLAIN; the same clients now use CRAM-MD5 and APOP.
    """

    challengeAuth = True
    studentScheme = "PLAIN"

    @defer.inlineCallbacks
    def test_curl(self):
        """curl logs in with CRAM-MD5 over IMAP, POP3 and SMTP."""
        if missing("curl", "curl"):
            raise unittest.SkipTest(missing("curl", "curl"))
        for run, command in ((self.curlIMAP, "AUTHENTICATE CRAM-MD5"),
                             (self.curlPOP3, "AUTH CRAM-MD5"),
                             (self.curlSubmission, "AUTH CRAM-MD5")):
            result = yield run()
            self.assertRegex(result[1], r"(?m)^> (A\d+ )?%s\r$" % (command,))

    @defer.inlineCallbacks
    def test_snail(self):
        """s-nail logs in with APOP."""
        if missing("s-nail", "s-nail"):
            raise unittest.SkipTest(missing("s-nail", "s-nail"))
        yield self.snailPOP3()
        transcripts = yield self.closedTranscripts("pop3")
        self.assertIn("C: APOP student@lab.test ", transcripts)

    @defer.inlineCallbacks
    def test_mutt(self):
        """mutt logs in with CRAM-MD5 over SMTP."""
        if missing("mutt", "mutt"):
            raise unittest.SkipTest(missing("mutt", "mutt"))
        result, debug = yield self.muttSubmission()
        self.assertIn("smtp_auth_gsasl: using mech CRAM-MD5", debug)

    @defer.inlineCallbacks
    def test_muttIMAP(self):
        """mutt logs in with CRAM-MD5 over IMAP, sending "AUTHENTICATE CRAM-MD5 " (SASL-IR, empty)."""
        for name, package in (("mutt", "mutt"), ("tmux", "tmux")):
            if missing(name, package):
                raise unittest.SkipTest(missing(name, package))
        debug = yield self.muttIMAP()
        self.assertIn("imap_auth_gsasl: using mech CRAM-MD5", debug)
        transcripts = yield self.closedTranscripts("imap")
        self.assertIn(" C: a0000 AUTHENTICATE CRAM-MD5 \n", transcripts)
