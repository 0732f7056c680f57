"""
The console's site: L{buildRoot} puts the console's pages and every optional
part's resources under one root.

Optional parts are listed in L{MOUNTS}: a module, the function in it that
makes its resources, and how that function is called. A part whose module is
not there is left out, so each part lands on its own:

  - the REST API: C{mailstack.web.api.apiResource(context, auth)} at C{/api/};
  - metrics: C{mailstack.web.metrics.metricsResources(context)} ->
    C{{b"metrics": r, b"healthz": r}} at the top;
  - client autoconfiguration: C{mailstack.web.autoconfig.autoconfigResources(context)}
    -> C{{(b".well-known", b"autoconfig", ...): r, ...}};
  - the mail viewer and live transcripts:
    C{mailstack.web.viewer.viewerResources(context, auth)} -> C{{path tuple: r}}.
  - the class report: C{mailstack.web.reportpages.reportResources(context, auth)}
    -> C{/reports} and C{/reports.csv};
  - API tokens: C{mailstack.web.tokenpages.tokenResources(context, auth)} -> C{/tokens}.
  - captured mail: C{mailstack.web.capturepages.captureResources(context, auth)}
    -> C{/capture/}.

A part's module may also define C{CONSOLE_LINKS = [(label, href, adminOnly)]}
for the header of every console page, or C{consoleLinks(context)} returning
them when they depend on the server (the capture view's only when it keeps
captured mail).
"""

import importlib

from twisted.web import resource, static

from mailstack.web.accounts import AccountsPage
from mailstack.web.auth import ConsoleAuth
from mailstack.web.console import HomePage, LoginPage, LogoutPage
from mailstack.web.status import StatusPage

def _called(function, context, auth):
    return function(context, auth)


def _calledWithContext(function, context, auth):
    return function(context)


def _atAPI(function, context, auth):
    return {(b"api",): function(context, auth)}


def _atTop(function, context, auth):
    return {(name,): child for name, child in function(context).items()}


# (module, function, how to call it and where its resources go: a function of
# (function, context, auth) -> {path tuple: resource}).
MOUNTS = (
    ("mailstack.web.api", "apiResource", _atAPI),
    ("mailstack.web.metrics", "metricsResources", _atTop),
    ("mailstack.web.autoconfig", "autoconfigResources", _calledWithContext),
    ("mailstack.web.viewer", "viewerResources", _called),
    ("mailstack.web.reportpages", "reportResources", _called),
    ("mailstack.web.tokenpages", "tokenResources", _called),
    ("mailstack.web.capturepages", "captureResources", _called),
)

# The console's own pages: path segment -> (page class, header label or None,
# admin only in the header).
PAGES = {
    b"": (HomePage, None, False),
    b"login": (LoginPage, None, False),
    b"logout": (LogoutPage, None, False),
    b"accounts": (AccountsPage, "Accounts", True),
    b"status": (StatusPage, "Status", False),
}


class Directory(resource.Resource):
    """A path segment that only holds children: itself a 404."""

    def render(self, request):
        return resource.NoResource().render(request)


def mount(root, path, child):
    """
    Put C{child} at C{path} (a tuple of segments) under C{root}, making the
    folders. A folder made earlier for a deeper path (C{/mail/config-v1.1.xml}
    of autoconfig) keeps its children under a part mounted at the folder
    itself later (the mail viewer's C{/mail}), whatever order they come in.
    """
    node = root
    for segment in path[:-1]:
        existing = node.children.get(segment)
        if existing is None:
            existing = Directory()
            node.putChild(segment, existing)
        node = existing
    replaced = node.children.get(path[-1])
    if isinstance(replaced, Directory):
        for name, grandchild in replaced.children.items():
            if name not in child.children:
                child.putChild(name, grandchild)
    node.putChild(path[-1], child)


def optionalParts(mounts=MOUNTS):
    """
    @return: C{[(module, function, placement)]} for the parts of C{mounts}
        whose module exists; a module that exists but fails to import raises.
    """
    found = []
    for moduleName, functionName, placement in mounts:
        try:
            module = importlib.import_module(moduleName)
        except ModuleNotFoundError as e:
            if e.name != moduleName:
                raise
            continue
        found.append((module, getattr(module, functionName), placement))
    return found


def buildRoot(context, mounts=MOUNTS):
    """
    The console's root resource: its pages, the static files, and every part
    of C{mounts} that is available.

    @param context: the L{mailstack.web.context.WebContext}; its
        C{navigation} is filled with the header links.
    @return: a L{twisted.web.resource.Resource}.
    """
    auth = ConsoleAuth(context)
    root = Directory()
    navigation = [("Home", "/", False)]
    for segment, (pageClass, label, adminOnly) in PAGES.items():
        root.putChild(segment, pageClass(context, auth))
        if label:
            navigation.append((label, "/" + segment.decode("ascii") + "/", adminOnly))
    staticFiles = static.File(_staticDirectory())
    staticFiles.directoryListing = lambda: resource.NoResource()
    root.putChild(b"static", staticFiles)
    for module, function, placement in optionalParts(mounts):
        for path, child in placement(function, context, auth).items():
            mount(root, path, child)
        links = getattr(module, "consoleLinks", None)
        navigation.extend(links(context) if links is not None
                          else getattr(module, "CONSOLE_LINKS", ()))
    context.navigation[:] = navigation
    root.auth = auth
    return root


def _staticDirectory():
    from importlib import resources
    return str(resources.files("mailstack.web") / "static")
