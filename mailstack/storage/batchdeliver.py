"""
Deliveries written in batches by a few worker threads, for the Maildir
store: a writer takes every delivery queued since its last round, writes
each (the file fsynced and renamed into new/), fsyncs once each new/
directory the round touched, and reports the whole round to the reactor
thread in one call.

One thread pool job per message cost more than the disk did: a worker to
wake for each, a hand-back of each result, and the threads contending for
the interpreter's lock (75-96 futex calls per SMTP message against
aiosmtpd's 46). The promise is unchanged: a delivery's Deferred fires only
after its files and their directory entries are durable; a delivery that
fails fails alone (its files removed), whatever the others in its round do.
"""

import os
import threading

from twisted.internet import defer
from twisted.logger import Logger

from mailstack.storage.files import fsyncDirectoryNow, removeQuietly
from mailstack.storage.maildir import noSpaceAsStoreError

__all__ = ["DeliveryBatcher", "WRITERS"]

log = Logger()

WRITERS = 3


def _escaped(succeeded, result):
    """In the worker thread, after a writer's rounds: log an error they let escape."""
    if not succeeded:
        log.failure("the delivery writer stopped", result)


class _Delivery:
    """One queued delivery: a copy of C{source} for each mailbox, all or none."""

    __slots__ = ("mailboxes", "source", "deferred", "placed", "error")

    def __init__(self, mailboxes, source):
        self.mailboxes = mailboxes
        self.source = source
        self.deferred = defer.Deferred()
        self.placed = []        # (mailbox, base, path) of the copies renamed into new/
        self.error = None

    def write(self):
        """Each copy written, fsynced and renamed; on a failure, the copies made
        are removed and the error kept."""
        try:
            for mailbox in self.mailboxes:
                if not isinstance(self.source, bytes):
                    self.source.seek(0)  # bytes: each copy reads its own BytesIO
                base, path = mailbox.deliverUnsynced(self.source)
                self.placed.append((mailbox, base, path))
        except Exception as e:
            self.fail(e)

    def fail(self, error):
        """Take back every copy made (none is acknowledged) and keep C{error}."""
        for _, _, path in self.placed:
            removeQuietly(path)
        self.placed = []
        self.error = error


def writeRound(deliveries, fsyncDirectory=fsyncDirectoryNow):
    """
    In a worker thread: write C{deliveries} (L{_Delivery}s) one after the
    other, then fsync once each directory their copies were renamed into. A
    delivery with a copy in a directory whose fsync failed is failed (all its
    copies removed): its 250 would not mean durable.
    """
    for delivery in deliveries:
        delivery.write()
    directories = {}
    for delivery in deliveries:
        for _, _, path in delivery.placed:
            directories.setdefault(os.path.dirname(path), None)
    for directory in directories:
        try:
            with noSpaceAsStoreError():
                fsyncDirectory(directory)
        except Exception as e:
            directories[directory] = e
    for delivery in deliveries:
        for _, _, path in delivery.placed:
            error = directories[os.path.dirname(path)]
            if error is not None:
                delivery.fail(error)
                break


class DeliveryBatcher:
    """
    The Maildir store's delivery writers. Up to C{writers} rounds run at a
    time, each a job in C{reactor}'s thread pool; deliveries asked for while
    all are busy wait for the next round, which the first writer to finish
    starts at once with everything queued.

    At shutdown, the reactor's thread pool finishes the job it runs (Twisted
    joins its threads), so a round under way ends with its files durable or
    removed, never half-written in new/.

    @param reactor: provides C{getThreadPool} and C{callFromThread}.
    @param fsyncDirectory: C{fsyncDirectory(path)} (tests count or fail it).
    @param writers: how many rounds may run at once, each in its own pool
        thread. One alone made the SMTP bench's sessions wait on its serial
        fsyncs (fewer messages a second than one job per message); two or
        three kept the lower CPU per message and passed it.
    """

    def __init__(self, reactor, fsyncDirectory=fsyncDirectoryNow, writers=WRITERS):
        self._reactor = reactor
        self._fsyncDirectory = fsyncDirectory
        self.writers = writers
        self._lock = threading.Lock()
        self._queue = []
        self._running = 0

    def deliver(self, mailboxes, source):
        """
        A durable copy of C{source} (a rewindable binary file, or bytes) in
        each of C{mailboxes} (L{MaildirMailbox}es), all or none.

        @return: a Deferred firing in the reactor thread with
            C{[(mailbox, base name), ...]} once every copy and its directory
            entry are fsynced, or failing with the error (nothing kept).
        """
        delivery = _Delivery(mailboxes, source)
        with self._lock:
            self._queue.append(delivery)
            start = self._running < self.writers
            if start:
                self._running += 1
        if start:
            # The pool of the reactor the server was built with (not the
            # global reactor's); the callback logs what _rounds let escape.
            self._reactor.getThreadPool().callInThreadWithCallback(_escaped, self._rounds)
        return delivery.deferred

    def _rounds(self):
        """In the worker thread: rounds until nothing is queued."""
        while True:
            with self._lock:
                deliveries, self._queue = self._queue, []
                if not deliveries:
                    self._running -= 1
                    return
            try:
                writeRound(deliveries, self._fsyncDirectory)
            except BaseException as e:
                # Not expected (each step's errors are kept per delivery):
                # whatever was not finished fails rather than hangs.
                for delivery in deliveries:
                    if delivery.error is None:
                        delivery.fail(e)
                self._reactor.callFromThread(self._report, deliveries)
                if not isinstance(e, Exception):
                    with self._lock:
                        self._running -= 1
                    raise
                continue
            self._reactor.callFromThread(self._report, deliveries)

    @staticmethod
    def _report(deliveries):
        """In the reactor thread: fire every Deferred of a round."""
        for delivery in deliveries:
            if delivery.error is not None:
                delivery.deferred.errback(delivery.error)
            else:
                delivery.deferred.callback(
                    [(mailbox, base) for mailbox, base, _ in delivery.placed])
