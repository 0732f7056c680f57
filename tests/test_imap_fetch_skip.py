"""
Tests for L{mailstack.imap.fetch}'s bulk skip of a body no boundary can end
(C{_Lines.takeRest}): the structure (offsets, sizes, line counts) must be
exactly what reading the body line by line gives, which is what Dovecot
answers (tests/test_imap_fetch and the differential harness check that).
"""

import io
import random

from twisted.trial import unittest

from mailstack.imap import fetch


def lineByLine(self):
    """The reference: the body taken one line (or piece) at a time."""
    while self.peek() is not None:
        self.take()


def shape(part):
    """Everything parsing decided about C{part} and the parts inside it."""
    return (part.start, part.headerEnd, part.end, part.lines, part.blankLine,
            part.mainType, part.subType, [shape(c) for c in part.children],
            shape(part.message) if part.message is not None else None)


def randomMessage(rng):
    """A message with random line ends (CRLF, LF, a lone CR), long lines, maybe no
    final line end, maybe an attached message/rfc822 or a multipart."""
    ends = [b"\r\n", b"\n", b"\r", b""]

    def body():
        out = []
        for _ in range(rng.randint(0, 30)):
            out.append(b"x" * rng.choice([0, 1, 5, 70, 200]) + rng.choice(ends[:3]))
        if rng.random() < 0.5 and out:
            out[-1] = out[-1].rstrip(b"\r\n")
        return b"".join(out)
    end = rng.choice(ends[:2])
    kind = rng.choice(["plain", "rfc822", "multipart"])
    if kind == "plain":
        return b"Subject: a" + end + end + body()
    if kind == "rfc822":
        return (b"Content-Type: message/rfc822" + end + end + b"Subject: inner" + end + end
                + body())
    return (b"Content-Type: multipart/mixed; boundary=b" + end + end + b"--b" + end
            + b"Subject: one" + end + end + body() + end + b"--b--" + end + body())


def parse(message, bulk):
    """The structure of C{message}, its bodies skipped in big reads or line by line."""
    lines = fetch._Lines
    bulkSkip = lines.takeRest
    if not bulk:
        lines.takeRest = lineByLine
    try:
        return fetch.parseStructure(io.BytesIO(message))
    finally:
        lines.takeRest = bulkSkip


class SkipTests(unittest.TestCase):

    def test_sameStructure(self):
        """Skipping a body in big reads gives every part the same offsets, sizes and
        line counts as reading it line by line, whatever the line ends and read size."""
        rng = random.Random(16)
        for chunk in (1, 2, 7, 64, fetch.CHUNK):
            self.patch(fetch, "CHUNK", chunk)
            for _ in range(200):
                message = randomMessage(rng)
                fast, slow = parse(message, True), parse(message, False)
                self.assertEqual(shape(fast), shape(slow), message)
                self.assertEqual(fetch.bodyStructure(fast), fetch.bodyStructure(slow))
