"""
Large mailboxes: opening a 10,000-message folder over IMAP and POP3 reads the
directory and the uidlist, never the message bodies.
"""

import builtins
import imaplib
import io
import os
import poplib

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.helpers import listenerTOML, startServer

COUNT = 10000
BODY = b"Subject: bulk\r\n\r\nsame body\r\n"


class LargeMailboxTests(unittest.TestCase):
    def setUp(self):
        self.server, directory = startServer(self, listenerTOML(
            "imap", name="imap", allow_plaintext_auth=True) + listenerTOML(
            "pop3", name="pop3", allow_plaintext_auth=True))
        self.maildir = os.path.join(directory, "var", "mail", "lab.test", "demo")
        # Another MDA filled the mailbox: plain files in cur/, sizes in the names.
        self.server.store.account("demo@lab.test").getMailbox("INBOX")
        for n in range(COUNT):
            name = "1700000000.M%dP1.bulk,S=%d,W=%d:2,S" % (n, len(BODY), len(BODY))
            with open(os.path.join(self.maildir, "cur", name), "wb") as f:
                f.write(BODY)
        self.opened = []
        realOpen, realIOOpen = builtins.open, io.open
        maildir = self.maildir

        def counting(opener):
            def open_(file, *args, **kwargs):
                path = os.fspath(file) if not isinstance(file, int) else ""
                if isinstance(path, str) and path.startswith(maildir) and (
                        "/cur/" in path or "/new/" in path):
                    self.opened.append(path)
                return opener(file, *args, **kwargs)
            return open_
        self.patch(builtins, "open", counting(realOpen))
        self.patch(io, "open", counting(realIOOpen))

    @defer.inlineCallbacks
    def test_imapSelect(self):
        """SELECT and FETCH of flags and sizes for 10,000 messages open no message file."""
        def session():
            c = imaplib.IMAP4("127.0.0.1", self.server.listenerPort("imap"), timeout=60)
            c.login("demo", "demo")
            typ, data = c.select("INBOX")
            typ2, sizes = c.fetch("1:*", "(FLAGS RFC822.SIZE)")
            c.logout()
            return data, sizes
        data, sizes = yield threads.deferToThread(session)
        self.assertEqual(data, [b"%d" % (COUNT,)])
        self.assertEqual(len(sizes), COUNT)
        self.assertIn(b"(FLAGS (\\Seen) RFC822.SIZE %d)" % (len(BODY),), sizes[0])
        self.assertEqual(self.opened, [])

    @defer.inlineCallbacks
    def test_pop3Stat(self):
        """A POP3 login, STAT and LIST over 10,000 messages open no message file."""
        def session():
            p = poplib.POP3("127.0.0.1", self.server.listenerPort("pop3"), timeout=60)
            p.user("demo")
            p.pass_("demo")
            stat = p.stat()
            listing = p.list()[1]
            p.quit()
            return stat, listing
        stat, listing = yield threads.deferToThread(session)
        self.assertEqual(stat, (COUNT, COUNT * len(BODY)))
        self.assertEqual(len(listing), COUNT)
        self.assertEqual(self.opened, [])
