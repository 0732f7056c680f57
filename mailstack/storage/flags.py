"""
IMAP flags in a Maildir: system flags are letters after C{:2,} in the file name
(C{DFRST}), keywords are the letters C{a}-C{z}, named by the mailbox's
C{dovecot-keywords} file (C{<index> <name>} lines, index 0 for C{a}).
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Sequence

from mailstack.storage.dotlock import DotLock
from mailstack.storage.interfaces import StoreError

KEYWORDS = "dovecot-keywords"
MAX_KEYWORDS = 26

FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R",
                "\\Seen": "S", "\\Deleted": "T"}
_LETTER_FLAGS = {letter: flag for flag, letter in FLAG_LETTERS.items()}
_FLAGS_BY_LOWER = {flag.lower(): flag for flag in FLAG_LETTERS}
_BAD_KEYWORD = re.compile(r'[^\x21-\x7e]|[(){%*"\\\]]')


def splitFlags(flags: Iterable[str]) -> tuple[set[str], list[str]]:
    """
    Sort IMAP flags into system-flag letters and keywords. System flags match
    case-insensitively; C{\\Recent} is never stored and is dropped.

    @return: C{(letters, keywords)}: a set of letters, a list of keyword names.
    @raise StoreError: for an unknown system flag or a keyword that is not an atom.
    """
    letters: set[str] = set()
    keywords: list[str] = []
    for flag in flags:
        if flag.startswith("\\"):
            if flag.lower() == "\\recent":
                continue
            if flag.lower() not in _FLAGS_BY_LOWER:
                raise StoreError("unknown system flag %s" % (flag,))
            letters.add(FLAG_LETTERS[_FLAGS_BY_LOWER[flag.lower()]])
        elif not flag or _BAD_KEYWORD.search(flag):
            raise StoreError("invalid keyword %r" % (flag,))
        else:
            keywords.append(flag)
    return letters, keywords


def _flagOf(letter: str, keywordNames: Sequence[str | None]) -> str | None:
    """The IMAP flag a letter stands for, or None if it stands for none."""
    if letter in _LETTER_FLAGS:
        return _LETTER_FLAGS[letter]
    if "a" <= letter <= "z":
        return keywordNames[ord(letter) - 97]
    return None


def flagsFromLetters(letters: Iterable[str],
                     keywordNames: Sequence[str | None]) -> frozenset[str]:
    """
    @param keywordNames: the list from L{readKeywords}.
    @return: the IMAP flags the info letters C{letters} stand for, as a frozenset.
    """
    return frozenset(flag for flag in (_flagOf(letter, keywordNames) for letter in letters)
                     if flag)


def isExpressible(letter: str, keywordNames: Sequence[str | None]) -> bool:
    """Whether a letter shows as an IMAP flag (else rewrites must keep it, like C{P})."""
    return bool(_flagOf(letter, keywordNames))


def keywordLetters(keywordNames: Sequence[str | None], keywords: Iterable[str]) -> set[str]:
    """The letters of C{keywords}, all of which must be in C{keywordNames} (any case)."""
    lower = [name.lower() if name else None for name in keywordNames]
    return {chr(97 + lower.index(keyword.lower())) for keyword in keywords}


def readKeywords(path: str) -> list[str | None]:
    """@return: a list of 26 keyword names (None where unused) from dovecot-keywords."""
    names: list[str | None] = [None] * MAX_KEYWORDS
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                index, _, name = line.rstrip("\n").partition(" ")
                if index.isdigit() and int(index) < MAX_KEYWORDS and name:
                    names[int(index)] = name
    except FileNotFoundError:
        pass
    return names


def missingKeywords(keywordNames: Iterable[str | None], keywords: Iterable[str]) -> list[str]:
    """The C{keywords} that have no letter yet (names match case-insensitively)."""
    known = {name.lower() for name in keywordNames if name}
    return [keyword for keyword in keywords if keyword.lower() not in known]


def addKeywords(path: str, keywords: Iterable[str], lockTimeout: float,
                staleLockAge: float) -> list[str | None]:
    """
    Give the missing C{keywords} the lowest free indexes in the dovecot-keywords
    file at C{path} and rewrite it under its dotlock. The caller holds the
    mailbox's uidlist lock, as Dovecot does.

    @return: the new list of names, as L{readKeywords} would read it.
    @raise StoreError: if that would make more than 26 keywords.
    """
    names = readKeywords(path)
    missing = missingKeywords(names, keywords)
    unique = {keyword.lower(): keyword for keyword in missing}
    for keyword in sorted(unique.values(), key=str.lower):
        if None not in names:
            raise StoreError("this mailbox already has %d keywords, the Maildir "
                             "maximum" % (MAX_KEYWORDS,))
        names[names.index(None)] = keyword
    text = "".join("%d %s\n" % (i, name) for i, name in enumerate(names) if name)
    # Holding the uidlist lock, a keywords lock can only be a crash's leftover.
    try:
        os.unlink(path + ".lock")
    except FileNotFoundError:
        pass
    with DotLock(path, lockTimeout, staleLockAge) as lock:
        lock.commit(text.encode("utf-8"))
    return names
