"""
Tests for L{mailstack.imap.thread}: THREAD=ORDEREDSUBJECT and
THREAD=REFERENCES (RFC 5256) and Dovecot's THREAD=REFS on made-up messages, and the THREAD command
over a StringTransport. The corner cases (self references, loops, duplicate
Message-IDs) follow Dovecot 2.3, checked in tests/e2e/test_imap_sort.py.
"""

import types

from twisted.trial import unittest

from mailstack.imap import thread
from mailstack.imap.sort import Candidate, Fields, baseSubject
from tests.test_imap_server import IMAPTestMixin


def candidate(seq, subject=b"", date=None, messageID=None, references=(), inReplyTo=None,
              arrived=0):
    base, isReply = baseSubject(subject)
    fields = Fields(subject=base, isReply=isReply, sent=date, cc=b"", from_=b"", to=b"",
                    displayFrom=b"", displayTo=b"", messageID=messageID,
                    references=list(references), inReplyTo=inReplyTo)
    return Candidate(seq * 10, seq, types.SimpleNamespace(internalDate=arrived), fields)


def threads(algorithm, candidates, byUID=False):
    return thread.formatThreads(algorithm(candidates), byUID)


class OrderedSubjectTests(unittest.TestCase):
    """THREAD=ORDEREDSUBJECT."""

    def test_groupsBySubject(self):
        """Same base subject, one thread: the earliest message the parent of the others."""
        messages = [candidate(1, b"b", 50), candidate(2, b"Re: a", 20),
                    candidate(3, b"a", 30), candidate(4, b"Re: b", 10),
                    candidate(5, b"c", 40), candidate(6, b"re: A", 25)]
        self.assertEqual(threads(thread.orderedSubject, messages), b"(4 1)(2 (6)(3))(5)")

    def test_uids(self):
        """UID THREAD numbers are UIDs."""
        self.assertEqual(threads(thread.orderedSubject, [candidate(1, b"x", 1)], True), b"(10)")

    def test_missingDate(self):
        """A message without a sent date sorts by its internal date."""
        messages = [candidate(1, b"a", 100), candidate(2, b"a", None, arrived=50)]
        self.assertEqual(threads(thread.orderedSubject, messages), b"(2 1)")


class ReferencesTests(unittest.TestCase):
    """THREAD=REFERENCES."""

    def test_chainAndBranches(self):
        """References build the tree; one child continues the line, several are nested."""
        messages = [
            candidate(1, b"a", 1, b"<1>"),
            candidate(2, b"Re: a", 2, b"<2>", [b"<1>"]),
            candidate(3, b"Re: a", 3, b"<3>", [b"<1>", b"<2>"]),
            candidate(4, b"Re: a", 4, b"<4>", [b"<1>"]),
            candidate(5, b"other", 0, b"<5>"),
        ]
        self.assertEqual(threads(thread.references, messages), b"(5)(1 (2 3)(4))")

    def test_inReplyToWhenNoReferences(self):
        """In-Reply-To's first ID is the parent when References names none."""
        messages = [candidate(1, b"x", 1, b"<1>"),
                    candidate(2, b"y", 2, b"<2>", inReplyTo=b"<1>")]
        self.assertEqual(threads(thread.references, messages), b"(1 2)")

    def test_missingParentDummy(self):
        """Two replies to a message not in the mailbox share a dummy parent."""
        messages = [candidate(1, b"Re: x", 2, b"<1>", [b"<gone>"]),
                    candidate(2, b"Re: y", 1, b"<2>", [b"<gone>"])]
        self.assertEqual(threads(thread.references, messages), b"((2)(1))")

    def test_dummyWithOneChildPromoted(self):
        """A dummy root with one child leaves the child as the root."""
        messages = [candidate(1, b"Re: x", 2, b"<1>", [b"<gone>", b"<gone2>"])]
        self.assertEqual(threads(thread.references, messages), b"(1)")

    def test_subjectGathering(self):
        """Roots with the same base subject merge: a reply goes under the original."""
        messages = [candidate(1, b"Re: topic", 1, b"<1>"),
                    candidate(2, b"topic", 5, b"<2>"),
                    candidate(3, b"topic", 3, b"<3>"),
                    candidate(4, b"", 4, b"<4>"),
                    candidate(5, b"", 0, b"<5>")]
        # The reply 1 goes under the original 3 in the subject table; 2, another
        # original, then shares a dummy with 3. Empty subjects are not gathered.
        self.assertEqual(threads(thread.references, messages), b"(5)((3 1)(2))(4)")

    def test_replyUnderOriginal(self):
        """A Re: root is made a child of the one original with its subject."""
        messages = [candidate(1, b"Re: topic", 1, b"<1>"), candidate(2, b"topic", 5, b"<2>")]
        self.assertEqual(threads(thread.references, messages), b"(2 1)")

    def test_duplicateMessageID(self):
        """A Message-ID already used keeps to its first message; the later one stands alone."""
        messages = [candidate(1, b"a", 1, b"<1>"), candidate(2, b"b", 2, b"<1>"),
                    candidate(3, b"c", 3, b"<3>", [b"<1>"])]
        self.assertEqual(threads(thread.references, messages), b"(1 3)(2)")

    def test_loopsRefused(self):
        """References that would make a loop are not linked; nothing is lost."""
        messages = [candidate(1, b"a", 1, b"<1>", [b"<2>"]),
                    candidate(2, b"b", 2, b"<2>", [b"<1>"]),
                    candidate(3, b"c", 3, b"<3>", [b"<3>"])]
        self.assertEqual(threads(thread.references, messages), b"(2 1)(3)")

    def test_selfReferenceLast(self):
        """A message naming itself last becomes a root, as in Dovecot."""
        messages = [candidate(1, b"a", 1, b"<1>"),
                    candidate(2, b"b", 2, b"<2>", [b"<1>", b"<2>"])]
        self.assertEqual(threads(thread.references, messages), b"(1)(2)")

    def test_deepThread(self):
        """A reply chain thousands deep threads and formats (no recursion limit)."""
        depth = 5000
        messages = [candidate(1, b"x", 0, b"<0>")] + [
            candidate(n + 1, b"Re: x", n, b"<%d>" % (n,), [b"<%d>" % (n - 1,)])
            for n in range(1, depth)]
        expected = b"(" + b" ".join(b"%d" % (n,) for n in range(1, depth + 1)) + b")"
        self.assertEqual(threads(thread.references, messages), expected)
        # Replies each to a message not in the mailbox, those missing messages a
        # chain thousands deep: pruned, every reply hangs under the one dummy.
        messages = [candidate(n + 1, b"x%d" % (n,), n, b"<r%d>" % (n,), [b"<%d>" % (n,)])
                    for n in range(depth)]
        messages.append(candidate(depth + 1, b"y", 0, b"<%d>" % (depth,),
                                  [b"<%d>" % (n,) for n in range(depth)]))
        self.assertEqual(threads(thread.references, messages),
                         b"((1)(%d)" % (depth + 1,)
                         + b"".join(b"(%d)" % (n,) for n in range(2, depth + 1)) + b")")

    def test_slices(self):
        """The algorithms are generators of small steps, for cooperative slices."""
        messages = [candidate(n, b"s%d" % (n % 7,), n, b"<%d>" % (n,), [b"<%d>" % (n // 2,)])
                    for n in range(1, 2000)]
        for steps in thread.ALGORITHMS.values():
            roots = []
            count = sum(1 for _ in steps(messages, roots))
            self.assertGreater(count, 2000 // thread.SLICE)
            self.assertTrue(roots)

    def test_noMessages(self):
        """No message, no thread."""
        self.assertEqual(threads(thread.references, []), b"")


class RefsTests(unittest.TestCase):
    """THREAD=REFS, as Dovecot 2.3 threads (compared in tests/e2e/test_imap_sort.py)."""

    def test_latestMessageOrders(self):
        """Threads go by their latest message's date: a thread with a new reply comes last."""
        messages = [candidate(1, b"old", 1, b"<1>"),
                    candidate(2, b"new", 5, b"<2>"),
                    candidate(3, b"Re: old", 9, b"<3>", [b"<1>"])]
        self.assertEqual(threads(thread.refs, messages), b"(2)(1 3)")
        self.assertEqual(threads(thread.references, messages), b"(1 3)(2)")

    def test_noSubjectGathering(self):
        """Messages with the same subject but no references stay apart."""
        messages = [candidate(1, b"topic", 1, b"<1>"), candidate(2, b"Re: topic", 2, b"<2>")]
        self.assertEqual(threads(thread.refs, messages), b"(1)(2)")

    def test_dummyRoot(self):
        """Replies to a missing message share a dummy; one alone is written as itself."""
        messages = [candidate(1, b"x", 4, b"<1>", [b"<gone>"]),
                    candidate(2, b"y", 2, b"<2>", [b"<gone>"]),
                    candidate(3, b"z", 7, b"<3>", [b"<gone2>", b"<gone3>"])]
        self.assertEqual(threads(thread.refs, messages), b"((2)(1))(3)")

    def test_dummyRootTiesFirst(self):
        """At equal dates a dummy root (UID 0 to Dovecot) sorts before a message root."""
        messages = [candidate(1, b"x", 4, b"<1>"),
                    candidate(2, b"y", 4, b"<2>", [b"<gone>"])]
        self.assertEqual(threads(thread.refs, messages), b"(2)(1)")

    def test_dummiesBelowRootGo(self):
        """A missing message between two present ones leaves the lower under the upper."""
        messages = [candidate(1, b"a", 1, b"<1>"),
                    candidate(2, b"b", 3, b"<2>", [b"<1>", b"<gone>"]),
                    candidate(3, b"c", 2, b"<3>", [b"<1>"])]
        self.assertEqual(threads(thread.refs, messages), b"(1 (3)(2))")

    def test_pre1970(self):
        """Threads of messages before 1970 sort as 1970, then by root UID, as in Dovecot."""
        messages = [candidate(1, b"a", -50, b"<1>"), candidate(2, b"b", -90, b"<2>")]
        self.assertEqual(threads(thread.refs, messages), b"(1)(2)")


class ThreadCommandTests(IMAPTestMixin, unittest.TestCase):
    """THREAD and UID THREAD over a session."""

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.deliver(b"Subject: hello\r\nMessage-ID: <1@x>\r\n"
                     b"Date: Mon, 6 Jan 2020 10:00:00 +0000\r\n\r\nx\r\n")
        self.deliver(b"Subject: Re: hello\r\nMessage-ID: <2@x>\r\nReferences: <1@x>\r\n"
                     b"Date: Mon, 6 Jan 2020 11:00:00 +0000\r\n\r\nx\r\n")
        self.deliver(b"Subject: Re: hello\r\nMessage-ID: <3@x>\r\nIn-Reply-To: <1@x>\r\n"
                     b"Date: Mon, 6 Jan 2020 09:00:00 +0000\r\n\r\nx\r\n")

    def test_references(self):
        """THREAD REFERENCES answers the tree, UID THREAD with UIDs."""
        self.select()
        self.assertEqual(self.send(b"t THREAD REFERENCES UTF-8 ALL\r\n"),
                         b"* THREAD (1 (3)(2))\r\nt OK THREAD completed\r\n")
        self.send(b"s STORE 1 +FLAGS (\\Deleted)\r\n")
        self.send(b"e EXPUNGE\r\n")
        self.assertEqual(self.send(b"t UID THREAD REFERENCES UTF-8 ALL\r\n"),
                         b"* THREAD ((3)(2))\r\nt OK THREAD completed\r\n")

    def test_orderedSubject(self):
        """THREAD ORDEREDSUBJECT, with search criteria; nothing matching is an empty THREAD."""
        self.select()
        self.assertEqual(self.send(b"t THREAD ORDEREDSUBJECT UTF-8 NOT 2\r\n"),
                         b"* THREAD (3 1)\r\nt OK THREAD completed\r\n")
        self.assertEqual(self.send(b"t THREAD ORDEREDSUBJECT UTF-8 SUBJECT nothing\r\n"),
                         b"* THREAD \r\nt OK THREAD completed\r\n")

    def test_refs(self):
        """THREAD REFS is advertised and answers; switched off it is not and is BAD."""
        self.select()
        self.assertIn(b" THREAD=REFS", self.send(b"c CAPABILITY\r\n"))
        self.assertEqual(self.send(b"t THREAD REFS UTF-8 ALL\r\n"),
                         b"* THREAD (1 (3)(2))\r\nt OK THREAD completed\r\n")
        self.assertEqual(self.send(b"t UID THREAD refs US-ASCII NOT 2\r\n"),
                         b"* THREAD (1 3)\r\nt OK THREAD completed\r\n")
        session = self.connect(disabled=frozenset({"THREAD=REFS"}))
        self.select(session)
        self.assertNotIn(b"THREAD=REFS", self.send(b"c CAPABILITY\r\n", session))
        self.assertTrue(self.send(b"t THREAD REFS UTF-8 ALL\r\n", session).startswith(b"t BAD "))

    def test_badCharset(self):
        """An unknown charset is NO [BADCHARSET]."""
        self.select()
        self.assertEqual(self.send(b"t THREAD REFERENCES X-NONE ALL\r\n"),
                         b"t NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset\r\n")
