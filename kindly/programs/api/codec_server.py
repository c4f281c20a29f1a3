"""The codec server: Temporal's remote codec protocol over Kindly's key ring, for the Web UI and the CLI.

Payloads in Temporal are encrypted (``kindly.codec``), so the Web UI and ``temporal workflow show``
would show ciphertext. Both can send payloads to a codec server to have them decrypted for display
(or encrypted, for a signal typed in the UI): ``POST <endpoint>/decode`` and ``POST <endpoint>/encode``
with the protobuf JSON of ``Payloads`` (``{"payloads": [{"metadata": {k: base64}, "data": base64}]}``),
headers ``Content-Type: application/json``, ``X-Namespace`` and, if configured, ``Authorization``.
This router serves them at ``/codec``, so the endpoint to configure is ``http(s)://<api>/codec``.

Whoever may call it can read every name and phone number in Temporal, so it is never open:

* ``/codec/encode`` and ``/codec/decode`` need the operators' API key, as ``X-API-Key: <key>`` or
  ``Authorization: Bearer <key>`` (the CLI's ``--codec-auth``, a UI's access-token header); 401
  otherwise.
* ``/codec/ui/<token>/encode|decode``: for a Web UI that cannot send the key. The dev server's UI
  (``temporal server start-dev --ui-codec-endpoint``) sends no credentials at all, and a UI that does
  ("pass access token") sends its own OIDC token, not our key. ``codec_ui_token`` is a random secret
  carried in the path; ``make run`` makes a new one at each start and gives the dev server's UI
  ``http://127.0.0.1:8000/codec/ui/<token>``. Unset (the default), these routes answer 404. This
  rather than trusting requests from localhost: behind a reverse proxy every request comes from
  localhost.

The browser calls the codec server from the UI's page, another origin, so these paths (and only
these: the rest of the API is not for browsers) answer CORS for ``codec_cors_origins``; a preflight
``OPTIONS`` is answered before authentication, as browsers send it without credentials.

A payload that no key opens (unknown key id, tampering) is answered 400 naming the key id, and so is a
body that is not Temporal payloads; plain payloads pass through ``decode`` unchanged, as in the workers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from kindly.codec import EncryptionCodec
from kindly.errors import DecryptionError
from kindly.programs.api.security import API_KEY_HEADER, api_settings_of, secrets_equal

CODEC_PREFIX = "/codec"
NAMESPACE_HEADER = "X-Namespace"

router = APIRouter(prefix=CODEC_PREFIX, tags=["codec server"])

_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)
_bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token (`--codec-auth`).")


class CodecPayload(BaseModel):
    """One ``temporal.api.common.v1.Payload`` in protobuf JSON: bytes are base64."""

    model_config = ConfigDict(extra="allow")

    metadata: dict[str, str] = Field(
        default_factory=dict, examples=[{"encoding": "YmluYXJ5L2VuY3J5cHRlZA=="}]
    )
    data: str = ""


class CodecPayloads(BaseModel):
    """The body of every codec request and response (``temporal.api.common.v1.Payloads``). Proto3 JSON
    leaves an empty list out, so ``{}`` is no payloads: Temporal's CLI sends it for a query without
    arguments."""

    payloads: list[CodecPayload] = Field(default_factory=list)


async def refuse_as_bad_request(request: Request, exc: Exception) -> Response:
    """On the codec paths a body that is not Temporal payloads is a 400 naming the problem, as Temporal's
    own codec servers answer; elsewhere FastAPI's 422 stands."""
    assert isinstance(exc, RequestValidationError)
    if not request.url.path.startswith(CODEC_PREFIX + "/"):
        return await request_validation_exception_handler(request, exc)
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'] if part != 'body') or 'body'}: {error['msg']}"
        for error in exc.errors()
    )
    return JSONResponse(
        {"detail": f"not Temporal payloads: {problems}"}, status_code=status.HTTP_400_BAD_REQUEST
    )


def codec_of(request: Request) -> EncryptionCodec:
    return cast(EncryptionCodec, request.app.state.codec)


async def require_codec_key(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless ``X-API-Key`` or ``Authorization: Bearer`` carries the operators' API key."""
    expected = api_settings_of(request).api_key.get_secret_value()
    given = api_key if api_key is not None else (bearer.credentials if bearer is not None else None)
    if given is None or not expected or not secrets_equal(given, expected):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"missing or invalid {API_KEY_HEADER} or Authorization: Bearer header",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def require_ui_token(request: Request, token: str) -> None:
    """404 when no UI token is configured; 401 unless the path carries it."""
    expected = api_settings_of(request).codec_ui_token
    if expected is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no codec_ui_token is configured")
    if not secrets_equal(token, expected.get_secret_value()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid codec token")


Convert = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


async def _apply(convert: Convert, body: CodecPayloads) -> CodecPayloads:
    try:
        given = json_format.ParseDict(body.model_dump(), Payloads())
    except json_format.ParseError as err:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not Temporal payloads: {err}") from err
    try:
        converted = await convert(given.payloads)
    except DecryptionError as err:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(err)) from err
    return CodecPayloads.model_validate({"payloads": [_as_json(payload) for payload in converted]})


def _as_json(payload: Payload) -> dict[str, Any]:
    as_dict: dict[str, Any] = json_format.MessageToDict(payload)
    return as_dict


_KEYED = [Depends(require_codec_key)]
_TOKENED = [Depends(require_ui_token)]


@router.post("/encode", dependencies=_KEYED, summary="Encrypt payloads (API key)")
async def encode(request: Request, body: CodecPayloads) -> CodecPayloads:
    return await _apply(codec_of(request).encode, body)


@router.post("/decode", dependencies=_KEYED, summary="Decrypt payloads (API key)")
async def decode(request: Request, body: CodecPayloads) -> CodecPayloads:
    return await _apply(codec_of(request).decode, body)


@router.post("/ui/{token}/encode", dependencies=_TOKENED, summary="Encrypt payloads (Web UI token)")
async def encode_for_ui(request: Request, body: CodecPayloads) -> CodecPayloads:
    return await _apply(codec_of(request).encode, body)


@router.post("/ui/{token}/decode", dependencies=_TOKENED, summary="Decrypt payloads (Web UI token)")
async def decode_for_ui(request: Request, body: CodecPayloads) -> CodecPayloads:
    return await _apply(codec_of(request).decode, body)


class CodecCors:
    """Starlette's ``CORSMiddleware`` for the codec paths only, so the Web UI's page may call them.

    Preflights are answered here, before any route or authentication; the rest of the API stays
    closed to browsers on other origins.
    """

    def __init__(self, app: ASGIApp, allow_origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=allow_origins,
            allow_methods=["POST"],
            allow_headers=["Content-Type", NAMESPACE_HEADER, "Authorization", API_KEY_HEADER],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CODEC_PREFIX + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
