"""
APPEND with MULTIAPPEND (RFC 3502), CATENATE (RFC 4469) and URL-PARTIAL
(RFC 5550): one or more messages, each a literal or built from TEXT literals
and URLs of messages (or their sections, or ranges of them) in this account.

All or nothing: the messages go to the store in one
L{IMailboxStore.appendMany} (one L{IMailboxStore.append} for a single
message), so either every one is stored, durably, under consecutive UIDs,
or none is. A CATENATE message is assembled in a worker thread (the
referenced messages are parsed with L{mailstack.imap.fetch}'s section logic
and copied into a spool there), never in the reactor thread.

What Dovecot 2.3.19 answers is the guide: TRYCREATE before any URL is
looked at, C{NO [BADURL url]} for a URL that names nothing readable here,
C{NO [TOOBIG]} for a message over the listener's APPENDLIMIT (each message on
its own; a MULTIAPPEND's total is bounded only by the disk, as in Dovecot),
and C{NO} for an empty message.
"""

from twisted.internet import defer, threads

from mailstack.imap import fetch
from mailstack.imap.grammar.appendspec import BadURL, parseURL
from mailstack.imap.response import Refusal, formatSequenceSet
from mailstack.imap.spool import LiteralSpool
from mailstack.storage.interfaces import NoSuchMailbox, NoSuchMessage

COPY_CHUNK = 65536


class TooBig(Exception):
    """A catenated message grew past the listener's limit."""


def runInThread(clock, f, *args):
    """
    C{f(*args)} in the reactor's thread pool; at once where C{clock} has none
    (a test's L{twisted.internet.task.Clock}), as the store does.
    """
    getPool = getattr(clock, "getThreadPool", None)
    if getPool is None:
        return defer.maybeDeferred(f, *args)
    return threads.deferToThreadPool(clock, getPool(), f, *args)


def sizeOf(source):
    """The octets of a literal (bytes or a spooled file)."""
    if isinstance(source, bytes):
        return len(source)
    size = source.seek(0, 2)
    source.seek(0)
    return size


def codeText(url):
    """
    A URL as the BADURL code may carry it (RFC 4469: 7-bit, no CR, LF or
    C{]}): other octets percent-encoded, so a URL sent as a literal cannot
    end the response line or the code early.
    """
    return b"".join(bytes((c,)) if 0x20 < c < 0x7f and c != 0x5d else b"%%%02X" % c
                    for c in url) or b"%20"


class Append:
    """
    One APPEND command's work for a session (an L{IMAPServer}): only its
    public attributes are used (C{account}, C{view}, C{settings}, C{clock},
    C{extensionEnabled}).

    @param name: the target mailbox, decoded.
    @param messages: L{AppendMessage}s, flags already checked.
    """

    def __init__(self, session, name, messages):
        self.session = session
        self.name = name
        self.messages = messages
        self.limit = session.settings.maxLiteralSize
        self.spool = None  # the file CATENATE messages are made in (one per command)
        # Files this command opened or made, the client's spooled literals
        # included: closed at its end.
        self.opened = [source for message in messages
                       for source in [message.message] + [part.value for part in message.catenate
                                                          if part.kind == "TEXT"]
                       if source is not None and not isinstance(source, bytes)]

    def run(self):
        """@return: a Deferred firing with the tagged reply C{(status, code, text)}."""
        d = self._run()
        d.addBoth(self._closeAll)
        return d

    def _closeAll(self, result):
        for f in self.opened:
            f.close()
        return result

    @defer.inlineCallbacks
    def _run(self):
        for message in self.messages:
            if message.message is not None and sizeOf(message.message) == 0:
                return ("NO", None, "Cannot append an empty message")
        target = yield self.session.account.openMailbox(self.name)
        sources = []
        for message in self.messages:
            if message.message is not None:
                sources.append(message.message)
            else:
                sources.append((yield self._catenate(message.catenate)))
        for source in sources:
            if sizeOf(source) == 0:
                return ("NO", None, "Cannot append an empty message")
        items = [(source, set(message.flags), message.date)
                 for source, message in zip(sources, self.messages)]
        if len(items) == 1:
            uid = yield target.append(*items[0])
            uids = None if uid is None else [uid]
        else:
            uids = yield target.appendMany(items)
        code = None
        # None: durable, but the UIDs come with the next sync. RFC 4315:
        # APPENDUID is a SHOULD; the client finds the messages by other means.
        if uids and self.session.extensionEnabled("UIDPLUS"):
            code = b"APPENDUID %d %s" % (target.uidValidity, formatSequenceSet(uids))
        return ("OK", code, "APPEND completed")

    # -- CATENATE --------------------------------------------------------------

    @defer.inlineCallbacks
    def _catenate(self, parts):
        """
        The message CATENATE's C{parts} make, as a file: every URL is
        resolved first (in the reactor thread: names and UIDs only), then the
        parts are copied in order, each in a worker thread, into a piece of
        the command's one L{LiteralSpool} (whatever the number of CATENATE
        messages, one file and no memory held), each URL's message open only
        while its part is copied.
        """
        resolved = []
        for part in parts:
            resolved.append((yield self._resolve(part.value)) if part.kind == "URL" else None)
        if self.spool is None:
            self.spool = LiteralSpool()
        target = self.spool.literal()
        self.opened.append(target)
        clock = self.session.clock
        try:
            for part, where in zip(parts, resolved):
                if where is None:
                    yield runInThread(clock, self._copy, _textChunks, (part.value,), target)
                    continue
                mailbox, info, url, wire = where
                try:
                    f = mailbox.openMessage(url.uid)  # expunged since it was resolved?
                except NoSuchMessage:
                    raise Refusal("Message not found", b"BADURL " + codeText(wire))
                try:
                    yield runInThread(clock, self._copy, _urlChunks, (f, info.size, url), target)
                finally:
                    f.close()
        except TooBig:
            raise Refusal("Message too large (limit %d octets)" % (self.limit,), "TOOBIG")
        target.seek(0)
        return target

    @defer.inlineCallbacks
    def _resolve(self, wire):
        """
        The message a URL names: C{(mailbox, info, url, wire)}, C{wire} the URL as sent.

        @raise Refusal: C{NO [BADURL url]} when it names nothing readable.
        """
        view = self.session.view
        selected = view.store.name if view is not None else None

        def bad(text):
            return Refusal(text, b"BADURL " + codeText(wire))
        try:
            url = parseURL(wire, selected)
        except BadURL as e:
            raise bad(str(e))
        try:
            mailbox = yield self.session.account.openMailbox(url.mailbox)
        except NoSuchMailbox:
            raise bad("Mailbox doesn't exist: %s" % (url.mailbox,))
        if url.uidValidity is not None and url.uidValidity != mailbox.uidValidity:
            raise bad("Invalid UIDVALIDITY")
        try:
            info = mailbox.messageInfo(url.uid)  # one look-up, not a pass over the mailbox
        except NoSuchMessage:
            # Not known since the mailbox's last sync: maybe delivered since.
            yield mailbox.sync(claimRecent=False)
            try:
                info = mailbox.messageInfo(url.uid)
            except NoSuchMessage:
                raise bad("Message not found")
        return (mailbox, info, url, wire)

    def _copy(self, chunks, args, target):
        """
        Append the octets C{chunks(*args)} gives to C{target}; raise
        L{TooBig} past the limit. Runs in a worker thread.
        """
        for chunk in chunks(*args):
            if target.size + len(chunk) > self.limit:
                raise TooBig()
            target.write(chunk)


def _textChunks(text):
    """A TEXT part's octets (a literal: bytes or a spooled file), in pieces."""
    if isinstance(text, bytes):
        return [text]
    return _chunks(text, 0, sizeOf(text))


def _chunks(f, start, length):
    """C{length} octets of file C{f} from C{start}, in pieces."""
    f.seek(start)
    while length > 0:
        chunk = f.read(min(length, COPY_CHUNK))
        if not chunk:
            return
        length -= len(chunk)
        yield chunk


def _urlChunks(f, size, url):
    """The octets a URL names in its message file C{f}, as FETCH BODY[section] gives them."""
    section = url.section
    if section is None or not (section.part or section.text):
        where = (0, size)
    else:
        f.seek(0)
        root = fetch.parseStructure(f) if section.part else fetch.parseHeaderOnly(f, size)
        where = fetch.locate(root, section)
    if url.partial is not None:
        offset, length = url.partial
        if isinstance(where, bytes):
            where = where[offset:] if length is None else where[offset:offset + length]
        else:
            start, end = where
            start = min(start + offset, end)
            where = (start, end if length is None else min(start + length, end))
    if isinstance(where, bytes):
        return [where]
    start, end = where
    return _chunks(f, start, end - start)

