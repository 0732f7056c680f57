"""
Tests for L{mailstack.storage.names}: IMAP mailbox names and Maildir++ directories.
(The account operations built on them are in L{tests.test_maildir.MailboxNameTests}.)
"""

from twisted.trial.unittest import TestCase

from mailstack.storage.interfaces import InvalidMailboxName
from mailstack.storage.names import checkName, decodeDirName, isValidName


class CheckNameTests(TestCase):
    """
    L{checkName}: canonical name and directory, or the reason for refusal.
    """

    def test_inbox(self):
        """INBOX in any case is the account root; as a first level it is canonicalised."""
        self.assertEqual(checkName("inBox"), ("INBOX", ""))
        self.assertEqual(checkName("inbox/Sub"), ("INBOX/Sub", ".INBOX.Sub"))
        self.assertEqual(checkName("Other/inbox"), ("Other/inbox", ".Other.inbox"))

    def test_directories(self):
        """Levels are joined by '.', each in modified UTF-7."""
        self.assertEqual(checkName("Lists/Python"), ("Lists/Python", ".Lists.Python"))
        self.assertEqual(checkName("Tom & Jerry/\u00e9t\u00e9"),
                         ("Tom & Jerry/\u00e9t\u00e9", ".Tom &- Jerry.&AOk-t&AOk-"))

    def test_refused(self):
        """Unsafe or unrepresentable names are refused with the reason."""
        reasons = {"": "empty", None: "empty", "..": "'..'", "a/../b": "'..'",
                   "/abs": "start with '/'", "a\x01b": "control", "a\x7fb": "control",
                   "a\x00b": "NUL", "a.b": "'.' is not allowed", "a//b": "empty level",
                   "a/": "empty level", "x" * 300: "too long", "\ud800": "Unicode"}
        for name, reason in reasons.items():
            error = self.assertRaises(InvalidMailboxName, checkName, name)
            self.assertIn(reason, str(error))
            self.assertFalse(isValidName(name))
        self.assertTrue(isValidName("Sent"))


class DecodeDirNameTests(TestCase):
    """
    L{decodeDirName}: only well-formed folder directories are mailboxes.
    """

    def test_decode(self):
        """A folder directory decodes to the name that encodes to it."""
        self.assertEqual(decodeDirName(".Lists.Python"), "Lists/Python")
        self.assertEqual(decodeDirName(".&ZeVnLIqe-"), "\u65e5\u672c\u8a9e")

    def test_notFolders(self):
        """Directories that are not the encoding of a valid name decode to None."""
        for dirName in ["..DOVECOT-TRASHED", ".bad&name", ".a..b", ".inbox", ".&AGE-"]:
            self.assertIsNone(decodeDirName(dirName), dirName)
