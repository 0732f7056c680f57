"""
The SMTP client side of the relay queue: one delivery attempt of one queued
message to the smarthost.

L{RelayClient} uses twisted's ESMTP client (L{twisted.mail.smtp.ESMTPClient}:
EHLO with HELO fallback, STARTTLS) with our own message transfer: it streams
the file with correct dot-stuffing and CRLF across chunk boundaries
(L{mailstack.protocol.dotstuff.DotStuffer} with C{normalise}; the stock
C{transformChunk} doubles CRs of CRLF text and misses a dot at the start of
a chunk), sends SIZE and BODY=8BITMIME when
offered, and reports one L{Result} per recipient. What a result means for
the message (delivered, bounced, retried) is decided by
L{mailstack.relay.queue.RelayQueue}.
"""

import dataclasses
import re

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.mail import smtp
from twisted.protocols import basic

from mailstack.protocol.dotstuff import DotStuffer

log = Logger()

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


@dataclasses.dataclass(frozen=True)
class Result:
    """The outcome of one attempt for one recipient (code L{None}: no reply)."""
    code: int | None
    text: str

    @property
    def enhanced(self):
        match = _ENHANCED.match(self.text)
        if match and self.code is not None and match.group(1) == str(self.code)[0]:
            return match.group(0)
        return None

    def describe(self):
        return "%s %s" % (self.code, self.text) if self.code is not None else self.text


def replyText(value):
    """A reply or error (bytes or text, maybe several lines) as one line, for logs and DSNs."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " / ".join(line.strip() for line in str(value).splitlines() if line.strip())


def _path(address):
    """An envelope address as an SMTP path (already validated when received)."""
    return b"<" + address.encode("utf-8") + b">"


class RelayClient(smtp.ESMTPClient):
    """
    One delivery attempt of one message to the smarthost: EHLO (HELO
    fallback unless TLS is required), STARTTLS when offered (or required),
    MAIL, one RCPT per pending recipient, DATA, QUIT.

    C{finished} fires with a list of L{Result}, one per recipient in order.
    """

    heloFallback = True
    requireAuthentication = False

    def __init__(self, identity, sender, recipients, messageFile, size, eightBit,
                 contextFactory, requireTLS, timeout, clock):
        smtp.ESMTPClient.__init__(self, None, contextFactory, identity)
        self.requireTransportSecurity = requireTLS
        self.timeout = timeout
        self.callLater = clock.callLater  # TimeoutMixin
        self.sender = sender
        self.recipients = list(recipients)
        self.messageFile = messageFile
        self.size = size
        self.eightBit = eightBit
        self.extensions = {}
        self.usedTLS = False
        self.finished = defer.Deferred()

    def _finish(self, results):
        if not self.finished.called:
            self.finished.callback(results)

    def _finishAll(self, result):
        self._finish([result] * len(self.recipients))

    def esmtpState_serverConfig(self, code, resp):
        self.extensions = {}
        for line in resp.splitlines():
            parts = line.split(None, 1)
            if parts:
                self.extensions[parts[0].upper()] = parts[1] if len(parts) > 1 else b""
        smtp.ESMTPClient.esmtpState_serverConfig(self, code, resp)

    def esmtpState_starttls(self, code, resp):
        smtp.ESMTPClient.esmtpState_starttls(self, code, resp)
        self.usedTLS = self._tlsMode

    def esmtpTLSFailed(self, code=-1, resp=None):
        if resp is not None and not self.requireTransportSecurity:
            # the server refused STARTTLS with a reply: TLS is opportunistic
            # here, so carry on in plaintext
            log.warn("relay: smarthost refused STARTTLS ({code} {text}), "
                     "continuing without TLS", code=code, text=replyText(resp))
            return self.smtpState_from(code, resp)
        smtp.ESMTPClient.esmtpTLSFailed(self, code, resp)

    def smtpState_from(self, code, resp):
        self._from = self.sender
        self._failresponse = self.smtpTransferFailed
        params = b""
        if b"SIZE" in self.extensions:
            params += b" SIZE=%d" % (self.size,)
        if self.eightBit and b"8BITMIME" in self.extensions:
            params += b" BODY=8BITMIME"
        if not all(a.isascii() for a in [self.sender] + self.recipients):
            if b"SMTPUTF8" not in self.extensions:
                self._finishAll(Result(553, "5.6.7 the smarthost does not offer "
                                            "SMTPUTF8, needed for this address"))
                return self._disconnectFromServer()
            params += b" SMTPUTF8"
        self.sendLine(b"MAIL FROM:" + _path(self.sender) + params)
        self._expected = smtp.SUCCESS
        self._okresponse = self.smtpState_to

    def smtpState_to(self, code, resp):
        self._toAddresses = iter(self.recipients)
        self.toAddressesResult = []
        self.successAddresses = []
        self._okresponse = self.smtpState_toOrData
        self._expected = range(0, 1000)
        self.lastAddress = None
        return self.smtpState_toOrData(0, b"")

    def smtpState_toOrData(self, code, resp):
        if self.lastAddress is not None:
            self.toAddressesResult.append((self.lastAddress, code, resp))
            if code in smtp.SUCCESS:
                self.successAddresses.append(self.lastAddress)
        try:
            self.lastAddress = next(self._toAddresses)
        except StopIteration:
            if self.successAddresses:
                self.sendLine(b"DATA")
                self._expected = [354]
                self._okresponse = self.smtpState_data
            else:
                return self.smtpState_msgSent(code, resp)
        else:
            self.sendLine(b"RCPT TO:" + _path(self.lastAddress))

    def smtpState_data(self, code, resp):
        stuffer = DotStuffer(normalise=True)

        def encode(chunk):
            self.resetTimeout()
            return stuffer.feed(chunk)

        def sent(_):
            self.transport.write(stuffer.end())

        def failed(reason):
            self.sendError(smtp.SMTPProtocolError(
                -1, "sending the message failed: %s" % (reason.getErrorMessage(),)))

        sender = basic.FileSender()
        sender.beginFileTransfer(self.messageFile, self.transport, encode).addCallbacks(
            sent, failed)
        self._expected = smtp.SUCCESS
        self._okresponse = self.smtpState_msgSent

    def smtpState_msgSent(self, code, resp):
        """Map the replies to per-recipient results, then QUIT."""
        if not self.toAddressesResult:
            # MAIL FROM was refused: that answer is every recipient's
            self._finishAll(Result(code, replyText(resp)))
        else:
            results = []
            for address, rcptCode, rcptResp in self.toAddressesResult:
                if rcptCode in smtp.SUCCESS:
                    results.append(Result(code, replyText(resp)))
                else:
                    results.append(Result(rcptCode, replyText(rcptResp)))
            self._finish(results)
        self._disconnectFromServer()

    def sendError(self, exc):
        text = getattr(exc, "resp", None) or str(exc)
        code = getattr(exc, "code", -1)
        description = replyText(text)
        if isinstance(code, int) and code > 0:
            description = "%d %s" % (code, description)
        # a refusal before MAIL (greeting, EHLO, STARTTLS, TLS missing) says
        # nothing about the recipients: temporary
        self._finishAll(Result(None, "smarthost session failed: " + description))
        smtp.SMTPClient.sendError(self, exc)

    def connectionLost(self, reason=protocol.connectionDone):
        smtp.ESMTPClient.connectionLost(self, reason)
        self._finishAll(Result(None, "connection lost: %s" % (reason.getErrorMessage(),)))


class RelayClientFactory(protocol.Factory):
    """Builds the one L{RelayClient} of an attempt."""

    noisy = False

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.client = None

    def buildProtocol(self, addr):
        self.client = RelayClient(**self.kwargs)
        self.client.factory = self
        return self.client
