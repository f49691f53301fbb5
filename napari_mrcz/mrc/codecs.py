"""MRCZ codecs: the compressor table and the blosc chunk format.

An MRCZ data section is one blosc chunk per z-slice, back to back. Each chunk begins
with the 16-byte c-blosc header below, always little endian; walking those headers
gives every slice's offset without decompressing anything.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

import blosc
import numpy as np

#: MODE // 1000 -> codec name, as python-mrcz defines it. None is uncompressed.
COMPRESSOR_ENUM: dict[int, str | None] = {
    0: None,
    1: "blosclz",
    2: "lz4",
    3: "lz4hc",
    4: "snappy",
    5: "zlib",
    6: "zstd",
}
REVERSE_COMPRESSOR_ENUM: dict[str | None, int] = {
    name: code for code, name in COMPRESSOR_ENUM.items()
}
MODE_CODEC_FACTOR = 1000

#: Codecs the installed blosc can write (snappy is gone from recent c-blosc).
AVAILABLE_CODECS: tuple[str, ...] = tuple(
    name for name in COMPRESSOR_ENUM.values() if name and name in blosc.compressor_list()
)

CHUNK_HEADER = struct.Struct("<BBBBiii")
CHUNK_HEADER_SIZE = CHUNK_HEADER.size
#: The same header as a numpy record, to check many chunks at once.
CHUNK_HEADER_DTYPE = np.dtype(
    [
        ("version", "u1"),
        ("versionlz", "u1"),
        ("flags", "u1"),
        ("typesize", "u1"),
        ("nbytes", "<i4"),
        ("blocksize", "<i4"),
        ("cbytes", "<i4"),
    ]
)
#: Where a chunk header keeps the chunk's size (cbytes).
CHUNK_SIZE_FIELD = struct.Struct("<i")
CHUNK_SIZE_OFFSET = 12
#: Chunk format versions: 1 and 2 from c-blosc 1.x, 3-5 from c-blosc2.
BLOSC1_FORMATS = frozenset({1, 2})
BLOSC2_FORMATS = frozenset({3, 4, 5})

#: blosc block size: larger blocks compress faster and smaller than c-blosc's
#: default (32 KiB for zstd) or python-mrcz's 64 KiB (zstd: 4% smaller files, 30% faster);
#: blosc caps it at the slice size.
BLOCK_SIZE = 2**20


class ChunkHeader(NamedTuple):
    """The fields of a c-blosc chunk header."""

    version: int
    versionlz: int
    flags: int
    typesize: int
    nbytes: int
    blocksize: int
    cbytes: int


def parse_chunk_header(raw: bytes | memoryview) -> ChunkHeader:
    """Unpack the first 16 bytes of a blosc chunk."""
    return ChunkHeader(*CHUNK_HEADER.unpack_from(raw))


#: Codec number in bits 5-7 of a blosc1 chunk's flags -> the most its output can
#: expand, with a margin (measured with 1 MiB blocks of zeros: blosclz and lz4 251x,
#: zlib 224x, zstd 18 300x). A chunk header claiming more is damaged, and trusting
#: it would make the reader allocate memory the file cannot fill.
MAX_EXPANSION: dict[int, int] = {0: 2**9, 1: 2**9, 2: 2**9, 3: 2**11, 4: 2**15}
#: For c-blosc2 chunks and unknown codec numbers.
MAX_EXPANSION_OTHER = 2**15
FLAG_MEMCPYED = 0x02


def max_expansion(header: ChunkHeader) -> int:
    """How many times its own size a chunk with this header can decompress to."""
    if header.version not in BLOSC1_FORMATS:
        return MAX_EXPANSION_OTHER
    if header.flags & FLAG_MEMCPYED:
        return 1
    return MAX_EXPANSION.get(header.flags >> 5, MAX_EXPANSION_OTHER)


def chunk_header_problem(header: ChunkHeader, expected_nbytes: int, room: int) -> str | None:
    """Say what is wrong with a chunk header, or return None if it can be trusted.

    Parameters
    ----------
    header : ChunkHeader
        The parsed header.
    expected_nbytes : int
        The size one decompressed z-slice must have.
    room : int
        Bytes left in the file from the start of the chunk.
    """
    if header.version not in BLOSC1_FORMATS | BLOSC2_FORMATS:
        return f"unknown blosc format version {header.version}"
    if header.typesize < 1:
        return "blosc typesize is 0"
    if header.nbytes != expected_nbytes:
        return f"chunk holds {header.nbytes} bytes uncompressed, a z-slice needs {expected_nbytes}"
    if header.cbytes < CHUNK_HEADER_SIZE:
        return f"chunk size {header.cbytes} is smaller than its own header"
    if header.cbytes > room:
        return f"chunk of {header.cbytes} bytes runs past the end of the file ({room} left)"
    if header.blocksize <= 0 and header.nbytes > 0:
        return f"blosc blocksize {header.blocksize} is not positive"
    if header.nbytes > header.cbytes * max_expansion(header):
        return (
            f"{header.cbytes} compressed bytes cannot hold the {header.nbytes} they claim "
            f"(at most {max_expansion(header)}x for this codec)"
        )
    return None


def indexed_chunk_problem(chunk: bytes | memoryview, expected_nbytes: int) -> str | None:
    """What is wrong with one chunk cut out of a file by its index (its header against
    the size the index gives it and the slice size), or None."""
    if len(chunk) < CHUNK_HEADER_SIZE:
        return f"{len(chunk)} bytes are too few for a blosc chunk"
    header = parse_chunk_header(chunk[:CHUNK_HEADER_SIZE])
    if header.cbytes != len(chunk):
        return f"its header says {header.cbytes} bytes, the file's index {len(chunk)}"
    return chunk_header_problem(header, expected_nbytes, len(chunk))


def damaged_chunk_headers(
    headers: np.ndarray, expected_nbytes: int, rooms: np.ndarray
) -> np.ndarray:
    """The indices of the ``headers`` :func:`chunk_header_problem` finds fault with.

    The same rules, on many chunks at once: ``headers`` is an array of
    :data:`CHUNK_HEADER_DTYPE`, ``rooms`` the bytes left in the file from the start
    of each chunk.
    """
    version, flags = headers["version"], headers["flags"]
    nbytes, cbytes = headers["nbytes"].astype(np.int64), headers["cbytes"].astype(np.int64)
    by_codec = np.array([MAX_EXPANSION.get(code, MAX_EXPANSION_OTHER) for code in range(8)])
    blosc1 = np.isin(version, list(BLOSC1_FORMATS))
    expansion = np.where(
        blosc1, np.where(flags & FLAG_MEMCPYED, 1, by_codec[flags >> 5]), MAX_EXPANSION_OTHER
    )
    bad = (
        ~np.isin(version, list(BLOSC1_FORMATS | BLOSC2_FORMATS))
        | (headers["typesize"] < 1)
        | (nbytes != expected_nbytes)
        | (cbytes < CHUNK_HEADER_SIZE)
        | (cbytes > rooms)
        | ((headers["blocksize"] <= 0) & (nbytes > 0))
        | (nbytes > cbytes * expansion)
    )
    return np.flatnonzero(bad)


#: Text of the header label in which we record how an MRCZ file was compressed: blosc
#: chunks keep the codec but not the level, and users want to see both.
SETTINGS_LABEL = "napari-mrcz blosc {codec} level {level} bitshuffle"
_SETTINGS_LABEL = re.compile(r"^napari-mrcz blosc (\w+) level (\d+)")


def settings_label(compressor: str, clevel: int) -> str:
    """The header label recording ``compressor`` and ``clevel`` (see SETTINGS_LABEL)."""
    return SETTINGS_LABEL.format(codec=compressor, level=int(clevel))


def recorded_settings(labels: list[str]) -> tuple[str, int] | None:
    """(codec, level) recorded by :func:`settings_label` in ``labels``, or None."""
    for label in labels:
        match = _SETTINGS_LABEL.match(label)
        if match:
            return match.group(1), int(match.group(2))
    return None


class ChunkDecodeError(ValueError):
    """blosc could not decompress a chunk (its bytes are damaged)."""


def _blosc_settings() -> None:
    """Keep c-blosc single-threaded, the GIL released and our block size in force.

    c-blosc 1.x lays out a chunk's blocks in the order its threads finish them, so
    a chunk compressed with several threads differs from run to run. We compress and
    decompress with one blosc thread per call and run slices in parallel instead,
    which needs python-blosc to release the GIL during each call (its default is to
    hold it: the slices would then run one at a time). The settings are globals of
    python-blosc and c-blosc, which another library may have changed: they are set
    here, before each chunk, rather than once when this module is imported.
    """
    blosc.set_releasegil(True)
    if blosc.nthreads != 1:
        blosc.set_nthreads(1)
    if blosc.get_blocksize() != BLOCK_SIZE:
        blosc.set_blocksize(BLOCK_SIZE)


def check_codec(compressor: str) -> str:
    """Return ``compressor`` lower-cased if the installed blosc can write it.

    Raises
    ------
    ValueError
        For a codec MRCZ does not define or the installed blosc lacks.
    """
    name = compressor.lower()
    if name not in REVERSE_COMPRESSOR_ENUM:
        known = sorted(n for n in REVERSE_COMPRESSOR_ENUM if n)
        raise ValueError(f"Unknown compressor {compressor!r}, expected one of {known}")
    if name not in AVAILABLE_CODECS:
        raise ValueError(
            f"The installed blosc cannot write {name!r}; it offers {list(AVAILABLE_CODECS)}"
        )
    return name


def compress_slice(frame: np.ndarray, compressor: str, clevel: int) -> bytes:
    """Compress one C-contiguous z-slice into one blosc chunk, bit-shuffled.

    The slice's buffer is handed to blosc as it is: no intermediate copy.
    """
    _blosc_settings()
    return blosc.compress_ptr(
        frame.ctypes.data,
        frame.size,
        typesize=frame.dtype.itemsize,
        clevel=int(clevel),
        shuffle=blosc.BITSHUFFLE,
        cname=compressor,
    )


def decompress_into(chunk: bytes | memoryview, out: np.ndarray) -> None:
    """Decompress one validated blosc chunk straight into the C-contiguous ``out``.

    The caller has checked the chunk header against ``out.nbytes`` and the file size.
    Chunks in the c-blosc2 format (python-mrcz's ``backend='blosc2'``) need the
    optional ``blosc2`` package.

    Raises
    ------
    ChunkDecodeError
        If blosc finds the compressed bytes damaged.
    """
    if chunk[0] in BLOSC1_FORMATS:
        _blosc_settings()
        try:
            blosc.decompress_ptr(chunk, out.ctypes.data)
        except Exception as error:  # python-blosc's own error class derives from Exception
            raise ChunkDecodeError(str(error)) from None
        return
    try:
        import blosc2
    except ImportError:
        raise ImportError(
            "This file holds c-blosc2 chunks (python-mrcz backend='blosc2'); "
            "install the blosc2 package to read it"
        ) from None
    try:
        decoded = blosc2.decompress(bytes(chunk))
    except Exception as error:
        raise ChunkDecodeError(str(error)) from None
    out.reshape(-1).view(np.uint8)[:] = np.frombuffer(decoded, np.uint8)
