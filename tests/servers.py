"""Real servers on 127.0.0.1 for the remote-data tests, counting what they send.

:class:`RangeServer` is a threaded HTTP/1.1 server with byte ranges (206 and
Content-Range, as web servers answer), a request log and some faulty addresses;
:class:`S3Server` is moto's S3-protocol server with the same kind of log.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclasses.dataclass
class Request:
    """One request a server answered: method, path, Range header, status, body bytes.

    The body bytes are those the answer carries, counted as it starts going out.
    """

    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


class _RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # no access log on stderr
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        sending = 0 if self.command == "HEAD" else len(body)
        # Recorded before the body goes out: a client may be done before this thread.
        self.server.record(
            Request(self.command, self.path, self.headers.get("Range"), status, sending)
        )
        try:
            for at in range(0, sending, 2**16):
                self.wfile.write(body[at : at + 2**16])
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _answer(self) -> None:
        server = self.server
        time.sleep(server.delay_s)
        path = self.path.split("?", 1)[0]
        if path == "/forbidden.mrc":
            return self._send(403, b"forbidden")
        if path == "/loop.mrc":
            return self._send(302, headers={"Location": self.path})
        data = server.files.get(path)
        if data is None:
            return self._send(404, b"not found")
        wanted = _RANGE.match(self.headers.get("Range", "").strip())
        if wanted is None or not any(wanted.groups()):
            return self._send(200, data, {"Accept-Ranges": "bytes"})
        first, last = wanted.groups()
        if not first:
            start, stop = max(0, len(data) - int(last)), len(data)
        else:
            start, stop = int(first), min(len(data), int(last) + 1 if last else len(data))
        if start >= stop:
            return self._send(416, headers={"Content-Range": f"bytes */{len(data)}"})
        body = data[start:stop]
        total = "*" if path in server.sizeless else str(len(data))
        if path in server.cut_short:  # honest headers, half the body, then hang up
            self.send_response(206)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
            self.end_headers()
            self.server.record(Request("GET", self.path, None, 206, len(body) // 2))
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return None
        return self._send(
            206,
            body,
            {"Content-Range": f"bytes {start}-{stop - 1}/{total}", "Accept-Ranges": "bytes"},
        )

    # the names http.server calls
    do_GET = _answer  # noqa: N815
    do_HEAD = _answer  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (a timeout) is no failure of the server


class RangeServer:
    """An HTTP server on 127.0.0.1 serving ``files`` (path -> bytes) with byte ranges.

    ``/forbidden.mrc`` answers 403 and ``/loop.mrc`` redirects to itself; paths put
    in :attr:`cut_short` send half of each body and hang up, those in :attr:`sizeless`
    leave the total size out of Content-Range (``bytes 0-99/*``); :attr:`delay_s`
    slows every answer. :attr:`requests` lists what was answered.
    """

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _RangeHandler)
        self._server.files = {}
        self._server.cut_short = set()
        self._server.sizeless = set()
        self._server.delay_s = 0.0
        self._server.log = []
        self._lock = threading.Lock()
        self._server.record = self._record
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _record(self, request: Request) -> None:
        with self._lock:
            self._server.log.append(request)

    @property
    def files(self) -> dict[str, bytes]:
        return self._server.files

    @property
    def cut_short(self) -> set[str]:
        return self._server.cut_short

    @property
    def sizeless(self) -> set[str]:
        return self._server.sizeless

    @property
    def delay_s(self) -> float:
        return self._server.delay_s

    @delay_s.setter
    def delay_s(self, seconds: float) -> None:
        self._server.delay_s = seconds

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._server.log)

    def forget(self) -> None:
        """Start counting afresh."""
        with self._lock:
            self._server.log.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class S3Server:
    """moto's S3-protocol server on 127.0.0.1, with a log of the object reads.

    Use :meth:`options` as the ``storage_options`` of an ``s3://`` address.
    """

    def __init__(self) -> None:
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # no metadata probe
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def options(self, **more) -> dict:
        """s3fs's options for this server (dummy credentials, one attempt per request)."""
        return {
            "endpoint_url": self.endpoint,
            "key": "testing",
            "secret": "testing",
            "skip_instance_cache": True,
            "config_kwargs": {"retries": {"max_attempts": 1}},
            **more,
        }

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(**self.options())

    def close(self) -> None:
        self._server.stop()
