"""Pixel sizes given in any unit a user writes come out as the same length in Angstrom.

``pixelunits`` of readMRC/writeMRC and napari's unit choice go through
units_per_angstrom: each spelling of a unit (python-mrcz's LaTeX-ish ``\\AA`` and
``\\mum`` among them) must give the same factor, the factors must agree with one
another, and an unknown unit must be refused, saying what is accepted.
"""

from __future__ import annotations

import math

import pytest

from napari_mrcz.units import units_per_angstrom

#: Every spelling of each length, and how many Angstrom one of it is.
SPELLINGS = {
    1.0: ["\\AA", "AA", "A", "Å", "angstrom"],
    10.0: ["nm", "nanometer"],
    1e4: ["\\mum", "um", "µm", "micrometer"],
    0.01: ["pm", "picometer"],
}


@pytest.mark.parametrize(
    ("unit", "angstrom"),
    [(unit, angstrom) for angstrom, units in SPELLINGS.items() for unit in units],
)
def test_one_unit_is_its_length_in_angstrom(unit, angstrom):
    assert math.isclose(angstrom * units_per_angstrom(unit), 1.0, rel_tol=1e-12)


def test_python_mrcz_spellings_are_understood():
    """python-mrcz writes its pixel units as ``\\AA`` and ``\\mum`` in the metadata."""
    assert units_per_angstrom("\\AA") == units_per_angstrom("angstrom")
    assert units_per_angstrom("\\mum") == units_per_angstrom("micrometer")


def test_the_units_agree_with_one_another():
    nm, um, pm = (units_per_angstrom(u) for u in ("nm", "um", "pm"))
    assert math.isclose(um / nm, 1e-3)  # 1 nm is 1e-3 um
    assert math.isclose(pm / nm, 1e3)  # 1 nm is 1000 pm
    assert math.isclose(pm / um, 1e6)


def test_a_pixel_size_converts_there_and_back():
    pixel_angstrom = 0.83
    for unit in ("nm", "um", "pm", "A"):
        in_unit = pixel_angstrom * units_per_angstrom(unit)
        assert math.isclose(in_unit / units_per_angstrom(unit), pixel_angstrom)


@pytest.mark.parametrize("unit", ["mm", "m", "inch", "NM", "Angstrom", "", " nm", "px"])
def test_an_unknown_unit_is_refused_naming_it_and_the_accepted_ones(unit):
    with pytest.raises(ValueError, match="Unknown pixel unit") as caught:
        units_per_angstrom(unit)
    message = str(caught.value)
    assert repr(unit) in message
    for accepted in ("nm", "um", "pm", "angstrom"):
        assert repr(accepted) in message


def test_the_refusal_does_not_chain_a_lookup_error():
    """The user sees one ValueError, not a KeyError 'during handling of' it."""
    with pytest.raises(ValueError, match="Unknown pixel unit") as caught:
        units_per_angstrom("furlong")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
