"""The layers of the package hold: imports run down the parts the Architecture page lists.

Every ``import`` of every module (top level or inside a function) is read from the
source; a module may import its own part and the parts above it in the list, never
one below, and no private name of another module. napari and Qt are imported only by
the napari glue and the Qt widgets.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "napari_mrcz"

#: The parts in order, as docs/architecture.md lists them; a module's part is its
#: folder, or for a module at the top, its name.
PARTS = [
    {
        "errors",
        "threads",
        "units",
        "suffixes",
        "arraylike",
        "files",
        "remote",
        "wording",
        "__about__",
    },
    {"mrc"},
    {"dm"},
    {"formats"},
    {"__init__", "api", "dask_array"},
    {"tools"},
    {"gain"},
    {"cli"},
    {"_napari", "__main__"},
    {"_qt"},
]
GUI_PARTS = {"_napari", "__main__", "_qt"}


def part_of(module: str) -> int:
    """The index in PARTS of ``napari_mrcz.<module>``."""
    first = module.split(".")[0] if module else "__init__"
    for index, names in enumerate(PARTS):
        if first in names:
            return index
    raise AssertionError(f"napari_mrcz.{module} belongs to no part: add it to PARTS")


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        name = ".".join(relative.parts)
        yield name.removesuffix(".__init__") if relative.parts[-1] == "__init__" else name, path


def imports_of(path: pathlib.Path):
    """(imported module, names) of each import statement, as absolute module names."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            yield node.module, [alias.name for alias in node.names]


MODULES = dict(modules())


@pytest.mark.parametrize("module", MODULES, ids=str)
def test_imports_run_down_the_parts(module):
    own = part_of(module.removeprefix("__init__"))
    for imported, _ in imports_of(MODULES[module]):
        if imported == "napari_mrcz" or imported.startswith("napari_mrcz."):
            target = imported.removeprefix("napari_mrcz").removeprefix(".")
            if target.split(".")[0] == "__about__" or (not target and module == "__main__"):
                continue
            assert part_of(target) <= own, f"{module} imports {imported}, a part below it"


@pytest.mark.parametrize("module", MODULES, ids=str)
def test_no_private_name_of_another_module_is_imported(module):
    for imported, names in imports_of(MODULES[module]):
        if imported.startswith("napari_mrcz"):
            private = [name for name in names if name.startswith("_") and not name.endswith("__")]
            assert not private, f"{module} imports {private} from {imported}"


@pytest.mark.parametrize("module", MODULES, ids=str)
def test_napari_and_qt_only_in_the_gui_parts(module):
    if module.split(".")[0] in GUI_PARTS:
        return
    for imported, _ in imports_of(MODULES[module]):
        top = imported.split(".")[0]
        assert top not in {"napari", "npe2", "qtpy", "PyQt6", "magicgui", "superqt"}, (
            f"{module} imports {imported}"
        )


def test_every_part_is_on_the_architecture_page():
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for names in PARTS[1:]:
        assert any(f"`{name}" in page for name in names), names
