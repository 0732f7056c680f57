"""
Tests for L{mailstack.storage.maildir}: the Maildir++ store, checked through its
files (what Dovecot would see) and through the store contract. The mailbox's use of
dovecot-uidlist and the account's subscriptions are tested in L{tests.test_uidlist}
and L{tests.test_subscriptions}, with those modules.
"""

import errno
import io
import os
import re
import threading
import time

from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from mailstack.storage import crlf, files, maildir
from mailstack.storage.interfaces import (
    Changes, IAccountStore, IMailboxStore, IMailStore, IMessageInfo,
    InvalidMailboxName, MailboxExists, MailboxInUse, MailboxNotEmpty, NoSpace, NoSuchMailbox,
    NoSuchMessage, StoreError)
from mailstack.storage.account import MaildirStore

ADDRESS = "demo@lab.test"
MESSAGE = b"From: a@lab.test\nSubject: hello\n\nline one\nline two\n"
MESSAGE_CRLF = MESSAGE.replace(b"\n", b"\r\n")
NAME_PATTERN = re.compile(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)\.([^/:]+),S=(\d+),W=(\d+)$")


class RecordingListener:
    """An IMailboxListener that keeps what it is told."""

    def __init__(self):
        self.changes = []

    def mailboxChanged(self, mailbox, changes):
        self.changes.append((mailbox, changes))


class ChunkedSource(io.RawIOBase):
    """A binary source that hands out its data in fixed-size pieces."""

    def __init__(self, data, size):
        self._data = data
        self._size = size
        self.reads = []

    def readable(self):
        return True

    def read(self, n=-1):
        piece, self._data = self._data[:self._size], self._data[self._size:]
        self.reads.append(n)
        return piece


class MaildirTestCase(TestCase):
    """Shared set-up: a store in a fresh directory and paths into it."""

    def setUp(self):
        self.root = self.mktemp()
        self.store = MaildirStore(self.root)
        self.account = self.store.account(ADDRESS)
        self.home = os.path.join(self.root, "lab.test", "demo")
        self.inbox = self.account.getMailbox("INBOX")

    def freshInbox(self):
        """The INBOX as another process (a new store on the same files) sees it."""
        return MaildirStore(self.root).account(ADDRESS).getMailbox("INBOX")

    def path(self, *parts):
        return os.path.join(self.home, *parts)

    def files(self, *parts):
        return sorted(os.listdir(self.path(*parts)))

    def read(self, *parts):
        with open(self.path(*parts), "rb") as f:
            return f.read()

    def write(self, data, *parts, mtime=None):
        path = self.path(*parts)
        with open(path, "wb") as f:
            f.write(data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def ageStamps(self, mailbox):
        """Make the directories look untouched for a while (so sync trusts stamps)."""
        old = time.time() - 100
        for name in ("new", "cur", "dovecot-uidlist"):
            os.utime(os.path.join(mailbox.path, name), (old, old))

    def captureLog(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events


class StoreTests(MaildirTestCase):
    """
    L{MaildirStore} and accounts: layout, caching, refused addresses.
    """

    def test_interfaces(self):
        """The store, account, mailbox and message info provide the contract."""
        self.inbox.deliver(MESSAGE)
        self.successResultOf(self.inbox.sync())
        self.assertTrue(verifyObject(IMailStore, self.store))
        self.assertTrue(verifyObject(IAccountStore, self.account))
        self.assertTrue(verifyObject(IMailboxStore, self.inbox))
        self.assertTrue(verifyObject(IMessageInfo, self.inbox.messageInfo(1)))

    def test_layout(self):
        """An account lives at root/<domain>/<localpart> (lower case) with cur/new/tmp."""
        account = self.store.account("Jane.Doe@Example.TEST")
        self.assertEqual(account.address, "jane.doe@example.test")
        home = os.path.join(self.root, "example.test", "jane.doe")
        for sub in ("cur", "new", "tmp"):
            self.assertTrue(os.path.isdir(os.path.join(home, sub)))
        self.assertFalse(os.path.exists(os.path.join(home, "maildirfolder")))

    def test_sharedObjects(self):
        """One account and one mailbox object per path, so sessions share listeners."""
        self.assertIs(self.store.account("DEMO@lab.test"), self.account)
        self.assertIs(self.account.getMailbox("inbox"), self.inbox)
        self.successResultOf(self.account.createMailbox("Sent"))
        self.assertIs(self.account.getMailbox("Sent"), self.account.getMailbox("Sent"))

    def test_badAddresses(self):
        """Addresses that could escape the mail directory are refused."""
        for address in ["../x@lab.test", "a/b@lab.test", "x@..", "x@lab/..", "x@",
                        "@lab.test", "noat", "a\x00b@lab.test", "a..b@lab.test",
                        ".@lab.test", "x@.."]:
            self.assertRaises(ValueError, self.store.account, address)
            self.assertRaises(InvalidMailboxName, self.store.account, address)
        self.assertEqual(os.listdir(self.root), ["lab.test"])


class MailboxNameTests(MaildirTestCase):
    """
    Folders: Maildir++ directories, name checks, create, delete, rename.
    """

    def test_createFolder(self):
        """Creating a nested folder creates its parent too, each a Maildir++ folder."""
        self.successResultOf(self.account.createMailbox("Lists/Python"))
        for folder in (".Lists", ".Lists.Python"):
            self.assertEqual(self.files(folder), ["cur", "maildirfolder", "new", "tmp"])
            self.assertEqual(self.read(folder, "maildirfolder"), b"")
        self.assertEqual(self.account.listMailboxes(), ["INBOX", "Lists", "Lists/Python"])
        self.assertTrue(self.account.hasMailbox("Lists/Python"))
        self.assertFalse(self.account.hasMailbox("Lists/Perl"))

    def test_createExisting(self):
        """Creating an existing mailbox (INBOX included, any case) fails."""
        self.successResultOf(self.account.createMailbox("Sent"))
        self.failureResultOf(self.account.createMailbox("Sent"), MailboxExists)
        self.failureResultOf(self.account.createMailbox("InBox"), MailboxExists)

    def test_createTrailingSeparator(self):
        """CREATE "Work/" creates Work (RFC 3501 allows the trailing separator)."""
        self.successResultOf(self.account.createMailbox("Work/"))
        self.assertEqual(self.account.listMailboxes(), ["INBOX", "Work"])

    def test_modifiedUTF7OnDisk(self):
        """Folder directories are named in modified UTF-7, listed in Unicode."""
        self.successResultOf(self.account.createMailbox("\u65e5\u672c\u8a9e"))
        self.successResultOf(self.account.createMailbox("Tom & Jerry/\u00e9t\u00e9"))
        self.assertIn(".&ZeVnLIqe-", os.listdir(self.home))
        self.assertIn(".Tom &- Jerry.&AOk-t&AOk-", os.listdir(self.home))
        self.assertEqual(self.account.listMailboxes(),
                         ["INBOX", "Tom & Jerry", "Tom & Jerry/\u00e9t\u00e9", "\u65e5\u672c\u8a9e"])
        self.assertEqual(self.account.getMailbox("\u65e5\u672c\u8a9e").path,
                         self.path(".&ZeVnLIqe-"))

    def test_refusedNames(self):
        """Unsafe or unrepresentable names are refused, saying why, creating nothing."""
        before = sorted(os.listdir(self.home))
        reasons = {"": "empty", "..": "'..'", "a/../b": "'..'", "/abs": "start with '/'",
                   "a\x01b": "control", "a\x7fb": "control", "a\x00b": "NUL",
                   "a.b": "'.' is not allowed", "a//b": "empty level", "x" * 300: "too long"}
        for name, reason in reasons.items():
            for method in (self.account.createMailbox, self.account.openMailbox):
                error = self.failureResultOf(method(name), InvalidMailboxName).value
                self.assertIn(reason, str(error))
            error = self.assertRaises(InvalidMailboxName, self.account.getMailbox, name)
            self.assertIn(reason, str(error))
            self.assertFalse(self.account.hasMailbox(name))
        self.assertEqual(sorted(os.listdir(self.home)), before)

    def test_getMissing(self):
        """Opening a mailbox that does not exist fails with NoSuchMailbox."""
        self.assertRaises(NoSuchMailbox, self.account.getMailbox, "Nope")

    def test_foreignDirectoriesIgnored(self):
        """Directories that are not well-formed folder names are not listed."""
        os.mkdir(self.path("..DOVECOT-TRASHED"))
        os.mkdir(self.path(".bad&name"))
        os.mkdir(self.path("notafolder"))
        self.assertEqual(self.account.listMailboxes(), ["INBOX"])

    def test_delete(self):
        """Deleting removes the folder and its mail; open sessions see expunges."""
        self.successResultOf(self.account.createMailbox("Old"))
        old = self.account.getMailbox("Old")
        self.successResultOf(old.append(MESSAGE))
        listener = RecordingListener()
        old.addListener(listener)
        self.successResultOf(self.account.deleteMailbox("Old"))
        self.assertFalse(os.path.exists(self.path(".Old")))
        self.assertEqual(self.account.listMailboxes(), ["INBOX"])
        self.assertEqual(listener.changes, [(old, Changes(expunged=[1]))])
        self.assertEqual([n for n in os.listdir(self.home) if "deleted" in n], [])
        self.assertRaises(NoSuchMailbox, old.deliver, MESSAGE)

    def test_deleteRefused(self):
        """INBOX and mailboxes with children cannot be deleted; missing ones fail."""
        self.successResultOf(self.account.createMailbox("A/B"))
        self.failureResultOf(self.account.deleteMailbox("INBOX"), MailboxNotEmpty)
        error = self.failureResultOf(self.account.deleteMailbox("A"), MailboxNotEmpty).value
        self.assertIn("child", str(error))
        self.failureResultOf(self.account.deleteMailbox("Nope"), NoSuchMailbox)
        self.successResultOf(self.account.deleteMailbox("A/B"))
        self.successResultOf(self.account.deleteMailbox("A"))
        self.assertEqual(self.account.listMailboxes(), ["INBOX"])

    def test_renameWithChildren(self):
        """Renaming moves the folder and every child; messages keep their UIDs."""
        self.successResultOf(self.account.createMailbox("A/B/C"))
        box = self.account.getMailbox("A/B")
        self.successResultOf(box.append(MESSAGE))
        uid, validity = self.successResultOf(box.append(MESSAGE_CRLF + b"2")), box.uidValidity
        self.successResultOf(self.account.createMailbox("AB"))
        self.successResultOf(self.account.renameMailbox("A", "X/Y"))
        self.assertEqual(self.account.listMailboxes(),
                         ["AB", "INBOX", "X", "X/Y", "X/Y/B", "X/Y/B/C"])
        self.assertIn(".X.Y.B.C", os.listdir(self.home))
        moved = self.account.getMailbox("X/Y/B")
        self.assertEqual(moved.uidValidity, validity)
        with moved.openMessage(uid) as f:
            self.assertEqual(f.read(), MESSAGE_CRLF + b"2")
        self.assertRaises(NoSuchMailbox, self.account.getMailbox, "A/B")

    def test_renameRefused(self):
        """Rename fails for a missing source, an existing target, or into itself."""
        self.successResultOf(self.account.createMailbox("A"))
        self.successResultOf(self.account.createMailbox("B"))
        self.failureResultOf(self.account.renameMailbox("Nope", "C"), NoSuchMailbox)
        self.failureResultOf(self.account.renameMailbox("A", "B"), MailboxExists)
        self.failureResultOf(self.account.renameMailbox("A", "INBOX"), MailboxExists)
        self.failureResultOf(self.account.renameMailbox("A", "A/Sub"), InvalidMailboxName)
        self.failureResultOf(self.account.renameMailbox("A", "a.b"), InvalidMailboxName)

    def test_renameInbox(self):
        """Renaming INBOX moves its messages, in order, and leaves INBOX empty."""
        for n in range(3):  # later messages have older dates: order is by UID
            self.successResultOf(
                self.inbox.append(MESSAGE + b"%d\n" % (n,), internalDate=1000000000 - n))
        listener = RecordingListener()
        self.inbox.addListener(listener)
        self.successResultOf(self.account.renameMailbox("INBOX", "Archive/2024"))
        self.assertEqual(self.inbox.messages(), [])
        self.assertEqual(self.successResultOf(self.inbox.sync()), Changes())
        self.assertEqual(listener.changes[-1][1].expunged, [1, 2, 3])
        self.assertEqual(self.files("new") + self.files("cur"), [])
        archive = self.account.getMailbox("Archive/2024")
        bodies = []
        for info in archive.messages():
            with archive.openMessage(info.uid) as f:
                bodies.append(f.read())
        self.assertEqual(bodies, [MESSAGE_CRLF + b"%d\r\n" % (n,) for n in range(3)])
        self.assertIn("INBOX", self.account.listMailboxes())


class DeliveryTests(MaildirTestCase):
    """
    L{MaildirMailbox.deliver}: tmp/ then new/, CRLF, sizes in the name.
    """

    def test_newFile(self):
        """A delivery is one file in new/, named <time>.M.P.Q.<host>,S=,W=, in CRLF."""
        key = self.inbox.deliver(MESSAGE)
        self.assertEqual(self.files("new"), [key])
        self.assertEqual(self.files("tmp"), [])
        match = NAME_PATTERN.match(key)
        self.assertIsNotNone(match, key)
        self.assertEqual(int(match.group(3)), os.getpid())
        self.assertEqual(self.read("new", key), MESSAGE_CRLF)
        self.assertEqual(int(match.group(6)), os.path.getsize(self.path("new", key)))
        self.assertEqual(int(match.group(7)), len(MESSAGE_CRLF))

    def test_uniqueNames(self):
        """Each delivery gets its own name (the Q sequence differs)."""
        keys = {self.inbox.deliver(MESSAGE) for _ in range(20)}
        self.assertEqual(len(keys), 20)
        self.assertEqual(len(self.files("new")), 20)

    def test_lineEndings(self):
        """Bare LF becomes CRLF; CRLF split across reads stays CRLF; lone CR is kept."""
        data = b"a\r\nb\nc\r\n\r\nd\re\n\nf"
        for size in (1, 2, 3, 5, 64):
            key = self.inbox.deliver(ChunkedSource(data, size))
            self.assertEqual(self.read("new", key), b"a\r\nb\r\nc\r\n\r\nd\re\r\n\r\nf")

    def test_readsInChunks(self):
        """The source is read 64 KiB at a time, not all at once."""
        source = ChunkedSource(b"x" * 200000, 65536)
        self.inbox.deliver(source)
        self.assertEqual(set(source.reads), {65536})

    def test_flagsGoToCur(self):
        """A delivery with flags goes straight to cur/ with the :2, info."""
        key = self.inbox.deliver(MESSAGE, flags={"\\Seen", "\\Flagged"})
        self.assertEqual(self.files("cur"), [key + ":2,FS"])
        self.assertEqual(self.files("new"), [])

    def test_internalDate(self):
        """The internal date becomes the file's mtime and INTERNALDATE."""
        key = self.inbox.deliver(MESSAGE, internalDate=1000000000)
        self.assertEqual(os.stat(self.path("new", key)).st_mtime, 1000000000)
        uid = self.successResultOf(self.inbox.append(MESSAGE, internalDate=1234567890.0))
        self.assertEqual(self.inbox.messageInfo(uid).internalDate, 1234567890.0)

    def test_hostnameEscaped(self):
        """'/' and ':' in the host name are written \\057 and \\072."""
        self.patch(files.socket, "gethostname", lambda: "a/b:c")
        self.patch(files, "_host", [])  # read once per process: forget it
        key = self.inbox.deliver(MESSAGE)
        self.assertIn(".a\\057b\\072c,S=", key)
        self.assertEqual(self.files("new"), [key])

    def test_noInMemoryChange(self):
        """Delivery touches only files: the message appears at the next sync."""
        self.inbox.deliver(MESSAGE)
        self.assertEqual(self.inbox.messages(), [])
        self.assertEqual(self.successResultOf(self.inbox.sync()).added, [1])

    def test_threads(self):
        """Deliveries from several threads at once all arrive intact."""
        errors = []

        def work(n):
            try:
                for i in range(10):
                    self.inbox.deliver(b"thread %d message %d\n" % (n, i))
            except Exception as e:
                errors.append(e)
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(self.successResultOf(self.inbox.sync()).added), 40)

    def test_failedSourceLeavesNothing(self):
        """If reading the source fails, the partial file is removed."""
        class Broken(io.RawIOBase):
            calls = 0

            def read(self, n=-1):
                self.calls += 1
                if self.calls > 1:
                    raise IOError("connection lost")
                return b"partial\n"
        self.assertRaises(IOError, self.inbox.deliver, Broken())
        self.assertEqual(self.files("tmp") + self.files("new"), [])

    def test_tmpFileNotAMessage(self):
        """A file left in tmp/ by a crash between write and rename is never a message."""
        self.write(MESSAGE, "tmp", "1.M1P1Q1.host")
        self.assertEqual(self.successResultOf(self.inbox.sync()), Changes())
        self.assertEqual(self.freshInbox().messages(), [])

    def test_cleanTemporary(self):
        """Files in tmp/ older than 36 hours are removed, younger ones kept."""
        old = time.time() - 37 * 3600
        self.write(b"old", "tmp", "old", mtime=old)
        self.write(b"young", "tmp", "young", mtime=time.time() - 3600)
        self.assertEqual(self.inbox.cleanTemporary(), 1)
        self.assertEqual(self.files("tmp"), ["young"])

    def test_cleanTemporaryOnOpen(self):
        """Opening INBOX for the first time in a process cleans tmp/."""
        self.write(b"old", "tmp", "old", mtime=time.time() - 37 * 3600)
        self.freshInbox()
        self.assertEqual(self.files("tmp"), [])


class FlagTests(MaildirTestCase):
    """
    Flags in file names, keywords in dovecot-keywords.
    """

    def setUp(self):
        MaildirTestCase.setUp(self)
        self.key = self.inbox.deliver(MESSAGE)
        self.successResultOf(self.inbox.sync())

    def test_roundTrip(self):
        """System flags become sorted DFRST letters and read back the same."""
        flags = {"\\Seen", "\\Answered", "\\Deleted", "\\Draft", "\\Flagged"}
        info = self.successResultOf(self.inbox.setFlags(1, flags))
        self.assertEqual(info.flags, flags)
        self.assertEqual(self.files("cur"), [self.key + ":2,DFRST"])
        self.assertEqual(self.freshInbox().messageInfo(1).flags, flags)
        self.successResultOf(self.inbox.setFlags(1, set()))
        self.assertEqual(self.files("cur"), [self.key + ":2,"])
        self.assertEqual(self.freshInbox().messageInfo(1).flags, set())

    def test_caseInsensitiveSystemFlags(self):
        """System flag names are matched case-insensitively; \\Recent is not stored."""
        info = self.successResultOf(self.inbox.setFlags(1, {"\\SEEN", "\\Recent"}))
        self.assertEqual(info.flags, {"\\Seen"})

    def test_keywords(self):
        """Keywords get letters a, b... recorded in dovecot-keywords."""
        info = self.successResultOf(self.inbox.setFlags(1, {"\\Seen", "Work", "$Forwarded"}))
        self.assertEqual(info.flags, {"\\Seen", "Work", "$Forwarded"})
        self.assertEqual(self.read("dovecot-keywords"), b"0 $Forwarded\n1 Work\n")
        self.assertEqual(self.files("cur"), [self.key + ":2,Sab"])
        self.assertEqual(self.inbox.keywords(), {"Work", "$Forwarded"})
        fresh = self.freshInbox()
        self.assertEqual(fresh.messageInfo(1).flags, {"\\Seen", "Work", "$Forwarded"})
        uid = self.successResultOf(self.inbox.append(MESSAGE, flags={"work"}))
        self.assertEqual(self.inbox.messageInfo(uid).flags, {"Work"})
        self.assertEqual(self.read("dovecot-keywords"), b"0 $Forwarded\n1 Work\n")

    def test_dovecotKeywordsFile(self):
        """Letters map through an existing dovecot-keywords file."""
        self.write(b"0 Junk\n3 NonJunk\n", "dovecot-keywords")
        os.rename(self.path("cur", self.key + ":2,"), self.path("cur", self.key + ":2,Sd"))
        self.successResultOf(self.inbox.sync())
        self.assertEqual(self.inbox.messageInfo(1).flags, {"\\Seen", "NonJunk"})
        self.successResultOf(self.inbox.setFlags(1, {"Junk", "Later"}))
        self.assertEqual(self.files("cur"), [self.key + ":2,ab"])
        self.assertEqual(self.read("dovecot-keywords"), b"0 Junk\n1 Later\n3 NonJunk\n")

    def test_keywordLimit(self):
        """A mailbox holds at most 26 keywords; the 27th is refused."""
        names = {"k%02d" % (n,) for n in range(26)}
        self.successResultOf(self.inbox.setFlags(1, names))
        self.assertEqual(self.inbox.keywords(), names)
        before = self.read("dovecot-keywords")
        error = self.failureResultOf(self.inbox.setFlags(1, {"one-too-many"}), StoreError).value
        self.assertIn("26", str(error))
        self.assertEqual(self.read("dovecot-keywords"), before)
        self.assertEqual(self.inbox.messageInfo(1).flags, names)

    def test_invalidFlags(self):
        """Unknown system flags and malformed keywords are refused."""
        self.failureResultOf(self.inbox.setFlags(1, {"\\Bogus"}), StoreError)
        self.failureResultOf(self.inbox.setFlags(1, {"two words"}), StoreError)
        self.failureResultOf(self.inbox.setFlags(1, {""}), StoreError)
        self.failureResultOf(self.inbox.setFlags(1, {"caf\u00e9"}), StoreError)
        self.failureResultOf(self.inbox.setFlags(1, {"\U0001f600"}), StoreError)
        self.failureResultOf(self.inbox.setFlags(1, {"a(b"}), StoreError)
        self.assertEqual(self.inbox.messageInfo(1).flags, set())
        self.failureResultOf(self.inbox.setFlags(99, {"\\Seen"}), NoSuchMessage)

    def test_unknownLettersPreserved(self):
        """Letters IMAP cannot express (P = passed) survive flag changes."""
        os.rename(self.path("cur", self.key + ":2,"), self.path("cur", self.key + ":2,PS"))
        self.successResultOf(self.inbox.sync())
        self.assertEqual(self.inbox.messageInfo(1).flags, {"\\Seen"})
        self.successResultOf(self.inbox.setFlags(1, {"\\Flagged"}))
        self.assertEqual(self.files("cur"), [self.key + ":2,FP"])

    def test_changeByOtherProgram(self):
        """A flag change made by renaming the file is found and announced."""
        self.successResultOf(self.inbox.sync())
        listener = RecordingListener()
        self.inbox.addListener(listener)
        os.rename(self.path("cur", self.key + ":2,"), self.path("cur", self.key + ":2,S"))
        self.assertEqual(self.successResultOf(self.inbox.sync()).flagsChanged, [1])
        self.assertEqual(self.inbox.messageInfo(1).flags, {"\\Seen"})
        self.assertEqual(listener.changes, [(self.inbox, Changes(flagsChanged=[1]))])

    def test_setFlagsNotifies(self):
        """Listeners hear of flag changes, but not of a no-op store."""
        listener = RecordingListener()
        self.inbox.addListener(listener)
        self.successResultOf(self.inbox.setFlags(1, {"\\Seen"}))
        self.successResultOf(self.inbox.setFlags(1, {"\\Seen"}))
        self.assertEqual(listener.changes, [(self.inbox, Changes(flagsChanged=[1]))])


class RecentAndListenerTests(MaildirTestCase):
    """
    \\Recent goes to exactly one session; listeners hear of others' changes.
    """

    def test_recentToOneSession(self):
        """Of two sessions syncing the shared mailbox, only the first gets \\Recent."""
        self.inbox.deliver(MESSAGE)
        first = self.successResultOf(self.account.getMailbox("INBOX").sync())
        second = self.successResultOf(self.account.getMailbox("INBOX").sync())
        self.assertEqual((first.added, first.recent), ([1], [1]))
        self.assertEqual(second, Changes())
        self.assertEqual(self.files("new"), [])

    def test_recentAcrossProcesses(self):
        """A second process's sync sees the message but not as \\Recent."""
        self.inbox.deliver(MESSAGE)
        other = self.freshInbox()
        self.assertEqual(self.successResultOf(other.sync()), Changes(recent=[1]))
        self.assertEqual(self.successResultOf(self.inbox.sync()), Changes(added=[1]))
        self.assertEqual([m.uid for m in self.inbox.messages()], [1])

    def test_recentNotForListeners(self):
        """Listeners are told of additions with an empty recent list."""
        listener = RecordingListener()
        self.inbox.addListener(listener)
        self.inbox.deliver(MESSAGE)
        self.assertEqual(self.successResultOf(self.inbox.sync()).recent, [1])
        self.assertEqual(listener.changes, [(self.inbox, Changes(added=[1]))])

    def test_noteDelivery(self):
        """noteDelivery tells listeners, and leaves \\Recent for the next session sync."""
        listener = RecordingListener()
        self.inbox.addListener(listener)
        key = self.inbox.deliver(MESSAGE)
        self.assertEqual(self.inbox.noteDelivery(), Changes(added=[1]))
        self.assertEqual(listener.changes, [(self.inbox, Changes(added=[1]))])
        self.assertEqual(self.files("new"), [key])
        self.assertEqual(self.successResultOf(self.inbox.sync()), Changes(recent=[1]))
        self.assertEqual(self.files("cur"), [key + ":2,"])
        self.assertEqual(self.successResultOf(self.inbox.sync()), Changes())

    def test_hasListeners(self):
        """hasListeners is true exactly while a session listens."""
        listener = RecordingListener()
        self.assertFalse(self.inbox.hasListeners())
        self.inbox.addListener(listener)
        self.assertTrue(self.inbox.hasListeners())
        self.inbox.removeListener(listener)
        self.assertFalse(self.inbox.hasListeners())

    def test_expungeToldToOtherSession(self):
        """Session B's listener is told when session A expunges."""
        for _ in range(3):
            self.inbox.deliver(MESSAGE)
        self.successResultOf(self.inbox.sync())
        sessionB = RecordingListener()
        self.account.getMailbox("INBOX").addListener(sessionB)
        self.assertEqual(self.successResultOf(self.inbox.expunge([2, 7])), [2])
        self.assertEqual(sessionB.changes, [(self.inbox, Changes(expunged=[2]))])
        self.assertEqual([m.uid for m in self.inbox.messages()], [1, 3])
        self.assertEqual(len(self.files("cur")), 2)
        self.assertEqual([m.uid for m in self.freshInbox().messages()], [1, 3])

    def test_expungeDeleted(self):
        """expunge(None) removes exactly the messages flagged \\Deleted."""
        for _ in range(3):
            self.inbox.deliver(MESSAGE)
        self.successResultOf(self.inbox.sync())
        self.successResultOf(self.inbox.setFlags(1, {"\\Deleted"}))
        self.successResultOf(self.inbox.setFlags(3, {"\\Deleted", "\\Seen"}))
        self.assertEqual(self.successResultOf(self.inbox.expunge(None)), [1, 3])
        self.assertEqual([m.uid for m in self.freshInbox().messages()], [2])

    def test_removeListener(self):
        """A removed listener is not called; removing an unknown one is harmless."""
        listener = RecordingListener()
        self.inbox.addListener(listener)
        self.inbox.removeListener(listener)
        self.inbox.removeListener(RecordingListener())
        self.successResultOf(self.inbox.append(MESSAGE))
        self.assertEqual(listener.changes, [])

    def test_failingListener(self):
        """A listener that raises is logged; the others are still told."""
        class Broken:
            def mailboxChanged(self, mailbox, changes):
                raise RuntimeError("boom")
        listener = RecordingListener()
        self.inbox.addListener(Broken())
        self.inbox.addListener(listener)
        self.successResultOf(self.inbox.append(MESSAGE))
        self.assertEqual(len(listener.changes), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_appendReturnsUID(self):
        """append stores and returns the UID at once; flags go with it."""
        uid = self.successResultOf(self.inbox.append(MESSAGE, flags={"\\Seen"}))
        self.assertEqual(uid, 1)
        self.assertEqual(self.inbox.messageInfo(1).flags, {"\\Seen"})
        self.assertEqual(self.successResultOf(self.inbox.append(MESSAGE)), 2)
        self.assertEqual(self.inbox.uidNext, 3)


class MessageTests(MaildirTestCase):
    """
    Reading messages: streamed, always CRLF, right sizes.
    """

    def test_bigMessageStreamed(self):
        """A 5 MB message is served from the file in chunks, not loaded whole."""
        line = b"0123456789" * 7 + b"\n"
        body = b"Subject: big\n\n" + line * (5 * 1024 * 1024 // len(line))
        uid = self.successResultOf(self.inbox.append(io.BytesIO(body)))
        expected = body.replace(b"\n", b"\r\n")
        self.assertEqual(self.inbox.messageInfo(uid).size, len(expected))
        with self.inbox.openMessage(uid) as f:
            self.assertNotIsInstance(f, io.BytesIO)
            self.assertFalse(hasattr(f, "getvalue"))
            chunks = []
            while True:
                chunk = f.read(65536)
                if not chunk:
                    break
                self.assertLessEqual(len(chunk), 65536)
                chunks.append(chunk)
            self.assertGreater(len(chunks), 70)
            self.assertEqual(b"".join(chunks), expected)

    def test_lfFileFromOtherMDA(self):
        """A file with LF line ends (another MDA) is served as CRLF, with its CRLF size."""
        body = b"Subject: lf\n\n" + b"".join(b"line %d\n" % (n,) for n in range(20000))
        self.write(body, "new", "1700000000.M1P1.mda")
        self.successResultOf(self.inbox.sync())
        expected = body.replace(b"\n", b"\r\n")
        self.assertEqual(self.inbox.messageInfo(1).size, len(expected))
        with self.inbox.openMessage(1) as f:
            self.assertEqual(f.readline(), b"Subject: lf\r\n")
            self.assertEqual(f.tell(), 13)
            self.assertLessEqual(len(f.read(65536)), 65536)
            f.seek(0)
            self.assertEqual(f.read(), expected)
            f.seek(len(expected) - 9)
            self.assertEqual(f.read(), b"ne 19999\r\n"[1:])

    def test_lfSizeRemembered(self):
        """The CRLF size of a foreign LF file is stored as Dovecot's W field, once."""
        self.write(b"a\nb\n", "new", "1700000000.M1P1.mda,S=4")
        self.successResultOf(self.inbox.sync())
        self.assertIn("1 W6 :1700000000.M1P1.mda,S=4\n", self.read("dovecot-uidlist").decode())
        self.patch(crlf, "wireSize", lambda path: self.fail("size computed again"))
        self.assertEqual(self.freshInbox().messageInfo(1).size, 6)

    def test_vanishedFileStillListed(self):
        """Until the next sync, a message removed by another program stays listed."""
        keys = [self.inbox.deliver(MESSAGE) for _ in range(2)]
        self.successResultOf(self.inbox.sync())
        os.unlink(self.path("cur", keys[0] + ":2,"))
        self.assertEqual([m.uid for m in self.inbox.messages()], [1, 2])
        self.assertRaises(NoSuchMessage, self.inbox.openMessage, 1)
        self.assertEqual(self.successResultOf(self.inbox.sync()).expunged, [1])

    def test_lfFileWithSizeFields(self):
        """A Dovecot-style name with S= (disk) and W= (CRLF) sizes is trusted."""
        self.write(b"a\nb\n", "cur", "1700000000.M1P1.dove,S=4,W=6:2,S")
        self.successResultOf(self.inbox.sync())
        self.assertEqual(self.inbox.messageInfo(1).size, 6)
        with self.inbox.openMessage(1) as f:
            self.assertEqual(f.read(), b"a\r\nb\r\n")

    def test_crlfFileServedAsIs(self):
        """Our own CRLF files are served straight from the file."""
        uid = self.successResultOf(self.inbox.append(MESSAGE))
        with self.inbox.openMessage(uid) as f:
            self.assertEqual(f.read(), MESSAGE_CRLF)
            f.seek(0)
            self.assertEqual(f.readline(), b"From: a@lab.test\r\n")

    def test_missingMessage(self):
        """Unknown UIDs raise NoSuchMessage."""
        self.assertRaises(NoSuchMessage, self.inbox.messageInfo, 1)
        self.assertRaises(NoSuchMessage, self.inbox.openMessage, 1)

    def test_renamedByOtherProgram(self):
        """A message whose file another program renamed (flags) can still be read."""
        key = self.inbox.deliver(MESSAGE)
        self.successResultOf(self.inbox.sync())
        os.rename(self.path("cur", key + ":2,"), self.path("cur", key + ":2,S"))
        with self.inbox.openMessage(1) as f:
            self.assertEqual(f.read(), MESSAGE_CRLF)

    def renameDuringListing(self, then):
        """After our next listing of the files, another program does C{then}()."""
        listFiles = self.inbox._listFiles

        def listed():
            listing = listFiles()
            self.inbox._listFiles = listFiles  # only once
            then()
            return listing
        self.inbox._listFiles = listed

    def test_renamedTwiceByOtherProgram(self):
        """
        A file renamed again between our new listing and the retry (two sessions
        of another process storing flags in turn) is followed once more.
        """
        self.write(b"a\nb\n", "cur", "1700000000.M1P1.mda:2,")
        self.successResultOf(self.inbox.sync())
        os.rename(self.path("cur", "1700000000.M1P1.mda:2,"),
                  self.path("cur", "1700000000.M1P1.mda:2,S"))
        self.renameDuringListing(lambda: os.rename(
            self.path("cur", "1700000000.M1P1.mda:2,S"),
            self.path("cur", "1700000000.M1P1.mda:2,ST")))
        with self.inbox.openMessage(1) as f:
            self.assertEqual(f.read(), b"a\r\nb\r\n")

    def test_renamedThenDeletedByOtherProgram(self):
        """
        A file renamed, then expunged by another program while we look for it, is
        listed until the next sync (size 0) and cannot be opened: NoSuchMessage,
        never FileNotFoundError (a SELECT once failed with NO [SERVERBUG] so, when
        two worker processes served one busy account).
        """
        self.write(b"a\nb\n", "cur", "1700000000.M1P1.mda:2,")
        self.successResultOf(self.inbox.sync())
        os.rename(self.path("cur", "1700000000.M1P1.mda:2,"),
                  self.path("cur", "1700000000.M1P1.mda:2,T"))
        self.renameDuringListing(lambda: os.unlink(
            self.path("cur", "1700000000.M1P1.mda:2,T")))
        self.assertEqual([m.uid for m in self.inbox.messages()], [1])
        self.assertRaises(NoSuchMessage, self.inbox.openMessage, 1)
        self.assertEqual(self.successResultOf(self.inbox.sync()).expunged, [1])

    def test_messagesInfo(self):
        """messages() lists every message in UID order with flags, size, date, key."""
        first = self.inbox.deliver(MESSAGE, internalDate=1000000000)
        self.inbox.deliver(b"x", flags={"\\Draft"})
        self.successResultOf(self.inbox.sync())
        infos = self.inbox.messages()
        self.assertEqual([(i.uid, i.flags, i.size) for i in infos],
                         [(1, frozenset(), len(MESSAGE_CRLF)), (2, {"\\Draft"}, 1)])
        self.assertEqual((infos[0].internalDate, infos[0].key), (1000000000, first))


class InfoCacheTests(MaildirTestCase):
    """
    The mailbox keeps the L{maildir.MessageInfo}s it built (and the list
    messages() returns) while nothing they show changes; every change shows.
    """

    def setUp(self):
        MaildirTestCase.setUp(self)
        self.keys = [self.inbox.deliver(MESSAGE) for _ in range(3)]
        self.successResultOf(self.inbox.sync())
        self.before = self.inbox.messages()

    def flags(self):
        return [(info.uid, info.flags) for info in self.inbox.messages()]

    def test_kept(self):
        """Unchanged, the same objects come back, in a list of the caller's own."""
        again = self.inbox.messages()
        self.assertEqual(again, self.before)
        self.assertTrue(all(a is b for a, b in zip(again, self.before)))
        again.pop()
        self.assertEqual(len(self.inbox.messages()), 3)
        self.assertIs(self.inbox.messageInfo(2), self.before[1])

    def test_setFlags(self):
        """A flag change (by any session: the mailbox is shared) shows, with a new modseq."""
        self.successResultOf(self.inbox.setFlags(2, {"\\Seen"}))
        infos = self.inbox.messages()
        self.assertEqual(self.flags(), [(1, set()), (2, {"\\Seen"}), (3, set())])
        self.assertGreater(infos[1].modseq, self.before[1].modseq)
        self.assertEqual(infos[1].modseq, self.inbox.highestModseq)
        self.assertIs(infos[0], self.before[0])
        self.assertEqual(self.inbox.messageInfo(2), infos[1])

    def test_outsideRename(self):
        """A flag change by another program shows after the sync, with a new modseq."""
        os.rename(self.path("cur", self.keys[0] + ":2,"), self.path("cur", self.keys[0] + ":2,F"))
        self.assertEqual(self.successResultOf(self.inbox.sync()).flagsChanged, [1])
        infos = self.inbox.messages()
        self.assertEqual(infos[0].flags, {"\\Flagged"})
        self.assertGreater(infos[0].modseq, self.before[0].modseq)

    def test_outsideRenameFoundByRead(self):
        """A file found renamed when read (before any sync) shows its new flags."""
        os.rename(self.path("cur", self.keys[2] + ":2,"), self.path("cur", self.keys[2] + ":2,S"))
        with self.inbox.openMessage(3) as f:
            self.assertEqual(f.read(), MESSAGE_CRLF)
        self.assertEqual(self.inbox.messages()[2].flags, {"\\Seen"})

    def test_expunge(self):
        """Expunged messages leave the list, whoever removed them."""
        self.successResultOf(self.inbox.expunge([2]))
        self.assertEqual([info.uid for info in self.inbox.messages()], [1, 3])
        os.unlink(self.path("cur", self.keys[0] + ":2,"))
        self.assertEqual(self.successResultOf(self.inbox.sync()).expunged, [1])
        self.assertEqual([info.uid for info in self.inbox.messages()], [3])
        self.assertRaises(NoSuchMessage, self.inbox.messageInfo, 1)

    def test_delivery(self):
        """A new message shows after the sync, the others stay as they were."""
        self.inbox.deliver(MESSAGE, flags={"\\Draft"})
        self.successResultOf(self.inbox.sync())
        infos = self.inbox.messages()
        self.assertEqual([(i.uid, i.flags) for i in infos][3:], [(4, {"\\Draft"})])
        self.assertEqual(infos[:3], self.before)

    def test_keywordNamesChanged(self):
        """Another program renaming a keyword changes the flags shown."""
        self.successResultOf(self.inbox.setFlags(1, {"Work"}))
        self.assertEqual(self.inbox.messages()[0].flags, {"Work"})
        self.write(b"0 Home\n", "dovecot-keywords")
        self.successResultOf(self.inbox.sync())
        self.assertEqual(self.inbox.messages()[0].flags, {"Home"})
        self.write(b"0 Leisure\n", "dovecot-keywords")
        self.assertEqual(self.inbox.keywords(), {"Leisure"})
        self.assertEqual(self.inbox.messageInfo(1).flags, {"Leisure"})

    def test_renumbered(self):
        """A new UIDVALIDITY (the uidlist lost) renumbers every info."""
        listener = RecordingListener()
        self.inbox.addListener(listener)
        os.unlink(self.path("dovecot-uidlist"))
        self.successResultOf(self.inbox.sync())
        infos = self.inbox.messages()
        self.assertEqual(len(infos), 3)
        self.assertEqual({i.key for i in infos}, set(self.keys))
        self.assertNotEqual(self.inbox.uidValidity, None)
        self.assertEqual(infos, [self.inbox.messageInfo(i.uid) for i in infos])


class CopyTests(MaildirTestCase):
    """
    L{MaildirMailbox.copyTo}.
    """

    def setUp(self):
        MaildirTestCase.setUp(self)
        self.successResultOf(
            self.inbox.append(MESSAGE, flags={"\\Seen", "Work"}, internalDate=1000000000))
        self.successResultOf(self.inbox.append(b"second\n"))
        self.successResultOf(self.inbox.append(b"third\n"))
        self.successResultOf(self.account.createMailbox("Saved"))
        self.saved = self.account.getMailbox("Saved")
        self.successResultOf(self.saved.append(b"already here\n"))

    def test_copy(self):
        """Copies get new UIDs in the destination with flags, keywords and dates."""
        listener = RecordingListener()
        self.saved.addListener(listener)
        pairs = self.successResultOf(self.inbox.copyTo([3, 1, 99], self.saved))
        self.assertEqual(pairs, [(1, 2), (3, 3)])
        copied = self.saved.messageInfo(2)
        self.assertEqual(copied.flags, {"\\Seen", "Work"})
        self.assertEqual(copied.internalDate, 1000000000)
        with self.saved.openMessage(3) as f:
            self.assertEqual(f.read(), b"third\r\n")
        self.assertEqual(self.read(".Saved", "dovecot-keywords"), b"0 Work\n")
        self.assertEqual([m.uid for m in self.inbox.messages()], [1, 2, 3])
        self.assertEqual(listener.changes, [(self.saved, Changes(added=[2, 3]))])
        self.assertEqual(self.files(".Saved", "tmp"), [])

    def test_hardLinked(self):
        """On one filesystem a copy is a hard link, not a second copy of the bytes."""
        self.successResultOf(self.inbox.copyTo([2], self.saved))
        source = self.inbox._entryPath(self.inbox._entries[2])
        target = self.saved._entryPath(self.saved._entries[2])
        self.assertEqual(os.stat(source).st_ino, os.stat(target).st_ino)

    def test_copyAcrossFilesystems(self):
        """When linking fails (another filesystem), the file is copied."""
        def noLink(source, target):
            raise OSError(errno.EXDEV, "cross-device link")
        self.patch(maildir.os, "link", noLink)
        self.assertEqual(self.successResultOf(self.inbox.copyTo([1], self.saved)), [(1, 2)])
        with self.saved.openMessage(2) as f:
            self.assertEqual(f.read(), MESSAGE_CRLF)
        self.assertEqual(self.saved.messageInfo(2).internalDate, 1000000000)

    def test_copyAllOrNothing(self):
        """If one copy fails (here: the disk is full), the copies already made are removed."""
        calls = []
        original = maildir.shutil.copy2

        def noLink(source, target):
            raise OSError(errno.EXDEV, "cross-device link")

        def failSecond(source, target):
            calls.append(target)
            original(source, target)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "no space left on device")
        self.patch(maildir.os, "link", noLink)
        self.patch(maildir.shutil, "copy2", failSecond)
        self.failureResultOf(self.inbox.copyTo([1, 2, 3], self.saved), NoSpace)
        self.assertEqual(self.files(".Saved", "tmp"), [])
        self.assertEqual(len(self.files(".Saved", "new") + self.files(".Saved", "cur")), 1)
        self.assertEqual(self.successResultOf(self.saved.sync()).added, [])

    def test_copyToDeletedMailbox(self):
        """Copying into a mailbox deleted meanwhile fails with NoSuchMailbox."""
        self.successResultOf(self.account.deleteMailbox("Saved"))
        self.failureResultOf(self.inbox.copyTo([1], self.saved), NoSuchMailbox)


class ThreeStepCopyTests(MaildirTestCase):
    """
    prepareCopy (memory only), placeCopies (files only, for a worker thread),
    adoptCopies (UIDs): what IMAP COPY and MOVE run.
    """

    setUp = CopyTests.setUp

    def place(self, uids):
        return self.inbox.placeCopies(self.inbox.prepareCopy(uids, self.saved))

    def test_placedHaveNoUIDsYet(self):
        """After placeCopies the copies are on disk but unknown to memory; adoptCopies gives UIDs."""
        listener = RecordingListener()
        self.saved.addListener(listener)
        placed = self.place([1, 2])
        self.assertEqual(len(self.files(".Saved", "new") + self.files(".Saved", "cur")), 3)
        self.assertEqual(sorted(self.saved._entries), [1])
        self.assertEqual(listener.changes, [])
        self.assertEqual(self.inbox.adoptCopies(placed), [(1, 2), (2, 3)])
        self.assertEqual(listener.changes, [(self.saved, Changes(added=[2, 3]))])

    def test_placeCopiesInAnotherThread(self):
        """The file step run in another thread places copies that adoptCopies then numbers."""
        plan = self.inbox.prepareCopy([1, 3], self.saved)
        result = []
        worker = threading.Thread(target=lambda: result.append(self.inbox.placeCopies(plan)))
        worker.start()
        worker.join()
        self.assertEqual(self.inbox.adoptCopies(result[0]), [(1, 2), (3, 3)])
        self.assertEqual(self.saved.messageInfo(2).flags, {"\\Seen", "Work"})

    def test_sourceRenamedMeanwhile(self):
        """A message renamed by another program (a flag change) after the plan is still copied."""
        plan = self.inbox.prepareCopy([2], self.saved)
        entry = self.inbox._entries[2]
        old = self.inbox._entryPath(entry)
        os.rename(old, self.path("cur", entry.base + ":2,F"))
        placed = self.inbox.placeCopies(plan)
        self.assertEqual(self.inbox.adoptCopies(placed), [(2, 2)])
        with self.saved.openMessage(2) as f:
            self.assertEqual(f.read(), b"second\r\n")

    def test_sourceRemovedMeanwhile(self):
        """A message another program removed after the plan is skipped; the others are copied."""
        plan = self.inbox.prepareCopy([1, 2], self.saved)
        os.unlink(self.inbox._entryPath(self.inbox._entries[2]))
        self.assertEqual(self.inbox.adoptCopies(self.inbox.placeCopies(plan)), [(1, 2)])

    def test_destinationDeletedBeforeAdopt(self):
        """A destination deleted while the copies were placed: adoptCopies says NoSuchMailbox."""
        placed = self.place([1])
        self.successResultOf(self.account.deleteMailbox("Saved"))
        self.assertRaises(NoSuchMailbox, self.inbox.adoptCopies, placed)

    def test_destinationDeletedBeforePlace(self):
        """A destination deleted after the plan: placeCopies says NoSuchMailbox."""
        plan = self.inbox.prepareCopy([1], self.saved)
        self.successResultOf(self.account.deleteMailbox("Saved"))
        self.assertRaises(NoSuchMailbox, self.inbox.placeCopies, plan)


class TwoStepAppendTests(TestCase):
    """
    placeMessage (thread-safe, files only) then adopt (UID), and unclaimedCount.
    """

    def setUp(self):
        self.inbox = MaildirStore(self.mktemp()).account("a@lab.test").getMailbox("INBOX")

    def test_placeThenAdopt(self):
        """The placed file has no UID until adopted; adopt returns it."""
        placed = self.inbox.placeMessage(b"Subject: x\r\n\r\nbody\r\n", {"\\Seen"})
        self.assertEqual(self.inbox.messages(), [])
        uid = self.inbox.adopt(placed)
        [info] = self.inbox.messages()
        self.assertEqual((info.uid, info.key, info.flags), (uid, placed, frozenset({"\\Seen"})))

    def test_adoptRanksFirst(self):
        """A message placed after another program's delivery still gets its own UID back."""
        first = self.inbox.placeMessage(b"one\r\n")
        second = self.inbox.placeMessage(b"two\r\n")
        uid = self.inbox.adopt(second)
        self.assertEqual(self.inbox.messageInfo(uid).key, second)
        self.assertNotEqual(self.inbox.messageInfo(self.inbox.adopt(first)).key, second)

    def test_unclaimedCount(self):
        """
        Messages in new/, and those appended here straight to cur/, count until
        a session's sync claims them (no session has seen any of them).
        """
        self.inbox.deliver(b"one\r\n")
        self.inbox.deliver(b"two\r\n")
        self.successResultOf(self.inbox.append(b"three\r\n", {"\\Seen"}))  # straight to cur/
        self.inbox.noteDelivery()
        self.assertEqual(self.inbox.unclaimedCount(), 3)
        self.assertEqual(len(self.successResultOf(self.inbox.sync()).recent), 3)
        self.assertEqual(self.inbox.unclaimedCount(), 0)


class AppendManyTests(MaildirTestCase):
    """MULTIAPPEND on the Maildir: every file fsynced in tmp/ before any is placed."""

    def test_nothingLeftWhenReadFails(self):
        """A second message that cannot be read leaves no file in tmp/, new/ or cur/."""
        class Failing(io.RawIOBase):
            def readinto(self, buffer):
                raise OSError(errno.EIO, "injected")
        d = self.inbox.appendMany([(b"one\r\n", (), None), (Failing(), {"\\Seen"}, None)])
        self.failureResultOf(d, OSError)
        for subdir in ("tmp", "new", "cur"):
            self.assertEqual(self.files(subdir), [], subdir)

    def failPlacing(self, meanwhile):
        """
        appendMany of two messages whose fsync of cur/ fails once they are
        renamed there, C{meanwhile()} run just before it fails.

        @return: UIDNEXT before the attempt.
        """
        real = maildir.fsyncDirectory

        def failing(path):
            if path.endswith("cur"):
                meanwhile()
                raise OSError(errno.EIO, "injected fsync failure")
            return real(path)
        self.patch(maildir, "fsyncDirectory", failing)
        uidNext = self.inbox.uidNext
        d = self.inbox.appendMany([(b"one\r\n", {"\\Seen"}, None), (b"two\r\n", (), None)])
        self.failureResultOf(d, OSError)
        self.patch(maildir, "fsyncDirectory", real)
        return uidNext

    def test_nothingLeftWhenPlacingFails(self):
        """A failure after some messages were renamed into cur/ takes them back: no file, no UID."""
        placed = []
        uidNext = self.failPlacing(lambda: placed.extend(self.files("cur")))
        self.assertEqual(len(placed), 1)  # the \Seen one: the failure came after the renames
        for subdir in ("tmp", "new", "cur"):
            self.assertEqual(self.files(subdir), [], subdir)
        self.assertEqual(self.successResultOf(self.inbox.append(b"three\r\n")), uidNext)

    def test_noUIDUsedWhenPlacingFails(self):
        """Another process syncing after the renames cannot number the placed messages
        (the uidlist lock is held until their UIDs are written): when placing fails,
        no UID is used up and that process never saw them."""
        other = self.freshInbox()
        self.successResultOf(other.sync())
        seen = []

        def otherSyncs():
            self.successResultOf(other.sync())
            seen.extend(info.uid for info in other.messages())
        uidNext = self.failPlacing(otherSyncs)
        self.assertEqual(seen, [])
        self.successResultOf(other.sync())
        self.assertEqual(other.messages(), [])
        self.assertEqual(self.successResultOf(self.inbox.append(b"three\r\n")), uidNext)

    def test_nothingLeftWhenUIDListWriteFails(self):
        """If writing the UIDs fails (a full disk), the placed messages are taken back."""
        def full(*args):
            raise OSError(errno.ENOSPC, "No space left on device")
        self.patch(maildir.DotLock, "commit", full)  # recreating the file
        self.patch(maildir, "appendRecords", full)  # or adding to it
        d = self.inbox.appendMany([(b"one\r\n", {"\\Seen"}, None), (b"two\r\n", (), None)])
        self.failureResultOf(d, StoreError)
        for subdir in ("tmp", "new", "cur"):
            self.assertEqual(self.files(subdir), [], subdir)

    def test_lockHeldElsewhere(self):
        """With the uidlist locked by another program past threadLockTimeout, nothing is
        placed: MailboxInUse (IMAP's NO [INUSE]), no file left."""
        self.inbox.threadLockTimeout = 0.0
        self.successResultOf(self.inbox.sync())
        with open(self.path("dovecot-uidlist.lock"), "w"):
            pass
        events = self.captureLog()
        d = self.inbox.appendMany([(b"one\r\n", (), None), (b"two\r\n", (), None)])
        self.failureResultOf(d, MailboxInUse)
        for subdir in ("tmp", "new", "cur"):
            self.assertEqual(self.files(subdir), [], subdir)
        self.assertIn("2 messages not appended: dovecot-uidlist stayed locked by another"
                      " program for 0.0 s", [formatEvent(e).split(": ", 1)[-1] for e in events])

    def test_oneUIDListWrite(self):
        """All the messages get their UIDs in one write of dovecot-uidlist."""
        writes = []
        real, realAppend = maildir.DotLock.commit, maildir.appendRecords

        def commit(lock, data):
            writes.append(data)
            return real(lock, data)

        def append(path, data):
            writes.append(data)
            return realAppend(path, data)
        self.patch(maildir.DotLock, "commit", commit)
        self.patch(maildir, "appendRecords", append)
        uids = self.successResultOf(self.inbox.appendMany(
            [(b"one\r\n", (), None), (b"two\r\n", (), None), (b"three\r\n", (), None)]))
        self.assertEqual(len(uids), 3)
        self.assertEqual(len(writes), 1)
