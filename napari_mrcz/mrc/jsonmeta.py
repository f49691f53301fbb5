"""The JSON extended header of MRCZ files."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from napari_mrcz.errors import MRCZFormatError


def _serialize_default(value: Any) -> Any:
    """Turn what :mod:`json` cannot encode into what it can, as python-mrcz does.

    Objects with a ``serialize()`` method use it; numpy scalars and arrays become
    numbers and lists; an Enum member becomes ``'Enum.<Class>.<name>'``. Bytes, such
    as the ``metaId`` (EXTTYP) that ``readMRC`` returns for a file with an FEI or
    SerialEM extended header, become text (python-mrcz raises there, so that its
    ``writeMRC(image, path, meta=meta)`` of such a file's ``readMRC`` fails).
    """
    if hasattr(value, "serialize"):
        return value.serialize()
    if hasattr(value, "__array_interface__"):
        return value.tolist()
    if isinstance(value, Enum):
        return f"Enum.{value.__class__.__name__}.{value.name}"
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("ascii", errors="backslashreplace")
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


#: What JSON metadata in a plain MRC file costs, for help texts and messages.
JSON_IN_PLAIN_COST = (
    "mrcfile.validate, and programs that check the extended header type, reject a plain "
    "MRC file holding JSON metadata (EXTTYP 'json' is MRCZ's, not MRC2014's)"
)


def meta_to_write(meta: dict | None, compressed: bool, keep_json: bool = False) -> dict | None:
    """The JSON meta an output file gets: all of it in MRCZ, none in plain MRC unless asked.

    The one rule for the napari writers and the command line; python-mrcz's own
    ``writeMRC(meta=...)`` keeps writing what it is given, as python-mrcz does.

    Parameters
    ----------
    meta : dict or None
        The metadata the output could hold.
    compressed : bool
        True for an MRCZ output.
    keep_json : bool
        Write it into a plain MRC file too (see :data:`JSON_IN_PLAIN_COST`).
    """
    if not meta:
        return None
    return meta if compressed or keep_json else None
