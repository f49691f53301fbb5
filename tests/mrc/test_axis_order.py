"""A map's axis order (napari_mrcz.mrc.axis_order): the (z, y, x) layout of a map stored
in another order, and back to the source's. What a permuted map means is mrcfile's
reading of it (data in file order, voxel size and origin per crystal axis): the
standard-order header must describe the transposed data as a valid MRC2014 map with
the same voxels in the same places, and the source's layout must come back exactly."""

import dataclasses
import io
import itertools
import logging

import mrcfile
import numpy as np
import pytest

from napari_mrcz.mrc.axis_order import inverse_order, source_layout, standard_order_layout
from napari_mrcz.mrc.grid import GRID_FIELDS, grid_of
from napari_mrcz.mrc.layout import read_layout

from tests.helpers import write_permuted_map

#: Every MAPC, MAPR, MAPS.
PERMUTATIONS = list(itertools.permutations((1, 2, 3)))
VOXEL_XYZ = (1.5, 2.0, 3.25)
ORIGIN_XYZ = (10.0, -20.0, 30.0)


def write_map(path, volume_zyx, mapcrs, origin=ORIGIN_XYZ, starts=(0, 0, 0)):
    """Store the (z, y, x) ``volume_zyx`` with columns, rows and sections along the
    crystal axes ``mapcrs`` (MRC2014: 1 = x, 2 = y, 3 = z), with mrcfile.

    ``starts`` are NXSTART, NYSTART, NZSTART (of columns, rows and sections)."""
    mapc, mapr, maps = mapcrs
    stored = volume_zyx.transpose(3 - maps, 3 - mapr, 3 - mapc)
    counts_xyz = volume_zyx.shape[::-1]
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(stored))
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = mapcrs
        mrc.header.mx, mrc.header.my, mrc.header.mz = counts_xyz
        mrc.header.cella = tuple(n * v for n, v in zip(counts_xyz, VOXEL_XYZ, strict=True))
        mrc.header.origin = origin
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = starts
    return stored


def crystal_order(values_in_data_order, layout) -> list[float]:
    """Per-data-axis values of ``layout`` put in crystal order (x, y, z)."""
    out = [0.0, 0.0, 0.0]
    for data_axis, crystal in enumerate(layout.crystal_axes):
        out[crystal] = float(values_in_data_order[data_axis])
    return out


def write_standard(path, layout, volume_zyx):
    """A file of the standard-order layout's header and the data in (z, y, x)."""
    path.write_bytes(layout.header.tobytes() + np.ascontiguousarray(volume_zyx).tobytes())


@pytest.fixture
def volume(rng):
    """Distinct sizes along z, y and x, so that no transpose passes unnoticed."""
    return rng.normal(size=(4, 5, 6)).astype(np.float32)


# --------------------------------------------------------------------------- standard order


@pytest.mark.parametrize("mapcrs", PERMUTATIONS, ids=str)
def test_standard_order_describes_the_data_transposed_to_zyx(tmp_path, volume, mapcrs):
    path = tmp_path / "source.map"
    stored = write_map(path, volume, mapcrs)
    layout = read_layout(path)
    standard = standard_order_layout(layout)
    np.testing.assert_array_equal(np.transpose(mrcfile.read(path), layout.display_order), volume)
    assert standard.shape == volume.shape
    assert standard.mapcrs == (1, 2, 3)
    assert standard.slice_nbytes == volume[0].nbytes
    assert standard.source_grid == grid_of(layout.header)
    assert layout.shape == stored.shape  # the source's layout is left as it was
    with mrcfile.open(path) as mrc:
        voxel_zyx = mrc.voxel_size.tolist()[::-1]
    np.testing.assert_allclose(standard.pixelsize, voxel_zyx)


@pytest.mark.parametrize("mapcrs", PERMUTATIONS, ids=str)
def test_standard_order_header_is_a_valid_map_of_the_same_voxels(tmp_path, volume, mapcrs):
    """mrcfile reads the transposed data with the standard header as the same map:
    the same voxel size, origin and first voxel, all per crystal axis."""
    path = tmp_path / "source.map"
    write_map(path, volume, mapcrs, starts=(-3, 5, 7))
    standard = standard_order_layout(read_layout(path))
    copy = tmp_path / "standard.map"
    write_standard(copy, standard, volume)
    report = io.StringIO()
    assert mrcfile.validate(str(copy), print_file=report), report.getvalue()
    with mrcfile.open(path) as source, mrcfile.open(copy) as result:
        np.testing.assert_array_equal(result.data, volume)
        assert (result.header.mapc, result.header.mapr, result.header.maps) == (1, 2, 3)
        assert result.voxel_size.tolist() == source.voxel_size.tolist()
        assert result.header.origin.tolist() == source.header.origin.tolist()
        assert result.header.cella.tolist() == source.header.cella.tolist()
        # the start of each crystal axis, wherever that axis was stored
        start_of_crystal_axis = {
            int(source.header.mapc): int(source.header.nxstart),
            int(source.header.mapr): int(source.header.nystart),
            int(source.header.maps): int(source.header.nzstart),
        }
        assert (
            int(result.header.nxstart),
            int(result.header.nystart),
            int(result.header.nzstart),
        ) == (start_of_crystal_axis[1], start_of_crystal_axis[2], start_of_crystal_axis[3])


@pytest.mark.parametrize("origin", [ORIGIN_XYZ, (0.0, 0.0, 0.0)], ids=["origin", "starts"])
@pytest.mark.parametrize("mapcrs", PERMUTATIONS, ids=str)
def test_every_crystal_axis_keeps_its_origin(tmp_path, volume, mapcrs, origin):
    """With ORIGIN set, and without it (the origin then comes from NSTART)."""
    path = tmp_path / "source.map"
    write_map(path, volume, mapcrs, origin=origin, starts=(2, -4, 6))
    layout = read_layout(path)
    standard = standard_order_layout(layout)
    np.testing.assert_allclose(
        crystal_order(standard.origin, standard), crystal_order(layout.origin, layout)
    )
    np.testing.assert_allclose(
        crystal_order(standard.pixelsize, standard), crystal_order(layout.pixelsize, layout)
    )
    copy = tmp_path / "standard.map"
    write_standard(copy, standard, volume)
    reread = read_layout(copy)
    np.testing.assert_allclose(reread.origin, standard.origin)
    np.testing.assert_allclose(reread.pixelsize, standard.pixelsize)


def test_the_helpers_emdb_map_is_its_data_with_rows_and_columns_swapped(tmp_path, volume):
    """write_permuted_map: MAPC, MAPR, MAPS = 2, 1, 3, voxel 1, 2, 3 A along x, y, z."""
    path = tmp_path / "emdb.map"
    write_permuted_map(path, volume, origin=ORIGIN_XYZ)
    standard = standard_order_layout(read_layout(path))
    assert standard.shape == volume.transpose(0, 2, 1).shape
    np.testing.assert_allclose(standard.pixelsize, [3.0, 2.0, 1.0])
    copy = tmp_path / "standard.map"
    write_standard(copy, standard, volume.transpose(0, 2, 1))
    with mrcfile.open(copy) as result:
        np.testing.assert_array_equal(result.data, volume.transpose(0, 2, 1))
        assert result.voxel_size.tolist() == (1.0, 2.0, 3.0)


def test_a_single_image_is_transposed_in_its_plane(tmp_path, rng):
    image = rng.normal(size=(1, 5, 7)).astype(np.float32)
    path = tmp_path / "image.map"
    write_permuted_map(path, image)  # rows along x, columns along y
    layout = read_layout(path)
    standard = standard_order_layout(layout)
    assert standard.shape == (1, 7, 5)
    np.testing.assert_allclose(standard.pixelsize[1:], [2.0, 1.0])
    np.testing.assert_array_equal(
        np.transpose(image, layout.display_order), image.transpose(0, 2, 1)
    )


# --------------------------------------------------------------------------- back to the source


@pytest.mark.parametrize("mapcrs", PERMUTATIONS, ids=str)
def test_the_source_layout_comes_back_from_the_record(tmp_path, volume, mapcrs):
    path = tmp_path / "source.map"
    stored = write_map(path, volume, mapcrs, starts=(1, 2, 3))
    layout = read_layout(path)
    restored = source_layout(standard_order_layout(layout))
    assert restored.shape == layout.shape == stored.shape
    assert restored.mapcrs == layout.mapcrs
    assert restored.slice_nbytes == layout.slice_nbytes
    assert restored.source_grid is None
    assert grid_of(restored.header) == grid_of(layout.header)
    np.testing.assert_allclose(restored.pixelsize, layout.pixelsize)
    np.testing.assert_allclose(restored.origin, layout.origin)
    # the (z, y, x) data go back into the source's order by the inverse transpose
    back = np.transpose(volume, inverse_order(restored.display_order))
    np.testing.assert_array_equal(back, mrcfile.read(path))


def test_the_source_header_is_the_one_mrcfile_read(tmp_path, volume):
    path = tmp_path / "source.map"
    write_map(path, volume, (3, 1, 2), starts=(-2, 0, 9))
    restored = source_layout(standard_order_layout(read_layout(path)))
    copy = tmp_path / "restored.map"
    copy.write_bytes(restored.header.tobytes() + mrcfile.read(path).tobytes())
    with mrcfile.open(path) as source, mrcfile.open(copy) as result:
        for name in GRID_FIELDS:
            assert result.header[name].tobytes() == source.header[name].tobytes(), name
        np.testing.assert_array_equal(result.data, source.data)
        assert result.voxel_size.tolist() == source.voxel_size.tolist()


def test_a_layout_without_a_record_is_its_own_source(tmp_path, volume):
    path = tmp_path / "plain.mrc"
    write_map(path, volume, (1, 2, 3))
    layout = read_layout(path)
    assert layout.source_grid is None
    assert source_layout(layout) is layout


@pytest.mark.parametrize(
    "edit",
    [
        lambda standard: {"shape": (standard.shape[0] + 1, *standard.shape[1:])},
        lambda standard: {"mapcrs": (2, 1, 3)},
    ],
    ids=["frames appended since", "copy not in zyx order"],
)
def test_a_record_that_no_longer_fits_the_data_is_not_used(tmp_path, volume, caplog, edit):
    path = tmp_path / "source.map"
    write_map(path, volume, (2, 3, 1))
    standard = standard_order_layout(read_layout(path))
    edited = dataclasses.replace(standard, **edit(standard))
    with caplog.at_level(logging.DEBUG, logger="napari_mrcz.mrc.axis_order"):
        assert source_layout(edited) is edited
    assert "does not fit" in caplog.text


# --------------------------------------------------------------------------- inverse_order


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))), ids=str)
def test_inverse_order_undoes_the_transpose(rng, order):
    array = rng.normal(size=(2, 3, 4))
    inverse = inverse_order(order)
    np.testing.assert_array_equal(np.transpose(np.transpose(array, order), inverse), array)
    np.testing.assert_array_equal(np.transpose(np.transpose(array, inverse), order), array)
    assert type(inverse) is tuple
    assert all(type(axis) is int for axis in inverse)
