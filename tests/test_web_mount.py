"""
Tests for L{mailstack.web.app.mount}: parts of the console that share a path
prefix (autoconfig's C{/mail/config-v1.1.xml}, the mail viewer's C{/mail/})
both stay reachable, whichever is mounted first.
"""

from twisted.trial import unittest
from twisted.web.resource import Resource

from mailstack.web.app import Directory, mount


def section(*names):
    """A resource holding the children C{names} (like the viewer's /mail/)."""
    folder = Resource()
    for name in names:
        folder.putChild(name, Resource())
    return folder


class MountTests(unittest.TestCase):
    def test_deeperFirst(self):
        """A part mounted at /mail after one at /mail/config-v1.1.xml keeps that child."""
        root, leaf, mail = Directory(), Resource(), section(b"folder")
        mount(root, (b"mail", b"config-v1.1.xml"), leaf)
        mount(root, (b"mail",), mail)
        self.assertIs(root.children[b"mail"], mail)
        self.assertIs(mail.children[b"config-v1.1.xml"], leaf)
        self.assertIn(b"folder", mail.children)

    def test_folderFirst(self):
        """A deeper path mounted after /mail goes into the part at /mail."""
        root, leaf, mail = Directory(), Resource(), section(b"folder")
        mount(root, (b"mail",), mail)
        mount(root, (b"mail", b"config-v1.1.xml"), leaf)
        self.assertIs(mail.children[b"config-v1.1.xml"], leaf)

    def test_partsOwnChildWins(self):
        """Where both have a child of the same name, the part mounted at the folder keeps its own."""
        root, mail = Directory(), section(b"send")
        own = mail.children[b"send"]
        mount(root, (b"mail", b"send"), Resource())
        mount(root, (b"mail",), mail)
        self.assertIs(mail.children[b"send"], own)
