"""The npe2 writers, without a viewer: formats, extensions, pixel size, casts, meta."""

import io

import mrcfile
import npe2
import numpy as np
import pint
import pytest

import napari_mrcz
import napari_mrcz.mrc.layout
from napari_mrcz._napari import writer as napari_writer
from napari_mrcz._napari.layers import header_geometry
from napari_mrcz.mrc.jsonmeta import NON_LENGTH_AXES_KEY

from tests.helpers import SHARED_DATA


@pytest.fixture(scope="module", autouse=True)
def _discover_plugins():
    npe2.PluginManager.instance().discover()


UREG = pint.get_application_registry()


def image_meta(**extra):
    meta = {"name": "layer", "scale": (2.0, 1.5, 1.5), "units": (UREG.nm,) * 3, "metadata": {}}
    meta.update(extra)
    return meta


def test_mrcz_writer_adds_extension_and_compresses(tmp_path, rng):
    data = rng.normal(size=(3, 8, 10)).astype(np.float32)
    [written] = napari_writer.write_mrcz(str(tmp_path / "noext"), data, image_meta())
    assert written.endswith("noext.mrcz")
    image, meta = napari_mrcz.readMRC(written)
    np.testing.assert_array_equal(image, data)
    assert meta["compressor"] == "zstd"
    np.testing.assert_allclose(meta["pixelsize"], [20.0, 15.0, 15.0])


def test_mrc_extension_writes_plain_valid_mrc(tmp_path, rng):
    data = rng.normal(size=(3, 8, 10)).astype(np.float32)
    [written] = napari_writer.write_mrcz(str(tmp_path / "plain.mrc"), data, image_meta())
    assert written.endswith("plain.mrc")
    report = io.StringIO()
    assert mrcfile.validate(written, print_file=report) is True, report.getvalue()
    with mrcfile.open(written) as mrc:
        np.testing.assert_array_equal(mrc.data, data)
        np.testing.assert_allclose(
            [mrc.voxel_size.x, mrc.voxel_size.y, mrc.voxel_size.z], [15.0, 15.0, 20.0]
        )


def test_npe2_write_chooses_by_extension(tmp_path, rng):
    data = rng.normal(size=(8, 10)).astype(np.float32)
    layer = (data, {"name": "img", "scale": (1.0, 1.0), "metadata": {}}, "image")
    [mrcz_path] = npe2.write(str(tmp_path / "a.MRCZ"), [layer], plugin_name="napari-mrcz")
    [mrc_path] = npe2.write(str(tmp_path / "b.mrc"), [layer], plugin_name="napari-mrcz")
    assert napari_mrcz.readMRCHeader(mrcz_path)[0]["compressor"] == "zstd"
    assert napari_mrcz.readMRCHeader(mrc_path)[0]["compressor"] is None


def test_python_mrcz_reads_what_the_writer_writes(tmp_path, rng):
    import mrcz

    data = rng.normal(size=(4, 8, 10)).astype(np.float32)
    [written] = napari_writer.write_mrcz(
        str(tmp_path / "x.mrcz"), data, image_meta(metadata={"operator": "ada"})
    )
    image, meta = mrcz.readMRC(written)
    np.testing.assert_array_equal(image, data)
    np.testing.assert_allclose(meta["pixelsize"], [20.0, 15.0, 15.0], rtol=1e-6)
    assert meta["operator"] == "ada"


def test_float64_and_int64_labels_are_cast_with_a_warning(tmp_path, rng):
    labels = rng.integers(0, 300, size=(3, 8, 10)).astype(np.int64)
    with pytest.warns(UserWarning, match="int64"):
        [written] = napari_writer.write_mrcz(str(tmp_path / "labels.mrcz"), labels, image_meta())
    image, _ = napari_mrcz.readMRC(written)
    assert image.dtype == np.int16
    np.testing.assert_array_equal(image, labels)
    floats = rng.normal(size=(2, 4, 4))
    with pytest.warns(UserWarning, match="float64"):
        [written] = napari_writer.write_mrc(str(tmp_path / "f.mrc"), floats, image_meta())
    assert napari_mrcz.readMRC(written)[0].dtype == np.float32


def test_metadata_that_json_cannot_hold_is_skipped(tmp_path, rng):
    data = rng.normal(size=(2, 4, 4)).astype(np.float32)
    metadata = {
        "good": [1, 2],
        "bad": object(),
        "path": "/somewhere/else.mrc",
        "json_meta": {"dose": 3},
    }
    with pytest.warns(UserWarning, match="bad"):
        [written] = napari_writer.write_mrcz(
            str(tmp_path / "m.mrcz"), data, image_meta(metadata=metadata)
        )
    _, meta = napari_mrcz.readMRC(written)
    assert meta["good"] == [1, 2]
    assert meta["dose"] == 3
    assert "bad" not in meta


def test_several_layers_go_to_a_folder(tmp_path, rng):
    layers = [
        (
            rng.normal(size=(4, 4)).astype(np.float32),
            {"name": f"layer{index}.mrc", "scale": (1.0, 1.0), "metadata": {}},
            "image",
        )
        for index in range(3)
    ]
    written = npe2.write(str(tmp_path / "folder"), layers, plugin_name="napari-mrcz")
    assert sorted(path.rsplit("/", 1)[1] for path in written) == [
        "layer0.mrcz",
        "layer1.mrcz",
        "layer2.mrcz",
    ]
    for (data, _, _), path in zip(layers, written, strict=True):
        np.testing.assert_array_equal(napari_mrcz.readMRC(path)[0], data)


def test_pixel_units_keep_the_scale_as_angstrom():
    """napari's default unit (pixel: no unit given) is read as Angstrom; lengths are
    converted; a 2D layer's z is its y."""
    unitless = header_geometry((2.0, 3.0), (0.0, 0.0), (UREG.pixel, UREG.pixel))
    assert unitless.pixelsize_zyx == [2.0, 2.0, 3.0]
    assert unitless.non_length == {}
    lengths = header_geometry((2.0, 3.0), (1.0, 0.0), (UREG.um, UREG.nm))
    assert lengths.pixelsize_zyx == pytest.approx([20000.0, 20000.0, 30.0])
    assert lengths.origin_zyx == pytest.approx([0.0, 10000.0, 0.0])


@pytest.mark.parametrize(
    ("scale", "units", "expected_unit"),
    [
        ((0.081, 0.081), ("1/nm", "1/nm"), "1 / nanometer"),
        ((1.0, 0.5), ("eV", "eV"), "electron_volt"),
    ],
    ids=["fft-1/nm", "eels-eV"],
)
def test_axes_that_are_not_lengths_get_pixel_size_0(tmp_path, rng, scale, units, expected_unit):
    """An FFT in 1/nm or a spectrum in eV is not saved as Angstrom: the header gets 0,
    the JSON meta keeps the calibration, one MRCZWarning says so."""
    data = rng.normal(size=(4, 6)).astype(np.float32)
    meta = image_meta(scale=scale, units=tuple(UREG(unit).units for unit in units))
    meta["translate"] = (0.0, 100.0)
    with pytest.warns(napari_mrcz.MRCZWarning, match="not a length") as caught:
        [path] = napari_writer.write_mrcz(str(tmp_path / "fft"), data, meta)
    assert len([w for w in caught if issubclass(w.category, napari_mrcz.MRCZWarning)]) == 1
    import mrcz  # python-mrcz, the reference reader of MRCZ

    image, file_meta = mrcz.readMRC(path)
    np.testing.assert_array_equal(image, data)
    assert file_meta["pixelsize"] == pytest.approx([0.0, 0.0, 0.0])
    record = file_meta[NON_LENGTH_AXES_KEY]
    assert record["x"] == {"scale": scale[1], "offset": 100.0, "unit": expected_unit}
    assert record["y"]["unit"] == expected_unit


def test_folder_names_are_unique_and_safe(tmp_path, rng):
    layers = [
        (
            rng.normal(size=(4, 4)).astype(np.float32),
            {"name": name, "scale": (1.0, 1.0), "metadata": {}},
            "image",
        )
        for name in ("same", "same", "a/b")
    ]
    written = napari_writer.write_folder(str(tmp_path / "out"), layers)
    assert [path.rsplit("/", 1)[1] for path in written] == ["same.mrcz", "same-1.mrcz", "a_b.mrcz"]
    assert len(set(written)) == 3


def test_plain_mrc_labels_stay_mrcfile_valid(tmp_path, rng):
    """int32 is python-mrcz's mode 7: plain .mrc labels get an MRC2014 type instead."""
    labels = rng.integers(0, 70000, size=(2, 8, 8)).astype(np.int32)
    with pytest.warns(UserWarning, match="int32"):
        [written] = napari_writer.write_mrc(str(tmp_path / "labels.mrc"), labels, image_meta())
    report = io.StringIO()
    assert mrcfile.validate(written, print_file=report) is True, report.getvalue()
    np.testing.assert_array_equal(napari_mrcz.readMRC(written)[0], labels)
    huge = np.array([[[0, 2**30]]], dtype=np.int64)
    with pytest.raises(ValueError, match="fit no MRC pixel type"):
        napari_writer.write_mrc(str(tmp_path / "huge.mrc"), huge, image_meta(scale=(1, 1, 1)))


def test_json_meta_does_not_swallow_the_header(tmp_path, rng):
    """A file written with python-mrcz's readMRC -> writeMRC(meta=meta) habit: the
    reader's header still describes the file, not the stale copy in the JSON."""
    data = rng.normal(size=(2, 4, 4)).astype(np.float32)
    path = tmp_path / "habit.mrcz"
    napari_mrcz.writeMRC(
        data, path, compressor="zstd", meta={"compressor": None, "pixelsize": [9, 9, 9]}
    )
    [(_, kwargs, _)] = npe2.read([str(path)], stack=False, plugin_name="napari-mrcz")
    assert kwargs["metadata"]["header"]["compressor"] == "zstd"
    assert kwargs["metadata"]["header"]["mrcHeader"]["nz"] == 2


def test_an_rgb_layer_saved_through_npe2_says_why_it_cannot_be(tmp_path):
    """napari shows only "not a valid writer" for a writer's ValueError: ours warns first."""
    photo = np.zeros((8, 8, 3), np.uint8)
    with (
        pytest.warns(napari_mrcz.MRCZWarning, match=r"photo cannot be saved .*colour \(RGB\)"),
        pytest.raises(ValueError, match="split the channels"),
    ):
        npe2.write(
            str(tmp_path / "photo.mrcz"),
            [(photo, {"name": "photo", "rgb": True}, "image")],
            plugin_name="napari-mrcz",
        )
    assert not (tmp_path / "photo.mrcz").exists()


def _labels(header) -> list[bytes]:
    """The text labels of a header (mrcfile's or ours), without their padding."""
    return [bytes(label).rstrip(b"\0 ") for label in header["label"][: int(header["nlabl"])]]


@pytest.mark.skipif(SHARED_DATA is None, reason="needs the real files of ../shared/data")
@pytest.mark.parametrize("suffix", [".mrcz", ".mrc"])
def test_a_layer_saves_with_the_extended_header_and_labels_of_its_source(tmp_path, suffix):
    """The FEI2 records of an EPU-style file (888 KiB) and a map's labels, as convert keeps;
    a map's untyped symmetry records are left out (MRC2014 readers refuse them)."""
    from napari_mrcz._napari.reader import read_layers

    for name, keeps_records in (("rsciio_HAADFscan.mrc", True), ("ngl_3ek3-2fofc.map", False)):
        source = SHARED_DATA / "mrc" / name
        [(data, kwargs, kind)] = read_layers(str(source))
        target = tmp_path / (name + suffix)
        npe2.write(str(target), [(data, kwargs, kind)], plugin_name="napari-mrcz")
        with mrcfile.open(source, permissive=True, header_only=True) as original:
            expected_labels = _labels(original.header)
            records = bytes(original.extended_header)
            record_type = bytes(original.header.exttyp)
        saved = napari_mrcz.mrc.layout.read_layout(target)
        assert _labels(saved.header)[: len(expected_labels)] == expected_labels
        if keeps_records:
            assert saved.read_extended_header() == records
            assert bytes(saved.header["exttyp"]) == record_type
        else:
            assert records not in saved.read_extended_header()
        if suffix == ".mrc":
            assert mrcfile.validate(str(target), print_file=io.StringIO()), name
