"""napari-mrcz: MRC, MRCZ and DM files for electron microscopy.

The engine (this package without its ``_widgets`` and napari glue) needs only numpy
and blosc. Its API keeps python-mrcz's names and keywords so code written for
python-mrcz can switch by changing the import.
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import Future
from typing import Any

from .__about__ import __version__
from .codecs import AVAILABLE_CODECS, COMPRESSOR_ENUM, REVERSE_COMPRESSOR_ENUM
from .dm import async_read_dm4, asyncReadDM4, read_dm, read_dm4, readDM4
from .errors import MRCZFormatError
from .lazy import LazyMRC
from .modes import CCPEM_ENUM, EMAN2_MODE_DTYPES, REVERSE_CCPEM_ENUM
from .reader import readMRC, readMRCHeader
from .threads import setDefaultThreads, submit
from .writer import defaultHeader, writeMRC, writeMRCHeader

#: python-mrcz's name for the EMAN2 mode table.
EMAN2_ENUM = EMAN2_MODE_DTYPES

#: python-mrcz's flags: compression is always available here, through c-blosc 1.x.
BLOSC_PRESENT = True
CAN_COMPRESS = True
#: True when the optional blosc2 package is there to read c-blosc2-format chunks.
BLOSC2_PRESENT = importlib.util.find_spec("blosc2") is not None


def asyncReadMRC(*args: Any, **kwargs: Any) -> Future:
    """Run :func:`readMRC` in the background.

    Parameters
    ----------
    *args, **kwargs
        As for :func:`readMRC`.

    Returns
    -------
    concurrent.futures.Future
        Its ``result()`` is ``(image, meta)``.
    """
    return submit(readMRC, *args, **kwargs)


def asyncWriteMRC(*args: Any, **kwargs: Any) -> Future:
    """Run :func:`writeMRC` in the background.

    Parameters
    ----------
    *args, **kwargs
        As for :func:`writeMRC`.

    Returns
    -------
    concurrent.futures.Future
        Done when the file is complete; ``result()`` re-raises any error.
    """
    return submit(writeMRC, *args, **kwargs)


def open_lazy(path: Any, **kwargs: Any) -> LazyMRC:
    """Open an MRC/MRCZ file for random access without reading its data.

    See :class:`LazyMRC`.
    """
    return LazyMRC(path, **kwargs)


read_mrc = readMRC
write_mrc = writeMRC
async_read_mrc = asyncReadMRC
async_write_mrc = asyncWriteMRC
read_mrc_header = readMRCHeader
write_mrc_header = writeMRCHeader
default_header = defaultHeader
set_default_threads = setDefaultThreads

__all__ = [
    "AVAILABLE_CODECS",
    "BLOSC2_PRESENT",
    "BLOSC_PRESENT",
    "CAN_COMPRESS",
    "CCPEM_ENUM",
    "COMPRESSOR_ENUM",
    "EMAN2_ENUM",
    "REVERSE_CCPEM_ENUM",
    "REVERSE_COMPRESSOR_ENUM",
    "LazyMRC",
    "MRCZFormatError",
    "__version__",
    "asyncReadDM4",
    "asyncReadMRC",
    "asyncWriteMRC",
    "async_read_dm4",
    "async_read_mrc",
    "async_write_mrc",
    "defaultHeader",
    "default_header",
    "open_lazy",
    "readDM4",
    "readMRC",
    "readMRCHeader",
    "read_dm",
    "read_dm4",
    "read_mrc",
    "read_mrc_header",
    "setDefaultThreads",
    "set_default_threads",
    "writeMRC",
    "writeMRCHeader",
    "write_mrc",
    "write_mrc_header",
]
