"""The DM tag parser (napari_mrcz.dm.tags) on damaged and fuzzed files: one clear error
naming the file, never a crash or a hang.
"""

from __future__ import annotations

import mmap
import pathlib
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_mrcz import MRCZFormatError, readDM4
from napari_mrcz.dm.images import (
    read_dm,
)
from napari_mrcz.dm.tags import MAX_DEPTH

from tests.dm.builder import (
    ARRAY,
    F64,
    FORMATS,
    I16,
    I32,
    STRING,
    STRUCT,
    U8,
    U32,
    DMBuilder,
    stored_bytes,
    thumbnail,
    write,
)
from tests.helpers import read_or_none

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
