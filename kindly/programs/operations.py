"""What operators do to accounts, for the CLI and the HTTP API: signal, query, find.

Payloads are validated with the contract's models before anything is sent, so a bad request is
refused at the door with the field named; the workflow validates again, for callers that go
straight to Temporal.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from kindly.domain import search_attributes as sa
from kindly.domain.contract import (
    SIGNAL_MODELS,
    WORKFLOW_ID_PREFIX,
    WORKFLOW_TYPE,
    AccountStatus,
    QueryName,
    SignalName,
    TimelineEntry,
    workflow_id_for,
)
from kindly.errors import AccountClosedError, AccountNotFoundError
from kindly.programs.temporal import execution_status


def account_handle(client: Client, account_id: str) -> WorkflowHandle[object, object]:
    return client.get_workflow_handle(workflow_id_for(account_id))


async def signal_account(client: Client, account_id: str, name: SignalName, payload: BaseModel) -> None:
    """Send one signal; ``payload`` must be the contract's model for that signal."""
    expected = SIGNAL_MODELS[name]
    if not isinstance(payload, expected):
        raise TypeError(f"signal {name} takes {expected.__name__}, not {type(payload).__name__}")
    handle = account_handle(client, account_id)
    args = payload.model_dump(mode="json")
    try:
        await handle.signal(name, args)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        await _ensure_running(client, account_id)
        # A run ended as the signal arrived and a new run of the account took over (continue-as-new):
        # the new run takes the signal.
        await handle.signal(name, args)


async def account_status(client: Client, account_id: str) -> AccountStatus:
    try:
        status: AccountStatus = await account_handle(client, account_id).query(
            QueryName.STATUS, result_type=AccountStatus
        )
    except RPCError as err:
        raise _translate(err, account_id) from err
    return status


async def account_timeline(client: Client, account_id: str) -> list[TimelineEntry]:
    try:
        entries: list[TimelineEntry] = await account_handle(client, account_id).query(
            QueryName.TIMELINE, result_type=list[TimelineEntry]
        )
    except RPCError as err:
        raise _translate(err, account_id) from err
    return entries


def _translate(err: RPCError, account_id: str) -> Exception:
    if err.status == RPCStatusCode.NOT_FOUND:
        return _not_found(account_id)
    return err


def _not_found(account_id: str) -> AccountNotFoundError:
    return AccountNotFoundError(f"no workflow for account {account_id!r}")


async def _ensure_running(client: Client, account_id: str) -> None:
    """After a signal found no workflow: returns when a run of the account is open after all, else
    raises why not: none was ever started (``AccountNotFoundError``) or it has ended
    (``AccountClosedError``)."""
    try:
        status, _ = await execution_status(client, workflow_id_for(account_id))
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise _not_found(account_id) from err
        raise
    if status == WorkflowExecutionStatus.RUNNING:
        return
    state = status.name.lower().replace("_", " ")
    raise AccountClosedError(
        f"account {account_id!r} is closed ({state}): its workflow takes no more signals"
    )


# --- finding accounts through Temporal visibility -------------------------------------------------


class AccountRow(BaseModel):
    """One account as visibility shows it: search attributes only, no personal data."""

    account_id: str
    stage: str | None
    days_past_due: int | None
    amount_due: float | None
    unanswered_sms: int | None
    next_touchpoint_at: datetime | None
    segment: str | None
    paused: bool | None


def account_query(
    *,
    stage: str | None = None,
    segment: str | None = None,
    min_days_past_due: int | None = None,
    paused: bool | None = None,
    next_before: datetime | None = None,
    extra: str | None = None,
    now: datetime | None = None,
) -> str:
    """A visibility query over open account workflows, narrowed by the given filters.

    Days past due are a bound on ``DueDate`` (the moment the due date began in the customer's zone):
    at least N days past due ``now`` means a due date that began N days or more before it."""
    clauses = [f'WorkflowType="{WORKFLOW_TYPE}"', 'ExecutionStatus="Running"']
    if stage is not None:
        clauses.append(f'{sa.COLLECTION_STAGE.name}="{_quoted(stage)}"')
    if segment is not None:
        clauses.append(f'{sa.SEGMENT.name}="{_quoted(segment)}"')
    if min_days_past_due is not None:
        bound = (now or datetime.now(UTC)) - timedelta(days=int(min_days_past_due))
        clauses.append(f'{sa.DUE_DATE.name} <= "{bound.astimezone(UTC).isoformat()}"')
    if paused is not None:
        clauses.append(f"{sa.PAUSED.name}={'true' if paused else 'false'}")
    if next_before is not None:
        if next_before.tzinfo is None:
            raise ValueError("next_before must include a UTC offset")
        clauses.append(f'{sa.NEXT_TOUCHPOINT_AT.name} < "{next_before.astimezone(UTC).isoformat()}"')
    if extra:
        clauses.append(f"({extra})")
    return " AND ".join(clauses)


def _quoted(value: str) -> str:
    if '"' in value or "\\" in value:
        raise ValueError(f"filter value {value!r} may not contain quotes or backslashes")
    return value


async def find_accounts(
    client: Client, query: str, *, limit: int | None = None, now: datetime | None = None
) -> list[AccountRow]:
    """The accounts ``query`` finds, with their days past due as of ``now`` (from ``DueDate``)."""
    now = now or datetime.now(UTC)
    rows: list[AccountRow] = []
    async for execution in client.list_workflows(query, limit=limit):
        attributes = execution.typed_search_attributes
        due = attributes.get(sa.DUE_DATE)
        rows.append(
            AccountRow(
                account_id=execution.id.removeprefix(WORKFLOW_ID_PREFIX),
                stage=attributes.get(sa.COLLECTION_STAGE),
                days_past_due=None if due is None else max((now - due) // timedelta(days=1), 0),
                amount_due=attributes.get(sa.AMOUNT_DUE),
                unanswered_sms=attributes.get(sa.UNANSWERED_SMS),
                next_touchpoint_at=attributes.get(sa.NEXT_TOUCHPOINT_AT),
                segment=attributes.get(sa.SEGMENT),
                paused=attributes.get(sa.PAUSED),
            )
        )
    return rows


async def count_accounts(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


class BulkResult(BaseModel):
    signalled: list[str]
    failed: dict[str, str]


async def bulk_signal(
    client: Client, query: str, name: SignalName, payload: BaseModel, *, concurrency: int = 16
) -> BulkResult:
    """Send one signal to every account the query selects; a failure is reported, not fatal."""
    accounts = [row.account_id for row in await find_accounts(client, query)]
    gate = asyncio.Semaphore(concurrency)
    signalled: list[str] = []
    failed: dict[str, str] = {}

    async def one(account_id: str) -> None:
        async with gate:
            try:
                await signal_account(client, account_id, name, payload)
                signalled.append(account_id)
            except (AccountNotFoundError, RPCError) as err:
                failed[account_id] = str(err)

    await asyncio.gather(*(one(account_id) for account_id in accounts))
    return BulkResult(signalled=sorted(signalled), failed=failed)
