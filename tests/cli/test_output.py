"""The JSON that ``mrcz info --json`` and ``mrcz validate --json`` print for scripts.

Whatever the results hold (NaN statistics, infinities, file names that are not UTF-8,
non-ASCII units, tuples, values JSON has no type for), the output must be one
document that Python's strict JSON reader accepts, with UTF-8 text.
"""

from __future__ import annotations

import io
import json
import math
import os
import pathlib

import pytest

from napari_mrcz.cli.output import json_safe, print_json


def printed(results) -> str:
    out = io.StringIO()
    print_json(results, out)
    return out.getvalue()


def strict_load(text: str):
    """Parse as a strict reader does: UTF-8 bytes, and no NaN or Infinity literals."""

    def refuse(literal):
        raise ValueError(f"JSON has no {literal}")

    return json.loads(text.encode("utf-8"), parse_constant=refuse)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_values_json_lacks_become_null_at_any_depth(value):
    results = [{"statistics": {"mean": value, "rms": 1.5}, "shape": (4, value), "min": value}]
    assert strict_load(printed(results)) == [
        {"statistics": {"mean": None, "rms": 1.5}, "shape": [4, None], "min": None}
    ]


def test_numbers_text_and_constants_are_kept_as_they_are():
    results = [{"nz": 7, "ratio": 2.5, "ok": True, "codec": None, "units": "Å", "tiny": 5e-324}]
    assert json_safe(results) == results
    assert strict_load(printed(results)) == results


def test_a_file_name_that_is_not_utf8_is_printed_with_its_byte_escaped():
    """``lat\\xe9.mrc`` on a Latin-1 file system reaches Python as a lone surrogate."""
    name = os.fsdecode(b"/data/lat\xe9.mrc")
    assert name != "/data/laté.mrc"
    text = printed([{"path": name, "problems": {name: "truncated"}}])
    assert strict_load(text) == [
        {"path": "/data/lat\\xe9.mrc", "problems": {"/data/lat\\xe9.mrc": "truncated"}}
    ]


def test_non_ascii_text_is_written_as_utf8_not_escaped():
    text = printed([{"pixel size": "1.06 Å", "label": "µm ✓"}])
    assert '"1.06 Å"' in text
    assert "\\u" not in text
    assert strict_load(text) == [{"pixel size": "1.06 Å", "label": "µm ✓"}]


def test_values_json_has_no_type_for_are_written_as_their_text():
    path = pathlib.PurePosixPath("/data/movie.mrcz")
    assert strict_load(printed([{"path": path}])) == [{"path": "/data/movie.mrcz"}]


def test_the_output_is_one_indented_document_and_a_newline():
    text = printed([{"path": "a.mrc"}, {"path": "b.mrc"}])
    assert text.endswith("}\n]\n")
    assert text.splitlines()[:3] == ["[", "  {", '    "path": "a.mrc"']
    assert strict_load(text) == [{"path": "a.mrc"}, {"path": "b.mrc"}]


def test_the_input_is_left_as_it_was():
    results = [{"statistics": {"mean": math.nan}, "shape": (1, 2)}]
    printed(results)
    assert math.isnan(results[0]["statistics"]["mean"])
    assert results[0]["shape"] == (1, 2)


def test_a_lone_surrogate_from_a_files_json_meta_still_prints_valid_json():
    key = json.loads('"\\ud83d key"')  # what json.loads gives for python-mrcz's meta
    text = printed([{"json_meta_keys": [key]}])
    assert len(strict_load(text)[0]["json_meta_keys"]) == 1
