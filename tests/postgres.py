"""
A private PostgreSQL for the tests, from Debian's packages (C{postgresql},
listed in .ci/debian-packages): C{initdb} in a temporary directory, then
C{postgres} listening only on a unix socket in that directory (no TCP port
to collide with anything), as the interop tests run a private Dovecot.

initdb and postgres refuse to run as root: run as root (CI, a container),
they run as C{nobody}, which owns the temporary directory.

L{shared} starts one server per test process, on first use, and stops it
when the process exits: test cases share it and each test gets a database of
its own (L{PostgreSQLMixin}), so the suite pays for one start, not one per test.
"""

import atexit
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time

import psycopg

DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"

# What the server runs as when the tests run as root: the first that exists
# (Debian has both; the postgresql package makes "postgres").
UNPRIVILEGED_USERS = ("nobody", "postgres")

# The temporary directories go here if it exists, not under $TMPDIR: a unix
# socket path must be short (107 bytes), and an unprivileged server must be
# able to reach it (TMPDIR may be below root's private home).
TEMPORARY = "/tmp"

START_TIMEOUT = 60
STOP_TIMEOUT = 30


def binDirectory():
    """
    @return: the directory holding C{initdb} and C{postgres} (Debian's newest
        version, else one on C{PATH}), or L{None}.
    """
    def version(directory):
        number = re.search(r"/(\d+)/bin$", directory)
        return int(number.group(1)) if number else 0
    for directory in sorted(glob.glob(DEBIAN_BINARIES), key=version, reverse=True):
        if all(os.access(os.path.join(directory, name), os.X_OK)
               for name in ("initdb", "postgres")):
            return directory
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres and os.path.dirname(initdb) == os.path.dirname(postgres):
        return os.path.dirname(initdb)
    return None


def missing():
    """
    @return: why the PostgreSQL tests skip (the server is not installed, or
        this is `make check`, which starts no server), or L{None}.
    """
    if os.environ.get("MAILSTACK_CHECK_ONLY"):
        return "make check starts no server; make test runs the PostgreSQL tests"
    if binDirectory() is None:
        return ("PostgreSQL server not installed (Debian package postgresql: `make deps` "
                "as root, which .ci/run runs, installs .ci/debian-packages)")
    return None


def _temporary():
    return TEMPORARY if os.path.isdir(TEMPORARY) else None


class PrivatePostgreSQL:
    """
    One PostgreSQL server in a temporary directory of its own.

    @ivar socketDirectory: where its unix socket is (its C{host}).
    """

    role = "mailstack"

    def __init__(self, bin=None):
        self.bin = bin or binDirectory()
        if self.bin is None:
            raise RuntimeError(missing())
        self.top = tempfile.mkdtemp(prefix="mailstack-pg-", dir=_temporary())
        self.data = os.path.join(self.top, "data")
        self.socketDirectory = self.top
        self.logPath = os.path.join(self.top, "postgres.log")
        self.process = None
        self._names = itertools.count(1)
        self.account = self._account()
        if self.account is not None:
            os.chown(self.top, self.account.pw_uid, self.account.pw_gid)
        os.chmod(self.top, 0o700)

    @staticmethod
    def _account():
        """The account to run as: L{None} (this one) unless root."""
        if os.geteuid() != 0:
            return None
        for name in UNPRIVILEGED_USERS:
            try:
                return pwd.getpwnam(name)
            except KeyError:
                pass
        raise RuntimeError("running as root, and none of the accounts %s exists to run "
                           "PostgreSQL as (initdb refuses root)" % (", ".join(UNPRIVILEGED_USERS),))

    def _run(self, argv, **kwargs):
        options = dict(cwd=self.top, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                          "LC_ALL": "C", "LANG": "C"})
        if self.account is not None:
            options.update(user=self.account.pw_uid, group=self.account.pw_gid,
                           extra_groups=[])
        options.update(kwargs)
        return options

    def dsn(self, dbname="postgres"):
        """A libpq connection string for database C{dbname} of this server."""
        return "host=%s dbname=%s user=%s" % (self.socketDirectory, dbname, self.role)

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def start(self):
        """
        Create the cluster (the first time) and start the server; return once
        it accepts connections.
        """
        if self.running:
            return
        if not os.path.exists(self.data):
            argv = [os.path.join(self.bin, "initdb"), "-D", self.data, "-U", self.role,
                    "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  **self._run(argv))
            if done.returncode:
                raise RuntimeError("initdb failed (%d): %s" % (
                    done.returncode, done.stdout.decode("utf-8", "replace")))
        argv = [os.path.join(self.bin, "postgres"), "-D", self.data,
                "-k", self.socketDirectory, "-c", "listen_addresses=",
                # A throwaway cluster: no durability, little memory.
                "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "shared_buffers=16MB",
                "-c", "max_connections=100"]
        with open(self.logPath, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, **self._run(argv))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                psycopg.connect(self.dsn(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("PostgreSQL did not start; its log:\n" + self.log())
            time.sleep(0.05)

    def stop(self):
        """Stop the server (a fast shutdown: its clients are disconnected)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def remove(self):
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.top, ignore_errors=True)

    def log(self):
        try:
            with open(self.logPath, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def createDatabase(self):
        """@return: the DSN of a new, empty database of this server."""
        name = "test_%d" % (next(self._names),)
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute("CREATE DATABASE %s" % (name,))
        return self.dsn(name)


def nowhere(testCase):
    """
    @return: a directory where no server listens (a DSN's C{host} that cannot
        be reached), short enough for a socket path; removed after the test.
    """
    directory = tempfile.mkdtemp(prefix="mailstack-nopg-", dir=_temporary())
    testCase.addCleanup(shutil.rmtree, directory, True)
    return directory


_shared = []


def shared():
    """
    This process's private server, started (again, if a test stopped it);
    removed when the process exits.
    """
    if not _shared:
        server = PrivatePostgreSQL()
        atexit.register(server.remove)
        _shared.append(server)
    _shared[0].start()
    return _shared[0]


class PostgreSQLMixin:
    """
    For test cases that need PostgreSQL: C{setUp} gives C{self.postgres}
    (the shared L{PrivatePostgreSQL}) and C{self.dsn}, a new database of its
    own. Skips when the server is not installed.
    """

    skip = missing()

    def setUp(self):
        self.postgres = shared()
        self.dsn = self.postgres.createDatabase()
