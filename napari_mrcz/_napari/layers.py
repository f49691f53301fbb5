"""From a napari layer to what an MRC header holds: pixel size, JSON meta, microscope values.

Shared by the writers, the save panel and the inspector, so that a layer is saved
and previewed the same way.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pint

from napari_mrcz._napari.reader import READER_METADATA_KEYS, SHOWN_CALIBRATION_KEY
from napari_mrcz.errors import MRCZFormatError, MRCZWarning
from napari_mrcz.mrc.jsonmeta import DM_TAGS_KEY, NON_LENGTH_AXES_KEY
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.tools.convert import dm_microscope

logger = logging.getLogger(__name__)


#: napari's unit for a layer given no units: the scale is then read as Angstrom.
_NO_UNIT = ("pixel", "dimensionless", "")


def axis_names(ndim: int) -> tuple[str, ...]:
    """The MRC names of a layer's last ``ndim`` axes (at most 3): ``('y', 'x')``, ..."""
    return ("z", "y", "x")[-ndim:] if ndim else ()


def unit_label(unit: Any) -> str:
    """A unit as a microscopist writes it: ``Å``, ``nm``, ``1/nm``, ``eV``."""
    if unit is None:
        return "pixel"
    try:
        text = format(unit, "~")  # pint's short form: 'nm', '1 / nm', 'eV'
    except (TypeError, ValueError):
        text = str(unit)
    return text.replace(" / ", "/")


@dataclass(frozen=True)
class LayerAxis:
    """One axis of a layer: its calibration as napari has it, and in Angstrom."""

    name: str
    scale: float
    offset: float
    unit: Any
    #: The scale in Angstrom; None where the unit is not a length.
    angstrom: float | None
    offset_angstrom: float | None

    @property
    def is_length(self) -> bool:
        """True when the axis has a pixel size (a length, or napari's unitless default)."""
        return self.angstrom is not None

    def describe(self) -> str:
        """The calibration in its own unit: ``0.5 eV``."""
        return f"{self.scale:.4g} {unit_label(self.unit)}"


def _in_angstrom(value: float, unit: Any) -> float | None:
    if unit is None or str(unit) in _NO_UNIT:
        return value  # no unit given: python-mrcz's and EM's habit is Angstrom
    try:
        if isinstance(unit, str):  # as the reader's layer data spell it: "angstrom"
            unit = pint.get_application_registry().Unit(unit)
        return float((value * unit).to("angstrom").magnitude)
    except Exception:  # pint: not a length (1/nm, eV, s), or not a pint unit at all
        return None


def layer_axes(scale: Any, translate: Any, units: Any) -> list[LayerAxis]:
    """A layer's axes (napari order) with their calibration, lengths also in Angstrom.

    A unit that is not a length (1/nm, eV, s) gives ``angstrom`` None. napari's
    default unit ``pixel`` (no unit given) is read as Angstrom.
    """
    sizes = [float(value) for value in scale]
    offsets = [float(value) for value in translate] if translate is not None else []
    offsets = ([0.0] * len(sizes) + offsets)[-len(sizes) :] if sizes else []
    if units is None or isinstance(units, str) or not hasattr(units, "__len__"):
        units = [units] * len(sizes)
    names = ("axis",) * max(0, len(sizes) - 3) + axis_names(min(3, len(sizes)))
    axes = []
    for name, size, offset, unit in zip(names, sizes, offsets, units, strict=False):
        angstrom = _in_angstrom(size, unit)
        axes.append(
            LayerAxis(
                name,
                size,
                offset,
                unit,
                angstrom,
                None if angstrom is None else _in_angstrom(offset, unit),
            )
        )
    return axes


@dataclass
class HeaderGeometry:
    """What an MRC header gets from a layer's scale, translate and units.

    ``pixelsize_zyx`` and ``origin_zyx`` are in Angstrom, 0 along axes whose unit
    is not a length; those axes are described in ``non_length`` (the JSON meta
    keeps them under :data:`NON_LENGTH_AXES_KEY`). A 2D layer's z pixel size is its
    y pixel size (MRC needs one; nothing shows it).
    """

    pixelsize_zyx: list[float]
    origin_zyx: list[float]
    non_length: dict[str, dict[str, Any]]
    mirrored: list[str] = field(default_factory=list)

    def warning(self, name: str) -> str | None:
        """The one warning a save gives for axes it cannot keep as shown (None if none).

        Axes that are not lengths are saved with pixel size 0 (their calibration goes
        to the JSON meta); an axis napari shows mirrored (negative scale) is saved as
        the layer stores it, with a positive pixel size, as MRC has no mirror.
        """
        problems = []
        if self.non_length:
            calibrations = ", ".join(
                f"{axis} in {record['unit_label']}" for axis, record in self.non_length.items()
            )
            problems.append(
                f"{calibrations} is not a length: saved with pixel size 0 there; "
                f"the calibration is kept in the file's JSON meta ({NON_LENGTH_AXES_KEY})"
            )
        if self.mirrored:
            problems.append(
                f"shown mirrored along {' and '.join(self.mirrored)} (negative scale): "
                "saved unmirrored, as the layer holds it, with a positive pixel size"
            )
        return f"{name}: {'; '.join(problems)}" if problems else None

    def meta(self) -> dict[str, Any]:
        """The JSON meta entry for the non-length axes ({} if there are none)."""
        if not self.non_length:
            return {}
        return {
            NON_LENGTH_AXES_KEY: {
                axis: {key: value for key, value in record.items() if key != "unit_label"}
                for axis, record in self.non_length.items()
            }
        }


def file_calibration(
    scale: Any, translate: Any, units: Any, metadata: dict | None
) -> tuple[Any, Any, Any]:
    """A layer's (scale, translate, units) as its file records them.

    A layer the reader shows in another calibration (a line scan, both axes in keV:
    see ``SHOWN_CALIBRATION_KEY``) gets its file's back, as long as it is still shown
    as the reader showed it; a calibration the user set is the layer's own.
    """
    record = (metadata or {}).get(SHOWN_CALIBRATION_KEY)
    if not isinstance(record, dict):
        return scale, translate, units
    shown, recorded = record.get("shown") or {}, record.get("file") or {}
    as_shown = (
        np.allclose(np.asarray(scale, float), shown.get("scale", []))
        and np.allclose(np.asarray(translate, float), shown.get("translate", []))
        and [str(unit) for unit in _per_axis(units, len(scale))]
        == [str(pint.Unit(unit)) for unit in shown.get("units", [])]
    )
    if not as_shown:
        return scale, translate, units
    return recorded["scale"], recorded["translate"], recorded["units"]


def _per_axis(units: Any, count: int) -> list[Any]:
    """``units`` as one per axis (napari takes one unit for all)."""
    if units is None or isinstance(units, str) or not hasattr(units, "__len__"):
        return [units] * count
    return list(units)


def header_geometry(
    scale: Any, translate: Any, units: Any, metadata: dict | None = None
) -> HeaderGeometry:
    """Pixel size, origin and non-length axes of a 2D or 3D layer, for its MRC header.

    In the file's calibration when the layer is shown in another (see
    :func:`file_calibration`; ``metadata`` is the layer's).
    """
    scale, translate, units = file_calibration(scale, translate, units, metadata)
    axes = layer_axes(scale, translate, units)[-3:]
    pixelsize = [abs(axis.angstrom or 0.0) for axis in axes]
    mirrored = [axis.name for axis in axes if axis.scale < 0]
    origin = [axis.offset_angstrom or 0.0 for axis in axes]
    if len(axes) == 2:
        pixelsize, origin = [pixelsize[0], *pixelsize], [0.0, *origin]
    non_length = {
        axis.name: {
            "scale": axis.scale,
            "offset": axis.offset,
            "unit": str(axis.unit),
            "unit_label": unit_label(axis.unit),
        }
        for axis in axes
        if not axis.is_length
    }
    return HeaderGeometry(pixelsize, origin, non_length, mirrored)


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
        raise ValueError("MRC holds no colour (RGB) images: split the channels first")
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
    if metadata.get(DM_TAGS_KEY):
        meta[DM_TAGS_KEY] = metadata[DM_TAGS_KEY]
    for key, value in metadata.items():
        if key not in READER_METADATA_KEYS:
            meta[key] = value
    meta.pop(NON_LENGTH_AXES_KEY, None)  # the writer's, from the layer's units now
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


def shown_rows_top_down(affine: Any) -> bool:
    """True if a layer shows its rows top-down: its affine does not mirror y.

    Layers of MRC files carry the y-up mirror of the reader; DM layers and arrays
    added by hand do not. ``affine`` is a layer's ``affine`` (napari's transform) or
    its matrix, as ``as_layer_data_tuple`` gives it; None is no affine.
    """
    matrix = np.asarray(getattr(affine, "affine_matrix", affine) if affine is not None else [])
    if matrix.ndim != 2 or matrix.shape[0] < 3:
        return True
    y = matrix.shape[0] - 3  # (..., y, x, 1)
    return bool(matrix[y, y] >= 0)


def carried_from_source(metadata: dict | None, shape: tuple[int, ...]) -> dict[str, Any]:
    """What a save of a layer keeps of the MRC file it was read from, as ``mrcz convert``.

    The file's text labels and, when it is of a declared type other than JSON (FEI,
    SerialEM, CCP4, ...), its extended header: the keywords ``labels`` and
    ``extended_header`` of :func:`napari_mrcz.mrc.write.write_array`. Nothing for a DM
    layer, a file that is gone or no longer reads, or data of another shape than the
    file's (the layer was cropped or binned: the records would not describe it).
    Reads the file's header and extended header: call it where the save runs.
    """
    metadata = metadata or {}
    source = metadata.get("path")
    if metadata.get("format") not in ("MRC", "MRCZ") or not source:
        return {}
    try:
        layout = read_layout(source, quiet=True)
        shown = tuple(layout.shape[axis] for axis in layout.display_order)
        if shown[-len(shape) :] != tuple(shape) or math.prod(shown) != math.prod(shape):
            return {}
        carried: dict[str, Any] = {"labels": list(layout.labels)}
        # Untyped records (old CCP4 symmetry) are left: MRC2014 readers refuse them.
        if layout.nsymbt and layout.exttyp not in ("json", ""):
            carried["extended_header"] = (layout.exttyp, layout.read_extended_header())
    except (MRCZFormatError, OSError) as error:
        logger.debug("nothing carried from %s: %s", source, error)
        return {}
    return carried


def microscope_values(metadata: dict | None) -> dict[str, float]:
    """voltage, cs (C3) and gain of the file a layer was read from, for write_array.

    An MRC layer's come from its header; a DM layer's from the Microscope Info tags
    of its image, as ``mrcz convert`` takes them.
    """
    metadata = metadata or {}
    header = metadata.get("header") or {}
    if metadata.get("format") == "DM" and isinstance(metadata.get(DM_TAGS_KEY), dict):
        try:
            return dm_microscope({**header, "tags": metadata[DM_TAGS_KEY]})
        except (KeyError, TypeError) as error:  # metadata edited by hand
            logger.debug("no microscope values in the DM layer's tags: %s", error)
            return {}
    return {
        name: float(header[key])
        for key, name in (("voltage", "voltage"), ("C3", "cs"), ("gain", "gain"))
        if isinstance(header.get(key), (int, float))
    }


def layer_geometry(layer: Any) -> HeaderGeometry:
    """:func:`header_geometry` of a napari layer."""
    return header_geometry(
        layer.scale, layer.translate, getattr(layer, "units", None), layer.metadata
    )


def layer_calibration(layer: Any) -> tuple[LayerAxis, ...]:
    """A layer's own axes (2 or 3, napari order) with their file's calibration.

    See :func:`file_calibration`.
    """
    calibration = file_calibration(
        layer.scale, layer.translate, getattr(layer, "units", None), layer.metadata
    )
    return tuple(layer_axes(*calibration)[-3:])
