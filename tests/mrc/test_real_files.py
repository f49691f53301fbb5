"""Real EM files nobody here wrote (../shared/data/mrc), read and rewritten.

Reference: mrcfile 1.5.4 opened with ``permissive=True`` (several headers are defective on
purpose of their writers, see PROVENANCE.md), and the reference readings recorded in
PROVENANCE.md. Quirks covered: machine stamp 0 and 00 00 44 44, no 'MAP ' id, permuted
axes (MAPC/MAPR/MAPS 2 1 3), a 909312-byte FEI2 extended header, float16 (mode 12),
int8 (mode 0), negative and zero cell sizes.

Pixel size: ours is in data order (z, y, x) = (sections, rows, columns); mrcfile's
voxel_size is per crystal axis (x, y, z), CELLA / M. They are the same numbers, ordered
through MAPC/MAPR/MAPS: for the usual 1 2 3 ours is mrcfile's reversed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import warnings

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz

from tests.helpers import SHARED_DATA, real_files

REAL_MRC = real_files("mrc")
pytestmark = pytest.mark.skipif(not REAL_MRC, reason="the shared real-file folder is absent")


def by_name(name: str):
    return pytest.param(name, id=name)


@contextlib.contextmanager
def quiet():
    """mrcfile warns about the defective headers; so may we. Not what is tested here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def mrcfile_reading(path):
    """(data, voxel size x/y/z as float64, header) from mrcfile, permissive."""
    with quiet(), mrcfile.open(path, permissive=True) as mrc:
        voxel = mrc.voxel_size
        return (
            np.array(mrc.data),
            np.array([voxel.x, voxel.y, voxel.z], dtype=np.float64),
            mrc.header.copy(),
        )


def data_order_voxel(voxel_xyz: np.ndarray, mapcrs) -> np.ndarray:
    """mrcfile's per-axis voxel size put in data order (sections, rows, columns)."""
    mapc, mapr, maps = (int(value) for value in mapcrs)
    return np.array([voxel_xyz[maps - 1], voxel_xyz[mapr - 1], voxel_xyz[mapc - 1]])


@pytest.fixture(scope="module")
def references() -> dict:
    return {path.name: mrcfile_reading(path) for path in REAL_MRC}


# --------------------------------------------------------------------------- the inputs


def test_real_files_are_the_published_ones():
    """SHA256SUMS matches: a failure below is about our reader, not damaged fixtures."""
    sums = {}
    for line in (SHARED_DATA / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name] = digest
    assert len(REAL_MRC) >= 18
    for path in REAL_MRC:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[f"mrc/{path.name}"]


REFERENCE_ROW = re.compile(
    r"^\| mrc \| (?P<name>[^|]+?) \|.*mrcfile: \((?P<shape>[\d, ]+)\) (?P<dtype>\w+), "
    r"voxel \[(?P<voxel>[^\]]+)\] A, mode (?P<mode>\d+), mapcrs \[(?P<mapcrs>[\d, ]+)\], "
    r"exttyp '(?P<exttyp>[^']*)', nsymbt (?P<nsymbt>\d+)"
)


def provenance_rows() -> dict[str, dict]:
    rows = {}
    if SHARED_DATA is None:
        return rows
    for line in (SHARED_DATA / "PROVENANCE.md").read_text().splitlines():
        match = REFERENCE_ROW.match(line)
        if match:
            rows[match["name"]] = match.groupdict()
    return rows


@pytest.mark.parametrize("path", REAL_MRC, ids=lambda p: p.name)
def test_matches_provenance_reference_reading(path):
    """Shape, dtype, mode, axis order, NSYMBT and pixel size as PROVENANCE.md records them."""
    row = provenance_rows()[path.name]
    with quiet():
        image, meta = napari_mrcz.readMRC(path)
    assert image.shape == tuple(int(n) for n in row["shape"].split(","))
    assert image.dtype.name == row["dtype"]
    assert meta["MRCtype"] == int(row["mode"])
    mapcrs = [int(n) for n in row["mapcrs"].split(",")]
    assert meta["mapcrs"] == mapcrs
    assert meta["extendedBytes"] == int(row["nsymbt"])
    voxel = np.array([float(v) for v in row["voxel"].split(",")])
    np.testing.assert_allclose(meta["pixelsize"], data_order_voxel(voxel, mapcrs), rtol=1e-6)


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("path", REAL_MRC, ids=lambda p: p.name)
def test_readmrc_matches_mrcfile(path, references):
    ref, _, header = references[path.name]
    with quiet():
        image, meta = napari_mrcz.readMRC(path)
    assert image.shape == ref.shape
    assert image.dtype == ref.dtype
    np.testing.assert_array_equal(image, ref)
    assert meta["MRCtype"] == int(header.mode)
    assert meta["extendedBytes"] == int(header.nsymbt)
    assert meta["minImage"] == pytest.approx(float(header.dmin), nan_ok=True)
    assert meta["maxImage"] == pytest.approx(float(header.dmax), nan_ok=True)
    assert meta["mapcrs"] == [int(header.mapc), int(header.mapr), int(header.maps)]


@pytest.mark.parametrize("path", REAL_MRC, ids=lambda p: p.name)
def test_readmrc_memmap_matches_mrcfile(path, references):
    ref = references[path.name][0]
    with quiet():
        image, _ = napari_mrcz.readMRC(path, useMemmap=True)
    np.testing.assert_array_equal(np.asarray(image).reshape(ref.shape), ref)
    del image


@pytest.mark.parametrize("path", REAL_MRC, ids=lambda p: p.name)
def test_open_lazy_matches_mrcfile(path, references):
    ref = references[path.name][0]
    with quiet(), napari_mrcz.open_lazy(path) as lazy:
        assert lazy.shape == ref.shape
        assert lazy.dtype == ref.dtype
        assert lazy.ndim == ref.ndim
        assert len(lazy) == len(ref)
        np.testing.assert_array_equal(np.asarray(lazy), ref)
        if ref.ndim == 3:
            for index in (0, len(ref) // 2, -1):
                np.testing.assert_array_equal(lazy[index], ref[index])
            np.testing.assert_array_equal(lazy[1:3, 2:9, ::3], ref[1:3, 2:9, ::3])
            np.testing.assert_array_equal(lazy[..., 4], ref[..., 4])
        else:
            np.testing.assert_array_equal(lazy[5], ref[5])
            np.testing.assert_array_equal(lazy[:, 7], ref[:, 7])


@pytest.mark.parametrize("path", REAL_MRC, ids=lambda p: p.name)
def test_idx_reads_match_mrcfile(path, references):
    ref = references[path.name][0]
    if ref.ndim == 2:
        pytest.skip("a single image has no frames to pick")
    with quiet():
        last, _ = napari_mrcz.readMRC(path, idx=-1)
        pair, meta = napari_mrcz.readMRC(path, idx=(0, 1))
    np.testing.assert_array_equal(last, ref[-1])
    np.testing.assert_array_equal(pair, ref[:2])
    assert meta["dimensions"][0] == 2


@pytest.mark.parametrize("path", REAL_MRC, ids=lambda p: p.name)
def test_pixelsize_matches_mrcfile(path, references):
    """Ours, in data order, is mrcfile's CELLA / M, finite and positive or not.

    Where mrcfile's voxel size is not positive (cella 0 in cryodrgn_empiar_10076_7, cella z
    0 or negative cella x/y in the Direct Electron files) we report the same number: the
    header's value, not a made-up 1. That is what this test pins down.
    """
    _, voxel, header = references[path.name]
    with quiet():
        meta, _ = napari_mrcz.readMRCHeader(path)
    mapcrs = (int(header.mapc), int(header.mapr), int(header.maps))
    expected = data_order_voxel(voxel, mapcrs)
    assert np.all(np.isfinite(voxel))  # no real file has M = 0
    np.testing.assert_allclose(meta["pixelsize"], expected, rtol=1e-6)
    if mapcrs == (1, 2, 3):
        np.testing.assert_allclose(meta["pixelsize"], voxel[::-1], rtol=1e-6)


@pytest.mark.parametrize(
    "name",
    [
        by_name("cryodrgn_empiar_10076_7.mrc"),
        by_name("rsciio_20241021_00405_movie.mrc"),
        by_name("rsciio_ROI_Random_Scan_movie.mrc"),
        by_name("rsciio_HAADFscan.mrc"),
    ],
)
def test_non_positive_cell_is_reported_as_stored(name, shared_data):
    expected = {
        "cryodrgn_empiar_10076_7.mrc": [0.0, 0.0, 0.0],
        "rsciio_20241021_00405_movie.mrc": [0.0, -10.0, -10.0],
        "rsciio_ROI_Random_Scan_movie.mrc": [0.0, -10.0, -10.0],
        "rsciio_HAADFscan.mrc": [0.0, 56.79131317138672, 56.79131317138672],
    }[name]
    meta, _ = napari_mrcz.readMRCHeader(shared_data / "mrc" / name)
    np.testing.assert_allclose(meta["pixelsize"], expected, rtol=1e-6)


def test_permuted_axes_pixelsize_is_in_data_order(shared_data):
    """gemmi's tiny map: columns run along crystal y, rows along x (MAPC/MAPR/MAPS 2 1 3)."""
    path = shared_data / "mrc" / "gemmi_5i55_tiny.ccp4"
    meta, _ = napari_mrcz.readMRCHeader(path)
    assert meta["mapcrs"] == [2, 1, 3]
    # CELLA (29.45, 10.5, 29.7) / M (60, 24, 60): x 0.4908, y 0.4375, z 0.495
    np.testing.assert_allclose(meta["pixelsize"], [29.7 / 60, 29.45 / 60, 10.5 / 24], rtol=1e-6)


ODD_STAMPS = {
    "cryodrgn_relion31.mrcs": "00 00 00 00",
    "cryodrgn_ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs": "00 00 00 00",
    "leginon_08mar13e_00010gr_00004sq_v02_00005hl.mrc": "00 00 44 44",
    "gemmi_5i55_tiny.ccp4": "44 41 00 00",
}


@pytest.mark.parametrize(("name", "stamp"), ODD_STAMPS.items(), ids=ODD_STAMPS.keys())
def test_odd_machine_stamps_read_little_endian(name, stamp, shared_data, references):
    with quiet():
        image, meta = napari_mrcz.readMRC(shared_data / "mrc" / name)
    assert meta["mrcHeader"]["machst"] == stamp
    assert meta["mrcHeader"]["byteorder"] == "little"
    np.testing.assert_array_equal(image, references[name][0])


def test_fei2_extended_header_is_skipped_not_parsed(shared_data, references):
    path = shared_data / "mrc" / "rsciio_HAADFscan.mrc"
    image, meta = napari_mrcz.readMRC(path)
    assert meta["extendedBytes"] == 909312
    assert meta["metaId"] == b"FEI2"
    assert image.shape == (16, 16)
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, references[path.name][0])


def test_float16_mode_12(shared_data, references):
    path = shared_data / "mrc" / "tomodrgn_Unt_050_12.00A_000001.mrcs"
    image, meta = napari_mrcz.readMRC(path)
    assert meta["MRCtype"] == 12
    assert image.dtype == np.float16
    np.testing.assert_array_equal(image, references[path.name][0])
    np.testing.assert_allclose(meta["pixelsize"], [12, 12, 12])


def test_python_mrcz_file_with_zero_sampling(tmp_path):
    """python-mrcz writes MX = MY = MZ = 0: mrcfile's CELLA / M is not finite there; ours is
    CELLA / N, the pixel size python-mrcz was given."""
    path = tmp_path / "python-mrcz.mrcz"
    data = np.arange(2 * 8 * 6, dtype=np.int16).reshape(2, 8, 6)
    mrcz.writeMRC(data, str(path), pixelsize=[3.0, 2.0, 1.0], compressor="zstd")
    image, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(image, data)
    np.testing.assert_allclose(meta["pixelsize"], [3.0, 2.0, 1.0])
    plain = tmp_path / "python-mrcz.mrc"
    mrcz.writeMRC(data, str(plain), pixelsize=[3.0, 2.0, 1.0])
    _, voxel, header = mrcfile_reading(plain)
    assert (int(header.mx), int(header.my), int(header.mz)) == (0, 0, 0)
    assert not np.any(np.isfinite(voxel) & (voxel > 0))
    meta, _ = napari_mrcz.readMRCHeader(plain)
    np.testing.assert_allclose(meta["pixelsize"], [3.0, 2.0, 1.0])


# --------------------------------------------------------------------------- rewriting


def rewrite_pixelsize(meta: dict):
    """Carry the pixel size over where it is a real one; else leave writeMRC's default."""
    pixelsize = np.asarray(meta["pixelsize"])
    return pixelsize if np.all(np.isfinite(pixelsize) & (pixelsize > 0)) else None


def rewrite(path, target, compressor):
    with quiet():
        image, meta = napari_mrcz.readMRC(path)
    pixelsize = rewrite_pixelsize(meta)
    extra = {} if pixelsize is None else {"pixelsize": pixelsize}
    napari_mrcz.writeMRC(image, target, compressor=compressor, **extra)
    return image, pixelsize


@pytest.mark.parametrize("compressor", [None, "zstd"])
@pytest.mark.parametrize("path", REAL_MRC, ids=lambda p: p.name)
def test_rewrite_round_trips_exactly(path, compressor, tmp_path):
    target = tmp_path / ("rewrite.mrcz" if compressor else "rewrite.mrc")
    image, pixelsize = rewrite(path, target, compressor)
    back, meta = napari_mrcz.readMRC(target)
    assert back.shape == image.shape
    assert back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)
    assert meta["compressor"] == compressor
    if pixelsize is not None:
        np.testing.assert_allclose(meta["pixelsize"], pixelsize, rtol=1e-6)
    with napari_mrcz.open_lazy(target) as lazy:
        np.testing.assert_array_equal(np.asarray(lazy), image)
        np.testing.assert_array_equal(lazy[-1], image[-1])
    finite = image[np.isfinite(image)] if image.dtype.kind == "f" else image
    if finite.size and image.dtype.kind != "c":
        assert meta["minImage"] == pytest.approx(float(finite.min()))
        assert meta["maxImage"] == pytest.approx(float(finite.max()))


@pytest.mark.parametrize("path", REAL_MRC, ids=lambda p: p.name)
def test_plain_rewrite_passes_mrcfile_validate(path, tmp_path):
    target = tmp_path / "rewrite.mrc"
    image, pixelsize = rewrite(path, target, None)
    report = io.StringIO()
    assert mrcfile.validate(str(target), print_file=report), report.getvalue()
    data, voxel, _ = mrcfile_reading(target)
    np.testing.assert_array_equal(data, image)
    if pixelsize is not None:
        np.testing.assert_allclose(voxel[::-1], pixelsize, rtol=1e-6)


@pytest.mark.parametrize("path", REAL_MRC, ids=lambda p: p.name)
def test_python_mrcz_reads_our_mrcz_rewrite(path, tmp_path):
    target = tmp_path / "rewrite.mrcz"
    image, pixelsize = rewrite(path, target, "zstd")
    if image.dtype == np.float16 and 12 not in mrcz.ioMRC.CCPEM_ENUM:
        # python-mrcz 0.6.0 knows no mode 12, for any file; nothing we write can fix that.
        with pytest.raises(ValueError, match="12"):
            mrcz.readMRC(str(target))
        return
    theirs, their_meta = mrcz.readMRC(str(target))
    theirs = np.asarray(theirs)
    assert theirs.shape == image.shape
    assert theirs.dtype == image.dtype
    np.testing.assert_array_equal(theirs, image)
    assert their_meta["compressor"] == "zstd"
    if pixelsize is not None:
        np.testing.assert_allclose(their_meta["pixelsize"], pixelsize, rtol=1e-6)


@pytest.mark.parametrize("path", REAL_MRC, ids=lambda p: p.name)
def test_read_meta_written_back_as_json(path, tmp_path):
    """python-mrcz's idiom, ``writeMRC(image, out, meta=readMRC(path)[1])``, works for every
    real file; the FEI2 file's ``metaId`` (bytes, on which python-mrcz's own writeMRC
    raises TypeError) is kept as text."""
    target = tmp_path / "with-meta.mrcz"
    with quiet():
        image, meta = napari_mrcz.readMRC(path)
    napari_mrcz.writeMRC(image, target, meta=meta, compressor="zstd")
    if image.dtype != np.float16:  # python-mrcz 0.6.0 knows no mode 12
        np.testing.assert_array_equal(mrcz.readMRC(str(target))[0], image)
    back, back_meta = napari_mrcz.readMRC(target)
    np.testing.assert_array_equal(back, image)
    assert back_meta["metaId"] == b"json"  # the header's EXTTYP, not the JSON's key
    with open(target, "rb") as handle:
        handle.seek(1024)
        stored = json.loads(handle.read(back_meta["extendedBytes"]))
    if "metaId" in meta:
        assert stored["metaId"] == meta["metaId"].decode("ascii")
