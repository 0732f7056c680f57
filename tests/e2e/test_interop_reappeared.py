"""
An EXPUNGEd message's file put back under its name (a restore from a backup,
an admin's mv back) beside a private Dovecot on the same Maildir: Dovecot's
index gives such a file a new UID ("Expunged message reappeared, giving a new
UID"); mailstack gives it one too (its modseq expunge history), and whichever
program numbers it first, both show the same new UID, never the old one.
"""

import glob
import os
import shutil
import time

from twisted.internet import defer, threads

from tests.e2e.test_interop_dovecot import DATE, DovecotTestCase, message
from tests.interop import check


class ReappearedTests(DovecotTestCase):
    """Both programs give a reappeared file one new UID, whoever sees it first."""

    def fileOf(self, n):
        """The path of message C{n}'s file (its Subject names it)."""
        subject = b"Subject: interop %d\r\n" % (n,)
        for path in glob.glob(os.path.join(self.accountDir(), "cur", "*")):
            with open(path, "rb") as f:
                if subject in f.read():
                    return path
        raise AssertionError("no file for message %d" % (n,))

    def uids(self, client):
        check(client.noop())
        typ, data = client.uid("SEARCH", "ALL")
        check((typ, data))
        return [int(uid) for uid in data[0].split()]

    def eventually(self, client, expected):
        """The UIDs C{client} shows become C{expected} within a few NOOPs (Dovecot
        trusts a directory's time only once it is a second old, and gives a
        racy file a new UID at the sync after)."""
        for _ in range(30):
            shown = self.uids(client)
            if shown == expected:
                return
            time.sleep(0.2)
        self.assertEqual(shown, expected)

    @defer.inlineCallbacks
    def test_sameNewUIDs(self):
        """A message expunged through mailstack and put back is numbered anew by
        Dovecot (it sees it first), one expunged through Dovecot and put back is
        numbered anew by mailstack (it sees it first): both show UIDs 1, 4, 5
        after and the same state; Dovecot finds nothing wrong."""
        self.dovecot.handOver(self.domainDir)
        yield self.dovecot.start()

        def steps():
            ours = self.ours()
            theirs = self.dovecot.imap("demo@lab.test", "demo")
            try:
                for n in (1, 2, 3):
                    check(ours.append("INBOX", r"(\Seen)", DATE, message(n)))
                check(ours.select("INBOX"))
                self.dovecot.handOver(self.domainDir)
                check(theirs.select("INBOX"))
                self.assertEqual(self.uids(theirs), [1, 2, 3])
                # Expunged by mailstack, put back with no mailstack session
                # open: Dovecot numbers it anew, mailstack then shows that UID.
                original = self.fileOf(2)
                backup = shutil.copy2(original, self.mktemp())
                check(ours.uid("STORE", "2", "+FLAGS.SILENT", r"(\Deleted)"))
                check(ours.expunge())
                ours.logout()
                self.eventually(theirs, [1, 3])
                shutil.move(backup, original)
                self.dovecot.handOver(self.domainDir)
                self.eventually(theirs, [1, 3, 4])
                ours = self.ours()
                check(ours.select("INBOX"))
                self.assertEqual(self.uids(ours), [1, 3, 4])
                # Expunged by Dovecot, put back while Dovecot's session is idle:
                # mailstack (which saw the expunge) numbers it anew first.
                original = self.fileOf(3)
                backup = shutil.copy2(original, self.mktemp())
                check(theirs.uid("STORE", "3", "+FLAGS.SILENT", r"(\Deleted)"))
                check(theirs.expunge())
                self.eventually(ours, [1, 4])
                shutil.move(backup, original)
                self.eventually(ours, [1, 4, 5])
                self.dovecot.handOver(self.domainDir)
                self.eventually(theirs, [1, 4, 5])
            finally:
                ours.logout()
                theirs.logout()
            return self.bothStates()

        ours, theirs = yield threads.deferToThread(steps)
        self.assertEqual([m["uid"] for m in ours["mailboxes"]["INBOX"]["messages"]],
                         [1, 4, 5])
        self.assertSameState(ours, theirs, "mailstack", "Dovecot", self.accountDir())
        # Dovecot warns when its index sees the file back under its old line
        # (it may have dropped the line first, then the file is just new).
        self.assertEqual([line for line in self.dovecot.complaints() if
                          "Expunged message reappeared, giving a new UID" not in line],
                         [], self.dovecot.log())
