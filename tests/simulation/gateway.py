"""The world outside Kindly in a simulation: an SMS gateway and the hand-off endpoints, with faults.

One threaded HTTP server on 127.0.0.1 serves ``/sms`` (the webhook SMS provider's JSON), ``/phone`` (call
tasks) and ``/specialist`` (cases). It behaves as a real gateway does: it takes each idempotency key once
(a retried key it already took is answered 200 and not delivered again), and it fails as real ones do:
503 (refused), a hang past the client's timeout (not taken), or a 500 after taking the message (the
answer is lost). Which request fails is decided from the run's seed and the request's own identity (its
key and how many times the key was tried), never from arrival order, so a subset of the accounts meets
the same faults. Every request is recorded with the Temporal server's simulated clock (the real one in a
dev-server run, ``dev_runner``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.simulation.model import Faults, HandoffAttempt, SmsAttempt, SmsOutcome


def _chance(seed: int, *parts: object) -> float:
    """A number in [0, 1) fixed by the seed and ``parts``: the same on every run."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SimulatedWorld:
    """The gateway and hand-off endpoints; ``clock`` reads the simulated time (set before use)."""

    def __init__(self, seed: int, faults: Faults, *, started_at: datetime, hang_seconds: float) -> None:
        self.seed = seed
        self.faults = faults
        self.started_at = started_at
        self.hang_seconds = hang_seconds
        self.clock: Callable[[], datetime] = lambda: started_at
        self.on_sms: Callable[[SmsAttempt, str], None] | None = None
        """Called in the request's own thread once an SMS request is recorded, before it is answered, with
        the request's query string (e.g. a worker's ``via=`` tag): a run can act while the send is in
        flight (``dev_runner`` kills the worker that sent it)."""
        self.sms: list[SmsAttempt] = []
        self.handoffs: list[HandoffAttempt] = []
        self._tries: dict[str, int] = {}
        self._taken: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.world = self
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> SimulatedWorld:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()

    # --- decisions ---------------------------------------------------------------------------

    def _in_outage(self, at: datetime) -> bool:
        elapsed = at - self.started_at
        return any(start <= elapsed < end for start, end in self.faults.outages)

    def sms_request(self, body: dict[str, Any], query: str = "") -> tuple[int | None, SmsOutcome]:
        """The answer to one SMS request (None: hang) and what became of the message."""
        key = str(body.get("idempotency_key", ""))
        at = self.clock()
        with self._lock:
            tried = self._tries.get(key, 0)
            self._tries[key] = tried + 1
            roll = _chance(self.seed, "sms", key, tried)
            outcome: SmsOutcome
            if key in self._taken:
                status, outcome = 200, "duplicate"
            elif self._in_outage(at) or roll < self.faults.sms_refused:
                status, outcome = 503, "refused"
            elif roll < self.faults.sms_refused + self.faults.sms_timeout:
                status, outcome = None, "timeout"
            elif roll < self.faults.sms_refused + self.faults.sms_timeout + self.faults.sms_lost_answer:
                self._taken.add(key)
                status, outcome = 500, "lost_answer"
            else:
                self._taken.add(key)
                status, outcome = 200, "delivered"
            attempt = SmsAttempt(
                at=at,
                key=key,
                account_id=str(body.get("account_id", "")),
                to=str(body.get("to", "")),
                template=str(body.get("template", "")),
                body=str(body.get("body", "")),
                outcome=outcome,
            )
            self.sms.append(attempt)
        if self.on_sms is not None:
            self.on_sms(attempt, query)
        return status, outcome

    def handoff_request(self, kind: str, body: dict[str, Any]) -> int:
        key = str(body.get("idempotency_key", ""))
        with self._lock:
            tried = self._tries.get(key, 0)
            self._tries[key] = tried + 1
            accepted = _chance(self.seed, kind, key, tried) >= self.faults.handoff_refused
            self.handoffs.append(
                HandoffAttempt(
                    at=self.clock(),
                    key=key,
                    account_id=str(body.get("account_id", "")),
                    kind="phone" if kind == "phone" else "specialist",
                    accepted=accepted,
                )
            )
        return 200 if accepted else 503


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        world = self.server.world
        path, _, query = self.path.partition("?")
        path = path.rstrip("/")
        if path == "/sms":
            status, _ = world.sms_request(body, query)
            if status is None:
                world._stopped.wait(world.hang_seconds)  # past the client's timeout
                status = 503
        elif path in ("/phone", "/specialist"):
            status = world.handoff_request(path.lstrip("/"), body)
        else:
            status = 404
        answer = {"id": f"sim-{body.get('idempotency_key', '')}"} if status < 300 else {"error": status}
        data = json.dumps(answer).encode()
        with suppress(OSError):  # the client may have given up on a hung request
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    world: SimulatedWorld

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about a client that went away (a killed worker's open connections); loud otherwise."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
