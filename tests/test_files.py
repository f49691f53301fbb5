"""What a path is before a byte of it is parsed, and what its first bytes look like.

Every reader opens its input through open_regular: a FIFO, socket, device or folder
named like an EM file is refused at once with one MRCZFormatError naming it, never
waited on. Writers refuse targets that are no regular file (check_target), make
output folders of any depth (make_folders), and say when an input changed while it
was read (change_since). describe_content turns a file that is not ours into words;
told_about names the user's file, not our hidden temporary, in a write error.

(tests/robustness/test_not_files.py drives these inputs through the readers and the
command line; here each function is held to its own contract.)
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import fcntl
import gzip
import io
import os
import pathlib
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
import zipfile

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.files import (
    OWNER_LOCK_PREFIX,
    OWNER_LOCK_SUFFIX,
    TEMPORARY_PREFIX,
    TEMPORARY_SUFFIX,
    change_since,
    check_regular,
    check_target,
    describe_content,
    make_folders,
    not_regular,
    open_regular,
    told_about,
)

#: A RELION STAR file, the text most often found under an .mrc name.
STAR = b"\ndata_\n\nloop_\n_rlnImageName #1\n_rlnMicrographName #2\n" + b"".join(
    b"%06d@Particles/mic_001.mrcs Micrographs/mic_001.mrc\n" % n for n in range(80)
)


@contextlib.contextmanager
def deadline(seconds: int = 5):
    """Fail with TimeoutError instead of hanging if the block blocks (on a FIFO)."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: blocked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def short_tmp():
    """A folder with a short path: a socket's path is limited to about 100 bytes."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="files-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def specials(short_tmp) -> dict[str, tuple[pathlib.Path, str]]:
    """Paths named like EM files that are no regular file: name -> (path, what it is)."""
    fifo = short_tmp / "fifo.mrc"
    os.mkfifo(fifo)
    sock = short_tmp / "socket.mrc"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    server.close()
    zero = short_tmp / "zero.mrc"
    zero.symlink_to("/dev/zero")
    folder = short_tmp / "folder.dm4"
    folder.mkdir()
    return {
        "fifo": (fifo, "a FIFO (named pipe)"),
        "socket": (sock, "a socket"),
        "device": (zero, "a character device"),
        "folder": (folder, "a folder"),
    }


@pytest.fixture
def regular(tmp_path, rng) -> tuple[pathlib.Path, bytes]:
    content = rng.integers(0, 256, size=3000, dtype=np.uint8).tobytes()
    path = tmp_path / "movie.mrc"
    path.write_bytes(content)
    return path, content


# --------------------------------------------------------------------- not_regular


def test_a_regular_file_is_nothing_special(regular):
    assert not_regular(os.stat(regular[0]).st_mode) is None


def test_each_special_file_is_named_for_what_it_is(specials):
    for path, kind in specials.values():
        assert not_regular(os.stat(path).st_mode) == kind, path


def test_a_block_device_is_named_too():
    """No block device can be made here: its mode, as os.stat gives it, is built."""
    assert not_regular(stat.S_IFBLK | 0o660) == "a block device"


def test_a_link_itself_is_not_a_regular_file(tmp_path, regular):
    link = tmp_path / "link.mrc"
    link.symlink_to(regular[0])
    assert not_regular(os.lstat(link).st_mode) == "not a regular file"


# --------------------------------------------------------------------- check_regular


def test_check_regular_gives_the_status_of_a_regular_file(regular):
    path, content = regular
    status = check_regular(path)
    assert status.st_size == len(content)
    assert status.st_ino == os.stat(path).st_ino


def test_check_regular_follows_a_link_to_a_regular_file(tmp_path, regular):
    link = tmp_path / "link.mrc"
    link.symlink_to(regular[0])
    assert check_regular(link).st_ino == os.stat(regular[0]).st_ino


def test_check_regular_refuses_each_special_file_naming_it(specials):
    for path, kind in specials.values():
        with deadline(), pytest.raises(MRCZFormatError) as caught:
            check_regular(path)
        assert type(caught.value) is MRCZFormatError
        assert caught.value.path == str(path)
        assert caught.value.problem == f"is {kind}, not a file that can be read"


def test_check_regular_says_a_missing_file_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        check_regular(tmp_path / "absent.mrc")


# --------------------------------------------------------------------- open_regular


def test_open_regular_reads_the_bytes_as_they_are(tmp_path):
    """Binary mode: line ends and zeros come through untranslated."""
    content = b"MAP \r\n\x00\x1a\r" * 100
    path = tmp_path / "bytes.mrc"
    path.write_bytes(content)
    with open_regular(path) as handle:
        assert handle.read() == content


def test_open_regular_gives_an_ordinary_blocking_file(regular):
    """Opened without blocking, it is handed back blocking, as open() would give it."""
    path, content = regular
    with open_regular(path) as handle:
        assert not fcntl.fcntl(handle.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
        handle.seek(1000)
        assert handle.read(10) == content[1000:1010]
        assert handle.tell() == 1010


def test_open_regular_honours_the_buffering_asked_for(regular):
    path, content = regular
    with open_regular(path, buffering=0) as raw:
        assert isinstance(raw, io.FileIO)
        assert raw.read(16) == content[:16]
    with open_regular(path) as buffered:
        assert isinstance(buffered, io.BufferedReader)


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "folder"])
def test_open_regular_refuses_a_special_file_without_blocking(kind, specials):
    """A FIFO with no writer would block a plain open(); /dev/zero would never end."""
    path, what = specials[kind]
    with deadline(), pytest.raises(MRCZFormatError, match="not a file that can be read") as caught:
        open_regular(path)
    assert caught.value.path == str(path)
    assert what in caught.value.problem


def test_a_fifo_is_refused_without_blocking_even_with_a_writer_waiting(specials):
    """A FIFO that some program is writing to is refused too, and its writer not fed."""
    fifo, _ = specials["fifo"]
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer open at once
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(writer, b"MAP data from a pipe")
        with deadline(), pytest.raises(MRCZFormatError, match=r"a FIFO \(named pipe\)"):
            open_regular(fifo)
        assert os.read(reader, 100) == b"MAP data from a pipe"  # nothing was consumed
    finally:
        os.close(writer)
        os.close(reader)


def test_open_regular_says_a_missing_file_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "absent.mrc")


def test_open_regular_leaves_no_descriptor_open_when_it_refuses(specials):
    before = len(os.listdir("/proc/self/fd"))
    for path, _ in specials.values():
        with deadline(), pytest.raises(MRCZFormatError):
            open_regular(path)
    assert len(os.listdir("/proc/self/fd")) == before


# --------------------------------------------------------------------- check_target


def test_check_target_lets_a_new_or_existing_file_be_written(tmp_path, regular):
    check_target(tmp_path / "new.mrcz")
    check_target(regular[0])
    link = tmp_path / "link.mrcz"
    link.symlink_to(regular[0])
    check_target(link)


def test_check_target_leaves_a_missing_folder_to_the_write(tmp_path, regular):
    """The write says what is wrong: its folder missing, or a file where a folder is."""
    check_target(tmp_path / "missing" / "out.mrcz")
    check_target(regular[0] / "out.mrcz")


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "folder"])
def test_check_target_refuses_to_write_over_a_special_file(kind, specials):
    path, what = specials[kind]
    with deadline(), pytest.raises(MRCZFormatError) as caught:
        check_target(path)
    assert caught.value.path == str(path)
    assert caught.value.problem == f"is {what}: no file is written in its place"
    assert os.path.lexists(path)


def test_check_target_names_the_file_as_the_user_knows_it(specials):
    path, _ = specials["folder"]
    with pytest.raises(MRCZFormatError) as caught:
        check_target(path, name="out/folder.dm4")
    assert caught.value.path == "out/folder.dm4"
    assert str(caught.value).startswith("out/folder.dm4: is a folder")


# --------------------------------------------------------------------- make_folders


def test_make_folders_makes_every_missing_parent(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    make_folders(target)
    assert target.is_dir()


def test_make_folders_of_an_existing_folder_changes_nothing(tmp_path):
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "file.mrc").write_bytes(b"x")
    make_folders(tmp_path / "kept")
    make_folders(tmp_path)
    assert os.listdir(tmp_path / "kept") == ["file.mrc"]


def test_make_folders_takes_a_path_relative_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_folders("out/run1")
    assert (tmp_path / "out" / "run1").is_dir()


def _remove_chain(top: pathlib.Path, name: str, depth: int) -> None:
    """Remove ``top/name/name/...`` (``depth`` levels) one level at a time, through
    descriptors: a recursive removal fails as os.makedirs does, and long paths are slow."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    descriptor = os.open(top, flags)
    for _ in range(depth):
        deeper = os.open(name, flags, dir_fd=descriptor)
        os.close(descriptor)
        descriptor = deeper
    for _ in range(depth):
        parent = os.open("..", flags, dir_fd=descriptor)
        os.close(descriptor)
        os.rmdir(name, dir_fd=parent)
        descriptor = parent
    os.close(descriptor)


def test_make_folders_goes_deeper_than_python_can_recurse(tmp_path):
    """An input tree copied under an output folder can be deeper than os.makedirs goes."""
    depth = 1100
    relative = os.path.join(*["d"] * depth)
    make_folders(tmp_path / relative)
    try:
        assert (tmp_path / relative).is_dir()
        assert not os.listdir(tmp_path / relative)
    finally:
        _remove_chain(tmp_path, "d", depth)
    assert not (tmp_path / "d").exists()


def test_make_folders_refuses_a_file_in_the_way(regular):
    path, content = regular
    with pytest.raises(FileExistsError):
        make_folders(path)
    with pytest.raises(FileExistsError):
        make_folders(path / "sub")
    assert path.read_bytes() == content


def test_make_folders_from_many_threads_at_once_all_succeed(tmp_path):
    """Workers of one run making the same output folders race; none of them fails."""
    target = tmp_path / "out" / "grid1" / "square3" / "movies"
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def make() -> None:
        start.wait()
        try:
            make_folders(target)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert target.is_dir()


# --------------------------------------------------------------------- change_since


def test_an_untouched_file_has_not_changed(regular):
    path, _ = regular
    assert change_since(path, os.stat(path)) is None


def test_a_removed_file_is_said_to_be_removed(regular):
    path, _ = regular
    before = os.stat(path)
    path.unlink()
    assert change_since(path, before) == "it was removed"


def test_a_file_put_in_its_place_is_told_apart_even_if_identical(tmp_path, regular):
    path, content = regular
    before = os.stat(path)
    twin = tmp_path / "twin"
    twin.write_bytes(content)
    os.utime(twin, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(twin, path)
    assert change_since(path, before) == "another file was put in its place"


def test_a_growing_file_says_how_much_it_grew(regular):
    path, content = regular
    before = os.stat(path)
    with open(path, "ab") as handle:
        handle.write(b"\0" * 1000)
    grown = f"it went from {len(content)} to {len(content) + 1000} bytes"
    assert change_since(path, before) == grown


def test_a_file_written_in_place_at_the_same_size_has_changed(regular):
    path, _ = regular
    before = os.stat(path)
    with open(path, "r+b") as handle:
        handle.write(b"MRCZ")
    later = before.st_mtime_ns + 2_000_000_000
    os.utime(path, ns=(later, later))
    assert change_since(path, before) == "it was written to, or put in place anew"


def test_a_modification_time_set_back_does_not_hide_a_change(regular):
    """``touch -r`` or ``rsync -t`` restore the time; the change time still moves."""
    path, _ = regular
    before = os.stat(path)
    with open(path, "r+b") as handle:
        handle.write(bytes(16))
    # File times advance by the kernel's clock tick: set the time back until the
    # change time has moved past the one ``before`` holds.
    for _ in range(10_000):
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        if os.stat(path).st_ctime_ns != before.st_ctime_ns:
            break
        time.sleep(0.001)
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert change_since(path, before) == "it was written to, or put in place anew"


# --------------------------------------------------------------------- describe_content


def _tiff(byteorder: str) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((8, 8), np.uint16), byteorder=byteorder)
    return buffer.getvalue()


def _hdf5(folder: pathlib.Path) -> bytes:
    with h5py.File(folder / "data.h5", "w") as handle:
        handle["image"] = np.arange(64, dtype=np.float32).reshape(8, 8)
    return (folder / "data.h5").read_bytes()


def _image(format_name: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(buffer, format=format_name)
    return buffer.getvalue()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("movie.mrc", b"MAP " * 100)
    return buffer.getvalue()


def test_images_and_containers_are_named_for_what_they_are(tmp_path):
    assert describe_content(_tiff("<")) == "it is a TIFF image"
    assert describe_content(_tiff(">")) == "it is a TIFF image"
    assert describe_content(_hdf5(tmp_path)) == "it is an HDF5 file"
    assert describe_content(_image("PNG")) == "it is a PNG image"
    assert describe_content(_image("JPEG")) == "it is a JPEG image"
    assert describe_content(_zip()) == "it is a ZIP archive"


def test_a_compressed_file_says_how_to_name_it_to_be_read():
    gzipped = describe_content(gzip.compress(STAR))
    assert gzipped.startswith("it is gzip-compressed: name it .gz")
    bzipped = describe_content(bz2.compress(STAR))
    assert bzipped.startswith("it is bzip2-compressed: name it .bz2")


def test_text_is_shown_with_its_spaces_collapsed_and_cut_short():
    description = describe_content(STAR)
    shown = "data_ loop_ _rlnImageName #1 _rlnMicrographName #2 000000@Pa"
    assert description == f"it starts with text: {shown + '...'!r}"


def test_a_short_text_is_shown_whole():
    assert describe_content(b"hello\tworld\n") == "it starts with text: 'hello world'"


@pytest.mark.parametrize(("char", "present"), [("é", 1), ("€", 1), ("€", 2), ("🔬", 3)])
def test_text_cut_inside_a_character_at_the_end_of_the_head_is_still_text(char, present):
    """The 4 KiB looked at may end in the middle of a multi-byte character."""
    content = b"a" * (4096 - present) + char.encode() + " résolution µm".encode()
    with pytest.raises(UnicodeDecodeError):
        content[:4096].decode("utf-8")
    assert describe_content(content).startswith("it starts with text: 'aaaa")


def test_only_the_first_four_kib_are_looked_at():
    assert describe_content(bytes(10_000)) == (
        "its first 4096 bytes are all zero (never written, or wiped)"
    )
    assert describe_content(b"plain words " * 400 + b"\x00\x01\x02" * 100).startswith(
        "it starts with text: 'plain words"
    )


def test_a_file_of_zeros_says_how_many_it_looked_at():
    assert describe_content(bytes(1024)) == (
        "its first 1024 bytes are all zero (never written, or wiped)"
    )


def test_binary_data_of_unknown_kind_is_not_described(rng):
    assert describe_content(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()) is None
    assert describe_content(b"\x00\x00MAP \x01\x02\x03\x04") is None  # zeros, then binary
    assert describe_content(b"") is None


def test_text_with_control_characters_is_not_called_text():
    assert describe_content(b"name\x01value\x02") is None


def test_any_bytes_like_head_is_accepted():
    head = bytearray(_tiff("<"))
    assert describe_content(head) == "it is a TIFF image"
    assert describe_content(memoryview(STAR)) == describe_content(STAR)


# --------------------------------------------------------------------- told_about


def _error_opening(path: pathlib.Path) -> OSError:
    try:
        os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except OSError as error:
        return error
    raise AssertionError(f"{path} could be opened")


def test_an_error_about_our_temporary_file_names_the_users_file(tmp_path):
    (tmp_path / "out").mkdir()
    temporary = tmp_path / "out" / f"{TEMPORARY_PREFIX}abc123{TEMPORARY_SUFFIX}"
    temporary.write_bytes(b"")
    error = _error_opening(temporary)
    shown = str(tmp_path / "out" / "movie.mrcz")
    told = told_about(error, shown)
    assert type(told) is FileExistsError
    assert told.filename == shown
    assert told.errno == errno.EEXIST
    assert TEMPORARY_SUFFIX not in str(told)


def test_a_missing_output_folder_is_said_to_be_missing(tmp_path):
    missing = tmp_path / "no-such-folder"
    error = _error_opening(missing / f"{TEMPORARY_PREFIX}x{TEMPORARY_SUFFIX}")
    shown = str(missing / "movie.mrcz")
    told = told_about(error, shown)
    assert isinstance(told, FileNotFoundError)
    assert told.filename == shown
    assert f"the folder {missing} does not exist" in str(told)


def test_an_error_about_our_owner_lock_names_the_users_file(tmp_path):
    lock = tmp_path / "gone" / f"{OWNER_LOCK_PREFIX}token{OWNER_LOCK_SUFFIX}"
    error = _error_opening(lock)
    told = told_about(error, str(tmp_path / "gone" / "map.mrc"))
    assert told.filename == str(tmp_path / "gone" / "map.mrc")
    assert OWNER_LOCK_PREFIX not in str(told)


def test_a_rename_of_our_temporary_names_the_users_file(tmp_path):
    """os.replace names two files; the temporary may be either of them."""
    temporary = tmp_path / f"{TEMPORARY_PREFIX}y{TEMPORARY_SUFFIX}"
    try:
        os.replace(temporary, tmp_path / "map.mrc")
    except FileNotFoundError as caught:
        error = caught
    told = told_about(error, str(tmp_path / "map.mrc"))
    assert told.filename == str(tmp_path / "map.mrc")
    assert TEMPORARY_SUFFIX not in str(told)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_a_full_disk_is_told_about_the_file_being_written(code, tmp_path):
    """A full disk or quota names no file: the message says which save it stopped."""
    error = OSError(code, os.strerror(code))
    shown = str(tmp_path / "movie.mrcz")
    told = told_about(error, shown)
    assert told.errno == code
    assert told.filename == shown
    assert shown in str(told)


def test_an_error_about_another_file_is_left_as_it_is(tmp_path):
    """An error reading the input names the input: it is not the output's to claim."""
    error = _error_opening(tmp_path)  # a folder: exists
    assert told_about(error, str(tmp_path / "out.mrcz")) is error
    unrelated = OSError(errno.EIO, os.strerror(errno.EIO))
    assert told_about(unrelated, str(tmp_path / "out.mrcz")) is unrelated
