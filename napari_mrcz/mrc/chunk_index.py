"""Where each z-slice's blosc chunk starts in an MRCZ file.

A blosc chunk gives its own size in its 16-byte header, so the chunks of a file can
be found only by walking those headers one after the other: for a stack of 10^5
particles that is 10^5 small reads before the first slice can be shown. The MRCZ
files we write also record the size of every chunk in the JSON meta, under
:data:`~napari_mrcz.mrc.jsonmeta.CHUNK_SIZES_KEY` (beside the CRC32s, in the same
fixed-width form); their index is then a cumulative sum. python-mrcz ignores the
key. Sizes that cannot be right (a chunk smaller than its header, past the end of
the file) are not used; each chunk's header is checked against its size when the
chunk is read (:mod:`napari_mrcz.mrc.slices`). Slices appended later have no
recorded size: their headers are walked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_mrcz.mrc.codecs import CHUNK_HEADER_SIZE
from napari_mrcz.mrc.jsonmeta import CHUNK_SIZES_KEY, parse_hex_text


def recorded_sizes(json_meta: dict[str, Any] | None) -> np.ndarray | None:
    """The chunk sizes a file's JSON meta records, or None if it records none (or garbage)."""
    return parse_hex_text((json_meta or {}).get(CHUNK_SIZES_KEY))


def offsets_from_sizes(
    sizes: np.ndarray | None, data_offset: int, nz: int, file_size: int
) -> np.ndarray | None:
    """The offsets of the first ``len(sizes)`` chunks and the end of the last one.

    None when no sizes are recorded, or when they cannot be this file's: more
    chunks than z-slices, a chunk smaller than a chunk header, or chunks that run
    past the end of the file.
    """
    if sizes is None or not 0 < len(sizes) <= nz or int(sizes.min()) < CHUNK_HEADER_SIZE:
        return None
    offsets = np.empty(len(sizes) + 1, dtype=np.int64)
    offsets[0] = data_offset
    np.cumsum(sizes, out=offsets[1:])
    offsets[1:] += data_offset
    return offsets if int(offsets[-1]) <= file_size else None
