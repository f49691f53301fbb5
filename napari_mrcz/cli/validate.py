"""``mrcz validate``: MRC2014 and MRCZ checks, one verdict per file."""

from __future__ import annotations

import argparse
from typing import TextIO

from napari_mrcz.cli.batch import (
    EXIT_FAILED,
    EXIT_OK,
    error_text,
)
from napari_mrcz.cli.output import print_json
from napari_mrcz.tools.validate import validate_file


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
