"""From a napari layer to what an MRC header holds: pixel size, JSON meta, microscope values.

Shared by the writers, the save panel and the inspector, so that a layer is saved
and previewed the same way.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

from napari_mrcz._napari.reader import READER_METADATA_KEYS
from napari_mrcz.errors import MRCZWarning

logger = logging.getLogger(__name__)


def pixel_size_angstrom(scale: Any, units: Any) -> list[float]:
    """Layer scale (napari order) in Angstrom, using the layer's units.

    Units that are not lengths (napari's default ``pixel``) leave the scale as it
    is, read as Angstrom.
    """
    sizes = [float(value) for value in scale]
    if units is None or isinstance(units, str) or not hasattr(units, "__len__"):
        units = [units] * len(sizes)
    converted = []
    for size, unit in zip(sizes, units, strict=False):
        try:
            converted.append(float((size * unit).to("angstrom").magnitude))
        except Exception:  # pixel, None, or a unit that is not a length
            converted.append(size)
    return converted


def check_savable(data: Any, meta: dict) -> Any:
    """The array to write for a layer (level 0 of a pyramid); raise if MRC cannot hold it.

    Raises
    ------
    ValueError
        For RGB layers and for layers of other than 2 or 3 dimensions.
    """
    if meta.get("multiscale"):
        data = data[0]
    if meta.get("rgb"):
        raise ValueError("RGB layers cannot be saved as MRC: split the channels first")
    if data.ndim not in (2, 3):
        raise ValueError(
            f"MRC holds 2D images and 3D stacks; this layer has {data.ndim} dimensions"
        )
    return data


def json_meta(metadata: dict | None, warn: bool = True) -> dict:
    """The layer metadata that goes into the MRCZ JSON header.

    The JSON meta of the file the layer was read from, DM tags, and any other key a
    user or plugin added; values JSON cannot hold are skipped with a warning.
    """
    metadata = metadata or {}
    meta: dict = dict(metadata.get("json_meta") or {})
    if metadata.get("dm_tags"):
        meta["dm_tags"] = metadata["dm_tags"]
    for key, value in metadata.items():
        if key not in READER_METADATA_KEYS:
            meta[key] = value
    kept = {}
    for key, value in meta.items():
        try:
            json.dumps(value, default=lambda item: item.tolist())
        except (TypeError, ValueError, AttributeError):
            if warn:
                warnings.warn(
                    f"layer metadata {key!r} cannot be saved as JSON; skipped",
                    MRCZWarning,
                    stacklevel=3,
                )
            continue
        kept[key] = value
    return kept


def microscope_values(metadata: dict | None) -> dict[str, float]:
    """voltage, cs (C3) and gain of the file a layer was read from, for write_array."""
    header = (metadata or {}).get("header") or {}
    return {
        name: float(header[key])
        for key, name in (("voltage", "voltage"), ("C3", "cs"), ("gain", "gain"))
        if isinstance(header.get(key), (int, float))
    }


def layer_pixel_size(layer: Any) -> tuple[float, float, float]:
    """A layer's pixel size in Angstrom, (z, y, x); a 2D layer's z is its y."""
    sizes = pixel_size_angstrom(layer.scale, getattr(layer, "units", None))
    if len(sizes) == 2:
        sizes = [sizes[0], *sizes]
    return tuple(float(size) for size in sizes[-3:])
