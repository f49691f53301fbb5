"""The one exception the engine raises for files it cannot read or write."""

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
