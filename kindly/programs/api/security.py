"""Authentication: the operators' API key and the signatures of inbound webhooks.

Every comparison is constant-time (``hmac.compare_digest``) so a caller cannot guess a key or a
signature byte by byte from response times.

Kindly's JSON webhooks are signed Stripe-style: ``X-Kindly-Timestamp`` holds the unix time (seconds)
of the request, ``X-Kindly-Signature`` is ``sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``
with the webhook secret. A request whose timestamp is more than ``webhook_tolerance_seconds`` away
from the API's clock is refused, and so is a signature already used: an eavesdropped request cannot
be sent again, neither later (timestamp) nor at once (the used signature is stored until its
timestamp leaves the tolerance).

Rotation: a signature made with a previous secret (``webhook_previous_secrets``,
``twilio_previous_auth_tokens``) is accepted as well, so that the secret can change without a window
in which one side refuses the other's requests. Every accepted secret is compared, whichever matches,
and the answer does not say which one did; only the log does, so that operators see when senders have
stopped using the old secret. Signing (``kindly_headers``) uses the current secret alone. A replay is
refused whichever secret signed it: what is stored is the signature itself.

Twilio's scheme has no timestamp: its signature covers the URL and the form only, so a captured
request would verify for ever. Its signatures are remembered for ``twilio_replay_window_seconds``
and a second use within that window is refused as well. Twilio itself re-sends a request when our
answer timed out, with the same signature: that re-send is refused (403) when the first delivery
succeeded, which is harmless because the message or status was processed then (and a re-send
after the window is deduplicated by ``MessageSid``). A delivery that *failed* releases its signature
(``single_use``), so Twilio's retry after a 5xx is processed normally.

Signatures are recorded in the database (``webhook_signature``), not in memory, so the check holds
across API replicas; concurrent uses of one signature are settled by its primary key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from kindly.programs.api.settings import ApiSettings
from kindly.store.signatures import SignatureLedger

API_KEY_HEADER = "X-API-Key"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
KINDLY_SIGNATURE_HEADER = "X-Kindly-Signature"
KINDLY_TIMESTAMP_HEADER = "X-Kindly-Timestamp"

_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")

log = logging.getLogger(__name__)

_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def api_settings_of(request: Request) -> ApiSettings:
    return cast(ApiSettings, request.app.state.api_settings)


def secrets_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def matching_index(given: str, expected: Sequence[str]) -> int | None:
    """The index of the first of ``expected`` equal to ``given``, or None. Every one is compared, in
    constant time, whichever matches: the time taken does not tell which one did."""
    matched: int | None = None
    for index, candidate in enumerate(expected):
        if secrets_equal(given, candidate) and matched is None:
            matched = index
    return matched


def _note_previous(request: Request, matched: int, setting: str, current: str) -> None:
    """Log a request signed with a previous secret: the rotation is not over until none arrives. A
    warning, which ``python -m kindly.programs.api`` shows without any logging configured."""
    log.warning(
        "%s signed with %s[%d]: its sender does not sign with %s yet",
        request.url.path,
        setting,
        matched,
        current,
    )


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


def verify_twilio(request: Request, params: list[tuple[str, str]], auth_token: str | None) -> SignatureUse:
    """403 unless ``X-Twilio-Signature`` matches with ``auth_token`` or one of the settings'
    ``twilio_previous_auth_tokens``; the use to record against replays."""
    if auth_token is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Twilio webhook is not configured")
    given = request.headers.get(TWILIO_SIGNATURE_HEADER)
    if not given:
        raise _forbidden(f"missing {TWILIO_SIGNATURE_HEADER} header")
    settings = api_settings_of(request)
    url = public_url(request, settings.public_base_url)
    tokens = [auth_token, *_values(settings.twilio_previous_auth_tokens)]
    matched = matching_index(given, [twilio_signature(token, url, params) for token in tokens])
    if matched is None:
        raise _forbidden(f"invalid {TWILIO_SIGNATURE_HEADER}")
    if matched:
        _note_previous(request, matched - 1, "twilio_previous_auth_tokens", "twilio_auth_token")
    return SignatureUse(
        digest=_digest("twilio", given),
        expires_at=int(time.time()) + settings.twilio_replay_window_seconds,
        header=TWILIO_SIGNATURE_HEADER,
    )


# --- Kindly's JSON webhooks -----------------------------------------------------------------------


def kindly_signature(secret: str, body: bytes, timestamp: int) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``: the value of ``X-Kindly-Signature``."""
    signed = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def kindly_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Both headers a sender of a JSON webhook sets, signed now unless ``timestamp`` is given."""
    when = int(time.time()) if timestamp is None else timestamp
    return {
        KINDLY_TIMESTAMP_HEADER: str(when),
        KINDLY_SIGNATURE_HEADER: kindly_signature(secret, body, when),
    }


def verify_kindly(request: Request, body: bytes) -> SignatureUse:
    """403, naming the reason, unless the signature matches (made with ``webhook_secret`` or one of
    ``webhook_previous_secrets``) and its timestamp is within tolerance.

    The signature is checked before the timestamp, so an unsigned caller learns nothing about the
    clock; whether it was used before is ``single_use``'s part.
    """
    settings = api_settings_of(request)
    secret = settings.webhook_secret
    if secret is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "JSON webhooks are not configured")
    given = request.headers.get(KINDLY_SIGNATURE_HEADER)
    if not given:
        raise _forbidden(f"missing {KINDLY_SIGNATURE_HEADER} header")
    stamp = request.headers.get(KINDLY_TIMESTAMP_HEADER)
    if not stamp:
        raise _forbidden(f"missing {KINDLY_TIMESTAMP_HEADER} header")
    if not _UNIX_SECONDS.fullmatch(stamp):
        raise _forbidden(f"invalid {KINDLY_TIMESTAMP_HEADER}: unix seconds expected")
    timestamp = int(stamp)
    keys = _values([secret, *settings.webhook_previous_secrets])
    matched = matching_index(given, [kindly_signature(key, body, timestamp) for key in keys])
    if matched is None:
        raise _forbidden(f"invalid {KINDLY_SIGNATURE_HEADER}")
    tolerance = settings.webhook_tolerance_seconds
    skew = int(time.time()) - timestamp
    if skew > tolerance:
        raise _forbidden(f"{KINDLY_TIMESTAMP_HEADER} is {skew} s old, outside the {tolerance} s tolerance")
    if -skew > tolerance:
        raise _forbidden(
            f"{KINDLY_TIMESTAMP_HEADER} is {-skew} s in the future, outside the {tolerance} s tolerance"
        )
    if matched:  # logged once the request passed every check but the replay store's
        _note_previous(request, matched - 1, "webhook_previous_secrets", "webhook_secret")
    # Past this instant the timestamp check refuses the request anyway: no need to remember it longer.
    return SignatureUse(
        digest=_digest("kindly", given), expires_at=timestamp + tolerance, header=KINDLY_SIGNATURE_HEADER
    )


# --- replays --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureUse:
    """A verified signature, as stored against replays: a digest and until when it matters."""

    digest: str
    expires_at: int  # unix seconds
    header: str


def _values(secrets: Iterable[SecretStr]) -> list[str]:
    return [secret.get_secret_value() for secret in secrets]


def _digest(scheme: str, signature: str) -> str:
    return hashlib.sha256(f"{scheme}:{signature}".encode()).hexdigest()


def _forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail)


@asynccontextmanager
async def single_use(signatures: SignatureLedger, use: SignatureUse) -> AsyncIterator[None]:
    """Run the request's work once per signature: 403 for a replay.

    The signature is recorded before the work, so a concurrent replay is refused too; when the work
    fails (any exception: Temporal unavailable, a bad body) the record is removed again, so that the
    sender's retry of the same request is not mistaken for a replay.
    """
    if not await run_in_threadpool(signatures.claim, use.digest, use.expires_at):
        raise _forbidden(f"{use.header} was already used: replayed request refused")
    try:
        yield
    except BaseException:
        await run_in_threadpool(signatures.release, use.digest)
        raise
