"""The FastAPI application: operations (API key), webhooks (signatures) and the codec server (API key
or UI token). OpenAPI at ``/docs``. The staff console is an application of its own mounted at
``/console`` (``kindly.programs.console``): its cookies, CSRF checks and HTML pages never touch the
routes here."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import version

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from kindly.codec import EncryptionCodec
from kindly.errors import (
    AccountClosedError,
    AccountNotFoundError,
    AccountStateConflictError,
    ActionTimeoutError,
    InvalidActionValueError,
)
from kindly.keyring import load_keyring
from kindly.programs.api import (
    alarms,
    codec_server,
    complaints,
    experiments,
    figures,
    ops,
    provider_callbacks,
    receipts,
    reports,
    webhooks,
)
from kindly.programs.api.deps import ApiContext
from kindly.programs.api.docs_pages import add_docs_pages
from kindly.programs.api.settings import ApiSettings
from kindly.programs.console import create_console
from kindly.programs.selfservice import create_self_service
from kindly.settings import Settings
from kindly.store import AuditStore, PhoneIndex

CONSOLE_PREFIX = "/console"
SELF_SERVICE_PREFIX = "/p"
"""The customer's page, ``/p/<token>`` (``kindly.domain.messages.links.LINK_PATH``)."""


CALLBACK_MAX_BODY_BYTES = 1024 * 1024
"""A provider's batch of reports or replies: larger than the API's usual bodies, still bounded."""


def create_app(client: Client, settings: Settings, api_settings: ApiSettings, engine: Engine) -> FastAPI:
    app = FastAPI(
        title="Kindly",
        summary="Gentle collection of overdue loans: one Temporal workflow per account.",
        version=version("kindly"),
        docs_url=None,
        redoc_url=None,
    )
    add_docs_pages(app)
    keyring = load_keyring(settings)
    phones = PhoneIndex(engine, keyring)
    app.state.api_settings = api_settings
    app.state.codec = EncryptionCodec(keyring)
    app.state.context = ApiContext(
        client=client,
        settings=settings,
        api_settings=api_settings,
        phones=phones,
        audit=AuditStore(engine),
        engine=engine,
    )
    app.include_router(ops.router)
    app.include_router(figures.router)
    app.include_router(reports.router)
    app.include_router(experiments.router)
    app.include_router(alarms.router)
    app.include_router(complaints.router)
    app.include_router(webhooks.router)
    app.include_router(receipts.router)
    app.include_router(provider_callbacks.router)
    app.include_router(codec_server.router)
    app.mount(CONSOLE_PREFIX, create_console(app.state.context, CONSOLE_PREFIX))
    app.mount(SELF_SERVICE_PREFIX, create_self_service(app.state.context, SELF_SERVICE_PREFIX))
    app.add_exception_handler(AccountNotFoundError, _account_not_found)
    app.add_exception_handler(AccountClosedError, _account_closed)
    app.add_exception_handler(RPCError, _temporal_refused)
    app.add_exception_handler(AccountStateConflictError, _action_conflict)
    app.add_exception_handler(InvalidActionValueError, _action_invalid)
    app.add_exception_handler(ActionTimeoutError, _action_timeout)
    app.add_exception_handler(RequestValidationError, codec_server.refuse_as_bad_request)
    app.add_middleware(
        BodySizeLimit,
        max_body_bytes=api_settings.max_body_bytes,
        # The codec server takes whole histories; a provider's callback batch may hold a hundred reports.
        path_limits={
            codec_server.CODEC_PREFIX + "/": api_settings.codec_max_body_bytes,
            "/callbacks/": CALLBACK_MAX_BODY_BYTES,
        },
    )
    # Outermost: CORS preflights for the codec paths are answered before anything else runs.
    app.add_middleware(codec_server.CodecCors, allow_origins=api_settings.codec_cors_origins)
    return app


async def _account_not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)


async def _account_closed(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)


async def _action_conflict(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)


async def _action_invalid(_: Request, exc: Exception) -> JSONResponse:
    """422 in FastAPI's own shape, so that a client reads the workflow's refusal as it reads a body the
    API refused: the field in ``loc``."""
    assert isinstance(exc, InvalidActionValueError)
    loc = ["body", *exc.field.split(".")] if exc.field else ["body"]
    error = {"loc": loc, "msg": str(exc), "type": "value_error"}
    return JSONResponse({"detail": [error]}, status_code=422)


async def _action_timeout(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_504_GATEWAY_TIMEOUT)


TEMPORAL_RETRY_AFTER_SECONDS = 1
"""What a 429 or 503 tells the caller to wait; webhook providers and scripts back off from there."""

_TEMPORAL_BUSY = {RPCStatusCode.RESOURCE_EXHAUSTED}
_TEMPORAL_UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.ABORTED,
}


def temporal_error_status(err: RPCError) -> int:
    """The HTTP status for a request Temporal refused; in every case nothing was changed.

    Rate-limited (a namespace's RPS limit, e.g. during a bulk action): 429. Unreachable, timed out or
    cancelled: 503. Both say "retry" to a webhook provider. Anything else (credentials Temporal
    refuses, a namespace that does not exist, an internal error) is the deployment's fault, not the
    caller's, and no retry by the caller will cure it: 502, naming Temporal's status.
    """
    if err.status in _TEMPORAL_BUSY:
        return status.HTTP_429_TOO_MANY_REQUESTS
    if err.status in _TEMPORAL_UNAVAILABLE:
        return status.HTTP_503_SERVICE_UNAVAILABLE
    return status.HTTP_502_BAD_GATEWAY


async def _temporal_refused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    code = temporal_error_status(exc)
    headers = (
        {"Retry-After": str(TEMPORAL_RETRY_AFTER_SECONDS)} if code != status.HTTP_502_BAD_GATEWAY else None
    )
    return JSONResponse(
        {"detail": f"Temporal did not accept the request ({exc.status.name}): {exc.message}"},
        status_code=code,
        headers=headers,
    )


class BodySizeLimit:
    """Answers 413 to a body over ``max_body_bytes``, declared (Content-Length) or streamed.

    The body is read here, at most ``max_body_bytes`` of it, and replayed to the application.
    ``path_limits`` sets other limits by path prefix (the codec server takes whole histories).
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next(
            (size for prefix, size in self.path_limits.items() if scope["path"].startswith(prefix)),
            self.max_body_bytes,
        )
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                await _reply(send, status.HTTP_400_BAD_REQUEST, "invalid Content-Length")
                return
            if too_big:
                await _reply(send, status.HTTP_413_CONTENT_TOO_LARGE, _too_large(limit))
                return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reply(send, status.HTTP_413_CONTENT_TOO_LARGE, _too_large(limit))
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


def _too_large(limit: int) -> str:
    return f"request body exceeds {limit} bytes"


async def _reply(send: Send, status_code: int, detail: str) -> None:
    response = JSONResponse({"detail": detail}, status_code=status_code)
    await send({"type": "http.response.start", "status": status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
