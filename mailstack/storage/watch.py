"""
Noticing changes other programs make in a Maildir (another MDA delivering,
Dovecot expunging, a student copying a file into new/), so open sessions hear
of them without issuing a command that syncs.

Linux: inotify on each watched mailbox's new/ and cur/; elsewhere (or when
inotify cannot be used) a slow poll. Either way the reaction is the mailbox's
own cheap C{sync(claimRecent=False)} (mtime stamps first, a rescan only if
they moved; new UIDs written in a worker thread), debounced so a burst of files costs one sync. Only mailboxes with
listeners (open IMAP sessions) are watched.
"""

import os

from twisted.application import service
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from mailstack.storage.interfaces import StoreError

log = Logger()

# Looks (after delay, doubling: 1.55 s in all with the default delay) at a
# mailbox whose new files wait for another process to give them UIDs,
# before it is retried every pollInterval like a failure.
SOON_LOOKS = 5

try:
    from twisted.internet import inotify
except ImportError:  # not Linux
    inotify = None


if inotify is not None:
    class _Notifier(inotify.INotify):
        """
        Twisted's INotify, telling C{lost()} when it closes: it closes its
        descriptor (every watch with it) as soon as one watched directory is
        deleted (IN_DELETE_SELF), e.g. a folder DELETE removes while a session
        watches it.
        """

        def __init__(self, reactor, lost):
            inotify.INotify.__init__(self, reactor)
            self.lost = lost

        def connectionLost(self, reason):
            inotify.INotify.connectionLost(self, reason)
            self.lost(self)


class MailboxWatcher(service.Service):
    """
    @param reactor: the reactor (timers, inotify).
    @param delay: seconds to wait after a change before syncing (debounce).
    @param pollInterval: seconds between polls when inotify is not available.
    @param useInotify: C{False} forces polling (tests, network filesystems).
    """

    def __init__(self, reactor=None, delay=0.05, pollInterval=5.0, useInotify=True):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.delay = delay
        self.pollInterval = pollInterval
        self._watched = {}
        self._trees = {}  # key -> [paths, changed, pending call]: account roots (NOTIFY)
        self._pending = {}
        self._failing = set()  # mailboxes whose last sync failed (retried)
        # mailbox -> (looks in a row that found files waiting for UIDs, its
        # UIDNEXT at the last one)
        self._soon = {}
        self._notifier = None
        self._poll = None
        self._useInotify = useInotify and inotify is not None

    @property
    def mode(self):
        """C{"inotify"} or C{"poll"}."""
        return "inotify" if self._useInotify else "poll"

    def _ensureNotifier(self):
        """The inotify reader, opened on first use (so an unused watcher holds no fd)."""
        if self._notifier is None and self._useInotify:
            try:
                self._notifier = _Notifier(self.reactor, self._notifierLost)
                self._notifier.startReading()
            except Exception as e:
                log.warn("inotify unavailable ({error}); polling Maildirs every {n}s",
                         error=e, n=self.pollInterval)
                self._notifier = None
                self._useInotify = False
        return self._notifier

    def _notifierLost(self, notifier):
        """
        The inotify descriptor closed by itself (a watched directory was
        deleted): open another, watch everything again, and look at
        everything once for what changed meanwhile.
        """
        if notifier is not self._notifier or not self._useInotify:
            return  # stopService closed it, or it was replaced already
        self._notifier = None
        self.reactor.callLater(0, self._watchAgain)

    def _watchAgain(self):
        if self._notifier is not None:
            return
        mailboxes, trees = list(self._watched), dict(self._trees)
        self._watched, self._trees = {}, {}
        for mailbox in mailboxes:
            if not getattr(mailbox, "gone", False) and os.path.isdir(mailbox.path):
                self.watch(mailbox)
                self._changed(mailbox)
        for key, (paths, changed, call) in trees.items():
            if call is not None and call.active():
                call.cancel()
            if paths and os.path.isdir(paths[0].path):
                self.watchTree(key, paths[0].path, changed)
                self.noteTreeChanged(key)

    def watch(self, mailbox):
        """Start noticing outside changes to C{mailbox} (idempotent)."""
        if mailbox in self._watched:
            return
        paths = []
        if self._ensureNotifier() is not None:
            mask = (inotify.IN_CREATE | inotify.IN_MOVED_TO | inotify.IN_MOVED_FROM
                    | inotify.IN_DELETE)
            for sub in ("new", "cur"):
                path = FilePath(mailbox.path).child(sub)
                try:
                    self._notifier.watch(path, mask, callbacks=[
                        lambda _, filepath, mask, m=mailbox: self._changed(m)])
                    paths.append(path)
                except Exception as e:
                    log.warn("cannot watch {path}: {error}", path=path.path, error=e)
        self._watched[mailbox] = paths
        if self._notifier is None and self._poll is None:
            self._poll = self.reactor.callLater(self.pollInterval, self._pollAll)

    def unwatch(self, mailbox):
        """Stop watching C{mailbox}."""
        for path in self._watched.pop(mailbox, ()):
            try:
                self._notifier.ignore(path)
            except (KeyError, AttributeError):  # gone, or the notifier is being replaced
                pass  # the directory went away; inotify dropped it already
        call = self._pending.pop(mailbox, None)
        if call is not None and call.active():
            call.cancel()
        self._failing.discard(mailbox)
        self._soon.pop(mailbox, None)

    def _changed(self, mailbox):
        if mailbox in self._watched and mailbox not in self._pending:
            self._pending[mailbox] = self.reactor.callLater(self.delay, self._sync, mailbox)

    def _sync(self, mailbox):
        self._pending.pop(mailbox, None)
        if mailbox not in self._watched:
            return
        d = mailbox.sync(claimRecent=False)  # claims nothing; never waits on the reactor
        d.addCallbacks(self._synced, self._failed, (mailbox,), None, (mailbox,))

    def _synced(self, _, mailbox):
        if mailbox.waitingForUIDs:
            # New files still without UIDs: another program holds the uidlist
            # lock, most often numbering them that moment (another worker
            # process's APPENDs, placed under the lock; the uidlist it then
            # writes is not watched). Look again soon, after delay, doubling,
            # starting over whenever messages got UIDs since the last look
            # (UIDNEXT moved: this sync's or a session's); retry as any
            # failure only when SOON_LOOKS in a row saw none.
            looks, uidNext = self._soon.get(mailbox, (0, None))
            if uidNext is not None and mailbox.uidNext != uidNext:
                looks = 0
            if looks < SOON_LOOKS and mailbox in self._watched:
                self._soon[mailbox] = (looks + 1, mailbox.uidNext)
                if mailbox not in self._pending:  # else a sync is on its way already
                    self._pending[mailbox] = self.reactor.callLater(
                        self.delay * 2 ** looks, self._sync, mailbox)
                return None
            return self._retry(mailbox, "dovecot-uidlist is locked by another program")
        self._soon.pop(mailbox, None)
        if mailbox in self._failing:
            self._failing.discard(mailbox)
            log.info("sync of {mailbox} works again", mailbox=mailbox)

    def _failed(self, failure, mailbox):
        if failure.check(StoreError, OSError):
            # A damaged dovecot-uidlist, a folder gone: try again later.
            return self._retry(mailbox, failure.value)
        log.failure("sync of {mailbox} after an outside change failed", failure,
                    mailbox=mailbox)

    def _retry(self, mailbox, error):
        """Sync again after C{pollInterval}, logging only the first failure."""
        if mailbox not in self._watched:
            return  # unwatched while it synced: nothing to retry, nothing to hold
        if mailbox not in self._failing:
            self._failing.add(mailbox)
            log.warn("sync of {mailbox} failed ({error}); retrying every {n} s",
                     mailbox=mailbox, error=error, n=self.pollInterval)
        if (self._notifier is not None and mailbox in self._watched
                and mailbox not in self._pending):
            self._pending[mailbox] = self.reactor.callLater(
                self.pollInterval, self._sync, mailbox)  # polling retries anyway

    def _pollAll(self):
        self._poll = None
        for mailbox in list(self._watched):
            self._sync(mailbox)
        if self._watched:
            self._poll = self.reactor.callLater(self.pollInterval, self._pollAll)

    # Account roots (IMAP NOTIFY: folders made, deleted or renamed, the
    # subscriptions file replaced, by another program)

    def watchTree(self, key, path, changed):
        """
        Call C{changed()} (debounced) after entries appear, go or move in
        the directory C{path}: with inotify at once, else every
        C{pollInterval} seconds. Idempotent per C{key}.
        """
        if key in self._trees:
            return
        entry = self._trees[key] = [[], changed, None]  # paths watched, callback, call
        if self._ensureNotifier() is not None:
            mask = (inotify.IN_CREATE | inotify.IN_DELETE | inotify.IN_MOVED_FROM
                    | inotify.IN_MOVED_TO)
            try:
                self._notifier.watch(FilePath(path), mask, callbacks=[
                    lambda _, filepath, mask, k=key: self.noteTreeChanged(k)])
                entry[0].append(FilePath(path))
                return
            except Exception as e:
                log.warn("cannot watch {path}: {error}", path=path, error=e)
        entry[2] = self.reactor.callLater(self.pollInterval, self._pollTree, key)

    def unwatchTree(self, key):
        """Stop watching what L{watchTree} watches for C{key}."""
        entry = self._trees.pop(key, None)
        if entry is None:
            return
        for path in entry[0]:
            try:
                self._notifier.ignore(path)
            except (KeyError, AttributeError):
                pass
        if entry[2] is not None and entry[2].active():
            entry[2].cancel()

    def noteTreeChanged(self, key):
        """Something changed under C{key}'s directory: call its C{changed} after the delay."""
        entry = self._trees.get(key)
        if entry is not None and entry[0] and entry[2] is None:  # polled: the next poll looks
            entry[2] = self.reactor.callLater(self.delay, self._tellTree, key)

    def _tellTree(self, key):
        entry = self._trees.get(key)
        if entry is None:
            return
        entry[2] = None
        try:
            entry[1]()
        except Exception:
            log.failure("telling of a change in {key} failed", key=key)

    def _pollTree(self, key):
        self._tellTree(key)
        entry = self._trees.get(key)
        if entry is not None:
            entry[2] = self.reactor.callLater(self.pollInterval, self._pollTree, key)

    def stopService(self):
        for key in list(self._trees):
            self.unwatchTree(key)
        for mailbox in list(self._watched):
            self.unwatch(mailbox)
        if self._poll is not None and self._poll.active():
            self._poll.cancel()
        self._poll = None
        if self._notifier is not None:
            notifier, self._notifier = self._notifier, None
            notifier.loseConnection()
        return service.Service.stopService(self)
