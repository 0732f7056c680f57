"""
Tests for L{mailstack.protocol.framing}: the same lines whatever the chunking
(whole, one octet at a time, split at every point, as h11 tests its readers),
over-long lines reported once and dropped whole, linear cost, and a seeded
mutation fuzz whose only outcomes are lines or TOO_LONG.
"""

import os
import random

from twisted.trial import unittest

from mailstack.protocol.framing import LONG_LINE_END, TOO_LONG, LineFramer


def frame(chunks, maxLine=20):
    """Feed C{chunks} one by one, taking every line after each; return all."""
    framer = LineFramer(maxLine)
    out = []
    for chunk in chunks:
        framer.feed(chunk)
        while True:
            line = framer.nextLine()
            if line is None:
                break
            out.append(line)
    return out, framer


SAMPLE = (b"EHLO a\r\nNOOP\nQUIT\r\n" + b"X" * 30 + b"\r\nafter long\r\n"
          + b"\r\n" + b"Y" * 19 + b"\nlast\rpart\r\nincomplete")
EXPECTED = [b"EHLO a", b"NOOP", b"QUIT", TOO_LONG, b"after long", b"", b"Y" * 19, b"last\rpart"]


class LineFramerTests(unittest.TestCase):
    """
    Lines out of octets, however they are chunked.
    """

    def test_whole(self):
        """Fed at once: CRLF and bare LF end lines; over-long lines are TOO_LONG once."""
        out, framer = frame([SAMPLE])
        self.assertEqual(out, EXPECTED)
        self.assertEqual(framer.peek(), b"incomplete")

    def test_oneOctetAtATime(self):
        """Fed one octet at a time: the same lines."""
        out, framer = frame([SAMPLE[i:i + 1] for i in range(len(SAMPLE))])
        self.assertEqual(out, EXPECTED)
        self.assertEqual(framer.peek(), b"incomplete")

    def test_everySplit(self):
        """Split in two at every point: the same lines."""
        for i in range(len(SAMPLE) + 1):
            out, framer = frame([SAMPLE[:i], SAMPLE[i:]])
            self.assertEqual(out, EXPECTED, i)
            self.assertEqual(framer.peek(), b"incomplete", i)

    def test_limitCountsLineEnd(self):
        """A line of exactly the limit with its CRLF is taken; one octet more is not."""
        out, _ = frame([b"a" * 18 + b"\r\n" + b"b" * 19 + b"\r\n" + b"c" * 19 + b"\n"])
        self.assertEqual(out, [b"a" * 18, TOO_LONG, b"c" * 19])

    def test_longLineDroppedWhole(self):
        """The rest of an over-long line, arriving later, never becomes a line of its own."""
        out, _ = frame([b"A" * 25, b"QUIT still the long line\r\nRSET\r", b"\nNOOP",
                        b"\r\nok\r\n"])
        self.assertEqual(out, [TOO_LONG, b"RSET", b"NOOP", b"ok"])

    def test_perLineLimit(self):
        """nextLine(maxLine) takes a longer line than the framer's own limit."""
        framer = LineFramer(10)
        framer.feed(b"x" * 40 + b"\r\n" + b"y" * 40 + b"\r\n")
        self.assertEqual(framer.nextLine(100), b"x" * 40)
        self.assertIs(framer.nextLine(), TOO_LONG)

    def test_drop(self):
        """drop() forgets what was not taken (STARTTLS) and says how much."""
        framer = LineFramer(100)
        framer.feed(b"STARTTLS\r\nMAIL FROM:<x>\r\npartial")
        self.assertEqual(framer.nextLine(), b"STARTTLS")
        self.assertEqual(framer.drop(), len(b"MAIL FROM:<x>\r\npartial"))
        framer.feed(b"EHLO b\r\n")
        self.assertEqual(framer.nextLine(), b"EHLO b")

    def test_dropEndsDiscarding(self):
        """drop() inside an over-long line: what comes next is a fresh line."""
        framer = LineFramer(10)
        framer.feed(b"z" * 50)
        self.assertIs(framer.nextLine(), TOO_LONG)
        framer.drop()
        framer.feed(b"NOOP\r\n")
        self.assertEqual(framer.nextLine(), b"NOOP")

    def test_peekConsume(self):
        """peek()/consume() hand raw octets to a reader with its own framing (DATA)."""
        framer = LineFramer(100)
        framer.feed(b"DATA\r\nbody\r\n.\r\nQUIT\r\n")
        self.assertEqual(framer.nextLine(), b"DATA")
        self.assertEqual(framer.peek(), b"body\r\n.\r\nQUIT\r\n")
        framer.consume(len(b"body\r\n.\r\n"))
        self.assertEqual(framer.nextLine(), b"QUIT")
        self.assertIsNone(framer.nextLine())

    def test_manyPipelinedLinesLinear(self):
        """100,000 pipelined lines in one write are framed (the per-line buffer copy is gone)."""
        data = b"NOOP\r\n" * 100000
        framer = LineFramer(512)
        framer.feed(data)
        count = 0
        while framer.nextLine() is not None:
            count += 1
        self.assertEqual(count, 100000)
        self.assertEqual(framer.pending(), 0)


def mutate(rng, data):
    """One seeded mutation: flip, insert, delete, duplicate or insert line ends."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        elif op == 2:
            del data[at:at + rng.randint(1, 20)]
        elif op == 3:
            data[at:at] = data[at:at + rng.randint(1, 60)] * rng.randint(1, 4)
        else:
            data[at:at] = rng.choice([b"\r\n", b"\n", b"\r", b"\r\r\n"])
    return bytes(data)


def fuzzFraming(testCase, seed, rounds):
    """
    Feed mutated inputs in random chunks; each must frame exactly as the same
    input fed whole, and every line must be within the limit with no LF in it.
    """
    rng = random.Random(seed)
    for _ in range(rounds):
        data = mutate(rng, SAMPLE)
        limit = rng.randint(2, 40)
        whole, _ = frame([data], limit)
        cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 6)))
        chunks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        pieces, _ = frame(chunks, limit)
        testCase.assertEqual(pieces, whole, (seed, data, cuts, limit))
        for line in whole:
            if line is not TOO_LONG:
                testCase.assertNotIn(b"\n", line)
                testCase.assertLessEqual(len(line) + 1, limit)


class FramingFuzzTests(unittest.TestCase):
    """
    A short seeded mutation fuzz (make fuzz runs a long one).
    """

    def test_fuzz(self):
        """Mutated inputs (2,000; MAILSTACK_FUZZ_ROUNDS in make fuzz) frame the same in chunks as whole."""
        rounds = int(os.environ.get("MAILSTACK_FUZZ_ROUNDS", "2000"))
        seed = int(os.environ.get("MAILSTACK_FUZZ_SEED", "20261206"))
        fuzzFraming(self, seed=seed, rounds=rounds)


class LongLineEdgesTests(unittest.TestCase):
    """
    With reportEnds (IMAP): the start of an over-long line, then its end and
    last octets, however the input is chunked.
    """

    DATA = b"a1 NOOP " + b"x" * 100 + b" {5+}\r\nhello" + b"b NOOP\r\n"

    def events(self, chunks):
        framer = LineFramer(40, reportEnds=True)
        out = []
        skip = 0  # the literal announced at the line's end, as IMAP drops it
        for chunk in chunks:
            framer.feed(chunk)
            while True:
                taken = min(skip, framer.pending())
                framer.consume(taken)
                skip -= taken
                if skip:
                    break
                line = framer.nextLine()
                if line is None:
                    break
                if line is TOO_LONG:
                    out.append(("long", framer.head[:8]))
                elif line is LONG_LINE_END:
                    out.append(("end", framer.tail))
                    skip = 5
                else:
                    out.append(("line", line))
        return out

    def test_edges(self):
        """Head and tail of an over-long line, split at every point: the same events."""
        expected = [("long", b"a1 NOOP "), ("end", (b"x" * 100 + b" {5+}")[-32:]),
                    ("line", b"b NOOP")]
        data = self.DATA
        for i in range(len(data) + 1):
            self.assertEqual(self.events([data[:i], data[i:]]), expected, i)
        self.assertEqual(self.events([data[i:i + 1] for i in range(len(data))]), expected)

    def test_noEndsByDefault(self):
        """Without reportEnds no LONG_LINE_END is given (SMTP, POP3)."""
        framer = LineFramer(10)
        framer.feed(b"y" * 30 + b"\r\nok\r\n")
        self.assertIs(framer.nextLine(), TOO_LONG)
        self.assertEqual(framer.nextLine(), b"ok")

    def test_peekSize(self):
        """peek(size) gives at most size octets."""
        framer = LineFramer(10)
        framer.feed(b"abcdef")
        self.assertEqual(framer.peek(4), b"abcd")
        framer.consume(4)
        self.assertEqual(framer.peek(10), b"ef")
