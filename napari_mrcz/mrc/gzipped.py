"""Compressed downloads (``emd_NNNN.map.gz``, ``*.mrc.bz2``): read through a temporary file.

The EMDB and other archives ship maps compressed as a whole with gzip or bzip2. Such
a file cannot be read slice by slice, so it is decompressed once, a few MB at a time,
into a temporary file that the rest of the engine reads like any other. The whole
file is never held in memory, and its decompressed size is checked against what the
MRC header inside declares, so that a decompression bomb is refused early, and
against the room on the temporary disk. The copy has no name on Linux (it goes with
the process, however that ends), and a caller can stop a long decompression
(``checkpoint``). What needs only the header (``mrcz info``, ``readMRCHeader``)
decompresses only the header.
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import logging
import os
import shutil
import tempfile
import threading
import warnings
import weakref
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import BinaryIO

import numpy as np

from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.files import COMPRESSED_MAGIC, describe_content, open_regular
from napari_mrcz.mrc.codecs import MODE_CODEC_FACTOR
from napari_mrcz.mrc.header import HEADER_SIZE
from napari_mrcz.mrc.layout import KNOWN_MODES, parse_header
from napari_mrcz.mrc.modes import EMAN2_MODE_DTYPES, MODE_DTYPES

logger = logging.getLogger(__name__)

#: Whole-file compressions, by suffix, and how to open a stream of each.
COMPRESSIONS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    ".bz2": lambda raw: bz2.BZ2File(raw, mode="rb"),
}

#: Bytes decompressed at a time.
CHUNK_BYTES = 4 * 2**20

#: Bytes tolerated after the data the header declares (trailing padding or junk).
TRAILING_BYTES_ALLOWED = 2**20

#: Share of the temporary folder's disk that a decompressed copy must leave free.
SPACE_KEPT_FREE = 0.05

#: Where a process finds its own open files by number (Linux).
_OWN_DESCRIPTORS = "/proc/self/fd"

#: Largest voxel of any MRC mode (complex64), assumed for modes without a dtype here.
_MAX_VOXEL_BYTES = 8

#: Errors the stdlib raises for a damaged or truncated gzip/bzip2 stream.
_STREAM_ERRORS = (OSError, EOFError, zlib.error)


def is_compressed(path: str | os.PathLike) -> bool:
    """True if ``path`` names a whole-file compressed download (by its suffix)."""
    return os.fspath(path).lower().endswith(tuple(COMPRESSIONS))


def _voxel_bytes(mode: int) -> int:
    """An upper bound of the bytes per voxel of ``mode`` in either mode numbering."""
    sizes = [
        np.dtype(table[mode]).itemsize
        for table in (MODE_DTYPES, EMAN2_MODE_DTYPES)
        if mode in table
    ]
    return max(sizes) if sizes else _MAX_VOXEL_BYTES


def declared_size(path: str, raw: bytes) -> int:
    """Bytes an MRC file with header ``raw`` needs: header, extended header and data.

    The byte order is decided as :func:`~napari_mrcz.mrc.layout.read_layout` decides it
    (:func:`~napari_mrcz.mrc.layout.parse_header`).

    Raises
    ------
    MRCZFormatError
        If ``raw`` is no MRC header in either byte order (naming ``path``).
    """
    return _declared(path, raw)[0]


def _declared(path: str, raw: bytes) -> tuple[int, int]:
    """:func:`declared_size` and the size of the extended header (NSYMBT)."""
    modes = KNOWN_MODES | EMAN2_MODE_DTYPES.keys()
    unlimited = np.iinfo(np.int64).max
    header, _, problem = parse_header(raw, unlimited, "<", modes)
    if problem is not None:
        raise MRCZFormatError(path, f"{problem} (once decompressed)")
    voxels = int(header["nx"]) * int(header["ny"]) * int(header["nz"])
    mode = int(header["mode"]) % MODE_CODEC_FACTOR
    extended = int(header["nsymbt"])
    return HEADER_SIZE + extended + voxels * _voxel_bytes(mode), extended


def _temporary_name(path: str) -> str:
    """The file name of ``path`` without its compression suffix."""
    name = os.path.basename(path)
    for suffix in COMPRESSIONS:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read(path: str, stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes of ``stream`` (fewer only at its end).

    Raises
    ------
    MRCZFormatError
        If the stream is damaged or truncated (naming ``path``).
    """
    data = b""
    try:
        while len(data) < size:
            piece = stream.read(size - len(data))
            if not piece:
                break
            data += piece
    except _STREAM_ERRORS as error:
        raise MRCZFormatError(path, f"damaged compressed stream: {error}") from error
    return data


class _Reservations:
    """The bytes that copies under way in this process are still to write.

    Files converted at once (``mrcz compress --jobs 2``) each check the room on the
    temporary disk: what the others will still write is not free.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._remaining: dict[int, int] = {}
        self._tickets = itertools.count()

    def reserve(self, path: str, needed: int) -> int:
        """Reserve ``needed`` bytes, refused if the disk has no room for them; a ticket.

        Raises
        ------
        MRCZFormatError
            If the copy would leave less than :data:`SPACE_KEPT_FREE` of the disk free.
        """
        folder = tempfile.gettempdir()
        with self._lock:
            disk = shutil.disk_usage(folder)
            others = sum(self._remaining.values())
            room = max(0, disk.free - int(disk.total * SPACE_KEPT_FREE) - others)
            if needed > room:
                held = f", {others} of them held for copies under way" if others else ""
                raise MRCZFormatError(
                    path,
                    f"its MRC header declares {needed} bytes once decompressed, more than "
                    f"the {room} bytes free for a temporary copy in {folder} "
                    f"({SPACE_KEPT_FREE:.0%} of that disk is kept free{held}): a damaged "
                    "or hostile header, or a file to decompress yourself onto a larger disk",
                )
            ticket = next(self._tickets)
            self._remaining[ticket] = needed
            return ticket

    def written(self, ticket: int, count: int) -> None:
        """Count ``count`` bytes of a reserved copy as written (on the disk now)."""
        with self._lock:
            self._remaining[ticket] = max(0, self._remaining[ticket] - count)

    def release(self, ticket: int) -> None:
        """End a reservation (the copy is complete, or was given up)."""
        with self._lock:
            self._remaining.pop(ticket, None)


_RESERVATIONS = _Reservations()


def _copy_decompressed(
    path: str,
    stream: BinaryIO,
    target: BinaryIO,
    checkpoint: Callable[[], None] | None,
    head_only: bool,
) -> int:
    """Copy ``stream`` into ``target``; return the size its MRC header declares.

    The whole file, refused past what its header declares (a decompression bomb),
    or with ``head_only`` the header and the extended header alone. ``checkpoint``
    is called after every :data:`CHUNK_BYTES`.
    """
    head = _read(path, stream, HEADER_SIZE)
    target.write(head)
    if len(head) < HEADER_SIZE:
        return len(head)  # read_layout reports the file as too short
    whole, extended = _declared(path, head)
    limit = HEADER_SIZE + extended if head_only else whole + TRAILING_BYTES_ALLOWED
    ticket = _RESERVATIONS.reserve(path, limit - HEADER_SIZE)
    try:
        written = HEADER_SIZE
        # One byte past the limit is asked for, to tell a bomb from a file that ends there.
        while (wanted := limit - written + (not head_only)) > 0:
            piece = _read(path, stream, min(CHUNK_BYTES, wanted))
            if not piece:
                break
            written += len(piece)
            if written > limit:
                raise MRCZFormatError(
                    path,
                    f"decompresses to more than the {limit} bytes its MRC header "
                    "accounts for (damaged, or a decompression bomb); refusing it",
                )
            target.write(piece)
            _RESERVATIONS.written(ticket, len(piece))
            if checkpoint is not None:
                checkpoint()
    finally:
        _RESERVATIONS.release(ticket)
    return whole


def _check_magic(path: str, suffix: str, raw: BinaryIO) -> None:
    """Refuse a file named ``.gz``/``.bz2`` that is not compressed so (or is empty)."""
    name, magic = COMPRESSED_MAGIC[suffix]
    head = raw.read(len(magic))
    if not head:
        raise MRCZFormatError(path, "is empty (0 bytes)")
    if head != magic:
        seen = describe_content(head + raw.read(4096))
        problem = f"not {name}-compressed, though named {suffix}"
        raise MRCZFormatError(path, problem + (f": {seen}" if seen else ""))
    raw.seek(0)


def _new_copy(path: str) -> tuple[BinaryIO, str, bool]:
    """An empty temporary file for the copy of ``path``: (file, name to read it by, named).

    Where the system can (Linux), the file has no name in any folder and is read
    through its descriptor: it goes with the process however that ends, a kill
    included. Elsewhere it is named after ``path`` in the temporary folder.
    """
    if os.path.isdir(_OWN_DESCRIPTORS):
        handle = tempfile.TemporaryFile(prefix="napari-mrcz-")  # noqa: SIM115 - owned by the caller
        return handle, f"{_OWN_DESCRIPTORS}/{handle.fileno()}", False
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - owned by the caller
        prefix="napari-mrcz-", suffix="-" + _temporary_name(path), delete=False
    )
    return handle, handle.name, True


def _discard(handle: BinaryIO, name: str, named: bool) -> None:
    """Close a temporary copy and remove its name, if it has one."""
    handle.close()
    if named:
        with suppress(FileNotFoundError):
            os.remove(name)


class DecompressedFile:
    """A file ready to read: compressed ones decompressed into a temporary copy.

    Owns the temporary copy: :meth:`close` deletes it, as does garbage collection or
    the end of the interpreter if nobody closed it (on Linux the copy has no name
    in any folder, so that even a killed process leaves nothing behind).
    Uncompressed files are used in place and never deleted.

    Parameters
    ----------
    path : str or os.PathLike
        The file as the user named it.
    checkpoint : callable, optional
        Called after every few MB decompressed; an exception it raises (a cancelled
        run) stops the decompression and leaves no copy.
    head_only : bool
        Decompress only the header and the extended header (all that ``mrcz info``
        and :func:`napari_mrcz.readMRCHeader` need); read the copy with
        ``read_layout(source.path, file_size=source.whole_size)``.

    Attributes
    ----------
    original : str
        ``path``.
    path : str
        The file to read: the temporary copy, or ``original``.
    whole_size : int or None
        For a copy of the head alone, the size of the whole file as its header
        declares it; otherwise None.

    Raises
    ------
    MRCZFormatError
        If the stream is damaged or truncated, holds no MRC file, decompresses to
        more than the MRC header inside declares (see :data:`TRAILING_BYTES_ALLOWED`),
        or would not fit in the temporary folder (see :data:`SPACE_KEPT_FREE`).

    Examples
    --------
    >>> with DecompressedFile("emd_1234.map.gz") as source:  # doctest: +SKIP
    ...     layout = read_layout(source.path)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        checkpoint: Callable[[], None] | None = None,
        head_only: bool = False,
    ) -> None:
        self.original = os.fspath(path)
        self.path = self.original
        self.whole_size: int | None = None
        self._finalizer: weakref.finalize | None = None
        if not is_compressed(self.original):
            return
        suffix = next(one for one in COMPRESSIONS if self.original.lower().endswith(one))
        with open_regular(self.original) as raw:
            _check_magic(self.original, suffix, raw)
            handle, self.path, named = _new_copy(self.original)
            self._finalizer = weakref.finalize(self, _discard, handle, self.path, named)
            try:
                with COMPRESSIONS[suffix](raw) as stream:
                    whole = _copy_decompressed(
                        self.original, stream, handle, checkpoint, head_only
                    )
                handle.flush()
            except BaseException:
                self.close()
                raise
        self.whole_size = whole if head_only else None
        logger.debug("decompressed %s into %s", self.original, self.path)

    @property
    def is_temporary(self) -> bool:
        """True if :attr:`path` is a temporary copy."""
        return self.path != self.original

    @contextmanager
    def original_in_errors(self) -> Iterator[None]:
        """Errors and warnings about the temporary copy, told about the original file."""
        if not self.is_temporary:
            yield
            return
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    yield
                except MRCZFormatError as error:
                    if error.path != self.path:
                        raise
                    raise MRCZFormatError(self.original, error.problem) from error
        finally:
            for warning in caught:
                message = str(warning.message).replace(self.path, self.original)
                warnings.warn(message, warning.category, stacklevel=4)

    def close(self) -> None:
        """Delete the temporary copy, if any (again is harmless)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> DecompressedFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
