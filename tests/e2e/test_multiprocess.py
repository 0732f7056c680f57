"""
Two real C{twistd mailstack} processes over one data directory (one mail
directory, one users file), each with its own SMTP, IMAP and POP3 listeners:
POP3 stays exclusive across them, UIDs stay unique under concurrent APPENDs
and deliveries through both, and IDLE in one hears of mail delivered through
the other.
"""

import imaplib
import os
import poplib
import re
import signal
import smtplib
import socket
import sys
import threading
import textwrap
import time

from twisted.internet import defer, protocol, threads
from twisted.trial import unittest

import mailstack
from tests.helpers import listenerTOML

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")

# The children run the code under test (this checkout), not a copy pip
# installed into the virtualenv.
SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(mailstack.__file__)))

CONFIG = """\
[server]
hostname = "mail.lab.test"
data_dir = "{dataDir}"
domains = ["lab.test"]
default_domain = "lab.test"

[limits]
bcrypt_rounds = 4

[lab]
demo_account = true

[pop3]
# A login for a busy maildrop waits this long (the default is 5 s), here
# short enough that the refusal below comes quickly.
lock_wait = 2
"""

LISTENERS = (
    listenerTOML("smtp", name="smtp")
    + listenerTOML("imap", name="imap", allow_plaintext_auth=True)
    + listenerTOML("pop3", name="pop3", allow_plaintext_auth=True))

LISTENING = re.compile(r"\b(\w+) \(\w+\) listening on 127\.0\.0\.1:(\d+)")

# Generous: only "it arrived before this" is asserted, never how fast.
WAIT = 10


class TwistdProcess(protocol.ProcessProtocol):
    """
    One C{twistd -n mailstack} child: its output, the ports its listeners
    report, and Deferreds for "every listener is up" and "it ended".
    """

    def __init__(self, name, listeners):
        self.name = name
        self.expected = set(listeners)
        self.ports = {}
        self.output = []
        self.ready = defer.Deferred()
        self.ended = defer.Deferred()
        self.status = None
        self.signal = None

    def outReceived(self, data):
        self.output.append(data)
        for name, port in LISTENING.findall(data.decode("utf-8", "replace")):
            self.ports[name] = int(port)
        if not self.ready.called and self.expected <= set(self.ports):
            self.ready.callback(self)

    errReceived = outReceived

    def processEnded(self, reason):
        self.status = reason.value.exitCode
        self.signal = getattr(reason.value, "signal", None)
        if not self.ready.called:
            self.ready.errback(AssertionError(
                "twistd %s ended before listening:\n%s" % (self.name, self.text())))
        self.ended.callback(None)

    def text(self):
        return b"".join(self.output).decode("utf-8", "replace")


class TwoProcessesTests(unittest.TestCase):
    """
    Processes A and B started from two configs sharing one C{data_dir}.
    """

    if not os.path.exists(TWISTD):
        skip = "twistd is not installed next to %s" % (sys.executable,)
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        top = os.path.abspath(self.mktemp())
        self.dataDir = os.path.join(top, "var")
        self.inbox = os.path.join(self.dataDir, "mail", "lab.test", "demo")
        # A first: it creates the data directory and the demo account, which
        # B then finds.
        self.a = yield self.startTwistd(top, "a")
        self.b = yield self.startTwistd(top, "b")

    @defer.inlineCallbacks
    def startTwistd(self, top, name):
        from twisted.internet import reactor
        directory = os.path.join(top, name)
        os.makedirs(directory)
        config = os.path.join(directory, "mailstack.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(dataDir=self.dataDir) + textwrap.dedent(LISTENERS))
        child = TwistdProcess(name, ("smtp", "imap", "pop3"))
        reactor.spawnProcess(
            child, TWISTD,
            [TWISTD, "-n", "--pidfile=", "--logfile=-", "mailstack", "--config", config],
            env=childEnvironment(), path=directory)
        self.addCleanup(self.stopTwistd, child)
        timer = reactor.callLater(
            WAIT, lambda: child.ready.called or child.ready.errback(AssertionError(
                "twistd %s did not start listening:\n%s" % (name, child.text()))))
        try:
            yield child.ready
        finally:
            if timer.active():
                timer.cancel()
        return child

    @defer.inlineCallbacks
    def stopTwistd(self, child):
        """
        SIGTERM; the process must shut down cleanly: twistd's "Server Shut
        Down." and no traceback (twistd then ends itself with the signal it
        got, or exits 0).
        """
        if not child.ended.called:
            child.transport.signalProcess(signal.SIGTERM)
        yield child.ended
        self.assertIn((child.status, child.signal), ((0, None), (None, signal.SIGTERM)),
                      child.text())
        self.assertIn("Server Shut Down.", child.text())
        self.assertNotIn("Traceback", child.text())
        self.assertNotIn("Unhandled", child.text())

    # Blocking clients (run in threads)

    def imap(self, server):
        c = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=WAIT)
        c.login("demo@lab.test", "demo")
        return c

    def pop3(self, server):
        p = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=WAIT)
        p.user("demo@lab.test")
        p.pass_("demo")
        return p

    def deliver(self, server, messages):
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=WAIT) as s:
            for m in messages:
                s.sendmail("alice@lab.test", ["demo@lab.test"], m)

    def append(self, server, messages):
        """APPEND each message to INBOX; @return: the APPENDUID UIDs (None if not given)."""
        c = self.imap(server)
        uids = []
        try:
            for m in messages:
                typ, data = c.append("INBOX", None, None, m)
                self.assertEqual(typ, "OK", data)
                found = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0] or b"")
                uids.append(int(found.group(1)) if found else None)
        finally:
            c.logout()
        return uids

    def uidMap(self, server):
        """
        @return: C{[(uid, message-id)]} of INBOX in sequence order, as
            C{server} shows it.
        """
        c = self.imap(server)
        try:
            typ, data = c.select("INBOX", readonly=True)
            self.assertEqual(typ, "OK", data)
            typ, data = c.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            self.assertEqual(typ, "OK", data)
        finally:
            c.logout()
        result = []
        for item in data:
            if isinstance(item, tuple):
                uid = int(re.search(rb"\bUID (\d+)", item[0]).group(1))
                mid = re.search(rb"<([^>]+)>", item[1]).group(1).decode()
                result.append((uid, mid))
        return result

    def assertPOP3InUse(self, server):
        with self.assertRaises(poplib.error_proto) as caught:
            self.pop3(server).quit()
        self.assertTrue(caught.exception.args[0].startswith(b"-ERR [IN-USE] "),
                        caught.exception.args[0])

    # The tests

    def test_pop3Exclusive(self):
        """A POP3 session in one process refuses a login for the same maildrop in the other (-ERR [IN-USE]) until it quits."""

        def steps():
            self.deliver(self.a, [message("pop")])
            for holder, other in ((self.a, self.b), (self.b, self.a)):
                session = self.pop3(holder)
                self.assertEqual(session.stat()[0], 1)
                self.assertPOP3InUse(other)
                session.quit()
                later = self.pop3(other)
                self.assertEqual(later.stat()[0], 1)
                later.quit()

        return threads.deferToThread(steps)

    def test_pop3WaitsAcrossProcesses(self):
        """A POP3 login in one process waits while the other process's session holds
        the maildrop and proceeds as soon as it quits (well within the wait)."""

        def steps():
            self.deliver(self.a, [message("pop")])
            holder = self.pop3(self.a)
            waited = {}

            def login():
                started = time.monotonic()
                session = self.pop3(self.b)
                waited["seconds"] = time.monotonic() - started
                waited["count"] = session.stat()[0]
                session.quit()
            thread = threading.Thread(target=login)
            thread.start()
            time.sleep(0.5)
            self.assertTrue(thread.is_alive())  # still waiting, not refused
            holder.quit()
            thread.join(WAIT)
            self.assertEqual(waited.get("count"), 1)
            self.assertGreater(waited["seconds"], 0.4)

        return threads.deferToThread(steps)

    @defer.inlineCallbacks
    def test_uidsUniqueUnderConcurrentWrites(self):
        """Concurrent APPENDs and SMTP deliveries through both processes give every message its own UID, the same in both."""
        count = 6
        batches = {}
        work = []
        for server in (self.a, self.b):
            for how in ("append", "deliver"):
                for stream in range(2):
                    key = "%s-%s-%d" % (server.name, how, stream)
                    batches[key] = [message("%s-%d" % (key, i)) for i in range(count)]
                    work.append(threads.deferToThread(getattr(self, how), server, batches[key]))
        results = yield defer.gatherResults(work, consumeErrors=True)
        appendUIDs = {key: uids for key, uids in zip(batches, results) if "append" in key}

        seenA = yield threads.deferToThread(self.uidMap, self.a)
        seenB = yield threads.deferToThread(self.uidMap, self.b)
        self.assertEqual(seenA, seenB)
        uids = [uid for uid, mid in seenA]
        self.assertEqual(uids, sorted(set(uids)), "UIDs not strictly increasing: %r" % (uids,))
        expected = {messageId("%s-%d" % (key, i)) for key in batches for i in range(count)}
        self.assertEqual(sorted(mid for uid, mid in seenA), sorted(expected))
        byMessage = {mid: uid for uid, mid in seenA}
        for key, reported in appendUIDs.items():
            for i, uid in enumerate(reported):
                if uid is not None:
                    self.assertEqual(byMessage[messageId("%s-%d" % (key, i))], uid,
                                     "APPENDUID of %s-%d" % (key, i))
            given = [u for u in reported if u is not None]
            self.assertEqual(given, sorted(set(given)))

    @defer.inlineCallbacks
    def test_uidsNeverReusedWithExpunges(self):
        """APPEND and EXPUNGE through both processes at once (each client deleting the
        message it appended before, so lines of expunged messages pile up in the
        uidlist and it is recreated now and then while the other process appends to
        it): every APPENDUID is new, and both processes show the last message of each
        client under the UID it was given."""
        rounds = 8

        def client(server, key):
            c = self.imap(server)
            given = []
            try:
                typ, data = c.select("INBOX")
                self.assertEqual(typ, "OK", data)
                for i in range(rounds):
                    typ, data = c.append("INBOX", None, None, message("%s-%d" % (key, i)))
                    self.assertEqual(typ, "OK", data)
                    found = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0] or b"")
                    self.assertIsNotNone(found, data)
                    given.append(int(found.group(1)))
                    if i:
                        typ, data = c.uid("STORE", str(given[-2]), "+FLAGS.SILENT",
                                          r"(\Deleted)")
                        self.assertEqual(typ, "OK", data)
                        typ, data = c.expunge()
                        self.assertEqual(typ, "OK", data)
            finally:
                c.logout()
            return key, given

        work = [threads.deferToThread(client, server, "%s-x%d" % (server.name, n))
                for server in (self.a, self.b) for n in range(3)]
        results = yield defer.gatherResults(work, consumeErrors=True)
        given = [uid for _, uids in results for uid in uids]
        self.assertEqual(len(given), len(set(given)), "a UID given twice: %r" % (results,))
        seenA = yield threads.deferToThread(self.uidMap, self.a)
        seenB = yield threads.deferToThread(self.uidMap, self.b)
        self.assertEqual(seenA, seenB)
        self.assertEqual(sorted(seenA), sorted(
            (uids[-1], messageId("%s-%d" % (key, rounds - 1))) for key, uids in results))

    @defer.inlineCallbacks
    def test_idleBothWays(self):
        """An IDLE session in one process hears EXISTS for a message delivered through the other, both ways."""
        for watcher, deliverer in ((self.a, self.b), (self.b, self.a)):
            idle = yield threads.deferToThread(IdleClient, watcher.ports["imap"])
            self.addCleanup(idle.close)
            yield threads.deferToThread(
                self.deliver, deliverer, [message("idle-%s" % (deliverer.name,))])
            exists = yield threads.deferToThread(idle.waitExists, idle.exists + 1)
            self.assertGreaterEqual(exists, idle.exists + 1)
            yield threads.deferToThread(idle.close)


class IdleClient:
    """
    A minimal blocking IMAP client (imaplib has no IDLE before Python 3.14):
    logs in as the demo user, selects INBOX and starts IDLE.

    @ivar exists: the message count SELECT reported.
    """

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.file = self.sock.makefile("rb")
        self.readLine()
        self.command(b"a LOGIN demo@lab.test demo")
        lines = self.command(b"b SELECT INBOX")
        self.exists = max(int(m.group(1)) for m in
                          (re.match(rb"\* (\d+) EXISTS", line) for line in lines) if m)
        self.sock.sendall(b"c IDLE\r\n")
        line = self.readLine()
        if not line.startswith(b"+"):
            raise AssertionError("IDLE refused: %r" % (line,))

    def readLine(self):
        line = self.file.readline()
        if not line:
            raise AssertionError("server closed the connection")
        return line

    def command(self, line):
        tag = line.split(b" ", 1)[0]
        self.sock.sendall(line + b"\r\n")
        lines = []
        while True:
            reply = self.readLine()
            if reply.startswith(tag + b" "):
                if not reply.startswith(tag + b" OK"):
                    raise AssertionError("%r failed: %r" % (line, reply))
                return lines
            lines.append(reply)

    def waitExists(self, atLeast):
        """
        @return: the first C{* N EXISTS} count of at least C{atLeast} the
            server sends within L{WAIT} seconds (else AssertionError).
        """
        deadline = time.monotonic() + WAIT
        seen = []
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                line = self.readLine()
            except socket.timeout:
                break
            seen.append(line)
            found = re.match(rb"\* (\d+) EXISTS", line)
            if found and int(found.group(1)) >= atLeast:
                return int(found.group(1))
        raise AssertionError("no EXISTS >= %d within %d s; got %r" % (atLeast, WAIT, seen))

    def close(self):
        if self.sock is None:
            return
        try:
            self.sock.sendall(b"DONE\r\nz LOGOUT\r\n")
        except OSError:
            pass
        self.file.close()
        self.sock.close()
        self.sock = None


def childEnvironment():
    """This process's environment with L{SOURCE} first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [SOURCE] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def messageId(key):
    return "mp-%s@lab.test" % (key,)


def message(key):
    return ("From: Alice <alice@lab.test>\r\nTo: demo@lab.test\r\n"
            "Subject: two processes %s\r\nMessage-ID: <%s>\r\n"
            "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n"
            "Message %s.\r\n" % (key, messageId(key), key)).encode()
