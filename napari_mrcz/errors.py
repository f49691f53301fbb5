"""The one exception the engine raises for files it cannot read or write, and the one warning."""

from __future__ import annotations

import os


class MRCZFormatError(ValueError):
    """A file is damaged, truncated or not a file we can read.

    Subclasses :class:`ValueError` so that code written against python-mrcz, which
    raises ``ValueError`` for bad files, keeps working.

    Parameters
    ----------
    path : str or os.PathLike or None
        The file concerned, named in the message.
    problem : str
        What is wrong, in words a user can act on.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{problem}")

    def __reduce__(self) -> tuple:
        """Pickle the file and the problem: the error travels from worker processes."""
        return type(self), (self.path, self.problem)


class MRCZWarning(UserWarning):
    """Something about a file changes what the user sees or gets, though it reads or writes.

    A guessed byte order, an unusable pixel size shown as 1 Angstrom, data cast to
    another type, metadata left out. napari shows these as notifications; scripts can
    filter them by this class (``warnings.simplefilter("ignore", MRCZWarning)``).
    """


class RemoteFileError(OSError):
    """A file on a web server or object store could not be read.

    Not found, access denied, a server that stopped answering or sending: the
    message names the file (its address with any password or signature left out)
    and the problem.

    Parameters
    ----------
    name : str
        The file's address as shown (see :func:`napari_mrcz.remote.redact`).
    problem : str
        What went wrong, in words a user can act on.
    """

    def __init__(self, name: str, problem: str) -> None:
        self.path = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")

    def __reduce__(self) -> tuple:
        """Pickle the address and the problem: the error travels from worker processes."""
        return type(self), (self.path, self.problem)
