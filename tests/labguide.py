"""
The lab guide's transcripts (docs/lab-guide.md) as data: parse its session
and command blocks, replay them against a running mailstack and say where the
guide and the server disagree, or record the server's replies into the guide.

The block formats (documented for readers in the guide's "How to read the
transcripts"):

  - a fenced block tagged C{session LISTENER} (a listener of the lab config:
    smtp, submission, submissions, pop3, pop3s, imap, imaps) holds one
    session, a line per line on the wire: C{C: } what the client sends,
    C{S: } what the server answers; C{# TLS handshake ...} where the client
    starts TLS (after STARTTLS/STLS; the implicit-TLS listeners start with
    it by themselves); C{# (another terminal sends demo a message: Subject:
    X)} where a message for demo@lab.test arrives over the smtp listener.
    Every session ends with the server closing the connection.
  - a fenced block tagged C{command} holds C{$ } command lines (a trailing
    C{\\} continues one) followed by their standard output, in order;
    C{command illustrative} is the same, shown but not replayed.

What differs from run to run is masked on both sides before comparing
(L{MASKS}): queue ids, dates, UIDVALIDITY and mod-sequences, the APOP
timestamp and CRAM-MD5 challenges, the TLS cipher. Client lines that answer a challenge
(C{APOP user digest}, a CRAM-MD5 response) are computed again from the
challenge the server sent and the lab password (L{PASSWORDS}).

C{.venv/bin/python -m tests.labguide record docs/lab-guide.md WORKDIR} runs
every session and command block (not the illustrative ones) against real lab
servers, C{twistd mailstack} from etc/mailstack.toml on free ports with a
fresh data directory under WORKDIR, one per chapter, and writes what they
answered into the guide; tests/test_lab_guide.py then keeps it true.
"""

import base64
import difflib
import hashlib
import hmac
import os
import re
import smtplib
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass, field

# The lab listeners' ports (etc/mailstack.toml), as the guide's commands name them.
LAB_PORTS = {"smtp": 3025, "submission": 3587, "submissions": 3465, "pop3": 3110,
             "pop3s": 3995, "imap": 3143, "imaps": 3993}

# The lab's demo account: login names the guide uses and their password.
PASSWORDS = {"demo": "demo", "demo@lab.test": "demo"}

_MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"

# What differs between two runs of the same session: (name, pattern,
# replacement), applied in order to the server's lines and to the guide's.
MASKS = (
    ("queue id", re.compile(r"\b(queued as|id) [0-9A-F]{12}\b"), r"\1 <queue-id>"),
    ("date", re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [ \d]?\d " + _MONTH
                        + r" \d{4} \d\d:\d\d:\d\d [+-]\d{4}"), "<date>"),
    ("IMAP date", re.compile(r"[ \d]\d-" + _MONTH + r"-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"),
     "<internal-date>"),
    ("UIDVALIDITY", re.compile(r"\b(UIDVALIDITY|APPENDUID|COPYUID) \d+"), r"\1 <uidvalidity>"),
    ("MAILBOXID", re.compile(r"\bMAILBOXID \(F\d+\)"), "MAILBOXID (F<uidvalidity>)"),
    ("mod-sequence", re.compile(r"\b(HIGHESTMODSEQ|MODSEQ) (\(?)\d+"), r"\1 \2<modseq>"),
    ("POP3 unique-id", re.compile(r"\b([0-9a-f]{8})[0-9a-f]{8}\b"), r"\1<uidvalidity>"),
    ("APOP timestamp", re.compile(r"<\d+\.\d+\.[0-9a-f]+@[^>\s]+>"), "<timestamp>"),
    ("TLS cipher", re.compile(r"\bTLSv1\.[0-3](?::| with cipher )[A-Za-z0-9_-]+"
                              r"(?::\d+| \(\d+/\d+ bits\))"), "<tls-cipher>"),
    ("CRAM-MD5 challenge", re.compile(r"^(334|\+) PD[A-Za-z0-9+/]+=*$"), r"\1 <challenge>"),
)


def mask(line):
    """C{line} with everything that differs from run to run replaced by a name."""
    for _, pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line


class GuideFormatError(Exception):
    """A block of the guide does not follow the documented format."""


@dataclass
class Block:
    """One fenced block of the guide that shows a session or a command run."""

    kind: str                   # "session" or "command"
    listener: str               # the lab listener (session blocks)
    illustrative: bool          # shown, not replayed
    chapter: str                # the "## " heading it is under
    section: str                # the nearest heading, for messages
    line: int                   # 1-based line of the opening fence
    body: list = field(default_factory=list)     # the lines between the fences
    bodyStart: int = 0          # index in the file's lines of body[0]
    steps: list = field(default_factory=list)    # sessionSteps or commandSteps

    @property
    def where(self):
        return "%s, line %d" % (self.section, self.line)


def parseGuide(text):
    """
    The session and command blocks of the guide C{text}, in order; other
    fenced blocks are left alone.
    """
    lines = text.split("\n")
    blocks = []
    chapter = section = "(top)"
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            chapter = section = line[3:].strip()
        elif line.startswith("### "):
            section = "%s > %s" % (chapter, line[4:].strip())
        elif line.startswith("```"):
            info = line[3:].split()
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if end == len(lines):
                raise GuideFormatError("line %d: a fenced block is never closed" % (i + 1,))
            if info and info[0] in ("session", "command"):
                kind = info[0]
                rest = info[1:]
                illustrative = "illustrative" in rest
                rest = [w for w in rest if w != "illustrative"]
                listener = ""
                if kind == "session":
                    if len(rest) != 1 or rest[0] not in LAB_PORTS:
                        raise GuideFormatError(
                            "line %d: a session block names one lab listener (%s), not %r"
                            % (i + 1, ", ".join(LAB_PORTS), " ".join(rest)))
                    listener = rest[0]
                elif rest:
                    raise GuideFormatError("line %d: unknown words after command: %r"
                                           % (i + 1, " ".join(rest)))
                block = Block(kind, listener, illustrative, chapter, section, i + 1,
                              lines[i + 1:end], i + 1)
                block.steps = (sessionSteps(block) if kind == "session"
                               else commandSteps(block))
                blocks.append(block)
            i = end
        i += 1
    return blocks


DELIVER = re.compile(r"^# \(another terminal sends demo a message: Subject: (.+)\)$")


def sessionSteps(block):
    """
    The steps of a session block: ("C", line), ("S", line), ("tls", None),
    ("deliver", subject).
    """
    steps = []
    for offset, line in enumerate(block.body):
        if line.startswith("C:") or line.startswith("S:"):
            if len(line) > 2 and line[2] != " ":
                raise GuideFormatError("%s: line %d: %r: a space follows C: and S:"
                                       % (block.section, block.line + 1 + offset, line))
            steps.append((line[0], line[3:]))
        elif line.startswith("# TLS handshake"):
            steps.append(("tls", None))
        elif DELIVER.match(line):
            steps.append(("deliver", DELIVER.match(line).group(1)))
        else:
            raise GuideFormatError(
                "%s: line %d: %r: a session line starts with C:, S:, "
                "'# TLS handshake' or '# (another terminal sends demo a message: ...)'"
                % (block.section, block.line + 1 + offset, line))
    if not steps or steps[-1][0] != "S":
        raise GuideFormatError("%s: a session block ends with the server's last line"
                               % (block.where,))
    return steps


def commandSteps(block):
    """
    The (command, expected output lines, the command's lines as written)
    triples of a command block.
    """
    steps = []
    body = list(block.body)
    i = 0
    while i < len(body):
        line = body[i]
        if not line.startswith("$ "):
            if not steps:
                raise GuideFormatError("%s: a command block starts with '$ '" % (block.where,))
            steps[-1][1].append(line)
            i += 1
            continue
        written = [line]
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(body):
            i += 1
            written.append(body[i])
            command = command[:-1].rstrip() + " " + body[i].strip()
        steps.append((command, [], written))
        i += 1
    return steps


# -- running a session

class LineSocket:
    """A blocking client socket read line by line (CRLF or LF), with TLS on request."""

    def __init__(self, sock, timeout):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buffer = b""
        self.closed = False

    def send(self, line):
        self.sock.sendall(line.encode("utf-8") + b"\r\n")

    def startTLS(self, context):
        if self.buffer:
            raise AssertionError("the server sent %r before the TLS handshake" % (self.buffer,))
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def readLine(self):
        """The next line without its line end; None at the end of the connection."""
        while b"\n" not in self.buffer:
            if self.closed:
                return None
            try:
                data = self.sock.recv(65536)
            except (ConnectionError, ssl.SSLError):
                # A reset or a TLS close without close_notify: the end.
                data = b""
            if not data:
                self.closed = True
                if not self.buffer:
                    return None
                line, self.buffer = self.buffer, b""
                return line.decode("utf-8", "replace")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def readQuiet(self, quiet):
        """Every line the server sends until it is silent for C{quiet} seconds."""
        lines = []
        timeout = self.sock.gettimeout()
        self.sock.settimeout(quiet)
        try:
            while True:
                line = self.readLine()
                if line is None:
                    break
                lines.append(line)
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(timeout)
        return lines

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


@dataclass
class Target:
    """Where the lab listeners of a running server are, and how to trust it."""

    host: str
    ports: dict          # listener name -> port
    implicit: set        # listener names with TLS from the first byte
    cafile: str          # the server's certificate
    directory: str       # where a command's relative var/... paths point

    def context(self):
        return ssl.create_default_context(cafile=self.cafile)

    def deliver(self, subject):
        """A message for demo@lab.test over the smtp listener, as another terminal would."""
        message = ("From: alice@example.org\r\nTo: demo@lab.test\r\nSubject: %s\r\n\r\n"
                   "Sent while you were watching.\r\n" % (subject,))
        with smtplib.SMTP(self.host, self.ports["smtp"], local_hostname="client.example",
                          timeout=10) as client:
            client.sendmail("alice@example.org", ["demo@lab.test"], message.encode("utf-8"))


def answerChallenge(line, previous, greeting):
    """
    The guide's client line C{line} computed again for this run when it
    answers a challenge: an APOP digest from this greeting's timestamp, a
    CRAM-MD5 response to the challenge in C{previous} (the server's last line).
    """
    apop = re.match(r"^APOP (\S+) [0-9a-f]{32}$", line)
    if apop and apop.group(1) in PASSWORDS:
        stamp = re.search(r"<[^>]+>", greeting or "")
        if stamp:
            digest = hashlib.md5((stamp.group(0) + PASSWORDS[apop.group(1)]).encode()).hexdigest()
            return "APOP %s %s" % (apop.group(1), digest)
    challenge = re.match(r"^(?:334|\+) (PD[A-Za-z0-9+/]+=*)$", previous or "")
    if challenge:
        try:
            user, digest = base64.b64decode(line, validate=True).decode().split(" ")
        except ValueError:
            return line
        if user in PASSWORDS and re.fullmatch("[0-9a-f]{32}", digest):
            mac = hmac.new(PASSWORDS[user].encode(), base64.b64decode(challenge.group(1)),
                           "md5").hexdigest()
            return base64.b64encode(("%s %s" % (user, mac)).encode()).decode()
    return line


def connect(target, listener, timeout):
    sock = LineSocket(socket.create_connection((target.host, target.ports[listener]),
                                               timeout=timeout), timeout)
    if listener in target.implicit:
        sock.startTLS(target.context())
    return sock


def replaySession(block, target, timeout=10.0):
    """
    Run C{block}'s session against C{target}.

    @return: the transcript as it happened, a list of (kind, line) pairs as in
        L{sessionSteps} (server lines as sent, client lines as the guide has
        them, though a challenge's answer was computed again), then whatever
        the server sent after the guide's last line.
    """
    sock = connect(target, block.listener, timeout)
    happened = []
    greeting = previous = None
    try:
        for kind, text in block.steps:
            if kind == "C":
                # Sent as computed for this run's challenge, shown as the
                # guide has it (the digest is expected to differ).
                sock.send(answerChallenge(text, previous, greeting))
                happened.append(("C", text))
            elif kind == "S":
                try:
                    line = sock.readLine()
                except socket.timeout:
                    happened.append(("S", "(no reply within %s s)" % (timeout,)))
                    return happened
                if line is None:
                    happened.append(("S", "(connection closed)"))
                    return happened
                if greeting is None:
                    greeting = line
                previous = line
                happened.append(("S", line))
            elif kind == "tls":
                sock.startTLS(target.context())
                happened.append(("tls", None))
            else:
                target.deliver(text)
                happened.append(("deliver", text))
        # The guide's session ends there: the server must have hung up.
        try:
            extra = sock.readLine()
        except socket.timeout:
            extra = "(still connected %s s after the guide's last line)" % (timeout,)
        while extra is not None:
            happened.append(("S", extra))
            if extra.startswith("(still"):
                break
            try:
                extra = sock.readLine()
            except socket.timeout:
                break
        return happened
    finally:
        sock.close()


def renderSession(steps):
    """Session steps as the guide writes them."""
    out = []
    for kind, text in steps:
        if kind == "tls":
            out.append("# TLS handshake")
        elif kind == "deliver":
            out.append("# (another terminal sends demo a message: Subject: %s)" % (text,))
        else:
            out.append(("%s: %s" % (kind, text)).rstrip())
    return out


def maskShown(line):
    """A rendered session line masked: the line's text, after its C:/S: prefix."""
    line = line.rstrip()
    if line[:3] in ("C: ", "S: "):
        return line[:3] + mask(line[3:])
    return mask(line)


def compareSession(block, happened):
    """
    None when the server said what the guide shows (after L{mask}), else a
    unified diff of the guide's session against what happened.
    """
    expected = renderSession(block.steps)
    actual = renderSession(happened)
    # Server lines equal under the masks are shown as the guide has them, so
    # the diff shows only real disagreements.
    shown = []
    for i, line in enumerate(actual):
        if i < len(expected) and maskShown(line) == maskShown(expected[i]):
            shown.append(expected[i])
        else:
            shown.append(line)
    if [l.rstrip() for l in shown] == [l.rstrip() for l in expected]:
        return None
    return "\n".join(difflib.unified_diff(expected, shown, "the guide", "the server", lineterm=""))


# -- running a command

def labCommand(command, target):
    """C{command} with the lab ports replaced by C{target}'s."""
    for name, port in LAB_PORTS.items():
        command = re.sub(r"(?<=:)%d\b" % (port,), str(target.ports[name]), command)
    return command


def runCommand(command, target, timeout=30):
    """Run a guide command (lab ports mapped) in C{target.directory}: its output lines."""
    result = subprocess.run(labCommand(command, target), shell=True, cwd=target.directory,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                 "HOME": target.directory, "LANG": "C.UTF-8"})
    out = result.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
    # The server's ports as the lab has them, where the output names one.
    for name, port in target.ports.items():
        out = re.sub(r"\b%d\b" % (port,), str(LAB_PORTS[name]), out)
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if result.returncode != 0:
        lines.append("(exit status %d: %s)" % (
            result.returncode, result.stderr.decode("utf-8", "replace").strip()))
    return lines


def compareCommand(command, expected, actual):
    """None when the command's output is what the guide shows (after L{mask}), else a diff."""
    if [mask(l.rstrip()) for l in expected] == [mask(l.rstrip()) for l in actual]:
        return None
    return "\n".join(difflib.unified_diff(
        ["$ " + command] + expected, ["$ " + command] + actual, "the guide", "the server",
        lineterm=""))


# -- recording the guide's blocks from a running server

def recordSession(block, target, quiet=0.3):
    """
    Run the client lines of C{block} against C{target}, reading whatever
    the server says after each client line until it is quiet for C{quiet}
    seconds (a message's lines after DATA are sent without waiting).

    @return: the new block body (lines).
    """
    sock = connect(target, block.listener, 10)
    out = []
    greeting = previous = None

    def drain():
        nonlocal greeting, previous
        for line in sock.readQuiet(quiet):
            if greeting is None:
                greeting = line
            previous = line
            out.append(("S", line))
    try:
        drain()
        inData = False
        for kind, text in block.steps:
            if kind == "C":
                text = answerChallenge(text, previous, greeting)
                sock.send(text)
                out.append(("C", text))
                # Each line is answered before the next is sent, as typed by
                # hand; the lines of an SMTP message get no answer until ".".
                if inData and text != ".":
                    continue
                drain()
                inData = (previous or "").startswith("354 ")
            elif kind == "tls":
                sock.startTLS(target.context())
                out.append(("tls", None))
                drain()
            elif kind == "deliver":
                target.deliver(text)
                out.append(("deliver", text))
                drain()
    finally:
        sock.close()
    return renderSession(out)


def recordCommand(block, target):
    body = []
    for command, _, written in block.steps:
        body.extend(written)
        body.extend(l.rstrip() for l in runCommand(command, target))
    return body


CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_CONFIG = os.path.join(CHECKOUT, "etc", "mailstack.toml")


def labConfigText(ports=None, path=LAB_CONFIG):
    """
    The lab config (etc/mailstack.toml) for a server in a directory of its
    own: its C{../var} paths made C{var}, and every endpoint's port replaced
    (C{ports}: lab port -> port; by default 0, any free port). The rest, the
    settings the guide's sessions depend on, is left as the lab has it.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = text.replace('"../var', '"var')
    found = []

    def port(match):
        found.append(int(match.group(1)))
        return "tcp:%d:" % ((ports or {}).get(int(match.group(1)), 0),)
    text = re.sub(r"tcp:(\d+):", port, text)
    missing = set(LAB_PORTS.values()) - set(found)
    if missing:
        raise GuideFormatError("%s: no listener on the lab ports %s" % (
            path, ", ".join(map(str, sorted(missing)))))
    return text


def freePort():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingServer:
    """
    A real lab server for recording: C{twistd mailstack} (as C{make run}
    starts it) from the lab config on free ports, in a fresh directory.
    """

    def __init__(self, directory):
        import time
        self.directory = directory
        os.makedirs(directory)
        ports = {lab: freePort() for lab in LAB_PORTS.values()}
        # The lab's other listeners (the web console, ...) on free ports too.
        with open(LAB_CONFIG, encoding="utf-8") as f:
            for other in re.findall(r"tcp:(\d+):", f.read()):
                ports.setdefault(int(other), freePort())
        config = os.path.join(directory, "mailstack.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(labConfigText(ports))
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        self.log = open(os.path.join(directory, "twistd.log"), "wb")
        # The checkout's mailstack (and its twistd plugin), not an older
        # installed copy: the one the replay test runs in-process.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [CHECKOUT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        self.process = subprocess.Popen(
            [twistd, "--nodaemon", "--pidfile=", "mailstack", "--config", config],
            cwd=directory, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        names = {port: name for name, port in LAB_PORTS.items()}
        self.target = Target("127.0.0.1", {names[lab]: port for lab, port in ports.items()
                                           if lab in names},
                             {"submissions", "pop3s", "imaps"},
                             os.path.join(directory, "var", "tls", "cert.pem"), directory)
        deadline = time.monotonic() + 30
        for port in self.target.ports.values():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.stop()
                        raise SystemExit("the lab server did not start: see %s" % (
                            self.log.name,))
                    time.sleep(0.1)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.log.close()


def record(guide, workDirectory):
    """
    Write into C{guide} what real lab servers answer to its blocks: one
    fresh server per chapter ("## " heading) with blocks, in order.
    """
    with open(guide, encoding="utf-8") as f:
        text = f.read()
    blocks = parseGuide(text)
    lines = text.split("\n")
    replaced = []
    server = None
    chapter = None
    chapters = 0
    try:
        for block in blocks:
            if block.illustrative:
                continue
            if block.chapter != chapter:
                if server is not None:
                    server.stop()
                chapter = block.chapter
                chapters += 1
                server = RecordingServer(os.path.join(workDirectory, "chapter-%d" % (chapters,)))
                print("%s: lab server in %s" % (chapter, server.directory))
            body = (recordSession(block, server.target) if block.kind == "session"
                    else recordCommand(block, server.target))
            replaced.append((block.bodyStart, block.bodyStart + len(block.body), body))
    finally:
        if server is not None:
            server.stop()
    for start, end, body in reversed(replaced):
        lines[start:end] = body
    with open(guide, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "record":
        raise SystemExit("usage: python -m tests.labguide record GUIDE WORKDIR"
                         " (WORKDIR: a new directory for the lab servers' data)")
    record(sys.argv[2], sys.argv[3])
