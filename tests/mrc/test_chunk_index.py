"""The chunk index: our MRCZ files record each chunk's size, so opening them walks no
chunk headers; other files' headers are walked, and sizes that cannot be right are
not trusted."""

import json
import struct

import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz import MRCZFormatError
from napari_mrcz.mrc import layout as layout_module
from napari_mrcz.mrc.lazy import LazyMRC
from napari_mrcz.mrc.write import write_array
from napari_mrcz.tools.validate import validate_file

from tests.mrc.test_append import append
from tests.mrc.test_checksums import chunks_by_hand, json_meta


@pytest.fixture
def stack(rng):
    return rng.normal(size=(50, 24, 20)).astype(np.float32)


@pytest.fixture
def walked(monkeypatch):
    """How many chunk headers are walked (one after the other) while files are indexed."""
    walks: list[int] = []
    size_field = layout_module.CHUNK_SIZE_FIELD

    class CountingField:
        def unpack_from(self, buffer, offset):
            walks.append(offset)
            return size_field.unpack_from(buffer, offset)

    monkeypatch.setattr(layout_module, "CHUNK_SIZE_FIELD", CountingField())
    return walks


def test_our_files_record_each_chunk_size_and_python_mrcz_still_reads_them(tmp_path, stack):
    path = tmp_path / "stack.mrcz"
    napari_mrcz.writeMRC(stack, path, compressor="zstd", meta={"dose": 2.0})
    recorded = json_meta(path)["chunk_bytes"]
    assert recorded == "".join(f"{length:08x}" for _, length in chunks_by_hand(path))
    image, meta = mrcz.readMRC(str(path))  # the real python-mrcz
    np.testing.assert_array_equal(image, stack)
    assert meta["dose"] == 2.0
    assert napari_mrcz.readMRC(path)[1]["chunk_bytes"] == meta["chunk_bytes"]


def test_opening_our_stack_walks_no_chunk_header(tmp_path, stack, walked):
    path = tmp_path / "stack.mrcz"
    write_array(stack, path, compressor="lz4")
    with LazyMRC(path) as lazy:
        np.testing.assert_array_equal(lazy[37], stack[37])
    assert walked == []


def test_python_mrcz_files_are_walked(tmp_path, stack, walked):
    path = tmp_path / "theirs.mrcz"
    mrcz.writeMRC(stack, str(path), compressor="zstd")
    with LazyMRC(path) as lazy:
        np.testing.assert_array_equal(lazy[37], stack[37])
    assert len(walked) == len(stack)


def test_appended_slices_are_walked_after_the_recorded_ones(tmp_path, stack, walked):
    path = tmp_path / "stack.mrcz"
    write_array(stack[:40], path, compressor="zstd")
    append(path, stack[40:], 40)
    walked.clear()
    np.testing.assert_array_equal(napari_mrcz.readMRC(path)[0], stack)
    assert len(walked) == 10


def rewrite_sizes(path, change) -> None:
    """Replace the recorded sizes by ``change(sizes)``, the JSON keeping its length."""
    raw = bytearray(path.read_bytes())
    (nsymbt,) = struct.unpack_from("<i", raw, 92)
    meta = json.loads(raw[1024 : 1024 + nsymbt])
    text = meta["chunk_bytes"]
    sizes = [int(text[at : at + 8], 16) for at in range(0, len(text), 8)]
    meta["chunk_bytes"] = "".join(f"{size:08x}" for size in change(sizes))
    encoded = json.dumps(meta).encode()
    raw[1024 : 1024 + nsymbt] = encoded.ljust(nsymbt)
    path.write_bytes(bytes(raw))


def test_sizes_past_the_end_of_the_file_are_not_trusted(tmp_path, stack):
    path = tmp_path / "stack.mrcz"
    write_array(stack, path, compressor="zstd")
    rewrite_sizes(path, lambda sizes: [sizes[0] + 10**6, *sizes[1:]])
    np.testing.assert_array_equal(napari_mrcz.readMRC(path)[0], stack)  # walked instead


def test_wrong_sizes_inside_the_file_name_the_damaged_chunk(tmp_path, stack):
    """Opening trusts sizes that fit the file; reading a chunk whose header says
    otherwise names it, and validation checks them all."""
    path = tmp_path / "stack.mrcz"
    write_array(stack, path, compressor="zstd")
    rewrite_sizes(path, lambda sizes: [sizes[0], sizes[1] + 4, sizes[2] - 4, *sizes[3:]])
    with LazyMRC(path) as lazy:
        with pytest.raises(MRCZFormatError, match=r"stack\.mrcz.*blosc chunk 1 .*header says"):
            lazy[1]
        np.testing.assert_array_equal(lazy[5], stack[5])  # the others are still there
    [finding, *_] = validate_file(path)
    assert finding.check == "chunk"
    assert "chunk 1" in finding.message
