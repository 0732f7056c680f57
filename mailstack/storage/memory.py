"""
The memory store (C{[storage] backend = "memory"}): every account, mailbox and
message in this process's memory, lost when it exits. For test suites (the
L{mailstack.testing} fixture, the store-contract tests) and demonstrations.

It keeps the whole store contract (L{mailstack.storage.interfaces}) the way
the Maildir store does, so a protocol cannot tell them apart: the same mailbox
names are valid (L{mailstack.storage.names.checkName}), messages are kept in
wire (CRLF) form, \\Recent is claimed by the first read-write sync, every
change raises the mailbox's mod-sequence (RFC 7162) and a re-created mailbox
gets a UIDVALIDITY never given before in its account. Nothing here blocks or
waits: every operation is done when the call returns, its L{Deferred} has
fired, and listeners are told inside the operation (in the reactor thread,
the only one that calls the store).
"""

import dataclasses
import functools
import io
import time

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer, provider

from mailstack.storage import accountevents, crlf
from mailstack.storage.flags import FLAG_LETTERS, splitFlags
from mailstack.storage.interfaces import (
    Changes, IAccountStore, IMaildropLock, IMailboxStore, IMailStore, IMessageInfo,
    IStoreBackend, InvalidMailboxName, MailboxExists, MailboxInUse, MailboxNotEmpty,
    NoSuchMailbox, NoSuchMessage, StoreError)
from mailstack.storage.names import checkName, isValidName

__all__ = ["MemoryAccount", "MemoryBackend", "MemoryMailbox", "MemoryMessageInfo",
           "MemoryStore"]

log = Logger()

_SYSTEM_FLAGS = {letter: flag for flag, letter in FLAG_LETTERS.items()}


def _deferred(method):
    """Make a method that answers at once return a fired L{Deferred} (its
    exceptions a failed one), as the contract wants."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        return defer.maybeDeferred(method, *args, **kwargs)
    return wrapper


def _readCRLF(source):
    """The bytes of C{source} (bytes, or a binary file read from where it
    stands to its end) with bare LFs as CRLF, as the Maildir stores them."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    return b"".join(crlf.iterCRLF(source))


@implementer(IMessageInfo)
@dataclasses.dataclass(frozen=True)
class MemoryMessageInfo:
    """Metadata of one message (see L{IMessageInfo})."""
    uid: int
    flags: frozenset
    size: int
    internalDate: float
    key: str
    modseq: int
    saveDate: float | None = None  # when _add stored it: delivery, APPEND, COPY or MOVE


@dataclasses.dataclass
class _Message:
    """One stored message: its info and its wire-form bytes."""
    info: MemoryMessageInfo
    data: bytes


@implementer(IMailboxStore)
class MemoryMailbox:
    """
    One mailbox, shared by every session of the process (the account keeps one
    object per mailbox; a deleted or renamed one is L{gone} and a new object
    stands for the name afterwards).

    @ivar gone: whether the mailbox was deleted or renamed away: it then holds
        nothing, and appending or copying into it fails with L{NoSuchMailbox}.
    """

    def __init__(self, account, name, uidValidity):
        self.name = name
        self.uidValidity = uidValidity
        self.uidNext = 1
        self.highestModseq = 1
        self.gone = False
        self._account = account
        self._messages = {}  # uid -> _Message, in ascending UID order
        self._keywords = {}  # lower-case name -> the name first used
        self._unclaimed = set()  # UIDs no read-write sync has claimed as \Recent
        self._vanished = {}  # expunged uid -> modseq of its expunge
        self._listeners = []

    def __repr__(self):
        return "<MemoryMailbox %r of %r>" % (self.name, self._account.address)

    # Reading (answered from memory, as the contract says)

    @_deferred
    def sync(self, claimRecent=True):
        """Nothing to find (every change was applied and announced when it was
        made): only claims the unclaimed messages as \\Recent if asked."""
        recent = []
        if claimRecent and not self.gone:
            recent, self._unclaimed = sorted(self._unclaimed), set()
        return Changes(recent=recent)

    def messages(self):
        return [message.info for message in self._messages.values()]

    def messageInfo(self, uid):
        return self._message(uid).info

    def openMessage(self, uid):
        return io.BytesIO(self._message(uid).data)

    def keywords(self):
        return set(self._keywords.values())

    def unclaimedUIDs(self):
        return sorted(self._unclaimed)

    def unclaimedCount(self):
        return len(self._unclaimed)

    def vanishedSince(self, modseq):
        return sorted(uid for uid, when in self._vanished.items() if when > modseq)

    def _message(self, uid):
        try:
            return self._messages[uid]
        except KeyError:
            raise NoSuchMessage("no message with UID %s" % (uid,))

    # Writing

    @_deferred
    def append(self, source, flags=(), internalDate=None):
        self._checkExists()
        data = _readCRLF(source)
        [uid] = self._add([(data, self._flags(flags), internalDate)])
        return uid

    @_deferred
    def appendMany(self, messages):
        """Every source read before anything is stored: all or nothing."""
        self._checkExists()
        datas = [_readCRLF(source) for source, _, _ in messages]
        items = [(data, self._flags(flags), internalDate)
                 for data, (_, flags, internalDate) in zip(datas, messages)]
        return self._add(items)

    @_deferred
    def setFlags(self, uid, flags):
        message = self._message(uid)
        flags = self._flags(flags)
        if flags != message.info.flags:
            modseq = self._nextModseq()
            message.info = dataclasses.replace(message.info, flags=flags, modseq=modseq)
            self._notify(Changes(flagsChanged=[uid]))
        return message.info

    @_deferred
    def expunge(self, uids):
        removed = sorted(uid for uid in set(uids) if uid in self._messages)
        if removed:
            self._remove(removed)
        return removed

    @_deferred
    def copyTo(self, uids, destination):
        if not isinstance(destination, MemoryMailbox) or destination._account._store is not (
                self._account._store):
            raise StoreError("cannot copy into a mailbox of another store")
        destination._checkExists()
        sources = sorted(uid for uid in set(uids) if uid in self._messages)
        copies = destination._add(
            [(self._messages[uid].data, destination._flags(self._messages[uid].info.flags),
              self._messages[uid].info.internalDate) for uid in sources])
        return list(zip(sources, copies))

    def addListener(self, listener):
        if listener not in self._listeners:
            self._listeners.append(listener)

    def removeListener(self, listener):
        if listener in self._listeners:
            self._listeners.remove(listener)

    # The bookkeeping behind them (and the account's rename and delete)

    def _checkExists(self):
        if self.gone:
            raise NoSuchMailbox("mailbox %s no longer exists" % (self.name,))

    def _flags(self, flags):
        """
        The flags to store for C{flags}: system flags in their canonical case,
        keywords named as this mailbox first knew them (they match without
        regard to case, as in the Maildir), new keywords added to the mailbox's.
        Unknown system flags and keywords that are not atoms are refused with
        the Maildir's L{StoreError}; C{\\Recent} is dropped.
        """
        letters, keywords = splitFlags(flags)
        for keyword in keywords:
            self._keywords.setdefault(keyword.lower(), keyword)
        return frozenset({_SYSTEM_FLAGS[letter] for letter in letters}
                         | {self._keywords[keyword.lower()] for keyword in keywords})

    def _nextModseq(self):
        self.highestModseq += 1
        return self.highestModseq

    def _add(self, items):
        """
        Store C{[(data, flags, internalDate)]} under new UIDs, one modseq for
        them all, unclaimed; tell the listeners. @return: the UIDs.
        """
        if not items:
            return []
        modseq = self._nextModseq()
        uids = []
        for data, flags, internalDate in items:
            uid, self.uidNext = self.uidNext, self.uidNext + 1
            if internalDate is None:
                internalDate = self._account._store.now()
            info = MemoryMessageInfo(uid, flags, len(data), float(internalDate),
                                     self._account._store.newKey(), modseq,
                                     float(self._account._store.now()))
            self._messages[uid] = _Message(info, data)
            self._unclaimed.add(uid)
            uids.append(uid)
        self._notify(Changes(added=uids))
        return uids

    def _remove(self, uids):
        """Expunge C{uids} (all present) with one modseq; tell the listeners."""
        modseq = self._nextModseq()
        for uid in uids:
            del self._messages[uid]
            self._unclaimed.discard(uid)
            self._vanished[uid] = modseq
        self._notify(Changes(expunged=uids))

    def _moveAllTo(self, destination):
        """RFC 3501 RENAME of INBOX: every message (flags and dates kept) into
        C{destination}, in UID order; this mailbox is left empty."""
        uids = list(self._messages)
        destination._add([(self._messages[uid].data, destination._flags(
            self._messages[uid].info.flags), self._messages[uid].info.internalDate)
            for uid in uids])
        if uids:
            self._remove(uids)

    def _takeOver(self, old):
        """A rename: this new object gets the messages, UIDs and history of
        C{old}, which is gone afterwards (its sessions see every message
        expunged, as when the Maildir's folder directory is renamed)."""
        self.uidValidity, self.uidNext, self.highestModseq = (
            old.uidValidity, old.uidNext, old.highestModseq)
        self._messages, self._keywords = dict(old._messages), dict(old._keywords)
        self._unclaimed, self._vanished = set(old._unclaimed), dict(old._vanished)
        old._vanish()

    def _vanish(self):
        """Deleted or renamed away: hold nothing, tell the listeners."""
        expunged = list(self._messages)
        self.gone = True
        self._messages, self._unclaimed = {}, set()
        if expunged:
            self._notify(Changes(expunged=expunged))

    def _notify(self, changes):
        for listener in list(self._listeners):
            try:
                listener.mailboxChanged(self, changes)
            except Exception:
                log.failure("Mailbox listener {listener} failed", listener=listener)


@implementer(IMaildropLock)
class _MaildropLock:
    """One POP3 session's hold on an account's maildrop."""

    def __init__(self, account):
        self._account = account

    def release(self):
        if self._account._maildropLock is self:
            self._account._maildropLock = None


@implementer(IAccountStore)
class MemoryAccount:
    """
    One user's mailboxes: INBOX always exists; folders, subscriptions, special
    uses and the POP3 maildrop lock live here.
    """

    def __init__(self, store, address):
        self.address = address
        self._store = store
        self._lastUIDValidity = 0
        self._mailboxes = {"INBOX": MemoryMailbox(self, "INBOX", self._newUIDValidity())}
        self._subscriptions = set()
        self._specialUse = {}
        self._defaultsDone = False
        self._maildropLock = None
        self._accountListeners = accountevents.AccountListeners()  # NOTIFY (RFC 5465)

    def __repr__(self):
        return "<MemoryAccount %r>" % (self.address,)

    def _newUIDValidity(self):
        """A UIDVALIDITY this account never gave: the clock's second, or one
        more than the last if that is not larger (as Dovecot does)."""
        self._lastUIDValidity = max(self._lastUIDValidity + 1, int(self._store.now()))
        return self._lastUIDValidity

    def _existing(self, name):
        """@return: C{(canonical name, its mailbox)}. @raise NoSuchMailbox, InvalidMailboxName."""
        canonical, _ = checkName(name)
        if canonical not in self._mailboxes:
            raise NoSuchMailbox("no mailbox named %s" % (canonical,))
        return canonical, self._mailboxes[canonical]

    def _family(self, canonical):
        """The existing names C{canonical} and its descendants, sorted."""
        return sorted(n for n in self._mailboxes
                      if n == canonical or n.startswith(canonical + "/"))

    def listMailboxes(self):
        return sorted(self._mailboxes)

    def hasMailbox(self, name):
        try:
            return checkName(name)[0] in self._mailboxes
        except InvalidMailboxName:
            return False

    @_deferred
    def openMailbox(self, name):
        return self._existing(name)[1]

    @_deferred
    def createMailbox(self, name):
        if name.endswith("/") and len(name) > 1:
            name = name[:-1]  # RFC 3501 CREATE: a trailing separator only shows intent
        canonical, _ = checkName(name)
        if canonical in self._mailboxes:
            raise MailboxExists("mailbox %s already exists" % (canonical,))
        before = set(self._mailboxes)
        self._create(canonical)
        self._accountListeners.tell(  # NOTIFY: parents made on the way first
            accountevents.MailboxesChange(accountevents.CREATED, made)
            for made in sorted(set(self._mailboxes) - before))

    def _create(self, canonical):
        """Make C{canonical} and its missing parents; @return: the new mailbox."""
        levels = canonical.split("/")
        for depth in range(1, len(levels) + 1):
            name = "/".join(levels[:depth])
            if name not in self._mailboxes:
                self._mailboxes[name] = MemoryMailbox(self, name, self._newUIDValidity())
        return self._mailboxes[canonical]

    @_deferred
    def deleteMailbox(self, name):
        canonical, _ = checkName(name)
        if canonical == "INBOX":
            raise MailboxNotEmpty("INBOX cannot be deleted")
        canonical, mailbox = self._existing(canonical)
        if len(self._family(canonical)) > 1:
            raise MailboxNotEmpty("mailbox %s has child mailboxes; delete them first"
                                  % (canonical,))
        del self._mailboxes[canonical]
        self._specialUse.pop(canonical, None)
        mailbox._vanish()
        self._accountListeners.tell(  # NOTIFY
            [accountevents.MailboxesChange(accountevents.DELETED, canonical)])

    @_deferred
    def renameMailbox(self, oldName, newName):
        oldCanonical, _ = checkName(oldName)
        newCanonical, _ = checkName(newName)
        oldCanonical, _ = self._existing(oldCanonical)
        if newCanonical in self._mailboxes or newCanonical == "INBOX":
            raise MailboxExists("mailbox %s already exists" % (newCanonical,))
        if oldCanonical != "INBOX" and newCanonical.startswith(oldCanonical + "/"):
            raise InvalidMailboxName("cannot move mailbox %s inside itself" % (oldCanonical,))
        before = set(self._mailboxes)
        if oldCanonical == "INBOX":
            self._mailboxes["INBOX"]._moveAllTo(self._create(newCanonical))
            return self._accountListeners.tell(  # NOTIFY: INBOX stays, a new one is made
                accountevents.MailboxesChange(accountevents.CREATED, made)
                for made in sorted(set(self._mailboxes) - before))
        renamed = []
        for source in self._family(oldCanonical):
            target = newCanonical + source[len(oldCanonical):]
            old = self._mailboxes.pop(source)
            self._create(target)._takeOver(old)
            if source in self._specialUse:
                self._specialUse[target] = self._specialUse.pop(source)
            renamed.append(accountevents.MailboxesChange(accountevents.RENAMED, target, source))
        made = set(self._mailboxes) - before - {change.name for change in renamed}
        self._accountListeners.tell(  # NOTIFY: new parents, then each name moved
            [accountevents.MailboxesChange(accountevents.CREATED, name) for name in sorted(made)]
            + renamed)

    # Subscriptions and special use

    def subscriptions(self):
        return sorted(self._subscriptions)

    @_deferred
    def subscribe(self, name):
        canonical = checkName(name)[0]
        if canonical not in self._subscriptions:
            self._subscriptions.add(canonical)
            self._accountListeners.tell(  # NOTIFY
                [accountevents.MailboxesChange(accountevents.SUBSCRIBED, canonical)])

    @_deferred
    def unsubscribe(self, name):
        if isValidName(name) and checkName(name)[0] in self._subscriptions:
            canonical = checkName(name)[0]
            self._subscriptions.discard(canonical)
            self._accountListeners.tell(  # NOTIFY
                [accountevents.MailboxesChange(accountevents.UNSUBSCRIBED, canonical)])

    # Account listeners (NOTIFY, RFC 5465)

    def addAccountListener(self, listener):
        self._accountListeners.add(listener)

    def removeAccountListener(self, listener):
        self._accountListeners.remove(listener)

    def specialUse(self):
        return dict(self._specialUse)

    @_deferred
    def setSpecialUse(self, name, attributes):
        canonical, _ = self._existing(name)
        self._specialUse.pop(canonical, None)
        if attributes:
            self._specialUse[canonical] = tuple(sorted(set(attributes)))

    @_deferred
    def createDefaultMailboxes(self, defaults):
        if self._defaultsDone:
            return []
        self._defaultsDone = True
        created = []
        if self.listMailboxes() == ["INBOX"] and not self._subscriptions:
            for name, _ in defaults:
                canonical, _ = checkName(name)
                if canonical not in self._mailboxes:
                    self._create(canonical)
                    created.append(name)
                self._subscriptions.add(canonical)
        for name, attribute in defaults:
            canonical, _ = checkName(name)
            if canonical in self._mailboxes:
                uses = self._specialUse.get(canonical, ())
                self._specialUse[canonical] = tuple(sorted(set(uses) | {attribute}))
        return created

    # The POP3 maildrop

    @_deferred
    def lockMaildrop(self):
        if self._maildropLock is not None:
            raise MailboxInUse("maildrop of %s is in use by another POP3 session"
                               % (self.address,))
        self._maildropLock = _MaildropLock(self)
        return self._maildropLock


@implementer(IMailStore)
class MemoryStore:
    """
    Every account, in memory.

    @param clock: an C{IReactorTime} (the reactor) whose C{seconds()} gives
        INTERNALDATEs and UIDVALIDITYs; L{None} for the system clock.
    """

    def __init__(self, clock=None):
        self._now = clock.seconds if clock is not None else time.time
        self._accounts = {}
        self._keys = 0

    def now(self):
        """The current time (POSIX seconds) by the store's clock."""
        return self._now()

    def newKey(self):
        """A new message's L{IMessageInfo.key}, unique in the store."""
        self._keys += 1
        return "memory-%d" % (self._keys,)

    def account(self, address):
        address = address.lower()
        local, at, domain = address.rpartition("@")
        if not (at and local and domain) or any(c < "\x20" or c == "\x7f" for c in address):
            raise InvalidMailboxName("not an address: %r" % (address,))
        if address not in self._accounts:
            self._accounts[address] = MemoryAccount(self, address)
        return self._accounts[address]

    def deliver(self, addresses, source, together=None):
        """Every address is checked and the source read (once) before the
        first copy is stored, so a failure leaves no copy anywhere; with
        C{together}, the copies are stored only once its Deferred succeeds."""
        try:
            inboxes = [self.account(address)._mailboxes["INBOX"] for address in addresses]
            if not isinstance(source, bytes):
                source.seek(0)
            data = _readCRLF(source)
        except Exception:
            return defer.fail()
        d = defer.maybeDeferred(together) if together is not None else defer.succeed(None)

        def store(_):
            for inbox in inboxes:
                inbox._add([(data, frozenset(), None)])
        return d.addCallback(store)


@provider(IStoreBackend)
class MemoryBackend:
    """
    C{[storage] backend = "memory"}: everything in the server's memory, lost
    when it stops (for test suites and demonstrations; nothing to configure).
    """

    name = "memory"

    @staticmethod
    def open(config, reactor, watcher):
        return MemoryStore(clock=reactor)
