"""Whole-file conversion (the engine behind mrcz compress/decompress/convert)."""

import io
import json
import struct

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz import formats
from napari_mrcz.mrc.header import FIELD_OFFSETS, IMOD_STAMP
from napari_mrcz.mrc.jsonmeta import encode_meta
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.tools import convert as conversion

from tests.helpers import SHARED_DATA, real_files

KEPT_FIELDS = (
    "nx",
    "ny",
    "nz",
    "mapc",
    "mapr",
    "maps",
    "ispg",
    "origin",
    "nxstart",
    "nystart",
    "nzstart",
    "cellb",
    "voltage",
    "cs",
    "gain",
    "exttyp",
    "nsymbt",
    "imod_stamp",
    "imod_flags",
)


def convert(source, target, compressor, **kwargs):
    """Convert and verify every image of ``source``; return the targets."""
    targets = conversion.numbered_targets(str(target), formats.image_count(source))
    with formats.open_images(source) as images:
        for image, path in zip(images, targets, strict=True):
            conversion.write_image(image, path, compressor, **kwargs)
            conversion.verify_image(image, path)
    return targets


def mrcfile_messages(path):
    report = io.StringIO()
    mrcfile.validate(str(path), print_file=report)
    return report.getvalue().splitlines()[1:]


@pytest.fixture
def annotated_map(tmp_path, rng):
    """A plain map with the header fields other programs set, written by mrcfile."""
    path = tmp_path / "map.mrc"
    with mrcfile.new(path) as handle:
        handle.set_data(rng.normal(size=(6, 10, 12)).astype(np.float32))
        handle.voxel_size = (1.25, 1.5, 2.0)
        handle.header.origin = (10.0, -4.5, 3.0)
        handle.header.nxstart, handle.header.nystart, handle.header.nzstart = 2, 3, 4
        handle.header.ispg = 1
        handle.add_label("written by mrcfile for a test")
        handle.add_label("second label")
    return path


def test_header_survives_compress_and_decompress(annotated_map, tmp_path):
    [packed] = convert(annotated_map, tmp_path / "map.mrcz", "zstd", clevel=4)
    [plain] = convert(packed, tmp_path / "back.mrc", None)
    source, middle, final = (read_layout(path) for path in (annotated_map, packed, plain))
    for field in KEPT_FIELDS:
        if field not in ("exttyp", "nsymbt"):  # the MRCZ gains a JSON meta: its checksums
            np.testing.assert_array_equal(middle.header[field], source.header[field], field)
        np.testing.assert_array_equal(final.header[field], source.header[field], field)
    assert middle.chunk_checksums is not None
    assert len(middle.chunk_checksums) == middle.nz
    assert final.chunk_checksums is None
    np.testing.assert_allclose(middle.pixelsize, source.pixelsize, rtol=1e-6)
    np.testing.assert_array_equal(final.header["cella"], source.header["cella"])
    assert middle.labels == [*source.labels, "napari-mrcz blosc zstd level 4 bitshuffle"]
    assert final.labels == source.labels  # the codec label goes with the codec
    assert int(middle.header["mz"]) == 0  # python-mrcz reads MZ as slices per frame
    assert int(final.header["mz"]) == 6
    image, meta = mrcz.readMRC(packed)  # python-mrcz reads the MRCZ
    np.testing.assert_array_equal(image, mrcfile.read(annotated_map))
    np.testing.assert_allclose(meta["pixelsize"], [2.0, 1.5, 1.25], rtol=1e-6)
    assert mrcfile_messages(plain) == ["File appears to be valid."]
    with mrcfile.open(plain) as handle:
        assert handle.voxel_size.tolist() == pytest.approx((1.25, 1.5, 2.0))


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
@pytest.mark.parametrize("path", real_files("mrc"), ids=lambda path: path.name)
def test_real_files_round_trip(path, tmp_path):
    """Every real MRC file: MRCZ and back gives mrcfile's data and voxel size.

    Maps with a permuted axis order cannot go to MRCZ (python-mrcz would read them
    wrongly); they convert to plain MRC exactly.
    """
    converted = [convert(path, tmp_path / "direct.mrc", None)[0]]
    if read_layout(path).mapcrs != (1, 2, 3):
        with pytest.raises(napari_mrcz.MRCZFormatError, match="MAPC, MAPR, MAPS"):
            convert(path, tmp_path / "z.mrcz", "zstd")
    else:
        [packed] = convert(path, tmp_path / "z.mrcz", "zstd")
        converted += convert(packed, tmp_path / "plain.mrc", None)
        if read_layout(path).mode != 12:  # python-mrcz has no float16
            np.testing.assert_array_equal(mrcz.readMRC(packed)[0], mrcfile.read(path))
    with mrcfile.open(path, permissive=True) as original:
        for one in converted:
            with mrcfile.open(one, permissive=True) as copy:
                np.testing.assert_array_equal(copy.data, original.data)
                assert copy.voxel_size.tolist() == original.voxel_size.tolist()
                np.testing.assert_array_equal(
                    copy.header.origin.tolist(), original.header.origin.tolist()
                )
                assert bytes(copy.extended_header) == bytes(original.extended_header)


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_fei_extended_header_is_kept_byte_for_byte(tmp_path):
    source = SHARED_DATA / "mrc" / "rsciio_HAADFscan.mrc"
    [packed] = convert(source, tmp_path / "scan.mrcz", "lz4")
    original, copy = read_layout(source), read_layout(packed)
    assert copy.exttyp == "FEI2"
    assert copy.read_extended_header() == original.read_extended_header()
    theirs = napari_mrcz.readMRCHeader(source)[0]["extendedHeader"]
    ours = napari_mrcz.readMRCHeader(packed)[0]["extendedHeader"]
    assert ours.keys() == theirs.keys()


def test_imod_unsigned_bytes_stay_mode_0(tmp_path, rng):
    path = tmp_path / "imod.mrc"
    data = rng.integers(0, 256, size=(3, 8, 8)).astype(np.uint8)
    with mrcfile.new(path) as handle:
        handle.set_data(data.view(np.int8))
    with open(path, "r+b") as handle:  # IMOD's stamp, without its "signed bytes" flag
        handle.seek(FIELD_OFFSETS["imod_stamp"])
        handle.write(struct.pack("<ii", IMOD_STAMP, 0))
    [packed] = convert(path, tmp_path / "imod.mrcz", "zstd")
    layout = read_layout(packed)
    assert layout.mode == 0
    assert layout.dtype == np.uint8
    np.testing.assert_array_equal(napari_mrcz.readMRC(packed)[0], data)


def test_four_bit_data_becomes_int8(tmp_path, rng):
    path = tmp_path / "counts.mrc"
    data = rng.integers(0, 16, size=(2, 6, 10)).astype(np.uint8)
    napari_mrcz.writeMRC(data, path, dtype="uint4")
    [packed] = convert(path, tmp_path / "counts.mrcz", "zstd")
    image, meta = mrcz.readMRC(packed)
    assert meta["dtype"].endswith("i1")
    np.testing.assert_array_equal(image, data)


def test_big_endian_source_keeps_its_byte_order(tmp_path, rng):
    path = tmp_path / "big.mrc"
    data = rng.normal(size=(2, 8, 8)).astype(np.float32)
    napari_mrcz.writeMRC(data, path, endian="be", meta={"kept": True})
    [packed] = convert(path, tmp_path / "big.mrcz", "zstd")
    layout = read_layout(packed)
    assert layout.byteorder == ">"
    assert layout.json_meta == {"kept": True}
    image, _ = mrcz.readMRC(packed, endian="be")
    np.testing.assert_array_equal(image, data)


def test_python_mrcz_frames_stay_frames(tmp_path, rng):
    frames = [rng.normal(size=(2, 8, 8)).astype(np.float32) for _ in range(3)]
    path = tmp_path / "frames.mrcz"
    mrcz.writeMRC(frames, str(path), pixelsize=[2.0, 1.0, 1.0], compressor="zstd")
    [packed] = convert(path, tmp_path / "again.mrcz", "lz4")
    [plain] = convert(path, tmp_path / "frames.mrc", None)
    for reader in (mrcz.readMRC, napari_mrcz.readMRC):
        image, _ = reader(str(packed))
        assert isinstance(image, list)
        assert len(image) == 3
        np.testing.assert_array_equal(image[1], frames[1])
    for reader in (mrcz.readMRC, napari_mrcz.readMRC):  # MZ = 2, the MRCZ label
        image, meta = reader(str(plain))
        assert isinstance(image, list)
        assert len(image) == 3
        np.testing.assert_allclose(meta["pixelsize"], [2.0, 1.0, 1.0])
    assert mrcfile.validate(str(plain), print_file=io.StringIO())
    with mrcfile.open(plain) as handle:  # mrcfile: x and y; z is the frames' spacing
        assert handle.voxel_size.tolist()[:2] == pytest.approx((1.0, 1.0))
        np.testing.assert_array_equal(handle.data[2:4], frames[1])


def test_permuted_map_goes_to_plain_mrc_only(tmp_path, rng):
    path = tmp_path / "permuted.map"
    with mrcfile.new(path) as handle:
        handle.set_data(rng.normal(size=(4, 5, 6)).astype(np.float32))
        handle.header.mapc, handle.header.mapr, handle.header.maps = 3, 2, 1
        handle.voxel_size = (1.0, 2.0, 3.0)
    with pytest.raises(napari_mrcz.MRCZFormatError, match="MAPC, MAPR, MAPS = \\(3, 2, 1\\)"):
        convert(path, tmp_path / "permuted.mrcz", "zstd")
    assert not (tmp_path / "permuted.mrcz").exists()
    [plain] = convert(path, tmp_path / "plain.mrc", None)
    with mrcfile.open(plain) as copy, mrcfile.open(path) as original:
        assert copy.voxel_size.tolist() == original.voxel_size.tolist()
        np.testing.assert_array_equal(copy.data, original.data)


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_verify_refuses_values_lost_by_a_cast(tmp_path):
    """float64 beyond float32's range would become inf or 0: not a faithful copy."""
    [(_, meta)] = napari_mrcz.read_dm(SHARED_DATA / "dm4" / "rsciio_2D_test-12.dm4")
    lost = formats.Image("a.dm4", np.array([[0.1, 1e-50], [3.3, 1e300]]), 16, dm_meta=meta)
    conversion.write_image(lost, str(tmp_path / "lost.mrcz"), "zstd")
    with pytest.raises(conversion.VerificationError, match="float64 values that float32"):
        conversion.verify_image(lost, str(tmp_path / "lost.mrcz"))
    assert conversion.incomplete(lost) == "float64 stored as float32"
    kept = formats.Image("b.dm4", np.array([[0.1, -2.5], [3.3e30, 0.0]]), 16, dm_meta=meta)
    conversion.write_image(kept, str(tmp_path / "kept.mrcz"), "zstd")
    conversion.verify_image(kept, str(tmp_path / "kept.mrcz"))


def test_verify_finds_a_damaged_output(annotated_map, tmp_path):
    target = tmp_path / "copy.mrc"
    with formats.open_images(annotated_map) as [image]:
        conversion.write_image(image, str(target), None)
        raw = bytearray(target.read_bytes())
        raw[1024 + 3 * 10 * 12 * 4 + 5] ^= 0xFF  # a byte of z-slice 3
        target.write_bytes(bytes(raw))
        with pytest.raises(conversion.VerificationError, match="z-slice 3 differs"):
            conversion.verify_image(image, str(target))


def test_stopped_write_leaves_nothing(annotated_map, tmp_path):
    def stop(_nbytes):
        raise KeyboardInterrupt

    with formats.open_images(annotated_map) as [image], pytest.raises(KeyboardInterrupt):
        conversion.write_image(image, str(tmp_path / "out.mrcz"), "zstd", progress=stop)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["map.mrc"]


def test_progress_adds_up_to_the_data(annotated_map, tmp_path):
    seen = []
    with formats.open_images(annotated_map) as [image]:
        conversion.write_image(image, str(tmp_path / "out.mrcz"), "zstd", progress=seen.append)
        conversion.verify_image(image, str(tmp_path / "out.mrcz"), progress=seen.append)
        assert sum(seen) == 2 * image.nbytes == 2 * 6 * 10 * 12 * 4


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_dm_image_to_mrcz(tmp_path):
    source = SHARED_DATA / "dm4" / "openncem_dmTest_3D_int16_64_65_66.dm4"
    [packed] = convert(source, tmp_path / "stack.mrcz", "zstd")
    [(expected, dm_meta)] = napari_mrcz.read_dm(source)
    image, meta = napari_mrcz.readMRC(packed)
    np.testing.assert_array_equal(image, expected)
    # rosettasciio: z 4 um, y 3 nm, x 2 pm
    np.testing.assert_allclose(meta["pixelsize"], [4e4, 30.0, 0.02])
    assert meta["dm_tags"] == json.loads(encode_meta(dm_meta["tags"]))  # tuples as lists


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_dm_rgb_is_refused(tmp_path):
    source = SHARED_DATA / "dm4" / "rsciio_2D_test-23.dm4"
    with pytest.raises(napari_mrcz.MRCZFormatError, match="RGB"), formats.open_images(source):
        pass


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_dm_32_bit_integers_become_mrc2014_types_in_plain_files(tmp_path):
    """int32 data that fit 16 bits are stored in 16 (as the napari writer does)."""
    source = SHARED_DATA / "dm3" / "rsciio_2D_test_diffraction_pattern.dm3"
    [plain] = convert(source, tmp_path / "pattern.mrc", None)
    [packed] = convert(source, tmp_path / "pattern.mrcz", "zstd")
    assert read_layout(plain).mode in (1, 2, 6)
    assert read_layout(packed).mode in (1, 6, 7)
    [(expected, _)] = napari_mrcz.read_dm(source)
    np.testing.assert_array_equal(napari_mrcz.readMRC(plain)[0], expected)
    np.testing.assert_array_equal(napari_mrcz.readMRC(packed)[0], expected)
    assert mrcfile_messages(plain) == ["File appears to be valid."]  # no JSON meta in it


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_dm_axes_that_are_not_lengths_get_no_origin(tmp_path):
    """An energy-loss axis (eV) has no place in ORIGIN, which is in Angstrom."""
    source = SHARED_DATA / "dm3" / "scifi_DMReader_SpectrumImage_SI-EELS.dm3"
    [(_, dm_meta)] = napari_mrcz.read_dm(source)
    assert dm_meta["axes"][0]["units"] == "eV"
    assert dm_meta["axes"][0]["offset"] != 0
    [packed] = convert(source, tmp_path / "si.mrcz", "zstd")
    assert read_layout(packed).header["origin"].tolist() == [0.0, 0.0, 0.0]
    assert read_layout(packed).pixelsize[0] == 0.0  # unknown, not eV read as Angstrom
