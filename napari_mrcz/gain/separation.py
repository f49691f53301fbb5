"""Converting images with gains: float32 movies to counts and a gain, and back.

What ``mrcz compress --ungain``, ``mrcz decompress`` (``--counts``) and napari's save
panel run for one image. A float32 movie is written as its integer counts with the gain
reference once per output folder (:class:`~napari_mrcz.gain.store.GainStore`),
the gain the facility's (turned to fit) or estimated from the movie (two passes: the
estimate, then the counts); every value is checked bit for bit, and a movie that is not
gain x whole counts (motion-corrected, dose-weighted, another gain, defect pixels
filled in) is written as float32, saying why. A gain-separated input is written back as
its float32 movie (an MRC original byte for byte), or as counts with a plain gain.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from napari_mrcz.arraylike import LazyView, as_stack
from napari_mrcz.formats import Image
from napari_mrcz.gain.estimate import (
    NotGainTimesCountsError,
    estimate_gain,
    refine_gain,
    write_counts,
)
from napari_mrcz.gain.store import GainReference, GainStore
from napari_mrcz.mrc.gainmeta import ORIGINAL_DTYPE, GainSeparation, gain_digest
from napari_mrcz.mrc.header import HEADER_SIZE, header_dtype
from napari_mrcz.mrc.jsonmeta import DM_TAGS_KEY, GAIN_KEY, encode_meta
from napari_mrcz.mrc.lazy import LazyMRC
from napari_mrcz.mrc.modes import PYTHON_MRCZ_MODES, mode_for_dtype, mrc_dtype
from napari_mrcz.mrc.write import write_array, write_with_header
from napari_mrcz.threads import default_threads
from napari_mrcz.tools.convert import (
    Progress,
    carried_header,
    dm_write_options,
    write_image,
)


@dataclass
class WriteOutcome:
    """What writing one image did besides the output file.

    Attributes
    ----------
    note : str or None
        For the run's summary: how the image was stored (counts and which gain), or
        why it was stored as float32.
    gain_files : list of str
        Gain reference files this write created (shared by the folder's movies).
    """

    note: str | None = None
    gain_files: list[str] = field(default_factory=list)


@dataclass
class GainSettings:
    """What a conversion run does with gains (the command line's options).

    Attributes
    ----------
    store : GainStore
        Where the run's gain references go.
    ungain : bool
        Store float32 movies as counts and a gain (``--ungain``).
    reference : GainReference or None
        The facility's gain (``--gain-reference``); None: estimated from each movie.
    counts : bool
        Write gain-separated inputs as counts and a plain gain reference rather than
        as float32 (``mrcz decompress --counts``).
    """

    store: GainStore
    ungain: bool = False
    reference: GainReference | None = None
    counts: bool = False


class _Progress:
    """Byte progress for the runner from the share of the work done, never backwards.

    A write retried (a wider count type) or replaced (float32 after all) reports only
    what goes past the furthest point reached.
    """

    def __init__(self, progress: Progress | None, nbytes: int) -> None:
        self.progress = progress
        self.nbytes = nbytes
        self.reported = 0

    def to(self, share: float) -> None:
        """The work is done up to ``share`` (0 to 1)."""
        reached = int(self.nbytes * min(1.0, share))
        if self.progress is not None and reached > self.reported:
            step, self.reported = reached - self.reported, reached
            self.progress(step)

    def check(self, *_: Any) -> None:
        """Report no progress: lets the caller stop work that makes none (cancel)."""
        if self.progress is not None:
            self.progress(0)

    def slices(self, start: float, share: float) -> Callable[[int, int], None]:
        """A writer's ``progress(written, total)`` over the part [start, start + share]."""
        return lambda written, total: self.to(start + share * written / max(1, total))

    def bytes(self) -> Progress:
        """A :func:`~napari_mrcz.tools.convert.write_image` progress over all the work."""
        done = [0]

        def report(nbytes: int) -> None:
            done[0] += nbytes
            self.to(done[0] / max(1, self.nbytes))

        return report


def convert_image(
    image: Image,
    target: str,
    compressor: str | None,
    clevel: int = 1,
    n_threads: int | None = None,
    progress: Progress | None = None,
    gain: GainSettings | None = None,
    *,
    keep_json: bool = False,
    temporary: str | None = None,
) -> WriteOutcome:
    """Write one source image, as :func:`~napari_mrcz.tools.convert.write_image`
    does, separating or restoring gains.

    A gain-separated input becomes its float32 movie again (its original header, for
    a plain MRC output, byte for byte), or with ``gain.counts`` its counts and a plain
    gain reference; with ``gain.ungain`` a float32 movie becomes counts and a gain.
    ``keep_json`` and ``temporary`` are as for ``write_image``; gain files go beside
    ``target``.
    """
    destination = target if temporary is None else temporary
    if image.layout is not None and image.layout.gain_separation is not None:
        if gain is not None and gain.counts:
            return _write_counts_copy(
                image, destination, gain.store, clevel, n_threads, progress, keep_json
            )
        return _write_original(image, destination, compressor, clevel, n_threads, progress)
    if gain is not None and gain.ungain:
        return _write_separated(image, destination, compressor, clevel, n_threads, progress, gain)
    write_image(
        image,
        target,
        compressor,
        clevel,
        n_threads,
        progress,
        keep_json=keep_json,
        temporary=temporary,
    )
    return WriteOutcome()


def _not_a_movie(data: Any) -> str | None:
    """Why ``data`` is not a float32 movie to separate, or None."""
    dtype = np.dtype(data.dtype)
    if dtype.newbyteorder("=") == ORIGINAL_DTYPE and not dtype.isnative:
        return "big-endian float32 (gain separation takes little-endian movies)"
    if dtype != ORIGINAL_DTYPE:
        return f"{dtype.name} data, not float32"
    if data.ndim != 3 or data.shape[0] < 2:
        return "a single image, not a movie"
    return None


@dataclass
class _Movie:
    """A float32 movie to separate, and how its counts (or itself) are written.

    ``write_counts(counts, record, progress)`` writes the counts with the record in
    their JSON meta, ``write_float32(done)`` the movie as it is.
    """

    data: Any
    name: str
    pixel_size: list[float]
    write_counts: Callable[[Any, GainSeparation, Callable[[int, int], None]], None]
    write_float32: Callable[[_Progress], None]
    statistics: tuple[float, float, float, float] | None = None
    original_header: bytes | None = None
    original_extended_header: bytes | None = None


def _separate(
    movie: _Movie, folder: str, settings: GainSettings, n_threads: int, done: _Progress
) -> WriteOutcome:
    """Write ``movie`` as counts and a gain of ``folder``, or as float32 saying why.

    The gain is the reference (turned to fit), or estimated (a first pass over the
    movie): then a gain of the folder that fits is taken, else a new one; if the
    counts do not give the movie back with it, the movie's own estimate is tried.
    """
    data = movie.data
    statistics = movie.statistics
    source: dict[str, Any] = {"pixel_size_angstrom": movie.pixel_size}
    if settings.reference is None:
        nz = data.shape[0]
        estimate = estimate_gain(
            data, n_threads, lambda read: done.to(0.5 * read / nz), with_stats=not statistics
        )
        if estimate.problem is not None:
            movie.write_float32(done)
            return WriteOutcome(f"stored as float32: {estimate.problem}")
        statistics = statistics or estimate.statistics
        source["estimated_from"] = movie.name
        gains = [
            lambda: settings.store.fitting(folder, estimate),
            lambda: estimate.merged(None),
            lambda: refine_gain(data, estimate.merged(None), n_threads, done.check),
        ]
        start = 0.5
    else:
        try:
            reference, how = settings.reference.oriented_for(
                np.ascontiguousarray(data[0], dtype=ORIGINAL_DTYPE)
            )
        except NotGainTimesCountsError as error:
            movie.write_float32(done)
            return WriteOutcome(f"stored as float32: {error}")
        source.update(how)
        gains = [lambda: reference]
        start = 0.0
    tried: set[str] = set()
    problem = ""
    for next_gain in gains:
        gain = next_gain()
        digest = gain_digest(gain)
        if digest in tried:
            continue
        tried.add(digest)
        record = GainSeparation(
            gain_file=settings.store.name_for(digest),
            gain_sha256=digest,
            statistics=statistics,
            original_header=movie.original_header,
            original_extended_header=movie.original_extended_header,
            gain_source=source,
        )
        report = done.slices(start, 1.0 - start)
        try:
            dtype = write_counts(
                data,
                gain,
                lambda counts, record=record, report=report: movie.write_counts(
                    counts, record, report
                ),
                n_threads,
            )
        except NotGainTimesCountsError as error:
            problem = str(error)
            continue
        stored, created = settings.store.ensure(folder, gain, source)
        return WriteOutcome(
            f"gain-separated: {dtype.name} counts x {stored.name}" + (" (new)" if created else ""),
            [stored.path] if created else [],
        )
    movie.write_float32(done)
    return WriteOutcome(f"stored as float32: {problem}")


def _write_separated(
    image: Image,
    target: str,
    compressor: str | None,
    clevel: int,
    n_threads: int | None,
    progress: Progress | None,
    settings: GainSettings,
) -> WriteOutcome:
    """Write a source image as counts and a gain in its folder, or as it is."""
    data = as_stack(image.data)
    layout = image.layout
    problem = _not_a_movie(data)
    if problem is None and layout is not None and layout.mapcrs != (1, 2, 3):
        problem = "its axis order is permuted"
    if problem is not None:
        write_image(image, target, compressor, clevel, n_threads, progress)
        return WriteOutcome(f"kept as it was: {problem}")
    threads = max(1, n_threads or default_threads())

    def write_counts(counts: Any, record: GainSeparation, report: Callable) -> None:
        _write_counts_file(image, counts, target, record, compressor, clevel, threads, report)

    def write_float32(done: _Progress) -> None:
        write_image(image, target, compressor, clevel, threads, done.bytes())

    movie = _Movie(
        data,
        os.path.basename(image.path),
        [float(size) for size in layout.pixelsize]
        if layout is not None
        else dm_write_options(image.dm_meta)["pixelsize"],
        write_counts,
        write_float32,
    )
    if layout is not None:
        movie.statistics = tuple(
            float(layout.header[name]) for name in ("dmin", "dmax", "dmean", "rms")
        )
        movie.original_header = layout.header.tobytes()
        if layout.nsymbt and layout.exttyp != "json":
            movie.original_extended_header = layout.read_extended_header()
    folder = os.path.dirname(os.path.abspath(target))
    return _separate(movie, folder, settings, threads, _Progress(progress, image.nbytes))


def write_separated_array(
    data: Any,
    path: str | os.PathLike,
    *,
    meta: dict | None = None,
    compressor: str | None = "zstd",
    clevel: int = 1,
    n_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **write_options: Any,
) -> WriteOutcome:
    """Write a float32 movie as gain-separated MRCZ, the gain estimated from it.

    The counts go to ``path``, the gain beside it (shared with the folder's other
    movies); a movie that is not gain x whole counts is written as float32. What
    napari's save panel runs.

    Parameters
    ----------
    data : array-like
        float32 (nz, ny, nx), nz of at least 2.
    path : str or os.PathLike
        The file; replaced only once complete.
    meta, compressor, clevel, n_threads
        As for :func:`~napari_mrcz.mrc.write.write_array`.
    progress : callable, optional
        ``progress(done, nz)`` as the work advances (the estimate, then the writing);
        an exception it raises stops the save, leaving no file.
    **write_options
        More :func:`~napari_mrcz.mrc.write.write_array` keywords (pixel size, origin,
        microscope values).

    Returns
    -------
    WriteOutcome
        How the movie was stored, and the gain file written (if new).

    Raises
    ------
    ValueError
        If ``data`` is not a float32 movie.
    """
    path = os.path.abspath(os.fspath(path))
    problem = _not_a_movie(data)
    if problem is not None:
        raise ValueError(f"only float32 movies can be gain-separated; this is {problem}")
    nz = int(data.shape[0])
    threads = max(1, n_threads or default_threads())

    def write_counts(counts: Any, record: GainSeparation, report: Callable) -> None:
        write_array(
            counts,
            path,
            meta={**(meta or {}), GAIN_KEY: record.to_json()},
            compressor=compressor,
            clevel=clevel,
            n_threads=threads,
            progress=report,
            **write_options,
        )

    def write_float32(done: _Progress) -> None:
        write_array(
            data,
            path,
            meta=meta,
            compressor=compressor,
            clevel=clevel,
            n_threads=threads,
            progress=done.slices(0.0, 1.0),
            **write_options,
        )

    done = [0]

    def count_slices(step: int) -> None:
        done[0] += step
        if progress is not None:
            progress(done[0], nz)

    pixel_size = write_options.get("pixelsize", 1.0)
    movie = _Movie(
        data,
        os.path.basename(path),
        [float(size) for size in np.broadcast_to(pixel_size, 3)],
        write_counts,
        write_float32,
    )
    settings = GainSettings(GainStore(compressor, clevel), ungain=True)
    return _separate(movie, os.path.dirname(path), settings, threads, _Progress(count_slices, nz))


def _write_counts_file(
    image: Image,
    counts: Any,
    target: str,
    record: GainSeparation,
    compressor: str | None,
    clevel: int,
    n_threads: int,
    report: Callable[[int, int], None],
) -> None:
    """Write the counts of ``image`` with its header or DM calibration and ``record``."""
    layout = image.layout
    if layout is None:
        write_array(
            counts,
            target,
            meta={DM_TAGS_KEY: image.dm_meta["tags"], GAIN_KEY: record.to_json()},
            compressor=compressor,
            clevel=clevel,
            n_threads=n_threads,
            progress=report,
            **dm_write_options(image.dm_meta),
        )
        return
    meta = {key: value for key, value in (layout.json_meta or {}).items() if key != GAIN_KEY}
    meta[GAIN_KEY] = record.to_json()
    extended = encode_meta(meta)
    header, _ = carried_header(layout, mode_for_dtype(counts.dtype), compressor, clevel)
    header["nsymbt"] = len(extended)
    header["exttyp"] = b"json"
    write_with_header(target, counts, header, extended, compressor, clevel, n_threads, report)


def _write_original(
    image: Image,
    target: str,
    compressor: str | None,
    clevel: int,
    n_threads: int | None,
    progress: Progress | None,
) -> WriteOutcome:
    """Write a gain-separated input as the float32 movie it was.

    Its JSON meta loses the record (and gets back the original's extended header);
    a plain MRC output of an original plain MRC file gets its header back byte for
    byte, so the file is the original again.
    """
    layout = image.layout
    separation = layout.gain_separation
    rest = {key: value for key, value in (layout.json_meta or {}).items() if key != GAIN_KEY}
    header, _ = carried_header(layout, mode_for_dtype(ORIGINAL_DTYPE), compressor, clevel)
    original = None
    if separation.original_header is not None:
        original = np.frombuffer(
            separation.original_header, dtype=header_dtype(layout.byteorder)
        ).reshape(())
    if separation.original_extended_header is not None:
        extended = separation.original_extended_header
        header["exttyp"] = original["exttyp"] if original is not None else b""
    elif rest:
        extended = encode_meta(rest)
        header["exttyp"] = b"json"
    else:
        extended = b""
        header["exttyp"] = original["exttyp"] if original is not None else b""
    header["nsymbt"] = len(extended)
    done = _Progress(progress, image.nbytes)
    write_with_header(
        target,
        image.data,
        header,
        extended,
        compressor,
        clevel,
        n_threads,
        done.slices(0.0, 1.0),
    )
    if (
        compressor is None
        and original is not None
        and int(original["mode"]) == mode_for_dtype(ORIGINAL_DTYPE)
        and int(original["nsymbt"]) == len(extended)
    ):
        with open(target, "r+b") as handle:
            handle.write(separation.original_header[:HEADER_SIZE])
        return WriteOutcome("restored from counts x gain, with its original header")
    return WriteOutcome("restored from counts x gain")


def _write_counts_copy(
    image: Image,
    target: str,
    store: GainStore,
    clevel: int,
    n_threads: int | None,
    progress: Progress | None,
    keep_json: bool = False,
) -> WriteOutcome:
    """Write a gain-separated input as plain MRC counts with a plain gain beside them.

    The counts are plain MRC2014 (mrcfile.validate accepts them), which has no place
    for the record naming their gain: with ``keep_json`` they keep it in a JSON
    extended header, and napari-mrcz reads them as the float32 movie again.
    """
    layout = image.layout
    separation = layout.gain_separation
    folder = os.path.dirname(os.path.abspath(target))
    stored, created = store.ensure(folder, image.data.gain_reference, separation.gain_source)
    extended = b""
    if keep_json:
        meta = dict(layout.json_meta)
        meta[GAIN_KEY] = replace(separation, gain_file=stored.name).to_json()
        extended = encode_meta(meta)
    done = _Progress(progress, image.nbytes)
    with LazyMRC(image.path, cache_bytes=0, counts=True) as counts:
        data: Any = counts
        mode = layout.mode
        if layout.mode in PYTHON_MRCZ_MODES:  # int32: plain files get an MRC2014 type
            cast_to = mrc_dtype(counts, plain=True, warn=False)
            if cast_to is not None:
                data, mode = LazyView(counts, cast_to), mode_for_dtype(cast_to)
        header, _ = carried_header(layout, mode, None, clevel)
        header["nsymbt"] = len(extended)
        header["exttyp"] = b"json" if extended else b""
        write_with_header(
            target, data, header, extended, None, clevel, n_threads, done.slices(0.0, 1.0)
        )
    return WriteOutcome(
        f"counts x {stored.name}" + (" (new)" if created else ""),
        [stored.path] if created else [],
    )
