"""``/console/cases``: the specialist team's open cases, by kind, and one case's page with its notes and
the resolutions the user's role may choose.

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

from kindly.domain.cases import CaseKind
from kindly.domain.contract import AccountStatus, TimelineEntry
from kindly.domain.masking import mask_reference
from kindly.domain.roles import Permission, may
from kindly.errors import (
    AccountNotFoundError,
    ActionRefusedError,
    ActionTimeoutError,
    InvalidActionValueError,
)
from kindly.keyring import load_keyring
from kindly.programs.case_queue import CaseUnavailable, Resolution, ResolutionKind, resolve_case
from kindly.programs.console.audit_query import ACCEPTED, FAILED, FORBIDDEN, REFUSED, record_action
from kindly.programs.console.auth import PAGE_ROLES, CurrentUser, Forbidden, console_root, now, require_page
from kindly.programs.console.context import Console
from kindly.programs.console.i18n import Translate
from kindly.programs.console.pages import render, translator
from kindly.programs.console.work_forms import Done, local_date, local_moment
from kindly.programs.operations import account_status, account_timeline
from kindly.store.cases import MAX_TEXT, UNKNOWN_KIND, SpecialistCase, SpecialistCases
from kindly.store.users import User

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
FIELD_MAX = 500
KINDS: tuple[str, ...] = (*(kind.value for kind in CaseKind), UNKNOWN_KIND)


@dataclass(frozen=True)
class Choice:
    """A resolution as the case page offers it: who may choose it and the fields it asks for."""

    kind: ResolutionKind
    permission: Permission
    fields: tuple[str, ...]


CHOICES: dict[str, Choice] = {
    choice.kind.value: choice
    for choice in (
        Choice(ResolutionKind.RESUME, Permission.PAUSE, ()),
        Choice(ResolutionKind.PROMISE, Permission.PROMISE, ("date",)),
        Choice(ResolutionKind.PAUSE, Permission.PAUSE, ("until", "reason")),
        Choice(ResolutionKind.SETTLE, Permission.SETTLE, ("amount", "reference")),
        Choice(ResolutionKind.CLOSE, Permission.CLOSE, ("reason",)),
    )
}


@dataclass(frozen=True)
class Words:
    name: str
    help: str
    button: str
    confirm: str
    effect: str


def resolution_words(t: Translate, reference: str = "") -> dict[str, Words]:
    """Each resolution's words (written out, so the catalogs' test finds every key); its confirmation
    question names the account by ``reference``."""
    return {
        "resume": Words(
            t("resolve.resume"),
            t("resolve.resume.help"),
            t("resolve.resume.button"),
            t("resolve.resume.confirm", reference=reference),
            t("resolve.resume.effect"),
        ),
        "promise": Words(
            t("resolve.promise"),
            t("resolve.promise.help"),
            t("resolve.promise.button"),
            t("resolve.promise.confirm", reference=reference),
            t("resolve.promise.effect"),
        ),
        "pause": Words(
            t("resolve.pause"),
            t("resolve.pause.help"),
            t("resolve.pause.button"),
            t("resolve.pause.confirm", reference=reference),
            t("resolve.pause.effect"),
        ),
        "settle": Words(
            t("resolve.settle"),
            t("resolve.settle.help"),
            t("resolve.settle.button"),
            t("resolve.settle.confirm", reference=reference),
            t("resolve.settle.effect"),
        ),
        "close": Words(
            t("resolve.close"),
            t("resolve.close.help"),
            t("resolve.close.button"),
            t("resolve.close.confirm", reference=reference),
            t("resolve.close.effect"),
        ),
    }


def kind_words(t: Translate) -> dict[str, str]:
    """Each kind of case in the user's words (written out, so the catalogs' test finds every key)."""
    return {
        CaseKind.HARDSHIP: t("case_kind.hardship"),
        CaseKind.DISPUTE: t("case_kind.dispute"),
        CaseKind.WRONG_NUMBER: t("case_kind.wrong_number"),
        CaseKind.REFUSED: t("case_kind.refused"),
        CaseKind.UNDELIVERABLE: t("case_kind.undeliverable"),
        CaseKind.NO_CONTACT: t("case_kind.no_contact"),
        UNKNOWN_KIND: t("case_kind.unknown"),
    }


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
) -> Response:
    cases, at, t = specialist_cases(request, console), now(), translator(request)
    wanted = kind if kind in KINDS else None
    found, counts = await asyncio.gather(
        asyncio.to_thread(cases.open_cases, wanted, PAGE_SIZE + 1, page * PAGE_SIZE),
        asyncio.to_thread(cases.count_open_by_kind),
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
    form = await request.form()
    text = str(form.get("text") or "")
    case = await _allowed_case(request, console, user, case_id, Permission.READ, "note")
    if isinstance(case, Response):
        return case
    detail = f"note ({len(text.strip())} characters)"
    try:
        await asyncio.to_thread(specialist_cases(request, console).add_note, case_id, user.name, text, now())
    except ValueError as err:
        await _audit(console, user, case, detail, REFUSED)
        refusal = Refusal("note", str(err), "text", {"text": text[: MAX_TEXT + 100]})
        return await case_response(request, console, user, case_id, refusal=refusal, status_code=422)
    await _audit(console, user, case, detail, ACCEPTED)
    return RedirectResponse(
        f"{console_root(request)}/cases/{case_id}?flash=note_added#notes", status_code=303
    )


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
