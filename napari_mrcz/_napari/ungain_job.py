"""The save panel's gain-separated save: a float32 movie layer as counts and a gain.

A :class:`~napari_mrcz._napari.save_job.SaveJob` whose writer is
:func:`napari_mrcz.tools.ungain.write_separated_array` (the gain estimated from the
layer, stored beside the file), and whose result counts the gain file and compares
with the float32 movie. Kept apart from Qt, like the job it extends.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_mrcz._napari.save_job import NO_COMPRESSION, SaveJob, SaveResult
from napari_mrcz.mrc.gainmeta import ORIGINAL_DTYPE
from napari_mrcz.tools.gain_separation import WriteOutcome, write_separated_array


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
        speed = self.data_bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")
        with_gain = f" with its new gain file ({self.gain_bytes / 1e6:.1f} MB)"
        return (
            f"Saved {os.path.basename(self.path)}: {self.file_bytes / 1e6:.1f} MB"
            f"{with_gain if self.gain_bytes else ''}, compression ratio {ratio:.2f}x "
            f"against float32, {speed:.0f} MB/s; {self.note}"
        )


class SeparatedSaveJob(SaveJob):
    """Save a float32 movie layer as integer counts with its gain reference beside it."""

    outcome: WriteOutcome | None = None

    def _write(self, events: queue.Queue) -> None:
        options = self.options
        try:
            self.outcome = write_separated_array(
                self.data,
                options.path,
                meta=options.meta or None,
                pixelsize=list(options.pixelsize_zyx),
                origin=list(options.origin_zyx),
                pixelunits="\\AA",
                compressor=None if options.codec == NO_COMPRESSION else options.codec,
                clevel=options.level,
                n_threads=options.threads,
                progress=lambda done, total: self._progress(done, total, events),
                **options.microscope,
            )
        except BaseException as error:  # handed to the generator, which re-raises it
            events.put(error)
        else:
            events.put(None)

    def steps(self) -> Generator[tuple[int, int], None, SeparatedSaveResult]:
        """Run the save (see :meth:`SaveJob.steps`); the result counts the gain file."""
        result = yield from super().steps()
        outcome = self.outcome or WriteOutcome()
        gain_bytes = sum(map(os.path.getsize, outcome.gain_files))
        return SeparatedSaveResult(
            result.path,
            int(np.prod(self.data.shape)) * ORIGINAL_DTYPE.itemsize,
            result.file_bytes + gain_bytes,
            result.seconds,
            outcome.note or "",
            gain_bytes,
        )
