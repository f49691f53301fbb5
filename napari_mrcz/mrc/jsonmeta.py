"""The JSON extended header of MRCZ files."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from napari_mrcz.errors import MRCZFormatError


def _serialize_default(value: Any) -> Any:
    """Turn what :mod:`json` cannot encode into what it can, as python-mrcz does.

    Objects with a ``serialize()`` method use it; numpy scalars and arrays become
    numbers and lists; an Enum member becomes ``'Enum.<Class>.<name>'``.
    """
    if hasattr(value, "serialize"):
        return value.serialize()
    if hasattr(value, "__array_interface__"):
        return value.tolist()
    if isinstance(value, Enum):
        return f"Enum.{value.__class__.__name__}.{value.name}"
    raise TypeError(f"Unhandled type for JSON serialization: {type(value)}")


def encode_meta(meta: dict) -> bytes:
    """Encode ``meta`` as the UTF-8 JSON that goes into the extended header.

    Raises
    ------
    TypeError
        If a value cannot be expressed in JSON.
    """
    return json.dumps(meta, default=_serialize_default).encode("utf-8")


def decode_meta(path: str, raw: bytes) -> dict:
    """Decode the JSON extended header of ``path``.

    Raises
    ------
    MRCZFormatError
        If it is not UTF-8 JSON holding an object.
    """
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise MRCZFormatError(path, f"the JSON extended header is invalid: {error}") from None
    if not isinstance(meta, dict):
        raise MRCZFormatError(path, "the JSON extended header is not a JSON object")
    return meta
