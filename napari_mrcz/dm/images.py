"""Gatan DigitalMicrograph files (DM3 and DM4): images, calibrations and tags.

Two interfaces share one parser (:mod:`napari_mrcz.dm.tags`):

* :func:`read_dm` returns every image of a file except its thumbnail, as stored
  (numpy axis order, slowest first, like ncempy and rosettasciio), with calibrations
  and the whole tag tree. Large images come back as :class:`LazyDMArray`, which reads
  only what is indexed, so opening a movie of many gigabytes takes milliseconds.
* :class:`readDM4` keeps python-mrcz's class: it parses the file and lists all images
  (the thumbnail included) in ``im``, each with ``imageData``, ``imageInfo`` and
  ``shape``, and flips ``imageData`` as python-mrcz does (``[:, ::-1, ...]``).

Pixel types (DM's ImageData/DataType): 1 int16, 2 float32, 3 complex64, 6 uint8,
7 int32, 9 int8, 10 uint16, 11 uint32, 12 float64, 13 complex128, 14 bool, 39 int64,
40 uint64, 8 and 23 RGB(A) bytes (returned as (..., 3) uint8 red, green, blue: DM's
alpha byte carries no data), 27 and 28 packed-complex FFTs (returned whole, see
:func:`unpack_complex_fft`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from napari_mrcz.arraylike import ArrayLike
from napari_mrcz.dm.metadata import image_meta
from napari_mrcz.dm.tags import ArrayRef, DMTagParser, plain_tree
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.files import open_regular

logger = logging.getLogger(__name__)

#: Images larger than this are returned lazily by :func:`read_dm` (``lazy=None``).
LAZY_BYTES = 64 * 2**20

PLAIN, BOOL, RGB, PACKED = "plain", "bool", "rgb", "packed"

#: DM data type -> (DM's name, numpy type of one stored element, how to decode).
DATA_TYPES: dict[int, tuple[str, str, str]] = {
    1: ("SIGNED_INT16", "i2", PLAIN),
    2: ("REAL4", "f4", PLAIN),
    3: ("COMPLEX8", "c8", PLAIN),
    6: ("UNSIGNED_INT8", "u1", PLAIN),
    7: ("SIGNED_INT32", "i4", PLAIN),
    8: ("RGB_UINT8", "u1", RGB),
    9: ("SIGNED_INT8", "i1", PLAIN),
    10: ("UNSIGNED_INT16", "u2", PLAIN),
    11: ("UNSIGNED_INT32", "u4", PLAIN),
    12: ("REAL8", "f8", PLAIN),
    13: ("COMPLEX16", "c16", PLAIN),
    14: ("BINARY", "u1", BOOL),
    23: ("RGBA_UINT8_3", "u1", RGB),
    27: ("COMPLEX8_PACKED", "c8", PACKED),
    28: ("COMPLEX16_PACKED", "c16", PACKED),
    39: ("SIGNED_INT64", "i8", PLAIN),
    40: ("UNSIGNED_INT64", "u8", PLAIN),
}
#: Types we know but do not read, for the error message.
UNSUPPORTED_TYPES: dict[int, str] = {
    0: "NULL",
    4: "OBSOLETE",
    5: "PACKED_COMPLEX (DM2 layout)",
    15: "RGB_UINT8_0",
    16: "RGB_UINT8_1",
    17: "RGB_UINT16",
    18: "RGB_FLOAT32",
    19: "RGB_FLOAT64",
    20: "RGBA_UINT8_0",
    21: "RGBA_UINT8_1",
    22: "RGBA_UINT8_2",
    24: "RGBA_UINT16",
    25: "RGBA_FLOAT32",
    26: "RGBA_FLOAT64",
}
#: Bytes per stored RGB(A) pixel: red, green, blue and one unused byte.
RGB_BYTES = 4

# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class DMImageLayout:
    """Where one image of a DM file lies and how to decode it.

    Attributes
    ----------
    path : str
        The file.
    index : int
        Position in the file's ImageList.
    data_type : int or None
        DM's ImageData/DataType; None where the file has none and the Data array's
        own element type is used.
    grid_shape : tuple of int
        Pixel grid in numpy order (DM's Dimensions reversed).
    offset : int
        Byte offset of the stored data.
    stored_dtype : numpy.dtype
        One stored element, in the file's byte order.
    stored_shape : tuple of int
        Shape of the stored elements (an RGB pixel is 4 bytes, a packed FFT row
        holds ``nx // 2 + 1`` values).
    kind : str
        ``'plain'``, ``'bool'``, ``'rgb'`` or ``'packed'``.
    image : dict
        The image's tag group (ImageData, ImageTags, Name, ...).
    """

    path: str
    index: int
    data_type: int | None
    grid_shape: tuple[int, ...]
    offset: int
    stored_dtype: np.dtype
    stored_shape: tuple[int, ...]
    kind: str
    image: dict

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the decoded data: the grid, plus 3 colours for RGB."""
        return (*self.grid_shape, 3) if self.kind == RGB else self.grid_shape

    @property
    def is_rgb(self) -> bool:
        """True for colour images (decoded with a trailing axis of 3)."""
        return self.kind == RGB

    @property
    def dtype(self) -> np.dtype:
        """numpy type of the decoded data (native byte order)."""
        if self.kind == BOOL:
            return np.dtype(bool)
        return self.stored_dtype.newbyteorder("=")

    @property
    def nbytes(self) -> int:
        """Size of the stored data."""
        return math.prod(self.stored_shape) * self.stored_dtype.itemsize

    @property
    def name(self) -> str:
        """The data type's name in DM (``'UNDECLARED'`` without a DataType tag)."""
        return DATA_TYPES[self.data_type][0] if self.data_type in DATA_TYPES else "UNDECLARED"

    def frame_bytes(self) -> int:
        """Stored bytes of one index of the first axis."""
        return math.prod(self.stored_shape[1:]) * self.stored_dtype.itemsize

    def frames_are_independent(self) -> bool:
        """True if index k of the first axis decodes from stored frame k alone."""
        return len(self.grid_shape) >= (3 if self.kind == PACKED else 2)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Read and decode stored frames ``start:stop`` of the first axis.

        Raises
        ------
        MRCZFormatError
            If the file has become shorter than the data.
        """
        stop = self.stored_shape[0] if stop is None else stop
        out = np.empty((stop - start, *self.stored_shape[1:]), dtype=self.stored_dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        got = 0
        with open_regular(self.path) as handle:
            handle.seek(self.offset + start * self.frame_bytes())
            while got < out.nbytes:
                count = handle.readinto(view[got:])
                if not count:
                    raise MRCZFormatError(
                        self.path,
                        f"image {self.index} ends at byte "
                        f"{self.offset + self.nbytes}, past the end of "
                        "the file",
                    )
                got += count
        return self.decode(out)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Turn stored elements (shape ``stored_shape`` or a run of its frames) into data.

        ``stored`` is byte-swapped in place when the file's byte order is not native.
        """
        if not stored.dtype.isnative:
            stored = stored.byteswap(inplace=True).view(stored.dtype.newbyteorder("="))
        if self.kind == BOOL:
            return stored != 0
        if self.kind == RGB:
            return np.ascontiguousarray(stored[..., :3])
        if self.kind == PACKED:
            return unpack_complex_fft(stored, self.grid_shape[-1])
        return stored


def _dm_error(path: str, index: int, problem: str) -> MRCZFormatError:
    return MRCZFormatError(path, f"image {index}: {problem}")


def image_layouts(path: str, tags: dict[str, Any], byteorder: str) -> list[DMImageLayout]:
    """The layout of every image in ImageList (thumbnails included), in file order.

    Entries of ImageList without ImageData are skipped.

    Raises
    ------
    MRCZFormatError
        If the file has no ImageList, or an image's tags are inconsistent.
    """
    image_list = tags.get("ImageList")
    if not isinstance(image_list, dict):
        raise MRCZFormatError(path, "the file has no ImageList tag group, so no image")
    layouts = []
    for index, image in enumerate(image_list.values()):
        if not isinstance(image, dict) or not isinstance(image.get("ImageData"), dict):
            logger.debug("%s: ImageList entry %d has no ImageData; skipped", path, index)
            continue
        layouts.append(_image_layout(path, index, image, byteorder))
    return layouts


def _image_layout(path: str, index: int, image: dict, byteorder: str) -> DMImageLayout:
    data = image["ImageData"]
    ref = data.get("Data")
    if not isinstance(ref, ArrayRef):
        raise _dm_error(path, index, "ImageData/Data is not an array")
    code = data.get("DataType")
    if code is None and ref.dtype.kind in "iuf" and not ref.dtype.shape:
        # No DataType tag (python-mrcz's synthetic files): the Data array's own type.
        element, kind = ref.dtype.newbyteorder("=").str[1:], PLAIN
    elif not isinstance(code, int) or isinstance(code, bool):
        raise _dm_error(path, index, f"ImageData/DataType is {code!r}, not a number")
    elif code not in DATA_TYPES:
        name = UNSUPPORTED_TYPES.get(code, "unknown")
        raise _dm_error(path, index, f"DM data type {code} ({name}) is not supported")
    else:
        _, element, kind = DATA_TYPES[code]
    dims = data.get("Dimensions")
    values = list(dims.values()) if isinstance(dims, dict) else None
    if not values or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
    ):
        raise _dm_error(path, index, f"ImageData/Dimensions is {values!r}")
    grid = tuple(reversed(values))
    if kind == RGB:
        stored_shape = (*grid, RGB_BYTES)
    elif kind == PACKED:
        stored_shape = (*grid[:-1], grid[-1] // 2 + 1)
    else:
        stored_shape = grid
    stored_dtype = (
        np.dtype(byteorder + element) if np.dtype(element).itemsize > 1 else np.dtype(element)
    )
    layout = DMImageLayout(
        path, index, code, grid, ref.offset, stored_dtype, stored_shape, kind, image
    )
    if layout.nbytes != ref.nbytes:
        raise _dm_error(
            path,
            index,
            f"Dimensions {values} of DM type {code} need "
            f"{layout.nbytes} bytes but ImageData/Data holds {ref.nbytes}",
        )
    return layout


def thumbnail_indices(tags: dict[str, Any]) -> set[int]:
    """ImageList positions the file marks as thumbnails (its Thumbnails/*/ImageIndex)."""
    thumbnails = tags.get("Thumbnails")
    found = set()
    if isinstance(thumbnails, dict):
        for entry in thumbnails.values():
            if isinstance(entry, dict) and isinstance(entry.get("ImageIndex"), int):
                found.add(entry["ImageIndex"])
    return found


# --------------------------------------------------------------------------- decoding


def unpack_complex_fft(packed: np.ndarray, nx: int) -> np.ndarray:
    """The whole FFT of a real image from DM's packed half (data types 27 and 28).

    DM stores the Fourier transform of a real (ny, nx) image as ``nx // 2 + 1``
    columns per row: column k holds frequency -k (k = 0 is the zero frequency), and
    rows are in centred order (row ``ny // 2`` is the zero frequency). The other half
    follows from Hermitian symmetry, F(-ky, -kx) = conj(F(ky, kx)). The result is
    centred on both axes, as DM shows it: for the ramp image ``x[i, j] = j`` it is
    ``np.fft.fftshift(np.fft.fft2(x))``.

    Parameters
    ----------
    packed : numpy.ndarray
        Complex array of shape (..., ny, nx // 2 + 1); leading axes are a stack.
    nx : int
        Width of the full transform.

    Returns
    -------
    numpy.ndarray
        Complex array of shape (..., ny, nx).
    """
    centre = nx // 2
    full = np.empty((*packed.shape[:-1], nx), dtype=packed.dtype)
    full[..., : centre + 1] = packed[..., ::-1]
    positive = nx - 1 - centre
    if positive:
        if packed.ndim >= 2:
            ny = packed.shape[-2]
            mirror = (2 * (ny // 2) - np.arange(ny)) % ny
            source = packed[..., mirror, 1 : positive + 1]
        else:
            source = packed[..., 1 : positive + 1]
        np.conjugate(source, out=full[..., centre + 1 :])
    return full


class LazyDMArray(ArrayLike):
    """One image of a DM file, read only when indexed.

    Behaves like a read-only numpy array: ``shape``, ``dtype``, ``ndim``, ``size``,
    ``nbytes``, ``len`` and numpy-style indexing. Indexing the first axis with an
    integer or a slice reads only those frames; other keys read the whole image.
    No file handle stays open between reads, so it pickles as its layout (the file's
    absolute name, where the image lies, its tag group) and no data: dask can hand it
    to workers in other processes, or on other machines that see the same files.

    Parameters
    ----------
    layout : DMImageLayout
        The image, from :func:`image_layouts`.
    """

    def __init__(self, layout: DMImageLayout) -> None:
        self.layout = layout

    @property
    def path(self) -> str:
        """The file."""
        return self.layout.path

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the data (numpy order; RGB adds a last axis of 3)."""
        return self.layout.shape

    @property
    def dtype(self) -> np.dtype:
        """numpy type of the data."""
        return self.layout.dtype

    def __repr__(self) -> str:
        return (
            f"<LazyDMArray {self.path!r} image {self.layout.index} shape={self.shape} "
            f"dtype={self.dtype}>"
        )

    def __reduce__(self) -> tuple:
        """Pickle the layout, with the file's absolute name; no data."""
        return LazyDMArray, (replace(self.layout, path=os.path.abspath(self.path)),)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self.layout.read()
        return data if dtype is None else data.astype(dtype, copy=False)

    def read_slices(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start`` to ``stop`` (exclusive) as a new array (as LazyMRC's)."""
        return self[start:stop]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        first, rest = (key[0], key[1:]) if key else (slice(None), ())
        if not self.layout.frames_are_independent():
            return self.layout.read()[key]
        length = self.shape[0]
        if isinstance(first, (int, np.integer)) and not isinstance(first, bool):
            index = int(first)
            if not -length <= index < length:
                raise IndexError(f"index {index} is out of range for axis 0 of size {length}")
            index %= length
            return self.layout.read(index, index + 1)[0][rest]
        if isinstance(first, slice):
            start, stop, step = first.indices(length)
            if step == 1:
                return self.layout.read(start, max(start, stop))[(slice(None), *rest)]
            frames = range(start, stop, step)
            stack = np.empty((len(frames), *self.shape[1:]), dtype=self.dtype)
            for position, index in enumerate(frames):
                stack[position] = self.layout.read(index, index + 1)[0]
            return stack[(slice(None), *rest)]
        return self.layout.read()[key]


# --------------------------------------------------------------------------- metadata


# --------------------------------------------------------------------------- functions


def read_dm(path: str | os.PathLike, lazy: bool | None = None) -> list[tuple[Any, dict]]:
    """Read every image of a DM3/DM4 file except its thumbnail.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    lazy : bool or None
        True: every image as a :class:`LazyDMArray`; False: every image read now;
        None (default): images larger than :data:`LAZY_BYTES` lazily, others now.

    Returns
    -------
    list of (array, dict)
        For each image in file order: its data as stored, numpy axis order (slowest
        first; RGB(A) images as (..., 3) uint8; packed FFTs whole), and its metadata
        (see :func:`image_meta`). The metadata share one plain-dict tag tree.

    Raises
    ------
    MRCZFormatError
        If the file is damaged, truncated or not DM3/DM4.
    """
    parser = DMTagParser(path)
    tags = parser.parse_file()
    layouts = image_layouts(parser.filename, tags, parser.header.byteorder)
    skip = thumbnail_indices(tags)
    plain = plain_tree(tags)
    images = []
    for layout in layouts:
        if layout.index in skip:
            continue
        big = layout.nbytes > LAZY_BYTES if lazy is None else lazy
        data = LazyDMArray(layout) if big else layout.read()
        images.append((data, image_meta(layout, parser.header.version, plain)))
    return images
