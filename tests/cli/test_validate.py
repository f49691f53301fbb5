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
