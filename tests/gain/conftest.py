"""The movie every gain-separation test folder starts from."""

import pytest

from tests.gain.movies import write_movie
from tests.helpers import gain_normalised_movie


@pytest.fixture
def movie_file(tmp_path, rng):
    """40 frames of 1 e/pixel: every pixel holds one count somewhere, so the estimate
    recovers the camera's gain exactly."""
    movie, counts, gain = gain_normalised_movie(rng, (40, 24, 32))
    return write_movie(tmp_path / "movie.mrc", movie), counts, gain
