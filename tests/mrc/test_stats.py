"""Header statistics: exact, slice by slice, and as mrcfile computes them."""

import subprocess
import sys
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from napari_mrcz.mrc import stats, stats_kernels
from napari_mrcz.mrc.stats import SliceStats, shift_for


def mrcfile_stats(data, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns about NaN in reductions
        with mrcfile.new(path, overwrite=True) as handle:
            handle.set_data(data)
        with mrcfile.open(path) as handle:
            header = handle.header
            return [float(header[name]) for name in ("dmin", "dmax", "dmean", "rms")]


def slice_by_slice(data):
    stats = SliceStats(shift_for(data[0], data.dtype))
    for frame in data:
        stats.add(frame)
    return list(stats.header_values())


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.float32])
def test_matches_mrcfile(tmp_path, rng, dtype):
    data = (rng.normal(size=(5, 16, 24)) * 20 + 40).astype(dtype)
    np.testing.assert_allclose(
        slice_by_slice(data), mrcfile_stats(data, tmp_path / "m.mrc"), rtol=1e-5
    )


@pytest.mark.parametrize("where", [(0, 0, 0), (3, 2, 1), (4, 15, 23)])
def test_nan_anywhere_makes_every_statistic_nan(tmp_path, where):
    """As numpy and mrcfile: a NaN in any slice, not only in the first one seen."""
    data = np.arange(5 * 16 * 24, dtype=np.float32).reshape(5, 16, 24)
    data[where] = np.nan
    ours = slice_by_slice(data)
    assert np.isnan(ours).all()
    assert np.isnan(mrcfile_stats(data, tmp_path / "m.mrc")).all()


def test_merged_accumulators_keep_a_nan():
    first, second = SliceStats(0.0), SliceStats(0.0)
    first.add(np.array([1.0, 2.0], dtype=np.float32))
    second.add(np.array([np.nan, 3.0], dtype=np.float32))
    first.merge(second)
    assert np.isnan(first.minimum)
    assert np.isnan(first.maximum)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
def test_compiled_kernel_is_exact_at_the_type_limits(rng, dtype):
    """Blocks full of the extreme values are where int32/int64 accumulators overflow."""
    kernel = stats_kernels.wait_for_kernel(timeout=120)
    if kernel is None:
        pytest.skip("numba is not installed here")
    info = np.iinfo(dtype)
    for values in (
        np.full(3 * 2**16 + 5, info.max, dtype=dtype),
        np.full(3 * 2**16 + 5, info.min, dtype=dtype),
        rng.integers(info.min, info.max, size=2**18 + 3, endpoint=True).astype(dtype),
    ):
        exact = [int(value) for value in values.tolist()]  # Python integers: no overflow
        assert kernel(values) == (
            min(exact),
            max(exact),
            sum(exact),
            sum(value * value for value in exact),
        )


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.bool_])
def test_compiled_and_numpy_routes_give_the_same_header(rng, monkeypatch, dtype):
    data = (rng.normal(size=(4, 64, 48)) * 30 + 60).clip(0, 120).astype(dtype)
    if stats_kernels.wait_for_kernel(timeout=120) is None:
        pytest.skip("numba is not installed here")
    compiled = slice_by_slice(data)
    monkeypatch.setattr(stats, "integer_stats_kernel", lambda nbytes=0: None)
    assert slice_by_slice(data) == compiled


def test_a_small_save_never_loads_numba(tmp_path):
    """Preparing the kernel costs a process about a second: not for a small save."""
    code = (
        "import sys, numpy as np, napari_mrcz\n"
        "from napari_mrcz.mrc import stats_kernels\n"
        "data = np.zeros((4, 256, 256), dtype=np.int8)\n"
        f"napari_mrcz.writeMRC(data, {str(tmp_path / 'small.mrcz')!r}, compressor='zstd')\n"
        "print('numba' in sys.modules, stats_kernels._compiling is not None)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["False", "False"]


def test_the_compiled_kernel_is_loaded_from_numba_s_cache_not_compiled_again():
    """Kernels defined inside a function were compiled anew, and cached anew, by every
    process: a second of CPU each time and a cache folder growing without end."""
    if stats_kernels.wait_for_kernel(timeout=120) is None:
        pytest.skip("numba is not installed here")
    cache = Path(stats_kernels.__file__).parent / "__pycache__"
    before = sorted(path.name for path in cache.glob("stats_numba.*"))
    code = "from napari_mrcz.mrc import stats_kernels\nstats_kernels.wait_for_kernel()\n"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert before  # this process compiled or loaded them: they are cached
    assert sorted(path.name for path in cache.glob("stats_numba.*")) == before


def test_a_run_expecting_a_gigabyte_prepares_the_kernel_at_once_a_smaller_one_never():
    code = (
        "import sys\n"
        "from napari_mrcz.mrc import stats_kernels\n"
        "stats_kernels.expect_bytes(stats_kernels.COMPILE_AFTER_BYTES - 1)\n"
        "print(stats_kernels._compiling is not None, stats_kernels._measured)\n"
        "stats_kernels.expect_bytes(stats_kernels.COMPILE_AFTER_BYTES)\n"
        "print(stats_kernels._compiling is not None, stats_kernels._measured)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    # Expected bytes start the preparation; they are not counted as measured.
    assert result.stdout.split() == ["False", "0", "True", "0"]


@pytest.mark.parametrize(
    ("dtype", "by_kernel"),
    [
        ("i1", True),
        ("u1", True),
        ("?", True),
        (">i2", True),
        ("<u2", True),
        ("i4", False),
        ("f4", False),
        (">f4", False),
        ("c8", False),
    ],
)
def test_one_rule_says_which_data_the_kernel_measures(dtype, by_kernel):
    # The engine's statistics, the mrcz run's announcement and the save panel's all ask it.
    assert stats_kernels.measured_by_kernel(dtype) is by_kernel
