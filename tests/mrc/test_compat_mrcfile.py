"""Compatibility with mrcfile, the MRC2014 reference reader/writer, both ways.

Our uncompressed files must be valid MRC2014 as mrcfile's validator sees it (apart
from the JSON extended header type, which MRC2014 does not list), and must read with
the same values and voxel size in mrcfile. Files mrcfile writes must read identically
here. MRCZ (compressed) files are outside MRC2014 and are not checked with mrcfile.
"""

from __future__ import annotations

import io
import warnings

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz

#: dtypes MRC2014 (and so mrcfile) defines, and the mode each is stored as.
MRC2014_DTYPES = {"int8": 0, "int16": 1, "float32": 2, "complex64": 4, "uint16": 6, "float16": 12}
#: dtypes we write through a cast, and what mrcfile then reads.
CAST_DTYPES = {"uint8": "uint16", "float64": "float32"}
#: python-mrcz's modes outside MRC2014, which mrcfile rejects.
EXTENSION_DTYPES = {"int32": 7, "uint32": 8, "uint4": 101}
ENDIANS = ["le", "be"]
SHAPES = {"image": (12, 10), "volume": (4, 12, 10)}
PIXELSIZE_ZYX = (3.0, 2.0, 1.5)


def make_data(rng: np.random.Generator, dtype: str, shape) -> np.ndarray:
    """Random data over the whole range of integer types; floats small enough for float16.

    mrcfile's validator computes the std of float16 data in float16, which overflows
    for values much above 100; standard-normal data keeps its check meaningful.
    """
    if dtype == "uint4":
        return rng.integers(0, 16, shape, dtype=np.uint8)
    if dtype == "complex64":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def validate(path) -> tuple[bool, list[str]]:
    """mrcfile.validate's verdict and the lines it printed after its "Checking if" line."""
    report = io.StringIO()
    valid = mrcfile.validate(str(path), print_file=report)
    lines = report.getvalue().splitlines()
    assert lines[0] == f"Checking if {path} is a valid MRC2014 file..."
    return valid, lines[1:]


VALID = (True, ["File appears to be valid."])
ONLY_JSON_PROBLEM = (False, ["Extended header type is undefined or unrecognised: exttyp = 'json'"])


# ---------------------------------------------------------------------------------------
# Our files in mrcfile
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("endian", ENDIANS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", [*MRC2014_DTYPES, *CAST_DTYPES])
def test_our_plain_files_are_valid_mrc2014(tmp_path, rng, dtype, shape, endian):
    """Every uncompressed file we write without meta passes mrcfile.validate silently."""
    path = tmp_path / "ours.mrc"
    napari_mrcz.writeMRC(
        make_data(rng, dtype, shape), path, endian=endian, pixelsize=PIXELSIZE_ZYX
    )
    assert validate(path) == VALID


@pytest.mark.parametrize("shape", [(4, 12, 10), (3, 256, 256)], ids=["small", "frames"])
@pytest.mark.parametrize("background", [100.0, 1000.0, 10000.0])
def test_our_statistics_pass_mrcfile_with_a_background_level(tmp_path, rng, background, shape):
    """Images sitting on a background level (std 1) still get an RMS mrcfile accepts."""
    path = tmp_path / "ours.mrc"
    napari_mrcz.writeMRC((background + rng.standard_normal(shape)).astype(np.float32), path)
    assert validate(path) == VALID


@pytest.mark.parametrize("endian", ENDIANS)
@pytest.mark.parametrize("kind", ["volume", "list of 2D", "list of 3D"])
def test_our_files_with_meta_only_break_exttyp(tmp_path, rng, kind, endian):
    """With JSON meta (or a list's 'slices' key) the only complaint is EXTTYP 'json'."""
    if kind == "volume":
        image = make_data(rng, "float32", SHAPES["volume"])
        meta = {"k": 1, "text": "µm"}
    else:
        frame_shape = (12, 10) if kind == "list of 2D" else (2, 12, 10)
        image = [make_data(rng, "int16", frame_shape) for _ in range(3)]
        meta = None
    path = tmp_path / "ours.mrc"
    napari_mrcz.writeMRC(image, path, meta=meta, endian=endian, pixelsize=PIXELSIZE_ZYX)
    assert validate(path) == ONLY_JSON_PROBLEM

    expected = (
        image
        if kind == "volume"
        else np.concatenate([frame.reshape(-1, *frame.shape[-2:]) for frame in image])
    )
    with mrcfile.open(str(path)) as mrc:
        np.testing.assert_array_equal(mrc.data, expected)
        assert bytes(mrc.header.exttyp) == b"json"


@pytest.mark.parametrize("endian", ENDIANS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", [*MRC2014_DTYPES, *CAST_DTYPES])
def test_mrcfile_reads_our_data(tmp_path, rng, dtype, shape, endian):
    """mrcfile reads our values, mode, byte order and header statistics."""
    data = make_data(rng, dtype, shape)
    path = tmp_path / "ours.mrc"
    napari_mrcz.writeMRC(data, path, endian=endian, pixelsize=PIXELSIZE_ZYX)
    stored = np.dtype(CAST_DTYPES.get(dtype, dtype))
    _, meta = napari_mrcz.readMRC(path)

    with mrcfile.open(str(path)) as mrc:
        assert mrc.data.shape == data.shape
        assert mrc.data.dtype.newbyteorder("=") == stored
        if stored.itemsize > 1:
            assert mrc.data.dtype.byteorder in ("=", "<" if endian == "le" else ">")
            assert (mrc.header.mode.dtype.byteorder == ">") == (endian == "be")
        assert int(mrc.header.mode) == MRC2014_DTYPES[stored.name]
        np.testing.assert_array_equal(mrc.data, data.astype(stored))
        assert float(mrc.header.rms) == meta["rmsImage"]
        assert float(mrc.header.dmax) == meta["maxImage"]


@pytest.mark.parametrize("pixelunits", ["\\AA", "nm"])
@pytest.mark.parametrize(
    ("pixelsize", "expected_xyz"),
    [
        ((3.0, 2.0, 1.5), (1.5, 2.0, 3.0)),
        (1.75, (1.75, 1.75, 1.75)),
    ],
    ids=["zyx", "scalar"],
)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_mrcfile_voxel_size_is_our_pixel_size(
    tmp_path, rng, shape, pixelsize, expected_xyz, pixelunits
):
    """mrcfile's voxel_size (x, y, z, Å) of our plain files is the pixelsize we wrote (z, y, x).

    python-mrcz's own files show an infinite voxel size in mrcfile (it writes M = 0).
    """
    path = tmp_path / "ours.mrc"
    napari_mrcz.writeMRC(
        make_data(rng, "float32", shape), path, pixelsize=pixelsize, pixelunits=pixelunits
    )
    scale = 10.0 if pixelunits == "nm" else 1.0
    with mrcfile.open(str(path)) as mrc:
        voxel = np.array(mrc.voxel_size.tolist())
    assert np.all(np.isfinite(voxel))
    np.testing.assert_allclose(voxel, np.array(expected_xyz) * scale, rtol=1e-6)
    _, meta = napari_mrcz.readMRC(path, pixelunits=pixelunits)
    np.testing.assert_allclose(meta["pixelsize"], np.array(expected_xyz)[::-1], rtol=1e-6)

    theirs = tmp_path / "theirs.mrc"
    mrcz.writeMRC(
        make_data(rng, "float32", shape), str(theirs), pixelsize=pixelsize, pixelunits=pixelunits
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile divides by M = 0
        with mrcfile.open(str(theirs), permissive=True) as mrc:
            assert np.all(np.isinf(mrc.voxel_size.tolist()))


@pytest.mark.parametrize("endian", ENDIANS)
@pytest.mark.parametrize("dtype", EXTENSION_DTYPES)
def test_mrcfile_rejects_python_mrcz_modes(tmp_path, rng, dtype, endian):
    """int32/uint32/uint4 (modes 7, 8, 101) are python-mrcz extensions: mrcfile refuses them."""
    data = make_data(rng, dtype, SHAPES["volume"])
    path = tmp_path / "ours.mrc"
    napari_mrcz.writeMRC(data, path, endian=endian, dtype="uint4" if dtype == "uint4" else None)
    mode = EXTENSION_DTYPES[dtype]
    with pytest.raises(ValueError, match=f"Unrecognised mode '{mode}'"):
        mrcfile.open(str(path)).close()
    ours, meta = napari_mrcz.readMRC(path)
    assert meta["MRCtype"] == mode
    np.testing.assert_array_equal(ours, data)


# ---------------------------------------------------------------------------------------
# mrcfile's files here
# ---------------------------------------------------------------------------------------

MRCFILE_KINDS = ["image", "stack", "volume"]


def write_mrcfile(path, data, kind, voxel_size=(1.5, 2.0, 3.0), origin=(10.0, -20.0, 30.5)):
    with mrcfile.new(str(path), overwrite=True) as mrc:
        mrc.set_data(data)
        if kind == "stack":
            mrc.set_image_stack()
        mrc.voxel_size = voxel_size
        mrc.header.origin = origin
    with mrcfile.open(str(path)) as mrc:
        return mrc.header.copy()


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("kind", MRCFILE_KINDS)
@pytest.mark.parametrize("dtype", MRC2014_DTYPES)
def test_we_read_mrcfile_files(tmp_path, rng, dtype, kind, byteorder):
    """Images, stacks and volumes from mrcfile: same data, pixel size, origin and statistics."""
    shape = SHAPES["image"] if kind == "image" else SHAPES["volume"]
    data = make_data(rng, dtype, shape).astype(np.dtype(dtype).newbyteorder(byteorder))
    path = tmp_path / "mrcfile.mrc"
    header = write_mrcfile(path, data, kind)

    ours, meta = napari_mrcz.readMRC(path)
    assert type(ours) is np.ndarray
    assert ours.shape == data.shape
    assert ours.dtype.newbyteorder("=") == np.dtype(dtype)
    np.testing.assert_array_equal(ours, data)
    assert meta["MRCtype"] == MRC2014_DTYPES[dtype]
    assert meta["mrcHeader"]["byteorder"] == (
        "big" if byteorder == ">" and data.dtype.itemsize > 1 else "little"
    )
    np.testing.assert_allclose(meta["pixelsize"], (3.0, 2.0, 1.5), rtol=1e-6)
    assert meta["mrcHeader"]["origin"] == [10.0, -20.0, 30.5]
    assert meta["maxImage"] == float(header.dmax)
    assert meta["meanImage"] == float(header.dmean)
    assert meta["rmsImage"] == float(header.rms)
    _, slices = napari_mrcz.readMRCHeader(path)
    assert slices == 0


@pytest.mark.parametrize("kind", ["stack", "volume"])
def test_idx_and_lazy_reads_of_mrcfile_files(tmp_path, rng, kind):
    """Single frames, inclusive ranges and LazyMRC slices of mrcfile stacks and volumes."""
    data = make_data(rng, "float32", (6, 12, 10))
    path = tmp_path / "mrcfile.mrc"
    write_mrcfile(path, data, kind)

    for idx, want in [(0, data[0]), (-1, data[-1]), ((1, 3), data[1:4]), ((-2, -1), data[-2:])]:
        got, _ = napari_mrcz.readMRC(path, idx=idx)
        np.testing.assert_array_equal(got, want)
    with napari_mrcz.open_lazy(path) as lazy:
        assert lazy.shape == data.shape
        np.testing.assert_array_equal(lazy[-2], data[-2])
        np.testing.assert_array_equal(lazy[::2, 1:3], data[::2, 1:3])


def test_we_read_mrcfile_uint8_as_mode_6(tmp_path, rng):
    """mrcfile stores uint8 as uint16 (mode 6), exactly as we do: same file content."""
    data = rng.integers(0, 256, SHAPES["volume"], dtype=np.uint8)
    theirs, ours_path = tmp_path / "mrcfile.mrc", tmp_path / "ours.mrc"
    write_mrcfile(theirs, data, "volume")
    napari_mrcz.writeMRC(data, ours_path)

    for path in (theirs, ours_path):
        image, meta = napari_mrcz.readMRC(path)
        assert meta["MRCtype"] == 6
        assert image.dtype == np.uint16
        np.testing.assert_array_equal(image, data)
    assert theirs.read_bytes()[1024:] == ours_path.read_bytes()[1024:]


@pytest.mark.parametrize("endian", ENDIANS)
def test_float16_files_cross_both_ways(tmp_path, rng, endian):
    """float16 (mode 12) written by either library reads with the same values in the other."""
    data = make_data(rng, "float16", SHAPES["volume"])
    order = ">" if endian == "be" else "<"
    theirs, ours_path = tmp_path / "mrcfile.mrc", tmp_path / "ours.mrc"
    write_mrcfile(theirs, data.astype(np.dtype("f2").newbyteorder(order)), "volume")
    napari_mrcz.writeMRC(data, ours_path, endian=endian)

    ours_image, meta = napari_mrcz.readMRC(theirs)
    assert meta["MRCtype"] == 12
    np.testing.assert_array_equal(ours_image, data)
    with mrcfile.open(str(ours_path)) as mrc:
        assert int(mrc.header.mode) == 12
        np.testing.assert_array_equal(mrc.data, data)
    assert validate(ours_path) == VALID


@pytest.mark.parametrize("endian", ENDIANS)
def test_mrcfile_can_update_our_file(tmp_path, rng, endian):
    """mrcfile opens our plain file in r+ mode, changes it, and we read its change."""
    data = make_data(rng, "int16", SHAPES["volume"])
    path = tmp_path / "ours.mrc"
    napari_mrcz.writeMRC(data, path, endian=endian, pixelsize=PIXELSIZE_ZYX)
    with mrcfile.open(str(path), mode="r+") as mrc:
        mrc.data[1] = 7
        mrc.update_header_stats()
    expected = data.copy()
    expected[1] = 7

    ours, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_allclose(meta["pixelsize"], PIXELSIZE_ZYX, rtol=1e-6)
    assert meta["maxImage"] == float(expected.max())
    assert validate(path) == VALID


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_large_mrcfile_stacks_read_on_several_threads_as_mrcfile_reads_them(
    tmp_path, rng, threads
):
    # Over 8 MiB per thread, plain data is read in parts on several threads; an
    # extended header of odd length puts the data off any page boundary.
    path = tmp_path / "stack.mrc"
    data = rng.integers(-30000, 30000, size=(5, 1500, 1501), dtype=np.int16)
    with mrcfile.new(path) as created:
        created.set_extended_header(np.zeros(777, dtype=np.uint8))
        created.set_data(data)
    image, _ = napari_mrcz.readMRC(str(path), n_threads=threads)
    np.testing.assert_array_equal(image, mrcfile.read(path))
    with napari_mrcz.open_lazy(str(path)) as lazy:
        np.testing.assert_array_equal(lazy[1:4], data[1:4])
