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

from typing import TYPE_CHECKING, Any

import numpy as np

from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.codecs import (
    CHUNK_HEADER_DTYPE,
    CHUNK_HEADER_SIZE,
    CHUNK_SIZE_FIELD,
    CHUNK_SIZE_OFFSET,
    chunk_header_problem,
    damaged_chunk_headers,
    parse_chunk_header,
)
from napari_mrcz.mrc.jsonmeta import CHUNK_SIZES_KEY, parse_hex_text

if TYPE_CHECKING:
    from napari_mrcz.mrc.layout import MRCLayout
    from napari_mrcz.remote import RemoteFile


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


def truncated_problem(index: int, nz: int, position: int, end: int) -> str:
    """What a walk over the chunk headers says when chunk ``index`` starts past the end."""
    return (
        f"truncated: blosc chunk {index} of {nz} starts at byte {position} "
        f"but the file ends at {end}"
    )


#: Bytes asked for at a time when the chunk headers of a file on a server are walked:
#: one request per block, not one per chunk.
WALK_BLOCK_BYTES = 64 * 2**20


def remote_chunk_offsets(layout: MRCLayout, remote: RemoteFile) -> np.ndarray:
    """The chunk index of an MRCZ file on a server (see :mod:`napari_mrcz.remote`).

    The chunk sizes the file records give it with no request; the headers of the
    other chunks are walked through blocks of :data:`WALK_BLOCK_BYTES`, then checked
    all at once, by the rules of a local file's index
    (:meth:`~napari_mrcz.mrc.layout.MRCLayout.index_chunks`).

    Raises
    ------
    MRCZFormatError
        If a chunk header is damaged or a chunk runs past the end of the file.
    """
    nz, end = layout.nz, remote.size
    offsets = np.empty(nz + 1, dtype=np.int64)
    recorded = offsets_from_sizes(layout.chunk_sizes, layout.data_offset, nz, end)
    known = 0 if recorded is None else len(recorded) - 1
    if recorded is not None:
        offsets[: known + 1] = recorded
    position = int(offsets[known]) if known else layout.data_offset
    headers = np.zeros(nz - known, dtype=CHUNK_HEADER_DTYPE)
    block, block_start = b"", position
    for index in range(known, nz):
        offsets[index] = position
        if position + CHUNK_HEADER_SIZE > end:
            raise MRCZFormatError(layout.path, truncated_problem(index, nz, position, end))
        if position + CHUNK_HEADER_SIZE > block_start + len(block):
            block_start = position
            block = remote.pread(position, WALK_BLOCK_BYTES)
        raw = block[position - block_start : position - block_start + CHUNK_HEADER_SIZE]
        headers[index - known] = np.frombuffer(raw, dtype=CHUNK_HEADER_DTYPE)[0]
        (size,) = CHUNK_SIZE_FIELD.unpack_from(raw, CHUNK_SIZE_OFFSET)
        if size < CHUNK_HEADER_SIZE:
            headers = headers[: index - known + 1]
            break
        position += size
    offsets[known + len(headers)] = position
    rooms = end - offsets[known : known + len(headers)]
    damaged = damaged_chunk_headers(headers, layout.slice_nbytes, rooms)
    if len(damaged):
        first = int(damaged[0])
        problem = chunk_header_problem(
            parse_chunk_header(headers[first : first + 1].tobytes()),
            layout.slice_nbytes,
            int(rooms[first]),
        )
        raise MRCZFormatError(
            layout.path,
            f"damaged blosc chunk {known + first} at byte {offsets[known + first]}: {problem}",
        )
    if position > end:
        raise MRCZFormatError(
            layout.path,
            f"truncated: the last blosc chunk ends at byte {position} but the file ends at {end}",
        )
    return offsets
