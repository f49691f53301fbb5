"""Slices are encoded and decoded in parallel in any process, python-mrcz or not.

python-blosc holds the GIL during a compression unless told otherwise, and
python-mrcz tells it otherwise when imported: these tests run in a fresh process
that never imports python-mrcz, as napari and the mrcz command do.
"""

import subprocess
import sys


def run_python(code: str, *args: str, timeout: float = 60) -> str:
    """What ``code`` prints in a fresh interpreter (no python-mrcz imported there)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    ).stdout


def test_our_chunk_calls_turn_on_blosc_s_gil_release(tmp_path):
    """What parallel slices depend on: blosc releases the GIL inside our calls."""
    code = (
        "import sys, blosc, numpy as np, napari_mrcz\n"
        "napari_mrcz.writeMRC(np.zeros((2, 64, 64), np.int8), sys.argv[1], compressor='zstd')\n"
        "print(blosc.set_releasegil(False))\n"
    )
    assert run_python(code, str(tmp_path / "zeros.mrcz")).strip() in ("1", "True")


def test_importing_the_engine_leaves_blosc_settings_alone():
    """Only our own compress/decompress calls set blosc's GIL release, not the import."""
    code = (
        "import blosc, napari_mrcz.api, napari_mrcz.cli.command\n"
        "print(blosc.set_releasegil(False))\n"
    )
    assert run_python(code).strip() in ("0", "False")
