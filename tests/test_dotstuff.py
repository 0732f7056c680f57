"""
Tests for L{mailstack.protocol.dotstuff}, the one dot-stuffing codec (POP3
RETR/TOP, the relay client's DATA, the SMTP server's DATA reader): every case
whole, one byte at a time and split at every point, as h11 tests its codecs.
"""

import os
import random

from twisted.trial import unittest

from mailstack.protocol.dotstuff import DotStuffer, DotUnstuffer, stuff
from tests.test_framing import mutate

SAMPLE = b".first\r\nline\r\n..two\r\n.\r\nbare\nlone\rcr\r\n\r\n.\r\nQUIT\r\n"


def chunkings(data):
    """The same bytes whole, one byte at a time, and split in two at every point."""
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


def referenceStuffing(body):
    """Byte-stuffing of a CRLF body written line by line, independently of the codec."""
    lines = body.split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                    for line in lines) + b".\r\n"


def encode(chunks, normalise=False):
    stuffer = DotStuffer(normalise)
    return b"".join(stuffer.feed(chunk) for chunk in chunks) + stuffer.end()


def decode(chunks, maxLine=1000):
    """@return: C{(body, finished, unused, bare, tooLong)} after feeding every chunk."""
    unstuffer = DotUnstuffer(maxLine)
    body = b"".join(unstuffer.feed(chunk) for chunk in chunks)
    return body, unstuffer.finished, unstuffer.unused, unstuffer.bare, unstuffer.tooLong


class DotStufferTests(unittest.TestCase):
    """
    L{DotStuffer} as POP3 uses it: the stored message (CRLF, a lone CR kept)
    with every line-initial "." doubled and the terminator added.
    """

    def assertStuffs(self, body, expected):
        for chunks in chunkings(body):
            self.assertEqual(encode(chunks), expected, chunks)

    def test_firstLine(self):
        """A message starting with '.' gets it doubled, however it is chunked."""
        self.assertStuffs(b".first\r\nx\r\n", b"..first\r\nx\r\n.\r\n")

    def test_chunkBoundary(self):
        """A '.' at the start of a chunk that starts a line is doubled."""
        out = encode([b"a\r\n", b".b\r\n", b"c.\r", b"\n.", b".\r\n"])
        self.assertEqual(out, b"a\r\n..b\r\nc.\r\n...\r\n.\r\n")

    def test_dotLine(self):
        """A body line that is a single '.' (the final dot's look-alike) is sent as '..'."""
        self.assertStuffs(b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n")
        self.assertStuffs(b".\r\n", b"..\r\n.\r\n")

    def test_noFinalCRLF(self):
        """A message without a final CRLF gets one before the terminator."""
        self.assertStuffs(b"abc", b"abc\r\n.\r\n")
        self.assertStuffs(b"abc\r", b"abc\r\r\n.\r\n")
        self.assertEqual(stuff(b""), b".\r\n")

    def test_bareLineEndsKept(self):
        """A bare LF ends a line ('.' after it doubled); a lone CR does not; neither is changed."""
        self.assertStuffs(b"a\n.b\r.c\r\n", b"a\n..b\r.c\r\n.\r\n")

    def test_everySplit(self):
        """Any chunking of a tricky message stuffs the same as the line-wise reference."""
        message = b".\r\n..\r\nA\r\n.B\r\n\r\n.\r\n.C"
        self.assertStuffs(message, referenceStuffing(message))

    def test_stuff(self):
        """stuff() is feed() and end() in one call."""
        message = b".a\r\nb"
        self.assertEqual(stuff(message), encode([message]))


class NormalisingStufferTests(unittest.TestCase):
    """
    L{DotStuffer} with C{normalise}, as the relay client sends DATA: only
    CRLF on the wire, whatever the stored file holds and however it is read.
    """

    def assertStuffs(self, body, expected):
        for chunks in chunkings(body):
            self.assertEqual(encode(chunks, normalise=True), expected, chunks)
        for i in range(len(body) + 1):
            for j in range(i, len(body) + 1):
                self.assertEqual(encode([body[:i], body[i:j], body[j:]], normalise=True),
                                 expected, (i, j))

    def test_dotStuffing(self):
        """Leading dots are doubled, including on the first line and a '.' line."""
        self.assertStuffs(b".a\r\nb\r\n.\r\n", b"..a\r\nb\r\n..\r\n.\r\n")

    def test_everySplit(self):
        """Any split of the input gives the same bytes (CR, LF and dot across chunks)."""
        self.assertStuffs(b".x\r\n.y\r\nz\r\n\r\n..w\r\nlast",
                          b"..x\r\n..y\r\nz\r\n\r\n...w\r\nlast\r\n.\r\n")

    def test_bareLineEnds(self):
        """A bare LF or CR becomes CRLF (never a lone CR or LF on the wire)."""
        self.assertStuffs(b"a\nb\rc\r", b"a\r\nb\r\nc\r\n.\r\n")
        self.assertStuffs(b"a\n.b\r.c", b"a\r\n..b\r\n..c\r\n.\r\n")

    def test_crlfSplit(self):
        """A CRLF split across chunks stays one line end."""
        self.assertEqual(encode([b"a\r", b"\n.b\r", b"", b"\n"], normalise=True),
                         b"a\r\n..b\r\n.\r\n")

    def test_empty(self):
        """An empty message is just the terminator."""
        self.assertEqual(encode([], normalise=True), b".\r\n")
        self.assertEqual(stuff(b"", normalise=True), b".\r\n")


class DotUnstufferTests(unittest.TestCase):
    """
    L{DotUnstuffer}, the SMTP server's DATA reader: the same body, end and
    findings however the client's bytes are chunked.
    """

    def assertDecodes(self, data, *expected, maxLine=1000):
        for chunks in chunkings(data):
            self.assertEqual(decode(chunks, maxLine), expected, chunks)

    def test_unstuffs(self):
        """A line starting with '.' loses one dot; the final dot ends the body, not in it."""
        self.assertDecodes(b"..a\r\n...\r\nb.\r\n..\r\n.\r\n",
                           b".a\r\n..\r\nb.\r\n.\r\n", True, b"", False, False)

    def test_emptyBody(self):
        """A final dot right away is an empty body."""
        self.assertDecodes(b".\r\n", b"", True, b"", False, False)

    def test_unused(self):
        """What follows the final dot (pipelined commands) is left unused, never body."""
        self.assertDecodes(b"a\r\n.\r\nQUIT\r\n.\r\n",
                           b"a\r\n", True, b"QUIT\r\n.\r\n", False, False)

    def test_unfinished(self):
        """Without the final dot the body is not finished; a complete line is passed on."""
        self.assertDecodes(b"a\r\n.", b"a\r\n", False, b"", False, False)

    def test_bareLF(self):
        """A bare LF ends a line, is noted and becomes CRLF."""
        self.assertDecodes(b"a\nb\r\n.\r\n", b"a\r\nb\r\n", True, b"", True, False)

    def test_bareCR(self):
        """A lone CR inside a line is noted and becomes CRLF."""
        self.assertDecodes(b"a\rb\r\n.\r\n", b"a\r\nb\r\n", True, b"", True, False)

    def test_noSmuggling(self):
        """Only CRLF . CRLF ends the body: LF.LF, LF.CRLF and CRLF.LF do not."""
        for data in (b"a\n.\nb\r\n", b"a\n.\r\nb\r\n", b"a\r\n.\nb\r\n"):
            body, finished, unused, bare, tooLong = decode([data + b".\r\n"])
            self.assertTrue(finished)
            self.assertTrue(bare)
            self.assertIn(b"\r\nb\r\n", body)
            for chunks in chunkings(data + b".\r\n"):
                self.assertEqual(decode(chunks), (body, finished, unused, bare, tooLong))

    def test_crlfSplit(self):
        """CRLF and the final dot split in every way still end the body once, at the same place."""
        self.assertDecodes(b"x\r\n.\r\n.\r\n", b"x\r\n", True, b".\r\n", False, False)

    def test_roundTrip(self):
        """Decoding what the stuffer encodes gives the CRLF body back."""
        body = b".\r\n..\r\nA\r\n.B\r\n\r\n.\r\n.C\r\n"
        self.assertDecodes(stuff(body), body, True, b"", False, False)

    def test_longLine(self):
        """A line over maxLine is noted and passed on before its end; memory stays bounded."""
        line = b"." + b"x" * 99 + b"\r\n"
        self.assertDecodes(line + b"y\r\n.\r\n", line[1:] + b"y\r\n", True, b"", False, True,
                           maxLine=10)
        unstuffer = DotUnstuffer(10)
        out = b"".join(unstuffer.feed(b"x") for _ in range(1000))
        self.assertGreater(len(out), 1000 - 2 * 10 - 1)
        self.assertTrue(unstuffer.tooLong)

    def test_lineAtLimit(self):
        """A line of exactly maxLine octets (CRLF included) is not too long; one more is."""
        self.assertDecodes(b"abcdefgh\r\n.\r\n", b"abcdefgh\r\n", True, b"", False, False,
                           maxLine=10)
        self.assertDecodes(b"abcdefghi\r\n.\r\n", b"abcdefghi\r\n", True, b"", False, True,
                           maxLine=10)


def randomChunks(rng, data):
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 6)))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def fuzzDotStuffing(testCase, seed, rounds):
    """
    Mutated bodies in random chunks: each direction gives the same result as
    the body fed whole (the decoder once the body has ended); what the relay client sends holds only CRLF line ends
    and decodes back to the body with its line ends made CRLF, ending exactly
    at its terminator.
    """
    rng = random.Random(seed)
    for _ in range(rounds):
        data = mutate(rng, SAMPLE)
        chunks = randomChunks(rng, data)
        why = (seed, data, chunks)
        for normalise in (False, True):
            testCase.assertEqual(encode(chunks, normalise), encode([data], normalise), why)
        # decoded with an end, so that every finding is final (while a line
        # is unfinished, how much of it has been looked at depends on chunks)
        ended = data + b"\r\n.\r\n"
        maxLine = rng.randint(3, 40)
        whole = decode([ended], maxLine)
        pieces = decode(randomChunks(rng, ended), maxLine)
        if whole[4]:  # too long: the body is refused, only the findings count
            whole, pieces = whole[1:], pieces[1:]
        testCase.assertEqual(pieces, whole, why + (maxLine,))
        wire = encode([data], normalise=True)
        testCase.assertNotIn(b"\r", wire.replace(b"\r\n", b""), why)
        testCase.assertNotIn(b"\n", wire.replace(b"\r\n", b""), why)
        body, finished, unused, bare, _ = decode(randomChunks(rng, wire), len(wire) + 2)
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if lines and not lines.endswith(b"\n"):
            lines += b"\n"
        testCase.assertEqual((body, finished, unused, bare),
                             (lines.replace(b"\n", b"\r\n"), True, b"", False), why)


class DotStuffFuzzTests(unittest.TestCase):
    """
    A short seeded mutation fuzz of the codec (make fuzz runs a long one).
    """

    def test_fuzz(self):
        """Mutated bodies (2,000; MAILSTACK_FUZZ_ROUNDS in make fuzz) code the same in chunks as whole, and round-trip."""
        rounds = int(os.environ.get("MAILSTACK_FUZZ_ROUNDS", "2000"))
        seed = int(os.environ.get("MAILSTACK_FUZZ_SEED", "20261206"))
        fuzzDotStuffing(self, seed=seed, rounds=rounds)


class LineByLineUnstuffer(DotUnstuffer):
    """The decoder with its fast path switched off: every chunk line by line."""

    def _fastFeed(self, buffer):
        return None


class DotUnstufferFastPathTests(unittest.TestCase):
    """
    The decoder's fast path (whole CRLF lines handled in a few C passes) gives
    exactly what the line-by-line path gives, for the plain bodies it takes and
    the ones it must hand back.
    """

    def assertSame(self, chunks, maxLine=1000):
        results = []
        for kind in (DotUnstuffer, LineByLineUnstuffer):
            unstuffer = kind(maxLine)
            body = b"".join(unstuffer.feed(chunk) for chunk in chunks)
            results.append((body, unstuffer.finished, unstuffer.unused, unstuffer.bare,
                            unstuffer.tooLong))
        self.assertEqual(results[0], results[1], (chunks, maxLine))
        return results[0]

    def test_plainMessage(self):
        """A plain CRLF message in network-sized chunks decodes to itself, ending at its final dot."""
        body = b"".join(b"line %d of the message, plain text\r\n" % i for i in range(300))
        wire = body + b".\r\nMAIL FROM:<a@b>\r\n"
        for size in (1, 7, 100, 1460, 4096, 65536):
            chunks = [wire[i:i + size] for i in range(0, len(wire), size)]
            self.assertEqual(self.assertSame(chunks),
                             (body, True, b"MAIL FROM:<a@b>\r\n", False, False))

    def test_sameAsLineByLine(self):
        """Random bodies (dots, bare CR/LF, long lines, terminators) in random chunks decode as line by line."""
        rng = random.Random(16)
        pieces = [b"text\r\n", b".dot\r\n", b".\r\n", b"\r\n", b"bare\n", b"cr\r", b"x" * 30,
                  b"\r\n.\r\n", b"y" * 1200 + b"\r\n", b"..\r\n"]
        for _ in range(3000):
            data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
            for chunks in ([data], randomChunks(rng, data)):
                self.assertSame(chunks, maxLine=rng.choice([10, 40, 1000]))
