"""The MRC mode <-> numpy dtype table, used by both the reader and the writer.

MRC2014 defines modes 0, 1, 2, 3, 4, 6, 12, 16 and 101. python-mrcz adds 7 (int32)
and 8 (uint32) for counting detectors. Mode 0 is signed (MRC2014) unless an IMOD
header says its bytes are unsigned.
"""

from __future__ import annotations

import numpy as np

#: MRC mode -> numpy dtype character code (byte order added by the caller).
MODE_DTYPES: dict[int, str] = {
    0: "i1",
    1: "i2",
    2: "f4",
    4: "c8",
    6: "u2",
    7: "i4",
    8: "u4",
    12: "f2",
    101: "u1",  # uint4, two pixels a byte, unpacked to uint8
}

#: Packed 4-bit mode.
UINT4_MODE = 101

#: dtype name -> MRC mode for writing. Types MRC cannot hold are cast first:
#: float64 to float32, complex128 to complex64, uint8 is widened to uint16 (as
#: mrcfile does) so that every MRC reader sees the same values, bool to int8.
DTYPE_MODES: dict[str, int] = {
    "int8": 0,
    "int16": 1,
    "float32": 2,
    "complex64": 4,
    "uint16": 6,
    "int32": 7,
    "uint32": 8,
    "float16": 12,
}

#: dtypes that are written through a wider or narrower type.
CAST_ON_WRITE: dict[str, str] = {
    "float64": "float32",
    "complex128": "complex64",
    "uint8": "uint16",
    "bool": "int8",
}

#: python-mrcz's tables, kept under its names for code that imports them.
CCPEM_ENUM: dict[int, str] = dict(MODE_DTYPES)
REVERSE_CCPEM_ENUM: dict[str, int] = {
    **DTYPE_MODES,
    **{np.dtype(code).str[1:]: mode for mode, code in MODE_DTYPES.items() if mode != UINT4_MODE},
    "float64": 2,
    "f8": 2,
    "complex128": 4,
    "c16": 4,
    "uint8": 6,
    "uint4": UINT4_MODE,
}


def dtype_for_mode(mode: int, byteorder: str, unsigned_bytes: bool = False) -> np.dtype:
    """Return the numpy dtype of MRC ``mode`` stored in ``byteorder``.

    Parameters
    ----------
    mode : int
        MRC mode without the MRCZ compressor part (``mode % 1000``).
    byteorder : str
        ``'<'`` or ``'>'``.
    unsigned_bytes : bool
        Read mode 0 as uint8 (IMOD files whose flags say the bytes are unsigned).

    Raises
    ------
    KeyError
        For a mode nobody defines.
    """
    if mode == 0 and unsigned_bytes:
        return np.dtype("u1")
    return np.dtype(MODE_DTYPES[mode]).newbyteorder(byteorder)


def mode_for_dtype(dtype: np.dtype | str) -> int:
    """Return the MRC mode that stores ``dtype`` without loss.

    Raises
    ------
    KeyError
        For dtypes MRC cannot store (use :func:`storage_dtype` first).
    """
    name = "uint4" if str(dtype) == "uint4" else np.dtype(dtype).name
    return REVERSE_CCPEM_ENUM[name] if name == "uint4" else DTYPE_MODES[name]


def storage_dtype(dtype: np.dtype | str) -> np.dtype:
    """Return the dtype an array of ``dtype`` is written as (itself or its cast).

    Raises
    ------
    TypeError
        For dtypes MRC cannot store, such as int64 or object.
    """
    name = np.dtype(dtype).name
    name = CAST_ON_WRITE.get(name, name)
    if name not in DTYPE_MODES:
        raise TypeError(
            f"MRC cannot store {np.dtype(dtype).name} data; cast it first, for example "
            f"to one of {sorted(DTYPE_MODES)}"
        )
    return np.dtype(name)

#: EMAN2's old mode numbering, read when asked with ``fileConvention='eman2'``.
EMAN2_MODE_DTYPES: dict[int, str] = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4"}
