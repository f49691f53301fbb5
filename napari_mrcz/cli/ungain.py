"""The gain options of ``mrcz compress``, ``decompress`` and ``convert``, as settings."""

from __future__ import annotations

import argparse

from napari_mrcz.gain.separation import GainSettings
from napari_mrcz.gain.store import GainReference, GainStore


def gain_settings(args: argparse.Namespace, compressor: str | None) -> GainSettings:
    """What the run does with gains: ``--ungain``, ``--gain-reference``, ``--counts``.

    Every run gets settings: gain-separated inputs are always written as what they
    hold (float32, or with ``--counts`` counts and a plain MRC gain reference).

    Raises
    ------
    MRCZFormatError, OSError
        If the gain reference cannot be read.
    """
    reference = getattr(args, "gain_reference", None)
    counts = bool(getattr(args, "counts", False))
    return GainSettings(
        store=GainStore(None if counts else compressor, getattr(args, "level", 1)),
        ungain=bool(getattr(args, "ungain", False) or reference),
        reference=(
            None
            if reference is None
            else GainReference.read(reference, args.gain_rotate, args.gain_flip)
        ),
        counts=counts,
    )
