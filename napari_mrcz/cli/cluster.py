"""The ``mrcz`` command's files as tasks on a dask.distributed cluster.

With ``--scheduler ADDRESS`` or ``--scheduler-file FILE``, ``mrcz compress``,
``decompress`` and ``convert`` plan the run here exactly as a local run does, then
hand each file to the cluster as one task (:func:`convert_on_worker`): a worker
writes the file's outputs under temporary names beside their targets, verifies them
and publishes them, with the same steps as a local run
(:func:`~napari_mrcz.cli.batch.write_outputs`). This process draws the progress bar
from the workers' reports, deletes a source (``--delete-source``) only once it holds
its verified result, and prints the final table. ``mrcz validate`` sends each file's
checks to a worker and prints the verdicts in order.

What can go wrong on a cluster, and what then happens:

* A worker dies mid-file (killed, out of memory, node lost): dask runs the task
  again on another worker (the client says so). Every temporary file of a run
  carries the run's tag; the end of the run removes what a dead worker left.
* The scheduler goes away: the run ends with an error and exit status 1, the files
  not done marked failed and their sources kept. A task still running on a worker
  cannot reach the scheduler at its next progress report, stops there and removes
  its temporary files, so no partial output appears.
* Ctrl-C (or SIGTERM, SIGHUP): the run's cancel flag (a ``distributed.Event``) is
  set; waiting tasks return at once, running ones stop at their next progress report
  and remove their temporary files. The run waits for them, as a local run does.

Workers need napari-mrcz (the same version: the outputs are then byte for byte
those of a local run) and must see the files under the same names. ``distributed``
is imported only here, and only when a run asks for a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import secrets
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TextIO

from napari_mrcz.__about__ import __version__
from napari_mrcz.cli.batch import (
    EXIT_FAILED,
    STOP_SIGNALS,
    RunCancelledError,
    Runner,
    Settings,
    SourceCheck,
    Task,
    Terminated,
    delete_source,
    estimated_bytes,
    raise_terminated,
    record_outcome,
    run_batch,
    write_outputs,
)
from napari_mrcz.mrc.atomic import remove_temporaries, temporary_name
from napari_mrcz.tools.validate import Finding, validate_file

logger = logging.getLogger(__name__)

#: What to install for the cluster options.
DISTRIBUTED_MISSING = "needs dask.distributed: pip install 'napari-mrcz[cluster]'"

#: Seconds between a task's progress reports, which are also its cancel checks.
REPORT_SECONDS = 0.25
#: Seconds between checks that the scheduler is still there while waiting.
POLL_SECONDS = 0.5

#: How distributed says a future was cancelled (its own class, or asyncio's).
_CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)


class ClusterError(Exception):
    """The scheduler cannot be reached, was lost, or its workers cannot run the files."""


def on_cluster(args: argparse.Namespace) -> bool:
    """True if the command line names a scheduler."""
    return bool(getattr(args, "scheduler", None) or getattr(args, "scheduler_file", None))


def scheduler_named(args: argparse.Namespace) -> str:
    """The scheduler the command line names, for messages."""
    return args.scheduler or f"of {args.scheduler_file}"


def _engine_version() -> str:
    """napari-mrcz's version where this runs (on each worker)."""
    return __version__


@contextlib.contextmanager
def connected(args: argparse.Namespace) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler the command line names, closed after.

    Raises
    ------
    ClusterError
        If the scheduler (or its file) cannot be reached, or a worker cannot run
        napari-mrcz or runs another version of it.
    """
    import dask.config
    from dask.utils import parse_timedelta
    from distributed import Client

    where = scheduler_named(args)
    # dask's connect timeout (30 s; DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT sets it)
    seconds = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")
    if args.scheduler_file is not None:
        deadline = time.monotonic() + seconds
        while not os.path.exists(args.scheduler_file):  # its scheduler may be starting
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"no scheduler file {args.scheduler_file} after {seconds:.0f} s "
                    "(start one with: dask scheduler --scheduler-file FILE)"
                )
            time.sleep(0.1)
    try:
        client = Client(
            args.scheduler,
            scheduler_file=args.scheduler_file,
            timeout=seconds,
            set_as_default=False,
        )
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(f"cannot reach the dask scheduler {where}: {error}") from None
    try:
        _check_workers(client)
        yield client
    finally:
        if client.status != "running":  # lost: distributed would log its failed reconnection
            logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
        with contextlib.suppress(Exception, *_CANCELLED):
            client.close(timeout=5)


def _check_workers(client: Any) -> None:
    """Raise ClusterError unless every worker runs this napari-mrcz version."""
    versions = client.run(_engine_version, on_error="return")
    wrong = {worker: version for worker, version in versions.items() if version != __version__}
    if wrong:
        worker, version = sorted(wrong.items())[0]
        found = (
            f"runs napari-mrcz {version}"
            if isinstance(version, str)
            else f"cannot run napari-mrcz ({type(version).__name__}: {version})"
        )
        raise ClusterError(
            f"dask worker {worker} {found}; install napari-mrcz {__version__} "
            f"where the workers run ({len(wrong)} of {len(versions)} workers)"
        )


def _tag(run_id: str, index: int) -> str:
    """The tag of one task's temporary files: the run's, then the task's number."""
    return f"{run_id}-{index}-"


@dataclass
class WorkerResult:
    """What a worker sends back for one file."""

    task: Task
    check: SourceCheck | None
    warnings: list[tuple[str, type[Warning]]]
    attempt: str
    done: int
    total: int


class _Reporter:
    """A task's progress, reported to the client; raises when the run is cancelled."""

    def __init__(self, run_id: str, index: int, estimate: int) -> None:
        from distributed import Event, get_worker

        self.worker = get_worker()
        self.topic = _progress_topic(run_id)
        self.cancel_flag = Event(_cancel_name(run_id))
        self.index = index
        self.attempt = secrets.token_hex(4)
        self.done, self.total = 0, estimate
        self.reported = -float("inf")
        self.lock = threading.Lock()

    def cancelled(self) -> bool:
        """True if the run was cancelled, or the scheduler cannot be asked any more."""
        try:
            return bool(self.cancel_flag.is_set())
        except (Exception, *_CANCELLED):  # no scheduler: nobody wants this file now
            logger.warning("cannot reach the scheduler: stopping %s", self.index, exc_info=True)
            return True

    def report(self) -> None:
        """Send the bytes done; raise RunCancelledError if the run is cancelled."""
        with self.lock:
            self.reported = time.monotonic()
            message = {
                "task": self.index,
                "attempt": self.attempt,
                "done": self.done,
                "total": self.total,
            }
        self.worker.log_event(self.topic, message)
        if self.cancelled():
            raise RunCancelledError

    def tick(self, nbytes: int) -> None:
        """The writer's and verifier's progress callback."""
        with self.lock:
            self.done += nbytes
            due = time.monotonic() - self.reported >= REPORT_SECONDS
        if due:
            self.report()

    def add_total(self, nbytes: int) -> None:
        with self.lock:
            self.total += nbytes


_caught = threading.local()
_shown_elsewhere: Callable[..., None] = warnings.showwarning


def _keep_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Keep a task's warnings for its client; others go where they went before."""
    kept = getattr(_caught, "warnings", None)
    if kept is None:
        _shown_elsewhere(message, category, filename, lineno, file, line)
    else:
        kept.append((str(message), category))


@contextlib.contextmanager
def _warnings_for_client() -> Iterator[list[tuple[str, type[Warning]]]]:
    """Collect the warnings of this thread's task (a worker runs several at once)."""
    global _shown_elsewhere
    if warnings.showwarning is not _keep_warning:
        _shown_elsewhere, warnings.showwarning = warnings.showwarning, _keep_warning
    _caught.warnings = kept = []
    try:
        yield kept
    finally:
        _caught.warnings = None


def convert_on_worker(
    task: Task, settings: Settings, estimate: int, run_id: str, index: int
) -> WorkerResult:
    """Convert one file on a dask worker: everything of a local run but deleting it.

    Outputs are written and verified under temporary names tagged with the run and
    ``index``, then published; progress goes to the client every
    :data:`REPORT_SECONDS`, and the run's cancel flag is checked as often. Never
    raises for a file's own problems: ``task`` says what happened.
    """
    reporter = _Reporter(run_id, index, estimate)
    checked: list[SourceCheck | None] = [None]

    def convert() -> None:
        reporter.report()  # the client learns this attempt; stops if cancelled
        tag = _tag(run_id, index)
        checked[0] = write_outputs(
            task,
            settings,
            estimate,
            reporter.tick,
            reporter.add_total,
            lambda target: temporary_name(target, tag),
        )

    with _warnings_for_client() as caught:
        record_outcome(task, convert)
    return WorkerResult(task, checked[0], caught, reporter.attempt, reporter.done, reporter.total)


def _progress_topic(run_id: str) -> str:
    return f"mrcz-progress-{run_id}"


def _cancel_name(run_id: str) -> str:
    return f"mrcz-cancel-{run_id}"


class SchedulerLostError(ClusterError):
    """The client lost its scheduler in the middle of a run."""


@dataclass
class _Shown:
    """What the progress bar counts of one task."""

    total: int
    done: int = 0
    attempt: str | None = None
    retired: set[str] = field(default_factory=set)  # attempts no longer counted


class ClusterRunner(Runner):
    """Run each file as a task on a dask.distributed cluster, reporting as a local run.

    Parameters
    ----------
    client : distributed.Client
        Connected to the scheduler.
    where : str
        The scheduler, for messages.
    settings, show_progress, quiet, err
        As for :class:`~napari_mrcz.cli.batch.Runner`.
    jobs : int or None
        Files on the cluster at a time; None: all of them (the workers' threads
        decide how many run at once).
    """

    def __init__(
        self,
        client: Any,
        where: str,
        settings: Settings,
        jobs: int | None,
        show_progress: bool,
        quiet: bool,
        err: TextIO,
    ) -> None:
        super().__init__(settings, jobs or 1, show_progress, quiet, err)
        self.client = client
        self.where = where
        self.limit = jobs
        self.run_id = secrets.token_hex(4)
        self._finished: queue.Queue = queue.Queue()
        self._shown: dict[int, _Shown] = {}
        self._tasks: list[Task] = []

    def run(self, tasks: list[Task]) -> int | None:
        """Run every task on the cluster; return the signal that interrupted it, or None."""
        from distributed import Event

        self._tasks = tasks
        cancel_flag = Event(_cancel_name(self.run_id), client=self.client)
        previous = {number: signal.signal(number, raise_terminated) for number in STOP_SIGNALS}
        topic = _progress_topic(self.run_id)
        self.client.subscribe_topic(topic, self._on_report)
        pending: dict[Any, int] = {}  # future -> task number
        submitted = 0
        stopped_by = None
        try:
            with contextlib.suppress(Exception, *_CANCELLED):  # if lost: seen below
                if not self.client.scheduler_info(n_workers=1)["workers"]:
                    self._say(f"waiting for dask workers to join the scheduler {self.where}...")
            while True:
                try:
                    if not self._shown:
                        for number, task in enumerate(tasks):
                            estimate = 0
                            if not self.cancel.is_set():
                                estimate = estimated_bytes(task.source) * self.passes
                            self._shown[number] = _Shown(estimate)
                        self._add_total(sum(shown.total for shown in self._shown.values()))
                    while (
                        submitted < len(tasks)
                        and not self.cancel.is_set()
                        and (self.limit is None or len(pending) < self.limit)
                    ):
                        pending[self._submit(tasks[submitted], submitted)] = submitted
                        submitted += 1
                    if not pending:
                        break
                    self._collect(pending)
                except KeyboardInterrupt as stop:
                    if stopped_by is None:
                        stopped_by = stop.signum if isinstance(stop, Terminated) else signal.SIGINT
                        self._say(
                            "interrupted: stopping the files on the cluster, "
                            "removing unfinished outputs..."
                        )
                        self.cancel.set()
                        with contextlib.suppress(Exception, *_CANCELLED):  # if lost: seen next
                            cancel_flag.set()
                    else:  # again: stop waiting (for workers that never came, say)
                        self._say("interrupted again: leaving the cluster's tasks to stop")
                        with contextlib.suppress(Exception, *_CANCELLED):
                            self.client.cancel(list(pending))
                        for number in pending.values():
                            tasks[number].status = "cancelled"
                        pending.clear()
        except SchedulerLostError as error:
            with self._lock:  # even with --quiet
                self._bar.write(
                    f"mrcz: {error}: the files not done are not converted, their sources kept",
                    file=self.err,
                )
            for number in pending.values():
                tasks[number].status = "failed"
                tasks[number].message = f"not finished: {error}"
            for task in tasks[submitted:]:
                task.status = "failed"
                task.message = f"not started: {error}"
        finally:
            for task in tasks[submitted:]:
                if task.status == "waiting":
                    task.status = "cancelled"
            if self.client.status == "running":
                with contextlib.suppress(Exception, *_CANCELLED):
                    self.client.unsubscribe_topic(topic)
            self._bar.close()
            for number, handler in previous.items():
                signal.signal(number, handler)
            self._remove_debris(tasks)
        return stopped_by

    def _submit(self, task: Task, number: int) -> Any:
        # Workers run elsewhere, in other folders: they get absolute names.
        remote = replace(
            task,
            source=os.path.abspath(task.source),
            targets=[os.path.abspath(target) for target in task.targets],
        )
        future = self.client.submit(
            convert_on_worker,
            remote,
            self.settings,
            self._shown[number].total,
            self.run_id,
            number,
            key=f"mrcz-{self.run_id}-{number}",
        )
        future.add_done_callback(self._finished.put)
        return future

    def _collect(self, pending: dict[Any, int]) -> None:
        """Wait for one task to end and take its outcome.

        Raises
        ------
        SchedulerLostError
            If the scheduler went away.
        """
        try:
            future = self._finished.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if self.client.status != "running":
                raise self._lost() from None
            return
        try:
            outcome = self._outcome(future)
        except BaseException:  # Ctrl-C while fetching: fetch it again afterwards
            self._finished.put(future)
            raise
        number = pending.pop(future)
        task = self._tasks[number]
        if isinstance(outcome, WorkerResult):
            self._take(number, outcome)
        else:
            task.status, task.message = "failed", outcome
        self._report(task)

    def _outcome(self, future: Any) -> WorkerResult | str:
        """The worker's result, or why there is none."""
        from distributed import KilledWorker

        if future.status == "error":
            error = future.exception()
            if isinstance(error, KilledWorker):
                return (
                    f"every worker that converted it died ({error.allowed_failures + 1} "
                    "times; out of memory?); not converted"
                )
            return f"{type(error).__name__} on a dask worker: {error}"
        try:
            return future.result()
        except (Exception, *_CANCELLED) as error:
            if self.client.status != "running" or isinstance(error, _CANCELLED):
                raise self._lost() from None
            return f"{type(error).__name__} on a dask worker: {error}"

    def _lost(self) -> SchedulerLostError:
        return SchedulerLostError(f"lost the dask scheduler {self.where}")

    def _take(self, number: int, result: WorkerResult) -> None:
        """Take a worker's result: its counts, warnings and progress; delete the source."""
        task = self._tasks[number]
        names = dict(zip(result.task.targets, task.targets, strict=True))
        names[result.task.source] = task.source
        for absolute, given in list(names.items()):  # and their folders (temporaries)
            folder = os.path.dirname(given)
            names.setdefault(os.path.dirname(absolute) + os.sep, folder + os.sep if folder else "")
        for item in fields(Task):
            if item.name not in ("source", "targets"):
                setattr(task, item.name, getattr(result.task, item.name))

        def as_given(text: str) -> str:  # messages name files as the user did
            for absolute, given in names.items():
                text = text.replace(absolute, given)
            return text

        task.message = as_given(task.message)
        if task.status == "cancelled" and not self.cancel.is_set():
            task.status = "failed"
            task.message = "stopped on its worker, which could not reach the scheduler"
        for message, category in result.warnings:
            warnings.warn(as_given(message), category, stacklevel=1)
        self._show(number, result.attempt, result.done, result.total, final=True)
        if result.check is not None and self.settings.delete_source and task.verified:
            record_outcome(task, lambda: delete_source(task, result.check))

    def _on_report(self, event: tuple[float, dict]) -> None:
        """A progress report of a task (in the client's event thread)."""
        _, message = event
        self._show(message["task"], message["attempt"], message["done"], message["total"])

    def _show(self, number: int, attempt: str, done: int, total: int, final: bool = False) -> None:
        """Count an attempt's progress; a new attempt replaces a dead one's."""
        restarted = False
        with self._lock:
            shown = self._shown[number]
            if attempt in shown.retired:
                return
            if attempt != shown.attempt:
                if shown.attempt is not None:
                    shown.retired.add(shown.attempt)
                    restarted = True
                shown.attempt = attempt
            self._bar.total += total - shown.total
            self._bar.update(done - shown.done)
            shown.done, shown.total = done, total
            if final:
                shown.retired.add(attempt)
        if restarted:
            self._say(f"converting {self._tasks[number].source} again: its worker was lost")

    def _remove_debris(self, tasks: Sequence[Task]) -> None:
        """Remove the temporary files that workers which died left."""
        folders = {os.path.dirname(target) for task in tasks for target in task.targets}
        for folder in sorted(folders):
            for path in remove_temporaries(folder, f"{self.run_id}-"):
                logger.info("removed %s, left by a dask worker that died", path)


def run_on_cluster(
    args: argparse.Namespace,
    tasks: list[Task],
    settings: Settings,
    show_progress: bool,
    quiet: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Convert ``tasks`` on the cluster the command line names; the exit status."""
    try:
        with connected(args) as client:
            runner = ClusterRunner(
                client,
                scheduler_named(args),
                settings,
                getattr(args, "jobs", None),
                show_progress,
                quiet,
                err,
            )
            return run_batch(tasks, settings, 1, show_progress, quiet, out, err, runner)
    except ClusterError as error:
        print(f"mrcz {args.command}: {error}", file=err)
        return EXIT_FAILED


def _validate_on_worker(path: str, given: str, check_stats: bool) -> list[Finding] | OSError:
    """``mrcz validate``'s checks of one file (absolute ``path``, named ``given`` by the
    user), on a worker, on one thread as dask wants."""
    try:
        return validate_file(path, check_stats=check_stats, n_threads=1)
    except OSError as error:
        return type(error)(error.errno, error.strerror, given) if error.errno else error


def validated_on_cluster(
    client: Any, where: str, paths: Sequence[str], check_stats: bool
) -> Iterator[list[Finding] | OSError]:
    """Validate ``paths`` on the cluster's workers; yield each verdict in order.

    Raises
    ------
    SchedulerLostError
        If the scheduler goes away.
    """
    run_id = secrets.token_hex(4)
    futures = [
        client.submit(
            _validate_on_worker,
            os.path.abspath(path),
            path,
            check_stats,
            key=f"mrcz-validate-{run_id}-{n}",
        )
        for n, path in enumerate(paths)
    ]
    try:
        for future in futures:
            while True:
                try:
                    yield future.result(timeout=POLL_SECONDS)
                    break
                except TimeoutError:
                    if client.status != "running":
                        raise SchedulerLostError(f"lost the dask scheduler {where}") from None
                except _CANCELLED:
                    raise SchedulerLostError(f"lost the dask scheduler {where}") from None
    finally:
        if client.status == "running":
            client.cancel(futures)
