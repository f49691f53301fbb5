"""The ``mrcz`` command's arguments and help, as a user types them."""

import pathlib
import signal
import subprocess
import sys
import time

import pytest

import napari_mrcz

from tests.cli.commands import CLI, run


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


@pytest.mark.parametrize("delay", [0.2, 0.3])
def test_ctrl_c_while_the_command_starts_prints_no_traceback(tmp_path, delay):
    """Ctrl-C while the command's modules (numpy, numba) load ends it quietly (130).

    Not earlier: in the first tens of milliseconds Python itself is starting, and
    its own traceback is no code of ours (on a cold cache that took up to 0.05 s).
    """
    process = subprocess.Popen(
        [*CLI, "info", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a suite run in the background of a shell inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr
    assert process.returncode in (130, -signal.SIGINT, 2), (process.returncode, stderr)


CTRL_C_INSIDE_A_WEAKREF_CALLBACK = """
import os, signal, sys, weakref

from napari_mrcz.cli import console_main


class Interrupter:
    '''Sends Ctrl-C from a weak-reference callback, where Python drops the exception.'''

    def find_spec(self, name, path=None, target=None):
        if name == "napari_mrcz.cli.command":
            target = type("Target", (), {})()
            reference = weakref.ref(target, self.interrupt)
            del target
        return None

    @staticmethod
    def interrupt(reference):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(100))  # the handler runs here, inside the callback


sys.meta_path.insert(0, Interrupter())
sys.argv = ["mrcz", "info", sys.argv[1]]
console_main()
"""


def test_ctrl_c_that_python_drops_during_the_imports_still_stops_the_command(tmp_path):
    """An interrupt raised where Python only prints "Exception ignored" still ends the run."""
    process = subprocess.run(
        [sys.executable, "-c", CTRL_C_INSIDE_A_WEAKREF_CALLBACK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert "Exception ignored" in process.stderr  # the interrupt did land in the callback
    assert process.returncode == 128 + signal.SIGINT, (process.returncode, process.stderr)
    assert process.stderr.rstrip().endswith("interrupted")
