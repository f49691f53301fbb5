"""Converting whole files: MRC, MRCZ and DM to MRCZ or plain MRC, and checking the copy.

What the command line's ``compress``, ``decompress`` and ``convert`` do for one input
file. An MRC or MRCZ input keeps its header (axis order, origin, space group, labels,
microscope values, IMOD flags) and its extended header byte for byte; only what the
new encoding changes is rewritten: MODE, the sampling (MX, MY, MZ with CELLA kept at
the same voxel size, in the writer's conventions), the statistics (exact) and the
packed size. JSON meta goes into plain MRC outputs only when asked (``keep_json``):
MRC2014 readers reject EXTTYP 'json'. A map with a permuted axis order becomes MRCZ in
(z, y, x) order (:func:`napari_mrcz.formats.open_images` with ``standard_order``), as
napari saves it. Frames (python-mrcz's lists) stay frames in every copy. A DM input
becomes one file per image (thumbnails aside) with its calibrated pixel size and origin,
the microscope's voltage and Cs, and its whole tag tree as JSON meta (``dm_tags``, as
the napari writer saves DM layers).

Data flows slice by slice (a 40 GB movie never sits in memory), and the output appears
only once complete (see :func:`napari_mrcz.mrc.write.write_with_header`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from napari_mrcz.arraylike import LazyView, as_stack
from napari_mrcz.dm.metadata import image_entry, python_mrcz_info
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.formats import Image
from napari_mrcz.mrc.axis_order import source_layout
from napari_mrcz.mrc.codecs import (
    MODE_CODEC_FACTOR,
    REVERSE_COMPRESSOR_ENUM,
    recorded_settings,
    settings_label,
)
from napari_mrcz.mrc.grid import grid_of, needs_record
from napari_mrcz.mrc.header import (
    FIELD_MEANINGS,
    MAP_ID,
    MRC2014_VERSION,
    N_LABELS,
    decode_labels,
    machine_stamp,
    set_labels,
)
from napari_mrcz.mrc.jsonmeta import DM_TAGS_KEY, FRAMES_KEY, GRID_KEY, encode_meta, meta_to_write
from napari_mrcz.mrc.layout import (
    MRCLayout,
    read_layout,
    recorded_frames,
    sampling_divisors,
    written_by_mrcz_writer,
)
from napari_mrcz.mrc.lazy import LazyMRC
from napari_mrcz.mrc.modes import (
    PYTHON_MRCZ_MODES,
    UINT4_MODE,
    mode_for_dtype,
    mrc_dtype,
    storage_dtype,
)
from napari_mrcz.mrc.slices import STREAM_BLOCK_BYTES, SliceReader
from napari_mrcz.mrc.write import write_array, write_with_header

logger = logging.getLogger(__name__)

#: Called with the number of bytes of data just processed (written or verified).
Progress = Callable[[int], None]


class VerificationError(ValueError):
    """A written file does not hold the data (or the pixel size) of its source."""


def numbered_targets(target: str, count: int) -> list[str]:
    """The outputs of a file of ``count`` images: ``target``, or ``<stem>_<k><suffix>`` each."""
    if count == 1:
        return [target]
    stem, suffix = os.path.splitext(target)
    return [f"{stem}_{index}{suffix}" for index in range(count)]


def carried_header(
    layout: MRCLayout,
    mode: int,
    compressor: str | None,
    clevel: int,
    keep_json: bool = False,
) -> tuple[np.ndarray, bytes]:
    """The header and extended header of ``layout`` made right for the new encoding.

    See the module doc; MX, MY, MZ and CELLA as :func:`_resample` and :func:`_set_cell`
    say, the extended header as :func:`_carried_extended` says.
    """
    header = layout.header.copy()
    compressed = compressor is not None
    header["mode"] = mode + MODE_CODEC_FACTOR * REVERSE_COMPRESSOR_ENUM[compressor]
    header["map"] = MAP_ID
    header["machst"] = np.frombuffer(machine_stamp(layout.byteorder), dtype="u1")
    if int(header["nversion"]) // 10 != MRC2014_VERSION // 10:  # 20140 or 20141
        header["nversion"] = MRC2014_VERSION
    frames = _mrcz_frames(layout) if compressed else layout.slices
    _resample(header, layout, compressed, frames)
    labels = [label for label in layout.labels if recorded_settings([label]) is None]
    if compressed and len(labels) < N_LABELS:  # never in place of one of the source's
        labels = [*labels, settings_label(compressor, clevel)]
    set_labels(header, labels)
    extended, json_meta = _carried_extended(layout, header, compressed, keep_json, frames)
    _set_cell(header, layout, labels, json_meta)
    if compressed:
        extended = _record_grid(layout, header, extended, json_meta, frames)
    return header, extended


def _record_grid(
    layout: MRCLayout, header: np.ndarray, extended: bytes, json_meta: dict | None, frames: int
) -> bytes:
    """The MRCZ copy's extended header with the source's grid recorded, where needed.

    See :mod:`napari_mrcz.mrc.grid`. An extended header of another kind (FEI,
    SerialEM) is kept as it is and cannot hold the record: the copy then lacks the
    grid, which :func:`header_loss` reports.
    """
    grid = layout.source_grid or grid_of(layout.header)
    if not needs_record(grid, frames) or (extended and json_meta is None):
        return extended
    extended = encode_meta({**(json_meta or {}), GRID_KEY: grid})
    header["nsymbt"] = len(extended)
    header["exttyp"] = b"json"
    return extended


def _mrcz_frames(layout: MRCLayout) -> int:
    """The slices per frame an MRCZ copy of ``layout`` records (0 for one array).

    The source's frames; or 1 for an image stack of an MRCZ writer with MZ = 1:
    python-mrcz's list of 2D frames whose plain copy lost its JSON meta, which
    python-mrcz still reads as a list (MZ = 1) and our reader as a stack.
    """
    if layout.slices:
        return layout.slices
    mz = int(layout.header["mz"])
    return 1 if written_by_mrcz_writer(layout.labels) and mz == 1 < layout.nz else 0


def _resample(header: np.ndarray, layout: MRCLayout, compressed: bool, frames: int) -> None:
    """Set MX, MY and MZ for the new encoding (CELLA follows in :func:`_set_cell`).

    MRCZ: python-mrcz reads MZ as slices per frame, so M = N and MZ = 0, or MZ =
    slices per frame for frames. Plain MRC: M as in the source where positive, N
    where 0 (python-mrcz's), and MZ = slices per frame for frames, so that
    python-mrcz still finds them.
    """
    for axis, count, divisor, is_sections in zip(
        layout.crystal_axes, layout.shape, layout.divisors, (True, False, False), strict=True
    ):
        name = ("mx", "my", "mz")[axis]
        if is_sections and frames:
            header[name] = frames
        elif compressed:
            header[name] = 0 if is_sections else count
        else:
            header[name] = divisor


def _set_cell(
    header: np.ndarray, layout: MRCLayout, labels: list[str], json_meta: dict | None
) -> None:
    """Set CELLA so that the copy has the voxel size of its source, as we read both.

    The divisors are those our reader will take for the copy
    (:func:`~napari_mrcz.mrc.layout.sampling_divisors`, with the frames it will find);
    CELLA changes only where a divisor does, so a voxel size is otherwise kept bit
    for bit. Files of frames then have CELLA / N along z, as python-mrcz writes and
    reads them; mrcfile takes the spacing of the frames for their z voxel size.
    """
    frames = recorded_frames(header, labels, json_meta)
    divisors = sampling_divisors(header, layout.shape, layout.mapcrs, frames)
    for axis, pixel, old, new in zip(
        layout.crystal_axes, layout.pixelsize, layout.divisors, divisors, strict=True
    ):
        if old != new:
            header["cella"][axis] = pixel * new


def _carried_extended(
    layout: MRCLayout, header: np.ndarray, compressed: bool, keep_json: bool, frames: int
) -> tuple[bytes, dict | None]:
    """The extended header of the output and its JSON meta; NSYMBT and EXTTYP set to match.

    The source's, byte for byte, except: JSON meta goes into a plain file only with
    ``keep_json`` (see :data:`~napari_mrcz.mrc.jsonmeta.JSON_IN_PLAIN_COST`), and an
    MRCZ file of frames records them in its JSON meta (``slices``), as
    :func:`~napari_mrcz.mrc.write.write_array` does.
    """
    extended = layout.read_extended_header() if layout.nsymbt else b""
    is_json = layout.nsymbt > 0 and layout.exttyp == "json"
    json_meta = layout.json_meta if is_json else None
    if is_json and meta_to_write(json_meta, compressed, keep_json) is None:
        extended, json_meta = b"", None
    elif (
        compressed
        and frames
        and (is_json or not extended)
        and (json_meta or {}).get(FRAMES_KEY) != frames
    ):
        json_meta = {**(json_meta or {}), FRAMES_KEY: frames}
        extended = encode_meta(json_meta)
    header["nsymbt"] = len(extended)
    if not extended:
        header["exttyp"] = b""
    elif json_meta is not None:
        header["exttyp"] = b"json"
    return extended, json_meta


def bytes_progress(
    progress: Progress | None, slice_nbytes: int
) -> Callable[[int, int], None] | None:
    """Turn the writer's ``(slices written, total)`` calls into byte increments."""
    if progress is None:
        return None
    done = [0]

    def report(written: int, _total: int) -> None:
        progress((written - done[0]) * slice_nbytes)
        done[0] = written

    return report


def write_image(
    image: Image,
    target: str,
    compressor: str | None,
    clevel: int = 1,
    n_threads: int | None = None,
    progress: Progress | None = None,
    *,
    keep_json: bool = False,
    temporary: str | None = None,
) -> None:
    """Write one source image to ``target``, MRCZ with ``compressor`` or plain MRC.

    Parameters
    ----------
    image : Image
        From :func:`napari_mrcz.formats.open_images`.
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
    keep_json : bool
        Write JSON meta (DM tags, the source's JSON meta) into a plain MRC output too;
        MRCZ outputs always have it (see :func:`~napari_mrcz.mrc.jsonmeta.meta_to_write`).
    temporary : str, optional
        Write there instead, for the caller to give it the name ``target`` later;
        messages still name ``target``.
    """
    destination = target if temporary is None else temporary
    data = as_stack(image.data)
    slice_nbytes = image.nbytes // max(1, data.shape[0])
    report = bytes_progress(progress, slice_nbytes)
    layout = image.layout
    if layout is not None:
        if compressor is not None and layout.mapcrs != (1, 2, 3):
            raise MRCZFormatError(
                image.path,
                f"axis order MAPC, MAPR, MAPS = {layout.mapcrs}, which MRCZ readers "
                "(python-mrcz) ignore: open it with standard_order=True to write it "
                "in (z, y, x) order, or convert it to plain MRC",
            )
        mode, cast_to = layout.mode, None
        if layout.mode == UINT4_MODE:  # MRCZ has no 4-bit mode; values 0-15 fit int8
            mode, cast_to = 0, np.dtype(np.int8)
        elif compressor is None and layout.mode in PYTHON_MRCZ_MODES:
            # int32/uint32 are python-mrcz's: plain files get an MRC2014 type that
            # holds the values exactly (or the conversion fails, saying so).
            cast_to = mrc_dtype(data, plain=True, warn=False)
            mode = layout.mode if cast_to is None else mode_for_dtype(cast_to)
        header, extended = carried_header(layout, mode, compressor, clevel, keep_json)
        if cast_to is not None:
            data = LazyView(data, cast_to)
        write_with_header(
            destination,
            data,
            header,
            extended,
            compressor,
            clevel,
            n_threads,
            report,
            name=target,
        )
        return
    write_array(
        data,
        destination,
        name=target,
        meta=meta_to_write(
            {DM_TAGS_KEY: image.dm_meta["tags"]}, compressor is not None, keep_json
        ),
        dtype=mrc_dtype(data, plain=compressor is None, warn=False),
        compressor=compressor,
        clevel=clevel,
        n_threads=n_threads,
        progress=report,
        **dm_write_options(image.dm_meta),
    )


def dm_write_options(meta: dict) -> dict[str, Any]:
    """:func:`write_array` keywords that keep a DM image's calibration and microscope.

    The pixel size and origin in Angstrom (axes in other units get 0), a single
    image's z taken as its y (as the napari writer does), voltage and Cs, and the
    rows shown top-down, as DigitalMicrograph shows them (napari then shows the copy
    as it shows the original).
    """
    pixelsize = [size or 0.0 for size in meta["pixelsize"]]
    origin = [axis["offset_angstrom"] or 0.0 for axis in meta["axes"]]  # lengths only
    if len(pixelsize) < 3:
        pixelsize = [pixelsize[0]] * (3 - len(pixelsize)) + pixelsize
        origin = [0.0] * (3 - len(origin)) + origin
    return {
        "pixelsize": pixelsize,
        "pixelunits": "\\AA",
        "origin": origin,
        "rows_top_down": True,
        **dm_microscope(meta),
    }


def dm_microscope(meta: dict) -> dict[str, float]:
    """voltage (kV) and cs (C3, mm) from a DM image's Microscope Info, for write_array."""
    info = python_mrcz_info(image_entry(meta))
    values = {}
    voltage, cs = info.get("Voltage"), info.get("C3")
    if isinstance(voltage, (int, float)) and voltage > 0:
        values["voltage"] = voltage / 1000.0  # DM stores volts
    if isinstance(cs, (int, float)):
        values["cs"] = float(cs)
    return values


def verify_image(
    image: Image,
    target: str,
    progress: Progress | None = None,
    *,
    temporary: str | None = None,
    counts: bool = False,
) -> None:
    """Re-read ``target`` (or ``temporary``) from disk and compare it with its source.

    The pixels must be equal (NaN equal to NaN) after the cast the writer makes, a
    narrowing cast (float64 to float32) must keep every value to the precision of the
    narrower type (no overflow to infinity, no underflow to 0), and the shape must be
    the same, and for MRC/MRCZ inputs the pixel size too.

    Block by block. Messages name ``target`` even when ``temporary`` is read. With
    ``counts``, a gain-separated source written as plain counts without the gain's
    record (``mrcz decompress --counts``) is compared by its counts.

    Raises
    ------
    VerificationError
        Naming the first z-slice or header value that differs.
    """
    with contextlib.ExitStack() as files:
        written = files.enter_context(
            LazyMRC(target if temporary is None else temporary, cache_bytes=0, quiet=True)
        )
        layout = written.layout
        source_data = image.data
        if counts and layout.gain_separation is None:
            # counts written without their gain's record: compared with the counts
            source_data = files.enter_context(LazyMRC(image.path, cache_bytes=0, counts=True))
        source = as_stack(source_data)
        if layout.shape != tuple(source.shape):
            raise VerificationError(
                f"{target}: shape {layout.shape} differs from the source's {tuple(source.shape)}"
            )
        if image.layout is not None and not np.allclose(
            layout.pixelsize, image.layout.pixelsize, rtol=1e-6
        ):
            raise VerificationError(
                f"{target}: pixel size {layout.pixelsize} differs from "
                f"the source's {image.layout.pixelsize}"
            )
        nz = layout.nz
        block = min(nz, max(1, STREAM_BLOCK_BYTES // max(1, layout.slice_nbytes)))
        # Read into the same two arrays each time: new ones would cost a fresh,
        # zeroed page for every byte compared (see pipeline.RecycledBlocks).
        copy_buffer = np.empty((block, *layout.shape[1:]), dtype=written.dtype)
        lazy_source = source_data if isinstance(source_data, LazyMRC) else None
        source_buffer = None
        if lazy_source is not None:
            source_buffer = np.empty((block, *layout.shape[1:]), dtype=lazy_source.dtype)
        for start in range(0, nz, block):
            stop = min(nz, start + block)
            copy = written.read_slices(start, stop, out=copy_buffer[: stop - start])
            if lazy_source is not None and source_buffer is not None:
                original = lazy_source.read_slices(start, stop, out=source_buffer[: stop - start])
            else:
                original = np.asarray(source[start:stop])
            for offset, (written_slice, source_slice) in enumerate(
                zip(copy, original, strict=True)
            ):
                problem = _slice_problem(written_slice, source_slice)
                if problem is not None:
                    raise VerificationError(f"{target}: z-slice {start + offset} {problem}")
            if progress is not None:
                progress(image.nbytes * stop // nz - image.nbytes * start // nz)
    if layout.compressor is not None:
        with SliceReader(layout) as reader:
            damaged = reader.damaged_chunks()
        if damaged:
            raise VerificationError(
                f"{target}: z-slice {damaged[0]}: its compressed bytes differ from the "
                "CRC32 recorded while writing"
            )


def _slice_problem(written: np.ndarray, source: np.ndarray) -> str | None:
    """What is wrong with the written copy of one z-slice, or None.

    Values of the type written are compared bit for bit: NaN payloads and the sign of
    zeros count.
    """
    native = source.dtype.newbyteorder("=")
    cast = source.astype(written.dtype.newbyteorder("="), copy=False)
    if not same_bits(written, cast):
        return "differs from the source"
    if native == cast.dtype:
        return None
    if native.kind in "fc":
        precision = np.finfo(written.dtype).eps
        if not np.isclose(written, source, rtol=precision, atol=0, equal_nan=True).all():
            return f"holds {native} values that {cast.dtype} cannot (overflow or underflow)"
    elif not np.array_equal(written, source):
        return f"holds {native} values that {cast.dtype} cannot"
    return None


def json_left_out(image: Image, compressed: bool, keep_json: bool, counts: bool = False) -> bool:
    """True if the output of ``image`` leaves out JSON meta its input has (plain MRC).

    A gain-separated input is written by :mod:`napari_mrcz.gain.separation`:
    as the original file again (nothing left out), or with ``counts`` as plain counts,
    which leave out its JSON meta, the gain's record included, unless ``keep_json``.
    """
    if image.layout is not None and image.layout.gain_separation is not None:
        return counts and not keep_json
    meta = {DM_TAGS_KEY: True} if image.dm_meta is not None else image.layout.json_meta
    return bool(meta) and meta_to_write(meta, compressed, keep_json) is None


def same_bits(first: np.ndarray, second: np.ndarray) -> bool:
    """True if two arrays of one shape and type hold the same values bit for bit."""
    native = first.dtype.newbyteorder("=")
    if first.shape != second.shape or native != second.dtype.newbyteorder("="):
        return False
    if native.kind not in "fc":
        return bool(np.array_equal(first, second))
    bits = np.dtype(f"u{native.itemsize // (2 if native.kind == 'c' else 1)}")
    return bool(
        np.array_equal(
            np.ascontiguousarray(first, dtype=native).view(bits),
            np.ascontiguousarray(second, dtype=native).view(bits),
        )
    )


def incomplete(image: Image, json_kept: bool = True) -> str | None:
    """What a verified output of ``image`` still lacks from its input, or None.

    MRC has no 64-bit floats: they are rounded to 32 bits ('float64 stored as
    float32'); every other cast the writers make keeps the values exactly. Bytes
    after the data, DM tag arrays too large for JSON meta and, unless ``json_kept``,
    the JSON meta left out of a plain output are not copied.
    """
    source = np.dtype(image.data.dtype)
    stored = storage_dtype(source)
    if source.kind in "fc" and stored.itemsize < source.itemsize:
        return f"{source} stored as {stored}"
    if not json_kept:
        return "its JSON meta is not in the plain MRC copy (--keep-json writes it)"
    if image.layout is not None and image.layout.damaged_meta is not None:
        return f"its damaged JSON meta is not in the copy ({image.layout.damaged_meta})"
    return image.left_out


#: Header fields a copy sets anew: the pixel type (its values are compared instead),
#: the statistics (measured), the extended header's size and type (JSON meta), and
#: MRC2014's formalities (MAP, the machine stamp, NVERSION) and python-mrcz's packed
#: size. The labels are compared as text, the codec's own label aside.
REWRITTEN_FIELDS = frozenset(
    {
        "mode",
        "dmin",
        "dmax",
        "dmean",
        "rms",
        "nsymbt",
        "exttyp",
        "map",
        "machst",
        "nversion",
        "packed_bytes",
    }
)


def plain_copy_loss(written: str) -> str | None:
    """Why no plain MRC file could hold the values of the MRCZ file ``written``, or None.

    MRCZ keeps 32-bit integers (mode 7, python-mrcz's); a plain copy
    (``mrcz decompress``) needs MRC2014's 16-bit integers or float32, exact below
    2**24. The values' range is the header's exact statistics.
    """
    layout = read_layout(written, quiet=True)
    dtype = layout.dtype.base
    if layout.compressor is None or dtype.kind not in "iu" or dtype.itemsize < 4:
        return None
    info = np.iinfo(dtype)
    low = max(info.min, int(np.floor(float(layout.header["dmin"]))))
    high = min(info.max, int(np.ceil(float(layout.header["dmax"]))))
    try:
        mrc_dtype(np.array([low, high], dtype=dtype), plain=True, warn=False)
    except ValueError as error:
        return f"no plain MRC file can hold its {dtype} values ({error}): only MRCZ keeps them"
    return None


def header_loss(image: Image, written: str) -> str | None:
    """What of ``image``'s header a plain copy of ``written`` would not give back, or None.

    Both files are taken as ``mrcz decompress`` would write them (an MRCZ file's
    grid record applied, see :mod:`napari_mrcz.mrc.grid`; M = 0 read as N), and
    every field of the 1024-byte header but :data:`REWRITTEN_FIELDS` is compared.
    """
    if image.layout is None:
        return None
    copy = read_layout(written, quiet=True)  # read and verified already
    before, after = _as_plain(image.layout), _as_plain(copy)
    if decode_labels(before) != decode_labels(after):
        return (
            f"its labels {decode_labels(before)} would come back as {decode_labels(after)} "
            "from the copy"
        )
    for name in before.dtype.names:
        if name in REWRITTEN_FIELDS or name in ("nlabl", "label"):
            continue
        if _same_value(before[name], after[name]):
            continue
        change = (
            f"{name.upper()} ({FIELD_MEANINGS.get(name, 'unused bytes')}) "
            f"{_shown(before[name])} would come back as {_shown(after[name])}"
        )
        if copy.compressor is not None and copy.nsymbt and copy.exttyp != "json":
            kind = copy.exttyp or "no type"
            return (
                f"its axis order and sampling cannot be recorded in an MRCZ copy beside "
                f"its {copy.nsymbt}-byte extended header ({kind}): {change}"
            )
        return f"its header's {change} from the copy"
    return None


def _as_plain(layout: MRCLayout) -> np.ndarray:
    """The header a plain MRC copy of the file of ``layout`` gets (see :func:`carried_header`)."""
    header, _ = carried_header(source_layout(layout), layout.mode, None, 1)
    return header


def _same_value(first: np.ndarray, second: np.ndarray) -> bool:
    """True if two header values are equal (NaN equal to NaN; raw bytes compared as such)."""
    if first.dtype.kind in "VS":
        return bytes(first.tobytes()) == bytes(second.tobytes())
    return bool(np.array_equal(first, second, equal_nan=first.dtype.kind == "f"))


def _shown(value: np.ndarray) -> str:
    """A header value for a message."""
    if value.dtype.kind in "VS":
        return repr(bytes(value.tobytes()))
    listed = value.tolist()
    return ", ".join(f"{item:g}" for item in listed) if isinstance(listed, list) else f"{listed:g}"
