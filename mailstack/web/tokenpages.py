"""
C{/tokens}: a console user's API tokens (L{mailstack.web.tokens}): the list
(ids, names, creation times, never a token), a form to make one, shown once
on the page that answers the form, and a button to revoke each. Both forms
carry the session's CSRF token (L{mailstack.web.page.Page} refuses a POST
without it). Admins see and revoke only their own tokens here too; the
command (C{mailstack token list}) shows everyone's.
"""

from mailstack.web.page import Answer, Page, formValue
from mailstack.web.api import isoTime
from mailstack.web.tokens import TokenError, tokensFor

__all__ = ["tokenResources", "CONSOLE_LINKS"]

CONSOLE_LINKS = [("API tokens", "/tokens", False)]


class TokensPage(Page):
    """C{/tokens}: list (GET), make or revoke (POST, C{action} C{create} or C{revoke})."""

    title = "API tokens"

    def get(self, request, principal):
        return self.page(principal)

    def post(self, request, principal):
        action = formValue(request, "action")
        tokens = tokensFor(self.context)
        if action == "create":
            d = self.context.runInThread(tokens.create, principal.address,
                                         formValue(request, "name").strip() or "console")
            d.addCallback(lambda made: self.page(principal, made=made))
        elif action == "revoke":
            d = self.context.runInThread(tokens.revoke, formValue(request, "id"),
                                         principal.address)
            d.addCallback(lambda token: self.page(principal, notice="Revoked token %s (%s)." % (
                token.id, token.name)))
        else:
            return self.page(principal, error="Unknown action.", code=400)

        def refused(failure):
            failure.trap(TokenError)
            return self.page(principal, error=failure.getErrorMessage(), code=400)
        return d.addErrback(refused)

    def page(self, principal, made=None, notice=None, error=None, code=200):
        """The page: the user's tokens, with a new token or a line about the last action."""
        tokens = tokensFor(self.context)
        d = self.context.runInThread(tokens.list, principal.address)
        notices = []
        if notice:
            notices.append({"text": notice, "error": False})
        if error:
            notices.append({"text": error, "error": True})

        def render(listed):
            return Answer("tokens.html", code, tokens=listed, made=made, isoTime=isoTime,
                          notices=notices)
        return d.addCallback(render)


def tokenResources(context, auth):
    """The token page, for L{mailstack.web.app.buildRoot}: C{{path tuple: resource}}."""
    return {(b"tokens",): TokensPage(context, auth)}
