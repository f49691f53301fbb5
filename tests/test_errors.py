"""The engine's one exception and one warning keep the contract callers code against.

MRCZFormatError is still a ValueError (code written for python-mrcz catches that),
names the file once in its message and carries the file and the problem apart;
MRCZWarning is a UserWarning that a script can silence by its class alone.
"""

from __future__ import annotations

import pathlib
import pickle
import warnings

import pytest

import napari_mrcz
from napari_mrcz.errors import MRCZFormatError, MRCZWarning


def test_the_package_exports_the_same_exception_and_warning():
    assert napari_mrcz.MRCZFormatError is MRCZFormatError
    assert napari_mrcz.MRCZWarning is MRCZWarning


def test_a_format_error_is_caught_by_code_written_for_python_mrcz():
    """python-mrcz raises ValueError for bad files: ``except ValueError`` still works."""
    with pytest.raises(ValueError, match="truncated"):
        raise MRCZFormatError("movie.mrcz", "truncated")


def test_the_message_names_the_file_then_the_problem():
    error = MRCZFormatError("/data/movie.mrc", "too short for an MRC file: 12 bytes")
    assert str(error) == "/data/movie.mrc: too short for an MRC file: 12 bytes"
    assert error.path == "/data/movie.mrc"
    assert error.problem == "too short for an MRC file: 12 bytes"


def test_a_path_object_is_named_as_a_string(tmp_path):
    path = tmp_path / "stack.mrcs"
    error = MRCZFormatError(path, "not an MRC file")
    assert error.path == str(path)
    assert isinstance(error.path, str)
    assert str(error) == f"{path}: not an MRC file"


def test_without_a_file_the_message_is_the_problem_alone():
    error = MRCZFormatError(None, "the header has no valid mode")
    assert error.path is None
    assert str(error) == "the header has no valid mode"


def test_any_path_like_object_is_accepted():
    class Handle:
        def __fspath__(self) -> str:
            return "remote/copy.dm4"

    error = MRCZFormatError(Handle(), "not a DM3/DM4 file")
    assert error.path == "remote/copy.dm4"
    assert str(error).startswith("remote/copy.dm4: ")


def test_a_format_error_survives_pickling_as_from_a_worker_process():
    error = MRCZFormatError(pathlib.Path("/scratch/movie.mrcz"), "past the end of the file")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is MRCZFormatError
    assert (copy.path, copy.problem, str(copy)) == (error.path, error.problem, str(error))


def test_the_warning_is_a_user_warning_and_not_an_error():
    assert issubclass(MRCZWarning, UserWarning)
    assert not issubclass(MRCZWarning, MRCZFormatError)
    assert not issubclass(MRCZFormatError, Warning)


def test_a_script_silences_our_warnings_by_their_class_alone():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", MRCZWarning)
        warnings.warn("pixel size shown as 1 Angstrom", MRCZWarning, stacklevel=1)
        warnings.warn("someone else's warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["someone else's warning"]


def test_our_warnings_can_be_made_errors_without_touching_others():
    with warnings.catch_warnings():
        warnings.simplefilter("error", MRCZWarning)
        with pytest.raises(MRCZWarning, match="byte order guessed"):
            warnings.warn("byte order guessed", MRCZWarning, stacklevel=1)
        with pytest.warns(UserWarning, match="other"):
            warnings.warn("other", UserWarning, stacklevel=1)
