"""
The console's own pages: the login form, logging out, and the home page that
says who is signed in and what they may open.
"""

from mailstack.web.auth import LoginFailed
from mailstack.web.page import Answer, Page, formValue, localPath, redirectTo


class LoginPage(Page):
    """
    C{/login}: the form (GET) and the check (POST). A failure shows one
    generic line whatever went wrong, after the shared penalty's wait.
    """

    title = "Log in"
    loginRequired = False

    def get(self, request, principal):
        return Answer("login.html", next=localPath(formValue(request, "next")),
                      address="", error=None)

    def post(self, request, principal):
        address = formValue(request, "address").strip()
        password = formValue(request, "password")
        target = localPath(formValue(request, "next"))
        d = self.auth.login(request, address, password)

        def failed(failure):
            failure.trap(LoginFailed)
            return Answer("login.html", 401, next=target, address=address,
                          error=failure.getErrorMessage())
        d.addCallbacks(lambda _: redirectTo(request, target), failed)
        return d


class LogoutPage(Page):
    """C{/logout}: a POST (with the CSRF token) ends the session."""

    title = "Log out"

    def get(self, request, principal):
        return Answer("logout.html")

    def post(self, request, principal):
        self.auth.logout(request)
        return redirectTo(request, "/login")


class HomePage(Page):
    """C{/}: who is signed in, and the pages they may open."""

    title = "Console"

    def get(self, request, principal):
        return Answer("home.html")
