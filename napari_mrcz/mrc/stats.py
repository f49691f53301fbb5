"""Exact header statistics (DMIN, DMAX, DMEAN, RMS), gathered one z-slice at a time."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from napari_mrcz.mrc.header import UNKNOWN_STATS, stats_determined
from napari_mrcz.mrc.stats_kernels import integer_stats_kernel, measured_by_kernel

#: Elements per block of the sums: small enough to stay in a CPU's L2 cache, large
#: enough that threads computing statistics side by side rarely wait for the GIL.
_BLOCK = 2**18


class SliceStats:
    """Accumulate min, max, mean and RMS deviation over the z-slices of one array.

    The sums are taken of the values minus a fixed ``shift`` (a value of the data),
    so that the RMS of data sitting on a high background does not drown in rounding.
    For integer data every sum is exact (8- and 16-bit data through one compiled
    pass, see :mod:`napari_mrcz.mrc.stats_kernels`); float sums are pairwise. The sums
    run over cache-sized blocks, each block read from memory once. Complex data gets
    only the RMS, with min, max and mean left at MRC2014's "unknown" values, as
    mrcfile does.

    Parameters
    ----------
    shift : float or int
        Subtracted from every value before summing; accumulators that will be merged
        must share it. Use a value of the data (see :func:`shift_for`).
    """

    def __init__(self, shift: float | int = 0) -> None:
        self.shift = shift
        self.count = 0
        self.total: float | int = 0
        self.total_imag = 0.0
        self.total_sq: float | int = 0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.is_complex = False

    def add(self, frame: np.ndarray) -> None:
        """Fold one slice (any shape, native byte order) into the statistics."""
        values = frame.reshape(-1)
        if values.size == 0:
            return
        kind = values.dtype.kind
        self.count += values.size
        if kind == "c":
            self.is_complex = True
            total = complex(values.sum(dtype=np.complex128))
            self.total += total.real
            self.total_imag += total.imag
            self.total_sq += float(np.vdot(values, values).real)
            return
        if kind == "b":
            values = values.view(np.uint8)
        if kind in "iub" and float(self.shift).is_integer():
            self._add_integers(values)
        else:
            self._add_floats(values)

    def _add_integers(self, values: np.ndarray) -> None:
        kernel = integer_stats_kernel(values.nbytes) if measured_by_kernel(values.dtype) else None
        if kernel is None:
            self._add_integers_numpy(values)
            return
        minimum, maximum, total, total_sq = kernel(np.ascontiguousarray(values))
        self._fold_integers(minimum, maximum, total, total_sq, values.size)

    def _fold_integers(
        self, minimum: int, maximum: int, total: int, total_sq: int, count: int
    ) -> None:
        """Fold exact integer sums of ``count`` values (not shifted) into the accumulator."""
        self.minimum = float(min(self.minimum, minimum))
        self.maximum = float(max(self.maximum, maximum))
        shift = int(self.shift)
        self.total += total - shift * count
        self.total_sq += total_sq - 2 * shift * total + shift**2 * count

    def _add_integers_numpy(self, values: np.ndarray) -> None:
        # Integer sums are exact, so no shift is needed. 8-bit squares fit 16 bits;
        # wider types square in float64, exact below 2**53 (every 16-bit block),
        # within 1e-16 for 32-bit data.
        itemsize = values.dtype.itemsize
        block_size = _BLOCK
        if itemsize == 1:
            # 2**17 squares of int8 (each at most 2**14) sum below 2**32.
            block_size = _BLOCK // 2
            sum_type = np.int32
            square_type = np.int16 if values.dtype.kind == "i" else np.uint16
            square_sum_type = np.uint32 if values.dtype.kind == "i" else np.uint64
        else:
            sum_type = np.int64
            square_type = square_sum_type = np.float64
        buffer = np.empty(min(values.size, block_size), dtype=square_type)
        minimum, maximum = int(values[0]), int(values[0])
        total, total_sq = 0, 0
        for start in range(0, values.size, block_size):
            block = values[start : start + block_size]
            squares = buffer[: block.size]
            minimum = min(minimum, int(block.min()))
            maximum = max(maximum, int(block.max()))
            total += int(np.add.reduce(block, dtype=sum_type))
            if itemsize == 1:
                np.square(block, out=squares, dtype=square_type)
                total_sq += int(np.add.reduce(squares, dtype=square_sum_type))
            else:
                squares[...] = block
                total_sq += int(np.einsum("i,i->", squares, squares))
        self._fold_integers(minimum, maximum, total, total_sq, values.size)

    def _add_floats(self, values: np.ndarray) -> None:
        # Each block is read from memory once: the shifted copy, min, max and both sums
        # then come from cache. einsum rather than BLAS: no threads of its own.
        work_type = np.float32 if values.dtype == np.float32 else np.float64
        buffer = np.empty(min(values.size, _BLOCK), dtype=work_type)
        minimum, maximum = self.minimum, self.maximum
        total = 0.0
        total_sq = 0.0
        for start in range(0, values.size, _BLOCK):
            block = values[start : start + _BLOCK]
            shifted = buffer[: block.size]
            np.subtract(block, self.shift, out=shifted, dtype=work_type)
            # np.minimum, not min(): a NaN anywhere makes DMIN NaN, as numpy (and
            # mrcfile) say, whichever block it is in.
            minimum = np.minimum(minimum, block.min())
            maximum = np.maximum(maximum, block.max())
            total += float(np.add.reduce(shifted))
            total_sq += float(np.einsum("i,i->", shifted, shifted))
        self.minimum, self.maximum = float(minimum), float(maximum)
        self.total += total
        self.total_sq += total_sq

    def merge(self, other: SliceStats) -> None:
        """Fold another accumulator with the same shift into this one."""
        if other.shift != self.shift:
            raise ValueError("only accumulators with the same shift can be merged")
        self.count += other.count
        self.total += other.total
        self.total_imag += other.total_imag
        self.total_sq += other.total_sq
        self.minimum = float(np.minimum(self.minimum, other.minimum))
        self.maximum = float(np.maximum(self.maximum, other.maximum))
        self.is_complex = self.is_complex or other.is_complex

    @classmethod
    def from_header(
        cls, dmin: float, dmax: float, dmean: float, rms: float, count: int, shift: float | int = 0
    ) -> SliceStats | None:
        """Rebuild an accumulator from trusted header values, or None if they are unknown."""
        if count <= 0 or not all(stats_determined(dmin, dmax, dmean, rms).values()):
            return None
        stats = cls(shift)
        stats.count = count
        stats.minimum, stats.maximum = float(dmin), float(dmax)
        offset = float(dmean) - float(shift)
        stats.total = offset * count
        stats.total_sq = (float(rms) ** 2 + offset**2) * count
        return stats

    def header_values(self) -> tuple[float, float, float, float]:
        """Return (DMIN, DMAX, DMEAN, RMS) as MRC2014 stores them.

        An empty array reports MRC2014's "unknown" values (0, -1, -2, -1); a complex
        one reports only the RMS.
        """
        if self.count == 0:
            return UNKNOWN_STATS
        n = self.count
        if isinstance(self.total, int) and isinstance(self.total_sq, int):
            mean_offset = Fraction(self.total, n)
            variance = float(Fraction(self.total_sq, n) - mean_offset**2)
            mean = float(self.shift + mean_offset)
        else:
            mean_offset = self.total / n
            mean_imag = self.total_imag / n
            variance = self.total_sq / n - mean_offset**2 - mean_imag**2
            mean = self.shift + mean_offset
        rms = math.sqrt(max(variance, 0.0))
        if self.is_complex:
            return (*UNKNOWN_STATS[:3], rms)
        return self.minimum, self.maximum, mean, rms


def shift_for(frame: np.ndarray, dtype: np.dtype) -> float | int:
    """A value to subtract before summing data stored as ``dtype``.

    The first element of ``frame``, as ``dtype`` stores it, for float data; integer
    sums are exact, so integers (and complex data) need no shift: 0.
    """
    if frame.size == 0 or np.dtype(dtype).kind != "f":
        return 0
    first = float(np.asarray(frame.reshape(-1)[:1]).astype(dtype)[0])
    return first if math.isfinite(first) else 0.0
