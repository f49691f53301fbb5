"""The encode pipeline's reuse of read buffers (napari_mrcz.mrc.pipeline.RecycledBlocks)."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import napari_mrcz
from napari_mrcz import threads
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
    monkeypatch.setattr(threads, "TASK_BYTES", 2 * data[0].nbytes)  # tasks of 2 slices
    target = tmp_path / ("copy.mrcz" if target_codec else "copy.mrc")
    with LazyMRC(source, cache_bytes=0) as lazy:
        napari_mrcz.writeMRC(lazy, target, compressor=target_codec, n_threads=2)
    np.testing.assert_array_equal(napari_mrcz.readMRC(target)[0], data)
    assert len(taken) == 10  # blocks of 4 slices: a task of 2 for each of 2 threads
    # Runs in flight: 1-2 encoding + 4 waiting to be written, 2 slices a run: a
    # handful of buffers, each used several times.
    assert len(set(taken)) <= 5


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


@pytest.mark.parametrize("codec", [None, "zstd"])
def test_a_1000_slice_stack_takes_a_few_thread_tasks(tmp_path, rng, monkeypatch, codec):
    """Writing, reading and converting 1,000 small slices (64 KiB each) hands threads
    work in runs of a few MiB: a handful of tasks, not one or two per slice."""
    data = rng.normal(size=(1000, 128, 128)).astype(np.float32)
    submitted: list[str] = []
    original_submit = ThreadPoolExecutor.submit

    def counting_submit(self, function, /, *args, **kwargs):
        submitted.append(self._thread_name_prefix)
        return original_submit(self, function, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", counting_submit)
    runs = -(-data.nbytes // threads.TASK_BYTES)  # 16 runs of 4 MiB

    path = tmp_path / ("stack.mrcz" if codec else "stack.mrc")
    napari_mrcz.writeMRC(data, path, compressor=codec, n_threads=2)
    # one encoding and one writing task per run
    assert len(submitted) <= 2 * runs
    submitted.clear()
    np.testing.assert_array_equal(napari_mrcz.readMRC(path, n_threads=2)[0], data)
    assert len(submitted) <= runs
    submitted.clear()
    monkeypatch.setattr(threads, "_default_threads", 2)  # the lazy reader's threads
    with LazyMRC(path) as lazy:
        napari_mrcz.writeMRC(lazy, tmp_path / "copy.mrcz", compressor="lz4", n_threads=2)
    assert len(submitted) <= 3 * runs  # read, encoded and written a run at a time
    np.testing.assert_array_equal(napari_mrcz.readMRC(tmp_path / "copy.mrcz")[0], data)


@pytest.mark.parametrize("codec", [None, "zstd"])
def test_the_bytes_do_not_depend_on_runs_or_threads(tmp_path, rng, monkeypatch, codec):
    """One slice per task or runs of many, one thread or two: the same file, byte for
    byte (one blosc chunk per z-slice either way)."""
    data = rng.normal(size=(300, 32, 32)).astype(np.float32)
    files = []
    for task_bytes, n_threads in ((1, 1), (1, 2), (threads.TASK_BYTES, 2), (40 * 4096, 2)):
        monkeypatch.setattr(threads, "TASK_BYTES", task_bytes)
        path = tmp_path / f"{task_bytes}-{n_threads}.mrcz"
        napari_mrcz.writeMRC(data, path, compressor=codec, n_threads=n_threads)
        files.append(path.read_bytes())
    assert all(one == files[0] for one in files)
    monkeypatch.undo()
    np.testing.assert_array_equal(napari_mrcz.readMRC(path)[0], data)
