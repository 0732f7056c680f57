"""
Tests for L{mailstack.imap.listing} through the server: LIST-EXTENDED (RFC
5258), LIST-STATUS (RFC 5819), SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154),
and the default folders of a new account.
"""

import contextlib
import signal

from twisted.trial import unittest

from mailstack.imap import listing
from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin


@contextlib.contextmanager
def deadline(seconds=10):
    """
    Fail the code inside if it runs longer than C{seconds}. Trial's timeout
    cannot stop a test that blocks the reactor thread (a runaway regular
    expression); SIGALRM can (the re module checks for signals while it
    backtracks), so a regression fails here instead of hanging the suite.
    """
    def expired(signum, frame):
        raise AssertionError("still running after %s seconds" % (seconds,))
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class ListExtendedTests(IMAPTestMixin, unittest.TestCase):
    """
    Selection options, return options, several patterns.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        for name in ("Fruit/Apple", "Fruit/Banana", "Tofu"):
            self.createMailbox(name)
        for name in ("Fruit/Banana", "Tofu", "Gone"):
            self.successResultOf(self.account.subscribe(name))
        self.login()

    def test_subscribedSelection(self):
        """(SUBSCRIBED): subscribed names only, \\Subscribed, \\NonExistent when missing."""
        self.assertEqual(self.send(b'a LIST (SUBSCRIBED) "" "*"\r\n'),
                         b'* LIST (\\HasNoChildren \\Subscribed) "/" "Fruit/Banana"\r\n'
                         b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"\r\n'
                         b'* LIST (\\HasNoChildren \\Subscribed) "/" "Tofu"\r\n'
                         b"a OK LIST completed\r\n")

    def test_recursiveMatch(self):
        """(SUBSCRIBED RECURSIVEMATCH) with %: a parent of a subscribed child gets CHILDINFO."""
        self.assertEqual(self.send(b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"\r\n'),
                         b'* LIST (\\HasChildren) "/" "Fruit" ("CHILDINFO" ("SUBSCRIBED"))\r\n'
                         b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"\r\n'
                         b'* LIST (\\HasNoChildren \\Subscribed) "/" "Tofu"\r\n'
                         b"a OK LIST completed\r\n")

    def test_recursiveMatchChildAlsoReturned(self):
        """
        Several patterns: a parent keeps CHILDINFO when its subscribed child is
        returned too (RFC 5258 section 3, RECURSIVEMATCH, notes 1 and 2: the
        parent must match a pattern; whether the child does does not matter).
        Dovecot 2.3 leaves such a parent out; the RFC text does not.
        """
        self.assertEqual(self.send(b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("Fruit" "Fruit/%")\r\n'),
                         b'* LIST (\\HasChildren) "/" "Fruit" ("CHILDINFO" ("SUBSCRIBED"))\r\n'
                         b'* LIST (\\HasNoChildren \\Subscribed) "/" "Fruit/Banana"\r\n'
                         b"a OK LIST completed\r\n")

    def test_recursiveMatchAlone(self):
        """RECURSIVEMATCH without another selection option is BAD."""
        self.assertEqual(self.send(b'a LIST (RECURSIVEMATCH) "" "*"\r\n'),
                         b"a BAD LIST: RECURSIVEMATCH needs another selection option\r\n")
        self.assertIn(b"a BAD", self.send(b'a LIST (FROB) "" "*"\r\n'))

    def test_remote(self):
        """(REMOTE) lists the same (there are no remote mailboxes)."""
        self.assertEqual(self.send(b'a LIST (REMOTE) "" "*"\r\n').count(b"* LIST"), 5)

    def test_patternsAndReturnSubscribed(self):
        """Several patterns; RETURN (SUBSCRIBED CHILDREN) marks subscribed ones."""
        self.assertEqual(self.send(b'a LIST "" ("INBOX" "T*") RETURN (SUBSCRIBED CHILDREN)\r\n'),
                         b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
                         b'* LIST (\\HasNoChildren \\Subscribed) "/" "Tofu"\r\n'
                         b"a OK LIST completed\r\n")

    def test_listStatus(self):
        """RETURN (STATUS (...)): a STATUS line after each selectable mailbox."""
        self.deliver(mailbox="Tofu")
        out = self.send(b'a LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN))\r\n')
        self.assertEqual(out,
                         b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
                         b'* STATUS "INBOX" (MESSAGES 0 UNSEEN 0)\r\n'
                         b'* LIST (\\HasChildren) "/" "Fruit"\r\n'
                         b'* STATUS "Fruit" (MESSAGES 0 UNSEEN 0)\r\n'
                         b'* LIST (\\HasNoChildren) "/" "Tofu"\r\n'
                         b'* STATUS "Tofu" (MESSAGES 1 UNSEEN 1)\r\n'
                         b"a OK LIST completed\r\n")

    def test_listStatusSkipsNonExistent(self):
        """No STATUS for a subscribed mailbox that does not exist."""
        out = self.send(b'a LIST (SUBSCRIBED) "" "G*" RETURN (STATUS (MESSAGES))\r\n')
        self.assertEqual(out, b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"\r\n'
                              b"a OK LIST completed\r\n")

    def test_delimiter(self):
        """The extended form with an empty pattern still gives the delimiter."""
        self.assertEqual(self.send(b'a LIST () "" ""\r\n'),
                         b'* LIST (\\Noselect) "/" ""\r\na OK LIST completed\r\n')

    def test_disabled(self):
        """Without LIST-EXTENDED / LIST-STATUS the extended forms are BAD."""
        session = self.connect(disabled=frozenset({"LIST-EXTENDED", "LIST-STATUS"}))
        out = self.send(b"a CAPABILITY\r\n", session)
        self.assertNotIn(b"LIST-EXTENDED", out)
        self.assertNotIn(b"LIST-STATUS", out)
        self.login(session)
        self.assertIn(b"b BAD", self.send(b'b LIST (SUBSCRIBED) "" "*"\r\n', session))
        self.assertIn(b"c BAD", self.send(b'c LIST "" ("a" "b")\r\n', session))
        self.assertIn(b"d OK", self.send(b'd LIST "" "*"\r\n', session))


class SpecialUseTests(IMAPTestMixin, unittest.TestCase):
    """
    Special-use attributes: stored per account, CREATE (USE), LIST options.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.login()

    def test_createUse(self):
        """CREATE with USE stores the attribute; LIST shows it; RENAME keeps it."""
        self.assertRegex(self.send(b"a CREATE Bin (USE (\\Trash))\r\n"),
                         rb"^a OK \[MAILBOXID \(F\d+\)\] CREATE completed\r\n$")
        self.assertEqual(self.account.specialUse(), {"Bin": ("\\Trash",)})
        self.assertEqual(self.send(b'b LIST "" Bin\r\n'),
                         b'* LIST (\\HasNoChildren \\Trash) "/" "Bin"\r\nb OK LIST completed\r\n')
        self.send(b"c RENAME Bin Rubbish\r\n")
        self.assertEqual(self.account.specialUse(), {"Rubbish": ("\\Trash",)})
        self.send(b"d DELETE Rubbish\r\n")
        self.assertEqual(self.account.specialUse(), {})

    def test_createUnsupportedUse(self):
        """\\All and unknown uses: NO [USEATTR], nothing created."""
        self.assertEqual(self.send(b"a CREATE All (USE (\\All))\r\n"),
                         b"a NO [USEATTR] Unsupported special use \\All\r\n")
        self.assertFalse(self.account.hasMailbox("All"))
        self.assertIn(b"b BAD", self.send(b"b CREATE x (FROB (1))\r\n"))

    def test_specialUseSelection(self):
        """LIST (SPECIAL-USE) lists only mailboxes with a special use."""
        self.send(b"a CREATE Bin (USE (\\Trash))\r\na CREATE Other\r\n")
        self.assertEqual(self.send(b'b LIST (SPECIAL-USE) "" "*"\r\n'),
                         b'* LIST (\\HasNoChildren \\Trash) "/" "Bin"\r\nb OK LIST completed\r\n')

    def test_specialUseOff(self):
        """SPECIAL-USE off: no attributes, no SPECIAL-USE options; CREATE-SPECIAL-USE off: no USE."""
        self.createMailbox("Bin")
        self.successResultOf(self.account.setSpecialUse("Bin", ["\\Trash"]))
        session = self.connect(disabled=frozenset({"SPECIAL-USE", "CREATE-SPECIAL-USE"}))
        self.login(session)
        self.assertEqual(self.send(b'a LIST "" Bin\r\n', session),
                         b'* LIST (\\HasNoChildren) "/" "Bin"\r\na OK LIST completed\r\n')
        self.assertIn(b"b BAD", self.send(b'b LIST (SPECIAL-USE) "" "*"\r\n', session))
        self.assertIn(b"c BAD", self.send(b"c CREATE New (USE (\\Sent))\r\n", session))


class DefaultFolderTests(IMAPTestMixin, unittest.TestCase):
    """
    A new account's first IMAP login creates and subscribes the special-use folders.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.checker = self.portal.checkers[next(iter(self.portal.checkers))]
        self.checker.addUser(b"bob@lab.test", b"pw")
        self.bob = self.store.account("bob@lab.test")

    def test_firstLogin(self):
        """LIST after the first login shows the five folders with their uses, subscribed."""
        self.assertEqual(self.send(b"a LOGIN bob@lab.test pw\r\n")[:4], b"a OK")
        self.assertEqual(self.send(b'b LIST "" "*" RETURN (SPECIAL-USE SUBSCRIBED)\r\n'),
                         b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
                         b'* LIST (\\HasNoChildren \\Subscribed \\Archive) "/" "Archive"\r\n'
                         b'* LIST (\\HasNoChildren \\Subscribed \\Drafts) "/" "Drafts"\r\n'
                         b'* LIST (\\HasNoChildren \\Subscribed \\Junk) "/" "Junk"\r\n'
                         b'* LIST (\\HasNoChildren \\Subscribed \\Sent) "/" "Sent"\r\n'
                         b'* LIST (\\HasNoChildren \\Subscribed \\Trash) "/" "Trash"\r\n'
                         b"b OK LIST completed\r\n")

    def test_onlyOnce(self):
        """A folder the user deleted is not created again at the next login."""
        self.send(b"a LOGIN bob@lab.test pw\r\nb DELETE Junk\r\n")
        session = self.connect()
        self.send(b"a LOGIN bob@lab.test pw\r\n", session)
        self.assertNotIn("Junk", self.bob.listMailboxes())
        self.assertEqual(self.bob.specialUse()["Trash"], ("\\Trash",))

    def test_existingAccountAdopted(self):
        """An account with folders (another server's): its Sent gets \\Sent, nothing is created."""
        self.successResultOf(self.bob.createMailbox("Sent"))
        sent = self.successResultOf(self.bob.openMailbox("Sent"))
        self.successResultOf(sent.append(b"Subject: kept\r\n\r\nx\r\n"))
        self.send(b"a LOGIN bob@lab.test pw\r\n")
        self.assertEqual(len(self.successResultOf(self.bob.openMailbox("Sent")).messages()), 1)
        self.assertEqual(self.bob.specialUse(), {"Sent": ("\\Sent",)})
        self.assertEqual(self.bob.listMailboxes(), ["INBOX", "Sent"])
        self.assertEqual(self.bob.subscriptions(), [])

    def test_subscriptionsMeanNotNew(self):
        """An account with a subscriptions file is not new either."""
        self.successResultOf(self.bob.subscribe("INBOX"))
        self.send(b"a LOGIN bob@lab.test pw\r\n")
        self.assertEqual(self.bob.listMailboxes(), ["INBOX"])

    def test_defaultsList(self):
        """The defaults are RFC 6154's five real-mailbox uses."""
        self.assertEqual(sorted(use for _, use in listing.DEFAULT_MAILBOXES),
                         sorted(listing.USE_ATTRIBUTES))


class PatternTests(unittest.TestCase):
    """
    L{listing.Pattern}: LIST wildcards, matched without backtracking.
    """

    def match(self, pattern, name):
        return listing.Pattern(pattern).fullmatch(name)

    def test_percentStopsAtDelimiter(self):
        """% matches anything but '/' (also nothing)."""
        self.assertTrue(self.match("%", "Fruit"))
        self.assertTrue(self.match("%", ""))
        self.assertTrue(self.match("Fruit/%", "Fruit/Apple"))
        self.assertFalse(self.match("%", "Fruit/Apple"))
        self.assertFalse(self.match("Fruit%", "Fruit/Apple"))

    def test_starCrossesDelimiter(self):
        """* matches anything, '/' included."""
        self.assertTrue(self.match("*", "Fruit/Apple/Green"))
        self.assertTrue(self.match("F*e", "Fruit/Apple"))
        self.assertTrue(self.match("Fruit*", "Fruit"))
        self.assertFalse(self.match("F*x", "Fruit/Apple"))

    def test_mixed(self):
        """a%b*c: % within a level, * across levels."""
        self.assertTrue(self.match("a%b*c", "axxb/y/c"))
        self.assertTrue(self.match("a%b*c", "abc"))
        self.assertFalse(self.match("a%b*c", "a/b/c"))
        self.assertFalse(self.match("a%b*c", "axxb/y/cd"))
        self.assertTrue(self.match("%/%", "Fruit/Apple"))
        self.assertFalse(self.match("%/%", "Fruit/Apple/Green"))
        self.assertTrue(self.match("*/%", "Fruit/Apple/Green"))

    def test_literalCharacters(self):
        """Other characters match themselves only (regex characters too), case-sensitively."""
        self.assertTrue(self.match("a.b", "a.b"))
        self.assertFalse(self.match("a.b", "axb"))
        self.assertFalse(self.match("[a]", "a"))
        self.assertFalse(self.match("fruit", "Fruit"))
        self.assertTrue(self.match("caf\u00e9%", "caf\u00e9s"))

    def test_runsCollapsed(self):
        """A run of wildcards is one: * if it holds a *, else %."""
        self.assertEqual(listing.collapseWildcards("a%%%b**c%*%d*%"), "a%b*c*d*")
        self.assertTrue(self.match("%%%%", "Fruit"))
        self.assertFalse(self.match("%%%%", "Fruit/Apple"))
        self.assertTrue(self.match("%*%", "Fruit/Apple"))

    def test_manyWildcards(self):
        """
        Long runs and alternations of wildcards answer at once (the old
        regular expression backtracked for hours on these: a regression
        hangs here until trial's timeout).
        """
        with deadline():
            self.assertFalse(self.match("%" * 200 + "x", "a" * 40))
            self.assertTrue(self.match("%" * 200 + "x", "a" * 40 + "x"))
            self.assertFalse(self.match("*%" * 100 + "x", "a/" * 40))
            self.assertFalse(self.match("a%" * 60 + "b", "a" * 100))
            self.assertTrue(self.match("a*" * 60 + "b", "a" * 100 + "b"))
            self.assertFalse(self.match("a*" * 60 + "b", "a" * 100))
    test_manyWildcards.timeout = 10


class WildcardListTests(IMAPTestMixin, unittest.TestCase):
    """
    LIST and LSUB patterns through the server, including hostile ones.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        for name in ("Fax/Max", "Lynx", "Tax", "Tofu", "abc", "axxb/y/c", "a/b/c"):
            self.createMailbox(name)
        for name in ("Fax/Max", "Tax"):
            self.successResultOf(self.account.subscribe(name))
        self.login()

    def names(self, out, command=b"LIST"):
        lines = out.split(b"\r\n")
        self.assertTrue(lines[-2].endswith(b" OK %s completed" % (command,)), out)
        return [line.rsplit(b'"/" ', 1)[1] for line in lines[:-2]]

    def test_manyPercents(self):
        """
        LIST "" "%%...%x" (200 %) answers promptly with the names of one
        level ending in x (the old regular expression stalled the server).
        """
        with deadline():
            out = self.send(b'a LIST "" "' + b"%" * 200 + b'x"\r\n')
        self.assertEqual(self.names(out), [b'"Fax"', b'"Lynx"', b'"Tax"'])
        with deadline():
            out = self.send(b'b LSUB "" "' + b"%" * 200 + b'x"\r\n')
        self.assertEqual(self.names(out, b"LSUB"), [b'"Tax"', b'"Fax"'])
    test_manyPercents.timeout = 10

    def test_mixedRuns(self):
        """Runs mixing * and % behave as *."""
        with deadline():
            out = self.send(b'a LIST "" "' + b"*%" * 100 + b'x"\r\n')
        self.assertEqual(self.names(out), [b'"Fax"', b'"Fax/Max"', b'"Lynx"', b'"Tax"'])
    test_mixedRuns.timeout = 10

    def test_semantics(self):
        """% stays within a level, * crosses levels, a%b*c mixes them."""
        self.assertEqual(self.names(self.send(b'a LIST "" %\r\n')),
                         [b'"INBOX"', b'"Fax"', b'"Lynx"', b'"Tax"', b'"Tofu"', b'"a"',
                          b'"abc"', b'"axxb"'])
        self.assertEqual(self.names(self.send(b'a LIST "" F*\r\n')),
                         [b'"Fax"', b'"Fax/Max"'])
        self.assertEqual(self.names(self.send(b'a LIST "" a%b*c\r\n')),
                         [b'"abc"', b'"axxb/y/c"'])

    def test_patternTooLong(self):
        """A pattern (sent as a literal) over the line limit is BAD."""
        pattern = b"%" * 1100
        out = self.send(b'a LIST "" {%d}\r\n' % (len(pattern),))
        self.assertEqual(out, b"+ Ready for literal data\r\n")
        with deadline():
            out = self.send(pattern + b"\r\n")
        self.assertEqual(out, b"a BAD Mailbox pattern too long (limit 1024 octets)\r\n")
        self.assertEqual(self.send(b"b NOOP\r\n"), b"b OK NOOP completed\r\n")


everyStore(globals())
