"""Exact header statistics (DMIN, DMAX, DMEAN, RMS), gathered one z-slice at a time."""

from __future__ import annotations

import math

import numpy as np


class SliceStats:
    """Accumulate min, max, mean and RMS deviation over the z-slices of one array.

    Integers of up to 16 bits are counted with a histogram (exact, one pass); floats
    use min, max, a float64 sum and a BLAS dot product. Complex data gets only the
    RMS, with min, max and mean left at MRC2014's "unknown" values, as mrcfile does.
    Slices must be in native byte order.
    """

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.total_imag = 0.0
        self.total_sq = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.is_complex = False

    def add(self, frame: np.ndarray) -> None:
        """Fold one slice (any shape, native byte order) into the statistics."""
        if frame.size == 0:
            return
        values = frame.reshape(-1)
        kind = values.dtype.kind
        if kind == "c":
            self.is_complex = True
            total = complex(values.sum(dtype=np.complex128))
            self.total += total.real
            self.total_imag += total.imag
            self.total_sq += float(np.vdot(values, values).real)
        elif kind in "iub" and values.dtype.itemsize <= 2:
            self._add_histogram(values)
        else:
            self.minimum = min(self.minimum, float(values.min()))
            self.maximum = max(self.maximum, float(values.max()))
            if kind != "f" or values.dtype.itemsize < 4:
                values = values.astype(np.float64)
            self.total += float(values.sum(dtype=np.float64))
            self.total_sq += float(np.dot(values, values))
        self.count += values.size

    def _add_histogram(self, values: np.ndarray) -> None:
        itemsize = values.dtype.itemsize
        codes = values.view(f"u{itemsize}") if values.dtype.kind != "b" else values.view("u1")
        counts = np.bincount(codes)
        present = np.flatnonzero(counts)
        numbers = present.astype(np.float64)
        if values.dtype.kind == "i":
            half = 2.0 ** (8 * itemsize - 1)
            numbers[numbers >= half] -= 2 * half
        weights = counts[present].astype(np.float64)
        self.minimum = min(self.minimum, float(numbers.min()))
        self.maximum = max(self.maximum, float(numbers.max()))
        self.total += float(np.dot(weights, numbers))
        self.total_sq += float(np.dot(weights, numbers * numbers))

    def merge(self, other: SliceStats) -> None:
        """Fold another accumulator into this one."""
        self.count += other.count
        self.total += other.total
        self.total_imag += other.total_imag
        self.total_sq += other.total_sq
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        self.is_complex = self.is_complex or other.is_complex

    @classmethod
    def from_header(cls, dmin: float, dmax: float, dmean: float, rms: float,
                    count: int) -> SliceStats | None:
        """Rebuild an accumulator from header values, or None if they are unknown."""
        if count <= 0 or rms < 0 or dmin > dmax:
            return None
        stats = cls()
        stats.count = count
        stats.minimum, stats.maximum = float(dmin), float(dmax)
        stats.total = float(dmean) * count
        stats.total_sq = (float(rms) ** 2 + float(dmean) ** 2) * count
        return stats

    def header_values(self) -> tuple[float, float, float, float]:
        """Return (DMIN, DMAX, DMEAN, RMS) as MRC2014 stores them.

        An empty array reports MRC2014's "unknown" values (0, -1, -2, -1); a complex
        one reports only the RMS.
        """
        if self.count == 0:
            return 0.0, -1.0, -2.0, -1.0
        mean = self.total / self.count
        mean_imag = self.total_imag / self.count
        variance = max(self.total_sq / self.count - mean * mean - mean_imag * mean_imag, 0.0)
        if self.is_complex:
            return 0.0, -1.0, -2.0, math.sqrt(variance)
        return self.minimum, self.maximum, mean, math.sqrt(variance)
