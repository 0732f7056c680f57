"""
Tests for L{mailstack.auth.userdb}: the Dovecot passwd-file of users.
"""

import io
import os
import stat
import threading

import bcrypt
from twisted.logger import capturedLogs, formatEvent
from twisted.trial import unittest

from mailstack.auth import passwords, userdb
from mailstack.auth.passwords import (
    CSVImportError, InvalidAddress, InvalidPassword, InvalidScheme, NoSuchUser, User,
    UserError, UserExists, isValidAddress)
from mailstack.auth.userdb import PasswdFile


def bcryptLine(address, password, prefix=b"$2b$"):
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(4))
    return "%s:{BLF-CRYPT}%s:::::\n" % (address, (prefix + hashed[4:]).decode("ascii"))


class PasswdFileMixin:
    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "users")

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(text)
        # Rewritten in place (same inode, maybe same size) within one timestamp
        # tick of a coarse filesystem: move the mtime on so the change shows.
        st = os.stat(self.path)
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1000000))

    def read(self):
        with open(self.path) as f:
            return f.read()

    def passwdFile(self, **kwargs):
        kwargs.setdefault("defaultDomain", "lab.test")
        kwargs.setdefault("bcryptRounds", 4)
        return PasswdFile(self.path, **kwargs)


class AddressTests(unittest.TestCase):
    def test_valid(self):
        """Dot-atom local parts with the allowed specials and host names pass."""
        for address in ["demo@lab.test", "a.b+tag@x.example", "o'neil@lab.test",
                        "x!#$%&'*+/=?^_`{|}~-@localhost", "a@b-c.d"]:
            self.assertTrue(isValidAddress(address), address)

    def test_invalid(self):
        """Dots at the ends, '..', ':', newlines, bad domains are refused."""
        for address in ["demo", "@lab.test", "demo@", ".a@lab.test", "a.@lab.test",
                        "a..b@lab.test", "a:b@lab.test", "a\n@lab.test", "a b@lab.test",
                        "a@lab..test", "a@-lab.test", "a@lab.test.", "a@lab_test",
                        "a@lab.test:x", "\u00e9@lab.test", "a" * 65 + "@lab.test"]:
            self.assertFalse(isValidAddress(address), address)


class NormalizeTests(PasswdFileMixin, unittest.TestCase):
    def test_lowerCase(self):
        """Names are lower-cased."""
        self.assertEqual(self.passwdFile().normalize("Demo@Lab.TEST"), "demo@lab.test")

    def test_bytes(self):
        """Names from the wire may be bytes."""
        self.assertEqual(self.passwdFile().normalize(b"demo@lab.test"), "demo@lab.test")
        self.assertIsNone(self.passwdFile().normalize(b"d\xe9mo@lab.test"))

    def test_bareLocalPart(self):
        """A bare local part gets the default domain."""
        self.assertEqual(self.passwdFile().normalize("Demo"), "demo@lab.test")

    def test_bareWithoutDefaultDomain(self):
        """Without a default domain a bare local part is no address."""
        self.assertIsNone(self.passwdFile(defaultDomain=None).normalize("demo"))

    def test_invalid(self):
        """Invalid names normalise to None."""
        users = self.passwdFile()
        for name in ["", "a:b", "a..b", "x@", "a@b@c", "demo\n", "\u212aim@lab.test"]:
            self.assertIsNone(users.normalize(name), name)


class ParseTests(PasswdFileMixin, unittest.TestCase):
    def test_missingFile(self):
        """A missing file means no users."""
        users = self.passwdFile()
        self.assertIsNone(users.lookup("demo"))
        self.assertEqual(users.listUsers(), [])
        self.assertFalse(users.allPlaintextSecrets())

    def test_dovecotLines(self):
        """Full lines, short lines, blank lines and comments are all read."""
        self.write("# users\n\n"
                   "demo@lab.test:{PLAIN}demo:::::\n"
                   "short@lab.test:{PLAIN}pw\n"
                   "   \n"
                   "  # indented comment\n"
                   "extra@lab.test:{PLAIN}x:1000:1000::/home/extra::userdb_quota_rule=*:storage=1G\n")
        users = self.passwdFile()
        self.assertEqual([u.address for u in users.listUsers()],
                         ["demo@lab.test", "extra@lab.test", "short@lab.test"])
        self.assertEqual(users.lookup("demo"), User("demo@lab.test", "PLAIN", "demo"))
        self.assertEqual(users.lookup("short@lab.test").secret, "pw")
        self.assertEqual(users.lookup("extra").secret, "x")

    def test_upperCaseAddressInFile(self):
        """Addresses in the file are matched without regard to case."""
        self.write("Demo@Lab.Test:{PLAIN}demo:::::\n")
        self.assertEqual(self.passwdFile().lookup("demo@lab.test").address, "demo@lab.test")

    def test_crlf(self):
        """A file edited on Windows (CRLF) still works."""
        self.write("demo@lab.test:{PLAIN}demo\r\n")
        self.assertTrue(self.passwdFile().verifyPassword("demo", "demo"))

    def test_unknownScheme(self):
        """A user with an unknown scheme exists, is logged, and cannot log in."""
        self.write("old@lab.test:{MD5-CRYPT}$1$abc$def:::::\n")
        users = self.passwdFile()
        with capturedLogs() as events:
            user = users.lookup("old")
        self.assertEqual(user.scheme, "MD5-CRYPT")
        self.assertFalse(users.verifyPassword("old", "anything"))
        self.assertIsNone(users.plaintextSecret("old"))
        self.assertEqual(len(events), 1)
        self.assertIn("MD5-CRYPT is not supported (use BLF-CRYPT, SHA512-CRYPT, "
                      "SHA256-CRYPT, ARGON2ID or PLAIN)", formatEvent(events[0]))
        self.assertIn(self.path + ":1", formatEvent(events[0]))

    def test_noScheme(self):
        """A password field without a {SCHEME} cannot be used to log in."""
        self.write("bare@lab.test:secret:::::\n")
        users = self.passwdFile()
        self.assertEqual(users.lookup("bare").scheme, "")
        self.assertFalse(users.verifyPassword("bare", "secret"))

    def test_badLinesSkipped(self):
        """Lines with invalid addresses and repeated users are skipped."""
        self.write("not an address:{PLAIN}x\n"
                   "demo@lab.test:{PLAIN}first\n"
                   "DEMO@lab.test:{PLAIN}second\n")
        users = self.passwdFile()
        self.assertEqual(len(users.listUsers()), 1)
        self.assertEqual(users.lookup("demo").secret, "first")

    def test_cleartextAlias(self):
        """Dovecot's CLEARTEXT and PLAIN.B64/PLAIN.HEX read as PLAIN."""
        self.write("a@lab.test:{CLEARTEXT}one\n"
                   "b@lab.test:{PLAIN.B64}dHdv\n"
                   "c@lab.test:{plain.hex}7468726565\n")
        users = self.passwdFile()
        self.assertEqual([(u.scheme, u.secret) for u in users.listUsers()],
                         [("PLAIN", "one"), ("PLAIN", "two"), ("PLAIN", "three")])

    def test_reloadOnChange(self):
        """A change to the file (by the CLI, another process) is seen at once."""
        self.write("demo@lab.test:{PLAIN}demo:::::\n")
        users = self.passwdFile()
        self.assertTrue(users.verifyPassword("demo", "demo"))
        self.write("demo@lab.test:{PLAIN}changed:::::\nnew@lab.test:{PLAIN}x:::::\n")
        self.assertFalse(users.verifyPassword("demo", "demo"))
        self.assertTrue(users.verifyPassword("demo", "changed"))
        self.assertIsNotNone(users.lookup("new"))
        os.remove(self.path)
        self.assertIsNone(users.lookup("demo"))

    def test_seesOtherInstanceChanges(self):
        """One instance sees users added through another (the CLI and the server)."""
        server = self.passwdFile()
        self.assertIsNone(server.lookup("demo"))
        self.passwdFile().addUser("demo", "pw", scheme="PLAIN")
        self.assertTrue(server.verifyPassword("demo", "pw"))

    def test_noReloadWithoutChange(self):
        """An unchanged file is not read again (one stat per lookup)."""
        self.write("demo@lab.test:{PLAIN}demo:::::\n")
        users = self.passwdFile()
        users.lookup("demo")
        parsed = []
        original = users._parse
        self.patch(users, "_parse", lambda text: parsed.append(1) or original(text))
        users.lookup("demo")
        users.lookup("demo")
        self.assertEqual(parsed, [])


class VerifyTests(PasswdFileMixin, unittest.TestCase):
    def test_plain(self):
        """PLAIN passwords are compared exactly; str or bytes."""
        self.write("demo@lab.test:{PLAIN}demo:::::\n")
        users = self.passwdFile()
        self.assertTrue(users.verifyPassword("demo", "demo"))
        self.assertTrue(users.verifyPassword(b"DEMO@lab.test", b"demo"))
        self.assertFalse(users.verifyPassword("demo", "Demo"))
        self.assertFalse(users.verifyPassword("demo", ""))

    def test_plainUsesCompareDigest(self):
        """PLAIN comparison is constant-time (hmac.compare_digest)."""
        self.write("demo@lab.test:{PLAIN}demo:::::\n")
        calls = []
        original = passwords.hmac.compare_digest
        self.patch(passwords.hmac, "compare_digest",
                   lambda a, b: calls.append((a, b)) or original(a, b))
        self.passwdFile().verifyPassword("demo", "demo")
        self.assertEqual(calls, [(b"demo", b"demo")])

    def test_bcryptPrefixes(self):
        """$2a$, $2b$ and $2y$ (doveadm's) hashes all verify."""
        self.write(bcryptLine("a@lab.test", b"pa", b"$2a$")
                   + bcryptLine("b@lab.test", b"pb", b"$2b$")
                   + bcryptLine("y@lab.test", b"py", b"$2y$"))
        users = self.passwdFile()
        for name, password in (("a", "pa"), ("b", "pb"), ("y", "py")):
            self.assertTrue(users.verifyPassword(name, password), name)
            self.assertFalse(users.verifyPassword(name, password + "x"), name)

    def test_bcryptYRewritten(self):
        """$2y$ is handed to the bcrypt library as $2b$."""
        self.write(bcryptLine("y@lab.test", b"py", b"$2y$"))
        seen = []
        original = passwords.bcrypt.checkpw
        self.patch(passwords.bcrypt, "checkpw",
                   lambda pw, hashed: seen.append(hashed[:4]) or original(pw, hashed))
        self.assertTrue(self.passwdFile().verifyPassword("y", "py"))
        self.assertEqual(seen, [b"$2b$"])

    def test_unknownUserSpendsBcrypt(self):
        """An unknown user still costs one bcrypt check, so timing hides existence."""
        users = self.passwdFile()
        calls = []
        original = passwords.bcrypt.checkpw
        self.patch(passwords.bcrypt, "checkpw",
                   lambda pw, hashed: calls.append(hashed) or original(pw, hashed))
        self.assertFalse(users.verifyPassword("nobody", "pw"))
        self.assertFalse(users.verifyPassword("not:valid", "pw"))
        self.assertEqual(len(calls), 2)
        self.assertEqual(calls[0][:7], b"$2b$04$")

    def test_plainUserSpendsBcryptOnlyOnFailure(self):
        """
        A wrong {PLAIN} password costs the same bcrypt check as an unknown
        user's (without it a failure was answered ~50 times faster); a right
        one costs none, as in Dovecot.
        """
        self.write("plain@lab.test:{PLAIN}secret:::::\n")
        users = self.passwdFile()
        calls = []
        original = passwords.bcrypt.checkpw
        self.patch(passwords.bcrypt, "checkpw",
                   lambda pw, hashed: calls.append(hashed) or original(pw, hashed))
        self.assertFalse(users.verifyPassword("plain", "wrong"))
        self.assertEqual(len(calls), 1)
        self.assertTrue(users.verifyPassword("plain", "secret"))
        self.assertEqual(len(calls), 1)

    def test_brokenHash(self):
        """A malformed bcrypt hash fails the login instead of raising."""
        self.write("x@lab.test:{BLF-CRYPT}garbage:::::\n")
        self.assertFalse(self.passwdFile().verifyPassword("x", "pw"))

    def test_longPasswordAgainstForeignHash(self):
        """A hash made elsewhere from a >72-byte password (truncated) verifies."""
        password = b"p" * 80
        hashed = bcrypt.hashpw(password[:72], bcrypt.gensalt(4)).decode("ascii")
        self.write("long@lab.test:{BLF-CRYPT}%s:::::\n" % (hashed,))
        self.assertTrue(self.passwdFile().verifyPassword("long", password))

    def test_plaintextSecret(self):
        """Only PLAIN users reveal a plaintext secret (for APOP, CRAM-MD5)."""
        users = self.passwdFile()
        users.addUser("plain", "secret", scheme="PLAIN")
        users.addUser("hashed", "secret")
        self.assertEqual(users.plaintextSecret("PLAIN@lab.test"), "secret")
        self.assertIsNone(users.plaintextSecret("hashed"))
        self.assertIsNone(users.plaintextSecret("nobody"))

    def test_allPlaintextSecretsMixed(self):
        """One BLF-CRYPT user among {PLAIN} ones: CRAM-MD5/APOP would not work for all."""
        users = self.passwdFile()
        users.addUser("demo", "demo", scheme="PLAIN")
        users.addUser("student", "secret")
        self.assertFalse(users.allPlaintextSecrets())

    def test_allPlaintextSecretsOnlyHashed(self):
        """With only hashed users there are no plaintext secrets."""
        users = self.passwdFile()
        users.addUser("hashed", "secret")
        self.assertFalse(users.allPlaintextSecrets())

    def test_allPlaintextSecretsAllPlain(self):
        """Every user {PLAIN} (including {PLAIN.B64}): challenge mechanisms work for all."""
        self.write("demo@lab.test:{PLAIN}demo:::::\n"
                   "colon@lab.test:{PLAIN.B64}YTpi:::::\n")
        self.assertTrue(self.passwdFile().allPlaintextSecrets())

    def test_allPlaintextSecretsUnsupportedScheme(self):
        """A user stored in a scheme we cannot read is not {PLAIN} either."""
        self.write("demo@lab.test:{PLAIN}demo:::::\n"
                   "old@lab.test:{SHA512-CRYPT}$6$x$y:::::\n")
        self.assertFalse(self.passwdFile().allPlaintextSecrets())

    def test_allPlaintextSecretsFollowsFile(self):
        """The answer follows the file: adding, then removing, a hashed user."""
        users = self.passwdFile()
        users.addUser("demo", "demo", scheme="PLAIN")
        self.assertTrue(users.allPlaintextSecrets())
        other = self.passwdFile()  # another process: the admin command
        other.addUser("student", "secret")
        self.assertFalse(users.allPlaintextSecrets())
        other.removeUser("student")
        self.assertTrue(users.allPlaintextSecrets())
        self.write("student@lab.test:{PLAIN}secret:::::\n" + bcryptLine(
            "alice@lab.test", b"pw"))
        self.assertFalse(users.allPlaintextSecrets())


class ChangeTests(PasswdFileMixin, unittest.TestCase):
    def test_addCreatesFile(self):
        """The first user creates the file (and its directory), mode 0600."""
        self.path = os.path.join(self.mktemp(), "sub", "users")
        users = self.passwdFile()
        users.addUser("Demo", "demo", scheme="PLAIN")
        self.assertEqual(self.read(), "demo@lab.test:{PLAIN}demo:::::\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertTrue(users.verifyPassword("demo", "demo"))

    def test_addCreatesPrivateDirectories(self):
        """Under umask 022 the directories made for the file are 0700, the file and lock 0600."""
        from tests.test_files import modes, useUmask
        useUmask(self)
        top = self.mktemp()
        self.path = os.path.join(top, "sub", "users")
        self.passwdFile().addUser("demo", "demo", scheme="PLAIN")
        self.assertEqual(modes(top), {".": 0o700, "sub": 0o700, "sub/users": 0o600,
                                      "sub/users.lock": 0o600})

    def test_addBcrypt(self):
        """The default scheme is BLF-CRYPT, written with doveadm's $2y$ prefix."""
        users = self.passwdFile()
        users.addUser("demo@lab.test", "s3cret")
        line = self.read()
        self.assertTrue(line.startswith("demo@lab.test:{BLF-CRYPT}$2y$04$"), line)
        self.assertTrue(line.endswith(":::::\n"))
        self.assertEqual(users.lookup("demo").scheme, "BLF-CRYPT")
        self.assertTrue(users.verifyPassword("demo", "s3cret"))
        self.assertFalse(users.verifyPassword("demo", "wrong"))

    def test_addKeepsOtherLines(self):
        """Comments and other users' extra fields survive a change byte for byte."""
        original = ("# class of 2024\n"
                    "extra@lab.test:{PLAIN}x:1000:1000::/home/extra::userdb_mail=maildir:~/M\n")
        self.write(original)
        self.passwdFile().addUser("new", "pw", scheme="PLAIN")
        self.assertEqual(self.read(), original + "new@lab.test:{PLAIN}pw:::::\n")

    def test_addExisting(self):
        """Adding an existing user (any case) raises UserExists."""
        users = self.passwdFile()
        users.addUser("demo", "pw", scheme="PLAIN")
        self.assertRaises(UserExists, users.addUser, "DEMO@lab.test", "x")
        self.assertEqual(len(users.listUsers()), 1)

    def test_addInvalid(self):
        """Bad addresses, empty passwords, unknown schemes are refused."""
        users = self.passwdFile()
        self.assertRaises(InvalidAddress, users.addUser, "a:b@lab.test", "pw")
        self.assertRaises(InvalidAddress, users.addUser, "a\n@lab.test", "pw")
        self.assertRaises(InvalidPassword, users.addUser, "demo", "")
        self.assertRaises(InvalidScheme, users.addUser, "demo", "pw", scheme="MD5")
        self.assertRaises(InvalidPassword, users.addUser, "demo", "x" * 73)
        self.assertFalse(os.path.exists(self.path))
        self.assertTrue(issubclass(InvalidAddress, UserError))

    def test_addBareWithoutDefaultDomain(self):
        """Without a default domain a bare name is refused with a reason saying so."""
        users = self.passwdFile(defaultDomain=None)
        e = self.assertRaises(InvalidAddress, users.addUser, "demo", "pw")
        self.assertIn("no default domain", str(e))

    def test_addForeignDomain(self):
        """With local domains given, other domains are refused."""
        users = self.passwdFile(domains=["lab.test"])
        e = self.assertRaises(InvalidAddress, users.addUser, "x@other.test", "pw")
        self.assertEqual(str(e), "domain other.test is not a local domain (server.domains)")

    def test_plainWithColon(self):
        """A PLAIN password with ':' or a newline is stored {PLAIN.B64} and works."""
        users = self.passwdFile()
        users.addUser("demo", "a:b\nc", scheme="PLAIN")
        self.assertEqual(self.read().count("\n"), 1)
        self.assertIn("{PLAIN.B64}", self.read())
        self.assertTrue(users.verifyPassword("demo", "a:b\nc"))
        self.assertEqual(users.plaintextSecret("demo"), "a:b\nc")

    def test_nonASCIIPassword(self):
        """UTF-8 passwords work in both schemes."""
        users = self.passwdFile()
        users.addUser("p", "p\u00e4ss\u2028", scheme="PLAIN")
        users.addUser("b", "p\u00e4ss")
        self.assertTrue(users.verifyPassword("p", "p\u00e4ss\u2028".encode("utf-8")))
        self.assertTrue(users.verifyPassword("b", "p\u00e4ss"))

    def test_setPassword(self):
        """setPassword keeps the scheme and the line's other fields."""
        self.write("demo@lab.test:{PLAIN}old:1000:1000::/home/demo::\n")
        users = self.passwdFile()
        self.assertEqual(users.setPassword("DEMO", "new"), "PLAIN")
        self.assertEqual(self.read(), "demo@lab.test:{PLAIN}new:1000:1000::/home/demo::\n")
        self.assertTrue(users.verifyPassword("demo", "new"))

    def test_setPasswordScheme(self):
        """setPassword can change the scheme."""
        users = self.passwdFile()
        users.addUser("demo", "old", scheme="PLAIN")
        self.assertEqual(users.setPassword("demo", "new", scheme="blf-crypt"), "BLF-CRYPT")
        self.assertEqual(users.lookup("demo").scheme, "BLF-CRYPT")
        self.assertTrue(users.verifyPassword("demo", "new"))
        self.assertFalse(users.allPlaintextSecrets())

    def test_setPasswordUnknownScheme(self):
        """A user with an unsupported scheme gets BLF-CRYPT on a password change."""
        self.write("old@lab.test:{MD5-CRYPT}$1$x$y\n")
        users = self.passwdFile()
        self.assertEqual(users.setPassword("old", "new"), "BLF-CRYPT")
        self.assertTrue(users.verifyPassword("old", "new"))

    def test_setPasswordNoUser(self):
        """setPassword of a missing user raises NoSuchUser."""
        users = self.passwdFile()
        self.assertRaises(NoSuchUser, users.setPassword, "nobody", "pw")
        self.assertRaises(NoSuchUser, users.setPassword, "bad:name", "pw")

    def test_removeUser(self):
        """removeUser drops exactly that user's line."""
        self.write("# keep\na@lab.test:{PLAIN}a:::::\nb@lab.test:{PLAIN}b:::::\n")
        users = self.passwdFile()
        users.removeUser("A@lab.test")
        self.assertEqual(self.read(), "# keep\nb@lab.test:{PLAIN}b:::::\n")
        self.assertIsNone(users.lookup("a"))
        self.assertRaises(NoSuchUser, users.removeUser, "a")

    def test_removeDuplicates(self):
        """removeUser removes every line of the address, so the user is gone."""
        self.write("a@lab.test:{PLAIN}a\nb@lab.test:{PLAIN}b\nA@lab.test:{PLAIN}again\n")
        users = self.passwdFile()
        users.removeUser("a")
        self.assertEqual(self.read(), "b@lab.test:{PLAIN}b\n")

    def test_concurrentWriters(self):
        """Writers racing (threads here, processes alike) never lose a change."""
        errors = []

        def add(name):
            try:
                self.passwdFile().addUser(name, "pw", scheme="PLAIN")
            except Exception as e:
                errors.append(e)
        workers = [threading.Thread(target=add, args=("user%d" % (i,),))
                   for i in range(20)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(self.passwdFile().listUsers()), 20)

    def test_atomicWriteLeavesNoTemporary(self):
        """Only the file and its lock file remain after writes."""
        users = self.passwdFile()
        users.addUser("a", "pw", scheme="PLAIN")
        users.setPassword("a", "pw2")
        self.assertEqual(sorted(os.listdir(os.path.dirname(self.path))),
                         ["users", "users.lock"])

    def test_failedWriteKeepsFile(self):
        """If the write fails, the old file is intact and no temporary is left."""
        users = self.passwdFile()
        users.addUser("a", "pw", scheme="PLAIN")

        def failingFsync(fd):
            raise OSError(28, "No space left on device")
        self.patch(userdb.os, "fsync", failingFsync)
        self.assertRaises(OSError, users.addUser, "b", "pw", "PLAIN")
        self.assertEqual(self.read(), "a@lab.test:{PLAIN}pw:::::\n")
        self.assertEqual(sorted(os.listdir(os.path.dirname(self.path))),
                         ["users", "users.lock"])

    def test_listUsersSorted(self):
        """listUsers is sorted by address."""
        users = self.passwdFile()
        for name in ("zed", "alice", "mike"):
            users.addUser(name, "pw", scheme="PLAIN")
        self.assertEqual([u.address for u in users.listUsers()],
                         ["alice@lab.test", "mike@lab.test", "zed@lab.test"])

    def test_secretNotInRepr(self):
        """A User's repr never shows the secret (it may end up in logs)."""
        self.assertNotIn("hunter2", repr(User("a@lab.test", "PLAIN", "hunter2")))


class ImportTests(PasswdFileMixin, unittest.TestCase):
    def csv(self, text, name="class.csv"):
        path = os.path.join(os.path.dirname(self.path), name)
        with open(path, "w", newline="") as f:
            f.write(text)
        return path

    def test_import(self):
        """Rows with a header, bare names and a scheme column are added."""
        path = self.csv("address,password\n"
                        "alice@lab.test,pa\n"
                        "bob,pb,PLAIN\n"
                        "\n"
                        "\"carol@lab.test\",\"p,c\"\n")
        users = self.passwdFile()
        self.assertEqual(users.importCSV(path).added,
                         ["alice@lab.test", "bob@lab.test", "carol@lab.test"])
        self.assertEqual([(u.address, u.scheme) for u in users.listUsers()],
                         [("alice@lab.test", "BLF-CRYPT"), ("bob@lab.test", "PLAIN"),
                          ("carol@lab.test", "BLF-CRYPT")])
        self.assertTrue(users.verifyPassword("carol", "p,c"))
        self.assertTrue(users.verifyPassword("bob", "pb"))

    def test_importWithoutHeader(self):
        """The header row is optional; a three-column header is also accepted."""
        users = self.passwdFile()
        self.assertEqual(users.importCSV(self.csv("a,pa\n")).added, ["a@lab.test"])
        self.assertEqual(
            users.importCSV(self.csv("Address,Password,Scheme\nb,pb,plain\n")).added,
            ["b@lab.test"])
        self.assertEqual(users.lookup("b").scheme, "PLAIN")

    def test_importFileObject(self):
        """A file object works; errors then name it by its name."""
        users = self.passwdFile()
        self.assertEqual(len(users.importCSV(io.StringIO("a,pa\nb,pb\n")).added), 2)
        e = self.assertRaises(CSVImportError, users.importCSV, io.StringIO("c,\n"))
        self.assertEqual(str(e), "<csv>:1: empty password")

    def test_importBOM(self):
        """A spreadsheet's UTF-8 byte order mark does not spoil the header."""
        path = os.path.join(os.path.dirname(self.path), "bom.csv")
        with open(path, "wb") as f:
            f.write(b"\xef\xbb\xbfaddress,password\r\na,pa\r\n")
        self.assertEqual(self.passwdFile().importCSV(path).added, ["a@lab.test"])

    def assertImportFails(self, text, message, existing=()):
        users = self.passwdFile()
        for name in existing:
            users.addUser(name, "x", scheme="PLAIN")
        before = self.read() if existing else None
        path = self.csv(text)
        e = self.assertRaises(CSVImportError, users.importCSV, path)
        self.assertEqual(str(e), "%s:%s" % (path, message))
        self.assertIsInstance(e, UserError)
        if existing:
            self.assertEqual(self.read(), before)
        else:
            self.assertFalse(os.path.exists(self.path))

    def test_badAddress(self):
        """A bad address anywhere refuses the whole file, naming the line."""
        self.assertImportFails("address,password\na,pa\nb..x@lab.test,pb\n",
                               "3: 'b..x@lab.test' is not a valid address")

    def test_emptyPassword(self):
        """An empty password is refused."""
        self.assertImportFails("a,pa\nb,\n", "2: empty password")

    def test_duplicateInFile(self):
        """The same user twice in the file is refused, citing the first line."""
        self.assertImportFails("a,pa\nb,pb\nA@lab.test,pc\n",
                               "3: a@lab.test is already on line 1")

    def test_existingUser(self):
        """
        A user that already exists is skipped, its password kept (the file
        says which differ); with update it gets the file's, keeping its scheme.
        """
        users = self.passwdFile()
        users.addUser("old", "x", scheme="PLAIN")
        users.addUser("same", "s", scheme="PLAIN")
        path = self.csv("a,pa\nold,pb\nsame,s\n")
        self.assertEqual(users.importCSV(path), passwords.ImportResult(
            added=["a@lab.test"], differing=["old@lab.test"], unchanged=["same@lab.test"]))
        self.assertEqual(users.plaintextSecret("old"), "x")
        self.assertEqual(users.importCSV(path, update=True), passwords.ImportResult(
            updated=["old@lab.test"], unchanged=["a@lab.test", "same@lab.test"]))
        self.assertEqual(users.plaintextSecret("old"), "pb")

    def test_everyBadLine(self):
        """Every bad line is named, in line order, and nothing is added."""
        users = self.passwdFile()
        path = self.csv("a,\nb,pb\nc,pc,MD5\nd,%s\n" % ("x" * 73,))
        e = self.assertRaises(CSVImportError, users.importCSV, path)
        self.assertEqual(e.problems, [
            (1, "empty password"),
            (3, "unknown password scheme 'MD5' (use BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT, "
                "ARGON2ID or PLAIN)"),
            (4, "password longer than 72 bytes cannot be stored with BLF-CRYPT "
                "(use a shorter one)")])
        self.assertEqual(str(e).split("\n")[0], "%s:1: empty password" % (path,))
        self.assertFalse(os.path.exists(self.path))

    def test_columnCount(self):
        """Rows of one or four columns are refused."""
        self.assertImportFails("a,pa\nb\n",
                               "2: expected 2 or 3 columns (address,password[,scheme]), "
                               "found 1")
        self.assertImportFails("a,pa,PLAIN,x\n",
                               "1: expected 2 or 3 columns (address,password[,scheme]), "
                               "found 4")

    def test_badScheme(self):
        """An unknown scheme column is refused."""
        self.assertImportFails("a,pa,MD5\n", "1: unknown password scheme 'MD5' (use BLF-CRYPT, "
                                             "SHA512-CRYPT, SHA256-CRYPT, ARGON2ID or PLAIN)")

    def test_foreignDomain(self):
        """With local domains set, a foreign address is refused."""
        users = self.passwdFile(domains=["lab.test"])
        path = self.csv("a,pa\nx@other.test,px\n")
        e = self.assertRaises(CSVImportError, users.importCSV, path)
        self.assertEqual(str(e), "%s:2: domain other.test is not a local domain "
                                 "(server.domains)" % (path,))

    def test_lineNumbersAfterMultilineField(self):
        """Line numbers count physical lines, even after a quoted multi-line cell."""
        self.assertImportFails('a,"p\nq"\n\nb,\n', "4: empty password")

    def test_unreadable(self):
        """A missing or non-UTF-8 file is refused with the file's name."""
        users = self.passwdFile()
        missing = os.path.join(os.path.dirname(self.path), "missing.csv")
        e = self.assertRaises(CSVImportError, users.importCSV, missing)
        self.assertEqual(str(e), "%s: cannot read file: No such file or directory" % (
            missing,))
        binary = os.path.join(os.path.dirname(self.path), "bin.csv")
        with open(binary, "wb") as f:
            f.write(b"a,\xff\xfe\n")
        e = self.assertRaises(CSVImportError, users.importCSV, binary)
        self.assertEqual(str(e), "%s: not UTF-8 text" % (binary,))

    def test_emptyFile(self):
        """An empty file (or only a header) adds nothing and writes nothing."""
        users = self.passwdFile()
        self.assertEqual(users.importCSV(self.csv("address,password\n")), passwords.ImportResult())
        self.assertFalse(os.path.exists(self.path))
