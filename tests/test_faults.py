"""
Fault injection: what clients see, what is logged and what is left on disk
when the disk fills up, a lock is held by another program, a file is the
wrong kind of thing, or the client goes away mid-response.
"""

import errno
import io
import os

from twisted.internet import defer, task
from twisted.internet.error import ConnectionDone
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial import unittest

from mailstack.imap import server as imapserver
from mailstack.smtp.delivery import SMTPPolicy
from mailstack.smtp.server import Envelope
from mailstack.storage import crlf, dotlock, files, maildir
from mailstack.storage.interfaces import Changes, StoreError
from mailstack.storage.account import MaildirStore
from mailstack.storage.watch import MailboxWatcher
from tests.fakes import FakeUsers
from tests.helpers import LogWatch
from tests.test_imap_server import MESSAGE, IMAPTestMixin
from tests.test_pop3_server import MESSAGE_1, MESSAGE_2, POP3TestMixin
from tests.test_smtp_server import SMTPTestMixin


def bigMessage(lines=40000):
    return b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * lines


class StreamingConnectionLostTests(IMAPTestMixin, unittest.TestCase):
    """
    A client that closes while a FETCH streams: pipelined commands behind it
    never run, and nothing is logged as an error.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        for _ in range(3):
            self.deliver(bigMessage())
        self.select()

    def loseConnection(self):
        """What a TCP transport does: stop the registered producer, then tell the protocol."""
        producer = self.transport.producer
        if producer is not None:
            producer.stopProducing()
        self.server.connectionLost(Failure(ConnectionDone()))

    def test_pipelinedAfterLostStream(self):
        """FETCH BODY[] of big messages, a FETCH pipelined behind it, then the client closes:
        no tagged reply for either, no producer error."""
        self.transport.clear()
        self.server.dataReceived(b"a3 FETCH 1:* (BODY.PEEK[])\r\na4 FETCH 1 (FLAGS)\r\n")
        self.assertIsNotNone(self.transport.producer)
        self.assertNotIn(b"a3 OK", self.transport.value())
        self.transport.clear()
        self.loseConnection()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_pipelinedWaitsForStream(self):
        """A command pipelined behind a streaming FETCH runs after it, once the stream ends."""
        self.transport.clear()
        self.server.dataReceived(b"a3 FETCH 1:* (BODY.PEEK[])\r\na4 FETCH 1 (FLAGS)\r\n")
        for _ in range(20):
            self.clock.advance(0)
        out = self.transport.value()
        self.assertTrue(out.endswith(b"a3 OK FETCH completed\r\n"
                                     b"* 1 FETCH (FLAGS (\\Recent))\r\na4 OK FETCH completed\r\n"),
                        out[-200:])
        self.assertIsNone(self.transport.producer)


def diskFull(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def writeThenDiskFull(source, f):
    """A crlf.copyAsCRLF that writes a little, then finds the disk full."""
    f.write(source.read(10))
    diskFull()




class FaultyOS:
    """The os module, but with some functions replaced (for one module's use)."""

    def __init__(self, **replaced):
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(os, name)


def listing(path, *subdirs):
    return {sub: sorted(os.listdir(os.path.join(path, sub))) for sub in subdirs}


class IMAPDiskFullTests(IMAPTestMixin, unittest.TestCase):
    """
    IMAP commands that write, on a full disk: NO [OVERQUOTA] Not enough disk
    space (RFC 5530; Dovecot's answer to ENOSPC), one log line, nothing left over.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.log = LogWatch(self)
        self.inbox = self.account.getMailbox("INBOX")

    def append(self, prefix, message=MESSAGE):
        self.send(prefix + b" {%d}\r\n" % (len(message),))
        return self.send(message + b"\r\n")

    def test_appendDiskFull(self):
        """APPEND on a full disk: NO [OVERQUOTA], no file left in tmp/, new/ or cur/."""
        self.login()
        self.patch(crlf, "copyAsCRLF", writeThenDiskFull)
        self.assertEqual(self.append(b"a APPEND INBOX"),
                         b"a NO [OVERQUOTA] Not enough disk space\r\n")
        self.assertEqual(listing(self.inbox.path, "tmp", "new", "cur"),
                         {"tmp": [], "new": [], "cur": []})
        self.assertEqual(self.log.problems(), [])
        [line] = [t for t in self.log.texts() if "disk space" in t]
        self.assertIn("APPEND", line)

    def test_storeKeywordDiskFull(self):
        """STORE of a new keyword on a full disk: NO [OVERQUOTA], the flags unchanged, and
        neither dovecot-keywords.lock nor dovecot-uidlist.lock left behind."""
        self.deliver()
        self.select()
        self.patch(files, "os", FaultyOS(fsync=diskFull))
        self.assertEqual(self.send(b"a STORE 1 +FLAGS ($Work)\r\n"),
                         b"a NO [OVERQUOTA] Not enough disk space\r\n")
        self.assertFalse([name for name in os.listdir(self.inbox.path) if name.endswith(".lock")])
        self.assertEqual(self.inbox.messageInfo(1).flags, set())
        self.assertEqual(self.log.problems(), [])

    def test_storeRenameDiskFull(self):
        """STORE whose rename finds the disk full (a directory that must grow): NO [OVERQUOTA]."""
        self.deliver()
        self.select()
        self.patch(maildir, "os", FaultyOS(rename=diskFull))
        self.assertEqual(self.send(b"a STORE 1 +FLAGS (\\Seen)\r\n"),
                         b"a NO [OVERQUOTA] Not enough disk space\r\n")
        self.assertEqual(self.log.problems(), [])

    def test_ioErrorOneLine(self):
        """An I/O error in APPEND: NO [SERVERBUG], logged in one line without a traceback."""
        self.login()

        def ioError(source, f):
            raise OSError(errno.EIO, "Input/output error")
        self.patch(crlf, "copyAsCRLF", ioError)
        self.assertEqual(self.append(b"a APPEND INBOX"), b"a NO [SERVERBUG] Internal error\r\n")
        self.assertEqual(self.log.problems(), [])
        self.assertTrue(any("Input/output error" in t for t in self.log.texts()))
        self.assertEqual(os.listdir(os.path.join(self.inbox.path, "tmp")), [])


class DotLockFaultTests(unittest.TestCase):
    """
    A dotlock whose commit fails leaves neither the lock nor a changed target.
    """

    def test_commitDiskFull(self):
        """fsync failing with ENOSPC: the lock file is removed, the target kept."""
        directory = self.mktemp()
        os.makedirs(directory)
        target = os.path.join(directory, "file")
        with open(target, "w") as f:
            f.write("old\n")
        self.patch(files, "os", FaultyOS(fsync=diskFull))
        lock = dotlock.DotLock(target, 1, 120)
        with self.assertRaises(OSError):
            with lock:
                lock.commit(b"new\n")
        self.assertEqual(os.listdir(directory), ["file"])
        with open(target) as f:
            self.assertEqual(f.read(), "old\n")


class AfterDurableTests(IMAPTestMixin, unittest.TestCase):
    """
    Once a message is on disk, the command that stored it succeeds, whatever
    fails afterwards (assigning the UID, telling other sessions): failing it
    would make the client store it again.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.log = LogWatch(self)
        self.inbox = self.account.getMailbox("INBOX")
        self.inbox.lockTimeout = 0.05

    def holdLock(self):
        """Another program holds dovecot-uidlist.lock (a fresh one: not stale)."""
        path = os.path.join(self.inbox.path, "dovecot-uidlist.lock")
        with open(path, "w"):
            pass
        return path

    def test_appendWhileUIDListLocked(self):
        """APPEND while another program holds the uidlist lock: OK without APPENDUID (RFC
        4315's APPENDUID is a SHOULD), the message is stored once and gets its UID later."""
        self.select()
        lock = self.holdLock()
        self.send(b"a APPEND INBOX {%d}\r\n" % (len(MESSAGE),))
        out = self.send(MESSAGE + b"\r\n")
        self.assertEqual(out, b"a OK APPEND completed\r\n")
        self.assertEqual(len(os.listdir(os.path.join(self.inbox.path, "new"))), 1)
        self.assertEqual(self.log.problems(), [])
        os.unlink(lock)
        self.assertEqual(self.send(b"b NOOP\r\n"),
                         b"* 1 EXISTS\r\n* 1 RECENT\r\nb OK NOOP completed\r\n")

    def test_appendUIDListIsADirectory(self):
        """APPEND when dovecot-uidlist is a directory: OK, the message is on disk."""
        self.login()
        path = os.path.join(self.inbox.path, "dovecot-uidlist")
        os.unlink(path)
        os.mkdir(path)
        self.send(b"a APPEND INBOX {%d}\r\n" % (len(MESSAGE),))
        self.assertEqual(self.send(MESSAGE + b"\r\n"), b"a OK APPEND completed\r\n")
        self.assertEqual(len(os.listdir(os.path.join(self.inbox.path, "new"))), 1)
        self.assertEqual(self.log.problems(), [])

    def test_copyWhileDestinationLocked(self):
        """COPY while the destination's uidlist is locked: OK without COPYUID, copied once."""
        self.successResultOf(self.account.createMailbox("Saved"))
        saved = self.account.getMailbox("Saved")
        saved.lockTimeout = 0.05
        self.deliver()
        self.select()
        with open(os.path.join(saved.path, "dovecot-uidlist.lock"), "w"):
            pass
        self.assertEqual(self.send(b"a COPY 1 Saved\r\n"), b"a OK COPY completed\r\n")
        self.assertEqual(len(os.listdir(os.path.join(saved.path, "new"))), 1)
        self.assertEqual(self.log.problems(), [])


class SMTPDeliveryFaultTests(unittest.TestCase):
    """
    SMTP delivery into a real store: 452 4.3.1 on a full disk with nothing
    kept; 250 once the message is durable, whatever fails afterwards.
    """

    def setUp(self):
        self.store = MaildirStore(self.mktemp())
        # The store runs its file work at once (no reactor given): the
        # delivery's Deferred has fired when deliver returns.
        self.policy = SMTPPolicy(["lab.test"], FakeUsers("demo@lab.test", "bob@lab.test"),
                                 self.store)
        self.log = LogWatch(self)
        self.inbox = self.store.account("demo@lab.test").getMailbox("INBOX")

    def deliver(self, *recipients):
        envelope = Envelope("kim@example.com", {})
        envelope.recipients = [(r, "local") for r in recipients]
        return self.policy.deliver(envelope, b"Received: x\r\n", io.BytesIO(b"body\r\n"), "ID")

    def files(self, mailbox):
        return listing(mailbox.path, "tmp", "new", "cur")

    def listen(self, mailbox):
        class Listener:
            def mailboxChanged(self, mailbox, changes):
                pass
        listener = Listener()
        mailbox.addListener(listener)
        self.addCleanup(mailbox.removeListener, listener)

    def test_diskFull(self):
        """The disk is full: 452 4.3.1, no file left, one log line."""
        self.patch(crlf, "copyAsCRLF", writeThenDiskFull)
        reply = self.successResultOf(self.deliver("demo@lab.test"))
        self.assertEqual((reply.code, reply.status), (452, "4.3.1"))
        self.assertEqual(self.files(self.inbox), {"tmp": [], "new": [], "cur": []})
        self.assertEqual(self.log.problems(), [])
        self.assertEqual(len([t for t in self.log.texts() if "disk space" in t]), 1)

    def test_secondRecipientDiskFull(self):
        """The disk fills up at the second recipient: 452, and the first copy is removed
        again (the sender's retry must not give the first recipient two)."""
        calls = []
        real = crlf.copyAsCRLF

        def secondFails(source, f):
            calls.append(1)
            if len(calls) == 2:
                return writeThenDiskFull(source, f)
            return real(source, f)
        self.patch(crlf, "copyAsCRLF", secondFails)
        bob = self.store.account("bob@lab.test").getMailbox("INBOX")
        reply = self.successResultOf(self.deliver("demo@lab.test", "bob@lab.test"))
        self.assertEqual(reply.code, 452)
        self.assertEqual(self.files(self.inbox), {"tmp": [], "new": [], "cur": []})
        self.assertEqual(self.files(bob), {"tmp": [], "new": [], "cur": []})

    def test_uidListLockedAfterDelivery(self):
        """A session has INBOX open and another program holds dovecot-uidlist.lock: the
        message is on disk, so the answer is 250 (None); the lock is one log line (the
        message gets its UID once the lock is released)."""
        self.listen(self.inbox)
        self.inbox.lockTimeout = 0.05
        with open(os.path.join(self.inbox.path, "dovecot-uidlist.lock"), "w"):
            pass
        self.assertIsNone(self.successResultOf(self.deliver("demo@lab.test")))
        self.assertEqual(len(self.files(self.inbox)["new"]), 1)
        self.assertEqual(self.log.problems(), [])
        self.assertEqual(
            len([t for t in self.log.texts() if "locked by another program" in t]), 1)

    def test_noLockWaitAfterDelivery(self):
        """Telling open sessions after a delivery never waits for a lock another program
        holds (it would stall every session of the server for the lock timeout)."""
        self.listen(self.inbox)
        with open(os.path.join(self.inbox.path, "dovecot-uidlist.lock"), "w"):
            pass
        sleeps = []
        self.patch(dotlock.time, "sleep", sleeps.append)
        self.assertIsNone(self.successResultOf(self.deliver("demo@lab.test")))
        self.assertEqual(sleeps, [])
        self.assertEqual(len(self.files(self.inbox)["new"]), 1)

    def test_uidListDirectoryAfterDelivery(self):
        """dovecot-uidlist is a directory while a session listens: still 250, stored once."""
        self.listen(self.inbox)
        path = os.path.join(self.inbox.path, "dovecot-uidlist")
        os.unlink(path)
        os.mkdir(path)
        self.assertIsNone(self.successResultOf(self.deliver("demo@lab.test")))
        self.assertEqual(len(self.files(self.inbox)["new"]), 1)
        self.assertEqual(self.log.problems(), [])

    def test_bounceAfterDurable(self):
        """A DSN written to disk counts as delivered even if telling open sessions fails
        (else the queue would bounce it again)."""
        self.listen(self.inbox)
        self.inbox.lockTimeout = 0.05
        with open(os.path.join(self.inbox.path, "dovecot-uidlist.lock"), "w"):
            pass
        self.successResultOf(self.policy.bounce("demo@lab.test", b"Subject: DSN\r\n\r\nx\r\n"))
        self.assertEqual(len(self.files(self.inbox)["new"]), 1)
        self.assertEqual(self.log.problems(), [])

    def test_bounceDiskFull(self):
        """A DSN on a full disk fails (the queue keeps it and tries again), leaving no file."""
        self.patch(crlf, "copyAsCRLF", writeThenDiskFull)
        self.failureResultOf(self.policy.bounce("demo@lab.test", b"Subject: DSN\r\n\r\nx\r\n"),
                             StoreError)
        self.assertEqual(self.files(self.inbox), {"tmp": [], "new": [], "cur": []})


class ExpungeFaultTests(unittest.TestCase):
    """
    Expunging when a file cannot be removed (EIO): the others go, and are
    announced; the failure is an error that says so.
    """

    def test_oneUnlinkFails(self):
        """Of three messages, the second cannot be unlinked: 1 and 3 are expunged and
        announced, StoreError is raised, and the second stays."""
        store = MaildirStore(self.mktemp())
        inbox = store.account("demo@lab.test").getMailbox("INBOX")
        for _ in range(3):
            self.successResultOf(inbox.append(MESSAGE))
        seen = []

        class Listener:
            def mailboxChanged(self, mailbox, changes):
                seen.extend(changes.expunged)
        inbox.addListener(Listener())
        victim = inbox._entryPath(inbox._entries[2])

        def unlink(path):
            if path == victim:
                raise OSError(errno.EIO, "Input/output error")
            os.unlink(path)
        self.patch(maildir, "os", FaultyOS(unlink=unlink))
        LogWatch(self)
        self.failureResultOf(inbox.expunge([1, 2, 3]), StoreError)
        self.assertEqual(seen, [1, 3])
        self.assertEqual([info.uid for info in inbox.messages()], [2])


class WatcherRetryTests(unittest.TestCase):
    """
    The watcher's sync after an outside change fails (a lock held by another
    program): it logs one line and tries again, since inotify may not fire again.
    """

    def test_retriedAfterFailure(self):
        """A failed sync is retried after pollInterval; one warning, no traceback."""
        clock = task.Clock()
        watcher = MailboxWatcher(clock, delay=0.05, pollInterval=5.0, useInotify=False)

        class FakeNotifier:
            def ignore(self, path):
                pass

        class FlakyMailbox:
            calls = 0
            waitingForUIDs = False

            def sync(self, claimRecent=True):
                self.calls += 1
                if self.calls == 1:
                    return defer.fail(
                        StoreError("mailbox is locked by another process; try again later"))
                return defer.succeed(Changes())
        mailbox = FlakyMailbox()
        watcher._notifier = FakeNotifier()  # as if inotify watched it
        watcher._watched[mailbox] = []
        log = LogWatch(self)
        watcher._changed(mailbox)
        clock.advance(0.05)
        self.assertEqual(mailbox.calls, 1)
        clock.advance(5)
        self.assertEqual(mailbox.calls, 2)
        self.assertEqual(log.problems(), [])
        self.assertEqual(len(log.texts(LogLevel.warn)), 1)
        watcher.unwatch(mailbox)


class POP3QuitFaultTests(POP3TestMixin, unittest.TestCase):
    """
    QUIT applies DELE marks by unlinking; an I/O error on one file must not
    leave the mailbox half-updated.
    """

    def setUp(self):
        POP3TestMixin.setUp(self)
        for message in (MESSAGE_1, MESSAGE_2, MESSAGE_1):
            self.deliver(message)

    def loggedIn(self):
        session = self.connect(plaintextSecrets=lambda: False)
        reply = session.login()
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)
        return session

    def test_oneUnlinkFails(self):
        """DELE 1 and 2, the unlink of 2 fails (EIO): -ERR [SYS/TEMP]; 1 is gone for every
        reader (a new session sees 2 messages), 2 and 3 are kept."""
        session = self.loggedIn()
        session.send(b"DELE 1\r\nDELE 2\r\n")
        inbox = self.inbox()
        victim = inbox._entryPath(inbox._entries[2])

        def unlink(path):
            if path == victim:
                raise OSError(errno.EIO, "Input/output error")
            os.unlink(path)
        self.patch(maildir, "os", FaultyOS(unlink=unlink))
        log = LogWatch(self)
        self.assertEqual(session.send(b"QUIT\r\n"),
                         b"-ERR [SYS/TEMP] Some deleted messages not removed\r\n")
        self.assertEqual(log.problems(), [])
        self.assertEqual(len(self.storedMessages()), 2)
        self.assertEqual([info.uid for info in inbox.messages()], [2, 3])
        fresh = maildir.MaildirMailbox("INBOX", inbox.path)  # another process
        self.assertEqual([info.uid for info in fresh.messages()], [2, 3])
        again = self.loggedIn()
        self.assertTrue(again.send(b"STAT\r\n").startswith(b"+OK 2 "))


class SymlinkTests(IMAPTestMixin, unittest.TestCase):
    """
    Symbolic links inside a Maildir: what resolves outside the account's own
    directory is never served nor written to.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.log = LogWatch(self)
        self.other = self.store.account("bob@lab.test")
        self.successResultOf(self.other.createMailbox("Private"))
        self.otherBox = self.other.getMailbox("Private")
        self.successResultOf(self.otherBox.append(b"Subject: bob's secret\r\n\r\nsecret\r\n"))
        self.outside = os.path.abspath(self.mktemp())
        os.makedirs(self.outside)
        self.secret = os.path.join(self.outside, "hostname")
        with open(self.secret, "wb") as f:
            f.write(b"Subject: not mail\r\n\r\nsecret host\r\n")

    def contents(self, path):
        return sorted(os.path.relpath(os.path.join(d, f), path)
                      for d, _, files in os.walk(path) for f in files)

    def test_folderLinkedToOtherUser(self):
        """A folder that is a link to another user's folder: not listed, SELECT/APPEND/STATUS
        refused with NO, nothing written there, one log line."""
        os.symlink(os.path.abspath(self.otherBox.path), os.path.join(self.account.path, ".Stolen"))
        before = self.contents(self.otherBox.path)
        self.login()
        self.assertNotIn(b"Stolen", self.send(b"a LIST \"\" *\r\n"))
        self.assertEqual(self.send(b"b SELECT Stolen\r\n"),
                         b"b NO mailbox Stolen links outside this account; refused\r\n")
        self.assertTrue(self.send(b"c STATUS Stolen (MESSAGES)\r\n").startswith(b"c NO "))
        self.send(b"d APPEND Stolen {%d}\r\n" % (len(MESSAGE),))
        self.assertTrue(self.send(MESSAGE + b"\r\n").startswith(b"d NO "))
        self.assertEqual(self.contents(self.otherBox.path), before)
        self.assertEqual(self.log.problems(), [])
        self.assertEqual(len([t for t in self.log.texts() if "links outside" in t]), 1)

    def test_curLinkedOutside(self):
        """INBOX whose cur/ is a link outside the account: SELECT is refused."""
        cur = os.path.join(self.account.path, "cur")
        os.rmdir(cur)
        os.symlink(self.outside, cur)
        self.login()
        self.assertTrue(self.send(b"b SELECT INBOX\r\n").startswith(b"b NO "))
        self.assertEqual(self.log.problems(), [])

    def test_folderLinkInsideAccount(self):
        """A link to another folder of the same account is served (it stays inside)."""
        self.successResultOf(self.account.createMailbox("Real"))
        self.deliver(mailbox="Real")
        os.symlink(".Real", os.path.join(self.account.path, ".Alias"))
        self.login()
        self.assertIn(b"Alias", self.send(b"a LIST \"\" *\r\n"))
        self.assertIn(b"* 1 EXISTS", self.send(b"b SELECT Alias\r\n"))

    def test_deleteLinkedFolder(self):
        """DELETE of a folder that is a link removes the link, never what it points to."""
        os.symlink(os.path.abspath(self.otherBox.path), os.path.join(self.account.path, ".Stolen"))
        before = self.contents(self.otherBox.path)
        self.successResultOf(self.account.deleteMailbox("Stolen"))
        self.assertEqual(self.contents(self.otherBox.path), before)
        self.assertFalse([n for n in os.listdir(self.account.path) if "Stolen" in n
                          or n.startswith("..mailstack-deleted")])

    def test_messageLinkedToSystemFile(self):
        """A message file that is a link (to /etc/hostname, say) is not a message: not
        counted, not fetched; logged once."""
        self.deliver()
        os.symlink(self.secret, os.path.join(self.account.path, "cur", "1.M1P1.evil:2,S"))
        out = self.select()
        self.assertIn(b"* 1 EXISTS", out)
        out = self.send(b"a FETCH 1:* BODY.PEEK[]\r\n")
        self.assertNotIn(b"secret", out)
        self.send(b"b NOOP\r\n")
        self.assertEqual(self.log.problems(), [])
        self.assertEqual(len([t for t in self.log.texts() if "1.M1P1.evil" in t]), 1)

    def test_messageBecomesLinkAfterListing(self):
        """A message file replaced by a link after it was listed: FETCH does not follow it."""
        self.deliver()
        self.select()
        inbox = self.account.getMailbox("INBOX")
        path = inbox._entryPath(inbox._entries[1])
        os.unlink(path)
        os.symlink(self.secret, path)
        out = self.send(b"a FETCH 1 BODY.PEEK[]\r\n")
        self.assertNotIn(b"secret", out)
        self.flushLoggedErrors()

    def test_modseqFileLinkNotWritten(self):
        """mailstack-modseq planted as a link to a file elsewhere: that file is never
        written (appends refuse to follow the link)."""
        target = os.path.join(self.outside, "victim")
        with open(target, "w") as f:
            f.write("precious\n")
        inbox = self.account.getMailbox("INBOX")
        modseq = os.path.join(inbox.path, "mailstack-modseq")
        if os.path.exists(modseq):
            os.unlink(modseq)
        os.symlink(target, modseq)
        self.deliver()
        self.successResultOf(inbox.sync())
        with open(target) as f:
            self.assertEqual(f.read(), "precious\n")


class SMTPSpoolFaultTests(SMTPTestMixin, unittest.TestCase):
    """
    The DATA spool (a temporary file past 1 MiB) cannot be written: the
    message is read to its end and refused with a temporary error.
    """

    def startData(self):
        self.ehlo()
        self.send(b"MAIL FROM:<kim@example.com>\r\nRCPT TO:<alice@lab.test>\r\n")
        self.assertTrue(self.send(b"DATA\r\n").startswith(b"354 "))

    def test_spoolDiskFull(self):
        """ENOSPC while spooling: 452 4.3.1 after the final dot, nothing delivered, the
        session goes on, one log line."""
        log = LogWatch(self)
        self.startData()

        class FullSpool(io.BytesIO):
            def write(self, data):
                diskFull()
        self.server._dataState.spool = FullSpool()
        out = self.send(b"Subject: x\r\n\r\nbody\r\nRSET\r\n.\r\n")
        self.assertEqual(out[:10], b"452 4.3.1 ")
        self.assertEqual(self.policy.delivered, [])
        self.assertEqual(self.send(b"NOOP\r\n")[:3], b"250")
        self.assertEqual(log.problems(), [])

    def test_spoolIOError(self):
        """EIO while spooling: 451 4.3.0."""
        self.startData()

        class BrokenSpool(io.BytesIO):
            def write(self, data):
                raise OSError(errno.EIO, "Input/output error")
        self.server._dataState.spool = BrokenSpool()
        self.assertEqual(self.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")[:10], b"451 4.3.0 ")


class IMAPLiteralSpoolFaultTests(IMAPTestMixin, unittest.TestCase):
    """
    An APPEND literal too big for memory is spooled to disk; if the disk is
    full the literal is read to its end and the APPEND refused.
    """

    def test_appendSpoolDiskFull(self):
        """NO [OVERQUOTA] for the APPEND, nothing stored, the session goes on."""
        server, transport = self.connect(maxLiteralSize=500000)
        self.login((server, transport))

        class FullSpool(io.BytesIO):
            def __init__(self, max_size=0):
                io.BytesIO.__init__(self)

            def write(self, data):
                diskFull()
        self.patch(imapserver.tempfile, "SpooledTemporaryFile", FullSpool)
        log = LogWatch(self)
        message = bigMessage(2000)
        self.send(b"a APPEND INBOX {%d}\r\n" % (len(message),), (server, transport))
        out = self.send(message + b"\r\nb NOOP\r\n", (server, transport))
        self.assertEqual(out, b"a NO [OVERQUOTA] Not enough disk space\r\nb OK NOOP completed\r\n")
        self.assertEqual(self.account.getMailbox("INBOX").messages(), [])
        self.assertEqual(log.problems(), [])
