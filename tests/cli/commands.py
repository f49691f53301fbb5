"""Running the ``mrcz`` command as a user does, in a subprocess, for the tests."""

import hashlib
import pathlib
import subprocess
import sys

import numpy as np

import napari_mrcz

CLI = [sys.executable, "-m", "napari_mrcz.cli"]


def run(*args, check_status=None, timeout=120):
    """Run ``mrcz`` with ``args``; return the completed process."""
    result = subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    if check_status is not None:
        assert result.returncode == check_status, (result.stdout, result.stderr)
    return result


def digest(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def leftovers(folder):
    """Temporary files the writer would leave if a write were not cleaned up."""
    return [path for path in pathlib.Path(folder).rglob("*") if path.name.endswith(".partial")]


def corrupt_file(path):
    """A file named like an MRC whose header promises more data than it holds."""
    napari_mrcz.writeMRC(np.ones((4, 16, 16), np.float32), path)
    with open(path, "r+b") as handle:
        handle.truncate(1024 + 100)
