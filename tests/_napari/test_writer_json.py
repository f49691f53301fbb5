"""JSON metadata and the napari writers: kept in MRCZ, out of plain MRC unless asked.

File > Save as .mrc of a layer with metadata (a DM image, a file
with JSON meta) wrote EXTTYP 'json', which mrcfile.validate rejects.
"""

import io

import mrcfile
import npe2
import numpy as np
import pytest
import yaml

import napari_mrcz
from napari_mrcz import MRCZWarning
from napari_mrcz._napari import writer as napari_writer
from napari_mrcz._napari.reader import get_reader

from tests.helpers import REPO, SHARED_DATA


@pytest.fixture(scope="module", autouse=True)
def _discover_plugins():
    npe2.PluginManager.instance().discover()


def dm_layer(rng):
    """A layer as the reader makes it from a DM image: its tags in the metadata."""
    data = rng.normal(size=(6, 8)).astype(np.float32)
    tags = {"ImageList": {"1": {"ImageTags": {"Microscope Info": {"Voltage": 300000.0}}}}}
    return data, {"name": "dm image", "scale": (1.0, 1.0), "metadata": {"dm_tags": tags}}


def validates(path) -> bool:
    return mrcfile.validate(str(path), print_file=io.StringIO())


def test_plain_mrc_leaves_the_json_out_and_says_so(tmp_path, rng):
    data, meta = dm_layer(rng)
    with pytest.warns(MRCZWarning, match=r"metadata \(dm_tags\) is not saved in this plain"):
        [written] = napari_writer.write_mrc(str(tmp_path / "image.mrc"), data, meta)
    assert validates(written)
    header, _ = napari_mrcz.readMRCHeader(written)
    assert header["extendedBytes"] == 0
    assert "dm_tags" not in header
    np.testing.assert_array_equal(napari_mrcz.readMRC(written)[0], data)


def test_mrcz_keeps_the_json(tmp_path, rng, recwarn):
    data, meta = dm_layer(rng)
    [written] = napari_writer.write_mrcz(str(tmp_path / "image.mrcz"), data, meta)
    header, _ = napari_mrcz.readMRCHeader(written)
    assert header["dm_tags"] == meta["metadata"]["dm_tags"]
    assert not [w for w in recwarn if issubclass(w.category, MRCZWarning)]


def test_the_setting_puts_json_into_plain_files(tmp_path, rng, monkeypatch):
    data, meta = dm_layer(rng)
    settings = {**napari_writer.DEFAULT_SETTINGS, "json_in_plain": True}
    monkeypatch.setattr(napari_writer, "writer_settings", lambda: settings)
    [written] = napari_writer.write_mrc(str(tmp_path / "image.mrc"), data, meta)
    header, _ = napari_mrcz.readMRCHeader(written)
    assert header["dm_tags"] == meta["metadata"]["dm_tags"]
    assert not validates(written)  # the cost the setting's description states


def test_the_setting_is_declared_off_and_says_what_it_costs():
    manifest = yaml.safe_load((REPO / "napari_mrcz" / "napari.yaml").read_text())
    setting = manifest["contributions"]["configurations"]["writer"]["properties"]["json_in_plain"]
    assert setting["type"] == "boolean"
    assert setting["default"] is False
    assert "mrcfile.validate" in setting["description"]
    assert napari_writer.writer_settings()["json_in_plain"] is False


def test_a_layer_without_metadata_saves_as_plain_without_a_warning(tmp_path, rng, recwarn):
    data = rng.normal(size=(3, 8, 8)).astype(np.float32)
    meta = {"name": "map", "scale": (1.0, 1.0, 1.0), "metadata": {}}
    [written] = napari_writer.write_mrc(str(tmp_path / "map.mrc"), data, meta)
    assert validates(written)
    assert not [w for w in recwarn if issubclass(w.category, MRCZWarning)]


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
@pytest.mark.parametrize(
    "name", ["dm4/openncem_dmTest_float32_nonSquare_diffPixelSize.dm4", "dm3/rsciio_2D_test-1.dm3"]
)
def test_a_real_dm_layer_saved_as_mrc_is_valid(name, tmp_path):
    path = str(SHARED_DATA / name)
    [(data, kwargs, _)] = get_reader(path)(path)
    with pytest.warns(MRCZWarning, match="dm_tags"):
        [written] = napari_writer.write_mrc(str(tmp_path / "dm.mrc"), data, kwargs)
    assert validates(written)
    with mrcfile.open(written) as copy:
        np.testing.assert_array_equal(copy.data, np.asarray(data))
