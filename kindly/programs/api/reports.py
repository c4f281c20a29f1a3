"""``GET /reports/{name}``: the outcome reports (``kindly.analytics``), as ``kindly report NAME`` prints
them, in JSON or CSV. Reads the application database only; the first report on a database builds the
derived table ``account_outcomes`` from the audit log, later ones fold only what is new."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from kindly.analytics import ReportError, ReportName, ReportQuery, Split, build_report, to_csv
from kindly.analytics.report_models import DEFAULT_DAYS, FIRST_DAY, LAST_DAY, MAX_DAYS
from kindly.analytics.reports import check
from kindly.programs.api.deps import Context
from kindly.programs.api.security import require_api_key

router = APIRouter(prefix="/reports", tags=["reports"], dependencies=[Depends(require_api_key)])


class ResponseFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


@router.get(
    "/{name}",
    response_model=None,
    responses={
        status.HTTP_200_OK: {
            "description": "The report: a header (parameters, accounts counted, the refresh) and its rows",
            "content": {"application/json": {}, "text/csv": {}},
        },
        status.HTTP_401_UNAUTHORIZED: {"description": "Missing or invalid X-API-Key"},
    },
)
async def report(
    ctx: Context,
    name: ReportName,
    by: Annotated[
        Split | None,
        Query(description="Split by segment, arm (with experiment) or cohort; rates also by template"),
    ] = None,
    experiment: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="The experiment whose arms by=arm compares"),
    ] = None,
    days: Annotated[
        int, Query(ge=0, le=MAX_DAYS, description="The cure curve's last day; 'cured within' in efficiency")
    ] = DEFAULT_DAYS,
    as_of: Annotated[
        date | None, Query(ge=FIRST_DAY, le=LAST_DAY, description="The report's day (default: today, UTC)")
    ] = None,
    format: Annotated[ResponseFormat, Query(description="json or csv")] = ResponseFormat.JSON,
) -> Response:
    """Cure curve, roll rates, promises kept, reply/opt-out/dispute rates per 1,000 SMS, or SMS and
    money per cure (definitions: docs/analytics.md). Counts and amounts only, no personal data. A
    split the report does not take (by template, except for rates), or by arm without an experiment,
    is a 422 naming the parameter."""
    query = ReportQuery(by=by, experiment=experiment, days=days, as_of=as_of)
    try:
        check(name, query)
    except ReportError as err:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", err.field), "msg": err.message, "input": query.by}]
        ) from err
    answer = await run_in_threadpool(build_report, ctx.engine, name, query)
    if format is ResponseFormat.CSV:
        return Response(
            to_csv(answer),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(answer.model_dump_json(), media_type="application/json")
