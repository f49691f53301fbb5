"""Shared fixtures (seeded random data, the real EM files) and the test markers."""

import pathlib

import numpy as np
import pytest

from tests.helpers import SHARED_DATA

TESTS = pathlib.Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the GUI tests (``tests/_qt``) and the tests that read ../shared/data."""
    for item in items:
        path = pathlib.Path(str(item.path))
        if TESTS / "_qt" in path.parents:
            item.add_marker(pytest.mark.gui)
        params = getattr(item, "callspec", None)
        values = params.params.values() if params is not None else ()
        if "shared_data" in getattr(item, "fixturenames", ()) or any(
            isinstance(value, pathlib.Path)
            and SHARED_DATA is not None
            and SHARED_DATA in value.parents
            for value in values
        ):
            item.add_marker(pytest.mark.real_data)


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
