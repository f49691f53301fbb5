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

The names are loaded when first used (PEP 562), so that ``import napari_mrcz`` and
the ``mrcz`` command start at once; each comes from the module listed in
``_EXPORTS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from napari_mrcz.__about__ import __version__

if TYPE_CHECKING:
    from napari_mrcz.api import (
        BLOSC2_PRESENT,
        BLOSC_PRESENT,
        CAN_COMPRESS,
        EMAN2_ENUM,
        async_read_dm4,
        async_read_mrc,
        async_write_mrc,
        asyncReadDM4,
        asyncReadMRC,
        asyncWriteMRC,
        default_header,
        defaultHeader,
        open_lazy,
        read_dm4,
        read_mrc,
        read_mrc_header,
        readDM4,
        readMRC,
        readMRCHeader,
        set_default_threads,
        setDefaultThreads,
        write_mrc,
        write_mrc_header,
        writeMRC,
        writeMRCHeader,
    )
    from napari_mrcz.dask_array import to_dask
    from napari_mrcz.dm.images import read_dm
    from napari_mrcz.errors import MRCZFormatError, MRCZWarning, RemoteFileError
    from napari_mrcz.mrc.codecs import AVAILABLE_CODECS, COMPRESSOR_ENUM, REVERSE_COMPRESSOR_ENUM
    from napari_mrcz.mrc.gain import read_gain_reference
    from napari_mrcz.mrc.lazy import LazyMRC
    from napari_mrcz.mrc.modes import CCPEM_ENUM, REVERSE_CCPEM_ENUM

#: The module each public name comes from.
_EXPORTS = {
    **dict.fromkeys(
        (
            "BLOSC2_PRESENT",
            "BLOSC_PRESENT",
            "CAN_COMPRESS",
            "EMAN2_ENUM",
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
            "read_dm4",
            "read_mrc",
            "read_mrc_header",
            "setDefaultThreads",
            "set_default_threads",
            "writeMRC",
            "writeMRCHeader",
            "write_mrc",
            "write_mrc_header",
        ),
        "napari_mrcz.api",
    ),
    "to_dask": "napari_mrcz.dask_array",
    "read_dm": "napari_mrcz.dm.images",
    "MRCZFormatError": "napari_mrcz.errors",
    "MRCZWarning": "napari_mrcz.errors",
    "RemoteFileError": "napari_mrcz.errors",
    "AVAILABLE_CODECS": "napari_mrcz.mrc.codecs",
    "COMPRESSOR_ENUM": "napari_mrcz.mrc.codecs",
    "REVERSE_COMPRESSOR_ENUM": "napari_mrcz.mrc.codecs",
    "read_gain_reference": "napari_mrcz.mrc.gain",
    "LazyMRC": "napari_mrcz.mrc.lazy",
    "CCPEM_ENUM": "napari_mrcz.mrc.modes",
    "REVERSE_CCPEM_ENUM": "napari_mrcz.mrc.modes",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily loaded ones included."""
    return sorted({*globals(), *_EXPORTS})


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
    "RemoteFileError",
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
