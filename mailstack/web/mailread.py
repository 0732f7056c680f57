"""
Reading an account's mail for the console and the API, through the store
contract only (L{mailstack.storage.interfaces}), without changing it: every
mailbox is synced with C{claimRecent=False} (IMAP's \\Recent stays for the
next IMAP session) and nothing sets a flag (reading a message here does not
make it \\Seen).

Message files are opened in the reactor thread (the store's contract) and
read in the reactor's thread pool (C{runInThread}), so a large message or a
long list never stalls the protocols.
"""

import dataclasses

from twisted.internet import defer

from mailstack.storage.interfaces import NoSuchMessage
from mailstack.web import messages

__all__ = ["FolderInfo", "MessageRow", "folders", "openFolder", "messageRows", "readMessage",
           "MessageTooLarge", "HEADER_LIMIT", "MESSAGE_LIMIT"]

# Octets read of each message for a list (its header section, usually far less).
HEADER_LIMIT = 64 * 1024
# Octets a whole message may have to be read for display.
MESSAGE_LIMIT = 32 * 1024 * 1024


class MessageTooLarge(Exception):
    """The message is larger than L{MESSAGE_LIMIT}: not read for display."""


@dataclasses.dataclass(frozen=True)
class FolderInfo:
    """One mailbox of an account: its name and its counts as of a sync."""

    name: str
    messages: int
    unseen: int
    size: int
    specialUse: tuple


@dataclasses.dataclass(frozen=True)
class MessageRow:
    """One message of a list: the store's info and its header summary."""

    uid: int
    size: int
    flags: tuple
    internalDate: float
    summary: messages.Summary


def openFolder(store, address, name):
    """
    The account's mailbox C{name}, synced without claiming \\Recent.

    @return: a Deferred firing with the L{IMailboxStore} (failing with the
        store's L{NoSuchMailbox} or L{InvalidMailboxName}).
    """
    account = store.account(address)
    d = account.openMailbox(name)

    def synced(mailbox):
        return mailbox.sync(claimRecent=False).addCallback(lambda _: mailbox)
    return d.addCallback(synced)


@defer.inlineCallbacks
def folders(store, address):
    """
    Every mailbox of the account C{address} with its counts.

    @return: a Deferred firing with a list of L{FolderInfo}, in the store's
        order (INBOX first).
    """
    account = store.account(address)
    uses = account.specialUse()
    names = sorted(account.listMailboxes(), key=lambda n: (n.upper() != "INBOX", n))
    result = []
    for name in names:
        mailbox = yield openFolder(store, address, name)
        infos = mailbox.messages()
        result.append(FolderInfo(
            name=name, messages=len(infos),
            unseen=sum(1 for i in infos if "\\Seen" not in i.flags),
            size=sum(i.size for i in infos), specialUse=tuple(uses.get(name, ()))))
    return result


def _readPrefix(files, limit):
    # In a worker thread: the first octets of each open message, then close it.
    heads = []
    for f in files:
        try:
            heads.append(messages.splitHeader(f.read(limit)))
        finally:
            f.close()
    return heads


def messageRows(mailbox, runInThread, offset=0, limit=100):
    """
    A page of the mailbox's messages, newest (highest UID) first.

    @param runInThread: C{f, *args -> Deferred} (the web context's).
    @return: a Deferred firing with C{(rows, total)}: a list of
        L{MessageRow} and how many messages the mailbox holds.
    """
    infos = list(reversed(mailbox.messages()))
    page = infos[offset:offset + limit]
    files, kept = [], []
    for info in page:
        try:
            files.append(mailbox.openMessage(info.uid))
        except NoSuchMessage:
            continue  # expunged since the sync
        kept.append(info)
    d = runInThread(_readPrefix, files, HEADER_LIMIT)

    def rows(heads):
        return [MessageRow(uid=info.uid, size=info.size, flags=tuple(sorted(info.flags)),
                           internalDate=info.internalDate,
                           summary=messages.summarize(messages.parseHeaders(head)))
                for info, head in zip(kept, heads)], len(infos)
    return d.addCallback(rows)


def _readAll(f, limit):
    try:
        return f.read(limit)
    finally:
        f.close()


def readMessage(mailbox, uid, runInThread):
    """
    The message C{uid}'s octets, read in a thread.

    @return: a Deferred firing with C{(info, source)}; failing with
        L{NoSuchMessage}, or L{MessageTooLarge} above L{MESSAGE_LIMIT}.
    """
    try:
        info = mailbox.messageInfo(uid)
        if info.size > MESSAGE_LIMIT:
            raise MessageTooLarge("%d octets" % (info.size,))
        f = mailbox.openMessage(uid)
    except Exception:
        return defer.fail()
    return runInThread(_readAll, f, MESSAGE_LIMIT + 1).addCallback(lambda source: (info, source))
