"""
Tests for L{mailstack.storage.crlf}: bare LF to CRLF as data streams through.
"""

import io

from twisted.trial.unittest import TestCase

from mailstack.storage import crlf
from tests.test_maildir import ChunkedSource


class ToCRLFTests(TestCase):
    """
    L{crlf.toCRLF}, one chunk at a time.
    """

    def test_bareLF(self):
        """Bare LFs become CRLF; CRLF and lone CR are kept."""
        self.assertEqual(crlf.toCRLF(b"a\nb\r\nc\rd\n", False), (b"a\r\nb\r\nc\rd\r\n", False))

    def test_splitCRLF(self):
        """An LF opening a chunk after one that ended in CR completes a CRLF."""
        first, afterCR = crlf.toCRLF(b"a\r", False)
        self.assertEqual((first, afterCR), (b"a\r", True))
        self.assertEqual(crlf.toCRLF(b"\nb\n", afterCR), (b"\nb\r\n", False))
        self.assertEqual(crlf.toCRLF(b"\nb", False), (b"\r\nb", False))

    def test_emptyChunk(self):
        """An empty chunk changes nothing, not even the CR state."""
        self.assertEqual(crlf.toCRLF(b"", True), (b"", True))
        self.assertEqual(crlf.toCRLF(b"", False), (b"", False))


class ReferenceTests(TestCase):
    def test_sameAsTheDefinition(self):
        """Every bare LF becomes CRLF and nothing else changes (CRLF and a lone CR
        kept), on random mixes of CR, LF, dots and text, split at random points:
        the same as the definition, a look-behind regular expression."""
        import random
        import re
        definition = re.compile(rb"(?<!\r)\n")
        rng = random.Random(1939)
        for _ in range(3000):
            data = bytes(rng.choice(b"ab\r\n.") for _ in range(rng.randint(0, 40)))
            cut = rng.randint(0, len(data))
            first, afterCR = crlf.toCRLF(data[:cut], False)
            second, _ = crlf.toCRLF(data[cut:], afterCR)
            self.assertEqual(first + second, definition.sub(b"\r\n", data), data)


    def test_everyShortString(self):
        """Every string of up to seven octets of CR, LF and text converts as the definition says."""
        import itertools
        import re
        definition = re.compile(rb"(?<!\r)\n")
        for length in range(8):
            for octets in itertools.product(b"\r\na", repeat=length):
                data = bytes(octets)
                self.assertEqual(crlf.toCRLF(data, False)[0], definition.sub(b"\r\n", data),
                                 data)


class CopyTests(TestCase):
    """
    L{crlf.copyAsCRLF} and L{crlf.wireSize}.
    """

    DATA = b"a\r\nb\nc\r\n\r\nd\re\n\nf"
    CONVERTED = b"a\r\nb\r\nc\r\n\r\nd\re\r\n\r\nf"

    def test_copyAnyChunking(self):
        """The copy is the same whatever the source's read sizes; its size is returned."""
        for size in (1, 2, 3, 5, 64):
            out = io.BytesIO()
            self.assertEqual(crlf.copyAsCRLF(ChunkedSource(self.DATA, size), out),
                             len(self.CONVERTED))
            self.assertEqual(out.getvalue(), self.CONVERTED)

    def test_readsInChunks(self):
        """The source is asked for CHUNK_SIZE bytes at a time."""
        source = ChunkedSource(b"x" * 200000, crlf.CHUNK_SIZE)
        crlf.copyAsCRLF(source, io.BytesIO())
        self.assertEqual(set(source.reads), {crlf.CHUNK_SIZE})

    def test_wireSize(self):
        """wireSize is the file's size in CRLF form, across chunk boundaries."""
        path = self.mktemp()
        data = (b"x" * (crlf.CHUNK_SIZE - 1) + b"\r\n") + b"line\n" * 1000
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(crlf.wireSize(path), len(data) + 1000)


class CRLFReaderTests(TestCase):
    """
    L{crlf.CRLFReader}: an LF file read, sought and told in CRLF positions.
    """

    BODY = b"".join(b"line %d\n" % (n,) for n in range(20000))
    EXPECTED = BODY.replace(b"\n", b"\r\n")

    def reader(self):
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(self.BODY)
        return crlf.CRLFReader(open(path, "rb"), len(self.EXPECTED))

    def test_readAll(self):
        """Reading to the end gives the CRLF form, in pieces no larger than asked."""
        with io.BufferedReader(self.reader(), crlf.CHUNK_SIZE) as f:
            chunks = iter(lambda: f.read(4096), b"")
            pieces = list(chunks)
        self.assertTrue(all(len(piece) <= 4096 for piece in pieces))
        self.assertEqual(b"".join(pieces), self.EXPECTED)

    def test_seekAndTell(self):
        """Seeking forward, backward and from the end lands on CRLF positions."""
        with self.reader() as f:
            self.assertEqual(f.read(8), b"line 0\r\n")
            self.assertEqual(f.tell(), 8)
            self.assertEqual(f.seek(100000), 100000)
            self.assertEqual(f.read(10), self.EXPECTED[100000:100010])
            self.assertEqual(f.seek(3), 3)
            self.assertEqual(f.read(5), b"e 0\r\n")
            self.assertEqual(f.seek(-4, io.SEEK_CUR), 4)
            f.seek(-10, io.SEEK_END)
            self.assertEqual(f.read(), self.EXPECTED[-10:])
            self.assertRaises(ValueError, f.seek, -1)

    def test_closeClosesFile(self):
        """Closing the reader closes the file under it."""
        reader = self.reader()
        underlying = reader._f
        reader.close()
        self.assertTrue(reader.closed)
        self.assertTrue(underlying.closed)
