"""LazyView, the one lazy view type: casts, value functions and axis orders, read lazily."""

import numpy as np
import pytest

from napari_mrcz.arraylike import LazyView, as_stack


class CountingArray:
    """A numpy array that counts the elements read through it."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype = array.shape, array.dtype
        self.read = 0

    def __getitem__(self, key):
        part = self.array[key]
        self.read += np.asarray(part).size
        return part


KEYS = [
    1,
    -1,
    (slice(None), 2),
    (0, slice(1, 3), slice(None, None, 2)),
    (Ellipsis, 3),
    (slice(None), slice(None), 0),
    np.s_[1:2, None],
    (np.array([0, 2]),),
]


@pytest.mark.parametrize("key", KEYS, ids=repr)
@pytest.mark.parametrize("order", [(0, 1, 2), (0, 2, 1), (2, 0, 1), (1, 2, 0)])
def test_a_permuted_view_indexes_as_numpy_transposed(rng, key, order):
    data = rng.normal(size=(3, 4, 5))
    view = LazyView(CountingArray(data), order=order)
    assert view.shape == data.transpose(order).shape
    try:
        expected = data.transpose(order)[key]
    except IndexError:
        with pytest.raises(IndexError):
            view[key]
    else:
        np.testing.assert_array_equal(view[key], expected)
    np.testing.assert_array_equal(np.asarray(view), data.transpose(order))


def test_only_what_a_key_asks_for_is_read(rng):
    source = CountingArray(rng.normal(size=(6, 4, 5)))
    view = LazyView(source, order=(0, 2, 1))
    view[2]
    assert source.read == 4 * 5


def test_a_writer_going_slice_by_slice_reads_the_whole_once(rng):
    source = CountingArray(rng.normal(size=(6, 4, 5)))
    view = LazyView(source, order=(2, 0, 1), keep_whole=True)
    slices = [view[index] for index in range(view.shape[0])]
    assert source.read == source.array.size
    np.testing.assert_array_equal(np.stack(slices), source.array.transpose(2, 0, 1))


def test_casts_and_value_functions_apply_to_what_is_read(rng):
    complex_data = (rng.normal(size=(2, 3)) + 1j * rng.normal(size=(2, 3))).astype(np.complex64)
    amplitude = LazyView(complex_data, np.float32, convert=np.abs)
    assert amplitude.dtype == np.float32
    assert amplitude.shape == (2, 3)
    np.testing.assert_array_equal(amplitude[1], np.abs(complex_data[1]).astype(np.float32))
    cast = LazyView(np.arange(6, dtype=np.int16).reshape(2, 3), np.float32)
    assert cast[0].dtype == np.float32
    assert np.asarray(cast, dtype=np.float64).dtype == np.float64


def test_as_stack_gives_three_dimensions(rng):
    image = rng.normal(size=(4, 5))
    assert as_stack(image).shape == (1, 4, 5)
    stack = rng.normal(size=(2, 4, 5))
    assert as_stack(stack) is stack
