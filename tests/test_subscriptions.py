"""
Tests for L{mailstack.storage.subscriptions}: the C{subscriptions} file read in both
forms, written in the Maildir++ one, directly and through an account.
"""

import os

from mailstack.storage import dotlock
from mailstack.storage.interfaces import InvalidMailboxName, MailboxInUse
from mailstack.storage.subscriptions import readSubscriptions, writeSubscriptions
from tests.test_dotlock import FileTestCase
from tests.test_maildir import MaildirTestCase


class SubscriptionFileTests(FileTestCase):
    """
    L{readSubscriptions} and L{writeSubscriptions}.
    """

    fileName = "subscriptions"

    def test_missing(self):
        """No file, no subscriptions."""
        self.assertEqual(readSubscriptions(self.path), [])

    def test_plainForm(self):
        """'.' or '/' separate levels; names are decoded; inbox becomes INBOX."""
        self.write(b"inbox\nLists.Python\nA/B\n&ZeVnLIqe-\n\n  \nbad&\n")
        self.assertEqual(readSubscriptions(self.path),
                         ["INBOX", "Lists/Python", "A/B", "\u65e5\u672c\u8a9e", "bad&"])

    def test_version2(self):
        """Dovecot's V\\t2 form: tab-separated levels, \\001 escapes undone."""
        self.write(b"V\t2\n\ninbox\tSub\nA.B\x01tC\nx\x011y\n")
        self.assertEqual(readSubscriptions(self.path), ["INBOX/Sub", "A.B\tC", "x\x01y"])

    def test_write(self):
        """Names are written sorted, once each, Maildir++ style, under a dotlock."""
        writeSubscriptions(self.path, ["Lists/Python", "INBOX", "\u65e5\u672c\u8a9e", "INBOX"])
        self.assertEqual(self.read(), b"INBOX\nLists.Python\n&ZeVnLIqe-\n")
        self.assertFalse(os.path.exists(self.path + ".lock"))

    def test_writeInvalid(self):
        """A name that cannot be stored raises and leaves the file as it was."""
        self.write(b"Old\n")
        self.assertRaises(InvalidMailboxName, writeSubscriptions, self.path, ["a.b"])
        self.assertEqual(self.read(), b"Old\n")


class SubscriptionTests(MaildirTestCase):
    """
    The C{subscriptions} file: written one name per line, Dovecot's v2 form read too.
    """

    def test_subscribeWritesPlainFile(self):
        """Subscriptions are stored Maildir++ style, one per line, modified UTF-7."""
        self.successResultOf(self.account.subscribe("Lists/Python"))
        self.successResultOf(self.account.subscribe("inbox"))
        self.successResultOf(self.account.subscribe("\u65e5\u672c\u8a9e"))
        self.successResultOf(self.account.subscribe("Lists/Python"))
        self.assertEqual(self.read("subscriptions").decode("ascii").splitlines(),
                         ["INBOX", "Lists.Python", "&ZeVnLIqe-"])
        self.assertEqual(self.account.subscriptions(),
                         ["INBOX", "Lists/Python", "\u65e5\u672c\u8a9e"])
        self.assertFalse(os.path.exists(self.path("subscriptions.lock")))

    def test_subscribeWhileLockedFailsAtOnce(self):
        """SUBSCRIBE while another program holds subscriptions.lock fails at once with
        MailboxInUse (IMAP NO [INUSE]) rather than wait on the reactor thread; the file
        is unchanged and the same call works once the lock is gone."""
        self.successResultOf(self.account.subscribe("A"))
        with open(self.path("subscriptions.lock"), "x"):
            pass
        sleeps = []
        self.patch(dotlock.time, "sleep", sleeps.append)
        self.failureResultOf(self.account.subscribe("B"), MailboxInUse)
        self.assertEqual((self.account.subscriptions(), sleeps), (["A"], []))
        os.unlink(self.path("subscriptions.lock"))
        self.successResultOf(self.account.subscribe("B"))
        self.assertEqual(self.account.subscriptions(), ["A", "B"])

    def test_unsubscribe(self):
        """Unsubscribing removes the name; unknown or invalid names are ignored."""
        self.successResultOf(self.account.subscribe("A"))
        self.successResultOf(self.account.subscribe("B"))
        self.successResultOf(self.account.unsubscribe("A"))
        self.successResultOf(self.account.unsubscribe("Never"))
        self.successResultOf(self.account.unsubscribe("a.b"))
        self.assertEqual(self.account.subscriptions(), ["B"])

    def test_readPlainFormat(self):
        """An old-style (Dovecot v1, Courier) file is read, '.' as separator."""
        self.write(b"INBOX\nSent\nLists.Python\n&ZeVnLIqe-\n", "subscriptions")
        self.assertEqual(self.account.subscriptions(),
                         ["INBOX", "Lists/Python", "Sent", "\u65e5\u672c\u8a9e"])

    def test_readVersion2(self):
        """Dovecot's "V\\t2" file, with tab-separated levels, is read."""
        self.write(b"V\t2\n\nINBOX\nLists\tPython\nTrash\n&ZeVnLIqe-\tSub\n", "subscriptions")
        self.assertEqual(self.account.subscriptions(),
                         ["INBOX", "Lists/Python", "Trash", "\u65e5\u672c\u8a9e/Sub"])
        self.successResultOf(self.account.subscribe("New"))
        self.assertEqual(self.read("subscriptions"),
                         b"INBOX\nLists.Python\nNew\nTrash\n&ZeVnLIqe-.Sub\n")

    def test_missingFile(self):
        """Without a file there are no subscriptions."""
        self.assertEqual(self.account.subscriptions(), [])
