"""
The console's view of the lab's capture store (L{mailstack.capture}: mail
submitted for other domains under C{[lab] capture}, and what magic recipients
accept), as Mailpit shows the mail it catches. Mounted by
L{mailstack.web.app.buildRoot} through L{captureResources}:

  - C{/capture/}: captured messages, newest first, a page at a time (time,
    envelope sender and recipients, subject, size, TLS, authenticated user);
    an admin sees every sender and picks one with C{?sender=} (C{<>}: the
    null sender);
  - C{/capture/message?id=}: one message shown as the mail viewer shows a
    message (L{viewer.messageView}), with its envelope; C{/capture/part},
    C{/capture/download}, C{/capture/raw}: its HTML part for the sandboxed
    frame (L{messages.HTML_PART_HEADERS}), an attachment, its source;
  - C{/capture/delete} and C{/capture/clear}: forms (POST with the session's
    CSRF token) removing one message, or a sender's (a student: her own),
    or for an admin every captured message.

A student sees what she submitted: messages whose envelope sender is her
address (or that she authenticated for, as the API has it). Anyone else's
message is answered as a missing one, so ids tell her nothing.
"""

import time

from twisted.internet import defer
from twisted.logger import Logger

from mailstack.capture import NoSuchCapture
from mailstack.storage.interfaces import StoreError
from mailstack.web import mailread
from mailstack.web.page import Answer, Page, formValue, redirectTo, setSecurityHeaders
from mailstack.web.viewer import (
    PAGE_SIZE, NotFound, Section, downloadBody, htmlPartBody, link, messageView, rawBody)

log = Logger()

__all__ = ["captureResources", "consoleLinks", "NULL_SENDER"]

# How the null sender (MAIL FROM:<>) is written in the page and in ?sender=.
NULL_SENDER = "<>"

MISSING = "No such captured message of yours (it may have been deleted)."
HOW_TO_TURN_ON = ("To keep the mail students submit to addresses outside this server's "
                  "domains, and show it here, add capture = true to the [lab] section "
                  "of the server's config file and restart the server (docs/lab.md, "
                  "\"The fake internet\").")


def captureResources(context, auth):
    """C{{path tuple: resource}}: C{/capture/} and its pages."""
    capture = Section("/capture/")
    for name, page in ((b"", CaptureListPage), (b"message", CapturedMessagePage),
                       (b"part", CapturedPartPage), (b"download", CapturedDownloadPage),
                       (b"raw", CapturedRawPage), (b"delete", DeletePage),
                       (b"clear", ClearPage)):
        capture.putChild(name, page(context, auth))
    return {(b"capture",): capture}


def consoleLinks(context):
    """The header link, for every user, when the server keeps captured mail."""
    if context.capture is None:
        return []
    return [("Captured mail", "/capture/", False)]


def mayRead(principal, envelope):
    """C{True} if the signed-in C{principal} may see a message of this envelope."""
    if principal.admin:
        return True
    mine = principal.address.lower()
    return (envelope.sender.lower() == mine
            or (envelope.authenticated or "").lower() == mine)


def senderText(sender):
    """An envelope sender as the page writes it (L{NULL_SENDER} for the null one)."""
    return sender if sender else NULL_SENDER


def senderArgument(value):
    """
    The sender an admin's C{?sender=} names: L{None} for every sender,
    C{""} for the null sender.
    """
    value = value.strip()
    if not value:
        return None
    return "" if value == NULL_SENDER else value.lower()


def utcTime(seconds):
    """POSIX C{seconds} as C{2026-12-06 09:01:03 UTC} (C{-} for none)."""
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def tlsText(tls):
    """The envelope's TLS as a short answer: C{yes}, C{no}, or what it was."""
    if tls is None:
        return "no"
    return tls or "yes"


class CapturePage(Page):
    """A page about captured mail: the context's capture store, and the viewer's message."""

    title = "Captured mail"

    @property
    def capture(self):
        """The server's capture store, or L{None} (capture mode and magic recipients off)."""
        return self.context.capture

    def captureOn(self):
        """C{True} when C{[lab] capture} keeps mail for other domains."""
        return bool(self.context.config.lab.capture)

    def message(self, request, principal):
        """
        @return: a Deferred firing with the L{mailstack.capture.CapturedMessage}
            the request's C{id} names (its C{raw} included); failing with
            L{NotFound} when there is none or it is not the viewer's.
        """
        if self.capture is None:
            return defer.fail(NotFound("Capture mode is off on this server. " + HOW_TO_TURN_ON))
        d = self.capture.get(formValue(request, "id"))

        def found(message):
            if not mayRead(principal, message.envelope):
                raise NotFound(MISSING)
            return message

        def missing(failure):
            failure.trap(NoSuchCapture)
            raise NotFound(MISSING)
        return d.addCallbacks(found, missing)

    def notFound(self, failure, request):
        failure.trap(NotFound)
        setSecurityHeaders(request)
        return Answer("error.html", 404, message=failure.getErrorMessage())

    def listLink(self, principal, sender):
        """The list to come back to: an admin's filter (C{sender}, as given) kept."""
        return link("/capture/", sender=(sender or None) if principal.admin else None)


class CaptureListPage(CapturePage):
    """C{/capture/}: captured messages the viewer may see, newest first, a page at a time."""

    def get(self, request, principal):
        try:
            offset = max(0, int(formValue(request, "offset", "0")))
        except ValueError:
            offset = 0
        values = dict(link=link, when=utcTime, tlsText=tlsText, senderText=senderText,
                      captureOn=self.captureOn(), howToTurnOn=HOW_TO_TURN_ON,
                      enabled=self.capture is not None, rows=[], total=0, offset=offset,
                      pageSize=PAGE_SIZE, senders=[], sender="", filtered=None,
                      nullSender=NULL_SENDER)
        if self.capture is None:
            return Answer("capture.html", **values)
        if principal.admin:
            filtered = senderArgument(formValue(request, "sender"))
            d = self.capture.senders()
            d.addCallback(lambda senders: values.update(senders=senders))
            d.addCallback(lambda _: self.capture.list(filtered))
            values.update(sender="" if filtered is None else senderText(filtered),
                          filtered=filtered)
        else:
            d = self.capture.list(principal.address)

        def listed(found):
            values.update(rows=found[offset:offset + PAGE_SIZE], total=len(found))
            return Answer("capture.html", **values)
        return d.addCallback(listed)


class CapturedMessagePage(CapturePage):
    """C{/capture/message?id=}: one captured message, with its envelope."""

    def get(self, request, principal):
        d = self.message(request, principal)
        sender = formValue(request, "sender")

        def show(message):
            if message.size > mailread.MESSAGE_LIMIT:
                return Answer("error.html", 413, message="This message is too large to show "
                              "here (%d octets); download its source." % (message.size,))
            view = messageView(message.raw or b"")
            return Answer("capture_message.html",
                          title=view["summary"].subject or "(no subject)",
                          captured=message, envelope=message.envelope, base="/capture/",
                          where={"id": message.id}, link=link, when=utcTime,
                          tlsText=tlsText, senderText=senderText, sender=sender,
                          back=self.listLink(principal, sender), **view)
        return d.addCallback(show).addErrback(self.notFound, request)


class _CapturedSourcePage(CapturePage):
    """
    A page answering with the captured message's own octets (not a console
    page): subclasses answer with C{answer(request, message)}.
    """

    def get(self, request, principal):
        d = self.message(request, principal)
        d.addCallback(lambda message: self.answer(request, message))
        return d.addErrback(self.notFound, request)


class CapturedPartPage(_CapturedSourcePage):
    """
    C{/capture/part}: an HTML part on its own for the message page's
    C{<iframe sandbox>}, with the viewer's headers (L{htmlPartBody}).
    """

    def answer(self, request, message):
        return htmlPartBody(request, message.raw or b"", formValue(request, "section"))


class CapturedDownloadPage(_CapturedSourcePage):
    """C{/capture/download}: one part as a file to save, under a safe name."""

    def answer(self, request, message):
        return downloadBody(request, message.raw or b"", formValue(request, "section"))


class CapturedRawPage(_CapturedSourcePage):
    """C{/capture/raw}: the message as captured, as text (C{?download=1}: a .eml file)."""

    def answer(self, request, message):
        return rawBody(request, message.raw or b"", "captured-%s.eml" % (message.id,),
                       bool(formValue(request, "download")))


class DeletePage(CapturePage):
    """C{/capture/delete}: remove one captured message the viewer may see (POST C{id})."""

    def post(self, request, principal):
        back = self.listLink(principal, formValue(request, "sender"))
        d = self.message(request, principal)

        def found(message):
            return self.capture.delete(message.id).addCallback(deleted, message)

        def deleted(removed, message):
            if removed:
                log.info("console: {who} deleted captured message {id}",
                         who=principal.address, id=message.id)
                self.auth.notify(request, "Deleted the captured message %s." % (
                    message.subject or "(no subject)",))
            else:
                self.auth.notify(request, MISSING, error=True)
            return redirectTo(request, back)
        d.addCallback(found)
        d.addErrback(_storeFailed, self.auth, request, back)
        return d.addErrback(self.notFound, request)


class ClearPage(CapturePage):
    """
    C{/capture/clear}: remove captured mail (POST). A student removes her
    own; an admin a sender's (C{sender}, C{<>} for the null sender) or,
    with C{all=1}, everyone's.
    """

    def post(self, request, principal):
        if self.capture is None:
            return Answer("error.html", 404, message="Capture mode is off on this server. "
                          + HOW_TO_TURN_ON)
        if not principal.admin:
            sender, what = principal.address, "your captured mail"
        elif formValue(request, "all") == "1":
            sender, what = None, "all captured mail"
        else:
            sender = senderArgument(formValue(request, "sender"))
            if sender is None:
                return Answer("error.html", 400, message="Pick a sender, or all captured mail.")
            what = "the captured mail from %s" % (senderText(sender),)
        d = self.capture.clear(sender)

        def cleared(count):
            log.info("console: {who} cleared {what} ({count} messages)",
                     who=principal.address, what=what, count=count)
            self.auth.notify(request, "Deleted %s: %d message%s." % (
                what, count, "" if count == 1 else "s"))
            return redirectTo(request, "/capture/")
        d.addCallback(cleared)
        return d.addErrback(_storeFailed, self.auth, request, "/capture/")


def _storeFailed(failure, auth, request, back):
    """A store that failed to remove: a line saying so on the list it comes back to."""
    failure.trap(StoreError)
    auth.notify(request, "Nothing was deleted: %s" % (failure.getErrorMessage(),), error=True)
    return redirectTo(request, back)
