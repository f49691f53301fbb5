"""Extended headers other than MRCZ's JSON: FEI1/FEI2 records parsed, the rest sized.

Thermo Fisher software (EPU, Velox, Tomography) writes EXTTYP ``FEI1`` or ``FEI2``:
one fixed-layout record per section, described in the MRC2014 specification on the
FEI software centre. Each record starts with its own size ('Metadata size'); Velox
pads its records beyond the fields it fills, so that size, not the table, is the
stride. Numbers follow the file's byte order, except the bitmasks, which the
specification makes little endian. Other types (SERI, CCP4, AGAR, MRCO, ...) are only
sized here; their bytes stay available from
:meth:`napari_mrcz.mrc.layout.MRCLayout.read_extended_header`.
"""

from __future__ import annotations

import warnings

import numpy as np

from napari_mrcz.errors import MRCZWarning

#: Fields of an FEI1 record (metadata version 0 and 1), in order, packed. Codes
#: carry no byte order: the file's is added, except for :data:`FEI_LITTLE_ENDIAN`.
FEI1_FIELDS: list[tuple[str, str]] = [
    ("Metadata size", "i4"),
    ("Metadata version", "i4"),
    ("Bitmask 1", "u4"),
    ("Timestamp", "f8"),
    ("Microscope type", "S16"),
    ("D-Number", "S16"),
    ("Application", "S16"),
    ("Application version", "S16"),
    ("HT", "f8"),
    ("Dose", "f8"),
    ("Alpha tilt", "f8"),
    ("Beta tilt", "f8"),
    ("X-Stage", "f8"),
    ("Y-Stage", "f8"),
    ("Z-Stage", "f8"),
    ("Tilt axis angle", "f8"),
    ("Dual axis rotation", "f8"),
    ("Pixel size X", "f8"),
    ("Pixel size Y", "f8"),
    ("Unused range", "V48"),
    ("Defocus", "f8"),
    ("STEM Defocus", "f8"),
    ("Applied defocus", "f8"),
    ("Instrument mode", "i4"),
    ("Projection mode", "i4"),
    ("Objective lens mode", "S16"),
    ("High magnification mode", "S16"),
    ("Probe mode", "i4"),
    ("EFTEM On", "?"),
    ("Magnification", "f8"),
    ("Bitmask 2", "u4"),
    ("Camera length", "f8"),
    ("Spot index", "i4"),
    ("Illuminated area", "f8"),
    ("Intensity", "f8"),
    ("Convergence angle", "f8"),
    ("Illumination mode", "S16"),
    ("Wide convergence angle range", "?"),
    ("Slit inserted", "?"),
    ("Slit width", "f8"),
    ("Acceleration voltage offset", "f8"),
    ("Drift tube voltage", "f8"),
    ("Energy shift", "f8"),
    ("Shift offset X", "f8"),
    ("Shift offset Y", "f8"),
    ("Shift X", "f8"),
    ("Shift Y", "f8"),
    ("Integration time", "f8"),
    ("Binning Width", "i4"),
    ("Binning Height", "i4"),
    ("Camera name", "S16"),
    ("Readout area left", "i4"),
    ("Readout area top", "i4"),
    ("Readout area right", "i4"),
    ("Readout area bottom", "i4"),
    ("Ceta noise reduction", "?"),
    ("Ceta frames summed", "i4"),
    ("Direct detector electron counting", "?"),
    ("Direct detector align frames", "?"),
    ("Camera param reserved 0", "i4"),
    ("Camera param reserved 1", "i4"),
    ("Camera param reserved 2", "i4"),
    ("Camera param reserved 3", "i4"),
    ("Bitmask 3", "u4"),
    ("Camera param reserved 4", "i4"),
    ("Camera param reserved 5", "i4"),
    ("Camera param reserved 6", "i4"),
    ("Camera param reserved 7", "i4"),
    ("Camera param reserved 8", "i4"),
    ("Camera param reserved 9", "i4"),
    ("Phase Plate", "?"),
    ("STEM Detector name", "S16"),
    ("Gain", "f8"),
    ("Offset", "f8"),
    ("STEM param reserved 0", "i4"),
    ("STEM param reserved 1", "i4"),
    ("STEM param reserved 2", "i4"),
    ("STEM param reserved 3", "i4"),
    ("STEM param reserved 4", "i4"),
    ("Dwell time", "f8"),
    ("Frame time", "f8"),
    ("Scan size left", "i4"),
    ("Scan size top", "i4"),
    ("Scan size right", "i4"),
    ("Scan size bottom", "i4"),
    ("Full scan FOV X", "f8"),
    ("Full scan FOV Y", "f8"),
    ("Element", "S16"),
    ("Energy interval lower", "f8"),
    ("Energy interval higher", "f8"),
    ("Method", "i4"),
    ("Is dose fraction", "?"),
    ("Fraction number", "i4"),
    ("Start frame", "i4"),
    ("End frame", "i4"),
    ("Input stack filename", "S80"),
    ("Bitmask 4", "u4"),
    ("Alpha tilt min", "f8"),
    ("Alpha tilt max", "f8"),
]

#: FEI2 (metadata version 2 and later) appends these fields to FEI1's.
FEI2_FIELDS: list[tuple[str, str]] = [
    *FEI1_FIELDS,
    ("Scan rotation", "f8"),
    ("Diffraction pattern rotation", "f8"),
    ("Image rotation", "f8"),
    ("Scan mode enumeration", "i4"),
    ("Acquisition time stamp", "i8"),
    ("Detector commercial name", "S16"),
    ("Start tilt angle", "f8"),
    ("End tilt angle", "f8"),
    ("Tilt per image", "f8"),
    ("Tilt speed", "f8"),
    ("Beam center X pixel", "i4"),
    ("Beam center Y pixel", "i4"),
    ("CFEG flash timestamp", "i8"),
    ("Phase plate position index", "i4"),
    ("Objective aperture name", "S16"),
]

#: Record layouts by EXTTYP.
FEI_FIELDS: dict[str, list[tuple[str, str]]] = {"FEI1": FEI1_FIELDS, "FEI2": FEI2_FIELDS}

#: Fields stored little endian whatever the file's byte order.
FEI_LITTLE_ENDIAN = frozenset({"Bitmask 1", "Bitmask 2", "Bitmask 3", "Bitmask 4"})

#: Fields left out of the parsed records: padding with no meaning.
FEI_SKIPPED = frozenset({"Unused range"})

#: Bytes a record must have to hold its size and version.
_FEI_PREAMBLE = 8


def fei_record_dtype(exttyp: str, byteorder: str = "<") -> np.dtype:
    """Return the packed structured dtype of one ``FEI1`` or ``FEI2`` record.

    Parameters
    ----------
    exttyp : {'FEI1', 'FEI2'}
        The extended header type.
    byteorder : {'<', '>'}
        The file's byte order; the bitmasks stay little endian.

    Returns
    -------
    numpy.dtype
        768 bytes for FEI1, 888 for FEI2.
    """
    return np.dtype(
        [
            (name, ("<" if name in FEI_LITTLE_ENDIAN else byteorder) + code)
            for name, code in FEI_FIELDS[exttyp]
        ]
    )


def _plain(value: np.generic) -> str | int | float | bool:
    """A record field as a plain Python value; text decoded, trailing NULs dropped."""
    if isinstance(value, bytes):
        return value.rstrip(b"\0").decode("latin-1")
    return value.item()


def _fei_records(
    exttyp: str, raw: bytes, nz: int, byteorder: str
) -> tuple[list[dict], str | None]:
    """Parse up to ``nz`` FEI records; return them and what is wrong, if anything."""
    if len(raw) < _FEI_PREAMBLE:
        return [], f"{len(raw)} bytes cannot hold a record"
    size = int(np.frombuffer(raw, dtype=byteorder + "i4", count=1)[0])
    if not _FEI_PREAMBLE <= size <= len(raw):
        return [], f"record size (Metadata size) {size} does not fit in {len(raw)} bytes"
    full = fei_record_dtype(exttyp, byteorder)
    # A record shorter than the table holds the fields that fit (older versions);
    # a longer one is padded (Velox), and its size is the stride.
    fields = [
        name
        for name in full.names
        if name not in FEI_SKIPPED and full.fields[name][1] + full[name].itemsize <= size
    ]
    record_dtype = np.dtype(
        {
            "names": fields,
            "formats": [full.fields[name][0] for name in fields],
            "offsets": [full.fields[name][1] for name in fields],
            "itemsize": size,
        }
    )
    count = min(nz, len(raw) // size)
    array = np.frombuffer(raw, dtype=record_dtype, count=count)
    records = [{name: _plain(record[name]) for name in fields} for record in array]
    if count < nz:
        return records, (
            f"holds {count} complete records of {size} bytes, fewer than the {nz} sections"
        )
    return records, None


def parse_extended_header(
    exttyp: str, raw: bytes, nz: int, path: str, byteorder: str = "<"
) -> dict:
    """Describe an extended header: per-section records for FEI1/FEI2, the size otherwise.

    Never raises for damaged input, since the image data can still be read: a
    damaged or short FEI header gives a warning and an ``error`` entry.

    Parameters
    ----------
    exttyp : str
        EXTTYP as text (``'FEI1'``, ``'FEI2'``, ``'SERI'``, ...).
    raw : bytes
        The extended header (NSYMBT bytes after the main header).
    nz : int
        Number of sections: at most this many records are returned.
    path : str
        The file, named in warnings.
    byteorder : {'<', '>'}
        The file's byte order.

    Returns
    -------
    dict
        ``{"type": exttyp, "records": [{field: value, ...}, ...]}`` for FEI1/FEI2,
        with plain Python values, plus ``"error"`` if the header is damaged or
        short (with the records that could be read, possibly none);
        ``{"type": exttyp, "size": len(raw)}`` for any other type.
    """
    if exttyp not in FEI_FIELDS:
        return {"type": exttyp, "size": len(raw)}
    records, problem = _fei_records(exttyp, raw, nz, byteorder)
    result: dict = {"type": exttyp, "records": records}
    if problem is not None:
        warnings.warn(
            f"{path}: damaged {exttyp} extended header: {problem}", MRCZWarning, stacklevel=2
        )
        result["error"] = problem
    return result
