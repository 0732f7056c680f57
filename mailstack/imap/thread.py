"""
THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256), and Dovecot's
THREAD=REFS, pure: each takes the
L{mailstack.imap.sort.Candidate}s matching the search criteria and build a
list of L{Node} trees, which L{formatThreads} writes as the THREAD
response's thread-lists. Each algorithm is a generator of small steps
(L{ALGORITHMS}), so a large mailbox is threaded in cooperative slices, and
nothing recurses: a reply chain may be thousands deep.

Siblings are ordered by sent date (the internal date standing in for a
missing one), ties in sequence order. REFERENCES follows the RFC's six
steps: links from References (In-Reply-To's first ID when References has
none), no link that would make a loop, duplicate Message-IDs kept only by
the first message, dummies pruned, threads gathered by base subject.
REFS (Dovecot 2.3's own, for clients that show the newest conversation
first) links the same way but keeps a dummy at the root (its messages
under it, however few), gathers nothing by subject, and orders the threads
by their latest message's date, ties by the root's UID (a dummy's is 0).
"""

from mailstack.imap.sort import sortCandidates


class Node:
    """
    A thread tree node: a message (L{candidate}) or, without one, a dummy
    holding the children of a message that is not in the mailbox.
    """

    __slots__ = ("candidate", "parent", "children")

    def __init__(self, candidate=None):
        self.candidate = candidate
        self.parent = None
        self.children = []

    def __repr__(self):
        label = self.candidate.seq if self.candidate is not None else "dummy"
        return "<Node %s %r>" % (label, self.children)

    def hasAncestor(self, other):
        """Whether C{other} is this node or above it."""
        node = self
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False

    def unlink(self):
        if self.parent is not None:
            self.parent.children.remove(self)
            self.parent = None

    def adopt(self, child):
        child.unlink()
        child.parent = self
        self.children.append(child)

    def first(self):
        """The message this node sorts and gathers by: its own, else its first child's."""
        node = self
        while node.candidate is None and node.children:
            node = node.children[0]
        return node.candidate


# Steps of work between two yields of the step generators (see L{threadSteps}).
SLICE = 256


def _order(node):
    candidate = node.first()
    return (candidate.date, candidate.seq)


def _preorder(roots):
    """Every node under C{roots}, parents before their children (no recursion: threads run deep)."""
    out = []
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node.children))
    return out


def _sortTreeSteps(roots):
    """
    Sort every set of siblings by date, the youngest generation first, so
    that a dummy sorts by its first child as sorted (step 6); the roots last.
    """
    for n, node in enumerate(reversed(_preorder(roots))):
        if len(node.children) > 1:
            node.children.sort(key=_order)
        if n % SLICE == 0:
            yield
    roots.sort(key=_order)


def _makesLoop(parent, child):
    """Whether making C{child} a child of C{parent} would close a loop."""
    if parent is child:
        return True
    return bool(child.children) and parent.hasAncestor(child)


def orderedSubjectSteps(candidates, roots):
    """
    THREAD=ORDEREDSUBJECT, appending the threads to C{roots} (a generator
    of steps): messages with the same base subject form a thread, its first
    message (by sent date) the parent of the others; threads in the order of
    their first messages.
    """
    current = None
    ordered = sortCandidates(candidates, [("SUBJECT", False), ("DATE", False)])
    yield
    for n, candidate in enumerate(ordered):
        if current is not None and current.candidate.fields.subject == candidate.fields.subject:
            current.adopt(Node(candidate))
        else:
            current = Node(candidate)
            roots.append(current)
        if n % SLICE == 0:
            yield
    roots.sort(key=_order)


def _linkSteps(candidates, containers):
    """
    RFC 5256 REFERENCES step 1 (a generator of steps): every message in a
    container linked to its parent, each new container appended to
    C{containers}.
    """
    byID = {}

    def container(messageID):
        node = byID.get(messageID)
        if node is None:
            node = byID[messageID] = Node()
            containers.append(node)
        return node

    for n, candidate in enumerate(sorted(candidates, key=lambda c: c.seq)):
        fields = candidate.fields
        own = byID.get(fields.messageID) if fields.messageID is not None else None
        if own is None or own.candidate is not None:
            # No Message-ID, or one an earlier message has: a container of its own.
            own = Node()
            containers.append(own)
            if fields.messageID is not None and fields.messageID not in byID:
                byID[fields.messageID] = own
        own.candidate = candidate
        ids = fields.references or ([fields.inReplyTo] if fields.inReplyTo else [])
        # 1A: each reference the parent of the next, keeping links made before.
        parent = None
        for messageID in ids:
            node = container(messageID)
            if parent is not None and node.parent is None and not _makesLoop(parent, node):
                parent.adopt(node)
            parent = node
        # 1B: the last reference is this message's parent, unless that makes a
        # loop; the link it had goes either way (a message naming itself last
        # becomes a root, as in Dovecot).
        own.unlink()
        if parent is not None and not _makesLoop(parent, own):
            parent.adopt(own)
        if n % SLICE == 0:
            yield


def referencesSteps(candidates, roots):
    """
    THREAD=REFERENCES (RFC 5256 section 2.2, steps 1 to 6), appending the
    threads to C{roots} (a generator of steps).
    """
    containers = []
    yield from _linkSteps(candidates, containers)
    # 2, 3: the root set, dummies pruned.
    pruned = _prune([node for node in containers if node.parent is None])
    yield
    # 4: the root set by date.
    yield from _sortTreeSteps(pruned)
    # 5: threads gathered by base subject.
    pruned = _gather(pruned)
    yield
    # 6: every set of siblings by date.
    yield from _sortTreeSteps(pruned)
    roots.extend(pruned)


def refsSteps(candidates, roots):
    """
    Dovecot's THREAD=REFS, appending the threads to C{roots} (a generator
    of steps): REFERENCES' links; below the root each message hangs from its
    nearest message above, and a dummy root keeps every message with none
    (even one alone, which is written as that message); siblings by sent
    date; no subject gathering; threads ordered by their latest sent date
    (the internal date standing in for a missing one), ties by the root's
    UID, 0 for a dummy.
    """
    containers = []
    yield from _linkSteps(candidates, containers)
    threads = []
    for root in containers:
        if root.parent is not None:
            continue
        for node in reversed(_preorder([root])):
            kept = []
            for child in node.children:
                kept.extend(child.children if child.candidate is None else [child])
            for child in kept:
                child.parent = node
            node.children = kept
        if root.candidate is not None or root.children:
            threads.append(root)
    yield
    latest = {}
    for n, root in enumerate(threads):
        nodes = _preorder([root])
        # From 0 up, as Dovecot: a thread of pre-1970 messages sorts as 1970.
        latest[id(root)] = max([0] + [node.candidate.date for node in nodes
                                      if node.candidate is not None])
        for node in nodes:
            if len(node.children) > 1:
                node.children.sort(key=lambda child: (child.candidate.date, child.candidate.uid))
        if n % SLICE == 0:
            yield
    threads.sort(key=lambda root: (latest[id(root)],
                                   root.candidate.uid if root.candidate is not None else 0))
    for root in threads:
        if root.candidate is None and len(root.children) == 1:
            # Written as its one message, as Dovecot writes it (sorted as the dummy still).
            root = root.children[0]
            root.parent = None
        roots.append(root)


def _run(steps, candidates):
    roots = []
    for _ in steps(candidates, roots):
        pass
    return roots


def orderedSubject(candidates):
    """L{orderedSubjectSteps} at once: the list of threads."""
    return _run(orderedSubjectSteps, candidates)


def references(candidates):
    """L{referencesSteps} at once: the list of threads."""
    return _run(referencesSteps, candidates)


def refs(candidates):
    """L{refsSteps} at once: the list of threads."""
    return _run(refsSteps, candidates)


ALGORITHMS = {"ORDEREDSUBJECT": orderedSubjectSteps, "REFERENCES": referencesSteps,
              "REFS": refsSteps}


def _prune(roots):
    """
    Step 3: dummies without children go; below the root a dummy's children
    take its place, and at the root too when it has only one.
    """
    for node in reversed(_preorder(roots)):
        kept = []
        for child in node.children:
            if child.candidate is None:
                kept.extend(child.children)  # none, or promoted (already pruned)
            else:
                kept.append(child)
        for child in kept:
            child.parent = node
        node.children = kept
    out = []
    for node in roots:
        if node.candidate is None and len(node.children) <= 1:
            for child in node.children:
                child.parent = None
            out.extend(node.children)
        else:
            out.append(node)
    return out


def _gather(roots):
    """Step 5: root threads whose base subjects are equal are merged."""
    table = {}
    for node in roots:
        first = node.first()
        subject = first.fields.subject
        if not subject:
            continue
        old = table.get(subject)
        if (old is None
                or (node.candidate is None and old.candidate is not None)
                or (old.candidate is not None and node.candidate is not None
                    and old.candidate.fields.isReply and not first.fields.isReply)):
            table[subject] = node
    everything = list(roots)
    for node in roots:
        if node.parent is not None:
            continue  # merged into another thread already
        first = node.first()
        subject = first.fields.subject
        old = table.get(subject) if subject else None
        if old is None or old is node:
            continue
        if old.candidate is None and node.candidate is None:
            for child in list(node.children):
                old.adopt(child)
        elif old.candidate is None:
            old.adopt(node)
        elif node.candidate is None:
            node.adopt(old)
            table[subject] = node
        elif first.fields.isReply and not old.candidate.fields.isReply:
            old.adopt(node)
        else:
            dummy = Node()
            dummy.adopt(old)
            dummy.adopt(node)
            table[subject] = dummy
            everything.append(dummy)
    # The order is step 6's to give; what stays is every thread not merged.
    return [node for node in everything
            if node.parent is None and (node.candidate is not None or node.children)]


def formatThreads(roots, byUID):
    """
    The THREAD response's data, C{(a b (c)(d))(e)...}, in UIDs or sequence
    numbers: a chain of single answers is written as a list, several answers
    each in parentheses.
    """
    out = bytearray()
    work = []
    for root in reversed(roots):
        work += [b")", root, b"("]
    while work:
        item = work.pop()
        if isinstance(item, bytes):
            out += item
            continue
        node, first = item, True
        while True:
            if node.candidate is not None:
                if not first:
                    out += b" "
                out += b"%d" % (node.candidate.uid if byUID else node.candidate.seq,)
                first = False
                if len(node.children) == 1:
                    node = node.children[0]
                    continue
            if node.children:
                if not first:
                    out += b" "
                for child in reversed(node.children):
                    work += [b")", child, b"("]
            break
    return bytes(out)
