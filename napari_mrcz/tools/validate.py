"""Check one MRC, MRCZ or DM file and say what is wrong with it (``mrcz validate``).

:func:`validate_file` returns a list of :class:`Finding`; an empty list means the file
is valid. Plain MRC files get mrcfile 1.5's ``validate`` checks (MRC2014 conformance),
each failure a ``"problem"``: map ID, machine stamp, mode, negative fields and cell,
axis order, volume-stack NZ/MZ, labels, NVERSION, EXTTYP, file size and the header
statistics with mrcfile's rules (RMS within 1 % when RMS >= 0; DMIN and DMAX exactly
when DMIN < DMAX; DMEAN within 1 % when DMEAN > min(DMIN, DMAX); data that cannot be
read counts as 0). The statistics are gathered exactly, slice by slice
(:class:`~napari_mrcz.mrc.stats.SliceStats`), never with the whole file in memory.

Differences from mrcfile, on purpose:

* EXTTYP ``json`` (MRCZ's JSON metadata) is a warning in a plain file and normal in
  MRCZ; its JSON must parse (``"json"``). A file with broken JSON is not read further.
* Modes 16 (RGB) and 101 (4-bit), which MRC2014 defines, are valid and read; MRC2014's
  mode 3 passes the mode check but is ``"unreadable"``; python-mrcz's modes 7 and 8
  are a warning in a plain file and normal in MRCZ.
* Mode 0 with IMOD's "unsigned bytes" flag is read as uint8 (mrcfile reads int8).
* A volume stack (ISPG 401-630) with MZ = 0 is a ``"volume-stack"`` problem (mrcfile
  cannot open such a file: ZeroDivisionError).
* A machine stamp declaring the other byte order than the one the header makes sense
  in is a problem; a file shorter than its header declares is a ``"file-size"``
  problem (mrcfile: "data block could not be read").
* A header that makes no sense in either byte order (too short, dimensions not
  positive, unknown mode or compressor, NSYMBT past the end) gives one
  ``"unreadable"`` problem and nothing else.
* MRCZ (MODE = codec x 1000 + mode): MX = MY = MZ = 0 are normal; the size is checked
  through the blosc chunks (``"chunk"``, ``"file-size"`` for bytes after the last
  chunk, ``"packed-bytes"``) and every chunk is decompressed for the statistics.
* MRCZ files we wrote record a CRC32 of every chunk (:mod:`napari_mrcz.mrc.checksums`):
  with the data checks, each chunk whose bytes differ is a ``"checksum"`` problem
  naming its z-slice (blosc 1 chunks carry no checksum of their own: a damaged chunk
  may still decompress, to other data).
* A gain-separated MRCZ (``mrcz compress --ungain``) needs its gain reference beside
  it, the one it was made with: a ``"gain"`` problem otherwise (its counts are still
  checked).
* ``.gz``/``.bz2`` files are checked once decompressed (into a temporary copy).
* DM3/DM4 files are parsed and, with ``check_stats``, every image read (``"dm"``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass

import numpy as np

from napari_mrcz.dm.images import read_dm
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.files import open_regular
from napari_mrcz.formats import Format, identify
from napari_mrcz.mrc.codecs import COMPRESSOR_ENUM, MODE_CODEC_FACTOR
from napari_mrcz.mrc.gain import load_gain
from napari_mrcz.mrc.gzipped import DecompressedFile
from napari_mrcz.mrc.header import (
    HEADER_SIZE,
    MACHST_BIG,
    MACHST_LITTLE,
    MAP_ID,
    MRC2014_VERSION,
    stamp_byteorder,
)
from napari_mrcz.mrc.jsonmeta import decode_meta
from napari_mrcz.mrc.layout import MRCLayout, parse_header, read_layout, short_header_problem
from napari_mrcz.mrc.modes import (
    MODE_DTYPES,
    PYTHON_MRCZ_MODES,
    READABLE_MODES,
    UINT4_MODE,
    dtype_for_mode,
    uint4_row_bytes,
)
from napari_mrcz.mrc.slices import STREAM_BLOCK_BYTES, SliceReader
from napari_mrcz.mrc.stats import SliceStats, shift_for
from napari_mrcz.remote import RemoteFile, is_url
from napari_mrcz.threads import default_threads

logger = logging.getLogger(__name__)

PROBLEM, WARNING = "problem", "warning"
#: Machine stamps MRC2014 allows (first two bytes): 44 44 or 44 41 little, 11 11 big endian.
STAMPS = (MACHST_LITTLE[:2], b"\x44\x44", MACHST_BIG[:2])
#: EXTTYP values mrcfile accepts when NSYMBT > 0.
EXTTYPES = (b"CCP4", b"MRCO", b"SERI", b"AGAR", b"FEI1", b"FEI2", b"HDF5")
#: What :func:`_data_stats` returns when the installed blosc cannot decode the data.
CANNOT_DECODE: tuple = ("not decoded",)


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a file.

    Attributes
    ----------
    severity : str
        ``"problem"`` (the file breaks MRC2014 or is damaged) or ``"warning"``.
    check : str
        Short stable id of the check, e.g. ``"map-id"``, ``"stats-rms"``, ``"chunk"``.
    message : str
        One sentence saying the value found and the value expected.
    """

    severity: str
    check: str
    message: str


def _problem(check: str, message: str) -> Finding:
    return Finding(PROBLEM, check, message)


def validate_file(
    path: str | os.PathLike, check_stats: bool = True, n_threads: int | None = None
) -> list[Finding]:
    """Check one MRC, MRCZ, ``.gz``/``.bz2`` MRC or DM3/DM4 file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    check_stats : bool
        Read all the data: compare the header statistics with it (MRC, MRCZ; every
        blosc chunk is decompressed) or check that every image reads (DM). False
        checks only the header and the file's size.
    n_threads : int, optional
        Slices decompressed at once; all cores by default.

    Returns
    -------
    list of Finding
        In the order checked; an empty list means the file is valid.

    Raises
    ------
    OSError
        If the file cannot be opened. A damaged file, or one that is no regular file
        (a folder, FIFO or device), gives findings, not exceptions.
    """
    path = os.fspath(path)
    try:
        kind = identify(path)
    except MRCZFormatError as error:
        return [_problem("unreadable", error.problem)]
    threads = default_threads() if n_threads is None else max(1, int(n_threads))
    with warnings.catch_warnings(record=True):
        # read_layout warns about what the checks below report anyway.
        warnings.simplefilter("always")
        if kind.format is Format.DM:
            return _validate_dm(path, check_stats)
        if is_url(path):
            return _validate_mrc(path, check_stats, threads, path, RemoteFile(path))
        try:
            source = DecompressedFile(path)
        except MRCZFormatError as error:
            return [_problem("unreadable", error.problem)]
        with source, source.original_in_errors():
            return _validate_mrc(source.path, check_stats, threads, source.original)


def _validate_dm(path: str, check_stats: bool) -> list[Finding]:
    """Parse a DM file and, with ``check_stats``, read every image (not the thumbnail)."""
    try:
        images = read_dm(path, lazy=True)
    except MRCZFormatError as error:
        return [_problem("dm", error.problem)]
    findings = []
    for image, _meta in images if check_stats else ():
        layout = image.layout
        try:
            if layout.frames_are_independent():
                step = max(1, STREAM_BLOCK_BYTES // max(1, layout.frame_bytes()))
                for start in range(0, layout.stored_shape[0], step):
                    layout.read(start, min(start + step, layout.stored_shape[0]))
            else:
                layout.read()
        except MRCZFormatError as error:
            findings.append(_problem("dm", error.problem))
    return findings


def _validate_mrc(
    path: str,
    check_stats: bool,
    n_threads: int,
    movie_path: str,
    remote: RemoteFile | None = None,
) -> list[Finding]:
    """Check an (uncompressed-on-disk) MRC or MRCZ file; ``movie_path`` is as the user named it.

    A file on a server (``remote``) is read in ranged requests: its data twice with
    the statistics (once for the chunk checksums, once decompressed).
    """
    if remote is not None:
        path = remote.name
    logger.debug("validating %s", path)
    with open_regular(path) if remote is None else contextlib.nullcontext(remote) as handle:
        file_size = os.fstat(handle.fileno()).st_size if remote is None else remote.size
        raw = handle.read(HEADER_SIZE)
        if len(raw) < HEADER_SIZE:
            return [_problem("unreadable", short_header_problem(raw))]
        header, byteorder, problem = parse_header(raw, file_size)
        if problem is not None:
            return [_problem("unreadable", problem)]
        compressed = COMPRESSOR_ENUM[int(header["mode"]) // MODE_CODEC_FACTOR] is not None
        findings = _header_findings(header, byteorder, compressed)
        nsymbt = int(header["nsymbt"])
        if bytes(header["exttyp"]) == b"json" and nsymbt > 0:
            try:
                decode_meta(path, handle.read(nsymbt))
            except MRCZFormatError as error:
                # read_layout refuses such a file: its data is not checked.
                return [*findings, _problem("json", error.problem)]

    readable = _plain_size(header, file_size, findings) if not compressed else True
    if readable:
        try:
            layout = read_layout(path, source=remote)
        except MRCZFormatError as error:
            findings.append(_problem("unreadable", error.problem))
            readable = False
        else:
            findings.extend(_gain_findings(layout, movie_path, remote is not None))
    real: tuple | None = None
    if readable:
        try:
            reader = SliceReader(layout, n_threads, check_all_headers=True, remote=remote)
        except MRCZFormatError as error:
            findings.append(_problem("chunk", error.problem))
        else:
            with reader:
                if compressed:
                    findings.extend(_chunk_findings(reader, header, file_size))
                if not check_stats:
                    return findings
                findings.extend(_checksum_findings(reader))
                real = _data_stats(reader, findings)
                if real is CANNOT_DECODE:
                    return findings
    if check_stats:
        note = "" if real is not None else " (data that cannot be read counts as 0, as in mrcfile)"
        findings.extend(_stats_findings(header, real or (0, 0, 0, 0), note))
    return findings


def _gain_findings(layout: MRCLayout, movie_path: str, on_server: bool) -> list[Finding]:
    """A gain-separated file needs its gain reference beside it, the one it was made with."""
    separation = layout.gain_separation
    if separation is None:
        return []
    if on_server:
        return [
            Finding(
                WARNING,
                "gain",
                "a gain-separated file on a server: its gain reference is not checked",
            )
        ]
    try:
        load_gain(movie_path, separation, layout.shape[1:])
    except MRCZFormatError as error:
        return [_problem("gain", error.problem)]
    return []


def _header_findings(header: np.ndarray, byteorder: str, compressed: bool) -> list[Finding]:
    """mrcfile's header checks, with MRCZ's exceptions."""
    found = []
    if header["map"].item() != MAP_ID:
        found.append(
            _problem("map-id", f"map ID is {header['map'].item()!r}, should be {MAP_ID!r}")
        )
    stamp = bytes(header["machst"])
    if stamp[:2] not in STAMPS:
        found.append(
            _problem(
                "machine-stamp",
                f"machine stamp is {stamp.hex(' ')}, should "
                "begin 44 44 or 44 41 (little endian) or 11 11 (big endian)",
            )
        )
    elif stamp_byteorder(stamp) != byteorder:
        names = {"<": "little", ">": "big"}
        found.append(
            _problem(
                "machine-stamp",
                f"machine stamp {stamp.hex(' ')} declares "
                f"{names[stamp_byteorder(stamp)]} endian but the header only "
                f"makes sense read {names[byteorder]} endian",
            )
        )
    mode = int(header["mode"]) % MODE_CODEC_FACTOR
    if mode in PYTHON_MRCZ_MODES and not compressed:
        found.append(
            Finding(
                WARNING,
                "mode",
                f"mode {mode} ({np.dtype(MODE_DTYPES[mode])}) "
                "is python-mrcz's, not one of MRC2014's 0-4, 6, 12, 16, 101",
            )
        )
    for name in ("nx", "ny", "nz", "mx", "my", "mz", "ispg", "nlabl"):
        if int(header[name]) < 0:
            found.append(
                _problem(
                    "negative-field",
                    f"{name.upper()} is {int(header[name])}, should not be negative",
                )
            )
    for axis, size in zip("xyz", header["cella"].tolist(), strict=True):
        if size < 0:
            found.append(_problem("cell", f"CELLA.{axis} is {size:.9g}, should not be negative"))
    mapcrs = [int(header[name]) for name in ("mapc", "mapr", "maps")]
    if set(mapcrs) != {1, 2, 3}:
        found.append(
            _problem("axes", f"MAPC, MAPR, MAPS are {mapcrs}, should be 1, 2 and 3 in some order")
        )
    ispg, nz, mz = int(header["ispg"]), int(header["nz"]), int(header["mz"])
    if 401 <= ispg <= 630 and not (compressed and mz == 0) and (mz == 0 or nz % mz):
        found.append(
            _problem(
                "volume-stack",
                f"volume stack (ISPG {ispg}): NZ = {nz} should be a multiple of MZ = {mz}",
            )
        )
    texts = [bool(bytes(label).strip()) for label in header["label"]]
    if any(texts[index] and not all(texts[:index]) for index in range(len(texts))):
        found.append(
            _problem(
                "labels",
                "an empty label comes before a label with text; labels in use should come first",
            )
        )
    if sum(texts) != int(header["nlabl"]):
        found.append(
            _problem(
                "labels", f"NLABL is {int(header['nlabl'])} but {sum(texts)} labels contain text"
            )
        )
    if int(header["nversion"]) not in (20140, MRC2014_VERSION):
        found.append(
            _problem(
                "nversion", f"NVERSION is {int(header['nversion'])}, should be 20140 or 20141"
            )
        )
    exttyp = header["exttyp"].item()
    if int(header["nsymbt"]) > 0 and exttyp not in EXTTYPES:
        expected = "should be one of " + ", ".join(name.decode() for name in EXTTYPES)
        if exttyp != b"json":
            found.append(
                _problem(
                    "exttyp",
                    f"EXTTYP is {exttyp.decode('latin-1')!r} with a "
                    f"{int(header['nsymbt'])}-byte extended header, "
                    f"{expected}",
                )
            )
        elif not compressed:
            found.append(
                Finding(
                    WARNING,
                    "exttyp",
                    f"EXTTYP is 'json' (MRCZ's JSON metadata) in a plain MRC file, {expected}",
                )
            )
    return found


def _plain_size(header: np.ndarray, file_size: int, findings: list[Finding]) -> bool:
    """Check a plain file's size; return False if it is too short to hold its data."""
    mode = int(header["mode"])
    nx, ny, nz = (int(header[name]) for name in ("nx", "ny", "nz"))
    if mode == UINT4_MODE:
        data = nz * ny * uint4_row_bytes(nx)
    elif mode in READABLE_MODES:
        data = nz * ny * nx * dtype_for_mode(mode, "<").itemsize
    else:
        return True  # read_layout says why it cannot read it
    expected = HEADER_SIZE + int(header["nsymbt"]) + data
    if file_size > expected:
        findings.append(
            _problem(
                "file-size",
                f"the file is {file_size} bytes, "
                f"{file_size - expected} more than the {expected} of its "
                "header, extended header and data",
            )
        )
    elif file_size < expected:
        findings.append(
            _problem(
                "file-size",
                f"the file is {file_size} bytes, but its header, "
                f"extended header and data need {expected} (truncated)",
            )
        )
        return False
    return True


def _chunk_findings(reader: SliceReader, header: np.ndarray, file_size: int) -> list[Finding]:
    """Size checks of an MRCZ file whose chunk headers are all consistent."""
    found = []
    end = int(reader.chunk_offsets[-1])
    if end != file_size:
        found.append(
            _problem(
                "file-size",
                f"{file_size - end} bytes follow the last blosc "
                f"chunk, which ends at byte {end} of the {file_size}",
            )
        )
    packed = int(header["packed_bytes"])
    if packed and packed != reader.packed_bytes:
        found.append(
            _problem(
                "packed-bytes",
                f"the header's packed_bytes is {packed}, but "
                f"the blosc chunks hold {reader.packed_bytes} bytes",
            )
        )
    return found


def _checksum_findings(reader: SliceReader) -> list[Finding]:
    """One problem per z-slice whose compressed bytes no longer match their CRC32."""
    return [
        _problem(
            "checksum",
            f"z-slice {index}: its compressed bytes differ from the CRC32 recorded when "
            "the file was written: damaged since",
        )
        for index in reader.damaged_chunks() or []
    ]


def _data_stats(reader: SliceReader, findings: list[Finding]) -> tuple | None:
    """(min, max, mean, RMS) of all the data as mrcfile computes them, a block at a time.

    Each damaged chunk is added to ``findings`` (one per slice) and the result is
    None: the data cannot be read. :data:`CANNOT_DECODE` if it cannot be decoded here.
    """
    layout = reader.layout
    block = max(1, STREAM_BLOCK_BYTES // max(1, layout.slice_nbytes))
    stats: SliceStats | None = None
    extremes = []  # complex data: numpy's (lexicographic) min and max, as mrcfile takes
    damaged = False
    for first in range(0, layout.nz, block):
        stop = min(first + block, layout.nz)
        try:
            data = reader.read_into(first, stop, reader.new_array(stop - first), sequential=True)
        except ImportError as error:  # c-blosc2 chunks without the blosc2 package
            findings.append(Finding(WARNING, "chunk", f"the data cannot be checked: {error}"))
            return CANNOT_DECODE
        except MRCZFormatError:
            damaged = True
            for index in range(first, stop):
                try:
                    reader.read_into(index, index + 1, reader.new_array(1))
                except MRCZFormatError as error:
                    findings.append(_problem("chunk", f"slice {index}: {error.problem}"))
            continue
        data = data.astype(data.dtype.newbyteorder("="), copy=False)
        if stats is None:
            stats = SliceStats(shift_for(data, data.dtype))
        stats.add(data)
        if data.dtype.kind == "c":
            extremes.extend((data.min(), data.max()))
    if damaged or stats is None:
        return None
    dmin, dmax, mean, rms = stats.header_values()
    if stats.is_complex:
        dmin, dmax = complex(np.min(extremes)), complex(np.max(extremes))
        mean = complex(stats.total, stats.total_imag) / stats.count
    return dmin, dmax, mean, rms


def _stats_findings(header: np.ndarray, real: tuple, note: str) -> list[Finding]:
    """mrcfile's statistics rules: which header values are set, and how close they must be."""
    dmin, dmax, dmean, rms = (float(header[name]) for name in ("dmin", "dmax", "dmean", "rms"))
    real_min, real_max, real_mean, real_rms = real
    found = []

    def differs(check: str, what: str, actual, stored: float) -> None:
        found.append(
            _problem(
                check, f"the header's {what} is {stored:.9g}, but the data's is {actual:.9g}{note}"
            )
        )

    if rms >= 0 and not np.isclose(real_rms, rms, rtol=0.01):
        differs("stats-rms", "RMS deviation", real_rms, rms)
    if dmin < dmax:
        if dmin != real_min:
            differs("stats-min", "minimum", real_min, dmin)
        if dmax != real_max:
            differs("stats-max", "maximum", real_max, dmax)
    if dmean > min(dmin, dmax) and not np.isclose(real_mean, dmean, rtol=0.01):
        differs("stats-mean", "mean", real_mean, dmean)
    return found
