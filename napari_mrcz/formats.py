"""The one door for files: what a file is, and its images, whatever its format.

Every part that opens a user's file by name goes through here: the napari reader,
:func:`napari_mrcz.to_dask`, ``mrcz info``, ``validate``, ``compress``/``convert`` and
the gain tools. :func:`identify` says what a file is (by its name, confirmed by its
first bytes); :func:`open_images` opens it as a list of :class:`Image` (shape, dtype,
pixel size and a lazy reader of its slices) for one pass through the data, and
:func:`lazy_images` for random access that stays open. No other module decides a
file's format.

A new format plugs in here: a :class:`Format` member, its suffixes in
:mod:`napari_mrcz.suffixes`, its signature in :func:`identify`, and its branch in
:func:`lazy_images` and :func:`open_images`; the parts above see only images.
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_mrcz.arraylike import LazyView, as_stack
from napari_mrcz.dm.images import read_dm
from napari_mrcz.dm.tags import read_header as read_dm_header
from napari_mrcz.dm.tags import summarised_tags
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.files import open_regular
from napari_mrcz.mrc.axis_order import inverse_order, source_layout, standard_order_layout
from napari_mrcz.mrc.header import HEADER_DTYPE, MAP_ID
from napari_mrcz.mrc.layout import MRCLayout
from napari_mrcz.mrc.lazy import LazyMRC
from napari_mrcz.mrc.modes import storage_dtype
from napari_mrcz.remote import is_url, local_only_problem, redact
from napari_mrcz.suffixes import COMPRESSED_MRC_SUFFIXES, DM_SUFFIXES, MRC_SUFFIXES

#: Where an MRC header has its 'MAP ' word.
_MAP_OFFSET = HEADER_DTYPE.fields["map"][1]
#: Bytes read to tell a file's format by its content.
_HEAD_BYTES = 4096


class Format(enum.Enum):
    """The file families napari-mrcz reads."""

    #: MRC2014 and MRCZ (a header's MODE says whether its data are compressed, its
    #: JSON meta whether they are gain-separated), ``.gz``/``.bz2`` downloads included.
    MRC = "MRC"
    #: Gatan DigitalMicrograph DM3 and DM4.
    DM = "DM"


@dataclass(frozen=True)
class FileKind:
    """What a file is.

    Attributes
    ----------
    path : str
        The file.
    format : Format
        Its family.
    compression : str or None
        ``"gzip"`` or ``"bzip2"`` for a whole-file compressed download (read through
        a decompressed copy), else None.
    """

    path: str
    format: Format
    compression: str | None = None


def identify(path: str | os.PathLike) -> FileKind:
    """Say what ``path`` is: by its suffix, confirmed by its first bytes.

    A name without one of our suffixes is told by its content (a DM header, else
    MRC, whose reader says what the bytes are if they are not). A file named as one
    family that holds the other is refused with the name to give it.

    Raises
    ------
    MRCZFormatError
        If the file is no regular file, or holds the other family's data.
    """
    path = os.fspath(path)
    if is_url(path):  # by name alone: the MRC reader says what other bytes are
        problem = local_only_problem(path)
        if problem is not None:
            raise MRCZFormatError(redact(path), problem)
        return FileKind(path, Format.MRC)
    lowered = path.lower()
    for suffix in COMPRESSED_MRC_SUFFIXES:
        if lowered.endswith(suffix):
            return FileKind(path, Format.MRC, "gzip" if suffix.endswith(".gz") else "bzip2")
    with open_regular(path) as handle:
        head = handle.read(_HEAD_BYTES)
    is_mrc = head[_MAP_OFFSET : _MAP_OFFSET + len(MAP_ID)] == MAP_ID
    is_dm = not is_mrc and _is_dm_header(head)
    if lowered.endswith(DM_SUFFIXES):
        if is_mrc:
            raise MRCZFormatError(
                path, "not a DM3/DM4 file: it is an MRC file: name it .mrc to read it"
            )
        return FileKind(path, Format.DM)
    if lowered.endswith(MRC_SUFFIXES) and is_dm:
        raise MRCZFormatError(
            path,
            "not an MRC file: it is a DigitalMicrograph file: name it .dm4 or .dm3 to read it",
        )
    return FileKind(path, Format.DM if is_dm else Format.MRC)


def _is_dm_header(head: bytes) -> bool:
    """True if ``head`` starts with a DM3/DM4 header."""
    try:
        read_dm_header(head, None)
    except MRCZFormatError:
        return False
    return True


@dataclass
class Image:
    """One image of a file: its pixels, read lazily, and what they mean.

    Attributes
    ----------
    path : str
        The file.
    data : array-like
        The pixels as stored, (nz, ny, nx) or fewer dimensions, read as indexed; its
        ``read_slices(start, stop)`` reads a run of z-slices (frames) at once.
    nbytes : int
        Bytes of the data as stored in the input (DM: as the writer casts it), the
        unit of the progress reports.
    stacked : bool
        True if the first axis is z-slices or frames that can be read a run at a
        time (an MRC stack, a DM stack of independent frames).
    layout : MRCLayout or None
        The parsed header of an MRC/MRCZ file.
    dm_meta : dict or None
        The :func:`napari_mrcz.read_dm` metadata of a DM image.
    left_out : str or None
        What of the input no output holds (bytes after the data, DM tag arrays too
        large for JSON meta), or None.
    """

    path: str
    data: Any
    nbytes: int
    stacked: bool = False
    layout: MRCLayout | None = None
    dm_meta: dict | None = field(default=None, repr=False)
    left_out: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The data's shape, slowest axis first."""
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """The data's type."""
        return np.dtype(self.data.dtype)

    @property
    def pixel_size(self) -> list[float | None]:
        """Ångström per pixel along each axis, slowest first.

        None along an axis that is no length (a DM spectrum's energy axis).
        """
        if self.layout is not None:
            return [float(size) for size in self.layout.pixelsize[-len(self.shape) :]]
        return [None if size is None else float(size) for size in self.dm_meta["pixelsize"]]


def _written_nbytes(data: Any) -> int:
    """Bytes ``data`` takes once cast as the writer casts it (known without reading it)."""
    return int(np.prod(data.shape, dtype=np.int64)) * storage_dtype(data.dtype).itemsize


def _dm_images(path: str) -> list[Image]:
    """The images of a DM file (thumbnails aside), none of them read."""
    dm_images = read_dm(path, lazy=True)
    summarised = summarised_tags(dm_images[0][1]["tags"]) if dm_images else []
    arrays = "DM tag array" if len(summarised) == 1 else "DM tag arrays"
    left_out = (
        f"{len(summarised)} {arrays} too large for JSON meta, such as {summarised[0]}"
        if summarised
        else None
    )
    return [
        Image(
            path,
            data,
            _written_nbytes(data),
            stacked=len(data.layout.grid_shape) >= 3 and data.layout.frames_are_independent(),
            dm_meta=meta,
            left_out=left_out,
        )
        for data, meta in dm_images
    ]


def image_count(path: str | os.PathLike) -> int:
    """How many images ``path`` holds: a DM file's (thumbnails aside), else 1.

    Parses a DM file's tags, reads no pixels; 1 for a file that cannot be parsed
    (opening it then says why).
    """
    try:
        if identify(path).format is not Format.DM:
            return 1
        return max(1, len(read_dm(path, lazy=True)))
    except (MRCZFormatError, OSError):
        return 1


def lazy_images(
    path: str | os.PathLike,
    cache_bytes: int | None = None,
    storage_options: dict | None = None,
) -> list[Image]:
    """Open ``path`` for random access: its images, nothing read but the headers.

    The files stay open as long as the images are used (and reopen where they are
    unpickled, as on a dask worker).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    cache_bytes : int, optional
        The slice cache of an MRC file (see :class:`napari_mrcz.LazyMRC`).
    storage_options : dict, optional
        For the address of a file on a server: fsspec's options.

    Raises
    ------
    MRCZFormatError
        If the file is damaged or not ours.
    """
    kind = identify(path)
    if kind.format is Format.DM:
        return _dm_images(kind.path)
    options: dict[str, Any] = {} if cache_bytes is None else {"cache_bytes": cache_bytes}
    if storage_options:
        options["storage_options"] = storage_options
    lazy = LazyMRC(kind.path, **options)
    return [Image(kind.path, lazy, lazy.nbytes, stacked=lazy.layout.nz > 1, layout=lazy.layout)]


@contextlib.contextmanager
def open_images(
    path: str | os.PathLike,
    standard_order: bool = False,
    checkpoint: Callable[[], None] | None = None,
) -> Iterator[list[Image]]:
    """Open a file for one pass through its data (a conversion, a check), reading none yet.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    standard_order : bool
        Give a map whose axis order is permuted (MAPC, MAPR, MAPS not 1, 2, 3) in
        (z, y, x) order, with its header to match, as napari shows and saves it: for
        MRCZ outputs, whose only other reader (python-mrcz) ignores the axis order.
        Without it, an MRCZ copy of such a map gives its source's order back.
    checkpoint : callable, optional
        Called after every few MB while a ``.gz``/``.bz2`` file is decompressed; an
        exception it raises stops the decompression, leaving no temporary copy.

    Yields
    ------
    list of Image
        One for an MRC/MRCZ file (``.gz``/``.bz2`` included), one per image for DM.

    Raises
    ------
    MRCZFormatError
        If the file is damaged, holds what MRC cannot (RGB, more than 3 dimensions),
        or is an MRCZ file with more z-slices than its header declares.
    """
    kind = identify(path)
    path = kind.path
    if kind.format is Format.DM:
        images = _dm_images(path)
        for number, image in enumerate(images):
            if image.dm_meta["rgb"]:
                raise MRCZFormatError(path, f"image {number} is RGB, which MRC cannot hold")
            if image.data.ndim > 3:
                raise MRCZFormatError(
                    path, f"image {number} has {image.data.ndim} dimensions; MRC holds at most 3"
                )
        yield images
        return
    with LazyMRC(path, cache_bytes=0, checkpoint=checkpoint) as lazy:  # streamed once
        layout = lazy.layout
        if layout.dtype.shape:
            raise MRCZFormatError(
                path,
                "RGB (mode 16) data cannot be converted: MRCZ does "
                "not define it, and the plain writer has no RGB",
            )
        trailing = layout.file_size - lazy.data_end
        unread = layout.chunks_after(lazy.data_end) if layout.compressor and trailing else 0
        if unread:
            raise MRCZFormatError(
                path,
                f"{unread} more compressed z-slices follow the {layout.nz} its header "
                "declares (a file still being written?): not converted, as the copy "
                "would lack them",
            )
        left_out = f"{trailing} bytes after the data" if trailing > 0 else None
        data: Any = lazy
        order = layout.display_order
        if standard_order and order != (0, 1, 2):
            data = LazyView(as_stack(lazy), order=order, keep_whole=True)
            layout = standard_order_layout(layout)
        elif not standard_order and layout.source_grid is not None:
            # A plain copy of an MRCZ copy: the grid and axis order of its source again.
            restored = source_layout(layout)
            if restored.display_order != (0, 1, 2):
                data = LazyView(
                    as_stack(lazy), order=inverse_order(restored.display_order), keep_whole=True
                )
            layout = restored
        yield [
            Image(path, data, lazy.nbytes, stacked=layout.nz > 1, layout=layout, left_out=left_out)
        ]
