"""Printing results for scripts: valid JSON, without NaN, whatever the file names."""

from __future__ import annotations

import json
import math
from typing import Any, TextIO


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities (which JSON lacks) as None, and text made valid.

    A file name that is not UTF-8 (``lat\\xe9.mrc`` on a Latin-1 file system) reaches
    Python with its bytes as lone surrogates, which no JSON reader accepts: they are
    written as ``\\xe9`` instead; other lone surrogates (in JSON meta keys) as their
    code point (``\\ud83d``).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate outside U+DC80..U+DCFF
            raw = value.encode("utf-8", "backslashreplace")
        return raw.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {json_safe(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def print_json(results: list[dict], out: TextIO) -> None:
    json.dump(json_safe(results), out, indent=2, ensure_ascii=False, allow_nan=False, default=str)
    print(file=out)
