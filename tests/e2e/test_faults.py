"""
End-to-end fault injection on real sockets: clients that vanish mid-response,
a disk that fills up, locks held by other programs; what the client reads and
what the log says.
"""

import errno
import os
import smtplib
import socket

from twisted.internet import defer

from mailstack.storage import crlf
from tests.e2e.test_imap import MESSAGE, IMAPTestCase
from tests.helpers import LogWatch, sleep


class StreamingClientGoneTests(IMAPTestCase):
    """
    A client that closes its socket while a big FETCH streams.
    """

    @defer.inlineCallbacks
    def waitForNoSessions(self):
        for _ in range(200):
            if not self.server.counter.count("imap"):
                return
            yield sleep(0.02)
        self.fail("the IMAP session never ended")

    def pipelinedFetches(self, hangUp):
        """
        Four big messages; a session that sends FETCH 1:* BODY.PEEK[] with a
        FETCH pipelined behind it, then C{hangUp(socket, file)} ends its side.
        @return: a Deferred firing with what C{hangUp} returned, once the
            server has closed the session.
        """
        inbox = self.inbox()
        body = b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * 50000
        appended = defer.succeed(None)
        for _ in range(4):
            # One after the other, each stored before the session starts.
            appended.addCallback(lambda _: inbox.append(body))

        def session():
            s, f = self.raw("imapplain")
            s.sendall(b"a1 LOGIN demo@lab.test demo\r\na2 SELECT INBOX\r\n")
            while not f.readline().startswith(b"a2 "):
                pass
            s.sendall(b"a3 FETCH 1:* (BODY.PEEK[])\r\na4 FETCH 1 (FLAGS)\r\n")
            try:
                return hangUp(s, f)
            finally:
                f.close()
                s.close()
        d = appended.addCallback(lambda _: self.inThread(session))

        @defer.inlineCallbacks
        def ended(result):
            yield self.waitForNoSessions()
            yield sleep(0.1)
            return result
        return d.addCallback(ended)

    @defer.inlineCallbacks
    def test_closeDuringPipelinedFetch(self):
        """FETCH 1:* BODY.PEEK[] of big messages with a FETCH pipelined, the client closes
        after reading a little: the server logs no critical error and no traceback."""
        watch = LogWatch(self)

        def reset(s, f):
            f.read(100000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        yield self.pipelinedFetches(reset)
        self.assertEqual(watch.problems(), [])

    @defer.inlineCallbacks
    def test_halfCloseAfterPipelinedFetch(self):
        """The client shuts down its sending side right after the pipelined FETCHes (a
        mutation fuzzer's pattern): the session ends with no error logged."""
        watch = LogWatch(self)

        def halfClose(s, f):
            s.shutdown(socket.SHUT_WR)
            return f.read()
        data = yield self.pipelinedFetches(halfClose)
        self.assertNotIn(b"a4 NO", data)
        self.assertEqual(watch.problems(), [])


def writeThenDiskFull(source, f):
    """A crlf.copyAsCRLF that writes a little, then finds the disk full."""
    f.write(source.read(10))
    raise OSError(errno.ENOSPC, "No space left on device")


class DurableThenFailTests(IMAPTestCase):
    """
    SMTP while an IMAP session has INBOX open, and another program holds or
    breaks dovecot-uidlist; and SMTP/IMAP on a full disk.
    """

    @defer.inlineCallbacks
    def session(self):
        """An imaplib session with INBOX selected, logged out at the end."""
        imap = yield self.inThread(self.loggedIn, "imapplain")
        self.addCleanup(self.inThread, imap.logout)
        yield self.inThread(imap.select, "INBOX")
        return imap

    def send(self):
        c = smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10)
        try:
            c.ehlo("client.example")
            c.mail("kim@example.com")
            c.rcpt("demo@lab.test")
            return c.data(MESSAGE)
        finally:
            c.close()

    @defer.inlineCallbacks
    def test_uidListLockedWhileSessionListens(self):
        """A session has INBOX selected, another program holds dovecot-uidlist.lock:
        SMTP answers 250 (the message is on disk), stores it once, and the session
        sees it once the lock is gone."""
        inbox = self.inbox()
        inbox.lockTimeout = 0.1
        watch = LogWatch(self)
        imap = yield self.session()
        lock = os.path.join(inbox.path, "dovecot-uidlist.lock")
        with open(lock, "w"):
            pass
        code, text = yield self.inThread(self.send)
        self.assertEqual(code, 250, text)
        self.assertEqual(len(self.files()), 1)
        os.unlink(lock)
        yield self.inThread(imap.noop)
        self.assertEqual(imap.response("EXISTS")[1][-1], b"1")
        self.assertEqual(watch.problems(), [])

    @defer.inlineCallbacks
    def test_uidListDirectoryWhileSessionListens(self):
        """dovecot-uidlist is a directory while a session listens: 250, stored once."""
        inbox = self.inbox()
        watch = LogWatch(self)
        yield self.session()  # a session listens: SMTP syncs after delivering
        path = os.path.join(inbox.path, "dovecot-uidlist")
        os.unlink(path)
        os.mkdir(path)
        code, text = yield self.inThread(self.send)
        self.assertEqual(code, 250, text)
        self.assertEqual(len(self.files()), 1)
        self.assertEqual(watch.problems(), [])

    @defer.inlineCallbacks
    def test_smtpDiskFull(self):
        """A full disk: 452 4.3.1 at the end of DATA, nothing left in tmp/ or new/."""
        self.patch(crlf, "copyAsCRLF", writeThenDiskFull)
        watch = LogWatch(self)
        code, text = yield self.inThread(self.send)
        self.assertEqual((code, text[:5]), (452, b"4.3.1"))
        self.assertEqual(self.files(), [])
        self.assertEqual(os.listdir(os.path.join(self.inbox().path, "tmp")), [])
        self.assertEqual(watch.problems(), [])

    @defer.inlineCallbacks
    def test_smtpDirectoryFsyncFailsForEveryone(self):
        """new/'s fsync fails (EIO) while four SMTP sessions deliver at once (alone or
        sharing one): none gets 250, each 451 4.3.0, one log line each, no file left."""
        import threading
        realFsync = os.fsync

        def failing(fd):
            if os.readlink("/proc/self/fd/%d" % (fd,)).endswith(os.sep + "new"):
                raise OSError(errno.EIO, "Input/output error")
            return realFsync(fd)
        self.patch(os, "fsync", failing)
        watch = LogWatch(self)
        self.inbox()  # the Maildir exists before the sessions race to deliver
        replies = []

        def sendOne():
            replies.append(self.send())

        def sendAll():
            senders = [threading.Thread(target=sendOne) for _ in range(4)]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join(30)
        yield self.inThread(sendAll)
        self.assertEqual(len(replies), 4)
        self.assertEqual([(code, text[:5]) for code, text in replies], [(451, b"4.3.0")] * 4)
        self.assertEqual(len([t for t in watch.texts() if "Input/output error" in t]), 4)
        self.assertEqual(self.files(), [])
        self.assertEqual(os.listdir(os.path.join(self.inbox().path, "tmp")), [])
        self.assertEqual(watch.problems(), [])

    @defer.inlineCallbacks
    def test_appendDiskFull(self):
        """IMAP APPEND on a full disk: NO [OVERQUOTA] Not enough disk space, as Dovecot."""
        self.patch(crlf, "copyAsCRLF", writeThenDiskFull)
        watch = LogWatch(self)
        imap = yield self.inThread(self.loggedIn, "imapplain")
        typ, data = yield self.inThread(imap.append, "INBOX", None, None, MESSAGE)
        self.assertEqual((typ, data), ("NO", [b"[OVERQUOTA] Not enough disk space"]))
        yield self.inThread(imap.logout)
        self.assertEqual(self.files(), [])
        self.assertEqual(watch.problems(), [])
