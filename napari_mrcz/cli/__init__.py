"""The ``mrcz`` command: inspect, validate, compress, decompress and convert files.

For facilities that archive many files without opening a GUI::

    mrcz info movie.mrcz                       # header summary (--json for scripts)
    mrcz validate *.mrc                        # MRC2014 + MRCZ checks; exit 1 on problems
    mrcz compress raw/ -o archive/ --jobs 2 --verify --delete-source
    mrcz decompress archive/ -o restored/
    mrcz convert image.dm4 image.mrcz          # pixel size and DM tags kept

Needs neither napari nor Qt. Exit status: 0 success, 1 when a file failed (or did
not validate), 2 for wrong arguments, 128 + the signal when interrupted (130 for
Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from ..__about__ import __version__
from ..codecs import AVAILABLE_CODECS
from ..header import stats_determined
from ..suffixes import COMPRESSED_SUFFIX, PLAIN_SUFFIXES, is_mrcz, is_readable
from ..summary import describe
from ..threads import default_threads
from ..transcode import image_count, numbered_targets
from ..validate import validate_file
from ._batch import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    FILE_ERRORS,
    Settings,
    Task,
    error_text,
    find_inputs,
    human_size,
    plan,
    run_batch,
)

_CONVERT_EPILOG = """\
MRC and MRCZ inputs keep their header (axis order, origin, labels, microscope values)
and extended header; DM inputs keep their pixel size, origin, voltage and Cs, with all
their tags as JSON meta ('dm_tags'). A DM file with several images gives one output per
image, numbered name_0, name_1, ... Outputs are written under a temporary name and
renamed when complete: an interrupted run leaves no partial file.
"""
_BATCH_EPILOG = _CONVERT_EPILOG + """\
--delete-source keeps a source with bytes after its data, DM tag arrays too large for
JSON meta, or float64 data (stored as float32), and says so in the summary.
"""


def _count(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _add_conversion_options(parser: argparse.ArgumentParser, codec: bool,
                            threads_help: str) -> None:
    if codec:
        parser.add_argument("--codec", default="zstd", choices=sorted(AVAILABLE_CODECS),
                            help="blosc codec (default: zstd)")
        parser.add_argument("--level", type=int, default=1, choices=range(1, 10),
                            metavar="1-9", help="compression level (default: 1, fastest)")
    parser.add_argument("--threads", type=int, default=0, metavar="N", help=threads_help)
    parser.add_argument("--verify", action="store_true",
                        help="read each output back and compare it with its source")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (default: skip them)")


def _add_batch_options(parser: argparse.ArgumentParser, codec: bool) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IN",
                        help="files, or folders searched recursively")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="output folder (created if missing; folder inputs keep "
                             "their tree under it)")
    _add_conversion_options(parser, codec, "slices encoded in parallel per file (default: "
                                           "all cores, shared among the jobs)")
    parser.add_argument("--jobs", type=_count, default=1, metavar="N",
                        help="files converted at the same time (default: 1)")
    parser.add_argument("--delete-source", action="store_true",
                        help="delete each source once its output is verified and holds "
                             "all of it (implies --verify; see below)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show the progress bar even when not on a terminal")
    progress.add_argument("--no-progress", dest="progress", action="store_false",
                          help="never show the progress bar")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no line per file while running (the summary is printed)")


def build_parser() -> argparse.ArgumentParser:
    """The ``mrcz`` argument parser with its five subcommands."""
    parser = argparse.ArgumentParser(
        prog="mrcz",
        description="Inspect, validate, compress, decompress and convert MRC, MRCZ and DM files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'mrcz COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"napari-mrcz {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser(
        "info", help="summarise MRC, MRCZ and DM files",
        description="Header summary of each file: dimensions, mode and dtype, pixel size, "
                    "codec and level, packed size and ratio, JSON meta keys, DM tag "
                    "highlights. Reads headers only (a .gz or .bz2 file is decompressed to a "
                    "temporary copy first).")
    info.add_argument("files", nargs="+", metavar="FILE",
                      help="files, or folders searched recursively")
    info.add_argument("--json", action="store_true", help="print one JSON list for scripts")

    validate = commands.add_parser(
        "validate", help="check files against MRC2014 and MRCZ",
        description="MRC2014 checks as mrcfile.validate makes them, plus MRCZ checks "
                    "(blosc chunk headers consistent with the file, sizes, statistics). "
                    "Exit status 1 if any file has a problem.")
    validate.add_argument("files", nargs="+", metavar="FILE",
                          help="files, or folders searched recursively")
    validate.add_argument("--no-stats", action="store_true",
                          help="check headers and sizes only; do not read the data")
    validate.add_argument("--strict", action="store_true",
                          help="count warnings (such as EXTTYP 'json') as problems")
    validate.add_argument("--json", action="store_true", help="print one JSON list for scripts")

    compress = commands.add_parser(
        "compress", help="MRC, MRCZ or DM files to MRCZ",
        description="Compress MRC and DM files (folders searched recursively) into "
                    "MRCZ files in DIR.", epilog=_BATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_batch_options(compress, codec=True)

    decompress = commands.add_parser(
        "decompress", help="MRCZ files (or any file named) to plain MRC",
        description="Write plain MRC2014 files (readable by every MRC program) into DIR.",
        epilog=_BATCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_batch_options(decompress, codec=False)
    decompress.add_argument("--suffix", default=".mrc", choices=PLAIN_SUFFIXES,
                            help="suffix of the outputs (default: .mrc)")

    convert = commands.add_parser(
        "convert", help="one file to MRCZ or MRC, the format chosen by OUT's suffix",
        description=f"Convert IN (MRC, MRCZ, DM3, DM4) to OUT: compressed MRCZ for "
                    f"'{COMPRESSED_SUFFIX}', plain MRC for {', '.join(PLAIN_SUFFIXES)}.",
        epilog=_CONVERT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_argument("input", metavar="IN")
    convert.add_argument("output", metavar="OUT")
    _add_conversion_options(convert, True, "slices encoded in parallel (default: all cores)")
    return parser


def _files(given: Sequence[str]) -> list[str]:
    """Named files as they are; folders walked for the files we read.

    Raises
    ------
    ValueError
        If there is no file at all (an empty folder).
    """
    found = [path for path, _ in find_inputs(given, is_readable)]
    if not found:
        raise ValueError("no MRC, MRCZ or DM files found")
    return found


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities (which JSON lacks) as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _print_json(results: list[dict], out: TextIO) -> None:
    json.dump(_json_safe(results), out, indent=2, ensure_ascii=False, allow_nan=False,
              default=str)
    print(file=out)


def _numbers(values: Sequence[float]) -> str:
    return " x ".join(f"{value:g}" for value in values)


def _statistics_text(stats: dict[str, float]) -> str:
    """The header statistics, with MRC2014's "not determined" markers said in words."""
    known = stats_determined(stats["min"], stats["max"], stats["mean"], stats["rms"])
    if not any(known.values()):
        return "not determined"
    return ", ".join(f"{name} {stats[name]:g}" if is_known else f"{name} not determined"
                     for name, is_known in known.items())


def info_text(summary: dict[str, Any]) -> str:
    """The human-readable form of :func:`napari_mrcz.summary.describe`."""
    lines = [f"{summary['path']}  ({summary['format']}, {human_size(summary['file_bytes'])})"]
    if "images" in summary:
        for number, image in enumerate(summary["images"]):
            axes = ", ".join("xyz"[: len(image["shape"])])
            scales = ", ".join(f"{axis['scale']:g} {axis['units'] or 'px'}"
                               for axis in image["calibration"][::-1])
            lines.append(f"  image {number}: {image['name'] or '(unnamed)'}  "
                         f"{_numbers(image['shape'][::-1])} ({axes})  {image['dtype']} "
                         f"({image['data_type']})")
            lines.append(f"    pixel size: {scales} ({axes})")
            for key, value in image["highlights"].items():
                lines.append(f"    {key}: {value}")
        return "\n".join(lines)
    nz, ny, nx = summary["shape"]
    codec = summary["codec"]
    level = summary["level"]
    lines += [
        f"  dimensions: {nx} x {ny} x {nz} (x, y, z)"
        + (f", {summary['slices_per_frame']} slices per frame"
           if summary["slices_per_frame"] else ""),
        f"  mode: {summary['mode']} ({summary['dtype']}, {summary['byte_order']} endian)",
        "  pixel size: " + _numbers(summary["pixel_size_angstrom"][::-1]) + " Å (x, y, z)",
    ]
    if codec:
        level_text = f"level {level}" if level is not None else "level not recorded"
        packed, data = human_size(summary["packed_bytes"]), human_size(summary["data_bytes"])
        lines.append(f"  codec: blosc {codec}, {level_text}; packed {packed} of {data} "
                     f"(ratio {summary['ratio']:.2f})")
    else:
        lines.append(f"  codec: none (plain MRC), data {human_size(summary['data_bytes'])}")
    lines.append("  statistics: " + _statistics_text(summary["statistics"]))
    if summary["voltage_kv"] or summary["cs_mm"]:
        lines.append(f"  microscope: {summary['voltage_kv']:g} kV, Cs {summary['cs_mm']:g} mm")
    if any(summary["origin_angstrom"]):
        lines.append("  origin: " + _numbers(summary["origin_angstrom"]) + " Å (x, y, z)")
    if summary["axis_order"] != [1, 2, 3]:
        lines.append(f"  axis order (MAPC, MAPR, MAPS): {summary['axis_order']}")
    extended = summary["extended_header"]
    if extended["bytes"]:
        lines.append(f"  extended header: {extended['type'] or '(no type)'}, "
                     f"{human_size(extended['bytes'])}")
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
            print(f"{path}: {error_text(error, path)}", file=err)
            summaries.append({"path": path, "error": str(error)})
            status = EXIT_FAILED
            continue
        summaries.append(summary)
        if not args.json:
            print(info_text(summary), file=out)
    if args.json:
        _print_json(summaries, out)
    return status


def run_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``mrcz validate`` on ``args.files`` (folders already walked)."""
    results, status = [], EXIT_OK
    for path in args.files:
        try:
            findings = validate_file(path, check_stats=not args.no_stats)
        except OSError as error:
            print(f"{path}: {error_text(error, path)}", file=err)
            results.append({"path": path, "valid": False, "error": str(error)})
            status = EXIT_FAILED
            continue
        failing = [finding for finding in findings
                   if finding.severity == "problem" or args.strict]
        valid = not failing
        status = status if valid else EXIT_FAILED
        results.append({"path": path, "valid": valid,
                        "findings": [{"severity": finding.severity, "check": finding.check,
                                      "message": finding.message} for finding in findings]})
        if not args.json:
            print(f"{'OK' if valid else 'INVALID'}  {path}", file=out)
            for finding in findings:
                print(f"  {finding.severity}: [{finding.check}] {finding.message}", file=out)
    if args.json:
        _print_json(results, out)
    return status


def _settings(args: argparse.Namespace, compressor: str | None) -> Settings:
    jobs = max(1, getattr(args, "jobs", 1))
    threads = args.threads if args.threads > 0 else max(1, default_threads() // jobs)
    delete_source = getattr(args, "delete_source", False)
    return Settings(compressor=compressor, clevel=getattr(args, "level", 1), threads=threads,
                    verify=args.verify or delete_source, delete_source=delete_source,
                    overwrite=args.overwrite)


def _show_progress(args: argparse.Namespace, err: TextIO) -> bool:
    if args.progress is not None:
        return args.progress
    return hasattr(err, "isatty") and err.isatty()


def run_batch_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``mrcz compress`` and ``mrcz decompress``."""
    if args.command == "compress":
        compressor, suffix = args.codec, COMPRESSED_SUFFIX
        wanted = _compress_picks
    else:
        compressor, suffix = None, args.suffix
        wanted = is_mrcz
    try:
        tasks = plan(args.inputs, args.output, suffix, wanted)
    except ValueError as error:
        print(f"mrcz {args.command}: {error}", file=err)
        return EXIT_USAGE
    return run_batch(tasks, _settings(args, compressor), args.jobs, _show_progress(args, err),
                     args.quiet, out, err)


def _compress_picks(path: str) -> bool:
    """Files ``compress`` picks up in a folder: everything we read but MRCZ."""
    return is_readable(path) and not is_mrcz(path)


def run_convert(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``mrcz convert IN OUT``."""
    if is_mrcz(args.output):
        compressor = args.codec
    elif args.output.lower().endswith(PLAIN_SUFFIXES):
        compressor = None
    else:
        print(f"mrcz convert: {args.output}: the name must end in {COMPRESSED_SUFFIX} or one "
              f"of {', '.join(PLAIN_SUFFIXES)}", file=err)
        return EXIT_USAGE
    targets = numbered_targets(args.output, image_count(args.input))
    if os.path.realpath(args.input) in map(os.path.realpath, targets):
        print(f"mrcz convert: {args.output} is the input itself", file=err)
        return EXIT_USAGE
    task = Task(args.input, targets)
    return run_batch([task], _settings(args, compressor), 1, err.isatty(), True, out, err)


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: TextIO | None = None, line: str | None = None) -> None:
    """Warnings about files as one plain line on stderr (no source location)."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mrcz`` command; return its exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    with warnings.catch_warnings():  # restores showwarning for callers of main()
        warnings.showwarning = _show_warning
        return _run(args, sys.stdout, sys.stderr)


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Dispatch to the subcommand; the exit status."""
    commands = {"info": run_info, "validate": run_validate, "compress": run_batch_command,
                "decompress": run_batch_command, "convert": run_convert}
    if args.command in ("info", "validate"):
        try:
            args.files = _files(args.files)
        except ValueError as error:
            print(f"mrcz {args.command}: {error}", file=err)
            return EXIT_USAGE
    try:
        return commands[args.command](args, out, err)
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 128 + signal.SIGINT
    except BrokenPipeError:  # output piped into a command that stopped reading (head)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


def console_main() -> None:
    """Entry point of the ``mrcz`` console script."""
    sys.exit(main())
