"""
The console's account pages.

  - C{/accounts/} (admins): every account; add one, import a class's CSV
    (the same import as C{mailstack user import}).
  - C{/accounts/ADDRESS}: one account, its folders and message counts; an
    admin may reset its password, make it an admin or not, empty its mail or
    seed it with the sample messages. A user who is not an admin sees only
    her own account, without those forms.

User changes run in the reactor's thread pool (the backends are synchronous);
mail goes through the asynchronous store contract (L{mailstack.web.mailboxes}).
Every form redirects back with a line saying what it did (or why not).
"""

import io
from urllib.parse import quote

from twisted.internet import defer
from twisted.logger import Logger

from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.auth.passwords import SCHEMES, UserError
from mailstack.storage.interfaces import StoreError
from mailstack.web.mailboxes import SAMPLES, emptyAccount, seedAccount
from mailstack.web.mailread import folders
from mailstack.web.page import Answer, Page, formValue, redirectTo

log = Logger()

# The largest class file the import form takes.
MAX_CSV = 1024 * 1024


def accountPath(address):
    return "/accounts/" + quote(address, safe="@")


class AccountsPage(Page):
    """C{/accounts/} and C{/accounts/ADDRESS}."""

    title = "Accounts"

    def _target(self, request):
        """The address in the path, or L{None} for the list."""
        segments = [s for s in request.postpath if s]
        if not segments:
            return None
        return segments[0].decode("utf-8", "replace")

    def get(self, request, principal):
        target = self._target(request)
        if target is None:
            if not principal.admin:
                return self.refuse(request, 403, "Only admins see every account.")
            return self.context.directory.listUsers().addCallback(self._list)
        return self._account(request, principal, target)

    def _list(self, users):
        return Answer("accounts.html", users=users, schemes=SCHEMES)

    @defer.inlineCallbacks
    def _account(self, request, principal, target):
        address = self.context.directory.normalize(target)
        if address is None or not principal.maySee(address):
            return self.refuse(request, 403, "You may see only your own account.")
        user = yield self.context.directory.lookup(address)
        if user is None:
            return self.refuse(request, 404, "There is no account %s." % (address,))
        infos = yield folders(self.context.store, address)
        return Answer("account.html", title=address, account=user, folders=infos,
                      schemes=SCHEMES, samples=len(SAMPLES), own=address == principal.address)

    # Forms (admins only)

    def post(self, request, principal):
        if not principal.admin:
            return self.refuse(request, 403, "Only admins change accounts.")
        target = self._target(request)
        action = formValue(request, "action")
        if target is None:
            handlers = {"add": self._add, "import": self._import}
            back = "/accounts/"
        else:
            address = self.context.directory.normalize(target)
            if address is None:
                return self.refuse(request, 404, "There is no account %s." % (target,))
            handlers = {"password": self._password, "admin": self._admin,
                        "empty": self._empty, "seed": self._seed}
            back = accountPath(address)
            target = address
        handler = handlers.get(action)
        if handler is None:
            return self.refuse(request, 400, "Unknown action %r." % (action,))
        d = defer.maybeDeferred(self._exists, target)
        d.addCallback(lambda _: handler(request, principal, target))

        def done(text):
            log.info("console: {admin}: {text}", admin=principal.address, text=text)
            self.auth.notify(request, text)

        def refused(failure):
            failure.trap(UserError, UserDirectoryUnavailable, StoreError)
            self.auth.notify(request, failure.getErrorMessage(), error=True)
        d.addCallbacks(done, refused)
        d.addCallback(lambda _: redirectTo(request, back))
        return d

    @defer.inlineCallbacks
    def _exists(self, address):
        """Fail with a L{UserError} if C{address} (not L{None}) has no account."""
        if address is not None and (yield self.context.directory.lookup(address)) is None:
            raise UserError("There is no account %s." % (address,))

    def _add(self, request, principal, target):
        users = self.context.users
        address = formValue(request, "address").strip()
        password = formValue(request, "password")
        scheme = formValue(request, "scheme", "BLF-CRYPT")
        admin = formValue(request, "admin") == "on"

        def add():
            checked = users.checkNewAddress(address)
            users.addUser(checked, password, scheme=scheme)
            if admin:
                users.setAdmin(checked, True)
            return checked
        d = self.context.runInThread(add)
        return d.addCallback(lambda added: "Added %s (%s%s)." % (
            added, scheme, ", admin" if admin else ""))

    def _import(self, request, principal, target):
        text, name = self._csvText(request)
        if not text.strip():
            raise UserError("Choose a CSV file or paste its rows.")
        update = formValue(request, "update") == "on"
        source = io.StringIO(text)
        source.name = name
        d = self.context.runInThread(self.context.users.importCSV, source, update)

        def imported(result):
            summary = "%s: added %d, updated %d, skipped %d." % (
                name, len(result.added), len(result.updated), len(result.skipped))
            if result.differing:
                summary += " With another password in the file (tick update to reset): %s." % (
                    ", ".join(result.differing),)
            return summary
        return d.addCallback(imported)

    def _csvText(self, request):
        """The uploaded file's text (or the pasted rows) and a name for messages."""
        upload = (request.args or {}).get(b"file", [b""])[0]
        if upload:
            if len(upload) > MAX_CSV:
                raise UserError("The file is larger than %d KiB." % (MAX_CSV // 1024,))
            try:
                return upload.decode("utf-8-sig"), "the uploaded file"
            except UnicodeDecodeError:
                raise UserError("The file is not UTF-8 text.")
        return formValue(request, "csv"), "the pasted rows"

    def _password(self, request, principal, address):
        password = formValue(request, "password")
        scheme = formValue(request, "scheme") or None
        d = self.context.runInThread(self.context.users.setPassword, address, password, scheme)

        def changed(scheme):
            if address != principal.address:
                self.auth.sessions.forget(address)
            return "Changed the password of %s (%s)." % (address, scheme)
        return d.addCallback(changed)

    def _admin(self, request, principal, address):
        admin = formValue(request, "admin") == "on"
        if address == principal.address and not admin:
            raise UserError("You cannot take your own admin flag away here "
                            "(use mailstack user admin ADDRESS off).")
        d = self.context.runInThread(self.context.users.setAdmin, address, admin)

        def changed(_):
            self.auth.sessions.forget(address)
            return "%s is %s." % (address, "an admin" if admin else "not an admin")
        return d.addCallback(changed)

    def _empty(self, request, principal, address):
        d = emptyAccount(self.context.store, address)
        return d.addCallback(lambda removed: "Removed %d message%s from %s." % (
            removed, "" if removed == 1 else "s", address))

    def _seed(self, request, principal, address):
        d = seedAccount(self.context, address)
        return d.addCallback(lambda count: "Delivered %d sample message%s to %s." % (
            count, "" if count == 1 else "s", address))
