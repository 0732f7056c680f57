"""
How long the Maildir store keeps a mailbox object in memory once nobody
uses it: the C{[storage] cached_mailboxes} most recently used are kept
(L{KeptMailboxes}); the others go when their last user lets go.

The store finds its mailbox objects (and accounts) through weak
references (L{weakref.WeakValueDictionary}): an object anyone still holds
(a session that selected it, an IDLE or NOTIFY listener, the watcher, a
POP3 session, a job in a worker thread, a Deferred waiting on it) is
always the one found, so there is never a second object for one
directory in a process (it would break \\Recent, the listeners and the
uidlist lock's one-job-at-a-time); one nobody holds is dropped by Python
and read again from the persistent index (L{mailstack.storage.index}) at
the next use. The strong references kept here only decide how many unused
ones stay around for a cheap next use: a mailbox leaving this list is not
closed, only no longer kept.

One thing lives only in a mailbox object: which messages this process
placed in cur/ (APPEND or COPY with flags) no read-write session has
claimed yet, \\Recent for the next one (the messages in new/ are \\Recent
on disk). When Python drops a mailbox object with such messages, their
UIDs stay here (L{dropped}: a few integers) for the next object of its
directory (L{recentFor}), so dropping it changes nothing a client sees; at
most C{max(4 * size, 1024)} mailboxes' UIDs are kept this way (beyond that
the oldest are forgotten, as a restart forgets them all).
"""

import collections
import threading

__all__ = ["KeptMailboxes"]

DEFAULT_SIZE = 256


class KeptMailboxes:
    """
    The C{size} mailbox objects last used, kept though unused, by path.

    @param size: how many; 0 keeps none (each is dropped once unused).
    """

    def __init__(self, size=DEFAULT_SIZE):
        self.size = size
        self._kept = collections.OrderedDict()    # path -> mailbox, oldest first
        self._recent = collections.OrderedDict()  # path -> (uidValidity, UIDs)
        # dropped() runs wherever Python frees the object: maybe a worker thread.
        self._recentLock = threading.Lock()

    def use(self, mailbox):
        """C{mailbox} was looked up: keep it (as the most recently used)."""
        path = mailbox.path
        kept = self._kept
        if kept.get(path) is mailbox:
            kept.move_to_end(path)
        else:
            kept.pop(path, None)
            kept[path] = mailbox
        while len(kept) > self.size:
            kept.popitem(last=False)  # still used elsewhere? then still found there

    def forget(self, path):
        """The mailbox at C{path} was deleted or renamed away: keep nothing of it."""
        self._kept.pop(path, None)
        with self._recentLock:
            self._recent.pop(path, None)

    def dropped(self, mailbox):
        """
        Python is freeing C{mailbox} (nothing uses it; called from its
        finalizer, in any thread): write its pending modseqs, keep the UIDs
        of its L{placedRecent
        <mailstack.storage.maildir.MaildirMailbox.placedRecent>} messages.
        """
        if mailbox.gone:
            return
        uidValidity, uids = mailbox.placedRecent()
        if uids:
            with self._recentLock:
                self._recent[mailbox.path] = (uidValidity, uids)
                while len(self._recent) > max(4 * self.size, 1024):
                    self._recent.popitem(last=False)
        mailbox.writePending()  # else the next object gives those messages new modseqs

    def recentFor(self, mailbox):
        """
        A new object for a directory whose previous one was dropped: hand it
        the \\Recent placed UIDs that one left (if any).
        """
        with self._recentLock:
            left = self._recent.pop(mailbox.path, None)
        if left is not None:
            mailbox.restorePlacedRecent(*left)
