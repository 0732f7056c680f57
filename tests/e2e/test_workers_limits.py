"""
C{[server] workers = 2} with C{[limits] connections_per_ip} and the
failed-login penalty: a client gets the server's allowance, not one per
process. The processes exchange their counts through the first process
(L{mailstack.workerlink.SharedLimits}); as in tests/e2e/test_workers.py, a
client is sent to one process by stopping the other while it connects.
"""

import imaplib
import poplib
import socket
import time

from twisted.internet import threads

from tests.e2e.test_multiprocess import WAIT
from tests.e2e.test_workers import WorkersServer

# Time for a failed login to reach the other process (sent at once): waited, never asserted.
SETTLE = 1.0


class SharedLimitsTests(WorkersServer):
    """Per-IP connection limits and the auth penalty over both processes of one server."""

    def configure(self, text):
        return text.replace("[limits]\n", "[limits]\nconnections_per_ip = 2\n"
                            "auth_failures_delay = 2\nauth_failure_delay_seconds = 2\n")

    def greeting(self, pid, port):
        """The first line process C{pid} sends a new connection to C{port}, and the socket."""
        def connect():
            s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
            return s, s.makefile("rb").readline()
        return self.only(pid, connect)

    def test_startupSaysShared(self):
        """The first process says at startup that both processes share the per-IP limit and the penalty."""
        self.assertIn("2 processes share the per-IP limits: connections_per_ip = 2 and the "
                      "failed-login penalty count every process's clients", self.server.text())

    def test_perIPLimitOverBothProcesses(self):
        """Two IMAP sessions held in the worker fill connections_per_ip = 2: the first process refuses a third from that address with * BYE [UNAVAILABLE], and accepts again once they quit."""
        port = self.server.ports["imap"]

        def firstAnswers(wanted):
            """Connect to the first process (closing at once) until its greeting starts with C{wanted}."""
            deadline = time.monotonic() + WAIT
            while True:
                s, line = self.greeting(self.first, port)
                s.close()
                if line.startswith(wanted) or time.monotonic() > deadline:
                    return line
                time.sleep(0.1)

        def steps():
            held = [self.only(self.worker, lambda: imaplib.IMAP4("127.0.0.1", port, timeout=WAIT))
                    for _ in range(2)]
            try:
                self.assertEqual(
                    firstAnswers(b"* BYE"),
                    b"* BYE [UNAVAILABLE] Too many connections from your address\r\n")
            finally:
                for client in held:
                    client.logout()
            self.assertTrue(firstAnswers(b"* OK").startswith(b"* OK"))
        return threads.deferToThread(steps)

    def test_penaltyOverBothProcesses(self):
        """A failed POP3 login in each process adds up to auth_failures_delay = 2: the next login in either waits the penalty before its answer."""
        port = self.server.ports["pop3"]

        def fail(pid):
            client = self.only(pid, lambda: poplib.POP3("127.0.0.1", port, timeout=WAIT))
            client.user("demo@lab.test")
            started = time.monotonic()
            self.assertRaises(poplib.error_proto, client.pass_, "wrong")
            waited = time.monotonic() - started
            client.quit()
            time.sleep(SETTLE)
            return waited

        def steps():
            self.assertLess(fail(self.worker), 1.5)
            self.assertLess(fail(self.first), 1.5)  # one failure here, one in the worker
            self.assertGreaterEqual(fail(self.worker), 1.5)
            self.assertGreaterEqual(fail(self.first), 1.5)
        d = threads.deferToThread(steps)
        d.addCallback(lambda _: self.assertIn(
            "auth penalty: 127.0.0.1: 2 failed logins", self.server.text()))
        return d
