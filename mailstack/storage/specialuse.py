"""
The account's C{mailstack-specialuse} file: which mailbox has which RFC 6154
special use (C{\\Sent}, C{\\Drafts}, C{\\Trash}, C{\\Junk}, C{\\Archive}...).

Dovecot keeps special use in its configuration; mailstack keeps it per account
in this small file, one mailbox per line::

    \\Sent<TAB>Sent
    \\Archive \\Drafts<TAB>Lists/Python

(attributes separated by spaces, a tab, the mailbox name in UTF-8 with C{/}
between levels). Lines starting with C{#} are comments. The file's existence
also records that the account's default folders were set up (see
L{mailstack.storage.account.MaildirAccount.createDefaultMailboxes}).
"""

from mailstack.storage.dotlock import DotLock

SPECIAL_USE = "mailstack-specialuse"

_HEADER = "# mailstack special-use mailboxes (RFC 6154): attributes<TAB>name\n"
_LOCK_TIMEOUT = 0.0  # try once: written on the reactor thread, which must not wait
_STALE_LOCK_AGE = 120.0


def parseSpecialUse(text):
    """@return: C{{name: (attribute, ...)}} from the file's text; bad lines are skipped."""
    uses = {}
    for line in text.split("\n"):
        if not line or line.startswith("#") or "\t" not in line:
            continue
        attributes, name = line.split("\t", 1)
        attributes = tuple(a for a in attributes.split() if a.startswith("\\"))
        if attributes and name:
            uses[name] = tuple(sorted(set(uses.get(name, ()) + attributes)))
    return uses


def formatSpecialUse(uses):
    """The file's text for C{{name: attributes}} (names without attributes are left out)."""
    lines = [_HEADER]
    for name in sorted(uses):
        if uses[name]:
            lines.append("%s\t%s\n" % (" ".join(sorted(set(uses[name]))), name))
    return "".join(lines)


def readSpecialUse(path):
    """@return: the mapping in the file at C{path}, or None if there is no file."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return parseSpecialUse(f.read())
    except FileNotFoundError:
        return None


def updateSpecialUse(path, change):
    """
    Under the file's dotlock: read it (an empty mapping if missing), apply
    C{change(uses)} (which edits the dict in place), write it back.

    @return: the new mapping.
    """
    with DotLock(path, _LOCK_TIMEOUT, _STALE_LOCK_AGE) as lock:
        uses = readSpecialUse(path) or {}
        change(uses)
        lock.commit(formatSpecialUse(uses).encode("utf-8", "surrogateescape"))
    return uses
