"""
Tests for L{mailstack.smtp.address}: MAIL FROM / RCPT TO arguments.
"""

from twisted.trial import unittest

from mailstack.smtp.address import PathSyntaxError, isDomain, parseParameters, parsePath


class ParsePathTests(unittest.TestCase):
    def test_plain(self):
        """<local@Domain> gives the address with the domain lower-cased."""
        self.assertEqual(parsePath(b"FROM", b"FROM:<Kim@Example.COM>"),
                         ("Kim@example.com", {}))

    def test_lenient(self):
        """A space after the colon and a path without brackets are accepted (hand typing)."""
        self.assertEqual(parsePath(b"TO", b"TO: <a@lab.test>")[0], "a@lab.test")
        self.assertEqual(parsePath(b"TO", b"TO:a@lab.test")[0], "a@lab.test")

    def test_nullSender(self):
        """MAIL FROM:<> is the null reverse-path; RCPT TO:<> is refused."""
        self.assertEqual(parsePath(b"FROM", b"FROM:<>"), ("", {}))
        self.assertRaises(PathSyntaxError, parsePath, b"TO", b"TO:<>")

    def test_postmaster(self):
        """RCPT TO:<postmaster> without a domain is allowed (RFC 5321 4.1.1.3)."""
        self.assertEqual(parsePath(b"TO", b"TO:<PostMaster>")[0], "postmaster")
        self.assertRaises(PathSyntaxError, parsePath, b"FROM", b"FROM:<postmaster>")

    def test_sourceRouteIgnored(self):
        """An obsolete source route is dropped (RFC 5321 appendix C)."""
        self.assertEqual(parsePath(b"TO", b"TO:<@a.example,@b.example:u@lab.test>")[0],
                         "u@lab.test")

    def test_needlessQuotesRemoved(self):
        """<"demo"@lab.test> is the same mailbox as <demo@lab.test> (RFC 5321 4.1.2)."""
        self.assertEqual(parsePath(b"TO", b'TO:<"demo"@lab.test>')[0], "demo@lab.test")
        self.assertEqual(parsePath(b"TO", b'TO:<"d\\emo"@lab.test>')[0], "demo@lab.test")

    def test_neededQuotesKept(self):
        """A quoted local part that needs its quotes keeps them."""
        self.assertEqual(parsePath(b"TO", b'TO:<"john doe"@lab.test>')[0],
                         '"john doe"@lab.test')

    def test_addressLiterals(self):
        """IPv4 literals need octets up to 255; IPv6 literals must parse."""
        self.assertEqual(parsePath(b"TO", b"TO:<x@[192.0.2.1]>")[0], "x@[192.0.2.1]")
        for bad in (b"TO:<x@[999.1.1.1]>", b"TO:<x@[IPv6:zz::1]>", b"TO:<x@[1.2.3]>"):
            self.assertRaises(PathSyntaxError, parsePath, b"TO", bad)
        self.assertTrue(isDomain(b"[IPv6:2001:db8::1]"))

    def test_errors(self):
        """Malformed paths raise PathSyntaxError with a reason fit for 501."""
        for bad in (b"TO:<a@>", b"TO:<@lab.test>", b"TO:<a b@lab.test>", b"TO:<a@b@c>",
                    b"TO:<a..b@lab.test>", b"FROM:<a@lab.test>", b"TO:<\xc3\xa9@lab.test>",
                    b"TO:<a@-bad-.test>", b"TO:<" + b"a" * 65 + b"@lab.test>"):
            self.assertRaises(PathSyntaxError, parsePath, b"TO", bad)


class ParametersTests(unittest.TestCase):
    def test_parameters(self):
        """KEY=VALUE and bare KEY, upper-cased keys, in order."""
        self.assertEqual(list(parseParameters(b"size=100 BODY=8BITMIME SMTPUTF8").items()),
                         [("SIZE", "100"), ("BODY", "8BITMIME"), ("SMTPUTF8", None)])

    def test_repeatedOrMalformed(self):
        """A repeated or malformed parameter is a syntax error."""
        self.assertRaises(PathSyntaxError, parseParameters, b"SIZE=1 size=2")
        self.assertRaises(PathSyntaxError, parseParameters, b"=x")
        self.assertRaises(PathSyntaxError, parseParameters, b"SIZE=a=b=")
