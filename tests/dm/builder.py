"""DM3/DM4 files built byte by byte, for the tests: the tag format as DigitalMicrograph
writes it (see :mod:`napari_mrcz.dm.tags`); files written by DigitalMicrograph itself
are tested in ``test_real_files.py``."""

from __future__ import annotations

import pathlib
import struct

import numpy as np

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


def values_of(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    if dtype.kind == "f":
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def line_scan(folder: pathlib.Path) -> tuple[pathlib.Path, np.ndarray]:
    """A DM4 EDS line scan: 100 positions of 2.5 nm, 4096 channels of 10 eV."""
    rng = np.random.default_rng(11)
    energies = np.arange(4096) * 0.01
    spectrum = 50 * np.exp(-(((energies - 1.74) / 0.05) ** 2)) + 5
    data = rng.poisson(np.tile(spectrum, (100, 1))).astype(np.float32)
    builder = DMBuilder()
    image = builder.image(
        2,
        [4096, 100],
        stored_bytes(data, "<"),
        calibrations=[(0.0, 0.01, "keV"), (0.0, 2.5, "nm")],
        data_code=F32,
        name="EDS",
    )
    return write(folder, builder.file([image]), "line_scan.dm4"), data
