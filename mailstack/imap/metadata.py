"""
FETCH of metadata alone (UID, FLAGS, RFC822.SIZE, INTERNALDATE, MODSEQ):
the hot case of a client opening a big mailbox (C{FETCH 1:* (FLAGS
RFC822.SIZE)}), where per-message Python overhead is the whole cost.

Each message's response items are rendered once per L{IMessageInfo} the
store hands out and kept, per store and per list of items, while the store
hands out the same info object (stores make a new one when anything it shows
changes: flags, modseq); a session that shows \\Recent on a message renders
that message afresh. Responses go out in batches of many messages, not one
write each. Byte for byte the same as the general FETCH path.
"""

import collections
import itertools
import weakref

from mailstack.imap.response import formatFlags, formatInternalDate
from mailstack.storage.interfaces import NoSuchMessage

__all__ = ["METADATA_ITEMS", "applies", "fetchLines", "keptLines"]

METADATA_ITEMS = frozenset({"UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "MODSEQ"})

# Messages per piece handed to the response streamer.
BATCH = 256

# A cache larger than this and than twice the mailbox drops expunged UIDs.
PRUNE_ABOVE = 1024

# At most this many messages' lines are kept, over all mailboxes (about
# 200 octets each): the least recently used mailboxes' are dropped first.
MAX_KEPT = 300000

# (id of the store, items key) -> (weak reference to the store, {uid: (info,
# sequence number, items, has keywords, the whole line for that number)}),
# least recently used first. Sessions that see a mailbox alike (the usual
# case) share whole lines.
_rendered: "collections.OrderedDict" = collections.OrderedDict()


def applies(attributes):
    """Whether a FETCH of C{attributes} asks for metadata only (no section, no body)."""
    return bool(attributes) and all(
        a.name in METADATA_ITEMS and a.section is None and a.partial is None
        for a in attributes)


def _render(attributes, info, flags):
    items = []
    for attribute in attributes:
        name = attribute.name
        if name == "UID":
            items.append(b"UID %d" % (info.uid,))
        elif name == "FLAGS":
            items.append(b"FLAGS " + formatFlags(flags))
        elif name == "RFC822.SIZE":
            items.append(b"RFC822.SIZE %d" % (info.size,))
        elif name == "INTERNALDATE":
            items.append(b"INTERNALDATE " + formatInternalDate(info.internalDate))
        else:
            items.append(b"MODSEQ (%d)" % (info.modseq,))
    return b" ".join(items) + b")\r\n"


def keptLines():
    """How many messages' lines are kept now, over all mailboxes."""
    return sum(len(cache) for _, cache in _rendered.values())


def _cacheFor(store, key):
    """The kept lines of C{store} for the items C{key}, made most recently used.
    An item list naming an item twice gets nothing kept: a client repeating
    UID a thousand times would have kilobytes kept per message."""
    if len(set(key)) != len(key):
        return {}
    slot = (id(store), key)
    entry = _rendered.get(slot)
    if entry is not None and entry[0]() is store:
        _rendered.move_to_end(slot)
        return entry[1]
    try:
        reference = weakref.ref(store)
    except TypeError:  # a store that takes no weak reference: nothing kept
        return {}
    cache = {}
    _rendered[slot] = (reference, cache)
    for stale in [s for s, (ref, _) in _rendered.items() if ref() is None]:
        del _rendered[stale]
    return cache


def _bound(current):
    """
    Keep at most L{MAX_KEPT} messages' lines over all mailboxes once a FETCH
    has added to C{current}: the least recently used mailboxes' are dropped
    first, then the oldest of C{current}'s own (one mailbox bigger than the
    bound keeps only part of its lines).
    """
    total = keptLines()
    for slot in list(_rendered):
        if total <= MAX_KEPT:
            return
        cache = _rendered[slot][1]
        if cache is not current:
            del _rendered[slot]
            total -= len(cache)
    for uid in list(itertools.islice(current, max(0, len(current) - MAX_KEPT))):
        del current[uid]


def fetchLines(view, work, attributes, state, selected):
    """
    The FETCH response lines for C{work} (C{(number, uid)} pairs), in
    batches of bytes; as the general path, a message expunged meanwhile
    counts in C{state["missing"]}, and a keyword this session was not told
    of is announced first (RFC 3501 7.2.6).

    @param view: the session's L{mailstack.imap.mailbox.SelectedMailbox}.
    @param selected: C{() -> bool}, whether the session still has C{view}
        selected (the lines are produced as the client reads them).
    """
    store = view.store
    cache = _cacheFor(store, tuple(a.name for a in attributes))
    try:
        yield from _lines(view, work, attributes, state, selected, store, cache)
    finally:
        _bound(cache)


def _lines(view, work, attributes, state, selected, store, cache):
    """L{fetchLines}' work, with C{cache} (a dict, kept or not)."""
    out = []
    wantsFlags = any(a.name == "FLAGS" for a in attributes)
    recent = view.recent if view.showRecent else ()
    isExpunged, messageInfo, cached = view.isExpunged, store.messageInfo, cache.get
    append = out.append
    for number, uid in work:
        if isExpunged(uid):
            state["missing"] += 1
            continue
        try:
            info = messageInfo(uid)
        except NoSuchMessage:
            state["missing"] += 1
            continue
        kept = cached(uid)
        if kept is None or kept[0] is not info or uid in recent:
            tail = _render(attributes, info, view.flagsOf(info))
            kept = (info, None, tail, any(flag[:1] != "\\" for flag in info.flags))
            if uid not in recent:
                cache[uid] = kept
        if kept[3] and wantsFlags:
            out.extend(line + b"\r\n" for line in view.owedFlagLines(info))
        if kept[1] != number:  # the whole line, kept for the same sequence number
            kept = (info, number, kept[2], kept[3], b"* %d FETCH (%s" % (number, kept[2]))
            if uid not in recent:
                cache[uid] = kept
        append(kept[4])
        if len(out) >= BATCH:
            yield b"".join(out)
            del out[:]
            if not selected():
                return
    if out:
        yield b"".join(out)
    if len(cache) > PRUNE_ABOVE and len(cache) > 2 * len(view.uids):
        kept = set(view.uids)
        for uid in [uid for uid in cache if uid not in kept]:
            del cache[uid]
