"""File name suffixes: which files are MRC, MRCZ or DM, and which we write."""

from __future__ import annotations

from napari_mrcz.files import COMPRESSED_MAGIC

#: The compressed MRCZ file.
COMPRESSED_SUFFIX = ".mrcz"
#: Plain MRC2014 files we write (and read): maps, particle stacks, tilt series, tomograms.
PLAIN_SUFFIXES = (".mrc", ".mrcs", ".map", ".st", ".ali", ".rec")
#: Every MRC-family suffix we read.
MRC_SUFFIXES = (COMPRESSED_SUFFIX, *PLAIN_SUFFIXES, ".preali", ".ccp4")
DM_SUFFIXES = (".dm4", ".dm3")
#: Compressed downloads (the EMDB's ``emd_NNNN.map.gz``), read through a temporary copy.
COMPRESSED_MRC_SUFFIXES = tuple(
    suffix + compression
    for suffix in (".mrc", ".mrcs", ".map", ".ccp4")
    for compression in COMPRESSED_MAGIC
)
#: Everything we read.
READABLE_SUFFIXES = MRC_SUFFIXES + COMPRESSED_MRC_SUFFIXES + DM_SUFFIXES


def is_mrcz(path: str) -> bool:
    """True if ``path`` names an MRCZ file (by its suffix)."""
    return path.lower().endswith(COMPRESSED_SUFFIX)


def is_readable(path: str) -> bool:
    """True if ``path`` has a suffix of a file we read."""
    return path.lower().endswith(READABLE_SUFFIXES)


def strip_suffix(name: str) -> str:
    """``name`` without its EM file suffix (``.map.gz`` included), if it has one."""
    lowered = name.lower()
    for suffix in sorted(READABLE_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name
