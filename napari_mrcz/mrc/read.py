"""Reading whole MRC/MRCZ files (or frames of them) with python-mrcz's meta dict.

python-mrcz's ``readMRC`` and ``readMRCHeader`` (:mod:`napari_mrcz.api`) are
thin faces on :func:`read_array` and :func:`read_header_meta`.
"""

from __future__ import annotations

import os

import numpy as np

from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.codecs import BLOSC1_FORMATS
from napari_mrcz.mrc.extheader import parse_extended_header
from napari_mrcz.mrc.gain import applies_gain, original_meta, slice_reader
from napari_mrcz.mrc.gzipped import DecompressedFile
from napari_mrcz.mrc.header import header_fields
from napari_mrcz.mrc.jsonmeta import CHECKSUM_KEY, CHUNK_SIZES_KEY, hex_text
from napari_mrcz.mrc.layout import MRCLayout, read_layout
from napari_mrcz.mrc.modes import RGB_MODE
from napari_mrcz.remote import RemoteFile, is_url, local_only_problem, redact
from napari_mrcz.threads import default_threads
from napari_mrcz.units import units_per_angstrom


def layout_meta(layout: MRCLayout, pixelunits: str = "\\AA", with_json: bool = True) -> dict:
    """Return the meta dict python-mrcz's ``readMRC`` returns, plus our extras.

    python-mrcz's keys: ``dimensions`` (z, y, x), ``MRCtype``, ``compressor``,
    ``dtype``, ``pixelsize`` (z, y, x, in ``pixelunits``), ``pixelunits``,
    ``minImage``, ``maxImage``, ``meanImage``, ``extendedBytes``, ``metaId``,
    ``voltage``, ``C3``, ``gain``, ``packedBytes`` and, for MRCZ, ``bloscFormat`` and
    ``backend``. Ours: ``rmsImage``, ``mapcrs``, ``mrcHeader`` (every header field
    as stored), ``rgb`` (True, only for RGB files, mode 16, whose data ends in an
    axis of 3) and ``extendedHeader`` (for a non-JSON extended header, the dict
    :func:`napari_mrcz.mrc.extheader.parse_extended_header` returns). JSON meta keys
    are added last (unless ``with_json`` is False) and never replace these.
    """
    header = layout.header
    meta: dict = {
        "dimensions": np.array(layout.shape, dtype=int),
        "MRCtype": layout.mode,
        "compressor": layout.compressor,
        "dtype": layout.byteorder + layout.dtype.base.str[1:],
        "pixelsize": layout.pixelsize * units_per_angstrom(pixelunits),
        "pixelunits": pixelunits,
        "minImage": float(header["dmin"]),
        "maxImage": float(header["dmax"]),
        "meanImage": float(header["dmean"]),
        "rmsImage": float(header["rms"]),
        "extendedBytes": layout.nsymbt,
    }
    if layout.nsymbt > 0:
        meta["metaId"] = bytes(header["exttyp"])
    if layout.mode == RGB_MODE:
        meta["rgb"] = True
    if layout.compressor is not None:
        version = layout.read_bytes(layout.data_offset, 1)
        blosc_format = None
        if version:
            blosc_format = 1 if version[0] in BLOSC1_FORMATS else 2
        meta["bloscFormat"] = blosc_format
        meta["backend"] = None if blosc_format is None else f"blosc{blosc_format}"
    meta["voltage"] = float(header["voltage"])
    meta["C3"] = float(header["cs"])
    meta["gain"] = float(header["gain"])
    meta["packedBytes"] = int(header["packed_bytes"])
    meta["mapcrs"] = list(layout.mapcrs)
    meta["mrcHeader"] = header_fields(layout.header, layout.byteorder)
    if layout.nsymbt > 0 and layout.exttyp != "json":
        meta["extendedHeader"] = parse_extended_header(
            layout.exttyp,
            layout.read_extended_header(),
            layout.nz,
            layout.path,
            byteorder=layout.byteorder,
        )
    if with_json:
        json_meta = dict(layout.json_meta or {})
        # python-mrcz returns these keys too
        if layout.chunk_checksums is not None:
            json_meta[CHECKSUM_KEY] = hex_text(layout.chunk_checksums)
        if layout.chunk_sizes is not None:
            json_meta[CHUNK_SIZES_KEY] = hex_text(layout.chunk_sizes)
        for key, value in json_meta.items():
            meta.setdefault(key, value)
    return meta


def read_header_meta(
    path: str | os.PathLike,
    slices: int | None = None,
    endian: str = "le",
    file_convention: str = "ccpem",
    pixelunits: str = "\\AA",
) -> tuple[dict, int]:
    """Read the header of an MRC/MRCZ file into python-mrcz's meta dict.

    The engine's form of :func:`napari_mrcz.readMRCHeader` (same parameters, snake_case).

    Returns
    -------
    header : dict
        As described in :func:`layout_meta`.
    slices : int
        Slices per frame (0 for one array).
    """
    with DecompressedFile(path, head_only=True) as source, source.original_in_errors():
        layout = read_layout(
            source.path,
            endian=endian,
            slices=slices,
            file_convention=file_convention,
            file_size=source.whole_size,
        )
        return layout_meta(layout, pixelunits), layout.slices


def _frame_range(idx: int | tuple[int, int], nz: int) -> tuple[int, int]:
    """Turn python-mrcz's ``idx`` (a frame, or an inclusive (first, last)) into a range."""
    if np.ndim(idx) == 0:
        first = last = int(idx)
    else:
        first, last = (int(value) for value in idx)
    first = first + nz if first < 0 else first
    last = last + nz if last < 0 else last
    if not 0 <= first < nz or not 0 <= last < nz:
        raise ValueError(f"image or slice index out of range: idx={idx}, z_dimension={nz}")
    if last < first:
        raise ValueError(f"idx={idx} selects no frames: the last frame comes before the first")
    return first, last + 1


def _split_into_frames(image: np.ndarray, slices: int) -> list[np.ndarray]:
    """Split a (nz, ny, nx) array into python-mrcz's list of frames (views)."""
    frames = image.reshape(-1, slices, *image.shape[1:])
    return [frame[0] if slices == 1 else frame for frame in frames]


def read_array(
    path: str | os.PathLike,
    idx: int | tuple[int, int] | None = None,
    *,
    endian: str = "le",
    pixelunits: str = "\\AA",
    file_convention: str = "ccpem",
    use_memmap: bool = False,
    n_threads: int | None = None,
    slices: int | None = None,
    counts: bool = False,
    storage_options: dict | None = None,
) -> tuple[np.ndarray | list[np.ndarray], dict]:
    """Read an MRC or MRCZ file into a numpy array (or list of frames) and a meta dict.

    The engine's form of :func:`napari_mrcz.readMRC`, which documents every
    parameter (same names in snake_case).

    Raises
    ------
    MRCZFormatError
        If the file is damaged or truncated.
    RemoteFileError
        If a file on a server cannot be read.
    """
    if is_url(path):
        problem = local_only_problem(str(path))
        if problem is not None:
            raise MRCZFormatError(redact(str(path)), problem)
        remote = RemoteFile(str(path), storage_options)
        layout = read_layout(
            remote.name,
            endian=endian,
            slices=slices,
            file_convention=file_convention,
            source=remote,
        )
        return _read_layout(layout, idx, pixelunits, False, n_threads, str(path), counts, remote)
    with DecompressedFile(path) as source, source.original_in_errors():
        layout = read_layout(
            source.path, endian=endian, slices=slices, file_convention=file_convention
        )
        return _read_layout(
            layout,
            idx,
            pixelunits,
            use_memmap and not source.is_temporary,
            n_threads,
            source.original,
            counts,
        )


def _read_layout(
    layout: MRCLayout,
    idx: int | tuple[int, int] | None,
    pixelunits: str,
    use_memmap: bool,
    n_threads: int | None,
    movie_path: str,
    counts: bool,
    remote: RemoteFile | None = None,
) -> tuple[np.ndarray | list[np.ndarray], dict]:
    """:func:`read_array` on a file whose header is read already."""
    meta = layout_meta(layout, pixelunits)
    applied = applies_gain(layout, counts)
    if applied:
        original_meta(meta, layout.gain_separation)
    nz = layout.nz
    start, stop = (0, nz) if idx is None else _frame_range(idx, nz)
    meta["dimensions"][0] = stop - start

    if use_memmap and layout.compressor is None and not layout.is_uint4 and not applied:
        image = np.memmap(
            layout.path,
            dtype=layout.dtype,
            mode="c",
            offset=layout.data_offset + start * layout.slice_nbytes,
            shape=(stop - start, *layout.shape[1:]),
        )
    else:
        threads = default_threads() if n_threads is None else n_threads
        with slice_reader(layout, threads, movie_path, counts, remote=remote) as reader:
            meta["packedBytes"] = meta["packedBytes"] or reader.packed_bytes
            try:
                image = reader.new_array(stop - start)
            except MemoryError:
                raise MemoryError(
                    f"{layout.path}: not enough memory to read {stop - start} slices of "
                    f"{layout.slice_nbytes} bytes at once; use idx= or open_lazy()"
                ) from None
            reader.read_into(start, stop, image, sequential=True)

    if layout.slices > 0 and idx is None:
        return _split_into_frames(image, layout.slices), meta
    if (idx is not None and np.ndim(idx) == 0) or image.shape[0] == 1:
        image = image[0]
    return image, meta
