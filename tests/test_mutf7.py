"""
Tests for L{mailstack.storage.mutf7}, IMAP modified UTF-7.
"""

from twisted.trial.unittest import TestCase

from mailstack.storage import mutf7


class EncodeTests(TestCase):
    """
    L{mutf7.encode} writes the canonical RFC 3501 form.
    """

    def test_ascii(self):
        """Printable ASCII other than '&' is written as itself."""
        self.assertEqual(mutf7.encode("Sent Items/2024 ~x"), "Sent Items/2024 ~x")

    def test_ampersand(self):
        """'&' is written '&-'."""
        self.assertEqual(mutf7.encode("Tom & Jerry"), "Tom &- Jerry")
        self.assertEqual(mutf7.encode("&"), "&-")

    def test_rfcExample(self):
        """The example of RFC 3501 section 5.1.3 encodes as the RFC shows."""
        self.assertEqual(mutf7.encode("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e"),
                         "~peter/mail/&U,BTFw-/&ZeVnLIqe-")

    def test_rfc2060Example(self):
        """A run of non-ASCII characters is one base64 run (RFC 2060 example)."""
        self.assertEqual(mutf7.encode("\u65e5\u672c\u8a9e"), "&ZeVnLIqe-")

    def test_latin(self):
        """Accented Latin characters are encoded, ASCII around them is not."""
        self.assertEqual(mutf7.encode("Entw\u00fcrfe"), "Entw&APw-rfe")

    def test_emoji(self):
        """Characters outside the BMP are encoded as UTF-16 surrogate pairs."""
        self.assertEqual(mutf7.encode("\U0001f600"), "&2D3eAA-")

    def test_controlCharacters(self):
        """Control characters are not printable ASCII, so they are encoded."""
        self.assertEqual(mutf7.encode("a\tb"), "a&AAk-b")

    def test_loneSurrogate(self):
        """A string that is not valid Unicode cannot be encoded."""
        self.assertRaises(ValueError, mutf7.encode, "a\ud800b")


class DecodeTests(TestCase):
    """
    L{mutf7.decode} inverts L{mutf7.encode} and refuses anything not canonical.
    """

    def test_rfcExample(self):
        """The RFC 3501 example decodes to the Chinese and Japanese names."""
        self.assertEqual(mutf7.decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
                         "~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e")

    def test_ampersand(self):
        """'&-' decodes to '&'."""
        self.assertEqual(mutf7.decode("Tom &- Jerry"), "Tom & Jerry")

    def test_emoji(self):
        """A surrogate pair decodes to one character outside the BMP."""
        self.assertEqual(mutf7.decode("I &2D3eAA- mail"), "I \U0001f600 mail")

    def test_roundTrip(self):
        """Encoding then decoding gives back the original for varied strings."""
        for text in ["", "INBOX", "&&", "a&b\u00e9&", "\u00e9\u00e9\u00e9x\u00e9",
                     "\U0001f600\U0001f4e7 Post", "\u0000\u007f\u0080\uffff",
                     "Lists/Python & Twisted/\u65e5\u672c"]:
            self.assertEqual(mutf7.decode(mutf7.encode(text)), text)

    def test_badBase64Character(self):
        """A character outside the modified base64 alphabet is refused ('/' included)."""
        self.assertRaises(ValueError, mutf7.decode, "&U/BTFw-")
        self.assertRaises(ValueError, mutf7.decode, "&U!BTFw-")

    def test_unterminated(self):
        """An encoded run without the closing '-' is refused."""
        self.assertRaises(ValueError, mutf7.decode, "&ZeVnLIqe")
        self.assertRaises(ValueError, mutf7.decode, "abc&")

    def test_encodesPrintableASCII(self):
        """Base64 that encodes printable ASCII ('a' as '&AGE-') is not canonical."""
        self.assertRaises(ValueError, mutf7.decode, "&AGE-")
        self.assertRaises(ValueError, mutf7.decode, "&ACY-")

    def test_adjacentRuns(self):
        """Two encoded runs back to back should have been one: refused."""
        self.assertRaises(ValueError, mutf7.decode, "&U,A-&U,A-")

    def test_oddLength(self):
        """Base64 that decodes to an odd number of octets is not UTF-16."""
        self.assertRaises(ValueError, mutf7.decode, "&AAAA-")

    def test_truncatedBase64(self):
        """A base64 run whose length cannot be a whole number of octets is refused."""
        self.assertRaises(ValueError, mutf7.decode, "&A-")

    def test_nonZeroTrailingBits(self):
        """Leftover base64 bits must be zero, or two spellings would exist."""
        self.assertRaises(ValueError, mutf7.decode, "&APx-")
        self.assertEqual(mutf7.decode("&APw-"), "\u00fc")

    def test_loneSurrogate(self):
        """An unpaired UTF-16 surrogate is refused."""
        self.assertRaises(ValueError, mutf7.decode, "&2D0-")

    def test_rawNonASCII(self):
        """Non-ASCII or control characters are not allowed unencoded."""
        self.assertRaises(ValueError, mutf7.decode, "Entw\u00fcrfe")
        self.assertRaises(ValueError, mutf7.decode, "a\tb")

    def test_padding(self):
        """Standard base64 padding is not part of modified UTF-7."""
        self.assertRaises(ValueError, mutf7.decode, "&APw=-")
