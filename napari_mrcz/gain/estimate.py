"""Gain separation's arithmetic: a gain estimated from a movie, counts, the check.

Counting cameras count electrons, but the software that saves a movie often multiplies
each frame by a per-pixel gain reference and writes float32. :func:`estimate_gain`
finds that gain from the movie itself, as RELION does (``relion_convert_to_tiff
--estimate_gain``): per pixel, the smallest positive value is one count; where a pixel
never held exactly one count, the ratio of its two smallest values gives it.
:func:`write_counts` recovers the counts of every frame, in the smallest integer type
that holds them, and checks that counts times gain, in float32, give every value back
bit for bit (NaNs and signed zeros included). Vectorised with numpy: a few passes over
each frame, a compiled kernel is not needed (see ``benchmarks/bench_ungain.py``).
How files are written and read: :mod:`napari_mrcz.gain.separation`,
:mod:`napari_mrcz.mrc.gain`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_mrcz.mrc.gain import apply_gain
from napari_mrcz.mrc.gainmeta import ORIGINAL_DTYPE
from napari_mrcz.mrc.slices import STREAM_BLOCK_BYTES
from napari_mrcz.mrc.stats import SliceStats, shift_for
from napari_mrcz.threads import default_threads
from napari_mrcz.tools.convert import same_bits

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
#: Every this many pixels give the median gain for pixels no movie resolved.
_MEDIAN_STEP = 16

# float32 bit patterns minus one, as uint32 (wrapping): positive finite values come
# first, in order of value, then +inf, NaN and negative values; +0.0 is last.
_ONE = np.uint32(1)
_LAST_FINITE_KEY = np.uint32(0x7F7FFFFE)
_NO_KEY = np.uint32(0xFFFFFFFF)
_BITS = np.dtype(np.uint32)

#: What most pixels failing says about a movie.
PROCESSED = " (not a movie as the camera saved it: motion-corrected, dose-weighted, summed?)"


class NotGainTimesCountsError(ValueError):
    """A movie's values are not whole multiples of the gain: it cannot be separated."""


class _CountsOutOfRangeError(Exception):
    """The counts of a frame do not fit the integer type being written."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__(f"counts {low} to {high}")
        self.low, self.high = low, high


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
        gain (of every 16th pixel), a value that looks right to motion correction.
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
        if unresolved.any():
            sample = gain.reshape(-1)[::_MEDIAN_STEP]
            positive = sample[
                (sample > 0) & np.isfinite(sample) & ~unresolved.reshape(-1)[::_MEDIAN_STEP]
            ]
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
        both = (first <= _LAST_FINITE_KEY) & (second <= _LAST_FINITE_KEY)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = (second + _ONE).view(ORIGINAL_DTYPE) / gain  # float32: 1e-7 close
            whole = np.abs(ratio - np.rint(ratio)) <= RATIO_TOLERANCE * ratio
        wrong = np.flatnonzero(both & ~whole)
        if wrong.size:  # the smallest value was several counts: find one count
            larger = (second[wrong] + _ONE).view(ORIGINAL_DTYPE)
            refined, unfit = _one_count(gain[wrong], larger)
            gain[wrong] = refined
            wrong = wrong[unfit]
        return gain, free, wrong


def _one_count(smallest: np.ndarray, larger: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One count's value at pixels whose two smallest values are q and p > q counts.

    q is the least that fits. The value g must give both values back exactly in
    float32 (fl(q g) = ``smallest`` and fl(p g) = ``larger``): every float32 within
    two steps of smallest / q and of larger / p is tried (exactly smallest / q when
    q is a power of two).

    Returns
    -------
    gain : numpy.ndarray
        float32, the smallest value where nothing fits.
    unfit : numpy.ndarray
        bool: no q up to :data:`MAX_SMALLEST_COUNT` fits.
    """
    gain = smallest.copy()
    unfit = np.ones(smallest.shape, dtype=bool)
    ratio = larger.astype(np.float64) / smallest.astype(np.float64)
    for count in range(2, MAX_SMALLEST_COUNT + 1):
        scaled = ratio * count
        which = np.flatnonzero(
            unfit & (np.abs(scaled - np.rint(scaled)) <= RATIO_TOLERANCE * scaled)
        )
        if not which.size:
            continue
        other = np.rint(scaled[which]).astype(ORIGINAL_DTYPE)
        for centre in (smallest[which] / ORIGINAL_DTYPE.type(count), larger[which] / other):
            for candidate in _neighbours(centre):
                exact = unfit[which] & (
                    (candidate * ORIGINAL_DTYPE.type(count)).view(_BITS)
                    == smallest[which].view(_BITS)
                )
                exact &= (candidate * other).view(_BITS) == larger[which].view(_BITS)
                gain[which[exact]] = candidate[exact]
                unfit[which[exact]] = False
    return gain, unfit


def _neighbours(centre: np.ndarray) -> tuple[np.ndarray, ...]:
    """``centre`` and the float32 values one and two steps either side of it."""
    up, down = np.nextafter(centre, np.inf), np.nextafter(centre, -np.inf)
    return centre, up, down, np.nextafter(up, np.inf), np.nextafter(down, -np.inf)


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


def refine_gain(
    data: Any, gain: np.ndarray, n_threads: int, checked: Callable[[int], None] | None = None
) -> np.ndarray:
    """``gain`` with one count found where the movie's values are not whole multiples.

    A pixel that never held exactly one count and whose two smallest values were whole
    multiples of each other (two and four counts, say) gets its smallest value for
    one count from :func:`estimate_gain`; a later value (five counts) then is no whole
    multiple of it. Its ratio p/q to the smallest value gives one count (see
    :func:`_one_count`). Reads the movie once more, checking every frame;
    ``checked(k)`` is called after each (an exception it raises stops the pass).
    """
    counter = _Counter(gain)
    found: dict[int, float] = {}

    def failures(index: int) -> tuple[np.ndarray, np.ndarray]:
        frame = np.ascontiguousarray(data[index], dtype=ORIGINAL_DTYPE).reshape(-1)
        wrong, _ = counter.wrong(frame.reshape(gain.shape))
        return wrong, frame[wrong]

    with ThreadPoolExecutor(max(1, n_threads), thread_name_prefix="napari-mrcz-gain") as pool:
        for number, (wrong, values) in enumerate(pool.map(failures, range(data.shape[0]))):
            for index, value in zip(wrong.tolist(), values.tolist(), strict=True):
                found.setdefault(index, value)
            if checked is not None:
                checked(number + 1)
    refined = gain.copy()
    if found:
        where = np.fromiter(found, dtype=np.int64, count=len(found))
        values = np.fromiter(found.values(), dtype=np.float64, count=len(found))
        smallest = refined.reshape(-1)[where]
        larger = values.astype(ORIGINAL_DTYPE)  # the frame's own float32 value
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = values / smallest.astype(np.float64)
        usable = np.isfinite(ratio) & (ratio > 1) & (smallest > 0)
        one, unfit = _one_count(smallest[usable], larger[usable])
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
        if same_bits(apply_gain(counts, self.gain, out=quotient), frame):
            return counts
        wrong, quotient = self.wrong(frame)  # wrong counts, or counts that did not fit
        if wrong.size == 0:
            raise _CountsOutOfRangeError(int(quotient.min()), int(quotient.max()))
        y, x = divmod(int(wrong[0]), frame.shape[1])
        raise NotGainTimesCountsError(
            f"not whole counts times the gain: frame {index} has {wrong.size} value(s) that "
            f"are not, such as {float(frame[y, x]):g} at (y={y}, x={x}) with gain "
            f"{float(self.gain[y, x]):g}"
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


def fitting_share(frame: np.ndarray, gain: np.ndarray) -> float:
    """The share of a native float32 frame's non-zero values that are whole counts times
    ``gain`` (zeros fit any gain)."""
    nonzero = np.flatnonzero(frame)
    if not nonzero.size:
        return 1.0
    wrong, _ = _Counter(gain).wrong(frame)
    return 1.0 - np.isin(wrong, nonzero, assume_unique=True).sum() / nonzero.size
