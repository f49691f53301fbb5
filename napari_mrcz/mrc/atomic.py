"""Files that appear whole or not at all: hidden temporary names, publishing, flushing.

Every file we write is made under a hidden name beside its target and given its
name only once complete, so a failed or interrupted save leaves the previous file
as it was and no partial file behind. The writers of the engine and the command
line share these steps.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Iterator

from napari_mrcz.files import (
    OWNER_LOCK_PREFIX,
    OWNER_LOCK_SUFFIX,
    TEMPORARY_PREFIX,
    TEMPORARY_SUFFIX,
)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; temporaries carry no owner
    fcntl = None


#: This process's owned folders: real folder -> [locked descriptor, token, lock file,
#: threads inside :func:`owning`].
_owned: dict[str, list] = {}
_owned_lock = threading.Lock()


def _hidden_name(path: str) -> str:
    """A hidden name beside ``path`` for a file still being made: ``.name.<random>.partial``."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}")


def temporary_name(path: str, tag: str = "") -> str:
    """A free, hidden name (``.mrcz-<tag><random>[.<owner>].partial``) beside ``path``.

    Not created. A finished file renamed onto it replaces nothing, which on ext4
    spares the flush of its blocks that a rename over an existing file costs.
    ``tag`` marks the temporaries of one job, so that :func:`remove_temporaries`
    finds what a process that died while writing them left behind; ``<owner>`` is
    this process's token while it owns the folder (:func:`owning`).
    """
    directory = os.path.dirname(path)
    with _owned_lock:
        owned = _owned.get(os.path.realpath(directory or "."))
    owner = f".{owned[1]}" if owned else ""
    while True:
        name = f"{TEMPORARY_PREFIX}{tag}{secrets.token_hex(8)}{owner}{TEMPORARY_SUFFIX}"
        candidate = os.path.join(directory, name)
        if not os.path.lexists(candidate):
            return candidate


@contextlib.contextmanager
def owning(directory: str) -> Iterator[None]:
    """Own the temporaries this process makes in ``directory`` meanwhile.

    While any thread of this process is inside, a hidden lock file there
    (``.mrcz-owner-<token>.lock``) holds an exclusive advisory lock; the temporaries
    :func:`temporary_name` gives carry its token. The last to leave removes the file.
    The system drops the lock of a killed process, which is how a later run tells a
    dead run's temporaries from a live one's (:func:`remove_abandoned`).
    """
    real = os.path.realpath(directory or ".")
    if fcntl is None:
        yield
        return
    with _owned_lock:
        if real not in _owned:
            token = secrets.token_hex(4)
            lock_file = os.path.join(real, f"{OWNER_LOCK_PREFIX}{token}{OWNER_LOCK_SUFFIX}")
            descriptor = os.open(lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _owned[real] = [descriptor, token, lock_file, 0]
        _owned[real][3] += 1
    try:
        yield
    finally:
        with _owned_lock:
            entry = _owned[real]
            entry[3] -= 1
            if entry[3] == 0:
                del _owned[real]
                with contextlib.suppress(OSError):
                    os.unlink(entry[2])
                os.close(entry[0])


def remove_abandoned(directory: str) -> list[tuple[str, int]]:
    """Delete the temporaries that processes no longer alive left in ``directory``.

    A temporary belongs to the process whose lock file names its token; a lock file
    whose lock can be taken belongs to no live process (killed, or its machine
    lost), so its temporaries and itself go. Live runs' files stay, whichever
    machine they run on (where the file system supports advisory locks, as local
    disks and NFSv4 do). Returns the temporaries removed and their sizes in bytes.
    """
    removed: list[tuple[str, int]] = []
    if fcntl is None:
        return removed
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return removed
    with _owned_lock:
        mine = {entry[1] for entry in _owned.values()}
    for name in names:
        if not (name.startswith(OWNER_LOCK_PREFIX) and name.endswith(OWNER_LOCK_SUFFIX)):
            continue
        token = name[len(OWNER_LOCK_PREFIX) : -len(OWNER_LOCK_SUFFIX)]
        lock_file = os.path.join(directory, name)
        if token in mine or not _lock_is_free(lock_file):
            continue
        marker = f".{token}{TEMPORARY_SUFFIX}"
        for other in names:
            if other.startswith((TEMPORARY_PREFIX, "." + TEMPORARY_PREFIX)) and marker in other:
                path = os.path.join(directory, other)
                with contextlib.suppress(FileNotFoundError):
                    size = os.lstat(path).st_size
                    os.unlink(path)
                    removed.append((path, size))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_file)
    return removed


def _lock_is_free(lock_file: str) -> bool:
    """True if no live process holds the lock of ``lock_file`` (taken and let go here)."""
    try:
        descriptor = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(descriptor)
    return True


def remove_temporaries(directory: str, tag: str) -> list[str]:
    """Delete the temporaries tagged ``tag`` in ``directory``; return their paths.

    Both :func:`temporary_name`'s names and the hidden files the writers make beside
    them (:func:`create_temporary`) go. For the debris of a process killed while
    writing: nothing else may be writing files with this tag.
    """
    removed = []
    starts = (f"{TEMPORARY_PREFIX}{tag}", f".{TEMPORARY_PREFIX}{tag}")
    try:
        entries = list(os.scandir(directory or "."))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name.startswith(starts) and entry.name.endswith(TEMPORARY_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(entry.path)
    return removed


def create_temporary(path: str) -> tuple[int, str]:
    """Create a hidden, empty file beside ``path``; return its descriptor and name.

    Created with mode 0o666 so that the umask applies, as for any new file; when
    ``path`` exists, the new file takes its permission bits.
    """
    for _ in range(100):
        temporary = _hidden_name(path)
        try:
            descriptor = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, os.stat(path).st_mode & 0o7777)
        return descriptor, temporary
    raise FileExistsError(f"could not create a temporary file beside {path}")


def flush_to_disk(path: str) -> None:
    """fsync a file or a folder (its entries), so that it survives a crash."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def publish(temporary: str, target: str, overwrite: bool) -> None:
    """Give a complete, verified output its name.

    Without ``overwrite`` the name is taken only if still free (a hard link fails on
    an existing file), so a file that appeared meanwhile is never replaced.
    """
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise FileExistsError(f"{target} appeared during the conversion; kept") from None
    except OSError:  # a file system without hard links
        if os.path.exists(target):
            raise FileExistsError(f"{target} appeared during the conversion; kept") from None
        os.replace(temporary, target)
        return
    os.unlink(temporary)
