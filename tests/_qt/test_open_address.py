"""The "Open a file on a server" panel, in a real viewer, against a real web server."""

import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.lazy import LazyMRC

from tests.helpers import in_angstrom
from tests.servers import RangeServer

pytest.importorskip("napari")


@pytest.fixture
def web_server(tmp_path, rng):
    server = RangeServer()
    data = rng.normal(3, 1, size=(5, 24, 32)).astype(np.float32)
    path = tmp_path / "grid3.mrcz"
    napari_mrcz.writeMRC(data, path, pixelsize=[6.0, 3.0, 3.0], compressor="zstd", meta={})
    server.files["/session/grid3.mrcz"] = path.read_bytes()
    server.data = data
    yield server
    server.close()


@pytest.fixture
def panel(make_napari_viewer):
    from napari_mrcz._qt.open_address import OpenAddressWidget

    viewer = make_napari_viewer()
    widget = OpenAddressWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Open a file on a server")
    return viewer, widget


def test_an_address_opens_as_a_lazy_layer(panel, web_server, qtbot):
    viewer, widget = panel
    web_server.delay_s = 0.3  # a slow server: the header arrives after open() returned
    widget.address.setText(web_server.url("/session/grid3.mrcz"))
    widget.open()
    assert not viewer.layers
    assert widget.status.text().startswith("Opening ")
    assert not widget.open_button.isEnabled()
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=10_000)
    web_server.delay_s = 0.0
    [layer] = viewer.layers
    assert isinstance(layer.data, LazyMRC)
    assert layer.name == "grid3.mrcz"
    np.testing.assert_allclose(in_angstrom(layer.scale, layer.units), [6.0, 3.0, 3.0])
    np.testing.assert_array_equal(np.asarray(layer.data[4]), web_server.data[4])
    assert widget.status.text() == "Opened grid3.mrcz."
    assert widget.open_button.isEnabled()


def test_a_missing_file_is_told_in_the_panel(panel, web_server, qtbot):
    viewer, widget = panel
    widget.address.setText(web_server.url("/session/none.mrc"))
    widget.open()
    qtbot.waitUntil(lambda: widget.open_button.isEnabled(), timeout=10_000)
    assert "no such file on the server (404)" in widget.status.text()
    assert not viewer.layers


def test_the_background_switch_is_naparis_asynchronous_slicing(panel):
    from napari.settings import get_settings

    _, widget = panel
    settings = get_settings().experimental
    before = settings.async_
    try:
        assert widget.background.isChecked() == before
        widget.background.setChecked(not before)
        assert settings.async_ is (not before)
    finally:
        settings.async_ = before


def test_a_path_is_not_an_address(panel):
    viewer, widget = panel
    widget.address.setText("/data/grid3.mrcz")
    widget.open()
    assert "https://" in widget.status.text()
    assert widget.open_button.isEnabled()
    assert not viewer.layers


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_closing_the_viewer_while_a_file_arrives(make_napari_viewer, web_server, qtbot):
    from napari_mrcz._qt.open_address import OpenAddressWidget

    viewer = make_napari_viewer()
    widget = OpenAddressWidget(viewer)
    viewer.window.add_dock_widget(widget)
    web_server.delay_s = 0.5
    widget.address.setText(web_server.url("/session/grid3.mrcz"))
    widget.open()
    opening = widget._opening
    viewer.close()
    opening.join(10)
    assert not opening.is_alive()
    web_server.delay_s = 0.0
