"""``mrcz info``, driven as a user drives it: in a subprocess, on files."""

import json
import os

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz

from tests.cli.commands import run
from tests.helpers import SHARED_DATA


def test_info_of_an_mrcz_file(tmp_path, rng):
    path = tmp_path / "movie.mrcz"
    data = rng.poisson(1.0, size=(5, 64, 32)).astype(np.int8)
    napari_mrcz.writeMRC(
        data,
        path,
        meta={"dose": 1.2, "detector": "K3"},
        pixelsize=[2.0, 1.1, 1.0],
        compressor="lz4",
        clevel=5,
        voltage=200,
    )
    text = run("info", path, check_status=0).stdout
    assert "32 x 64 x 5 (x, y, z)" in text
    assert "mode: 0 (int8" in text
    assert "pixel size: 1 x 1.1 x 2 Å (x, y, z)" in text
    assert "blosc lz4, level 5" in text
    assert "JSON meta keys: detector, dose" in text
    assert "200 kV" in text

    [summary] = json.loads(run("info", "--json", path, check_status=0).stdout)
    packed = os.path.getsize(path) - 1024 - summary["extended_header"]["bytes"]
    assert summary["codec"] == "lz4"
    assert summary["level"] == 5
    assert summary["packed_bytes"] == packed
    assert summary["data_bytes"] == data.nbytes
    assert summary["ratio"] == pytest.approx(data.nbytes / packed)
    assert summary["shape"] == [5, 64, 32]
    assert summary["pixel_size_angstrom"] == pytest.approx([2.0, 1.1, 1.0])
    assert summary["json_meta_keys"] == ["detector", "dose"]


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_info_of_undetermined_statistics():
    """Velox writes DMAX < DMIN and RMS < 0: MRC2014's 'not determined'."""
    text = run("info", SHARED_DATA / "mrc" / "rsciio_HAADFscan.mrc", check_status=0).stdout
    assert "statistics: not determined" in text
    assert "extended header: FEI2" in text


def test_info_says_when_the_level_was_not_recorded(tmp_path, rng):
    """python-mrcz does not record the level (blosc chunks do not hold it)."""
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(
        rng.random((2, 16, 16), dtype=np.float32), str(path), compressor="zstd", clevel=3
    )
    assert "blosc zstd, level not recorded" in run("info", path, check_status=0).stdout
    [summary] = json.loads(run("info", "--json", path, check_status=0).stdout)
    assert summary["level"] is None
    assert summary["codec"] == "zstd"


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_info_of_a_real_dm_file_shows_tag_highlights():
    path = SHARED_DATA / "dm3" / "rsciio_2D_multi_signal.dm3"
    text = run("info", path, check_status=0).stdout
    assert "image 0: HAADF  512 x 512 (x, y)  uint16" in text
    assert "pixel size: 0.0177516 nm, 0.0177516 nm (x, y)" in text
    assert "Microscope: FEI Tecnai Remote" in text
    assert "Voltage: 300000.0" in text
    [summary] = json.loads(run("info", "--json", path, check_status=0).stdout)
    assert summary["format"] == "DM3"
    assert len(summary["images"]) == 2


def test_info_goes_on_after_a_damaged_file(tmp_path, rng):
    good = tmp_path / "good.mrc"
    napari_mrcz.writeMRC(rng.random((2, 8, 8), dtype=np.float32), good)
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"not an MRC file at all")
    result = run("info", bad, good)
    assert result.returncode == 1
    assert str(bad) in result.stderr
    assert "too short" in result.stderr
    assert str(good) in result.stdout


def test_info_json_is_strict_json_for_odd_statistics(tmp_path):
    path = tmp_path / "nan.mrc"
    napari_mrcz.writeMRC(np.zeros((1, 4, 4), np.float32), path)
    with mrcfile.open(path, "r+", permissive=True) as handle:
        handle.header.rms = np.nan
    text = run("info", "--json", path, check_status=0).stdout
    assert "NaN" not in text
    assert json.loads(text)[0]["statistics"]["rms"] is None


@pytest.fixture
def web_server():
    from tests.servers import RangeServer

    server = RangeServer()
    yield server
    server.close()


def test_info_of_files_on_a_web_server(tmp_path, rng, web_server, capsys):
    """Addresses are described as local files are, with no secret in the output."""
    from napari_mrcz.cli.command import main

    data = rng.integers(0, 9, (6, 32, 40)).astype(np.int16)
    napari_mrcz.writeMRC(data, tmp_path / "a.mrcz", compressor="zstd", pixelsize=2.5, meta={})
    web_server.files["/run1/a.mrcz"] = (tmp_path / "a.mrcz").read_bytes()
    url = web_server.url("/run1/a.mrcz")
    secret_url = url.replace("http://", "http://alice:hunter2@") + "?Signature=abc123"
    assert main(["info", "--json", url, secret_url, web_server.url("/run1/none.mrc")]) == 1
    out, err = capsys.readouterr()
    found, signed, missing = json.loads(out)
    assert found["shape"] == [6, 32, 40]
    assert found["pixel_size_angstrom"] == [2.5, 2.5, 2.5]
    assert found["file_bytes"] == (tmp_path / "a.mrcz").stat().st_size
    assert signed["packed_bytes"] == found["packed_bytes"]
    assert "no such file on the server (404)" in missing["error"]
    assert "hunter2" not in out + err
    assert "abc123" not in out + err
