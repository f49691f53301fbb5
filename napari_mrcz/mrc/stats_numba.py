"""The compiled loops behind :mod:`napari_mrcz.mrc.stats_kernels` (imports numba).

Module-level functions, so that numba's on-disk cache finds them again in the next
process: loading them from it costs a fraction of compiling them. Imported only by
:func:`napari_mrcz.mrc.stats_kernels._build`, in the background.
"""

from __future__ import annotations

import numba
import numpy as np

#: Elements per block: 8-bit squares (at most 255**2) summed over 2**15 of them stay
#: below 2**31 in the int32 accumulators that let the loop vectorise; 16-bit blocks
#: sum into int64.
BLOCK_8BIT = 2**15
BLOCK_16BIT = 2**14

_OPTIONS = {"nogil": True, "cache": True, "error_model": "numpy"}


@numba.njit(**_OPTIONS)
def block_8bit(block):  # pragma: no cover - compiled
    """(sum, sum of squares, min, max) of one block of 8-bit values, in int32."""
    total = np.int32(0)
    total_sq = np.int32(0)
    low = block[0]
    high = block[0]
    for value in block:
        wide = np.int32(value)
        total += wide
        total_sq += wide * wide
        low = min(low, value)
        high = max(high, value)
    return total, total_sq, low, high


@numba.njit(**_OPTIONS)
def block_16bit(block):  # pragma: no cover - compiled
    """(sum, sum of squares, min, max) of one block of 16-bit values, in int64."""
    total = np.int64(0)
    total_sq = np.int64(0)
    low = block[0]
    high = block[0]
    for value in block:
        wide = np.int64(value)
        total += wide
        total_sq += wide * wide
        low = min(low, value)
        high = max(high, value)
    return total, total_sq, low, high


@numba.njit(**_OPTIONS)
def stats_8bit(values):  # pragma: no cover - compiled
    """(min, max, sum, sum of squares) of 1D C-contiguous int8 or uint8 ``values``."""
    total = np.int64(0)
    total_sq = np.int64(0)
    low = values[0]
    high = values[0]
    for start in range(0, values.size, BLOCK_8BIT):
        block_total, block_sq, block_low, block_high = block_8bit(
            values[start : start + BLOCK_8BIT]
        )
        total += block_total
        total_sq += block_sq
        low = min(low, block_low)
        high = max(high, block_high)
    return low, high, total, total_sq


@numba.njit(**_OPTIONS)
def stats_16bit(values):  # pragma: no cover - compiled
    """(min, max, sum, sum of squares) of 1D C-contiguous int16 or uint16 ``values``."""
    total = np.int64(0)
    total_sq = np.uint64(0)
    low = values[0]
    high = values[0]
    for start in range(0, values.size, BLOCK_16BIT):
        block_total, block_sq, block_low, block_high = block_16bit(
            values[start : start + BLOCK_16BIT]
        )
        total += block_total
        total_sq += np.uint64(block_sq)
        low = min(low, block_low)
        high = max(high, block_high)
    return low, high, total, total_sq
