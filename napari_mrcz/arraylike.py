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
