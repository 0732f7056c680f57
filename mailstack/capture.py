"""
The lab's capture store: mail the server accepts but never sends on (C{[lab]
capture}: submitted mail for other domains; magic recipients that accept),
kept durably in the server's own store so the console and the API can show
it, as Mailpit does.

Captured mail lives in one reserved account, L{CAPTURE_ACCOUNT}. Its domain
(C{_capture.invalid}) is no host name: no login name normalises to it and no
user can be created with it, so nobody reads it over IMAP or POP3. Its
folders are per envelope sender (L{senderFolder}), so a student's own mail
is one folder. A message is stored as the relay would have sent it (trace
header, then the message), preceded by its envelope in C{X-Mailstack-Capture:}
lines (JSON, cut into short lines) that L{CaptureStore} strips when reading.

Everything goes through the asynchronous store contract
(L{mailstack.storage.interfaces}); message files are read in the reactor's
thread pool.
"""

import dataclasses
import email.parser
import email.policy
import hashlib
import io
import json

from twisted.internet import defer, threads
from twisted.logger import Logger

from mailstack.storage.interfaces import (
    InvalidMailboxName, MailboxExists, NoSuchMailbox, NoSuchMessage)

log = Logger()

CAPTURE_ACCOUNT = "capture@_capture.invalid"

ENVELOPE_PREFIX = b"X-Mailstack-Capture: "
# JSON characters per envelope line (lines stay well under 998 octets).
ENVELOPE_CHUNK = 900
# How much of a message a listing reads for its headers.
HEAD_BYTES = 64 * 1024
# Messages a listing opens at once (each an open file until read).
READ_BATCH = 100

NULL_SENDER_FOLDER = "=null"
HASHED_FOLDER_PREFIX = "=sha256-"
_KEEP = frozenset("abcdefghijklmnopqrstuvwxyz0123456789@_+-")
_MAX_FOLDER = 200


class NoSuchCapture(LookupError):
    """No captured message has that id (never captured, or deleted)."""


def senderFolder(sender):
    """
    The capture folder of an envelope sender: the lower-cased address with
    every character but C{a-z 0-9 @ _ + -} written C{=XX} (its UTF-8 octets
    in hex), since C{.} separates Maildir++ levels; C{=null} for the null
    sender; a hash for an address too long to be a folder name. Distinct
    senders get distinct folders, and each name is URL-safe.
    """
    if not sender:
        return NULL_SENDER_FOLDER
    sender = sender.lower()
    name = "".join(c if c in _KEEP else "".join("=%02X" % (b,) for b in c.encode("utf-8"))
                   for c in sender)
    if len(name) > _MAX_FOLDER:
        return HASHED_FOLDER_PREFIX + hashlib.sha256(sender.encode("utf-8")).hexdigest()[:40]
    return name


def folderSender(name):
    """
    The sender of a folder L{senderFolder} made (C{""}: the null sender), or
    L{None} for a hashed name or one it cannot have made.
    """
    if name == NULL_SENDER_FOLDER:
        return ""
    if name.startswith(HASHED_FOLDER_PREFIX):
        return None
    out, i = bytearray(), 0
    while i < len(name):
        c = name[i]
        if c == "=":
            try:
                out.append(int(name[i + 1:i + 3], 16))
            except ValueError:
                return None
            i += 3
        elif c in _KEEP:
            out += c.encode("ascii")
            i += 1
        else:
            return None
    try:
        sender = out.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return sender if senderFolder(sender) == name else None


@dataclasses.dataclass(frozen=True)
class CaptureEnvelope:
    """
    The SMTP facts of one captured message.

    @ivar sender: the envelope sender (MAIL FROM; C{""} for the null sender).
    @ivar recipients: the captured recipients (RCPT TO), in order.
    @ivar time: POSIX time it was captured (L{None}: the store's clock fills it in).
    @ivar tls: the TLS connection it came over (C{"TLSv1.3 with cipher ..."}),
        C{""} for TLS not described, L{None} for plaintext.
    @ivar authenticated: the authenticated user, or L{None}.
    @ivar client: the client's IP address.
    @ivar helo: the name the client gave in EHLO/HELO.
    @ivar queueID: the id of the SMTP transaction (in the 250 reply and the
        C{Received:} header).
    """
    sender: str
    recipients: tuple
    time: float | None = None
    tls: str | None = None
    authenticated: str | None = None
    client: str | None = None
    helo: str | None = None
    queueID: str | None = None

    def toJSON(self):
        return {"sender": self.sender, "recipients": list(self.recipients),
                "time": self.time, "tls": self.tls, "authenticated": self.authenticated,
                "client": self.client, "helo": self.helo, "queueID": self.queueID}

    @classmethod
    def fromJSON(cls, value):
        def text(key):
            item = value.get(key)
            return item if isinstance(item, str) else None
        time = value.get("time")
        recipients = value.get("recipients")
        return cls(
            sender=text("sender") or "",
            recipients=tuple(r for r in recipients if isinstance(r, str))
            if isinstance(recipients, list) else (),
            time=float(time) if isinstance(time, (int, float)) else None,
            tls=text("tls"), authenticated=text("authenticated"), client=text("client"),
            helo=text("helo"), queueID=text("queueID"))


def envelopeLines(envelope):
    """The C{X-Mailstack-Capture:} lines that precede a captured message."""
    data = json.dumps(envelope.toJSON(), ensure_ascii=True, separators=(",", ":"))
    return b"".join(ENVELOPE_PREFIX + data[i:i + ENVELOPE_CHUNK].encode("ascii") + b"\r\n"
                    for i in range(0, len(data), ENVELOPE_CHUNK))


@dataclasses.dataclass(frozen=True)
class CapturedMessage:
    """
    One captured message.

    @ivar id: its id in the capture store (URL-safe: C{<folder>.<uid>}).
    @ivar envelope: its L{CaptureEnvelope}.
    @ivar size: octets of the message as captured (trace header included).
    @ivar headers: C{((name, value), ...)} of its header section, decoded
        (RFC 2047), in order.
    @ivar raw: the whole message (from L{CaptureStore.get}), or L{None} in a
        listing.
    """
    id: str
    envelope: CaptureEnvelope
    size: int
    headers: tuple
    raw: bytes | None = None

    def header(self, name, default=None):
        """The first value of the header C{name} (any case), or C{default}."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    @property
    def subject(self):
        return self.header("Subject", "")


class _PrefixedReader(io.RawIOBase):
    """C{prefix} then the binary file C{source}, read once as one stream (rewindable)."""

    def __init__(self, prefix, source):
        self._prefix = prefix
        self._source = io.BytesIO(source) if isinstance(source, bytes) else source
        self._position = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        if (offset, whence) != (0, io.SEEK_SET):
            raise io.UnsupportedOperation("only rewinding")
        self._source.seek(0)
        self._position = 0
        return 0

    def readinto(self, buffer):
        if self._position < len(self._prefix):
            data = self._prefix[self._position:self._position + len(buffer)]
            self._position += len(data)
        else:
            data = self._source.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _parseHeaders(head):
    """C{((name, value), ...)} of a header section, decoded as well as it can be."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    message = parser.parsebytes(head)
    headers = []
    for name, value in message.raw_items():
        try:
            value = str(email.policy.default.header_factory(name, value))
        except Exception:
            value = str(value)
        headers.append((name, " ".join(value.split())))
    return tuple(headers)


def _readCaptured(f, whole):
    """
    Read a stored capture (in a thread): its envelope lines, then the whole
    message or only its head. Closes C{f}.

    @return: C{(envelope JSON or None, prefix octets, data)}.
    """
    with f:
        chunks, prefixSize = [], 0
        while True:
            line = f.readline()
            if not line.startswith(ENVELOPE_PREFIX):
                break
            prefixSize += len(line)
            chunks.append(line[len(ENVELOPE_PREFIX):].rstrip(b"\r\n"))
        data = line + (f.read() if whole else f.read(max(0, HEAD_BYTES - len(line))))
    envelope = None
    if chunks:
        try:
            envelope = json.loads(b"".join(chunks).decode("ascii"))
        except ValueError:
            envelope = None
    return envelope if isinstance(envelope, dict) else None, prefixSize, data


def _headSection(data):
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = data.find(separator)
        if end != -1:
            return data[:end + len(separator)]
    return data


class CaptureStore:
    """
    Captured mail, per sender, in the reserved account of an
    L{mailstack.storage.interfaces.IMailStore}. Every method returns a
    Deferred; listings are newest first.

    @param store: the server's L{IMailStore}.
    @param reactor: the reactor (its clock, and its thread pool for reading
        message files).
    @param address: the reserved account.
    """

    def __init__(self, store, reactor, address=CAPTURE_ACCOUNT):
        self.store = store
        self.reactor = reactor
        self.address = address

    @property
    def account(self):
        return self.store.account(self.address)

    def _inThread(self, function, *args):
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         function, *args)

    # -- writing -------------------------------------------------------------

    def capture(self, envelope, source):
        """
        Keep one message durably in its sender's folder.

        @param envelope: its L{CaptureEnvelope} (a C{time} of L{None} is now).
        @param source: the message as it would have been sent (bytes, or a
            binary file read from its start; left alone until the Deferred fires).
        @return: a Deferred firing with the message's id once it is durable
            (L{None}: durable, but its UID comes with a later sync); fails with
            the store's L{mailstack.storage.interfaces.StoreError} when nothing
            was kept.
        """
        if envelope.time is None:
            envelope = dataclasses.replace(envelope, time=self.reactor.seconds())
        name = senderFolder(envelope.sender)
        reader = _PrefixedReader(envelopeLines(envelope), source)

        def append(box):
            reader.seek(0)
            return box.append(reader, internalDate=envelope.time)

        def again(failure):
            # the folder was cleared meanwhile: make it again, once
            failure.trap(NoSuchMailbox)
            return self._folder(name, create=True).addCallback(append)

        d = self._folder(name, create=True).addCallback(append).addErrback(again)
        d.addCallback(lambda uid: None if uid is None else "%s.%d" % (name, uid))
        return d

    def _folder(self, name, create=False):
        """A Deferred firing with the (synced) mailbox C{name}, made if C{create}."""
        account = self.account
        if create and not account.hasMailbox(name):
            d = account.createMailbox(name)
            d.addErrback(lambda failure: failure.trap(MailboxExists))
            d.addCallback(lambda _: account.openMailbox(name))
        else:
            d = account.openMailbox(name)
        d.addCallback(lambda box: box.sync(claimRecent=False).addCallback(lambda _: box))
        return d

    def delete(self, messageID):
        """
        Remove one captured message. @return: a Deferred firing with C{True},
        or C{False} if there was no such message.
        """
        try:
            name, uid = self._parseID(messageID)
        except NoSuchCapture:
            return defer.succeed(False)
        def missing(failure):
            failure.trap(NoSuchMailbox, InvalidMailboxName)
            return False
        d = self._folder(name)
        d.addCallback(lambda box: box.expunge([uid]))
        return d.addCallbacks(lambda removed: uid in removed, missing)

    @defer.inlineCallbacks
    def clear(self, sender=None):
        """
        Remove every captured message, or one sender's.

        @return: a Deferred firing with the number of messages removed.
        """
        names = self._folderNames() if sender is None else [senderFolder(sender)]
        removed = 0
        for name in names:
            try:
                box = yield self._folder(name)
                count = len(box.messages())
                yield self.account.deleteMailbox(name)
            except NoSuchMailbox:
                continue
            removed += count
        if removed:
            log.info("capture: cleared {count} messages{which}", count=removed,
                     which="" if sender is None else " from <%s>" % (sender,))
        return removed

    # -- reading -------------------------------------------------------------

    def _folderNames(self):
        return [name for name in self.account.listMailboxes() if name != "INBOX"]

    @defer.inlineCallbacks
    def senders(self):
        """
        @return: a Deferred firing with C{[(sender, count)]}, sorted by sender,
            for every sender with captured mail.
        """
        found = {}
        for name in self._folderNames():
            try:
                box = yield self._folder(name)
            except NoSuchMailbox:
                continue
            infos = box.messages()
            if not infos:
                continue
            sender = folderSender(name)
            if sender is None:
                [first] = yield self._read(name, box, infos[:1], whole=False)
                sender = first.envelope.sender
            found[sender] = found.get(sender, 0) + len(infos)
        return sorted(found.items())

    @defer.inlineCallbacks
    def list(self, sender=None):
        """
        @param sender: only this sender's messages (any case), or L{None} for all.
        @return: a Deferred firing with a list of L{CapturedMessage} (without
            C{raw}), newest first.
        """
        names = self._folderNames() if sender is None else [senderFolder(sender)]
        messages = []
        for name in names:
            try:
                box = yield self._folder(name)
            except NoSuchMailbox:
                continue
            infos = box.messages()
            for start in range(0, len(infos), READ_BATCH):
                batch = yield self._read(name, box, infos[start:start + READ_BATCH],
                                         whole=False)
                messages.extend(batch)
        messages.sort(key=lambda m: (m.envelope.time or 0, m.id), reverse=True)
        return messages

    def get(self, messageID):
        """
        @return: a Deferred firing with the L{CapturedMessage}, C{raw} included;
            fails with L{NoSuchCapture}.
        """
        try:
            name, uid = self._parseID(messageID)
        except NoSuchCapture:
            return defer.fail()

        def read(box):
            try:
                info = box.messageInfo(uid)
            except NoSuchMessage:
                raise NoSuchCapture(messageID)
            return self._read(name, box, [info], whole=True)

        def missing(failure):
            failure.trap(NoSuchMailbox, InvalidMailboxName)
            raise NoSuchCapture(messageID)
        d = self._folder(name).addErrback(missing).addCallback(read)
        return d.addCallback(lambda found: found[0])

    def _read(self, name, box, infos, whole):
        """Read C{infos} of C{box} in one thread job: a Deferred list of L{CapturedMessage}."""
        files = []
        for info in infos:
            try:
                files.append((info, box.openMessage(info.uid)))
            except NoSuchMessage:
                pass  # expunged since the sync: left out

        def readAll():
            try:
                return [(info, _readCaptured(f, whole)) for info, f in files]
            finally:
                for _, f in files:
                    f.close()

        def build(results):
            messages = []
            for info, (value, prefixSize, data) in results:
                if value is None:
                    envelope = CaptureEnvelope(sender=folderSender(name) or "",
                                               recipients=(), time=info.internalDate)
                else:
                    envelope = CaptureEnvelope.fromJSON(value)
                messages.append(CapturedMessage(
                    id="%s.%d" % (name, info.uid), envelope=envelope,
                    size=info.size - prefixSize,
                    headers=_parseHeaders(_headSection(data)),
                    raw=data if whole else None))
            return messages
        return self._inThread(readAll).addCallback(build)

    @staticmethod
    def _parseID(messageID):
        name, dot, uid = str(messageID).rpartition(".")
        if not dot or not name or not uid.isdigit() or int(uid) < 1 or "/" in name:
            raise NoSuchCapture(messageID)
        return name, int(uid)


def captureStoreFor(config, store, reactor):
    """
    The server's capture store: a L{CaptureStore} over C{store} when the lab
    keeps mail (C{[lab] capture = true}, or magic recipients, whose accepted
    mail is kept there), else L{None}.
    """
    if config.lab.capture or config.lab.magic:
        return CaptureStore(store, reactor)
    return None
