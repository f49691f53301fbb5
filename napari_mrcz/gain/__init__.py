"""Gain separation: gain-normalised float32 movies stored as integer counts and a gain.

``estimate`` finds the gain and the counts of a movie (and proves the product gives
every pixel back), ``store`` keeps the gain references a run writes and reuses,
``separation`` writes the counts file (or, when a movie is no counts times a gain, the
ordinary copy) for ``mrcz compress --ungain`` and the napari panel. Reading such a
file is part of the format (every reader applies the gain): the record is
:mod:`napari_mrcz.mrc.gainmeta`, the reading :mod:`napari_mrcz.mrc.gain`.
"""
