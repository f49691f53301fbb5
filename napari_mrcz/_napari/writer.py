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

from napari_mrcz._napari.reader import READER_METADATA_KEYS
from napari_mrcz.mrc.modes import mrc_dtype
from napari_mrcz.mrc.write import write_array
from napari_mrcz.suffixes import COMPRESSED_SUFFIX, PLAIN_SUFFIXES, is_mrcz, strip_suffix
from napari_mrcz.threads import default_threads

logger = logging.getLogger(__name__)

#: The codec setting that means plain MRC.
NO_COMPRESSION = "none"

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
                    f"layer metadata {key!r} cannot be saved as JSON; skipped", stacklevel=3
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


def write_layer(path: str, data: Any, meta: dict, default_suffix: str) -> str:
    """Write one layer's data and napari meta; return the path written."""
    data = check_savable(data, meta)
    path = output_path(os.fspath(path), default_suffix)
    compressed = is_mrcz(path)
    settings = writer_settings()
    codec = settings["codec"] if compressed else None
    if codec in (NO_COMPRESSION, ""):
        codec = None
    threads = int(settings["threads"]) or default_threads()
    units = meta.get("units")
    pixelsize = pixel_size_angstrom(meta.get("scale") or [1.0] * data.ndim, units)
    origin = pixel_size_angstrom(meta.get("translate") or [0.0] * data.ndim, units)
    if data.ndim == 2:
        pixelsize = [pixelsize[0], *pixelsize]
    write_array(
        data,
        path,
        meta=json_meta(meta.get("metadata")) or None,
        dtype=mrc_dtype(data, plain=codec is None),
        pixelsize=pixelsize,
        pixelunits="\\AA",
        origin=origin,
        compressor=codec,
        clevel=int(settings["level"]),
        n_threads=threads,
        **microscope_values(meta.get("metadata")),
    )
    return path


def write_mrcz(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 writer: one Image or Labels layer to MRCZ (``.mrcz`` added if missing)."""
    return [write_layer(path, data, meta, COMPRESSED_SUFFIX)]


def write_mrc(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 writer: one Image or Labels layer to plain MRC (``.mrc`` added if missing)."""
    return [write_layer(path, data, meta, ".mrc")]


def write_folder(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """npe2 writer: several layers into the folder ``path``, one ``.mrcz`` file each.

    Files are named after the layers (path separators replaced, a number added to
    names that repeat).
    """
    os.makedirs(path, exist_ok=True)
    written: list[str] = []
    for data, meta, _layer_type in layer_data:
        stem = strip_suffix(str(meta.get("name") or "layer")).replace(os.sep, "_") or "layer"
        target = os.path.join(path, stem + COMPRESSED_SUFFIX)
        copy = 1
        while target in written:
            target = os.path.join(path, f"{stem}-{copy}{COMPRESSED_SUFFIX}")
            copy += 1
        written.append(write_layer(target, data, meta, COMPRESSED_SUFFIX))
    return written
