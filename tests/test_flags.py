"""
Tests for L{mailstack.storage.flags}: IMAP flags to Maildir info letters and back,
and the C{dovecot-keywords} file.
"""

import os

from twisted.trial.unittest import TestCase

from mailstack.storage.flags import (
    MAX_KEYWORDS, addKeywords, flagsFromLetters, isExpressible, keywordLetters,
    missingKeywords, readKeywords, splitFlags)
from mailstack.storage.interfaces import StoreError
from tests.test_dotlock import FileTestCase

NAMES = ["$Forwarded", None, "Work"] + [None] * (MAX_KEYWORDS - 3)


class LetterTests(TestCase):
    """
    System flags as C{DFRST}, keywords as C{a}-C{z}.
    """

    def test_splitFlags(self):
        """System flags (any case) become letters; keywords are passed on; \\Recent is dropped."""
        letters, keywords = splitFlags(["\\SEEN", "\\Draft", "\\recent", "Work", "$Junk"])
        self.assertEqual(letters, {"S", "D"})
        self.assertEqual(sorted(keywords), ["$Junk", "Work"])
        self.assertEqual(splitFlags(["\\Answered", "\\Flagged", "\\Deleted"])[0],
                         {"R", "F", "T"})

    def test_splitFlagsRefused(self):
        """Unknown system flags and keywords that are not atoms raise StoreError."""
        for flag in ["\\Bogus", "two words", "", "caf\u00e9", "a(b", "a]b", "a\\b", 'a"b']:
            self.assertRaises(StoreError, splitFlags, [flag])

    def test_flagsFromLetters(self):
        """Letters map to flags; keyword letters through the names; others are ignored."""
        self.assertEqual(flagsFromLetters("DFPRSTacb", NAMES),
                         {"\\Draft", "\\Flagged", "\\Answered", "\\Seen", "\\Deleted",
                          "$Forwarded", "Work"})
        self.assertEqual(flagsFromLetters("", NAMES), frozenset())

    def test_isExpressible(self):
        """P and keyword letters without a name cannot be shown as IMAP flags."""
        self.assertEqual([letter for letter in "SPabcz" if not isExpressible(letter, NAMES)],
                         ["P", "b", "z"])

    def test_keywordLetters(self):
        """Keywords map to the letters of their index, matched case-insensitively."""
        self.assertEqual(keywordLetters(NAMES, ["work", "$FORWARDED"]), {"a", "c"})
        self.assertEqual(missingKeywords(NAMES, ["WORK", "New", "new"]), ["New", "new"])


class KeywordFileTests(FileTestCase):
    """
    L{readKeywords} and L{addKeywords} on a dovecot-keywords file.
    """

    fileName = "dovecot-keywords"

    def test_readKeywords(self):
        """Lines '<index> <name>' fill a list of 26; bad lines are skipped."""
        self.write(b"0 Junk\n3 NonJunk\nx Bad\n26 TooFar\n5\n")
        names = readKeywords(self.path)
        self.assertEqual(len(names), MAX_KEYWORDS)
        self.assertEqual([(i, n) for i, n in enumerate(names) if n], [(0, "Junk"), (3, "NonJunk")])
        os.unlink(self.path)
        self.assertEqual(readKeywords(self.path), [None] * MAX_KEYWORDS)

    def test_addKeywords(self):
        """New keywords take the lowest free indexes, once each whatever the case."""
        self.write(b"0 Junk\n3 NonJunk\n")
        names = addKeywords(self.path, ["later", "Junk", "Later", "Alpha"], 1.0, 120.0)
        self.assertEqual(self.read(), b"0 Junk\n1 Alpha\n2 Later\n3 NonJunk\n")
        self.assertEqual(names, readKeywords(self.path))
        self.assertFalse(os.path.exists(self.path + ".lock"))

    def test_staleKeywordsLockIgnored(self):
        """A keywords lock (left by a crash: the caller holds the uidlist lock) is replaced."""
        with open(self.path + ".lock", "wb"):
            pass
        addKeywords(self.path, ["Work"], 0.1, 120.0)
        self.assertEqual(self.read(), b"0 Work\n")

    def test_limit(self):
        """A 27th keyword raises StoreError and leaves the file as it was."""
        addKeywords(self.path, ["k%02d" % (n,) for n in range(MAX_KEYWORDS)], 1.0, 120.0)
        before = self.read()
        error = self.assertRaises(StoreError, addKeywords, self.path, ["extra"], 1.0, 120.0)
        self.assertIn("26", str(error))
        self.assertEqual(self.read(), before)
