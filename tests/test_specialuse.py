"""
Tests for L{mailstack.storage.specialuse} and the account's special-use methods.
"""

import os

from twisted.trial import unittest

from mailstack.storage import specialuse
from mailstack.storage.interfaces import NoSuchMailbox
from mailstack.storage.account import MaildirStore


class FileFormatTests(unittest.TestCase):
    """
    The C{mailstack-specialuse} file.
    """

    def test_roundTrip(self):
        """Attributes, a tab, the name; comments and bad lines are skipped."""
        uses = {"Sent": ("\\Sent",), "Lists/Old Stuff": ("\\Archive", "\\Junk")}
        text = specialuse.formatSpecialUse(uses)
        self.assertIn("\\Archive \\Junk\tLists/Old Stuff\n", text)
        self.assertEqual(specialuse.parseSpecialUse(text + "garbage\n\t\n"), uses)

    def test_missing(self):
        """A missing file reads as None (the account was never set up)."""
        self.assertIsNone(specialuse.readSpecialUse(os.path.join(self.mktemp(), "x")))


class AccountSpecialUseTests(unittest.TestCase):
    """
    MaildirAccount.specialUse, setSpecialUse, createDefaultMailboxes.
    """

    def setUp(self):
        self.account = MaildirStore(self.mktemp()).account("a@lab.test")

    def test_defaultsOnce(self):
        """The first call creates and subscribes; the second does nothing."""
        defaults = [("Sent", "\\Sent"), ("Trash", "\\Trash")]
        self.assertEqual(self.successResultOf(self.account.createDefaultMailboxes(defaults)),
                         ["Sent", "Trash"])
        self.assertEqual(self.account.subscriptions(), ["Sent", "Trash"])
        self.assertEqual(self.account.specialUse(), {"Sent": ("\\Sent",), "Trash": ("\\Trash",)})
        self.successResultOf(self.account.deleteMailbox("Trash"))
        self.assertEqual(self.successResultOf(self.account.createDefaultMailboxes(defaults)), [])
        self.assertFalse(self.account.hasMailbox("Trash"))
        self.assertEqual(self.account.specialUse(), {"Sent": ("\\Sent",)})

    def test_setAndRenameChildren(self):
        """Renaming a parent moves its children's uses along."""
        self.successResultOf(self.account.createMailbox("A/B"))
        self.successResultOf(self.account.setSpecialUse("A/B", ["\\Archive"]))
        self.successResultOf(self.account.renameMailbox("A", "C"))
        self.assertEqual(self.account.specialUse(), {"C/B": ("\\Archive",)})
        self.successResultOf(self.account.setSpecialUse("C/B", []))
        self.assertEqual(self.account.specialUse(), {})

    def test_setMissing(self):
        """A use for a mailbox that does not exist is refused."""
        self.failureResultOf(self.account.setSpecialUse("Nope", ["\\Sent"]), NoSuchMailbox)
