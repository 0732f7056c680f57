"""
Open sessions per protocol and per client address, the connection limits of
each listener, and the deadline for finishing one command line.

The per-IP limit is per service (protocol name) and client IP, like Postfix's
C{smtpd_client_connection_count_limit}: a class of students behind one NAT
address filling the IMAP limit can still send mail. Listeners of the same
protocol name share the count (IMAP on 143 and IMAPS on 993 are one service).
Each listener also has a cap on its open connections from all addresses
(C{max_connections}, like Dovecot's C{client_limit} per login service), so
many addresses cannot hold every file descriptor, and one busy listener cannot
starve the others. A refused client gets one line (its protocol's "try later"
reply) and is disconnected before the protocol's own code ever runs.

The wrapper protocol is transparent: everything the inner protocol asks of its
transport (write, getPeer, startTLS, getHandle...) is forwarded, and it provides
the interfaces its own transport provides, including ISSLTransport once
STARTTLS has run. It is also where the listener's metrics
(L{mailstack.instruments.IListenerMetrics}) see connections come, go or be
refused, and TLS handshakes end (it is the protocol TLS wraps, for implicit
TLS and STARTTLS alike).
"""

import collections
import ipaddress

from OpenSSL import SSL
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import directlyProvides, implementer, providedBy

from mailstack.instruments import (
    IMPLICIT, NO_LISTENER_METRICS, REFUSED_MAX_CONNECTIONS, REFUSED_PER_IP, STARTTLS)

log = Logger()


def clientIP(address):
    """
    The client IP of a peer address as a string (IPv4-mapped IPv6 addresses
    as plain IPv4), or None for peers without one (UNIX sockets).
    """
    host = getattr(address, "host", None)
    if not host:
        return None
    try:
        parsed = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    mapped = getattr(parsed, "ipv4_mapped", None)
    return str(mapped if mapped is not None else parsed)


class SessionCounter:
    """
    Counts the sessions of the whole server: open ones per protocol name and per
    client IP, and totals since start (for a console and benchmarks).

    One instance is shared by every listener (service.py makes it).

    @ivar total: {protocol: sessions accepted since start}.
    @ivar refused: {protocol: connections refused by a limit since start}.
    """

    def __init__(self):
        self._open = collections.Counter()
        self._perIP = collections.defaultdict(collections.Counter)
        self.total = collections.Counter()
        self.refused = collections.Counter()
        # With [server] workers: {protocol: {ip: n}}, the sessions the other
        # processes of the server have open, as last heard
        # (mailstack.workerlink); the per-IP limit counts them too.
        self.elsewhere = {}

    def open(self, protocol, ip):
        """
        Count a new session of C{protocol} from C{ip} (None: no IP, not counted
        per address).
        """
        self._open[protocol] += 1
        self.total[protocol] += 1
        if ip is not None:
            self._perIP[protocol][ip] += 1

    def close(self, protocol, ip):
        """
        Forget a session counted by L{open}.
        """
        if self._open[protocol] > 0:
            self._open[protocol] -= 1
        if not self._open[protocol]:
            del self._open[protocol]
        if ip is not None and protocol in self._perIP:
            perIP = self._perIP[protocol]
            perIP[ip] -= 1
            if perIP[ip] <= 0:
                del perIP[ip]
            if not perIP:
                del self._perIP[protocol]

    def refuse(self, protocol, ip):
        """
        Note a connection refused by a limit (only the total is kept).
        """
        self.refused[protocol] += 1

    def count(self, protocol=None, ip=None):
        """
        Open sessions: of C{protocol} (all protocols if None) from C{ip}
        (all clients if None).
        """
        if ip is None:
            if protocol is None:
                return sum(self._open.values())
            return self._open.get(protocol, 0)
        if protocol is None:
            return sum(perIP.get(ip, 0) for perIP in self._perIP.values())
        perIP = self._perIP.get(protocol)
        return perIP.get(ip, 0) if perIP else 0

    def serverCount(self, protocol, ip):
        """
        Open sessions of C{protocol} from C{ip} in every process of the
        server: this one's and L{elsewhere}'s.
        """
        return self.count(protocol, ip) + self.elsewhere.get(protocol, {}).get(ip, 0)

    def perIP(self):
        """This process's open sessions per protocol and client IP: C{{protocol: {ip: n}}}."""
        return {p: dict(c) for p, c in self._perIP.items()}

    def snapshot(self):
        """
        A plain-data copy of the counters::

            {"open": {protocol: n}, "perIP": {protocol: {ip: n}},
             "total": {protocol: n}, "refused": {protocol: n}}
        """
        return {
            "open": dict(self._open),
            "perIP": self.perIP(),
            "total": dict(self.total),
            "refused": dict(self.refused),
        }


class _RefusingProtocol(Protocol):
    """
    Sends the refusal line and hangs up; stands in for a refused session.
    """

    def __init__(self, refusal):
        self.refusal = refusal

    def connectionMade(self):
        if self.refusal:
            self.transport.write(self.refusal)
        self.transport.loseConnection()

    def dataReceived(self, data):
        """Ignore whatever the refused client sends while we hang up."""


@implementer(IHandshakeListener)
class LimitingProtocol(ProtocolWrapper):
    """
    Counts its session in the factory's L{SessionCounter} while connected and
    otherwise passes everything through.

    TLS (implicit, or started by STARTTLS) tells it when its handshake is
    done (L{IHandshakeListener}); it reports the handshake to the listener's
    metrics. A session that ends on a TLS error before that counts a failed
    one. (The news is not passed inside: no engine listens, and a
    L{ProtocolWrapper} inside would forward it back here as its transport.)
    """

    _counted = False
    _ip = None
    _tlsMode = None  # IMPLICIT or STARTTLS once TLS is on, until its handshake ends

    def makeConnection(self, transport):
        # Replies are written in several pieces (status line, then a message from
        # a producer); with Nagle's algorithm the last piece waited ~40 ms for the
        # client's delayed ACK (POP3 RETR ran at 23 messages/s: bench/).
        setNoDelay = getattr(transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            try:
                setNoDelay(True)
            except OSError:
                pass  # not a TCP socket (UNIX endpoint)
        self._ip = clientIP(transport.getPeer())
        self.factory.counter.open(self.factory.protocolName, self._ip)
        self._counted = True
        self.factory.metrics.sessionOpened()
        if self.factory.implicitTLS:
            self._tlsMode = IMPLICIT
        ProtocolWrapper.makeConnection(self, transport)

    def startTLS(self, *args, **kwargs):
        """
        Start TLS on the real transport, then provide what it now provides
        (ISSLTransport) so the inner protocol sees the change.
        """
        self._tlsMode = STARTTLS
        result = self.transport.startTLS(*args, **kwargs)
        directlyProvides(self, providedBy(self.transport))
        return result

    def handshakeCompleted(self):
        """TLS is up: count the handshake."""
        mode, self._tlsMode = self._tlsMode, None
        if mode is not None:
            self.factory.metrics.tlsHandshake(mode, True)

    def connectionLost(self, reason):
        if self._tlsMode is not None and reason.check(SSL.Error):
            self.factory.metrics.tlsHandshake(self._tlsMode, False)
        self._tlsMode = None
        if self._counted:
            self._counted = False
            self.factory.counter.close(self.factory.protocolName, self._ip)
            self.factory.metrics.sessionClosed()
        ProtocolWrapper.connectionLost(self, reason)


class LimitingFactory(WrappingFactory):
    """
    Wraps a listener's factory: counts its sessions and refuses a client IP
    that already has C{maxPerIP} sessions of the same protocol name, and any
    client once the listener has C{maxConnections} open.

    @param counter: the server's L{SessionCounter}.
    @param protocolName: the service name counted (C{smtp}, C{imap}...).
    @param maxPerIP: open sessions allowed per client IP; 0 means no limit.
        Peers without an IP (UNIX sockets) are never limited.
    @param refusal: the bytes sent to a refused client (one protocol line
        with CRLF), e.g. C{b"421 4.7.0 Too many connections from your address\\r\\n"}.
    @param maxConnections: open connections this listener accepts from all
        addresses together; 0 means no limit. Over it a client gets the same
        refusal line.
    @param metrics: the listener's L{mailstack.instruments.IListenerMetrics}.
    @param implicitTLS: whether TLS wraps this factory (an implicit-TLS
        listener): each session starts with a handshake.
    """

    noisy = False  # no "Starting/Stopping factory" lines for every listener

    protocol = LimitingProtocol

    def __init__(self, wrappedFactory, counter, protocolName, maxPerIP, refusal,
                 maxConnections=0, metrics=NO_LISTENER_METRICS, implicitTLS=False):
        WrappingFactory.__init__(self, wrappedFactory)
        self.counter = counter
        self.protocolName = protocolName
        self.maxPerIP = maxPerIP
        self.refusal = refusal
        self.maxConnections = maxConnections
        self.metrics = metrics
        self.implicitTLS = implicitTLS

    def logPrefix(self):
        return "%s (limit)" % (self.protocolName,)

    def buildProtocol(self, addr):
        ip = clientIP(addr)
        if self.maxConnections and len(self.protocols) >= self.maxConnections:
            self.counter.refuse(self.protocolName, ip)
            self.metrics.connectionRefused(REFUSED_MAX_CONNECTIONS)
            log.info("{protocol}: refused connection from {ip}: this listener has "
                     "{limit} connections open, its max_connections",
                     protocol=self.protocolName, ip=ip, limit=self.maxConnections)
            return _RefusingProtocol(self.refusal)
        if ip is not None and self.maxPerIP:
            current = self.counter.serverCount(self.protocolName, ip)
            if current >= self.maxPerIP:
                self.counter.refuse(self.protocolName, ip)
                self.metrics.connectionRefused(REFUSED_PER_IP)
                log.info("{protocol}: refused connection from {ip}: {current} "
                         "sessions open, limit {limit} per address",
                         protocol=self.protocolName, ip=ip, current=current,
                         limit=self.maxPerIP)
                return _RefusingProtocol(self.refusal)
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        self.metrics.connectionAccepted()
        return self.protocol(self, inner)


class CommandLineDeadline:
    """
    Bounds the time a client may take to send one command line, from its first
    octet to its line feed (Postfix's C{smtpd_per_record_deadline}): the idle
    timer restarts on every octet, so a client sending one octet every few
    seconds would otherwise hold the session forever.

    The engine hands over every chunk it receives (L{received}); the deadline
    runs while input ends inside a line and stops at the line feed. Input the
    engine is not reading as command lines (an SMTP DATA body, an IMAP literal)
    is not timed: C{readingLines()} answers whether it is, and when the deadline
    passes while it is not, the deadline starts again (the idle timer bounds
    such input, as before).

    @param clock: an C{IReactorTime}.
    @param seconds: the deadline (C{limits.command_line_timeout}).
    @param expired: called with no argument when a line took too long.
    @param readingLines: callable, true while the engine reads command lines.
    @param peerText: callable returning the client's address as log lines
        show it (the session's C{peerText}).
    """

    def __init__(self, clock, seconds, expired, readingLines=lambda: True,
                 peerText=lambda: "-"):
        self.clock = clock
        self.seconds = seconds
        self.expired = expired
        self.readingLines = readingLines
        self.peerText = peerText
        self._call = None

    def received(self, data):
        """
        A chunk of input arrived: start the deadline if it ends inside a line
        (unless one is running for that line), stop it if it ends a line.
        """
        if not data:
            return
        end = data.rfind(b"\n")
        if end == len(data) - 1:
            self.cancel()
        elif end >= 0 or self._call is None:
            # A new line began in this chunk (or the first octets of one).
            self.cancel()
            self._call = self.clock.callLater(self.seconds, self._expire)

    def _expire(self):
        self._call = None
        if self.readingLines():
            log.info("{peer}: a command line was not finished within {seconds:g} s, "
                     "closing", peer=self.peerText(), seconds=self.seconds)
            self.expired()
        else:
            self._call = self.clock.callLater(self.seconds, self._expire)

    def cancel(self):
        """Stop the deadline (a line ended, or the connection is gone)."""
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
