"""
Maildir's file conventions: the C{cur/ new/ tmp/} directories, unique names
(C{<sec>.M<usec>P<pid>Q<seq>.<host>}) with C{,S=} and C{,W=} sizes, the C{:2,<flags>}
info suffix, listing the message files, and cleaning C{tmp/}.

Also how mailstack creates anything under its data directory: directories
C{0700} (L{makeDirectories}) and files C{0600} (L{privateFile} as the C{opener}
of C{open()}), so mail, users and transcripts are private to the server's user
under any umask. The umask can only take permission bits away, so asking for
these modes explicitly (never the defaults C{0777}/C{0666}) is what makes the
result independent of it.

And how mailstack writes a file durably: L{atomicFile}/L{atomicWrite} (write a
temporary file, fsync, rename over the target, fsync the directory: a reader
or a crash sees the old file or the new one), L{commitFile} (the last steps,
for writers that create their temporary file themselves: Maildir delivery,
the dotlock) and L{fsyncDirectory}.
"""

import contextlib
import itertools
import os
import re
import secrets
import socket
import threading
import time

from mailstack.storage.groupsync import syncDirectory

TMP_MAX_AGE = 36 * 3600

_SIZE_FIELD = re.compile(r",([SW])=(\d+)")

_sequence = itertools.count(1)
_sequenceLock = threading.Lock()


PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600


def makeDirectories(path):
    """
    C{os.makedirs(path, exist_ok=True)}, except that every directory it
    creates, the missing parents included, is C{0700} (C{os.makedirs} gives
    the parents the default mode, C{0755} under umask 022).

    @raise FileExistsError: if C{path} exists and is not a directory.
    """
    path = os.fspath(path)
    head, tail = os.path.split(path)
    if not tail:
        head, tail = os.path.split(head)
    if head and tail and not os.path.exists(head):
        try:
            makeDirectories(head)
        except FileExistsError:
            pass  # made meanwhile by another thread or process
    try:
        os.mkdir(path, PRIVATE_DIRECTORY)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def privateFile(path, flags):
    """
    An C{opener} for C{open()}: a file it creates is C{0600}, e.g.
    C{open(path, "w", opener=privateFile)}; a symbolic link at C{path} is
    refused (C{ELOOP}), never followed.
    """
    # Never through a symbolic link planted where mailstack writes its files.
    return os.open(path, flags | os.O_NOFOLLOW, PRIVATE_FILE)


def makeMaildir(path, folder):
    """
    Create cur/ new/ tmp/ (and the Maildir++ C{maildirfolder} marker) if
    missing; the Maildir itself and its parents too, all private.
    """
    for sub in ("cur", "new", "tmp"):
        makeDirectories(os.path.join(path, sub))
    if folder:
        os.close(privateFile(os.path.join(path, "maildirfolder"), os.O_WRONLY | os.O_CREAT))


def fsyncDirectory(path):
    """
    Make the renames into (and removals from) the directory C{path} durable:
    after a crash the new names are there and the removed ones are gone.
    Threads doing this for one directory at once share the fsync (group
    commit: L{mailstack.storage.groupsync}); each returns only after one that
    began after its call.
    """
    syncDirectory(path, fsyncDirectoryNow)


def fsyncDirectoryNow(path):
    """One fsync of the directory C{path}, now, by whichever caller runs it (no grouping)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def writeAll(fd, data):
    """C{os.write} C{data} whole to C{fd}, however many calls a short write takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def removeQuietly(path):
    """Remove the file C{path} if it can be; an C{OSError} is ignored."""
    try:
        os.unlink(path)
    except OSError:
        pass


def commitFile(f, temporary, path, fsync=True, syncDirectory=True):
    """
    Put the file being written as C{temporary} in place as C{path}: flush and
    (with C{fsync}) fsync C{f}, close it, rename it over C{path}, then (with
    C{syncDirectory}) fsync C{path}'s directory. A reader sees the old file or
    the new one, never half of it. Every atomic write in mailstack ends here.

    If a step up to the rename fails, C{temporary} is removed and C{path} is
    left as it was. If only the directory fsync fails, the new file is in
    place but the exception is raised: the caller decides whether to take it
    back (a Maildir delivery does, a replaced file cannot).

    @param f: the open binary file object of C{temporary}; closed on return.
    """
    try:
        with f:
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        removeQuietly(temporary)
        raise
    if syncDirectory:
        fsyncDirectory(os.path.dirname(os.path.abspath(path)))


def _createBeside(path):
    """A new private temporary file in C{path}'s directory: C{(temporaryPath, fd)}."""
    directory, name = os.path.split(os.path.abspath(path))
    while True:
        temporary = os.path.join(directory, ".%s.%s.tmp" % (name, secrets.token_hex(4)))
        try:
            return temporary, privateFile(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomicFile(path, mode=PRIVATE_FILE, temporary=None, fsync=True, syncDirectory=True,
               fd=None):
    """
    Write a file all or nothing: C{with atomicFile(path) as f: f.write(...)}
    writes into a temporary file (in C{path}'s directory, or C{temporary}),
    which L{commitFile} puts in place when the block ends. If the block
    raises, the temporary file is removed and C{path} keeps its old content.

    @param mode: the file's permissions, set on the temporary file before a
        byte is written (a key is never readable by others, not even briefly),
        whatever the umask.
    @param temporary: where to write first (must not exist; same filesystem
        as C{path}), e.g. a queue's own C{tmp/}; default: a hidden
        C{.<name>.<random>.tmp} beside C{path}.
    @param fsync: fsync the file before the rename (off only for files that
        are rebuilt when lost).
    @param syncDirectory: fsync the directory after the rename, so that the
        new file survives a crash (off where losing the rename is harmless).
    @param fd: C{temporary} is already open (and created) on this descriptor,
        e.g. a dotlock, whose lock file becomes the new file; C{mode} is then
        not applied.
    @raise OSError: from any step; see L{commitFile}.
    """
    if fd is None:
        if temporary is None:
            temporary, fd = _createBeside(path)
        else:
            fd = privateFile(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    else:
        mode = None
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        f = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        removeQuietly(temporary)
        raise
    try:
        yield f
    except BaseException:
        f.close()
        removeQuietly(temporary)
        raise
    commitFile(f, temporary, path, fsync, syncDirectory)


def atomicWrite(path, data, mode=PRIVATE_FILE, temporary=None, fsync=True,
                syncDirectory=True):
    """
    Replace C{path} by C{data} (bytes) all or nothing, through
    L{atomicFile} (which see for the arguments).
    """
    with atomicFile(path, mode, temporary, fsync, syncDirectory) as f:
        f.write(data)


def maildirHost():
    """
    The host name as Maildir names carry it (C{/ : ,} escaped), read once
    per process as Dovecot does (C{my_hostname}): asking the system at every
    delivery was a system call, and a hand-over of the interpreter's lock,
    in each delivery's worker thread.
    """
    if not _host:
        _host.append(socket.gethostname().replace("/", "\\057").replace(
            ":", "\\072").replace(",", "\\054"))
    return _host[0]


_host: list = []


def uniqueName():
    """A Maildir unique name: C{<sec>.M<usec>P<pid>Q<seq>.<host>}."""
    now = time.time()
    with _sequenceLock:
        seq = next(_sequence)
    return "%d.M%dP%dQ%d.%s" % (int(now), int((now % 1) * 1000000), os.getpid(), seq,
                                maildirHost())


def createTemporary(tmpDir):
    """
    Create a new file under a unique name in C{tmpDir}.

    @return: C{(name, path, fd)}, the file open for writing.
    @raise FileNotFoundError: if C{tmpDir} does not exist.
    """
    while True:
        name = uniqueName()
        path = os.path.join(tmpDir, name)
        try:
            return name, path, privateFile(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            continue


def messageBase(name, diskSize, wireSize):
    """The base name of a message file: its unique name and its sizes."""
    return "%s,S=%d,W=%d" % (name, diskSize, wireSize)


def placement(base, letters):
    """
    Where a new message with the info C{letters} goes: C{(subdir, filename)}, in
    cur/ with C{:2,<letters>} if it has flags, else in new/.
    """
    if letters:
        return "cur", base + ":2," + letters
    return "new", base


def splitFilename(filename):
    """C{'base:2,FS'} -> C{('base', 'FS')}; a name without C{:2,} info has no flags."""
    base, sep, info = filename.partition(":")
    return base, (info[2:] if sep and info.startswith("2,") else "")


def sizeFields(base):
    """The C{S=} (size on disk) and C{W=} (CRLF size) fields of a base name, or None."""
    fields = dict(_SIZE_FIELD.findall(base))
    return (int(fields["S"]) if "S" in fields else None,
            int(fields["W"]) if "W" in fields else None)


def listMessages(path, refused=None):
    """
    @param refused: a list to which C{(subdir, filename)} is appended for each
        entry that is not a regular file (a symbolic link, a directory...):
        those are never messages, so a link to a file outside the Maildir is
        never served. Telling them apart costs no C{stat()} where the
        filesystem reports entry types (C{d_type}).
    @return: C{{base: (subdir, filename)}} of the messages in new/ then cur/ of C{path}.
    """
    listing = {}
    for subdir in ("new", "cur"):
        try:
            entries = list(os.scandir(os.path.join(path, subdir)))
        except FileNotFoundError:
            continue
        for entry in entries:
            filename = entry.name
            if filename.startswith(".") or "\n" in filename or "\r" in filename:
                continue
            try:
                regular = entry.is_file(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            if not regular:
                if refused is not None:
                    refused.append((subdir, filename))
                continue
            listing[splitFilename(filename)[0]] = (subdir, filename)
    return listing


def stamp(path):
    """What tells a change of C{path}: C{(mtime_ns, size, inode)}, or None if missing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def removeStale(tmpDir, maxAge):
    """
    Delete the files in C{tmpDir} untouched (neither read nor written) for
    C{maxAge} seconds.

    @return: how many files were removed.
    """
    removed = 0
    limit = time.time() - maxAge
    try:
        entries = list(os.scandir(tmpDir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False) and max(st.st_atime, st.st_mtime) < limit:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            pass
    return removed
