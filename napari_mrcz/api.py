"""python-mrcz's API on our engine: the one module where its camelCase names live.

``import napari_mrcz as mrcz`` gives these functions with python-mrcz 0.6.0's names,
keywords and defaults, so code written for python-mrcz switches by changing the
import. Each is a thin face on the engine's snake_case functions
(:mod:`napari_mrcz.mrc.read`, :mod:`napari_mrcz.mrc.write`, :mod:`napari_mrcz.dm.images`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, BinaryIO

import numpy as np

from napari_mrcz import threads
from napari_mrcz.dm.images import DMImageLayout, image_layouts
from napari_mrcz.dm.metadata import python_mrcz_info
from napari_mrcz.dm.tags import DMTagParser
from napari_mrcz.mrc.codecs import REVERSE_COMPRESSOR_ENUM
from napari_mrcz.mrc.jsonmeta import encode_meta
from napari_mrcz.mrc.lazy import LazyMRC
from napari_mrcz.mrc.modes import EMAN2_MODE_DTYPES, MODE_DTYPES, REVERSE_CCPEM_ENUM, UINT4_MODE
from napari_mrcz.mrc.read import read_array, read_header_meta
from napari_mrcz.mrc.write import make_header, pixelsize_angstrom, write_array
from napari_mrcz.threads import default_threads, submit

logger = logging.getLogger(__name__)


def readMRC(
    MRCfilename: str | os.PathLike,
    idx: int | tuple[int, int] | None = None,
    endian: str = "le",
    pixelunits: str = "\\AA",
    fileConvention: str = "ccpem",
    useMemmap: bool = False,
    n_threads: int | None = None,
    slices: int | None = None,
    counts: bool = False,
    storage_options: dict | None = None,
) -> tuple[np.ndarray | list[np.ndarray], dict]:
    """Read an MRC or MRCZ file into a numpy array and a meta dict.

    Parameters
    ----------
    MRCfilename : str or os.PathLike
        The file; ``.gz`` and ``.bz2`` files are decompressed into a temporary copy
        first, deleted once read. Or the address of a file on a web server or
        object store (``https://``, ``s3://``, see :mod:`napari_mrcz.remote`).
    idx : int or tuple of int, optional
        Read only frame ``idx`` (returned without its z axis), or frames
        ``first`` to ``last`` inclusive for a tuple (python-mrcz's behaviour).
        Negative values count from the end. Works on compressed files too: only the
        blosc chunks asked for are decompressed.
    endian : {'le', 'be'}
        Byte order to assume if the file declares none.
    pixelunits : str
        Unit of ``meta['pixelsize']``: ``'\\AA'`` (default), ``'nm'``, ``'\\mum'``, ``'pm'``.
    fileConvention : {'ccpem', 'eman2'}
        Mode numbering.
    useMemmap : bool
        Return a copy-on-write ``numpy.memmap`` of plain MRC data instead of reading
        it. Ignored for compressed (MRCZ, ``.gz``, ``.bz2``) and 4-bit files, which
        are decoded into memory.
    n_threads : int, optional
        Slices decompressed in parallel; all cores by default.
    slices : int, optional
        Slices per frame. None reads it from the file: a ``slices`` key in the JSON
        meta, or MZ in files python-mrcz wrote; 0 returns one array.
    counts : bool
        Not in python-mrcz. A gain-separated file (``mrcz compress --ungain``: integer
        electron counts and a gain reference beside them) reads as its original float32
        movie, counts times the gain; True gives the counts as stored (what python-mrcz
        reads), for motion correction with :func:`napari_mrcz.read_gain_reference`.
    storage_options : dict, optional
        Not in python-mrcz. For an address: fsspec's options (credentials,
        ``endpoint_url``, ``anon``).

    Returns
    -------
    image : numpy.ndarray or list of numpy.ndarray
        The data in the file's byte order, (nz, ny, nx), or (ny, nx) for a single
        image, with a trailing axis of 3 (uint8) for RGB files; a list of frames
        when ``slices`` > 0. A gain-separated file gives native float32 (unless
        ``counts``), and ``meta`` its dtype and statistics.
    meta : dict
        Header fields and JSON meta; see :func:`napari_mrcz.mrc.read.layout_meta`.

    Raises
    ------
    MRCZFormatError
        If the file is damaged or truncated.
    RemoteFileError
        If a file on a server cannot be read (not found, access denied, no answer).
    """
    return read_array(
        MRCfilename,
        idx,
        endian=endian,
        pixelunits=pixelunits,
        file_convention=fileConvention,
        use_memmap=useMemmap,
        n_threads=n_threads,
        slices=slices,
        counts=counts,
        storage_options=storage_options,
    )


def readMRCHeader(
    MRCfilename: str | os.PathLike,
    slices: int | None = None,
    endian: str = "le",
    fileConvention: str = "ccpem",
    pixelunits: str = "\\AA",
) -> tuple[dict, int]:
    """Read the header of an MRC/MRCZ file into python-mrcz's meta dict.

    Parameters
    ----------
    MRCfilename : str or os.PathLike
        The file; ``.gz`` and ``.bz2`` files are decompressed into a temporary copy
        first (all of it: the size of the data is checked against the header).
    slices : int, optional
        Slices per frame, overriding the file.
    endian : {'le', 'be'}
        Byte order to assume if the file declares none; the header decides otherwise.
    fileConvention : {'ccpem', 'eman2'}
        Mode numbering.
    pixelunits : str
        Unit of the returned ``pixelsize``: ``'\\AA'``, ``'nm'``, ``'\\mum'`` or ``'pm'``.

    Returns
    -------
    header : dict
        As described in :func:`napari_mrcz.mrc.read.layout_meta`.
    slices : int
        Slices per frame (0 for one array).
    """
    return read_header_meta(MRCfilename, slices, endian, fileConvention, pixelunits)


def writeMRC(
    input_image: Any,
    MRCfilename: str | os.PathLike,
    meta: dict | None = None,
    endian: str = "le",
    dtype: Any = None,
    pixelsize: Sequence[float] | float = (0.1, 0.1, 0.1),
    pixelunits: str = "\\AA",
    shape: Any = None,
    voltage: float = 0.0,
    C3: float = 0.0,
    gain: float = 1.0,
    compressor: str | None = None,
    clevel: int = 1,
    n_threads: int | None = None,
    quickStats: bool = True,
    idx: int | None = None,
    backend: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    origin: Sequence[float] | None = None,
) -> None:
    """Write an array (or a list of frames) as plain MRC or compressed MRCZ.

    Parameters
    ----------
    input_image : array-like or list of numpy.ndarray
        1 to 3 dimensions (z, y, x), a numpy array, memmap, dask array or anything
        indexable slice by slice; or a list of equally shaped 2D or 3D arrays, which
        python-mrcz and :func:`readMRC` give back as a list.
    MRCfilename : str or os.PathLike
        Target file. It is replaced only once the new file is complete.
    meta : dict, optional
        Written as JSON into the extended header (EXTTYP ``json``). numpy values and
        Enums are converted as python-mrcz does.
    endian : {'le', 'be'}
        Byte order of the file.
    dtype : str or numpy.dtype, optional
        Cast to this type before writing; ``'uint4'`` packs values 0-15 two a byte
        (plain MRC only). float64, complex128 and bool are cast to float32, complex64
        and int8, uint8 is widened to uint16 (as mrcfile does).
    pixelsize : float or sequence of float
        One value, (y, x) or (z, y, x), in ``pixelunits``; with (y, x) the z spacing
        is 10 Angstrom, as in python-mrcz.
    pixelunits : str
        ``'\\AA'`` (default), ``'nm'``, ``'\\mum'`` or ``'pm'``.
    shape : optional
        Accepted for python-mrcz compatibility and ignored.
    voltage, C3, gain : float
        Accelerating voltage (kV), spherical aberration (mm) and detector gain, kept in
        the header where python-mrcz keeps them.
    compressor : str, optional
        None for plain MRC, or a blosc codec: ``'zstd'``, ``'lz4'``, ``'lz4hc'``,
        ``'blosclz'``, ``'zlib'`` (``'snappy'`` where the installed blosc has it).
    clevel : int
        Compression level 1 (fastest) to 9.
    n_threads : int, optional
        Slices encoded (cast, measured, compressed) in parallel; all cores by default
        (see :func:`setDefaultThreads`).
    quickStats : bool
        Accepted for python-mrcz compatibility: the header statistics are always exact,
        gathered slice by slice while writing.
    idx : int, optional
        Write the frames into the existing file from z-slice ``idx`` on; ``idx`` equal
        to the number of slices appends. Compressed files can only be appended to.
        Without an existing file, ``idx`` must be 0.
    backend : {None, 'blosc1', 'blosc2'}
        python-mrcz 0.6's choice of compressing library. None and ``'blosc1'`` write
        c-blosc 1 chunks, which every MRCZ reader reads; ``'blosc2'`` (c-blosc2
        chunks, which python-mrcz before 0.6 cannot read) is not written: it raises
        ValueError saying so.
    origin : sequence of float, optional
        Not in python-mrcz. ORIGIN of a new file, (z, y, x) in ``pixelunits`` like
        ``pixelsize``; 0 by default.
    progress : callable, optional
        Not in python-mrcz. Called as ``progress(written, total)`` from the calling
        thread each time a run of z-slices (a few MiB, or one large slice) is
        written; an exception it raises stops the write (a new file is then not
        created and the old one is left as it was).

    Raises
    ------
    ValueError
        For arguments that cannot be written (wrong pixelsize, unknown codec, ...).
    TypeError
        For data MRC cannot store, such as int64 (cast it first).
    """
    _check_backend(backend, compressor)
    write_array(
        input_image,
        MRCfilename,
        meta=meta,
        endian=endian,
        dtype=dtype,
        pixelsize=pixelsize,
        pixelunits=pixelunits,
        voltage=voltage,
        cs=C3,
        gain=gain,
        compressor=compressor,
        clevel=clevel,
        n_threads=n_threads,
        idx=idx,
        progress=progress,
        origin=origin,
        fixity=False,
    )


#: python-mrcz 0.6's ``backend`` values.
BACKENDS = (None, "blosc1", "blosc2")


def _check_backend(backend: str | None, compressor: str | None) -> None:
    """Refuse a ``backend`` this writer cannot honour, as python-mrcz 0.6 words it."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be None, 'blosc1' or 'blosc2', got {backend!r}")
    if backend == "blosc2" and compressor is not None:
        raise ValueError(
            "backend='blosc2' (c-blosc2 chunks, which python-mrcz before 0.6 cannot "
            "read) is not written by napari-mrcz: use backend=None or 'blosc1', whose "
            "c-blosc 1 chunks every MRCZ reader reads"
        )


def writeMRCHeader(f: BinaryIO, header: dict, slices: int, endchar: str = "<") -> int:
    """Write python-mrcz's header dict as an MRC header (and JSON meta) at the start of ``f``.

    Parameters
    ----------
    f : binary file
        Open for writing; left positioned after the extended header.
    header : dict
        With python-mrcz's keys: ``dimensions`` (z, y, x), ``dtype``, and optionally
        ``compressor``, ``pixelsize``, ``pixelunits``, ``minImage``, ``maxImage``,
        ``meanImage``, ``voltage``, ``C3``, ``gain``, ``packedBytes`` and ``meta``.
    slices : int
        Slices per frame, stored in MZ as python-mrcz does (0 for one array).
    endchar : {'<', '>'}
        Byte order.

    Returns
    -------
    int
        Length of the JSON extended header (0 without one).
    """
    dims = [int(n) for n in header["dimensions"]]
    if len(dims) == 2:
        dims = [1, *dims]
    dtype_name = str(header["dtype"]).lower().lstrip("<>|=")
    try:
        mode = REVERSE_CCPEM_ENUM[dtype_name]
    except KeyError:
        raise ValueError(f"Unknown dtype for MRC encountered = {dtype_name}") from None
    if (
        np.dtype(MODE_DTYPES[mode]).itemsize
        != np.dtype("u1" if dtype_name == "uint4" else dtype_name).itemsize
        and mode != UINT4_MODE
    ):
        raise ValueError(
            f"{dtype_name} data is written as {MODE_DTYPES[mode]} (MRC mode "
            f"{mode}): cast it before writing it after this header"
        )
    codec = header.get("compressor")
    codec_id = REVERSE_COMPRESSOR_ENUM.get(codec, 0)
    mrc_header = make_header(
        endchar,
        (dims[0], dims[1], dims[2]),
        mode,
        codec_id,
        pixelsize_angstrom(header.get("pixelsize", 0.1), header.get("pixelunits", "\\AA")),
        int(slices),
        int(slices),
        header.get("voltage", 0.0),
        header.get("C3", 0.0),
        header.get("gain", 1.0),
        # python-mrcz's signature (MX = MY = 0): MZ then counts slices per frame.
        python_mrcz_signature=bool(slices),
    )
    mrc_header["dmin"] = header.get("minImage", 0.0)
    mrc_header["dmax"] = header.get("maxImage", 1.0)
    mrc_header["dmean"] = header.get("meanImage", 0.0)
    mrc_header["packed_bytes"] = int(header.get("packedBytes", 0) or 0)
    encoded = encode_meta(header["meta"]) if isinstance(header.get("meta"), dict) else b""
    if encoded:
        mrc_header["nsymbt"] = len(encoded)
        mrc_header["exttyp"] = b"json"
    f.seek(0)
    f.write(mrc_header.tobytes())
    f.write(encoded)
    return len(encoded)


def defaultHeader() -> dict:
    """Return python-mrcz's default header dict, for :func:`writeMRCHeader`."""
    return {
        "fileConvention": "ccpem",
        "endian": "le",
        "MRCtype": 0,
        "dimensions": np.array([0, 0, 0], dtype=int),
        "dtype": "u1",
        "compressor": None,
        "backend": None,
        "packedBytes": 0,
        "clevel": 1,
        "maxImage": 1.0,
        "minImage": 0.0,
        "meanImage": 0.0,
        "pixelsize": 0.1,
        "pixelunits": "nm",
        "voltage": 300.0,
        "C3": 2.7,
        "gain": 1.0,
        "n_threads": default_threads(),
    }


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


def setDefaultThreads(n_threads: int) -> None:
    """python-mrcz's name of :func:`napari_mrcz.threads.set_default_threads`."""
    threads.set_default_threads(n_threads)


class DMImage:
    """One image of :class:`readDM4`, python-mrcz's structure.

    ``imageData`` is read from the file the first time it is used.

    Parameters
    ----------
    imageInfo : dict, optional
        Calibrations and selected tags, under python-mrcz's keys.
    shape : array-like, optional
        The pixel grid, numpy order.
    imageData : numpy.ndarray, optional
        The data; if absent it is read on first use through ``loader``.
    loader : callable, optional
        Returns the data when ``imageData`` is first used.
    """

    def __init__(
        self,
        *,
        imageInfo: dict | None = None,
        shape: Any = None,
        imageData: np.ndarray | None = None,
        loader: Any = None,
    ) -> None:
        self.imageInfo = {} if imageInfo is None else imageInfo
        self.shape = np.zeros(0, dtype=int) if shape is None else np.asarray(shape)
        self._data = imageData
        self._loader = loader

    @property
    def imageData(self) -> np.ndarray:
        """The image (read on first use)."""
        if self._data is None:
            self._data = np.zeros(1) if self._loader is None else self._loader()
        return self._data

    @imageData.setter
    def imageData(self, value: np.ndarray) -> None:
        self._data = value

    def __repr__(self) -> str:
        return f"<DMImage shape={tuple(self.shape)} info keys={sorted(self.imageInfo)}>"


class readDM4(DMTagParser):
    """Parse a DM4 (or DM3) file, python-mrcz's way.

    All images of the file, the thumbnail included (usually ``im[0]``), are in
    ``im``: each a :class:`DMImage` with ``imageData`` (read on first use, with
    python-mrcz's flip ``[:, ::-1, ...]`` for two or more dimensions), ``imageInfo``
    (python-mrcz's keys: IntensityOrigin/Scale/Units, DimXScale, ..., Voltage, C3,
    HorzFlip, DetectorPixelSize, ...) and ``shape`` (numpy order). The whole tag tree
    is in ``tags``. The file is closed when the constructor returns (``f`` is None).

    Parameters
    ----------
    filename : str or os.PathLike
        The file.
    verbose : bool
        Log the file's structure on this module's loggers (level DEBUG).

    Raises
    ------
    MRCZFormatError
        If the file is damaged, truncated or not DM3/DM4.

    Examples
    --------
    >>> with readDM4("movie.dm4") as dm4:            # doctest: +SKIP
    ...     frames = dm4.im[1].imageData
    """

    def __init__(self, filename: str | os.PathLike, verbose: bool = False) -> None:
        super().__init__(filename, verbose=verbose)
        self.im: list[DMImage] = []
        self.parse_file()
        for layout in image_layouts(self.filename, self.tags, self.header.byteorder):
            if verbose:
                logger.debug(
                    "%s: image %d, DM type %d, shape %s at byte %d",
                    self.filename,
                    layout.index,
                    layout.data_type,
                    layout.grid_shape,
                    layout.offset,
                )
            self.im.append(
                DMImage(
                    imageInfo=python_mrcz_info(layout.image),
                    shape=np.array(layout.grid_shape),
                    loader=lambda layout=layout: _python_mrcz_data(layout),
                )
            )

    def __enter__(self) -> readDM4:
        return self

    def __exit__(self, *exc_info) -> None:
        """Nothing to release: the file is closed once parsed."""

    def parseTagDir(self, parent: bytes = b"/", depth: int = 0) -> tuple[str, dict[str, Any]]:
        """python-mrcz's name of :meth:`~napari_mrcz.dm.tags.DMTagParser.parse_group`."""
        return self.parse_group(parent, depth)

    def parseTag(self, parent: bytes = b"/") -> tuple[str, Any]:
        """python-mrcz's name of :meth:`~napari_mrcz.dm.tags.DMTagParser.parse_tag`."""
        return self.parse_tag(parent)

    def discardTag(self) -> None:
        """python-mrcz's name of :meth:`~napari_mrcz.dm.tags.DMTagParser.skip_tag`."""
        self.skip_tag()

    def retrieveTagData(self, tag_ninfo: int) -> Any:
        """python-mrcz's name of :meth:`~napari_mrcz.dm.tags.DMTagParser.tag_data`."""
        return self.tag_data(tag_ninfo)


def _python_mrcz_data(layout: DMImageLayout) -> np.ndarray:
    data = layout.read()
    return data[:, ::-1, ...] if len(layout.grid_shape) >= 2 else data


def asyncReadDM4(*args: Any, **kwargs: Any) -> Future:
    """Run :class:`readDM4` in the background.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`readDM4`.

    Returns
    -------
    concurrent.futures.Future
        Its ``result()`` is the :class:`readDM4` object.
    """
    return submit(readDM4, *args, **kwargs)


def open_lazy(path: Any, **kwargs: Any) -> LazyMRC:
    """Open an MRC/MRCZ file for random access without reading its data.

    See :class:`~napari_mrcz.mrc.lazy.LazyMRC`.
    """
    return LazyMRC(path, **kwargs)


#: python-mrcz's name for the EMAN2 mode table.
EMAN2_ENUM = EMAN2_MODE_DTYPES

#: python-mrcz's flags: compression is always available here, through c-blosc 1.x.
BLOSC_PRESENT = True
CAN_COMPRESS = True
#: True when the optional blosc2 package is there to read c-blosc2-format chunks.
BLOSC2_PRESENT = importlib.util.find_spec("blosc2") is not None

# snake_case names for the python-mrcz API
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
