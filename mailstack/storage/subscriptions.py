"""
The account's C{subscriptions} file: written one Maildir++ name per line (C{INBOX},
C{Lists.Python}), read in that form or Dovecot's C{V\\t2} form (a header, an empty
line, then tab-separated levels with Dovecot's escaping).
"""

import re

from mailstack.storage import mutf7
from mailstack.storage.dotlock import DotLock
from mailstack.storage.names import canonicalLevels, checkName

SUBSCRIPTIONS = "subscriptions"

_V2_HEADER = "V\t2\n\n"
_LOCK_TIMEOUT = 0.0  # try once: written on the reactor thread, which must not wait
_STALE_LOCK_AGE = 120.0


def _unescapeTab(text):
    """Undo Dovecot's tab escaping (\\001 followed by 1, t, r or n)."""
    table = {"1": "\x01", "t": "\t", "r": "\r", "n": "\n"}
    return re.sub("\x01(.)", lambda m: table.get(m.group(1), m.group(1)), text)


def _decodeLenient(part):
    try:
        return mutf7.decode(part)
    except ValueError:
        return part


def readSubscriptions(path):
    """@return: the mailbox names in the file at C{path} (none if it is missing)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    if text.startswith(_V2_HEADER):
        lines = text[len(_V2_HEADER):].split("\n")
        split = lambda line: [_unescapeTab(p) for p in line.split("\t")]
    else:
        lines = text.split("\n")
        split = lambda line: re.split(r"[./]", line)
    names = []
    for line in lines:
        if line.strip():
            parts = canonicalLevels([_decodeLenient(part) for part in split(line)])
            names.append("/".join(parts))
    return names


def writeSubscriptions(path, names):
    """
    Replace the file at C{path} (under its dotlock) with C{names}, sorted, once each.

    @raise InvalidMailboxName: if a name cannot be stored.
    """
    lines = []
    for name in sorted(set(names)):
        canonical, dirName = checkName(name)
        lines.append(dirName[1:] if dirName else canonical)
    with DotLock(path, _LOCK_TIMEOUT, _STALE_LOCK_AGE) as lock:
        lock.commit("".join(line + "\n" for line in lines).encode("utf-8"))
