"""
Magic recipients (C{[[lab.magic]]}): addresses that answer as a lab asks,
so students can watch their client handle errors.

  - C{tempfail}: RCPT answered C{451 4.3.0} (try again later);
  - C{reject}: RCPT answered C{550 5.1.1} (no such user);
  - C{slow}: RCPT answered after C{seconds} (a timer on the reactor, never
    a wait that blocks it), then accepted;
  - C{greylist}: the first RCPT from a client address and sender answered
    C{451 4.7.1}, a retry C{seconds} later or more accepted (and from then on);
  - C{bounce}: accepted, then C{seconds} later an RFC 3464 DSN delivered to
    the (local) sender's INBOX.

What is accepted is kept in the capture store (kind C{"capture"}, or
C{"bounce"}: captured, then bounced); nothing is relayed. C{postmaster} is
never magic (RFC 5321 4.5.1). A bounce waits in memory: a restart forgets
the bounces not sent yet (logged).
"""

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger

from mailstack.smtp.delivery import RecipientDecision
from mailstack.smtp.reply import Reply

log = Logger()

# Greylist triplets remembered at most (the oldest go first); how long a
# first try not retried is kept, and one that passed since its last use
# (postgrey's max-age).
GREYLIST_ENTRIES = 10000
GREYLIST_FORGET = 24 * 3600
GREYLIST_PASSED_FORGET = 35 * 24 * 3600
# The header section a bounce quotes (RFC 6522), at most.
BOUNCE_HEAD_BYTES = 64 * 1024
# What the bounce says the recipient's server answered.
BOUNCE_STATUS = "5.1.1"


def _readHead(spool, limit=BOUNCE_HEAD_BYTES):
    """The start of a spooled message (read in a thread), up to its header section's end."""
    spool.seek(0)
    data = spool.read(limit + 4)
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = data.find(separator)
        if end != -1:
            return data[:end] + b"\r\n"
    return data[:limit]


class MagicRecipients(service.Service):
    """
    The magic recipients of one server: each RCPT's answer, the greylist, and
    the bounces waiting to be sent (cancelled when the service stops).

    @param entries: the L{mailstack.config.MagicRecipientConfig}s.
    @param reactor: the clock (C{callLater}, C{seconds}) and thread pool.
    @param makeDSN: C{makeDSN(queueID, sender, arrival, failed, headers, now)
        -> bytes}, C{failed} a list of C{(address, status, diagnostic,
        explanation)} (the plug-in gives L{mailstack.relay.dsn}'s).
    @param deliverBounce: C{deliverBounce(sender, message) -> Deferred}: put a
        DSN in a local sender's INBOX (L{SMTPPolicy.bounce}).
    """

    def __init__(self, entries, reactor, makeDSN=None, deliverBounce=None):
        self.addresses = {e.address: e for e in entries if e.address is not None}
        self.localParts = {e.local_part: e for e in entries if e.local_part is not None}
        self.reactor = reactor
        self.makeDSN = makeDSN
        self.deliverBounce = deliverBounce
        self.greylist = {}  # (client, sender, recipient) -> (first try, last pass or None)
        self.pending = set()  # DelayedCalls of slow replies and bounces

    def __bool__(self):
        return bool(self.addresses or self.localParts)

    def match(self, recipient):
        """The entry C{recipient} matches (its address first, else its local part), or L{None}."""
        address = recipient.lower()
        local = address.rpartition("@")[0] if "@" in address else address
        if local == "postmaster":
            return None
        return self.addresses.get(address) or self.localParts.get(local)

    def decide(self, recipient, envelope=None):
        """
        @param envelope: the transaction (its C{sender} and C{client}), for
            the greylist.
        @return: L{None} when C{recipient} is not magic, else a
            L{RecipientDecision} or a Deferred firing with one (C{slow}).
        """
        entry = self.match(recipient)
        if entry is None:
            return None
        action = entry.action
        if action == "tempfail":
            return RecipientDecision(None, recipient, Reply(
                451, "4.3.0", "<%s>: Temporary failure, try again later (lab: tempfail)" % (
                    recipient,)))
        if action == "reject":
            return RecipientDecision(None, recipient, Reply(
                550, "5.1.1", "<%s>: Recipient address rejected: User unknown (lab: reject)" % (
                    recipient,)))
        if action == "greylist":
            return self._greylist(recipient, envelope, entry.seconds)
        if action == "slow":
            return self._later(entry.seconds, RecipientDecision("capture", recipient))
        return RecipientDecision("bounce", recipient)

    def _later(self, seconds, value):
        """A Deferred firing with C{value} after C{seconds}, the reactor free meanwhile."""
        d = defer.Deferred()

        def fire():
            self.pending.discard(call)
            d.callback(value)
        call = self.reactor.callLater(seconds, fire)
        self.pending.add(call)
        return d

    def _greylist(self, recipient, envelope, delay):
        now = self.reactor.seconds()
        key = (getattr(envelope, "client", None), (getattr(envelope, "sender", "") or "").lower(),
               recipient.lower())
        first, passed = self.greylist.get(key, (None, None))
        if passed is not None or (first is not None and now - first >= delay):
            self.greylist[key] = (first, now)
            return RecipientDecision("capture", recipient)
        if first is None:
            first = now
            self._remember(key, (first, None), now)
        wait = max(1, int(first + delay - now + 0.999))
        return RecipientDecision(None, recipient, Reply(
            451, "4.7.1", "<%s>: Recipient address rejected: Greylisted, try again in %d "
            "seconds (lab: greylist)" % (recipient, wait)))

    def _remember(self, key, value, now):
        """Note a new triplet, forgetting stale ones and the oldest beyond the limit."""
        stale = [k for k, (first, passed) in self.greylist.items()
                 if (now - first > GREYLIST_FORGET if passed is None
                     else now - passed > GREYLIST_PASSED_FORGET)]
        for k in stale:
            del self.greylist[k]
        while len(self.greylist) >= GREYLIST_ENTRIES:
            del self.greylist[next(iter(self.greylist))]
        self.greylist[key] = value

    # -- bounces ---------------------------------------------------------------

    def readHeaders(self, spool):
        """A Deferred firing with the header section of a spooled message (read in a thread)."""
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         _readHead, spool)

    def scheduleBounce(self, sender, recipients, headers, queueID):
        """
        Bounce C{recipients} to C{sender} after the longest wait among their
        entries: one DSN naming them all. Nothing for the null sender (no
        bounce of a bounce).
        """
        if not sender:
            log.info("{id}: lab bounce of {rcpts} not sent: the sender is null",
                     id=queueID, rcpts=recipients)
            return None
        arrival = self.reactor.seconds()
        delay = max(self.match(r).seconds for r in recipients)

        def send(_):
            now = self.reactor.seconds()
            failed = [(r, BOUNCE_STATUS,
                       "smtp; 550 %s <%s>: Recipient address rejected: mailbox unavailable"
                       % (BOUNCE_STATUS, r),
                       "accepted, then bounced %d seconds later (lab: bounce)" % (delay,))
                      for r in recipients]
            message = self.makeDSN(queueID, sender, arrival, failed, headers, now)
            return defer.maybeDeferred(self.deliverBounce, sender, message)

        def sent(_):
            log.info("{id}: lab bounce of {rcpts} sent to <{sender}>", id=queueID,
                     rcpts=recipients, sender=sender)

        def failed(failure):
            log.failure("{id}: lab bounce of {rcpts} to <{sender}> failed", failure,
                        id=queueID, rcpts=recipients, sender=sender)
        d = self._later(delay, None)
        d.addCallback(send).addCallbacks(sent, failed)
        return d

    def stopService(self):
        """Cancel the waits (slow replies, bounces not sent yet)."""
        service.Service.stopService(self)
        if self.pending:
            log.info("lab: {count} magic replies or bounces dropped at shutdown",
                     count=len(self.pending))
        for call in list(self.pending):
            if call.active():
                call.cancel()
        self.pending.clear()
