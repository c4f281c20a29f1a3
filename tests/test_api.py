"""The HTTP API through a real uvicorn server, a real worker and the time-skipping Temporal server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import AccountResult, workflow_id_for
from kindly.errors import DecryptionError
from kindly.keyring import KeyRing, generate_key, load_keyring
from kindly.programs.api import ApiSettings, create_app
from kindly.programs.api.security import kindly_headers, twilio_signature
from kindly.settings import Settings
from kindly.store import AuditStore, PhoneIndex, make_engine
from tests.conftest import eventually
from tests.lifecycle_helpers import STARTED, local_today

API_KEY = "test-api-key"
WEBHOOK_SECRET = "test-webhook-secret"
TWILIO_TOKEN = "test-twilio-token"
PUBLIC_BASE = "https://kindly.example.com"
MAX_BODY = 4096


@dataclass
class Api:
    http: httpx.AsyncClient
    engine: Engine
    client: Client
    today: Any
    phones: PhoneIndex
    database: Path


def api_settings(**overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "webhook_secret": WEBHOOK_SECRET,
        "twilio_auth_token": TWILIO_TOKEN,
        "public_base_url": PUBLIC_BASE,
        "max_body_bytes": MAX_BODY,
    }
    return ApiSettings(_env_file=None, **{**values, **overrides})


@asynccontextmanager
async def serving(
    env: WorkflowEnvironment, client: Client, settings: Settings, with_settings: ApiSettings
) -> AsyncIterator[Api]:
    """The API with ``with_settings`` on a real server, sharing the worker's database (as deployments do)."""
    engine = make_engine(settings.database_url)
    app = create_app(client, settings, with_settings, engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.025)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield Api(
                http=http,
                engine=engine,
                client=client,
                today=await local_today(env),
                phones=PhoneIndex(engine, load_keyring(settings)),
                database=Path(settings.database_url.removeprefix("sqlite:///")),
            )
    finally:
        server.should_exit = True
        await task
        engine.dispose()


@pytest.fixture
async def api(env: WorkflowEnvironment, client: Client, settings: Settings) -> AsyncIterator[Api]:
    """The API with the test settings on a real server."""
    async with serving(env, client, settings, api_settings()) as served:
        yield served


_ids = iter(range(1, 1_000_000))


def account_body(api: Api, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account_id": f"LN-API-{next(_ids):06d}",
        "customer_name": "Wang Xiaoming",
        "phone": "+8613800138000",
        "timezone": "Asia/Shanghai",
        "locale": "zh-CN",
        "amount_due": "1500.00",
        "currency": "CNY",
        # Far enough ahead that no reminder is due while a test runs.
        "due_date": (api.today + timedelta(days=30)).isoformat(),
        "segment": "plain",
    }
    body.update(overrides)
    return body


AUTH = {"X-API-Key": API_KEY}


async def start_account(api: Api, **overrides: Any) -> str:
    body = account_body(api, **overrides)
    response = await api.http.post("/accounts", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    assert response.json()["workflow_id"] == f"overdue-{body['account_id']}"
    STARTED.append(api.client.get_workflow_handle(response.json()["workflow_id"], result_type=AccountResult))
    # The run prepares itself (its number in the phone index among it) before it sends anything a
    # customer could reply to: wait for that, as a reply would.
    await eventually(lambda: timeline_kinds(api, str(body["account_id"])), lambda kinds: "started" in kinds)
    return str(body["account_id"])


async def get_status(api: Api, account_id: str) -> dict[str, Any]:
    response = await api.http.get(f"/accounts/{account_id}/status", headers=AUTH)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def timeline_kinds(api: Api, account_id: str) -> list[str]:
    response = await api.http.get(f"/accounts/{account_id}/timeline", headers=AUTH)
    assert response.status_code == 200, response.text
    return [entry["kind"] for entry in response.json()]


def field_errors(response: httpx.Response) -> list[tuple[str, ...]]:
    assert response.status_code == 422, response.text
    return [tuple(str(part) for part in error["loc"]) for error in response.json()["detail"]]


async def post_twilio(api: Api, form: dict[str, str], *, signature: str | None = None) -> httpx.Response:
    if signature is None:
        signature = twilio_signature(TWILIO_TOKEN, f"{PUBLIC_BASE}/webhooks/sms/twilio", form.items())
    return await api.http.post(
        "/webhooks/sms/twilio",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


# Each signed request gets a timestamp of its own within the tolerance, as a sender re-signs every
# delivery: a deliberate re-send of the same body is then a new request, never a replay.
_issued_stamps: set[int] = set()


def fresh_timestamp() -> int:
    """A timestamp within the last 200 seconds that no earlier call returned."""
    now = int(time.time())
    _issued_stamps.difference_update({stamp for stamp in _issued_stamps if stamp < now - 200})
    stamp = next(now - offset for offset in range(200) if now - offset not in _issued_stamps)
    _issued_stamps.add(stamp)
    return stamp


async def post_signed(
    api: Api,
    path: str,
    payload: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    raw = json.dumps(payload).encode()
    headers = kindly_headers(secret, raw, fresh_timestamp() if timestamp is None else timestamp)
    return await api.http.post(path, content=raw, headers={"Content-Type": "application/json", **headers})


# --- operations -----------------------------------------------------------------------------------


async def test_start_account_then_read_status(api: Api) -> None:
    account_id = await start_account(api, phone="+8613800000001")
    current = await get_status(api, account_id)
    assert current["account_id"] == account_id
    assert current["stage"] == "pre_due" and Decimal(current["amount_due"]) == Decimal("1500.00")
    assert "started" in await timeline_kinds(api, account_id)
    assert api.phones.accounts_for("+8613800000001") == [account_id]
    # Findable from the start: its static attributes came with it. Its run recorded the rules it follows
    # (a patch marker for each rule set) and prepared itself with one local activity (one marker), which
    # also wrote its first audit entry under the run's own key.
    events = [e async for e in api.client.get_workflow_handle(f"overdue-{account_id}").fetch_history_events()]
    started = events[0].workflow_execution_started_event_attributes
    assert {"CollectionStage", "DueDate", "Segment", "AmountDue", "Currency", "TimeZone"} <= set(
        started.search_attributes.indexed_fields
    )
    markers = [e for e in events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert [m.marker_recorded_event_attributes.marker_name for m in markers] == [
        "core_patch",
        "core_patch",
        "core_patch",
        "core_local_activity",
    ]
    run_id = started.original_execution_run_id
    audited = {e.event_key: e.kind for e in AuditStore(api.engine).audit_for(account_id)}
    assert audited == {f"overdue-{account_id}/{run_id}/ev-1": "started"}

    again = await api.http.post("/accounts", json=account_body(api, account_id=account_id), headers=AUTH)
    assert again.status_code == 200, "re-posting a running account starts nothing and says so"
    assert again.json()["run_id"] == run_id
    assert again.json()["status"]["stage"] == "pre_due" and again.json()["status"]["account_id"] == account_id
    assert len(AuditStore(api.engine).audit_for(account_id)) == 1, "and writes nothing again"


async def test_api_key_is_required(api: Api) -> None:
    account_id = await start_account(api)
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
        response = await api.http.get(f"/accounts/{account_id}/status", headers=headers)
        assert response.status_code == 401, headers
        response = await api.http.post("/accounts", json=account_body(api), headers=headers)
        assert response.status_code == 401, headers
    docs = await api.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_bad_bodies_are_422_naming_the_field(api: Api) -> None:
    response = await api.http.post("/accounts", json=account_body(api, phone="13800138000"), headers=AUTH)
    assert ("body", "phone") in field_errors(response)
    assert "E.164" in response.text

    account_id = await start_account(api)
    response = await api.http.post(
        f"/accounts/{account_id}/repayment", json={"amount": "-5", "reference": "P-1"}, headers=AUTH
    )
    assert ("body", "amount") in field_errors(response)
    response = await api.http.post(
        f"/accounts/{account_id}/pause",
        json={"reason": "dispute", "until": "2030-01-01T09:00:00"},
        headers=AUTH,
    )
    assert ("body", "until") in field_errors(response)
    assert "UTC offset" in response.text
    response = await api.http.post(f"/accounts/{account_id}/close", json={}, headers=AUTH)
    assert ("body", "reason") in field_errors(response)


async def test_unknown_account_is_404(api: Api) -> None:
    response = await api.http.get("/accounts/NOPE-1/status", headers=AUTH)
    assert response.status_code == 404 and "NOPE-1" in response.json()["detail"]
    response = await api.http.get("/accounts/NOPE-1/timeline", headers=AUTH)
    assert response.status_code == 404


async def test_an_action_on_a_closed_account_is_409_and_a_payment_for_it_is_kept(dev_api: Api) -> None:
    api = dev_api
    account_id = await start_account(api)
    response = await api.http.post(
        f"/accounts/{account_id}/settle", json={"amount": "1200.00", "reference": "SET-API-1"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    await api.client.get_workflow_handle(workflow_id_for(account_id)).result()

    # Temporal answers NOT_FOUND as for an account that never existed; the API tells them apart.
    response = await api.http.post(f"/accounts/{account_id}/pause", json={"reason": "x"}, headers=AUTH)
    assert response.status_code == 409, response.text
    assert account_id in response.json()["detail"] and "closed (completed)" in response.json()["detail"]
    never = await api.http.post("/accounts/NOPE-CLOSED/pause", json={"reason": "x"}, headers=AUTH)
    assert never.status_code == 404, never.text

    # Posted again, an ended account is not started again, and the answer says why.
    again = await api.http.post("/accounts", json=account_body(api, account_id=account_id), headers=AUTH)
    assert again.status_code == 409, again.text
    assert again.json()["detail"] == f"account {account_id!r} has ended (completed): it is not started again"

    payment = {"account_id": account_id, "amount": "10.00", "reference": "BANK-LATE"}
    late = await post_signed(api, "/webhooks/payments", payment)
    assert late.status_code == 409 and "closed" in late.json()["detail"], late.text
    kept = api.phones.payment("BANK-LATE")
    assert kept is not None and kept.account_id == account_id and kept.signalled_at is None


@pytest.mark.parametrize(
    ("rpc_status", "http_status", "retry_after"),
    [
        (RPCStatusCode.RESOURCE_EXHAUSTED, 429, True),
        (RPCStatusCode.UNAVAILABLE, 503, True),
        (RPCStatusCode.DEADLINE_EXCEEDED, 503, True),
        (RPCStatusCode.PERMISSION_DENIED, 502, False),
        (RPCStatusCode.UNAUTHENTICATED, 502, False),
        (RPCStatusCode.INTERNAL, 502, False),
    ],
)
async def test_a_request_temporal_refuses_says_whether_to_retry(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    rpc_status: RPCStatusCode,
    http_status: int,
    retry_after: bool,
) -> None:
    """Through the app's own exception handlers: a client whose signal call Temporal refuses."""
    refusing = RefusingClient(client, RPCError("namespace rate limit exceeded", rpc_status, b""))
    engine = make_engine(settings.database_url)
    app = create_app(cast(Client, refusing), settings, api_settings(), engine)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kindly") as http:
            response = await http.post("/accounts/LN-REFUSED/pause", json={"reason": "x"}, headers=AUTH)
    finally:
        engine.dispose()
    assert response.status_code == http_status, response.text
    assert rpc_status.name in response.json()["detail"]
    assert ("retry-after" in response.headers) is retry_after


class RefusingClient:
    """A Temporal client whose workflow handles refuse every signal with ``error``."""

    def __init__(self, client: Client, error: RPCError) -> None:
        self._client = client
        self._error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_workflow_handle(self, workflow_id: str) -> Any:
        error = self._error

        class Handle:
            id = workflow_id

            async def signal(self, *_: Any, **__: Any) -> None:
                raise error

            async def execute_update(self, *_: Any, **__: Any) -> None:
                raise error

        return Handle()


# --- webhooks -------------------------------------------------------------------------------------


async def test_twilio_reply_reaches_every_account_of_the_number_once(api: Api) -> None:
    phone = "+8613800000002"
    first = await start_account(api, phone=phone)
    second = await start_account(api, phone=phone)
    form = {"From": phone, "Body": "I will pay on Friday", "MessageSid": "SM0001"}

    response = await post_twilio(api, form)
    assert response.status_code == 200 and "<Response/>" in response.text
    for account_id in (first, second):
        await eventually(partial(timeline_kinds, api, account_id), lambda k: "reply_received" in k)

    replay = await post_twilio(api, form)  # the very same request: refused as a replay
    assert replay.status_code == 403 and "already used" in replay.text
    # The same message, differently signed (Twilio added a field): deduplicated by MessageSid.
    again = await post_twilio(api, {**form, "NumSegments": "1"})
    assert again.status_code == 200 and "<Response/>" in again.text
    # A later, new message: once it has arrived, a signal from the re-sends would have arrived too.
    await post_twilio(api, {**form, "MessageSid": "SM0002", "Body": "paid now"})
    kinds = await eventually(lambda: timeline_kinds(api, first), lambda k: k.count("reply_received") >= 2)
    assert kinds.count("reply_received") == 2
    stored = api.phones.inbound_messages(phone)
    assert [m.provider_message_id for m in stored] == ["SM0001", "SM0002"]
    assert stored[0].matched_account_ids == [first, second] and stored[0].routed_at is not None


async def test_twilio_bad_or_missing_signature_is_403(api: Api) -> None:
    phone = "+8613800000003"
    account_id = await start_account(api, phone=phone)
    form = {"From": phone, "Body": "hello", "MessageSid": "SM0100"}
    signature = twilio_signature(TWILIO_TOKEN, f"{PUBLIC_BASE}/webhooks/sms/twilio", form.items())
    tampered = await post_twilio(api, {**form, "Body": "tampered"}, signature=signature)
    assert tampered.status_code == 403
    missing = await api.http.post(
        "/webhooks/sms/twilio",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert missing.status_code == 403
    wrong_url = twilio_signature(
        TWILIO_TOKEN, "https://elsewhere.example.com/webhooks/sms/twilio", form.items()
    )
    assert (await post_twilio(api, form, signature=wrong_url)).status_code == 403
    assert api.phones.inbound_messages(phone) == []
    assert "reply_received" not in await timeline_kinds(api, account_id)


async def test_twilio_unknown_number_is_stored_and_answered(api: Api) -> None:
    form = {"From": "+8613999999999", "Body": "who is this?", "MessageSid": "SM0200"}
    response = await post_twilio(api, form)
    assert response.status_code == 200 and "<Response/>" in response.text
    stored = api.phones.inbound_messages("+8613999999999")
    assert len(stored) == 1
    assert api.phones.open_body(stored[0]) == "who is this?" and stored[0].matched_account_ids == []


async def test_json_inbound_sms_with_valid_and_invalid_signature(api: Api) -> None:
    phone = "+8613800000004"
    account_id = await start_account(api, phone=phone)
    payload = {"from": phone, "text": "call me tomorrow", "message_id": "M-1"}

    bad = await post_signed(api, "/webhooks/sms", payload, secret="not-the-secret")
    assert bad.status_code == 403
    assert api.phones.inbound_messages(phone) == []

    good = await post_signed(api, "/webhooks/sms", payload)
    assert good.status_code == 200 and good.json() == {"status": "accepted", "matched_accounts": 1}
    await eventually(lambda: timeline_kinds(api, account_id), lambda k: "reply_received" in k)
    again = await post_signed(api, "/webhooks/sms", payload)  # the same message, signed afresh
    assert again.json()["status"] == "duplicate"

    invalid = await post_signed(api, "/webhooks/sms", {"from": phone, "text": "x"})
    assert ("body", "message_id") in field_errors(invalid)


async def test_payment_notification_credits_once(api: Api) -> None:
    account_id = await start_account(api)
    payment = {"account_id": account_id, "amount": "400.00", "reference": "BANK-1"}
    first = await post_signed(api, "/webhooks/payments", payment)
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    second = await post_signed(api, "/webhooks/payments", payment)
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    assert (await post_signed(api, "/webhooks/payments", payment, secret="wrong")).status_code == 403
    conflict = await post_signed(api, "/webhooks/payments", {**payment, "amount": "1.00"})
    assert conflict.status_code == 409

    third = await post_signed(api, "/webhooks/payments", {**payment, "reference": "BANK-2", "amount": "100"})
    assert third.json()["status"] == "accepted"
    await eventually(
        lambda: get_status(api, account_id), lambda s: Decimal(s["amount_due"]) == Decimal("1000.00")
    )
    kinds = await timeline_kinds(api, account_id)
    assert kinds.count("repayment_received") == 2 and "signal_rejected" not in kinds

    unknown = await post_signed(
        api, "/webhooks/payments", {**payment, "account_id": "NOPE-2", "reference": "X"}
    )
    assert unknown.status_code == 404


async def test_payment_of_the_largest_amount_is_credited_and_then_a_duplicate(api: Api) -> None:
    # Found by the fuzzer: a Numeric column on SQLite rounded it through float, so the first
    # notification already looked like one "for another amount" (409) and was never credited.
    account_id = await start_account(api, amount_due="9999999999999999.99")
    payment = {"account_id": account_id, "amount": "9999999999999999.99", "reference": "BANK-BIG"}
    first = await post_signed(api, "/webhooks/payments", payment)
    assert first.status_code == 200 and first.json()["status"] == "accepted", first.text
    again = await post_signed(api, "/webhooks/payments", payment)
    assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text


async def test_list_filters_that_broke_the_query_are_422(api: Api) -> None:
    # Found by probing after the fuzzer: converting the instant to UTC overflowed into a 500.
    for instant in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"):
        response = await api.http.get("/accounts", params={"next_touchpoint_before": instant}, headers=AUTH)
        assert response.status_code == 422 and "out of range" in response.text, response.text
    # Found by the fuzzer: an apostrophe in a filter made the dev server's visibility store fail (503).
    for params in ({"segment": "x'!"}, {"stage": "x'!"}):
        response = await api.http.get("/accounts", params=params, headers=AUTH)
        assert ("query", next(iter(params))) in field_errors(response)


async def test_oversized_body_is_413(api: Api) -> None:
    big = {"from": "+8613800000005", "text": "x" * (MAX_BODY + 1), "message_id": "M-big"}
    response = await post_signed(api, "/webhooks/sms", big)
    assert response.status_code == 413
    response = await api.http.post(
        "/accounts", json=account_body(api, customer_name="y" * MAX_BODY), headers=AUTH
    )
    assert response.status_code == 413

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(3):
            yield b"z" * (MAX_BODY // 2)

    response = await api.http.post(
        "/webhooks/sms", content=chunked(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert api.phones.inbound_messages("+8613800000005") == []


# --- phone numbers at rest ------------------------------------------------------------------------


def assert_no_phone_in(database: Path, phones: list[str]) -> None:
    """No number, with or without its ``+``, in the SQLite file or its WAL and shared-memory files."""
    files = sorted(database.parent.glob(database.name + "*"))
    assert database in files
    for path in files:
        content = path.read_bytes()
        for phone in phones:
            for form in (phone, phone.lstrip("+")):
                assert form.encode() not in content, f"{form} in clear in {path.name}"


async def test_phone_numbers_are_stored_only_hashed_and_encrypted(dev_api: Api) -> None:
    api = dev_api
    first, moved, stranger, stopper = "+8613800000011", "+8613800000012", "+8613800000013", "+8613800000014"
    account_id = await start_account(api, phone=first)
    response = await post_twilio(api, {"From": first, "Body": "next week", "MessageSid": "SM1100"})
    assert response.status_code == 200
    await eventually(partial(timeline_kinds, api, account_id), lambda k: "reply_received" in k)

    # A new number moves the account in the index: replies from it are routed, by its hash.
    response = await api.http.post(f"/accounts/{account_id}/contact", json={"phone": moved}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert api.phones.accounts_for(moved) == [account_id] and api.phones.accounts_for(first) == []
    answer = await post_signed(api, "/webhooks/sms", {"from": moved, "text": "ok", "message_id": "M-1100"})
    assert answer.json() == {"status": "accepted", "matched_accounts": 1}
    await eventually(partial(timeline_kinds, api, account_id), lambda k: k.count("reply_received") == 2)

    # An unknown sender is kept for an operator, who can read the number with the key ring.
    await post_signed(api, "/webhooks/sms", {"from": stranger, "text": "who?", "message_id": "M-1101"})
    [unknown] = api.phones.inbound_messages(stranger)
    assert unknown.matched_account_ids == [] and api.phones.open_phone(unknown.phone_encrypted) == stranger

    # STOP: the worker stores the opt-out by hash; a later account on that number starts opted out.
    stopping = await start_account(api, phone=stopper)
    await post_signed(api, "/webhooks/sms", {"from": stopper, "text": "STOP", "message_id": "M-1102"})
    await eventually(partial(timeline_kinds, api, stopping), lambda k: "opted_out" in k)
    await eventually(lambda: asyncio.to_thread(api.phones.is_opted_out, stopper), bool)
    later = await start_account(api, phone=stopper)
    await eventually(partial(timeline_kinds, api, later), lambda k: "opted_out" in k)
    [opt_out] = api.phones.opt_outs()
    assert api.phones.open_phone(opt_out.phone_encrypted) == stopper

    assert_no_phone_in(api.database, [first, moved, stranger, stopper])


async def test_a_wrong_key_neither_finds_nor_opens_a_number(api: Api, settings: Settings) -> None:
    phone = "+8613800000021"
    await post_signed(api, "/webhooks/sms", {"from": phone, "text": "hello", "message_id": "M-2100"})
    [stored] = api.phones.inbound_messages(phone)
    assert stored.phone_hash == api.phones.phone_hash(phone) != phone

    right = load_keyring(settings)
    wrong_keys = {key_id: base64.b64decode(generate_key()) for key_id in right.keys}
    wrong = PhoneIndex(
        api.engine,
        KeyRing(keys=wrong_keys, current_id=right.current_id, hash_key=base64.b64decode(generate_key())),
    )
    with pytest.raises(DecryptionError):
        wrong.open_phone(stored.phone_encrypted)
    with pytest.raises(DecryptionError):
        wrong.open_body(stored)
    assert wrong.inbound_messages(phone) == []
    assert api.phones.open_phone(stored.phone_encrypted) == phone
    assert api.phones.open_body(stored) == "hello"


def test_a_database_of_the_older_version_keeps_working_and_names_its_old_tables(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Before numbers were protected the tables were phone_index, opt_out, inbound_message and
    payment_notification, with numbers in clear: they are left alone, named in a warning."""
    with contextlib.closing(sqlite3.connect(tmp_path / "old.db")) as connection, connection:
        for statement in (
            "CREATE TABLE phone_index (id INTEGER PRIMARY KEY, phone VARCHAR NOT NULL, account_id VARCHAR"
            " NOT NULL, registered_at DATETIME NOT NULL, UNIQUE (phone, account_id))",
            "CREATE TABLE opt_out (phone VARCHAR PRIMARY KEY, account_id VARCHAR NOT NULL,"
            " opted_out_at DATETIME NOT NULL)",
            "CREATE TABLE payment_notification (reference VARCHAR PRIMARY KEY, account_id VARCHAR NOT NULL,"
            " amount NUMERIC(18, 2) NOT NULL, received_at DATETIME NOT NULL, signalled_at DATETIME)",
            "INSERT INTO phone_index (phone, account_id, registered_at) VALUES"
            " ('+8613800000051', 'LN-OLD', '2026-01-01 00:00:00')",
        ):
            connection.execute(statement)
    with caplog.at_level("WARNING", logger="kindly.store.migrate"):
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")  # as the worker and the API start
    [warning] = [record.getMessage() for record in caplog.records if record.name == "kindly.store.migrate"]
    assert "opt_out, payment_notification, phone_index" in warning and "in clear" in warning

    phones = PhoneIndex(engine, load_keyring(settings))
    phones.register("+8613800000051", "LN-NEW")
    assert phones.accounts_for("+8613800000051") == ["LN-NEW"]  # the old rows are not read
    phones.record_payment("PAY-OLD-1", "LN-NEW", Decimal("10.00"))
    assert phones.payment("PAY-OLD-1") is not None
    engine.dispose()
