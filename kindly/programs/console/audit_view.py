"""``/console/audit``: the audit log for compliance, read-only, newest first, a page at a time.

Filters: account id, kind, actor (a console user; the engine's own rows have none) and a range of days in
the floor's zone; and the three questions compliance asks most, one click each: what was sent, what was
held back (deferred or skipped, with the reason in the row), and what was refused.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from kindly.domain.contract import TimelineKind
from kindly.programs.console.audit_query import QUICK, AuditFilter, Cursor, audit_page
from kindly.programs.console.auth import require_page
from kindly.programs.console.context import Console
from kindly.programs.console.pages import render
from kindly.store import DELIVERY_RECEIPT
from kindly.store.audit import CONSOLE_ACTION
from kindly.store.users import User

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100
KINDS: tuple[str, ...] = (*(kind.value for kind in TimelineKind), DELIVERY_RECEIPT, CONSOLE_ACTION)
Text = Annotated[str, Query(max_length=64)]


@router.get("/audit")
async def audit(
    request: Request,
    console: Console,
    user: Annotated[User, require_page("audit")],
    account_id: Text = "",
    kind: Text = "",
    actor: Text = "",
    since: Text = "",
    until: Text = "",
    quick: Text = "",
    after: Text = "",
) -> Response:
    form = {
        "account_id": account_id.strip(),
        "kind": kind,
        "actor": actor.strip(),
        "since": since,
        "until": until,
        "quick": quick,
    }
    context: dict[str, object] = {"form": form, "kinds": KINDS, "quick_filters": tuple(QUICK), "rows": []}
    try:
        wanted = _filter(form, console.config.zone)
    except _Invalid as err:
        return render(request, "audit.html", {**context, "invalid": err.field, "next": None}, status_code=422)
    page = await run_in_threadpool(
        audit_page, console.api.engine, wanted, Cursor.decode(after or None), PAGE_SIZE
    )
    context.update(rows=page.rows, next=page.next.encode() if page.next else None, invalid=None)
    return render(request, "audit.html", context)


class _Invalid(ValueError):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _filter(form: dict[str, str], zone: ZoneInfo) -> AuditFilter:
    if form["kind"] and form["kind"] not in KINDS:
        raise _Invalid("kind")
    if form["quick"] and form["quick"] not in QUICK:
        raise _Invalid("quick")
    kinds = QUICK[form["quick"]] if form["quick"] else ((form["kind"],) if form["kind"] else ())
    since = _day(form["since"], "since")
    until = _day(form["until"], "until")
    if since and until and until < since:
        raise _Invalid("until")
    return AuditFilter(
        account_id=form["account_id"] or None,
        kinds=kinds,
        actor=form["actor"] or None,
        since=None if since is None else datetime.combine(since, time(0), zone),
        before=None if until is None else datetime.combine(until + timedelta(days=1), time(0), zone),
        refused=form["quick"] == "refused",
    )


def _day(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Invalid(field) from None
