"""File-system hints for large writes: they may speed a save up, never change it."""

import os
import sys

import pytest

from napari_mrcz.mrc import disk_hints


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's calls")
def test_the_calls_are_found_on_linux():
    assert disk_hints._fallocate is not None
    assert disk_hints._sync_file_range is not None


def test_hints_change_neither_size_nor_content(tmp_path):
    path = tmp_path / "slice.bin"
    with open(path, "wb", buffering=0) as handle:
        handle.write(b"header")
        disk_hints.reserve_blocks(handle, 6, 2**20)
        handle.write(b"x" * 1000)
        disk_hints.start_writeback(handle, 6, 1000)
        assert os.fstat(handle.fileno()).st_size == 1006
    assert path.read_bytes() == b"header" + b"x" * 1000


def test_hints_on_what_cannot_take_them_are_ignored():
    read_end, write_end = os.pipe()
    try:
        with open(write_end, "wb", buffering=0, closefd=False) as handle:
            disk_hints.reserve_blocks(handle, 0, 4096)
            disk_hints.start_writeback(handle, 0, 4096)
    finally:
        os.close(read_end)
        os.close(write_end)
