"""
IMAP mailbox names and their Maildir++ directories: C{A/B} is stored as C{.A.B}, each
level in modified UTF-7; INBOX is the account root. Names that cannot be stored that
way (or could escape the account directory) are refused with the reason.
"""

from __future__ import annotations

from mailstack.storage import mutf7
from mailstack.storage.interfaces import InvalidMailboxName


def checkName(name: str) -> tuple[str, str]:
    """
    Validate a mailbox name and find its directory.

    @return: C{(canonicalName, dirName)}; C{dirName} is C{""} for INBOX (the
        account root), else the Maildir++ C{.A.B} form in modified UTF-7.
    @raise InvalidMailboxName: with the reason.
    """
    if not isinstance(name, str) or not name:
        raise InvalidMailboxName("mailbox name is empty")
    if "\x00" in name:
        raise InvalidMailboxName("mailbox name contains a NUL character")
    if any(c < "\x20" or c == "\x7f" for c in name):
        raise InvalidMailboxName("mailbox name contains control characters")
    if name.startswith("/"):
        raise InvalidMailboxName("mailbox name must not start with '/'")
    parts = canonicalLevels(name.split("/"))
    if parts == ["INBOX"]:
        return "INBOX", ""
    for part in parts:
        if not part:
            raise InvalidMailboxName("mailbox name has an empty level ('//' or a trailing '/')")
        if part in (".", ".."):
            raise InvalidMailboxName("'.' and '..' are not allowed as mailbox names")
        if "." in part:
            raise InvalidMailboxName("'.' is not allowed in mailbox names (Maildir++ uses it "
                                     "to separate levels; use '/')")
    try:
        dirName = "." + ".".join(mutf7.encode(part) for part in parts)
    except ValueError:
        raise InvalidMailboxName("mailbox name is not valid Unicode")
    if len(dirName.encode("utf-8")) > 255:
        raise InvalidMailboxName("mailbox name is too long")
    return "/".join(parts), dirName


def canonicalLevels(parts: list[str]) -> list[str]:
    """The levels of a name with a first level of C{INBOX} in any case made C{INBOX}."""
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return parts


def isValidName(name: str) -> bool:
    """Whether L{checkName} accepts C{name}."""
    try:
        checkName(name)
    except InvalidMailboxName:
        return False
    return True


def decodeDirName(dirName: str) -> str | None:
    """C{.A.B} -> C{A/B}, or None if the directory is not a well-formed folder."""
    parts = dirName[1:].split(".")
    try:
        name = "/".join(mutf7.decode(part) for part in parts)
        if checkName(name)[1] == dirName:
            return name
    except (ValueError, InvalidMailboxName):
        pass
    return None
