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

Nothing is handed over when Python frees a mailbox object: that happens
whenever its garbage cycle is collected, in any thread, after its weak
reference is gone, so the next object of the directory may already be in
use. What must outlive the object is not kept in it. Its modseqs are
written as they change (L{mailstack.storage.maildir}). Which messages this
process placed in cur/ (APPEND or COPY with flags) no read-write session
has claimed yet, \\Recent for the next one (the files in new/ are \\Recent
on disk), is a L{PlacedRecent} of the store, by directory, that every
object of that directory uses in turn (L{KeptMailboxes.placedFor}). The
store holds the C{max(4 * size, 1024)} directories' most recently given
such UIDs (beyond that the oldest are forgotten, as a restart forgets them
all).
"""

import collections

__all__ = ["KeptMailboxes", "PlacedRecent"]

DEFAULT_SIZE = 256


class PlacedRecent:
    """
    The UIDs of the messages this process placed in one directory's cur/
    that no read-write session has claimed yet, for one UIDVALIDITY.
    Used in the reactor thread, as the rest of the mailbox's state.

    @param changed: called with this object whenever its UIDs changed (the
        store keeps the ones that have some), or L{None} (a mailbox of its own).
    """

    def __init__(self, path=None, changed=None):
        self.path = path
        self._changed = changed
        self._uidValidity = None
        self._uids = set()

    def validFor(self, uidValidity):
        """The directory's UIDVALIDITY is C{uidValidity}: UIDs of another one go."""
        if uidValidity != self._uidValidity:
            self._uidValidity = uidValidity
            if self._uids:
                self._uids = set()
                self._tell()

    @property
    def waiting(self):
        """Whether any UIDs wait to be claimed."""
        return bool(self._uids)

    def add(self, uids):
        self._uids.update(uids)
        self._tell()

    def among(self, live):
        """The UIDs still naming messages (C{live}: the UIDs there are)."""
        return self._uids & live

    def claim(self, live):
        """L{among}, and forget them all: they are \\Recent for the caller only."""
        claimed, self._uids = self._uids & live, set()
        self._tell()
        return claimed

    def _tell(self):
        if self._changed is not None:
            self._changed(self)


class KeptMailboxes:
    """
    The C{size} mailbox objects last used, kept though unused, by path; and
    each directory's L{PlacedRecent}.

    @param size: how many; 0 keeps none (each is dropped once unused).
    """

    def __init__(self, size=DEFAULT_SIZE):
        self.size = size
        self._kept = collections.OrderedDict()    # path -> mailbox, oldest first
        self._placed = collections.OrderedDict()  # path -> PlacedRecent, oldest first

    def use(self, mailbox):
        """C{mailbox} was looked up: keep it (as the most recently used)."""
        path = mailbox.path
        kept = self._kept
        kept[path] = mailbox  # replaces an object of a deleted and remade folder
        kept.move_to_end(path)
        while len(kept) > self.size:
            kept.popitem(last=False)  # still used elsewhere? then still found there

    def forget(self, path):
        """The mailbox at C{path} was deleted or renamed away: keep nothing of it."""
        self._kept.pop(path, None)
        self._placed.pop(path, None)

    def placedFor(self, path):
        """
        The L{PlacedRecent} for a new mailbox object of the directory
        C{path}: the one its earlier objects used, if it was given UIDs
        and not forgotten since, else a new one.
        """
        placed = self._placed.get(path)
        return placed if placed is not None else PlacedRecent(path, self._placedChanged)

    def _placedChanged(self, placed):
        """Keep C{placed} for the directory's next objects while it has UIDs."""
        path = placed.path
        if placed.waiting:
            self._placed[path] = placed
            self._placed.move_to_end(path)
            while len(self._placed) > max(4 * self.size, 1024):
                self._placed.popitem(last=False)
        elif self._placed.get(path) is placed:
            del self._placed[path]
