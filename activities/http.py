"""Outgoing HTTP calls with Kindly's delivery-error semantics.

Every call carries an ``Idempotency-Key`` header so that a retried request is recognised by the
receiver. Answers map onto :mod:`kindly.errors`:

* 2xx: the response is returned;
* 4xx: :class:`~kindly.errors.PermanentDeliveryError` (retrying cannot help);
* 5xx, timeouts and connection failures: :class:`~kindly.errors.TransientDeliveryError`.

Error messages name the receiver's host and path and the status, never the payload: payloads hold
phone numbers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from kindly.errors import PermanentDeliveryError, TransientDeliveryError

IDEMPOTENCY_HEADER = "Idempotency-Key"


def _describe(url: str | httpx.URL) -> str:
    """Host and path of ``url``: no query string, no credentials, nothing from the payload."""
    parsed = httpx.URL(url)
    host = parsed.host
    if parsed.port is not None:
        host = f"{host}:{parsed.port}"
    return f"{host}{parsed.path}"


async def _send(url: str, request: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Run ``request`` and map its outcome onto the delivery errors."""
    target = _describe(url)
    try:
        response = await request()
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise TransientDeliveryError(
            f"POST {target} failed: could not connect ({type(exc).__name__})", not_taken=True
        ) from exc
    except httpx.TimeoutException as exc:
        raise TransientDeliveryError(f"POST {target} timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise TransientDeliveryError(
            f"POST {target} failed: connection error ({type(exc).__name__})"
        ) from exc
    return check_status(response, target)


RETRYABLE_4XX = frozenset({408, 429})
NOT_TAKEN = frozenset({429, 503})
"""Retryable answers that say the request was refused, not acted on (a 500 or 504 may hide a send)."""


def check_status(response: httpx.Response, target: str | None = None) -> httpx.Response:
    """Return ``response`` when it is 2xx, raise the matching delivery error otherwise."""
    status = response.status_code
    if 200 <= status < 300:
        return response
    where = target if target is not None else _describe(response.request.url)
    # 408 (timeout) and 429 (rate limited) say "not now", not "never": retry them like 5xx.
    if status >= 500 or status in RETRYABLE_4XX:
        raise TransientDeliveryError(
            f"POST {where} failed with HTTP {status}", status_code=status, not_taken=status in NOT_TAKEN
        )
    # 4xx, and anything else that is not 2xx (an unfollowed redirect): the same request will get
    # the same answer.
    raise PermanentDeliveryError(f"POST {where} was rejected with HTTP {status}", status_code=status)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: Mapping[str, Any],
    *,
    idempotency_key: str,
) -> httpx.Response:
    """POST ``payload`` as JSON with an ``Idempotency-Key`` header; see the module docstring."""
    return await _send(
        url,
        lambda: client.post(url, json=dict(payload), headers={IDEMPOTENCY_HEADER: idempotency_key}),
    )


async def post_form(
    client: httpx.AsyncClient,
    url: str,
    data: Mapping[str, str],
    *,
    idempotency_key: str,
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    """POST ``data`` form-encoded with an ``Idempotency-Key`` header; see the module docstring."""
    return await _send(
        url,
        lambda: client.post(
            url,
            data=dict(data),
            headers={IDEMPOTENCY_HEADER: idempotency_key},
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
        ),
    )
