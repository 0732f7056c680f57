"""
The stores the config may name (C{[storage] backend}), as protocols are named
in C{service.PROTOCOLS}: name -> L{IStoreBackend}.

Built in: C{maildir} (the default: Dovecot-compatible Maildir++ under
C{data_dir/mail}) and C{memory} (everything in this process, lost at exit: for
test suites and demonstrations). A third-party package adds one without
touching mailstack by declaring an entry point in the C{mailstack.stores}
group whose object provides L{IStoreBackend}, e.g. in its C{pyproject.toml}::

    [project.entry-points."mailstack.stores"]
    s3 = "mypackage.store:S3Backend"

and selecting it with C{[storage] backend = "s3"} (docs/storage.md).
"""

from importlib import metadata

from mailstack.storage.interfaces import IStoreBackend

ENTRY_POINT_GROUP = "mailstack.stores"

DEFAULT_BACKEND = "maildir"

# Named like entry points and loaded only when asked for (the config names a
# store without importing every store module).
_BUILTINS = {
    "maildir": "mailstack.storage.account:MaildirBackend",
    "memory": "mailstack.storage.memory:MemoryBackend",
}


def _builtins():
    return {name: metadata.EntryPoint(name, value, ENTRY_POINT_GROUP)
            for name, value in _BUILTINS.items()}


def _entryPoints():
    """Stores other packages declare (C{mailstack.stores}), by name."""
    return {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def backendNames():
    """The names C{[storage] backend} accepts, sorted."""
    return sorted(set(_BUILTINS) | set(_entryPoints()))


def backendNamed(name):
    """
    @return: the L{IStoreBackend} called C{name}: a built-in one, else the
        object a C{mailstack.stores} entry point of that name loads.
    @raise KeyError: if there is none, or it does not provide L{IStoreBackend}.
    @raise ImportError: if its module (or a library it needs) cannot be imported.
    """
    entries = _builtins()
    if name not in entries:
        entries = _entryPoints()
    backend = entries[name].load()
    if not IStoreBackend.providedBy(backend):
        raise KeyError(name)
    return backend
