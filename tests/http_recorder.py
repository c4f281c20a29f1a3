"""A real HTTP server for tests: records every request, answers with queued statuses.

Usage::

    with RecordingHttpServer() as server:
        server.respond_with(503, 200)
        ...  # point the code under test at server.url
        assert server.requests_to("/sms")[0].json()["to"] == "+8613800138000"

or import the ``recording_server`` fixture into a test module::

    from tests.http_recorder import recording_server  # noqa: F401

Successful answers are JSON ``{"id": "msg-<n>", "sid": "SM<n>"}``, ``n`` counting requests from 1.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import pytest


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}


class _Handler(BaseHTTPRequestHandler):
    server: _RecorderHttpServer
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        recorder = self.server.recorder
        status, number = recorder._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={key.lower(): value for key, value in self.headers.items()},
                body=body,
            )
        )
        if 200 <= status < 300:
            payload = {"id": f"msg-{number}", "sid": f"SM{number}"}
        else:
            payload = {"error": f"status {status}"}
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _RecorderHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    recorder: RecordingHttpServer


class RecordingHttpServer:
    """A threaded HTTP server on ``127.0.0.1`` and a free port, recording what it receives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._statuses: deque[int] = deque()
        self._count = 0
        self._server = _RecorderHttpServer(("127.0.0.1", 0), _Handler)
        self._server.recorder = self
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> RecordingHttpServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"recording-http-server-{self.url}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> RecordingHttpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- test API --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def respond_with(self, *statuses: int) -> None:
        """Queue statuses for the next requests, in order; once used up, answer 200."""
        with self._lock:
            self._statuses.extend(statuses)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Requests whose path (query string ignored) is ``path``."""
        return [request for request in self.requests if request.path.split("?", 1)[0] == path]

    def clear(self) -> None:
        """Forget recorded requests and queued statuses; the request counter keeps counting."""
        with self._lock:
            self._requests.clear()
            self._statuses.clear()

    def _record(self, request: RecordedRequest) -> tuple[int, int]:
        with self._lock:
            self._requests.append(request)
            self._count += 1
            status = self._statuses.popleft() if self._statuses else 200
            return status, self._count


@pytest.fixture
def recording_server() -> Iterator[RecordingHttpServer]:
    """A started :class:`RecordingHttpServer`, stopped after the test."""
    with RecordingHttpServer() as server:
        yield server
