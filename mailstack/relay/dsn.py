"""
Delivery status notifications (bounces) for the relay queue: RFC 3464
C{multipart/report; report-type=delivery-status} messages built with the
email package.

A DSN has three parts: a human-readable explanation, the machine-readable
C{message/delivery-status} (one per-message block, then one block per failed
recipient: Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code) and
the original message's header section as C{text/rfc822-headers} (RFC 6522).
It comes from C{MAILER-DAEMON@<hostname>}; the caller sends it with the null
reverse path, and never sends one for a message whose own sender was null.
"""

import dataclasses
import email.utils
import io
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32

# compat32 keeps "smtp; 550 ..." and "rfc822; a@b" as written (the newer
# policies would RFC 2047-encode them); no folding (it would break a field at
# its ";"), so field values are kept under the 998 octet line limit instead;
# CRLF because this is mail
POLICY = compat32.clone(linesep="\r\n", max_line_length=None)
MAX_FIELD = 900

MAX_HEADER_BYTES = 64 * 1024


def _charset(text):
    """us-ascii if it is, else UTF-8 in quoted-printable (readable, 7-bit)."""
    if text.isascii():
        return "us-ascii"
    charset = Charset("utf-8")
    charset.body_encoding = QP
    return charset


@dataclasses.dataclass(frozen=True)
class RecipientReport:
    """
    What happened to one recipient, for its DSN block.

    @ivar address: the recipient as given in RCPT TO.
    @ivar status: the RFC 3463 status, e.g. C{"5.1.1"}.
    @ivar diagnostic: the C{Diagnostic-Code} value (C{"smtp; 550 5.1.1 ..."}),
        or L{None}.
    @ivar remoteMTA: the host that answered (the smarthost), or L{None}.
    @ivar explanation: one line for the human-readable part.
    @ivar lastAttempt: POSIX time of the last attempt, or L{None}.
    """
    address: str
    status: str
    diagnostic: str | None
    remoteMTA: str | None
    explanation: str
    lastAttempt: float | None = None


def encodeAddressType(address):
    """
    An address as an RFC 3464 address-type field value: C{"rfc822; a@b"} for
    ASCII addresses, C{"utf-8; ..."} with RFC 6533 C{\\x{HEX}} escapes for
    internationalized ones (the field itself stays 7-bit).
    """
    if address.isascii() and address.isprintable():
        return "rfc822; " + address
    escaped = "".join(
        c if (" " < c < "\x7f" and c not in "\\+=") else "\\x{%X}" % (ord(c),)
        for c in address)
    return "utf-8; " + escaped


def _oneLine(text):
    """Collapse a (multi-line) reply or error into one printable ASCII line."""
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    text = text.encode("ascii", "replace").decode("ascii")
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD - 3] + "..."


def headerSection(data):
    """
    The header section (up to and excluding the blank line) of a raw message,
    at most L{MAX_HEADER_BYTES}, cut at a line end.
    """
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = data.find(separator)
        if end != -1:
            data = data[:end]
            break
    if len(data) > MAX_HEADER_BYTES:
        data = data[:MAX_HEADER_BYTES]
        data = data[:data.rfind(b"\n") + 1] or data
    return data.rstrip(b"\r\n") + b"\r\n"


def readHeaderSection(path):
    """L{headerSection} of the message stored in C{path} (reads only its head)."""
    with open(path, "rb") as f:
        return headerSection(f.read(MAX_HEADER_BYTES + 4))


def buildDSN(hostname, queueID, sender, arrival, recipients, headers, now=None):
    """
    Build a failure DSN.

    @param hostname: this MTA (Reporting-MTA, MAILER-DAEMON's domain).
    @param queueID: the relay queue id of the original message.
    @param sender: the original envelope sender (the DSN's recipient).
    @param arrival: POSIX time the original message was queued.
    @param recipients: non-empty list of L{RecipientReport}.
    @param headers: bytes, the original message's header section.
    @param now: POSIX time for the Date header (default: now).
    @return: the DSN as bytes with CRLF line ends.
    """
    if not recipients:
        raise ValueError("a DSN needs at least one recipient")
    headers = headerSection(headers)
    report = MIMEMultipart("report", report_type="delivery-status")
    mimeHeaders = report.items()
    for name, _ in mimeHeaders:
        del report[name]
    # Return-Path first: the DSN goes straight into a mailbox (final delivery)
    report["Return-Path"] = "<>"
    report["Date"] = email.utils.formatdate(now, localtime=True)
    report["From"] = "Mail Delivery System <MAILER-DAEMON@%s>" % (hostname,)
    report["To"] = "<%s>" % (sender,)
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Message-ID"] = email.utils.make_msgid("dsn", domain=hostname)
    report["Auto-Submitted"] = "auto-replied"
    for name, value in mimeHeaders:
        report[name] = value
    report.preamble = "This is a MIME-encapsulated message."

    lines = [
        "This is the mail system at host %s." % (hostname,),
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients. Its headers are attached below.",
        "",
        "The mail system",
        "",
    ]
    for recipient in recipients:
        lines.append("<%s>: %s" % (recipient.address, _oneLine(recipient.explanation)))
    body = "\r\n".join(lines) + "\r\n"
    human = MIMEText(body, "plain", _charset(body))
    human["Content-Description"] = "Notification"
    report.attach(human)

    status = Message()
    status["Content-Description"] = "Delivery report"
    status["Content-Type"] = "message/delivery-status"
    perMessage = Message()
    perMessage["Reporting-MTA"] = "dns; " + hostname
    perMessage["X-Mailstack-Queue-ID"] = queueID
    perMessage["X-Mailstack-Sender"] = encodeAddressType(sender)
    perMessage["Arrival-Date"] = email.utils.formatdate(arrival, localtime=True)
    blocks = [perMessage]
    for recipient in recipients:
        block = Message()
        block["Final-Recipient"] = encodeAddressType(recipient.address)
        block["Action"] = "failed"
        block["Status"] = recipient.status
        if recipient.remoteMTA:
            block["Remote-MTA"] = "dns; " + recipient.remoteMTA
        if recipient.diagnostic:
            block["Diagnostic-Code"] = _oneLine(recipient.diagnostic)
        if recipient.lastAttempt is not None:
            block["Last-Attempt-Date"] = email.utils.formatdate(
                recipient.lastAttempt, localtime=True)
        blocks.append(block)
    status.set_payload(blocks)
    report.attach(status)

    text = headers.decode("utf-8", "replace")
    if text.isascii():
        original = Message()
        original["Content-Description"] = "Undelivered Message Headers"
        original["Content-Type"] = "text/rfc822-headers"
        original.set_payload(text.replace("\r\n", "\n").replace("\n", "\r\n"))
    else:
        # internationalized headers: keep them readable, 7-bit on the wire
        original = MIMEText(text, "rfc822-headers", _charset(text))
        original["Content-Description"] = "Undelivered Message Headers"
    report.attach(original)

    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=POLICY).flatten(report)
    return out.getvalue()
