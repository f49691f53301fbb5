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
from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm

from ..decompress import is_compressed
from ..errors import MRCZFormatError
from ..layout import read_layout
from ..suffixes import is_dm, is_readable, strip_suffix
from ..transcode import VerificationError, open_images, target_for, verify_image, write_image

logger = logging.getLogger(__name__)

#: Exit status of a run stopped by SIGINT (Ctrl-C) or SIGTERM: 128 + the signal.
EXIT_FAILED = 1

#: Errors that fail one file and let the others go on.
FILE_ERRORS = (MRCZFormatError, VerificationError, OSError, ValueError, TypeError,
               MemoryError, ImportError)


class RunCancelledError(Exception):
    """Raised inside a conversion when the run is interrupted."""


@dataclass
class Task:
    """One input file and where its output goes."""

    source: str
    target: str
    status: str = "waiting"  # then: done, skipped, failed, cancelled
    message: str = ""
    data_bytes: int = 0
    source_bytes: int = 0
    output_bytes: int = 0
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
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


def find_inputs(inputs: Sequence[str], wanted: Callable[[str], bool]
                ) -> Iterator[tuple[str, str]]:
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


def plan(inputs: Sequence[str], out_dir: str, suffix: str,
         wanted: Callable[[str], bool]) -> list[Task]:
    """One task per input file, its output ``out_dir/<name><suffix>``.

    Raises
    ------
    ValueError
        If no input is found, two inputs would write the same output, or an output
        would replace its own input.
    """
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for path, relative in find_inputs(inputs, wanted):
        target = os.path.join(out_dir, strip_suffix(relative) + suffix)
        key = os.path.realpath(target)
        if key == os.path.realpath(path):
            raise ValueError(f"{path}: the output would replace the input; choose another -o")
        if key in seen:
            raise ValueError(f"{seen[key]} and {path} would both be written to {target}")
        seen[key] = path
        tasks.append(Task(path, target))
    if not tasks:
        raise ValueError("no input files found")
    return tasks


def estimated_bytes(path: str) -> int:
    """Bytes of data in ``path``, from its header where that is cheap, else its size."""
    try:
        if not is_dm(path) and is_readable(path) and not is_compressed(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the conversion itself reports them
                layout = read_layout(path)
            return layout.nz * layout.slice_nbytes
        return os.path.getsize(path)
    except FILE_ERRORS:
        return 0


class Runner:
    """Run tasks ``jobs`` at a time with one progress bar over the bytes of data."""

    def __init__(self, settings: Settings, jobs: int, show_progress: bool, quiet: bool,
                 err: TextIO) -> None:
        self.settings = settings
        self.jobs = max(1, jobs)
        self.quiet = quiet
        self.err = err
        self.cancel = threading.Event()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, file=err,
                         disable=not show_progress, dynamic_ncols=True, smoothing=0.1,
                         bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                    "[{elapsed}<{remaining}, {rate_fmt}]{postfix}")

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
        passes = 2 if self.settings.verify else 1
        estimates = [estimated_bytes(task.source) for task in tasks]
        self._add_total(sum(estimates) * passes)
        previous = {number: signal.getsignal(number) for number in (signal.SIGTERM,)}
        signal.signal(signal.SIGTERM, _interrupt)
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="mrcz-file")
        pending: set[Future] = {pool.submit(self._convert, task, estimate * passes)
                                for task, estimate in zip(tasks, estimates, strict=True)}
        stopped_by = None
        try:
            while pending:
                try:
                    _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt as stop:
                    if stopped_by is None:
                        self._say("interrupted: stopping, removing unfinished outputs...")
                        stopped_by = stop.signum if isinstance(stop, _Terminated) \
                            else signal.SIGINT
                    self.cancel.set()
        finally:
            pool.shutdown(wait=True)
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
            task.message = _error_text(error, task.source)
        except Exception as error:  # a bug must not stop the other files
            logger.exception("converting %s failed", task.source)
            task.status = "failed"
            task.message = f"{type(error).__name__}: {_error_text(error, task.source)}"
        task.seconds = time.monotonic() - started
        if task.status == "failed":
            self._say(f"FAILED {task.source}: {task.message}")
        elif task.status in ("done", "skipped"):
            self._say(f"{task.status} {task.source} -> {', '.join(task.outputs)}"
                      + (" (source deleted)" if task.source_deleted else ""))

    def _convert_file(self, task: Task, estimate: int) -> None:
        settings = self.settings
        before = os.stat(task.source)
        task.source_bytes = before.st_size
        passes = 2 if settings.verify else 1
        written: list[str] = []
        try:
            with open_images(task.source) as images:
                task.data_bytes = sum(image.nbytes for image in images)
                self._add_total(task.data_bytes * passes - estimate)
                estimate = task.data_bytes * passes
                targets = [target_for(image, task.target) for image in images]
                task.outputs = targets
                todo = [number for number, target in enumerate(targets)
                        if settings.overwrite or not os.path.exists(target)]
                self._tick(sum(image.nbytes for number, image in enumerate(images)
                               if number not in todo) * passes)
                if not todo:
                    task.status = "skipped"
                    task.message = "output exists (use --overwrite to replace it)"
                    return
                if len(todo) < len(targets):
                    task.message = f"{len(targets) - len(todo)} existing output(s) kept"
                os.makedirs(os.path.dirname(task.target) or ".", exist_ok=True)
                for number in todo:
                    existed = os.path.exists(targets[number])
                    write_image(images[number], targets[number], settings.compressor,
                                settings.clevel, settings.threads, self._tick)
                    if not existed:
                        written.append(targets[number])
                if settings.verify:
                    for number in todo:
                        verify_image(images[number], targets[number], self._tick)
                    task.verified = len(todo) == len(targets)
        except BaseException:
            for path in written:  # no half set of outputs for a file of several images
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            raise
        task.output_bytes = sum(os.path.getsize(target) for target in task.outputs)
        task.status = "done"
        if settings.delete_source and task.verified:
            after = os.stat(task.source)
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                task.message = "source changed while it was converted: kept"
                return
            os.unlink(task.source)
            task.source_deleted = True


def _error_text(error: BaseException, path: str) -> str:
    """The error's message without a leading copy of ``path``."""
    text = str(error) or type(error).__name__
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM handler: stop the run as Ctrl-C does."""
    raise _Terminated(signum)


def human_size(nbytes: float) -> str:
    """``nbytes`` in B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def summary_table(tasks: list[Task], seconds: float) -> str:
    """The final table: one row per file, then the totals and the failures."""
    header = ("status", "file", "output", "in", "out", "ratio", "MB/s")
    rows = []
    for task in tasks:
        done = task.status == "done"
        rows.append((
            task.status.upper() if task.status == "failed" else task.status,
            task.source,
            ", ".join(task.outputs) if task.outputs else "-",
            human_size(task.source_bytes) if task.source_bytes else "-",
            human_size(task.output_bytes) if done else "-",
            f"{task.source_bytes / task.output_bytes:.2f}" if done and task.output_bytes
            else "-",
            f"{task.data_bytes / task.seconds / 1e6:.1f}" if done and task.seconds > 0
            else "-",
        ))
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    right = {3, 4, 5, 6}
    lines = ["  ".join(cell.rjust(width) if column in right else cell.ljust(width)
                       for column, (cell, width) in enumerate(zip(row, widths, strict=True)))
             .rstrip() for row in (header, *rows)]
    counts = {}
    for task in tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    finished = [task for task in tasks if task.status == "done"]
    total_in = sum(task.source_bytes for task in finished)
    total_out = sum(task.output_bytes for task in finished)
    total_data = sum(task.data_bytes for task in finished)
    ratio = f" ({total_in / total_out:.2f}x)" if total_out else ""
    rate = f", {total_data / seconds / 1e6:.1f} MB/s of data" if seconds > 0 and total_data \
        else ""
    lines.append(", ".join(f"{count} {status}" for status, count in counts.items())
                 + f"; {human_size(total_in)} in, {human_size(total_out)} out{ratio} "
                 f"in {seconds:.1f} s{rate}")
    deleted = sum(task.source_deleted for task in tasks)
    if deleted:
        lines.append(f"{deleted} source file(s) deleted after verification")
    for task in tasks:
        if task.status == "failed":
            lines.append(f"FAILED {task.source}: {task.message}")
        elif task.message:
            lines.append(f"note: {task.source}: {task.message}")
    return "\n".join(lines)


def run_batch(tasks: list[Task], settings: Settings, jobs: int, show_progress: bool,
              quiet: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Convert ``tasks``, print the summary to ``out``; return the exit status.

    0 when every file was converted or skipped, 1 when any failed, 128 + the signal
    when the run was interrupted (130 for Ctrl-C, 143 for SIGTERM).
    """
    runner = Runner(settings, jobs, show_progress, quiet, err)
    stopped_by = runner.run(tasks)
    print(summary_table(tasks, time.monotonic() - runner.started), file=out)
    if stopped_by is not None:
        return 128 + stopped_by
    return EXIT_FAILED if any(task.status == "failed" for task in tasks) else 0
