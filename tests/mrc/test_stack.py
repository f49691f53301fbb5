"""The engine's stack of MRC files (:func:`~napari_mrcz.mrc.stack.open_stack`): one
array with a leading file axis, that reads only the files an index asks for.

File > Open Files as Stack through the napari reader is tested in
tests/_napari/test_reader_stacks.py.
"""

import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.stack import LazyStack, open_stack


@pytest.fixture
def files(tmp_path, rng):
    """Three (4, 6, 8) float32 volumes, the second of them MRCZ-compressed."""
    volumes = [rng.normal(i, 1, size=(4, 6, 8)).astype(np.float32) for i in range(3)]
    paths = []
    for number, data in enumerate(volumes):
        path = tmp_path / f"vol{number}.mrc"
        napari_mrcz.writeMRC(
            data, path, pixelsize=[2.0, 1.5, 1.0], compressor="zstd" if number == 1 else None
        )
        paths.append(path)
    return np.stack(volumes), paths


def test_lazy_stack_indexing_errors(files):
    _, paths = files
    with open_stack(paths) as stack:
        with pytest.raises(IndexError):
            stack[3]
        with pytest.raises(IndexError):
            stack[0, 0, 0, 0, 0]
        assert len(stack) == 3
        assert stack.paths == [str(path) for path in paths]


def test_file_axis_slices_read_only_those_files(tmp_path, rng, monkeypatch):
    """stack[1:3] and stack[0-d array, k] never build the whole stack."""
    volumes = [rng.normal(size=(2, 3, 4)).astype(np.float32) for _ in range(4)]
    paths = []
    for number, volume in enumerate(volumes):
        path = tmp_path / f"v{number}.mrc"
        napari_mrcz.writeMRC(volume, path)
        paths.append(str(path))

    def whole(*args, **kwargs):
        raise AssertionError("the whole stack was read")

    monkeypatch.setattr(LazyStack, "__array__", whole)
    with open_stack(paths) as stack:
        np.testing.assert_array_equal(stack[1:3], np.stack(volumes[1:3]))
        np.testing.assert_array_equal(stack[np.array(0), 1], volumes[0][1])
