"""What the metadata inspector shows about a layer, kept apart from Qt."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_mrcz._napari.layers import (
    LayerAxis,
    json_meta,
    layer_calibration,
    layer_geometry,
)
from napari_mrcz._napari.writer import NO_COMPRESSION, writer_settings
from napari_mrcz.mrc.gainmeta import describe_gain_source
from napari_mrcz.mrc.header import FIELD_MEANINGS, header_fields
from napari_mrcz.mrc.jsonmeta import DM_TAGS_KEY, GAIN_KEY
from napari_mrcz.mrc.modes import mrc_dtype
from napari_mrcz.mrc.write import new_file_header
from napari_mrcz.wording import human_size

#: Lists longer than this are summarised in the inspector, not listed.
MAX_LISTED = 32


@dataclass
class LayerReport:
    """What the metadata inspector shows about one layer."""

    title: str
    origin: str
    facts: list[tuple[str, str]]
    header_rows: list[tuple[str, str, str]]
    tree: dict

    def as_json_ready(self) -> dict:
        """Everything, as a dict :func:`json.dumps` can write."""
        return {
            "layer": self.title,
            "origin": self.origin,
            "facts": dict(self.facts),
            "header": {name: value for name, value, _ in self.header_rows},
            "metadata": self.tree,
        }


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) > MAX_LISTED:
        return f"<{len(value)} values>"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and all(isinstance(item, float) for item in value):
        return ", ".join(f"{item:.6g}" for item in value)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(value)


def _header_rows(fields: dict) -> list[tuple[str, str, str]]:
    return [
        (name, _format_value(value), FIELD_MEANINGS.get(name, ""))
        for name, value in fields.items()
    ]


def _pixel_size_fact(axes: tuple[LayerAxis, ...]) -> tuple[str, str]:
    """("pixel size (y, x)", "0.8, 0.8 Å"): the layer's own axes, each in its unit.

    Lengths are shown in Angstrom; other axes (an FFT's 1/nm, a spectrum's eV) in
    their own unit, never as Angstrom.
    """
    names = ", ".join(axis.name for axis in axes)
    if all(axis.is_length for axis in axes):
        return f"pixel size ({names})", ", ".join(f"{axis.angstrom:.4g}" for axis in axes) + " Å"
    return f"pixel size ({names})", ", ".join(
        f"{axis.angstrom:.4g} Å" if axis.is_length else axis.describe() for axis in axes
    )


def layer_report(layer: Any) -> LayerReport:
    """Describe ``layer`` for the inspector.

    Layers our reader made show the file's header, its JSON meta or DM tags and its
    compression. Other Image and Labels layers show the header napari-mrcz would
    write for them; other layers (points, shapes) only their metadata.
    """
    from napari.layers import Image, Labels

    metadata = layer.metadata or {}
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if not isinstance(layer, (Image, Labels)):
        return LayerReport(
            layer.name,
            f"a {layer.__class__.__name__} layer: napari-mrcz saves only Image and Labels layers",
            [],
            [],
            {"layer metadata": json_meta(metadata, warn=False)},
        )
    axes = layer_calibration(layer)
    facts = [
        ("shape", " x ".join(str(n) for n in data.shape)),
        ("dtype", str(data.dtype)),
        _pixel_size_fact(axes),
    ]
    header = metadata.get("header")
    if metadata.get("format") in ("MRC", "MRCZ") and isinstance(header, dict):
        path = metadata.get("path", "")
        facts.insert(0, ("format", metadata["format"]))
        codec = header.get("compressor")
        facts.append(("compression", codec or "none"))
        if codec and os.path.isfile(path):
            packed = int(header.get("packedBytes") or 0)
            data_bytes = int(np.prod(data.shape)) * np.dtype(data.dtype).itemsize
            facts.append(("packed size", human_size(packed)))
            if packed:
                facts.append(("compression ratio", f"{data_bytes / packed:.2f}x"))
        record = (metadata.get("json_meta") or {}).get(GAIN_KEY)
        if isinstance(record, dict):  # counts shown times their gain reference
            counts = np.dtype(header.get("dtype", "f4")).name
            facts.append(("gain-separated", f"{counts} counts x {record.get('gain_file')}"))
            facts.append(("gain", describe_gain_source(record.get("gain_source") or {})))
        missed = metadata.get("formalities_missed")
        if missed:
            facts.append(("MRC2014 formalities missed", "; ".join(missed)))
        rows = _header_rows(header.get("mrcHeader", {}))
        tree = {"JSON meta": metadata.get("json_meta") or {}}
        if header.get("extendedHeader"):
            tree["extended header"] = header["extendedHeader"]
        return LayerReport(layer.name, f"read from {path}", facts, rows, tree)
    if metadata.get("format") == "DM":
        facts.insert(0, ("format", "DigitalMicrograph"))
        rows = [
            (str(key), _format_value(value), "")
            for key, value in (header or {}).items()
            if not isinstance(value, dict)
        ]
        return LayerReport(
            layer.name,
            f"read from {metadata.get('path', '')}",
            facts,
            rows,
            {"DM tags": metadata.get(DM_TAGS_KEY) or {}},
        )
    codec = writer_settings()["codec"]
    codec = None if codec == NO_COMPRESSION else codec
    geometry = layer_geometry(layer)
    preview = new_file_header(
        data.shape[-3:] if data.ndim >= 3 else data.shape,
        mrc_dtype(data, plain=codec is None, warn=False, scan=False) or data.dtype,
        geometry.pixelsize_zyx,
        codec,
        origin_zyx=geometry.origin_zyx,
    )
    rows = _header_rows(header_fields(preview, "<"))
    tree = {"JSON meta to write": {**json_meta(metadata, warn=False), **geometry.meta()}}
    return LayerReport(
        layer.name,
        "not from a file: the header napari-mrcz would write "
        "(statistics are computed while saving)",
        facts,
        rows,
        tree,
    )
