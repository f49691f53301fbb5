"""The ``mrcz`` command's arguments and help, as a user types them."""

import pathlib
import subprocess
import sys

import pytest

import napari_mrcz

from tests.cli.commands import run


@pytest.mark.parametrize("command", ["info", "validate", "compress", "decompress", "convert"])
def test_every_subcommand_has_help(command):
    result = run(command, "--help", check_status=0)
    assert f"usage: mrcz {command}" in result.stdout
    assert "-h, --help" in result.stdout


def test_top_level_help_lists_subcommands_and_version():
    result = run("--help", check_status=0)
    for command in ("info", "validate", "compress", "decompress", "convert"):
        assert command in result.stdout
    assert napari_mrcz.__version__ in run("--version", check_status=0).stdout


def test_console_script_is_installed():
    script = pathlib.Path(sys.executable).parent / "mrcz"
    assert script.exists(), "pip install should create the mrcz console script"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "compress" in result.stdout


def test_wrong_arguments_exit_2(tmp_path):
    assert run("compress", tmp_path).returncode == 2  # -o is required
    assert run("compress", tmp_path, "-o", tmp_path / "out", "--level", "12").returncode == 2
    result = run("convert", tmp_path / "x.mrc", tmp_path / "x.tif")
    assert result.returncode == 2
    assert "must end in .mrcz" in result.stderr
