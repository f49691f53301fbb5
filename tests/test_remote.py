"""Files on a web server and an object store, read lazily and economically.

Real servers on 127.0.0.1 (tests/servers.py): an HTTP server with byte ranges and
moto's S3 server. The tests count the requests and bytes the servers answer, and
compare every read with the same file read from disk.
"""

import math
import pickle
import sys

import mrcfile
import mrcz as python_mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.errors import MRCZFormatError, RemoteFileError
from napari_mrcz.mrc import chunk_index
from napari_mrcz.remote import HEAD_BYTES, RemoteFile, is_url, redact

from tests.helpers import SHARED_DATA
from tests.servers import RangeServer, S3Server

#: Real files of ../shared/data read from the servers (small: one of each kind).
REAL_FILES = ["cryodrgn_50S-vol.mrc", "leginon_edge.mrc", "tomodrgn_Unt_050_12.00A_000001.mrcs"]


@pytest.fixture(scope="module")
def http():
    server = RangeServer()
    yield server
    server.close()


@pytest.fixture
def served(http):
    """Put a local file on the HTTP server; return its address. Counts start afresh."""

    def serve(path, name=None):
        name = name or path.name
        http.files[f"/{name}"] = path.read_bytes()
        http.forget()
        return http.url(f"/{name}")

    return serve


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    server.filesystem().mkdir("grids")
    yield server
    server.close()


@pytest.fixture(scope="module")
def movie():
    """Eight 2048 x 2048 frames of counts, as a movie's: about 2 MB a compressed chunk."""
    rng = np.random.default_rng(20261207)
    return rng.poisson(1.0, (8, 2048, 2048)).astype(np.int16)


def body_bytes(server):
    return sum(request.body_bytes for request in server.requests)


def chunk_bytes(path, index):
    with napari_mrcz.open_lazy(path) as local:
        offsets = local._reader.chunk_offsets
        return int(offsets[index + 1] - offsets[index]), local.layout.data_offset


def test_addresses_are_told_from_paths():
    assert is_url("https://ftp.ebi.ac.uk/empiar/a.mrc")
    assert is_url("s3://bucket/run1/a.mrcz")
    assert not is_url("/data/a.mrc")
    assert not is_url("file:///data/a.mrc")
    assert not is_url("C:\\data\\a.mrc")
    assert not is_url(b"s3://x")


@pytest.mark.parametrize(
    "address",
    [
        "https://alice:hunter2@example.org/a.mrc?X-Amz-Signature=abc123",
        "http://alice:hun/ter2@example.org/a.mrc",  # not encoded, as users paste them
        "http://alice:hun#ter2@example.org/a.mrc#abc123",
    ],
)
def test_secrets_are_left_out_of_the_name_shown(address):
    shown = redact(address)
    assert "ter2" not in shown
    assert "abc123" not in shown
    assert shown.startswith("http")
    assert "alice:***@example.org/a.mrc" in shown


def test_our_mrcz_shows_its_middle_slice_after_two_requests(tmp_path, served, http, movie):
    """Our files record their chunk sizes: no walk over the chunk headers."""
    path = tmp_path / "movie.mrcz"
    napari_mrcz.writeMRC(movie, path, compressor="zstd", clevel=1, meta={"voltage": 300})
    url = served(path)
    with napari_mrcz.open_lazy(url) as remote:
        middle = remote[4]
    assert np.array_equal(middle, movie[4])
    chunk, data_offset = chunk_bytes(path, 4)
    assert len(http.requests) <= 3
    assert [request.method for request in http.requests] == ["GET", "GET"]
    assert body_bytes(http) < 1.1 * (data_offset + chunk)


def test_plain_mrc_shows_a_slice_after_two_requests(tmp_path, served, http, movie):
    path = tmp_path / "movie.mrc"
    napari_mrcz.writeMRC(movie, path)
    url = served(path)
    with napari_mrcz.open_lazy(url) as remote:
        assert remote.shape == movie.shape
        assert remote.dtype == movie.dtype
        assert np.array_equal(remote[5], movie[5])
    assert len(http.requests) <= 2
    assert body_bytes(http) <= HEAD_BYTES + movie[5].nbytes


def test_other_writers_mrcz_is_walked_in_large_blocks(tmp_path, served, http, monkeypatch, rng):
    """python-mrcz records no chunk sizes: the headers are walked block by block."""
    stack = rng.integers(0, 50, (1000, 32, 32)).astype(np.int16)
    path = tmp_path / "particles.mrcz"
    python_mrcz.writeMRC(stack, str(path), compressor="lz4", clevel=1)
    block = 100_000
    monkeypatch.setattr(chunk_index, "WALK_BLOCK_BYTES", block)
    url = served(path)
    with napari_mrcz.open_lazy(url) as remote, napari_mrcz.open_lazy(path) as local:
        opened = len(http.requests)
        assert np.array_equal(remote._reader.chunk_offsets, local._reader.chunk_offsets)
        assert np.array_equal(remote[500], stack[500])
        assert np.array_equal(remote[10:990], stack[10:990])
    size = path.stat().st_size
    assert opened <= 1 + math.ceil(size / block)


def test_a_run_of_slices_comes_in_a_few_requests_at_once(tmp_path, served, http, movie):
    path = tmp_path / "movie.mrcz"
    napari_mrcz.writeMRC(movie, path, compressor="lz4", clevel=1, meta={})
    url = served(path)
    with napari_mrcz.open_lazy(url) as remote:
        http.forget()
        assert np.array_equal(remote[1:7], movie[1:7])
    assert 1 <= len(http.requests) <= 6


def test_whole_reads_give_what_the_local_file_gives(tmp_path, served, movie):
    path = tmp_path / "movie.mrcz"
    napari_mrcz.writeMRC(movie[:3], path, compressor="zstd", pixelsize=[2.5, 1.25, 1.25])
    image, meta = napari_mrcz.readMRC(served(path))
    local_image, local_meta = napari_mrcz.readMRC(path)
    assert np.array_equal(image, local_image)
    assert np.allclose(meta["pixelsize"], local_meta["pixelsize"])
    assert meta["bloscFormat"] == local_meta["bloscFormat"]
    one, _ = napari_mrcz.readMRC(served(path), idx=2)
    assert np.array_equal(one, movie[2])


def test_dask_reads_a_file_on_a_server(tmp_path, served, movie):
    path = tmp_path / "movie.mrc"
    napari_mrcz.writeMRC(movie[:4], path)
    array = napari_mrcz.to_dask(served(path))
    assert array.shape == (4, 2048, 2048)
    assert np.array_equal(array[1:3].compute(), movie[1:3])


def test_a_pickled_copy_reads_the_same_file(tmp_path, served, movie):
    path = tmp_path / "movie.mrcz"
    napari_mrcz.writeMRC(movie[:3], path, compressor="lz4", meta={})
    with napari_mrcz.open_lazy(served(path)) as remote:
        copy = pickle.loads(pickle.dumps(remote))
        assert np.array_equal(copy[2], movie[2])
        copy.close()


@pytest.mark.real_data
@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_read_from_the_server_as_from_disk(name, served, shared_data):
    path = SHARED_DATA / "mrc" / name
    with napari_mrcz.open_lazy(served(path)) as remote:
        data = np.asarray(remote)
    assert np.array_equal(data, mrcfile.read(path).reshape(data.shape))


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("/missing.mrc", "no such file on the server (404)"),
        ("/forbidden.mrc", "access denied (403)"),
        ("/loop.mrc", "redirects in a loop"),
    ],
)
def test_server_faults_name_the_file_and_the_problem(http, address, problem):
    with pytest.raises(RemoteFileError) as raised:
        napari_mrcz.open_lazy(http.url(address))
    assert str(raised.value).startswith(http.url(address))
    assert problem in str(raised.value)


def test_a_server_that_stops_mid_read_is_told(tmp_path, served, http, movie):
    path = tmp_path / "cut.mrc"
    napari_mrcz.writeMRC(movie[:2], path)
    url = served(path)
    with napari_mrcz.open_lazy(url) as remote:
        http.cut_short.add("/cut.mrc")
        try:
            with pytest.raises(RemoteFileError, match="stopped sending in the middle"):
                remote[1]
        finally:
            http.cut_short.discard("/cut.mrc")


def test_a_silent_server_times_out(tmp_path, served, http, movie):
    import aiohttp

    path = tmp_path / "slow.mrc"
    napari_mrcz.writeMRC(movie[:1], path)
    url = served(path)
    http.delay_s = 2.0
    try:
        options = {"client_kwargs": {"timeout": aiohttp.ClientTimeout(sock_read=0.3)}}
        with pytest.raises(RemoteFileError, match="did not answer in time"):
            RemoteFile(url, options)
    finally:
        http.delay_s = 0.0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "too short|empty|0 bytes"),
        (b"this is a text file, not an image\n" * 40, "text"),
    ],
    ids=["zero-length", "text"],
)
def test_damaged_files_on_a_server_are_refused_clearly(tmp_path, served, content, problem):
    path = tmp_path / "bad.mrc"
    path.write_bytes(content)
    url = served(path)
    with pytest.raises(MRCZFormatError, match=problem) as raised:
        napari_mrcz.open_lazy(url)
    assert raised.value.path == url


def test_an_object_shorter_than_its_header_says(tmp_path, served, movie):
    path = tmp_path / "short.mrcz"
    napari_mrcz.writeMRC(movie[:3], path, compressor="lz4", meta={})
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 1000)
    with pytest.raises(MRCZFormatError, match=r"truncated|cannot fit|past the end|ends"):
        napari_mrcz.open_lazy(served(path))[2]


def test_passwords_and_signatures_stay_out_of_messages(http):
    url = http.url("/missing.mrc").replace("http://", "http://alice:hunter2@") + "?sig=abc123"
    with pytest.raises(RemoteFileError) as raised:
        napari_mrcz.open_lazy(url)
    assert "hunter2" not in str(raised.value)
    assert "abc123" not in str(raised.value)


def test_a_server_that_does_not_say_the_size_in_its_ranges(tmp_path, served, http, movie):
    """``Content-Range: bytes 0-65535/*`` (RFC 9110): the size is asked for instead."""
    path = tmp_path / "sizeless.mrc"
    napari_mrcz.writeMRC(movie[:2], path)
    url = served(path)
    http.sizeless.add("/sizeless.mrc")
    try:
        with napari_mrcz.open_lazy(url) as remote:
            assert np.array_equal(remote[1], movie[1])
    finally:
        http.sizeless.discard("/sizeless.mrc")
    assert [request.method for request in http.requests][:2] == ["GET", "HEAD"]


def test_plain_data_comes_in_requests_of_a_few_mib(tmp_path, served, http, movie):
    """A whole read holds one request's bytes per thread, not a copy of the file."""
    from napari_mrcz.mrc.slices import REMOTE_REQUEST_BYTES

    path = tmp_path / "movie.mrc"
    napari_mrcz.writeMRC(movie, path)
    with napari_mrcz.open_lazy(served(path)) as remote:
        http.forget()
        assert np.array_equal(np.asarray(remote), movie)
    assert len(http.requests) >= movie.nbytes // REMOTE_REQUEST_BYTES
    assert max(request.body_bytes for request in http.requests) <= REMOTE_REQUEST_BYTES


def _read_in_a_child(lazy, queue):
    queue.put(int(lazy[1].sum()))


def test_a_forked_process_reads_a_file_opened_before(tmp_path, served, movie):
    """fsspec's file systems are not fork-safe: the child makes its own."""
    import multiprocessing

    path = tmp_path / "movie.mrcz"
    napari_mrcz.writeMRC(movie[:2], path, compressor="lz4", meta={})
    with napari_mrcz.open_lazy(served(path)) as remote:
        remote[0]
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_read_in_a_child, args=(remote, queue))
        child.start()
        child.join(60)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == movie[1].sum()


@pytest.mark.parametrize("name", ["movie.mrc.gz", "movie.mrc.bz2?sig=abc123", "image.dm4"])
def test_files_read_from_a_local_disk_only_say_so(http, name):
    url = http.url(f"/{name}")
    for open_it in (napari_mrcz.open_lazy, napari_mrcz.readMRC, napari_mrcz.to_dask):
        with pytest.raises(MRCZFormatError, match="download it first") as raised:
            open_it(url)
        assert "abc123" not in str(raised.value)


def test_without_credentials_the_message_says_where_they_go(s3, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    options = {"endpoint_url": s3.endpoint, "skip_instance_cache": True}
    with pytest.raises(RemoteFileError, match="no credentials found"):
        napari_mrcz.open_lazy("s3://grids/any.mrc", storage_options=options)


def test_s3_requests_time_out_and_are_retried_once(s3):
    """botocore's defaults wait minutes for an endpoint that hangs."""
    from napari_mrcz import remote

    filesystem, _ = remote._filesystem("s3://grids/x", {"skip_instance_cache": True})
    config = filesystem.config_kwargs
    assert config["retries"] == {"max_attempts": 2}
    assert config["read_timeout"] == config["connect_timeout"] == 60.0


def test_without_fsspec_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(RemoteFileError, match=r"pip install 'napari-mrcz\[remote\]'"):
        napari_mrcz.open_lazy("https://example.org/a.mrc")


def test_dm_files_on_a_server_are_refused_with_what_to_do(http):
    with pytest.raises(MRCZFormatError, match="download it first"):
        napari_mrcz.to_dask(http.url("/image.dm4"))


def test_s3_objects_read_as_local_files(tmp_path, s3, movie):
    path = tmp_path / "movie.mrcz"
    napari_mrcz.writeMRC(movie[:3], path, compressor="zstd", meta={})
    s3.filesystem().put_file(str(path), "grids/run1/movie.mrcz")
    with napari_mrcz.open_lazy(
        "s3://grids/run1/movie.mrcz", storage_options=s3.options()
    ) as remote:
        assert np.array_equal(remote[1], movie[1])
        assert np.array_equal(np.asarray(remote), movie[:3])


def test_s3_faults_name_the_object(s3):
    with pytest.raises(RemoteFileError, match="no such file") as raised:
        napari_mrcz.open_lazy("s3://grids/none.mrc", storage_options=s3.options())
    assert str(raised.value).startswith("s3://grids/none.mrc")


def test_a_private_object_opened_anonymously_is_access_denied(tmp_path, s3, movie):
    path = tmp_path / "private.mrc"
    napari_mrcz.writeMRC(movie[:1], path)
    s3.filesystem().put_file(str(path), "grids/private.mrc")
    options = {"endpoint_url": s3.endpoint, "anon": True, "skip_instance_cache": True}
    with pytest.raises(RemoteFileError, match="access denied"):
        napari_mrcz.open_lazy("s3://grids/private.mrc", storage_options=options)
