"""
The differential harness (tests/differential/, issue 15): the same IMAP
sessions against mailstack and a private Dovecot 2.3 over the same hard
messages, every answer compared after the normalisations
tests/differential/normalise.py lists; a difference must be fixed or be one
of tests/differential/deliberate.py's (docs/imap.md, "Differences from
Dovecot").

`make test` runs the representative corpus and 20 random MIME trees here, a
few scripts per test, and test_fullCorpus: every script over the
representative corpus and 4 generated messages of each kind; `make interop`
gives it MAILSTACK_DIFFERENTIAL_GENERATED of each (seed
MAILSTACK_DIFFERENTIAL_SEED) and then also requires every deliberate
difference to show.
"""

import os

from twisted.internet import defer
from twisted.trial import unittest

from tests.differential import corpus
from tests.differential.deliberate import unexplained
from tests.differential.runner import Differential, dovecotMissing
from tests.differential.sessions import SCRIPTS, Script


def names(messages):
    return {i + 1: m.name for i, m in enumerate(messages)}


class DifferentialTests(unittest.TestCase):
    """
    Each test starts both servers over a fresh copy of the corpus and runs
    some of L{SCRIPTS} (in table order).
    """

    skip = dovecotMissing()
    timeout = 120

    @defer.inlineCallbacks
    def compare(self, wanted, messages=None, scripts=SCRIPTS):
        if messages is None:
            messages = corpus.representative() + corpus.structured(1, 20)
        harness = Differential(self)
        yield harness.start(messages)
        chosen = [s for s in scripts if s.name in wanted]
        self.assertEqual(len(chosen), len(wanted), "unknown script in %r" % (wanted,))
        differences = yield harness.run(chosen)
        left, unused = unexplained(differences, names(messages))
        if left:
            self.fail("%d unexplained difference(s) from Dovecot:\n%s"
                      % (len(left), "\n".join(d.describe() for d in left)))
        return differences, unused

    def test_recentAndFlags(self):
        """Flags, \\Recent and updates across two sessions and a third one later are Dovecot's."""
        return self.compare(["recent-and-flags"])

    def test_envelopeAndBodystructure(self):
        """ENVELOPE, BODYSTRUCTURE and BODY of every hard message are Dovecot's."""
        return self.compare(["envelope", "bodystructure"])

    def test_sections(self):
        """BODY[section], partials, HEADER.FIELDS(.NOT) and the RFC822 items are Dovecot's."""
        return self.compare(["sections", "partials", "header-fields", "rfc822-items"])

    def test_binary(self):
        """BINARY, BINARY.PEEK and BINARY.SIZE (decoded parts, literal8, UNKNOWN-CTE) and APPEND's literal8 are Dovecot's."""
        return self.compare(["binary"])

    def test_search(self):
        """SEARCH with every RFC 3501 key finds what Dovecot finds."""
        return self.compare(["search"])

    def test_sortAndThread(self):
        """SORT by every key, THREAD by every algorithm, ESORT and PARTIAL over the hard messages are Dovecot's."""
        return self.compare(["sort-and-thread"])

    def test_previews(self):
        """PREVIEW and Dovecot 2.3's SNIPPET (FUZZY) and PREVIEW (FUZZY) of every hard message are Dovecot's."""
        return self.compare(["previews"])

    def test_liveSearch(self):
        """Live SEARCH results (RFC 5267) through another session's flag changes over the hard messages are Dovecot's."""
        return self.compare(["live-search"])

    def test_sentDates(self):
        """SEARCH SENT* and SORT DATE read odd Date: fields (and refuse them) as Dovecot does."""
        return self.compare(["sent-dates"], corpus.oddDates())

    def test_sessionUpdates(self):
        """STOREs that change nothing or follow another session's change, and updates during FETCH, are Dovecot's."""
        return self.compare(["session-updates"])

    def test_uids(self):
        """UID FETCH ranges, STATUS, UIDVALIDITY and UIDNEXT follow Dovecot's rules; a FETCH without PEEK sets \\Seen alike."""
        return self.compare(["uids", "set-seen"])

    def test_expungeAndUIDs(self):
        """EXPUNGE told to another session, UID EXPUNGE, APPENDUID/COPYUID, MOVE and UIDNEXT are Dovecot's."""
        return self.compare(["expunge-and-uids"])

    @defer.inlineCallbacks
    def test_harnessSeesDifferences(self):
        """The harness reports an answer that differs (a deliberate one), so a pass means something."""
        harness = Differential(self)
        messages = corpus.representative()[:2]
        yield harness.start(messages)
        differences = yield harness.run([Script("probe", [
            (0, b"EXAMINE INBOX"), (0, b"SEARCH KEYWORD \\Seen"), (0, b"FETCH 1 (UID)")])])
        self.assertEqual([(d.step, d.command) for d in differences],
                         [(1, b"SEARCH KEYWORD \\Seen")])
        self.assertEqual(differences[0].ours, [b"BAD\r\n"])
        left, _ = unexplained(differences, names(messages))
        self.assertEqual(left, [])

    def test_fullCorpus(self):
        """Every script over the representative and a generated corpus: a few generated
        messages in make test; make interop's hundreds also check that every deliberate
        difference still shows."""
        interop = "MAILSTACK_DIFFERENTIAL_GENERATED" in os.environ
        count = int(os.environ.get("MAILSTACK_DIFFERENTIAL_GENERATED", "4"))
        seed = int(os.environ.get("MAILSTACK_DIFFERENTIAL_SEED", "1"))
        messages = (corpus.representative() + corpus.generated(seed, count)
                    + corpus.structured(seed, count))
        d = self.compare([s.name for s in SCRIPTS], messages)

        def stale(result):
            _, unused = result
            if interop:  # a short corpus need not show every deliberate difference
                self.assertEqual(unused, [], "deliberate differences no longer seen (seed %d)"
                                 % (seed,))
        return d.addCallback(stale)

    test_fullCorpus.timeout = 600
