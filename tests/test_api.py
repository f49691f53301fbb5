"""The public API: python-mrcz's names, importable without napari or Qt."""

import subprocess
import sys

import numpy as np

import napari_mrcz

PYTHON_MRCZ_NAMES = [
    "readMRC",
    "writeMRC",
    "asyncReadMRC",
    "asyncWriteMRC",
    "readMRCHeader",
    "writeMRCHeader",
    "defaultHeader",
    "setDefaultThreads",
    "__version__",
    "REVERSE_CCPEM_ENUM",
    "CCPEM_ENUM",
    "COMPRESSOR_ENUM",
    "REVERSE_COMPRESSOR_ENUM",
]
SNAKE_ALIASES = {
    "read_mrc": "readMRC",
    "write_mrc": "writeMRC",
    "async_read_mrc": "asyncReadMRC",
    "async_write_mrc": "asyncWriteMRC",
    "read_mrc_header": "readMRCHeader",
    "write_mrc_header": "writeMRCHeader",
    "default_header": "defaultHeader",
    "set_default_threads": "setDefaultThreads",
}


def test_engine_and_command_line_import_no_gui_and_no_python_mrcz():
    """Every module outside _napari/ and _qt/ loads without napari, Qt or python-mrcz.

    python-mrcz turns on blosc's GIL release when imported: a process that has it
    loaded would hide our own settings. dask and distributed are optional (to_dask and
    the cluster options import them when used).
    """
    code = (
        "import importlib, pkgutil, sys, napari_mrcz\n"
        "for module in pkgutil.walk_packages(napari_mrcz.__path__, 'napari_mrcz.'):\n"
        "    if not module.name.startswith(('napari_mrcz._napari', 'napari_mrcz._qt')):\n"
        "        importlib.import_module(module.name)\n"
        "heavy = [m for m in ('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6', 'magicgui', 'npe2',"
        " 'mrcz', 'mrcfile', 'dask', 'distributed') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_python_mrcz_names_exist():
    for name in PYTHON_MRCZ_NAMES:
        assert hasattr(napari_mrcz, name), name


def test_snake_case_aliases_are_the_same_objects():
    for alias, name in SNAKE_ALIASES.items():
        assert getattr(napari_mrcz, alias) is getattr(napari_mrcz, name)


def test_mode_tables_match_python_mrcz():
    import mrcz

    for mode, code in mrcz.ioMRC.CCPEM_ENUM.items():
        assert np.dtype(napari_mrcz.CCPEM_ENUM[mode]) == np.dtype(code)
    for name, mode in mrcz.ioMRC.REVERSE_CCPEM_ENUM.items():
        assert napari_mrcz.REVERSE_CCPEM_ENUM[name] == mode
    for code, name in napari_mrcz.COMPRESSOR_ENUM.items():
        assert mrcz.ioMRC.COMPRESSOR_ENUM[code] == name


def test_default_header_has_python_mrcz_keys():
    import mrcz

    ours, theirs = napari_mrcz.defaultHeader(), mrcz.defaultHeader()
    assert set(theirs) - {"backend"} <= set(ours)


def test_the_public_names_are_the_lazily_loaded_ones():
    """``__all__`` and the lazy loader's table list the same names, and each loads."""
    assert set(napari_mrcz.__all__) == {"__version__", *napari_mrcz._EXPORTS}
    for name in napari_mrcz.__all__:
        assert getattr(napari_mrcz, name) is not None
