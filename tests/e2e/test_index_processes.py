"""
The Maildir store's index (L{mailstack.storage.index}) across real
processes: another process changes a mailbox and rewrites its
C{mailstack.index}; this process, opening the mailbox again or syncing the
object it had, shows exactly what the files say.
"""

import json
import os
import subprocess
import sys
import time

from twisted.trial import unittest

from mailstack.storage import files, maildir
from mailstack.storage.index import INDEX_FILE
from mailstack.storage.maildir import MaildirMailbox
from mailstack.storage.uidlist import UIDLIST

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Run by the other process: flag UID 3, expunge UID 5, append a message, let
# the changes settle (times set a minute back), sync (which writes the
# index) and print what it sees.
OTHER = r"""
import json, os, sys, time
from mailstack.storage.maildir import MaildirMailbox
path = sys.argv[1]
box = MaildirMailbox("INBOX", path)
box.syncNow(claimRecent=False)
box.setFlagsNow(3, {"\\Flagged"})
box.expungeNow([5])
box.append(b"From: b@lab.test\nSubject: from the other process\n\nhi\n", ("\\Seen",))
then = time.time() - 60
for name in ("new", "cur", "dovecot-uidlist"):
    os.utime(os.path.join(path, name), (then, then))
box.syncNow(claimRecent=False)
print(json.dumps([[i.uid, sorted(i.flags), i.size, i.internalDate, i.key]
                  for i in box.messages()]))
"""


def facts(mailbox):
    return [[i.uid, sorted(i.flags), i.size, i.internalDate, i.key]
            for i in mailbox.messages()]


class OtherProcessTests(unittest.TestCase):

    def setUp(self):
        self.path = self.mktemp()
        files.makeMaildir(self.path, folder=False)
        for n in range(20):
            name = "%d.M%dP1Q%d.test:2,S" % (1700000000 + n, n, n)
            with open(os.path.join(self.path, "cur", name), "wb") as f:
                f.write(b"From: a@lab.test\nSubject: %d\n\nbody\n" % (n,))
        MaildirMailbox("INBOX", self.path).syncNow(claimRecent=False)
        then = time.time() - 120
        for name in ("new", "cur", UIDLIST):
            os.utime(os.path.join(self.path, name), (then, then))

    def other(self):
        """Run the other process's changes; what it saw."""
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        result = subprocess.run([sys.executable, "-c", OTHER, self.path], env=env,
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def test_changesByAnotherProcess(self):
        """Flags, an expunge and an append made by another process (which rewrote the
        index) are seen by this process's open mailbox at its next sync, and by a new
        opening, which reads the other process's index alone."""
        mine = MaildirMailbox("INBOX", self.path)
        self.assertTrue(os.path.exists(os.path.join(self.path, INDEX_FILE)))
        before = facts(mine)
        seen = self.other()
        self.assertNotEqual(seen, before)
        self.assertEqual([f for f in seen if f[0] == 3][0][1], ["\\Flagged"])
        self.assertNotIn(5, [f[0] for f in seen])
        self.assertEqual(seen[-1][0], 21)
        mine.syncNow(claimRecent=False)
        self.assertEqual(facts(mine), seen)
        listings = []
        real = maildir.listMessages
        self.patch(maildir, "listMessages", lambda *a: listings.append(a) or real(*a))
        self.assertEqual(facts(MaildirMailbox("INBOX", self.path)), seen)
        self.assertEqual(listings, [])

    def test_indexDeletedMeanwhile(self):
        """The other process's changes with the index deleted afterwards: read from
        the Maildir, the same."""
        seen = self.other()
        os.unlink(os.path.join(self.path, INDEX_FILE))
        self.assertEqual(facts(MaildirMailbox("INBOX", self.path)), seen)
