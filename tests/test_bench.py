"""
The short version of `make bench`: the harness (bench/run.py --quick) runs end
to end and prints well-formed figures. Never asserts speed: the figures are
for reading (bench/README.md), not for passing or failing.
"""

import json
import os
import re
import subprocess
import sys

from twisted.trial import unittest

from bench import clients, data, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class QuickRunTests(unittest.TestCase):
    """
    bench/run.py --quick in a subprocess, as `make bench` runs it. One run
    (a few seconds) checked by one test, so parallel trial workers never
    start it twice.
    """

    def test_quickRun(self):
        """The quick run exits 0, prints the table and writes the JSON."""
        jsonPath = os.path.abspath(self.mktemp())
        self.result = subprocess.run(
            [sys.executable, "-m", "bench.run", "--quick", "--quiet",
             "--json", jsonPath],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        # Every mailstack figure was measured (the exit status says so).
        self.assertEqual(self.result.returncode, 0, self.explain())
        self.checkTable(self.result.stdout)
        self.checkScaleRows(self.result.stdout)
        self.checkWorkersScaling(self.result.stdout)
        with open(jsonPath) as f:
            report = json.load(f)
        self.checkJSON(report)
        self.assertEqual(set(report["scaling"]), {"imap_busy", "pop3_busy", "smtp_rate_c10"})
        for key, scaled in report["scaling"].items():
            self.assertAlmostEqual(scaled["ratio"], scaled["workers_2"] / scaled["workers_1"])

    def explain(self):
        return "exit %s\n--- stdout:\n%s\n--- stderr:\n%s" % (
            self.result.returncode, self.result.stdout, self.result.stderr[-3000:])

    def checkTable(self, out):
        """The table has its header and a row per metric with a mailstack figure."""
        self.assertIn("mailstack benchmark (quick)", out, self.explain())
        self.assertRegex(out, r"(?m)^machine: \d+ CPUs")
        self.assertRegex(out, r"(?m)^verdict +issue 16 target +goal")
        header = [line for line in out.splitlines() if line.startswith("metric ")]
        self.assertEqual(len(header), 1, self.explain())
        for column in ("unit", "mailstack", "peer", "ratio m/p", "better"):
            self.assertIn(column, header[0])
        number = r"(-?\d+(\.\d+)?|-)"
        for key, label in (("smtp", "SMTP 1 client: delivered"),
                           ("smtp", "SMTP 10 clients: latency p95"),
                           ("imap", "IMAP FETCH 1:* (FLAGS RFC822.SIZE)"),
                           ("imap", "IMAP SEARCH TEXT over"),
                           ("imap", "IMAP IDLE x"),
                           ("pop3", "POP3 LOGIN+STAT+LIST"),
                           ("pop3", "POP3 RETR"),
                           ("pop3", "POP3 busy class"),
                           ("imap", "IMAP busy class"),
                           ("imap", "IMAP LOGIN latency"),
                           ("imap", "IMAP LOGIN+SELECT 300 msgs, first ever")):
            rows = [line for line in out.splitlines() if line.startswith(label)]
            self.assertTrue(rows, "no %r row\n%s" % (label, self.explain()))
            for row in rows:
                # Memory growth per session may come out negative (noise).
                self.assertRegex(
                    row, r"\s(msg/s|ms|KiB|MB/s|sessions/s)\s+-?\d+(\.\d+)?\s+(aiosmtpd|dovecot)\s+"
                    + number + r"\s+" + number + r"\s+(lower|higher)\b", row)

    def checkScaleRows(self, out):
        """The scale section's rows: idle sessions in one process, a big message's memory."""
        for label in ("Idle IMAP sessions open in one process (of 20)",
                      "Idle IMAP sessions x20: a delivery's EXISTS at the last",
                      "2 MB message in by SMTP: peak RSS growth",
                      "2 MB message out by IMAP FETCH: peak RSS growth",
                      "2 MB message out by POP3 RETR: peak RSS growth"):
            self.assertTrue(any(line.startswith(label) for line in out.splitlines()),
                            "no %r row\n%s" % (label, self.explain()))

    def checkWorkersScaling(self, out):
        """The busy classes are measured with 2 workers too, and a report line gives 2-worker / 1-worker sessions/s."""
        for label in ("IMAP busy class", "POP3 busy class"):
            rows = [line for line in out.splitlines()
                    if line.startswith(label) and ", 2 workers" in line]
            self.assertEqual(len(rows), 1, "no %r 2-worker row\n%s" % (label, self.explain()))
            self.assertRegex(
                out, r"(?m)^report +%s.*sessions/s scale from 1 to 2 workers +report: 2 workers / 1"
                r" +\S+ -> \S+ +- +\d+\.\d\d$" % (label,))

    def checkJSON(self, report):
        """--json writes every row: figures as numbers, ratio = mailstack/peer."""
        self.assertEqual(report["machine"]["mode"], "quick")
        self.assertIsInstance(report["machine"]["cpus"], int)
        results = report["results"]
        self.assertEqual({r["section"] for r in results}, {"smtp", "imap", "pop3", "scale"})
        self.assertEqual(len({r["key"] for r in results}), len(results))
        for r in results:
            self.assertIn(r["better"], ("lower", "higher"), r)
            self.assertIn(r["peer_name"], ("aiosmtpd", "dovecot"), r)
            self.assertIsInstance(r["mailstack"], float, r)
            if r["unit"] not in ("KiB", "%"):  # memory growth, idle CPU may round to 0
                self.assertGreater(r["mailstack"], 0, r)
            if r["peer"] is None:
                # A missing peer is said, not hidden.
                self.assertTrue(any(r["section"] in p for p in report["problems"]),
                                report["problems"])
                self.assertIsNone(r["ratio"])
            else:
                self.assertIsInstance(r["peer"], float, r)
                if r["peer"]:
                    self.assertAlmostEqual(r["ratio"], r["mailstack"] / r["peer"])


class PieceTests(unittest.TestCase):
    """The harness's pure parts."""

    def test_percentile(self):
        """The report's p50/p95 are nearest-rank percentiles (a single sample is its own p95)."""
        values = [float(n) for n in range(1, 101)]
        self.assertEqual(clients.percentile(values, 50), 50.0)
        self.assertEqual(clients.percentile(values, 95), 95.0)
        self.assertEqual(clients.percentile([3.0], 95), 3.0)

    def test_bigMessage(self):
        """The scale section's big message has at least the size asked, in CRLF lines."""
        from bench import scale
        m = scale.bigMessage(100000)
        self.assertGreaterEqual(len(m), 100000)
        self.assertLess(len(m), 100000 + 100)
        self.assertNotIn(b"\n", m.replace(b"\r\n", b""))

    def test_smtpMessageSize(self):
        """The SMTP load sends messages of exactly the size asked, CRLF lines."""
        for size in (10240, 4096, 1001):
            m = data.smtpMessage(size)
            self.assertEqual(len(m), size)
            self.assertNotIn(b"\n", m.replace(b"\r\n", b""))

    def test_sameData(self):
        """Both servers get the same bytes: generation is deterministic."""
        a = data.mailboxes(data.QUICK)
        b = data.mailboxes(data.QUICK)
        self.assertEqual(a, b)
        search = a[data.SEARCH_USER]
        hits = [n for n, d, _ in search if data.NEEDLE.encode() in d]
        self.assertEqual(len(hits), len(range(0, data.QUICK.search, data.NEEDLE_EVERY)))
        for name, body, _ in a[data.BULK_USER][:20]:
            self.assertIn(",S=%d," % (len(body),), name)
            self.assertIn(",W=%d:" % (len(body) + body.count(b"\n"),), name)

    def test_verdict(self):
        """The ratio is mailstack/peer; the verdict reads it in the metric's direction."""
        r = run.Row("imap", "k", "label", "ms", "lower")
        r.peerName = "dovecot"
        r.values = {"mailstack": 30.0, "peer": 10.0}
        self.assertEqual(r.ratio(), 3.0)
        self.assertEqual(r.verdict(), "dovecot 3.0x better")
        r.better = "higher"
        self.assertEqual(r.verdict(), "mailstack 3.0x better")
        r.values = {"mailstack": 10.5, "peer": 10.0}
        self.assertEqual(r.verdict(), "about equal")
        r.values = {"mailstack": 10.0, "peer": None}
        self.assertIsNone(r.ratio())
        self.assertEqual(r.verdict(), "")

    def test_table(self):
        """The report table is a header, a rule and a row per metric; a missing peer value reads '-'."""
        r = run.Row("pop3", "k", "POP3 thing", "ms", "lower")
        r.peerName = "dovecot"
        r.values = {"mailstack": 1234.5, "peer": None}
        text = run.table([r])
        lines = text.splitlines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(re.match(r"POP3 thing\s+ms\s+1234\s+dovecot\s+-\s+-\s+lower", lines[2]),
                        lines[2])

    def test_targetTable(self):
        """Each issue-16 target the run measured gets a row saying whether it is met."""
        busy = run.Row("imap", "imap_busy", "IMAP busy class", "sessions/s", "higher")
        busy.values = {"mailstack": 120.0, "peer": 100.0}
        busy.samples = {"mailstack": {"errors": 0}}
        erring = run.Row("pop3", "pop3_busy", "POP3 busy class", "sessions/s", "higher")
        erring.values = {"mailstack": 90.0, "peer": 100.0}
        fetch = run.Row("imap", "imap_fetch_flags", "IMAP FETCH", "ms", "lower")
        fetch.values = {"mailstack": 30.0, "peer": 20.0}
        huge = run.Row("imap", "imap_select_huge", "IMAP SELECT huge", "ms", "lower")
        huge.values = {"mailstack": None, "peer": 300.0}
        other = run.Row("imap", "imap_idle_rss", "IMAP IDLE", "KiB", "lower")
        other.values = {"mailstack": 1.0, "peer": 2.0}
        lines = run.targetTable([busy, erring, fetch, huge, other]).splitlines()
        self.assertEqual(len(lines), 6)
        self.assertRegex(lines[2], r"^met\s+IMAP busy class\s+>= 1.0x Dovecot, 0 error")
        self.assertRegex(lines[3], r"^NOT met\s+POP3 busy class")
        self.assertRegex(lines[4], r"^met\s+IMAP FETCH\s+<= 1.5x Dovecot\s+30.0\s+20.0\s+1.50$")
        self.assertRegex(lines[5], r"^not measured\s+IMAP SELECT huge")
        busy.samples = {"mailstack": {"errors": 3}}
        self.assertRegex(run.targetTable([busy]).splitlines()[2], r"^NOT met\s+IMAP busy")
