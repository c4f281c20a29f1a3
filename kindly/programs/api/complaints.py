"""Complaints about how the lender collects: open one, acknowledge it, resolve it (each a workflow update,
answered with the account's status), and list the open ones by their next deadline.

The bodies are the contract's (``kindly.domain.complaints``), so a bad one is a 422 naming the field before
anything reaches Temporal: a missing or blank note, a note holding personal data (a phone or card number,
an e-mail address), an outcome that is not one, a ``received_at`` without its UTC offset. The account then
refuses what it cannot take, as every action: 409 for a second open complaint or one already resolved, 422
for a complaint number it does not have (named as the path's ``number``). Operators' API key, like every
operations route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kindly.domain.complaints import (
    NOTE_MAX,
    AcknowledgeComplaint,
    ComplaintOutcome,
    OpenComplaint,
    ResolveComplaint,
)
from kindly.domain.contract import AccountStatus, SignalName
from kindly.errors import InvalidActionValueError
from kindly.programs.api.deps import Context
from kindly.programs.api.security import require_api_key
from kindly.programs.complaint_listing import PAGE, ComplaintItem, open_complaints
from kindly.programs.operations import act_on_account
from kindly.store.complaints import MAX_OFFSET, MAX_PAGE

router = APIRouter(tags=["complaints"], dependencies=[Depends(require_api_key)])

TOTAL_HEADER = "X-Total-Count"
"""How many complaints are open in all, beside a page of them."""

_Responses = dict[int | str, dict[str, Any]]
_UNAUTHORIZED: _Responses = {status.HTTP_401_UNAUTHORIZED: {"description": "Missing or invalid X-API-Key"}}
_ACTION_ANSWERS: _Responses = {
    status.HTTP_404_NOT_FOUND: {"description": "No workflow exists for this account"},
    status.HTTP_409_CONFLICT: {
        "description": "The account's state forbids it (a complaint is open, or this one is resolved)"
    },
    422: {"description": "A value is wrong: the field is named in ``detail[].loc``"},
    status.HTTP_504_GATEWAY_TIMEOUT: {"description": "No worker answered in time: not applied yet"},
}

Number = Annotated[int, Path(ge=1, description="The complaint's number on the account (1 for its first)")]


class ComplaintNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=NOTE_MAX)
    """What was done and what the customer was told, without personal data."""


class ComplaintAnswer(ComplaintNote):
    outcome: ComplaintOutcome


def _complaint_field(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Where a caller gave a value: the complaint's number is the path's ``number``."""
    return ("path", "number") if loc[:1] == ("complaint",) else ("body", *loc)


def _payload(model: type[AcknowledgeComplaint | ResolveComplaint], **values: Any) -> Any:
    """The contract's payload from the path and the body; its refusal as a 422 naming the field."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        errors = [
            {"type": error["type"], "loc": _complaint_field(tuple(error["loc"])), "msg": error["msg"]}
            for error in err.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from err


async def _act(ctx: Context, account_id: str, name: SignalName, payload: BaseModel) -> AccountStatus:
    try:
        return await act_on_account(ctx.client, account_id, name, payload)
    except InvalidActionValueError as err:
        if err.field != "complaint":
            raise
        error = {"type": "value_error", "loc": ("path", "number"), "msg": str(err), "input": None}
        raise RequestValidationError([error]) from err


F = TypeVar("F", bound=Callable[..., Any])


def _action(path: str) -> Callable[[F], F]:
    return router.post(path, response_model=AccountStatus, responses=_UNAUTHORIZED | _ACTION_ANSWERS)


@_action("/accounts/{account_id}/complaints")
async def open_complaint(account_id: str, body: OpenComplaint, ctx: Context) -> AccountStatus:
    """Record a complaint the lender received (``channel``: api unless told, or console), from
    ``received_at`` (now when left out): its acknowledgement and resolution deadlines count from then,
    and automated contact is held. 409 while another complaint is open."""
    return await _act(ctx, account_id, SignalName.OPEN_COMPLAINT, body)


@_action("/accounts/{account_id}/complaints/{number}/acknowledge")
async def acknowledge_complaint(
    account_id: str, number: Number, body: ComplaintNote, ctx: Context
) -> AccountStatus:
    """The lender told the customer it has the complaint. 409 once acknowledged or resolved."""
    payload = _payload(AcknowledgeComplaint, complaint=number, note=body.note)
    return await _act(ctx, account_id, SignalName.ACKNOWLEDGE_COMPLAINT, payload)


@_action("/accounts/{account_id}/complaints/{number}/resolve")
async def resolve_complaint(
    account_id: str, number: Number, body: ComplaintAnswer, ctx: Context
) -> AccountStatus:
    """The lender's answer: ``outcome`` (upheld, partly_upheld, not_upheld, withdrawn) and what was
    done. Contact stays held until an operator resumes the account. 409 once resolved."""
    payload = _payload(ResolveComplaint, complaint=number, outcome=body.outcome, note=body.note)
    return await _act(ctx, account_id, SignalName.RESOLVE_COMPLAINT, payload)


@router.get("/complaints", response_model=list[ComplaintItem], responses=_UNAUTHORIZED)
async def list_complaints(
    ctx: Context,
    response: Response,
    open_only: Annotated[
        bool, Query(alias="open", description="Only the open complaints (the only listing there is)")
    ] = True,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[ComplaintItem]:
    """The open complaints, the nearest deadline first (the overdue ones before all), then the earliest
    received; each instant at the account's UTC offset. ``X-Total-Count`` says how many are open in all.
    An account's resolved complaints are in its status."""
    if not open_only:
        message = "only the open complaints are listed; an account's status shows all of its complaints"
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "open"), "msg": message, "input": "false"}]
        )
    items, total = await run_in_threadpool(open_complaints, ctx.engine, limit=limit, offset=offset)
    response.headers[TOTAL_HEADER] = str(total)
    return items
