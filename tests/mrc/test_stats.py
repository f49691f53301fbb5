"""Header statistics: exact, slice by slice, and as mrcfile computes them."""

import warnings

import mrcfile
import numpy as np
import pytest

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
