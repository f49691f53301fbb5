"""Several files of the same shape seen as one array with a leading file axis.

napari's File > Open Files as Stack hands the reader a list of files; this stacks
them without reading them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_mrcz.arraylike import ArrayLike
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.lazy import LazyMRC


class LazyStack(ArrayLike):
    """Files of one shape and dtype as a read-only array of shape (n_files, ...).

    Indexing reads only the files and the z-slices asked for. Owns the files:
    :meth:`close` closes them all.

    Parameters
    ----------
    members : sequence of LazyMRC
        The files, in stack order.

    Raises
    ------
    MRCZFormatError
        If a file differs from the first in shape or dtype (naming it); the files
        are closed.
    """

    def __init__(self, members: Sequence[LazyMRC]) -> None:
        self.members = list(members)
        if not self.members:
            raise ValueError("a stack needs at least one file")
        first = self.members[0]
        for member in self.members[1:]:
            for what, value, expected in (
                ("shape", member.shape, first.shape),
                ("dtype", member.dtype, first.dtype),
            ):
                if value != expected:
                    self.close()
                    raise MRCZFormatError(
                        member.path,
                        f"cannot be stacked with {os.path.basename(first.path)}: "
                        f"its {what} is {value}, not {expected}",
                    )
        self.shape: tuple[int, ...] = (len(self.members), *first.shape)
        self.dtype: np.dtype = first.dtype

    @property
    def paths(self) -> list[str]:
        """The files, in stack order."""
        return [member.path for member in self.members]

    def __repr__(self) -> str:
        return f"<LazyStack of {len(self.members)} files shape={self.shape} dtype={self.dtype}>"

    def __getitem__(self, key: Any) -> np.ndarray:
        full_key = self.expand_key(key)
        if full_key is None:  # newaxis or several Ellipses: numpy's rules on all the data
            return np.asarray(self)[key]
        key = full_key
        file_key, rest = key[0], key[1:] or (slice(None),)
        if isinstance(file_key, np.ndarray) and file_key.ndim == 0 and file_key.dtype.kind in "iu":
            file_key = int(file_key)
        if isinstance(file_key, (int, np.integer)):
            count = len(self.members)
            if not -count <= file_key < count:
                raise IndexError(f"file {file_key} is out of range for {count} files")
            return np.asarray(self.members[int(file_key)][rest])
        if any(not isinstance(part, (int, np.integer, slice)) for part in rest):
            return np.asarray(self)[key]  # numpy's rules for several index arrays
        wanted = np.arange(len(self.members))[file_key]
        if wanted.size == 0:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)[(slice(None), *rest)]
        return np.stack([np.asarray(self.members[index][rest]) for index in wanted])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = np.empty(self.shape, dtype=self.dtype)
        for index, member in enumerate(self.members):
            data[index] = member[...]
        return data if dtype is None else data.astype(dtype, copy=False)

    def close(self) -> None:
        """Close every file (and delete their temporary copies)."""
        for member in self.members:
            member.close()

    def __enter__(self) -> LazyStack:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_stack(paths: Sequence[str | os.PathLike]) -> LazyStack:
    """Open files of one shape and dtype as a :class:`LazyStack`, reading no data.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        MRC, MRCZ or compressed (``.gz``, ``.bz2``) MRC files.

    Returns
    -------
    LazyStack

    Raises
    ------
    MRCZFormatError
        If a file is damaged, or differs from the first in shape or dtype.
    """
    members: list[LazyMRC] = []
    try:
        for path in paths:
            members.append(LazyMRC(path))
    except BaseException:
        for member in members:
            member.close()
        raise
    return LazyStack(members)
