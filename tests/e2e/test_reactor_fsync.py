"""
End to end: the mail paths that run for every message (SMTP delivery to a
mailbox a session is watching, IMAP APPEND, COPY, MOVE, STORE and EXPUNGE,
POP3 RETR and DELE) never fsync on the reactor thread. An fsync takes
milliseconds (more on a busy disk) and, on the one reactor thread, stalls
every session of every listener (issue 13: nothing waits on the reactor).
"""

import imaplib
import os
import poplib
import smtplib
import threading

from twisted.internet import defer

from tests.e2e.test_imap import MESSAGE, IMAPTestCase


class ReactorFsyncTests(IMAPTestCase):
    """
    C{os.fsync} is wrapped to note the thread of every call while real
    clients (in threads) work through the real service.
    """

    def setUp(self):
        IMAPTestCase.setUp(self)
        self.reactorThread = threading.current_thread()
        self.onReactor = []
        self.elsewhere = []
        realFsync = os.fsync

        def fsync(fd):
            if threading.current_thread() is self.reactorThread:
                self.onReactor.append(os.readlink("/proc/self/fd/%d" % (fd,)))
            else:
                self.elsewhere.append(fd)
            return realFsync(fd)
        self.patch(os, "fsync", fsync)

    def imapWork(self):
        c = self.loggedIn()
        c.create("Archive")
        c.select("INBOX")
        # A delivery while this session watches INBOX: the store tells it.
        with smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10) as smtp:
            smtp.sendmail("alice@lab.test", ["demo@lab.test"], MESSAGE)
        typ, _ = c.append("INBOX", "(\\Seen)", None, MESSAGE)
        assert typ == "OK", typ
        c.noop()
        typ, _ = c.uid("COPY", "1:*", "Archive")
        assert typ == "OK", typ
        typ, _ = c.uid("MOVE", "2", "Archive")
        assert typ == "OK", typ
        c.store("1", "+FLAGS", "(\\Deleted $Graded)")
        typ, _ = c.expunge()
        assert typ == "OK", typ
        typ, data = c.status("Archive", "(MESSAGES)")
        c.logout()
        return data

    def pop3Work(self):
        with smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10) as smtp:
            smtp.sendmail("alice@lab.test", ["demo@lab.test"], MESSAGE)
        p = poplib.POP3("127.0.0.1", self.port("pop3"), timeout=10)
        p.user("demo@lab.test")
        p.pass_("demo")
        count, _ = p.stat()
        p.retr(1)
        p.dele(1)
        p.quit()
        return count

    @defer.inlineCallbacks
    def test_messagePathsFsyncOffTheReactor(self):
        """Delivery, APPEND, COPY, MOVE, STORE, EXPUNGE, RETR and DELE fsync only in worker threads."""
        status = yield self.inThread(self.imapWork)
        self.assertEqual(status, [b'"Archive" (MESSAGES 3)'])
        count = yield self.inThread(self.pop3Work)
        self.assertEqual(count, 1)
        # The work above is durable: it fsynced, just not on the reactor.
        self.assertGreater(len(self.elsewhere), 5)
        self.maxDiff = None
        self.assertEqual(self.onReactor, [])
