"""
mailstack side by side with a peer on the same data and the same machine:
Dovecot for IMAP and POP3, aiosmtpd (delivering to a Maildir with fsync) for
SMTP. Prints a table of figures and ratios; never passes or fails on speed.

    python -m bench.run [--quick] [--only smtp|imap|pop3] [--json FILE]

`make bench` runs the full set (bench/README.md explains the figures);
tests/test_bench.py runs --quick.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import clients, data, servers  # noqa: E402
from bench import scale  # noqa: E402

SECTIONS = ("smtp", "imap", "pop3")
# Idle sessions in one process and a big message's memory (bench/scale.py).
SECTIONS += ("scale",)


class Row:
    """One metric: a figure per server, the unit and which direction is better."""

    def __init__(self, section, key, label, unit, better):
        self.section = section
        self.key = key
        self.label = label
        self.unit = unit
        self.better = better            # "lower" or "higher"
        self.values = {}                # "mailstack"/"peer" -> float or None
        self.samples = {}               # raw measurements, for --json
        self.peerName = None

    def ratio(self):
        m, p = self.values.get("mailstack"), self.values.get("peer")
        if m is None or p is None or p == 0:
            return None
        return m / p

    def verdict(self):
        r = self.ratio()
        if r is None or r <= 0:
            return ""
        goodForMailstack = r < 1 if self.better == "lower" else r > 1
        factor = max(r, 1 / r)
        if factor < 1.1:
            return "about equal"
        return "%s %.1fx better" % ("mailstack" if goodForMailstack else self.peerName,
                                    factor)

    def asDict(self):
        return {"section": self.section, "key": self.key, "metric": self.label,
                "unit": self.unit, "better": self.better,
                "mailstack": self.values.get("mailstack"),
                "peer": self.values.get("peer"), "peer_name": self.peerName,
                "ratio": self.ratio(), "verdict": self.verdict(),
                "samples": self.samples}


class Bench(scale.ScaleSection):
    def __init__(self, sizes, top, peerPython, log):
        self.sizes = sizes
        self.top = top
        self.peerPython = peerPython
        self.log = log
        self.rows = []
        self.notes = []
        self.versions = {}
        self.dirs = {name: os.path.join(top, name, "var")
                     for name in ("mailstack", "dovecot", "aiosmtpd")}

    # -- plumbing --------------------------------------------------------

    def row(self, section, key, label, unit, better):
        for r in self.rows:
            if r.key == key:
                return r
        r = Row(section, key, label, unit, better)
        self.rows.append(r)
        return r

    def record(self, side, peerName, section, figures):
        """Store C{figures} (key -> (label, unit, better, value, samples))."""
        for key, (label, unit, better, value, samples) in figures.items():
            r = self.row(section, key, label, unit, better)
            r.values[side] = value
            r.samples[side] = samples
            if peerName:
                r.peerName = peerName

    def declare(self, section, specs, peerName):
        """Rows that must appear even when a side fails or is missing."""
        for key, label, unit, better in specs:
            r = self.row(section, key, label, unit, better)
            r.peerName = r.peerName or peerName
            r.values.setdefault("mailstack", None)
            r.values.setdefault("peer", None)

    def runSide(self, side, server, peerName, sections):
        """Start C{server}, run each of C{sections} against it, stop it."""
        t0 = time.monotonic()
        self.log("%s: %s ..." % ("+".join(sections), server.name))
        try:
            server.start()
            self.versions.setdefault(server.name, server.version())
            for section in sections:
                try:
                    self.record(side, peerName, section,
                                getattr(self, section)(server))
                except Exception as e:
                    self.notes.append("%s on %s failed: %s" % (
                        section, server.name, str(e).strip() or repr(e)))
                    self.log(traceback.format_exc())
        except Exception as e:
            self.notes.append("%s: %s did not start: %s" % (
                "+".join(sections), server.name, str(e).strip()))
            self.log(traceback.format_exc())
        finally:
            server.stop()
            if isinstance(server, servers.DovecotPeer):
                for line in server.complaints():
                    self.notes.append("dovecot log: " + line.strip())
        self.log("%s: %s done in %.1f s" % ("+".join(sections), server.name,
                                            time.monotonic() - t0))

    # -- SMTP --------------------------------------------------------------

    def smtpSpecs(self):
        out = []
        for n in self.sizes.smtpClients:
            who = "%d client%s" % (n, "" if n == 1 else "s")
            out += [("smtp_rate_c%d" % n, "SMTP %s: delivered" % who, "msg/s", "higher"),
                    ("smtp_p50_c%d" % n, "SMTP %s: latency p50" % who, "ms", "lower"),
                    ("smtp_p95_c%d" % n, "SMTP %s: latency p95" % who, "ms", "lower")]
        return out

    def smtp(self, server, counts=None, suffix="", workers=""):
        """
        The SMTP load at each of C{counts} clients (default: the sizes'),
        keys ending in C{suffix} and labels naming C{workers}.
        """
        s = self.sizes
        port = server.ports["smtp"]
        message = data.smtpMessage(s.smtpMessageSize)
        local, _, domain = data.SINK_USER.partition("@")
        dataDir = self.dirs["mailstack" if server.name == "mailstack" else "aiosmtpd"]
        newDir = os.path.join(dataDir, "mail", domain, local, "new")

        def load(clientCount, seconds):
            """Run the load into an empty INBOX; check every message landed."""
            r = clients.smtpLoad(port, clientCount, seconds, message, data.SENDER,
                                 data.SINK_USER)
            if r["errors"] or not r["latencies"]:
                raise RuntimeError("SMTP load with %d clients: %s" % (
                    clientCount, r["errors"][:3] or "nothing delivered"))
            names = os.listdir(newDir)
            if len(names) < r["messages"]:
                raise RuntimeError("SMTP: %d messages accepted but %d in %s"
                                   % (r["messages"], len(names), newDir))
            # Empty the INBOX again: delivery may cost more in a fuller one.
            for name in names:
                os.unlink(os.path.join(newDir, name))
            return r

        load(1, s.smtpWarmup)       # warm-up: connections, code paths, threads
        figures = {}
        for n in counts or s.smtpClients:
            r = load(n, s.smtpSeconds)
            lat = r["latencies"]
            who = "%d client%s%s" % (n, "" if n == 1 else "s", workers)
            info = {"messages": r["messages"], "seconds": r["elapsed"]}
            figures["smtp_rate_c%d%s" % (n, suffix)] = ("SMTP %s: delivered" % who, "msg/s",
                                                        "higher", r["rate"], info)
            figures["smtp_p50_c%d%s" % (n, suffix)] = ("SMTP %s: latency p50" % who, "ms",
                                                       "lower",
                                                       1000 * clients.percentile(lat, 50), info)
            figures["smtp_p95_c%d%s" % (n, suffix)] = ("SMTP %s: latency p95" % who, "ms",
                                                       "lower",
                                                       1000 * clients.percentile(lat, 95), info)
        return figures

    # -- SMTP with [server] workers = 2 ---------------------------------------

    WORKERS = 2

    def smtpWorkersSpecs(self):
        n = max(self.sizes.smtpClients)
        who = "SMTP %d clients, %d workers" % (n, self.WORKERS)
        key = "_c%d_w%d" % (n, self.WORKERS)
        return [("smtp_rate" + key, who + ": delivered", "msg/s", "higher"),
                ("smtp_p50" + key, who + ": latency p50", "ms", "lower"),
                ("smtp_p95" + key, who + ": latency p95", "ms", "lower")]

    def smtpWorkers(self, server):
        """The busiest SMTP load again, against mailstack with C{[server] workers = 2}."""
        return self.smtp(server, counts=(max(self.sizes.smtpClients),),
                         suffix="_w%d" % (self.WORKERS,), workers=", %d workers" % (self.WORKERS,))

    def smtpWorkersPeer(self):
        """The workers rows compare with the peer's figures for the same load."""
        for key, _, _, _ in self.smtpWorkersSpecs():
            same = self.row("smtp", key.rsplit("_w", 1)[0], None, None, None)
            mine = self.row("smtp", key, None, None, None)
            mine.values["peer"] = same.values.get("peer")
            mine.peerName = same.peerName

    # -- IMAP --------------------------------------------------------------

    def imapSpecs(self):
        s = self.sizes
        return [
            ("imap_select_first", "IMAP LOGIN+SELECT %d msgs, first (no index yet)"
             % s.bulk, "ms", "lower"),
            ("imap_select", "IMAP LOGIN+SELECT %d msgs" % s.bulk, "ms", "lower"),
            ("imap_fetch_flags", "IMAP FETCH 1:* (FLAGS RFC822.SIZE), %d msgs" % s.bulk,
             "ms", "lower"),
            ("imap_fetch_bodies", "IMAP FETCH %d full bodies (BODY.PEEK[])"
             % s.fetchBodies, "ms", "lower"),
            ("imap_search_text", "IMAP SEARCH TEXT over %d msgs" % s.search, "ms",
             "lower"),
            ("imap_idle_rss", "IMAP IDLE x%d: RSS per session" % s.idleSessions,
             "KiB", "lower"),
            ("imap_idle_private", "IMAP IDLE x%d: private memory per session"
             % s.idleSessions,
             "KiB", "lower"),
        ] + self.imapLoadSpecs()

    def imap(self, server):
        s = self.sizes
        port = server.ports["imap"]
        specs = {k: (label, unit, better) for k, label, unit, better in self.imapSpecs()}
        figures = {}

        def put(key, value, samples):
            figures[key] = specs[key] + (value, samples)

        # Memory first, on the freshly started server (after one warm-up
        # session), before big responses have grown the heap.
        rss, private, info = self.idleMemory(server)
        put("imap_idle_rss", rss, info)
        put("imap_idle_private", private, info)

        def loginSelect(user):
            c = clients.IMAP(port)
            c.login(user, data.PASSWORD)
            return c, c.command(b"SELECT INBOX")

        def checkExists(resp, count):
            if b"* %d EXISTS" % (count,) not in resp:
                raise RuntimeError("SELECT: expected %d EXISTS, got %r"
                                   % (count, resp[:300]))

        t, (c, resp) = clients.timed(loginSelect, data.BULK_USER)
        c.logout()
        checkExists(resp, s.bulk)
        put("imap_select_first", 1000 * t, [t])

        samples = []
        for _ in range(s.repeats):
            t, (c, resp) = clients.timed(loginSelect, data.BULK_USER)
            c.logout()
            checkExists(resp, s.bulk)
            samples.append(t)
        put("imap_select", 1000 * clients.median(samples), samples)

        def inSession(user, command, check):
            """Median time of C{command}, each run in a fresh selected session."""
            times = []
            for i in range(s.repeats + 1):       # the first run warms up
                c, _ = loginSelect(user)
                t, resp = clients.timed(c.command, command)
                c.logout()
                check(resp)
                if i:
                    times.append(t)
            return 1000 * clients.median(times), times

        def fetchCount(resp, count):
            got = resp.count(b" FETCH (")
            if got != count:
                raise RuntimeError("FETCH: expected %d responses, got %d" % (count, got))

        put("imap_fetch_flags", *inSession(
            data.BULK_USER, b"FETCH 1:* (FLAGS RFC822.SIZE)",
            lambda resp: fetchCount(resp, s.bulk)))

        first = s.bulk // 2 + 1
        put("imap_fetch_bodies", *inSession(
            data.BULK_USER, b"FETCH %d:%d BODY.PEEK[]" % (first, first + s.fetchBodies - 1),
            lambda resp: fetchCount(resp, s.fetchBodies)))

        hits = len(range(0, s.search, data.NEEDLE_EVERY))

        def searchCheck(resp):
            for line in resp.split(b"\r\n"):
                if line.startswith(b"* SEARCH"):
                    if len(line.split()) - 2 == hits:
                        return
                    raise RuntimeError("SEARCH: expected %d hits: %r" % (hits, line[:200]))
            raise RuntimeError("SEARCH: no answer: %r" % (resp[:200],))

        put("imap_search_text", *inSession(
            data.SEARCH_USER, b'SEARCH TEXT "%s"' % (data.NEEDLE.encode(),), searchCheck))
        figures.update(self.imapLoad(server))
        return figures

    # -- IMAP: login, the huge folder, the busy class (issue 16) ---------

    def imapLoadSpecs(self):
        s = self.sizes
        return [
            ("imap_login", "IMAP LOGIN latency, {PLAIN} user", "ms", "lower"),
            ("imap_select_huge_first", "IMAP LOGIN+SELECT %d msgs, first ever" % s.huge,
             "ms", "lower"),
            ("imap_select_huge", "IMAP LOGIN+SELECT %d msgs, warm" % s.huge, "ms", "lower"),
            ("imap_busy", "IMAP busy class: %d clients sharing one %d-msg account"
             % (s.busyClients, data.BUSY_MESSAGES), "sessions/s", "higher"),
        ]

    def imapLoad(self, server):
        """
        LOGIN latency (connect, greeting, LOGIN: median), SELECT of the huge
        folder (the first ever, then warm: median of the repeats) and the
        busy class (clients.imapBusy), whose error replies become a note.
        """
        s = self.sizes
        port = server.ports["imap"]
        specs = {k: (label, unit, better) for k, label, unit, better in self.imapLoadSpecs()}
        figures = {}

        def login():
            c = clients.IMAP(port)
            c.login(data.BULK_USER, data.PASSWORD)
            return c

        times = []
        for i in range(s.loginRepeats + 1):      # the first run warms up
            t, c = clients.timed(login)
            c.logout()
            if i:
                times.append(t)
        figures["imap_login"] = specs["imap_login"] + (1000 * clients.median(times), times)

        def selectHuge():
            c = clients.IMAP(port)
            c.login(data.HUGE_USER, data.PASSWORD)
            resp = c.command(b"SELECT INBOX")
            c.logout()
            if b"* %d EXISTS" % (s.huge,) not in resp:
                raise RuntimeError("SELECT: expected %d EXISTS, got %r" % (s.huge, resp[:300]))

        t, _ = clients.timed(selectHuge)
        figures["imap_select_huge_first"] = specs["imap_select_huge_first"] + (1000 * t, [t])
        times = [clients.timed(selectHuge)[0] for _ in range(s.repeats)]
        figures["imap_select_huge"] = specs["imap_select_huge"] + (
            1000 * clients.median(times), times)

        firstUIDs = list(range(1, s.busyClients + 1))  # the messages the clients delete first
        busy = clients.imapBusy(port, s.busyClients, s.busySeconds, data.CLASS_USER,
                                data.PASSWORD, data.smtpMessage(4096), firstUIDs)
        if busy["errors"]:
            self.notes.append("%s: IMAP busy class: %d error replies (first: %s)" % (
                server.name, len(busy["errors"]), busy["errors"][0]))
        figures["imap_busy"] = specs["imap_busy"] + (
            busy["rate"], {"sessions": busy["sessions"], "errors": len(busy["errors"]),
                           "elapsed": busy["elapsed"]})
        return figures

    def idleMemory(self, server):
        """
        Open sizes.idleSessions IMAP sessions (one user each), SELECT, IDLE.

        @return: C{(rss, private, info)}: the growth of the server's memory (all
            its processes) per session in KiB, and the raw readings.
        """
        s = self.sizes
        port = server.ports["imap"]
        # Warm-up session: code paths loaded before the baseline.
        c = clients.IMAP(port)
        c.login(data.idleUser(0), data.PASSWORD)
        c.command(b"SELECT INBOX")
        c.done(c.idle())
        c.logout()
        time.sleep(s.settle)
        before = servers.memoryKiB(server.pids())
        sessions = []
        try:
            for n in range(s.idleSessions):
                c = clients.IMAP(port)
                sessions.append([c, None])
                c.login(data.idleUser(n), data.PASSWORD)
                c.command(b"SELECT INBOX")
                sessions[-1][1] = c.idle()
            time.sleep(s.settle)
            pids = server.pids()
            after = servers.memoryKiB(pids)
        finally:
            for c, tag in sessions:
                try:
                    if tag:
                        c.done(tag)
                except (clients.ProtocolError, OSError):
                    pass
                c.logout()
        n = s.idleSessions
        info = {"before_kib": before, "after_kib": after, "processes": len(pids)}
        return (after[0] - before[0]) / n, (after[1] - before[1]) / n, info

    # -- POP3 --------------------------------------------------------------

    def pop3Specs(self):
        s = self.sizes
        return [
            ("pop3_stat_list", "POP3 LOGIN+STAT+LIST %d msgs" % s.bulk, "ms", "lower"),
            ("pop3_retr_rate", "POP3 RETR %d msgs, one session" % s.retr, "msg/s",
             "higher"),
            ("pop3_retr_mbps", "POP3 RETR %d msgs, one session" % s.retr, "MB/s",
             "higher"),
            ("pop3_busy", "POP3 busy class: %d clients polling one %d-msg maildrop"
             % (s.busyClients, data.BUSY_MESSAGES), "sessions/s", "higher"),
        ]

    def pop3(self, server):
        s = self.sizes
        port = server.ports["pop3"]
        specs = {k: (label, unit, better) for k, label, unit, better in self.pop3Specs()}
        figures = {}

        def statList():
            p = clients.POP3(port)
            p.login(data.BULK_USER, data.PASSWORD)
            stat = p.command(b"STAT")
            listing = p.multi(b"LIST")
            return p, stat, listing

        samples = []
        for i in range(s.repeats + 1):           # the first run warms up
            t, (p, stat, listing) = clients.timed(statList)
            p.quit()
            if stat.split()[1] != b"%d" % (s.bulk,) or listing.count(b"\r\n") != s.bulk:
                raise RuntimeError("POP3 STAT/LIST: %r, %d lines"
                                   % (stat, listing.count(b"\r\n")))
            if i:
                samples.append(t)
        figures["pop3_stat_list"] = specs["pop3_stat_list"] + (
            1000 * clients.median(samples), samples)

        # Up to 3 runs, fewer when the first ones already took long (median).
        rates, mbps, runs = [], [], []
        spent = 0.0
        while len(runs) < 3 and (not runs or spent < s.retrBudget):
            p = clients.POP3(port)
            p.login(data.BULK_USER, data.PASSWORD)
            total = 0
            t0 = time.perf_counter()
            for n in range(1, s.retr + 1):
                total += len(p.multi(b"RETR %d" % (n,)))
            t = time.perf_counter() - t0
            p.quit()
            rates.append(s.retr / t)
            mbps.append(total / t / 1e6)
            runs.append({"seconds": t, "octets": total})
            spent += t
        figures["pop3_retr_rate"] = specs["pop3_retr_rate"] + (
            clients.median(rates), runs)
        figures["pop3_retr_mbps"] = specs["pop3_retr_mbps"] + (
            clients.median(mbps), runs)

        busy = clients.pop3Busy(port, s.busyClients, s.busySeconds, data.BUSY_USER,
                                data.PASSWORD)
        if busy["errors"]:
            self.notes.append("%s: POP3 busy class: %d error replies (first: %s)" % (
                server.name, len(busy["errors"]), busy["errors"][0]))
        figures["pop3_busy"] = specs["pop3_busy"] + (
            busy["rate"], {"sessions": busy["sessions"], "errors": len(busy["errors"]),
                           "elapsed": busy["elapsed"]})
        return figures

    # -- the busy classes with [server] workers = 2 ----------------------------

    # Seconds of busy-class load before the measured run (at most the run's own).
    BUSY_WARM_UP = 1.5

    def busyWorkersSpecs(self, sections):
        """The busy-class rows of C{sections} (imap, pop3) for the server of L{WORKERS} processes."""
        out = []
        for section in sections:
            specs = self.imapLoadSpecs() if section == "imap" else self.pop3Specs()
            spec = {k: rest for k, *rest in specs}[section + "_busy"]
            out.append((section, "%s_busy_w%d" % (section, self.WORKERS),
                        "%s, %d workers" % (spec[0], self.WORKERS), spec[1], spec[2]))
        return out

    def busyWorkers(self, server):
        """
        The IMAP and POP3 busy classes again (those of the group being run),
        against mailstack with C{[server] workers = 2} over the same data.
        The IMAP clients first delete the account's lowest UIDs now (the
        1-process run expunged UIDs 1 to n and appended others).
        """
        s = self.sizes
        warmUp = min(self.BUSY_WARM_UP, s.busySeconds)
        figures = {}
        for section, key, label, unit, better in self.busyWorkersSpecs(self._busyGroup):
            if section == "imap":
                uids = self._lowestUIDs(server)
                # A short warm-up run (its UIDs then measured ones) brings every
                # process to where the 1-process figure's server was: code paths
                # loaded, the mailbox's index read.
                warm = clients.imapBusy(server.ports["imap"], s.busyClients, warmUp,
                                        data.CLASS_USER, data.PASSWORD,
                                        data.smtpMessage(4096), uids)
                uids = self._lowestUIDs(server)
                busy = clients.imapBusy(server.ports["imap"], s.busyClients, s.busySeconds,
                                        data.CLASS_USER, data.PASSWORD,
                                        data.smtpMessage(4096), uids)
            else:
                warm = clients.pop3Busy(server.ports["pop3"], s.busyClients, warmUp,
                                        data.BUSY_USER, data.PASSWORD)
                busy = clients.pop3Busy(server.ports["pop3"], s.busyClients, s.busySeconds,
                                        data.BUSY_USER, data.PASSWORD)
            busy["errors"] = warm["errors"] + busy["errors"]
            if busy["errors"]:
                self.notes.append("%s, %d workers: %s busy class: %d error replies (first: %s)"
                                  % (server.name, self.WORKERS, section.upper(),
                                     len(busy["errors"]), busy["errors"][0]))
            figures[key] = (label, unit, better, busy["rate"],
                            {"sessions": busy["sessions"], "errors": len(busy["errors"]),
                             "elapsed": busy["elapsed"]})
        return figures

    def _lowestUIDs(self, server):
        """The busy-class clients' first UIDs: the class account's lowest now."""
        c = clients.IMAP(server.ports["imap"])
        c.login(data.CLASS_USER, data.PASSWORD)
        c.command(b"SELECT INBOX")
        found = c.command(b"UID SEARCH ALL")
        c.logout()
        uids = sorted(int(n) for line in found.splitlines()
                      if line.startswith(b"* SEARCH") for n in line.split()[2:])
        if len(uids) < self.sizes.busyClients:
            raise RuntimeError("IMAP busy class: %d messages left" % (len(uids),))
        return uids[:self.sizes.busyClients]

    def busyWorkersPeer(self, sections):
        """The workers rows compare with the peer's figures for the same load."""
        for section, key, _, _, _ in self.busyWorkersSpecs(sections):
            same = self.row(section, section + "_busy", None, None, None)
            mine = self.row(section, key, None, None, None)
            mine.values["peer"] = same.values.get("peer")
            mine.peerName = same.peerName

    def scaling(self):
        """
        {key of a 1-process row: (1-process figure, L{WORKERS}-process
        figure, their ratio)} for the rows measured both ways.
        """
        byKey = {r.key: r for r in self.rows}
        out = {}
        for key in ("imap_busy", "pop3_busy", "smtp_rate_c%d" % max(self.sizes.smtpClients)):
            one, more = byKey.get(key), byKey.get("%s_w%d" % (key, self.WORKERS))
            if one is None or more is None:
                continue
            a, b = one.values.get("mailstack"), more.values.get("mailstack")
            out[key] = (a, b, b / a if a and b is not None else None)
        return out

    # -- the whole run -----------------------------------------------------

    def run(self, sections):
        self.log("data: writing the Maildirs under %s" % (self.top,))
        t0 = time.monotonic()
        smtpOnly = dataclasses.replace(self.sizes, bulk=0, search=0, idleSessions=0)
        data.populate([self.dirs["mailstack"], self.dirs["dovecot"]],
                      smtpOnly if set(sections) <= {"smtp", "scale"} else self.sizes)
        data.populate([self.dirs["aiosmtpd"]], smtpOnly)
        self.log("data: done in %.1f s" % (time.monotonic() - t0,))
        # SMTP against aiosmtpd; IMAP then POP3 against one Dovecot. Each
        # group gets freshly started servers (IMAP measures IDLE memory first).
        groups = [g for g in (["smtp"], [s for s in ("imap", "pop3") if s in sections])
                  if g and set(g) <= set(sections)]
        groups += [["scale"]] if "scale" in sections else []  # its own servers, last
        for group in groups:
            peerName = "aiosmtpd" if group == ["smtp"] else "dovecot"
            for section in group:
                self.declare(section, getattr(self, section + "Specs")(), peerName)
            ms = (scale.ScaleMailstack if group == ["scale"] else servers.Mailstack)(
                os.path.join(self.top, "mailstack"), self.dirs["mailstack"])
            self.runSide("mailstack", ms, None, group)
            busyGroup = [g for g in group if g in ("imap", "pop3")]
            if busyGroup:  # the busy classes again with [server] workers
                self._busyGroup = busyGroup
                for section, key, label, unit, better in self.busyWorkersSpecs(busyGroup):
                    self.declare(section, [(key, label, unit, better)], peerName)
                os.makedirs(os.path.join(self.top, "mailstack-workers"), exist_ok=True)
                self.runSide("mailstack", servers.Mailstack(
                    os.path.join(self.top, "mailstack-workers"), self.dirs["mailstack"],
                    workers=self.WORKERS), None, ["busyWorkers"])
            if group == ["smtp"]:  # and again with [server] workers
                self.declare("smtp", self.smtpWorkersSpecs(), peerName)
                os.makedirs(os.path.join(self.top, "mailstack-workers"), exist_ok=True)
                self.runSide("mailstack", servers.Mailstack(
                    os.path.join(self.top, "mailstack-workers"), self.dirs["mailstack"],
                    workers=self.WORKERS), None, ["smtpWorkers"])
            if group == ["smtp"]:
                if self.peerPython is None:
                    self.notes.append("smtp peer skipped: aiosmtpd not installed "
                                      "(`make bench` installs it into bench/.venv)")
                    continue
                peer = servers.AiosmtpdPeer(os.path.join(self.top, "aiosmtpd"),
                                            self.dirs["aiosmtpd"], self.peerPython)
            else:
                why = servers.dovecotMissing()
                if why:
                    self.notes.append("%s peer skipped: %s" % ("+".join(group), why))
                    continue
                peer = servers.DovecotPeer(os.path.join(self.top, "dovecot"),
                                           self.dirs["dovecot"])
            self.runSide("peer", peer, peer.name, group)
            if group == ["smtp"]:
                self.smtpWorkersPeer()
            if busyGroup:
                self.busyWorkersPeer(busyGroup)


def machine(path):
    info = {"cpus": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    info["filesystem"] = filesystemOf(path)
    return info


# A 1-minute load average above this before the run: other work was running
# and skews the figures (the run itself raises it, so only "before" counts).
BUSY = 1.0


def loadAverage():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


def filesystemOf(path):
    """The type and device of the filesystem holding C{path} (from /proc/mounts)."""
    best = ("", "?", "?")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and \
                        len(mnt) >= len(best[0]):
                    best = (mnt, fstype, dev)
    except OSError:
        pass
    return "%s on %s" % (best[1], best[2])


def fmt(value):
    if value is None:
        return "-"
    if abs(value) >= 100:
        return "%.0f" % value
    if abs(value) >= 10:
        return "%.1f" % value
    return "%.2f" % value


def table(rows):
    header = ("metric", "unit", "mailstack", "peer", "value", "ratio m/p", "better",
              "verdict")
    lines = [header]
    for r in rows:
        ratio = r.ratio()
        lines.append((r.label, r.unit, fmt(r.values.get("mailstack")), r.peerName or "-",
                      fmt(r.values.get("peer")),
                      "-" if ratio is None else "%.2f" % ratio, r.better, r.verdict()))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {2, 4, 5}
    out = []
    for n, line in enumerate(lines):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# Issue 16's targets: (row key, target in words, test of the row).
TARGETS = [
    ("imap_busy", ">= 1.0x Dovecot, 0 error replies",
     lambda r: r.ratio() is not None and r.ratio() >= 1.0 and not r.samples.get(
         "mailstack", {}).get("errors")),
    ("pop3_busy", ">= 1.0x Dovecot", lambda r: r.ratio() is not None and r.ratio() >= 1.0),
    ("imap_login", "<= 1.5x Dovecot", lambda r: r.ratio() is not None and r.ratio() <= 1.5),
    ("imap_select", "<= 1.5x Dovecot", lambda r: r.ratio() is not None and r.ratio() <= 1.5),
    ("imap_fetch_flags", "<= 1.5x Dovecot",
     lambda r: r.ratio() is not None and r.ratio() <= 1.5),
    ("pop3_stat_list", "<= 1.5x Dovecot",
     lambda r: r.ratio() is not None and r.ratio() <= 1.5),
    ("imap_search_text", "<= 2x Dovecot",
     lambda r: r.ratio() is not None and r.ratio() <= 2.0),
    ("imap_select_huge", "< 1000 ms (warm)",
     lambda r: r.values.get("mailstack") is not None and r.values["mailstack"] < 1000),
    ("imap_select_huge_first", "< 10000 ms (first ever)",
     lambda r: r.values.get("mailstack") is not None and r.values["mailstack"] < 10000),
    ("smtp_rate_c10", ">= 1.5x aiosmtpd",
     lambda r: r.ratio() is not None and r.ratio() >= 1.5),
    ("smtp_p95_c10", "<= aiosmtpd's", lambda r: r.ratio() is not None and r.ratio() <= 1.0),
    # the same load with [server] workers = 2
    ("smtp_rate_c10_w2", ">= 1.5x aiosmtpd",
     lambda r: r.ratio() is not None and r.ratio() >= 1.5),
    ("smtp_p95_c10_w2", "<= aiosmtpd's", lambda r: r.ratio() is not None and r.ratio() <= 1.0),
    # the busy classes with [server] workers = 2
    ("imap_busy_w2", ">= 1.0x Dovecot, 0 error replies",
     lambda r: r.ratio() is not None and r.ratio() >= 1.0 and not r.samples.get(
         "mailstack", {}).get("errors")),
    ("pop3_busy_w2", ">= 1.0x Dovecot", lambda r: r.ratio() is not None and r.ratio() >= 1.0),
]

TARGETS += scale.TARGETS


# Issue 16 asks how sessions/s scale from 1 to 2 workers: reported, not judged.
SCALING_GOAL = "report: 2 workers / 1"


def targetTable(rows, scaling=None):
    """
    Each issue-16 target the run measured: its figure, ratio and whether it
    is met; then how each load measured with 1 and 2 processes scaled
    (C{scaling}, L{Bench.scaling}), the 2-process figure over the 1-process
    one in the ratio column.
    """
    byKey = {r.key: r for r in rows}
    header = ("verdict", "issue 16 target", "goal", "mailstack", "peer", "ratio m/p")
    lines = [header]
    for key, goal, met in TARGETS:
        r = byKey.get(key)
        if r is None:
            continue
        ratio = r.ratio()
        if r.values.get("mailstack") is None:
            verdict = "not measured"
        else:
            verdict = "met" if met(r) else "NOT met"
        lines.append((verdict, r.label, goal, fmt(r.values.get("mailstack")),
                      fmt(r.values.get("peer")), "-" if ratio is None else "%.2f" % ratio))
    for key, (one, two, ratio) in (scaling or {}).items():
        r = byKey[key]
        lines.append(("report", "%s: sessions/s scale from 1 to 2 workers" % (r.label,)
                      if r.unit == "sessions/s" else "%s: scale from 1 to 2 workers" % (r.label,),
                      SCALING_GOAL, "%s -> %s" % (fmt(one), fmt(two)), "-",
                      "-" if ratio is None else "%.2f" % ratio))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(c.rjust(w) if i in (3, 4, 5) else c.ljust(w)
                             for i, (c, w) in enumerate(zip(line, widths))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


FAIRNESS = [
    "Each server is a separate process on 127.0.0.1 (mailstack: twistd -n, "
    "default reactor); the load generators (Python threads, raw sockets) run "
    "on the same machine and share its CPUs.",
    "Same data for both: identical Maildir files, users in one passwd-file "
    "format, {PLAIN} passwords; neither has an index before its first SELECT.",
    "Peers: stock Dovecot (its defaults: one imap/pop3 process per session); "
    "aiosmtpd with a handler that writes each message to the recipient's Maildir "
    "(tmp/, fsync, rename to new/, fsync new/) in a thread before 250, as "
    "mailstack does.",
    "IMAP/POP3 times: median of the repeats, each in a fresh session, after one "
    "warm-up run; SMTP: sessions kept open, one transaction after another; "
    "IDLE memory: growth of all the server's processes from /proc divided by "
    "the sessions: VmRSS, and private memory (Private_Dirty: pages no other "
    "process maps, what a session really adds when processes share libraries).",
    "ratio = mailstack / peer; 'better' says whether lower or higher is better "
    "for that metric.",
]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Benchmark mailstack side by side with Dovecot (IMAP, POP3) "
                    "and aiosmtpd (SMTP).")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the harness works (seconds)")
    parser.add_argument("--only", action="append", choices=SECTIONS,
                        help="run only this protocol (may be given more than once)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--peer-python", metavar="PYTHON",
                        help="the Python that has aiosmtpd (default: bench/.venv's, "
                             "else this one)")
    parser.add_argument("--workdir", metavar="DIR",
                        help="where the data go (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the data, configs and logs afterwards")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)

    sizes = data.QUICK if args.quick else data.FULL
    sections = [s for s in SECTIONS if not args.only or s in args.only]

    def log(text):
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    top = tempfile.mkdtemp(prefix="mailstack-bench-", dir=args.workdir)
    # Dovecot reads mail as an unprivileged user when run as root.
    os.chmod(top, 0o711)
    started = time.monotonic()
    loadBefore = loadAverage()
    peerPython = servers.peerPython(args.peer_python) if "smtp" in sections else None
    bench = Bench(sizes, top, peerPython, log)
    try:
        bench.run(sections)
    finally:
        if args.keep:
            log("kept %s" % (top,))
        else:
            shutil.rmtree(top, ignore_errors=True)
    info = machine(top)
    info["versions"] = bench.versions
    info["seconds"] = round(time.monotonic() - started, 1)
    info["mode"] = "quick" if args.quick else "full"
    info["load_before"], info["load_after"] = loadBefore, loadAverage()

    print("mailstack benchmark (%s), %s" % (info["mode"], info["date"]))
    print("machine: %s CPUs (%s), %s GiB RAM, Linux %s, Python %s, data on %s"
          % (info["cpus"], info.get("cpu", "?"), info.get("memory_gib", "?"),
             info["kernel"], info["python"], info["filesystem"]))
    print("servers: %s" % (", ".join(sorted(bench.versions.values())) or "-",))
    print("load average (1 min) before/after: %s/%s%s" % (
        info["load_before"], info["load_after"],
        "  -- other work was running: figures are noisy"
        if info["load_before"] > BUSY else ""))
    print()
    print(table(bench.rows))
    print()
    print(targetTable(bench.rows, bench.scaling()))
    print()
    for note in FAIRNESS:
        print("* " + note)
    for note in bench.notes:
        print("! " + note)
    print("(%s s in all)" % (info["seconds"],))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "sizes": dataclasses.asdict(sizes),
                       "results": [r.asDict() for r in bench.rows],
                       "scaling": {key: {"workers_1": one, "workers_2": two, "ratio": ratio}
                                   for key, (one, two, ratio) in bench.scaling().items()},
                       "notes": FAIRNESS, "problems": bench.notes}, f, indent=2)
    failed = [r for r in bench.rows if r.values.get("mailstack") is None]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
