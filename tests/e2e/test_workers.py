"""
C{[server] workers = 2}: a real C{twistd mailstack} whose first process
starts a second one sharing every listener. To send a client to one process,
the test stops the other (SIGSTOP) while the client connects: the kernel then
hands the connection to the one still running, whose greeting proves it
accepted it. The console (first process only) shows what both serve.
"""

import csv
import imaplib
import io
import json
import os
import poplib
import re
import signal
import smtplib
import textwrap
import threading
import time
import urllib.request

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.e2e.test_multiprocess import (
    CONFIG, LISTENERS, TWISTD, WAIT, IdleClient, TwistdProcess, childEnvironment, message)
from tests.e2e.test_web import Browser

STARTED = re.compile(r"worker 2 started \(pid (\d+)\)")


def alive(pid):
    """Whether process C{pid} exists (and is not a zombie)."""
    try:
        with open("/proc/%d/stat" % (pid,)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class WorkersServer(unittest.TestCase):
    """A real server of two processes for the tests (L{configure} may change its config)."""

    if not os.path.exists(TWISTD):
        skip = "twistd is not installed next to %s" % (TWISTD,)
    timeout = 90

    @defer.inlineCallbacks
    def setUp(self):
        from twisted.internet import reactor
        top = os.path.abspath(self.mktemp())
        os.makedirs(top)
        config = os.path.join(top, "mailstack.toml")
        text = CONFIG.format(dataDir=os.path.join(top, "var")).replace(
            "[server]\n", "[server]\nworkers = 2\n").replace(
            "lock_wait = 2", "lock_wait = 20").replace("[lab]\n", "[lab]\ntranscripts = true\n")
        text = self.configure(text)
        with open(config, "w") as f:
            f.write(text + textwrap.dedent(LISTENERS)
                    + '\n[web]\nendpoint = "tcp:0:interface=127.0.0.1"\n')
        self.server = TwistdProcess("workers", ("smtp", "imap", "pop3"))
        reactor.spawnProcess(
            self.server, TWISTD,
            [TWISTD, "-n", "--pidfile=", "--logfile=-", "mailstack", "--config", config],
            env=childEnvironment(), path=top)
        self.addCleanup(self.stopServer)
        yield self.server.ready
        self.first = self.server.transport.pid
        self.worker = yield self.workerPid()
        yield self.waitFor(lambda: self.server.text().count("demo account: ") >= 2,
                           "the worker to start serving")

    def configure(self, text):
        """The config file's text (without its listeners), as a test class wants it."""
        return text

    def waitFor(self, condition, what):
        """Poll C{condition} (in a thread) until true, or fail after L{WAIT} seconds."""
        def poll():
            deadline = time.monotonic() + WAIT
            while not condition():
                if time.monotonic() > deadline:
                    raise AssertionError("waited in vain for %s:\n%s" % (
                        what, self.server.text()))
                time.sleep(0.05)
        return threads.deferToThread(poll)

    @defer.inlineCallbacks
    def workerPid(self, notAmong=()):
        def found():
            pids = [int(p) for p in STARTED.findall(self.server.text())]
            return [p for p in pids if p not in notAmong]
        yield self.waitFor(found, "worker 2 to start")
        return found()[-1]

    @defer.inlineCallbacks
    def stopServer(self):
        for pid in (self.server.transport.pid, getattr(self, "worker", None)):
            if pid and alive(pid):
                os.kill(pid, signal.SIGCONT)
        if not self.server.ended.called:
            self.server.transport.signalProcess(signal.SIGTERM)
        yield self.server.ended
        if self.server.signal != signal.SIGKILL:  # (one test kills it)
            self.assertIn("Server Shut Down.", self.server.text())
        self.assertNotIn("Traceback", self.server.text())

    def only(self, pid, connect):
        """C{connect()} while every other process of the server is stopped: C{pid} accepts it."""
        others = [p for p in (self.first, self.worker) if p != pid]
        for other in others:
            os.kill(other, signal.SIGSTOP)
        try:
            return connect()
        finally:
            for other in others:
                os.kill(other, signal.SIGCONT)

    def pop3(self):
        return poplib.POP3("127.0.0.1", self.server.ports["pop3"], timeout=WAIT)

    def smtp(self):
        return smtplib.SMTP("127.0.0.1", self.server.ports["smtp"], timeout=WAIT)

    def imap(self):
        return IdleClient(self.server.ports["imap"])


class WorkersTests(WorkersServer):
    """One server of two processes over one set of listening sockets."""

    def test_bothServe(self):
        """Each of the two processes accepts and serves SMTP, IMAP and POP3 on the shared listeners."""
        def steps():
            for pid in (self.first, self.worker):
                with self.only(pid, self.smtp) as s:
                    s.sendmail("alice@lab.test", ["demo@lab.test"], message("to-%d" % (pid,)))
                idle = self.only(pid, self.imap)
                self.assertGreaterEqual(idle.exists, 1)
                idle.close()
                session = self.only(pid, self.pop3)
                session.user("demo@lab.test")
                session.pass_("demo")
                session.quit()
        return threads.deferToThread(steps)

    def test_pop3SessionBlocksTheOtherWorker(self):
        """A POP3 session in one process makes a login for that maildrop in the other wait until it quits."""
        def steps():
            with self.smtp() as s:
                s.sendmail("alice@lab.test", ["demo@lab.test"], message("pop"))
            holder = self.only(self.first, self.pop3)
            holder.user("demo@lab.test")
            holder.pass_("demo")
            waiter = self.only(self.worker, self.pop3)
            outcome = {}

            def login():
                try:
                    waiter.user("demo@lab.test")
                    waiter.pass_("demo")
                    outcome["count"] = waiter.stat()[0]
                    waiter.quit()
                except Exception as e:
                    outcome["error"] = e
            thread = threading.Thread(target=login)
            thread.start()
            time.sleep(1)
            self.assertTrue(thread.is_alive(), outcome)  # waiting, neither let in nor refused
            holder.quit()
            thread.join(WAIT)
            self.assertEqual(outcome, {"count": 1})
        return threads.deferToThread(steps)

    def test_idleSeesTheOtherWorkersDelivery(self):
        """IDLE in one process hears EXISTS for a message the other process accepted by SMTP, both ways."""
        def steps():
            for watcher, deliverer in ((self.first, self.worker), (self.worker, self.first)):
                idle = self.only(watcher, self.imap)
                try:
                    with self.only(deliverer, self.smtp) as s:
                        s.sendmail("alice@lab.test", ["demo@lab.test"],
                                   message("idle-%d" % (deliverer,)))
                    idle.waitExists(idle.exists + 1)
                finally:
                    idle.close()
        return threads.deferToThread(steps)

    def test_healthzCountsWorkers(self):
        """The first process's /healthz says two processes are configured and running."""
        def steps():
            port = re.search(r"web console: http://127\.0\.0\.1:(\d+)/",
                             self.server.text()).group(1)
            with urllib.request.urlopen("http://127.0.0.1:%s/healthz" % (port,),
                                        timeout=WAIT) as answer:
                return json.loads(answer.read())
        d = threads.deferToThread(steps)
        d.addCallback(lambda report: self.assertEqual(
            (report["status"], report["workers"]), ("ok", {"configured": 2, "running": 2})))
        return d

    @defer.inlineCallbacks
    def test_stopLeavesNoWorker(self):
        """SIGTERM to the first process stops the worker too, and the server ends cleanly."""
        self.server.transport.signalProcess(signal.SIGTERM)
        yield self.server.ended
        self.assertFalse(alive(self.worker))
        self.assertIn("worker 2 stopped", self.server.text())

    @defer.inlineCallbacks
    def test_interruptStopsAll(self):
        """SIGINT (a terminal's Ctrl-C) to the first process stops the worker too, cleanly."""
        self.server.transport.signalProcess(signal.SIGINT)
        yield self.server.ended
        self.assertFalse(alive(self.worker))
        self.assertIn("worker 2 stopped", self.server.text())
        self.assertIn("Server Shut Down.", self.server.text())

    @defer.inlineCallbacks
    def test_killedFirstProcessLeavesNoWorker(self):
        """A first process killed outright (SIGKILL) still leaves no worker behind."""
        self.server.transport.signalProcess(signal.SIGKILL)
        yield self.server.ended
        yield self.waitFor(lambda: not alive(self.worker), "the orphaned worker to stop")

    @defer.inlineCallbacks
    def test_workerRestarted(self):
        """A worker that dies is started again, and the new one serves."""
        os.kill(self.worker, signal.SIGKILL)
        self.worker = yield self.workerPid(notAmong=(self.worker,))
        yield self.waitFor(lambda: self.server.text().count("demo account: ") >= 3,
                           "the new worker to start serving")

        def greet():
            with self.only(self.worker, self.smtp) as s:
                return s.noop()[0]
        code = yield threads.deferToThread(greet)
        self.assertEqual(code, 250)

    def consoleBase(self):
        port = re.search(r"web console: http://127\.0\.0\.1:(\d+)/", self.server.text()).group(1)
        return "http://127.0.0.1:%s" % (port,)

    def metric(self, name, **labels):
        """A sample of the first process's /metrics (0 if absent)."""
        with urllib.request.urlopen(self.consoleBase() + "/metrics", timeout=WAIT) as answer:
            text = answer.read().decode("utf-8")
        wanted = "%s{%s} " % (name, ",".join('%s="%s"' % item for item in sorted(labels.items())))
        for line in text.splitlines():
            if line.startswith(wanted):
                return float(line[len(wanted):])
        return 0.0

    def until(self, condition, what):
        """Poll C{condition} (blocking; for steps already in a thread) for up to L{WAIT} seconds."""
        deadline = time.monotonic() + WAIT
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("waited in vain for %s:\n%s" % (what, self.server.text()))
            time.sleep(0.1)

    def test_metricsCountEveryProcess(self):
        """/metrics and the API's status count the worker's logins and open sessions; a killed worker's sessions stop counting, its counts stay."""
        pop3 = {"listener": "pop3", "protocol": "pop3"}
        logins = dict(pop3, mechanism="user", result="success")
        browser = Browser(self.consoleBase())

        def openPOP3():
            _, _, body = browser.request("/api/v1/status")
            return json.loads(body)["sessions"]["pop3"]

        def steps():
            browser.login("demo@lab.test", "demo")
            for pid in (self.first, self.worker):
                session = self.only(pid, self.pop3)
                session.user("demo@lab.test")
                session.pass_("demo")
                session.quit()
            self.until(lambda: self.metric("mailstack_auth_attempts_total", **logins) == 2,
                       "both logins counted")
            held = self.only(self.worker, self.pop3)
            self.until(lambda: self.metric("mailstack_sessions_open", **pop3) == 1,
                       "the worker's open session counted")
            self.until(lambda: openPOP3() == 1, "the API's status counting it")
            os.kill(self.worker, signal.SIGKILL)
            held.sock.close()
            self.until(lambda: self.metric("mailstack_sessions_open", **pop3) == 0,
                       "the killed worker's session no longer counted")
            self.assertEqual(openPOP3(), 0)
            self.assertEqual(self.metric("mailstack_auth_attempts_total", **logins), 2)
            self.assertEqual(self.metric("mailstack_connections_accepted_total", **pop3), 3)
        return threads.deferToThread(steps)

    def test_consoleShowsTheWorkersSessions(self):
        """A student's live transcript (SSE) and class report show her IMAP session served by the worker, password masked."""
        browser = Browser(self.consoleBase())

        def steps():
            status, _, _ = browser.login("demo@lab.test", "demo")
            self.assertEqual(status, 200)
            stream = browser.opener.open(self.consoleBase() + "/transcripts/events", timeout=WAIT)
            try:
                client = self.only(self.worker, lambda: imaplib.IMAP4(
                    "127.0.0.1", self.server.ports["imap"], timeout=WAIT))
                client.login("demo@lab.test", "demo")
                client.logout()
                events = []
                while not any(e.startswith("event: ended") for e in events):
                    line = stream.readline().decode("utf-8")
                    if not line:
                        break
                    events.append(line.rstrip("\n"))
            finally:
                stream.close()
            text = "\n".join(events)
            self.assertIn('"protocol":"imap"', text)
            self.assertIn("LOGIN demo@lab.test ***", text)
            self.assertNotIn('"demo"', text)

            def report():
                _, _, body = browser.request("/reports.csv")
                [row] = list(csv.DictReader(io.StringIO(body)))
                return row
            self.until(lambda: report()["logins_imap"] == "1", "the worker's login reported")
        return threads.deferToThread(steps)

    def test_apiShowsTheWorkersSubmissions(self):
        """A message the worker accepted is in the API's submissions and the class report's received count."""
        browser = Browser(self.consoleBase())

        def steps():
            status, _, _ = browser.login("demo@lab.test", "demo")
            self.assertEqual(status, 200)
            with self.only(self.worker, self.smtp) as s:
                s.sendmail("demo@lab.test", ["demo@lab.test"], message("api"))

            def found():
                _, _, body = browser.request(
                    "/api/v1/accounts/demo@lab.test/submissions?subject=two+processes+api")
                return json.loads(body)
            self.until(lambda: found()["count"] == 1, "the worker's submission")
            [record] = found()["submissions"]
            self.assertEqual(record["recipients"], ["demo@lab.test"])
            _, _, body = browser.request("/api/v1/report")
            [row] = json.loads(body)["students"]
            self.assertEqual(row["received"], 1)
        return threads.deferToThread(steps)
