"""Writing into an existing file: appending z-slices, or replacing them in plain MRC.

Only the written slices and the header change; nothing else in the file is touched.
MRCZ files can only be appended to (their slices are packed one after another).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from napari_mrcz.files import told_about
from napari_mrcz.mrc.codecs import (
    recorded_settings,
)
from napari_mrcz.mrc.header import (
    UNKNOWN_STATS,
    set_labels,
    stats_determined,
)
from napari_mrcz.mrc.layout import MRCLayout, read_layout, sampling_divisors
from napari_mrcz.mrc.pipeline import (
    Encoding,
    Frames,
    set_header_stats,
    write_fully,
    write_slices,
)
from napari_mrcz.mrc.slices import STREAM_BLOCK_BYTES, SliceReader
from napari_mrcz.mrc.stats import SliceStats, shift_for


def write_at_index(
    path: str,
    frames: Frames,
    idx: int,
    clevel: int,
    n_threads: int,
    progress: Callable[[int], None] | None = None,
    *,
    shown: str | None = None,
) -> None:
    """Write frames into an existing file from z-slice ``idx`` on.

    Plain MRC: any ``idx`` from 0 to nz (nz appends). MRCZ: appending only. Only the
    written slices and the header change; nothing else in the file is touched.
    """
    layout = read_layout(path)
    nz = layout.nz
    start = idx + nz if idx < 0 else idx
    if not 0 <= start <= nz:
        raise ValueError(
            f"Error: image or slice index out of range. idx = {idx}, z_dimension = {nz}"
        )
    if frames.shape != layout.shape[1:]:
        raise ValueError(
            f"Error: x,y dimensions of image {frames.shape} do not match that of "
            f"MRC file {path}: {layout.shape[1:]}"
        )
    if layout.is_uint4:
        raise ValueError(f"{path}: writing into a 4-bit (mode 101) file is not supported")
    if layout.gain_separation is not None:
        raise ValueError(
            f"{path} is gain-separated (integer counts times a gain reference): "
            "frames cannot be written into it"
        )
    if layout.compressor is not None and start != nz:
        raise RuntimeError(
            "Writing at arbitrary positions not supported for compressed files: "
            f"MRCZ frames can only be appended (idx={nz}). "
            f"Compressor = {layout.compressor}"
        )
    if layout.slices and frames.count % layout.slices:
        raise ValueError(
            f"{path} holds frames of {layout.slices} slices; "
            f"{frames.count} slices do not make whole frames"
        )
    new_nz = max(nz, start + frames.count)
    header = layout.header.copy()
    recorded = recorded_settings(layout.labels)
    if recorded is not None and recorded != (layout.compressor, int(clevel)):
        # The new slices are packed otherwise: the label no longer says how.
        set_labels(
            header, [label for label in layout.labels if recorded_settings([label]) is None]
        )
    old_stats = _trusted_stats(layout) if start == nz else None
    with SliceReader(layout) as reader:
        data_end = reader.data_end
        packed_before = reader.packed_bytes
    with open(path, "r+b", buffering=0) as handle:
        if layout.compressor is not None:
            header["packed_bytes"] = packed_before
            handle.seek(data_end)
        else:
            handle.seek(layout.data_offset + start * layout.slice_nbytes)
        size_before = os.fstat(handle.fileno()).st_size
        if start + frames.count > nz and size_before > data_end:
            raise ValueError(
                f"{shown or path} holds {size_before - data_end} bytes after its data, "
                "which new slices would overwrite: nothing was written (copy the file, "
                "e.g. with mrcz convert, to append to it)"
            )
        try:
            written = write_slices(
                handle,
                frames,
                Encoding(layout.dtype, layout.compressor, clevel, n_threads=n_threads),
                stats=old_stats,
                progress=progress,
            )
        except BaseException as error:
            # The header still describes the file as it was: cut off what was
            # appended (and the blocks reserved for it), so no half slice stays.
            with contextlib.suppress(OSError):
                handle.truncate(size_before)
                if start < nz:  # slices overwritten in place cannot be taken back
                    header["dmin"], header["dmax"], header["dmean"], header["rms"] = UNKNOWN_STATS
                    handle.seek(0)
                    write_fully(handle, header.tobytes())
            if start < nz:
                error.add_note(
                    f"z-slices from {start} on may already hold new data; the header's "
                    "statistics are marked unknown"
                )
            if isinstance(error, OSError):
                raise told_about(error, shown or path) from error
            raise
        header["packed_bytes"] += written.packed_bytes
        header["nz"] = new_nz
        section_sampling = ("mx", "my", "mz")[layout.crystal_axes[0]]
        if int(header[section_sampling]) == nz and not layout.slices:
            header[section_sampling] = new_nz  # a volume's sampling counts its sections
        # The sections' voxel size is kept: CELLA grows where it counts the sections
        # (CELLA / NZ, or CELLA / MZ with MZ = NZ); an image stack or a plain file of
        # frames (CELLA / MZ, MZ fixed) keeps its cell.
        divisor = layout.divisors[0]
        new_shape = (new_nz, *layout.shape[1:])
        new_divisor = sampling_divisors(header, new_shape, layout.mapcrs, layout.slices)[0]
        if new_divisor != divisor:
            header["cella"][layout.crystal_axes[0]] = layout.pixelsize[0] * new_divisor
        if old_stats is not None:
            set_header_stats(header, written.stats)
        else:
            handle.seek(0)
            write_fully(handle, header.tobytes())
            set_header_stats(header, _file_stats(path, n_threads))
        handle.seek(0)
        write_fully(handle, header.tobytes())
        os.fsync(handle.fileno())


def _trusted_stats(layout: MRCLayout) -> SliceStats | None:
    """The header statistics of ``layout`` as an accumulator, if they can be believed.

    python-mrcz estimates them from the first frame and writes RMS 0, so an RMS of 0
    in its files, and statistics marked unknown (RMS < 0, DMIN > DMAX, complex data),
    are not trusted.
    """
    header = layout.header
    dmin, dmax, dmean, rms = (float(header[name]) for name in ("dmin", "dmax", "dmean", "rms"))
    if not all(stats_determined(dmin, dmax, dmean, rms).values()) or layout.dtype.kind == "c":
        return None
    if rms == 0 and (dmin != dmax or layout.written_by_python_mrcz):
        return None
    shift = round(dmean) if layout.dtype.kind in "iub" else dmean
    return SliceStats.from_header(
        dmin, dmax, dmean, rms, layout.nz * layout.shape[1] * layout.shape[2], shift=shift
    )


def _file_stats(path: str, n_threads: int) -> SliceStats:
    """Statistics of all the data of a file, read about 64 MB at a time."""
    layout = read_layout(path)
    stats: SliceStats | None = None
    block = max(1, STREAM_BLOCK_BYTES // max(1, layout.slice_nbytes))
    with SliceReader(layout, n_threads) as reader:
        for first in range(0, layout.nz, block):
            count = min(block, layout.nz - first)
            data = reader.read_into(first, first + count, reader.new_array(count))
            data = data.astype(data.dtype.newbyteorder("="), copy=False)
            if stats is None:
                stats = SliceStats(shift_for(data, data.dtype))
            stats.add(data)
    return stats if stats is not None else SliceStats()
