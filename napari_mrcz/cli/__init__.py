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
    (numpy, numba) ends the command with status 130 and no traceback.
    """
    try:
        from napari_mrcz.cli.command import main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    sys.exit(main())
