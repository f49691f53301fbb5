"""The JSON meta keys the format reserves: defined once, each one described."""

import ast
import pathlib

from napari_mrcz.mrc import jsonmeta

PACKAGE = pathlib.Path(jsonmeta.__file__).resolve().parents[1]


def test_every_reserved_key_is_described():
    keys = [value for name, value in vars(jsonmeta).items() if name.endswith("_KEY")]
    assert sorted(keys) == sorted(jsonmeta.RESERVED_KEYS)
    assert all(jsonmeta.RESERVED_KEYS.values())


def test_no_module_spells_a_reserved_key_itself():
    """Each key is written once, in jsonmeta; the others import it (docstrings aside)."""
    spelled = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "jsonmeta.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        spelled += [
            f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and node.value in jsonmeta.RESERVED_KEYS
            and id(node) not in docstrings
        ]
    assert spelled == []
