"""Where things are in an MRC or MRCZ file: the parsed header and the data layout.

:func:`read_layout` reads and checks the header of a file without touching its data.
The reader, the lazy array and the appending writer all start from its result.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_mrcz.errors import MRCZFormatError, MRCZWarning
from napari_mrcz.files import describe_content, open_regular
from napari_mrcz.mrc.checksums import recorded_checksums
from napari_mrcz.mrc.chunk_index import offsets_from_sizes, recorded_sizes, truncated_problem
from napari_mrcz.mrc.codecs import (
    CHUNK_HEADER_DTYPE,
    CHUNK_HEADER_SIZE,
    CHUNK_SIZE_FIELD,
    CHUNK_SIZE_OFFSET,
    COMPRESSOR_ENUM,
    MAX_EXPANSION_OTHER,
    MODE_CODEC_FACTOR,
    chunk_header_problem,
    damaged_chunk_headers,
    indexed_chunk_problem,
    parse_chunk_header,
)
from napari_mrcz.mrc.gainmeta import GainSeparation, gain_separation
from napari_mrcz.mrc.grid import recorded_grid
from napari_mrcz.mrc.header import (
    HEADER_SIZE,
    IMOD_FLAG_SIGNED_BYTES,
    IMOD_STAMP,
    MACHST_BIG,
    MACHST_LITTLE,
    MAP_ID,
    MRC2014_VERSION,
    decode_labels,
    header_dtype,
    stamp_byteorder,
)
from napari_mrcz.mrc.jsonmeta import CHUNK_KEYS, FRAMES_KEY, decode_meta
from napari_mrcz.mrc.modes import (
    EMAN2_MODE_DTYPES,
    READABLE_MODES,
    RGB_MODE,
    UINT4_MODE,
    UNSUPPORTED_MODES,
    dtype_for_mode,
    uint4_row_bytes,
)

if TYPE_CHECKING:
    from napari_mrcz.remote import RemoteFile

#: MRC2014 modes, read or recognised.
KNOWN_MODES = READABLE_MODES | UNSUPPORTED_MODES

_MRCZ_LABEL = re.compile(r"^MRCZ(\d+)\.(\d+)")


@dataclass(frozen=True)
class MRCLayout:
    """The parsed header of one MRC/MRCZ file and where its data lies.

    Attributes
    ----------
    path : str
        The file.
    file_size : int
        Its size in bytes when opened.
    header : numpy.ndarray
        The 1024-byte header as a 0-d structured array in the file's byte order.
    byteorder : str
        ``'<'`` or ``'>'``.
    mode : int
        MRC mode (without the MRCZ compressor part).
    compressor : str or None
        The MRCZ codec named by MODE, or None for plain MRC.
    dtype : numpy.dtype
        dtype of the pixels as stored (uint8 for the packed 4-bit mode 101; for RGB,
        mode 16, a 3-byte subarray dtype whose arrays end in an axis of 3 uint8).
    shape : tuple of int
        (nz, ny, nx) of the stored grid.
    data_offset : int
        Byte offset of the first z-slice (or blosc chunk).
    slice_nbytes : int
        Bytes of one stored z-slice (uncompressed).
    slices : int
        python-mrcz's slices per frame: 0 for one array, k for a list of k-slice frames.
    pixelsize : numpy.ndarray
        Pixel size in Angstrom in data order (z, y, x).
    mapcrs : tuple of int
        MAPC, MAPR, MAPS: which crystal axis (1=x, 2=y, 3=z) runs along columns,
        rows and sections.
    json_meta : dict or None
        The JSON extended header, if the file has one (without the chunk checksums).
    labels : list of str
        The text labels.
    chunk_checksums : list of int or None
        The CRC32 of each compressed chunk the writer recorded in the JSON meta (see
        :mod:`napari_mrcz.mrc.checksums`), or None.
    chunk_sizes : numpy.ndarray or None
        The size of each compressed chunk the writer recorded in the JSON meta (see
        :mod:`napari_mrcz.mrc.chunk_index`), or None.
    source_grid : dict or None
        For an MRCZ copy of a map whose grid MRCZ could not keep (sampling, cell,
        axis order): the source's grid fields (see :mod:`napari_mrcz.mrc.grid`), or
        None.
    damaged_meta : str or None
        Why the JSON extended header could not be decoded (the file is read without
        it, ``json_meta`` None), or None.
    remote : RemoteFile or None
        The file on a server whose header this is (``path`` is its name in
        messages), or None for a local file.
    """

    path: str
    file_size: int
    header: np.ndarray
    byteorder: str
    mode: int
    compressor: str | None
    dtype: np.dtype
    shape: tuple[int, int, int]
    data_offset: int
    slice_nbytes: int
    slices: int
    pixelsize: np.ndarray
    mapcrs: tuple[int, int, int]
    json_meta: dict | None
    labels: list[str] = field(default_factory=list)
    chunk_checksums: list[int] | None = None
    chunk_sizes: np.ndarray | None = None
    source_grid: dict | None = None
    damaged_meta: str | None = None
    remote: RemoteFile | None = field(default=None, compare=False, repr=False)

    @property
    def nz(self) -> int:
        """Number of stored z-slices."""
        return self.shape[0]

    @property
    def data_nbytes(self) -> int:
        """Bytes of all the stored slices, uncompressed."""
        return self.nz * self.slice_nbytes

    @property
    def crystal_axes(self) -> tuple[int, int, int]:
        """The crystal axis (0 = x, 1 = y, 2 = z) along each data axis (z, y, x)."""
        return crystal_axes(self.mapcrs)

    @property
    def is_image(self) -> bool:
        """True for a single 2D image (one z-slice): its z pixel size and origin mean nothing."""
        return self.nz == 1

    @property
    def unusable_pixel_axes(self) -> tuple[str, ...]:
        """Data axes (``'z'``, ``'y'``, ``'x'``) whose pixel size is 0, negative or not finite.

        The z axis of a single image is never listed: programs write 0 there.
        """
        axes = ("y", "x") if self.is_image else ("z", "y", "x")
        sizes = self.pixelsize[-len(axes) :]
        usable = (sizes > 0) & (sizes < np.inf)
        return tuple(axis for axis, ok in zip(axes, usable, strict=True) if not ok)

    @property
    def divisors(self) -> tuple[int, int, int]:
        """What CELLA is divided by for :attr:`pixelsize` (see :func:`sampling_divisors`)."""
        return sampling_divisors(self.header, self.shape, self.mapcrs, self.slices)

    @property
    def usable_pixelsize(self) -> np.ndarray:
        """:attr:`pixelsize` with 1 Angstrom where it is 0, negative or not finite."""
        sizes = self.pixelsize.astype(np.float64)
        return np.where((sizes > 0) & (sizes < np.inf), sizes, 1.0)

    @property
    def origin(self) -> np.ndarray:
        """Origin in Angstrom in data order (z, y, x).

        ORIGIN (stored per crystal axis x, y, z) when it is set and finite, else
        N*START (the index of the first voxel) times the pixel size.
        """
        origin_xyz = [float(value) for value in self.header["origin"]]
        origin = np.array([origin_xyz[axis] for axis in self.crystal_axes])
        if origin.any() and np.isfinite(origin).all():
            return origin
        starts = [int(self.header[name]) for name in ("nzstart", "nystart", "nxstart")]
        return np.array(starts, dtype=np.float64) * self.usable_pixelsize

    @property
    def display_order(self) -> tuple[int, int, int]:
        """The transpose that shows the data as (z, y, x) whatever MAPC/MAPR/MAPS say.

        The identity for the standard order, and for RGB files (IMOD keeps theirs).
        A single image is only ever transposed in its plane (MAPC/MAPR = 2, 1).
        """
        axes = self.crystal_axes
        order = tuple(axes.index(axis) for axis in (2, 1, 0))
        if self.mode == RGB_MODE or (self.is_image and order != (0, 2, 1)):
            return 0, 1, 2
        return order

    @property
    def formalities_missed(self) -> list[str]:
        """What the header gets wrong as a formality only (see :func:`formalities_missed`)."""
        return formalities_missed(self.header, self.labels)

    @property
    def gain_separation(self) -> GainSeparation | None:
        """The gain-separation record of a file of counts (see :mod:`.gainmeta`), or None.

        Only integer data are counts: a record carried into a file of other data (a
        float32 copy saved with its source's JSON meta) means nothing.
        """
        if self.dtype.kind not in "iu":
            return None
        return gain_separation(self.json_meta, self.path)

    @property
    def header_contrast_limits(self) -> tuple[float, float] | None:
        """DMIN, DMAX when they are finite and DMIN < DMAX, else None.

        For a gain-separated file, those of the float32 movie it is shown as.
        """
        dmin, dmax = float(self.header["dmin"]), float(self.header["dmax"])
        separation = self.gain_separation
        if separation is not None:
            if separation.statistics is None:
                return None
            dmin, dmax = separation.statistics[:2]
        if np.isfinite(dmin) and np.isfinite(dmax) and dmin < dmax:
            return dmin, dmax
        return None

    @property
    def is_uint4(self) -> bool:
        """True for the packed 4-bit mode 101."""
        return self.mode == UINT4_MODE

    @property
    def exttyp(self) -> str:
        """EXTTYP as text."""
        return bytes(self.header["exttyp"]).decode("latin-1").rstrip("\0 ")

    @property
    def written_by_python_mrcz(self) -> bool:
        """True if the file carries python-mrcz's signature (see python_mrcz_signature)."""
        return python_mrcz_signature(self.header, self.labels) is not None

    @property
    def nsymbt(self) -> int:
        """Length of the extended header in bytes."""
        return int(self.header["nsymbt"])

    def field(self, name: str):
        """Return one header field as a Python number, string or list."""
        value = self.header[name]
        if value.dtype.kind in "SV":
            return bytes(value)
        return value.tolist()

    def read_extended_header(self) -> bytes:
        """Return the raw extended header (between the header and the data)."""
        return self.read_bytes(HEADER_SIZE, self.nsymbt)

    def read_bytes(self, offset: int, count: int) -> bytes:
        """Up to ``count`` bytes of the file from ``offset`` (local or on a server)."""
        if self.remote is not None:
            return self.remote.pread(offset, count)
        with open_regular(self.path) as handle:
            handle.seek(offset)
            return handle.read(count)

    def index_chunks(self, buffer: mmap.mmap | bytes, check_recorded: bool = False) -> np.ndarray:
        """Return the offsets of the nz blosc chunks and the end of the last one.

        Takes the chunk sizes the file records (see :mod:`napari_mrcz.mrc.chunk_index`)
        where it has them, and walks the 16-byte headers of the others for theirs;
        then checks the headers walked at once (numpy) against their size, the slice
        size and the file size. Nothing is decompressed. The headers of recorded
        chunks are checked as each chunk is read, or here with ``check_recorded``
        (a validation reads them all).

        Raises
        ------
        MRCZFormatError
            If a chunk header is damaged or a chunk runs past the end of the file.
        """
        end = len(buffer)
        offsets = np.empty(self.nz + 1, dtype=np.int64)
        recorded = offsets_from_sizes(self.chunk_sizes, self.data_offset, self.nz, end)
        known = 0 if recorded is None else len(recorded) - 1
        if recorded is not None:
            offsets[: known + 1] = recorded
        # The others' sizes (a tight loop); then every header is checked at once.
        position = int(offsets[known]) if known else self.data_offset
        stop = self.nz
        for index in range(known, self.nz):
            offsets[index] = position
            if position + CHUNK_HEADER_SIZE > end:
                stop = index
                break
            (size,) = CHUNK_SIZE_FIELD.unpack_from(buffer, position + CHUNK_SIZE_OFFSET)
            if size < CHUNK_HEADER_SIZE:  # damaged: found by the check below
                stop = index + 1
                break
            position += size
        offsets[stop] = position
        checked_from = 0 if check_recorded else known
        self._check_chunk_headers(buffer, offsets[checked_from : stop + 1], checked_from)
        if stop < self.nz or position > end:
            raise MRCZFormatError(self.path, truncated_problem(stop, self.nz, position, end))
        return offsets

    def _check_chunk_headers(
        self, buffer: mmap.mmap | bytes, bounds: np.ndarray, first_index: int
    ) -> None:
        """Raise for the first of the chunks between ``bounds`` (their starts and the
        end of the last; the first is chunk ``first_index``) whose header is damaged
        or gives another size."""
        starts, sizes = bounds[:-1], np.diff(bounds)
        if not len(starts):
            return
        headers = np.empty(len(starts), dtype=CHUNK_HEADER_DTYPE)
        header_bytes = headers.view(np.uint8).reshape(len(starts), CHUNK_HEADER_SIZE)
        with memoryview(buffer) as whole:
            raw = np.frombuffer(whole, dtype=np.uint8)
            for at in range(CHUNK_HEADER_SIZE):  # byte by byte: no (n, 16) index array
                header_bytes[:, at] = raw[starts + at]
            del raw  # the memory map can close only once no array refers to it
        rooms = len(buffer) - starts
        damaged = damaged_chunk_headers(headers, self.slice_nbytes, rooms)
        damaged = np.union1d(damaged, np.flatnonzero(headers["cbytes"] != sizes))
        if not len(damaged):
            return
        first = int(damaged[0])
        start = int(starts[first])
        header = parse_chunk_header(buffer[start : start + CHUNK_HEADER_SIZE])
        problem = chunk_header_problem(
            header, self.slice_nbytes, int(rooms[first])
        ) or indexed_chunk_problem(buffer[start : start + int(sizes[first])], self.slice_nbytes)
        raise MRCZFormatError(
            self.path, f"damaged blosc chunk {first_index + first} at byte {start}: {problem}"
        )

    def chunks_after(self, end: int) -> int:
        """How many whole, sane blosc chunks of one z-slice follow the data ending at ``end``.

        An MRCZ file whose header was not yet updated for the slices written after
        it (a file still being written) holds more z-slices than NZ says.
        """
        count = 0
        with open_regular(self.path) as handle:
            while end + CHUNK_HEADER_SIZE <= self.file_size:
                handle.seek(end)
                chunk = parse_chunk_header(handle.read(CHUNK_HEADER_SIZE))
                if chunk_header_problem(chunk, self.slice_nbytes, self.file_size - end):
                    break
                count += 1
                end += chunk.cbytes
        return count


def header_problem(
    header: np.ndarray, file_size: int, modes: Collection[int] = frozenset()
) -> str | None:
    """Say what makes ``header`` (read in some byte order) not an MRC header, or None.

    ``modes`` are the MRC modes recognised (the MRC2014 table by default).
    """
    modes = modes or KNOWN_MODES
    dims = {name: int(header[name]) for name in ("nx", "ny", "nz")}
    if min(dims.values()) <= 0:
        return "dimensions must be positive, found " + ", ".join(
            f"{name}={value}" for name, value in dims.items()
        )
    raw_mode = int(header["mode"])
    codec_id, mode = divmod(raw_mode, MODE_CODEC_FACTOR)
    if raw_mode < 0 or codec_id not in COMPRESSOR_ENUM:
        return (
            f"unrecognized MRCZ compressor id = {codec_id} (MODE {raw_mode}); "
            f"known ids: {sorted(COMPRESSOR_ENUM)}"
        )
    if mode not in modes:
        return f"unknown MRC mode {mode}"
    nsymbt = int(header["nsymbt"])
    if not 0 <= nsymbt <= file_size - HEADER_SIZE:
        return (
            f"extended header length NSYMBT={nsymbt} runs past the end of the "
            f"{file_size}-byte file"
        )
    return None


def parse_header(
    raw: bytes, file_size: int, hint: str = "<", modes: Collection[int] = frozenset()
) -> tuple[np.ndarray, str, str | None]:
    """Read a 1024-byte MRC header in the byte order that makes sense of it.

    Parameters
    ----------
    raw : bytes
        The first 1024 bytes of the file.
    file_size : int
        Its size, which the extended header must fit in.
    hint : {'<', '>'}
        Byte order to try first when the machine stamp declares none.
    modes : collection of int
        The MRC modes recognised (MRC2014's by default).

    Returns
    -------
    header : numpy.ndarray
        The header, a 0-d structured array (a copy).
    byteorder : str
        ``'<'`` or ``'>'``: the machine stamp's if the header makes sense that way,
        else the first order that does (see :func:`byteorder_doubt`).
    problem : str or None
        What makes it no MRC header in either order, or None.
    """
    modes = modes or KNOWN_MODES
    byteorder = _choose_byteorder(raw, file_size, hint, modes)
    header = np.frombuffer(raw, dtype=header_dtype(byteorder)).copy().reshape(())
    problem = header_problem(header, file_size, modes)
    if problem is not None and bytes(header["map"]) != MAP_ID:
        problem = _not_mrc(raw, problem)
    return header, byteorder, problem


def short_header_problem(raw: bytes) -> str:
    """The problem of a file of ``raw`` bytes, too few for an MRC header."""
    seen = describe_content(raw)
    return f"too short for an MRC file: {len(raw)} bytes, the header alone is {HEADER_SIZE}" + (
        f"; {seen}" if seen else ""
    )


def _not_mrc(raw: bytes, problem: str) -> str:
    """The problem of a header without the 'MAP ' word that makes no sense either way.

    Such a file is no MRC file at all: say what it looks like (text, another format),
    not what its bytes would mean as a header.
    """
    seen = describe_content(raw)  # a DM file named .mrc: see napari_mrcz.formats.identify
    if seen is not None:
        return f"not an MRC file (no valid header): {seen}"
    return f"not an MRC file (no valid header: {problem})"


def _choose_byteorder(raw: bytes, file_size: int, hint: str, modes: Collection[int]) -> str:
    """Decide the byte order: the machine stamp if the header agrees, else what is sane."""
    declared = stamp_byteorder(raw[212:216])
    first = declared or hint
    for order in (first, _other(first)):
        if _sane(raw, file_size, order, modes):
            return order
    return first


def _other(byteorder: str) -> str:
    return ">" if byteorder == "<" else "<"


def _sane(raw: bytes, file_size: int, byteorder: str, modes: Collection[int]) -> bool:
    candidate = np.frombuffer(raw, dtype=header_dtype(byteorder))[0]
    return header_problem(candidate, file_size, modes) is None


def _could_be(raw: bytes, file_size: int, byteorder: str, modes: Collection[int]) -> bool:
    """True if the header makes sense in ``byteorder`` and its data could fit the file.

    The size is a lower bound (half a byte a voxel for plain files, a 16-byte blosc
    chunk header a slice for MRCZ): dimensions read in the wrong byte order are huge.
    """
    if not _sane(raw, file_size, byteorder, modes):
        return False
    header = np.frombuffer(raw, dtype=header_dtype(byteorder))[0]
    nx, ny, nz = (int(header[name]) for name in ("nx", "ny", "nz"))
    compressed = int(header["mode"]) >= MODE_CODEC_FACTOR
    least_data = nz * CHUNK_HEADER_SIZE if compressed else nx * ny * nz // 2
    return HEADER_SIZE + int(header["nsymbt"]) + least_data <= file_size


def _endian_name(byteorder: str) -> str:
    return "little-endian" if byteorder == "<" else "big-endian"


def byteorder_doubt(
    raw: bytes, file_size: int, byteorder: str, modes: Collection[int] = frozenset()
) -> str | None:
    """Why the byte order ``byteorder`` chosen for a header is a guess, or None if it is sure.

    A guess when the machine stamp says the other order (only ``byteorder`` makes
    sense of the header), or says none and the header makes sense either way. A
    stamp of zeros whose header reads only one way (RELION, Leginon) is no guess.
    """
    modes = modes or KNOWN_MODES
    declared = stamp_byteorder(raw[212:216])
    if declared is not None and declared != byteorder:
        return (
            f"the header says {_endian_name(declared)} but only makes sense as "
            f"{_endian_name(byteorder)}: read as {_endian_name(byteorder)}"
        )
    if declared is None and _could_be(raw, file_size, _other(byteorder), modes):
        return (
            f"the byte order is not recorded (machine stamp {raw[212:216].hex(' ')}) and the "
            f"header reads either way: read as {_endian_name(byteorder)}; if the image looks "
            "like noise, the file is the other way round"
        )
    return None


def formalities_missed(header: np.ndarray, labels: list[str]) -> list[str]:
    """What a header gets wrong that only matters as a formality (the data is read).

    A machine stamp other than MRC2014's, no 'MAP ' word, an NVERSION other than
    20140/20141 or MX/MY/MZ of 0 (pixel size then CELLA / N). python-mrcz's own
    files write NVERSION 0 and M = 0, and MRCZ files MZ = 0, by design: not
    reported for them.
    """
    missed = []
    stamp = bytes(header["machst"])
    if stamp[:2] not in (MACHST_LITTLE[:2], b"\x44\x44", MACHST_BIG[:2]):
        missed.append(f"machine stamp {stamp.hex(' ')} is not MRC2014's")
    if bytes(header["map"]) != MAP_ID:
        missed.append(f"no 'MAP ' identifier (found {bytes(header['map'])!r})")
    if python_mrcz_signature(header, labels) is None:
        if int(header["nversion"]) not in (20140, MRC2014_VERSION):
            missed.append(f"NVERSION {int(header['nversion'])} (MRC2014 says 20140 or 20141)")
        # MRCZ files keep MZ = 0 for python-mrcz (it reads MZ as slices per frame).
        sampled = ("mx", "my") if int(header["mode"]) >= MODE_CODEC_FACTOR else ("mx", "my", "mz")
        zero = [name.upper() for name in sampled if int(header[name]) <= 0]
        if zero:
            missed.append(f"{'/'.join(zero)} not positive: pixel size taken as CELLA / N")
    return missed


def _mrcz_version(label: str) -> tuple[int, int] | None:
    match = _MRCZ_LABEL.match(label)
    return (int(match.group(1)), int(match.group(2))) if match else None


def python_mrcz_signature(header: np.ndarray, labels: list[str]) -> tuple[int, int] | None:
    """python-mrcz's format version if the file carries its signature, else None.

    The signature is its ``MRCZ<version>`` label with MX = MY = 0: every other
    program, and we, write M = N.
    """
    version = _mrcz_version(labels[0]) if labels else None
    if version is not None and int(header["mx"]) == 0 and int(header["my"]) == 0:
        return version
    return None


def recorded_frames(header: np.ndarray, labels: list[str], json_meta: dict | None) -> int:
    """python-mrcz's slices per frame as a file records them, or 0 for one array.

    MZ means slices per frame only in files python-mrcz wrote (its MRCZ label with
    MX = MY = 0), in files whose JSON meta has a ``slices`` key, and in files of MRCZ
    writers (label 0 ``MRCZ<version>``) whose MZ divides NZ into frames of several
    slices: their plain copies, which carry no JSON meta. Everywhere else MZ is the
    sampling along z, as MRC2014 defines it. Not checked against NZ.
    """
    mz, nz = int(header["mz"]), int(header["nz"])
    if json_meta is not None and isinstance(json_meta.get(FRAMES_KEY), int):
        return json_meta[FRAMES_KEY]
    version = python_mrcz_signature(header, labels)
    if version is not None:
        return 1 if version < (0, 5) else mz
    if written_by_mrcz_writer(labels) and 1 < mz < nz and nz % mz == 0:
        return mz
    return 0


def written_by_mrcz_writer(labels: list[str]) -> bool:
    """True if label 0 is an MRCZ writer's ``MRCZ<version>`` (python-mrcz's or ours)."""
    return bool(labels) and _mrcz_version(labels[0]) is not None


def _slices_per_frame(
    path: str,
    header: np.ndarray,
    nz: int,
    labels: list[str],
    json_meta: dict | None,
    requested: int | None,
    quiet: bool = False,
) -> int:
    """Slices per frame: ``requested``, else :func:`recorded_frames` if they divide NZ."""
    slices = recorded_frames(header, labels, json_meta) if requested is None else int(requested)
    if slices < 0 or (slices > 0 and nz % slices):
        if requested is not None:
            raise ValueError(f"slices={slices} does not divide the {nz} z-slices of {path}")
        if not quiet:
            warnings.warn(
                f"{path}: frames of {slices} slices recorded in the file do not divide its "
                f"{nz} z-slices: read as one stack",
                MRCZWarning,
                stacklevel=3,
            )
        return 0
    return slices


def crystal_axes(mapcrs: tuple[int, int, int]) -> tuple[int, int, int]:
    """The crystal axis (0 = x, 1 = y, 2 = z) along each data axis (z, y, x).

    Data axes are sections, rows and columns; MAPS, MAPR and MAPC name their crystal
    axes (1 = x, 2 = y, 3 = z). The one place that reads the axis order.
    """
    return mapcrs[2] - 1, mapcrs[1] - 1, mapcrs[0] - 1


def sampling_divisors(
    header: np.ndarray, shape: tuple[int, int, int], mapcrs: tuple[int, int, int], slices: int
) -> tuple[int, int, int]:
    """What CELLA is divided by for the pixel size along each data axis (z, y, x).

    M along each crystal axis, as MRC2014 and mrcfile define it, or N where M is 0
    (python-mrcz), and N along the sections of a file of frames, whose MZ counts the
    slices per frame (``slices`` > 0), as python-mrcz writes and reads them.
    """
    sampling = [int(header["mx"]), int(header["my"]), int(header["mz"])]
    divisors = []
    for data_axis, (axis, count) in enumerate(zip(crystal_axes(mapcrs), shape, strict=True)):
        by_count = sampling[axis] <= 0 or (data_axis == 0 and slices > 0)
        divisors.append(count if by_count else sampling[axis])
    return tuple(divisors)


def pixel_size(
    header: np.ndarray, shape: tuple[int, int, int], mapcrs: tuple[int, int, int], slices: int
) -> np.ndarray:
    """Pixel size in Angstrom, in data order (z, y, x): CELLA over the divisors.

    The divisors are :func:`sampling_divisors` of a grid of ``shape`` in the axis
    order ``mapcrs`` with ``slices`` slices per frame.
    """
    divisors = sampling_divisors(header, shape, mapcrs, slices)
    cella = header["cella"].astype(np.float64)
    axes = crystal_axes(mapcrs)
    return np.array([cella[axis] / divisor for axis, divisor in zip(axes, divisors, strict=True)])


def read_layout(
    path: str | os.PathLike,
    endian: str = "le",
    slices: int | None = None,
    file_convention: str = "ccpem",
    file_size: int | None = None,
    quiet: bool = False,
    source: RemoteFile | None = None,
) -> MRCLayout:
    """Read and check the header of an MRC/MRCZ file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    endian : {'le', 'be'}
        Byte order to assume when the machine stamp declares none and both orders
        give a sane header.
    slices : int, optional
        Slices per frame, overriding what the file says (python-mrcz's ``slices``).
    file_convention : {'ccpem', 'eman2'}
        Mode numbering; EMAN2's old numbering is only partly supported, as in
        python-mrcz.
    file_size : int, optional
        The size of the whole file when ``path`` holds only its header and extended
        header (a compressed download's head, see
        :class:`~napari_mrcz.mrc.gzipped.DecompressedFile`); its data cannot be read.
    quiet : bool
        Leave out the warnings about the header: for a copy being checked, whose
        source was warned about already (:func:`warnings.catch_warnings` would
        silence every thread of the process).
    source : RemoteFile, optional
        The file on a server (see :mod:`napari_mrcz.remote`), ``path`` its name in
        messages: the header is read from it, in one request for most files.

    Returns
    -------
    MRCLayout

    Raises
    ------
    MRCZFormatError
        If the file is too short, its header makes no sense or its data cannot fit.
    """
    path = os.fspath(path)
    with open_regular(path) if source is None else contextlib.nullcontext(source) as handle:
        if file_size is None:
            file_size = os.fstat(handle.fileno()).st_size if source is None else source.size
        handle.seek(0)  # a source may have been read already
        raw = handle.read(HEADER_SIZE)
        if len(raw) < HEADER_SIZE:
            raise MRCZFormatError(path, short_header_problem(raw))
        convention = file_convention.lower()
        if convention not in ("ccpem", "eman2"):
            raise ValueError(f"unrecognized MRC file convention: {file_convention}")
        modes = EMAN2_MODE_DTYPES.keys() if convention == "eman2" else KNOWN_MODES
        header, byteorder, problem = parse_header(
            raw, file_size, "<" if endian == "le" else ">", modes
        )
        if problem is not None:
            raise MRCZFormatError(path, problem)
        doubt = byteorder_doubt(raw, file_size, byteorder, modes)
        if doubt is not None and not quiet:
            warnings.warn(f"{path}: {doubt}", MRCZWarning, stacklevel=2)
        nx, ny, nz = (int(header[name]) for name in ("nx", "ny", "nz"))
        codec_id, mode = divmod(int(header["mode"]), MODE_CODEC_FACTOR)
        compressor = COMPRESSOR_ENUM[codec_id]
        imod_unsigned = (
            int(header["imod_stamp"]) == IMOD_STAMP
            and not int(header["imod_flags"]) & IMOD_FLAG_SIGNED_BYTES
        )
        if convention == "eman2":
            dtype = np.dtype(EMAN2_MODE_DTYPES[mode]).newbyteorder(byteorder)
        elif mode in UNSUPPORTED_MODES:
            raise MRCZFormatError(path, f"MRC mode {mode} is not supported yet")
        else:
            dtype = dtype_for_mode(mode, byteorder, unsigned_bytes=imod_unsigned)
        nsymbt = int(header["nsymbt"])
        data_offset = HEADER_SIZE + nsymbt
        labels = decode_labels(header)

        json_meta = None
        damaged_meta = None
        if header["exttyp"] == b"json" and nsymbt > 0:
            handle.seek(HEADER_SIZE)
            try:
                json_meta = decode_meta(path, handle.read(nsymbt))
            except MRCZFormatError as error:  # the pixels do not depend on it: read them
                damaged_meta = error.problem
                if not quiet:
                    warnings.warn(
                        f"{path}: {damaged_meta}; the pixels are read without that "
                        "metadata (no recorded frames, units, chunk checksums or gain)",
                        MRCZWarning,
                        stacklevel=2,
                    )
    chunk_checksums = recorded_checksums(json_meta)
    chunk_sizes = recorded_sizes(json_meta)
    for key in CHUNK_KEYS if json_meta is not None else ():
        json_meta.pop(key, None)  # the format's, not the user's: see chunk_checksums
    source_grid = recorded_grid(json_meta, path)

    slice_nbytes = ny * uint4_row_bytes(nx) if mode == UINT4_MODE else ny * nx * dtype.itemsize
    data_room = file_size - data_offset
    if compressor is None:
        if nz * slice_nbytes > data_room:
            raise MRCZFormatError(
                path,
                f"truncated: {nz} z-slices of {slice_nbytes} bytes need "
                f"{nz * slice_nbytes} bytes of data but only {data_room} follow the header",
            )
    elif nz * CHUNK_HEADER_SIZE > data_room or (
        nz * slice_nbytes > max(data_room, 1) * MAX_EXPANSION_OTHER
    ):
        raise MRCZFormatError(
            path,
            f"{nz} compressed z-slices of {slice_nbytes} bytes cannot fit in the "
            f"{data_room} bytes that follow the header (truncated or damaged)",
        )
    if compressor is not None and mode == UINT4_MODE:
        raise MRCZFormatError(path, "compressed 4-bit (mode 101) data is not defined by MRCZ")
    if compressor is not None and mode == RGB_MODE:
        raise MRCZFormatError(path, "compressed RGB (mode 16) data is not defined by MRCZ")

    mapcrs = (int(header["mapc"]), int(header["mapr"]), int(header["maps"]))
    if sorted(mapcrs) != [1, 2, 3]:
        if not quiet:
            warnings.warn(
                f"{path}: the axis order in the header (MAPC, MAPR, MAPS = {mapcrs}) is "
                "invalid: shown as columns x, rows y, sections z",
                MRCZWarning,
                stacklevel=2,
            )
        mapcrs = (1, 2, 3)
    shape = (nz, ny, nx)
    slices = _slices_per_frame(path, header, nz, labels, json_meta, slices, quiet)
    return MRCLayout(
        path=path,
        file_size=file_size,
        header=header,
        byteorder=byteorder,
        mode=mode,
        compressor=compressor,
        dtype=dtype,
        shape=shape,
        data_offset=data_offset,
        slice_nbytes=slice_nbytes,
        slices=slices,
        pixelsize=pixel_size(header, shape, mapcrs, slices),
        mapcrs=mapcrs,
        json_meta=json_meta,
        labels=labels,
        chunk_checksums=chunk_checksums,
        chunk_sizes=chunk_sizes,
        source_grid=source_grid,
        damaged_meta=damaged_meta,
        remote=source,
    )
