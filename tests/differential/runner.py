"""
The differential runner: the same corpus delivered into two Maildirs, one
served by mailstack (delivered through its store, as a local delivery does)
and one by a private Dovecot (delivered with Dovecot's own APPEND), and the
same session scripts run against both over real sockets, answer by answer.
"""

import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from twisted.internet import defer, threads

from tests.differential.client import RawClient
from tests.differential.normalise import Normaliser
from tests.helpers import BASE_CONFIG, listenerTOML, startServer
from tests.interop import Dovecot, missing, sharedDataDir

USER = "demo@lab.test"
PASSWORD = "demo"
# OBJECTID off: Dovecot 2.3 has no OBJECTID, so its MAILBOXID codes would be the only difference.
LISTENERS = listenerTOML("imap", name="imap", allow_plaintext_auth=True, disabled=["OBJECTID"])


@dataclass
class Difference:
    """
    One step whose answers differ: C{command} its text (literals inline),
    C{original} as the script gave it, C{ours} and C{theirs} the normalised
    responses only one server sent.
    """
    script: str
    step: int
    command: bytes
    original: object
    ours: list
    theirs: list

    def describe(self):
        def show(lines):
            return "".join("      %r\n" % (line,) for line in lines)
        return ("%s step %d: %r\n    mailstack:\n%s    Dovecot:\n%s"
                % (self.script, self.step, self.command, show(self.ours), show(self.theirs)))


def dovecotMissing():
    """
    @return: why the harness cannot run (Dovecot's IMAP server missing), or
        L{None}.
    """
    reason = missing("dovecot", "dovecot-imapd")
    if reason is None and not any(os.path.exists(os.path.join(d, "imap"))
                                  for d in ("/usr/lib/dovecot", "/usr/libexec/dovecot")):
        reason = "dovecot's imap service not installed (Debian package dovecot-imapd)"
    return reason


def internalDate(timestamp):
    """An IMAP date-time string (UTC) for a Unix time."""
    return time.strftime('"%d-%b-%Y %H:%M:%S +0000"', time.gmtime(timestamp)).encode()


def commandText(command):
    if isinstance(command, bytes):
        return command
    return b"".join(p[0] if isinstance(p, tuple) else p for p in command)


class _Sessions:
    """The numbered logged-in connections of one server during one script."""

    def __init__(self, port):
        self.port = port
        self.clients = {}

    def run(self, index, command):
        client = self.clients.get(index)
        if client is None:
            client = self.clients[index] = RawClient(self.port)
            tag, responses = client.command(b"LOGIN %s %s" % (USER.encode(), PASSWORD.encode()))
            if not responses[-1].startswith(tag + b" OK"):
                raise AssertionError("login failed: %r" % (responses,))
        tag, responses = client.command(command)
        if commandText(command).upper().startswith(b"LOGOUT"):
            client.close()
            del self.clients[index]
        # Tags are compared as the same word on both sides.
        return [r[len(tag) + 1:] if r.startswith(tag + b" ") else r for r in responses]

    def close(self):
        for client in self.clients.values():
            try:
                client.command(b"LOGOUT")
            except Exception:
                pass
            client.close()
        self.clients = {}


class Differential:
    """
    mailstack and a private Dovecot side by side for one test (both stopped
    when it ends), the same messages delivered to C{demo@lab.test}'s INBOX
    on each.
    """

    def __init__(self, testCase):
        self.testCase = testCase
        self.ours = Normaliser()
        self.theirs = Normaliser()

    @defer.inlineCallbacks
    def start(self, messages):
        """Start both servers and deliver C{messages} (a list of L{corpus.Message})."""
        text, dataDir = sharedDataDir(self.testCase, BASE_CONFIG)
        self.server, _ = startServer(self.testCase, LISTENERS, text)
        self.ourPort = self.server.listenerPort("imap")
        theirDir = tempfile.mkdtemp(prefix="mailstack-differential-")
        os.chmod(theirDir, 0o711)
        self.testCase.addCleanup(shutil.rmtree, theirDir, True)
        shutil.copy(os.path.join(dataDir, "users"), os.path.join(theirDir, "users"))
        self.dovecot = Dovecot(self.testCase, theirDir)
        self.dovecot.handOver(os.path.join(theirDir, "mail", "lab.test"))
        yield self.dovecot.start()
        self.theirPort = self.dovecot.imapPort
        box = yield self.server.store.account(USER).openMailbox("INBOX")
        for m in messages:
            yield box.append(m.data, tuple(m.flags), m.internalDate)
        yield threads.deferToThread(self._appendToDovecot, messages)

    def _appendToDovecot(self, messages):
        client = RawClient(self.theirPort)
        try:
            client.command(b"LOGIN %s %s" % (USER.encode(), PASSWORD.encode()))
            for m in messages:
                tag, responses = client.command(
                    [b"APPEND INBOX (%s) %s " % (" ".join(m.flags).encode(),
                                                  internalDate(m.internalDate)),
                     (m.data,)])
                if not responses[-1].startswith(tag + b" OK"):
                    raise AssertionError("Dovecot refused %s: %r" % (m.name, responses))
            client.command(b"LOGOUT")
        finally:
            client.close()

    def run(self, scripts):
        """
        Run C{scripts} against both servers (in a thread: the clients block).

        @return: a Deferred firing with the list of L{Difference}s.
        """
        return threads.deferToThread(self._runAll, scripts)

    def _runAll(self, scripts):
        differences = []
        for script in scripts:
            ours, theirs = _Sessions(self.ourPort), _Sessions(self.theirPort)
            try:
                for i, (session, command) in enumerate(script.steps):
                    a = self.ours.responses(ours.run(session, command))
                    b = self.theirs.responses(theirs.run(session, command))
                    if a != b:
                        differences.append(Difference(script.name, i, commandText(command),
                                                      command, *_trimmed(a, b)))
            finally:
                ours.close()
                theirs.close()
        return differences


def _trimmed(a, b):
    """The two answers without the responses both hold."""
    return [x for x in a if x not in b], [x for x in b if x not in a]
