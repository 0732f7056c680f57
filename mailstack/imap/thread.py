"""
THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256), pure: both take the
L{mailstack.imap.sort.Candidate}s matching the search criteria and return
a list of L{Node} trees, which L{formatThreads} writes as the THREAD
response's thread-lists.

Siblings are ordered by sent date (the internal date standing in for a
missing one), ties in sequence order. REFERENCES follows the RFC's six
steps: links from References (In-Reply-To's first ID when References has
none), no link that would make a loop, duplicate Message-IDs kept only by
the first message, dummies pruned, threads gathered by base subject.
"""

from mailstack.imap.sort import sortCandidates


class Node:
    """
    A thread tree node: a message (L{candidate}) or, without one, a dummy
    holding the children of a message that is not in the mailbox.
    """

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


def _order(node):
    candidate = node.first()
    return (candidate.date, candidate.seq)


def _sortTree(nodes):
    """Sort every set of siblings by date, the youngest generation first (step 6)."""
    for node in nodes:
        _sortTree(node.children)
    nodes.sort(key=_order)


def orderedSubject(candidates):
    """
    THREAD=ORDEREDSUBJECT: messages with the same base subject form a thread,
    its first message (by sent date) the parent of the others; threads in
    the order of their first messages.
    """
    roots = []
    current = None
    for candidate in sortCandidates(candidates, [("SUBJECT", False), ("DATE", False)]):
        if current is not None and current.candidate.fields.subject == candidate.fields.subject:
            current.adopt(Node(candidate))
            continue
        current = Node(candidate)
        roots.append(current)
    roots.sort(key=_order)
    return roots


def references(candidates):
    """THREAD=REFERENCES (RFC 5256 section 2.2, steps 1 to 6)."""
    byID = {}
    containers = []

    def container(messageID):
        node = byID.get(messageID)
        if node is None:
            node = byID[messageID] = Node()
            containers.append(node)
        return node

    for candidate in sorted(candidates, key=lambda c: c.seq):
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
            if (parent is not None and node.parent is None
                    and not parent.hasAncestor(node)):
                parent.adopt(node)
            parent = node
        # 1B: the last reference is this message's parent, unless that makes a
        # loop; the link it had goes either way (a message naming itself last
        # becomes a root, as in Dovecot).
        own.unlink()
        if parent is not None and not parent.hasAncestor(own):
            parent.adopt(own)

    # 2, 3: the root set, dummies pruned.
    roots = _prune([node for node in containers if node.parent is None], True)
    # 4: the root set by date.
    _sortTree(roots)
    # 5: threads gathered by base subject.
    roots = _gather(roots)
    # 6: every set of siblings by date.
    _sortTree(roots)
    return roots


def _prune(nodes, atRoot):
    """
    Step 3: dummies without children go; a dummy's children take its place,
    except at the root where it has more than one.
    """
    out = []
    for node in nodes:
        node.children = _prune(node.children, False)
        for child in node.children:
            child.parent = node
        if node.candidate is None:
            if not node.children:
                continue
            if not atRoot or len(node.children) == 1:
                for child in node.children:
                    child.parent = None if atRoot else node.parent
                out.extend(node.children)
                continue
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


def _members(node, number):
    parts = []
    while True:
        if node.candidate is not None:
            parts.append(b"%d" % (number(node.candidate),))
            if len(node.children) == 1:
                node = node.children[0]
                continue
        if node.children:
            parts.append(b"".join(b"(" + _members(child, number) + b")"
                                  for child in node.children))
        return b" ".join(parts)


def formatThreads(roots, byUID):
    """The THREAD response's data: C{(a b (c)(d))(e)...}, UIDs or sequence numbers."""
    def number(candidate):
        return candidate.uid if byUID else candidate.seq
    return b"".join(b"(" + _members(root, number) + b")" for root in roots)
