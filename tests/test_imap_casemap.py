"""
Tests for I18NLEVEL=1 (RFC 5255): L{mailstack.imap.casemap}, the
i;unicode-casemap comparator as Dovecot 2.3 applies it, and SEARCH's
substring matching under it in sessions on both stores. The expected
answers are the private Dovecot 2.3.19's to the same searches over the same
subjects, byte for byte (tests/e2e/test_imap_dovecot23 runs them on both).
"""

import base64

from twisted.trial import unittest

from mailstack.imap import casemap
from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin

SUBJECTS = ["Caf\xe9", "\xc9COLE", "stra\xdfe", "STRASSE", "\ufb01ne", "\u01c4emal", "\u0130stanbul",
            "\u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3", "cafe", "e\u0301clair", "\u01c5ungla",
            "\u03a9mega", "\u03c9mega", "\u216b roman", "\u2460circled", "\uff46\uff55\uff4c\uff4c",
            "\u01c8j", "Stra\xdfe gro\xdf", "\ufb00 ligature", "\xc5ngstr\xf6m", "\u212a kelvin",
            "\xb5 micro", "\u0133 dutch", "\u0149", "\u0390"]

# (term, the messages Dovecot 2.3.19 found with SEARCH CHARSET UTF-8 SUBJECT term)
DOVECOT = [
    ('\xe9', (1, 2, 10)), ('\xc9', (1, 2, 10)),
    ('e', (1, 2, 3, 4, 5, 6, 9, 10, 12, 13, 15, 18, 19, 21)), ('cafe', (1, 9)),
    ('CAF\xc9', (1,)), ('ss', (4,)), ('\xdf', (3, 18)), ('SS', (4,)), ('fi', ()),
    ('\ufb01', (5,)), ('\u01c5', (6, 11)), ('\u01c6', (6, 11)), ('\u01c4', (6, 11)),
    ('d\u017e', ()), ('\u03c3', (8,)), ('\u03c2', (8,)), ('\u03a3', (8,)), ('i\u0307', (7,)),
    ('\u0130', (7,)), ('i', (7, 10, 14, 15, 19, 21, 22, 23)), ('\u03a9', (12, 13)),
    ('\u03c9', (12, 13)), ('xii', (14,)), ('\u216b', (14,)), ('\u217b', (14,)), ('1', (15,)),
    ('\u2460', (15,)), ('full', (16,)), ('\uff46\uff55\uff4c\uff4c', (16,)), ('lj', ()),
    ('\u01c8', (17,)), ('gro\xdf', (18,)), ('GROSS', ()), ('ff', ()), ('\xe5', (20,)),
    ('\xc5', (20,)), ('a', (1, 3, 4, 6, 7, 9, 10, 11, 12, 13, 14, 18, 19, 20)), ('k', (21,)),
    ('K', (21,)), ('\u03bc', (22,)), ('\xb5', (22,)), ('ij', (23,)), ('\u0133', (23,)),
    ('\u02bcn', ()), ('\u03b9', (8,)), ('\u0301', (1, 2, 8, 10, 25)), ('\u0390', (25,)),
    ('\u1f08', ()),
]


def message(subject):
    """A message whose Subject is C{subject} in an encoded word, its body the same text."""
    return ("From: a@x\r\nSubject: =?utf-8?b?%s?=\r\n\r\nbody %s\r\n" % (
        base64.b64encode(subject.encode()).decode(), subject)).encode()


class FoldTests(unittest.TestCase):
    """The comparator's mapping of text."""

    def test_fold(self):
        """Title case, then one level of decomposition; ASCII upper-cased."""
        self.assertEqual(casemap.fold("abc"), "ABC")
        self.assertEqual(casemap.fold("Caf\xe9"), "CAFE\u0301")
        self.assertEqual(casemap.fold("\xdf"), "\xdf")  # no single-character title case
        self.assertEqual(casemap.fold("\ufb01"), "fi")  # decomposed, not title-cased again
        self.assertEqual(casemap.fold("\uff46"), "F")  # title-cased, then decomposed
        self.assertEqual(casemap.fold("\u01c6"), "\u01c5")  # a title-case letter proper
        self.assertEqual(casemap.fold("\u0390"), "\u03ca\u0301")  # one level only
        self.assertEqual(casemap.fold("\uac00"), "\u1100\u1161")  # Hangul into its jamo

    def test_table(self):
        """A long text folds the same through the table as character by character."""
        text = "".join(SUBJECTS) * 50
        self.assertEqual(casemap.fold(text), "".join(map(casemap.titleDecomposed, text)))


class SearchingMixin:
    """Running one SEARCH with a literal term, pumping the clock for slices."""

    def search(self, key, term):
        data = term.encode("utf-8")
        self.transport.clear()
        self.server.dataReceived(b"s SEARCH CHARSET UTF-8 " + key + b" {%d+}\r\n" % (len(data),)
                                 + data + b"\r\n")
        for _ in range(10000):  # a loaded machine may need more than one slice
            if b"\r\ns " in self.transport.value():
                break
            self.clock.advance(0)
        first, _, rest = self.transport.value().partition(b"\r\n")
        self.assertEqual(rest, b"s OK SEARCH completed\r\n")
        return tuple(int(n) for n in first.split()[2:])


class SearchTests(SearchingMixin, IMAPTestMixin, unittest.TestCase):
    """SEARCH's substring matching under i;unicode-casemap, as Dovecot answers."""

    def setUp(self):
        IMAPTestMixin.setUp(self)
        for subject in SUBJECTS:
            self.deliver(message(subject))
        self.select()

    def test_subject(self):
        """SUBJECT finds what Dovecot 2.3.19 finds, for every term."""
        found = [(term, self.search(b"SUBJECT", term)) for term, _ in DOVECOT]
        self.assertEqual(found, DOVECOT)

    def test_body(self):
        """BODY folds the same way (Dovecot found the same messages by BODY)."""
        found = [(term, self.search(b"BODY", term)) for term, _ in DOVECOT]
        self.assertEqual(found, DOVECOT)

    def test_capability(self):
        """I18NLEVEL=1 is advertised; switched off it is not (SEARCH compares the same)."""
        self.assertIn(b" I18NLEVEL=1", self.send(b"c CAPABILITY\r\n"))
        session = self.connect(disabled=frozenset({"I18NLEVEL=1"}))
        self.login(session)
        self.assertNotIn(b"I18NLEVEL", self.send(b"c CAPABILITY\r\n", session))


# Raw 8-bit header octets that are not UTF-8, and Dovecot 2.3.19's answers.
RAW = [b"From: Ren\xe9 <rene@example.fr>\r\nSubject: Caf\xe9 in raw Latin-1\r\n\r\nBody caf\xe9 x.\r\n",
       b"From: a@x\r\nSubject: caf\xc3\xa9 utf8\r\n\r\nBody.\r\n",
       b"From: a@x\r\nSubject: x\xe9y\r\n\r\nBody x\xe9y.\r\n"]
RAW_DOVECOT = [
    (b"SUBJECT", "CAFE", (2,)), (b"TEXT", "CAFE", (2,)), (b"SUBJECT", "caf", (1, 2)),
    (b"FROM", "RENE", (1,)), (b"SUBJECT", "caf\xe9", (2,)), (b"FROM", "ren\xe9", ()),
    (b"TEXT", "ren\xe9", ()), (b"SUBJECT", "x\ufffdy", (3,)), (b"BODY", "x\ufffdy", (3,)),
    (b"SUBJECT", "x\xe9y", ()), (b"TEXT", "x\xe9y", ()),
]


class RawHeaderTests(SearchingMixin, IMAPTestMixin, unittest.TestCase):
    """Header octets that are not UTF-8 are U+FFFD to SEARCH, as to Dovecot."""

    def setUp(self):
        IMAPTestMixin.setUp(self)
        for data in RAW:
            self.deliver(data)
        self.select()

    def test_subject(self):
        """Raw Latin-1 is not read as Latin-1: cafe misses Caf\\xe9, x\\ufffdy finds it."""
        found = [(key, term, self.search(key, term)) for key, term, _ in RAW_DOVECOT]
        self.assertEqual(found, RAW_DOVECOT)


everyStore(globals())
