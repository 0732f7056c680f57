"""
LIST and LSUB: which mailboxes match and with which attributes, over an
account's names, subscriptions and special uses. RFC 3501 LIST/LSUB, CHILDREN
(RFC 3348), LIST-EXTENDED (RFC 5258: SUBSCRIBED, REMOTE and RECURSIVEMATCH
selection, SUBSCRIBED and CHILDREN return options, several patterns) and
SPECIAL-USE (RFC 6154: attributes, selection and return options). No I/O but
the store's.
"""

import re

DELIMITER = "/"
# RFC 6154 uses mailstack can give a real mailbox (\All and \Flagged are virtual).
USE_ATTRIBUTES = ("\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash")
DEFAULT_MAILBOXES = (("Drafts", "\\Drafts"), ("Sent", "\\Sent"), ("Trash", "\\Trash"),
                     ("Junk", "\\Junk"), ("Archive", "\\Archive"))


def collapseWildcards(pattern):
    """
    A LIST pattern with each run of wildcards made one: a run holding a C{*}
    becomes C{*} (it matches anything, C{%} may match nothing), a run of C{%}
    becomes C{%}. The same names match; no two wildcards are adjacent.
    """
    return _WILDCARD_RUN.sub(lambda m: "*" if "*" in m.group() else "%", pattern)


_WILDCARD_RUN = re.compile(r"[%*]{2,}")


class Pattern:
    """
    A LIST pattern (str): C{*} matches anything, C{%} anything but the
    delimiter; everything else matches itself.

    Matched without backtracking (the old regular expression took hours for
    C{%%%...%x}): the set of pattern positions reached so far is a bit set,
    advanced one name character at a time, so a match costs O(len(name) *
    len(pattern) / word size) whatever the wildcards.
    """

    def __init__(self, pattern):
        self.pattern = collapseWildcards(pattern)
        literals = {}
        star = percent = 0
        for i, char in enumerate(self.pattern):
            bit = 1 << i
            if char == "*":
                star |= bit
            elif char == "%":
                percent |= bit
            else:
                literals[char] = literals.get(char, 0) | bit
        self._literals = literals
        self._star = star
        self._percent = percent
        self._wild = star | percent
        self._accept = 1 << len(self.pattern)
        # Every literal matches one character: a shorter name cannot match.
        self._minLength = len(self.pattern) - bin(self._wild).count("1")

    def _closure(self, states):
        # A wildcard may match nothing: from it, the next position is reached
        # too. Wildcards are never adjacent, so one step is the whole closure.
        return states | ((states & self._wild) << 1)

    def fullmatch(self, name):
        """Whether the whole of C{name} (str) matches."""
        if len(name) < self._minLength:
            return False
        literals, star, percent = self._literals, self._star, self._percent
        states = self._closure(1)
        for char in name:
            following = ((states & literals.get(char, 0)) << 1) | (states & star)
            if char != DELIMITER:
                following |= states & percent
            if not following:
                return False
            states = self._closure(following)
        return bool(states & self._accept)


def normalizePattern(pattern):
    if pattern[:5].upper() == "INBOX" and pattern[5:6] in ("", DELIMITER):
        return "INBOX" + pattern[5:]
    return pattern


def parents(name):
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


def _order(name):
    return (name != "INBOX", name)


def listMailboxes(store, reference, patterns, selection=frozenset(), returns=frozenset(),
                  children=True, specialUse=True, extended=False):
    """
    LIST: C{[(attributes, name, childInfo)]}, names as str.

    @param store: the L{mailstack.storage.interfaces.IAccountStore}.
    @param patterns: the patterns (str), already decoded.
    @param selection: LIST-EXTENDED selection options (C{SUBSCRIBED},
        C{RECURSIVEMATCH}, C{SPECIAL-USE}; C{REMOTE} changes nothing here).
    @param returns: return options (C{SUBSCRIBED}, C{CHILDREN}, C{SPECIAL-USE}).
    @param children: give C{\\HasChildren}/C{\\HasNoChildren} (CHILDREN on).
    @param specialUse: give special-use attributes (SPECIAL-USE on).
    @param extended: the extended syntax was used: mailboxes that do not
        exist are C{\\NonExistent} rather than C{\\Noselect}.
    @return: C{childInfo} is the list of selection criteria that some child
        meets (RFC 5258 CHILDINFO), only with RECURSIVEMATCH.
    """
    names = set(store.listMailboxes())
    implied = {parent for name in names for parent in parents(name)} - names
    everything = names | implied
    withChildren = {parent for name in everything for parent in parents(name)}
    wantSubscribed = "SUBSCRIBED" in selection or "SUBSCRIBED" in returns
    subscribed = set(store.subscriptions()) if wantSubscribed else set()
    uses = store.specialUse() if (specialUse or "SPECIAL-USE" in selection
                                  or "SPECIAL-USE" in returns) else {}
    matchers = [Pattern(normalizePattern(reference + pattern)) for pattern in patterns]
    criteria = [c for c in ("SUBSCRIBED", "SPECIAL-USE") if c in selection]

    def meets(name):
        return (("SUBSCRIBED" not in criteria or name in subscribed)
                and ("SPECIAL-USE" not in criteria or (name in names and uses.get(name))))

    candidates = set(everything)
    if "SUBSCRIBED" in criteria:
        candidates |= subscribed
    recursive = "RECURSIVEMATCH" in selection and criteria
    childInfo = {}
    if recursive:
        for name in candidates:
            if meets(name):
                for parent in parents(name):
                    childInfo[parent] = [c for c in criteria if c != "SPECIAL-USE"] or criteria
        candidates |= set(childInfo)
    out = []
    for name in sorted(candidates, key=_order):
        if not any(matcher.fullmatch(name) for matcher in matchers):
            continue
        info = childInfo.get(name, []) if recursive else []
        if criteria and not meets(name) and not info:
            continue
        attributes = []
        if name not in names:
            attributes.append("\\NonExistent" if extended else "\\Noselect")
        if (children or "CHILDREN" in returns) and name in everything:
            attributes.append("\\HasChildren" if name in withChildren else "\\HasNoChildren")
        if "SUBSCRIBED" in returns and name in subscribed:
            attributes.append("\\Subscribed")
        if (specialUse or "SPECIAL-USE" in returns) and name in names:
            attributes.extend(uses.get(name, ()))
        out.append((attributes, name, info))
    return out


def listSubscribed(store, reference, pattern):
    """LSUB: C{[(attributes, name)]}."""
    full = normalizePattern(reference + pattern)
    matcher = Pattern(full)
    subscribed = set(store.subscriptions())
    out = []
    for name in sorted(subscribed, key=_order):
        if matcher.fullmatch(name):
            out.append(([] if store.hasMailbox(name) else ["\\Noselect"], name))
    if "%" in full and "*" not in full:
        implied = {p for name in subscribed for p in parents(name)} - subscribed
        for name in sorted(implied):
            if matcher.fullmatch(name):
                out.append((["\\Noselect"], name))
    return out
