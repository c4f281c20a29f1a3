"""Web UI inspection on the real dev server: search attributes, current details, no personal data."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from kindly.codec import data_converter
from kindly.domain.search_attributes import ALL_KEYS, CURRENCY, TIME_ZONE
from kindly.keyring import load_keyring
from kindly.programs import temporal
from kindly.programs.dev_server import bundled_binary
from kindly.programs.temporal import ensure_search_attributes, start_account
from kindly.settings import Settings
from tests.conftest import eventually
from tests.lifecycle_helpers import make_account, status


@pytest.fixture
def dev_client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client


async def test_search_attribute_registration_is_idempotent(dev_client: Client) -> None:
    assert await ensure_search_attributes(dev_client, dev_client.namespace) == []


async def test_accounts_are_findable_by_search_attributes_without_personal_data(
    dev_client: Client, settings: Settings
) -> None:
    # Due 40 days ago: overdue now, so its attributes say so whatever the hour of the run.
    account = make_account(
        _today_in_shanghai() - timedelta(days=40), segment="plain", timezone="Asia/Shanghai"
    )
    handle = await start_account(dev_client, account, task_queue=settings.task_queue)

    async def listed() -> list[Any]:
        query = (
            f'CollectionStage="overdue" AND DueDate <= "{_days_ago(30)}" AND Segment="plain"'
            f' AND WorkflowId="{handle.id}"'
        )
        return [w async for w in dev_client.list_workflows(query)]

    found = await eventually(listed, lambda rows: len(rows) == 1, attempts=800)
    attributes = found[0].typed_search_attributes
    values = {pair.key.name: pair.value for pair in attributes}
    assert values["CollectionStage"] == "overdue"
    # The moment the due date began in the customer's zone: midnight in Shanghai is 16:00 UTC the day before.
    assert values["DueDate"] == datetime.combine(account.due_date, time(0), ZoneInfo("Asia/Shanghai"))
    assert values["AmountDue"] == 1500.0 and values["Paused"] is False
    assert values["Currency"] == "CNY" and values["TimeZone"] == "Asia/Shanghai"

    await handle.signal("pause", {"reason": "checking a complaint"})
    await eventually(lambda: status(handle), lambda s: s.paused)

    async def paused_listed() -> list[Any]:
        return [w async for w in dev_client.list_workflows(f'Paused=true AND WorkflowId="{handle.id}"')]

    await eventually(paused_listed, lambda rows: len(rows) == 1, attempts=800)

    metadata = await handle.query("__temporal_workflow_metadata")
    details = metadata.current_details
    assert "Paused" in details

    description = await handle.describe()
    summary = await description.static_summary()
    assert summary == f"Overdue account, segment plain, due {account.due_date.isoformat()} ({account.locale})"
    shown = " ".join([details, summary, *(str(pair.value) for pair in description.typed_search_attributes)])
    for secret in (account.customer_name, account.phone, account.phone[-8:]):
        assert secret not in shown


def _days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def _today_in_shanghai() -> date:
    """The dev server runs on the real clock."""
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()


async def test_an_imported_account_is_findable_from_its_start_before_any_worker_sees_it(
    dev_client: Client, settings: Settings
) -> None:
    # Queued on a task queue no worker polls: only the start can have set its attributes.
    account = make_account(_today_in_shanghai() - timedelta(days=3), timezone="Asia/Shanghai")
    handle = await start_account(dev_client, account, task_queue=f"{settings.task_queue}-unpolled")

    async def listed() -> list[Any]:
        query = (
            f'CollectionStage="overdue" AND DueDate <= "{_days_ago(2)}" AND DueDate > "{_days_ago(5)}"'
            f' AND UnansweredSms = 0 AND WorkflowId="{handle.id}"'
        )
        return [w async for w in dev_client.list_workflows(query)]

    found = await eventually(listed, lambda rows: len(rows) == 1, attempts=800)
    values = {pair.key.name: pair.value for pair in found[0].typed_search_attributes}
    assert values["Segment"] == account.segment and values["Paused"] is False
    assert values["AmountDue"] == float(account.amount_due)
    assert values["Currency"] == account.currency and values["TimeZone"] == account.timezone
    assert "NextTouchpointAt" not in values  # the run publishes it once it has planned
    await handle.terminate("test over")


async def test_a_namespace_without_the_attributes_still_starts_accounts_and_gets_them_registered(
    settings: Settings,
) -> None:
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=bundled_binary("temporal"),
        data_converter=data_converter(load_keyring(settings)),
        ui=False,
    )
    try:
        client = environment.client
        account = make_account(_today_in_shanghai(), timezone="Asia/Shanghai")
        handle = await start_account(client, account, task_queue=settings.task_queue)
        description = await handle.describe()
        assert description.status is not None and description.status.name == "RUNNING"
        assert await ensure_search_attributes(client, client.namespace) == []  # registered by the start
        # and then given with it: DueDate, Currency and TimeZone are the start's alone to give.
        given = {pair.key.name: pair.value for pair in description.typed_search_attributes}
        assert given["TimeZone"] == "Asia/Shanghai" and given["Currency"] == "CNY" and "DueDate" in given
    finally:
        await environment.shutdown()


async def test_a_namespace_set_up_for_1_0_that_may_not_register_still_gets_the_due_date_at_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like Temporal Cloud before ``tcld`` added Currency and TimeZone: the start gives the others."""
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=bundled_binary("temporal"),
        data_converter=data_converter(load_keyring(settings)),
        ui=False,
    )
    try:
        client = environment.client
        older = [key for key in ALL_KEYS if key not in (CURRENCY, TIME_ZONE)]
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={key.name: IndexedValueType.Value(_proto_name(key)) for key in older},
            )
        )

        async def refused(client: Client, namespace: str) -> list[str]:
            raise RPCError("not allowed", RPCStatusCode.PERMISSION_DENIED, b"")

        monkeypatch.setattr(temporal, "ensure_search_attributes", refused)
        account = make_account(_today_in_shanghai(), timezone="Asia/Shanghai")
        handle = await start_account(client, account, task_queue=settings.task_queue)
        given = {pair.key.name: pair.value for pair in (await handle.describe()).typed_search_attributes}
        assert "DueDate" in given and "Segment" in given
        assert "Currency" not in given and "TimeZone" not in given
    finally:
        await environment.shutdown()


def _proto_name(key: Any) -> str:
    return f"INDEXED_VALUE_TYPE_{key.indexed_value_type.name}"
