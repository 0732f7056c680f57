"""
SMTP policy: who may send as whom, which recipients are local, who may relay,
and delivery of accepted mail into the store (or the relay queue, or the
lab's capture store: mailstack.capture).

The protocol (mailstack.smtp.server) asks; this module answers with values
(L{Reply}, L{RecipientDecision}) and never writes to the wire.
"""

import dataclasses
import io

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from mailstack.capture import CaptureEnvelope
from mailstack.instruments import CAPTURED, LOCAL, NO_METRICS, RELAYED
from mailstack.smtp.reply import Reply
from mailstack.storage.interfaces import StoreError, isNoSpace

log = Logger()


class ISMTPSubmitter(Interface):
    """
    The avatar of an authenticated SMTP client.
    """

    address = Attribute("str: the address the user logged in as (and may send from).")


@implementer(ISMTPSubmitter)
class Submitter:
    def __init__(self, address):
        self.address = address


def _submitterAdapter(account, avatarId):
    return Submitter(account.address), None


def avatarAdapters():
    """The realm adapters SMTP needs: an authenticated sender's identity."""
    return {ISMTPSubmitter: _submitterAdapter}


def literalFormat(text):
    """C{text} as a log format that formats to itself: its braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


# The temporary replies to a message not kept: any local fault, and a full disk
# (RFC 3463 4.3.1 "mail system full").
LOCAL_ERROR = Reply(451, "4.3.0", "Local error in processing; please try again")
NO_SPACE = Reply(452, "4.3.1", "Insufficient system storage; please try again later")


def storageFailureReply(error):
    """The reply to a message not kept because storing it failed with C{error}."""
    return NO_SPACE if isNoSpace(error) else LOCAL_ERROR


@dataclasses.dataclass(frozen=True)
class RecipientDecision:
    """
    C{kind} is C{"local"}, C{"relay"}, C{"capture"} (kept in the lab's capture
    store), C{"bounce"} (a magic recipient: captured, then bounced) or L{None}
    (refused, with C{reply}).
    """
    kind: str | None
    address: str
    reply: Reply | None = None


class ChainedReader(io.RawIOBase):
    """
    Read several binary sources one after the other, as one stream (a header
    prefix, then the spooled body), without copying the body into memory.
    """

    def __init__(self, *sources):
        self._all = [io.BytesIO(s) if isinstance(s, bytes) else s for s in sources]
        self._sources = list(self._all)

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        """Only rewinding (C{seek(0)}): the store reads the message once per recipient."""
        if (offset, whence) != (0, io.SEEK_SET):
            raise io.UnsupportedOperation("a ChainedReader only rewinds")
        for source in self._all:
            source.seek(0)
        self._sources = list(self._all)
        return 0

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size=-1):
        """
        The next octets of the current source (all that is left, if C{size}
        is negative or L{None}). Not C{RawIOBase}'s read, which made and
        zeroed a buffer of C{size} octets (the store asks for 64 KiB at a
        time) and then copied out of it, for every piece.
        """
        if size is None or size < 0:
            rest = b"".join(source.read() for source in self._sources)
            self._sources = []
            return rest
        while self._sources:
            data = self._sources[0].read(size)
            if data:
                return data
            self._sources.pop(0)
        return b""


class SMTPPolicy:
    """
    Recipient and sender rules of one server, and delivery into the store.

    @param domains: the local domains (lower case).
    @param users: the L{mailstack.auth.interfaces.IUserDirectory}.
    @param store: an L{IMailStore}.
    @param queue: a L{mailstack.relay.queue.RelayQueue} or L{None} (no smarthost).
    @param metrics: the server's L{mailstack.instruments.IMetrics}, told of
        every message kept.
    """

    def __init__(self, domains, users, store, queue=None, metrics=NO_METRICS):
        self.domains = tuple(domains)
        self.users = users
        self.store = store
        self.queue = queue
        self.metrics = metrics

    def plaintextSecretsAvailable(self):
        return self.users.allPlaintextSecrets()

    def isLocal(self, address):
        return address.rpartition("@")[2] in self.domains

    # The lab's part (C{[lab]}, set by the plug-in): the capture store
    # (L{mailstack.capture.CaptureStore}), whether mail for other domains is
    # captured instead of relayed (C{capture = true}), and the magic
    # recipients (L{mailstack.smtp.magic.MagicRecipients}).
    capture = None
    captureOutbound = False
    magic = None

    def checkSender(self, sender, authenticated, submission):
        """
        @return: L{None} to accept MAIL FROM, or the refusal L{Reply}.
        """
        if authenticated is not None and sender.lower() != authenticated.lower():
            return Reply(553, "5.7.1", "Sender address <%s> not owned by user %s" % (
                sender, authenticated))
        return None

    def checkRecipient(self, recipient, authenticated, envelope=None):
        """
        @param envelope: the transaction so far (its sender and client, for
            the magic recipients' greylist), or L{None}.
        @return: a L{RecipientDecision}, or a Deferred firing with one when the
            user directory must be asked (a local recipient) or a magic
            recipient answers slowly; it fails if the directory cannot answer
            (the server answers 451 4.3.0).
        """
        if self.magic:
            decision = self.magic.decide(recipient, envelope)
            if decision is not None:
                return decision
        if recipient == "postmaster":
            recipient = "postmaster@" + self.domains[0]
        if self.isLocal(recipient):
            if recipient.lower().partition("@")[0] == "postmaster":
                # RFC 5321 4.5.1: postmaster must always be accepted. Its Maildir
                # is created on delivery; adding the user later makes it readable.
                return RecipientDecision("local", recipient.lower())
            def decide(user):
                if user is None:
                    return RecipientDecision(None, recipient, Reply(
                        550, "5.1.1", "<%s>: Recipient address rejected: User unknown" % (
                            recipient,)))
                return RecipientDecision("local", recipient.lower())
            return defer.maybeDeferred(self.users.lookup, recipient).addCallback(decide)
        if authenticated is None:
            return RecipientDecision(None, recipient, Reply(
                550, "5.7.1", "<%s>: Relay access denied" % (recipient,)))
        if self.captureOutbound and self.capture is not None:
            # the lab's fake internet: kept, never relayed
            return RecipientDecision("capture", recipient)
        if self.queue is None:
            return RecipientDecision(None, recipient, Reply(
                550, "5.7.1", "<%s>: Relaying not available: no smarthost configured" % (
                    recipient,)))
        return RecipientDecision("relay", recipient)

    def deliver(self, envelope, received, spool, queueID):
        """
        Write the message durably for every recipient: local copies in each
        INBOX through the store (L{IMailStore.deliver}), relayed ones in the
        queue, as one: if one copy cannot be written, the copies already
        written are taken back, so the sender's retry does not make
        duplicates.

        @return: a Deferred firing with L{None} once every copy is on disk (the
            caller answers 250), or with the temporary-failure L{Reply} when
            nothing was kept: C{452 4.3.1} when the disk is full (RFC 3463
            "mail system full"), C{451 4.3.0} for other storage errors.
            What fails after the copies are durable (telling open IMAP
            sessions) is logged by the store and left to the next sync: the
            mail is accepted.
        """
        # The same recipient given twice gets one copy, as with Postfix.
        recipients = list(dict.fromkeys(envelope.recipients))
        local = [address for address, kind in recipients if kind == "local"]
        relay = [address for address, kind in recipients if kind == "relay"]
        captured = [address for address, kind in recipients if kind in ("capture", "bounce")]
        bounced = [address for address, kind in recipients if kind == "bounce"]
        returnPath = ("Return-Path: <%s>\r\n" % (envelope.sender,)).encode("utf-8")
        spool.seek(0, io.SEEK_END)
        size = len(received) + spool.tell()  # as relayed; local copies add Return-Path
        spool.seek(0)

        def enqueue():
            spool.seek(0)
            return self.queue.enqueue(envelope.sender, relay, ChainedReader(received, spool))
        if captured:
            enqueue = self._captureWrite(envelope, captured, received, spool, queueID,
                                         enqueue if relay else None)
        if local:
            d = self.store.deliver(local, ChainedReader(returnPath + received, spool),
                                   together=enqueue if relay or captured else None)
        elif relay or captured:
            d = defer.maybeDeferred(enqueue)
        else:
            d = defer.succeed(None)
        if bounced:
            d.addCallback(self._bounceLater, envelope.sender, bounced, received, spool, queueID)

        def delivered(_):
            if local or relay:  # (what was captured is logged by _captureWrite)
                # The text is made here, in one step (the fields stay in the
                # event): twisted.logger's formatting of four fields was a
                # third of the line's cost on the reactor thread (27 -> 20 us).
                log.info(literalFormat("%s: from <%s> delivered to %s queued for %s" % (
                    queueID, envelope.sender, local, relay)),
                    id=queueID, sender=envelope.sender, local=local, relay=relay)
            if captured:
                self.metrics.delivered(CAPTURED, len(captured), size)
            if local:
                self.metrics.delivered(LOCAL, len(local), len(returnPath) + size)
            if relay:
                self.metrics.delivered(RELAYED, len(relay), size)

        def failed(failure):
            failure.trap(StoreError, OSError)
            return self._storageFailure(queueID, failure.value)
        return d.addCallbacks(delivered, failed)

    def _captureWrite(self, envelope, captured, received, spool, queueID, then=None):
        """
        The write that keeps the message (as it would have been relayed) in
        the capture store, then C{then}'s (the relay queue's) if given; if
        that fails, the captured copy is taken back, so a retry makes no
        duplicate.
        """
        def write():
            spool.seek(0)
            captureEnvelope = CaptureEnvelope(
                sender=envelope.sender, recipients=tuple(captured),
                tls=getattr(envelope, "tls", None),
                authenticated=getattr(envelope, "authenticated", None),
                client=getattr(envelope, "client", None), helo=getattr(envelope, "helo", None),
                queueID=queueID)
            d = self.capture.capture(captureEnvelope, ChainedReader(received, spool))

            def kept(messageID):
                log.info("{id}: from <{sender}> captured for {rcpts} as {capture}", id=queueID,
                         sender=envelope.sender, rcpts=captured, capture=messageID)
                if then is None:
                    return None

                def undo(failure):
                    if messageID is None:
                        return failure
                    return self.capture.delete(messageID).addBoth(lambda _: failure)
                return defer.maybeDeferred(then).addErrback(undo)
            return d.addCallback(kept)
        return write

    def _bounceLater(self, result, sender, bounced, received, spool, queueID):
        """
        Once the message is kept: read its header section (for the DSN) and
        have the magic recipients bounce C{bounced} later. The message is
        accepted whatever happens here (a failure is logged).
        """
        def schedule(head):
            self.magic.scheduleBounce(sender, bounced, received + head, queueID)

        def failed(failure):
            log.failure("{id}: cannot prepare the lab bounce of {rcpts}", failure,
                        id=queueID, rcpts=bounced)
        d = self.magic.readHeaders(spool).addCallbacks(schedule, failed)
        return d.addCallback(lambda _: result)

    @staticmethod
    def _storageFailure(queueID, error):
        """The reply (and the one log line) for a delivery that kept nothing."""
        if isNoSpace(error):
            log.error("{id}: not accepted: not enough disk space ({error})",
                      id=queueID, error=error)
        else:
            log.error("{id}: not accepted: storage error: {error}", id=queueID, error=error)
        return storageFailureReply(error)

    def bounce(self, sender, message):
        """
        Deliver a delivery status notification to a local sender's INBOX.
        """
        if not sender or not self.isLocal(sender):
            return defer.succeed(self._dropBounce(sender))

        def found(user):
            if user is None:
                return self._dropBounce(sender)
            # On disk once it fires: a failure to tell open sessions after
            # that is the store's to log, and does not make the queue bounce
            # it again.
            return self.store.deliver([sender.lower()], message)
        return defer.maybeDeferred(self.users.lookup, sender).addCallback(found)

    @staticmethod
    def _dropBounce(sender):
        log.warn("bounce for <{sender}> dropped: not a local user", sender=sender)
        return None

