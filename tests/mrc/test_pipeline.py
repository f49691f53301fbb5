"""The encode pipeline's reuse of read buffers (napari_mrcz.mrc.pipeline.RecycledBlocks)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc import pipeline
from napari_mrcz.mrc.lazy import LazyMRC
from napari_mrcz.mrc.pipeline import RecycledBlocks


@pytest.mark.parametrize("borrowed", [0, 1])
def test_a_block_is_reused_only_once_no_slice_refers_to_it(monkeypatch, borrowed):
    """Also where calls take fewer references (CPython 3.14 borrows some): the pool
    measures the count of an unused block rather than assuming it."""
    monkeypatch.setattr(
        RecycledBlocks, "_count", staticmethod(lambda block: sys.getrefcount(block) - borrowed)
    )
    blocks = RecycledBlocks()
    first = blocks.take(lambda: np.zeros((2, 4, 4)))
    held = first[1]  # a slice still queued somewhere
    del first
    second = blocks.take(lambda: np.ones((2, 4, 4)))
    assert second[0, 0, 0] == 1  # a new block: the first is still in use
    del second
    assert blocks.take(lambda: np.full((2, 4, 4), 2.0))[0, 0, 0] == 1  # the second, free
    del held
    assert blocks.take(lambda: np.full((2, 4, 4), 2.0))[0, 0, 0] == 0  # the first, free


@pytest.mark.parametrize("source_codec", [None, "lz4"])
@pytest.mark.parametrize("target_codec", [None, "zstd"])
def test_slices_read_from_a_file_stay_intact_while_queued(
    tmp_path, rng, monkeypatch, source_codec, target_codec
):
    """Written from a file through a slow writer, so that slices wait in the queue while
    later runs are read: every slice arrives as it was, in few read buffers."""
    data = rng.integers(-128, 128, (40, 64, 48), dtype=np.int8)
    source = tmp_path / ("source.mrcz" if source_codec else "source.mrc")
    napari_mrcz.writeMRC(data, source, compressor=source_codec)
    taken: list[int] = []
    original_take = RecycledBlocks.take

    def recording_take(self, make):
        block = original_take(self, make)
        taken.append(id(block))
        return block

    original_write = pipeline.write_fully

    def slow_write(handle, payload):
        time.sleep(0.002)
        original_write(handle, payload)

    monkeypatch.setattr(RecycledBlocks, "take", recording_take)
    monkeypatch.setattr(pipeline, "write_fully", slow_write)
    target = tmp_path / ("copy.mrcz" if target_codec else "copy.mrc")
    with LazyMRC(source, cache_bytes=0) as lazy:
        napari_mrcz.writeMRC(lazy, target, compressor=target_codec, n_threads=2)
    np.testing.assert_array_equal(napari_mrcz.readMRC(target)[0], data)
    assert len(taken) == 20  # runs of 2 slices (2 threads)
    # Slices in flight: 2 encoding + 4 waiting to be written, 2 a run: a handful of
    # buffers, each used many times.
    assert len(set(taken)) <= 6


def test_read_slices_into_a_given_array(tmp_path, rng):
    data = rng.random((5, 6, 7), dtype=np.float32)
    napari_mrcz.writeMRC(data, tmp_path / "a.mrcz", compressor="zstd")
    with LazyMRC(tmp_path / "a.mrcz") as lazy:
        out = np.empty((3, 6, 7), dtype=np.float32)
        assert lazy.read_slices(1, 4, out=out) is out
        np.testing.assert_array_equal(out, data[1:4])
        for wrong in (
            np.empty((2, 6, 7), dtype=np.float32),
            np.empty((3, 6, 7), dtype=np.float64),
            np.empty((3, 7, 6), dtype=np.float32).transpose(0, 2, 1),
        ):
            with pytest.raises(ValueError, match="out must be"):
                lazy.read_slices(1, 4, out=wrong)
