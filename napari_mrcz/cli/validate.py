"""``mrcz validate``: MRC2014 and MRCZ checks, one verdict per file."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TextIO

from napari_mrcz.cli.batch import (
    EXIT_FAILED,
    EXIT_OK,
    error_text,
)
from napari_mrcz.cli.cluster import (
    ClusterError,
    connected,
    on_cluster,
    scheduler_named,
    validated_on_cluster,
)
from napari_mrcz.cli.output import print_json
from napari_mrcz.remote import is_url, redact
from napari_mrcz.tools.validate import Finding, validate_file


def _validated_here(paths: list[str], check_stats: bool) -> Iterator[list[Finding] | OSError]:
    for path in paths:
        try:
            yield validate_file(path, check_stats=check_stats)
        except OSError as error:
            yield error


def run_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``mrcz validate`` on ``args.files`` (folders already walked), here or on a cluster."""
    if not on_cluster(args):
        return _report(args, _validated_here(args.files, not args.no_stats), out, err)
    try:
        with connected(args) as client:
            verdicts = validated_on_cluster(
                client, scheduler_named(args), args.files, not args.no_stats
            )
            return _report(args, verdicts, out, err)
    except ClusterError as error:
        print(f"mrcz validate: {error}", file=err)
        return EXIT_FAILED


def _report(
    args: argparse.Namespace,
    verdicts: Iterator[list[Finding] | OSError],
    out: TextIO,
    err: TextIO,
) -> int:
    """Print each file's verdict (or the JSON list at the end); the exit status."""
    results, status = [], EXIT_OK
    for given, findings in zip(args.files, verdicts, strict=True):
        path = redact(given) if is_url(given) else given
        if isinstance(findings, OSError):
            error = findings
            print(f"{path}: {error_text(error, path)}", file=err)
            results.append({"path": path, "valid": False, "error": str(error)})
            status = EXIT_FAILED
            continue
        failing = [finding for finding in findings if finding.severity == "problem" or args.strict]
        valid = not failing
        status = status if valid else EXIT_FAILED
        results.append(
            {
                "path": path,
                "valid": valid,
                "findings": [
                    {
                        "severity": finding.severity,
                        "check": finding.check,
                        "message": finding.message,
                    }
                    for finding in findings
                ],
            }
        )
        if not args.json:
            print(f"{'OK' if valid else 'INVALID'}  {path}", file=out)
            for finding in findings:
                print(f"  {finding.severity}: [{finding.check}] {finding.message}", file=out)
    if args.json:
        print_json(results, out)
    return status
