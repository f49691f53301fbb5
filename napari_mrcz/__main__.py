"""Start napari with napari-mrcz: ``python -m napari_mrcz [FILE ...]``.

Without files it shows the plugin's synthetic cryo-EM volume sample (an MRCZ file;
the counting-mode movie sample is under File > Open Sample); with files it opens
them with our reader.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    """Open napari showing the samples or the given files."""
    parser = argparse.ArgumentParser(prog="python -m napari_mrcz", description=__doc__)
    parser.add_argument("files", nargs="*", help="MRC, MRCZ or DM files to open")
    args = parser.parse_args(argv)
    try:
        import napari
    except ImportError:
        parser.exit(1, "napari is not installed here: pip install 'napari-mrcz[all]'\n")

    viewer = napari.Viewer(title="napari-mrcz")
    if args.files:
        viewer.open(args.files, plugin="napari-mrcz")
    else:
        viewer.open_sample("napari-mrcz", "volume")
        viewer.canvas.overlays.scale_bar.visible = True
    napari.run()


if __name__ == "__main__":
    main()
