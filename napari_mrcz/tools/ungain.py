"""Gain-separated MRCZ: float32 gain-normalised movies as integer counts and one gain.

Counting cameras count electrons, but the software that saves a movie often multiplies
each frame by a per-pixel gain reference and writes float32, which barely compresses
(1.4x). The counts compress ten times better. This module recovers them, stores them
in the smallest integer type that holds them, with the gain reference once per output
folder (:class:`GainStore`), and checks every value bit for bit (NaNs and signed zeros
included): a movie that is not gain x integers (motion-corrected, dose-weighted, another
gain, defect pixels filled in) is stored as float32 instead, and the outcome says why.

The gain is the facility's reference file (:class:`GainReference`, its rotation and flip
found from the data or given), or estimated from the movie itself as RELION does
(``relion_convert_to_tiff --estimate_gain``): per pixel, the smallest positive value is
one count (:func:`estimate_gain`). Estimating reads a movie twice: the estimate, then
the counts. The readers (:mod:`napari_mrcz.mrc.gain`) multiply them back; the format is
described in :mod:`napari_mrcz.mrc.gainmeta`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from napari_mrcz.dm.images import read_dm
from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.mrc.atomic import flush_to_disk, publish, temporary_name
from napari_mrcz.mrc.gain import apply_gain
from napari_mrcz.mrc.gainmeta import GAIN_KEY, ORIGINAL_DTYPE, GainSeparation, gain_digest
from napari_mrcz.mrc.header import HEADER_SIZE, header_dtype
from napari_mrcz.mrc.jsonmeta import encode_meta
from napari_mrcz.mrc.lazy import LazyMRC
from napari_mrcz.mrc.modes import PYTHON_MRCZ_MODES, mode_for_dtype, mrc_dtype
from napari_mrcz.mrc.read import read_array
from napari_mrcz.mrc.slices import STREAM_BLOCK_BYTES
from napari_mrcz.mrc.stats import SliceStats, shift_for
from napari_mrcz.mrc.write import write_array, write_with_header
from napari_mrcz.suffixes import COMPRESSED_SUFFIX, is_dm
from napari_mrcz.threads import default_threads
from napari_mrcz.tools.transcode import (
    CastView,
    Progress,
    SourceImage,
    as_stack,
    carried_header,
    dm_write_options,
    write_image,
)

logger = logging.getLogger(__name__)

#: Integer types the counts are stored in, smallest first (MRC modes 0, 1, 6, 7).
COUNT_DTYPES = tuple(np.dtype(name) for name in ("int8", "int16", "uint16", "int32"))
#: A pixel's two smallest positive values must be in the ratio p/q of whole counts
#: with q at most this (RELION assumes q = 1); larger q are not looked for.
MAX_SMALLEST_COUNT = 16
#: Relative tolerance of that ratio: float32 rounding of two products is 2**-23.
RATIO_TOLERANCE = 1e-6
#: Rows of the gain processed together while estimating (fixed, so that the result
#: does not depend on the thread count).
_BAND_ROWS = 256
#: Pixels sampled after the first frames to give up early on processed movies, and
#: the share of them that must fit one gain to go on.
_EARLY_SAMPLE = 65536
_EARLY_FIT = 0.5

# float32 bit patterns minus one, as uint32 (wrapping): positive finite values come
# first, in order of value, then +inf, NaN and negative values; +0.0 is last.
_ONE = np.uint32(1)
_LAST_FINITE_KEY = np.uint32(0x7F7FFFFE)
_NO_KEY = np.uint32(0xFFFFFFFF)
_BITS = np.dtype(np.uint32)

#: What most pixels failing says about a movie.
PROCESSED = " (not a movie as the camera saved it: motion-corrected, dose-weighted, summed?)"

GAIN_FILE_PREFIX = "gain_"
ROTATIONS = (0, 90, 180, 270)
FLIPS = ("none", "x", "y")


class NotGainTimesCountsError(ValueError):
    """A movie's values are not whole multiples of the gain: it cannot be separated."""


class _CountsOutOfRangeError(Exception):
    """The counts of a frame do not fit the integer type being written."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__(f"counts {low} to {high}")
        self.low, self.high = low, high


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


# --------------------------------------------------------------------------- estimate


@dataclass
class GainEstimate:
    """A gain estimated from one movie.

    Attributes
    ----------
    gain : numpy.ndarray
        float32 (ny, nx): per pixel, the value of one count (the smallest positive
        value, or a fraction of it when that was several counts); for pixels with no
        positive value, the value they hold (NaN, inf, a negative constant) or +0.0.
    free : numpy.ndarray
        bool (ny, nx): pixels that were +0.0 in every frame: any finite gain fits.
    statistics : tuple of float or None
        DMIN, DMAX, DMEAN, RMS of the movie, when they were gathered.
    problem : str or None
        Why the movie is not gain x counts, or None.
    """

    gain: np.ndarray
    free: np.ndarray
    statistics: tuple[float, float, float, float] | None = None
    problem: str | None = None

    def fits(self, stored: np.ndarray) -> bool:
        """True if the movie's values are also whole multiples of ``stored``.

        Where the movie had positive values, ``stored`` must be its gain or a whole
        fraction of it; where it had only +0.0, any finite value; elsewhere the same.
        """
        if stored.shape != self.gain.shape:
            return False
        differ = self.gain.view(_BITS) != stored.view(_BITS)
        np.logical_and(differ, ~self.free, out=differ)
        if not differ.any():
            return bool(np.isfinite(stored[self.free]).all())
        own, other = self.gain[differ], stored[differ]
        whole = _divides(other, own) | ((own == 0) & (other == 0))
        return bool(whole.all()) and bool(np.isfinite(stored[self.free]).all())

    def merged(self, previous: np.ndarray | None) -> np.ndarray:
        """A gain for this movie that keeps as much of ``previous`` as fits it.

        Where ``previous`` divides this movie's gain (or the movie had only +0.0) its
        value is kept; elsewhere the movie's. Pixels no movie resolved get the median
        gain, a value that looks right to motion-correction programs.
        """
        gain = self.gain.copy()
        unresolved = self.free.copy()
        if previous is not None and previous.shape == gain.shape:
            keep = self.free & np.isfinite(previous)
            differ = np.flatnonzero((gain.view(_BITS) != previous.view(_BITS)) & ~self.free)
            divides = _divides(previous.reshape(-1)[differ], gain.reshape(-1)[differ])
            keep.reshape(-1)[differ[divides]] = True
            gain[keep] = previous[keep]
            unresolved &= ~keep
        positive = gain[(gain > 0) & np.isfinite(gain) & ~unresolved]
        gain[unresolved] = np.median(positive) if positive.size else 1.0
        return gain


def _divides(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """Where ``whole`` is a whole multiple (1, 2, ...) of the positive finite ``part``."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = whole.astype(np.float64) / part.astype(np.float64)
        nearest = np.rint(ratio)
        return (
            (part > 0)
            & np.isfinite(part)
            & (nearest >= 1)
            & (np.abs(ratio - nearest) <= RATIO_TOLERANCE * nearest)
        )


class _Minima:
    """Per pixel, over the frames: the smallest and the second smallest distinct value.

    Kept as keys (float32 bits minus one, wrapping), so that one unsigned minimum puts
    the smallest positive finite value first. Bands of rows are updated in parallel.
    """

    def __init__(self, shape: tuple[int, int], with_stats: bool) -> None:
        self.first = np.full(shape, _NO_KEY, dtype=_BITS)
        self.second = np.full(shape, _NO_KEY, dtype=_BITS)
        self.bands = [slice(start, start + _BAND_ROWS) for start in range(0, shape[0], _BAND_ROWS)]
        self.band_stats: list[SliceStats] | None = None
        self.with_stats = with_stats

    def add(self, frames: np.ndarray, pool: ThreadPoolExecutor) -> None:
        """Fold native float32 frames (k, ny, nx) in."""
        if self.with_stats and self.band_stats is None:
            shift = shift_for(frames[0], ORIGINAL_DTYPE)
            self.band_stats = [SliceStats(shift) for _ in self.bands]
        list(pool.map(self._add_band, range(len(self.bands)), [frames] * len(self.bands)))

    def _add_band(self, band_index: int, frames: np.ndarray) -> None:
        rows = self.bands[band_index]
        first, second = self.first[rows], self.second[rows]
        key, other, equal = (np.empty(first.shape, dtype=_BITS) for _ in range(3))
        for frame in frames:
            bits = frame[rows].view(_BITS)
            np.subtract(bits, _ONE, out=key)
            np.maximum(first, key, out=other)  # the larger of the old minimum and this
            np.equal(first, key, out=equal)
            np.negative(equal, out=equal)  # all ones where equal: not a second value
            np.maximum(other, equal, out=other)
            np.minimum(first, key, out=first)
            np.minimum(second, other, out=second)
            if self.band_stats is not None:
                self.band_stats[band_index].add(frame[rows])

    def statistics(self) -> tuple[float, float, float, float] | None:
        """The movie's DMIN, DMAX, DMEAN, RMS, if gathered."""
        if not self.band_stats:
            return None
        total = SliceStats(self.band_stats[0].shift)
        for stats in self.band_stats:
            total.merge(stats)
        return total.header_values()

    def gain(self, sample: slice | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The gain the minima give, pixels never positive, and pixels that fit no gain."""
        first = self.first.reshape(-1)[sample or slice(None)]
        second = self.second.reshape(-1)[sample or slice(None)]
        gain = (first + _ONE).view(ORIGINAL_DTYPE)  # no positive value: the value held
        free = first == _NO_KEY
        both = np.flatnonzero((first <= _LAST_FINITE_KEY) & (second <= _LAST_FINITE_KEY))
        smallest = gain[both]
        ratio = (second[both] + _ONE).view(ORIGINAL_DTYPE).astype(np.float64) / smallest
        odd = np.abs(ratio - np.rint(ratio)) > RATIO_TOLERANCE * ratio
        wrong = both[odd]
        if wrong.size:  # the smallest value was several counts: find one count
            refined, unfit = _one_count(smallest[odd], ratio[odd])
            gain[wrong] = refined
            wrong = wrong[unfit]
        return gain, free, wrong


def _one_count(smallest: np.ndarray, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One count's value at pixels whose two smallest values are q and p > q counts.

    ``ratio`` is p / q; q is the least that fits. The value g must give both values
    back in float32 (fl(q g) and fl(p g)): the float32 nearest smallest / q, or one of
    its neighbours (exactly smallest / q when q is a power of two).

    Returns
    -------
    gain : numpy.ndarray
        float32, the smallest value where nothing fits.
    unfit : numpy.ndarray
        bool: no q up to :data:`MAX_SMALLEST_COUNT` fits.
    """
    gain = smallest.copy()
    unfit = np.ones(smallest.shape, dtype=bool)
    larger = (smallest.astype(np.float64) * ratio).astype(ORIGINAL_DTYPE)
    for count in range(2, MAX_SMALLEST_COUNT + 1):
        scaled = ratio * count
        which = np.flatnonzero(
            unfit & (np.abs(scaled - np.rint(scaled)) <= RATIO_TOLERANCE * scaled)
        )
        if not which.size:
            continue
        other = np.rint(scaled[which]).astype(ORIGINAL_DTYPE)
        centre = smallest[which] / ORIGINAL_DTYPE.type(count)
        up, down = np.nextafter(centre, np.inf), np.nextafter(centre, -np.inf)
        neighbours = (centre, up, down, np.nextafter(up, np.inf), np.nextafter(down, -np.inf))
        for candidate in neighbours:
            exact = unfit[which] & (
                (candidate * ORIGINAL_DTYPE.type(count)).view(_BITS) == smallest[which].view(_BITS)
            )
            exact &= (candidate * other).view(_BITS) == larger[which].view(_BITS)
            gain[which[exact]] = candidate[exact]
            unfit[which[exact]] = False
    return gain, unfit


def _native_frames(block: np.ndarray) -> np.ndarray:
    """float32 frames in native byte order, C-contiguous."""
    return np.ascontiguousarray(block, dtype=ORIGINAL_DTYPE)


def estimate_gain(
    data: Any,
    n_threads: int | None = None,
    progress: Callable[[int], None] | None = None,
    with_stats: bool = False,
) -> GainEstimate:
    """Estimate the gain of a gain-normalised float32 movie from the movie itself.

    As RELION does: per pixel, the smallest positive value is taken for one count.
    Where a pixel never held one count, its two smallest values (q and p counts) give
    it. The movie is read once, a block of frames at a time; processed movies
    (no common gain in the first frames) are given up early.

    Parameters
    ----------
    data : array-like
        float32 (nz, ny, nx), read a block of slices at a time.
    n_threads : int, optional
        Bands of the gain updated in parallel.
    progress : callable, optional
        Called with the number of slices read so far.
    with_stats : bool
        Gather the movie's statistics on the way (for files without a header).

    Returns
    -------
    GainEstimate
        With ``problem`` set if the movie is not gain x whole counts.
    """
    nz, ny, nx = data.shape
    threads = max(1, n_threads or default_threads())
    minima = _Minima((ny, nx), with_stats)
    block = max(1, STREAM_BLOCK_BYTES // max(1, ny * nx * ORIGINAL_DTYPE.itemsize))
    with ThreadPoolExecutor(threads, thread_name_prefix="napari-mrcz-gain") as pool:
        reading: Future | None = pool.submit(lambda: _native_frames(data[0:block]))
        for start in range(0, nz, block):
            frames = reading.result()
            stop = min(nz, start + block)
            reading = (
                pool.submit(lambda first=stop: _native_frames(data[first : first + block]))
                if stop < nz
                else None
            )
            minima.add(frames, pool)
            if progress is not None:
                progress(stop)
            if start == 0 and stop < nz:
                problem = _early_problem(minima)
                if problem is not None:
                    if reading is not None:
                        reading.cancel()
                    unused = np.ones((ny, nx), dtype=ORIGINAL_DTYPE)
                    return GainEstimate(unused, unused == 0, problem=problem)
    gain, free, wrong = minima.gain()
    gain = gain.reshape(ny, nx)
    free = free.reshape(ny, nx)
    problem = None
    if wrong.size:
        y, x = divmod(int(wrong[0]), nx)
        problem = (
            f"not whole counts times one gain: at {wrong.size} pixel(s), such as "
            f"(y={y}, x={x}), the values are in no ratio of whole counts"
            + (PROCESSED if wrong.size > 0.01 * ny * nx else "")
        )
    return GainEstimate(gain, free, minima.statistics(), problem)


def _early_problem(minima: _Minima) -> str | None:
    """Why the first frames already show the movie is not gain x counts, or None."""
    size = minima.first.size
    step = max(1, size // _EARLY_SAMPLE)
    sample = slice(0, size, step)
    first = minima.first.reshape(-1)[sample]
    second = minima.second.reshape(-1)[sample]
    both = int(((first <= _LAST_FINITE_KEY) & (second <= _LAST_FINITE_KEY)).sum())
    if both < 100:
        return None
    _, _, wrong = minima.gain(sample)
    if wrong.size > (1 - _EARLY_FIT) * both:
        return (
            "not whole counts times one gain: in the first frames, "
            f"{100 * wrong.size / both:.0f}% of the pixels sampled hold values in no ratio of "
            f"whole counts{PROCESSED}"
        )
    return None


def refine_gain(data: Any, gain: np.ndarray, n_threads: int) -> np.ndarray:
    """``gain`` with one count found where the movie's values are not whole multiples.

    A pixel that never held exactly one count and whose two smallest values were whole
    multiples of each other (two and four counts, say) gets its smallest value for
    one count from :func:`estimate_gain`; a later value (five counts) then is no whole
    multiple of it. Its ratio p/q to the smallest value gives one count (see
    :func:`_one_count`). Reads the movie once more, checking every frame.
    """
    counter = _Counter(gain)
    found: dict[int, float] = {}

    def failures(index: int) -> tuple[np.ndarray, np.ndarray]:
        frame = np.ascontiguousarray(data[index], dtype=ORIGINAL_DTYPE).reshape(-1)
        wrong, _ = counter.wrong(frame.reshape(gain.shape))
        return wrong, frame[wrong]

    with ThreadPoolExecutor(max(1, n_threads), thread_name_prefix="napari-mrcz-gain") as pool:
        for wrong, values in pool.map(failures, range(data.shape[0])):
            for index, value in zip(wrong.tolist(), values.tolist(), strict=True):
                found.setdefault(index, value)
    refined = gain.copy()
    if found:
        where = np.fromiter(found, dtype=np.int64, count=len(found))
        values = np.fromiter(found.values(), dtype=np.float64, count=len(found))
        smallest = refined.reshape(-1)[where]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = values / smallest.astype(np.float64)
        usable = np.isfinite(ratio) & (ratio > 1) & (smallest > 0)
        one, unfit = _one_count(smallest[usable], ratio[usable])
        refined.reshape(-1)[where[usable][~unfit]] = one[~unfit]
    return refined


# --------------------------------------------------------------------------- counts


class _Counter:
    """The counts of frames for one gain, and the check that they give the frames back."""

    def __init__(self, gain: np.ndarray) -> None:
        self.gain = np.ascontiguousarray(gain, dtype=ORIGINAL_DTYPE)
        flat = self.gain.reshape(-1)
        self.nonfinite = np.flatnonzero(~np.isfinite(flat))  # counts 1: the value itself
        self.zero = np.flatnonzero(flat == 0)  # counts 0 or -1: +0.0 or -0.0
        self.zero_sign = np.signbit(flat[self.zero])

    def counts(self, frame: np.ndarray, dtype: np.dtype, index: int) -> np.ndarray:
        """The counts of one native float32 frame, checked bit for bit.

        Raises
        ------
        NotGainTimesCountsError
            If counts times the gain do not give every value back.
        _CountsOutOfRangeError
            If they do, but not in ``dtype``.
        """
        quotient = self._quotient(frame)
        counts = np.empty(frame.shape, dtype=dtype)
        with np.errstate(invalid="ignore"):
            np.copyto(counts, quotient, casting="unsafe")
        self._fix_special(counts, frame)
        if _same_bits(apply_gain(counts, self.gain, out=quotient), frame):
            return counts
        wrong, quotient = self.wrong(frame)  # wrong counts, or counts that did not fit
        if wrong.size == 0:
            raise _CountsOutOfRangeError(int(quotient.min()), int(quotient.max()))
        y, x = divmod(int(wrong[0]), frame.shape[1])
        raise NotGainTimesCountsError(
            f"not whole counts times the gain: frame {index} has {wrong.size} value(s) that "
            f"are not, such as {frame[y, x]!r} at (y={y}, x={x}) with gain {self.gain[y, x]!r}"
        )

    def wrong(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flat indices of a frame's values that are no whole count times the gain,
        and the frame's counts (float32, right where the values are)."""
        quotient = self._quotient(frame)
        self._fix_special(quotient, frame)
        back = apply_gain(quotient, self.gain)
        wrong = (back.view(_BITS) != frame.view(_BITS)) | ~np.isfinite(quotient)  # NaN: no count
        return np.flatnonzero(wrong), quotient

    def _quotient(self, frame: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            quotient = np.divide(frame, self.gain)
        return np.rint(quotient, out=quotient)

    def _fix_special(self, counts: np.ndarray, frame: np.ndarray) -> None:
        flat = counts.reshape(-1)
        if self.nonfinite.size:
            flat[self.nonfinite] = 1
        if self.zero.size:
            sign = np.signbit(frame.reshape(-1)[self.zero])
            flat[self.zero] = np.where(sign == self.zero_sign, 0, -1)


def _same_bits(first: np.ndarray, second: np.ndarray) -> bool:
    return bool(np.array_equal(first.view(_BITS), second.view(_BITS)))


def _wider(dtype: np.dtype, error: _CountsOutOfRangeError) -> np.dtype:
    """The smallest count type after ``dtype`` that holds the counts ``error`` saw."""
    for candidate in COUNT_DTYPES[COUNT_DTYPES.index(dtype) + 1 :]:
        info = np.iinfo(candidate)
        if info.min <= error.low and error.high <= info.max:
            return candidate
    raise NotGainTimesCountsError(f"{error}: too many for 32-bit integers")


class _CountsView:
    """The counts of a float32 movie as an array the writers read slice by slice.

    Frames ahead of the one asked for are read and counted on a pool of threads.
    """

    def __init__(self, source: Any, counter: _Counter, dtype: np.dtype, n_threads: int) -> None:
        self.source = source
        self.counter = counter
        self.shape = tuple(source.shape)
        self.ndim = 3
        self.dtype = np.dtype(dtype)
        self._ahead = n_threads + 1
        self._pool = ThreadPoolExecutor(n_threads, thread_name_prefix="napari-mrcz-counts")
        self._pending: dict[int, Future] = {}

    def _count(self, index: int) -> np.ndarray:
        frame = np.ascontiguousarray(self.source[index], dtype=ORIGINAL_DTYPE)
        return self.counter.counts(frame, self.dtype, index)

    def __getitem__(self, index: Any) -> np.ndarray:
        if not isinstance(index, (int, np.integer)):
            raise TypeError("the counts are read one slice at a time")
        for ahead in range(int(index), min(self.shape[0], int(index) + self._ahead)):
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(self._count, ahead)
        return self._pending.pop(int(index)).result()

    def close(self) -> None:
        """Drop the frames counted ahead and stop the threads."""
        for future in self._pending.values():
            future.cancel()
        self._pool.shutdown(wait=True)
        self._pending.clear()


def write_counts(
    data: Any, gain: np.ndarray, write: Callable[[Any], None], n_threads: int
) -> np.dtype:
    """Write the counts of ``data`` for ``gain`` with ``write``, in the smallest type.

    ``write`` is given an array of counts to write (it raises what the counting
    raises, leaving no file); int8 is tried first, a wider type when a frame needs it.

    Returns
    -------
    numpy.dtype
        The type written.

    Raises
    ------
    NotGainTimesCountsError
        If a value is not its count times the gain, bit for bit.
    """
    counter = _Counter(gain)
    dtype = COUNT_DTYPES[0]
    while True:
        view = _CountsView(data, counter, dtype, n_threads)
        try:
            write(view)
        except _CountsOutOfRangeError as error:
            dtype = _wider(dtype, error)
        else:
            return dtype
        finally:
            view.close()


# --------------------------------------------------------------------------- gain files


@dataclass(frozen=True)
class StoredGain:
    """A gain reference file in an output folder."""

    path: str
    digest: str
    gain: np.ndarray = field(repr=False)

    @property
    def name(self) -> str:
        """Its file name."""
        return os.path.basename(self.path)


class GainStore:
    """The gain references of a run's output folders: each written once, shared.

    A folder's gains are named ``gain_<first 12 hex digits of their SHA-256>`` (see
    :func:`~napari_mrcz.mrc.gainmeta.gain_digest`), so the same gain is one file
    however many runs and movies use it, and a file is never replaced. Thread-safe.

    Parameters
    ----------
    compressor : str or None
        Codec of the gain files (None: plain MRC, ``.mrc``).
    clevel : int
        Compression level.
    """

    def __init__(self, compressor: str | None, clevel: int = 1) -> None:
        self.compressor = compressor
        self.clevel = clevel
        self.suffix = COMPRESSED_SUFFIX if compressor is not None else ".mrc"
        self._lock = threading.Lock()
        self._folder_locks: dict[str, threading.Lock] = {}
        self._known: dict[str, list[StoredGain]] = {}

    def name_for(self, digest: str) -> str:
        """The file name of the gain with this checksum."""
        return f"{GAIN_FILE_PREFIX}{digest[:12]}{self.suffix}"

    @contextlib.contextmanager
    def _folder(self, folder: str) -> Iterator[list[StoredGain]]:
        with self._lock:
            lock = self._folder_locks.setdefault(folder, threading.Lock())
        with lock:
            if folder not in self._known:
                self._known[folder] = self._scan(folder)
            yield self._known[folder]

    def _scan(self, folder: str) -> list[StoredGain]:
        """The gain files already in ``folder`` whose content matches their name, newest first."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                if entry.name.startswith(GAIN_FILE_PREFIX) and entry.name.endswith(self.suffix):
                    stored = self._load(entry.path)
                    if stored is not None and self.name_for(stored.digest) == entry.name:
                        found.append((entry.stat().st_mtime_ns, entry.name, stored))
        return [stored for _, _, stored in sorted(found, key=lambda item: item[:2], reverse=True)]

    @staticmethod
    def _load(path: str) -> StoredGain | None:
        try:
            gain, _ = read_array(path)
        except (MRCZFormatError, OSError, ValueError) as error:
            logger.warning("%s: not used as a gain reference: %s", path, error)
            return None
        if gain.ndim != 2 or gain.dtype.newbyteorder("=") != ORIGINAL_DTYPE:
            return None
        gain = gain.astype(ORIGINAL_DTYPE, copy=False)
        gain.flags.writeable = False
        return StoredGain(path, gain_digest(gain), gain)

    def fitting(self, folder: str, estimate: GainEstimate) -> np.ndarray:
        """A gain for a movie of ``folder``: the newest of its gains that fits the movie's
        estimate, else a new one that keeps what it can of the newest (see
        :meth:`GainEstimate.merged`), so that later movies share it. Nothing is
        written: :meth:`ensure` stores the gain once the movie is written with it.
        """
        with self._folder(folder) as known:
            for stored in known:
                if estimate.fits(stored.gain):
                    return stored.gain
            return estimate.merged(known[0].gain if known else None)

    def ensure(self, folder: str, gain: np.ndarray, source: dict) -> tuple[StoredGain, bool]:
        """``gain`` stored in ``folder``: written, flushed to disk, unless there already.

        Returns
        -------
        stored : StoredGain
        created : bool
            True if this call wrote its file.

        Raises
        ------
        MRCZFormatError
            If a file of its name holds another gain.
        """
        with self._folder(folder) as known:
            return self._add(folder, known, gain, source)

    def _add(
        self, folder: str, known: list[StoredGain], gain: np.ndarray, source: dict
    ) -> tuple[StoredGain, bool]:
        digest = gain_digest(gain)
        for stored in known:
            if stored.digest == digest:
                return stored, False
        path = os.path.join(folder, self.name_for(digest))
        created = not os.path.exists(path) and self._write(path, gain, digest, source)
        stored = self._load(path)
        if stored is None or stored.digest != digest:
            raise MRCZFormatError(
                path, "holds another gain reference than its name says: move it away"
            )
        known.insert(0, stored)
        return stored, created

    def _write(self, path: str, gain: np.ndarray, digest: str, source: dict) -> bool:
        """Write a gain file (flushed to disk); False if another wrote it meanwhile."""
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        temporary = temporary_name(path)
        meta = {
            "gain_reference": {
                "sha256": digest,
                "description": "float32 gain reference of gain-separated movies: "
                "each movie is its integer counts times this image, in float32",
                "source": source,
            }
        }
        written = True
        try:
            write_array(
                gain,
                temporary,
                meta=meta,
                pixelsize=source.get("pixel_size_angstrom", 1.0),
                compressor=self.compressor,
                clevel=self.clevel,
                n_threads=1,
            )
            publish(temporary, path, overwrite=False)
        except FileExistsError:
            written = False  # by another run meanwhile: its content is checked after
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        flush_to_disk(path)
        flush_to_disk(os.path.dirname(path) or ".")
        return written


# --------------------------------------------------------------------------- references


def oriented(gain: np.ndarray, rotate: int, flip: str) -> np.ndarray:
    """``gain`` rotated by ``rotate`` degrees, then flipped.

    Rotation as ``numpy.rot90`` turns an array (counter-clockwise with row 0 at the
    top, as DigitalMicrograph shows images); ``flip`` 'y' reverses the rows
    (upside down), 'x' the columns (left-right). Rotation first, then flip: the order
    of MotionCor2's ``-RotGain``/``-FlipGain`` and RELION's gain rotation and flip.
    """
    if rotate not in ROTATIONS or flip not in FLIPS:
        raise ValueError(f"rotation must be one of {ROTATIONS} and flip one of {FLIPS}")
    turned = np.rot90(gain, k=rotate // 90)
    if flip == "y":
        turned = turned[::-1]
    elif flip == "x":
        turned = turned[:, ::-1]
    return np.ascontiguousarray(turned, dtype=ORIGINAL_DTYPE)


def fitting_share(frame: np.ndarray, gain: np.ndarray) -> float:
    """The share of a frame's non-zero values that are whole counts times ``gain``."""
    counter = _Counter(gain)
    quotient = counter._quotient(frame)
    counter._fix_special(quotient, frame)
    nonzero = frame != 0
    if not nonzero.any():
        return 1.0
    same = apply_gain(quotient, counter.gain).view(_BITS) == frame.view(_BITS)
    return float(same[nonzero].mean())


@dataclass
class GainReference:
    """A facility's gain reference file, and how to turn it to fit the movies.

    Attributes
    ----------
    path : str
        The file (MRC, MRCZ, DM4, DM3).
    gain : numpy.ndarray
        Its image as stored, float32.
    rotate, flip : int or None, str or None
        The orientation to apply; None: found from each movie's first frame (the one
        of the eight rotations and flips that makes its values whole counts).
    """

    path: str
    gain: np.ndarray
    rotate: int | None = None
    flip: str | None = None

    @classmethod
    def read(cls, path: str, rotate: int | None = None, flip: str | None = None) -> GainReference:
        """Read a gain reference file (one 2D image; DM thumbnails left out).

        Raises
        ------
        MRCZFormatError
            If the file is damaged or holds no single 2D image.
        """
        path = os.fspath(path)
        if is_dm(path):
            images = [data for data, _ in read_dm(path, lazy=False)]
        else:
            data, _ = read_array(path, slices=0)
            images = [data]
        images = [np.asarray(image) for image in images]
        images = [
            image[0] if image.ndim == 3 and image.shape[0] == 1 else image for image in images
        ]
        planes = [image for image in images if image.ndim == 2 and image.dtype.kind in "iuf"]
        if len(planes) != 1:
            raise MRCZFormatError(
                path, f"a gain reference must be one 2D image; this file has {len(images)}"
            )
        if rotate is not None or flip is not None:
            oriented(planes[0], rotate or 0, flip or "none")  # checks the values
        return cls(path, planes[0].astype(ORIGINAL_DTYPE), rotate, flip)

    def oriented_for(self, frame: np.ndarray) -> tuple[np.ndarray, dict]:
        """The gain turned to fit a movie whose first frame is ``frame``, and how.

        Raises
        ------
        NotGainTimesCountsError
            If no orientation has the frame's shape.
        """
        source = {
            "reference": os.path.abspath(self.path),
            "reference_sha256": gain_digest(self.gain),
        }
        if self.rotate is not None or self.flip is not None:
            rotate, flip = self.rotate or 0, self.flip or "none"
            gain = oriented(self.gain, rotate, flip)
            if gain.shape != frame.shape:
                raise NotGainTimesCountsError(
                    f"the gain reference is {gain.shape} once turned, the frames {frame.shape}"
                )
            return gain, {**source, "rotate": rotate, "flip": flip, "orientation": "given"}
        best: tuple[float, int, str, np.ndarray] | None = None
        for rotate in ROTATIONS:
            for flip in ("none", "y"):  # with the rotations: all eight orientations
                gain = oriented(self.gain, rotate, flip)
                if gain.shape != frame.shape:
                    continue
                share = fitting_share(frame, gain)
                if best is None or share > best[0]:
                    best = (share, rotate, flip, gain)
        if best is None:
            raise NotGainTimesCountsError(
                f"the gain reference is {self.gain.shape}, the frames {frame.shape}"
            )
        share, rotate, flip, gain = best
        return gain, {
            **source,
            "rotate": rotate,
            "flip": flip,
            "orientation": f"found from the data ({100 * share:.1f}% of frame 0 fits)",
        }


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


# --------------------------------------------------------------------------- conversion


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

    def slices(self, start: float, share: float) -> Callable[[int, int], None]:
        """A writer's ``progress(written, total)`` over the part [start, start + share]."""
        return lambda written, total: self.to(start + share * written / max(1, total))

    def bytes(self) -> Progress:
        """A :func:`~napari_mrcz.tools.transcode.write_image` progress over all the work."""
        done = [0]

        def report(nbytes: int) -> None:
            done[0] += nbytes
            self.to(done[0] / max(1, self.nbytes))

        return report


def convert_image(
    image: SourceImage,
    target: str,
    compressor: str | None,
    clevel: int = 1,
    n_threads: int | None = None,
    progress: Progress | None = None,
    gain: GainSettings | None = None,
) -> WriteOutcome:
    """Write one source image, as :func:`~napari_mrcz.tools.transcode.write_image`
    does, separating or restoring gains.

    A gain-separated input becomes its float32 movie again (its original header, for
    a plain MRC output, byte for byte), or with ``gain.counts`` its counts and a plain
    gain reference; with ``gain.ungain`` a float32 movie becomes counts and a gain.
    """
    if image.layout is not None and image.layout.gain_separation is not None:
        if gain is not None and gain.counts:
            return _write_counts_copy(image, target, gain.store, clevel, n_threads, progress)
        return _write_original(image, target, compressor, clevel, n_threads, progress)
    if gain is not None and gain.ungain:
        return _write_separated(image, target, compressor, clevel, n_threads, progress, gain)
    write_image(image, target, compressor, clevel, n_threads, progress)
    return WriteOutcome()


def _not_a_movie(data: Any) -> str | None:
    """Why ``data`` is not a float32 movie to separate, or None."""
    if np.dtype(data.dtype) != ORIGINAL_DTYPE:
        return f"{np.dtype(data.dtype).name} data, not float32"
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
        own = estimate.merged(None)
        gains = [
            lambda: settings.store.fitting(folder, estimate),
            lambda: own,
            lambda: refine_gain(data, own, n_threads),
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
    image: SourceImage,
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
    image: SourceImage,
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
            meta={"dm_tags": image.dm_meta["tags"], GAIN_KEY: record.to_json()},
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
    header = carried_header(layout, mode_for_dtype(counts.dtype), compressor, clevel)
    header["nsymbt"] = len(extended)
    header["exttyp"] = b"json"
    write_with_header(target, counts, header, extended, compressor, clevel, n_threads, report)


def _write_original(
    image: SourceImage,
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
    header = carried_header(layout, mode_for_dtype(ORIGINAL_DTYPE), compressor, clevel)
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
    image: SourceImage,
    target: str,
    store: GainStore,
    clevel: int,
    n_threads: int | None,
    progress: Progress | None,
) -> WriteOutcome:
    """Write a gain-separated input as plain MRC counts with a plain gain beside them."""
    layout = image.layout
    separation = layout.gain_separation
    folder = os.path.dirname(os.path.abspath(target))
    stored, created = store.ensure(folder, image.data.gain_reference, separation.gain_source)
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
                data, mode = CastView(counts, cast_to), mode_for_dtype(cast_to)
        header = carried_header(layout, mode, None, clevel)
        header["nsymbt"] = len(extended)
        header["exttyp"] = b"json"
        write_with_header(
            target, data, header, extended, None, clevel, n_threads, done.slices(0.0, 1.0)
        )
    return WriteOutcome(
        f"counts x {stored.name}" + (" (new)" if created else ""),
        [stored.path] if created else [],
    )
