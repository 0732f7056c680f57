"""
Tests for L{mailstack.storage.index}: the Maildir store's persistent
per-mailbox index. It may only ever save work: whatever happened to the file
or to the Maildir behind its back, a mailbox shows what the files say.
"""

import os
import re
import time

from twisted.internet import defer
from twisted.trial import unittest
from twisted.trial.unittest import TestCase

from mailstack.storage import files, index, maildir
from mailstack.storage.index import INDEX_FILE, IndexState, MailboxIndex
from mailstack.storage.maildir import MaildirMailbox
from mailstack.storage.uidlist import UIDLIST

MESSAGE = b"From: a@lab.test\nSubject: %d\n\nbody line\n"


def facts(mailbox):
    """What a client sees of each message: UID, flags, size, date and key."""
    return [(i.uid, sorted(i.flags), i.size, i.internalDate, i.key)
            for i in mailbox.messages()]


class IndexTestCase(TestCase):
    """A Maildir with a few messages whose UIDs are assigned, its times settled."""

    count = 5

    def setUp(self):
        self.path = self.mktemp()
        files.makeMaildir(self.path, folder=False)
        for n in range(self.count):
            name = "%d.M%dP1Q%d.test" % (1700000000 + n, n, n)
            with open(os.path.join(self.path, "cur", name + ":2,S"), "wb") as f:
                f.write(MESSAGE % (n,))
            os.utime(os.path.join(self.path, "cur", name + ":2,S"),
                     (1700000000 + n, 1700000000 + n))
        MaildirMailbox("INBOX", self.path).syncNow(claimRecent=False)
        self.settle()
        self.listings = []
        real = maildir.listMessages

        def counting(path, refused=None):
            self.listings.append(path)
            return real(path, refused)
        self.patch(maildir, "listMessages", counting)

    def sub(self, *parts):
        return os.path.join(self.path, *parts)

    def settle(self):
        """Make the last changes old, as if they happened a minute ago (no sleeping)."""
        then = time.time() - 60
        for name in ("new", "cur", UIDLIST):
            os.utime(self.sub(name), (then, then))

    def opened(self, **kwargs):
        """A mailbox object as another process opening the Maildir would have."""
        return MaildirMailbox("INBOX", self.path, **kwargs)

    def indexed(self):
        """Open once (which writes the index from a settled Maildir); the facts then."""
        mailbox = self.opened()
        self.assertTrue(os.path.exists(self.sub(INDEX_FILE)))
        return facts(mailbox)


class OpeningTests(IndexTestCase):

    def test_openedFromIndexAlone(self):
        """An unchanged, settled mailbox opens from its index without listing cur/ and new/."""
        expected = self.indexed()
        self.listings.clear()
        mailbox = self.opened()
        self.assertEqual(self.listings, [])
        self.assertEqual(facts(mailbox), expected)
        self.assertEqual(len(expected), self.count)

    def test_sameAsWithout(self):
        """Opened from the index, a mailbox shows exactly what reading every file shows."""
        fromIndex = facts(self.opened()) and facts(self.opened())
        os.unlink(self.sub(INDEX_FILE))
        self.assertEqual(facts(self.opened()), fromIndex)

    def test_sizesDroppedAfterOpening(self):
        """Once the mailbox has been read, the index keeps no second copy of the sizes
        (a 100,000-message mailbox's would be megabytes for nothing)."""
        expected = self.indexed()
        mailboxIndex = MailboxIndex(self.sub(INDEX_FILE))
        mailboxIndex.load()
        self.assertEqual([mailboxIndex.sizes(f[4])[1] for f in expected],
                         [f[2] for f in expected])
        stamps = [files.stamp(self.sub(name)) for name in ("new", "cur", UIDLIST)]
        mailboxIndex.wanted(stamps, False)  # what the mailbox asks after its first sync
        self.assertEqual([mailboxIndex.sizes(f[4]) for f in expected], [None] * self.count)

    def test_flagSetsShared(self):
        """Messages with the same flag letters share one flags set (a 100,000-message
        mailbox holds a handful, not 100,000), and a keyword renamed in
        dovecot-keywords shows at once."""
        mailbox = self.opened()
        infos = mailbox.messages()
        self.assertTrue(all(i.flags is infos[0].flags for i in infos))
        mailbox.setFlagsNow(infos[0].uid, {"\\Seen", "Work"})
        self.assertEqual(mailbox.messageInfo(infos[0].uid).flags, {"\\Seen", "Work"})
        with open(self.sub("dovecot-keywords"), "w") as f:
            f.write("0 Home\n")
        mailbox.syncNow(claimRecent=False)
        self.assertEqual(mailbox.messageInfo(infos[0].uid).flags, {"\\Seen", "Home"})

    def test_noStatPerMessage(self):
        """Opening with an index takes sizes and dates from it, not a stat() of each file."""
        self.indexed()
        measured = []
        real = maildir._measure
        self.patch(maildir, "_measure", lambda *a: measured.append(a) or real(*a))
        facts(self.opened())
        self.assertEqual(measured, [])

    def test_unsettledNotTrusted(self):
        """An index taken within seconds of the last change is not trusted alone: the
        directories are listed (two changes in one clock tick look like one)."""
        now = time.time()
        os.utime(self.sub("cur"), (now, now))
        self.opened()
        self.listings.clear()
        self.opened()
        self.assertNotEqual(self.listings, [])

    def test_unsettledRewrittenWhenSettled(self):
        """An index written during a burst of changes is written again, trusted, at a
        later sync once the mailbox has been quiet."""
        now = time.time()
        for name in ("new", "cur", UIDLIST):
            os.utime(self.sub(name), (now, now))
        mailbox = self.opened()
        later = time.time_ns() + 60 * 10 ** 9
        self.patch(index, "_clock", lambda: later)  # a minute later, nothing changed
        self.patch(maildir, "RESCAN_GAP", 0)  # (the mailbox's one more rescan after a change)
        mailbox.syncNow(claimRecent=False)
        self.listings.clear()
        self.opened()
        self.assertEqual(self.listings, [])

    def test_slowScanNotTrusted(self):
        """A record is as settled as the listing it came from: a sync that began within
        seconds of the last change and ended after them writes no record trusted alone
        (a change after the listing, in the last one's clock tick, would be hidden)."""
        now = time.time()
        for name in ("new", "cur"):
            os.utime(self.sub(name), (now, now))
        start = time.time_ns()
        real = maildir.listMessages

        def slowListing(path, refused=None):
            # The scan ends a minute after it began.
            self.patch(index, "_clock", lambda: start + 60 * 10 ** 9)
            return real(path, refused)
        self.patch(maildir, "listMessages", slowListing)
        self.patch(index, "_clock", lambda: start)
        self.opened()
        self.patch(maildir, "listMessages", real)
        self.listings.clear()
        self.opened()
        self.assertNotEqual(self.listings, [])


class RescanTests(IndexTestCase):

    def test_uidListRewriteAloneNoRescans(self):
        """A uidlist just rewritten (by rename) beside settled new/ and cur/ is read once;
        later syncs list nothing (its stamp, not its time, tells a change)."""
        mailbox = self.opened()
        uid = mailbox.messages()[0].uid
        with open(self.sub(UIDLIST)) as f:
            text = f.read()
        files.atomicWrite(self.sub(UIDLIST), text.encode("ascii"))
        self.listings.clear()
        mailbox.syncNow(claimRecent=False)
        self.assertEqual(len(self.listings), 1)
        mailbox.syncNow(claimRecent=False)
        mailbox.syncNow(claimRecent=False)
        self.assertEqual(len(self.listings), 1)
        self.assertEqual(mailbox.messages()[0].uid, uid)


class FirstOpeningTests(unittest.TestCase):

    def test_oneStatPerNewFile(self):
        """Giving new files their UIDs (a first opening) stat()s each file once: the
        stat taken to order them also gives their sizes and dates."""
        path = self.mktemp()
        files.makeMaildir(path, folder=False)
        for n in range(5):
            with open(os.path.join(path, "cur", "%d.M%dP1Q%d.test:2,S" % (n, n, n)), "wb") as f:
                f.write(MESSAGE % (n,))
        statted = []
        real = os.stat

        def counting(p, *args, **kwargs):
            if os.sep + "cur" + os.sep in str(p):
                statted.append(p)
            return real(p, *args, **kwargs)
        self.patch(os, "stat", counting)
        mailbox = MaildirMailbox("INBOX", path)
        mailbox.syncNow(claimRecent=False)
        self.assertEqual(len(mailbox.messages()), 5)
        self.assertEqual(len(statted), 5)


class BurstTests(IndexTestCase):

    def test_notWrittenDuringBursts(self):
        """While cur/ keeps changing (a busy mailbox), the index is not rewritten at every
        sync: only once the mailbox has been quiet for a while."""
        mailbox = self.opened()
        before = os.stat(self.sub(INDEX_FILE)).st_ino
        uids = [i.uid for i in mailbox.messages()]
        for uid in uids[:3]:
            mailbox.setFlagsNow(uid, {"\\Flagged"})
            mailbox.syncNow(claimRecent=False)
        self.assertEqual(os.stat(self.sub(INDEX_FILE)).st_ino, before)
        self.settle()
        mailbox.syncNow(claimRecent=False)
        self.assertNotEqual(os.stat(self.sub(INDEX_FILE)).st_ino, before)
        self.listings.clear()
        self.assertEqual(sorted(self.opened().messageInfo(uids[0]).flags), ["\\Flagged"])
        self.assertEqual(self.listings, [])


class RebuildTests(IndexTestCase):

    def test_deletedIndex(self):
        """Deleting the index loses nothing: the mailbox is read from the Maildir and the
        index written again."""
        expected = self.indexed()
        os.unlink(self.sub(INDEX_FILE))
        self.assertEqual(facts(self.opened()), expected)
        self.assertTrue(os.path.exists(self.sub(INDEX_FILE)))
        self.listings.clear()
        self.assertEqual(facts(self.opened()), expected)
        self.assertEqual(self.listings, [])

    def test_truncatedIndex(self):
        """An index cut short (a crash mid-write) is ignored and rebuilt."""
        expected = self.indexed()
        with open(self.sub(INDEX_FILE), "r+b") as f:
            f.truncate(os.path.getsize(self.sub(INDEX_FILE)) // 2)
        self.listings.clear()
        self.assertEqual(facts(self.opened()), expected)
        self.assertNotEqual(self.listings, [])
        IndexState.decode(open(self.sub(INDEX_FILE), "rb").read())  # whole again

    def test_corruptIndex(self):
        """An index with a changed byte (its checksum wrong) is ignored: a wrong size in it
        never reaches a client."""
        expected = self.indexed()
        data = open(self.sub(INDEX_FILE), "rb").read()
        damaged = re.sub(rb'"wireSize":\[(\d+)', rb'"wireSize":[99999', data, count=1)
        self.assertNotEqual(damaged, data)
        with open(self.sub(INDEX_FILE), "wb") as f:
            f.write(damaged)
        self.assertEqual(facts(self.opened()), expected)

    def test_emptyAndForeignFiles(self):
        """An empty file, one that is not an index at all, or one whose columns are of the
        wrong types or lengths (though its checksum holds) opens the mailbox as without."""
        expected = self.indexed()
        good = IndexState.decode(open(self.sub(INDEX_FILE), "rb").read())
        wrongTypes = IndexState(good.stamps, good.taken, good.uidValidity, good.uidNext,
                                dict(good.columns, uid=[str(u) for u in good.columns["uid"]]))
        short = IndexState(good.stamps, good.taken, good.uidValidity, good.uidNext,
                           dict(good.columns, wireSize=good.columns["wireSize"][1:]))
        for junk in (b"", b"dovecot index\n\x00\x01", b"mailstack-index 9 0 0\n",
                     wrongTypes.encode(), short.encode()):
            with open(self.sub(INDEX_FILE), "wb") as f:
                f.write(junk)
            self.assertEqual(facts(self.opened()), expected)

    def test_symbolicLinkNotRead(self):
        """A symbolic link in the index's place is not followed: the mailbox is read
        from the Maildir, and the next index replaces the link, not its target."""
        expected = self.indexed()
        target = self.mktemp()
        with open(self.sub(INDEX_FILE), "rb") as f, open(target, "wb") as out:
            out.write(f.read())
        os.unlink(self.sub(INDEX_FILE))
        os.symlink(os.path.abspath(target), self.sub(INDEX_FILE))
        self.listings.clear()
        self.assertEqual(facts(self.opened()), expected)
        self.assertNotEqual(self.listings, [])
        self.assertFalse(os.path.islink(self.sub(INDEX_FILE)))

    def test_staleIndexAfterOutsideChanges(self):
        """Messages another program delivered, expunged or re-flagged after the index
        was written are seen (the directories' stamps differ from the recorded ones)."""
        self.indexed()
        first, second = sorted(os.listdir(self.sub("cur")))[:2]
        os.unlink(self.sub("cur", first))
        os.rename(self.sub("cur", second), self.sub("cur", second.replace(":2,S", ":2,FS")))
        with open(self.sub("new", "1800000000.M1P2Q3.other"), "wb") as f:
            f.write(MESSAGE % (99,))
        self.settle()
        mailbox = self.opened()
        mailbox.syncNow(claimRecent=False)
        got = facts(mailbox)
        self.assertEqual(len(got), self.count)
        self.assertEqual(got[0][1], ["\\Flagged", "\\Seen"])
        self.assertEqual(got[-1][0], self.count + 1)
        self.assertEqual(got[-1][2], len(MESSAGE % (99,)) + 4)  # CRLF size, 4 lines

    def test_flagsChangedByAnotherProcess(self):
        """Flags set by another process (a rename in cur/) are seen by a later opening,
        and the index is rewritten with them."""
        self.indexed()
        other = self.opened()
        uid = other.messages()[2].uid
        other.setFlagsNow(uid, {"\\Answered"})
        self.settle()
        mailbox = self.opened()
        self.assertEqual(mailbox.messageInfo(uid).flags, frozenset({"\\Answered"}))
        self.listings.clear()
        self.assertEqual(self.opened().messageInfo(uid).flags, frozenset({"\\Answered"}))
        self.assertEqual(self.listings, [])

    def test_uidValidityChanged(self):
        """A uidlist rebuilt by another program (new UIDVALIDITY) is believed over the index."""
        self.indexed()
        os.unlink(self.sub(UIDLIST))
        mailbox = self.opened()
        mailbox.syncNow(claimRecent=False)
        self.assertNotEqual(mailbox.uidValidity, None)
        self.assertEqual(len(mailbox.messages()), self.count)


class TwoProcessTests(IndexTestCase):

    def test_bothWrite(self):
        """Two processes changing one mailbox both rewrite its index; whichever wrote
        last, a third opening shows what the files say."""
        self.indexed()
        one, two = self.opened(), self.opened()
        uids = [i.uid for i in one.messages()]
        one.setFlagsNow(uids[0], {"\\Deleted"})
        one.expungeNow(None)
        two.syncNow(claimRecent=False)
        two.setFlagsNow(uids[1], {"\\Flagged"})
        one.syncNow(claimRecent=False)
        self.settle()
        two.syncNow(claimRecent=False)
        one.syncNow(claimRecent=False)
        expected = facts(one)
        self.assertEqual(facts(two), expected)
        self.assertEqual(facts(self.opened()), expected)
        os.unlink(self.sub(INDEX_FILE))
        self.assertEqual(facts(self.opened()), expected)


class WritingTests(IndexTestCase):

    def test_writtenInWorkerThread(self):
        """The index is written only through runInThread (never on the reactor), and
        writes asked for meanwhile are coalesced into one with the latest state."""
        jobs = []

        def runInThread(f, *args):
            d = defer.Deferred()
            jobs.append((f, args, d))
            return d
        os.unlink(self.sub(INDEX_FILE)) if os.path.exists(self.sub(INDEX_FILE)) else None
        mailbox = self.opened(runInThread=runInThread)
        self.assertFalse(os.path.exists(self.sub(INDEX_FILE)))
        writes = [j for j in jobs if j[0].__name__ == "_writeFile"]
        self.assertEqual(len(writes), 1)
        uids = [i.uid for i in mailbox.messages()]
        mailbox.setFlagsNow(uids[0], {"\\Deleted"})
        mailbox.expungeNow([uids[0]])
        mailbox.syncNow(claimRecent=False)
        self.assertEqual(len([j for j in jobs if j[0].__name__ == "_writeFile"]), 1)
        self.settle()
        mailbox.syncNow(claimRecent=False)
        mailbox.setFlagsNow(uids[1], {"\\Deleted"})
        mailbox.expungeNow([uids[1]])
        self.settle()
        mailbox.syncNow(claimRecent=False)
        self.assertEqual(len([j for j in jobs if j[0].__name__ == "_writeFile"]), 1)
        f, args, d = writes[0]
        f(*args)
        d.callback(None)
        writes = [j for j in jobs if j[0].__name__ == "_writeFile"]
        self.assertEqual(len(writes), 2)
        f, args, d = writes[1]
        self.assertEqual(len(args[0]), self.count - 2)
        f(*args)
        d.callback(None)
        self.assertEqual(len(IndexState.decode(open(self.sub(INDEX_FILE), "rb").read())),
                         self.count - 2)

    def test_noRewriteWhenUnchanged(self):
        """Opening an unchanged mailbox from its index does not write the index again."""
        self.indexed()
        before = os.stat(self.sub(INDEX_FILE)).st_ino
        mailbox = self.opened()
        mailbox.syncNow(claimRecent=False)
        self.assertEqual(os.stat(self.sub(INDEX_FILE)).st_ino, before)

    def test_writeFailureIsLogged(self):
        """A failure to write the index (a cache) fails nothing: the mailbox works on."""
        self.indexed()
        self.patch(index, "atomicWrite", lambda *a, **k: (_ for _ in ()).throw(
            PermissionError(13, "denied")))
        os.unlink(self.sub(INDEX_FILE))
        mailbox = self.opened()
        self.assertEqual(len(mailbox.messages()), self.count)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_diskFullWhileWriting(self):
        """The disk full as the index is written: the mailbox works on, one warning names
        the index, no temporary file is left, and the next opening reads the Maildir."""
        import errno
        from twisted.logger import LogLevel, globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.settle()
        realReplace = os.replace

        def full(source, destination):
            # (the temporary file is written; putting it in place finds no room)
            if destination.endswith(INDEX_FILE):
                raise OSError(errno.ENOSPC, "No space left on device")
            return realReplace(source, destination)
        self.patch(os, "replace", full)
        mailbox = self.opened()
        self.assertEqual(len(mailbox.messages()), self.count)
        self.patch(os, "replace", realReplace)
        warnings = [e for e in events if e.get("log_level") == LogLevel.warn]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertEqual(warnings[0]["path"], self.sub(INDEX_FILE))
        self.assertEqual(sorted(os.listdir(self.path)),
                         sorted(["cur", "new", "tmp", UIDLIST, "mailstack-modseq"]))
        self.listings.clear()
        self.assertEqual(facts(self.opened()), facts(mailbox))
        self.assertNotEqual(self.listings, [])
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_uidListParsedOncePerChange(self):
        """The uidlist is parsed again only when its stamp changes (a rewrite or
        Dovecot's appending), so rescans of a busy mailbox skip the parse."""
        parses = []
        real = index.readSoundUIDList
        self.patch(index, "readSoundUIDList", lambda p: parses.append(p) or real(p))
        mailboxIndex = MailboxIndex(self.sub(INDEX_FILE))
        first = mailboxIndex.readUIDList(self.sub(UIDLIST))
        self.assertIs(mailboxIndex.readUIDList(self.sub(UIDLIST)), first)
        self.assertEqual(len(parses), 1)
        with open(self.sub(UIDLIST), "a") as f:
            f.write("%d :1800000000.M1P2Q3.other\n" % (first.nextUID,))
        second = mailboxIndex.readUIDList(self.sub(UIDLIST))
        self.assertEqual(len(parses), 2)
        self.assertIn("1800000000.M1P2Q3.other", second.records)
