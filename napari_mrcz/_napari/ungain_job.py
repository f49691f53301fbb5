"""The save panel's gain-separated save: a float32 movie layer as counts and a gain.

A :class:`~napari_mrcz._napari.save_job.SaveJob` whose writer is
:func:`napari_mrcz.gain.estimate.write_separated_array` (the gain estimated from the
layer, stored beside the file), and whose result counts the gain file and compares
with the float32 movie. Kept apart from Qt, like the job it extends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_mrcz._napari.save_job import SaveCancelledError, SaveJob, SaveResult
from napari_mrcz.gain.separation import WriteOutcome, write_separated_array
from napari_mrcz.mrc.gainmeta import ORIGINAL_DTYPE
from napari_mrcz.wording import human_rate, human_size


def can_separate(data: Any) -> bool:
    """True for layer data the panel offers to gain-separate: a float32 movie."""
    return np.dtype(data.dtype) == ORIGINAL_DTYPE and data.ndim == 3 and data.shape[0] > 1


@dataclass
class SeparatedSaveResult(SaveResult):
    """A finished gain-separated save: sizes with the new gain file, and how it went."""

    note: str = ""
    gain_bytes: int = 0

    def summary(self) -> str:
        """One line: the size, the ratio to the float32 movie, the speed, the outcome."""
        ratio = self.data_bytes / self.file_bytes if self.file_bytes else float("nan")
        with_gain = f" with its new gain file ({human_size(self.gain_bytes)})"
        return (
            f"Saved {os.path.basename(self.path)}: {human_size(self.file_bytes)}"
            f"{with_gain if self.gain_bytes else ''}, compression ratio {ratio:.2f}x "
            f"against float32, {human_rate(self.data_bytes, self.seconds)}; {self.note}"
        )


class SeparatedSaveJob(SaveJob):
    """Save a float32 movie layer as integer counts with its gain reference beside it."""

    def _write(self, on_progress: Callable[[int, int], None]) -> SeparatedSaveResult:
        options = self.options
        started = time.perf_counter()
        if self._cancelled.is_set():
            raise SaveCancelledError(f"save of {options.path} cancelled")
        outcome = (
            write_separated_array(
                self.data,
                options.path,
                progress=lambda written, total: self._progress(written, total, on_progress),
                **options.write_arguments(),
            )
            or WriteOutcome()
        )
        gain_bytes = sum(map(os.path.getsize, outcome.gain_files))
        return SeparatedSaveResult(
            options.path,
            int(np.prod(self.data.shape)) * ORIGINAL_DTYPE.itemsize,
            os.path.getsize(options.path) + gain_bytes,
            time.perf_counter() - started,
            options.compressed,
            note=outcome.note or "",
            gain_bytes=gain_bytes,
        )
