"""
L{UserDirectory}: the server's asynchronous view (L{IUserDirectory}) of any
L{IUserBackend}. Every backend call runs in the reactor's thread pool, so a
bcrypt, a disk read or a locked database never stalls other sessions. A
backend's storage failure (L{UserDirectoryUnavailable}, or an C{OSError}
from a file) fails the Deferred with L{UserDirectoryUnavailable}, which the
protocols answer with their temporary errors.
"""

from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from mailstack.auth.interfaces import IUserDirectory, UserDirectoryUnavailable

log = Logger()


@implementer(IUserDirectory)
class UserDirectory:
    """
    @param backend: the L{IUserBackend}.
    @param reactor: its C{getThreadPool()} runs the backend; the global
        reactor by default (and the global pool for a clock without one).
    """

    def __init__(self, backend, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.backend = backend
        self.reactor = reactor
        # allPlaintextSecrets' last answer, for a backend that cannot answer
        # on the reactor thread; refreshed in a thread (one at a time).
        self._plaintext = False
        self._fetching = False
        self._waiters = []

    def _inThread(self, method, *args):
        def call():
            try:
                return method(*args)
            except OSError as e:
                raise UserDirectoryUnavailable("users in %s: %s" % (
                    self.backend.path, e.strerror or e))
        if not hasattr(self.reactor, "getThreadPool"):
            return threads.deferToThread(call)
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), call)

    def normalize(self, name):
        return self.backend.normalize(name)

    def lookup(self, name):
        if self.backend.answersWithoutWaiting:
            # One os.stat, then memory (the passwd-file), as allPlaintextSecrets
            # is asked on every EHLO: no thread hop for each SMTP recipient.
            return self._now(self.backend.lookup, name)
        return self._inThread(self.backend.lookup, name)

    def _now(self, method, *args):
        """C{method(*args)} in this thread, as a Deferred, failing as L{_inThread}'s would."""
        try:
            return defer.succeed(method(*args))
        except OSError as e:
            return defer.fail(UserDirectoryUnavailable("users in %s: %s" % (
                self.backend.path, e.strerror or e)))
        except Exception:
            return defer.fail()

    def verifyPassword(self, name, password):
        return self._inThread(self.backend.verifyPassword, name, password)

    def verifyLogin(self, name, password):
        def check():
            if not self.backend.verifyPassword(name, password):
                return None
            return self.backend.lookup(name)
        return self._inThread(check)

    def plaintextSecret(self, name):
        return self._inThread(self.backend.plaintextSecret, name)

    def listUsers(self):
        return self._inThread(self.backend.listUsers)

    def allPlaintextSecrets(self):
        """
        The backend's answer where it gives one without waiting (the
        passwd-file: one os.stat); else the last answer, while a fresh one is
        fetched in a thread (unless a fetch is under way), so a change (the
        admin command's) is followed a moment later. Until a first answer has
        come: C{False} (CRAM-MD5 and APOP not offered unasked, the safe side).
        """
        if self.backend.answersWithoutWaiting:
            return self.backend.allPlaintextSecrets()
        if not self._fetching:
            self._fetch()
        return self._plaintext

    def refreshPlaintextAnswer(self):
        """
        Fetch allPlaintextSecrets' answer in a thread: one asked for after
        this call (if a fetch is under way, another follows it).

        @return: a Deferred firing (with L{None}) once it has come.
        """
        waiting = defer.Deferred()
        self._waiters.append(waiting)
        if not self._fetching:
            self._fetch()
        return waiting

    def _fetch(self):
        self._fetching = True
        waiters, self._waiters = self._waiters, []
        d = self._inThread(self.backend.allPlaintextSecrets)
        d.addCallbacks(self._fetched, self._fetchFailed)
        d.addCallback(self._fetchDone, waiters)

    def _fetched(self, answer):
        self._plaintext = answer

    def _fetchFailed(self, failure):
        # The last answer stays; the next connection asks again.
        log.warn("cannot tell whether every user is PLAIN: {error}",
                 error=failure.getErrorMessage())

    def _fetchDone(self, _, waiters):
        self._fetching = False
        for waiting in waiters:
            waiting.callback(None)
        if self._waiters:
            self._fetch()
