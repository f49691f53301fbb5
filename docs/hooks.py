"""mkdocs hooks: the docstrings' Sphinx cross-reference roles, shown as code.

The docstrings are numpydoc, read by Sphinx-minded tools and by ``help()``, where a
role such as ``:func:`napari_mrcz.writeMRC``` is the convention; mkdocstrings renders
it as the literal role before the code. Here the role goes, and a leading ``~``
shows only the last part of the name, as Sphinx does.
"""

from __future__ import annotations

import re
from typing import Any

#: A role before inline code: ``:func:<code>~a.b</code>`` as mkdocstrings renders it.
_ROLE = re.compile(
    r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const):<code>(~?)([^<]*)</code>"
)


def _shown(match: re.Match) -> str:
    """The code of a role, only its last dotted part after a ``~``."""
    tilde, name = match.groups()
    return f"<code>{name.rsplit('.', 1)[-1] if tilde else name}</code>"


def on_page_content(html: str, **_: Any) -> str:
    """Replace each role before inline code with the code alone."""
    return _ROLE.sub(_shown, html)
