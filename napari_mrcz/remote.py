"""Files on web servers and object stores, read in byte ranges through fsspec.

An address with a protocol (``https://``, ``http://``, ``s3://``, any protocol
fsspec knows) is opened as a :class:`RemoteFile`: its first :data:`HEAD_BYTES` (the
MRC header and, mostly, the extended header) and its size come in one request over
HTTP (the size from the answer's Content-Range), in two elsewhere (the size asked
first), and every other read is one ranged request. Credentials, endpoints and
timeouts are fsspec's: its configuration and environment (``FSSPEC_S3_*``, AWS's
own variables) or ``storage_options``, e.g. ``{"anon": True}`` for a public bucket.
fsspec, aiohttp and s3fs are the ``napari-mrcz[remote]`` extra, imported only when
an address is opened.

Messages name the file by :func:`redact`: without a password in the address or the
query string of a signed URL.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.parse
from typing import Any

from napari_mrcz.errors import RemoteFileError
from napari_mrcz.suffixes import COMPRESSED_MRC_SUFFIXES, DM_SUFFIXES

#: Bytes fetched by the first read of a file: its header (1024 bytes) and the
#: extended headers of most files, so that opening costs one request for both.
HEAD_BYTES = 64 * 2**10

#: Seconds a server may stay silent (connecting, or in the middle of a response)
#: before a read gives up: for HTTP unless ``storage_options={"client_kwargs":
#: {"timeout": ...}}`` says otherwise, for S3 unless ``config_kwargs`` does.
TIMEOUT_S = 60.0
#: Attempts of an S3 request (botocore's default is 5, each waiting for the timeout,
#: and s3fs retries on top: a hung endpoint took 7 minutes to fail).
S3_ATTEMPTS = 2

_PROTOCOL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")
_LOCAL_PROTOCOLS = frozenset({"file", "local"})
_INSTALL = (
    "reading files from web servers and object stores needs: pip install 'napari-mrcz[remote]'"
)


def is_url(path: Any) -> bool:
    """True if ``path`` is an address with a protocol other than the local file system."""
    if not isinstance(path, str):
        return False
    match = _PROTOCOL.match(path)
    return match is not None and match.group(1).lower() not in _LOCAL_PROTOCOLS


def url_path(url: str) -> str:
    """The path of an address, without its query string: what its name ends in."""
    return urllib.parse.urlsplit(url).path


def local_only_problem(url: str) -> str | None:
    """Why the file at ``url`` must be downloaded first (by its name), or None."""
    name = url_path(url).lower()
    if name.endswith(COMPRESSED_MRC_SUFFIXES):
        return "a .gz or .bz2 file is read from a local disk: download it first"
    if name.endswith(DM_SUFFIXES):
        return "DigitalMicrograph files are read from a local disk: download it first"
    return None


def redact(url: str) -> str:
    """``url`` as shown in messages: a password and a query string (a signature) left out.

    >>> redact("https://user:secret@example.org/a.mrc?X-Amz-Signature=abc")
    'https://user:***@example.org/a.mrc?***'
    """
    scheme, _, rest = url.partition("://")
    # The host ends at the last "@" before the path: a password may hold "/" or "#".
    at = rest.rfind("@", 0, max(rest.find("/", rest.rfind("@") + 1), 0) or len(rest))
    if at >= 0:
        user = rest[:at].partition(":")[0]
        rest = f"{user}:***@{rest[at + 1 :]}"
    cut = min((rest.find(mark) for mark in "?#" if mark in rest), default=-1)
    if cut >= 0:
        rest = rest[:cut] + "?***"
    return f"{scheme}://{rest}"


def _http_options(options: dict[str, Any]) -> dict[str, Any]:
    """fsspec's HTTP options with a timeout, unless the caller gave one."""
    import aiohttp

    client = dict(options.get("client_kwargs", {}))
    client.setdefault(
        "timeout", aiohttp.ClientTimeout(sock_connect=TIMEOUT_S, sock_read=TIMEOUT_S)
    )
    return {**options, "client_kwargs": client}


def _s3_options(options: dict[str, Any]) -> dict[str, Any]:
    """s3fs's options with timeouts and few attempts, unless the caller gave them."""
    config = dict(options.get("config_kwargs", {}))
    config.setdefault("connect_timeout", TIMEOUT_S)
    config.setdefault("read_timeout", TIMEOUT_S)
    config.setdefault("retries", {"max_attempts": S3_ATTEMPTS})
    return {**options, "config_kwargs": config}


def _filesystem(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """fsspec's file system for ``url`` and the path on it."""
    try:
        import fsspec
    except ImportError:
        raise RemoteFileError(redact(url), _INSTALL) from None
    options = dict(storage_options or {})
    protocol = _PROTOCOL.match(url).group(1).lower()  # type: ignore[union-attr]
    try:
        if protocol in ("http", "https"):
            options = _http_options(options)
        elif protocol in ("s3", "s3a"):
            options = _s3_options(options)
        return fsspec.core.url_to_fs(url, **options)
    except ImportError as error:
        raise RemoteFileError(redact(url), f"{_INSTALL} ({error})") from None
    except ValueError as error:  # a protocol fsspec does not know
        raise RemoteFileError(redact(url), str(error)) from None


def _content_range_size(value: str | None) -> int | None:
    """The total size in an HTTP Content-Range header (``bytes 0-99/1234``), if given."""
    match = re.fullmatch(r"bytes (?:\d+-\d+|\*)/(\d+)", (value or "").strip())
    return None if match is None else int(match.group(1))


def _http_first_bytes(fs: Any, url: str, count: int) -> tuple[bytes, int | None]:
    """The first ``count`` bytes of ``url`` and its size (None if not told), in one GET.

    A server that ignores the Range header (200 and the whole file) is refused
    before the body is read, unless the file is that short anyway.
    """
    from fsspec.asyn import sync

    async def first_bytes() -> tuple[bytes, int | None]:
        session = await fs.set_session()
        options = dict(fs.kwargs)
        headers = {**options.pop("headers", {}), "Range": f"bytes=0-{count - 1}"}
        async with session.get(fs.encode_url(url), headers=headers, **options) as answer:
            if answer.status == 416:  # an empty file
                return b"", _content_range_size(answer.headers.get("Content-Range")) or 0
            if answer.status == 404:
                raise FileNotFoundError(url)
            answer.raise_for_status()
            if answer.status == 206:  # the size from Content-Range, if the server says it
                return await answer.read(), _content_range_size(
                    answer.headers.get("Content-Range")
                )
            length = answer.content_length
            if length is None or length > count:
                raise RemoteFileError(
                    redact(url),
                    "the server does not send parts of files (no HTTP Range support): "
                    "download the file first",
                )
            data = await answer.read()
            return data, len(data)

    return sync(fs.loop, first_bytes)


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and the errors it came from (fsspec wraps aiohttp's in its own)."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return chain


def problem_of(error: BaseException, url: str) -> str:
    """What ``error``, raised by fsspec reading ``url``, means, in a user's words."""
    chain = _causes(error)
    names = {type(cause).__name__ for cause in chain}
    statuses = [getattr(cause, "status", None) for cause in chain]
    if "TooManyRedirects" in names:
        problem = "the server redirects in a loop"
    elif 403 in statuses or any(isinstance(cause, PermissionError) for cause in chain):
        problem = (
            "access denied (403): check the credentials, or open a public bucket "
            "anonymously (storage_options={'anon': True})"
        )
    elif 404 in statuses or any(isinstance(cause, FileNotFoundError) for cause in chain):
        problem = "no such file on the server (404)"
    elif any(isinstance(cause, TimeoutError) for cause in chain) or "FSTimeoutError" in names:
        problem = "the server did not answer in time"
    elif "ClientPayloadError" in names:
        problem = "the server stopped sending in the middle of a read"
    elif "NoCredentialsError" in names:
        problem = (
            "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a "
            "profile), or open a public bucket anonymously (storage_options={'anon': True})"
        )
    elif any(name.startswith(("ClientConnector", "EndpointConnection")) for name in names):
        problem = "cannot connect to the server"
    elif any(isinstance(status, int) and status >= 400 for status in statuses):
        status = next(s for s in statuses if isinstance(s, int) and s >= 400)
        problem = f"the server answered with error {status}"
    else:
        problem = f"could not read it ({type(error).__name__}: {error})"
    return problem.replace(url, redact(url))


class RemoteFile:
    """A remote file read in byte ranges, with the file-like ``read``/``seek`` a header needs.

    Parameters
    ----------
    url : str
        The address (see :func:`is_url`).
    storage_options : dict, optional
        Passed to fsspec's file system: credentials, ``endpoint_url``, ``anon``...

    Raises
    ------
    RemoteFileError
        If the file cannot be found or read, or fsspec is not installed.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.name = redact(url)
        self.storage_options = dict(storage_options or {})
        self._fs, self._path = _filesystem(url, storage_options)
        self._pid = os.getpid()
        self._head: bytes | None = None
        self._head_lock = threading.Lock()
        self._position = 0
        size: int | None = None
        if "http" in getattr(self._fs, "protocol", ()):
            self._head, size = self._call(_http_first_bytes, self._fs, self._path, HEAD_BYTES)
        if size is None:
            size = self._size()
        self.size = int(size)

    def _filesystem(self) -> Any:
        """fsspec's file system, made again in a forked process (fsspec's are not fork-safe)."""
        if self._pid != os.getpid():
            options = {**self.storage_options, "skip_instance_cache": True}
            self._fs, self._path = _filesystem(self.url, options)
            self._pid = os.getpid()
        return self._fs

    def _size(self) -> int:
        """The file's size, asked of the server."""
        info = self._call(self._filesystem().info, self._path)
        if info.get("type") == "directory":
            raise RemoteFileError(self.name, "is a folder, not a file")
        size = info.get("size")
        if size is None:
            raise RemoteFileError(self.name, "the server does not tell the file's size")
        return int(size)

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except RemoteFileError:
            raise
        except Exception as error:  # fsspec's, aiohttp's and botocore's, told in words
            raise RemoteFileError(self.name, problem_of(error, self.url)) from None

    def pread(self, offset: int, count: int) -> bytes:
        """Bytes ``offset`` to ``offset + count`` (fewer at the end of the file): one request."""
        stop = min(self.size, offset + count)
        if stop <= offset:
            return b""
        head = self._head or b""
        if stop <= len(head):
            return head[offset:stop]
        start = max(offset, len(head))  # what the head holds is not asked for again
        data = self._call(self._filesystem().cat_file, self._path, start=start, end=stop)
        if len(data) != stop - start:
            raise RemoteFileError(
                self.name,
                f"the server sent {len(data)} bytes for bytes {start} to {stop} "
                f"of a file of {self.size} bytes (did the file change?)",
            )
        return head[offset:start] + data if start > offset else data

    def read_into(self, view: memoryview, offset: int) -> None:
        """Fill ``view`` with the bytes from ``offset`` on: one request.

        Raises
        ------
        RemoteFileError
            If the file ends first.
        """
        data = self.pread(offset, len(view))
        if len(data) < len(view):
            raise RemoteFileError(
                self.name, f"the file ends at byte {self.size}, before the data it declares"
            )
        view[:] = data

    def head(self) -> bytes:
        """The first :data:`HEAD_BYTES` of the file (fetched once)."""
        with self._head_lock:
            if self._head is None:
                self._head = self.pread(0, HEAD_BYTES)
            return self._head

    # The little of a binary file's interface that reading a header needs.
    def read(self, count: int) -> bytes:
        """Read ``count`` bytes at the current position (served from :meth:`head` there)."""
        self.head()
        data = self.pread(self._position, count)
        self._position += len(data)
        return data

    def seek(self, offset: int) -> int:
        """Move to byte ``offset``."""
        self._position = int(offset)
        return self._position

    def tell(self) -> int:
        """The current position."""
        return self._position

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the address, options, size and first bytes (for dask's workers)."""
        return {key: value for key, value in self.__dict__.items() if key != "_head_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._head_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RemoteFile {self.name} {self.size} bytes>"
