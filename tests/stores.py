"""
Run a protocol's test suite against every store (issue 13: "the IMAP, POP3
and SMTP suites run against both stores through one parametrised mixin").

A suite's mixin builds its store with C{makeStore()}: L{StoreChoice} gives it
the Maildir store in a temporary directory, or the memory store when the
class says C{storeName = "memory"}. L{everyStore} adds, for each test case of
a module that uses the mixin, a twin running the same tests on the other
store; a class whose tests look at Maildir files on purpose says
C{maildirOnly = True} and gets no twin.
"""

from twisted.trial import unittest

from mailstack.storage.account import MaildirStore
from mailstack.storage.memory import MemoryStore

STORE_NAMES = ("maildir", "memory")


class StoreChoice:
    """
    C{makeStore()} for a test case: C{storeName} picks the store.

    @ivar threadRunner: the Maildir store's C{runInThread}, or L{None} (its
        file work done at once, in the calling thread).
    """

    storeName = "maildir"
    maildirOnly = False
    threadRunner = None

    def makeStore(self):
        if self.storeName == "memory":
            return MemoryStore()
        return MaildirStore(self.mktemp(), runInThread=self.threadRunner)


def everyStore(namespace):
    """
    For each L{StoreChoice} test case in C{namespace} (a module's
    C{globals()}) that is not C{maildirOnly}, add C{<Name>Memory}: the same
    tests on the memory store.
    """
    for name, value in list(namespace.items()):
        if (isinstance(value, type) and issubclass(value, StoreChoice)
                and issubclass(value, unittest.TestCase) and not value.maildirOnly
                and value.storeName == "maildir" and not name.endswith("Memory")):
            twin = type(name + "Memory", (value,), {
                "storeName": "memory",
                "__doc__": (value.__doc__ or name) + "\n(On the memory store.)\n",
                "__module__": namespace["__name__"],
            })
            namespace[twin.__name__] = twin
