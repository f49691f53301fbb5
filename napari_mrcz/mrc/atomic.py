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

#: How temporary names start (:func:`temporary_name`) and end (all of them).
_PREFIX, _SUFFIX = ".mrcz-", ".partial"


def _hidden_name(path: str) -> str:
    """A hidden name beside ``path`` for a file still being made: ``.name.<random>.partial``."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{secrets.token_hex(6)}{_SUFFIX}")


def temporary_name(path: str, tag: str = "") -> str:
    """A free, short hidden name (``.mrcz-<tag><random>.partial``) beside ``path``, not created.

    A finished file renamed onto it replaces nothing, which on ext4 spares the
    flush of its blocks that a rename over an existing file costs. Short, so that
    the writer's own temporary name beside it stays short too. ``tag`` marks the
    temporaries of one job, so that :func:`remove_temporaries` finds what a process
    that died while writing them left behind.
    """
    directory = os.path.dirname(path)
    while True:
        candidate = os.path.join(directory, f"{_PREFIX}{tag}{secrets.token_hex(8)}{_SUFFIX}")
        if not os.path.lexists(candidate):
            return candidate


def remove_temporaries(directory: str, tag: str) -> list[str]:
    """Delete the temporaries tagged ``tag`` in ``directory``; return their paths.

    Both :func:`temporary_name`'s names and the hidden files the writers make beside
    them (:func:`create_temporary`) go. For the debris of a process killed while
    writing: nothing else may be writing files with this tag.
    """
    removed = []
    starts = (f"{_PREFIX}{tag}", f".{_PREFIX}{tag}")
    try:
        entries = list(os.scandir(directory or "."))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name.startswith(starts) and entry.name.endswith(_SUFFIX):
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
