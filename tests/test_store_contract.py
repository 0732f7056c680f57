"""
The store contract (L{mailstack.storage.interfaces}) as the protocols rely on
it, checked on every store through one mixin, L{StoreContractMixin}: the
Maildir store in a temporary directory (without a reactor its thread work
runs at once, so its Deferreds have fired when the call returns, like the
memory store's) and, through L{tests.stores.everyStore}, the memory store. What only one store does (Maildir
file names, Dovecot's files) is tested with that store, not here.
"""

import io

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from mailstack.storage.interfaces import (
    Changes, IAccountStore, IMaildropLock, IMailboxStore, IMailStore, IMessageInfo,
    InvalidMailboxName, MailboxExists, MailboxInUse, MailboxNotEmpty, NoSuchMailbox,
    NoSuchMessage, StoreError)
from mailstack.storage import backends
from mailstack.storage.memory import MemoryBackend, MemoryStore
from tests.stores import StoreChoice, everyStore

ADDRESS = "demo@lab.test"
OTHER = "bob@lab.test"
MESSAGE = b"From: a@lab.test\nSubject: hello\n\nline one\nline two\n"
MESSAGE_CRLF = MESSAGE.replace(b"\n", b"\r\n")


class RecordingListener:
    """An IMailboxListener that keeps every L{Changes} it is told of."""

    def __init__(self):
        self.changes = []

    def mailboxChanged(self, mailbox, changes):
        self.changes.append((mailbox, changes))

    def total(self):
        """The changes told so far, merged into one L{Changes}."""
        added, expunged, flagsChanged, recent = set(), set(), set(), set()
        for _, changes in self.changes:
            added.update(changes.added)
            expunged.update(changes.expunged)
            flagsChanged.update(changes.flagsChanged)
            recent.update(changes.recent)
        return Changes(added, expunged, flagsChanged, recent)


class _FailingSource:
    """A message source whose reading fails (a spool on a disk gone bad)."""

    def read(self, size=-1):
        raise OSError("injected read failure")

    readline = readinto = read


class StoreContractMixin:
    """
    The contract tests; a L{TestCase} mixing this in says which store with
    C{makeStore()} (L{StoreChoice}).
    """

    def setUp(self):
        self.store = self.makeStore()
        self.account = self.store.account(ADDRESS)
        self.inbox = self.open("INBOX")

    # Helpers

    def open(self, name, account=None):
        return self.successResultOf((account or self.account).openMailbox(name))

    def append(self, mailbox=None, source=MESSAGE, flags=(), internalDate=None):
        return self.successResultOf((mailbox or self.inbox).append(source, flags, internalDate))

    def sync(self, mailbox=None, claimRecent=True):
        return self.successResultOf((mailbox or self.inbox).sync(claimRecent))

    def create(self, name):
        self.successResultOf(self.account.createMailbox(name))

    def listen(self, mailbox=None):
        listener = RecordingListener()
        (mailbox or self.inbox).addListener(listener)
        return listener

    def uids(self, mailbox=None):
        return [info.uid for info in (mailbox or self.inbox).messages()]

    def read(self, uid, mailbox=None):
        with (mailbox or self.inbox).openMessage(uid) as f:
            return f.read()

    # The objects

    def test_interfaces(self):
        """The store, account, mailbox, message info and maildrop lock provide the contract."""
        uid = self.append()
        self.assertTrue(verifyObject(IMailStore, self.store))
        self.assertTrue(verifyObject(IAccountStore, self.account))
        self.assertTrue(verifyObject(IMailboxStore, self.inbox))
        self.assertTrue(verifyObject(IMessageInfo, self.inbox.messageInfo(uid)))
        lock = self.successResultOf(self.account.lockMaildrop())
        self.assertTrue(verifyObject(IMaildropLock, lock))
        lock.release()

    def test_sharedMailbox(self):
        """Every opening of a mailbox (any case of INBOX) gives the one shared object."""
        self.assertIs(self.store.account(ADDRESS.upper()), self.account)
        self.assertEqual(self.account.address, ADDRESS)
        self.assertIs(self.open("inbox"), self.inbox)
        self.create("Sent")
        self.assertIs(self.open("Sent"), self.open("Sent"))
        self.assertEqual(self.inbox.name, "INBOX")

    # Appending and reading

    def test_appendGivesUIDs(self):
        """APPEND answers the new message's UID, UIDNEXT's value before it; UIDNEXT moves on."""
        first = self.inbox.uidNext
        self.assertEqual(self.append(), first)
        self.assertEqual(self.append(), first + 1)
        self.assertEqual(self.inbox.uidNext, first + 2)
        self.assertEqual(self.uids(), [first, first + 1])

    def test_wireForm(self):
        """Messages are read and sized in CRLF form, whatever line ends were given."""
        mixed = b"Subject: x\r\n\nbare\nend\r\n"
        uids = [self.append(source=MESSAGE), self.append(source=io.BytesIO(mixed)),
                self.append(source=MESSAGE_CRLF)]
        expected = [MESSAGE_CRLF, b"Subject: x\r\n\r\nbare\r\nend\r\n", MESSAGE_CRLF]
        for uid, wire in zip(uids, expected):
            self.assertEqual(self.read(uid), wire)
            self.assertEqual(self.inbox.messageInfo(uid).size, len(wire))

    def test_openMessageIsAFile(self):
        """openMessage gives a seekable binary file, readable by lines and in pieces."""
        uid = self.append()
        with self.inbox.openMessage(uid) as f:
            self.assertEqual(f.readline(), b"From: a@lab.test\r\n")
            self.assertEqual(f.read(9), b"Subject: ")
            f.seek(0)
            self.assertEqual(f.tell(), 0)
            self.assertEqual(f.read(), MESSAGE_CRLF)

    def test_internalDate(self):
        """INTERNALDATE is the one APPEND gave, and COPY keeps it."""
        uid = self.append(internalDate=1000000000.0)
        self.assertEqual(self.inbox.messageInfo(uid).internalDate, 1000000000.0)
        self.create("Archive")
        archive = self.open("Archive")
        [(_, copy)] = self.successResultOf(self.inbox.copyTo([uid], archive))
        self.assertEqual(archive.messageInfo(copy).internalDate, 1000000000.0)

    def test_appendFlags(self):
        """APPEND stores its flags (system flags in any case, keywords), never \\Recent."""
        uid = self.append(flags={"\\seen", "\\Recent", "$Label1"})
        self.assertEqual(self.inbox.messageInfo(uid).flags, {"\\Seen", "$Label1"})
        self.assertIn("$Label1", self.inbox.keywords())

    def test_appendBadFlag(self):
        """APPEND with an unknown system flag fails with a StoreError and stores nothing."""
        self.failureResultOf(self.inbox.append(MESSAGE, {"\\Bogus"}), StoreError)
        self.assertEqual(self.inbox.messages(), [])

    def test_appendManyGivesUIDs(self):
        """MULTIAPPEND stores every message with its flags and date, under consecutive UIDs."""
        first = self.inbox.uidNext
        listener = self.listen()
        uids = self.successResultOf(self.inbox.appendMany([
            (MESSAGE, {"\\Seen"}, 1000000000.0),
            (io.BytesIO(b"Subject: two\n\nbody\n"), {"$Label1"}, None)]))
        self.assertEqual(uids, [first, first + 1])
        self.assertEqual(self.uids(), uids)
        self.assertEqual(self.read(uids[0]), MESSAGE_CRLF)
        self.assertEqual(self.read(uids[1]), b"Subject: two\r\n\r\nbody\r\n")
        self.assertEqual(self.inbox.messageInfo(uids[0]).flags, {"\\Seen"})
        self.assertEqual(self.inbox.messageInfo(uids[0]).internalDate, 1000000000.0)
        self.assertEqual(self.inbox.messageInfo(uids[1]).flags, {"$Label1"})
        self.assertEqual(self.inbox.unclaimedUIDs(), uids)
        self.assertEqual(sorted(listener.total().added), uids)

    def test_appendManyAllOrNothing(self):
        """If the second message of a MULTIAPPEND cannot be read, neither is stored nor
        announced, and no UID is used up."""
        first = self.inbox.uidNext
        listener = self.listen()
        d = self.inbox.appendMany([(MESSAGE, (), None), (_FailingSource(), (), None)])
        self.failureResultOf(d, OSError)
        self.sync(claimRecent=False)
        self.assertEqual(self.inbox.messages(), [])
        self.assertFalse(listener.total().added)
        self.assertEqual(self.append(), first)

    def test_appendManyBadFlag(self):
        """A MULTIAPPEND whose second message has an unknown system flag stores nothing."""
        d = self.inbox.appendMany([(MESSAGE, (), None), (MESSAGE, {"\\Bogus"}, None)])
        self.failureResultOf(d, StoreError)
        self.sync(claimRecent=False)
        self.assertEqual(self.inbox.messages(), [])

    def test_appendManyIntoDeleted(self):
        """A MULTIAPPEND to a mailbox deleted meanwhile fails with NoSuchMailbox."""
        self.create("Gone")
        gone = self.open("Gone")
        self.successResultOf(self.account.deleteMailbox("Gone"))
        self.failureResultOf(gone.appendMany([(MESSAGE, (), None)]), NoSuchMailbox)

    def test_noSuchMessage(self):
        """A UID not in the mailbox has no info and cannot be opened or flagged."""
        self.assertRaises(NoSuchMessage, self.inbox.messageInfo, 99)
        self.assertRaises(NoSuchMessage, self.inbox.openMessage, 99)
        self.failureResultOf(self.inbox.setFlags(99, {"\\Seen"}), NoSuchMessage)

    # Flags and keywords

    def test_setFlags(self):
        """setFlags replaces the flags and answers the new info; \\Recent is not stored."""
        uid = self.append(flags={"\\Flagged"})
        info = self.successResultOf(self.inbox.setFlags(uid, {"\\Seen", "\\Recent"}))
        self.assertEqual(info.uid, uid)
        self.assertEqual(info.flags, {"\\Seen"})
        self.assertEqual(self.inbox.messageInfo(uid).flags, {"\\Seen"})

    def test_setBadFlag(self):
        """An unknown system flag or a keyword that is no atom is refused; flags unchanged."""
        uid = self.append(flags={"\\Seen"})
        self.failureResultOf(self.inbox.setFlags(uid, {"\\Bogus"}), StoreError)
        self.failureResultOf(self.inbox.setFlags(uid, {"bad keyword"}), StoreError)
        self.assertEqual(self.inbox.messageInfo(uid).flags, {"\\Seen"})

    def test_keywordsGrow(self):
        """A mailbox's keyword set grows with the keywords used in it, several of them."""
        self.assertEqual(self.inbox.keywords(), set())
        uid = self.append()
        names = {"$Label%d" % (i,) for i in range(1, 9)} | {"NonJunk"}
        info = self.successResultOf(self.inbox.setFlags(uid, names | {"\\Answered"}))
        self.assertEqual(info.flags, names | {"\\Answered"})
        self.assertEqual(self.inbox.keywords(), names)
        self.successResultOf(self.inbox.setFlags(uid, set()))
        self.assertEqual(self.inbox.messageInfo(uid).flags, set())
        self.assertTrue(names <= self.inbox.keywords())

    def test_keywordCase(self):
        """Keywords match without regard to case: the name first used is kept."""
        first = self.append(flags={"$Work"})
        second = self.append()
        info = self.successResultOf(self.inbox.setFlags(second, {"$WORK"}))
        self.assertEqual(info.flags, {"$Work"})
        self.assertEqual(self.inbox.messageInfo(first).flags, {"$Work"})
        self.assertEqual(self.inbox.keywords(), {"$Work"})

    # Expunge

    def test_expunge(self):
        """expunge answers the UIDs removed, ascending, ignoring missing ones."""
        uids = [self.append() for _ in range(3)]
        removed = self.successResultOf(self.inbox.expunge([uids[2], 99, uids[0]]))
        self.assertEqual(removed, [uids[0], uids[2]])
        self.assertEqual(self.uids(), [uids[1]])
        self.assertRaises(NoSuchMessage, self.inbox.openMessage, uids[0])
        self.assertEqual(self.successResultOf(self.inbox.expunge([uids[0]])), [])

    def test_uidsNotReused(self):
        """After an expunge, new messages get larger UIDs than any before."""
        uid = self.append()
        self.successResultOf(self.inbox.expunge([uid]))
        self.assertGreater(self.append(), uid)

    # COPY

    def test_copyTo(self):
        """copyTo answers (source, copy) pairs in source order, skips missing UIDs, keeps flags."""
        self.create("Archive")
        archive = self.open("Archive")
        first = self.append(flags={"\\Seen", "$Work"})
        second = self.append(source=b"Subject: two\n\n2\n")
        pairs = self.successResultOf(self.inbox.copyTo([second, 99, first], archive))
        self.assertEqual([source for source, _ in pairs], [first, second])
        copies = [copy for _, copy in pairs]
        self.assertEqual(self.uids(archive), copies)
        self.assertEqual(archive.messageInfo(copies[0]).flags, {"\\Seen", "$Work"})
        self.assertIn("$Work", archive.keywords())
        self.assertEqual(self.read(copies[1], archive), b"Subject: two\r\n\r\n2\r\n")
        self.assertEqual(self.uids(), [first, second])

    def test_saveDate(self):
        """Every message has a save date (SAVEDATE): not the INTERNALDATE given, kept by flag changes, renewed by a copy."""
        self.create("Archive")
        archive = self.open("Archive")
        uid = self.append(internalDate=981021600.0)  # 1-Feb-2001
        saved = self.inbox.messageInfo(uid).saveDate
        self.assertIsInstance(saved, float)
        self.assertGreater(saved, 981021600.0)
        self.successResultOf(self.inbox.setFlags(uid, {"\\Seen", "$Work"}))
        self.sync()
        self.assertEqual(self.inbox.messageInfo(uid).saveDate, saved)
        [(_, copy)] = self.successResultOf(self.inbox.copyTo([uid], archive))
        self.sync(archive)
        self.assertGreaterEqual(archive.messageInfo(copy).saveDate, saved)
        self.assertEqual(archive.messageInfo(copy).internalDate, 981021600.0)

    def test_copyIntoDeleted(self):
        """Copying into a mailbox deleted meanwhile fails with NoSuchMailbox."""
        self.create("Gone")
        gone = self.open("Gone")
        uid = self.append()
        self.successResultOf(self.account.deleteMailbox("Gone"))
        self.failureResultOf(self.inbox.copyTo([uid], gone), NoSuchMailbox)

    def test_appendIntoDeleted(self):
        """Appending to a mailbox deleted meanwhile fails with NoSuchMailbox."""
        self.create("Gone")
        gone = self.open("Gone")
        self.successResultOf(self.account.deleteMailbox("Gone"))
        self.failureResultOf(gone.append(MESSAGE), NoSuchMailbox)

    # \Recent

    def test_recentClaimedOnce(self):
        """An appended message is \\Recent for the first read-write sync only."""
        uid = self.append(flags={"\\Seen"})
        self.assertEqual(self.inbox.unclaimedUIDs(), [uid])
        self.assertEqual(self.inbox.unclaimedCount(), 1)
        self.assertEqual(self.sync().recent, [uid])
        self.assertEqual(self.inbox.unclaimedUIDs(), [])
        self.assertEqual(self.inbox.unclaimedCount(), 0)
        self.assertEqual(self.sync().recent, [])

    def test_readersLeaveRecent(self):
        """A sync with claimRecent=False (POP3, STATUS, EXAMINE) leaves \\Recent to IMAP."""
        uid = self.append()
        self.assertEqual(self.sync(claimRecent=False).recent, [])
        self.assertEqual(self.inbox.unclaimedUIDs(), [uid])
        self.assertEqual(self.sync().recent, [uid])

    def test_deliveryIsRecent(self):
        """A delivered message is unclaimed until a read-write sync claims it."""
        self.successResultOf(self.store.deliver([ADDRESS], MESSAGE))
        self.sync(claimRecent=False)
        [uid] = self.uids()
        self.assertEqual(self.inbox.unclaimedUIDs(), [uid])
        self.assertEqual(self.sync().recent, [uid])
        self.assertEqual(self.inbox.unclaimedCount(), 0)

    def test_copiesAreRecent(self):
        """Copies are unclaimed in the destination; the sources' claims are not touched."""
        self.create("Archive")
        archive = self.open("Archive")
        uid = self.append()
        self.sync()
        [(_, copy)] = self.successResultOf(self.inbox.copyTo([uid], archive))
        self.assertEqual(self.inbox.unclaimedUIDs(), [])
        self.assertEqual(archive.unclaimedUIDs(), [copy])
        self.assertEqual(self.sync(archive).recent, [copy])

    def test_expungedNotRecent(self):
        """An unclaimed message expunged is no longer counted or claimed."""
        uid = self.append()
        self.successResultOf(self.inbox.expunge([uid]))
        self.assertEqual(self.inbox.unclaimedUIDs(), [])
        self.assertEqual(self.sync().recent, [])

    # Listeners

    def test_listenersTold(self):
        """Listeners hear of additions, flag changes and expunges, never of \\Recent."""
        listener = self.listen()
        uid = self.append()
        self.successResultOf(self.inbox.setFlags(uid, {"\\Seen"}))
        self.successResultOf(self.inbox.expunge([uid]))
        self.sync()
        self.assertEqual(listener.total(), Changes([uid], [uid], [uid]))
        for mailbox, _ in listener.changes:
            self.assertIs(mailbox, self.inbox)

    def test_sameFlagsNotAnnounced(self):
        """Setting the flags a message already has tells nobody."""
        uid = self.append(flags={"\\Seen"})
        listener = self.listen()
        self.successResultOf(self.inbox.setFlags(uid, {"\\Seen"}))
        self.assertEqual(listener.total(), Changes())

    def test_removedListener(self):
        """A removed listener hears nothing more; removing an unknown one is harmless."""
        listener = self.listen()
        self.inbox.removeListener(listener)
        self.inbox.removeListener(RecordingListener())
        self.append()
        self.assertEqual(listener.changes, [])

    def test_deliveryTold(self):
        """A delivery reaches the INBOX's listeners once (told by the store or found by a sync)."""
        listener = self.listen()
        self.successResultOf(self.store.deliver([ADDRESS], MESSAGE))
        self.sync(claimRecent=False)
        self.sync()
        self.assertEqual(listener.total().added, self.uids())
        self.assertEqual(len(self.uids()), 1)

    def test_copyTold(self):
        """COPY tells the destination's listeners of the copies."""
        self.create("Archive")
        archive = self.open("Archive")
        listener = self.listen(archive)
        uid = self.append()
        [(_, copy)] = self.successResultOf(self.inbox.copyTo([uid], archive))
        self.assertEqual(listener.total().added, [copy])

    def test_failingListener(self):
        """A listener that raises does not undo the change nor stop the others."""
        class Broken:
            def mailboxChanged(self, mailbox, changes):
                raise RuntimeError("broken listener")
        self.inbox.addListener(Broken())
        listener = self.listen()
        uid = self.append()
        self.assertEqual(self.uids(), [uid])
        self.assertEqual(listener.total().added, [uid])
        self.flushLoggedErrors(RuntimeError)

    # Mod-sequences (RFC 7162)

    def test_modseqRises(self):
        """Every addition, flag change and expunge raises HIGHESTMODSEQ; messages carry theirs."""
        before = self.inbox.highestModseq
        uid = self.append()
        added = self.inbox.highestModseq
        self.assertGreater(added, before)
        self.assertEqual(self.inbox.messageInfo(uid).modseq, added)
        info = self.successResultOf(self.inbox.setFlags(uid, {"\\Seen"}))
        self.assertGreater(info.modseq, added)
        self.assertEqual(self.inbox.highestModseq, info.modseq)
        self.assertEqual(self.inbox.messageInfo(uid).modseq, info.modseq)
        self.successResultOf(self.inbox.expunge([uid]))
        self.assertGreater(self.inbox.highestModseq, info.modseq)

    def test_unchangedFlagsKeepModseq(self):
        """Setting the flags a message has already does not change its modseq."""
        uid = self.append(flags={"\\Seen"})
        modseq = self.inbox.messageInfo(uid).modseq
        self.successResultOf(self.inbox.setFlags(uid, {"\\Seen"}))
        self.assertEqual(self.inbox.messageInfo(uid).modseq, modseq)

    def test_vanishedSince(self):
        """vanishedSince names every UID expunged after the modseq, and none still present."""
        uids = [self.append() for _ in range(3)]
        before = self.inbox.highestModseq
        self.successResultOf(self.inbox.expunge([uids[1]]))
        middle = self.inbox.highestModseq
        self.successResultOf(self.inbox.expunge([uids[2]]))
        self.assertEqual(self.inbox.vanishedSince(before), [uids[1], uids[2]])
        self.assertIn(uids[2], self.inbox.vanishedSince(middle))
        self.assertNotIn(uids[0], self.inbox.vanishedSince(0))
        self.assertNotIn(uids[2], self.inbox.vanishedSince(self.inbox.highestModseq))

    # Mailboxes

    def test_createWithParents(self):
        """CREATE makes the missing parents; a trailing '/' only shows intent."""
        self.create("Lists/Python/Announce")
        self.create("Work/")
        self.assertEqual(self.account.listMailboxes(),
                         ["INBOX", "Lists", "Lists/Python", "Lists/Python/Announce", "Work"])
        self.assertTrue(self.account.hasMailbox("Lists/Python"))
        self.assertFalse(self.account.hasMailbox("Lists/Perl"))
        self.assertEqual(self.open("Lists/Python/Announce").messages(), [])

    def test_createExisting(self):
        """CREATE of an existing mailbox, INBOX in any case included, fails with MailboxExists."""
        self.create("Sent")
        for name in ["Sent", "INBOX", "inbox"]:
            self.failureResultOf(self.account.createMailbox(name), MailboxExists)

    def test_invalidNames(self):
        """Names the stores cannot keep are refused the same way everywhere."""
        for name in ["", "/Top", "a//b", "a.b", "..", "Sub//", "bad\x01name"]:
            self.failureResultOf(self.account.createMailbox(name), InvalidMailboxName)
            self.failureResultOf(self.account.openMailbox(name), InvalidMailboxName)
            self.assertFalse(self.account.hasMailbox(name))
        self.assertEqual(self.account.listMailboxes(), ["INBOX"])
        self.create("Caf\u00e9/\u65e5\u672c")
        self.assertIn("Caf\u00e9/\u65e5\u672c", self.account.listMailboxes())

    def test_openMissing(self):
        """Opening a mailbox that does not exist fails with NoSuchMailbox."""
        self.failureResultOf(self.account.openMailbox("Nowhere"), NoSuchMailbox)

    def test_delete(self):
        """DELETE removes the mailbox and its messages; its sessions see them expunged."""
        self.create("Old")
        old = self.open("Old")
        uid = self.append(old)
        listener = self.listen(old)
        self.successResultOf(self.account.deleteMailbox("Old"))
        self.assertFalse(self.account.hasMailbox("Old"))
        self.assertEqual(self.account.listMailboxes(), ["INBOX"])
        self.failureResultOf(self.account.openMailbox("Old"), NoSuchMailbox)
        self.assertEqual(listener.total().expunged, [uid])
        self.assertEqual(old.messages(), [])

    def test_deleteRefused(self):
        """DELETE refuses INBOX and a mailbox with children, and fails for a missing one."""
        self.create("Parent/Child")
        self.failureResultOf(self.account.deleteMailbox("INBOX"), MailboxNotEmpty)
        self.failureResultOf(self.account.deleteMailbox("inbox"), MailboxNotEmpty)
        self.failureResultOf(self.account.deleteMailbox("Parent"), MailboxNotEmpty)
        self.failureResultOf(self.account.deleteMailbox("Nowhere"), NoSuchMailbox)
        self.assertEqual(self.account.listMailboxes(), ["INBOX", "Parent", "Parent/Child"])

    def test_uidValidityOnRecreate(self):
        """A mailbox deleted and created again gets a new UIDVALIDITY and starts afresh."""
        self.create("Again")
        first = self.open("Again")
        self.append(first)
        self.successResultOf(self.account.deleteMailbox("Again"))
        self.create("Again")
        second = self.open("Again")
        self.assertIsNot(second, first)
        self.assertNotEqual(second.uidValidity, first.uidValidity)
        self.assertEqual(second.messages(), [])
        self.assertNotEqual(second.uidValidity, self.inbox.uidValidity)

    def test_distinctUIDValidities(self):
        """Mailboxes of an account have UIDVALIDITYs > 0, no two the same."""
        for name in ["A", "B", "C"]:
            self.create(name)
        values = [self.open(name).uidValidity for name in ["INBOX", "A", "B", "C"]]
        self.assertEqual(len(set(values)), 4)
        self.assertTrue(all(isinstance(v, int) and 0 < v < 2 ** 32 for v in values))

    def test_rename(self):
        """RENAME moves a mailbox with its children and messages; the old name is gone."""
        self.create("Work/Projects")
        work = self.open("Work")
        uid = self.append(work, flags={"\\Flagged"})
        self.append(self.open("Work/Projects"))
        listener = self.listen(work)
        self.successResultOf(self.account.renameMailbox("Work", "Archive/2024"))
        self.assertEqual(self.account.listMailboxes(),
                         ["Archive", "Archive/2024", "Archive/2024/Projects", "INBOX"])
        renamed = self.open("Archive/2024")
        [info] = renamed.messages()
        self.assertEqual(info.flags, {"\\Flagged"})
        self.assertEqual(self.read(info.uid, renamed), MESSAGE_CRLF)
        self.assertEqual(len(self.open("Archive/2024/Projects").messages()), 1)
        self.failureResultOf(self.account.openMailbox("Work"), NoSuchMailbox)
        self.assertEqual(listener.total().expunged, [uid])
        self.failureResultOf(work.append(MESSAGE), NoSuchMailbox)

    def test_renameRefused(self):
        """RENAME fails for a missing source, an existing target and a move into itself."""
        self.create("A/B")
        self.create("C")
        self.failureResultOf(self.account.renameMailbox("Nowhere", "X"), NoSuchMailbox)
        self.failureResultOf(self.account.renameMailbox("A", "C"), MailboxExists)
        self.failureResultOf(self.account.renameMailbox("A", "INBOX"), MailboxExists)
        self.failureResultOf(self.account.renameMailbox("A", "A/B/D"), InvalidMailboxName)
        self.failureResultOf(self.account.renameMailbox("A", "bad..name"), InvalidMailboxName)
        self.assertEqual(self.account.listMailboxes(), ["A", "A/B", "C", "INBOX"])

    def test_renameInbox(self):
        """RENAME INBOX moves its messages (flags kept) into a new mailbox; INBOX stays, empty."""
        first = self.append(flags={"\\Seen"})
        self.append(source=b"Subject: two\n\n2\n")
        listener = self.listen()
        self.successResultOf(self.account.renameMailbox("INBOX", "Old/Inbox"))
        self.assertEqual(self.account.listMailboxes(), ["INBOX", "Old", "Old/Inbox"])
        self.sync()
        self.assertEqual(self.inbox.messages(), [])
        self.assertIs(self.open("INBOX"), self.inbox)
        self.assertEqual(listener.total().expunged, [first, first + 1])
        old = self.open("Old/Inbox")
        infos = old.messages()
        self.assertEqual([info.flags for info in infos], [{"\\Seen"}, set()])
        self.assertEqual(self.read(infos[1].uid, old), b"Subject: two\r\n\r\n2\r\n")
        self.assertEqual(self.append(), self.inbox.uidNext - 1)

    # Subscriptions and special use

    def test_subscriptions(self):
        """Subscriptions are kept sorted, need no mailbox, and unknown ones unsubscribe quietly."""
        self.assertEqual(self.account.subscriptions(), [])
        for name in ["Sent", "Not/There", "inbox"]:
            self.successResultOf(self.account.subscribe(name))
        self.successResultOf(self.account.subscribe("Sent"))
        self.assertEqual(self.account.subscriptions(), ["INBOX", "Not/There", "Sent"])
        self.successResultOf(self.account.unsubscribe("Sent"))
        self.successResultOf(self.account.unsubscribe("Never"))
        self.assertEqual(self.account.subscriptions(), ["INBOX", "Not/There"])

    def test_subscribeInvalid(self):
        """Subscribing to a name no mailbox could have fails; unsubscribing it is a no-op."""
        self.failureResultOf(self.account.subscribe("a//b"), InvalidMailboxName)
        self.successResultOf(self.account.unsubscribe("a//b"))
        self.assertEqual(self.account.subscriptions(), [])

    def test_specialUse(self):
        """setSpecialUse records uses, replacing or (empty) removing them; RENAME keeps them, DELETE drops them."""
        self.create("Sent")
        self.create("Bin")
        self.assertEqual(self.account.specialUse(), {})
        self.successResultOf(self.account.setSpecialUse("Sent", ["\\Sent"]))
        self.successResultOf(self.account.setSpecialUse("Bin", ["\\Trash", "\\Junk"]))
        self.assertEqual(self.account.specialUse(),
                         {"Sent": ("\\Sent",), "Bin": ("\\Junk", "\\Trash")})
        self.successResultOf(self.account.renameMailbox("Bin", "Trash"))
        self.successResultOf(self.account.setSpecialUse("Sent", []))
        self.assertEqual(self.account.specialUse(), {"Trash": ("\\Junk", "\\Trash")})
        self.successResultOf(self.account.deleteMailbox("Trash"))
        self.assertEqual(self.account.specialUse(), {})

    def test_specialUseMissing(self):
        """setSpecialUse of a mailbox that does not exist fails with NoSuchMailbox."""
        self.failureResultOf(self.account.setSpecialUse("Nowhere", ["\\Sent"]), NoSuchMailbox)

    def test_defaultMailboxes(self):
        """A new account gets its default mailboxes, subscribed, with their uses, once."""
        defaults = [("Sent", "\\Sent"), ("Trash", "\\Trash")]
        created = self.successResultOf(self.account.createDefaultMailboxes(defaults))
        self.assertEqual(created, ["Sent", "Trash"])
        self.assertEqual(self.account.listMailboxes(), ["INBOX", "Sent", "Trash"])
        self.assertEqual(self.account.subscriptions(), ["Sent", "Trash"])
        self.assertEqual(self.account.specialUse(), {"Sent": ("\\Sent",), "Trash": ("\\Trash",)})
        for name in ["Sent", "Trash"]:
            self.successResultOf(self.account.deleteMailbox(name))
            self.successResultOf(self.account.unsubscribe(name))
        self.assertEqual(self.successResultOf(self.account.createDefaultMailboxes(defaults)), [])
        self.assertEqual(self.account.listMailboxes(), ["INBOX"])

    def test_defaultsKeepUsedAccount(self):
        """An account already in use gets no new mailboxes, only the uses of those it has."""
        self.create("Sent")
        defaults = [("Sent", "\\Sent"), ("Trash", "\\Trash")]
        self.assertEqual(self.successResultOf(self.account.createDefaultMailboxes(defaults)), [])
        self.assertEqual(self.account.listMailboxes(), ["INBOX", "Sent"])
        self.assertEqual(self.account.subscriptions(), [])
        self.assertEqual(self.account.specialUse(), {"Sent": ("\\Sent",)})

    # The POP3 maildrop lock

    def test_maildropExclusive(self):
        """One maildrop lock per account at a time; others fail with MailboxInUse until released."""
        lock = self.successResultOf(self.account.lockMaildrop())
        self.failureResultOf(self.account.lockMaildrop(), MailboxInUse)
        other = self.successResultOf(self.store.account(OTHER).lockMaildrop())
        lock.release()
        again = self.successResultOf(self.account.lockMaildrop())
        again.release()
        other.release()

    def test_releaseIdempotent(self):
        """Releasing twice is harmless and does not free a lock taken since."""
        lock = self.successResultOf(self.account.lockMaildrop())
        lock.release()
        lock.release()
        newer = self.successResultOf(self.account.lockMaildrop())
        lock.release()
        self.failureResultOf(self.account.lockMaildrop(), MailboxInUse)
        newer.release()

    # Delivery

    def test_deliverToSeveral(self):
        """deliver puts one copy in each address's INBOX, in wire form."""
        self.successResultOf(self.store.deliver([ADDRESS, OTHER], MESSAGE))
        for address in [ADDRESS, OTHER]:
            inbox = self.open("INBOX", self.store.account(address))
            self.sync(inbox, claimRecent=False)
            [info] = inbox.messages()
            self.assertEqual(info.size, len(MESSAGE_CRLF))
            self.assertEqual(self.read(info.uid, inbox), MESSAGE_CRLF)
            self.assertEqual(info.flags, set())

    def test_deliverFromFile(self):
        """A file source is read from its start, whatever its position."""
        source = io.BytesIO(MESSAGE)
        source.read()
        self.successResultOf(self.store.deliver([ADDRESS, OTHER], source))
        for address in [ADDRESS, OTHER]:
            inbox = self.open("INBOX", self.store.account(address))
            self.sync(inbox, claimRecent=False)
            [info] = inbox.messages()
            self.assertEqual(self.read(info.uid, inbox), MESSAGE_CRLF)

    def test_deliverAllOrNothing(self):
        """A delivery that fails for one address leaves no copy for the others."""
        self.failureResultOf(self.store.deliver([ADDRESS, "no-address"], MESSAGE))
        self.sync(claimRecent=False)
        self.assertEqual(self.inbox.messages(), [])

    def test_deliverUnreadableSource(self):
        """A source that cannot be read fails the delivery and leaves nothing behind."""
        class Unreadable(io.RawIOBase):
            def readable(self):
                return True

            def readinto(self, buffer):
                raise OSError("read error")
        self.failureResultOf(self.store.deliver([ADDRESS, OTHER], Unreadable()), OSError)
        for address in [ADDRESS, OTHER]:
            inbox = self.open("INBOX", self.store.account(address))
            self.sync(inbox, claimRecent=False)
            self.assertEqual(inbox.messages(), [])

    def test_deliverTogether(self):
        """A delivery with a write to stand with it (SMTP's queue) fires after that write,
        which runs before any session is told."""
        listener = self.listen()
        written = defer.Deferred()
        calls = []

        def together():
            calls.append(list(listener.changes))
            return written
        d = self.store.deliver([ADDRESS], MESSAGE, together)
        self.assertNoResult(d)
        self.assertEqual(calls, [[]])
        written.callback(None)
        self.assertIsNone(self.successResultOf(d))
        self.sync(claimRecent=False)
        self.assertEqual(len(self.uids()), 1)
        self.assertEqual(listener.total().added, self.uids())

    def test_deliverTogetherFails(self):
        """If the write that stands with a delivery fails, the delivery fails with it and
        leaves no copy, and no session hears of one."""
        listener = self.listen()
        d = self.store.deliver([ADDRESS, OTHER], MESSAGE,
                               lambda: defer.fail(OSError("queue write failed")))
        self.assertEqual(str(self.failureResultOf(d, OSError).value), "queue write failed")
        for address in [ADDRESS, OTHER]:
            inbox = self.open("INBOX", self.store.account(address))
            self.sync(inbox, claimRecent=False)
            self.assertEqual(inbox.messages(), [])
        self.assertEqual(listener.total().added, [])


class StoreContractTests(StoreContractMixin, StoreChoice, TestCase):
    """The contract, on the Maildir store in a temporary directory."""


everyStore(globals())


class MemoryStoreTests(TestCase):
    """What only the memory store does: its clock and its place in the registry."""

    def test_clock(self):
        """INTERNALDATE and UIDVALIDITY come from the clock given (the reactor)."""
        clock = Clock()
        clock.advance(1700000000.5)
        store = MemoryStore(clock)
        inbox = self.successResultOf(store.account(ADDRESS).openMailbox("INBOX"))
        self.assertEqual(inbox.uidValidity, 1700000000)
        uid = self.successResultOf(inbox.append(MESSAGE))
        self.assertEqual(inbox.messageInfo(uid).internalDate, 1700000000.5)

    def test_restartedStoreNewUIDValidity(self):
        """A store started later (a restarted server) gives larger UIDVALIDITYs."""
        clock = Clock()
        clock.advance(1000)
        first = self.successResultOf(MemoryStore(clock).account(ADDRESS).openMailbox("INBOX"))
        clock.advance(1)
        second = self.successResultOf(MemoryStore(clock).account(ADDRESS).openMailbox("INBOX"))
        self.assertGreater(second.uidValidity, first.uidValidity)

    def test_backend(self):
        """C{[storage] backend = "memory"} names the memory store, opened on the reactor's clock."""
        self.assertIn("memory", backends.backendNames())
        self.assertIs(backends.backendNamed("memory"), MemoryBackend)
        clock = Clock()
        clock.advance(42)
        store = MemoryBackend.open(None, clock, None)
        self.assertIsInstance(store, MemoryStore)
        self.assertEqual(store.now(), 42)
