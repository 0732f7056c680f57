"""
The user backends the config may name (C{[users] backend}), as protocols are
named in C{service.PROTOCOLS}: name -> L{IUserBackendPlugin}.

Built in: C{passwd-file} (the default: Dovecot's format), C{sqlite} (one
database file) and C{postgresql} (a database server, C{[users] dsn}). A
third-party package adds one without touching mailstack by declaring an
entry point in the C{mailstack.user_backends} group whose object provides
L{IUserBackendPlugin} (or L{IUserServerBackendPlugin}, to be given a DSN
rather than a path), e.g. in its C{pyproject.toml}::

    [project.entry-points."mailstack.user_backends"]
    ldap = "mypackage.users:LDAPBackend"

and selecting it with C{[users] backend = "ldap"} (docs/configuration.md).
"""

from importlib import metadata

from mailstack.auth.interfaces import IUserBackendPlugin, IUserServerBackendPlugin

ENTRY_POINT_GROUP = "mailstack.user_backends"

DEFAULT_BACKEND = "passwd-file"

# Named like entry points and loaded only when asked for, so that loading a
# config does not import a database driver (psycopg) it does not use, and a
# missing driver is one line about that backend only.
_BUILTINS = {
    "passwd-file": "mailstack.auth.userdb:PasswdFileBackend",
    "sqlite": "mailstack.auth.sqlitedb:SQLiteBackend",
    "postgresql": "mailstack.auth.pgdb:PostgreSQLBackend",
}


def _builtins():
    return {name: metadata.EntryPoint(name, value, ENTRY_POINT_GROUP)
            for name, value in _BUILTINS.items()}


def _entryPoints():
    """Backends other packages declare (C{mailstack.user_backends}), by name."""
    return {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def backendNames():
    """The names C{[users] backend} accepts, sorted."""
    return sorted(set(_BUILTINS) | set(_entryPoints()))


def backendNamed(name, backends=None):
    """
    @param backends: name -> plug-in (or entry point) to look in instead of
        the built-in and declared ones (for tests).
    @return: the L{IUserBackendPlugin} called C{name}: a built-in one, else the
        object a C{mailstack.user_backends} entry point of that name loads.
    @raise KeyError: if there is none, or it does not provide L{IUserBackendPlugin}.
    @raise ImportError: if its module (or a library it needs) cannot be imported.
    """
    if backends is None:
        backends = _builtins()
        if name not in backends:
            backends = _entryPoints()
    plugin = backends[name]
    if isinstance(plugin, metadata.EntryPoint):
        plugin = plugin.load()
    if not IUserBackendPlugin.providedBy(plugin):
        raise KeyError(name)
    return plugin


def locationKey(plugin):
    """
    The C{[users]} key that says where a backend's users are: C{dsn} for a
    database server (L{IUserServerBackendPlugin}), else C{path}.
    """
    return "dsn" if IUserServerBackendPlugin.providedBy(plugin) else "path"
