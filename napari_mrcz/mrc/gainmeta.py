"""What a gain-separated file's JSON meta says: its gain file, checksum and original.

A gain-normalised counting-mode movie is float32: the camera software multiplied the
integer electron counts of each frame by a per-pixel gain reference. A gain-separated
file stores the counts (an ordinary MRC/MRCZ file of integers, MODE 0, 1, 6 or 7, that
every MRC reader reads) and names the gain reference, a float32 image in a file beside
it, in its JSON meta under :data:`GAIN_KEY`. The original movie is
``counts * gain``, multiplied in float32 pixel by pixel (:func:`napari_mrcz.mrc.gain.
apply_gain`), bit for bit. This module reads and writes that record; it reads no file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.jsonmeta import GAIN_KEY

#: Version of the record written; files of a later version are refused, not misread.
GAIN_FORMAT_VERSION = 1
#: The dtype of the original movie and of the gain: the product is taken in it.
ORIGINAL_DTYPE = np.dtype(np.float32)

_SHA256 = re.compile(r"[0-9a-f]{64}")

DESCRIPTION = (
    "Gain-separated movie: the pixels are integer electron counts. The original float32 "
    "movie is counts x gain, multiplied in float32 pixel by pixel, where gain is the "
    "float32 image in gain_file, beside this file (gain_sha256: SHA-256 of its float32 "
    "values, little-endian, row by row). napari-mrcz reads the file as the original."
)


@dataclass(frozen=True)
class GainSeparation:
    """The gain-separation record of one file.

    Attributes
    ----------
    gain_file : str
        File name of the gain reference, in the folder of the counts file.
    gain_sha256 : str
        SHA-256 (hex) of the gain's float32 values, little-endian, row by row (see
        :func:`gain_digest`): the gain file may be recompressed without changing it.
    statistics : tuple of float or None
        DMIN, DMAX, DMEAN, RMS of the original float32 movie, or None if unknown.
    original_header : bytes or None
        The 1024-byte header of the original MRC file (None for DM and napari data),
        restored byte for byte by ``mrcz decompress``.
    original_extended_header : bytes or None
        Its extended header, when it was not JSON meta (FEI, SERI, ...).
    gain_source : dict
        How the gain was found (estimated from the movie, or a reference file and
        the rotation and flip applied to it).
    """

    gain_file: str
    gain_sha256: str
    statistics: tuple[float, float, float, float] | None = None
    original_header: bytes | None = None
    original_extended_header: bytes | None = None
    gain_source: dict = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as it goes into the JSON meta."""
        original: dict[str, Any] = {"dtype": ORIGINAL_DTYPE.name}
        if self.statistics is not None:
            original["statistics"] = [float(value) for value in self.statistics]
        if self.original_header is not None:
            original["header"] = base64.b64encode(self.original_header).decode("ascii")
        if self.original_extended_header is not None:
            original["extended_header"] = base64.b64encode(self.original_extended_header).decode(
                "ascii"
            )
        return {
            "version": GAIN_FORMAT_VERSION,
            "description": DESCRIPTION,
            "gain_file": self.gain_file,
            "gain_sha256": self.gain_sha256,
            "gain_source": self.gain_source,
            "original": original,
        }


def describe_gain_source(source: dict) -> str:
    """How a file's gain was found, in words (from its record's ``gain_source``)."""
    if "estimated_from" in source:
        return f"estimated from {source['estimated_from']}"
    if "reference" in source:
        turned = f"rotated {source.get('rotate', 0)}°, flip {source.get('flip', 'none')}"
        how = source.get("orientation")
        return f"{source['reference']} ({turned}{'; ' + how if how else ''})"
    return "not recorded"


def gain_digest(gain: np.ndarray) -> str:
    """SHA-256 (hex) of a gain's float32 values, little-endian, row by row."""
    values = np.ascontiguousarray(gain, dtype=ORIGINAL_DTYPE.newbyteorder("<"))
    return hashlib.sha256(memoryview(values).cast("B")).hexdigest()


def gain_separation(json_meta: dict | None, path: str) -> GainSeparation | None:
    """The gain-separation record in a file's JSON meta, or None if it has none.

    Raises
    ------
    MRCZFormatError
        If the record is damaged, of a later version, or names a gain file outside
        the file's folder.
    """
    if not json_meta or GAIN_KEY not in json_meta:
        return None
    record = json_meta[GAIN_KEY]
    version = record.get("version") if isinstance(record, dict) else None
    if (
        isinstance(version, (int, float))
        and not isinstance(version, bool)
        and (version > GAIN_FORMAT_VERSION)
    ):
        raise MRCZFormatError(
            path,
            f"gain-separated by a later napari-mrcz (record version {version}); "
            "update napari-mrcz to read it as float32",
        )
    try:
        gain_file = record["gain_file"]
        digest = record["gain_sha256"]
        original = record.get("original", {})
        if not isinstance(original, dict):
            raise TypeError(f"'original' is {original!r}, not a JSON object")
        statistics = original.get("statistics")
        if statistics is not None and not isinstance(statistics, list):
            raise TypeError(f"its statistics are {statistics!r}, not a list of numbers")
        header = original.get("header")
        extended = original.get("extended_header")
        separation = GainSeparation(
            gain_file=gain_file,
            gain_sha256=digest,
            statistics=None if statistics is None else tuple(float(v) for v in statistics),
            original_header=None if header is None else base64.b64decode(header, validate=True),
            original_extended_header=(
                None if extended is None else base64.b64decode(extended, validate=True)
            ),
            gain_source=dict(record.get("gain_source") or {}),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise MRCZFormatError(path, f"its gain-separation record is damaged: {error!r}") from None
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise MRCZFormatError(path, f"its gain checksum {digest!r} is not a SHA-256")
    if (
        not isinstance(gain_file, str)
        or os.path.basename(gain_file) != gain_file
        or gain_file in ("", ".", "..")
    ):
        raise MRCZFormatError(path, f"its gain file {gain_file!r} is not a file beside it")
    if separation.statistics is not None and len(separation.statistics) != 4:
        raise MRCZFormatError(path, "its gain-separation record has damaged statistics")
    return separation
