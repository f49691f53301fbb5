"""Any file the engine reads as a dask array, to compute on many cores or many machines.

The tasks of a :func:`to_dask` array carry the file's name and parsed header (a
pickled :class:`~napari_mrcz.mrc.lazy.LazyMRC` or
:class:`~napari_mrcz.dm.images.LazyDMArray`), never its data: each task reads its
own z-slices where it runs. The array computes with dask's threaded scheduler as
with a ``distributed.Client`` whose workers are other processes, or other machines
that see the same file system. dask is imported only when :func:`to_dask` is called:
the engine does not need it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from napari_mrcz.formats import lazy_images
from napari_mrcz.remote import is_url, redact

#: What to install when dask is missing.
DASK_MISSING = (
    "napari_mrcz.to_dask needs dask's arrays: pip install 'dask[array]' "
    "(or 'napari-mrcz[cluster]' for the mrcz command on a cluster too)"
)


def _dask_array() -> Any:
    """The ``dask.array`` module, or an ImportError saying how to install it."""
    try:
        import dask.array
    except ImportError as error:
        raise ImportError(DASK_MISSING) from error
    return dask.array


def to_dask(
    path: str | os.PathLike,
    slices_per_chunk: int | None = None,
    *,
    image: int = 0,
    storage_options: dict | None = None,
) -> Any:
    """Open an MRC, MRCZ or DM file as a dask array, reading no data.

    Parameters
    ----------
    path : str or os.PathLike
        An MRC or MRCZ file (``.gz``/``.bz2`` included: each process that reads it
        decompresses its own temporary copy), or a DM3/DM4 file. Workers must see
        it under the same absolute name. An MRC or MRCZ file on a server (an address,
        see :mod:`napari_mrcz.remote`) is read by every worker from there.
    slices_per_chunk : int, optional
        z-slices (DM: frames along the first axis) per chunk; 1 by default, so that
        an MRCZ chunk is one blosc chunk of the file.
    image : int
        Which image of a DM file, numbered as :func:`napari_mrcz.read_dm` returns
        them (thumbnail left out).
    storage_options : dict, optional
        For an address: fsspec's options (credentials, ``endpoint_url``, ``anon``),
        handed to the workers with the array.

    Returns
    -------
    dask.array.Array
        The shape, dtype and axis order of :class:`~napari_mrcz.LazyMRC` (MRC: file
        order, (nz, ny, nx), or (ny, nx) for one image, RGB adding an axis of 3) or
        of :func:`~napari_mrcz.read_dm` (DM), chunked along the first axis for
        stacks and volumes, one chunk for a single image. Reading a chunk costs
        what a lazy read of its slices costs; the file is opened once per process.

    Raises
    ------
    ImportError
        If dask is not installed (saying how to install it).
    MRCZFormatError
        If the file is damaged or not MRC, MRCZ or DM.
    ValueError
        If ``slices_per_chunk`` is less than 1.
    IndexError
        If a DM file has no image ``image``.

    Examples
    --------
    >>> movie = to_dask("movie.mrcz")  # doctest: +SKIP
    >>> movie.mean(axis=0).compute()  # on a distributed.Client, on its workers  # doctest: +SKIP
    """
    dask_array = _dask_array()
    from dask.base import tokenize

    step = 1 if slices_per_chunk is None else int(slices_per_chunk)
    if step < 1:
        raise ValueError(f"slices_per_chunk must be 1 or more, not {slices_per_chunk}")
    path = os.fspath(path)
    if not is_url(path):
        path = os.path.abspath(path)
    # no slice cache: dask keeps the chunks it needs
    images = lazy_images(path, cache_bytes=0, storage_options=storage_options)
    if not -len(images) <= image < len(images):
        shown = redact(path) if is_url(path) else path
        raise IndexError(f"{shown} has {len(images)} image(s), not an image {image}")
    stacked = images[image].stacked
    source = images[image].data
    getter: Callable[[Any, tuple[slice, ...]], np.ndarray] = (
        _read_z_slices if stacked else _read_whole
    )
    shape = source.shape
    chunks = (min(step, shape[0]), *shape[1:]) if stacked else shape
    if is_url(path):  # the same address, size and header: the same file
        layout = images[image].layout
        version: tuple = (layout.file_size, layout.header.tobytes())
    else:
        stat = os.stat(path)
        version = (stat.st_size, stat.st_mtime_ns)
    name = "mrcz-" + tokenize(path, *version, image, chunks)
    return dask_array.from_array(
        source,
        chunks=chunks,
        name=name,
        getitem=getter,
        meta=np.empty((0,) * len(shape), dtype=source.dtype),
        inline_array=False,
    )


def _read_z_slices(source: Any, key: tuple[slice, ...]) -> np.ndarray:
    """One chunk of a stack: its z-slices (frames) read straight into a new array."""
    return source.read_slices(key[0].start, key[0].stop)[(slice(None), *key[1:])]


def _read_whole(source: Any, key: tuple[slice, ...]) -> np.ndarray:
    """The one chunk of a single image."""
    return np.asarray(source)[key]
