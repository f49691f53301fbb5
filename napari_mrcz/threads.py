"""Default thread counts and the executor behind the async functions.

A script may end right after ``asyncWriteMRC`` or during a save from napari's panel:
the interpreter then waits for them, before :mod:`concurrent.futures` refuses new
work (which every write needs for its encoding threads), and an error in an async
call that the script never looked at is warned about (an
:class:`~napari_mrcz.errors.MRCZWarning` on stderr).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from napari_mrcz.errors import MRCZWarning

logger = logging.getLogger(__name__)

#: The cores this process may run on.
_available_cores = (
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
)
#: All of them by default, as python-mrcz.
_default_threads = _available_cores

#: Slices are handed to a thread in runs of about this many bytes (one slice when a
#: slice is larger): a hand-off costs the same for a 64 KiB particle as for a 16 MiB
#: frame, and on small slices the hand-offs, not the codec, set the pace.
TASK_BYTES = 4 * 2**20

#: One background worker, as python-mrcz has: async reads and writes queue up on it.
_async_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-mrcz-io")


class WatchedFuture(Future):
    """A future that knows whether its caller looked at how it ended."""

    looked_at = False

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        finally:  # a timeout is no look at how it ended
            self.looked_at = self.looked_at or self.done()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return super().exception(timeout)
        finally:
            self.looked_at = self.looked_at or self.done()


#: Async calls not yet done, and failed ones whose caller has not looked at them.
_watched: set[WatchedFuture] = set()
_watched_lock = threading.Lock()
#: Threads of ours (napari's background saves) that the interpreter must wait for.
_finishing: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


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


def slices_per_task(slice_nbytes: int, count: int, workers: int) -> int:
    """How many z-slices of ``slice_nbytes`` bytes one thread task takes at a time.

    About :data:`TASK_BYTES` of slices, at least one, and few enough that ``count``
    slices still give each of ``workers`` threads some.
    """
    per_task = max(1, TASK_BYTES // max(1, int(slice_nbytes)))
    return max(1, min(per_task, -(-int(count) // max(1, int(workers)))))


def submit(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Run ``function`` on the background I/O worker and return its future.

    The interpreter does not end before the call does, and a failure nobody looked
    at is warned about then (see :func:`finish_pending`).
    """
    future = WatchedFuture()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            outcome = function(*args, **kwargs)
        except BaseException as error:  # handed to the caller through the future
            future.set_exception(error)
        else:
            future.set_result(outcome)

    with _watched_lock:
        _watched.add(future)
    future.add_done_callback(_forget_if_fine)
    _async_executor.submit(run)
    return future


def _forget_if_fine(future: Future) -> None:
    if not future.cancelled() and Future.exception(future) is not None:
        return  # kept until its caller looks at it, or the interpreter ends
    with _watched_lock:
        _watched.discard(future)


def finish_before_exit(thread: threading.Thread) -> None:
    """Have the interpreter wait for ``thread`` (a save) before it ends.

    Python joins its threads only after :mod:`concurrent.futures` has stopped taking
    work, which every write needs for its encoding threads: a save still running
    then would fail. :func:`finish_pending` joins ``thread`` before that.
    """
    _finishing.add(thread)


def finish_pending() -> None:
    """Wait for every save and async call still pending; warn about unseen failures.

    Run when the interpreter ends, so that a script whose last call is
    ``asyncWriteMRC``, or that ends during a save from napari's panel, gets its
    file, and learns if it did not.
    """
    for thread in list(_finishing):
        thread.join()
    with _watched_lock:
        watched = list(_watched)
    for future in watched:
        error = Future.exception(future)  # waits; does not count as looking
        if error is not None and not future.looked_at:
            logger.debug("an async call failed unseen", exc_info=error)
            warnings.warn(
                f"a background write or read failed as the script ended: {error}",
                MRCZWarning,
                stacklevel=1,
            )


# concurrent.futures stops taking work in a hook of threading's interpreter shutdown;
# those hooks run in reverse order of registration, so this one, registered after
# concurrent.futures was imported, runs first, while writes can still start threads.
getattr(threading, "_register_atexit", atexit.register)(finish_pending)
