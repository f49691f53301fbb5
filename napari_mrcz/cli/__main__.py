"""``python -m napari_mrcz.cli``: the ``mrcz`` command without its console script."""

from napari_mrcz.cli import console_main

if __name__ == "__main__":
    console_main()
