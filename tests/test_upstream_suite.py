"""python-mrcz 0.6.0's own test suite, pointed at our API.

The suite ships inside the installed ``mrcz`` package. We copy it, swap its
``import mrcz`` for ``import napari_mrcz as mrcz`` and run it. Left out: the tests of
python-mrcz's private blosc1/blosc2 backend switch (``TestBloscBackendCompat``).
"""

import pathlib
import subprocess
import sys

import mrcz

DESELECTED = "not TestBloscBackendCompat"


def test_python_mrcz_suite_passes_against_our_api(tmp_path):
    source = pathlib.Path(mrcz.__file__).with_name("test_mrcz.py").read_text()
    assert "\nimport mrcz\n" in source
    (tmp_path / "test_upstream.py").write_text(
        source.replace("\nimport mrcz\n", "\nimport napari_mrcz as mrcz\n")
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            DESELECTED,
            str(tmp_path / "test_upstream.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    assert "failed" not in result.stdout
