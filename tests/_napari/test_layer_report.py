"""What the MRC Metadata inspector shows about a layer (napari_mrcz._napari.layer_report).

What these tests protect: a layer read from a file shows that file's header, JSON
meta or DM tags and compression, with facts that agree with the file (python-mrcz's
and mrcfile's reading of it); a layer not from a file shows the header napari-mrcz
would write for it, which is the header the save then writes (statistics apart);
pixel sizes are shown in Angstrom and never so for axes that are not lengths; every
report can be exported as JSON. Real napari layers, no viewer.
"""

import contextlib
import json
import re

import mrcfile
import numpy as np
import pint
import pytest
from napari.layers import Image, Labels, Points

import napari_mrcz
from napari_mrcz import formats
from napari_mrcz._napari import layer_report as report_module
from napari_mrcz._napari import writer as napari_writer
from napari_mrcz._napari.layer_report import MAX_LISTED, layer_report
from napari_mrcz._napari.reader import read_layers
from napari_mrcz.gain.separation import GainSettings, convert_image
from napari_mrcz.gain.store import GainStore
from napari_mrcz.mrc.jsonmeta import DM_TAGS_KEY, NON_LENGTH_AXES_KEY
from napari_mrcz.wording import human_size

from tests.helpers import gain_normalised_movie

UREG = pint.get_application_registry()

#: What only the save itself knows: the statistics, the packed size, the JSON extended
#: header (with its checksums) and the label naming the codec.
KNOWN_WHEN_SAVED = {"dmin", "dmax", "dmean", "rms", "packed_bytes", "nsymbt", "exttyp"}
KNOWN_WHEN_SAVED |= {"nlabl", "label"}


def use_settings(monkeypatch, **settings):
    """The writer settings of the inspector's preview and of the save, alike."""
    chosen = {**napari_writer.DEFAULT_SETTINGS, **settings}
    monkeypatch.setattr(report_module, "writer_settings", lambda: chosen)
    monkeypatch.setattr(napari_writer, "writer_settings", lambda: chosen)


@pytest.fixture(autouse=True)
def _default_writer_settings(monkeypatch):
    """The built-in writer settings, whatever napari's saved preferences say."""
    use_settings(monkeypatch)


def opened(path):
    """The layer napari makes of ``path`` with our reader (the first, if several)."""
    data, kwargs, _ = read_layers(str(path))[0]
    return Image(data, **kwargs)


def rows(report):
    return {name: value for name, value, _ in report.header_rows}


def test_an_mrcz_layer_shows_its_format_compression_and_ratio(tmp_path, rng):
    data = rng.normal(size=(3, 8, 8)).astype(np.float32)
    path = tmp_path / "with_meta.mrcz"
    napari_mrcz.writeMRC(
        data,
        path,
        pixelsize=[1.5, 1.2, 1.1],
        compressor="zstd",
        meta={"microscope": {"voltage": 300}},
    )
    report = layer_report(opened(path))
    header, _ = napari_mrcz.readMRCHeader(path)
    packed = header["packedBytes"]
    assert report.title == "with_meta.mrcz"
    assert report.origin == f"read from {path}"
    assert report.facts == [
        ("format", "MRCZ"),
        ("shape", "3 x 8 x 8"),
        ("dtype", "float32"),
        ("pixel size (z, y, x)", "1.5, 1.2, 1.1 Å"),
        ("compression", "zstd"),
        ("packed size", human_size(packed)),
        ("compression ratio", f"{data.nbytes / packed:.2f}x"),
    ]
    fields = rows(report)
    assert (fields["nx"], fields["ny"], fields["nz"]) == ("8", "8", "3")
    assert fields["exttyp"] == "json"
    assert fields["mode"] == str(header["mrcHeader"]["mode"])
    meanings = {name: meaning for name, _, meaning in report.header_rows}
    assert meanings["nx"]  # every known field says what it is
    assert report.tree["JSON meta"] == {"microscope": {"voltage": 300}}


def test_a_plain_mrc_layer_shows_the_header_mrcfile_reads(tmp_path, rng):
    path = tmp_path / "plain.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(rng.normal(size=(4, 6, 8)).astype(np.float32))
        mrc.voxel_size = (1.1, 1.2, 1.5)
        mrc.header.origin = (10.0, 20.0, 30.0)
    report = layer_report(opened(path))
    facts = dict(report.facts)
    assert facts["format"] == "MRC"
    assert facts["compression"] == "none"
    assert "packed size" not in facts
    assert "MRC2014 formalities missed" not in facts
    assert facts["pixel size (z, y, x)"] == "1.5, 1.2, 1.1 Å"
    fields = rows(report)
    with mrcfile.open(path) as mrc:
        header = mrc.header
        assert fields["mode"] == str(int(header.mode))
        assert fields["cella"] == ", ".join(f"{value:.6g}" for value in header.cella.tolist())
        assert fields["origin"] == ", ".join(f"{value:.6g}" for value in header.origin.tolist())
        assert fields["nversion"] == str(int(header.nversion))


def test_an_old_header_shows_the_formalities_it_misses(tmp_path):
    path = tmp_path / "old.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((3, 4, 5), np.float32))
        mrc.voxel_size = 1.0
        mrc.header.nversion = 0
    facts = dict(layer_report(opened(path)).facts)
    assert facts["MRC2014 formalities missed"] == "NVERSION 0 (MRC2014 says 20140 or 20141)"


def test_a_gain_separated_movie_shows_its_counts_and_gain(tmp_path, rng):
    """Shown as a float32 movie; the inspector says it is int8 counts times a gain."""
    movie, _, _ = gain_normalised_movie(rng, (4, 16, 16))
    source = tmp_path / "raw.mrc"
    with mrcfile.new(source) as handle:
        handle.set_data(movie)
        handle.voxel_size = 1.1
    target = tmp_path / "movie.mrcz"
    with formats.open_images(source) as (image,):
        convert_image(image, str(target), "zstd", gain=GainSettings(GainStore("zstd"), True))
    facts = dict(layer_report(opened(target)).facts)
    assert facts["dtype"] == "float32"
    counts, gain_file = facts["gain-separated"].split(" x ")
    assert counts == "int8 counts"
    assert re.fullmatch(r"gain_[0-9a-f]{12}\.mrcz", gain_file)
    assert (tmp_path / gain_file).is_file()  # the gain reference beside the movie
    assert facts["gain"] == "estimated from raw.mrc"


def test_an_extended_header_is_shown_and_exported(shared_data):
    """The FEI2 records of a real Velox file: in the tree, and in the JSON export."""
    report = layer_report(opened(shared_data / "mrc" / "rsciio_HAADFscan.mrc"))
    extended = report.tree["extended header"]
    assert extended["type"] == "FEI2"
    exported = json.loads(json.dumps(report.as_json_ready()))
    assert exported["metadata"]["extended header"]["records"][0]["Microscope type"] == ("Spectra")
    assert exported["header"]["exttyp"] == "FEI2"


def test_a_dm_layer_shows_its_tags_and_a_reciprocal_pixel_size(shared_data):
    """A diffraction pattern is calibrated in 1/nm: shown so, not as Angstrom."""
    path = shared_data / "dm3" / "rsciio_2D_test_diffraction_pattern.dm3"
    layer = opened(path)
    report = layer_report(layer)
    facts = dict(report.facts)
    assert facts["format"] == "DigitalMicrograph"
    assert report.origin == f"read from {path}"
    size = layer.scale[-1]
    assert facts["pixel size (y, x)"] == f"{size:.4g} 1/nm, {size:.4g} 1/nm"
    assert "Å" not in facts["pixel size (y, x)"]
    assert report.tree == {"DM tags": layer.metadata[DM_TAGS_KEY]}
    header = layer.metadata["header"]
    assert [name for name, _, _ in report.header_rows] == [
        str(key) for key, value in header.items() if not isinstance(value, dict)
    ]


def test_long_lists_are_summarised():
    layer = Image(
        np.zeros((4, 4), np.float32),
        metadata={
            "format": "DM",
            "path": "x.dm4",
            "header": {"calibration": list(range(MAX_LISTED + 8)), "offsets": [0.5, 1.25]},
        },
    )
    fields = rows(layer_report(layer))
    assert fields["calibration"] == f"<{MAX_LISTED + 8} values>"
    assert fields["offsets"] == "0.5, 1.25"


@pytest.mark.filterwarnings("ignore:MRC cannot store float64")  # the cast test_writer tests
@pytest.mark.parametrize(
    ("codec", "suffix"), [("zstd", ".mrcz"), ("none", ".mrc")], ids=["mrcz", "plain"]
)
@pytest.mark.parametrize(
    ("shape", "dtype", "scale", "units"),
    [
        ((3, 4, 5), np.float32, (2.0, 2.0, 2.0), None),
        ((6, 8), np.float64, (0.2, 0.3), "nm"),
        ((2, 4, 6), np.uint16, (1.0, 0.5, 0.5), "angstrom"),
    ],
    ids=["float32-3d", "float64-image", "uint16-nm"],
)
def test_the_preview_of_a_new_layer_is_the_header_the_save_writes(
    tmp_path, rng, monkeypatch, codec, suffix, shape, dtype, scale, units
):
    """Everything but what only the save knows (statistics, packed size, JSON
    extended header, labels) is shown as the file will have it: reopened after the
    save, the inspector shows the same values."""
    use_settings(monkeypatch, codec=codec)
    data = (rng.normal(size=shape) * 100 + 1000).astype(dtype)
    layer = Image(data, scale=scale, **({"units": units} if units else {}))
    preview = layer_report(layer)
    assert preview.origin.startswith("not from a file: the header napari-mrcz would write")
    written = napari_writer.write_layer(
        str(tmp_path / f"new{suffix}"), data, layer.as_layer_data_tuple()[1], suffix
    )
    expected = rows(layer_report(opened(written)))
    shown = rows(preview)
    assert set(shown) == set(expected)
    for name in set(shown) - KNOWN_WHEN_SAVED:
        assert shown[name] == expected[name], name
    assert dict(preview.facts)["shape"] == " x ".join(map(str, shape))


def test_the_preview_shows_pixel_sizes_in_angstrom_and_other_axes_in_their_unit():
    spectrum = Image(
        np.zeros((4, 6), np.float32), scale=(1.0, 0.5), units=(UREG.nm, UREG.eV), name="eels"
    )
    report = layer_report(spectrum)
    assert dict(report.facts)["pixel size (y, x)"] == "10 Å, 0.5 eV"
    assert rows(report)["cella"] == "0, 40, 10"  # x: no length, so 0; y: 4 x 10 Å
    assert report.tree == {
        "JSON meta to write": {
            NON_LENGTH_AXES_KEY: {"x": {"scale": 0.5, "offset": 0.0, "unit": "electron_volt"}}
        }
    }


def test_the_preview_lists_the_metadata_a_save_keeps(recwarn):
    layer = Image(
        np.zeros((3, 4, 4), np.float32),
        metadata={"operator": "ada", "handle": object(), "path": "/not/a/file.mrc"},
    )
    report = layer_report(layer)
    assert report.tree == {"JSON meta to write": {"operator": "ada"}}
    assert not recwarn.list  # the save warns about 'handle'; the preview does not


def test_a_pyramid_is_described_by_its_full_resolution():
    levels = [np.zeros((3, 16, 16), np.float32), np.zeros((3, 8, 8), np.float32)]
    report = layer_report(Image(levels, multiscale=True))
    assert dict(report.facts)["shape"] == "3 x 16 x 16"
    assert (rows(report)["nx"], rows(report)["nz"]) == ("16", "3")


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16], ids=lambda d: np.dtype(d).name)
def test_labels_are_previewed_with_the_mode_they_are_saved_in(tmp_path, dtype):
    """uint8 labels are saved as uint16 (python-mrcz has no unsigned byte mode)."""
    labels = Labels(np.arange(32, dtype=dtype).reshape(2, 4, 4), scale=(1.0, 2.0, 2.0))
    report = layer_report(labels)
    assert report.origin.startswith("not from a file")
    assert dict(report.facts)["pixel size (z, y, x)"] == "1, 2, 2 Å"
    cast = pytest.warns(napari_mrcz.MRCZWarning, match="uint8")
    with cast if dtype == np.uint8 else contextlib.nullcontext():
        written = napari_writer.write_layer(
            str(tmp_path / "labels.mrcz"), labels.data, labels.as_layer_data_tuple()[1], ".mrcz"
        )
    header, _ = napari_mrcz.readMRCHeader(written)
    assert rows(report)["mode"] == str(header["mrcHeader"]["mode"])


def test_other_layers_say_that_they_cannot_be_saved():
    points = Points(np.zeros((2, 2)), metadata={"picked_by": "ada", "handle": object()})
    report = layer_report(points)
    assert report.origin == ("a Points layer: napari-mrcz saves only Image and Labels layers")
    assert (report.facts, report.header_rows) == ([], [])
    assert report.tree == {"layer metadata": {"picked_by": "ada"}}
    assert json.loads(json.dumps(report.as_json_ready())) == {
        "layer": "Points",
        "origin": report.origin,
        "facts": {},
        "header": {},
        "metadata": {"layer metadata": {"picked_by": "ada"}},
    }


def test_every_report_exports_as_json(tmp_path, rng):
    path = tmp_path / "file.mrcz"
    napari_mrcz.writeMRC(rng.normal(size=(2, 4, 4)).astype(np.float32), path, compressor="zstd")
    for layer in (opened(path), Image(np.zeros((4, 4), np.float64), name="new")):
        report = layer_report(layer)
        exported = json.loads(json.dumps(report.as_json_ready()))
        assert exported["layer"] == layer.name
        assert exported["facts"] == dict(report.facts)
        assert exported["header"] == rows(report)


def test_the_preview_shows_the_origin_the_save_writes():
    layer = Image(np.zeros((3, 4, 5), np.float32), scale=(2.0, 2.0, 2.0), translate=(6, 4, 2))
    assert rows(layer_report(layer))["origin"] == "2, 4, 6"
