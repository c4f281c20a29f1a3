"""``/console/cases``: the specialist team's open complaints, the next deadline first, and its open cases,
by kind; one case's page with its notes and the resolutions the user's role may choose.

Complaints come first on the page because their deadlines are the lender's obligations
(``kindly.programs.console.complaints``); each leads to its account's page, where it is acknowledged and
resolved. A case note may record a complaint: see ``add_note``.

A resolution decides what the account does next (``kindly.programs.case_queue``): settle or close it, take
the customer's promise and hand it back to the automated cadence, pause it until a date, or hand it back at
once. Each takes two steps, as the account actions do: the form leads to a page that says what will happen,
and only the confirmed form reaches the account, as updates; the case is marked resolved only when the
account took them. A refusal comes back on the case page with the account's reason and the values typed;
a resolution the role may not choose is answered 403 and nothing reaches the account.

Cases name the account by its masked reference only. Notes are the team's record of what was done, at
most ``MAX_TEXT`` characters, with their author and time; the form asks for no personal data. Every note,
resolution and forbidden attempt writes an audit row naming the user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from temporalio.service import RPCError

from kindly.domain.complaints import OpenComplaint
from kindly.domain.contract import AccountStatus, SignalName, TimelineEntry
from kindly.domain.masking import mask_reference
from kindly.domain.roles import Permission, may
from kindly.errors import (
    AccountNotFoundError,
    ActionRefusedError,
    ActionTimeoutError,
    InvalidActionValueError,
)
from kindly.keyring import load_keyring
from kindly.programs.case_queue import CaseUnavailable, Resolution, resolve_case
from kindly.programs.console.account_view import ENDED
from kindly.programs.console.actions import ACTIONS, describe
from kindly.programs.console.audit_query import ACCEPTED, FAILED, FORBIDDEN, REFUSED, record_action
from kindly.programs.console.auth import PAGE_ROLES, CurrentUser, Forbidden, console_root, now, require_page
from kindly.programs.console.case_words import CHOICES, KINDS, Choice, kind_words, resolution_words
from kindly.programs.console.complaints import (
    complaint_from_note,
    complaint_queue,
    complaint_store,
    complaint_words,
)
from kindly.programs.console.context import Console
from kindly.programs.console.i18n import Translate
from kindly.programs.console.pages import render, translator
from kindly.programs.console.work_forms import Done, local_date, local_moment
from kindly.programs.operations import account_status, account_timeline, act_on_account
from kindly.store.cases import MAX_TEXT, SpecialistCase, SpecialistCases
from kindly.store.users import User

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
FIELD_MAX = 500


@dataclass(frozen=True)
class CaseRow:
    case: SpecialistCase
    days_past_due: int | None
    age: str


@dataclass(frozen=True)
class Refusal:
    """A note or resolution that did not happen: why, the field at fault, what was typed."""

    action: str
    message: str
    field_name: str | None = None
    values: Mapping[str, str] | None = None


def specialist_cases(request: Request, console: Console) -> SpecialistCases:
    """The console's one ``SpecialistCases``, over the API's database."""
    cases: SpecialistCases | None = getattr(request.app.state, "specialist_cases", None)
    if cases is None:
        cases = SpecialistCases(console.api.engine, load_keyring(console.api.settings))
        request.app.state.specialist_cases = cases
    return cases


@router.get("/cases")
async def cases_page(
    request: Request,
    console: Console,
    user: Annotated[User, require_page("cases")],
    kind: Annotated[str, Query(max_length=32)] = "",
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
    complaints_page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> Response:
    cases, at, t = specialist_cases(request, console), now(), translator(request)
    wanted = kind if kind in KINDS else None
    found, counts, complaints = await asyncio.gather(
        asyncio.to_thread(cases.open_cases, wanted, PAGE_SIZE + 1, page * PAGE_SIZE),
        asyncio.to_thread(cases.count_open_by_kind),
        complaint_queue(complaint_store(request, console.api.engine), complaints_page, at),
    )
    rows = [CaseRow(case, _days_past_due(case, at), _age(t, at - _utc(case.created_at))) for case in found]
    context = {
        "rows": rows[:PAGE_SIZE],
        "kind": wanted,
        "invalid": bool(kind) and wanted is None,
        "kinds": KINDS,
        "counts": counts,
        "total": sum(counts.values()),
        "page": page,
        "next_page": page + 1 if len(rows) > PAGE_SIZE else None,
        "done": Done.of(request.query_params, CHOICES),
        "kind_words": kind_words(t),
        "words": resolution_words(t),
        "complaints": complaints,
        "complaint_words": complaint_words(t),
    }
    return render(request, "cases.html", context, status_code=422 if context["invalid"] else 200)


@router.get("/cases/{case_id}")
async def case_page(
    request: Request, console: Console, user: Annotated[User, require_page("cases")], case_id: int
) -> Response:
    return await case_response(request, console, user, case_id)


async def case_response(
    request: Request,
    console: Console,
    user: User,
    case_id: int,
    *,
    refusal: Refusal | None = None,
    status_code: int = 200,
) -> Response:
    cases, t = specialist_cases(request, console), translator(request)
    case = await asyncio.to_thread(cases.get, case_id)
    if case is None:
        return render(request, "error.html", {"code": 404}, status_code=404)
    notes, (status, timeline) = await asyncio.gather(
        asyncio.to_thread(cases.notes, case_id), _account(console, case.account_id)
    )
    context = {
        "case": case,
        "status": status,
        "timeline": list(reversed(timeline)),
        "notes": notes,
        "choices": [] if case.closed_at else [c for c in CHOICES.values() if may(user.role, c.permission)],
        "days_past_due": _days_past_due(case, now()),
        "open_complaint": next((c for c in status.complaints if c.is_open), None) if status else None,
        "may_open_complaint": (
            status is not None and status.stage not in ENDED and may(user.role, Permission.OPEN_COMPLAINT)
        ),
        "refusal": refusal,
        "max_text": MAX_TEXT,
        "kind_words": kind_words(t),
        "words": resolution_words(t),
        "customer_zone": case.timezone or "UTC",
        "here": f"{console_root(request)}/cases/{case_id}",
    }
    return render(request, "case.html", context, status_code=status_code)


@router.post("/cases/{case_id}/notes")
async def add_note(request: Request, console: Console, user: CurrentUser, case_id: int) -> Response:
    """A note on the case; with ``complaint`` ticked, also a complaint opened on the case's account.

    The note is saved first, and stays saved whatever the account answers: it is the team's record of
    what the customer said. The complaint is then opened (channel ``console``, received now) with the
    note as its note when the contract takes one (at most 500 characters, no run of seven or more
    digits, no e-mail address, not the customer's name or number), and without it otherwise, which the
    page then says. An operator who ticks the box expects the complaint to be on record at once: its
    deadlines count from its receipt, and the case note keeps the whole text anyway, so refusing both
    over the note's wording would only make them type it again while the clock runs.

    A note the case refuses (empty, too long) opens nothing, and the form comes back as typed, the box
    still ticked. A complaint the account refuses (one is open already, the account has ended) leaves
    the note saved and says why; the account page's form opens one later. A role that may not open a
    complaint is refused before the note is saved, so that nothing half-done is left behind.
    """
    form = await request.form()
    text = str(form.get("text") or "")
    records_complaint = form.get("complaint") == "yes"
    case = await _allowed_case(request, console, user, case_id, Permission.READ, "note")
    if isinstance(case, Response):
        return case
    detail = f"note ({len(text.strip())} characters)"
    if records_complaint and not may(user.role, Permission.OPEN_COMPLAINT):
        await _audit(console, user, case, f"{detail} recording a complaint", FORBIDDEN)
        raise Forbidden(str(Permission.OPEN_COMPLAINT))
    try:
        await asyncio.to_thread(specialist_cases(request, console).add_note, case_id, user.name, text, now())
    except ValueError as err:
        await _audit(console, user, case, detail, REFUSED)
        typed = {"text": text[: MAX_TEXT + 100], "complaint": "yes" if records_complaint else ""}
        refusal = Refusal("note", str(err), "text", typed)
        return await case_response(request, console, user, case_id, refusal=refusal, status_code=422)
    await _audit(console, user, case, detail, ACCEPTED)
    root = console_root(request)
    if not records_complaint:
        return RedirectResponse(f"{root}/cases/{case_id}?flash=note_added#notes", status_code=303)
    left_out = await _open_complaint_from_note(request, console, user, case, text)
    if isinstance(left_out, Response):
        return left_out
    flash = "note_complaint_opened_bare" if left_out else "note_complaint_opened"
    return RedirectResponse(f"{root}/cases/{case_id}?flash={flash}", status_code=303)


async def _open_complaint_from_note(
    request: Request, console: Console, user: User, case: SpecialistCase, text: str
) -> bool | Response:
    """Open the complaint a saved note records: whether it went without the note, or the case page
    saying why the account refused it. The account checks a note against the customer's own name and
    number too; a note it refuses for that is left out as one the form's check refuses."""
    opened = complaint_from_note(text)
    payload, left_out = opened.payload, opened.note_left_out
    try:
        try:
            await act_on_account(console.api.client, case.account_id, SignalName.OPEN_COMPLAINT, payload)
        except InvalidActionValueError as err:
            if err.field != "note" or payload.note is None:
                raise
            await _audit(console, user, case, _from_note(payload, left_out, withhold=True), REFUSED)
            payload, left_out = OpenComplaint(channel=payload.channel), True
            await act_on_account(console.api.client, case.account_id, SignalName.OPEN_COMPLAINT, payload)
    except InvalidActionValueError as err:
        code, outcome, message = 422, REFUSED, str(err)
    except (ActionRefusedError, AccountNotFoundError) as err:
        code, outcome, message = 409, REFUSED, str(err)
    except ActionTimeoutError as err:
        code, outcome, message = 504, FAILED, str(err)
    except RPCError as err:
        code, outcome = 503, FAILED
        message = translator(request)("queue.temporal_failed", status=err.status.name)
    else:
        await _audit(console, user, case, _from_note(payload, left_out), ACCEPTED)
        return left_out
    await _audit(console, user, case, _from_note(payload, left_out), outcome)
    refusal = Refusal("complaint", message)
    return await case_response(request, console, user, case.id or 0, refusal=refusal, status_code=code)


def _from_note(payload: OpenComplaint, left_out: bool, *, withhold: bool = False) -> str:
    """The audit detail of a complaint a note opens; a note the account refused is given by its length."""
    given = describe(ACTIONS["open_complaint"], {"note": payload.note or ""}, ("note",) if withhold else ())
    return f"complaint from the note: {given}" + (" (the note left out)" if left_out else "")


@router.post("/cases/{case_id}/resolve/{name}")
async def resolve(request: Request, console: Console, user: CurrentUser, case_id: int, name: str) -> Response:
    """A resolution in two steps: without ``confirmed`` the page that restates it; confirmed, the updates."""
    choice = CHOICES.get(name)
    if choice is None:
        return render(request, "error.html", {"code": 404}, status_code=404)
    form = await request.form()
    values = {field: str(form.get(field) or "").strip()[:FIELD_MAX] for field in choice.fields}
    confirmed = form.get("confirmed") == "yes"
    detail = " ".join([name, *(f"{key}={value!r}" for key, value in values.items() if value)])
    case = await _allowed_case(request, console, user, case_id, choice.permission, detail)
    if isinstance(case, Response):
        return case
    try:
        resolution = _resolution(choice, values, case.timezone)
    except InvalidActionValueError as err:
        if confirmed:
            await _audit(console, user, case, detail, REFUSED)
        refusal = Refusal(name, str(err), err.field, values)
        return await case_response(request, console, user, case_id, refusal=refusal, status_code=422)
    if not confirmed:
        context = {
            "case": case,
            "choice": choice,
            "values": values,
            "words": resolution_words(translator(request), mask_reference(case.account_id)),
            "customer_zone": case.timezone or "UTC",
            "here": f"{console_root(request)}/cases/{case_id}",
        }
        return render(request, "case_confirm.html", context)
    cases = specialist_cases(request, console)
    try:
        status = await resolve_case(cases, console.api.client, case_id, user.name, resolution, now())
    except (CaseUnavailable, ActionRefusedError, AccountNotFoundError) as err:
        await _audit(console, user, case, detail, REFUSED)
        code = 422 if isinstance(err, InvalidActionValueError) else 409
        field = err.field if isinstance(err, ActionRefusedError) else None
        refusal = Refusal(name, str(err), field, values)
        return await case_response(request, console, user, case_id, refusal=refusal, status_code=code)
    except (ActionTimeoutError, RPCError) as err:
        await _audit(console, user, case, detail, FAILED)
        t = translator(request)
        code, message = 504, str(err)
        if isinstance(err, RPCError):
            code, message = 503, t("queue.temporal_failed", status=err.status.name)
        refusal = Refusal(name, message, None, values)
        return await case_response(request, console, user, case_id, refusal=refusal, status_code=code)
    await _audit(console, user, case, detail, ACCEPTED)
    done = Done.after(name, case.account_id, status)
    return RedirectResponse(f"{console_root(request)}/cases?{done.query()}", status_code=303)


async def _account(console: Console, account_id: str) -> tuple[AccountStatus | None, list[TimelineEntry]]:
    """The account's status and timeline; none for an account whose workflow is gone."""
    try:
        status, timeline = await asyncio.gather(
            account_status(console.api.client, account_id), account_timeline(console.api.client, account_id)
        )
    except AccountNotFoundError:
        return None, []
    return status, timeline


async def _allowed_case(
    request: Request, console: Console, user: User, case_id: int, permission: Permission, detail: str
) -> SpecialistCase | Response:
    """The case, when it exists and the user's role may work cases and has ``permission``; a 404 page, or
    ``Forbidden`` after the attempt's audit row."""
    case = await asyncio.to_thread(specialist_cases(request, console).get, case_id)
    if case is None:
        return render(request, "error.html", {"code": 404}, status_code=404)
    if user.role not in PAGE_ROLES["cases"] or not may(user.role, permission):
        await _audit(console, user, case, detail, FORBIDDEN)
        raise Forbidden(str(permission))
    return case


def _resolution(choice: Choice, values: Mapping[str, str], zone: str | None) -> Resolution:
    """The resolution the form asks for, checked as the account's updates will be (``InvalidActionValueError``
    naming the field)."""
    amount = None
    if values.get("amount"):
        try:
            amount = Decimal(values["amount"].replace(",", ""))
        except InvalidOperation:
            raise InvalidActionValueError("amount: not a number", field="amount") from None
    resolution = Resolution(
        kind=choice.kind,
        amount=amount,
        reference=values.get("reference") or None,
        reason=values.get("reason") or None,
        promise_date=local_date(values["date"], "date") if values.get("date") else None,
        until=local_moment(values["until"], zone, "until") if values.get("until") else None,
    )
    resolution.updates()
    return resolution


def _days_past_due(case: SpecialistCase, at: datetime) -> int | None:
    if case.due_date is None:
        return None
    today = at.astimezone(ZoneInfo(case.timezone) if case.timezone else ZoneInfo("UTC")).date()
    return max((today - case.due_date).days, 0)


def _age(t: Translate, age: timedelta) -> str:
    if age >= timedelta(days=1):
        return t("cases.age_days", days=age.days)
    if age >= timedelta(hours=1):
        return t("cases.age_hours", hours=age.seconds // 3600)
    return t("cases.age_minutes", minutes=max(age.seconds // 60, 0))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=ZoneInfo("UTC")) if value.tzinfo is None else value


async def _audit(console: Console, user: User, case: SpecialistCase, detail: str, outcome: str) -> None:
    await run_in_threadpool(
        record_action,
        console.api.audit,
        actor=user.name,
        account_id=case.account_id,
        detail=f"specialist case {case.id} ({case.kind}): {detail}",
        outcome=outcome,
        at=now(),
    )
