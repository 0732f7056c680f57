"""
OBJECTID (RFC 8474): ids for mailboxes and messages that stay the same across
sessions and restarts, derived from what the store already keeps, so nothing
new is stored.

MAILBOXID is C{F} and the mailbox's UIDVALIDITY. The store gives each new
mailbox of an account a UIDVALIDITY that account never gave before (the
Maildir store through its C{dovecot-uidvalidity} file, as Dovecot does; the
memory store in memory), the mailbox keeps it across RENAME and restarts, and
a mailbox deleted and created again gets a new one: what RFC 8474 asks of a
MAILBOXID. It changes only where UIDVALIDITY does (the UIDs could not be
kept), which makes it a new mailbox for a client anyway.

EMAILID is C{M} and 24 characters of the SHA-256 of the message's store key
(L{IMessageInfo.key}: the Maildir base name, unique and kept for the file's
life; in the memory store a counter unique in the store, lost with it at a
restart like the messages). A COPY is a new file with a new base name, so
it gets a new EMAILID (RFC 8474 only says SHOULD keep it).

THREADID is NIL: mailstack keeps no thread index (RFC 8474 5.2 allows NIL).
Every id is 1 to 255 characters of C{[A-Za-z0-9_-]}.
"""

import base64
import hashlib


def mailboxId(mailbox):
    """The MAILBOXID (str) of a store mailbox (L{IMailboxStore})."""
    return "F%d" % (mailbox.uidValidity,)


def emailId(info):
    """The EMAILID (str) of a message (L{IMessageInfo})."""
    digest = hashlib.sha256(info.key.encode("utf-8", "surrogateescape")).digest()
    return "M" + base64.urlsafe_b64encode(digest[:18]).decode("ascii")


def responseCode(mailbox):
    """The C{MAILBOXID (...)} response code (str) for SELECT, EXAMINE and CREATE."""
    return "MAILBOXID (%s)" % (mailboxId(mailbox),)
