"""``mrcz validate``, driven as a user drives it: in a subprocess, on files."""

import json

import mrcfile
import numpy as np

import napari_mrcz

from tests.cli.commands import run


def test_validate_good_and_bad_files(tmp_path, rng):
    good = tmp_path / "good.mrcz"
    napari_mrcz.writeMRC(rng.random((3, 8, 8), dtype=np.float32), good, compressor="zstd")
    bad = tmp_path / "bad.mrc"
    napari_mrcz.writeMRC(rng.random((3, 8, 8), dtype=np.float32), bad)
    with mrcfile.open(bad, "r+", permissive=True) as handle:
        handle.header.dmax = 99.0
    result = run("validate", good, bad)
    assert result.returncode == 1
    assert f"OK  {good}" in result.stdout
    assert f"INVALID  {bad}" in result.stdout
    assert "maximum" in result.stdout
    assert run("validate", good, check_status=0).stdout.startswith("OK")
    # Without --stats the data are not read: the wrong DMAX goes unseen.
    run("validate", "--no-stats", bad, check_status=0)
    [report] = json.loads(run("validate", "--json", bad).stdout)
    assert report["valid"] is False
    assert any(finding["check"] == "stats-max" for finding in report["findings"])


def test_validate_json_meta_is_a_warning_unless_strict(tmp_path, rng):
    path = tmp_path / "with_meta.mrc"
    napari_mrcz.writeMRC(rng.random((2, 8, 8), dtype=np.float32), path, meta={"a": 1})
    result = run("validate", path, check_status=0)
    assert "warning: [exttyp]" in result.stdout
    run("validate", "--strict", path, check_status=1)


def test_validate_files_on_a_web_server(tmp_path, rng, capsys):
    """An intact file on a server is valid; one damaged there is told slice by slice."""
    from napari_mrcz.cli.command import main

    from tests.servers import RangeServer

    data = rng.integers(0, 9, (6, 64, 64)).astype(np.int16)
    path = tmp_path / "movie.mrcz"
    napari_mrcz.writeMRC(data, path, compressor="zstd", meta={})
    intact = path.read_bytes()
    with napari_mrcz.open_lazy(path) as local:
        fourth_chunk = int(local._reader.chunk_offsets[4])
    damaged = bytearray(intact)
    damaged[fourth_chunk + 40] ^= 0xFF  # inside the compressed bytes of z-slice 4
    server = RangeServer()
    try:
        server.files["/intact.mrcz"] = intact
        server.files["/damaged.mrcz"] = bytes(damaged)
        signed = server.url("/intact.mrcz") + "?X-Amz-Signature=abc123"
        status = main(["validate", "--json", signed, server.url("/damaged.mrcz")])
    finally:
        server.close()
    out, err = capsys.readouterr()
    good, bad = json.loads(out)
    assert status == 1
    assert good["valid"], good
    assert good["path"].endswith("/intact.mrcz?***")
    assert not bad["valid"]
    assert any("z-slice 4" in finding["message"] for finding in bad["findings"]), bad
    assert "abc123" not in out + err
