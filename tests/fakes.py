"""
Test doubles shared by the unit tests: transports that record STARTTLS, a
clock whose thread pool runs work at once, and the SMTP engine's collaborators
(policy, realm, users). One copy each, so a fix to how a fake mimics the real
thing reaches every test.
"""

from twisted.cred.portal import IRealm
from twisted.internet import defer, task
from twisted.internet.interfaces import ISSLTransport, ITLSTransport
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from mailstack.smtp.delivery import ISMTPSubmitter, RecipientDecision, Submitter
from mailstack.smtp.reply import Reply


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


@implementer(IRealm)
class SubmitterRealm:
    """The realm's SMTP side: any login is a submitter of its own address."""

    def requestAvatar(self, avatarId, mind, *interfaces):
        if isinstance(avatarId, bytes):
            avatarId = avatarId.decode()
        return ISMTPSubmitter, Submitter(avatarId), lambda: None


class FakePolicy:
    """
    Local domain lab.test with users alice and bob; records deliveries.
    """

    def __init__(self, plaintext=True):
        self.delivered = []
        self.plaintext = plaintext
        self.pending = None

    def plaintextSecretsAvailable(self):
        return self.plaintext

    def checkSender(self, sender, authenticated, submission):
        if authenticated and sender != authenticated:
            return Reply(553, "5.7.1", "not yours")
        return None

    def checkRecipient(self, recipient, authenticated, envelope=None):
        if recipient.endswith("@lab.test"):
            if recipient in ("alice@lab.test", "bob@lab.test"):
                return RecipientDecision("local", recipient)
            return RecipientDecision(None, recipient, Reply(550, "5.1.1", "User unknown"))
        if authenticated:
            return RecipientDecision("relay", recipient)
        return RecipientDecision(None, recipient, Reply(550, "5.7.1", "Relay access denied"))

    def deliver(self, envelope, received, spool, queueID):
        self.delivered.append((envelope.sender, list(envelope.recipients), received,
                               spool.read()))
        if self.pending is not None:
            return self.pending
        return defer.succeed(None)


class FakeUsers:
    """A users file holding C{addresses}, none of them {PLAIN}."""

    def __init__(self, *addresses):
        self.addresses = set(addresses)

    def lookup(self, address):
        return address if address.lower() in self.addresses else None

    def allPlaintextSecrets(self):
        return False
