"""The npe2 reader, without a viewer: layer data, scale, units, metadata, laziness."""

import subprocess
import sys
import warnings

import mrcfile
import npe2
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz._napari import reader as napari_reader
from napari_mrcz.mrc.lazy import LazyMRC

from tests.helpers import in_angstrom, real_files, write_permuted_map


@pytest.fixture(scope="module", autouse=True)
def _discover_plugins():
    npe2.PluginManager.instance().discover()


def read(path):
    return npe2.read([str(path)], stack=False, plugin_name="napari-mrcz")


def test_reader_module_imports_no_qt():
    code = (
        "import sys, napari_mrcz._napari.reader, napari_mrcz._napari.writer, "
        "napari_mrcz._napari.samples\n"
        "print([m for m in ('qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'magicgui', 'napari')"
        " if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "name",
    ["a.mrcz", "b.MRC", "c.mrcs", "d.map", "e.st", "f.ali", "g.rec", "h.dm4", "i.DM3", "j.ccp4"],
)
def test_get_reader_claims_our_suffixes(name):
    assert napari_reader.get_reader(name) is napari_reader.read_layers


@pytest.mark.parametrize("name", ["a.tif", "b.mrc.txt", "c"])
def test_get_reader_declines_others(name):
    assert napari_reader.get_reader(name) is None


def test_mrcz_layer(tmp_path, rng):
    data = rng.normal(10, 2, size=(5, 12, 16)).astype(np.float32)
    path = tmp_path / "stack.mrcz"
    napari_mrcz.writeMRC(
        data, path, pixelsize=[3.0, 2.0, 1.5], compressor="zstd", meta={"dose": 1.5}
    )
    [(layer_data, kwargs, layer_type)] = read(path)
    assert layer_type == "image"
    np.testing.assert_array_equal(np.asarray(layer_data), data)
    assert kwargs["name"] == "stack.mrcz"
    np.testing.assert_allclose(in_angstrom(kwargs["scale"], kwargs["units"]), [3.0, 2.0, 1.5])
    assert kwargs["units"] == ["nm"] * 3
    assert kwargs["contrast_limits"] == pytest.approx((data.min(), data.max()))
    metadata = kwargs["metadata"]
    assert metadata["path"] == str(path)
    assert metadata["format"] == "MRCZ"
    assert metadata["json_meta"] == {"dose": 1.5}
    assert metadata["header"]["compressor"] == "zstd"
    assert metadata["header"]["mrcHeader"]["nz"] == 5


def test_single_image_is_2d(tmp_path, rng):
    data = rng.normal(size=(12, 16)).astype(np.float32)
    path = tmp_path / "image.mrc"
    napari_mrcz.writeMRC(data, path, pixelsize=0.8)
    [(layer_data, kwargs, _)] = read(path)
    assert np.asarray(layer_data).shape == (12, 16)
    np.testing.assert_allclose(in_angstrom(kwargs["scale"], kwargs["units"]), [0.8, 0.8])


def test_origin_gives_translate(tmp_path, rng):
    data = rng.normal(size=(3, 4, 5)).astype(np.float32)
    path = tmp_path / "origin.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 2.0
        mrc.header.origin = (10.0, 20.0, 30.0)
    [(_, kwargs, _)] = read(path)
    np.testing.assert_allclose(
        in_angstrom(kwargs["translate"], kwargs["units"]), [30.0, 20.0, 10.0]
    )


def test_nstart_gives_translate_when_origin_is_zero(tmp_path, rng):
    data = rng.normal(size=(3, 4, 5)).astype(np.float32)
    path = tmp_path / "nstart.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 2.0
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = 1, 2, 3
    [(_, kwargs, _)] = read(path)
    np.testing.assert_allclose(in_angstrom(kwargs["translate"], kwargs["units"]), [6.0, 4.0, 2.0])


def test_complex_gives_amplitude_and_hidden_phase(tmp_path, rng):
    data = (rng.normal(size=(2, 6, 8)) + 1j * rng.normal(size=(2, 6, 8))).astype(np.complex64)
    path = tmp_path / "fft.mrcz"
    napari_mrcz.writeMRC(data, path, compressor="zstd")
    (amplitude, amplitude_kwargs, _), (phase, phase_kwargs, _) = read(path)
    np.testing.assert_allclose(np.asarray(amplitude), np.abs(data), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(phase), np.angle(data), rtol=1e-6)
    assert amplitude_kwargs.get("visible", True)
    assert phase_kwargs["visible"] is False


def test_python_mrcz_list_file_is_one_layer_per_channel(tmp_path, rng):
    import mrcz

    frames = [rng.normal(size=(2, 6, 8)).astype(np.float32) for _ in range(3)]
    path = tmp_path / "stem.mrcz"
    mrcz.writeMRC(frames, str(path), compressor="zstd")
    [(layer_data, kwargs, _)] = read(path)
    assert kwargs["channel_axis"] == 1
    np.testing.assert_array_equal(layer_data, np.stack(frames))


def test_large_file_is_lazy_and_cheap(tmp_path, monkeypatch, rng):
    """Above the threshold the layer data is a LazyMRC: nothing decompressed up front."""
    data = rng.normal(size=(6, 32, 32)).astype(np.float32)
    path = tmp_path / "big.mrcz"
    napari_mrcz.writeMRC(data, path, compressor="zstd")
    monkeypatch.setattr(napari_reader, "LAZY_THRESHOLD_BYTES", 1000)
    [(layer_data, kwargs, _)] = read(path)
    assert isinstance(layer_data, LazyMRC)
    assert layer_data.shape == data.shape
    np.testing.assert_array_equal(layer_data[5], data[5])
    assert kwargs["contrast_limits"] == pytest.approx((data.min(), data.max()))
    layer_data.close()


def test_damaged_file_raises_a_clear_error(tmp_path):
    path = tmp_path / "broken.mrc"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(Exception, match=r"broken\.mrc") as info:
        read(path)
    assert "too short" in str(info.value)


@pytest.mark.parametrize("path", real_files("mrc"), ids=lambda p: p.name)
def test_real_files_open_at_mrcfile_voxel_size(path):
    """Every real MRC file opens with mrcfile's data, shown in (z, y, x) crystal order
    (EMDB/CCP4 maps with MAPC/MAPR/MAPS = 2, 1, 3 are transposed as a view), at
    mrcfile's voxel size."""
    import warnings

    layers = read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(path, permissive=True) as mrc:
            expected = np.asarray(mrc.data)
            voxel = [float(mrc.voxel_size[axis]) for axis in ("z", "y", "x")]
            mapcrs = (int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps))
    if expected.ndim == 3:
        # MAPS, MAPR, MAPC name the crystal axes (1 = x) of the sections, rows, columns.
        stored = (mapcrs[2] - 1, mapcrs[1] - 1, mapcrs[0] - 1)
        expected = expected.transpose([stored.index(axis) for axis in (2, 1, 0)])
    layer_data, kwargs, _ = layers[0]
    if np.iscomplexobj(expected):
        expected = np.abs(expected)
    np.testing.assert_array_equal(np.asarray(layer_data), expected)
    if all(np.isfinite(voxel)) and min(voxel) > 0:
        np.testing.assert_allclose(
            in_angstrom(kwargs["scale"], kwargs["units"]),
            voxel[-len(in_angstrom(kwargs["scale"], kwargs["units"])) :],
            rtol=1e-6,
        )
    assert all(size > 0 for size in kwargs["scale"])


def test_permuted_map_is_a_view_with_permuted_origin(tmp_path, rng):
    """MAPC/MAPR/MAPS = 2, 1, 3 and an ORIGIN: layer in (z, y, x), origin per axis."""
    data = rng.normal(size=(4, 6, 8)).astype(np.float32)  # sections, rows (x), columns (y)
    path = tmp_path / "permuted.map"
    write_permuted_map(path, data, origin=(10.0, 20.0, 30.0))
    [(layer_data, kwargs, _)] = read(path)
    np.testing.assert_array_equal(np.asarray(layer_data), data.transpose(0, 2, 1))
    assert not layer_data.flags.owndata  # a transposed view, not a copy
    np.testing.assert_allclose(in_angstrom(kwargs["scale"], kwargs["units"]), [3.0, 2.0, 1.0])
    np.testing.assert_allclose(
        in_angstrom(kwargs["translate"], kwargs["units"]), [30.0, 20.0, 10.0]
    )


@pytest.mark.parametrize("path", real_files("dm3") + real_files("dm4"), ids=lambda p: p.name)
def test_real_dm_files_open_one_layer_per_image(path):
    """Every image of a real DM file but the thumbnail becomes a layer, at its pixel
    size; a complex image also a phase layer, a spectrum also a plot layer."""
    images = napari_mrcz.read_dm(path)
    layers = read(path)
    complex_images = sum(np.iscomplexobj(data) for data, _ in images)
    spectra = sum(np.ndim(data) - meta["rgb"] == 1 for data, meta in images)
    assert len(layers) == len(images) + complex_images + spectra
    image_layers = [layer for layer in layers if layer[2] == "image"]
    for (data, meta), (layer_data, kwargs, _) in zip(
        [image for image in images for _ in range(1 + np.iscomplexobj(image[0]))],
        image_layers,
        strict=True,
    ):
        expected = np.asarray(data)
        if np.iscomplexobj(expected):
            continue
        np.testing.assert_array_equal(np.asarray(layer_data).reshape(expected.shape), expected)
        assert kwargs["rgb"] == meta["rgb"]
        assert kwargs["metadata"]["format"] == "DM"
        spatial = expected.ndim - meta["rgb"]
        if spatial >= 2:
            np.testing.assert_allclose(
                in_angstrom(kwargs["scale"], kwargs["units"]), meta["scale_angstrom"]
            )
        else:  # a spectrum: a strip in its own unit, both axes alike
            assert in_angstrom(kwargs["scale"], kwargs["units"]) == pytest.approx(
                [meta["scale_angstrom"][0]] * 2
            )
            assert kwargs["units"][0] == kwargs["units"][1]


def test_spectrum_is_a_strip_and_a_line_plot(shared_data):
    """An EELS spectrum (0.5 eV per channel) shows as DigitalMicrograph shows it: a
    line along the energy axis, over a strip of the data."""
    path = shared_data / "dm3" / "rsciio_1D_test-EELS_spectrum.dm3"
    [(values, _)] = napari_mrcz.read_dm(path)
    (strip, strip_kwargs, strip_type), (plot, plot_kwargs, plot_type) = read(path)
    assert (strip_type, plot_type) == ("image", "shapes")
    assert strip.shape == (1, 2048)
    length = 0.5 * 2048
    assert strip_kwargs["scale"] == pytest.approx([0.5, 0.5])  # the channel width
    assert strip_kwargs["affine"][0, 0] * 0.5 == pytest.approx(
        length * napari_reader.SPECTRUM_STRIP_HEIGHT
    )  # shown as a strip, not a 1-pixel line
    assert strip_kwargs["units"] == ["eV", "eV"]
    [line] = plot
    np.testing.assert_allclose(line[:, 1], 0.5 * np.arange(2048) + strip_kwargs["translate"][1])
    # higher counts higher up (napari's y grows downwards), the peak at the top
    assert np.argmin(line[:, 0]) == np.argmax(np.asarray(values))
    assert plot_kwargs["shape_type"] == "path"
    assert plot_kwargs["units"] == ["eV", "eV"]


def test_wavelength_spectrum_plot_lies_on_its_strip(shared_data):
    """A CL spectrum along a wavelength (a length): its plot is in the strip's unit
    (nm), so the line spans the strip, not ten times its length."""
    path = shared_data / "dm4" / "rsciio_1D_test-MonarcCL_spectrum-ccd.dm4"
    (strip, strip_kwargs, _), (plot, plot_kwargs, _) = read(path)
    assert strip_kwargs["units"] == plot_kwargs["units"] == ["nm", "nm"]
    [line] = plot
    size, offset = strip_kwargs["scale"][1], strip_kwargs["translate"][1]
    np.testing.assert_allclose(line[:, 1], offset + size * np.arange(strip.shape[1]))
    assert plot_kwargs["edge_width"] == pytest.approx(size * strip.shape[1] / 500)


def test_amplitude_contrast_ignores_the_central_peak(tmp_path, rng):
    """An FFT amplitude whose centre is 10^6 times the rest opened almost black with
    min..max limits; percentiles show the rest."""
    data = (rng.normal(size=(64, 64)) + 1j * rng.normal(size=(64, 64))).astype(np.complex64)
    data[32, 32] = 3.65e9
    path = tmp_path / "fft.mrc"
    napari_mrcz.writeMRC(data, path)
    (_, amplitude, _), _ = read(path)
    _, high = amplitude["contrast_limits"]
    assert high < 10  # the noise amplitudes are of order 1
    assert np.mean(np.abs(data) > high) < 0.01


def test_dm4_with_different_pixel_sizes_per_axis():
    """2 A along y, 1 nm along x: the layer's scale is (2, 10) Angstrom."""
    if not real_files("dm4"):
        pytest.skip("the shared real-file folder is not available")
    path = next(p for p in real_files("dm4") if "nonSquare_diffPixelSize" in p.name)
    [(_, kwargs, _)] = read(path)
    np.testing.assert_allclose(in_angstrom(kwargs["scale"], kwargs["units"]), [2.0, 10.0])
    assert kwargs["units"] == ["nm", "nm"]


@pytest.mark.parametrize("gib", [2.5, 4.5])
def test_files_over_2_and_4_gib_open_lazily_and_their_last_frame_is_right(tmp_path, rng, gib):
    """64-bit offsets everywhere: a sparse file (header, truncate, last frame) opens
    lazily in napari, and its last frame is the one written."""
    ny = nx = 1024
    frame_bytes = ny * nx * 4
    nz = int(gib * 2**30) // frame_bytes + 1
    path = tmp_path / "huge.mrc"
    napari_mrcz.writeMRC(np.zeros((ny, nx), np.float32), path)
    last = rng.normal(size=(ny, nx)).astype(np.float32)
    with open(path, "r+b") as handle:
        handle.seek(8)
        handle.write(np.array([nz], dtype="<i4").tobytes())
        handle.truncate(1024 + nz * frame_bytes)
        handle.seek(1024 + (nz - 1) * frame_bytes)
        handle.write(last.tobytes())
    assert path.stat().st_size > gib * 2**30
    [(layer_data, _, _)] = read(path)
    assert isinstance(layer_data, LazyMRC)
    assert layer_data.shape == (nz, ny, nx)
    np.testing.assert_array_equal(layer_data[-1], last)
    np.testing.assert_array_equal(napari_mrcz.readMRC(path, idx=-1)[0], last)
    layer_data.close()


def test_rgb_mode_16_is_an_rgb_layer(tmp_path, rng):
    """IMOD's RGB files (mode 16) open as one RGB layer."""
    import struct

    rgb = rng.integers(0, 256, size=(2, 5, 4, 3), dtype=np.uint8)
    path = tmp_path / "colour.mrc"
    napari_mrcz.writeMRC(rgb.reshape(2, 5, 12).view(np.int8), path, pixelsize=2.0)
    with open(path, "r+b") as handle:
        handle.write(struct.pack("<i", 4))  # NX = 4 pixels of 3 bytes
        handle.seek(12)
        handle.write(struct.pack("<i", 16))
        handle.seek(28)
        handle.write(struct.pack("<i", 4))
        handle.seek(40)
        handle.write(struct.pack("<f", 8.0))
    [(layer_data, kwargs, _)] = read(path)
    assert kwargs["rgb"] is True
    np.testing.assert_array_equal(np.asarray(layer_data), rgb)
    np.testing.assert_allclose(in_angstrom(kwargs["scale"], kwargs["units"]), [2.0, 2.0, 2.0])


def test_fei_extended_header_reaches_the_layer_metadata(shared_data):
    [(_, kwargs, _)] = read(shared_data / "mrc" / "rsciio_HAADFscan.mrc")
    extended = kwargs["metadata"]["header"]["extendedHeader"]
    assert extended["type"] == "FEI2"
    assert extended["records"][0]["Microscope type"] == "Spectra"


def test_stack_of_files_with_different_pixel_sizes_is_not_merged(tmp_path, rng):
    """Files that differ in pixel size open one layer each (with a warning)."""
    paths = []
    for number, size in enumerate((1.0, 5.0)):
        path = tmp_path / f"s{number}.mrc"
        napari_mrcz.writeMRC(rng.normal(size=(3, 4, 4)).astype(np.float32), path, pixelsize=size)
        paths.append(str(path))
    with pytest.warns(UserWarning, match="one layer per file"):
        layers = npe2.read(paths, stack=True, plugin_name="napari-mrcz")
    assert len(layers) == 2


@pytest.mark.parametrize("path", real_files("mrc"), ids=lambda path: path.name)
def test_real_files_warn_only_about_what_changes_the_view(path):
    """No warning for pre-2014 formalities (NVERSION 0, no 'MAP ', zero stamps) nor for
    the z cell of a single image (EPU, FEI): only for an unusable pixel size."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        napari_reader.read_layers(str(path))
    messages = [str(warning.message) for warning in caught]
    assert all(issubclass(warning.category, napari_mrcz.MRCZWarning) for warning in caught)
    if path.name.startswith("rsciio_HAADF"):  # a 2D scan whose z cell is 0
        assert messages == []
    for message in messages:
        assert "pixel size" in message
        assert str(path) in message
    assert len(messages) <= 1


def test_single_image_with_zero_z_cell_opens_without_warning(tmp_path, caplog):
    """EPU and FEI micrographs store CELLA z = 0: the 2D layer needs no z pixel size."""
    path = tmp_path / "epu_like.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((8, 6), dtype=np.float32))
        mrc.header.cella = (6 * 0.667, 8 * 0.667, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ((_, kwargs, _),) = napari_reader.read_layers(str(path))
    assert in_angstrom(kwargs["scale"], kwargs["units"]) == pytest.approx([0.667, 0.667])
    assert not [record for record in caplog.records if record.levelname == "WARNING"]


def test_peaked_data_gets_the_same_percentile_contrast_from_any_file(tmp_path, rng):
    """A saved FFT amplitude: its DMIN..DMAX (the central peak) would show all else black."""
    from napari_mrcz._napari.reader import DISPLAY_PERCENTILES, read_layers

    amplitude = rng.exponential(1e5, size=(64, 64)).astype(np.float32)
    amplitude[32, 32] = 3.65e9  # the central peak
    path = tmp_path / "fft_amplitude.mrc"
    napari_mrcz.writeMRC(amplitude, path)
    [(_, kwargs, _)] = read_layers(str(path))
    low, high = kwargs["contrast_limits"]
    expected = np.percentile(amplitude, DISPLAY_PERCENTILES)
    assert (low, high) == pytest.approx(tuple(expected), rel=1e-6)
    assert high < 1e7
    ordinary = tmp_path / "ordinary.mrc"
    noise = rng.normal(size=(64, 64)).astype(np.float32)
    napari_mrcz.writeMRC(noise, ordinary)
    [(_, kwargs, _)] = read_layers(str(ordinary))
    assert kwargs["contrast_limits"] == pytest.approx((noise.min(), noise.max()))


@pytest.fixture
def web_server():
    from tests.servers import RangeServer

    server = RangeServer()
    yield server
    server.close()


def test_addresses_leave_their_secrets_out_of_the_layers(tmp_path, rng, web_server):
    """A stack of signed addresses: no password or signature in names or metadata."""
    data = rng.normal(size=(3, 16, 16)).astype(np.float32)
    for name in ("a.mrc", "b.mrc"):
        napari_mrcz.writeMRC(data, tmp_path / name)
        web_server.files[f"/{name}"] = (tmp_path / name).read_bytes()
    signed = [
        web_server.url(f"/{name}").replace("http://", "http://alice:hunter2@")
        + "?X-Amz-Signature=abc123"
        for name in ("a.mrc", "b.mrc")
    ]
    for layers in (napari_reader.read_layers(signed), napari_reader.read_layers(signed[0])):
        [(layer_data, kwargs, _)] = layers
        shown = repr(kwargs) + repr(layer_data)
        assert "hunter2" not in shown
        assert "abc123" not in shown
        assert kwargs["name"].startswith("a.mrc")


def test_frames_of_a_file_on_a_server_stay_lazy(tmp_path, rng, web_server):
    """A python-mrcz list of frames from a server shows as one lazy stack of slices."""
    frames = [rng.normal(size=(2, 256, 256)).astype(np.float32) for _ in range(8)]
    path = tmp_path / "frames.mrcz"
    napari_mrcz.writeMRC(frames, path, compressor="lz4", meta={})
    web_server.files["/frames.mrcz"] = path.read_bytes()
    [(layer_data, _, _)] = napari_reader.read_layers(web_server.url("/frames.mrcz"))
    assert isinstance(layer_data, LazyMRC)
    assert layer_data.shape == (16, 256, 256)
    fetched = sum(request.body_bytes for request in web_server.requests)
    assert fetched < path.stat().st_size / 4  # the header and at most a slice or two
