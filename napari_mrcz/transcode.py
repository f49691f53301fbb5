"""Converting whole files: MRC, MRCZ and DM to MRCZ or plain MRC, and checking the copy.

What the command line's ``compress``, ``decompress`` and ``convert`` do for one input
file. An MRC or MRCZ input keeps its header (axis order, origin, space group, labels,
microscope values, IMOD flags) and its extended header byte for byte; only what the
new encoding changes is rewritten: MODE, the sampling (MX, MY, MZ with CELLA kept at
the same voxel size, in the writer's conventions), the statistics (exact) and the
packed size. A DM input becomes one file per image (thumbnails aside) with its
calibrated pixel size and origin, the microscope's voltage and Cs, and its whole tag
tree as JSON meta (``dm_tags``, as the napari writer saves DM layers).

Data flow slice by slice (a 40 GB movie never sits in memory); the output appears
only once complete (see :func:`napari_mrcz.writer.write_with_header`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .codecs import (
    MODE_CODEC_FACTOR,
    REVERSE_COMPRESSOR_ENUM,
    recorded_settings,
    settings_label,
)
from .dm import read_dm
from .errors import MRCZFormatError
from .header import LABEL_SIZE, MAP_ID, MRC2014_VERSION, N_LABELS, machine_stamp
from .layout import MRCLayout
from .lazy import LazyMRC
from .modes import UINT4_MODE, mrc_dtype, storage_dtype
from .suffixes import is_dm
from .writer import write_with_header, writeMRC

#: Slices read at a time when a copy is verified: about this many bytes.
VERIFY_BLOCK_BYTES = 64 * 2**20

#: Called with the number of bytes of data just processed (written or verified).
Progress = Callable[[int], None]


class VerificationError(ValueError):
    """A written file does not hold the data (or the pixel size) of its source."""


@dataclass
class SourceImage:
    """One image of an input file, ready to be written slice by slice.

    Attributes
    ----------
    path : str
        The input file.
    data : array-like
        The pixels as stored, (nz, ny, nx) or fewer dimensions.
    nbytes : int
        Bytes of the data as it will be written (after any cast).
    index : int or None
        Position among the file's images when it has several (DM), else None.
    layout : MRCLayout or None
        The parsed header of an MRC/MRCZ input, carried over to the output.
    dm_meta : dict or None
        The :func:`napari_mrcz.read_dm` metadata of a DM image.
    """

    path: str
    data: Any
    nbytes: int
    index: int | None = None
    layout: MRCLayout | None = None
    dm_meta: dict | None = field(default=None, repr=False)


def _written_nbytes(data: Any) -> int:
    """Bytes ``data`` takes once cast as the writer casts it (known without reading it)."""
    return int(np.prod(data.shape, dtype=np.int64)) * storage_dtype(data.dtype).itemsize


@contextlib.contextmanager
def open_images(path: str | os.PathLike) -> Iterator[list[SourceImage]]:
    """Open an input file for conversion without reading its data.

    Yields
    ------
    list of SourceImage
        One for an MRC/MRCZ file (``.gz``/``.bz2`` included), one per image for DM.

    Raises
    ------
    MRCZFormatError
        If the file is damaged, or holds what MRC cannot (RGB, more than 3 dimensions).
    """
    path = os.fspath(path)
    if is_dm(path):
        images = []
        dm_images = read_dm(path, lazy=True)
        for number, (data, meta) in enumerate(dm_images):
            if meta["rgb"]:
                raise MRCZFormatError(path, f"image {number} is RGB, which MRC cannot hold")
            if data.ndim > 3:
                raise MRCZFormatError(path, f"image {number} has {data.ndim} dimensions; MRC "
                                            "holds at most 3")
            images.append(SourceImage(path, data, _written_nbytes(data),
                                      number if len(dm_images) > 1 else None, dm_meta=meta))
        yield images
        return
    with LazyMRC(path, cache_bytes=0) as lazy:  # streamed once: no cache
        layout = lazy.layout
        if layout.dtype.shape:
            raise MRCZFormatError(path, "RGB (mode 16) data cannot be written to MRCZ")
        nbytes = layout.nz * layout.shape[1] * layout.shape[2] * layout.dtype.itemsize
        yield [SourceImage(path, lazy, nbytes, layout=layout)]


def target_for(image: SourceImage, target: str) -> str:
    """``target``, numbered (``name_<k>.mrcz``) for the k-th image of a file with several."""
    if image.index is None:
        return target
    stem, suffix = os.path.splitext(target)
    return f"{stem}_{image.index}{suffix}"


def _as_stack(data: Any) -> Any:
    """``data`` as (nz, ny, nx): lower-dimensional data is read and reshaped."""
    if data.ndim == 3:
        return data
    array = np.asarray(data)
    return array.reshape((1,) * (3 - array.ndim) + array.shape)


def _carried_header(layout: MRCLayout, compressor: str | None, clevel: int) -> np.ndarray:
    """The header of ``layout`` made right for the new encoding (see the module doc)."""
    header = layout.header.copy()
    mode = 0 if layout.mode == UINT4_MODE else layout.mode
    header["mode"] = mode + MODE_CODEC_FACTOR * REVERSE_COMPRESSOR_ENUM[compressor]
    header["map"] = MAP_ID
    header["machst"] = np.frombuffer(machine_stamp(layout.byteorder), dtype="u1")
    if int(header["nversion"]) // 10 != MRC2014_VERSION // 10:  # 20140 or 20141
        header["nversion"] = MRC2014_VERSION
    if not layout.slices:
        _resample(header, layout, compressed=compressor is not None)
    labels = [label for label in layout.labels if recorded_settings([label]) is None]
    if compressor is not None:
        labels = [*labels[: N_LABELS - 1], settings_label(compressor, clevel)]
    header["label"] = b""
    for number, label in enumerate(labels):
        header["label"][number] = label.encode("latin-1")[:LABEL_SIZE]
    header["nlabl"] = len(labels)
    return header


def _resample(header: np.ndarray, layout: MRCLayout, compressed: bool) -> None:
    """Set MX, MY, MZ (and CELLA, to keep the voxel size) for the new encoding.

    MRCZ takes python-mrcz's sampling, which it reads as CELLA / N: M = N, and MZ = 0
    (MZ counts slices per frame there). Plain MRC keeps each M, but an M of 0 (from
    MRCZ) becomes N. CELLA changes only where the divisor does, so a voxel size is
    kept bit for bit wherever it can be. Files with frames keep python-mrcz's fields,
    which say how many slices a frame has.
    """
    nz, ny, nx = layout.shape
    mapc, mapr, maps = layout.mapcrs
    pixel_z, pixel_y, pixel_x = layout.pixelsize
    for axis, count, pixel, is_sections in ((mapc, nx, pixel_x, False),
                                            (mapr, ny, pixel_y, False),
                                            (maps, nz, pixel_z, True)):
        name = ("mx", "my", "mz")[axis - 1]
        old = int(header[name])
        old_divisor = old if old > 0 else count
        new = (0 if is_sections else count) if compressed else old_divisor
        header[name] = new
        if old_divisor != (new or count):
            header["cella"][axis - 1] = pixel * count


def _bytes_progress(progress: Progress | None, slice_nbytes: int
                    ) -> Callable[[int, int], None] | None:
    """Turn the writer's ``(slices written, total)`` calls into byte increments."""
    if progress is None:
        return None
    done = [0]

    def report(written: int, _total: int) -> None:
        progress((written - done[0]) * slice_nbytes)
        done[0] = written

    return report


def write_image(image: SourceImage, target: str, compressor: str | None, clevel: int = 1,
                n_threads: int | None = None, progress: Progress | None = None) -> None:
    """Write one source image to ``target``, MRCZ with ``compressor`` or plain MRC.

    Parameters
    ----------
    image : SourceImage
        From :func:`open_images`.
    target : str
        The output file; replaced only once complete.
    compressor : str or None
        Blosc codec for MRCZ, or None for plain MRC.
    clevel : int
        Compression level, 1-9.
    n_threads : int, optional
        Slices encoded in parallel.
    progress : callable, optional
        Called with the bytes of data just written; an exception it raises stops the
        write, leaving no output.
    """
    data = _as_stack(image.data)
    slice_nbytes = image.nbytes // max(1, data.shape[0])
    report = _bytes_progress(progress, slice_nbytes)
    layout = image.layout
    if layout is not None:
        header = _carried_header(layout, compressor, clevel)
        extended = layout.read_extended_header() if layout.nsymbt else b""
        if layout.mode == UINT4_MODE:
            data = _Int8View(data)
        write_with_header(target, data, header, extended, compressor, clevel, n_threads,
                          report)
        return
    meta = image.dm_meta
    pixelsize = [size or 0.0 for size in meta["pixelsize"]]
    origin = [offset or 0.0 for offset in meta["offset_angstrom"]]
    if len(pixelsize) < 3:  # a single image: z as y, as the napari writer does
        pixelsize = [pixelsize[0]] * (3 - len(pixelsize)) + pixelsize
        origin = [0.0] * (3 - len(origin)) + origin
    writeMRC(data, target, meta={"dm_tags": meta["tags"]},
             dtype=mrc_dtype(data, plain=compressor is None, warn=False), pixelsize=pixelsize,
             pixelunits="\\AA", origin=origin, compressor=compressor, clevel=clevel,
             n_threads=n_threads, progress=report, **dm_microscope(meta))


class _Int8View:
    """4-bit data (values 0-15, read as uint8) as int8, mode 0, slice by slice."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.shape = data.shape
        self.ndim = data.ndim
        self.dtype = np.dtype(np.int8)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.data[key]).view(np.int8)


def dm_microscope(meta: dict) -> dict[str, float]:
    """voltage (kV) and C3 (mm) from a DM image's Microscope Info, for writeMRC."""
    image_list = meta["tags"].get("ImageList", {})
    entry = list(image_list.values())[meta["image_index"]] if isinstance(image_list, dict) \
        else {}
    info = entry.get("ImageTags", {}).get("Microscope Info", {}) if isinstance(entry, dict) \
        else {}
    values = {}
    voltage = info.get("Voltage") if isinstance(info, dict) else None
    if isinstance(voltage, (int, float)) and voltage > 0:
        values["voltage"] = voltage / 1000.0  # DM stores volts
    cs = info.get("Cs(mm)") if isinstance(info, dict) else None
    if isinstance(cs, (int, float)):
        values["C3"] = float(cs)
    return values


def verify_image(image: SourceImage, target: str, progress: Progress | None = None) -> None:
    """Re-read ``target`` from disk and compare it with its source, block by block.

    The pixels must be equal (NaN equal to NaN) after the cast the writer makes, and
    the shape and pixel size the same.

    Raises
    ------
    VerificationError
        Naming the first z-slice or header value that differs.
    """
    source = _as_stack(image.data)
    with LazyMRC(target, cache_bytes=0) as written:
        layout = written.layout
        if layout.shape != tuple(source.shape):
            raise VerificationError(f"{target}: shape {layout.shape} differs from the "
                                    f"source's {tuple(source.shape)}")
        if image.layout is not None and not np.allclose(layout.pixelsize,
                                                        image.layout.pixelsize, rtol=1e-6):
            raise VerificationError(f"{target}: pixel size {layout.pixelsize} differs from "
                                    f"the source's {image.layout.pixelsize}")
        copy_stack = _as_stack(written)
        nz = layout.nz
        block = max(1, VERIFY_BLOCK_BYTES // max(1, layout.slice_nbytes))
        for start in range(0, nz, block):
            stop = min(nz, start + block)
            copy = np.asarray(copy_stack[start:stop])
            original = np.asarray(source[start:stop])
            if image.layout is not None and image.layout.mode == UINT4_MODE:
                original = original.view(np.int8)
            original = original.astype(copy.dtype.newbyteorder("="), copy=False)
            for offset, (written_slice, source_slice) in enumerate(
                    zip(copy, original, strict=True)):
                if not np.array_equal(written_slice, source_slice,
                                      equal_nan=written_slice.dtype.kind in "fc"):
                    raise VerificationError(
                        f"{target}: z-slice {start + offset} differs from the source")
            if progress is not None:
                progress(image.nbytes * stop // nz - image.nbytes * start // nz)
