"""Compressed downloads (``emd_NNNN.map.gz``, ``*.mrc.bz2``): read through a temporary file.

The EMDB and other archives ship maps compressed as a whole with gzip or bzip2. Such
a file cannot be read slice by slice, so it is decompressed once, a few MB at a time,
into a temporary file that the rest of the engine reads like any other. The whole
file is never held in memory, and its decompressed size is checked against what the
MRC header inside declares, so that a decompression bomb is refused early.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import os
import shutil
import tempfile
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
    modes = KNOWN_MODES | EMAN2_MODE_DTYPES.keys()
    unlimited = np.iinfo(np.int64).max
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read_layout warns about the copy, once
        header, _, problem = parse_header(raw, unlimited, "<", modes)
    if problem is not None:
        raise MRCZFormatError(path, f"{problem} (once decompressed)")
    voxels = int(header["nx"]) * int(header["ny"]) * int(header["nz"])
    mode = int(header["mode"]) % MODE_CODEC_FACTOR
    return HEADER_SIZE + int(header["nsymbt"]) + voxels * _voxel_bytes(mode)


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


def _copy_decompressed(path: str, stream: BinaryIO, target: BinaryIO) -> None:
    """Copy ``stream`` into ``target``, refusing more than its MRC header declares."""
    head = _read(path, stream, HEADER_SIZE)
    target.write(head)
    if len(head) < HEADER_SIZE:
        return  # read_layout reports the file as too short
    limit = declared_size(path, head) + TRAILING_BYTES_ALLOWED
    room = shutil.disk_usage(tempfile.gettempdir()).free
    if limit - len(head) > room:
        raise MRCZFormatError(
            path,
            f"its MRC header declares {limit} bytes once decompressed, more than the "
            f"{room} bytes free for a temporary copy (damaged or hostile header?)",
        )
    written = len(head)
    while piece := _read(path, stream, min(CHUNK_BYTES, limit - written + 1)):
        written += len(piece)
        if written > limit:
            raise MRCZFormatError(
                path,
                f"decompresses to more than the {limit} bytes its MRC header "
                "accounts for (damaged, or a decompression bomb); refusing it",
            )
        target.write(piece)


def open_decompressed(path: str | os.PathLike) -> str:
    """Decompress a ``.gz`` or ``.bz2`` file into a new temporary file; return its path.

    The temporary file is in the system's temporary folder, named after ``path``
    without its compression suffix. The caller deletes it; :class:`DecompressedFile`
    does so.

    Parameters
    ----------
    path : str or os.PathLike
        The compressed file.

    Returns
    -------
    str
        The decompressed copy.

    Raises
    ------
    MRCZFormatError
        If the stream is damaged or truncated, or decompresses to more than the MRC
        header inside declares (see :data:`TRAILING_BYTES_ALLOWED`).
    """
    path = os.fspath(path)
    suffix = next(suffix for suffix in COMPRESSIONS if path.lower().endswith(suffix))
    with open_regular(path) as raw:
        name, magic = COMPRESSED_MAGIC[suffix]
        head = raw.read(len(magic))
        if not head:
            raise MRCZFormatError(path, "is empty (0 bytes)")
        if head != magic:
            seen = describe_content(head + raw.read(4096))
            problem = f"not {name}-compressed, though named {suffix}"
            raise MRCZFormatError(path, problem + (f": {seen}" if seen else ""))
        raw.seek(0)
        handle, local = tempfile.mkstemp(prefix="napari-mrcz-", suffix="-" + _temporary_name(path))
        try:
            with os.fdopen(handle, "wb") as target, COMPRESSIONS[suffix](raw) as stream:
                _copy_decompressed(path, stream, target)
        except BaseException:
            os.remove(local)
            raise
    logger.debug("decompressed %s into %s", path, local)
    return local


def _remove(path: str) -> None:
    """Delete ``path`` if it still exists."""
    with suppress(FileNotFoundError):
        os.remove(path)


class DecompressedFile:
    """A file ready to read: compressed ones decompressed into a temporary copy.

    Owns the temporary copy: :meth:`close` deletes it, as does garbage collection or
    the end of the interpreter if nobody closed it. Uncompressed files are used in
    place and never deleted.

    Parameters
    ----------
    path : str or os.PathLike
        The file as the user named it.

    Attributes
    ----------
    original : str
        ``path``.
    path : str
        The file to read: the temporary copy, or ``original``.

    Examples
    --------
    >>> with DecompressedFile("emd_1234.map.gz") as source:  # doctest: +SKIP
    ...     layout = read_layout(source.path)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.original = os.fspath(path)
        self.path = (
            open_decompressed(self.original) if is_compressed(self.original) else self.original
        )
        self._finalizer = weakref.finalize(self, _remove, self.path) if self.is_temporary else None

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
