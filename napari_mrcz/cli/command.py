"""The ``mrcz`` command's entry: parse the arguments, run the subcommand, exit status."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from tqdm import tqdm

from napari_mrcz.cli.batch import EXIT_FAILED, EXIT_OK, EXIT_USAGE, PassedOver, find_inputs
from napari_mrcz.cli.convert import run_batch_command, run_convert
from napari_mrcz.cli.info import run_info
from napari_mrcz.cli.parser import build_parser
from napari_mrcz.cli.validate import run_validate
from napari_mrcz.remote import is_url
from napari_mrcz.suffixes import is_readable


def _files(given: Sequence[str], err: TextIO) -> tuple[list[str], bool]:
    """Named files as they are; folders walked for the files we read.

    Addresses of files on servers are taken as they are.

    A named folder that holds none of them, a folder that cannot be listed and a
    linked folder walked already are reported on ``err``; the flag returned is True
    if any folder could not be listed (the run then fails).

    Raises
    ------
    ValueError
        If there is no file at all (an empty folder).
    """
    found: list[str] = []
    problems: list[PassedOver] = []
    for one in given:
        if is_url(one):
            found.append(one)
            continue
        files = [path for path, _ in find_inputs([one], is_readable, problems=problems)]
        if not files:
            print(f"{one}: is a folder holding no MRC, MRCZ or DM files", file=err)
        found += files
    for problem in problems:
        print(f"{problem.path}: {problem.status}: {problem.reason}", file=err)
    unlisted = any(problem.status == "failed" for problem in problems)
    if not found and not unlisted:
        raise ValueError(f"no MRC, MRCZ or DM files found in {', '.join(given)}")
    return found, unlisted


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings about files as one plain line on stderr (no source location).

    Written as the progress bar writes its lines: whole, under its lock, with the bar
    cleared and drawn again, so that lines from files converted at once never mix.
    """
    tqdm.write(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mrcz`` command; return its exit status (130 after a Ctrl-C)."""
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
        with warnings.catch_warnings():  # restores showwarning for callers of main()
            warnings.showwarning = _show_warning
            return _run(args, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Dispatch to the subcommand; the exit status."""
    commands = {
        "info": run_info,
        "validate": run_validate,
        "compress": run_batch_command,
        "decompress": run_batch_command,
        "convert": run_convert,
    }
    unlisted = False
    if args.command in ("info", "validate"):
        try:
            args.files, unlisted = _files(args.files, err)
        except ValueError as error:
            print(f"mrcz {args.command}: {error}", file=err)
            return EXIT_USAGE
    try:
        status = commands[args.command](args, out, err)
        return EXIT_FAILED if unlisted and status == EXIT_OK else status
    except BrokenPipeError:  # output piped into a command that stopped reading (head)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
