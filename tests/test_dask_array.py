"""napari_mrcz.to_dask computed by a real dask.distributed cluster of process workers.

The cluster (two single-threaded worker processes) listens on 127.0.0.1 only, and has
no dashboard. References: python-mrcz and mrcfile wrote or read the files, ncempy and
rosettasciio read the DM ones.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import subprocess
import sys
import warnings

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz

from tests.helpers import SHARED_DATA, real_files

distributed = pytest.importorskip("distributed")
ncempy_dm = pytest.importorskip("ncempy.io.dm")
rsciio_dm = pytest.importorskip("rsciio.digitalmicrograph")

#: Seconds any computation may take before the test fails (never hangs CI).
TIMEOUT = 60


@pytest.fixture(scope="module")
def client():
    """Two worker processes and their scheduler, on the loopback address only."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,  # and its HTTP endpoints on a free loopback port:
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        distributed.Client(cluster, set_as_default=False, timeout=TIMEOUT) as client,
    ):
        client.wait_for_workers(2, timeout=TIMEOUT)
        assert os.getpid() not in client.run(os.getpid).values()
        yield client


def computed(client, array):
    return client.compute(array).result(timeout=TIMEOUT)


def test_python_mrcz_file_computes_on_process_workers(client, tmp_path, rng):
    data = rng.integers(-1000, 1000, size=(7, 256, 192), dtype=np.int16)
    path = tmp_path / "movie.mrcz"
    mrcz.writeMRC(data, str(path), compressor="zstd", clevel=1)
    array = napari_mrcz.to_dask(path)
    assert array.shape == data.shape
    assert array.dtype == data.dtype
    assert array.chunks == ((1,) * 7, (256,), (192,))  # one per z-slice: one blosc chunk
    assert len(pickle.dumps(array)) < data.nbytes // 20  # the graph holds no pixels
    np.testing.assert_array_equal(computed(client, array), data)
    np.testing.assert_array_equal(
        computed(client, array[2:6].astype(np.int64).sum(axis=0)),
        data[2:6].astype(np.int64).sum(axis=0),
    )


def test_slices_per_chunk(client, tmp_path, rng):
    data = rng.random((7, 32, 48), dtype=np.float32)
    path = tmp_path / "volume.mrc"
    mrcfile.write(path, data)
    array = napari_mrcz.to_dask(path, slices_per_chunk=3)
    assert array.chunks[0] == (3, 3, 1)
    np.testing.assert_array_equal(computed(client, array), data)
    with pytest.raises(ValueError, match="slices_per_chunk"):
        napari_mrcz.to_dask(path, slices_per_chunk=0)


def test_gzipped_map_is_decompressed_where_it_is_read(client, tmp_path, rng):
    data = rng.normal(size=(5, 40, 40)).astype(np.float32)
    plain = tmp_path / "emd_1.map"
    mrcfile.write(plain, data)
    with open(plain, "rb") as source, gzip.open(tmp_path / "emd_1.map.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    array = napari_mrcz.to_dask(tmp_path / "emd_1.map.gz")
    np.testing.assert_array_equal(computed(client, array), data)


REAL_MRC = real_files("mrc")


@pytest.mark.parametrize("path", REAL_MRC, ids=lambda path: path.name)
def test_real_mrc_files_compute_as_mrcfile_reads_them(client, path):
    with warnings.catch_warnings():  # mrcfile about the defective headers: not tested here
        warnings.simplefilter("ignore", RuntimeWarning)
        with mrcfile.open(path, permissive=True) as mrc:
            expected = np.array(mrc.data)
    array = napari_mrcz.to_dask(path)
    assert array.shape == expected.shape
    assert array.dtype == expected.dtype
    if expected.ndim == 3:
        assert array.numblocks[0] == expected.shape[0]
    np.testing.assert_array_equal(computed(client, array), expected)


@pytest.mark.skipif(SHARED_DATA is None, reason="the shared real-file folder is absent")
def test_real_dm_stack_computes_as_ncempy_reads_it(client):
    path = SHARED_DATA / "dm4" / "openncem_dmTest_3D_int16_64_65_66.dm4"
    expected = ncempy_dm.dmReader(str(path))["data"]
    array = napari_mrcz.to_dask(path, slices_per_chunk=16)
    assert array.shape == expected.shape == (66, 65, 64)
    assert array.chunks[0] == (16, 16, 16, 16, 2)
    np.testing.assert_array_equal(computed(client, array), expected)


@pytest.mark.skipif(SHARED_DATA is None, reason="the shared real-file folder is absent")
def test_second_image_of_a_real_dm_file_as_rosettasciio_reads_it(client):
    path = SHARED_DATA / "dm3" / "rsciio_2D_multi_signal.dm3"
    expected = [signal["data"] for signal in rsciio_dm.file_reader(str(path))]
    array = napari_mrcz.to_dask(path, image=1)
    assert array.numblocks == (1,) * array.ndim  # a single image is one chunk
    np.testing.assert_array_equal(computed(client, array), expected[1])
    with pytest.raises(IndexError, match="2 image"):
        napari_mrcz.to_dask(path, image=2)


def test_without_dask_the_error_says_what_to_install(tmp_path):
    mrcfile.write(tmp_path / "a.mrc", np.zeros((2, 4, 4), np.float32))
    code = (
        "import sys; sys.modules['dask'] = None\n"
        "import napari_mrcz\n"
        "try:\n"
        f"    napari_mrcz.to_dask({str(tmp_path / 'a.mrc')!r})\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert "pip install 'dask[array]'" in result.stdout
