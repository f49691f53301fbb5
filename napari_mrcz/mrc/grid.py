"""The grid of a map as its source file had it, kept in the JSON meta of an MRCZ copy.

An MRCZ file is written with M = N and in (z, y, x) order, since its other reader
(python-mrcz) takes MZ as slices per frame and ignores the axis order. What that
changes of a source's header (the sampling MX, MY, MZ, the cell CELLA, the axis
order MAPC, MAPR, MAPS, and the counts N and start indices NSTART of the stored
axes) is recorded under :data:`GRID_KEY`, so that a plain MRC copy of the MRCZ file
gets the source's header back (``mrcz decompress``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from napari_mrcz.mrc.jsonmeta import GRID_KEY

logger = logging.getLogger(__name__)

#: The header fields the record holds, each an int but CELLA (three floats).
GRID_FIELDS = (
    "nx",
    "ny",
    "nz",
    "nxstart",
    "nystart",
    "nzstart",
    "mx",
    "my",
    "mz",
    "cella",
    "mapc",
    "mapr",
    "maps",
)


def grid_of(header: np.ndarray) -> dict[str, Any]:
    """The grid fields of ``header`` as plain JSON values."""
    return {
        name: [float(value) for value in header[name]] if name == "cella" else int(header[name])
        for name in GRID_FIELDS
    }


def recorded_grid(json_meta: dict | None, path: str) -> dict[str, Any] | None:
    """Take the grid record out of ``json_meta`` (it is the format's, not the user's).

    A record that is not well formed is dropped and logged; the file reads as it is.
    """
    if json_meta is None or GRID_KEY not in json_meta:
        return None
    grid = json_meta.pop(GRID_KEY)
    if (
        isinstance(grid, dict)
        and set(grid) == set(GRID_FIELDS)
        and all(isinstance(grid[name], int) for name in GRID_FIELDS if name != "cella")
        and isinstance(grid["cella"], list)
        and len(grid["cella"]) == 3
        and all(isinstance(value, (int, float)) for value in grid["cella"])
        and sorted((grid["mapc"], grid["mapr"], grid["maps"])) == [1, 2, 3]
    ):
        return grid
    logger.debug("%s: ignoring a malformed %s record: %r", path, GRID_KEY, grid)
    return None


def apply_grid(header: np.ndarray, grid: dict[str, Any]) -> None:
    """Set the grid fields of ``header`` (in place) to those of ``grid``."""
    for name in GRID_FIELDS:
        header[name] = grid[name]


def stored_shape(grid: dict[str, Any]) -> tuple[int, int, int]:
    """(sections, rows, columns) of the data as the source stored it."""
    return grid["nz"], grid["ny"], grid["nx"]


def needs_record(grid: dict[str, Any], frames: int) -> bool:
    """True if an MRCZ copy of a map with ``grid`` loses some of it without a record.

    A copy's plain copy has M = N on every axis and the standard axis order: a map
    in another order, or sampled otherwise (M > 0 and not N), needs its record. M = 0
    (unset, as python-mrcz writes) comes back as N, and MZ of a file of ``frames``
    means slices per frame: neither is a sampling to keep.
    """
    if (grid["mapc"], grid["mapr"], grid["maps"]) != (1, 2, 3):
        return True
    return any(
        sampling > 0 and sampling != count
        for name, count in (("mx", grid["nx"]), ("my", grid["ny"]), ("mz", grid["nz"]))
        if not (name == "mz" and frames)
        for sampling in (grid[name],)
    )
