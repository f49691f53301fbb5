"""The ``mrcz`` command: inspect, validate, compress, decompress and convert files.

For facilities that archive many files without opening a GUI::

    mrcz info movie.mrcz                       # header summary (--json for scripts)
    mrcz validate *.mrc                        # MRC2014 + MRCZ checks; exit 1 on problems
    mrcz compress raw/ -o archive/ --jobs 2 --verify --delete-source
    mrcz decompress archive/ -o restored/
    mrcz convert image.dm4 image.mrcz          # pixel size and DM tags kept

Needs neither napari nor Qt. Exit status: 0 success, 1 when a file failed (or did
not validate), 2 for wrong arguments, 128 + the signal when interrupted (130 for
Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
"""

from __future__ import annotations

import signal
import sys


def console_main() -> None:
    """Entry point of the ``mrcz`` console script.

    The command's modules are imported here, so that a Ctrl-C while they load
    (numpy, numba) ends the command with status 130 and no traceback. Python drops
    an interrupt raised inside some of its import machinery (a weak-reference
    callback), so the handler also records it and the record is checked once the
    imports are done.
    """
    interrupts: list[int] = []

    def record_and_interrupt(signum: int, frame: object) -> None:
        interrupts.append(signum)
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, record_and_interrupt)
    try:
        try:
            from napari_mrcz.cli.command import main
        finally:
            signal.signal(signal.SIGINT, previous)
    except KeyboardInterrupt:
        interrupts.append(signal.SIGINT)
    if interrupts:
        print("interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    sys.exit(main())
