"""napari stays responsive while napari-mrcz saves and opens a large movie.

Run it standalone, from the repository root, on a display (or a virtual one)::

    QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python benchmarks/bench_gui.py \\
        [--frames 64] [--side 4096] [--codec zstd] [--level 1] [--threads 2] [--repeat 5]

In one process, with a real napari viewer on screen holding a counting-mode movie
(int8 Poisson(1) counts, ``--frames`` x ``--side`` x ``--side``: 1 GiB by default,
seeded), once napari has drawn it (its first draw is not ours), it measures:

* ``writeMRC``: ``napari_mrcz.writeMRC`` of the movie (same codec, level, threads),
  called directly (the viewer idle meanwhile): the engine's own speed in this process;
* the Save as MRCZ panel: a click on its Save button until the panel reports the
  save done, with the event loop running; its speed, and the ratio panel / writeMRC
  (repeats interleaved with writeMRC's, best of ``--repeat`` each);
* the longest event-loop stall during the panel's save: a ``QTimer`` ticks every
  ``--tick-ms`` ms on the GUI thread and the longest gap between two ticks is kept
  (worst over the repeats), next to the same figure for an idle viewer (what the
  machine itself adds);
* File > Save Layers (``viewer.layers.save``, napari calls writers on the GUI thread
  and waits for them): its duration and stall;
* opening the saved MRCZ (lazily, above 512 MiB): the time ``viewer.open`` blocks
  and the longest stall while napari then draws the first frame.

Outputs are deleted before each write (no save pays for replacing a file) and flushed
to disk after it, untimed (no write pays for the previous one's writeback); they go to a
temporary folder inside ``--out`` (default: the system temporary folder), removed at
the end. python-mrcz is not imported: its import switches blosc settings that change
the figures.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import napari_mrcz
from napari_mrcz.mrc import stats_kernels

from tests.helpers import poisson1_frame

SEED = 20261125
MIB = 2**20


class StallMeter:
    """The longest gap between ticks of a fast QTimer on the GUI thread."""

    def __init__(self, tick_ms: int) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(tick_ms)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.longest = 0.0
        self.until = None

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now
        if self.until is not None and self.until():
            self.loop.quit()

    def run(self, action, until, timeout: float = 600.0) -> float:
        """Start ticking, run ``action()``, keep the event loop going until ``until()``;
        return the longest gap (seconds)."""
        from qtpy.QtCore import QEventLoop, QTimer

        self.longest, self.until = 0.0, until
        self.loop = QEventLoop()
        self.last = time.perf_counter()
        self.timer.start()
        QTimer.singleShot(0, action)
        QTimer.singleShot(int(timeout * 1000), self.loop.quit)
        self.loop.exec()
        self.timer.stop()
        self.until = None
        return self.longest


def settle(path: str) -> None:
    """Flush a written file to disk (untimed), so that its writeback does not slow the
    next timed write."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def make_movie(frames: int, side: int) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    movie = np.empty((frames, side, side), dtype=np.int8)
    for index in range(frames):
        movie[index] = poisson1_frame(rng, (side, side))
    return movie


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--codec", default="zstd")
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tick-ms", type=int, default=5)
    parser.add_argument("--out", default=tempfile.gettempdir())
    args = parser.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    movie = make_movie(args.frames, args.side)
    size_mib = movie.nbytes / MIB
    folder = tempfile.mkdtemp(prefix="bench-gui-", dir=args.out)
    engine_path = os.path.join(folder, "engine.mrcz")
    panel_path = os.path.join(folder, "panel.mrcz")
    try:
        viewer = napari.Viewer(show=True)
        viewer.add_image(movie, name="movie")
        meter = StallMeter(args.tick_ms)
        # napari draws the movie's first slice when the event loop first runs: let it,
        # so that the figures below are not that draw's.
        started = time.perf_counter()
        meter.run(lambda: None, lambda: time.perf_counter() - started > 2.0)
        _, panel = viewer.window.add_plugin_dock_widget("napari-mrcz", "Save as MRCZ")
        panel.codec.value = args.codec
        panel.level.value = args.level
        panel.threads.value = args.threads
        panel.output.value = panel_path
        # Given a 1 GiB int8 layer, the panel has the compiled statistics prepared
        # in the background (once per session): measured apart, then the idle viewer.
        started = time.perf_counter()
        kernel_stall = meter.run(
            lambda: None,
            lambda: stats_kernels._compiling is None or not stats_kernels._compiling.is_alive(),
        )
        kernel_seconds = time.perf_counter() - started
        started = time.perf_counter()
        idle = meter.run(lambda: None, lambda: time.perf_counter() - started > 2.0)

        engine_seconds, panel_seconds, stalls = [], [], []
        for _ in range(args.repeat):
            for path in (engine_path, panel_path):
                if os.path.exists(path):
                    os.unlink(path)
            QApplication.processEvents()
            start = time.perf_counter()
            napari_mrcz.writeMRC(
                movie,
                engine_path,
                compressor=args.codec,
                clevel=args.level,
                n_threads=args.threads,
            )
            engine_seconds.append(time.perf_counter() - start)
            settle(engine_path)
            QApplication.processEvents()
            clicked = {}

            def click(clicked=clicked) -> None:
                clicked["at"] = time.perf_counter()
                panel.save_button.native.click()

            stalls.append(
                meter.run(click, lambda clicked=clicked: "at" in clicked and not panel.busy)
            )
            panel_seconds.append(time.perf_counter() - clicked["at"])
            if not panel.status.value.startswith("Saved"):
                raise RuntimeError(f"the panel did not save: {panel.status.value}")
            settle(panel_path)

        os.unlink(engine_path)
        settle(folder)
        saved = {}
        file_save_stall = meter.run(
            lambda: saved.update(
                at=time.perf_counter(),
                paths=viewer.layers.save(engine_path, plugin="napari-mrcz"),
                done=time.perf_counter(),
            ),
            lambda: "done" in saved,
        )
        opened = {}
        open_stall = meter.run(
            lambda: opened.update(
                at=time.perf_counter(),
                layers=viewer.open(panel_path, plugin="napari-mrcz"),
                done=time.perf_counter(),
            ),
            lambda: "done" in opened and time.perf_counter() - opened["done"] > 1.0,
        )
        lazy = type(opened["layers"][0].data).__name__
        viewer.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    engine_speed = size_mib / min(engine_seconds)
    panel_speed = size_mib / min(panel_seconds)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"napari-mrcz GUI benchmark: {args.frames} x {args.side} x {args.side} int8 "
        f"({size_mib:.0f} MiB), {args.codec}-{args.level}, {args.threads} threads, "
        f"best of {args.repeat}; {os.cpu_count()} cores, load average {load}"
    )
    rows = [
        ("writeMRC (engine, direct call)", f"{engine_speed:.0f} MiB/s", "-"),
        ("Save as MRCZ panel", f"{panel_speed:.0f} MiB/s", f"{max(stalls) * 1000:.0f} ms"),
        ("idle viewer (reference)", "-", f"{idle * 1000:.0f} ms"),
        (
            "statistics kernel prepared (once, on choosing the layer)",
            f"{kernel_seconds * 1000:.0f} ms",
            f"{kernel_stall * 1000:.0f} ms",
        ),
        (
            "File > Save Layers (napari waits)",
            f"{size_mib / (saved['done'] - saved['at']):.0f} MiB/s",
            f"{file_save_stall * 1000:.0f} ms",
        ),
        (
            f"viewer.open of the MRCZ ({lazy})",
            f"{(opened['done'] - opened['at']) * 1000:.0f} ms blocked",
            f"{open_stall * 1000:.0f} ms",
        ),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"{'':{width}}  {'speed':>16}  {'longest stall':>13}")
    for name, speed, stall in rows:
        print(f"{name:{width}}  {speed:>16}  {stall:>13}")
    print(
        f"panel / writeMRC speed: {panel_speed / engine_speed:.2f}x (target >= 0.8); "
        f"longest stall while the panel saves: {max(stalls) * 1000:.0f} ms (target < 100)"
    )


if __name__ == "__main__":
    main()
