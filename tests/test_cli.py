"""
Tests for L{mailstack.cli}: the C{mailstack} admin command.
"""

import io
import os
import stat

from twisted.trial import unittest

from mailstack import cli, tls
from mailstack.auth.userdb import PasswdFile
from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig



class CLITestCase(unittest.TestCase):
    def setUp(self):
        self.config = writeConfig(self)
        self.directory = os.path.abspath(os.path.dirname(self.config))
        self.usersPath = os.path.join(self.directory, "var", "users")
        self.prompts = []
        self.typed = []
        self.patch(cli, "getpass", self.fakeGetpass)

    def fakeGetpass(self, prompt, stream=None):
        self.prompts.append(prompt)
        if not self.typed:
            raise EOFError()
        return self.typed.pop(0)

    def mailstack(self, *argv, stdin="", config=True):
        """
        Run the command; return C{(status, stdout, stderr)}.
        """
        out, err = io.StringIO(), io.StringIO()
        args = (["--config", self.config] if config else []) + list(argv)
        status = cli.main(args, stdin=io.StringIO(stdin), stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def users(self):
        return PasswdFile(self.usersPath, defaultDomain="lab.test")

    def usersText(self):
        with open(self.usersPath) as f:
            return f.read()

    def assertFails(self, result, message):
        status, out, err = result
        self.assertEqual((status, out, err), (1, "", "mailstack: %s\n" % (message,)))


class UserAddTests(CLITestCase):
    def test_addStdin(self):
        """user add with --password-stdin adds a BLF-CRYPT user from one line."""
        result = self.mailstack("user", "add", "demo@lab.test", "--password-stdin",
                          stdin="s3cret\nignored\n")
        self.assertEqual(result, (0, "added demo@lab.test (BLF-CRYPT)\n", ""))
        self.assertTrue(self.usersText().startswith("demo@lab.test:{BLF-CRYPT}$2y$04$"))
        self.assertEqual(stat.S_IMODE(os.stat(self.usersPath).st_mode), 0o600)
        self.assertTrue(self.users().verifyPassword("demo", "s3cret"))
        self.assertFalse(self.users().verifyPassword("demo", "ignored"))

    def test_addBarePlain(self):
        """A bare local part gets default_domain; --scheme PLAIN is stored in clear."""
        result = self.mailstack("user", "add", "Alice", "--password-stdin", "--scheme", "plain",
                          stdin="pw\r\n")
        self.assertEqual(result, (0, "added alice@lab.test (PLAIN)\n", ""))
        self.assertEqual(self.usersText(), "alice@lab.test:{PLAIN}pw:::::\n")

    def test_addPrivateModes(self):
        """On a fresh data_dir under umask 022, user add makes it 0700 and the users file 0600."""
        from tests.test_files import modes, useUmask
        useUmask(self)
        self.mailstack("user", "add", "demo@lab.test", "--password-stdin", stdin="pw\n")
        self.assertEqual(modes(os.path.join(self.directory, "var")),
                         {".": 0o700, "users": 0o600, "users.lock": 0o600})

    def test_addPrompt(self):
        """Without --password-stdin the password is asked twice."""
        self.typed = ["pw", "pw"]
        result = self.mailstack("user", "add", "bob")
        self.assertEqual(result, (0, "added bob@lab.test (BLF-CRYPT)\n", ""))
        self.assertEqual(len(self.prompts), 2)
        self.assertIn("bob@lab.test", self.prompts[0])
        self.assertTrue(self.users().verifyPassword("bob", "pw"))

    def test_addPromptMismatch(self):
        """Two different typed passwords are an error and add nothing."""
        self.typed = ["pw", "wp"]
        self.assertFails(self.mailstack("user", "add", "bob"), "passwords do not match")
        self.assertFalse(os.path.exists(self.usersPath))

    def test_addPromptEmpty(self):
        """An empty typed password is refused."""
        self.typed = [""]
        self.assertFails(self.mailstack("user", "add", "bob"), "empty password")

    def test_addPromptEOF(self):
        """End of input at the prompt is an error."""
        self.assertFails(self.mailstack("user", "add", "bob"), "no password given")

    def test_addEmptyStdin(self):
        """An empty line on stdin is refused."""
        self.assertFails(self.mailstack("user", "add", "bob", "--password-stdin", stdin="\n"),
                         "no password on standard input")
        self.assertFails(self.mailstack("user", "add", "bob", "--password-stdin", stdin=""),
                         "no password on standard input")

    def test_addExisting(self):
        """Adding an existing user is an error; the file is unchanged."""
        self.mailstack("user", "add", "demo", "--password-stdin", "--scheme", "PLAIN",
                 stdin="one\n")
        self.assertFails(self.mailstack("user", "add", "DEMO@lab.test", "--password-stdin",
                                  stdin="two\n"),
                         "user demo@lab.test already exists")
        self.assertEqual(self.usersText(), "demo@lab.test:{PLAIN}one:::::\n")

    def test_addBadAddress(self):
        """A malformed address is refused before any password is asked."""
        self.assertFails(self.mailstack("user", "add", "a..b@lab.test"),
                         "'a..b@lab.test' is not a valid address")
        self.assertEqual(self.prompts, [])

    def test_addForeignDomain(self):
        """An address outside server.domains is refused."""
        self.assertFails(self.mailstack("user", "add", "x@elsewhere.test", "--password-stdin",
                                  stdin="pw\n"),
                         "domain elsewhere.test is not a local domain (server.domains)")

    def test_addSecondLocalDomain(self):
        """Any of server.domains is fine, not just the default one."""
        status, out, _ = self.mailstack("user", "add", "x@example.test", "--password-stdin",
                                  stdin="pw\n")
        self.assertEqual((status, out), (0, "added x@example.test (BLF-CRYPT)\n"))

    def test_addBareWithoutDefaultDomain(self):
        """Without default_domain a bare name is refused, saying why."""
        self.config = writeConfig(self, BASE_CONFIG.replace(
            'default_domain = "lab.test"\n', ""))
        self.assertFails(self.mailstack("user", "add", "bob", "--password-stdin", stdin="pw\n"),
                         "'bob' is not an address (local@domain) and no default "
                         "domain is set")

    def test_addLongBcryptPassword(self):
        """A password bcrypt cannot hold whole is refused rather than truncated."""
        status, _, err = self.mailstack("user", "add", "bob", "--password-stdin",
                                  stdin="x" * 73 + "\n")
        self.assertEqual(status, 1)
        self.assertIn("longer than 72 bytes", err)

    def test_badScheme(self):
        """An unknown --scheme is a usage error (status 2)."""
        status, out, err = self.mailstack("user", "add", "bob", "--scheme", "MD5")
        self.assertEqual((status, out), (2, ""))
        self.assertIn("invalid choice", err)


class UserChangeTests(CLITestCase):
    def setUp(self):
        CLITestCase.setUp(self)
        self.mailstack("user", "add", "demo", "--password-stdin", "--scheme", "PLAIN",
                 stdin="old\n")

    def test_passwd(self):
        """user passwd changes the password and keeps the scheme."""
        result = self.mailstack("user", "passwd", "demo", "--password-stdin", stdin="new\n")
        self.assertEqual(result, (0, "changed password of demo@lab.test (PLAIN)\n", ""))
        self.assertEqual(self.usersText(), "demo@lab.test:{PLAIN}new:::::\n")

    def test_passwdScheme(self):
        """user passwd --scheme changes the scheme too."""
        result = self.mailstack("user", "passwd", "demo", "--password-stdin",
                          "--scheme", "BLF-CRYPT", stdin="new\n")
        self.assertEqual(result, (0, "changed password of demo@lab.test (BLF-CRYPT)\n", ""))
        self.assertTrue(self.users().verifyPassword("demo", "new"))
        self.assertEqual(self.users().lookup("demo").scheme, "BLF-CRYPT")

    def test_passwdPrompt(self):
        """user passwd prompts twice without --password-stdin."""
        self.typed = ["new", "new"]
        status, _, _ = self.mailstack("user", "passwd", "demo@lab.test")
        self.assertEqual(status, 0)
        self.assertTrue(self.users().verifyPassword("demo", "new"))

    def test_passwdMissing(self):
        """user passwd of a missing user is an error, asked no password."""
        self.assertFails(self.mailstack("user", "passwd", "nobody"), "no such user: nobody@lab.test")
        self.assertEqual(self.prompts, [])

    def test_del(self):
        """user del removes the user's line."""
        self.mailstack("user", "add", "keep", "--password-stdin", "--scheme", "PLAIN",
                 stdin="k\n")
        result = self.mailstack("user", "del", "DEMO@lab.test")
        self.assertEqual(result, (0, "removed demo@lab.test (its mail is kept)\n", ""))
        self.assertEqual(self.usersText(), "keep@lab.test:{PLAIN}k:::::\n")

    def test_delMissing(self):
        """user del of a missing user is an error."""
        self.assertFails(self.mailstack("user", "del", "nobody"), "no such user: nobody@lab.test")
        self.assertFails(self.mailstack("user", "del", "bad:name"), "no such user: bad:name")

    def test_list(self):
        """user list prints one aligned 'address  SCHEME' line per user, sorted."""
        self.mailstack("user", "add", "zz-long-name@example.test", "--password-stdin",
                 stdin="pw\n")
        result = self.mailstack("user", "list")
        self.assertEqual(result, (0, "demo@lab.test              PLAIN\n"
                                     "zz-long-name@example.test  BLF-CRYPT\n", ""))

    def test_listEmpty(self):
        """With no users, user list prints nothing and succeeds."""
        os.remove(self.usersPath)
        self.assertEqual(self.mailstack("user", "list"), (0, "", ""))

    def test_runningServerSeesChanges(self):
        """A PasswdFile opened before (the server's) sees the CLI's changes."""
        server = self.users()
        self.assertTrue(server.verifyPassword("demo", "old"))
        self.mailstack("user", "passwd", "demo", "--password-stdin", stdin="new\n")
        self.assertTrue(server.verifyPassword("demo", "new"))
        self.mailstack("user", "del", "demo")
        self.assertIsNone(server.lookup("demo"))


class UserImportTests(CLITestCase):
    def csv(self, text):
        path = os.path.join(self.directory, "class.csv")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_import(self):
        """user import adds every row and prints a summary."""
        path = self.csv("address,password\nalice,pa\nbob@example.test,pb,PLAIN\n")
        result = self.mailstack("user", "import", path)
        self.assertEqual(result, (0, "%s: added 2, updated 0, skipped 0\n" % (path,), ""))
        users = self.users()
        self.assertTrue(users.verifyPassword("alice", "pa"))
        self.assertTrue(users.verifyPassword("bob@example.test", "pb"))

    def test_importBadRow(self):
        """A bad row names FILE:LINE and nothing is added."""
        path = self.csv("address,password\nalice,pa\nbob,\n")
        self.assertEqual(self.mailstack("user", "import", path), (
            1, "", "mailstack: %s:3: empty password\n"
                   "mailstack: %s: 1 bad line, nothing imported\n" % (path, path)))
        self.assertFalse(os.path.exists(self.usersPath))

    def test_importReportsEveryBadLine(self):
        """Every bad line is reported with its number, and none of the good ones is added."""
        self.mailstack("user", "add", "demo", "--password-stdin", stdin="d\n")
        before = self.usersText()
        path = self.csv("address,password,scheme\n"
                        "alice,pa\n"
                        "bob,\n"
                        "carol,pc,MD5\n"
                        "dave@elsewhere.test,pd\n"
                        "erin,pe\n"
                        "Alice@lab.test,px\n"
                        "frank\n")
        status, out, err = self.mailstack("user", "import", path)
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err.splitlines(), [
            "mailstack: %s:3: empty password" % (path,),
            "mailstack: %s:4: unknown password scheme 'MD5' (use BLF-CRYPT, SHA512-CRYPT, "
            "SHA256-CRYPT, ARGON2ID or PLAIN)" % (path,),
            "mailstack: %s:5: domain elsewhere.test is not a local domain "
            "(server.domains)" % (path,),
            "mailstack: %s:7: alice@lab.test is already on line 2" % (path,),
            "mailstack: %s:8: expected 2 or 3 columns (address,password[,scheme]), "
            "found 1" % (path,),
            "mailstack: %s: 5 bad lines, nothing imported" % (path,)])
        self.assertEqual(self.usersText(), before)

    def test_importForeignDomain(self):
        """A row outside server.domains is refused with its line."""
        path = self.csv("alice,pa\nx@elsewhere.test,px\n")
        status, out, err = self.mailstack("user", "import", path)
        self.assertEqual((status, out), (1, ""))
        self.assertIn("mailstack: %s:2: domain elsewhere.test is not a local domain "
                      "(server.domains)\n" % (path,), err)

    def test_importRerunSkipsExisting(self):
        """
        Re-running a class file adds only the new rows; existing users are
        skipped and left as they are, even if their password in the file differs.
        """
        path = self.csv("alice,pa\nbob,pb,PLAIN\n")
        self.mailstack("user", "import", path)
        before = self.usersText()
        self.assertEqual(self.mailstack("user", "import", path), (
            0, "%s: added 0, updated 0, skipped 2\n" % (path,), ""))
        self.assertEqual(self.usersText(), before)
        path = self.csv("alice,changed\nbob,pb,PLAIN\ncarol,pc\n")
        self.assertEqual(self.mailstack("user", "import", path), (
            0, "%s: added 1, updated 0, skipped 2 (1 with another password in the file: "
               "alice@lab.test; --update resets it)\n" % (path,), ""))
        users = self.users()
        self.assertTrue(users.verifyPassword("alice", "pa"))
        self.assertTrue(users.verifyPassword("carol", "pc"))

    def test_importUpdate(self):
        """
        With --update, existing users whose password (or given scheme) differs
        get the file's; unchanged ones are skipped, untouched.
        """
        self.mailstack("user", "add", "bob", "--password-stdin", "--scheme", "PLAIN",
                       stdin="b\n")
        self.mailstack("user", "import", self.csv("alice,pa\ncarol,pc\n"))
        carolLine = [line for line in self.usersText().splitlines()
                     if line.startswith("carol@")]
        path = self.csv("alice,new\nbob,pb\ncarol,pc\ndan,pd,PLAIN\n")
        self.assertEqual(self.mailstack("user", "import", "--update", path), (
            0, "%s: added 1, updated 2, skipped 1\n" % (path,), ""))
        users = self.users()
        self.assertTrue(users.verifyPassword("alice", "new"))
        self.assertEqual((users.lookup("bob").scheme, users.lookup("bob").secret),
                         ("PLAIN", "pb"))
        self.assertEqual([line for line in self.usersText().splitlines()
                          if line.startswith("carol@")], carolLine)
        self.assertEqual(self.mailstack("user", "import", "--update", path), (
            0, "%s: added 0, updated 0, skipped 4\n" % (path,), ""))
        self.mailstack("user", "import", "--update", self.csv("bob,pb,BLF-CRYPT\n"))
        self.assertEqual(self.users().lookup("bob").scheme, "BLF-CRYPT")
        self.assertTrue(self.users().verifyPassword("bob", "pb"))

    def test_importHelp(self):
        """user import --help documents the columns and what --update does."""
        status, out, err = self.mailstack("user", "import", "--help")
        self.assertEqual((status, err), (0, ""))
        flat = " ".join(out.split())
        self.assertIn("address,password[,scheme]", flat)
        self.assertIn("--update", flat)
        self.assertIn("skipped", flat)

    def test_importUnreadable(self):
        """A missing CSV file is an error naming it."""
        path = os.path.join(self.directory, "missing.csv")
        self.assertFails(self.mailstack("user", "import", path),
                         "%s: cannot read file: No such file or directory" % (path,))


class GeneralTests(CLITestCase):
    def test_configError(self):
        """A broken config is one line on stderr, status 1."""
        self.config = writeConfig(self, BASE_CONFIG, extra="[server2]\n")
        status, out, err = self.mailstack("user", "list")
        self.assertEqual((status, out), (1, ""))
        self.assertTrue(err.startswith("mailstack: %s: server2: unknown section" % (
            self.config,)), err)
        self.assertEqual(err.count("\n"), 1)

    def test_missingConfig(self):
        """A missing config file is reported with its name."""
        self.config = os.path.join(self.directory, "nope.toml")
        self.assertFails(self.mailstack("user", "list"), "%s: -: file not found" % (self.config,))

    def test_defaultConfig(self):
        """Without --config, etc/mailstack.toml relative to the cwd is used."""
        os.makedirs(os.path.join(self.directory, "etc"))
        os.rename(self.config, os.path.join(self.directory, "etc", "mailstack.toml"))
        self.patch(cli, "DEFAULT_CONFIG", cli.DEFAULT_CONFIG)
        cwd = os.getcwd()
        os.chdir(self.directory)
        self.addCleanup(os.chdir, cwd)
        status, out, _ = self.mailstack("user", "add", "demo", "--password-stdin",
                                  stdin="pw\n", config=False)
        self.assertEqual((status, out), (0, "added demo@lab.test (BLF-CRYPT)\n"))
        self.assertTrue(os.path.exists(os.path.join(self.directory, "etc", "var", "users")))

    def test_usage(self):
        """No command is a usage error on stderr with status 2."""
        status, out, err = self.mailstack()
        self.assertEqual((status, out), (2, ""))
        self.assertIn("usage: mailstack", err)

    def test_help(self):
        """--help goes to stdout with status 0."""
        status, out, err = self.mailstack("user", "add", "--help")
        self.assertEqual((status, err), (0, ""))
        self.assertIn("--password-stdin", out)

    def test_configAfterSubcommand(self):
        """--config is accepted after the subcommand (user list --config FILE)."""
        self.mailstack("user", "add", "demo", "--password-stdin", "--scheme", "PLAIN",
                       stdin="pw\n")
        result = self.mailstack("user", "list", "--config", self.config, config=False)
        self.assertEqual(result, (0, "demo@lab.test  PLAIN\n", ""))

    def test_configBetweenArguments(self):
        """--config may sit among a subcommand's own arguments (user add --config FILE ADDR)."""
        result = self.mailstack("user", "add", "--config", self.config, "alice@lab.test",
                                "--password-stdin", stdin="pw\n", config=False)
        self.assertEqual(result, (0, "added alice@lab.test (BLF-CRYPT)\n", ""))
        self.assertTrue(self.users().verifyPassword("alice", "pw"))

    def test_configEverySubcommand(self):
        """Every subcommand takes --config=FILE after it, and a later --config wins."""
        missing = os.path.join(self.directory, "nope.toml")
        for argv in (["user", "passwd", "demo"], ["user", "del", "demo"],
                     ["user", "list"], ["user", "import", "x.csv"],
                     ["cert", "generate"]):
            result = self.mailstack(*argv, "--config=" + missing)
            self.assertFails(result, "%s: -: file not found" % (missing,))
        result = self.mailstack("--config", missing, "user", "list", "--config", self.config,
                                config=False)
        self.assertEqual(result[0], 0, result)

    def test_configHelp(self):
        """A subcommand's --help lists --config."""
        status, out, err = self.mailstack("user", "list", "--help")
        self.assertEqual((status, err), (0, ""))
        self.assertIn("--config FILE", out)

    def test_unusableUsersFile(self):
        """A users file that cannot be read or written is a one-line error."""
        os.makedirs(self.usersPath)
        result = self.mailstack("user", "add", "demo", "--password-stdin", stdin="pw\n")
        self.assertFails(result, "cannot access %s: Is a directory" % (self.usersPath,))


class CertTests(CLITestCase):

    def paths(self):
        return (os.path.join(self.directory, "var", "tls", "cert.pem"),
                os.path.join(self.directory, "var", "tls", "key.pem"))

    def test_generate(self):
        """cert generate writes a certificate for the hostname and localhost."""
        cert, key = self.paths()
        result = self.mailstack("cert", "generate")
        self.assertEqual(result, (0, "wrote %s and %s for mail.lab.test, localhost\n" % (
            cert, key), ""))
        self.assertTrue(os.path.exists(cert))
        self.assertTrue(os.path.exists(key))

    def test_generateBeforeCertificatesExist(self):
        """
        With a production-style config (TLS listeners, no self-signed generation,
        no certificate yet) the CLI still works: cert generate creates the files
        the server then needs.
        """
        self.config = writeConfig(self, BASE_CONFIG.replace(
            "generate_self_signed = true", "generate_self_signed = false"),
            listenerTOML("imap", tls="implicit"))
        self.directory = os.path.abspath(os.path.dirname(self.config))
        self.usersPath = os.path.join(self.directory, "var", "users")
        cert, key = self.paths()
        self.assertEqual(self.mailstack("user", "add", "kim@lab.test", "--password-stdin",
                                        stdin="pw\n")[0], 0)
        self.assertEqual(self.mailstack("cert", "generate")[0], 0)
        self.assertTrue(os.path.exists(cert))

    def test_exists(self):
        """A second cert generate keeps the files; --force replaces them."""
        cert, key = self.paths()
        self.mailstack("cert", "generate")
        with open(cert, "rb") as f:
            first = f.read()
        result = self.mailstack("cert", "generate")
        self.assertEqual(result, (0, "certificate exists: %s (use --force to replace)\n" % (
            cert,), ""))
        status, out, _ = self.mailstack("cert", "generate", "--force")
        self.assertEqual((status, out.split(" ")[0]), (0, "wrote"))
        with open(cert, "rb") as f:
            self.assertNotEqual(f.read(), first)

    def test_arguments(self):
        """The hostnames are the configured hostname then localhost, once each."""
        calls = []

        def fake(certPath, keyPath, hostnames, force=False):
            calls.append((str(certPath), str(keyPath), hostnames, force))
            return True
        self.patch(tls, "ensureCertificate", fake)
        self.mailstack("cert", "generate", "--force")
        cert, key = self.paths()
        self.assertEqual(calls, [(cert, key, ["mail.lab.test", "localhost"], True)])
        self.config = writeConfig(self, BASE_CONFIG.replace(
            'hostname = "mail.lab.test"', 'hostname = "localhost"'))
        self.mailstack("cert", "generate")
        self.assertEqual(calls[1][2:], (["localhost"], False))
