"""Printing results for scripts: JSON without NaN."""

from __future__ import annotations

import json
import math
from typing import Any, TextIO


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities (which JSON lacks) as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def print_json(results: list[dict], out: TextIO) -> None:
    json.dump(json_safe(results), out, indent=2, ensure_ascii=False, allow_nan=False, default=str)
    print(file=out)
