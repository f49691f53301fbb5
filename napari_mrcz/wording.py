"""How numbers are said to people: sizes in KiB, MiB and GiB, speeds, plurals.

Shared by the command line's tables and napari's notifications, so both count alike.
"""

from __future__ import annotations


def human_size(nbytes: float) -> str:
    """``nbytes`` in B, KiB, MiB, GiB or TiB (the unit chosen after rounding)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        shown = f"{nbytes:.0f}" if unit == "B" else f"{nbytes:.1f}"
        if abs(float(shown)) < 1024:
            return f"{shown} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def human_rate(nbytes: float, seconds: float) -> str:
    """A speed in the units of :func:`human_size` (``'1.5 MiB/s'``), or ``'-'``."""
    return f"{human_size(nbytes / seconds)}/s" if seconds > 0 else "-"


def plural(count: int, noun: str) -> str:
    """``'1 file'``, ``'2 files'``: ``count`` and ``noun``, plural when it is not 1."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
