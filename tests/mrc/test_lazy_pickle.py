"""Pickled LazyMRC and LazyStack: the file's name and header travel, never its data.

dask sends these objects to workers in other processes (and its scheduler unpickles
them without reading anything), so a pickled copy must open its file only where it is
first read, under an absolute name, and refuse a file that changed meanwhile. Files
are written by mrcfile and python-mrcz, the references.
"""

from __future__ import annotations

import gzip
import pickle
import shutil

import mrcfile
import mrcz
import numpy as np
import pytest

from napari_mrcz import LazyMRC, MRCZFormatError
from napari_mrcz.mrc.stack import open_stack

SHAPE = (8, 96, 128)


def write(path, data, kind):
    """``data`` as a plain MRC (mrcfile), an MRCZ (python-mrcz) or a gzipped MRC."""
    if kind == "mrcz":
        mrcz.writeMRC(data, str(path), compressor="zstd", clevel=1)
    elif kind == "mrc.gz":
        plain = path.with_suffix("")
        mrcfile.write(plain, data, overwrite=True)
        with open(plain, "rb") as source, gzip.open(path, "wb") as target:
            shutil.copyfileobj(source, target)
        plain.unlink()
    else:
        mrcfile.write(path, data, overwrite=True)
    return path


@pytest.fixture
def data(rng):
    return rng.integers(-500, 500, size=SHAPE, dtype=np.int16)


@pytest.mark.parametrize("kind", ["mrc", "mrcz", "mrc.gz"])
def test_a_pickled_copy_reads_like_the_file(tmp_path, data, kind):
    path = write(tmp_path / f"a.{kind}", data, kind)
    with LazyMRC(path) as lazy:
        pickled = pickle.dumps(lazy)
    # The original is closed (a .gz's temporary copy deleted): the copy opens its own.
    assert len(pickled) < 4096 < data.nbytes  # a name, a header, a chunk index
    with pickle.loads(pickled) as copy:
        assert copy.shape == data.shape
        assert copy.dtype == data.dtype
        assert copy.path == str(path)
        np.testing.assert_array_equal(copy[3], data[3])
        np.testing.assert_array_equal(copy.read_slices(2, 5), data[2:5])
        np.testing.assert_array_equal(np.asarray(copy), data)


def test_unpickling_opens_nothing_until_a_read(tmp_path, data):
    path = write(tmp_path / "a.mrcz", data, "mrcz")
    with LazyMRC(path) as lazy:
        pickled = pickle.dumps(lazy)
    moved = path.rename(tmp_path / "away.mrcz")
    copy = pickle.loads(pickled)  # as dask's scheduler does: the file need not be there
    assert copy.shape == data.shape
    moved.rename(path)
    with copy:
        np.testing.assert_array_equal(copy[-1], data[-1])


def test_the_copy_finds_the_file_from_another_working_directory(tmp_path, data, monkeypatch):
    write(tmp_path / "a.mrc", data, "mrc")
    monkeypatch.chdir(tmp_path)
    with LazyMRC("a.mrc") as lazy:
        pickled = pickle.dumps(lazy)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pickle.loads(pickled) as copy:
        assert copy.path == str(tmp_path / "a.mrc")
        np.testing.assert_array_equal(copy[1], data[1])


@pytest.mark.parametrize("kind", ["mrc", "mrcz"])
def test_a_file_changed_after_pickling_is_refused(tmp_path, data, kind):
    path = write(tmp_path / f"a.{kind}", data, kind)
    with LazyMRC(path) as lazy:
        pickled = pickle.dumps(lazy)
    write(path, data[:5], kind)  # rewritten meanwhile, shorter
    with pickle.loads(pickled) as copy, pytest.raises(MRCZFormatError, match="changed") as caught:
        copy[0]
    assert caught.value.path == str(path)


def test_the_copy_reads_a_slice_without_walking_the_chunk_index(tmp_path, data):
    """A worker's read of one slice costs what a local lazy read costs: the pickle
    carries the MRCZ chunk index, so only that slice's blosc chunk is touched."""
    path = write(tmp_path / "a.mrcz", data, "mrcz")
    with LazyMRC(path) as lazy:
        pickled = pickle.dumps(lazy)
        first_chunk = lazy.layout.data_offset
    with open(path, "r+b") as handle:  # chunk 0's sizes zeroed (its format byte kept)
        handle.seek(first_chunk + 4)
        handle.write(bytes(12))
    with pytest.raises(MRCZFormatError):
        LazyMRC(path)  # opening walks every chunk header
    with pickle.loads(pickled) as copy:
        np.testing.assert_array_equal(copy[5], data[5])
        with pytest.raises(MRCZFormatError, match="chunk 0"):
            copy[0]


def test_a_pickled_stack_reads_like_its_files(tmp_path, data):
    paths = [write(tmp_path / "a.mrc", data, "mrc"), write(tmp_path / "b.mrcz", -data, "mrcz")]
    with open_stack(paths) as stack:
        pickled = pickle.dumps(stack)
    with pickle.loads(pickled) as copy:
        assert copy.shape == (2, *SHAPE)
        np.testing.assert_array_equal(copy[1, 4], -data[4])
        np.testing.assert_array_equal(np.asarray(copy), np.stack([data, -data]))
