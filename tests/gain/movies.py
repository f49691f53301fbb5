"""Movies for the gain-separation tests: written as camera software writes them, and
converted and verified as ``mrcz compress --ungain`` does."""

import os
import pathlib

import mrcfile
import numpy as np

from napari_mrcz import formats
from napari_mrcz.gain.separation import GainSettings, convert_image
from napari_mrcz.gain.store import GainStore
from napari_mrcz.tools import convert as conversion


def write_movie(path, movie, voxel=0.8):
    """A plain MRC movie, written by mrcfile as camera software would."""
    with mrcfile.new(path) as handle:
        handle.set_data(movie)
        handle.voxel_size = voxel
    return path


def convert(source, target, compressor="zstd", gain=None, keep_json=False):
    """Convert every image of ``source`` to ``target`` and verify it; return the outcome."""
    gain = gain or GainSettings(GainStore(compressor), ungain=True)
    pathlib.Path(target).parent.mkdir(parents=True, exist_ok=True)
    with formats.open_images(source) as images:
        (image,) = images
        outcome = convert_image(image, str(target), compressor, gain=gain, keep_json=keep_json)
        conversion.verify_image(image, str(target), counts=gain.counts)
    return outcome


def bits(array):
    return np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)


def assert_same_bits(first, second):
    np.testing.assert_array_equal(bits(first), bits(second))


def gain_files(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("gain_"))
