"""Finding accounts for the console: a search form turned into a Temporal visibility query, answered one
page at a time.

The query is ``kindly.programs.operations.account_query`` (open accounts of a stage, segment, at least N
days past due, paused or not) with the console's extra clauses: an account id prefix, at most N days past
due (the other bound on ``DueDate``) and an experiment arm. Visibility holds no personal data, so neither
does a page of results. Pages follow Temporal's next-page token (opaque, carried in the link), so no
search reads more than one page of the portfolio.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio.client import Client, WorkflowExecution

from kindly.domain import search_attributes as sa
from kindly.domain.contract import WORKFLOW_ID_PREFIX
from kindly.programs.figures import OPEN_STAGES
from kindly.programs.operations import account_query, money

PAGE_SIZE = 50
MAX_DAYS_PAST_DUE = 3650
_ACCOUNT_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,129}$")
"""Segments and ``experiment:arm`` values: letters, digits and ``._:-``, so no quote reaches a query."""
STAGES: tuple[str, ...] = tuple(stage.value for stage in OPEN_STAGES)


class FilterError(ValueError):
    """A search field that makes no query; ``field`` names it."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


@dataclass(frozen=True)
class Filters:
    account_id: str = ""
    stage: str = ""
    min_dpd: str = ""
    max_dpd: str = ""
    segment: str = ""
    arm: str = ""
    paused: str = ""
    """``yes``, ``no`` or empty (either)."""


@dataclass(frozen=True)
class Row:
    """One account as visibility shows it: no personal data."""

    account_id: str
    stage: str | None
    days_past_due: int | None
    due_date: date | None
    amount_due: str | None
    currency: str | None
    segment: str | None
    arm: str | None
    paused: bool | None
    next_touchpoint_at: datetime | None


def query_for(filters: Filters, now: datetime) -> str:
    """The visibility query of ``filters`` (``FilterError`` naming the field that makes none)."""
    extra: list[str] = []
    if filters.account_id:
        if not _ACCOUNT_PREFIX.fullmatch(filters.account_id):
            raise FilterError("account_id")
        extra.append(f'WorkflowId STARTS_WITH "{WORKFLOW_ID_PREFIX}{filters.account_id}"')
    if filters.stage and filters.stage not in STAGES:
        raise FilterError("stage")
    low, high = _days(filters.min_dpd, "min_dpd"), _days(filters.max_dpd, "max_dpd")
    if low is not None and high is not None and low > high:
        raise FilterError("max_dpd")
    if high is not None:
        # At most N days past due: the due date began less than N + 1 days ago.
        bound = now - timedelta(days=high + 1)
        extra.append(f'{sa.DUE_DATE.name} > "{bound.astimezone(UTC).isoformat()}"')
    for field, value in (("segment", filters.segment), ("arm", filters.arm)):
        if value and not _NAME.fullmatch(value):
            raise FilterError(field)
    if filters.arm:
        extra.append(f'{sa.EXPERIMENT_ARM.name}="{filters.arm}"')
    if filters.paused not in ("", "yes", "no"):
        raise FilterError("paused")
    return account_query(
        stage=filters.stage or None,
        segment=filters.segment or None,
        min_days_past_due=low,
        paused=None if not filters.paused else filters.paused == "yes",
        extra=" AND ".join(extra) or None,
        now=now,
    )


def _days(value: str, field: str) -> int | None:
    if not value.strip():
        return None
    try:
        days = int(value)
    except ValueError:
        raise FilterError(field) from None
    if not 0 <= days <= MAX_DAYS_PAST_DUE:
        raise FilterError(field)
    return days


async def account_page(
    client: Client, query: str, token: str | None, now: datetime, page_size: int | None = None
) -> tuple[list[Row], str | None]:
    """One page (``PAGE_SIZE`` unless told) of the accounts ``query`` finds, from ``token`` (None: the
    first page), and the token of the next page (None after the last)."""
    size = page_size or PAGE_SIZE
    executions = client.list_workflows(query, page_size=size, next_page_token=decode_token(token))
    await executions.fetch_next_page()
    rows = [_row(execution, now) for execution in executions.current_page or ()]
    following = executions.next_page_token
    return rows, None if not following else base64.urlsafe_b64encode(following).decode("ascii")


def decode_token(token: str | None) -> bytes | None:
    """The next-page token a link carried; a mangled one is ``FilterError('page')``."""
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise FilterError("page") from None


def _row(execution: WorkflowExecution, now: datetime) -> Row:
    attributes = execution.typed_search_attributes
    due = attributes.get(sa.DUE_DATE)
    zone = _zone(attributes.get(sa.TIME_ZONE))
    amount = attributes.get(sa.AMOUNT_DUE)
    next_at = attributes.get(sa.NEXT_TOUCHPOINT_AT)
    return Row(
        account_id=execution.id.removeprefix(WORKFLOW_ID_PREFIX),
        stage=attributes.get(sa.COLLECTION_STAGE),
        days_past_due=None if due is None else max((now - due) // timedelta(days=1), 0),
        due_date=None if due is None else due.astimezone(zone or UTC).date(),
        amount_due=None if amount is None else money(amount),
        currency=attributes.get(sa.CURRENCY),
        segment=attributes.get(sa.SEGMENT),
        arm=attributes.get(sa.EXPERIMENT_ARM),
        paused=attributes.get(sa.PAUSED),
        next_touchpoint_at=None if next_at is None else next_at.astimezone(zone or UTC),
    )


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
