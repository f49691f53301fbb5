"""Writing new MRC and MRCZ files: the header a file starts with, and the whole-file write.

A new file is written to a hidden temporary name beside the target (see
:mod:`napari_mrcz.mrc.atomic`) through the encode pipeline
(:mod:`napari_mrcz.mrc.pipeline`) and renamed over the target only once complete.
python-mrcz's ``writeMRC`` (:mod:`napari_mrcz.api`) is a thin face on
:func:`write_array`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from napari_mrcz.__about__ import __version__
from napari_mrcz.errors import MRCZWarning
from napari_mrcz.files import check_target, told_about
from napari_mrcz.mrc.append import write_at_index
from napari_mrcz.mrc.atomic import create_temporary, flush_to_disk
from napari_mrcz.mrc.codecs import (
    COMPRESSOR_ENUM,
    MODE_CODEC_FACTOR,
    REVERSE_COMPRESSOR_ENUM,
    check_codec,
    recorded_settings,
    settings_label,
)
from napari_mrcz.mrc.header import (
    HEADER_SIZE,
    ISPG_IMAGE_STACK,
    ISPG_VOLUME,
    N_LABELS,
    ROWS_TOP_DOWN_LABEL,
    new_header,
    set_labels,
)
from napari_mrcz.mrc.jsonmeta import (
    CHECKSUM_KEY,
    CHUNK_KEYS,
    CHUNK_SIZES_KEY,
    FRAMES_KEY,
    decode_meta,
    encode_meta,
    hex_placeholder,
    hex_text,
)
from napari_mrcz.mrc.modes import (
    MODE_DTYPES,
    PYTHON_MRCZ_READABLE_MODES,
    UINT4_MODE,
    mode_for_dtype,
    storage_dtype,
)
from napari_mrcz.mrc.pipeline import (
    Encoding,
    Frames,
    describe_input,
    set_header_stats,
    write_fully,
    write_slices,
)
from napari_mrcz.threads import default_threads
from napari_mrcz.units import units_per_angstrom

#: Label 0 of every file we write. It starts like python-mrcz's ``MRCZ<version>``
#: with a format version python-mrcz accepts, and says who wrote the file.
WRITER_LABEL = f"MRCZ0.6.0 napari-mrcz {__version__}"


#: z pixel size python-mrcz writes when given a (y, x) pixel size, in Angstrom.
DEFAULT_Z_SPACING = 10.0


def pixelsize_angstrom(pixelsize: Any, pixelunits: str) -> np.ndarray:
    """python-mrcz's ``pixelsize`` in Angstrom, as (z, y, x).

    One value is cubic; (y, x) gets python-mrcz's z spacing of 10 Angstrom.
    """
    values = np.atleast_1d(np.asarray(pixelsize, dtype=np.float64)).ravel()
    values = values / units_per_angstrom(pixelunits)
    if values.size == 1:
        return np.repeat(values, 3)
    if values.size == 2:
        return np.array([DEFAULT_Z_SPACING, values[0], values[1]])
    if values.size == 3:
        return values
    raise ValueError(f"pixelsize must have 1, 2 or 3 elements, got {values.size}")


def _resolve_dtype(frames: Frames, dtype: Any, path: str) -> tuple[np.dtype, bool]:
    """Return (the dtype stored per pixel, whether it is packed 4-bit)."""
    if dtype is not None and str(dtype).lstrip("<>|=") == "uint4":
        return np.dtype(np.uint8), True
    wanted = frames.dtype if dtype is None else np.dtype(dtype)
    stored = storage_dtype(wanted)
    if stored != wanted.newbyteorder("="):
        warnings.warn(
            f"{path}: MRC has no {wanted.name} pixels: stored as {stored.name}",
            MRCZWarning,
            stacklevel=4,
        )
    return stored, False


def make_header(
    byteorder: str,
    shape: tuple[int, int, int],
    mode: int,
    codec_id: int,
    pixelsize_zyx: np.ndarray,
    mz: int,
    slices: int,
    voltage: float,
    cs: float,
    gain: float,
    python_mrcz_signature: bool = False,
) -> np.ndarray:
    """Build the header of a new file (statistics and extended header are set later).

    MX, MY = NX, NY, or 0 with ``python_mrcz_signature`` (python-mrcz's own header,
    whose MZ counts slices per frame). CELLA is the pixel size times N: MZ is N, 0 or
    the slices per frame (see :func:`~napari_mrcz.mrc.layout.sampling_divisors`).
    """
    nz, ny, nx = shape
    header = new_header(byteorder)
    header["nx"], header["ny"], header["nz"] = nx, ny, nz
    header["mode"] = mode + MODE_CODEC_FACTOR * codec_id
    sampled = 0 if python_mrcz_signature else 1
    header["mx"], header["my"], header["mz"] = nx * sampled, ny * sampled, mz
    header["cella"] = pixelsize_zyx[::-1] * np.array([nx, ny, nz])
    header["ispg"] = ISPG_VOLUME if nz > 1 and not slices else ISPG_IMAGE_STACK
    header["voltage"] = voltage or 0.0
    header["cs"] = cs or 0.0
    header["gain"] = gain or 1.0
    set_labels(header, [WRITER_LABEL])
    return header


def set_origin(header: np.ndarray, origin: Any) -> None:
    """Set ORIGIN from an origin in Angstrom, (z, y, x) or its last axes ((y, x): z is 0)."""
    origin_zyx = np.atleast_1d(np.asarray(origin, dtype=np.float64))[-3:]
    origin_zyx = np.concatenate([np.zeros(3 - origin_zyx.size), origin_zyx])
    header["origin"] = origin_zyx[::-1]


def new_file_header(
    shape: Sequence[int],
    dtype: Any,
    pixelsize_zyx: Sequence[float],
    compressor: str | None = None,
    byteorder: str = "<",
    origin_zyx: Sequence[float] | None = None,
) -> np.ndarray:
    """The header :func:`write_array` would start a file with (statistics still unknown).

    Parameters
    ----------
    shape : sequence of int
        (ny, nx) or (nz, ny, nx).
    dtype : numpy dtype
        The data's dtype (cast as :func:`write_array` would cast it).
    pixelsize_zyx : sequence of float
        Pixel size in Angstrom, (z, y, x).
    compressor : str, optional
        MRCZ codec, or None for plain MRC.
    byteorder : {'<', '>'}
        Byte order of the file.
    origin_zyx : sequence of float, optional
        Origin in Angstrom, (z, y, x), as :func:`write_array` takes it.
    """
    nz, ny, nx = (1, *shape) if len(shape) == 2 else tuple(shape)
    mode = mode_for_dtype(storage_dtype(dtype))
    codec = None if compressor is None else check_codec(compressor)
    header = make_header(
        byteorder,
        (nz, ny, nx),
        mode,
        REVERSE_COMPRESSOR_ENUM[codec],
        np.asarray(pixelsize_zyx, dtype=np.float64),
        0 if codec is not None else nz,
        0,
        0.0,
        0.0,
        1.0,
    )
    if origin_zyx is not None:
        set_origin(header, origin_zyx)
    return header


def _write_new_file(
    path: str,
    frames: Frames,
    header: np.ndarray,
    extended_header: bytes | None,
    encoding: Encoding,
    progress: Callable[[int], None] | None,
    shown: str,
    fixity: bool = True,
) -> None:
    """Write a whole file to a temporary name, flush it to disk and rename it over ``path``.

    MRCZ files get the CRC32 of every chunk in their JSON meta (see
    :mod:`napari_mrcz.mrc.checksums`) unless their extended header is of another type;
    without ``fixity``, only a file that has a JSON meta anyway gets them.
    The data and the folder entry are flushed (fsync) before this returns, so a
    crash right after a save loses nothing. Errors and warnings name ``shown`` (the
    file as the user gave it), never the temporary name.
    """
    warn_if_python_mrcz_cannot_read(header, shown)
    checksum_meta = None
    if encoding.compressor is not None:
        extended_header, checksum_meta = _room_for_checksums(
            path, header, extended_header or b"", frames.count, fixity
        )
    try:
        descriptor, temporary = create_temporary(path)
    except OSError as error:
        raise told_about(error, shown) from None
    try:
        with os.fdopen(descriptor, "wb", buffering=0) as handle:
            write_fully(handle, bytes(HEADER_SIZE))
            if extended_header:
                write_fully(handle, extended_header)
            written = write_slices(handle, frames, encoding, progress=progress)
            if checksum_meta is not None:
                checksum_meta[CHECKSUM_KEY] = hex_text(written.checksums)
                checksum_meta[CHUNK_SIZES_KEY] = hex_text(written.chunk_sizes)
                filled = encode_meta(checksum_meta)
                if len(filled) != len(extended_header):  # pragma: no cover - fixed widths
                    raise AssertionError("the checksums changed the JSON meta's length")
                handle.seek(HEADER_SIZE)
                write_fully(handle, filled)
            set_header_stats(header, written.stats)
            header["packed_bytes"] = written.packed_bytes
            handle.seek(0)
            write_fully(handle, header.tobytes())
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise told_about(error, shown) from error
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    flush_to_disk(os.path.dirname(path) or ".")


def _room_for_checksums(
    path: str, header: np.ndarray, extended_header: bytes, count: int, fixity: bool
) -> tuple[bytes, dict | None]:
    """A new MRCZ file's extended header with a placeholder for ``count`` chunk checksums.

    Returns the extended header to write first and the JSON meta to fill in once the
    chunks are written; without a JSON extended header to hold them (another type, or
    none and no ``fixity``), the extended header as it is and None. ``header``'s
    NSYMBT and EXTTYP follow.
    """
    exttyp = bytes(header["exttyp"])
    if extended_header and exttyp != b"json":
        return extended_header, None  # FEI, CCP4, ...: no room for JSON
    if not extended_header and not fixity:
        return extended_header, None
    meta = decode_meta(path, extended_header) if extended_header else {}
    for key in CHUNK_KEYS:
        meta[key] = hex_placeholder(count)
    encoded = encode_meta(meta)
    header["nsymbt"] = len(encoded)
    header["exttyp"] = b"json"
    return encoded, meta


def python_mrcz_problem(header: np.ndarray) -> str | None:
    """Why python-mrcz 0.6.0 cannot open an MRCZ file with ``header``, or None if it can.

    Found by writing every mode, codec and byte order and reading it back with
    python-mrcz 0.6.0: it has no float16 (mode 12), and misreads MODE in big-endian
    files packed with any codec but zstd.
    """
    codec_id, mode = divmod(int(header["mode"]), MODE_CODEC_FACTOR)
    codec = COMPRESSOR_ENUM[codec_id]
    if codec is None:
        return None
    if mode not in PYTHON_MRCZ_READABLE_MODES:
        pixels = f"{np.dtype(MODE_DTYPES[mode]).name} " if mode in MODE_DTYPES else ""
        return f"its {pixels}pixels (MRC mode {mode})"
    if header.dtype["nx"].str[0] == ">" and codec != "zstd":
        return f"big-endian data packed with {codec}"
    return None


def warn_if_python_mrcz_cannot_read(header: np.ndarray, shown: str) -> None:
    """Warn (MRCZWarning) when the MRCZ file about to be written will not open in python-mrcz."""
    problem = python_mrcz_problem(header)
    if problem is not None:
        warnings.warn(
            f"{shown}: python-mrcz 0.6.0, and programs that read MRCZ through it "
            f"(RosettaSciIO, HyperSpy), cannot open this file because of {problem}; "
            "write float32 pixels, little-endian or zstd for them, or plain MRC",
            MRCZWarning,
            stacklevel=5,
        )


def write_with_header(
    path: str | os.PathLike,
    data: Any,
    header: np.ndarray,
    extended_header: bytes = b"",
    compressor: str | None = None,
    clevel: int = 1,
    n_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    name: str | os.PathLike | None = None,
) -> None:
    """Write ``data`` under a header the caller made, as the converters need.

    Unlike :func:`write_array`, nothing about the header is decided here but what the
    data determine: the statistics and the packed size. The pixels are stored as
    ``data.dtype`` in the header's byte order, so MODE must already name that type.
    The file is replaced only once complete, as by :func:`write_array`.

    Parameters
    ----------
    path : str or os.PathLike
        Target file.
    data : array-like
        (nz, ny, nx), indexable slice by slice (numpy, memmap, lazy arrays).
    header : numpy.ndarray
        The 0-d structured header (see :mod:`napari_mrcz.mrc.header`); its NSYMBT must
        equal ``len(extended_header)``.
    extended_header : bytes
        Written verbatim between the header and the data.
    compressor : str, optional
        The codec MODE names (None for plain MRC).
    clevel : int
        Compression level.
    n_threads : int, optional
        Slices encoded in parallel; all cores by default.
    progress : callable, optional
        Called as ``progress(written, total)`` after each run of z-slices (see
        :func:`write_array`).
    name : str or os.PathLike, optional
        The file as the user knows it, named in errors and warnings (``path`` by
        default; the command line writes to a temporary name it publishes later).
    extended_header : tuple of (str, bytes), optional
        An extended header of another type to carry (EXTTYP such as ``"FEI2"``, and
        its bytes), as a file saved from a layer keeps its source's; there is then no
        room for ``meta``. A new file only.
    labels : sequence of str
        Text labels to keep (a source's); the writer's own follow where there is room.

    Raises
    ------
    ValueError
        If both ``meta`` and ``extended_header`` are given.
    """
    shown = os.fspath(path if name is None else name)
    path = os.path.realpath(os.fspath(path))
    check_target(path, shown)
    frames = describe_input(data)
    if int(header["nsymbt"]) != len(extended_header):
        raise ValueError(
            f"NSYMBT is {int(header['nsymbt'])} but the extended header has "
            f"{len(extended_header)} bytes"
        )
    byteorder = header.dtype["nx"].str[0]  # '<' or '>', also on a big-endian machine
    report = None if progress is None else partial(_report, progress, frames.count)
    threads = default_threads() if n_threads is None else int(n_threads)
    header = header.copy()
    if compressor is None:
        extended_header = _without_checksums(path, header, extended_header)
    _write_new_file(
        path,
        frames,
        header,
        extended_header,
        Encoding(
            frames.dtype.newbyteorder(byteorder),
            None if compressor is None else check_codec(compressor),
            clevel,
            n_threads=threads,
        ),
        report,
        shown,
    )


def _without_checksums(path: str, header: np.ndarray, extended_header: bytes) -> bytes:
    """A plain file's extended header without the chunk checksums of the MRCZ it came from.

    A JSON meta that held nothing else goes altogether (NSYMBT 0, EXTTYP cleared),
    so that compressing a plain file and decompressing it gives its header back.
    """
    if bytes(header["exttyp"]) != b"json" or not extended_header:
        return extended_header
    meta = decode_meta(path, extended_header)
    if not any(key in meta for key in CHUNK_KEYS):
        return extended_header
    for key in CHUNK_KEYS:
        meta.pop(key, None)
    encoded = encode_meta(meta) if meta else b""
    header["nsymbt"] = len(encoded)
    if not encoded:
        header["exttyp"] = bytes(4)
    return encoded


def write_array(
    data: Any,
    path: str | os.PathLike,
    *,
    meta: dict | None = None,
    endian: str = "le",
    dtype: Any = None,
    pixelsize: Sequence[float] | float = (0.1, 0.1, 0.1),
    pixelunits: str = "\\AA",
    voltage: float = 0.0,
    cs: float = 0.0,
    gain: float = 1.0,
    compressor: str | None = None,
    clevel: int = 1,
    n_threads: int | None = None,
    idx: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    origin: Sequence[float] | None = None,
    fixity: bool = True,
    name: str | os.PathLike | None = None,
    extended_header: tuple[str, bytes] | None = None,
    labels: Sequence[str] = (),
    rows_top_down: bool = False,
) -> None:
    """Write an array (or a list of frames) as a new plain MRC or MRCZ file, or into one.

    The engine's form of python-mrcz's ``writeMRC`` (:func:`napari_mrcz.writeMRC`
    documents every parameter): the same behaviour, with snake_case keywords (``cs``
    for ``C3``) and without the ones python-mrcz accepts and ignores.

    Parameters
    ----------
    data : array-like or list of numpy.ndarray
        1 to 3 dimensions (z, y, x), indexable slice by slice; or a list of equally
        shaped 2D or 3D frames.
    path : str or os.PathLike
        Target file, replaced only once the new file is complete.
    meta, endian, dtype, pixelsize, pixelunits, voltage, cs, gain
        As for :func:`napari_mrcz.writeMRC` (``cs`` is its ``C3``).
    compressor, clevel, n_threads, idx, progress, origin
        As for :func:`napari_mrcz.writeMRC`.
    fixity : bool
        Record the CRC32 of every chunk of a new MRCZ file in its JSON meta, adding a
        JSON extended header if there is no meta (see :mod:`napari_mrcz.mrc.checksums`).
        When False, as python-mrcz writes, only a JSON meta given anyway holds them.
    name : str or os.PathLike, optional
        The file as the user knows it, named in errors and warnings (``path`` by
        default; the command line writes to a temporary name it publishes later).
    extended_header : tuple of (str, bytes), optional
        An extended header of another type to carry (EXTTYP such as ``"FEI2"``, and
        its bytes), as a file saved from a layer keeps its source's; there is then no
        room for ``meta``. A new file only.
    labels : sequence of str
        Text labels to keep (a source's); the writer's own follow where there is room.
    rows_top_down : bool
        The data was shown with its rows top-down (y pointing down, as in
        DigitalMicrograph and a napari layer without the y-up mirror): recorded as
        :data:`~napari_mrcz.mrc.header.ROWS_TOP_DOWN_LABEL`, so that napari-mrcz shows
        the file so again. A source's copy of that label is dropped otherwise.

    Raises
    ------
    ValueError
        If both ``meta`` and ``extended_header`` are given.
    """
    shown = os.fspath(path if name is None else name)
    path = os.path.realpath(os.fspath(path))  # through symlinks, to their target
    frames = describe_input(data)
    report = None if progress is None else partial(_report, progress, frames.count)
    threads = default_threads() if n_threads is None else int(n_threads)
    check_target(path, shown)
    if idx is not None and os.path.isfile(path):
        write_at_index(path, frames, int(idx), clevel, threads, report, shown=shown)
        return
    if idx is not None and int(idx) != 0:
        raise ValueError(f"{shown} does not exist yet: only idx=0 can start it")

    stored, uint4 = _resolve_dtype(frames, dtype, shown)
    codec = None if compressor is None else check_codec(compressor)
    if uint4 and codec is not None:
        raise TypeError("uint4 packing is not compatible with compression, use int8 datatype.")
    if uint4 and frames.shape[1] % 2:
        raise ValueError("uint4 (mode 101) needs an even number of columns")
    byteorder = ">" if endian == "be" else "<"
    mode = UINT4_MODE if uint4 else mode_for_dtype(stored)

    json_meta = dict(meta) if isinstance(meta, dict) else None
    if frames.slices:
        json_meta = {**(json_meta or {}), FRAMES_KEY: frames.slices}
    elif json_meta is not None:
        # The writer owns this key: in a single array it would turn it into a list.
        json_meta.pop(FRAMES_KEY, None)
    if json_meta is not None:
        for key in CHUNK_KEYS:
            json_meta.pop(key, None)  # the records of another file's chunks
    encoded_meta = encode_meta(json_meta) if json_meta is not None else None

    nz = frames.count
    if frames.slices:
        mz = frames.slices
    elif codec is not None or uint4:
        # python-mrcz reads MZ as slices per frame (0 is one array), and it is the
        # only reader of MRCZ and of the 4-bit mode besides us.
        mz = 0
    else:
        mz = nz
    header = make_header(
        byteorder,
        (nz, *frames.shape),
        mode,
        REVERSE_COMPRESSOR_ENUM[codec],
        pixelsize_angstrom(pixelsize, pixelunits),
        mz,
        frames.slices,
        voltage,
        cs,
        gain,
    )
    # a source's labels, without the writer's, codec and orientation labels of a save
    kept = [
        label
        for label in labels
        if label not in (WRITER_LABEL, ROWS_TOP_DOWN_LABEL) and recorded_settings([label]) is None
    ]
    if codec is not None:
        own_labels = [WRITER_LABEL, settings_label(codec, clevel)]
    else:  # a plain copy of a source has the source's labels alone
        own_labels = [] if kept else [WRITER_LABEL]
    if rows_top_down:
        own_labels.append(ROWS_TOP_DOWN_LABEL)
    if kept or own_labels:
        set_labels(header, [*kept, *own_labels[: max(0, N_LABELS - len(kept))]])
    if extended_header is not None:
        if encoded_meta is not None:
            raise ValueError("a JSON meta and another extended header cannot both be written")
        exttyp, encoded_meta = extended_header[0], bytes(extended_header[1])
        header["exttyp"] = exttyp.encode("latin-1")[:4].ljust(4, b"\0")
        header["nsymbt"] = len(encoded_meta)
    elif encoded_meta is not None:
        header["nsymbt"] = len(encoded_meta)
        header["exttyp"] = b"json"
    if origin is not None:
        set_origin(header, np.asarray(origin, dtype=np.float64) / units_per_angstrom(pixelunits))
    encoding = Encoding(stored.newbyteorder(byteorder), codec, clevel, uint4, threads)
    _write_new_file(path, frames, header, encoded_meta, encoding, report, shown, fixity)


def _report(progress: Callable[[int, int], None], total: int, written: int) -> None:
    progress(written, total)
