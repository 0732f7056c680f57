"""
Test doubles shared by the unit tests: transports that record STARTTLS, and a
clock whose thread pool runs work at once. One copy each, so a fix to how a
fake mimics Twisted reaches every test.
"""

from twisted.internet import task
from twisted.internet.interfaces import ISSLTransport, ITLSTransport
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer


class SyncThreadPool:
    """Runs 'threaded' work at once, so a checker in a thread answers synchronously."""

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        try:
            result = f(*args, **kwargs)
        except Exception:
            onResult(False, Failure())
        else:
            onResult(True, result)


class FakeReactor(task.Clock):
    """A clock that also offers a synchronous thread pool."""

    def getThreadPool(self):
        return SyncThreadPool()

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


class FakeTLSTransport(StringTransport):
    """
    A L{StringTransport} with C{startTLS}: records what was written before it
    (C{tlsStarted}, L{None} until then) and the context (C{tlsContext}), and
    whether the connection was aborted (C{aborted}). It claims no TLS
    interface: the engines under test are told their TLS mode by settings.
    """

    def __init__(self, *args, **kwargs):
        StringTransport.__init__(self, *args, **kwargs)
        self.tlsStarted = None
        self.tlsContext = None
        self.aborted = False

    def startTLS(self, context, normal=True):
        self.tlsStarted = self.value()
        self.tlsContext = context

    def abortConnection(self):
        self.aborted = True
        self.loseConnection()


@implementer(ITLSTransport)
class TLSStringTransport(FakeTLSTransport):
    """
    A plaintext TCP connection that can start TLS, as C{tcp.Server} can: it
    provides L{ITLSTransport}, and L{ISSLTransport} once C{startTLS} ran.
    """

    def startTLS(self, context, normal=True):
        FakeTLSTransport.startTLS(self, context, normal)
        alsoProvides(self, ISSLTransport)
