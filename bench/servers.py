"""
The servers under test, each a separate process on free loopback ports:
mailstack (C{twistd -n mailstack}), a private Dovecot (tests/interop.py's
L{Dovecot}, started without a reactor) and aiosmtpd (bench/smtp_peer.py).
Also the /proc readings of their memory.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import time

from tests.interop import LockingDovecot, _greets, findBinary, freePort

from bench import data

HERE = os.path.dirname(os.path.abspath(__file__))


class StartError(Exception):
    pass


def _waitGreeting(process, port, greeting, what, logPath, deadline=30.0):
    end = time.monotonic() + deadline
    while not _greets(port, greeting):
        if process.poll() is not None or time.monotonic() > end:
            raise StartError("%s did not start (port %d, exit %r)\n--- log:\n%s"
                             % (what, port, process.poll(), _tail(logPath)))
        time.sleep(0.05)


def _tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _stop(process, timeout=15):
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Mailstack:
    """C{twistd -n mailstack --config <tmp>}: SMTP, IMAP and POP3 on loopback."""

    name = "mailstack"

    def __init__(self, top, dataDir, workers=1):
        self.top = top
        self.dataDir = dataDir
        self.workers = workers      # [server] workers: processes sharing the listeners
        self.ports = {"smtp": freePort(), "imap": freePort(), "pop3": freePort()}
        self.configPath = os.path.join(top, "mailstack.toml")
        self.logPath = os.path.join(top, "twistd.log")
        self.process = None

    def config(self):
        listeners = "".join(textwrap.dedent("""
            [[listener]]
            name = "{p}"
            protocol = "{p}"
            endpoint = "tcp:{port}:interface=127.0.0.1"
            tls = "none"
            allow_plaintext_auth = true
            """).format(p=p, port=port) for p, port in self.ports.items())
        return textwrap.dedent("""\
            # Written by bench/servers.py: mailstack under benchmark.
            [server]
            hostname = "bench.localhost"
            data_dir = "{data}"
            domains = ["{domain}"]
            {workers}
            [limits]
            connections_per_ip = 0

            [lab]
            demo_account = false
            transcripts = false
            """).format(data=self.dataDir, domain=data.DOMAIN,
                        workers="workers = %d\n" % (self.workers,) if self.workers > 1
                        else "") + listeners

    def twistd(self):
        near = os.path.join(os.path.dirname(sys.executable), "twistd")
        return near if os.access(near, os.X_OK) else (shutil.which("twistd") or near)

    def start(self):
        with open(self.configPath, "w") as f:
            f.write(self.config())
        log = open(self.logPath, "ab")
        self.process = subprocess.Popen(
            [self.twistd(), "--nodaemon", "--pidfile=", "--logfile=" + self.logPath,
             "mailstack", "--config", self.configPath],
            cwd=self.top, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        for proto, greeting in (("smtp", b"220"), ("imap", b"* OK"), ("pop3", b"+OK")):
            _waitGreeting(self.process, self.ports[proto], greeting, "mailstack",
                          self.logPath)
        # With workers, wait until every one serves its three listeners (each logs it).
        end = time.monotonic() + 30
        while self.workers > 1 and _tail(self.logPath, 400).count(
                "listening on") < 3 * self.workers:
            if time.monotonic() > end:
                raise StartError("mailstack: not every worker started\n" + _tail(self.logPath))
            time.sleep(0.05)

    @property
    def pid(self):
        return self.process.pid

    def pids(self):
        """The first process and its workers ([server] workers)."""
        return processTree(self.process.pid)

    def stop(self):
        _stop(self.process)

    def version(self):
        from importlib import metadata
        try:
            return "mailstack %s" % (metadata.version("mailstack"),)
        except metadata.PackageNotFoundError:
            return "mailstack"


class _Scratch:
    """The bits of a trial TestCase that L{tests.interop.Dovecot} uses."""

    def __init__(self, top):
        self.top = top
        self.count = 0
        self.cleanups = []

    def mktemp(self):
        """A path that does not exist yet (its parent does), like trial's."""
        os.makedirs(self.top, exist_ok=True)
        while True:
            self.count += 1
            path = os.path.join(self.top, "dovecot-%d" % (self.count,))
            if not os.path.exists(path):
                return path

    def addCleanup(self, f, *args, **kwargs):
        self.cleanups.append((f, args, kwargs))

    def cleanUp(self):
        while self.cleanups:
            f, args, kwargs = self.cleanups.pop()
            f(*args, **kwargs)


def dovecotMissing():
    """A reason Dovecot's IMAP/POP3 peer cannot run here, or None."""
    if findBinary("dovecot") is None:
        return "dovecot not installed (Debian dovecot-imapd, dovecot-pop3d)"
    for name in ("imap", "pop3"):
        if not any(os.path.exists(os.path.join(d, name))
                   for d in ("/usr/lib/dovecot", "/usr/libexec/dovecot")):
            return "dovecot's %s service not installed (dovecot-%sd)" % (name, name)
    return None


class DovecotPeer:
    """
    Stock Dovecot (its defaults: one imap/pop3 process per session) over a
    copy of the data, configured by tests/interop.py's L{LockingDovecot}
    (L{Dovecot} with pop3_lock_session = yes).
    """

    name = "dovecot"

    def __init__(self, top, dataDir):
        self.scratch = _Scratch(top)
        # pop3_lock_session = yes: one POP3 session per maildrop, as mailstack
        # (the POP3 busy-class figure compares the two waiting for it).
        self.dovecot = LockingDovecot(self.scratch, dataDir)
        self.ports = {"imap": self.dovecot.imapPort, "pop3": self.dovecot.pop3Port}
        self.process = None

    def start(self):
        d = self.dovecot
        d.handOver(d.mailDir)
        with open(d.confPath, "w") as f:
            f.write(d.config())
        out = open(d.logPath + ".stdout", "ab")
        self.process = subprocess.Popen(
            [findBinary("dovecot"), "-F", "-c", d.confPath],
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, cwd=d.base,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        for proto, greeting in (("imap", b"* OK"), ("pop3", b"+OK")):
            _waitGreeting(self.process, self.ports[proto], greeting, "dovecot",
                          d.logPath)

    @property
    def pid(self):
        return self.process.pid

    def pids(self):
        return processTree(self.process.pid)

    def complaints(self):
        return self.dovecot.complaints()

    def stop(self):
        _stop(self.process)
        self.scratch.cleanUp()

    def version(self):
        try:
            out = subprocess.run([findBinary("dovecot"), "--version"],
                                 capture_output=True, text=True, timeout=10).stdout
            return "Dovecot " + out.split()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "Dovecot"


def peerPython(explicit=None):
    """
    The Python that has aiosmtpd: C{explicit}, else bench/.venv's (made by
    `make bench`), else this one if it has aiosmtpd; None if none has.
    """
    candidates = [explicit] if explicit else [
        os.path.join(HERE, ".venv", "bin", "python"), sys.executable]
    for python in candidates:
        if python and os.access(python, os.X_OK) and subprocess.run(
                [python, "-c", "import aiosmtpd"], capture_output=True).returncode == 0:
            return os.path.abspath(python)
    return None


class AiosmtpdPeer:
    """bench/smtp_peer.py: aiosmtpd delivering into a Maildir with fsync."""

    name = "aiosmtpd"

    def __init__(self, top, dataDir, python):
        self.top = top
        self.dataDir = dataDir
        self.python = python
        self.ports = {"smtp": freePort()}
        self.logPath = os.path.join(top, "aiosmtpd.log")
        self.process = None

    def start(self):
        log = open(self.logPath, "ab")
        self.process = subprocess.Popen(
            [self.python, os.path.join(HERE, "smtp_peer.py"), "--port",
             str(self.ports["smtp"]), "--data-dir", self.dataDir, "--domain", data.DOMAIN],
            cwd=self.top, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        _waitGreeting(self.process, self.ports["smtp"], b"220", "aiosmtpd", self.logPath)

    @property
    def pid(self):
        return self.process.pid

    def pids(self):
        return [self.process.pid]

    def stop(self):
        _stop(self.process)

    def version(self):
        out = subprocess.run(
            [self.python, "-c", "import aiosmtpd; print(aiosmtpd.__version__)"],
            capture_output=True, text=True).stdout.strip()
        return "aiosmtpd %s" % (out,)


def processTree(root):
    """C{root} and all its descendants, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % (entry,)) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _fields(path, names):
    """The values (KiB) of the C{names} lines of a /proc file; 0 when gone."""
    out = dict.fromkeys(names, 0)
    try:
        with open(path) as f:
            for line in f:
                key = line.split(":", 1)[0] + ":"
                if key in out:
                    out[key] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return out


def memoryKiB(pids):
    """
    @return: C{(rss, private)} in KiB summed over C{pids}: VmRSS from
        /proc/PID/status (pages of shared libraries counted in every process
        that maps them), and Private_Dirty from /proc/PID/smaps_rollup: pages
        this process wrote and no other maps (heap, stacks, buffers), what one
        more session or process really adds. Unlike Pss or Private_Clean it
        does not move when unrelated processes start or exit.
    """
    rss = private = 0
    for pid in pids:
        rss += _fields("/proc/%d/status" % (pid,), ("VmRSS:",))["VmRSS:"]
        private += _fields("/proc/%d/smaps_rollup" % (pid,),
                           ("Private_Dirty:",))["Private_Dirty:"]
    return rss, private
