"""Complaints through the HTTP API on a real server: bad bodies refused naming the field before anything
reaches Temporal; the open complaints listed by their next deadline at each account's offset; and, on the
dev server (the time-skipping server has no updates), a complaint opened, refused while open, acknowledged
and resolved as workflow updates, kept in the complaints table as it goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from activities.inputs import ComplaintRecord
from kindly.domain.complaints import Complaint, ComplaintChannel
from kindly.store import ComplaintStore
from tests.conftest import eventually
from tests.test_api import AUTH, Api, api, field_errors  # noqa: F401  (``api``: a fixture)
from tests.test_operator_actions import open_account

RECEIVED = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


async def post(served: Api, path: str, body: dict[str, Any]) -> Any:
    return await served.http.post(path, json=body, headers=AUTH)


async def test_bad_bodies_are_refused_naming_the_field(api: Api) -> None:  # noqa: F811
    base = "/accounts/LN-ANY/complaints"
    cases: list[tuple[str, dict[str, Any], tuple[str, ...], str]] = [
        (base, {"received_at": "2026-12-01T09:00:00"}, ("body", "received_at"), "UTC offset"),
        (base, {"note": "call her on 138 0013 8000"}, ("body", "note"), "personal data"),
        (base, {"channel": "fax"}, ("body", "channel"), "sms_reply"),
        (f"{base}/1/acknowledge", {}, ("body", "note"), "Field required"),
        (f"{base}/1/acknowledge", {"note": "   "}, ("body", "note"), "blank"),
        (f"{base}/1/acknowledge", {"note": "wrote to li@example.com"}, ("body", "note"), "e-mail"),
        (
            f"{base}/1/resolve",
            {"outcome": "fixed", "note": "refunded the fee"},
            ("body", "outcome"),
            "upheld",
        ),
        (f"{base}/1/resolve", {"outcome": "upheld"}, ("body", "note"), "Field required"),
        (
            f"{base}/0/acknowledge",
            {"note": "told by phone"},
            ("path", "number"),
            "greater than or equal to 1",
        ),
        (f"{base}/0/resolve", {"outcome": "upheld", "note": "ok"}, ("path", "number"), "greater than"),
    ]
    for path, body, field, words in cases:
        response = await post(api, path, body)
        assert field in field_errors(response), (path, body, response.text)
        assert words in response.text, (path, body, response.text)
    unauthorised = await api.http.post(f"{base}/1/acknowledge", json={"note": "told"})
    assert unauthorised.status_code == 401


async def test_the_open_complaints_are_listed_by_deadline_at_each_accounts_offset(
    api: Api,  # noqa: F811
) -> None:
    def record(account_id: str, timezone: str, received: datetime, **facts: Any) -> ComplaintRecord:
        complaint = Complaint(
            number=1,
            channel=ComplaintChannel.API,
            received_at=received,
            acknowledge_by=received + DAY,
            resolve_by=received + 15 * DAY,
            **facts,
        )
        return ComplaintRecord(
            account_id=account_id, segment="standard", timezone=timezone, locale="en-US", complaint=complaint
        )

    ComplaintStore(api.engine).upsert(
        [
            record("LN-LATER", "America/New_York", RECEIVED + 2 * DAY),
            record("LN-FIRST", "Asia/Shanghai", RECEIVED),
            record("LN-DONE", "Asia/Shanghai", RECEIVED, resolved_at=RECEIVED + DAY, outcome="withdrawn"),
        ]
    )
    response = await api.http.get("/complaints", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["X-Total-Count"] == "2"
    first, later = response.json()
    assert (first["account_id"], later["account_id"]) == ("LN-FIRST", "LN-LATER")
    assert first["received_at"] == "2026-12-07T10:00:00+08:00"
    assert first["next_deadline"] == "2026-12-08T10:00:00+08:00" and first["awaiting"] == "acknowledgement"
    assert later["received_at"] == "2026-12-08T21:00:00-05:00"
    assert first["overdue"] is (datetime.now(UTC) >= RECEIVED + DAY)

    page = await api.http.get("/complaints", params={"open": "true", "limit": 1, "offset": 1}, headers=AUTH)
    assert [item["account_id"] for item in page.json()] == ["LN-LATER"]
    assert page.headers["X-Total-Count"] == "2"
    for params, field in (({"open": "false"}, "open"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset")):
        refused = await api.http.get("/complaints", params=params, headers=AUTH)
        assert ("query", field) in field_errors(refused), params
    assert (await api.http.get("/complaints")).status_code == 401


async def test_an_unknown_account_is_404(dev_api: Api) -> None:
    response = await post(dev_api, "/accounts/NOPE-COMPLAINT/complaints", {"note": "rude caller"})
    assert response.status_code == 404 and "NOPE-COMPLAINT" in response.text


async def test_a_complaint_is_opened_acknowledged_and_resolved(dev_api: Api) -> None:
    served = dev_api
    account_id = await open_account(served)
    base = f"/accounts/{account_id}/complaints"
    received = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)

    opened = await post(served, base, {"received_at": received.isoformat(), "note": "calls at lunchtime"})
    assert opened.status_code == 200, opened.text
    status = opened.json()
    [complaint] = status["complaints"]
    assert (complaint["number"], complaint["channel"]) == (1, "api")
    assert datetime.fromisoformat(complaint["received_at"]) == received
    assert status["contact_held_for_complaint"]

    again = await post(served, base, {"channel": "console"})
    assert again.status_code == 409 and "complaint 1 is open" in again.text, again.text
    named = await post(served, f"{base}/1/acknowledge", {"note": "Wang Xiaoming was told by phone"})
    assert ("body", "note") in field_errors(named), "the account's own customer's name is refused"
    unknown = await post(served, f"{base}/2/acknowledge", {"note": "told by phone"})
    assert ("path", "number") in field_errors(unknown)

    listed = await eventually(
        lambda: served.http.get("/complaints", headers=AUTH),
        lambda response: any(item["account_id"] == account_id for item in response.json()),
    )
    [item] = [item for item in listed.json() if item["account_id"] == account_id]
    assert item["awaiting"] == "acknowledgement" and item["timezone"] == "Asia/Shanghai"

    acknowledged = await post(served, f"{base}/1/acknowledge", {"note": "told by phone we are looking"})
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["complaints"][0]["acknowledged_at"] is not None
    twice = await post(served, f"{base}/1/acknowledge", {"note": "told again"})
    assert twice.status_code == 409 and "already acknowledged" in twice.text

    resolved = await post(served, f"{base}/1/resolve", {"outcome": "partly_upheld", "note": "fee refunded"})
    assert resolved.status_code == 200, resolved.text
    answer = resolved.json()
    assert answer["complaints"][0]["outcome"] == "partly_upheld"
    assert answer["contact_held_for_complaint"], "contact stays held until an operator resumes it"
    after = await post(served, f"{base}/1/acknowledge", {"note": "late note"})
    assert after.status_code == 409 and "already resolved" in after.text

    [kept] = await eventually(
        lambda: _for_account(served, account_id),
        lambda views: bool(views) and views[0].resolved_at is not None,
    )
    assert kept.acknowledged_at is not None and str(kept.outcome) == "partly_upheld"


async def _for_account(served: Api, account_id: str) -> list[Any]:
    return ComplaintStore(served.engine).for_account(account_id)
