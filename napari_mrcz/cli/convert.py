"""``mrcz compress``, ``decompress`` and ``convert``: planning the run, then running it."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import TextIO

from napari_mrcz.cli.batch import (
    EXIT_USAGE,
    Settings,
    Task,
    plan,
    run_batch,
)
from napari_mrcz.cli.cluster import on_cluster, run_on_cluster
from napari_mrcz.cli.ungain import gain_settings
from napari_mrcz.formats import image_count
from napari_mrcz.suffixes import COMPRESSED_SUFFIX, PLAIN_SUFFIXES, is_mrcz, is_readable
from napari_mrcz.threads import default_threads
from napari_mrcz.tools.convert import numbered_targets


def _settings(args: argparse.Namespace, compressor: str | None) -> Settings:
    jobs = getattr(args, "jobs", None) or 1
    if args.threads > 0:
        threads = args.threads
    elif on_cluster(args):
        threads = 1  # dask's way: a worker runs one file per thread
    else:
        threads = max(1, default_threads() // jobs)
    delete_source = getattr(args, "delete_source", False)
    return Settings(
        compressor=compressor,
        clevel=getattr(args, "level", 1),
        threads=threads,
        verify=args.verify or delete_source,
        delete_source=delete_source,
        overwrite=args.overwrite,
        keep_json=getattr(args, "keep_json", False),
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
        wanted, note = _compress_picks, "already MRCZ: compress leaves it as it is"
    else:
        compressor, suffix = None, args.suffix
        wanted, note = is_mrcz, "not MRCZ: decompress takes the .mrcz files of a folder"
    try:
        tasks = plan(args.inputs, args.output, suffix, wanted, note)
        settings = _settings(args, compressor)
    except (ValueError, OSError) as error:  # OSError: an unreadable --gain-reference
        print(f"mrcz {args.command}: {error}", file=err)
        return EXIT_USAGE
    return _run(args, tasks, settings, _show_progress(args, err), out, err)


def _run(
    args: argparse.Namespace,
    tasks: list[Task],
    settings: Settings,
    show_progress: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run the planned tasks here, or on the cluster the command line names."""
    quiet = getattr(args, "quiet", True)
    if on_cluster(args):
        return run_on_cluster(args, tasks, settings, show_progress, quiet, out, err)
    jobs = getattr(args, "jobs", None) or 1
    return run_batch(tasks, settings, jobs, show_progress, quiet, out, err)


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
        settings = dataclasses.replace(_settings(args, compressor), existing_fails=True)
    except (ValueError, OSError) as error:  # an unreadable --gain-reference
        print(f"mrcz convert: {error}", file=err)
        return EXIT_USAGE
    return _run(args, [task], settings, err.isatty(), out, err)
