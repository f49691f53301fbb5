"""DigitalMicrograph reader on DM3/DM4 files we build: data types, calibrations, tags,
laziness, python-mrcz's readDM4 interface, and damaged files.

The builder below writes the tag format as documented in ``napari_mrcz/dmtags.py``;
files written by DigitalMicrograph itself are tested in ``test_dm_real_files.py``.
"""

from __future__ import annotations

import mmap
import pathlib
import struct
import time
import tracemalloc

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import napari_mrcz
from napari_mrcz import MRCZFormatError, readDM4
from napari_mrcz.dm.images import (
    DATA_TYPES,
    LazyDMArray,
    read_dm,
    unpack_complex_fft,
)
from napari_mrcz.dm.tags import MAX_DEPTH

from tests.helpers import read_or_none

# --------------------------------------------------------------------------- builder

#: Tag value type codes.
I16, I32, U16, U32, F32, F64, BOOL, I8, U8, I64, U64 = 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
STRUCT, STRING, ARRAY = 15, 18, 20
CODE_DTYPES = {
    I16: "i2",
    I32: "i4",
    U16: "u2",
    U32: "u4",
    F32: "f4",
    F64: "f8",
    BOOL: "u1",
    I8: "i1",
    U8: "u1",
    I64: "i8",
    U64: "u8",
}


class DMBuilder:
    """Writes DM3 (version 3) or DM4 (version 4) files, data in ``order`` ('<' or '>')."""

    def __init__(self, version: int = 4, order: str = "<") -> None:
        self.version, self.order = version, order
        self.word = ">Q" if version == 4 else ">I"

    def words(self, values: list[int]) -> bytes:
        return b"".join(struct.pack(self.word, value) for value in values)

    def _tag(self, kind: int, name: str, body: bytes, length: int | None = None) -> bytes:
        raw = name.encode("latin-1")
        head = bytes([kind]) + struct.pack(">H", len(raw)) + raw
        if self.version == 4:
            head += struct.pack(">Q", len(body) if length is None else length)
        return head + body

    def group_body(self, children: list[bytes], ntags: int | None = None) -> bytes:
        count = len(children) if ntags is None else ntags
        return b"\x01\x00" + self.words([count]) + b"".join(children)

    def group(self, name: str, children: list[bytes], ntags: int | None = None) -> bytes:
        return self._tag(20, name, self.group_body(children, ntags))

    def raw_tag(
        self,
        name: str,
        infos: list[int],
        payload: bytes,
        length: int | None = None,
        ninfo: int | None = None,
    ) -> bytes:
        body = b"%%%%" + self.words([len(infos) if ninfo is None else ninfo, *infos]) + payload
        return self._tag(21, name, body, length)

    def pack(self, code: int, values) -> bytes:
        return np.asarray(values).astype(self.order + CODE_DTYPES[code]).tobytes()

    def scalar(self, name: str, code: int, value) -> bytes:
        return self.raw_tag(name, [code], self.pack(code, value))

    def array(self, name: str, code: int, values) -> bytes:
        values = np.asarray(values).ravel()
        return self.raw_tag(name, [ARRAY, code, values.size], self.pack(code, values))

    def text(self, name: str, value: str) -> bytes:
        units = np.frombuffer(value.encode("utf-16-le"), dtype="<u2")
        return self.array(name, U16, units)

    def struct(self, name: str, fields: list[tuple[int, float]]) -> bytes:
        infos = [STRUCT, 0, len(fields)]
        for code, _ in fields:
            infos += [0, code]
        return self.raw_tag(name, infos, b"".join(self.pack(c, v) for c, v in fields))

    def struct_array(self, name: str, codes: list[int], rows: list[tuple]) -> bytes:
        infos = [ARRAY, STRUCT, 0, len(codes)]
        for code in codes:
            infos += [0, code]
        payload = b"".join(
            self.pack(c, v) for row in rows for c, v in zip(codes, row, strict=True)
        )
        return self.raw_tag(name, [*infos, len(rows)], payload)

    def string(self, name: str, value: bytes) -> bytes:
        return self.raw_tag(name, [STRING, len(value)], value)

    def image(
        self,
        data_type: int,
        dims: list[int],
        payload: bytes,
        *,
        calibrations: list[tuple[float, float, str]] | None = None,
        brightness: tuple[float, float, str] = (0.0, 1.0, ""),
        name: str = "image",
        image_tags: list[bytes] = (),
        data_code: int = U8,
        count: int | None = None,
    ) -> bytes:
        """One ImageList entry; ``dims`` in DM's order (x first)."""
        itemsize = np.dtype(CODE_DTYPES[data_code]).itemsize
        count = len(payload) // itemsize if count is None else count
        data = self.raw_tag("Data", [ARRAY, data_code, count], payload)
        calibrations = calibrations or [(0.0, 1.0, "")] * len(dims)
        dimension = [
            self.group(
                "",
                [
                    self.scalar("Origin", F32, origin),
                    self.scalar("Scale", F32, scale),
                    self.text("Units", units),
                ],
            )
            for origin, scale, units in calibrations
        ]
        cal = self.group(
            "Calibrations",
            [
                self.group(
                    "Brightness",
                    [
                        self.scalar("Origin", F32, brightness[0]),
                        self.scalar("Scale", F32, brightness[1]),
                        self.text("Units", brightness[2]),
                    ],
                ),
                self.group("Dimension", dimension),
            ],
        )
        image_data = self.group(
            "ImageData",
            [
                cal,
                data,
                self.scalar("DataType", I32, data_type),
                self.group("Dimensions", [self.scalar("", U32, n) for n in dims]),
            ],
        )
        return self.group(
            "", [image_data, self.group("ImageTags", list(image_tags)), self.text("Name", name)]
        )

    def file(
        self, images: list[bytes], thumbnails: list[int] = (), extra: list[bytes] = ()
    ) -> bytes:
        thumbs = [self.group("", [self.scalar("ImageIndex", U32, index)]) for index in thumbnails]
        children = [*extra, self.group("ImageList", images)]
        if thumbnails:
            children.append(self.group("Thumbnails", thumbs))
        return self.wrap(self.group_body(children))

    def wrap(self, root_body: bytes) -> bytes:
        if self.version == 4:
            header = struct.pack(">iQi", 4, len(root_body), 1 if self.order == "<" else 0)
        else:
            header = struct.pack(">iIi", 3, len(root_body), 1 if self.order == "<" else 0)
        return header + root_body + b"\0" * 8


def stored_bytes(array: np.ndarray, order: str) -> bytes:
    """``array`` in the byte order ``order``, as DM stores pixels (C order)."""
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder(order)).tobytes()


def write(tmp_path: pathlib.Path, raw: bytes, name: str = "f.dm4") -> pathlib.Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def thumbnail(builder: DMBuilder) -> bytes:
    return builder.image(23, [4, 3], bytes(range(48)), name="thumb")


FORMATS = [(4, "<"), (4, ">"), (3, "<"), (3, ">")]
FORMAT_IDS = ["dm4-le", "dm4-be", "dm3-le", "dm3-be"]

#: numpy type of each plain DM data type.
PLAIN_TYPES = {
    1: "i2",
    2: "f4",
    3: "c8",
    6: "u1",
    7: "i4",
    9: "i1",
    10: "u2",
    11: "u4",
    12: "f8",
    13: "c16",
    39: "i8",
    40: "u8",
}


def _values(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    if dtype.kind == "f":
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


# --------------------------------------------------------------------------- data types


@pytest.mark.parametrize(("version", "order"), FORMATS, ids=FORMAT_IDS)
@pytest.mark.parametrize("data_type", sorted(PLAIN_TYPES))
def test_plain_types_read_exactly(tmp_path, rng, version, order, data_type):
    builder = DMBuilder(version, order)
    image = _values(rng, PLAIN_TYPES[data_type], (3, 4, 5))
    raw = builder.file(
        [thumbnail(builder), builder.image(data_type, [5, 4, 3], stored_bytes(image, order))],
        thumbnails=[0],
    )
    ((data, meta),) = read_dm(write(tmp_path, raw))
    assert data.dtype == image.dtype.newbyteorder("=")
    assert data.dtype.isnative
    npt.assert_array_equal(data, image)
    assert meta["data_type"] == data_type
    assert meta["data_type_name"] == DATA_TYPES[data_type][0]
    assert meta["format"] == f"DM{version}"
    assert meta["shape"] == (3, 4, 5)
    assert data.flags.writeable


@pytest.mark.parametrize(("version", "order"), FORMATS, ids=FORMAT_IDS)
def test_bool_images_are_bool(tmp_path, version, order):
    builder = DMBuilder(version, order)
    stored = np.array([[0, 1, 2], [255, 0, 7]], dtype=np.uint8)
    raw = builder.file([builder.image(14, [3, 2], stored.tobytes())])
    ((data, _),) = read_dm(write(tmp_path, raw))
    assert data.dtype == bool
    npt.assert_array_equal(data, stored != 0)


@pytest.mark.parametrize("data_type", [8, 23])
def test_rgb_images_are_red_green_blue_bytes(tmp_path, rng, data_type):
    builder = DMBuilder()
    pixels = rng.integers(0, 256, size=(2, 3, 4, 4), dtype=np.uint8)  # z, y, x, bytes
    raw = builder.file([builder.image(data_type, [4, 3, 2], pixels.tobytes())])
    ((data, meta),) = read_dm(write(tmp_path, raw))
    assert data.shape == (2, 3, 4, 3)
    assert data.dtype == np.uint8
    npt.assert_array_equal(data, pixels[..., :3])
    assert meta["rgb"] is True
    assert meta["shape"] == (2, 3, 4, 3)
    assert len(meta["axes"]) == 3


def _packed(full: np.ndarray) -> np.ndarray:
    """DM's packed half of a centred FFT: column k holds frequency -k."""
    centre = full.shape[-1] // 2
    return np.ascontiguousarray(full[..., centre::-1])


@pytest.mark.parametrize("shape", [(5, 5), (6, 8), (5, 7), (4, 5), (7, 6), (1, 4), (3, 1)])
@pytest.mark.parametrize("data_type", [27, 28])
def test_packed_complex_fft_comes_back_whole(tmp_path, rng, shape, data_type):
    real = rng.normal(size=shape)
    full = np.fft.fftshift(np.fft.fft2(real)).astype("c8" if data_type == 27 else "c16")
    builder = DMBuilder()
    raw = builder.file([builder.image(data_type, [shape[1], shape[0]], _packed(full).tobytes())])
    ((data, meta),) = read_dm(write(tmp_path, raw))
    assert data.shape == shape
    assert data.dtype == full.dtype
    npt.assert_allclose(data, full, rtol=1e-5, atol=1e-4)
    npt.assert_allclose(np.fft.ifft2(np.fft.ifftshift(data)).real, real, atol=1e-4)
    assert meta["shape"] == shape


def test_packed_complex_stack_unpacks_each_plane(rng):
    real = rng.normal(size=(3, 6, 7))
    full = np.fft.fftshift(np.fft.fft2(real), axes=(-2, -1))
    npt.assert_allclose(unpack_complex_fft(_packed(full), 7), full, atol=1e-12)


def test_packed_complex_1d(rng):
    real = rng.normal(size=9)
    full = np.fft.fftshift(np.fft.fft(real))
    npt.assert_allclose(unpack_complex_fft(_packed(full), 9), full, atol=1e-12)


@pytest.mark.parametrize("data_type", [0, 4, 5, 15, 24, 26, 99])
def test_unsupported_data_types_are_refused(tmp_path, data_type):
    builder = DMBuilder()
    raw = builder.file([builder.image(data_type, [2, 2], bytes(16))])
    path = write(tmp_path, raw)
    with pytest.raises(MRCZFormatError, match=f"DM data type {data_type} ") as info:
        read_dm(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- meta


def test_calibrations_per_axis_in_numpy_order(tmp_path):
    builder = DMBuilder(3)
    cal = [(2.5, 0.5, "nm"), (-4.0, 2.0, "µm"), (10.0, 0.25, "eV")]  # DM order: x, y, z
    raw = builder.file(
        [
            builder.image(
                2,
                [2, 3, 4],
                bytes(4 * 24),
                calibrations=cal,
                brightness=(1.5, 3.0, "e-"),
                name="calibrated",
            )
        ]
    )
    ((data, meta),) = read_dm(write(tmp_path, raw, "f.dm3"))
    assert data.shape == (4, 3, 2)
    z, y, x = meta["axes"]
    assert (z["name"], y["name"], x["name"]) == ("z", "y", "x")
    assert (z["size"], y["size"], x["size"]) == (4, 3, 2)
    assert x == {
        "name": "x",
        "size": 2,
        "scale": 0.5,
        "origin": 2.5,
        "units": "nm",
        "offset": -1.25,
        "scale_angstrom": 5.0,
        "offset_angstrom": -12.5,
    }
    assert y["scale_angstrom"] == pytest.approx(2e4)
    assert y["offset_angstrom"] == pytest.approx(8e4)
    assert z["units"] == "eV"
    assert z["scale_angstrom"] is None
    assert z["offset"] == -2.5
    assert meta["pixelsize"] == [None, pytest.approx(2e4), 5.0]
    assert meta["scale_angstrom"] == [0.25, pytest.approx(2e4), 5.0]
    assert meta["offset_angstrom"] == [-2.5, pytest.approx(8e4), -12.5]
    assert meta["units_napari"] == ["eV", "angstrom", "angstrom"]
    assert meta["intensity"] == {"origin": 1.5, "scale": 3.0, "units": "e-"}
    assert meta["name"] == "calibrated"


@pytest.mark.parametrize(
    ("unit", "angstrom"),
    [
        ("nm", 10.0),
        ("µm", 1e4),
        ("\u03bcm", 1e4),
        ("um", 1e4),
        ("pm", 0.01),
        ("Å", 1.0),
        ("\u212b", 1.0),
        ("A", 1.0),
        ("1/nm", None),
        ("", None),
        ("s", None),
    ],
)
def test_length_units_become_angstrom(tmp_path, unit, angstrom):
    builder = DMBuilder()
    raw = builder.file([builder.image(6, [2], bytes(2), calibrations=[(0.0, 2.0, unit)])])
    ((_, meta),) = read_dm(write(tmp_path, raw))
    (axis,) = meta["axes"]
    assert axis["units"] == unit
    assert axis["scale"] == 2.0
    if angstrom is None:
        assert axis["scale_angstrom"] is None
        assert meta["units_napari"] == [unit or "pixel"]
    else:
        assert axis["scale_angstrom"] == pytest.approx(2.0 * angstrom)
        assert meta["units_napari"] == ["angstrom"]


def test_missing_calibrations_default_to_pixels(tmp_path):
    builder = DMBuilder()
    data = builder.raw_tag("Data", [ARRAY, U8, 6], bytes(6))
    image = builder.group(
        "",
        [
            builder.group(
                "ImageData",
                [
                    data,
                    builder.scalar("DataType", I32, 6),
                    builder.group(
                        "Dimensions", [builder.scalar("", U32, 3), builder.scalar("", U32, 2)]
                    ),
                ],
            )
        ],
    )
    ((array, meta),) = read_dm(write(tmp_path, builder.file([image])))
    assert array.shape == (2, 3)
    assert [(a["scale"], a["origin"], a["units"]) for a in meta["axes"]] == [(1.0, 0.0, "")] * 2
    assert meta["intensity"] == {"origin": 0.0, "scale": 1.0, "units": ""}
    assert meta["name"] == ""


def test_thumbnails_left_out_by_their_recorded_index(tmp_path):
    builder = DMBuilder()
    first = builder.image(6, [2, 2], bytes([1, 2, 3, 4]), name="first")
    second = builder.image(
        10, [3], stored_bytes(np.array([5, 6, 7], np.uint16), "<"), name="second"
    )
    raw = builder.file([first, thumbnail(builder), second], thumbnails=[1])
    images = read_dm(write(tmp_path, raw))
    assert [meta["name"] for _, meta in images] == ["first", "second"]
    assert [meta["image_index"] for _, meta in images] == [0, 2]
    npt.assert_array_equal(images[1][0], [5, 6, 7])
    assert images[0][1]["tags"] is images[1][1]["tags"]


def test_without_thumbnails_tag_every_image_is_returned(tmp_path):
    builder = DMBuilder()
    raw = builder.file([thumbnail(builder), builder.image(6, [1], b"\x07")])
    images = read_dm(write(tmp_path, raw))
    assert [meta["data_type"] for _, meta in images] == [23, 6]


def test_file_without_image_list_is_refused(tmp_path):
    builder = DMBuilder()
    raw = builder.wrap(builder.group_body([builder.scalar("Hello", I32, 1)]))
    with pytest.raises(MRCZFormatError, match="no ImageList"):
        read_dm(write(tmp_path, raw))


def test_tag_tree_is_plain_python(tmp_path):
    builder = DMBuilder(3, ">")
    big = np.arange(5000, dtype=np.uint8)
    extra = [
        builder.group(
            "Values",
            [
                builder.scalar("Int", I32, -7),
                builder.scalar("UInt64", U64, 2**63 + 5),
                builder.scalar("Float", F64, 0.125),
                builder.scalar("Flag", BOOL, 1),
                builder.scalar("Byte", I8, -3),
                builder.scalar("", I16, 4),
                builder.scalar("", I16, 5),
                builder.scalar("Twice", U8, 1),
                builder.scalar("Twice", U8, 2),
                builder.text("Text", "Åbc µm"),
                builder.text("Empty", ""),
                builder.string("Bytes", b"latin \xe9"),
                builder.array("Small", F32, [1.5, 2.5]),
                builder.array("Big", U8, big),
                builder.struct("Pair", [(I16, 3), (F32, 0.5)]),
                builder.struct_array("Table", [I16, I16, I16], [(1, 2, 3), (4, 5, 6)]),
                builder.raw_tag(
                    "Nested",
                    [ARRAY, ARRAY, I16, 3, 2],
                    stored_bytes(np.arange(6, dtype=np.int16), ">"),
                ),
                builder.raw_tag("Strings", [ARRAY, STRING, 2, 2], b"abcd"),
            ],
        ),
    ]
    raw = builder.file([builder.image(6, [1], b"\x00")], extra=extra)
    ((_, meta),) = read_dm(write(tmp_path, raw, "f.dm3"))
    values = meta["tags"]["Values"]
    assert values["Int"] == -7
    assert values["UInt64"] == 2**63 + 5
    assert values["Float"] == 0.125
    assert values["Flag"] is True
    assert values["Byte"] == -3
    assert values["0"] == 4
    assert values["1"] == 5
    assert values["Twice"] == 1
    assert values["Twice (2)"] == 2
    assert values["Text"] == "Åbc µm"
    assert values["Empty"] == ""
    assert values["Bytes"] == "latin é"
    assert values["Small"] == [1.5, 2.5]
    assert values["Big"] == "<array uint8 (5000,)>"
    assert values["Pair"] == (3, 0.5)
    assert values["Table"] == [(1, 2, 3), (4, 5, 6)]
    assert values["Nested"] == [[0, 1, 2], [3, 4, 5]]
    assert values["Strings"] == ["ab", "cd"]
    image = meta["tags"]["ImageList"]["0"]
    assert image["ImageData"]["Data"] == "<array uint8 (1,)>"
    assert image["ImageData"]["Dimensions"] == {"0": 1}
    assert image["Name"] == "image"


# --------------------------------------------------------------------------- laziness


@pytest.fixture
def stack_file(tmp_path, rng):
    builder = DMBuilder()
    stack = rng.normal(size=(6, 5, 4)).astype(np.float32)
    raw = builder.file([builder.image(2, [4, 5, 6], stack.tobytes())])
    return write(tmp_path, raw), stack


@pytest.mark.parametrize(
    "key",
    [
        0,
        -1,
        5,
        np.int64(2),
        slice(None),
        slice(1, 4),
        slice(None, None, 2),
        slice(5, 0, -2),
        slice(4, 2),
        (2, 3),
        (slice(1, 3), 0, slice(None, None, -1)),
        (Ellipsis, 1),
        [0, 5, 2],
        (np.array([1, 1]), 2),
        (),
        (slice(None), Ellipsis),
        (3, Ellipsis, 2),
    ],
)
def test_lazy_indexing_matches_numpy(stack_file, key):
    path, stack = stack_file
    ((lazy, _),) = read_dm(path, lazy=True)
    assert isinstance(lazy, LazyDMArray)
    npt.assert_array_equal(lazy[key], stack[key])


def test_lazy_array_protocol(stack_file):
    path, stack = stack_file
    ((lazy, _),) = read_dm(path, lazy=True)
    assert lazy.shape == stack.shape
    assert lazy.dtype == stack.dtype
    assert lazy.ndim == 3
    assert lazy.size == stack.size
    assert lazy.nbytes == stack.nbytes
    assert len(lazy) == 6
    assert "LazyDMArray" in repr(lazy)
    npt.assert_array_equal(np.asarray(lazy), stack)
    npt.assert_array_equal(np.asarray(lazy, dtype=np.float64), stack.astype(np.float64))
    with pytest.raises(IndexError):
        lazy[6]
    ((eager, _),) = read_dm(path, lazy=False)
    assert isinstance(eager, np.ndarray)


@pytest.mark.parametrize("kind", ["rgb", "packed", "bool", "1d"])
def test_lazy_special_types_match_eager(tmp_path, rng, kind):
    builder = DMBuilder(3, ">")
    if kind == "rgb":
        image = builder.image(23, [3, 2, 2], rng.integers(0, 256, 48, dtype=np.uint8).tobytes())
    elif kind == "packed":
        image = builder.image(
            27,
            [6, 4],
            _packed(np.fft.fftshift(np.fft.fft2(rng.normal(size=(4, 6))))).astype(">c8").tobytes(),
        )
    elif kind == "bool":
        image = builder.image(14, [2, 3, 2], rng.integers(0, 3, 12, dtype=np.uint8).tobytes())
    else:
        image = builder.image(7, [5], stored_bytes(np.arange(5, dtype=np.int32), ">"))
    path = write(tmp_path, builder.file([image]), "f.dm3")
    ((eager, _),) = read_dm(path, lazy=False)
    ((lazy, _),) = read_dm(path, lazy=True)
    assert lazy.shape == eager.shape
    assert lazy.dtype == eager.dtype
    npt.assert_array_equal(np.asarray(lazy), eager)
    npt.assert_array_equal(lazy[-1], eager[-1])
    npt.assert_array_equal(lazy[::-1], eager[::-1])


def test_huge_movie_opens_without_reading_its_data(tmp_path):
    """A 4 GiB DM3 movie (a sparse file): opening is instant and lazy, frames read."""
    builder = DMBuilder(3)
    frames, side = 1024, 1024
    count = frames * side * side  # float32 values
    marker = b"\xab\xcd\xef\x01"
    raw = builder.file(
        [builder.image(2, [side, side, frames], marker, data_code=F32, count=count)]
    )
    assert raw.count(marker) == 1
    at = raw.index(marker)
    path = tmp_path / "movie.dm3"
    with open(path, "wb") as handle:
        handle.write(raw[:at])
        handle.seek(at + 4 * count)
        handle.write(raw[at + len(marker) :])
    start = time.perf_counter()
    ((movie, meta),) = read_dm(path)
    assert time.perf_counter() - start < 1.0
    assert isinstance(movie, LazyDMArray)
    assert movie.shape == (frames, side, side)
    assert movie.dtype == np.float32
    assert meta["shape"] == (frames, side, side)
    assert meta["tags"]["ImageList"]["0"]["ImageData"]["Data"] == f"<array float32 ({count},)>"
    assert not movie[-1].any()
    dm4 = readDM4(path)
    assert dm4.f is None
    npt.assert_array_equal(dm4.im[0].shape, (frames, side, side))


def test_lazy_read_of_a_file_truncated_after_opening(stack_file):
    path, _ = stack_file
    ((lazy, _),) = read_dm(path, lazy=True)
    with open(path, "r+b") as handle:
        handle.truncate(lazy.layout.offset + 10)
    with pytest.raises(MRCZFormatError, match="past the end of the file"):
        lazy[-1]


# --------------------------------------------------------------------------- readDM4


@pytest.mark.parametrize(("version", "order"), FORMATS, ids=FORMAT_IDS)
def test_read_dm4_python_mrcz_interface(tmp_path, rng, version, order):
    builder = DMBuilder(version, order)
    stack = rng.normal(size=(2, 3, 4)).astype(np.float32)
    tags = [
        builder.group(
            "Microscope Info",
            [
                builder.scalar("Voltage", F32, 3e5),
                builder.scalar("Cs(mm)", F32, 2.7),
                builder.text("Mode", "TEM"),
            ],
        ),
        builder.group(
            "Acquisition",
            [
                builder.group(
                    "Device",
                    [
                        builder.group(
                            "CCD", [builder.struct("Pixel Size (um)", [(F32, 5.0), (F32, 5.0)])]
                        ),
                        builder.group(
                            "Configuration",
                            [
                                builder.group(
                                    "Transpose",
                                    [
                                        builder.scalar("Horizontal Flip", BOOL, 1),
                                        builder.scalar("Diagonal Flip", BOOL, 0),
                                    ],
                                )
                            ],
                        ),
                    ],
                )
            ],
        ),
        builder.group(
            "Calibration", [builder.group("Dose Rate", [builder.scalar("Calibration", F64, 1.25)])]
        ),
    ]
    image = builder.image(
        2,
        [4, 3, 2],
        stored_bytes(stack, order),
        image_tags=tags,
        calibrations=[(0.0, 0.5, "nm"), (1.0, 0.5, "nm"), (0.0, 2.0, "s")],
        brightness=(0.0, 1.0, "e-"),
    )
    path = write(tmp_path, builder.file([thumbnail(builder), image], thumbnails=[0]))
    with readDM4(path) as dm4:
        assert dm4.f is None
        assert len(dm4.im) == 2
        thumb, second = dm4.im
        npt.assert_array_equal(second.shape, (2, 3, 4))
        npt.assert_array_equal(second.imageData, stack[:, ::-1, :])
        assert thumb.imageData.shape == (3, 4, 3)
        info = second.imageInfo
        assert info["Voltage"] == pytest.approx(3e5)
        assert info["C3"] == pytest.approx(2.7)
        assert info["MicroscopeMode"] == "TEM"
        assert info["IntensityUnits"] == "e-"
        assert info["DimXScale"] == 0.5
        assert info["DimYOrigin"] == 1.0
        assert info["DimXUnits"] == "nm"
        assert info["DimZUnits"] == "s"
        assert info["HorzFlip"] is True
        assert info["DiagFlip"] is False
        assert list(info["DetectorPixelSize"]) == [5.0, 5.0]
        assert info["DoseRateCalibration"] == [1.25]
        assert dm4.tags["ImageList"]["1"]["Name"] == "image"


def test_read_dm4_keeps_one_dimensional_data_unflipped(tmp_path):
    builder = DMBuilder()
    spectrum = np.arange(7, dtype=np.float32)
    path = write(tmp_path, builder.file([builder.image(2, [7], spectrum.tobytes())]))
    npt.assert_array_equal(readDM4(path).im[0].imageData, spectrum)


def test_read_dm4_reads_image_data_only_when_used(tmp_path, rng):
    builder = DMBuilder()
    image = rng.normal(size=(3, 5)).astype(np.float32)
    path = write(tmp_path, builder.file([builder.image(2, [5, 3], image.tobytes())]))
    dm4 = readDM4(path)
    path.unlink()  # the data was not read while parsing: using it now fails cleanly
    with pytest.raises(FileNotFoundError):
        dm4.im[0].imageData  # noqa: B018
    dm4.im[0].imageData = image
    npt.assert_array_equal(dm4.im[0].imageData, image)


def test_async_read_and_aliases(tmp_path, rng):
    builder = DMBuilder(3)
    image = rng.normal(size=(2, 3)).astype(np.float32)
    path = write(tmp_path, builder.file([builder.image(2, [3, 2], image.tobytes())]), "a.dm3")
    future = napari_mrcz.asyncReadDM4(path)
    npt.assert_array_equal(future.result().im[0].imageData, image[:, ::-1])
    assert napari_mrcz.read_dm4 is napari_mrcz.readDM4
    assert napari_mrcz.async_read_dm4 is napari_mrcz.asyncReadDM4
    assert napari_mrcz.read_dm is read_dm
    for name in ("readDM4", "asyncReadDM4", "read_dm4", "async_read_dm4", "read_dm"):
        assert name in napari_mrcz.__all__


def test_python_mrcz_method_names_walk_the_file(tmp_path):
    """parse_group, parse_tag and readDM4's discardTag and retrieveTagData agree."""
    builder = DMBuilder()
    raw = builder.file(
        [builder.image(6, [2], b"\x01\x02")],
        extra=[
            builder.scalar("A", I32, 5),
            builder.struct("B", [(I16, 1), (F64, 2.0)]),
            builder.text("C", "text"),
            builder.group("D", [builder.scalar("E", F32, 1.0)]),
        ],
    )
    seen = []

    class Checking(readDM4):
        """Checks each entry with python-mrcz's method names while the file is parsed."""

        def parse_tag(self, parent=b"/"):
            start = self.f.tell()
            name, value = super().parse_tag(parent)
            end = self.f.tell()
            self.f.seek(start)
            self.discardTag()
            assert self.f.tell() == end
            self.f.seek(start)
            namelen = struct.unpack(">H", self.f.read(2))[0]
            self.f.seek(start + 2 + namelen + 8 + 4)
            ninfo = struct.unpack(">Q", self.f.read(8))[0]
            assert self.retrieveTagData(ninfo) == value
            assert self.f.tell() == end
            seen.append(name)
            return name, value

        def parse_group(self, parent=b"/", depth=0):
            name, group = super().parse_group(parent, depth)
            seen.append(name)
            return name, group

    tags = Checking(write(tmp_path, raw), verbose=True).tags
    assert seen == ["A", "B", "C", "D", "ImageList"]
    assert tags["B"] == (1, 2.0)
    assert tags["C"] == "text"
    assert tags["D"] == {"E": 1.0}


# --------------------------------------------------------------------------- bad files


def _valid(version: int = 4) -> tuple[DMBuilder, bytes]:
    builder = DMBuilder(version)
    return builder, builder.file([builder.image(10, [3, 2], bytes(12))])


def _bad_files() -> dict[str, tuple[bytes, str]]:
    """Damaged files and a phrase their error must contain."""
    b4, b3 = DMBuilder(4), DMBuilder(3)
    ok4 = b4.image(6, [1], b"\x00")
    deep = b4.scalar("leaf", I32, 1)
    for _ in range(MAX_DEPTH + 5):
        deep = b4.group("g", [deep])
    return {
        "empty": (b"", "too few"),
        "short": (b"\x00\x00\x00\x04\x00", "too few"),
        "version 5": (struct.pack(">iQi", 5, 0, 1) + bytes(20), "version field is 5"),
        "byte order 7": (struct.pack(">iQi", 4, 0, 7) + bytes(20), "byte-order field is 7"),
        "many root tags": (b4.wrap(b4.group_body([ok4], ntags=2**60)), "declares"),
        "many tags dm3": (b3.wrap(b3.group_body([b3.group("G", [], ntags=2**31)])), "declares"),
        "tag kind 7": (b4.wrap(b4.group_body([b"\x07" + ok4[1:]])), "unknown tag kind 7"),
        "nested kind 0": (b4.file([b4.group("", [b"\x00" + ok4[1:]])]), "unknown tag kind 0"),
        "name past end": (b4.wrap(b4.group_body([b"\x15\xff\xffab"])), "past the end"),
        "giant array": (
            b4.file([], extra=[b4.raw_tag("A", [ARRAY, U8, 2**62], b"")]),
            "past the end",
        ),
        "giant struct array": (
            b4.file([], extra=[b4.raw_tag("A", [ARRAY, STRUCT, 0, 1, 0, F64, 2**61], b"")]),
            "past the end",
        ),
        "giant string": (
            b4.file([], extra=[b4.raw_tag("S", [STRING, 2**40], b"")]),
            "past the end",
        ),
        "giant info": (
            b4.file([], extra=[b4.raw_tag("I", [I32], b"\0" * 4, ninfo=2**40)]),
            "info array",
        ),
        "giant fields": (b4.file([], extra=[b4.raw_tag("T", [STRUCT, 0, 2**40], b"")]), "fields"),
        "short info": (b4.file([], extra=[b4.raw_tag("A", [ARRAY, U8], b"")]), "ends too early"),
        "unknown type": (
            b4.file([], extra=[b4.raw_tag("U", [33], b"\0" * 8)]),
            "unknown type code 33",
        ),
        "no delimiter": (
            b4.file([], extra=[b4.raw_tag("A", [I32], b"\0" * 4).replace(b"%%%%", b"%%%!")]),
            "delimiter",
        ),
        "wrong tag length": (
            b4.file([], extra=[b4.raw_tag("A", [I32], b"\0" * 4, length=30)]),
            "declares that it ends",
        ),
        "tag length past end": (
            b4.file([], extra=[b4.raw_tag("A", [I32], b"\0" * 4, length=2**62)]),
            "past the end",
        ),
        "too deep": (b4.file([], extra=[deep]), f"deeper than {MAX_DEPTH}"),
        "dims mismatch": (b4.file([b4.image(10, [3, 3], bytes(12))]), "need 18 bytes"),
        "bad dims": (b4.file([b4.image(10, [], bytes(12))]), "Dimensions"),
        "data not array": (
            b4.file(
                [
                    b4.group(
                        "",
                        [
                            b4.group(
                                "ImageData",
                                [
                                    b4.scalar("Data", I32, 1),
                                    b4.scalar("DataType", I32, 7),
                                    b4.group("Dimensions", [b4.scalar("", U32, 1)]),
                                ],
                            )
                        ],
                    )
                ]
            ),
            "not an array",
        ),
        "data type text": (
            b4.file(
                [
                    b4.group(
                        "",
                        [
                            b4.group(
                                "ImageData",
                                [
                                    b4.array("Data", U8, [1]),
                                    b4.text("DataType", "x"),
                                    b4.group("Dimensions", [b4.scalar("", U32, 1)]),
                                ],
                            )
                        ],
                    )
                ]
            ),
            "DataType is 'x'",
        ),
        "no data type, struct data": (
            b4.file(
                [
                    b4.group(
                        "",
                        [
                            b4.group(
                                "ImageData",
                                [
                                    b4.struct_array("Data", [I16, I16], [(1, 2)]),
                                    b4.group("Dimensions", [b4.scalar("", U32, 1)]),
                                ],
                            )
                        ],
                    )
                ]
            ),
            "DataType is None",
        ),
        "truncated": (_valid()[1][:200], "past the end"),
        "truncated dm3": (_valid(3)[1][:150], "past the end"),
    }


BAD_FILES = _bad_files()


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_damaged_files_give_a_clear_error(tmp_path, case):
    raw, phrase = BAD_FILES[case]
    path = write(tmp_path, raw)
    tracemalloc.start()
    try:
        with pytest.raises(MRCZFormatError) as info:
            read_dm(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert type(info.value) is MRCZFormatError
    assert phrase in info.value.problem
    assert info.value.path == str(path)
    assert peak < 4 * 2**20, f"{peak} bytes allocated for a {len(raw)}-byte file"
    with pytest.raises(MRCZFormatError):
        readDM4(path)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(MRCZFormatError, match="directory"):
        read_dm(tmp_path)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dm(tmp_path / "missing.dm4")


def test_nesting_up_to_the_cap_is_read(tmp_path):
    builder = DMBuilder(3)
    deep = builder.scalar("leaf", I32, 42)
    for _ in range(MAX_DEPTH - 1):
        deep = builder.group("g", [deep])
    raw = builder.file([builder.image(6, [1], b"\x05")], extra=[deep])
    ((data, meta),) = read_dm(write(tmp_path, raw))
    node = meta["tags"]
    for _ in range(MAX_DEPTH - 1):
        node = node["g"]
    assert node["leaf"] == 42
    assert data.tolist() == [5]


def test_parser_closes_its_memory_map_on_errors(tmp_path, monkeypatch):
    maps = []
    real_mmap = mmap.mmap

    def tracking(*args, **kwargs):
        maps.append(real_mmap(*args, **kwargs))
        return maps[-1]

    monkeypatch.setattr(mmap, "mmap", tracking)
    path = write(tmp_path, BAD_FILES["unknown type"][0])
    with pytest.raises(MRCZFormatError):
        read_dm(path)
    assert maps
    assert all(m.closed for m in maps)


# --------------------------------------------------------------------------- fuzz

FUZZ = settings(
    derandomize=True,
    database=None,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _rich_file(version: int, order: str) -> bytes:
    builder = DMBuilder(version, order)
    rng = np.random.default_rng(3)
    stack = rng.normal(size=(2, 3, 4)).astype(np.float32)
    extra = [
        builder.group(
            "Tags",
            [
                builder.struct("S", [(I16, 1), (F64, 2.0)]),
                builder.text("T", "µm"),
                builder.string("B", b"xy"),
                builder.struct_array("A", [I16, U8], [(1, 2), (3, 4)]),
            ],
        )
    ]
    return builder.file(
        [
            thumbnail(builder),
            builder.image(2, [4, 3, 2], stored_bytes(stack, order)),
            builder.image(27, [4, 3], bytes(72)),
        ],
        thumbnails=[0],
        extra=extra,
    )


SOURCES = {f"{v}{o}": _rich_file(v, o) for v, o in FORMATS}


def read_or_refuse(path: pathlib.Path) -> None:
    """Reading gives consistent data or exactly MRCZFormatError naming the file."""
    images = read_or_none(path, read_dm)
    if images is None:
        return
    for data, meta in images:
        array = np.asarray(data)
        assert array.shape == meta["shape"]
        lazy = read_dm(path, lazy=True)
        assert all(
            np.array_equal(np.asarray(a), np.asarray(b), equal_nan=a.dtype.kind in "fc")
            for (a, _), (b, _) in zip(images, lazy, strict=True)
        )


@FUZZ
@given(source=st.sampled_from(sorted(SOURCES)), cut=st.integers(0, 4000))
def test_fuzz_truncated_synthetic_files(tmp_path_factory, source, cut):
    raw = SOURCES[source]
    path = tmp_path_factory.mktemp("cut") / "f.dm4"
    path.write_bytes(raw[: min(cut, len(raw) - 1)])
    read_or_refuse(path)


@FUZZ
@given(
    source=st.sampled_from(sorted(SOURCES)),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_fuzz_flipped_bytes_synthetic_files(tmp_path_factory, source, flips):
    raw = bytearray(SOURCES[source])
    for at, xor in flips:
        raw[at % len(raw)] ^= xor
    path = tmp_path_factory.mktemp("flip") / "f.dm4"
    path.write_bytes(bytes(raw))
    read_or_refuse(path)
