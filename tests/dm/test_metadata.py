"""DM metadata (napari_mrcz.dm.metadata): calibrations, units, thumbnails, the tag tree."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest

from napari_mrcz import MRCZFormatError
from napari_mrcz.dm.images import (
    read_dm,
)

from tests.dm.builder import (
    ARRAY,
    BOOL,
    F32,
    F64,
    I8,
    I16,
    I32,
    STRING,
    U8,
    U32,
    U64,
    DMBuilder,
    stored_bytes,
    thumbnail,
    write,
)

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
