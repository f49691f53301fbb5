"""The 1024-byte MRC2014 header, with python-mrcz's and IMOD's extra fields.

The layout is defined once, as a numpy structured dtype (:data:`HEADER_DTYPE`), and
both the reader and the writer go through it. Offsets count from byte 0.
"""

from __future__ import annotations

import numpy as np

HEADER_SIZE = 1024

#: Little- and big-endian machine stamps as we write them (MRC2014 allows 44 44 or
#: 44 41 for little endian; 44 41 is what python-mrcz writes, mrcfile writes 44 44).
MACHST_LITTLE = bytes((0x44, 0x41, 0x00, 0x00))
MACHST_BIG = bytes((0x11, 0x11, 0x00, 0x00))

#: DMIN, DMAX, DMEAN, RMS when the statistics are unknown (MRC2014: DMAX < DMIN,
#: DMEAN < min(DMIN, DMAX), RMS < 0).
UNKNOWN_STATS = (0.0, -1.0, -2.0, -1.0)

#: IMOD writes this stamp at byte 152 and bit flags at byte 156.
IMOD_STAMP = 1146047817
IMOD_FLAG_SIGNED_BYTES = 1

MRC2014_VERSION = 20141
MAP_ID = b"MAP "
LABEL_SIZE = 80
N_LABELS = 10

#: The label of a file whose rows are meant to be shown top-down (y pointing down),
#: as DigitalMicrograph and napari show images; MRC's own convention, and the
#: default of napari-mrcz's reader, is y pointing up. Written when the layer saved
#: (or the DM image converted) was shown so, so that the file reopens as it was shown.
ROWS_TOP_DOWN_LABEL = "napari-mrcz: rows top-down (shown with y pointing down)"

#: MRC2014 space groups: 0 for images and image stacks, 1 for volumes.
ISPG_IMAGE_STACK = 0
ISPG_VOLUME = 1

HEADER_FIELDS: list[tuple] = [
    ("nx", "i4"),  # 0: columns (fastest)
    ("ny", "i4"),  # 4: rows
    ("nz", "i4"),  # 8: sections
    ("mode", "i4"),  # 12: MRC mode + 1000 x MRCZ compressor id
    ("nxstart", "i4"),  # 16
    ("nystart", "i4"),  # 20
    ("nzstart", "i4"),  # 24
    ("mx", "i4"),  # 28: sampling along x; python-mrcz writes 0
    ("my", "i4"),  # 32
    ("mz", "i4"),  # 36: python-mrcz: slices per frame for lists of 3D arrays
    ("cella", "f4", (3,)),  # 40: cell size x, y, z in Angstrom
    ("cellb", "f4", (3,)),  # 52: cell angles
    ("mapc", "i4"),  # 64
    ("mapr", "i4"),  # 68
    ("maps", "i4"),  # 72
    ("dmin", "f4"),  # 76
    ("dmax", "f4"),  # 80
    ("dmean", "f4"),  # 84
    ("ispg", "i4"),  # 88
    ("nsymbt", "i4"),  # 92: extended header length
    ("extra1", "V8"),  # 96
    ("exttyp", "S4"),  # 104: b'json' for MRCZ meta
    ("nversion", "i4"),  # 108
    ("extra2", "V20"),  # 112
    ("voltage", "f4"),  # 132: python-mrcz, kV
    ("cs", "f4"),  # 136: python-mrcz, spherical aberration in mm
    ("gain", "f4"),  # 140: python-mrcz, counts per electron
    ("packed_bytes", "i8"),  # 144: python-mrcz, size of all blosc chunks
    ("imod_stamp", "i4"),  # 152: IMOD
    ("imod_flags", "i4"),  # 156: IMOD, bit 0 = bytes are signed
    ("extra3", "V36"),  # 160
    ("origin", "f4", (3,)),  # 196: x, y, z in Angstrom
    ("map", "S4"),  # 208: b'MAP '
    ("machst", "u1", (4,)),  # 212
    ("rms", "f4"),  # 216
    ("nlabl", "i4"),  # 220
    ("label", "S80", (N_LABELS,)),  # 224
]

#: What each field means, for people reading a header.
FIELD_MEANINGS: dict[str, str] = {
    "nx": "columns (fastest axis, x)",
    "ny": "rows (y)",
    "nz": "sections (z)",
    "mode": "pixel type (MRC mode) + 1000 x MRCZ compressor id",
    "nxstart": "index of the first column",
    "nystart": "index of the first row",
    "nzstart": "index of the first section",
    "mx": "sampling intervals along x (pixel size = CELLA.x / MX)",
    "my": "sampling intervals along y",
    "mz": "sampling intervals along z (python-mrcz: slices per frame)",
    "cella": "cell size x, y, z in Angstrom",
    "cellb": "cell angles in degrees",
    "mapc": "crystal axis along columns (1=x, 2=y, 3=z)",
    "mapr": "crystal axis along rows",
    "maps": "crystal axis along sections",
    "dmin": "minimum pixel value",
    "dmax": "maximum pixel value",
    "dmean": "mean pixel value",
    "ispg": "space group (0 image stack, 1 volume, 401 volume stack)",
    "nsymbt": "extended header length in bytes",
    "exttyp": "extended header type (json for MRCZ meta; FEI1, SERI, CCP4, ...)",
    "nversion": "MRC format version (20140 or 20141)",
    "voltage": "accelerating voltage in kV (python-mrcz)",
    "cs": "spherical aberration in mm (python-mrcz)",
    "gain": "detector gain (python-mrcz)",
    "packed_bytes": "compressed size of all blosc chunks (python-mrcz)",
    "imod_stamp": "IMOD stamp (1146047817 when IMOD wrote the file)",
    "imod_flags": "IMOD flags (bit 0: bytes are signed)",
    "origin": "origin x, y, z in Angstrom",
    "map": "file type identifier, 'MAP '",
    "machst": "machine stamp: byte order",
    "rms": "RMS deviation from the mean",
    "nlabl": "number of text labels",
    "label": "text labels",
    "byteorder": "byte order the file was read in",
}

#: The header in little-endian order; ``.newbyteorder('>')`` gives the big-endian one.
HEADER_DTYPE = np.dtype(HEADER_FIELDS)
assert HEADER_DTYPE.itemsize == HEADER_SIZE

#: Byte offset of each field, for code that patches one field in place.
FIELD_OFFSETS: dict[str, int] = {name: HEADER_DTYPE.fields[name][1] for name in HEADER_DTYPE.names}


def header_dtype(byteorder: str) -> np.dtype:
    """Return the header dtype in ``byteorder`` (``'<'`` or ``'>'``)."""
    return HEADER_DTYPE.newbyteorder(byteorder)


def stamp_byteorder(machst: bytes) -> str | None:
    """Return the byte order a machine stamp declares, or None if it declares none."""
    if machst[:1] == b"\x44":
        return "<"
    if machst[:1] == b"\x11":
        return ">"
    return None


def machine_stamp(byteorder: str) -> bytes:
    """Return the machine stamp we write for ``byteorder``."""
    return MACHST_LITTLE if byteorder == "<" else MACHST_BIG


def new_header(byteorder: str = "<") -> np.ndarray:
    """Return a blank MRC2014 header (a 0-d structured array) in ``byteorder``."""
    header = np.zeros((), dtype=header_dtype(byteorder))
    header["cellb"] = 90.0
    header["mapc"], header["mapr"], header["maps"] = 1, 2, 3
    header["nversion"] = MRC2014_VERSION
    header["map"] = MAP_ID
    header["machst"] = np.frombuffer(machine_stamp(byteorder), dtype="u1")
    header["dmin"], header["dmax"], header["dmean"], header["rms"] = UNKNOWN_STATS
    return header


def decode_labels(header: np.ndarray) -> list[str]:
    """The text labels, up to the last non-empty one; never fails on odd bytes."""
    labels = [bytes(label).rstrip(b"\0 ").decode("latin-1") for label in header["label"]]
    while labels and not labels[-1]:
        labels.pop()
    return labels


def stats_determined(dmin: float, dmax: float, dmean: float, rms: float) -> dict[str, bool]:
    """Which header statistics MRC2014 counts as determined.

    DMAX < DMIN: minimum and maximum not determined; DMEAN below both: mean not
    determined; RMS < 0: RMS not determined (see :data:`UNKNOWN_STATS`).
    """
    extremes = dmax >= dmin
    return {"min": extremes, "max": extremes, "mean": dmean >= min(dmin, dmax), "rms": rms >= 0}


def set_labels(header: np.ndarray, labels: list[str]) -> None:
    """Replace the text labels (at most 10, 80 bytes each) and NLABL."""
    labels = labels[:N_LABELS]
    header["label"] = b""
    for number, label in enumerate(labels):
        header["label"][number] = label.encode("latin-1", "replace")[:LABEL_SIZE]
    header["nlabl"] = len(labels)


def header_fields(header: np.ndarray, byteorder: str) -> dict:
    """Every field of ``header`` as plain Python values, for people and for JSON.

    The unused bytes are left out, text is decoded, the machine stamp is shown as
    hex bytes and ``byteorder`` is added.
    """
    fields: dict = {}
    for name in HEADER_DTYPE.names:
        if name.startswith("extra"):
            continue
        value = header[name]
        if name == "label":
            fields[name] = decode_labels(header)
        elif name == "machst":
            fields[name] = bytes(value).hex(" ")
        elif value.dtype.kind == "S":
            fields[name] = bytes(value).decode("latin-1").rstrip("\0")
        else:
            fields[name] = value.tolist()
    fields["byteorder"] = "little" if byteorder == "<" else "big"
    return fields
