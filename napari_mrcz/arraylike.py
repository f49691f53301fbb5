"""The numpy-array face shared by the engine's lazy file arrays (MRC, MRCZ, DM, stacks)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class ArrayLike:
    """The numpy-array attributes every lazy file array derives from ``shape``/``dtype``."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Size of the data once read."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def expand_key(self, key: Any) -> tuple | None:
        """``key`` as a tuple with its Ellipsis expanded to full slices.

        None when it holds ``None`` (newaxis) or several Ellipses: numpy's rules are
        then applied to the whole array by the caller.

        Raises
        ------
        IndexError
            For more indices than dimensions.
        """
        key = key if isinstance(key, tuple) else (key,)
        ellipses = [at for at, part in enumerate(key) if part is Ellipsis]
        if len(ellipses) > 1 or any(part is None for part in key):
            return None
        if ellipses:
            at = ellipses[0]
            key = key[:at] + (slice(None),) * (self.ndim + 1 - len(key)) + key[at + 1 :]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for a {self.ndim}-dimensional array")
        return key


class LazyView(ArrayLike):
    """A lazy array seen another way, computed from what is read of it, as it is read.

    The one view type of the package: a cast (``dtype``), a value function such as
    the amplitude or phase of complex data (``convert``), an axis permutation
    (``order``), or several at once. Only the part of ``data`` a key asks for is
    read, except for a permutation that moves the first axis, with ``keep_whole``:
    the whole of ``data`` is then read on the first access and kept, as a writer that
    goes slice by slice through it would otherwise read it once per slice.

    Parameters
    ----------
    data : array-like
        Anything with ``shape``, ``dtype`` and numpy's basic indexing.
    dtype : numpy.dtype, optional
        The values' type once converted; ``data.dtype`` (or ``convert``'s result
        type) if not given.
    convert : callable, optional
        Applied to each block read (numpy array in, numpy array of ``dtype`` out).
    order : tuple of int, optional
        The axes of ``data`` in the view's order (as ``numpy.transpose`` takes them).
    keep_whole : bool
        See above.
    """

    def __init__(
        self,
        data: Any,
        dtype: Any = None,
        convert: Any = None,
        order: tuple[int, ...] | None = None,
        keep_whole: bool = False,
    ) -> None:
        self.data = data
        self.order = None if order is None else tuple(int(axis) for axis in order)
        self.convert = convert
        self.dtype = np.dtype(data.dtype if dtype is None else dtype)
        shape = tuple(data.shape)
        self.shape = shape if self.order is None else tuple(shape[axis] for axis in self.order)
        self.keep_whole = keep_whole
        self._whole: np.ndarray | None = None

    def _converted(self, block: Any) -> np.ndarray:
        block = np.asarray(block)
        if self.convert is not None:
            block = self.convert(block)
        return block.astype(self.dtype, copy=False)

    def __getitem__(self, key: Any) -> np.ndarray:
        if self.order is None:
            return self._converted(self.data[key])
        if self._whole is not None:
            return self._whole[key]
        expanded = self.expand_key(key)
        basic = expanded is not None and all(
            isinstance(part, (int, np.integer, slice)) for part in expanded
        )
        if not basic or (self.keep_whole and self.order[0] != 0):
            whole = self._converted(self.data[...]).transpose(self.order)
            if self.keep_whole:
                self._whole = whole
            return whole[key]
        expanded = expanded + (slice(None),) * (self.ndim - len(expanded))
        source_key: list[Any] = [slice(None)] * self.ndim
        for view_axis, source_axis in enumerate(self.order):
            source_key[source_axis] = expanded[view_axis]
        block = self._converted(self.data[tuple(source_key)])
        kept = [axis for axis in range(self.ndim) if isinstance(source_key[axis], slice)]
        wanted = [
            self.order[axis] for axis in range(self.ndim) if isinstance(expanded[axis], slice)
        ]
        return block.transpose([kept.index(axis) for axis in wanted])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[(slice(None),) * self.ndim]
        return whole if dtype is None else whole.astype(dtype)


def as_stack(data: Any) -> Any:
    """``data`` as (nz, ny, nx): lower-dimensional data is read and reshaped."""
    if data.ndim == 3:
        return data
    array = np.asarray(data)
    return array.reshape((1,) * (3 - array.ndim) + array.shape)
