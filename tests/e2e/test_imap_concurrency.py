"""
End-to-end: the IMAP server keeps serving every session while one of them
runs a long SEARCH, and APPEND answers only once the message is on disk.
"""

import re
import time

from twisted.internet import defer

from mailstack.imap import search
from tests.e2e.test_imap import MESSAGE, IMAPTestCase


class NonBlockingTests(IMAPTestCase):
    """
    Real sockets, imaplib clients in threads, the real reactor.
    """

    @defer.inlineCallbacks
    def test_noopAnsweredDuringBigSearch(self):
        """B's NOOP is answered while A's slow body SEARCH over 150 messages runs."""
        inbox = self.inbox()
        for i in range(150):
            inbox.append(MESSAGE.replace(b"the body", b"body %d" % (i,)))
        slow = search._bodyMatches

        def slowMatcher(*args):
            time.sleep(0.01)  # a big message: 1.5 s for the whole search
            return slow(*args)
        self.patch(search, "_bodyMatches", slowMatcher)
        a = yield self.inThread(self.loggedIn)
        b = yield self.inThread(self.loggedIn)
        yield self.inThread(a.select, "INBOX")
        yield self.inThread(b.select, "INBOX")
        times = {}

        def searchA():
            typ, data = a.search(None, "BODY", '"body 149"')
            times["search"] = time.monotonic()
            return typ, data

        def noopB():
            time.sleep(0.2)
            start = time.monotonic()
            typ, _ = b.noop()
            times["noop"] = time.monotonic()
            times["noopTook"] = times["noop"] - start
            return typ
        results = yield defer.gatherResults([self.inThread(searchA), self.inThread(noopB)])
        (typ, data), noop = results
        self.assertEqual((typ, data), ("OK", [b"150"]))
        self.assertEqual(noop, "OK")
        self.assertLess(times["noop"], times["search"])
        self.assertLess(times["noopTook"], 0.5)
        yield self.inThread(a.logout)
        yield self.inThread(b.logout)

    @defer.inlineCallbacks
    def test_appendThenFileAndUID(self):
        """When APPEND's OK arrives the file is in the Maildir with the UID it names."""
        c = yield self.inThread(self.loggedIn)
        try:
            typ, data = yield self.inThread(c.append, "INBOX", "(\\Seen)", None, MESSAGE)
        finally:
            yield self.inThread(c.logout)
        self.assertEqual(typ, "OK")
        match = re.match(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
        self.assertEqual(int(match.group(1)), self.inbox().uidValidity)
        uid = int(match.group(2))
        [path] = self.files()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), MESSAGE)
        self.assertEqual([info.uid for info in self.inbox().messages()], [uid])
