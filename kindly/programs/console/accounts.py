"""``/console/accounts``: finding accounts through Temporal visibility, and one account's page (status,
complaints, timeline, SMS sent, deferrals and their reasons, audit rows with who acted, and the actions the
user's role may take)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from temporalio.service import RPCError, RPCStatusCode

from kindly.errors import AccountNotFoundError
from kindly.programs.console.account_view import load_account
from kindly.programs.console.actions import complaint_actions, offered
from kindly.programs.console.auth import console_root, now, require_page
from kindly.programs.console.complaints import complaint_lines, complaint_words
from kindly.programs.console.context import Console
from kindly.programs.console.pages import render, translator
from kindly.programs.console.search import STAGES, FilterError, Filters, account_page, query_for
from kindly.store.users import User

router = APIRouter(include_in_schema=False)

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
Text = Annotated[str, Query(max_length=130)]


@dataclass(frozen=True)
class Refusal:
    """Why an action did not happen, for the account page to say so and keep what was typed."""

    action: str
    message: str
    field_name: str | None = None
    """The form field the refusal names, if any."""
    values: dict[str, str] = field(default_factory=dict)


@router.get("/accounts")
async def search(
    request: Request,
    console: Console,
    user: Annotated[User, require_page("accounts")],
    account_id: Text = "",
    stage: Text = "",
    min_dpd: Text = "",
    max_dpd: Text = "",
    segment: Text = "",
    arm: Text = "",
    paused: Text = "",
    page: Annotated[str, Query(max_length=4096)] = "",
) -> Response:
    filters = Filters(
        account_id=account_id.strip(),
        stage=stage,
        min_dpd=min_dpd,
        max_dpd=max_dpd,
        segment=segment.strip(),
        arm=arm.strip(),
        paused=paused,
    )
    context: dict[str, object] = {"filters": filters, "stages": STAGES, "rows": [], "next_page": None}
    try:
        query = query_for(filters, now())
        rows, next_page = await account_page(console.api.client, query, page or None, now())
    except FilterError as err:
        return render(request, "accounts.html", {**context, "invalid": err.field}, status_code=422)
    except RPCError as err:
        if err.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        return render(request, "accounts.html", {**context, "invalid": "query"}, status_code=422)
    context.update(rows=rows, next_page=next_page, invalid=None, searched=bool(request.url.query))
    return render(request, "accounts.html", context)


@router.get("/accounts/{account_id}")
async def account(
    request: Request, console: Console, user: Annotated[User, require_page("accounts")], account_id: str
) -> Response:
    return await account_response(request, console, user, account_id)


async def account_response(
    request: Request,
    console: Console,
    user: User,
    account_id: str,
    *,
    refusal: Refusal | None = None,
    status_code: int = 200,
) -> Response:
    """The account's page, with ``refusal`` (an action that did not happen) said at its top."""
    if not ACCOUNT_ID.fullmatch(account_id):
        return render(request, "error.html", {"code": 404}, status_code=404)
    try:
        view = await load_account(console.api.client, console.api.engine, account_id)
    except AccountNotFoundError:
        return render(request, "error.html", {"code": 404}, status_code=404)
    complaints = complaint_lines(view.status.complaints, now())
    context = {
        "view": view,
        "actions": offered(user.role, view.status, view.ended),
        "complaints": complaints,
        "open_line": next((line for line in complaints if line.complaint.is_open), None),
        "complaint_actions": complaint_actions(user.role, view.status, view.ended),
        "complaint_words": complaint_words(translator(request)),
        "refusal": refusal,
        "here": f"{console_root(request)}/accounts/{account_id}",
    }
    return render(request, "account.html", context, status_code=status_code)
