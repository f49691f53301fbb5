"""Shared fixtures: seeded random data and the real EM files in ../shared/data."""

import os
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _find_shared_data() -> pathlib.Path | None:
    """The folder of real files nobody here wrote (see its PROVENANCE.md)."""
    candidates = [os.environ.get("NAPARI_MRCZ_TEST_DATA"), REPO.parent / "shared" / "data",
                  "/work/shared/data"]
    for candidate in candidates:
        if candidate and (pathlib.Path(candidate) / "PROVENANCE.md").is_file():
            return pathlib.Path(candidate)
    return None


SHARED_DATA = _find_shared_data()


@pytest.fixture
def rng():
    """Seeded so that a failure can be reproduced exactly."""
    return np.random.default_rng(20261125)


@pytest.fixture
def shared_data() -> pathlib.Path:
    """Path of ../shared/data; skips the test where the folder is absent."""
    if SHARED_DATA is None:
        pytest.skip("the shared real-file folder is not available")
    return SHARED_DATA


def real_files(kind: str) -> list[pathlib.Path]:
    """The real files of one kind ('mrc', 'dm3', 'dm4'), for parametrize."""
    if SHARED_DATA is None:
        return []
    return sorted((SHARED_DATA / kind).iterdir())
