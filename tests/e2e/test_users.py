"""
End to end with the database backends: a BLF-CRYPT user created in SQLite,
or in PostgreSQL (a private server the tests start), logs in over SMTP
submission, POP3 and IMAP on real sockets. A locked SQLite database, or a
PostgreSQL server stopped in the middle of the sessions, gives each
protocol's temporary error; once it is back, the same sessions work.
"""

import base64
import socket
import sqlite3

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.auth.pgdb import PostgreSQLUsers
from mailstack.auth.sqlitedb import SQLiteUsers
from tests.helpers import E2EMixin, LogWatch, listenerTOML
from tests.postgres import PostgreSQLMixin

USER, PASSWORD = "student@lab.test", "tulip-42"

LISTENERS = (listenerTOML("submission", name="submission", allow_plaintext_auth=True)
             + listenerTOML("smtp", name="smtp")
             + listenerTOML("pop3", name="pop3", allow_plaintext_auth=True)
             + listenerTOML("imap", name="imap", allow_plaintext_auth=True))

SMTP_TEMPORARY_AUTH = b"454 4.7.0 Temporary authentication failure"
SMTP_TEMPORARY_RCPT = b"451 4.3.0 Local error in processing; please try again"
IMAP_UNAVAILABLE = b"a NO [UNAVAILABLE] Authentication temporarily unavailable"
POP3_TEMPORARY = b"-ERR [SYS/TEMP] Authentication temporarily unavailable, try again later"


class SessionsMixin:
    """Scripted client sessions on the server's listeners, run in a thread."""

    def session(self, name, script):
        """
        Connect to listener C{name}, read the greeting, then for each
        C{(line, ends)} send the line and read until a line starting with
        one of C{ends}. @return: (in a thread) the replies' last lines.
        """
        def run():
            with socket.create_connection(("127.0.0.1", self.port(name)), timeout=10) as s:
                f = s.makefile("rb")
                f.readline()
                answers = []
                for line, ends in script:
                    if callable(line):
                        line()
                        continue
                    s.sendall(line + b"\r\n")
                    while True:
                        reply = f.readline()
                        if not reply or reply.startswith(ends):
                            break
                    answers.append(reply.rstrip(b"\r\n"))
                return answers
        return self.inThread(run)

    def plain(self):
        return base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode())

    @defer.inlineCallbacks
    def checkLogins(self):
        """The user logs in over submission, POP3 and IMAP; a wrong password fails."""
        smtp = yield self.session("submission", [
            (b"EHLO client", (b"250 ",)), (b"AUTH PLAIN " + self.plain(), (b"2", b"4", b"5"))])
        self.assertEqual(smtp[1], b"235 2.7.0 Authentication successful")
        pop3 = yield self.session("pop3", [
            (b"USER student", (b"+OK", b"-ERR")), (b"PASS " + PASSWORD.encode(), (b"+OK", b"-ERR"))])
        self.assertTrue(pop3[1].startswith(b"+OK Logged in"), pop3)
        imap = yield self.session("imap", [
            (b"a LOGIN student@lab.test " + PASSWORD.encode(), (b"a ",)),
            (b"b LOGIN x wrong", (b"b ",))])
        self.assertTrue(imap[0].startswith(b"a OK"), imap)
        wrong = yield self.session("imap", [(b"a LOGIN student@lab.test wrong", (b"a ",))])
        self.assertTrue(wrong[0].startswith(b"a NO [AUTHENTICATIONFAILED]"), wrong)


class SQLiteUsersTests(SessionsMixin, E2EMixin, unittest.TestCase):
    listeners = '\n[users]\nbackend = "sqlite"\n' + LISTENERS

    def setUp(self):
        E2EMixin.setUp(self)
        self.assertIsInstance(self.server.users, SQLiteUsers)
        # The database answers "locked" at once in the fault tests (no thread
        # has opened its connection yet: each opens with this timeout).
        self.server.users.busyTimeout = 0.05
        self.server.users.addUser(USER, PASSWORD)

    def lockDatabase(self):
        """Another program holds the database's write lock; @return: its release."""
        other = sqlite3.connect(self.server.users.path, isolation_level=None,
                                check_same_thread=False)
        other.execute("BEGIN EXCLUSIVE")
        released = []

        def release():
            if not released:
                released.append(True)
                other.execute("ROLLBACK")
                other.close()
        self.addCleanup(release)
        return release

    def test_logins(self):
        """The BLF-CRYPT user in the database logs in over submission (AUTH PLAIN), POP3
        (USER/PASS) and IMAP (LOGIN); a wrong password fails."""
        return self.checkLogins()

    @defer.inlineCallbacks
    def test_lockedDatabase(self):
        """While another program holds the database locked: AUTH gets 454 4.7.0, RCPT to a
        local user 451 4.3.0, IMAP LOGIN NO [UNAVAILABLE], POP3 PASS -ERR [SYS/TEMP]; once
        released, the same sessions log in and the recipient is accepted."""
        release = self.lockDatabase()
        smtp = yield self.session("submission", [
            (b"EHLO client", (b"250 ",)),
            (b"AUTH PLAIN " + self.plain(), (b"2", b"4", b"5")),
            (release, None),
            (b"AUTH PLAIN " + self.plain(), (b"2", b"4", b"5"))])
        self.assertEqual(smtp[1:], [SMTP_TEMPORARY_AUTH,
                                    b"235 2.7.0 Authentication successful"])
        release = self.lockDatabase()
        rcpt = yield self.session("smtp", [
            (b"EHLO client", (b"250 ",)), (b"MAIL FROM:<x@example.com>", (b"2", b"5")),
            (b"RCPT TO:<student@lab.test>", (b"2", b"4", b"5")),
            (release, None),
            (b"RCPT TO:<student@lab.test>", (b"2", b"4", b"5"))])
        self.assertEqual(rcpt[2:], [SMTP_TEMPORARY_RCPT,
                                    b"250 2.1.5 Recipient <student@lab.test> OK"])
        release = self.lockDatabase()
        imap = yield self.session("imap", [
            (b"a LOGIN student@lab.test " + PASSWORD.encode(), (b"a ",)),
            (release, None),
            (b"b LOGIN student@lab.test " + PASSWORD.encode(), (b"b ",))])
        self.assertEqual(imap[0], IMAP_UNAVAILABLE)
        self.assertTrue(imap[1].startswith(b"b OK"), imap)
        release = self.lockDatabase()
        pop3 = yield self.session("pop3", [
            (b"USER student", (b"+OK", b"-ERR")), (b"PASS " + PASSWORD.encode(), (b"+OK", b"-ERR")),
            (release, None),
            (b"USER student", (b"+OK", b"-ERR")), (b"PASS " + PASSWORD.encode(), (b"+OK", b"-ERR"))])
        self.assertEqual(pop3[1], POP3_TEMPORARY)
        self.assertTrue(pop3[3].startswith(b"+OK Logged in"), pop3)


class PostgreSQLUsersTests(PostgreSQLMixin, SessionsMixin, E2EMixin, unittest.TestCase):
    """The server's users in PostgreSQL (a database of the tests' private server)."""

    def setUp(self):
        PostgreSQLMixin.setUp(self)
        self.listeners = '\n[users]\nbackend = "postgresql"\ndsn = "%s"\n%s' % (
            self.dsn, LISTENERS)
        E2EMixin.setUp(self)
        self.assertIsInstance(self.server.users, PostgreSQLUsers)
        self.addCleanup(self.server.users.close)
        self.server.users.addUser(USER, PASSWORD)

    def test_logins(self):
        """The BLF-CRYPT user in PostgreSQL logs in over submission (AUTH PLAIN), POP3
        (USER/PASS) and IMAP (LOGIN); a wrong password fails."""
        return self.checkLogins()

    @defer.inlineCallbacks
    def test_databaseGoesAway(self):
        """While the PostgreSQL server is stopped: AUTH gets 454 4.7.0, RCPT to a local
        user 451 4.3.0, IMAP LOGIN NO [UNAVAILABLE], POP3 PASS -ERR [SYS/TEMP], with no
        traceback logged; once it is started again, the same sessions log in and the
        recipient is accepted."""
        watch = LogWatch(self)
        stop, start = self.postgres.stop, self.postgres.start
        self.addCleanup(start)
        smtp = yield self.session("submission", [
            (b"EHLO client", (b"250 ",)),
            (stop, None),
            (b"AUTH PLAIN " + self.plain(), (b"2", b"4", b"5")),
            (start, None),
            (b"AUTH PLAIN " + self.plain(), (b"2", b"4", b"5"))])
        self.assertEqual(smtp[1:], [SMTP_TEMPORARY_AUTH, b"235 2.7.0 Authentication successful"])
        rcpt = yield self.session("smtp", [
            (b"EHLO client", (b"250 ",)), (b"MAIL FROM:<x@example.com>", (b"2", b"5")),
            (stop, None),
            (b"RCPT TO:<student@lab.test>", (b"2", b"4", b"5")),
            (start, None),
            (b"RCPT TO:<student@lab.test>", (b"2", b"4", b"5"))])
        self.assertEqual(rcpt[2:], [SMTP_TEMPORARY_RCPT,
                                    b"250 2.1.5 Recipient <student@lab.test> OK"])
        imap = yield self.session("imap", [
            (stop, None),
            (b"a LOGIN student@lab.test " + PASSWORD.encode(), (b"a ",)),
            (start, None),
            (b"b LOGIN student@lab.test " + PASSWORD.encode(), (b"b ",))])
        self.assertEqual(imap[0], IMAP_UNAVAILABLE)
        self.assertTrue(imap[1].startswith(b"b OK"), imap)
        pop3 = yield self.session("pop3", [
            (stop, None),
            (b"USER student", (b"+OK", b"-ERR")), (b"PASS " + PASSWORD.encode(), (b"+OK", b"-ERR")),
            (start, None),
            (b"USER student", (b"+OK", b"-ERR")), (b"PASS " + PASSWORD.encode(), (b"+OK", b"-ERR"))])
        self.assertEqual(pop3[1], POP3_TEMPORARY)
        self.assertTrue(pop3[3].startswith(b"+OK Logged in"), pop3)
        self.assertEqual(watch.problems(), [])
