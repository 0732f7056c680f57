"""
The console's mail viewer and live transcripts (mounted by
L{mailstack.web.app.buildRoot} through L{viewerResources}):

  - C{/mail/}: an account's folders with their counts; C{/mail/folder}: a
    folder's messages; C{/mail/message}: one message (headers, text, HTML in
    a sandboxed frame, attachments, raw source); C{/mail/part},
    C{/mail/download}, C{/mail/raw}: an HTML part, an attachment, the source;
    C{/mail/send}: a test message from the signed-in user to local accounts.
  - C{/transcripts/}: the user's protocol sessions and a live view of every
    new line; C{/transcripts/session}: one session, live;
    C{/transcripts/events}: the server-sent events both pages follow.

Everyone sees only her own account and sessions; an admin anyone's
(C{?account=} on the mail pages). Reading changes nothing in the mailbox
(L{mailstack.web.mailread}). HTML mail is never put in a console page: it is
served by C{/mail/part} with L{messages.HTML_PART_HEADERS} into an
C{<iframe sandbox>} (an opaque origin: no scripts, no access to the
console, no remote loads), see docs/console.md.
"""

import email.message
import email.policy
import email.utils
import re
import socket
from urllib.parse import urlencode

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server
from zope.interface import implementer

from mailstack.storage.interfaces import InvalidMailboxName, NoSuchMailbox, NoSuchMessage, StoreError
from mailstack.transcripthub import ITranscriptWatcher
from mailstack.web import mailread, messages
from mailstack.web.events import EventStream, lastEventID
from mailstack.web.page import Answer, Page, formValue, redirectTo, setSecurityHeaders

log = Logger()

__all__ = ["viewerResources", "CONSOLE_LINKS", "NotFound", "link", "messageView", "htmlPartBody",
           "downloadBody", "rawBody", "PAGE_SIZE"]

CONSOLE_LINKS = [("Mail", "/mail/", False), ("Transcripts", "/transcripts/", False),
                 ("Send a test message", "/mail/send", False)]

PAGE_SIZE = 100


def viewerResources(context, auth):
    """C{{path tuple: resource}} of the mail viewer and the transcript pages."""
    mail = Section("/mail/")
    for name, page in ((b"", FoldersPage), (b"folder", FolderPage),
                       (b"message", MessagePage), (b"part", HTMLPartPage),
                       (b"download", DownloadPage), (b"raw", RawPage),
                       (b"send", SendPage)):
        mail.putChild(name, page(context, auth))
    transcripts = Section("/transcripts/")
    for name, page in ((b"", TranscriptsPage), (b"session", SessionPage),
                       (b"events", TranscriptEvents)):
        transcripts.putChild(name, page(context, auth))
    return {(b"mail",): mail, (b"transcripts",): transcripts}


class Section(resource.Resource):
    """A folder of pages; its bare name (C{/mail}) redirects to C{/mail/}."""

    def __init__(self, home):
        resource.Resource.__init__(self)
        self.home = home

    def render(self, request):
        setSecurityHeaders(request)
        return redirectTo(request, self.home)

    def getChild(self, path, request):
        return resource.NoResource()


class NotFound(Exception):
    """What the page names is not there (or not the viewer's): answered 404."""


def link(path, **arguments):
    """C{path} with C{arguments} as its query (the ones that are not None)."""
    query = urlencode([(k, v) for k, v in arguments.items() if v is not None])
    return path + ("?" + query if query else "")


class MailPage(Page):
    """
    A page about one account's mail: C{account} (default: the viewer's
    own) that the viewer must be allowed to see. Subclasses answer with
    C{show(address, request, principal)}.
    """

    def get(self, request, principal):
        d = self.account(request, principal)
        d.addCallback(self.show, request, principal)
        d.addErrback(self.missing, request)
        return d

    def account(self, request, principal):
        """
        @return: a Deferred firing with the address the page is about;
            failing with L{NotFound} for one the viewer may not see (she is
            not told whether it exists) or that is no account.
        """
        address = formValue(request, "account").strip().lower() or principal.address
        if address == principal.address:
            return defer.succeed(address)
        if not principal.maySee(address):
            return defer.fail(NotFound("You can only see your own mail."))
        d = defer.maybeDeferred(self.context.directory.lookup, address)

        def found(user):
            if user is None:
                raise NotFound("There is no account %s." % (address,))
            return user.address
        return d.addCallback(found)

    def missing(self, failure, request):
        failure.trap(NotFound, NoSuchMailbox, NoSuchMessage, InvalidMailboxName)
        text = (failure.getErrorMessage() if failure.check(NotFound)
                else "No such folder or message (it may have been deleted).")
        setSecurityHeaders(request)
        return Answer("error.html", 404, message=text)

    def mailbox(self, address, request):
        """The folder the request names (C{mailbox}, default INBOX), synced."""
        return mailread.openFolder(self.context.store, address,
                                   formValue(request, "mailbox") or "INBOX")

    def uid(self, request):
        try:
            return int(formValue(request, "uid"))
        except ValueError:
            raise NotFound("No such message.")


class FoldersPage(MailPage):
    """C{/mail/}: the account's folders with messages, unread and size."""

    title = "Mail"

    def show(self, address, request, principal):
        d = mailread.folders(self.context.store, address)

        def shown(folders):
            return Answer("mail_folders.html", address=address, folders=folders, link=link,
                          account=None if address == principal.address else address)
        return d.addCallback(shown)


class FolderPage(MailPage):
    """C{/mail/folder}: a folder's messages, newest first, a page at a time."""

    title = "Folder"

    def show(self, address, request, principal):
        try:
            offset = max(0, int(formValue(request, "offset", "0")))
        except ValueError:
            offset = 0
        account = None if address == principal.address else address
        d = self.mailbox(address, request)

        def opened(mailbox):
            d = mailread.messageRows(mailbox, self.context.runInThread, offset, PAGE_SIZE)
            return d.addCallback(lambda result: Answer(
                "mail_folder.html", title=mailbox.name, address=address, account=account,
                mailbox=mailbox.name, rows=result[0], total=result[1], offset=offset,
                pageSize=PAGE_SIZE, link=link))
        return d.addCallback(opened)


class MessagePage(MailPage):
    """C{/mail/message}: one message taken apart (L{messages})."""

    title = "Message"

    def show(self, address, request, principal):
        uid = self.uid(request)
        account = None if address == principal.address else address
        d = self.mailbox(address, request)
        d.addCallback(lambda mailbox: mailread.readMessage(
            mailbox, uid, self.context.runInThread).addCallback(
                lambda result: (mailbox, result)))

        def read(found):
            mailbox, (info, source) = found
            view = messageView(source)
            where = dict(account=account, mailbox=mailbox.name, uid=uid)
            return Answer("mail_message.html", title=view["summary"].subject or "(no subject)",
                          address=address, account=account, mailbox=mailbox.name, uid=uid,
                          info=info, flags=sorted(info.flags), base="/mail/", where=where,
                          link=link, **view)
        d.addCallback(read)
        d.addErrback(self.tooLarge)
        return d

    def tooLarge(self, failure):
        failure.trap(mailread.MessageTooLarge)
        return Answer("error.html", 413, message="This message is too large to show here "
                                                 "(%s); read it with a mail client."
                      % (failure.getErrorMessage(),))


class _SourcePage(MailPage):
    """
    A page answering with the message's own octets (not a console page):
    subclasses make the answer with C{answer(request, uid, source)}.
    """

    def show(self, address, request, principal):
        uid = self.uid(request)
        d = self.mailbox(address, request)
        d.addCallback(lambda mailbox: mailread.readMessage(
            mailbox, uid, self.context.runInThread))
        d.addCallback(lambda result: self.answer(request, uid, result[1]))
        return d


def _setHeaders(request, headers):
    # Replaces the console page's headers (its CSP, X-Frame-Options) with these.
    for name, value in headers.items():
        request.responseHeaders.setRawHeaders(name, [value])


def messageView(source):
    """
    What a message page shows of C{source} (a message's octets), as the
    values C{message_body.html} renders: C{summary}, C{headers}, C{bodies}
    (C{(part, text)}; text L{None} for an HTML part, which the page frames
    from its C{part} route), C{attachments} and C{source}. The mail viewer
    and the capture view (L{mailstack.web.capturepages}) show messages
    through it, so both show the same message the same way.
    """
    message = messages.parseMessage(source)
    bodies = []
    for part in messages.bodyParts(message):
        text = None if part.isHTML else messages.partText(
            messages.findPart(message, part.section))
        bodies.append((part, text))
    return {"summary": messages.summarize(message), "headers": messages.headerList(message),
            "bodies": bodies, "attachments": messages.attachments(message),
            "source": source.decode("utf-8", "replace")}


def htmlPartBody(request, source, section):
    """
    The HTML part C{section} of C{source} for a sandboxed frame, with
    L{messages.HTML_PART_HEADERS} set on C{request} (no script, nothing
    remote, an opaque origin even when opened alone).

    @raise NotFound: C{section} is no HTML part.
    """
    part = messages.findPart(messages.parseMessage(source), section)
    if part is None or part.get_content_type() != "text/html":
        raise NotFound("No such HTML part.")
    _setHeaders(request, messages.HTML_PART_HEADERS)
    return messages.partText(part).encode("utf-8")


def downloadBody(request, source, section):
    """
    Part C{section} of C{source} as a file to save under a safe name
    (L{messages.ATTACHMENT_HEADERS}, never rendered by the browser).

    @raise NotFound: there is no such part.
    """
    message = messages.parseMessage(source)
    part = messages.findPart(message, section)
    if part is None:
        raise NotFound("No such part.")
    described = next(p for p in messages.parts(message) if p.section == section)
    _setHeaders(request, messages.ATTACHMENT_HEADERS)
    request.setHeader(b"content-disposition",
                      messages.contentDisposition(described.downloadName))
    return messages.partBytes(part)


def rawBody(request, source, filename, download):
    """C{source} as plain text in a sandbox, or (C{download}) as the file C{filename}."""
    if download:
        _setHeaders(request, messages.ATTACHMENT_HEADERS)
        request.setHeader(b"content-disposition", messages.contentDisposition(filename))
    else:
        _setHeaders(request, {b"content-type": b"text/plain; charset=utf-8",
                              b"content-security-policy": b"default-src 'none'; sandbox",
                              b"x-frame-options": b"SAMEORIGIN"})
    return source


class HTMLPartPage(_SourcePage):
    """
    C{/mail/part}: an HTML part on its own, for the sandboxed frame of the
    message page: L{messages.HTML_PART_HEADERS} (no script, nothing remote,
    an opaque origin even when opened alone).
    """

    def answer(self, request, uid, source):
        return htmlPartBody(request, source, formValue(request, "section"))


class DownloadPage(_SourcePage):
    """C{/mail/download}: one part as a file to save, under a safe name."""

    def answer(self, request, uid, source):
        return downloadBody(request, source, formValue(request, "section"))


class RawPage(_SourcePage):
    """C{/mail/raw}: the message as stored, as plain text (C{?download=1}: a .eml file)."""

    def answer(self, request, uid, source):
        return rawBody(request, source, "message-%d.eml" % (uid,),
                       bool(formValue(request, "download")))


class SendPage(Page):
    """
    C{/mail/send}: a plain-text test message from the signed-in user to
    accounts of this server, stored by the store's delivery (as SMTP's
    local delivery does, with C{Return-Path} and C{Received}); a message to
    other domains is for a mail client and the submission port.
    """

    title = "Send a test message"

    def get(self, request, principal):
        sent = formValue(request, "sent")
        return Answer("mail_send.html", to="", subject="", body="", error=None,
                      sent=sent or None)

    def post(self, request, principal):
        to = formValue(request, "to")
        subject = re.sub(r"[\r\n]+", " ", formValue(request, "subject")).strip()
        body = formValue(request, "body")

        def refuse(text):
            return Answer("mail_send.html", 400, to=to, subject=subject, body=body,
                          error=text, sent=None)
        names = [address for _, address in email.utils.getaddresses([to]) if address]
        if not names:
            return refuse("Give at least one recipient.")
        directory = self.context.directory

        @defer.inlineCallbacks
        def check():
            recipients = []
            for name in names:
                address = directory.normalize(name)
                user = (yield defer.maybeDeferred(directory.lookup, address)) if address else None
                if user is None:
                    return None, name
                if user.address not in recipients:
                    recipients.append(user.address)
            return recipients, None

        def checked(result):
            recipients, unknown = result
            if recipients is None:
                return refuse("%s is not an account on this server: the console delivers "
                              "only to local accounts (send to other addresses with a mail "
                              "client over the submission port)." % (unknown,))
            source = self.compose(principal.address, recipients, subject, body)
            d = self.context.store.deliver(recipients, source)

            def delivered(_):
                log.info("console: {sender} sent a test message to {recipients}",
                         sender=principal.address, recipients=", ".join(recipients))
                return redirectTo(request, link("/mail/send", sent=", ".join(recipients)))

            def failed(failure):
                failure.trap(StoreError)
                return refuse("The message could not be stored: %s" % (
                    failure.getErrorMessage(),))
            return d.addCallbacks(delivered, failed)
        return check().addCallback(checked)

    def compose(self, sender, recipients, subject, body):
        """The message's octets (CRLF lines), as local delivery stores it."""
        config = self.context.config
        host = getattr(config.server, "hostname", None) or socket.getfqdn()
        now = self.context.reactor.seconds()
        message = email.message.EmailMessage(policy=email.policy.SMTP)
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(now, localtime=True)
        message["Message-ID"] = email.utils.make_msgid(domain=host)
        message.set_content(body.replace("\r\n", "\n"))
        trace = ("Return-Path: <%s>\r\nReceived: from web console (HTTP, user %s)\r\n"
                 "\tby %s (mailstack); %s\r\n" % (
                     sender, sender, host, email.utils.formatdate(now, localtime=True)))
        return trace.encode("utf-8") + message.as_bytes()


# -- transcripts -------------------------------------------------------------


class TranscriptsPage(Page):
    """C{/transcripts/}: the sessions the viewer may see, and what they say live."""

    title = "Protocol transcripts"

    def get(self, request, principal):
        hub = self.context.transcripts
        if hub is None:
            return Answer("transcripts.html", sessions=[], enabled=False, since=0, link=link)
        return Answer("transcripts.html", enabled=True, link=link,
                      sessions=hub.sessionsFor(principal.address, principal.admin),
                      since=hub.lastSeq)


class SessionPage(Page):
    """C{/transcripts/session}: one session's lines, and the next ones as they come."""

    title = "Session"

    def get(self, request, principal):
        hub = self.context.transcripts
        session = hub.get(formValue(request, "id")) if hub is not None else None
        if session is None or not hub.visible(session, principal.address, principal.admin):
            return Answer("error.html", 404, message="No such session (it may have been "
                                                     "forgotten: the console keeps the last %d)."
                          % (hub.maxSessions if hub is not None else 0,))
        return Answer("transcript_session.html", title="%s session %s" % (
            session.protocol, session.id), session=session, lines=list(session.lines),
            since=hub.lastSeq, link=link)


@implementer(ITranscriptWatcher)
class StreamWatcher:
    """Sends what the hub tells it as events of an L{EventStream}."""

    def __init__(self, stream, admin, single):
        self.stream = stream
        self.admin = admin
        self.single = single

    def sessionShown(self, session):
        seq = session.shownAt(self.admin)
        self.shown(session, session.linesBefore(seq), seq)

    def shown(self, session, lines, seq):
        self.stream.send("shown", {"session": session.describe(),
                                   "lines": [line.describe() for line in lines]}, seq)

    def lineRecorded(self, session, line):
        data = line.describe()
        data["session"] = session.id
        self.stream.send("line", data, line.seq)

    def sessionEnded(self, session):
        self.stream.send("ended", {"session": session.id, "reason": session.ended},
                         session.endSeq)
        if self.single:
            self.stream.close()


class TranscriptEvents(Page):
    """
    C{/transcripts/events}: server-sent events of every session the viewer
    may see (C{?session=ID}: that one only), from after C{Last-Event-ID} (or
    C{?lastEventId=}): C{shown} (a session, its lines so far), C{line},
    C{ended}. A one-session stream closes after C{ended}, and answers 204
    (the browser stops) when asked again after it.
    """

    heartbeat = 15.0

    def render_HEAD(self, request):
        setSecurityHeaders(request)
        return self.refuse(request, 405, "The event stream is for GET.")

    def render_GET(self, request):
        setSecurityHeaders(request)
        principal = self.auth.currentUser(request)
        hub = self.context.transcripts
        if principal is None:
            return self.refuse(request, 403, "Log in first.")
        if hub is None:
            return self.refuse(request, 404, "Live transcripts are off ([lab] transcripts).")
        sessionID = formValue(request, "session") or None
        if sessionID is not None:
            session = hub.get(sessionID)
            if session is None or not hub.visible(session, principal.address, principal.admin):
                return self.refuse(request, 404, "No such session.")
        after = lastEventID(request)
        if sessionID is not None and session.endSeq is not None and session.endSeq <= after:
            request.setResponseCode(204)
            return b""
        stop = []
        stream = EventStream(request, self.context.reactor,
                             allowed=lambda: self.auth.currentUser(request) == principal,
                             onClose=lambda: [s() for s in stop], heartbeat=self.heartbeat)
        watcher = StreamWatcher(stream, principal.admin, sessionID is not None)
        stream.start()
        for seq, event, session, payload in hub.backlog(principal.address, principal.admin,
                                                        after, sessionID):
            if event == "shown":
                watcher.shown(session, payload, seq)
            elif event == "line":
                watcher.lineRecorded(session, payload)
            else:
                watcher.sessionEnded(session)
        if not stream.closed:
            stop.append(hub.watch(watcher, principal.address, principal.admin, sessionID))
        return server.NOT_DONE_YET
