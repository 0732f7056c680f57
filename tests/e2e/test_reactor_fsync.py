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

from mailstack.storage import index
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

    @defer.inlineCallbacks
    def test_concurrentDeliveriesFsyncOffTheReactor(self):
        """Deliveries sharing a directory fsync, another program's file found by IDLE and index writes fsync or replace files only in worker threads."""
        self.patch(index, "SETTLE", 0)  # the index is written at once, not 2 s after
        replacedOnReactor = []
        realReplace = os.replace

        def replace(source, destination, *args, **kwargs):
            if (threading.current_thread() is self.reactorThread and os.path.basename(
                    destination) in (index.INDEX_FILE, "dovecot-uidlist")):
                replacedOnReactor.append(destination)
            return realReplace(source, destination, *args, **kwargs)
        self.patch(os, "replace", replace)
        maildir = os.path.join(self.server.config.mail_dir, "lab.test", "demo")

        def work():
            s, f = self.raw()
            s.sendall(b"a LOGIN demo@lab.test demo\r\nb SELECT INBOX\r\nc IDLE\r\n")
            lines = []
            while not lines or not lines[-1].startswith(b"+ "):
                lines.append(f.readline())
            # Another program (an MDA, Dovecot) drops a message into new/.
            new = os.path.join(maildir, "new", "1700000000.outside.host")
            with open(new + ".tmp", "wb") as out:
                out.write(MESSAGE)
            os.rename(new + ".tmp", new)

            def send():
                with smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10) as smtp:
                    smtp.sendmail("alice@lab.test", ["demo@lab.test"], MESSAGE)
            senders = [threading.Thread(target=send) for _ in range(6)]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join(30)
            while b"* 7 EXISTS\r\n" not in lines:
                lines.append(f.readline())
            s.sendall(b"DONE\r\nd LOGOUT\r\n")
            while not lines[-1].startswith(b"d "):
                lines.append(f.readline())
            s.close()
            # The index is written by a worker thread: wait for it.
            for _ in range(200):
                if os.path.exists(os.path.join(maildir, index.INDEX_FILE)):
                    break
                threading.Event().wait(0.05)
            return lines
        lines = yield self.inThread(work)
        self.assertTrue(lines[-1].startswith(b"d OK"), lines)
        self.assertEqual(len(self.files()), 7)
        self.assertTrue(os.path.exists(os.path.join(maildir, index.INDEX_FILE)))
        self.assertGreater(len(self.elsewhere), 6)
        self.assertEqual(self.onReactor, [])
        self.assertEqual(replacedOnReactor, [])
