"""The compiled statistics of 8- and 16-bit data, and when they are prepared.

The kernel's (min, max, sum, sum of squares) must be exact integers: the mean and
standard deviation they give are numpy's float64 results, at every block boundary
and for data far from zero, where float32 sums lose the variance. Until the kernel is
prepared (once a process has measured a gigabyte) and where numba is missing, the
lookup answers None, so numpy measures instead.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction

import numpy as np
import pytest

from napari_mrcz.mrc import stats_kernels

#: Elements per block of the compiled loop (see napari_mrcz.mrc.stats_numba).
BLOCK = {1: 2**15, 2: 2**14}


@pytest.fixture(scope="module")
def kernel():
    compiled = stats_kernels.wait_for_kernel(timeout=120)
    if compiled is None:
        pytest.skip("numba is not installed here")
    return compiled


def sizes(dtype) -> list[int]:
    """Lengths around the block size of ``dtype``, where one block hands over to the next."""
    block = BLOCK[np.dtype(dtype).itemsize]
    return [1, 2, block - 1, block, block + 1, 3 * block + 7]


def exact_std(count: int, total: int, total_sq: int) -> float:
    """The population standard deviation from exact sums, rounded once."""
    variance = Fraction(count * total_sq - total * total, count * count)
    return math.sqrt(variance)


@pytest.mark.parametrize("dtype", stats_kernels.KERNEL_DTYPES, ids=lambda d: np.dtype(d).name)
def test_kernel_sums_give_numpys_float64_mean_and_std(kernel, rng, dtype):
    info = np.iinfo(dtype)
    for size in sizes(dtype):
        values = rng.integers(info.min, info.max, size=size, endpoint=True).astype(dtype)
        low, high, total, total_sq = kernel(values)
        wide = values.astype(np.float64)
        assert (low, high) == (wide.min(), wide.max())
        assert total == int(values.sum(dtype=np.int64))
        assert total / size == wide.mean()  # an exact sum: the same float64 division
        np.testing.assert_allclose(exact_std(size, total, total_sq), wide.std(), rtol=1e-13)


@pytest.mark.parametrize("dtype", stats_kernels.KERNEL_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("extreme", ["min", "max"])
def test_blocks_of_the_extreme_value_sum_exactly(kernel, dtype, extreme):
    """Whole blocks of the largest square (255**2, -128**2, ...) stay exact in the block sums."""
    value = int(getattr(np.iinfo(dtype), extreme))
    size = 3 * BLOCK[np.dtype(dtype).itemsize] + 5
    low, high, total, total_sq = kernel(np.full(size, value, dtype=dtype))
    assert (low, high, total, total_sq) == (value, value, value * size, value * value * size)


@pytest.mark.parametrize(
    ("dtype", "level"),
    [(np.uint16, 65_000), (np.int16, -32_000), (np.uint8, 250), (np.int8, -120)],
    ids=["uint16", "int16", "uint8", "int8"],
)
def test_a_small_spread_far_from_zero_keeps_its_variance(kernel, rng, dtype, level):
    """Values near the end of their range vary by one or two: the mean square and the
    squared mean nearly cancel, and only exact sums give numpy's two-pass float64 std."""
    values = (level + rng.integers(-2, 3, size=3 * BLOCK[np.dtype(dtype).itemsize] + 5)).astype(
        dtype
    )
    low, high, total, total_sq = kernel(values)
    wide = values.astype(np.float64)
    assert (low, high) == (level - 2, level + 2)
    assert total / values.size == wide.mean()
    np.testing.assert_allclose(exact_std(values.size, total, total_sq), wide.std(), rtol=1e-12)


def test_kernel_results_are_python_integers(kernel, rng):
    """Python integers: the sums of squares of many slices never wrap around."""
    for dtype in stats_kernels.KERNEL_DTYPES:
        results = kernel(rng.integers(0, 100, size=1000).astype(dtype))
        assert [type(value) for value in results] == [int, int, int, int]


def test_once_prepared_the_kernel_is_handed_out_without_counting(kernel, monkeypatch):
    monkeypatch.setattr(stats_kernels, "_measured", 0)

    def no_second_preparation():
        raise AssertionError("the kernel was prepared again")

    monkeypatch.setattr(stats_kernels, "_start_preparing", no_second_preparation)
    assert stats_kernels.integer_stats_kernel(10 * stats_kernels.COMPILE_AFTER_BYTES) is kernel
    stats_kernels.expect_bytes(10 * stats_kernels.COMPILE_AFTER_BYTES)
    assert stats_kernels._measured == 0


def test_bytes_measured_add_up_to_the_point_of_preparing_the_kernel(monkeypatch):
    """Small saves never pay for numba; the save that crosses a gigabyte in all starts it."""
    started = []
    monkeypatch.setattr(stats_kernels, "_kernel", None)
    monkeypatch.setattr(stats_kernels, "_measured", 0)
    monkeypatch.setattr(stats_kernels, "_start_preparing", lambda: started.append(True))
    limit = stats_kernels.COMPILE_AFTER_BYTES

    for _ in range(3):
        assert stats_kernels.integer_stats_kernel(limit // 4) is None
    assert not started
    assert stats_kernels.integer_stats_kernel(limit // 4) is None  # not ready yet either
    assert started == [True]
    assert stats_kernels._measured == limit


def test_without_numba_the_lookup_answers_none(monkeypatch, caplog):
    def no_numba():
        raise ImportError("No module named 'numba'")

    monkeypatch.setattr(stats_kernels, "_kernel", None)
    monkeypatch.setattr(stats_kernels, "_compiling", None)
    monkeypatch.setattr(stats_kernels, "_measured", 0)
    monkeypatch.setattr(stats_kernels, "_build", no_numba)
    with caplog.at_level(logging.DEBUG, logger=stats_kernels.__name__):
        assert stats_kernels.wait_for_kernel(timeout=60) is None
    assert stats_kernels.integer_stats_kernel(stats_kernels.COMPILE_AFTER_BYTES) is None
    assert "using numpy" in caplog.text
