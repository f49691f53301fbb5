"""Saving is atomic: a failed save leaves the old file as it was and no debris beside it.

writeMRC writes a new file to a temporary name in the target's folder and renames it over
the target only once complete. Writing into an existing file (``idx``) changes only the
frames written and the header. Concurrent saves of different files give the same bytes as
the same saves one after the other.
"""

from __future__ import annotations

import errno
import os
import pathlib
import resource
import stat
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import mrcfile
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.header import HEADER_SIZE
from napari_mrcz.mrc.layout import read_layout

SHAPE = (6, 16, 20)


class FailingSource:
    """An array-like that writeMRC accepts, whose z-slice ``fail_at`` raises ``error``."""

    def __init__(self, array: np.ndarray, fail_at: int, error: BaseException) -> None:
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.fail_at = fail_at
        self.error = error
        self.requested: list[int] = []

    def __getitem__(self, index):
        self.requested.append(index)
        if index == self.fail_at:
            raise self.error
        return self.array[index]


def listing(folder: pathlib.Path) -> list[str]:
    return sorted(os.listdir(folder))


def write_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("napari-mrcz-write")]


@pytest.fixture
def data(rng) -> np.ndarray:
    return rng.integers(-500, 500, size=SHAPE).astype(np.int16)


@pytest.fixture
def existing(tmp_path, rng):
    """A folder holding one previously saved file: (folder, target, its bytes)."""
    folder = tmp_path / "save-here"
    folder.mkdir()
    target = folder / "target.mrcz"
    old = rng.normal(size=(3, 16, 20)).astype(np.float32)
    napari_mrcz.writeMRC(old, target, compressor="zstd", meta={"old": True})
    return folder, target, target.read_bytes()


def assert_untouched(folder: pathlib.Path, target: pathlib.Path, old_bytes: bytes) -> None:
    """The target is byte-identical and nothing else appeared in its folder."""
    assert listing(folder) == [target.name], f"debris left behind: {listing(folder)}"
    assert target.read_bytes() == old_bytes


# --------------------------------------------------------------------------- failed saves


@pytest.mark.parametrize("compressor", [None, "zstd", "lz4"])
@pytest.mark.parametrize("fail_at", [0, 3, 5])
def test_source_error_mid_write_leaves_old_file(existing, data, compressor, fail_at):
    folder, target, old_bytes = existing
    source = FailingSource(data, fail_at, RuntimeError("camera disconnected"))
    with pytest.raises(RuntimeError, match="camera disconnected"):
        napari_mrcz.writeMRC(source, target, compressor=compressor)
    assert fail_at in source.requested
    assert_untouched(folder, target, old_bytes)
    assert not write_threads()


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_source_error_without_previous_file_leaves_nothing(tmp_path, data, compressor):
    target = tmp_path / "new.mrc"
    with pytest.raises(OSError, match="read error"):
        napari_mrcz.writeMRC(
            FailingSource(data, 3, OSError("read error")), target, compressor=compressor
        )
    assert listing(tmp_path) == []


@pytest.mark.parametrize("compressor", [None, "zstd"])
@pytest.mark.parametrize("fail_at", [0, 3])
def test_keyboard_interrupt_leaves_no_debris(existing, data, compressor, fail_at):
    folder, target, old_bytes = existing
    with pytest.raises(KeyboardInterrupt):
        napari_mrcz.writeMRC(
            FailingSource(data, fail_at, KeyboardInterrupt()), target, compressor=compressor
        )
    assert_untouched(folder, target, old_bytes)
    assert not write_threads()


@pytest.mark.parametrize(
    "meta", [{"bad": object()}, {"s": {1, 2}}, {"f": open}], ids=["object", "set", "function"]
)
def test_meta_json_cannot_serialise(existing, data, meta):
    folder, target, old_bytes = existing
    with pytest.raises(TypeError):
        napari_mrcz.writeMRC(data, target, meta=meta, compressor="zstd")
    assert_untouched(folder, target, old_bytes)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, object, np.str_, np.datetime64])
def test_unsupported_dtype(existing, dtype):
    folder, target, old_bytes = existing
    array = np.zeros(SHAPE, dtype="datetime64[s]" if dtype is np.datetime64 else dtype)
    with pytest.raises(TypeError, match="MRC cannot store"):
        napari_mrcz.writeMRC(array, target)
    assert_untouched(folder, target, old_bytes)


def test_unsupported_dtype_keyword(existing, data):
    folder, target, old_bytes = existing
    with pytest.raises(TypeError, match="int64"):
        napari_mrcz.writeMRC(data, target, dtype="int64")
    assert_untouched(folder, target, old_bytes)


@pytest.mark.parametrize("compressor", ["foo", "gzip", "ZSTD2", ""])
def test_unknown_codec(existing, data, compressor):
    folder, target, old_bytes = existing
    with pytest.raises(ValueError, match=r"compressor|cannot write"):
        napari_mrcz.writeMRC(data, target, compressor=compressor)
    assert_untouched(folder, target, old_bytes)


def test_codec_missing_from_installed_blosc(existing, data):
    missing = [
        name
        for name in napari_mrcz.COMPRESSOR_ENUM.values()
        if name and name not in napari_mrcz.AVAILABLE_CODECS
    ]
    if not missing:
        pytest.skip("the installed blosc has every MRCZ codec")
    folder, target, old_bytes = existing
    with pytest.raises(ValueError, match="cannot write"):
        napari_mrcz.writeMRC(data, target, compressor=missing[0])
    assert_untouched(folder, target, old_bytes)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"pixelsize": [1, 2, 3, 4]}, ValueError),
        ({"pixelunits": "furlong"}, ValueError),
        ({"dtype": "uint4", "compressor": "zstd"}, TypeError),
    ],
    ids=["pixelsize", "units", "uint4-compressed"],
)
def test_argument_errors(existing, data, kwargs, error):
    folder, target, old_bytes = existing
    with pytest.raises(error):
        napari_mrcz.writeMRC(data, target, **kwargs)
    assert_untouched(folder, target, old_bytes)


def test_uint4_out_of_range_fails_mid_write(existing):
    """Values above 15 are only found while packing the offending slice."""
    folder, target, old_bytes = existing
    array = np.zeros(SHAPE, dtype=np.uint8)
    array[4, 0, 0] = 16
    with pytest.raises(ValueError, match="0 to 15"):
        napari_mrcz.writeMRC(array, target, dtype="uint4")
    assert_untouched(folder, target, old_bytes)


# --------------------------------------------------------------------------- the file system


def test_read_only_directory(tmp_path, data):
    folder = tmp_path / "read-only"
    folder.mkdir()
    target = folder / "target.mrc"
    napari_mrcz.writeMRC(data, target)
    old_bytes = target.read_bytes()
    folder.chmod(0o555)
    try:
        probe = folder / "probe"
        try:
            probe.touch()
        except PermissionError:
            pass
        else:
            probe.unlink()
            assert os.geteuid() == 0, "chmod 555 did not stop a non-root user writing"
            pytest.skip("running as root: a read-only mode does not stop root writing")
        with pytest.raises(PermissionError) as info:
            napari_mrcz.writeMRC(data + 1, target)
        assert isinstance(info.value, OSError)
        assert_untouched(folder, target, old_bytes)
    finally:
        folder.chmod(0o755)


def test_permission_denied_creating_temporary(existing, data, monkeypatch):
    """As the read-only folder test, but simulated so that it also runs as root."""
    folder, target, old_bytes = existing

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))

    monkeypatch.setattr("napari_mrcz.mrc.write.create_temporary", refuse)
    with pytest.raises(PermissionError, match="Permission denied"):
        napari_mrcz.writeMRC(data, target, compressor="zstd")
    monkeypatch.undo()
    assert_untouched(folder, target, old_bytes)


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_rename_fails(existing, data, monkeypatch, compressor):
    """The complete temporary file cannot replace the target: it is removed, not left."""
    folder, target, old_bytes = existing
    real_replace = os.replace

    def refuse(source, destination, *args, **kwargs):
        if pathlib.Path(destination) == target:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(destination))
        return real_replace(source, destination, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        napari_mrcz.writeMRC(data, target, compressor=compressor)
    monkeypatch.undo()
    assert_untouched(folder, target, old_bytes)


DISK_FULL = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np
    import napari_mrcz
    target, compressor, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = np.random.default_rng(1).normal(size=(8, 64, 64)).astype(np.float32)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        napari_mrcz.writeMRC(data, target, compressor=None if compressor == "none" else compressor)
    except OSError as error:
        print("OSError", error.errno)
    else:
        print("written")
""")


@pytest.mark.parametrize("room", ["early", "last-slice"])
@pytest.mark.parametrize("compressor", ["none", "zstd"])
def test_disk_full_leaves_old_file(existing, tmp_path, compressor, room):
    """The disk fills up during a save: OSError, and the old file is still there intact.

    Simulated with a file-size limit (RLIMIT_FSIZE) in a subprocess. 'early': the limit is
    hit after a few slices. 'last-slice': the limit falls 10 bytes short of the complete
    file, so the last slice's write() is short (writes only part of its bytes) instead of
    failing, exactly as on a full disk.
    """
    folder, target, old_bytes = existing
    data = np.random.default_rng(1).normal(size=(8, 64, 64)).astype(np.float32)
    probe = tmp_path / "probe.mrc"
    napari_mrcz.writeMRC(data, probe, compressor=None if compressor == "none" else compressor)
    full_size = probe.stat().st_size
    probe.unlink()
    limit = 20000 if room == "early" else full_size - 10
    assert len(old_bytes) < limit
    result = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(target), compressor, str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[0] == "OSError", (
        f"writeMRC reported success with only {limit} of {full_size} bytes writable"
    )
    assert result.stdout.split() == ["OSError", str(errno.EFBIG)], result.stdout
    assert_untouched(folder, target, old_bytes)


# --------------------------------------------------------------------------- successful saves


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604, 0o660, 0o755])
@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_overwrite_replaces_and_keeps_permissions(existing, data, mode, compressor):
    folder, target, old_bytes = existing
    target.chmod(mode)
    napari_mrcz.writeMRC(data, target, compressor=compressor)
    assert listing(folder) == [target.name]
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_bytes() != old_bytes
    image, meta = napari_mrcz.readMRC(target)
    np.testing.assert_array_equal(image, data)
    assert "old" not in meta  # the old JSON meta went with the old file


def test_new_file_gets_umask_permissions(tmp_path, data):
    target = tmp_path / "new.mrc"
    napari_mrcz.writeMRC(data, target)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert listing(tmp_path) == ["new.mrc"]


# --------------------------------------------------------------------------- writing with idx


def frame_bytes(raw: bytes, data_offset: int, frame_nbytes: int, index: int) -> bytes:
    start = data_offset + index * frame_nbytes
    return raw[start : start + frame_nbytes]


@pytest.mark.parametrize(("idx", "count"), [(0, 1), (2, 2), (4, 2), (5, 1), (-2, 1), (-1, 1)])
@pytest.mark.parametrize("meta", [None, {"note": "extended header"}])
def test_idx_overwrite_touches_only_written_frames(tmp_path, data, rng, idx, count, meta):
    target = tmp_path / "stack.mrc"
    napari_mrcz.writeMRC(data, target, meta=meta)
    before = target.read_bytes()
    layout = read_layout(target)
    nz, frame_nbytes = layout.nz, layout.slice_nbytes
    new = rng.integers(-500, 500, size=(count, *SHAPE[1:])).astype(np.int16)
    napari_mrcz.writeMRC(new, target, idx=idx)
    after = target.read_bytes()
    start = idx % nz
    assert len(after) == len(before)
    # The extended header is untouched; frames outside [start, start + count) too.
    assert after[HEADER_SIZE : layout.data_offset] == before[HEADER_SIZE : layout.data_offset]
    for index in range(nz):
        if start <= index < start + count:
            continue
        assert frame_bytes(after, layout.data_offset, frame_nbytes, index) == frame_bytes(
            before, layout.data_offset, frame_nbytes, index
        ), f"frame {index}"
    expected = data.copy()
    expected[start : start + count] = new
    image, _ = napari_mrcz.readMRC(target)
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize("endian", ["le", "be"])
def test_idx_append_plain(tmp_path, data, rng, endian):
    target = tmp_path / "stack.mrc"
    napari_mrcz.writeMRC(data, target, endian=endian)
    before = target.read_bytes()
    new = rng.integers(-500, 500, size=(3, *SHAPE[1:])).astype(np.int16)
    napari_mrcz.writeMRC(new, target, idx=SHAPE[0])
    after = target.read_bytes()
    assert after[HEADER_SIZE : len(before)] == before[HEADER_SIZE:]
    image, meta = napari_mrcz.readMRC(target)
    np.testing.assert_array_equal(image, np.concatenate([data, new]))
    assert meta["dimensions"][0] == SHAPE[0] + 3


@pytest.mark.parametrize("compressor", ["zstd", "lz4"])
def test_idx_append_compressed(tmp_path, data, rng, compressor):
    target = tmp_path / "stack.mrcz"
    napari_mrcz.writeMRC(data, target, compressor=compressor, meta={"k": 1})
    expected = data
    for extra in (1, 2, 1):
        before = target.read_bytes()
        new = rng.integers(-500, 500, size=(extra, *SHAPE[1:])).astype(np.int16)
        napari_mrcz.writeMRC(new, target, idx=expected.shape[0])
        after = target.read_bytes()
        # Every byte after the header (JSON and all existing chunks) is unchanged.
        assert after[HEADER_SIZE : len(before)] == before[HEADER_SIZE:]
        expected = np.concatenate([expected, new])
        image, meta = napari_mrcz.readMRC(target)
        np.testing.assert_array_equal(image, expected)
        assert meta["k"] == 1
        assert meta["packedBytes"] == len(after) - read_layout(target).data_offset


def test_idx_inside_compressed_file_is_refused_untouched(tmp_path, data):
    target = tmp_path / "stack.mrcz"
    napari_mrcz.writeMRC(data, target, compressor="zstd")
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="only be appended"):
        napari_mrcz.writeMRC(data[:1], target, idx=2)
    assert target.read_bytes() == before
    assert listing(tmp_path) == ["stack.mrcz"]


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_idx_wrong_frame_shape_is_refused_untouched(tmp_path, data, compressor):
    target = tmp_path / "stack.mrc"
    napari_mrcz.writeMRC(data, target, compressor=compressor)
    before = target.read_bytes()
    with pytest.raises(ValueError, match="dimensions"):
        napari_mrcz.writeMRC(np.zeros((1, 5, 5), np.int16), target, idx=SHAPE[0])
    with pytest.raises(ValueError, match="out of range"):
        napari_mrcz.writeMRC(data[:1], target, idx=SHAPE[0] + 1)
    assert target.read_bytes() == before


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_failed_append_keeps_existing_frames(tmp_path, data, rng, compressor):
    """The source fails on its second frame: the frames already in the file survive."""
    target = tmp_path / "stack.mrc"
    napari_mrcz.writeMRC(data, target, compressor=compressor)
    before = target.read_bytes()
    new = rng.integers(-500, 500, size=(3, *SHAPE[1:])).astype(np.int16)
    with pytest.raises(RuntimeError, match="lost"):
        napari_mrcz.writeMRC(FailingSource(new, 1, RuntimeError("lost")), target, idx=SHAPE[0])
    assert target.read_bytes() == before  # no half-appended slices after the data
    image, _ = napari_mrcz.readMRC(target)
    np.testing.assert_array_equal(image, data)
    assert not write_threads()


def test_a_failed_overwrite_inside_a_file_says_so_and_marks_the_statistics_unknown(
    tmp_path, data, rng
):
    # Slices overwritten in place cannot be taken back: the header must not go on
    # describing data that changed, and the user must hear which slices may have.
    target = tmp_path / "stack.mrc"
    napari_mrcz.writeMRC(data, target)
    size = target.stat().st_size
    new = np.full((4, *SHAPE[1:]), 7, dtype=data.dtype)
    with pytest.raises(RuntimeError, match="lost") as raised:
        napari_mrcz.writeMRC(FailingSource(new, 3, RuntimeError("lost")), target, idx=1)
    assert "z-slices from 1 on may already hold new data" in "".join(raised.value.__notes__)
    assert target.stat().st_size == size
    header = read_layout(str(target)).header
    assert (float(header["dmin"]), float(header["dmax"]), float(header["rms"])) == (0, -1, -1)
    with mrcfile.open(target, permissive=True) as opened:
        np.testing.assert_array_equal(opened.data[0], data[0])  # before idx: untouched


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_an_append_that_runs_out_of_room_names_the_file_and_leaves_it_as_it_was(
    tmp_path, rng, compressor
):
    # A file-size limit stands in for a full disk or quota: the write fails part-way.
    target = tmp_path / "movie.mrc"
    first = rng.integers(-128, 127, size=(2, 512, 512), dtype=np.int8)
    napari_mrcz.writeMRC(first, target, compressor=compressor)
    before = target.read_bytes()
    more = rng.integers(-128, 127, size=(8, 512, 512), dtype=np.int8)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 300_000, hard))
    try:
        with pytest.raises(OSError, match="too large") as raised:
            napari_mrcz.writeMRC(more, target, compressor=compressor, idx=2)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert raised.value.errno == errno.EFBIG
    assert raised.value.filename == str(target)
    assert target.read_bytes() == before
    image, _ = napari_mrcz.readMRC(target)
    np.testing.assert_array_equal(image, first)


# --------------------------------------------------------------------------- concurrency


def concurrency_jobs(rng) -> list[tuple[str, np.ndarray, dict]]:
    """(name, array, writeMRC keywords): compressed and plain, tiny to a few MB."""
    jobs = []
    shapes = [
        (1, 1, 1),
        (3, 1, 7),
        (2, 3, 2),
        (5, 8, 8),
        (4, 64, 64),
        (2, 1, 4000),
        (3, 256, 256),
        (6, 33, 17),
        (1, 512, 300),
    ]
    dtypes = [
        np.int16,
        np.float32,
        np.uint16,
        np.int8,
        np.float32,
        np.int32,
        np.float32,
        np.uint16,
        np.complex64,
    ]
    codecs = ["zstd", "lz4", "zstd", "lz4", "zstd", "lz4", "zstd", None, "lz4"]
    for number, (shape, dtype, codec) in enumerate(zip(shapes, dtypes, codecs, strict=True)):
        values = rng.normal(scale=50, size=shape)
        if np.dtype(dtype).kind == "c":
            values = values + 1j * rng.normal(size=shape)
        array = (
            values.astype(dtype) if np.dtype(dtype).kind in "fc" else np.abs(values).astype(dtype)
        )
        for clevel in (1, 5):
            jobs.append(
                (f"job{number}-c{clevel}.mrcz", array, {"compressor": codec, "clevel": clevel})
            )
    return jobs


def run_concurrently(jobs, folder: pathlib.Path, extra: dict) -> None:
    """Half the jobs through asyncWriteMRC, half on plain threads, all released at once."""
    barrier = threading.Barrier(len(jobs) // 2 + 1)

    def on_thread(name, array, kwargs):
        barrier.wait()
        napari_mrcz.writeMRC(array, folder / name, **kwargs, **extra)

    futures = []
    with ThreadPoolExecutor(max_workers=len(jobs) // 2 + 1) as pool:
        threaded = [pool.submit(on_thread, *job) for job in jobs[1::2]]
        barrier.wait()
        futures = [
            napari_mrcz.asyncWriteMRC(array, folder / name, **kwargs, **extra)
            for name, array, kwargs in jobs[0::2]
        ]
        for future in [*threaded, *futures]:
            assert future.result(timeout=120) is None


@pytest.mark.parametrize("rounds", [3])
def test_concurrent_saves_match_sequential_single_threaded_blosc(tmp_path, rng, rounds):
    """With one blosc thread per call, concurrent saves are byte-identical to serial ones.

    This isolates the engine's own shared state (c-blosc's global blocksize, guarded by a
    lock, the writer threads, the async executor) from c-blosc's block ordering (below).
    """
    jobs = concurrency_jobs(rng)
    serial = tmp_path / "serial"
    serial.mkdir()
    for name, array, kwargs in jobs:
        napari_mrcz.writeMRC(array, serial / name, n_threads=1, **kwargs)
    for round_number in range(rounds):
        folder = tmp_path / f"concurrent-{round_number}"
        folder.mkdir()
        run_concurrently(jobs, folder, {"n_threads": 1})
        assert listing(folder) == listing(serial)
        for name, _, _ in jobs:
            assert (folder / name).read_bytes() == (serial / name).read_bytes(), name


def test_concurrent_saves_match_sequential(tmp_path, rng):
    """The brief's property with default settings: concurrent == sequential, byte for byte."""
    jobs = concurrency_jobs(rng)
    serial = tmp_path / "serial"
    serial.mkdir()
    for name, array, kwargs in jobs:
        napari_mrcz.writeMRC(array, serial / name, **kwargs)
    folder = tmp_path / "concurrent"
    folder.mkdir()
    run_concurrently(jobs, folder, {})
    assert listing(folder) == listing(serial)
    for name, array, _ in jobs:
        image, _ = napari_mrcz.readMRC(folder / name)
        np.testing.assert_array_equal(np.asarray(image).reshape(array.shape), array)
    differing = [
        name for name, _, _ in jobs if (folder / name).read_bytes() != (serial / name).read_bytes()
    ]
    assert not differing, f"bytes differ from the sequential save: {differing}"


def test_same_save_twice_gives_same_bytes(tmp_path, rng):
    """Saving the same array with the same settings is reproducible, whatever n_threads.

    Slices of 256 KiB span several blosc blocks, which c-blosc compresses in parallel when
    it has more than one thread.
    """
    array = rng.normal(size=(3, 256, 256)).astype(np.float32)
    results = {}
    for n_threads in (None, 1, 2, 4):
        for attempt in range(3):
            target = tmp_path / f"t{n_threads}-{attempt}.mrcz"
            napari_mrcz.writeMRC(array, target, compressor="zstd", n_threads=n_threads)
            results[target.name] = target.read_bytes()
    distinct = set(results.values())
    assert len(distinct) == 1, (
        f"{len(distinct)} different files from {len(results)} identical saves"
    )


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_slices_are_not_appended_over_bytes_after_the_data(tmp_path, data, compressor):
    """Bytes some program left after the data are never overwritten by an append."""
    target = tmp_path / "stack.mrc"
    napari_mrcz.writeMRC(data, target, compressor=compressor)
    with open(target, "ab") as handle:
        handle.write(b"another program's trailer")
    before = target.read_bytes()
    with pytest.raises(ValueError, match="25 bytes after its data"):
        napari_mrcz.writeMRC(data[:1], target, idx=SHAPE[0])
    assert target.read_bytes() == before
    if compressor is None:  # slices inside the data can still be rewritten in place
        napari_mrcz.writeMRC(data[:1] + 1, target, idx=0)
        assert target.read_bytes().endswith(b"another program's trailer")
