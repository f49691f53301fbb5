"""The wheel users install: the napari manifest inside the package, as a real file."""

import subprocess
import sys
import zipfile

from tests.helpers import REPO


def test_the_wheel_holds_the_napari_manifest(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    [wheel] = tmp_path.glob("napari_mrcz-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        manifest = archive.getinfo("napari_mrcz/napari.yaml")
        assert b"name: napari-mrcz" in archive.read(manifest)
        entry_points = archive.read(
            next(name for name in archive.namelist() if name.endswith("entry_points.txt"))
        ).decode()
    assert manifest.external_attr >> 28 != 0o12  # a file, not a symbolic link
    assert "napari-mrcz = napari_mrcz:napari.yaml" in entry_points
