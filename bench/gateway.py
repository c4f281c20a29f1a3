"""The SMS sandbox gateway, served by uvicorn in its own process, with a counting endpoint for the bench.

``python -m bench.gateway --port 8125`` serves ``kindly.programs.sandbox`` (``POST /sms`` with idempotency
keys,
as Kindly's webhook provider and the bare baseline both use it) plus ``GET /bench/times?contains=…``:
the receive timestamps (seconds since the epoch, as the sandbox stamped them when it accepted each
message) of the outgoing messages whose idempotency key contains the given text. No delivery
receipts are sent (no Kindly API runs in the bench).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.procs import ManagedProcess, free_port
from kindly.programs.sandbox.app import Mailbox, SandboxSettings, create_sandbox_app


def create_app() -> Any:
    mailbox = Mailbox()
    app = create_sandbox_app(SandboxSettings(receipts_url=None, inbound_url=None), mailbox)

    @app.get("/bench/times")
    async def times(contains: str = "") -> list[float]:
        with mailbox.lock:
            return sorted(
                message.at.timestamp()
                for message in mailbox.messages
                if message.direction == "out" and contains in (message.idempotency_key or "")
            )

    @app.get("/bench/count")
    async def count(contains: str = "") -> int:
        with mailbox.lock:
            return sum(
                1
                for message in mailbox.messages
                if message.direction == "out" and contains in (message.idempotency_key or "")
            )

    return app


class GatewayProcess:
    """The gateway as a subprocess, and a small client for its counting endpoints."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            "gateway",
            [sys.executable, "-m", "bench.gateway", "--port", str(self.port)],
            log_dir=log_dir,
        )
        self._http = httpx.AsyncClient(base_url=self.url, timeout=30)

    @property
    def sms_url(self) -> str:
        return f"{self.url}/sms"

    async def start(self, timeout: float = 30.0) -> None:
        self.process.start()
        deadline = time.monotonic() + timeout
        while True:
            self.process.check_alive()
            try:
                await self.count("")
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def count(self, contains: str) -> int:
        response = await self._http.get("/bench/count", params={"contains": contains})
        response.raise_for_status()
        return int(response.json())

    async def times(self, contains: str) -> list[float]:
        response = await self._http.get("/bench/times", params={"contains": contains})
        response.raise_for_status()
        return [float(value) for value in response.json()]

    async def wait_for(self, contains: str, expected: int, *, timeout: float, poll: float = 0.25) -> int:
        """Poll until ``expected`` messages matched (or the deadline); returns the last count."""
        deadline = time.monotonic() + timeout
        while True:
            seen = await self.count(contains)
            if seen >= expected or time.monotonic() > deadline:
                return seen
            await asyncio.sleep(poll)

    async def close(self) -> None:
        await self._http.aclose()
        self.process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="SMS sandbox gateway for the bench")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
