"""Property tests: damaged files are read or refused with MRCZFormatError, nothing else.

Three kinds of damage, each on small files we write (plain and compressed, little and big
endian) and on real files nobody here wrote:

(a) any header field set to random or extreme values,
(b) the file cut at a random length,
(c) random bytes flipped inside the compressed data section,

and (d) for real DM files: any 4 bytes set to 0, -1, INT_MAX, INT_MIN or random values,
and cuts; plus the class of values that take no bytes (structs without fields, empty
strings, arrays of no or of empty elements, images with a zero dimension), which read
as empty.

Reading goes through ``readMRC``, ``readMRCHeader`` and ``open_lazy``. The only exception
allowed is exactly :class:`napari_mrcz.MRCZFormatError` naming the file (it is a
ValueError, so the type is checked exactly), plus the documented ImportError of
``codecs.decompress_into`` for a file whose chunks really are c-blosc2 (its first chunk
says so) when the optional blosc2 package is missing. When reading succeeds the results
must be self-consistent: the eager and the lazy reader give the same pixels.

Deterministic: ``derandomize=True`` and no example database. One more test replays the
header-mutation property in a subprocess with a capped address space, to show that no
header makes the engine attempt a giant allocation.
"""

from __future__ import annotations

import functools
import pathlib
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import napari_mrcz
from napari_mrcz import MRCZFormatError
from napari_mrcz.dm.images import DATA_TYPES as DM_DATA_TYPES
from napari_mrcz.mrc.header import HEADER_DTYPE, HEADER_SIZE, header_dtype, stamp_byteorder
from napari_mrcz.mrc.layout import read_layout
from napari_mrcz.tools.info import describe

from tests.dm import builder as dm_builder
from tests.helpers import SHARED_DATA, real_files

FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Small real files with different quirks: permuted axes and NSYMBT 160 (gemmi), negative
#: cella (rsciio movie), float16 mode 12 (tomodrgn), int8 mode 0 with permuted axes (ngl).
REAL_NAMES = (
    "gemmi_5i55_tiny.ccp4",
    "rsciio_20241021_00405_movie.mrc",
    "tomodrgn_Unt_050_12.00A_000001.mrcs",
    "leginon_holetemplate.mrc",
)
#: Real files also rewritten as MRCZ for the data-section fuzz.
REAL_REWRITE_NAMES = ("gemmi_5i55_tiny.ccp4", "rsciio_20241021_00405_movie.mrc")

INT_EXTREMES = (
    0,
    1,
    -1,
    2,
    3,
    4,
    6,
    7,
    12,
    16,
    101,
    1000,
    6002,
    7002,
    2**15,
    2**16,
    2**30,
    2**31 - 1,
    -(2**31),
    20140,
    1146047817,
)


def _file_bytes(array, compressor, endian="le", meta=None) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "f.mrc"
        napari_mrcz.writeMRC(array, path, compressor=compressor, endian=endian, meta=meta)
        return path.read_bytes()


@functools.cache
def real_sources() -> dict[str, bytes]:
    """The bytes of the few real files used here (empty without the shared folder)."""
    wanted = set(REAL_NAMES) | set(REAL_REWRITE_NAMES)
    return {path.name: path.read_bytes() for path in real_files("mrc") if path.name in wanted}


@functools.cache
def our_sources() -> dict[str, bytes]:
    """Small files written by our writer: plain and compressed, both byte orders."""
    rng = np.random.default_rng(7)
    ramp = (np.arange(5 * 12 * 10).reshape(5, 12, 10) % 89).astype(np.int16)
    noisy = rng.normal(size=(4, 9, 16)).astype(np.float32)
    return {
        "plain-le": _file_bytes(ramp, None),
        "plain-be": _file_bytes(noisy, None, "be"),
        "plain-json": _file_bytes(ramp, None, meta={"slices_note": [1, 2], "x": "y"}),
        "zstd-le": _file_bytes(ramp, "zstd"),
        "zstd-be": _file_bytes(noisy, "zstd", "be"),
        "lz4-le": _file_bytes(noisy, "lz4"),
        "zlib-be": _file_bytes(ramp, "zlib", "be"),
        "blosclz-le": _file_bytes(ramp.astype(np.uint16)[:1], "blosclz", meta={"a": 1}),
    }


@functools.cache
def compressed_sources() -> dict[str, bytes]:
    """Every compressed file: ours and real files rewritten as MRCZ (zstd)."""
    sources = {name: raw for name, raw in our_sources().items() if not name.startswith("plain")}
    with tempfile.TemporaryDirectory() as folder:
        for name in REAL_REWRITE_NAMES:
            if name in real_sources():
                path = pathlib.Path(folder) / name
                path.write_bytes(real_sources()[name])
                image, _ = napari_mrcz.readMRC(path)
                sources[f"{name}.mrcz"] = _file_bytes(image, "zstd")
    return sources


def all_sources() -> dict[str, bytes]:
    return {
        **our_sources(),
        **{name: real_sources()[name] for name in REAL_NAMES if name in real_sources()},
    }


def data_end(raw: bytes) -> int:
    """Where the data of an undamaged file ends (trailing bytes after it are ignored)."""
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "f.mrc"
        path.write_bytes(raw)
        layout = read_layout(path)
        if layout.compressor is None:
            return layout.data_offset + layout.nz * layout.slice_nbytes
        with open(path, "rb") as handle:
            buffer = handle.read()
        return int(layout.index_chunks(buffer)[-1])


def first_chunk_claims_blosc2(path: pathlib.Path) -> bool:
    """True if the first chunk of the file says c-blosc2 format (version byte 3 to 5)."""
    raw = path.read_bytes()
    order = stamp_byteorder(raw[212:216]) or "<"
    header = np.frombuffer(raw[:HEADER_SIZE], dtype=header_dtype(order))[0]
    offset = HEADER_SIZE + int(header["nsymbt"])
    return 0 <= offset < len(raw) and raw[offset] in (3, 4, 5)


# --------------------------------------------------------------------------- the property


def _as_stack(image) -> np.ndarray:
    """readMRC's result (an array of 2 or 3 dims, or a list of frames) as (n, ny, nx)."""
    frames = image if isinstance(image, list) else [image]
    return np.concatenate([np.asarray(f).reshape(-1, *f.shape[-2:]) for f in frames])


def read_or_refuse(path: pathlib.Path) -> dict[str, str]:
    """Read ``path`` every way; return the outcome per reader; fail on anything unexpected."""
    outcomes: dict[str, str] = {}
    results: dict[str, np.ndarray] = {}

    def refused(name: str, error: BaseException) -> None:
        if type(error) is MRCZFormatError:
            assert error.path == str(path)
            assert str(error).startswith(f"{path}: ")
            assert error.problem
            outcomes[name] = "MRCZFormatError"
        elif (
            isinstance(error, ImportError)
            and not napari_mrcz.BLOSC2_PRESENT
            and "blosc2" in str(error)
            and first_chunk_claims_blosc2(path)
        ):
            outcomes[name] = "needs blosc2"  # documented: a genuine c-blosc2 file
        else:
            raise error

    with warnings.catch_warnings():
        # Odd headers warn (axis order, machine stamp); that is fine, but not an error.
        warnings.simplefilter("ignore", UserWarning)
        try:
            image, meta = napari_mrcz.readMRC(path)
        except Exception as error:
            refused("readMRC", error)
        else:
            stack = _as_stack(image)
            assert stack.size == int(np.prod(meta["dimensions"]))
            assert stack.shape[-2:] == tuple(int(n) for n in meta["dimensions"][1:])
            first_frame = image[0] if isinstance(image, list) else image
            assert first_frame.dtype == np.dtype(meta["dtype"])
            results["readMRC"] = stack
            outcomes["readMRC"] = "ok"

        try:
            header, slices = napari_mrcz.readMRCHeader(path)
        except Exception as error:
            refused("readMRCHeader", error)
        else:
            assert all(int(n) > 0 for n in header["dimensions"])
            assert slices >= 0
            outcomes["readMRCHeader"] = "ok"

        try:
            with napari_mrcz.open_lazy(path) as lazy:
                first, last = lazy[0], lazy[-1]
                whole = np.asarray(lazy)
        except Exception as error:
            refused("open_lazy", error)
        else:
            assert whole.shape == lazy.shape
            assert whole.dtype == lazy.dtype
            np.testing.assert_array_equal(first, whole[0])
            np.testing.assert_array_equal(last, whole[-1])
            results["open_lazy"] = whole.reshape(-1, *whole.shape[-2:])
            outcomes["open_lazy"] = "ok"

    if len(results) == 2:
        np.testing.assert_array_equal(results["readMRC"], results["open_lazy"])
    # The eager and the lazy reader agree on whether the file can be read at all.
    assert (outcomes["readMRC"] == "ok") == (outcomes["open_lazy"] == "ok"), outcomes
    return outcomes


def check_bytes(data: bytes) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "fuzzed.mrc"
        path.write_bytes(data)
        return read_or_refuse(path)


def test_sources_are_readable():
    """The undamaged inputs read, so any refusal below is about the damage."""
    assert len(our_sources()) == 8
    if real_files("mrc"):
        assert set(real_sources()) == set(REAL_NAMES) | set(REAL_REWRITE_NAMES)
    for raw in [*all_sources().values(), *compressed_sources().values()]:
        assert set(check_bytes(raw).values()) == {"ok"}


# --------------------------------------------------------------------------- (a) header fields


def _scalar_strategy(dtype: np.dtype):
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        extremes = [v for v in INT_EXTREMES if info.min <= v <= info.max]
        return st.one_of(st.sampled_from(extremes), st.integers(int(info.min), int(info.max)))
    if dtype.kind == "f":
        return st.one_of(
            st.sampled_from(
                [0.0, -1.0, 1.0, float("nan"), float("inf"), float("-inf"), 3.4e38, -3.4e38, 1e-45]
            ),
            st.floats(width=32),
        )
    return st.binary(min_size=0, max_size=dtype.itemsize)  # S and V fields


def _field_strategy(name: str):
    dtype, _ = HEADER_DTYPE.fields[name][:2]
    base, shape = dtype.base, dtype.shape
    if not shape:
        value = _scalar_strategy(base)
    else:
        count = int(np.prod(shape))
        value = st.lists(_scalar_strategy(base), min_size=count, max_size=count)
    return st.tuples(st.just(name), value)


FIELD_MUTATIONS = st.one_of([_field_strategy(name) for name in HEADER_DTYPE.names])


def mutate_header(raw: bytes, mutations) -> bytes:
    """Set header fields through a numpy structured view in the file's byte order."""
    order = stamp_byteorder(raw[212:216]) or "<"
    header = np.frombuffer(raw[:HEADER_SIZE], dtype=header_dtype(order)).copy().reshape(())
    for name, value in mutations:
        dtype = HEADER_DTYPE.fields[name][0]
        if dtype.kind == "V" and not dtype.shape:
            header[name] = np.void(value.ljust(dtype.itemsize, b"\0"))
        elif dtype.shape:
            header[name] = np.array(value, dtype=dtype.base).reshape(dtype.shape)
        else:
            header[name] = value
    return header.tobytes() + raw[HEADER_SIZE:]


@FUZZ_SETTINGS
@given(
    source=st.sampled_from(sorted(our_sources())),
    mutations=st.lists(FIELD_MUTATIONS, min_size=1, max_size=3),
)
def test_header_mutation_our_files(source, mutations):
    check_bytes(mutate_header(our_sources()[source], mutations))


@FUZZ_SETTINGS
@given(
    source=st.sampled_from(REAL_NAMES), mutations=st.lists(FIELD_MUTATIONS, min_size=1, max_size=3)
)
def test_header_mutation_real_files(source, mutations):
    if source not in real_sources():
        return  # the shared folder is absent: nothing to mutate
    check_bytes(mutate_header(real_sources()[source], mutations))


@FUZZ_SETTINGS
@given(
    source=st.sampled_from(sorted(our_sources())),
    field=st.sampled_from(
        [
            "nx",
            "ny",
            "nz",
            "mode",
            "nsymbt",
            "mx",
            "my",
            "mz",
            "mapc",
            "mapr",
            "maps",
            "imod_stamp",
            "imod_flags",
            "packed_bytes",
        ]
    ),
    value=st.one_of(st.sampled_from(INT_EXTREMES), st.integers(-(2**31), 2**31 - 1)),
)
def test_structural_field_extremes(source, field, value):
    """The fields that decide the layout, hammered with extreme integers."""
    dtype = HEADER_DTYPE.fields[field][0]
    info = np.iinfo(dtype)
    check_bytes(
        mutate_header(our_sources()[source], [(field, int(np.clip(value, info.min, info.max)))])
    )


#: Fields that say nothing about where or what the pixels are: changing one may change the
#: meta dict (and warn, for MAPC/MAPR/MAPS) but never the pixels read.
BENIGN_FIELDS = (
    "nxstart",
    "nystart",
    "nzstart",
    "cella",
    "cellb",
    "mapc",
    "mapr",
    "maps",
    "dmin",
    "dmax",
    "dmean",
    "ispg",
    "extra1",
    "extra2",
    "extra3",
    "nversion",
    "voltage",
    "cs",
    "gain",
    "packed_bytes",
    "origin",
    "map",
    "rms",
    "nlabl",
    "label",
)


@FUZZ_SETTINGS
@given(
    source=st.sampled_from(sorted(our_sources()) + list(REAL_NAMES)),
    mutation=st.one_of([_field_strategy(name) for name in BENIGN_FIELDS]),
)
def test_benign_header_fields_do_not_change_pixels(source, mutation):
    raw = all_sources().get(source)
    if raw is None:
        return
    with tempfile.TemporaryDirectory() as folder:
        original, mutated = pathlib.Path(folder) / "a.mrc", pathlib.Path(folder) / "b.mrc"
        original.write_bytes(raw)
        mutated.write_bytes(mutate_header(raw, [mutation]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            expected, _ = napari_mrcz.readMRC(original)
            image, _ = napari_mrcz.readMRC(mutated)
            with napari_mrcz.open_lazy(mutated) as lazy:
                lazy_image = np.asarray(lazy)
    np.testing.assert_array_equal(image, expected)
    np.testing.assert_array_equal(lazy_image, expected)


# --------------------------------------------------------------------------- (b) truncation


@FUZZ_SETTINGS
@given(
    source=st.sampled_from(sorted(our_sources()) + list(REAL_NAMES)),
    fraction=st.floats(0.0, 1.0, exclude_max=True),
)
def test_truncation(source, fraction):
    raw = all_sources().get(source)
    if raw is None:
        return  # a real file while the shared folder is absent
    cut = int(fraction * len(raw))
    outcomes = check_bytes(raw[:cut])
    if cut < data_end(raw):
        # Some pixels are gone: the data readers must say so.
        assert outcomes["readMRC"] == "MRCZFormatError", (cut, outcomes)
        assert outcomes["open_lazy"] == "MRCZFormatError", (cut, outcomes)


@FUZZ_SETTINGS
@given(source=st.sampled_from(sorted(compressed_sources())), data=st.data())
def test_truncation_inside_compressed_data(source, data):
    """Cuts concentrated in the data section of compressed files, down to the byte."""
    raw = compressed_sources()[source]
    start = HEADER_SIZE
    cut = data.draw(st.integers(start, len(raw) - 1))
    outcomes = check_bytes(raw[:cut])
    assert outcomes["readMRC"] == "MRCZFormatError", (cut, outcomes)
    assert outcomes["open_lazy"] == "MRCZFormatError", (cut, outcomes)


# --------------------------------------------------------------------------- (c) data flips


def data_section(raw: bytes) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "f.mrc"
        path.write_bytes(raw)
        layout = read_layout(path)
    return layout.data_offset, len(raw)


@FUZZ_SETTINGS
@given(
    source=st.sampled_from(sorted(compressed_sources())),
    flips=st.lists(
        st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)),
        min_size=1,
        max_size=12,
    ),
)
def test_flipped_bytes_in_compressed_data(source, flips):
    raw = compressed_sources()[source]
    start, end = data_section(raw)
    out = bytearray(raw)
    for where, mask in flips:
        out[start + int(where * (end - start))] ^= mask
    check_bytes(bytes(out))


@FUZZ_SETTINGS
@given(
    source=st.sampled_from(sorted(compressed_sources())),
    where=st.floats(0.0, 1.0, exclude_max=True),
    length=st.integers(1, 64),
    fill=st.binary(min_size=64, max_size=64),
)
def test_overwritten_run_in_compressed_data(source, where, length, fill):
    """A run of bytes overwritten, as a bad disk sector or a partial write would."""
    raw = compressed_sources()[source]
    start, end = data_section(raw)
    at = start + int(where * (end - start))
    out = bytearray(raw)
    out[at : at + length] = fill[: min(length, end - at)]
    check_bytes(bytes(out))


# --------------------------------------------------------------------------- capped replay


CAPPED_REPLAY = textwrap.dedent("""
    import resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.path.insert(0, sys.argv[2])
    import test_fuzzed
    test_fuzzed.test_header_mutation_our_files()
    test_fuzzed.test_structural_field_extremes()
    print("replayed")
""")


def test_header_mutation_under_address_space_cap():
    """Replay the header-mutation properties with at most 2 GiB of address space.

    Any attempt to allocate for a header's absurd dimensions becomes a MemoryError, which
    the property treats as a failure; a crash shows as a signal.
    """
    result = subprocess.run(
        [sys.executable, "-c", CAPPED_REPLAY, str(2 * 2**30), str(pathlib.Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.strip().endswith("replayed")


# --------------------------------------------------------------------------- (d) DM files

#: Small real DM files: DM4 and DM3, a 2D image, a stack, a packed-complex FFT, a spectrum.
DM_NAMES = (
    "dm4/rsciio_2D_test-11.dm4",
    "dm3/rsciio_2D_test-1.dm3",
    "dm4/rsciio_3D_test-1.dm4",
    "dm4/rsciio_2D_test_fft_packed_complex8.dm4",
    "dm3/rsciio_1D_test-EELS_spectrum.dm3",
)
#: 4-byte values a damaged or hostile field takes: 0, -1, INT_MAX, INT_MIN, small ones.
WORD_EXTREMES = (0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 1, 2, 15, 18, 20)


@functools.cache
def dm_sources() -> dict[str, bytes]:
    """The bytes of the real DM files above (empty without the shared folder)."""
    if SHARED_DATA is None:
        return {}
    return {name: (SHARED_DATA / name).read_bytes() for name in DM_NAMES}


def read_dm_or_refuse(path: pathlib.Path) -> str:
    """Read a DM file every way (data too); any failure but MRCZFormatError naming it fails."""
    outcome = "ok"
    for read in (
        lambda: [np.asarray(data) for data, _ in napari_mrcz.read_dm(path, lazy=False)],
        lambda: napari_mrcz.readDM4(path),
        lambda: describe(path),
    ):
        try:
            read()
        except MRCZFormatError as error:
            refusal = error
        else:
            continue
        assert type(refusal) is MRCZFormatError
        assert refusal.path == str(path)
        assert str(refusal).startswith(f"{path}: ")
        outcome = "MRCZFormatError"
    return outcome


def check_dm_bytes(data: bytes, suffix: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / f"fuzzed{suffix}"
        path.write_bytes(data)
        return read_dm_or_refuse(path)


def set_word(raw: bytes, offset: int, value: int) -> bytes:
    return raw[:offset] + value.to_bytes(4, "big") + raw[offset + 4 :]


def test_dm_struct_without_fields_in_a_real_file():
    """4 zero bytes at 4173 make a struct of no fields; numpy's ValueError leaked."""
    raw = dm_sources().get("dm4/rsciio_2D_test-11.dm4")
    if raw is None:
        pytest.skip("the shared real files are not available")
    assert raw[4173:4177] != bytes(4)
    assert check_dm_bytes(set_word(raw, 4173, 0), ".dm4") == "MRCZFormatError"


@FUZZ_SETTINGS
@given(
    source=st.sampled_from(DM_NAMES),
    where=st.floats(0.0, 1.0, exclude_max=True),
    value=st.one_of(st.sampled_from(WORD_EXTREMES), st.integers(0, 2**32 - 1)),
)
def test_dm_word_mutation_real_files(source, where, value):
    """Any 4 bytes of a real DM file set to an extreme: data or one clean refusal."""
    raw = dm_sources().get(source)
    if raw is None:
        return  # the shared folder is absent
    offset = int(where * (len(raw) - 4))
    check_dm_bytes(set_word(raw, offset, value), pathlib.Path(source).suffix)


@FUZZ_SETTINGS
@given(source=st.sampled_from(DM_NAMES), fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_dm_truncation_real_files(source, fraction):
    raw = dm_sources().get(source)
    if raw is None:
        return
    check_dm_bytes(raw[: int(fraction * len(raw))], pathlib.Path(source).suffix)


#: Types whose values take no bytes, as info arrays (after the '%%%%' and its length),
#: and the value they legitimately hold: empty.
ZERO_SIZE_TYPES = {
    "struct without fields": ([dm_builder.STRUCT, 0, 0], ()),
    "empty string": ([dm_builder.STRING, 0], ""),
    "array of no elements": ([dm_builder.ARRAY, dm_builder.I32, 0], []),
    "array of empty structs": ([dm_builder.ARRAY, dm_builder.STRUCT, 0, 0, 5], []),
    "array of 2**32 - 1 empty structs": (
        [dm_builder.ARRAY, dm_builder.STRUCT, 0, 0, 2**32 - 1],
        [],
    ),
    "array of empty strings": ([dm_builder.ARRAY, dm_builder.STRING, 0, 3], []),
    "array of empty arrays": ([dm_builder.ARRAY, dm_builder.ARRAY, dm_builder.I32, 0, 4], []),
    "struct of an empty struct": (
        [dm_builder.STRUCT, 0, 1, 0, dm_builder.STRUCT, 0, 0],
        ((),),
    ),
    "struct of an empty string": ([dm_builder.STRUCT, 0, 1, 0, dm_builder.STRING, 0], ("",)),
    "struct of an empty array": (
        [dm_builder.STRUCT, 0, 1, 0, dm_builder.ARRAY, dm_builder.I32, 0],
        ([],),
    ),
}


def as_lists(value):
    """A tag value with its arrays as lists, to compare it with ``==``."""
    if isinstance(value, tuple):
        return tuple(as_lists(part) for part in value)
    return value.tolist() if isinstance(value, np.ndarray) else value


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("kind", ZERO_SIZE_TYPES)
def test_dm_values_of_no_bytes_are_empty(kind, version, tmp_path):
    """The class of the issue's struct: zero-size types and zero counts read as empty."""
    infos, expected = ZERO_SIZE_TYPES[kind]
    builder = dm_builder.DMBuilder(version)
    image = builder.image(6, [4, 2], bytes(range(8)))
    tag = builder.raw_tag("Empty", infos, b"")
    path = tmp_path / f"empty.dm{version}"
    path.write_bytes(builder.file([image], extra=[builder.group("Odd", [tag])]))
    [(data, meta)] = napari_mrcz.read_dm(path)
    np.testing.assert_array_equal(data, np.arange(8, dtype=np.uint8).reshape(2, 4))
    assert as_lists(meta["tags"]["Odd"]["Empty"]) == expected
    assert read_dm_or_refuse(path) == "ok"


@pytest.mark.parametrize("dims", [[0], [0, 3], [3, 0], [2, 0, 3]])
@pytest.mark.parametrize("data_type", sorted(DM_DATA_TYPES))
def test_dm_images_of_no_pixels_are_empty(data_type, dims, tmp_path):
    """A zero dimension gives an empty image of the right shape, eager or lazy."""
    _, element, kind = DM_DATA_TYPES[data_type]
    grid = dims[::-1]
    stored = {"rgb": (*grid, 4), "packed": (*grid[:-1], grid[-1] // 2 + 1)}.get(kind, grid)
    nbytes = int(np.prod(stored)) * np.dtype(element).itemsize
    builder = dm_builder.DMBuilder(4)
    path = tmp_path / "empty.dm4"
    path.write_bytes(builder.file([builder.image(data_type, dims, bytes(nbytes))]))
    shape = (*grid, 3) if kind == "rgb" else tuple(grid)
    for lazy in (False, True):
        [(data, _)] = napari_mrcz.read_dm(path, lazy=lazy)
        assert np.asarray(data).shape == shape
        assert data[:1].shape == (min(1, shape[0]), *shape[1:])
    assert read_dm_or_refuse(path) == "ok"
