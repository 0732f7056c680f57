"""
Tests for L{mailstack.storage.files}: Maildir's directories, file names and tmp/.
"""

import os
import re
import stat
import time

from twisted.trial.unittest import TestCase

from mailstack.storage import files


class NameTests(TestCase):
    """
    Unique names, the C{:2,} info and the size fields.
    """

    def test_uniqueName(self):
        """Names are <sec>.M<usec>P<pid>Q<seq>.<host>, the sequence always growing."""
        self.patch(files.socket, "gethostname", lambda: "a/b:c,d")
        self.patch(files, "_host", [])
        first, second = files.uniqueName(), files.uniqueName()
        match = re.match(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)\.(.*)$", first)
        self.assertIsNotNone(match, first)
        self.assertLessEqual(abs(int(match.group(1)) - time.time()), 2)
        self.assertEqual(int(match.group(3)), os.getpid())
        self.assertEqual(match.group(5), "a\\057b\\072c\\054d")
        self.assertGreater(int(second.split("Q")[1].split(".")[0]), int(match.group(4)))

    def test_hostAskedOnce(self):
        """The host name is asked of the system once; later names reuse it."""
        asked = []
        self.patch(files.socket, "gethostname", lambda: asked.append(1) or "mx")
        self.patch(files, "_host", [])
        names = [files.uniqueName() for _ in range(3)]
        self.assertEqual(len(asked), 1)
        self.assertEqual({name.rpartition(".")[2] for name in names}, {"mx"})

    def test_splitFilename(self):
        """The base and the flag letters; a name without ':2,' has no flags."""
        self.assertEqual(files.splitFilename("base,S=4:2,FS"), ("base,S=4", "FS"))
        self.assertEqual(files.splitFilename("base:2,"), ("base", ""))
        self.assertEqual(files.splitFilename("base"), ("base", ""))
        self.assertEqual(files.splitFilename("base:1,xyz"), ("base", ""))

    def test_sizes(self):
        """messageBase writes S= and W=; sizeFields reads them, None where absent."""
        base = files.messageBase("1.M1P1Q1.host", 10, 12)
        self.assertEqual(base, "1.M1P1Q1.host,S=10,W=12")
        self.assertEqual(files.sizeFields(base), (10, 12))
        self.assertEqual(files.sizeFields("1.M1P1.mda,S=4"), (4, None))
        self.assertEqual(files.sizeFields("1.M1P1.mda"), (None, None))

    def test_placement(self):
        """A message with flags goes to cur/ with its info, one without to new/."""
        self.assertEqual(files.placement("b", "FS"), ("cur", "b:2,FS"))
        self.assertEqual(files.placement("b", ""), ("new", "b"))


class DirectoryTests(TestCase):
    """
    Creating a Maildir, listing its messages, cleaning tmp/.
    """

    def setUp(self):
        self.path = self.mktemp()
        files.makeMaildir(self.path, folder=False)

    def touch(self, *parts, age=0):
        path = os.path.join(self.path, *parts)
        with open(path, "wb"):
            pass
        if age:
            old = time.time() - age
            os.utime(path, (old, old))

    def test_makeMaildir(self):
        """cur/ new/ tmp/ are made; a folder also gets the maildirfolder marker."""
        self.assertEqual(sorted(os.listdir(self.path)), ["cur", "new", "tmp"])
        folder = os.path.join(self.path, ".Sub")
        files.makeMaildir(folder, folder=True)
        files.makeMaildir(folder, folder=True)
        self.assertEqual(sorted(os.listdir(folder)), ["cur", "maildirfolder", "new", "tmp"])

    def test_listMessages(self):
        """Files of new/ and cur/ by base name; dot files and names with CR/LF are skipped."""
        self.touch("new", "a,S=1")
        self.touch("cur", "b:2,S")
        self.touch("cur", ".hidden")
        self.touch("cur", "bad\nname")
        self.touch("tmp", "c")
        self.assertEqual(files.listMessages(self.path),
                         {"a,S=1": ("new", "a,S=1"), "b": ("cur", "b:2,S")})
        self.assertEqual(files.listMessages(self.mktemp()), {})

    def test_createTemporary(self):
        """A new, empty file in tmp/ under a unique name; a missing tmp/ raises."""
        tmpDir = os.path.join(self.path, "tmp")
        name, path, fd = files.createTemporary(tmpDir)
        os.close(fd)
        self.assertEqual(path, os.path.join(tmpDir, name))
        self.assertEqual(os.listdir(tmpDir), [name])
        self.assertRaises(FileNotFoundError, files.createTemporary, self.mktemp())

    def test_removeStale(self):
        """Files in tmp/ older than the limit go; younger ones and directories stay."""
        self.touch("tmp", "old", age=37 * 3600)
        self.touch("tmp", "young", age=3600)
        os.mkdir(os.path.join(self.path, "tmp", "dir"))
        self.assertEqual(files.removeStale(os.path.join(self.path, "tmp"), files.TMP_MAX_AGE), 1)
        self.assertEqual(sorted(os.listdir(os.path.join(self.path, "tmp"))), ["dir", "young"])
        self.assertEqual(files.removeStale(self.mktemp(), files.TMP_MAX_AGE), 0)

    def test_stamp(self):
        """A stamp changes when the directory does; a missing path has None."""
        before = files.stamp(os.path.join(self.path, "new"))
        self.assertEqual(len(before), 3)
        self.touch("new", "a")
        os.utime(os.path.join(self.path, "new"), ns=(0, before[0] + 10 ** 9))
        self.assertNotEqual(files.stamp(os.path.join(self.path, "new")), before)
        self.assertIsNone(files.stamp(os.path.join(self.path, "missing")))


def useUmask(testCase, mask=0o022):
    """Run the test under C{mask} (the usual 022 by default), restored afterwards."""
    testCase.addCleanup(os.umask, os.umask(mask))


def modes(top):
    """C{{relative path: mode}} of C{top} and everything below it."""
    found = {".": stat.S_IMODE(os.stat(top).st_mode)}
    for directory, dirNames, fileNames in os.walk(top):
        for name in dirNames + fileNames:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, top)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


class PrivateModeTests(TestCase):
    """
    What mailstack creates is private to its user: directories 0700 and
    files 0600, under the usual umask 022 as under any other.
    """

    def setUp(self):
        useUmask(self)
        self.top = self.mktemp()

    def test_makeDirectories(self):
        """Every missing directory on the way is made 0700; existing ones are left alone."""
        os.makedirs(self.top)
        os.chmod(self.top, 0o755)
        files.makeDirectories(os.path.join(self.top, "a", "b", "c"))
        files.makeDirectories(os.path.join(self.top, "a", "b", "c"))
        self.assertEqual(modes(self.top), {".": 0o755, "a": 0o700, os.path.join("a", "b"): 0o700,
                                           os.path.join("a", "b", "c"): 0o700})

    def test_makeDirectoriesOverFile(self):
        """A file in the way is an error, as with os.makedirs."""
        os.makedirs(self.top)
        open(os.path.join(self.top, "f"), "w").close()
        self.assertRaises(FileExistsError, files.makeDirectories, os.path.join(self.top, "f"))
        self.assertRaises(OSError, files.makeDirectories, os.path.join(self.top, "f", "g"))

    def test_makeDirectoriesUnderPermissiveUmask(self):
        """Even with umask 000 the directories are 0700."""
        useUmask(self, 0)
        files.makeDirectories(os.path.join(self.top, "a"))
        self.assertEqual(set(modes(self.top).values()), {0o700})

    def test_privateOpener(self):
        """open(..., opener=privateFile) creates a 0600 file, in every writing mode."""
        os.makedirs(self.top)
        for mode, name in (("w", "w"), ("a", "a"), ("xb", "x"), ("w+b", "wb")):
            with open(os.path.join(self.top, name), mode, opener=files.privateFile) as f:
                f.write(b"x" if "b" in mode else "x")
        found = modes(self.top)
        del found["."]
        self.assertEqual(found, {"w": 0o600, "a": 0o600, "x": 0o600, "wb": 0o600})

    def test_makeMaildir(self):
        """
        A Maildir whose root and parents (var/mail/<domain>/<user>) do not
        exist yet: every directory made is 0700, the folder marker 0600.
        """
        os.makedirs(self.top)
        user = os.path.join(self.top, "mail", "lab.test", "alice")
        files.makeMaildir(user, folder=False)
        files.makeMaildir(os.path.join(user, ".Sent"), folder=True)
        found = modes(self.top)
        del found["."]
        self.assertEqual({path for path, mode in found.items() if mode != 0o700},
                         {os.path.join("mail", "lab.test", "alice", ".Sent", "maildirfolder")})
        self.assertEqual(found[os.path.join("mail", "lab.test", "alice", ".Sent",
                                            "maildirfolder")], 0o600)
        self.assertIn(os.path.join("mail", "lab.test"), found)

    def test_createTemporary(self):
        """A message's temporary file is 0600."""
        files.makeMaildir(self.top, folder=False)
        name, path, fd = files.createTemporary(os.path.join(self.top, "tmp"))
        os.close(fd)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)


class RecordingOS:
    """The os module, recording the durability steps: fsync (of a file or a directory) and replace."""

    def __init__(self, failOn=None):
        self.steps = []
        self.failOn = failOn

    def _step(self, name):
        self.steps.append(name)
        if name == self.failOn:
            raise OSError(28, "No space left on device")

    def fsync(self, fd):
        self._step("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        os.fsync(fd)

    def replace(self, source, target):
        self._step("replace")
        os.replace(source, target)

    def __getattr__(self, name):
        return getattr(os, name)


class AtomicWriteTests(TestCase):
    """
    L{files.atomicWrite}, L{files.atomicFile}, L{files.commitFile} and
    L{files.fsyncDirectory}: a file is replaced all or nothing, durably.
    """

    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "file")
        with open(self.path, "wb") as f:
            f.write(b"old\n")

    def read(self):
        with open(self.path, "rb") as f:
            return f.read()

    def assertLeft(self, content):
        """The target holds C{content} and nothing else is in its directory."""
        self.assertEqual(self.read(), content)
        self.assertEqual(os.listdir(self.directory), ["file"])

    def record(self, failOn=None):
        recording = RecordingOS(failOn)
        self.patch(files, "os", recording)
        return recording

    def test_replaces(self):
        """The new content replaces the old; only the file is left, 0600 under umask 022."""
        useUmask(self)
        files.atomicWrite(self.path, b"new\n")
        self.assertLeft(b"new\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_mode(self):
        """The mode asked for is the file's, whatever the umask."""
        useUmask(self, 0o077)
        files.atomicWrite(self.path, b"new\n", 0o640)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)

    def test_durableOrder(self):
        """The file is fsynced before the rename, its directory after it."""
        recording = self.record()
        files.atomicWrite(self.path, b"new\n")
        self.assertEqual(recording.steps, ["fsync file", "replace", "fsync dir"])

    def test_noDirectorySync(self):
        """syncDirectory=False: the file is fsynced, the directory is not."""
        recording = self.record()
        files.atomicWrite(self.path, b"new\n", syncDirectory=False)
        self.assertEqual(recording.steps, ["fsync file", "replace"])
        self.assertLeft(b"new\n")

    def test_noSync(self):
        """fsync=False, syncDirectory=False (a rebuildable file): only the rename."""
        recording = self.record()
        files.atomicWrite(self.path, b"new\n", fsync=False, syncDirectory=False)
        self.assertEqual(recording.steps, ["replace"])
        self.assertLeft(b"new\n")

    def test_failingWriteKeepsOld(self):
        """A write whose fsync or rename fails (disk full) leaves the old content and no temporary file."""
        for step in ("fsync file", "replace"):
            self.record(failOn=step)
            self.assertRaises(OSError, files.atomicWrite, self.path, b"new\n")
            self.assertLeft(b"old\n")

    def test_failingBlockKeepsOld(self):
        """An exception while the block writes leaves the old content and no temporary file."""
        with self.assertRaises(ZeroDivisionError):
            with files.atomicFile(self.path) as f:
                f.write(b"half")
                1 / 0
        self.assertLeft(b"old\n")

    def test_failingDirectorySync(self):
        """If only the directory fsync fails, the error is raised and the new file is in place."""
        self.record(failOn="fsync dir")
        self.assertRaises(OSError, files.atomicWrite, self.path, b"new\n")
        self.assertLeft(b"new\n")

    def test_temporaryGiven(self):
        """With temporary=, the file is written there (e.g. a queue's tmp/) and renamed."""
        os.mkdir(os.path.join(self.directory, "tmp"))
        temporary = os.path.join(self.directory, "tmp", "t")
        with files.atomicFile(self.path, temporary=temporary) as f:
            self.assertEqual(os.listdir(os.path.join(self.directory, "tmp")), ["t"])
            f.write(b"new\n")
        self.assertEqual(self.read(), b"new\n")
        self.assertEqual(os.listdir(os.path.join(self.directory, "tmp")), [])

    def test_temporaryLinkRefused(self):
        """A symbolic link planted at the temporary path is refused, not followed."""
        elsewhere = os.path.join(self.directory, "elsewhere")
        temporary = os.path.join(self.directory, "t")
        os.symlink(elsewhere, temporary)
        self.assertRaises(OSError, files.atomicWrite, self.path, b"new\n",
                          temporary=temporary)
        self.assertFalse(os.path.exists(elsewhere))
        self.assertEqual(self.read(), b"old\n")

    def test_openDescriptor(self):
        """fd=: a file already created and open (a dotlock) becomes the target."""
        lock = self.path + ".lock"
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with files.atomicFile(self.path, temporary=lock, fd=fd) as f:
            f.write(b"new\n")
        self.assertLeft(b"new\n")

    def test_commitFile(self):
        """commitFile puts a file written under another name in place, durably."""
        recording = self.record()
        temporary = os.path.join(self.directory, "t")
        f = open(temporary, "wb")
        f.write(b"new\n")
        files.commitFile(f, temporary, self.path)
        self.assertTrue(f.closed)
        self.assertEqual(recording.steps, ["fsync file", "replace", "fsync dir"])
        self.assertLeft(b"new\n")

    def test_fsyncDirectory(self):
        """fsyncDirectory fsyncs the directory itself; a file is refused."""
        recording = self.record()
        files.fsyncDirectory(self.directory)
        self.assertEqual(recording.steps, ["fsync dir"])
        self.assertRaises(NotADirectoryError, files.fsyncDirectory, self.path)
