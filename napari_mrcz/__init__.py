"""napari-mrcz: MRC, MRCZ and DM files for electron microscopy.

The package's folders are its parts: ``mrc/`` the MRC2014/MRCZ engine, ``dm/`` the
DigitalMicrograph reader, :mod:`napari_mrcz.formats` the one door that says what a
file is and opens it as images, ``tools/`` the work behind the ``mrcz`` subcommands
and the napari panels (info, convert, validate; each named as its subcommand),
``gain/`` gain separation, ``cli/`` the ``mrcz`` command, ``_napari/`` the napari
plugin (readers, writers, samples) and ``_qt/`` its dock widgets (see the
Architecture page of the manual). Everything but ``_napari/`` and ``_qt/`` runs
without napari and Qt. This module is the public face: python-mrcz's names and
keywords (:mod:`napari_mrcz.api`), so code written for python-mrcz can switch by
changing the import, plus our own additions.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from napari_mrcz.__about__ import __version__
from napari_mrcz.api import (
    asyncReadDM4,
    asyncReadMRC,
    asyncWriteMRC,
    defaultHeader,
    readDM4,
    readMRC,
    readMRCHeader,
    setDefaultThreads,
    writeMRC,
    writeMRCHeader,
)
from napari_mrcz.dask_array import to_dask
from napari_mrcz.dm.images import read_dm
from napari_mrcz.errors import MRCZFormatError, MRCZWarning
from napari_mrcz.mrc.codecs import AVAILABLE_CODECS, COMPRESSOR_ENUM, REVERSE_COMPRESSOR_ENUM
from napari_mrcz.mrc.gain import read_gain_reference
from napari_mrcz.mrc.lazy import LazyMRC
from napari_mrcz.mrc.modes import CCPEM_ENUM, EMAN2_MODE_DTYPES, REVERSE_CCPEM_ENUM

#: python-mrcz's name for the EMAN2 mode table.
EMAN2_ENUM = EMAN2_MODE_DTYPES

#: python-mrcz's flags: compression is always available here, through c-blosc 1.x.
BLOSC_PRESENT = True
CAN_COMPRESS = True
#: True when the optional blosc2 package is there to read c-blosc2-format chunks.
BLOSC2_PRESENT = importlib.util.find_spec("blosc2") is not None


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
read_dm4 = readDM4
async_read_dm4 = asyncReadDM4

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
    "MRCZWarning",
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
    "read_gain_reference",
    "read_mrc",
    "read_mrc_header",
    "setDefaultThreads",
    "set_default_threads",
    "to_dask",
    "writeMRC",
    "writeMRCHeader",
    "write_mrc",
    "write_mrc_header",
]
