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
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TextIO

from napari_mrcz.cli.report import ByteProgress, summary_table
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.files import (
    change_since,
    check_regular,
    check_target,
    make_folders,
    told_about,
)
from napari_mrcz.formats import Format, identify, image_count, open_images
from napari_mrcz.gain.separation import GainSettings, convert_image
from napari_mrcz.mrc.atomic import (
    flush_to_disk,
    owning,
    publish,
    remove_abandoned,
    temporary_name,
)
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.mrc.stats_kernels import expect_bytes, measured_by_kernel
from napari_mrcz.suffixes import is_readable, strip_suffix
from napari_mrcz.tools.convert import (
    VerificationError,
    header_loss,
    incomplete,
    json_left_out,
    numbered_targets,
    plain_copy_loss,
    verify_image,
)
from napari_mrcz.wording import human_size, plural

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


class SourceChangedError(ValueError):
    """A source changed while it was converted: what was read of it is not all of it."""

    def __init__(self, path: str, change: str) -> None:
        super().__init__(
            f"{path}: changed while it was converted ({change}): no output written; "
            "it is converted again by the next run"
        )


#: Called with the bytes of data just processed; may raise RunCancelledError.
Progress = Callable[[int], None]


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
    json_left_out: bool = False  # a plain output without the input's JSON meta


@dataclass(frozen=True)
class SourceCheck:
    """What deciding to delete a converted source needs, known once it is converted."""

    before: os.stat_result  # the source when its conversion started
    lacking: list[str]  # what no output holds of it (reasons to keep it)


@dataclass
class Settings:
    """What to do with each file (the command line's options)."""

    compressor: str | None
    clevel: int = 1
    threads: int = 1
    verify: bool = False
    delete_source: bool = False
    overwrite: bool = False
    #: An existing output fails the file (one explicit conversion) instead of skipping it.
    existing_fails: bool = False
    #: Write JSON meta into plain MRC outputs too (mrcfile.validate then rejects them).
    keep_json: bool = False
    #: --ungain, --gain-reference, decompress --counts
    gain: GainSettings | None = None

    @property
    def passes(self) -> int:
        """Times each byte of data is processed: written, then read back to verify."""
        return 2 if self.verify else 1


@dataclass(frozen=True)
class PassedOver:
    """An entry of an input folder that gives no conversion, and why."""

    path: str
    status: str  # "failed" (a folder that could not be listed) or "skipped"
    reason: str


def find_inputs(
    inputs: Sequence[str],
    wanted: Callable[[str], bool],
    passed_over: list[str] | None = None,
    problems: list[PassedOver] | None = None,
) -> Iterator[tuple[str, str]]:
    """Yield (file, its name relative to the output folder) for files and folders.

    A folder is walked in sorted order, depth first, for the files ``wanted``
    accepts; its tree is kept under the output folder. Files found there that
    ``wanted`` refuses are added to ``passed_over`` (hidden ones aside). Folders
    that cannot be listed (no permission, a name over the system's limit) are added
    to ``problems`` as failed; linked folders are followed, once: one that leads
    back to a folder already walked is added as skipped. Named files are taken as
    they are (their own name under the output folder).
    """
    problems = [] if problems is None else problems
    for given in inputs:
        if os.path.isdir(given):
            for path in _walk(given, problems):
                if wanted(path):
                    yield path, os.path.relpath(path, given)
                elif passed_over is not None:
                    passed_over.append(path)
        else:
            yield given, os.path.basename(given)


def _walk(top: str, problems: list[PassedOver]) -> Iterator[str]:
    """The files of the tree under ``top`` (hidden ones aside), without recursion."""
    status = os.stat(top)
    walked = {(status.st_dev, status.st_ino)}
    folders = [top]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            problems.append(
                PassedOver(folder, "failed", f"folder could not be listed: {_reason(error)}")
            )
            continue
        below = []
        for entry in entries:
            if entry.name.startswith(".") and not entry.is_dir(follow_symlinks=False):
                continue  # hidden files (our temporaries among them)
            try:
                status = os.stat(entry.path)
            except FileNotFoundError:
                target = os.readlink(entry.path) if entry.is_symlink() else "?"
                problems.append(
                    PassedOver(
                        entry.path,
                        "failed",
                        f"a link to {target}, which does not exist (a disk not mounted?)",
                    )
                )
                continue
            except OSError as error:
                reason = f"cannot be looked into: {_reason(error)}"
                if entry.is_dir(follow_symlinks=False):
                    reason = f"folder could not be listed: {_reason(error)}"
                problems.append(PassedOver(entry.path, "failed", reason))
                continue
            if not stat.S_ISDIR(status.st_mode):
                yield entry.path
                continue
            if (status.st_dev, status.st_ino) in walked:
                problems.append(
                    PassedOver(
                        entry.path,
                        "skipped",
                        f"a link to {os.path.realpath(entry.path)}, a folder walked already",
                    )
                )
                continue
            walked.add((status.st_dev, status.st_ino))
            below.append(entry.path)
        folders += reversed(below)


def _reason(error: OSError) -> str:
    """An OS error in words, without the path it names."""
    return error.strerror or str(error)


def plan(
    inputs: Sequence[str],
    out_dir: str,
    suffix: str,
    wanted: Callable[[str], bool],
    passed_over_note: str | None = None,
) -> list[Task]:
    """One task per input file, its outputs ``out_dir/<name><suffix>``.

    A DM file of several images gets ``<name>_0<suffix>``, ``<name>_1<suffix>``, ...
    A file named twice (or reached through a link) is converted once. Inputs that
    would write the same output (``x.dm4`` and ``x.mrc``, names differing only in
    case), or whose output would replace an input, get a failed task saying so and
    are not converted; the others are. With ``passed_over_note``, files of ours that
    a folder holds but ``wanted`` refuses get a skipped task with that note. A
    folder that cannot be listed gets a failed task, a linked folder that leads to
    one walked already a skipped one (see :func:`find_inputs`).

    Raises
    ------
    ValueError
        If no input is found, or ``out_dir`` is a file.
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"-o {out_dir} is a file: give the folder to write the outputs into")
    tasks: list[Task] = []
    sources: dict[str, str] = {}  # real path -> the path as found
    owners: dict[str, list[Task]] = {}
    passed_over: list[str] = []
    problems: list[PassedOver] = []
    for path, relative in find_inputs(inputs, wanted, passed_over, problems):
        real = os.path.realpath(path)
        if real in sources:
            continue
        sources[real] = path
        target = os.path.join(out_dir, strip_suffix(relative) + suffix)
        task = Task(path, numbered_targets(target, image_count(path)))
        for one in task.targets:
            # Names differing only in case are one file on macOS, SMB and exFAT.
            owners.setdefault(_output_key(one), []).append(task)
        tasks.append(task)
    if not tasks and not problems:
        raise ValueError(f"no input files found in {', '.join(inputs)}")
    inputs_by_key = {real.casefold(): path for real, path in sources.items()}
    for key, claimants in owners.items():
        target = next(one for one in claimants[0].targets if _output_key(one) == key)
        replaced = inputs_by_key.get(key)
        if len(claimants) > 1:
            for task in claimants:
                others = ", ".join(other.source for other in claimants if other is not task)
                _refuse(
                    task,
                    f"{others} would also be written to {target}: not converted; rename "
                    "one of them, or convert each alone with mrcz convert",
                )
        elif replaced is not None:
            _refuse(
                claimants[0],
                f"its output {target} would replace the input {replaced}: not "
                "converted; choose another output folder (-o)",
            )
    tasks += [
        Task(problem.path, [], status=problem.status, message=problem.reason)
        for problem in problems
    ]
    if passed_over_note is not None:
        tasks += [
            Task(path, [], status="skipped", message=passed_over_note)
            for path in passed_over
            if is_readable(path)
        ]
    return tasks


def _output_key(path: str) -> str:
    """What makes two output names one file (links resolved, case folded)."""
    return os.path.realpath(path).casefold()


def _refuse(task: Task, reason: str) -> None:
    """Mark a task as failed before it runs (its first reason is kept)."""
    if task.status != "failed":
        task.status, task.message = "failed", reason


def estimated_bytes(path: str) -> int:
    """Bytes of data in ``path``, from its header where that is cheap, else its size."""
    return _estimate(path)[0]


def _estimate(path: str) -> tuple[int, bool]:
    """:func:`estimated_bytes`, and whether the statistics kernel will measure them."""
    try:
        if not is_readable(path):
            return os.path.getsize(path), False
        kind = identify(path)
        if kind.format is not Format.MRC or kind.compression:
            return os.path.getsize(path), False
        layout = read_layout(path, quiet=True)  # the conversion itself warns
    except FILE_ERRORS:
        return 0, False
    return layout.data_nbytes, measured_by_kernel(layout.dtype)


class Runner:
    """Run tasks ``jobs`` at a time with one progress bar over the bytes of data."""

    def __init__(
        self, settings: Settings, jobs: int, show_progress: bool, quiet: bool, err: TextIO
    ) -> None:
        self.settings = settings
        self.jobs = max(1, jobs)
        self.quiet = quiet
        self.err = err
        self.passes = settings.passes
        self.cancel = threading.Event()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bar = ByteProgress(
            file=err, disable=not show_progress, dynamic_ncols=True, smoothing=0.1
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
        previous = {number: signal.signal(number, raise_terminated) for number in STOP_SIGNALS}
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="mrcz-file")
        pending: set[Future] = set()
        estimates: list[int] | None = None
        submitted = 0
        stopped_by = None
        try:
            while True:
                try:  # a signal may come at any point: estimating, submitting, waiting
                    if estimates is None:
                        found = [
                            (0, False)
                            if self.cancel.is_set() or task.status != "waiting"
                            else _estimate(task.source)
                            for task in tasks
                        ]
                        estimates = [nbytes * self.passes for nbytes, _ in found]
                        self._add_total(sum(estimates))
                        # A run that will measure gigabytes has the compiled statistics
                        # from its first file on (see mrc.stats_kernels).
                        expect_bytes(sum(nbytes for nbytes, small in found if small))
                    # A bounded window in flight: waiting over every file of a large
                    # folder after each completion would make the run quadratic.
                    while submitted < len(tasks) and len(pending) < 2 * self.jobs:
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
                        stopped_by = stop.signum if isinstance(stop, Terminated) else signal.SIGINT
                        self._say("interrupted: stopping, removing unfinished outputs...")
        finally:
            pool.shutdown(wait=True, cancel_futures=stopped_by is not None)
            self._bar.close()
            for number, handler in previous.items():
                signal.signal(number, handler)
        return stopped_by

    def _convert(self, task: Task, estimate: int) -> None:
        """Convert one file; record the outcome in ``task`` (never raises)."""
        if task.status != "waiting":  # decided when the run was planned
            return
        if self.cancel.is_set():
            task.status = "cancelled"
            return
        record_outcome(task, lambda: self._convert_file(task, estimate))
        self._report(task)

    def _convert_file(self, task: Task, estimate: int) -> None:
        """Convert, then delete the source if asked and safe."""
        check = write_outputs(task, self.settings, estimate, self._tick, self._add_total)
        if check is not None and self.settings.delete_source and task.verified:
            delete_source(task, check)

    def _report(self, task: Task) -> None:
        """The line a finished file gets while the run goes on."""
        if task.status == "failed":
            self._say(f"FAILED {task.source}: {task.message}")
        elif task.status in ("done", "skipped"):
            self._say(
                f"{task.status} {task.source} -> {', '.join(task.targets)}"
                + (" (source deleted)" if task.source_deleted else "")
            )


def record_outcome(task: Task, work: Callable[[], None]) -> None:
    """Run ``work`` on ``task``'s file; record failures and the time in ``task``.

    Never raises: a failed file must not stop the others.
    """
    started = time.monotonic()
    try:
        work()
    except RunCancelledError:
        task.status = "cancelled"
    except FILE_ERRORS as error:
        task.status = "failed"
        task.message = error_text(error, task.source)
    except Exception as error:  # a bug must not stop the other files
        logger.exception("converting %s failed", task.source)
        task.status = "failed"
        task.message = f"{type(error).__name__}: {error_text(error, task.source)}"
    task.seconds += time.monotonic() - started


def write_outputs(
    task: Task,
    settings: Settings,
    estimate: int,
    progress: Progress,
    add_total: Callable[[int], None],
    temporary: Callable[[str], str] = temporary_name,
) -> SourceCheck | None:
    """Write every image of the file to a temporary file, verify, then publish.

    Everything of a conversion but deleting the source: ``task`` gets its sizes
    and status. ``progress`` is told the bytes of data written and verified,
    ``add_total`` how far the file's real amount is from ``estimate``;
    ``temporary`` names the temporary outputs beside their targets.

    Returns
    -------
    SourceCheck or None
        For a converted file; None when every output existed and was kept.

    Raises
    ------
    RunCancelledError
        From ``progress``; no output is then published.
    """
    passes = settings.passes
    before = check_regular(task.source)
    task.source_bytes = before.st_size
    temporaries: list[tuple[str, str]] = []  # (temporary, target)
    owned = contextlib.ExitStack()  # the output folder, owned while temporaries exist
    try:
        compressed = settings.compressor is not None
        counts = settings.gain is not None and settings.gain.counts
        # progress(0) lets a run stop a long decompression of a .gz/.bz2 source
        with open_images(task.source, compressed, lambda: progress(0)) as images:
            if len(images) != len(task.targets):
                raise ValueError(f"{task.source} changed while the run was planned")
            task.data_bytes = sum(image.nbytes for image in images)
            add_total(task.data_bytes * passes - estimate)
            for target in task.targets:
                check_target(target)
            kept = [] if settings.overwrite else list(filter(os.path.lexists, task.targets))
            if kept and settings.existing_fails:
                raise FileExistsError(
                    f"{kept[0]} exists: nothing converted; use --overwrite to replace it"
                )
            todo = [number for number, target in enumerate(task.targets) if target not in kept]
            progress(
                sum(image.nbytes for number, image in enumerate(images) if number not in todo)
                * passes
            )
            if not todo:
                task.status = "skipped"
                task.message = "output exists (--overwrite replaces it)" + (
                    "; source kept" if settings.delete_source else ""
                )
                return None
            if len(todo) < len(task.targets):
                task.message = f"{plural(len(task.targets) - len(todo), 'existing output')} kept"
            folder = os.path.dirname(task.targets[0]) or "."
            try:
                make_folders(folder)
                owned.enter_context(owning(folder))
            except OSError as error:  # a read-only disk: name the output, not our lock
                raise told_about(error, task.targets[0]) from error
            notes, gain_files = [task.message, _abandoned_note(folder)], []
            for number in todo:
                temporaries.append((temporary(task.targets[number]), task.targets[number]))
                outcome = convert_image(
                    images[number],
                    task.targets[number],
                    settings.compressor,
                    settings.clevel,
                    settings.threads,
                    progress,
                    settings.gain,
                    keep_json=settings.keep_json,
                    temporary=temporaries[-1][0],
                )
                notes.append(outcome.note)
                gain_files += outcome.gain_files
            task.message = "; ".join(note for note in notes if note)
            if settings.verify:
                for number, (written, target) in zip(todo, temporaries, strict=True):
                    verify_image(
                        images[number], target, progress, temporary=written, counts=counts
                    )
                task.verified = len(todo) == len(task.targets)
            task.json_left_out = any(
                json_left_out(images[number], compressed, settings.keep_json, counts=counts)
                for number in todo
            )
            lacking = [
                incomplete(images[number], json_kept=not task.json_left_out)
                or (header_loss(images[number], written) if settings.verify else None)
                or plain_copy_loss(written)
                for number, (written, _) in zip(todo, temporaries, strict=True)
            ]
        change = change_since(task.source, before)
        if change is not None:
            raise SourceChangedError(task.source, change)
        for written, target in temporaries:
            try:
                publish(written, target, settings.overwrite)
            except OSError as error:
                raise told_about(error, target) from error
        # A change between the check and the names given: the copies go again.
        change = change_since(task.source, before)
        if change is not None:
            for _, target in temporaries:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target)
            raise SourceChangedError(task.source, change)
    finally:
        for written, _ in temporaries:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(written)
        owned.close()
    task.output_bytes = sum(os.path.getsize(path) for path in [*task.targets, *gain_files])
    task.status = "done"
    return SourceCheck(before, [note for note in lacking if note])


#: Output folders this process has cleared of abandoned temporaries.
_swept_folders: set[str] = set()
_swept_lock = threading.Lock()


def _abandoned_note(folder: str) -> str:
    """Remove what killed runs left in ``folder`` (once a process); say so, or ''."""
    real = os.path.realpath(folder)
    with _swept_lock:
        if real in _swept_folders:
            return ""
        _swept_folders.add(real)
    removed = remove_abandoned(folder)
    if not removed:
        return ""
    size = sum(nbytes for _, nbytes in removed)
    logger.info("removed abandoned temporaries: %s", [path for path, _ in removed])
    return (
        f"removed {plural(len(removed), 'unfinished temporary file')} ({human_size(size)})"
        f" that a stopped run left in {folder}"
    )


def delete_source(task: Task, check: SourceCheck) -> None:
    """Delete a converted and verified source, unless it changed or holds more."""
    if check.lacking:
        task.message = f"source kept: {check.lacking[0]}"
        return
    # The copy must be on disk, not only in the page cache, before the original goes;
    # the source is looked at once more after that wait, right before it goes.
    folders = {os.path.dirname(target) or "." for target in task.targets}
    for path in [*task.targets, *sorted(folders)]:
        flush_to_disk(path)
    change = change_since(task.source, check.before)
    if change is not None:
        task.message = f"source kept: it changed while it was converted ({change})"
        return
    try:
        os.unlink(task.source)
    except OSError as error:  # the output is complete: the file is done, its source kept
        task.message = f"source kept: it could not be deleted ({_reason(error)})"
        return
    task.source_deleted = True


def error_text(error: BaseException, path: str) -> str:
    """The error's message without a leading copy of ``path``."""
    text = str(error) or type(error).__name__
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def raise_terminated(signum: int, _frame: object) -> None:
    """SIGTERM and SIGHUP handler: stop the run as Ctrl-C does."""
    raise Terminated(signum)


def run_batch(
    tasks: list[Task],
    settings: Settings,
    jobs: int,
    show_progress: bool,
    quiet: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    runner: Runner | None = None,
) -> int:
    """Convert ``tasks``, print the summary to ``out``; return the exit status.

    0 when every file was converted or skipped, 1 when any failed, 128 + the signal
    when the run was interrupted (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
    ``runner`` runs the files elsewhere (:mod:`napari_mrcz.cli.cluster`); by
    default a :class:`Runner` of ``jobs`` threads here.
    """
    runner = runner or Runner(settings, jobs, show_progress, quiet, err)
    stopped_by = runner.run(tasks)
    compressed = settings.compressor is not None
    print(summary_table(tasks, time.monotonic() - runner.started, compressed), file=out)
    if stopped_by is not None:
        return 128 + stopped_by
    return EXIT_FAILED if any(task.status == "failed" for task in tasks) else EXIT_OK
