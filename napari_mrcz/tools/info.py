"""What a file holds, in a few lines: the facts ``mrcz info`` shows.

Reads headers only (and, for MRCZ, the 16-byte chunk headers, to measure the packed
size); never the pixels. Every value is plain JSON.
"""

from __future__ import annotations

import os
from typing import Any

from napari_mrcz.dm.images import read_dm
from napari_mrcz.dm.metadata import image_entry, python_mrcz_info
from napari_mrcz.formats import Format, identify
from napari_mrcz.mrc.codecs import recorded_settings
from napari_mrcz.mrc.gainmeta import ORIGINAL_DTYPE
from napari_mrcz.mrc.gzipped import DecompressedFile
from napari_mrcz.mrc.jsonmeta import GAIN_KEY
from napari_mrcz.mrc.layout import MRCLayout, read_layout
from napari_mrcz.mrc.slices import SliceReader
from napari_mrcz.remote import RemoteFile, is_url

#: DM tags worth a line of their own, beside python-mrcz's ``imageInfo`` keys:
#: (path below the image's ImageTags, name shown).
DM_HIGHLIGHT_TAGS = (
    (("Microscope Info", "Name"), "Microscope"),
    (("Microscope Info", "Operation Mode"), "OperationMode"),
    (("Microscope Info", "Illumination Mode"), "IlluminationMode"),
    (("Acquisition", "Device", "Name"), "Camera"),
    (("Acquisition", "Parameters", "High Level", "Exposure (s)"), "ExposureSeconds"),
    (("DataBar", "Acquisition Date"), "AcquisitionDate"),
    (("DataBar", "Acquisition Time"), "AcquisitionTime"),
    (("Session Info", "Operator"), "Operator"),
    (("Session Info", "Specimen"), "Specimen"),
)
#: python-mrcz ``imageInfo`` keys left out of the highlights: the calibrations,
#: which the summary shows as pixel sizes already.
_CALIBRATION_PREFIXES = ("Dim", "Intensity")


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Summarise an MRC, MRCZ or DM file.

    Parameters
    ----------
    path : str or os.PathLike
        The file (of a ``.gz``/``.bz2`` MRC file, only the header and extended header
        are decompressed; ``packed_bytes`` and ``ratio`` of an MRCZ inside are None),
        or the address of an MRC or MRCZ file on a server (``path`` in the summary
        is then the address without a password or signature).

    Returns
    -------
    dict
        For MRC/MRCZ: ``path``, ``format``, ``file_bytes``, ``shape`` (z, y, x),
        ``mode``, ``dtype``, ``byte_order``, ``pixel_size_angstrom`` (z, y, x),
        ``codec`` (None for plain MRC), ``level`` (None unless recorded by the
        writer: blosc does not store it), ``data_bytes`` (uncompressed),
        ``packed_bytes``, ``ratio``, ``slices_per_frame``, ``statistics``,
        ``voltage_kv``, ``cs_mm``, ``origin_angstrom`` (z, y, x like the pixel size:
        ORIGIN, or N*START times the pixel size),
        ``axis_order`` (MAPC, MAPR, MAPS), ``space_group``, ``extended_header``
        (type and bytes), ``json_meta_keys``, ``labels`` and ``gain_separated`` (None,
        or for counts stored with a gain reference: ``gain_file``, ``gain_sha256``,
        ``gain_source``, ``original_dtype``, ``original_bytes`` and
        ``ratio_to_original``, the gain file not counted). For DM: ``path``,
        ``format``, ``file_bytes`` and ``images``, each with ``name``, ``shape``,
        ``dtype``, ``data_type``, ``calibration`` (scale and units per axis, slowest
        first) and ``highlights`` (microscope, camera and acquisition tags).

    Raises
    ------
    MRCZFormatError
        If the file is damaged.
    """
    path = os.fspath(path)
    if identify(path).format is Format.DM:
        return _describe_dm(path)
    packed: int | None
    if is_url(path):
        remote = RemoteFile(path)
        layout = read_layout(remote.name, source=remote)
        packed, file_bytes, path = layout.data_nbytes, remote.size, remote.name
        if layout.compressor is not None:
            with SliceReader(layout, remote=remote) as reader:
                packed = reader.packed_bytes
    else:
        with DecompressedFile(path, head_only=True) as source, source.original_in_errors():
            layout = read_layout(source.path, file_size=source.whole_size)
            packed = layout.data_nbytes
            if layout.compressor is not None and source.whole_size is not None:
                packed = None  # the chunks are inside the .gz/.bz2, not decompressed
            elif layout.compressor is not None:
                with SliceReader(layout) as reader:
                    packed = reader.packed_bytes
        file_bytes = os.path.getsize(path)
    data_bytes = layout.data_nbytes
    settings = recorded_settings(layout.labels)
    level = settings[1] if settings and settings[0] == layout.compressor else None
    header = layout.header
    return {
        "path": path,
        "format": "MRCZ" if layout.compressor else "MRC",
        "file_bytes": file_bytes,
        "shape": list(layout.shape),
        "mode": layout.mode,
        "dtype": layout.dtype.base.name,
        "byte_order": "big" if layout.byteorder == ">" else "little",
        "pixel_size_angstrom": [float(size) for size in layout.pixelsize],
        "codec": layout.compressor,
        "level": level,
        "data_bytes": data_bytes,
        "packed_bytes": packed,
        "ratio": data_bytes / packed if packed else None,
        "slices_per_frame": layout.slices,
        "statistics": {
            name: float(header[field])
            for name, field in (
                ("min", "dmin"),
                ("max", "dmax"),
                ("mean", "dmean"),
                ("rms", "rms"),
            )
        },
        "voltage_kv": float(header["voltage"]),
        "cs_mm": float(header["cs"]),
        "origin_angstrom": [float(value) for value in layout.origin],
        "axis_order": list(layout.mapcrs),
        "space_group": int(header["ispg"]),
        "extended_header": {
            "type": layout.exttyp if layout.nsymbt else None,
            "bytes": layout.nsymbt,
        },
        "json_meta_keys": sorted(layout.json_meta) if layout.json_meta else [],
        "labels": layout.labels,
        GAIN_KEY: _gain_summary(layout, packed),
    }


def _gain_summary(layout: MRCLayout, packed: int) -> dict[str, Any] | None:
    """For a gain-separated file: its gain file, checksum and float32 size and ratio."""
    separation = layout.gain_separation
    if separation is None:
        return None
    original_bytes = layout.nz * layout.shape[1] * layout.shape[2] * ORIGINAL_DTYPE.itemsize
    return {
        "gain_file": separation.gain_file,
        "gain_sha256": separation.gain_sha256,
        "gain_source": separation.gain_source,
        "original_dtype": ORIGINAL_DTYPE.name,
        "original_bytes": original_bytes,
        "ratio_to_original": original_bytes / packed if packed else None,
    }


def _tag(group: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(group, dict) or name not in group:
            return None
        group = group[name]
    return None if isinstance(group, dict) else group


def _describe_dm(path: str) -> dict[str, Any]:
    images = []
    format_name = "DM"
    for data, meta in read_dm(path, lazy=True):
        format_name = meta["format"]
        entry = image_entry(meta)
        highlights = {
            key: value
            for key, value in python_mrcz_info(entry).items()
            if not key.startswith(_CALIBRATION_PREFIXES)
        }
        for tag_path, name in DM_HIGHLIGHT_TAGS:
            value = _tag(entry.get("ImageTags"), tag_path)
            if value is not None:
                highlights[name] = value
        images.append(
            {
                "name": meta["name"],
                "shape": list(data.shape),
                "dtype": meta["dtype"],
                "data_type": meta["data_type_name"],
                "calibration": [
                    {"scale": axis["scale"], "units": axis["units"]} for axis in meta["axes"]
                ],
                "highlights": highlights,
            }
        )
    return {
        "path": path,
        "format": format_name,
        "file_bytes": os.path.getsize(path),
        "images": images,
    }
