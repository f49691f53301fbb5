"""The MRC mode <-> numpy dtype table, used by both the reader and the writer.

MRC2014 defines modes 0, 1, 2, 3, 4, 6, 12, 16 and 101. python-mrcz adds 7 (int32)
and 8 (uint32) for counting detectors. Mode 0 is signed (MRC2014) unless an IMOD
header says its bytes are unsigned.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from napari_mrcz.errors import MRCZWarning

#: Packed 4-bit mode: two pixels a byte, low nibble first, read back as uint8.
UINT4_MODE = 101

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
    UINT4_MODE: "u1",
}

#: python-mrcz's modes for counting detectors (int32, uint32), not MRC2014's.
PYTHON_MRCZ_MODES = frozenset({7, 8})

#: The modes python-mrcz 0.6.0 reads: not float16 (mode 12), which MRC2014 added later.
PYTHON_MRCZ_READABLE_MODES = frozenset(MODE_DTYPES) - {12}

#: RGB as IMOD writes it: three uint8 (red, green, blue) a pixel, read only. Its dtype
#: is a 3-byte subarray dtype, so arrays of it get a trailing axis of 3 of uint8.
RGB_MODE = 16
RGB_DTYPE = np.dtype(("u1", 3))

#: Modes MRC2014 defines that we recognise but do not read: 3 (complex int16).
UNSUPPORTED_MODES = frozenset({3})

#: Every MRC2014 mode we read.
READABLE_MODES = frozenset(MODE_DTYPES) | {RGB_MODE}

#: dtype name -> the MRC mode that stores it as it is (every mode but the 4-bit one).
DTYPE_MODES: dict[str, int] = {
    np.dtype(code).name: mode for mode, code in MODE_DTYPES.items() if mode != UINT4_MODE
}

#: dtypes that are written through a wider or narrower type: float64 to float32,
#: complex128 to complex64, uint8 widened to uint16 (as mrcfile does, so that every
#: MRC reader sees the same values) and bool to int8.
CAST_ON_WRITE: dict[str, str] = {
    "float64": "float32",
    "complex128": "complex64",
    "uint8": "uint16",
    "bool": "int8",
}

#: python-mrcz's tables, kept under its names for code that imports them.
CCPEM_ENUM: dict[int, str] = dict(MODE_DTYPES)
REVERSE_CCPEM_ENUM: dict[str, int] = {
    **{name: DTYPE_MODES[stored] for name, stored in CAST_ON_WRITE.items()},
    **DTYPE_MODES,
    **{np.dtype(name).str[1:]: mode for name, mode in DTYPE_MODES.items()},
    **{np.dtype(name).str[1:]: DTYPE_MODES[stored] for name, stored in CAST_ON_WRITE.items()},
    "uint4": UINT4_MODE,
}

#: EMAN2's old mode numbering, read when asked with ``fileConvention='eman2'``.
EMAN2_MODE_DTYPES: dict[int, str] = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4"}


def uint4_row_bytes(nx: int) -> int:
    """Bytes of one row of ``nx`` 4-bit pixels (MRC2014 pads odd rows to a byte)."""
    return (nx + 1) // 2


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

    Returns
    -------
    numpy.dtype
        The pixel dtype; for RGB (mode 16) the 3-byte :data:`RGB_DTYPE`.

    Raises
    ------
    KeyError
        For a mode nobody defines.
    """
    if mode == RGB_MODE:
        return RGB_DTYPE
    if mode == 0 and unsigned_bytes:
        return np.dtype("u1")
    return np.dtype(MODE_DTYPES[mode]).newbyteorder(byteorder)


def mode_for_dtype(dtype: np.dtype | str) -> int:
    """Return the MRC mode that stores ``dtype`` (or ``'uint4'``) as it is.

    Raises
    ------
    KeyError
        For dtypes MRC cannot store as they are (see :func:`storage_dtype`).
    """
    if str(dtype) == "uint4":
        return UINT4_MODE
    return DTYPE_MODES[np.dtype(dtype).name]


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


def mrc_dtype(
    data: Any, plain: bool = False, warn: bool = True, scan: bool = True
) -> np.dtype | None:
    """The dtype to cast a layer to for MRC, or None to keep its own; warns on a cast.

    float64 becomes float32; integers of 32 bits or more (labels) become the smallest
    MRC2014 integer type that holds their values. int32 and uint32 (modes 7 and 8) are
    python-mrcz's and only kept for MRCZ (``plain`` False); otherwise float32, exact
    below 2**24.
    ``scan`` False decides without reading the data (for previews).

    Raises
    ------
    ValueError
        For labels that no MRC type holds exactly.
    """
    dtype = np.dtype(data.dtype)
    if dtype == np.float64:
        target = np.dtype(np.float32)
    elif dtype.kind in "iu" and dtype.itemsize >= 4:
        low, high = _value_range(data) if scan else (0, 0 if plain else 2**31 - 1)
        candidates = (np.int16, np.uint16) if plain else (np.int16, np.uint16, np.int32, np.uint32)
        target = next(
            (
                np.dtype(candidate)
                for candidate in candidates
                if np.iinfo(candidate).min <= low and high <= np.iinfo(candidate).max
            ),
            None,
        )
        if target is None:
            if max(abs(low), abs(high)) >= 2**24:
                raise ValueError(f"values from {low} to {high} fit no MRC pixel type exactly")
            target = np.dtype(np.float32)
        if dtype == target:
            return None
    else:
        return None
    if warn:
        warnings.warn(f"MRC cannot store {dtype}: writing {target}", MRCZWarning, stacklevel=3)
    return target


def _value_range(data: Any) -> tuple[int, int]:
    """Min and max of a layer's data, slice by slice for lazy arrays."""
    if isinstance(data, np.ndarray) or data.ndim < 3:
        array = np.asarray(data)
        return (int(array.min()), int(array.max())) if array.size else (0, 0)
    lows, highs = zip(*(_value_range(data[index]) for index in range(data.shape[0])), strict=True)
    return min(lows), max(highs)
