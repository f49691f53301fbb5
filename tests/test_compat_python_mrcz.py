"""Compatibility with the real python-mrcz 0.6.0, both ways.

Files python-mrcz writes must read identically here, and files we write must read
identically in python-mrcz, except where python-mrcz is wrong: those tests assert our
correct result and pin python-mrcz's failure, so a change on either side shows up.

Two python-mrcz quirks shape the expectations below:

* Byte order: python-mrcz reads MODE little-endian and swaps only when that value
  exceeds 16000000. A big-endian MODE word whose low byte is 0 or >= 128 slips through,
  so it cannot read big-endian files with blosclz, lz4, lz4hc or zlib (MODE + 1000, 2000,
  3000 or 5000), nor uncompressed big-endian int8 (MODE 0), not even its own.
* MZ: python-mrcz reads MZ as "slices per frame". Our uncompressed files follow MRC2014
  (MZ = NZ, see napari_mrcz/writer.py), so python-mrcz returns them as a one-element
  list ``[array]``; our compressed files have MZ = 0 and come back as one array.
"""

from __future__ import annotations

import enum
import io
import json
import os
import struct
import zlib

import mrcfile
import mrcz
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import napari_mrcz

DTYPES = ["float32", "int8", "int16", "uint16", "complex64", "int32", "uint32"]
CODECS = [None, "zstd", "lz4", "lz4hc", "blosclz", "zlib"]
ENDIANS = ["le", "be"]
#: Codecs whose big-endian MODE word python-mrcz takes for little endian.
PYTHON_MRCZ_BE_BROKEN_CODECS = {"lz4", "lz4hc", "blosclz", "zlib"}
#: What python-mrcz raises when it reads such a file in the wrong byte order.
MISREAD_ERROR = "compressor id|cannot reshape|can't decode"

META = {"k": 1, "name": "grid 3", "values": [1.5, 2.5], "nested": {"a": None}}
PIXELSIZE_ZYX = (3.0, 2.0, 1.5)
VOLTAGE, C3, GAIN = 300.0, 2.7, 1.5
SHAPE = (4, 12, 10)


def make_data(rng: np.random.Generator, dtype: str, shape=SHAPE) -> np.ndarray:
    """Random data over the whole range of integer types, spread-out floats otherwise."""
    if dtype == "uint4":
        return rng.integers(0, 16, shape, dtype=np.uint8)
    if dtype == "complex64":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if np.dtype(dtype).kind == "f":
        return (100 * rng.standard_normal(shape)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def python_mrcz_misreads(dtype: str, codec: str | None, endian: str) -> bool:
    """True where python-mrcz 0.6.0 cannot guess the byte order of a file (module docstring)."""
    return endian == "be" and (
        codec in PYTHON_MRCZ_BE_BROKEN_CODECS or (codec is None and dtype == "int8")
    )


def byteorder(endian: str) -> str:
    return ">" if endian == "be" else "<"


def same_value(ours, theirs) -> bool:
    """Equality for meta values: arrays, lists, numbers, strings, bytes and None."""
    if theirs is None or isinstance(theirs, (str, bytes, dict)):
        return ours == theirs
    return np.array_equal(np.asarray(ours), np.asarray(theirs))


def assert_meta_agrees(ours: dict, theirs: dict) -> None:
    """Every key python-mrcz returns is in our meta with the same value."""
    for key, value in theirs.items():
        assert key in ours, key
        if key == "dtype":  # '<i1' (python-mrcz) and '|i1' (numpy's spelling) are one dtype
            assert np.dtype(ours[key]) == np.dtype(value)
        else:
            assert same_value(ours[key], value), (key, ours[key], value)


def assert_written_meta(meta: dict, codec: str | None) -> None:
    """The values writeMRC was given come back from a reader's meta dict."""
    np.testing.assert_allclose(meta["pixelsize"], PIXELSIZE_ZYX, rtol=1e-6)
    for key, value in META.items():
        assert meta[key] == value, key
    assert meta["voltage"] == VOLTAGE
    assert meta["C3"] == np.float32(C3)
    assert meta["gain"] == GAIN
    assert meta["compressor"] == codec


def expected_frames(data: np.ndarray, idx):
    """What readMRC(idx=...) returns: one frame, or frames first..last inclusive."""
    if np.ndim(idx) == 0:
        return data[idx]
    first, last = (i % len(data) for i in idx)
    selected = data[first : last + 1]
    return selected[0] if len(selected) == 1 else selected


def write_python_mrcz(data, path, codec=None, endian="le", **kwargs):
    mrcz.writeMRC(
        data,
        str(path),
        meta=kwargs.pop("meta", META),
        pixelsize=PIXELSIZE_ZYX,
        voltage=VOLTAGE,
        C3=C3,
        gain=GAIN,
        compressor=codec,
        endian=endian,
        **kwargs,
    )


def write_ours(data, path, codec=None, endian="le", **kwargs):
    napari_mrcz.writeMRC(
        data,
        path,
        meta=kwargs.pop("meta", META),
        pixelsize=PIXELSIZE_ZYX,
        voltage=VOLTAGE,
        C3=C3,
        gain=GAIN,
        compressor=codec,
        endian=endian,
        **kwargs,
    )


def header_stats(path) -> np.ndarray:
    header, _ = napari_mrcz.readMRCHeader(path)
    return np.array([header[k] for k in ("minImage", "maxImage", "meanImage", "rmsImage")])


def assert_exact_stats(path, data: np.ndarray) -> None:
    """DMIN/DMAX are the float32 of the data's extremes; DMEAN and RMS (= std) match the
    float64 values to a few float32 ulps (rtol 1e-6), as a float64 accumulation gives."""
    values = np.asarray(data).astype(np.float64)
    header = header_stats(path)
    assert header[0] == np.float32(values.min())
    assert header[1] == np.float32(values.max())
    np.testing.assert_allclose(header[2:], [values.mean(), values.std()], rtol=1e-6, atol=1e-30)


# ---------------------------------------------------------------------------------------
# 1. python-mrcz writes, we read
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("endian", ENDIANS)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_python_mrcz_file_reads_identically(tmp_path, rng, dtype, codec, endian):
    """Data, pixel size, JSON meta and microscope values of python-mrcz's files, every mode."""
    data = make_data(rng, dtype)
    path = tmp_path / "theirs.mrcz"
    write_python_mrcz(data, path, codec, endian)

    ours, meta = napari_mrcz.readMRC(path)
    assert type(ours) is np.ndarray
    assert ours.dtype == np.dtype(dtype).newbyteorder(byteorder(endian))
    np.testing.assert_array_equal(ours, data)
    assert_written_meta(meta, codec)

    if python_mrcz_misreads(dtype, codec, endian):
        with pytest.raises(ValueError, match=MISREAD_ERROR):
            mrcz.readMRC(str(path))
        theirs, _ = mrcz.readMRC(str(path), endian="be")  # told the byte order, it copes
        np.testing.assert_array_equal(theirs, data)
        return
    theirs, their_meta = mrcz.readMRC(str(path))
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == theirs.dtype
    assert_meta_agrees(meta, their_meta)


@pytest.mark.parametrize("endian", ENDIANS)
def test_python_mrcz_uint4_file_reads_as_uint8(tmp_path, rng, endian):
    """Packed 4-bit (mode 101) files unpack to the uint8 values 0..15 python-mrcz wrote."""
    data = make_data(rng, "uint4")
    path = tmp_path / "theirs.mrc"
    write_python_mrcz(data, path, None, endian, dtype="uint4")

    ours, meta = napari_mrcz.readMRC(path)
    theirs, their_meta = mrcz.readMRC(str(path))
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, data)
    np.testing.assert_array_equal(ours, theirs)
    assert meta["MRCtype"] == their_meta["MRCtype"] == 101
    np.testing.assert_array_equal(napari_mrcz.readMRC(path, idx=-1)[0], data[-1])


@pytest.mark.parametrize("endian", ENDIANS)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("frame_ndim", [2, 3])
def test_python_mrcz_list_file_reads_as_list(tmp_path, rng, frame_ndim, codec, endian):
    """Lists of 2D or 3D frames written by python-mrcz come back as the same list of frames."""
    frame_shape = (12, 10) if frame_ndim == 2 else (2, 12, 10)
    frames = [make_data(rng, "float32", frame_shape) for _ in range(3)]
    path = tmp_path / "theirs.mrcz"
    write_python_mrcz(frames, path, codec, endian)

    ours, meta = napari_mrcz.readMRC(path)
    assert isinstance(ours, list)
    assert len(ours) == len(frames)
    for got, want in zip(ours, frames, strict=True):
        np.testing.assert_array_equal(got, want)
    assert_written_meta(meta, codec)
    _, slices = napari_mrcz.readMRCHeader(path)
    assert slices == (1 if frame_ndim == 2 else 2)

    if python_mrcz_misreads("float32", codec, endian):
        with pytest.raises(ValueError, match=MISREAD_ERROR):
            mrcz.readMRC(str(path))
        return
    theirs, _ = mrcz.readMRC(str(path))
    assert len(theirs) == len(ours)
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(got, want)


IDXS = [0, 2, -1, -4, (1, 2), (0, 3), (-3, -1), (2, 2)]


@pytest.mark.parametrize("idx", IDXS, ids=str)
@pytest.mark.parametrize(
    ("codec", "endian"),
    [(None, "le"), (None, "be"), ("zstd", "le"), ("zstd", "be"), ("lz4", "le")],
)
def test_idx_reads_python_mrcz_file(tmp_path, rng, codec, endian, idx):
    """idx (int, negative, inclusive (first, last)) reads the right frames, compressed too."""
    data = make_data(rng, "int16")
    path = tmp_path / "theirs.mrcz"
    write_python_mrcz(data, path, codec, endian)

    ours, meta = napari_mrcz.readMRC(path, idx=idx)
    want = expected_frames(data, idx)
    assert ours.shape == want.shape
    np.testing.assert_array_equal(ours, want)
    assert meta["dimensions"][0] == (1 if want.ndim == 2 else len(want))

    if codec is None:
        theirs, _ = mrcz.readMRC(str(path), idx=idx)
        np.testing.assert_array_equal(ours, theirs)
    else:  # python-mrcz has no random access into MRCZ; ours decompresses just those chunks
        with pytest.raises(RuntimeError, match="arbitrary positions"):
            mrcz.readMRC(str(path), idx=idx)


@pytest.mark.parametrize("endian", ENDIANS)
@pytest.mark.parametrize("codec", [None, "zstd"])
def test_use_memmap_reads_python_mrcz_file(tmp_path, rng, codec, endian):
    """useMemmap=True maps plain files (also with idx) and decodes MRCZ ones, as python-mrcz."""
    data = make_data(rng, "float32")
    path = tmp_path / "theirs.mrcz"
    write_python_mrcz(data, path, codec, endian)

    ours, _ = napari_mrcz.readMRC(path, useMemmap=True)
    theirs, _ = mrcz.readMRC(str(path), useMemmap=True)
    np.testing.assert_array_equal(ours, data)
    np.testing.assert_array_equal(ours, theirs)
    assert isinstance(ours, np.memmap) == (codec is None) == isinstance(theirs, np.memmap)
    if codec is None:
        part, _ = napari_mrcz.readMRC(path, useMemmap=True, idx=(1, 2))
        assert isinstance(part, np.memmap)
        np.testing.assert_array_equal(part, data[1:3])
        del part
    del ours, theirs


@pytest.mark.parametrize("frame_ndim", [0, 2, 3])
def test_read_header_matches_python_mrcz(tmp_path, rng, frame_ndim):
    """readMRCHeader gives python-mrcz's header dict and slices-per-frame for its files."""
    if frame_ndim == 0:
        image = make_data(rng, "uint16")
    else:
        frame_shape = (12, 10) if frame_ndim == 2 else (2, 12, 10)
        image = [make_data(rng, "uint16", frame_shape) for _ in range(3)]
    path = tmp_path / "theirs.mrcz"
    write_python_mrcz(image, path, "zstd")

    ours, our_slices = napari_mrcz.readMRCHeader(path)
    theirs, their_slices = mrcz.readMRCHeader(str(path))
    assert our_slices == their_slices == {0: 0, 2: 1, 3: 2}[frame_ndim]
    assert_meta_agrees(ours, theirs)


def test_open_lazy_random_access_on_python_mrcz_file(tmp_path, rng):
    """LazyMRC decompresses single frames and ranges of a python-mrcz MRCZ file on demand."""
    data = make_data(rng, "float32", (6, 12, 10))
    path = tmp_path / "theirs.mrcz"
    write_python_mrcz(data, path, "zstd")

    with napari_mrcz.open_lazy(path) as lazy:
        assert lazy.shape == data.shape
        assert lazy.dtype == data.dtype
        np.testing.assert_array_equal(lazy[-1], data[-1])
        np.testing.assert_array_equal(lazy[1:5:2, 3], data[1:5:2, 3])
        np.testing.assert_array_equal(np.asarray(lazy), data)


def test_async_functions_interoperate(tmp_path, rng):
    """asyncWriteMRC/asyncReadMRC files cross between the two libraries."""
    data = make_data(rng, "int16")
    ours_path, theirs_path = tmp_path / "ours.mrcz", tmp_path / "theirs.mrcz"
    napari_mrcz.asyncWriteMRC(data, ours_path, compressor="zstd").result()
    mrcz.asyncWriteMRC(data, str(theirs_path), compressor="zstd").result()

    from_ours, _ = mrcz.asyncReadMRC(str(ours_path)).result()
    from_theirs, _ = napari_mrcz.asyncReadMRC(theirs_path).result()
    np.testing.assert_array_equal(from_ours, data)
    np.testing.assert_array_equal(from_theirs, data)


# ---------------------------------------------------------------------------------------
# 2. We write, python-mrcz reads
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("endian", ENDIANS)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_our_file_reads_identically_in_python_mrcz(tmp_path, rng, dtype, codec, endian):
    """python-mrcz reads our data and meta; plain files come back as [array] (MZ = NZ).

    Our uncompressed files follow MRC2014 (MZ = NZ, valid for mrcfile); python-mrcz
    takes MZ for slices per frame and so returns a one-element list holding the whole
    array. Our MRCZ files have MZ = 0 and come back as the array itself.
    """
    data = make_data(rng, dtype)
    path = tmp_path / "ours.mrcz"
    write_ours(data, path, codec, endian)
    ours, our_meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(ours, data)

    if python_mrcz_misreads(dtype, codec, endian):
        with pytest.raises(ValueError, match=MISREAD_ERROR):
            mrcz.readMRC(str(path))
        theirs, _ = mrcz.readMRC(str(path), endian="be")  # the file itself is fine
        np.testing.assert_array_equal(theirs[0] if codec is None else theirs, data)
        return
    theirs, meta = mrcz.readMRC(str(path))
    if codec is None:
        assert isinstance(theirs, list)
        assert len(theirs) == 1
        theirs = theirs[0]
    assert type(theirs) is np.ndarray
    assert theirs.dtype == np.dtype(dtype).newbyteorder(byteorder(endian))
    np.testing.assert_array_equal(theirs, data)
    assert_written_meta(meta, codec)
    assert meta["MRCtype"] == napari_mrcz.REVERSE_CCPEM_ENUM[dtype]
    assert_meta_agrees(our_meta, meta)


@pytest.mark.parametrize("codec", [None, "zstd", "lz4"])
def test_our_2d_image_reads_in_python_mrcz(tmp_path, rng, codec):
    """A single 2D image: python-mrcz gets [image] from plain files, the image from MRCZ."""
    image = make_data(rng, "float32", (12, 10))
    path = tmp_path / "ours.mrcz"
    write_ours(image, path, codec)

    theirs, meta = mrcz.readMRC(str(path))
    if codec is None:
        assert isinstance(theirs, list)
        assert len(theirs) == 1
        theirs = theirs[0]
    assert theirs.shape == image.shape
    np.testing.assert_array_equal(theirs, image)
    np.testing.assert_allclose(meta["pixelsize"], PIXELSIZE_ZYX, rtol=1e-6)
    ours, _ = napari_mrcz.readMRC(path)
    assert ours.shape == image.shape
    np.testing.assert_array_equal(ours, image)


@pytest.mark.parametrize("endian", ENDIANS)
def test_our_uint4_file_reads_in_python_mrcz(tmp_path, rng, endian):
    """python-mrcz reads back the 4-bit values of our uncompressed mode-101 files.

    python-mrcz reads its own mode-101 files; ours must not be less readable. As for
    every uncompressed file of ours, a one-element list [array] is accepted.
    """
    data = make_data(rng, "uint4")
    path = tmp_path / "ours.mrc"
    write_ours(data, path, None, endian, dtype="uint4")
    ours, meta = napari_mrcz.readMRC(path)
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, data)
    assert meta["MRCtype"] == 101
    assert os.path.getsize(path) == 1024 + meta["extendedBytes"] + data.size // 2

    theirs, _ = mrcz.readMRC(str(path))
    if isinstance(theirs, list):
        assert len(theirs) == 1
        theirs = theirs[0]
    np.testing.assert_array_equal(theirs, data)


@pytest.mark.parametrize("endian", ENDIANS)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("frame_ndim", [2, 3])
def test_our_list_file_reads_as_list_in_python_mrcz(tmp_path, rng, frame_ndim, codec, endian):
    """Lists of 2D/3D frames we write (MZ = slices, JSON 'slices') are lists in python-mrcz."""
    frame_shape = (12, 10) if frame_ndim == 2 else (2, 12, 10)
    frames = [make_data(rng, "int16", frame_shape) for _ in range(3)]
    path = tmp_path / "ours.mrcz"
    write_ours(frames, path, codec, endian)

    ours, our_meta = napari_mrcz.readMRC(path)
    assert isinstance(ours, list)
    assert len(ours) == len(frames)
    for got, want in zip(ours, frames, strict=True):
        np.testing.assert_array_equal(got, want)
    assert our_meta["slices"] == (2 if frame_ndim == 3 else 1)

    if python_mrcz_misreads("int16", codec, endian):
        with pytest.raises(ValueError, match=MISREAD_ERROR):
            mrcz.readMRC(str(path))
        return
    theirs, meta = mrcz.readMRC(str(path))
    assert isinstance(theirs, list)
    assert len(theirs) == len(frames)
    for got, want in zip(theirs, frames, strict=True):
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert_written_meta(meta, codec)


# python-mrcz's quickStats computes (max + min) / 2 in int8 and overflows; not our concern.
@pytest.mark.filterwarnings("ignore:overflow encountered in scalar add:RuntimeWarning")
@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    nz=st.integers(1, 4),
    ny=st.integers(2, 9),
    nx=st.integers(2, 9),
    dtype=st.sampled_from(["int8", "uint16", "float32", "complex64"]),
    codec=st.sampled_from([None, "zstd", "lz4"]),
    to_python_mrcz=st.booleans(),
)
def test_round_trip_odd_shapes(tmp_path_factory, nz, ny, nx, dtype, codec, to_python_mrcz):
    """Any small shape crosses between the libraries unchanged, in either direction."""
    data = make_data(np.random.default_rng(nz * 100 + ny * 10 + nx), dtype, (nz, ny, nx))
    path = tmp_path_factory.mktemp("odd") / "f.mrcz"
    if to_python_mrcz:
        napari_mrcz.writeMRC(data, path, compressor=codec)
        got, _ = mrcz.readMRC(str(path))
        if codec is None:
            assert len(got) == 1
            got = got[0]
    else:
        mrcz.writeMRC(data, str(path), compressor=codec)
        got, _ = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(got, data[0] if nz == 1 else data)


def test_write_header_readable_by_python_mrcz(tmp_path, rng):
    """writeMRCHeader + raw data makes a file python-mrcz parses like its own header's."""
    data = make_data(rng, "float32")
    header = napari_mrcz.defaultHeader()
    header.update(
        dimensions=np.array(data.shape),
        dtype="f4",
        pixelsize=list(PIXELSIZE_ZYX),
        pixelunits="\\AA",
        minImage=-1.0,
        maxImage=2.0,
        meanImage=0.5,
        voltage=VOLTAGE,
        C3=C3,
        gain=GAIN,
        meta=dict(META),
    )
    ours_path, theirs_path = tmp_path / "ours.mrc", tmp_path / "theirs.mrc"
    with open(ours_path, "wb") as handle:
        ours_len = napari_mrcz.writeMRCHeader(handle, dict(header), 0)
        data.tofile(handle)
    with open(theirs_path, "wb") as handle:
        theirs_len = mrcz.writeMRCHeader(handle, dict(header), 0)
        data.tofile(handle)
    assert ours_len == theirs_len > 0

    ours_image, ours_meta = mrcz.readMRC(str(ours_path))
    theirs_image, theirs_meta = mrcz.readMRC(str(theirs_path))
    np.testing.assert_array_equal(ours_image, data)
    np.testing.assert_array_equal(theirs_image, data)
    assert_meta_agrees(ours_meta, theirs_meta)
    np.testing.assert_array_equal(napari_mrcz.readMRC(ours_path)[0], data)


# ---------------------------------------------------------------------------------------
# 3. python-mrcz bugs we fix
# ---------------------------------------------------------------------------------------


def write_mrcfile_volume(path, data, voxel_size=(1.5, 2.0, 3.0)):
    with mrcfile.new(str(path), overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel_size


def test_mrcfile_volume_reads_as_3d_array(tmp_path, rng):
    """A standard volume (MZ == NZ) is one 3D array, not python-mrcz's [volume]."""
    data = make_data(rng, "float32", (5, 12, 10))
    path = tmp_path / "volume.mrc"
    write_mrcfile_volume(path, data)

    ours, meta = napari_mrcz.readMRC(path)
    assert type(ours) is np.ndarray
    assert ours.shape == data.shape
    np.testing.assert_array_equal(ours, data)
    np.testing.assert_allclose(meta["pixelsize"], (3.0, 2.0, 1.5), rtol=1e-6)

    theirs, _ = mrcz.readMRC(str(path))  # python-mrcz's misreading: a list, 4D as an array
    assert isinstance(theirs, list)
    assert np.asarray(theirs).shape == (1, *data.shape)


@pytest.mark.parametrize("pixelunits", ["\\AA", "nm", "pm", "\\mum"])
@pytest.mark.parametrize(
    "pixelsize", [1.75, (3.0, 2.0, 1.5), (0.5, 0.25)], ids=["scalar", "zyx", "yx"]
)
def test_pixelsize_arguments_mean_what_python_mrcz_writes(tmp_path, pixelsize, pixelunits):
    """The same writeMRC(pixelsize=, pixelunits=) puts python-mrcz's pixel size in the file.

    python-mrcz takes a 2-element pixelsize as (y, x) with a 10 Å z spacing.
    """
    data = np.zeros((3, 8, 6), dtype=np.float32)
    ours_path, theirs_path = tmp_path / "ours.mrcz", tmp_path / "theirs.mrcz"
    napari_mrcz.writeMRC(
        data, ours_path, pixelsize=pixelsize, pixelunits=pixelunits, compressor="zstd"
    )
    mrcz.writeMRC(
        data, str(theirs_path), pixelsize=pixelsize, pixelunits=pixelunits, compressor="zstd"
    )
    _, ours = napari_mrcz.readMRC(ours_path)
    _, theirs = napari_mrcz.readMRC(theirs_path)
    np.testing.assert_allclose(ours["pixelsize"], theirs["pixelsize"], rtol=1e-6)


@pytest.mark.parametrize("pixelsize", [1.75, (3.0, 2.0, 1.5)], ids=["scalar", "zyx"])
def test_micrometre_pixel_size_round_trips(tmp_path, pixelsize):
    """pixelunits='\\mum' reads back what was written (python-mrcz reads its own 10x small)."""
    data = np.zeros((3, 8, 6), dtype=np.float32)
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(data, str(path), pixelsize=pixelsize, pixelunits="\\mum")
    _, ours = napari_mrcz.readMRC(path, pixelunits="\\mum")
    np.testing.assert_allclose(ours["pixelsize"], np.broadcast_to(pixelsize, 3), rtol=1e-6)
    _, theirs = mrcz.readMRC(str(path), pixelunits="\\mum")
    np.testing.assert_allclose(theirs["pixelsize"], np.broadcast_to(pixelsize, 3) / 10, rtol=1e-6)


@pytest.mark.parametrize("writer", ["mrcfile", "ours"])
def test_idx_minus_one_returns_last_frame(tmp_path, rng, writer):
    """readMRC(idx=-1) on a standard MRC2014 file is the last frame (python-mrcz: [])."""
    data = make_data(rng, "int16", (5, 12, 10))
    path = tmp_path / "volume.mrc"
    if writer == "mrcfile":
        write_mrcfile_volume(path, data)
    else:
        napari_mrcz.writeMRC(data, path)

    last, meta = napari_mrcz.readMRC(path, idx=-1)
    assert last.shape == data.shape[1:]
    np.testing.assert_array_equal(last, data[-1])
    assert meta["dimensions"][0] == 1
    pair, _ = napari_mrcz.readMRC(path, idx=(-2, -1))
    np.testing.assert_array_equal(pair, data[-2:])

    theirs, _ = mrcz.readMRC(str(path), idx=-1)
    assert theirs == []


@pytest.mark.parametrize("codec", [None, "zstd"])
@pytest.mark.parametrize(
    ("dtype", "mode", "stored"), [("uint8", 6, "uint16"), ("float16", 12, "float16")]
)
def test_uint8_and_float16_can_be_written(tmp_path, rng, dtype, mode, stored, codec):
    """uint8 (widened to uint16, mode 6, as mrcfile does) and float16 (mode 12) round-trip.

    python-mrcz refuses both; mrcfile reads our plain files with the same values.
    """
    if dtype == "uint8":
        data = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    else:
        data = rng.standard_normal(SHAPE).astype(np.float16)
    path = tmp_path / "ours.mrcz"
    napari_mrcz.writeMRC(data, path, compressor=codec)

    ours, meta = napari_mrcz.readMRC(path)
    assert meta["MRCtype"] == mode
    assert ours.dtype == np.dtype(stored)
    np.testing.assert_array_equal(ours, data)
    assert_exact_stats(path, data)
    if codec is None:
        with mrcfile.open(str(path)) as mrc:
            assert int(mrc.header.mode) == mode
            assert mrc.data.dtype == np.dtype(stored)
            np.testing.assert_array_equal(mrc.data, data)

    with pytest.raises(TypeError, match="Unsupported dtype"):
        mrcz.writeMRC(data, str(tmp_path / "theirs.mrc"), compressor=codec)


@pytest.mark.parametrize("writer", ["python-mrcz", "ours"])
def test_big_endian_int8_with_json_meta(tmp_path, rng, writer):
    """Big-endian int8 with JSON meta reads right (python-mrcz cannot read even its own)."""
    data = make_data(rng, "int8")
    path = tmp_path / "be_int8.mrc"
    (write_python_mrcz if writer == "python-mrcz" else write_ours)(data, path, None, "be")

    ours, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(ours, data)
    assert_written_meta(meta, None)
    assert meta["mrcHeader"]["byteorder"] == "big"
    with pytest.raises(ValueError, match=MISREAD_ERROR):
        mrcz.readMRC(str(path))


def varying_stack(
    rng, dtype: str, offset: float = 0.0, spread: float = 1.0, shape=SHAPE
) -> np.ndarray:
    """offset + spread * k * (noise + 1) in frame k = 1, 2, ...: ranges grow from frame to frame,
    so the first frame decides nothing. Integers are rounded and clipped to their range."""
    if dtype == "complex64":
        base = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    else:
        base = rng.standard_normal(shape)
    scale = np.arange(1, shape[0] + 1)[:, None, None]
    values = offset + spread * scale * (base + 1)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.round(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


#: (dtype, offset, spread, shape). Detector-like data (counts around 1000, float images
#: with a background level) and full-size frames are where sloppy sums lose precision.
FRAME = (3, 512, 512)
STAT_CASES = [
    ("float32", 0.0, 100.0, SHAPE),
    ("float32", 1000.0, 1.0, SHAPE),
    ("float16", 0.0, 1.0, SHAPE),
    ("int8", 0.0, 20.0, SHAPE),
    ("int16", 0.0, 3000.0, SHAPE),
    ("uint16", 1000.0, 30.0, SHAPE),
    ("int32", 0.0, 1e8, SHAPE),
    ("uint32", 2e9, 1e8, SHAPE),
    ("float32", 0.0, 100.0, FRAME),
    ("int8", 0.0, 20.0, FRAME),
    ("int16", 0.0, 3000.0, FRAME),
    ("uint16", 1000.0, 30.0, FRAME),
]
STAT_IDS = [f"{d}-{o:g}+-{s:g}-{'x'.join(map(str, sh))}" for d, o, s, sh in STAT_CASES]


@pytest.mark.parametrize("codec", [None, "zstd"])
@pytest.mark.parametrize(("dtype", "offset", "spread", "shape"), STAT_CASES, ids=STAT_IDS)
def test_header_statistics_are_exact(tmp_path, rng, dtype, offset, spread, shape, codec):
    """DMIN/DMAX/DMEAN/RMS cover every frame and are exact (python-mrcz: first frame only)."""
    data = varying_stack(rng, dtype, offset, spread, shape)
    path = tmp_path / "ours.mrcz"
    napari_mrcz.writeMRC(data, path, compressor=codec)
    assert_exact_stats(path, data)

    if dtype != "float16":  # python-mrcz cannot write float16
        mrcz.writeMRC(data, str(tmp_path / "theirs.mrcz"), compressor=codec)
        theirs = header_stats(tmp_path / "theirs.mrcz")
        assert theirs[1] == np.float32(data[0].max()) < np.float32(data.max())


@pytest.mark.parametrize("codec", [None, "zstd"])
def test_complex_statistics_are_rms_only(tmp_path, rng, codec):
    """Complex data: RMS is the std of the values, min/max/mean "unknown" (as mrcfile does)."""
    data = varying_stack(rng, "complex64")
    path = tmp_path / "ours.mrcz"
    napari_mrcz.writeMRC(data, path, compressor=codec)
    dmin, dmax, dmean, rms = header_stats(path)
    assert dmax < dmin  # MRC2014: DMAX < DMIN means not computed
    assert dmean < min(dmin, dmax)
    np.testing.assert_allclose(rms, data.astype(np.complex128).std(), rtol=1e-6)


# ---------------------------------------------------------------------------------------
# 5. Writing into existing files with idx
# ---------------------------------------------------------------------------------------


def extended_and_data(path) -> bytes:
    """Everything after the 1024-byte header."""
    with open(path, "rb") as handle:
        handle.seek(1024)
        return handle.read()


def assert_mrcfile_valid(path) -> None:
    report = io.StringIO()
    assert mrcfile.validate(str(path), print_file=report)
    assert report.getvalue().splitlines()[1:] == ["File appears to be valid."]


APPEND_CASES = [("float32", 0.0, 100.0), ("uint16", 1000.0, 30.0), ("int16", 0.0, 3000.0)]


@pytest.mark.parametrize("meta", [None, {"k": 1}], ids=["plain", "json"])
@pytest.mark.parametrize("codec", [None, "zstd", "lz4"])
@pytest.mark.parametrize(
    ("dtype", "offset", "spread"),
    APPEND_CASES,
    ids=[f"{d}-{o:g}+-{s:g}" for d, o, s in APPEND_CASES],
)
def test_append_frames(tmp_path, rng, dtype, offset, spread, codec, meta):
    """writeMRC(idx=nz) appends: old bytes untouched, NZ and exact stats updated, all read it."""
    first = varying_stack(rng, dtype, offset, spread)
    more = varying_stack(rng, dtype, offset, 2 * spread)[:2]
    path = tmp_path / "stack.mrcz"
    napari_mrcz.writeMRC(first, path, compressor=codec, meta=meta, pixelsize=PIXELSIZE_ZYX)
    before = extended_and_data(path)

    napari_mrcz.writeMRC(more, path, idx=len(first))
    full = np.concatenate([first, more])
    after = extended_and_data(path)
    assert after[: len(before)] == before
    assert len(after) > len(before)

    ours, header = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(ours, full)
    assert header["dimensions"][0] == len(full)
    np.testing.assert_allclose(header["pixelsize"], PIXELSIZE_ZYX, rtol=1e-6)
    assert_exact_stats(path, full)
    if meta:
        assert header["k"] == 1
    if codec is not None:
        assert header["packedBytes"] == len(after) - header["extendedBytes"]

    theirs, _ = mrcz.readMRC(str(path))
    np.testing.assert_array_equal(theirs[0] if codec is None else theirs, full)
    if codec is None:
        with mrcfile.open(str(path), permissive=meta is not None) as mrc:
            np.testing.assert_array_equal(mrc.data, full)
            np.testing.assert_allclose(mrc.voxel_size.tolist(), PIXELSIZE_ZYX[::-1], rtol=1e-6)
        if meta is None:
            assert_mrcfile_valid(path)


@pytest.mark.parametrize("codec", [None, "zstd"])
def test_append_to_python_mrcz_file(tmp_path, rng, codec):
    """Appending to python-mrcz's file (MZ = 0, first-frame stats) keeps it python-mrcz's kind.

    python-mrcz still reads it as one array, and the header statistics become exact
    for the whole stack, not a merge of python-mrcz's first-frame estimate.
    """
    first = varying_stack(rng, "float32")
    more = varying_stack(rng, "float32", spread=3.0)[:2]
    path = tmp_path / "theirs.mrcz"
    write_python_mrcz(first, path, codec)
    before = extended_and_data(path)

    napari_mrcz.writeMRC(more, path, idx=len(first))
    full = np.concatenate([first, more])
    assert extended_and_data(path)[: len(before)] == before
    theirs, their_meta = mrcz.readMRC(str(path))
    assert type(theirs) is np.ndarray
    np.testing.assert_array_equal(theirs, full)
    assert their_meta["k"] == META["k"]
    np.testing.assert_array_equal(napari_mrcz.readMRC(path)[0], full)
    assert_exact_stats(path, full)


@pytest.mark.parametrize("codec", [None, "zstd"])
@pytest.mark.parametrize("frame_ndim", [2, 3])
def test_append_to_list_file(tmp_path, rng, frame_ndim, codec):
    """Appending whole frames to a list file keeps it a list in both libraries."""
    frame_shape = (12, 10) if frame_ndim == 2 else (2, 12, 10)
    frames = [make_data(rng, "int16", frame_shape) for _ in range(3)]
    extra = [make_data(rng, "int16", frame_shape) for _ in range(2)]
    path = tmp_path / "list.mrcz"
    napari_mrcz.writeMRC(frames, path, compressor=codec)
    n_slices = len(frames) * (1 if frame_ndim == 2 else frame_shape[0])
    napari_mrcz.writeMRC(extra, path, idx=n_slices)

    for reader in (napari_mrcz.readMRC, lambda p: mrcz.readMRC(str(p))):
        got, _ = reader(path)
        assert isinstance(got, list)
        assert len(got) == 5
        for have, want in zip(got, frames + extra, strict=True):
            np.testing.assert_array_equal(have, want)


@pytest.mark.parametrize("idx", [1, -2])
def test_overwrite_middle_frame(tmp_path, rng, idx):
    """writeMRC(frame, idx=k) on a plain file rewrites slice k only and recomputes stats."""
    data = varying_stack(rng, "float32")
    path = tmp_path / "stack.mrc"
    napari_mrcz.writeMRC(data, path, pixelsize=PIXELSIZE_ZYX)
    before = extended_and_data(path)
    replacement = (100 * rng.standard_normal(SHAPE[1:])).astype(np.float32)

    napari_mrcz.writeMRC(replacement, path, idx=idx)
    expected = data.copy()
    expected[idx] = replacement
    after = extended_and_data(path)
    assert len(after) == len(before)
    slice_bytes = replacement.nbytes
    k = idx % len(data)
    assert after[: k * slice_bytes] == before[: k * slice_bytes]
    assert after[(k + 1) * slice_bytes :] == before[(k + 1) * slice_bytes :]
    assert after[k * slice_bytes : (k + 1) * slice_bytes] == replacement.tobytes()

    ours, meta = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(ours, expected)
    assert meta["dimensions"][0] == len(data)
    assert_exact_stats(path, expected)
    theirs, _ = mrcz.readMRC(str(path))
    np.testing.assert_array_equal(theirs[0], expected)
    with mrcfile.open(str(path)) as mrc:
        np.testing.assert_array_equal(mrc.data, expected)
    assert_mrcfile_valid(path)


def test_overwrite_inside_compressed_file_is_refused(tmp_path, rng):
    """MRCZ frames can only be appended: idx < nz raises like python-mrcz, file unchanged."""
    data = make_data(rng, "int16")
    path = tmp_path / "stack.mrcz"
    napari_mrcz.writeMRC(data, path, compressor="zstd")
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="arbitrary positions"):
        napari_mrcz.writeMRC(data[0], path, idx=1)
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------------------
# 6. JSON meta
# ---------------------------------------------------------------------------------------


class Axis(enum.Enum):
    X = 1
    Y = 2


class Calibrated:
    """An object with python-mrcz's ``serialize()`` hook."""

    def serialize(self):
        return {"scale": 0.5, "unit": "nm"}


def awkward_meta() -> dict:
    return {
        "f32": np.float32(1.25),
        "i64": np.int64(-7),
        "u16": np.uint16(65535),
        "flag": np.bool_(True),
        "matrix": np.arange(6, dtype=np.int16).reshape(2, 3),
        "nested": {"values": [np.float64(0.1), np.int8(-1)], "axis": Axis.Y},
        "axis": Axis.X,
        "calibration": Calibrated(),
        "text": "µm ✓",
    }


def blosc_chunks(path) -> list[bytes]:
    """The compressed chunks of an MRCZ file, walked by hand: cbytes at bytes 12-15 of each."""
    with open(path, "rb") as handle:
        raw = handle.read()
    nz, nsymbt = struct.unpack_from("<i", raw, 8)[0], struct.unpack_from("<i", raw, 92)[0]
    chunks, at = [], 1024 + nsymbt
    for _ in range(nz):
        (cbytes,) = struct.unpack_from("<i", raw, at + 12)
        chunks.append(raw[at : at + cbytes])
        at += cbytes
    return chunks


def extended_header(path) -> bytes:
    header, _ = napari_mrcz.readMRCHeader(path)
    with open(path, "rb") as handle:
        handle.seek(1024)
        return handle.read(header["extendedBytes"])


@pytest.mark.parametrize("codec", [None, "zstd"])
def test_json_meta_serialises_like_python_mrcz(tmp_path, rng, codec):
    """numpy scalars/arrays, Enums and serialize() objects give python-mrcz's exact JSON bytes."""
    data = make_data(rng, "float32")
    ours_path, theirs_path = tmp_path / "ours.mrcz", tmp_path / "theirs.mrcz"
    napari_mrcz.writeMRC(data, ours_path, meta=awkward_meta(), compressor=codec)
    mrcz.writeMRC(data, str(theirs_path), meta=awkward_meta(), compressor=codec)

    ours_json, theirs_json = extended_header(ours_path), extended_header(theirs_path)
    if codec is None:
        assert ours_json == theirs_json
    else:  # python-mrcz's bytes, then the chunk checksums we add at the end
        assert ours_json.startswith(theirs_json[:-1] + b', "chunk_crc32": "')
        assert json.loads(ours_json)["chunk_crc32"] == "".join(
            f"{zlib.crc32(chunk):08x}" for chunk in blosc_chunks(ours_path)
        )
    _, ours = napari_mrcz.readMRC(ours_path)
    _, theirs = mrcz.readMRC(str(theirs_path))
    for key in awkward_meta():
        assert ours[key] == theirs[key], key
    assert ours["axis"] == "Enum.Axis.X"
    assert ours["nested"] == {"values": [0.1, -1], "axis": "Enum.Axis.Y"}
    assert ours["matrix"] == [[0, 1, 2], [3, 4, 5]]
    assert ours["calibration"] == {"scale": 0.5, "unit": "nm"}


def test_unserialisable_meta_raises_type_error_like_python_mrcz(tmp_path, rng):
    """A value JSON cannot hold raises TypeError, as in python-mrcz, and writes no file."""
    data = make_data(rng, "float32")
    with pytest.raises(TypeError, match="Unhandled type"):
        mrcz.writeMRC(data, str(tmp_path / "theirs.mrc"), meta={"bad": object()})
    with pytest.raises(TypeError, match="Unhandled type"):
        napari_mrcz.writeMRC(data, tmp_path / "ours.mrc", meta={"bad": object()})
    assert not (tmp_path / "ours.mrc").exists()


COLLIDING_META = {
    "dimensions": [9, 9, 9],
    "dtype": "<f8",
    "pixelsize": [99.0, 99.0, 99.0],
    "voltage": 1.0,
    "C3": -1.0,
    "gain": 42.0,
    "compressor": "snappy",
    "MRCtype": 77,
    "minImage": -1e9,
    "maxImage": 1e9,
    "meanImage": 5.0,
    "extendedBytes": 0,
    "pixelunits": "pm",
    "harmless": "kept",
}


@pytest.mark.parametrize("codec", [None, "zstd"])
@pytest.mark.parametrize("writer", ["python-mrcz", "ours"])
def test_meta_keys_never_override_header_values(tmp_path, rng, writer, codec):
    """JSON keys named like header fields are ignored (python-mrcz 0.5.5); others are kept."""
    data = make_data(rng, "int16")
    path = tmp_path / "collide.mrcz"
    (write_python_mrcz if writer == "python-mrcz" else write_ours)(
        data, path, codec, meta=dict(COLLIDING_META)
    )

    ours_image, ours = napari_mrcz.readMRC(path)
    np.testing.assert_array_equal(ours_image, data)
    _, theirs = mrcz.readMRC(str(path))
    for meta in (ours, theirs):
        assert list(meta["dimensions"]) == list(data.shape)
        assert np.dtype(meta["dtype"]) == np.dtype("<i2")
        np.testing.assert_allclose(meta["pixelsize"], PIXELSIZE_ZYX, rtol=1e-6)
        assert meta["voltage"] == VOLTAGE
        assert meta["C3"] == np.float32(C3)
        assert meta["gain"] == GAIN
        assert meta["compressor"] == codec
        assert meta["MRCtype"] == 1
        assert meta["minImage"] == ours["minImage"] == theirs["minImage"] > -1e9
        assert meta["meanImage"] != COLLIDING_META["meanImage"]
        assert meta["extendedBytes"] > 0
        assert meta["pixelunits"] == "\\AA"
        assert meta["harmless"] == "kept"


@pytest.mark.parametrize("backend", [None, "blosc1"])
def test_writemrc_takes_python_mrcz_06s_backend(backend, tmp_path, rng):
    data = rng.normal(size=(3, 8, 8)).astype(np.float32)
    path = tmp_path / "b.mrcz"
    napari_mrcz.writeMRC(data, path, compressor="zstd", backend=backend)
    np.testing.assert_array_equal(mrcz.readMRC(str(path))[0], data)


def test_writemrc_says_it_does_not_write_blosc2_chunks(tmp_path, rng):
    data = rng.normal(size=(3, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"backend='blosc2' .* is not written by napari-mrcz"):
        napari_mrcz.writeMRC(data, tmp_path / "b.mrcz", compressor="zstd", backend="blosc2")
    with pytest.raises(ValueError, match="backend must be None, 'blosc1' or 'blosc2'"):
        napari_mrcz.writeMRC(data, tmp_path / "b.mrcz", compressor="zstd", backend="zarr")
    assert list(tmp_path.iterdir()) == []
    napari_mrcz.writeMRC(data, tmp_path / "plain.mrc", backend="blosc2")  # no codec: plain
