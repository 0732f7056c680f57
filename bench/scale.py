"""
The scale section of the benchmark (issue 16's last two targets):

  - idle sessions: SESSIONS IMAP sessions of one account idling on its INBOX
    in one server process (opened by bench/idlegen.py in a process of its
    own), the server's memory growth, then one delivery by SMTP and how long
    until every session has its EXISTS;
  - a big message: BIG octets in by SMTP, out by IMAP (FETCH BODY[]) and by
    POP3 (RETR), and how far the server's resident memory rises above what
    it was before each (its peak: VmHWM, reset through /proc/PID/clear_refs).

Both users are added here, to the users file and Maildirs of the data
directory the running server reads (it sees new users at once).
"""

import dataclasses
import json
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time

from bench import data, servers

IDLE_USER = "idle@" + data.DOMAIN      # every idle session's account
BIG_USER = "big@" + data.DOMAIN        # receives the big message


@dataclasses.dataclass(frozen=True)
class ScaleSizes:
    sessions: int       # idle sessions in one process
    inflight: int       # sessions being opened at once by the generator
    big: int            # octets of the big message
    settle: float       # seconds before a memory reading (and of the idle CPU reading)


FULL = ScaleSizes(sessions=10000, inflight=64, big=100 * 1024 * 1024, settle=1.0)
QUICK = ScaleSizes(sessions=20, inflight=8, big=2 * 1024 * 1024, settle=0.1)


def addUsers(dataDir, owner=None):
    """Add IDLE_USER (3 small messages) and BIG_USER (empty) to C{dataDir}."""
    path = os.path.join(dataDir, "users")
    with open(path) as f:
        known = f.read()
    with open(path, "a") as f:
        for user in (IDLE_USER, BIG_USER):
            if user + ":" not in known:
                f.write("%s:{PLAIN}%s:::::\n" % (user, data.PASSWORD))
    maker = data.MessageMaker()
    for user, count in ((IDLE_USER, 3), (BIG_USER, 0)):
        local, _, domain = user.partition("@")
        top = os.path.join(dataDir, "mail", domain, local)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(top, sub), exist_ok=True)
        for n in range(count):
            message, date = maker.make(n, user)
            name = "%d.M%dP3Q%d.bench,S=%d:2,S" % (date, n, n, len(message))
            with open(os.path.join(top, "cur", name), "wb") as f:
                f.write(message)
        if owner is not None:
            for directory, _, files in os.walk(top):
                os.chown(directory, *owner)
                for name in files:
                    os.chown(os.path.join(directory, name), *owner)


def cpuSeconds(pids):
    """User and system CPU seconds used so far by C{pids} (from /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % (pid,)) as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def deliver(port, recipient, message):
    """Send C{message} by SMTP; @return: when the 250 came (time.monotonic())."""
    with smtplib.SMTP("127.0.0.1", port, timeout=600) as s:
        s.sendmail(data.SENDER, [recipient], message)
        return time.monotonic()


def idleSessions(server, sizes, log):
    """
    @return: a dict: sessions idling, the seconds it took to open them, the
        server's RSS and Private_Dirty before and after (KiB), the delivery's
        latency to the first and the last session, how many saw it, and the
        generator's error (None when all opened).
    """
    pids = server.pids()
    time.sleep(sizes.settle)
    before = servers.memoryKiB(pids)
    generator = subprocess.Popen(
        [sys.executable, "-m", "bench.idlegen", str(server.ports["imap"]), IDLE_USER,
         data.PASSWORD, str(sizes.sessions), str(sizes.inflight)],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        opened = json.loads(generator.stdout.readline() or "{}")
        log("scale: %s idle sessions in %.1f s%s" % (
            opened.get("idling"), opened.get("seconds", 0),
            "; " + opened["error"] if opened.get("error") else ""))
        cpu0, t0 = cpuSeconds(pids), time.monotonic()
        time.sleep(2 * sizes.settle)
        idleCPU = (cpuSeconds(pids) - cpu0) / (time.monotonic() - t0)
        after = servers.memoryKiB(pids)
        sent = time.monotonic()
        accepted = deliver(server.ports["smtp"], IDLE_USER, data.smtpMessage(2048))
        news = json.loads(generator.stdout.readline() or "{}")
        generator.wait(timeout=120)
    finally:
        if generator.poll() is None:
            generator.kill()
            generator.wait()
    result = {"sessions": opened.get("idling", 0), "open_seconds": opened.get("seconds"),
              "error": opened.get("error"), "rss_before_kib": before[0],
              "rss_after_kib": after[0], "private_before_kib": before[1],
              "private_after_kib": after[1], "smtp_seconds": accepted - sent,
              "seen": news.get("seen", 0), "idle_cpu": idleCPU}
    if news.get("last") is not None:
        result["news_first_s"] = news["first"] - accepted
        result["news_last_s"] = news["last"] - accepted
        result["news_last_from_send_s"] = news["last"] - sent
    return result


class ScaleMailstack(servers.Mailstack):
    """
    The benchmark's mailstack with room for the scale section: no cap on a
    listener's connections, and messages and literals up to 1 GiB.
    """

    def config(self):
        text = servers.Mailstack.config(self)
        text = text.replace("[limits]\n", "[limits]\nmessage_size = 1073741824\n"
                            "literal_size = 1073741824\n", 1)
        return text.replace("allow_plaintext_auth = true\n",
                            "allow_plaintext_auth = true\nmax_connections = 0\n")


class PeakMemory:
    """
    The peak resident memory of a process during a piece of work: VmHWM,
    reset first through /proc/PID/clear_refs (Linux 4.0 and later); where
    that cannot be written, the highest VmRSS sampled every 20 ms instead.
    """

    def __init__(self, pid):
        self.pid = pid

    def _status(self, name):
        try:
            with open("/proc/%d/status" % (self.pid,)) as f:
                for line in f:
                    if line.startswith(name):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def __enter__(self):
        self.base = self._status("VmRSS:")
        self.sampled = self.base
        try:
            with open("/proc/%d/clear_refs" % (self.pid,), "w") as f:
                f.write("5")
            self.hwm = True
        except OSError:
            self.hwm = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.sampled = max(self.sampled, self._status("VmRSS:"))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        peak = self._status("VmHWM:") if self.hwm else self.sampled
        self.peak = max(peak, self.sampled)
        self.growth = self.peak - self.base


def _discard(sock, count, buffered=b""):
    """Read and drop C{count} octets from C{sock} (C{buffered} already read)."""
    left = count - len(buffered)
    while left > 0:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("closed with %d octets to go" % (left,))
        left -= len(chunk)


def _readUntil(sock, marker, buffered=b""):
    while marker not in buffered:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before %r" % (marker,))
        buffered += chunk
    return buffered


def fetchBig(port, size):
    """FETCH 1 BODY.PEEK[] of BIG_USER's INBOX, the literal read and dropped."""
    s = socket.create_connection(("127.0.0.1", port), timeout=600)
    try:
        got = _readUntil(s, b"\r\n")
        s.sendall(b"a LOGIN %s %s\r\nb SELECT INBOX\r\n"
                  % (BIG_USER.encode(), data.PASSWORD.encode()))
        got = _readUntil(s, b"\r\nb OK", got)
        s.sendall(b"c FETCH 1 BODY.PEEK[]\r\n")
        got = _readUntil(s, b"}\r\n", got.partition(b"\r\nb OK")[2])
        head, _, rest = got.partition(b"}\r\n")
        literal = int(head.rpartition(b"{")[2])
        if literal < size:
            raise RuntimeError("FETCH: a literal of %d octets" % (literal,))
        _discard(s, literal, rest[:literal])
        _readUntil(s, b"c OK", rest[literal:])
        s.sendall(b"d LOGOUT\r\n")
    finally:
        s.close()


def retrBig(port, size):
    """POP3 RETR 1 of BIG_USER, read to its final dot and dropped."""
    s = socket.create_connection(("127.0.0.1", port), timeout=600)
    try:
        got = _readUntil(s, b"\r\n")
        s.sendall(b"USER %s\r\nPASS %s\r\nRETR 1\r\n" % (BIG_USER.encode(),
                                                         data.PASSWORD.encode()))
        total = 0
        tail = b""
        while not tail.endswith(b"\r\n.\r\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed during RETR")
            total += len(chunk)
            tail = (tail + chunk)[-8:]
        if total < size:
            raise RuntimeError("RETR: %d octets" % (total,))
        s.sendall(b"QUIT\r\n")
    finally:
        s.close()


def bigMessage(size):
    """A plain-text message of about C{size} octets, CRLF line ends."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    head = (b"From: <loadgen@example.net>\r\nTo: <%s>\r\nSubject: big\r\n"
            b"Message-ID: <big@example.net>\r\n\r\n" % (BIG_USER.encode(),))
    return head + line * ((size - len(head)) // len(line) + 1)


def bigMessageMemory(server, sizes, message=None, smtp=True):
    """
    @return: the server's peak RSS growth (KiB) while it takes C{message} by
        SMTP (skipped unless C{smtp}: the peer has it in its Maildir already),
        sends it by IMAP, then by POP3; each phase against the RSS before it.
    """
    message = message or bigMessage(sizes.big)
    pid = server.pids()[0]
    out = {}
    phases = [("smtp", lambda: deliver(server.ports["smtp"], BIG_USER, message))] if smtp else []
    phases += [("imap", lambda: fetchBig(server.ports["imap"], len(message))),
               ("pop3", lambda: retrBig(server.ports["pop3"], len(message)))]
    for name, work in phases:
        time.sleep(sizes.settle / 2)
        with PeakMemory(pid) as peak:
            t0 = time.monotonic()
            work()
            seconds = time.monotonic() - t0
        out[name] = {"growth_kib": peak.growth, "base_kib": peak.base,
                     "peak_kib": peak.peak, "seconds": seconds, "hwm": peak.hwm}
    return out


class TreePeak:
    """
    The peak of the summed VmRSS of a process and its descendants (Dovecot:
    a process per session), sampled every 20 ms, against the sum before.
    """

    def __init__(self, root):
        self.root = root

    def _total(self):
        return servers.memoryKiB(servers.processTree(self.root))[0]

    def __enter__(self):
        self.base = self.peak = self._total()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._total())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._total())
        self.growth = self.peak - self.base


def copyBig(fromDir, toDir):
    """Copy BIG_USER's messages (new/ and cur/) from one data directory to another."""
    local, _, domain = BIG_USER.partition("@")
    owner = os.stat(os.path.join(toDir, "mail", domain))
    for sub in ("new", "cur"):
        source = os.path.join(fromDir, "mail", domain, local, sub)
        target = os.path.join(toDir, "mail", domain, local, sub)
        for name in os.listdir(source):
            path = os.path.join(target, name)
            with open(os.path.join(source, name), "rb") as f, open(path, "wb") as out:
                while True:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            os.chown(path, owner.st_uid, owner.st_gid)


def peerBigMemory(server, size, settle):
    """Dovecot's peak RSS growth (all its processes) sending the big message by IMAP, then POP3."""
    out = {}
    for name, work in (("imap", lambda: fetchBig(server.ports["imap"], size)),
                       ("pop3", lambda: retrBig(server.ports["pop3"], size))):
        time.sleep(settle / 2)
        with TreePeak(server.pid) as peak:
            t0 = time.monotonic()
            work()
            seconds = time.monotonic() - t0
        out[name] = {"growth_kib": peak.growth, "base_kib": peak.base,
                     "peak_kib": peak.peak, "seconds": seconds}
    return out


class ScaleSection:
    """
    The benchmark's C{scale} section (a mixin of bench/run.py's C{Bench},
    which gives C{sizes}, C{dirs}, C{notes}, C{log}): idle sessions in one
    process, and the memory a big message costs in and out.
    """

    def scaleSizes(self):
        return QUICK if self.sizes == data.QUICK else FULL

    def scaleSpecs(self):
        s = self.scaleSizes()
        big = "%d MB message" % (s.big // (1024 * 1024),)
        return [
            ("scale_idle_sessions", "Idle IMAP sessions open in one process (of %d)"
             % (s.sessions,), "sessions", "higher"),
            ("scale_idle_rss", "Idle IMAP sessions x%d, one process: RSS growth" % (s.sessions,),
             "KiB", "lower"),
            ("scale_idle_news", "Idle IMAP sessions x%d: a delivery's EXISTS at the last"
             % (s.sessions,), "ms", "lower"),
            ("scale_idle_cpu", "Idle IMAP sessions x%d: server CPU while idle" % (s.sessions,),
             "%", "lower"),
            ("scale_big_smtp", "%s in by SMTP: peak RSS growth" % (big,), "KiB", "lower"),
            ("scale_big_imap", "%s out by IMAP FETCH: peak RSS growth" % (big,), "KiB",
             "lower"),
            ("scale_big_pop3", "%s out by POP3 RETR: peak RSS growth" % (big,), "KiB",
             "lower"),
        ]

    def scale(self, server):
        s = self.scaleSizes()
        specs = {k: (label, unit, better) for k, label, unit, better in self.scaleSpecs()}
        figures = {}
        if server.name != "mailstack":
            # Dovecot: the big message out by IMAP and POP3 (the idle sessions
            # would be 10,000 imap processes: not run, see bench/README).
            mail = os.stat(os.path.join(self.dirs["dovecot"], "mail", data.DOMAIN))
            addUsers(self.dirs["dovecot"], (mail.st_uid, mail.st_gid))
            copyBig(self.dirs["mailstack"], self.dirs["dovecot"])
            self.notes.append("scale: Dovecot's idle-session and SMTP rows are not measured "
                              "(a process per IMAP session; no SMTP server)")
            peer = peerBigMemory(server, s.big, s.settle)
            for name in ("imap", "pop3"):
                key = "scale_big_" + name
                figures[key] = specs[key] + (float(peer[name]["growth_kib"]), peer[name])
            return figures
        addUsers(self.dirs["mailstack"])
        idle = idleSessions(server, s, self.log)
        if idle.get("error"):
            self.notes.append("scale: %d of %d idle sessions opened: %s" % (
                idle["sessions"], s.sessions, idle["error"]))
        figures["scale_idle_sessions"] = specs["scale_idle_sessions"] + (
            float(idle["sessions"]), idle)
        figures["scale_idle_rss"] = specs["scale_idle_rss"] + (
            float(idle["rss_after_kib"] - idle["rss_before_kib"]), idle)
        if idle.get("news_last_s") is not None:
            figures["scale_idle_news"] = specs["scale_idle_news"] + (
                1000 * idle["news_last_s"], idle)
        figures["scale_idle_cpu"] = specs["scale_idle_cpu"] + (100 * idle["idle_cpu"], idle)
        big = bigMessageMemory(server, s)
        for name in ("smtp", "imap", "pop3"):
            key = "scale_big_" + name
            figures[key] = specs[key] + (float(big[name]["growth_kib"]), big[name])
        return figures


# Issue 16's targets for bench/run.py's verdict table.
TARGETS = [
    ("scale_idle_rss", "< 1 GB RSS for the sessions",
     lambda r: r.values.get("mailstack") is not None and r.values["mailstack"] < 1024 * 1024),
    ("scale_idle_news", "< 1000 ms after the 250",
     lambda r: r.values.get("mailstack") is not None and r.values["mailstack"] < 1000),
    ("scale_big_smtp", "< 64 MB growth",
     lambda r: r.values.get("mailstack") is not None and r.values["mailstack"] < 64 * 1024),
    ("scale_big_imap", "< 64 MB growth",
     lambda r: r.values.get("mailstack") is not None and r.values["mailstack"] < 64 * 1024),
    ("scale_big_pop3", "< 64 MB growth",
     lambda r: r.values.get("mailstack") is not None and r.values["mailstack"] < 64 * 1024),
]
