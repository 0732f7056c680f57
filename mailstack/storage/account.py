"""
The Maildir++ store's account and store objects: one user's tree of folders
(L{MaildirAccount}: create, delete, rename, subscriptions, special use) and
every user's account under one root (L{MaildirStore}). The mailbox itself is
L{mailstack.storage.maildir.MaildirMailbox}.
"""

import os
import shutil
import time
import uuid
import weakref

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer, provider

from mailstack.storage import accountevents
from mailstack.storage.batchdeliver import DeliveryBatcher
from mailstack.storage.files import makeDirectories, makeMaildir
from mailstack.storage.keep import DEFAULT_SIZE, KeptMailboxes
from mailstack.storage.interfaces import (
    IAccountStore, IMailStore, IStoreBackend, InvalidMailboxName, MailboxExists, MailboxInUse,
    MailboxNotEmpty, NoSuchMailbox, StoreError)
from mailstack.storage.maildir import MaildirMailbox
from mailstack.storage.maildrop import MaildropLocks
from mailstack.storage.names import checkName, decodeDirName, isValidName
from mailstack.storage.specialuse import SPECIAL_USE, readSpecialUse, updateSpecialUse
from mailstack.storage.uidlist import allocateUIDValidity, noteUIDValidity, readUIDValidity
from mailstack.storage.subscriptions import (
    SUBSCRIPTIONS, readSubscriptions, writeSubscriptions)

__all__ = ["InvalidAddress", "MaildirAccount", "MaildirStore"]

log = Logger()


class InvalidAddress(InvalidMailboxName, ValueError):
    """The address cannot name an account directory (empty part, '/', '..', NUL)."""


@implementer(IAccountStore)
class MaildirAccount:
    """
    One user's Maildir++ tree: INBOX at the root, folders as C{.A.B} subdirectories.
    Mailbox objects are shared, one per directory while anything uses it
    (found through weak references); C{kept} decides how many unused ones
    stay (L{mailstack.storage.keep}). Each mailbox holds its account (it
    allocates UIDVALIDITYs through it), so the account too is the one object
    of its directory while any of its mailboxes is in use.

    The contract's writes (creating, deleting and renaming folders,
    subscriptions, special uses: files written with fsync under dotlocks) run
    in a worker thread, one at a time per account; only forgetting the mailbox
    objects of a deleted or renamed folder (and telling their sessions) is
    done back in the reactor thread. Each has a blocking twin (C{getMailbox},
    C{createMailboxNow}...) for tools and tests. Renaming INBOX (moving its
    messages, RFC 3501) is the exception: it runs in the reactor thread.

    @param runInThread: C{f(callable, *args) -> Deferred} for fsyncing file
        work, handed to the mailboxes (L{MaildirMailbox}).
    @param maildropLocks: the process's L{MaildropLocks} registry.
    @param kept: the store's L{KeptMailboxes} (by default one of this account's own).
    """

    # Seconds to wait for dovecot-uidvalidity.lock: 0, try once (it is taken
    # on the reactor thread); held by another program, CREATE, DELETE and
    # RENAME fail with MailboxInUse and change nothing.
    uidValidityLockTimeout = 0.0

    def __init__(self, address, path, watcher=None, runInThread=None, maildropLocks=None,
                 kept=None, callLater=None):
        self.address = address
        self._callLater = callLater  # handed to the mailboxes (MaildirMailbox)
        self.path = path
        self.watcher = watcher
        self._runInThread = runInThread or defer.maybeDeferred
        self._writeLock = defer.DeferredLock()  # one write job at a time
        self._maildropLocks = maildropLocks
        self._mailboxes = weakref.WeakValueDictionary()  # dirName -> mailbox in use
        self._kept = kept if kept is not None else KeptMailboxes()
        self._refusedLinks = set()
        self._accountListeners = accountevents.AccountListeners()  # NOTIFY (RFC 5465)
        _ensureMaildir(path, folder=False)

    def __repr__(self):
        return "<MaildirAccount %r>" % (self.address,)

    _resolved = None

    @property
    def _realPath(self):
        """The account directory with its links resolved (asked only when a link is met)."""
        if self._resolved is None:
            self._resolved = os.path.realpath(self.path)
        return self._resolved

    def _path(self, dirName):
        return os.path.join(self.path, dirName) if dirName else self.path

    def _folderDirs(self):
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return []
        return [e.name for e in entries
                if e.name.startswith(".") and e.name not in (".", "..")
                and e.is_dir() and decodeDirName(e.name) is not None
                and (not e.is_symlink() or self._confined(e.path))]

    def _confined(self, path):
        """
        Whether the mailbox directory C{path} and its cur/ new/ tmp/ stay
        inside this account's directory once symbolic links are resolved.
        Links are rare: without one, four C{lstat()} calls decide.
        """
        paths = [path] + [os.path.join(path, sub) for sub in ("cur", "new", "tmp")]
        if not any(os.path.islink(p) for p in paths):
            return True
        root = self._realPath
        for p in paths:
            real = os.path.realpath(p)
            if real != root and not real.startswith(root + os.sep):
                return False
        return True

    def _checkConfined(self, canonical, path):
        """
        @raise StoreError: if the mailbox at C{path} links outside the account
            (another user's Maildir, anywhere on the system): never served.
        """
        if self._confined(path):
            return
        if path not in self._refusedLinks:
            self._refusedLinks.add(path)
            log.warn("{account}: refusing mailbox {name}: {path} links outside the account "
                     "directory", account=self, name=canonical, path=path)
        raise StoreError("mailbox %s links outside this account; refused" % (canonical,))

    def listMailboxes(self):
        return sorted(["INBOX"] + [decodeDirName(d) for d in self._folderDirs()])

    def hasMailbox(self, name):
        try:
            _, dirName = checkName(name)
        except InvalidMailboxName:
            return False
        return os.path.isdir(self._path(dirName))

    def _mailbox(self, name):
        """
        The shared mailbox object for C{name}, made if needed; a new one has
        read what is there but written nothing (files without UIDs wait for
        a sync).
        """
        canonical, dirName = checkName(name)
        path = self._path(dirName)
        self._checkConfined(canonical, path)
        mailbox = self._mailboxes.get(dirName)
        if mailbox is not None and not mailbox.gone:
            self._kept.use(mailbox)
            return mailbox
        if dirName and not os.path.isdir(path):
            raise NoSuchMailbox("no mailbox named %s" % (canonical,))
        # cur/ new/ tmp/ (INBOX's whole Maildir, removed behind our back)
        # made if missing: once per object, not at every login.
        _ensureMaildir(path, folder=bool(dirName))
        mailbox = MaildirMailbox(canonical, path, self.watcher, self._allocateUIDValidity,
                                 self._runInThread, placed=self._kept.placedFor(path),
                                 callLater=self._callLater)
        self._mailboxes[dirName] = mailbox
        self._kept.use(mailbox)
        return mailbox

    def makeInbox(self):
        """Make the INBOX's Maildir again if it was removed (a delivery found it gone)."""
        makeMaildir(self.path, folder=False)

    @staticmethod
    def _checkReadable(mailbox):
        if mailbox.uidValidity is None:
            # No readable dovecot-uidlist, and another program holds its lock:
            # no UIDs to show yet. Refuse now (IMAP NO [INUSE]) rather than
            # serve a mailbox without a UIDVALIDITY; the next open tries again.
            raise MailboxInUse("mailbox %s is locked by another program; try again"
                               % (mailbox.name,))
        return mailbox

    def getMailbox(self, name):
        """L{openMailbox}, all in the calling thread (tools, tests)."""
        mailbox = self._mailbox(name)
        if mailbox.uidValidity is None or mailbox.waitingForUIDs:
            mailbox.syncNow(claimRecent=False)
        return self._checkReadable(mailbox)

    def openMailbox(self, name):
        """
        A mailbox opened for the first time gets its UIDs (a new folder its
        dovecot-uidlist and UIDVALIDITY) from a sync, whose writes run in a
        worker thread.
        """
        try:
            mailbox = self._mailbox(name)
        except Exception:
            return defer.fail()
        if mailbox.uidValidity is not None and not mailbox.waitingForUIDs:
            return defer.succeed(mailbox)
        d = mailbox.sync(claimRecent=False, waitForLock=mailbox.uidValidity is None)
        return d.addCallback(lambda _: self._checkReadable(mailbox))

    def _allocateUIDValidity(self, *known):
        return allocateUIDValidity(self.path, *known, timeout=self.uidValidityLockTimeout)

    def _retireUIDValidities(self, dirNames):
        """The folders C{dirNames} go away: their UIDVALIDITYs are never given again."""
        values = [readUIDValidity(self._path(d)) for d in dirNames]
        values = [v for v in values if v]
        if values:
            noteUIDValidity(self.path, max(values), timeout=self.uidValidityLockTimeout)

    def _inThread(self, f, *args):
        """C{f(*args)} in a worker thread, after the account's previous write."""
        return self._writeLock.run(self._runInThread, f, *args)

    def _forget(self, dirNames):
        """Folders gone from disk: their mailbox objects tell their sessions."""
        for dirName in dirNames:
            self._kept.forget(self._path(dirName))
            mailbox = self._mailboxes.pop(dirName, None)
            if mailbox is not None:
                mailbox.vanish()

    def createMailbox(self, name):
        d = self._inThread(self._listedAround, self.createMailboxNow, name)
        return d.addCallback(self._tellListChange)

    def createMailboxNow(self, name):
        if name.endswith("/") and len(name) > 1:
            name = name[:-1]  # RFC 3501 CREATE: a trailing separator only shows intent
        canonical, dirName = checkName(name)
        if not dirName or os.path.isdir(self._path(dirName)):
            raise MailboxExists("mailbox %s already exists" % (canonical,))
        self._createParents(canonical)
        try:
            os.mkdir(self._path(dirName), 0o700)
        except FileExistsError:
            raise MailboxExists("mailbox %s already exists" % (canonical,))
        makeMaildir(self._path(dirName), folder=True)

    def _createParents(self, canonical):
        parts = canonical.split("/")
        for depth in range(1, len(parts)):
            _, parentDir = checkName("/".join(parts[:depth]))
            if parentDir and not os.path.isdir(self._path(parentDir)):
                makeMaildir(self._path(parentDir), folder=True)

    def deleteMailbox(self, name):
        d = self._inThread(self._listedAround, self._deleteFiles, name)
        return d.addCallback(lambda done: self._forget(done[0]) or self._tellListChange(done))

    def deleteMailboxNow(self, name):
        self._forget(self._deleteFiles(name))

    def _deleteFiles(self, name):
        """The files of L{deleteMailbox} (thread-safe). @return: C{[dirName]}."""
        canonical, dirName = checkName(name)
        if not dirName:
            raise MailboxNotEmpty("INBOX cannot be deleted")
        path = self._path(dirName)
        if not os.path.isdir(path):
            raise NoSuchMailbox("no mailbox named %s" % (canonical,))
        if any(d.startswith(dirName + ".") for d in self._folderDirs()):
            raise MailboxNotEmpty("mailbox %s has child mailboxes; delete them first"
                                  % (canonical,))
        self._retireUIDValidities([dirName])
        # Rename first so the folder disappears at once, even if removal is slow.
        trash = os.path.join(self.path, "..mailstack-deleted." + uuid.uuid4().hex)
        os.rename(path, trash)
        if os.path.islink(trash):
            os.unlink(trash)  # a linked folder: drop the link, never what it points to
        else:
            shutil.rmtree(trash, ignore_errors=True)
        self._renameUses(canonical, None)
        return [dirName]

    def renameMailbox(self, oldName, newName):
        try:
            isInbox = checkName(oldName)[1] == ""
        except InvalidMailboxName:
            return defer.fail()
        if isInbox:
            d = defer.maybeDeferred(self._listedAround, self.renameMailboxNow, oldName, newName)
            return d.addCallback(self._tellListChange)
        d = self._inThread(self._listedAround, self._renameFiles, oldName, newName)

        def renamed(done):
            self._forget(done[0])
            self._tellListChange(done, oldName, newName)
        return d.addCallback(renamed)

    # Telling account listeners (NOTIFY, RFC 5465)

    def addAccountListener(self, listener):
        """
        Also watches the account's directory (with the store's watcher) for
        folders and subscriptions another program changes.
        """
        self._accountListeners.add(listener)
        if self.watcher is not None and self._known is None:
            self._known = self._snapshot()
            self.watcher.watchTree(self, self.path, self._changedOutside)

    def removeAccountListener(self, listener):
        self._accountListeners.remove(listener)
        if not self._accountListeners and self._known is not None:
            self._known = None
            self.watcher.unwatchTree(self)

    _known = None  # (mailbox names, subscriptions) while watched

    def _snapshot(self):
        return set(self.listMailboxes()), set(self.subscriptions())

    def _changedOutside(self):
        """
        The directory changed: tell what another program did (a rename shows
        as the old name deleted and the new one created). Changes this
        account made itself were told already and are in the snapshot.
        """
        if self._known is None:
            return
        if self._writeLock.locked:
            # This account's own write is under way: look once it is done
            # (and told), so that it is not told twice.
            return self.watcher.noteTreeChanged(self)
        (names, subscribed), (oldNames, oldSubscribed) = self._snapshot(), self._known
        self._known = (names, subscribed)
        M = accountevents.MailboxesChange
        self._accountListeners.tell(
            [M(accountevents.CREATED, name) for name in sorted(names - oldNames)]
            + [M(accountevents.DELETED, name) for name in sorted(oldNames - names)]
            + [M(accountevents.SUBSCRIBED, name) for name in sorted(subscribed - oldSubscribed)]
            + [M(accountevents.UNSUBSCRIBED, name) for name in sorted(oldSubscribed - subscribed)])

    def _noteOwnChange(self):
        """After this account's own change (told directly): the watcher's snapshot follows."""
        if self._known is not None:
            self._known = self._snapshot()

    def _listedAround(self, f, *args):
        """C{f(*args)} and the mailbox names before and after (thread-safe)."""
        before = set(self.listMailboxes())
        result = f(*args)
        return result, before, set(self.listMailboxes())

    def _tellListChange(self, done, oldName=None, newName=None):
        """Tell the account listeners what a create, delete or rename did."""
        _, before, after = done
        changes, renamed = [], set()
        if oldName is not None:
            old, new = checkName(oldName)[0], checkName(newName)[0]
            renamed = {name for name in after - before
                       if name == new or name.startswith(new + "/")}
            changes = [accountevents.MailboxesChange(
                accountevents.RENAMED, name, old + name[len(new):]) for name in sorted(renamed)]
        created = [accountevents.MailboxesChange(accountevents.CREATED, name)
                   for name in sorted(after - before - renamed)]
        deleted = [] if oldName is not None else [
            accountevents.MailboxesChange(accountevents.DELETED, name)
            for name in sorted(before - after)]
        self._noteOwnChange()
        self._accountListeners.tell(created + changes + deleted)

    def renameMailboxNow(self, oldName, newName):
        oldCanonical, oldDir = checkName(oldName)
        if not oldDir:
            newCanonical, newDir = checkName(newName)
            if not newDir or os.path.isdir(self._path(newDir)):
                raise MailboxExists("mailbox %s already exists" % (newCanonical,))
            return self._renameInbox(newCanonical)
        self._forget(self._renameFiles(oldName, newName))

    def _renameFiles(self, oldName, newName):
        """
        The files of L{renameMailbox} for a folder other than INBOX
        (thread-safe). @return: the directory names moved away.
        """
        oldCanonical, oldDir = checkName(oldName)
        newCanonical, newDir = checkName(newName)
        if not os.path.isdir(self._path(oldDir)):
            raise NoSuchMailbox("no mailbox named %s" % (oldCanonical,))
        if not newDir or os.path.isdir(self._path(newDir)):
            raise MailboxExists("mailbox %s already exists" % (newCanonical,))
        if newDir.startswith(oldDir + "."):
            raise InvalidMailboxName("cannot move mailbox %s inside itself" % (oldCanonical,))
        moves = [(d, newDir + d[len(oldDir):]) for d in sorted(self._folderDirs())
                 if d == oldDir or d.startswith(oldDir + ".")]
        for _, target in moves:
            if os.path.exists(self._path(target)):
                raise MailboxExists("mailbox %s already exists" % (decodeDirName(target),))
        self._retireUIDValidities([source for source, _ in moves])
        self._createParents(newCanonical)
        for source, target in moves:
            os.rename(self._path(source), self._path(target))
        self._renameUses(oldCanonical, newCanonical)
        return [source for source, _ in moves]

    def _renameInbox(self, newCanonical):
        """RFC 3501: move every INBOX message to a new mailbox, leave INBOX empty."""
        self.createMailboxNow(newCanonical)
        self.getMailbox("INBOX").moveAllTo(self.getMailbox(newCanonical))

    # Special use (RFC 6154)

    def _specialUsePath(self):
        return os.path.join(self.path, SPECIAL_USE)

    def specialUse(self):
        return readSpecialUse(self._specialUsePath()) or {}

    def setSpecialUse(self, name, attributes):
        return self._inThread(self.setSpecialUseNow, name, attributes)

    def setSpecialUseNow(self, name, attributes):
        canonical, dirName = checkName(name)
        if not os.path.isdir(self._path(dirName)):
            raise NoSuchMailbox("no mailbox named %s" % (canonical,))

        def change(uses):
            uses.pop(canonical, None)
            if attributes:
                uses[canonical] = tuple(sorted(set(attributes)))
        updateSpecialUse(self._specialUsePath(), change)

    def _renameUses(self, old, new):
        """A mailbox (and its children) was renamed (C{new}) or deleted (None)."""
        uses = readSpecialUse(self._specialUsePath())
        if not uses or not any(n == old or n.startswith(old + "/") for n in uses):
            return

        def change(uses):
            for name in [n for n in uses if n == old or n.startswith(old + "/")]:
                attributes = uses.pop(name)
                if new is not None:
                    uses[new + name[len(old):]] = attributes
        updateSpecialUse(self._specialUsePath(), change)

    def createDefaultMailboxes(self, defaults):
        return self._inThread(self.createDefaultMailboxesNow, defaults)

    def createDefaultMailboxesNow(self, defaults):
        try:
            os.stat(self._specialUsePath())  # at every IMAP login: not read, only there
            return []
        except FileNotFoundError:
            pass
        created = []
        if not self._folderDirs() and not os.path.exists(self._subscriptionsPath()):
            for name, _ in defaults:
                try:
                    self.createMailboxNow(name)
                    created.append(name)
                except MailboxExists:
                    pass
                self.subscribeNow(name)
        defaults = [(name, use) for name, use in defaults if self.hasMailbox(name)]

        def change(uses):
            for name, attribute in defaults:
                if attribute not in uses.get(name, ()):
                    uses[name] = tuple(sorted(uses.get(name, ()) + (attribute,)))
        updateSpecialUse(self._specialUsePath(), change)
        return created

    # Subscriptions

    def _subscriptionsPath(self):
        return os.path.join(self.path, SUBSCRIPTIONS)

    def subscriptions(self):
        return sorted(set(readSubscriptions(self._subscriptionsPath())))

    def subscribe(self, name):
        d = self._inThread(self._subscriptionChange, self.subscribeNow, name)
        return d.addCallback(self._tellSubscription, accountevents.SUBSCRIBED)

    def _subscriptionChange(self, f, name):
        """C{f(name)}; @return: the canonical name if that changed its subscription."""
        before = set(self.subscriptions())
        f(name)
        changed = before ^ set(self.subscriptions())
        return changed.pop() if changed else None

    def _tellSubscription(self, name, kind):
        self._noteOwnChange()
        if name is not None:
            self._accountListeners.tell([accountevents.MailboxesChange(kind, name)])

    def subscribeNow(self, name):
        canonical, _ = checkName(name)
        names = self.subscriptions()
        if canonical not in names:
            writeSubscriptions(self._subscriptionsPath(),
                               [n for n in names if isValidName(n)] + [canonical])

    def unsubscribe(self, name):
        d = self._inThread(self._subscriptionChange, self.unsubscribeNow, name)
        return d.addCallback(self._tellSubscription, accountevents.UNSUBSCRIBED)

    def unsubscribeNow(self, name):
        try:
            canonical, _ = checkName(name)
        except InvalidMailboxName:
            return
        names = self.subscriptions()
        if canonical in names:
            writeSubscriptions(self._subscriptionsPath(),
                               [n for n in names if n != canonical and isValidName(n)])

    # The POP3 maildrop

    def lockMaildrop(self):
        try:
            return defer.succeed(self._maildropLocks.acquire(self.address, self.path))
        except Exception:
            return defer.fail()


def _ensureMaildir(path, folder):
    """
    L{makeMaildir} if anything is missing: three or four C{stat()}s where
    that takes nine or eleven system calls to find everything there.
    """
    wanted = ["cur", "new", "tmp"] + (["maildirfolder"] if folder else [])
    try:
        for name in wanted:
            os.stat(os.path.join(path, name))
    except (FileNotFoundError, NotADirectoryError):
        makeMaildir(path, folder)  # makes what is missing, or raises what is wrong


def _accountPath(root, address):
    """
    @return: C{root/<domain>/<localpart>} for a lower-cased address.
    @raise InvalidAddress: if a part could escape that directory or is empty.
    """
    local, at, domain = address.rpartition("@")
    if not at:
        raise InvalidAddress("not an address: %r" % (address,))
    for part in (local, domain):
        if (not part or part in (".", "..") or ".." in part or "/" in part or "\\" in part
                or any(c < "\x20" or c == "\x7f" for c in part)):
            raise InvalidAddress("address %r cannot name a mail directory" % (address,))
    return os.path.join(root, domain, local)


# Directory times are coarse (a clock tick): a stamp younger than this may
# hide a change made in its tick (as the mailboxes' rule, storage.maildir).
_SETTLE_NS = 2 * 10 ** 9


@implementer(IMailStore)
class MaildirStore:
    """
    Every user's Maildir++ under C{root/<domain>/<localpart>/}.

    @param root: the mail directory (created on first use).
    @param watcher: a L{mailstack.storage.watch.MailboxWatcher} that tells open
        sessions of changes made by other programs, or L{None}.
    @param reactor: the reactor whose thread pool runs the fsyncing file work
        (deliveries, appends, copies); L{None} (tools, tests) runs it at once
        in the calling thread.
    @param cacheSize: how many mailboxes no session uses are kept in memory
        (C{[storage] cached_mailboxes}; L{mailstack.storage.keep}).
    @param clock: an C{IReactorTime} for the mailboxes' end-of-turn modseq
        writes (default: C{reactor}; with neither, they are written at once).

    Accounts and mailboxes are found through weak references: the objects
    anyone uses, and the mailboxes kept, with their accounts; nothing else
    stays, however many users logged in or got mail.
    """

    def __init__(self, root, watcher=None, reactor=None, runInThread=None,
                 cacheSize=DEFAULT_SIZE, clock=None):
        self.root = root
        # Where the mailboxes schedule their modseq writes (the reactor's
        # callLater; a test may give a task.Clock alone).
        clock = clock if clock is not None else reactor
        self._callLater = clock.callLater if clock is not None else None
        self.watcher = watcher
        # Deliveries in rounds, by up to three writer threads of the
        # reactor's pool (a given runInThread keeps one job each).
        self._batcher = DeliveryBatcher(reactor) if (
            reactor is not None and runInThread is None) else None
        if runInThread is None and reactor is not None:
            runInThread = _threadPoolRunner(reactor)
        self._runInThread = runInThread or defer.maybeDeferred
        self._maildropLocks = MaildropLocks(clock=reactor)
        self._kept = KeptMailboxes(cacheSize)
        self._accounts = weakref.WeakValueDictionary()  # path -> account
        # deliver's shortcut: address -> INBOX, and INBOX -> (account, stamp checked)
        self._inboxes = weakref.WeakValueDictionary()
        self._inboxChecks = weakref.WeakKeyDictionary()

    def account(self, address):
        """
        The account's object: a new one (which makes its Maildir if missing)
        only if none is in use or kept; at a login of a known user, no
        system call at all.
        """
        address = address.lower()
        path = _accountPath(self.root, address)
        account = self._accounts.get(path)
        if account is None:
            account = self._accounts[path] = MaildirAccount(
                address, path, self.watcher, self._runInThread, self._maildropLocks,
                self._kept, self._callLater)
        return account

    def deliver(self, addresses, source, together=None):
        """
        The INBOXes are opened here; the copies are written (file, fsync,
        rename into new/, directory fsync) one after the other in a worker
        thread, and the ones made are removed again if one (or C{together})
        fails; then the sessions with an INBOX open are told.
        """
        try:
            # No UIDs are needed to deliver: nothing is written here.
            mailboxes = [self._inbox(address) for address in addresses]
        except Exception:
            return defer.fail()
        d = self._deliverTo(mailboxes, source, together)

        def vanished(failure):
            # A Maildir removed behind our back (the admin deleted the user,
            # postmaster's was never made): nothing was placed; look the
            # INBOXes up afresh, which makes the Maildir, and try once more.
            failure.trap(NoSuchMailbox)
            for address in addresses:
                self._inboxes.pop(address, None)
            try:
                for address in addresses:
                    self.account(address).makeInbox()
                again = [self._inbox(address) for address in addresses]
            except Exception:
                return defer.fail()
            return self._deliverTo(again, source, together)
        return d.addErrback(vanished)

    def _inbox(self, address):
        """
        The INBOX a delivery to C{address} goes to. The account lookup (which
        makes sure the Maildir exists: nine system calls) is done once and
        kept while the mailbox lives. The check that it links nowhere outside
        the account (four C{lstat}s) is made again whenever the Maildir's
        directory is not the same as at the last check: swapping cur/,
        new/ or tmp/ for a link changes its modification time, swapping the
        Maildir itself its inode. A directory changed within the last 2 s is
        checked every time: a swap in the clock tick of that change (a
        uidlist just rewritten) would leave its times as they were.
        """
        mailbox = self._inboxes.get(address)
        if mailbox is None or mailbox.gone:
            account = self.account(address)
            mailbox = self._inboxes[address] = account._mailbox("INBOX")
            account, checked = self._inboxChecks[mailbox] = (account, None)
        else:
            self._kept.use(mailbox)
            account, checked = self._inboxChecks[mailbox]
        try:
            st = os.stat(mailbox.path)
            stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            if max(st.st_mtime_ns, st.st_ctime_ns) > time.time_ns() - _SETTLE_NS:
                stamp = None  # too recent to vouch for the next delivery
        except OSError:
            stamp = None  # gone: the check refuses or the write finds it missing
        if stamp is None or stamp != checked:
            account._checkConfined("INBOX", mailbox.path)
        self._inboxChecks[mailbox] = (account, stamp)
        return mailbox

    def _deliverTo(self, mailboxes, source, together):
        """L{deliver} into the INBOXes C{mailboxes}, already looked up."""
        placed = []
        if self._batcher is not None:
            d = self._batcher.deliver(mailboxes, source).addCallback(placed.extend)
        else:
            d = self._runInThread(_placeAll, mailboxes, source, placed)
        if together is not None:
            d.addCallback(lambda _: together())

        def failed(failure):
            if not placed:
                return failure
            return self._runInThread(_discardAll, placed).addBoth(lambda _: failure)

        def delivered(_):
            for mailbox in mailboxes:
                # Without a listening session, skip the rescan (it grew with
                # the INBOX and slowed every delivery: bench/).
                if mailbox.hasListeners():
                    _tellSessions(mailbox)
        return d.addCallbacks(delivered, failed)


def _threadPoolRunner(reactor):
    """C{f(callable, *args) -> Deferred} running in C{reactor}'s thread pool."""
    from twisted.internet.threads import deferToThreadPool

    def run(f, *args, **kwargs):
        return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args, **kwargs)
    return run


def _placeAll(mailboxes, source, placed):
    """In a worker thread: one durable copy of C{source} in each mailbox."""
    for mailbox in mailboxes:
        if not isinstance(source, bytes):
            source.seek(0)
        placed.append((mailbox, mailbox.deliver(source)))


def _discardAll(placed):
    """In a worker thread: take back the copies of a delivery that failed."""
    for mailbox, key in placed:
        try:
            mailbox.discardPlaced(key)
        except Exception as e:
            log.error("could not remove the copy {key} in {mailbox} of a refused "
                      "message: {error}", key=key, mailbox=mailbox, error=e)


def _tellSessions(mailbox):
    """
    Tell the sessions that have C{mailbox} open of a delivery already on disk
    (a sync that claims nothing; new UIDs are written in a worker thread). A
    failure (a damaged dovecot-uidlist) is logged in one line: the message is
    stored, and the next sync (the session's next command, or the watcher)
    finds it.
    """
    def failed(failure):
        failure.trap(StoreError, OSError)
        log.warn("stored in {mailbox}; telling its open sessions failed ({error}); "
                 "they see it at their next sync", mailbox=mailbox, error=failure.value)
    mailbox.sync(claimRecent=False).addErrback(failed)


@provider(IStoreBackend)
class MaildirBackend:
    """
    C{[storage] backend = "maildir"} (the default): every user's Maildir++
    under C{data_dir/mail}, shared safely with Dovecot and with other
    mailstack processes.
    """

    name = "maildir"

    @staticmethod
    def open(config, reactor, watcher):
        makeDirectories(config.mail_dir)  # 0700, as everything under data_dir
        return MaildirStore(config.mail_dir, watcher, reactor=reactor,
                            cacheSize=config.storage.cached_mailboxes)
