"""Operations endpoints: start accounts, read their status and timeline, act on them.

Every route needs the ``X-API-Key`` header. Bodies are the contract's models, so a bad request is
answered 422 naming the field before anything reaches Temporal; an unknown account is a 404. An action
is a workflow update: 200 with the account's new status, 409 when its state forbids the action, 422
when a value is wrong for it (naming the field), and nothing changed in either case.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus

from kindly.domain.contract import (
    AccountInput,
    AccountStatus,
    CallOutcome,
    Close,
    Pause,
    PromiseToPay,
    RefreshPolicy,
    Repayment,
    Resume,
    Settle,
    SignalName,
    Stage,
    TimelineEntry,
    UpdateContact,
)
from kindly.errors import AccountClosedError
from kindly.programs.api.deps import Context
from kindly.programs.api.security import require_api_key
from kindly.programs.operations import (
    AccountRow,
    account_query,
    account_status,
    account_timeline,
    act_on_account,
    find_accounts,
)
from kindly.programs.temporal import execution_status, open_account

router = APIRouter(prefix="/accounts", tags=["operations"], dependencies=[Depends(require_api_key)])

# What a filter value may hold: it goes into a visibility query, where a quote could break out of
# the string (some visibility stores fail on an apostrophe with an internal error).
SEGMENT_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"

_Responses = dict[int | str, dict[str, Any]]
_NOT_FOUND: _Responses = {status.HTTP_404_NOT_FOUND: {"description": "No workflow exists for this account"}}
_UNAUTHORIZED: _Responses = {status.HTTP_401_UNAUTHORIZED: {"description": "Missing or invalid X-API-Key"}}


class AccountStarted(BaseModel):
    account_id: str
    workflow_id: str
    run_id: str | None
    status: AccountStatus | None = None
    """Where an account that was already running stands (absent for a new one)."""


_OPENED: _Responses = {
    status.HTTP_200_OK: {
        "model": AccountStarted,
        "description": "Already running: nothing started, its status",
    },
    status.HTTP_409_CONFLICT: {"description": "The account's workflow has ended: it is not started again"},
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountStarted,
    responses=_UNAUTHORIZED | _OPENED,
)
async def start(account: AccountInput, ctx: Context, response: Response) -> AccountStarted:
    """Start the account's workflow: 201 when this request started it, 200 with its status when it was
    already running (re-posting is harmless), 409 when it has ended (a finished account is never texted
    again by a re-post)."""
    opened = await open_account(ctx.client, account, task_queue=ctx.settings.task_queue)
    handle = opened.handle
    started = AccountStarted(account_id=account.account_id, workflow_id=handle.id, run_id=handle.run_id)
    if opened.created:
        return started.model_copy(update={"run_id": handle.result_run_id or handle.run_id})
    state, run_id = await execution_status(ctx.client, handle.id, handle.run_id)
    if state != WorkflowExecutionStatus.RUNNING:
        ended = state.name.lower().replace("_", " ")
        raise AccountClosedError(
            f"account {account.account_id!r} has ended ({ended}): it is not started again"
        )
    response.status_code = status.HTTP_200_OK
    current = await account_status(ctx.client, account.account_id)
    return started.model_copy(update={"run_id": run_id, "status": current})


@router.get("/{account_id}/status", response_model=AccountStatus, responses=_NOT_FOUND | _UNAUTHORIZED)
async def get_status(account_id: str, ctx: Context) -> AccountStatus:
    return await account_status(ctx.client, account_id)


@router.get(
    "/{account_id}/timeline", response_model=list[TimelineEntry], responses=_NOT_FOUND | _UNAUTHORIZED
)
async def get_timeline(account_id: str, ctx: Context) -> list[TimelineEntry]:
    return await account_timeline(ctx.client, account_id)


_ACTION_ANSWERS: _Responses = {
    status.HTTP_409_CONFLICT: {
        "description": "The account's state forbids the action (not paused, already credited, ended)"
    },
    422: {"description": "A value is wrong (for this account): the field is named in ``detail[].loc``"},
    status.HTTP_504_GATEWAY_TIMEOUT: {"description": "No worker answered in time: not applied yet"},
}

F = TypeVar("F", bound=Callable[..., Any])


def _action_route(path: str) -> Callable[[F], F]:
    return router.post(
        path,
        response_model=AccountStatus,
        responses=_NOT_FOUND | _UNAUTHORIZED | _ACTION_ANSWERS,
    )


async def _act(ctx: Context, account_id: str, name: SignalName, payload: BaseModel) -> AccountStatus:
    return await act_on_account(ctx.client, account_id, name, payload)


@_action_route("/{account_id}/pause")
async def pause(account_id: str, body: Pause, ctx: Context) -> AccountStatus:
    """Stop contacting the customer, until ``until`` (in the future, with a UTC offset) or a resume."""
    return await _act(ctx, account_id, SignalName.PAUSE, body)


@_action_route("/{account_id}/resume")
async def resume(account_id: str, body: Resume, ctx: Context) -> AccountStatus:
    """Resume a paused account (409 when it is not paused); the cadence restarts from now."""
    return await _act(ctx, account_id, SignalName.RESUME, body)


@_action_route("/{account_id}/settle")
async def settle(account_id: str, body: Settle, ctx: Context) -> AccountStatus:
    """End the account for an agreed amount, at most the amount due."""
    return await _act(ctx, account_id, SignalName.SETTLE, body)


@_action_route("/{account_id}/close")
async def close(account_id: str, body: Close, ctx: Context) -> AccountStatus:
    """End the account without collection."""
    return await _act(ctx, account_id, SignalName.CLOSE, body)


@_action_route("/{account_id}/promise")
async def promise(account_id: str, body: PromiseToPay, ctx: Context) -> AccountStatus:
    """Hold contact until a promised date, from today to the policy's ``max_promise_days``."""
    return await _act(ctx, account_id, SignalName.PROMISE_TO_PAY, body)


@_action_route("/{account_id}/call-outcome")
async def call_outcome(account_id: str, body: CallOutcome, ctx: Context) -> AccountStatus:
    """What a call task's call came to."""
    return await _act(ctx, account_id, SignalName.CALL_OUTCOME, body)


@_action_route("/{account_id}/repayment")
async def repayment(account_id: str, body: Repayment, ctx: Context) -> AccountStatus:
    """Credit a repayment; a reference already credited is refused (409)."""
    return await _act(ctx, account_id, SignalName.REPAYMENT, body)


@_action_route("/{account_id}/contact")
async def update_contact(account_id: str, body: UpdateContact, ctx: Context) -> AccountStatus:
    """Change the phone, time zone, locale or stated window; a new phone also moves the account in the
    phone index."""
    answer = await _act(ctx, account_id, SignalName.UPDATE_CONTACT, body)
    if body.phone is not None:
        await run_in_threadpool(ctx.phones.replace, account_id, body.phone)
    return answer


@_action_route("/{account_id}/refresh-policy")
async def refresh_policy(account_id: str, body: RefreshPolicy, ctx: Context) -> AccountStatus:
    """Take the segment's policy as the workers' policy file now says."""
    return await _act(ctx, account_id, SignalName.REFRESH_POLICY, body)


@router.get("", response_model=list[AccountRow], responses=_UNAUTHORIZED)
async def list_accounts(
    ctx: Context,
    stage: Annotated[Stage | None, Query(description="CollectionStage, e.g. overdue")] = None,
    segment: Annotated[
        str | None, Query(pattern=SEGMENT_PATTERN, description="letters, digits, '.', '_', '-'")
    ] = None,
    min_days_past_due: Annotated[int | None, Query(ge=0)] = None,
    paused: Annotated[bool | None, Query()] = None,
    next_touchpoint_before: Annotated[datetime | None, Query(description="ISO-8601 with offset")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AccountRow]:
    """Open accounts through Temporal visibility, filtered by their search attributes. Each row shows
    its next touchpoint in ISO-8601 with the customer's UTC offset (``+00:00`` for an account started
    without a ``TimeZone`` attribute), its due date in the customer's zone, and its amount as a decimal
    string beside its currency."""
    try:
        query = account_query(
            stage=None if stage is None else stage.value,
            segment=segment,
            min_days_past_due=min_days_past_due,
            paused=paused,
            next_before=next_touchpoint_before,
        )
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    except OverflowError as err:  # an instant at the edge of the calendar, e.g. 9999-12-31T23:59-01:00
        raise HTTPException(422, "next_touchpoint_before is out of range") from err
    return await find_accounts(ctx.client, query, limit=limit)
