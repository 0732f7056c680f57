"""
End-to-end tests of the IMAP extensions with imaplib (and raw sockets where
imaplib has no method): SPECIAL-USE folders of a new user, LIST-EXTENDED and
LIST-STATUS, MOVE and COPYUID, CONDSTORE and QRESYNC across sessions.
"""

from twisted.internet import defer

from tests.e2e.test_imap import MESSAGE, IMAPTestCase, readUntilTagged


class ListExtensionTests(IMAPTestCase):
    """
    LIST-EXTENDED, LIST-STATUS, SPECIAL-USE over the wire.
    """

    @defer.inlineCallbacks
    def test_newUserFolders(self):
        """The demo user's first login creates Drafts, Sent, Trash, Junk, Archive, subscribed."""
        def session():
            c = self.loggedIn()
            typ, listed = c.list()
            typ, subscribed = c.lsub()
            c.logout()
            return listed, subscribed
        listed, subscribed = yield self.inThread(session)
        self.assertIn(b'(\\HasNoChildren \\Sent) "/" "Sent"', listed)
        self.assertIn(b'(\\HasNoChildren \\Trash) "/" "Trash"', listed)
        self.assertEqual(len(listed), 6)
        self.assertEqual(sorted(subscribed),
                         [b'() "/" "Archive"', b'() "/" "Drafts"', b'() "/" "Junk"',
                          b'() "/" "Sent"', b'() "/" "Trash"'])

    @defer.inlineCallbacks
    def test_listExtendedAndStatus(self):
        """LIST (SPECIAL-USE) ... RETURN (STATUS (MESSAGES)) and CREATE (USE)."""
        self.deliver(MESSAGE)

        def session():
            s, f = self.raw()
            s.sendall(b"a LOGIN demo@lab.test demo\r\n")
            readUntilTagged(f, b"a")
            s.sendall(b"b CREATE Spam (USE (\\Junk))\r\n")
            created = readUntilTagged(f, b"b")
            s.sendall(b'c LIST (SPECIAL-USE) "" "S*" RETURN (STATUS (MESSAGES))\r\n')
            special = readUntilTagged(f, b"c")
            s.sendall(b'd LIST "" ("INBOX" "Nothing*") RETURN (STATUS (MESSAGES UNSEEN))\r\n')
            inbox = readUntilTagged(f, b"d")
            s.close()
            return created, special, inbox
        created, special, inbox = yield self.inThread(session)
        self.assertEqual(created, [b"b OK CREATE completed\r\n"])
        self.assertEqual(special, [b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n',
                                   b'* STATUS "Sent" (MESSAGES 0)\r\n',
                                   b'* LIST (\\HasNoChildren \\Junk) "/" "Spam"\r\n',
                                   b'* STATUS "Spam" (MESSAGES 0)\r\n',
                                   b"c OK LIST completed\r\n"])
        self.assertEqual(inbox, [b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n',
                                 b'* STATUS "INBOX" (MESSAGES 1 UNSEEN 1)\r\n',
                                 b"d OK LIST completed\r\n"])
