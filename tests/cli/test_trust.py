"""The command line: collisions, skipped files, refused conversions, true messages,
plain outputs that mrcfile validates, and round trips that keep structure and readers.

Driven as a user drives ``mrcz``: in a subprocess, on real files where they exist, each
output checked with the reference readers (python-mrcz 0.6.0, mrcfile).
"""

import io
import os
import pathlib
import shutil
import subprocess
import sys

import mrcfile
import mrcz
import numpy as np
import pytest

import napari_mrcz
from napari_mrcz.mrc.layout import read_layout

from tests.helpers import SHARED_DATA

CLI = [sys.executable, "-m", "napari_mrcz.cli"]

needs_real_files = pytest.mark.skipif(SHARED_DATA is None, reason="shared real files absent")


def run(*args, timeout=120):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def validates(path) -> bool:
    return mrcfile.validate(str(path), print_file=io.StringIO())


def partials(folder):
    return [path for path in pathlib.Path(folder).rglob("*") if path.name.endswith(".partial")]


@needs_real_files
def test_a_collision_fails_alone_and_the_other_files_are_converted(tmp_path, rng):
    """truncated.dm4 and truncated.mrc both map to truncated.mrcz: both are reported,
    neither is converted, and the rest of the folder is (the run used to stop first)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(SHARED_DATA / "dm4" / "rsciio_2D_test-1.dm4", raw / "truncated.dm4")
    napari_mrcz.writeMRC(rng.normal(size=(2, 8, 8)).astype(np.float32), raw / "truncated.mrc")
    good = rng.normal(size=(3, 8, 8)).astype(np.float32)
    napari_mrcz.writeMRC(good, raw / "good.mrc")
    out = tmp_path / "out"
    result = run("compress", raw, "-o", out)
    assert result.returncode == 1, result.stderr
    for name, other in (("truncated.dm4", "truncated.mrc"), ("truncated.mrc", "truncated.dm4")):
        assert (
            f"FAILED {raw / name}: {raw / other} would also be written to "
            f"{out / 'truncated.mrcz'}: not converted" in result.stdout
        )
    assert "1 done, 2 failed" in result.stdout
    np.testing.assert_array_equal(mrcz.readMRC(str(out / "good.mrcz"))[0], good)
    assert sorted(path.name for path in out.iterdir()) == ["good.mrcz"]


def test_compress_lists_the_mrcz_files_it_leaves_alone(tmp_path, rng):
    raw = tmp_path / "raw"
    raw.mkdir()
    napari_mrcz.writeMRC(rng.normal(size=(2, 8, 8)).astype(np.float32), raw / "a.mrc")
    napari_mrcz.writeMRC(np.ones((2, 8, 8), np.float32), raw / "b.mrcz", compressor="zstd")
    result = run("compress", raw, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    [row] = [line for line in result.stdout.splitlines() if f"{raw / 'b.mrcz'}" in line][:1]
    assert row.split()[:3] == ["skipped", str(raw / "b.mrcz"), "-"]
    assert f"note: {raw / 'b.mrcz'}: already MRCZ: compress leaves it as it is" in result.stdout
    assert "1 done, 1 skipped" in result.stdout
    decompress = run("decompress", raw, "-o", tmp_path / "plain")
    assert decompress.returncode == 0
    assert f"note: {raw / 'a.mrc'}: not MRCZ: decompress takes" in decompress.stdout


def test_convert_onto_an_existing_output_fails_and_names_overwrite(tmp_path, rng):
    source = tmp_path / "a.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(2, 8, 8)).astype(np.float32), source)
    target = tmp_path / "a.mrcz"
    target.write_bytes(b"an older archive")
    result = run("convert", source, target)
    assert result.returncode == 1
    assert f"{target} exists: nothing converted; use --overwrite to replace it" in result.stdout
    assert target.read_bytes() == b"an older archive"
    assert run("convert", source, target, "--overwrite").returncode == 0
    np.testing.assert_array_equal(napari_mrcz.readMRC(target)[0], napari_mrcz.readMRC(source)[0])


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_an_output_that_is_no_file_is_not_replaced(kind, tmp_path, rng):
    source = tmp_path / "a.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(2, 8, 8)).astype(np.float32), source)
    target = tmp_path / "a.mrcz"
    target.mkdir() if kind == "folder" else os.mkfifo(target)
    result = run("convert", source, target, "--overwrite", timeout=30)
    assert result.returncode == 1
    expected = "is a folder" if kind == "folder" else "is a FIFO (named pipe)"
    assert f"{target}: {expected}: no file is written in its place" in result.stdout
    assert not partials(tmp_path)


def test_a_missing_folder_is_named_with_the_users_file(tmp_path, rng):
    data = rng.normal(size=(2, 8, 8)).astype(np.float32)
    for name, codec in (("x.mrcz", "zstd"), ("x.mrc", None)):
        target = tmp_path / "nofolder" / name
        with pytest.raises(FileNotFoundError) as caught:
            napari_mrcz.writeMRC(data, target, compressor=codec)
        message = str(caught.value)
        assert f"the folder {tmp_path / 'nofolder'} does not exist" in message
        assert str(target) in message
        assert ".partial" not in message


@needs_real_files
@pytest.mark.parametrize(
    ("name", "cast"),
    [("rsciio_2D_test-6.dm4", "uint8"), ("rsciio_2D_test-13.dm4", "complex128")],
)
def test_convert_warnings_name_the_output(name, cast, tmp_path):
    target = tmp_path / "out.mrcz"
    result = run("convert", SHARED_DATA / "dm4" / name, target)
    assert result.returncode == 0, result.stdout
    assert f"warning: {target}: MRC has no {cast} pixels" in result.stderr
    assert ".partial" not in result.stderr + result.stdout


def test_a_failed_verification_names_the_output(tmp_path, rng):
    from napari_mrcz import formats
    from napari_mrcz.tools import convert

    data = rng.normal(size=(2, 8, 8)).astype(np.float32)
    source, other = tmp_path / "source.mrc", tmp_path / ".hidden.partial"
    napari_mrcz.writeMRC(data, source)
    napari_mrcz.writeMRC(data + 1, other)
    with (
        formats.open_images(source) as [image],
        pytest.raises(convert.VerificationError) as caught,
    ):
        convert.verify_image(image, str(tmp_path / "out.mrc"), temporary=str(other))
    assert str(caught.value).startswith(f"{tmp_path / 'out.mrc'}: z-slice 0 differs")


@needs_real_files
def test_decompress_of_dm_derived_mrcz_is_mrcfile_valid(tmp_path):
    """DM tags are JSON meta in MRCZ; the plain copy leaves them out unless asked."""
    source = SHARED_DATA / "dm4" / "openncem_dmTest_float32_nonSquare_diffPixelSize.dm4"
    run("compress", source, "-o", tmp_path / "z").check_returncode()
    packed = tmp_path / "z" / (source.stem + ".mrcz")
    assert "dm_tags" in mrcz.readMRCHeader(str(packed))[0]  # MRCZ keeps them
    result = run("decompress", packed, "-o", tmp_path / "plain", "--verify", "--delete-source")
    assert result.returncode == 0, result.stdout
    plain = tmp_path / "plain" / (source.stem + ".mrc")
    assert validates(plain)
    assert read_layout(plain).nsymbt == 0
    assert "1 plain MRC output without the JSON metadata" in result.stdout
    assert "--keep-json writes it" in result.stdout
    assert packed.exists()  # its tags are in no other file: kept
    assert "source kept: its JSON meta is not in the plain MRC copy" in result.stdout
    kept = run("decompress", packed, "-o", tmp_path / "json", "--keep-json")
    assert kept.returncode == 0
    with_json = tmp_path / "json" / (source.stem + ".mrc")
    assert napari_mrcz.readMRCHeader(with_json)[0]["dm_tags"]
    assert not validates(with_json)  # the cost --keep-json's help states


@needs_real_files
def test_convert_of_dm_to_mrc_is_mrcfile_valid(tmp_path):
    source = SHARED_DATA / "dm3" / "rsciio_2D_multi_signal.dm3"
    run("convert", source, tmp_path / "multi.mrc").check_returncode()
    for number, (expected, _) in enumerate(napari_mrcz.read_dm(source)):
        path = tmp_path / f"multi_{number}.mrc"
        assert validates(path)
        with mrcfile.open(path) as copy:
            np.testing.assert_array_equal(copy.data.reshape(expected.shape), expected)


def test_json_meta_of_an_mrcz_stays_out_of_its_plain_copy(tmp_path, rng):
    data = rng.normal(size=(3, 8, 8)).astype(np.float32)
    packed = tmp_path / "a.mrcz"
    napari_mrcz.writeMRC(data, packed, compressor="zstd", meta={"dose": 1.5})
    run("convert", packed, tmp_path / "a.mrc").check_returncode()
    assert validates(tmp_path / "a.mrc")
    run("convert", packed, tmp_path / "b.mrc", "--keep-json").check_returncode()
    assert mrcz.readMRCHeader(str(tmp_path / "b.mrc"))[0]["dose"] == 1.5


def test_python_mrcz_api_keeps_writing_json_into_plain_files(tmp_path, rng):
    """writeMRC(meta=..., compressor=None) is python-mrcz's API: JSON, as python-mrcz."""
    path = tmp_path / "api.mrc"
    napari_mrcz.writeMRC(rng.normal(size=(2, 4, 4)).astype(np.float32), path, meta={"a": 1})
    header, _ = mrcz.readMRCHeader(str(path))
    assert header["metaId"] == b"json"
    assert header["a"] == 1


@pytest.mark.parametrize("frame_shape", [(3, 8, 10), (8, 10)], ids=["3D frames", "2D frames"])
def test_python_mrcz_frames_survive_decompress_and_compress(frame_shape, tmp_path, rng):
    """A list of frames written by python-mrcz stays a list through mrcz decompress and
    mrcz compress, for python-mrcz and for us; the plain copy passes mrcfile.validate."""
    frames = [rng.normal(size=frame_shape).astype(np.float32) for _ in range(4)]
    original = tmp_path / "frames.mrcz"
    mrcz.writeMRC(frames, str(original), compressor="zstd", pixelsize=[2.0, 1.0, 0.5])
    run("decompress", original, "-o", tmp_path / "plain", "--verify").check_returncode()
    plain = tmp_path / "plain" / "frames.mrc"
    run("compress", plain, "-o", tmp_path / "again", "--verify").check_returncode()
    again = tmp_path / "again" / "frames.mrcz"
    assert validates(plain)
    for path in (plain, again):
        image, meta = mrcz.readMRC(str(path))
        assert isinstance(image, list), path
        assert len(image) == 4
        for got, want in zip(image, frames, strict=True):
            np.testing.assert_array_equal(got, want)
    ours, meta = napari_mrcz.readMRC(again)
    assert isinstance(ours, list)
    np.testing.assert_array_equal(ours[3], frames[3])
    np.testing.assert_allclose(meta["pixelsize"], [2.0, 1.0, 0.5])
    assert mrcz.readMRC(str(again))[1]["pixelsize"].tolist() == pytest.approx([2.0, 1.0, 0.5])
    stack, plain_meta = napari_mrcz.readMRC(plain)
    np.testing.assert_allclose(plain_meta["pixelsize"][1:], [1.0, 0.5])
    if len(frame_shape) == 3:  # lists of 3D frames are lists for us in plain files too
        assert isinstance(stack, list)
        np.testing.assert_allclose(plain_meta["pixelsize"], [2.0, 1.0, 0.5])
    else:  # a list of 2D frames is an image stack in a plain file: the same data
        np.testing.assert_array_equal(stack, np.stack(frames))


@needs_real_files
def test_float16_output_that_python_mrcz_cannot_open_is_warned(tmp_path):
    source = SHARED_DATA / "mrc" / "tomodrgn_Unt_050_12.00A_000001.mrcs"
    target = tmp_path / "out" / (source.stem + ".mrcz")
    result = run("compress", source, "-o", tmp_path / "out", "--verify")
    assert result.returncode == 0
    assert f"warning: {target}: python-mrcz 0.6.0" in result.stderr
    assert "float16" in result.stderr
    with pytest.raises(ValueError, match="data type = 12"):  # the warning is true
        mrcz.readMRC(str(target))
    plain = run("decompress", target, "-o", tmp_path / "plain")
    assert "python-mrcz" not in plain.stderr  # plain MRC is for MRC2014 readers


def test_the_engine_warns_once_for_outputs_python_mrcz_cannot_open(tmp_path, rng, recwarn):
    data = rng.normal(size=(2, 4, 4))
    with pytest.warns(napari_mrcz.MRCZWarning, match="float16 pixels") as caught:
        napari_mrcz.writeMRC(data.astype(np.float16), tmp_path / "h.mrcz", compressor="zstd")
    assert len(caught) == 1
    with pytest.warns(napari_mrcz.MRCZWarning, match="big-endian data packed with lz4"):
        napari_mrcz.writeMRC(
            data.astype(np.float32), tmp_path / "b.mrcz", compressor="lz4", endian="be"
        )
    recwarn.clear()
    napari_mrcz.writeMRC(data.astype(np.float16), tmp_path / "h.mrc")
    napari_mrcz.writeMRC(
        data.astype(np.float32), tmp_path / "z.mrcz", compressor="zstd", endian="be"
    )
    assert not [w for w in recwarn if issubclass(w.category, napari_mrcz.MRCZWarning)]
    mrcz.readMRC(str(tmp_path / "z.mrcz"))  # no warning where python-mrcz reads it


def standard_order(mrc) -> tuple[np.ndarray, list[float], list[float]]:
    """mrcfile's reading of a map as (z, y, x) data, voxel size and origin (x, y, z)."""
    mapcrs = [int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps)]
    axes = [mapcrs[2] - 1, mapcrs[1] - 1, mapcrs[0] - 1]  # crystal axis of data axis z, y, x
    order = [axes.index(crystal) for crystal in (2, 1, 0)]
    voxel = [float(mrc.voxel_size.x), float(mrc.voxel_size.y), float(mrc.voxel_size.z)]
    origin = [float(mrc.header.origin.x), float(mrc.header.origin.y), float(mrc.header.origin.z)]
    return np.transpose(mrc.data, order), voxel, origin


def permuted_sources(tmp_path, rng):
    sources = []
    if SHARED_DATA is not None:
        sources.append(SHARED_DATA / "mrc" / "gemmi_5i55_tiny.ccp4")  # 2, 1, 3
        sources.append(SHARED_DATA / "mrc" / "ngl_3pqr-mode0.ccp4")  # int8
    path = tmp_path / "sections_move.map"  # 3, 2, 1: the sections become x
    with mrcfile.new(path) as handle:
        handle.set_data(rng.normal(size=(4, 5, 6)).astype(np.float32))
        handle.header.mapc, handle.header.mapr, handle.header.maps = 3, 2, 1
        handle.voxel_size = (1.0, 2.0, 3.0)
        handle.header.origin = (10.0, 20.0, 30.0)
    return [*sources, path]


def test_compress_writes_a_permuted_map_in_standard_order(tmp_path, rng):
    """Refused before ('can only be converted to plain MRC'); now in (z, y, x) order as
    napari saves it, with pixel size and origin per axis as mrcfile reads the original."""
    from napari_mrcz._napari.reader import get_reader
    from napari_mrcz._napari.writer import write_mrcz

    for source in permuted_sources(tmp_path, rng):
        out = tmp_path / "out"
        result = run("compress", source, "-o", out, "--verify")
        assert result.returncode == 0, result.stdout
        target = out / (source.stem + ".mrcz")
        with mrcfile.open(source, permissive=True) as original:
            data, voxel, origin = standard_order(original)
        image, meta = mrcz.readMRC(str(target))
        np.testing.assert_array_equal(image, data)
        np.testing.assert_allclose(meta["pixelsize"][::-1], voxel, rtol=1e-6)
        layout = read_layout(target)
        assert layout.mapcrs == (1, 2, 3)
        np.testing.assert_allclose(layout.pixelsize[::-1], voxel, rtol=1e-6)
        np.testing.assert_allclose(layout.header["origin"].tolist(), origin)
        # napari shows the same map in the same order and saves the same file
        [(layer, kwargs, _)] = get_reader(str(source))(str(source))
        [saved] = write_mrcz(str(tmp_path / "napari.mrcz"), np.asarray(layer), kwargs)
        ours, _ = napari_mrcz.readMRC(target)
        np.testing.assert_array_equal(napari_mrcz.readMRC(saved)[0], ours)
        np.testing.assert_allclose(read_layout(saved).pixelsize, layout.pixelsize, rtol=1e-6)
        np.testing.assert_allclose(read_layout(saved).origin, layout.origin, rtol=1e-6)
        shutil.rmtree(out)


def test_sizes_and_speeds_in_one_unit_system(tmp_path, rng):
    raw = tmp_path / "raw"
    raw.mkdir()
    napari_mrcz.writeMRC(rng.normal(size=(4, 64, 64)).astype(np.float32), raw / "a.mrc")
    result = run("compress", raw, "-o", tmp_path / "z", "--progress")
    bar = result.stderr.replace("\r", "\n")
    assert "KiB" in bar
    assert "kB" not in bar
    assert "MB" not in bar
    plain = run("decompress", tmp_path / "z", "-o", tmp_path / "plain")
    header, row, total = plain.stdout.splitlines()[:3]
    assert header.split()[-2:] == ["ratio", "speed"]
    assert row.split()[-3] == "-"  # a plain file has no compression ratio
    assert "x)" not in total
