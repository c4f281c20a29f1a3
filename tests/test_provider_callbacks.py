"""Alibaba Cloud's and Tencent Cloud's own pushes through the API on a real server (127.0.0.1), with a
real worker and the time-skipping Temporal server.

Reports mark a dead number undeliverable (``sms_undeliverable`` reaches the account) and record a
delivery; replies reach the account (STOP opts out); a batch pushed again, reordered, routes nothing
twice; a wrong or unset path secret is answered as an unknown path and routes nothing; a malformed item
is named and the batch's good items still count; a report that overtook its send is asked for again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.programs.api.callback_batches import callback_secret_matches, to_e164
from kindly.settings import Settings
from kindly.store import AuditStore, OutboxEntry
from tests import test_api
from tests.conftest import eventually
from tests.test_api import AUTH, Api, serving, start_account, timeline_kinds
from tests.test_webhook_security import sent_message

api = test_api.api  # the fixture: the API with no callback secret set

SECRET = "cb-0123456789abcdef0123456789abcdef"
ALIYUN = f"/callbacks/aliyun/{SECRET}"
TENCENT = f"/callbacks/tencent/{SECRET}"
ALIYUN_OK = {"code": 0, "msg": "成功"}
TENCENT_OK = {"result": 0, "errmsg": "OK"}
PATHS = ("/callbacks/aliyun/{}/SmsReport", "/callbacks/aliyun/{}/SmsUp", "/callbacks/tencent/{}/status")
ALL_PATHS = (*PATHS, "/callbacks/tencent/{}/reply")


@pytest.fixture
async def callbacks(env: WorkflowEnvironment, client: Client, settings: Settings) -> AsyncIterator[Api]:
    """The API with the callback secret set, on a real server over the worker's Temporal and database."""
    with_secret = settings.model_copy(update={"sms_callback_secret": SecretStr(SECRET)})
    async with serving(env, client, with_secret, test_api.api_settings()) as served:
        yield served


async def push(api: Api, path: str, body: Any) -> httpx.Response:
    return await api.http.post(
        path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )


def aliyun_report(biz_id: str, success: bool, err_code: str = "DELIVERED", **extra: Any) -> dict[str, Any]:
    return {
        "phone_number": "13800000000",
        "send_time": "2026-03-01 10:00:00",
        "report_time": "2026-03-01 10:00:05",
        "success": success,
        "err_code": err_code,
        "err_msg": "用户接收成功" if success else "空号",
        "sms_size": "1",
        "biz_id": biz_id,
        "out_id": "",
        **extra,
    }


def aliyun_up(
    phone: str, content: str, sequence_id: int, send_time: str = "2026-03-01 10:05:00"
) -> dict[str, Any]:
    return {
        "phone_number": phone,
        "send_time": send_time,
        "content": content,
        "sign_name": "Kindly",
        "dest_code": "1234",
        "sequence_id": sequence_id,
    }


def tencent_report(sid: str, status: str, errmsg: str = "DELIVRD") -> dict[str, Any]:
    return {
        "user_receive_time": "2026-03-01 10:00:05",
        "nationcode": "86",
        "mobile": "13800000000",
        "report_status": status,
        "errmsg": errmsg,
        "description": "用户短信送达成功" if status == "SUCCESS" else "空号",
        "sid": sid,
    }


def tencent_reply(mobile: str, text: str, time: int, nationcode: str = "86") -> dict[str, Any]:
    return {
        "extend": "",
        "mobile": mobile,
        "nationcode": nationcode,
        "sign": "Kindly",
        "text": text,
        "time": time,
    }


async def timeline(api: Api, account_id: str) -> list[dict[str, Any]]:
    response = await api.http.get(f"/accounts/{account_id}/timeline", headers=AUTH)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


def receipts_audited(audit: AuditStore, account_id: str) -> list[str | None]:
    return [row.outcome for row in audit.audit_for(account_id) if row.kind == "delivery_receipt"]


async def sent(api: Api, account_id: str, provider_message_id: str) -> AuditStore:
    audit = AuditStore(api.engine)
    await asyncio.to_thread(sent_message, audit, account_id, provider_message_id)
    return audit


# --- reports --------------------------------------------------------------------------------------


async def test_aliyun_report_batch_marks_the_dead_number_and_records_the_delivery(callbacks: Api) -> None:
    api = callbacks
    dead, fine = (
        await start_account(api, phone="+8613800000101"),
        await start_account(api, phone="+8613800000102"),
    )
    audit = await sent(api, dead, "ALI-BIZ-1")
    await sent(api, fine, "ALI-BIZ-2")

    response = await push(
        api,
        f"{ALIYUN}/SmsReport",
        [aliyun_report("ALI-BIZ-1", False, "MK:0001"), aliyun_report("ALI-BIZ-2", True)],
    )
    assert (response.status_code, response.json()) == (200, ALIYUN_OK)

    entries = await eventually(
        partial(timeline, api, dead), lambda t: any(e["kind"] == "sms_undeliverable" for e in t)
    )
    [notice] = [e for e in entries if e["kind"] == "sms_undeliverable"]
    assert "MK:0001" in notice["detail"] and "13800000101" not in notice["detail"]
    failed, delivered = api.phones.delivery("ALI-BIZ-1"), api.phones.delivery("ALI-BIZ-2")
    assert failed is not None and (failed.status, failed.permanent) == ("failed", True)
    assert delivered is not None and delivered.status == "delivered"
    assert receipts_audited(audit, dead) == ["failed"] and receipts_audited(audit, fine) == ["delivered"]
    assert "sms_undeliverable" not in await timeline_kinds(api, fine)


async def test_tencent_status_batch_marks_the_dead_number_and_records_the_delivery(callbacks: Api) -> None:
    api = callbacks
    dead, fine = (
        await start_account(api, phone="+8613800000111"),
        await start_account(api, phone="+8613800000112"),
    )
    audit = await sent(api, dead, "TC-SID-1")
    await sent(api, fine, "TC-SID-2")

    batch = [tencent_report("TC-SID-2", "SUCCESS"), tencent_report("TC-SID-1", "FAIL", "MK:0001")]
    response = await push(api, f"{TENCENT}/status", batch)
    assert (response.status_code, response.json()) == (200, TENCENT_OK)

    await eventually(partial(timeline_kinds, api, dead), lambda k: "sms_undeliverable" in k)
    failed, delivered = api.phones.delivery("TC-SID-1"), api.phones.delivery("TC-SID-2")
    assert failed is not None and (failed.status, failed.permanent) == ("failed", True)
    assert failed.undeliverable_signalled_at is not None
    assert delivered is not None and delivered.status == "delivered"
    assert receipts_audited(audit, fine) == ["delivered"]


async def test_a_failure_that_is_not_a_dead_number_is_recorded_and_moves_nothing(callbacks: Api) -> None:
    api = callbacks
    phone = "+8613800000121"
    account_id = await start_account(api, phone=phone)
    audit = await sent(api, account_id, "ALI-BIZ-OFF")
    response = await push(api, f"{ALIYUN}/SmsReport", [aliyun_report("ALI-BIZ-OFF", False, "MK:0005")])
    assert response.json() == ALIYUN_OK
    current = api.phones.delivery("ALI-BIZ-OFF")
    assert current is not None and (current.status, current.permanent) == ("failed", False)
    assert receipts_audited(audit, account_id) == ["failed"]
    # A reply sent afterwards: once it reached the workflow, an undeliverable signal would have too.
    await push(api, f"{ALIYUN}/SmsUp", [aliyun_up(phone.removeprefix("+86"), "ok", 1210)])
    kinds = await eventually(partial(timeline_kinds, api, account_id), lambda k: "reply_received" in k)
    assert "sms_undeliverable" not in kinds


# --- replies --------------------------------------------------------------------------------------


async def test_aliyun_replies_reach_their_accounts_and_stop_opts_out(callbacks: Api) -> None:
    api = callbacks
    talker, stopper = "+8613800000131", "+8613800000132"
    talking, stopping = await start_account(api, phone=talker), await start_account(api, phone=stopper)
    batch = [aliyun_up("13800000131", "下周还款", 1310), aliyun_up("+86 138 0000 0132", "退订", 1311)]
    response = await push(api, f"{ALIYUN}/SmsUp", batch)
    assert (response.status_code, response.json()) == (200, ALIYUN_OK)

    await eventually(partial(timeline_kinds, api, talking), lambda k: "reply_received" in k)
    await eventually(partial(timeline_kinds, api, stopping), lambda k: "opted_out" in k)
    await eventually(lambda: asyncio.to_thread(api.phones.is_opted_out, stopper), bool)
    [stored] = api.phones.inbound_messages(talker)
    assert (stored.provider, stored.provider_message_id) == ("aliyun", "1310")
    assert api.phones.open_body(stored) == "下周还款"
    assert stored.matched_account_ids == [talking] and stored.routed_at is not None


async def test_tencent_reply_reaches_the_account_and_stop_opts_out(callbacks: Api) -> None:
    api = callbacks
    talker, stopper = "+8613800000141", "+8613800000142"
    talking, stopping = await start_account(api, phone=talker), await start_account(api, phone=stopper)
    response = await push(
        api, f"{TENCENT}/reply", tencent_reply("13800000141", "I will pay on Friday", 1772330000)
    )
    assert (response.status_code, response.json()) == (200, TENCENT_OK)
    response = await push(api, f"{TENCENT}/reply", tencent_reply("8613800000142", "STOP", 1772330001))
    assert (response.status_code, response.json()) == (200, TENCENT_OK)

    await eventually(partial(timeline_kinds, api, talking), lambda k: "reply_received" in k)
    await eventually(partial(timeline_kinds, api, stopping), lambda k: "opted_out" in k)
    [stored] = api.phones.inbound_messages(talker)
    assert stored.provider == "tencent" and api.phones.open_body(stored) == "I will pay on Friday"
    # The stand-in id is a keyed hash: it tells neither the number nor the text.
    assert stored.provider_message_id.startswith("h-") and "13800000141" not in stored.provider_message_id
    assert len(api.phones.inbound_messages(stopper)) == 1


# --- duplicates and order ---------------------------------------------------------------------------


async def test_batches_pushed_again_reordered_route_each_item_once(callbacks: Api) -> None:
    api = callbacks
    phone = "+8613800000151"
    account_id = await start_account(api, phone=phone)
    other = await start_account(api, phone="+8613800000152")
    audit = await sent(api, account_id, "ALI-BIZ-D1")
    await sent(api, other, "TC-SID-D2")
    third = await start_account(api, phone="+8613800000153")
    await sent(api, third, "ALI-BIZ-D3")

    reports = [aliyun_report("ALI-BIZ-D1", False, "MK:0001"), aliyun_report("ALI-BIZ-D3", True)]
    replies = [aliyun_up("13800000151", "one", 1510), aliyun_up("13800000151", "two", 1511)]
    assert (await push(api, f"{ALIYUN}/SmsReport", reports)).json() == ALIYUN_OK
    assert (await push(api, f"{ALIYUN}/SmsUp", replies)).json() == ALIYUN_OK
    statuses = [tencent_report("TC-SID-D2", "SUCCESS")]
    assert (await push(api, f"{TENCENT}/status", statuses)).json() == TENCENT_OK
    tencent_text = tencent_reply("13800000151", "three", 1772330100)
    assert (await push(api, f"{TENCENT}/reply", tencent_text)).json() == TENCENT_OK
    await eventually(partial(timeline_kinds, api, account_id), lambda k: k.count("reply_received") == 3)

    # Everything again, reordered and with an item twice in one batch: each answered as taken.
    again = await asyncio.gather(
        push(api, f"{ALIYUN}/SmsReport", [reports[1], reports[0], reports[0]]),
        push(api, f"{ALIYUN}/SmsUp", [replies[1], replies[0], replies[1]]),
        push(api, f"{TENCENT}/status", statuses * 2),
        push(api, f"{TENCENT}/reply", [tencent_text, tencent_text]),
    )
    assert [r.json() for r in again] == [ALIYUN_OK, ALIYUN_OK, TENCENT_OK, TENCENT_OK]

    # A new reply, routed after the repeats would have been: they reached the account not once more.
    assert (await push(api, f"{ALIYUN}/SmsUp", [aliyun_up("13800000151", "four", 1512)])).json() == ALIYUN_OK
    kinds = await eventually(
        partial(timeline_kinds, api, account_id), lambda k: k.count("reply_received") >= 4
    )
    assert kinds.count("reply_received") == 4 and kinds.count("sms_undeliverable") == 1
    assert [api.phones.open_body(m) for m in api.phones.inbound_messages(phone)] == [
        "one",
        "two",
        "three",
        "four",
    ]
    assert receipts_audited(audit, account_id) == ["failed"]
    assert receipts_audited(audit, other) == ["delivered"] == receipts_audited(audit, third)


async def test_replies_in_one_batch_reach_the_account_in_the_order_they_were_sent(callbacks: Api) -> None:
    api = callbacks
    phone = "+8613800000161"
    account_id = await start_account(api, phone=phone)
    batch = [
        aliyun_up("13800000161", "the second reply", 1611, send_time="2026-03-01 10:06:00"),
        aliyun_up("13800000161", "first", 1610, send_time="2026-03-01 10:05:00"),
    ]
    assert (await push(api, f"{ALIYUN}/SmsUp", batch)).json() == ALIYUN_OK
    entries = await eventually(
        partial(timeline, api, account_id), lambda t: sum(e["kind"] == "reply_received" for e in t) == 2
    )
    # The timeline tells a reply by its length: "first" has 5 characters, "the second reply" 16.
    replies = [e["detail"] for e in entries if e["kind"] == "reply_received"]
    assert "5 chars" in replies[0] and "16 chars" in replies[1], replies


# --- authentication -------------------------------------------------------------------------------


async def test_a_wrong_secret_is_answered_as_an_unknown_path_and_routes_nothing(
    callbacks: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kindly.programs.api.callback_batches")
    api = callbacks
    phone = "+8613800000171"
    account_id = await start_account(api, phone=phone)
    audit = await sent(api, account_id, "ALI-BIZ-S1")
    unknown = await api.http.post("/callbacks/nowhere", json=[])
    assert unknown.status_code == 404
    bodies = {
        "/callbacks/aliyun/{}/SmsReport": [aliyun_report("ALI-BIZ-S1", False, "MK:0001")],
        "/callbacks/aliyun/{}/SmsUp": [aliyun_up("13800000171", "STOP", 1710)],
        "/callbacks/tencent/{}/status": [tencent_report("ALI-BIZ-S1", "FAIL", "MK:0001")],
        "/callbacks/tencent/{}/reply": tencent_reply("13800000171", "STOP", 1772330200),
    }
    wrong = ["not-the-secret", SECRET[:-1], SECRET + "x", SECRET.upper(), " " + SECRET]
    for template, body in bodies.items():
        for guess in wrong:
            response = await push(api, template.format(guess), body)
            assert (response.status_code, response.json()) == (404, unknown.json()), (template, guess)
    assert api.phones.inbound_messages(phone) == [] and api.phones.delivery("ALI-BIZ-S1") is None
    assert receipts_audited(audit, account_id) == []
    refusals = [r.getMessage() for r in caplog.records if "refused: wrong secret" in r.getMessage()]
    assert len(refusals) == len(bodies) * len(wrong)
    assert not any(guess.strip() in record.getMessage() for record in caplog.records for guess in wrong)

    # The right secret: taken as new (nothing above stored anything), and it reaches the account after
    # anything the refused pushes could have signalled.
    response = await push(api, f"{ALIYUN}/SmsUp", bodies["/callbacks/aliyun/{}/SmsUp"])
    assert response.json() == ALIYUN_OK
    kinds = await eventually(partial(timeline_kinds, api, account_id), lambda k: "opted_out" in k)
    assert kinds.count("reply_received") == 1 and "sms_undeliverable" not in kinds


async def test_an_unset_secret_refuses_every_callback(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kindly.programs.api.callback_batches")
    phone = "+8613800000181"
    account_id = await start_account(api, phone=phone)
    for template in ALL_PATHS:
        for guess in (SECRET, "None", "null"):
            response = await push(api, template.format(guess), [aliyun_up("13800000181", "STOP", 1810)])
            assert (response.status_code, response.json()) == (404, {"detail": "Not Found"}), template
    assert api.phones.inbound_messages(phone) == []
    assert sum("sms_callback_secret is not set" in r.getMessage() for r in caplog.records) == 3 * len(
        ALL_PATHS
    )
    assert "reply_received" not in await timeline_kinds(api, account_id)


def test_the_secret_comparison_needs_a_configured_secret_and_the_exact_one() -> None:
    assert callback_secret_matches(SecretStr(SECRET), SECRET)
    assert not callback_secret_matches(SecretStr(SECRET), SECRET + " ")
    assert not callback_secret_matches(SecretStr(SECRET), "")
    assert not callback_secret_matches(None, "")
    assert not callback_secret_matches(SecretStr(""), "")


# --- bad input --------------------------------------------------------------------------------------


def locs(response: httpx.Response) -> list[tuple[str | int, ...]]:
    return [tuple(error["loc"]) for error in response.json()["detail"]]


async def test_malformed_items_are_named_and_the_good_items_still_count(callbacks: Api) -> None:
    api = callbacks
    phone = "+8613800000191"
    account_id = await start_account(api, phone=phone)
    await sent(api, account_id, "ALI-BIZ-M1")

    bad_reports = [
        {"biz_id": "ALI-BIZ-X", "success": "maybe"},
        aliyun_report("ALI-BIZ-M1", False, "MK:0001"),
        {"success": True},
    ]
    response = await push(api, f"{ALIYUN}/SmsReport", bad_reports)
    assert response.status_code == 422 and response.json()["code"] == 422
    assert locs(response) == [("body", 0, "success"), ("body", 2, "biz_id")]
    assert "1 item(s) taken" in response.json()["msg"]
    await eventually(partial(timeline_kinds, api, account_id), lambda k: "sms_undeliverable" in k)

    bad_replies = [aliyun_up("1380000****", "masked", 1910), aliyun_up("13800000191", "good", 1911), 42]
    response = await push(api, f"{ALIYUN}/SmsUp", bad_replies)
    assert response.status_code == 422 and locs(response) == [("body", 0, "phone_number"), ("body", 2)]
    await eventually(partial(timeline_kinds, api, account_id), lambda k: "reply_received" in k)
    assert [api.phones.open_body(m) for m in api.phones.inbound_messages(phone)] == ["good"]

    statuses = [tencent_report("TC-SID-M", "MAYBE"), {**tencent_report("TC-SID-M", "FAIL"), "sid": ["x"]}]
    response = await push(api, f"{TENCENT}/status", statuses)
    assert response.status_code == 422 and response.json()["result"] == 422
    assert locs(response) == [("body", 0, "report_status"), ("body", 1, "sid")]
    response = await push(
        api, f"{TENCENT}/reply", {**tencent_reply("13800000191", "x", 1), "time": "yesterday"}
    )
    assert response.status_code == 422 and locs(response) == [("body", "time")]

    for path in (f"{ALIYUN}/SmsReport", f"{ALIYUN}/SmsUp", f"{TENCENT}/status"):
        not_an_array = await push(api, path, {"biz_id": "x"})
        assert not_an_array.status_code == 422 and locs(not_an_array) == [("body",)], path
    garbage = await api.http.post(
        f"{TENCENT}/reply", content=b"\xff{", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 422 and garbage.json()["detail"][0]["msg"] == "body is not JSON"
    nested = await api.http.post(f"{ALIYUN}/SmsUp", content=b"[" * 2000 + b"]" * 2000)
    assert nested.status_code == 422 and locs(nested) == [("body",)]
    assert (await push(api, f"{ALIYUN}/SmsReport", [])).json() == ALIYUN_OK


# --- reports that overtake their send ---------------------------------------------------------------


async def test_a_report_before_its_send_is_recorded_is_asked_for_again(callbacks: Api) -> None:
    api = callbacks
    account_id = await start_account(api, phone="+8613800000201")
    audit = AuditStore(api.engine)
    key = f"overdue-{account_id}/run/tp-1"
    # The send is claimed (its outbox row is written before the provider is called), not yet completed.
    await asyncio.to_thread(
        audit.claim, OutboxEntry(idempotency_key=key, account_id=account_id, touchpoint=1, channel="sms")
    )
    early = [
        aliyun_report("ALI-BIZ-E1", False, "MK:0001", out_id=key),  # ours, not recorded yet: again later
        aliyun_report("ALI-BIZ-E2", True, out_id="someone-elses-otp"),  # not Kindly's: acknowledged
    ]
    response = await push(api, f"{ALIYUN}/SmsReport", early)
    assert response.status_code == 409 and response.json()["code"] == 409
    assert response.headers["retry-after"] and locs(response) == [("body", 0, "biz_id")]
    assert api.phones.delivery("ALI-BIZ-E1") is None
    no_reference = await push(api, f"{TENCENT}/status", [tencent_report("TC-SID-E3", "SUCCESS")])
    assert no_reference.status_code == 409 and locs(no_reference) == [("body", 0, "sid")]

    await asyncio.to_thread(sent_message, audit, account_id, "ALI-BIZ-E1")  # the send's answer is recorded
    # With a report of a first attempt whose answer was lost: the touchpoint's recorded message is
    # another, whose report Kindly follows; this one is acknowledged.
    lost_attempt = aliyun_report("ALI-BIZ-E0", True, out_id=key)
    response = await push(api, f"{ALIYUN}/SmsReport", [lost_attempt, *reversed(early)])
    assert (response.status_code, response.json()) == (200, ALIYUN_OK)
    await eventually(partial(timeline_kinds, api, account_id), lambda k: "sms_undeliverable" in k)
    assert receipts_audited(audit, account_id) == ["failed"]
    assert api.phones.delivery("ALI-BIZ-E0") is None and api.phones.delivery("ALI-BIZ-E2") is None


# --- phone numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "country_code", "e164"),
    [
        ("13800138000", None, "+8613800138000"),
        ("8613800138000", None, "+8613800138000"),
        ("+86 138-0013-8000", None, "+8613800138000"),
        ("008613800138000", None, "+8613800138000"),
        ("85212345678", None, "+85212345678"),
        ("13800138000", "86", "+8613800138000"),
        ("13800138000", "+86", "+8613800138000"),
        ("8613800138000", "86", "+8613800138000"),
        ("+8613800138000", "86", "+8613800138000"),
        ("91234567", "852", "+85291234567"),
    ],
)
def test_provider_numbers_become_e164(number: str, country_code: str | None, e164: str) -> None:
    assert to_e164(number, country_code) == e164


@pytest.mark.parametrize(
    ("number", "country_code"),
    [("138****8000", None), ("", None), ("+", None), ("abc", None), ("13800138000", "8x6"), ("0123", None)],
)
def test_what_is_no_phone_number_is_refused(number: str, country_code: str | None) -> None:
    with pytest.raises(ValueError):
        to_e164(number, country_code)


def test_the_access_log_never_shows_the_path_secret() -> None:
    import logging

    import kindly.programs.api.provider_callbacks  # noqa: F401  (installs the filters)

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/callbacks/aliyun/s3cr3t-value/SmsReport", "1.1", 200),
        None,
    )
    for log_filter in logging.getLogger("uvicorn.access").filters:
        assert not isinstance(log_filter, logging.Filter) or log_filter.filter(record)
    assert "s3cr3t-value" not in record.getMessage()
    assert "/callbacks/aliyun/…/SmsReport" in record.getMessage()
