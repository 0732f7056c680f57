"""
A store whose back end has gone away (L{StoreUnavailable}: a database that
stopped answering) gives each protocol's temporary reply, one log line and
no traceback, and the session stays usable (issue 13): IMAP C{NO
[UNAVAILABLE]} (RFC 5530), POP3 C{-ERR [SYS/TEMP]} (RFC 3206), SMTP C{451
4.3.0}; once it answers again, the same commands work.
"""

from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from mailstack.storage.interfaces import StoreUnavailable
from tests.test_imap_server import MESSAGE, IMAPTestMixin
from tests.test_pop3_server import POP3TestMixin
from tests.test_smtp_delivery import PolicySetup


class Outage:
    """Make C{obj.name} fail with L{StoreUnavailable} until L{end}."""

    def __init__(self, testCase, obj, name):
        self.obj, self.name = obj, name
        self.real = getattr(obj, name)
        setattr(obj, name, lambda *a, **kw: defer.fail(StoreUnavailable("database gone")))
        testCase.addCleanup(self.end)

    def end(self):
        setattr(self.obj, self.name, self.real)


class LogLines:
    def __init__(self, testCase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testCase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def tracebacks(self):
        return [e for e in self.events if "log_failure" in e]

    def mentioning(self, text):
        from twisted.logger import formatEvent
        return [e for e in self.events if text in formatEvent(e)]


class IMAPUnavailableTests(IMAPTestMixin, unittest.TestCase):
    storeName = "memory"

    def test_selectAndAppend(self):
        """SELECT and APPEND while the store is unavailable: NO [UNAVAILABLE], one log
        line each, no traceback; afterwards the same commands succeed."""
        log = LogLines(self)
        self.login()
        outage = Outage(self, self.account, "openMailbox")
        self.assertEqual(self.send(b"s SELECT INBOX\r\n"),
                         b"s NO [UNAVAILABLE] Mail storage is temporarily unavailable\r\n")
        out = self.send(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(MESSAGE), MESSAGE))
        self.assertEqual(out, b"a NO [UNAVAILABLE] Mail storage is temporarily unavailable\r\n")
        self.assertEqual(len(log.mentioning("store unavailable")), 2)
        self.assertEqual(log.tracebacks(), [])
        outage.end()
        self.assertIn(b"s OK [READ-WRITE]", self.send(b"s SELECT INBOX\r\n"))


class POP3UnavailableTests(POP3TestMixin, unittest.TestCase):
    storeName = "memory"

    def test_login(self):
        """PASS while the store is unavailable: -ERR [SYS/TEMP], one log line, no
        traceback; the next login works."""
        log = LogLines(self)
        outage = Outage(self, self.store.account("alice@lab.test"), "openMailbox")
        session = self.connect()
        self.assertEqual(session.login(),
                         b"-ERR [SYS/TEMP] Cannot open the mailbox, try again later\r\n")
        self.assertEqual(len(log.mentioning("cannot open the maildrop")), 1)
        self.assertEqual(log.tracebacks(), [])
        outage.end()
        self.assertTrue(session.login().startswith(b"+OK Logged in"))


class SMTPUnavailableTests(PolicySetup, unittest.TestCase):
    storeName = "memory"

    def test_delivery(self):
        """Delivery while the store is unavailable: 451 4.3.0 (the sender retries),
        nothing stored; later it is delivered."""
        outage = Outage(self, self.store, "deliver")
        reply = self.successResultOf(self.deliver([("demo@lab.test", "local")]))
        self.assertEqual((reply.code, reply.status), (451, "4.3.0"))
        outage.end()
        self.assertIsNone(self.successResultOf(self.deliver([("demo@lab.test", "local")])))
        self.assertEqual(len(self.delivered()), 1)
