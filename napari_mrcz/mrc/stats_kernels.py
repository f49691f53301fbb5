"""Compiled statistics for 8- and 16-bit integer slices: one pass, near memory speed.

numpy needs several passes (min, max, the sum, the squares) to get exact integer
statistics: about 1-2 GB/s for int8 here. Two compiled loops over each cache-sized
block (the sums, then the extremes) read the data from memory once and vectorise
(6-9 GB/s, ``benchmarks/bench_stats.py``). Importing numba
and loading (or compiling) the kernels costs a process about a second of CPU, more
than numpy's statistics of a gigabyte: so the kernels are prepared, in a background
thread, only once a process has measured :data:`COMPILE_AFTER_BYTES` of 8- and
16-bit data, and no save waits for them. Until they are ready, and where numba is
missing, :mod:`napari_mrcz.mrc.stats` uses numpy. Both give the same, exact, integers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

logger = logging.getLogger(__name__)

#: The dtypes the kernel is compiled for.
KERNEL_DTYPES = (np.int8, np.uint8, np.int16, np.uint16)


def measured_by_kernel(dtype: np.dtype | type) -> bool:
    """True if values of ``dtype`` get their statistics from the kernel once it is ready.

    Booleans are measured as uint8, and data of either byte order in native order.
    """
    dtype = np.dtype(dtype)
    return dtype.kind == "b" or dtype.newbyteorder("=") in KERNEL_DTYPES


IntegerStats = Callable[[np.ndarray], tuple[int, int, int, int]]

#: Bytes of 8/16-bit data a process measures with numpy before it prepares the
#: kernels: about what numpy measures in the time preparing them takes (a short
#: ``mrcz`` run or a small save never pays for numba; a session or an archive does).
COMPILE_AFTER_BYTES = 2**30

_lock = threading.Lock()
_compiling: threading.Thread | None = None
_kernel: IntegerStats | None = None
_measured = 0


def integer_stats_kernel(nbytes: int = 0) -> IntegerStats | None:
    """The compiled ``kernel(values) -> (min, max, sum, sum of squares)``, or None.

    None until the kernel is ready. ``nbytes`` is the size of the data about to be
    measured: once a process has asked for :data:`COMPILE_AFTER_BYTES` in all, the
    kernel is prepared in the background. ``values`` is a 1D C-contiguous array of a
    type in :data:`KERNEL_DTYPES`; the results are exact Python-size integers.
    """
    global _measured
    if _kernel is not None:
        return _kernel
    with _lock:
        _measured += nbytes
        if _measured >= COMPILE_AFTER_BYTES:
            _start_preparing()
    return _kernel


def expect_bytes(nbytes: int) -> None:
    """Say that this process is about to measure ``nbytes`` of 8- and 16-bit data.

    A run that knows it will measure :data:`COMPILE_AFTER_BYTES` or more has the
    kernel prepared now, in the background, rather than after its first gigabyte.
    The bytes are not counted as measured.
    """
    if _kernel is None and nbytes >= COMPILE_AFTER_BYTES:
        with _lock:
            _start_preparing()


def _start_preparing() -> None:
    """Prepare the kernel in a background thread, unless that started already (lock held)."""
    global _compiling
    if _compiling is None:
        _compiling = threading.Thread(
            target=_compile, name="napari-mrcz-compile-stats", daemon=False
        )
        _compiling.start()


def wait_for_kernel(timeout: float | None = None) -> IntegerStats | None:
    """Start preparing the kernel now and wait for it; the kernel, or None without numba.

    For benchmarks and tests that want the compiled route from the first slice.
    """
    integer_stats_kernel(COMPILE_AFTER_BYTES)
    if _compiling is not None:
        _compiling.join(timeout)
    return _kernel


def _compile() -> None:
    global _kernel
    try:
        kernel = _build()
        for dtype in KERNEL_DTYPES:  # compile every signature now, not on a first save
            kernel(np.zeros(3, dtype=dtype))
    except Exception as error:  # no numba, or no compiler for this machine: numpy it is
        logger.debug("statistics kernels not compiled (%s): using numpy", error)
        return
    _kernel = kernel


def _build() -> IntegerStats:
    from napari_mrcz.mrc.stats_numba import integer_stats

    def kernel(values: np.ndarray) -> tuple[int, int, int, int]:
        low, high, total, total_sq = integer_stats(values)
        return int(low), int(high), int(total), int(total_sq)

    return kernel
