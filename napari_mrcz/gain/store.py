"""Gain reference files: the facility's, turned to fit the movies, and the ones written
beside gain-separated movies, once per folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.files import make_folders
from napari_mrcz.formats import open_images
from napari_mrcz.gain.estimate import GainEstimate, NotGainTimesCountsError, fitting_share
from napari_mrcz.mrc.atomic import flush_to_disk, publish, temporary_name
from napari_mrcz.mrc.gainmeta import ORIGINAL_DTYPE, gain_digest
from napari_mrcz.mrc.jsonmeta import meta_to_write
from napari_mrcz.mrc.read import read_array
from napari_mrcz.mrc.write import write_array
from napari_mrcz.suffixes import COMPRESSED_SUFFIX

logger = logging.getLogger(__name__)

GAIN_FILE_PREFIX = "gain_"
ROTATIONS = (0, 90, 180, 270)
FLIPS = ("none", "x", "y")


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

    def __getstate__(self) -> dict:
        """Pickled for cluster workers without its locks and what it has seen: each
        process finds the folders' gains itself (files appear whole, see _write)."""
        return {"compressor": self.compressor, "clevel": self.clevel}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["compressor"], state["clevel"])

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
        if created:
            gain = np.array(gain, dtype=ORIGINAL_DTYPE)
            gain.flags.writeable = False
            stored = StoredGain(path, digest, gain)
        else:  # there already, or written meanwhile by another run: what does it hold?
            stored = self._load(path)
            if stored is None or stored.digest != digest:
                raise MRCZFormatError(
                    path, "holds another gain reference than its name says: move it away"
                )
        known.insert(0, stored)
        return stored, created

    def _write(self, path: str, gain: np.ndarray, digest: str, source: dict) -> bool:
        """Write a gain file (flushed to disk); False if another wrote it meanwhile."""
        make_folders(os.path.dirname(path) or ".")
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
                # a plain gain (decompress --counts) is for motion correction: mrcfile-valid
                meta=meta_to_write(meta, self.compressor is not None),
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
        with open_images(path) as opened:
            images = [np.asarray(image.data) for image in opened]
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
