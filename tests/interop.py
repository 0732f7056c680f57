"""
Shared helpers for the interoperability tests (tests/e2e/test_interop_*.py):
finding the real programs, running a private Dovecot on loopback over a
mailstack data directory, running client programs without blocking the
reactor, and reading an IMAP server's whole visible state with imaplib.

The Debian packages these need are listed in .ci/debian-packages; `make deps`
(run by .ci/run) installs them (docs/interop.md).
"""

import grp
import imaplib
import os
import pwd
import re
import shutil
import socket
import tempfile
import time

from twisted.internet import defer, error, protocol, threads, utils

SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def findBinary(name):
    """
    @return: the full path of program C{name} (also looked for in the sbin
        directories a normal user's PATH may lack), or L{None}.
    """
    found = shutil.which(name)
    if found:
        return found
    return shutil.which(name, path=os.pathsep.join(SEARCH_PATH))


def missing(name, package):
    """
    @return: a skip reason naming the Debian package when program C{name} is
        not installed, else L{None}.
    """
    if findBinary(name) is None:
        return ("%s not installed (Debian package %s: `make deps` as root, "
                "which .ci/run runs, installs .ci/debian-packages)" % (name, package))
    return None


def sharedDataDir(testCase, text):
    """
    Config C{text} with C{data_dir} moved to a fresh directory under the
    system's temporary directory (removed when the test ends), so that
    Dovecot's unprivileged mail user can reach the Maildir: trial's temporary
    directories are 0700 and may sit below private directories such as /root.

    @return: C{(text, dataDir)}.
    """
    top = tempfile.mkdtemp(prefix="mailstack-interop-")
    os.chmod(top, 0o711)
    testCase.addCleanup(shutil.rmtree, top, True)
    dataDir = os.path.join(top, "var")
    changed = text.replace('data_dir = "var"', 'data_dir = "%s"' % (dataDir,))
    if changed == text:
        raise ValueError('config text has no data_dir = "var" line')
    return changed, dataDir


def freePort():
    """
    @return: a TCP port on 127.0.0.1 that was free a moment ago (for programs
        that cannot listen on port 0 and report the port).
    """
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def runProgram(argv, env=None, path=None, reactor=None):
    """
    Run a client program to completion with the reactor running.

    @return: a L{Deferred} firing with C{(out, err, code)} (out and err as
        text); a program killed by a signal gives C{code} -signal.
    """
    if reactor is None:
        from twisted.internet import reactor
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    environ.update(env or {})
    d = utils.getProcessOutputAndValue(argv[0], argv[1:], env=environ, path=path,
                                       reactor=reactor)

    def signalled(failure):
        # On a signal the Deferred fails with the tuple (out, err, signal).
        if isinstance(failure.value, tuple) and len(failure.value) == 3:
            out, err, signalNum = failure.value
            return out, err, -signalNum
        return failure

    d.addErrback(signalled)
    d.addCallback(lambda r: (r[0].decode("utf-8", "replace"),
                             r[1].decode("utf-8", "replace"), r[2]))
    return d


def describe(argv, result):
    """A readable account of a program's run, for assertion messages."""
    out, err, code = result
    return "%s exited %s\n--- stdout:\n%s\n--- stderr:\n%s" % (
        " ".join(argv), code, out, err)


class _DovecotProcess(protocol.ProcessProtocol):
    def __init__(self):
        self.ended = defer.Deferred()
        self.output = []
        self.exited = False

    def outReceived(self, data):
        self.output.append(data)

    errReceived = outReceived

    def processEnded(self, reason):
        self.exited = True
        self.ended.callback(reason)


DOVECOT_CONF = """\
# Written by tests/interop.py: a private Dovecot over a mailstack data directory.
base_dir = {run}
state_dir = {base}/state
log_path = {base}/dovecot.log
instance_name = mailstack-interop-{port}
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
shutdown_clients = yes

# mailstack's layout: var/mail/<domain>/<localpart>/, Maildir++ (Dovecot's
# default layout for maildir), hierarchy separator "/" like mailstack's IMAP;
# the special-use folders mailstack creates for new accounts.
mail_location = maildir:{mail}/%d/%n
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Archive {{
    special_use = \\Archive
  }}
}}

# Users: mailstack's var/users is a Dovecot passwd-file.
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}

# Run without any system set-up: as the current user, or (as root) with mail
# access as an unprivileged user, since Dovecot never accesses mail as root.
mail_uid = {mailUID}
mail_gid = {mailGID}
first_valid_uid = 0
first_valid_gid = 0
mail_privileged_group =
default_login_user = {loginUser}
default_internal_user = {internalUser}
default_internal_group = {internalGroup}

service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imapPort}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3Port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def _userName(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _groupName(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _mailOwner():
    """
    @return: C{(uid, gid)} Dovecot accesses mail as: the current user, or
        C{nobody}/C{nogroup} when running as root (Dovecot refuses mail access
        as root).
    """
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    nobody = pwd.getpwnam("nobody")
    try:
        gid = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        gid = nobody.pw_gid
    return nobody.pw_uid, gid


class Dovecot:
    """
    A private Dovecot (IMAP and POP3 on free loopback ports) over the mail
    directory and users file of a mailstack data directory, run as a child
    process (C{dovecot -F}) for the duration of one test.

    @ivar imapPort: Dovecot's IMAP port (plaintext LOGIN allowed).
    @ivar pop3Port: Dovecot's POP3 port.
    """

    def __init__(self, testCase, dataDir, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.testCase = testCase
        self.base = os.path.abspath(testCase.mktemp())
        os.makedirs(os.path.join(self.base, "state"))
        self.mailDir = os.path.join(os.path.abspath(dataDir), "mail")
        self.usersFile = os.path.join(os.path.abspath(dataDir), "users")
        self.confPath = os.path.join(self.base, "dovecot.conf")
        self.logPath = os.path.join(self.base, "dovecot.log")
        self.imapPort = freePort()
        self.pop3Port = freePort()
        while self.pop3Port == self.imapPort:  # both were free; Dovecot needs two
            self.pop3Port = freePort()
        self.mailUID, self.mailGID = _mailOwner()
        self.process = None
        # Dovecot's UNIX sockets live in base_dir, whose path must stay short
        # (108 bytes for a socket path): not under _trial_temp.
        self.runDir = os.path.join(tempfile.mkdtemp(prefix="mailstack-dovecot-"), "run")
        os.chmod(os.path.dirname(self.runDir), 0o755)
        testCase.addCleanup(shutil.rmtree, os.path.dirname(self.runDir), True)

    def config(self):
        """The text of the dovecot.conf this instance runs with."""
        me = _userName(os.getuid())
        if os.getuid() == 0:
            # Login processes must not run as root; the auth process reads
            # var/users (mode 0600, owned by root), so it stays root.
            login = "dovenull" if self._exists("dovenull") else "nobody"
            internal = "root"
            group = "dovecot" if self._groupExists("dovecot") else "root"
        else:
            login = internal = me
            group = _groupName(os.getgid())
        return DOVECOT_CONF.format(
            base=self.base, run=self.runDir, port=self.imapPort, mail=self.mailDir,
            users=self.usersFile, mailUID=self.mailUID, mailGID=self.mailGID,
            loginUser=login, internalUser=internal, internalGroup=group,
            imapPort=self.imapPort, pop3Port=self.pop3Port)

    @staticmethod
    def _exists(user):
        try:
            pwd.getpwnam(user)
            return True
        except KeyError:
            return False

    @staticmethod
    def _groupExists(group):
        try:
            grp.getgrnam(group)
            return True
        except KeyError:
            return False

    def handOver(self, *paths):
        """
        Give Dovecot's mail user the files under C{paths} (directories below
        the mail directory, e.g. a domain's). A no-op unless running as root:
        a real set-up runs mailstack and Dovecot as the same mail user; here
        mailstack runs as root, which Dovecot refuses to be for mail access.
        """
        if os.getuid() != 0:
            return
        # mailstack makes everything under data_dir 0700 (owned by root here):
        # let Dovecot's mail user through data_dir and its mail directory.
        for directory in (os.path.dirname(self.mailDir), self.mailDir):
            if os.path.isdir(directory):
                os.chmod(directory, 0o711)
        for top in paths:
            os.makedirs(top, exist_ok=True)
            for directory, dirs, files in os.walk(top):
                os.chown(directory, self.mailUID, self.mailGID)
                for name in files:
                    os.chown(os.path.join(directory, name), self.mailUID,
                             self.mailGID, follow_symlinks=False)

    def log(self):
        """Dovecot's log so far (for assertion messages)."""
        try:
            with open(self.logPath, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def complaints(self):
        """
        @return: the log lines where Dovecot reported a problem (errors, and
            warnings other than its start-up and shutdown notes), e.g. a
            dovecot-uidlist it found broken.
        """
        harmless = ("Corrected permissions for login directory", "Killed with signal")
        return [line for line in self.log().splitlines()
                if any(" %s: " % (level,) in line
                       for level in ("Warning", "Error", "Panic", "Fatal"))
                and not any(h in line for h in harmless)]

    @defer.inlineCallbacks
    def start(self):
        """
        Write the config, start C{dovecot -F} and wait until both ports
        greet; stopped when the test ends.
        """
        binary = findBinary("dovecot")
        with open(self.confPath, "w") as f:
            f.write(self.config())
        self.process = _DovecotProcess()
        self.reactor.spawnProcess(
            self.process, binary, [binary, "-F", "-c", self.confPath],
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, path=self.base)
        self.testCase.addCleanup(self.stop)
        deadline = time.monotonic() + 15
        for port, greeting in ((self.imapPort, b"* OK"), (self.pop3Port, b"+OK")):
            while True:
                ready = yield threads.deferToThread(_greets, port, greeting)
                if ready:
                    break
                if self.process.exited or time.monotonic() > deadline:
                    raise AssertionError(
                        "Dovecot did not start (port %d)\n--- output:\n%s\n--- log:\n%s"
                        % (port, b"".join(self.process.output).decode(errors="replace"),
                           self.log()))
                d = defer.Deferred()
                self.reactor.callLater(0.05, d.callback, None)
                yield d

    def stop(self):
        """Stop Dovecot (SIGTERM to the master, which stops its children)."""
        if self.process is None or self.process.exited:
            return defer.succeed(None)
        try:
            self.process.transport.signalProcess("TERM")
        except error.ProcessExitedAlready:
            pass
        return self.process.ended.addErrback(lambda f: None)

    def imap(self, user, password):
        """A logged-in imaplib client of this Dovecot (blocking: use in a thread)."""
        c = imaplib.IMAP4("127.0.0.1", self.imapPort, timeout=10)
        c.login(user, password)
        return c


class LockingDovecot(Dovecot):
    """
    A L{Dovecot} whose POP3 sessions take Dovecot's maildrop lock
    (C{pop3_lock_session = yes}: the dotlock C{dovecot-pop3-session.lock} in
    the INBOX Maildir, waited for up to 10 s, then C{-ERR [IN-USE]}).
    """

    def config(self):
        return Dovecot.config(self) + (
            "protocol pop3 {\n"
            "  pop3_lock_session = yes\n"
            "}\n")


@defer.inlineCallbacks
def dovecotOnCopy(testCase, dataDir):
    """
    A private L{Dovecot}, started, over a copy of a mailstack data directory
    as it is now (its accounts' Maildirs handed over): one session can then
    run against both servers from the same mail.
    """
    copyDir = dataDir + "-dovecot"
    shutil.copytree(dataDir, copyDir, symlinks=True)
    dovecot = Dovecot(testCase, copyDir)
    dovecot.handOver(os.path.join(copyDir, "mail", "lab.test"))
    yield dovecot.start()
    return dovecot


def replyDifferences(ours, theirs):
    """
    Where two runs of one session differ: lists of C{(command, reply lines)}
    from mailstack and from Dovecot -> one text per command answered
    differently (an empty list when they agree).
    """
    return ["%r\n  mailstack: %r\n  Dovecot:   %r" % (command, lines, expected)
            for (command, lines), (_, expected) in zip(ours, theirs) if lines != expected]


def _greets(port, greeting):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.recv(100).startswith(greeting)
    except OSError:
        return False


def check(result):
    """The data of an imaplib command's result; AssertionError unless it is OK."""
    typ, data = result
    if typ != "OK":
        raise AssertionError("IMAP command failed: %r %r" % (typ, data))
    return data


def listMailboxes(client, command="LIST"):
    """
    @return: C{{name: attributes}} from LIST (or LSUB) "" "*", names as sent
        (modified UTF-7), attributes as a frozenset without the
        \\HasChildren/\\HasNoChildren hints.
    """
    data = check(client.list() if command == "LIST" else client.lsub())
    result = {}
    for line in data:
        if line is None:
            continue
        attrs, _, rest = line.partition(b") ")
        attributes = frozenset(a for a in attrs.lstrip(b"(").decode().split()
                               if a.lower() not in ("\\haschildren", "\\hasnochildren"))
        name = rest.split(b" ", 1)[1].decode()
        if name.startswith('"') and name.endswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        result[name] = attributes
    return result


def quoted(name):
    """An IMAP quoted string for mailbox C{name} (imaplib leaves quoting to us)."""
    return '"%s"' % (name.replace("\\", "\\\\").replace('"', '\\"'),)


def mailboxState(client, name):
    """
    Everything a client can see of one mailbox: UIDVALIDITY, UIDNEXT and, per
    message in UID order, the UID, the flags (without the per-session
    \\Recent), RFC822.SIZE, INTERNALDATE (as a Unix time) and the full bytes.
    """
    check(client.select(quoted(name), readonly=True))
    uidValidity = int(client.response("UIDVALIDITY")[1][0])
    uidNext = int(client.response("UIDNEXT")[1][0])
    data = check(client.uid("FETCH", "1:*",
                             "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])"))
    messages = []
    for i, item in enumerate(data):
        if not isinstance(item, tuple):
            continue
        head, body = item
        # Items the server sends after the literal come in the next element.
        trailer = data[i + 1] if i + 1 < len(data) else b""
        if isinstance(trailer, bytes):
            head += b" " + trailer
        uid = int(re.search(rb"\bUID (\d+)", head).group(1))
        flags = imaplib.ParseFlags(head) or ()
        flags = tuple(sorted(f.decode() for f in flags if f.lower() != b"\\recent"))
        size = int(re.search(rb"RFC822\.SIZE (\d+)", head).group(1))
        date = time.mktime(imaplib.Internaldate2tuple(head))
        messages.append({"uid": uid, "flags": flags, "size": size,
                         "internaldate": date, "bytes": body})
    messages.sort(key=lambda m: m["uid"])
    client.close()
    return {"uidvalidity": uidValidity, "uidnext": uidNext, "messages": messages}


def accountState(client):
    """
    The whole account as a client sees it: every mailbox's LIST attributes,
    the subscriptions, and L{mailboxState} of every selectable mailbox.
    """
    folders = listMailboxes(client)
    state = {"folders": folders,
             "subscribed": sorted(listMailboxes(client, "LSUB")),
             "mailboxes": {}}
    for name, attributes in sorted(folders.items()):
        if "\\noselect" not in {a.lower() for a in attributes}:
            state["mailboxes"][name] = mailboxState(client, name)
    return state
