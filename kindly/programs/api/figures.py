"""``GET /figures``: the collections floor's daily figures, as ``kindly figures --json`` prints them."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.exceptions import RequestValidationError

from kindly.programs.api.deps import Context
from kindly.programs.api.security import require_api_key
from kindly.programs.figures import MAX_DAYS, FiguresReport, figures_report, parse_zone

router = APIRouter(prefix="/figures", tags=["operations"], dependencies=[Depends(require_api_key)])


@router.get(
    "",
    response_model=FiguresReport,
    responses={status.HTTP_401_UNAUTHORIZED: {"description": "Missing or invalid X-API-Key"}},
)
async def daily_figures(
    ctx: Context,
    day: Annotated[
        date | None, Query(description="The last day counted (default: today in timezone)")
    ] = None,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="How many days, ending with day")] = 7,
    timezone: Annotated[str, Query(max_length=64, description="IANA time zone of the days")] = "UTC",
) -> FiguresReport:
    """Per local day: SMS sent (by template), failed and deferred (and of those, the sends waiting for
    a holiday calendar that has no data for their day yet), replies, opt-outs, repayments,
    promises, escalations, settlements and closures, from the audit log; and open accounts by stage
    now, from Temporal visibility. Counts only: no amounts, no personal data."""
    try:
        zone = parse_zone(timezone)
    except ValueError as err:
        raise _invalid("timezone", str(err), timezone) from err
    try:
        return await figures_report(ctx.engine, ctx.client, last_day=day, days=days, zone=zone)
    except ValueError as err:  # a range past the calendar's ends
        raise _invalid("day", str(err), day) from err


def _invalid(field: str, message: str, value: object) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}]
    )
