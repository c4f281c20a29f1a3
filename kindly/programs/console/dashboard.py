"""``/console/dashboard``: where the open accounts stand, what Kindly did today, the last 30 days as charts,
and the way into the outcome reports and experiments. Above them, a banner for each open provider alarm:
SMS through that provider are held until an operator clears it (``kindly.store.alarms``).

Bounded work, so the page answers in well under a second on a large portfolio: one visibility count per
open stage (concurrently), today's figures (``kindly.programs.figures.day_figures``: five indexed
queries), and the 30 days' counts of the charted kinds in one indexed pass (``daily_counts``). The reports
and experiments are only listed here (their figures are computed on their own pages). The open and
overdue complaints come from the worker's complaint store (``kindly.programs.console.complaints``).
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import Engine, and_, case, func, select
from sqlmodel import col
from temporalio.client import Client

from kindly.analytics.charts import line_chart
from kindly.analytics.report_models import ReportName
from kindly.domain.contract import TimelineKind
from kindly.programs.console.auth import now, require_page
from kindly.programs.console.complaints import complaint_counts, complaint_store
from kindly.programs.console.context import Console
from kindly.programs.console.i18n import Translate
from kindly.programs.console.pages import render, translator
from kindly.programs.figures import OPEN_STAGES, day_figures, local_day_bounds
from kindly.programs.operations import account_query, count_accounts
from kindly.store import AuditEntry, ProviderAlarms
from kindly.store.experiments import ExperimentStore
from kindly.store.users import User

router = APIRouter(include_in_schema=False)

CHART_DAYS = 30
CHARTS: tuple[tuple[str, tuple[TimelineKind, ...]], ...] = (
    ("sends", (TimelineKind.SMS_SENT, TimelineKind.DEFERRED, TimelineKind.REPLY_RECEIVED)),
    (
        "escalations",
        (TimelineKind.ESCALATED_PHONE, TimelineKind.ESCALATED_SPECIALIST, TimelineKind.REPAYMENT_RECEIVED),
    ),
)
"""Each chart's name and the kinds it draws, one line per kind."""
TODAY: tuple[TimelineKind, ...] = (
    TimelineKind.SMS_SENT,
    TimelineKind.DEFERRED,
    TimelineKind.ESCALATED_PHONE,
    TimelineKind.ESCALATED_SPECIALIST,
)
"""The day's headline figures; the full list follows them."""


@router.get("/dashboard")
async def dashboard(
    request: Request, console: Console, user: Annotated[User, require_page("dashboard")]
) -> Response:
    zone = console.config.zone
    today = datetime.now(zone).date()
    engine = console.api.engine
    kinds = tuple(kind for _, drawn in CHARTS for kind in drawn)
    open_by_stage, figures, counts, experiments, alarms, complaints = await asyncio.gather(
        open_accounts_by_stage(console.api.client),
        run_in_threadpool(day_figures, engine, today, zone),
        run_in_threadpool(daily_counts, engine, today, CHART_DAYS, zone, kinds),
        run_in_threadpool(ExperimentStore(engine).all),
        run_in_threadpool(ProviderAlarms(engine).alarms),
        run_in_threadpool(complaint_counts, complaint_store(request, engine), now()),
    )
    t = translator(request)
    first = today - timedelta(days=CHART_DAYS - 1)
    charts = [(name, _chart(t, name, drawn, counts, first, today)) for name, drawn in CHARTS]
    context = {
        "open_by_stage": open_by_stage,
        "open_total": sum(open_by_stage.values()),
        "today": today,
        "figures": figures,
        "headline": [(kind, figures.events(kind)) for kind in TODAY],
        "charts": charts,
        "reports": [name.value for name in ReportName],
        "experiments": experiments,
        "alarms": alarms,
        "complaints": complaints,
    }
    return render(request, "dashboard.html", context)


async def open_accounts_by_stage(client: Client) -> dict[str, int]:
    """How many accounts are open in each stage now: one visibility count per stage, at once."""
    stages = [stage.value for stage in OPEN_STAGES]
    counts = await asyncio.gather(*(count_accounts(client, account_query(stage=stage)) for stage in stages))
    return dict(zip(stages, counts, strict=True))


def daily_counts(
    engine: Engine, last_day: date, days: int, zone: ZoneInfo, kinds: tuple[TimelineKind, ...]
) -> dict[str, list[int]]:
    """Each kind's events per local day of the ``days`` ending with ``last_day``, oldest first: one query
    over the range on the ``at`` index, a day per column."""
    starts = [local_day_bounds(last_day - timedelta(days=back), zone)[0] for back in range(days - 1, -1, -1)]
    bounds = [*starts, local_day_bounds(last_day, zone)[1]]
    at = col(AuditEntry.at)
    per_day = [
        func.count(case((and_(at >= bounds[i], at < bounds[i + 1]), 1))).label(f"d{i}") for i in range(days)
    ]
    kind = col(AuditEntry.kind)
    statement = (
        select(kind, *per_day)
        .where(at >= bounds[0], at < bounds[-1], kind.in_([wanted.value for wanted in kinds]))
        .group_by(kind)
    )
    found = {wanted.value: [0] * days for wanted in kinds}
    with engine.connect() as connection:
        for row in connection.execute(statement):
            found[str(row[0])] = [int(count) for count in row[1:]]
    return found


def _chart(
    t: Translate,
    name: str,
    kinds: tuple[TimelineKind, ...],
    counts: dict[str, list[int]],
    first: date,
    last: date,
) -> str:
    """One chart of daily counts (``kindly.analytics.charts``, inline SVG), in the page's words; x is the
    day counted back from today (0)."""
    top = max([1, *(count for kind in kinds for count in counts[kind.value])])
    series = {
        t(f"kind.{kind.value}"): [(float(day - len(values) + 1), float(n)) for day, n in enumerate(values)]
        for kind in kinds
        for values in [counts[kind.value]]
    }
    return line_chart(
        t(f"dashboard.chart.{name}"),
        series,
        x_label=t("dashboard.chart.days", first=first.isoformat(), last=last.isoformat()),
        y_label=t("dashboard.chart.per_day"),
        y_max=float(top),
    )
