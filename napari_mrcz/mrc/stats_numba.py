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
def block_sums(block, zero):  # pragma: no cover - compiled
    """(sum, sum of squares, min, max) of one block, summed in the type of ``zero``.

    int32 for 8-bit values: the accumulators that let the loop vectorise; int64
    for 16-bit values.
    """
    total = zero
    total_sq = zero
    low = block[0]
    high = block[0]
    for value in block:
        wide = zero + value
        total += wide
        total_sq += wide * wide
        low = min(low, value)
        high = max(high, value)
    return total, total_sq, low, high


@numba.njit(**_OPTIONS)
def integer_stats(values, block_size, zero):  # pragma: no cover - compiled
    """(min, max, sum, sum of squares) of 1D C-contiguous 8- or 16-bit ``values``.

    Blocks of ``block_size`` are summed in the type of ``zero`` (see
    :data:`BLOCK_8BIT`, :data:`BLOCK_16BIT`), the whole in 64 bits.
    """
    total = np.int64(0)
    total_sq = np.uint64(0)
    low = values[0]
    high = values[0]
    for start in range(0, values.size, block_size):
        block_total, block_sq, block_low, block_high = block_sums(
            values[start : start + block_size], zero
        )
        total += block_total
        total_sq += np.uint64(block_sq)
        low = min(low, block_low)
        high = max(high, block_high)
    return low, high, total, total_sq
