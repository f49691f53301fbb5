"""``mrcz info``: a header summary of each file, as text or JSON."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, TextIO

from napari_mrcz.cli.batch import EXIT_FAILED, EXIT_OK, FILE_ERRORS, error_text
from napari_mrcz.cli.output import print_json
from napari_mrcz.mrc.header import stats_determined
from napari_mrcz.mrc.jsonmeta import GAIN_KEY
from napari_mrcz.remote import is_url, redact
from napari_mrcz.tools.info import describe
from napari_mrcz.wording import human_size


def _numbers(values: Sequence[float]) -> str:
    return " x ".join(f"{value:g}" for value in values)


def statistics_text(stats: dict[str, float]) -> str:
    """The header statistics, with MRC2014's "not determined" markers said in words."""
    known = stats_determined(stats["min"], stats["max"], stats["mean"], stats["rms"])
    if not any(known.values()):
        return "not determined"
    return ", ".join(
        f"{name} {stats[name]:g}" if is_known else f"{name} not determined"
        for name, is_known in known.items()
    )


def info_text(summary: dict[str, Any]) -> str:
    """The human-readable form of :func:`napari_mrcz.tools.info.describe`."""
    lines = [f"{summary['path']}  ({summary['format']}, {human_size(summary['file_bytes'])})"]
    if "images" in summary:
        for number, image in enumerate(summary["images"]):
            axes = ", ".join("xyz"[: len(image["shape"])])
            scales = ", ".join(
                f"{axis['scale']:g} {axis['units'] or 'px'}" for axis in image["calibration"][::-1]
            )
            lines.append(
                f"  image {number}: {image['name'] or '(unnamed)'}  "
                f"{_numbers(image['shape'][::-1])} ({axes})  {image['dtype']} "
                f"({image['data_type']})"
            )
            lines.append(f"    pixel size: {scales} ({axes})")
            for key, value in image["highlights"].items():
                lines.append(f"    {key}: {value}")
        return "\n".join(lines)
    nz, ny, nx = summary["shape"]
    codec = summary["codec"]
    level = summary["level"]
    lines += [
        f"  dimensions: {nx} x {ny} x {nz} (x, y, z)"
        + (
            f", {summary['slices_per_frame']} slices per frame"
            if summary["slices_per_frame"]
            else ""
        ),
        f"  mode: {summary['mode']} ({summary['dtype']}, {summary['byte_order']} endian)",
        "  pixel size: " + _numbers(summary["pixel_size_angstrom"][::-1]) + " Å (x, y, z)",
    ]
    if codec:
        level_text = f"level {level}" if level is not None else "level not recorded"
        data = human_size(summary["data_bytes"])
        packed = summary["packed_bytes"]
        lines.append(
            f"  codec: blosc {codec}, {level_text}; "
            + (
                f"packed {human_size(packed)} of {data} (ratio {summary['ratio']:.2f})"
                if packed is not None
                else f"{data} of data, packed size not known inside a compressed download"
            )
        )
    else:
        lines.append(f"  codec: none (plain MRC), data {human_size(summary['data_bytes'])}")
    lines.append("  statistics: " + statistics_text(summary["statistics"]))
    gain = summary.get(GAIN_KEY)
    if gain:
        ratio = gain["ratio_to_original"]
        lines.append(
            f"  gain-separated: {summary['dtype']} counts x {gain['gain_file']}, read as "
            f"{gain['original_dtype']} ({human_size(gain['original_bytes'])}"
            + (f", ratio {ratio:.2f} without the gain file)" if ratio else ")")
        )
    if summary["voltage_kv"] or summary["cs_mm"]:
        lines.append(f"  microscope: {summary['voltage_kv']:g} kV, Cs {summary['cs_mm']:g} mm")
    if any(summary["origin_angstrom"]):
        lines.append("  origin: " + _numbers(summary["origin_angstrom"][::-1]) + " Å (x, y, z)")
    if summary["axis_order"] != [1, 2, 3]:
        lines.append(f"  axis order (MAPC, MAPR, MAPS): {summary['axis_order']}")
    extended = summary["extended_header"]
    if extended["bytes"]:
        lines.append(
            f"  extended header: {extended['type'] or '(no type)'}, "
            f"{human_size(extended['bytes'])}"
        )
    if summary["json_meta_keys"]:
        lines.append("  JSON meta keys: " + ", ".join(summary["json_meta_keys"]))
    for label in summary["labels"]:
        lines.append(f"  label: {label}")
    return "\n".join(lines)


def run_info(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``mrcz info`` on ``args.files`` (folders already walked)."""
    summaries, status = [], EXIT_OK
    for path in args.files:
        try:
            summary = describe(path)
        except FILE_ERRORS as error:
            shown = redact(path) if is_url(path) else path
            print(f"{shown}: {error_text(error, shown)}", file=err)
            summaries.append({"path": shown, "error": str(error)})
            status = EXIT_FAILED
            continue
        summaries.append(summary)
        if not args.json:
            print(info_text(summary), file=out)
    if args.json:
        print_json(summaries, out)
    return status
