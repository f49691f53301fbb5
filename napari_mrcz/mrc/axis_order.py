"""A map's axis order: its data and header in (z, y, x) order, and back to its source's.

MRC2014 lets a map store its axes in any order (MAPC, MAPR, MAPS); MRCZ files are
written in (z, y, x) order with the source's grid recorded beside (see
:mod:`napari_mrcz.mrc.grid`). These give the layout a map has once transposed either
way; the data follow through :class:`napari_mrcz.arraylike.LazyView` with ``order``.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from napari_mrcz.mrc.grid import apply_grid, grid_of, stored_shape
from napari_mrcz.mrc.layout import MRCLayout, pixel_size

logger = logging.getLogger(__name__)


def standard_order_layout(layout: MRCLayout) -> MRCLayout:
    """The layout of ``layout``'s data transposed by its display order into (z, y, x).

    The crystal axes keep their cell, sampling and origin (those are stored per
    crystal axis); the counts and the start indices (stored per data axis) follow the
    data; MAPC, MAPR, MAPS become 1, 2, 3.
    """
    order = layout.display_order
    header = layout.header.copy()
    shape = tuple(layout.shape[axis] for axis in order)
    starts = [int(layout.header[name]) for name in ("nzstart", "nystart", "nxstart")]
    for name, count in zip(("nz", "ny", "nx"), shape, strict=True):
        header[name] = count
    for name, axis in zip(("nzstart", "nystart", "nxstart"), order, strict=True):
        header[name] = starts[axis]
    header["mapc"], header["mapr"], header["maps"] = 1, 2, 3
    return dataclasses.replace(
        layout,
        header=header,
        shape=shape,
        slice_nbytes=shape[1] * shape[2] * layout.dtype.itemsize,
        pixelsize=layout.pixelsize[list(order)],
        mapcrs=(1, 2, 3),
        source_grid=layout.source_grid or grid_of(layout.header),
    )


def source_layout(layout: MRCLayout) -> MRCLayout:
    """The layout of the map an MRCZ copy was made from, by the copy's grid record.

    The header gets the source's sampling, cell, axis order, counts and start
    indices back (see :mod:`napari_mrcz.mrc.grid`); ``layout`` itself is returned
    when it has no record, or one that does not describe its data (the data were
    edited since: a record of another shape, or a copy not in (z, y, x) order).
    """
    grid = layout.source_grid
    if grid is None:
        return layout
    header = layout.header.copy()
    apply_grid(header, grid)
    mapcrs = (grid["mapc"], grid["mapr"], grid["maps"])
    shape = stored_shape(grid)
    restored = dataclasses.replace(
        layout,
        header=header,
        shape=shape,
        slice_nbytes=shape[1] * shape[2] * layout.dtype.itemsize,
        mapcrs=mapcrs,
        pixelsize=pixel_size(header, shape, mapcrs, layout.slices),
        source_grid=None,
    )
    order = restored.display_order
    if layout.mapcrs != (1, 2, 3) or tuple(shape[axis] for axis in order) != layout.shape:
        logger.debug("%s: its grid record does not fit its data; not used", layout.path)
        return layout
    return restored


def inverse_order(order: tuple[int, int, int]) -> tuple[int, int, int]:
    """The transpose that undoes ``order``."""
    return tuple(int(axis) for axis in np.argsort(order))
