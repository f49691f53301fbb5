"""Bad input raises MRCZFormatError naming the file: never a crash, a hang or a huge allocation.

Every damaged file goes through the three ways in: ``readMRC``, ``readMRCHeader`` and
``open_lazy`` (reading the whole array and indexing each z-slice). A damaged file may only
raise :class:`napari_mrcz.MRCZFormatError` (whose message starts with the path), or, where
the damage is in compressed pixel bytes that blosc cannot check, return data.

The same battery, plus a few thousand seeded random corruptions, also runs in a
subprocess whose address space is capped (``RLIMIT_AS``), so that a giant allocation shows
up as a MemoryError and a segfault as a signal instead of killing the test run.
"""

from __future__ import annotations

import collections
import itertools
import json
import pathlib
import re
import struct
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import napari_mrcz
from napari_mrcz import MRCZFormatError, MRCZWarning
from napari_mrcz.mrc.codecs import CHUNK_HEADER_SIZE
from napari_mrcz.mrc.header import HEADER_SIZE, header_dtype, stamp_byteorder

SHAPE = (6, 20, 30)
#: Address-space cap of the subprocess: far above what reading these small files needs.
ADDRESS_SPACE_LIMIT = 2 * 2**30


# --------------------------------------------------------------------------- helpers


def sample_array() -> np.ndarray:
    """A compressible int16 ramp: its blosc chunks are really compressed (not memcpy'd)."""
    return (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 97).astype(np.int16)


def make_file(
    folder: pathlib.Path, compressor: str | None, endian: str = "le", meta: dict | None = None
) -> bytes:
    """Write the sample array with our writer and return the file's bytes."""
    path = folder / f"sample-{compressor}-{endian}-{bool(meta)}.mrc"
    napari_mrcz.writeMRC(sample_array(), path, compressor=compressor, endian=endian, meta=meta)
    return path.read_bytes()


def read_header(raw: bytes) -> np.ndarray:
    """The header of an undamaged file, as a structured array in the file's byte order."""
    order = stamp_byteorder(raw[212:216]) or "<"
    return np.frombuffer(raw[:HEADER_SIZE], dtype=header_dtype(order)).copy().reshape(())


def patch_field(raw: bytes, name: str, value) -> bytes:
    """Return ``raw`` with header field ``name`` set to ``value`` in the file's byte order."""
    header = read_header(raw)
    header[name] = value
    return header.tobytes() + raw[HEADER_SIZE:]


def chunk_offsets(raw: bytes) -> list[int]:
    """Offsets of the blosc chunks of an undamaged MRCZ file, and the end of the last."""
    header = read_header(raw)
    nz = int(header["nz"])
    offsets = [HEADER_SIZE + int(header["nsymbt"])]
    for _ in range(nz):
        offsets.append(offsets[-1] + struct.unpack_from("<i", raw, offsets[-1] + 12)[0])
    assert offsets[-1] == len(raw)
    return offsets


def patch_chunk_header(raw: bytes, chunk: int, field: str, value: int) -> bytes:
    """Set one field of the 16-byte header of blosc chunk ``chunk``."""
    position = chunk_offsets(raw)[chunk]
    out = bytearray(raw)
    if field in ("version", "versionlz", "flags", "typesize"):
        out[position + ("version", "versionlz", "flags", "typesize").index(field)] = value
    else:
        at = {"nbytes": 4, "blocksize": 8, "cbytes": 12}[field]
        struct.pack_into("<i", out, position + at, value)
    return bytes(out)


def lazy_read_everything(path) -> None:
    """Open lazily, index every z-slice, then read the whole array."""
    with napari_mrcz.open_lazy(path) as lazy:
        for index in range(lazy.layout.nz):
            frame = lazy[index] if lazy.ndim == 3 else lazy[:]
            assert frame.shape[-2:] == lazy.layout.shape[1:]
        assert np.asarray(lazy).shape == lazy.shape


READERS = {
    "readMRC": napari_mrcz.readMRC,
    "readMRCHeader": napari_mrcz.readMRCHeader,
    "open_lazy": lazy_read_everything,
}


def assert_format_error(reader, path: pathlib.Path, pattern: str) -> MRCZFormatError:
    """``reader(path)`` raises exactly MRCZFormatError naming ``path`` and matching ``pattern``."""
    with pytest.raises(MRCZFormatError, match=pattern) as info:
        reader(path)
    error = info.value
    assert type(error) is MRCZFormatError
    assert isinstance(error, ValueError)
    assert error.path == str(path)
    assert str(error).startswith(f"{path}: ")
    assert error.problem
    assert error.problem in str(error)
    return error


def error_or_data(reader, path: pathlib.Path) -> str:
    """Run ``reader``; only success or MRCZFormatError naming the path are acceptable."""
    refusal = None
    try:
        reader(path)
    except MRCZFormatError as error:
        refusal = error
    if refusal is None:
        return "ok"
    assert type(refusal) is MRCZFormatError
    assert refusal.path == str(path)
    return "MRCZFormatError"


def sample_files(folder: pathlib.Path) -> dict[str, bytes]:
    """The bytes of each kind of sample file the damage tests start from."""
    return {
        "plain": make_file(folder, None),
        "plain-be": make_file(folder, None, "be"),
        "zstd": make_file(folder, "zstd"),
        "zstd-be": make_file(folder, "zstd", "be"),
        "lz4": make_file(folder, "lz4"),
        "json": make_file(folder, None, meta={"key": "value"}),
    }


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, bytes]:
    return sample_files(tmp_path_factory.mktemp("samples"))


@pytest.fixture
def damaged(tmp_path):
    """Write bytes to a file in tmp_path and return its path."""

    def write(data: bytes, name: str = "damaged.mrc") -> pathlib.Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write


def test_samples_are_valid(samples, tmp_path):
    """The undamaged files read back, so every error below comes from the damage."""
    for name, raw in samples.items():
        path = tmp_path / f"{name}.mrc"
        path.write_bytes(raw)
        image, _ = napari_mrcz.readMRC(path)
        np.testing.assert_array_equal(image, sample_array())
        with napari_mrcz.open_lazy(path) as lazy:
            np.testing.assert_array_equal(lazy[3], sample_array()[3])


# --------------------------------------------------------------------------- short files


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_empty_file(reader, damaged):
    assert_format_error(reader, damaged(b""), r"too short.* 0 bytes")


@pytest.mark.parametrize("length", [1, 100, 512, 1023])
@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_file_shorter_than_header(reader, damaged, samples, length):
    path = damaged(samples["plain"][:length])
    assert_format_error(reader, path, rf"too short.* {length} bytes")


# --------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("kind", ["plain", "plain-be", "json"])
def test_truncated_plain_data(kind, samples, damaged):
    raw = samples[kind]
    cuts = {
        *range(HEADER_SIZE, len(raw), 97),
        HEADER_SIZE,
        HEADER_SIZE + 1,
        len(raw) - 2,
        len(raw) - 1,
        len(raw) - sample_array()[0].nbytes,
    }
    for cut in sorted(cuts):
        path = damaged(raw[:cut])
        for reader in READERS.values():
            assert_format_error(reader, path, r"truncated|NSYMBT|JSON")


def compressed_cut_points(raw: bytes) -> list[int]:
    """Cut points at and around every chunk, inside chunk headers and inside payloads."""
    offsets = chunk_offsets(raw)
    cuts = {HEADER_SIZE, len(raw) - 1}
    for start, end in itertools.pairwise(offsets):
        cuts.update(
            {
                start,
                start + 1,
                start + 8,
                start + CHUNK_HEADER_SIZE - 1,
                start + CHUNK_HEADER_SIZE,
                start + CHUNK_HEADER_SIZE + 1,
                (start + end) // 2,
                end - 1,
            }
        )
    return sorted(cut for cut in cuts if cut < len(raw))


@pytest.mark.parametrize("kind", ["zstd", "zstd-be", "lz4"])
def test_truncated_compressed_data(kind, samples, damaged):
    raw = samples[kind]
    for cut in compressed_cut_points(raw):
        path = damaged(raw[:cut])
        assert_format_error(napari_mrcz.readMRC, path, r"truncated|runs past the end|damaged")
        assert_format_error(lazy_read_everything, path, r"truncated|runs past the end|damaged")
        # readMRCHeader reads no data: it may accept a file cut inside its chunks, but
        # must not fail any other way.
        assert error_or_data(napari_mrcz.readMRCHeader, path) in ("ok", "MRCZFormatError")


@pytest.mark.parametrize("kind", ["plain", "zstd"])
def test_every_truncation_point(kind, samples, damaged):
    """Every single cut point of a small file: readMRC and open_lazy must refuse it."""
    raw = samples[kind]
    for cut in range(0, len(raw), 1 if kind == "zstd" else 11):
        path = damaged(raw[:cut])
        assert_format_error(napari_mrcz.readMRC, path, ".")
        assert_format_error(lazy_read_everything, path, ".")


# --------------------------------------------------------------------------- header fields


@pytest.mark.parametrize("field", ["nx", "ny", "nz"])
@pytest.mark.parametrize("value", [-1, 0, -(2**31), 2**30, 2**31 - 1])
@pytest.mark.parametrize("kind", ["plain", "zstd", "zstd-be"])
def test_bad_dimensions(kind, field, value, samples, damaged):
    path = damaged(patch_field(samples[kind], field, value))
    pattern = r"dimensions must be positive" if value <= 0 else r"truncated|cannot fit"
    for reader in READERS.values():
        error = assert_format_error(reader, path, pattern)
        if value <= 0:
            assert f"{field}={value}" in str(error)


@pytest.mark.parametrize("mode", [3, 5, 9, 10, 11, 100, 102, 6003, 6016])
@pytest.mark.parametrize("kind", ["plain", "zstd"])
def test_unknown_mode(kind, mode, samples, damaged):
    path = damaged(patch_field(samples[kind], "mode", mode))
    for reader in READERS.values():
        assert_format_error(reader, path, rf"mode {mode % 1000}\b")


@pytest.mark.parametrize("mode", [7002, 999002, 2**31 - 1, -1, -6002])
def test_unknown_codec_id(mode, samples, damaged):
    path = damaged(patch_field(samples["zstd"], "mode", mode))
    for reader in READERS.values():
        assert_format_error(reader, path, rf"compressor id.*MODE {mode}\)")


def test_compressed_uint4_is_refused(samples, damaged):
    path = damaged(patch_field(samples["zstd"], "mode", 6101))
    for reader in READERS.values():
        assert_format_error(reader, path, r"mode 101")


@pytest.mark.parametrize("kind", ["plain", "zstd", "json"])
def test_nsymbt_negative_or_past_the_end(kind, samples, damaged):
    raw = samples[kind]
    for value in (-1, -16, -(2**31), len(raw) - HEADER_SIZE + 1, 2**31 - 1):
        path = damaged(patch_field(raw, "nsymbt", value))
        for reader in READERS.values():
            assert_format_error(reader, path, rf"NSYMBT={value}\b")


def assert_read_without_meta(path: pathlib.Path, pattern: str) -> None:
    """A damaged JSON meta leaves the pixels readable by every reader, with one warning
    naming the file and the problem (the metadata alone is lost)."""
    for name, reader in READERS.items():
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            reader(path)
        ours = [str(w.message) for w in seen if issubclass(w.category, MRCZWarning)]
        assert len(ours) == 1, (name, ours)
        assert ours[0].startswith(f"{path}: "), (name, ours)
        assert re.search(pattern, ours[0]), (name, ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MRCZWarning)
        np.testing.assert_array_equal(napari_mrcz.readMRC(path)[0], sample_array())


def replace_json(raw: bytes, payload: bytes) -> bytes:
    """Swap the JSON extended header for ``payload`` (NSYMBT adjusted)."""
    nsymbt = int(read_header(raw)["nsymbt"])
    assert raw[104:108] == b"json"
    assert nsymbt > 0
    return patch_field(
        raw[:HEADER_SIZE] + payload + raw[HEADER_SIZE + nsymbt :], "nsymbt", len(payload)
    )


@pytest.mark.parametrize(
    "payload",
    [
        b'{"key": "val',
        b"{key: 1}",
        b"\x00" * 10,
        b"not json",
        b'{"a": 1}}',
        b'{"a": NaN, ',
        b"[1, 2, 3]",
        b'"a string"',
        b"42",
    ],
    ids=[
        "unterminated",
        "unquoted",
        "nul",
        "text",
        "trailing",
        "partial",
        "list",
        "string",
        "number",
    ],
)
def test_invalid_json_extended_header(payload, samples, damaged):
    path = damaged(replace_json(samples["json"], payload))
    assert_read_without_meta(path, r"JSON extended header")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"key": "\xff\xfe"}',
        b"\xff\xfe{\x00}\x00",
        b'{"caf\xe9": 1}',
        b"\xc3\x28",
    ],
    ids=["bad-bytes", "utf16-bom", "latin1", "overlong"],
)
def test_non_utf8_json_extended_header(payload, samples, damaged):
    path = damaged(replace_json(samples["json"], payload))
    assert_read_without_meta(path, r"JSON extended header.*(utf-8|codec)")


def test_json_header_on_compressed_file(tmp_path, damaged):
    raw = make_file(tmp_path, "zstd", meta={"key": "value"})
    path = damaged(replace_json(raw, b"{oops"))
    assert_read_without_meta(path, r"JSON")


# --------------------------------------------------------------------------- blosc chunks


CHUNK_HEADER_DAMAGE = [
    ("version", 0, r"format version 0"),
    ("version", 6, r"format version 6"),
    ("version", 255, r"format version 255"),
    ("typesize", 0, r"typesize"),
    ("nbytes", SHAPE[1] * SHAPE[2] * 2 - 1, r"a z-slice needs"),
    ("nbytes", SHAPE[1] * SHAPE[2] * 2 + 1, r"a z-slice needs"),
    ("nbytes", 0, r"a z-slice needs"),
    ("nbytes", -1, r"a z-slice needs"),
    ("nbytes", 2**31 - 1, r"a z-slice needs"),
    ("cbytes", 2**31 - 1, r"runs past the end"),
    ("cbytes", 1 << 20, r"runs past the end"),
    ("cbytes", 15, r"smaller than its own header"),
    ("cbytes", 0, r"smaller than its own header"),
    ("cbytes", -1, r"smaller than its own header"),
    ("blocksize", 0, r"blocksize 0"),
    ("blocksize", -1, r"blocksize -1"),
]


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    CHUNK_HEADER_DAMAGE,
    ids=[f"{f}={v}" for f, v, _ in CHUNK_HEADER_DAMAGE],
)
@pytest.mark.parametrize("chunk", [0, 3, 5])
@pytest.mark.parametrize("kind", ["zstd", "zstd-be", "lz4"])
def test_corrupt_chunk_header(kind, chunk, field, value, pattern, samples, damaged):
    path = damaged(patch_chunk_header(samples[kind], chunk, field, value))
    error = assert_format_error(napari_mrcz.readMRC, path, rf"blosc chunk {chunk}\b.*{pattern}")
    assert "damaged" in str(error)
    assert_format_error(napari_mrcz.open_lazy, path, pattern)
    # readMRCHeader does not walk the chunks; it may pass, but nothing else.
    assert error_or_data(napari_mrcz.readMRCHeader, path) in ("ok", "MRCZFormatError")


def test_chunk_too_short_for_next_header(samples, damaged):
    """cbytes of 16 (just the header): the next 'chunk' starts in the middle of a payload."""
    path = damaged(patch_chunk_header(samples["zstd"], 2, "cbytes", CHUNK_HEADER_SIZE))
    assert_format_error(napari_mrcz.readMRC, path, r"damaged blosc chunk 3")


def test_wrong_blosc1_version_byte(samples, damaged):
    """Version byte 1 is a blosc1 format number, but not of these chunks: blosc refuses them.

    That refusal must come out as MRCZFormatError like any other damage.
    """
    path = damaged(patch_chunk_header(samples["zstd"], 2, "version", 1))
    assert_format_error(napari_mrcz.readMRC, path, r"blosc chunk 2")
    with napari_mrcz.open_lazy(path) as lazy:
        np.testing.assert_array_equal(lazy[1], sample_array()[1])
        assert_format_error(lambda _: lazy[2], path, r"blosc chunk 2")


def test_blosc2_version_byte_in_a_blosc1_file(samples, damaged):
    """One chunk of a blosc1 file claims the c-blosc2 format (2 -> 3 is a one-bit flip).

    The file is damaged, not a c-blosc2 file: the answer is MRCZFormatError, not an
    ImportError asking to install blosc2.
    """
    path = damaged(patch_chunk_header(samples["zstd"], 3, "version", 3))
    assert_format_error(napari_mrcz.readMRC, path, r"blosc chunk 3")
    with napari_mrcz.open_lazy(path) as lazy:
        np.testing.assert_array_equal(lazy[2], sample_array()[2])
        assert_format_error(lambda _: lazy[3], path, r"blosc chunk 3")


def smash_block_starts(raw: bytes, chunk: int) -> bytes:
    """Overwrite the block-start table right after a valid chunk header with 0xFF.

    blosc always detects this (checked for zstd and lz4 with c-blosc 1.21).
    """
    position = chunk_offsets(raw)[chunk] + CHUNK_HEADER_SIZE
    return raw[:position] + b"\xff" * 8 + raw[position + 8 :]


@pytest.mark.parametrize("kind", ["zstd", "zstd-be", "lz4"])
def test_undecompressable_chunk_is_a_format_error(kind, samples, damaged):
    path = damaged(smash_block_starts(samples[kind], 3))
    error = assert_format_error(napari_mrcz.readMRC, path, r"blosc chunk 3 is damaged")
    assert "cannot be decompressed" in str(error)


@pytest.mark.parametrize("kind", ["zstd", "lz4"])
def test_lazy_indexing_a_damaged_slice(kind, samples, damaged):
    """Only the damaged slice fails; the others still read, lazily or through idx."""
    path = damaged(smash_block_starts(samples[kind], 3))
    expected = sample_array()
    with napari_mrcz.open_lazy(path) as lazy:
        for index in (0, 1, 2, 4, 5, -1):
            np.testing.assert_array_equal(lazy[index], expected[index])
        assert_format_error(lambda _: lazy[3], path, r"blosc chunk 3")
        assert_format_error(lambda _: lazy[2:5], path, r"blosc chunk 3")
        assert_format_error(lambda _: np.asarray(lazy), path, r"blosc chunk 3")
        np.testing.assert_array_equal(lazy[4], expected[4])
    image, _ = napari_mrcz.readMRC(path, idx=(4, 5))
    np.testing.assert_array_equal(image, expected[4:6])
    assert_format_error(lambda p: napari_mrcz.readMRC(p, idx=3), path, r"blosc chunk 3")


@pytest.mark.parametrize("kind", ["zstd", "zstd-be", "lz4"])
def test_random_payload_damage(kind, samples, damaged, rng):
    """Random bytes over a payload (valid chunk header): an error or data, nothing else."""
    raw = samples[kind]
    offsets = chunk_offsets(raw)
    outcomes = collections.Counter()
    for _ in range(200):
        chunk = int(rng.integers(len(offsets) - 1))
        start, end = offsets[chunk] + CHUNK_HEADER_SIZE, offsets[chunk + 1]
        out = bytearray(raw)
        for _ in range(int(rng.integers(1, 6))):
            at = int(rng.integers(start, end))
            count = int(rng.integers(1, 9))
            out[at : at + count] = rng.bytes(min(count, end - at))
        path = damaged(bytes(out))
        for reader in READERS.values():
            outcomes[error_or_data(reader, path)] += 1
    assert outcomes["MRCZFormatError"] > 0  # the damage was noticed at least sometimes


# --------------------------------------------------------------------------- files that change


TRUNCATE_WHILE_OPEN = textwrap.dedent("""
    import os, sys
    import numpy as np
    import napari_mrcz
    path, compressor = sys.argv[1], sys.argv[2]
    # Noise: incompressible, so the MRCZ chunks are as large as the plain slices.
    data = np.random.default_rng(0).random((6, 256, 256), dtype=np.float32)
    napari_mrcz.writeMRC(data, path, compressor=None if compressor == "none" else compressor)
    lazy = napari_mrcz.open_lazy(path)
    assert lazy[0].sum() == data[0].sum()
    os.truncate(path, 1100)
    try:
        total = float(np.array(lazy[5]).sum())  # touch every byte of the slice
        print("data", total)
    except napari_mrcz.MRCZFormatError as error:
        print("MRCZFormatError", error)
    except BaseException as error:
        print("other", type(error).__name__, error)
""")


@pytest.mark.parametrize("compressor", ["none", "zstd"])
def test_file_truncated_while_open_lazily(compressor, tmp_path):
    """Another program truncates a file that napari holds open: no SIGBUS, a clean error.

    SliceReader has a message for exactly this ('was it truncated after opening?'), so the
    engine means to survive it.
    """
    result = subprocess.run(
        [sys.executable, "-c", TRUNCATE_WHILE_OPEN, str(tmp_path / "f.mrc"), compressor],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, (
        f"reader process died with {result.returncode}: {result.stderr[-1500:]}"
    )
    assert result.stdout.split()[0] in ("MRCZFormatError", "data"), result.stdout


# --------------------------------------------------------------------------- capped subprocess


def battery(folder: pathlib.Path, seed: int = 20261125, random_trials: int = 1500) -> dict:
    """Run every reader on many damaged files; count the outcomes by exception type.

    Used by the subprocess test below (``RLIMIT_AS`` capped); importable without pytest
    fixtures.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = sample_files(folder)
    cases: list[tuple[str, bytes]] = [("empty", b""), ("short", sources["plain"][:700])]
    for kind, raw in sources.items():
        for field in ("nx", "ny", "nz"):
            for value in (-1, 0, 2**30, 2**31 - 1):
                cases.append((f"{kind} {field}={value}", patch_field(raw, field, value)))
        for mode in (3, 9, 16, 7002, 999002, 6101):
            cases.append((f"{kind} mode={mode}", patch_field(raw, "mode", mode)))
        for value in (-1, 2**31 - 1):
            cases.append((f"{kind} nsymbt={value}", patch_field(raw, "nsymbt", value)))
        if kind.startswith(("zstd", "lz4")):
            for cut in compressed_cut_points(raw):
                cases.append((f"{kind} cut {cut}", raw[:cut]))
            for chunk in (0, 5):
                for field, value, _ in CHUNK_HEADER_DAMAGE:
                    cases.append(
                        (
                            f"{kind} chunk {chunk} {field}={value}",
                            patch_chunk_header(raw, chunk, field, value),
                        )
                    )
                cases.append(
                    (
                        f"{kind} chunk {chunk} version=1",
                        patch_chunk_header(raw, chunk, "version", 1),
                    )
                )
        else:
            cases.extend((f"{kind} cut {cut}", raw[:cut]) for cut in range(0, len(raw), 257))
    kinds = list(sources)
    for trial in range(random_trials):
        kind = kinds[trial % len(kinds)]
        out = bytearray(sources[kind])
        for _ in range(int(rng.integers(1, 4))):
            # Anywhere: header, extended header, chunk headers, payloads.
            at = int(rng.integers(len(out)))
            out[at] = int(rng.integers(256))
        if rng.random() < 0.2:
            del out[int(rng.integers(HEADER_SIZE, len(out))) :]
        cases.append((f"{kind} random {trial}", bytes(out)))

    outcomes: collections.Counter = collections.Counter()
    examples: dict[str, str] = {}
    path = folder / "damaged.mrc"
    for label, data in cases:
        path.write_bytes(data)
        for name, reader in READERS.items():
            try:
                reader(path)
                outcome = "ok"
            except MRCZFormatError as error:
                named = error.path == str(path)
                outcome = "MRCZFormatError" if named else "MRCZFormatError-nopath"
            except Exception as error:
                outcome = type(error).__name__
            outcomes[outcome] += 1
            examples.setdefault(outcome, f"{name} on {label}")
    return {"cases": len(cases), "outcomes": dict(outcomes), "examples": examples}


CAPPED_SCRIPT = textwrap.dedent("""
    import json, pathlib, resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.path.insert(0, sys.argv[2])
    import test_damaged
    report = test_damaged.battery(pathlib.Path(sys.argv[3]))
    print(json.dumps(report))
""")


@pytest.fixture(scope="module")
def capped_battery(tmp_path_factory):
    """Run :func:`battery` in a subprocess limited to ADDRESS_SPACE_LIMIT bytes."""
    folder = tmp_path_factory.mktemp("capped")
    return subprocess.run(
        [
            sys.executable,
            "-c",
            CAPPED_SCRIPT,
            str(ADDRESS_SPACE_LIMIT),
            str(pathlib.Path(__file__).parent),
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_capped_battery_no_crash_hang_or_huge_allocation(capped_battery):
    """The process survives (no signal), finishes in time, and never runs out of memory."""
    result = capped_battery
    assert result.returncode == 0, (
        f"exit status {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["cases"] > 1500
    assert "MemoryError" not in report["outcomes"], report["examples"]["MemoryError"]
    assert report["outcomes"]["MRCZFormatError"] > 1000


def test_capped_battery_only_format_errors(capped_battery):
    """Every failure in the battery is an MRCZFormatError that names the file."""
    assert capped_battery.returncode == 0, capped_battery.stderr[-3000:]
    report = json.loads(capped_battery.stdout.strip().splitlines()[-1])
    unexpected = {
        outcome: report["examples"][outcome]
        for outcome in report["outcomes"]
        if outcome not in ("ok", "MRCZFormatError")
    }
    assert not unexpected, f"exceptions other than MRCZFormatError (first case each): {unexpected}"
