"""The batch planner and the summary of napari_mrcz.cli.batch, without a subprocess."""

import io
import re
import sys
import threading
import time

import pytest

from napari_mrcz.cli.batch import Runner, Settings, Task, plan
from napari_mrcz.cli.command import _show_warning
from napari_mrcz.cli.info import statistics_text
from napari_mrcz.cli.report import summary_table
from napari_mrcz.errors import MRCZWarning
from napari_mrcz.suffixes import is_readable
from napari_mrcz.wording import human_size

from tests.helpers import SHARED_DATA


def test_plan_mirrors_folders_and_skips_hidden_and_foreign_files(tmp_path):
    source = tmp_path / "raw"
    (source / "sub").mkdir(parents=True)
    for name in ("a.mrc", "sub/b.map.gz"):
        (source / name).write_bytes(b"")
    (source / ".hidden.mrc").write_bytes(b"")
    (source / "notes.txt").write_bytes(b"")
    tasks = plan([str(source)], str(tmp_path / "out"), ".mrcz", is_readable)
    assert [(task.source, task.targets) for task in tasks] == [
        (str(source / "a.mrc"), [str(tmp_path / "out" / "a.mrcz")]),
        (str(source / "sub" / "b.map.gz"), [str(tmp_path / "out" / "sub" / "b.mrcz")]),
    ]


def test_plan_refuses_an_empty_input(tmp_path):
    with pytest.raises(ValueError, match="no input files"):
        plan([str(tmp_path)], str(tmp_path / "out"), ".mrcz", is_readable)


def test_summary_table_rows_totals_and_failures():
    done = Task(
        "in/a.mrc",
        ["out/a.mrcz"],
        status="done",
        data_bytes=4 * 2**20,
        source_bytes=4 * 2**20,
        output_bytes=2**20,
        seconds=2.0,
    )
    failed = Task("in/b.mrc", ["out/b.mrcz"], status="failed", message="truncated: ...")
    table = summary_table([done, failed], seconds=2.0).splitlines()
    assert table[0].split() == ["status", "file", "output", "in", "out", "ratio", "speed"]
    assert table[1].split() == [
        "done",
        "in/a.mrc",
        "out/a.mrcz",
        "4.0",
        "MiB",
        "1.0",
        "MiB",
        "4.00",
        "2.0",
        "MiB/s",
    ]
    assert table[2].split()[:3] == ["FAILED", "in/b.mrc", "-"]  # no output to show
    assert (
        table[3] == "1 done, 1 failed; 4.0 MiB in, 1.0 MiB out (4.00x) in 2.0 s, 2.0 MiB/s of data"
    )
    assert table[4] == "FAILED in/b.mrc: truncated: ..."


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (3 * 2**30, "3.0 GiB"),
        (5 * 2**40, "5.0 TiB"),
    ],
)
def test_human_size(nbytes, text):
    assert human_size(nbytes) == text


def test_statistics_text_says_what_mrc2014_leaves_undetermined():
    known = {"min": 0.0, "max": 0.0, "mean": 0.0, "rms": 0.0}  # a constant image
    assert statistics_text(known) == "min 0, max 0, mean 0, rms 0"
    assert statistics_text({"min": 3.0, "max": 2.0, "mean": 1.0, "rms": -1.0}) == "not determined"
    assert (
        statistics_text({"min": 1.0, "max": 5.0, "mean": 0.0, "rms": 2.0})
        == "min 1, max 5, mean not determined, rms 2"
    )


@pytest.mark.skipif(SHARED_DATA is None, reason="shared real files not available")
def test_plan_gives_several_dm_images_numbered_outputs(tmp_path):
    source = SHARED_DATA / "dm3" / "rsciio_2D_multi_signal.dm3"
    [task] = plan([str(source)], str(tmp_path), ".mrcz", is_readable)
    assert task.targets == [
        str(tmp_path / "rsciio_2D_multi_signal_0.mrcz"),
        str(tmp_path / "rsciio_2D_multi_signal_1.mrcz"),
    ]


class SlowStream(io.StringIO):
    """A terminal that takes its time: another thread gets to write meanwhile."""

    def write(self, text: str) -> int:
        time.sleep(0.0002)
        return super().write(text)


def test_warnings_and_progress_lines_from_parallel_files_never_mix(monkeypatch):
    # `mrcz compress --jobs 2`: one file's warning and another's "done" line are
    # written at the same moment; each must stay a line of its own.
    stderr = SlowStream()
    monkeypatch.setattr(sys, "stderr", stderr)
    runner = Runner(Settings("zstd"), jobs=2, show_progress=False, quiet=False, err=stderr)

    def warn_many() -> None:
        for number in range(300):
            _show_warning(f"odd_{number}.mrc: the axis order is invalid", MRCZWarning, "", 0)

    def say_many() -> None:
        for number in range(300):
            runner._say(f"done movie_{number}.mrc -> movie_{number}.mrcz")

    threads = [threading.Thread(target=warn_many), threading.Thread(target=say_many)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 600
    assert all(
        re.fullmatch(r"warning: odd_\d+\.mrc: the axis order is invalid", line)
        or re.fullmatch(r"done movie_\d+\.mrc -> movie_\d+\.mrcz", line)
        for line in lines
    )
