"""The user's files before they are parsed: what they are, and opening them safely.

A FIFO named ``x.mrc`` blocks a plain ``open()`` until some other program writes to it,
a character device (``/dev/zero``) never ends, and a directory named ``x.dm4`` cannot be
read at all. Every reader in the engine opens its input through :func:`open_regular`,
which looks at what the path is before reading a byte, and opens without blocking.

A file that turns out not to be ours (a RELION STAR file renamed ``.mrc``, a TIFF, a
file of zeros) is described by :func:`describe_content`, so that the error says what
it is rather than what its bytes would mean as a header.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from napari_mrcz.errors import MRCZFormatError

try:
    import fcntl
except ImportError:  # Windows: no FIFOs among files, nothing to unset
    fcntl = None

#: Opens a FIFO without waiting for a writer (0 where the system has no such flag).
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_regular(mode: int) -> str | None:
    """What a file of ``st_mode`` ``mode`` is if it is not a regular file, else None."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _refusal(path: str, kind: str) -> MRCZFormatError:
    return MRCZFormatError(path, f"is {kind}, not a file that can be read")


def check_regular(path: str | os.PathLike) -> os.stat_result:
    """Return ``os.stat(path)`` if ``path`` is a regular file (links followed).

    Raises
    ------
    MRCZFormatError
        If it is a folder, FIFO, socket or device (naming it).
    FileNotFoundError, PermissionError
        As :func:`os.stat` does.
    """
    path = os.fspath(path)
    status = os.stat(path)
    kind = not_regular(status.st_mode)
    if kind is not None:
        raise _refusal(path, kind)
    return status


def change_since(path: str | os.PathLike, before: os.stat_result) -> str | None:
    """How ``path`` differs from the file it was when ``before`` was taken, or None.

    A file still being written grows or gets a new modification time; a file moved
    onto the name is another inode. Either way, what was read of it is not all of it.
    The change time is compared too: unlike the modification time, no program can
    set it back (``touch -r``, ``rsync -t``), and a new inode reusing the old one's
    number has its own. The device number is not: another machine mounting the same
    file system (a cluster's worker) sees another one.
    """
    try:
        after = os.stat(path)
    except FileNotFoundError:
        return "it was removed"
    if after.st_ino != before.st_ino:
        return "another file was put in its place"
    if after.st_size != before.st_size:
        return f"it went from {before.st_size} to {after.st_size} bytes"
    if (after.st_mtime_ns, after.st_ctime_ns) != (before.st_mtime_ns, before.st_ctime_ns):
        return "it was written to, or put in place anew"
    return None


def make_folders(path: str | os.PathLike) -> None:
    """Create folder ``path`` and its missing parents, however deep (no recursion).

    :func:`os.makedirs` recurses once per missing level and fails past about a
    thousand; an input tree copied under an output folder can be deeper.
    """
    missing = []
    folder = os.path.abspath(path)
    while not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise


def check_target(path: str | os.PathLike, name: str | None = None) -> None:
    """Refuse to write to ``path`` if it exists but is no regular file (links followed).

    ``name`` is the file as the user knows it, for the message (``path`` by default).

    A new file renamed onto a folder fails with the temporary file's name in the
    message, and one renamed onto a FIFO or a device link silently replaces it.

    Raises
    ------
    MRCZFormatError
        If ``path`` is a folder, FIFO, socket or device (naming it).
    """
    path = os.fspath(path)
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    kind = not_regular(status.st_mode)
    if kind is not None:
        raise MRCZFormatError(name or path, f"is {kind}: no file is written in its place")


def open_regular(path: str | os.PathLike, buffering: int = -1) -> BinaryIO:
    """Open a regular file for reading in binary mode, refusing anything else at once.

    The path is looked at first (:func:`check_regular`), then opened without blocking
    and looked at again through the open descriptor, so a FIFO put in its place
    meanwhile is refused too rather than waited on.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    buffering : int
        As for :func:`open` (0 for unbuffered).

    Raises
    ------
    MRCZFormatError
        If ``path`` is a folder, FIFO, socket or device (naming it).
    FileNotFoundError, PermissionError
        As :func:`open` does.
    """
    path = os.fspath(path)
    check_regular(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | _NONBLOCK | _BINARY)
    except OSError as error:
        if error.errno == errno.ENXIO:  # a socket (or a FIFO on some systems)
            raise _refusal(path, not_regular(os.stat(path).st_mode) or "a special file") from None
        raise
    try:
        kind = not_regular(os.fstat(descriptor).st_mode)
        if kind is not None:
            raise _refusal(path, kind)
        if _NONBLOCK and fcntl is not None:
            flags = fcntl.fcntl(descriptor, fcntl.F_GETFL)
            fcntl.fcntl(descriptor, fcntl.F_SETFL, flags & ~_NONBLOCK)
        return os.fdopen(descriptor, "rb", buffering=buffering)
    except BaseException:
        os.close(descriptor)
        raise


#: Errors of writing that name no file: no space, quota, file too large.
_DISK_FULL = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if code
)


def told_about(error: OSError, shown: str) -> OSError:
    """``error`` (raised while writing ``shown``) naming ``shown``, not a temporary file.

    Files are written under hidden temporary names (``.name.<random>.partial``) that
    the user never chose: an error naming one, or a full disk (which names no file),
    is told about ``shown`` instead, and a missing folder says so. Other errors (about
    the file being read, say) are returned as they are.
    """
    about_temporary = error.filename is not None and error.filename in _temporary_names(error)
    disk_full = error.filename is None and error.errno in _DISK_FULL
    if not (about_temporary or disk_full):
        return error
    folder = os.path.dirname(shown) or "."
    if isinstance(error, FileNotFoundError) and not os.path.isdir(folder):
        return FileNotFoundError(error.errno, f"the folder {folder} does not exist", shown)
    return type(error)(error.errno, error.strerror, shown)


def _temporary_names(error: OSError) -> tuple[str, ...]:
    """The hidden names of ours an error mentions: temporary files (``.partial``) and
    the lock that owns them (``.mrcz-owner-<token>.lock``)."""
    return tuple(
        name
        for name in (error.filename, error.filename2)
        if isinstance(name, str)
        and (
            name.endswith(TEMPORARY_SUFFIX) or os.path.basename(name).startswith(OWNER_LOCK_PREFIX)
        )
    )


#: How the names of our temporary files start and end (``.mrcz-<tag><random>.partial``).
TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".mrcz-", ".partial"
#: The hidden lock file by which a live process owns its temporaries in a folder.
OWNER_LOCK_PREFIX, OWNER_LOCK_SUFFIX = ".mrcz-owner-", ".lock"

#: Whole-file compressions by the suffix their files carry: (name, leading bytes).
COMPRESSED_MAGIC = {".gz": ("gzip", b"\x1f\x8b"), ".bz2": ("bzip2", b"BZh")}

#: Leading bytes of files mistaken for ours, and what they are.
_SIGNATURES = (
    *(
        (
            magic,
            f"it is {name}-compressed: name it {suffix} (such as x.mrc{suffix}) to read it",
        )
        for suffix, (name, magic) in COMPRESSED_MAGIC.items()
    ),
    (b"II*\x00", "it is a TIFF image"),
    (b"MM\x00*", "it is a TIFF image"),
    (b"\x89HDF\r\n\x1a\n", "it is an HDF5 file"),
    (b"\x89PNG\r\n\x1a\n", "it is a PNG image"),
    (b"\xff\xd8\xff", "it is a JPEG image"),
    (b"PK\x03\x04", "it is a ZIP archive"),
)
#: Characters of a text file shown in a message.
_TEXT_SHOWN = 60


def describe_content(head: bytes) -> str | None:
    """What the first bytes of a file that is not ours look like, or None if nothing known.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (up to a few KiB are looked at).

    Returns
    -------
    str or None
        A phrase for an error message, such as ``"it starts with text: 'data_ loop_'"``,
        ``"it is a TIFF image"`` or ``"its first 1024 bytes are all zero"``.
    """
    head = bytes(head[:4096])
    if not head:
        return None
    for signature, description in _SIGNATURES:
        if head.startswith(signature):
            return description
    if not head.strip(b"\0"):
        return f"its first {len(head)} bytes are all zero (never written, or wiped)"
    text = _text(head)
    if text is not None:
        words = " ".join(text.split())
        shown = words if len(words) <= _TEXT_SHOWN else words[:_TEXT_SHOWN] + "..."
        return f"it starts with text: {shown!r}"
    return None


def _text(head: bytes) -> str | None:
    """``head`` as text if it is printable UTF-8 (a character cut at the end allowed)."""
    for cut in range(4):  # a multi-byte character may be cut by the end of ``head``
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if all(char.isprintable() or char in "\t\n\r\f" for char in text):
            return text
        return None
    return None
