"""Converting many files at once: the plan, the workers, progress and the summary.

Files are converted ``jobs`` at a time on threads (blosc and numpy release the GIL;
each file's slices are encoded on ``threads`` more). Every output is written to a
temporary name and renamed when complete, so an interrupted or failed conversion
leaves no partial file; a source is deleted only after its outputs were read back
and compared with it, and only if it did not change meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TextIO

from tqdm import tqdm

from napari_mrcz.cli.report import summary_table
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.atomic import flush_to_disk, publish, temporary_name
from napari_mrcz.mrc.gzipped import is_compressed
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.suffixes import is_dm, is_readable, strip_suffix
from napari_mrcz.tools.gain_separation import GainSettings, convert_image
from napari_mrcz.tools.transcode import (
    VerificationError,
    image_count,
    incomplete,
    numbered_targets,
    open_images,
    verify_image,
)

logger = logging.getLogger(__name__)

#: Exit statuses of the command; a run stopped by a signal exits with 128 + it.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Signals that stop a run as Ctrl-C (SIGINT) does: a scheduler's kill, a closed ssh.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

#: Errors that fail one file and let the others go on.
FILE_ERRORS = (
    MRCZFormatError,
    VerificationError,
    OSError,
    ValueError,
    TypeError,
    MemoryError,
    ImportError,
)


class RunCancelledError(Exception):
    """Raised inside a conversion when the run is interrupted."""


@dataclass
class Task:
    """One input file and where its output goes."""

    source: str
    targets: list[str]  # one per image (DM files may hold several)
    status: str = "waiting"  # then: done, skipped, failed, cancelled
    message: str = ""
    data_bytes: int = 0
    source_bytes: int = 0
    output_bytes: int = 0
    seconds: float = 0.0
    verified: bool = False
    source_deleted: bool = False


@dataclass
class Settings:
    """What to do with each file (the command line's options)."""

    compressor: str | None
    clevel: int = 1
    threads: int = 1
    verify: bool = False
    delete_source: bool = False
    overwrite: bool = False
    gain: GainSettings | None = None  # --ungain, --gain-reference, decompress --counts


def find_inputs(inputs: Sequence[str], wanted: Callable[[str], bool]) -> Iterator[tuple[str, str]]:
    """Yield (file, its name relative to the output folder) for files and folders.

    A folder is walked recursively, in sorted order, for the files ``wanted``
    accepts; its tree is kept under the output folder. Named files are taken as they
    are (their own name under the output folder).
    """
    for given in inputs:
        if os.path.isdir(given):
            for root, folders, files in os.walk(given):
                folders.sort()
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if wanted(path) and not name.startswith("."):
                        yield path, os.path.relpath(path, given)
        else:
            yield given, os.path.basename(given)


def plan(
    inputs: Sequence[str], out_dir: str, suffix: str, wanted: Callable[[str], bool]
) -> list[Task]:
    """One task per input file, its outputs ``out_dir/<name><suffix>``.

    A DM file of several images gets ``<name>_0<suffix>``, ``<name>_1<suffix>``, ...
    A file named twice (or reached through a link) is converted once.

    Raises
    ------
    ValueError
        If no input is found, two inputs would write the same output, or an output
        would replace an input.
    """
    tasks: list[Task] = []
    sources: set[str] = set()
    owners: dict[str, str] = {}
    for path, relative in find_inputs(inputs, wanted):
        real = os.path.realpath(path)
        if real in sources:
            continue
        sources.add(real)
        target = os.path.join(out_dir, strip_suffix(relative) + suffix)
        targets = numbered_targets(target, image_count(path))
        for one in targets:
            # Names differing only in case are one file on macOS, SMB and exFAT.
            key = os.path.realpath(one).casefold()
            if key in owners:
                raise ValueError(f"{owners[key]} and {path} would both be written to {one}")
            owners[key] = path
        tasks.append(Task(path, targets))
    if not tasks:
        raise ValueError("no input files found")
    replaced = {source for source in sources if source.casefold() in owners}
    if replaced:
        raise ValueError(
            f"{sorted(replaced)[0]}: an output would replace this input; choose another -o"
        )
    return tasks


def estimated_bytes(path: str) -> int:
    """Bytes of data in ``path``, from its header where that is cheap, else its size."""
    try:
        if not is_dm(path) and is_readable(path) and not is_compressed(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the conversion itself reports them
                layout = read_layout(path)
            return layout.data_nbytes
        return os.path.getsize(path)
    except FILE_ERRORS:
        return 0


class Runner:
    """Run tasks ``jobs`` at a time with one progress bar over the bytes of data."""

    def __init__(
        self, settings: Settings, jobs: int, show_progress: bool, quiet: bool, err: TextIO
    ) -> None:
        self.settings = settings
        self.jobs = max(1, jobs)
        self.quiet = quiet
        self.err = err
        self.passes = 2 if settings.verify else 1  # written, then read back
        self.cancel = threading.Event()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bar = tqdm(
            total=0,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=err,
            disable=not show_progress,
            dynamic_ncols=True,
            smoothing=0.1,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
            "[{elapsed}<{remaining}, {rate_fmt}]{postfix}",
        )

    def _tick(self, nbytes: int) -> None:
        if self.cancel.is_set():
            raise RunCancelledError
        with self._lock:
            self._bar.update(nbytes)

    def _add_total(self, nbytes: int) -> None:
        with self._lock:
            self._bar.total += nbytes
            self._bar.refresh()

    def _say(self, line: str) -> None:
        if not self.quiet:
            with self._lock:
                self._bar.write(line, file=self.err)

    def run(self, tasks: list[Task]) -> int | None:
        """Run every task; return the signal that interrupted the run, or None.

        The tasks say what happened to each file.
        """
        previous = {number: signal.signal(number, _interrupt) for number in STOP_SIGNALS}
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="mrcz-file")
        pending: set[Future] = set()
        estimates: list[int] | None = None
        submitted = 0
        stopped_by = None
        try:
            while True:
                try:  # a signal may come at any point: estimating, submitting, waiting
                    if estimates is None:
                        estimates = [
                            0
                            if self.cancel.is_set()
                            else estimated_bytes(task.source) * self.passes
                            for task in tasks
                        ]
                        self._add_total(sum(estimates))
                    while submitted < len(tasks):
                        pending.add(
                            pool.submit(self._convert, tasks[submitted], estimates[submitted])
                        )
                        submitted += 1
                    if not pending:
                        break
                    _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt as stop:
                    self.cancel.set()
                    if stopped_by is None:
                        stopped_by = (
                            stop.signum if isinstance(stop, _Terminated) else signal.SIGINT
                        )
                        self._say("interrupted: stopping, removing unfinished outputs...")
        finally:
            pool.shutdown(wait=True, cancel_futures=stopped_by is not None)
            self._bar.close()
            for number, handler in previous.items():
                signal.signal(number, handler)
        return stopped_by

    def _convert(self, task: Task, estimate: int) -> None:
        """Convert one file; record the outcome in ``task`` (never raises)."""
        if self.cancel.is_set():
            task.status = "cancelled"
            return
        started = time.monotonic()
        try:
            self._convert_file(task, estimate)
        except RunCancelledError:
            task.status = "cancelled"
        except FILE_ERRORS as error:
            task.status = "failed"
            task.message = error_text(error, task.source)
        except Exception as error:  # a bug must not stop the other files
            logger.exception("converting %s failed", task.source)
            task.status = "failed"
            task.message = f"{type(error).__name__}: {error_text(error, task.source)}"
        task.seconds = time.monotonic() - started
        if task.status == "failed":
            self._say(f"FAILED {task.source}: {task.message}")
        elif task.status in ("done", "skipped"):
            self._say(
                f"{task.status} {task.source} -> {', '.join(task.targets)}"
                + (" (source deleted)" if task.source_deleted else "")
            )

    def _convert_file(self, task: Task, estimate: int) -> None:
        """Write every image of the file to a temporary file, verify, then publish."""
        settings = self.settings
        before = os.stat(task.source)
        task.source_bytes = before.st_size
        temporaries: list[tuple[str, str]] = []  # (temporary, target)
        try:
            with open_images(task.source) as images:
                if len(images) != len(task.targets):
                    raise ValueError(f"{task.source} changed while the run was planned")
                task.data_bytes = sum(image.nbytes for image in images)
                self._add_total(task.data_bytes * self.passes - estimate)
                todo = [
                    number
                    for number, target in enumerate(task.targets)
                    if settings.overwrite or not os.path.exists(target)
                ]
                self._tick(
                    sum(image.nbytes for number, image in enumerate(images) if number not in todo)
                    * self.passes
                )
                if not todo:
                    task.status = "skipped"
                    task.message = "output exists (--overwrite replaces it)" + (
                        "; source kept" if settings.delete_source else ""
                    )
                    return
                if len(todo) < len(task.targets):
                    task.message = f"{len(task.targets) - len(todo)} existing output(s) kept"
                os.makedirs(os.path.dirname(task.targets[0]) or ".", exist_ok=True)
                notes, gain_files = [task.message], []
                for number in todo:
                    temporary = temporary_name(task.targets[number])
                    temporaries.append((temporary, task.targets[number]))
                    outcome = convert_image(
                        images[number],
                        temporary,
                        settings.compressor,
                        settings.clevel,
                        settings.threads,
                        self._tick,
                        settings.gain,
                    )
                    notes.append(outcome.note)
                    gain_files += outcome.gain_files
                task.message = "; ".join(note for note in notes if note)
                if settings.verify:
                    for number, (temporary, _) in zip(todo, temporaries, strict=True):
                        verify_image(images[number], temporary, self._tick)
                    task.verified = len(todo) == len(task.targets)
                lacking = [incomplete(images[number]) for number in todo]
            for temporary, target in temporaries:
                publish(temporary, target, settings.overwrite)
        finally:
            for temporary, _ in temporaries:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
        task.output_bytes = sum(os.path.getsize(path) for path in [*task.targets, *gain_files])
        task.status = "done"
        if settings.delete_source and task.verified:
            self._delete_source(task, before, [note for note in lacking if note])

    @staticmethod
    def _delete_source(task: Task, before: os.stat_result, lacking: list[str]) -> None:
        """Delete a converted and verified source, unless it changed or holds more."""
        if lacking:
            task.message = f"source kept: {lacking[0]}"
            return
        after = os.stat(task.source)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            task.message = "source kept: it changed while it was converted"
            return
        # The copy must be on disk, not only in the page cache, before the original goes.
        folders = {os.path.dirname(target) or "." for target in task.targets}
        for path in [*task.targets, *sorted(folders)]:
            flush_to_disk(path)
        os.unlink(task.source)
        task.source_deleted = True


def error_text(error: BaseException, path: str) -> str:
    """The error's message without a leading copy of ``path``."""
    text = str(error) or type(error).__name__
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM and SIGHUP handler: stop the run as Ctrl-C does."""
    raise _Terminated(signum)


def run_batch(
    tasks: list[Task],
    settings: Settings,
    jobs: int,
    show_progress: bool,
    quiet: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Convert ``tasks``, print the summary to ``out``; return the exit status.

    0 when every file was converted or skipped, 1 when any failed, 128 + the signal
    when the run was interrupted (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
    """
    runner = Runner(settings, jobs, show_progress, quiet, err)
    stopped_by = runner.run(tasks)
    print(summary_table(tasks, time.monotonic() - runner.started), file=out)
    if stopped_by is not None:
        return 128 + stopped_by
    return EXIT_FAILED if any(task.status == "failed" for task in tasks) else EXIT_OK
