"""SMS sends run on their own task queue, which Temporal rate-limits within the gateway's accepted rate."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.programs.rate_limit import sms_task_queue_rate
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from tests.lifecycle_helpers import after_first_reminder


async def test_send_sms_is_scheduled_on_the_sms_queue(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    handle = await after_first_reminder(env, client, settings.task_queue)
    queues = {
        event.activity_task_scheduled_event_attributes.activity_type.name: (
            event.activity_task_scheduled_event_attributes.task_queue.name
        )
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert queues["send_sms"] == settings.task_queue + "-sms"


async def test_the_sms_worker_carries_the_rate_limit_setting(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    limited = settings.model_copy(update={"sms_rate_limit_per_second": 7.5})
    async with build_worker(env.client, limited) as group:
        accounts, sms = group.workers
        assert accounts.config()["task_queue"] == limited.task_queue
        assert accounts.config().get("max_task_queue_activities_per_second") is None, "only SMS are limited"
        assert sms.config()["task_queue"] == limited.task_queue + "-sms"
        # Temporal's limiter bursts a second's worth per partition: the queue gets what keeps the
        # gateway at 7.5 in any second (tests/test_rate_limit.py), not 7.5 itself.
        rate = sms.config()["max_task_queue_activities_per_second"]
        assert rate == sms_task_queue_rate(7.5)
        assert rate is not None and rate < 7.5 / 2
        assert sms.config()["workflows"] == [], "the SMS queue runs sends only"
