"""From a napari layer to what its saved MRC header holds (napari_mrcz._napari.layers).

What these tests protect: a layer's scale, units and translate become the pixel size
(in Angstrom) and origin that mrcfile and python-mrcz read back; a file opened and
saved again keeps its pixel size, position, microscope values and JSON meta, but not
the reader's own bookkeeping; axes that are not lengths (1/nm, eV) are kept in the
JSON meta rather than saved as Angstrom; layers MRC cannot hold are refused with a
reason. Layers are real napari layers (no viewer), saved through the npe2 writers.
"""

import io
import warnings

import mrcfile
import mrcz
import npe2
import numpy as np
import pint
import pytest
from napari.layers import Image

import napari_mrcz
from napari_mrcz._napari import writer as napari_writer
from napari_mrcz._napari.layers import (
    check_savable,
    header_geometry,
    json_meta,
    layer_axes,
    layer_calibration,
    microscope_values,
    unit_label,
)
from napari_mrcz._napari.reader import read_layers
from napari_mrcz.errors import MRCZWarning
from napari_mrcz.mrc.jsonmeta import DM_TAGS_KEY, NON_LENGTH_AXES_KEY

UREG = pint.get_application_registry()


@pytest.fixture(scope="module", autouse=True)
def _discover_plugins():
    npe2.PluginManager.instance().discover()


@pytest.fixture(autouse=True)
def _default_writer_settings(monkeypatch):
    """The built-in writer settings, whatever napari's saved preferences say."""
    monkeypatch.setattr(
        napari_writer, "writer_settings", lambda: dict(napari_writer.DEFAULT_SETTINGS)
    )


def save(layer, path):
    """Save ``layer`` as napari's File > Save Selected Layers does (through npe2)."""
    [written] = npe2.write(str(path), [layer.as_layer_data_tuple()], plugin_name="napari-mrcz")
    return written


def mrcfile_geometry(path):
    """(voxel size x, y, z; origin x, y, z; nxstart, nystart, nzstart) as mrcfile reads them."""
    with mrcfile.open(path) as mrc:
        voxel = [float(mrc.voxel_size[axis]) for axis in "xyz"]
        origin = [float(mrc.header.origin[axis]) for axis in "xyz"]
        start = [int(mrc.header[f"n{axis}start"]) for axis in "xyz"]
    return voxel, origin, start


def assert_valid(path):
    """mrcfile.validate accepts ``path`` (its report is the failure message)."""
    report = io.StringIO()
    assert mrcfile.validate(str(path), print_file=report), report.getvalue()


def test_a_layer_at_2_angstrom_saves_at_2_angstrom(tmp_path, rng):
    """No units given (napari's 'pixel'): the scale is Angstrom, as in EM software."""
    layer = Image(rng.normal(size=(3, 4, 5)).astype(np.float32), scale=(2.0, 2.0, 2.0))
    written = save(layer, tmp_path / "map.mrc")
    assert_valid(written)
    voxel, origin, _ = mrcfile_geometry(written)
    assert voxel == pytest.approx([2.0, 2.0, 2.0])
    assert origin == [0.0, 0.0, 0.0]


def test_lengths_in_other_units_are_saved_in_angstrom(tmp_path, rng):
    layer = Image(
        rng.normal(size=(3, 4, 5)).astype(np.float32),
        scale=(0.001, 0.5, 2.0),
        units=("um", "nm", "angstrom"),
    )
    written = save(layer, tmp_path / "mixed.mrc")
    voxel, _, _ = mrcfile_geometry(written)
    assert voxel == pytest.approx([2.0, 5.0, 10.0])  # x, y, z


def test_translate_becomes_the_origin_in_angstrom(tmp_path, rng):
    layer = Image(
        rng.normal(size=(3, 4, 5)).astype(np.float32),
        scale=(0.2, 0.2, 0.2),
        units="nm",
        translate=(1.0, 2.0, 3.0),
    )
    written = save(layer, tmp_path / "placed.mrc")
    voxel, origin, start = mrcfile_geometry(written)
    assert voxel == pytest.approx([2.0, 2.0, 2.0])
    assert origin == pytest.approx([30.0, 20.0, 10.0])  # x, y, z
    assert start == [0, 0, 0]


def test_an_image_gets_its_y_pixel_size_along_z(tmp_path, rng):
    """MRC needs a z pixel size even for one image; the y one is the natural choice."""
    layer = Image(rng.normal(size=(4, 5)).astype(np.float32), scale=(2.0, 3.0))
    written = save(layer, tmp_path / "image.mrc")
    assert_valid(written)
    voxel, _, _ = mrcfile_geometry(written)
    assert voxel == pytest.approx([3.0, 2.0, 2.0])


def test_a_compressed_save_has_the_pixel_size_python_mrcz_reads(tmp_path, rng):
    data = rng.normal(size=(3, 4, 5)).astype(np.float32)
    layer = Image(data, scale=(0.3, 0.2, 0.1), units="nm")
    written = save(layer, tmp_path / "map.mrcz")
    image, meta = mrcz.readMRC(written)
    np.testing.assert_array_equal(image, data)
    np.testing.assert_allclose(meta["pixelsize"], [3.0, 2.0, 1.0], rtol=1e-6)
    assert meta["compressor"] == "zstd"


def test_opening_and_saving_keeps_pixel_size_position_and_json_meta(tmp_path, rng):
    """File > Open, File > Save: the saved file is placed and calibrated as the source,
    its JSON meta carried over, the reader's bookkeeping (path, header) left out."""
    data = rng.normal(size=(3, 4, 5)).astype(np.float32)
    source = tmp_path / "source.mrcz"
    napari_mrcz.writeMRC(
        data, source, pixelsize=[1.5, 1.2, 1.1], compressor="zstd", meta={"dose": 1.5}
    )
    with mrcfile.new(tmp_path / "plain.mrc") as mrc:  # an origin, as in EMDB maps
        mrc.set_data(data)
        mrc.voxel_size = (1.1, 1.2, 1.5)
        mrc.header.origin = (10.0, 20.0, 30.0)
    [(layer_data, kwargs, _)] = read_layers(str(source))
    written = save(Image(layer_data, **kwargs), tmp_path / "copy.mrcz")
    image, meta = mrcz.readMRC(written)
    np.testing.assert_array_equal(image, data)
    np.testing.assert_allclose(meta["pixelsize"], [1.5, 1.2, 1.1], rtol=1e-6)
    assert meta["dose"] == 1.5
    for bookkeeping in ("path", "format", "header", "json_meta", "formalities_missed"):
        assert bookkeeping not in meta
    [(layer_data, kwargs, _)] = read_layers(str(tmp_path / "plain.mrc"))
    written = save(Image(layer_data, **kwargs), tmp_path / "copy.mrc")
    assert_valid(written)
    voxel, origin, _ = mrcfile_geometry(written)
    assert voxel == pytest.approx([1.1, 1.2, 1.5])
    assert origin == pytest.approx([10.0, 20.0, 30.0])


def test_a_map_placed_by_nstart_keeps_its_position(tmp_path, rng):
    """NXSTART... and no ORIGIN (IMOD, CCP4): saved again, the first voxel is where it
    was (ORIGIN + NSTART x voxel size), now as an ORIGIN."""
    with mrcfile.new(tmp_path / "nstart.mrc") as mrc:
        mrc.set_data(rng.normal(size=(3, 4, 5)).astype(np.float32))
        mrc.voxel_size = 2.0
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = 1, 2, 3
    [(layer_data, kwargs, _)] = read_layers(str(tmp_path / "nstart.mrc"))
    written = save(Image(layer_data, **kwargs), tmp_path / "copy.mrc")
    voxel, origin, start = mrcfile_geometry(written)
    position = [o + n * v for o, n, v in zip(origin, start, voxel, strict=True)]
    assert position == pytest.approx([2.0, 4.0, 6.0])


def test_an_fft_in_reciprocal_nm_comes_back_in_reciprocal_nm(tmp_path):
    """Saved with pixel size 0 (with one warning) and its calibration in the JSON meta;
    opened again, the layer has its 1/nm scale, offset and unit back."""
    layer = Image(
        np.ones((4, 6), np.float32),
        scale=(0.081, 0.081),
        units=("1/nm", "1/nm"),
        translate=(0.0, 1.5),
        name="fft",
    )
    with pytest.warns(napari_mrcz.MRCZWarning, match=r"fft: y in 1/nm, x in 1/nm is not a"):
        written = save(layer, tmp_path / "fft.mrcz")
    _, meta = mrcz.readMRC(written)
    assert meta["pixelsize"] == pytest.approx([0.0, 0.0, 0.0])
    assert set(meta[NON_LENGTH_AXES_KEY]) == {"y", "x"}
    [(layer_data, kwargs, _)] = read_layers(written)
    reopened = Image(layer_data, **kwargs)
    np.testing.assert_allclose(reopened.scale, [0.081, 0.081])
    np.testing.assert_allclose(reopened.translate, [0.0, 1.5])
    assert reopened.units == (UREG("1/nm").units,) * 2


def test_microscope_values_of_a_file_survive_a_save(tmp_path, rng):
    """Voltage, Cs and gain in the header of the source are in the header of the copy."""
    source = tmp_path / "movie.mrc"
    napari_mrcz.writeMRC(
        rng.normal(size=(2, 4, 4)).astype(np.float32), source, voltage=300.0, C3=2.7, gain=1.5
    )
    [(layer_data, kwargs, _)] = read_layers(str(source))
    assert microscope_values(kwargs["metadata"]) == pytest.approx(
        {"voltage": 300.0, "cs": 2.7, "gain": 1.5}
    )
    written = save(Image(layer_data, **kwargs), tmp_path / "copy.mrcz")
    _, meta = mrcz.readMRC(written)
    assert meta["voltage"] == pytest.approx(300.0)
    assert meta["C3"] == pytest.approx(2.7)
    assert meta["gain"] == pytest.approx(1.5)


def test_a_dm_image_saved_as_mrcz_keeps_its_voltage_and_cs(shared_data, tmp_path):
    """From the Microscope Info tags (Voltage in V, Cs(mm)), as ``mrcz convert`` does."""
    path = shared_data / "dm3" / "rsciio_2D_test_diffraction_pattern.dm3"
    [(layer_data, kwargs, _)] = read_layers(str(path))
    with pytest.warns(napari_mrcz.MRCZWarning) as caught:
        written = save(Image(layer_data, **kwargs), tmp_path / "dm.mrcz")
    messages = " | ".join(str(warning.message) for warning in caught)
    assert "x in 1/nm is not a length" in messages  # a diffraction pattern
    assert "int32" in messages  # cast to int16, the type the values fit
    assert "int16" in messages
    _, meta = mrcz.readMRC(written)
    assert meta["voltage"] == pytest.approx(200.0)
    assert meta["C3"] == pytest.approx(1.31, rel=1e-6)
    assert meta[DM_TAGS_KEY] == kwargs["metadata"][DM_TAGS_KEY]


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {},
        {"format": "DM", DM_TAGS_KEY: {"ImageList": "edited by hand"}, "header": {}},
        {"format": "MRC", "header": {"voltage": "300 kV", "C3": None}},
    ],
    ids=["none", "empty", "dm-edited", "mrc-edited"],
)
def test_metadata_without_microscope_values_saves_without_them(metadata):
    assert microscope_values(metadata) == {}


def test_json_meta_is_the_files_meta_and_the_users_keys(recwarn):
    """What goes into the JSON header: the source's JSON meta, DM tags and any key a user
    or plugin added; not the reader's path/format/header, nor a stale non-length record
    (the writer makes it anew from the layer's units)."""
    metadata = {
        "path": "/data/source.mrcz",
        "format": "MRCZ",
        "header": {"pixelsize": [1, 1, 1]},
        "formalities_missed": ["NVERSION 0"],
        "json_meta": {"dose": 2.0, NON_LENGTH_AXES_KEY: {"x": {}}},
        DM_TAGS_KEY: {"ImageList": {}},
        "operator": "ada",
        "mask": np.arange(3),
    }
    kept = json_meta(metadata)
    assert set(kept) == {"dose", DM_TAGS_KEY, "operator", "mask"}
    assert kept["dose"] == 2.0
    assert not recwarn.list


def test_metadata_json_cannot_hold_is_skipped_with_one_warning(tmp_path, rng):
    layer = Image(
        rng.normal(size=(2, 4, 4)).astype(np.float32),
        metadata={"good": np.arange(3), "bad": object(), "nested": {"n": np.int64(3)}},
    )
    with pytest.warns(napari_mrcz.MRCZWarning, match="'bad' cannot be saved as JSON"):
        written = save(layer, tmp_path / "meta.mrcz")
    _, meta = mrcz.readMRC(written)
    assert meta["good"] == [0, 1, 2]  # numpy arrays saved as lists
    assert meta["nested"] == {"n": 3}
    assert "bad" not in meta
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(json_meta(layer.metadata, warn=False)) == {"good", "nested"}


def test_the_full_resolution_of_a_pyramid_is_saved(tmp_path):
    levels = [np.arange(64, dtype=np.float32).reshape(8, 8), np.zeros((4, 4), np.float32)]
    layer = Image(levels, multiscale=True)
    written = save(layer, tmp_path / "pyramid.mrc")
    with mrcfile.open(written) as mrc:
        np.testing.assert_array_equal(mrc.data, levels[0])


@pytest.mark.parametrize(
    ("shape", "meta", "reason"),
    [
        ((4, 5, 3), {"rgb": True}, r"RGB.*split the channels"),
        ((2, 3, 4, 5), {}, "this layer has 4 dimensions"),
        ((5,), {}, "this layer has 1 dimensions"),
    ],
    ids=["rgb", "4d", "1d"],
)
def test_layers_mrc_cannot_hold_are_refused_with_the_reason(shape, meta, reason):
    with pytest.raises(ValueError, match=reason):
        check_savable(np.zeros(shape, np.uint8), meta)


@pytest.mark.parametrize(
    ("unit", "label"),
    [
        (None, "pixel"),
        (UREG.angstrom, "Å"),
        (UREG.nm, "nm"),
        (UREG("1/nm").units, "1/nm"),
        (UREG.eV, "eV"),
    ],
    ids=["none", "angstrom", "nm", "per-nm", "eV"],
)
def test_units_are_labelled_as_microscopists_write_them(unit, label):
    assert unit_label(unit) == label


def test_a_layers_calibration_is_its_last_three_axes():
    """A 4D layer (a stack of maps) is described by its z, y, x; lengths in Angstrom,
    other axes in their own unit."""
    layer = Image(
        np.zeros((2, 3, 4, 5), np.float32),
        scale=(1.0, 0.3, 0.2, 0.081),
        units=("s", "nm", "nm", "1/nm"),
        translate=(0.0, 1.0, 0.0, 0.0),
    )
    z, y, x = layer_calibration(layer)
    assert (z.name, y.name, x.name) == ("z", "y", "x")
    assert (z.angstrom, y.angstrom) == pytest.approx((3.0, 2.0))
    assert z.offset_angstrom == pytest.approx(10.0)
    assert x.angstrom is None
    assert not x.is_length
    assert x.describe() == "0.081 1/nm"


def test_one_unit_and_a_short_translate_apply_to_every_axis():
    """As napari's own broadcasting: a unit string for all axes, a translate for the last."""
    axes = layer_axes((1.0, 2.0, 3.0, 4.0), (5.0, 6.0), "nm")
    assert [axis.name for axis in axes] == ["axis", "z", "y", "x"]
    assert [axis.angstrom for axis in axes] == pytest.approx([10.0, 20.0, 30.0, 40.0])
    assert [axis.offset_angstrom for axis in axes] == pytest.approx([0.0, 0.0, 50.0, 60.0])


def test_the_warning_names_the_layer_and_only_the_axes_that_are_not_lengths():
    eels = header_geometry((1.0, 0.5), (0.0, 0.0), (UREG.nm, UREG.eV))
    assert eels.pixelsize_zyx == pytest.approx([10.0, 10.0, 0.0])
    assert eels.warning("spectrum") == (
        "spectrum: x in eV is not a length: saved with pixel size 0 there; "
        f"the calibration is kept in the file's JSON meta ({NON_LENGTH_AXES_KEY})"
    )
    assert eels.meta() == {
        NON_LENGTH_AXES_KEY: {"x": {"scale": 0.5, "offset": 0.0, "unit": "electron_volt"}}
    }
    lengths = header_geometry((1.0, 0.5), (0.0, 0.0), (UREG.nm, UREG.nm))
    assert lengths.warning("image") is None
    assert lengths.meta() == {}


def test_a_flipped_layer_saves_a_valid_file_with_a_positive_pixel_size(tmp_path, rng):
    layer = Image(rng.normal(size=(3, 4, 5)).astype(np.float32), scale=(2.0, -2.0, 2.0))
    with pytest.warns(MRCZWarning, match="mirrored along y .*saved unmirrored") as caught:
        written = save(layer, tmp_path / "flipped.mrc")
    assert len([w for w in caught if "mirrored" in str(w.message)]) == 1
    assert mrcfile.validate(written, print_file=io.StringIO())
    voxel, _, _ = mrcfile_geometry(written)
    assert voxel == pytest.approx([2.0, 2.0, 2.0])
