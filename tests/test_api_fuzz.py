"""Schemathesis fuzzes every operation of the HTTP API against its own OpenAPI schema: no 5xx.

The API runs on a real server (127.0.0.1) with a real worker and the Temporal dev server (``dev_env``:
full visibility, so ``GET /accounts`` queries really run). Cases are generated from the schema in
positive and negative mode, with the API key; webhook bodies are signed as their senders would sign
them (fresh timestamp, HMAC), so the fuzzer reaches the handlers instead of stopping at the 403.
Operations on one account are fuzzed both against generated ids and against an account that exists.

Bounded and deterministic: ``max_examples`` per operation and mode, ``derandomize=True``, no example
database, no deadline. The whole file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.result import Ok
from temporalio.testing import WorkflowEnvironment

from kindly.programs.api import create_app
from kindly.programs.api.security import kindly_headers, twilio_signature
from kindly.settings import Settings
from kindly.store import make_engine
from tests.asgi_server import serving
from tests.test_api import AUTH, PUBLIC_BASE, TWILIO_TOKEN, WEBHOOK_SECRET, api_settings

MAX_EXAMPLES = 12
FUZZ_SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
SEEDED = "LN-FUZZ-1"


def signed(case: schemathesis.Case[Any]) -> dict[str, Any]:
    """Keyword arguments for ``case.call``: the API key, and for a webhook its body signed."""
    path = case.operation.path
    headers = dict(AUTH)
    if not path.startswith("/webhooks/") or isinstance(case.body, NotSet):
        return {"headers": headers}
    if path.endswith("/twilio"):
        if not isinstance(case.body, dict):
            return {"headers": headers}
        raw = urlencode(case.body, doseq=True).encode()
        params = parse_qsl(raw.decode(), keep_blank_values=True)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["X-Twilio-Signature"] = twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + path, params)
        return {"headers": headers, "data": raw}
    raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    headers["Content-Type"] = "application/json"
    headers.update(kindly_headers(WEBHOOK_SECRET, raw))
    return {"headers": headers, "data": raw}


def fuzz(base_url: str, schema: schemathesis.BaseSchema) -> list[str]:
    """Every operation, in both modes; the failures, one line each (empty when there were none)."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        variants: list[tuple[GenerationMode, dict[str, Any] | None]] = [
            (GenerationMode.POSITIVE, None),
            (GenerationMode.NEGATIVE, None),
        ]
        if "{account_id}" in operation.path:
            variants.append((GenerationMode.POSITIVE, {"account_id": SEEDED}))
        for mode, path_parameters in variants:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

            @FUZZ_SETTINGS
            @given(case=strategy)
            def check(case: schemathesis.Case[Any]) -> None:
                case.call_and_validate(base_url=base_url, checks=[not_a_server_error], **signed(case))

            try:
                check()
            except Exception as err:  # collect every operation's failure, report them together
                failures.append(
                    f"{operation.label} ({mode.value}, {path_parameters or 'generated ids'}): {err}"
                )
    return failures


async def test_no_operation_answers_a_server_error(dev_env: WorkflowEnvironment, settings: Settings) -> None:
    app = create_app(dev_env.client, settings, api_settings(), make_engine(settings.database_url))
    schema = schemathesis.openapi.from_dict(app.openapi())
    async with serving(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            account = {
                "account_id": SEEDED,
                "customer_name": "Fuzz Test",
                "phone": "+8613800000099",
                "timezone": "Asia/Shanghai",
                "locale": "zh-CN",
                "amount_due": "1500.00",
                "due_date": (date.today() + timedelta(days=30)).isoformat(),
                "segment": "plain",
            }
            started = await http.post("/accounts", json=account, headers=AUTH)
            assert started.status_code == 201, started.text
        failures = await asyncio.to_thread(fuzz, base_url, schema)
    assert not failures, "\n\n".join(failures)
