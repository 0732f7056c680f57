"""
SEARCH BODY and TEXT over one text part, whole or in small steps.

L{wholeMatches} reads a part's octets at once, undoes its
Content-Transfer-Encoding, decodes its charset and folds it
(L{casemap.fold}) in one go. On a part of several megabytes that is a
third of a second and more of CPU in one reactor turn, so L{partSteps}
finds the same answer (exactly: L{wholeMatches} is its reference) by a
generator that reads, decodes, folds and matches L{STEP} octets at a time:

 - base64 (L{Base64Decoder}) and quoted-printable (L{QuotedPrintableDecoder})
   are undone piece by piece as C{binascii} undoes them whole, padding,
   stray characters and soft line breaks across pieces included;
 - the charset is decoded by Python's incremental decoders, so a character
   whose octets straddle two pieces is read whole;
 - the fold maps each character on its own, so folding the pieces is
   folding the whole, and the needle is looked for in what was folded with
   the end of the previous piece (L{Needle});
 - the whole-part fallbacks (a base64 body that does not decode is read as
   it is; text that is not valid in its charset is tried as UTF-8, then
   read with replacement characters) are decided as the whole path decides
   them, going over the part again when a fallback is taken.

L{rawSteps} does the same for parts too large to decode, which are searched
as raw UTF-8 in L{RAW_CHUNK}s as before.
"""

import base64
import binascii
import codecs
import quopri
import re
import sys

from mailstack.imap import casemap

# Octets read, and decoded octets decoded and folded, per step: a few ms of CPU.
STEP = 32 * 1024
# Parts larger than this are searched raw (L{rawSteps}) rather than decoded.
DECODE_LIMIT = 8 * 1024 * 1024
# The raw search decodes each chunk of this many octets on its own.
RAW_CHUNK = 1024 * 1024

# Transfer encodings whose bodies SEARCH reads; a body in any other is not
# searched, as in Dovecot, whose decoder reads the field in any header.
READABLE_ENCODINGS = frozenset([b"", b"7bit", b"8bit", b"binary", b"base64", b"quoted-printable"])

_BASE64_KEPT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_NOT_BASE64 = bytes(c for c in range(256) if c not in _BASE64_KEPT)
_NOT_PAD = re.compile(rb"[^=]")


# The whole-part path: the reference for the incremental one.

def transferDecode(encoding, data):
    """A part's octets with its Content-Transfer-Encoding undone; as they are if that fails."""
    try:
        if encoding == b"base64":
            return base64.b64decode(b"".join(data.split()) + b"==", validate=False)
        if encoding == b"quoted-printable":
            return quopri.decodestring(data)
    except (binascii.Error, ValueError):
        pass
    return data


def decodeText(data, charset):
    """Decode with the declared charset; undeclared 8-bit text is tried as UTF-8."""
    for candidate in (charset, "utf-8"):
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode(_fallbackCharset(charset), "replace")


def _fallbackCharset(charset):
    return charset if charset != "ascii" else "latin-1"


def wholeMatches(data, encoding, charset, needle):
    """Whether the part whose body octets are C{data} holds the folded C{needle}."""
    text = decodeText(transferDecode(encoding, data), textCharset(charset))
    return needle in casemap.fold(text)


# Incremental transfer decoders: decode(data, final) -> octets. After the
# final piece, C{failed} says the whole path would have read the part
# undecoded; C{settled} says no later input can change that (or the output).

class IdentityDecoder:
    """7bit, 8bit, binary: the octets as they are."""

    failed = False
    settled = True
    done = False

    def decode(self, data, final=False):
        return data


class QuotedPrintableDecoder:
    """
    Quoted-printable, as C{binascii.a2b_qp} undoes it whole. Each piece is
    decoded up to a point no escape or soft line break straddles: its last
    line end, or later, in a line, where the two octets before are not
    C{=} (an escape reads at most two octets after its C{=}), unless the
    line has a C{=} before a CR (which hides the rest of the line). The
    rest waits for the next piece.
    """

    failed = False
    settled = True
    done = False
    # How far back from a piece's end a cut inside a line is looked for.
    LOOK_BACK = 64

    def __init__(self):
        self._pending = []
        self._escapedCR = False  # the pending line holds "=" then CR

    def decode(self, data, final=False):
        if final:
            whole = b"".join(self._pending) + data
            self._pending = []
            return binascii.a2b_qp(whole)
        lineStart = data.rfind(b"\n") + 1
        if lineStart:
            escapedCR = b"=\r" in data[lineStart:]
        else:
            before = self._pending[-1][-1:] if self._pending else b""
            escapedCR = self._escapedCR or b"=\r" in before + data[:1] or b"=\r" in data
        cut = lineStart
        if not escapedCR:
            for position in range(len(data), max(lineStart, 1, len(data) - self.LOOK_BACK), -1):
                if data[position - 1] != 0x3d and data[position - 2] != 0x3d:
                    cut = position
                    break
        self._escapedCR = escapedCR and cut < len(data)
        if not cut:
            self._pending.append(data)
            return b""
        whole = b"".join(self._pending) + data[:cut]
        self._pending = [data[cut:]]
        return binascii.a2b_qp(whole)


class Base64Decoder:
    """
    Base64, as C{base64.b64decode(data + b"==", validate=False)} undoes it
    whole: characters outside the alphabet are skipped, a C{=} after one
    character of a quantum (or none) is ignored, one after three characters
    or two after two end the data; a last quantum of one character fails
    the whole part (C{failed}).
    """

    failed = False
    done = False

    def __init__(self):
        self._carry = b""  # the unfinished quantum's characters (fewer than 4)
        self._pad = False  # one "=" seen after two characters of the quantum

    @property
    def settled(self):
        return self.done

    def decode(self, data, final=False):
        if self.done:
            return b""
        clean = data.translate(None, _NOT_BASE64)
        if final:
            clean += b"=="
        pieces = [self._carry]
        quad = len(self._carry)
        position = 0
        while True:
            start = clean.find(b"=", position)  # (find is much faster than a regular expression)
            if start < 0:
                break
            afterPads = _NOT_PAD.search(clean, start)
            end = afterPads.start() if afterPads else len(clean)
            if start > position:
                pieces.append(clean[position:start])
                quad = (quad + start - position) % 4
                self._pad = False
            position = end
            if quad == 3 or (quad == 2 and (self._pad or end - start >= 2)):
                self.done = True
                self._carry = b""
                return binascii.a2b_base64(b"".join(pieces) + b"=" * (4 - quad))
            if quad == 2:
                self._pad = True
        if position < len(clean):
            pieces.append(clean[position:])
            self._pad = False
        alphabet = b"".join(pieces)
        whole = len(alphabet) - len(alphabet) % 4
        self._carry = alphabet[whole:]
        if final:
            self.failed = bool(self._carry)
            self.done = True
        return binascii.a2b_base64(alphabet[:whole])


TRANSFER_DECODERS = {b"base64": Base64Decoder, b"quoted-printable": QuotedPrintableDecoder}


class Needle:
    """A substring search over text given in pieces: found across their joins too."""

    def __init__(self, needle):
        self.needle = needle
        self.found = False
        self._keep = len(needle) - 1
        self._tail = ""

    def feed(self, text):
        text = self._tail + text
        if self.needle in text:
            self.found = True
        self._tail = text[len(text) - self._keep:] if self._keep < len(text) else text


class _UnmarkedDecoder(codecs.BufferedIncrementalDecoder):
    """
    UTF-16 or UTF-32 read as C{bytes.decode} reads them: in the order a
    byte order mark names, else in the machine's order. (Python's own
    incremental decoders refuse text without a mark.)
    """

    def __init__(self, errors="strict"):
        codecs.BufferedIncrementalDecoder.__init__(self, errors)
        self._order = 0  # 0: not known yet, -1: little-endian, 1: big-endian

    def _buffer_decode(self, data, errors, final):
        if self._order:
            decode = self.littleDecode if self._order < 0 else self.bigDecode
            return decode(data, errors, final)
        output, consumed, order = self.markedDecode(data, errors, 0, final)
        if order:
            self._order = order
        elif consumed >= self.unit:
            self._order = -1 if sys.byteorder == "little" else 1
        return output, consumed

    def reset(self):
        codecs.BufferedIncrementalDecoder.reset(self)
        self._order = 0

    def getstate(self):
        return (self.buffer, self._order)

    def setstate(self, state):
        self.buffer, self._order = state


class _UTF16Decoder(_UnmarkedDecoder):
    unit = 2
    markedDecode = staticmethod(codecs.utf_16_ex_decode)
    littleDecode = staticmethod(codecs.utf_16_le_decode)
    bigDecode = staticmethod(codecs.utf_16_be_decode)


class _UTF32Decoder(_UnmarkedDecoder):
    unit = 4
    markedDecode = staticmethod(codecs.utf_32_ex_decode)
    littleDecode = staticmethod(codecs.utf_32_le_decode)
    bigDecode = staticmethod(codecs.utf_32_be_decode)


def _incrementalDecoder(charset):
    """A strict incremental decoder of C{charset} that reads as C{bytes.decode} does."""
    name = codecs.lookup(charset).name
    if name == "utf-16":
        return _UTF16Decoder()
    if name == "utf-32":
        return _UTF32Decoder()
    return codecs.getincrementaldecoder(name)("strict")


def _pieces(f, start, size, step):
    """(octets, final) pairs: the C{size} octets at C{start} of C{f}, C{step} at a time."""
    position = start
    remaining = size
    while True:
        f.seek(position)
        data = f.read(min(step, remaining)) if remaining > 0 else b""
        position += len(data)
        remaining -= len(data)
        final = not data or remaining <= 0
        yield data, final
        if final:
            return


class _Outcome:
    """One reading of the part: was the needle found, did the charset fail, did the transfer."""

    def __init__(self, found, charsetFailed, transferFailed):
        self.found = found
        self.charsetFailed = charsetFailed
        self.transferFailed = transferFailed


def _readingSteps(f, part, encoding, charset, needle, step, strict, needFailure):
    """
    Read the part once: transfer-decode, decode as C{charset}, fold, match,
    one step at a time; returns an L{_Outcome}.

    @param strict: stop decoding at the first octets C{charset} cannot
        decode; else read them (and the rest) with replacement characters.
    @param needFailure: once the needle is found, decode on (without
        folding) to learn whether the charset fails.
    """
    transfer = TRANSFER_DECODERS.get(encoding, IdentityDecoder)()
    decoder = _incrementalDecoder(charset)
    matcher = Needle(needle)
    failed = False
    decoding = True
    for piece, final in _pieces(f, part.headerEnd, part.size, step):
        out = transfer.decode(piece, final)
        last = final or transfer.done
        if decoding:
            slices = [out[i:i + step] for i in range(0, len(out), step)] or [b""]
            for index, data in enumerate(slices):
                finalSlice = last and index == len(slices) - 1
                state = decoder.getstate()
                try:
                    text = decoder.decode(data, finalSlice)
                except UnicodeDecodeError:
                    failed = True
                    if strict:
                        decoding = False
                        break
                    decoder.setstate(state)
                    decoder.errors = "replace"
                    text = decoder.decode(data, finalSlice)
                if not matcher.found:
                    matcher.feed(casemap.fold(text))
                if matcher.found and (failed or not needFailure):
                    decoding = False
                    break
                if index < len(slices) - 1:
                    yield
        if last or (not decoding and transfer.settled):
            break
        yield
    return _Outcome(matcher.found, failed, transfer.failed)


def textCharset(charset):
    """
    C{charset}, or UTF-8 for a codec that does not decode octets to text
    (C{charset=base64}, C{rot13}): a charset Dovecot does not know, read
    as the others it does not know (L{searchfilter.partCharset}).
    """
    try:
        b"\x00".decode(charset, "ignore")  # (empty octets would not reach the codec)
    except LookupError:
        return "utf-8"
    except ValueError:
        pass
    return charset


def partSteps(f, part, encoding, charset, needle, step=STEP):
    """
    Whether the text part C{part} of the message file C{f} holds the folded
    C{needle}, as L{wholeMatches} answers, found by a generator that does a
    few ms of work per step (for L{mailstack.imap.cooperative.run}); its
    return value is the answer.

    @param encoding: the part's Content-Transfer-Encoding, lower case.
    @param charset: the Python codec its charset names.
    """
    charset = textCharset(charset)
    for transfer in ((encoding, b"") if encoding == b"base64" else (encoding,)):
        answer = yield from _charsetSteps(f, part, transfer, charset, needle, step)
        if answer is not None:
            return answer
    raise AssertionError("the undecoded octets cannot fail")


def _charsetSteps(f, part, encoding, charset, needle, step):
    """
    L{decodeText}'s choice made in readings of the part: the declared
    charset, else UTF-8, else the declared one with replacement characters.
    L{None} when the transfer encoding fails (the part is read undecoded).
    """
    fallback = _fallbackCharset(charset)
    # Read with replacement characters after the first failure: that is
    # the last choice's text when the fallback is this charset.
    first = yield from _readingSteps(
        f, part, encoding, charset, needle, step, strict=charset != fallback,
        needFailure=charset not in ("utf-8", "latin-1", "iso8859-1"))
    if first.transferFailed:
        return None
    if not first.charsetFailed:
        return first.found
    if charset == "utf-8":
        return first.found  # UTF-8 fails again; the fallback read is this one
    already = first.found and charset == fallback
    second = yield from _readingSteps(f, part, encoding, "utf-8", needle, step, strict=True,
                                      needFailure=not already)
    if second.transferFailed:
        return None
    if not second.charsetFailed:
        return second.found
    if charset == fallback:
        return first.found
    third = yield from _readingSteps(f, part, encoding, fallback, needle, step, strict=False,
                                     needFailure=False)
    return None if third.transferFailed else third.found


def rawSteps(f, part, needle, step=STEP):
    """
    Whether a part too large to decode holds C{needle} in its octets read
    as UTF-8, each L{RAW_CHUNK} decoded on its own (with replacement
    characters), in steps of C{step} octets; the return value is the answer.
    """
    matcher = Needle(needle)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    read = 0
    for piece, final in _pieces(f, part.headerEnd, part.size, step):
        while piece:
            room = RAW_CHUNK - read % RAW_CHUNK
            data, piece = piece[:room], piece[room:]
            read += len(data)
            endOfChunk = read % RAW_CHUNK == 0
            matcher.feed(casemap.fold(decoder.decode(data, endOfChunk)))
        if final:
            matcher.feed(casemap.fold(decoder.decode(b"", True)))
        if matcher.found:
            return True
        yield
    return False
