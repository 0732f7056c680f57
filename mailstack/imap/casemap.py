"""
The i;unicode-casemap comparator (RFC 5051) as Dovecot 2.3 applies it, for
SEARCH's substring matching and SORT's keys (I18NLEVEL=1, RFC 5255): each
character mapped to its simple title case, then decomposed one level
(canonical or compatibility; Hangul syllables into their jamo). Pure; a
table built as characters are met keeps long texts fast (C{str.translate}).
"""

from __future__ import annotations

import unicodedata


def titleDecomposed(c: str) -> str:
    """
    One character as Dovecot's i;unicode-casemap keys it: its simple title
    case, then that character's own decomposition, one level, canonical or
    compatibility (Hangul syllables into their jamo). A character that has
    a title case mapping of its own in Unicode's data (the digraphs such as
    U+01C5) keeps it undecomposed, as Dovecot's tables have it. What the
    decomposition gives is not title-cased again: U+FB01 (fi) is "fi".
    """
    title = c.title()
    if len(title) == 1:
        c = title
    upper = c.upper()
    if len(upper) == 1 and upper != c and c.title() == c:
        return c  # a title-case letter proper: no decomposition in Dovecot's tables
    if "\uac00" <= c <= "\ud7a3":
        return unicodedata.normalize("NFD", c)
    decomposition = unicodedata.decomposition(c)
    if not decomposition:
        return c
    return "".join(chr(int(code, 16)) for code in decomposition.split()
                   if not code.startswith("<"))


class _Table(dict[int, str]):
    """Code point -> its mapped text, filled in as characters are met."""

    def __missing__(self, code: int) -> str:
        value = self[code] = titleDecomposed(chr(code))
        return value


_TABLE = _Table()


def fold(text: str) -> str:
    """
    C{text} as i;unicode-casemap compares it: ASCII letters upper-cased,
    every other character title-cased and decomposed (L{titleDecomposed}).
    A substring of one folded text is found in another as Dovecot finds it.
    """
    if text.isascii():
        return text.upper()
    return text.translate(_TABLE)
