"""napari writers: Image and Labels layers to MRCZ (compressed) or plain MRC.

Thin glue over the engine. The format follows the file's extension: ``.mrcz`` is
compressed with the codec, level and threads of the plugin settings (zstd, 1, all
cores by default); ``.mrc``, ``.mrcs``, ``.map``, ``.st``, ``.ali`` and ``.rec`` are
plain MRC2014 files that mrcfile validates. A path without one of these gets the
writer's own extension (napari does not add the one picked in the Save dialog).
Several layers saved at once go to a folder, one file per layer, as napari's own
writers do.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from typing import Any

import numpy as np

from ._reader import READER_METADATA_KEYS
from .threads import default_threads
from .writer import writeMRC

logger = logging.getLogger(__name__)

PLAIN_SUFFIXES = (".mrc", ".mrcs", ".map", ".st", ".ali", ".rec")
COMPRESSED_SUFFIX = ".mrcz"

#: Plugin settings (napari Preferences > napari-mrcz) and their defaults.
DEFAULT_SETTINGS = {"codec": "zstd", "level": 1, "threads": 0}


def writer_settings() -> dict[str, Any]:
    """The writer defaults from napari's plugin settings, or the built-in ones.

    ``threads`` 0 means all cores.
    """
    settings = dict(DEFAULT_SETTINGS)
    try:
        from napari.settings import get_plugin_settings

        plugin = get_plugin_settings("napari-mrcz")
        section = plugin.writer
        settings.update(codec=section.codec, level=section.level, threads=section.threads)
    except Exception as error:  # older napari, or no settings registered (plain scripts)
        logger.debug("napari-mrcz plugin settings unavailable: %s", error)
    return settings


def output_path(path: str, default_suffix: str) -> str:
    """``path`` with ``default_suffix`` added unless it already ends in one of ours."""
    if path.lower().endswith((*PLAIN_SUFFIXES, COMPRESSED_SUFFIX)):
        return path
    return path + default_suffix


def pixel_size_angstrom(scale: Any, units: Any) -> list[float]:
    """Layer scale (napari order) in Angstrom, using the layer's units.

    Units that are not lengths (napari's default ``pixel``) leave the scale as it
    is, read as Angstrom.
    """
    sizes = [float(value) for value in scale]
    unit_list = list(units) if units is not None and not isinstance(units, str) else [units]
    unit_list = (unit_list * len(sizes))[: len(sizes)] if len(unit_list) == 1 else unit_list
    converted = []
    for size, unit in zip(sizes, unit_list + [None] * (len(sizes) - len(unit_list)),
                          strict=False):
        try:
            converted.append(float((size * unit).to("angstrom").magnitude))
        except Exception:  # pixel, None, or a unit that is not a length
            converted.append(size)
    return converted


def mrc_dtype(data: Any, warn: bool = True) -> np.dtype | None:
    """The dtype to cast to for MRC, or None to keep the data's own; warns on a cast."""
    dtype = np.dtype(data.dtype)
    if dtype == np.float64:
        target = np.dtype(np.float32)
    elif dtype.kind in "iu" and dtype.itemsize >= 4:
        low, high = _value_range(data)
        target = next((np.dtype(candidate) for candidate in (np.int16, np.uint16, np.int32)
                       if np.iinfo(candidate).min <= low and high <= np.iinfo(candidate).max),
                      np.dtype(np.float32))
        if dtype == np.int32 and target == np.int32:
            return None
    else:
        return None
    if warn:
        warnings.warn(f"MRC cannot store {dtype}: writing {target}", stacklevel=3)
    return target


def _value_range(data: Any) -> tuple[int, int]:
    """Min and max of a layer's data, slice by slice for lazy arrays."""
    if isinstance(data, np.ndarray) or data.ndim < 3:
        array = np.asarray(data)
        return (int(array.min()), int(array.max())) if array.size else (0, 0)
    lows, highs = zip(*(_value_range(data[index]) for index in range(data.shape[0])),
                      strict=True)
    return min(lows), max(highs)


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
                warnings.warn(f"layer metadata {key!r} cannot be saved as JSON; skipped",
                              stacklevel=3)
            continue
        kept[key] = value
    return kept


def write_layer(path: str, data: Any, meta: dict, default_suffix: str) -> str:
    """Write one layer's data and napari meta; return the path written."""
    if meta.get("multiscale"):
        data = data[0]
    if meta.get("rgb"):
        raise ValueError("RGB layers cannot be saved as MRC: split the channels first")
    path = output_path(os.fspath(path), default_suffix)
    compressed = path.lower().endswith(COMPRESSED_SUFFIX)
    settings = writer_settings()
    codec = settings["codec"] if compressed else None
    if codec in ("none", ""):
        codec = None
    threads = int(settings["threads"]) or default_threads()
    scale = meta.get("scale") or [1.0] * data.ndim
    pixelsize = pixel_size_angstrom(scale, meta.get("units"))
    if data.ndim == 2:
        pixelsize = [pixelsize[0], *pixelsize]
    elif data.ndim != 3:
        raise ValueError(f"MRC holds 2D images and 3D stacks; this layer has {data.ndim} "
                         "dimensions")
    writeMRC(data, path, meta=json_meta(meta.get("metadata")) or None,
             dtype=mrc_dtype(data), pixelsize=pixelsize, pixelunits="\\AA",
             compressor=codec, clevel=int(settings["level"]), n_threads=threads)
    return path


def write_mrcz(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 writer: one Image or Labels layer to MRCZ (``.mrcz`` added if missing)."""
    return [write_layer(path, data, meta, COMPRESSED_SUFFIX)]


def write_mrc(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 writer: one Image or Labels layer to plain MRC (``.mrc`` added if missing)."""
    return [write_layer(path, data, meta, ".mrc")]


def write_folder(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """npe2 writer: several layers into the folder ``path``, one ``.mrcz`` file each."""
    os.makedirs(path, exist_ok=True)
    written = []
    for data, meta, _layer_type in layer_data:
        name = str(meta.get("name") or "layer")
        stem = name
        for suffix in (*PLAIN_SUFFIXES, COMPRESSED_SUFFIX):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
        written.append(write_layer(os.path.join(path, stem + COMPRESSED_SUFFIX), data, meta,
                                   COMPRESSED_SUFFIX))
    return written
