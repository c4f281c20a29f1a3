"""``/console/queue``: the phone team's work queue, and the page of the task an agent claimed.

The queue lists the open call tasks in the store's priority order with what the law and the account allow
now (``kindly.programs.call_queue``): a task the regime's limits or the customer's clock forbid is listed
with the reason and cannot be claimed. An agent claims a task for the console's lease, which frees it by
itself when the agent walks away; while the lease is live the task page shows the customer's number, to
that agent alone (``WorkQueue.phone_for``), and nowhere else: not in the queue, not to a supervisor
looking over the task, not in the audit log. Every row names the account by its masked reference only.

The call's outcome goes to the account as a workflow update, so the agent sees at once whether it was
taken: accepted, the task closes and the queue says where the account went next; refused, the task page
comes back with the account's reason and what the agent typed, and the task stays claimed. Every claim,
renewal, release and outcome writes an audit row naming the agent (never the number).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from temporalio.service import RPCError

from kindly.domain.contract import AccountStatus, CallOutcome, CallOutcomeKind, TimelineEntry
from kindly.domain.masking import mask_reference
from kindly.domain.roles import Permission, Role, may
from kindly.domain.validation import describe_validation_error
from kindly.errors import (
    AccountNotFoundError,
    ActionRefusedError,
    ActionTimeoutError,
    InvalidActionValueError,
)
from kindly.keyring import load_keyring
from kindly.programs.call_queue import (
    HISTORY_DAYS,
    CallLimits,
    TaskUnavailable,
    call_limits,
    claim_task,
    offered_tasks,
    record_call_outcome,
)
from kindly.programs.console.audit_query import ACCEPTED, FAILED, FORBIDDEN, REFUSED, record_action
from kindly.programs.console.auth import PAGE_ROLES, CurrentUser, Forbidden, console_root, now, require_page
from kindly.programs.console.context import Console, get_console
from kindly.programs.console.i18n import LOCALES, Translate
from kindly.programs.console.pages import instant, locale_of, render, translator
from kindly.programs.console.work_forms import Done, local_moment
from kindly.programs.operations import account_status, account_timeline
from kindly.store.call_tasks import CallTask
from kindly.store.users import User
from kindly.store.work_queue import WorkQueue

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
SUPERVISING = frozenset({Role.SUPERVISOR, Role.ADMIN})
"""Roles that may look at a task another agent holds (without its number)."""
OUTCOMES = tuple(CallOutcomeKind)


def work_queue(request: Request, console: Console) -> WorkQueue:
    """The console's one ``WorkQueue``, over the API's database and key ring (read once)."""
    queue: WorkQueue | None = getattr(request.app.state, "work_queue", None)
    if queue is None:
        queue = WorkQueue(console.api.engine, load_keyring(console.api.settings))
        request.app.state.work_queue = queue
    return queue


def outcome_words(t: Translate) -> dict[str, str]:
    """Each call outcome in the user's words (written out, so the catalogs' test finds every key)."""
    return {
        CallOutcomeKind.REACHED: t("outcome.reached"),
        CallOutcomeKind.NO_ANSWER: t("outcome.no_answer"),
        CallOutcomeKind.PROMISE_TO_PAY: t("outcome.promise_to_pay"),
        CallOutcomeKind.WRONG_NUMBER: t("outcome.wrong_number"),
        CallOutcomeKind.REFUSED: t("outcome.refused"),
        CallOutcomeKind.CALL_BACK: t("outcome.call_back"),
    }


def why_words(t: Translate) -> dict[str, str]:
    """Why a listed task is not offered now (``CallLimits.refusal``), in words."""
    return {
        "call_cap": t("queue.why.call_cap"),
        "after_conversation": t("queue.why.after_conversation"),
        "outside_window": t("queue.why.outside_window"),
    }


@dataclass(frozen=True)
class Refusal:
    """An action on a task that did not happen: the words for the page, the field at fault, what was typed."""

    message: str
    field_name: str | None = None
    values: Mapping[str, str] | None = None


@dataclass(frozen=True)
class TaskView:
    task: CallTask
    phone: str | None
    """Only for the agent holding the task's live lease."""
    status: AccountStatus
    timeline: list[TimelineEntry]
    """Newest first."""
    limits: CallLimits
    customer_now: datetime
    script: str
    """The call script's template, in the customer's language (else the agent's)."""


@router.get("/queue")
async def queue_page(
    request: Request,
    console: Console,
    user: Annotated[User, require_page("queue")],
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> Response:
    return await _queue_response(request, console, user, page=page)


async def _queue_response(
    request: Request,
    console: Console,
    user: User,
    *,
    page: int = 0,
    refusal: Refusal | None = None,
    status_code: int = 200,
) -> Response:
    queue, at = work_queue(request, console), now()
    offset = page * PAGE_SIZE
    items, total, mine = await asyncio.gather(
        offered_tasks(queue, console.api.client, at, limit=PAGE_SIZE, offset=offset),
        asyncio.to_thread(queue.count_open, at),
        asyncio.to_thread(queue.held_by, user.name, at),
    )
    t = translator(request)
    context = {
        "items": items,
        "mine": mine,
        "page": page,
        "next_page": page + 1 if offset + PAGE_SIZE < total else None,
        "total": total,
        "refusal": refusal,
        "done": Done.of(request.query_params, OUTCOMES),
        "outcome_words": outcome_words(t),
        "why_words": why_words(t),
        "may_claim": may(user.role, Permission.CALL_OUTCOME),
        "here": f"{console_root(request)}/queue",
    }
    return render(request, "queue.html", context, status_code=status_code)


@router.post("/queue/tasks/{task_id}/claim")
async def claim(request: Request, console: Console, user: CurrentUser, task_id: int) -> Response:
    return await _claim(request, console, user, task_id, "claim")


@router.post("/queue/tasks/{task_id}/renew")
async def renew(request: Request, console: Console, user: CurrentUser, task_id: int) -> Response:
    return await _claim(request, console, user, task_id, "renew")


async def _claim(request: Request, console: Console, user: User, task_id: int, verb: str) -> Response:
    """Claim (or renew the lease on) a task: the account and the limits are asked first."""
    queue = work_queue(request, console)
    task = await _allowed_task(request, console, user, task_id, verb)
    if isinstance(task, Response):
        return task
    try:
        await claim_task(queue, console.api.client, task_id, user.name, now(), console.config.call_lease)
    except (TaskUnavailable, AccountNotFoundError) as err:
        await _audit(console, user, task, verb, REFUSED)
        return await _queue_response(
            request, console, user, refusal=_unavailable(request, err), status_code=409
        )
    await _audit(console, user, task, verb, ACCEPTED)
    target = f"{console_root(request)}/queue/tasks/{task_id}"
    return RedirectResponse(target + ("?flash=lease_renewed" if verb == "renew" else ""), status_code=303)


@router.post("/queue/tasks/{task_id}/release")
async def release(request: Request, console: Console, user: CurrentUser, task_id: int) -> Response:
    task = await _allowed_task(request, console, user, task_id, "release")
    if isinstance(task, Response):
        return task
    if not await asyncio.to_thread(work_queue(request, console).release, task_id, user.name, now()):
        await _audit(console, user, task, "release", REFUSED)
        t = translator(request)
        refusal = Refusal(t("queue.not_holder"))
        return await _queue_response(request, console, user, refusal=refusal, status_code=409)
    await _audit(console, user, task, "release", ACCEPTED)
    return RedirectResponse(f"{console_root(request)}/queue?flash=task_released", status_code=303)


@router.post("/queue/tasks/{task_id}/outcome")
async def outcome(request: Request, console: Console, user: CurrentUser, task_id: int) -> Response:
    """The call's outcome, as an update to the account; the task closes only when the account takes it."""
    form = await request.form()
    values = {
        name: str(form.get(name) or "").strip()[:40] for name in ("outcome", "promise_date", "call_back_at")
    }
    detail = _describe_outcome(values)
    task = await _allowed_task(request, console, user, task_id, detail)
    if isinstance(task, Response):
        return task
    queue = work_queue(request, console)
    try:
        call = _call_outcome(values, task.timezone)
        status = await record_call_outcome(queue, console.api.client, task_id, user.name, call, now())
    except TaskUnavailable as err:
        await _audit(console, user, task, detail, REFUSED)
        return await _queue_response(
            request, console, user, refusal=_unavailable(request, err), status_code=409
        )
    except ActionRefusedError as err:
        await _audit(console, user, task, detail, REFUSED)
        code = 422 if isinstance(err, InvalidActionValueError) else 409
        refusal = Refusal(str(err), err.field, values)
        return await task_response(request, console, user, task_id, refusal=refusal, status_code=code)
    except (ActionTimeoutError, RPCError) as err:
        await _audit(console, user, task, detail, FAILED)
        refusal = Refusal(_failure(request, err), None, values)
        code = 504 if isinstance(err, ActionTimeoutError) else 503
        return await task_response(request, console, user, task_id, refusal=refusal, status_code=code)
    except AccountNotFoundError as err:
        await _audit(console, user, task, detail, REFUSED)
        return await _queue_response(request, console, user, refusal=Refusal(str(err)), status_code=409)
    await _audit(console, user, task, detail, ACCEPTED)
    done = Done.after(values["outcome"], task.account_id, status)
    return RedirectResponse(f"{console_root(request)}/queue?{done.query()}", status_code=303)


@router.get("/queue/tasks/{task_id}")
async def task_page(
    request: Request, console: Console, user: Annotated[User, require_page("queue")], task_id: int
) -> Response:
    return await task_response(request, console, user, task_id)


async def task_response(
    request: Request,
    console: Console,
    user: User,
    task_id: int,
    *,
    refusal: Refusal | None = None,
    status_code: int = 200,
) -> Response:
    """The task's page for the agent holding it (with the number); a supervisor's view without the number;
    403 for anyone else."""
    queue, at = work_queue(request, console), now()
    task = await asyncio.to_thread(queue.get, task_id)
    if task is None:
        return render(request, "error.html", {"code": 404}, status_code=404)
    phone = await asyncio.to_thread(queue.phone_for, task_id, user.name, at)
    here = f"{console_root(request)}/queue/tasks/{task_id}"
    if phone is None and user.role not in SUPERVISING:
        return render(request, "task.html", {"view": None, "task": task, "here": here}, status_code=403)
    try:
        status, timeline, history = await asyncio.gather(
            account_status(console.api.client, task.account_id),
            account_timeline(console.api.client, task.account_id),
            asyncio.to_thread(queue.call_history, [task.account_id], at - timedelta(days=HISTORY_DAYS)),
        )
    except AccountNotFoundError:
        return render(request, "error.html", {"code": 404}, status_code=404)
    zone = ZoneInfo(task.timezone) if task.timezone else ZoneInfo("UTC")
    script = task.locale if task.locale in LOCALES else locale_of(request)
    customer_now = at.astimezone(zone)
    view = TaskView(
        task=task,
        phone=phone,
        status=status,
        timeline=list(reversed(timeline)),
        limits=call_limits(task, history.get(task.account_id, []), at),
        customer_now=customer_now,
        script=f"scripts/{script}.html",
    )
    settings = console.api.settings
    t = translator(request)
    context = {
        "view": view,
        "task": task,
        "reference": mask_reference(task.account_id),
        "days_past_due": None
        if task.due_date is None
        else max((customer_now.date() - task.due_date).days, 0),
        "script_locale": script,
        "customer_zone": task.timezone or "UTC",
        "brand": settings.brand_name,
        "hotline": settings.hotline,
        "channels": settings.repayment_channels,
        "refusal": refusal,
        "outcome_words": outcome_words(t),
        "why_words": why_words(t),
        "here": here,
    }
    return render(request, "task.html", context, status_code=status_code)


async def _allowed_task(
    request: Request, console: Console, user: User, task_id: int, detail: str
) -> CallTask | Response:
    """The task, when it exists and the user's role may work the queue; a 404 page, or ``Forbidden``
    after the attempt's audit row."""
    task = await asyncio.to_thread(work_queue(request, console).get, task_id)
    if task is None:
        return render(request, "error.html", {"code": 404}, status_code=404)
    if user.role not in PAGE_ROLES["queue"] or not may(user.role, Permission.CALL_OUTCOME):
        await _audit(console, user, task, detail, FORBIDDEN)
        raise Forbidden("queue")
    return task


def _call_outcome(values: Mapping[str, str], zone: str | None) -> CallOutcome:
    """The contract's ``CallOutcome`` from the form; the call-back's time is the customer's local time."""
    data: dict[str, Any] = {"outcome": values["outcome"]}
    if values["outcome"] == CallOutcomeKind.PROMISE_TO_PAY and values["promise_date"]:
        data["promise_date"] = values["promise_date"]
    if values["outcome"] == CallOutcomeKind.CALL_BACK and values["call_back_at"]:
        data["call_back_at"] = local_moment(values["call_back_at"], zone, "call_back_at")
    try:
        return CallOutcome.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidActionValueError(describe_validation_error(err), field=field) from None


def _describe_outcome(values: Mapping[str, str]) -> str:
    kind = values.get("outcome", "")
    if kind == CallOutcomeKind.PROMISE_TO_PAY:
        return f"outcome {kind} promise_date={values.get('promise_date', '')!r}"
    if kind == CallOutcomeKind.CALL_BACK:
        return f"outcome {kind} call_back_at={values.get('call_back_at', '')!r}"
    return f"outcome {kind}" if kind in OUTCOMES else f"outcome {kind!r}"


def _unavailable(request: Request, err: Exception) -> Refusal:
    """A claim's or an outcome's refusal in the user's words where the store says who holds the task."""
    t = translator(request)
    if isinstance(err, TaskUnavailable) and err.holder is not None and err.until is not None:
        zone = get_console(request).config.zone
        return Refusal(t("queue.held_by_other", holder=err.holder, when=instant(err.until, zone)))
    if isinstance(err, TaskUnavailable) and err.held_task is not None:
        return Refusal(t("queue.holds_another", task=err.held_task))
    return Refusal(str(err))


def _failure(request: Request, err: Exception) -> str:
    if isinstance(err, RPCError):
        t = translator(request)
        return t("queue.temporal_failed", status=err.status.name)
    return str(err)


async def _audit(console: Console, user: User, task: CallTask, detail: str, outcome: str) -> None:
    """The action's audit row: the task and what was done, never the number."""
    await run_in_threadpool(
        record_action,
        console.api.audit,
        actor=user.name,
        account_id=task.account_id,
        detail=f"call task {task.id} attempt {task.attempt}: {detail}",
        outcome=outcome,
        at=now(),
    )
