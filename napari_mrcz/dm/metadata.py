"""What a DM image's tags say: calibrations, microscope values, python-mrcz's imageInfo.

Turns the tag tree of :mod:`napari_mrcz.dm.tags` and the image layouts of
:mod:`napari_mrcz.dm.images` into plain dicts: each axis's scale, origin and unit
(lengths in Angstrom), the intensity calibration, the microscope values the MRC
header keeps, and python-mrcz's ``imageInfo`` keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari_mrcz.units import UNITS_PER_ANGSTROM

if TYPE_CHECKING:
    from napari_mrcz.dm.images import DMImageLayout

_AXIS_NAMES = ("x", "y", "z")
#: Other spellings of length units DM writes.
_UNIT_ALIASES = {"\u03bcm": "\u00b5m", "\u212b": "\u00c5", "nanometer": "nm"}


def _number(value: Any, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return default


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _angstrom_factor(unit: str) -> float | None:
    """How many Angstrom one ``unit`` is, or None if it is not a length."""
    per_angstrom = UNITS_PER_ANGSTROM.get(_UNIT_ALIASES.get(unit, unit))
    return None if per_angstrom is None else 1.0 / per_angstrom


def axes_meta(layout: DMImageLayout) -> list[dict[str, Any]]:
    """Calibration of each grid axis, numpy order (slowest first).

    Each axis has DM's ``scale``, ``origin`` (in pixels) and ``units``; ``offset`` is
    the calibrated coordinate of pixel 0 (``-origin * scale``). For a length unit
    (nm, µm, pm, Å) ``scale_angstrom`` and ``offset_angstrom`` give the same in
    Angstrom; otherwise they are None.
    """
    calibrations = layout.image["ImageData"].get("Calibrations")
    dimension = calibrations.get("Dimension") if isinstance(calibrations, dict) else None
    entries = list(dimension.values()) if isinstance(dimension, dict) else []
    axes = []
    ndim = len(layout.grid_shape)
    for dm_axis in range(ndim):  # DM's order: x first
        entry = entries[dm_axis] if dm_axis < len(entries) else {}
        entry = entry if isinstance(entry, dict) else {}
        scale = _number(entry.get("Scale"), 1.0)
        origin = _number(entry.get("Origin"), 0.0)
        units = _text(entry.get("Units"))
        factor = _angstrom_factor(units)
        axes.append(
            {
                "name": _AXIS_NAMES[dm_axis] if dm_axis < len(_AXIS_NAMES) else f"axis{dm_axis}",
                "size": layout.grid_shape[ndim - 1 - dm_axis],
                "scale": scale,
                "origin": origin,
                "units": units,
                "offset": 0.0 - origin * scale,
                "scale_angstrom": None if factor is None else scale * factor,
                "offset_angstrom": None if factor is None else 0.0 - origin * scale * factor,
            }
        )
    return axes[::-1]


def intensity_meta(layout: DMImageLayout) -> dict[str, Any]:
    """DM's intensity calibration (Calibrations/Brightness): origin, scale, units."""
    calibrations = layout.image["ImageData"].get("Calibrations")
    brightness = calibrations.get("Brightness") if isinstance(calibrations, dict) else None
    brightness = brightness if isinstance(brightness, dict) else {}
    return {
        "origin": _number(brightness.get("Origin"), 0.0),
        "scale": _number(brightness.get("Scale"), 1.0),
        "units": _text(brightness.get("Units")),
    }


def image_meta(layout: DMImageLayout, version: int, tags: dict[str, Any]) -> dict[str, Any]:
    """The metadata :func:`read_dm` returns with one image.

    Keys: ``format`` ('DM3'/'DM4'), ``path``, ``image_index`` (position in ImageList),
    ``name``, ``data_type`` and ``data_type_name`` (DM's), ``shape``, ``dtype``,
    ``rgb``, ``axes`` (see :func:`axes_meta`), per-axis lists ready for a viewer
    (``pixelsize`` in Angstrom or None; ``scale_angstrom``, ``offset_angstrom`` and
    ``units_napari``: Angstrom for length axes, DM's scale and unit otherwise),
    ``intensity`` (see :func:`intensity_meta`) and ``tags``, the whole tag tree.
    """
    axes = axes_meta(layout)
    lengths = [axis["scale_angstrom"] is not None for axis in axes]
    return {
        "format": f"DM{version}",
        "path": layout.path,
        "image_index": layout.index,
        "name": _text(layout.image.get("Name")),
        "data_type": layout.data_type,
        "data_type_name": layout.name,
        "shape": layout.shape,
        "dtype": layout.dtype.name,
        "rgb": layout.is_rgb,
        "axes": axes,
        "pixelsize": [axis["scale_angstrom"] for axis in axes],
        "scale_angstrom": [
            axis["scale_angstrom"] if is_length else axis["scale"]
            for axis, is_length in zip(axes, lengths, strict=True)
        ],
        "offset_angstrom": [
            axis["offset_angstrom"] if is_length else axis["offset"]
            for axis, is_length in zip(axes, lengths, strict=True)
        ],
        "units_napari": [
            "angstrom" if is_length else (axis["units"] or "pixel")
            for axis, is_length in zip(axes, lengths, strict=True)
        ],
        "intensity": intensity_meta(layout),
        "tags": tags,
    }


def image_entry(meta: dict[str, Any]) -> dict[str, Any]:
    """The ImageList entry (plain tags) of the image :func:`image_meta` describes."""
    image_list = meta["tags"].get("ImageList")
    entries = list(image_list.values()) if isinstance(image_list, dict) else []
    index = meta["image_index"]
    entry = entries[index] if 0 <= index < len(entries) else {}
    return entry if isinstance(entry, dict) else {}


#: python-mrcz's imageInfo keys: (tag path below ImageTags, key) for plain values.
_INFO_TAGS = (
    (("Microscope Info", "Actual Magnification"), "ActualMag"),
    (("Microscope Info", "Indicated Magnification"), "NominalMag"),
    (("Microscope Info", "Cs(mm)"), "C3"),
    (("Microscope Info", "Voltage"), "Voltage"),
    (("Microscope Info", "Mode"), "MicroscopeMode"),
    (("EELS Spectrometer", "Aperture index"), "EELSApertureIndex"),
    (("EELS Spectrometer", "Aperture label"), "EELSApertureLabel"),
    (("EELS Spectrometer", "Energy loss (eV)"), "EELSEnergyLoss"),
    (("EELS Spectrometer", "Slit inserted"), "EELSSlitIn"),
    (("EELS Spectrometer", "Slit width (eV)"), "EELSSlitWidth"),
    (("Latitude-S", "Distance To Focus Position"), "LatSDistanceToFocus"),
    (("Latitude-S", "Intended Defocus"), "LatSIntendedDefocus"),
    (("Latitude-S", "Beam Diameter (nm)"), "LatSBeamDiameter"),
)


#: Acquisition tags python-mrcz keeps: name -> (which ancestor, its name, key); the
#: ancestor is counted from the tag (1 = its group).
_ACQUISITION_TAGS = {
    "Horizontal Flip": (3, "Device", "HorzFlip"),
    "Vertical Flip": (3, "Device", "VertFlip"),
    "Diagonal Flip": (3, "Device", "DiagFlip"),
    "Pixel Size (um)": (2, "Device", "DetectorPixelSize"),
    "Exposure": (1, "Detector", "Exposure"),
    "hbin": (1, "Detector", "HorzBin"),
    "vbin": (1, "Detector", "VertBin"),
}


def _info_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def _walk(group: dict, path: tuple[str, ...] = ()):
    """Yield (path, value) for every data tag below ``group``, depth first, in order."""
    stack = [(path, iter(group.items()))]
    while stack:
        prefix, items = stack[-1]
        for key, value in items:
            if isinstance(value, dict):
                stack.append(((*prefix, key), iter(value.items())))
                break
            yield (*prefix, key), value
        else:
            stack.pop()


def python_mrcz_info(image: dict) -> dict[str, Any]:
    """python-mrcz's ``imageInfo`` of one ImageList entry."""
    info: dict[str, Any] = {}
    data = image.get("ImageData", {})
    calibrations = data.get("Calibrations", {}) if isinstance(data, dict) else {}
    brightness = calibrations.get("Brightness", {}) if isinstance(calibrations, dict) else {}
    for tag, key in (
        ("Origin", "IntensityOrigin"),
        ("Scale", "IntensityScale"),
        ("Units", "IntensityUnits"),
    ):
        if isinstance(brightness, dict) and tag in brightness:
            info[key] = _info_value(brightness[tag])
    dimension = calibrations.get("Dimension", {}) if isinstance(calibrations, dict) else {}
    if isinstance(dimension, dict):
        for axis, entry in zip("XYZ", dimension.values(), strict=False):
            for tag in ("Origin", "Scale", "Units"):
                if isinstance(entry, dict) and tag in entry:
                    info[f"Dim{axis}{tag}"] = _info_value(entry[tag])
    image_tags = image.get("ImageTags")
    if not isinstance(image_tags, dict):
        return info
    for path, key in _INFO_TAGS:
        group = image_tags.get(path[0])
        if isinstance(group, dict) and path[1] in group:
            info[key] = _info_value(group[path[1]])
    acquisition = image_tags.get("Acquisition")
    if isinstance(acquisition, dict):
        for path, value in _walk(acquisition):
            rule = _ACQUISITION_TAGS.get(path[-1])
            if rule and len(path) > rule[0] and path[-1 - rule[0]] == rule[1]:
                info[rule[2]] = _info_value(value)
    calibration = image_tags.get("Calibration")
    dose = calibration.get("Dose Rate") if isinstance(calibration, dict) else None
    if isinstance(dose, dict) and "Calibration" in dose:
        entry = dose["Calibration"]
        values = [value for _, value in _walk(entry)] if isinstance(entry, dict) else [entry]
        info["DoseRateCalibration"] = [_info_value(value) for value in values]
    return info
