"""
Eager writes on plain TCP sessions: a reply is handed to the kernel at once.

Twisted's TCP transport buffers every C{write()} and sends it on the
reactor's next turn: it registers the socket for writability
(C{epoll_ctl}), waits for the poll, sends, and unregisters it. A session
that answers one command at a time (an SMTP transaction is four replies)
paid two C{epoll_ctl} calls and a reactor turn per reply: under the bench's
10-session SMTP load, 49,000 C{epoll_ctl} for 6,000 messages. asyncio's
transports try C{send()} at once and buffer only what the kernel did not
take; L{EagerServer} does the same:

  - when nothing is buffered (the socket is not registered for writing),
    the data is sent now; what the kernel did not take is buffered by
    Twisted's own C{write()}, behind nothing, so the order is kept;
  - anything else takes Twisted's path unchanged: TLS (implicit, where
    C{twisted.protocols.tls} is the transport's protocol, or started with
    STARTTLS), a write while data is buffered, a transport closing or
    closed, a pull (non-streaming) producer (it is asked for more only when
    the buffer drains, so its data must go through the buffer), data that
    is not C{bytes}, and a failed send (Twisted's next write attempt meets
    the error and closes the connection as usual).

Streaming producers are paused by Twisted when its buffer fills, as before.
Wrappers above the transport (transcripts, byte counts, compression) see the
same C{write()} calls either way.

Whether anything is buffered is known without Twisted's private buffer
attributes: Twisted must register the socket for writing whenever it holds
unsent data (nothing else would ever send it), and it does that through the
descriptor's own C{startWriting}/C{stopWriting}, which L{EagerServer}
overrides to keep a flag. C{tests/e2e/test_eager_write.py} checks this on a
real socket, so a Twisted that changed it fails there loudly.

L{EagerEndpoint} wraps a listener's endpoint: the TCP ports it makes give
their connections this transport (C{Port.transport} is Twisted's way of
choosing the connection class of a port); other ports (UNIX) are left alone.
The service wraps only the listeners whose plug-in asks
(C{ProtocolBuilt.eagerWrites}: SMTP, which answers each command in one
write). IMAP and POP3 write a reply in many pieces (each untagged line of a
SELECT), which Twisted joins into one send per reactor turn; sent at once,
each would be a system call and a packet of its own: the IMAP busy class
made 32 sends per session instead of 9.
"""

from twisted.internet import tcp
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

__all__ = ["EagerServer", "EagerEndpoint", "useEagerWrites"]


class EagerServer(tcp.Server):
    """
    A server-side TCP connection that sends a write at once when nothing is
    waiting to be sent (see the module's docstring).

    @ivar writeRegistered: whether the socket is registered for writability:
        Twisted holds unsent data (or a close or half-close waits for the
        buffer to drain).
    @ivar eager: whether writes may be sent at once at all: not when the
        protocol is TLS (implicit TLS), whose ciphertext keeps Twisted's path.
    """

    writeRegistered = False
    eager = True

    def __init__(self, sock, protocol, client, server, sessionno, reactor):
        self.eager = not isinstance(protocol, TLSMemoryBIOProtocol)
        tcp.Server.__init__(self, sock, protocol, client, server, sessionno, reactor)

    def startWriting(self):
        self.writeRegistered = True
        tcp.Server.startWriting(self)

    def stopWriting(self):
        self.writeRegistered = False
        tcp.Server.stopWriting(self)

    def sendsNow(self):
        """Whether a write now goes straight to the kernel."""
        return (self.eager and not self.writeRegistered and not self.TLS
                and self.connected and not self.disconnecting
                and (self.producer is None or self.streamingProducer))

    def write(self, data):
        if type(data) is bytes and data and self.sendsNow():
            sent = self.writeSomeData(data)
            if type(sent) is int:  # else the connection is lost: Twisted's path finds out
                if sent == len(data):
                    return
                data = data[sent:]
        tcp.Server.write(self, data)

    def writeSequence(self, iovec):
        if self.sendsNow():
            iovec = list(iovec)
            if all(type(piece) is bytes for piece in iovec):
                self.write(b"".join(iovec))
                return
        tcp.Server.writeSequence(self, iovec)


def useEagerWrites(port):
    """
    Give the connections C{port} accepts from now on an L{EagerServer}
    transport, if it is a TCP port with Twisted's plain transport.

    @return: C{port}
    """
    if isinstance(port, tcp.Port) and port.transport is tcp.Server:
        port.transport = EagerServer
    return port


@implementer(IStreamServerEndpoint)
class EagerEndpoint:
    """
    An C{IStreamServerEndpoint} wrapping another: the same port, its TCP
    connections with eager writes (L{useEagerWrites}).
    """

    def __init__(self, endpoint):
        self.endpoint = endpoint

    def listen(self, factory):
        return self.endpoint.listen(factory).addCallback(useEagerWrites)
