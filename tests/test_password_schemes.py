"""
The password schemes Dovecot users bring: C{{SHA512-CRYPT}} and
C{{SHA256-CRYPT}} (L{mailstack.auth.shacrypt}) and C{{ARGON2ID}}, beside
C{{BLF-CRYPT}} and C{{PLAIN}} (L{mailstack.auth.passwords}): the
specification's vectors, hashes made by Dovecot's C{doveadm pw} and by
OpenSSL, logins through the user directory, malformed hashes, what a failure
costs, and C{mailstack user add --scheme}.
"""

import os
import shutil
import subprocess

import argon2.low_level
import bcrypt
from twisted.internet import defer, reactor
from twisted.python import threadable
from twisted.trial import unittest

from mailstack.auth import passwords, shacrypt
from mailstack.auth.directory import UserDirectory
from mailstack.auth.passwords import InvalidPassword, User, costKind
from mailstack.auth.sqlitedb import SQLiteUsers
from mailstack.auth.userdb import PasswdFile
from tests.test_cli import CLITestCase

# Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512": (setting,
# password, result). Salts are cut at 16 characters, rounds clamped to 1000.
LONG_TEXT = ("a very much longer text to encrypt.  This one even stretches over more"
             "than one line.")
SPEC_VECTORS = [
    ("$5$saltstring", "Hello world!",
     "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
    ("$5$rounds=10000$saltstringsaltstring", "Hello world!",
     "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"),
    ("$5$rounds=5000$toolongsaltstring", "This is just a test",
     "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5"),
    ("$5$rounds=1400$anotherlongsaltstring", LONG_TEXT,
     "$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1"),
    ("$5$rounds=77777$short", "we have a short salt string but not a short password",
     "$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/"),
    ("$5$rounds=123456$asaltof16chars..", "a short string",
     "$5$rounds=123456$asaltof16chars..$gP3VQ/6X7UUEW3HkBn2w1/Ptq2jxPyzV/cZKmF/wJvD"),
    ("$5$rounds=10$roundstoolow", "the minimum number is still observed",
     "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC"),
    ("$6$saltstring", "Hello world!",
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdF"
     "CoEOfaS35inz1"),
    ("$6$rounds=10000$saltstringsaltstring", "Hello world!",
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0"
     "Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    ("$6$rounds=5000$toolongsaltstring", "This is just a test",
     "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZx"
     "Uhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"),
    ("$6$rounds=1400$anotherlongsaltstring", LONG_TEXT,
     "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3Cm"
     "Ls66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"),
    ("$6$rounds=77777$short", "we have a short salt string but not a short password",
     "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeO"
     "xFmtlcGZelFl5CxtgfiAc0"),
    ("$6$rounds=123456$asaltof16chars..", "a short string",
     "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycUL"
     "evoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"),
    ("$6$rounds=10$roundstoolow", "the minimum number is still observed",
     "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58ja"
     "TfF4ZEQpyUNGc0dqbpBYYBaHHrsX."),
]

# Made by Dovecot 2.3.19's `doveadm pw -s SCHEME [-r ROUNDS] -p PASSWORD`.
DOVEADM_PASSWORD = "dovecot secret"
DOVEADM_HASHES = [
    "{SHA512-CRYPT}$6$3.GTFikc/TCJvB7Y$70u3lNYyIP.lfdefp/eCRJ3.HTbtGKsY34RAXyXXr8kazQXJLFWtnt"
    "E5OVO0k5A8I80x9q6NfxAea9IJ/d7ev.",
    "{SHA512-CRYPT}$6$rounds=20000$5iPVmbDKjFH018Au$hsf/dXymyBopmgcz8KQm1Kgq1YYQOEcb66NkQsz3H"
    "eIiMVA9qEfFCk2C/t6pvVcC2c1PM6xAwBqf8b78ksuSU/",
    "{SHA256-CRYPT}$5$Q8BA/Lmg18bq75KA$10IircYoJwk0b67z4MqOcyV.pQ4bRQusD1S12xJkHr3",
    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$ompTbNZ4tDP93eRaAbWkNw$d8zpfBcd+6siXpgY//vfAyzN4"
    "R7YXtRa6CHvSFt6SIQ",
]
# doveadm pw -s SHA512-CRYPT -p 'pässwörd': UTF-8 bytes are hashed.
DOVEADM_UTF8 = ("pässwörd", "$6$K64V7ElWewbDdBxo$Sl2Xg4sTvbyzkcqPlz33JBG.VgCAWhA0lD.srxWPiiT3k"
                "jZ1stKOtbAHx/i4LcMcX.th.1ESqkHf82427/kBW.")
# `openssl passwd -6 'openssl secret'` and `openssl passwd -5 -salt abcdefgh ...`.
OPENSSL_PASSWORD = "openssl secret"
OPENSSL_HASHES = [
    "$6$kBJplpMCfImzNBxN$oIUp5jp4070y7HGJRovm20lWqVSnHYp5fkPp7l5RGDyWsfJorr20dab.dpykZV7cFeMQLd"
    "7Iwp6lPUo4.BnhH1",
    "$5$abcdefgh$5YAc8cah9EmUGMJrT.3XuR95e0SnrVBEtH/rCm7JhL.",
]

# Argon2id parameters light enough for tests that do not talk to Dovecot.
LIGHT_ARGON2 = {"argon2TimeCost": 1, "argon2MemoryCost": 1024}


def doveadm():
    """The doveadm program, or L{None}."""
    return shutil.which("doveadm") or shutil.which("doveadm", path="/usr/bin:/usr/sbin")


def run(*argv):
    """C{(exit status, stdout)} of a program, with no stdin."""
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    return done.returncode, done.stdout.strip()


def splitField(field):
    """C{{SCHEME}secret} -> C{(scheme, secret)}."""
    scheme, _, secret = field[1:].partition("}")
    return scheme, secret


class ShaCryptTests(unittest.TestCase):
    """L{shacrypt}: the published algorithm, byte for byte."""

    def test_specificationVectors(self):
        """Every vector of the SHA-crypt specification comes out exactly."""
        for setting, password, expected in SPEC_VECTORS:
            self.assertEqual(shacrypt.shaCrypt(password.encode(), setting), expected, setting)

    def test_specificationHashesVerify(self):
        """The specification's hashes verify with their password, not with another."""
        for _, password, expected in SPEC_VECTORS:
            self.assertTrue(shacrypt.verify(password.encode(), expected), expected)
            self.assertFalse(shacrypt.verify(password.encode() + b"!", expected), expected)

    def test_opensslHashes(self):
        """Hashes OpenSSL wrote ($6$ and $5$) verify."""
        for hashed in OPENSSL_HASHES:
            self.assertTrue(shacrypt.verify(OPENSSL_PASSWORD.encode(), hashed), hashed)
            self.assertFalse(shacrypt.verify(b"openssl Secret", hashed), hashed)

    def test_opensslNow(self):
        """The installed `openssl passwd -6/-5` agrees with us over several password lengths."""
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("openssl not installed")
        for length in (1, 31, 32, 33, 63, 64, 65, 200):
            password = ("p%d-" % (length,) * length)[:length]
            for variant in ("5", "6"):
                status, hashed = run("openssl", "passwd", "-" + variant, "-salt", "saltsalt",
                                     password)
                self.assertEqual(status, 0)
                self.assertEqual(shacrypt.shaCrypt(password.encode(), "$%s$saltsalt" % (variant,)),
                                 hashed, (variant, length))

    def test_roundsHonoured(self):
        """rounds= in a hash is the number of rounds used, and part of what is compared."""
        hashed = shacrypt.newHash(b"pw", "6", rounds=1234)
        self.assertTrue(hashed.startswith("$6$rounds=1234$"))
        self.assertEqual(shacrypt.parseHash(hashed), ("6", 1234))
        self.assertTrue(shacrypt.verify(b"pw", hashed))
        # The same salt and digest claiming other rounds is another hash.
        self.assertFalse(shacrypt.verify(b"pw", hashed.replace("rounds=1234", "rounds=1235")))
        self.assertFalse(shacrypt.verify(b"pw", hashed.replace("$rounds=1234", "")))

    def test_newHashDefault(self):
        """A new hash without rounds is doveadm's form: 16-character salt, 5000 rounds."""
        hashed = shacrypt.newHash(b"pw", "5")
        self.assertRegex(hashed, r"^\$5\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{43}$")
        self.assertEqual(shacrypt.parseHash(hashed), ("5", 5000))
        self.assertNotEqual(shacrypt.newHash(b"pw", "5"), hashed)

    def test_malformed(self):
        """Hashes crypt(3) could not have written are refused, not guessed at."""
        good = SPEC_VECTORS[7][2]
        for bad in ["", "$6$", "$6$salt", "$7$salt$" + good[-86:], good[:-1], good + "x",
                    good[:-1] + "!", "$6$rounds=10$roundstoolow$" + good[-86:],
                    "$6$rounds=01000$salt$" + good[-86:], "$6$rounds=$salt$" + good[-86:],
                    "$6$saltsaltsaltsaltX$" + good[-86:], "$6$sält$" + good[-86:],
                    "$5$saltstring$" + good[-86:]]:
            self.assertIsNone(shacrypt.parseHash(bad), bad)
            self.assertRaises(ValueError, shacrypt.verify, b"Hello world!", bad)

    def test_constantTimeComparison(self):
        """The computed hash is compared with hmac.compare_digest."""
        calls = []
        original = shacrypt.hmac.compare_digest
        self.patch(shacrypt.hmac, "compare_digest",
                   lambda a, b: calls.append((a, b)) or original(a, b))
        expected = SPEC_VECTORS[7][2]
        self.assertTrue(shacrypt.verify(b"Hello world!", expected))
        self.assertEqual(calls, [(expected.encode(), expected.encode())])

    def test_passwordLengthLimit(self):
        """Passwords of 512 bytes or more are refused, as libxcrypt (Dovecot's crypt) does."""
        hashed = shacrypt.newHash(b"x" * 511, "6", rounds=1000)
        self.assertTrue(shacrypt.verify(b"x" * 511, hashed))
        self.assertRaises(ValueError, shacrypt.verify, b"x" * 512, hashed)


class DovecotHashTests(unittest.TestCase):
    """Hashes made by Dovecot verify here, and ours verify in Dovecot."""

    def setUp(self):
        self.users = PasswdFile(self.mktemp(), "lab.test", 4)

    def test_doveadmHashes(self):
        """Stored doveadm hashes (SHA512-CRYPT, with rounds, SHA256-CRYPT, ARGON2ID) verify."""
        for field in DOVEADM_HASHES:
            scheme, secret = splitField(field)
            self.assertTrue(self.users.matchesSecret(scheme, secret, DOVEADM_PASSWORD), field)
            self.assertFalse(self.users.matchesSecret(scheme, secret, "dovecot Secret"), field)

    def test_doveadmUTF8(self):
        """A non-ASCII password is its UTF-8 bytes, as Dovecot hashes it."""
        password, hashed = DOVEADM_UTF8
        self.assertTrue(self.users.matchesSecret("SHA512-CRYPT", hashed, password))

    def doveadm(self):
        program = doveadm()
        if program is None:
            raise unittest.SkipTest("doveadm not installed (Debian package dovecot-core)")
        return program

    def test_doveadmNow(self):
        """Hashes the installed doveadm makes now verify, for every scheme it shares with us."""
        program = self.doveadm()
        for scheme in ("SHA512-CRYPT", "SHA256-CRYPT", "ARGON2ID", "BLF-CRYPT"):
            status, field = run(program, "pw", "-s", scheme, "-p", "now secret")
            self.assertEqual(status, 0, scheme)
            self.assertEqual(splitField(field)[0], scheme)
            self.assertTrue(self.users.matchesSecret(scheme, splitField(field)[1], "now secret"),
                            field)
            self.assertFalse(self.users.matchesSecret(scheme, splitField(field)[1], "now"), field)

    def test_doveadmAcceptsOurs(self):
        """`doveadm pw -t` accepts the hashes we make, and refuses them a wrong password."""
        program = self.doveadm()
        for scheme in ("SHA512-CRYPT", "SHA256-CRYPT", "ARGON2ID"):
            field = "{%s}%s" % (scheme, self.users.hashSecret(scheme, "our secret"))
            self.assertEqual(run(program, "pw", "-t", field, "-p", "our secret")[0], 0, field)
            self.assertNotEqual(run(program, "pw", "-t", field, "-p", "our Secret")[0], 0, field)

    def test_argon2Form(self):
        """A new ARGON2ID hash has doveadm's parameters: m=65536, t=3, p=1, 16+32 bytes."""
        hashed = self.users.hashSecret("ARGON2ID", "pw")
        self.assertRegex(hashed, r"^\$argon2id\$v=19\$m=65536,t=3,p=1\$[A-Za-z0-9+/]{22}"
                                 r"\$[A-Za-z0-9+/]{43}$")
        self.assertEqual(costKind("ARGON2ID", hashed), ("ARGON2ID", 3, 65536, 1))


class PasswdFileSchemeTests(unittest.TestCase):
    """Users of each scheme in a passwd-file log in through the user directory."""

    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "users")
        lines = ["%s@lab.test:%s:::::\n" % (scheme.lower(), field) for scheme, field in (
            (splitField(field)[0] + ("-rounds" if "rounds=" in field else ""), field)
            for field in DOVEADM_HASHES)]
        with open(self.path, "w") as f:
            f.write("".join(lines) + "plain@lab.test:{PLAIN}dovecot secret:::::\n")
        self.users = PasswdFile(self.path, "lab.test", 4)
        self.directory = UserDirectory(self.users, reactor)

    @defer.inlineCallbacks
    def test_eachSchemeLogsIn(self):
        """A passwd-file user of each scheme logs in with the password and not with another."""
        names = ["sha512-crypt", "sha512-crypt-rounds", "sha256-crypt", "argon2id", "plain"]
        for name in names:
            self.assertTrue((yield self.directory.verifyPassword(name, DOVEADM_PASSWORD)), name)
            self.assertFalse((yield self.directory.verifyPassword(name, "dovecot")), name)
        self.assertEqual({user.address.split("@")[0] for user in self.users.listUsers()},
                         set(names))

    @defer.inlineCallbacks
    def test_checksRunOffTheReactor(self):
        """SHA-crypt and Argon2id checks run in the thread pool, never in the reactor thread."""
        seen = []
        shaVerify, argonVerify = shacrypt.verify, argon2.low_level.verify_secret

        def recordSha(password, hashed):
            seen.append(("sha", threadable.isInIOThread()))
            return shaVerify(password, hashed)

        def recordArgon(hashed, password, kind):
            seen.append(("argon2", threadable.isInIOThread()))
            return argonVerify(hashed, password, kind)
        self.patch(shacrypt, "verify", recordSha)
        self.patch(argon2.low_level, "verify_secret", recordArgon)
        self.assertTrue((yield self.directory.verifyPassword("sha512-crypt", DOVEADM_PASSWORD)))
        self.assertTrue((yield self.directory.verifyPassword("argon2id", DOVEADM_PASSWORD)))
        self.assertEqual(seen, [("sha", False), ("argon2", False)])

    def test_challengeMechanismsStayPlainOnly(self):
        """SHA-crypt and Argon2id users give CRAM-MD5/APOP no secret and withdraw their offer."""
        for name in ("sha512-crypt", "sha256-crypt", "argon2id"):
            self.assertIsNone(self.users.plaintextSecret(name), name)
        self.assertEqual(self.users.plaintextSecret("plain"), DOVEADM_PASSWORD)
        self.assertFalse(self.users.allPlaintextSecrets())

    def test_setPasswordKeepsScheme(self):
        """A password change keeps a SHA512-CRYPT or ARGON2ID user's scheme."""
        self.patch(PasswdFile, "argon2MemoryCost", 1024)
        self.assertEqual(self.users.setPassword("sha512-crypt", "new one"), "SHA512-CRYPT")
        self.assertEqual(self.users.setPassword("argon2id", "new one"), "ARGON2ID")
        for name in ("sha512-crypt", "argon2id"):
            self.assertTrue(self.users.verifyPassword(name, "new one"), name)
            self.assertFalse(self.users.verifyPassword(name, DOVEADM_PASSWORD), name)

    def test_badHashesRefused(self):
        """Malformed SHA-crypt and Argon2id hashes, or one of another scheme, fail the login."""
        sha = splitField(DOVEADM_HASHES[0])[1]
        argon = splitField(DOVEADM_HASHES[3])[1]
        bad = [("SHA512-CRYPT", sha[:-2]), ("SHA512-CRYPT", sha.replace("$6$", "$5$")),
               ("SHA256-CRYPT", sha), ("SHA512-CRYPT", "$6$rounds=999$salt$" + sha[-86:]),
               ("SHA512-CRYPT", ""), ("ARGON2ID", argon.replace("argon2id", "argon2i")),
               ("ARGON2ID", argon.replace("m=65536", "m=many")), ("ARGON2ID", sha),
               ("ARGON2ID", "$argon2id$v=19$m=65536,t=3,p=1$ompTbNZ4tDP93eRaAbWkNw$ä")]
        with open(self.path, "w") as f:
            f.write("".join("u%d@lab.test:{%s}%s:::::\n" % (number, scheme, secret)
                            for number, (scheme, secret) in enumerate(bad)))
        for number, (scheme, secret) in enumerate(bad):
            self.assertFalse(self.users.verifyPassword("u%d" % (number,), DOVEADM_PASSWORD),
                             (scheme, secret))
            self.assertIsNone(costKind(scheme, secret), (scheme, secret))
        # Well-formed, but not what the password makes.
        self.assertFalse(self.users.matchesSecret("ARGON2ID", argon[:-4], DOVEADM_PASSWORD))


class FailureCostTests(unittest.TestCase):
    """
    What a failure spends follows the most common kind of stored hash, of any
    scheme, so an unknown user costs what a wrong password of most users does.
    """

    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "users")
        self.spent = []
        shaVerify, argonVerify = shacrypt.verify, argon2.low_level.verify_secret
        bcryptCheck = bcrypt.checkpw

        def recordSha(password, hashed):
            self.spent.append(shacrypt.parseHash(hashed))
            return shaVerify(password, hashed)

        def recordArgon(hashed, password, kind):
            parameters = argon2.extract_parameters(hashed.decode())
            self.spent.append(("argon2id", parameters.time_cost, parameters.memory_cost))
            return argonVerify(hashed, password, kind)

        def recordBcrypt(password, hashed):
            self.spent.append(("bcrypt", int(hashed[4:6])))
            return bcryptCheck(password, hashed)
        self.patch(shacrypt, "verify", recordSha)
        self.patch(argon2.low_level, "verify_secret", recordArgon)
        self.patch(bcrypt, "checkpw", recordBcrypt)

    def write(self, users):
        with open(self.path, "w") as f:
            f.write("".join("%s:{%s}%s:::::\n" % user for user in users))
        return PasswdFile(self.path, "lab.test", 4)

    def shaUsers(self, count, rounds):
        return [("sha%d-%d@lab.test" % (rounds, n), "SHA512-CRYPT",
                 shacrypt.newHash(b"pw", "6", rounds)) for n in range(count)]

    def cost(self, users, name, password="wrong"):
        del self.spent[:]
        self.assertFalse(users.verifyPassword(name, password))
        return list(self.spent)

    def test_shaCryptFile(self):
        """With mostly SHA512-CRYPT users, any failure costs one SHA-512 crypt at their rounds."""
        users = self.write(self.shaUsers(2, 1000) + self.shaUsers(3, 2000)
                           + [("plain@lab.test", "PLAIN", "secret"),
                              ("bad@lab.test", "SHA512-CRYPT", "$6$garbage"),
                              ("old@lab.test", "MD5-CRYPT", "$1$a$b")])
        self.assertEqual(users.dummyKind(), ("SHA512-CRYPT", 2000))
        for name in ("nobody", "bad:name", "plain", "bad", "old", "sha2000-0"):
            self.assertEqual(self.cost(users, name), [("6", 2000)], name)
        self.assertEqual(self.cost(users, "sha1000-0"), [("6", 1000)])

    def test_argon2File(self):
        """In a file of ARGON2ID users, an unknown user costs one Argon2id at their parameters."""
        hashed = argon2.low_level.hash_secret(b"pw", os.urandom(16), time_cost=2,
                                              memory_cost=2048, parallelism=1, hash_len=32,
                                              type=argon2.Type.ID).decode()
        users = self.write([("a%d@lab.test" % (n,), "ARGON2ID", hashed) for n in range(2)]
                           + self.shaUsers(1, 1000))
        self.assertEqual(users.dummyKind(), ("ARGON2ID", 2, 2048, 1))
        self.assertEqual(self.cost(users, "nobody"), [("argon2id", 2, 2048)])
        self.assertEqual(self.cost(users, "a0"), [("argon2id", 2, 2048)])

    def test_tooLongPasswordForShaCrypt(self):
        """A 512-byte password for a SHA512-CRYPT user costs what an unknown user's does."""
        users = self.write(self.shaUsers(1, 1000) + [
            ("b%d@lab.test" % (n,), "BLF-CRYPT",
             "$2y$" + bcrypt.hashpw(b"pw", bcrypt.gensalt(5)).decode()[4:]) for n in range(2)])
        self.assertEqual(self.cost(users, "sha1000-0", "x" * 512), [("bcrypt", 5)])
        self.assertEqual(self.cost(users, "nobody", "x" * 512), [("bcrypt", 5)])

    def test_sqliteDummyKind(self):
        """The SQLite backend's failures also follow its most common kind of hash."""
        users = SQLiteUsers(self.path + ".sqlite", "lab.test", 4).open()
        self.addCleanup(users.close)
        self.assertEqual(users.dummyKind(), ("BLF-CRYPT", 4))
        for user in self.shaUsers(2, 1000) + self.shaUsers(3, 2000):
            users.addStoredUser(User(*user))
        users.addStoredUser(User("b@lab.test", "BLF-CRYPT",
                                 "$2y$" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()[4:]))
        users.addStoredUser(User("p@lab.test", "PLAIN", "$6$rounds=3000$x"))
        self.assertEqual(users.dummyKind(), ("SHA512-CRYPT", 2000))
        self.assertEqual(self.cost(users, "nobody"), [("6", 2000)])


class NewUserTests(unittest.TestCase):
    """Users added with each scheme, in both embedded backends."""

    def backends(self):
        directory = self.mktemp()
        os.makedirs(directory)
        sqlite = SQLiteUsers(os.path.join(directory, "users.sqlite"), "lab.test", 4).open()
        self.addCleanup(sqlite.close)
        return [PasswdFile(os.path.join(directory, "users"), "lab.test", 4), sqlite]

    def test_addEachScheme(self):
        """A user added with each scheme is stored in it and logs in."""
        for users in self.backends():
            users.argon2MemoryCost = 1024
            for scheme in passwords.SCHEMES:
                name = scheme.lower() + "@lab.test"
                users.addUser(name, "pw of " + scheme, scheme=scheme.lower())
                user = users.lookup(name)
                self.assertEqual(user.scheme, scheme)
                self.assertTrue(users.verifyPassword(name, "pw of " + scheme), (users, scheme))
                self.assertFalse(users.verifyPassword(name, "pw of"), (users, scheme))

    def test_importEachScheme(self):
        """A CSV import stores each scheme's rows in it; run again, it finds them unchanged."""
        users = self.backends()[0]
        users.argon2MemoryCost = 1024
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("address,password,scheme\n" + "".join(
                "%s,pw-%s,%s\n" % (scheme.lower(), scheme, scheme)
                for scheme in passwords.SCHEMES))
        names = ["%s@lab.test" % (scheme.lower(),) for scheme in passwords.SCHEMES]
        self.assertEqual(users.importCSV(path).added, names)
        for scheme in passwords.SCHEMES:
            self.assertEqual(users.lookup(scheme.lower()).scheme, scheme)
            self.assertTrue(users.verifyPassword(scheme.lower(), "pw-" + scheme), scheme)
        again = users.importCSV(path)
        self.assertEqual((again.added, again.unchanged), ([], names))

    def test_shaCryptRounds(self):
        """shaCryptRounds other than 5000 is written as rounds=N, and used."""
        users = self.backends()[0]
        users.shaCryptRounds = 1500
        users.addUser("r@lab.test", "pw", scheme="SHA512-CRYPT")
        self.assertTrue(users.lookup("r").secret.startswith("$6$rounds=1500$"))
        self.assertTrue(users.verifyPassword("r", "pw"))

    def test_shaCryptPasswordTooLong(self):
        """A password of 512 bytes or more is refused for SHA-crypt (Dovecot cannot check it)."""
        users = self.backends()[0]
        e = self.assertRaises(InvalidPassword, users.addUser, "a", "x" * 512, "SHA512-CRYPT")
        self.assertEqual(str(e), "password longer than 511 bytes cannot be stored with "
                                 "SHA512-CRYPT (use a shorter one)")
        users.addUser("a", "x" * 512, scheme="ARGON2ID")
        users.addUser("b", "x" * 511, scheme="SHA256-CRYPT")


class UserAddSchemeTests(CLITestCase):
    """C{mailstack user add --scheme} for each scheme."""

    def test_addEachScheme(self):
        """user add --scheme S stores the user in S, in the form doveadm writes, and it logs in."""
        forms = {"SHA512-CRYPT": r"\$6\$[./0-9A-Za-z]{16}\$", "SHA256-CRYPT": r"\$5\$",
                 "ARGON2ID": r"\$argon2id\$v=19\$m=65536,t=3,p=1\$", "BLF-CRYPT": r"\$2y\$",
                 "PLAIN": "pw-"}
        for scheme, form in forms.items():
            address = "%s@lab.test" % (scheme.lower(),)
            result = self.mailstack("user", "add", address, "--password-stdin",
                                    "--scheme", scheme.lower(), stdin="pw-%s\n" % (scheme,))
            self.assertEqual(result, (0, "added %s (%s)\n" % (address, scheme), ""))
            self.assertRegex(self.usersText(), "%s:{%s}%s" % (address, scheme, form))
            self.assertTrue(self.users().verifyPassword(address, "pw-" + scheme))

    def test_unknownScheme(self):
        """user add --scheme with a scheme we cannot make is refused by the parser."""
        status, out, err = self.mailstack("user", "add", "x", "--password-stdin",
                                          "--scheme", "MD5-CRYPT", stdin="pw\n")
        self.assertEqual((status, out), (2, ""))
        self.assertIn("ARGON2ID", err)
