"""A modal dialog nobody answers would hang a GUI test: fail instead."""

import pytest


@pytest.fixture(autouse=True)
def _no_unexpected_replace_question(monkeypatch):
    """The save panel's "Replace file?" fails a test that does not expect it.

    Tests that expect it answer it (monkeypatch ``SaveWidget.confirm_replace``) or
    drive the real dialog (see test_save.py).
    """
    pytest.importorskip("napari")
    from napari_mrcz._qt.save import SaveWidget

    def unexpected(self, path):
        raise AssertionError(f"unexpected question: replace {path}?")

    monkeypatch.setattr(SaveWidget, "confirm_replace", unexpected, raising=False)
