"""napari writers: Image and Labels layers to MRCZ (compressed) or plain MRC.

Thin glue over the engine. The format follows the file's extension: ``.mrcz`` is
compressed with the codec, level and threads of the plugin settings (zstd, 1, all
cores by default); ``.mrc``, ``.mrcs``, ``.map``, ``.st``, ``.ali`` and ``.rec`` are
plain MRC2014 files that mrcfile validates: they hold the layer's JSON metadata only
if the setting ``json_in_plain`` asks for it (see
:data:`napari_mrcz.mrc.jsonmeta.JSON_IN_PLAIN_COST`). A path without one of these gets
the writer's own extension (napari does not add the one picked in the Save dialog).
Several layers saved at once go to a folder, one file per layer, as napari's own
writers do.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from napari_mrcz._napari.layers import (
    carried_from_source,
    check_savable,
    header_geometry,
    json_meta,
    microscope_values,
    shown_rows_top_down,
)
from napari_mrcz.errors import MRCZWarning
from napari_mrcz.mrc.jsonmeta import meta_to_write
from napari_mrcz.mrc.modes import mrc_dtype
from napari_mrcz.mrc.write import write_array
from napari_mrcz.suffixes import COMPRESSED_SUFFIX, PLAIN_SUFFIXES, is_mrcz, strip_suffix
from napari_mrcz.threads import default_threads

logger = logging.getLogger(__name__)

#: The codec setting that means plain MRC.
NO_COMPRESSION = "none"

#: Plugin settings (napari Preferences > napari-mrcz) and their defaults.
DEFAULT_SETTINGS = {"codec": "zstd", "level": 1, "threads": 0, "json_in_plain": False}


def writer_settings() -> dict[str, Any]:
    """The writer defaults from napari's plugin settings, or the built-in ones.

    ``threads`` 0 means all cores.
    """
    settings = dict(DEFAULT_SETTINGS)
    try:
        from napari.settings import get_plugin_settings

        plugin = get_plugin_settings("napari-mrcz")
        section = plugin.writer
        settings.update(
            codec=section.codec,
            level=section.level,
            threads=section.threads,
            json_in_plain=section.json_in_plain,
        )
    except Exception as error:  # older napari, or no settings registered (plain scripts)
        logger.debug("napari-mrcz plugin settings unavailable: %s", error)
    return settings


def output_path(path: str, default_suffix: str) -> str:
    """``path`` with ``default_suffix`` added unless it already ends in one of ours."""
    if path.lower().endswith((*PLAIN_SUFFIXES, COMPRESSED_SUFFIX)):
        return path
    return path + default_suffix


def write_layer(path: str, data: Any, meta: dict, default_suffix: str) -> str:
    """Write one layer's data and napari meta; return the path written.

    Raises
    ------
    ValueError
        If MRC cannot hold the layer (RGB, other than 2 or 3 dimensions); the reason
        is warned about first, as napari takes a writer's ValueError for "not a valid
        writer" and shows only that.
    """
    path = output_path(os.fspath(path), default_suffix)
    try:
        data = check_savable(data, meta)
    except ValueError as error:
        name = meta.get("name") or os.path.basename(path)
        warnings.warn(f"{name} cannot be saved as {path}: {error}", MRCZWarning, stacklevel=2)
        raise
    compressed = is_mrcz(path)
    settings = writer_settings()
    codec = settings["codec"] if compressed else None
    if codec in (NO_COMPRESSION, ""):
        codec = None
    threads = int(settings["threads"]) or default_threads()
    geometry = header_geometry(
        meta.get("scale") or [1.0] * data.ndim,
        meta.get("translate") or [0.0] * data.ndim,
        meta.get("units"),
        meta.get("metadata"),
    )
    message = geometry.warning(str(meta.get("name") or os.path.basename(path)))
    if message is not None:
        warnings.warn(message, MRCZWarning, stacklevel=2)
    carried = carried_from_source(meta.get("metadata"), tuple(data.shape))
    kept_meta = meta_for_file(
        path,
        {**json_meta(meta.get("metadata")), **geometry.meta()},
        bool(settings["json_in_plain"]),
    )
    if "extended_header" in carried and kept_meta:
        warnings.warn(
            f"{path}: the layer's metadata ({', '.join(kept_meta)}) is not saved: the file "
            f"keeps the {carried['extended_header'][0]} extended header of its source",
            MRCZWarning,
            stacklevel=2,
        )
        kept_meta = None
    write_array(
        data,
        path,
        meta=kept_meta,
        dtype=mrc_dtype(data, plain=codec is None),
        pixelsize=geometry.pixelsize_zyx,
        pixelunits="\\AA",
        origin=geometry.origin_zyx,
        compressor=codec,
        clevel=int(settings["level"]),
        n_threads=threads,
        **microscope_values(meta.get("metadata")),
        rows_top_down=shown_rows_top_down(meta.get("affine")),
        **carried,
    )
    return path


def meta_for_file(path: str, layer_meta: dict, json_in_plain: bool) -> dict | None:
    """The layer's JSON meta for ``path``; left out of plain MRC unless the setting says.

    The one rule of File > Save and the Save as MRCZ panel. Warns (once per save)
    when it is left out: the user's metadata is not in the file.
    """
    kept = meta_to_write(layer_meta, is_mrcz(path), json_in_plain)
    if layer_meta and kept is None:
        keys = ", ".join(list(layer_meta)[:3]) + (", ..." if len(layer_meta) > 3 else "")
        warnings.warn(
            f"{path}: the layer's metadata ({keys}) is not saved in this plain MRC file, "
            "because MRC programs reject the file with it. Save as .mrcz to keep it, or "
            "turn on 'JSON metadata in plain MRC files' in Preferences > napari MRCZ.",
            MRCZWarning,
            stacklevel=4,
        )
    return kept


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
