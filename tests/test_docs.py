"""The manual: ``mkdocs build --strict`` builds it, and every example in it runs.

Every ``python`` code block of README.md and docs/*.md is executed, one namespace per
file and the blocks in document order, in a temporary folder holding the files the
examples name (see :func:`prepare_example_folder`). Every line of an ``sh`` code block
that starts with ``mrcz `` runs there too, in document order between the Python
blocks, as ``python -m napari_mrcz.cli ...``, and must exit with status 0. Each script
in examples/ runs in a subprocess.

Addresses on ``https://em.example.org`` and in the bucket ``s3://facility-archive``
are served from that folder by real servers on 127.0.0.1 (see
:func:`serve_example_folder`).

A block that cannot run here (it needs a display, a SLURM cluster or a running
scheduler) has the HTML comment ``<!-- not run: REASON -->`` on the line right before
its opening fence; the reason is required. mkdocs does not show the comment.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

import napari_mrcz

from tests.dm.builder import F32, I16, DMBuilder, stored_bytes
from tests.helpers import gain_normalised_movie
from tests.servers import RangeServer, S3Server

REPO = pathlib.Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
EXAMPLES = REPO / "examples"

#: The line before a code block that must not run, and why.
NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->\s*$")
#: The opening fence of a code block and its language.
FENCE = re.compile(r"^(?P<fence>```+)\s*(?P<language>[\w-]*)")

#: Seed of every file the examples read.
SEED = 20261206
#: DigitalMicrograph data type codes (ImageData/DataType) of the files made here.
DM_INT16, DM_FLOAT32 = 1, 2
#: The web server and the bucket the examples name, served from the example folder.
EXAMPLE_SITE = "https://em.example.org"
EXAMPLE_BUCKET = "facility-archive"
#: Blocks each file may leave out at most: skips stay few.
MAX_NOT_RUN = 3


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block of a Markdown file.

    Attributes
    ----------
    language : str
        The fence's language tag ('python', 'sh', ...; '' if none).
    code : str
        The block's text, without the fences.
    line : int
        Line number (1-based) of the block's first line of code.
    not_run : str or None
        The reason given by a ``<!-- not run: ... -->`` comment before the block.
    """

    language: str
    code: str
    line: int
    not_run: str | None


def code_blocks(path: pathlib.Path) -> list[CodeBlock]:
    """The fenced code blocks of the Markdown file ``path``, in order.

    Parameters
    ----------
    path : pathlib.Path
        A Markdown file.

    Returns
    -------
    list of CodeBlock
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        if opening is None:
            number += 1
            continue
        end = number + 1
        while end < len(lines) and not lines[end].startswith(opening["fence"]):
            end += 1
        previous = NOT_RUN.match(lines[number - 1]) if number else None
        blocks.append(
            CodeBlock(
                language=opening["language"].lower(),
                code="\n".join(lines[number + 1 : end]),
                line=number + 2,
                not_run=previous["reason"] if previous else None,
            )
        )
        number = end + 1
    return blocks


def mrcz_commands(block: CodeBlock) -> list[list[str]]:
    """The ``mrcz`` command lines of a shell block, as argument lists.

    Lines continued with a backslash are joined; comments are dropped.

    Parameters
    ----------
    block : CodeBlock
        An ``sh`` block.

    Returns
    -------
    list of list of str
        The arguments after ``mrcz`` of each line that starts with ``mrcz ``.
    """
    joined = block.code.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        if line.startswith("mrcz "):
            commands.append(shlex.split(line, comments=True)[1:])
    return commands


def write_dm4(path: pathlib.Path, image: np.ndarray, name: str, unit: str) -> None:
    """Write ``image`` (int16 or float32, 2D or 3D) as a DM4 file of one image.

    Parameters
    ----------
    path : pathlib.Path
        The file to write.
    image : numpy.ndarray
        int16 or float32 data, in numpy's (z, y, x) order.
    name : str
        The image's name in the file.
    unit : str
        The calibration unit of every axis ('nm', or '' for none); the scale is 0.1.
    """
    builder = DMBuilder(version=4, order="<")
    data_type, data_code = (DM_INT16, I16) if image.dtype == np.int16 else (DM_FLOAT32, F32)
    entry = builder.image(
        data_type,
        list(reversed(image.shape)),
        stored_bytes(image, "<"),
        calibrations=[(0.0, 0.1 if unit else 1.0, unit)] * image.ndim,
        name=name,
        data_code=data_code,
    )
    path.write_bytes(builder.file([entry]))


def prepare_example_folder(folder: pathlib.Path) -> None:
    """Write the files the manual's examples name into ``folder`` (seeded data).

    - ``movie.mrcz``: 128 counting frames of 32 x 32 (int8), zstd level 1;
    - ``raw/``: two gain-normalised float32 movies (plain MRC), ``raw/movie.mrc`` and
      ``raw/session_2/movie_0002.mrc``, Poisson counts times one float32 gain;
    - ``CountRef.dm4``: that gain, as a DM4 image;
    - ``stack.dm4`` (int16, 3 x 16 x 24) and ``image.dm4`` (float32, 48 x 40), in nm.

    Parameters
    ----------
    folder : pathlib.Path
        An empty folder.
    """
    rng = np.random.default_rng(SEED)
    counts = rng.poisson(1.0, (128, 32, 32)).astype(np.int8)
    napari_mrcz.writeMRC(
        counts, str(folder / "movie.mrcz"), compressor="zstd", clevel=1, pixelsize=0.8
    )
    movie, _, gain = gain_normalised_movie(rng, (24, 48, 48))
    second = (rng.poisson(1.0, movie.shape).astype(np.float32) * gain).astype(np.float32)
    (folder / "raw" / "session_2").mkdir(parents=True)
    napari_mrcz.writeMRC(movie, str(folder / "raw" / "movie.mrc"), pixelsize=0.8)
    napari_mrcz.writeMRC(
        second, str(folder / "raw" / "session_2" / "movie_0002.mrc"), pixelsize=0.8
    )
    write_dm4(folder / "CountRef.dm4", gain, "CountRef", "")
    stack = rng.integers(-500, 500, (3, 16, 24)).astype(np.int16)
    write_dm4(folder / "stack.dm4", stack, "stack", "nm")
    image = rng.normal(0.0, 1.0, (48, 40)).astype(np.float32)
    write_dm4(folder / "image.dm4", image, "image", "nm")


def serve_example_folder(
    folder: pathlib.Path, text: str, monkeypatch: pytest.MonkeyPatch, servers: list
) -> dict[str, str]:
    """Serve the example files for a page that names :data:`EXAMPLE_SITE` or the bucket.

    ``movie.mrcz`` is ``/session1/movie.mrcz`` on a local HTTP server and
    ``run1/movie.mrcz`` in the bucket of a local S3 server, whose address is
    ``$S3_ENDPOINT`` (the credentials AWS's variables). Returns the replacements
    to make in the page's code: :data:`EXAMPLE_SITE` by the local server.
    """
    replacements = {}
    if EXAMPLE_SITE in text:
        http = RangeServer()
        servers.append(http)
        http.files["/session1/movie.mrcz"] = (folder / "movie.mrcz").read_bytes()
        replacements[EXAMPLE_SITE] = http.url("")
    if f"s3://{EXAMPLE_BUCKET}" in text:
        s3 = S3Server()
        servers.append(s3)
        store = s3.filesystem()
        store.mkdir(EXAMPLE_BUCKET)
        store.put_file(str(folder / "movie.mrcz"), f"{EXAMPLE_BUCKET}/run1/movie.mrcz")
        monkeypatch.setenv("S3_ENDPOINT", s3.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return replacements


def run_mrcz(arguments: list[str], folder: pathlib.Path, where: str) -> None:
    """Run ``mrcz ARGUMENTS`` in ``folder`` and fail unless it exits with status 0.

    Parameters
    ----------
    arguments : list of str
        The arguments after ``mrcz``.
    folder : pathlib.Path
        The working folder.
    where : str
        The file and line the command comes from, for the failure message.
    """
    result = subprocess.run(
        [sys.executable, "-m", "napari_mrcz.cli", *arguments],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{where}: mrcz {shlex.join(arguments)} exited with {result.returncode}\n"
        f"{result.stdout}\n{result.stderr}"
    )


def test_site_builds_strictly(tmp_path: pathlib.Path) -> None:
    """mkdocs builds the manual with no warning, the API reference complete."""
    site = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(REPO / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reference = (site / "python.html").read_text(encoding="utf-8")
    for name in [*napari_mrcz.__all__, "MRCZFormatError", "MRCZWarning"]:
        assert f'id="napari_mrcz.{name}"' in reference, f"{name} is missing from the reference"
    assert (site / "screenshot.png").is_file()


@pytest.mark.parametrize("path", DOC_FILES, ids=[path.name for path in DOC_FILES])
def test_examples_run(
    path: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Python block and ``mrcz`` line of one Markdown file runs, in order."""
    prepare_example_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    blocks = code_blocks(path)
    assert sum(block.not_run is not None for block in blocks) <= MAX_NOT_RUN
    servers: list = []
    replacements = serve_example_folder(tmp_path, path.read_text(), monkeypatch, servers)
    try:
        for block in blocks:
            if block.not_run is not None:
                continue
            where = f"{path.relative_to(REPO)}:{block.line}"
            if block.language == "python":
                # Blank lines first, so that a traceback gives the Markdown file's line.
                source = "\n" * (block.line - 1) + block.code
                for name, served in replacements.items():
                    source = source.replace(name, served)
                exec(compile(source, str(path), "exec"), namespace)
            elif block.language == "sh":
                for arguments in mrcz_commands(block):
                    run_mrcz(arguments, tmp_path, where)
    finally:
        for server in servers:
            server.close()


def test_not_run_comments_give_a_reason() -> None:
    """Each ``not run`` comment stands right before a code block and says why."""
    for path in DOC_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if "not run" in line and line.lstrip().startswith("<!--"):
                assert NOT_RUN.match(line), f"{path.name}:{number + 1}: no reason given"
                following = lines[number + 1] if number + 1 < len(lines) else ""
                assert FENCE.match(following), f"{path.name}:{number + 1}: no block after it"


def test_named_source_files_exist() -> None:
    """Every ``napari_mrcz/...py`` file the manual names is there."""
    named = re.compile(r"napari_mrcz/[\w/]+\.py")
    for path in DOC_FILES:
        for name in set(named.findall(path.read_text(encoding="utf-8"))):
            assert (REPO / name).is_file(), f"{path.name} names {name}, which does not exist"


def test_compress_folder_example(tmp_path: pathlib.Path) -> None:
    """examples/compress_folder.py compresses and verifies a folder of movies."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "compress_folder.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(path.name for path in (tmp_path / "archive").rglob("*.mrcz")) == [
        "movie_000.mrcz",
        "movie_001.mrcz",
        "movie_002.mrcz",
    ]


def test_to_dask_example(tmp_path: pathlib.Path) -> None:
    """examples/to_dask.py averages a movie through dask."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "to_dask.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "average" in result.stdout


@pytest.mark.gui
def test_open_in_napari_example(tmp_path: pathlib.Path) -> None:
    """examples/open_in_napari.py shows a movie in napari and, with --quit, closes."""
    pytest.importorskip("napari")
    if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        pytest.skip("needs a display: run under xvfb-run")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "open_in_napari.py"), "--quit"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "layer" in result.stdout
