"""
Tests for L{mailstack.activity}: the per-user counts class reports are made
from, and the file that keeps them across restarts.
"""

import json
import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mailstack.activity import (
    LOGIN, NO_ACTIVITY, RECEIVED, SENT, ActivityRecorder, IActivity)


def inline(f, *args):
    """Run the 'thread' work at once (the tests' runInThread)."""
    return defer.maybeDeferred(f, *args)


class RecorderMixin:
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1700000000)
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "activity.json")

    def recorder(self, runInThread=inline, start=True):
        recorder = ActivityRecorder(self.path, self.clock, runInThread)
        recorder.load()
        if start:
            recorder.startService()
        return recorder


class CountingTests(RecorderMixin, unittest.TestCase):
    def test_interface(self):
        """The recorder and the do-nothing default both provide IActivity."""
        self.assertTrue(verifyObject(IActivity, self.recorder()))
        self.assertTrue(verifyObject(IActivity, NO_ACTIVITY))

    def test_counts(self):
        """Logins, sent and received messages are counted per user, protocol and TLS state."""
        recorder = self.recorder()
        recorder.loggedIn("Ann@lab.test", "imap", True)
        self.clock.advance(60)
        recorder.loggedIn("ann@lab.test", "imap", True)
        recorder.loggedIn("ann@lab.test", "pop3", False)
        recorder.messageSent("ann@lab.test", "smtp", True)
        recorder.messageReceived("bob@lab.test", "smtp", False)
        ann = recorder.user("ANN@lab.test")
        self.assertEqual(dict(ann.counts), {(LOGIN, "imap", True): 2, (LOGIN, "pop3", False): 1,
                                            (SENT, "smtp", True): 1})
        self.assertEqual((ann.total(LOGIN), ann.total(LOGIN, tls=False),
                          ann.total(LOGIN, "imap"), ann.protocols(LOGIN)),
                         (3, 1, 2, ["imap", "pop3"]))
        self.assertEqual((ann.first, ann.last), (1700000000, 1700000060))
        self.assertEqual(dict(recorder.user("bob@lab.test").counts), {(RECEIVED, "smtp", False): 1})
        self.assertEqual(recorder.addresses(), ["ann@lab.test", "bob@lab.test"])
        self.assertEqual(recorder.user("nobody@lab.test").total(LOGIN), 0)

    def test_reset(self):
        """reset forgets one user's counts, or everyone's."""
        recorder = self.recorder()
        for address in ("ann@lab.test", "bob@lab.test"):
            recorder.loggedIn(address, "imap", True)
        recorder.reset("Ann@lab.test")
        self.assertEqual(recorder.addresses(), ["bob@lab.test"])
        recorder.reset()
        self.assertEqual(recorder.addresses(), [])


class SavingTests(RecorderMixin, unittest.TestCase):
    def test_savedAfterDelay(self):
        """Counts reach the file 5 seconds after a change, and a new recorder reads them back."""
        recorder = self.recorder()
        recorder.loggedIn("ann@lab.test", "imap", True)
        recorder.messageSent("ann@lab.test", "smtp", False)
        self.clock.advance(4)
        self.assertFalse(os.path.exists(self.path))
        self.clock.advance(1)
        self.assertTrue(os.path.exists(self.path))
        again = self.recorder()
        self.assertEqual(again.user("ann@lab.test"), recorder.user("ann@lab.test"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_savedOnStop(self):
        """Stopping the service writes what changed since the last save at once."""
        recorder = self.recorder()
        recorder.messageReceived("bob@lab.test", "smtp", True)
        self.successResultOf(recorder.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(dict(self.recorder().user("bob@lab.test").counts),
                         {(RECEIVED, "smtp", True): 1})

    def test_oneWriteAtATime(self):
        """A save asked while one is writing waits for it, then writes what changed meanwhile."""
        writes = []

        def held(f, *args):
            d = defer.Deferred()
            writes.append((d, args))
            return d.addCallback(lambda _: f(*args))
        recorder = self.recorder(held)
        recorder.loggedIn("ann@lab.test", "imap", True)
        first = recorder.save()
        recorder.loggedIn("bob@lab.test", "imap", True)
        second = recorder.save()
        self.assertEqual(len(writes), 1)
        writes[0][0].callback(None)
        self.successResultOf(first)
        self.assertEqual(len(writes), 2)
        self.assertIn(b"bob@lab.test", writes[1][1][1])
        writes[1][0].callback(None)
        self.successResultOf(second)
        self.assertEqual(self.recorder().addresses(), ["ann@lab.test", "bob@lab.test"])

    def test_writeFailureRetried(self):
        """A write that fails is logged and the counts are written by the next save."""
        failing = [True]

        def flaky(f, *args):
            if failing:
                failing.pop()
                return defer.fail(OSError(28, "No space left on device"))
            return inline(f, *args)
        recorder = self.recorder(flaky)
        recorder.loggedIn("ann@lab.test", "imap", True)
        self.successResultOf(recorder.save())
        self.assertFalse(os.path.exists(self.path))
        self.successResultOf(recorder.save())
        self.assertEqual(self.recorder().addresses(), ["ann@lab.test"])

    def test_unreadableFileSetAside(self):
        """A file that is not counts is kept as .bad and counting starts afresh."""
        with open(self.path, "w") as f:
            f.write("{not json")
        recorder = self.recorder()
        self.assertEqual(recorder.addresses(), [])
        with open(self.path + ".bad") as f:
            self.assertEqual(f.read(), "{not json")
        self.assertFalse(os.path.exists(self.path))

    def test_fileFormat(self):
        """The file is versioned JSON of each user's counts and times."""
        recorder = self.recorder()
        recorder.loggedIn("ann@lab.test", "pop3", False)
        self.successResultOf(recorder.save())
        with open(self.path) as f:
            self.assertEqual(json.load(f), {"version": 1, "users": {"ann@lab.test": {
                "counts": [["login", "pop3", False, 1]],
                "first": 1700000000, "last": 1700000000}}})

    def test_inMemory(self):
        """Without a path nothing is written and no save is scheduled."""
        recorder = ActivityRecorder(None, self.clock, inline)
        recorder.startService()
        recorder.loggedIn("ann@lab.test", "imap", True)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.successResultOf(recorder.stopService())


class ServiceTests(unittest.TestCase):
    def test_unreadableFileStopsStartUp(self):
        """An activity file the server cannot read stops start-up with one line naming it."""
        from twisted.internet import reactor

        from mailstack import service
        from mailstack.config import loadConfig
        from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig
        path = writeConfig(self, BASE_CONFIG, listenerTOML("imap"))
        activity = os.path.abspath(os.path.join(os.path.dirname(path), "var", "activity.json"))
        os.makedirs(activity)  # a directory: reading it fails
        e = self.assertRaises(service.StartupError, service.buildService,
                              loadConfig(path), reactor)
        self.assertEqual(str(e), "cannot read %s: Is a directory" % (activity,))

    def test_countsKeptAcrossRestart(self):
        """The server's recorder reads the counts its previous run saved."""
        from twisted.internet import reactor

        from mailstack import service
        from mailstack.config import loadConfig
        from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig
        path = writeConfig(self, BASE_CONFIG, listenerTOML("imap"))
        first = service.buildService(loadConfig(path), reactor)
        first.activity.loggedIn("ann@lab.test", "imap", True)
        first.activity.runInThread = inline
        self.successResultOf(first.activity.save())
        second = service.buildService(loadConfig(path), reactor)
        self.assertEqual(second.activity.user("ann@lab.test").total(LOGIN), 1)
