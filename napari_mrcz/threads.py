"""Default thread counts and the executor behind the async functions."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

#: The cores this process may run on.
_available_cores = (
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
)
#: All of them by default, as python-mrcz.
_default_threads = _available_cores

#: One background worker, as python-mrcz has: async reads and writes queue up on it.
_async_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-mrcz-io")


def available_cores() -> int:
    """Return how many cores this process may run on."""
    return _available_cores


def default_threads() -> int:
    """Return how many slices are encoded or decoded at once when a call does not say."""
    return _default_threads


def set_default_threads(n_threads: int) -> None:
    """Set how many slices are compressed or decompressed at once by default.

    Used when a call does not give ``n_threads``; blosc itself always runs one
    thread per slice (see :mod:`napari_mrcz.mrc.codecs`).

    Parameters
    ----------
    n_threads : int
        At least 1. All virtual cores are used by default.
    """
    global _default_threads
    if int(n_threads) < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    _default_threads = int(n_threads)


def submit(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Run ``function`` on the background I/O worker and return its future."""
    return _async_executor.submit(function, *args, **kwargs)
