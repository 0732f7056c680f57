"""
One table of SASL edge cases run against SMTP, POP3 and IMAP over a
StringTransport: the same client input must mean the same thing in all three
engines (only the words differ: C{334}/C{+ }, reply codes and texts). Each
engine's replies are classified into one vocabulary (challenge, ok, failed,
cancelled, invalid, malformed, toolong) and compared with the table.
"""

import base64
import hashlib
import hmac
import os
import re

from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from mailstack.auth.checkers import UserDirectoryChecker
from mailstack.auth.directory import UserDirectory
from mailstack.auth.realm import MailRealm, buildPortal
from mailstack.auth.userdb import PasswdFile
from mailstack.imap.mailbox import IIMAPAccount, avatarFactory
from mailstack.imap.server import IMAPServer, IMAPSettings
from mailstack.pop3.mailbox import IMaildrop, maildropAdapter
from mailstack.pop3.server import POP3Server, POP3Settings
from mailstack.smtp.delivery import avatarAdapters as smtpAdapters
from mailstack.smtp.server import SMTPServer, SMTPSettings
from mailstack.storage.account import MaildirStore
from tests.fakes import FakeReactor

LONG = b"A" * 20000  # over every engine's line limit below, SMTP's 12,288 included


def b64(data):
    return base64.b64encode(data)


def plain(authzid, authcid, password):
    return b64(authzid + b"\0" + authcid + b"\0" + password)


def cram(user, password):
    """A response line computed from the challenge just received."""
    def respond(challenge):
        digest = hmac.new(password, challenge, hashlib.md5).hexdigest().encode()
        return b64(user + b" " + digest)
    return respond


COMMON = dict(hostname="mail.lab.test", tlsMode="implicit", allowPlaintextAuth=True,
              defaultDomain="lab.test", authFailuresDelay=100, authFailuresDisconnect=100,
              maxBadCommands=100)


class Engine:
    """How one protocol says AUTH, and what its replies mean."""

    name = None

    def __init__(self, portal, users, reactor):
        self.portal, self.users, self.reactor = portal, users, reactor

    def connect(self):
        self.server = self.build()
        self.transport = StringTransport()
        self.server.makeConnection(self.transport)
        self.transport.clear()
        self.prepare()

    def prepare(self):
        pass

    def send(self, data):
        self.transport.clear()
        self.server.dataReceived(data)
        return self.transport.value()

    def close(self):
        self.server.connectionLost(Failure(Exception("test over")))

    def classify(self, output):
        """The replies in C{output}, as the shared vocabulary."""
        kinds = []
        for line in output.split(b"\r\n"):
            if line:
                kind = self.kind(line)
                if kind is not None:
                    kinds.append(kind)
        return kinds


class SMTP(Engine):
    name = "smtp"

    def build(self):
        users = self.users

        class Policy:
            def plaintextSecretsAvailable(self):
                return users.allPlaintextSecrets()
        return SMTPServer(SMTPSettings(**COMMON), Policy(), self.portal, self.reactor)

    def prepare(self):
        self.send(b"EHLO client.lab.test\r\n")

    def auth(self, mechanism):
        return b"AUTH " + mechanism

    command = b"NOOP"

    def kind(self, line):
        if line.startswith(b"334 "):
            return ("challenge", base64.b64decode(line[4:]))
        for prefix, kind in [(b"235 ", "ok"), (b"535 ", "failed"), (b"250 ", "command"),
                             (b"501 5.0.0 Authentication cancelled", "cancelled"),
                             (b"501 5.5.2 Invalid base64", "invalid"), (b"501 ", "malformed"),
                             (b"500 5.5.6 ", "toolong")]:
            if line.startswith(prefix):
                return kind
        return ("other", line)


class POP3(Engine):
    name = "pop3"

    def build(self):
        return POP3Server(POP3Settings(maxLine=8192, **COMMON), self.portal,
                          self.users.allPlaintextSecrets, self.reactor)

    def auth(self, mechanism):
        return b"AUTH " + mechanism

    command = b"CAPA"

    def classify(self, output):
        # CAPA's list is one reply, not one per line
        head, capa, _ = output.partition(b"+OK Capability list follows\r\n")
        kinds = Engine.classify(self, head)
        return kinds + ["command"] if capa else kinds

    def kind(self, line):
        if line == b"+" or line.startswith(b"+ "):
            return ("challenge", base64.b64decode(line[2:]))
        for prefix, kind in [(b"+OK Logged in", "ok"), (b"-ERR [AUTH] Authentication failed", "failed"),
                             (b"-ERR Authentication cancelled", "cancelled"),
                             (b"-ERR Invalid base64", "invalid"),
                             (b"-ERR Authentication exchange line too long", "toolong"),
                             (b"-ERR Malformed", "malformed"), (b"-ERR Syntax: AUTH", "malformed")]:
            if line.startswith(prefix):
                return kind
        return ("other", line)


class IMAP(Engine):
    name = "imap"

    def build(self):
        return IMAPServer(IMAPSettings(maxLineLength=8192, **COMMON), self.portal,
                          self.reactor, self.users.allPlaintextSecrets)

    def auth(self, mechanism):
        return b"a AUTHENTICATE " + mechanism

    command = b"b NOOP"

    def kind(self, line):
        if line == b"+" or line.startswith(b"+ "):
            return ("challenge", base64.b64decode(line[2:]))
        for prefix, kind in [(b"a OK ", "ok"), (b"a NO [AUTHENTICATIONFAILED]", "failed"),
                             (b"b OK ", "command"),
                             (b"a BAD Authentication cancelled", "cancelled"),
                             (b"a BAD Invalid base64", "invalid"),
                             (b"a BAD Line too long", "toolong"), (b"a BAD ", "malformed")]:
            if line.startswith(prefix):
                return kind
        if line.startswith(b"* "):
            return None
        return ("other", line)


ENGINES = (SMTP, POP3, IMAP)

DEMO = b"demo@lab.test"

# name: (mechanism and initial response as sent on the AUTH line,
#        the client's further lines, the replies expected)
CASES = {
    "plain initial response": (
        b"PLAIN " + plain(b"", DEMO, b"demo"), [], ["ok"]),
    "plain without initial response": (
        b"PLAIN", [plain(b"", DEMO, b"demo")], [("challenge", b""), "ok"]),
    "plain trailing space after the mechanism": (
        b"PLAIN ", [plain(b"", DEMO, b"demo")], [("challenge", b""), "ok"]),
    "plain wrong password": (
        b"PLAIN " + plain(b"", DEMO, b"nope"), [], ["failed"]),
    "plain '=' initial response is an empty message": (
        b"PLAIN =", [], ["malformed"]),
    "plain '=' continuation is an empty message": (
        b"PLAIN", [b"="], [("challenge", b""), "malformed"]),
    "cancel the initial response": (
        b"PLAIN *", [], ["cancelled"]),
    "cancel a continuation": (
        b"LOGIN", [b"*"], [("challenge", b"Username:"), "cancelled"]),
    "bad base64 initial response": (
        b"PLAIN !!!!", [], ["invalid"]),
    "bad base64 continuation": (
        b"PLAIN", [b"@@@@"], [("challenge", b""), "invalid"]),
    "plain without authcid": (
        b"PLAIN " + plain(b"", b"", b"demo"), [], ["malformed"]),
    "plain with two parts": (
        b"PLAIN " + b64(DEMO + b"\0demo"), [], ["malformed"]),
    "plain with four parts": (
        b"PLAIN " + b64(b"\0" + DEMO + b"\0demo\0x"), [], ["malformed"]),
    "plain empty password": (
        b"PLAIN " + plain(b"", DEMO, b""), [], ["failed"]),
    "authzid equal to authcid": (
        b"PLAIN " + plain(DEMO, DEMO, b"demo"), [], ["ok"]),
    "authzid of another user": (
        b"PLAIN " + plain(b"alice@lab.test", DEMO, b"demo"), [], ["failed"]),
    "authzid in another case": (
        b"PLAIN " + plain(b"DEMO@Lab.Test", DEMO, b"demo"), [], ["ok"]),
    "authzid in full, authcid through default_domain": (
        b"PLAIN " + plain(DEMO, b"demo", b"demo"), [], ["ok"]),
    "authzid through default_domain, authcid in full": (
        b"PLAIN " + plain(b"demo", DEMO, b"demo"), [], ["ok"]),
    "authzid of another user, wrong password": (
        b"PLAIN " + plain(b"alice@lab.test", DEMO, b"nope"), [], ["failed"]),
    "login two steps": (
        b"LOGIN", [b64(DEMO), b64(b"demo")],
        [("challenge", b"Username:"), ("challenge", b"Password:"), "ok"]),
    "login initial response is the user": (
        b"LOGIN " + b64(DEMO), [b64(b"demo")], [("challenge", b"Password:"), "ok"]),
    "login '=' password is empty": (
        b"LOGIN", [b64(DEMO), b"="],
        [("challenge", b"Username:"), ("challenge", b"Password:"), "failed"]),
    "login wrong password": (
        b"LOGIN", [b64(b"demo"), b64(b"nope")],
        [("challenge", b"Username:"), ("challenge", b"Password:"), "failed"]),
    "cram-md5 right": (
        b"CRAM-MD5", [cram(DEMO, b"demo")], ["challenge", "ok"]),
    "cram-md5 wrong": (
        b"CRAM-MD5", [cram(DEMO, b"nope")], ["challenge", "failed"]),
    "cram-md5 bare name through default_domain": (
        b"CRAM-MD5", [cram(b"demo", b"demo")], ["challenge", "ok"]),
    "cram-md5 '=' initial response": (
        b"CRAM-MD5 =", [cram(DEMO, b"demo")], ["challenge", "ok"]),
    "cram-md5 trailing space after the mechanism": (
        b"CRAM-MD5 ", [cram(DEMO, b"demo")], ["challenge", "ok"]),
    "cram-md5 refuses an initial response": (
        b"CRAM-MD5 " + b64(b"demo 00"), [], ["malformed"]),
    "cram-md5 malformed response": (
        b"CRAM-MD5", [b64(b"nodigest")], ["challenge", "malformed"]),
    "over-long response ends the exchange": (
        b"PLAIN", [LONG], [("challenge", b""), "toolong"]),
}


class PortalMixin:
    """
    Users demo@lab.test (password demo) and alice@lab.test, both {PLAIN}, with
    default_domain lab.test; a store and a portal serving all three protocols.
    """

    def setUp(self):
        self.reactor = FakeReactor()
        base = self.mktemp()
        os.makedirs(base)
        self.users = PasswdFile(os.path.join(base, "users"), defaultDomain="lab.test",
                                bcryptRounds=4)
        self.users.addUser("demo@lab.test", "demo", scheme="PLAIN")
        self.users.addUser("alice@lab.test", "alice-pw", scheme="PLAIN")
        self.store = MaildirStore(os.path.join(base, "mail"))
        adapters = dict(smtpAdapters())
        adapters[IMaildrop] = maildropAdapter
        adapters[IIMAPAccount] = avatarFactory
        self.portal = buildPortal(MailRealm(self.store, adapters),
                                  [UserDirectoryChecker(UserDirectory(self.users, self.reactor))])


class ConformanceTests(PortalMixin, unittest.TestCase):
    """
    Every case of L{CASES}, in every engine, gives the same replies.
    """

    def engine(self, cls):
        engine = cls(self.portal, self.users, self.reactor)
        engine.connect()
        return engine

    def run_case(self, cls, first, lines):
        """Send the case line by line; the replies classified."""
        engine = self.engine(cls)
        replies = engine.classify(engine.send(engine.auth(first) + b"\r\n"))
        challenge = None
        for kind in replies:
            if isinstance(kind, tuple) and kind[0] == "challenge":
                challenge = kind[1]
        for line in lines:
            if callable(line):
                line = line(challenge)
            out = engine.classify(engine.send(line + b"\r\n"))
            replies += out
        # after the exchange the session takes commands again
        after = engine.classify(engine.send(engine.command + b"\r\n"))
        engine.close()  # POP3: the maildrop lock goes with the session
        return replies, after

    def test_cases(self):
        """Each edge case gets the same replies (challenges, outcome) from SMTP, POP3 and IMAP."""
        problems = []
        for name, (first, lines, expected) in sorted(CASES.items()):
            for cls in ENGINES:
                replies, after = self.run_case(cls, first, lines)
                shown = [k if not (isinstance(k, tuple) and k[0] == "challenge"
                                   and e == "challenge") else "challenge"
                         for k, e in zip(replies, expected + [None] * len(replies))]
                if shown != expected:
                    problems.append("%s: %s: %r, expected %r" % (cls.name, name, replies,
                                                                 expected))
                elif after != ["command"]:
                    problems.append("%s: %s: after the exchange %r" % (cls.name, name, after))
        self.assertEqual(problems, [])

    def test_challengeFromTheEngineClock(self):
        """CRAM-MD5's challenge (and POP3's APOP timestamp) is <pid.seconds.random@host> on the engine's clock in all three."""
        self.reactor.advance(1234567)
        shape = re.compile(rb"^<%d\.1234567\.[0-9a-f]+@mail\.lab\.test>$" % (os.getpid(),))
        for cls in ENGINES:
            engine = self.engine(cls)
            (kind,) = engine.classify(engine.send(engine.auth(b"CRAM-MD5") + b"\r\n"))
            engine.close()
            self.assertEqual(kind[0], "challenge", cls.name)
            self.assertRegex(kind[1], shape, cls.name)
        server = POP3(self.portal, self.users, self.reactor).build()
        transport = StringTransport()
        server.makeConnection(transport)
        server.connectionLost(Failure(Exception("test over")))
        self.assertRegex(transport.value().split()[-1], shape)

    def test_pipelinedAtEverySplitPoint(self):
        """The client's whole input pipelined, cut in two at every octet, gets the same replies."""
        for name in ("login two steps", "plain '=' continuation is an empty message",
                     "cancel a continuation", "authzid in another case"):
            first, lines, expected = CASES[name]
            for cls in ENGINES:
                probe = self.engine(cls)
                data = probe.auth(first) + b"\r\n" + b"".join(l + b"\r\n" for l in lines)
                data += probe.command + b"\r\n"
                whole = probe.classify(probe.send(data))
                probe.close()
                self.assertEqual(whole, expected + ["command"], (cls.name, name))
                for cut in range(1, len(data)):
                    engine = self.engine(cls)
                    out = engine.send(data[:cut])
                    out += engine.send(data[cut:])
                    engine.close()
                    self.assertEqual(engine.classify(out), whole, (cls.name, name, cut))
