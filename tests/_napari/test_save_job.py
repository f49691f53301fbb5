"""The save panel's Qt-free model: what a save of a layer will cost before it starts."""

import dask.array as da
import numpy as np
import pytest

from napari_mrcz._napari import save_job


@pytest.mark.parametrize(
    ("dtype", "stored_bytes"),
    [
        (np.int8, 1),
        (np.bool_, 1),  # stored as int8
        (np.uint8, 2),  # stored as uint16
        (np.uint16, 2),
        (np.int32, 2),  # labels: the 16-bit type they usually fit
        (np.uint64, 2),
        (np.float32, None),  # numpy's statistics: no kernel to prepare
        (np.complex64, None),
    ],
)
def test_the_statistics_are_announced_as_the_data_will_be_stored(monkeypatch, dtype, stored_bytes):
    announced = []
    monkeypatch.setattr(save_job, "expect_bytes", announced.append)
    save_job.expect_statistics(np.zeros((2, 3, 4), dtype=dtype))
    assert announced == ([] if stored_bytes is None else [24 * stored_bytes])


def test_announcing_a_lazy_layer_reads_none_of_it(monkeypatch):
    computed = []

    def chunk(block):
        computed.append(block.shape)
        return block

    lazy = da.zeros((4, 64, 64), dtype=np.int8, chunks=(1, 64, 64)).map_blocks(chunk)
    computed.clear()  # dask's own probe of the function with empty blocks
    announced = []
    monkeypatch.setattr(save_job, "expect_bytes", announced.append)
    save_job.expect_statistics(lazy)
    assert announced == [4 * 64 * 64]
    assert computed == []
