"""napari-mrcz's dock widgets (Qt and magicgui live only in this package)."""
