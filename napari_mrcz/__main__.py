"""Start napari with napari-mrcz: ``python -m napari_mrcz [FILE ...]``.

Without files it shows the plugin's synthetic cryo-EM volume sample (an MRCZ file;
the counting-mode movie sample is under File > Open Sample); with files it opens
them with our reader. A file that cannot be read is an error notification naming
it; napari opens the others.
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

    from napari.utils.notifications import show_error

    viewer = napari.Viewer(title="napari-mrcz")
    for path in args.files:
        try:
            viewer.open(path, plugin="napari-mrcz")
        except Exception as error:  # one bad file must not take napari and the rest down
            if not _notified(error):
                show_error(str(error))
    if not args.files:
        viewer.open_sample("napari-mrcz", "volume")
        viewer.canvas.overlays.scale_bar.visible = True
    napari.run()


def _notified(error: BaseException) -> bool:
    """True if our reader has shown the reason already (an MRCZFormatError behind it)."""
    from napari_mrcz.errors import MRCZFormatError

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, MRCZFormatError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


if __name__ == "__main__":
    main()
