"""
The user backends the config may name (C{[users] backend}), as protocols are
named in C{service.PROTOCOLS}: name -> L{IUserBackendPlugin}. Only
C{passwd-file} (the default) and C{sqlite} exist; another backend (a
PostgreSQL one, say) is a module providing an L{IUserBackendPlugin} and one
more entry here.
"""

from mailstack.auth.interfaces import IUserBackendPlugin
from mailstack.auth.sqlitedb import SQLiteBackend
from mailstack.auth.userdb import PasswdFileBackend

DEFAULT_BACKEND = PasswdFileBackend.name

BACKENDS = {plugin.name: plugin for plugin in (PasswdFileBackend, SQLiteBackend)}


def backendNamed(name, backends=None):
    """
    @return: the L{IUserBackendPlugin} called C{name}.
    @raise KeyError: if there is none (or the entry is not one).
    """
    plugin = (BACKENDS if backends is None else backends)[name]
    if not IUserBackendPlugin.providedBy(plugin):
        raise KeyError(name)
    return plugin
