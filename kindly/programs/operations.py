"""What operators do to accounts, for the CLI and the HTTP API: act (an update, answered), signal, query,
find.

Payloads are validated with the contract's models before anything is sent, so a bad request is
refused at the door with the field named; the workflow validates again, for callers that go
straight to Temporal, and refuses what the account cannot take (``kindly.domain.refusals``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from kindly.domain import search_attributes as sa
from kindly.domain.contract import (
    ACTION_REFUSED,
    SIGNAL_MODELS,
    UPDATE_NAMES,
    WORKFLOW_ID_PREFIX,
    WORKFLOW_TYPE,
    AccountStatus,
    QueryName,
    SignalName,
    TimelineEntry,
    workflow_id_for,
)
from kindly.domain.refusals import RefusalKind
from kindly.errors import (
    AccountClosedError,
    AccountNotFoundError,
    AccountStateConflictError,
    ActionRefusedError,
    ActionTimeoutError,
    InvalidActionValueError,
)
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


ACTION_TIMEOUT_SECONDS = 30.0
"""How long an operator waits for a worker to answer an action before being told it is pending."""


async def act_on_account(
    client: Client,
    account_id: str,
    name: SignalName,
    payload: BaseModel,
    *,
    timeout: float = ACTION_TIMEOUT_SECONDS,
) -> AccountStatus:
    """Apply one operator action as a workflow update and return the account's new status.

    Raises ``AccountStateConflictError`` or ``InvalidActionValueError`` when the account refuses it
    (nothing was written), ``AccountNotFoundError``/``AccountClosedError`` when there is no running
    workflow, and ``ActionTimeoutError`` when no worker answered within ``timeout`` seconds."""
    expected = SIGNAL_MODELS[name]
    if name not in UPDATE_NAMES or not isinstance(payload, expected):
        raise TypeError(f"{name} is not an update taking {type(payload).__name__}")
    handle = account_handle(client, account_id)
    args = payload.model_dump(mode="json")
    for _ in range(2):
        try:
            async with asyncio.timeout(timeout):
                status: AccountStatus = await handle.execute_update(name, args, result_type=AccountStatus)
            return status
        except TimeoutError as err:
            raise ActionTimeoutError(
                f"no worker answered {name} for account {account_id!r} within {timeout:g} s: it is not "
                "applied yet, and may still be when a worker takes it; check the account's status"
            ) from err
        except WorkflowUpdateFailedError as err:
            raise _refusal_error(err) from err
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            # Raises unless a run is open after all: a new run (continue-as-new) takes the update.
            await _ensure_running(client, account_id)
    raise AccountNotFoundError(f"account {account_id!r}: no run took {name}")


def _refusal_error(err: WorkflowUpdateFailedError) -> Exception:
    cause = err.cause
    if not isinstance(cause, ApplicationError) or cause.type != ACTION_REFUSED:
        return err
    kind, field, *_ = [*cause.details, None, None]
    error_type: type[ActionRefusedError] = (
        InvalidActionValueError if kind == RefusalKind.INVALID else AccountStateConflictError
    )
    return error_type(cause.message, field=field if isinstance(field, str) else None)


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
    """One account as visibility shows it: search attributes only, no personal data. Instants are
    ISO-8601 with the customer's UTC offset, amounts decimal strings with their currency."""

    account_id: str
    stage: str | None
    days_past_due: int | None
    due_date: date | None = Field(
        description="The due date in the customer's zone; null for an account started without TimeZone"
    )
    amount_due: str | None = Field(description="Decimal string with two places", examples=["3200.00"])
    currency: str | None = Field(
        description="ISO 4217; null for an account started without Currency", examples=["CNY"]
    )
    unanswered_sms: int | None
    next_touchpoint_at: str | None = Field(
        description="ISO-8601 with the customer's offset; +00:00 for an account started without TimeZone",
        examples=["2026-12-08T09:35:00+08:00"],
    )
    timezone: str | None = Field(
        description="The customer's IANA zone at the start; null for an account started without TimeZone",
        examples=["Asia/Shanghai"],
    )
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
    """The accounts ``query`` finds, with their days past due as of ``now`` (from ``DueDate``), their
    next touchpoint and due date in their ``TimeZone`` and their amount with its ``Currency``."""
    now = now or datetime.now(UTC)
    rows: list[AccountRow] = []
    async for execution in client.list_workflows(query, limit=limit):
        attributes = execution.typed_search_attributes
        due = attributes.get(sa.DUE_DATE)
        zone = _zone(attributes.get(sa.TIME_ZONE))
        amount = attributes.get(sa.AMOUNT_DUE)
        next_at = attributes.get(sa.NEXT_TOUCHPOINT_AT)
        rows.append(
            AccountRow(
                account_id=execution.id.removeprefix(WORKFLOW_ID_PREFIX),
                stage=attributes.get(sa.COLLECTION_STAGE),
                days_past_due=None if due is None else max((now - due) // timedelta(days=1), 0),
                due_date=None if due is None or zone is None else due.astimezone(zone).date(),
                amount_due=None if amount is None else money(amount),
                currency=attributes.get(sa.CURRENCY),
                unanswered_sms=attributes.get(sa.UNANSWERED_SMS),
                next_touchpoint_at=None if next_at is None else _local_iso(next_at, zone),
                timezone=None if zone is None else zone.key,
                segment=attributes.get(sa.SEGMENT),
                paused=attributes.get(sa.PAUSED),
            )
        )
    return rows


_CENT = Decimal("0.01")


def money(amount: float) -> str:
    """A published ``AmountDue`` (a float, from an amount in cents) as a decimal string: ``3200.00``."""
    return str(Decimal(repr(amount)).quantize(_CENT))


def _local_iso(instant: datetime, zone: ZoneInfo | None) -> str:
    """``instant`` in ISO-8601 with the offset of ``zone`` (UTC without one), as timelines show it."""
    return instant.astimezone(zone or UTC).isoformat(timespec="seconds")


def _zone(name: str | None) -> ZoneInfo | None:
    """The zone a ``TimeZone`` attribute names; None without one (or for a name this host lacks)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


async def count_accounts(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


class BulkResult(BaseModel):
    done: list[str]
    """The accounts that took the action."""
    refused: dict[str, str]
    """The accounts that refused it, with why (nothing changed for them)."""
    failed: dict[str, str]
    """The accounts the action did not reach (ended meanwhile, Temporal refused, no worker answered)."""


async def bulk_act(
    client: Client, query: str, name: SignalName, payload: BaseModel, *, concurrency: int = 16
) -> BulkResult:
    """Apply one action, as an update, to every account the query selects; each account answers for
    itself, and a refusal or failure is reported, not fatal."""
    accounts = [row.account_id for row in await find_accounts(client, query)]
    gate = asyncio.Semaphore(concurrency)
    done: list[str] = []
    refused: dict[str, str] = {}
    failed: dict[str, str] = {}

    async def one(account_id: str) -> None:
        async with gate:
            try:
                await act_on_account(client, account_id, name, payload)
                done.append(account_id)
            except ActionRefusedError as err:
                refused[account_id] = str(err)
            except (AccountNotFoundError, ActionTimeoutError, RPCError) as err:
                failed[account_id] = str(err)

    await asyncio.gather(*(one(account_id) for account_id in accounts))
    return BulkResult(done=sorted(done), refused=refused, failed=failed)
