"""
Tests for OBJECTID (RFC 8474): MAILBOXID in STATUS and as a response code of
SELECT, EXAMINE and CREATE, EMAILID and THREADID in FETCH, over a
StringTransport on both stores; ids stable across sessions, RENAME and (on
the Maildir store) a restart.
"""

import re

from twisted.trial import unittest

from mailstack.imap import objectid
from mailstack.storage.account import MaildirStore
from tests.stores import StoreChoice, everyStore
from tests.test_imap_server import IMAPTestMixin

ID = rb"[A-Za-z0-9_-]{1,255}"


class ObjectIdTests(IMAPTestMixin, unittest.TestCase):
    """
    MAILBOXID, EMAILID and THREADID in a session.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver()
        self.deliver()
        self.login()

    def mailboxIdOf(self, name, session=None):
        out = self.send(b"s STATUS %s (MAILBOXID)\r\n" % (name,), session)
        return re.match(rb'\* STATUS "?[^"]*"? \(MAILBOXID \((' + ID + rb')\)\)\r\n', out).group(1)

    def test_capability(self):
        """OBJECTID is advertised after login."""
        self.assertIn(b" OBJECTID", self.send(b"c CAPABILITY\r\n"))

    def test_select(self):
        """SELECT and EXAMINE answer OK [MAILBOXID (id)], the id STATUS gives."""
        wanted = self.mailboxIdOf(b"INBOX")
        for command in (b"SELECT", b"EXAMINE"):
            out = self.send(b"a %s INBOX\r\n" % (command,))
            self.assertIn(b"* OK [MAILBOXID (%s)] Ok\r\n" % (wanted,), out)

    def test_create(self):
        """CREATE's OK carries the new mailbox's MAILBOXID; another mailbox has another."""
        out = self.send(b"c CREATE Work\r\n")
        code = re.match(rb"c OK \[MAILBOXID \((" + ID + rb")\)\] CREATE completed\r\n", out)
        self.assertIsNotNone(code, out)
        self.assertEqual(self.mailboxIdOf(b"Work"), code.group(1))
        self.assertNotEqual(code.group(1), self.mailboxIdOf(b"INBOX"))

    def test_renameKeeps(self):
        """A renamed mailbox keeps its MAILBOXID; one created again under the old name does not."""
        self.send(b"c CREATE Work\r\n")
        before = self.mailboxIdOf(b"Work")
        self.send(b"r RENAME Work Play\r\n")
        self.assertEqual(self.mailboxIdOf(b"Play"), before)
        self.send(b"c CREATE Work\r\n")
        self.assertNotEqual(self.mailboxIdOf(b"Work"), before)

    def test_sameInAnotherSession(self):
        """Another session sees the same MAILBOXID and EMAILIDs."""
        self.send(b"a SELECT INBOX\r\n")
        first = self.send(b"f FETCH 1:2 (EMAILID)\r\n")
        other = self.connect()
        self.select(other)
        self.assertEqual(self.send(b"f FETCH 1:2 (EMAILID)\r\n", other), first)
        self.assertEqual(self.mailboxIdOf(b"INBOX", other), self.mailboxIdOf(b"INBOX"))

    def test_emailIdAndThreadId(self):
        """Each message has its own EMAILID of allowed characters; THREADID is NIL."""
        self.send(b"a SELECT INBOX\r\n")
        out = self.send(b"f FETCH 1:2 (UID EMAILID THREADID)\r\n")
        ids = re.findall(rb"\* \d FETCH \(UID \d EMAILID \((" + ID + rb")\) THREADID NIL\)\r\n", out)
        self.assertEqual(len(ids), 2, out)
        self.assertNotEqual(ids[0], ids[1])

    def test_disabled(self):
        """With OBJECTID off: not advertised, no MAILBOXID codes, the items are BAD."""
        session = self.connect(disabled=frozenset({"OBJECTID"}))
        self.login(session)
        self.assertNotIn(b"OBJECTID", self.send(b"c CAPABILITY\r\n", session))
        self.assertEqual(self.send(b"c CREATE Work\r\n", session), b"c OK CREATE completed\r\n")
        self.assertNotIn(b"MAILBOXID", self.send(b"a SELECT INBOX\r\n", session))
        for command in (b"s STATUS INBOX (MAILBOXID)", b"f FETCH 1 (EMAILID)",
                        b"g UID FETCH 1 (THREADID)"):
            self.assertTrue(self.send(command + b"\r\n", session).startswith(command[:2] + b"BAD "))


class RestartTests(StoreChoice, unittest.TestCase):
    """
    The ids come from what the Maildir keeps: a new store object (a restart)
    gives the same.
    """

    maildirOnly = True

    def test_restart(self):
        """MAILBOXID and EMAILID are the same after the store is opened again."""
        path = self.mktemp()
        store = MaildirStore(path)
        mailbox = self.successResultOf(store.account("a@lab.test").openMailbox("INBOX"))
        self.successResultOf(mailbox.append(b"Subject: x\r\n\r\nx\r\n", set()))
        before = (objectid.mailboxId(mailbox), [objectid.emailId(i) for i in mailbox.messages()])
        again = self.successResultOf(MaildirStore(path).account("a@lab.test").openMailbox("INBOX"))
        self.successResultOf(again.sync())
        self.assertEqual((objectid.mailboxId(again), [objectid.emailId(i) for i in again.messages()]),
                         before)
        self.assertRegex(before[0], "^F[0-9]+$")
        self.assertRegex(before[1][0], "^M[A-Za-z0-9_-]{24}$")


everyStore(globals())
