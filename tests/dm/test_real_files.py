"""The DM reader on real DM3/DM4 files nobody here wrote (../shared/data, see its
PROVENANCE.md), checked against rosettasciio and ncempy reading the same files.

The references are used here only, never by napari_mrcz. Where they are wrong or
cannot read a file, the tests say so:

* rosettasciio reads the 5 x 5 packed-complex FFT (DM type 27) as 5 x 4 (it drops the
  last column); we return 5 x 5, whose first four columns equal its reading;
* rosettasciio takes the bytes of an RGBA pixel (DM type 23) as blue, green, red,
  alpha, we as red, green, blue (the vendor's description, and the DM plot colours of
  the thumbnails); the bytes themselves must agree;
* ncempy cannot read bool, RGB(A) or packed-complex images.
"""

from __future__ import annotations

import functools
import pathlib
import re

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_mrcz import read_dm, readDM4
from napari_mrcz.dm.images import DATA_TYPES, LazyDMArray
from napari_mrcz.dm.tags import DMTagParser

from tests.helpers import read_or_none, real_files

rsciio_dm = pytest.importorskip("rsciio.digitalmicrograph")
ncempy_dm = pytest.importorskip("ncempy.io.dm")

DM_FILES = real_files("dm3") + real_files("dm4")
#: DM types ncempy cannot read.
NCEMPY_CANNOT = {14, 8, 23, 27, 28}
#: The DigitalMicrograph-written files of rosettasciio: <dims>_test-<k>.
TEST_K = re.compile(r"rsciio_(\d)D_test-(\d+)\.dm[34]$")
#: DataType DigitalMicrograph actually stored when asked for type k (it converts some).
STORED_TYPE = {5: 3, 8: 23, 27: 3, 28: 13}

pytestmark = pytest.mark.skipif(not DM_FILES, reason="the shared real-file folder is absent")


def _ids(paths: list[pathlib.Path]) -> list[str]:
    return [path.name for path in paths]


@functools.cache
def rsciio_reading(path: pathlib.Path) -> list[dict]:
    return rsciio_dm.file_reader(str(path))


def rsciio_bytes(data: np.ndarray) -> np.ndarray:
    """rosettasciio's structured RGBA pixels as their three first stored bytes."""
    if data.dtype.names:
        return np.stack([data[channel] for channel in ("B", "G", "R")], axis=-1)
    return data


@pytest.mark.parametrize("path", DM_FILES, ids=_ids(DM_FILES))
def test_matches_rosettasciio(path):
    ours = read_dm(path)
    theirs = rsciio_reading(path)
    assert len(ours) == len(theirs)
    for (data, meta), reference in zip(ours, theirs, strict=True):
        expected = rsciio_bytes(reference["data"])
        if meta["data_type"] == 27:  # rosettasciio drops the last column
            assert expected.shape == (data.shape[0], data.shape[1] - 1)
            npt.assert_array_equal(data[:, :-1], expected)
        else:
            assert data.dtype == expected.dtype
            npt.assert_array_equal(data, expected)
        axes = reference["axes"]
        assert [a["size"] for a in meta["axes"]] == [a["size"] for a in axes]
        assert [a["units"] for a in meta["axes"]] == [a["units"] for a in axes]
        npt.assert_allclose([a["scale"] for a in meta["axes"]], [a["scale"] for a in axes])
        npt.assert_allclose([a["offset"] for a in meta["axes"]], [a["offset"] for a in axes])
        image = reference["original_metadata"]["ImageList"]["TagGroup0"]  # this image
        brightness = image["ImageData"]["Calibrations"]["Brightness"]
        assert meta["intensity"] == {
            "origin": pytest.approx(brightness["Origin"]),
            "scale": pytest.approx(brightness["Scale"]),
            "units": brightness["Units"] or "",
        }
        assert meta["name"] == (image.get("Name") or "")
        assert meta["format"] == f"DM{path.suffix[-1]}"


@pytest.mark.parametrize("path", DM_FILES, ids=_ids(DM_FILES))
def test_matches_ncempy_where_it_reads(path):
    (data, meta), *_ = read_dm(path)
    if meta["data_type"] in NCEMPY_CANNOT:
        pytest.skip(f"ncempy cannot read DM type {meta['data_type']}")
    reference = ncempy_dm.dmReader(str(path))
    npt.assert_array_equal(data, reference["data"])
    assert reference["data"].dtype == data.dtype
    # ncempy lists only the calibrations the file has (the stack builder's has two of three).
    calibrated = meta["axes"][len(meta["axes"]) - len(reference["pixelSize"]) :]
    npt.assert_allclose(reference["pixelSize"], [a["scale"] for a in calibrated], rtol=1e-6)
    assert list(reference["pixelUnit"]) == [a["units"] for a in calibrated]


@pytest.mark.parametrize("path", DM_FILES, ids=_ids(DM_FILES))
def test_lazy_and_python_mrcz_views_agree(path):
    eager = read_dm(path, lazy=False)
    lazy = read_dm(path, lazy=True)
    for (array, meta), (proxy, _) in zip(eager, lazy, strict=True):
        assert isinstance(proxy, LazyDMArray)
        assert proxy.shape == array.shape == meta["shape"]
        npt.assert_array_equal(np.asarray(proxy), array)
        npt.assert_array_equal(proxy[-1], array[-1])
    with readDM4(path) as dm4:
        assert dm4.f is None
        image_list = DMTagParser(path).parse_file()["ImageList"]
        assert len(dm4.im) == len(image_list)
        for array, meta in eager:
            image = dm4.im[meta["image_index"]]
            flipped = array[:, ::-1, ...] if array.ndim - meta["rgb"] >= 2 else array
            npt.assert_array_equal(image.imageData, flipped)
            npt.assert_array_equal(image.shape, [a["size"] for a in meta["axes"]])


TEST_K_FILES = [path for path in DM_FILES if TEST_K.search(path.name)]


@pytest.mark.parametrize("path", TEST_K_FILES, ids=_ids(TEST_K_FILES))
def test_digitalmicrograph_written_ramps_read_exactly(path):
    """rosettasciio's test-<k> files hold 1, 2, ... cast to DM type k by DM itself."""
    ndim, asked = (int(group) for group in TEST_K.search(path.name).groups())
    ((data, meta),) = read_dm(path)
    stored = STORED_TYPE.get(asked, asked)
    assert meta["data_type"] == stored
    shape = (2,) * ndim
    ramp = np.arange(1, 2**ndim + 1).reshape(shape)
    kind = DATA_TYPES[stored][2]
    if kind == "rgb":
        expected = np.repeat(ramp[..., None], 3, axis=-1).astype(np.uint8)
    elif kind == "bool":
        expected = ramp != 0
    else:
        expected = ramp.astype(DATA_TYPES[stored][1])
    assert data.dtype == expected.dtype
    npt.assert_array_equal(data, expected)
    assert [a["size"] for a in meta["axes"]] == list(shape)


def _shared(kind: str, name: str) -> pathlib.Path:
    path = next((p for p in real_files(kind) if p.name == name), None)
    if path is None:
        pytest.skip(f"{name} is not in the shared folder")
    return path


def test_packed_complex_fft_is_whole():
    path = _shared("dm4", "rsciio_2D_test_fft_packed_complex8.dm4")
    ((data, meta),) = read_dm(path)
    assert data.shape == (5, 5)
    assert meta["data_type_name"] == "COMPLEX8_PACKED"
    # The file is DM's FFT of a 5 x 5 ramp along x (its zero frequency is 50 = 5 * 10).
    ramp = np.tile(np.arange(5.0), (5, 1))
    npt.assert_allclose(data, np.fft.fftshift(np.fft.fft2(ramp)), atol=1e-5)
    npt.assert_allclose(np.fft.ifft2(np.fft.ifftshift(data)), ramp, atol=1e-5)
    theirs = rsciio_reading(path)[0]["data"]
    assert theirs.shape == (5, 4)  # rosettasciio's known quirk
    npt.assert_array_equal(data[:, :4], theirs)
    with pytest.raises(Exception):  # noqa: B017, PT011 (ncempy raises OSError or others)
        ncempy_dm.dmReader(str(path))


def test_multi_image_file_leaves_out_the_thumbnail():
    path = _shared("dm3", "rsciio_2D_multi_signal.dm3")
    images = read_dm(path)
    assert [meta["image_index"] for _, meta in images] == [1, 2]
    assert [meta["name"] for _, meta in images] == ["HAADF", "Plot"]
    (image, meta), (plot, _) = images
    assert image.shape == (512, 512)
    assert image.dtype == np.uint16
    assert plot.shape == (512,)
    assert plot.dtype == np.float32
    assert meta["pixelsize"] == pytest.approx([0.17751578, 0.17751578])
    assert meta["units_napari"] == ["angstrom", "angstrom"]
    assert len(readDM4(path).im) == 3


@pytest.mark.parametrize("suffix", ["dm3", "dm4"])
def test_pixel_sizes_in_angstrom(suffix):
    (stack,) = read_dm(_shared(suffix, f"openncem_dmTest_3D_int16_64_65_66.{suffix}"))
    data, meta = stack
    assert data.shape == (66, 65, 64)
    assert [a["units"] for a in meta["axes"]] == ["um", "nm", "pm"]
    assert meta["pixelsize"] == pytest.approx([4e4, 30.0, 0.02])
    assert meta["intensity"] == {"origin": 1.0, "scale": pytest.approx(1.1), "units": "e"}
    ((plane, plane_meta),) = read_dm(
        _shared(suffix, f"openncem_dmTest_float32_nonSquare_diffPixelSize.{suffix}")
    )
    assert plane.shape == (64, 128)
    assert [a["units"] for a in plane_meta["axes"]] == ["A", "nm"]
    assert plane_meta["pixelsize"] == pytest.approx([2.0, 10.0])


def test_spectrum_image_axes():
    ((data, meta),) = read_dm(_shared("dm3", "scifi_DMReader_SpectrumImage_SI-EELS.dm3"))
    assert data.shape == (1024, 49, 6)
    energy = meta["axes"][0]
    assert energy["units"] == "eV"
    assert energy["scale"] == 0.5
    assert energy["scale_angstrom"] is None
    assert meta["units_napari"] == ["eV", "pixel", "pixel"]
    assert meta["tags"]["ImageList"]["1"]["ImageTags"]["Meta Data"]["Format"] == "Spectrum image"


def test_tag_tree_strings_and_arrays():
    ((_, meta),) = read_dm(_shared("dm4", "rsciio_2D_test_fft_packed_complex8.dm4"))
    tags = meta["tags"]
    assert tags["LayoutType"] == "Unknown"
    assert tags["ImageList"]["1"]["Name"] == "FFT of untitled2"
    assert tags["Thumbnails"]["0"]["ImageIndex"] == 0
    clut = tags["DocumentObjectList"]["0"]["ImageDisplayInfo"]["CLUT"]
    assert len(clut) == 256
    assert clut[1] == (257, 257, 257)
    assert tags["ImageList"]["0"]["ImageData"]["Data"] == "<array int32 (16384,)>"


# --------------------------------------------------------------------------- fuzz

#: Small real files: DM3 and DM4, thumbnail plus ramp, stack, packed FFT, two images.
FUZZ_NAMES = (
    "rsciio_2D_test-1.dm3",
    "rsciio_3D_test-2.dm4",
    "rsciio_2D_test_fft_packed_complex8.dm4",
    "rsciio_3D_test-23.dm4",
)
FUZZ = settings(
    derandomize=True,
    database=None,
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@functools.cache
def fuzz_sources() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in DM_FILES if path.name in FUZZ_NAMES}


def read_or_refuse(path: pathlib.Path) -> None:
    """Data that agrees with itself (eager, lazy, readDM4), or exactly MRCZFormatError."""
    images = read_or_none(path, read_dm)
    dm4 = None if images is None else read_or_none(path, readDM4)
    if dm4 is None:
        return
    assert dm4.f is None
    for (data, meta), (proxy, _) in zip(images, read_dm(path, lazy=True), strict=True):
        assert data.shape == meta["shape"]
        npt.assert_array_equal(np.asarray(proxy), data)


def _fuzz_names() -> list[str]:
    return sorted(fuzz_sources()) or ["(no shared files)"]


@FUZZ
@given(name=st.sampled_from(_fuzz_names()), fraction=st.floats(0.0, 1.0))
def test_fuzz_truncated_real_files(tmp_path_factory, name, fraction):
    if name not in fuzz_sources():
        pytest.skip("the shared real-file folder is absent")
    raw = fuzz_sources()[name]
    path = tmp_path_factory.mktemp("cut") / name
    path.write_bytes(raw[: int(fraction * (len(raw) - 1))])
    read_or_refuse(path)


@FUZZ
@given(
    name=st.sampled_from(_fuzz_names()),
    flips=st.lists(
        st.tuples(st.floats(0.0, 1.0), st.integers(1, 255), st.booleans()), min_size=1, max_size=3
    ),
)
def test_fuzz_flipped_bytes_real_files(tmp_path_factory, name, flips):
    """Flips anywhere, or (more often useful) in the first 8 kB of tags or the tail."""
    if name not in fuzz_sources():
        pytest.skip("the shared real-file folder is absent")
    raw = bytearray(fuzz_sources()[name])
    for where, xor, in_tags in flips:
        if in_tags:
            at = int(where * 8191) if where < 0.5 else len(raw) - 1 - int(where * 4095)
        else:
            at = int(where * (len(raw) - 1))
        raw[at] ^= xor
    path = tmp_path_factory.mktemp("flip") / name
    path.write_bytes(bytes(raw))
    read_or_refuse(path)
