"""
Interoperability with Dovecot on the same Maildir: a private Dovecot (the
Debian package, started by the test on loopback with its own config in a
temporary directory, see tests/interop.py and docs/interop.md) opens what
mailstack wrote and shows the same messages, UIDs, UIDVALIDITY, flags,
keywords, folders and bytes; mailstack opens what Dovecot wrote and shows the
same; and both give the same POP3 UIDLs.
"""

import imaplib
import os
import poplib
import smtplib
import socket
import time

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.helpers import BASE_CONFIG, listenerTOML, startServer
from mailstack.storage.maildrop import POP3_LOCK_FILE
from tests.interop import (Dovecot, LockingDovecot, accountState, check, findBinary,
                           quoted, sharedDataDir)

LISTENERS = (
    listenerTOML("smtp", name="smtp")
    # OBJECTID off: Dovecot 2.3 has none (its MAILBOXID codes would differ).
    + listenerTOML("imap", name="imap", allow_plaintext_auth=True, disabled=["OBJECTID"])
    + listenerTOML("pop3", name="pop3", allow_plaintext_auth=True))

# "Entwürfe/日本語" in modified UTF-7, as an IMAP client sends it.
FOLDER = "Entw&APw-rfe/&ZeVnLIqe-"
FOLDER_PARENT = "Entw&APw-rfe"
DATE = '"07-Feb-1994 21:52:25 -0800"'


def message(n, extra=b""):
    return (b"From: Alice <alice@lab.test>\r\nTo: demo@lab.test\r\n"
            b"Subject: interop " + str(n).encode() + b"\r\n"
            b"Message-ID: <interop-" + str(n).encode() + b"@lab.test>\r\n"
            b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n"
            b"Message number " + str(n).encode() + b".\r\n" + extra)


def _dovecotMissing():
    if findBinary("dovecot") is None:
        return ("dovecot not installed (Debian packages dovecot-imapd and "
                "dovecot-pop3d: `make deps` as root, which .ci/run runs)")
    for name in ("imap", "pop3"):
        if not any(os.path.exists(os.path.join(d, name))
                   for d in ("/usr/lib/dovecot", "/usr/libexec/dovecot")):
            return ("dovecot's %s service not installed (Debian package "
                    "dovecot-%sd)" % (name, name))
    return None


def diskListing(accountDir):
    """
    The account's Maildir as text (file names, and the contents of the small
    index files both programs share), for failure messages.
    """
    lines = []
    for directory, dirs, files in sorted(os.walk(accountDir)):
        rel = os.path.relpath(directory, accountDir)
        for name in sorted(files):
            if name.startswith("dovecot.") and ("index" in name or name.endswith("log")):
                continue
            path = os.path.join(directory, name)
            lines.append(os.path.join(rel, name))
            if name in ("dovecot-uidlist", "dovecot-keywords", "subscriptions",
                        "mailstack-specialuse"):
                with open(path, "rb") as f:
                    lines.extend("    " + line for line in
                                 f.read().decode(errors="replace").splitlines())
    return "\n".join(lines)


def stateDifferences(expected, actual, expectedName, actualName):
    """
    @return: a list of readable differences between two L{accountState}s.
    """
    out = []

    def differ(what, a, b):
        out.append("%s: %s shows %r, %s shows %r"
                   % (what, expectedName, a, actualName, b))

    if expected["folders"] != actual["folders"]:
        differ("LIST", sorted((k, sorted(v)) for k, v in expected["folders"].items()),
               sorted((k, sorted(v)) for k, v in actual["folders"].items()))
    if expected["subscribed"] != actual["subscribed"]:
        differ("LSUB", expected["subscribed"], actual["subscribed"])
    for name in sorted(set(expected["mailboxes"]) | set(actual["mailboxes"])):
        a = expected["mailboxes"].get(name)
        b = actual["mailboxes"].get(name)
        if a is None or b is None:
            differ("mailbox %s" % (name,), a and "selectable", b and "selectable")
            continue
        for key in ("uidvalidity", "uidnext"):
            if a[key] != b[key]:
                differ("%s %s" % (name, key.upper()), a[key], b[key])
        uidsA = [m["uid"] for m in a["messages"]]
        uidsB = [m["uid"] for m in b["messages"]]
        if uidsA != uidsB:
            differ("%s UIDs" % (name,), uidsA, uidsB)
        for ma, mb in zip(a["messages"], b["messages"]):
            if ma["uid"] != mb["uid"]:
                continue
            for key in ("flags", "size", "internaldate", "bytes"):
                if ma[key] != mb[key]:
                    differ("%s UID %d %s" % (name, ma["uid"], key), ma[key], mb[key])
    return out


class DovecotTestCase(unittest.TestCase):
    skip = _dovecotMissing()
    timeout = 60

    def setUp(self):
        text, self.dataDir = sharedDataDir(self, BASE_CONFIG)
        self.server, self.directory = startServer(self, LISTENERS, text)
        self.domainDir = os.path.join(self.dataDir, "mail", "lab.test")
        self.dovecot = Dovecot(self, self.dataDir)

    def accountDir(self, localpart="demo"):
        return os.path.join(self.domainDir, localpart)

    def ours(self, user="demo@lab.test", password="demo"):
        """A logged-in imaplib client of mailstack (blocking)."""
        c = imaplib.IMAP4("127.0.0.1", self.server.listenerPort("imap"), timeout=10)
        c.login(user, password)
        return c

    def sendSMTP(self, messages):
        with smtplib.SMTP("127.0.0.1", self.server.listenerPort("smtp"),
                          timeout=10) as s:
            for m in messages:
                s.sendmail("alice@lab.test", ["demo@lab.test"], m)

    def bothStates(self):
        """The demo account as mailstack then Dovecot show it, each in a new session
        (blocking): C{[ours, theirs]}."""
        states = []
        for client in (self.ours, lambda: self.dovecot.imap("demo@lab.test", "demo")):
            self.dovecot.handOver(self.domainDir)
            client = client()
            try:
                states.append(accountState(client))
            finally:
                client.logout()
        return states

    def assertSameState(self, expected, actual, expectedName, actualName, account):
        differences = stateDifferences(expected, actual, expectedName, actualName)
        if differences:
            self.fail("%s and %s disagree on the same Maildir:\n%s\n--- files:\n%s"
                      % (expectedName, actualName, "\n".join(differences),
                         diskListing(account)))

    def assertDovecotQuiet(self):
        """Dovecot logged no error or warning about what it found."""
        self.assertEqual(self.dovecot.complaints(), [], self.dovecot.log())

    def uidls(self, port, user, password):
        p = poplib.POP3("127.0.0.1", port, timeout=10)
        try:
            p.user(user)
            p.pass_(password)
            return [line.decode() for line in p.uidl()[1]]
        finally:
            p.quit()


class MailstackWritesTests(DovecotTestCase):
    """
    Dovecot opens a Maildir that mailstack wrote.
    """

    @defer.inlineCallbacks
    def test_dovecotShowsWhatMailstackWrote(self):
        """Dovecot shows alike what mailstack wrote (SMTP, APPEND, STORE, COPY, EXPUNGE...)."""
        yield threads.deferToThread(
            self.sendSMTP, [message(1), message(2, b"line two\r\n"), message(3)])

        def write():
            c = self.ours()
            try:
                check(c.append("INBOX", r"(\Seen $Important)", DATE, message(4)))
                check(c.select("INBOX"))
                check(c.uid("STORE", "1", "+FLAGS", r"(\Flagged $Label1)"))
                check(c.uid("STORE", "2", "+FLAGS", r"(\Answered \Seen)"))
                check(c.create(quoted(FOLDER)))
                check(c.subscribe(quoted(FOLDER)))
                check(c.uid("COPY", "1:2", quoted(FOLDER)))
                check(c.uid("STORE", "3", "+FLAGS", r"(\Deleted)"))
                check(c.expunge())
                check(c.close())
                return accountState(c)
            finally:
                c.logout()

        ours = yield threads.deferToThread(write)
        inbox = ours["mailboxes"]["INBOX"]
        self.assertEqual([m["uid"] for m in inbox["messages"]], [1, 2, 4])
        self.assertIn(FOLDER, ours["mailboxes"])

        self.dovecot.handOver(self.domainDir)
        yield self.dovecot.start()

        def read():
            c = self.dovecot.imap("demo@lab.test", "demo")
            try:
                return accountState(c)
            finally:
                c.logout()

        theirs = yield threads.deferToThread(read)
        self.assertSameState(ours, theirs, "mailstack", "Dovecot", self.accountDir())
        self.assertDovecotQuiet()


class DovecotWritesTests(DovecotTestCase):
    """
    mailstack opens a Maildir that Dovecot wrote.
    """

    @defer.inlineCallbacks
    def test_mailstackShowsWhatDovecotWrote(self):
        """mailstack shows alike what Dovecot wrote (APPEND, STORE, CREATE, COPY, EXPUNGE)."""
        self.server.users.addUser("carol@lab.test", "s3cret", scheme="BLF-CRYPT")
        self.dovecot.handOver(self.domainDir)
        yield self.dovecot.start()

        def write():
            c = self.dovecot.imap("carol@lab.test", "s3cret")
            try:
                for n, flags in ((1, None), (2, r"(\Seen)"), (3, r"($Label1)"),
                                 (4, r"(\Draft)")):
                    check(c.append("INBOX", flags, DATE, message(n)))
                check(c.select("INBOX"))
                check(c.uid("STORE", "1", "+FLAGS", r"(\Answered $Important)"))
                check(c.uid("STORE", "2", "+FLAGS", r"(\Deleted)"))
                check(c.expunge())
                check(c.create(quoted(FOLDER_PARENT)))
                check(c.create(quoted(FOLDER)))
                check(c.subscribe(quoted(FOLDER)))
                check(c.subscribe("INBOX"))
                check(c.uid("COPY", "1,3", quoted(FOLDER)))
                check(c.create('"Archiv/2024"'))
                check(c.close())
                return accountState(c)
            finally:
                c.logout()

        theirs = yield threads.deferToThread(write)
        self.assertEqual([m["uid"] for m in theirs["mailboxes"]["INBOX"]["messages"]],
                         [1, 3, 4])

        def read():
            c = self.ours("carol@lab.test", "s3cret")
            try:
                return accountState(c)
            finally:
                c.logout()

        ours = yield threads.deferToThread(read)
        self.assertSameState(theirs, ours, "Dovecot", "mailstack",
                             self.accountDir("carol"))
        self.assertDovecotQuiet()


class SharedTests(DovecotTestCase):
    """
    mailstack and Dovecot serving the same Maildir at the same time.
    """

    @defer.inlineCallbacks
    def test_bothAtOnce(self):
        """Changes made alternately through both servers get one set of UIDs both show."""
        yield threads.deferToThread(self.sendSMTP, [message(1)])
        self.dovecot.handOver(self.domainDir)
        yield self.dovecot.start()

        def steps():
            ours = self.ours()
            theirs = self.dovecot.imap("demo@lab.test", "demo")
            try:
                check(ours.select("INBOX"))
                self.dovecot.handOver(self.domainDir)
                check(theirs.select("INBOX"))
                check(theirs.append("INBOX", r"(\Seen)", DATE, message(2)))
                self.sendSMTP([message(3)])
                check(ours.append("INBOX", None, DATE, message(4)))
                self.dovecot.handOver(self.domainDir)
                check(theirs.noop())
                check(theirs.append("INBOX", None, DATE, message(5)))
                check(theirs.uid("STORE", "3", "+FLAGS", r"(\Flagged $Label1)"))
                check(ours.noop())
                check(ours.uid("STORE", "2", "+FLAGS", r"(\Deleted)"))
                check(ours.expunge())
                check(ours.uid("STORE", "4", "+FLAGS", r"($Important)"))
                self.dovecot.handOver(self.domainDir)
                check(theirs.noop())
                check(ours.noop())
            finally:
                ours.logout()
                theirs.logout()
            return self.bothStates()

        ours, theirs = yield threads.deferToThread(steps)
        self.assertEqual(
            [(m["uid"], m["flags"]) for m in ours["mailboxes"]["INBOX"]["messages"]],
            [(1, ()), (3, ("$Label1", "\\Flagged")), (4, ("$Important",)), (5, ())],
            diskListing(self.accountDir()))
        self.assertSameState(ours, theirs, "mailstack", "Dovecot", self.accountDir())
        self.assertDovecotQuiet()


class IndexTests(DovecotTestCase):
    """
    mailstack's per-mailbox index (mailstack.index) beside what Dovecot writes.
    """

    @defer.inlineCallbacks
    def test_indexNotTrustedAfterDovecotChanges(self):
        """A mailbox opened anew after Dovecot changed flags, expunged and appended shows what Dovecot shows, not its index."""
        from mailstack.storage import index, maildir
        yield threads.deferToThread(self.sendSMTP, [message(1), message(2), message(3)])
        path = self.accountDir()

        def settle():
            then = time.time() - 60
            for name in ("new", "cur", "dovecot-uidlist"):
                os.utime(os.path.join(path, name), (then, then))

        def ourSession():
            c = self.ours()
            try:
                check(c.select("INBOX"))
                settle()  # as if a minute passed: the next sync writes a trusted index
                check(c.noop())
            finally:
                c.logout()
            # (written in a worker thread: wait for it)
            for _ in range(200):
                if os.path.exists(os.path.join(path, index.INDEX_FILE)):
                    return True
                time.sleep(0.05)
            return False
        self.assertTrue((yield threads.deferToThread(ourSession)))
        listings = []
        real = maildir.listMessages
        self.patch(maildir, "listMessages",
                   lambda *a: listings.append(a) or real(*a))
        fresh = maildir.MaildirMailbox("INBOX", path)
        fresh.syncNow(claimRecent=False)
        self.assertEqual(listings, [])  # the unchanged mailbox opened from its index

        self.dovecot.handOver(self.domainDir)
        yield self.dovecot.start()

        def theirSession():
            c = self.dovecot.imap("demo@lab.test", "demo")
            try:
                check(c.select("INBOX"))
                check(c.uid("STORE", "1", "+FLAGS", r"(\Flagged $Label1)"))
                check(c.uid("STORE", "2", "+FLAGS", r"(\Deleted)"))
                check(c.expunge())
                check(c.append("INBOX", r"(\Seen)", DATE, message(4)))
                check(c.close())
                return accountState(c)
            finally:
                c.logout()
        theirs = yield threads.deferToThread(theirSession)
        fresh = maildir.MaildirMailbox("INBOX", path)
        fresh.syncNow(claimRecent=False)
        self.assertNotEqual(listings, [])
        expected = [(m["uid"], tuple(sorted(f for f in m["flags"] if f != "\\Recent")),
                     m["size"]) for m in theirs["mailboxes"]["INBOX"]["messages"]]
        self.assertEqual(
            [(i.uid, tuple(sorted(f for f in i.flags if f != "\\Recent")), i.size)
             for i in fresh.messages()], expected)
        self.assertEqual([uid for uid, _, _ in expected], [1, 3, 4])
        self.assertDovecotQuiet()


class UIDLTests(DovecotTestCase):
    """
    POP3 unique-ids agree with Dovecot's default pop3_uidl_format %08Xu%08Xv.
    """

    @defer.inlineCallbacks
    def test_sameUIDL(self):
        """Dovecot's POP3 UIDL list for a Maildir mailstack delivered into equals mailstack's."""
        yield threads.deferToThread(self.sendSMTP, [message(1), message(2), message(3)])
        ours = yield threads.deferToThread(
            self.uidls, self.server.listenerPort("pop3"), "demo@lab.test", "demo")
        self.assertEqual(len(ours), 3)
        self.dovecot.handOver(self.domainDir)
        yield self.dovecot.start()
        theirs = yield threads.deferToThread(
            self.uidls, self.dovecot.pop3Port, "demo@lab.test", "demo")
        self.assertEqual(
            ours, theirs,
            "POP3 UIDL: mailstack %r, Dovecot %r\n--- files:\n%s"
            % (ours, theirs, diskListing(self.accountDir())))
        self.assertDovecotQuiet()


class POP3LockTests(DovecotTestCase):
    """
    The POP3 maildrop lock is Dovecot's: with C{pop3_lock_session = yes}, a
    Dovecot POP3 session and a mailstack POP3 session over the same Maildir
    exclude each other (docs/pop3.md, "Exclusive maildrop").
    """

    def setUp(self):
        DovecotTestCase.setUp(self)
        self.dovecot = LockingDovecot(self, self.dataDir)
        self.lockPath = os.path.join(self.accountDir(), POP3_LOCK_FILE)

    def pop3(self, port, timeout=10):
        """A blocking POP3 client of C{port}, logged in as the demo user."""
        p = poplib.POP3("127.0.0.1", port, timeout=timeout)
        p.user("demo@lab.test")
        p.pass_("demo")
        return p

    def assertInUse(self, port, timeout=10):
        """A POP3 login on C{port} is refused with -ERR [IN-USE]."""
        with self.assertRaises(poplib.error_proto) as caught:
            self.pop3(port, timeout).quit()
        self.assertTrue(caught.exception.args[0].startswith(b"-ERR [IN-USE] "),
                        caught.exception.args[0])

    def readLock(self):
        with open(self.lockPath, "rb") as f:
            return f.read()

    @defer.inlineCallbacks
    def test_dovecotHoldsMailstackRefuses(self):
        """While a Dovecot POP3 session holds the maildrop, a mailstack POP3 login gets -ERR [IN-USE]; after its QUIT mailstack gets in."""
        yield threads.deferToThread(self.sendSMTP, [message(1)])
        self.dovecot.handOver(self.domainDir)
        yield self.dovecot.start()

        def steps():
            theirs = self.pop3(self.dovecot.pop3Port)
            pid, _, host = self.readLock().decode().partition(":")
            self.assertEqual(host, socket.gethostname())
            self.assertNotEqual(int(pid), os.getpid())
            self.assertInUse(self.server.listenerPort("pop3"))
            theirs.quit()
            self.assertFalse(os.path.exists(self.lockPath))
            ours = self.pop3(self.server.listenerPort("pop3"))
            self.assertEqual(ours.stat()[0], 1)
            ours.quit()
            self.assertFalse(os.path.exists(self.lockPath))

        yield threads.deferToThread(steps)
        self.assertDovecotQuiet()

    @defer.inlineCallbacks
    def test_mailstackHoldsDovecotRefuses(self):
        """While a mailstack POP3 session holds the maildrop, Dovecot's POP3 login gets -ERR [IN-USE] (after its 10 s wait); after QUIT Dovecot gets in."""
        yield threads.deferToThread(self.sendSMTP, [message(1)])
        # One session first, so that Dovecot's mail user is handed the
        # uidlist as mailstack leaves it.
        yield threads.deferToThread(lambda: self.pop3(self.server.listenerPort("pop3")).quit())
        self.dovecot.handOver(self.domainDir)
        yield self.dovecot.start()

        def steps():
            ours = self.pop3(self.server.listenerPort("pop3"))
            self.assertEqual(self.readLock(), ("%d:%s" % (os.getpid(), socket.gethostname())).encode())
            # As root the test's mailstack writes the lock as root; Dovecot's
            # mail user must read it (and watch it with inotify) as it would
            # when both run as one mail user.
            self.dovecot.handOver(self.domainDir)
            self.assertInUse(self.dovecot.pop3Port, timeout=30)
            ours.quit()
            self.assertFalse(os.path.exists(self.lockPath))
            theirs = self.pop3(self.dovecot.pop3Port)
            self.assertEqual(theirs.stat()[0], 1)
            theirs.quit()

        yield threads.deferToThread(steps)
        self.assertIn("Couldn't lock POP3 session", self.dovecot.log())
        self.assertDovecotQuiet()
