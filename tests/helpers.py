"""Helpers shared by the tests and the benchmarks: the real files and test-file makers."""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Callable
from typing import Any

import mrcfile
import numpy as np

from napari_mrcz import MRCZFormatError

REPO = pathlib.Path(__file__).resolve().parents[1]


def _find_shared_data() -> pathlib.Path | None:
    """The folder of real files nobody here wrote (see its PROVENANCE.md)."""
    candidates = [
        os.environ.get("NAPARI_MRCZ_TEST_DATA"),
        REPO.parent / "shared" / "data",
        "/work/shared/data",
    ]
    for candidate in candidates:
        if candidate and (pathlib.Path(candidate) / "PROVENANCE.md").is_file():
            return pathlib.Path(candidate)
    return None


#: ../shared/data, or None where it is absent (its tests are then skipped).
SHARED_DATA = _find_shared_data()


def real_files(kind: str) -> list[pathlib.Path]:
    """The real files of one kind ('mrc', 'dm3', 'dm4'), for parametrize."""
    if SHARED_DATA is None:
        return []
    return sorted((SHARED_DATA / kind).iterdir())


def write_permuted_map(
    path: pathlib.Path, data: np.ndarray, origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> None:
    """An EMDB-style map of (sections, rows, columns) ``data`` with MAPC/MAPR/MAPS =
    2, 1, 3: crystal x runs along rows, y along columns; voxel 1, 2, 3 A in x, y, z."""
    nz, ny, nx = data.shape
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 2, 1, 3
        mrc.header.mx, mrc.header.my, mrc.header.mz = ny, nx, nz
        mrc.header.cella = (ny * 1.0, nx * 2.0, nz * 3.0)
        mrc.header.origin = origin


def read_or_none(path: pathlib.Path, read: Callable[[pathlib.Path], Any]) -> Any:
    """``read(path)``, or None if it refuses the file with exactly MRCZFormatError naming it.

    For fuzzing: any other exception fails the test.
    """
    try:
        return read(path)
    except MRCZFormatError as error:
        refused = error
    assert type(refused) is MRCZFormatError
    assert refused.path == str(path)
    return None


def gain_normalised_movie(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    dose: float = 1.0,
    spread: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A counting-mode movie as camera software saves it: Poisson counts times a gain.

    Returns (movie, counts, gain): ``movie`` is float32, the counts (int16) multiplied
    by the float32 gain (1 +/- ``spread``) in float32, pixel by pixel.
    """
    nz, ny, nx = shape
    gain = (1 + spread * rng.uniform(-1, 1, (ny, nx))).astype(np.float32)
    counts = rng.poisson(dose, (nz, ny, nx)).astype(np.int16)
    return counts.astype(np.float32) * gain, counts, gain


def poisson1_frame(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """One counting-mode frame: Poisson(1) counts as int8, by inversion of the CDF.

    Much faster than ``Generator.poisson`` for a mean of 1: a float32 uniform is
    compared with the cumulative probabilities of 0, 1, 2, ... counts (up to 15; the
    tail beyond is below float32 resolution).
    """
    k = np.arange(16)
    pmf = np.exp(-1.0) / np.array([math.factorial(int(n)) for n in k])
    cdf = np.cumsum(pmf)[:-1].astype(np.float32)
    uniform = rng.random(shape, dtype=np.float32)
    counts = np.zeros(shape, dtype=np.int8)
    for threshold in cdf:
        np.add(counts, uniform >= threshold, out=counts, casting="unsafe")
    return counts


def write_counting_movies(
    folder: str | os.PathLike, files: int, size_mb: float, side: int = 4096
) -> int:
    """Plain MRC counting movies (int8 Poisson(1), seeded) for the command-line benchmarks.

    Returns their total data bytes. Written with mrcfile, not with the code measured.
    """
    rng = np.random.default_rng(20261125)
    frames = max(1, round(size_mb * 1e6 / side**2))
    os.makedirs(folder)
    total = 0
    for number in range(files):
        movie = np.stack([poisson1_frame(rng, (side, side)) for _ in range(frames)])
        with mrcfile.new(os.path.join(folder, f"movie_{number:03d}.mrc")) as handle:
            handle.set_data(movie)
            handle.voxel_size = 0.83
        total += movie.nbytes
    return total


def in_angstrom(values: Any, units: Any) -> list[float]:
    """A layer's scale or translate with its lengths in Angstrom (by pint, not by us).

    Axes whose unit is no length (eV, 1/nm) keep their values; napari's ``pixel``
    (no unit given) counts as Angstrom, as the writers take it.
    """
    import pint

    registry = pint.get_application_registry()
    values = [float(value) for value in values]
    if units is None or isinstance(units, str):
        units = [units] * len(values)
    units = list(units)[-len(values) :] if values else []
    converted = []
    for value, unit in zip(values, units, strict=True):
        unit = registry.Unit(str(unit)) if unit is not None else None
        if unit is not None and unit.dimensionality == registry.Unit("angstrom").dimensionality:
            value = float(registry.Quantity(value, unit).to("angstrom").magnitude)
        converted.append(value)
    return converted
