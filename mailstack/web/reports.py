"""
Class reports: per student, logins by protocol, messages sent and received,
and whether TLS was used, from what the server's L{mailstack.activity}
recorder counted. The console page, the CSV export and the API call all
use these functions; who may see which rows (a student their own, an admin
everyone) is decided where they are served.
"""

import csv
import dataclasses
import io
import time

from mailstack.activity import LOGIN, RECEIVED, SENT

__all__ = ["PROTOCOLS", "StudentReport", "studentReport", "classReport", "reportCSV",
           "contextReport", "CSV_COLUMNS"]

#: The protocols logins are reported for, in column order.
PROTOCOLS = ("smtp", "pop3", "imap")

CSV_COLUMNS = ("address", "logins_smtp", "logins_pop3", "logins_imap", "logins_tls",
               "logins_plaintext", "tls_used", "sent", "sent_tls", "received",
               "first_seen", "last_seen")


@dataclasses.dataclass(frozen=True)
class StudentReport:
    """
    One student's row.

    @ivar logins: C{{protocol: logins}} for each of L{PROTOCOLS}.
    @ivar tlsUsed: C{always}, C{sometimes} or C{never} (of the logins), or
        C{none} when there was no login.
    @ivar first: the first counted event (seconds since the epoch), or L{None}.
    @ivar last: the latest one.
    """
    address: str
    logins: dict
    loginsTLS: int
    loginsPlaintext: int
    sent: int
    sentTLS: int
    received: int
    first: float | None
    last: float | None

    @property
    def tlsUsed(self):
        if not self.loginsTLS and not self.loginsPlaintext:
            return "none"
        if not self.loginsPlaintext:
            return "always"
        return "sometimes" if self.loginsTLS else "never"

    def asDict(self):
        """The row for JSON: times as ISO 8601 UTC strings (or L{None})."""
        return {"address": self.address, "logins": dict(self.logins),
                "logins_tls": self.loginsTLS, "logins_plaintext": self.loginsPlaintext,
                "tls_used": self.tlsUsed, "sent": self.sent, "sent_tls": self.sentTLS,
                "received": self.received, "first_seen": isoTime(self.first),
                "last_seen": isoTime(self.last)}


def isoTime(seconds):
    """C{YYYY-MM-DDTHH:MM:SSZ}, or L{None}."""
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def studentReport(activity, address):
    """
    @param activity: the L{mailstack.activity.ActivityRecorder}.
    @return: the L{StudentReport} of C{address} (zeros if nothing was counted).
    """
    user = activity.user(address)
    return StudentReport(
        address=user.address,
        logins={protocol: user.total(LOGIN, protocol) for protocol in PROTOCOLS},
        loginsTLS=user.total(LOGIN, tls=True), loginsPlaintext=user.total(LOGIN, tls=False),
        sent=user.total(SENT), sentTLS=user.total(SENT, tls=True),
        received=user.total(RECEIVED), first=user.first, last=user.last)


def classReport(activity, addresses=()):
    """
    The rows of every student: each of C{addresses} (the users of the
    directory, so a student who never logged in shows as zeros) and every
    address with counts, sorted by address.
    """
    everyone = {a.lower() for a in addresses} | set(activity.addresses())
    return [studentReport(activity, address) for address in sorted(everyone)]


def contextReport(context):
    """
    L{classReport} over every user of the web context's directory.

    @param context: the L{mailstack.web.context.WebContext} (its C{activity}
        and C{directory}).
    @return: a Deferred firing with the rows.
    """
    d = context.directory.listUsers()
    d.addCallback(lambda users: classReport(context.activity, [u.address for u in users]))
    return d


def _cell(value):
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def reportCSV(rows):
    """
    The rows as CSV text (RFC 4180: CRLF line ends, a header row of
    L{CSV_COLUMNS}).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(v) for v in (
            row.address, row.logins["smtp"], row.logins["pop3"], row.logins["imap"],
            row.loginsTLS, row.loginsPlaintext, row.tlsUsed, row.sent, row.sentTLS,
            row.received, isoTime(row.first), isoTime(row.last))])
    return out.getvalue()
