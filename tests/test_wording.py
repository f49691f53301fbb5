"""Sizes, speeds and counts read the same in the command line's tables and in napari.

(tests/cli/test_batch.py checks human_size at a few sizes; these check the steps
between units, negative sizes, speeds of an instant run and plurals.)
"""

from __future__ import annotations

import pytest

from napari_mrcz.wording import human_rate, human_size, plural


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (1, "1 B"),
        (1024, "1.0 KiB"),
        (10 * 1024 + 512, "10.5 KiB"),
        (2**20, "1.0 MiB"),
        (5 * 2**19, "2.5 MiB"),
        (2**30, "1.0 GiB"),
        (2**40, "1.0 TiB"),
        (3 * 2**50, "3072.0 TiB"),  # no unit beyond TiB
    ],
)
def test_each_size_is_said_in_the_largest_unit_below_it(nbytes, text):
    assert human_size(nbytes) == text


def test_whole_bytes_are_said_without_decimals():
    assert human_size(0) == "0 B"
    assert human_size(512.0) == "512 B"


def test_a_negative_size_is_said_like_a_positive_one():
    """A file that shrank: its change is said in the same unit as its growth would be."""
    assert human_size(-2048) == "-2.0 KiB"
    assert human_size(-100) == "-100 B"
    assert human_size(-(2**30)) == "-1.0 GiB"


@pytest.mark.parametrize(
    ("nbytes", "text"), [(2**20 - 1, "1.0 MiB"), (2**30 - 1, "1.0 GiB"), (1023.7, "1.0 KiB")]
)
def test_a_size_just_under_a_unit_step_is_said_in_the_next_unit(nbytes, text):
    assert human_size(nbytes) == text


@pytest.mark.parametrize(
    ("nbytes", "seconds", "text"),
    [
        (3 * 2**20, 2.0, "1.5 MiB/s"),
        (2**30, 0.5, "2.0 GiB/s"),
        (100, 4.0, "25 B/s"),
        (0, 1.0, "0 B/s"),
    ],
)
def test_a_speed_is_bytes_per_second_in_the_units_of_sizes(nbytes, seconds, text):
    assert human_rate(nbytes, seconds) == text


@pytest.mark.parametrize("seconds", [0, 0.0, -1.0])
def test_a_run_that_took_no_time_has_no_speed(seconds):
    """A run timed at 0 s (a clock's resolution) shows '-', never divides by zero."""
    assert human_rate(4 * 2**20, seconds) == "-"


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 files"), (1, "1 file"), (2, "2 files"), (1000, "1000 files")],
)
def test_a_noun_is_plural_unless_there_is_exactly_one(count, text):
    assert plural(count, "file") == text


def test_plural_keeps_the_noun_as_given():
    assert plural(1, "plain MRC output") == "1 plain MRC output"
    assert plural(3, "source file") == "3 source files"
