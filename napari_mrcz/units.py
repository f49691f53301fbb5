"""Pixel-size units: python-mrcz's spellings and their size in Angstrom."""

from __future__ import annotations

#: Unit name -> how many of that unit make one Angstrom. The first spelling of each
#: unit is python-mrcz's.
UNITS_PER_ANGSTROM: dict[str, float] = {
    "\\AA": 1.0,
    "AA": 1.0,
    "A": 1.0,
    "Å": 1.0,
    "angstrom": 1.0,
    "nm": 0.1,
    "nanometer": 0.1,
    "\\mum": 1e-4,
    "um": 1e-4,
    "µm": 1e-4,
    "micrometer": 1e-4,
    "pm": 100.0,
    "picometer": 100.0,
}


def units_per_angstrom(unit: str) -> float:
    """Return how many ``unit`` make one Angstrom.

    Raises
    ------
    ValueError
        For a unit that is not a length python-mrcz or napari uses.
    """
    try:
        return UNITS_PER_ANGSTROM[unit]
    except KeyError:
        raise ValueError(
            f"Unknown pixel unit {unit!r}; use one of {sorted(UNITS_PER_ANGSTROM)}"
        ) from None
