"""The FastAPI application: operations (API key) and webhooks (signatures). OpenAPI at ``/docs``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client
from temporalio.service import RPCError

from kindly.api import ops, receipts, webhooks
from kindly.api.deps import ApiContext
from kindly.api.settings import ApiSettings
from kindly.contacts import PhoneIndex, create_tables
from kindly.db import AuditStore
from kindly.keyring import load_keyring
from kindly.operations import AccountNotFoundError
from kindly.settings import Settings


def create_app(client: Client, settings: Settings, api_settings: ApiSettings, engine: Engine) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(create_tables, engine)
        yield

    app = FastAPI(
        title="Kindly",
        summary="Gentle collection of overdue loans: one Temporal workflow per account.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.api_settings = api_settings
    app.state.context = ApiContext(
        client=client,
        settings=settings,
        api_settings=api_settings,
        phones=PhoneIndex(engine, load_keyring(settings)),
        audit=AuditStore(engine),
    )
    app.include_router(ops.router)
    app.include_router(webhooks.router)
    app.include_router(receipts.router)
    app.add_exception_handler(AccountNotFoundError, _account_not_found)
    app.add_exception_handler(RPCError, _temporal_unavailable)
    app.add_middleware(BodySizeLimit, max_body_bytes=api_settings.max_body_bytes)
    return app


async def _account_not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)


async def _temporal_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # Nothing was lost: the caller (a webhook provider, an operator) may safely retry.
    return JSONResponse(
        {"detail": f"Temporal did not accept the request: {exc}"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


class BodySizeLimit:
    """Answers 413 to a body over ``max_body_bytes``, declared (Content-Length) or streamed.

    The body is read here, at most ``max_body_bytes`` of it, and replayed to the application.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body_bytes
            except ValueError:
                await _reply(send, status.HTTP_400_BAD_REQUEST, "invalid Content-Length")
                return
            if too_big:
                await _reply(send, status.HTTP_413_CONTENT_TOO_LARGE, self._too_large())
                return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _reply(send, status.HTTP_413_CONTENT_TOO_LARGE, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body exceeds {self.max_body_bytes} bytes"


async def _reply(send: Send, status_code: int, detail: str) -> None:
    response = JSONResponse({"detail": detail}, status_code=status_code)
    await send({"type": "http.response.start", "status": status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
