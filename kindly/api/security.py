"""Authentication: the operators' API key and the signatures of inbound webhooks.

Every comparison is constant-time (``hmac.compare_digest``) so a caller cannot guess a key or a
signature byte by byte from response times.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

from kindly.api.settings import ApiSettings

API_KEY_HEADER = "X-API-Key"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
KINDLY_SIGNATURE_HEADER = "X-Kindly-Signature"

_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def api_settings_of(request: Request) -> ApiSettings:
    return cast(ApiSettings, request.app.state.api_settings)


def secrets_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def require_api_key(request: Request, api_key: Annotated[str | None, Depends(_api_key_header)]) -> None:
    """Dependency of every operations endpoint: 401 unless ``X-API-Key`` matches."""
    expected = api_settings_of(request).api_key.get_secret_value()
    if api_key is None or not expected or not secrets_equal(api_key, expected):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"missing or invalid {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": "ApiKey"},
        )


# --- Twilio ---------------------------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's documented scheme: base64 HMAC-SHA1 of the full URL followed by every POST
    parameter's name and value, sorted by name (values of a repeated name in sorted order)."""
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def public_url(request: Request, public_base_url: str | None) -> str:
    """The URL the caller used: the public base URL (behind a proxy) plus path and query."""
    if public_base_url is None:
        return str(request.url)
    url = public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


def verify_twilio(request: Request, params: list[tuple[str, str]], auth_token: str | None) -> None:
    if auth_token is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Twilio webhook is not configured")
    given = request.headers.get(TWILIO_SIGNATURE_HEADER)
    if not given:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing {TWILIO_SIGNATURE_HEADER} header")
    url = public_url(request, api_settings_of(request).public_base_url)
    if not secrets_equal(given, twilio_signature(auth_token, url, params)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"invalid {TWILIO_SIGNATURE_HEADER}")


# --- Kindly's JSON webhooks -----------------------------------------------------------------------


def kindly_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``: the value of ``X-Kindly-Signature``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_kindly(request: Request, body: bytes) -> None:
    secret = api_settings_of(request).webhook_secret
    if secret is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "JSON webhooks are not configured")
    given = request.headers.get(KINDLY_SIGNATURE_HEADER)
    if not given:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing {KINDLY_SIGNATURE_HEADER} header")
    if not secrets_equal(given, kindly_signature(secret.get_secret_value(), body)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"invalid {KINDLY_SIGNATURE_HEADER}")
