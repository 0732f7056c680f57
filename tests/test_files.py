"""
Tests for L{mailstack.storage.files}: Maildir's directories, file names and tmp/.
"""

import os
import re
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
        first, second = files.uniqueName(), files.uniqueName()
        match = re.match(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)\.(.*)$", first)
        self.assertIsNotNone(match, first)
        self.assertLessEqual(abs(int(match.group(1)) - time.time()), 2)
        self.assertEqual(int(match.group(3)), os.getpid())
        self.assertEqual(match.group(5), "a\\057b\\072c\\054d")
        self.assertGreater(int(second.split("Q")[1].split(".")[0]), int(match.group(4)))

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
