"""The source grid an MRCZ copy keeps in its JSON meta (napari_mrcz.mrc.grid): the
record holds the header fields as mrcfile reads them, survives JSON, puts a header
back as it was, is asked for only when MRCZ would lose something, and a damaged one
is dropped, never used."""

import copy
import json
import logging

import mrcfile
import mrcz
import numpy as np
import pytest

from napari_mrcz.mrc.grid import (
    GRID_FIELDS,
    apply_grid,
    grid_of,
    needs_record,
    recorded_grid,
    stored_shape,
)
from napari_mrcz.mrc.header import new_header
from napari_mrcz.mrc.jsonmeta import GRID_KEY
from napari_mrcz.mrc.layout import read_layout

from tests.helpers import write_permuted_map


@pytest.fixture
def sampled_map(tmp_path, rng):
    """A permuted map (MAPC/MAPR/MAPS = 2, 1, 3) with start indices, written by mrcfile."""
    data = rng.normal(size=(4, 6, 8)).astype(np.float32)
    path = tmp_path / "permuted.map"
    write_permuted_map(path, data)
    with mrcfile.open(path, mode="r+") as mrc:
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = -4, 3, 7
    return path, data


def _grid_as_mrcfile_reads_it(path) -> dict:
    with mrcfile.open(path, header_only=True) as mrc:
        header = mrc.header
        grid = {name: int(header[name]) for name in GRID_FIELDS if name != "cella"}
        grid["cella"] = [float(value) for value in header.cella.tolist()]
    return grid


def test_grid_of_a_header_is_its_fields_as_mrcfile_reads_them(sampled_map):
    path, _ = sampled_map
    grid = grid_of(read_layout(path).header)
    assert grid == _grid_as_mrcfile_reads_it(path)
    assert all(type(grid[name]) is int for name in GRID_FIELDS if name != "cella")
    assert all(type(value) is float for value in grid["cella"])


def test_the_record_survives_json_and_is_taken_back(sampled_map):
    path, _ = sampled_map
    grid = grid_of(read_layout(path).header)
    meta = json.loads(json.dumps({"user": 1, GRID_KEY: grid}))
    assert recorded_grid(meta, "copy.mrcz") == grid
    assert meta == {"user": 1}  # the record is the format's: the user's meta is left


def test_stored_shape_is_the_shape_mrcfile_gives_the_data(sampled_map):
    path, data = sampled_map
    grid = grid_of(read_layout(path).header)
    assert stored_shape(grid) == data.shape == mrcfile.read(path).shape


def test_applying_a_record_gives_back_the_source_grid_and_nothing_else(tmp_path, sampled_map):
    path, data = sampled_map
    grid = grid_of(read_layout(path).header)
    header = new_header("<")
    header["mode"] = 2
    header["dmin"], header["dmax"], header["dmean"], header["rms"] = 1.0, 2.0, 1.5, 0.25
    header["origin"] = (5.0, 6.0, 7.0)
    before = header.copy()
    apply_grid(header, grid)
    assert grid_of(header) == grid
    for name in header.dtype.names:
        if name not in GRID_FIELDS:
            assert header[name].tobytes() == before[name].tobytes(), name
    copy_path = tmp_path / "restored.map"
    copy_path.write_bytes(header.tobytes() + data.tobytes())
    assert _grid_as_mrcfile_reads_it(copy_path) == _grid_as_mrcfile_reads_it(path)
    with mrcfile.open(copy_path) as mrc, mrcfile.open(path) as source:
        np.testing.assert_array_equal(mrc.data, data)
        assert mrc.voxel_size.tolist() == source.voxel_size.tolist()


@pytest.mark.parametrize("meta", [None, {}, {"other": 1}])
def test_meta_without_a_record_has_none(meta):
    before = copy.deepcopy(meta)
    assert recorded_grid(meta, "file.mrcz") is None
    assert meta == before


def _good_grid() -> dict:
    header = new_header("<")
    header["nx"], header["ny"], header["nz"] = 8, 6, 4
    header["mx"], header["my"], header["mz"] = 6, 8, 4
    header["cella"] = (6.0, 16.0, 12.0)
    header["mapc"], header["mapr"], header["maps"] = 2, 1, 3
    return grid_of(header)


def _without(name):
    def change(grid):
        del grid[name]

    return change


DAMAGE = {
    "not a dict": lambda grid: [1, 2, 3],
    "a field missing": _without("nzstart"),
    "a field too many": lambda grid: {**grid, "origin": [0.0, 0.0, 0.0]},
    "a float count": lambda grid: {**grid, "nx": 8.0},
    "a text count": lambda grid: {**grid, "mx": "6"},
    "a null count": lambda grid: {**grid, "ny": None},
    "cella of two": lambda grid: {**grid, "cella": [6.0, 16.0]},
    "cella not a list": lambda grid: {**grid, "cella": 6.0},
    "cella with text": lambda grid: {**grid, "cella": [6.0, "16", 12.0]},
    "axis order repeated": lambda grid: {**grid, "mapc": 1, "mapr": 1},
    "axis order out of range": lambda grid: {**grid, "maps": 4},
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_record_is_dropped_and_logged(caplog, damage):
    grid = _good_grid()
    damaged = damage(grid) or grid
    meta = json.loads(json.dumps({"user": "kept", GRID_KEY: damaged}))
    with caplog.at_level(logging.DEBUG, logger="napari_mrcz.mrc.grid"):
        assert recorded_grid(meta, "damaged.mrcz") is None
    assert meta == {"user": "kept"}
    assert "damaged.mrcz" in caplog.text
    assert GRID_KEY in caplog.text


def test_integer_cell_sizes_from_json_are_accepted():
    """JSON writes 12.0 as 12 in some writers: a number is a number."""
    grid = {**_good_grid(), "cella": [6, 16, 12]}
    assert recorded_grid({GRID_KEY: grid}, "copy.mrcz") == grid


# --------------------------------------------------------------------------- when to record


def test_an_mrcfile_map_in_standard_order_needs_no_record(tmp_path, rng):
    path = tmp_path / "standard.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(rng.normal(size=(3, 4, 5)).astype(np.float32))
        mrc.voxel_size = (1.0, 2.0, 3.0)
    assert not needs_record(grid_of(read_layout(path).header), frames=0)


def test_a_python_mrcz_file_needs_no_record(tmp_path, rng):
    """python-mrcz writes M = 0 (pixel size from N) and MZ = slices per frame."""
    frames = [rng.normal(size=(2, 4, 4)).astype(np.float32) for _ in range(3)]
    path = tmp_path / "frames.mrcz"
    mrcz.writeMRC(frames, str(path), compressor="zstd")
    layout = read_layout(path)
    assert layout.slices == 2
    assert not needs_record(grid_of(layout.header), frames=layout.slices)
    single = tmp_path / "single.mrc"
    mrcz.writeMRC(frames[0], str(single))
    assert not needs_record(grid_of(read_layout(single).header), frames=0)


def test_a_permuted_map_needs_a_record(sampled_map):
    path, _ = sampled_map
    assert needs_record(grid_of(read_layout(path).header), frames=0)


@pytest.mark.parametrize("axis", ["mx", "my", "mz"])
def test_a_sampling_other_than_the_counts_needs_a_record(tmp_path, rng, axis):
    """A map that is a part of a larger grid (M > N) keeps its M only in the record."""
    path = tmp_path / "part.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(rng.normal(size=(3, 4, 5)).astype(np.float32))
        mrc.voxel_size = 1.0
        mrc.header[axis] = 2 * int(mrc.header[axis])
    assert needs_record(grid_of(read_layout(path).header), frames=0)


def test_mz_of_a_file_of_frames_is_no_sampling_to_keep(tmp_path, rng):
    path = tmp_path / "stack.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(rng.normal(size=(6, 4, 4)).astype(np.float32))
        mrc.header.mz = 2  # slices per frame, as python-mrcz reads it
    grid = grid_of(read_layout(path).header)
    assert not needs_record(grid, frames=2)
    assert needs_record(grid, frames=0)
