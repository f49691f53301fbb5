"""napari reader: MRC, MRCZ and DigitalMicrograph files as Image layers.

Thin glue over the engine: no napari or Qt import at module level, so napari can
import it cheaply on the first file drop.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import urllib.parse
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pint

from napari_mrcz.arraylike import LazyView
from napari_mrcz.errors import MRCZFormatError, MRCZWarning, RemoteFileError
from napari_mrcz.formats import Format, identify
from napari_mrcz.mrc.gzipped import DecompressedFile, is_compressed
from napari_mrcz.mrc.header import ROWS_TOP_DOWN_LABEL
from napari_mrcz.mrc.jsonmeta import DM_TAGS_KEY, NON_LENGTH_AXES_KEY
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.mrc.lazy import LazyMRC
from napari_mrcz.mrc.read import layout_meta, read_array
from napari_mrcz.mrc.stack import open_stack
from napari_mrcz.remote import is_url, redact
from napari_mrcz.suffixes import READABLE_SUFFIXES

logger = logging.getLogger(__name__)

#: Data larger than this (uncompressed) is opened lazily: slices read on demand.
LAZY_THRESHOLD_BYTES = 512 * 2**20

#: The metadata key of a layer shown in another calibration than its file's (a line
#: scan): ``{"shown": {scale, translate, units}, "file": {scale, translate, units}}``.
SHOWN_CALIBRATION_KEY = "shown_calibration"
#: Keys the reader puts into ``layer.metadata``; the writer leaves them out of the
#: JSON meta it writes back (they describe the file read, not the data).
READER_METADATA_KEYS = (
    "path",
    "format",
    "header",
    "json_meta",
    DM_TAGS_KEY,
    "formalities_missed",
    SHOWN_CALIBRATION_KEY,
)

#: Contrast limits of amplitudes and spectra: these percentiles of the values, so
#: that an FFT's central peak or an EELS zero-loss peak does not leave the rest black.
DISPLAY_PERCENTILES = (0.5, 99.5)
#: Values sampled at most to find those percentiles.
PERCENTILE_SAMPLE = 2**20
#: Data is "peaked" (an FFT amplitude, a diffraction pattern) when its min..max range
#: is this many times wider than the range between those percentiles: it is then
#: shown by the percentiles, as min..max would leave all but the peak black.
PEAKED_RANGE_RATIO = 100
#: A spectrum is shown as a strip of this height (a fraction of its length) under a
#: line plot of this height.
SPECTRUM_STRIP_HEIGHT = 1 / 16
SPECTRUM_PLOT_HEIGHT = 1 / 3
#: A line scan (spectra along a line: position by energy) is shown this many times
#: as tall as wide, whatever its number of positions.
LINE_SCAN_ASPECT = 1 / 2
#: Lengths are shown in nanometres: napari's scale bar then reads in pm, nm and µm,
#: as a microscopist writes them (in Angstrom it reads "750 mÅ" and "5 kÅ"). Files
#: keep their Angstrom; pixel sizes are shown in Angstrom in the panels.
SHOWN_LENGTH_UNIT = "nm"

LayerData = tuple[Any, dict, str]


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_layers` if ``path`` is a file we read, else None.

    Cheap: only the suffix is looked at. A list of paths (File > Open Files as Stack)
    is accepted when every path is ours.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    names = [urllib.parse.urlsplit(p).path if is_url(p) else str(p) for p in paths]
    if names and all(name.lower().endswith(READABLE_SUFFIXES) for name in names):
        return read_layers
    return None


def read_layers(path: str | Sequence[str]) -> list[LayerData]:
    """Read one file or several into napari layer data.

    A list of two or more MRC files (napari's File > Open Files as Stack) becomes
    one layer with a leading axis of files; a list with DM files in it, one layer per
    file (and image).

    Raises
    ------
    MRCZFormatError
        If a file is damaged, or the files of a stack differ in shape or dtype;
        napari shows its message.
    """
    paths = [os.fspath(one) for one in ([path] if isinstance(path, (str, os.PathLike)) else path)]
    try:
        formats = [identify(one).format for one in paths]
        if len(paths) > 1 and Format.DM not in formats:
            return _read_mrc_stack(paths)
        layers: list[LayerData] = []
        for one, format in zip(paths, formats, strict=True):
            if format is Format.DM:
                layers.extend(_read_dm_layers(one))
            else:
                layers.extend(_read_mrc_file(one))
        return [_lengths_in_shown_unit(layer) for layer in layers]
    except (MRCZFormatError, RemoteFileError) as error:
        _notify(error)
        raise


def _lengths_in_shown_unit(layer: LayerData) -> LayerData:
    """The layer with its Angstrom axes in :data:`SHOWN_LENGTH_UNIT`: the scale and
    translate of an image, the vertices of a shape (a spectrum's plot)."""
    data, kwargs, kind = layer
    units = kwargs.get("units")
    if units is None:
        return layer
    ndim = len(kwargs["scale"]) if "scale" in kwargs else np.shape(data[0])[-1]
    units = [units] * ndim if isinstance(units, str) else list(units)
    if "angstrom" not in units:
        return layer
    factor = float(pint.Quantity(1.0, "angstrom").to(SHOWN_LENGTH_UNIT).magnitude)
    in_angstrom = [unit == "angstrom" for unit in units]

    def shown(values: Sequence[float]) -> list[float]:
        return [
            float(value) * factor if is_length else float(value)
            for value, is_length in zip(values, in_angstrom, strict=True)
        ]

    converted = {
        **kwargs,
        "units": [
            SHOWN_LENGTH_UNIT if is_length else unit
            for unit, is_length in zip(units, in_angstrom, strict=True)
        ],
    }
    for key in ("scale", "translate"):
        if key in kwargs:
            converted[key] = shown(kwargs[key])
    if kind == "shapes":
        data = [np.asarray(vertices) * np.where(in_angstrom, factor, 1.0) for vertices in data]
        if "edge_width" in kwargs and all(in_angstrom):
            converted["edge_width"] = kwargs["edge_width"] * factor
    return data, converted, kind


def _notify(error: MRCZFormatError | RemoteFileError) -> None:
    """Show our one-line reason in napari's notifications.

    napari reports a reader's exception only as its own "Tried to read ... with
    plugin napari-mrcz" (our text comes last, behind a traceback), so the reason is
    shown first, as an error notification of its own; the exception still goes to
    napari (and to scripts calling ``viewer.open``). The file is named without its
    folder, which comes last, so that the reason is not cut off in the toast.
    """
    if "napari" not in sys.modules:
        return
    try:
        from napari.utils.notifications import show_error

        show_error(notification_text(error))
    except Exception as failure:  # a napari without notifications: the exception says it
        logger.debug("could not show the reader's error: %s", failure)


def notification_text(error: MRCZFormatError | RemoteFileError) -> str:
    """``'<file name>: <problem> (in <folder>)'``: the reason before the folder."""
    if error.path is None:
        return error.problem
    if is_url(error.path):
        return f"{error.path}: {error.problem}"
    folder, name = os.path.split(os.path.abspath(error.path))
    return f"{name}: {error.problem} (in {folder})"


def _read_mrc_file(path: str) -> list[LayerData]:
    """The layers of one MRC file, decompressing a ``.gz``/``.bz2`` one first.

    The temporary copy of a compressed file goes once its data is read, or, for
    lazily read data, once napari lets go of the layer data.
    """
    if not is_compressed(path) or is_url(path):  # an address: LazyMRC says what to do
        return _read_mrc_layers(path)
    source = DecompressedFile(path)
    try:
        with source.original_in_errors():
            layers = _read_mrc_layers(source.path)
    except BaseException:
        source.close()
        raise
    local_name = os.path.basename(source.path)
    for _, kwargs, _ in layers:
        names = kwargs["name"]
        renamed = [
            os.path.basename(path) + name.removeprefix(local_name)
            for name in ([names] if isinstance(names, str) else names)
        ]
        kwargs["name"] = renamed[0] if isinstance(names, str) else renamed
        kwargs["metadata"]["path"] = path
    lazy = [data for data, _, _ in layers if not isinstance(data, np.ndarray)]
    remaining = len(lazy)

    def release() -> None:
        """Delete the copy once napari has let go of every lazy layer data."""
        nonlocal remaining
        remaining -= 1
        if remaining <= 0:
            source.close()

    for data in lazy:
        weakref.finalize(data, release)
    if not lazy:
        source.close()
    return layers


def _read_mrc_stack(paths: list[str]) -> list[LayerData]:
    """Files of one shape as one layer with a leading axis of files.

    Stacked in memory when small, lazily (:class:`~napari_mrcz.mrc.stack.LazyStack`)
    when together above :data:`LAZY_THRESHOLD_BYTES`. The first file gives the
    layer's scale, translate, contrast and metadata. Files that are not one plain
    image layer each (complex data, python-mrcz frame lists, maps whose axes are
    permuted for display) are opened one layer per file instead.
    """
    shown = [redact(path) if is_url(path) else path for path in paths]
    stack = open_stack(paths)
    first_file = stack.members[0]
    try:
        first = _read_mrc_layers(first_file.layout.path)  # the temporary copy, if any
    except MRCZFormatError as error:
        stack.close()
        raise MRCZFormatError(first_file.path, error.problem) from error
    except BaseException:
        stack.close()
        raise
    _, kwargs, _ = first[0]
    layouts = [member.layout for member in stack.members]
    permuted = any(layout.display_order != (0, 1, 2) for layout in layouts)
    same_pixels = all(
        np.allclose(layout.pixelsize, layouts[0].pixelsize, rtol=1e-4) for layout in layouts
    )
    if (
        len(first) != 1
        or "channel_axis" in kwargs
        or permuted
        or not same_pixels
        or np.shape(first[0][0]) != stack.shape[1:]
    ):
        stack.close()
        warnings.warn(
            f"{shown[0]}: these files differ in pixel size or axis order, or are "
            "not one plain image each: opened as one layer per file",
            MRCZWarning,
            stacklevel=2,
        )
        return [layer for one in paths for layer in _read_mrc_file(one)]
    data: Any = stack
    if stack.nbytes <= LAZY_THRESHOLD_BYTES:
        data = np.asarray(stack)
        stack.close()
    units = kwargs["units"]
    kwargs.update(
        name=f"{_file_name(shown[0])} (+{len(paths) - 1})",
        scale=[1.0, *kwargs["scale"]],
        translate=[0.0, *kwargs["translate"]],
        units=units if isinstance(units, str) else ["pixel", *units],
        metadata={**kwargs["metadata"], "path": shown[0], "paths": shown},
    )
    return [(data, kwargs, "image")]


def _file_name(path: str) -> str:
    """The file name in a path, or in an address (its query string left out)."""
    return os.path.basename(urllib.parse.urlsplit(path).path if is_url(path) else path)


def _json_safe(value: Any) -> Any:
    """Copy ``value`` into plain Python types (numpy arrays become lists)."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def y_axis_up() -> bool:
    """The plugin setting "Show the y axis pointing up" (on unless the user turned it off)."""
    if "napari" not in sys.modules:
        return True
    try:
        from napari.settings import get_plugin_settings

        return bool(get_plugin_settings("napari-mrcz").reader.y_axis_up)
    except Exception as error:  # no settings registered (scripts, tests): the default
        logger.debug("plugin settings unavailable: %s", error)
        return True


def y_up_affine(ndim: int) -> np.ndarray:
    """The affine that shows a layer's y axis pointing up: a mirror of y alone.

    MRC images start at the bottom-left and IMOD shows y up; napari's camera shows
    data rows top-down, as DigitalMicrograph does. Flipping each MRC layer's own y
    (not the shared camera) shows every file in its program's convention, side by
    side. Scale and translate keep the pixel size and origin (positive, as in the
    file); with napari's default camera, an MRC volume keeps its handedness in 3D.
    """
    affine = np.eye(ndim + 1)
    affine[ndim - 2, ndim - 2] = -1.0
    return affine


def read_address(url: str, storage_options: dict | None = None) -> list[LayerData]:
    """The layer data of an MRC or MRCZ file on a server, read lazily.

    What :func:`read_layers` gives for an address, with fsspec's ``storage_options``
    (credentials, ``anon``); fetches the header, no slice yet.

    Raises
    ------
    MRCZFormatError, RemoteFileError
        If the file is damaged or cannot be read.
    """
    identify(url)  # refuses DM files by name
    return [_lengths_in_shown_unit(layer) for layer in _read_mrc_layers(url, storage_options)]


def _read_mrc_layers(path: str, storage_options: dict | None = None) -> list[LayerData]:
    data: Any
    if is_url(path):  # read slice by slice, as they are shown
        data = LazyMRC(path, storage_options=storage_options)
        layout = data.layout
    else:
        layout = read_layout(path)
        lazy = layout.data_nbytes > LAZY_THRESHOLD_BYTES and layout.slices == 0
        with warnings.catch_warnings():
            # The header was read (and its oddities reported) just above: once is enough.
            warnings.simplefilter("ignore")
            data = LazyMRC(path) if lazy else read_array(path, slices=0)[0]
    meta = layout_meta(layout, with_json=False)
    json_meta = layout.json_meta or {}
    nz = layout.nz
    rgb = bool(meta.get("rgb", False))
    names = ("y", "x") if layout.is_image else ("z", "y", "x")
    recorded = _non_length_axes(json_meta, names)
    unusable = [axis for axis in layout.unusable_pixel_axes if axis not in recorded]
    if unusable:
        warnings.warn(
            f"{layout.path}: no usable pixel size along {', '.join(unusable)} "
            "in the header: shown as 1 Å per pixel there",
            MRCZWarning,
            stacklevel=2,
        )
    order = layout.display_order
    scale = [float(layout.usable_pixelsize[axis]) for axis in order]
    translate = [float(layout.origin[axis]) for axis in order]
    if order != (0, 1, 2):
        # EMDB maps with MAPC/MAPR/MAPS other than 1, 2, 3: show (z, y, x), no copy.
        if layout.is_image:
            data = data.T
        elif isinstance(data, np.ndarray):
            data = data.transpose(order)
        else:
            data = LazyView(data, order=order)
    if layout.is_image:
        scale, translate = scale[1:], translate[1:]
    units: str | list[str] = "angstrom"
    if recorded:  # axes saved from a layer in 1/nm, eV, ...: their calibration back
        units = [recorded[name]["unit"] if name in recorded else "angstrom" for name in names]
        for number, name in enumerate(names):
            if name in recorded:
                scale[number] = recorded[name]["scale"]
                translate[number] = recorded[name]["offset"]
    name = _file_name(layout.path)
    metadata = {
        "path": layout.path,
        "format": "MRCZ" if layout.compressor else "MRC",
        "header": _json_safe(meta),
        "json_meta": _json_safe(json_meta),
        "formalities_missed": layout.formalities_missed,
    }
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": scale,
        "translate": translate,
        "units": units,
        "metadata": metadata,
        "rgb": rgb,
    }
    if y_axis_up() and ROWS_TOP_DOWN_LABEL not in layout.labels:
        kwargs["affine"] = y_up_affine(len(scale))
    if rgb:
        return [(data, kwargs, "image")]
    kwargs["colormap"] = "gray"
    if layout.dtype.kind == "c":
        return _complex_layers(data, kwargs)
    if _is_line_scan(data, kwargs):  # saved from a DM line scan: shown as it was
        return [_line_scan_layer(np.asarray(data), kwargs)]
    limits = image_contrast_limits(data, layout.header_contrast_limits)
    if limits is not None:
        kwargs["contrast_limits"] = limits
    if layout.slices > 0 and not is_url(path):  # a server's file stays lazy: one stack
        frames = np.asarray(data).reshape(nz // layout.slices, layout.slices, *layout.shape[1:])
        kwargs["channel_axis"] = 1
        kwargs["name"] = [f"{name} [{channel}]" for channel in range(layout.slices)]
        kwargs["scale"] = [scale[0] * layout.slices, *scale[1:]]
        kwargs["translate"] = translate
        return [(frames, kwargs, "image")]
    return [(data, kwargs, "image")]


def _non_length_axes(json_meta: dict, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The calibrations :data:`NON_LENGTH_AXES_KEY` records for the axes ``names``.

    Only well-formed entries whose unit napari (pint) understands; others are ignored
    (the axis then shows in Angstrom, as the header says).
    """
    records = json_meta.get(NON_LENGTH_AXES_KEY)
    if not isinstance(records, dict):
        return {}
    try:
        import pint

        registry = pint.get_application_registry()
    except Exception:  # no pint: no napari either, nothing shows the unit
        return {}
    usable = {}
    for name, record in records.items():
        if name not in names or not isinstance(record, dict):
            continue
        scale, offset, unit = record.get("scale"), record.get("offset", 0.0), record.get("unit")
        if not all(isinstance(value, (int, float)) for value in (scale, offset)):
            continue
        try:
            registry.Unit(str(unit))
        except Exception:
            continue
        if 0 < scale < math.inf and math.isfinite(offset):
            usable[name] = {"scale": float(scale), "offset": float(offset), "unit": str(unit)}
    return usable


def image_contrast_limits(
    data: Any, recorded: tuple[float, float] | None = None
) -> tuple[float, float] | None:
    """The contrast limits of an image layer, one rule whatever file the data came from.

    The file's recorded min..max (DMIN, DMAX), else the min..max of a sample (the data
    in memory, or the middle slice of lazy data); percentiles instead for peaked data
    (see :data:`PEAKED_RANGE_RATIO`). None for napari's own choice (booleans, no
    finite value).
    """
    if np.dtype(data.dtype).kind not in "iuf":
        return recorded
    if isinstance(data, np.ndarray) or data.ndim < 3:
        sample = np.asarray(data)
    else:
        sample = np.asarray(data[data.shape[0] // 2])
    finite = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample.ravel()
    if not finite.size:
        return recorded
    if recorded is None:
        low, high = float(finite.min()), float(finite.max())
        recorded = (low, high if high > low else low + 1.0)
    shown = _display_limits(finite)
    if shown is not None and (shown[1] - shown[0]) * PEAKED_RANGE_RATIO < (
        recorded[1] - recorded[0]
    ):
        return shown
    return recorded


def _display_limits(values: Any) -> tuple[float, float] | None:
    """Contrast limits from :data:`DISPLAY_PERCENTILES` of (a sample of) ``values``."""
    flat = np.asarray(values).ravel()
    flat = flat[:: max(1, flat.size // PERCENTILE_SAMPLE)]
    flat = flat[np.isfinite(flat)]
    if not flat.size:
        return None
    low, high = (float(value) for value in np.percentile(flat, DISPLAY_PERCENTILES))
    return low, high if high > low else low + 1.0


def _complex_layers(data: Any, kwargs: dict) -> list[LayerData]:
    """Complex data: an amplitude layer, shown, and a phase layer, hidden.

    The amplitude's contrast limits are percentiles (:func:`_display_limits`): an
    FFT's central peak is orders of magnitude above the rest, which min..max would
    show black.
    """
    amplitude = {**kwargs, "name": f"{kwargs['name']} amplitude"}
    phase = {
        **kwargs,
        "name": f"{kwargs['name']} phase",
        "visible": False,
        "colormap": "twilight",
        "contrast_limits": (-math.pi, math.pi),
    }
    if isinstance(data, np.ndarray):
        amplitude_data: Any = np.abs(data)
        phase_data: Any = np.angle(data)
        sample = amplitude_data
    else:
        amplitude_data = LazyView(data, np.float32, convert=np.abs)
        phase_data = LazyView(data, np.float32, convert=np.angle)
        sample = amplitude_data[data.shape[0] // 2] if data.ndim == 3 else amplitude_data[...]
    limits = _display_limits(sample)
    if limits is not None:
        amplitude["contrast_limits"] = limits
    return [(amplitude_data, amplitude, "image"), (phase_data, phase, "image")]


def _read_dm_layers(path: str) -> list[LayerData]:
    """One layer per image of a DigitalMicrograph file (the thumbnail left out)."""
    from napari_mrcz.dm.images import read_dm

    layers: list[LayerData] = []
    images = read_dm(path)
    for number, (data, meta) in enumerate(images):
        name = os.path.basename(path)
        if len(images) > 1:
            name = f"{name} [{meta.get('name') or number}]"
        rgb = bool(meta.get("rgb", False))
        scale = [float(value) for value in meta["scale_angstrom"]]
        translate = [float(value) for value in meta["offset_angstrom"]]
        units = list(meta["units_napari"])
        kwargs: dict[str, Any] = {
            "name": name,
            "scale": _usable_dm_scale(scale, path),
            "translate": translate,
            "units": units,
            "rgb": rgb,
            "metadata": {
                "path": path,
                "format": "DM",
                "header": _json_safe({key: value for key, value in meta.items() if key != "tags"}),
                DM_TAGS_KEY: _json_safe(meta.get("tags", {})),
            },
        }
        if not rgb:
            kwargs["colormap"] = "gray"
        if data.ndim - rgb == 1 and not np.iscomplexobj(data):
            layers.extend(_spectrum_layers(np.asarray(data), kwargs))
        elif _is_line_scan(data, kwargs):
            layers.append(_line_scan_layer(data, kwargs))
        elif np.iscomplexobj(data):
            layers.extend(_complex_layers(data, kwargs))
        else:
            limits = None if rgb else image_contrast_limits(data)
            if limits is not None:
                kwargs["contrast_limits"] = limits
            layers.append((data, kwargs, "image"))
    return layers


def _spectrum_layers(values: np.ndarray, kwargs: dict) -> list[LayerData]:
    """A spectrum (EELS, CL) as DigitalMicrograph shows it: a line plot, over a strip.

    napari draws images of two axes or more, and has no plot layer. The data stays an
    Image layer (inspected and saved like any other, at its own channel width): a
    strip shown (by its affine) :data:`SPECTRUM_STRIP_HEIGHT` of its length tall,
    both axes in the spectrum's unit (no "mismatched dimensionality" for the scale
    bar), contrast from percentiles. Above
    it a Shapes layer draws the values as a line, :data:`SPECTRUM_PLOT_HEIGHT` of the
    length high, along the same energy axis.
    """
    (size,), (offset,), (unit,) = kwargs["scale"], kwargs["translate"], kwargs["units"]
    length = size * len(values)
    strip = length * SPECTRUM_STRIP_HEIGHT
    image = {
        **kwargs,
        "scale": [size, size],
        "translate": [0.0, offset],
        "units": [unit, unit],
        "affine": np.diag([strip / size, 1.0, 1.0]),  # taller on screen only
    }
    limits = _display_limits(values)
    if limits is not None:
        image["contrast_limits"] = limits
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    heights = (np.nan_to_num(values.astype(np.float64), nan=low) - low) / ((high - low) or 1.0)
    baseline = -strip  # just above the strip, which spans -strip/2 .. strip/2
    path = np.column_stack(
        [
            baseline - heights * length * SPECTRUM_PLOT_HEIGHT,
            offset + size * np.arange(len(values)),
        ]
    )
    plot = {
        "name": f"{kwargs['name']} plot",
        "shape_type": "path",
        "edge_color": "yellow",
        "edge_width": length / 500,
        "units": [unit, unit],
        "metadata": {
            "path": kwargs["metadata"]["path"],
            "format": "DM",
            "plot_of": kwargs["name"],
        },
    }
    return [(values[np.newaxis], image, "image"), ([path], plot, "shapes")]


def _is_line_scan(data: Any, kwargs: dict) -> bool:
    """True for a 2D image of spectra along a line: rows a length, columns an energy
    or another unit that is no length (not an FFT: both its axes are 1/length)."""
    units = kwargs.get("units")
    if data.ndim != 2 or kwargs.get("rgb") or np.dtype(data.dtype).kind == "c":
        return False
    if isinstance(units, str) or not units or len(units) != 2:
        return False
    try:
        rows, columns = (pint.Unit(unit).dimensionality for unit in units)
    except (pint.PintError, ValueError, TypeError):
        return False
    length = pint.Unit("angstrom").dimensionality
    return rows == length and columns not in (length, pint.Unit("1/angstrom").dimensionality)


def _line_scan_layer(data: Any, kwargs: dict) -> LayerData:
    """A line scan (EDS, EELS) as DigitalMicrograph shows it: an image filling the view.

    Rows are positions (a length), columns channels (keV, eV). Shown in the file's
    calibration, the image is a sliver (100 positions of 2.5 nm against 41 keV), and
    napari's scale bar cannot mix a length and an energy. So both axes are shown in
    the spectrum's unit, the rows :data:`LINE_SCAN_ASPECT` of the spectrum's length
    tall, and the scale bar measures energy along x. The file's calibration is kept
    under :data:`SHOWN_CALIBRATION_KEY`: the inspector, the save panel and the
    writers use it while the layer keeps the calibration it was shown in.
    """
    (position, channel), (position_offset, channel_offset) = kwargs["scale"], kwargs["translate"]
    unit = kwargs["units"][1]
    rows, columns = data.shape
    shown_position = channel * columns * LINE_SCAN_ASPECT / rows
    shown = {
        "scale": [shown_position, channel],
        "translate": [position_offset / position * shown_position, channel_offset],
        "units": [unit, unit],
    }
    recorded = {
        "scale": [position, channel],
        "translate": [position_offset, channel_offset],
        "units": list(kwargs["units"]),
    }
    layer = {
        **kwargs,
        **shown,
        "metadata": {
            **kwargs["metadata"],
            SHOWN_CALIBRATION_KEY: {"shown": shown, "file": recorded},
        },
    }
    limits = _display_limits(data)
    if limits is not None:
        layer["contrast_limits"] = limits
    return data, layer, "image"


def _usable_dm_scale(scale: list[float], path: str) -> list[float]:
    """A DM image's scale with 1 where DM recorded no usable calibration (with a warning)."""
    usable = [size if 0 < size < math.inf else 1.0 for size in scale]
    if usable != scale:
        warnings.warn(
            f"{path}: no usable calibration on some axes: shown as 1 per pixel there",
            MRCZWarning,
            stacklevel=3,
        )
    return usable
