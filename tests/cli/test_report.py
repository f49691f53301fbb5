"""The end-of-run table of ``mrcz compress/decompress`` and its byte progress bar.

Protected: what each kind of row shows (several outputs, skipped, cancelled, a plain
output with no ratio), columns that line up, totals without a ratio or speed that
cannot be known, the lines about JSON left out, deleted sources, notes and failures,
and a progress bar that counts in the table's binary units (KiB, MiB: powers of 2).
"""

from __future__ import annotations

import io
import re

from napari_mrcz.cli.batch import Task
from napari_mrcz.cli.report import ByteProgress, summary_table

MIB = 2**20


def a_run() -> list[Task]:
    """One task of each status, as a decompression (plain outputs) leaves them."""
    return [
        Task(
            "in/a.mrcz",
            ["out/a.mrc"],
            status="done",
            data_bytes=3 * MIB,
            source_bytes=MIB,
            output_bytes=3 * MIB,
            seconds=1.5,
            json_left_out=True,
            message="kept the old labels",
        ),
        Task(
            "in/sub/b.dm4",
            ["out/sub/b_0.mrc", "out/sub/b_1.mrc"],
            status="skipped",
            source_bytes=MIB,
            message="outputs exist",
        ),
        Task("in/c.mrcz", ["out/c.mrc"], status="cancelled"),
        Task(
            "in/d.mrcz",
            ["out/d.mrc"],
            status="done",
            data_bytes=2**30,
            source_bytes=2**29,
            output_bytes=2**30,
            seconds=2.0,
            source_deleted=True,
            json_left_out=True,
        ),
        Task("in/e.mrcz", ["out/e.mrc"], status="failed", message="blosc chunk 3 is damaged"),
    ]


def test_each_kind_of_row_shows_what_is_known_of_it():
    table = summary_table(a_run(), seconds=4.0, compressed=False).splitlines()
    assert table[0].split() == ["status", "file", "output", "in", "out", "ratio", "speed"]
    rows = [line.split() for line in table[1:6]]
    assert rows[0] == [
        *("done", "in/a.mrcz", "out/a.mrc"),
        *("1.0", "MiB", "3.0", "MiB", "-", "2.0", "MiB/s"),
    ]
    # A skipped file still names its outputs (here the two images of one DM file).
    assert rows[1] == [
        *("skipped", "in/sub/b.dm4", "out/sub/b_0.mrc,", "out/sub/b_1.mrc"),
        *("1.0", "MiB", "-", "-", "-"),
    ]
    assert rows[2] == ["cancelled", "in/c.mrcz", "-", "-", "-", "-", "-"]
    assert rows[3][3:] == ["512.0", "MiB", "1.0", "GiB", "-", "512.0", "MiB/s"]
    assert rows[4] == ["FAILED", "in/e.mrcz", "-", "-", "-", "-", "-"]


def test_plain_outputs_have_no_compression_ratio():
    table = summary_table(a_run(), seconds=4.0, compressed=False).splitlines()
    ratio_column = table[0].index("ratio") + len("ratio")
    assert {line[ratio_column - 1] for line in table[1:6]} == {"-"}
    assert "x)" not in table[6]
    compressed = summary_table(a_run(), seconds=4.0, compressed=True).splitlines()
    assert compressed[1].split()[7] == "0.33"  # 1 MiB in, 3 MiB out
    assert "out (0.50x) in 4.0 s" in compressed[6]


def test_columns_line_up_left_for_names_and_right_for_numbers():
    table = summary_table(a_run(), seconds=4.0, compressed=True).splitlines()[:6]
    header, rows = table[0], table[1:]
    file_column = header.index("file")
    assert [row[file_column:].split()[0] for row in rows] == [
        "in/a.mrcz",
        "in/sub/b.dm4",
        "in/c.mrcz",
        "in/d.mrcz",
        "in/e.mrcz",
    ]
    for name in ("in", "out", "ratio", "speed"):
        end = re.search(rf"\b{name}\b", header).end()
        for row in rows:
            assert row[end - 1] != " ", (name, row)
            assert row[end : end + 1] in ("", " "), (name, row)


def test_the_last_lines_count_statuses_totals_left_out_json_deletions_and_notes():
    lines = summary_table(a_run(), seconds=4.0, compressed=False).splitlines()[6:]
    assert lines == [
        "2 done, 1 skipped, 1 cancelled, 1 failed; 513.0 MiB in, 1.0 GiB out in 4.0 s, "
        "256.8 MiB/s of data",
        "2 plain MRC outputs without the JSON metadata of the input (MRC2014 readers "
        "reject it there; --keep-json writes it)",
        "1 source file deleted after verification",
        "note: in/a.mrcz: kept the old labels",
        "note: in/sub/b.dm4: outputs exist",
        "FAILED in/e.mrcz: blosc chunk 3 is damaged",
    ]


def test_totals_leave_out_a_ratio_or_speed_that_cannot_be_known():
    empty_output = Task("in/a.mrc", ["out/a.mrcz"], status="done", source_bytes=MIB)
    table = summary_table([empty_output], seconds=0.0).splitlines()
    assert table[1].split()[-4:] == ["0", "B", "-", "-"]  # of 0 bytes: no ratio, no speed
    assert table[2] == "1 done; 1.0 MiB in, 0 B out in 0.0 s"


def test_one_of_each_is_said_in_the_singular():
    task = Task("in/a.mrcz", ["out/a.mrc"], status="done", json_left_out=True)
    lines = summary_table([task], seconds=1.0, compressed=False).splitlines()
    assert lines[3].startswith("1 plain MRC output without the JSON metadata")


def progress_bar() -> ByteProgress:
    bar = ByteProgress(file=io.StringIO(), leave=False)
    bar.total = 4 * MIB
    return bar


def test_the_progress_bar_counts_in_binary_units():
    bar = progress_bar()
    try:
        bar.n = 3 * MIB
        bar._time = lambda: bar.start_t + 2.0  # two seconds in
        values = bar.format_dict
        assert (values["done_size"], values["total_size"]) == ("3.0 MiB", "4.0 MiB")
        assert values["speed"] == "1.5 MiB/s"
        assert "3.0 MiB/4.0 MiB" in str(bar)
        assert "1.5 MiB/s" in str(bar)
    finally:
        bar.close()


def test_the_progress_bar_has_no_speed_before_anything_is_done():
    bar = progress_bar()
    try:
        bar._time = lambda: bar.start_t
        values = bar.format_dict
        assert (values["done_size"], values["speed"]) == ("0 B", "? B/s")
    finally:
        bar.close()
