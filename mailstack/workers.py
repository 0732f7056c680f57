"""
C{[server] workers = N}: N processes serving every listener of one server.

The first process (the one twistd started) binds every listener as usual and
serves them; L{WorkerSupervisor} then starts N - 1 more processes, each a
C{twistd mailstack --worker K} given the bound listening sockets as inherited
file descriptors, so the kernel hands each new connection to whichever
process accepts it first. The workers share the Maildir store the way two
servers on one host do: its dotlocks and the POP3 maildrop lock keep them
correct, and the watcher (inotify) tells each of the changes the others make.

The supervisor restarts a worker that exits, or that could not be started
at all (fork failing with EMFILE, ENOMEM...), after a pause that doubles
while it keeps failing (one log line per failure, counting them), and
stops every worker when the server stops (SIGTERM, then SIGKILL after a
grace period). A worker reads its standard input, a pipe
from the first process, and stops when that closes: a first process killed
outright leaves no worker behind. Each line a worker logs is logged again by
the first process, tagged C{worker K}.

Each worker also gets a pipe for reports after its listening sockets
(L{reportDescriptor}): its metrics, activity, submission records and live
transcripts go to the first process there (L{mailstack.workerlink}), so the
console and C{/metrics} show the whole server.
"""

import errno
import os
import re
import socket
import sys
from urllib.parse import quote, unquote

from twisted.application import service
from twisted.internet import abstract, address, defer, error, fdesc, protocol
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from mailstack import workerlink

log = Logger()

# The first file descriptor a worker gets its listening sockets on.
FIRST_INHERITED_FD = 3

# A worker that ran this long before exiting is restarted at once; one that
# did not is restarted after a pause that doubles up to RESTART_MAX.
STEADY_SECONDS = 30.0
RESTART_FIRST = 1.0
RESTART_MAX = 30.0

# How long stopping waits for a worker after SIGTERM before SIGKILL.
STOP_GRACE = 10.0


def reportDescriptor(inherited):
    """
    The descriptor of a worker's report pipe, given how many listening
    sockets it inherited (it comes right after them).
    """
    return FIRST_INHERITED_FD + inherited


def addressFamily(port):
    """
    The address family of a listening port (C{AF_INET}, C{AF_INET6} or
    C{AF_UNIX}), or L{None} if its socket cannot be handed to a worker.
    """
    host = port.getHost()
    if isinstance(host, address.IPv4Address):
        return socket.AF_INET
    if isinstance(host, address.IPv6Address):
        return socket.AF_INET6
    if isinstance(host, address.UNIXAddress):
        return socket.AF_UNIX
    return None


def formatInherited(listeners):
    """
    C{[(name, fd, family)]} -> the C{--inherit} argument of a worker (names
    percent-encoded: a listener may be called anything).
    """
    return ",".join("%s=%d:%d" % (quote(name, safe=""), fd, int(family))
                    for name, fd, family in listeners)


def parseInherited(text):
    """
    The C{--inherit} argument -> C{{listener name: (fd, family)}}.

    @raise ValueError: if it is not what L{formatInherited} writes.
    """
    listeners = {}
    for item in filter(None, text.split(",")):
        name, _, rest = item.rpartition("=")
        fd, _, family = rest.partition(":")
        if not name or not fd.isdigit() or not family.isdigit():
            raise ValueError("bad --inherit item %r" % (item,))
        listeners[unquote(name)] = (int(fd), int(family))
    return listeners


@implementer(IStreamServerEndpoint)
class InheritedEndpoint:
    """
    A listening socket given by the first process: the worker's endpoint for
    one listener. Listening adopts it (the port holds its own duplicate, so
    the inherited descriptor is closed).
    """

    def __init__(self, reactor, fd, family):
        self.reactor = reactor
        self.fd = fd
        self.family = family

    def listen(self, factory):
        try:
            port = self.reactor.adoptStreamPort(self.fd, self.family, factory)
        except Exception:
            return defer.fail()
        finally:
            os.close(self.fd)
        return defer.succeed(port)


class _Lines:
    """Split a stream into lines, holding back an unfinished one."""

    def __init__(self):
        self._held = b""

    def feed(self, data):
        lines = (self._held + data).split(b"\n")
        self._held = lines.pop()
        return lines

    def rest(self):
        held, self._held = self._held, b""
        return [held] if held else []


# twistd's own prefix on each line (time, then [system]); the first process
# adds its own when it logs the line again.
_TWISTD_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ")


class WorkerProtocol(protocol.ProcessProtocol):
    """One running worker as the supervisor sees it: its logs and its end."""

    def __init__(self, supervisor, number):
        self.supervisor = supervisor
        self.number = number
        self.started = supervisor.reactor.seconds()
        self.ended = defer.Deferred()
        self.running = True
        self.reportFD = None  # the report pipe's descriptor in the worker
        self.downlink = None  # a WorkerReporter writing to its standard input
        self._lines = {1: _Lines(), 2: _Lines()}

    def childDataReceived(self, fd, data):
        if fd == self.reportFD:
            if self.supervisor.reports is not None:
                self.supervisor.reports.received(self, data)
        elif fd in self._lines:
            for line in self._lines[fd].feed(data):
                self._log(line)

    def _log(self, line):
        text = _TWISTD_PREFIX.sub("", line.decode("utf-8", "replace").rstrip("\r"))
        if text:
            log.info("worker {number}: {line}", number=self.number, line=text)

    def processEnded(self, reason):
        for lines in self._lines.values():
            for line in lines.rest():
                self._log(line)
        self.running = False
        if self.downlink is not None:
            self.downlink.close()
        if self.supervisor.reports is not None:
            self.supervisor.reports.ended(self)
        self.supervisor.workerEnded(self, reason)
        self.ended.callback(None)


class WorkerSupervisor(service.Service):
    """
    Starts workers 2 to C{count}, restarts one that exits while the server
    runs, and stops them all with the server.

    @param reactor: provides C{spawnProcess}, C{callLater}, C{seconds}.
    @param count: the total number of processes (this one included).
    @param listeners: C{() -> [(name, fd, family)]}: the bound listening
        sockets to hand to each worker (asked when one starts).
    @param command: C{(number, inherit) -> argv} of a worker, C{inherit}
        being the C{--inherit} argument (descriptors as the worker sees them).
    @param reports: told what each worker reports on its report pipe
        (C{received(worker, data)}) and when it ends (C{ended(worker)}): a
        L{mailstack.workerlink.WorkerReports}, or L{None} (reports ignored).
    """

    name = "workers"

    def __init__(self, reactor, count, listeners, command, reports=None):
        self.reactor = reactor
        self.reports = reports
        self.count = count
        self.listeners = listeners
        self.command = command
        self.workers = {}       # number -> the running WorkerProtocol
        self._pauses = {}       # number -> the pause before its next restart
        self._restarts = {}     # number -> the pending restart's IDelayedCall
        self._failures = {}     # number -> its failures in a row (a steady run resets)

    def startService(self):
        service.Service.startService(self)
        for number in range(2, self.count + 1):
            self._start(number)

    def processes(self):
        """How many of the C{count} processes run now (this one included)."""
        return 1 + sum(1 for worker in self.workers.values() if worker.running)

    def _start(self, number):
        self._restarts.pop(number, None)
        worker = WorkerProtocol(self, number)
        down = ()
        try:
            # Its standard input: a pipe the first process writes to (the
            # other processes' counts, workerlink.SharedLimits) and whose
            # end tells the worker that the first process has gone.
            down = os.pipe()
            childFDs = {0: down[0], 1: "r", 2: "r"}
            given = []
            for offset, (name, fd, family) in enumerate(self.listeners()):
                childFDs[FIRST_INHERITED_FD + offset] = fd
                given.append((name, FIRST_INHERITED_FD + offset, family))
            worker.reportFD = reportDescriptor(len(given))
            childFDs[worker.reportFD] = "r"
            argv = self.command(number, formatInherited(given))
            self.reactor.spawnProcess(worker, argv[0], argv, env=os.environ.copy(),
                                      childFDs=childFDs)
        except Exception as e:
            # (EMFILE, ENOMEM, EAGAIN from fork...): no process, so no
            # processEnded will come; try again later as after a crash.
            for fd in down:
                os.close(fd)
            self._failed(number, "could not be started (%s)" % (_describe(e),), 0.0)
            return
        os.close(down[0])
        worker.downlink = workerlink.WorkerReporter.toPipe(self.reactor, down[1])
        self.workers[number] = worker
        if self.reports is not None:
            self.reports.started(worker, worker.downlink)
        log.info("worker {number} started (pid {pid})", number=number,
                 pid=getattr(worker.transport, "pid", "?"))

    def workerEnded(self, worker, reason):
        if self.workers.get(worker.number) is worker:
            del self.workers[worker.number]
        how = reason.value
        what = ("exited with status %s" % (how.exitCode,) if how.signal is None
                else "ended by signal %s" % (how.signal,))
        if not self.running:
            log.info("worker {number} stopped ({what})", number=worker.number, what=what)
            return
        self._failed(worker.number, what, self.reactor.seconds() - worker.started)

    def _failed(self, number, what, ranFor):
        """
        Worker C{number} ended (C{what}) after C{ranFor} seconds, or could
        not be started: start it again, at once if it had run steadily,
        otherwise after a pause that doubles with each failure in a row up
        to L{RESTART_MAX}. One log line per failure, counting them.
        """
        if not self.running:
            return
        if ranFor >= STEADY_SECONDS:
            self._failures[number] = 1
            pause = 0.0
        else:
            self._failures[number] = self._failures.get(number, 0) + 1
            pause = self._pauses.get(number, RESTART_FIRST)
        self._pauses[number] = (RESTART_FIRST if pause == 0.0
                                else min(2 * pause, RESTART_MAX))
        log.error("worker {number} {what} after {seconds:.1f} s (failure {failures} "
                  "in a row); restarting it in {pause:.0f} s",
                  number=number, what=what, seconds=ranFor,
                  failures=self._failures[number], pause=pause)
        self._restarts[number] = self.reactor.callLater(pause, self._start, number)

    def stopService(self):
        """
        SIGTERM to every worker; SIGKILL to those still running after
        L{STOP_GRACE} seconds. Fires once all have exited.
        """
        service.Service.stopService(self)
        for restart in self._restarts.values():
            if restart.active():
                restart.cancel()
        self._restarts.clear()
        workers = list(self.workers.values())
        for worker in workers:
            _signal(worker, "TERM")
        if not workers:
            return defer.succeed(None)

        def kill():
            for worker in workers:
                if worker.running:
                    log.warn("worker {number} still running {grace:.0f} s after SIGTERM: "
                             "killing it", number=worker.number, grace=STOP_GRACE)
                    _signal(worker, "KILL")
        killer = self.reactor.callLater(STOP_GRACE, kill)
        d = defer.gatherResults([worker.ended for worker in workers])

        def done(result):
            if killer.active():
                killer.cancel()
            return None
        return d.addBoth(done)


def _describe(exception):
    """An exception in a few words for one log line (an OSError by its errno's name)."""
    if isinstance(exception, OSError) and exception.errno is not None:
        return "%s: %s" % (errno.errorcode.get(exception.errno, exception.errno),
                           exception.strerror or exception)
    return "%s: %s" % (type(exception).__name__, exception)


def _signal(worker, name):
    try:
        worker.transport.signalProcess(name)
    except (error.ProcessExitedAlready, OSError):
        pass


def workerCommand(configPath, python=None):
    """
    The C{command} of L{WorkerSupervisor} for a server started with the
    config file C{configPath}: twistd in the foreground, logging to its
    standard output (which the first process reads).
    """
    python = python or sys.executable
    configPath = os.path.abspath(configPath)

    def command(number, inherit):
        return [python, "-c", "from twisted.scripts.twistd import run; run()",
                "--nodaemon", "--pidfile=", "--logfile=-",
                "mailstack", "--config", configPath,
                "--worker", str(number), "--inherit", inherit]
    return command


class _ParentPipe(abstract.FileDescriptor):
    """A worker's standard input, a pipe from the first process: its end is the parent's."""

    def __init__(self, reactor, onClose, fd=0, onData=None):
        abstract.FileDescriptor.__init__(self, reactor)
        self.fd = fd
        self.onClose = onClose
        self.onData = onData or (lambda data: None)
        fdesc.setNonBlocking(fd)

    def fileno(self):
        return self.fd

    def doRead(self):
        return fdesc.readFromFD(self.fd, self.onData)

    def connectionLost(self, reason):
        abstract.FileDescriptor.connectionLost(self, reason)
        self.onClose()


class ParentWatch(service.Service):
    """
    In a worker: stop the whole process when the first process goes away
    (its pipe on standard input closes), however it went; what it sends on
    that pipe goes to C{onData} (L{mailstack.workerlink.LimitsLink.received}).
    """

    name = "parent-watch"

    def __init__(self, reactor, fd=0, onData=None):
        self.reactor = reactor
        self.fd = fd
        self.onData = onData
        self._pipe = None

    def startService(self):
        service.Service.startService(self)
        self._pipe = _ParentPipe(self.reactor, self._parentGone, self.fd, self.onData)
        self._pipe.startReading()

    def _parentGone(self):
        if self.running:
            log.info("the first process has gone: this worker stops")
            self.reactor.stop()

    def stopService(self):
        service.Service.stopService(self)
        if self._pipe is not None:
            self._pipe.stopReading()
