"""Default thread counts and the executor behind the async functions."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_default_threads = os.cpu_count() or 1

#: One background worker, as python-mrcz has: async reads and writes queue up on it.
_async_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-mrcz-io")


def default_threads() -> int:
    """Return the number of blosc threads used when a call does not say."""
    return _default_threads


def setDefaultThreads(n_threads: int) -> None:
    """Set the number of blosc threads used when ``n_threads`` is not given.

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
