"""The SMS gateway is down for hours (hangs past the HTTP timeout, then 503s), on the time-skipping server.

The reminder is due when the customer's window opens; the gateway fails every attempt until long
after the window closed. The sends retry with backoff, all with one idempotency key, only inside
the window; when the window closes the workflow records a deferral instead of texting at night; the
gateway recovers during the night and the message goes out once, inside the next day's window.
Times are the test server's simulated clock when each request reached the gateway, read in the
customer's own time zone.

The second test pins the window's last minutes: the workflow records "deferred ... next window" once,
and no retry reaches the gateway after the window closed.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import AccountStatus, TemplateName, TimelineEntry, TimelineKind
from kindly.settings import Settings
from tests.conftest import eventually
from tests.fault_helpers import OutageGateway, OutageRequest, loop_clock, zone_at_local_hour
from tests.lifecycle_helpers import local_clock, make_account, start, status, timeline

WINDOW = (time(9), time(20))  # the segment's preferred window (plain: the shipped default)
HANGING_ATTEMPTS = 3
HTTP_TIMEOUT_SECONDS = 0.5
"""The worker's HTTP timeout here: a hanging gateway costs this much real time per attempt."""


@pytest.fixture
def outage() -> Iterator[OutageGateway]:
    with OutageGateway(hang_seconds=HTTP_TIMEOUT_SECONDS * 6) as gateway:
        yield gateway


@pytest.fixture
def settings(settings: Settings, outage: OutageGateway) -> Settings:
    """The shared test settings, with the failing gateway as the SMS provider and a short timeout."""
    return settings.model_copy(
        update={"sms_webhook_url": f"{outage.url}/sms", "http_timeout_seconds": HTTP_TIMEOUT_SECONDS}
    )


def _local(request: OutageRequest, zone: str) -> datetime:
    return request.simulated_at.astimezone(ZoneInfo(zone))


def _in_window(moment: datetime) -> bool:
    return WINDOW[0] <= moment.time() < WINDOW[1]


@dataclass
class Outage:
    """What one day-long outage looked like, read in the customer's zone."""

    zone: str
    key: str
    planned: datetime
    window_closes: datetime
    failed: list[OutageRequest]
    night_timeline: list[TimelineEntry]
    night_status: AccountStatus
    handle: WorkflowHandle[Any, Any]


async def _outage_until_the_night(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway
) -> Outage:
    """Start an account due when the window opens today; keep the gateway down until 22:00."""
    outage.clock = loop_clock(asyncio.get_running_loop(), env.get_current_time)
    # 03:00 in the customer's zone: the first-overdue reminder is due when the window opens today.
    now = await env.get_current_time()
    zone = zone_at_local_hour(now, 3)
    today = now.astimezone(ZoneInfo(zone)).date()
    outage.hang(HANGING_ATTEMPTS)
    handle = await start(
        client, settings.task_queue, make_account(today - timedelta(days=1), timezone=zone, locale="en-US")
    )
    planned_status = await eventually(lambda: status(handle), lambda s: s.next_touchpoint_at is not None)
    assert planned_status.next_touchpoint_at is not None
    planned = planned_status.next_touchpoint_at.astimezone(ZoneInfo(zone))
    assert planned.date() == today and _in_window(planned), planned
    window_closes = datetime.combine(today, WINDOW[1], ZoneInfo(zone))
    await env.sleep(window_closes + timedelta(hours=2) - await env.get_current_time())
    return Outage(
        zone=zone,
        key=f"{handle.id}/{handle.result_run_id}/tp-1",
        planned=planned,
        window_closes=window_closes,
        failed=outage.requests,
        night_timeline=await timeline(handle),
        night_status=await status(handle),
        handle=handle,
    )


async def test_gateway_down_for_hours_retries_with_one_key_and_sends_once_in_the_next_window(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway
) -> None:
    day = await _outage_until_the_night(env, client, settings, outage)
    failed, zone = day.failed, day.zone

    # Hours of attempts: first hanging past the HTTP timeout, then 503s; one key throughout.
    assert len(failed) >= 10, f"several attempts over the day, got {len(failed)}"
    assert [r.status for r in failed[:HANGING_ATTEMPTS]] == [None] * HANGING_ATTEMPTS
    assert {r.status for r in failed[HANGING_ATTEMPTS:]} == {503}
    assert {r.body["idempotency_key"] for r in failed} == {day.key}
    assert {r.headers["idempotency-key"] for r in failed} == {day.key}
    assert {r.body["template"] for r in failed} == {TemplateName.FIRST_OVERDUE}
    for request in failed:
        local = _local(request, zone)
        assert local.date() == day.planned.date() and local >= day.planned, local
    # Backoff: the retries space out (5 s, 10 s, 20 s, ... up to the ten-minute cap).
    gaps = [b.simulated_at - a.simulated_at for a, b in itertools.pairwise(failed)]
    assert gaps[:8] == sorted(gaps[:8]) and gaps[7] >= timedelta(minutes=5), gaps[:8]
    # The cap: no gap longer than ten minutes (and a little). On a loaded machine one attempt can end
    # before the gateway records it (the worker's HTTP timeout here is half a second of real time, and
    # the gateway serves from the test's own process), which leaves one gap of two capped backoffs; a
    # longer cap would show in every late gap.
    cap = timedelta(minutes=10, seconds=30)
    over_cap = [gap for gap in gaps if gap > cap]
    assert len(over_cap) <= 1 and all(gap <= 2 * cap for gap in over_cap), gaps
    assert sum(gap > timedelta(minutes=9) for gap in gaps) >= 3, gaps  # the cap was reached

    # At night: nothing sent, the deferral recorded, the message planned for tomorrow's window.
    kinds = [e.kind for e in day.night_timeline]
    assert TimelineKind.SMS_SENT not in kinds
    deferred = [e for e in day.night_timeline if e.kind is TimelineKind.DEFERRED]
    # Temporal stops retrying once the next backoff would pass the window's end, so the deferral is
    # recorded shortly before it closes, at the last failed attempt's time or later.
    last_attempt = _local(failed[-1], zone).replace(microsecond=0)  # timelines show whole seconds
    assert deferred and local_clock(deferred[-1]) >= last_attempt, deferred
    assert local_clock(deferred[-1]) >= day.window_closes - timedelta(minutes=10, seconds=30), deferred
    assert day.night_status.sms_sent == 0 and day.night_status.next_touchpoint_at is not None
    tomorrow = day.night_status.next_touchpoint_at.astimezone(ZoneInfo(zone))
    assert tomorrow.date() == day.planned.date() + timedelta(days=1) and _in_window(tomorrow), tomorrow

    # The gateway recovers during the night; the message goes in the next window, once.
    outage.recover()
    await env.sleep(day.window_closes + timedelta(days=1, hours=1) - await env.get_current_time())
    done = await eventually(lambda: status(day.handle), lambda s: s.sms_sent == 1)
    assert done.sms_sent == 1
    after = outage.requests[len(failed) :]
    assert [r.status for r in after] == [200], after
    delivered = _local(after[0], zone)
    assert after[0].body["idempotency_key"] == after[0].headers["idempotency-key"] == day.key
    assert delivered >= tomorrow and delivered.date() == tomorrow.date() and _in_window(delivered)
    sent = [e for e in await timeline(day.handle) if e.kind is TimelineKind.SMS_SENT]
    assert len(sent) == 1 and sent[0].detail.startswith(TemplateName.FIRST_OVERDUE)
    assert local_clock(sent[0]).date() == tomorrow.date() and _in_window(local_clock(sent[0]))


async def test_window_end_defers_once_and_no_attempt_reaches_the_gateway_after_it(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway
) -> None:
    day = await _outage_until_the_night(env, client, settings, outage)
    late = [r for r in day.failed if not _in_window(_local(r, day.zone))]
    night_start, *deferred = [e for e in day.night_timeline if e.kind is TimelineKind.DEFERRED]
    assert [(_local(r, day.zone), r.status) for r in late] == []
    assert "quiet_hours" in night_start.detail and day.planned.isoformat() in night_start.detail
    assert len(deferred) == 1, [(e.at, e.detail) for e in deferred]
