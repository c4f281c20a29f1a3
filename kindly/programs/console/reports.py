"""``/console/reports/{name}`` and ``/console/experiments/{name}``: the outcome reports and an experiment's
arms, as ``kindly report`` and ``kindly experiment status`` show them, read-only.

Each first brings the derived outcomes table up to the audit log (``kindly.analytics``), the cost of an
up-to-date answer; the dashboard only links here, so it stays quick.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError

from kindly.analytics import ReportError, ReportName, ReportQuery, Split, build_report
from kindly.analytics.charts import cure_curve_chart, roll_rate_chart
from kindly.analytics.report_models import (
    DEFAULT_DAYS,
    CureCurveReport,
    RollRatesReport,
    report_rows,
)
from kindly.analytics.reports import check
from kindly.programs.console.auth import require_page
from kindly.programs.console.context import Console
from kindly.programs.console.pages import render
from kindly.programs.experiments import experiment_report
from kindly.store.users import User

router = APIRouter(include_in_schema=False)

CURE_CURVE_DAYS = (0, 1, 3, 7, 14, 21, 30, 45, 60, 90, 120, 180, 365)
"""The cure curve's days a table shows (and its last day), as ``kindly report`` prints it."""
Reader = Annotated[User, require_page("dashboard")]


@router.get("/reports/{name}")
async def report(
    request: Request,
    console: Console,
    user: Reader,
    name: ReportName,
    by: Annotated[str, Query(max_length=16)] = "",
    experiment: Annotated[str, Query(max_length=64)] = "",
    days: Annotated[str, Query(max_length=6)] = "",
    as_of: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    form = {"by": by, "experiment": experiment, "days": days, "as_of": as_of}
    context: dict[str, object] = {"name": name.value, "form": form, "splits": [s.value for s in Split]}
    try:
        query = ReportQuery(
            by=Split(by) if by else None,
            experiment=experiment or None,
            days=int(days) if days else DEFAULT_DAYS,
            as_of=date.fromisoformat(as_of) if as_of else None,
        )
        check(name, query)
    except ReportError as err:
        return render(request, "report.html", {**context, "invalid": err.field}, status_code=422)
    except (ValueError, ValidationError):
        return render(request, "report.html", {**context, "invalid": "query"}, status_code=422)
    answer = await run_in_threadpool(build_report, console.api.engine, name, query)
    columns, rows = report_rows(answer)
    chart = None
    if isinstance(answer, CureCurveReport):
        shown = {day for day in CURE_CURVE_DAYS if day <= answer.days} | {answer.days}
        rows = [row for row in rows if row["day"] in shown]
        chart = cure_curve_chart(answer)
    elif isinstance(answer, RollRatesReport):
        chart = roll_rate_chart(answer)
    context.update(answer=answer, columns=columns, rows=rows, chart=chart, invalid=None)
    return render(request, "report.html", context)


@router.get("/experiments/{name}")
async def experiment(request: Request, console: Console, user: Reader, name: str) -> Response:
    found = await run_in_threadpool(experiment_report, console.api.engine, name)
    if found is None:
        return render(request, "error.html", {"code": 404}, status_code=404)
    return render(request, "experiment.html", {"experiment": found})
