"""The plumbing of the providers' push callbacks: the path secret, phone numbers, batches read item by
item, and the providers' answers.

* **The secret.** ``callback_secret_matches`` is the one comparison of a path's secret with
  ``Settings.sms_callback_secret``: constant time, over digests of equal length. A wrong or unset secret is
  answered exactly as a path that does not exist (404 ``{"detail": "Not Found"}``) and logged without the
  secret.
* **Batches.** A push is a JSON array (or, for Tencent's reply, one object). Each item is validated on its
  own: a bad item is named in the answer (``["body", index, field]``) and the good ones are processed.
* **Answers.** 200 with the provider's success body when every item was taken; otherwise the provider's
  failure body (a non-zero code, and ``detail`` naming each item that was not) with a status that tells
  the provider to push the batch again: 5xx or 429 when Temporal refused, 409 when an item must wait
  (its send is not recorded yet, or another request is routing it), 422 when items are malformed. The
  providers retry any batch not answered 200; the items already taken are then duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, SecretStr, ValidationError
from temporalio.service import RPCError

from kindly.programs.api.deps import ApiContext, Context
from kindly.programs.api.webhooks import RETRY_AFTER_SECONDS
from kindly.store import normalise_phone

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# --- the path secret ------------------------------------------------------------------------------


def callback_secret_matches(configured: SecretStr | None, given: str) -> bool:
    """Whether ``given`` is the callback secret; never with none (or an empty one) configured.

    Compared in constant time over SHA-256 digests, so neither the content nor the length of the
    secret shows in the time taken."""
    if configured is None or not configured.get_secret_value():
        return False
    expected = hashlib.sha256(configured.get_secret_value().encode()).digest()
    offered = hashlib.sha256(given.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(expected, offered)


def secret_checked(provider: str) -> Callable[[Request, str, ApiContext], Coroutine[Any, Any, None]]:
    """The dependency of a provider's callback routes: 404, as for a path that does not exist, unless
    the path's ``{secret}`` is the configured one."""

    async def check(request: Request, secret: str, ctx: Context) -> None:
        configured = ctx.settings.sms_callback_secret
        if callback_secret_matches(configured, secret):
            return
        client = request.client.host if request.client else "unknown"
        if configured is None or not configured.get_secret_value():
            log.warning("%s callback from %s refused: sms_callback_secret is not set", provider, client)
        else:
            log.warning("%s callback from %s refused: wrong secret in the path", provider, client)
        raise HTTPException(status.HTTP_404_NOT_FOUND)  # {"detail": "Not Found"}, as for any unknown path

    return check


# --- phone numbers --------------------------------------------------------------------------------


def to_e164(number: str, country_code: str | None = None) -> str:
    """A provider's phone number as E.164 (``+8613800138000``).

    ``+86 138 0013 8000`` and ``0086…`` keep their country code. With ``country_code`` (Tencent's
    ``nationcode``) a national number gets it prefixed (a mainland number already starting ``86`` is
    not prefixed twice). Without one (Alibaba Cloud), an 11-digit mainland mobile number (``1…``) is
    mainland China's, and any other run of digits already starts with its country code, as the
    providers write international numbers. Anything else (a masked ``138****0000``, letters) is a
    ``ValueError``.
    """
    compact = normalise_phone(number.strip())
    if compact.startswith("+"):
        return _checked("+" + compact[1:])
    if not (compact.isascii() and compact.isdigit()):
        raise ValueError("not a phone number (digits, with + and the country code or without)")
    if country_code is not None:
        code = country_code.strip().removeprefix("+").removeprefix("00")
        if not (code.isascii() and code.isdigit()) or not 1 <= len(code) <= 3:
            raise ValueError("not a country code of 1 to 3 digits")
        if code == "86" and len(compact) == 13 and compact.startswith("861"):
            compact = compact[2:]
        return _checked(f"+{code}{compact}")
    if len(compact) == 11 and compact.startswith("1"):
        return _checked("+86" + compact)
    return _checked("+" + compact)


def _checked(e164: str) -> str:
    digits = e164[1:]
    if not (digits.isascii() and digits.isdigit()) or not 7 <= len(digits) <= 15 or digits.startswith("0"):
        raise ValueError("not a phone number (E.164: 7 to 15 digits after the +, the first not 0)")
    return e164


# --- field types ----------------------------------------------------------------------------------


def _text_or_integer(value: Any) -> Any:
    """Ids and codes the providers document as strings, also taken when sent as JSON integers."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


ProviderText = Annotated[str, BeforeValidator(_text_or_integer)]
"""A string, or an integer taken as its digits (the providers' docs disagree on ``sequence_id``)."""


def optional_text(value: Any) -> str | None:
    """An auxiliary field (``out_id``, ``ext``) as text, or None when absent, empty or not text: such a
    field never makes an item bad."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


# --- batches --------------------------------------------------------------------------------------


@dataclass
class Batch(Generic[M]):
    """A push's items that validated, by their index in the push, and the errors of the others."""

    items: list[tuple[int, M]] = field(default_factory=list)
    results: list[ItemResult] = field(default_factory=list)


async def read_batch(request: Request, model: type[M], *, single_object: bool = False) -> Batch[M]:
    """The request's JSON array of ``model`` items; with ``single_object`` one object is one item.

    A body that is not such JSON is one error at ``["body"]``; an item that does not validate is an
    error at ``["body", index, field]`` and the other items are still read."""
    batch: Batch[M] = Batch()
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # also a body that is not UTF-8, or nested beyond reason
        batch.results.append(invalid_item(-1, ("body",), "body is not JSON", "json_invalid"))
        return batch
    prefix: tuple[str | int, ...] = ("body",)
    if single_object and isinstance(data, dict):
        elements: list[Any] = [data]
    elif isinstance(data, list):
        elements = data
    else:
        shape = "a JSON object or array" if single_object else "a JSON array"
        batch.results.append(invalid_item(-1, prefix, f"expected {shape} of {model.__name__}", "list_type"))
        return batch
    for index, element in enumerate(elements):
        where = prefix if single_object and isinstance(data, dict) else (*prefix, index)
        try:
            batch.items.append((index, model.model_validate(element)))
        except ValidationError as err:
            for error in err.errors(include_url=False, include_input=False, include_context=False):
                batch.results.append(
                    invalid_item(index, (*where, *error["loc"]), error["msg"], error["type"])
                )
    return batch


@dataclass(frozen=True)
class ItemResult:
    """What became of one item: taken (``recorded``, ``stale``, ``duplicate``, ``accepted``,
    ``superseded``, ``foreign``) or not (``invalid``, or ``retry`` with the status that asks for it)."""

    index: int
    outcome: str
    retry_status: int | None = None
    error: dict[str, Any] | None = None


def invalid_item(index: int, loc: Sequence[str | int], msg: str, kind: str) -> ItemResult:
    return ItemResult(index, "invalid", error={"loc": list(loc), "msg": msg, "type": kind})


def retry_item(index: int, loc: Sequence[str | int], code: int, msg: str, kind: str) -> ItemResult:
    return ItemResult(index, "retry", retry_status=code, error={"loc": list(loc), "msg": msg, "type": kind})


MAX_DETAIL = 100
"""The most items a failure answer names (a body of thousands of bad items is answered in proportion)."""


@dataclass(frozen=True)
class AnswerShape:
    """A provider's answer: ``{code_key: 0, message_key: ok_message}`` when every item was taken."""

    code_key: Literal["code", "result"]
    message_key: Literal["msg", "errmsg"]
    ok_message: str


def answer(shape: AnswerShape, what: str, results: Sequence[ItemResult]) -> JSONResponse:
    """200 and the success body when every item was taken; else the failure body and the status that
    makes the provider push the batch again (see the module's docstring). ``what`` names the callback
    in the log line that counts the outcomes."""
    outcomes = Counter(r.outcome for r in results)
    log.info(
        "%s: %s", what, ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) or "empty"
    )
    retries = [r.retry_status for r in results if r.retry_status is not None]
    refused = len({r.index for r in results if r.outcome == "invalid"})
    if not retries and not refused:
        return JSONResponse({shape.code_key: 0, shape.message_key: shape.ok_message})
    taken = sum(1 for r in results if r.outcome not in ("invalid", "retry"))
    parts = [f"{taken} item(s) taken"]
    if refused:
        parts.append(f"{refused} refused (named in detail)")
    if retries:
        parts.append(f"{len(retries)} not taken yet: push the batch again later")
    code = max(retries) if retries else 422
    body = {
        shape.code_key: code,
        shape.message_key: "; ".join(parts),
        "detail": [r.error for r in results if r.error is not None][:MAX_DETAIL],
    }
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if code in (409, 429, 503) else None
    return JSONResponse(body, status_code=code, headers=headers)


def temporal_status(err: RPCError) -> int:
    # Imported here: the application module imports this one's routers.
    from kindly.programs.api.app import temporal_error_status

    return temporal_error_status(err)
