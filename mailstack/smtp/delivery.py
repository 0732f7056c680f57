"""
SMTP policy: who may send as whom, which recipients are local, who may relay,
and delivery of accepted mail into the store (or the relay queue).

The protocol (mailstack.smtp.server) asks; this module answers with values
(L{Reply}, L{RecipientDecision}) and never writes to the wire.
"""

import dataclasses
import io

from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

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
    C{kind} is C{"local"}, C{"relay"} or L{None} (refused, with C{reply}).
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
        self._sources = [io.BytesIO(s) if isinstance(s, bytes) else s for s in sources]

    def readable(self):
        return True

    def readinto(self, buffer):
        while self._sources:
            data = self._sources[0].read(len(buffer))
            if data:
                buffer[:len(data)] = data
                return len(data)
            self._sources.pop(0)
        return 0


class SMTPPolicy:
    """
    Recipient and sender rules of one server, and delivery into the store.

    @param domains: the local domains (lower case).
    @param users: the L{mailstack.auth.interfaces.IUserDirectory}.
    @param store: an L{IMailStore}.
    @param queue: a L{mailstack.relay.queue.RelayQueue} or L{None} (no smarthost).
    @param runInThread: C{f(callable, *args) -> Deferred}, for disk work with
        fsync; defaults to the reactor's thread pool.
    """

    def __init__(self, domains, users, store, queue=None, runInThread=None):
        self.domains = tuple(domains)
        self.users = users
        self.store = store
        self.queue = queue
        self.runInThread = runInThread or threads.deferToThread

    def plaintextSecretsAvailable(self):
        return self.users.allPlaintextSecrets()

    def isLocal(self, address):
        return address.rpartition("@")[2] in self.domains

    def checkSender(self, sender, authenticated, submission):
        """
        @return: L{None} to accept MAIL FROM, or the refusal L{Reply}.
        """
        if authenticated is not None and sender.lower() != authenticated.lower():
            return Reply(553, "5.7.1", "Sender address <%s> not owned by user %s" % (
                sender, authenticated))
        return None

    def checkRecipient(self, recipient, authenticated):
        """
        @return: a L{RecipientDecision}, or a Deferred firing with one when the
            user directory must be asked (a local recipient); it fails if the
            directory cannot answer (the server answers 451 4.3.0).
        """
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
        if self.queue is None:
            return RecipientDecision(None, recipient, Reply(
                550, "5.7.1", "<%s>: Relaying not available: no smarthost configured" % (
                    recipient,)))
        return RecipientDecision("relay", recipient)

    @defer.inlineCallbacks
    def deliver(self, envelope, received, spool, queueID):
        """
        Write the message durably for every recipient: local copies fsynced in
        each INBOX, relayed ones in the queue. All or nothing: if one copy
        cannot be written, the copies already written are removed again, so
        the sender's retry does not make duplicates.

        @return: a Deferred firing with L{None} once every copy is on disk (the
            caller answers 250), or with the temporary-failure L{Reply} when
            nothing was kept: C{452 4.3.1} when the disk is full (RFC 3463
            "mail system full"), C{451 4.3.0} for other storage errors.
            What fails after the copies are durable (telling open IMAP
            sessions) is logged and left to the next sync: the mail is
            accepted.
        """
        # The same recipient given twice gets one copy, as with Postfix.
        recipients = list(dict.fromkeys(envelope.recipients))
        local = [address for address, kind in recipients if kind == "local"]
        relay = [address for address, kind in recipients if kind == "relay"]
        returnPath = ("Return-Path: <%s>\r\n" % (envelope.sender,)).encode("utf-8")
        placed = []
        try:
            mailboxes = [self.store.account(address).getMailbox("INBOX") for address in local]
            if mailboxes:
                yield self.runInThread(self._deliverLocal, mailboxes, returnPath + received,
                                       spool, placed)
            if relay:
                spool.seek(0)
                yield self.queue.enqueue(envelope.sender, relay, ChainedReader(received, spool))
        except Exception as e:
            if placed:
                yield self.runInThread(self._discard, placed)
            if not isinstance(e, (StoreError, OSError)):
                raise
            return self._storageFailure(queueID, e)
        for mailbox in mailboxes:
            # Without a listening session, skip the rescan (it grew with the
            # INBOX and slowed every delivery: bench/).
            if mailbox.hasListeners():
                _noteDelivery(mailbox, queueID)
        log.info("{id}: from <{sender}> delivered to {local} queued for {relay}",
                 id=queueID, sender=envelope.sender, local=local, relay=relay)
        return None

    @staticmethod
    def _storageFailure(queueID, error):
        """The reply (and the one log line) for a delivery that kept nothing."""
        if isNoSpace(error):
            log.error("{id}: not accepted: not enough disk space ({error})",
                      id=queueID, error=error)
        else:
            log.error("{id}: not accepted: storage error: {error}", id=queueID, error=error)
        return storageFailureReply(error)

    @staticmethod
    def _deliverLocal(mailboxes, header, spool, placed):
        for mailbox in mailboxes:
            spool.seek(0)
            placed.append((mailbox, mailbox.deliver(ChainedReader(header, spool))))

    @staticmethod
    def _discard(placed):
        for mailbox, key in placed:
            try:
                mailbox.discardPlaced(key)
            except Exception as e:
                log.error("could not remove the copy {key} in {mailbox} of a refused "
                          "message: {error}", key=key, mailbox=mailbox, error=e)

    def bounce(self, sender, message):
        """
        Deliver a delivery status notification to a local sender's INBOX.
        """
        if not sender or not self.isLocal(sender):
            return defer.succeed(self._dropBounce(sender))

        def found(user):
            if user is None:
                return self._dropBounce(sender)
            mailbox = self.store.account(sender.lower()).getMailbox("INBOX")

            def delivered(_):
                # The DSN is on disk: a failure to tell open sessions must not
                # make the queue bounce it again.
                if mailbox.hasListeners():
                    _noteDelivery(mailbox, "bounce to <%s>" % (sender,))
            return self.runInThread(mailbox.deliver, message).addCallback(delivered)
        return defer.maybeDeferred(self.users.lookup, sender).addCallback(found)

    @staticmethod
    def _dropBounce(sender):
        log.warn("bounce for <{sender}> dropped: not a local user", sender=sender)
        return None


def _noteDelivery(mailbox, what):
    """
    Tell the sessions that have C{mailbox} open of a delivery already on disk.
    A failure (a lock held by another program, a damaged dovecot-uidlist) is
    logged in one line: the message is stored, and the next sync (the
    session's next command, or the watcher) finds it.
    """
    try:
        mailbox.noteDelivery(wait=False)  # never wait for a lock in the reactor thread
    except (StoreError, OSError) as e:
        log.warn("{what}: stored in {mailbox}; telling its open sessions failed ({error}); "
                 "they see it at their next sync", what=what, mailbox=mailbox, error=e)
