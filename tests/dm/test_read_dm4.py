"""python-mrcz's readDM4 interface on DM files we build."""

from __future__ import annotations

import struct

import numpy as np
import numpy.testing as npt
import pytest

import napari_mrcz
from napari_mrcz import readDM4
from napari_mrcz.dm.images import (
    read_dm,
)

from tests.dm.builder import (
    BOOL,
    F32,
    F64,
    FORMAT_IDS,
    FORMATS,
    I16,
    I32,
    DMBuilder,
    stored_bytes,
    thumbnail,
    write,
)

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
