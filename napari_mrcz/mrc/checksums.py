"""Fixity for MRCZ archives: a CRC32 of every compressed chunk, kept in the JSON meta.

blosc 1 chunks carry no checksum: a few flipped bytes inside one decompress to other
data without any error. The MRCZ files we write record the CRC32 of each chunk's
bytes, computed in the encoding threads, under :data:`CHECKSUM_KEY` in the JSON
extended header: one string of 8 hexadecimal digits per z-slice, in slice order.
python-mrcz ignores keys it does not know. The string's length is fixed by the
number of slices, so the extended header is written with a placeholder first and
filled in once the slices are written; slices appended later carry no checksum
(the string covers the slices it was written for).

The CRC32 is zlib's; python-isal computes the same values with SIMD instructions
(about 18 GB/s here against zlib's 4), so a save pays little for it. Without isal
(a platform it has no wheel for), zlib's own is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_mrcz.mrc.jsonmeta import CHECKSUM_KEY, parse_hex_text

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal has wheels where we are tested
    from zlib import crc32


def chunk_checksum(chunk: bytes | memoryview | np.ndarray) -> int:
    """zlib's CRC32 of one compressed chunk."""
    return crc32(chunk)


def recorded_checksums(json_meta: dict[str, Any] | None) -> list[int] | None:
    """The checksums a file's JSON meta records, or None if it records none (or garbage)."""
    values = parse_hex_text((json_meta or {}).get(CHECKSUM_KEY))
    return None if values is None else values.tolist()


def mismatched_slices(
    expected: list[int] | None, buffer: bytes | memoryview, offsets: np.ndarray
) -> list[int] | None:
    """The z-slices whose chunk bytes no longer match their recorded checksum.

    Parameters
    ----------
    expected : list of int or None
        The checksums recorded (:attr:`napari_mrcz.mrc.layout.MRCLayout.chunk_checksums`).
    buffer : bytes-like
        The whole file (a memory map).
    offsets : numpy.ndarray
        Offsets of the chunks and of the end of the last one
        (:meth:`napari_mrcz.mrc.layout.MRCLayout.index_chunks`).

    Returns
    -------
    list of int or None
        Damaged slices (empty when all match); None when the file records no
        checksums. Slices beyond the recorded ones (appended later) are not checked.
    """
    if expected is None:
        return None
    count = min(len(expected), len(offsets) - 1)
    damaged = []
    # Views of a memory map are released at once, not when collected: a frame kept
    # alive a moment longer (dask's profiler samples them) would otherwise stop the
    # map from closing ("cannot close exported pointers exist").
    with memoryview(buffer) as whole:
        for index in range(count):
            with whole[int(offsets[index]) : int(offsets[index + 1])] as chunk:
                if chunk_checksum(chunk) != expected[index]:
                    damaged.append(index)
    return damaged
