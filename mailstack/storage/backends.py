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


def _builtins():
    # Imported here: the backends import the store modules, which the config
    # (importing this module for the names) does not need.
    from mailstack.storage.account import MaildirBackend
    backends = {MaildirBackend.name: MaildirBackend}
    try:
        from mailstack.storage.memory import MemoryBackend
    except ImportError:  # pragma: no cover - while the memory store is being added
        pass
    else:
        backends[MemoryBackend.name] = MemoryBackend
    return backends


def _entryPoints():
    """Backends other packages declare (C{mailstack.stores}), by name."""
    found = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry
    return found


def backendNames():
    """The names C{[storage] backend} accepts, sorted."""
    return sorted(set(_builtins()) | set(_entryPoints()))


def backendNamed(name):
    """
    @return: the L{IStoreBackend} called C{name}: a built-in one, else the
        object a C{mailstack.stores} entry point of that name loads.
    @raise KeyError: if there is none, or it does not provide L{IStoreBackend}.
    """
    builtins = _builtins()
    if name in builtins:
        return builtins[name]
    entry = _entryPoints().get(name)
    if entry is None:
        raise KeyError(name)
    backend = entry.load()
    if not IStoreBackend.providedBy(backend):
        raise KeyError(name)
    return backend
