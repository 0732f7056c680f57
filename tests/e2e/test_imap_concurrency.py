"""
End-to-end: the IMAP server keeps serving every session while one of them
runs a long SEARCH, and APPEND answers only once the message is on disk.
"""

import imaplib
import random
import re
import threading
import time

from twisted.internet import defer

from mailstack.imap import search
from tests.e2e.test_imap import MESSAGE, IMAPTestCase
from tests.test_imap_listing import deadline


class NonBlockingTests(IMAPTestCase):
    """
    Real sockets, imaplib clients in threads, the real reactor.
    """

    @defer.inlineCallbacks
    def test_noopAnsweredDuringBigSearch(self):
        """B's NOOP is answered while A's slow body SEARCH over 150 messages runs."""
        inbox = self.inbox()
        # Quoted-printable bodies: the raw-octets prefilter (imap/searchfilter.py)
        # cannot rule them out, so every message takes the slow matcher below.
        encoded = MESSAGE.replace(b"\r\n\r\n", b"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", 1)
        for i in range(150):
            yield inbox.append(encoded.replace(b"the body", b"body %d" % (i,)))
        slow = search._bodySteps

        def slowMatcher(*args):
            time.sleep(0.01)  # a big message: 1.5 s for the whole search
            return slow(*args)
        self.patch(search, "_bodySteps", slowMatcher)
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


class TenClientsTests(IMAPTestCase):
    """
    Ten clients working one mailbox at once, as the Dovecot comparison did:
    messages expunged by one are fetched and flagged by the others meanwhile.
    """

    @defer.inlineCallbacks
    def test_tenClientsNoFailures(self):
        """STORE, FETCH, EXPUNGE and NOOP from ten clients never answer NO or BAD; all agree at the end."""
        inbox = self.inbox()
        for i in range(60):
            yield inbox.append(b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i))
        failures = []
        counts = []
        allDone = threading.Barrier(10, timeout=60)

        def worker(seed):
            rng = random.Random(seed)
            c = self.loggedIn("imapplain")
            try:
                c.select("INBOX")
                for _ in range(25):
                    # This session's view (SEARCH never shifts numbers): every
                    # number in it is valid, expunged elsewhere or not.
                    exists = len(c.search(None, "ALL")[1][0].split())
                    if not exists:
                        break
                    n = rng.randint(1, exists)
                    choice = rng.randrange(4)
                    if choice == 0:
                        typ, data = c.store("%d:%d" % (n, min(n + 3, exists)), "+FLAGS", r"(\Seen)")
                    elif choice == 1:
                        typ, data = c.fetch("%d:%d" % (n, min(n + 5, exists)), "(FLAGS UID)")
                    elif choice == 2:
                        c.store(str(n), "+FLAGS", r"(\Deleted)")
                        typ, data = c.expunge()
                    else:
                        typ, data = c.noop()
                    if typ != "OK":
                        failures.append((seed, choice, typ, data))
                allDone.wait()
                c.noop()
                typ, data = c.search(None, "ALL")
                counts.append(len(data[0].split()))
            except imaplib.IMAP4.error as e:
                failures.append((seed, "error", str(e)))
            finally:
                c.logout()

        def run():
            threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(10)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)

        with deadline(90):
            yield self.inThread(run)
        self.assertEqual(failures, [])
        self.assertEqual(len(counts), 10)
        yield inbox.sync()
        self.assertEqual(set(counts), {len(inbox.messages())})
