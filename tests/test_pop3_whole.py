"""
Tests for POP3 RETR of a message no larger than a chunk
(L{mailstack.pop3.server.POP3Server._sendWhole}): one write with the +OK
line and the terminator, no producer, the same octets as the streaming path.
"""

from twisted.internet import defer
from twisted.trial import unittest

from mailstack.pop3.server import POP3Server, POP3Settings
from tests.stores import everyStore
from tests.test_dotstuff import referenceStuffing
from tests.test_pop3_server import (
    MESSAGE_1, MESSAGE_2, ConnectionTransport, POP3TestMixin, Session)

SEEN = "\\Seen"


class RecordingTransport(ConnectionTransport):
    """A connection transport that also keeps every write apart."""

    def __init__(self, *args, **kwargs):
        ConnectionTransport.__init__(self, *args, **kwargs)
        self.writes = []

    def write(self, data):
        self.writes.append(data)
        ConnectionTransport.write(self, data)


class FailingFile:
    """A message file whose read fails (a disk error)."""

    closed = False

    def read(self, size=-1):
        raise OSError(5, "Input/output error")

    def close(self):
        self.closed = True


class WholeMessageTests(POP3TestMixin, unittest.TestCase):
    """
    RETR of small messages over a transport that manages producers as a
    real connection does.
    """

    def setUp(self):
        POP3TestMixin.setUp(self)
        self.deliver(MESSAGE_1)
        self.deliver(MESSAGE_2)

    def session(self, **overrides):
        settings = dict(self.settings)
        settings.update(overrides)
        server = POP3Server(POP3Settings(**settings), self.portal,
                            self.users.allPlaintextSecrets, self.reactor)
        session = Session(server, RecordingTransport(), self.reactor)
        self.assertTrue(session.login().startswith(b"+OK Logged in"))
        session.transport.writes[:] = []
        return session

    def retr(self, message):
        return b"+OK %d octets\r\n" % (len(message),) + referenceStuffing(message)

    def test_oneWriteNoProducer(self):
        """A small message leaves in one write, dot-stuffed and terminated, with no producer registered."""
        session = self.session()
        self.assertEqual(session.send(b"RETR 1\r\n"), self.retr(MESSAGE_1))
        self.assertEqual(session.transport.writes, [self.retr(MESSAGE_1)])
        self.assertEqual(session.transport.history, [])

    def test_chunkSizeBoundary(self):
        """A message of exactly one chunk is sent whole; one octet more is streamed, with the same octets."""
        session = self.session(chunkSize=len(MESSAGE_1))
        self.assertEqual(session.send(b"RETR 1\r\n"), self.retr(MESSAGE_1))
        self.assertEqual(session.transport.history, [])
        session.send(b"QUIT\r\n")
        session = self.session(chunkSize=len(MESSAGE_1) - 1)
        self.assertEqual(session.send(b"RETR 1\r\n"), self.retr(MESSAGE_1))
        self.assertEqual([what for what, _ in session.transport.history],
                         ["register", "unregister"])

    def test_pipelinedAndMarkedSeen(self):
        """Pipelined RETRs are answered in order, each message marked \\Seen in the store."""
        session = self.session()
        out = session.send(b"RETR 2\r\nRETR 1\r\nRETR 2\r\nNOOP\r\n")
        self.assertEqual(out, self.retr(MESSAGE_2) + self.retr(MESSAGE_1)
                         + self.retr(MESSAGE_2) + b"+OK\r\n")
        inbox = self.inbox()
        self.successResultOf(inbox.sync(claimRecent=False))
        self.assertEqual([SEEN in info.flags for info in inbox.messages()], [True, True])

    def test_nextCommandWaitsForSeen(self):
        """The command after a RETR waits until the store has marked the message \\Seen; after a RETR of a message already seen, it does not."""
        session = self.session()
        maildrop = session.server.maildrop
        marking = []

        def markSeen(number):
            marking.append(defer.Deferred())
            return marking[-1]
        maildrop.markSeen = markSeen
        self.assertEqual(session.send(b"RETR 1\r\nNOOP\r\n"), self.retr(MESSAGE_1))
        session.transport.clear()
        marking[0].callback(None)
        self.assertEqual(session.transport.value(), b"+OK\r\n")
        maildrop.markSeen = lambda number: defer.succeed(None)
        self.assertEqual(session.send(b"RETR 1\r\nNOOP\r\n"), self.retr(MESSAGE_1) + b"+OK\r\n")

    def test_readFailure(self):
        """A small message that cannot be read gets -ERR [SYS/TEMP] before any of it is sent; the session goes on."""
        session = self.session()
        opened = []

        def openMessage(number):
            opened.append(FailingFile())
            return opened[-1]
        session.server.maildrop.openMessage = openMessage
        self.assertEqual(session.send(b"RETR 1\r\nNOOP\r\n"),
                         b"-ERR [SYS/TEMP] Message 1 cannot be read now\r\n+OK\r\n")
        self.assertTrue(opened[0].closed)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertFalse(session.transport.disconnecting)

    def test_openFailure(self):
        """A small message whose file cannot be opened gets -ERR [SYS/TEMP] too."""
        session = self.session()

        def openMessage(number):
            raise PermissionError(13, "Permission denied")
        session.server.maildrop.openMessage = openMessage
        self.assertEqual(session.send(b"RETR 2\r\nNOOP\r\n"),
                         b"-ERR [SYS/TEMP] Message 2 cannot be read now\r\n+OK\r\n")
        self.assertEqual(len(self.flushLoggedErrors(PermissionError)), 1)

    def test_largerThanSaid(self):
        """A message larger than a chunk though its size said not is streamed whole."""
        session = self.session(chunkSize=16)
        maildrop = session.server.maildrop
        maildrop.size = lambda number: 10
        self.assertEqual(session.send(b"RETR 1\r\n"),
                         b"+OK 10 octets\r\n" + referenceStuffing(MESSAGE_1))
        self.assertEqual(session.transport.history[0][0], "register")

    def test_sameAsStreamed(self):
        """Whole and streamed RETR send the same octets for messages with dots, bare CRs and no final line end."""
        for message in (b".\r\n", b"..\r\n.x\r\n", b"a\rb\r\n.c", b"x", b"\r\n.\r\n"):
            self.deliver(message)
        commands = b"".join(b"RETR %d\r\n" % (n,) for n in range(1, 8))
        whole = self.session()
        out = whole.send(commands)
        self.assertEqual(whole.transport.history, [])
        whole.send(b"QUIT\r\n")
        streamed = self.session(chunkSize=2)
        self.assertEqual(out, streamed.send(commands))
        self.assertEqual(len(streamed.transport.history), 2 * 6)  # all but "x" streamed


everyStore(globals())

