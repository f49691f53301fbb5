"""The MRC mode <-> dtype table (napari_mrcz.mrc.modes) against the two libraries that
define it: mrcfile for MRC2014 and python-mrcz for its extensions (int32, uint32,
packed 4-bit, EMAN2's numbering), and the casts a layer gets before it is saved."""

import warnings

import mrcfile
import mrcfile.utils
import mrcz
import numpy as np
import pytest

from napari_mrcz.errors import MRCZWarning
from napari_mrcz.mrc.modes import (
    EMAN2_MODE_DTYPES,
    PYTHON_MRCZ_MODES,
    PYTHON_MRCZ_READABLE_MODES,
    READABLE_MODES,
    RGB_DTYPE,
    RGB_MODE,
    UINT4_MODE,
    UNSUPPORTED_MODES,
    dtype_for_mode,
    mode_for_dtype,
    mrc_dtype,
    storage_dtype,
    uint4_row_bytes,
)

#: Every MRC mode number worth asking the libraries about.
CANDIDATE_MODES = range(128)
ORDERS = ["<", ">"]


def _mrcfile_dtype(mode: int) -> np.dtype | None:
    try:
        return mrcfile.utils.dtype_from_mode(mode)
    except ValueError:
        return None


MRCFILE_MODES = [mode for mode in CANDIDATE_MODES if _mrcfile_dtype(mode) is not None]
PYTHON_MRCZ_ENUM = mrcz.ioMRC.CCPEM_ENUM
#: dtypes mrcfile writes, each as some mode.
MRCFILE_DTYPES = ["int8", "int16", "float32", "complex64", "uint16", "float16", "uint8"]


def _mrcfile_mode(dtype) -> int | None:
    try:
        return mrcfile.utils.mode_from_dtype(np.dtype(dtype))
    except ValueError:
        return None


# --------------------------------------------------------------------------- reading


def test_mrcfile_knows_the_mrc2014_modes():
    """The reference itself: a guard that the comparisons below compare something."""
    assert set(MRCFILE_MODES) >= {0, 1, 2, 4, 6}


@pytest.mark.parametrize("byteorder", ORDERS)
@pytest.mark.parametrize("mode", MRCFILE_MODES)
def test_every_mode_mrcfile_reads_gives_mrcfiles_dtype(mode, byteorder):
    assert mode in READABLE_MODES
    assert dtype_for_mode(mode, byteorder) == _mrcfile_dtype(mode).newbyteorder(byteorder)


@pytest.mark.parametrize("byteorder", ORDERS)
@pytest.mark.parametrize("mode", sorted(PYTHON_MRCZ_ENUM))
def test_every_mode_python_mrcz_reads_gives_python_mrczs_dtype(mode, byteorder):
    assert mode in READABLE_MODES
    assert mode in PYTHON_MRCZ_READABLE_MODES
    assert dtype_for_mode(mode, byteorder) == np.dtype(byteorder + PYTHON_MRCZ_ENUM[mode])


def test_python_mrcz_readable_modes_are_exactly_its_table():
    assert set(PYTHON_MRCZ_READABLE_MODES) == set(PYTHON_MRCZ_ENUM)


def test_python_mrcz_refuses_float16_which_we_do_not_offer_it(tmp_path, rng):
    """Mode 12 is MRC2014's (mrcfile writes it) but python-mrcz 0.6.0 cannot read it."""
    path = tmp_path / "half.mrc"
    mrcfile.write(path, rng.normal(size=(2, 3, 4)).astype(np.float16))
    assert 12 not in PYTHON_MRCZ_READABLE_MODES
    assert 12 in READABLE_MODES
    with pytest.raises(ValueError, match="data type = 12"):
        mrcz.readMRC(str(path))


def test_python_mrcz_extension_modes_are_its_own_not_mrc2014s():
    """int32 (7) and uint32 (8): python-mrcz reads them, mrcfile (MRC2014) does not."""
    assert PYTHON_MRCZ_MODES <= PYTHON_MRCZ_READABLE_MODES
    for mode in PYTHON_MRCZ_MODES:
        assert mode in PYTHON_MRCZ_ENUM
        assert _mrcfile_dtype(mode) is None
        assert np.dtype(PYTHON_MRCZ_ENUM[mode]).itemsize == 4


def test_unsupported_modes_are_read_by_neither_library():
    assert not UNSUPPORTED_MODES & READABLE_MODES
    for mode in UNSUPPORTED_MODES:
        assert _mrcfile_dtype(mode) is None
        assert mode not in PYTHON_MRCZ_ENUM


@pytest.mark.parametrize("byteorder", ORDERS)
def test_mode_0_is_signed_unless_imod_says_unsigned(byteorder):
    assert dtype_for_mode(0, byteorder) == _mrcfile_dtype(0) == np.dtype(np.int8)
    assert dtype_for_mode(0, byteorder, unsigned_bytes=True) == np.dtype(np.uint8)
    # the IMOD flag only concerns bytes
    assert dtype_for_mode(1, byteorder, unsigned_bytes=True) == _mrcfile_dtype(1).newbyteorder(
        byteorder
    )


def test_rgb_is_three_bytes_a_pixel_in_either_byte_order():
    for byteorder in ORDERS:
        assert dtype_for_mode(RGB_MODE, byteorder) == RGB_DTYPE
    assert np.zeros((2, 3), RGB_DTYPE).shape == (2, 3, 3)
    assert RGB_DTYPE.itemsize == 3


def test_modes_nobody_defines_raise_keyerror():
    undefined = [
        mode
        for mode in CANDIDATE_MODES
        if mode not in READABLE_MODES and mode not in UNSUPPORTED_MODES
    ]
    assert 5 in undefined
    for mode in undefined:
        assert _mrcfile_dtype(mode) is None
        assert mode not in PYTHON_MRCZ_ENUM
        with pytest.raises(KeyError):
            dtype_for_mode(mode, "<")


def test_eman2_numbering_is_python_mrczs():
    assert {mode: np.dtype(code) for mode, code in EMAN2_MODE_DTYPES.items()} == {
        mode: np.dtype(code) for mode, code in mrcz.ioMRC.EMAN2_ENUM.items()
    }


@pytest.mark.parametrize("nx", [2, 8, 10])
def test_uint4_rows_take_the_bytes_python_mrcz_packs_them_in(tmp_path, rng, nx):
    """python-mrcz packs two pixels a byte (it handles even rows only)."""
    data = rng.integers(0, 16, size=(3, 5, nx)).astype(np.uint8)
    path = tmp_path / "packed.mrc"
    mrcz.writeMRC(data, str(path), dtype="uint4")
    assert path.stat().st_size == 1024 + 3 * 5 * uint4_row_bytes(nx)
    header, _ = mrcz.readMRCHeader(str(path))
    assert header["MRCtype"] == UINT4_MODE


def test_odd_uint4_rows_are_padded_to_a_byte():
    """MRC2014: each row of a mode-101 image starts on a byte boundary."""
    assert [uint4_row_bytes(nx) for nx in (1, 3, 5, 7)] == [1, 2, 3, 4]


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize("dtype", MRCFILE_DTYPES)
def test_dtypes_mrcfile_writes_take_mrcfiles_mode(dtype):
    """uint8 too: widened to uint16 (mode 6) as mrcfile does, so every reader agrees."""
    assert mode_for_dtype(storage_dtype(dtype)) == _mrcfile_mode(dtype)


@pytest.mark.parametrize("dtype", MRCFILE_DTYPES)
def test_the_stored_dtype_is_what_mrcfile_reads_back(tmp_path, dtype):
    path = tmp_path / "stored.mrc"
    mrcfile.write(path, np.ones((2, 3), dtype))
    assert mrcfile.read(path).dtype == storage_dtype(dtype)


@pytest.mark.parametrize("name", sorted(mrcz.ioMRC.REVERSE_CCPEM_ENUM))
def test_dtypes_python_mrcz_writes_take_python_mrczs_mode(name):
    expected = mrcz.ioMRC.REVERSE_CCPEM_ENUM[name]
    if name == "uint4":
        assert mode_for_dtype(name) == expected
    else:
        assert mode_for_dtype(storage_dtype(name)) == expected


@pytest.mark.parametrize("dtype", ["int64", "uint64", "object", "datetime64[s]", "S4"])
def test_dtypes_no_mrc_reader_knows_are_refused(dtype):
    assert _mrcfile_mode(dtype) is None
    assert np.dtype(dtype).name not in mrcz.ioMRC.REVERSE_CCPEM_ENUM
    with pytest.raises(TypeError, match="cannot store"):
        storage_dtype(dtype)
    with pytest.raises(KeyError):
        mode_for_dtype(dtype)


def test_bool_is_stored_as_int8_with_its_values(tmp_path):
    mask = np.array([[True, False, True]])
    stored = mask.astype(storage_dtype(mask.dtype))
    path = tmp_path / "mask.mrc"
    mrcfile.write(path, stored)
    np.testing.assert_array_equal(mrcfile.read(path).astype(bool), mask)
    assert mode_for_dtype(storage_dtype(bool)) == _mrcfile_mode(np.int8)


def test_mode_for_dtype_ignores_the_byte_order():
    for name in ("int16", "float32", "uint16", "complex64", "int32"):
        assert mode_for_dtype(np.dtype(name).newbyteorder(">")) == mode_for_dtype(name)


# --------------------------------------------------------------------------- layer casts


def _quiet_mrc_dtype(data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MRCZWarning)
        return mrc_dtype(data, **kwargs)


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint16", "float32", "float16", "complex64"])
def test_types_mrc2014_holds_are_kept(dtype):
    assert mrc_dtype(np.zeros((2, 2), dtype)) is None
    assert mrc_dtype(np.zeros((2, 2), dtype), plain=True) is None


def test_float64_becomes_float32_with_a_warning():
    with pytest.warns(MRCZWarning, match="float64"):
        assert mrc_dtype(np.zeros((2, 2))) == np.float32


LABEL_CASES = [
    (-5, 300, True, "int16"),
    (0, 40000, True, "uint16"),
    (-1, 40000, True, "float32"),
    (-1, 40000, False, "int32"),
    (0, 2**24 - 1, True, "float32"),
    (-(2**31), 2**31 - 1, False, "int32"),
]


@pytest.mark.parametrize(
    ("dtype", "low", "high", "plain", "expected"),
    [
        (dtype, *case)
        for dtype in ("int64", "int32", "uint32", "uint64")
        for case in LABEL_CASES
        if np.iinfo(dtype).min <= case[0] and case[1] <= np.iinfo(dtype).max
    ],
)
def test_labels_get_the_smallest_type_that_holds_them(tmp_path, dtype, low, high, plain, expected):
    """Checked against the libraries: mrcfile writes a plain target, python-mrcz an MRCZ
    one, and the values come back exactly."""
    labels = np.array([[low, 0, high], [high, low, 1]], dtype=dtype)
    target = _quiet_mrc_dtype(labels, plain=plain)
    if target is None:
        target = labels.dtype
    assert target == np.dtype(expected)
    path = tmp_path / ("labels.mrc" if plain else "labels.mrcz")
    if plain:
        mrcfile.write(path, labels.astype(target))
        back = mrcfile.read(path)
    else:
        mrcz.writeMRC(labels.astype(target), str(path), compressor="zstd")
        back, _ = mrcz.readMRC(str(path))
    np.testing.assert_array_equal(back.astype(np.int64).reshape(labels.shape), labels)


def test_int32_labels_are_kept_for_mrcz_only():
    labels = np.array([[-1, 70000]], dtype=np.int32)
    assert mrc_dtype(labels, plain=False) is None
    with pytest.warns(MRCZWarning, match="writing float32"):
        assert mrc_dtype(labels, plain=True) == np.float32


@pytest.mark.parametrize("plain", [True, False])
def test_labels_beyond_float32_precision_are_refused_for_plain_files(plain):
    labels = np.array([[-1, 2**24 + 1]], dtype=np.int64)
    if plain:
        with pytest.raises(ValueError, match="fit no MRC pixel type"):
            mrc_dtype(labels, plain=True)
    else:
        assert _quiet_mrc_dtype(labels, plain=False) == np.int32


def test_uint32_counts_beyond_int32_are_kept_for_mrcz():
    counts = np.array([[0, 3_000_000_000]], dtype=np.uint32)
    assert _quiet_mrc_dtype(counts, plain=False) in (None, np.dtype(np.uint32))


def test_without_scanning_the_type_is_decided_from_the_dtype_alone():
    class Unreadable:
        """A preview's layer: its dtype is known, reading its values fails."""

        dtype = np.dtype(np.int64)
        ndim, shape = 3, (2, 3, 4)

        def __getitem__(self, key):
            raise AssertionError("scan=False must not read the data")

        def __array__(self, *args, **kwargs):
            raise AssertionError("scan=False must not read the data")

    assert mrc_dtype(Unreadable(), plain=True, warn=False, scan=False) == np.int16
    assert mrc_dtype(Unreadable(), plain=False, warn=False, scan=False) == np.int32


def test_lazy_layers_are_scanned_slice_by_slice():
    class Lazy:
        """A lazy layer: only single z-slices are ever read."""

        def __init__(self, array):
            self.array, self.dtype, self.ndim = array, array.dtype, array.ndim
            self.shape, self.reads = array.shape, []

        def __getitem__(self, index):
            assert isinstance(index, int), "a lazy layer is read one z-slice at a time"
            self.reads.append(index)
            return self.array[index]

    array = np.zeros((3, 4, 4), np.int64)
    array[2, 1, 1] = 40000
    lazy = Lazy(array)
    assert mrc_dtype(lazy, plain=True, warn=False) == np.uint16
    assert sorted(lazy.reads) == [0, 1, 2]


def test_warn_false_casts_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mrc_dtype(np.zeros((2, 2)), warn=False) == np.float32
