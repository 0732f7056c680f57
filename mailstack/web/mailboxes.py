"""
Preparing an account's mail for an exercise, through the asynchronous store
contract: L{emptyAccount} removes every message from every folder (the
folders stay), L{seedAccount} delivers the sample messages shipped with the
package (C{mailstack/web/samples/*.eml}) to its INBOX, in order, as SMTP
would (unclaimed, so IMAP shows them \\Recent and POP3 lists them).

The samples are templates: C{${to}}, C{${date}} and C{${messageid}} are
filled for each delivery, so every copy has its own Message-ID.
"""

import email.utils
import string
from importlib import resources

from twisted.internet import defer

from mailstack.web.mailread import openFolder

__all__ = ["SAMPLES", "sampleNames", "loadSamples", "sampleMessages", "seedAccount",
           "emptyAccount"]


def sampleNames():
    """The file names of the shipped samples, in delivery order."""
    folder = resources.files("mailstack.web") / "samples"
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".eml"))


# The shipped samples' names, read once when the module is imported (not on
# the reactor while serving).
SAMPLES = tuple(sampleNames())


def loadSamples():
    """
    Every sample's template text (reads files: call it in a thread).

    @return: a list of C{(name, text)} in delivery order.
    """
    folder = resources.files("mailstack.web") / "samples"
    return [(name, (folder / name).read_text("utf-8")) for name in SAMPLES]


def sampleMessages(templates, address, now, hostname):
    """
    The samples filled in for C{address}, in wire form (CRLF line ends).

    @param templates: C{loadSamples()}'s list.
    @param now: the time to put in their C{Date} (POSIX seconds).
    @param hostname: the right-hand side of their Message-IDs.
    @return: a list of bytes.
    """
    date = email.utils.formatdate(now, localtime=False)
    result = []
    for name, text in templates:
        filled = string.Template(text).safe_substitute(
            to=address, date=date, messageid=email.utils.make_msgid("sample", domain=hostname))
        lines = filled.replace("\r\n", "\n").split("\n")
        result.append("\r\n".join(lines).encode("utf-8"))
    return result


@defer.inlineCallbacks
def seedAccount(context, address):
    """
    Deliver every sample message to C{address}'s INBOX, one after another.

    @param context: the L{mailstack.web.context.WebContext}.
    @return: a Deferred firing with the number delivered.
    """
    templates = yield context.runInThread(loadSamples)
    messages = sampleMessages(templates, address, context.reactor.seconds(),
                              context.config.server.hostname)
    for message in messages:
        yield context.store.deliver([address], message)
    return len(messages)


@defer.inlineCallbacks
def emptyAccount(store, address):
    """
    Remove every message from every folder of C{address} (the folders,
    subscriptions and special uses stay).

    @return: a Deferred firing with the number of messages removed.
    """
    account = store.account(address)
    removed = 0
    for name in account.listMailboxes():
        mailbox = yield openFolder(store, address, name)
        uids = [info.uid for info in mailbox.messages()]
        if uids:
            gone = yield mailbox.expunge(uids)
            removed += len(gone)
    return removed
