"""Files on a web server: napari's stalls while a slice arrives, and read throughput.

Run it standalone, from the repository root, on a display (or a virtual one)::

    QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python benchmarks/bench_remote.py \\
        [--delay 2] [--frames 16] [--side 2048] [--repeat 3]

With the HTTP server of the tests (tests/servers.py: byte ranges, on 127.0.0.1), it
measures:

* the longest event-loop stall of a real napari viewer while a new slice arrives from
  a server that answers every request ``--delay`` seconds late: a QTimer ticks every
  10 ms on the GUI thread and the longest gap is kept, with napari's "Render Layers
  Asynchronously" preference off and on (restored at the end);
* reading a whole MRCZ movie (``--frames`` x ``--side``^2 int16 Poisson counts, zstd
  level 1, with its chunk sizes recorded) from the server against reading the same
  file from disk, best of ``--repeat``, interleaved; and the requests the remote read
  took.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import napari_mrcz

from tests.servers import RangeServer

SEED = 20261207
MB = 1e6


def gui_stalls(server: RangeServer, url: str, delay: float) -> dict[str, float]:
    """The longest stall while a new slice arrives, napari's async slicing off and on."""
    import napari
    from bench_gui import StallMeter
    from napari.settings import get_settings
    from qtpy.QtWidgets import QApplication

    settings = get_settings().experimental
    before = settings.async_
    stalls = {}
    try:
        viewer = napari.Viewer(show=True)
        viewer.open(url, plugin="napari-mrcz")
        for _ in range(50):
            QApplication.processEvents()
            time.sleep(0.01)
        meter = StallMeter(10)
        for step, background in ((3, False), (9, True)):
            settings.async_ = background
            server.delay_s = delay
            asked = len(server.requests)
            stalls["on" if background else "off"] = meter.run(
                lambda step=step: viewer.dims.set_current_step(0, step),
                lambda asked=asked: len(server.requests) > asked,
                timeout=10 * delay + 10,
            )
            server.delay_s = 0.0
        viewer.close()
    finally:
        settings.async_ = before
    return stalls


def read_throughput(server: RangeServer, url: str, path: pathlib.Path, repeat: int) -> dict:
    """MB/s of reading the whole file from the server and from disk, best of ``repeat``."""
    best = {"remote": float("inf"), "local": float("inf")}
    requests = 0
    for _ in range(repeat):
        for where, address in (("remote", url), ("local", str(path))):
            server.forget()
            started = time.perf_counter()
            with napari_mrcz.open_lazy(address) as movie:
                data = np.asarray(movie)
            best[where] = min(best[where], time.perf_counter() - started)
            if where == "remote":
                requests = len(server.requests)
    nbytes = data.nbytes
    return {
        "remote_mbs": nbytes / best["remote"] / MB,
        "local_mbs": nbytes / best["local"] / MB,
        "requests": requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=2.0, help="server delay, s (2)")
    parser.add_argument("--frames", type=int, default=16, help="frames of the movie (16)")
    parser.add_argument("--side", type=int, default=2048, help="frame side (2048)")
    parser.add_argument("--repeat", type=int, default=3, help="reads of each kind (3)")
    args = parser.parse_args()

    rng = np.random.default_rng(SEED)
    movie = rng.poisson(1.0, (args.frames, args.side, args.side)).astype(np.int16)
    server = RangeServer()
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "movie.mrcz"
        napari_mrcz.writeMRC(movie, path, compressor="zstd", clevel=1, meta={})
        server.files["/movie.mrcz"] = path.read_bytes()
        url = server.url("/movie.mrcz")
        stalls = gui_stalls(server, url, args.delay)
        throughput = read_throughput(server, url, path, args.repeat)
    server.close()
    print(f"server answering {args.delay:g} s late; longest GUI stall while a slice arrives:")
    print(f"  napari's async slicing off: {stalls['off']:.3f} s")
    print(f"  napari's async slicing on:  {stalls['on']:.3f} s")
    size = movie.nbytes / MB
    print(f"whole {size:.0f} MB movie (MRCZ zstd-1), best of {args.repeat}:")
    print(
        f"  from the server (127.0.0.1): {throughput['remote_mbs']:.0f} MB/s "
        f"in {throughput['requests']} requests"
    )
    print(f"  from disk:                   {throughput['local_mbs']:.0f} MB/s")
    ratio = throughput["remote_mbs"] / throughput["local_mbs"]
    print(f"  ratio server / disk:         {ratio:.2f}")


if __name__ == "__main__":
    main()
