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
def block_sums_8bit(block):  # pragma: no cover - compiled
    """(sum, sum of squares, min, max) of one block of 8-bit values, in int32.

    Every value is cast to int32 before it is squared, and the sums and the
    extremes take a loop each: so both loops vectorise (numba's own integer
    promotion would square in int64, at a third of the speed).
    """
    total = np.int32(0)
    total_sq = np.int32(0)
    for index in range(block.size):
        wide = np.int32(block[index])
        total += wide
        total_sq += np.int32(wide * wide)
    low = block[0]
    high = block[0]
    for index in range(block.size):
        low = min(low, block[index])
        high = max(high, block[index])
    return total, total_sq, low, high


@numba.njit(**_OPTIONS)
def block_sums_16bit(block):  # pragma: no cover - compiled
    """(sum, sum of squares, min, max) of one block of 16-bit values, in int64.

    :func:`block_sums_8bit` with int64 written out: the accumulator type handed in as
    an argument instead gave a loop that did not vectorise (a third of the speed).
    """
    total = np.int64(0)
    total_sq = np.int64(0)
    for index in range(block.size):
        wide = np.int64(block[index])
        total += wide
        total_sq += np.int64(wide * wide)
    low = block[0]
    high = block[0]
    for index in range(block.size):
        low = min(low, block[index])
        high = max(high, block[index])
    return total, total_sq, low, high


@numba.njit(**_OPTIONS)
def integer_stats(values):  # pragma: no cover - compiled
    """(min, max, sum, sum of squares) of 1D C-contiguous 8- or 16-bit ``values``.

    Blocks of :data:`BLOCK_8BIT` or :data:`BLOCK_16BIT` values are summed in 32 or
    64 bits, the whole in 64 bits.
    """
    total = np.int64(0)
    total_sq = np.uint64(0)
    low = values[0]
    high = values[0]
    block_size = BLOCK_8BIT if values.itemsize == 1 else BLOCK_16BIT
    for start in range(0, values.size, block_size):
        block = values[start : start + block_size]
        if values.itemsize == 1:
            block_total, block_sq, block_low, block_high = block_sums_8bit(block)
        else:
            block_total, block_sq, block_low, block_high = block_sums_16bit(block)
        total += np.int64(block_total)
        total_sq += np.uint64(block_sq)
        low = min(low, block_low)
        high = max(high, block_high)
    return low, high, total, total_sq
