"""writeMRC and writeMRCHeader details: memory layouts, casts, appends, symlinks."""

import io
import struct
import threading

import mrcfile
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.codecs import CHUNK_HEADER_SIZE, recorded_settings
from napari_mrcz.mrc.header import FIELD_OFFSETS, HEADER_SIZE
from napari_mrcz.mrc.layout import read_layout


@pytest.mark.parametrize("endian", ["le", "be"])
@pytest.mark.parametrize("compressor", [None, "zstd"])
@pytest.mark.parametrize("layout", ["fortran", "transposed", "strided"])
def test_any_memory_layout_round_trips(tmp_path, rng, endian, compressor, layout):
    data = rng.normal(size=(3, 10, 14)).astype(np.float32)
    source = {
        "fortran": np.asfortranarray(data),
        "transposed": data.transpose(0, 2, 1).copy().transpose(0, 2, 1),
        "strided": np.repeat(data, 2, axis=2)[:, :, ::2],
    }[layout]
    path = tmp_path / "layout.mrcz"
    napari_mrcz.writeMRC(source, path, endian=endian, compressor=compressor)
    np.testing.assert_array_equal(napari_mrcz.readMRC(path)[0], data)


def test_stats_follow_the_stored_type(tmp_path):
    """Float input stored as int16: the header describes the stored integers."""
    path = tmp_path / "cast.mrc"
    napari_mrcz.writeMRC(np.full((2, 4, 4), 100.7), path, dtype="int16")
    _, meta = napari_mrcz.readMRC(path)
    assert meta["meanImage"] == 100.0
    assert meta["rmsImage"] == 0.0


def test_stats_of_integers_stored_as_float(tmp_path, rng):
    data = (30000 + rng.integers(-1, 2, size=(3, 20, 20))).astype(np.uint16)
    path = tmp_path / "float.mrc"
    napari_mrcz.writeMRC(data, path, dtype="float32")
    _, meta = napari_mrcz.readMRC(path)
    assert meta["rmsImage"] == pytest.approx(data.std(), rel=1e-5)
    assert meta["meanImage"] == pytest.approx(data.mean(), rel=1e-7)


def test_append_to_image_stack_keeps_voxel_size(tmp_path, rng):
    """A RELION-style stack (ISPG 0, MZ = 1): appending frames keeps its voxel size."""
    data = rng.normal(size=(3, 8, 8)).astype(np.float32)
    path = tmp_path / "particles.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.set_image_stack()
        mrc.voxel_size = 2.0
    napari_mrcz.writeMRC(data[:2], path, idx=3)
    with mrcfile.open(path) as mrc:
        assert mrc.data.shape == (5, 8, 8)
        assert float(mrc.voxel_size.z) == pytest.approx(2.0)
        assert float(mrc.voxel_size.x) == pytest.approx(2.0)
    np.testing.assert_allclose(napari_mrcz.readMRC(path)[1]["pixelsize"], [2.0, 2.0, 2.0])


def test_write_header_with_slices_reads_as_list(tmp_path, rng):
    import mrcz

    frames = rng.normal(size=(5, 4, 6)).astype(np.float32)
    header = napari_mrcz.defaultHeader()
    header.update(
        dimensions=frames.shape, dtype="float32", pixelsize=1.0, pixelunits="\\AA", meta=None
    )
    path = tmp_path / "raw.mrc"
    with open(path, "wb") as handle:
        napari_mrcz.writeMRCHeader(handle, header, slices=1)
        frames.tofile(handle)
    ours, meta = napari_mrcz.readMRC(path)
    theirs, _ = mrcz.readMRC(str(path))
    assert isinstance(ours, list)
    assert isinstance(theirs, list)
    assert len(ours) == len(theirs) == 5
    np.testing.assert_allclose(meta["pixelsize"], [1.0, 1.0, 1.0])


def test_write_header_refuses_a_dtype_it_would_change():
    header = napari_mrcz.defaultHeader()
    header.update(dimensions=(1, 4, 4), dtype="u1")
    with pytest.raises(ValueError, match="u1"):
        napari_mrcz.writeMRCHeader(io.BytesIO(), header, slices=0)


def test_user_slices_key_does_not_turn_an_array_into_a_list(tmp_path, rng):
    data = rng.normal(size=(6, 4, 4)).astype(np.float32)
    path = tmp_path / "meta.mrcz"
    napari_mrcz.writeMRC(data, path, meta={"slices": 2, "dose": 1.0}, compressor="zstd")
    image, meta = napari_mrcz.readMRC(path)
    assert isinstance(image, np.ndarray)
    assert image.shape == data.shape
    assert meta["dose"] == 1.0


@pytest.mark.parametrize(
    "empty",
    [np.zeros((0, 4, 4)), np.zeros((2, 0, 4)), [np.zeros((0, 4, 4))]],
    ids=["nz", "ny", "list"],
)
def test_empty_arrays_are_refused(tmp_path, empty):
    with pytest.raises(ValueError, match="empty"):
        napari_mrcz.writeMRC(empty, tmp_path / "empty.mrc")
    assert not list(tmp_path.iterdir())


def test_saving_through_a_symlink_updates_its_target(tmp_path, rng):
    old, new = (rng.normal(size=(2, 4, 4)).astype(np.float32) for _ in range(2))
    target = tmp_path / "real.mrcz"
    link = tmp_path / "link.mrcz"
    napari_mrcz.writeMRC(old, target, compressor="zstd")
    link.symlink_to(target)
    napari_mrcz.writeMRC(new, link, compressor="zstd")
    assert link.is_symlink()
    np.testing.assert_array_equal(napari_mrcz.readMRC(target)[0], new)


def test_chunk_claiming_an_impossible_ratio_is_refused(tmp_path):
    """A 2 KB file whose chunk header claims 64 MB: refused before any allocation."""
    data = np.zeros((1, 4, 4), dtype=np.float32)
    path = tmp_path / "bomb.mrcz"
    napari_mrcz.writeMRC(data, path, compressor="zstd")
    raw = bytearray(path.read_bytes())
    struct.pack_into("<ii", raw, FIELD_OFFSETS["nx"], 4096, 4096)
    (nsymbt,) = struct.unpack_from("<i", raw, FIELD_OFFSETS["nsymbt"])  # the JSON meta
    struct.pack_into("<i", raw, HEADER_SIZE + nsymbt + 4, 4096 * 4096 * 4)
    path.write_bytes(bytes(raw))
    with pytest.raises(napari_mrcz.MRCZFormatError, match=r"cannot (hold|fit)"):
        napari_mrcz.readMRC(path)
    assert len(raw) < HEADER_SIZE + nsymbt + 4 * CHUNK_HEADER_SIZE + 1024


def test_idx_out_of_range_is_a_value_error_as_in_python_mrcz(tmp_path, rng):
    path = tmp_path / "three.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(3, 4, 4)).astype(np.float32), path)
    with pytest.raises(ValueError, match="out of range"):
        napari_mrcz.readMRC(path, idx=5)


def test_closing_a_lazy_file_waits_for_a_read_in_progress(tmp_path, rng):
    data = rng.normal(size=(64, 128, 128)).astype(np.float32)
    path = tmp_path / "busy.mrcz"
    napari_mrcz.writeMRC(data, path, compressor="zstd")
    lazy = napari_mrcz.open_lazy(path)
    results = {}

    def read_all():
        results["data"] = np.asarray(lazy)

    reader = threading.Thread(target=read_all)
    reader.start()
    lazy.close()
    reader.join()
    if "data" in results:
        np.testing.assert_array_equal(results["data"], data)
    with pytest.raises(ValueError, match="closed"):
        lazy[0]


def test_appending_at_another_level_forgets_the_level(tmp_path, rng):
    path = tmp_path / "grown.mrcz"
    frames = rng.normal(size=(3, 8, 8)).astype(np.float32)
    napari_mrcz.writeMRC(frames[:2], path, compressor="zstd", clevel=3)
    napari_mrcz.writeMRC(frames[2:], path, compressor="zstd", clevel=3, idx=2)
    assert recorded_settings(read_layout(path).labels) == ("zstd", 3)  # same level
    napari_mrcz.writeMRC(frames[2:], path, compressor="zstd", clevel=6, idx=3)
    assert recorded_settings(read_layout(path).labels) is None
    np.testing.assert_array_equal(napari_mrcz.readMRC(path)[0][:3], frames)
