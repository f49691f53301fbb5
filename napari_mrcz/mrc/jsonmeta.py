"""The JSON extended header of MRCZ files, and the keys this project reserves in it.

python-mrcz writes a JSON extended header (EXTTYP ``json``) holding the user's meta
dict. The files napari-mrcz writes add the keys of :data:`RESERVED_KEYS`, the MRCZ
extensions of this project; python-mrcz reads such files as before (it shows the
keys among the others). Each key is defined here once.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import numpy as np

from napari_mrcz.errors import MRCZFormatError

#: The CRC32 of every compressed chunk (see :mod:`napari_mrcz.mrc.checksums`).
CHECKSUM_KEY = "chunk_crc32"
#: The size of every compressed chunk (see :mod:`napari_mrcz.mrc.chunk_index`).
CHUNK_SIZES_KEY = "chunk_bytes"
#: The keys that describe one file's chunks: a copy gets its own, never the source's.
CHUNK_KEYS = (CHECKSUM_KEY, CHUNK_SIZES_KEY)
#: Hexadecimal digits of each value of a per-chunk key (32 bits: a blosc 1 chunk is
#: less than 2 GiB).
HEX_DIGITS = 8
#: The gain reference of a file of counts (see :mod:`napari_mrcz.mrc.gainmeta`).
GAIN_KEY = "gain_separated"
#: The source's grid where MRCZ cannot keep it (see :mod:`napari_mrcz.mrc.grid`).
GRID_KEY = "mrc_grid"
#: Slices per frame of python-mrcz's lists of 3D frames, where MZ alone is ambiguous.
FRAMES_KEY = "slices"
#: Calibrations of axes whose unit is not a length (read back by the napari reader).
NON_LENGTH_AXES_KEY = "non_length_axes"
#: The tag tree of a DigitalMicrograph image the file was made from.
DM_TAGS_KEY = "dm_tags"

#: Every reserved key and what it holds.
RESERVED_KEYS: dict[str, str] = {
    CHECKSUM_KEY: "CRC32 of each compressed chunk: 8 hexadecimal digits a z-slice, in order",
    CHUNK_SIZES_KEY: "bytes of each compressed chunk: 8 hexadecimal digits a z-slice, in order",
    GAIN_KEY: "counts x gain: the gain file's name, SHA-256 and source, and the original dtype",
    GRID_KEY: "the source's MX, MY, MZ, CELLA, MAPC/MAPR/MAPS, N and NSTART, for its plain copy",
    FRAMES_KEY: "z-slices per frame of a file of frames (python-mrcz's slices)",
    NON_LENGTH_AXES_KEY: "scale, offset and unit of each axis that is not a length (1/nm, eV)",
    DM_TAGS_KEY: "the DigitalMicrograph tag tree of the image the file was converted from",
}


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


def hex_text(values: Any) -> str:
    """Unsigned 32-bit ``values`` as stored under a per-chunk key: :data:`HEX_DIGITS`
    lower-case hexadecimal digits each, concatenated."""
    return np.asarray(values, dtype=">u4").tobytes().hex()


def hex_placeholder(count: int) -> str:
    """The text of ``count`` values under a per-chunk key, all zeros: its length is
    fixed, so a JSON meta can be written before the chunks and filled in after."""
    return "0" * (HEX_DIGITS * count)


def parse_hex_text(text: Any) -> np.ndarray | None:
    """The values (int64) a per-chunk key's text holds, or None if it is not such text."""
    if not isinstance(text, str) or not text or len(text) % HEX_DIGITS:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return np.frombuffer(raw, dtype=">u4").astype(np.int64)


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
