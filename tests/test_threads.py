"""Background calls finish, and tell of their failures, before the interpreter ends.

asyncReadMRC/asyncWriteMRC queue on one background worker (submit); a script that
ends right after them still gets its files, because finish_pending runs first at
shutdown, while new threads can still be started. A failure the caller never looked
at is warned about then, a failure it did look at is not. The default thread count
is every core the process may run on, and can be set, never below one.

(tests/cli/test_complete.py checks asyncWriteMRC as a script's last call.)
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.errors import MRCZWarning
from napari_mrcz.threads import (
    WatchedFuture,
    available_cores,
    default_threads,
    finish_before_exit,
    finish_pending,
    set_default_threads,
    submit,
)

UNSEEN = "a background write or read failed as the script ended"


def run_script(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def fail(message: str) -> None:
    raise OSError(message)


@pytest.fixture
def worker_held():
    """The background worker, busy until the test sets the returned event."""
    release = threading.Event()
    holder = submit(release.wait)
    yield release
    release.set()
    holder.result()


@pytest.fixture
def restore_default_threads():
    before = default_threads()
    yield
    set_default_threads(before)


def pending_warnings() -> list[str]:
    """The messages finish_pending warns with now (ours only)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        finish_pending()
    return [str(w.message) for w in caught if issubclass(w.category, MRCZWarning)]


def set_later(event: threading.Event) -> threading.Timer:
    """Set ``event`` from another thread a little later (so a call is still pending)."""
    timer = threading.Timer(0.1, event.set)
    timer.start()
    return timer


# ------------------------------------------------------------------------- submit


def test_a_call_runs_in_the_background_and_gives_its_result():
    future = submit(lambda x, y: (x + y, threading.current_thread()), 2, y=3)
    total, thread = future.result(timeout=30)
    assert total == 5
    assert thread is not threading.current_thread()
    assert thread.name.startswith("napari-mrcz-io")


def test_calls_run_one_at_a_time_in_the_order_submitted(worker_held):
    ran: list[int] = []
    futures = [submit(ran.append, n) for n in range(5)]
    assert not any(future.done() for future in futures)  # queued behind the held worker
    worker_held.set()
    concurrent.futures.wait(futures, timeout=30)
    assert ran == [0, 1, 2, 3, 4]


def test_a_failed_call_raises_its_error_to_the_caller():
    future = submit(fail, "no space for movie.mrcz")
    with pytest.raises(OSError, match=r"no space for movie\.mrcz") as caught:
        future.result(timeout=30)
    assert future.exception() is caught.value


def test_a_queued_call_cancelled_never_runs_and_is_not_warned_about(worker_held):
    ran: list[str] = []
    queued = submit(ran.append, "should not run")
    assert queued.cancel()
    worker_held.set()
    submit(ran.append, "after").result(timeout=30)  # the queue has moved past it
    assert ran == ["after"]
    assert queued.cancelled()
    assert UNSEEN not in " ".join(pending_warnings())


def test_a_call_that_returns_none_is_done_fine():
    future = submit(lambda: None)
    assert future.result(timeout=30) is None
    assert future.exception() is None


# ------------------------------------------------------------------------- WatchedFuture


def test_a_watched_future_is_a_future_not_yet_looked_at():
    future = WatchedFuture()
    assert isinstance(future, concurrent.futures.Future)
    assert not future.looked_at


@pytest.mark.parametrize("look", ["result", "exception"])
def test_asking_how_it_ended_counts_as_looking(look):
    future = WatchedFuture()
    future.set_exception(OSError("disk full"))
    if look == "result":
        with pytest.raises(OSError, match="disk full"):
            future.result()
    else:
        assert str(future.exception()) == "disk full"
    assert future.looked_at


def test_waiting_on_a_watched_future_does_not_count_as_looking():
    future = WatchedFuture()
    future.set_result(42)
    done, _ = concurrent.futures.wait([future])
    assert done == {future}
    assert future.done()
    assert not future.looked_at


# ------------------------------------------------------------------------- finish_pending


def test_a_failure_nobody_looked_at_is_warned_about():
    future = submit(fail, "cannot write /data/out.mrcz")
    concurrent.futures.wait([future], timeout=30)
    try:
        [message] = [m for m in pending_warnings() if "/data/out.mrcz" in m]
        assert message == f"{UNSEEN}: cannot write /data/out.mrcz"
    finally:
        future.exception()  # looked at now: not warned about again as pytest ends


@pytest.mark.parametrize("look", ["result", "exception"])
def test_a_failure_the_caller_looked_at_is_not_warned_about(look):
    future = submit(fail, f"seen by {look}")
    concurrent.futures.wait([future], timeout=30)
    if look == "result":
        with pytest.raises(OSError, match=f"seen by {look}"):
            future.result()
    else:
        assert isinstance(future.exception(), OSError)
    assert not [m for m in pending_warnings() if f"seen by {look}" in m]


def test_a_look_that_timed_out_before_the_call_ended_is_not_a_look(worker_held):
    future = submit(fail, "failed after the caller stopped waiting")
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=0)
    worker_held.set()
    concurrent.futures.wait([future], timeout=30)
    try:
        assert [m for m in pending_warnings() if "after the caller stopped" in m]
    finally:
        future.exception()


def test_finish_pending_waits_for_a_call_still_running():
    go, ran = threading.Event(), []
    future = submit(lambda: (go.wait(30), ran.append("written")))
    timer = set_later(go)
    finish_pending()
    assert future.done()
    assert ran == ["written"]
    timer.join()


def test_finish_pending_waits_for_a_save_thread_given_to_it():
    go, saved = threading.Event(), []
    thread = threading.Thread(target=lambda: (go.wait(30), saved.append("map.mrc")))
    thread.start()
    finish_before_exit(thread)
    timer = set_later(go)
    finish_pending()
    assert not thread.is_alive()
    assert saved == ["map.mrc"]
    timer.join()


def test_finish_pending_with_nothing_pending_returns_at_once():
    finished = threading.Thread(target=lambda: None)
    finished.start()
    finished.join()
    finish_before_exit(finished)
    assert UNSEEN not in " ".join(pending_warnings())


# ------------------------------------------------------------------------- at exit


def test_at_exit_only_the_failure_nobody_looked_at_is_reported(tmp_path):
    target = tmp_path / "written-at-exit.txt"
    result = run_script(
        """
        import sys, threading, pathlib
        from napari_mrcz.threads import submit

        def fail(message):
            raise OSError(message)

        def slow_write(path):
            threading.Event().wait(0.2)
            pathlib.Path(path).write_text("complete")

        seen = submit(fail, "failure the script handled")
        try:
            seen.result()
        except OSError:
            pass
        submit(fail, "failure nobody looked at")
        submit(slow_write, sys.argv[1])
        """,
        str(target),
    )
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "complete"
    assert result.stderr.count("MRCZWarning") == 1, result.stderr
    assert f"{UNSEEN}: failure nobody looked at" in result.stderr
    assert "failure the script handled" not in result.stderr


def test_a_save_thread_given_to_finish_before_exit_can_still_start_threads_at_exit(tmp_path):
    """A save running as the script ends needs encoding threads; it still gets them.

    The save waits until interpreter shutdown has begun (a hook registered after
    napari_mrcz's, so run before it), then encodes on a new ThreadPoolExecutor.
    """
    target = tmp_path / "saved.txt"
    result = run_script(
        """
        import pathlib, sys, threading
        from concurrent.futures import ThreadPoolExecutor
        from napari_mrcz.threads import finish_before_exit

        ending = threading.Event()

        def save(path):
            ending.wait(30)
            with ThreadPoolExecutor(2) as pool:
                parts = list(pool.map(str.upper, ["slice-0 ", "slice-1"]))
            pathlib.Path(path).write_text("".join(parts))

        thread = threading.Thread(target=save, args=(sys.argv[1],))
        thread.start()
        finish_before_exit(thread)
        threading._register_atexit(ending.set)  # the script has ended
        """,
        str(target),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert target.read_text() == "SLICE-0 SLICE-1"


# ------------------------------------------------------------------------- thread counts


def test_by_default_every_core_the_process_may_use_is_used():
    result = run_script(
        """
        import os
        from napari_mrcz.threads import available_cores, default_threads
        print(len(os.sched_getaffinity(0)), available_cores(), default_threads())
        """
    )
    assert result.returncode == 0, result.stderr
    cores, available, default = map(int, result.stdout.split())
    assert available == cores
    assert default == cores


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_a_process_pinned_to_one_core_uses_one_thread():
    """A cluster job given one core of a large machine does not start one per core."""
    result = run_script(
        """
        import os
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        from napari_mrcz.threads import available_cores, default_threads
        print(available_cores(), default_threads(), os.cpu_count())
        """
    )
    assert result.returncode == 0, result.stderr
    available, default, _ = map(int, result.stdout.split())
    assert (available, default) == (1, 1)


def test_available_cores_is_at_least_one():
    assert available_cores() >= 1


def test_the_default_can_be_set(restore_default_threads):
    set_default_threads(3)
    assert default_threads() == 3
    set_default_threads(1)
    assert default_threads() == 1


def test_python_mrcz_name_sets_the_same_default(restore_default_threads):
    napari_mrcz.setDefaultThreads(2)
    assert default_threads() == 2


def test_a_count_given_as_another_integer_type_is_kept_as_int(restore_default_threads):
    set_default_threads(np.int64(4))
    assert default_threads() == 4
    assert type(default_threads()) is int


@pytest.mark.parametrize("count", [0, -1])
def test_fewer_than_one_thread_is_refused_and_the_default_kept(count, restore_default_threads):
    set_default_threads(2)
    with pytest.raises(ValueError, match=f"at least 1, got {count}"):
        set_default_threads(count)
    assert default_threads() == 2
