"""``POST /console/accounts/{id}/actions/{action}``: an operator action, in two steps.

The account page's form posts here without ``confirmed``: the answer is a page that restates what will
happen, with Confirm (the same values and ``confirmed=yes``) and Cancel. Confirmed, the action goes to the
account's workflow as an update; accepted, the browser is sent back to the account page (303) with a
flash; refused, the account page comes back with the refusal's words and status (409 for the account's
state, 422 naming the field, 504 when no worker answered, 404 for no account) and the values typed.

Every confirmed action writes one audit row (``console_action``: who, what, the outcome), and so does an
action the user's role may not take (403, ``forbidden``): then nothing reaches the workflow.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from temporalio.service import RPCError

from kindly.domain.roles import Permission, may
from kindly.errors import (
    AccountClosedError,
    AccountNotFoundError,
    AccountStateConflictError,
    ActionTimeoutError,
    InvalidActionValueError,
)
from kindly.programs.console.account_view import account_attributes
from kindly.programs.console.accounts import ACCOUNT_ID, Refusal, account_response
from kindly.programs.console.actions import (
    ACTIONS,
    LOCAL_TIMES,
    Action,
    FormError,
    describe,
    form_values,
    payload,
)
from kindly.programs.console.audit_query import ACCEPTED, FAILED, FORBIDDEN, REFUSED, record_action
from kindly.programs.console.auth import Forbidden, console_root, now, require
from kindly.programs.console.complaints import complaint_words
from kindly.programs.console.context import Console
from kindly.programs.console.pages import render, translator
from kindly.programs.operations import act_on_account
from kindly.store.users import User

router = APIRouter(include_in_schema=False)

# The refusals an action can meet, with the status the page answers and the audit outcome.
_REFUSALS: tuple[tuple[type[Exception], int, str], ...] = (
    (AccountStateConflictError, 409, REFUSED),
    (AccountClosedError, 409, REFUSED),
    (InvalidActionValueError, 422, REFUSED),
    (ActionTimeoutError, 504, FAILED),
    (AccountNotFoundError, 404, REFUSED),
    (RPCError, 503, FAILED),
)


@router.post("/accounts/{account_id}/actions/{name}")
async def act(
    request: Request,
    console: Console,
    user: Annotated[User, require(Permission.READ)],
    account_id: str,
    name: str,
) -> Response:
    action = ACTIONS.get(name)
    if action is None or not ACCOUNT_ID.fullmatch(account_id):
        return render(request, "error.html", {"code": 404}, status_code=404)
    form = await request.form()
    values = form_values(action, {key: form.get(key) for key in action.fields})
    confirmed = form.get("confirmed") == "yes"

    async def audit(outcome: str, withhold: tuple[str, ...] = ()) -> None:
        await run_in_threadpool(
            record_action,
            console.api.audit,
            actor=user.name,
            account_id=account_id,
            detail=describe(action, values, withhold),
            outcome=outcome,
            at=now(),
        )

    if not may(user.role, action.permission):
        await audit(FORBIDDEN)
        raise Forbidden(str(action.permission))
    try:
        local = LOCAL_TIMES & values.keys()
        zone = (await account_attributes(console.api.client, account_id)).zone if local else None
        change = payload(action, values, zone)
    except FormError as err:
        if confirmed:
            await audit(REFUSED)
        refusal = Refusal(action.name, err.message, err.field, values)
        return await account_response(request, console, user, account_id, refusal=refusal, status_code=422)
    except AccountNotFoundError:
        return render(request, "error.html", {"code": 404}, status_code=404)
    if not confirmed:
        return _confirmation(request, account_id, action, values, zone)
    try:
        await act_on_account(console.api.client, account_id, action.signal, change)
    except tuple(kind for kind, _, _ in _REFUSALS) as err:
        code, outcome = next((c, o) for kind, c, o in _REFUSALS if isinstance(err, kind))
        field = err.field if isinstance(err, InvalidActionValueError) else None
        await audit(outcome, withhold=(field,) if field else ())
        if code == 404:
            return render(request, "error.html", {"code": 404}, status_code=404)
        refusal = Refusal(action.name, _message(err), field, values)
        return await account_response(request, console, user, account_id, refusal=refusal, status_code=code)
    await audit(ACCEPTED)
    target = f"{console_root(request)}/accounts/{account_id}?flash=done_{action.name}"
    if action.on_complaint:
        target += "#complaints"
    return RedirectResponse(target, status_code=303)


def _message(err: Exception) -> str:
    if isinstance(err, RPCError):
        return f"Temporal did not accept the request ({err.status.name})"
    return str(err)


def _confirmation(
    request: Request, account_id: str, action: Action, values: dict[str, str], zone: str | None
) -> Response:
    context = {
        "account_id": account_id,
        "action": action,
        "values": values,
        "account_zone": zone or "UTC",
        "complaint_words": complaint_words(translator(request)),
        "here": f"{console_root(request)}/accounts/{account_id}",
    }
    return render(request, "confirm.html", context)
