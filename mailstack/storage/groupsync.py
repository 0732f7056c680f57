"""
Group commit of directory fsyncs: when several threads need the same
directory made durable at once (ten SMTP sessions delivering into one INBOX,
each after its rename into new/), one C{fsync} serves all who asked before it
began, instead of one each in turn.

The promise to each caller is unchanged: L{GroupSync.sync} returns only after
an fsync of the directory that I{started after the call}, so every rename or
unlink the caller made before calling is durable; if that fsync fails, every
caller it covered gets the error.
"""

import os
import threading

__all__ = ["GroupSync", "MAX_GROUPS", "syncDirectory"]


def _fsyncPath(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class GroupSync:
    """
    The fsyncs of one directory, shared by the threads that ask at once.

    Each call takes a ticket. A call finding no fsync under way runs one that
    covers every ticket issued so far; a call arriving while one runs waits
    for it to end and then either finds its ticket covered by a later one or
    runs the next itself. So at most one fsync of the directory runs at a
    time and each covers everyone who was waiting for it.

    @param path: the directory.
    """

    def __init__(self, path):
        self.path = path
        self._condition = threading.Condition()
        self._issued = 0       # the last ticket given out
        self._covered = 0      # every ticket up to this one is done
        self._running = False
        # first ticket -> [last ticket, error, callers yet to read it] of
        # each failed fsync that covered waiting callers: kept until each of
        # them has read it (never trimmed by count: a caller slow to wake
        # would be told success for an fsync that failed).
        self._failures = {}
        self.fsyncs = 0        # fsyncs run, for tests and curiosity

    def sync(self, fsync=_fsyncPath):
        """
        Block until an fsync of the directory that began after this call has
        ended.

        @param fsync: C{fsync(path)}, used if this caller is the one to run
            it (L{mailstack.storage.files} passes its own; tests too).
        @raise OSError: that fsync's error.
        """
        with self._condition:
            self._issued += 1
            ticket = self._issued
            while True:
                if self._covered >= ticket:
                    return self._outcome(ticket)
                if not self._running:
                    break
                self._condition.wait()
            self._running = True
            first, last = self._covered + 1, self._issued
        error = None
        try:
            fsync(self.path)
        except BaseException as e:
            # Any failure, not only OSError: a waiter must never take an
            # fsync that did not complete for one that did.
            error = e
        with self._condition:
            self.fsyncs += 1
            self._running = False
            self._covered = last
            if error is not None and last > first:
                self._failures[first] = [last, error, last - first]
            self._condition.notify_all()
        if error is not None:
            raise error

    def _outcome(self, ticket):
        """(With the lock held) raise the error of the fsync that covered
        C{ticket}, if any, forgetting it once its last waiter has read it."""
        for first, record in self._failures.items():
            last, error, unread = record
            if first <= ticket <= last:
                if unread <= 1:
                    del self._failures[first]
                else:
                    record[2] = unread - 1
                raise error


# One per directory synced lately (about a kilobyte each: its Condition and
# lock), kept so that its waiters outlive each call. Past MAX_GROUPS (a
# server delivering to 100,000 users would keep 100,000), the idle ones are
# dropped: a directory with two groups for a moment is still synced right
# (each caller waits for an fsync begun after its call), only less shared.
MAX_GROUPS = 4096
_groups: "dict[str, GroupSync]" = {}
_groupsLock = threading.Lock()


def _idle(group):
    """Whether no fsync of C{group} runs and nobody waits for one (a glance,
    without its lock: a wrong answer only costs sharing)."""
    return not group._running and group._covered == group._issued


def syncDirectory(path, fsync=_fsyncPath):
    """
    Make the renames into (and removals from) the directory C{path} durable,
    sharing the fsync with the other threads doing the same at that moment.

    @param fsync: C{fsync(path)}, as for L{GroupSync.sync}.
    """
    path = os.path.normpath(os.fspath(path))
    group = _groups.get(path)
    if group is None:
        with _groupsLock:
            if len(_groups) >= MAX_GROUPS:
                for known in [p for p, g in _groups.items() if _idle(g)]:
                    del _groups[known]
            group = _groups.setdefault(path, GroupSync(path))
    group.sync(fsync)
