"""``mrcz compress``, ``decompress`` and ``convert``: planning the run, then running it."""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from napari_mrcz.cli.batch import (
    EXIT_USAGE,
    Settings,
    Task,
    plan,
    run_batch,
)
from napari_mrcz.cli.ungain import gain_settings
from napari_mrcz.suffixes import COMPRESSED_SUFFIX, PLAIN_SUFFIXES, is_mrcz, is_readable
from napari_mrcz.threads import default_threads
from napari_mrcz.tools.transcode import image_count, numbered_targets


def _settings(args: argparse.Namespace, compressor: str | None) -> Settings:
    jobs = max(1, getattr(args, "jobs", 1))
    threads = args.threads if args.threads > 0 else max(1, default_threads() // jobs)
    delete_source = getattr(args, "delete_source", False)
    return Settings(
        compressor=compressor,
        clevel=getattr(args, "level", 1),
        threads=threads,
        verify=args.verify or delete_source,
        delete_source=delete_source,
        overwrite=args.overwrite,
        gain=gain_settings(args, compressor),
    )


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
        settings = _settings(args, compressor)
    except (ValueError, OSError) as error:  # OSError: an unreadable --gain-reference
        print(f"mrcz {args.command}: {error}", file=err)
        return EXIT_USAGE
    return run_batch(
        tasks,
        settings,
        args.jobs,
        _show_progress(args, err),
        args.quiet,
        out,
        err,
    )


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
        print(
            f"mrcz convert: {args.output}: the name must end in {COMPRESSED_SUFFIX} or one "
            f"of {', '.join(PLAIN_SUFFIXES)}",
            file=err,
        )
        return EXIT_USAGE
    targets = numbered_targets(args.output, image_count(args.input))
    if os.path.realpath(args.input) in map(os.path.realpath, targets):
        print(f"mrcz convert: {args.output} is the input itself", file=err)
        return EXIT_USAGE
    task = Task(args.input, targets)
    try:
        settings = _settings(args, compressor)
    except (ValueError, OSError) as error:  # an unreadable --gain-reference
        print(f"mrcz convert: {error}", file=err)
        return EXIT_USAGE
    return run_batch([task], settings, 1, err.isatty(), True, out, err)
