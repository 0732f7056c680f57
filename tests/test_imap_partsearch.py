"""
Tests for L{mailstack.imap.partsearch}: a big text part searched a step at a
time gives exactly the answers of the whole-part path (L{partsearch.wholeMatches},
kept as the reference), and a SEARCH over one big part lets other sessions
be answered between its steps.
"""

import base64
import binascii
import codecs
import io
import itertools
import quopri
import random

from twisted.internet import task
from twisted.trial import unittest

from mailstack.imap import casemap, cooperative, partsearch
from tests.stores import everyStore
from tests.test_imap_server import IMAPTestMixin


class Part:
    """What the readers use of a parsed part: where its body starts and its size."""

    def __init__(self, headerEnd, size):
        self.headerEnd = headerEnd
        self.size = size


def run(steps):
    """Drive a generator of steps to its end: (its return value, how many steps it yielded)."""
    count = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value, count
        count += 1


def stepped(body, encoding, charset, needle, step, header=b"X: y\r\n\r\n"):
    """L{partsearch.partSteps}'s answer for a part holding C{body}, read C{step} octets at a time."""
    f = io.BytesIO(header + body + b"\r\n--after--\r\n")
    answer, _ = run(partsearch.partSteps(f, Part(len(header), len(body)), encoding, charset,
                                         needle, step))
    return answer


def whole(body, encoding, charset, needle):
    return partsearch.wholeMatches(body, encoding, charset, needle)


def referenceBase64(data):
    """What the whole path makes of base64 C{data}: (octets, failed)."""
    try:
        return base64.b64decode(b"".join(data.split()) + b"==", validate=False), False
    except binascii.Error:
        return b"", True


def feed(decoder, data, sizes):
    """Feed C{data} to a transfer decoder in pieces of the given sizes (cycled)."""
    out = []
    position = 0
    for size in itertools.cycle(sizes):
        piece = data[position:position + size]
        position += size
        final = position >= len(data)
        out.append(decoder.decode(piece, final))
        if final or decoder.done:
            return b"".join(out)


class Base64DecoderTests(unittest.TestCase):
    """
    L{partsearch.Base64Decoder} undoes base64 as the whole path does, pieces
    cut anywhere.
    """

    def check(self, data, sizes):
        decoder = partsearch.Base64Decoder()
        out = feed(decoder, data, sizes)
        expected, failed = referenceBase64(data)
        self.assertEqual(decoder.failed, failed, (data, sizes))
        if not failed:
            self.assertEqual(out, expected, (data, sizes))

    def test_everyShortInput(self):
        """Every string of up to 6 of 'Q', 'U', '=', LF, '*', 0xE9 decodes (or fails) as whole, cut at every octet."""
        for length in range(7):
            for chars in itertools.product([b"Q", b"U", b"=", b"\n", b"*", b"\xe9"], repeat=length):
                data = b"".join(chars)
                self.check(data, [1])
                self.check(data, [2, 3])

    def test_random(self):
        """Random base64 with padding, line breaks and stray characters decodes as whole in random pieces."""
        rng = random.Random(64)
        for _ in range(300):
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
            data = bytearray(base64.encodebytes(raw))
            for _ in range(rng.randrange(4)):
                data.insert(rng.randrange(len(data) + 1), rng.choice(b"=*\n QA"))
            self.check(bytes(data), [rng.randrange(1, 20) for _ in range(5)])

    def test_paddingEndsData(self):
        """What follows the padding is not read, as in binascii: a second base64 text is ignored."""
        decoder = partsearch.Base64Decoder()
        self.assertEqual(decoder.decode(b"QQ=") + decoder.decode(b"=QUFB"), b"A")
        self.assertTrue(decoder.done)
        self.assertFalse(decoder.failed)

    def test_lastQuantumOfOne(self):
        """A last quantum of a single character fails the whole part (read undecoded)."""
        decoder = partsearch.Base64Decoder()
        decoder.decode(b"QUFBQ")
        decoder.decode(b"", True)
        self.assertTrue(decoder.failed)


class QuotedPrintableDecoderTests(unittest.TestCase):
    """
    L{partsearch.QuotedPrintableDecoder} undoes quoted-printable as the
    whole path does, pieces cut anywhere.
    """

    def check(self, data, sizes):
        out = feed(partsearch.QuotedPrintableDecoder(), data, sizes)
        self.assertEqual(out, quopri.decodestring(data), (data, sizes))

    def test_everyShortInput(self):
        """Every string of up to 6 of '=', 'A', 'g', CR, LF, space decodes as whole, cut at every octet."""
        for length in range(7):
            for chars in itertools.product([b"=", b"A", b"g", b"\r", b"\n", b" "], repeat=length):
                data = b"".join(chars)
                self.check(data, [1])
                self.check(data, [2, 3])

    def test_random(self):
        """Encoded text with soft line breaks, broken escapes and bare CRs decodes as whole in random pieces."""
        rng = random.Random(81)
        for _ in range(300):
            raw = bytes(rng.choice(b"ab \t\r\n=\xe9\xff") for _ in range(rng.randrange(0, 300)))
            data = bytearray(quopri.encodestring(raw))
            for _ in range(rng.randrange(4)):
                data.insert(rng.randrange(len(data) + 1), rng.choice(b"=\r\nF"))
            self.check(bytes(data), [rng.randrange(1, 20) for _ in range(5)])


    def test_longLine(self):
        """A line of 200 KB without a line end is decoded a piece at a time, not held to its end."""
        data = quopri.encodestring(("caf\u00e9 na\u00efve " * 20000).encode("latin-1"),
                                   quotetabs=True).replace(b"=\n", b"")
        self.assertNotIn(b"\n", data)
        decoder = partsearch.QuotedPrintableDecoder()
        outs = [decoder.decode(data[i:i + 1000]) for i in range(0, len(data), 1000)]
        outs.append(decoder.decode(b"", True))
        self.assertEqual(b"".join(outs), quopri.decodestring(data))
        self.assertLess(max(len(out) for out in outs), 2000)

    def test_escapedCRHidesLine(self):
        """After "=" and CR, the rest of the line is dropped, however it is cut into pieces."""
        data = b"ab=\rhidden " * 50 + b"\nshown=\r\nmore"
        for size in (1, 2, 3, 7, 100):
            self.check(data, [size])


class NeedleTests(unittest.TestCase):
    """
    L{partsearch.Needle} finds a substring across the joins of the pieces.
    """

    def test_everySplit(self):
        """A needle is found wherever the text is cut, and not found when absent."""
        text = "abcSSdefKI\u0301gh"
        for needle in ["cSSd", "a", "h", "I\u0301", "SSdefKI\u0301gh", "xyz", "hh"]:
            for cuts in itertools.combinations(range(1, len(text)), 2):
                matcher = partsearch.Needle(needle)
                start = 0
                for cut in list(cuts) + [len(text)]:
                    matcher.feed(text[start:cut])
                    start = cut
                self.assertEqual(matcher.found, needle in text, (needle, cuts))


# Text whose characters fold to more or fewer characters, or combine.
TEXTS = [
    "Gr\u00fc\u00dfe aus M\u00fcnchen, Stra\u00dfe \u212a\u00e4se",  # sharp s, Kelvin sign
    "\ufb01ne \ufb02ow na\u0131\u0308ve Cafe\u0301 \u01c5 \u03a3\u03c3\u03c2",  # ligatures, combining, digraph
    "\ud55c\uad6d\uc5b4 \u65e5\u672c\u8a9e\u306e\u6587\u7ae0 \u30ab\u30bf\u30ab\u30ca",  # Hangul, CJK
    "plain ASCII words only, nothing to decode",
]

# charset -> text it can encode
CHARSETS = {
    "utf-8": TEXTS,
    "utf-16": TEXTS,
    "latin-1": ["caf\u00e9 na\u00efve fa\u00e7ade Stra\u00dfe \u00c9COLE \u00fcber d\u00e9j\u00e0"],
    "iso2022_jp": ["\u65e5\u672c\u8a9e\u306e\u6587\u7ae0 abc \u30ab\u30bf\u30ab\u30ca \uff21\uff22"],
    "shift_jis": ["\u65e5\u672c\u8a9e\u306e\u6587\u7ae0 abc \u30ab\u30bf\u30ab\u30ca"],
}


def transferEncode(encoding, data, rng):
    if encoding == b"base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if encoding == b"quoted-printable":
        return quopri.encodestring(data).replace(b"\n", b"\r\n")
    return data


def needlesIn(text, rng, count):
    """Folded needles: substrings of the text (folded), of its fold, and some absent."""
    folded = casemap.fold(text)
    needles = []
    for _ in range(count):
        start = rng.randrange(len(text))
        needles.append(casemap.fold(text[start:start + rng.randrange(1, 12)]))
        start = rng.randrange(len(folded))
        needles.append(folded[start:start + rng.randrange(1, 12)])
    needles += [casemap.fold("zq\u00dfx"), "\ufffd", casemap.fold(text[-3:] + text[:3])]
    return [needle for needle in needles if needle]


class EquivalenceTests(unittest.TestCase):
    """
    L{partsearch.partSteps} answers as L{partsearch.wholeMatches} does for
    every needle, every transfer encoding and charset, every cut.
    """

    def compare(self, body, encoding, charset, needles, steps):
        for needle in needles:
            expected = whole(body, encoding, charset, needle)
            for step in steps:
                self.assertEqual(stepped(body, encoding, charset, needle, step), expected,
                                 (body[:60], encoding, charset, needle, step))

    def test_needleAtEveryOffset(self):
        """A needle placed at every offset of the body, read in steps of 1 to 7 octets, is found exactly as whole."""
        needle = "Stra\u00dfe \u212a\u00e4"
        for charset in ["utf-8", "utf-16", "latin-1"]:
            if charset == "latin-1":
                needle = "Stra\u00dfe \u00e4"
            for encoding in [b"base64", b"quoted-printable", b"8bit"]:
                for offset in range(12):
                    text = "x" * offset + needle + " \u00e9nd"
                    body = transferEncode(encoding, text.encode(charset), None)
                    self.compare(body, encoding, charset,
                                 [casemap.fold(needle), casemap.fold(needle[1:]),
                                  casemap.fold(needle + "?")], range(1, 8))

    def test_randomMessages(self):
        """Random texts in UTF-8, UTF-16, Latin-1, ISO-2022-JP, Shift_JIS, in base64, QP, 8bit: same answers in any step."""
        rng = random.Random(5051)
        for charset, texts in sorted(CHARSETS.items()):
            for encoding in [b"base64", b"quoted-printable", b"8bit"]:
                for _ in range(3):
                    words = [rng.choice(texts) for _ in range(rng.randrange(1, 4))]
                    text = "\r\n".join(words)
                    body = transferEncode(encoding, text.encode(charset), rng)
                    self.compare(body, encoding, charset, needlesIn(text, rng, 4),
                                 [1, 2, 3, 5, 16, 61])

    def test_invalidText(self):
        """Octets invalid in the declared charset (or undeclared 8-bit) take the same fallbacks in steps as whole."""
        rng = random.Random(2047)
        samples = [
            ("utf-8", "Gr\u00fc\u00dfe".encode("utf-8") * 5 + b"\xff tail Gr\u00fc\u00dfe"),
            ("utf-8", "x\u00fc".encode("utf-8") * 10 + b"\xc3"),  # cut short at the end
            ("ascii", "caf\u00e9 au lait caf\u00e9".encode("latin-1")),
            ("ascii", "Gr\u00fc\u00dfe Gr\u00fc\u00dfe".encode("utf-8")),
            ("iso2022_jp", "\u65e5\u672c abc".encode("iso2022_jp") + b"\x1b$B\xff\xfe" + b" tail"),
            ("iso2022_jp", "Gr\u00fc\u00dfe aus M\u00fcnchen".encode("utf-8")),
            ("shift_jis", "\u65e5\u672c\u8a9e".encode("shift_jis") + b"\x81" + "Gr\u00fc\u00dfe".encode("utf-8")),
            ("utf-16", "odd length \u00e9".encode("utf-16") + b"\x00"),
            ("utf-16", "caf\u00e9".encode("utf-8")),
            ("cp1252", b"quote \x93hi\x94 and \x81 undefined caf\xe9"),
            ("iso8859-3", b"undefined \xa5 in Latin-3 \xe9t\xe9"),
            ("base64", "Gr\u00fc\u00dfe".encode("utf-8")),  # a codec, but not a text one
            ("rot_13", "caf\u00e9 Gr\u00fc\u00dfe".encode("latin-1")),
        ]
        for _ in range(20):
            samples.append((rng.choice(["utf-8", "latin-1", "shift_jis", "utf-16", "ascii"]),
                            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))))
        for charset, data in samples:
            text = partsearch.decodeText(data, partsearch.textCharset(charset))
            needles = needlesIn(text, rng, 3) + ["\ufffd", casemap.fold("Gr\u00fc\u00dfe")]
            for encoding in [b"8bit", b"base64", b"quoted-printable"]:
                body = transferEncode(encoding, data, rng)
                for needle in needles:
                    expected = whole(body, encoding, charset, needle)
                    for step in [1, 3, 64]:
                        self.assertEqual(stepped(body, encoding, charset, needle, step), expected,
                                         (charset, data, encoding, needle, step))

    def test_brokenBase64(self):
        """A base64 body that does not decode is searched undecoded, in steps as whole."""
        bodies = [b"QUFB\r\nQ\r\n", b"not base64 at all: Z\r\n", b"QUJD==\r\nREVG\r\n",
                  b"QU=JD\r\n", b"=\r\n" + base64.encodebytes(b"hidden needle")]
        for body in bodies:
            for needle in ["QUFB", "Q", "ABC", "DEF", "NOT BASE64", "HIDDEN", "REVG", "QU=J"]:
                expected = whole(body, b"base64", "utf-8", needle)
                for step in [1, 2, 3, 7, 64]:
                    self.assertEqual(stepped(body, b"base64", "utf-8", needle, step), expected,
                                     (body, needle, step))

    def test_nothingReadAfterPadding(self):
        """Once base64 padding ends the data, the rest of a big part is not read (nor searched)."""
        body = base64.encodebytes(b"short text") + b"X" * 100000
        self.assertTrue(whole(body, b"base64", "utf-8", "SHORT"))
        self.assertFalse(whole(body, b"base64", "utf-8", "XXX"))
        f = io.BytesIO(body)
        answer, count = run(partsearch.partSteps(f, Part(0, len(body)), b"base64", "utf-8",
                                                 "XXX", 100))
        self.assertFalse(answer)
        self.assertLess(count, 5)

    def test_stepsAreSmall(self):
        """A 200 KB base64 UTF-8 part read 4 KB at a time takes dozens of steps, each decoding little."""
        text = ("Gr\u00fc\u00dfe aus M\u00fcnchen " * 8000).encode("utf-8")
        body = base64.encodebytes(text)
        f = io.BytesIO(body)
        answer, count = run(partsearch.partSteps(f, Part(0, len(body)), b"base64", "utf-8",
                                                 "NOWHERE", 4096))
        self.assertFalse(answer)
        self.assertGreater(count, len(body) // 4096 - 2)


def rawReference(data, needle, chunk):
    """The one-step raw search of a part too big to decode: each chunk decoded as UTF-8 on its own."""
    tail = ""
    for start in range(0, len(data), chunk):
        text = tail + casemap.fold(data[start:start + chunk].decode("utf-8", "replace"))
        if needle in text:
            return True
        tail = text[-len(needle):]
    return False


class RawStepsTests(unittest.TestCase):
    """
    L{partsearch.rawSteps} answers as reading each raw chunk whole did,
    a multi-byte character cut by a chunk's end included.
    """

    def test_sameAnswers(self):
        """Raw UTF-8 with characters across chunk ends: the same answers in steps of 1 to 9 octets."""
        self.patch(partsearch, "RAW_CHUNK", 8)
        data = "ab\u00df\u00dfcd\u212aef\u00e9\u00e9\u00e9gh\ud55c\ud55c".encode("utf-8") * 3
        text = casemap.fold(data.decode("utf-8", "replace"))
        needles = {text[i:i + n] for i in range(len(text)) for n in (1, 2, 4)}
        needles |= {"\ufffd", "\ufffd\ufffd", "SSSS", "ZZ"}
        for needle in needles:
            expected = rawReference(data, needle, 8)
            for step in range(1, 10):
                answer, _ = run(partsearch.rawSteps(io.BytesIO(data), Part(0, len(data)),
                                                    needle, step))
                self.assertEqual(answer, expected, (needle, step))


class NotTextCharsetTests(IMAPTestMixin, unittest.TestCase):
    """
    A charset that names a Python codec of another kind (base64, rot13)
    is one SEARCH does not know: read as UTF-8, like any unknown charset.
    """

    def test_searchAnswered(self):
        """SEARCH BODY in a part declared charset=base64 with 8-bit text finds the word, no server error."""
        self.deliver(b"Subject: x\r\nContent-Type: text/plain; charset=base64\r\n\r\n"
                     b"caf\xe9 needle\r\n")
        self.deliver(b"Subject: y\r\nContent-Type: text/plain; charset=rot13\r\n\r\n"
                     + "Gr\u00fc\u00dfe needle\r\n".encode("utf-8"))
        self.select()
        self.assertEqual(self.send(b"a SEARCH BODY needle\r\n"),
                         b"* SEARCH 1 2\r\na OK SEARCH completed\r\n")
        self.assertEqual(self.send(b"b SEARCH CHARSET UTF-8 BODY {6}\r\n"), b"+ Ready for literal data\r\n")
        self.assertEqual(self.send("gr\u00fc\u00df".encode("utf-8") + b"\r\n"),
                         b"* SEARCH 2\r\nb OK SEARCH completed\r\n")


BIG = (b"From: alice@lab.test\r\nSubject: big\r\nContent-Type: text/plain; charset=utf-8\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\n"
       + base64.encodebytes(("Gr\u00fc\u00dfe aus M\u00fcnchen\r\n" * 300
                             + "die Nadel im Heuhaufen\r\n").encode("utf-8")).replace(b"\n", b"\r\n"))


class TurnClock(task.Clock):
    """
    A test clock whose L{turn} runs the calls due now, as one reactor turn
    does, and not the calls those schedule (C{advance} runs them too).
    """

    def turn(self):
        due = [call for call in self.calls if call.getTime() <= self.seconds()]
        for call in due:
            self.calls.remove(call)
            call.called = 1
            call.func(*call.args, **call.kw)


class SlicedPartTests(IMAPTestMixin, unittest.TestCase):
    """
    A SEARCH over one big text part runs in several slices: other sessions
    are answered between them.
    """

    def setUp(self):
        IMAPTestMixin.setUp(self)
        self.clock = TurnClock()
        self.server, self.transport = self.connect()
        self.patch(cooperative, "BURST", 0)  # one step per reactor turn
        self.patch(partsearch, "STEP", 256)
        self.deliver(BIG)

    def test_otherSessionAnsweredMidPart(self):
        """B's NOOP is answered while A's SEARCH is inside the one big part; A's answer comes later, right."""
        self.select()
        other = self.connect()
        self.select(other)
        self.assertEqual(self.send(b"a SEARCH BODY nadel\r\n"), b"")
        turns = 0
        while turns < 5:
            self.clock.turn()
            turns += 1
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.send(b"b NOOP\r\n", other), b"b OK NOOP completed\r\n")
        while not self.transport.value() and turns < 1000:
            self.clock.turn()
            turns += 1
        self.assertEqual(self.transport.value(), b"* SEARCH 1\r\na OK SEARCH completed\r\n")
        self.assertGreater(turns, len(BIG) // 256 // 2)

    def test_sortSlicedMidPart(self):
        """SORT with BODY goes through the big part in several slices too, and B's NOOP is answered meanwhile."""
        self.select()
        other = self.connect()
        self.select(other)
        self.assertEqual(self.send(b"a SORT (ARRIVAL) UTF-8 BODY nadel\r\n"), b"")
        for _ in range(5):
            self.clock.turn()
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.send(b"b NOOP\r\n", other), b"b OK NOOP completed\r\n")
        turns = 5
        while not self.transport.value() and turns < 1000:
            self.clock.turn()
            turns += 1
        self.assertEqual(self.transport.value(), b"* SORT 1\r\na OK SORT completed\r\n")
        self.assertGreater(turns, len(BIG) // 256 // 2)


everyStore(globals())
