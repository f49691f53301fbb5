"""A pickled LazyDMArray (as dask sends it to workers) reads the real file like ncempy."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from napari_mrcz import read_dm

from tests.helpers import SHARED_DATA

ncempy_dm = pytest.importorskip("ncempy.io.dm")

STACK = "dm4/openncem_dmTest_3D_int16_64_65_66.dm4"


@pytest.mark.skipif(SHARED_DATA is None, reason="the shared real-file folder is absent")
def test_a_pickled_dm_stack_reads_its_frames_from_anywhere(tmp_path, monkeypatch):
    shutil.copy(SHARED_DATA / STACK, tmp_path / "stack.dm4")
    expected = ncempy_dm.dmReader(str(tmp_path / "stack.dm4"))["data"]
    monkeypatch.chdir(tmp_path)
    lazy = read_dm("stack.dm4", lazy=True)[0][0]
    pickled = pickle.dumps(lazy)
    assert len(pickled) < lazy.nbytes // 4  # where the image lies and its tags, no pixels
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    copy = pickle.loads(pickled)
    assert copy.path == str(tmp_path / "stack.dm4")
    assert copy.shape == expected.shape
    np.testing.assert_array_equal(copy[7], expected[7])
    np.testing.assert_array_equal(copy[3:9], expected[3:9])
