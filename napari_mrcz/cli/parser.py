"""The ``mrcz`` command's arguments: one subparser per subcommand."""

from __future__ import annotations

import argparse
import importlib.util

from napari_mrcz.__about__ import __version__
from napari_mrcz.cli.cluster import DISTRIBUTED_MISSING
from napari_mrcz.mrc.codecs import AVAILABLE_CODECS
from napari_mrcz.mrc.jsonmeta import JSON_IN_PLAIN_COST
from napari_mrcz.suffixes import COMPRESSED_SUFFIX, PLAIN_SUFFIXES

_CONVERT_EPILOG = """\
MRC and MRCZ inputs keep their header (axis order, origin, labels, microscope values)
and extended header; DM inputs keep their pixel size, origin, voltage and Cs, with all
their tags as JSON meta ('dm_tags'). JSON meta goes into MRCZ outputs, and into plain
MRC outputs only with --keep-json. A map with a permuted axis order (MAPC, MAPR, MAPS)
becomes MRCZ in standard (z, y, x) order. A DM file with several images gives one
output per image, numbered name_0, name_1, ... Outputs are written under a temporary
name and renamed when complete: an interrupted run leaves no partial file.
"""


_CLUSTER_EPILOG = """\
With --scheduler or --scheduler-file (pip install 'napari-mrcz[cluster]'), each file is
one task on the workers of a dask.distributed cluster, which must see the same paths
and run the same napari-mrcz: the outputs, the progress and the table are those of a
local run. A task whose worker dies runs again elsewhere; --threads is 1 per file
there unless given.
"""

_BATCH_EPILOG = (
    _CONVERT_EPILOG
    + """\
Two inputs that would write the same output (x.dm4 and x.mrc, names differing only in
case) are not converted and are named in the summary; the other files are. Files of
a folder the command leaves alone (.mrcz for compress, others for decompress) are
listed as skipped. --delete-source keeps a source with bytes after its data, DM tag
arrays too large for JSON meta, JSON meta left out of a plain output, or float64 data
(stored as float32), and says so in the summary.
"""
    + _CLUSTER_EPILOG
)

_UNGAIN_EPILOG = """\
--ungain stores float32 gain-normalised movies as their integer electron counts (the
smallest integer type that holds them) with the gain reference once per output folder
(gain_<checksum>.mrcz, named in each movie's JSON meta). Every value is checked bit for
bit; a movie that is not gain x whole counts (motion-corrected, dose-weighted, another
gain) is stored as float32 and the summary says why. napari-mrcz reads such files as the
float32 movie; 'mrcz decompress' restores it (an MRC original byte for byte).
"""


def _count(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _needs_distributed(text: str) -> str:
    """argparse type of the cluster options: the value, once dask.distributed is found."""
    if importlib.util.find_spec("distributed") is None:
        raise argparse.ArgumentTypeError(DISTRIBUTED_MISSING)
    return text


def _add_cluster_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_argument_group("on a dask cluster").add_mutually_exclusive_group()
    group.add_argument(
        "--scheduler",
        type=_needs_distributed,
        metavar="ADDRESS",
        help=f"{what} on the workers of this dask scheduler (e.g. tcp://host:8786)",
    )
    group.add_argument(
        "--scheduler-file",
        type=_needs_distributed,
        metavar="FILE",
        help="the same, for the scheduler named in FILE "
        "(as 'dask scheduler --scheduler-file FILE' writes it)",
    )


def _add_conversion_options(
    parser: argparse.ArgumentParser, codec: bool, threads_help: str
) -> None:
    if codec:
        parser.add_argument(
            "--codec",
            default="zstd",
            choices=sorted(AVAILABLE_CODECS),
            help="blosc codec (default: zstd)",
        )
        parser.add_argument(
            "--level",
            type=int,
            default=1,
            choices=range(1, 10),
            metavar="1-9",
            help="compression level (default: 1, fastest)",
        )
    parser.add_argument("--threads", type=int, default=0, metavar="N", help=threads_help)
    parser.add_argument(
        "--verify",
        action="store_true",
        help="read each output back and compare it with its source",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (default: compress and decompress skip them, "
        "convert fails)",
    )
    _add_gain_options(parser, compressing=codec)


def _add_keep_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-json",
        action="store_true",
        help="also write JSON metadata (DM tags, a source's JSON meta) into plain MRC "
        f"outputs; by default only MRCZ outputs hold it, because {JSON_IN_PLAIN_COST}",
    )


def _add_gain_options(parser: argparse.ArgumentParser, compressing: bool) -> None:
    gains = parser.add_argument_group("gain-normalised movies")
    if not compressing:
        gains.add_argument(
            "--counts",
            action="store_true",
            help="write gain-separated files as their integer counts with a plain MRC gain "
            "reference beside them (what motion correction takes), not as float32",
        )
        return
    gains.add_argument(
        "--ungain",
        action="store_true",
        help="store float32 movies as integer counts plus one gain reference per folder, "
        "losslessly (see below)",
    )
    gains.add_argument(
        "--gain-reference",
        metavar="FILE",
        help="the gain the movies were normalised with (MRC, MRCZ, DM4, DM3; implies "
        "--ungain); default: estimated from each movie",
    )
    gains.add_argument(
        "--gain-rotate",
        type=int,
        choices=(0, 90, 180, 270),
        help="rotate the gain reference by this many degrees, as numpy.rot90 (default: the "
        "rotation and flip that fit the first frame)",
    )
    gains.add_argument(
        "--gain-flip",
        choices=("none", "x", "y"),
        help="then flip it: y upside down, x left-right (DM4 gains with SerialEM MRC "
        "movies usually need y)",
    )


def _add_batch_options(parser: argparse.ArgumentParser, codec: bool) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="IN", help="files, or folders searched recursively"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="output folder (created if missing; folder inputs keep their tree under it)",
    )
    _add_conversion_options(
        parser,
        codec,
        "slices encoded in parallel per file (default: all cores, shared among the jobs)",
    )
    parser.add_argument(
        "--jobs",
        type=_count,
        metavar="N",
        help="files converted at the same time (default: 1; on a cluster, as many as "
        "the workers take)",
    )
    parser.add_argument(
        "--delete-source",
        action="store_true",
        help="delete each source once its output is verified and holds "
        "all of it (implies --verify; see below)",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show the progress bar even when not on a terminal",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show the progress bar"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no line per file while running (the summary is printed)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``mrcz`` argument parser with its five subcommands."""
    parser = argparse.ArgumentParser(
        prog="mrcz",
        description="Inspect, validate, compress, decompress and convert MRC, MRCZ and DM files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'mrcz COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"napari-mrcz {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser(
        "info",
        help="summarise MRC, MRCZ and DM files",
        description="Header summary of each file: dimensions, mode and dtype, pixel size, "
        "codec and level, packed size and ratio, JSON meta keys, DM tag "
        "highlights. Reads headers only (a .gz or .bz2 file is decompressed to a "
        "temporary copy first).",
    )
    info.add_argument(
        "files", nargs="+", metavar="FILE", help="files, or folders searched recursively"
    )
    info.add_argument("--json", action="store_true", help="print one JSON list for scripts")

    validate = commands.add_parser(
        "validate",
        help="check files against MRC2014 and MRCZ",
        description="MRC2014 checks as mrcfile.validate makes them, plus MRCZ checks "
        "(blosc chunk headers consistent with the file, sizes, statistics). "
        "Exit status 1 if any file has a problem.",
    )
    validate.add_argument(
        "files", nargs="+", metavar="FILE", help="files, or folders searched recursively"
    )
    validate.add_argument(
        "--no-stats",
        action="store_true",
        help="check headers and sizes only; do not read the data",
    )
    validate.add_argument(
        "--strict", action="store_true", help="count warnings (such as EXTTYP 'json') as problems"
    )
    validate.add_argument("--json", action="store_true", help="print one JSON list for scripts")
    _add_cluster_options(validate, "check each file as one task")

    compress = commands.add_parser(
        "compress",
        help="MRC, MRCZ or DM files to MRCZ",
        description="Compress MRC and DM files (folders searched recursively) into "
        "MRCZ files in DIR.",
        epilog=_BATCH_EPILOG + _UNGAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_batch_options(compress, codec=True)
    _add_cluster_options(compress, "convert each file as one task")

    decompress = commands.add_parser(
        "decompress",
        help="MRCZ files (or any file named) to plain MRC",
        description="Write plain MRC2014 files (readable by every MRC program) into DIR.",
        epilog=_BATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_batch_options(decompress, codec=False)
    _add_cluster_options(decompress, "convert each file as one task")
    decompress.add_argument(
        "--suffix",
        default=".mrc",
        choices=PLAIN_SUFFIXES,
        help="suffix of the outputs (default: .mrc)",
    )
    _add_keep_json(decompress)

    convert = commands.add_parser(
        "convert",
        help="one file to MRCZ or MRC, the format chosen by OUT's suffix",
        description=f"Convert IN (MRC, MRCZ, DM3, DM4) to OUT: compressed MRCZ for "
        f"'{COMPRESSED_SUFFIX}', plain MRC for {', '.join(PLAIN_SUFFIXES)}.",
        epilog=_CONVERT_EPILOG + _UNGAIN_EPILOG + _CLUSTER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert.add_argument("input", metavar="IN")
    convert.add_argument("output", metavar="OUT")
    _add_conversion_options(convert, True, "slices encoded in parallel (default: all cores)")
    _add_cluster_options(convert, "convert the file as a task")
    _add_keep_json(convert)
    return parser
